/*
 * lower_attention.c — attention as one kernel: Softmax(scale * Q x KT [+ mask]) x V along
 * the last axis (fuse.c finds the pattern), without ever storing the scores whole.
 *
 * For each batch (the parallel loop) and each block of ATTENTION_ROWS query rows, the keys
 * go by in blocks (all of them when there are at most 2 x ATTENTION_KEYS):
 *   1. the block's scores, a small GEMM with one accumulator per query row, vectorized
 *      over the keys, land in scratch (rows x keys: a few KiB, in L1);
 *   2. per row, the block's max and sum of exponentials (lane partials) update the running
 *      max and sum, the online softmax: what was summed so far is scaled by
 *      exp(old max - new max), and the scores become their exponentials;
 *   3. P x V for the block adds into one accumulator row per query row (vectorized over
 *      V's columns), after scaling it by the same factor.
 * With all the keys in one block (Lk <= 2 x ATTENTION_KEYS) the block's max and sum are the
 * row's: nothing is rescaled, and the accumulators start at the first product.
 * At the end each row is divided by its sum and stored through the epilogue. The results
 * differ from the unfused graph's by rounding only (sums in another order, the division
 * after the product): the MatMul tolerance. A row whose scores are all -inf gives NaN, as
 * the unfused softmax does.
 */
#include "passes/lower.h"

#include <math.h>

#define M (c->m)

static lir_expr *I(lower_ctx *c, int64_t v) { return lir_int(M, v); }
static lir_expr *add(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_ADD, a, b); }
static lir_expr *mul(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_MUL, a, b); }
static lir_expr *ref(lower_ctx *c, int v) { return lir_var_ref(M, c->k, v); }

typedef struct attn {
    lower_ctx *c;
    const fuse_attention *a;
    kiln_dtype t;
    int rank;
    int64_t lq, d, lk, dv, rows, block, w;
    lir_expr *b, *bc[KILN_MAX_RANK]; /* the flat batch index; the batch coordinates (rows, columns: 0) */
    lir_expr *row[ATTENTION_ROWS];   /* the block's query rows, clamped to the last */
    lir_expr *j0, *len;              /* the key block's first key and length */
    bool vpairs;                     /* V's columns in pairs of vectors (acc[1]: the second of each pair) */
    bool one_block;                  /* all keys in one block: no running max to rescale by */
    lir_buffer *s, *acc[2][ATTENTION_ROWS], *stats, *part;
    lir_expr *shift;                 /* the row's exponent shift (lane pass) */
    lir_expr *s_row;                 /* the row's scores in s (lane pass) */
} attn;

/* stats per (batch, row): running max, running sum, this block's rescale factor */
static lir_expr *stat(attn *x, lir_expr *r, int which) {
    lower_ctx *c = x->c;
    return add(c, mul(c, add(c, mul(c, x->b, I(c, x->rows)), r), I(c, 3)), I(c, which));
}

static lir_expr *score_at(attn *x, lir_expr *r, lir_expr *j) {
    lower_ctx *c = x->c;
    return add(c, mul(c, add(c, mul(c, x->b, I(c, x->rows)), r), I(c, x->block)), j);
}

/* A loop over [0, n) in vectors: plain (`pairs` 0: the schedule vectorizes *var's loop), or
 * (pairs 1) in pairs of w-lane vectors, *var then a pair index and *lane the lane loop's:
 * element h of the pair is at pair * 2w + h * w + lane. Returns the outer loop. */
static lir_stmt *vector_loop(attn *x, bool pairs, lir_expr *n, lir_stmt *body, lir_expr **var, lir_expr **lane) {
    lower_ctx *c = x->c;
    int v = lower_var(c, pairs ? "pair" : "j", KILN_I64);
    *var = ref(c, v);
    if (!pairs)
        return lir_for(M, v, I(c, 0), n, body);
    int l = lower_var(c, "lane", KILN_I64);
    *lane = ref(c, l);
    lir_stmt *inner = lir_for(M, l, I(c, 0), I(c, x->w), body);
    lir_expr *count = lir_binary(M, LIR_DIV, n, I(c, 2 * x->w));
    return inner ? lir_for(M, v, I(c, 0), count, lower_seq1(c, inner)) : NULL;
}

