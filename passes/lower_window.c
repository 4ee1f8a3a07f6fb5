/*
 * lower_window.c — loop lowering of the window ops: Conv (row, row-group and flat
 * schedules), ConvNCHWc (the blocked convolution passes/layout.c puts in place), MaxPool
 * and AveragePool. The input is read through a padded copy where that removes the bounds
 * checks; the schedules are chosen per layer from the output's shape.
 */
#include "passes/lower.h"
#include "passes/tuning.h"

#include <math.h>
#include <string.h>

#define M (c->m)

static lir_expr *num(lower_ctx *c, kiln_dtype t, double v) { return lir_const(M, t, v); }

#define loop lower_loop
#define seq1 lower_seq1
#define read lower_read

/* The window geometry of this node (shared with shape inference and the interpreter). */
static kiln_status window(lower_ctx *c, const int64_t *kernel, shape_window *w) {
    shape_ctx s = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    bool ceil_mode = ir_op_attr_spec(c->node->op, "ceil_mode") && ir_attr_int(c->node, "ceil_mode");
    return shape_window_geometry(&s, c->in_type[0], kernel, false, ceil_mode, w);
}

/* For each kernel position: the nested loops over the kernel's spatial dims inside `body`
 * of the window, input coordinates ic[2..] (o * stride - pad + k * dilation), and (when
 * inside is not NULL) the condition that they lie inside the input. Returns the
 * outermost kernel loop. */
static lir_stmt *window_loops(lower_ctx *c, const shape_window *w, lir_expr **oc, lir_expr **ic,
                              lir_expr **kc, lir_expr **inside, lir_stmt *body) {
    lir_stmt *s = body;
    if (inside)
        *inside = NULL;
    for (int d = w->spatial - 1; d >= 0; d--) {
        char name[16];
        snprintf(name, sizeof name, "k%d", d);
        s = loop(c, name, w->kernel[d], s, &kc[d]);
        if (d > 0)
            s = seq1(c, s);
    }
    for (int d = 0; d < w->spatial; d++) {
        lir_expr *pos = lir_binary(M, LIR_ADD,
                                   lir_binary(M, LIR_SUB, lir_binary(M, LIR_MUL, oc[d + 2], lir_int(M, w->stride[d])),
                                              lir_int(M, w->pad_begin[d])),
                                   lir_binary(M, LIR_MUL, kc[d], lir_int(M, w->dilation[d])));
        ic[d + 2] = pos;
        if (!inside)
            continue;
        lir_expr *ok = lir_binary(M, LIR_AND, lir_binary(M, LIR_GE, pos, lir_int(M, 0)),
                                  lir_binary(M, LIR_LT, pos, lir_int(M, c->in_type[0]->dims[d + 2])));
        *inside = *inside ? lir_binary(M, LIR_AND, *inside, ok) : ok;
    }
    return s;
}

/* Conv: per output position, a sum over input channels and the kernel window. Without
 * groups, output channels go in blocks of CONV_CHANNELS with an accumulator each, so each
 * input element loaded serves the whole block (the output's last spatial loop is the one
 * vectorized); a partial last block reads the last channel's weights and stores nothing.
 * With padding (or a stride along the last axis), the input is first copied into kernel
 * scratch with its zeros around it (split by phase: see pad_input), so the inner loops
 * read without bounds checks and, strided or not, with vector loads (a padded position
 * adds 0 * w where the interpreter skips it: the same sum, unless w is infinite or NaN,
 * which then gives NaN).
 * Each sum runs in the interpreter's order. */
/* 16 accumulators (16 zmm registers of 32) hide the FMA latency that 8 left exposed:
 * ResNet-18 at 1 thread 69.3 -> 63.9 ms, the bundled CNN 2.14 -> 1.97 ms; 24 spills
 * (83.9 ms). GEMM_ROWS (lower_nn.c) stays 8: 12 and 16 measured no better on the
 * Transformer, MLP and LSTM models. */
enum { CONV_CHANNELS = 16 };

/* The padded copy of input 0 (zeros outside), [N, C, H + pads, ...], into *xp. With a
 * stride s > 1 along the last axis, that axis is stored split by phase, [..., s, W'/s]
 * (padded column w at [w % s, w / s]), so that the conv's loads, at columns o * s + tap,
 * move by one element as o does (vector loads, where a strided read would gather).
 * With `planes` (the flat path, 2-D), every spatial axis is split so, phases outermost:
 * [N, C, P0, P1, Q0, Q1], padded position q * s + phase at [phase, q] (see flat_geometry). */
typedef struct flat_geometry {
    int64_t split[2], phases[2], q[2]; /* stride, phases copied, positions per phase, per axis */
} flat_geometry;

/* A 1x1 kernel's taps (or any kernel narrower than its stride, undilated) reach only the
 * first phases: a strided 1x1 conv copies only the pixels it reads. */
static flat_geometry flat_layout(const shape_window *w, const kiln_tensor *x) {
    flat_geometry g;
    for (int d = 0; d < 2; d++) {
        int64_t s = w->stride[d], padded = x->dims[d + 2] + w->pad_begin[d] + w->pad_end[d];
        g.split[d] = s;
        g.phases[d] = w->dilation[d] == 1 && w->kernel[d] < s ? w->kernel[d] : s;
        g.q[d] = (padded + s - 1) / s;
    }
    return g;
}

