/*
 * lower_nn.c — loop lowering of MatMul, Gemm, Conv, the pools, BatchNormalization
 * (inference), Softmax/LogSoftmax and the reductions: plain loop nests with a scalar
 * accumulator, in the output's compute type. Tiling, packing and vectorization are the
 * scheduling passes' job (issue 5); these nests are what they start from.
 */
#include "passes/lower.h"

#include <math.h>
#include <string.h>

#define M (c->m)

static lir_expr *num(lower_ctx *c, kiln_dtype t, double v) { return lir_const(M, t, v); }

#define loop lower_loop
#define seq1 lower_seq1
#define read lower_read

/* MatMul and Gemm: out[..., m, n] = finish(sum over k of A(m, k) * B(k, n)), rows in
 * blocks of GEMM_ROWS with an accumulator each, so each B element loaded serves the whole
 * block (the n loop is the one the schedule vectorizes: B and the output move by one
 * element per lane, A's element is the same for all lanes). Rows past the end of a last,
 * partial block read the last row and store nothing. Each sum runs over k in order, as
 * the interpreter's does. Packing and tiling for the caches come with issue 5's GEMM. */
enum { GEMM_ROWS = 8 };

typedef struct gemm_lowering {
    int row_dim;   /* where m is in the output's coordinates */
    int64_t depth; /* K */
    lir_expr *(*a_at)(lower_ctx *c, lir_expr **oc, lir_expr *k);
    lir_expr *(*b_at)(lower_ctx *c, lir_expr **oc, lir_expr *k);
    lir_expr *(*finish)(lower_ctx *c, lir_expr **oc, lir_expr *acc);
    bool b_shared; /* B depends only on (k, column): one matrix for every row and batch */
} gemm_lowering;

/* B's columns in tiles whose K x tile slice fits in L2 (256 KiB of it), visited outermost,
 * so that every block of rows reuses the tile from cache instead of streaming all of B
 * (1 MiB for a 256 x 1024 weight) once per block of GEMM_ROWS rows. n when B fits already
 * or no multiple of 16 divides n. */
static int64_t column_tile(int64_t k, int64_t n, int64_t esize) {
    const int64_t budget = 256 << 10;
    if (k * n * esize <= budget)
        return n;
    int64_t most = budget / (k * esize);
    for (int64_t tile = most - most % 16; tile >= 16; tile -= 16)
        if (n % tile == 0)
            return tile;
    return n;
}

/* A few rows (a vector times a matrix: ResNet's classifier at batch 1): each row's sums in
 * scratch, k outermost, so B streams by rows (consecutive loads) where a column vector at
 * a time walked down B a row stride apart, a new page each step (1000 x 512 weights: 0.56
 * -> 0.12 ms). Each sum still runs over k in order. */
static kiln_status few_rows(lower_ctx *c, const gemm_lowering *g) {
    const kiln_tensor *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(out->dtype);
    int last = out->rank - 1;
    int64_t n = out->dims[last];
    kiln_tensor rows = *out;
    rows.dims[last] = 1;
    lir_expr *oc[KILN_MAX_RANK], *p, *col, *col2, *col3;
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &rows, oc, &inner, &outer);
    if (st)
        return st;
    lir_buffer *sums = lir_local(M, c->k, "row_sums", t, ir_type_count(out));
    lir_expr *base = sums ? lir_binary(M, LIR_MUL, lower_index(c, &rows, oc, rows.rank), lir_int(M, n)) : NULL;
    lir_stmt *zero = lir_seq(M), *add = lir_seq(M), *done = lir_seq(M);
    if (!base || !zero || !add || !done)
        return lower_oom(c);
    lir_stmt *z_loop = loop(c, "n", n, zero, &col), *n_loop = loop(c, "n", n, add, &col2);
    lir_stmt *k_loop = loop(c, "p", g->depth, seq1(c, n_loop), &p), *s_loop = loop(c, "n", n, done, &col3);
    lir_expr *xc[KILN_MAX_RANK], *yc[KILN_MAX_RANK];
    memcpy(xc, oc, sizeof(lir_expr *) * (size_t)out->rank);
    memcpy(yc, oc, sizeof(lir_expr *) * (size_t)out->rank);
    xc[last] = col2, yc[last] = col3;
    lir_expr *at = lir_binary(M, LIR_ADD, base, col2), *at3 = lir_binary(M, LIR_ADD, base, col3);
    lir_expr *sum = lir_fma(M, g->a_at(c, xc, p), g->b_at(c, xc, p), lir_load(M, sums, at));
    if (!lir_seq_push(M, zero, lir_store(M, sums, lir_binary(M, LIR_ADD, base, col), num(c, t, 0))) ||
        !lir_seq_push(M, add, lir_store(M, sums, at, sum)) ||
        !lir_seq_push(M, done, lower_store_out(c, yc, g->finish(c, yc, lir_load(M, sums, at3)))) ||
        !lir_seq_push(M, inner, z_loop) || !lir_seq_push(M, inner, k_loop) || !lir_seq_push(M, inner, s_loop))
        return lower_oom(c);
    return lower_emit(c, outer);
}

