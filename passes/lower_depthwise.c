/*
 * lower_depthwise.c — a depthwise ConvNCHWc (as many groups as channels, one output channel
 * each: MobileNet's 3x3 convs), made by passes/layout.c.
 *
 * Vectors run along a block of b channels of one pixel, as in the other blocked convs, but
 * each lane reads its own channel: the input element is a vector load (from a blocked
 * input with the output's block: consecutive; else a gather), not a broadcast, and there
 * is no sum over input channels, only over the KH x KW taps. So the kernel is load- and
 * memory-bound, and two things matter:
 *   - Each input vector is loaded once per kernel row and serves every tap that reads it:
 *     the taps of a row are unrolled here, with one load per distinct input column of the
 *     block's pixels (a 3-tap row over 8 pixels at stride 1: 10 loads for 24
 *     multiply-adds per channel block, where a load per tap took 24).
 *   - No padded copy of the input (the other convs make one: there it is a fraction of a
 *     sum over many input channels; here it cost as much as the conv). Blocks whose window
 *     lies inside the input load without checks; the others (the image's border, a partial
 *     last block) clamp each position into the input and zero what lies outside.
 * The sums run over (kh, kw) in order, as the interpreter's, from the bias.
 */
#include "passes/lower.h"
#include "passes/tuning.h"

#define M (c->m)

static lir_expr *I(lower_ctx *c, int64_t v) { return lir_int(M, v); }
static lir_expr *add(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_ADD, a, b); }
static lir_expr *mul(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_MUL, a, b); }

enum { DW_PIXELS = 12, DW_BLOCKS = 2 }; /* the most pixels (one block: 12) and blocks per lane loop */

typedef struct dw {
    lower_ctx *c;
    const kiln_tensor *x;
    shape_window w;
    kiln_dtype t;
    int v;                         /* channel blocks per lane loop */
    int64_t b, xb, rows, cols;     /* channels per block; the input's block (1: NCHW); pixels rows x cols */
    lir_expr *n, *lane, *cb[DW_BLOCKS], *row0, *col0;
    int acc[DW_BLOCKS][DW_PIXELS]; /* the sums */
} dw;

/* The input vector of channel block cb at input position (ih, iw) (padded coordinates);
 * `clamp`: the position may lie outside the input (zero there). */
static lir_expr *input_at(dw *k, lir_expr *cb, lir_expr *ih, lir_expr *iw, bool clamp) {
    lower_ctx *c = k->c;
    lir_expr *pos[2] = {ih, iw}, *inside = NULL;
    for (int d = 0; d < 2; d++) {
        pos[d] = lir_binary(M, LIR_SUB, pos[d], I(c, k->w.pad_begin[d]));
        if (!clamp)
            continue;
        lir_expr *lo = I(c, 0), *hi = I(c, k->x->dims[2 + d] - 1);
        lir_expr *ok = lir_binary(M, LIR_AND, lir_binary(M, LIR_GE, pos[d], lo), lir_binary(M, LIR_LE, pos[d], hi));
        inside = inside ? lir_binary(M, LIR_AND, inside, ok) : ok;
        pos[d] = lir_binary(M, LIR_MIN, lir_binary(M, LIR_MAX, pos[d], lo), hi);
    }
    lir_expr *xc[5] = {k->n, cb, pos[0], pos[1], k->lane};
    if (k->xb != k->b) { /* channel cb b + lane of an NCHW input, or of other blocks */
        lir_expr *ch = add(c, mul(c, cb, I(c, k->b)), k->lane);
        xc[1] = k->xb > 1 ? lir_binary(M, LIR_DIV, ch, I(c, k->xb)) : ch;
        xc[4] = k->xb > 1 ? lir_binary(M, LIR_REM, ch, I(c, k->xb)) : NULL;
    }
    lir_expr *v = lower_read(c, 0, xc);
    return inside ? lir_select(M, inside, v, lir_const(M, k->t, 0)) : v;
}

/* The block pixel (column within a block row) that tap q reads at input column offset o
 * from the block's first pixel, x sw + q dilation = o; -1 if none. */
