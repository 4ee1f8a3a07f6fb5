/*
 * interp_eltwise.c — reference implementations of the elementwise ops. Floats are
 * computed in double; integer inputs in int64 where the op is defined on integers (so
 * large i64 values stay exact); results are stored in the output's dtype.
 */
#include "backend/interp/interp.h"

#include <math.h>
#include <string.h>

#define KILN_PI 3.14159265358979323846

/* ---- binary and variadic, with broadcasting ------------------------------------------- */

typedef double (*fbin)(double a, double b, const ir_node *n);
typedef kiln_status (*ibin)(const interp_ctx *c, int64_t a, int64_t b, int64_t *r);

/* out = fold(op, inputs...) with numpy broadcasting; integer inputs use `iop` if given. */
static kiln_status map_nary(interp_ctx *c, int count, fbin fop, ibin iop) {
    kiln_tensor *out = c->out[0];
    bool ints = iop && !ir_dtype_is_float(c->s.in[0]->dtype);
    int64_t n = kiln_tensor_count(out), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        const kiln_tensor *a = c->s.in[0];
        int64_t ai = interp_broadcast_index(a, coord, out->rank);
        if (ints) {
            int64_t acc = ir_tensor_get_int(a, ai);
            for (int k = 1; k < count; k++) {
                const kiln_tensor *b = c->s.in[k];
                kiln_status st = iop(c, acc, ir_tensor_get_int(b, interp_broadcast_index(b, coord, out->rank)), &acc);
                if (st)
                    return st;
            }
            ir_tensor_set_int(out, i, acc);
        } else {
            double acc = ir_tensor_get(a, ai);
            for (int k = 1; k < count; k++) {
                const kiln_tensor *b = c->s.in[k];
                acc = fop(acc, ir_tensor_get(b, interp_broadcast_index(b, coord, out->rank)), c->s.node);
            }
            ir_tensor_set(out, i, acc);
        }
    }
    return KILN_OK;
}

static double f_add(double a, double b, const ir_node *n) { (void)n; return a + b; }
static double f_sub(double a, double b, const ir_node *n) { (void)n; return a - b; }
static double f_mul(double a, double b, const ir_node *n) { (void)n; return a * b; }
static double f_div(double a, double b, const ir_node *n) { (void)n; return a / b; }
static double f_max(double a, double b, const ir_node *n) { (void)n; return isnan(a) || isnan(b) ? NAN : a > b ? a : b; }
static double f_min(double a, double b, const ir_node *n) { (void)n; return isnan(a) || isnan(b) ? NAN : a < b ? a : b; }
static double f_prelu(double x, double s, const ir_node *n) { (void)n; return x < 0 ? s * x : x; }

static double f_mod(double a, double b, const ir_node *n) {
    double r = fmod(a, b);
    if (!ir_attr_int(n, "fmod") && r != 0 && ((r < 0) != (b < 0)))
        r += b; /* Python's sign convention: the result takes the divisor's sign */
    return r;
}

static double f_pow(double a, double b, const ir_node *n) { (void)n; return pow(a, b); }

/* Integer arithmetic wraps like the hardware does (through unsigned). */
static kiln_status i_add(const interp_ctx *c, int64_t a, int64_t b, int64_t *r) { (void)c; *r = (int64_t)((uint64_t)a + (uint64_t)b); return KILN_OK; }
static kiln_status i_sub(const interp_ctx *c, int64_t a, int64_t b, int64_t *r) { (void)c; *r = (int64_t)((uint64_t)a - (uint64_t)b); return KILN_OK; }
static kiln_status i_mul(const interp_ctx *c, int64_t a, int64_t b, int64_t *r) { (void)c; *r = (int64_t)((uint64_t)a * (uint64_t)b); return KILN_OK; }
/* u64 travels as int64 bits; order, division and remainder must then be unsigned */
static bool is_u64(const interp_ctx *c) {
    return c->s.in[0]->dtype == KILN_U64;
}
static bool less(const interp_ctx *c, int64_t a, int64_t b) {
    return is_u64(c) ? (uint64_t)a < (uint64_t)b : a < b;
}
static kiln_status i_max(const interp_ctx *c, int64_t a, int64_t b, int64_t *r) { *r = less(c, a, b) ? b : a; return KILN_OK; }
static kiln_status i_min(const interp_ctx *c, int64_t a, int64_t b, int64_t *r) { *r = less(c, b, a) ? b : a; return KILN_OK; }
static kiln_status i_prelu(const interp_ctx *c, int64_t x, int64_t s, int64_t *r) { (void)c; *r = x < 0 ? (int64_t)((uint64_t)s * (uint64_t)x) : x; return KILN_OK; }

