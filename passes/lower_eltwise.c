/*
 * lower_eltwise.c — loop lowering of the elementwise ops: one loop nest over the output,
 * each input read at its broadcast index, a scalar expression per op, the result stored
 * in the output's dtype. f16/bf16 values are computed in f32. Float math follows the
 * reference interpreter's formulas, evaluated in the tensor's own precision.
 */
#include "passes/lower.h"

#include <math.h>
#include <string.h>

typedef lower_scalar_fn scalar_fn;

/* out = f(inputs...) over the output's shape, inputs broadcast; `count` inputs (absent
 * optional ones are NULL in x). */
static kiln_status map(lower_ctx *c, int count, scalar_fn f) {
    const kiln_tensor *shape = c->out_type[0];
    lir_expr *coords[KILN_MAX_RANK], *x[IR_VARIADIC];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, shape, coords, &inner, &outer);
    if (st)
        return st;
    for (int i = 0; i < count; i++) { /* inputs broadcast: their dims align right */
        const kiln_tensor *t = i < c->node->input_count ? c->in_type[i] : NULL;
        x[i] = t ? lower_read(c, i, coords + (shape->rank - t->rank)) : NULL;
        if (t && !x[i])
            return c->d->status ? c->d->status : lower_oom(c);
    }
    c->inner = inner;
    lir_expr *value = f(c, x);
    c->inner = NULL;
    if (!value)
        return c->d->status ? c->d->status : lower_oom(c);
    lir_expr *index = lower_index(c, shape, coords, shape->rank);
    if (c->fail_if && !lir_seq_push(c->m, inner, lir_if(c->m, c->fail_if, lir_fail(c->m, c->fail_msg), NULL)))
        return lower_oom(c);
    c->fail_if = NULL;
    if (!lir_seq_push(c->m, inner, lir_store(c->m, c->out[0], index, lir_cast(c->m, shape->dtype, value))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

#define M (c->m)
static lir_expr *num(lower_ctx *c, const lir_expr *like, double v) { return lir_const(M, like->type, v); }
static lir_expr *add(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_ADD, a, b); }
static lir_expr *sub(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_SUB, a, b); }
static lir_expr *mul(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_MUL, a, b); }
static lir_expr *dvd(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_DIV, a, b); }
static lir_expr *lt(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_LT, a, b); }
static lir_expr *gt(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_GT, a, b); }
static lir_expr *mx(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_MAX, a, b); }
static lir_expr *mn(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_MIN, a, b); }
static lir_expr *sel(lower_ctx *c, lir_expr *k, lir_expr *a, lir_expr *b) { return lir_select(M, k, a, b); }
static lir_expr *call(lower_ctx *c, lir_intrinsic f, lir_expr *a) { return lir_call(M, f, a, NULL); }
static double attr_f(lower_ctx *c, const char *name) { return ir_attr_float(c->node, name); }

/* 1 / (1 + e^-x), which keeps its relative accuracy down the left tail, where the result
 * is e^x. Where x cannot be negative (a ReLU's output) the result is in [1/2, 1) and
 * 1/2 + tanh(x/2)/2 is as accurate: the JIT's tanh is a rational function that costs
 * less than exp and a division (the bench's chain lost its exp and the division's stage:
 * 54 -> 49 instructions a vector), and it folds the power-of-two scale into its
 * coefficients. x/2 and tanh/2 are exact, so the multiply-add rounds once either way. */
static lir_expr *sigmoid(lower_ctx *c, lir_expr *x) {
    if (lir_nonneg(x))
        return lir_fma(M, num(c, x, 0.5), call(c, LIR_TANH, mul(c, num(c, x, 0.5), x)), num(c, x, 0.5));
    return dvd(c, num(c, x, 1), add(c, num(c, x, 1), call(c, LIR_EXP, lir_unary(M, LIR_NEG, x))));
}
static lir_expr *softplus(lower_ctx *c, lir_expr *x) {
    return sel(c, gt(c, x, num(c, x, 0)), add(c, x, call(c, LIR_LOG1P, call(c, LIR_EXP, lir_unary(M, LIR_NEG, x)))),
               call(c, LIR_LOG1P, call(c, LIR_EXP, x)));
}
/* Float-only ops refuse integer inputs the way shape inference already did; integer
 * division needs run-time error reporting, which kernels do not have yet. */
