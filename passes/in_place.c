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
 *     store (lir_stride), and their coefficients, sorted, each exceed what all the smaller
 *     ones can reach (a mixed radix), so distinct iterations write distinct elements.
 * A vector iteration then loads its lanes before it stores them, and the parallel
 * iterations' indices are disjoint. Elementwise kernels pass (an unfused Relu, a residual
 * Add whose operand dies there); a transpose, a broadcast, a row reduction or a staged
 * chain (its stages read the input in loops of their own) do not.
 */
#include "passes/lower.h"

#include <stdlib.h>
#include <string.h>

enum { DEPTH_MAX = 32 }; /* loops around the store that the proof follows */

typedef struct loop_at {
    int var;
    int64_t step, trips; /* trips < 0: bounds not constant */
} loop_at;

typedef struct in_place {
    const lir_buffer *in, *out;
    loop_at loops[DEPTH_MAX]; /* around the statement being walked */
    int depth;
    bool *varying;            /* by variable: all but these loops' (lir_stride's sense) */
    const lir_stmt *store;    /* the one store to out */
    bool ok;
} in_place;

static bool injective(in_place *p, const lir_expr *index);

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
            p->ok = p->ok && injective(p, s->index);
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

static bool has_load(const lir_expr *e) {
    return e && (e->kind == LIR_LOAD || has_load(e->a) || has_load(e->b) || has_load(e->c));
}

typedef struct digit {
    int64_t weight, trips; /* the index moves by weight per step; trips values */
} digit;

static int by_weight(const void *a, const void *b) {
    int64_t x = ((const digit *)a)->weight, y = ((const digit *)b)->weight;
    return (x > y) - (x < y);
}

/* Whether index takes a distinct value in every iteration of the loops around it: affine
 * in their variables (lir_stride constant in each, the others held; no other variable, no
 * load), the steps, sorted, each past what all the smaller ones reach together. */
static bool injective(in_place *p, const lir_expr *index) {
    if (has_load(index))
        return false;
    digit d[DEPTH_MAX];
    int n = 0;
    bool ok = true;
    for (int i = 0; i < p->depth; i++)
        p->varying[p->loops[i].var] = false;
    for (int i = 0; ok && i < p->depth; i++) {
        const loop_at *l = &p->loops[i];
        int64_t c = lir_stride(index, l->var, p->varying), w;
        ok = l->trips >= 0 && c != LIR_STRIDE_VARYING;
        if (!ok || l->trips <= 1)
            continue;
        ok = !__builtin_mul_overflow(c, l->step, &w) && w != 0 && w != INT64_MIN;
        d[n++] = (digit){w < 0 ? -w : w, l->trips};
    }
    for (int i = 0; i < p->depth; i++)
        p->varying[p->loops[i].var] = true;
    if (!ok)
        return false;
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
    in_place p = {.in = in, .out = out, .varying = malloc((size_t)k->var_count + 1), .ok = true};
    if (!p.varying)
        return false;
    memset(p.varying, 1, (size_t)k->var_count + 1);
    walk(&p, k->body);
    free(p.varying);
    return p.ok && p.store;
}
