/*
 * verify.c — the graph verifier (see verify.h).
 *
 * Invariants: every node's op exists and its input/output counts are in the op's range;
 * required inputs are present; every input is a graph input, an initializer, or an output
 * of an earlier node (so the order is topological and there are no cycles); each node
 * output is produced by exactly that node; attributes are declared by the op's schema with
 * the declared kind, and required ones are present; initializers hold data matching their
 * type; graph inputs have a dtype and rank; dims are >= 0 or symbolic; there is at least
 * one output.
 */
#include "ir/verify.h"

#include <stdlib.h>
#include <string.h>

typedef struct verifier {
    const ir_graph *g;
    ir_problem_fn report;
    void *ctx;
    kiln_diag *d;
    kiln_status first;
} verifier;

static void problem(verifier *v, kiln_loc loc, kiln_status st, const char *fmt, ...)
    KILN_PRINTF(4, 5);

#include <stdarg.h>
static void problem(verifier *v, kiln_loc loc, kiln_status st, const char *fmt, ...) {
    char body[KILN_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    kiln_diag one = {0};
    if (!loc.file)
        loc.file = v->g->file;
    diag_error(&one, loc, st, "%s", body);
    if (v->report)
        v->report(v->ctx, one.message);
    if (v->first == KILN_OK) {
        v->first = st;
        kiln_rt_error(v->d, st, "%s", one.message);
    }
}

static void check_type(verifier *v, const ir_value *val) {
    const kiln_tensor *t = &val->type;
    if (t->rank > KILN_MAX_RANK)
        problem(v, val->loc, KILN_ERR_UNSUPPORTED, "value '%s': rank %d above %d", val->name,
                t->rank, KILN_MAX_RANK);
    for (int i = 0; i < t->rank && i < KILN_MAX_RANK; i++) {
        int64_t dim = t->dims[i];
        if (dim < IR_DIM_UNKNOWN || (dim == IR_DIM_BATCH && !v->g->batch_name))
            problem(v, val->loc, KILN_ERR_SHAPE, "value '%s': invalid dimension %lld at axis %d",
                    val->name, (long long)dim, i);
    }
}

static void check_init(verifier *v, const ir_value *val) {
    const kiln_tensor *t = val->init;
    if (!t) {
        problem(v, val->loc, KILN_ERR_INVALID, "initializer '%s' has no data", val->name);
        return;
    }
    bool same = t->dtype == val->type.dtype && t->rank == val->type.rank;
    for (int i = 0; same && i < t->rank; i++)
        same = t->dims[i] == val->type.dims[i];
    if (!same)
        problem(v, val->loc, KILN_ERR_SHAPE, "initializer '%s': data does not match its type",
                val->name);
}

static void check_attrs(verifier *v, const ir_node *n) {
    for (int i = 0; i < n->attr_count; i++) {
        const ir_attr *a = &n->attrs[i];
        const ir_attr_spec *s = ir_op_attr_spec(n->op, a->name);
        if (!s)
            problem(v, n->loc, KILN_ERR_INVALID, "unknown attribute '%s'", a->name);
        else if (s->kind != a->kind)
            problem(v, n->loc, KILN_ERR_INVALID, "attribute '%s': expected %s, got %s", a->name,
                    ir_attr_kind_name(s->kind), ir_attr_kind_name(a->kind));
        for (int j = 0; j < i; j++)
            if (!strcmp(n->attrs[j].name, a->name))
                problem(v, n->loc, KILN_ERR_INVALID, "attribute '%s' given twice", a->name);
    }
    for (const ir_attr_spec *s = ir_op_table[n->op].attrs; s->name; s++)
        if (s->required && !ir_node_attr(n, s->name))
            problem(v, n->loc, KILN_ERR_INVALID, "missing required attribute '%s'", s->name);
}

static void check_node(verifier *v, const ir_node *n, const int *position, int index) {
    const ir_op_info *info = &ir_op_table[n->op];
    if (n->input_count < info->min_inputs || n->input_count > info->max_inputs)
        problem(v, n->loc, KILN_ERR_INVALID, "expects %d..%d inputs, got %d", info->min_inputs,
                info->max_inputs, n->input_count);
    if (n->output_count < info->min_outputs || n->output_count > info->max_outputs)
        problem(v, n->loc, KILN_ERR_INVALID, "expects %d..%d outputs, got %d", info->min_outputs,
                info->max_outputs, n->output_count);
    for (int i = 0; i < n->input_count; i++) {
        const ir_value *in = n->inputs[i];
        if (!in) { /* a variadic op's inputs are all required: ONNX has no holes in them */
            if (i < info->min_inputs || info->max_inputs == IR_VARIADIC)
                problem(v, n->loc, KILN_ERR_INVALID, "required input %d is missing", i);
            continue;
        }
        if (in->kind != IR_VAL_NODE)
            continue;
        if (!in->producer || position[in->producer->id] < 0)
            problem(v, n->loc, KILN_ERR_INVALID, "input '%s' is not produced by any node",
                    in->name);
        else if (position[in->producer->id] >= index)
            problem(v, n->loc, KILN_ERR_INVALID,
                    "input '%s' is used before it is produced (cycle or order)", in->name);
    }
    for (int i = 0; i < n->output_count; i++) {
        const ir_value *out = n->outputs[i];
        if (!out || out->kind != IR_VAL_NODE || out->producer != n || out->producer_slot != i)
            problem(v, n->loc, KILN_ERR_INTERNAL, "output %d is not linked to this node", i);
        else
            check_type(v, out);
    }
    check_attrs(v, n);
}

kiln_status ir_verify(const ir_graph *g, ir_problem_fn report, void *ctx, kiln_diag *d) {
    verifier v = {g, report, ctx, d, KILN_OK};
    int *position = malloc(sizeof(int) * (size_t)(g->node_ids + 1));
    if (!position)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    for (int i = 0; i < g->node_ids; i++)
        position[i] = -1;
    for (int i = 0; i < g->node_count; i++)
        position[g->nodes[i]->id] = i;

    for (int i = 0; i < g->input_count; i++) {
        const ir_value *in = g->inputs[i];
        if (in->type.dtype == KILN_DTYPE_INVALID || in->type.rank < 0)
            problem(&v, in->loc, KILN_ERR_INVALID, "input '%s' needs a dtype and a shape",
                    in->name);
        check_type(&v, in);
    }
    for (int i = 0; i < g->init_count; i++) {
        check_type(&v, g->inits[i]);
        check_init(&v, g->inits[i]);
    }
    for (int i = 0; i < g->node_count; i++)
        check_node(&v, g->nodes[i], position, i);
    if (g->output_count == 0)
        problem(&v, LOC_NONE, KILN_ERR_INVALID, "graph '%s' has no outputs", g->name);
    for (int i = 0; i < g->output_count; i++) {
        const ir_value *out = g->outputs[i];
        if (out->kind == IR_VAL_NODE && (!out->producer || position[out->producer->id] < 0))
            problem(&v, out->loc, KILN_ERR_INVALID, "output '%s' is not produced by any node",
                    out->name);
    }
    free(position);
    return v.first;
}
