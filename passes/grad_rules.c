/*
 * grad_rules.c — the gradient rule of each differentiable op, in graph ops (see
 * autodiff.h). A rule reads its node's inputs and outputs, the gradients of its outputs
 * (c->dy; NULL where none flows back) and sets c->dx[i] for each input i with c->need[i].
 * Broadcasting inputs get their gradient summed back to their own shape (gb_unbroadcast).
 */
#include "passes/grad_rules.h"

#include <string.h>

ir_value *grad_zero_scalar(grad_ctx *c, const ir_value *v) {
    return gb_scalar(c, v->type.dtype, 0.0);
}

/* Zeros of v's type. */
ir_value *grad_zeros_like(grad_ctx *c, const ir_value *v) {
    return gb2(c, IR_OP_EXPAND, grad_zero_scalar(c, v), gb_i64s(c, v->type.rank, v->type.dims));
}

shape_ctx grad_shape_ctx(grad_ctx *c, const kiln_tensor **types) {
    const ir_node *n = c->node;
    for (int i = 0; i < n->input_count; i++)
        types[i] = X(i) ? (X(i)->init ? X(i)->init : &X(i)->type) : NULL;
    return (shape_ctx){.node = n, .in = types, .in_count = n->input_count, .d = c->d};
}

/* 1 where a == b, else 0, in a's dtype: which elements a max or min came from. */
ir_value *grad_indicator(grad_ctx *c, ir_value *a, ir_value *b) {
    ir_node *cast = gb_begin(c, IR_OP_CAST, 1, (ir_value *[]){gb2(c, IR_OP_EQUAL, a, b)});
    gb_attr_string(c, cast, "to", kiln_dtype_name(a->type.dtype));
    return gb_done(c, cast);
}

/* ---- elementwise, with broadcasting -------------------------------------------------- */

static kiln_status grad_add(grad_ctx *c) {
    for (int i = 0; i < 2; i++)
        if (c->need[i])
            c->dx[i] = gb_unbroadcast(c, DY, &X(i)->type);
    return c->st;
}

static kiln_status grad_sub(grad_ctx *c) {
    if (c->need[0])
        c->dx[0] = gb_unbroadcast(c, DY, &X(0)->type);
    if (c->need[1])
        c->dx[1] = gb_unbroadcast(c, gb1(c, IR_OP_NEG, DY), &X(1)->type);
    return c->st;
}

static kiln_status grad_mul(grad_ctx *c) {
    if (c->need[0])
        c->dx[0] = gb_unbroadcast(c, gb2(c, IR_OP_MUL, DY, X(1)), &X(0)->type);
    if (c->need[1])
        c->dx[1] = gb_unbroadcast(c, gb2(c, IR_OP_MUL, DY, X(0)), &X(1)->type);
    return c->st;
}

/* y = a / b: da = dy / b, db = -dy * y / b */
static kiln_status grad_div(grad_ctx *c) {
    if (c->need[0])
        c->dx[0] = gb_unbroadcast(c, gb2(c, IR_OP_DIV, DY, X(1)), &X(0)->type);
    if (c->need[1])
        c->dx[1] = gb_unbroadcast(c, gb1(c, IR_OP_NEG, gb2(c, IR_OP_DIV, gb2(c, IR_OP_MUL, DY, Y(0)), X(1))),
                                  &X(1)->type);
    return c->st;
}

/* Sum: every input gets dy, summed back to its shape. */
static kiln_status grad_sum(grad_ctx *c) {
    for (int i = 0; i < c->node->input_count; i++)
        if (c->need[i])
            c->dx[i] = gb_unbroadcast(c, DY, &X(i)->type);
    return c->st;
}

/* ---- unary ----------------------------------------------------------------------------- */

static kiln_status grad_identity(grad_ctx *c) {
    c->dx[0] = DY;
    return c->st;
}

static kiln_status grad_neg(grad_ctx *c) {
    c->dx[0] = gb1(c, IR_OP_NEG, DY);
    return c->st;
}

/* dy where x > 0, else 0 (at 0 the subgradient 0, as PyTorch takes it) */
static kiln_status grad_relu(grad_ctx *c) {
    ir_value *zero = grad_zero_scalar(c, X(0));
    c->dx[0] = gb3(c, IR_OP_WHERE, gb2(c, IR_OP_GREATER, X(0), zero), DY, zero);
    return c->st;
}

static kiln_status grad_leaky_relu(grad_ctx *c) {
    ir_value *zero = grad_zero_scalar(c, X(0));
    ir_value *alpha = gb_scalar(c, X(0)->type.dtype, ir_attr_float(c->node, "alpha"));
    c->dx[0] = gb3(c, IR_OP_WHERE, gb2(c, IR_OP_GREATER, X(0), zero), DY, gb2(c, IR_OP_MUL, DY, alpha));
    return c->st;
}

/* dy * y * (1 - y) */
static kiln_status grad_sigmoid(grad_ctx *c) {
    ir_value *one = gb_scalar(c, Y(0)->type.dtype, 1.0);
    c->dx[0] = gb2(c, IR_OP_MUL, gb2(c, IR_OP_MUL, DY, Y(0)), gb2(c, IR_OP_SUB, one, Y(0)));
    return c->st;
}

/* dy * (1 - y^2) */
static kiln_status grad_tanh(grad_ctx *c) {
    ir_value *one = gb_scalar(c, Y(0)->type.dtype, 1.0);
    c->dx[0] = gb2(c, IR_OP_MUL, DY, gb2(c, IR_OP_SUB, one, gb2(c, IR_OP_MUL, Y(0), Y(0))));
    return c->st;
}

static kiln_status grad_exp(grad_ctx *c) {
    c->dx[0] = gb2(c, IR_OP_MUL, DY, Y(0));
    return c->st;
}

static kiln_status grad_log(grad_ctx *c) {
    c->dx[0] = gb2(c, IR_OP_DIV, DY, X(0));
    return c->st;
}

/* dy / (2 y) */
static kiln_status grad_sqrt(grad_ctx *c) {
    ir_value *two = gb_scalar(c, Y(0)->type.dtype, 2.0);
    c->dx[0] = gb2(c, IR_OP_DIV, DY, gb2(c, IR_OP_MUL, Y(0), two));
    return c->st;
}