static kiln_status pad_input(lower_ctx *c, const shape_window *w, int64_t split, const flat_geometry *planes,
                             int64_t slack, bool rows_first, lir_buffer **xp, kiln_tensor *shape) {
    const kiln_tensor *x = c->in_type[0];
    int last = x->rank - 1;
    *shape = *x;
    for (int d = 0; d < w->spatial; d++)
        shape->dims[d + 2] = x->dims[d + 2] + w->pad_begin[d] + w->pad_end[d];
    if (planes) {
        shape->rank = 6;
        for (int d = 0; d < 2; d++)
            shape->dims[2 + d] = planes->phases[d], shape->dims[4 + d] = planes->q[d];
    } else if (split > 1) {
        shape->rank = x->rank + 1;
        shape->dims[last + 1] = (shape->dims[last] + split - 1) / split;
        shape->dims[last] = split;
    }
    if (!(*xp = lir_local(M, c->k, "x_padded", x->dtype, kiln_tensor_count(shape) + slack)))
        return lower_oom(c);
    lir_expr *pc[KILN_MAX_RANK + 1], *xc[KILN_MAX_RANK], *inside = NULL;
    lir_stmt *inner, *outer;
    kiln_tensor order = *shape; /* rows_first: the nest runs [N, rows, C, ...], rows in parallel */
    if (rows_first)
        order.dims[1] = shape->dims[2], order.dims[2] = shape->dims[1];
    kiln_status st = lower_nest(c, &order, pc, &inner, &outer);
    if (st)
        return st;
    if (rows_first) {
        lir_expr *t = pc[1];
        pc[1] = pc[2], pc[2] = t;
    }
    xc[0] = pc[0], xc[1] = pc[1];
    for (int d = w->spatial + 2; d < x->rank; d++) /* a channel block after the spatial axes (NCHWc) */
        xc[d] = pc[d];
    for (int d = 0; d < w->spatial; d++) {
        lir_expr *padded = pc[d + 2];
        if (planes) /* position = q * s + phase */
            padded = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, pc[4 + d], lir_int(M, planes->split[d])), pc[2 + d]);
        else if (split > 1 && d + 2 == last) /* column = q * s + phase */
            padded = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, pc[last + 1], lir_int(M, split)), pc[last]);
        xc[d + 2] = lir_binary(M, LIR_SUB, padded, lir_int(M, w->pad_begin[d]));
        lir_expr *ok = lir_binary(M, LIR_AND, lir_binary(M, LIR_GE, xc[d + 2], lir_int(M, 0)),
                                  lir_binary(M, LIR_LT, xc[d + 2], lir_int(M, x->dims[d + 2])));
        inside = inside ? lir_binary(M, LIR_AND, inside, ok) : ok;
    }
    kiln_dtype t = lower_compute_type(x->dtype);
    int v = lower_var(c, "v", t);
    if (!lir_seq_push(M, inner, lir_let(M, v, num(c, t, 0))) ||
        !lir_seq_push(M, inner, lir_if(M, inside, lir_assign(M, v, read(c, 0, xc)), NULL)) ||
        !lir_seq_push(M, inner, lir_store(M, *xp, lower_index(c, shape, pc, shape->rank),
                                          lir_cast(M, x->dtype, lir_var_ref(M, c->k, v)))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* Small images: a vector over one output row wastes lanes (7 of 16 at 7x7). With unit
 * strides, output position (oh, ow) reads padded input (oh + kh d, ow + kw d), whose flat
 * index in the padded copy is p + kh d W' + kw d for p = oh W' + ow, W' the padded width:
 * so the sums run over p in [0, (H - 1) W' + W) (the columns past W in each row are
 * computed and dropped), into scratch, and a second nest copies the valid columns to the
 * output through the epilogue.
 * The p vectors go in groups of `parts` per lane loop, with CONV_CHANNELS / parts channels,
 * so each weight loaded serves `parts` vectors and a block's weights (channels x Cin x
 * taps) are a quarter of the row path's 16 channels': ResNet-18's 256-channel 14x14 convs
 * streamed 147 KiB of weights per output row from L2; in groups of 4, 37 KiB stay in L1.
 * Used where it fills more lanes, or where the row path's weights would not stay in L1.
 * Strided: the padded copy is split by phase along both axes (pad_input's planes), so
 * output (oh, ow) reads phase plane (kh d % s, kw d % s) at (oh + kh d / s, ow + kw d / s):
 * again p plus a constant per tap, with p = oh Q1 + ow over the phase plane's width Q1.
 * ResNet-18's 7x7 outputs of its stride-2 convs filled 7 of 16 lanes on the row path. */
typedef struct flat_plan {
    int64_t flat, vectors, parts, groups;
} flat_plan;

static flat_plan plan_flat(const shape_window *w, const kiln_tensor *x, const kiln_tensor *out, int64_t lanes) {
    flat_plan f = {0};
    int64_t h = out->dims[2], wd = out->dims[3], wp = flat_layout(w, x).q[1];
    f.flat = (h - 1) * wp + wd;
    f.vectors = (f.flat + lanes - 1) / lanes;
    f.parts = f.vectors >= 4 ? 4 : f.vectors; /* 4 x 4 channels: 16 accumulators */
    if (f.parts == 4 && f.vectors % 4 && f.vectors % 4 <= 2 && f.vectors % 2 == 0)
        f.parts = 2; /* 14 vectors: 7 pairs rather than 4 groups of 4 (2 wasted) */
    f.parts = f.parts < 1 ? 1 : f.parts;
    f.groups = (f.vectors + f.parts - 1) / f.parts;
    return f;
}

static bool flat_conv_pays(const shape_window *w, const kiln_tensor *x, const kiln_tensor *out, int64_t cin,
                           int64_t lanes, int row_block) {
    if (w->spatial != 2 || lanes < 4)
        return false;
    flat_plan f = plan_flat(w, x, out, lanes);
    int64_t h = out->dims[2], wd = out->dims[3];
    double rows = (double)(h * wd) / (double)(h * lanes * ((wd + lanes - 1) / lanes));
    double flat_fill = (double)(h * wd) / (double)(lanes * f.groups * f.parts);
    int64_t row_weights = row_block * cin * w->kernel[0] * w->kernel[1] * 4; /* bytes a row's block reads */
    /* a kernel narrower than its stride (1x1, stride 2): the flat path copies only the
     * pixels it reads, where the row path copies every row (ResNet-18's 1x1 / 2 convs at
     * 28x28 and 14x14 outputs: 0.14 -> 0.11 ms and 0.15 -> 0.12) */
    flat_geometry g = flat_layout(w, x);
    bool fewer_copied = g.phases[0] < g.split[0] || g.phases[1] < g.split[1];
    return flat_fill > rows * 1.15 || ((row_weights > (40 << 10) || fewer_copied) && flat_fill > rows * 0.8);
}

static kiln_status conv_flat(lower_ctx *c, const shape_window *w) {
    const kiln_tensor *x = c->in_type[0], *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(out->dtype);
    int64_t channels = out->dims[1], cin = x->dims[1], lanes = c->m->vector_bits / (8 * (int64_t)kiln_dtype_size(t));
    flat_plan f = plan_flat(w, x, out, lanes);
    flat_geometry g = flat_layout(w, x);
    int parts = (int)f.parts, block = CONV_CHANNELS / parts;
    block = channels < block ? (int)channels : block;
    int64_t stride = f.groups * parts * lanes; /* each plane of sums, every position computed */
    lir_buffer *xp;
    kiln_tensor xs;
    kiln_status st = pad_input(c, w, 1, &g, stride - f.flat, false, &xp, &xs); /* slack: reads past the last plane */
    if (st)
        return st;
    int64_t wp = g.q[1], plane_size = g.q[0] * g.q[1];
    lir_buffer *sums = lir_local(M, c->k, "sums", t, out->dims[0] * channels * stride);
    kiln_tensor blocks = {.dtype = out->dtype, .rank = 2, .dims = {out->dims[0], (channels + block - 1) / block}};
    lir_expr *oc[2], *gv, *lane, *ci, *kh, *kw;
    lir_stmt *inner, *outer;
    if (!sums || (st = lower_nest(c, &blocks, oc, &inner, &outer)))
        return sums ? st : lower_oom(c);
    lir_stmt *p_body = lir_seq(M), *take = lir_seq(M);
    lir_stmt *lane_loop = loop(c, "lane", lanes, p_body, &lane);
    lir_stmt *g_loop = loop(c, "group", f.groups, seq1(c, lane_loop), &gv);
    lir_stmt *kw_loop = loop(c, "kw", w->kernel[1], take, &kw);
    lir_stmt *kh_loop = loop(c, "kh", w->kernel[0], seq1(c, kw_loop), &kh);
    lir_stmt *ci_loop = loop(c, "ci", cin, seq1(c, kh_loop), &ci);
    lir_expr *first = lir_binary(M, LIR_MUL, oc[1], lir_int(M, block));
    /* x_padded[n, ci, kh d0 % s0, kw d1 % s1, p + (kh d0 / s0) Q1 + kw d1 / s1] for
     * p = (group parts + part) lanes + lane */
    lir_expr *plane = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, oc[0], lir_int(M, cin)), ci), *offset[2];
    lir_expr *k[2] = {kh, kw};
    for (int d = 0; d < 2; d++) {
        offset[d] = lir_binary(M, LIR_MUL, k[d], lir_int(M, w->dilation[d]));
        lir_expr *phase = lir_int(M, 0);
        if (g.split[d] > 1) {
            phase = lir_binary(M, LIR_REM, offset[d], lir_int(M, g.split[d]));
            offset[d] = lir_binary(M, LIR_DIV, offset[d], lir_int(M, g.split[d]));
        }
        plane = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, plane, lir_int(M, g.phases[d])), phase);
    }
    plane = lir_binary(M, LIR_MUL, plane, lir_int(M, plane_size));
    lir_expr *tap = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, offset[0], lir_int(M, wp)), offset[1]);
    lir_expr *pos[4];
    int xv[4], acc[4][CONV_CHANNELS];
    if (!p_body || !take || !g_loop || !ci_loop)
        return lower_oom(c);
    for (int v = 0; v < parts; v++) {
        pos[v] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, gv, lir_int(M, parts)),
                                                                           lir_int(M, v)),
                                                     lir_int(M, lanes)),
                            lane);
        xv[v] = lower_var(c, "x", t);
        lir_expr *at = lir_binary(M, LIR_ADD, lir_binary(M, LIR_ADD, plane, pos[v]), tap);
        if (!lir_seq_push(M, take, lir_let(M, xv[v], lir_cast(M, t, lir_load(M, xp, at)))))
            return lower_oom(c);
    }
    for (int r = 0; r < block; r++) {
        lir_expr *co = lir_binary(M, LIR_MIN, lir_binary(M, LIR_ADD, first, lir_int(M, r)), lir_int(M, channels - 1));
        lir_expr *wc[4] = {co, ci, kh, kw}, *init = num(c, t, 0), *weight = read(c, 1, wc);
        if (c->node->input_count > 2 && c->in[2])
            init = read(c, 2, (lir_expr *[]){co});
        for (int v = 0; v < parts; v++) {
            acc[v][r] = lower_var(c, "acc", t);
            lir_expr *sum = lir_fma(M, lir_var_ref(M, c->k, xv[v]), weight, lir_var_ref(M, c->k, acc[v][r]));
            if (!lir_seq_push(M, p_body, lir_let(M, acc[v][r], init)) || !lir_seq_push(M, take, lir_assign(M, acc[v][r], sum)))
                return lower_oom(c);
        }
    }
    if (!lir_seq_push(M, p_body, ci_loop))
        return lower_oom(c);
    for (int r = 0; r < block; r++) /* sums[n, co, p] */
        for (int v = 0; v < parts; v++) {
            lir_expr *ch = lir_binary(M, LIR_ADD, first, lir_int(M, r));
            lir_expr *row = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, oc[0], lir_int(M, channels)), ch);
            lir_expr *where = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, row, lir_int(M, stride)), pos[v]);
            lir_stmt *store = lir_store(M, sums, where, lir_var_ref(M, c->k, acc[v][r]));
            if (store && channels % block)
                store = lir_if(M, lir_binary(M, LIR_LT, ch, lir_int(M, channels)), seq1(c, store), NULL);
            if (!lir_seq_push(M, p_body, store))
                return lower_oom(c);
        }
    if (!lir_seq_push(M, inner, g_loop) || (st = lower_emit(c, outer)))
        return st ? st : lower_oom(c);
    /* the valid columns, through the epilogue */
    lir_expr *yc[KILN_MAX_RANK];
    if ((st = lower_nest(c, out, yc, &inner, &outer)))
        return st;
    lir_expr *src = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, yc[0],
                                                                                                lir_int(M, channels)), yc[1]),
                                                              lir_int(M, stride)),
                               lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, yc[2], lir_int(M, wp)), yc[3]));
    if (!lir_seq_push(M, inner, lower_store_out(c, yc, lir_load(M, sums, src))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_conv(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *wt = c->in_type[1], *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(out->dtype);
    shape_window w;
    kiln_status st = window(c, wt->dims + 2, &w);
    if (st)
        return st;
    int64_t group = ir_attr_int(c->node, "group"), cin_g = x->dims[1] / group, cout_g = wt->dims[0] / group;
    int64_t channels = out->dims[1], lanes = c->m->vector_bits / (8 * (int64_t)kiln_dtype_size(t));
    int block = group != 1 || channels < 2 ? 1 : channels < CONV_CHANNELS ? (int)channels : CONV_CHANNELS;
    int last = x->rank - 1;
    int64_t ow_count = out->dims[last];
    bool wide = group == 1 && lanes >= 8 && channels >= CONV_CHANNELS / 2 && ow_count >= 3 * lanes / 2 && out->rank < KILN_MAX_RANK;
    if (group == 1 && c->m->vector_bits && flat_conv_pays(&w, x, out, cin_g, lanes, wide ? CONV_CHANNELS / 2 : block))
        return conv_flat(c, &w);
    /* wide rows: two vectors of output columns per lane loop and half the channels, so
     * each weight loaded serves two columns (as in the GEMM); the padded copy gets slack
     * past its end for the columns of the last pair that lie past the row */
    /* narrow rows (one vector each): `parts` output rows per lane loop instead, 16 / parts
     * channels, so each weight loaded serves several rows and a block's weights stay in L1
     * (ResNet-18's strided 14x14 and 7x7 convs read 74 KiB and more per row of 16 channels) */
    int64_t oh_count = out->rank == 4 ? out->dims[2] : 1;
    int row_parts = group == 1 && out->rank == 4 && ow_count <= lanes && 2 * ow_count > lanes && lanes >= 8 && oh_count >= 2 && channels >= 4
                        ? (oh_count % 4 == 0 || oh_count % 4 == 3 || oh_count >= 16 ? 4 : 2) : 1;
    int halves = wide ? 2 : row_parts;
    if (halves > 1)
        block = CONV_CHANNELS / halves;
    kiln_tensor blocks = *out;
    blocks.dims[1] = (channels + block - 1) / block;
    if (row_parts > 1) /* [..., row groups, columns] */
        blocks.dims[last - 1] = (oh_count + row_parts - 1) / row_parts;
    if (wide) { /* [..., pairs, lanes] for the last axis */
        blocks.rank = out->rank + 1;
        blocks.dims[last] = (ow_count + 2 * lanes - 1) / (2 * lanes);
        blocks.dims[last + 1] = lanes;
    }
    lir_expr *nc[KILN_MAX_RANK], *oc[4][KILN_MAX_RANK], *ic[KILN_MAX_RANK], *kc[KILN_MAX_RANK], *ci, *ld_row[4];
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, &blocks, nc, &inner, &outer)))
        return st;
    for (int h = 0; h < halves; h++) {
        memcpy(oc[h], nc, sizeof(lir_expr *) * (size_t)out->rank);
        if (wide)
            oc[h][last] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[last], lir_int(M, 2 * lanes)),
                                     lir_binary(M, LIR_ADD, lir_int(M, h * lanes), nc[last + 1]));
        if (row_parts > 1) { /* rows past the last (a partial last group) load the last row */
            oc[h][last - 1] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[last - 1], lir_int(M, row_parts)), lir_int(M, h));
            ld_row[h] = oh_count % row_parts ? lir_binary(M, LIR_MIN, oc[h][last - 1], lir_int(M, oh_count - 1)) : oc[h][last - 1];
        }
    }
    bool pads = false;
    for (int d = 0; d < w.spatial; d++)
        pads |= w.pad_begin[d] > 0 || w.pad_end[d] > 0;
    int64_t split = w.stride[w.spatial - 1];
    lir_buffer *xp = NULL;
    kiln_tensor xp_shape;
    if ((pads || split > 1 || wide) &&
        (st = pad_input(c, &w, split, NULL, wide ? 2 * lanes * w.stride[w.spatial - 1] : 0, false, &xp, &xp_shape)))
        return st;
    lir_expr *first = lir_binary(M, LIR_MUL, oc[0][1], lir_int(M, block));
    lir_stmt *body = lir_seq(M), *take = lir_seq(M);
    lir_stmt *kernel_loops = window_loops(c, &w, oc[0], ic, kc, NULL, body); /* no bounds checks: see above */
    lir_stmt *ci_loop = loop(c, "ci", cin_g, seq1(c, kernel_loops), &ci);
    if (xp) /* positions in the padded copy: every one inside it */
        for (int d = 0; d < w.spatial; d++)
            ic[d + 2] = lir_binary(M, LIR_ADD, ic[d + 2], lir_int(M, w.pad_begin[d]));
    /* x[n, g * cin_g + ci, pos...] * w[m, ci, k...] with g = m / cout_g (one group: g = 0) */
    ic[0] = oc[0][0];
    ic[1] = block > 1 ? ci : lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_DIV, first, lir_int(M, cout_g)),
                                                                lir_int(M, cin_g)), ci);
    int xv[4], acc[4][CONV_CHANNELS];
    lir_expr *tap = lir_binary(M, LIR_MUL, kc[w.spatial - 1], lir_int(M, w.dilation[w.spatial - 1]));
    for (int h = 0; h < halves; h++) {
        lir_expr *xic[KILN_MAX_RANK + 1];
        memcpy(xic, ic, sizeof(lir_expr *) * (size_t)x->rank);
        if (row_parts > 1) /* this part's input row: row * stride - pad + kh * dilation (+ pad in the copy) */
            xic[last - 1] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_SUB, lir_binary(M, LIR_MUL, ld_row[h], lir_int(M, w.stride[0])),
                                                              lir_int(M, xp ? 0 : w.pad_begin[0])),
                                       lir_binary(M, LIR_MUL, kc[0], lir_int(M, w.dilation[0])));
        /* the padded column o * s + tap of this half's output column o */
        lir_expr *col = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, oc[h][last], lir_int(M, split)), tap);
        if (split > 1) { /* split by phase: phase tap % s, position o + tap / s */
            xic[last] = lir_binary(M, LIR_REM, tap, lir_int(M, split));
            xic[last + 1] = lir_binary(M, LIR_ADD, oc[h][last], lir_binary(M, LIR_DIV, tap, lir_int(M, split)));
        } else if (xp) {
            xic[last] = col;
        }
        xv[h] = lower_var(c, "x", t);
        lir_expr *xval = xp ? lir_cast(M, t, lir_load(M, xp, lower_index(c, &xp_shape, xic, xp_shape.rank))) : read(c, 0, xic);
        if (!take || !lir_seq_push(M, take, lir_let(M, xv[h], xval)))
            return lower_oom(c);
    }
    for (int r = 0; r < block; r++) {
        lir_expr *co = lir_binary(M, LIR_MIN, lir_binary(M, LIR_ADD, first, lir_int(M, r)), lir_int(M, channels - 1));
        lir_expr *wc[KILN_MAX_RANK] = {co, ci};
        for (int d = 0; d < w.spatial; d++)
            wc[d + 2] = kc[d];
        lir_expr *weight = read(c, 1, wc), *init = num(c, t, 0);
        if (c->node->input_count > 2 && c->in[2])
            init = read(c, 2, (lir_expr *[]){co});
        for (int h = 0; h < halves; h++) {
            acc[h][r] = lower_var(c, "acc", t);
            lir_expr *sum = lir_fma(M, lir_var_ref(M, c->k, xv[h]), weight, lir_var_ref(M, c->k, acc[h][r]));
            if (!lir_seq_push(M, take, lir_assign(M, acc[h][r], sum)) || !lir_seq_push(M, inner, lir_let(M, acc[h][r], init)))
                return lower_oom(c);
        }
    }
    /* without padding every window position is inside the input; with it, inside the copy */
    if (!lir_seq_push(M, body, take) || !lir_seq_push(M, inner, ci_loop))
        return lower_oom(c);
    for (int h = 0; h < halves; h++)
        for (int r = 0; r < block; r++) {
            lir_expr *ch = lir_binary(M, LIR_ADD, first, lir_int(M, r)), *at[KILN_MAX_RANK];
            memcpy(at, oc[h], sizeof(lir_expr *) * (size_t)out->rank);
            at[1] = ch;
            lir_stmt *store = lower_store_out(c, at, lir_var_ref(M, c->k, acc[h][r]));
            lir_expr *keep = channels % block ? lir_binary(M, LIR_LT, ch, lir_int(M, channels)) : NULL;
            if (wide && ow_count % (2 * lanes)) { /* the last pair's columns past the row */
                lir_expr *in_row = lir_binary(M, LIR_LT, at[last], lir_int(M, ow_count));
                keep = keep ? lir_binary(M, LIR_AND, keep, in_row) : in_row;
            }
            if (row_parts > 1 && oh_count % row_parts) { /* the last group's rows past the end */
                lir_expr *in_rows = lir_binary(M, LIR_LT, at[last - 1], lir_int(M, oh_count));
                keep = keep ? lir_binary(M, LIR_AND, keep, in_rows) : in_rows;
            }
            if (store && keep)
                store = lir_if(M, keep, seq1(c, store), NULL);
            if (!lir_seq_push(M, inner, store))
                return lower_oom(c);
        }
    return lower_emit(c, outer);
}