static kiln_status i_div(const interp_ctx *c, int64_t a, int64_t b, int64_t *r) {
    if (b == 0)
        return interp_error(c, KILN_ERR_INVALID, "integer division by zero");
    if (is_u64(c))
        *r = (int64_t)((uint64_t)a / (uint64_t)b);
    else
        *r = (a == INT64_MIN && b == -1) ? INT64_MIN : a / b; /* truncates, as ONNX Runtime does */
    return KILN_OK;
}

static kiln_status i_mod(const interp_ctx *c, int64_t a, int64_t b, int64_t *r) {
    if (b == 0)
        return interp_error(c, KILN_ERR_INVALID, "integer modulo by zero");
    if (is_u64(c)) {
        *r = (int64_t)((uint64_t)a % (uint64_t)b);
        return KILN_OK;
    }
    *r = (b == -1) ? 0 : a % b;
    if (!ir_attr_int(c->s.node, "fmod") && *r != 0 && ((*r < 0) != (b < 0)))
        *r += b;
    return KILN_OK;
}

static kiln_status i_pow(const interp_ctx *c, int64_t a, int64_t b, int64_t *r) {
    (void)c;
    if (b < 0) {
        *r = (int64_t)pow((double)a, (double)b);
        return KILN_OK;
    }
    uint64_t acc = 1, base = (uint64_t)a;
    for (; b; b >>= 1, base *= base)
        if (b & 1)
            acc *= base;
    *r = (int64_t)acc;
    return KILN_OK;
}

kiln_status interp_add(interp_ctx *c) { return map_nary(c, 2, f_add, i_add); }
kiln_status interp_sub(interp_ctx *c) { return map_nary(c, 2, f_sub, i_sub); }
kiln_status interp_mul(interp_ctx *c) { return map_nary(c, 2, f_mul, i_mul); }
kiln_status interp_div(interp_ctx *c) { return map_nary(c, 2, f_div, i_div); }
kiln_status interp_mod(interp_ctx *c) { return map_nary(c, 2, f_mod, i_mod); }
kiln_status interp_prelu(interp_ctx *c) { return map_nary(c, 2, f_prelu, i_prelu); }
kiln_status interp_max(interp_ctx *c) { return map_nary(c, c->s.in_count, f_max, i_max); }
kiln_status interp_min(interp_ctx *c) { return map_nary(c, c->s.in_count, f_min, i_min); }
kiln_status interp_sum(interp_ctx *c) { return map_nary(c, c->s.in_count, f_add, i_add); }

kiln_status interp_pow(interp_ctx *c) {
    bool ints = !ir_dtype_is_float(c->s.in[0]->dtype) && !ir_dtype_is_float(c->s.in[1]->dtype);
    return map_nary(c, 2, f_pow, ints ? i_pow : NULL);
}

kiln_status interp_mean(interp_ctx *c) {
    kiln_status st = map_nary(c, c->s.in_count, f_add, i_add);
    int64_t n = kiln_tensor_count(c->out[0]);
    for (int64_t i = 0; !st && i < n; i++) {
        if (ir_dtype_is_float(c->out[0]->dtype))
            ir_tensor_set(c->out[0], i, ir_tensor_get(c->out[0], i) / c->s.in_count);
        else
            ir_tensor_set_int(c->out[0], i, ir_tensor_get_int(c->out[0], i) / c->s.in_count);
    }
    return st;
}

/* Comparisons and logic write bools; integers compare exactly in int64. */
typedef bool (*cmp_fn)(double a, double b, int64_t ia, int64_t ib, bool ints);

