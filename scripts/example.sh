#!/usr/bin/env bash
# Runs the bundled example models (examples/models) on a batch of four 28x28 images:
# each one on the reference interpreter and compiled by LLVM (JIT) with their timings,
# then compiled fused and unfused (kiln bench --compare unfused: same outputs, both timed);
# then the CNN through examples/jit_host.c (kiln.h), and compiled ahead of time into
# libcnn.so and called from examples/cnn_host.c, which includes only the emitted cnn.h.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x build/kiln ] || cmake --build build
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
predict() {
    if /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
        /usr/bin/python3 -c "import numpy as np; p = np.load('$1'); \
print('  predicted classes:', p.argmax(axis=1).tolist(), ' max probability:', [round(float(v), 3) for v in p.max(axis=1)])"
    fi
}
for model in mlp cnn; do
    echo "== $model =="
    build/kiln check examples/models/$model.kiln
    for backend in interp jit; do
        build/kiln run examples/models/$model.kiln --input image=examples/models/images.npy \
            --output-dir "$out/$model-$backend" --backend $backend --time | grep 'first run'
        predict "$out/$model-$backend/probs.npy"
    done
done
echo "(the JIT's first run includes compiling)"
for model in mlp cnn; do
    echo "== $model: fused against unfused (kiln bench) =="
    build/kiln bench examples/models/$model.kiln --input image=examples/models/images.npy --batch 4 --compare unfused \
        --iterations 200
done
echo "== examples/jit_host.c: the CNN compiled in-process through kiln.h =="
build/jit_host examples/models/cnn.kiln examples/models/images.npy
echo "== cnn as a shared library =="
build/kiln compile examples/models/cnn.kiln -o "$out/lib/libcnn.so" --batch 4
cc -O2 -I"$out/lib" examples/cnn_host.c -L"$out/lib" -lcnn -o "$out/cnn_host"
LD_LIBRARY_PATH="$out/lib" "$out/cnn_host" examples/models/images.npy
