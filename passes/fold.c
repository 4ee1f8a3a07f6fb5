/*
 * fold.c — constant folding. Walks nodes in order; a node whose inputs are all constants
 * (or, for OPF_SHAPE_ONLY ops such as Shape, whose input shape is fully known) is
 * evaluated once through cx->eval and its outputs become constants. Each node's shape is
 * re-inferred first, so a Reshape whose target shape was just folded gets its real shape.
 * Folding that would blow a small input up into a large constant (ConstantOfShape,
 * Expand, Tile, Range) is left to run time: the model file should not grow.
 */
#include "passes/pass.h"

#include <stdlib.h>
#include <string.h>

enum { FOLD_MIN_BYTES = 64 * 1024 };

static bool foldable(const ir_node *n, int64_t *in_bytes) {
    *in_bytes = 0;
    bool shape_only = ir_op_table[n->op].flags & OPF_SHAPE_ONLY;
    for (int i = 0; i < n->input_count; i++) {
        const ir_value *v = n->inputs[i];
        if (!v)
            continue;
        if (shape_only ? !ir_type_known(&v->type) : !v->init)
            return false;
        if (!shape_only)
            *in_bytes += (int64_t)kiln_tensor_bytes(v->init);
    }
    for (int i = 0; i < n->output_count; i++)
        if (!ir_type_known(&n->outputs[i]->type))
            return false;
    return true;
}

static kiln_status fold_node(ir_graph *g, ir_node *n, pass_ctx *cx) {
    kiln_tensor *out[64] = {0};
    const kiln_tensor *in[64];
    kiln_tensor types[64];
    if (n->input_count > 64 || n->output_count > 64)
        return KILN_OK;
    for (int i = 0; i < n->input_count; i++) {
        if (!n->inputs[i]) {
            in[i] = NULL;
        } else if (n->inputs[i]->init) {
            in[i] = n->inputs[i]->init;
        } else { /* a shape-only op reads the type alone */
            types[i] = n->inputs[i]->type;
            types[i].data = NULL;
            in[i] = &types[i];
        }
    }
    kiln_status st = cx->eval(n, in, out, cx->d);
    for (int i = 0; !st && i < n->output_count; i++) {
        kiln_tensor *t;
        if ((st = ir_graph_new_tensor(g, out[i]->dtype, out[i]->rank, out[i]->dims, &t, cx->d)))
            break;
        memcpy(t->data, out[i]->data, kiln_tensor_bytes(out[i]));
        st = ir_value_make_const(g, n->outputs[i], t, cx->d);
    }
    for (int i = 0; i < n->output_count; i++)
        kiln_tensor_free(out[i]);
    return st;
}

kiln_status pass_fold(ir_graph *g, pass_ctx *cx) {
    if (!cx->eval)
        return KILN_OK;
    bool *keep = calloc((size_t)g->node_count + 1, sizeof *keep);
    if (!keep)
        return diag_error(cx->d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    kiln_status st = KILN_OK;
    for (int i = 0; !st && i < g->node_count; i++) {
        ir_node *n = g->nodes[i];
        int64_t in_bytes, out_bytes = 0;
        keep[i] = true;
        if ((st = pass_shape_node(g, n, cx->d)) || !foldable(n, &in_bytes))
            continue;
        for (int j = 0; j < n->output_count; j++)
            out_bytes += ir_type_count(&n->outputs[j]->type) *
                         (int64_t)kiln_dtype_size(n->outputs[j]->type.dtype);
        if (out_bytes > FOLD_MIN_BYTES && out_bytes > in_bytes)
            continue;
        if ((st = fold_node(g, n, cx)) == KILN_OK)
            keep[i] = false;
    }
    if (!st)
        ir_graph_keep_nodes(g, keep);
    free(keep);
    return st;
}
