/*
 * lower_norm.c — loop lowering of Hardmax, LpNormalization, LRN,
 * MeanVarianceNormalization, ConvTranspose, MaxUnpool and the losses
 * NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss. Formulas follow the reference
 * interpreter's (backend/interp/interp_nn.c).
 */
#include "passes/lower.h"

#include <math.h>
#include <string.h>

#define M (c->m)

static lir_expr *num(lower_ctx *c, kiln_dtype t, double v) { return lir_const(M, t, v); }
static lir_expr *ref(lower_ctx *c, int v) { return lir_var_ref(M, c->k, v); }
static lir_expr *bin(lower_ctx *c, lir_op op, lir_expr *a, lir_expr *b) { return lir_binary(M, op, a, b); }

static int axis_of(lower_ctx *c, const char *attr, int rank) {
    int axis = (int)ir_attr_int(c->node, attr);
    return axis < 0 ? axis + rank : axis;
}

/* Two passes over each row along an axis: `first` (reading x at xc, loop variable j) and then
 * `second` (at yc, j2), both inside the row nest's `inner`, after whatever the caller lets there. */
typedef struct row_passes {
    lir_expr *xc[KILN_MAX_RANK], *yc[KILN_MAX_RANK], *j, *j2;
    lir_stmt *inner, *outer, *first, *second, *loop1, *loop2;
} row_passes;

static kiln_status row_passes_begin(lower_ctx *c, int axis, row_passes *r) {
    const kiln_tensor *x = c->in_type[0];
    kiln_tensor rows = *x;
    rows.dims[axis] = 1;
    lir_expr *oc[KILN_MAX_RANK];
    kiln_status st = lower_nest(c, &rows, oc, &r->inner, &r->outer);
    if (st)
        return st;
    r->first = lir_seq(M), r->second = lir_seq(M);
    if (!r->first || !r->second)
        return lower_oom(c);
    r->loop1 = lower_loop(c, "j", x->dims[axis], r->first, &r->j);
    r->loop2 = lower_loop(c, "j", x->dims[axis], r->second, &r->j2);
    for (int d = 0; d < x->rank; d++)
        r->xc[d] = d == axis ? r->j : oc[d], r->yc[d] = d == axis ? r->j2 : oc[d];
    return KILN_OK;
}

static kiln_status row_passes_end(lower_ctx *c, row_passes *r) {
    if (!lir_seq_push(M, r->inner, r->loop1) || !lir_seq_push(M, r->inner, r->loop2))
        return lower_oom(c);
    return lower_emit(c, r->outer);
}

/* 1 at the first maximum of each row, 0 elsewhere. */
kiln_status lower_hardmax(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    kiln_dtype t = lower_compute_type(x->dtype);
    row_passes r;
    kiln_status st = row_passes_begin(c, axis_of(c, "axis", x->rank), &r);
    if (st)
        return st;
    int best = lower_var(c, "best", t), at = lower_var(c, "at", KILN_I64);
    lir_expr *v = lower_read(c, 0, r.xc);
    lir_expr *better = bin(c, LIR_OR, bin(c, LIR_EQ, r.j, lir_int(M, 0)), bin(c, LIR_GT, v, ref(c, best)));
    lir_stmt *take = lir_seq(M);
    if (!lir_seq_push(M, take, lir_assign(M, best, v)) || !lir_seq_push(M, take, lir_assign(M, at, r.j)) ||
        !lir_seq_push(M, r.first, lir_if(M, better, take, NULL)) ||
        !lir_seq_push(M, r.second, lir_store(M, c->out[0], lower_index(c, x, r.yc, x->rank),
                                             lir_cast(M, x->dtype, bin(c, LIR_EQ, r.j2, ref(c, at))))) ||
        !lir_seq_push(M, r.inner, lir_let(M, best, num(c, t, 0))) || !lir_seq_push(M, r.inner, lir_let(M, at, lir_int(M, 0))))
        return lower_oom(c);
    return row_passes_end(c, &r);
}

