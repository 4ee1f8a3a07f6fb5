#!/usr/bin/python3
"""Writes the initial weights of the bundled training models (examples/models/fashion_*.npz)
with PyTorch's default initialization for Linear and Conv layers (uniform in
+-1/sqrt(fan_in) for weights and biases), from a fixed seed. Run by a developer with
Debian's python3-numpy; the .npz files are committed."""
import os

import numpy as np

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "examples", "models")
rng = np.random.default_rng(20261124)


def uniform(shape, fan_in):
    bound = 1 / np.sqrt(fan_in)
    return rng.uniform(-bound, bound, size=shape).astype(np.float32)


def linear(name, fan_in, fan_out, arrays):
    arrays[name + ".weight"] = uniform((fan_in, fan_out), fan_in)  # [in, out]: x @ W
    arrays[name + ".bias"] = uniform((fan_out,), fan_in)


mlp = {}
linear("fc1", 784, 256, mlp)
linear("fc2", 256, 128, mlp)
linear("fc3", 128, 10, mlp)
np.savez(os.path.join(out, "fashion_mlp.npz"), **mlp)

cnn = {}
cnn["conv1.weight"] = uniform((32, 1, 3, 3), 1 * 9)
cnn["conv2.weight"] = uniform((64, 32, 3, 3), 32 * 9)
for name, c in (("bn1", 32), ("bn2", 64)):
    cnn[name + ".weight"] = np.ones(c, np.float32)
    cnn[name + ".bias"] = np.zeros(c, np.float32)
    cnn[name + ".running_mean"] = np.zeros(c, np.float32)
    cnn[name + ".running_var"] = np.ones(c, np.float32)
linear("fc1", 64 * 7 * 7, 128, cnn)
linear("fc2", 128, 10, cnn)
np.savez(os.path.join(out, "fashion_cnn.npz"), **cnn)
