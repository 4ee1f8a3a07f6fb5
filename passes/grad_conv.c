/*
 * grad_conv.c — gradient rules of convolution and pooling (see grad_rules.h).
 *
 * Every window op reads its geometry through shape_window_geometry, the function shape
 * inference uses, so auto_pad, ceil_mode and defaults mean here exactly what they meant
 * when the forward shape was computed. With s strides, d dilations and p pads:
 *   Conv:          dX = ConvTranspose(dY, W) (unit strides: a Conv by the flipped kernel)
 *                  dW = for each kernel tap, dY @ the input window that tap saw
 *   ConvTranspose: dX = Conv(dY, W); dW as Conv's with the roles of input and output swapped
 *   MaxPool:       dY scattered to the argmax of each window (its Indices output)
 *   AveragePool:   dY divided by each window's count, spread by a ConvTranspose of ones
 * Groups split the channels: the weight gradient's products are batched over the groups.
 */
#include "passes/grad_rules.h"
#include "passes/shape.h"

#include <stdlib.h>
#include <string.h>

/* The node's window geometry; kernel from W (input 1) or kernel_shape. */
static bool window_of(grad_ctx *c, bool transposed, shape_window *w) {
    const ir_node *n = c->node;
    const kiln_tensor *x = &X(0)->type;
    int64_t kernel[KILN_MAX_RANK];
    const ir_attr *ks = ir_node_attr(n, "kernel_shape");
    for (int i = 0; i < x->rank - 2; i++)
        kernel[i] = n->op == IR_OP_CONV || n->op == IR_OP_CONV_TRANSPOSE ? X(1)->type.dims[i + 2] : ks->ints[i];
    const kiln_tensor *types[IR_VARIADIC];
    shape_ctx sc = grad_shape_ctx(c, types);
    bool ceil = n->op == IR_OP_MAX_POOL || n->op == IR_OP_AVERAGE_POOL ? ir_attr_int(n, "ceil_mode") : false;
    if (shape_window_geometry(&sc, x, kernel, transposed, ceil, w)) {
        gb_fail(c, KILN_ERR_INTERNAL, "the window no longer checks");
        return false;
    }
    return true;
}

static void pads_of(const shape_window *w, int64_t *pads) {
    for (int i = 0; i < w->spatial; i++)
        pads[i] = w->pad_begin[i], pads[i + w->spatial] = w->pad_end[i];
}

/* [A, B, rest...] -> [B, A, rest...] within each of g groups of the first axis:
 * W [Co, Ci/g, k...] becomes [Ci, Co/g, k...] (for g = 1, a swap of the first two axes) */
static ir_value *swap_io(grad_ctx *c, ir_value *x, int64_t g) {
    if (c->st || !x)
        return NULL;
    const kiln_tensor *t = &x->type;
    int64_t perm[KILN_MAX_RANK];
    if (g == 1) {
        for (int i = 0; i < t->rank; i++)
            perm[i] = i;
        perm[0] = 1, perm[1] = 0;
        return gb_transpose(c, x, perm);
    }
    kiln_tensor grouped = {.dtype = t->dtype, .rank = t->rank + 1}, back = *t;
    grouped.dims[0] = g, grouped.dims[1] = t->dims[0] / g, grouped.dims[2] = t->dims[1];
    memcpy(grouped.dims + 3, t->dims + 2, sizeof(int64_t) * (size_t)(t->rank - 2));
    perm[0] = 0, perm[1] = 2, perm[2] = 1;
    for (int i = 3; i < grouped.rank; i++)
        perm[i] = i;
    back.dims[0] = t->dims[1] * g, back.dims[1] = t->dims[0] / g;
    return gb_reshape(c, gb_transpose(c, gb_reshape(c, x, &grouped), perm), &back);
}

static ir_value *conv(grad_ctx *c, ir_op op, ir_value *x, ir_value *w, int64_t group, const int64_t *strides,
                      const int64_t *dil, const int64_t *pads, const int64_t *outpad) {
    int sp = x ? x->type.rank - 2 : 0;
    ir_node *k = gb_begin(c, op, 2, (ir_value *[]){x, w});
    if (strides)
        gb_attr_ints(c, k, "strides", sp, strides);
    gb_attr_ints(c, k, "dilations", sp, dil);
    gb_attr_ints(c, k, "pads", 2 * sp, pads);
    if (outpad)
        gb_attr_ints(c, k, "output_padding", sp, outpad);
    if (group != 1)
        gb_attr_int(c, k, "group", group);
    return gb_done(c, k);
}