/* x divided by the row's L1 or L2 norm. */
kiln_status lower_lp_norm(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    bool l1 = ir_attr_int(c->node, "p") == 1;
    kiln_dtype t = lower_compute_type(x->dtype);
    row_passes r;
    kiln_status st = row_passes_begin(c, axis_of(c, "axis", x->rank), &r);
    if (st)
        return st;
    int norm = lower_var(c, "norm", t);
    lir_expr *v = lower_read(c, 0, r.xc);
    lir_expr *term = l1 ? lir_unary(M, LIR_ABS, v) : bin(c, LIR_MUL, v, v);
    lir_expr *total = l1 ? ref(c, norm) : lir_call(M, LIR_SQRT, ref(c, norm), NULL);
    if (!lir_seq_push(M, r.first, lir_assign(M, norm, bin(c, LIR_ADD, ref(c, norm), term))) ||
        !lir_seq_push(M, r.second, lir_store(M, c->out[0], lower_index(c, x, r.yc, x->rank),
                                             lir_cast(M, x->dtype, bin(c, LIR_DIV, lower_read(c, 0, r.yc), total)))) ||
        !lir_seq_push(M, r.inner, lir_let(M, norm, num(c, t, 0))))
        return lower_oom(c);
    return row_passes_end(c, &r);
}

kiln_status lower_lrn(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    kiln_dtype t = lower_compute_type(x->dtype);
    int64_t size = ir_attr_int(c->node, "size"), lo = (size - 1) / 2, ch = x->dims[1]; /* window [c - lo, c - lo + size) */
    double alpha = ir_attr_float(c->node, "alpha"), beta = ir_attr_float(c->node, "beta"), bias = ir_attr_float(c->node, "bias");
    lir_expr *oc[KILN_MAX_RANK], *xc[KILN_MAX_RANK], *w;
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, x, oc, &inner, &outer);
    if (st)
        return st;
    int sq = lower_var(c, "sq", t);
    lir_stmt *body = lir_seq(M);
    lir_stmt *window = lower_loop(c, "w", size, body, &w);
    lir_expr *chan = bin(c, LIR_ADD, bin(c, LIR_SUB, oc[1], lir_int(M, lo)), w); /* oc[1] - lo + w */
    for (int d = 0; d < x->rank; d++)
        xc[d] = d == 1 ? chan : oc[d];
    lir_expr *v = lower_read(c, 0, xc);
    lir_expr *inside = bin(c, LIR_AND, bin(c, LIR_GE, chan, lir_int(M, 0)), bin(c, LIR_LT, chan, lir_int(M, ch)));
    lir_expr *scale = lir_call(M, LIR_POW, bin(c, LIR_ADD, num(c, t, bias), bin(c, LIR_MUL, num(c, t, alpha / (double)size), ref(c, sq))),
                               num(c, t, beta));
    if (!lir_seq_push(M, body, lir_if(M, inside, lir_assign(M, sq, bin(c, LIR_ADD, ref(c, sq), bin(c, LIR_MUL, v, v))), NULL)) ||
        !lir_seq_push(M, inner, lir_let(M, sq, num(c, t, 0))) || !lir_seq_push(M, inner, window) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, x, oc, x->rank),
                                          lir_cast(M, x->dtype, bin(c, LIR_DIV, lower_read(c, 0, oc), scale)))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* (x - mean) / (sqrt(E[x^2] - mean^2) + 1e-9) over the axes (default 0, 2, 3). */
