/*
 * in_place.c — whether a kernel may write a value over the bytes of one it reads, so the
 * memory plan (plan.c) can hand an input's arena block to the output when the kernel is
 * the input's last reader: the arena shrinks (unfused, a chain of elementwise kernels
 * needs one buffer where it took two), and the output's lines are the ones just read.
 *
 * Safe when no element of the input is read after the output's store has overwritten it.
 * The proof kept here is simple and conservative:
 *   - the kernel stores to the output in exactly one statement, and never loads from it
 *     (a kernel reading its own output accumulates: its stores revisit indices); it never
 *     writes the input (another output of a kernel with several is no donor);
 *   - every load of the input in the kernel sits in that store's value, at the store's own
 *     index (so each iteration reads the element, then writes the same bytes: the
 *     elements are the same size), nowhere else; no register tile touches either;
 *   - that index visits each element at most once: it is affine in the loops around the
 *     store, and their coefficients, sorted, each exceed what all the smaller ones can
 *     reach (a mixed radix), so distinct iterations write distinct elements.
 * A vector iteration then loads its lanes before it stores them, and the parallel
 * iterations' indices are disjoint. Elementwise kernels pass (an unfused Relu, a residual
 * Add whose operand dies there); a transpose, a broadcast, a row reduction or a staged
 * chain (its stages read the input in loops of their own) do not.
 */
#include "passes/lower.h"

#include <stdlib.h>

enum { DEPTH_MAX = 32 }; /* loops around the store that the proof follows */

typedef struct loop_at {
    int var;
    int64_t step, trips; /* trips < 0: bounds not constant */
} loop_at;

typedef struct in_place {
    const lir_buffer *in, *out;
    loop_at loops[DEPTH_MAX];
    int depth;
    const lir_stmt *store;       /* the one store to out */
    loop_at store_loops[DEPTH_MAX]; /* the loops around it */
    int store_depth;
    bool ok;
} in_place;

/* Clears p->ok if e loads from the output, or loads the input at another index than `at`
 * (NULL: e may not load the input at all). */
static void check_loads(in_place *p, const lir_expr *e, const lir_expr *at) {
    if (!e)
        return;
    if (e->kind == LIR_LOAD && (e->buf == p->out || (e->buf == p->in && (!at || !lir_expr_same(e->a, at)))))
        p->ok = false;
    check_loads(p, e->a, at), check_loads(p, e->b, at), check_loads(p, e->c, at);
}

static void walk(in_place *p, const lir_stmt *s) {
    if (!p->ok)
        return;
    switch (s->kind) {
    case LIR_SEQ:
        for (int i = 0; i < s->count; i++)
            walk(p, s->items[i]);
        return;
    case LIR_FOR: {
        check_loads(p, s->begin, NULL), check_loads(p, s->end, NULL);
        if (p->depth == DEPTH_MAX) {
            p->ok = false;
            return;
        }
        bool known = s->begin->kind == LIR_CONST && s->end->kind == LIR_CONST && s->step > 0;
        int64_t span = known ? s->end->i - s->begin->i : -1;
        p->loops[p->depth++] = (loop_at){s->var, s->step, known ? (span > 0 ? (span + s->step - 1) / s->step : 0) : -1};
        walk(p, s->body);
        p->depth--;
        return;
    }
    case LIR_IF:
        check_loads(p, s->cond, NULL);
        walk(p, s->body);
        if (s->other)
            walk(p, s->other);
        return;
    case LIR_LET:
    case LIR_ASSIGN: check_loads(p, s->value, NULL); return;
    case LIR_STORE:
        if (s->buf == p->in) /* another output of the kernel, not an input */
            p->ok = false;
        if (s->buf == p->out) {
            if (p->store) { /* a second store to the output */
                p->ok = false;
                return;
            }
            p->store = s;
            p->store_depth = p->depth;
            for (int i = 0; i < p->depth; i++)
                p->store_loops[i] = p->loops[i];
        }
        check_loads(p, s->index, NULL), check_loads(p, s->value, s->buf == p->out ? s->index : NULL);
        return;
    case LIR_TRANSPOSE: /* its value loads the source tile's first element */
        if (s->buf == p->out || s->buf == p->in)
            p->ok = false;
        check_loads(p, s->index, NULL), check_loads(p, s->value, NULL);
        return;
    case LIR_FAIL: return;
    }
}

/* Adds scale times e's coefficients on the store's loops into coef; false if e is not an
 * affine form of those loops' variables and constants (or a coefficient overflows). */
static bool affine(const in_place *p, const lir_expr *e, int64_t scale, int64_t *coef) {
    switch (e->kind) {
    case LIR_CONST: return true;
    case LIR_VAR:
        for (int i = 0; i < p->store_depth; i++)
            if (p->store_loops[i].var == e->var)
                return !__builtin_add_overflow(coef[i], scale, &coef[i]);
        return false;
    case LIR_BINARY: break;
    default: return false;
    }
    int64_t k;
    switch (e->op) {
    case LIR_ADD: return affine(p, e->a, scale, coef) && affine(p, e->b, scale, coef);
    case LIR_SUB: return affine(p, e->a, scale, coef) && affine(p, e->b, -scale, coef);
    case LIR_MUL:
        if (e->a->kind == LIR_CONST)
            return !__builtin_mul_overflow(scale, e->a->i, &k) && affine(p, e->b, k, coef);
        if (e->b->kind == LIR_CONST)
            return !__builtin_mul_overflow(scale, e->b->i, &k) && affine(p, e->a, k, coef);
        return false;
    default: return false;
    }
}

typedef struct digit {
    int64_t weight, trips; /* the index moves by weight per step; trips values */
} digit;

static int by_weight(const void *a, const void *b) {
    int64_t x = ((const digit *)a)->weight, y = ((const digit *)b)->weight;
    return (x > y) - (x < y);
}

/* Whether the store's index takes a distinct value in every iteration of its loops. */
static bool injective(const in_place *p) {
    int64_t coef[DEPTH_MAX] = {0};
    if (!affine(p, p->store->index, 1, coef))
        return false;
    digit d[DEPTH_MAX];
    int n = 0;
    for (int i = 0; i < p->store_depth; i++) {
        const loop_at *l = &p->store_loops[i];
        if (l->trips < 0)
            return false;
        if (l->trips <= 1)
            continue;
        int64_t w;
        if (__builtin_mul_overflow(coef[i], l->step, &w) || w == 0 || w == INT64_MIN)
            return false;
        d[n++] = (digit){w < 0 ? -w : w, l->trips};
    }
    qsort(d, (size_t)n, sizeof *d, by_weight);
    int64_t reach = 0; /* the most the smaller digits move the index */
    for (int i = 0; i < n; i++) {
        int64_t more;
        if (d[i].weight <= reach || __builtin_mul_overflow(d[i].weight, d[i].trips - 1, &more) ||
            __builtin_add_overflow(reach, more, &reach))
            return false;
    }
    return true;
}

bool lower_in_place_safe(const lir_kernel *k, const lir_buffer *in, const lir_buffer *out) {
    if (in == out || kiln_dtype_size(in->dtype) != kiln_dtype_size(out->dtype) || k->once)
        return false;
    in_place p = {.in = in, .out = out, .ok = true};
    walk(&p, k->body);
    return p.ok && p.store && injective(&p);
}
