/*
 * lower.c — the lowering driver: the rule table (from ir/ops.def), one kernel per node,
 * and the helpers the rules share (loop nests, flat and broadcast indices).
 */
#include "passes/lower.h"

#include <stdarg.h>
#include <string.h>

kiln_status lower_plan(lir_module *m, kiln_diag *d);

static bool inlined(const lower_ctx *c, const ir_value *v) {
    return c->plan && v && v->producer && c->plan->role[v->producer->id] == FUSE_INLINE;
}

/* The values an epilogue has made at one output element, in order: the anchor's output,
 * then each node's, with their expressions (in the values' dtypes). */
typedef struct made_values {
    const ir_value *v[FUSE_EPILOGUE_MAX + 1];
    lir_expr *e[FUSE_EPILOGUE_MAX + 1];
    int n;
} made_values;

static lir_expr *made_expr(const made_values *k, const ir_value *v) {
    for (int i = 0; k && i < k->n; i++)
        if (k->v[i] == v)
            return k->e[i];
    return NULL;
}

/* A context for node n computed inside c's kernel: its first `read` inputs are c's
 * kernel's parameters (or inlined in turn), but for those `known` has the values of;
 * the others (a view's shape or bounds) only give their types and constant data. */
static kiln_status sub_ctx(const lower_ctx *c, const ir_node *n, const made_values *known, int read, lower_ctx *s) {
    *s = (lower_ctx){.m = c->m, .k = c->k, .node = n, .plan = c->plan, .d = c->d};
    for (int j = 0; j < n->input_count; j++) {
        const ir_value *v = n->inputs[j];
        s->in_type[j] = lower_value_type(v);
        if (v && j < read && !made_expr(known, v) && !inlined(c, v) && !(s->in[j] = lir_param(c->m, c->k, v)))
            return lower_oom(c);
    }
    s->out_type[0] = &n->outputs[0]->type;
    return KILN_OK;
}

/* Elementwise node n's value at coords (of its output's rank), in its compute type,
 * rounded through its output dtype as a store and a load would. `known` supplies the
 * values of inputs an epilogue made (the accumulator's, its earlier nodes'). */
static lir_expr *node_value(const lower_ctx *c, const ir_node *n, lir_expr **coords, const made_values *known) {
    lower_ctx s;
    lower_scalar_fn f = lower_scalar_rule(n);
    if (!f || sub_ctx(c, n, known, n->input_count, &s))
        return NULL;
    const kiln_tensor *out = &n->outputs[0]->type;
    lir_expr *x[IR_VARIADIC];
    for (int j = 0; j < n->input_count; j++) {
        const kiln_tensor *t = s.in_type[j];
        lir_expr **at = !t ? NULL : n->op == IR_OP_BATCH_NORM && j > 0 ? coords + 1 /* per channel */
                                                                        : coords + (out->rank - t->rank);
        lir_expr *made = made_expr(known, n->inputs[j]);
        /* a made value flows in with its own dtype (a comparison's is bool) */
        x[j] = made ? lir_cast(c->m, lower_compute_type(n->inputs[j]->type.dtype), made) : t ? lower_read(&s, j, at) : NULL;
        if (t && !x[j])
            return NULL;
    }
    lir_expr *v = f(&s, x);
    return v ? lir_cast(c->m, lower_compute_type(out->dtype), lir_cast(c->m, out->dtype, v)) : NULL;
}

/* View n's value at coords (of its output's rank), inside c's kernel (lower_view_value).
 * Reshapes inlined into a reshape keep the elements' order all the way down: over a
 * stored value, n's flat index is that value's (fuse.c inlines a reshape into one that
 * reads flat, and only a reshape). */
static lir_expr *view_value(const lower_ctx *c, const ir_node *n, lir_expr **coords) {
    lower_ctx s;
    if (sub_ctx(c, n, NULL, 1, &s))
        return NULL;
    const ir_value *v = n->inputs[0];
    while (lower_is_reshape(n->op) && inlined(c, v) && lower_is_reshape(v->producer->op))
        v = v->producer->inputs[0];
    if (v != n->inputs[0] && !inlined(c, v)) {
        if (!(s.in[0] = lir_param(c->m, c->k, v)))
            return NULL;
        s.in_type[0] = lower_value_type(v);
        return lower_view_value(&s, false, coords);
    }
    return lower_view_value(&s, inlined(c, n->inputs[0]), coords);
}

