/*
 * plan.c — memory planning: binds every graph value to its storage. Graph inputs and
 * constants stay where the caller and the graph keep them; node outputs that are graph
 * outputs are written straight into the caller's output buffers; every other value a
 * kernel writes gets a 64-byte-aligned offset in one arena, first fit, reusing the bytes
 * of values whose last reading kernel has run (values fused away take none). A kernel's
 * outputs are placed before its inputs are released, so no kernel reads and writes the
 * same bytes (in-place reuse is a later refinement). A kernel's scratch buffers
 * (LIR_BUF_LOCAL) take arena bytes for its run only.
 */
#include "passes/lower.h"

#include <stdlib.h>

typedef struct block {
    int64_t offset, size;
} block;

/* First fit in a sorted free list over [0, *top); grows *top when nothing fits. */
static int64_t take(block *free_list, int *nfree, int64_t *top, int64_t size) {
    for (int i = 0; i < *nfree; i++)
        if (free_list[i].size >= size) {
            int64_t at = free_list[i].offset;
            free_list[i].offset += size;
            free_list[i].size -= size;
            if (!free_list[i].size) {
                for (int j = i + 1; j < *nfree; j++)
                    free_list[j - 1] = free_list[j];
                (*nfree)--;
            }
            return at;
        }
    int64_t at = *top;
    *top += size;
    return at;
}

/* Returns a block to the sorted free list, merging with its neighbours. */
static void give(block *free_list, int *nfree, int64_t offset, int64_t size) {
    int i = 0;
    while (i < *nfree && free_list[i].offset < offset)
        i++;
    for (int j = *nfree; j > i; j--)
        free_list[j] = free_list[j - 1];
    free_list[i] = (block){offset, size};
    (*nfree)++;
    if (i + 1 < *nfree && free_list[i].offset + free_list[i].size == free_list[i + 1].offset) {
        free_list[i].size += free_list[i + 1].size;
        for (int j = i + 2; j < *nfree; j++)
            free_list[j - 1] = free_list[j];
        (*nfree)--;
    }
    if (i > 0 && free_list[i - 1].offset + free_list[i - 1].size == free_list[i].offset) {
        free_list[i - 1].size += free_list[i].size;
        for (int j = i + 1; j < *nfree; j++)
            free_list[j - 1] = free_list[j];
        (*nfree)--;
    }
}

/* A kernel's scratch in whole cache lines. */
static int64_t local_bytes(const lir_buffer *b) {
    int64_t bytes = (b->count * (int64_t)kiln_dtype_size(b->dtype) + 63) / 64 * 64;
    return bytes ? bytes : 64;
}

kiln_status lower_plan(lir_module *m, kiln_diag *d) {
    const ir_graph *g = m->graph;
    int locals = 0; /* every block handed out can come back as a free block */
    for (int k = 0; k < m->kernel_count; k++)
        for (int p = 0; p < m->kernels[k]->param_count; p++)
            locals += m->kernels[k]->params[p]->kind == LIR_BUF_LOCAL;
    int *last_use = calloc((size_t)g->value_ids + 1, sizeof *last_use);
    int64_t *size = calloc((size_t)g->value_ids + 1, sizeof *size);
    block *free_list = calloc((size_t)g->value_ids + (size_t)locals + 2, sizeof *free_list);
    if (!last_use || !size || !free_list) {
        free(last_use), free(size), free(free_list);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; i < g->input_count; i++)
        m->storage[g->inputs[i]->id] = (lir_storage){LIR_STORE_INPUT, i, 0};
    for (int i = 0; i < g->init_count; i++)
        m->storage[g->inits[i]->id] = (lir_storage){LIR_STORE_CONST, 0, 0};
    for (int j = 0; j < g->output_count; j++) {
        lir_storage *s = &m->storage[g->outputs[j]->id];
        if (g->outputs[j]->kind == IR_VAL_NODE && s->kind == LIR_STORE_NONE)
            *s = (lir_storage){LIR_STORE_OUTPUT, j, 0};
    }
    /* by kernel, in run order: a value fused away is no kernel's parameter and takes nothing */
    for (int k = 0; k < m->kernel_count; k++)
        for (int p = 0; p < m->kernels[k]->param_count; p++)
            if (m->kernels[k]->params[p]->kind == LIR_BUF_VALUE)
                last_use[m->kernels[k]->params[p]->value->id] = k;
    int nfree = 0;
    int64_t top = 0;
    for (int k = 0; k < m->kernel_count; k++) {
        const lir_kernel *kn = m->kernels[k];
        for (int p = 0; p < kn->param_count; p++) { /* what it writes: first seen here */
            lir_buffer *b = kn->params[p];
            if (b->kind != LIR_BUF_VALUE || m->storage[b->value->id].kind != LIR_STORE_NONE)
                continue;
            const ir_value *v = b->value;
            int64_t bytes = ir_type_count(&v->type) * (int64_t)kiln_dtype_size(v->type.dtype);
            size[v->id] = bytes ? (bytes + 63) / 64 * 64 : 64;
            m->storage[v->id] = (lir_storage){LIR_STORE_ARENA, 0, take(free_list, &nfree, &top, size[v->id])};
        }
        /* its scratch: reserved while it runs, never over its operands; persistent buffers
         * (once kernels' outputs, read by later runs) in their own block, never reused */
        for (int p = 0; p < kn->param_count; p++) {
            lir_buffer *b = kn->params[p];
            if (b->kind == LIR_BUF_LOCAL && b->persistent && b->local.kind == LIR_STORE_NONE) {
                b->local = (lir_storage){LIR_STORE_PERSIST, 0, m->persist_bytes};
                m->persist_bytes += local_bytes(b);
            } else if (b->kind == LIR_BUF_LOCAL && !b->persistent) {
                b->local = (lir_storage){LIR_STORE_ARENA, 0, take(free_list, &nfree, &top, local_bytes(b))};
            }
        }
        for (int p = 0; p < kn->param_count; p++)
            if (kn->params[p]->kind == LIR_BUF_LOCAL && !kn->params[p]->persistent)
                give(free_list, &nfree, kn->params[p]->local.offset, local_bytes(kn->params[p]));
        for (int p = 0; p < kn->param_count; p++) { /* values nothing later reads */
            const lir_buffer *b = kn->params[p];
            if (b->kind == LIR_BUF_VALUE && m->storage[b->value->id].kind == LIR_STORE_ARENA &&
                last_use[b->value->id] == k && size[b->value->id]) {
                give(free_list, &nfree, m->storage[b->value->id].offset, size[b->value->id]);
                size[b->value->id] = 0; /* released once */
            }
        }
    }
    m->arena_bytes = top;
    free(last_use), free(size), free(free_list);
    return KILN_OK;
}