static lir_expr *pair_at(attn *x, bool pairs, lir_expr *var, lir_expr *lane, int h) {
    lower_ctx *c = x->c;
    return pairs ? add(c, add(c, mul(c, var, I(c, 2 * x->w)), I(c, h * x->w)), lane) : var;
}

/* 1. scores[r][j] = scale * sum_k Q[row r][k] * KT[k][j0 + j] (+ mask), j < len; in pairs of
 * key vectors where the key blocks allow (16 accumulators: each Q element loaded serves
 * two vectors, as in the GEMM) */
static lir_stmt *scores(attn *x) {
    lower_ctx *c = x->c;
    bool pairs = x->w >= 8 && x->block % (2 * x->w) == 0 && x->lk % x->block == 0;
    int halves = pairs ? 2 : 1;
    int kv = lower_var(c, "k", KILN_I64), key[2], s[2][ATTENTION_ROWS];
    lir_stmt *body = lir_seq(M), *k_body = lir_seq(M);
    lir_expr *jv, *lane = NULL;
    lir_stmt *outer = body ? vector_loop(x, pairs, x->len, body, &jv, &lane) : NULL;
    if (!outer || !k_body)
        return NULL;
    lir_expr *k = ref(c, kv), *col[2];
    for (int h = 0; h < halves; h++) {
        lir_expr *j = pair_at(x, pairs, jv, lane, h);
        col[h] = add(c, x->j0, j);
        key[h] = lower_var(c, "kt", x->t);
        lir_expr *kt = lir_load(M, c->in[1], add(c, mul(c, add(c, mul(c, x->b, I(c, x->d)), k), I(c, x->lk)), col[h]));
        if (!lir_seq_push(M, k_body, lir_let(M, key[h], kt)))
            return NULL;
    }
    for (int r = 0; r < x->rows; r++) {
        lir_expr *q = lir_load(M, c->in[0], add(c, mul(c, add(c, mul(c, x->b, I(c, x->lq)), x->row[r]), I(c, x->d)), k));
        for (int h = 0; h < halves; h++) {
            s[h][r] = lower_var(c, "s", x->t);
            if (!lir_seq_push(M, body, lir_let(M, s[h][r], lir_const(M, x->t, 0))) ||
                !lir_seq_push(M, k_body, lir_assign(M, s[h][r], lir_fma(M, q, ref(c, key[h]), ref(c, s[h][r])))))
                return NULL;
        }
    }
    if (!lir_seq_push(M, body, lir_for(M, kv, I(c, 0), I(c, x->d), k_body)))
        return NULL;
    for (int h = 0; h < halves; h++)
        for (int r = 0; r < x->rows; r++) {
            lir_expr *v = ref(c, s[h][r]);
            if (x->a->scale)
                v = mul(c, v, lir_const(M, x->t, x->a->scale_value));
            if (c->in[3]) {
                lir_expr *mc[KILN_MAX_RANK];
                for (int d = 0; d < x->rank; d++)
                    mc[d] = x->bc[d];
                mc[x->rank - 2] = x->row[r], mc[x->rank - 1] = col[h];
                v = add(c, v, lir_load(M, c->in[3], lower_index(c, c->in_type[3], mc, x->rank)));
            }
            if (!lir_seq_push(M, body, lir_store(M, x->s, score_at(x, I(c, r), pair_at(x, pairs, jv, lane, h)), v)))
                return NULL;
        }
    return outer;
}

static lir_expr *score_max(lower_ctx *c, lir_expr *j, lir_stmt *body, void *arg) {
    attn *x = arg;
    (void)body;
    return lir_load(M, x->s, add(c, x->s_row, j));
}

static lir_expr *score_exp(lower_ctx *c, lir_expr *j, lir_stmt *body, void *arg) {
    attn *x = arg;
    lir_expr *at = add(c, x->s_row, j);
    int e = lower_var(c, "p", x->t);
    if (!lir_seq_push(M, body, lir_let(M, e, lir_call(M, LIR_EXP, lir_binary(M, LIR_SUB, lir_load(M, x->s, at), x->shift), NULL))) ||
        !lir_seq_push(M, body, lir_store(M, x->s, at, ref(c, e))))
        return NULL;
    return ref(c, e);
}