/* The weight gradient of a window op in which output position o and kernel tap t read
 * input position o * s + t * d - p: dW[co, ci, t] = sum over n, o of gout[n, co, o] *
 * in[n, ci, o s + t d - p], for W of type w ([Co, Ci/g, k...]).
 * Up to 16 taps (any number with groups), one matrix product per tap: gout as
 * [g, Co/g, N * out] times the window that tap saw as [g, N * out, Ci/g], each long and
 * wide enough to vectorize; with few input channels (Ci < 16, no groups), a product per
 * tap would be a matrix-vector product re-reading dY, so the windows go side by side
 * instead ([N * out, taps * Ci], im2col) for one product. (One im2col product for many
 * channels measured slower than a product per tap: its K is N * out long.) Larger
 * kernels without groups: one Conv of in^T by gout^T with strides and dilations swapped,
 * cut to the kernel. */
static ir_value *weight_grad(grad_ctx *c, ir_value *in, ir_value *gout, const kiln_tensor *w, int64_t g,
                             const shape_window *win) {
    if (c->st)
        return NULL;
    const kiln_tensor *x = &in->type, *y = &gout->type;
    int sp = win->spatial, rank = x->rank;
    int64_t taps = 1, outs = 1, pads[2 * KILN_MAX_RANK];
    for (int i = 0; i < sp; i++)
        taps *= w->dims[i + 2], outs *= y->dims[i + 2];
    pads_of(win, pads);
    if (taps > 16 && g == 1) {
        int64_t perm[KILN_MAX_RANK];
        for (int i = 0; i < rank; i++)
            perm[i] = i;
        perm[0] = 1, perm[1] = 0;
        ir_value *r = conv(c, IR_OP_CONV, gb_transpose(c, in, perm), gb_transpose(c, gout, perm), 1, win->dilation,
                           win->stride, pads, NULL); /* [Ci, Co, K'...], K' >= K */
        if (r && memcmp(r->type.dims + 2, w->dims + 2, sizeof(int64_t) * (size_t)sp)) {
            int64_t starts[KILN_MAX_RANK] = {0}, axes[KILN_MAX_RANK];
            for (int i = 0; i < sp; i++)
                axes[i] = i + 2;
            ir_value *args[4] = {r, gb_i64s(c, sp, starts), gb_i64s(c, sp, w->dims + 2), gb_i64s(c, sp, axes)};
            r = gb_done(c, gb_begin(c, IR_OP_SLICE, 4, args));
        }
        return gb_transpose(c, r, perm);
    }
    if (taps > 64)
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "a grouped window op with more than 64 kernel taps is not differentiated");
    ir_value *xp = in;
    bool padded = false;
    int64_t full_pads[2 * KILN_MAX_RANK] = {0};
    for (int i = 0; i < sp; i++) {
        if (pads[i] < 0 || pads[i + sp] < 0)
            return gb_fail(c, KILN_ERR_UNSUPPORTED, "negative pads are not differentiated");
        full_pads[i + 2] = pads[i], full_pads[rank + i + 2] = pads[i + sp];
        padded |= pads[i] || pads[i + sp];
    }
    if (padded)
        xp = gb2(c, IR_OP_PAD, in, gb_i64s(c, 2 * rank, full_pads));
    int64_t co = y->dims[1], ci = x->dims[1], perm[KILN_MAX_RANK];
    for (int i = 0; i < rank; i++)
        perm[i] = i;
    perm[0] = 1, perm[1] = 0;
    kiln_tensor a_type = {.dtype = y->dtype, .rank = 3, .dims = {g, co / g, y->dims[0] * outs}};
    ir_value *a = gb_reshape(c, gb_transpose(c, gout, perm), &a_type); /* [g, Co/g, N * out] */
    perm[0] = 0; /* [N, C, out...] -> [N, out..., C] */
    for (int i = 0; i < sp; i++)
        perm[i + 1] = i + 2;
    perm[rank - 1] = 1;
    kiln_tensor b_type = {.dtype = x->dtype, .rank = 3, .dims = {x->dims[0] * outs, g, ci / g}};
    kiln_tensor tap_type = {.dtype = x->dtype, .rank = 3, .dims = {w->dims[0], w->dims[1], 1}};
    int64_t tap[KILN_MAX_RANK] = {0};
    kiln_tensor a2 = {.dtype = y->dtype, .rank = 2, .dims = {co, a_type.dims[2]}};
    bool im2col = g == 1 && ci < 16;
    ir_value **parts = calloc((size_t)taps, sizeof *parts);
    if (!parts)
        return gb_fail(c, KILN_ERR_OOM, "out of memory");
    for (int64_t t = 0; t < taps; t++) {
        int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK], steps[KILN_MAX_RANK];
        for (int i = 0; i < sp; i++) {
            starts[i] = tap[i] * win->dilation[i];
            ends[i] = starts[i] + (y->dims[i + 2] - 1) * win->stride[i] + 1;
            axes[i] = i + 2, steps[i] = win->stride[i];
        }
        ir_value *args[5] = {xp, gb_i64s(c, sp, starts), gb_i64s(c, sp, ends), gb_i64s(c, sp, axes),
                             gb_i64s(c, sp, steps)};
        ir_value *b = gb_reshape(c, gb_transpose(c, gb_done(c, gb_begin(c, IR_OP_SLICE, 5, args)), perm), &b_type);
        if (im2col)
            parts[t] = gb_reshape(c, b, &(kiln_tensor){.dtype = x->dtype, .rank = 2, .dims = {x->dims[0] * outs, ci}});
        else if (g > 1) /* [N * out, g, Ci/g] -> [g, N * out, Ci/g] */
            parts[t] = gb_reshape(c, gb2(c, IR_OP_MATMUL, a, gb_transpose(c, b, (int64_t[]){1, 0, 2})), &tap_type);
        else
            parts[t] = gb_reshape(c, gb2(c, IR_OP_MATMUL, gb_reshape(c, a, &a2), gb_reshape(c, b, &(kiln_tensor){
                                          .dtype = x->dtype, .rank = 2, .dims = {x->dims[0] * outs, ci}})), &tap_type);
        for (int i = sp - 1; i >= 0; i--) /* the next tap, last axis fastest */
            if (++tap[i] < w->dims[i + 2])
                break;
            else
                tap[i] = 0;
    }
    ir_value *all = parts[0];
    if (im2col) {
        if (taps > 1) {
            ir_node *cat = gb_begin(c, IR_OP_CONCAT, (int)taps, parts);
            gb_attr_int(c, cat, "axis", 1);
            all = gb_done(c, cat);
        }
        kiln_tensor by_tap = {.dtype = x->dtype, .rank = 3, .dims = {co, taps, ci}};
        all = gb_transpose(c, gb_reshape(c, gb2(c, IR_OP_MATMUL, gb_reshape(c, a, &a2), all), &by_tap), (int64_t[]){0, 2, 1});
    } else if (taps > 1) {
        ir_node *cat = gb_begin(c, IR_OP_CONCAT, (int)taps, parts);
        gb_attr_int(c, cat, "axis", 2);
        all = gb_done(c, cat);
    }
    free(parts);
    return gb_reshape(c, all, w);
}