/* ConvNCHWc (made by passes/layout.c): vectors along the output channels, b of them per
 * block, so every lane does useful work whatever the image's width (rows of 56 columns
 * filled 56 of 64 lanes along the row, a 7x7 image 49 of 64), and each store writes the b
 * channels of one pixel, consecutive in the blocked output. A lane loop keeps V channel
 * blocks x R pixels of accumulators; per input channel and tap it loads V weight vectors
 * (W is packed [Cout / b, KH, KW, Cin, b]: the loads stream through it in order; a constant
 * W read in pairs of blocks is copied with each pair interleaved, pair_weights) and R
 * input elements, each the same for every lane (a broadcast), for V R multiply-adds. The
 * R pixels are a segment of one output row or, on images narrower than half a segment,
 * several whole rows: either way constant offsets from one base. Where the conv pads, or
 * a last, partial block would read past the input, the input (NCHW or blocked) is first
 * copied with its zero padding, so no load needs a bounds check, and with slack past its
 * end for the partial block's pixels, which load what lies there and store nothing. Each
 * sum runs over (kh, kw, ci), input channels innermost (groups that share a row's taps:
 * (kh, ci, kw), below). */
/* V = 2, R = 8: LLVM loads the R input elements of a step before its multiply-adds, so
 * V R + V + R registers are live of 32. On 3x3 convs at 1 thread (GFLOP/s for 64 channels
 * 56x56, 256 at 14x14, 512 at 7x7; peak 215): V 2 R 8: 206, 206, 191 (R = 7 there);
 * R 10: 191, 205, 179; R 14: 105, 145, 84 (spills); V 4 R 5: 187, 189, 124; V 1 R 15:
 * 161, 185, 116. The old row schedule: about 180, 180, 153. */