static lir_expr *float_only(lower_ctx *c, lir_expr *x) {
    if (!ir_dtype_is_float(x->type)) {
        lower_error(c, KILN_ERR_UNSUPPORTED, "integer %s has no loop lowering yet", ir_op_table[c->node->op].name);
        return NULL;
    }
    return x;
}

static lir_expr *f_add(lower_ctx *c, lir_expr **x) { return add(c, x[0], x[1]); }
static lir_expr *f_sub(lower_ctx *c, lir_expr **x) { return sub(c, x[0], x[1]); }
static lir_expr *f_mul(lower_ctx *c, lir_expr **x) { return mul(c, x[0], x[1]); }
static bool unsigned_type(kiln_dtype t) {
    return t == KILN_U8 || t == KILN_U16 || t == KILN_U32 || t == KILN_U64;
}
/* Integer division and remainder stop the kernel on a zero divisor, and divide by 1
 * where the divisor is -1 so INT_MIN / -1 cannot trap (the result is then -a, or 0). */
static lir_expr *safe_divisor(lower_ctx *c, lir_expr *b, const char *what) {
    c->fail_if = lir_binary(M, LIR_EQ, b, num(c, b, 0));
    c->fail_msg = what;
    return unsigned_type(b->type) ? b : sel(c, lir_binary(M, LIR_EQ, b, num(c, b, -1)), num(c, b, 1), b);
}
static lir_expr *f_div(lower_ctx *c, lir_expr **x) {
    if (ir_dtype_is_float(x[0]->type))
        return dvd(c, x[0], x[1]);
    lir_expr *q = dvd(c, x[0], safe_divisor(c, x[1], "integer division by zero"));
    return unsigned_type(x[0]->type) ? q : sel(c, lir_binary(M, LIR_EQ, x[1], num(c, x[1], -1)), lir_unary(M, LIR_NEG, x[0]), q);
}
/* Python's remainder (the divisor's sign) unless fmod = 1 (C's, the dividend's sign). */
static lir_expr *f_mod(lower_ctx *c, lir_expr **x) {
    bool f = ir_dtype_is_float(x[0]->type);
    lir_expr *r = lir_binary(M, LIR_REM, x[0], f ? x[1] : safe_divisor(c, x[1], "integer modulo by zero"));
    if (ir_attr_int(c->node, "fmod") || unsigned_type(x[0]->type))
        return r;
    lir_expr *z = num(c, r, 0);
    lir_expr *fix = lir_binary(M, LIR_AND, lir_binary(M, LIR_NE, r, z),
                               lir_binary(M, LIR_NE, lt(c, r, z), lt(c, x[1], num(c, x[1], 0))));
    return sel(c, fix, add(c, r, x[1]), r);
}
/* Integer base and exponent: exact and wrapping like the interpreter, by square-and-multiply
 * over the exponent's bits in u64 (unsigned, so the C backend has no overflow to trip on).
 * A negative exponent goes through pow in double, truncated, as the interpreter does. */
