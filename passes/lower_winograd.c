/*
 * lower_winograd.c — loop lowering of Winograd F(2x2, 3x3)'s transforms (passes/layout.c
 * puts them around a MatMul in place of a 3x3 stride-1 conv): WinogradInput turns each
 * 4 x 4 input tile d into B^T d B, WinogradOutput each tile's 16 products m into the
 * 2 x 2 outputs A^T m A (+ bias, then the conv's epilogue). The matrices hold only 0 and
 * +-1, so each transform is adds and subtracts: 32 per input tile, 24 per output tile.
 * Vectors run along channels: the b channels of a blocked pixel, or the 16 products of
 * consecutive channels, are consecutive in memory.
 */
#include "passes/lower.h"

#include <string.h>

#define M (c->m)

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
    lir_expr *nc[5];
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, &nest, nc, &inner, &outer)))
        return st;
    lir_expr *n = nc[0], *ty = nc[blocked ? 2 : 1], *tx = nc[blocked ? 3 : 2];
    lir_expr *ch = blocked ? lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[1], lir_int(M, xb)), nc[4]) : nc[3];
    lir_expr *d[4][4], *u[4][4], *col[4], *row[4];
    for (int a = 0; a < 4; a++) {
        /* row 2 ty - pad + a can leave the input only near the edges: checked where it can */
        lir_expr *y = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, ty, lir_int(M, 2)), lir_int(M, a - g.pad_top));
        bool y_low = a < g.pad_top, y_high = 2 * (g.th - 1) - g.pad_top + a >= g.h;
        for (int b = 0; b < 4; b++) {
            lir_expr *z = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, tx, lir_int(M, 2)), lir_int(M, b - g.pad_left));
            bool z_low = b < g.pad_left, z_high = 2 * (g.tw - 1) - g.pad_left + b >= g.w;
            lir_expr *inside = NULL, *yc = y, *zc = z;
            if (y_low || y_high) {
                yc = lir_binary(M, LIR_MIN, lir_binary(M, LIR_MAX, y, lir_int(M, 0)), lir_int(M, g.h - 1));
                inside = lir_binary(M, LIR_EQ, yc, y);
            }
            if (z_low || z_high) {
                zc = lir_binary(M, LIR_MIN, lir_binary(M, LIR_MAX, z, lir_int(M, 0)), lir_int(M, g.w - 1));
                lir_expr *ok = lir_binary(M, LIR_EQ, zc, z);
                inside = inside ? lir_binary(M, LIR_AND, inside, ok) : ok;
            }
            lir_expr *xc[5] = {n, blocked ? nc[1] : ch, yc, zc, blocked ? nc[4] : NULL};
            lir_expr *v = lower_read(c, 0, xc);
            if (inside && v)
                v = lir_select(M, inside, v, lir_const(M, v->type, 0));
            d[a][b] = keep(c, inner, "d", v);
        }
    }
    for (int b = 0; b < 4; b++) { /* B^T d: down each column */
        lir_expr *v[4] = {d[0][b], d[1][b], d[2][b], d[3][b]};
        input_rows(c, v, col);
        for (int i = 0; i < 4; i++)
            u[i][b] = keep(c, inner, "u", col[i]);
    }
    lir_expr *t = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, n, lir_int(M, g.th)), ty),
                                                    lir_int(M, g.tw)), tx);
    for (int i = 0; i < 4; i++) { /* (B^T d) B: along each row */
        input_rows(c, u[i], row);
        for (int j = 0; j < 4; j++) {
            lir_expr *at[3] = {lir_int(M, i * 4 + j), t, ch};
            if (!lir_seq_push(M, inner, lower_store_out(c, at, row[j])))
                return lower_oom(c);
        }
    }
    return lower_emit(c, outer);
}

kiln_status lower_winograd_output(lower_ctx *c) {
    const kiln_tensor *out = c->out_type[0];
    int64_t b = out->dims[4], oh = out->dims[2], ow = out->dims[3], th = (oh + 1) / 2, tw = (ow + 1) / 2;
    kiln_tensor nest = {.dtype = out->dtype, .rank = 5, .dims = {out->dims[0], out->dims[1], th, tw, b}};
    lir_expr *nc[5];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &nest, nc, &inner, &outer);
    if (st)
        return st;
    lir_expr *t = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[0], lir_int(M, th)), nc[2]),
                                                    lir_int(M, tw)), nc[3]);
    lir_expr *ch = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[1], lir_int(M, b)), nc[4]);
    lir_expr *m[4][4], *s[2][4], *r[2], *bias = NULL;
    for (int a = 0; a < 4; a++)
        for (int e = 0; e < 4; e++)
            m[a][e] = keep(c, inner, "m", lower_read(c, 0, (lir_expr *[]){lir_int(M, a * 4 + e), t, ch}));
    for (int e = 0; e < 4; e++) { /* A^T m: down each column */
        lir_expr *v[4] = {m[0][e], m[1][e], m[2][e], m[3][e]};
        output_rows(c, v, r);
        s[0][e] = keep(c, inner, "s", r[0]), s[1][e] = keep(c, inner, "s", r[1]);
    }
    if (c->node->input_count > 1 && c->in[1])
        bias = keep(c, inner, "bias", lower_read(c, 1, &ch));
    for (int i = 0; i < 2; i++) { /* (A^T m) A: along each row; the last row or column of an odd size is not stored */
        output_rows(c, s[i], r);
        lir_expr *y = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[2], lir_int(M, 2)), lir_int(M, i));
        for (int j = 0; j < 2; j++) {
            lir_expr *z = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, nc[3], lir_int(M, 2)), lir_int(M, j));
            lir_expr *at[5] = {nc[0], nc[1], y, z, nc[4]}, *keep_if = NULL;
            lir_stmt *store = lower_store_out(c, at, bias ? lir_binary(M, LIR_ADD, r[j], bias) : r[j]);
            if (i && oh % 2)
                keep_if = lir_binary(M, LIR_LT, y, lir_int(M, oh));
            if (j && ow % 2) {
                lir_expr *in_row = lir_binary(M, LIR_LT, z, lir_int(M, ow));
                keep_if = keep_if ? lir_binary(M, LIR_AND, keep_if, in_row) : in_row;
            }
            if (store && keep_if)
                store = lir_if(M, keep_if, lower_seq1(c, store), NULL);
            if (!lir_seq_push(M, inner, store))
                return lower_oom(c);
        }
    }
    return lower_emit(c, outer);
}