static int64_t tap_pixel(const dw *k, int64_t o, int64_t q) {
    int64_t from = o - q * k->w.dilation[1];
    return from >= 0 && from % k->w.stride[1] == 0 && from / k->w.stride[1] < k->cols ? from / k->w.stride[1] : -1;
}

/* The sums over the taps: a loop over the kernel's rows, its columns unrolled. */
static lir_stmt *taps(dw *k, bool clamp) {
    lower_ctx *c = k->c;
    int64_t kw_n = k->w.kernel[1], sw = k->w.stride[1], dwid = k->w.dilation[1];
    lir_expr *kh;
    lir_stmt *body = lir_seq(M), *kh_loop = body ? lower_loop(c, "kh", k->w.kernel[0], body, &kh) : NULL;
    if (!kh_loop)
        return NULL;
    int wv[DW_BLOCKS][DEPTHWISE_MAX_KW];
    for (int v = 0; v < k->v; v++)
        for (int64_t q = 0; q < kw_n; q++) {
            lir_expr *wc[5] = {k->cb[v], kh, I(c, q), I(c, 0), k->lane};
            wv[v][q] = lower_var(c, "w", k->t);
            if (!lir_seq_push(M, body, lir_let(M, wv[v][q], lower_read(c, 1, wc))))
                return NULL;
        }
    /* per pixel row of the block, the input columns its taps read, left to right: column
     * offset o serves each (pixel, tap) tap_pixel pairs with it */
    int64_t span = (k->cols - 1) * sw + (kw_n - 1) * dwid + 1;
    for (int64_t ry = 0; ry < k->rows; ry++) {
        lir_expr *ih = add(c, mul(c, add(c, k->row0, I(c, ry)), I(c, k->w.stride[0])), mul(c, kh, I(c, k->w.dilation[0])));
        for (int64_t o = 0; o < span; o++) {
            bool used = false;
            for (int64_t q = 0; q < kw_n; q++)
                used |= tap_pixel(k, o, q) >= 0;
            if (!used)
                continue;
            lir_expr *iw = add(c, mul(c, k->col0, I(c, sw)), I(c, o));
            for (int v = 0; v < k->v; v++) {
                int xv = lower_var(c, "x", k->t);
                if (!lir_seq_push(M, body, lir_let(M, xv, input_at(k, k->cb[v], ih, iw, clamp))))
                    return NULL;
                for (int64_t q = 0; q < kw_n; q++) {
                    int64_t rx = tap_pixel(k, o, q);
                    if (rx < 0)
                        continue;
                    int a = k->acc[v][ry * k->cols + rx];
                    lir_expr *sum = lir_fma(M, lir_var_ref(M, c->k, xv), lir_var_ref(M, c->k, wv[v][q]), lir_var_ref(M, c->k, a));
                    if (!lir_seq_push(M, body, lir_assign(M, a, sum)))
                        return NULL;
                }
            }
        }
    }
    return kh_loop;
}

/* Whether the block's whole window lies inside the input along axis d (padded coordinates
 * [pad_begin, pad_begin + size)). */
static lir_expr *window_inside(dw *k, int d, lir_expr *first, int64_t count) {
    lower_ctx *c = k->c;
    int64_t s = k->w.stride[d], reach = (k->w.kernel[d] - 1) * k->w.dilation[d];
    lir_expr *lo = mul(c, first, I(c, s)), *hi = add(c, mul(c, add(c, first, I(c, count - 1)), I(c, s)), I(c, reach));
    return lir_binary(M, LIR_AND, lir_binary(M, LIR_GE, lo, I(c, k->w.pad_begin[d])),
                      lir_binary(M, LIR_LT, hi, I(c, k->w.pad_begin[d] + k->x->dims[2 + d])));
}

