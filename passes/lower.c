/*
 * lower.c — the lowering driver: the rule table (from ir/ops.def), one kernel per node,
 * and the helpers the rules share (loop nests, flat and broadcast indices).
 */
#include "passes/lower.h"

#include <stdarg.h>
#include <string.h>

kiln_status lower_plan(lir_module *m, kiln_diag *d);

/* Ops whose loop lowering has not been written yet: compiling a model that uses one
 * reports it by name (the interpreter still runs them). */
#define lower_shape lower_none
#define lower_size lower_none
#define lower_constant lower_none

static kiln_status lower_none(lower_ctx *c) {
    return lower_error(c, KILN_ERR_UNSUPPORTED, "%s has no loop lowering yet (run it with the interpreter)",
                       ir_op_table[c->node->op].name);
}

static const lower_fn lower_rules[IR_OP_COUNT] = {
#define OP(ID, fn, ...) [IR_OP_##ID] = lower_##fn,
#include "ir/ops.def"
#undef OP
};

bool lower_supported(ir_op op) {
    return lower_rules[op] != lower_none;
}

kiln_status lower_error(const lower_ctx *c, kiln_status st, const char *fmt, ...) {
    char body[KILN_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    return diag_error(c->d, c->node->loc, st, "%s", body);
}

kiln_status lower_oom(const lower_ctx *c) {
    return lower_error(c, KILN_ERR_OOM, "out of memory while lowering");
}

kiln_status lower_emit(lower_ctx *c, lir_stmt *s) {
    return lir_seq_push(c->m, c->k->body, s) ? KILN_OK : lower_oom(c);
}

int lower_var(lower_ctx *c, const char *name, kiln_dtype type) {
    return lir_var_new(c->m, c->k, name, type);
}

kiln_status lower_nest(lower_ctx *c, const kiln_tensor *shape, lir_expr **coords, lir_stmt **inner,
                       lir_stmt **outer) {
    lir_stmt *body = lir_seq(c->m);
    if (!body)
        return lower_oom(c);
    *inner = body;
    int first = -1; /* the outermost dim that gets a loop: size-1 dims get none */
    for (int d = 0; d < shape->rank && first < 0; d++)
        if (shape->dims[d] != 1)
            first = d;
    for (int d = shape->rank - 1; d >= 0; d--) {
        if (shape->dims[d] == 1) {
            if (!(coords[d] = lir_int(c->m, 0)))
                return lower_oom(c);
            continue;
        }
        char name[16];
        snprintf(name, sizeof name, "i%d", d);
        int v = lower_var(c, name, KILN_I64);
        coords[d] = lir_var_ref(c->m, c->k, v);
        body = lir_for(c->m, v, lir_int(c->m, 0), lir_int(c->m, shape->dims[d]), body);
        if (!body || !coords[d])
            return lower_oom(c);
        if (d == first) /* iterations write disjoint outputs: may run in parallel (schedule.c decides) */
            body->loop = LIR_PARALLEL;
        else { /* each level is a sequence, so callers can add to outer levels later */
            lir_stmt *seq = lir_seq(c->m);
            if (!lir_seq_push(c->m, seq, body))
                return lower_oom(c);
            body = seq;
        }
    }
    *outer = body;
    return KILN_OK;
}

lir_expr *lower_index(lower_ctx *c, const kiln_tensor *shape, lir_expr *const *coords, int out_rank) {
    lir_expr *flat = NULL; /* NULL: zero so far, so leading size-1 dims add nothing */
    for (int d = 0; d < shape->rank; d++) {
        if (flat)
            flat = lir_binary(c->m, LIR_MUL, flat, lir_int(c->m, shape->dims[d]));
        if (shape->dims[d] != 1) {
            lir_expr *coord = coords[d + out_rank - shape->rank];
            flat = flat ? lir_binary(c->m, LIR_ADD, flat, coord) : coord;
        }
    }
    return flat ? flat : lir_int(c->m, 0);
}

lir_stmt *lower_loop(lower_ctx *c, const char *name, int64_t n, lir_stmt *body, lir_expr **var) {
    int v = lower_var(c, name, KILN_I64);
    *var = lir_var_ref(c->m, c->k, v);
    return lir_for(c->m, v, lir_int(c->m, 0), lir_int(c->m, n), body);
}

lir_stmt *lower_seq1(lower_ctx *c, lir_stmt *s) {
    lir_stmt *q = lir_seq(c->m);
    return lir_seq_push(c->m, q, s) ? q : NULL;
}

lir_expr *lower_read(lower_ctx *c, int i, lir_expr **coords) {
    const kiln_tensor *t = c->in_type[i];
    return lir_cast(c->m, lower_compute_type(t->dtype), lir_load(c->m, c->in[i], lower_index(c, t, coords, t->rank)));
}

kiln_dtype lower_compute_type(kiln_dtype t) {
    return t == KILN_F16 || t == KILN_BF16 ? KILN_F32 : t;
}

static kiln_status lower_node(lir_module *m, const ir_node *n, kiln_diag *d) {
    lower_ctx c = {.m = m, .node = n, .d = d};
    if (n->output_count > ARRAY_LEN(c.out))
        return lower_error(&c, KILN_ERR_UNSUPPORTED, "too many outputs to lower");
    char name[256];
    snprintf(name, sizeof name, "k%d_%s", m->kernel_count, ir_op_table[n->op].name);
    if (!(c.k = lir_kernel_add(m, name, n)))
        return lower_oom(&c);
    for (int i = 0; i < n->input_count; i++) {
        const ir_value *v = n->inputs[i];
        c.in[i] = v ? lir_param(m, c.k, v) : NULL;
        if (v && !c.in[i])
            return lower_oom(&c);
        c.in_type[i] = v ? (v->init ? v->init : &v->type) : NULL;
    }
    for (int i = 0; i < n->output_count; i++) {
        if (!(c.out[i] = lir_param(m, c.k, n->outputs[i])))
            return lower_oom(&c);
        c.out_type[i] = &n->outputs[i]->type;
    }
    return lower_rules[n->op](&c);
}

kiln_status lower_graph(const ir_graph *g, int vector_bits, lir_module **out, kiln_diag *d) {
    *out = NULL;
    bool symbolic = false; /* an input with a symbolic dim: specializing it may help */
    for (int i = 0; i < g->input_count; i++)
        symbolic |= !ir_type_known(&g->inputs[i]->type);
    for (int i = 0; i < g->node_count; i++)
        for (int j = 0; j < g->nodes[i]->output_count; j++)
            if (!ir_type_known(&g->nodes[i]->outputs[j]->type))
                return diag_error(d, g->nodes[i]->loc, KILN_ERR_UNSUPPORTED, "output '%s' has no static shape: %s",
                                  g->nodes[i]->outputs[j]->name,
                                  symbolic ? "compile for a batch size"
                                           : "it depends on values computed at run time (the interpreter runs it)");
    lir_module *m;
    kiln_status st = lir_module_create(g, &m, d);
    if (!st)
        m->vector_bits = vector_bits;
    for (int i = 0; !st && i < g->node_count; i++)
        st = lower_node(m, g->nodes[i], d);
    if (!st)
        st = lower_plan(m, d);
    if (!st)
        lir_schedule(m);
    if (st) {
        lir_module_destroy(m);
        return st;
    }
    *out = m;
    return KILN_OK;
}
