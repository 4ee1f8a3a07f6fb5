/*
 * lower_rnn.c — loop lowering of RNN, GRU and LSTM, step by step as the reference
 * interpreter (backend/interp/interp_rnn.c) and the ONNX operator definitions write them:
 * gates in ONNX's order (GRU z, r, h; LSTM i, o, f, c; peepholes i, o, f), the activations
 * of shape_rnn_activations, optional clip of every pre-activation, per-batch sequence
 * lengths (steps past a sequence's end give zeros in Y), layout 0 or 1.
 *
 * One kernel; per direction, a loop over the batch whose iterations are independent (each
 * batch entry keeps its state in its own rows of the kernel's scratch: h, c, the gate sums
 * W x_t + Wb + R h + Rb, or for GRU the input and recurrent products apart and the next
 * h), so the schedule may split it across threads. Each step computes all gate rows, then
 * the elementwise cell.
 */
#include "passes/lower.h"

#include <stdio.h>
#include <string.h>

#define M (c->m)

/* Batch entries whose gate rows share each weight load: as many as each thread gets, up to
 * 16 accumulators. Every block streams all of R (1 MiB for hidden 256) through the cache at
 * every step, so one thread runs best with one block (the LSTM benchmark, batch 16: 8.1 ms
 * in two blocks of 8, 6.2 in one of 16); several threads each take a block. Within a block,
 * the gate rows are computed for RNN_PAIRED entries at a time, two panels of rows per lane
 * loop (2 x 8 accumulators): the LSTM benchmark's kernel at 2 threads 2.01 -> 1.71 ms, at 1
 * thread (two groups of 8, R streamed twice per step) 3.65 -> 3.44. */
enum { RNN_BATCH = 16, RNN_PAIRED = 8 };

typedef struct rnn_lower {
    lower_ctx *c;
    shape_rnn_spec r;
    kiln_dtype t;              /* compute type */
    int d;                     /* the direction being emitted */
    const shape_activation *f; /* its activations */
    double clip;               /* 0: none */
    lir_buffer *h, *cell, *gx, *gh, *hn, *z, *rg; /* scratch, [batch, ...] (gh, hn, z, rg: GRU) */
    lir_buffer *wt, *rt; /* W and R in panels: [directions, row panels, input or hidden, panel] */
    int64_t panel;       /* gate rows per panel: the vector width, or all rows */
    bool gru;            /* GRU's candidate needs R h apart (gh) and reads all of h after
                            the gates: RNN and LSTM sum W x + R h into gx in one accumulator,
                            and their cells, which read only their own unit, write h in place */
    lir_expr *b, *tt;          /* the batch entry and the time step */
} rnn_lower;

static lir_expr *i64(lower_ctx *c, int64_t v) { return lir_int(M, v); }
static lir_expr *num(rnn_lower *L, double v) { return lir_const(L->c->m, L->t, v); }
static lir_expr *bin(lower_ctx *c, lir_op op, lir_expr *a, lir_expr *b) { return lir_binary(M, op, a, b); }
static lir_expr *add(lower_ctx *c, lir_expr *a, lir_expr *b) { return bin(c, LIR_ADD, a, b); }
static lir_expr *mul(lower_ctx *c, lir_expr *a, lir_expr *b) { return bin(c, LIR_MUL, a, b); }
static lir_expr *ref(lower_ctx *c, int var) { return lir_var_ref(M, c->k, var); }
/* a * n + b, for flat indices */
static lir_expr *mad(lower_ctx *c, lir_expr *a, int64_t n, lir_expr *b) { return add(c, mul(c, a, i64(c, n)), b); }

