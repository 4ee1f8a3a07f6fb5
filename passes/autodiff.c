/*
 * autodiff.c — the reverse-mode pass and the builder gradient rules write with (see
 * autodiff.h).
 *
 * The pass marks the nodes that lie on a path from a wanted value to the loss, seeds the
 * loss's gradient with ones, and walks those nodes backwards (the graph is topologically
 * ordered, so walking it in reverse visits every reader before its producer): each node's
 * rule turns its output gradients into input gradients, and a value read by several nodes
 * accumulates their contributions with Add.
 */
#include "passes/autodiff.h"
#include "passes/pass.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

ir_value *gb_fail(grad_ctx *c, kiln_status st, const char *fmt, ...) {
    if (c->st)
        return NULL;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    c->st = diag_error(c->d, c->node ? c->node->loc : LOC_NONE, st, "gradient: %s", msg);
    return NULL;
}

static ir_value *oom(grad_ctx *c) {
    return gb_fail(c, KILN_ERR_OOM, "out of memory");
}

ir_node *gb_begin(grad_ctx *c, ir_op op, int count, ir_value *const *inputs) {
    if (c->st)
        return NULL;
    /* an input that a failed helper left NULL: only optional slots may be NULL, and the
     * rules pass NULL there on purpose only after the required ones */
    for (int i = 0; i < count && i < ir_op_table[op].min_inputs; i++)
        if (!inputs[i])
            return (ir_node *)gb_fail(c, KILN_ERR_INTERNAL, "a %s node lacks input %d", ir_op_table[op].name, i);
    char name[256];
    if (c->node)
        snprintf(name, sizeof name, "grad.%s", c->node->outputs[0]->name);
    else
        snprintf(name, sizeof name, "%s", c->base ? c->base : "grad.loss");
    ir_value *out;
    kiln_loc loc = c->node ? c->node->loc : LOC_NONE;
    if (ir_graph_new_value(c->g, ir_graph_fresh_name(c->g, name), IR_VAL_NODE, loc, &out, c->d)) {
        oom(c);
        return NULL;
    }
    ir_node *n;
    kiln_status st = ir_graph_add_node(c->g, op, out->name, inputs, count, &out, 1, loc, &n, c->d);
    if (st) {
        c->st = st;
        return NULL;
    }
    return n;
}

static ir_attr *attr(grad_ctx *c, ir_node *n, const char *name, ir_attr_kind kind) {
    if (c->st || !n)
        return NULL;
    ir_attr *a = ir_node_add_attr(c->g, n, name, kind);
    if (!a)
        oom(c);
    return a;
}

void gb_attr_int(grad_ctx *c, ir_node *n, const char *name, int64_t v) {
    ir_attr *a = attr(c, n, name, IR_ATTR_INT);
    if (a)
        a->i = v;
}

void gb_attr_string(grad_ctx *c, ir_node *n, const char *name, const char *v) {
    ir_attr *a = attr(c, n, name, IR_ATTR_STRING);
    if (a && !(a->s = arena_strdup(c->g->arena, v)))
        oom(c);
}

void gb_attr_float(grad_ctx *c, ir_node *n, const char *name, double v) {
    ir_attr *a = attr(c, n, name, IR_ATTR_FLOAT);
    if (a)
        a->f = v;
}

void gb_attr_ints(grad_ctx *c, ir_node *n, const char *name, int count, const int64_t *v) {
    ir_attr *a = attr(c, n, name, IR_ATTR_INTS);
    if (!a)
        return;
    if (!(a->ints = ARENA_ARRAY(c->g->arena, int64_t, count))) {
        oom(c);
        return;
    }
    memcpy(a->ints, v, sizeof(int64_t) * (size_t)count);
    a->count = count;
}

ir_value *gb_done(grad_ctx *c, ir_node *n) {
    if (c->st || !n)
        return NULL;
    kiln_status st = pass_shape_node(c->g, n, c->d);
    if (st) {
        c->st = st;
        return NULL;
    }
    return n->outputs[0];
}