kiln_status lower_conv_depthwise(lower_ctx *c, const shape_window *w) {
    const kiln_tensor *x = c->in_type[0], *wt = c->in_type[1], *out = c->out_type[0];
    dw k = {.c = c, .x = x, .w = *w, .t = lower_compute_type(out->dtype), .b = wt->dims[4]};
    int64_t blocks = wt->dims[0], oh = out->dims[2], ow = out->dims[3], kw_n = w->kernel[1];
    k.xb = x->rank == 5 ? x->dims[4] : 1;
    /* two channel blocks where the weights of a kernel row leave room: V (R + KW) + R
     * registers at most, of 32 */
    nchwc_plan p = lower_nchwc_plan(blocks, kw_n <= 5, oh, ow);
    int64_t segs = p.segs;
    k.v = p.v, k.rows = p.rows, k.cols = p.cols;
    int64_t groups = (oh + k.rows - 1) / k.rows;
    /* rows in parallel on several threads (the weights are small), as lower_conv_nchwc's */
    int tuned = tuning_get(c->plan ? c->plan->tuning : NULL, TUNE_CONV_ORDER, c->node->name);
    bool rows_outer = M->threads != 1 && groups >= 2 && (tuned == TUNE_UNSET || tuned == TUNE_ROWS);
    kiln_tensor nest = {.dtype = out->dtype, .rank = 5, .dims = {out->dims[0], blocks / k.v, groups, segs, k.b}};
    if (rows_outer)
        nest.dims[1] = groups, nest.dims[2] = blocks / k.v;
    lir_expr *nc[5];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &nest, nc, &inner, &outer);
    if (st)
        return st;
    if (rows_outer) {
        lir_expr *r = nc[1];
        nc[1] = nc[2], nc[2] = r;
    }
    k.n = nc[0], k.lane = nc[4];
    k.row0 = mul(c, nc[2], I(c, k.rows)), k.col0 = mul(c, nc[3], I(c, k.cols));
    for (int v = 0; v < k.v; v++) {
        k.cb[v] = add(c, mul(c, nc[1], I(c, k.v)), I(c, v));
        lir_expr *init = lir_const(M, k.t, 0);
        if (c->node->input_count > 2 && c->in[2])
            init = lower_read(c, 2, (lir_expr *[]){add(c, mul(c, k.cb[v], I(c, k.b)), k.lane)});
        for (int64_t r = 0; r < k.rows * k.cols; r++)
            if (!lir_seq_push(M, inner, lir_let(M, k.acc[v][r] = lower_var(c, "acc", k.t), init)))
                return lower_oom(c);
    }
    bool pads = w->pad_begin[0] || w->pad_begin[1] || w->pad_end[0] || w->pad_end[1];
    bool partial = groups * k.rows > oh || segs * k.cols > ow;
    lir_stmt *sums = taps(&k, pads || partial);
    if (sums && (pads || partial)) { /* blocks inside the input take the loads without checks */
        lir_stmt *fast = taps(&k, false);
        lir_expr *inside = lir_binary(M, LIR_AND, window_inside(&k, 0, k.row0, k.rows), window_inside(&k, 1, k.col0, k.cols));
        sums = fast ? lir_if(M, inside, lower_seq1(c, fast), lower_seq1(c, sums)) : NULL;
    }
    if (!sums || !lir_seq_push(M, inner, sums))
        return lower_oom(c);
    for (int v = 0; v < k.v; v++)
        for (int64_t r = 0; r < k.rows * k.cols; r++) {
            lir_expr *row = add(c, k.row0, I(c, r / k.cols)), *col = add(c, k.col0, I(c, r % k.cols)), *keep = NULL;
            lir_expr *at[5] = {k.n, k.cb[v], row, col, k.lane};
            lir_stmt *store = lower_store_out(c, at, lir_var_ref(M, c->k, k.acc[v][r]));
            if (groups * k.rows > oh)
                keep = lir_binary(M, LIR_LT, row, I(c, oh));
            if (segs * k.cols > ow) {
                lir_expr *in_row = lir_binary(M, LIR_LT, col, I(c, ow));
                keep = keep ? lir_binary(M, LIR_AND, keep, in_row) : in_row;
            }
            if (store && keep)
                store = lir_if(M, keep, lower_seq1(c, store), NULL);
            if (!store || !lir_seq_push(M, inner, store))
                return lower_oom(c);
        }
    return lower_emit(c, outer);
}
