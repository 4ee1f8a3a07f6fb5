#!/usr/bin/env bash
# Kill-and-resume: `kiln train` killed (SIGKILL) in the middle of an epoch, twice, then
# resumed from its checkpoint (taken every 150 steps and after each epoch), ends with the
# same weights, bit for bit, and the same test accuracy as the same run never interrupted
# (same seed, one thread). The model is the bundled MLP with a Dropout added, so the
# dropout masks (drawn from the seed and the step count) must come back too.
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
mkdir "$tmp/model"
cp examples/models/fashion_mlp.npz "$tmp/model/"
sed -e 's|^  %fc3.mm = MatMul(%h2, %fc3.weight)|  const %drop.ratio: f32[] = [0.2]\n  %h2d = Dropout(%h2, %drop.ratio)\n  %fc3.mm = MatMul(%h2d, %fc3.weight)|' \
    examples/models/fashion_mlp.kiln >"$tmp/model/mlp_dropout.kiln"
grep -q Dropout "$tmp/model/mlp_dropout.kiln" || { echo "FAIL: no Dropout in the test model"; exit 1; }
args=("$tmp/model/mlp_dropout.kiln" --data "$data" --epochs 5 --threads 1 --seed 7 --optimizer sgd
      --momentum 0.9 --schedule cosine --warmup 200 --val 5000 --checkpoint-every 150 --quiet)
"$kiln" train "${args[@]}" --checkpoint "$tmp/whole" >"$tmp/whole.out"
# Starts a run in the background and kills it (SIGKILL) as soon as `$2` holds: whatever
# the machine's speed, the kill lands where the test means it to.
kill_when() {
    local ckpt=$1 condition=$2
    shift 2
    "$kiln" train "${args[@]}" --checkpoint "$ckpt" "$@" >/dev/null &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        if eval "$condition"; then
            kill -KILL "$pid"
            wait "$pid" 2>/dev/null || true
            return 0
        fi
        sleep 0.02
    done
    echo "FAIL: the run ended before it could be killed ($condition)"
    exit 1
}
epochs_logged() { [ -f "$tmp/killed/metrics.csv" ] && echo $(($(wc -l <"$tmp/killed/metrics.csv") - 1)) || echo 0; }
# in the middle of the first epoch, right after its first checkpoint (step 150)
kill_when "$tmp/killed" '[ -f "$tmp/killed/last.npz" ]'
# in the middle of the third epoch, resumed from the middle of the first
kill_when "$tmp/killed" '[ "$(epochs_logged)" -ge 2 ]' --resume
"$kiln" train "${args[@]}" --checkpoint "$tmp/killed" --resume >"$tmp/killed.out"
if ! cmp "$tmp/whole/last.npz" "$tmp/killed/last.npz"; then
    echo "FAIL: the resumed run's checkpoint differs from the uninterrupted run's"
    exit 1
fi
whole=$(grep test_accuracy "$tmp/whole.out")
resumed=$(grep test_accuracy "$tmp/killed.out")
[ "$whole" = "$resumed" ] || { echo "FAIL: $whole vs $resumed"; exit 1; }
echo "killed twice and resumed: weights identical to the uninterrupted run's; $whole"