static kiln_status row_blocked(lower_ctx *c, const gemm_lowering *g) {
    const kiln_tensor *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(out->dtype);
    int64_t rows = out->dims[g->row_dim];
    int block = rows < GEMM_ROWS ? (int)(rows > 0 ? rows : 1) : GEMM_ROWS;
    int last = out->rank - 1;
    int64_t n = out->dims[last], lanes = c->m->vector_bits / (8 * (int64_t)kiln_dtype_size(t));
    if (g->row_dim != last && rows < 4 && n >= lanes && lanes >= 4 && ir_type_count(out) <= (1 << 22))
        return few_rows(c, g);
    int64_t tile = g->row_dim == last ? n : column_tile(g->depth, n, (int64_t)kiln_dtype_size(t));
    /* two vectors of columns per lane loop: each A element loaded serves 2 x block
     * accumulators, each B vector `block` of them (16 independent sums to hide the FMA
     * latency, 10 loads per 16 FMAs where one vector took 9 per 8) */
    int halves = g->row_dim != last && lanes >= 8 && tile % (2 * lanes) == 0 && block == GEMM_ROWS ? 2 : 1;
    /* the nest: [N / tile if tiled, the output's dims but the last (rows in blocks),
     * then tile / (2 lanes) pairs and the lanes, or the tile's columns] */
    kiln_tensor nest = {.dtype = out->dtype};
    bool tiled = tile < n;
    if (tiled)
        nest.dims[nest.rank++] = n / tile;
    for (int d = 0; d < last; d++)
        nest.dims[nest.rank++] = d == g->row_dim ? (rows + block - 1) / block : out->dims[d];
    if (halves == 2)
        nest.dims[nest.rank++] = tile / (2 * lanes), nest.dims[nest.rank++] = lanes;
    else
        nest.dims[nest.rank++] = tile;
    if (nest.rank > KILN_MAX_RANK) { /* no room for the extra loops: one plain nest */
        tiled = false, halves = 1, tile = n, nest = *out;
        nest.dims[g->row_dim] = (rows + block - 1) / block;
    }
    /* tiled: the column tiles and the next dim are one loop (tile-major), the parallel one:
     * three tiles of a 768-column weight split 2 + 1 over two threads */
    int64_t second = tiled ? nest.dims[1] : 1;
    if (tiled) {
        nest.dims[0] *= second;
        memmove(nest.dims + 1, nest.dims + 2, sizeof(int64_t) * (size_t)(nest.rank - 2));
        nest.rank--;
    }
    lir_expr *nc[KILN_MAX_RANK], *oc[2][KILN_MAX_RANK], *rc[GEMM_ROWS][KILN_MAX_RANK], *p;
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &nest, nc, &inner, &outer);
    if (st)
        return st;
    if (tiled) {
        memmove(nc + 2, nc + 1, sizeof(lir_expr *) * (size_t)(nest.rank - 1));
        lir_expr *merged = nc[0];
        nc[0] = lir_binary(M, LIR_DIV, merged, lir_int(M, second));
        nc[1] = lir_binary(M, LIR_REM, merged, lir_int(M, second));
    }
    int at = tiled ? 1 : 0;
    lir_expr *base = tiled ? lir_binary(M, LIR_MUL, nc[0], lir_int(M, tile)) : lir_int(M, 0);
    for (int h = 0; h < halves; h++) { /* the output coordinates of each half's lane */
        memcpy(oc[h], nc + at, sizeof(lir_expr *) * (size_t)last);
        lir_expr *col = halves == 2 ? lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[at + last], lir_int(M, 2 * lanes)),
                                                 lir_binary(M, LIR_ADD, lir_int(M, h * lanes), nc[at + last + 1]))
                                    : nc[at + last];
        oc[h][last] = lir_binary(M, LIR_ADD, base, col);
    }
    /* packed B: each column tile copied once into a contiguous panel [K, tile], so the
     * k loop reads consecutive lines instead of one line a row stride apart, a new page
     * at every step (1024^3 SGEMM: 94 -> 109 GFLOP/s at 1 thread, 94% of the measured peak).
     * The copy costs about 1 / rows of the product: only for 64 rows or more (the MLP's 64
     * measured the same either way). A constant B (a layer's weights) is packed once, by
     * a kernel of its own that runs before the first run, into the persistent block: the
     * MLP at 1 thread 0.47 -> 0.40 ms, at 2 threads 0.32 -> 0.22 (its per-run copies of
     * 2.6 MB of weights were a third of the time) */
    lir_buffer *panel = NULL;
    bool packed_once = c->in[1] && c->in[1]->kind == LIR_BUF_VALUE && c->in[1]->value->init;
    if (tiled && halves == 2 && g->b_shared && (rows >= 64 || packed_once)) {
        lir_kernel *kernel = c->k;
        lir_buffer *b_in = c->in[1];
        if (packed_once) { /* the pack nest goes into its own kernel, reading the constant */
            char name[300];
            snprintf(name, sizeof name, "%s_pack", kernel->name);
            if (!(c->k = lir_kernel_add(M, name, c->node)) || !(c->in[1] = lir_param(M, c->k, b_in->value)))
                return lower_oom(c);
            c->k->once = true;
        }
        lir_expr *tt, *pk, *j, *pc[KILN_MAX_RANK];
        lir_stmt *jb = lir_seq(M);
        lir_stmt *j_loop = jb ? loop(c, "j", tile, jb, &j) : NULL;
        lir_stmt *k_pack = j_loop ? loop(c, "k", g->depth, seq1(c, j_loop), &pk) : NULL;
        lir_stmt *t_loop = k_pack ? loop(c, "tile", n / tile, seq1(c, k_pack), &tt) : NULL;
        if (!t_loop || !(panel = lir_local(M, c->k, "b_panel", t, n * g->depth)))
            return lower_oom(c);
        lower_parallel(t_loop);
        for (int d = 0; d < last; d++)
            pc[d] = lir_int(M, 0);
        pc[last] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, tt, lir_int(M, tile)), j);
        lir_expr *to = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, tt, lir_int(M, g->depth)), pk),
                                                         lir_int(M, tile)), j);
        if (!lir_seq_push(M, jb, lir_store(M, panel, to, g->b_at(c, pc, pk))) || (st = lower_emit(c, t_loop)))
            return st ? st : lower_oom(c);
        panel->persistent = packed_once;
        c->k = kernel, c->in[1] = b_in;
        if (packed_once && !lir_kernel_use(M, kernel, panel))
            return lower_oom(c);
    }
    lir_expr *first = lir_binary(M, LIR_MUL, oc[0][g->row_dim], lir_int(M, block));
    lir_stmt *body = lir_seq(M), *k_loop = loop(c, "p", g->depth, body, &p);
    int acc[2][GEMM_ROWS], bv[2];
    for (int h = 0; h < halves; h++) {
        bv[h] = lower_var(c, "b", t);
        for (int r = 0; r < block; r++) { /* row r of the block, clamped to the last row for loads */
            memcpy(rc[r], oc[h], sizeof(lir_expr *) * (size_t)out->rank);
            rc[r][g->row_dim] = lir_binary(M, LIR_MIN, lir_binary(M, LIR_ADD, first, lir_int(M, r)), lir_int(M, rows - 1));
            acc[h][r] = lower_var(c, "acc", t);
            if (!lir_seq_push(M, inner, lir_let(M, acc[h][r], num(c, t, 0))))
                return lower_oom(c);
        }
        lir_expr *bval = g->b_at(c, rc[0], p);
        if (panel) /* panel[tile][p][column in the tile] */
            bval = lir_load(M, panel, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[0],
                                                                                                                 lir_int(M, g->depth)), p),
                                                                            lir_int(M, tile)),
                                                 lir_binary(M, LIR_SUB, oc[h][last], base)));
        if (!lir_seq_push(M, body, lir_let(M, bv[h], bval)))
            return lower_oom(c);
    }
    for (int r = 0; r < block; r++) {
        lir_expr *a = g->a_at(c, rc[r], p); /* the same for both halves: the row's element */
        for (int h = 0; h < halves; h++) {
            lir_expr *sum = lir_fma(M, a, lir_var_ref(M, c->k, bv[h]), lir_var_ref(M, c->k, acc[h][r]));
            if (!lir_seq_push(M, body, lir_assign(M, acc[h][r], sum)))
                return lower_oom(c);
        }
    }
    if (!lir_seq_push(M, inner, k_loop))
        return lower_oom(c);
    for (int h = 0; h < halves; h++)
        for (int r = 0; r < block; r++) {
            lir_expr *row = lir_binary(M, LIR_ADD, first, lir_int(M, r)), *where[KILN_MAX_RANK];
            memcpy(where, oc[h], sizeof(lir_expr *) * (size_t)out->rank);
            where[g->row_dim] = row;
            lir_stmt *store = lower_store_out(c, where, g->finish(c, where, lir_var_ref(M, c->k, acc[h][r])));
            if (store && rows % block) /* a partial last block */
                store = lir_if(M, lir_binary(M, LIR_LT, row, lir_int(M, rows)), store, NULL);
            if (!lir_seq_push(M, inner, store))
                return lower_oom(c);
        }
    return lower_emit(c, outer);
}

/* MatMul: a [batch..., M, K] or [K]; b [batch..., K, N] or [K]; batch dims right-aligned. */
static int matmul_batch(const lower_ctx *c) {
    const kiln_tensor *a = c->in_type[0], *b = c->in_type[1];
    return c->out_type[0]->rank - (a->rank >= 2) - (b->rank >= 2);
}
static lir_expr *matmul_a(lower_ctx *c, lir_expr **oc, lir_expr *k) {
    const kiln_tensor *a = c->in_type[0];
    int batch = matmul_batch(c);
    lir_expr *ac[KILN_MAX_RANK];
    for (int d = 0; d < a->rank - 2; d++)
        ac[d] = oc[d + batch - (a->rank - 2)];
    if (a->rank >= 2)
        ac[a->rank - 2] = oc[batch];
    ac[a->rank - 1] = k;
    return read(c, 0, ac);
}
static lir_expr *matmul_b(lower_ctx *c, lir_expr **oc, lir_expr *k) {
    const kiln_tensor *b = c->in_type[1];
    int batch = matmul_batch(c), rank = c->out_type[0]->rank;
    lir_expr *bc[KILN_MAX_RANK];
    for (int d = 0; d < b->rank - 2; d++)
        bc[d] = oc[d + batch - (b->rank - 2)];
    bc[b->rank >= 2 ? b->rank - 2 : 0] = k;
    if (b->rank >= 2)
        bc[b->rank - 1] = oc[rank - 1];
    return read(c, 1, bc);
}
static lir_expr *plain(lower_ctx *c, lir_expr **oc, lir_expr *acc) { (void)c, (void)oc; return acc; }

kiln_status lower_matmul(lower_ctx *c) {
    const kiln_tensor *a = c->in_type[0], *b = c->in_type[1];
    gemm_lowering g = {.row_dim = matmul_batch(c), .depth = a->dims[a->rank - 1], .a_at = matmul_a, .b_at = matmul_b,
                       .finish = plain, .b_shared = b->rank == 2};
    if (a->rank < 2 || b->rank < 2) { /* a vector operand: no rows to block, one accumulator per output */
        const kiln_tensor *out = c->out_type[0];
        kiln_dtype t = lower_compute_type(out->dtype);
        lir_expr *oc[KILN_MAX_RANK], *p;
        lir_stmt *inner, *outer;
        kiln_status st = lower_nest(c, out, oc, &inner, &outer);
        if (st)
            return st;
        int acc = lower_var(c, "acc", t);
        lir_stmt *body = lir_seq(M), *k_loop = loop(c, "p", g.depth, body, &p);
        lir_expr *sum = lir_fma(M, matmul_a(c, oc, p), matmul_b(c, oc, p), lir_var_ref(M, c->k, acc));
        if (!lir_seq_push(M, body, lir_assign(M, acc, sum)) ||
            !lir_seq_push(M, inner, lir_let(M, acc, num(c, t, 0))) || !lir_seq_push(M, inner, k_loop) ||
            !lir_seq_push(M, inner, lower_store_out(c, oc, lir_var_ref(M, c->k, acc))))
            return lower_oom(c);
        return lower_emit(c, outer);
    }
    return row_blocked(c, &g);
}

