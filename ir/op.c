/*
 * op.c — ir_op_table: the facts about every op, expanded from ir/ops.def, and each op's
 * attribute schema with ONNX's defaults. Rules read attributes through ir_attr_int() and
 * friends (ir/graph.h), which fall back to the defaults declared here, so no rule repeats
 * a default.
 */
#include "ir/op.h"

#include <string.h>

#define A_INT(n, d) {n, IR_ATTR_INT, false, d, 0, NULL}
#define A_FLOAT(n, d) {n, IR_ATTR_FLOAT, false, 0, d, NULL}
#define A_STRING(n, d) {n, IR_ATTR_STRING, false, 0, 0, d}
#define A_INTS(n) {n, IR_ATTR_INTS, false, 0, 0, NULL}
#define A_FLOATS(n) {n, IR_ATTR_FLOATS, false, 0, 0, NULL}
#define A_STRINGS(n) {n, IR_ATTR_STRINGS, false, 0, 0, NULL}
#define A_TENSOR(n) {n, IR_ATTR_TENSOR, false, 0, 0, NULL}
#define A_REQUIRED(n, kind) {n, kind, true, 0, 0, NULL}
#define A_END {NULL, 0, false, 0, 0, NULL}
#define NO_ATTRS(fn) static const ir_attr_spec attrs_##fn[] = {A_END};
#define ATTRS(fn, ...) static const ir_attr_spec attrs_##fn[] = {__VA_ARGS__, A_END};

NO_ATTRS(add) NO_ATTRS(sub) NO_ATTRS(mul) NO_ATTRS(div) NO_ATTRS(pow) NO_ATTRS(prelu)
NO_ATTRS(equal) NO_ATTRS(less) NO_ATTRS(less_or_equal) NO_ATTRS(greater)
NO_ATTRS(greater_or_equal) NO_ATTRS(and) NO_ATTRS(or) NO_ATTRS(xor) NO_ATTRS(max) NO_ATTRS(min)
NO_ATTRS(sum) NO_ATTRS(mean) NO_ATTRS(where) NO_ATTRS(not) NO_ATTRS(relu) NO_ATTRS(sigmoid)
NO_ATTRS(hard_swish) NO_ATTRS(tanh) NO_ATTRS(softplus) NO_ATTRS(softsign) NO_ATTRS(mish)
NO_ATTRS(silu) NO_ATTRS(erf) NO_ATTRS(exp) NO_ATTRS(log) NO_ATTRS(sqrt) NO_ATTRS(reciprocal)
NO_ATTRS(neg) NO_ATTRS(abs) NO_ATTRS(sign) NO_ATTRS(floor) NO_ATTRS(ceil) NO_ATTRS(round)
NO_ATTRS(sin) NO_ATTRS(cos) NO_ATTRS(clip) NO_ATTRS(identity) NO_ATTRS(matmul)
NO_ATTRS(global_average_pool) NO_ATTRS(global_max_pool) NO_ATTRS(slice) NO_ATTRS(expand)
NO_ATTRS(tile) NO_ATTRS(size) NO_ATTRS(range) NO_ATTRS(tan) NO_ATTRS(asin) NO_ATTRS(acos)
NO_ATTRS(atan) NO_ATTRS(sinh) NO_ATTRS(cosh) NO_ATTRS(asinh) NO_ATTRS(acosh) NO_ATTRS(atanh)
NO_ATTRS(is_nan) NO_ATTRS(cast_like) NO_ATTRS(non_zero)

/* Python's Mod (sign of the divisor) unless fmod=1 (sign of the dividend, C's fmod). */
ATTRS(mod, A_INT("fmod", 0))
ATTRS(leaky_relu, A_FLOAT("alpha", 0.01))
ATTRS(elu, A_FLOAT("alpha", 1.0))
ATTRS(selu, A_FLOAT("alpha", 1.67326319217681884765625), A_FLOAT("gamma", 1.05070102214813232421875))
ATTRS(celu, A_FLOAT("alpha", 1.0))
ATTRS(thresholded_relu, A_FLOAT("alpha", 1.0))
ATTRS(shrink, A_FLOAT("bias", 0.0), A_FLOAT("lambd", 0.5))
ATTRS(is_inf, A_INT("detect_negative", 1), A_INT("detect_positive", 1))
/* ignore_index has no default: when absent, no target is ignored */
ATTRS(nll_loss, A_STRING("reduction", "mean"), A_INT("ignore_index", 0))
ATTRS(softmax_cross_entropy, A_STRING("reduction", "mean"), A_INT("ignore_index", 0))
ATTRS(hardmax, A_INT("axis", -1))
ATTRS(lrn, A_FLOAT("alpha", 0.0001), A_FLOAT("beta", 0.75), A_FLOAT("bias", 1.0),
      A_REQUIRED("size", IR_ATTR_INT))