nchwc_plan lower_nchwc_plan(int64_t blocks, bool pairs, int64_t oh, int64_t ow) {
    nchwc_plan p = {.v = pairs && blocks % 2 == 0 ? 2 : 1};
    int64_t most = p.v == 2 ? 8 : 12; /* pixels per block */
    if (2 * ow <= most) { /* whole rows */
        p.cols = ow, p.segs = 1;
        p.rows = most / ow < oh ? most / ow : oh;
    } else {
        p.rows = 1, p.segs = (ow + most - 1) / most;
        p.cols = (ow + p.segs - 1) / p.segs;
    }
    return p;
}

/* The shape pair_weights copies a [blocks, KH, KW, Cin, b] weight into. */
static kiln_tensor pair_shape(const kiln_tensor *wt) {
    return (kiln_tensor){.dtype = wt->dtype, .rank = 6, .dims = {wt->dims[0] / 2, wt->dims[1], wt->dims[2], wt->dims[3], 2, wt->dims[4]}};
}

/* A constant weight [blocks, KH, KW, Cin, b] read a pair of blocks at a time, copied once
 * (a kernel of its own, before the first run, into the persistent block) pair by pair
 * with the pair's two blocks interleaved, [blocks / 2, KH, KW, Cin, 2, b], so each step's
 * two weight vectors are consecutive: one dense stream where there were two, KH KW Cin b
 * apart (as the GEMM's packed panels, lower_nn.c). At 1 thread MobileNetV2 4.28 -> 4.00
 * ms, EfficientNet-B0 7.14 -> 6.87, ResNet-18 14.5 -> 14.1, ResNeXt-50 45.7 -> 45.2; at 2,
 * MobileNetV2 3.67 -> 3.46, EfficientNet-B0 6.49 -> 6.09 (medians of 4-6 alternating
 * runs); ResNet-18's JIT compile takes 40-60 ms more, its first run 13 ms more (46 MB
 * copied). *out: the copy, or NULL for weights that are not constant. */