kiln_status lower_mvn(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    kiln_dtype t = lower_compute_type(x->dtype);
    const ir_attr *axes = ir_node_attr(c->node, "axes");
    bool mask[KILN_MAX_RANK] = {0};
    if (!axes)
        mask[0] = mask[2] = mask[3] = true;
    for (int i = 0; axes && i < axes->count; i++)
        mask[axes->ints[i] < 0 ? axes->ints[i] + x->rank : axes->ints[i]] = true;
    kiln_tensor kept = *x, reduced = {.dtype = x->dtype};
    int64_t count = 1;
    for (int d = 0; d < x->rank; d++)
        if (mask[d]) {
            kept.dims[d] = 1;
            reduced.dims[reduced.rank++] = x->dims[d];
            count *= x->dims[d];
        }
    lir_expr *oc[KILN_MAX_RANK], *rc[2][KILN_MAX_RANK], *xc[2][KILN_MAX_RANK];
    lir_stmt *inner, *outer, *ri[2], *ro[2];
    kiln_status st = lower_nest(c, &kept, oc, &inner, &outer);
    for (int p = 0; !st && p < 2; p++)
        st = lower_nest(c, &reduced, rc[p], &ri[p], &ro[p]);
    if (st)
        return st;
    for (int p = 0; p < 2; p++)
        for (int d = 0, r = 0; d < x->rank; d++)
            xc[p][d] = mask[d] ? rc[p][r++] : oc[d];
    int sum = lower_var(c, "sum", t), sq = lower_var(c, "sq", t), mean = lower_var(c, "mean", t), den = lower_var(c, "den", t);
    lir_expr *v = lower_read(c, 0, xc[0]), *n = num(c, t, (double)count);
    lir_expr *var = bin(c, LIR_SUB, bin(c, LIR_DIV, ref(c, sq), n), bin(c, LIR_MUL, ref(c, mean), ref(c, mean)));
    lir_expr *y = bin(c, LIR_DIV, bin(c, LIR_SUB, lower_read(c, 0, xc[1]), ref(c, mean)), ref(c, den));
    if (!lir_seq_push(M, ri[0], lir_assign(M, sum, bin(c, LIR_ADD, ref(c, sum), v))) ||
        !lir_seq_push(M, ri[0], lir_assign(M, sq, bin(c, LIR_ADD, ref(c, sq), bin(c, LIR_MUL, v, v)))) ||
        !lir_seq_push(M, ri[1], lir_store(M, c->out[0], lower_index(c, x, xc[1], x->rank), lir_cast(M, x->dtype, y))) ||
        !lir_seq_push(M, inner, lir_let(M, sum, num(c, t, 0))) || !lir_seq_push(M, inner, lir_let(M, sq, num(c, t, 0))) ||
        !lir_seq_push(M, inner, ro[0]) || !lir_seq_push(M, inner, lir_let(M, mean, bin(c, LIR_DIV, ref(c, sum), n))) ||
        !lir_seq_push(M, inner, lir_let(M, den, bin(c, LIR_ADD, lir_call(M, LIR_SQRT, bin(c, LIR_MAX, var, num(c, t, 0)), NULL), num(c, t, 1e-9)))) ||
        !lir_seq_push(M, inner, ro[1]))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* ConvTranspose as a gather: out[n, m, o] sums x[n, ci, i] * w[ci, m % cout_g, k] over the
 * input positions i with i * stride - pad_begin + k * dilation = o. */
kiln_status lower_conv_transpose(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *wt = c->in_type[1], *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(out->dtype);
    shape_window w;
    shape_ctx s = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    kiln_status st = shape_window_geometry(&s, x, wt->dims + 2, true, false, &w);
    if (st)
        return st;
    int64_t group = ir_attr_int(c->node, "group"), cin_g = x->dims[1] / group, cout_g = wt->dims[1];
    lir_expr *oc[KILN_MAX_RANK], *xc[KILN_MAX_RANK], *wc[KILN_MAX_RANK], *kc[KILN_MAX_RANK], *ci, *ok = NULL;
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, out, oc, &inner, &outer)))
        return st;
    int acc = lower_var(c, "acc", t);
    lir_stmt *body = lir_seq(M), *loops = body;
    for (int d = w.spatial - 1; d >= 0; d--) {
        char name[16];
        snprintf(name, sizeof name, "k%d", d);
        loops = lower_loop(c, name, w.kernel[d], loops, &kc[d]);
        if (d > 0)
            loops = lower_seq1(c, loops);
    }
    lir_stmt *ci_loop = lower_loop(c, "ci", cin_g, lower_seq1(c, loops), &ci);
    lir_expr *g = bin(c, LIR_DIV, oc[1], lir_int(M, cout_g));
    xc[0] = oc[0];
    xc[1] = bin(c, LIR_ADD, bin(c, LIR_MUL, g, lir_int(M, cin_g)), ci);
    wc[0] = xc[1];
    wc[1] = bin(c, LIR_REM, oc[1], lir_int(M, cout_g));
    for (int d = 0; d < w.spatial; d++) {
        /* num = o + pad_begin - k * dilation must be a multiple of stride, num / stride in range */
        lir_expr *num_d = bin(c, LIR_SUB, bin(c, LIR_ADD, oc[d + 2], lir_int(M, w.pad_begin[d])),
                              bin(c, LIR_MUL, kc[d], lir_int(M, w.dilation[d])));
        lir_expr *i = bin(c, LIR_DIV, num_d, lir_int(M, w.stride[d]));
        lir_expr *cond = bin(c, LIR_AND, bin(c, LIR_GE, num_d, lir_int(M, 0)),
                             bin(c, LIR_AND, bin(c, LIR_EQ, bin(c, LIR_REM, num_d, lir_int(M, w.stride[d])), lir_int(M, 0)),
                                 bin(c, LIR_LT, i, lir_int(M, x->dims[d + 2]))));
        ok = ok ? bin(c, LIR_AND, ok, cond) : cond;
        xc[d + 2] = i;
        wc[d + 2] = kc[d];
    }
    lir_expr *prod = bin(c, LIR_MUL, lower_read(c, 0, xc), lower_read(c, 1, wc));
    lir_expr *init = num(c, t, 0);
    if (c->node->input_count > 2 && c->in[2]) {
        lir_expr *bc[1] = {oc[1]};
        init = lower_read(c, 2, bc);
    }
    if (!lir_seq_push(M, body, lir_if(M, ok, lir_assign(M, acc, bin(c, LIR_ADD, ref(c, acc), prod)), NULL)) ||
        !lir_seq_push(M, inner, lir_let(M, acc, init)) || !lir_seq_push(M, inner, ci_loop) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank), lir_cast(M, out->dtype, ref(c, acc)))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* Zero-fills the output, then writes each value at the position its index names in the
 * natural unpooled shape (a larger output_shape pads each axis at its end). */
