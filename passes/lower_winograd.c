/*
 * lower_winograd.c — loop lowering of Winograd F(2x2, 3x3)'s transforms (passes/layout.c
 * puts them around a MatMul in place of a 3x3 stride-1 conv): WinogradInput turns each
 * 4 x 4 input tile d into B^T d B, WinogradOutput each tile's 16 products m into the
 * 2 x 2 outputs A^T m A (+ bias, then the conv's epilogue). The matrices hold only 0 and
 * +-1, so each transform is adds and subtracts: 32 per input tile, 24 per output tile.
 * Vectors run along channels: the b channels of a blocked pixel, or the 16 products of
 * consecutive channels, are consecutive in memory. Where fusion makes the three one kernel
 * (fuse.c), lower_winograd_fused computes the conv a block of tiles at a time with both
 * transforms and the products between them.
 */
#include "passes/lower.h"

#include <string.h>

#define M (c->m)
#define loop lower_loop

/* v (4 values along one axis of a tile) times B^T: d0 - d2, d1 + d2, d2 - d1, d1 - d3. */
static void input_rows(lower_ctx *c, lir_expr *const *v, lir_expr **out) {
    out[0] = lir_binary(M, LIR_SUB, v[0], v[2]);
    out[1] = lir_binary(M, LIR_ADD, v[1], v[2]);
    out[2] = lir_binary(M, LIR_SUB, v[2], v[1]);
    out[3] = lir_binary(M, LIR_SUB, v[1], v[3]);
}

/* v times A^T: m0 + m1 + m2, m1 - m2 - m3. */
static void output_rows(lower_ctx *c, lir_expr *const *v, lir_expr **out) {
    out[0] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_ADD, v[0], v[1]), v[2]);
    out[1] = lir_binary(M, LIR_SUB, lir_binary(M, LIR_SUB, v[1], v[2]), v[3]);
}

/* A named local holding e; returns a reference to it (each value is used by several sums). */
static lir_expr *keep(lower_ctx *c, lir_stmt *body, const char *name, lir_expr *e) {
    int v = lower_var(c, name, e ? e->type : KILN_F32);
    if (!e || !lir_seq_push(M, body, lir_let(M, v, e)))
        return NULL;
    return lir_var_ref(M, c->k, v);
}

/* Input i at coords, loaded (no producer is ever inlined into these reads: in the fused
 * kernel c->node's own inputs are not these). */
static lir_expr *load(lower_ctx *c, int i, lir_expr **coords) {
    const kiln_tensor *t = c->in_type[i];
    return lir_cast(M, lower_compute_type(t->dtype), lir_load(M, c->in[i], lower_index(c, t, coords, t->rank)));
}

/* The 16 values B^T d B of the tile at (n, ty, tx) of one channel (per lane): blocked X is
 * read at [n, cb, y, z, lane], NCHW X at [n, cb, y, z] (cb then the channel). Rows and
 * columns that can fall outside X (near the edges) load a clamped element and select 0. */
static kiln_status input_tile(lower_ctx *c, lir_stmt *body, const shape_winograd *g, lir_expr *n, lir_expr *ty,
                              lir_expr *tx, lir_expr *cb, lir_expr *lane, lir_expr **v) {
    lir_expr *d[4][4], *u[4][4], *col[4];
    for (int a = 0; a < 4; a++) {
        lir_expr *y = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, ty, lir_int(M, 2)), lir_int(M, a - g->pad_top));
        bool y_edge = a < g->pad_top || 2 * (g->th - 1) - g->pad_top + a >= g->h;
        for (int b = 0; b < 4; b++) {
            lir_expr *z = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, tx, lir_int(M, 2)), lir_int(M, b - g->pad_left));
            bool z_edge = b < g->pad_left || 2 * (g->tw - 1) - g->pad_left + b >= g->w;
            lir_expr *inside = NULL, *yc = y, *zc = z;
            if (y_edge) {
                yc = lir_binary(M, LIR_MIN, lir_binary(M, LIR_MAX, y, lir_int(M, 0)), lir_int(M, g->h - 1));
                inside = lir_binary(M, LIR_EQ, yc, y);
            }
            if (z_edge) {
                zc = lir_binary(M, LIR_MIN, lir_binary(M, LIR_MAX, z, lir_int(M, 0)), lir_int(M, g->w - 1));
                lir_expr *ok = lir_binary(M, LIR_EQ, zc, z);
                inside = inside ? lir_binary(M, LIR_AND, inside, ok) : ok;
            }
            lir_expr *xc[5] = {n, cb, yc, zc, lane};
            lir_expr *e = load(c, 0, xc);
            if (inside && e)
                e = lir_select(M, inside, e, lir_const(M, e->type, 0));
            d[a][b] = keep(c, body, "d", e);
        }
    }
    for (int b = 0; b < 4; b++) { /* B^T d: down each column */
        lir_expr *e[4] = {d[0][b], d[1][b], d[2][b], d[3][b]};
        input_rows(c, e, col);
        for (int i = 0; i < 4; i++)
            u[i][b] = keep(c, body, "u", col[i]);
    }
    for (int i = 0; i < 4; i++) /* (B^T d) B: along each row */
        input_rows(c, u[i], v + 4 * i);
    for (int i = 0; i < 16; i++)
        if (!v[i])
            return lower_oom(c);
    return KILN_OK;
}

