/*
 * shape.c — the shape rule table (expanded from ir/ops.def) and the `shape` pass.
 *
 * The pass walks nodes in order, gives each rule its inputs' types (and values, for
 * constants), and records the outputs' types. A type written in the model is checked
 * against the inferred one: they must agree where both are known.
 */
#include "passes/pass.h"
#include "passes/shape.h"
#include "ir/print.h"

#include <stdlib.h>
#include <string.h>

static const shape_fn shape_rules[IR_OP_COUNT] = {
#define OP(ID, fn, ...) [IR_OP_##ID] = shape_##fn,
#include "ir/ops.def"
#undef OP
};

kiln_status shape_infer_node(const ir_node *n, const kiln_tensor *const *in, kiln_tensor *out,
                             kiln_diag *d) {
    for (int i = 0; i < n->output_count; i++)
        out[i] = (kiln_tensor){.rank = -1};
    for (int i = 0; i < n->input_count; i++) {
        if (!in[i])
            continue;
        if (in[i]->dtype == KILN_DTYPE_INVALID || in[i]->rank < 0)
            return KILN_OK; /* nothing to build on: outputs stay unknown */
    }
    shape_ctx c = {n, in, n->input_count, out, n->output_count, d};
    kiln_status st = shape_rules[n->op](&c);
    if (st)
        return st;
    for (int i = 0; i < n->output_count; i++) {
        if (out[i].rank > KILN_MAX_RANK)
            return diag_error(d, n->loc, KILN_ERR_UNSUPPORTED, "output %d: rank %d above %d", i,
                              out[i].rank, KILN_MAX_RANK);
        /* a shape computed from the model's numbers (Expand, Tile, ConstantOfShape, ...) is
         * checked against the memory cap here, before anything is sized by it */
        int64_t count;
        kiln_status size = ir_type_size_check(&out[i], &count);
        const char *name = n->outputs[i] ? n->outputs[i]->name : "?";
        if (size == KILN_ERR_INVALID)
            return diag_error(d, n->loc, KILN_ERR_SHAPE, "output '%s': the element count overflows", name);
        if (size) {
            char type[128];
            return diag_error(d, n->loc, KILN_ERR_OOM, "output '%s' is %s, over the memory cap of %lld bytes", name,
                              ir_type_text(&out[i], type, sizeof type), (long long)kiln_max_memory());
        }
    }
    return KILN_OK;
}

/* Merges the inferred type into the value's declared one; they must agree. */
static kiln_status merge_type(ir_node *n, ir_value *v, const kiln_tensor *inferred, kiln_diag *d) {
    kiln_tensor *t = &v->type;
    if (t->dtype == KILN_DTYPE_INVALID) {
        *t = *inferred;
        t->data = NULL;
        return KILN_OK;
    }
    if (inferred->dtype == KILN_DTYPE_INVALID)
        return KILN_OK;
    bool agree = t->dtype == inferred->dtype &&
                 (t->rank < 0 || inferred->rank < 0 || t->rank == inferred->rank);
    for (int i = 0; agree && t->rank >= 0 && i < t->rank && inferred->rank >= 0; i++) {
        int64_t a = t->dims[i], b = inferred->dims[i];
        if (a >= 0 && b >= 0 ? a != b : (a == IR_DIM_BATCH && b >= 0) || (b == IR_DIM_BATCH && a >= 0))
            agree = false;
    }
    if (!agree) {
        char want[128], got[128];
        return diag_error(d, n->loc, KILN_ERR_SHAPE, "output '%s' is declared %s but the inputs give %s",
                          v->name, ir_type_text(t, want, sizeof want), ir_type_text(inferred, got, sizeof got));
    }
    if (t->rank < 0 && inferred->rank >= 0) { /* the rank was unknown: so was every dim */
        t->rank = inferred->rank;
        for (int i = 0; i < t->rank; i++)
            t->dims[i] = IR_DIM_UNKNOWN;
    }
    for (int i = 0; i < t->rank && inferred->rank >= 0; i++)
        if (t->dims[i] == IR_DIM_UNKNOWN)
            t->dims[i] = inferred->dims[i];
    return KILN_OK;
}

kiln_status pass_shape_node(ir_graph *g, ir_node *n, kiln_diag *d) {
    (void)g;
    size_t nin = (size_t)n->input_count + 1, nout = (size_t)n->output_count + 1;
    const kiln_tensor **in = malloc(sizeof(*in) * nin);
    kiln_tensor *types = malloc(sizeof(*types) * nin), *out = malloc(sizeof(*out) * nout);
    if (!in || !types || !out) {
        free(in), free(types), free(out);
        return diag_error(d, n->loc, KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; i < n->input_count; i++) {
        if (!n->inputs[i]) {
            in[i] = NULL;
            continue;
        }
        types[i] = n->inputs[i]->type;
        types[i].data = n->inputs[i]->init ? n->inputs[i]->init->data : NULL;
        in[i] = &types[i];
    }
    kiln_status st = shape_infer_node(n, in, out, d);
    for (int i = 0; !st && i < n->output_count; i++)
        st = merge_type(n, n->outputs[i], &out[i], d);
    free(in), free(types), free(out);
    return st;
}

kiln_status pass_shape(ir_graph *g, pass_ctx *cx) {
    for (int i = 0; i < g->node_count; i++) {
        kiln_status st = pass_shape_node(g, g->nodes[i], cx->d);
        if (st)
            return st;
    }
    return KILN_OK;
}