static kiln_status map_compare(interp_ctx *c, cmp_fn f) {
    kiln_tensor *out = c->out[0];
    const kiln_tensor *a = c->s.in[0], *b = c->s.in[1];
    bool ints = !ir_dtype_is_float(a->dtype), u64 = a->dtype == KILN_U64;
    int64_t n = kiln_tensor_count(out), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        int64_t ai = interp_broadcast_index(a, coord, out->rank);
        int64_t bi = interp_broadcast_index(b, coord, out->rank);
        int64_t x = ir_tensor_get_int(a, ai), y = ir_tensor_get_int(b, bi);
        if (u64) { /* order unsigned values by flipping the sign bit */
            x = (int64_t)((uint64_t)x ^ (1ull << 63));
            y = (int64_t)((uint64_t)y ^ (1ull << 63));
        }
        bool r = ints ? f(0, 0, x, y, true)
                      : f(ir_tensor_get(a, ai), ir_tensor_get(b, bi), 0, 0, false);
        ir_tensor_set_int(out, i, r);
    }
    return KILN_OK;
}

static bool c_eq(double a, double b, int64_t x, int64_t y, bool ints) { return ints ? x == y : a == b; }
static bool c_lt(double a, double b, int64_t x, int64_t y, bool ints) { return ints ? x < y : a < b; }
static bool c_le(double a, double b, int64_t x, int64_t y, bool ints) { return ints ? x <= y : a <= b; }
static bool c_gt(double a, double b, int64_t x, int64_t y, bool ints) { return ints ? x > y : a > b; }
static bool c_ge(double a, double b, int64_t x, int64_t y, bool ints) { return ints ? x >= y : a >= b; }
static bool c_and(double a, double b, int64_t x, int64_t y, bool ints) { (void)a, (void)b, (void)ints; return x && y; }
static bool c_or(double a, double b, int64_t x, int64_t y, bool ints) { (void)a, (void)b, (void)ints; return x || y; }
static bool c_xor(double a, double b, int64_t x, int64_t y, bool ints) { (void)a, (void)b, (void)ints; return !x != !y; }

kiln_status interp_equal(interp_ctx *c) { return map_compare(c, c_eq); }
kiln_status interp_less(interp_ctx *c) { return map_compare(c, c_lt); }
kiln_status interp_less_or_equal(interp_ctx *c) { return map_compare(c, c_le); }
kiln_status interp_greater(interp_ctx *c) { return map_compare(c, c_gt); }
kiln_status interp_greater_or_equal(interp_ctx *c) { return map_compare(c, c_ge); }
kiln_status interp_and(interp_ctx *c) { return map_compare(c, c_and); }
kiln_status interp_or(interp_ctx *c) { return map_compare(c, c_or); }
kiln_status interp_xor(interp_ctx *c) { return map_compare(c, c_xor); }

kiln_status interp_where(interp_ctx *c) {
    kiln_tensor *out = c->out[0];
    int64_t n = kiln_tensor_count(out), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        bool pick = ir_tensor_get_int(c->s.in[0], interp_broadcast_index(c->s.in[0], coord, out->rank));
        const kiln_tensor *src = c->s.in[pick ? 1 : 2];
        interp_copy_elem(out, i, src, interp_broadcast_index(src, coord, out->rank));
    }
    return KILN_OK;
}

/* ---- unary ------------------------------------------------------------------------------ */

typedef double (*funary)(double x, const ir_node *n);

static kiln_status map_unary(interp_ctx *c, funary f) {
    int64_t n = kiln_tensor_count(c->out[0]);
    for (int64_t i = 0; i < n; i++)
        ir_tensor_set(c->out[0], i, f(ir_tensor_get(c->s.in[0], i), c->s.node));
    return KILN_OK;
}

/* Ops defined on integers too: integer inputs stay in int64. */
static kiln_status map_unary_int(interp_ctx *c, funary f, int64_t (*fi)(int64_t)) {
    if (ir_dtype_is_float(c->s.in[0]->dtype))
        return map_unary(c, f);
    int64_t n = kiln_tensor_count(c->out[0]);
    for (int64_t i = 0; i < n; i++)
        ir_tensor_set_int(c->out[0], i, fi(ir_tensor_get_int(c->s.in[0], i)));
    return KILN_OK;
}