/* 2. per row: the block's max and exponentials; the running max, sum and rescale factor */
static lir_stmt *online_softmax(attn *x) {
    lower_ctx *c = x->c;
    int rv = lower_var(c, "r", KILN_I64), mb = lower_var(c, "block_max", x->t), sum = lower_var(c, "block_sum", x->t);
    int max = lower_var(c, "max", x->t), shift = lower_var(c, "shift", x->t);
    lir_stmt *body = lir_seq(M);
    lir_expr *r = ref(c, rv), *part = mul(c, x->b, I(c, x->w));
    lir_expr *ninf = lir_const(M, x->t, -INFINITY);
    x->s_row = score_at(x, r, I(c, 0)), x->shift = ref(c, shift);
    lir_stmt *pmax = lower_lane_pass(c, x->part, part, x->len, x->w, LIR_MAX, ninf, score_max, x, mb);
    lir_stmt *psum = lower_lane_pass(c, x->part, part, x->len, x->w, LIR_ADD, lir_const(M, x->t, 0), score_exp, x, sum);
    lir_expr *m = ref(c, max);
    if (x->one_block) { /* the block's max and sum are the row's: nothing to rescale (a scalar exp per row less) */
        if (!body || !pmax || !psum || !lir_seq_push(M, body, pmax) || !lir_seq_push(M, body, lir_let(M, max, ref(c, mb))) ||
            !lir_seq_push(M, body, lir_let(M, shift, lir_select(M, lir_binary(M, LIR_EQ, m, ninf), lir_const(M, x->t, 0), m))) ||
            !lir_seq_push(M, body, psum) || !lir_seq_push(M, body, lir_store(M, x->stats, stat(x, r, 1), ref(c, sum))))
            return NULL;
        return lir_for(M, rv, I(c, 0), I(c, x->rows), body);
    }
    int old = lower_var(c, "old_max", x->t), corr = lower_var(c, "rescale", x->t);
    if (!body || !pmax || !psum || !lir_seq_push(M, body, pmax) ||
        !lir_seq_push(M, body, lir_let(M, old, lir_load(M, x->stats, stat(x, r, 0)))) ||
        !lir_seq_push(M, body, lir_let(M, max, lir_max_any(M, LIR_MAX, ref(c, old), ref(c, mb)))) ||
        /* all -inf so far: shift by 0, so exp gives 0 rather than exp(-inf + inf) = NaN */
        !lir_seq_push(M, body, lir_let(M, shift, lir_select(M, lir_binary(M, LIR_EQ, m, ninf), lir_const(M, x->t, 0), m))) ||
        !lir_seq_push(M, body, psum) ||
        !lir_seq_push(M, body, lir_let(M, corr, lir_call(M, LIR_EXP, lir_binary(M, LIR_SUB, ref(c, old), x->shift), NULL))) ||
        !lir_seq_push(M, body, lir_store(M, x->stats, stat(x, r, 0), m)) ||
        !lir_seq_push(M, body, lir_store(M, x->stats, stat(x, r, 1),
                                         add(c, mul(c, lir_load(M, x->stats, stat(x, r, 1)), ref(c, corr)), ref(c, sum)))) ||
        !lir_seq_push(M, body, lir_store(M, x->stats, stat(x, r, 2), ref(c, corr))))
        return NULL;
    return lir_for(M, rv, I(c, 0), I(c, x->rows), body);
}

/* 3. acc[r][e] = acc[r][e] * rescale[r] + sum_j p[r][j] * V[j0 + j][e], in pairs of column
 * vectors where V's width allows */
