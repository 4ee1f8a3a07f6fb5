#!/usr/bin/python3
"""Runs the bundled MLP and CNN with `kiln run` and checks the outputs against an
independent numpy computation of the same networks (float64), within rtol 1e-5
(atol 1e-7 for values near zero).

usage: check_models.py KILN_BINARY MODELS_DIR WORK_DIR
"""
import os
import subprocess
import sys

import numpy as np

kiln, models, work = sys.argv[1:4]
images = np.load(os.path.join(models, "images.npy")).astype(np.float64)


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def mlp(w):
    x = images.reshape(len(images), -1)
    h = np.maximum(x @ w["fc1.weight"] + w["fc1.bias"], 0)
    h = np.maximum(h @ w["fc2.weight"] + w["fc2.bias"], 0)
    logits = h @ w["fc3.weight"] + w["fc3.bias"]
    return logits, softmax(logits)


def conv3x3_pad1(x, weight, bias):
    n, c, hgt, wid = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, weight.shape[0], hgt, wid))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i:i + hgt, j:j + wid], weight[:, :, i, j])
    return out + bias[None, :, None, None]


def batch_norm(x, w, p, eps=1e-5):
    s = lambda k: w[p + "." + k][None, :, None, None]
    return (x - s("mean")) / np.sqrt(s("var") + eps) * s("scale") + s("bias")


def max_pool2(x):
    n, c, h, wd = x.shape
    return x.reshape(n, c, h // 2, 2, wd // 2, 2).max(axis=(3, 5))


def cnn(w):
    x = max_pool2(np.maximum(batch_norm(conv3x3_pad1(images, w["conv1.weight"], w["conv1.bias"]), w, "bn1"), 0))
    x = max_pool2(np.maximum(batch_norm(conv3x3_pad1(x, w["conv2.weight"], w["conv2.bias"]), w, "bn2"), 0))
    logits = x.reshape(len(x), -1) @ w["fc.weight"].T + w["fc.bias"]
    return logits, softmax(logits)


failed = 0
for name, net in (("mlp", mlp), ("cnn", cnn)):
    weights = {k: v.astype(np.float64) for k, v in np.load(os.path.join(models, name + ".npz")).items()}
    want = dict(zip(("logits", "probs"), net(weights)))
    out_dir = os.path.join(work, name)
    subprocess.run([kiln, "run", os.path.join(models, name + ".kiln"),
                    "--input", "image=" + os.path.join(models, "images.npy"), "--output-dir", out_dir], check=True)
    for key, ref in want.items():
        got = np.load(os.path.join(out_dir, key + ".npy"))
        err = np.max(np.abs(got - ref) / (np.abs(ref) + 1e-2))
        ok = got.shape == ref.shape and got.dtype == np.float32 and np.allclose(got, ref, rtol=1e-5, atol=1e-7)
        print(f"{name}.{key}: shape {got.shape}, max scaled error {err:.2e}: {'ok' if ok else 'MISMATCH'}")
        failed += not ok
print(f"{4 - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