static kiln_status pair_weights(lower_ctx *c, lir_buffer **out) {
    const kiln_tensor *wt = c->in_type[1];
    lir_buffer *w_in = c->in[1], *packed;
    lir_kernel *kernel = c->k;
    *out = NULL;
    if (!lower_input_constant(c, 1))
        return KILN_OK;
    if (!(c->k = lower_pack_kernel(c)) || !(c->in[1] = lir_param(M, c->k, w_in->value)) ||
        !(packed = lir_local(M, c->k, "w_pairs", lower_compute_type(wt->dtype), ir_type_count(wt))))
        return lower_oom(c);
    kiln_tensor nest = pair_shape(wt); /* the packed order */
    lir_expr *pc[6];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &nest, pc, &inner, &outer);
    if (st)
        return st;
    lir_expr *from[5] = {lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, pc[0], lir_int(M, 2)), pc[4]), pc[1], pc[2], pc[3], pc[5]};
    if (!lir_seq_push(M, inner, lir_store(M, packed, lower_index(c, &nest, pc, 6), read(c, 1, from))) || (st = lower_emit(c, outer)))
        return st ? st : lower_oom(c);
    packed->persistent = true;
    c->k = kernel, c->in[1] = w_in;
    if (!lir_kernel_use(M, kernel, packed))
        return lower_oom(c);
    *out = packed;
    return KILN_OK;
}