static double sigmoid(double x) {
    return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x));
}
static double softplus(double x) {
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

#define UNARY(fn, expr)                                            \
    static double f_##fn(double x, const ir_node *n) {             \
        (void)n;                                                   \
        return (expr);                                             \
    }                                                              \
    kiln_status interp_##fn(interp_ctx *c) { return map_unary(c, f_##fn); }

UNARY(leaky_relu, x < 0 ? ir_attr_float(n, "alpha") * x : x)
UNARY(elu, x < 0 ? ir_attr_float(n, "alpha") * (exp(x) - 1) : x)
UNARY(selu, ir_attr_float(n, "gamma") * (x > 0 ? x : ir_attr_float(n, "alpha") * (exp(x) - 1)))
UNARY(celu, fmax(0, x) + fmin(0, ir_attr_float(n, "alpha") * (exp(x / ir_attr_float(n, "alpha")) - 1)))
UNARY(sigmoid, sigmoid(x))
UNARY(hard_sigmoid, fmax(0, fmin(1, ir_attr_float(n, "alpha") * x + ir_attr_float(n, "beta"))))
UNARY(hard_swish, x * fmax(0, fmin(1, x / 6 + 0.5)))
UNARY(tanh, tanh(x))
UNARY(softplus, softplus(x))
UNARY(softsign, x / (1 + fabs(x)))
UNARY(mish, x * tanh(softplus(x)))
UNARY(silu, x * sigmoid(x))
UNARY(erf, erf(x))
UNARY(exp, exp(x))
UNARY(log, log(x))
UNARY(sqrt, sqrt(x))
UNARY(reciprocal, 1 / x)
UNARY(tan, tan(x))
UNARY(asin, asin(x))
UNARY(acos, acos(x))
UNARY(atan, atan(x))
UNARY(sinh, sinh(x))
UNARY(cosh, cosh(x))
UNARY(asinh, asinh(x))
UNARY(acosh, acosh(x))
UNARY(atanh, atanh(x))
UNARY(thresholded_relu, x > ir_attr_float(n, "alpha") ? x : 0)
UNARY(floor, floor(x))
UNARY(ceil, ceil(x))
UNARY(round, nearbyint(x)) /* halves to even, as ONNX requires (default rounding mode) */
UNARY(sin, sin(x))
UNARY(cos, cos(x))

static double f_gelu(double x, const ir_node *n) {
    if (!strcmp(ir_attr_string(n, "approximate"), "tanh"))
        return 0.5 * x * (1 + tanh(sqrt(2 / KILN_PI) * (x + 0.044715 * x * x * x)));
    return 0.5 * x * (1 + erf(x / sqrt(2)));
}
kiln_status interp_gelu(interp_ctx *c) { return map_unary(c, f_gelu); }

static double f_relu(double x, const ir_node *n) { (void)n; return x > 0 ? x : isnan(x) ? x : 0; }
static int64_t i_relu(int64_t x) { return x > 0 ? x : 0; }
static double f_neg(double x, const ir_node *n) { (void)n; return -x; }
static int64_t i_neg(int64_t x) { return (int64_t)(0 - (uint64_t)x); }
static double f_abs(double x, const ir_node *n) { (void)n; return fabs(x); }
static int64_t i_abs(int64_t x) { return x < 0 ? (int64_t)(0 - (uint64_t)x) : x; }
static double f_sign(double x, const ir_node *n) { (void)n; return x > 0 ? 1 : x < 0 ? -1 : x; }
static int64_t i_sign(int64_t x) { return x > 0 ? 1 : x < 0 ? -1 : 0; }

kiln_status interp_relu(interp_ctx *c) { return map_unary_int(c, f_relu, i_relu); }
kiln_status interp_neg(interp_ctx *c) { return map_unary_int(c, f_neg, i_neg); }
kiln_status interp_abs(interp_ctx *c) { return map_unary_int(c, f_abs, i_abs); }
kiln_status interp_sign(interp_ctx *c) { return map_unary_int(c, f_sign, i_sign); }

