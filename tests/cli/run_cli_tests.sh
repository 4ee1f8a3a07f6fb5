#!/usr/bin/env bash
# CLI behaviour of `kiln`: exit status 0 on success, 1 on a model or input error with one
# line on stderr naming the file and the place, 2 on usage errors; --help everywhere.
# usage: run_cli_tests.sh KILN_BINARY   (run from the repository's tests/ folder)
set -u
kiln=$1
models=../examples/models
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
passed=0 failed=0

# expect CODE PATTERN -- COMMAND...: the exit status is CODE and stderr (or stdout for
# code 0) matches the extended regex PATTERN; for model errors, stderr is exactly one
# line, except after --list (kiln check lists every problem, then a summary).
expect() {
    local code=$1 pattern=$2 one_line=yes
    [ "$3" = --list ] && one_line=no
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? text
    if [ "$code" = 0 ]; then text=$(cat "$tmp/out"); else text=$(cat "$tmp/err"); fi
    local lines
    lines=$(wc -l <"$tmp/err")
    if [ "$rc" = "$code" ] && grep -qE -- "$pattern" <<<"$text" && { [ "$code" != 1 ] || [ "$one_line" = no ] || [ "$lines" = 1 ]; }; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $* -> exit $rc (want $code), output:"
        sed 's/^/    /' "$tmp/err" "$tmp/out" | head -5
        echo "    wanted /$pattern/"
    fi
}