kiln_status lower_conv_nchwc(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *wt = c->in_type[1], *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(out->dtype);
    shape_ctx sc = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    shape_window w;
    kiln_status st = shape_nchwc_window(&sc, x, wt, &w);
    if (st)
        return st;
    bool blocked_in = x->rank == 5;
    int64_t xb = blocked_in ? x->dims[4] : 1, b = wt->dims[4], cin = wt->dims[3], blocks = wt->dims[0];
    int64_t oh = out->dims[2], ow = out->dims[3], cout_g = blocks * b / ir_attr_int(c->node, "group");
    /* groups (shape_conv_nchwc checked that they divide the channels): a depthwise conv
     * has a kernel of its own (lower_depthwise.c); here a block inside one group broadcasts
     * from that group's channels, a block spanning groups gathers, lane by lane */
    bool grouped = cout_g != blocks * b;
    /* groups of c = cin = cout_g channels that tile the block (c divides it) read their
     * channels from the block of the same number in the blocked input: each lane's element
     * is that block's channel (lane - lane % c) + ci, a shuffle of one load (cg_vector.c),
     * where other group shapes gather lane by lane */
    bool tiled = grouped && blocked_in && xb == b && cin == cout_g && b % cout_g == 0;
    if (grouped && cin == 1 && cout_g == 1 && w.kernel[1] <= DEPTHWISE_MAX_KW)
        return lower_conv_depthwise(c, &w);
    nchwc_plan p = lower_nchwc_plan(blocks, !grouped || cout_g % (2 * b) == 0, oh, ow);
    lir_buffer *w_pairs = NULL;
    if (p.v == 2 && (st = pair_weights(c, &w_pairs)))
        return st;
    int64_t groups = (oh + p.rows - 1) / p.rows, wp = x->dims[3] + w.pad_begin[1] + w.pad_end[1];
    int64_t slack = ((p.rows * w.stride[0] + 1) * wp + p.segs * p.cols * w.stride[1] + w.kernel[1] * w.dilation[1]) * xb;
    /* On several threads, small weights: the rows in parallel, each thread on the rows the
     * previous conv's thread wrote (its own cache), every thread reading all the weights.
     * Large weights: the channel blocks in parallel, each thread streaming its share of them.
     * At 2 threads, GFLOP/s rows / channels: 64ch 56x56 3x3 (147 KiB of weights) 366 / 330,
     * 64->128 3x3 / 2 (295 KiB) 329 / 227, 128ch 28x28 (576 KiB) 378 / 359, 256ch 14x14
     * (2.3 MiB) 345 / 383, 512ch 7x7 (9.2 MiB) 296 / 362; at 1 thread channels first
     * measured 3-5% faster. */
    int tuned = tuning_get(c->plan ? c->plan->tuning : NULL, TUNE_CONV_ORDER, c->node->name);
    bool rows_outer = M->threads != 1 && groups >= 2 &&
                      (tuned != TUNE_UNSET ? tuned == TUNE_ROWS : ir_type_count(wt) * 4 <= (1 << 20));
    bool pads = w.pad_begin[0] || w.pad_begin[1] || w.pad_end[0] || w.pad_end[1];
    lir_buffer *xp = NULL;
    kiln_tensor xs = *x;
    if ((pads || groups * p.rows > oh || p.segs * p.cols > ow) && (st = pad_input(c, &w, 1, NULL, slack, rows_outer, &xp, &xs)))
        return st;
    /* the nest: [N, channel block groups, row groups, segments, lanes] (rows_outer: the
     * first two swapped) */
    kiln_tensor nest = {.dtype = out->dtype, .rank = 5, .dims = {out->dims[0], blocks / p.v, groups, p.segs, b}};
    if (rows_outer)
        nest.dims[1] = groups, nest.dims[2] = blocks / p.v;
    lir_expr *nc[5], *ci, *cib = NULL, *cl = NULL, *kh, *kw = NULL;
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, &nest, nc, &inner, &outer)))
        return st;
    if (rows_outer) {
        lir_expr *rows = nc[1];
        nc[1] = nc[2], nc[2] = rows;
    }
    /* input channels innermost: with the taps innermost, LLVM unrolled them and kept the
     * elements that pixel r + 1 shares with pixel r at the next tap in registers, 16 of
     * them live beside 28 accumulators: spills, 77 GFLOP/s on a 64-channel 56x56 conv */
    lir_stmt *take = lir_seq(M), *ci_loop;
    if (blocked_in && !grouped) { /* ci = block * xb + lane of the input's block: no division per step */
        lir_stmt *cl_loop = loop(c, "cl", xb, take, &cl);
        ci_loop = loop(c, "cb", cin / xb, seq1(c, cl_loop), &cib);
        ci = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, cib, lir_int(M, xb)), cl);
    } else {
        ci_loop = loop(c, "ci", cin, take, &ci);
    }
    /* Groups that tile the block take a kernel row's taps unrolled: each input element (a
     * load and a shuffle, the costliest step here) is loaded once and serves every tap that
     * reads it, as in the depthwise kernel: at stride 1, 12 for the 30 multiply-adds of a
     * 3-tap row over 10 pixels, where an element per tap took 30; at stride 2, 21 (ResNeXt-50's
     * stride-2 3x3 with 8 channels a group, 28x28 out: 1.29 -> 0.91 ms at 1 thread). Pixel r
     * reads column r sw + q dilation at tap q (`used`: some pixel and tap read it). The
     * inputs, sums and a weight must fit the 32 vector registers. */
    int64_t pixels = p.rows * p.cols, sw = w.stride[1];
    int64_t ncols = (p.cols - 1) * sw + (w.kernel[1] - 1) * w.dilation[1] + 1, nused = 0;
    bool used[64] = {false};
    for (int64_t r = 0; r < p.cols && ncols <= 64; r++)
        for (int64_t q = 0; q < w.kernel[1]; q++)
            nused += !used[r * sw + q * w.dilation[1]], used[r * sw + q * w.dilation[1]] = true;
    bool share = tiled && w.kernel[1] > 1 && p.rows * ncols <= 64 && p.rows * nused + pixels < 32;
    int64_t taps = share ? w.kernel[1] : 1;
    if (!share)
        ncols = p.cols;
    lir_stmt *kw_loop = share ? ci_loop : loop(c, "kw", w.kernel[1], seq1(c, ci_loop), &kw);
    lir_stmt *kh_loop = loop(c, "kh", w.kernel[0], seq1(c, kw_loop), &kh);
    if (!take || !kh_loop)
        return lower_oom(c);
    lir_expr *row0 = lir_binary(M, LIR_MUL, nc[2], lir_int(M, p.rows));
    lir_expr *col0 = lir_binary(M, LIR_MUL, nc[3], lir_int(M, p.cols));
    int xv[64], acc[2][12]; /* xv: an input element's variable, by position (share: p.rows * ncols) */
    lir_expr *prow[12], *pcol[12], *cb[2];
    for (int v = 0; v < p.v; v++)
        cb[v] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[1], lir_int(M, p.v)), lir_int(M, v));
    for (int64_t r = 0; r < pixels; r++) {
        prow[r] = lir_binary(M, LIR_ADD, row0, lir_int(M, r / p.cols));
        pcol[r] = lir_binary(M, LIR_ADD, col0, lir_int(M, r % p.cols));
    }
    /* the input elements: column o of block row rr (share: input column col0 sw + o; else
     * pixel rr cols + o's at tap kw), the same for all lanes (but across groups) */
    for (int64_t i = 0; i < p.rows * ncols; i++) {
        int64_t rr = i / ncols, o = i % ncols;
        if (share && !used[o])
            continue;
        lir_expr *ih = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, prow[rr * p.cols], lir_int(M, w.stride[0])),
                                  lir_binary(M, LIR_MUL, kh, lir_int(M, w.dilation[0])));
        lir_expr *iw = share ? lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, col0, lir_int(M, sw)), lir_int(M, o))
                             : lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, pcol[i], lir_int(M, w.stride[1])),
                                          lir_binary(M, LIR_MUL, kw, lir_int(M, w.dilation[1])));
        lir_expr *xc[5] = {nc[0], blocked_in ? cib : ci, ih, iw, cl}; /* blocked: [n, ci / xb, ih, iw, ci % xb] */
        if (tiled) { /* the block's groups read its input block: lane's group's channel ci */
            xc[1] = cb[0];
            xc[4] = lir_binary(M, LIR_ADD, ci, lir_binary(M, LIR_SUB, nc[4], lir_binary(M, LIR_REM, nc[4], lir_int(M, cout_g))));
        } else if (grouped) { /* group g's channel ci, g = m / cout_g for output channel m (a pair of blocks: one group) */
            lir_expr *m = lir_binary(M, LIR_MUL, cb[0], lir_int(M, b));
            if (cout_g % b) /* the group changes within the block */
                m = lir_binary(M, LIR_ADD, m, nc[4]);
            lir_expr *ch = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_DIV, m, lir_int(M, cout_g)),
                                                             lir_int(M, cin)), ci);
            xc[1] = blocked_in ? lir_binary(M, LIR_DIV, ch, lir_int(M, xb)) : ch;
            xc[4] = blocked_in ? lir_binary(M, LIR_REM, ch, lir_int(M, xb)) : NULL;
        }
        xv[i] = lower_var(c, "x", t);
        lir_expr *xval = xp ? lir_cast(M, t, lir_load(M, xp, lower_index(c, &xs, xc, xs.rank))) : read(c, 0, xc);
        if (!lir_seq_push(M, take, lir_let(M, xv[i], xval)))
            return lower_oom(c);
    }
    kiln_tensor pairs = pair_shape(wt);
    for (int v = 0; v < p.v; v++)
        for (int64_t q = 0; q < taps; q++) {
            lir_expr *wc[5] = {cb[v], kh, share ? lir_int(M, q) : kw, ci, nc[4]}, *wval;
            if (w_pairs) { /* [pair, KH, KW, Cin, 2, b] */
                lir_expr *pc[6] = {nc[1], wc[1], wc[2], ci, lir_int(M, v), nc[4]};
                wval = lir_load(M, w_pairs, lower_index(c, &pairs, pc, 6));
            } else {
                wval = read(c, 1, wc);
            }
            int wv = lower_var(c, "w", t);
            if (!lir_seq_push(M, take, lir_let(M, wv, wval)))
                return lower_oom(c);
            for (int64_t r = 0; r < pixels; r++) {
                lir_expr *init = num(c, t, 0);
                if (q == 0 && c->node->input_count > 2 && c->in[2])
                    init = read(c, 2, (lir_expr *[]){lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, cb[v], lir_int(M, b)), nc[4])});
                if (q == 0 && !lir_seq_push(M, inner, lir_let(M, acc[v][r] = lower_var(c, "acc", t), init)))
                    return lower_oom(c);
                int64_t i = r / p.cols * ncols + r % p.cols * sw + q * w.dilation[1]; /* share: tap q's column */
                lir_expr *sum = lir_fma(M, lir_var_ref(M, c->k, xv[share ? i : r]), lir_var_ref(M, c->k, wv),
                                        lir_var_ref(M, c->k, acc[v][r]));
                if (!lir_seq_push(M, take, lir_assign(M, acc[v][r], sum)))
                    return lower_oom(c);
            }
        }
    if (!lir_seq_push(M, inner, kh_loop))
        return lower_oom(c);
    for (int v = 0; v < p.v; v++)
        for (int64_t r = 0; r < pixels; r++) {
            lir_expr *at[5] = {nc[0], cb[v], prow[r], pcol[r], nc[4]}, *keep = NULL;
            lir_stmt *store = lower_store_out(c, at, lir_var_ref(M, c->k, acc[v][r]));
            if (groups * p.rows > oh)
                keep = lir_binary(M, LIR_LT, prow[r], lir_int(M, oh));
            if (p.segs * p.cols > ow) {
                lir_expr *in_row = lir_binary(M, LIR_LT, pcol[r], lir_int(M, ow));
                keep = keep ? lir_binary(M, LIR_AND, keep, in_row) : in_row;
            }
            if (store && keep)
                store = lir_if(M, keep, seq1(c, store), NULL);
            if (!lir_seq_push(M, inner, store))
                return lower_oom(c);
        }
    return lower_emit(c, outer);
}

