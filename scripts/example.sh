#!/usr/bin/env bash
# Runs the bundled example models (examples/models) on a batch of four 28x28 images and
# prints their outputs and timings.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/kiln ] || cmake --build build
out=$(mktemp -d)
for model in mlp cnn; do
    echo "== $model =="
    build/kiln check examples/models/$model.kiln
    build/kiln run examples/models/$model.kiln --input image=examples/models/images.npy \
        --output-dir "$out/$model" --time
    if command -v /usr/bin/python3 >/dev/null && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
        /usr/bin/python3 -c "import numpy as np; p = np.load('$out/$model/probs.npy'); \
print('predicted classes:', p.argmax(axis=1).tolist(), ' max probability:', [round(float(v), 3) for v in p.max(axis=1)])"
    fi
done
rm -rf "$out"
