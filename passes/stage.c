/*
 * stage.c — long elementwise expressions computed in stages over small tiles.
 *
 * A fused elementwise chain becomes one expression per element. When it holds several
 * transcendental calls or divisions (sigmoid, then tanh, ...), each vector's result is one
 * long dependent chain (two exps, two divisions: ~180 cycles on Zen 5), and the
 * out-of-order window holds barely two vectors' chains: the bench's chain of ten ops ran
 * at one instruction per cycle, latency-bound, 8.6 ms where its arithmetic needs ~2.
 *
 * So the loop is tiled by STAGE_TILE elements, and each distinct expensive subexpression
 * is computed for the whole tile by a loop of its own into scratch (in L1), which the
 * later stages load: each stage's chain is short and its iterations independent, so the
 * window overlaps many of them. Same operations on the same values in the same order:
 * results are identical to the bit.
 *
 * Runs on the lowered kernels before the memory plan (the scratch is planned like any
 * other). A candidate is an innermost serial loop whose body is one store, consecutive in
 * the loop's variable (the vectorizer will take each stage's loop). Scratch is indexed by
 * the kernel's outer parallel loop, if the candidate is inside one, so threads never
 * share a tile.
 */
#include "passes/lower.h"

enum {
    STAGE_TILE = 256,                 /* elements: 16 vectors of 16 f32 */
    STAGE_MAX = 8,                    /* stages materialized per loop */
    STAGE_MIN_TRIPS = 64,             /* shorter loops: not worth the tile loop */
    STAGE_SCRATCH_MAX = 1 << 20,      /* bytes of scratch per loop, all threads' tiles */
};

static bool expensive(const lir_expr *e) {
    if (e->kind == LIR_CALL)
        return e->op != LIR_FLOOR && e->op != LIR_CEIL && e->op != LIR_ROUND_EVEN;
    return e->kind == LIR_BINARY && e->op == LIR_DIV && ir_dtype_is_float(e->type);
}

typedef struct stager {
    lir_module *m;
    lir_kernel *k;
    const lir_expr *node[STAGE_MAX]; /* distinct expensive subexpressions, innermost first */
    lir_buffer *tmp[STAGE_MAX];
    int n;
    bool overflow;
    int var;          /* the loop's variable ... */
    lir_expr *pos;    /* ... replaced by this (tile start + position in the tile) */
    lir_expr *slot;   /* where a stage's value for this element lies in its scratch */
} stager;

/* Post-order: an expensive node's own expensive operands are collected before it. A
 * constant map of a tanh, c * tanh(y) + d (sigmoid's 1/2 + tanh(x/2)/2), is staged whole:
 * the code generator folds it into tanh's last step, which it cannot see across a stage. */
static void collect(stager *s, const lir_expr *e) {
    if (!e || s->overflow)
        return;
    double c;
    const lir_expr *d, *t = lir_tanh_affine(e, &c, &d);
    bool tanh_map = t && d->kind == LIR_CONST;
    if (tanh_map)
        collect(s, t->a);
    else
        collect(s, e->a), collect(s, e->b), collect(s, e->c);
    if (!expensive(e) && !tanh_map)
        return;
    for (int i = 0; i < s->n; i++)
        if (lir_expr_same(s->node[i], e))
            return;
    if (s->n == STAGE_MAX)
        s->overflow = true;
    else
        s->node[s->n++] = e;
}

/* e with the loop variable replaced by pos, and the first `upto` stages' expressions by
 * loads of their scratch. */
static lir_expr *rewrite(stager *s, const lir_expr *e, int upto) {
    if (!e)
        return NULL;
    for (int i = 0; i < upto; i++)
        if (lir_expr_same(s->node[i], e))
            return lir_load(s->m, s->tmp[i], s->slot);
    if (e->kind == LIR_VAR && e->var == s->var)
        return s->pos;
    if (!e->a)
        return (lir_expr *)e; /* a leaf: constants and other variables are shared */
    lir_expr *n = ARENA_NEW(s->m->arena, lir_expr);
    if (!n)
        return NULL;
    *n = *e;
    n->a = rewrite(s, e->a, upto);
    n->b = e->b ? rewrite(s, e->b, upto) : NULL;
    n->c = e->c ? rewrite(s, e->c, upto) : NULL;
    if (!n->a || (e->b && !n->b) || (e->c && !n->c))
        return NULL;
    return n;
}

/* One tile's stages: for each stage, a loop over [0, count) of the tile starting at
 * `start`; the store last. */
static lir_stmt *tile_stages(stager *s, const lir_stmt *store, lir_expr *start, int64_t count, lir_expr *part) {
    lir_stmt *seq = lir_seq(s->m);
    if (!seq)
        return NULL;
    for (int i = 0; i <= s->n; i++) {
        int vi = lir_var_new(s->m, s->k, "t", KILN_I64);
        if (vi < 0)
            return NULL;
        lir_expr *at = lir_var_ref(s->m, s->k, vi);
        s->pos = lir_binary(s->m, LIR_ADD, start, at);
        s->slot = part ? lir_binary(s->m, LIR_ADD, part, at) : at;
        lir_stmt *body;
        if (i < s->n) { /* the stage's own node, over the stages before it */
            lir_expr *n = rewrite(s, s->node[i], i);
            body = n ? lir_store(s->m, s->tmp[i], s->slot, n) : NULL;
        } else {
            body = lir_store(s->m, store->buf, rewrite(s, store->index, 0), rewrite(s, store->value, s->n));
        }
        lir_stmt *loop = body ? lir_for(s->m, vi, lir_int(s->m, 0), lir_int(s->m, count), body) : NULL;
        if (!loop || !lir_seq_push(s->m, seq, loop))
            return NULL;
    }
    return seq;
}