/* 2-D MaxPool with contiguous windows, one output row at a time, in passes that load
 * consecutive elements (a window position per lane would gather, strided, with bounds
 * masks: 0.23 ms for the bundled CNN's first pool):
 *   rows[q]  = max over the window's rows of x[row, q - pad_left] (-inf past an edge)
 *   cols[j]  = max over the window's columns of rows[j + kw]
 *   out[ow]  = cols[ow * stride]           (stride 1: cols is the output row)
 * rows and cols are scratch per (image, channel) plane, so planes run in parallel. The max
 * is the same, however the window's elements are grouped. ResNet-18's 3x3 / 2 pool: 1.0 ->
 * 0.22 ms; output rows narrower than a vector keep the plain loop (the CNN's 8-column pool
 * took 0.10 ms plain, 0.15 ms in passes). */
static kiln_status max_pool_rows(lower_ctx *c, const shape_window *w) {
    const kiln_tensor *out = c->out_type[0], *x = c->in_type[0];
    kiln_dtype t = lower_compute_type(out->dtype);
    int64_t h = x->dims[2], wd = x->dims[3], ow = out->dims[3], sw = w->stride[1];
    int64_t cols = (ow - 1) * sw + 1, span = cols + w->kernel[1] - 1, planes = out->dims[0] * out->dims[1];
    kiln_tensor row_nest = *out;
    row_nest.dims[3] = 1;
    lir_expr *oc[KILN_MAX_RANK], *q, *kh, *j, *kw, *o;
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &row_nest, oc, &inner, &outer);
    if (st)
        return st;
    lir_buffer *rows = lir_local(M, c->k, "row_max", t, planes * span);
    lir_buffer *colm = sw > 1 ? lir_local(M, c->k, "col_max", t, planes * cols) : NULL;
    lir_expr *plane = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, oc[0], lir_int(M, out->dims[1])), oc[1]);
    lir_stmt *b1 = lir_seq(M), *k1 = lir_seq(M), *b2 = lir_seq(M), *k2 = lir_seq(M), *b3 = lir_seq(M);
    if (!rows || (sw > 1 && !colm) || !b1 || !k1 || !b2 || !k2 || !b3)
        return lower_oom(c);
    lir_stmt *l1 = loop(c, "q", span, b1, &q), *kh_loop = loop(c, "kh", w->kernel[0], k1, &kh);
    lir_stmt *l2 = loop(c, "j", sw > 1 ? cols : ow, b2, &j), *kw_loop = loop(c, "kw", w->kernel[1], k2, &kw);
    lir_stmt *l3 = sw > 1 ? loop(c, "o", ow, b3, &o) : NULL;
    /* pass 1: the window rows' max at padded column q */
    int v = lower_var(c, "v", t), m = lower_var(c, "m", t);
    lir_expr *row = lir_binary(M, LIR_ADD, lir_binary(M, LIR_SUB, lir_binary(M, LIR_MUL, oc[2], lir_int(M, w->stride[0])),
                                                      lir_int(M, w->pad_begin[0])), kh);
    lir_expr *col = lir_binary(M, LIR_SUB, q, lir_int(M, w->pad_begin[1]));
    lir_expr *inside = lir_binary(M, LIR_AND,
                                  lir_binary(M, LIR_AND, lir_binary(M, LIR_GE, row, lir_int(M, 0)), lir_binary(M, LIR_LT, row, lir_int(M, h))),
                                  lir_binary(M, LIR_AND, lir_binary(M, LIR_GE, col, lir_int(M, 0)), lir_binary(M, LIR_LT, col, lir_int(M, wd))));
    lir_expr *ic[4] = {oc[0], oc[1], row, col};
    lir_expr *rows_at = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, plane, lir_int(M, span)), q);
    if (!lir_seq_push(M, b1, lir_let(M, v, num(c, t, -INFINITY))) ||
        !lir_seq_push(M, k1, lir_if(M, inside, seq1(c, lir_assign(M, v, lir_binary(M, LIR_MAX, lir_var_ref(M, c->k, v), read(c, 0, ic)))), NULL)) ||
        !lir_seq_push(M, b1, kh_loop) || !lir_seq_push(M, b1, lir_store(M, rows, rows_at, lir_var_ref(M, c->k, v))))
        return lower_oom(c);
    /* pass 2: the window columns' max */
    lir_expr *start = sw > 1 ? j : lir_binary(M, LIR_MUL, j, lir_int(M, sw));
    lir_expr *from = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, plane, lir_int(M, span)), lir_binary(M, LIR_ADD, start, kw));
    lir_expr *yc[4] = {oc[0], oc[1], oc[2], j};
    lir_stmt *put = sw > 1 ? lir_store(M, colm, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, plane, lir_int(M, cols)), j), lir_var_ref(M, c->k, m))
                           : lower_store_out(c, yc, lir_var_ref(M, c->k, m));
    if (!lir_seq_push(M, b2, lir_let(M, m, num(c, t, -INFINITY))) ||
        !lir_seq_push(M, k2, lir_assign(M, m, lir_binary(M, LIR_MAX, lir_var_ref(M, c->k, m), lir_load(M, rows, from)))) ||
        !lir_seq_push(M, b2, kw_loop) || !lir_seq_push(M, b2, put) || !lir_seq_push(M, inner, l1) || !lir_seq_push(M, inner, l2))
        return lower_oom(c);
    if (sw > 1) { /* pass 3: every stride-th column */
        lir_expr *zc[4] = {oc[0], oc[1], oc[2], o};
        lir_expr *pick = lir_load(M, colm, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, plane, lir_int(M, cols)),
                                                     lir_binary(M, LIR_MUL, o, lir_int(M, sw))));
        if (!lir_seq_push(M, b3, lower_store_out(c, zc, pick)) || !lir_seq_push(M, inner, l3))
            return lower_oom(c);
    }
    return lower_emit(c, outer);
}