/* Input i (absent: NULL) at a flat index, in the compute type. */
static lir_expr *in(rnn_lower *L, int i, lir_expr *index) {
    lower_ctx *c = L->c;
    return lir_cast(M, L->t, lir_load(M, c->in[i], index));
}
static lir_expr *scratch(rnn_lower *L, lir_buffer *b, int64_t width, int64_t offset, lir_expr *j) {
    lower_ctx *c = L->c;
    return lir_load(M, b, add(c, mad(c, L->b, width, i64(c, offset)), j));
}
static lir_stmt *to_scratch(rnn_lower *L, lir_buffer *b, int64_t width, int64_t offset, lir_expr *j, lir_expr *v) {
    lower_ctx *c = L->c;
    return lir_store(M, b, add(c, mad(c, L->b, width, i64(c, offset)), j), v);
}

static lir_expr *activate(rnn_lower *L, const shape_activation *f, lir_expr *x) {
    lower_ctx *c = L->c;
    const char *n = f->name;
    lir_expr *zero = num(L, 0), *one = num(L, 1), *alpha = num(L, f->alpha), *beta = num(L, f->beta);
    if (!strcmp(n, "Tanh")) return lir_call(M, LIR_TANH, x, NULL);
    if (!strcmp(n, "Sigmoid")) return bin(c, LIR_DIV, one, add(c, one, lir_call(M, LIR_EXP, lir_unary(M, LIR_NEG, x), NULL)));
    if (!strcmp(n, "Relu")) return bin(c, LIR_MAX, x, zero);
    if (!strcmp(n, "Affine")) return add(c, mul(c, alpha, x), beta);
    if (!strcmp(n, "LeakyRelu")) return lir_select(M, bin(c, LIR_LT, x, zero), mul(c, alpha, x), x);
    if (!strcmp(n, "ThresholdedRelu")) return lir_select(M, bin(c, LIR_GT, x, alpha), x, zero);
    if (!strcmp(n, "ScaledTanh")) return mul(c, alpha, lir_call(M, LIR_TANH, mul(c, beta, x), NULL));
    if (!strcmp(n, "HardSigmoid")) return bin(c, LIR_MAX, zero, bin(c, LIR_MIN, one, add(c, mul(c, alpha, x), beta)));
    if (!strcmp(n, "Elu"))
        return lir_select(M, bin(c, LIR_LT, x, zero), mul(c, alpha, bin(c, LIR_SUB, lir_call(M, LIR_EXP, x, NULL), one)), x);
    if (!strcmp(n, "Softsign")) return bin(c, LIR_DIV, x, add(c, one, lir_unary(M, LIR_ABS, x)));
    return lir_call(M, LIR_LOG1P, lir_call(M, LIR_EXP, x, NULL), NULL); /* Softplus */
}

static lir_expr *clipped(rnn_lower *L, lir_expr *v) {
    lower_ctx *c = L->c;
    return L->clip > 0 ? bin(c, LIR_MAX, num(L, -L->clip), bin(c, LIR_MIN, num(L, L->clip), v)) : v;
}

/* Each gate row of W x_t (+ Wb) into gx and of R h (+ Rb) into gh (not GRU: their sum into
 * gx, one accumulator running on from the x loop into the h loop), for the `n` batch
 * entries b[0..n) at their steps t[0..n) at once: one load of a weight serves them all.
 * The lane loop (rows of a panel) is the one vectorized: a panel's weights for one k are
 * consecutive, and a panel's whole strip (k = 0, 1, ...) too, so each step streams R in
 * order (rows x hidden transposed whole, the strip was 256 loads 4 KiB apart). */