/* The 2 x 2 outputs A^T m A (+ bias) of a tile's 16 products m, stored at [n, cb, 2 ty + i,
 * 2 tx + j, lane] through the epilogue; the last row or column of an odd size is not. */
static kiln_status output_tile(lower_ctx *c, lir_stmt *body, lir_expr *const *m, lir_expr *bias, lir_expr *n,
                               lir_expr *cb, lir_expr *ty, lir_expr *tx, lir_expr *lane) {
    const kiln_tensor *out = c->out_type[0];
    int64_t oh = out->dims[2], ow = out->dims[3];
    lir_expr *s[2][4], *r[2];
    for (int e = 0; e < 4; e++) { /* A^T m: down each column */
        lir_expr *v[4] = {m[e], m[4 + e], m[8 + e], m[12 + e]};
        output_rows(c, v, r);
        s[0][e] = keep(c, body, "s", r[0]), s[1][e] = keep(c, body, "s", r[1]);
    }
    for (int i = 0; i < 2; i++) { /* (A^T m) A: along each row */
        output_rows(c, s[i], r);
        lir_expr *y = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, ty, lir_int(M, 2)), lir_int(M, i));
        for (int j = 0; j < 2; j++) {
            lir_expr *z = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, tx, lir_int(M, 2)), lir_int(M, j));
            lir_expr *at[5] = {n, cb, y, z, lane}, *keep_if = NULL;
            lir_stmt *store = lower_store_out(c, at, bias ? lir_binary(M, LIR_ADD, r[j], bias) : r[j]);
            if (i && oh % 2)
                keep_if = lir_binary(M, LIR_LT, y, lir_int(M, oh));
            if (j && ow % 2) {
                lir_expr *in_row = lir_binary(M, LIR_LT, z, lir_int(M, ow));
                keep_if = keep_if ? lir_binary(M, LIR_AND, keep_if, in_row) : in_row;
            }
            if (store && keep_if)
                store = lir_if(M, keep_if, lower_seq1(c, store), NULL);
            if (!lir_seq_push(M, body, store))
                return lower_oom(c);
        }
    }
    return KILN_OK;
}

/* Tile t's image, row and column of tiles (th x tw per image), as locals declared in body. */
static void tile_coords(lower_ctx *c, lir_stmt *body, lir_expr *t, int64_t th, int64_t tw, lir_expr **n, lir_expr **ty,
                        lir_expr **tx) {
    *n = keep(c, body, "n", lir_binary(M, LIR_DIV, t, lir_int(M, th * tw)));
    *ty = keep(c, body, "ty", lir_binary(M, LIR_REM, lir_binary(M, LIR_DIV, t, lir_int(M, tw)), lir_int(M, th)));
    *tx = keep(c, body, "tx", lir_binary(M, LIR_REM, t, lir_int(M, tw)));
}

/* The tile at (n, ty, tx): (n th + ty) tw + tx, the inverse of tile_coords. */
static lir_expr *tile_index(lower_ctx *c, lir_expr *n, lir_expr *ty, lir_expr *tx, int64_t th, int64_t tw) {
    return lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, n, lir_int(M, th)), ty),
                                             lir_int(M, tw)), tx);
}

