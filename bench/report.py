#!/usr/bin/python3
"""The benchmark's table, from what bench/run.sh left in OUT: every engine's output checked
against PyTorch's first (max |got - want| / (1e-4 + 1e-3 |want|) must be <= 1), then the
median latency per engine and thread count, and kiln's ratio to the best peer.

usage: bench/report.py OUT
"""
import json
import os
import sys

import numpy as np


def scaled_error(got, want):
    return float(np.max(np.abs(got.astype(np.float64) - want) / (1e-4 + 1e-3 * np.abs(want)))) if want.size else 0.0


def main():
    out = sys.argv[1]
    limits = json.load(open(os.path.join(out, "limits.json")))
    print("machine: %d threads; f32 FMA peak %.0f GFLOP/s on 1 thread, %.0f on all; triad %.1f GB/s on 1, %.1f on all"
          % (limits["threads"], limits["fma_gflops_1"], limits["fma_gflops_all"], limits["triad_gbs_1"],
             limits["triad_gbs_all"]))
    rows, bad = [], []
    for name in sorted(os.listdir(out)):
        d = os.path.join(out, name)
        if not os.path.isfile(os.path.join(d, "torch.json")):
            continue
        want = np.load(os.path.join(d, "torch_out.npy")).astype(np.float64)
        kiln_out = os.path.join(d, "kiln", "output_0.npy")
        for engine, path in (("kiln", kiln_out), ("onnxruntime", os.path.join(d, "ort_out.npy"))):
            err = scaled_error(np.load(path), want)
            if err > 1:
                bad.append("%s: %s disagrees with PyTorch (scaled error %.3g)" % (name, engine, err))
        torch_t = json.load(open(os.path.join(d, "torch.json")))
        for t in (1, 2):
            k = json.load(open(os.path.join(d, "kiln_%d.json" % t)))
            ort = {lv: json.load(open(os.path.join(d, "ort_%s_%d.json" % (lv, t))))["median_ms"] for lv in ("all", "disabled")}
            peers = {"ort": ort["all"], "ort_noopt": ort["disabled"], "torch": torch_t["eager_%d" % t],
                     "torchscript": torch_t["torchscript_%d" % t]}
            best = min(peers, key=peers.get)
            rows.append((name, t, k["fused"]["median_ms"], k["unfused"]["median_ms"], peers, best))
    for b in bad:
        print("MISMATCH " + b)
    if bad:
        sys.exit(1)
    print("all engines agree with PyTorch (rtol 1e-3, atol 1e-4)")
    print("%-12s %3s %10s %10s %10s %10s %10s %10s  %-12s %8s" % ("model", "thr", "kiln", "kiln_unf", "ort", "ort_noopt",
                                                                 "torch", "tscript", "best peer", "kiln/best"))
    for name, t, fused, unfused, peers, best in rows:
        print("%-12s %3d %10.3f %10.3f %10.3f %10.3f %10.3f %10.3f  %-12s %8.2f" % (
            name, t, fused, unfused, peers["ort"], peers["ort_noopt"], peers["torch"], peers["torchscript"], best,
            fused / peers[best]))
    for name, t, fused, unfused, peers, best in rows:
        if name == "sgemm":  # 2 n^3 flops, against the FMA peak measured in this run
            peak = limits["fma_gflops_1" if t == 1 else "fma_gflops_all"]
            gflops = 2 * 1024 ** 3 / (fused * 1e6)
            print("sgemm 1024^3, %d thread%s: kiln %.1f GFLOP/s = %.0f%% of peak; best peer (%s) %.1f GFLOP/s" % (
                t, "" if t == 1 else "s", gflops, 100 * gflops / peak, best, 2 * 1024 ** 3 / (peers[best] * 1e6)))


if __name__ == "__main__":
    main()
