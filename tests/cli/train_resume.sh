#!/usr/bin/env bash
# Kill-and-resume: `kiln train` killed (SIGKILL) in the middle of an epoch, twice, then
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
args=(examples/models/fashion_mlp.kiln --data "$data" --epochs 5 --threads 1 --seed 7 --optimizer sgd
      --momentum 0.9 --schedule cosine --warmup 200 --val 5000 --quiet)
"$kiln" train "${args[@]}" --checkpoint "$tmp/whole" >"$tmp/whole.out"
# Starts a run in the background and kills it (SIGKILL) as soon as its metrics file has
# $2 epoch lines: in the middle of the next epoch, whatever the machine's speed.
kill_after_epochs() {
    local ckpt=$1 epochs=$2
    shift 2
    "$kiln" train "${args[@]}" --checkpoint "$ckpt" "$@" >/dev/null &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if [ -f "$ckpt/metrics.csv" ] && [ "$(($(wc -l <"$ckpt/metrics.csv") - 1))" -ge "$epochs" ]; then
            kill -KILL "$pid"
            wait "$pid" 2>/dev/null || true
            return 0
        fi
        sleep 0.02
    done
    echo "FAIL: the run ended before it could be killed after epoch $epochs"
    exit 1
}
kill_after_epochs "$tmp/killed" 1
kill_after_epochs "$tmp/killed" 3 --resume
"$kiln" train "${args[@]}" --checkpoint "$tmp/killed" --resume >"$tmp/killed.out"
if ! cmp "$tmp/whole/last.npz" "$tmp/killed/last.npz"; then
    echo "FAIL: the resumed run's checkpoint differs from the uninterrupted run's"
    exit 1
fi
whole=$(grep test_accuracy "$tmp/whole.out")
resumed=$(grep test_accuracy "$tmp/killed.out")
[ "$whole" = "$resumed" ] || { echo "FAIL: $whole vs $resumed"; exit 1; }
echo "killed twice and resumed: weights identical to the uninterrupted run's; $whole"