ATTRS(lp_norm, A_INT("axis", -1), A_INT("p", 2))
ATTRS(mvn, A_INTS("axes")) /* default [0, 2, 3], in the rule */
ATTRS(max_unpool, A_REQUIRED("kernel_shape", IR_ATTR_INTS), A_INTS("pads"), A_INTS("strides"))
ATTRS(depth_to_space, A_REQUIRED("blocksize", IR_ATTR_INT), A_STRING("mode", "DCR"))
ATTRS(space_to_depth, A_REQUIRED("blocksize", IR_ATTR_INT))
ATTRS(gather_nd, A_INT("batch_dims", 0))
ATTRS(reverse_sequence, A_INT("batch_axis", 1), A_INT("time_axis", 0))
/* dtype: a kiln dtype name; absent: the input's dtype */
ATTRS(eye_like, A_STRING("dtype", ""), A_INT("k", 0))
ATTRS(one_hot, A_INT("axis", -1))
ATTRS(scatter_nd, A_STRING("reduction", "none"))
ATTRS(scatter_elements, A_INT("axis", 0), A_STRING("reduction", "none"))
ATTRS(compress, A_INT("axis", 0)) /* absent: the input is flattened first */
ATTRS(resize, A_INT("antialias", 0), A_INTS("axes"), A_STRING("coordinate_transformation_mode", "half_pixel"),
      A_FLOAT("cubic_coeff_a", -0.75), A_INT("exclude_outside", 0), A_FLOAT("extrapolation_value", 0.0),
      A_STRING("keep_aspect_ratio_policy", "stretch"), A_STRING("mode", "nearest"),
      A_STRING("nearest_mode", "round_prefer_floor"))
#define RNN_ATTRS A_FLOATS("activation_alpha"), A_FLOATS("activation_beta"), A_STRINGS("activations"), \
    A_FLOAT("clip", 0), A_STRING("direction", "forward"), A_INT("hidden_size", 0), A_INT("layout", 0)
ATTRS(rnn, RNN_ATTRS)
ATTRS(gru, RNN_ATTRS, A_INT("linear_before_reset", 0))
ATTRS(lstm, RNN_ATTRS, A_INT("input_forget", 0))
ATTRS(adagrad, A_FLOAT("decay_factor", 0.0), A_FLOAT("epsilon", 1e-6), A_FLOAT("norm_coefficient", 0.0))
ATTRS(momentum, A_REQUIRED("alpha", IR_ATTR_FLOAT), A_REQUIRED("beta", IR_ATTR_FLOAT),
      A_REQUIRED("mode", IR_ATTR_STRING), A_REQUIRED("norm_coefficient", IR_ATTR_FLOAT))
ATTRS(adam, A_FLOAT("alpha", 0.9), A_FLOAT("beta", 0.999), A_FLOAT("epsilon", 1e-6),
      A_FLOAT("norm_coefficient", 0.0), A_FLOAT("norm_coefficient_post", 0.0))
ATTRS(einsum, A_REQUIRED("equation", IR_ATTR_STRING))
ATTRS(hard_sigmoid, A_FLOAT("alpha", 0.2), A_FLOAT("beta", 0.5))
ATTRS(gelu, A_STRING("approximate", "none"))
/* `to` names a kiln dtype ("f32", "i64", ...); the ONNX importer translates codes */
ATTRS(cast, A_REQUIRED("to", IR_ATTR_STRING), A_INT("saturate", 1))
ATTRS(dropout, A_INT("seed", 0))
ATTRS(dropout_mask, A_REQUIRED("ratio", IR_ATTR_FLOAT), A_INT("salt", 0))
ATTRS(gemm, A_FLOAT("alpha", 1.0), A_FLOAT("beta", 1.0), A_INT("transA", 0), A_INT("transB", 0))
ATTRS(conv, A_STRING("auto_pad", "NOTSET"), A_INTS("dilations"), A_INT("group", 1),
      A_INTS("kernel_shape"), A_INTS("pads"), A_INTS("strides"))
ATTRS(conv_nchwc, A_STRING("auto_pad", "NOTSET"), A_INTS("dilations"), A_INT("group", 1), A_INTS("kernel_shape"),
      A_INTS("pads"), A_INTS("strides"))
ATTRS(winograd_input, A_INTS("pads"))
ATTRS(winograd_output, A_REQUIRED("output_size", IR_ATTR_INTS), A_INT("block", 16))
ATTRS(conv_transpose, A_STRING("auto_pad", "NOTSET"), A_INTS("dilations"), A_INT("group", 1),
      A_INTS("kernel_shape"), A_INTS("output_padding"), A_INTS("output_shape"), A_INTS("pads"),
      A_INTS("strides"))
ATTRS(max_pool, A_STRING("auto_pad", "NOTSET"), A_INT("ceil_mode", 0), A_INTS("dilations"),
      A_REQUIRED("kernel_shape", IR_ATTR_INTS), A_INTS("pads"), A_INT("storage_order", 0),
      A_INTS("strides"))
ATTRS(average_pool, A_STRING("auto_pad", "NOTSET"), A_INT("ceil_mode", 0),
      A_INT("count_include_pad", 0), A_INTS("dilations"), A_REQUIRED("kernel_shape", IR_ATTR_INTS),
      A_INTS("pads"), A_INTS("strides"))