static lir_expr *int_pow(lower_ctx *c, lir_expr *a, lir_expr *b) {
    int acc = lower_var(c, "acc", KILN_U64), base = lower_var(c, "base", KILN_U64);
    int e = lower_var(c, "e", KILN_I64), k = lower_var(c, "k", KILN_I64);
    lir_expr *accv = lir_var_ref(M, c->k, acc), *basev = lir_var_ref(M, c->k, base), *ev = lir_var_ref(M, c->k, e);
    lir_expr *odd = lir_binary(M, LIR_EQ, lir_binary(M, LIR_REM, ev, lir_const(M, KILN_I64, 2)), lir_const(M, KILN_I64, 1));
    lir_stmt *step = lir_seq(M);
    if (!lir_seq_push(M, step, lir_assign(M, acc, sel(c, odd, mul(c, accv, basev), accv))) ||
        !lir_seq_push(M, step, lir_assign(M, base, mul(c, basev, basev))) ||
        !lir_seq_push(M, step, lir_assign(M, e, dvd(c, ev, lir_const(M, KILN_I64, 2)))) ||
        !lir_seq_push(M, c->inner, lir_let(M, acc, lir_const(M, KILN_U64, 1))) ||
        !lir_seq_push(M, c->inner, lir_let(M, base, lir_cast(M, KILN_U64, a))) ||
        !lir_seq_push(M, c->inner, lir_let(M, e, lir_cast(M, KILN_I64, b))) ||
        !lir_seq_push(M, c->inner, lir_for(M, k, lir_const(M, KILN_I64, 0), lir_const(M, KILN_I64, 63), step)))
        return NULL;
    lir_expr *neg = lir_cast(M, KILN_U64, lir_cast(M, KILN_I64, lir_call(M, LIR_POW, lir_cast(M, KILN_F64, a),
                                                                          lir_cast(M, KILN_F64, b))));
    return lir_cast(M, a->type, sel(c, lt(c, b, num(c, b, 0)), neg, lir_var_ref(M, c->k, acc)));
}
static lir_expr *f_pow(lower_ctx *c, lir_expr **x) {
    if (ir_dtype_is_float(x[0]->type))
        return lir_call(M, LIR_POW, x[0], lir_cast(M, x[0]->type, x[1]));
    if (ir_dtype_is_float(x[1]->type)) /* integer base, float exponent: in double, truncated */
        return lir_cast(M, x[0]->type, lir_call(M, LIR_POW, lir_cast(M, KILN_F64, x[0]), lir_cast(M, KILN_F64, x[1])));
    return int_pow(c, x[0], x[1]);
}
static lir_expr *f_prelu(lower_ctx *c, lir_expr **x) { return sel(c, lt(c, x[0], num(c, x[0], 0)), mul(c, x[0], x[1]), x[0]); }
static lir_expr *f_equal(lower_ctx *c, lir_expr **x) { return lir_binary(M, LIR_EQ, x[0], x[1]); }
static lir_expr *f_less(lower_ctx *c, lir_expr **x) { return lt(c, x[0], x[1]); }
static lir_expr *f_less_or_equal(lower_ctx *c, lir_expr **x) { return lir_binary(M, LIR_LE, x[0], x[1]); }
static lir_expr *f_greater(lower_ctx *c, lir_expr **x) { return gt(c, x[0], x[1]); }
static lir_expr *f_greater_or_equal(lower_ctx *c, lir_expr **x) { return lir_binary(M, LIR_GE, x[0], x[1]); }
static lir_expr *f_and(lower_ctx *c, lir_expr **x) { return lir_binary(M, LIR_AND, x[0], x[1]); }
static lir_expr *f_or(lower_ctx *c, lir_expr **x) { return lir_binary(M, LIR_OR, x[0], x[1]); }
static lir_expr *f_xor(lower_ctx *c, lir_expr **x) { return lir_binary(M, LIR_XOR, x[0], x[1]); }
static lir_expr *f_where(lower_ctx *c, lir_expr **x) { return sel(c, x[0], x[1], x[2]); }
static lir_expr *f_not(lower_ctx *c, lir_expr **x) { return lir_unary(M, LIR_NOT, x[0]); }

/* variadic folds */
static lir_expr *fold(lower_ctx *c, lir_expr **x, lir_op op) {
    lir_expr *acc = x[0];
    for (int i = 1; i < c->node->input_count; i++)
        acc = lir_binary(M, op, acc, x[i]);
    return acc;
}
static lir_expr *f_max(lower_ctx *c, lir_expr **x) { return fold(c, x, LIR_MAX); }
static lir_expr *f_min(lower_ctx *c, lir_expr **x) { return fold(c, x, LIR_MIN); }
static lir_expr *f_sum(lower_ctx *c, lir_expr **x) { return fold(c, x, LIR_ADD); }
static lir_expr *f_mean(lower_ctx *c, lir_expr **x) {
    return float_only(c, x[0]) ? dvd(c, fold(c, x, LIR_ADD), num(c, x[0], c->node->input_count)) : NULL;
}

/* x < 0 ? 0 : x keeps NaN (the comparison is false) in one vmaxps, where max() needs a NaN
 * check beside it */
