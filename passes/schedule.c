/*
 * schedule.c — the loop schedule: which loops run in parallel. Lowering marks the
 * outermost loop of each nest whose iterations write disjoint outputs as LIR_PARALLEL;
 * this pass keeps it parallel only at the top of a kernel (nests inside loops run
 * serially), only if its body uses no variable from outside it (the body is outlined
 * into a function of its own), and only where that pays: enough iterations to split, enough
 * work to cover starting the threads, and no way for an iteration to stop the kernel
 * (a LIR_FAIL inside stays serial, so errors keep their order). Then which loops run as
 * vectors, and how wide (below). Tiles and unrolling come with the scheduling work (issue 5).
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
    case LIR_TRANSPOSE: return (int64_t)s->rows * s->cols;
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
    case LIR_STORE:
    case LIR_TRANSPOSE: expr_vars(s->index, defined, ok), expr_vars(s->value, defined, ok); return;
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

/* ---- vectorization: which loops run `width` iterations at once --------------------------
 * A loop qualifies when every store in its body writes consecutive elements as its
 * variable steps (stride 1: a vector store, masked in the tail), nested loops have bounds
 * that are the same for every lane, assignments touch only scalars the body itself
 * declares (no reductions across lanes), no buffer is both read and written (no
 * dependence between iterations through memory) unless every access to it is at one and
 * the same index (each lane then reads what it alone writes: lane-partial reductions, see
 * lower_nn.c), nothing can stop the kernel, and
 * integer division has a nonzero constant divisor (masked-off lanes must not trap).
 * Conditions become lane masks; loads become vector loads, broadcasts or gathers
 * (backend/llvm/cg_vector.c). The innermost qualifying loop of each nest is taken. */
typedef struct vec_check {
    int var;
    bool *varying; /* scalars declared in the body: a value per lane */
    const lir_buffer **stored, **loaded;
    const lir_expr **stored_at, **loaded_at; /* each buffer's first index, and whether */
    bool *stored_one, *loaded_one;            /* every access to it used that index */
    int nstored, nloaded, cap;
    int max_size; /* the widest element stored */
    bool ok;
} vec_check;

static void note_buffer(const lir_buffer **list, const lir_expr **at, bool *one, int *n, int cap, const lir_buffer *b,
                        const lir_expr *index, bool *ok) {
    for (int i = 0; i < *n; i++)
        if (list[i] == b) {
            one[i] = one[i] && lir_expr_same(at[i], index);
            return;
        }
    if (*n == cap) {
        *ok = false;
    } else {
        at[*n] = index, one[*n] = true;
        list[(*n)++] = b;
    }
}

static void check_expr(const lir_expr *e, vec_check *v) {
    if (!e || !v->ok)
        return;
    if (e->kind == LIR_BINARY && (e->op == LIR_DIV || e->op == LIR_REM) && !ir_dtype_is_float(e->type) &&
        !(e->b->kind == LIR_CONST && e->b->i != 0))
        v->ok = false;
    if (e->kind == LIR_LOAD)
        note_buffer(v->loaded, v->loaded_at, v->loaded_one, &v->nloaded, v->cap, e->buf, e->a, &v->ok);
    check_expr(e->a, v), check_expr(e->b, v), check_expr(e->c, v);
}

static void check_stmt(const lir_stmt *s, vec_check *v) {
    if (!v->ok)
        return;
    switch (s->kind) {
    case LIR_SEQ:
        for (int i = 0; i < s->count; i++)
            check_stmt(s->items[i], v);
        return;
    case LIR_STORE:
        if (lir_stride(s->index, v->var, v->varying) != 1)
            v->ok = false;
        note_buffer(v->stored, v->stored_at, v->stored_one, &v->nstored, v->cap, s->buf, s->index, &v->ok);
        if ((int)kiln_dtype_size(s->buf->dtype) > v->max_size)
            v->max_size = (int)kiln_dtype_size(s->buf->dtype);
        check_expr(s->index, v), check_expr(s->value, v);
        return;
    case LIR_LET:
        check_expr(s->value, v);
        v->varying[s->var] = true;
        return;
    case LIR_ASSIGN:
        if (!v->varying[s->var]) /* a scalar from outside: a reduction across iterations */
            v->ok = false;
        check_expr(s->value, v);
        return;
    case LIR_IF:
        check_expr(s->cond, v);
        check_stmt(s->body, v);
        if (s->other)
            check_stmt(s->other, v);
        return;
    case LIR_FOR:
        if (s->loop == LIR_PARALLEL || lir_stride(s->begin, v->var, v->varying) != 0 ||
            lir_stride(s->end, v->var, v->varying) != 0)
            v->ok = false;
        check_expr(s->begin, v), check_expr(s->end, v);
        check_stmt(s->body, v);
        return;
    case LIR_FAIL: v->ok = false; return;
    case LIR_TRANSPOSE: v->ok = false; return; /* vector code of its own */
    }
}

/* Marks the innermost qualifying loops inside s; true if s or a loop in it was marked. */
static bool vectorize(lir_stmt *s, const lir_kernel *k, int bits) {
    switch (s->kind) {
    case LIR_SEQ: {
        bool any = false;
        for (int i = 0; i < s->count; i++)
            any |= vectorize(s->items[i], k, bits);
        return any;
    }
    case LIR_IF: {
        bool any = vectorize(s->body, k, bits);
        return (s->other && vectorize(s->other, k, bits)) || any;
    }
    case LIR_FOR: break;
    default: return false;
    }
    if (vectorize(s->body, k, bits))
        return true;
    if (s->loop != LIR_SERIAL || s->step != 1)
        return false;
    bool known = s->begin->kind == LIR_CONST && s->end->kind == LIR_CONST;
    int64_t trips = known ? s->end->i - s->begin->i : INT64_MAX;
    if (trips < 2)
        return false;
    enum { MAX_BUFFERS = 64 };
    const lir_buffer *stored[MAX_BUFFERS], *loaded[MAX_BUFFERS];
    const lir_expr *stored_at[MAX_BUFFERS], *loaded_at[MAX_BUFFERS];
    bool stored_one[MAX_BUFFERS], loaded_one[MAX_BUFFERS];
    vec_check v = {.var = s->var, .stored = stored, .loaded = loaded, .stored_at = stored_at, .loaded_at = loaded_at,
                   .stored_one = stored_one, .loaded_one = loaded_one, .cap = MAX_BUFFERS, .ok = true};
    if (!(v.varying = calloc((size_t)k->var_count + 1, sizeof *v.varying)))
        return false;
    check_stmt(s->body, &v);
    free(v.varying);
    for (int i = 0; v.ok && i < v.nstored; i++)
        for (int j = 0; j < v.nloaded; j++)
            if (stored[i] == loaded[j] &&
                !(stored_one[i] && loaded_one[j] && lir_expr_same(stored_at[i], loaded_at[j])))
                v.ok = false;
    if (!v.ok || !v.nstored)
        return false;
    int lanes = bits / (8 * v.max_size);
    while (lanes > 2 && lanes / 2 >= trips) /* no wider than the trip count needs */
        lanes /= 2;
    if (lanes < 2)
        return false;
    s->loop = LIR_VECTOR;
    s->width = lanes > 64 ? 64 : lanes;
    return true;
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
        if (m->vector_bits)
            vectorize(body, m->kernels[i], m->vector_bits);
    }
}