static lir_stmt *times_v(attn *x) {
    lower_ctx *c = x->c;
    bool pairs = x->vpairs;
    int halves = pairs ? 2 : 1;
    int jv = lower_var(c, "j", KILN_I64), vv[2], a[2][ATTENTION_ROWS];
    lir_stmt *body = lir_seq(M), *j_body = lir_seq(M);
    lir_expr *ev, *lane = NULL;
    lir_stmt *outer = body ? vector_loop(x, pairs, I(c, x->dv), body, &ev, &lane) : NULL;
    if (!outer || !j_body)
        return NULL;
    lir_expr *j = ref(c, jv), *at[2];
    for (int h = 0; h < halves; h++) {
        lir_expr *e = pair_at(x, pairs, ev, lane, h);
        at[h] = add(c, mul(c, x->b, I(c, x->dv)), e);
        vv[h] = lower_var(c, "v", x->t);
        lir_expr *v = lir_load(M, c->in[2], add(c, mul(c, add(c, mul(c, x->b, I(c, x->lk)), add(c, x->j0, j)), I(c, x->dv)), e));
        if (!lir_seq_push(M, j_body, lir_let(M, vv[h], v)))
            return NULL;
    }
    for (int r = 0; r < x->rows; r++) {
        lir_expr *p = lir_load(M, x->s, score_at(x, I(c, r), j));
        for (int h = 0; h < halves; h++) {
            a[h][r] = lower_var(c, "a", x->t);
            lir_expr *start = x->one_block ? lir_const(M, x->t, 0)
                                           : mul(c, lir_load(M, x->acc[h][r], at[h]), lir_load(M, x->stats, stat(x, I(c, r), 2)));
            if (!lir_seq_push(M, body, lir_let(M, a[h][r], start)) ||
                !lir_seq_push(M, j_body, lir_assign(M, a[h][r], lir_fma(M, p, ref(c, vv[h]), ref(c, a[h][r])))))
                return NULL;
        }
    }
    if (!lir_seq_push(M, body, lir_for(M, jv, I(c, 0), x->len, j_body)))
        return NULL;
    for (int h = 0; h < halves; h++)
        for (int r = 0; r < x->rows; r++)
            if (!lir_seq_push(M, body, lir_store(M, x->acc[h][r], at[h], ref(c, a[h][r]))))
                return NULL;
    return outer;
}

/* The block's rows: running max -inf, sums and accumulators 0 (with one key block, the
 * first block's results are the rows' own: nothing to start). */
static lir_stmt *start_rows(attn *x) {
    lower_ctx *c = x->c;
    if (x->one_block)
        return lir_seq(M);
    int rv = lower_var(c, "r", KILN_I64);
    lir_stmt *s = lir_seq(M), *rows = lir_seq(M), *cols = lir_seq(M);
    lir_expr *ev, *lane = NULL;
    lir_stmt *col_loop = cols ? vector_loop(x, x->vpairs, I(c, x->dv), cols, &ev, &lane) : NULL;
    if (!s || !rows || !col_loop)
        return NULL;
    lir_expr *r = ref(c, rv);
    if (!lir_seq_push(M, rows, lir_store(M, x->stats, stat(x, r, 0), lir_const(M, x->t, -INFINITY))) ||
        !lir_seq_push(M, rows, lir_store(M, x->stats, stat(x, r, 1), lir_const(M, x->t, 0))))
        return NULL;
    for (int h = 0; h < (x->vpairs ? 2 : 1); h++) {
        lir_expr *at = add(c, mul(c, x->b, I(c, x->dv)), pair_at(x, x->vpairs, ev, lane, h));
        for (int i = 0; i < x->rows; i++)
            if (!lir_seq_push(M, cols, lir_store(M, x->acc[h][i], at, lir_const(M, x->t, 0))))
                return NULL;
    }
    if (!lir_seq_push(M, s, lir_for(M, rv, I(c, 0), I(c, x->rows), rows)) || !lir_seq_push(M, s, col_loop))
        return NULL;
    return s;
}

/* out[row r][e] = acc[r][e] / sum[r], rows past Lq (a last, partial block) not stored */
static lir_stmt *finish_rows(attn *x, lir_expr *first) {
    lower_ctx *c = x->c;
    lir_stmt *body = lir_seq(M);
    lir_expr *ev, *lane = NULL;
    lir_stmt *outer = body ? vector_loop(x, x->vpairs, I(c, x->dv), body, &ev, &lane) : NULL;
    if (!outer)
        return NULL;
    for (int h = 0; h < (x->vpairs ? 2 : 1); h++) {
        lir_expr *e = pair_at(x, x->vpairs, ev, lane, h), *at = add(c, mul(c, x->b, I(c, x->dv)), e);
        for (int r = 0; r < x->rows; r++) {
            lir_expr *oc[KILN_MAX_RANK];
            for (int d = 0; d < x->rank; d++)
                oc[d] = x->bc[d];
            oc[x->rank - 2] = x->row[r], oc[x->rank - 1] = e;
            lir_expr *y = lir_binary(M, LIR_DIV, lir_load(M, x->acc[h][r], at), lir_load(M, x->stats, stat(x, I(c, r), 1)));
            lir_stmt *store = lower_store_out(c, oc, y);
            if (store && x->lq % x->rows)
                store = lir_if(M, lir_binary(M, LIR_LT, add(c, first, I(c, r)), I(c, x->lq)), lower_seq1(c, store), NULL);
            if (!store || !lir_seq_push(M, body, store))
                return NULL;
        }
    }
    return outer;
}

