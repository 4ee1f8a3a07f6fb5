/*
 * shape_eltwise.c — shape rules of the elementwise ops: broadcasting binaries,
 * comparisons, logic, variadics, Where, the unary math and activations, Clip, Cast,
 * Identity and Dropout. The output shape is the broadcast of the inputs; rules check
 * dtypes as ONNX's type constraints do.
 */
#include "passes/shape.h"

#include <string.h>

/* Broadcasts inputs [0, count) into out[0] with dtype dt. */
static kiln_status broadcast_all(shape_ctx *c, int count, kiln_dtype dt) {
    kiln_tensor acc = *c->in[0];
    for (int i = 1; i < count; i++) {
        kiln_status st = shape_broadcast(c, &acc, c->in[i], &acc);
        if (st)
            return st;
    }
    shape_set(c, 0, dt, acc.rank, acc.dims);
    return KILN_OK;
}

static kiln_status arith(shape_ctx *c) {
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_numeric, "numeric")) || (st = shape_same_dtype(c, 0, 1)))
        return st;
    return broadcast_all(c, 2, c->in[0]->dtype);
}

static kiln_status compare(shape_ctx *c) {
    kiln_status st = shape_same_dtype(c, 0, 1);
    return st ? st : broadcast_all(c, 2, KILN_BOOL);
}

static kiln_status logic(shape_ctx *c) {
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_bool, "bool")) ||
        (st = shape_require(c, 1, shape_is_bool, "bool")))
        return st;
    return broadcast_all(c, 2, KILN_BOOL);
}

static kiln_status variadic(shape_ctx *c) {
    kiln_status st = shape_require(c, 0, shape_is_numeric, "numeric");
    for (int i = 1; !st && i < c->in_count; i++)
        st = shape_same_dtype(c, 0, i);
    return st ? st : broadcast_all(c, c->in_count, c->in[0]->dtype);
}

static kiln_status same_as_input(shape_ctx *c, bool (*ok)(kiln_dtype), const char *what) {
    kiln_status st = shape_require(c, 0, ok, what);
    if (!st)
        shape_set(c, 0, c->in[0]->dtype, c->in[0]->rank, c->in[0]->dims);
    return st;
}

static kiln_status unary_float(shape_ctx *c) {
    return same_as_input(c, shape_is_float, "a float tensor");
}

static kiln_status unary_numeric(shape_ctx *c) {
    return same_as_input(c, shape_is_numeric, "numeric");
}

kiln_status shape_add(shape_ctx *c) { return arith(c); }
kiln_status shape_sub(shape_ctx *c) { return arith(c); }
kiln_status shape_mul(shape_ctx *c) { return arith(c); }
kiln_status shape_div(shape_ctx *c) { return arith(c); }
kiln_status shape_mod(shape_ctx *c) { return arith(c); }

kiln_status shape_pow(shape_ctx *c) {
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_numeric, "numeric")) ||
        (st = shape_require(c, 1, shape_is_numeric, "numeric")))
        return st;
    return broadcast_all(c, 2, c->in[0]->dtype); /* the exponent may have another dtype */
}

kiln_status shape_prelu(shape_ctx *c) {
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_numeric, "numeric")) || (st = shape_same_dtype(c, 0, 1)))
        return st;
    return broadcast_all(c, 2, c->in[0]->dtype);
}

kiln_status shape_equal(shape_ctx *c) { return compare(c); }
kiln_status shape_less(shape_ctx *c) { return compare(c); }
kiln_status shape_less_or_equal(shape_ctx *c) { return compare(c); }
kiln_status shape_greater(shape_ctx *c) { return compare(c); }
kiln_status shape_greater_or_equal(shape_ctx *c) { return compare(c); }
kiln_status shape_and(shape_ctx *c) { return logic(c); }
kiln_status shape_or(shape_ctx *c) { return logic(c); }
kiln_status shape_xor(shape_ctx *c) { return logic(c); }
kiln_status shape_max(shape_ctx *c) { return variadic(c); }
kiln_status shape_min(shape_ctx *c) { return variadic(c); }
kiln_status shape_sum(shape_ctx *c) { return variadic(c); }
kiln_status shape_mean(shape_ctx *c) { return variadic(c); }

kiln_status shape_where(shape_ctx *c) {
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_bool, "bool")) || (st = shape_same_dtype(c, 1, 2)))
        return st;
    return broadcast_all(c, 3, c->in[1]->dtype);
}