kiln_status lower_max_unpool(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *out = c->out_type[0];
    kiln_tensor natural = {.rank = x->rank};
    shape_ctx s = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    kiln_status st = shape_max_unpool_default(&s, natural.dims);
    if (st || (st = lower_fill(c, num(c, out->dtype, 0))))
        return st;
    kiln_tensor flat = {.dtype = x->dtype, .rank = 1, .dims = {ir_type_count(x)}};
    lir_expr *i[1], *nc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, &flat, i, &inner, &outer)))
        return st;
    lower_serial(outer); /* two values may name one position */
    lir_expr *at = lower_checked_index(c, inner, lir_load(M, c->in[1], i[0]), ir_type_count(&natural));
    if (!at)
        return lower_oom(c);
    lir_expr *rest = at; /* unravel in the natural shape, ravel in the output's */
    for (int d = natural.rank - 1; d >= 0; d--) {
        nc[d] = bin(c, LIR_REM, rest, lir_int(M, natural.dims[d]));
        rest = bin(c, LIR_DIV, rest, lir_int(M, natural.dims[d]));
    }
    for (int d = 0; d < x->rank; d++)
        if (natural.dims[d] > out->dims[d])
            return lower_error(c, KILN_ERR_SHAPE, "output_shape is smaller than the unpooled size");
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, nc, out->rank), lir_load(M, c->in[0], i[0]))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* The losses: per (n, d...) position, the negative log-probability of the target class,
 * weighted; ignored targets count nowhere. SoftmaxCrossEntropyLoss computes the
 * log-softmax over the classes first (and stores it when asked). */