/* dY summed over every axis but the channels: a bias's gradient */
static ir_value *bias_grad(grad_ctx *c) {
    int64_t axes[KILN_MAX_RANK];
    int na = 0;
    for (int i = 0; i < DY->type.rank; i++)
        if (i != 1)
            axes[na++] = i;
    return gb_reduce(c, IR_OP_REDUCE_SUM, DY, na, axes, false);
}

kiln_status grad_conv(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type, *w = &X(1)->type, *y = &Y(0)->type;
    int64_t g = ir_attr_int(c->node, "group"), pads[2 * KILN_MAX_RANK];
    shape_window win;
    if (!window_of(c, false, &win))
        return c->st;
    int sp = win.spatial;
    pads_of(&win, pads);
    bool unit_stride = true, fits = true;
    int64_t flip_pads[2 * KILN_MAX_RANK], outpad[KILN_MAX_RANK];
    for (int i = 0; i < sp; i++) {
        unit_stride = unit_stride && win.stride[i] == 1;
        flip_pads[i] = (w->dims[i + 2] - 1) * win.dilation[i] - pads[i];
        flip_pads[i + sp] = (w->dims[i + 2] - 1) * win.dilation[i] - pads[i + sp];
        fits = fits && flip_pads[i] >= 0 && flip_pads[i + sp] >= 0;
        outpad[i] = x->dims[i + 2] - (win.stride[i] * (y->dims[i + 2] - 1) + (w->dims[i + 2] - 1) * win.dilation[i] + 1 -
                                      pads[i] - pads[i + sp]);
    }
    if (c->need[0] && unit_stride && fits) {
        /* stride 1: dX is a Conv of dY by W with its channels swapped (per group) and its
         * window flipped, so it runs on the Conv kernel (ConvTranspose's scatter is slower) */
        int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK], steps[KILN_MAX_RANK];
        for (int i = 0; i < sp; i++)
            starts[i] = -1, ends[i] = -(w->dims[i + 2] + 1), axes[i] = i + 2, steps[i] = -1;
        ir_value *in[5] = {X(1), gb_i64s(c, sp, starts), gb_i64s(c, sp, ends), gb_i64s(c, sp, axes), gb_i64s(c, sp, steps)};
        ir_value *flipped = swap_io(c, gb_done(c, gb_begin(c, IR_OP_SLICE, 5, in)), g);
        c->dx[0] = conv(c, IR_OP_CONV, DY, flipped, g, NULL, win.dilation, flip_pads, NULL);
    } else if (c->need[0]) {
        c->dx[0] = conv(c, IR_OP_CONV_TRANSPOSE, DY, X(1), g, win.stride, win.dilation, pads, outpad);
    }
    if (c->need[1])
        c->dx[1] = weight_grad(c, X(0), DY, w, g, &win);
    if (c->node->input_count > 2 && c->need[2])
        c->dx[2] = bias_grad(c);
    return c->st;
}

