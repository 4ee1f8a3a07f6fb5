/*
 * op_cases.h — the hand-checked op cases, shared by the op tests (reference interpreter,
 * constant folding) and the JIT tests. Expected values are hand-derived, or for
 * transcendental functions computed independently with numpy in float64 (8 significant
 * digits).
 */
#ifndef KILN_TESTS_OP_CASES_H
#define KILN_TESTS_OP_CASES_H

typedef struct op_case {
    const char *name;
    const char *nodes;       /* node statements over %a, %b, ... */
    const char *inputs[6];   /* "a: f32[2] [1, 2]" */
    const char *outputs[3];  /* "y: f32[2] [1, 2]" */
    const char *error;       /* if set: the case must fail with a message containing this */
} op_case;

static const op_case cases[] = {
    /* ---- binary, broadcasting ---- */
    {"add", "%y = Add(%a, %b)", {"a: f32[2, 3] [1, 2, 3, 4, 5, 6]", "b: f32[3] [10, 20, 30]"}, {"y: f32[2, 3] [11, 22, 33, 14, 25, 36]"}},
    {"add_scalar", "%y = Add(%a, %b)", {"a: f32[] [2]", "b: f32[2, 2] [1, 2, 3, 4]"}, {"y: f32[2, 2] [3, 4, 5, 6]"}},
    {"add_size1", "%y = Add(%a, %b)", {"a: f32[2, 1] [1, 2]", "b: f32[1, 3] [10, 20, 30]"}, {"y: f32[2, 3] [11, 21, 31, 12, 22, 32]"}},
    {"add_empty", "%y = Add(%a, %b)", {"a: f32[0, 3] []", "b: f32[3] [1, 2, 3]"}, {"y: f32[0, 3] []"}},
    {"add_i64_exact", "%y = Add(%a, %b)", {"a: i64[2] [9007199254740993, -1]", "b: i64[2] [1, 1]"}, {"y: i64[2] [9007199254740994, 0]"}},
    {"add_mismatch", "%y = Add(%a, %b)", {"a: f32[2] [1, 2]", "b: f32[3] [1, 2, 3]"}, {0}, "node 'y' (Add): shapes cannot be broadcast: dimension 2 vs 3"},
    {"add_dtype_mismatch", "%y = Add(%a, %b)", {"a: f32[1] [1]", "b: i64[1] [1]"}, {0}, "different dtypes: f32 and i64"},
    {"sub", "%y = Sub(%a, %b)", {"a: f32[3] [5, 3, 1]", "b: f32[] [1]"}, {"y: f32[3] [4, 2, 0]"}},
    {"mul_i32", "%y = Mul(%a, %b)", {"a: i32[2, 2] [1, 2, 3, 4]", "b: i32[2] [10, -1]"}, {"y: i32[2, 2] [10, -2, 30, -4]"}},
    {"div", "%y = Div(%a, %b)", {"a: f32[3] [1, -4, 9]", "b: f32[3] [2, 2, -3]"}, {"y: f32[3] [0.5, -2, -3]"}},
    {"div_int_truncates", "%y = Div(%a, %b)", {"a: i64[3] [7, -7, 7]", "b: i64[3] [2, 2, -2]"}, {"y: i64[3] [3, -3, -3]"}},
    {"div_int_by_zero", "%y = Div(%a, %b)", {"a: i32[2] [1, 2]", "b: i32[2] [1, 0]"}, {0}, "node 'y' (Div): integer division by zero"},
    {"pow", "%y = Pow(%a, %b)", {"a: f32[3] [2, 4, 9]", "b: f32[] [0.5]"}, {"y: f32[3] [1.4142135, 2, 3]"}},
    {"pow_int", "%y = Pow(%a, %b)", {"a: i64[2] [2, 3]", "b: i64[2] [10, 3]"}, {"y: i64[2] [1024, 27]"}},
    {"pow_mixed", "%y = Pow(%a, %b)", {"a: f32[2] [2, 3]", "b: i64[] [2]"}, {"y: f32[2] [4, 9]"}},
    {"mod_python", "%y = Mod(%a, %b)", {"a: i64[4] [5, -5, 5, -5]", "b: i64[4] [3, 3, -3, -3]"}, {"y: i64[4] [2, 1, -1, -2]"}},
    {"mod_fmod", "%y = Mod(%a, %b) {fmod = 1}", {"a: f32[2] [5.5, -5.5]", "b: f32[2] [2, 2]"}, {"y: f32[2] [1.5, -1.5]"}},
    {"prelu", "%y = PRelu(%a, %b)", {"a: f32[2, 2] [-1, 2, -3, 4]", "b: f32[2] [0.1, 0.2]"}, {"y: f32[2, 2] [-0.1, 2, -0.3, 4]"}},
    {"equal", "%y = Equal(%a, %b)", {"a: i64[3] [1, 2, 3]", "b: i64[3] [1, 0, 3]"}, {"y: bool[3] [1, 0, 1]"}},
    {"less", "%y = Less(%a, %b)", {"a: f32[3] [1, 2, 3]", "b: f32[] [2]"}, {"y: bool[3] [1, 0, 0]"}},
    {"less_or_equal", "%y = LessOrEqual(%a, %b)", {"a: f32[3] [1, 2, 3]", "b: f32[] [2]"}, {"y: bool[3] [1, 1, 0]"}},
    {"greater", "%y = Greater(%a, %b)", {"a: f32[3] [1, 2, 3]", "b: f32[] [2]"}, {"y: bool[3] [0, 0, 1]"}},
    {"greater_or_equal", "%y = GreaterOrEqual(%a, %b)", {"a: f32[3] [1, 2, 3]", "b: f32[] [2]"}, {"y: bool[3] [0, 1, 1]"}},
    {"and", "%y = And(%a, %b)", {"a: bool[4] [0, 0, 1, 1]", "b: bool[4] [0, 1, 0, 1]"}, {"y: bool[4] [0, 0, 0, 1]"}},
    {"or", "%y = Or(%a, %b)", {"a: bool[4] [0, 0, 1, 1]", "b: bool[4] [0, 1, 0, 1]"}, {"y: bool[4] [0, 1, 1, 1]"}},
    {"xor", "%y = Xor(%a, %b)", {"a: bool[4] [0, 0, 1, 1]", "b: bool[4] [0, 1, 0, 1]"}, {"y: bool[4] [0, 1, 1, 0]"}},
    {"and_needs_bool", "%y = And(%a, %b)", {"a: f32[1] [1]", "b: bool[1] [1]"}, {0}, "input 0 must be bool, got f32"},
    /* ---- variadic ---- */
    {"max3", "%y = Max(%a, %b, %c)", {"a: f32[3] [1, 5, 3]", "b: f32[3] [4, 2, 6]", "c: f32[] [3.5]"}, {"y: f32[3] [4, 5, 6]"}},
    {"max1", "%y = Max(%a)", {"a: f32[2] [1, -1]"}, {"y: f32[2] [1, -1]"}},
    {"max_nan", "%y = Max(%a, %b)", {"a: f32[2] [nan, 1]", "b: f32[2] [1, 2]"}, {"y: f32[2] [nan, 2]"}},
    {"min3", "%y = Min(%a, %b, %c)", {"a: f32[3] [1, 5, 3]", "b: f32[3] [4, 2, 6]", "c: f32[] [3.5]"}, {"y: f32[3] [1, 2, 3]"}},
    {"sum", "%y = Sum(%a, %b)", {"a: f32[3] [1, 2, 3]", "b: f32[3] [10, 20, 30]"}, {"y: f32[3] [11, 22, 33]"}},
    {"mean", "%y = Mean(%a, %b)", {"a: f32[3] [1, 2, 3]", "b: f32[3] [10, 20, 30]"}, {"y: f32[3] [5.5, 11, 16.5]"}},
    {"where", "%y = Where(%c, %a, %b)", {"c: bool[2, 2] [1, 0, 0, 1]", "a: f32[2, 2] [1, 2, 3, 4]", "b: f32[] [0]"}, {"y: f32[2, 2] [1, 0, 0, 4]"}},
    /* ---- unary ---- */
    {"not", "%y = Not(%a)", {"a: bool[2] [0, 1]"}, {"y: bool[2] [1, 0]"}},
    {"relu", "%y = Relu(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [0, 0, 0, 1.5]"}},
    {"relu_int", "%y = Relu(%a)", {"a: i32[2] [-3, 4]"}, {"y: i32[2] [0, 4]"}},
    {"leaky_relu", "%y = LeakyRelu(%a) {alpha = 0.1}", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-0.2, -0.05, 0, 1.5]"}},
    {"leaky_relu_default", "%y = LeakyRelu(%a)", {"a: f32[2] [-2, 3]"}, {"y: f32[2] [-0.02, 3]"}},
    {"elu", "%y = Elu(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-0.86466472, -0.39346934, 0, 1.5]"}},
    {"selu", "%y = Selu(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-1.5201665, -0.69175819, 0, 1.5760515]"}},
    {"celu", "%y = Celu(%a) {alpha = 2.0}", {"a: f32[2] [-2, 3]"}, {"y: f32[2] [-1.2642411, 3]"}},
    {"sigmoid", "%y = Sigmoid(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [0.11920292, 0.37754067, 0.5, 0.81757448]"}},
    {"sigmoid_int_rejected", "%y = Sigmoid(%a)", {"a: i64[1] [1]"}, {0}, "input 0 must be a float tensor, got i64"},
    {"hard_sigmoid", "%y = HardSigmoid(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [0.1, 0.4, 0.5, 0.8]"}},
    {"hard_swish", "%y = HardSwish(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-0.33333333, -0.20833333, 0, 1.125]"}},
    {"tanh", "%y = Tanh(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-0.96402758, -0.46211716, 0, 0.90514825]"}},
    {"softplus", "%y = Softplus(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [0.12692801, 0.47407698, 0.69314718, 1.7014133]"}},
    {"softsign", "%y = Softsign(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-0.66666667, -0.33333333, 0, 0.6]"}},
    {"mish", "%y = Mish(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-0.25250148, -0.22074377, 0, 1.4033783]"}},
    {"gelu", "%y = Gelu(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-0.045500264, -0.15426877, 0, 1.3997892]"}},
    {"gelu_tanh", "%y = Gelu(%a) {approximate = \"tanh\"}", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-0.045402306, -0.15428599, 0, 1.3995716]"}},
    {"gelu_bad_mode", "%y = Gelu(%a) {approximate = \"fast\"}", {"a: f32[1] [1]"}, {0}, "attribute 'approximate'"},
    {"silu", "%y = Silu(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-0.23840584, -0.18877033, 0, 1.2263617]"}},
    {"erf", "%y = Erf(%a)", {"a: f32[4] [-2, -0.5, 0, 1.5]"}, {"y: f32[4] [-0.99532227, -0.52049988, 0, 0.96610515]"}},
    {"exp", "%y = Exp(%a)", {"a: f64[3] [0, 1, -1]"}, {"y: f64[3] [1, 2.7182818, 0.36787944]"}},
    {"log", "%y = Log(%a)", {"a: f32[4] [1, 2.7182817, 10, 0]"}, {"y: f32[4] [0, 0.99999995, 2.3025851, -inf]"}},
    {"sqrt", "%y = Sqrt(%a)", {"a: f32[4] [0, 4, 2, -1]"}, {"y: f32[4] [0, 2, 1.4142135, nan]"}},
    {"reciprocal", "%y = Reciprocal(%a)", {"a: f32[3] [2, -4, 0.5]"}, {"y: f32[3] [0.5, -0.25, 2]"}},
    {"neg", "%y = Neg(%a)", {"a: i64[2] [1, -2]"}, {"y: i64[2] [-1, 2]"}},
    {"abs", "%y = Abs(%a)", {"a: i8[2] [-3, 4]"}, {"y: i8[2] [3, 4]"}},
    {"abs_float", "%y = Abs(%a)", {"a: f32[2] [-1.5, 2]"}, {"y: f32[2] [1.5, 2]"}},
    {"sign", "%y = Sign(%a)", {"a: f32[3] [-2, 0, 3]"}, {"y: f32[3] [-1, 0, 1]"}},
    {"floor", "%y = Floor(%a)", {"a: f32[3] [-1.5, 1.5, 2]"}, {"y: f32[3] [-2, 1, 2]"}},
    {"ceil", "%y = Ceil(%a)", {"a: f32[3] [-1.5, 1.5, 2]"}, {"y: f32[3] [-1, 2, 2]"}},
    {"round_half_even", "%y = Round(%a)", {"a: f32[6] [0.5, 1.5, 2.5, -0.5, -1.5, 1.2]"}, {"y: f32[6] [0, 2, 2, 0, -2, 1]"}},
    {"sin", "%y = Sin(%a)", {"a: f32[3] [0, 1.5707964, 3.1415927]"}, {"y: f32[3] [0, 1, 0]"}},
    {"cos", "%y = Cos(%a)", {"a: f32[2] [0, 3.1415927]"}, {"y: f32[2] [1, -1]"}},
    {"tan", "%y = Tan(%a)", {"a: f32[2] [0, 0.5]"}, {"y: f32[2] [0, 0.54630249]"}},
    {"asin", "%y = Asin(%a)", {"a: f32[3] [0, 0.5, 1]"}, {"y: f32[3] [0, 0.52359878, 1.5707963]"}},
    {"acos", "%y = Acos(%a)", {"a: f32[3] [1, 0.5, 0]"}, {"y: f32[3] [0, 1.0471976, 1.5707963]"}},
    {"atan", "%y = Atan(%a)", {"a: f32[2] [0, 1]"}, {"y: f32[2] [0, 0.78539816]"}},
    {"sinh", "%y = Sinh(%a)", {"a: f32[2] [0, 1]"}, {"y: f32[2] [0, 1.1752012]"}},
    {"cosh", "%y = Cosh(%a)", {"a: f32[2] [0, 1]"}, {"y: f32[2] [1, 1.5430806]"}},
    {"asinh", "%y = Asinh(%a)", {"a: f32[2] [0, 1]"}, {"y: f32[2] [0, 0.88137359]"}},
    {"acosh", "%y = Acosh(%a)", {"a: f32[2] [1, 2]"}, {"y: f32[2] [0, 1.3169579]"}},
    {"atanh", "%y = Atanh(%a)", {"a: f32[2] [0, 0.5]"}, {"y: f32[2] [0, 0.54930614]"}},
    {"thresholded_relu", "%y = ThresholdedRelu(%a) {alpha = 1.5}", {"a: f32[3] [1, 1.5, 2]"}, {"y: f32[3] [0, 0, 2]"}},
    {"shrink", "%y = Shrink(%a) {bias = 0.5, lambd = 1.0}", {"a: f32[4] [-2, -1, 0.5, 3]"}, {"y: f32[4] [-1.5, 0, 0, 2.5]"}},
    {"is_nan", "%y = IsNaN(%a)", {"a: f32[3] [nan, 1, inf]"}, {"y: bool[3] [1, 0, 0]"}},
    {"is_inf", "%y = IsInf(%a)", {"a: f32[4] [nan, 1, inf, -inf]"}, {"y: bool[4] [0, 0, 1, 1]"}},
    {"is_inf_positive_only", "%y = IsInf(%a) {detect_negative = 0}", {"a: f32[2] [inf, -inf]"}, {"y: bool[2] [1, 0]"}},
    {"cast_like", "%y = CastLike(%a, %b)", {"a: f32[2] [1.9, -1.9]", "b: i64[1] [0]"}, {"y: i64[2] [1, -1]"}},
    {"clip", "%y = Clip(%a, %lo, %hi)", {"a: f32[4] [-2, -0.5, 0, 1.5]", "lo: f32[] [-1]", "hi: f32[] [1]"}, {"y: f32[4] [-1, -0.5, 0, 1]"}},
    {"clip_max_only", "%y = Clip(%a, _, %hi)", {"a: f32[4] [-2, -0.5, 0, 1.5]", "hi: f32[] [1]"}, {"y: f32[4] [-2, -0.5, 0, 1]"}},
    {"clip_int", "%y = Clip(%a, %lo)", {"a: i64[3] [-5, 0, 5]", "lo: i64[] [-1]"}, {"y: i64[3] [-1, 0, 5]"}},
    {"cast_f32_i32", "%y = Cast(%a) {to = \"i32\"}", {"a: f32[3] [-1.7, 2.9, 0]"}, {"y: i32[3] [-1, 2, 0]"}},
    {"cast_f32_bool", "%y = Cast(%a) {to = \"bool\"}", {"a: f32[3] [0, 0.5, -2]"}, {"y: bool[3] [0, 1, 1]"}},
    {"cast_i64_f64", "%y = Cast(%a) {to = \"f64\"}", {"a: i64[2] [-3, 5]"}, {"y: f64[2] [-3, 5]"}},
    {"cast_f32_f16", "%y = Cast(%a) {to = \"f16\"}", {"a: f32[6] [1, 65504, 70000, 1e-08, 0.1, -6.1e-05]"}, {"y: f16[6] [1, 65504, inf, 0, 0.099975586, -6.1035156e-05]"}},
    {"cast_f16_subnormal", "%y = Cast(%a) {to = \"f32\"}", {"a: f16[2] [5.9604645e-08, -2.5]"}, {"y: f32[2] [5.9604645e-08, -2.5]"}},
    {"cast_f32_bf16", "%y = Cast(%a) {to = \"bf16\"}", {"a: f32[3] [1, 0.1, 3.1415927]"}, {"y: bf16[3] [1, 0.10009766, 3.140625]"}},
    {"cast_u64_f64", "%y = Cast(%a) {to = \"f64\"}", {"a: u64[2] [18446744073709551615, 7]"}, {"y: f64[2] [1.8446744073709552e+19, 7]"}},
    {"max_u64", "%y = Max(%a, %b)", {"a: u64[2] [18446744073709551615, 1]", "b: u64[2] [2, 3]"}, {"y: u64[2] [18446744073709551615, 3]"}},
    {"less_u64", "%y = Less(%a, %b)", {"a: u64[2] [18446744073709551615, 1]", "b: u64[2] [2, 3]"}, {"y: bool[2] [0, 1]"}},
    {"add_u16_wraps", "%y = Add(%a, %b)", {"a: u16[2] [65535, 1]", "b: u16[2] [1, 1]"}, {"y: u16[2] [0, 2]"}},
    {"div_u32", "%y = Div(%a, %b)", {"a: u32[2] [4294967295, 7]", "b: u32[2] [2, 2]"}, {"y: u32[2] [2147483647, 3]"}},
    {"neg_i16_wraps", "%y = Neg(%a)", {"a: i16[2] [-32768, 5]"}, {"y: i16[2] [-32768, -5]"}},
    {"cast_unknown", "%y = Cast(%a) {to = \"f17\"}", {"a: f32[1] [1]"}, {0}, "attribute 'to': unknown dtype 'f17'"},
    {"identity", "%y = Identity(%a)", {"a: u8[3] [1, 2, 255]"}, {"y: u8[3] [1, 2, 255]"}},
    {"dropout", "%y, %m = Dropout(%a)", {"a: f32[2] [1, 2]"}, {"y: f32[2] [1, 2]", "m: bool[2] [1, 1]"}},
    /* ---- anchors ---- */
    {"matmul", "%y = MatMul(%a, %b)", {"a: f32[2, 3] [1, 2, 3, 4, 5, 6]", "b: f32[3, 2] [7, 8, 9, 10, 11, 12]"}, {"y: f32[2, 2] [58, 64, 139, 154]"}},
    {"matmul_vec_mat", "%y = MatMul(%a, %b)", {"a: f32[3] [1, 2, 3]", "b: f32[3, 2] [7, 8, 9, 10, 11, 12]"}, {"y: f32[2] [58, 64]"}},
    {"matmul_mat_vec", "%y = MatMul(%a, %b)", {"a: f32[2, 3] [1, 2, 3, 4, 5, 6]", "b: f32[3] [1, 0, -1]"}, {"y: f32[2] [-2, -2]"}},
    {"matmul_batched", "%y = MatMul(%a, %b)", {"a: f32[2, 2, 2] [1, 2, 3, 4, 5, 6, 7, 8]", "b: f32[2, 1] [1, 1]"}, {"y: f32[2, 2, 1] [3, 7, 11, 15]"}},
    {"matmul_batch_broadcast", "%y = MatMul(%a, %b)", {"a: f32[2, 1, 1, 2] [1, 2, 3, 4]", "b: f32[3, 2, 1] [1, 0, 0, 1, 1, 1]"}, {"y: f32[2, 3, 1, 1] [1, 2, 3, 3, 4, 7]"}},
    {"matmul_inner_mismatch", "%y = MatMul(%a, %b)", {"a: f32[2, 3] [1, 2, 3, 4, 5, 6]", "b: f32[2, 3] [1, 2, 3, 4, 5, 6]"}, {0}, "inner dimensions differ: 3 vs 2"},
    {"gemm", "%y = Gemm(%a, %b, %c) {alpha = 2.0, beta = 0.5}", {"a: f32[2, 2] [1, 2, 3, 4]", "b: f32[2, 2] [1, 0, 0, 1]", "c: f32[2] [1, 2]"}, {"y: f32[2, 2] [2.5, 5, 6.5, 9]"}},
    {"gemm_trans", "%y = Gemm(%a, %b) {transA = 1, transB = 1}", {"a: f32[3, 2] [1, 2, 3, 4, 5, 6]", "b: f32[2, 3] [1, 0, 0, 0, 1, 0]"}, {"y: f32[2, 2] [1, 3, 2, 4]"}},
    {"conv", "%y = Conv(%x, %w, %b)", {"x: f32[1, 1, 3, 3] [1, 2, 3, 4, 5, 6, 7, 8, 9]", "w: f32[1, 1, 2, 2] [1, 0, 0, 1]", "b: f32[1] [1]"}, {"y: f32[1, 1, 2, 2] [7, 9, 13, 15]"}},
    {"conv_pads_strides", "%y = Conv(%x, %w) {pads = [1, 1, 1, 1], strides = [2, 2]}", {"x: f32[1, 1, 3, 3] [1, 2, 3, 4, 5, 6, 7, 8, 9]", "w: f32[1, 1, 3, 3] [1, 1, 1, 1, 1, 1, 1, 1, 1]"}, {"y: f32[1, 1, 2, 2] [12, 16, 24, 28]"}},
    {"conv_groups", "%y = Conv(%x, %w) {group = 2}", {"x: f32[1, 2, 1, 2] [1, 2, 3, 4]", "w: f32[2, 1, 1, 1] [10, 100]"}, {"y: f32[1, 2, 1, 2] [10, 20, 300, 400]"}},
    {"conv1d_dilation", "%y = Conv(%x, %w) {dilations = [2]}", {"x: f32[1, 1, 5] [1, 2, 3, 4, 5]", "w: f32[1, 1, 2] [1, 1]"}, {"y: f32[1, 1, 3] [4, 6, 8]"}},
    {"conv_same_upper", "%y = Conv(%x, %w) {auto_pad = \"SAME_UPPER\"}", {"x: f32[1, 1, 4] [1, 2, 3, 4]", "w: f32[1, 1, 3] [1, 1, 1]"}, {"y: f32[1, 1, 4] [3, 6, 9, 7]"}},
    {"conv3d", "%y = Conv(%x, %w)", {"x: f32[1, 1, 2, 2, 2] [1, 2, 3, 4, 5, 6, 7, 8]", "w: f32[1, 1, 2, 2, 2] [1, 1, 1, 1, 1, 1, 1, 1]"}, {"y: f32[1, 1, 1, 1, 1] [36]"}},
    {"conv_channel_mismatch", "%y = Conv(%x, %w)", {"x: f32[1, 2, 2, 2] [1, 2, 3, 4, 5, 6, 7, 8]", "w: f32[1, 3, 1, 1] [1, 1, 1]"}, {0}, "X has 2 channels but W expects 3 x group 1"},
    /* ConvNCHWc (passes/layout.c): W packed [Cout / b, KH, KW, Cin, b], Y [N, Cout / b, OH, OW, b] */
    {"conv_nchwc", "%y = ConvNCHWc(%x, %w, %b)", {"x: f32[1, 1, 2, 2] [1, 2, 3, 4]", "w: f32[1, 1, 1, 1, 2] [10, 100]", "b: f32[2] [1, 2]"}, {"y: f32[1, 1, 2, 2, 2] [11, 102, 21, 202, 31, 302, 41, 402]"}},
    {"conv_nchwc_blocked_in", "%y = ConvNCHWc(%x, %w)", {"x: f32[1, 1, 1, 2, 2] [1, 2, 3, 4]", "w: f32[1, 1, 1, 2, 2] [1, 10, 100, 1000]"}, {"y: f32[1, 1, 1, 2, 2] [201, 2010, 403, 4030]"}},
    {"conv_nchwc_pads_strides", "%y = ConvNCHWc(%x, %w) {pads = [1, 1, 1, 1], strides = [2, 2]}", {"x: f32[1, 1, 3, 3] [1, 2, 3, 4, 5, 6, 7, 8, 9]", "w: f32[1, 3, 3, 1, 1] [1, 1, 1, 1, 1, 1, 1, 1, 1]"}, {"y: f32[1, 1, 2, 2, 1] [12, 16, 24, 28]"}},
    {"conv_nchwc_channel_mismatch", "%y = ConvNCHWc(%x, %w)", {"x: f32[1, 2, 2, 2] [1, 2, 3, 4, 5, 6, 7, 8]", "w: f32[1, 1, 1, 3, 2] [1, 1, 1, 1, 1, 1]"}, {0}, "X has 2 channels but W expects 3"},
    {"winograd_input", "%y = WinogradInput(%x) {pads = [1, 1, 1, 1]}", {"x: f32[1, 1, 2, 2] [1, 2, 3, 4]"}, {"y: f32[16, 1, 1] [4, -7, -1, -3, -6, 10, 2, 4, -2, 4, 0, 2, -2, 3, 1, 1]"}},
    {"winograd_input_blocked", "%y = WinogradInput(%x)", {"x: f32[1, 1, 3, 3, 2] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17]"}, {"y: f32[16, 1, 2] [0, 0, -24, -24, 0, 0, -12, -12, -8, -8, 48, 52, 4, 4, 22, 24, 0, 0, 12, 12, 0, 0, 6, 6, -4, -4, 18, 20, 2, 2, 8, 9]"}},
    {"winograd_input_too_small", "%y = WinogradInput(%x)", {"x: f32[1, 1, 2, 3] [1, 2, 3, 4, 5, 6]"}, {0}, "the padded input 2 x 3 is smaller than the 3 x 3 kernel"},
    {"winograd_output", "%y = WinogradOutput(%m, %b) {output_size = [2, 2], block = 1}", {"m: f32[16, 1, 1] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]", "b: f32[1] [10]"}, {"y: f32[1, 1, 2, 2, 1] [64, -17, -44, 31]"}},
    {"winograd_output_odd", "%y = WinogradOutput(%m) {output_size = [1, 1], block = 1}", {"m: f32[16, 1, 1] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]"}, {"y: f32[1, 1, 1, 1, 1] [54]"}},
    {"winograd_output_tiles", "%y = WinogradOutput(%m) {output_size = [4, 4], block = 1}", {"m: f32[16, 3, 1] [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47, 48]"}, {0}, "3 tiles are not a whole number of 2 x 2 images of tiles"},
    {"winograd_output_not_16", "%y = WinogradOutput(%m) {output_size = [2, 2]}", {"m: f32[4, 1, 1] [1, 2, 3, 4]"}, {0}, "M must be [16, tiles, C]"},
    {"conv_transpose", "%y = ConvTranspose(%x, %w)", {"x: f32[1, 1, 2, 2] [1, 2, 3, 4]", "w: f32[1, 1, 2, 2] [1, 1, 1, 1]"}, {"y: f32[1, 1, 3, 3] [1, 3, 2, 4, 10, 6, 3, 7, 4]"}},
    {"conv_transpose_stride", "%y = ConvTranspose(%x, %w, %b) {strides = [1, 2]}", {"x: f32[1, 1, 1, 2] [1, 2]", "w: f32[1, 1, 1, 2] [1, 10]", "b: f32[1] [0.5]"}, {"y: f32[1, 1, 1, 4] [1.5, 10.5, 2.5, 20.5]"}},
    /* ---- windows and normalizations ---- */
    {"max_pool", "%y, %i = MaxPool(%x) {kernel_shape = [2, 2]}", {"x: f32[1, 1, 3, 3] [1, 5, 3, 4, 2, 6, 7, 9, 8]"}, {"y: f32[1, 1, 2, 2] [5, 6, 9, 9]", "i: i64[1, 1, 2, 2] [1, 5, 7, 7]"}},
    {"max_pool_ceil", "%y = MaxPool(%x) {kernel_shape = [2], strides = [2], ceil_mode = 1}", {"x: f32[1, 1, 5] [1, 3, 2, 5, 4]"}, {"y: f32[1, 1, 3] [3, 5, 4]"}},
    {"max_pool_floor", "%y = MaxPool(%x) {kernel_shape = [2], strides = [2]}", {"x: f32[1, 1, 5] [1, 3, 2, 5, 4]"}, {"y: f32[1, 1, 2] [3, 5]"}},
    {"max_pool_pads", "%y = MaxPool(%x) {kernel_shape = [3], pads = [1, 1]}", {"x: f32[1, 1, 3] [1, 2, 3]"}, {"y: f32[1, 1, 3] [2, 3, 3]"}},
    {"max_pool_no_kernel", "%y = MaxPool(%x)", {"x: f32[1, 1, 3] [1, 2, 3]"}, {0}, "missing required attribute 'kernel_shape'"},
    {"average_pool", "%y = AveragePool(%x) {kernel_shape = [2, 2]}", {"x: f32[1, 1, 3, 3] [1, 2, 3, 4, 5, 6, 7, 8, 9]"}, {"y: f32[1, 1, 2, 2] [3, 4, 6, 7]"}},
    {"average_pool_pads", "%y = AveragePool(%x) {kernel_shape = [3], pads = [1, 1]}", {"x: f32[1, 1, 3] [1, 2, 3]"}, {"y: f32[1, 1, 3] [1.5, 2, 2.5]"}},
    {"average_pool_include_pad", "%y = AveragePool(%x) {kernel_shape = [3], pads = [1, 1], count_include_pad = 1}", {"x: f32[1, 1, 3] [1, 2, 3]"}, {"y: f32[1, 1, 3] [1, 2, 1.6666667]"}},
    {"global_average_pool", "%y = GlobalAveragePool(%x)", {"x: f32[1, 2, 2, 2] [1, 2, 3, 4, 5, 6, 7, 8]"}, {"y: f32[1, 2, 1, 1] [2.5, 6.5]"}},
    {"global_max_pool", "%y = GlobalMaxPool(%x)", {"x: f32[1, 2, 2, 2] [1, 2, 3, 4, 5, 6, 7, 8]"}, {"y: f32[1, 2, 1, 1] [4, 8]"}},
    {"batch_norm", "%y = BatchNormalization(%x, %s, %b, %m, %v) {epsilon = 0.0}", {"x: f32[1, 2, 1, 2] [1, 2, 3, 4]", "s: f32[2] [1, 2]", "b: f32[2] [0, 1]", "m: f32[2] [1, 3]", "v: f32[2] [4, 1]"}, {"y: f32[1, 2, 1, 2] [0, 0.5, 1, 3]"}},
    {"batch_norm_training", "%y, %rm, %rv = BatchNormalization(%x, %s, %b, %m, %v) {epsilon = 0.0, momentum = 0.5, training_mode = 1}", {"x: f32[2, 1] [1, 3]", "s: f32[1] [1]", "b: f32[1] [0]", "m: f32[1] [0]", "v: f32[1] [1]"}, {"y: f32[2, 1] [-1, 1]", "rm: f32[1] [1]", "rv: f32[1] [1]"}},
    {"layer_norm", "%y, %mu, %inv = LayerNormalization(%x, %s, %b) {epsilon = 0.0}", {"x: f32[2, 2] [1, 3, 0, 4]", "s: f32[2] [1, 1]", "b: f32[2] [0, 1]"}, {"y: f32[2, 2] [-1, 2, -1, 2]", "mu: f32[2, 1] [2, 2]", "inv: f32[2, 1] [1, 0.5]"}},
    {"layer_norm_axis0", "%y = LayerNormalization(%x, %s) {axis = 0, epsilon = 0.0}", {"x: f32[2, 2] [1, 3, 0, 4]", "s: f32[] [2]"}, {"y: f32[2, 2] [-1.2649111, 1.2649111, -2.5298221, 2.5298221]"}},
    {"instance_norm", "%y = InstanceNormalization(%x, %s, %b) {epsilon = 0.0}", {"x: f32[1, 2, 2] [1, 3, 2, 6]", "s: f32[2] [1, 2]", "b: f32[2] [0, 1]"}, {"y: f32[1, 2, 2] [-1, 1, -1, 3]"}},
    {"softmax", "%y = Softmax(%x)", {"x: f32[2, 3] [1, 2, 3, 0, 0, 0]"}, {"y: f32[2, 3] [0.090030573, 0.24472847, 0.66524096, 0.33333333, 0.33333333, 0.33333333]"}},
    {"softmax_axis0", "%y = Softmax(%x) {axis = 0}", {"x: f32[2, 2] [1, 2, 3, 4]"}, {"y: f32[2, 2] [0.11920292, 0.11920292, 0.88079708, 0.88079708]"}},
    {"softmax_bad_axis", "%y = Softmax(%x) {axis = 2}", {"x: f32[2, 2] [1, 2, 3, 4]"}, {0}, "axis 2 is out of range for rank 2"},
    {"hardmax", "%y = Hardmax(%x)", {"x: f32[2, 3] [1, 3, 2, 5, 5, 1]"}, {"y: f32[2, 3] [0, 1, 0, 1, 0, 0]"}},
    {"lp_norm", "%y = LpNormalization(%x)", {"x: f32[2, 2] [3, 4, 0, -2]"}, {"y: f32[2, 2] [0.6, 0.8, 0, -1]"}},
    {"lp_norm_l1_axis0", "%y = LpNormalization(%x) {axis = 0, p = 1}", {"x: f32[2, 2] [1, 3, -3, 1]"}, {"y: f32[2, 2] [0.25, 0.75, -0.75, 0.25]"}},
    {"lrn", "%y = LRN(%x) {size = 2, alpha = 1.0, beta = 1.0}", {"x: f32[1, 2, 1, 1] [1, 2]"}, {"y: f32[1, 2, 1, 1] [0.28571429, 0.66666667]"}},
    {"mvn", "%y = MeanVarianceNormalization(%x) {axes = [1]}", {"x: f32[1, 2] [1, 3]"}, {"y: f32[1, 2] [-1, 1]"}},
    {"max_unpool", "%y = MaxUnpool(%x, %i) {kernel_shape = [2, 2], strides = [2, 2]}", {"x: f32[1, 1, 1, 2] [5, 6]", "i: i64[1, 1, 1, 2] [1, 6]"}, {"y: f32[1, 1, 2, 4] [0, 5, 0, 0, 0, 0, 6, 0]"}},
    {"log_softmax", "%y = LogSoftmax(%x)", {"x: f32[3] [1, 2, 3]"}, {"y: f32[3] [-2.407606, -1.407606, -0.40760596]"}},
    /* ---- reductions ---- */
    {"reduce_sum", "%y = ReduceSum(%x) {axes = [1]}", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]"}, {"y: f32[2, 1] [6, 15]"}},
    {"reduce_sum_axes_input", "%y = ReduceSum(%x, %ax) {keepdims = 0}", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]", "ax: i64[1] [0]"}, {"y: f32[3] [5, 7, 9]"}},
    {"reduce_sum_all", "%y = ReduceSum(%x)", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]"}, {"y: f32[1, 1] [21]"}},
    {"reduce_sum_noop", "%y = ReduceSum(%x) {noop_with_empty_axes = 1}", {"x: f32[2] [1, 2]"}, {"y: f32[2] [1, 2]"}},
    {"reduce_sum_empty", "%y = ReduceSum(%x) {axes = [0], keepdims = 0}", {"x: f32[0, 3] []"}, {"y: f32[3] [0, 0, 0]"}},
    {"reduce_sum_repeated_axis", "%y = ReduceSum(%x) {axes = [1, -1]}", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]"}, {0}, "reduction axis -1 is repeated"},
    {"reduce_mean", "%y = ReduceMean(%x) {axes = [0]}", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]"}, {"y: f32[1, 3] [2.5, 3.5, 4.5]"}},
    {"reduce_max", "%y = ReduceMax(%x) {axes = [-1], keepdims = 0}", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]"}, {"y: f32[2] [3, 6]"}},
    {"reduce_max_empty", "%y = ReduceMax(%x) {axes = [0], keepdims = 0}", {"x: f32[0, 2] []"}, {"y: f32[2] [-inf, -inf]"}},
    {"reduce_min", "%y = ReduceMin(%x) {axes = [1], keepdims = 0}", {"x: i64[2, 3] [1, 2, 3, 4, 5, 6]"}, {"y: i64[2] [1, 4]"}},
    {"reduce_max_u8", "%y = ReduceMax(%x) {axes = [0], keepdims = 0}", {"x: u8[2, 3] [0, 255, 7, 3, 254, 9]"}, {"y: u8[3] [3, 255, 9]"}},
    {"reduce_min_u64", "%y = ReduceMin(%x)", {"x: u64[3] [18446744073709551615, 5, 7]"}, {"y: u64[1] [5]"}},
    {"reduce_max_i32_negative", "%y = ReduceMax(%x) {axes = [1], keepdims = 0}", {"x: i32[2, 2] [-2147483648, -5, -7, -3]"}, {"y: i32[2] [-5, -3]"}},
    {"reduce_min_float", "%y = ReduceMin(%x) {axes = [0]}", {"x: f32[2, 2] [1, -2, 3, -4]"}, {"y: f32[1, 2] [1, -4]"}},
    {"reduce_prod", "%y = ReduceProd(%x) {axes = [1], keepdims = 0}", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]"}, {"y: f32[2] [6, 120]"}},
    {"reduce_l1", "%y = ReduceL1(%x) {axes = [1], keepdims = 0}", {"x: f32[2, 2] [-1, 2, -3, 4]"}, {"y: f32[2] [3, 7]"}},
    {"reduce_l2", "%y = ReduceL2(%x) {axes = [1], keepdims = 0}", {"x: f32[2, 2] [3, 4, 0, 5]"}, {"y: f32[2] [5, 5]"}},
    {"reduce_sum_square", "%y = ReduceSumSquare(%x) {axes = [1], keepdims = 0}", {"x: f32[2, 2] [1, 2, 3, 4]"}, {"y: f32[2] [5, 25]"}},
    {"reduce_log_sum", "%y = ReduceLogSum(%x) {axes = [1], keepdims = 0}", {"x: f32[2, 2] [1, 2, 3, 4]"}, {"y: f32[2] [1.0986123, 1.9459101]"}},
    {"reduce_log_sum_exp", "%y = ReduceLogSumExp(%x) {axes = [1], keepdims = 0}", {"x: f32[2, 2] [0, 0, 1, 2]"}, {"y: f32[2] [0.69314718, 2.3132617]"}},
    {"reduce_log_sum_exp_large", "%y = ReduceLogSumExp(%x) {keepdims = 0}", {"x: f32[2] [1000, 1000]"}, {"y: f32[] [1000.6931]"}},
    {"argmax", "%y = ArgMax(%x) {axis = 1, keepdims = 0}", {"x: f32[2, 3] [1, 3, 3, 5, 2, 5]"}, {"y: i64[2] [1, 0]"}},
    {"argmax_last", "%y = ArgMax(%x) {axis = 1, keepdims = 0, select_last_index = 1}", {"x: f32[2, 3] [1, 3, 3, 5, 2, 5]"}, {"y: i64[2] [2, 2]"}},
    {"argmin", "%y = ArgMin(%x)", {"x: f32[2, 3] [1, 3, 3, 5, 2, 5]"}, {"y: i64[1, 3] [0, 1, 0]"}},
    /* ---- data movement ---- */
    {"reshape", "%y = Reshape(%x, %s)", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]", "s: i64[2] [3, -1]"}, {"y: f32[3, 2] [1, 2, 3, 4, 5, 6]"}},
    {"reshape_zero_copies", "%y = Reshape(%x, %s)", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]", "s: i64[3] [0, 3, 1]"}, {"y: f32[2, 3, 1] [1, 2, 3, 4, 5, 6]"}},
    {"reshape_bad_count", "%y = Reshape(%x, %s)", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]", "s: i64[2] [4, -1]"}, {0}, "cannot reshape 6 elements: -1 does not divide evenly"},
    {"flatten", "%y = Flatten(%x)", {"x: f32[2, 1, 3] [1, 2, 3, 4, 5, 6]"}, {"y: f32[2, 3] [1, 2, 3, 4, 5, 6]"}},
    {"flatten_axis0", "%y = Flatten(%x) {axis = 0}", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]"}, {"y: f32[1, 6] [1, 2, 3, 4, 5, 6]"}},
    {"transpose", "%y = Transpose(%x)", {"x: f32[2, 3] [1, 2, 3, 4, 5, 6]"}, {"y: f32[3, 2] [1, 4, 2, 5, 3, 6]"}},
    {"transpose_perm", "%y = Transpose(%x) {perm = [2, 0, 1]}", {"x: f32[2, 1, 2] [1, 2, 3, 4]"}, {"y: f32[2, 2, 1] [1, 3, 2, 4]"}},
    {"transpose_bad_perm", "%y = Transpose(%x) {perm = [0, 0]}", {"x: f32[2, 2] [1, 2, 3, 4]"}, {0}, "attribute 'perm' is not a permutation"},
    {"squeeze", "%y = Squeeze(%x) {axes = [0, 2]}", {"x: f32[1, 3, 1] [1, 2, 3]"}, {"y: f32[3] [1, 2, 3]"}},
    {"squeeze_all", "%y = Squeeze(%x)", {"x: f32[1, 3, 1] [1, 2, 3]"}, {"y: f32[3] [1, 2, 3]"}},
    {"squeeze_axes_input", "%y = Squeeze(%x, %ax)", {"x: f32[1, 3, 1] [1, 2, 3]", "ax: i64[1] [-1]"}, {"y: f32[1, 3] [1, 2, 3]"}},
    {"squeeze_not_one", "%y = Squeeze(%x) {axes = [1]}", {"x: f32[1, 3] [1, 2, 3]"}, {0}, "cannot squeeze axis 1 of size 3"},
    {"unsqueeze", "%y = Unsqueeze(%x) {axes = [0, 2]}", {"x: f32[3] [1, 2, 3]"}, {"y: f32[1, 3, 1] [1, 2, 3]"}},
    {"unsqueeze_axes_input", "%y = Unsqueeze(%x, %ax)", {"x: f32[3] [1, 2, 3]", "ax: i64[1] [-1]"}, {"y: f32[3, 1] [1, 2, 3]"}},
    {"unsqueeze_scalar", "%y = Unsqueeze(%x) {axes = [0]}", {"x: f32[] [7]"}, {"y: f32[1] [7]"}},
    {"concat", "%y = Concat(%a, %b) {axis = 1}", {"a: f32[2, 1] [1, 2]", "b: f32[2, 2] [3, 4, 5, 6]"}, {"y: f32[2, 3] [1, 3, 4, 2, 5, 6]"}},
    {"concat_axis0_neg", "%y = Concat(%a, %b, %c) {axis = -2}", {"a: f32[1, 2] [1, 2]", "b: f32[0, 2] []", "c: f32[1, 2] [3, 4]"}, {"y: f32[2, 2] [1, 2, 3, 4]"}},
    {"concat_rank_mismatch", "%y = Concat(%a, %b) {axis = 0}", {"a: f32[2] [1, 2]", "b: f32[1, 2] [3, 4]"}, {0}, "input 1 has rank 2, input 0 has 1"},
    {"split_even", "%p, %q, %r = Split(%x)", {"x: f32[6] [1, 2, 3, 4, 5, 6]"}, {"p: f32[2] [1, 2]", "q: f32[2] [3, 4]", "r: f32[2] [5, 6]"}},
    {"split_sizes_input", "%p, %q = Split(%x, %s)", {"x: f32[6] [1, 2, 3, 4, 5, 6]", "s: i64[2] [2, 4]"}, {"p: f32[2] [1, 2]", "q: f32[4] [3, 4, 5, 6]"}},
    {"split_axis1", "%p, %q = Split(%x) {axis = 1, split = [1, 3]}", {"x: f32[2, 4] [1, 2, 3, 4, 5, 6, 7, 8]"}, {"p: f32[2, 1] [1, 5]", "q: f32[2, 3] [2, 3, 4, 6, 7, 8]"}},
    {"split_num_outputs_uneven", "%p, %q, %r = Split(%x) {num_outputs = 3}", {"x: f32[5] [1, 2, 3, 4, 5]"}, {"p: f32[2] [1, 2]", "q: f32[2] [3, 4]", "r: f32[1] [5]"}},
    {"split_uneven_rejected", "%p, %q = Split(%x)", {"x: f32[5] [1, 2, 3, 4, 5]"}, {0}, "cannot be split evenly into 2 outputs"},
    {"slice", "%y = Slice(%x, %s, %e, %ax, %st)", {"x: f32[3, 4] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]", "s: i64[2] [1, 0]", "e: i64[2] [3, 4]", "ax: i64[2] [0, 1]", "st: i64[2] [1, 2]"}, {"y: f32[2, 2] [4, 6, 8, 10]"}},
    {"slice_negative_step", "%y = Slice(%x, %s, %e, %ax, %st)", {"x: f32[5] [0, 1, 2, 3, 4]", "s: i64[1] [-1]", "e: i64[1] [-100]", "ax: i64[1] [0]", "st: i64[1] [-2]"}, {"y: f32[3] [4, 2, 0]"}},
    {"slice_clamped", "%y = Slice(%x, %s, %e)", {"x: f32[5] [0, 1, 2, 3, 4]", "s: i64[1] [1]", "e: i64[1] [1000]"}, {"y: f32[4] [1, 2, 3, 4]"}},
    {"slice_extreme_steps", "%y = Slice(%x, %s, %e, %ax, %st)", {"x: f32[3, 4] [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]", "s: i64[2] [-1, 0]", "e: i64[2] [-9223372036854775808, 9223372036854775807]", "ax: i64[2] [0, 1]", "st: i64[2] [-9223372036854775808, 9223372036854775807]"}, {"y: f32[1, 1] [8]"}},
    {"slice_empty", "%y = Slice(%x, %s, %e)", {"x: f32[5] [0, 1, 2, 3, 4]", "s: i64[1] [3]", "e: i64[1] [1]"}, {"y: f32[0] []"}},
    {"gather", "%y = Gather(%x, %i)", {"x: f32[3, 2] [1, 2, 3, 4, 5, 6]", "i: i64[2] [2, 0]"}, {"y: f32[2, 2] [5, 6, 1, 2]"}},
    {"gather_axis1", "%y = Gather(%x, %i) {axis = 1}", {"x: f32[3, 2] [1, 2, 3, 4, 5, 6]", "i: i32[2, 1] [1, 0]"}, {"y: f32[3, 2, 1] [2, 1, 4, 3, 6, 5]"}},
    {"gather_negative_scalar", "%y = Gather(%x, %i)", {"x: f32[3, 2] [1, 2, 3, 4, 5, 6]", "i: i64[] [-1]"}, {"y: f32[2] [5, 6]"}},
    {"gather_out_of_range", "%y = Gather(%x, %i)", {"x: f32[3, 2] [1, 2, 3, 4, 5, 6]", "i: i64[1] [3]"}, {0}, "node 'y' (Gather): index 3 is out of range [-3, 3)"},
    {"gather_elements", "%y = GatherElements(%x, %i) {axis = 1}", {"x: f32[2, 2] [1, 2, 3, 4]", "i: i64[2, 2] [0, 0, 1, 0]"}, {"y: f32[2, 2] [1, 1, 4, 3]"}},
    {"gather_elements_out_of_range", "%y = GatherElements(%x, %i)", {"x: f32[2, 2] [1, 2, 3, 4]", "i: i64[1, 2] [0, -3]"}, {0}, "index -3 is out of range [-2, 2)"},
    {"expand", "%y = Expand(%x, %s)", {"x: f32[3, 1] [1, 2, 3]", "s: i64[2] [3, 2]"}, {"y: f32[3, 2] [1, 1, 2, 2, 3, 3]"}},
    {"expand_rank_up", "%y = Expand(%x, %s)", {"x: f32[3, 1] [1, 2, 3]", "s: i64[3] [2, 1, 1]"}, {"y: f32[2, 3, 1] [1, 2, 3, 1, 2, 3]"}},
    {"tile", "%y = Tile(%x, %r)", {"x: f32[2] [1, 2]", "r: i64[1] [3]"}, {"y: f32[6] [1, 2, 1, 2, 1, 2]"}},
    {"tile_2d", "%y = Tile(%x, %r)", {"x: f32[1, 2] [1, 2]", "r: i64[2] [2, 2]"}, {"y: f32[2, 4] [1, 2, 1, 2, 1, 2, 1, 2]"}},
    {"pad_constant", "%y = Pad(%x, %p, %v)", {"x: f32[2] [1, 2]", "p: i64[2] [1, 2]", "v: f32[] [9]"}, {"y: f32[5] [9, 1, 2, 9, 9]"}},
    {"pad_reflect", "%y = Pad(%x, %p) {mode = \"reflect\"}", {"x: f32[3] [1, 2, 3]", "p: i64[2] [2, 1]"}, {"y: f32[6] [3, 2, 1, 2, 3, 2]"}},
    {"pad_edge", "%y = Pad(%x, %p) {mode = \"edge\"}", {"x: f32[3] [1, 2, 3]", "p: i64[2] [2, 1]"}, {"y: f32[6] [1, 1, 1, 2, 3, 3]"}},
    {"pad_wrap", "%y = Pad(%x, %p) {mode = \"wrap\"}", {"x: f32[3] [1, 2, 3]", "p: i64[2] [1, 1]"}, {"y: f32[5] [3, 1, 2, 3, 1]"}},
    {"pad_negative", "%y = Pad(%x, %p)", {"x: f32[4] [1, 2, 3, 4]", "p: i64[2] [-1, 1]"}, {"y: f32[4] [2, 3, 4, 0]"}},
    {"pad_axes", "%y = Pad(%x, %p, _, %ax)", {"x: f32[1, 2] [1, 2]", "p: i64[2] [1, 1]", "ax: i64[1] [-1]"}, {"y: f32[1, 4] [0, 1, 2, 0]"}},
    {"pad_bad_count", "%y = Pad(%x, %p)", {"x: f32[2, 2] [1, 2, 3, 4]", "p: i64[2] [1, 1]"}, {0}, "'pads' must have 4 values, got 2"},
    {"depth_to_space_dcr", "%y = DepthToSpace(%x) {blocksize = 2}", {"x: f32[1, 8, 1, 1] [0, 1, 2, 3, 4, 5, 6, 7]"}, {"y: f32[1, 2, 2, 2] [0, 2, 4, 6, 1, 3, 5, 7]"}},
    {"depth_to_space_crd", "%y = DepthToSpace(%x) {blocksize = 2, mode = \"CRD\"}", {"x: f32[1, 8, 1, 1] [0, 1, 2, 3, 4, 5, 6, 7]"}, {"y: f32[1, 2, 2, 2] [0, 1, 2, 3, 4, 5, 6, 7]"}},
    {"space_to_depth", "%y = SpaceToDepth(%x) {blocksize = 2}", {"x: f32[1, 1, 2, 2] [1, 2, 3, 4]"}, {"y: f32[1, 4, 1, 1] [1, 2, 3, 4]"}},
    {"gather_nd", "%y = GatherND(%x, %i)", {"x: f32[2, 2] [1, 2, 3, 4]", "i: i64[2, 2] [0, 1, 1, 0]"}, {"y: f32[2] [2, 3]"}},
    {"gather_nd_slices", "%y = GatherND(%x, %i)", {"x: f32[2, 2] [1, 2, 3, 4]", "i: i64[2, 1] [1, 0]"}, {"y: f32[2, 2] [3, 4, 1, 2]"}},
    {"reverse_sequence", "%y = ReverseSequence(%x, %l)", {"x: f32[3, 2] [1, 2, 3, 4, 5, 6]", "l: i64[2] [3, 2]"}, {"y: f32[3, 2] [5, 4, 3, 2, 1, 6]"}},
    {"eye_like", "%y = EyeLike(%x) {k = 1}", {"x: f32[2, 3] [0, 0, 0, 0, 0, 0]"}, {"y: f32[2, 3] [0, 1, 0, 0, 0, 1]"}},
    {"eye_like_dtype", "%y = EyeLike(%x) {dtype = \"i64\"}", {"x: f32[2, 2] [0, 0, 0, 0]"}, {"y: i64[2, 2] [1, 0, 0, 1]"}},
    {"one_hot", "%y = OneHot(%i, %d, %v)", {"i: i64[2] [1, -1]", "d: f32[] [3]", "v: f32[2] [0, 5]"}, {"y: f32[2, 3] [0, 5, 0, 0, 0, 5]"}},
    {"one_hot_axis0", "%y = OneHot(%i, %d, %v) {axis = 0}", {"i: i64[2] [1, -1]", "d: i64[] [3]", "v: f32[2] [0, 5]"}, {"y: f32[3, 2] [0, 0, 5, 0, 0, 5]"}},
    {"trilu_upper", "%y = Trilu(%x)", {"x: f32[3, 3] [1, 2, 3, 4, 5, 6, 7, 8, 9]"}, {"y: f32[3, 3] [1, 2, 3, 0, 5, 6, 0, 0, 9]"}},
    {"trilu_lower_k", "%y = Trilu(%x, %k) {upper = 0}", {"x: f32[3, 3] [1, 2, 3, 4, 5, 6, 7, 8, 9]", "k: i64[] [-1]"}, {"y: f32[3, 3] [0, 0, 0, 4, 0, 0, 7, 8, 0]"}},
    /* ---- opaque ---- */
    {"rnn_relu", "%y, %h = RNN(%x, %w, %r) {hidden_size = 1, activations = [\"Relu\"]}", {"x: f32[2, 1, 1] [1, 2]", "w: f32[1, 1, 1] [1]", "r: f32[1, 1, 1] [0.5]"}, {"y: f32[2, 1, 1, 1] [1, 2.5]", "h: f32[1, 1, 1] [2.5]"}},
    {"rnn_reverse_seq_lens", "%y, %h = RNN(%x, %w, %r, _, %l) {direction = \"reverse\", activations = [\"Relu\"]}", {"x: f32[2, 1, 1] [1, 2]", "w: f32[1, 1, 1] [1]", "r: f32[1, 1, 1] [0.5]", "l: i32[1] [1]"}, {"y: f32[2, 1, 1, 1] [1, 0]", "h: f32[1, 1, 1] [1]"}},
    {"gru", "%y, %h = GRU(%x, %w, %r) {hidden_size = 1}", {"x: f32[1, 1, 1] [1]", "w: f32[1, 3, 1] [0, 0, 1]", "r: f32[1, 3, 1] [0, 0, 0]"}, {"y: f32[1, 1, 1, 1] [0.38079708]", "h: f32[1, 1, 1] [0.38079708]"}},
    {"lstm", "%y, %h, %c = LSTM(%x, %w, %r) {hidden_size = 1}", {"x: f32[1, 1, 1] [1]", "w: f32[1, 4, 1] [0, 0, 0, 1]", "r: f32[1, 4, 1] [0, 0, 0, 0]"}, {"y: f32[1, 1, 1, 1] [0.18169974]", "h: f32[1, 1, 1] [0.18169974]", "c: f32[1, 1, 1] [0.38079708]"}},
    {"cumsum", "%y = CumSum(%x, %ax)", {"x: f32[4] [1, 2, 3, 4]", "ax: i64[] [0]"}, {"y: f32[4] [1, 3, 6, 10]"}},
    {"cumsum_exclusive_reverse", "%y = CumSum(%x, %ax) {exclusive = 1, reverse = 1}", {"x: f32[4] [1, 2, 3, 4]", "ax: i32[] [0]"}, {"y: f32[4] [9, 7, 4, 0]"}},
    {"cumsum_2d", "%y = CumSum(%x, %ax)", {"x: i64[2, 2] [1, 2, 3, 4]", "ax: i64[] [-1]"}, {"y: i64[2, 2] [1, 3, 3, 7]"}},
    {"topk", "%v, %i = TopK(%x, %k)", {"x: f32[2, 4] [1, 4, 2, 3, 8, 5, 6, 7]", "k: i64[1] [2]"}, {"v: f32[2, 2] [4, 3, 8, 7]", "i: i64[2, 2] [1, 3, 0, 3]"}},
    {"topk_smallest_axis0", "%v, %i = TopK(%x, %k) {axis = 0, largest = 0}", {"x: f32[3, 2] [3, 1, 1, 2, 2, 0]", "k: i64[1] [2]"}, {"v: f32[2, 2] [1, 0, 2, 1]", "i: i64[2, 2] [1, 2, 2, 0]"}},
    {"topk_ties", "%v, %i = TopK(%x, %k)", {"x: f32[4] [2, 1, 2, 1]", "k: i64[1] [2]"}, {"v: f32[2] [2, 2]", "i: i64[2] [0, 2]"}},
    {"topk_k_too_big", "%v, %i = TopK(%x, %k)", {"x: f32[2] [1, 2]", "k: i64[1] [3]"}, {0}, "K must be one value in [0, 2]"},
    {"scatter_nd", "%y = ScatterND(%x, %i, %u)", {"x: f32[4] [1, 2, 3, 4]", "i: i64[2, 1] [1, 3]", "u: f32[2] [10, 20]"}, {"y: f32[4] [1, 10, 3, 20]"}},
    {"scatter_nd_add", "%y = ScatterND(%x, %i, %u) {reduction = \"add\"}", {"x: f32[4] [1, 2, 3, 4]", "i: i64[2, 1] [1, 3]", "u: f32[2] [10, 20]"}, {"y: f32[4] [1, 12, 3, 24]"}},
    {"scatter_elements", "%y = ScatterElements(%x, %i, %u)", {"x: f32[2, 2] [0, 0, 0, 0]", "i: i64[1, 2] [1, 0]", "u: f32[1, 2] [5, 6]"}, {"y: f32[2, 2] [0, 6, 5, 0]"}},
    {"scatter_elements_bad_index", "%y = ScatterElements(%x, %i, %u)", {"x: f32[2] [0, 0]", "i: i64[1] [2]", "u: f32[1] [5]"}, {0}, "index 2 is out of range [-2, 2)"},
    {"compress_axis", "%y = Compress(%x, %c) {axis = 0}", {"x: f32[2, 2] [1, 2, 3, 4]", "c: bool[2] [0, 1]"}, {"y: f32[1, 2] [3, 4]"}},
    {"compress_flat", "%y = Compress(%x, %c)", {"x: f32[2, 2] [1, 2, 3, 4]", "c: bool[3] [1, 0, 1]"}, {"y: f32[2] [1, 3]"}},
    {"resize_nearest", "%y = Resize(%x, _, %s)", {"x: f32[1, 1, 1, 2] [1, 2]", "s: f32[4] [1, 1, 1, 2]"}, {"y: f32[1, 1, 1, 4] [1, 1, 2, 2]"}},
    {"resize_linear_sizes", "%y = Resize(%x, _, _, %s) {mode = \"linear\"}", {"x: f32[1, 1, 1, 2] [1, 2]", "s: i64[4] [1, 1, 1, 4]"}, {"y: f32[1, 1, 1, 4] [1, 1.25, 1.75, 2]"}},
    {"resize_align_corners", "%y = Resize(%x, _, _, %s) {mode = \"linear\", coordinate_transformation_mode = \"align_corners\"}", {"x: f32[1, 1, 1, 2] [1, 2]", "s: i64[4] [1, 1, 1, 3]"}, {"y: f32[1, 1, 1, 3] [1, 1.5, 2]"}},
    {"resize_both_given", "%y = Resize(%x, _, %s, %z)", {"x: f32[1, 2] [1, 2]", "s: f32[2] [1, 2]", "z: i64[2] [1, 4]"}, {0}, "exactly one of scales and sizes must be given"},
    {"non_zero", "%y = NonZero(%x)", {"x: f32[2, 2] [1, 0, 0, 3]"}, {"y: i64[2, 2] [0, 1, 0, 1]"}},
    {"einsum_matmul", "%y = Einsum(%a, %b) {equation = \"ij,jk->ik\"}", {"a: f32[2, 2] [1, 2, 3, 4]", "b: f32[2, 2] [5, 6, 7, 8]"}, {"y: f32[2, 2] [19, 22, 43, 50]"}},
    {"einsum_diagonal", "%y = Einsum(%a) {equation = \"ii->i\"}", {"a: f32[2, 2] [1, 2, 3, 4]"}, {"y: f32[2] [1, 4]"}},
    {"einsum_implicit_dot", "%y = Einsum(%a, %b) {equation = \"ij,ij\"}", {"a: f32[2, 2] [1, 2, 3, 4]", "b: f32[2, 2] [1, 1, 1, 1]"}, {"y: f32[] [10]"}},
    {"einsum_ellipsis", "%y = Einsum(%a) {equation = \"...ij->...ji\"}", {"a: f32[2, 1, 2] [1, 2, 3, 4]"}, {"y: f32[2, 2, 1] [1, 2, 3, 4]"}},
    {"einsum_bad_label", "%y = Einsum(%a) {equation = \"ij->k\"}", {"a: f32[2, 2] [1, 2, 3, 4]"}, {0}, "output label 'k' is on no input"},
    {"shape", "%y = Shape(%x)", {"x: f32[2, 3, 4] [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]"}, {"y: i64[3] [2, 3, 4]"}},
    {"shape_start_end", "%y = Shape(%x) {start = 1, end = -1}", {"x: f32[2, 3, 1] [0, 0, 0, 0, 0, 0]"}, {"y: i64[1] [3]"}},
    {"size", "%y = Size(%x)", {"x: f32[2, 3] [0, 0, 0, 0, 0, 0]"}, {"y: i64[] [6]"}},
    {"constant_of_shape", "%y = ConstantOfShape(%s) {value = i64[1] [7]}", {"s: i64[2] [2, 3]"}, {"y: i64[2, 3] [7, 7, 7, 7, 7, 7]"}},
    {"constant_of_shape_default", "%y = ConstantOfShape(%s)", {"s: i64[1] [2]"}, {"y: f32[2] [0, 0]"}},
    {"range", "%y = Range(%a, %b, %c)", {"a: f32[] [1]", "b: f32[] [2]", "c: f32[] [0.25]"}, {"y: f32[4] [1, 1.25, 1.5, 1.75]"}},
    {"range_int_down", "%y = Range(%a, %b, %c)", {"a: i64[] [10]", "b: i64[] [4]", "c: i64[] [-3]"}, {"y: i64[2] [10, 7]"}},
    {"range_zero_delta", "%y = Range(%a, %b, %c)", {"a: i64[] [1]", "b: i64[] [4]", "c: i64[] [0]"}, {0}, "delta must be non-zero"},
    {"nll_loss_mean", "%y = NegativeLogLikelihoodLoss(%x, %t)", {"x: f32[2, 3] [-1, -2, -3, -4, -5, -6]", "t: i64[2] [2, 0]"}, {"y: f32[] [3.5]"}},
    {"nll_loss_weighted", "%y = NegativeLogLikelihoodLoss(%x, %t, %w)", {"x: f32[2, 3] [-1, -2, -3, -4, -5, -6]", "t: i64[2] [2, 0]", "w: f32[3] [1, 2, 3]"}, {"y: f32[] [3.25]"}},
    {"nll_loss_none_ignore", "%y = NegativeLogLikelihoodLoss(%x, %t) {reduction = \"none\", ignore_index = 0}", {"x: f32[2, 3] [-1, -2, -3, -4, -5, -6]", "t: i32[2] [2, 0]"}, {"y: f32[2] [3, 0]"}},
    {"nll_loss_spatial_sum", "%y = NegativeLogLikelihoodLoss(%x, %t) {reduction = \"sum\"}", {"x: f32[1, 2, 2] [-1, -2, -3, -4]", "t: i64[1, 2] [1, 0]"}, {"y: f32[] [5]"}},
    {"nll_loss_bad_target", "%y = NegativeLogLikelihoodLoss(%x, %t)", {"x: f32[1, 2] [-1, -2]", "t: i64[1] [2]"}, {0}, "target 2 is not a class in [0, 2)"},
    {"softmax_cross_entropy", "%y, %lp = SoftmaxCrossEntropyLoss(%x, %t)", {"x: f32[1, 2] [0, 0]", "t: i64[1] [1]"}, {"y: f32[] [0.69314718]", "lp: f32[1, 2] [-0.69314718, -0.69314718]"}},
    {"adagrad", "%x2, %h2 = Adagrad(%r, %t, %x, %g, %h)", {"r: f32[] [0.1]", "t: i64[] [0]", "x: f32[1] [1]", "g: f32[1] [2]", "h: f32[1] [0]"}, {"x2: f32[1] [0.90000005]", "h2: f32[1] [4]"}},
    {"momentum", "%x2, %v2 = Momentum(%r, %t, %x, %g, %v) {alpha = 0.9, beta = 1.0, mode = \"standard\", norm_coefficient = 0.0}", {"r: f32[] [0.1]", "t: i64[] [1]", "x: f32[1] [1]", "g: f32[1] [2]", "v: f32[1] [1]"}, {"x2: f32[1] [0.71]", "v2: f32[1] [2.9]"}},
    {"momentum_nesterov", "%x2, %v2 = Momentum(%r, %t, %x, %g, %v) {alpha = 0.9, beta = 1.0, mode = \"nesterov\", norm_coefficient = 0.0}", {"r: f32[] [0.1]", "t: i64[] [1]", "x: f32[1] [1]", "g: f32[1] [2]", "v: f32[1] [1]"}, {"x2: f32[1] [0.539]", "v2: f32[1] [2.9]"}},
    {"adam", "%x2, %v2, %h2 = Adam(%r, %t, %x, %g, %v, %h)", {"r: f32[] [0.1]", "t: i64[] [0]", "x: f32[1] [1]", "g: f32[1] [2]", "v: f32[1] [0]", "h: f32[1] [0]"}, {"x2: f32[1] [0.68377723]", "v2: f32[1] [0.2]", "h2: f32[1] [0.004]"}},
    /* the counter-based stream's first values, pinned (computed independently in Python
     * from runtime/rng.h's formula): a change to the stream shows here */
    {"dropout_mask", "%y = DropoutMask(%a, %s) {ratio = 0.5, salt = 3}", {"a: f32[8] [1, 2, 3, 4, 5, 6, 7, 8]", "s: i64[] [7]"}, {"y: f32[8] [2, 0, 0, 2, 0, 2, 0, 0]"}},
    {"dropout_mask_2d", "%y = DropoutMask(%a, %s) {ratio = 0.25}", {"a: f64[2, 3] [0, 0, 0, 0, 0, 0]", "s: i64[] [-5]"}, {"y: f64[2, 3] [1.3333333333333333, 1.3333333333333333, 0, 1.3333333333333333, 1.3333333333333333, 1.3333333333333333]"}},
    {"dropout_mask_ratio_one", "%y = DropoutMask(%a, %s) {ratio = 1.0}", {"a: f32[2] [1, 2]", "s: i64[] [7]"}, {0}, "attribute 'ratio' must be in [0, 1), got 1"},
    {"dropout_mask_seed_vector", "%y = DropoutMask(%a, %s) {ratio = 0.5}", {"a: f32[2] [1, 2]", "s: i64[1] [7]"}, {0}, "input 1 (seed) must be an i64 scalar"},
    {"constant", "%y = Constant() {value = f32[2, 2] [1, 2, 3, 4]}\n%z = Add(%y, %a)", {"a: f32[] [1]"}, {"z: f32[2, 2] [2, 3, 4, 5]"}},
    {"constant_value_ints", "%y = Constant() {value_ints = [3, 4]}\n%z = Mul(%y, %a)", {"a: i64[] [2]"}, {"z: i64[2] [6, 8]"}},
    {"constant_value_float", "%y = Constant() {value_float = 2.5}\n%z = Mul(%y, %a)", {"a: f32[] [2]"}, {"z: f32[] [5]"}},
    {"constant_two_values", "%y = Constant() {value_int = 1, value_float = 2.0}\n%z = Identity(%y)", {"a: f32[] [2]"}, {0}, "exactly one of value"},
};