static kiln_status gate_rows(rnn_lower *L, lir_stmt *step, int n, lir_expr **bs, lir_expr **ts) {
    lower_ctx *c = L->c;
    const shape_rnn_spec *r = &L->r;
    int64_t rows = r->gates * r->hidden, H = r->hidden, I = r->input, S = r->seq, B = r->batch, P = L->panel;
    /* two panels per lane loop when there are few entries: each input element loaded
     * serves both (2 weight loads + n broadcasts per 2 n multiply-adds, where one panel
     * took 1 + n per n: the loads, not the FMAs, were the limit) */
    int pairs = P > 1 && (rows / P) % 2 == 0 && n <= RNN_PAIRED ? 2 : 1;
    lir_expr *rp, *lane, *k, *k2, *panel[2], *row[2];
    lir_stmt *body = lir_seq(M), *lane_loop = lower_loop(c, "lane", P, body, &lane);
    lir_stmt *row_loop = lower_loop(c, "panel", rows / P / pairs, lower_seq1(c, lane_loop), &rp);
    lir_stmt *xsum = lir_seq(M), *hsum = lir_seq(M);
    lir_stmt *x_loop = lower_loop(c, "k", I, xsum, &k), *h_loop = lower_loop(c, "kh", H, hsum, &k2);
    int wv[2], rv[2], acc[2][RNN_BATCH], racc[2][RNN_BATCH];
    bool bias = c->node->input_count > 3 && c->in[3];
    if (!body || !xsum || !hsum)
        return lower_oom(c);
    for (int v = 0; v < pairs; v++) {
        panel[v] = pairs == 2 ? mad(c, rp, 2, i64(c, v)) : rp;
        row[v] = mad(c, panel[v], P, lane);
        wv[v] = lower_var(c, "w", L->t), rv[v] = lower_var(c, "r", L->t);
        if (!lir_seq_push(M, xsum, lir_let(M, wv[v], lir_load(M, L->wt, mad(c, mad(c, mad(c, i64(c, L->d), rows / P, panel[v]), I, k), P, lane)))) ||
            !lir_seq_push(M, hsum, lir_let(M, rv[v], lir_load(M, L->rt, mad(c, mad(c, mad(c, i64(c, L->d), rows / P, panel[v]), H, k2), P, lane)))))
            return lower_oom(c);
    }
    for (int e = 0; e < n; e++) {
        L->b = bs[e];
        lir_expr *x_at = r->layout ? mad(c, mad(c, bs[e], S, ts[e]), I, k) : mad(c, mad(c, ts[e], B, bs[e]), I, k);
        lir_expr *xe = in(L, 0, x_at), *he = scratch(L, L->h, H, 0, k2);
        for (int v = 0; v < pairs; v++) {
            lir_expr *wb = bias ? in(L, 3, add(c, i64(c, L->d * 2 * rows), row[v])) : num(L, 0);
            lir_expr *rb = bias ? in(L, 3, add(c, i64(c, L->d * 2 * rows + rows), row[v])) : num(L, 0);
            acc[v][e] = lower_var(c, "acc", L->t);
            racc[v][e] = !L->gru ? acc[v][e] : lower_var(c, "racc", L->t);
            if (!lir_seq_push(M, xsum, lir_assign(M, acc[v][e], lir_fma(M, ref(c, wv[v]), xe, ref(c, acc[v][e])))) ||
                !lir_seq_push(M, hsum, lir_assign(M, racc[v][e], lir_fma(M, ref(c, rv[v]), he, ref(c, racc[v][e])))) ||
                !lir_seq_push(M, body, lir_let(M, acc[v][e], !L->gru ? add(c, wb, rb) : wb)) ||
                (L->gru && !lir_seq_push(M, body, lir_let(M, racc[v][e], rb))))
                return lower_oom(c);
        }
    }
    if (!lir_seq_push(M, body, x_loop) || !lir_seq_push(M, body, h_loop))
        return lower_oom(c);
    for (int e = 0; e < n; e++) {
        L->b = bs[e];
        for (int v = 0; v < pairs; v++)
            if (!lir_seq_push(M, body, to_scratch(L, L->gx, rows, 0, row[v], ref(c, acc[v][e]))) ||
                (L->gru && !lir_seq_push(M, body, to_scratch(L, L->gh, rows, 0, row[v], ref(c, racc[v][e])))))
                return lower_oom(c);
    }
    return lir_seq_push(M, step, row_loop) ? KILN_OK : lower_oom(c);
}