/* Gemm: alpha * op(A) op(B) + beta * C, op transposing when transA / transB say. */
static lir_expr *gemm_a(lower_ctx *c, lir_expr **oc, lir_expr *k) {
    bool ta = ir_attr_int(c->node, "transA");
    lir_expr *ac[2] = {ta ? k : oc[0], ta ? oc[0] : k};
    return read(c, 0, ac);
}
static lir_expr *gemm_b(lower_ctx *c, lir_expr **oc, lir_expr *k) {
    bool tb = ir_attr_int(c->node, "transB");
    lir_expr *bc[2] = {tb ? oc[1] : k, tb ? k : oc[1]};
    return read(c, 1, bc);
}
static lir_expr *gemm_finish(lower_ctx *c, lir_expr **oc, lir_expr *acc) {
    kiln_dtype t = acc->type;
    lir_expr *y = lir_binary(M, LIR_MUL, num(c, t, ir_attr_float(c->node, "alpha")), acc);
    if (c->node->input_count > 2 && c->in[2]) {
        lir_expr *bias = lir_load(M, c->in[2], lower_index(c, c->in_type[2], oc, 2));
        y = lir_binary(M, LIR_ADD, y, lir_binary(M, LIR_MUL, num(c, t, ir_attr_float(c->node, "beta")), lir_cast(M, t, bias)));
    }
    return y;
}

kiln_status lower_gemm(lower_ctx *c) {
    gemm_lowering g = {.row_dim = 0, .depth = c->in_type[0]->dims[ir_attr_int(c->node, "transA") ? 0 : 1],
                       .a_at = gemm_a, .b_at = gemm_b, .finish = gemm_finish, .b_shared = true};
    return row_blocked(c, &g);
}

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
 * (83.9 ms). GEMM_ROWS stays 8: 12 and 16 measured no better on the Transformer, MLP and
 * LSTM models. */
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
 * (W is packed [Cout / b, KH, KW, Cin, b]: the loads stream through it in order) and R
 * input elements, each the same for every lane (a broadcast), for V R multiply-adds. The
 * R pixels are a segment of one output row or, on images narrower than half a segment,
 * several whole rows: either way constant offsets from one base. Where the conv pads, or
 * a last, partial block would read past the input, the input (NCHW or blocked) is first
 * copied with its zero padding, so no load needs a bounds check, and with slack past its
 * end for the partial block's pixels, which load what lies there and store nothing. Each
 * sum runs over (kh, kw, ci), input channels innermost. */
/* V = 2, R = 8: LLVM loads the R input elements of a step before its multiply-adds, so
 * V R + V + R registers are live of 32. On 3x3 convs at 1 thread (GFLOP/s for 64 channels
 * 56x56, 256 at 14x14, 512 at 7x7; peak 215): V 2 R 8: 206, 206, 191 (R = 7 there);
 * R 10: 191, 205, 179; R 14: 105, 145, 84 (spills); V 4 R 5: 187, 189, 124; V 1 R 15:
 * 161, 185, 116. The old row schedule: about 180, 180, 153. */
typedef struct nchwc_plan {
    int v;                  /* channel blocks per lane loop */
    int64_t rows, cols, segs; /* per block: rows x cols pixels; segments per output row */
} nchwc_plan;