ir_value *gb1(grad_ctx *c, ir_op op, ir_value *a) {
    return gb_done(c, gb_begin(c, op, 1, &a));
}

ir_value *gb2(grad_ctx *c, ir_op op, ir_value *a, ir_value *b) {
    ir_value *in[2] = {a, b};
    return gb_done(c, gb_begin(c, op, 2, in));
}

ir_value *gb3(grad_ctx *c, ir_op op, ir_value *a, ir_value *b, ir_value *x) {
    ir_value *in[3] = {a, b, x};
    return gb_done(c, gb_begin(c, op, 3, in));
}

/* A constant of the given type; its data (zeroed) is filled by the caller. Named after
 * the builder's base outside rules (another pass using the builder), else "grad.const". */
static ir_value *new_const(grad_ctx *c, kiln_dtype dt, int rank, const int64_t *dims) {
    if (c->st)
        return NULL;
    ir_value *v;
    kiln_tensor *t;
    char name[300];
    snprintf(name, sizeof name, "%s.const", !c->node && c->base ? c->base : "grad");
    if (ir_graph_new_value(c->g, ir_graph_fresh_name(c->g, name), IR_VAL_CONST, LOC_NONE, &v, c->d) ||
        ir_graph_new_tensor(c->g, dt, rank, dims, &t, c->d))
        return oom(c);
    v->init = t;
    v->type = *t;
    v->type.data = NULL;
    return v;
}

ir_value *gb_reduce(grad_ctx *c, ir_op op, ir_value *x, int count, const int64_t *axes, bool keepdims) {
    ir_node *r = gb_begin(c, op, 1, &x);
    if (count >= 0)
        gb_attr_ints(c, r, "axes", count, axes);
    gb_attr_int(c, r, "keepdims", keepdims);
    return gb_done(c, r);
}

ir_value *gb_scalar(grad_ctx *c, kiln_dtype dt, double value) {
    ir_value *v = new_const(c, dt, 0, NULL);
    if (v)
        ir_tensor_set(v->init, 0, value);
    return v;
}

ir_value *gb_i64s(grad_ctx *c, int count, const int64_t *values) {
    int64_t dims[1] = {count};
    ir_value *v = new_const(c, KILN_I64, 1, dims);
    if (v)
        for (int i = 0; i < count; i++)
            ir_tensor_set_int(v->init, i, values[i]);
    return v;
}

ir_value *gb_floats(grad_ctx *c, kiln_dtype dt, int count, const double *values) {
    int64_t dims[1] = {count};
    ir_value *v = new_const(c, dt, 1, dims);
    if (v)
        for (int i = 0; i < count; i++)
            ir_tensor_set(v->init, i, values[i]);
    return v;
}

ir_value *gb_tensor(grad_ctx *c, kiln_dtype dt, int rank, const int64_t *dims, const double *values) {
    ir_value *v = new_const(c, dt, rank, dims);
    for (int64_t i = 0; v && values && i < ir_type_count(&v->type); i++)
        ir_tensor_set(v->init, i, values[i]);
    return v;
}

ir_value *gb_reshape(grad_ctx *c, ir_value *x, const kiln_tensor *to) {
    if (c->st || !x)
        return NULL;
    if (x->type.rank == to->rank && !memcmp(x->type.dims, to->dims, sizeof(int64_t) * (size_t)to->rank))
        return x;
    return gb2(c, IR_OP_RESHAPE, x, gb_i64s(c, to->rank, to->dims));
}