/* ConvTranspose is Conv's adjoint in its input: dX = Conv(dY, W) with the same window and
 * groups; its W [Ci, Co/g, k...] pairs input channel ci with output channel co as Conv's
 * W pairs output with input, so dW is Conv's weight gradient with dY as the input and X
 * as the output's gradient. */
kiln_status grad_conv_transpose(grad_ctx *c) {
    int64_t g = ir_attr_int(c->node, "group"), pads[2 * KILN_MAX_RANK];
    shape_window win;
    if (!window_of(c, true, &win))
        return c->st;
    pads_of(&win, pads);
    for (int i = 0; i < 2 * win.spatial; i++)
        if (pads[i] < 0)
            return gb_fail(c, KILN_ERR_UNSUPPORTED, "ConvTranspose with negative pads (an output_shape past "
                                                    "the natural size) is not differentiated"), c->st;
    if (c->need[0])
        c->dx[0] = conv(c, IR_OP_CONV, DY, X(1), g, win.stride, win.dilation, pads, NULL);
    if (c->need[1])
        c->dx[1] = weight_grad(c, DY, X(0), &X(1)->type, g, &win);
    if (c->node->input_count > 2 && c->need[2])
        c->dx[2] = bias_grad(c);
    return c->st;
}

/* ---- pooling -------------------------------------------------------------------------------- */

/* Windows that tile the input (kernel = strides, no pads, dilation 1, sizes divisible)
 * keep their gradient elementwise: X seen as [N, C, H/k, k, W/k, k] against Y as
 * [N, C, H/k, 1, W/k, 1]. */