# make_npy FILE DESCR SHAPE NBYTES: a version-1.0 .npy with NBYTES zero data bytes
make_npy() {
    local dict="{'descr': '$2', 'fortran_order': False, 'shape': $3, }"
    local hlen=$(( ( (10 + ${#dict} + 1 + 63) / 64 ) * 64 - 10 ))
    { printf '\x93NUMPY\x01\x00'; printf "\\x$(printf %02x $((hlen & 255)))\\x$(printf %02x $((hlen >> 8)))"
      printf '%-*s\n' $((hlen - 1)) "$dict"; head -c "$4" /dev/zero; } >"$1"
}

# success paths
expect 0 'logits -> .*/logits.npy' -- "$kiln" run $models/mlp.kiln --input image=$models/images.npy --output-dir "$tmp/o"
expect 0 'probs -> .*/probs.npy' -- "$kiln" run $models/cnn.kiln --input image=$models/images.npy --output-dir "$tmp/o2/nested"
expect 0 'ok: graph .cnn., 1 inputs, 14 initializers, 12 nodes, 2 outputs' -- "$kiln" check $models/cnn.kiln
expect 0 '%probs: f32\[N, 10\] = Softmax' -- "$kiln" dump $models/mlp.kiln --after shape
expect 0 'graph mlp \{' -- "$kiln" dump $models/mlp.kiln
for cmd in "" run dump check; do
    expect 0 'usage: kiln' -- "$kiln" $cmd --help
done

torch=models/torch/mlp_opset13
expect 0 'output_0 -> ' -- "$kiln" run $torch/model.onnx --input input_0=$torch/test_data_set_0/input_0.pb --output-dir "$tmp/onnx"
expect 0 'ok: graph' -- "$kiln" check bad/onnx/ok_relu.onnx

# model errors: exit 1, one line naming the file and the place
expect 1 'bad/onnx/truncated.onnx: not a valid ONNX model \(ModelProto field 7 \(graph\): its length runs past the end' -- "$kiln" run bad/onnx/truncated.onnx
expect 1 "bad/onnx/external_symlink.onnx: initializer 'w': external data 'escape.bin' leads outside the model's folder" -- "$kiln" dump bad/onnx/external_symlink.onnx
expect 1 'truncated.onnx.pb: not a valid ONNX TensorProto' -- "$kiln" run bad/onnx/ok_relu.onnx --input x=bad/onnx/truncated.onnx.pb
expect 1 'bad/syntax.kiln:4:15: expected .,., found a value' -- "$kiln" run bad/syntax.kiln --input x=x.npy
expect 1 'bad/unknown_op.kiln:3:8: unknown op .Relux.' -- "$kiln" run bad/unknown_op.kiln
expect 1 'bad/arity.kiln:3:8: MatMul expects 2..2 inputs, got 1' --list "$kiln" check bad/arity.kiln
expect 1 "bad/shape_mismatch.kiln:4:3: node 'y' \(MatMul\): inner dimensions differ: 3 vs 4" -- "$kiln" run bad/shape_mismatch.kiln
expect 1 "bad/shape_mismatch.kiln:4:3: node 'y' \(MatMul\): inner dimensions differ" --list "$kiln" check bad/shape_mismatch.kiln
expect 1 "bad/attr_kind.kiln:3:30: attribute 'perm': expected a list" -- "$kiln" dump bad/attr_kind.kiln
expect 1 "bad/escape.kiln:2:26: file '../../etc/passwd.npy' is outside the model's folder" -- "$kiln" run bad/escape.kiln
expect 1 'bad/absent.kiln: cannot open: No such file or directory' -- "$kiln" run bad/absent.kiln
expect 1 'model.tflite: unknown model format \(expected .kiln or .onnx\)' -- "$kiln" run model.tflite

# input errors
expect 1 "$tmp/nope.npy: cannot open" -- "$kiln" run $models/mlp.kiln --input image="$tmp/nope.npy"
expect 1 "mlp.kiln: input 'image' was not given" -- "$kiln" run $models/mlp.kiln
expect 1 "mlp.kiln: the model has no input named 'label'" -- "$kiln" run $models/mlp.kiln --input label=$models/images.npy
expect 1 'unsupported input file format \(expected .npy or .pb\)' -- "$kiln" run $models/mlp.kiln --input image=$models/mlp.kiln
make_npy "$tmp/int.npy" '<i8' '(1, 1, 28, 28)' 6272
expect 1 "mlp.kiln: input 'image': expected f32\[N, 1, 28, 28\], got i64\[1, 1, 28, 28\]" -- "$kiln" run $models/mlp.kiln --input image="$tmp/int.npy"
make_npy "$tmp/shape.npy" '<f4' '(2, 1, 27, 28)' 6048
expect 1 "input 'image': expected f32\[N, 1, 28, 28\], got f32\[2, 1, 27, 28\]" -- "$kiln" run $models/mlp.kiln --input image="$tmp/shape.npy"
head -c 1000 $models/images.npy >"$tmp/truncated.npy"
expect 1 "truncated.npy: npy data has 872 bytes, the shape needs 12544" -- "$kiln" run $models/mlp.kiln --input image="$tmp/truncated.npy"
make_npy "$tmp/complex.npy" '<c8' '(2,)' 16
expect 1 "complex.npy: unsupported npy dtype '<c8'" -- "$kiln" run $models/mlp.kiln --input image="$tmp/complex.npy"

expect 0 "mlp.kiln -> $tmp/lib/libmlp.so" -- "$kiln" compile $models/mlp.kiln -o "$tmp/lib/libmlp.so" --batch 2
expect 0 "cnn.kiln -> $tmp/src/cnn" -- "$kiln" compile $models/cnn.kiln --emit c -o "$tmp/src"
expect 0 'define .*i32 @k0_Conv' -- "$kiln" dump models/torch/cnn_bn_opset13/model.onnx --llvm
expect 0 'kernel k0_Conv\(' -- "$kiln" dump models/torch/cnn_bn_opset13/model.onnx --loops
expect 0 'kernel k0_MatMul\(.*image: f32\[3136\]' -- "$kiln" dump $models/mlp.kiln --loops --batch 4
expect 0 'epilogue  Relu' -- "$kiln" dump $models/mlp.kiln --fusion --dot "$tmp/mlp.dot"
expect 0 'inlined   Flatten' -- "$kiln" dump $models/mlp.kiln --fusion
expect 0 'cluster_0' -- cat "$tmp/mlp.dot"
expect 0 'fusion is off' -- "$kiln" dump $models/mlp.kiln --fusion --no-fuse
expect 2 '--dot goes with --fusion' -- "$kiln" dump $models/mlp.kiln --dot "$tmp/x.dot"
expect 0 'output_0 -> ' -- "$kiln" run $torch/model.onnx --input input_0=$torch/test_data_set_0/input_0.pb --output-dir "$tmp/onnx-jit" --backend jit
lstm=models/torch/lstm_opset13
expect 0 'output_1 -> ' -- "$kiln" run $lstm/model.onnx --input input_0=$lstm/test_data_set_0/input_0.pb --output-dir "$tmp/lstm"
# a shape computed at run time (the default backend, the JIT, compiles static shapes only)
cat >"$tmp/dyn.kiln" <<'KILN'
graph g {
  input %x: f32[2, 3]
  input %s: i64[2]
  %t = Add(%s, %s)
  %y = Reshape(%x, %t)
  output %y
}
KILN
make_npy "$tmp/x.npy" '<f4' '(2, 3)' 24
make_npy "$tmp/s.npy" '<i8' '(2,)' 16
expect 1 "dyn.kiln:5:3: node 'y' \\(Reshape\\): output 'y' has no static shape" -- "$kiln" run "$tmp/dyn.kiln" --input x="$tmp/x.npy" --input s="$tmp/s.npy"
expect 0 'y -> ' -- "$kiln" run "$tmp/dyn.kiln" --input x="$tmp/x.npy" --input s="$tmp/s.npy" --backend interp --output-dir "$tmp"

expect 0 'fusion: [0-9]+ -> [0-9]+ kernels, .*same outputs' -- "$kiln" bench $models/cnn.kiln --input image=$models/images.npy --batch 4 --compare unfused --iterations 3 --warmup 1
expect 0 '"speedup": ' -- "$kiln" bench $models/mlp.kiln --compare unfused --iterations 2 --json
expect 0 'k0_MatMul' -- "$kiln" bench $models/mlp.kiln --iterations 2 --profile --trace "$tmp/trace.json"
expect 0 '"traceEvents"' -- cat "$tmp/trace.json"
# kiln tune: writes a file that run, bench and compile follow (which choices it keeps is
# the machine's business: only the summary and the file's header are checked)
expect 0 'choices? -> .*cnn.tune; median [0-9.]+ ms with the cost rules' -- "$kiln" tune $models/cnn.kiln --input image=$models/images.npy --batch 4 --threads 2 --iterations 3 -o "$tmp/cnn.tune"
expect 0 '^# kiln tune .*cnn.kiln, 2 threads' -- head -1 "$tmp/cnn.tune"
echo "conv winograd c2  # Winograd where the cost rule says direct (8 input channels)" >>"$tmp/cnn.tune"
expect 0 'probs -> ' -- "$kiln" run $models/cnn.kiln --input image=$models/images.npy --output-dir "$tmp/tuned" --tuning "$tmp/cnn.tune"
expect 0 'fused: ' -- "$kiln" bench $models/cnn.kiln --batch 4 --iterations 1 --tuning "$tmp/cnn.tune"
expect 0 'libtuned.so' -- "$kiln" compile $models/cnn.kiln -o "$tmp/lib/libtuned.so" --tuning "$tmp/cnn.tune"
printf 'conv direct a\nconv fast b\n' >"$tmp/bad.tune"
expect 1 "bad.tune:2: conv takes direct or winograd, not 'fast'" -- "$kiln" run $models/cnn.kiln --input image=$models/images.npy --tuning "$tmp/bad.tune"
expect 1 'nope.tune: ' -- "$kiln" compile $models/cnn.kiln -o "$tmp/lib/libx.so" --tuning "$tmp/nope.tune"
expect 2 'missing -o FILE' -- "$kiln" tune $models/cnn.kiln
expect 0 'usage: kiln tune' -- "$kiln" tune --help
expect 1 "the model has no input named 'nope'" -- "$kiln" bench $models/mlp.kiln --input nope=$models/images.npy
expect 2 "--compare takes 'unfused'" -- "$kiln" bench $models/mlp.kiln --compare fused
expect 2 '--iterations needs a count' -- "$kiln" bench $models/mlp.kiln --iterations 0

expect 1 "value 'image': 784 elements of f32 are over the memory cap of 1024 bytes" -- "$kiln" run $models/mlp.kiln --input image=$models/images.npy --max-memory 1K --backend interp
expect 1 "arena needs [0-9]+ bytes, above the memory cap of 122880" -- "$kiln" bench $models/cnn.kiln --batch 4 --max-memory 120K --iterations 1
expect 0 'fused: ' -- "$kiln" bench $models/cnn.kiln --batch 4 --max-memory 64M --iterations 1
expect 2 '--max-memory needs a size such as' -- "$kiln" run $models/mlp.kiln --max-memory lots

# usage errors: exit 2
expect 0 'C backend: first run' -- "$kiln" run $models/mlp.kiln --input image=$models/images.npy --output-dir "$tmp/c" --backend c --time
expect 2 "unknown backend 'gpu'" -- "$kiln" run $models/mlp.kiln --backend gpu
expect 2 "missing -o OUT" -- "$kiln" compile $models/mlp.kiln
expect 2 "unknown --emit kind 'wasm'" -- "$kiln" compile $models/mlp.kiln -o x.so --emit wasm
expect 2 "unknown command 'frobnicate'" -- "$kiln" frobnicate
expect 2 "unknown flag '--inptu'" -- "$kiln" run $models/mlp.kiln --inptu x=y.npy
expect 2 "--input expects NAME=FILE, got 'image'" -- "$kiln" run $models/mlp.kiln --input image
expect 2 'missing MODEL' -- "$kiln" run
expect 2 "unknown pass 'fuse'" -- "$kiln" dump $models/mlp.kiln --after fuse
expect 2 'usage: kiln COMMAND' -- "$kiln"

echo "cli: $passed passed, $failed failed"
[ "$failed" = 0 ]