lir_stmt *lower_store_out(lower_ctx *c, lir_expr **coords, lir_expr *value) {
    const kiln_tensor *out = c->out_type[0];
    made_values made = {.v = {c->node->outputs[0]}, .e = {lir_cast(c->m, out->dtype, value)}, .n = 1};
    if (c->epilogue_count > FUSE_EPILOGUE_MAX) /* fuse.c makes none longer */
        return NULL;
    for (int e = 0; e < c->epilogue_count && made.e[made.n - 1]; e++, made.n++) {
        const ir_node *n = c->epilogue[e];
        lir_expr *v = node_value(c, n, coords, &made);
        made.v[made.n] = n->outputs[0], made.e[made.n] = v ? lir_cast(c->m, n->outputs[0]->type.dtype, v) : NULL;
    }
    lir_expr *v = made.e[made.n - 1];
    return v ? lir_store(c->m, c->out[0], lower_index(c, &made.v[made.n - 1]->type, coords, out->rank), v) : NULL;
}

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

bool lower_input_constant(const lower_ctx *c, int i) {
    const lir_buffer *b = c->in[i];
    return b && b->kind == LIR_BUF_VALUE && b->value->init;
}

lir_kernel *lower_pack_kernel(lower_ctx *c) {
    char name[300];
    snprintf(name, sizeof name, "%s_pack", c->k->name);
    lir_kernel *k = lir_kernel_add(c->m, name, c->node);
    if (k)
        k->once = true;
    return k;
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
    const ir_value *v = c->node->inputs[i];
    if (inlined(c, v))
        return lower_scalar_rule(v->producer) ? node_value(c, v->producer, coords, NULL)
                                               : view_value(c, v->producer, coords);
    if (v->kind == IR_VAL_CONST && v->init && ir_type_count(t) == 1) /* a literal LLVM folds into the code */
        return ir_dtype_is_float(t->dtype) ? lir_const(c->m, lower_compute_type(t->dtype), ir_tensor_get(v->init, 0))
                                           : lir_int_const(c->m, t->dtype, ir_tensor_get_int(v->init, 0));
    return lir_cast(c->m, lower_compute_type(t->dtype), lir_load(c->m, c->in[i], lower_index(c, t, coords, t->rank)));
}

kiln_dtype lower_compute_type(kiln_dtype t) {
    return t == KILN_F16 || t == KILN_BF16 ? KILN_F32 : t;
}

/* The arithmetic node n needs: 2 per multiply-add for MatMul, Gemm, the convolutions and the
 * recurrent gates, one per output element for everything else (a convention: exp costs
 * more, a copy less). */
static int64_t node_flops(const ir_node *n) {
    const kiln_tensor *out = &n->outputs[0]->type, *a = n->input_count ? &n->inputs[0]->type : NULL;
    const kiln_tensor *w = n->input_count > 1 && n->inputs[1] ? &n->inputs[1]->type : NULL;
    int64_t count = ir_type_count(out), taps = 1;
    switch (n->op) {
    case IR_OP_MATMUL: return 2 * count * (a->rank ? a->dims[a->rank - 1] : 1);
    case IR_OP_GEMM: return 2 * count * a->dims[ir_attr_int(n, "transA") ? 0 : 1];
    case IR_OP_CONV: case IR_OP_CONV_NCHWC:
        for (int d = 1; w && d < (n->op == IR_OP_CONV ? w->rank : 4); d++) /* Cin / groups x kernel taps */
            taps *= w->dims[d];
        return 2 * count * taps;
    case IR_OP_CONV_TRANSPOSE:
        for (int d = 1; w && d < w->rank; d++) /* Cout / groups x kernel taps, per input element */
            taps *= w->dims[d];
        return 2 * ir_type_count(a) * taps;
    case IR_OP_RNN: case IR_OP_GRU: case IR_OP_LSTM: { /* the gate products, every step and direction */
        const kiln_tensor *r = n->input_count > 2 && n->inputs[2] ? &n->inputs[2]->type : NULL;
        int64_t in = a->rank == 3 ? a->dims[2] : 0;
        if (!w || !r || w->rank != 3 || r->rank != 3 || in <= 0)
            return count;
        return 2 * (ir_type_count(a) / in) * (ir_type_count(w) / in) * (in + r->dims[2]);
    }
    default: return count;
    }
}