static const lir_stmt *single_store(const lir_stmt *s) {
    while (s->kind == LIR_SEQ && s->count == 1)
        s = s->items[0];
    return s->kind == LIR_STORE ? s : NULL;
}

/* Stages loop *at (replacing it) if it qualifies. `par` is the enclosing parallel loop, or
 * NULL. False only on running out of memory. */
static bool stage_loop(lir_module *m, lir_kernel *k, lir_stmt **at, const lir_stmt *par) {
    lir_stmt *loop = *at;
    const lir_stmt *store = single_store(loop->body);
    if (!store || loop->step != 1 || loop->loop != LIR_SERIAL || loop->begin->kind != LIR_CONST ||
        loop->end->kind != LIR_CONST || lir_stride(store->index, loop->var, NULL) != 1)
        return true;
    int64_t trips = loop->end->i - loop->begin->i;
    if (trips < STAGE_MIN_TRIPS)
        return true;
    stager s = {.m = m, .k = k, .var = loop->var};
    collect(&s, store->value);
    if (s.overflow)
        s.n = STAGE_MAX;
    if (s.n && lir_expr_same(s.node[s.n - 1], store->value))
        s.n--; /* the stored value itself: the last stage computes it */
    if (s.n < 1 || (s.n == 1 && !expensive(store->value)))
        return true; /* one expensive op in all: its chain is short enough */
    int64_t copies = par ? par->end->i : 1, tile = trips < STAGE_TILE ? trips : STAGE_TILE, bytes = 0;
    for (int i = 0; i < s.n; i++)
        bytes += copies * tile * (int64_t)kiln_dtype_size(s.node[i]->type);
    if (bytes > STAGE_SCRATCH_MAX)
        return true;
    static const char *const names[STAGE_MAX] = {"stage0", "stage1", "stage2", "stage3", "stage4", "stage5", "stage6", "stage7"};
    for (int i = 0; i < s.n; i++)
        if (!(s.tmp[i] = lir_local(m, k, names[i], s.node[i]->type, copies * tile)))
            return false;
    lir_expr *part = par ? lir_binary(m, LIR_MUL, lir_var_ref(m, k, par->var), lir_int(m, tile)) : NULL;
    lir_stmt *seq = lir_seq(m);
    int tv = lir_var_new(m, k, "tile", KILN_I64);
    if (!seq || tv < 0)
        return false;
    int64_t full = trips / tile, rest = trips % tile;
    lir_expr *start = lir_binary(m, LIR_ADD, loop->begin, lir_binary(m, LIR_MUL, lir_var_ref(m, k, tv), lir_int(m, tile)));
    lir_stmt *tiles = tile_stages(&s, store, start, tile, part);
    lir_stmt *tile_loop = tiles ? lir_for(m, tv, lir_int(m, 0), lir_int(m, full), tiles) : NULL;
    if (!tile_loop || !lir_seq_push(m, seq, tile_loop))
        return false;
    if (rest) {
        lir_stmt *last = tile_stages(&s, store, lir_int(m, loop->begin->i + full * tile), rest, part);
        if (!last || !lir_seq_push(m, seq, last))
            return false;
    }
    *at = seq;
    return true;
}

static bool walk(lir_module *m, lir_kernel *k, lir_stmt **at, const lir_stmt *par) {
    lir_stmt *s = *at;
    switch (s->kind) {
    case LIR_SEQ:
        for (int i = 0; i < s->count; i++)
            if (!walk(m, k, &s->items[i], par))
                return false;
        return true;
    case LIR_IF:
        return walk(m, k, &s->body, par) && (!s->other || walk(m, k, &s->other, par));
    case LIR_FOR: /* an innermost loop of one store is a candidate */
        return single_store(s->body) ? stage_loop(m, k, at, par) : walk(m, k, &s->body, par);
    default: return true;
    }
}

kiln_status lir_stage(lir_module *m, kiln_diag *d) {
    if (!m->vector_bits)
        return KILN_OK;
    for (int i = 0; i < m->kernel_count; i++) {
        lir_kernel *k = m->kernels[i];
        for (int j = 0; j < k->body->count; j++) {
            lir_stmt *s = k->body->items[j];
            bool par = s->kind == LIR_FOR && s->loop == LIR_PARALLEL && s->begin->kind == LIR_CONST && s->begin->i == 0 &&
                       s->end->kind == LIR_CONST;
            bool ok = par ? walk(m, k, &s->body, s) : walk(m, k, &k->body->items[j], NULL);
            if (!ok)
                return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory staging kernel %s", k->name);
        }
    }
    return KILN_OK;
}
