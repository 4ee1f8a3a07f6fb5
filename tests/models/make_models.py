#!/usr/bin/python3
"""Writes the weights and sample inputs of the bundled example models.

Run once by a developer (the outputs are committed): examples/models/mlp.npz (stored,
as numpy.savez writes), cnn.npz (deflated, as numpy.savez_compressed writes), and
images.npy, a batch of 4 synthetic 28x28 images. Seeded, so it is reproducible.
"""
import os
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "..", "..", "examples", "models")
rng = np.random.default_rng(20261124)


def he(shape, fan_in):
    return (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)


mlp = {
    "fc1.weight": he((784, 64), 784), "fc1.bias": (rng.standard_normal(64) * 0.1).astype(np.float32),
    "fc2.weight": he((64, 32), 64), "fc2.bias": (rng.standard_normal(32) * 0.1).astype(np.float32),
    "fc3.weight": he((32, 10), 32), "fc3.bias": (rng.standard_normal(10) * 0.1).astype(np.float32),
}
np.savez(os.path.join(out, "mlp.npz"), **mlp)


def bn(prefix, c):
    return {
        prefix + ".scale": (1 + 0.1 * rng.standard_normal(c)).astype(np.float32),
        prefix + ".bias": (0.1 * rng.standard_normal(c)).astype(np.float32),
        prefix + ".mean": (0.1 * rng.standard_normal(c)).astype(np.float32),
        prefix + ".var": (1 + 0.2 * rng.random(c)).astype(np.float32),
    }


cnn = {"conv1.weight": he((8, 1, 3, 3), 9), "conv1.bias": np.zeros(8, np.float32)}
cnn.update(bn("bn1", 8))
cnn.update({"conv2.weight": he((16, 8, 3, 3), 72), "conv2.bias": np.zeros(16, np.float32)})
cnn.update(bn("bn2", 16))
cnn.update({"fc.weight": he((10, 784), 784), "fc.bias": (0.1 * rng.standard_normal(10)).astype(np.float32)})
np.savez_compressed(os.path.join(out, "cnn.npz"), **cnn)

yy, xx = np.mgrid[0:28, 0:28]
images = np.stack([np.clip(np.sin(xx / (3 + k)) * np.cos(yy / (2 + k)) + 0.1 * rng.standard_normal((28, 28)), -1, 1)
                   for k in range(4)])[:, None].astype(np.float32)
np.save(os.path.join(out, "images.npy"), images)
