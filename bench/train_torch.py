#!/usr/bin/python3
"""PyTorch's time per training step for the bundled training models (the same layers,
batch, optimizer and data as `kiln train`), for bench/train.sh:
    train_torch.py MODEL THREADS STEPS    MODEL: mlp or cnn
prints 'train_step_ms median=... p10=... p90=...' like `kiln train --bench`."""
import os
import sys
import time

import numpy as np
import torch

model, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
torch.manual_seed(0)
nn = torch.nn
if model == "mlp":
    net = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))
else:
    net = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Dropout(0.25),
                        nn.Linear(128, 10))
net.train()
opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=0.0)
loss_fn = nn.CrossEntropyLoss()
rng = np.random.default_rng(1)
batches = [(torch.from_numpy(rng.standard_normal((64, 1, 28, 28), dtype=np.float32)),
            torch.from_numpy(rng.integers(0, 10, 64))) for _ in range(8)]
times = []
for s in range(steps + 5):
    x, y = batches[s % len(batches)]
    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=True)
    loss = loss_fn(net(x), y)
    loss.backward()
    opt.step()
    if s >= 5:
        times.append((time.perf_counter() - t0) * 1000)
times.sort()
print(f"train_step_ms median={times[len(times) // 2]:.3f} p10={times[len(times) // 10]:.3f} "
      f"p90={times[len(times) * 9 // 10]:.3f} steps={steps} batch=64")
