#!/usr/bin/env bash
# Exports torchvision's ResNet-18 (random weights, batch-norm statistics randomized) at
# opsets 13 and 17 with Debian's python3-torch and checks kiln against PyTorch's output at
# rtol 1e-4, atol 1e-5: the reference interpreter and the LLVM JIT (onnx_conformance), and
# libresnet18.so built ahead of time by LLVM and by the C backend (run_library). Not part
# of ctest: it needs PyTorch and takes a few minutes on the 2-core development machine.
# usage: tests/models/check_resnet18.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 tests/models/export_torch.py --resnet18 "$out" >/dev/null 2>&1
printf 'resnet18_opset13\nresnet18_opset17\n' >"$out/scope.txt"
for backend in interp jit; do
    echo "== $backend =="
    "$build/tests/onnx_conformance" "$out/scope.txt" "$out" /dev/null --rtol 1e-4 --atol 1e-5 --backend $backend | tail -1
done
for backend in llvm c; do
    echo "== libresnet18.so, kernels by $backend =="
    start=$(date +%s.%N)
    "$build/kiln" compile "$out/resnet18_opset13/model.onnx" -o "$out/$backend/libresnet18.so" --backend $backend
    echo "compiled in $(echo "$(date +%s.%N) - $start" | bc) s"
    ldd "$out/$backend/libresnet18.so" | awk '{print "  needs " $1}'
    "$build/tests/run_library" "$out/$backend/libresnet18.so" resnet18 "$out/resnet18_opset13"
done