kiln_status lower_attention(lower_ctx *c, const fuse_attention *a) {
    const kiln_tensor *q = c->in_type[0], *kt = c->in_type[1], *v = c->in_type[2], *out = c->out_type[0];
    attn x = {.c = c, .a = a, .t = q->dtype, .rank = q->rank};
    int r2 = x.rank - 2, r1 = x.rank - 1;
    x.lq = q->dims[r2], x.d = q->dims[r1], x.lk = kt->dims[r1], x.dv = v->dims[r1];
    x.rows = x.lq < ATTENTION_ROWS ? (x.lq > 0 ? x.lq : 1) : ATTENTION_ROWS;
    x.block = attention_key_block(x.lk);
    int64_t lanes = M->vector_bits / (8 * (int64_t)kiln_dtype_size(x.t));
    x.w = lanes >= 2 ? lanes : 1;
    kiln_tensor batch = *out;
    batch.dims[r2] = batch.dims[r1] = 1;
    int64_t nb = ir_type_count(&batch);
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &batch, x.bc, &inner, &outer);
    if (st)
        return st;
    x.b = lower_index(c, &batch, x.bc, x.rank);
    x.s = lir_local(M, c->k, "scores", x.t, nb * x.rows * x.block);
    x.stats = lir_local(M, c->k, "row_stats", x.t, nb * x.rows * 3);
    x.part = lir_local(M, c->k, "partial", x.t, nb * x.w);
    x.vpairs = x.w >= 8 && x.dv % (2 * x.w) == 0;
    for (int h = 0; h < (x.vpairs ? 2 : 1); h++)
        for (int r = 0; r < x.rows; r++)
            if (!(x.acc[h][r] = lir_local(M, c->k, "row_acc", x.t, nb * x.dv)))
                return lower_oom(c);
    if (!x.b || !x.s || !x.stats || !x.part)
        return lower_oom(c);
    if (!x.lq || !x.dv) /* nothing to store */
        return KILN_OK;
    /* the query blocks; rows past Lq in a last, partial block read the last row */
    lir_expr *qb;
    lir_stmt *q_body = lir_seq(M);
    lir_stmt *q_loop = q_body ? lower_loop(c, "qblock", (x.lq + x.rows - 1) / x.rows, q_body, &qb) : NULL;
    if (!q_loop || !lir_seq_push(M, inner, q_loop))
        return lower_oom(c);
    lir_expr *first = mul(c, qb, I(c, x.rows));
    for (int r = 0; r < x.rows; r++) {
        x.row[r] = add(c, first, I(c, r));
        if (x.lq % x.rows)
            x.row[r] = lir_binary(M, LIR_MIN, x.row[r], I(c, x.lq - 1));
    }
    /* the key blocks */
    lir_expr *kb;
    lir_stmt *k_body = lir_seq(M);
    int64_t blocks = x.lk ? (x.lk + x.block - 1) / x.block : 0;
    lir_stmt *k_loop = k_body ? lower_loop(c, "kblock", blocks, k_body, &kb) : NULL;
    x.one_block = blocks == 1;
    if (!k_loop)
        return lower_oom(c);
    x.j0 = mul(c, kb, I(c, x.block));
    x.len = I(c, x.block);
    if (x.lk % x.block) { /* the last block is shorter */
        int len = lower_var(c, "keys", KILN_I64);
        if (!lir_seq_push(M, k_body, lir_let(M, len, lir_binary(M, LIR_MIN, I(c, x.block), lir_binary(M, LIR_SUB, I(c, x.lk), x.j0)))))
            return lower_oom(c);
        x.len = ref(c, len);
    }
    lir_stmt *start = start_rows(&x), *s = scores(&x), *soft = online_softmax(&x), *pv = times_v(&x);
    lir_stmt *fin = finish_rows(&x, first);
    if (!start || !s || !soft || !pv || !fin || !lir_seq_push(M, k_body, s) || !lir_seq_push(M, k_body, soft) ||
        !lir_seq_push(M, k_body, pv) || !lir_seq_push(M, q_body, start) || !lir_seq_push(M, q_body, k_loop) ||
        !lir_seq_push(M, q_body, fin))
        return lower_oom(c);
    return lower_emit(c, outer);
}
