#!/usr/bin/env bash
# Exports torchvision's ResNet-18 (random weights, batch-norm statistics randomized) at
# opsets 13 and 17 with Debian's python3-torch and checks kiln's reference interpreter
# against PyTorch's output at rtol 1e-4, atol 1e-5. Not part of ctest: it needs PyTorch
# and takes about a minute and a half on the 2-core development machine.
# usage: tests/models/check_resnet18.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
/usr/bin/python3 tests/models/export_torch.py --resnet18 "$out" >/dev/null 2>&1
printf 'resnet18_opset13\nresnet18_opset17\n' >"$out/scope.txt"
"$build/tests/onnx_conformance" "$out/scope.txt" "$out" /dev/null --rtol 1e-4 --atol 1e-5