static nchwc_plan plan_nchwc(int64_t blocks, int64_t oh, int64_t ow) {
    nchwc_plan p = {.v = blocks % 2 == 0 ? 2 : 1};
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
    int64_t oh = out->dims[2], ow = out->dims[3];
    nchwc_plan p = plan_nchwc(blocks, oh, ow);
    int64_t groups = (oh + p.rows - 1) / p.rows, wp = x->dims[3] + w.pad_begin[1] + w.pad_end[1];
    int64_t slack = ((p.rows * w.stride[0] + 1) * wp + p.segs * p.cols * w.stride[1] + w.kernel[1] * w.dilation[1]) * xb;
    /* On several threads, small weights: the rows in parallel, each thread on the rows the
     * previous conv's thread wrote (its own cache), every thread reading all the weights.
     * Large weights: the channel blocks in parallel, each thread streaming its share of them.
     * At 2 threads, GFLOP/s rows / channels: 64ch 56x56 3x3 (147 KiB of weights) 366 / 330,
     * 64->128 3x3 / 2 (295 KiB) 329 / 227, 128ch 28x28 (576 KiB) 378 / 359, 256ch 14x14
     * (2.3 MiB) 345 / 383, 512ch 7x7 (9.2 MiB) 296 / 362; at 1 thread channels first
     * measured 3-5% faster. */
    bool rows_outer = M->threads != 1 && groups >= 2 && ir_type_count(wt) * 4 <= (1 << 20);
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
    lir_expr *nc[5], *ci, *cib = NULL, *cl = NULL, *kh, *kw;
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
    if (blocked_in) { /* ci = block * xb + lane of the input's block: no division per step */
        lir_stmt *cl_loop = loop(c, "cl", xb, take, &cl);
        ci_loop = loop(c, "cb", cin / xb, seq1(c, cl_loop), &cib);
        ci = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, cib, lir_int(M, xb)), cl);
    } else {
        ci_loop = loop(c, "ci", cin, take, &ci);
    }
    lir_stmt *kw_loop = loop(c, "kw", w.kernel[1], seq1(c, ci_loop), &kw);
    lir_stmt *kh_loop = loop(c, "kh", w.kernel[0], seq1(c, kw_loop), &kh);
    if (!take || !kh_loop)
        return lower_oom(c);
    lir_expr *row0 = lir_binary(M, LIR_MUL, nc[2], lir_int(M, p.rows));
    lir_expr *col0 = lir_binary(M, LIR_MUL, nc[3], lir_int(M, p.cols));
    int64_t pixels = p.rows * p.cols;
    int xv[12], acc[2][12];
    lir_expr *prow[12], *pcol[12];
    for (int64_t r = 0; r < pixels; r++) { /* pixel r's input element, the same for all lanes */
        prow[r] = lir_binary(M, LIR_ADD, row0, lir_int(M, r / p.cols));
        pcol[r] = lir_binary(M, LIR_ADD, col0, lir_int(M, r % p.cols));
        lir_expr *ih = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, prow[r], lir_int(M, w.stride[0])),
                                  lir_binary(M, LIR_MUL, kh, lir_int(M, w.dilation[0])));
        lir_expr *iw = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, pcol[r], lir_int(M, w.stride[1])),
                                  lir_binary(M, LIR_MUL, kw, lir_int(M, w.dilation[1])));
        lir_expr *xc[5] = {nc[0], blocked_in ? cib : ci, ih, iw, cl}; /* blocked: [n, ci / xb, ih, iw, ci % xb] */
        xv[r] = lower_var(c, "x", t);
        lir_expr *xval = xp ? lir_cast(M, t, lir_load(M, xp, lower_index(c, &xs, xc, xs.rank))) : read(c, 0, xc);
        if (!lir_seq_push(M, take, lir_let(M, xv[r], xval)))
            return lower_oom(c);
    }
    lir_expr *cb[2];
    for (int v = 0; v < p.v; v++) {
        cb[v] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[1], lir_int(M, p.v)), lir_int(M, v));
        lir_expr *wc[5] = {cb[v], kh, kw, ci, nc[4]}, *weight = read(c, 1, wc), *init = num(c, t, 0);
        if (c->node->input_count > 2 && c->in[2])
            init = read(c, 2, (lir_expr *[]){lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, cb[v], lir_int(M, b)), nc[4])});
        int wv = lower_var(c, "w", t);
        if (!lir_seq_push(M, take, lir_let(M, wv, weight)))
            return lower_oom(c);
        for (int64_t r = 0; r < pixels; r++) {
            acc[v][r] = lower_var(c, "acc", t);
            lir_expr *sum = lir_fma(M, lir_var_ref(M, c->k, xv[r]), lir_var_ref(M, c->k, wv), lir_var_ref(M, c->k, acc[v][r]));
            if (!lir_seq_push(M, inner, lir_let(M, acc[v][r], init)) || !lir_seq_push(M, take, lir_assign(M, acc[v][r], sum)))
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

/* The largest (or smallest) value of integer type t: where a float reduction starts
 * from -inf (or inf). */
static lir_expr *int_limit(lower_ctx *c, kiln_dtype t, bool largest) {
    int64_t lo, hi;
    switch (t) {
    case KILN_I8: lo = INT8_MIN, hi = INT8_MAX; break;
    case KILN_I16: lo = INT16_MIN, hi = INT16_MAX; break;
    case KILN_I32: lo = INT32_MIN, hi = INT32_MAX; break;
    case KILN_U8: lo = 0, hi = UINT8_MAX; break;
    case KILN_U16: lo = 0, hi = UINT16_MAX; break;
    case KILN_U32: lo = 0, hi = UINT32_MAX; break;
    case KILN_U64: lo = 0, hi = -1; break; /* all ones */
    case KILN_BOOL: lo = 0, hi = 1; break;
    default: lo = INT64_MIN, hi = INT64_MAX; break;
    }
    return lir_int_const(M, t, largest ? hi : lo);
}

/* Reduces input 0 over the axes marked in `mask`, combining with `op` from `init`;
 * finish maps the accumulator (and the element count) to the result. */
typedef lir_expr *(*finish_fn)(lower_ctx *c, lir_expr *acc, int64_t count, lir_expr *shift);

/* A float sum, max or min over axes that include the last, contiguous one: W partial
 * results per output (one per vector lane), each lane folding every W-th element of the
 * rows, then the W partials folded in order. The lane loop is a vector loop (its partials
 * load and store at one index per lane), where a single accumulator would serialize on
 * its own additions. A sum's order changes (it is usually more accurate so). Merging the
 * trailing reduced axes into one row was tried and is slower: coordinates recovered by
 * division make the loads gathers. */
static kiln_status reduce_lanes(lower_ctx *c, const bool *mask, lir_op op, lir_expr *start, bool square,
                                bool absolute, finish_fn finish, int64_t count, const kiln_tensor *kept, int64_t w) {
    const kiln_tensor *x = c->in_type[0], *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(x->dtype);
    kiln_tensor rows = {.dtype = x->dtype}; /* the reduced axes but the last */
    for (int d = 0; d < x->rank - 1; d++)
        if (mask[d])
            rows.dims[rows.rank++] = x->dims[d];
    int64_t len = x->dims[x->rank - 1], blocks = (len + w - 1) / w;
    lir_expr *oc[KILN_MAX_RANK], *rc[KILN_MAX_RANK], *xc[KILN_MAX_RANK], *lane, *blk, *lane2, *lane3;
    lir_stmt *inner, *outer, *r_inner, *r_outer;
    kiln_status st;
    if ((st = lower_nest(c, kept, oc, &inner, &outer)) || (st = lower_nest(c, &rows, rc, &r_inner, &r_outer)))
        return st;
    lir_buffer *part = lir_local(M, c->k, "partial", t, ir_type_count(kept) * w);
    lir_expr *base = part ? lir_binary(M, LIR_MUL, lower_index(c, kept, oc, kept->rank), lir_int(M, w)) : NULL;
    lir_stmt *init_body = lir_seq(M), *blk_body = lir_seq(M), *lane_body = lir_seq(M), *fold_body = lir_seq(M);
    if (!base || !init_body || !blk_body || !lane_body || !fold_body)
        return lower_oom(c);
    lir_stmt *init_loop = loop(c, "lane", w, init_body, &lane), *blk_loop = loop(c, "block", blocks, blk_body, &blk);
    lir_stmt *lane_loop = loop(c, "lane", w, lane_body, &lane2), *fold_loop = loop(c, "lane", w, fold_body, &lane3);
    lir_expr *j = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, blk, lir_int(M, w)), lane2);
    for (int d = 0, r = 0; d < x->rank - 1; d++)
        xc[d] = mask[d] ? rc[r++] : oc[d];
    xc[x->rank - 1] = j;
    lir_expr *v = read(c, 0, xc);
    if (square)
        v = lir_binary(M, LIR_MUL, v, v);
    if (absolute)
        v = lir_unary(M, LIR_ABS, v);
    lir_expr *at = lir_binary(M, LIR_ADD, base, lane2);
    lir_stmt *update = lir_store(M, part, at, lir_binary(M, op, lir_load(M, part, at), v));
    if (len % w) /* the last block's lanes past the row do nothing (masked off) */
        update = lir_if(M, lir_binary(M, LIR_LT, j, lir_int(M, len)), lower_seq1(c, update), NULL);
    int acc = lower_var(c, "acc", t);
    lir_expr *result = finish(c, lir_var_ref(M, c->k, acc), count, NULL);
    if (!lir_seq_push(M, init_body, lir_store(M, part, lir_binary(M, LIR_ADD, base, lane), start)) ||
        !lir_seq_push(M, lane_body, update) || !lir_seq_push(M, blk_body, lane_loop) ||
        !lir_seq_push(M, r_inner, blk_loop) || !lir_seq_push(M, inner, init_loop) ||
        !lir_seq_push(M, inner, r_outer) || !lir_seq_push(M, inner, lir_let(M, acc, start)) ||
        !lir_seq_push(M, fold_body, lir_assign(M, acc, lir_binary(M, op, lir_var_ref(M, c->k, acc),
                                                                  lir_load(M, part, lir_binary(M, LIR_ADD, base, lane3))))) ||
        !lir_seq_push(M, inner, fold_loop) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, kept, oc, kept->rank), lir_cast(M, out->dtype, result))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

static kiln_status reduce(lower_ctx *c, const bool *mask, lir_op op, double init, bool square, bool absolute,
                          bool shifted, finish_fn finish) {
    const kiln_tensor *x = c->in_type[0], *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(x->dtype);
    kiln_tensor kept = {.dtype = x->dtype, .rank = x->rank}, reduced = {.dtype = x->dtype};
    int64_t count = 1;
    for (int d = 0; d < x->rank; d++) {
        kept.dims[d] = mask[d] ? 1 : x->dims[d];
        if (mask[d]) {
            reduced.dims[reduced.rank++] = x->dims[d];
            count *= x->dims[d];
        }
    }
    int64_t lanes = c->m->vector_bits / (8 * (int64_t)kiln_dtype_size(t)), len = x->rank ? x->dims[x->rank - 1] : 0;
    if (!shifted && ir_dtype_is_float(t) && (op == LIR_ADD || op == LIR_MAX || op == LIR_MIN) && lanes >= 4 &&
        x->rank && mask[x->rank - 1] && len >= lanes / 2 && ir_type_count(&kept) * lanes <= (1 << 20))
        return reduce_lanes(c, mask, op, num(c, t, init), square, absolute, finish, count, &kept, lanes);
    lir_expr *oc[KILN_MAX_RANK], *rc[KILN_MAX_RANK], *xc[KILN_MAX_RANK];
    lir_stmt *inner, *outer, *r_inner, *r_outer, *s_inner = NULL, *s_outer = NULL;
    kiln_status st;
    if ((st = lower_nest(c, &kept, oc, &inner, &outer)) || (st = lower_nest(c, &reduced, rc, &r_inner, &r_outer)))
        return st;
    for (int d = 0, r = 0; d < x->rank; d++)
        xc[d] = mask[d] ? rc[r++] : oc[d];
    lir_expr *v = read(c, 0, xc);
    int acc = lower_var(c, "acc", t), shift = -1;
    if (shifted) { /* log-sum-exp: a first pass finds the max */
        lir_expr *sc[KILN_MAX_RANK], *yc[KILN_MAX_RANK];
        if ((st = lower_nest(c, &reduced, sc, &s_inner, &s_outer)))
            return st;
        for (int d = 0, r = 0; d < x->rank; d++)
            yc[d] = mask[d] ? sc[r++] : oc[d];
        shift = lower_var(c, "shift", t);
        lir_expr *m = lir_binary(M, LIR_MAX, lir_var_ref(M, c->k, shift), read(c, 0, yc));
        if (!lir_seq_push(M, inner, lir_let(M, shift, num(c, t, -INFINITY))) ||
            !lir_seq_push(M, s_inner, lir_assign(M, shift, m)) || !lir_seq_push(M, inner, s_outer))
            return lower_oom(c);
        /* an all -inf (or empty) row keeps its shift out of the exp */
        lir_expr *safe = lir_select(M, lir_binary(M, LIR_EQ, lir_var_ref(M, c->k, shift), num(c, t, -INFINITY)),
                                    num(c, t, 0), lir_var_ref(M, c->k, shift));
        v = lir_call(M, LIR_EXP, lir_binary(M, LIR_SUB, v, safe), NULL);
    }
    if (square)
        v = lir_binary(M, LIR_MUL, v, v);
    if (absolute)
        v = lir_unary(M, LIR_ABS, v);
    lir_expr *result = finish(c, lir_var_ref(M, c->k, acc), count, shift >= 0 ? lir_var_ref(M, c->k, shift) : NULL);
    lir_expr *start = isinf(init) && !ir_dtype_is_float(t) ? int_limit(c, t, init > 0) : num(c, t, init);
    if (!lir_seq_push(M, inner, lir_let(M, acc, start)) ||
        !lir_seq_push(M, r_inner, lir_assign(M, acc, lir_binary(M, op, lir_var_ref(M, c->k, acc), v))) ||
        !lir_seq_push(M, inner, r_outer) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, &kept, oc, kept.rank), lir_cast(M, out->dtype, result))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