/* -dy * y^2 */
static kiln_status grad_reciprocal(grad_ctx *c) {
    c->dx[0] = gb1(c, IR_OP_NEG, gb2(c, IR_OP_MUL, DY, gb2(c, IR_OP_MUL, Y(0), Y(0))));
    return c->st;
}

static kiln_status grad_abs(grad_ctx *c) {
    c->dx[0] = gb2(c, IR_OP_MUL, DY, gb1(c, IR_OP_SIGN, X(0)));
    return c->st;
}

/* The trigonometric and hyperbolic functions and their inverses: dy times the derivative */
static kiln_status grad_trig(grad_ctx *c) {
    ir_value *x = X(0), *one = gb_scalar(c, x->type.dtype, 1), *x2 = gb2(c, IR_OP_MUL, x, x), *d;
    switch (c->node->op) {
    case IR_OP_SIN: d = gb1(c, IR_OP_COS, x); break;
    case IR_OP_COS: d = gb1(c, IR_OP_NEG, gb1(c, IR_OP_SIN, x)); break;
    case IR_OP_TAN: d = gb2(c, IR_OP_ADD, one, gb2(c, IR_OP_MUL, Y(0), Y(0))); break;
    case IR_OP_ASIN: d = gb1(c, IR_OP_RECIPROCAL, gb1(c, IR_OP_SQRT, gb2(c, IR_OP_SUB, one, x2))); break;
    case IR_OP_ACOS: d = gb1(c, IR_OP_NEG, gb1(c, IR_OP_RECIPROCAL, gb1(c, IR_OP_SQRT, gb2(c, IR_OP_SUB, one, x2)))); break;
    case IR_OP_ATAN: d = gb1(c, IR_OP_RECIPROCAL, gb2(c, IR_OP_ADD, one, x2)); break;
    case IR_OP_SINH: d = gb1(c, IR_OP_COSH, x); break;
    case IR_OP_COSH: d = gb1(c, IR_OP_SINH, x); break;
    case IR_OP_ASINH: d = gb1(c, IR_OP_RECIPROCAL, gb1(c, IR_OP_SQRT, gb2(c, IR_OP_ADD, x2, one))); break;
    case IR_OP_ACOSH: d = gb1(c, IR_OP_RECIPROCAL, gb1(c, IR_OP_SQRT, gb2(c, IR_OP_SUB, x2, one))); break;
    default: d = gb1(c, IR_OP_RECIPROCAL, gb2(c, IR_OP_SUB, one, x2)); break; /* Atanh */
    }
    c->dx[0] = gb2(c, IR_OP_MUL, DY, d);
    return c->st;
}

/* ThresholdedRelu (y = x above alpha) and Shrink (y = x -+ bias outside [-lambd, lambd]):
 * dy where y follows x, else 0 */
static kiln_status grad_thresholds(grad_ctx *c) {
    ir_value *x = X(0), *pass;
    kiln_dtype dt = x->type.dtype;
    if (c->node->op == IR_OP_THRESHOLDED_RELU) {
        pass = gb2(c, IR_OP_GREATER, x, gb_scalar(c, dt, ir_attr_float(c->node, "alpha")));
    } else {
        double l = ir_attr_float(c->node, "lambd");
        pass = gb2(c, IR_OP_OR, gb2(c, IR_OP_LESS, x, gb_scalar(c, dt, -l)), gb2(c, IR_OP_GREATER, x, gb_scalar(c, dt, l)));
    }
    c->dx[0] = gb3(c, IR_OP_WHERE, pass, DY, grad_zero_scalar(c, x));
    return c->st;
}

/* ---- more elementwise ------------------------------------------------------------------ */

static ir_value *scalar(grad_ctx *c, double v) { return gb_scalar(c, DY->type.dtype, v); }
static ir_value *positive(grad_ctx *c, ir_value *x) { return gb2(c, IR_OP_GREATER, x, grad_zero_scalar(c, x)); }

/* y = a^b: da = dy b a^(b-1), db = dy y ln a (defined for a > 0) */
static kiln_status grad_pow(grad_ctx *c) {
    if (c->need[0])
        c->dx[0] = gb_unbroadcast(c, gb2(c, IR_OP_MUL, gb2(c, IR_OP_MUL, DY, X(1)),
                                          gb2(c, IR_OP_POW, X(0), gb2(c, IR_OP_SUB, X(1), scalar(c, 1)))), &X(0)->type);
    if (c->need[1])
        c->dx[1] = gb_unbroadcast(c, gb2(c, IR_OP_MUL, gb2(c, IR_OP_MUL, DY, Y(0)), gb1(c, IR_OP_LOG, X(0))), &X(1)->type);
    return c->st;
}

static kiln_status grad_where(grad_ctx *c) {
    ir_value *zero = grad_zero_scalar(c, Y(0));
    if (c->need[1])
        c->dx[1] = gb_unbroadcast(c, gb3(c, IR_OP_WHERE, X(0), DY, zero), &X(1)->type);
    if (c->need[2])
        c->dx[2] = gb_unbroadcast(c, gb3(c, IR_OP_WHERE, X(0), zero, DY), &X(2)->type);
    return c->st;
}

/* Max/Min: dy goes to the inputs equal to the result, shared where several are */
static kiln_status grad_max_min(grad_ctx *c) {
    int n = c->node->input_count;
    ir_value *hit[IR_VARIADIC], *count = NULL;
    for (int i = 0; i < n; i++) {
        hit[i] = grad_indicator(c, X(i), Y(0));
        count = count ? gb2(c, IR_OP_ADD, count, hit[i]) : hit[i];
    }
    ir_value *share = gb2(c, IR_OP_DIV, DY, count);
    for (int i = 0; i < n; i++)
        if (c->need[i])
            c->dx[i] = gb_unbroadcast(c, gb2(c, IR_OP_MUL, share, hit[i]), &X(i)->type);
    return c->st;
}

static kiln_status grad_mean(grad_ctx *c) {
    ir_value *d = gb2(c, IR_OP_DIV, DY, scalar(c, c->node->input_count));
    for (int i = 0; i < c->node->input_count; i++)
        if (c->need[i])
            c->dx[i] = gb_unbroadcast(c, d, &X(i)->type);
    return c->st;
}