kiln_status lower_winograd_input(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    shape_ctx sc = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    shape_winograd g;
    kiln_status st = shape_winograd_geometry(&sc, x, &g);
    if (st)
        return st;
    bool blocked = x->rank == 5;
    int64_t xb = blocked ? x->dims[4] : 1;
    /* blocked: [N, C / b, TH, TW, b], the lanes along the block; NCHW: [N, TH, TW, C] */
    kiln_tensor nest = {.dtype = x->dtype, .rank = blocked ? 5 : 4};
    int64_t dims5[5] = {g.batch, g.channels / xb, g.th, g.tw, xb}, dims4[4] = {g.batch, g.th, g.tw, g.channels};
    memcpy(nest.dims, blocked ? dims5 : dims4, sizeof(int64_t) * (size_t)nest.rank);
    lir_expr *nc[5], *v[16];
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, &nest, nc, &inner, &outer)))
        return st;
    lir_expr *n = nc[0], *ty = nc[blocked ? 2 : 1], *tx = nc[blocked ? 3 : 2];
    lir_expr *ch = blocked ? lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[1], lir_int(M, xb)), nc[4]) : nc[3];
    if ((st = input_tile(c, inner, &g, n, ty, tx, blocked ? nc[1] : nc[3], blocked ? nc[4] : NULL, v)))
        return st;
    lir_expr *t = tile_index(c, n, ty, tx, g.th, g.tw);
    for (int i = 0; i < 16; i++) {
        lir_expr *at[3] = {lir_int(M, i), t, ch};
        if (!lir_seq_push(M, inner, lower_store_out(c, at, v[i])))
            return lower_oom(c);
    }
    return lower_emit(c, outer);
}

kiln_status lower_winograd_output(lower_ctx *c) {
    const kiln_tensor *out = c->out_type[0];
    int64_t b = out->dims[4], th = (out->dims[2] + 1) / 2, tw = (out->dims[3] + 1) / 2;
    kiln_tensor nest = {.dtype = out->dtype, .rank = 5, .dims = {out->dims[0], out->dims[1], th, tw, b}};
    lir_expr *nc[5], *m[16], *bias = NULL;
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &nest, nc, &inner, &outer);
    if (st)
        return st;
    lir_expr *t = tile_index(c, nc[0], nc[2], nc[3], th, tw);
    lir_expr *ch = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[1], lir_int(M, b)), nc[4]);
    for (int i = 0; i < 16; i++)
        m[i] = keep(c, inner, "m", lower_read(c, 0, (lir_expr *[]){lir_int(M, i), t, ch}));
    if (c->node->input_count > 1 && c->in[1])
        bias = keep(c, inner, "bias", lower_read(c, 1, &ch));
    if ((st = output_tile(c, inner, m, bias, nc[0], nc[1], nc[2], nc[3], nc[4])))
        return st;
    return lower_emit(c, outer);
}

/* The fused conv: tiles in blocks of `chunk`, each block's transformed tiles V [16, chunk,
 * Cin] and products P [16, chunk, Cout] in scratch of the block's slot, so what one phase
 * writes the next reads from the core's cache; the unfused kernels passed both through
 * memory, 4x the input and 4x the output (ResNet-18's 64-channel convs: 3.2 MB each way).
 * The slots (one per thread) run in parallel, each over its consecutive blocks. Per block:
 * 1. V[xi, t, ci] = (B^T d B)[xi] for each tile (tiles past the end redo the last one);
 * 2. P[xi] = V[xi] x U[xi], 16 products, blocked as the GEMM kernel (lower_nn.c): rows of
 *    8 tiles, two vectors of output channels, each V element loaded serving both;
 * 3. Y = A^T P A + bias for each tile, through the conv's epilogue. */
enum { WINOGRAD_ROWS = 8 };

/* base + xi * stride + row * width + col: element (row, col) of point xi's rows in scratch. */
static lir_expr *at_row(lower_ctx *c, lir_expr *base, lir_expr *xi, int64_t stride, lir_expr *row, int64_t width, lir_expr *col) {
    return lir_binary(M, LIR_ADD, lir_binary(M, LIR_ADD, base, lir_binary(M, LIR_MUL, xi, lir_int(M, stride))),
                      lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, row, lir_int(M, width)), col));
}

