/*
 * layout.c — weight layouts chosen at compile time. A Gemm with transB = 1 and a
 * constant B ([N, K]) gets B transposed once into a new constant [K, N] and transB = 0:
 * compiled code then reads B along n, consecutive elements for consecutive lanes of its
 * vector loop, instead of gathering with a stride of K. The products and their order are
 * unchanged, so the results are the same to the bit.
 */
#include "passes/pass.h"

#include <string.h>

static kiln_status transpose_b(ir_graph *g, ir_node *n, kiln_diag *d) {
    const ir_value *b = n->inputs[1];
    const kiln_tensor *w = b->init;
    int64_t rows = w->dims[0], cols = w->dims[1], dims[2] = {cols, rows};
    size_t size = kiln_dtype_size(w->dtype);
    kiln_tensor *t;
    ir_value *v;
    kiln_status st = ir_graph_new_tensor(g, w->dtype, 2, dims, &t, d);
    if (!st)
        st = ir_graph_new_value(g, ir_graph_fresh_name(g, b->name), IR_VAL_NODE, b->loc, &v, d);
    if (st)
        return st;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            memcpy((char *)t->data + (size_t)(c * rows + r) * size, (const char *)w->data + (size_t)(r * cols + c) * size, size);
    if ((st = ir_value_make_const(g, v, t, d)))
        return st;
    n->inputs[1] = v;
    for (int i = 0; i < n->attr_count; i++)
        if (!strcmp(n->attrs[i].name, "transB"))
            n->attrs[i].i = 0;
    return KILN_OK;
}

kiln_status pass_layout(ir_graph *g, pass_ctx *cx) {
    for (int i = 0; i < g->node_count; i++) {
        ir_node *n = g->nodes[i];
        if (n->op != IR_OP_GEMM || !ir_attr_int(n, "transB") || !n->inputs[1]->init || n->inputs[1]->init->rank != 2)
            continue;
        kiln_status st = transpose_b(g, n, cx->d);
        if (st)
            return st;
    }
    return KILN_OK;
}