/* y = min(max(x, lo), hi): with m = max(x, lo), dy goes to hi where m > hi, else to x
 * where x >= lo and to lo where x < lo (each bound's share summed back to its shape) */
static kiln_status grad_clip(grad_ctx *c) {
    ir_value *zero = grad_zero_scalar(c, Y(0)), *lo = c->node->input_count > 1 ? X(1) : NULL;
    ir_value *hi = c->node->input_count > 2 ? X(2) : NULL, *dm = DY;
    if (hi) {
        ir_value *m = lo ? gb2(c, IR_OP_MAX, X(0), lo) : X(0), *under = gb2(c, IR_OP_LESS_OR_EQUAL, m, hi);
        if (c->need[2])
            c->dx[2] = gb_unbroadcast(c, gb3(c, IR_OP_WHERE, under, zero, DY), &hi->type);
        dm = gb3(c, IR_OP_WHERE, under, DY, zero);
    }
    ir_value *above = lo ? gb2(c, IR_OP_GREATER_OR_EQUAL, X(0), lo) : NULL;
    if (lo && c->need[1])
        c->dx[1] = gb_unbroadcast(c, gb3(c, IR_OP_WHERE, above, zero, dm), &lo->type);
    if (c->need[0])
        c->dx[0] = above ? gb3(c, IR_OP_WHERE, above, dm, zero) : dm;
    return c->st;
}

static kiln_status grad_cast(grad_ctx *c) {
    ir_node *back = gb_begin(c, IR_OP_CAST, 1, &DY);
    gb_attr_string(c, back, "to", kiln_dtype_name(X(0)->type.dtype));
    c->dx[0] = gb_done(c, back);
    return c->st;
}

/* CastLike: back to the input's dtype; the dtype donor gets nothing */
static kiln_status grad_cast_like(grad_ctx *c) {
    if (c->need[0])
        return grad_cast(c);
    return c->st;
}

/* Elu, Selu, Celu: their slope on each side of 0, written with y */
static kiln_status grad_elu_like(grad_ctx *c) {
    const ir_node *n = c->node;
    double alpha = ir_attr_float(n, "alpha"), gamma = n->op == IR_OP_SELU ? ir_attr_float(n, "gamma") : 1;
    ir_value *neg_slope; /* d y / d x for x <= 0 */
    if (n->op == IR_OP_CELU)      /* y = alpha (exp(x / alpha) - 1) */
        neg_slope = gb2(c, IR_OP_ADD, gb2(c, IR_OP_DIV, Y(0), scalar(c, alpha)), scalar(c, 1));
    else                          /* y = gamma alpha (exp(x) - 1) */
        neg_slope = gb2(c, IR_OP_ADD, Y(0), scalar(c, alpha * gamma));
    ir_value *pos = gamma == 1 ? DY : gb2(c, IR_OP_MUL, DY, scalar(c, gamma));
    c->dx[0] = gb3(c, IR_OP_WHERE, positive(c, X(0)), pos, gb2(c, IR_OP_MUL, DY, neg_slope));
    return c->st;
}

static kiln_status grad_softplus(grad_ctx *c) {
    c->dx[0] = gb2(c, IR_OP_MUL, DY, gb1(c, IR_OP_SIGMOID, X(0)));
    return c->st;
}

/* dy / (1 + |x|)^2 */
static kiln_status grad_softsign(grad_ctx *c) {
    ir_value *den = gb2(c, IR_OP_ADD, gb1(c, IR_OP_ABS, X(0)), scalar(c, 1));
    c->dx[0] = gb2(c, IR_OP_DIV, DY, gb2(c, IR_OP_MUL, den, den));
    return c->st;
}

/* dy alpha where 0 < alpha x + beta < 1 */
static kiln_status grad_hard_sigmoid(grad_ctx *c) {
    double alpha = ir_attr_float(c->node, "alpha");
    ir_value *inside = gb2(c, IR_OP_AND, positive(c, Y(0)), gb2(c, IR_OP_LESS, Y(0), scalar(c, 1)));
    c->dx[0] = gb3(c, IR_OP_WHERE, inside, gb2(c, IR_OP_MUL, DY, scalar(c, alpha)), grad_zero_scalar(c, Y(0)));
    return c->st;
}

/* dy 2 / sqrt(pi) exp(-x^2) */
static kiln_status grad_erf(grad_ctx *c) {
    ir_value *e = gb1(c, IR_OP_EXP, gb1(c, IR_OP_NEG, gb2(c, IR_OP_MUL, X(0), X(0))));
    c->dx[0] = gb2(c, IR_OP_MUL, gb2(c, IR_OP_MUL, DY, e), scalar(c, 1.1283791670955126));
    return c->st;
}

/* Gelu. Exact, y = x Phi(x): dy (Phi(x) + x phi(x)), phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
 * Tanh approximation, y = x (1 + t) / 2, t = tanh(k (x + 0.044715 x^3)), k = sqrt(2 / pi):
 * dy ((1 + t) / 2 + x (1 - t^2) k (1 + 3 * 0.044715 x^2) / 2). */
