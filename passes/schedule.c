/*
 * schedule.c — the loop schedule: which loops run in parallel. Lowering marks the
 * outermost loop of each nest whose iterations write disjoint outputs as LIR_PARALLEL;
 * this pass keeps it parallel only at the top of a kernel (nests inside loops run
 * serially), only if its body uses no variable from outside it (the body is outlined
 * into a function of its own), and only where that pays: enough iterations to split, enough
 * work to cover starting the threads, and no way for an iteration to stop the kernel
 * (a LIR_FAIL inside stays serial, so errors keep their order). Vector widths, tiles and
 * unrolling are decided here too as the scheduling work (issue 5) grows.
 */
#include "passes/lower.h"

#include <stdlib.h>

enum { PARALLEL_MIN_WORK = 1 << 15 }; /* loop iterations, all levels, below which threads cost more */

/* Iterations of s, counting every nested loop; saturates instead of overflowing. */
static int64_t work(const lir_stmt *s) {
    switch (s->kind) {
    case LIR_SEQ: {
        int64_t w = 0;
        for (int i = 0; i < s->count && w < INT64_MAX / 2; i++)
            w += work(s->items[i]);
        return w;
    }
    case LIR_FOR: {
        int64_t trips = s->begin->kind == LIR_CONST && s->end->kind == LIR_CONST ? s->end->i - s->begin->i : 1;
        int64_t inner = work(s->body);
        return trips > 0 && inner > INT64_MAX / 2 / trips ? INT64_MAX / 2 : (trips > 0 ? trips : 0) * inner;
    }
    case LIR_IF: return work(s->body) + (s->other ? work(s->other) : 0);
    default: return 1;
    }
}

static bool can_fail(const lir_stmt *s) {
    switch (s->kind) {
    case LIR_FAIL: return true;
    case LIR_SEQ:
        for (int i = 0; i < s->count; i++)
            if (can_fail(s->items[i]))
                return true;
        return false;
    case LIR_FOR: return can_fail(s->body);
    case LIR_IF: return can_fail(s->body) || (s->other && can_fail(s->other));
    default: return false;
    }
}

/* Marks the variables s defines (loop variables, lets); `ok` turns false if s reads or
 * assigns one it did not define: an outlined body could not see it. */
static void expr_vars(const lir_expr *e, const bool *defined, bool *ok) {
    if (!e)
        return;
    if (e->kind == LIR_VAR && !defined[e->var])
        *ok = false;
    expr_vars(e->a, defined, ok), expr_vars(e->b, defined, ok), expr_vars(e->c, defined, ok);
}

static void self_contained(const lir_stmt *s, bool *defined, bool *ok) {
    switch (s->kind) {
    case LIR_FOR:
        expr_vars(s->begin, defined, ok), expr_vars(s->end, defined, ok);
        defined[s->var] = true;
        self_contained(s->body, defined, ok);
        return;
    case LIR_SEQ:
        for (int i = 0; i < s->count; i++)
            self_contained(s->items[i], defined, ok);
        return;
    case LIR_IF:
        expr_vars(s->cond, defined, ok);
        self_contained(s->body, defined, ok);
        if (s->other)
            self_contained(s->other, defined, ok);
        return;
    case LIR_LET:
        expr_vars(s->value, defined, ok);
        defined[s->var] = true;
        return;
    case LIR_ASSIGN:
        expr_vars(s->value, defined, ok);
        if (!defined[s->var])
            *ok = false;
        return;
    case LIR_STORE: expr_vars(s->index, defined, ok), expr_vars(s->value, defined, ok); return;
    case LIR_FAIL: return;
    }
}

/* Nests inside another loop run serially: their iterations are the outer loop's work. */
static void serialize(lir_stmt *s) {
    if (s->kind == LIR_FOR) {
        if (s->loop == LIR_PARALLEL)
            s->loop = LIR_SERIAL;
        serialize(s->body);
    } else if (s->kind == LIR_IF) {
        serialize(s->body);
        if (s->other)
            serialize(s->other);
    } else if (s->kind == LIR_SEQ) {
        for (int i = 0; i < s->count; i++)
            serialize(s->items[i]);
    }
}

void lir_schedule(lir_module *m) {
    for (int i = 0; i < m->kernel_count; i++) {
        lir_stmt *body = m->kernels[i]->body;
        for (int j = 0; j < body->count; j++) {
            lir_stmt *s = body->items[j];
            if (s->kind != LIR_FOR) { /* only a kernel's outermost loops may run in parallel */
                serialize(s);
                continue;
            }
            serialize(s->body);
            if (s->loop != LIR_PARALLEL)
                continue;
            bool from_zero = s->begin->kind == LIR_CONST && s->begin->i == 0 && s->end->kind == LIR_CONST;
            bool ok = true, *defined = calloc((size_t)m->kernels[i]->var_count + 1, sizeof *defined);
            if (defined)
                self_contained(s, defined, &ok);
            free(defined);
            if (!defined || !ok || !from_zero || s->end->i < 2 || work(s) < PARALLEL_MIN_WORK || can_fail(s))
                s->loop = LIR_SERIAL;
        }
    }
}