static lir_expr *fin_id(lower_ctx *c, lir_expr *a, int64_t n, lir_expr *s) { (void)c, (void)n, (void)s; return a; }
static lir_expr *fin_mean(lower_ctx *c, lir_expr *a, int64_t n, lir_expr *s) {
    (void)s;
    return lir_binary(M, LIR_DIV, a, num(c, a->type, (double)n));
}
static lir_expr *fin_sqrt(lower_ctx *c, lir_expr *a, int64_t n, lir_expr *s) { (void)n, (void)s; return lir_call(M, LIR_SQRT, a, NULL); }
static lir_expr *fin_log(lower_ctx *c, lir_expr *a, int64_t n, lir_expr *s) { (void)n, (void)s; return lir_call(M, LIR_LOG, a, NULL); }
static lir_expr *fin_lse(lower_ctx *c, lir_expr *a, int64_t n, lir_expr *s) {
    (void)n; /* log(sum) + shift, or the shift itself when it is infinite */
    lir_expr *is_inf = lir_binary(M, LIR_EQ, lir_unary(M, LIR_ABS, s), num(c, a->type, INFINITY));
    return lir_select(M, is_inf, s, lir_binary(M, LIR_ADD, lir_call(M, LIR_LOG, a, NULL), s));
}

typedef struct reduction {
    lir_op op;
    double init;
    bool square, absolute, shifted, float_only;
    finish_fn finish;
} reduction;

static kiln_status reduce_node(lower_ctx *c, reduction r) {
    bool mask[KILN_MAX_RANK], identity, known;
    shape_ctx s = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    kiln_status st = shape_reduce_axes(&s, mask, &identity, &known);
    if (st)
        return st;
    if (!known)
        return lower_error(c, KILN_ERR_UNSUPPORTED, "reduction axes must be constants to compile");
    if (identity)
        memset(mask, 0, sizeof mask);
    if (!ir_dtype_is_float(c->in_type[0]->dtype) && r.float_only)
        return lower_error(c, KILN_ERR_UNSUPPORTED, "integer %s has no loop lowering yet", ir_op_table[c->node->op].name);
    return reduce(c, mask, r.op, r.init, r.square, r.absolute, r.shifted, r.finish);
}

kiln_status lower_reduce_sum(lower_ctx *c) { return reduce_node(c, (reduction){LIR_ADD, 0, false, false, false, false, fin_id}); }
kiln_status lower_reduce_mean(lower_ctx *c) { return reduce_node(c, (reduction){LIR_ADD, 0, false, false, false, true, fin_mean}); }
kiln_status lower_reduce_max(lower_ctx *c) { return reduce_node(c, (reduction){LIR_MAX, -INFINITY, false, false, false, false, fin_id}); }
kiln_status lower_reduce_min(lower_ctx *c) { return reduce_node(c, (reduction){LIR_MIN, INFINITY, false, false, false, false, fin_id}); }
kiln_status lower_reduce_prod(lower_ctx *c) { return reduce_node(c, (reduction){LIR_MUL, 1, false, false, false, false, fin_id}); }
kiln_status lower_reduce_l1(lower_ctx *c) { return reduce_node(c, (reduction){LIR_ADD, 0, false, true, false, false, fin_id}); }
kiln_status lower_reduce_l2(lower_ctx *c) { return reduce_node(c, (reduction){LIR_ADD, 0, true, false, false, true, fin_sqrt}); }
kiln_status lower_reduce_sum_square(lower_ctx *c) { return reduce_node(c, (reduction){LIR_ADD, 0, true, false, false, false, fin_id}); }
kiln_status lower_reduce_log_sum(lower_ctx *c) { return reduce_node(c, (reduction){LIR_ADD, 0, false, false, false, true, fin_log}); }
kiln_status lower_reduce_log_sum_exp(lower_ctx *c) { return reduce_node(c, (reduction){LIR_ADD, 0, false, false, true, true, fin_lse}); }

static kiln_status global_pool(lower_ctx *c, bool is_max) {
    bool mask[KILN_MAX_RANK] = {0};
    for (int d = 2; d < c->in_type[0]->rank; d++)
        mask[d] = true;
    return is_max ? reduce(c, mask, LIR_MAX, -INFINITY, false, false, false, fin_id)
                  : reduce(c, mask, LIR_ADD, 0, false, false, false, fin_mean);
}
kiln_status lower_global_average_pool(lower_ctx *c) { return global_pool(c, false); }
kiln_status lower_global_max_pool(lower_ctx *c) { return global_pool(c, true); }

/* Training mode, per channel: the batch's mean and population variance over N and the
 * spatial axes (sums in f64, as the interpreter), the running statistics moved toward them
 * by (1 - momentum), then the normalized outputs. */
static kiln_status batch_norm_training(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *out = c->out_type[0];
    kiln_tensor plane = *x; /* the elements of one channel */
    plane.dims[1] = 1;
    int64_t count = kiln_tensor_count(&plane);
    double momentum = ir_attr_float(c->node, "momentum"), eps = ir_attr_float(c->node, "epsilon");
    lir_expr *k, *sc[KILN_MAX_RANK], *nc[KILN_MAX_RANK];
    lir_stmt *s_inner, *s_outer, *n_inner, *n_outer;
    kiln_status st;
    if ((st = lower_nest(c, &plane, sc, &s_inner, &s_outer)) || (st = lower_nest(c, &plane, nc, &n_inner, &n_outer)))
        return st;
    lower_serial(s_outer), lower_serial(n_outer);
    lir_stmt *body = lir_seq(M), *ch_loop = loop(c, "ch", x->dims[1], body, &k);
    if (!ch_loop)
        return lower_oom(c);
    lower_parallel(ch_loop); /* channels are independent */
    sc[1] = nc[1] = k;
    lir_expr *ch[1] = {k};
    int sum = lower_var(c, "sum", KILN_F64), sq = lower_var(c, "sq", KILN_F64);
    int mean = lower_var(c, "mean", KILN_F64), var = lower_var(c, "var", KILN_F64);
#define V(id) lir_var_ref(M, c->k, id)
#define D(v) num(c, KILN_F64, v)
    lir_expr *xv = lir_cast(M, KILN_F64, read(c, 0, sc));
    if (!lir_seq_push(M, s_inner, lir_assign(M, sum, lir_binary(M, LIR_ADD, V(sum), xv))) ||
        !lir_seq_push(M, s_inner, lir_assign(M, sq, lir_binary(M, LIR_ADD, V(sq), lir_binary(M, LIR_MUL, xv, xv)))))
        return lower_oom(c);
    lir_expr *m = lir_binary(M, LIR_DIV, V(sum), D((double)count));
    lir_expr *vv = lir_binary(M, LIR_SUB, lir_binary(M, LIR_DIV, V(sq), D((double)count)), lir_binary(M, LIR_MUL, V(mean), V(mean)));
    if (!count)
        m = D(0), vv = D(0);
    if (!lir_seq_push(M, body, lir_let(M, sum, D(0))) || !lir_seq_push(M, body, lir_let(M, sq, D(0))) ||
        !lir_seq_push(M, body, s_outer) || !lir_seq_push(M, body, lir_let(M, mean, m)) ||
        !lir_seq_push(M, body, lir_let(M, var, vv)))
        return lower_oom(c);
    for (int o = 1; o <= 2 && o < c->node->output_count; o++) {
        if (!c->out[o])
            continue;
        lir_expr *run = lir_cast(M, KILN_F64, read(c, o + 2, ch)); /* input 3: mean, 4: var */
        lir_expr *moved = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, run, D(momentum)),
                                     lir_binary(M, LIR_MUL, V(o == 1 ? mean : var), D(1 - momentum)));
        if (!lir_seq_push(M, body, lir_store(M, c->out[o], k, lir_cast(M, c->out_type[o]->dtype, moved))))
            return lower_oom(c);
    }
    lir_expr *norm = lir_binary(M, LIR_DIV, lir_binary(M, LIR_SUB, lir_cast(M, KILN_F64, read(c, 0, nc)), V(mean)),
                                lir_call(M, LIR_SQRT, lir_binary(M, LIR_ADD, V(var), D(eps)), NULL));
    lir_expr *y = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, norm, lir_cast(M, KILN_F64, read(c, 1, ch))),
                             lir_cast(M, KILN_F64, read(c, 2, ch)));