static kiln_status grad_gelu(grad_ctx *c) {
    ir_value *x = X(0), *x2 = gb2(c, IR_OP_MUL, x, x);
    if (strcmp(ir_attr_string(c->node, "approximate"), "none")) {
        const double k = 0.7978845608028654, a = 0.044715;
        ir_value *u = gb2(c, IR_OP_MUL, scalar(c, k), gb2(c, IR_OP_ADD, x, gb2(c, IR_OP_MUL, scalar(c, a), gb2(c, IR_OP_MUL, x2, x))));
        ir_value *t = gb1(c, IR_OP_TANH, u);
        ir_value *half = gb2(c, IR_OP_MUL, scalar(c, 0.5), gb2(c, IR_OP_ADD, scalar(c, 1), t));
        ir_value *du = gb2(c, IR_OP_MUL, scalar(c, k), gb2(c, IR_OP_ADD, scalar(c, 1), gb2(c, IR_OP_MUL, scalar(c, 3 * a), x2)));
        ir_value *rest = gb2(c, IR_OP_MUL, gb2(c, IR_OP_MUL, gb2(c, IR_OP_MUL, scalar(c, 0.5), x),
                                                 gb2(c, IR_OP_SUB, scalar(c, 1), gb2(c, IR_OP_MUL, t, t))), du);
        c->dx[0] = gb2(c, IR_OP_MUL, DY, gb2(c, IR_OP_ADD, half, rest));
        return c->st;
    }
    ir_value *phi_cdf = gb2(c, IR_OP_MUL, scalar(c, 0.5),
                            gb2(c, IR_OP_ADD, scalar(c, 1), gb1(c, IR_OP_ERF, gb2(c, IR_OP_MUL, x, scalar(c, 0.7071067811865476)))));
    ir_value *phi = gb2(c, IR_OP_MUL, scalar(c, 0.3989422804014327), gb1(c, IR_OP_EXP, gb2(c, IR_OP_MUL, x2, scalar(c, -0.5))));
    c->dx[0] = gb2(c, IR_OP_MUL, DY, gb2(c, IR_OP_ADD, phi_cdf, gb2(c, IR_OP_MUL, x, phi)));
    return c->st;
}

/* y = x > 0 ? x : slope x */
static kiln_status grad_prelu(grad_ctx *c) {
    ir_value *pos = positive(c, X(0)), *zero = grad_zero_scalar(c, Y(0));
    if (c->need[0])
        c->dx[0] = gb_unbroadcast(c, gb3(c, IR_OP_WHERE, pos, DY, gb2(c, IR_OP_MUL, DY, X(1))), &X(0)->type);
    if (c->need[1])
        c->dx[1] = gb_unbroadcast(c, gb3(c, IR_OP_WHERE, pos, zero, gb2(c, IR_OP_MUL, DY, X(0))), &X(1)->type);
    return c->st;
}

/* Dropout outside training mode (ratio 0 or no training_mode) is the identity */
static kiln_status grad_dropout(grad_ctx *c) {
    const ir_node *n = c->node;
    const kiln_tensor *mode = n->input_count > 2 && X(2) ? X(2)->init : NULL;
    if (n->input_count > 2 && X(2) && (!mode || ir_tensor_get(mode, 0) != 0))
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "Dropout in training mode is not differentiated yet"), c->st;
    c->dx[0] = DY;
    return c->st;
}

static kiln_status grad_expand(grad_ctx *c) {
    c->dx[0] = gb_unbroadcast(c, DY, &X(0)->type);
    return c->st;
}

/* Concat: each input's part of dy, sliced back out along the axis */
static kiln_status grad_concat(grad_ctx *c) {
    int rank = Y(0)->type.rank;
    int64_t axis = ir_attr_int(c->node, "axis"), at = 0;
    if (axis < 0)
        axis += rank;
    for (int i = 0; i < c->node->input_count; i++) {
        int64_t size = X(i)->type.dims[axis], end = at + size;
        if (c->need[i]) {
            ir_value *in[4] = {DY, gb_i64s(c, 1, &at), gb_i64s(c, 1, &end), gb_i64s(c, 1, &axis)};
            c->dx[i] = gb_done(c, gb_begin(c, IR_OP_SLICE, 4, in));
        }
        at = end;
    }
    return c->st;
}

/* ---- linear algebra -------------------------------------------------------------------- */

/* y = a @ b (batch dimensions broadcast): da = dy @ b^T, db = a^T @ dy, each summed over
 * the batch dimensions its input was broadcast along. A 1-D a is a row [1, K] and a 1-D b
 * a column [K, 1], as numpy treats them; dy gains the dimension they dropped. */
static kiln_status grad_matmul(grad_ctx *c) {
    kiln_tensor a = X(0)->type, b = X(1)->type, y = DY->type;
    if (a.rank == 1) {
        a.rank = 2, a.dims[1] = a.dims[0], a.dims[0] = 1;
        y.dims[y.rank] = y.rank ? y.dims[y.rank - 1] : 1;
        y.dims[y.rank ? y.rank - 1 : 0] = 1;
        y.rank++;
    }
    if (b.rank == 1) {
        b.rank = 2, b.dims[1] = 1;
        y.dims[y.rank++] = 1;
    }
    ir_value *a2 = gb_reshape(c, X(0), &a), *b2 = gb_reshape(c, X(1), &b), *dy = gb_reshape(c, DY, &y);
    if (c->need[0])
        c->dx[0] = gb_reshape(c, gb_unbroadcast(c, gb2(c, IR_OP_MATMUL, dy, gb_swap_last(c, b2)), &a), &X(0)->type);
    if (c->need[1])
        c->dx[1] = gb_reshape(c, gb_unbroadcast(c, gb2(c, IR_OP_MATMUL, gb_swap_last(c, a2), dy), &b), &X(1)->type);
    return c->st;
}

/* A Gemm node alpha * op(a) @ op(b), op = transpose if the flag is set. */
static ir_value *gemm(grad_ctx *c, ir_value *a, ir_value *b, bool ta, bool tb, double alpha) {
    ir_node *n = gb_begin(c, IR_OP_GEMM, 2, (ir_value *[]){a, b});
    gb_attr_int(c, n, "transA", ta);
    gb_attr_int(c, n, "transB", tb);
    gb_attr_float(c, n, "alpha", alpha);
    return gb_done(c, n);
}

/* y = alpha * A' @ B' + beta * C with A' = op(A), B' = op(B):
 *   dA' = alpha * dy @ B'^T, so dA = transA ? alpha * B' @ dy^T : alpha * dy @ B'^T
 *   dB' = alpha * A'^T @ dy, so dB = transB ? alpha * dy^T @ A' : alpha * A'^T @ dy
 *   dC = beta * dy, summed back to C's shape */
static kiln_status grad_gemm(grad_ctx *c) {
    bool ta = ir_attr_int(c->node, "transA"), tb = ir_attr_int(c->node, "transB");
    double alpha = ir_attr_float(c->node, "alpha"), beta = ir_attr_float(c->node, "beta");
    if (c->need[0])
        c->dx[0] = ta ? gemm(c, X(1), DY, tb, true, alpha) : gemm(c, DY, X(1), false, !tb, alpha);
    if (c->need[1])
        c->dx[1] = tb ? gemm(c, DY, X(0), true, ta, alpha) : gemm(c, X(0), DY, !ta, false, alpha);
    if (c->node->input_count > 2 && c->need[2]) {
        ir_value *d = beta == 1.0 ? DY : gb2(c, IR_OP_MUL, DY, gb_scalar(c, DY->type.dtype, beta));
        c->dx[2] = gb_unbroadcast(c, d, &X(2)->type);
    }
    return c->st;
}

