#!/usr/bin/env bash
# Training speed: time per step of the bundled training models (examples/models/
# fashion_mlp.kiln and fashion_cnn.kiln: batch 64, AdamW, cross-entropy) in kiln and in
# PyTorch (Debian python3-torch, the same layers), in one run, at 1 and 2 threads;
# prints the medians and kiln's ratio (< 1: kiln is faster).
#   bench/train.sh [STEPS]    (default 100 steps after 5 warm-up steps)
set -euo pipefail
cd "$(dirname "$0")/.."
steps=${1:-100}
data=${KILN_DATA:-/usr/share/datasets/fashion-mnist}
kiln=build/kiln
[ -x "$kiln" ] || cmake --build build
unset OPENBLAS_CORETYPE OPENBLAS_L2_SIZE
export GLIBC_TUNABLES=glibc.malloc.trim_threshold=1073741824:glibc.malloc.mmap_threshold=1073741824
median() { sed -n 's/.*median=\([0-9.]*\).*/\1/p'; }
printf "%-5s %7s %12s %12s %10s\n" model threads "kiln ms" "torch ms" kiln/torch
for model in mlp cnn; do
    for threads in 1 2; do
        k=$("$kiln" train "examples/models/fashion_$model.kiln" --data "$data" --threads "$threads" \
            --bench "$steps" --quiet | median)
        t=$(/usr/bin/python3 bench/train_torch.py "$model" "$threads" "$steps" | median)
        printf "%-5s %7s %12s %12s %10s\n" "$model" "$threads" "$k" "$t" "$(awk -v a="$k" -v b="$t" 'BEGIN { printf "%.2f", a / b }')"
    done
done
