/*
 * grad_norm.c — gradient rules of the normalizations that batch and layer normalization
 * (grad_rules.c) do not cover: instance, Lp, mean-variance and local response
 * normalization, each from the formula the interpreter computes.
 */
#include "passes/grad_rules.h"

#include <string.h>

static ir_value *num(grad_ctx *c, double v) { return gb_scalar(c, X(0)->type.dtype, v); }
static ir_value *mul(grad_ctx *c, ir_value *a, ir_value *b) { return gb2(c, IR_OP_MUL, a, b); }
static ir_value *sub(grad_ctx *c, ir_value *a, ir_value *b) { return gb2(c, IR_OP_SUB, a, b); }
static ir_value *dvd(grad_ctx *c, ir_value *a, ir_value *b) { return gb2(c, IR_OP_DIV, a, b); }

/* InstanceNormalization: per sample and channel over the spatial axes, then scale and
 * bias per channel: BatchNormalization's training rule with those axes. */
kiln_status grad_instance_norm(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type;
    int64_t axes[KILN_MAX_RANK], outer[KILN_MAX_RANK] = {0};
    int na = 0, no = 1;
    for (int i = 2; i < x->rank; i++)
        axes[na++] = i, outer[no++] = i;
    kiln_tensor chan = {.dtype = x->dtype, .rank = x->rank};
    for (int i = 0; i < x->rank; i++)
        chan.dims[i] = i == 1 ? x->dims[1] : 1;
    ir_value *xhat, *inv;
    grad_normalize(c, X(0), na, axes, ir_attr_float(c->node, "epsilon"), &xhat, &inv);
    if (c->need[2])
        c->dx[2] = gb_reduce(c, IR_OP_REDUCE_SUM, DY, no, outer, false);
    if (c->need[1])
        c->dx[1] = gb_reduce(c, IR_OP_REDUCE_SUM, mul(c, DY, xhat), no, outer, false);
    if (c->need[0])
        c->dx[0] = grad_normalized_input(c, mul(c, DY, gb_reshape(c, X(1), &chan)), xhat, inv, na, axes);
    return c->st;
}

/* LpNormalization y = x / n along the axis. p = 2, n = sqrt(sum x^2):
 * dx = (dy - y sum(dy y)) / n; p = 1, n = sum |x|: dx = dy / n - sign(x) sum(dy x) / n^2. */
kiln_status grad_lp_norm(grad_ctx *c) {
    int64_t axis = ir_attr_int(c->node, "axis");
    ir_value *x = X(0);
    if (ir_attr_int(c->node, "p") == 1) {
        ir_value *n = gb_reduce(c, IR_OP_REDUCE_L1, x, 1, &axis, true);
        ir_value *s = gb_reduce(c, IR_OP_REDUCE_SUM, mul(c, DY, x), 1, &axis, true);
        c->dx[0] = sub(c, dvd(c, DY, n), dvd(c, mul(c, gb1(c, IR_OP_SIGN, x), s), mul(c, n, n)));
    } else {
        ir_value *n = gb_reduce(c, IR_OP_REDUCE_L2, x, 1, &axis, true);
        ir_value *s = gb_reduce(c, IR_OP_REDUCE_SUM, mul(c, DY, Y(0)), 1, &axis, true);
        c->dx[0] = dvd(c, sub(c, DY, mul(c, Y(0), s)), n);
    }
    return c->st;
}

/* MeanVarianceNormalization y = u / (sigma + 1e-9), u = x - mean, sigma = sqrt(mean(u^2))
 * over the axes: dx = (dy - mean(dy)) / s - u mean(dy u) / (sigma s^2), s = sigma + 1e-9. */
kiln_status grad_mvn(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type;
    const ir_attr *a = ir_node_attr(c->node, "axes");
    int64_t axes[KILN_MAX_RANK] = {0, 2, 3};
    int na = a ? a->count : 3;
    for (int i = 0; a && i < a->count; i++)
        axes[i] = a->ints[i] < 0 ? a->ints[i] + x->rank : a->ints[i];
    ir_value *u = sub(c, X(0), gb_reduce(c, IR_OP_REDUCE_MEAN, X(0), na, axes, true));
    ir_value *sigma = gb1(c, IR_OP_SQRT, gb_reduce(c, IR_OP_REDUCE_MEAN, mul(c, u, u), na, axes, true));
    ir_value *s = gb2(c, IR_OP_ADD, sigma, num(c, 1e-9));
    ir_value *centered = dvd(c, sub(c, DY, gb_reduce(c, IR_OP_REDUCE_MEAN, DY, na, axes, true)), s);
    ir_value *m = gb_reduce(c, IR_OP_REDUCE_MEAN, mul(c, DY, u), na, axes, true);
    c->dx[0] = sub(c, centered, dvd(c, mul(c, u, m), mul(c, sigma, mul(c, s, s))));
    return c->st;
}

/* The sum over each channel's window [c - lo, c + hi] of z [N, C, ...]: an AveragePool of
 * z seen as [N, 1, C, rest] with a [size, 1] kernel, padded, times size. The adjoint sum
 * (over the channels whose window holds c) swaps lo and hi. */
static ir_value *channel_window_sum(grad_ctx *c, ir_value *z, int64_t lo, int64_t hi) {
    if (c->st || !z)
        return NULL;
    const kiln_tensor *t = &z->type;
    int64_t size = lo + hi + 1, rest = 1;
    for (int i = 2; i < t->rank; i++)
        rest *= t->dims[i];
    kiln_tensor planes = {.dtype = t->dtype, .rank = 4, .dims = {t->dims[0], 1, t->dims[1], rest}};
    ir_node *p = gb_begin(c, IR_OP_AVERAGE_POOL, 1, (ir_value *[]){gb_reshape(c, z, &planes)});
    gb_attr_ints(c, p, "kernel_shape", 2, (int64_t[]){size, 1});
    gb_attr_ints(c, p, "pads", 4, (int64_t[]){lo, 0, hi, 0});
    gb_attr_int(c, p, "count_include_pad", 1);
    return gb_reshape(c, mul(c, gb_done(c, p), num(c, (double)size)), t);
}

/* LRN y = x d^-beta, d = bias + alpha / size * (window sum of x^2):
 * dx = dy d^-beta - 2 alpha beta / size * x * adjoint window sum of (dy x d^(-beta - 1)) */
kiln_status grad_lrn(grad_ctx *c) {
    double alpha = ir_attr_float(c->node, "alpha"), beta = ir_attr_float(c->node, "beta");
    double bias = ir_attr_float(c->node, "bias");
    int64_t size = ir_attr_int(c->node, "size"), lo = (size - 1) / 2, hi = size - 1 - lo;
    ir_value *x = X(0);
    ir_value *d = gb2(c, IR_OP_ADD, num(c, bias), mul(c, num(c, alpha / (double)size), channel_window_sum(c, mul(c, x, x), lo, hi)));
    ir_value *first = mul(c, DY, gb2(c, IR_OP_POW, d, num(c, -beta)));
    ir_value *inner = mul(c, mul(c, DY, x), gb2(c, IR_OP_POW, d, num(c, -beta - 1)));
    ir_value *second = mul(c, mul(c, x, channel_window_sum(c, inner, hi, lo)), num(c, 2 * alpha * beta / (double)size));
    c->dx[0] = sub(c, first, second);
    return c->st;
}
