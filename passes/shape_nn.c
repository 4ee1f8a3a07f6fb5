/*
 * shape_nn.c — shape rules of the neural-network ops: MatMul and Gemm, convolutions
 * and pools (through shape_window_geometry), normalizations, softmax, reductions and
 * ArgMax/ArgMin.
 */
#include "passes/shape.h"

#include <string.h>

kiln_status shape_matmul(shape_ctx *c) {
    const kiln_tensor *a = c->in[0], *b = c->in[1];
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_numeric, "numeric")) || (st = shape_same_dtype(c, 0, 1)))
        return st;
    if (a->rank < 1 || b->rank < 1)
        return shape_error(c, "inputs must have rank >= 1");
    /* numpy: a 1-D left operand is a row [1, K], a 1-D right operand a column [K, 1] */
    int64_t k_a = a->dims[a->rank - 1], k_b = b->dims[b->rank >= 2 ? b->rank - 2 : 0];
    if (k_a >= 0 && k_b >= 0 && k_a != k_b)
        return shape_error(c, "inner dimensions differ: %lld vs %lld", (long long)k_a, (long long)k_b);
    kiln_tensor ba = {.rank = a->rank > 2 ? a->rank - 2 : 0}, bb = {.rank = b->rank > 2 ? b->rank - 2 : 0};
    memcpy(ba.dims, a->dims, sizeof(int64_t) * (size_t)ba.rank);
    memcpy(bb.dims, b->dims, sizeof(int64_t) * (size_t)bb.rank);
    kiln_tensor out;
    if ((st = shape_broadcast(c, &ba, &bb, &out)))
        return st;
    if (a->rank >= 2)
        out.dims[out.rank++] = a->dims[a->rank - 2];
    if (b->rank >= 2)
        out.dims[out.rank++] = b->dims[b->rank - 1];
    shape_set(c, 0, a->dtype, out.rank, out.dims);
    return KILN_OK;
}

kiln_status shape_gemm(shape_ctx *c) {
    const kiln_tensor *a = c->in[0], *b = c->in[1];
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_numeric, "numeric")) || (st = shape_same_dtype(c, 0, 1)))
        return st;
    if (a->rank != 2 || b->rank != 2)
        return shape_error(c, "A and B must be 2-D, got ranks %d and %d", a->rank, b->rank);
    bool ta = ir_attr_int(c->node, "transA"), tb = ir_attr_int(c->node, "transB");
    int64_t m = a->dims[ta ? 1 : 0], k = a->dims[ta ? 0 : 1];
    int64_t k2 = b->dims[tb ? 1 : 0], n = b->dims[tb ? 0 : 1];
    if (k >= 0 && k2 >= 0 && k != k2)
        return shape_error(c, "inner dimensions differ: %lld vs %lld", (long long)k, (long long)k2);
    int64_t dims[2] = {m, n};
    if (c->in_count > 2 && c->in[2]) {
        kiln_tensor y = {.rank = 2, .dims = {m, n}}, bc;
        if ((st = shape_same_dtype(c, 0, 2)))
            return st;
        if (c->in[2]->rank > 2 || (st = shape_broadcast(c, &y, c->in[2], &bc)))
            return st ? st : shape_error(c, "C must broadcast to [M, N]");
        if ((bc.dims[0] >= 0 && m >= 0 && bc.dims[0] != m) || (bc.dims[1] >= 0 && n >= 0 && bc.dims[1] != n))
            return shape_error(c, "C must broadcast to [M, N]");
    }
    shape_set(c, 0, a->dtype, 2, dims);
    return KILN_OK;
}

/* Kernel sizes from the attribute, else from the weight's spatial dims. */
static kiln_status kernel_sizes(shape_ctx *c, const kiln_tensor *w, int spatial, int64_t *kernel) {
    const ir_attr *ks = ir_node_attr(c->node, "kernel_shape");
    if (ks && ks->count) {
        if (ks->count != spatial)
            return shape_error(c, "attribute 'kernel_shape': expected %d values, got %d", spatial,
                               ks->count);
        memcpy(kernel, ks->ints, sizeof(int64_t) * (size_t)spatial);
        return KILN_OK;
    }
    if (!w)
        return shape_error(c, "missing required attribute 'kernel_shape'");
    for (int i = 0; i < spatial; i++)
        if ((kernel[i] = w->dims[i + 2]) < 0)
            return shape_error(c, "the weight's spatial dims must be known");
    return KILN_OK;
}

