#!/usr/bin/python3
"""Exports small PyTorch models to ONNX at opsets 13 and 17, with inputs and PyTorch's
outputs, in the ONNX backend-test layout that tests/onnx/conformance reads:

    tests/models/torch/NAME_opsetN/model.onnx
    tests/models/torch/NAME_opsetN/test_data_set_0/input_K.pb, output_K.pb

Run by a developer with Debian's python3-torch (the outputs are committed; CI does not
need PyTorch). Seeded, so it is reproducible. With --resnet18 DIR, also writes
torchvision's ResNet-18 (random weights) to DIR, too large to commit.
"""
import os
import sys

import numpy as np
import torch
from onnx import numpy_helper

here = os.path.dirname(os.path.abspath(__file__))
torch.manual_seed(20261124)


class MLP(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(),
                                       torch.nn.Linear(32, 10))

    def forward(self, x):
        return torch.softmax(self.net(x), dim=-1)


class CNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.BatchNorm2d(8), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
            torch.nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1))
        self.fc = torch.nn.Linear(16, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class LSTM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(8, 16, batch_first=True)
        self.fc = torch.nn.Linear(16, 4)

    def forward(self, x):
        y, (h, c) = self.lstm(x)
        return self.fc(y[:, -1]), h


def randomize_bn(model):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.5, 0.5)


def save_tensor(array, path):
    with open(path, "wb") as f:
        f.write(numpy_helper.from_array(np.ascontiguousarray(array)).SerializeToString())


def export(name, model, inputs, opset, out_root, dynamic=None):
    model.eval()
    folder = os.path.join(out_root, f"{name}_opset{opset}")
    os.makedirs(os.path.join(folder, "test_data_set_0"), exist_ok=True)
    input_names = [f"input_{i}" for i in range(len(inputs))]
    with torch.no_grad():
        outputs = model(*inputs)
    outputs = outputs if isinstance(outputs, tuple) else (outputs,)
    output_names = [f"output_{i}" for i in range(len(outputs))]
    torch.onnx.export(model, tuple(inputs), os.path.join(folder, "model.onnx"), opset_version=opset,
                      input_names=input_names, output_names=output_names, dynamic_axes=dynamic,
                      do_constant_folding=True)
    for i, x in enumerate(inputs):
        save_tensor(x.numpy(), os.path.join(folder, "test_data_set_0", f"input_{i}.pb"))
    for i, y in enumerate(outputs):
        save_tensor(y.numpy(), os.path.join(folder, "test_data_set_0", f"output_{i}.pb"))
    return folder


def main():
    out_root = os.path.join(here, "torch")
    cnn = CNN()
    randomize_bn(cnn)
    encoder = torch.nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True)
    models = [
        ("mlp", MLP(), [torch.randn(3, 1, 8, 8)], {"input_0": {0: "batch"}, "output_0": {0: "batch"}}),
        ("cnn_bn", cnn, [torch.randn(2, 3, 16, 16)], None),
        ("transformer_encoder", encoder, [torch.randn(2, 7, 32)], None),
        ("lstm", LSTM(), [torch.randn(2, 5, 8)], None),
    ]
    if len(sys.argv) > 2 and sys.argv[1] == "--resnet18":
        import torchvision
        resnet = torchvision.models.resnet18(weights=None)
        randomize_bn(resnet)
        for opset in (13, 17):
            print(export("resnet18", resnet, [torch.randn(1, 3, 224, 224)], opset, sys.argv[2]))
        return
    for opset in (13, 17):
        for name, model, inputs, dynamic in models:
            print(export(name, model, inputs, opset, out_root, dynamic))


main()