#undef V
#undef D
    if (!lir_seq_push(M, n_inner, lir_store(M, c->out[0], lower_index(c, out, nc, out->rank), lir_cast(M, out->dtype, y))) ||
        !lir_seq_push(M, body, n_outer))
        return lower_oom(c);
    return lower_emit(c, ch_loop);
}

kiln_status lower_batch_norm(lower_ctx *c) {
    if (ir_attr_int(c->node, "training_mode"))
        return batch_norm_training(c);
    const kiln_tensor *out = c->out_type[0];
    if (!lower_scalar_rule(c->node))
        return lower_error(c, KILN_ERR_SHAPE, "BatchNormalization needs an input of rank 2 or more");
    lir_expr *oc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, out, oc, &inner, &outer);
    if (st)
        return st;
    lir_expr *ch[1] = {oc[1]}, *x[5] = {read(c, 0, oc)}; /* the parameters per channel */
    for (int i = 1; i < 5; i++)
        x[i] = read(c, i, ch);
    lir_expr *y = lower_scalar_rule(c->node)(c, x); /* the formula fusion uses too */
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank), lir_cast(M, out->dtype, y))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* op over part[base + lo .. base + hi) as a balanced tree: log2(w) dependent steps where a
 * running fold took w (the attention kernel's two folds per row and key block). */
static lir_expr *fold_tree(lower_ctx *c, lir_buffer *part, lir_expr *base, lir_op op, int64_t lo, int64_t hi) {
    if (hi - lo == 1)
        return lir_load(M, part, lir_binary(M, LIR_ADD, base, lir_int(M, lo)));
    int64_t mid = lo + (hi - lo) / 2;
    return lir_max_any(M, op, fold_tree(c, part, base, op, lo, mid), fold_tree(c, part, base, op, mid, hi));
}

lir_stmt *lower_lane_pass(lower_ctx *c, lir_buffer *part, lir_expr *base, lir_expr *len, int64_t w, lir_op op,
                          lir_expr *start, lower_lane_fn value, void *arg, int acc) {
    lir_expr *lane, *blk;
    bool known = len->kind == LIR_CONST, ragged = !known || len->i % w;
    lir_expr *blocks = known ? lir_int(M, (len->i + w - 1) / w)
                             : lir_binary(M, LIR_DIV, lir_binary(M, LIR_ADD, len, lir_int(M, w - 1)), lir_int(M, w));
    int blk_var = lower_var(c, "block", KILN_I64), a = lower_var(c, "lane_acc", start->type);
    lir_stmt *s = lir_seq(M), *lane_body = lir_seq(M), *blk_body = lir_seq(M);
    if (!s || !lane_body || !blk_body || !blocks)
        return NULL;
    /* the lane loop outside, the blocks inside: each lane's partial is a register (a scalar
     * declared in the vector loop), where a partial in memory carried every block's result
     * through a store and a load */
    lir_stmt *blk_loop = lir_for(M, blk_var, lir_int(M, 0), blocks, blk_body), *lane_loop = loop(c, "lane", w, lane_body, &lane);
    if (!blk_loop || !lane_loop || !(blk = lir_var_ref(M, c->k, blk_var)))
        return NULL;
    lir_expr *j = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, blk, lir_int(M, w)), lane);
    lir_stmt *body = ragged ? lir_seq(M) : blk_body; /* the last block's lanes past the row: masked off */
    lir_expr *v = body ? value(c, j, body, arg) : NULL, *av = lir_var_ref(M, c->k, a);
    if (!v || !lir_seq_push(M, body, lir_assign(M, a, lir_max_any(M, op, av, v))) ||
        (ragged && !lir_seq_push(M, blk_body, lir_if(M, lir_binary(M, LIR_LT, j, len), body, NULL))) ||
        !lir_seq_push(M, lane_body, lir_let(M, a, start)) || !lir_seq_push(M, lane_body, blk_loop) ||
        !lir_seq_push(M, lane_body, lir_store(M, part, lir_binary(M, LIR_ADD, base, lane), av)) ||
        !lir_seq_push(M, s, lane_loop) || !lir_seq_push(M, s, lir_let(M, acc, fold_tree(c, part, base, op, 0, w))))
        return NULL;
    return s;
}

/* Softmax over a contiguous last axis, each pass a vector loop of lane partials: the max,
 * then exp(x - max) stored in the output as the partial sums add it up (Softmax; for
 * LogSoftmax only summed), then the output scaled by 1 / sum (or x - max - log(sum)). Used
 * when the output holds the compute type, so the stored exponentials lose nothing. */
typedef struct softmax_row {
    lir_expr **xc;
    int axis, mx;
    bool store; /* Softmax: keep exp(x - max) in the output */
    const kiln_tensor *x;
} softmax_row;

static lir_expr *softmax_at(lower_ctx *c, softmax_row *r, lir_expr *j) {
    r->xc[r->axis] = j;
    return lower_index(c, r->x, r->xc, r->x->rank);
}

static lir_expr *row_max_value(lower_ctx *c, lir_expr *j, lir_stmt *body, void *arg) {
    (void)body;
    return lir_load(M, c->in[0], softmax_at(c, arg, j));
}

static lir_expr *row_exp_value(lower_ctx *c, lir_expr *j, lir_stmt *body, void *arg) {
    softmax_row *r = arg;
    lir_expr *at = softmax_at(c, r, j);
    lir_expr *e = lir_call(M, LIR_EXP, lir_binary(M, LIR_SUB, lir_load(M, c->in[0], at), lir_var_ref(M, c->k, r->mx)), NULL);
    if (!r->store)
        return e;
    int ev = lower_var(c, "e", r->x->dtype);
    if (!lir_seq_push(M, body, lir_let(M, ev, e)) || !lir_seq_push(M, body, lir_store(M, c->out[0], at, lir_var_ref(M, c->k, ev))))
        return NULL;
    return lir_var_ref(M, c->k, ev);
}