static bool tiles(grad_ctx *c, const shape_window *w, kiln_tensor *split, kiln_tensor *pooled) {
    const kiln_tensor *x = &X(0)->type;
    int sp = w->spatial;
    bool ok = 2 + 2 * sp <= KILN_MAX_RANK;
    for (int i = 0; i < sp && ok; i++)
        ok = w->kernel[i] == w->stride[i] && w->dilation[i] == 1 && !w->pad_begin[i] && !w->pad_end[i] &&
             x->dims[i + 2] % w->kernel[i] == 0;
    if (!ok)
        return false;
    *split = (kiln_tensor){.dtype = x->dtype, .rank = 2 + 2 * sp};
    *pooled = *split;
    for (int i = 0; i < 2; i++)
        split->dims[i] = pooled->dims[i] = x->dims[i];
    for (int i = 0; i < sp; i++) {
        split->dims[2 + 2 * i] = pooled->dims[2 + 2 * i] = x->dims[i + 2] / w->kernel[i];
        split->dims[3 + 2 * i] = w->kernel[i], pooled->dims[3 + 2 * i] = 1;
    }
    return true;
}

/* The Indices output of a MaxPool: the node's own if it has one, else one added to it (the
 * forward pass then records its argmaxes, as PyTorch's does, rather than the backward
 * pass searching the windows again). */
static ir_value *pool_indices(grad_ctx *c) {
    ir_node *n = (ir_node *)c->node;
    if (n->output_count > 1)
        return n->outputs[1];
    ir_value **outs = ARENA_ARRAY(c->g->arena, ir_value *, 2), *idx;
    char name[256];
    snprintf(name, sizeof name, "%s.argmax", n->outputs[0]->name);
    if (!outs || ir_graph_new_value(c->g, ir_graph_fresh_name(c->g, name), IR_VAL_NODE, n->loc, &idx, c->d))
        return gb_fail(c, KILN_ERR_OOM, "out of memory");
    idx->producer = n, idx->producer_slot = 1;
    idx->type = n->outputs[0]->type;
    idx->type.dtype = KILN_I64;
    outs[0] = n->outputs[0], outs[1] = idx;
    n->outputs = outs;
    n->output_count = 2;
    return idx;
}

/* MaxPool: each window's gradient goes to its maximum. Tiling windows compare X with Y
 * (elements that tie share it equally, a valid subgradient); any other window goes
 * through the Indices (the first maximum takes it all, as in PyTorch). */
kiln_status grad_max_pool(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type;
    shape_window w;
    kiln_tensor split, pooled;
    if (!window_of(c, false, &w))
        return c->st;
    if (tiles(c, &w, &split, &pooled) && c->node->output_count == 1) {
        int64_t window_axes[KILN_MAX_RANK];
        for (int i = 0; i < w.spatial; i++)
            window_axes[i] = 3 + 2 * i;
        ir_value *xs = gb_reshape(c, X(0), &split), *ys = gb_reshape(c, Y(0), &pooled), *dys = gb_reshape(c, DY, &pooled);
        ir_value *hit = grad_indicator(c, xs, ys);
        ir_value *share = gb2(c, IR_OP_DIV, dys, gb_reduce(c, IR_OP_REDUCE_SUM, hit, w.spatial, window_axes, true));
        c->dx[0] = gb_reshape(c, gb2(c, IR_OP_MUL, hit, share), x);
        return c->st;
    }
    if (ir_attr_int(c->node, "storage_order"))
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "MaxPool with storage_order 1 is not differentiated"), c->st;
    ir_value *idx = pool_indices(c);
    kiln_tensor flat_x = {.dtype = x->dtype, .rank = 1, .dims = {ir_type_count(x)}};
    kiln_tensor flat_y = {.dtype = x->dtype, .rank = 1, .dims = {ir_type_count(&Y(0)->type)}}, flat_i = flat_y;
    flat_i.dtype = KILN_I64;
    ir_value *zeros = gb2(c, IR_OP_EXPAND, grad_zero_scalar(c, X(0)), gb_i64s(c, 1, flat_x.dims));
    ir_node *sc = gb_begin(c, IR_OP_SCATTER_ELEMENTS, 3,
                           (ir_value *[]){zeros, gb_reshape(c, idx, &flat_i), gb_reshape(c, DY, &flat_y)});
    gb_attr_string(c, sc, "reduction", "add");
    c->dx[0] = gb_reshape(c, gb_done(c, sc), x);
    return c->st;
}

/* AveragePool: each output's gradient divided by its window's count, then spread over the
 * window. The count is a product of per-axis counts (positions inside the input, or inside
 * the padded input with count_include_pad), a constant; spreading is a ConvTranspose of
 * each channel plane by a kernel of ones, cropped where ceil_mode windows overhang and
 * zero-padded where the last input positions were in no window. */
