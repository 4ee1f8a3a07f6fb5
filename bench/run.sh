#!/usr/bin/env bash
# The benchmark: kiln against ONNX Runtime and PyTorch on the reference models
# (bench/models.py), same inputs, same machine, same run, at 1 and 2 threads.
#
#   bench/run.sh [OUT]        (default OUT: /tmp/kiln-bench; takes several minutes)
#   KILN_BENCH_SET=zoo bench/run.sh OUT   (other torchvision models: bench/models.py's zoo;
#                                          30 kiln runs each, about 15 minutes)
#
# Needs python3-torch, python3-torchvision and libopenblas0-pthread (Debian; without an
# optimized BLAS, PyTorch falls back to the reference one, 15x slower) and onnxruntime-node
# (npm install --ignore-scripts; looked for in bench/node_modules, then in
# $ORT_NODE_MODULES). Every engine's output is checked
# against PyTorch's before any time is reported; the table (bench/report.py) gives each
# median latency in ms and kiln's ratio to the best peer (< 1: kiln is faster).
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-/tmp/kiln-bench}
# every engine alike keeps freed memory (else page faults dominate the elementwise chain),
# and OpenBLAS (PyTorch's BLAS) picks its kernels for this CPU itself: a core type or L2
# size set in the environment made it pick slow ones (SGEMM 561 ms where 22 is its own)
export GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=1073741824
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
mkdir -p "$out"
kiln=build/kiln
[ -x "$kiln" ] || cmake --build build
modules=${ORT_NODE_MODULES:-bench/node_modules}
if [ ! -d "$modules/onnxruntime-node" ]; then
    echo "bench: installing onnxruntime-node into bench/node_modules (npm, --ignore-scripts)"
    (cd bench && npm install --no-save --ignore-scripts onnxruntime-node >/dev/null)
    modules=bench/node_modules
fi
modules=$(cd "$modules" && pwd)
cc -O3 -march=native -fopenmp bench/limits.c -o "$out/limits"
"$out/limits" >"$out/limits.json"
echo "limits: $(cat "$out/limits.json")"
# the models and PyTorch's timings; kept between runs of the same OUT (delete OUT to redo)
[ -f "$out/torch.done" ] || { /usr/bin/python3 bench/models.py "$out" 1 2 && touch "$out/torch.done"; }
runs=200
[ "${KILN_BENCH_SET:-}" = zoo ] && runs=30 # ViT-B runs 0.2 s each
for d in "$out"/*/; do
    name=$(basename "$d")
    [ -f "$d/model.onnx" ] || continue
    "$kiln" run "$d/model.onnx" --input input_0="$d/input_0.npy" --output-dir "$d/kiln" >/dev/null
    for t in 1 2; do
        # 200 runs after 3 warm-ups, as many as the peers' harnesses take at most (they stop
        # at 2 s): short runs gave the MLP higher medians (50 runs: 0.43-0.47 ms where 2000
        # gave 0.415-0.421, the same build in the same minutes)
        "$kiln" bench "$d/model.onnx" --input input_0="$d/input_0.npy" --threads $t --compare unfused --json \
            --iterations $runs >"$d/kiln_$t.json"
        for level in all disabled; do
            NODE_PATH="$modules" node bench/ort_bench.js "$d/model.onnx" "$d/input_0.npy" "$d/ort_out.npy" $t $level \
                >"$d/ort_${level}_$t.json"
        done
    done
    echo "$name: done"
done
/usr/bin/python3 bench/report.py "$out"