/* ---- shape ----------------------------------------------------------------------------- */

/* Reshape, Flatten, Squeeze, Unsqueeze: the gradient is dy in the input's shape. */
static kiln_status grad_reshape(grad_ctx *c) {
    c->dx[0] = gb_reshape(c, DY, &X(0)->type);
    return c->st;
}

static kiln_status grad_transpose(grad_ctx *c) {
    int rank = X(0)->type.rank;
    const ir_attr *p = ir_node_attr(c->node, "perm");
    int64_t inverse[KILN_MAX_RANK];
    for (int i = 0; i < rank; i++) {
        int64_t to = p && p->count == rank ? p->ints[i] : rank - 1 - i; /* default: reversed */
        inverse[to] = i;
    }
    c->dx[0] = gb_transpose(c, DY, inverse);
    return c->st;
}

/* ---- reductions and normalizations ----------------------------------------------------- */

/* The axes a reduction node reduces, as a mask over its input's rank; false if they are
 * not known (a run-time axes input). */
bool grad_reduced_axes(const ir_node *n, int rank, bool *mask) {
    memset(mask, 0, sizeof(bool) * (size_t)rank);
    const ir_attr *a = ir_node_attr(n, "axes");
    const kiln_tensor *t = n->input_count > 1 && n->inputs[1] ? n->inputs[1]->init : NULL;
    if (n->input_count > 1 && n->inputs[1] && !t)
        return false;
    int64_t count = a ? a->count : t ? kiln_tensor_count(t) : 0;
    if (!count) {
        bool noop = ir_attr_int(n, "noop_with_empty_axes");
        for (int i = 0; i < rank; i++)
            mask[i] = !noop;
        return true;
    }
    for (int64_t i = 0; i < count; i++) {
        int64_t ax = a ? a->ints[i] : ir_tensor_get_int(t, i);
        mask[ax < 0 ? ax + rank : ax] = true;
    }
    return true;
}

/* ReduceSum/ReduceMean: dy with the reduced axes restored as 1s, expanded to x's shape
 * (and divided by the count for a mean). */
static kiln_status grad_reduce(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type;
    bool mask[KILN_MAX_RANK];
    if (!grad_reduced_axes(c->node, x->rank, mask))
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "reduction axes given at run time"), c->st;
    kiln_tensor kept = *x;
    int64_t n = 1;
    for (int i = 0; i < x->rank; i++)
        if (mask[i])
            n *= kept.dims[i], kept.dims[i] = 1;
    ir_value *d = gb_reshape(c, DY, &kept);
    if (c->node->op == IR_OP_REDUCE_MEAN)
        d = gb2(c, IR_OP_DIV, d, gb_scalar(c, DY->type.dtype, (double)n));
    c->dx[0] = gb2(c, IR_OP_EXPAND, d, gb_i64s(c, x->rank, x->dims));
    return c->st;
}

static ir_value *sum_axis(grad_ctx *c, ir_value *x, int64_t axis) {
    return gb_reduce(c, IR_OP_REDUCE_SUM, x, 1, &axis, true);
}

/* y = softmax(x): dx = y * (dy - sum(dy * y)) along the axis */
static kiln_status grad_softmax(grad_ctx *c) {
    int64_t axis = ir_attr_int(c->node, "axis");
    ir_value *s = sum_axis(c, gb2(c, IR_OP_MUL, DY, Y(0)), axis);
    c->dx[0] = gb2(c, IR_OP_MUL, Y(0), gb2(c, IR_OP_SUB, DY, s));
    return c->st;
}

/* y = log_softmax(x): dx = dy - exp(y) * sum(dy) along the axis */
static kiln_status grad_log_softmax(grad_ctx *c) {
    int64_t axis = ir_attr_int(c->node, "axis");
    c->dx[0] = gb2(c, IR_OP_SUB, DY, gb2(c, IR_OP_MUL, gb1(c, IR_OP_EXP, Y(0)), sum_axis(c, DY, axis)));
    return c->st;
}

/* GlobalAveragePool: dY / (spatial size), spread over the spatial axes. */
static kiln_status grad_global_average_pool(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type;
    int64_t size = 1;
    for (int i = 2; i < x->rank; i++)
        size *= x->dims[i];
    ir_value *d = gb2(c, IR_OP_DIV, DY, gb_scalar(c, DY->type.dtype, (double)size));
    c->dx[0] = gb2(c, IR_OP_EXPAND, d, gb_i64s(c, x->rank, x->dims));
    return c->st;
}

/* BatchNormalization. Training mode (batch statistics; mean and variance over every axis
 * but the channels, m elements each):
 *   xhat = (x - mean) / sqrt(var + eps), y = gamma xhat + beta
 *   dbeta = sum dy, dgamma = sum dy xhat,
 *   dx = gamma / sqrt(var + eps) * (dy - mean(dy) - xhat mean(dy xhat))
 * Inference mode (running statistics, constants here): dx = dy gamma / sqrt(rv + eps),
 * dgamma = sum dy (x - rm) / sqrt(rv + eps), dbeta = sum dy. */
/* Normalization over `axes` from the batch's own statistics: *inv = 1 / sqrt(var + eps)
 * and *xhat = (x - mean) * inv. */
void grad_normalize(grad_ctx *c, ir_value *x, int na, const int64_t *axes, double epsilon, ir_value **xhat,
                      ir_value **inv) {
    ir_value *xc = gb2(c, IR_OP_SUB, x, gb_reduce(c, IR_OP_REDUCE_MEAN, x, na, axes, true));
    ir_value *var = gb_reduce(c, IR_OP_REDUCE_MEAN, gb2(c, IR_OP_MUL, xc, xc), na, axes, true);
    *inv = gb1(c, IR_OP_RECIPROCAL, gb1(c, IR_OP_SQRT, gb2(c, IR_OP_ADD, var, gb_scalar(c, x->type.dtype, epsilon))));
    *xhat = gb2(c, IR_OP_MUL, xc, *inv);
}