ir_value *gb_unbroadcast(grad_ctx *c, ir_value *dy, const kiln_tensor *to) {
    if (c->st || !dy)
        return NULL;
    const kiln_tensor *from = &dy->type;
    int lead = from->rank - to->rank;
    if (lead < 0)
        return gb_fail(c, KILN_ERR_INTERNAL, "cannot unbroadcast rank %d to rank %d", from->rank, to->rank);
    int64_t axes[KILN_MAX_RANK];
    int n = 0;
    for (int i = 0; i < from->rank; i++)
        if (i < lead || (to->dims[i - lead] == 1 && from->dims[i] != 1))
            axes[n++] = i;
    return gb_reshape(c, n ? gb_reduce(c, IR_OP_REDUCE_SUM, dy, n, axes, true) : dy, to);
}

ir_value *gb_transpose(grad_ctx *c, ir_value *x, const int64_t *perm) {
    if (c->st || !x)
        return NULL;
    ir_node *t = gb_begin(c, IR_OP_TRANSPOSE, 1, &x);
    gb_attr_ints(c, t, "perm", x->type.rank, perm);
    return gb_done(c, t);
}

ir_value *gb_swap_last(grad_ctx *c, ir_value *x) {
    if (c->st || !x)
        return NULL;
    int rank = x->type.rank;
    int64_t perm[KILN_MAX_RANK];
    for (int i = 0; i < rank; i++)
        perm[i] = i;
    perm[rank - 1] = rank - 2, perm[rank - 2] = rank - 1;
    return gb_transpose(c, x, perm);
}

/* ---- the pass -------------------------------------------------------------------------- */

/* Adds g to the gradient accumulated for value v. */
static void accumulate(grad_ctx *c, ir_value **grad_of, const ir_value *v, ir_value *g) {
    if (c->st || !g)
        return;
    if (g->type.rank != v->type.rank || memcmp(g->type.dims, v->type.dims, sizeof(int64_t) * (size_t)v->type.rank) ||
        g->type.dtype != v->type.dtype) {
        gb_fail(c, KILN_ERR_INTERNAL, "the gradient of '%s' has another type than the value", v->name);
        return;
    }
    grad_of[v->id] = grad_of[v->id] ? gb2(c, IR_OP_ADD, grad_of[v->id], g) : g;
}

/* The reverse walk over `forward` (count nodes, in topological order): grad_of holds the
 * seeds on entry, indexed by value id; from[v]: v depends on a wanted value; to[v]: a
 * seeded value depends on v. Each node with a gradient flowing out and an input that needs
 * one runs its rule; input gradients accumulate into grad_of. */
static void walk(grad_ctx *c, ir_node *const *forward, int count, ir_value **grad_of, const bool *from,
                 const bool *to) {
    for (int i = count - 1; i >= 0 && !c->st; i--) {
        ir_node *n = forward[i];
        ir_value *dy[16] = {0}, *dx[IR_VARIADIC] = {0};
        bool need[IR_VARIADIC] = {0}, any_dy = false, any_need = false;
        for (int k = 0; k < n->output_count && k < 16; k++)
            any_dy |= (dy[k] = to[n->outputs[k]->id] ? grad_of[n->outputs[k]->id] : NULL) != NULL;
        for (int k = 0; k < n->input_count; k++) {
            const ir_value *v = n->inputs[k];
            any_need |= need[k] = v && from[v->id] && to[v->id] && ir_dtype_is_float(v->type.dtype);
        }
        if (!any_dy || !any_need)
            continue;
        grad_fn rule = grad_rule(n->op);
        c->node = n, c->dy = dy, c->dx = dx, c->need = need;
        if (!rule) {
            gb_fail(c, KILN_ERR_UNSUPPORTED, "op %s has no gradient rule yet", ir_op_table[n->op].name);
            break;
        }
        kiln_status st = rule(c);
        if (st && !c->st)
            c->st = st;
        for (int k = 0; k < n->input_count && !c->st; k++)
            if (need[k] && dx[k])
                accumulate(c, grad_of, n->inputs[k], dx[k]);
    }
    c->node = NULL;
}

/* from[v] for every value depending on a value marked in it, to[v] for every value a value
 * marked in it depends on, through the nodes given. */