kiln_status lower_winograd_fused(lower_ctx *c, const ir_node *input) {
    const kiln_tensor *x = c->in_type[0], *u = c->in_type[1], *out = c->out_type[0];
    shape_ctx sc = {input, c->in_type, 1, NULL, 0, c->d};
    shape_winograd g;
    kiln_status st = shape_winograd_geometry(&sc, x, &g);
    if (st)
        return st;
    kiln_dtype t = lower_compute_type(out->dtype);
    bool blocked = x->rank == 5;
    int64_t xb = blocked ? x->dims[4] : 1, cin = g.channels, cout = u->dims[2], b = out->dims[4], tiles = g.tiles;
    int64_t lanes = M->vector_bits / 32 >= 4 ? M->vector_bits / 32 : 16;
    int halves = cout % (2 * lanes) == 0 ? 2 : 1;
    int64_t cols = cout % lanes == 0 ? lanes : cout; /* a lane loop's columns */
    int64_t scratch = M->l2_bytes / 4; /* a quarter of the L2, beside the weights' half */
    int64_t chunk = scratch / (4 * 16 * (cin + cout)) / WINOGRAD_ROWS * WINOGRAD_ROWS;
    if (chunk < WINOGRAD_ROWS)
        chunk = WINOGRAD_ROWS;
    if (chunk > (tiles + WINOGRAD_ROWS - 1) / WINOGRAD_ROWS * WINOGRAD_ROWS)
        chunk = (tiles + WINOGRAD_ROWS - 1) / WINOGRAD_ROWS * WINOGRAD_ROWS;
    int64_t chunks = (tiles + chunk - 1) / chunk, slots = M->threads > 0 ? M->threads : 8;
    if (slots > chunks)
        slots = chunks;
    int64_t per = (chunks + slots - 1) / slots;
    /* a point's rows of tiles (or products) start 64 bytes past a multiple of 4 KiB: 16 rows
     * exactly 4 KiB apart all map to one L1 set, and one tile's 16 loads or stores would
     * evict each other (12 ways) */
    int64_t vstride = chunk * cin + (chunk * cin % 1024 ? 0 : 16), pstride = chunk * cout + (chunk * cout % 1024 ? 0 : 16);
    lir_buffer *vs = lir_local(M, c->k, "wino_tiles", t, slots * 16 * vstride);
    lir_buffer *ps = lir_local(M, c->k, "wino_products", t, slots * 16 * pstride);
    lir_stmt *block = lir_seq(M), *phases = lir_seq(M);
    lir_expr *slot, *j, *tt, *t3, *xi, *rb, *cp, *lane, *k, *cbi, *l1, *cbo, *l3;
    lir_stmt *j_loop = loop(c, "block", per, block, &j), *s_loop = loop(c, "slot", slots, lower_seq1(c, j_loop), &slot);
    if (!vs || !ps || !block || !phases || !s_loop)
        return lower_oom(c);
    lower_parallel(s_loop);
    lir_expr *which = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, slot, lir_int(M, per)), j);
    lir_expr *t0 = lir_binary(M, LIR_MUL, which, lir_int(M, chunk));
    lir_expr *vbase = lir_binary(M, LIR_MUL, slot, lir_int(M, 16 * vstride));
    lir_expr *pbase = lir_binary(M, LIR_MUL, slot, lir_int(M, 16 * pstride));
    if (!lir_seq_push(M, block, lir_if(M, lir_binary(M, LIR_LT, which, lir_int(M, chunks)), phases, NULL)))
        return lower_oom(c);
    /* 1: the input transform, lanes along input channels (a blocked pixel's b, or all of them) */
    lir_stmt *in_body = lir_seq(M);
    lir_stmt *l1_loop = loop(c, "lane", blocked ? xb : cin, in_body, &l1);
    lir_stmt *cbi_loop = blocked ? loop(c, "cb", cin / xb, lower_seq1(c, l1_loop), &cbi) : l1_loop;
    lir_stmt *tile_body = lir_seq(M);
    lir_stmt *t1_loop = loop(c, "tile", chunk, tile_body, &tt);
    if (!cbi_loop || !t1_loop || !lir_seq_push(M, phases, t1_loop))
        return lower_oom(c);
    lir_expr *tile = lir_binary(M, LIR_MIN, lir_binary(M, LIR_ADD, t0, tt), lir_int(M, tiles - 1)), *n, *ty, *tx, *v[16];
    tile_coords(c, tile_body, tile, g.th, g.tw, &n, &ty, &tx);
    if (!lir_seq_push(M, tile_body, cbi_loop))
        return lower_oom(c);
    if ((st = input_tile(c, in_body, &g, n, ty, tx, blocked ? cbi : l1, blocked ? l1 : NULL, v)))
        return st;
    lir_expr *ci = blocked ? lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, cbi, lir_int(M, xb)), l1) : l1;
    for (int i = 0; i < 16; i++) {
        lir_expr *at = at_row(c, vbase, lir_int(M, i), vstride, tt, cin, ci);
        if (!lir_seq_push(M, in_body, lir_store(M, vs, at, v[i])))
            return lower_oom(c);
    }
    /* 2: the products, rows of WINOGRAD_ROWS tiles x `halves` vectors of output channels */
    lir_stmt *gemm = lir_seq(M), *k_body = lir_seq(M);
    lir_stmt *lane_loop = loop(c, "lane", cols, gemm, &lane);
    lir_stmt *cp_loop = loop(c, "cols", cout / (cols * halves), lower_seq1(c, lane_loop), &cp);
    lir_stmt *rb_loop = loop(c, "rows", chunk / WINOGRAD_ROWS, lower_seq1(c, cp_loop), &rb);
    lir_stmt *xi_loop = loop(c, "xi", 16, lower_seq1(c, rb_loop), &xi);
    lir_stmt *k_loop = loop(c, "k", cin, k_body, &k);
    if (!xi_loop || !k_loop || !lir_seq_push(M, phases, xi_loop))
        return lower_oom(c);
    int acc[2][WINOGRAD_ROWS], bv[2];
    lir_expr *col[2];
    for (int h = 0; h < halves; h++) {
        col[h] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, cp, lir_int(M, cols * halves)), lir_binary(M, LIR_ADD, lir_int(M, h * cols), lane));
        bv[h] = lower_var(c, "b", t);
        lir_expr *uat = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, xi, lir_int(M, cin)), k),
                                                         lir_int(M, cout)), col[h]);
        if (!lir_seq_push(M, k_body, lir_let(M, bv[h], lir_cast(M, t, lir_load(M, c->in[1], uat)))))
            return lower_oom(c);
        for (int r = 0; r < WINOGRAD_ROWS; r++)
            if (!lir_seq_push(M, gemm, lir_let(M, acc[h][r] = lower_var(c, "acc", t), lir_const(M, t, 0))))
                return lower_oom(c);
    }
    for (int r = 0; r < WINOGRAD_ROWS; r++) {
        lir_expr *row = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, rb, lir_int(M, WINOGRAD_ROWS)), lir_int(M, r));
        lir_expr *a = lir_load(M, vs, at_row(c, vbase, xi, vstride, row, cin, k));
        for (int h = 0; h < halves; h++)
            if (!lir_seq_push(M, k_body, lir_assign(M, acc[h][r], lir_fma(M, a, lir_var_ref(M, c->k, bv[h]), lir_var_ref(M, c->k, acc[h][r])))))
                return lower_oom(c);
    }
    if (!lir_seq_push(M, gemm, k_loop))
        return lower_oom(c);
    for (int h = 0; h < halves; h++)
        for (int r = 0; r < WINOGRAD_ROWS; r++) {
            lir_expr *row = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, rb, lir_int(M, WINOGRAD_ROWS)), lir_int(M, r));
            lir_expr *at = at_row(c, pbase, xi, pstride, row, cout, col[h]);
            if (!lir_seq_push(M, gemm, lir_store(M, ps, at, lir_var_ref(M, c->k, acc[h][r]))))
                return lower_oom(c);
        }
    /* 3: the output transform, lanes along a block of output channels */
    lir_stmt *out_body = lir_seq(M), *tile3 = lir_seq(M);
    lir_stmt *l3_loop = loop(c, "lane", b, out_body, &l3);
    lir_stmt *cbo_loop = loop(c, "cb", cout / b, lower_seq1(c, l3_loop), &cbo);
    lir_stmt *t3_loop = loop(c, "tile", chunk, tile3, &t3);
    if (!cbo_loop || !t3_loop || !lir_seq_push(M, phases, t3_loop))
        return lower_oom(c);
    lir_expr *tile3v = lir_binary(M, LIR_ADD, t0, t3), *m[16], *bias = NULL;
    lir_stmt *in_range = lir_seq(M);
    if (!in_range)
        return lower_oom(c);
    tile_coords(c, in_range, tile3v, g.th, g.tw, &n, &ty, &tx);
    if (!lir_seq_push(M, in_range, cbo_loop) ||
        !lir_seq_push(M, tile3, lir_if(M, lir_binary(M, LIR_LT, tile3v, lir_int(M, tiles)), in_range, NULL)))
        return lower_oom(c);
    lir_expr *co = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, cbo, lir_int(M, b)), l3);
    for (int i = 0; i < 16; i++) {
        lir_expr *at = at_row(c, pbase, lir_int(M, i), pstride, t3, cout, co);
        m[i] = keep(c, out_body, "m", lir_load(M, ps, at));
    }
    if (c->in[2])
        bias = keep(c, out_body, "bias", load(c, 2, &co));
    if ((st = output_tile(c, out_body, m, bias, n, cbo, ty, tx, l3)))
        return st;
    return lower_emit(c, s_loop);
}