/* gx + gh (not GRU: gx) of gate g at hidden unit j, plus extra (peephole) when given. */
static lir_expr *pre(rnn_lower *L, int g, lir_expr *j, lir_expr *extra) {
    lower_ctx *c = L->c;
    int64_t rows = L->r.gates * L->r.hidden, H = L->r.hidden;
    lir_expr *v = scratch(L, L->gx, rows, g * H, j);
    if (L->gru)
        v = add(c, v, scratch(L, L->gh, rows, g * H, j));
    return clipped(L, extra ? add(c, v, extra) : v);
}

/* Where Y[t, d, b, j] (layout 0) or Y[b, t, d, j] (layout 1) lives. */
static lir_expr *y_at(rnn_lower *L, lir_expr *t, lir_expr *j) {
    lower_ctx *c = L->c;
    const shape_rnn_spec *r = &L->r;
    lir_expr *d = i64(c, L->d);
    return r->layout ? mad(c, mad(c, mad(c, L->b, r->seq, t), r->directions, d), r->hidden, j)
                     : mad(c, mad(c, mad(c, t, r->directions, d), r->batch, L->b), r->hidden, j);
}
/* Where the state [d, b, j] (layout 0) or [b, d, j] (layout 1) lives. */
static lir_expr *state_at(rnn_lower *L, lir_expr *j) {
    lower_ctx *c = L->c;
    const shape_rnn_spec *r = &L->r;
    lir_expr *d = i64(c, L->d);
    return r->layout ? mad(c, mad(c, L->b, r->directions, d), r->hidden, j) : mad(c, mad(c, d, r->batch, L->b), r->hidden, j);
}

static bool has_out(lower_ctx *c, int i) { return i < c->node->output_count && c->out[i]; }

/* The step's new h at unit j: into hn (GRU), or into h and Y at once. */
static bool new_h(rnn_lower *L, lir_stmt *body, lir_expr *j, lir_expr *v) {
    lower_ctx *c = L->c;
    int64_t H = L->r.hidden;
    if (L->gru)
        return lir_seq_push(M, body, to_scratch(L, L->hn, H, 0, j, v));
    int hv = lower_var(c, "h_new", L->t);
    return lir_seq_push(M, body, lir_let(M, hv, v)) && lir_seq_push(M, body, to_scratch(L, L->h, H, 0, j, ref(c, hv))) &&
           (!has_out(c, 0) ||
            lir_seq_push(M, body, lir_store(M, c->out[0], y_at(L, L->tt, j), lir_cast(M, c->out_type[0]->dtype, ref(c, hv)))));
}

