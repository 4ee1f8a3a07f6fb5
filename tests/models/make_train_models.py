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