static kiln_status softmax_lanes(lower_ctx *c, bool log_out, int axis, int64_t w) {
    const kiln_tensor *x = c->in_type[0];
    kiln_tensor rows = *x;
    rows.dims[axis] = 1;
    int64_t len = x->dims[axis];
    lir_expr *oc[KILN_MAX_RANK], *xc[KILN_MAX_RANK], *j;
    lir_stmt *inner, *outer, *b3 = lir_seq(M);
    kiln_status st;
    if ((st = lower_nest(c, &rows, oc, &inner, &outer)))
        return st;
    memcpy(xc, oc, sizeof(lir_expr *) * (size_t)x->rank);
    lir_buffer *part = lir_local(M, c->k, "partial", x->dtype, ir_type_count(&rows) * w);
    lir_expr *base = part ? lir_binary(M, LIR_MUL, lower_index(c, &rows, oc, rows.rank), lir_int(M, w)) : NULL;
    int mx = lower_var(c, "max", x->dtype), sum = lower_var(c, "sum", x->dtype);
    softmax_row r = {xc, axis, mx, !log_out, x};
    lir_stmt *l3 = b3 ? loop(c, "j", len, b3, &j) : NULL;
    if (!base || !l3)
        return lower_oom(c);
    lir_stmt *p1 = lower_lane_pass(c, part, base, lir_int(M, len), w, LIR_MAX, num(c, x->dtype, -INFINITY), row_max_value, &r, mx);
    lir_stmt *p2 = lower_lane_pass(c, part, base, lir_int(M, len), w, LIR_ADD, num(c, x->dtype, 0), row_exp_value, &r, sum);
    if (!p1 || !p2)
        return lower_oom(c);
    lir_expr *at = softmax_at(c, &r, j);
    lir_expr *y = log_out ? lir_binary(M, LIR_SUB, lir_binary(M, LIR_SUB, lir_load(M, c->in[0], at), lir_var_ref(M, c->k, mx)),
                                       lir_call(M, LIR_LOG, lir_var_ref(M, c->k, sum), NULL))
                          : lir_binary(M, LIR_MUL, lir_load(M, c->out[0], at),
                                       lir_binary(M, LIR_DIV, num(c, x->dtype, 1), lir_var_ref(M, c->k, sum)));
    if (!lir_seq_push(M, inner, p1) || !lir_seq_push(M, inner, p2) || !lir_seq_push(M, b3, lir_store(M, c->out[0], at, y)) || !lir_seq_push(M, inner, l3))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* Softmax along one axis: per row, the max, the sum of exponentials, then the outputs. */
static kiln_status softmax(lower_ctx *c, bool log_out) {
    const kiln_tensor *x = c->in_type[0];
    kiln_dtype t = lower_compute_type(x->dtype);
    int axis;
    shape_ctx s = {c->node, c->in_type, 1, NULL, 0, c->d};
    kiln_status st = shape_axis(&s, ir_attr_int(c->node, "axis"), x->rank, "axis", &axis);
    if (st)
        return st;
    int64_t lanes = c->m->vector_bits / (8 * (int64_t)kiln_dtype_size(t));
    if (x->rank && axis == x->rank - 1 && t == x->dtype && ir_dtype_is_float(t) && lanes >= 4 &&
        x->dims[axis] >= lanes / 2 && ir_type_count(x) / x->dims[axis] * lanes <= (1 << 20))
        return softmax_lanes(c, log_out, axis, lanes);
    kiln_tensor rows = *x;
    if (x->rank)
        rows.dims[axis] = 1;
    lir_expr *oc[KILN_MAX_RANK], *xc[KILN_MAX_RANK], *j;
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, &rows, oc, &inner, &outer)))
        return st;
    int64_t len = x->rank ? x->dims[axis] : 1;
    int mx = lower_var(c, "max", t), sum = lower_var(c, "sum", t);
    lir_stmt *b1 = lir_seq(M), *b2 = lir_seq(M), *b3 = lir_seq(M);
    lir_stmt *l1 = loop(c, "j", len, b1, &j);
    for (int d = 0; d < x->rank; d++)
        xc[d] = d == axis ? j : oc[d];
    lir_expr *v1 = read(c, 0, xc);
    lir_expr *j2, *j3, *xc2[KILN_MAX_RANK], *xc3[KILN_MAX_RANK];
    lir_stmt *l2 = loop(c, "j", len, b2, &j2), *l3 = loop(c, "j", len, b3, &j3);
    for (int d = 0; d < x->rank; d++) {
        xc2[d] = d == axis ? j2 : oc[d];
        xc3[d] = d == axis ? j3 : oc[d];
    }
    lir_expr *z2 = lir_binary(M, LIR_SUB, read(c, 0, xc2), lir_var_ref(M, c->k, mx));
    lir_expr *z3 = lir_binary(M, LIR_SUB, read(c, 0, xc3), lir_var_ref(M, c->k, mx));
    lir_expr *y = log_out ? lir_binary(M, LIR_SUB, z3, lir_call(M, LIR_LOG, lir_var_ref(M, c->k, sum), NULL))
                          : lir_binary(M, LIR_DIV, lir_call(M, LIR_EXP, z3, NULL), lir_var_ref(M, c->k, sum));
    if (!lir_seq_push(M, b1, lir_assign(M, mx, lir_binary(M, LIR_MAX, lir_var_ref(M, c->k, mx), v1))) ||
        !lir_seq_push(M, b2, lir_assign(M, sum, lir_binary(M, LIR_ADD, lir_var_ref(M, c->k, sum), lir_call(M, LIR_EXP, z2, NULL)))) ||
        !lir_seq_push(M, b3, lir_store(M, c->out[0], lower_index(c, x, xc3, x->rank), lir_cast(M, x->dtype, y))) ||
        !lir_seq_push(M, inner, lir_let(M, mx, num(c, t, -INFINITY))) || !lir_seq_push(M, inner, l1) ||
        !lir_seq_push(M, inner, lir_let(M, sum, num(c, t, 0))) || !lir_seq_push(M, inner, l2) ||
        !lir_seq_push(M, inner, l3))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_softmax(lower_ctx *c) { return softmax(c, false); }
kiln_status lower_log_softmax(lower_ctx *c) { return softmax(c, true); }

/* ArgMax/ArgMin: the first (or last) best index along the axis, per row. */
static kiln_status arg_reduce(lower_ctx *c, bool is_max) {
    const kiln_tensor *x = c->in_type[0];
    int axis = (int)ir_attr_int(c->node, "axis");
    axis = axis < 0 ? axis + x->rank : axis;
    bool last = ir_attr_int(c->node, "select_last_index");
    kiln_dtype t = lower_compute_type(x->dtype);
    kiln_tensor rows = *x;
    rows.dims[axis] = 1;
    lir_expr *oc[KILN_MAX_RANK], *xc[KILN_MAX_RANK], *j;
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &rows, oc, &inner, &outer);
    if (st)
        return st;
    int best = lower_var(c, "best", t), at = lower_var(c, "at", KILN_I64);
    lir_stmt *body = lir_seq(M);
    lir_stmt *l = loop(c, "j", x->dims[axis], body, &j);
    for (int d = 0; d < x->rank; d++)
        xc[d] = d == axis ? j : oc[d];
    lir_expr *v = read(c, 0, xc), *b = lir_var_ref(M, c->k, best);
    lir_op op = is_max ? (last ? LIR_GE : LIR_GT) : (last ? LIR_LE : LIR_LT);
    /* the first element always wins, so the row's best starts as its first element */
    lir_expr *better = lir_binary(M, LIR_OR, lir_binary(M, LIR_EQ, j, lir_int(M, 0)), lir_binary(M, op, v, b));
    lir_stmt *take = lir_seq(M);
    if (!lir_seq_push(M, take, lir_assign(M, best, v)) || !lir_seq_push(M, take, lir_assign(M, at, j)) ||
        !lir_seq_push(M, body, lir_if(M, better, take, NULL)) || !lir_seq_push(M, inner, lir_let(M, best, num(c, t, 0))) ||
        !lir_seq_push(M, inner, lir_let(M, at, lir_int(M, 0))) || !lir_seq_push(M, inner, l) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, &rows, oc, rows.rank), lir_var_ref(M, c->k, at))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_argmax(lower_ctx *c) { return arg_reduce(c, true); }
kiln_status lower_argmin(lower_ctx *c) { return arg_reduce(c, false); }

/* LayerNormalization's mean and variance passes as lane partials (lower_lane_pass) over
 * the row's contiguous tail, where one accumulator serialized on its own additions (0.45
 * -> 0.1 ms for the Transformer's 1024 rows of 256). For float data in its compute type,
 * scale and bias whole tails or scalars, and no Mean/InvStdDev outputs. */
typedef struct norm_row {
    lir_expr *base, *mean;
    const lir_buffer *x;
} norm_row;

static lir_expr *norm_value(lower_ctx *c, lir_expr *j, lir_stmt *body, void *arg) {
    norm_row *r = arg;
    (void)body;
    lir_expr *v = lir_load(M, (lir_buffer *)r->x, lir_binary(M, LIR_ADD, r->base, j));
    if (!r->mean)
        return v;
    lir_expr *dev = lir_binary(M, LIR_SUB, v, r->mean);
    return lir_binary(M, LIR_MUL, dev, dev);
}

