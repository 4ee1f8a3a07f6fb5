#!/usr/bin/env bash
# kiln train on an .npz dataset (x_train, y_train, x_test, y_test) and on a folder of the
# same arrays as .npy files: a synthetic ten-class set (class c lights block c of a 28x28
# image, over noise), u8 and f32 images, i64 and i32 labels, learnt by the bundled MLP (test
# accuracy >= 0.95 after 2 epochs); and an .npz whose image and label counts differ,
# refused with its message.
#   tests/cli/train_npz.sh KILN_BINARY
set -euo pipefail
kiln=$(realpath "$1")
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
/usr/bin/python3 - "$tmp" <<'PY'
import sys
import numpy as np
rng = np.random.default_rng(5)
def split(n):
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 60, (n, 28, 28))
    for i, c in enumerate(y):
        r, k = divmod(int(c), 5)
        x[i, 4 + 12 * r:12 + 12 * r, 1 + 5 * k:5 + 5 * k] += 150
    return x.astype(np.uint8), y
xtr, ytr = split(3000)
xte, yte = split(600)
out = sys.argv[1]
np.savez(out + "/u8.npz", x_train=xtr, y_train=ytr.astype(np.int64), x_test=xte, y_test=yte.astype(np.int64))
np.savez(out + "/f32.npz", x_train=(xtr / 255).astype(np.float32), y_train=ytr.astype(np.int32),
         x_test=(xte / 255).astype(np.float32), y_test=yte.astype(np.int32))
np.savez(out + "/bad.npz", x_train=xtr, y_train=ytr[:10], x_test=xte, y_test=yte)
import os
os.mkdir(out + "/npy")
for name, a in (("x_train", xtr), ("y_train", ytr.astype(np.int64)), ("x_test", xte), ("y_test", yte.astype(np.int64))):
    np.save(out + "/npy/" + name + ".npy", a)
PY
for set in u8.npz f32.npz npy; do
    acc=$("$kiln" train examples/models/fashion_mlp.kiln --data "$tmp/$set" --epochs 2 --quiet | sed -n 's/test_accuracy=//p')
    awk -v a="$acc" 'BEGIN { exit !(a >= 0.95) }' || { echo "FAIL: $set: test accuracy $acc < 0.95"; exit 1; }
    echo "$set: test_accuracy=$acc"
done
status=0
msg=$("$kiln" train examples/models/fashion_mlp.kiln --data "$tmp/bad.npz" --quiet 2>&1) || status=$?
want="kiln: $tmp/bad.npz[x_train, y_train]: expected images (u8 or f32, [N, ...]) and as many labels (u8, i32 or i64, [N]); got 3000 images and 10 labels"
[ "$status" = 1 ] && [ "$msg" = "$want" ] || { echo "FAIL: bad.npz: status $status, '$msg'"; exit 1; }
echo "bad.npz refused: $msg"
