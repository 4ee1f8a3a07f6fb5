#!/usr/bin/env bash
# Kill-and-resume: `kiln train` killed (SIGKILL) in the middle of a run, twice, then
# resumed from its checkpoint, ends with the same weights, bit for bit, and the same test
# accuracy as the same run never interrupted (same seed, one thread).
#   tests/cli/train_resume.sh KILN_BINARY [DATA_DIR]
set -euo pipefail
kiln=$(realpath "$1")
data=${2:-/usr/share/datasets/fashion-mnist}
if [ ! -e "$data/train-images-idx3-ubyte.gz" ] && [ ! -e "$data/train-images-idx3-ubyte" ]; then
    echo "no Fashion-MNIST in $data (Debian dataset-fashion-mnist): skipped"
    exit 77
fi
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(examples/models/fashion_mlp.kiln --data "$data" --epochs 3 --threads 1 --seed 7 --optimizer sgd
      --momentum 0.9 --schedule cosine --warmup 200 --val 5000 --quiet)
"$kiln" train "${args[@]}" --checkpoint "$tmp/whole" >"$tmp/whole.out"
status=0
timeout -s KILL 4 "$kiln" train "${args[@]}" --checkpoint "$tmp/killed" >/dev/null || status=$?
[ "$status" = 137 ] || { echo "the first run was not killed (status $status): make the run longer"; exit 1; }
timeout -s KILL 3 "$kiln" train "${args[@]}" --checkpoint "$tmp/killed" --resume >/dev/null || true
"$kiln" train "${args[@]}" --checkpoint "$tmp/killed" --resume >"$tmp/killed.out"
if ! cmp "$tmp/whole/last.npz" "$tmp/killed/last.npz"; then
    echo "FAIL: the resumed run's checkpoint differs from the uninterrupted run's"
    exit 1
fi
whole=$(grep test_accuracy "$tmp/whole.out")
resumed=$(grep test_accuracy "$tmp/killed.out")
[ "$whole" = "$resumed" ] || { echo "FAIL: $whole vs $resumed"; exit 1; }
echo "killed twice and resumed: weights identical to the uninterrupted run's; $whole"