static kiln_status normalize_lanes(lower_ctx *c, const kiln_tensor *rows, int64_t len, int64_t w) {
    const kiln_tensor *x = c->in_type[0];
    kiln_dtype t = x->dtype;
    lir_expr *oc[KILN_MAX_RANK], *j;
    lir_stmt *inner, *outer, *body = lir_seq(M);
    kiln_status st = lower_nest(c, rows, oc, &inner, &outer);
    if (st)
        return st;
    lir_buffer *part = lir_local(M, c->k, "partial", t, ir_type_count(rows) * w);
    lir_expr *row = lower_index(c, rows, oc, rows->rank);
    int sum = lower_var(c, "sum", t), sq = lower_var(c, "sq", t), mean = lower_var(c, "mean", t), inv = lower_var(c, "inv", t);
    lir_stmt *store = body ? loop(c, "j", len, body, &j) : NULL;
    if (!part || !row || !store)
        return lower_oom(c);
    norm_row r = {lir_binary(M, LIR_MUL, row, lir_int(M, len)), NULL, c->in[0]};
    lir_expr *pbase = lir_binary(M, LIR_MUL, row, lir_int(M, w)), *zero = num(c, t, 0);
    lir_stmt *p1 = lower_lane_pass(c, part, pbase, lir_int(M, len), w, LIR_ADD, zero, norm_value, &r, sum);
    r.mean = lir_var_ref(M, c->k, mean);
    lir_stmt *p2 = lower_lane_pass(c, part, pbase, lir_int(M, len), w, LIR_ADD, zero, norm_value, &r, sq);
    double eps = ir_attr_float(c->node, "epsilon");
    lir_expr *var = lir_binary(M, LIR_DIV, lir_var_ref(M, c->k, sq), num(c, t, (double)len));
    lir_expr *at = lir_binary(M, LIR_ADD, r.base, j);
    lir_expr *y = lir_binary(M, LIR_MUL, lir_binary(M, LIR_SUB, lir_load(M, c->in[0], at), r.mean), lir_var_ref(M, c->k, inv));
    for (int i = 1; i < 3 && i < c->node->input_count; i++)
        if (c->in[i])
            y = lir_binary(M, i == 1 ? LIR_MUL : LIR_ADD, y, lir_load(M, c->in[i], ir_type_count(c->in_type[i]) == 1 ? lir_int(M, 0) : j));
    if (!p1 || !p2 || !lir_seq_push(M, inner, p1) ||
        !lir_seq_push(M, inner, lir_let(M, mean, lir_binary(M, LIR_DIV, lir_var_ref(M, c->k, sum), num(c, t, (double)len)))) ||
        !lir_seq_push(M, inner, p2) ||
        !lir_seq_push(M, inner, lir_let(M, inv, lir_binary(M, LIR_DIV, num(c, t, 1),
                                                           lir_call(M, LIR_SQRT, lir_binary(M, LIR_ADD, var, num(c, t, eps)), NULL)))) ||
        !lir_seq_push(M, body, lir_store(M, c->out[0], at, y)) || !lir_seq_push(M, inner, store))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* Normalizes over the trailing `tail` dims of x (from `from` on) per row: mean and
 * population variance in two passes, then y = (x - mean) / sqrt(var + eps) * scale + bias.
 * scale and bias index with `param_coords` (LayerNorm: the tail coords, broadcast;
 * InstanceNorm: the channel). Optionally stores the row's mean and 1/std. */
static kiln_status normalize(lower_ctx *c, int from, bool per_channel_params) {
    const kiln_tensor *x = c->in_type[0];
    kiln_dtype t = lower_compute_type(x->dtype);
    kiln_tensor rows = *x, tail = {.dtype = x->dtype, .rank = x->rank - from};
    int64_t len = 1;
    for (int d = from; d < x->rank; d++) {
        rows.dims[d] = 1;
        tail.dims[d - from] = x->dims[d];
        len *= x->dims[d];
    }
    int64_t lanes = c->m->vector_bits / (8 * (int64_t)kiln_dtype_size(t));
    bool whole_params = true;
    for (int i = 1; i < 3 && i < c->node->input_count; i++)
        whole_params &= !c->in[i] || ir_type_count(c->in_type[i]) == len || ir_type_count(c->in_type[i]) == 1;
    if (!per_channel_params && whole_params && c->node->output_count == 1 && t == x->dtype && ir_dtype_is_float(t) &&
        lanes >= 4 && len >= lanes / 2 && ir_type_count(&rows) * lanes <= (1 << 20) && c->in[0])
        return normalize_lanes(c, &rows, len, lanes);
    lir_expr *oc[KILN_MAX_RANK], *tc[3][KILN_MAX_RANK], *xc[3][KILN_MAX_RANK];
    lir_stmt *inner, *outer, *ti[3], *to[3];
    kiln_status st = lower_nest(c, &rows, oc, &inner, &outer);
    for (int p = 0; !st && p < 3; p++)
        st = lower_nest(c, &tail, tc[p], &ti[p], &to[p]);
    if (st)
        return st;
    for (int p = 0; p < 3; p++)
        for (int d = 0; d < x->rank; d++)
            xc[p][d] = d < from ? oc[d] : tc[p][d - from];
    int mean = lower_var(c, "mean", t), var = lower_var(c, "var", t), inv = lower_var(c, "inv", t);
    lir_expr *m = lir_var_ref(M, c->k, mean), *dev = lir_binary(M, LIR_SUB, read(c, 0, xc[1]), m);
    lir_expr *y = lir_binary(M, LIR_MUL, lir_binary(M, LIR_SUB, read(c, 0, xc[2]), m), lir_var_ref(M, c->k, inv));
    lir_expr *pc[KILN_MAX_RANK];
    if (per_channel_params)
        pc[0] = oc[1];
    for (int i = 1; i < 3 && i < c->node->input_count; i++) {
        if (!c->in[i])
            continue;
        lir_expr *param = per_channel_params ? read(c, i, pc)
                                             : lir_cast(M, t, lir_load(M, c->in[i], lower_index(c, c->in_type[i], tc[2], tail.rank)));
        y = lir_binary(M, i == 1 ? LIR_MUL : LIR_ADD, y, param);
    }
    double eps = ir_attr_float(c->node, "epsilon");
    lir_expr *inv_value = lir_binary(M, LIR_DIV, num(c, t, 1),
                                     lir_call(M, LIR_SQRT, lir_binary(M, LIR_ADD, lir_binary(M, LIR_DIV, lir_var_ref(M, c->k, var), num(c, t, (double)len)), num(c, t, eps)), NULL));
    if (!lir_seq_push(M, ti[0], lir_assign(M, mean, lir_binary(M, LIR_ADD, m, read(c, 0, xc[0])))) ||
        !lir_seq_push(M, ti[1], lir_assign(M, var, lir_binary(M, LIR_ADD, lir_var_ref(M, c->k, var), lir_binary(M, LIR_MUL, dev, dev)))) ||
        !lir_seq_push(M, ti[2], lir_store(M, c->out[0], lower_index(c, x, xc[2], x->rank), lir_cast(M, x->dtype, y))) ||
        !lir_seq_push(M, inner, lir_let(M, mean, num(c, t, 0))) || !lir_seq_push(M, inner, to[0]) ||
        !lir_seq_push(M, inner, lir_assign(M, mean, lir_binary(M, LIR_DIV, m, num(c, t, (double)len)))) ||
        !lir_seq_push(M, inner, lir_let(M, var, num(c, t, 0))) || !lir_seq_push(M, inner, to[1]) ||
        !lir_seq_push(M, inner, lir_let(M, inv, inv_value)) || !lir_seq_push(M, inner, to[2]))
        return lower_oom(c);
    for (int k = 1; k < c->node->output_count && k < 3; k++) { /* LayerNorm's Mean and InvStdDev */
        lir_expr *stat = lir_cast(M, c->out_type[k]->dtype, k == 1 ? m : lir_var_ref(M, c->k, inv));
        if (!lir_seq_push(M, inner, lir_store(M, c->out[k], lower_index(c, &rows, oc, rows.rank), stat)))
            return lower_oom(c);
    }
    return lower_emit(c, outer);
}

kiln_status lower_layer_norm(lower_ctx *c) {
    int axis = (int)ir_attr_int(c->node, "axis");
    return normalize(c, axis < 0 ? axis + c->in_type[0]->rank : axis, false);
}
kiln_status lower_instance_norm(lower_ctx *c) { return normalize(c, 2, true); }