static kiln_status conv_like(shape_ctx *c, bool transposed) {
    const kiln_tensor *x = c->in[0], *w = c->in[1];
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_float, "a float tensor")) ||
        (st = shape_same_dtype(c, 0, 1)))
        return st;
    if (x->rank < 3 || x->rank > 5 || w->rank != x->rank)
        return shape_error(c, "X and W must have the same rank, 3 to 5; got %d and %d", x->rank,
                           w->rank);
    int64_t group = ir_attr_int(c->node, "group");
    int64_t ch = x->dims[1];
    if (group < 1)
        return shape_error(c, "attribute 'group' must be >= 1");
    int64_t out_ch;
    if (!transposed) {
        if (ch >= 0 && (ch % group || w->dims[1] * group != ch))
            return shape_error(c, "X has %lld channels but W expects %lld x group %lld",
                               (long long)ch, (long long)w->dims[1], (long long)group);
        if (w->dims[0] % group)
            return shape_error(c, "W's %lld output channels are not divisible by group %lld",
                               (long long)w->dims[0], (long long)group);
        out_ch = w->dims[0];
    } else {
        if (ch >= 0 && w->dims[0] != ch)
            return shape_error(c, "X has %lld channels but W has %lld", (long long)ch,
                               (long long)w->dims[0]);
        if (ch >= 0 && ch % group)
            return shape_error(c, "channels %lld not divisible by group %lld", (long long)ch,
                               (long long)group);
        out_ch = w->dims[1] * group;
    }
    if (c->in_count > 2 && c->in[2] && (c->in[2]->rank != 1 || c->in[2]->dims[0] != out_ch))
        return shape_error(c, "B must be 1-D with %lld elements", (long long)out_ch);
    int64_t kernel[KILN_MAX_RANK];
    shape_window win;
    if ((st = kernel_sizes(c, w, x->rank - 2, kernel)))
        return st;
    for (int i = 0; i < x->rank - 2; i++)
        if (kernel[i] != w->dims[i + 2])
            return shape_error(c, "kernel_shape does not match W's spatial dims");
    if ((st = shape_window_geometry(c, x, kernel, transposed, false, &win)))
        return st;
    int64_t dims[KILN_MAX_RANK] = {x->dims[0], out_ch};
    memcpy(dims + 2, win.out, sizeof(int64_t) * (size_t)win.spatial);
    shape_set(c, 0, x->dtype, x->rank, dims);
    return KILN_OK;
}

kiln_status shape_conv(shape_ctx *c) { return conv_like(c, false); }
kiln_status shape_conv_transpose(shape_ctx *c) { return conv_like(c, true); }

void shape_nchwc_plain(const kiln_tensor *x, kiln_tensor *plain) {
    *plain = *x;
    if (x->rank == 5) {
        plain->rank = 4;
        plain->dims[1] = x->dims[1] >= 0 && x->dims[4] >= 0 ? x->dims[1] * x->dims[4] : IR_DIM_UNKNOWN;
    }
}

kiln_status shape_nchwc_window(const shape_ctx *c, const kiln_tensor *x, const kiln_tensor *w, shape_window *win) {
    kiln_tensor plain;
    shape_nchwc_plain(x, &plain);
    return shape_window_geometry(c, &plain, w->dims + 1, false, false, win);
}

kiln_status shape_conv_nchwc(shape_ctx *c) {
    const kiln_tensor *x = c->in[0], *w = c->in[1];
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_float, "a float tensor")) || (st = shape_same_dtype(c, 0, 1)))
        return st;
    if ((x->rank != 4 && x->rank != 5) || w->rank != 5)
        return shape_error(c, "X must be [N, C, H, W] or [N, C / b, H, W, b] and W [Cout / b, KH, KW, Cin, b]; got ranks %d and %d",
                           x->rank, w->rank);
    kiln_tensor plain;
    shape_nchwc_plain(x, &plain);
    int64_t group = ir_attr_int(c->node, "group"), out_ch = w->dims[0] * w->dims[4];
    if (group < 1 || out_ch % group)
        return shape_error(c, "group %lld does not divide the %lld output channels", (long long)group, (long long)out_ch);
    if (plain.dims[1] >= 0 && w->dims[3] * group != plain.dims[1])
        return shape_error(c, "X has %lld channels but W expects %lld (%lld per group, %lld groups)", (long long)plain.dims[1],
                           (long long)(w->dims[3] * group), (long long)w->dims[3], (long long)group);
    if (c->in_count > 2 && c->in[2] && (c->in[2]->rank != 1 || c->in[2]->dims[0] != out_ch))
        return shape_error(c, "B must be 1-D with %lld elements", (long long)out_ch);
    shape_window win;
    if ((st = shape_nchwc_window(c, x, w, &win)))
        return st;
    int64_t dims[5] = {x->dims[0], w->dims[0], win.out[0], win.out[1], w->dims[4]};
    shape_set(c, 0, x->dtype, 5, dims);
    return KILN_OK;
}