static kiln_status pool(lower_ctx *c, bool is_max) {
    const kiln_tensor *out = c->out_type[0], *x = c->in_type[0];
    bool with_arg = is_max && c->node->output_count > 1 && c->out[1];
    kiln_dtype t = lower_compute_type(out->dtype);
    const ir_attr *ks = ir_node_attr(c->node, "kernel_shape");
    shape_window w;
    kiln_status st = window(c, ks->ints, &w);
    if (st)
        return st;
    int64_t lanes = c->m->vector_bits / (8 * (int64_t)kiln_dtype_size(t));
    /* windows that never reach past the input need no bounds checks (no lane masks: the
     * vector loop's loads stay plain or strided loads rather than gathers); windows that
     * do not overlap gain nothing from max_pool_rows' shared row maxima, and strided loads
     * read them directly (the bench CNN's 2x2 / 2 pools: 0.135 -> 0.06 ms) */
    bool always_inside = true, disjoint = true;
    for (int d = 0; d < w.spatial; d++) {
        always_inside &= w.pad_begin[d] == 0 && (out->dims[d + 2] - 1) * w.stride[d] + (w.kernel[d] - 1) * w.dilation[d] < x->dims[d + 2];
        disjoint &= w.stride[d] >= (w.kernel[d] - 1) * w.dilation[d] + 1;
    }
    if (is_max && !with_arg && !(always_inside && disjoint) && w.spatial == 2 && w.dilation[0] == 1 && w.dilation[1] == 1 && lanes >= 4 &&
        ir_type_count(out) > 0 && out->dims[3] >= lanes && /* narrower rows: the passes cost more than they save */ out->dims[0] * out->dims[1] * ((out->dims[3] - 1) * w.stride[1] + w.kernel[1]) <= (1 << 22))
        return max_pool_rows(c, &w);
    lir_expr *oc[KILN_MAX_RANK], *ic[KILN_MAX_RANK], *kc[KILN_MAX_RANK], *inside;
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, out, oc, &inner, &outer)))
        return st;
    int acc = lower_var(c, "acc", t), count = lower_var(c, "count", t);
    lir_stmt *body = lir_seq(M);
    lir_stmt *kernel_loops = window_loops(c, &w, oc, ic, kc, &inside, body);
    ic[0] = oc[0], ic[1] = oc[1];
    lir_expr *v = read(c, 0, ic), *a = lir_var_ref(M, c->k, acc);
    lir_stmt *take = seq1(c, lir_assign(M, acc, is_max ? lir_binary(M, LIR_MAX, a, v) : lir_binary(M, LIR_ADD, a, v)));
    int arg = -1;
    if (with_arg) { /* the first position of the maximum, as the interpreter keeps it */
        arg = lower_var(c, "arg", KILN_I64);
        lir_expr *at = lower_index(c, x, ic, x->rank);
        if (ir_attr_int(c->node, "storage_order")) { /* spatial axes in column-major order */
            at = NULL;
            for (int d = w.spatial - 1; d >= 0; d--)
                at = at ? lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, at, lir_int(M, x->dims[d + 2])), ic[d + 2]) : ic[d + 2];
            int64_t plane = 1;
            for (int d = 2; d < x->rank; d++)
                plane *= x->dims[d];
            lir_expr *pl = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, oc[0], lir_int(M, x->dims[1])), oc[1]);
            at = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, pl, lir_int(M, plane)), at);
        }
        lir_expr *better = lir_binary(M, LIR_OR, lir_binary(M, LIR_GT, v, a),
                                      lir_binary(M, LIR_LT, lir_var_ref(M, c->k, arg), lir_int(M, 0)));
        lir_stmt *then = seq1(c, lir_assign(M, acc, v));
        if (!then || !lir_seq_push(M, then, lir_assign(M, arg, at)))
            return lower_oom(c);
        take = seq1(c, lir_if(M, better, then, NULL));
    }
    bool include_pad = !is_max && ir_attr_int(c->node, "count_include_pad");
    lir_expr *one = lir_binary(M, LIR_ADD, lir_var_ref(M, c->k, count), num(c, t, 1));
    if (!include_pad && !lir_seq_push(M, take, lir_assign(M, count, one)))
        return lower_oom(c);
    if (!lir_seq_push(M, body, always_inside ? take : lir_if(M, inside, take, NULL)))
        return lower_oom(c);
    if (include_pad) { /* count the positions inside the padded input, not past it */
        lir_expr *in_padded = NULL;
        for (int d = 0; d < w.spatial; d++) {
            lir_expr *ok = lir_binary(M, LIR_LT, ic[d + 2], lir_int(M, c->in_type[0]->dims[d + 2] + w.pad_end[d]));
            in_padded = in_padded ? lir_binary(M, LIR_AND, in_padded, ok) : ok;
        }
        if (!lir_seq_push(M, body, lir_if(M, in_padded, lir_assign(M, count, one), NULL)))
            return lower_oom(c);
    }
    lir_expr *result = is_max ? lir_var_ref(M, c->k, acc)
                              : lir_binary(M, LIR_DIV, lir_var_ref(M, c->k, acc), lir_var_ref(M, c->k, count));
    if (with_arg && !lir_seq_push(M, inner, lir_let(M, arg, lir_int(M, -1))))
        return lower_oom(c);
    if (!lir_seq_push(M, inner, lir_let(M, acc, num(c, t, is_max ? -INFINITY : 0))) ||
        !lir_seq_push(M, inner, lir_let(M, count, num(c, t, 0))) || !lir_seq_push(M, inner, kernel_loops) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank), lir_cast(M, out->dtype, result))))
        return lower_oom(c);
    if (with_arg && !lir_seq_push(M, inner, lir_store(M, c->out[1], lower_index(c, out, oc, out->rank),
                                                      lir_var_ref(M, c->k, arg))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_max_pool(lower_ctx *c) { return pool(c, true); }
kiln_status lower_average_pool(lower_ctx *c) { return pool(c, false); }