/* The input gradient of a normalization by batch statistics, given g = dy * gamma:
 * inv * (g - mean(g) - xhat * mean(g * xhat)), the means over the normalized axes. */
ir_value *grad_normalized_input(grad_ctx *c, ir_value *g, ir_value *xhat, ir_value *inv, int na,
                                       const int64_t *axes) {
    ir_value *mg = gb_reduce(c, IR_OP_REDUCE_MEAN, g, na, axes, true);
    ir_value *mgx = gb_reduce(c, IR_OP_REDUCE_MEAN, gb2(c, IR_OP_MUL, g, xhat), na, axes, true);
    return gb2(c, IR_OP_MUL, gb2(c, IR_OP_SUB, gb2(c, IR_OP_SUB, g, mg), gb2(c, IR_OP_MUL, xhat, mgx)), inv);
}

static kiln_status grad_batch_norm(grad_ctx *c) {
    const ir_node *n = c->node;
    const kiln_tensor *x = &X(0)->type;
    bool training = ir_attr_int(n, "training_mode");
    double epsilon = ir_attr_float(n, "epsilon");
    int64_t axes[KILN_MAX_RANK];
    int na = 0;
    for (int i = 0; i < x->rank; i++)
        if (i != 1)
            axes[na++] = i;
    kiln_tensor chan = {.dtype = x->dtype, .rank = x->rank};
    for (int i = 0; i < x->rank; i++)
        chan.dims[i] = i == 1 ? x->dims[1] : 1;
    ir_value *xhat, *inv;
    if (training) {
        grad_normalize(c, X(0), na, axes, epsilon, &xhat, &inv);
    } else {
        ir_value *var = gb_reshape(c, X(4), &chan);
        inv = gb1(c, IR_OP_RECIPROCAL, gb1(c, IR_OP_SQRT, gb2(c, IR_OP_ADD, var, gb_scalar(c, x->dtype, epsilon))));
        xhat = gb2(c, IR_OP_MUL, gb2(c, IR_OP_SUB, X(0), gb_reshape(c, X(3), &chan)), inv);
    }
    if (c->need[2])
        c->dx[2] = gb_reduce(c, IR_OP_REDUCE_SUM, DY, na, axes, false);
    if (c->need[1])
        c->dx[1] = gb_reduce(c, IR_OP_REDUCE_SUM, gb2(c, IR_OP_MUL, DY, xhat), na, axes, false);
    if (c->need[0]) {
        ir_value *g = gb2(c, IR_OP_MUL, DY, gb_reshape(c, X(1), &chan));
        c->dx[0] = training ? grad_normalized_input(c, g, xhat, inv, na, axes) : gb2(c, IR_OP_MUL, g, inv);
    }
    return c->st;
}

/* ---- batch 2: more activations, reductions, slicing, normalization ------------------------ */

/* HardSwish y = x min(max(x + 3, 0), 6) / 6: dy (2x + 3) / 6 inside (-3, 3), dy above 3 */
static kiln_status grad_hard_swish(grad_ctx *c) {
    ir_value *x = X(0), *zero = grad_zero_scalar(c, x);
    ir_value *mid = gb2(c, IR_OP_MUL, DY, gb2(c, IR_OP_DIV, gb2(c, IR_OP_ADD, gb2(c, IR_OP_MUL, x, scalar(c, 2)), scalar(c, 3)),
                                             scalar(c, 6)));
    ir_value *above = gb2(c, IR_OP_GREATER_OR_EQUAL, x, scalar(c, 3)), *below = gb2(c, IR_OP_LESS_OR_EQUAL, x, scalar(c, -3));
    c->dx[0] = gb3(c, IR_OP_WHERE, above, DY, gb3(c, IR_OP_WHERE, below, zero, mid));
    return c->st;
}

/* Silu y = x sigmoid(x): dy s (1 + x (1 - s)) */
static kiln_status grad_silu(grad_ctx *c) {
    ir_value *sg = gb1(c, IR_OP_SIGMOID, X(0));
    ir_value *inner = gb2(c, IR_OP_ADD, scalar(c, 1), gb2(c, IR_OP_MUL, X(0), gb2(c, IR_OP_SUB, scalar(c, 1), sg)));
    c->dx[0] = gb2(c, IR_OP_MUL, DY, gb2(c, IR_OP_MUL, sg, inner));
    return c->st;
}

/* Mish y = x tanh(softplus(x)): dy (t + x sigmoid(x) (1 - t^2)), t = tanh(softplus(x)) */
static kiln_status grad_mish(grad_ctx *c) {
    ir_value *t = gb1(c, IR_OP_TANH, gb1(c, IR_OP_SOFTPLUS, X(0)));
    ir_value *rest = gb2(c, IR_OP_MUL, gb2(c, IR_OP_MUL, X(0), gb1(c, IR_OP_SIGMOID, X(0))),
                         gb2(c, IR_OP_SUB, scalar(c, 1), gb2(c, IR_OP_MUL, t, t)));
    c->dx[0] = gb2(c, IR_OP_MUL, DY, gb2(c, IR_OP_ADD, t, rest));
    return c->st;
}

/* dy restored to x's rank with the reduced axes as 1s (then broadcast against x) */
static ir_value *kept(grad_ctx *c, ir_value *d, bool *known) {
    const kiln_tensor *x = &X(0)->type;
    bool mask[KILN_MAX_RANK];
    if (!(*known = grad_reduced_axes(c->node, x->rank, mask)))
        return NULL;
    kiln_tensor k = *x;
    for (int i = 0; i < x->rank; i++)
        if (mask[i])
            k.dims[i] = 1;
    return gb_reshape(c, d, &k);
}

/* ReduceSumSquare: 2 x dy; ReduceL2 (y = sqrt(sum x^2)): x dy / y; ReduceL1: sign(x) dy;
 * ReduceLogSum (y = log sum x): dy / exp(y); ReduceLogSumExp: dy exp(x - y); ReduceProd:
 * dy times the product of the other elements (below); ReduceMax/Min: dy to the elements
 * equal to the result, shared among ties */
