/*
 * plan.c — memory planning: binds every graph value to its storage. Graph inputs and
 * constants stay where the caller and the graph keep them; node outputs that are graph
 * outputs are written straight into the caller's output buffers; every other value a
 * kernel writes gets a 64-byte-aligned offset in one arena, first fit, reusing the bytes
 * of values whose last reading kernel has run (values fused away take none). A kernel's
 * outputs are placed before its inputs are released, so a kernel reads and writes the
 * same bytes only in place: an output takes the block of an input the kernel reads last
 * when in_place.c proves each element is read before it is overwritten. A kernel's
 * scratch buffers (LIR_BUF_LOCAL) take arena bytes for its run only.
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

/* An input of kernel kn (number k) whose arena block `out` can take: kn reads it last, the
 * block is big enough and not yet handed on, and kn reads each element before it writes
 * the same bytes (lower_in_place_safe). NULL if none. */
static const ir_value *in_place_donor(const lir_module *m, const lir_kernel *kn, int k, const lir_buffer *out,
                                      const int *last_use, const int64_t *size) {
    for (int p = 0; p < kn->param_count; p++) {
        const lir_buffer *b = kn->params[p];
        if (b->kind == LIR_BUF_VALUE && m->storage[b->value->id].kind == LIR_STORE_ARENA &&
            last_use[b->value->id] == k && size[b->value->id] >= size[out->value->id] && lower_in_place_safe(kn, b, out))
            return b->value;
    }
    return NULL;
}

typedef struct planner {
    int *last_use;     /* by value id: the last kernel that reads or writes it */
    int64_t *size;     /* by value id: its arena block's bytes while it holds one */
    block *free_list;
} planner;

/* One plan from scratch into m (storage, scratch, arena and persistent sizes); in_place:
 * outputs may take the blocks of inputs their kernel reads last. */
static void plan(lir_module *m, const planner *pl, bool in_place) {
    const ir_graph *g = m->graph;
    int *last_use = pl->last_use;
    int64_t *size = pl->size;
    block *free_list = pl->free_list;
    for (int i = 0; i <= g->value_ids; i++)
        m->storage[i] = (lir_storage){LIR_STORE_NONE, 0, 0}, size[i] = 0;
    for (int k = 0; k < m->kernel_count; k++)
        for (int p = 0; p < m->kernels[k]->param_count; p++)
            m->kernels[k]->params[p]->local = (lir_storage){LIR_STORE_NONE, 0, 0};
    m->persist_bytes = 0;
    for (int i = 0; i < g->input_count; i++)
        m->storage[g->inputs[i]->id] = (lir_storage){LIR_STORE_INPUT, i, 0};
    for (int i = 0; i < g->init_count; i++)
        m->storage[g->inits[i]->id] = (lir_storage){LIR_STORE_CONST, 0, 0};
    for (int j = 0; j < g->output_count; j++) {
        lir_storage *s = &m->storage[g->outputs[j]->id];
        if (g->outputs[j]->kind == IR_VAL_NODE && s->kind == LIR_STORE_NONE)
            *s = (lir_storage){LIR_STORE_OUTPUT, j, 0};
    }
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
            const ir_value *donor = in_place ? in_place_donor(m, kn, k, b, last_use, size) : NULL;
            if (donor) { /* the block moves to v whole: released when v is */
                m->storage[v->id] = m->storage[donor->id];
                size[v->id] = size[donor->id], size[donor->id] = 0;
            } else {
                m->storage[v->id] = (lir_storage){LIR_STORE_ARENA, 0, take(free_list, &nfree, &top, size[v->id])};
            }
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
}

/* In place where it can be, unless first fit then packs the arena worse than without
 * (blocks handed on change which holes later values find: ViT-B/16's fused arena 4.4 ->
 * 5.0 MB, ResNet-18's unfused 10.3 -> 11.1). Unfused, in place took the Transformer's
 * arena from 11.5 to 6.3 MB, ConvNeXt-tiny's from 18.3 to 13.4. */
kiln_status lower_plan(lir_module *m, kiln_diag *d) {
    const ir_graph *g = m->graph;
    int locals = 0; /* every block handed out can come back as a free block */
    for (int k = 0; k < m->kernel_count; k++)
        for (int p = 0; p < m->kernels[k]->param_count; p++)
            locals += m->kernels[k]->params[p]->kind == LIR_BUF_LOCAL;
    planner pl = {.last_use = calloc((size_t)g->value_ids + 1, sizeof *pl.last_use),
                  .size = calloc((size_t)g->value_ids + 1, sizeof *pl.size),
                  .free_list = calloc((size_t)g->value_ids + (size_t)locals + 2, sizeof *pl.free_list)};
    if (!pl.last_use || !pl.size || !pl.free_list) {
        free(pl.last_use), free(pl.size), free(pl.free_list);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    /* by kernel, in run order: a value fused away is no kernel's parameter and takes nothing */
    for (int k = 0; k < m->kernel_count; k++)
        for (int p = 0; p < m->kernels[k]->param_count; p++)
            if (m->kernels[k]->params[p]->kind == LIR_BUF_VALUE)
                pl.last_use[m->kernels[k]->params[p]->value->id] = k;
    plan(m, &pl, false);
    int64_t apart = m->arena_bytes;
    plan(m, &pl, true);
    if (m->arena_bytes > apart)
        plan(m, &pl, false);
    free(pl.last_use), free(pl.size), free(pl.free_list);
    return KILN_OK;
}