static double f_shrink(double x, const ir_node *n) {
    double lambd = ir_attr_float(n, "lambd"), bias = ir_attr_float(n, "bias");
    return x < -lambd ? x + bias : x > lambd ? x - bias : 0;
}
kiln_status interp_shrink(interp_ctx *c) { return map_unary(c, f_shrink); }

static double f_is_nan(double x, const ir_node *n) { (void)n; return isnan(x); }
static double f_is_inf(double x, const ir_node *n) {
    return isinf(x) && (x > 0 ? ir_attr_int(n, "detect_positive") : ir_attr_int(n, "detect_negative"));
}
kiln_status interp_is_nan(interp_ctx *c) { return map_unary(c, f_is_nan); }
kiln_status interp_is_inf(interp_ctx *c) { return map_unary(c, f_is_inf); }

kiln_status interp_not(interp_ctx *c) {
    int64_t n = kiln_tensor_count(c->out[0]);
    for (int64_t i = 0; i < n; i++)
        ir_tensor_set_int(c->out[0], i, !ir_tensor_get_int(c->s.in[0], i));
    return KILN_OK;
}

kiln_status interp_clip(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    const kiln_tensor *lo = c->s.in_count > 1 ? c->s.in[1] : NULL;
    const kiln_tensor *hi = c->s.in_count > 2 ? c->s.in[2] : NULL;
    int64_t n = kiln_tensor_count(x);
    if (ir_dtype_is_float(x->dtype)) {
        double l = lo ? ir_tensor_get(lo, 0) : -INFINITY, h = hi ? ir_tensor_get(hi, 0) : INFINITY;
        for (int64_t i = 0; i < n; i++) {
            double v = ir_tensor_get(x, i);
            ir_tensor_set(c->out[0], i, isnan(v) ? v : fmin(fmax(v, l), h));
        }
    } else {
        int64_t l = lo ? ir_tensor_get_int(lo, 0) : INT64_MIN, h = hi ? ir_tensor_get_int(hi, 0) : INT64_MAX;
        for (int64_t i = 0; i < n; i++) {
            int64_t v = ir_tensor_get_int(x, i);
            v = v < l ? l : v;
            ir_tensor_set_int(c->out[0], i, v > h ? h : v);
        }
    }
    return KILN_OK;
}

kiln_status interp_cast(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    int64_t n = kiln_tensor_count(x);
    /* between integers (and bools) no double detour, so i64 and u64 stay exact */
    bool exact_ints = !ir_dtype_is_float(x->dtype) && !ir_dtype_is_float(c->out[0]->dtype);
    for (int64_t i = 0; i < n; i++) {
        if (exact_ints)
            ir_tensor_set_int(c->out[0], i, ir_tensor_get_int(x, i));
        else
            ir_tensor_set(c->out[0], i, ir_tensor_get(x, i));
    }
    return KILN_OK;
}

kiln_status interp_cast_like(interp_ctx *c) { return interp_cast(c); }

kiln_status interp_identity(interp_ctx *c) {
    memcpy(c->out[0]->data, c->s.in[0]->data, kiln_tensor_bytes(c->s.in[0]));
    return KILN_OK;
}

/* Inference-mode dropout is the identity with an all-true mask. Training mode with a
 * non-zero ratio needs the runtime RNG, which training brings. */
kiln_status interp_dropout(interp_ctx *c) {
    const kiln_tensor *ratio = c->s.in_count > 1 ? c->s.in[1] : NULL;
    const kiln_tensor *train = c->s.in_count > 2 ? c->s.in[2] : NULL;
    if (train && ir_tensor_get_int(train, 0) && (!ratio || ir_tensor_get(ratio, 0) != 0))
        return interp_error(c, KILN_ERR_UNSUPPORTED,
                            "training-mode dropout is not supported by the inference interpreter");
    memcpy(c->out[0]->data, c->s.in[0]->data, kiln_tensor_bytes(c->s.in[0]));
    if (c->s.out_count > 1)
        memset(c->out[1]->data, 1, kiln_tensor_bytes(c->out[1]));
    return KILN_OK;
}
