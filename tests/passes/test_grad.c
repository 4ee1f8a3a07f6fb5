/*
 * test_grad.c — every gradient rule against finite differences, in f64.
 *
 * Each case is a small graph ending in %y; the test adds loss = sum(y * r) for a fixed
 * random r (so every element of y matters, each with its own weight), appends the
 * backward pass with autodiff, runs it on the reference interpreter, and compares each
 * float input's gradient with the central difference (loss(x + h) - loss(x - h)) / 2h,
 * h = 1e-6, element by element; and the backward graph compiled by the JIT against the
 * interpreter (check_jit). Stated tolerance: |analytic - numeric| <= 1e-7 + 1e-5 *
 * |numeric| (the difference's own error is about h^2 |f'''| + 1e-16 / h, near 1e-10 here).
 * Inputs are random in [-1, 1] (kept away from 0 where a rule has a kink), or in
 * [0.5, 2] for the cases marked positive; integer inputs (labels) are j % classes.
 */
#include "../test_util.h"

#include "backend/interp/interp.h"
#include "driver/model.h"
#include "passes/autodiff.h"
#include "passes/pass.h"
#include "ir/print.h"
#include "ir/verify.h"

#include <math.h>
#include <stdlib.h>

typedef struct grad_case {
    const char *decls, *body;
    bool positive;   /* inputs in [0.5, 2] */
    int classes;     /* integer inputs: j % classes */
} grad_case;