ATTRS(batch_norm, A_FLOAT("epsilon", 1e-5), A_FLOAT("momentum", 0.9), A_INT("training_mode", 0))
ATTRS(layer_norm, A_INT("axis", -1), A_FLOAT("epsilon", 1e-5), A_INT("stash_type", 1))
ATTRS(instance_norm, A_FLOAT("epsilon", 1e-5))
ATTRS(softmax, A_INT("axis", -1))
ATTRS(log_softmax, A_INT("axis", -1))
#define REDUCE_ATTRS(fn) ATTRS(fn, A_INTS("axes"), A_INT("keepdims", 1), A_INT("noop_with_empty_axes", 0))
REDUCE_ATTRS(reduce_sum) REDUCE_ATTRS(reduce_mean) REDUCE_ATTRS(reduce_max) REDUCE_ATTRS(reduce_min)
REDUCE_ATTRS(reduce_prod) REDUCE_ATTRS(reduce_l1) REDUCE_ATTRS(reduce_l2)
REDUCE_ATTRS(reduce_sum_square) REDUCE_ATTRS(reduce_log_sum) REDUCE_ATTRS(reduce_log_sum_exp)
ATTRS(argmax, A_INT("axis", 0), A_INT("keepdims", 1), A_INT("select_last_index", 0))
ATTRS(argmin, A_INT("axis", 0), A_INT("keepdims", 1), A_INT("select_last_index", 0))
ATTRS(reshape, A_INT("allowzero", 0))
ATTRS(flatten, A_INT("axis", 1))
ATTRS(transpose, A_INTS("perm"))
ATTRS(squeeze, A_INTS("axes"))
ATTRS(unsqueeze, A_INTS("axes"))
ATTRS(concat, A_REQUIRED("axis", IR_ATTR_INT))
ATTRS(split, A_INT("axis", 0), A_INTS("split"), A_INT("num_outputs", 0))
ATTRS(gather, A_INT("axis", 0))
ATTRS(gather_elements, A_INT("axis", 0))
ATTRS(pad, A_STRING("mode", "constant"))
ATTRS(trilu, A_INT("upper", 1))
ATTRS(cumsum, A_INT("exclusive", 0), A_INT("reverse", 0))
ATTRS(topk, A_INT("axis", -1), A_INT("largest", 1), A_INT("sorted", 1))
ATTRS(shape, A_INT("start", 0), A_INT("end", INT64_MAX))
ATTRS(constant_of_shape, A_TENSOR("value"))
ATTRS(constant, A_TENSOR("value"), A_FLOAT("value_float", 0), A_FLOATS("value_floats"),
      A_INT("value_int", 0), A_INTS("value_ints"))

const ir_op_info ir_op_table[IR_OP_COUNT] = {
#define OP(ID, fn, name, kind, imin, imax, omin, omax, flags) \
    [IR_OP_##ID] = {name, IR_KIND_##kind, imin, imax, omin, omax, flags, attrs_##fn},
#include "ir/ops.def"
#undef OP
};

ir_op ir_op_lookup(const char *name) {
    for (int op = 0; op < IR_OP_COUNT; op++)
        if (!strcmp(ir_op_table[op].name, name))
            return (ir_op)op;
    return IR_OP_COUNT;
}

const ir_attr_spec *ir_op_attr_spec(ir_op op, const char *attr) {
    for (const ir_attr_spec *s = ir_op_table[op].attrs; s->name; s++)
        if (!strcmp(s->name, attr))
            return s;
    return NULL;
}

const char *ir_attr_kind_name(ir_attr_kind kind) {
    static const char *const names[] = {"int", "float", "string", "ints", "floats", "strings", "tensor"};
    return names[kind];
}

const char *ir_op_kind_name(ir_op_kind kind) {
    static const char *const names[] = {"elementwise", "injective", "reduction", "anchor", "opaque"};
    return names[kind];
}

bool ir_op_input_static(ir_op op, int slot) {
    switch (op) {
    case IR_OP_CONSTANT_OF_SHAPE: case IR_OP_NON_ZERO:
        return slot == 0;
    case IR_OP_RANGE:
        return slot <= 2;
    case IR_OP_SLICE:
        return slot >= 1 && slot <= 4;
    case IR_OP_RESIZE:
        return slot >= 1 && slot <= 3;
    case IR_OP_PAD:
        return slot == 1 || slot == 3;
    case IR_OP_RESHAPE: case IR_OP_EXPAND: case IR_OP_TILE: case IR_OP_SQUEEZE: case IR_OP_UNSQUEEZE:
    case IR_OP_SPLIT: case IR_OP_ONE_HOT: case IR_OP_TOPK: case IR_OP_CUMSUM: case IR_OP_COMPRESS:
    case IR_OP_REDUCE_SUM: case IR_OP_REDUCE_MEAN: case IR_OP_REDUCE_MAX: case IR_OP_REDUCE_MIN:
    case IR_OP_REDUCE_PROD: case IR_OP_REDUCE_L1: case IR_OP_REDUCE_L2: case IR_OP_REDUCE_SUM_SQUARE:
    case IR_OP_REDUCE_LOG_SUM: case IR_OP_REDUCE_LOG_SUM_EXP:
        return slot == 1;
    default:
        return false;
    }
}