static kiln_status grad_reduce_more(grad_ctx *c) {
    bool known, mask[KILN_MAX_RANK];
    ir_value *dy = kept(c, DY, &known), *y = known ? kept(c, Y(0), &known) : NULL, *x = X(0);
    if (!known)
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "reduction axes given at run time"), c->st;
    int64_t axes[KILN_MAX_RANK];
    int na = 0;
    grad_reduced_axes(c->node, x->type.rank, mask);
    for (int i = 0; i < x->type.rank; i++)
        if (mask[i])
            axes[na++] = i;
    switch (c->node->op) {
    case IR_OP_REDUCE_SUM_SQUARE:
        c->dx[0] = gb2(c, IR_OP_MUL, gb2(c, IR_OP_MUL, dy, x), scalar(c, 2));
        break;
    case IR_OP_REDUCE_L2:
        c->dx[0] = gb2(c, IR_OP_DIV, gb2(c, IR_OP_MUL, dy, x), y);
        break;
    case IR_OP_REDUCE_L1:
        c->dx[0] = gb2(c, IR_OP_MUL, dy, gb1(c, IR_OP_SIGN, x));
        break;
    case IR_OP_REDUCE_LOG_SUM:
        c->dx[0] = gb2(c, IR_OP_EXPAND, gb2(c, IR_OP_DIV, dy, gb1(c, IR_OP_EXP, y)),
                       gb_i64s(c, x->type.rank, x->type.dims));
        break;
    case IR_OP_REDUCE_LOG_SUM_EXP:
        c->dx[0] = gb2(c, IR_OP_MUL, dy, gb1(c, IR_OP_EXP, gb2(c, IR_OP_SUB, x, y)));
        break;
    case IR_OP_REDUCE_PROD: {
        /* The product of the others, exact with zeros: with p the product of the nonzero
         * elements and z the count of zeros, it is p / x where z = 0, p at the zero where
         * z = 1, and 0 everywhere else. */
        ir_value *zero = grad_zero_scalar(c, x), *one = scalar(c, 1);
        ir_value *is_zero = gb2(c, IR_OP_EQUAL, x, zero);
        ir_value *z = gb_reduce(c, IR_OP_REDUCE_SUM, grad_indicator(c, x, gb2(c, IR_OP_MUL, x, zero)), na, axes, true);
        ir_value *p = gb_reduce(c, IR_OP_REDUCE_PROD, gb3(c, IR_OP_WHERE, is_zero, one, x), na, axes, true);
        ir_value *at_zero = gb3(c, IR_OP_WHERE, gb2(c, IR_OP_EQUAL, z, one), p, zero);
        ir_value *elsewhere = gb3(c, IR_OP_WHERE, gb2(c, IR_OP_EQUAL, z, zero), gb2(c, IR_OP_DIV, p, gb3(c, IR_OP_WHERE, is_zero, one, x)), zero);
        c->dx[0] = gb2(c, IR_OP_MUL, dy, gb3(c, IR_OP_WHERE, is_zero, at_zero, elsewhere));
        break;
    }
    default: { /* the ties counted over the same axes */
        ir_value *hit = grad_indicator(c, x, y);
        c->dx[0] = gb2(c, IR_OP_MUL, hit, gb2(c, IR_OP_DIV, dy, gb_reduce(c, IR_OP_REDUCE_SUM, hit, na, axes, true)));
    }
    }
    return c->st;
}

/* GlobalMaxPool: ReduceMax over the spatial axes */
static kiln_status grad_global_max_pool(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type;
    ir_value *hit = grad_indicator(c, X(0), Y(0));
    int64_t axes[KILN_MAX_RANK];
    for (int i = 2; i < x->rank; i++)
        axes[i - 2] = i;
    c->dx[0] = gb2(c, IR_OP_MUL, hit, gb2(c, IR_OP_DIV, DY, gb_reduce(c, IR_OP_REDUCE_SUM, hit, x->rank - 2, axes, true)));
    return c->st;
}

/* LayerNormalization over the axes from `axis` on, as BatchNormalization's training rule
 * with those axes (outputs Mean and InvStdDev, if asked for, are not differentiated) */
static kiln_status grad_layer_norm(grad_ctx *c) {
    const ir_node *n = c->node;
    const kiln_tensor *x = &X(0)->type;
    if ((n->output_count > 1 && c->dy[1]) || (n->output_count > 2 && c->dy[2]))
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "LayerNormalization's Mean and InvStdDev outputs are not differentiated"), c->st;
    int64_t axis = ir_attr_int(n, "axis"), axes[KILN_MAX_RANK];
    if (axis < 0)
        axis += x->rank;
    int na = 0;
    for (int i = (int)axis; i < x->rank; i++)
        axes[na++] = i;
    ir_value *xhat, *inv;
    grad_normalize(c, X(0), na, axes, ir_attr_float(n, "epsilon"), &xhat, &inv);
    if (n->input_count > 2 && X(2) && c->need[2])
        c->dx[2] = gb_unbroadcast(c, DY, &X(2)->type);
    if (c->need[1])
        c->dx[1] = gb_unbroadcast(c, gb2(c, IR_OP_MUL, DY, xhat), &X(1)->type);
    if (c->need[0])
        c->dx[0] = grad_normalized_input(c, gb2(c, IR_OP_MUL, DY, X(1)), xhat, inv, na, axes);
    return c->st;
}

/* Piecewise-constant outputs (Floor, Ceil, Round, Sign) and DropoutMask, which reads only
 * its input's shape: no gradient flows back (zero almost everywhere, as in PyTorch). */
static kiln_status grad_none(grad_ctx *c) {
    return c->st;
}

