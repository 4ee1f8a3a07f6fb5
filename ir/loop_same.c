/*
 * loop_same.c — whether two kernels compile to the same machine code, so the JIT compiles
 * one of them for both. A kernel reads every buffer's address from its arguments (where a
 * buffer lives is the program's business), so what decides its code is its statements,
 * its variables' types, and its buffers' element types by parameter position. ViT-B's 12
 * encoder layers lower to 12 copies of each of their kernels.
 */
#include "ir/loop.h"

#include <stdlib.h>
#include <string.h>

typedef struct pair {
    const lir_kernel *a, *b;
} pair;

/* The same parameter position in each kernel, and the same element type and size. */
static bool buf_same(const pair *k, const lir_buffer *a, const lir_buffer *b) {
    if (!a || !b)
        return a == b;
    if (a->dtype != b->dtype || a->count != b->count)
        return false;
    for (int i = 0; i < k->a->param_count; i++)
        if (k->a->params[i] == a)
            return k->b->params[i] == b;
    return false; /* not a parameter: nothing to match it by */
}

static bool expr_same(const pair *k, const lir_expr *a, const lir_expr *b) {
    if (!a || !b)
        return a == b;
    /* constants to the bit: 0 and -0 differ in a sum, NaN payloads in what is stored */
    if (a->kind != b->kind || a->type != b->type || a->lanes != b->lanes || a->op != b->op || a->i != b->i ||
        a->var != b->var || memcmp(&a->f, &b->f, sizeof a->f) || !buf_same(k, a->buf, b->buf))
        return false;
    return expr_same(k, a->a, b->a) && expr_same(k, a->b, b->b) && expr_same(k, a->c, b->c);
}

static bool stmt_same(const pair *k, const lir_stmt *a, const lir_stmt *b) {
    if (!a || !b)
        return a == b;
    if (a->kind != b->kind || a->var != b->var || a->step != b->step || a->loop != b->loop || a->width != b->width ||
        a->rows != b->rows || a->cols != b->cols || a->strides[0] != b->strides[0] || a->strides[1] != b->strides[1] ||
        a->count != b->count || !buf_same(k, a->buf, b->buf) || !expr_same(k, a->begin, b->begin) ||
        !expr_same(k, a->end, b->end) || !expr_same(k, a->index, b->index) || !expr_same(k, a->value, b->value) ||
        !expr_same(k, a->cond, b->cond) || !stmt_same(k, a->body, b->body) || !stmt_same(k, a->other, b->other))
        return false;
    for (int i = 0; i < a->count; i++)
        if (!stmt_same(k, a->items[i], b->items[i]))
            return false;
    return true;
}

bool lir_kernel_same(const lir_kernel *a, const lir_kernel *b) {
    if (a->param_count != b->param_count || a->var_count != b->var_count || a->once != b->once)
        return false;
    for (int v = 0; v < a->var_count; v++)
        if (a->vars[v].type != b->vars[v].type)
            return false;
    pair k = {a, b};
    for (int p = 0; p < a->param_count; p++)
        if (!buf_same(&k, a->params[p], b->params[p]))
            return false;
    return stmt_same(&k, a->body, b->body);
}

int *lir_same_kernels(const lir_module *m, int *distinct) {
    int *same = malloc(((size_t)m->kernel_count + 1) * sizeof *same);
    if (!same)
        return NULL;
    *distinct = 0;
    for (int i = 0; i < m->kernel_count; i++) {
        same[i] = i;
        for (int r = 0; r < i && same[i] == i; r++)
            if (same[r] == r && lir_kernel_same(m->kernels[r], m->kernels[i]))
                same[i] = r;
        *distinct += same[i] == i;
    }
    return same;
}