/* The elementwise cell of one step: the new h (and, for LSTM, the new cell state in place). */
static kiln_status cell(rnn_lower *L, lir_stmt *step) {
    lower_ctx *c = L->c;
    int64_t H = L->r.hidden, rows = L->r.gates * H;
    lir_expr *j;
    lir_stmt *body = lir_seq(M), *j_loop = lower_loop(c, "j", H, body, &j);
    if (!body || !lir_seq_push(M, step, j_loop))
        return lower_oom(c);
    ir_op op = c->node->op;
    if (op == IR_OP_RNN)
        return new_h(L, body, j, activate(L, &L->f[0], pre(L, 0, j, NULL))) ? KILN_OK : lower_oom(c);
    if (op == IR_OP_LSTM) {
        bool peep = c->node->input_count > 7 && c->in[7];
        lir_expr *pi = NULL, *po = NULL, *pf = NULL;
        if (peep) {
            int64_t base = L->d * 3 * H;
            pi = in(L, 7, add(c, i64(c, base), j)), po = in(L, 7, add(c, i64(c, base + H), j));
            pf = in(L, 7, add(c, i64(c, base + 2 * H), j));
        }
        lir_expr *old = scratch(L, L->cell, H, 0, j);
        int iv = lower_var(c, "ig", L->t), fv = lower_var(c, "fg", L->t), cv = lower_var(c, "cn", L->t);
        lir_expr *f = ir_attr_int(c->node, "input_forget") ? bin(c, LIR_SUB, num(L, 1), ref(c, iv))
                                                            : activate(L, &L->f[0], pre(L, 2, j, pf ? mul(c, pf, old) : NULL));
        lir_expr *g = activate(L, &L->f[1], pre(L, 3, j, NULL));
        lir_expr *cn = add(c, mul(c, ref(c, fv), old), mul(c, ref(c, iv), g));
        lir_expr *o = activate(L, &L->f[0], pre(L, 1, j, po ? mul(c, po, ref(c, cv)) : NULL));
        if (!lir_seq_push(M, body, lir_let(M, iv, activate(L, &L->f[0], pre(L, 0, j, pi ? mul(c, pi, old) : NULL)))) ||
            !lir_seq_push(M, body, lir_let(M, fv, f)) || !lir_seq_push(M, body, lir_let(M, cv, cn)) ||
            !lir_seq_push(M, body, to_scratch(L, L->cell, H, 0, j, ref(c, cv))) ||
            !new_h(L, body, j, mul(c, o, activate(L, &L->f[2], ref(c, cv)))))
            return lower_oom(c);
        return KILN_OK;
    }
    /* GRU: z and r for every unit first (the candidate reads r of all units), then h */
    if (!lir_seq_push(M, body, to_scratch(L, L->z, H, 0, j, activate(L, &L->f[0], pre(L, 0, j, NULL)))) ||
        !lir_seq_push(M, body, to_scratch(L, L->rg, H, 0, j, activate(L, &L->f[0], pre(L, 1, j, NULL)))))
        return lower_oom(c);
    lir_expr *j2;
    lir_stmt *body2 = lir_seq(M), *loop2 = lower_loop(c, "j2", H, body2, &j2);
    if (!body2 || !lir_seq_push(M, step, loop2))
        return lower_oom(c);
    int recur = lower_var(c, "recur", L->t);
    if (ir_attr_int(c->node, "linear_before_reset")) {
        if (!lir_seq_push(M, body2, lir_let(M, recur, mul(c, scratch(L, L->rg, H, 0, j2), scratch(L, L->gh, rows, 2 * H, j2)))))
            return lower_oom(c);
    } else { /* (r . h) R_h^T + Rb_h */
        bool bias = c->node->input_count > 3 && c->in[3];
        lir_expr *k, *rb = bias ? in(L, 3, add(c, i64(c, L->d * 2 * rows + rows + 2 * H), j2)) : num(L, 0);
        lir_stmt *sum = lir_seq(M), *k_loop = lower_loop(c, "k", H, sum, &k);
        lir_expr *r_at = mad(c, add(c, i64(c, L->d * rows + 2 * H), j2), H, k);
        lir_expr *term = mul(c, in(L, 2, r_at), mul(c, scratch(L, L->rg, H, 0, k), scratch(L, L->h, H, 0, k)));
        if (!sum || !lir_seq_push(M, sum, lir_assign(M, recur, add(c, ref(c, recur), term))) ||
            !lir_seq_push(M, body2, lir_let(M, recur, rb)) || !lir_seq_push(M, body2, k_loop))
            return lower_oom(c);
    }
    lir_expr *gx_h = scratch(L, L->gx, rows, 2 * H, j2), *zj = scratch(L, L->z, H, 0, j2);
    lir_expr *cand = activate(L, &L->f[1], clipped(L, add(c, gx_h, ref(c, recur))));
    lir_expr *h_new = add(c, mul(c, bin(c, LIR_SUB, num(L, 1), zj), cand), mul(c, zj, scratch(L, L->h, H, 0, j2)));
    return lir_seq_push(M, body2, to_scratch(L, L->hn, H, 0, j2, h_new)) ? KILN_OK : lower_oom(c);
}

/* One direction: batch entries in blocks of RNN_BATCH (the blocks may run on several
 * threads); in each, the steps in order, every entry of the block at its own time step,
 * its gate rows computed together; the cell of an entry runs while its sequence lasts. */