kiln_status shape_winograd_geometry(const shape_ctx *c, const kiln_tensor *x, shape_winograd *g) {
    kiln_tensor plain;
    shape_nchwc_plain(x, &plain);
    const ir_attr *p = ir_node_attr(c->node, "pads");
    int64_t pads[4] = {0, 0, 0, 0};
    if (p && p->count != 4)
        return shape_error(c, "pads must have 4 values [top, left, bottom, right], got %d", p->count);
    for (int i = 0; p && i < 4; i++)
        if ((pads[i] = p->ints[i]) < 0 || pads[i] > (1 << 20))
            return shape_error(c, "pads[%d] = %lld is out of range", i, (long long)pads[i]);
    *g = (shape_winograd){.batch = plain.dims[0], .channels = plain.dims[1], .h = plain.dims[2], .w = plain.dims[3],
                          .pad_top = pads[0], .pad_left = pads[1], .tiles = IR_DIM_UNKNOWN};
    if (g->h < 0 || g->w < 0)
        return KILN_OK;
    g->oh = g->h + pads[0] + pads[2] - 2, g->ow = g->w + pads[1] + pads[3] - 2;
    if (g->oh < 1 || g->ow < 1)
        return shape_error(c, "the padded input %lld x %lld is smaller than the 3 x 3 kernel",
                           (long long)(g->h + pads[0] + pads[2]), (long long)(g->w + pads[1] + pads[3]));
    g->th = (g->oh + 1) / 2, g->tw = (g->ow + 1) / 2;
    if (g->batch >= 0)
        g->tiles = g->batch * g->th * g->tw;
    return KILN_OK;
}

kiln_status shape_winograd_input(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_status st = shape_require(c, 0, shape_is_float, "a float tensor");
    if (st)
        return st;
    if (x->rank != 4 && x->rank != 5)
        return shape_error(c, "X must be [N, C, H, W] or [N, C / b, H, W, b], got rank %d", x->rank);
    shape_winograd g;
    if ((st = shape_winograd_geometry(c, x, &g)))
        return st;
    int64_t dims[3] = {16, g.tiles, g.channels};
    shape_set(c, 0, x->dtype, 3, dims);
    return KILN_OK;
}

kiln_status shape_winograd_output(shape_ctx *c) {
    const kiln_tensor *m = c->in[0];
    kiln_status st = shape_require(c, 0, shape_is_float, "a float tensor");
    if (st)
        return st;
    if (m->rank != 3 || m->dims[0] != 16)
        return shape_error(c, "M must be [16, tiles, C] (one product per point of a 4 x 4 tile)");
    const ir_attr *size = ir_node_attr(c->node, "output_size");
    int64_t block = ir_attr_int(c->node, "block"), ch = m->dims[2], tiles = m->dims[1];
    if (!size || size->count != 2 || size->ints[0] < 1 || size->ints[1] < 1 || size->ints[0] > (1 << 20) ||
        size->ints[1] > (1 << 20))
        return shape_error(c, "output_size must be [OH, OW], each at least 1");
    if (block < 1 || (ch >= 0 && ch % block))
        return shape_error(c, "block %lld does not divide the %lld channels", (long long)block, (long long)ch);
    int64_t th = (size->ints[0] + 1) / 2, tw = (size->ints[1] + 1) / 2;
    if (tiles >= 0 && tiles % (th * tw))
        return shape_error(c, "%lld tiles are not a whole number of %lld x %lld images of tiles", (long long)tiles,
                           (long long)th, (long long)tw);
    if (c->in_count > 1 && c->in[1] && (c->in[1]->rank != 1 || c->in[1]->dims[0] != ch))
        return shape_error(c, "B must be 1-D with %lld elements", (long long)ch);
    int64_t dims[5] = {tiles >= 0 ? tiles / (th * tw) : IR_DIM_UNKNOWN, ch >= 0 ? ch / block : IR_DIM_UNKNOWN,
                       size->ints[0], size->ints[1], block};
    shape_set(c, 0, m->dtype, 5, dims);
    return KILN_OK;
}

