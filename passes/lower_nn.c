/*
 * lower_nn.c — loop lowering of MatMul and Gemm (register-blocked, constant B packed
 * once), BatchNormalization (inference), Softmax/LogSoftmax, the normalizations and the
 * reductions, in the output's compute type. Convolutions and pools: lower_window.c.
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
 * blocks (of GEMM_ROWS, or fewer: gemm_block) with an accumulator each, so each B element
 * loaded serves the whole block (the n loop is the one the schedule vectorizes: B and the
 * output move by one element per lane, A's element is the same for all lanes). Rows past
 * the end of a last, partial block read the last row and store nothing. Each sum runs over
 * k in order, as the interpreter's does. B in column tiles sized to the L2 (column_tile),
 * packed into panels (row_blocked). */
enum { GEMM_ROWS = 8, GEMM_ROWS_MIN = 5 };

/* Rows a block: GEMM_ROWS, unless a block of GEMM_ROWS_MIN..GEMM_ROWS - 1 rows pads the
 * rows less by over 1/32 of them, since a partial last block costs a whole one. ConvNeXt's
 * last stage has 49 rows: 7 blocks of 7, where blocks of 8 computed 56 (its 768 x 3072
 * product at 1 thread 1.32-1.66 -> 1.14-1.15 ms, 201 GFLOP/s). ViT's 197 rows stay in
 * blocks of 8 (200 rows): blocks of 6 (198) measured the same. Fewer rows than
 * GEMM_ROWS make one block. */
static int64_t padded(int64_t rows, int block) { return (rows + block - 1) / block * block; }
static int gemm_block(int64_t rows) {
    if (rows < GEMM_ROWS)
        return rows > 0 ? (int)rows : 1;
    int best = GEMM_ROWS;
    for (int b = GEMM_ROWS - 1; b >= GEMM_ROWS_MIN; b--)
        if (padded(rows, b) < padded(rows, best))
            best = b;
    return (padded(rows, GEMM_ROWS) - padded(rows, best)) * 32 > rows ? best : GEMM_ROWS;
}

typedef struct gemm_lowering {
    int row_dim;   /* where m is in the output's coordinates */
    int row_first; /* the first output dim the rows run over: dims row_first..row_dim are
                      one flat row index (a shared B: every batch's rows alike), or row_dim */
    int64_t depth; /* K */
    lir_expr *(*a_at)(lower_ctx *c, lir_expr **oc, lir_expr *k);
    lir_expr *(*b_at)(lower_ctx *c, lir_expr **oc, lir_expr *k);
    lir_expr *(*finish)(lower_ctx *c, lir_expr **oc, lir_expr *acc);
    bool b_shared; /* B depends only on (k, column): one matrix for every row and batch */
} gemm_lowering;

/* B's columns in tiles whose K x tile slice fits in a quarter of the L2 (256 KiB of 1 MiB),
 * visited outermost, so that every block of rows reuses the tile from cache instead of
 * streaming all of B (1 MiB for a 256 x 1024 weight) once per block of GEMM_ROWS rows. n
 * when B fits already or no multiple of 16 divides n. Deep sums (K = 3072: ViT's second
 * MLP layer) get tiles of 32 columns, two vectors, past the budget while they fit the L2
 * itself: 16 columns would leave half the accumulators and the packed panel unused (41-44
 * GFLOP/s there, 74 with 32, then 153-159 once its A was stored: fuse.c's rereads_input). */
static int64_t column_tile(int64_t k, int64_t n, int64_t esize, int64_t l2_bytes) {
    const int64_t budget = l2_bytes / 4;
    if (k * n * esize <= budget)
        return n;
    int64_t most = budget / (k * esize);
    if (most < 32 && k * 32 * esize <= l2_bytes / 2)
        most = 32;
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

/* Where the packed B panel (row_blocked) holds column `within` of pair `pair` (counted
 * over all tiles) at step k: [pair][K][w2]. */
static lir_expr *panel_at(lower_ctx *c, lir_expr *pair, int64_t depth, lir_expr *k, int64_t w2, lir_expr *within) {
    lir_expr *step = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, pair, lir_int(M, depth)), k);
    return lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, step, lir_int(M, w2)), within);
}