kiln_status shape_not(shape_ctx *c) { return same_as_input(c, shape_is_bool, "bool"); }
kiln_status shape_relu(shape_ctx *c) { return unary_numeric(c); }
kiln_status shape_leaky_relu(shape_ctx *c) { return unary_float(c); }
kiln_status shape_elu(shape_ctx *c) { return unary_float(c); }
kiln_status shape_selu(shape_ctx *c) { return unary_float(c); }
kiln_status shape_celu(shape_ctx *c) { return unary_float(c); }
kiln_status shape_sigmoid(shape_ctx *c) { return unary_float(c); }
kiln_status shape_hard_sigmoid(shape_ctx *c) { return unary_float(c); }
kiln_status shape_hard_swish(shape_ctx *c) { return unary_float(c); }
kiln_status shape_tanh(shape_ctx *c) { return unary_float(c); }
kiln_status shape_softplus(shape_ctx *c) { return unary_float(c); }
kiln_status shape_softsign(shape_ctx *c) { return unary_float(c); }
kiln_status shape_mish(shape_ctx *c) { return unary_float(c); }
kiln_status shape_silu(shape_ctx *c) { return unary_float(c); }
kiln_status shape_erf(shape_ctx *c) { return unary_float(c); }
kiln_status shape_exp(shape_ctx *c) { return unary_float(c); }
kiln_status shape_log(shape_ctx *c) { return unary_float(c); }
kiln_status shape_sqrt(shape_ctx *c) { return unary_float(c); }
kiln_status shape_reciprocal(shape_ctx *c) { return unary_float(c); }
kiln_status shape_neg(shape_ctx *c) { return unary_numeric(c); }
kiln_status shape_abs(shape_ctx *c) { return unary_numeric(c); }
kiln_status shape_sign(shape_ctx *c) { return unary_numeric(c); }
kiln_status shape_floor(shape_ctx *c) { return unary_float(c); }
kiln_status shape_ceil(shape_ctx *c) { return unary_float(c); }
kiln_status shape_round(shape_ctx *c) { return unary_float(c); }
kiln_status shape_sin(shape_ctx *c) { return unary_float(c); }
kiln_status shape_cos(shape_ctx *c) { return unary_float(c); }
static bool any_dtype(kiln_dtype dt) {
    return dt != KILN_DTYPE_INVALID;
}
kiln_status shape_identity(shape_ctx *c) { return same_as_input(c, any_dtype, "a tensor"); }

kiln_status shape_gelu(shape_ctx *c) {
    const char *approx = ir_attr_string(c->node, "approximate");
    if (strcmp(approx, "none") && strcmp(approx, "tanh"))
        return shape_error(c, "attribute 'approximate': expected \"none\" or \"tanh\", got \"%s\"",
                           approx);
    return unary_float(c);
}

kiln_status shape_tan(shape_ctx *c) { return unary_float(c); }
kiln_status shape_asin(shape_ctx *c) { return unary_float(c); }
kiln_status shape_acos(shape_ctx *c) { return unary_float(c); }
kiln_status shape_atan(shape_ctx *c) { return unary_float(c); }
kiln_status shape_sinh(shape_ctx *c) { return unary_float(c); }
kiln_status shape_cosh(shape_ctx *c) { return unary_float(c); }
kiln_status shape_asinh(shape_ctx *c) { return unary_float(c); }
kiln_status shape_acosh(shape_ctx *c) { return unary_float(c); }
kiln_status shape_atanh(shape_ctx *c) { return unary_float(c); }
kiln_status shape_thresholded_relu(shape_ctx *c) { return unary_float(c); }
kiln_status shape_shrink(shape_ctx *c) { return unary_numeric(c); }

static kiln_status float_test(shape_ctx *c) {
    kiln_status st = shape_require(c, 0, shape_is_float, "a float tensor");
    if (!st)
        shape_set(c, 0, KILN_BOOL, c->in[0]->rank, c->in[0]->dims);
    return st;
}
kiln_status shape_is_nan(shape_ctx *c) { return float_test(c); }
kiln_status shape_is_inf(shape_ctx *c) { return float_test(c); }

kiln_status shape_cast_like(shape_ctx *c) {
    shape_set(c, 0, c->in[1]->dtype, c->in[0]->rank, c->in[0]->dims);
    return KILN_OK;
}

kiln_status shape_clip(shape_ctx *c) {
    kiln_status st = shape_require(c, 0, shape_is_numeric, "numeric");
    for (int i = 1; !st && i < c->in_count; i++) {
        if (!c->in[i])
            continue;
        if ((st = shape_same_dtype(c, 0, i)))
            return st;
        if (c->in[i]->rank != 0 && ir_type_count(c->in[i]) != 1)
            return shape_error(c, "input %d (%s) must be a scalar", i, i == 1 ? "min" : "max");
    }
    return st ? st : unary_numeric(c);
}

kiln_status shape_cast(shape_ctx *c) {
    const char *to = ir_attr_string(c->node, "to");
    kiln_dtype dt = ir_dtype_lookup(to);
    if (dt == KILN_DTYPE_INVALID)
        return shape_error(c, "attribute 'to': unknown dtype '%s'", to);
    shape_set(c, 0, dt, c->in[0]->rank, c->in[0]->dims);
    return KILN_OK;
}

kiln_status shape_dropout(shape_ctx *c) {
    kiln_status st = unary_float(c);
    if (!st && c->in_count > 1 && c->in[1] && c->in[1]->rank != 0)
        return shape_error(c, "input 1 (ratio) must be a scalar");
    if (!st && c->in_count > 2 && c->in[2] && (c->in[2]->rank != 0 || c->in[2]->dtype != KILN_BOOL))
        return shape_error(c, "input 2 (training_mode) must be a bool scalar");
    if (!st && c->out_count > 1)
        shape_set(c, 1, KILN_BOOL, c->in[0]->rank, c->in[0]->dims);
    return st;
}
