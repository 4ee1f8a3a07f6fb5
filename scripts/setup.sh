#!/usr/bin/env bash
# Installs what kiln needs on Debian 12 and builds it in build/.
set -euo pipefail
cd "$(dirname "$0")/.."
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
    build-essential cmake ninja-build libcmocka-dev zlib1g-dev python3-numpy \
    libprotobuf-c-dev protobuf-c-compiler libonnx-dev libonnx-testdata llvm-19-dev \
    clang-19 libclang-rt-19-dev libomp-19-dev strace dataset-fashion-mnist >/dev/null
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo
cmake --build build