/* The output coordinates of flat row `row` (of dims row_first..row_dim) into oc. */
static void row_coords(lower_ctx *c, const gemm_lowering *g, lir_expr *row, lir_expr **oc) {
    const kiln_tensor *out = c->out_type[0];
    for (int d = g->row_dim; d >= g->row_first; d--) {
        oc[d] = d == g->row_first ? row : lir_binary(M, LIR_REM, row, lir_int(M, out->dims[d]));
        row = lir_binary(M, LIR_DIV, row, lir_int(M, out->dims[d]));
    }
}

static kiln_status row_blocked(lower_ctx *c, const gemm_lowering *g) {
    const kiln_tensor *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(out->dtype);
    int64_t rows = 1;
    for (int d = g->row_first; d <= g->row_dim; d++)
        rows *= out->dims[d];
    int folded = g->row_dim - g->row_first; /* dims folded into the flat row */
    int block = gemm_block(rows);
    int last = out->rank - 1;
    int64_t n = out->dims[last], lanes = c->m->vector_bits / (8 * (int64_t)kiln_dtype_size(t));
    /* (folded or not: few_rows walks every output coordinate itself) */
    if (g->row_dim != last && rows < 4 && n >= lanes && lanes >= 4 && ir_type_count(out) <= (1 << 22))
        return few_rows(c, g);
    int64_t tile = g->row_dim == last ? n : column_tile(g->depth, n, (int64_t)kiln_dtype_size(t), c->m->l2_bytes);
    /* two vectors of columns per lane loop: each A element loaded serves 2 x block
     * accumulators, each B vector `block` of them (16 independent sums, 10 at least, to
     * hide the FMA latency; 10 loads per 16 FMAs where one vector took 9 per 8) */
    int halves = g->row_dim != last && lanes >= 8 && tile % (2 * lanes) == 0 && block >= GEMM_ROWS_MIN ? 2 : 1;
    /* the nest: [N / tile if tiled, the output's dims but the last (rows in blocks),
     * then tile / (2 lanes) pairs and the lanes, or the tile's columns] */
    kiln_tensor nest = {.dtype = out->dtype};
    bool tiled = tile < n;
    if (tiled)
        nest.dims[nest.rank++] = n / tile;
    for (int d = 0; d < last; d++)
        if (d < g->row_first || d >= g->row_dim)
            nest.dims[nest.rank++] = d == g->row_dim ? (rows + block - 1) / block : out->dims[d];
    if (halves == 2)
        nest.dims[nest.rank++] = tile / (2 * lanes), nest.dims[nest.rank++] = lanes;
    else
        nest.dims[nest.rank++] = tile;
    if (nest.rank > KILN_MAX_RANK && !folded) { /* no room for the extra loops: one plain nest */
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
    int at = tiled ? 1 : 0, cols = at + last - folded; /* where the column loops are in nc */
    lir_expr *base = tiled ? lir_binary(M, LIR_MUL, nc[0], lir_int(M, tile)) : lir_int(M, 0);
    for (int h = 0; h < halves; h++) { /* the output coordinates of each half's lane (row_dim: the row block) */
        for (int d = 0; d < last; d++)
            oc[h][d] = d < g->row_first ? nc[at + d] : d < g->row_dim ? NULL : nc[at + d - folded];
        lir_expr *col = halves == 2 ? lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[cols], lir_int(M, 2 * lanes)),
                                                 lir_binary(M, LIR_ADD, lir_int(M, h * lanes), nc[cols + 1]))
                                    : nc[cols];
        oc[h][last] = lir_binary(M, LIR_ADD, base, col);
    }
    /* packed B: each column tile copied once into a contiguous panel, so the k loop reads
     * consecutive lines instead of one line a row stride apart, a new page at every step
     * (1024^3 SGEMM: 94 -> 109 GFLOP/s at 1 thread, 94% of the measured peak). The panel
     * is [pair][K][2 vectors]: each pair of vectors' k loop reads one dense stream, where
     * [K][tile] had it read 2 lines of every 4 (64-column tiles) and the other pair the
     * rest, a stream the prefetchers fetched worse from memory. Weights cold from memory
     * every run gained most: 12 products of 49 rows (ConvNeXt's last stage, 768 x 3072 and
     * 3072 x 768 in turn) 16.9 -> 16.0 ms; ViT-B/16 198 -> 193 ms at 1 thread, 105 -> 102 at 2;
     * ConvNeXt-tiny 52.7 -> 51.2; the SGEMM 10.3 -> 10.2 (medians of alternating runs).
     * The copy costs about 1 / rows of the product: only for 64 rows or more (the MLP's 64
     * measured the same either way). A constant B (a layer's weights) is packed once, by
     * a kernel of its own that runs before the first run, into the persistent block: the
     * MLP at 1 thread 0.47 -> 0.40 ms, at 2 threads 0.32 -> 0.22 (its per-run copies of
     * 2.6 MB of weights were a third of the time) */
    lir_buffer *panel = NULL;
    bool packed_once = lower_input_constant(c, 1);
    if (tiled && halves == 2 && g->b_shared && (rows >= 64 || packed_once)) {
        lir_kernel *kernel = c->k;
        lir_buffer *b_in = c->in[1];
        if (packed_once && /* the pack nest goes into its own kernel, reading the constant */
            (!(c->k = lower_pack_kernel(c)) || !(c->in[1] = lir_param(M, c->k, b_in->value))))
            return lower_oom(c);
        int64_t w2 = 2 * lanes, pairs = tile / w2;
        lir_expr *tt, *pp, *pk, *j, *pc[KILN_MAX_RANK];
        lir_stmt *jb = lir_seq(M);
        lir_stmt *j_loop = jb ? loop(c, "j", w2, jb, &j) : NULL;
        lir_stmt *k_pack = j_loop ? loop(c, "k", g->depth, seq1(c, j_loop), &pk) : NULL;
        lir_stmt *p_pack = k_pack ? loop(c, "pair", pairs, seq1(c, k_pack), &pp) : NULL;
        lir_stmt *t_loop = p_pack ? loop(c, "tile", n / tile, seq1(c, p_pack), &tt) : NULL;
        if (!t_loop || !(panel = lir_local(M, c->k, "b_panel", t, n * g->depth)))
            return lower_oom(c);
        lower_parallel(t_loop);
        for (int d = 0; d < last; d++)
            pc[d] = lir_int(M, 0);
        /* the pair, counted over tiles */
        lir_expr *tp = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, tt, lir_int(M, pairs)), pp);
        pc[last] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, tp, lir_int(M, w2)), j);
        if (!lir_seq_push(M, jb, lir_store(M, panel, panel_at(c, tp, g->depth, pk, w2, j), g->b_at(c, pc, pk))) ||
            (st = lower_emit(c, t_loop)))
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
            row_coords(c, g, lir_binary(M, LIR_MIN, lir_binary(M, LIR_ADD, first, lir_int(M, r)), lir_int(M, rows - 1)), rc[r]);
            acc[h][r] = lower_var(c, "acc", t);
            if (!lir_seq_push(M, inner, lir_let(M, acc[h][r], num(c, t, 0))))
                return lower_oom(c);
        }
        lir_expr *bval = g->b_at(c, rc[0], p);
        if (panel) { /* the tile's pair nc[cols], its half h */
            lir_expr *tp = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[0], lir_int(M, tile / (2 * lanes))), nc[cols]);
            lir_expr *within = lir_binary(M, LIR_ADD, lir_int(M, h * lanes), nc[cols + 1]);
            bval = lir_load(M, panel, panel_at(c, tp, g->depth, p, 2 * lanes, within));
        }
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
            row_coords(c, g, row, where);
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
    /* B shared by every batch (a weight): the batches' rows are one run of rows, blocked
     * together, so B streams once for all of them, not once per batch. A [S, 1, E] (the
     * sequence first, one batch, as ViT's attention projects it) ran as 197 products of
     * one row each at 37 GFLOP/s; ConvNeXt's [1, 7, 7, 768] x [768, 3072] as 7 of 7 rows,
     * a block each streaming the 9.4 MB of B, at 48 (the model 79 -> 62 ms). The Transformer's
     * [8, 128, 256] products measured the same either way. */
    const kiln_tensor *out = c->out_type[0];
    g.row_first = g.b_shared && a->rank == out->rank && out->rank < KILN_MAX_RANK ? 0 : g.row_dim;
    if (a->rank < 2 || b->rank < 2) { /* a vector operand: no rows to block, one accumulator per output */
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
    gemm_lowering g = {.row_dim = 0, .row_first = 0, .depth = c->in_type[0]->dims[ir_attr_int(c->node, "transA") ? 0 : 1],
                       .a_at = gemm_a, .b_at = gemm_b, .finish = gemm_finish, .b_shared = true};
    return row_blocked(c, &g);
}

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