static const grad_case cases[] = {
    {"input %a: f64[3, 4]\n  input %b: f64[4]", "%y = Add(%a, %b)"},
    {"input %a: f64[3, 1]\n  input %b: f64[2, 1, 4]", "%y = Sub(%a, %b)"},
    {"input %a: f64[3, 4]\n  input %b: f64[3, 1]", "%y = Mul(%a, %b)"},
    {"input %a: f64[2, 3]\n  input %b: f64[3]", "%y = Div(%a, %b)", true},
    {"input %a: f64[2, 3]\n  input %b: f64[3]\n  input %c: f64[2, 1]", "%y = Sum(%a, %b, %c)"},
    {"input %a: f64[5]", "%n = Neg(%a)\n  %y = Identity(%n)"},
    {"input %a: f64[4, 3]", "%y = Relu(%a)"},
    {"input %a: f64[4, 3]", "%y = LeakyRelu(%a) {alpha = 0.2}"},
    {"input %a: f64[4, 3]", "%y = Sigmoid(%a)"},
    {"input %a: f64[4, 3]", "%y = Tanh(%a)"},
    {"input %a: f64[4, 3]", "%y = Exp(%a)"},
    {"input %a: f64[4, 3]", "%y = Log(%a)", true},
    {"input %a: f64[4, 3]", "%y = Sqrt(%a)", true},
    {"input %a: f64[4, 3]", "%y = Reciprocal(%a)", true},
    {"input %a: f64[4, 3]", "%y = Abs(%a)"},
    {"input %a: f64[3, 4]\n  input %b: f64[4, 5]", "%y = MatMul(%a, %b)"},
    {"input %a: f64[2, 3, 4]\n  input %b: f64[4, 5]", "%y = MatMul(%a, %b)"},
    {"input %a: f64[2, 1, 3, 4]\n  input %b: f64[3, 4, 2]", "%y = MatMul(%a, %b)"},
    {"input %a: f64[3, 4]\n  input %b: f64[4, 5]\n  input %c: f64[5]", "%y = Gemm(%a, %b, %c) {alpha = 0.5, beta = 2.0}"},
    {"input %a: f64[4, 3]\n  input %b: f64[4, 5]\n  input %c: f64[3, 1]", "%y = Gemm(%a, %b, %c) {transA = 1}"},
    {"input %a: f64[3, 4]\n  input %b: f64[5, 4]", "%y = Gemm(%a, %b) {transB = 1}"},
    {"input %a: f64[4, 3]\n  input %b: f64[5, 4]\n  input %c: f64[3, 5]", "%y = Gemm(%a, %b, %c) {transA = 1, transB = 1}"},
    {"input %a: f64[2, 3, 4]\n  const %s: i64[2] = [4, 6]", "%y = Reshape(%a, %s)"},
    {"input %a: f64[2, 3, 4]", "%y = Flatten(%a) {axis = 2}"},
    {"input %a: f64[2, 3, 4]", "%y = Transpose(%a) {perm = [2, 0, 1]}"},
    {"input %a: f64[2, 3, 4]", "%y = Transpose(%a)"},
    {"input %a: f64[2, 3, 4]", "%y = ReduceSum(%a) {axes = [0, 2], keepdims = 0}"},
    {"input %a: f64[2, 3, 4]", "%y = ReduceMean(%a) {axes = [1], keepdims = 1}"},
    {"input %a: f64[2, 3, 4]", "%y = ReduceSum(%a) {keepdims = 0}"},
    {"input %a: f64[3, 5]", "%y = Softmax(%a) {axis = 1}"},
    {"input %a: f64[2, 3, 4]", "%y = Softmax(%a) {axis = 0}"},
    {"input %a: f64[3, 5]", "%y = LogSoftmax(%a) {axis = -1}"},
    {"input %a: f64[4, 3]\n  input %l: i64[4]", "%y = SoftmaxCrossEntropyLoss(%a, %l)", false, 3},
    {"input %a: f64[4, 3]\n  input %l: i64[4]", "%y = SoftmaxCrossEntropyLoss(%a, %l) {reduction = \"sum\"}", false, 3},
    {"input %a: f64[2, 3, 6, 5]\n  input %w: f64[4, 3, 3, 3]\n  input %b: f64[4]",
     "%y = Conv(%a, %w, %b) {pads = [1, 1, 1, 1]}"},
    {"input %a: f64[2, 2, 9, 8]\n  input %w: f64[3, 2, 3, 2]",
     "%y = Conv(%a, %w) {strides = [2, 3], dilations = [2, 1], pads = [0, 1, 2, 0]}"},
    {"input %a: f64[1, 2, 7]\n  input %w: f64[3, 2, 3]", "%y = Conv(%a, %w) {strides = [2]}"},
    {"input %a: f64[2, 2, 7, 6]\n  input %w: f64[3, 2, 3, 2]",
     "%y = Conv(%a, %w) {dilations = [2, 1], pads = [2, 0, 1, 1]}"},
    /* 25 taps: the weight gradient as a Conv rather than one MatMul per tap */
    {"input %a: f64[1, 2, 7, 7]\n  input %w: f64[2, 2, 5, 5]", "%y = Conv(%a, %w) {pads = [1, 2, 2, 1], strides = [2, 1]}"},
    {"input %a: f64[2, 3, 4, 6]", "%y = MaxPool(%a) {kernel_shape = [2, 2], strides = [2, 2]}"},
    {"input %a: f64[2, 3, 4, 5]", "%y = GlobalAveragePool(%a)"},
    {"input %a: f64[3, 2, 4, 3]\n  input %s: f64[2]\n  input %b: f64[2]\n  const %m: f64[2] = [0.1, -0.2]\n"
     "  const %v: f64[2] = [0.5, 2]", "%y = BatchNormalization(%a, %s, %b, %m, %v) {training_mode = 1}"},
    {"input %a: f64[3, 2, 4, 3]\n  input %s: f64[2]\n  input %b: f64[2]\n  const %m: f64[2] = [0.1, -0.2]\n"
     "  const %v: f64[2] = [0.5, 2]", "%y = BatchNormalization(%a, %s, %b, %m, %v) {epsilon = 0.01}"},
    {"input %a: f64[2, 3]\n  input %b: f64[3]", "%y = Pow(%a, %b)", true},
    {"input %c: bool[2, 3]\n  input %a: f64[2, 3]\n  input %b: f64[3]", "%y = Where(%c, %a, %b)"},
    {"input %a: f64[2, 3]\n  input %b: f64[3]\n  input %c: f64[2, 1]", "%y = Max(%a, %b, %c)"},
    {"input %a: f64[2, 3]\n  input %b: f64[3]", "%y = Min(%a, %b)"},
    {"input %a: f64[2, 3]\n  input %b: f64[3]", "%y = Mean(%a, %b)"},
    {"input %a: f64[3, 4]\n  const %lo: f64[] = [-0.5]\n  const %hi: f64[] = [0.6]", "%y = Clip(%a, %lo, %hi)"},
    /* (a round trip through f32 would quantize the finite difference itself) */
    {"input %a: f64[3, 4]", "%y = Cast(%a) {to = \"f64\"}"},
    {"input %a: f64[3, 4]", "%y = Elu(%a) {alpha = 0.7}"},
    {"input %a: f64[3, 4]", "%y = Selu(%a)"},
    {"input %a: f64[3, 4]", "%y = Celu(%a) {alpha = 1.5}"},
    {"input %a: f64[3, 4]", "%y = Softplus(%a)"},
    {"input %a: f64[3, 4]", "%y = Softsign(%a)"},
    {"input %a: f64[3, 4]", "%y = HardSigmoid(%a) {alpha = 0.4}"},
    {"input %a: f64[3, 4]", "%y = Erf(%a)"},
    {"input %a: f64[3, 4]", "%y = Gelu(%a)"},
    {"input %a: f64[2, 3, 4]\n  input %s: f64[3, 1]", "%y = PRelu(%a, %s)"},
    {"input %a: f64[3, 4]", "%y = Dropout(%a)"},
    {"input %a: f64[3, 1]\n  const %s: i64[3] = [2, 3, 4]", "%y = Expand(%a, %s)"},
    {"input %a: f64[2, 3]\n  input %b: f64[2, 1]\n  input %c: f64[2, 2]", "%y = Concat(%a, %b, %c) {axis = -1}"},
    {"input %a: f64[2, 3]\n  const %p: i64[4] = [1, 0, 2, 3]", "%y = Pad(%a, %p)"},
    {"input %a: f64[3, 4]\n  const %k: f64[3, 4] = [-4, -3.5, -2, -1, 0.5, 1, 2, 2.5, 3.5, 4, -0.5, 1.5]",
     "%s = Mul(%a, %k)\n  %y = HardSwish(%s)"},
    {"input %a: f64[3, 4]", "%y = Silu(%a)"},
    {"input %a: f64[3, 4]", "%y = Mish(%a)"},
    {"input %a: f64[2, 3, 4]", "%y = ReduceSumSquare(%a) {axes = [1], keepdims = 0}"},
    {"input %a: f64[2, 3, 4]", "%y = ReduceL2(%a) {axes = [0, 2], keepdims = 1}"},
    {"input %a: f64[2, 3, 4]", "%y = ReduceMax(%a) {axes = [2], keepdims = 0}"},
    {"input %a: f64[2, 3, 4]", "%y = ReduceMin(%a) {keepdims = 1}"},
    {"input %a: f64[2, 3, 4, 2]", "%y = GlobalMaxPool(%a)"},
    {"input %a: f64[2, 3, 4, 6]", "%y = AveragePool(%a) {kernel_shape = [2, 3], strides = [2, 3]}"},
    {"input %a: f64[3, 5, 4]\n  const %s: i64[2] = [1, -3]\n  const %e: i64[2] = [3, 100]\n  const %x: i64[2] = [0, 1]",
     "%y = Slice(%a, %s, %e, %x)"},
    {"input %a: f64[2, 3, 4]\n  input %g: f64[4]\n  input %b: f64[4]", "%y = LayerNormalization(%a, %g, %b)"},
    {"input %a: f64[2, 3, 4]\n  input %g: f64[3, 4]", "%y = LayerNormalization(%a, %g) {axis = 1, epsilon = 0.001}"},
    {"input %a: f64[2, 6]\n  const %s: i64[3] = [1, 3, 2]",
     "%p, %q, %r = Split(%a, %s) {axis = 1}\n  %t = Mul(%p, %r)\n  %y = Concat(%t, %q) {axis = 1}"},
    {"input %a: f64[2, 3]\n  const %r: i64[2] = [3, 2]", "%y = Tile(%a, %r)"},
    {"input %a: f64[3, 4]\n  const %i: i64[2, 4] = [0, 2, 1, 2, 2, 0, 0, 1]", "%y = GatherElements(%a, %i)"},
    {"input %a: f64[3, 4]\n  const %i: i64[3, 2] = [0, 3, 1, 1, 3, 0]", "%y = GatherElements(%a, %i) {axis = 1}"},
    {"input %a: f64[5, 3]\n  const %i: i64[2, 2] = [4, 0, 0, 2]", "%y = Gather(%a, %i)"},
    {"input %a: f64[2, 5, 3]\n  const %i: i64[4] = [1, 4, 1, -1]", "%y = Gather(%a, %i) {axis = 1}"},
    {"input %a: f64[2, 1, 3]\n  const %x: i64[1] = [1]\n  const %z: i64[2] = [0, 3]",
     "%s = Squeeze(%a, %x)\n  %y = Unsqueeze(%s, %z)"},
    {"input %a: f64[3, 4]", "%y = Gelu(%a) {approximate = \"tanh\"}"},
    {"input %a: f64[4]\n  input %b: f64[4, 3]", "%y = MatMul(%a, %b)"},
    {"input %a: f64[2, 3, 4]\n  input %b: f64[4]", "%y = MatMul(%a, %b)"},
    {"input %a: f64[4]\n  input %b: f64[4]", "%y = MatMul(%a, %b)"},
    {"input %a: f64[3, 4]\n  input %lo: f64[]\n  input %hi: f64[]", "%y = Clip(%a, %lo, %hi)"},
    {"input %a: f64[3, 4]\n  input %hi: f64[]", "%y = Clip(%a, _, %hi)"},
    {"input %a: f64[3, 4]\n  const %p: i64[4] = [1, 2, 2, 3]", "%y = Pad(%a, %p) {mode = \"reflect\"}"},
    {"input %a: f64[2, 3]\n  const %p: i64[4] = [2, 1, 1, 2]", "%y = Pad(%a, %p) {mode = \"edge\"}"},
    {"input %a: f64[2, 3]\n  const %p: i64[4] = [1, 4, 0, 2]", "%y = Pad(%a, %p) {mode = \"wrap\"}"},
    {"input %a: f64[3, 4]\n  const %p: i64[4] = [-1, 2, 1, -2]\n  const %v: f64[] = [0.5]", "%y = Pad(%a, %p, %v)"},
    {"input %a: f64[2, 3, 4]\n  const %p: i64[2] = [1, 2]\n  const %x: i64[1] = [-1]", "%y = Pad(%a, %p, _, %x)"},
    {"input %a: f64[5, 6]\n  const %s: i64[2] = [4, 1]\n  const %e: i64[2] = [0, 6]\n  const %x: i64[2] = [0, 1]\n"
     "  const %t: i64[2] = [-2, 2]", "%y = Slice(%a, %s, %e, %x, %t)"},
    {"input %a: f64[7]\n  const %s: i64[1] = [-1]\n  const %e: i64[1] = [-100]\n  const %t: i64[1] = [-3]",
     "%y = Slice(%a, %s, %e, _, %t)"},
    {"input %a: f64[3, 4]", "%y = Sin(%a)"},
    {"input %a: f64[3, 4]", "%y = Cos(%a)"},
    {"input %a: f64[3, 4]", "%y = Tan(%a)"},
    {"input %a: f64[3, 4]", "%s = Mul(%a, %a)\n  %t = Sqrt(%s)\n  %h = Mul(%a, %t)\n  %y = Asin(%h)"},
    {"input %a: f64[3, 4]", "%h = Tanh(%a)\n  %y = Acos(%h)"},
    {"input %a: f64[3, 4]", "%y = Atan(%a)"},
    {"input %a: f64[3, 4]", "%y = Sinh(%a)"},
    {"input %a: f64[3, 4]", "%y = Cosh(%a)"},
    {"input %a: f64[3, 4]", "%y = Asinh(%a)"},
    {"input %a: f64[3, 4]\n  const %two: f64[] = [2]", "%b = Add(%a, %two)\n  %y = Acosh(%b)"},
    {"input %a: f64[3, 4]", "%h = Tanh(%a)\n  %y = Atanh(%h)"},
    {"input %a: f64[3, 4]", "%y = ThresholdedRelu(%a) {alpha = 0.3}"},
    {"input %a: f64[3, 4]", "%y = Shrink(%a) {lambd = 0.4, bias = 0.1}"},
    {"input %a: f64[3, 4]\n  const %b: f64[1] = [0]", "%y = CastLike(%a, %b)"},
    /* piecewise constant: zero gradient (inputs stay away from the steps) */
    {"input %a: f64[3, 4]", "%f = Floor(%a)\n  %c = Ceil(%a)\n  %r = Round(%a)\n  %s = Sign(%a)\n"
     "  %t = Sum(%f, %c, %r, %s)\n  %y = Mul(%t, %a)"},
    {"input %a: f64[4, 5]\n  const %s: i64[] = [11]", "%m = DropoutMask(%a, %s) {ratio = 0.5}\n  %y = Mul(%a, %m)"},
    {"input %a: f64[2, 3, 4]", "%y = ReduceProd(%a) {axes = [1], keepdims = 0}", true},
    /* zeros in the product: one in some rows, two in another */
    {"input %a: f64[3, 4]\n  const %k: f64[3, 4] = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1, 1, 1]",
     "%z = Mul(%a, %k)\n  %y = ReduceProd(%z) {axes = [1], keepdims = 1}"},
    {"input %a: f64[2, 3, 4]", "%y = ReduceL1(%a) {axes = [0, 2], keepdims = 0}"},
    {"input %a: f64[2, 3, 4]", "%y = ReduceLogSum(%a) {axes = [2], keepdims = 1}", true},
    {"input %a: f64[2, 3, 4]", "%y = ReduceLogSumExp(%a) {axes = [1], keepdims = 0}"},
    /* 16 input channels: the weight gradient as one product per tap (fewer: one im2col product) */
    {"input %a: f64[2, 16, 4, 3]\n  input %w: f64[3, 16, 2, 2]", "%y = Conv(%a, %w) {pads = [1, 0, 0, 1]}"},
    /* groups, strides, auto_pad */
    {"input %a: f64[2, 4, 5, 5]\n  input %w: f64[6, 2, 3, 3]\n  input %b: f64[6]",
     "%y = Conv(%a, %w, %b) {group = 2, pads = [1, 1, 1, 1]}"},
    {"input %a: f64[1, 3, 7, 6]\n  input %w: f64[3, 1, 3, 3]", "%y = Conv(%a, %w) {group = 3, strides = [2, 2], pads = [1, 0, 1, 1]}"},
    {"input %a: f64[1, 4, 6, 6]\n  input %w: f64[4, 2, 2, 3]", "%y = Conv(%a, %w) {group = 2, auto_pad = \"SAME_UPPER\", strides = [2, 1]}"},
    {"input %a: f64[1, 2, 5]\n  input %w: f64[4, 1, 5]", "%y = Conv(%a, %w) {group = 2, auto_pad = \"SAME_LOWER\", dilations = [2]}"},
    {"input %a: f64[1, 2, 3, 3]\n  input %w: f64[2, 3, 3, 3]\n  input %b: f64[3]",
     "%y = ConvTranspose(%a, %w, %b) {strides = [2, 2], pads = [1, 1, 1, 1], output_padding = [1, 1]}"},
    {"input %a: f64[2, 4, 3, 2]\n  input %w: f64[4, 1, 2, 2]", "%y = ConvTranspose(%a, %w) {group = 2, strides = [2, 1], dilations = [1, 2]}"},
    {"input %a: f64[1, 2, 4]\n  input %w: f64[2, 2, 5]", "%y = ConvTranspose(%a, %w) {pads = [2, 1]}"},
    {"input %a: f64[2, 2, 5, 5]", "%y = MaxPool(%a) {kernel_shape = [3, 3], strides = [2, 2], pads = [1, 1, 1, 1]}"},
    {"input %a: f64[1, 2, 6, 5]", "%y = MaxPool(%a) {kernel_shape = [2, 2], strides = [2, 2], ceil_mode = 1}"},
    {"input %a: f64[1, 2, 7]", "%y = MaxPool(%a) {kernel_shape = [2], dilations = [2], auto_pad = \"SAME_UPPER\"}"},
    {"input %a: f64[2, 2, 5, 5]", "%y = AveragePool(%a) {kernel_shape = [3, 3], strides = [2, 2], pads = [1, 1, 1, 1]}"},
    {"input %a: f64[1, 2, 5, 6]",
     "%y = AveragePool(%a) {kernel_shape = [3, 2], strides = [2, 2], pads = [1, 0, 0, 1], count_include_pad = 1}"},
    {"input %a: f64[1, 2, 6, 5]", "%y = AveragePool(%a) {kernel_shape = [2, 2], strides = [2, 2], ceil_mode = 1}"},
    {"input %a: f64[1, 1, 7]", "%y = AveragePool(%a) {kernel_shape = [2], strides = [3]}"},
    {"input %a: f64[2, 3, 4, 5]\n  input %s: f64[3]\n  input %b: f64[3]", "%y = InstanceNormalization(%a, %s, %b)"},
    {"input %a: f64[3, 5]", "%y = LpNormalization(%a) {axis = 1, p = 2}"},
    {"input %a: f64[3, 5]", "%y = LpNormalization(%a) {axis = 0, p = 1}"},
    {"input %a: f64[2, 3, 2, 4]", "%y = MeanVarianceNormalization(%a)"},
    {"input %a: f64[2, 3, 4]", "%y = MeanVarianceNormalization(%a) {axes = [2]}"},
    {"input %a: f64[2, 5, 3]", "%y = LRN(%a) {size = 3, alpha = 0.5, beta = 0.75, bias = 1.5}"},
    {"input %a: f64[1, 6, 2, 2]", "%y = LRN(%a) {size = 4, alpha = 0.3, beta = 0.6}"},
    {"input %a: f64[1, 2, 2, 2]\n  const %i: i64[1, 2, 2, 2] = [1, 6, 8, 15, 17, 22, 25, 31]",
     "%y = MaxUnpool(%a, %i) {kernel_shape = [2, 2], strides = [2, 2]}"},
    {"input %a: f64[1, 8, 2, 3]", "%y = DepthToSpace(%a) {blocksize = 2}"},
    {"input %a: f64[1, 8, 2, 3]", "%y = DepthToSpace(%a) {blocksize = 2, mode = \"CRD\"}"},
    {"input %a: f64[2, 2, 4, 6]", "%y = SpaceToDepth(%a) {blocksize = 2}"},
    {"input %a: f64[3, 4, 2]\n  const %i: i64[2, 2] = [0, 1, 2, 3]", "%y = GatherND(%a, %i)"},
    {"input %a: f64[3, 4, 2]\n  const %i: i64[2, 1] = [1, 1]", "%y = GatherND(%a, %i)"},
    {"input %a: f64[2, 3, 4]\n  const %i: i64[2, 2, 1] = [0, 2, 1, 1]", "%y = GatherND(%a, %i) {batch_dims = 1}"},
    {"input %a: f64[4, 3]\n  const %i: i64[2, 1] = [1, 3]\n  input %u: f64[2, 3]", "%y = ScatterND(%a, %i, %u)"},
    {"input %a: f64[4, 3]\n  const %i: i64[3, 1] = [1, 3, 1]\n  input %u: f64[3, 3]",
     "%y = ScatterND(%a, %i, %u) {reduction = \"add\"}"},
    {"input %a: f64[3, 4]\n  const %i: i64[2, 2] = [1, 3, 0, 2]\n  input %u: f64[2, 2]",
     "%y = ScatterElements(%a, %i, %u) {axis = 1}"},
    {"input %a: f64[3, 4]\n  const %i: i64[2, 4] = [1, 0, 2, 1, 1, 2, 2, 0]\n  input %u: f64[2, 4]",
     "%y = ScatterElements(%a, %i, %u) {reduction = \"add\"}"},
    {"input %a: f64[3, 5]\n  const %k: i64[1] = [2]", "%v, %i = TopK(%a, %k) {axis = 1}\n  %y = Identity(%v)"},
    {"input %a: f64[3, 5]\n  const %k: i64[1] = [2]", "%v, %i = TopK(%a, %k) {axis = 0, largest = 0}\n  %y = Identity(%v)"},
    {"input %a: f64[3, 4]\n  const %c: bool[4] = [1, 0, 1, 1]", "%y = Compress(%a, %c) {axis = 1}"},
    {"input %a: f64[2, 3]\n  const %c: bool[5] = [0, 1, 1, 0, 1]", "%y = Compress(%a, %c)"},
    {"input %a: f64[4, 4]\n  const %k: i64[] = [1]", "%y = Trilu(%a, %k) {upper = 0}"},
    {"input %a: f64[3, 4]", "%y = Trilu(%a)"},
    {"input %a: f64[4, 2, 3]\n  const %l: i64[2] = [3, 1]", "%y = ReverseSequence(%a, %l)"},
    {"input %a: f64[3, 4]\n  const %x: i64[] = [1]", "%y = CumSum(%a, %x)"},
    {"input %a: f64[3, 4]\n  const %x: i64[] = [0]", "%y = CumSum(%a, %x) {exclusive = 1, reverse = 1}"},
    {"input %a: f64[3, 4]\n  input %b: f64[4, 5]", "%y = Einsum(%a, %b) {equation = \"ij,jk->ik\"}"},
    {"input %a: f64[2, 3, 4]\n  input %b: f64[2, 4, 2]", "%y = Einsum(%a, %b) {equation = \"bij,bjk->bki\"}"},
    {"input %a: f64[3, 4]", "%y = Einsum(%a) {equation = \"ij->i\"}"},
    {"input %a: f64[5]\n  input %b: f64[5]\n  input %c: f64[2, 3]", "%y = Einsum(%a, %b, %c) {equation = \"i,i,jk->kj\"}"},
    {"input %a: f64[2, 3, 4]\n  input %b: f64[4]", "%y = Einsum(%a, %b) {equation = \"...j,j->...\"}"},
    {"input %a: f64[4, 3]\n  input %l: i64[4]\n  input %w: f64[3]", "%y = NegativeLogLikelihoodLoss(%a, %l, %w)", false, 3},
    {"input %a: f64[4, 3]\n  input %l: i64[4]", "%y = NegativeLogLikelihoodLoss(%a, %l) {ignore_index = 1, reduction = \"sum\"}", false, 3},
    {"input %a: f64[2, 3, 2]\n  input %l: i64[2, 2]", "%y = NegativeLogLikelihoodLoss(%a, %l) {reduction = \"none\"}", false, 3},
    {"input %a: f64[4, 3]\n  input %l: i64[4]\n  input %w: f64[3]",
     "%y = SoftmaxCrossEntropyLoss(%a, %l, %w) {ignore_index = 2}", false, 3},
    {"input %a: f64[2, 3, 2]\n  input %l: i64[2, 2]", "%y = SoftmaxCrossEntropyLoss(%a, %l) {reduction = \"none\"}", false, 3},
    {"input %a: f64[4, 3]\n  input %l: i64[4]", "%z, %p = SoftmaxCrossEntropyLoss(%a, %l)\n  %e = Exp(%p)\n  %y = Mul(%e, %z)", false, 3},
    {"input %a: f64[1, 2, 3, 4]\n  const %s: f32[4] = [1, 1, 2, 1.5]", "%y = Resize(%a, _, %s) {mode = \"linear\"}"},
    {"input %a: f64[1, 1, 5, 6]\n  const %s: f32[4] = [1, 1, 0.6, 0.5]", "%y = Resize(%a, _, %s)"},
    {"input %a: f64[2, 4, 4]\n  const %s: f32[3] = [1, 1.5, 2]",
     "%y = Resize(%a, _, %s) {mode = \"cubic\", coordinate_transformation_mode = \"align_corners\"}"},
    {"input %a: f64[1, 4, 5]\n  const %s: f32[3] = [1, 1.25, 1.5]",
     "%y = Resize(%a, _, %s) {mode = \"cubic\", exclude_outside = 1, cubic_coeff_a = -0.5}"},
    {"input %a: f64[1, 1, 4, 4]\n  const %r: f32[8] = [0, 0, 0.2, 0.3, 1, 1, 1.3, 0.9]\n  const %z: i64[4] = [1, 1, 3, 3]",
     "%y = Resize(%a, %r, _, %z) {mode = \"linear\", coordinate_transformation_mode = \"tf_crop_and_resize\", extrapolation_value = 2.0}"},
    /* recurrent ops: every input, every output used */
    {"input %x: f64[3, 2, 3]\n  input %w: f64[1, 4, 3]\n  input %r: f64[1, 4, 4]\n  input %b: f64[1, 8]\n  input %h: f64[1, 2, 4]",
     "%s, %t = RNN(%x, %w, %r, %b, _, %h) {hidden_size = 4}\n  %u = ReduceSum(%t) {keepdims = 0}\n  %y = Mul(%s, %u)"},
    {"input %x: f64[4, 2, 3]\n  input %w: f64[2, 3, 3]\n  input %r: f64[2, 3, 3]\n  const %l: i32[2] = [4, 2]",
     "%y, %t = RNN(%x, %w, %r, _, %l) {hidden_size = 3, direction = \"bidirectional\", activations = [\"Relu\", \"Softsign\"]}"},
    {"input %x: f64[3, 2, 2]\n  input %w: f64[1, 9, 2]\n  input %r: f64[1, 9, 3]\n  input %b: f64[1, 18]",
     "%y, %t = GRU(%x, %w, %r, %b) {hidden_size = 3}"},
    {"input %x: f64[2, 3, 2]\n  input %w: f64[2, 9, 2]\n  input %r: f64[2, 9, 3]\n  input %b: f64[2, 18]\n  const %l: i32[2] = [3, 1]",
     "%s, %y = GRU(%x, %w, %r, %b, %l) {hidden_size = 3, direction = \"bidirectional\", linear_before_reset = 1, layout = 1}"},
    {"input %x: f64[3, 2, 2]\n  input %w: f64[1, 12, 2]\n  input %r: f64[1, 12, 3]\n  input %b: f64[1, 24]\n"
     "  input %h: f64[1, 2, 3]\n  input %c: f64[1, 2, 3]\n  input %p: f64[1, 9]",
     "%s, %t, %u = LSTM(%x, %w, %r, %b, _, %h, %c, %p) {hidden_size = 3}\n  %v = Add(%t, %u)\n  %y = Mul(%s, %v)"},
    {"input %x: f64[3, 2, 2]\n  input %w: f64[1, 12, 2]\n  input %r: f64[1, 12, 3]\n  const %l: i32[2] = [2, 3]",
     "%y, %t, %u = LSTM(%x, %w, %r, _, %l) {hidden_size = 3, direction = \"reverse\", clip = 0.8, input_forget = 1}"},
    /* a small network: gradients through several rules and a value read twice */
    {"input %x: f64[4, 3]\n  input %w: f64[3, 5]\n  input %b: f64[5]\n  input %l: i64[4]",
     "%m = MatMul(%x, %w)\n  %h = Add(%m, %b)\n  %r = Relu(%h)\n  %t = Tanh(%h)\n  %s = Add(%r, %t)\n"
     "  %y = SoftmaxCrossEntropyLoss(%s, %l)", false, 5},
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double uniform(void) { /* xorshift64*, [0, 1) */
    rng ^= rng >> 12, rng ^= rng << 25, rng ^= rng >> 27;
    return (double)((rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static kiln_tensor *input_for(const kiln_tensor *type, const grad_case *k) {
    kiln_tensor *t;
    kiln_diag d = {0};
    assert_int_equal(kiln_tensor_create(type->dtype, type->rank, type->dims, &t, &d), KILN_OK);
    for (int64_t j = 0; j < kiln_tensor_count(t); j++) {
        if (!ir_dtype_is_float(t->dtype)) {
            ir_tensor_set_int(t, j, j % (k->classes ? k->classes : 2));
            continue;
        }
        double v = k->positive ? 0.5 + 1.5 * uniform() : 2 * uniform() - 1;
        if (!k->positive && fabs(v) < 0.05) /* away from the kinks of Relu and Abs */
            v = v < 0 ? -0.05 - v : 0.05 + v;
        ir_tensor_set(t, j, v);
    }
    return t;
}

static double run_loss(const ir_graph *g, kiln_tensor **in, int n_out, kiln_tensor **out) {
    kiln_diag d = {0};
    if (interp_run(g, (const kiln_tensor *const *)in, out, &d)) {
        print_error("%s\n", d.message);
        fail();
    }
    double loss = ir_tensor_get(out[0], 0);
    (void)n_out;
    return loss;
}

/* The backward graph compiled by the JIT gives what the interpreter gave: its printed form
 * parsed again and compiled, since a training step runs there. Stated tolerance (f64, the
 * JIT may contract products into fused multiply-adds): 1e-10 + 1e-8 * |interpreter|. */
static void check_jit(const grad_case *k, const ir_graph *g, kiln_tensor **in, kiln_tensor **want) {
    char *text = ir_print_string(g, NULL);
    kiln_options opts = {.backend = KILN_BACKEND_JIT, .threads = 1};
    kiln_model *m;
    kiln_diag d = {0};
    kiln_tensor *got[16] = {0};
    if (kiln_model_parse(text, strlen(text), "grad.kiln", &opts, &m, &d) ||
        kiln_model_run(m, (const kiln_tensor *const *)in, got, &d)) {
        print_error("%s: the backward graph on the JIT: %s\n", k->body, d.message);
        fail();
    }
    for (int i = 0; i < g->output_count; i++) {
        for (int64_t j = 0; j < kiln_tensor_count(want[i]); j++) {
            double a = ir_tensor_get(got[i], j), b = ir_tensor_get(want[i], j);
            if (!(fabs(a - b) <= 1e-10 + 1e-8 * fabs(b))) {
                print_error("%s: output %d [%lld]: JIT %.17g, interpreter %.17g\n", k->body, i, (long long)j, a, b);
                fail();
            }
        }
        kiln_tensor_free(got[i]);
    }
    kiln_model_destroy(m);
    free(text);
}

static void check_case(const grad_case *k) {
    char text[2048];
    snprintf(text, sizeof text, "graph g {\n  %s\n  %s\n  output %%y\n}\n", k->decls, k->body);
    ir_graph *g;
    kiln_diag d = {0};
    if (txt_parse(text, strlen(text), "grad.kiln", &g, &d) || driver_optimize(g, "shape", &d)) {
        print_error("%s\n%s", d.message, text);
        fail();
    }
    /* loss = ReduceSum(y * r), r random and fixed */
    ir_value *y = g->outputs[0];
    grad_ctx c = {.g = g, .d = &d};
    ir_value *r = gb_scalar(&c, y->type.dtype, 0);
    kiln_tensor *rt;
    assert_int_equal(ir_graph_new_tensor(g, y->type.dtype, y->type.rank, y->type.dims, &rt, &d), KILN_OK);
    for (int64_t j = 0; j < kiln_tensor_count(rt); j++)
        ir_tensor_set(rt, j, 2 * uniform() - 1);
    r->init = rt, r->type = *rt, r->type.data = NULL;
    ir_node *sum = gb_begin(&c, IR_OP_REDUCE_SUM, 1, (ir_value *[]){gb2(&c, IR_OP_MUL, y, r)});
    gb_attr_int(&c, sum, "keepdims", 0);
    ir_value *loss = gb_done(&c, sum);
    assert_int_equal(c.st, KILN_OK);
    ir_value *wrt[8], *grads[8];
    int n = 0;
    for (int i = 0; i < g->input_count; i++)
        if (ir_dtype_is_float(g->inputs[i]->type.dtype))
            wrt[n++] = g->inputs[i];
    if (autodiff(g, loss, wrt, n, grads, &d)) {
        print_error("%s: %s\n", k->body, d.message);
        fail();
    }
    g->output_count = 0;
    g->outputs[0]->is_output = false;
    assert_int_equal(ir_graph_add_output(g, loss, &d), KILN_OK);
    for (int i = 0; i < n; i++)
        if (!grads[i]->is_output)
            assert_int_equal(ir_graph_add_output(g, grads[i], &d), KILN_OK);
    if (ir_verify(g, NULL, NULL, &d)) {
        print_error("%s: the backward graph does not verify: %s\n", k->body, d.message);
        fail();
    }
    kiln_tensor *in[8] = {0}, *out[16] = {0};
    for (int i = 0; i < g->input_count; i++)
        in[i] = input_for(&g->inputs[i]->type, k);
    run_loss(g, in, g->output_count, out);
    check_jit(k, g, in, out);
    int worst_slot = -1;
    double worst = 0;
    for (int w = 0; w < n; w++) {
        int slot = 0, out_at = 0;
        while (g->inputs[slot] != wrt[w])
            slot++;
        while (g->outputs[out_at] != grads[w])
            out_at++;
        kiln_tensor *x = in[slot];
        for (int64_t j = 0; j < kiln_tensor_count(x); j++) {
            const double h = 1e-6, v = ir_tensor_get(x, j);
            kiln_tensor *o[16] = {0};
            ir_tensor_set(x, j, v + h);
            double up = run_loss(g, in, g->output_count, o);
            for (int i = 0; i < g->output_count; i++)
                kiln_tensor_free(o[i]);
            ir_tensor_set(x, j, v - h);
            double down = run_loss(g, in, g->output_count, o);
            for (int i = 0; i < g->output_count; i++)
                kiln_tensor_free(o[i]);
            ir_tensor_set(x, j, v);
            double numeric = (up - down) / (2 * h), analytic = ir_tensor_get(out[out_at], j);
            double err = fabs(analytic - numeric) / (1e-7 + 1e-5 * fabs(numeric));
            if (err > worst)
                worst = err, worst_slot = slot;
            if (err > 1) {
                print_error("%s: d loss / d %s[%lld]: autodiff %.9g, finite difference %.9g\n", k->body,
                            wrt[w]->name, (long long)j, analytic, numeric);
                fail();
            }
        }
    }
    (void)worst_slot;
    for (int i = 0; i < g->input_count; i++)
        kiln_tensor_free(in[i]);
    for (int i = 0; i < g->output_count; i++)
        kiln_tensor_free(out[i]);
    ir_graph_destroy(g);
}

static void test_gradients(void **state) {
    (void)state;
    for (int i = 0; i < ARRAY_LEN(cases); i++)
        check_case(&cases[i]);
}

/* The table's OPF_DIFF flag and the rules agree, and every op with a rule has a case above. */
static void test_rule_coverage(void **state) {
    (void)state;
    bool used[IR_OP_COUNT] = {0};
    for (int i = 0; i < ARRAY_LEN(cases); i++) {
        char text[2048];
        snprintf(text, sizeof text, "graph g {\n  %s\n  %s\n  output %%y\n}\n", cases[i].decls, cases[i].body);
        ir_graph *g;
        kiln_diag d = {0};
        assert_int_equal(txt_parse(text, strlen(text), "grad.kiln", &g, &d), KILN_OK);
        for (int k = 0; k < g->node_count; k++)
            used[g->nodes[k]->op] = true;
        ir_graph_destroy(g);
    }
    int bad = 0;
    for (int op = 0; op < IR_OP_COUNT; op++) {
        bool flagged = ir_op_table[op].flags & OPF_DIFF, rule = grad_rule((ir_op)op) != NULL;
        if (flagged != rule || (rule && !used[op])) {
            print_error("%s: %s\n", ir_op_table[op].name, flagged != rule ? (rule ? "has a gradient rule but no OPF_DIFF"
                                                                                   : "is OPF_DIFF without a gradient rule")
                                                                       : "has a gradient rule and no case");
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

/* An op without a rule is named, with its node. */
static void test_missing_rule(void **state) {
    (void)state;
    const char *text = "graph g {\n  input %a: f32[4]\n  const %b: f32[] = [1.5]\n  %y = Mod(%a, %b) {fmod = 1}\n"
                       "  %s = ReduceSum(%y) {keepdims = 0}\n  output %s\n}\n";
    ir_graph *g;
    kiln_diag d = {0};
    assert_int_equal(txt_parse(text, strlen(text), "m.kiln", &g, &d), KILN_OK);
    assert_int_equal(driver_optimize(g, "shape", &d), KILN_OK);
    ir_value *grads[1];
    assert_int_equal(autodiff(g, g->outputs[0], g->inputs, 1, grads, &d), KILN_ERR_UNSUPPORTED);
    assert_string_equal(d.message, "m.kiln:4:3: node 'y' (Mod): gradient: op Mod has no gradient rule yet");
    ir_graph_destroy(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gradients),
        cmocka_unit_test(test_missing_rule),
        cmocka_unit_test(test_rule_coverage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