static kiln_status pool(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_numeric, "numeric")))
        return st;
    if (x->rank < 3)
        return shape_error(c, "input must be [N, C, spatial...], got rank %d", x->rank);
    int64_t kernel[KILN_MAX_RANK];
    shape_window win;
    if ((st = kernel_sizes(c, NULL, x->rank - 2, kernel)) ||
        (st = shape_window_geometry(c, x, kernel, false, ir_attr_int(c->node, "ceil_mode"), &win)))
        return st;
    for (int i = 0; i < win.spatial; i++)
        if (win.pad_begin[i] >= win.kernel[i] * win.dilation[i] ||
            win.pad_end[i] >= win.kernel[i] * win.dilation[i])
            return shape_error(c, "padding must be smaller than the window (axis %d)", i);
    int64_t dims[KILN_MAX_RANK] = {x->dims[0], x->dims[1]};
    memcpy(dims + 2, win.out, sizeof(int64_t) * (size_t)win.spatial);
    shape_set(c, 0, x->dtype, x->rank, dims);
    if (c->out_count > 1)
        shape_set(c, 1, KILN_I64, x->rank, dims);
    return KILN_OK;
}

kiln_status shape_max_pool(shape_ctx *c) { return pool(c); }
kiln_status shape_average_pool(shape_ctx *c) {
    kiln_status st = shape_require(c, 0, shape_is_float, "a float tensor");
    return st ? st : pool(c);
}

static kiln_status global_pool(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_status st = shape_require(c, 0, shape_is_float, "a float tensor");
    if (st)
        return st;
    if (x->rank < 3)
        return shape_error(c, "input must be [N, C, spatial...], got rank %d", x->rank);
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        dims[d] = d < 2 ? x->dims[d] : 1;
    shape_set(c, 0, x->dtype, x->rank, dims);
    return KILN_OK;
}

kiln_status shape_global_average_pool(shape_ctx *c) { return global_pool(c); }
kiln_status shape_global_max_pool(shape_ctx *c) { return global_pool(c); }

/* Inputs [first, last] must be 1-D of `ch` elements and of X's dtype. */
static kiln_status per_channel(shape_ctx *c, int first, int last, int64_t ch) {
    for (int i = first; i <= last; i++) {
        const kiln_tensor *t = c->in[i];
        kiln_status st = shape_same_dtype(c, 0, i);
        if (st)
            return st;
        if (t->rank != 1 || (ch >= 0 && t->dims[0] >= 0 && t->dims[0] != ch))
            return shape_error(c, "input %d must be 1-D with %lld elements (the channels)", i,
                               (long long)ch);
    }
    return KILN_OK;
}

kiln_status shape_batch_norm(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_status st = shape_require(c, 0, shape_is_float, "a float tensor");
    if (st)
        return st;
    if (x->rank < 2)
        return shape_error(c, "input must be [N, C, ...], got rank %d", x->rank);
    if ((st = per_channel(c, 1, 4, x->dims[1])))
        return st;
    if (c->out_count > 1 && !ir_attr_int(c->node, "training_mode"))
        return shape_error(c, "running statistics are outputs only with training_mode = 1");
    shape_set(c, 0, x->dtype, x->rank, x->dims);
    for (int i = 1; i < c->out_count; i++) /* the updated running mean and variance */
        shape_set(c, i, x->dtype, 1, &x->dims[1]);
    return KILN_OK;
}

kiln_status shape_instance_norm(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_status st = shape_require(c, 0, shape_is_float, "a float tensor");
    if (st)
        return st;
    if (x->rank < 3)
        return shape_error(c, "input must be [N, C, spatial...], got rank %d", x->rank);
    if ((st = per_channel(c, 1, 2, x->dims[1])))
        return st;
    shape_set(c, 0, x->dtype, x->rank, x->dims);
    return KILN_OK;
}