static kiln_status direction(rnn_lower *L) {
    lower_ctx *c = L->c;
    const shape_rnn_spec *r = &L->r;
    int64_t H = r->hidden, S = r->seq, B = r->batch;
    bool lstm = c->node->op == IR_OP_LSTM, backward = r->reverse || L->d == 1;
    int64_t threads = M->threads > 0 ? M->threads : 2, per_thread = (B + threads - 1) / threads;
    int n = per_thread < RNN_BATCH ? (int)(per_thread > 0 ? per_thread : 1) : RNN_BATCH;
    lir_expr *bb, *bs[RNN_BATCH], *valid[RNN_BATCH], *lens_v[RNN_BATCH], *ts[RNN_BATCH];
    lir_stmt *per_blk = lir_seq(M), *blk_loop = lower_loop(c, "bb", (B + n - 1) / n, per_blk, &bb);
    lir_stmt *pre = lir_seq(M), *post = lir_seq(M);
    if (!blk_loop || !pre || !post)
        return lower_oom(c);
    lower_parallel(blk_loop); /* blocks share nothing */
    bool lens = c->node->input_count > 4 && c->in[4], partial = B % n != 0;
    bool h0 = c->node->input_count > 5 && c->in[5], c0 = lstm && c->node->input_count > 6 && c->in[6];
    char msg[96];
    snprintf(msg, sizeof msg, "a sequence length is outside [0, %lld]", (long long)S);
    for (int e = 0; e < n; e++) {
        lir_expr *real = add(c, mul(c, bb, i64(c, n)), i64(c, e));
        bs[e] = bin(c, LIR_MIN, real, i64(c, B - 1)); /* a partial block's extra entries repeat the last one */
        valid[e] = partial ? bin(c, LIR_LT, real, i64(c, B)) : NULL;
        int len = lower_var(c, "len", KILN_I64);
        lens_v[e] = ref(c, len);
        lir_stmt *setup = lir_seq(M);
        L->b = bs[e];
        lir_expr *j;
        lir_stmt *init = lir_seq(M), *init_loop = lower_loop(c, "j", H, init, &j);
        if (!setup || !init ||
            !lir_seq_push(M, per_blk, lir_let(M, len, lens ? lir_cast(M, KILN_I64, lir_load(M, c->in[4], bs[e])) : i64(c, S))) ||
            (lens && !lir_seq_push(M, setup, lir_if(M, bin(c, LIR_OR, bin(c, LIR_LT, lens_v[e], i64(c, 0)),
                                                             bin(c, LIR_GT, lens_v[e], i64(c, S))), lir_fail(M, msg), NULL))) ||
            !lir_seq_push(M, init, to_scratch(L, L->h, H, 0, j, h0 ? in(L, 5, state_at(L, j)) : num(L, 0))) ||
            (lstm && !lir_seq_push(M, init, to_scratch(L, L->cell, H, 0, j, c0 ? in(L, 6, state_at(L, j)) : num(L, 0)))) ||
            !lir_seq_push(M, setup, init_loop) || !lir_seq_push(M, pre, valid[e] ? lir_if(M, valid[e], setup, NULL) : setup))
            return lower_oom(c);
    }
    /* the steps: s in [0, S); entry e is at t = s (backward: len - 1 - s) while s < len */
    int s_var = lower_var(c, "s", KILN_I64);
    lir_expr *s = ref(c, s_var);
    lir_stmt *step = lir_seq(M), *s_loop = lir_for(M, s_var, i64(c, 0), i64(c, S), step);
    if (!s_loop)
        return lower_oom(c);
    for (int e = 0; e < n; e++) {
        int tt = lower_var(c, "t", KILN_I64);
        lir_expr *t_v = backward ? bin(c, LIR_MAX, bin(c, LIR_SUB, bin(c, LIR_SUB, lens_v[e], i64(c, 1)), s), i64(c, 0)) : s;
        ts[e] = ref(c, tt);
        if (!lir_seq_push(M, step, lir_let(M, tt, t_v)))
            return lower_oom(c);
    }
    kiln_status st = KILN_OK;
    for (int e = 0; e < n && !st; e += RNN_PAIRED) /* groups of entries whose panels go in pairs */
        st = gate_rows(L, step, n - e < RNN_PAIRED ? n - e : RNN_PAIRED, bs + e, ts + e);
    if (st)
        return st;
    for (int e = 0; e < n; e++) {
        L->b = bs[e], L->tt = ts[e];
        lir_stmt *run = lir_seq(M);
        if (!run || (st = cell(L, run)))
            return st ? st : lower_oom(c);
        if (L->gru) { /* h_next into h and Y after the whole cell (its candidate reads all of h) */
            lir_expr *k;
            lir_stmt *copy = lir_seq(M), *copy_loop = lower_loop(c, "j", H, copy, &k);
            if (!copy || !lir_seq_push(M, copy, to_scratch(L, L->h, H, 0, k, scratch(L, L->hn, H, 0, k))) ||
                (has_out(c, 0) && !lir_seq_push(M, copy, lir_store(M, c->out[0], y_at(L, L->tt, k),
                                                                    lir_cast(M, c->out_type[0]->dtype, scratch(L, L->hn, H, 0, k))))) ||
                !lir_seq_push(M, run, copy_loop))
                return lower_oom(c);
        }
        lir_expr *live = bin(c, LIR_LT, s, lens_v[e]);
        if (!lir_seq_push(M, step, lir_if(M, valid[e] ? bin(c, LIR_AND, valid[e], live) : live, run, NULL)))
            return lower_oom(c);
    }
    /* after: zeros in Y past each sequence's end, and the final states */
    for (int e = 0; e < n; e++) {
        L->b = bs[e];
        lir_stmt *fin_all = lir_seq(M);
        if (!fin_all)
            return lower_oom(c);
        if (has_out(c, 0)) {
            int z = lower_var(c, "tz", KILN_I64);
            lir_expr *jz;
            lir_stmt *zb = lir_seq(M), *zj = lower_loop(c, "j", H, zb, &jz);
            lir_stmt *zt = lir_for(M, z, lens_v[e], i64(c, S), lower_seq1(c, zj));
            if (!zb || !zt || !lir_seq_push(M, zb, lir_store(M, c->out[0], y_at(L, ref(c, z), jz), lir_const(M, c->out_type[0]->dtype, 0))) ||
                !lir_seq_push(M, fin_all, zt))
                return lower_oom(c);
        }
        lir_expr *f;
        lir_stmt *fin = lir_seq(M), *fin_loop = lower_loop(c, "j", H, fin, &f);
        if (!fin || (has_out(c, 1) && !lir_seq_push(M, fin, lir_store(M, c->out[1], state_at(L, f),
                                                                       lir_cast(M, c->out_type[1]->dtype, scratch(L, L->h, H, 0, f))))) ||
            (lstm && has_out(c, 2) && !lir_seq_push(M, fin, lir_store(M, c->out[2], state_at(L, f),
                                                                       lir_cast(M, c->out_type[2]->dtype, scratch(L, L->cell, H, 0, f))))) ||
            !lir_seq_push(M, fin_all, fin_loop) || !lir_seq_push(M, post, valid[e] ? lir_if(M, valid[e], fin_all, NULL) : fin_all))
            return lower_oom(c);
    }
    if (!lir_seq_push(M, per_blk, pre) || !lir_seq_push(M, per_blk, s_loop) || !lir_seq_push(M, per_blk, post))
        return lower_oom(c);
    return lower_emit(c, blk_loop);
}