/* MODE_SHAPE_CONSTS: integer inputs (shapes, axes, pads, indices) become constants, the
 * rest graph inputs, as compiled models need their shapes static. */
enum { MODE_INPUTS, MODE_CONSTS, MODE_SHAPE_CONSTS };

/* Splits "name: type [data]" into its name, its type ("f32[2, 3]") and its data. */
static void split_literal(const char *lit, char *name, char *type, char *data) {
    const char *colon = strchr(lit, ':');
    assert_non_null(colon);
    snprintf(name, 64, "%.*s", (int)(colon - lit), lit);
    const char *t = colon + 2, *end = strchr(t, ']');
    assert_non_null(end);
    snprintf(type, 128, "%.*s", (int)(end - t + 1), t);
    snprintf(data, 4096, "%s", end + 2);
}

/* The graph text of a case: its inputs as graph inputs or as constants. Caller frees. */
static char *case_source(const op_case *c, int mode) {
    char *src = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&src, &len);
    fprintf(f, "graph %s {\n", c->name);
    for (int i = 0; i < ARRAY_LEN(c->inputs) && c->inputs[i]; i++) {
        char name[64], type[128], data[4096];
        split_literal(c->inputs[i], name, type, data);
        bool as_const = mode == MODE_CONSTS || (mode == MODE_SHAPE_CONSTS && (type[0] == 'i' || type[0] == 'u'));
        if (!as_const)
            fprintf(f, "  input %%%s: %s\n", name, type);
        else
            fprintf(f, "  const %%%s: %s = %s\n", name, type, data);
    }
    fprintf(f, "  %s\n  output ", c->nodes);
    for (int i = 0; i < ARRAY_LEN(c->outputs) && c->outputs[i]; i++) {
        char name[64], type[128], data[4096];
        split_literal(c->outputs[i], name, type, data);
        fprintf(f, "%s%%%s", i ? ", " : "", name);
    }
    if (!c->outputs[0]) { /* error cases: the last node's first output */
        const char *line = strrchr(c->nodes, '\n') ? strrchr(c->nodes, '\n') + 1 : c->nodes;
        const char *name = strchr(line, '%') + 1;
        fprintf(f, "%%%.*s", (int)strcspn(name, " ,:="), name);
    }
    fprintf(f, "\n}\n");
    fclose(f);
    return src;
}

#endif