static lir_expr *f_relu(lower_ctx *c, lir_expr **x) { return sel(c, lt(c, x[0], num(c, x[0], 0)), num(c, x[0], 0), x[0]); }
static lir_expr *f_leaky_relu(lower_ctx *c, lir_expr **x) {
    return sel(c, lt(c, x[0], num(c, x[0], 0)), mul(c, num(c, x[0], attr_f(c, "alpha")), x[0]), x[0]);
}
static lir_expr *expm1_(lower_ctx *c, lir_expr *x) { return sub(c, call(c, LIR_EXP, x), num(c, x, 1)); }
static lir_expr *f_elu(lower_ctx *c, lir_expr **x) {
    return sel(c, lt(c, x[0], num(c, x[0], 0)), mul(c, num(c, x[0], attr_f(c, "alpha")), expm1_(c, x[0])), x[0]);
}
static lir_expr *f_selu(lower_ctx *c, lir_expr **x) {
    lir_expr *neg = mul(c, num(c, x[0], attr_f(c, "alpha")), expm1_(c, x[0]));
    return mul(c, num(c, x[0], attr_f(c, "gamma")), sel(c, gt(c, x[0], num(c, x[0], 0)), x[0], neg));
}
static lir_expr *f_celu(lower_ctx *c, lir_expr **x) {
    lir_expr *a = num(c, x[0], attr_f(c, "alpha"));
    return add(c, mx(c, num(c, x[0], 0), x[0]), mn(c, num(c, x[0], 0), mul(c, a, expm1_(c, dvd(c, x[0], a)))));
}
static lir_expr *f_sigmoid(lower_ctx *c, lir_expr **x) { return sigmoid(c, x[0]); }
static lir_expr *clamp01(lower_ctx *c, lir_expr *v) { return mx(c, num(c, v, 0), mn(c, num(c, v, 1), v)); }
static lir_expr *f_hard_sigmoid(lower_ctx *c, lir_expr **x) {
    return clamp01(c, add(c, mul(c, num(c, x[0], attr_f(c, "alpha")), x[0]), num(c, x[0], attr_f(c, "beta"))));
}
static lir_expr *f_hard_swish(lower_ctx *c, lir_expr **x) {
    return mul(c, x[0], clamp01(c, add(c, dvd(c, x[0], num(c, x[0], 6)), num(c, x[0], 0.5))));
}
static lir_expr *f_tanh(lower_ctx *c, lir_expr **x) { return call(c, LIR_TANH, x[0]); }
static lir_expr *f_softplus(lower_ctx *c, lir_expr **x) { return softplus(c, x[0]); }
static lir_expr *f_softsign(lower_ctx *c, lir_expr **x) {
    return dvd(c, x[0], add(c, num(c, x[0], 1), lir_unary(M, LIR_ABS, x[0])));
}
static lir_expr *f_mish(lower_ctx *c, lir_expr **x) { return mul(c, x[0], call(c, LIR_TANH, softplus(c, x[0]))); }
static lir_expr *f_gelu(lower_ctx *c, lir_expr **x) {
    lir_expr *h = mul(c, num(c, x[0], 0.5), x[0]);
    if (!strcmp(ir_attr_string(c->node, "approximate"), "tanh")) {
        lir_expr *cube = mul(c, num(c, x[0], 0.044715), mul(c, x[0], mul(c, x[0], x[0])));
        lir_expr *in = mul(c, num(c, x[0], sqrt(2 / 3.14159265358979323846)), add(c, x[0], cube));
        return mul(c, h, add(c, num(c, x[0], 1), call(c, LIR_TANH, in)));
    }
    return mul(c, h, add(c, num(c, x[0], 1), call(c, LIR_ERF, dvd(c, x[0], num(c, x[0], sqrt(2))))));
}
static lir_expr *f_silu(lower_ctx *c, lir_expr **x) { return mul(c, x[0], sigmoid(c, x[0])); }
static lir_expr *f_reciprocal(lower_ctx *c, lir_expr **x) { return dvd(c, num(c, x[0], 1), x[0]); }
static lir_expr *f_neg(lower_ctx *c, lir_expr **x) { return lir_unary(M, LIR_NEG, x[0]); }
static lir_expr *f_abs(lower_ctx *c, lir_expr **x) { return lir_unary(M, LIR_ABS, x[0]); }
static lir_expr *f_sign(lower_ctx *c, lir_expr **x) {
    lir_expr *z = num(c, x[0], 0);
    return sel(c, gt(c, x[0], z), num(c, x[0], 1), sel(c, lt(c, x[0], z), num(c, x[0], -1), x[0]));
}
static lir_expr *f_thresholded_relu(lower_ctx *c, lir_expr **x) {
    return sel(c, gt(c, x[0], num(c, x[0], attr_f(c, "alpha"))), x[0], num(c, x[0], 0));
}
static lir_expr *f_shrink(lower_ctx *c, lir_expr **x) {
    lir_expr *l = num(c, x[0], attr_f(c, "lambd")), *b = num(c, x[0], attr_f(c, "bias"));
    return sel(c, lt(c, x[0], lir_unary(M, LIR_NEG, l)), add(c, x[0], b),
               sel(c, gt(c, x[0], l), sub(c, x[0], b), num(c, x[0], 0)));
}
static lir_expr *f_is_nan(lower_ctx *c, lir_expr **x) { return lir_binary(M, LIR_NE, x[0], x[0]); }
static lir_expr *f_is_inf(lower_ctx *c, lir_expr **x) {
    lir_expr *pos = lir_binary(M, LIR_EQ, x[0], num(c, x[0], INFINITY));
    lir_expr *neg = lir_binary(M, LIR_EQ, x[0], num(c, x[0], -INFINITY));
    lir_expr *no = lir_const(M, KILN_BOOL, 0);
    return lir_binary(M, LIR_OR, ir_attr_int(c->node, "detect_positive") ? pos : no,
                      ir_attr_int(c->node, "detect_negative") ? neg : no);
}
/* Selects, not min/max: a NaN x fails both comparisons and comes out as itself, and a
 * missing or NaN bound clamps nothing, as the interpreter's fmin/fmax do. */