grad_fn grad_rule(ir_op op) {
    static const grad_fn rules[IR_OP_COUNT] = {
        [IR_OP_ADD] = grad_add, [IR_OP_SUB] = grad_sub, [IR_OP_MUL] = grad_mul, [IR_OP_DIV] = grad_div,
        [IR_OP_SUM] = grad_sum, [IR_OP_IDENTITY] = grad_identity, [IR_OP_NEG] = grad_neg,
        [IR_OP_RELU] = grad_relu, [IR_OP_LEAKY_RELU] = grad_leaky_relu, [IR_OP_SIGMOID] = grad_sigmoid,
        [IR_OP_TANH] = grad_tanh, [IR_OP_EXP] = grad_exp, [IR_OP_LOG] = grad_log, [IR_OP_SQRT] = grad_sqrt,
        [IR_OP_RECIPROCAL] = grad_reciprocal, [IR_OP_ABS] = grad_abs, [IR_OP_MATMUL] = grad_matmul,
        [IR_OP_GEMM] = grad_gemm, [IR_OP_RESHAPE] = grad_reshape, [IR_OP_FLATTEN] = grad_reshape,
        [IR_OP_SQUEEZE] = grad_reshape, [IR_OP_UNSQUEEZE] = grad_reshape, [IR_OP_TRANSPOSE] = grad_transpose,
        [IR_OP_REDUCE_SUM] = grad_reduce, [IR_OP_REDUCE_MEAN] = grad_reduce, [IR_OP_SOFTMAX] = grad_softmax,
        [IR_OP_LOG_SOFTMAX] = grad_log_softmax, [IR_OP_SOFTMAX_CROSS_ENTROPY] = grad_softmax_cross_entropy,
        [IR_OP_CONV] = grad_conv, [IR_OP_MAX_POOL] = grad_max_pool, [IR_OP_GLOBAL_AVERAGE_POOL] = grad_global_average_pool,
        [IR_OP_BATCH_NORM] = grad_batch_norm, [IR_OP_POW] = grad_pow, [IR_OP_WHERE] = grad_where,
        [IR_OP_MAX] = grad_max_min, [IR_OP_MIN] = grad_max_min, [IR_OP_MEAN] = grad_mean, [IR_OP_CLIP] = grad_clip,
        [IR_OP_CAST] = grad_cast, [IR_OP_ELU] = grad_elu_like, [IR_OP_SELU] = grad_elu_like,
        [IR_OP_CELU] = grad_elu_like, [IR_OP_SOFTPLUS] = grad_softplus, [IR_OP_SOFTSIGN] = grad_softsign,
        [IR_OP_HARD_SIGMOID] = grad_hard_sigmoid, [IR_OP_ERF] = grad_erf, [IR_OP_GELU] = grad_gelu,
        [IR_OP_PRELU] = grad_prelu, [IR_OP_DROPOUT] = grad_dropout, [IR_OP_EXPAND] = grad_expand,
        [IR_OP_CONCAT] = grad_concat, [IR_OP_PAD] = grad_pad, [IR_OP_HARD_SWISH] = grad_hard_swish,
        [IR_OP_SILU] = grad_silu, [IR_OP_MISH] = grad_mish, [IR_OP_REDUCE_SUM_SQUARE] = grad_reduce_more,
        [IR_OP_REDUCE_L2] = grad_reduce_more, [IR_OP_REDUCE_MAX] = grad_reduce_more, [IR_OP_REDUCE_MIN] = grad_reduce_more,
        [IR_OP_GLOBAL_MAX_POOL] = grad_global_max_pool, [IR_OP_AVERAGE_POOL] = grad_average_pool,
        [IR_OP_SLICE] = grad_slice, [IR_OP_LAYER_NORM] = grad_layer_norm, [IR_OP_SPLIT] = grad_split,
        [IR_OP_TILE] = grad_tile, [IR_OP_GATHER_ELEMENTS] = grad_gather_elements, [IR_OP_GATHER] = grad_gather,
        [IR_OP_FLOOR] = grad_none, [IR_OP_CEIL] = grad_none, [IR_OP_ROUND] = grad_none, [IR_OP_SIGN] = grad_none,
        [IR_OP_DROPOUT_MASK] = grad_none,
        [IR_OP_SIN] = grad_trig, [IR_OP_COS] = grad_trig, [IR_OP_TAN] = grad_trig, [IR_OP_ASIN] = grad_trig,
        [IR_OP_ACOS] = grad_trig, [IR_OP_ATAN] = grad_trig, [IR_OP_SINH] = grad_trig, [IR_OP_COSH] = grad_trig,
        [IR_OP_ASINH] = grad_trig, [IR_OP_ACOSH] = grad_trig, [IR_OP_ATANH] = grad_trig,
        [IR_OP_THRESHOLDED_RELU] = grad_thresholds, [IR_OP_SHRINK] = grad_thresholds, [IR_OP_CAST_LIKE] = grad_cast_like,
        [IR_OP_REDUCE_PROD] = grad_reduce_more, [IR_OP_REDUCE_L1] = grad_reduce_more,
        [IR_OP_REDUCE_LOG_SUM] = grad_reduce_more, [IR_OP_REDUCE_LOG_SUM_EXP] = grad_reduce_more,
        [IR_OP_CONV_TRANSPOSE] = grad_conv_transpose, [IR_OP_INSTANCE_NORM] = grad_instance_norm,
        [IR_OP_LRN] = grad_lrn, [IR_OP_LP_NORM] = grad_lp_norm, [IR_OP_MVN] = grad_mvn,
        [IR_OP_MAX_UNPOOL] = grad_max_unpool, [IR_OP_DEPTH_TO_SPACE] = grad_depth_space,
        [IR_OP_SPACE_TO_DEPTH] = grad_depth_space, [IR_OP_GATHER_ND] = grad_gather_nd,
        [IR_OP_REVERSE_SEQUENCE] = grad_reverse_sequence, [IR_OP_TRILU] = grad_trilu, [IR_OP_CUMSUM] = grad_cumsum,
        [IR_OP_TOPK] = grad_topk, [IR_OP_SCATTER_ND] = grad_scatter_nd, [IR_OP_SCATTER_ELEMENTS] = grad_scatter_elements,
        [IR_OP_COMPRESS] = grad_compress, [IR_OP_EINSUM] = grad_einsum, [IR_OP_NLL_LOSS] = grad_nll_loss,
        [IR_OP_RESIZE] = grad_resize, [IR_OP_RNN] = grad_recurrent, [IR_OP_GRU] = grad_recurrent, [IR_OP_LSTM] = grad_recurrent,
    };
    return op >= 0 && op < IR_OP_COUNT ? rules[op] : NULL;
}
