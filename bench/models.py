#!/usr/bin/python3
"""The benchmark's reference models, exported from PyTorch, and PyTorch's own timings.

usage: bench/models.py OUT [THREADS ...]

KILN_BENCH_SET=zoo picks the other set: torchvision models at batch 1 beyond the reference
ones (grouped convs, squeeze-and-excitation, SiLU and GELU, NHWC blocks, a ViT). For each
model writes OUT/NAME/model.onnx, OUT/NAME/input_0.npy and OUT/NAME/torch_out.npy
(PyTorch's output, what every engine is checked against), then times PyTorch eager and
TorchScript at each thread count (default 1 2) and writes OUT/NAME/torch.json with the
medians in milliseconds. Seeded, eval mode (batch norm with randomized statistics).
"""
import ctypes
import json
import os
import sys
import time

import numpy as np
import torch

torch.manual_seed(20261124)


class MLP(torch.nn.Module):  # 784-512-512-10
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(784, 512), torch.nn.ReLU(), torch.nn.Linear(512, 512),
                                       torch.nn.ReLU(), torch.nn.Linear(512, 10))

    def forward(self, x):
        return self.net(x)


class CNN(torch.nn.Module):  # two conv+BN+ReLU+pool blocks and a classifier, 3x32x32
    def __init__(self):
        super().__init__()
        self.f = torch.nn.Sequential(
            torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.BatchNorm2d(64), torch.nn.ReLU(), torch.nn.MaxPool2d(2))
        self.fc = torch.nn.Linear(64 * 8 * 8, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.f(x), 1))


class LSTM(torch.nn.Module):  # input 64, hidden 256
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(64, 256, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0]


class Chain(torch.nn.Module):  # ten elementwise ops
    def forward(self, x):
        y = torch.relu(x * 1.5 + 0.5)
        y = torch.sigmoid(y) * x
        y = torch.tanh(y - 0.25)
        y = y * y + x
        return torch.clamp(y, -1.0, 1.0) - 0.1


def randomize_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def models():
    import torchvision
    layer = torch.nn.TransformerEncoderLayer(256, 4, 1024, dropout=0.0, batch_first=True)
    return [
        ("mlp", MLP(), (64, 784)),
        ("cnn", CNN(), (16, 3, 32, 32)),
        ("resnet18", torchvision.models.resnet18(weights=None), (1, 3, 224, 224)),
        # depthwise 3x3 convs between 1x1 ones, channels 16 to 1280 (24 not a multiple of 16)
        ("mobilenet_v2", torchvision.models.mobilenet_v2(weights=None), (1, 3, 224, 224)),
        ("transformer", layer, (8, 128, 256)),
        ("lstm", LSTM(), (16, 50, 64)),
        ("eltwise", Chain(), (1, 16, 512, 512)),
        # SGEMM 1024 x 1024 x 1024 against a weight (a Linear without bias): the GEMM kernel
        # alone, its GFLOP/s a fraction of the measured FMA peak in the report
        ("sgemm", torch.nn.Linear(1024, 1024, bias=False), (1024, 1024)),
    ]


def zoo():
    """Models a user might bring, each exercising paths the reference set does not."""
    import torchvision
    vit = torchvision.models.vit_b_16(weights=None)
    torch.nn.init.normal_(vit.heads.head.weight, std=0.02)  # zeros as built: every output 0
    return [
        ("resnext50", torchvision.models.resnext50_32x4d(weights=None), (1, 3, 224, 224)),  # groups of 4 to 32
        ("regnet_y_400mf", torchvision.models.regnet_y_400mf(weights=None), (1, 3, 224, 224)),  # groups of 8, SE
        ("efficientnet_b0", torchvision.models.efficientnet_b0(weights=None), (1, 3, 224, 224)),  # SiLU, SE
        ("convnext_tiny", torchvision.models.convnext_tiny(weights=None), (1, 3, 224, 224)),  # NHWC LayerNorm, GELU
        ("vit_b_16", vit, (1, 3, 224, 224)),
    ]


def median_ms(fn, x):
    for _ in range(3):
        fn(x)
    times, start = [], time.perf_counter()
    while len(times) < 10 or (time.perf_counter() - start < 2 and len(times) < 200):
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times))


def blas_threads(t):
    """Debian's PyTorch calls OpenBLAS, whose thread pool torch.set_num_threads does not
    size: without this its '1 thread' GEMMs ran on both cores (SGEMM 362 GFLOP/s, above
    one core's FMA peak)."""
    for lib in ("libopenblas.so.0", "libblas.so.3"):
        try:
            ctypes.CDLL(lib).openblas_set_num_threads(t)
            return
        except (OSError, AttributeError):
            continue


def main():
    out = sys.argv[1]
    threads = [int(t) for t in sys.argv[2:]] or [1, 2]
    for name, model, shape in zoo() if os.environ.get("KILN_BENCH_SET") == "zoo" else models():
        model.eval()
        randomize_bn(model)
        d = os.path.join(out, name)
        os.makedirs(d, exist_ok=True)
        x = torch.rand(shape) * 2 - 1
        # exported with gradients on: PyTorch's fused inference path for transformer
        # layers (taken under no_grad) has no ONNX form
        torch.onnx.export(model, (x,), os.path.join(d, "model.onnx"), opset_version=17,
                          input_names=["input_0"], output_names=["output_0"])
        with torch.no_grad():
            want = model(x)
            np.save(os.path.join(d, "input_0.npy"), x.numpy())
            np.save(os.path.join(d, "torch_out.npy"), want.numpy())
            script = torch.jit.trace(model, (x,))
            timing = {}
            for t in threads:
                torch.set_num_threads(t)
                blas_threads(t)
                timing["eager_%d" % t] = median_ms(model, x)
                timing["torchscript_%d" % t] = median_ms(script, x)
        with open(os.path.join(d, "torch.json"), "w") as f:
            json.dump(timing, f)
        print(name, timing, flush=True)


if __name__ == "__main__":
    main()
