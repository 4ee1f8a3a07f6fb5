#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz: the ONNX importer through shape inference, the
# .kiln parser, the .npy and .npz readers) with clang-19, ASan and UBSan in build-fuzz/, seeds their
# corpora from the project's models and the ONNX test data, and runs each one.
#   scripts/fuzz.sh [SECONDS [LIBFUZZER FLAGS...]]   (default 60 s per target, random seed)
#   scripts/fuzz.sh --ci    a fixed seed and a fixed number of runs per target, from fresh
#                           seed corpora: the same inputs on every machine (about a minute
#                           each here), so CI fails only on what a developer can reproduce
# Every allocation over 128 MiB counts as a failure (-malloc_limit_mb): the targets set
# kiln's memory cap to 64 MiB, so none may get past it. Exits nonzero on any finding.
set -euo pipefail
cd "$(dirname "$0")/.."
ci=false
[ "${1:-}" = --ci ] && { ci=true; shift; }
secs=${1:-60}
shift || true
cmake -S . -B build-fuzz -G Ninja -DCMAKE_C_COMPILER=clang-19 -DKILN_FUZZ=ON -DKILN_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz --target fuzz_onnx fuzz_kiln fuzz_npy fuzz_npz >/dev/null
corpus=build-fuzz/corpus
$ci && { corpus=build-fuzz/corpus-ci; rm -rf "$corpus"; }
mkdir -p "$corpus/onnx" "$corpus/kiln" "$corpus/npy" "$corpus/npz"
i=0
for f in tests/models/torch/*/model.onnx tests/models/opsets/*/model.onnx tests/bad/onnx/*.onnx \
         $(find /usr/include/onnx/backend/test/data/node -name model.onnx 2>/dev/null | sort | head -400); do
    cp "$f" "$corpus/onnx/seed$((i++)).onnx"
done
for f in examples/models/*.kiln tests/bad/*.kiln; do cp "$f" "$corpus/kiln/"; done
for f in examples/models/*.npy; do cp "$f" "$corpus/npy/"; done
for f in tests/fuzz/seeds/*.npz; do cp "$f" "$corpus/npz/"; done
export ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
declare -A ci_runs=([onnx]=2000000 [kiln]=3000000 [npy]=10000000 [npz]=5000000)
for target in onnx kiln npy npz; do
    limit=(-max_total_time="$secs")
    $ci && limit=(-seed=20261124 -runs="${ci_runs[$target]}")
    dict=()
    [ -f "tests/fuzz/$target.dict" ] && dict=(-dict="tests/fuzz/$target.dict")
    echo "== fuzz_$target, ${limit[*]} =="
    log=build-fuzz/fuzz_$target.log
    status=0
    build-fuzz/fuzz_$target "${limit[@]}" -timeout=1 -rss_limit_mb=2048 -malloc_limit_mb=128 \
        -print_final_stats=1 -artifact_prefix=build-fuzz/ "${dict[@]}" "$@" "$corpus/$target" >"$log" 2>&1 || status=$?
    grep -E "^Done|^stat::number_of_executed_units|^stat::peak_rss" "$log" || true
    if [ "$status" != 0 ]; then
        grep -E -A12 "ERROR|runtime error|SUMMARY" "$log" | head -40
        echo "fuzz_$target: a finding (exit $status; the input is in build-fuzz/, the log in $log)"
        exit 1
    fi
done