kiln_status grad_average_pool(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type, *y = &Y(0)->type;
    shape_window w;
    kiln_tensor split, pooled;
    if (!window_of(c, false, &w))
        return c->st;
    int sp = w.spatial;
    if (tiles(c, &w, &split, &pooled)) {
        double size = 1;
        for (int i = 0; i < sp; i++)
            size *= (double)w.kernel[i];
        ir_value *d = gb2(c, IR_OP_DIV, gb_reshape(c, DY, &pooled), gb_scalar(c, x->dtype, size));
        c->dx[0] = gb_reshape(c, gb2(c, IR_OP_EXPAND, d, gb_i64s(c, split.rank, split.dims)), x);
        return c->st;
    }
    bool include_pad = ir_attr_int(c->node, "count_include_pad");
    int64_t outs = 1;
    for (int i = 0; i < sp; i++)
        outs *= y->dims[i + 2];
    double *inv = malloc(sizeof *inv * (size_t)outs);
    if (!inv)
        return gb_fail(c, KILN_ERR_OOM, "out of memory"), c->st;
    for (int64_t o = 0; o < outs; o++) {
        int64_t rest = o, count = 1;
        for (int i = sp - 1; i >= 0; i--) {
            int64_t pos = rest % y->dims[i + 2], n = 0;
            rest /= y->dims[i + 2];
            for (int64_t k = 0; k < w.kernel[i]; k++) {
                int64_t p = pos * w.stride[i] - w.pad_begin[i] + k * w.dilation[i];
                n += include_pad ? p < x->dims[i + 2] + w.pad_end[i] : p >= 0 && p < x->dims[i + 2];
            }
            count *= n;
        }
        inv[o] = count ? 1.0 / (double)count : 0;
    }
    kiln_tensor plane = {.dtype = x->dtype, .rank = 2 + sp}, kernel = plane;
    plane.dims[0] = x->dims[0] * x->dims[1], plane.dims[1] = 1;
    kernel.dims[0] = kernel.dims[1] = 1;
    int64_t kcount = 1, pads[2 * KILN_MAX_RANK], tail[2 * KILN_MAX_RANK] = {0}; /* tail: Pad's [begins, ends] */
    bool short_end = false;
    for (int i = 0; i < sp; i++) {
        plane.dims[i + 2] = y->dims[i + 2], kernel.dims[i + 2] = w.kernel[i];
        kcount *= w.kernel[i];
        int64_t natural = w.stride[i] * (y->dims[i + 2] - 1) + (w.kernel[i] - 1) * w.dilation[i] + 1;
        int64_t reach = natural - w.pad_begin[i]; /* input positions the windows span */
        pads[i] = w.pad_begin[i];
        pads[i + sp] = reach > x->dims[i + 2] ? reach - x->dims[i + 2] : 0;
        tail[2 + sp + 2 + i] = reach < x->dims[i + 2] ? x->dims[i + 2] - reach : 0;
        short_end |= reach < x->dims[i + 2];
    }
    kiln_tensor inv_type = plane;
    inv_type.dims[0] = 1;
    double *ones = malloc(sizeof *ones * (size_t)kcount);
    if (!ones) {
        free(inv);
        return gb_fail(c, KILN_ERR_OOM, "out of memory"), c->st;
    }
    for (int64_t i = 0; i < kcount; i++)
        ones[i] = 1;
    ir_value *scaled = gb2(c, IR_OP_MUL, gb_reshape(c, DY, &plane), gb_tensor(c, x->dtype, inv_type.rank, inv_type.dims, inv));
    ir_value *spread = conv(c, IR_OP_CONV_TRANSPOSE, scaled, gb_tensor(c, x->dtype, kernel.rank, kernel.dims, ones), 1,
                            w.stride, w.dilation, pads, NULL);
    free(inv), free(ones);
    if (short_end)
        spread = gb2(c, IR_OP_PAD, spread, gb_i64s(c, 2 * (2 + sp), tail));
    c->dx[0] = gb_reshape(c, spread, x);
    return c->st;
}