static void reach(ir_node *const *nodes, int count, bool *from, bool *to) {
    for (int i = 0; i < count; i++) {
        bool any = false;
        for (int k = 0; k < nodes[i]->input_count; k++)
            any |= nodes[i]->inputs[k] && from[nodes[i]->inputs[k]->id];
        for (int k = 0; any && k < nodes[i]->output_count; k++)
            from[nodes[i]->outputs[k]->id] = true;
    }
    for (int i = count - 1; i >= 0; i--) {
        bool any = false;
        for (int k = 0; k < nodes[i]->output_count; k++)
            any |= to[nodes[i]->outputs[k]->id];
        for (int k = 0; any && k < nodes[i]->input_count; k++)
            if (nodes[i]->inputs[k])
                to[nodes[i]->inputs[k]->id] = true;
    }
}

kiln_status gb_vjp(grad_ctx *c, int first, int seed_count, ir_value *const *values, ir_value *const *seeds,
                   int wrt_count, ir_value *const *wrt, ir_value **grads) {
    if (c->st)
        return c->st;
    ir_graph *g = c->g;
    int count = g->node_count - first, ids = g->value_ids;
    bool *from = calloc((size_t)ids + 1, 1), *to = calloc((size_t)ids + 1, 1);
    ir_value **grad_of = calloc((size_t)ids + 1, sizeof *grad_of);
    ir_node **nodes = malloc(sizeof *nodes * ((size_t)count + 1));
    if (!from || !to || !grad_of || !nodes) {
        free(from), free(to), free(grad_of), free(nodes);
        gb_fail(c, KILN_ERR_OOM, "out of memory");
        return c->st;
    }
    memcpy(nodes, g->nodes + first, sizeof *nodes * (size_t)count); /* the rules append nodes */
    for (int i = 0; i < wrt_count; i++)
        if (wrt[i])
            from[wrt[i]->id] = true;
    for (int i = 0; i < seed_count; i++)
        if (values[i] && seeds[i]) {
            to[values[i]->id] = true;
            grad_of[values[i]->id] = seeds[i];
        }
    reach(nodes, count, from, to);
    /* the new nodes are named after the node being differentiated (or the caller's base) */
    grad_ctx sub = {.g = g, .d = c->d, .base = c->base, .node = c->node};
    walk(&sub, nodes, count, grad_of, from, to);
    for (int i = 0; i < wrt_count; i++)
        grads[i] = wrt[i] && !sub.st ? grad_of[wrt[i]->id] : NULL;
    free(from), free(to), free(grad_of), free(nodes);
    if (sub.st)
        c->st = sub.st;
    return c->st;
}

kiln_status autodiff(ir_graph *g, ir_value *loss, ir_value *const *wrt, int wrt_count, ir_value **grads,
                     kiln_diag *d) {
    grad_ctx c = {.g = g, .d = d};
    if (!ir_dtype_is_float(loss->type.dtype) || ir_type_count(&loss->type) != 1)
        return diag_error(d, loss->loc, KILN_ERR_INVALID, "the loss '%s' must be a single float value", loss->name);
    /* the seed, d loss / d loss = 1 in the loss's type; then the whole graph's VJP */
    ir_value *one = gb_scalar(&c, loss->type.dtype, 1.0);
    ir_value *seed = loss->type.rank ? gb_reshape(&c, one, &loss->type) : one;
    if (gb_vjp(&c, 0, 1, &loss, &seed, wrt_count, wrt, grads))
        return c.st;
    for (int i = 0; i < wrt_count && !c.st; i++)
        if (!grads[i]) { /* the loss does not depend on it */
            ir_value *zero = gb_scalar(&c, wrt[i]->type.dtype, 0.0);
            ir_node *e = gb_begin(&c, IR_OP_EXPAND, 2,
                                  (ir_value *[]){zero, gb_i64s(&c, wrt[i]->type.rank, wrt[i]->type.dims)});
            grads[i] = gb_done(&c, e);
        }
    return c.st;
}