static lir_expr *f_clip(lower_ctx *c, lir_expr **x) {
    lir_expr *lo = c->node->input_count > 1 ? x[1] : NULL, *hi = c->node->input_count > 2 ? x[2] : NULL;
    lir_expr *v = x[0];
    if (lo)
        v = sel(c, lt(c, v, lo), lo, v);
    if (hi)
        v = sel(c, gt(c, v, hi), hi, v);
    return v;
}
static lir_expr *f_copy(lower_ctx *c, lir_expr **x) { (void)c; return x[0]; }

#define INTRINSIC(fn, intrinsic) \
    static lir_expr *f_##fn(lower_ctx *c, lir_expr **x) { return float_only(c, x[0]) ? call(c, intrinsic, x[0]) : NULL; }
INTRINSIC(erf, LIR_ERF) INTRINSIC(exp, LIR_EXP) INTRINSIC(log, LIR_LOG) INTRINSIC(sqrt, LIR_SQRT)
INTRINSIC(floor, LIR_FLOOR) INTRINSIC(ceil, LIR_CEIL) INTRINSIC(round, LIR_ROUND_EVEN) INTRINSIC(sin, LIR_SIN)
INTRINSIC(cos, LIR_COS) INTRINSIC(tan, LIR_TAN) INTRINSIC(asin, LIR_ASIN) INTRINSIC(acos, LIR_ACOS)
INTRINSIC(atan, LIR_ATAN) INTRINSIC(sinh, LIR_SINH) INTRINSIC(cosh, LIR_COSH) INTRINSIC(asinh, LIR_ASINH)
INTRINSIC(acosh, LIR_ACOSH) INTRINSIC(atanh, LIR_ATANH)

/* The elementwise ops with their scalar rule and input count: each lowers to one map, and
 * the fusion pass may inline the rule into another kernel (lower_scalar_rule). */
#define ELTWISE_MAPS(X) \
    X(ADD, add, 2) X(SUB, sub, 2) X(MUL, mul, 2) X(DIV, div, 2) X(MOD, mod, 2) X(POW, pow, 2) \
    X(PRELU, prelu, 2) X(EQUAL, equal, 2) X(LESS, less, 2) X(LESS_OR_EQUAL, less_or_equal, 2) \
    X(GREATER, greater, 2) X(GREATER_OR_EQUAL, greater_or_equal, 2) X(AND, and, 2) X(OR, or, 2) X(XOR, xor, 2) \
    X(WHERE, where, 3) X(NOT, not, 1) X(RELU, relu, 1) X(LEAKY_RELU, leaky_relu, 1) X(ELU, elu, 1) \
    X(SELU, selu, 1) X(CELU, celu, 1) X(SIGMOID, sigmoid, 1) X(HARD_SIGMOID, hard_sigmoid, 1) \
    X(HARD_SWISH, hard_swish, 1) X(TANH, tanh, 1) X(SOFTPLUS, softplus, 1) X(SOFTSIGN, softsign, 1) \
    X(MISH, mish, 1) X(GELU, gelu, 1) X(SILU, silu, 1) X(ERF, erf, 1) X(EXP, exp, 1) X(LOG, log, 1) \
    X(SQRT, sqrt, 1) X(RECIPROCAL, reciprocal, 1) X(NEG, neg, 1) X(ABS, abs, 1) X(SIGN, sign, 1) \
    X(FLOOR, floor, 1) X(CEIL, ceil, 1) X(ROUND, round, 1) X(SIN, sin, 1) X(COS, cos, 1) X(TAN, tan, 1) \
    X(ASIN, asin, 1) X(ACOS, acos, 1) X(ATAN, atan, 1) X(SINH, sinh, 1) X(COSH, cosh, 1) X(ASINH, asinh, 1) \
    X(ACOSH, acosh, 1) X(ATANH, atanh, 1) X(THRESHOLDED_RELU, thresholded_relu, 1) X(SHRINK, shrink, 1) \
    X(IS_NAN, is_nan, 1) X(IS_INF, is_inf, 1) X(MAX, max, c->node->input_count) \
    X(MIN, min, c->node->input_count) X(SUM, sum, c->node->input_count) X(MEAN, mean, c->node->input_count) \
    X(CLIP, clip, c->node->input_count)