static kiln_status class_loss(lower_ctx *c, bool softmax) {
    const kiln_tensor *x = c->in_type[0], *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(x->dtype);
    int64_t classes = x->dims[1];
    const char *reduction = ir_attr_string(c->node, "reduction");
    bool none = !strcmp(reduction, "none");
    const ir_attr *ignore = ir_node_attr(c->node, "ignore_index");
    kiln_tensor pos = *c->in_type[1]; /* the target's shape: [N, d...] */
    lir_expr *pc[KILN_MAX_RANK], *xc[KILN_MAX_RANK], *j;
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &pos, pc, &inner, &outer);
    if (st)
        return st;
    int sum = lower_var(c, "sum", t), wsum = lower_var(c, "wsum", t), mx = lower_var(c, "max", t), lse = lower_var(c, "lse", t);
    int cls = lower_var(c, "class", KILN_I64);
    for (int d = 0; d < x->rank; d++) /* x[n, class, d...] */
        xc[d] = d == 0 ? pc[0] : d == 1 ? ref(c, cls) : pc[d - 1];
    lir_expr *logp = lower_read(c, 0, xc);
    if (softmax) { /* max and log-sum-exp over the classes at this position */
        lir_expr *jc[KILN_MAX_RANK];
        lir_stmt *b1 = lir_seq(M), *b2 = lir_seq(M);
        lir_expr *j2;
        lir_stmt *l1 = lower_loop(c, "j", classes, b1, &j), *l2 = lower_loop(c, "j", classes, b2, &j2);
        for (int d = 0; d < x->rank; d++)
            jc[d] = d == 1 ? j : xc[d];
        lir_expr *v1 = lower_read(c, 0, jc);
        jc[1] = j2;
        lir_expr *v2 = lower_read(c, 0, jc);
        if (!lir_seq_push(M, b1, lir_assign(M, mx, bin(c, LIR_MAX, ref(c, mx), v1))) ||
            !lir_seq_push(M, b2, lir_assign(M, lse, bin(c, LIR_ADD, ref(c, lse), lir_call(M, LIR_EXP, bin(c, LIR_SUB, v2, ref(c, mx)), NULL)))) ||
            !lir_seq_push(M, inner, lir_let(M, mx, num(c, t, -INFINITY))) || !lir_seq_push(M, inner, l1) ||
            !lir_seq_push(M, inner, lir_let(M, lse, num(c, t, 0))) || !lir_seq_push(M, inner, l2) ||
            !lir_seq_push(M, inner, lir_assign(M, lse, bin(c, LIR_ADD, ref(c, mx), lir_call(M, LIR_LOG, ref(c, lse), NULL)))))
            return lower_oom(c);
        if (c->node->output_count > 1) { /* log_prob */
            lir_stmt *b3 = lir_seq(M);
            lir_expr *j3;
            lir_stmt *l3 = lower_loop(c, "j", classes, b3, &j3);
            jc[1] = j3;
            if (!lir_seq_push(M, b3, lir_store(M, c->out[1], lower_index(c, c->out_type[1], jc, x->rank),
                                               lir_cast(M, x->dtype, bin(c, LIR_SUB, lower_read(c, 0, jc), ref(c, lse))))) ||
                !lir_seq_push(M, inner, l3))
                return lower_oom(c);
        }
        logp = bin(c, LIR_SUB, logp, ref(c, lse));
    }
    lir_expr *raw = lir_cast(M, KILN_I64, lir_load(M, c->in[1], lower_index(c, &pos, pc, pos.rank)));
    lir_expr *skip = ignore ? bin(c, LIR_EQ, raw, lir_int(M, ignore->i)) : lir_const(M, KILN_BOOL, 0);
    lir_expr *bad = bin(c, LIR_AND, lir_unary(M, LIR_NOT, skip),
                        bin(c, LIR_OR, bin(c, LIR_LT, raw, lir_int(M, 0)), bin(c, LIR_GE, raw, lir_int(M, classes))));
    lir_expr *wc[1] = {ref(c, cls)};
    lir_expr *w = c->node->input_count > 2 && c->in[2] ? lower_read(c, 2, wc) : num(c, t, 1);
    int weight = lower_var(c, "weight", t), loss = lower_var(c, "loss", t);
    if (!lir_seq_push(M, inner, lir_if(M, bad, lir_fail(M, "a target is not a class index"), NULL)) ||
        !lir_seq_push(M, inner, lir_let(M, cls, lir_select(M, skip, lir_int(M, 0), raw))) ||
        !lir_seq_push(M, inner, lir_let(M, weight, lir_select(M, skip, num(c, t, 0), w))) ||
        !lir_seq_push(M, inner, lir_let(M, loss, bin(c, LIR_MUL, lir_unary(M, LIR_NEG, logp), ref(c, weight)))))
        return lower_oom(c);
    if (none) {
        if (!lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, &pos, pc, pos.rank), lir_cast(M, out->dtype, ref(c, loss)))))
            return lower_oom(c);
        return lower_emit(c, outer);
    }
    lower_serial(outer); /* the sums run across the positions */
    if (!lir_seq_push(M, inner, lir_assign(M, sum, bin(c, LIR_ADD, ref(c, sum), ref(c, loss)))) ||
        !lir_seq_push(M, inner, lir_assign(M, wsum, bin(c, LIR_ADD, ref(c, wsum), ref(c, weight)))))
        return lower_oom(c);
    lir_expr *result = !strcmp(reduction, "sum") ? ref(c, sum) : bin(c, LIR_DIV, ref(c, sum), ref(c, wsum));
    if ((st = lower_emit(c, lir_let(M, sum, num(c, t, 0)))) || (st = lower_emit(c, lir_let(M, wsum, num(c, t, 0)))) ||
        (st = lower_emit(c, outer)) ||
        (st = lower_emit(c, lir_store(M, c->out[0], lir_int(M, 0), lir_cast(M, out->dtype, result)))))
        return st;
    return KILN_OK;
}

kiln_status lower_nll_loss(lower_ctx *c) { return class_loss(c, false); }
kiln_status lower_softmax_cross_entropy(lower_ctx *c) { return class_loss(c, true); }