kiln_status shape_layer_norm(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int axis;
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_float, "a float tensor")) ||
        (st = shape_axis(c, ir_attr_int(c->node, "axis"), x->rank, "axis", &axis)))
        return st;
    kiln_tensor tail = {.rank = x->rank - axis}, bc;
    memcpy(tail.dims, x->dims + axis, sizeof(int64_t) * (size_t)tail.rank);
    for (int i = 1; i < c->in_count; i++) {
        if (!c->in[i])
            continue;
        if ((st = shape_same_dtype(c, 0, i)) || (st = shape_broadcast(c, &tail, c->in[i], &bc)))
            return st;
        if (bc.rank != tail.rank)
            return shape_error(c, "input %d has a higher rank than the normalized axes", i);
    }
    shape_set(c, 0, x->dtype, x->rank, x->dims);
    int64_t stat[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++)
        stat[d] = d < axis ? x->dims[d] : 1;
    kiln_dtype stash = ir_attr_int(c->node, "stash_type") == 11 ? KILN_F64 : KILN_F32;
    for (int i = 1; i < c->out_count; i++)
        shape_set(c, i, stash, x->rank, stat);
    return KILN_OK;
}

static kiln_status softmax_like(shape_ctx *c) {
    int axis;
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_float, "a float tensor")) ||
        (st = shape_axis(c, ir_attr_int(c->node, "axis"), c->in[0]->rank, "axis", &axis)))
        return st;
    shape_set(c, 0, c->in[0]->dtype, c->in[0]->rank, c->in[0]->dims);
    return KILN_OK;
}

kiln_status shape_softmax(shape_ctx *c) { return softmax_like(c); }
kiln_status shape_log_softmax(shape_ctx *c) { return softmax_like(c); }

static kiln_status reduce(shape_ctx *c, bool (*ok)(kiln_dtype)) {
    const kiln_tensor *x = c->in[0];
    bool mask[KILN_MAX_RANK], identity, known;
    kiln_status st;
    if ((st = shape_require(c, 0, ok, "numeric")) ||
        (st = shape_reduce_axes(c, mask, &identity, &known)))
        return st;
    bool keep = ir_attr_int(c->node, "keepdims");
    if (!known) {
        shape_set(c, 0, x->dtype, keep ? x->rank : -1, NULL);
        return KILN_OK;
    }
    int64_t dims[KILN_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < x->rank; d++) {
        if (!mask[d] || identity)
            dims[rank++] = x->dims[d];
        else if (keep)
            dims[rank++] = 1;
    }
    shape_set(c, 0, x->dtype, rank, dims);
    return KILN_OK;
}

kiln_status shape_reduce_sum(shape_ctx *c) { return reduce(c, shape_is_numeric); }
kiln_status shape_reduce_mean(shape_ctx *c) { return reduce(c, shape_is_numeric); }
kiln_status shape_reduce_max(shape_ctx *c) { return reduce(c, shape_is_numeric); }
kiln_status shape_reduce_min(shape_ctx *c) { return reduce(c, shape_is_numeric); }
kiln_status shape_reduce_prod(shape_ctx *c) { return reduce(c, shape_is_numeric); }
kiln_status shape_reduce_l1(shape_ctx *c) { return reduce(c, shape_is_numeric); }
kiln_status shape_reduce_l2(shape_ctx *c) { return reduce(c, shape_is_numeric); }
kiln_status shape_reduce_sum_square(shape_ctx *c) { return reduce(c, shape_is_numeric); }
kiln_status shape_reduce_log_sum(shape_ctx *c) { return reduce(c, shape_is_float); }
kiln_status shape_reduce_log_sum_exp(shape_ctx *c) { return reduce(c, shape_is_float); }

static kiln_status arg_reduce(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int axis;
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_numeric, "numeric")) ||
        (st = shape_axis(c, ir_attr_int(c->node, "axis"), x->rank, "axis", &axis)))
        return st;
    if (x->rank == 0)
        return shape_error(c, "input must have rank >= 1");
    if (x->dims[axis] == 0)
        return shape_error(c, "cannot take an arg-reduction over an empty axis");
    bool keep = ir_attr_int(c->node, "keepdims");
    int64_t dims[KILN_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < x->rank; d++) {
        if (d != axis)
            dims[rank++] = x->dims[d];
        else if (keep)
            dims[rank++] = 1;
    }
    shape_set(c, 0, KILN_I64, rank, dims);
    return KILN_OK;
}

kiln_status shape_argmax(shape_ctx *c) { return arg_reduce(c); }
kiln_status shape_argmin(shape_ctx *c) { return arg_reduce(c); }

/* NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss: input [N, C, d...], target
 * [N, d...] of class indices, optional weight [C]; the loss is per element for
 * reduction "none", else a scalar. */