static kiln_status lower_node(lir_module *m, const ir_node *n, const fusion_plan *plan, kiln_diag *d) {
    lower_ctx c = {.m = m, .node = n, .plan = plan, .d = d};
    if (n->output_count > ARRAY_LEN(c.out))
        return lower_error(&c, KILN_ERR_UNSUPPORTED, "too many outputs to lower");
    const fuse_attention *attn = plan ? plan->attention[n->id] : NULL;
    char name[256];
    const ir_node *wino = plan ? plan->winograd[n->id] : NULL;
    snprintf(name, sizeof name, "k%d_%s", m->kernel_count, attn ? "Attention" : wino ? "WinogradConv" : ir_op_table[n->op].name);
    if (!(c.k = lir_kernel_add(m, name, n)))
        return lower_oom(&c);
    /* a pattern's kernel takes the pattern's inputs, not the anchor's: attention's Q, KT, V,
     * mask (P is never stored); Winograd's X, weights, bias (nor are its tiles) */
    const ir_value *pattern_in[4] = {0};
    int pattern = attn ? 4 : wino ? 3 : 0;
    if (attn)
        pattern_in[0] = attn->q, pattern_in[1] = attn->kt, pattern_in[2] = attn->v, pattern_in[3] = attn->mask;
    else if (wino)
        pattern_in[0] = wino->inputs[0], pattern_in[1] = n->inputs[0]->producer->inputs[1],
        pattern_in[2] = n->input_count > 1 ? n->inputs[1] : NULL;
    for (int i = 0; i < pattern; i++) {
        const ir_value *v = pattern_in[i];
        if (v && !(c.in[i] = lir_param(m, c.k, v)))
            return lower_oom(&c);
        c.in_type[i] = lower_value_type(v);
    }
    for (int i = 0; !pattern && i < n->input_count; i++) {
        const ir_value *v = n->inputs[i];
        c.in[i] = v && !inlined(&c, v) ? lir_param(m, c.k, v) : NULL; /* inlined: computed where read */
        if (v && !inlined(&c, v) && !c.in[i])
            return lower_oom(&c);
        c.in_type[i] = lower_value_type(v);
    }
    if (plan && plan->chain[n->id]) { /* output 0 is the epilogue's last value */
        c.epilogue = plan->chain[n->id];
        c.epilogue_count = plan->chain_count[n->id];
    }
    for (int i = 0; i < n->output_count; i++) {
        const ir_value *v = i == 0 && c.epilogue_count ? c.epilogue[c.epilogue_count - 1]->outputs[0] : n->outputs[i];
        if (!(c.out[i] = lir_param(m, c.k, v)))
            return lower_oom(&c);
        c.out_type[i] = &n->outputs[i]->type;
    }
    c.k->flops = node_flops(n);
    for (int e = 0; e < c.epilogue_count; e++)
        c.k->flops += node_flops(c.epilogue[e]);
    const ir_node *part[] = {attn ? attn->scores : NULL, attn ? attn->scale : NULL, attn ? attn->mask_add : NULL,
                             attn ? attn->softmax : NULL};
    for (int i = 0; i < (int)ARRAY_LEN(part); i++)
        if (part[i])
            c.k->flops += node_flops(part[i]);
    if (wino)
        c.k->flops += node_flops(n->inputs[0]->producer);
    return attn ? lower_attention(&c, attn) : wino ? lower_winograd_fused(&c, wino) : lower_rules[n->op](&c);
}

kiln_status lower_graph(const ir_graph *g, const lower_options *o, lir_module **out, fusion_plan *plan_out,
                        kiln_diag *d) {
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
    fusion_plan plan = {0};
    kiln_status st = fuse_plan(g, o, &plan, d);
    if (!st && (st = lir_module_create(g, &m, d)))
        fuse_plan_free(&plan);
    if (st)
        return st;
    m->vector_bits = o ? o->vector_bits : 0;
    m->threads = o ? o->threads : 0;
    m->l2_bytes = lower_l2_bytes(o);
    for (int i = 0; !st && i < g->node_count; i++) {
        const ir_node *n = g->nodes[i];
        if (plan.role[n->id] == FUSE_INLINE || plan.role[n->id] == FUSE_ATTENTION || plan.role[n->id] == FUSE_WINOGRAD ||
            plan.chain[n->id])
            continue; /* computed where read; or an anchor that runs with its epilogue's last node */
        if (plan.role[n->id] == FUSE_EPILOGUE) {
            const ir_node *host = plan.host[n->id];
            if (plan.chain[host->id][plan.chain_count[host->id] - 1] == n)
                st = lower_node(m, host, &plan, d);
            continue;
        }
        st = lower_node(m, n, &plan, d);
    }
    if (!st)
        st = lir_stage(m, d);
    if (!st)
        st = lower_plan(m, d);
    if (!st && m->arena_bytes + m->persist_bytes > kiln_max_memory())
        st = diag_error(d, LOC_NONE, KILN_ERR_OOM, "the compiled model's arena needs %lld bytes, above the memory cap of %lld",
                        (long long)(m->arena_bytes + m->persist_bytes), (long long)kiln_max_memory());
    if (!st)
        lir_schedule(m);
    if (st || !plan_out)
        fuse_plan_free(&plan);
    if (st) {
        lir_module_destroy(m);
        return st;
    }
    if (plan_out)
        *plan_out = plan;
    *out = m;
    return KILN_OK;
}