#define DEFINE_MAP(ID, fn, count) kiln_status lower_##fn(lower_ctx *c) { return map(c, count, f_##fn); }
ELTWISE_MAPS(DEFINE_MAP)
kiln_status lower_cast(lower_ctx *c) { return map(c, 1, f_copy); }
kiln_status lower_cast_like(lower_ctx *c) { return map(c, 1, f_copy); }
kiln_status lower_identity(lower_ctx *c) { return map(c, 1, f_copy); }

/* Inference BatchNormalization of one element: its per-channel parameters x[1..4] are
 * read at the element's channel (by lower_batch_norm, and by node_value in lower.c when
 * it is fused). */
static lir_expr *f_batch_norm(lower_ctx *c, lir_expr **x) {
    lir_expr *norm = dvd(c, sub(c, x[0], x[3]), call(c, LIR_SQRT, add(c, x[4], num(c, x[0], attr_f(c, "epsilon")))));
    return add(c, mul(c, norm, x[1]), x[2]);
}

lower_scalar_fn lower_scalar_rule(const ir_node *n) {
    static const lower_scalar_fn rules[IR_OP_COUNT] = {
#define RULE(ID, fn, count) [IR_OP_##ID] = f_##fn,
        ELTWISE_MAPS(RULE)
#undef RULE
        [IR_OP_CAST] = f_copy, [IR_OP_CAST_LIKE] = f_copy, [IR_OP_IDENTITY] = f_copy,
    };
    bool int_out = n->output_count > 0 && !ir_dtype_is_float(n->outputs[0]->type.dtype);
    bool int_in = n->input_count > 0 && n->inputs[0] && !ir_dtype_is_float(n->inputs[0]->type.dtype);
    /* integer division and modulo can stop the kernel; integer powers loop */
    if (((n->op == IR_OP_DIV || n->op == IR_OP_MOD) && int_out) || (n->op == IR_OP_POW && int_in))
        return NULL;
    if (n->op == IR_OP_BATCH_NORM)
        return ir_attr_int(n, "training_mode") || n->inputs[0]->type.rank < 2 ? NULL : f_batch_norm;
    return rules[n->op];
}

/* Inference dropout: the identity, and an all-true mask. So is training mode with a zero
 * ratio; with a nonzero ratio it needs the RNG (training, issue 6), and the kernel
 * stops with an error (checked once, before the copy). */
kiln_status lower_dropout(lower_ctx *c) {
    if (c->node->input_count > 2 && c->in[2]) {
        lir_expr *train = lir_load(M, c->in[2], lir_int(M, 0));
        lir_expr *ratio = c->in[1] ? lir_cast(M, KILN_F64, lir_load(M, c->in[1], lir_int(M, 0))) : lir_const(M, KILN_F64, 0.5);
        lir_expr *drops = lir_binary(M, LIR_AND, lir_binary(M, LIR_NE, train, lir_const(M, train->type, 0)),
                                     lir_binary(M, LIR_NE, ratio, lir_const(M, KILN_F64, 0)));
        kiln_status st = lower_emit(c, lir_if(M, drops, lir_fail(M, "training-mode dropout with a nonzero ratio "
                                                                  "needs the training RNG"), NULL));
        if (st)
            return st;
    }
    kiln_status st = map(c, 1, f_copy);
    if (st || c->node->output_count < 2)
        return st;
    lir_expr *coords[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, c->out_type[1], coords, &inner, &outer)))
        return st;
    lir_expr *index = lower_index(c, c->out_type[1], coords, c->out_type[1]->rank);
    if (!lir_seq_push(M, inner, lir_store(M, c->out[1], index, lir_const(M, KILN_BOOL, 1))))
        return lower_oom(c);
    return lower_emit(c, outer);
}