static kiln_status class_loss(shape_ctx *c) {
    const kiln_tensor *x = c->in[0], *t = c->in[1];
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_float, "a float tensor")) ||
        (st = shape_require(c, 1, shape_is_index, "i32 or i64")))
        return st;
    if (x->rank < 2 || t->rank != x->rank - 1)
        return shape_error(c, "expects input [N, C, d...] and target [N, d...], got ranks %d and %d",
                           x->rank, t->rank);
    for (int d = 0; d < t->rank; d++) {
        int64_t a = x->dims[d ? d + 1 : 0], b = t->dims[d];
        if (a >= 0 && b >= 0 && a != b)
            return shape_error(c, "target dimension %d is %lld, input has %lld", d, (long long)b, (long long)a);
    }
    if (c->in_count > 2 && c->in[2] &&
        ((st = shape_same_dtype(c, 0, 2)) || c->in[2]->rank != 1 ||
         (x->dims[1] >= 0 && c->in[2]->dims[0] >= 0 && c->in[2]->dims[0] != x->dims[1])))
        return st ? st : shape_error(c, "weight must be 1-D with C elements");
    const char *reduction = ir_attr_string(c->node, "reduction");
    if (!strcmp(reduction, "none"))
        shape_set(c, 0, x->dtype, t->rank, t->dims);
    else if (!strcmp(reduction, "mean") || !strcmp(reduction, "sum"))
        shape_set(c, 0, x->dtype, 0, NULL);
    else
        return shape_error(c, "attribute 'reduction': expected \"none\", \"sum\" or \"mean\", got \"%s\"", reduction);
    if (c->out_count > 1)
        shape_set(c, 1, x->dtype, x->rank, x->dims);
    return KILN_OK;
}

kiln_status shape_nll_loss(shape_ctx *c) { return class_loss(c); }
kiln_status shape_softmax_cross_entropy(shape_ctx *c) { return class_loss(c); }

kiln_status shape_hardmax(shape_ctx *c) { return softmax_like(c); }

kiln_status shape_lp_norm(shape_ctx *c) {
    int64_t p = ir_attr_int(c->node, "p");
    if (p != 1 && p != 2)
        return shape_error(c, "attribute 'p' must be 1 or 2, got %lld", (long long)p);
    return softmax_like(c);
}

kiln_status shape_lrn(shape_ctx *c) {
    kiln_status st = shape_require(c, 0, shape_is_float, "a float tensor");
    if (st)
        return st;
    if (c->in[0]->rank < 3)
        return shape_error(c, "input must be [N, C, spatial...], got rank %d", c->in[0]->rank);
    if (ir_attr_int(c->node, "size") < 1)
        return shape_error(c, "attribute 'size' must be >= 1");
    shape_set(c, 0, c->in[0]->dtype, c->in[0]->rank, c->in[0]->dims);
    return KILN_OK;
}

kiln_status shape_mvn(shape_ctx *c) {
    kiln_status st = shape_require(c, 0, shape_is_float, "a float tensor");
    const ir_attr *axes = ir_node_attr(c->node, "axes");
    for (int i = 0; !st && axes && i < axes->count; i++) {
        int axis;
        st = shape_axis(c, axes->ints[i], c->in[0]->rank, "axis", &axis);
    }
    if (!st && !axes && c->in[0]->rank != 4)
        return shape_error(c, "the default axes [0, 2, 3] need a 4-D input, got rank %d", c->in[0]->rank);
    if (!st)
        shape_set(c, 0, c->in[0]->dtype, c->in[0]->rank, c->in[0]->dims);
    return st;
}

/* MaxUnpool's natural output dims (without output_shape): (in - 1) * stride + kernel - pads. */
kiln_status shape_max_unpool_default(const shape_ctx *c, int64_t *dims) {
    const kiln_tensor *x = c->in[0];
    int spatial = x->rank - 2;
    const ir_attr *ks = ir_node_attr(c->node, "kernel_shape"), *pads = ir_node_attr(c->node, "pads"),
                  *strides = ir_node_attr(c->node, "strides");
    if (ks->count != spatial || (pads && pads->count && pads->count != 2 * spatial) ||
        (strides && strides->count && strides->count != spatial))
        return shape_error(c, "kernel_shape, pads and strides must match the %d spatial axes", spatial);
    dims[0] = x->dims[0];
    dims[1] = x->dims[1];
    for (int i = 0; i < spatial; i++) {
        int64_t s = strides && strides->count ? strides->ints[i] : 1;
        int64_t pb = pads && pads->count ? pads->ints[i] : 0, pe = pads && pads->count ? pads->ints[i + spatial] : 0;
        int64_t in = x->dims[i + 2];
        dims[i + 2] = in < 0 ? IR_DIM_UNKNOWN : (in - 1) * s + ks->ints[i] - pb - pe;
        if (in >= 0 && dims[i + 2] < 0)
            return shape_error(c, "output size is negative (axis %d)", i);
    }
    return KILN_OK;
}