static kiln_status recurrent(lower_ctx *c, int gates) {
    rnn_lower L = {.c = c};
    shape_ctx s = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    kiln_status st = shape_rnn_dims(&s, gates, &L.r);
    if (st)
        return st;
    int per_direction = gates == 1 ? 1 : gates == 3 ? 2 : 3;
    shape_activation funcs[SHAPE_RNN_MAX_ACTIVATIONS];
    if ((st = shape_rnn_activations(&s, per_direction, L.r.directions, funcs)))
        return st;
    L.t = lower_compute_type(c->in_type[0]->dtype);
    L.clip = ir_node_attr(c->node, "clip") ? ir_attr_float(c->node, "clip") : 0;
    int64_t B = L.r.batch, H = L.r.hidden, rows = gates * H;
    L.gru = gates == 3;
    if (!(L.h = lir_local(M, c->k, "h", L.t, B * H)) || (L.gru && !(L.hn = lir_local(M, c->k, "h_next", L.t, B * H))) ||
        !(L.gx = lir_local(M, c->k, "gates_x", L.t, B * rows)) ||
        (L.gru && !(L.gh = lir_local(M, c->k, "gates_h", L.t, B * rows))) ||
        (gates == 4 && !(L.cell = lir_local(M, c->k, "c", L.t, B * H))) ||
        (gates == 3 && (!(L.z = lir_local(M, c->k, "z", L.t, B * H)) || !(L.rg = lir_local(M, c->k, "r", L.t, B * H)))))
        return lower_oom(c);
    int64_t D = L.r.directions, I = L.r.input;
    if (!(L.wt = lir_local(M, c->k, "w_t", L.t, D * I * rows)) || !(L.rt = lir_local(M, c->k, "r_t", L.t, D * H * rows)))
        return lower_oom(c);
    int64_t lanes = M->vector_bits / (8 * (int64_t)kiln_dtype_size(L.t));
    L.panel = lanes > 1 && rows % lanes == 0 ? lanes : rows;
    /* W and R in panels: the gate rows then read them as consecutive elements across the
     * lanes of their vector loop. Constant weights are packed once, by a kernel of their
     * own, into the persistent block (see row_blocked); others at every run. */
    lir_kernel *kernel = c->k, *pack = NULL;
    for (int which = 0; which < 2; which++) {
        int64_t cols = which ? H : I, P = L.panel;
        lir_buffer *src_buf = c->in[1 + which], *packed = which ? L.rt : L.wt;
        if (lower_input_constant(c, 1 + which)) {
            if ((!pack && !(pack = lower_pack_kernel(c))) || !(c->in[1 + which] = lir_param(M, pack, src_buf->value)) ||
                !lir_kernel_use(M, pack, packed))
                return lower_oom(c);
            packed->persistent = true;
            c->k = pack;
        }
        lir_expr *dp, *k, *lane;
        lir_stmt *body = lir_seq(M), *lane_loop = lower_loop(c, "lane", P, body, &lane);
        lir_stmt *k_loop = lower_loop(c, "k", cols, lower_seq1(c, lane_loop), &k);
        lir_stmt *dp_loop = lower_loop(c, "dp", D * (rows / P), lower_seq1(c, k_loop), &dp);
        /* W[d, p P + lane, k] for panel dp = d (rows / P) + p: row d rows + p P + lane = dp P + lane */
        lir_expr *src = mad(c, mad(c, dp, P, lane), cols, k);
        if (!dp_loop || !lir_seq_push(M, body, lir_store(M, which ? L.rt : L.wt, mad(c, mad(c, dp, cols, k), P, lane),
                                                         in(&L, 1 + which, src))) ||
            (st = lower_emit(c, dp_loop)))
            return st ? st : lower_oom(c);
        c->k = kernel, c->in[1 + which] = src_buf;
    }
    for (L.d = 0; L.d < L.r.directions; L.d++) {
        L.f = &funcs[L.d * per_direction];
        if ((st = direction(&L)))
            return st;
    }
    return KILN_OK;
}

kiln_status lower_rnn(lower_ctx *c) { return recurrent(c, 1); }
kiln_status lower_gru(lower_ctx *c) { return recurrent(c, 3); }
kiln_status lower_lstm(lower_ctx *c) { return recurrent(c, 4); }