kiln_status shape_max_unpool(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_float, "a float tensor")) ||
        (st = shape_require(c, 1, shape_is_index, "i32 or i64")))
        return st;
    if (x->rank < 3)
        return shape_error(c, "input must be [N, C, spatial...], got rank %d", x->rank);
    int64_t dims[KILN_MAX_RANK];
    if ((st = shape_max_unpool_default(c, dims)))
        return st;
    if (c->in_count > 2 && c->in[2]) { /* output_shape: at least the natural size */
        int n;
        bool known;
        if ((st = shape_ints(c, 2, dims, KILN_MAX_RANK, &n, &known)))
            return st;
        if (known && n != x->rank)
            return shape_error(c, "output_shape has %d values for rank %d", n, x->rank);
        shape_set(c, 0, x->dtype, x->rank, known ? dims : NULL);
        return KILN_OK;
    }
    shape_set(c, 0, x->dtype, x->rank, dims);
    return KILN_OK;
}

/* Adagrad, Momentum, Adam: inputs R (rate), T (step count), then `groups` lists of n
 * tensors (X, G, state...); outputs X_new then each new state, n tensors each. */
static kiln_status optimizer(shape_ctx *c, int groups) {
    int64_t n = (c->in_count - 2) / groups;
    if ((c->in_count - 2) % groups || n < 1 || c->out_count != n * (groups - 1))
        return shape_error(c, "expects R, T and %d lists of equal length, and %d lists of outputs", groups, groups - 1);
    if (ir_type_count(c->in[0]) != 1 || !shape_is_float(c->in[0]->dtype) || ir_type_count(c->in[1]) != 1 ||
        c->in[1]->dtype != KILN_I64)
        return shape_error(c, "R must be one float and T one i64");
    for (int64_t i = 0; i < n; i++) {
        const kiln_tensor *x = c->in[2 + i];
        for (int g = 1; g < groups; g++) {
            const kiln_tensor *t = c->in[2 + g * n + i];
            bool same = t->rank == x->rank && t->dtype == x->dtype;
            for (int d = 0; same && d < t->rank; d++)
                same = t->dims[d] == x->dims[d];
            if (!same)
                return shape_error(c, "input %lld must have the shape and dtype of X %lld", (long long)(2 + g * n + i), (long long)i);
        }
        for (int g = 0; g < groups - 1; g++)
            shape_set(c, (int)(g * n + i), x->dtype, x->rank, x->dims);
    }
    return KILN_OK;
}

kiln_status shape_adagrad(shape_ctx *c) { return optimizer(c, 3); }
kiln_status shape_momentum(shape_ctx *c) {
    const char *mode = ir_attr_string(c->node, "mode");
    if (strcmp(mode, "standard") && strcmp(mode, "nesterov"))
        return shape_error(c, "attribute 'mode': expected \"standard\" or \"nesterov\", got \"%s\"", mode);
    return optimizer(c, 3);
}
kiln_status shape_adam(shape_ctx *c) { return optimizer(c, 4); }

/* DropoutMask(X, Seed): X's type; the ratio a probability below 1. */
kiln_status shape_dropout_mask(shape_ctx *c) {
    double ratio = ir_attr_float(c->node, "ratio");
    if (!shape_is_float(c->in[0]->dtype))
        return shape_error(c, "input 0 must be a float tensor");
    if (c->in[1]->rank != 0 || c->in[1]->dtype != KILN_I64)
        return shape_error(c, "input 1 (seed) must be an i64 scalar");
    if (!(ratio >= 0 && ratio < 1))
        return shape_error(c, "attribute 'ratio' must be in [0, 1), got %g", ratio);
    shape_set(c, 0, c->in[0]->dtype, c->in[0]->rank, c->in[0]->dims);
    return KILN_OK;
}
