/*
 * interp.c — the interpreter's driver: the rule table (expanded from ir/ops.def),
 * evaluation of one node, and of a whole graph with values freed after their last use.
 */
#include "backend/interp/interp.h"
#include "ir/print.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static const interp_fn interp_rules[IR_OP_COUNT] = {
#define OP(ID, fn, ...) [IR_OP_##ID] = interp_##fn,
#include "ir/ops.def"
#undef OP
};

void interp_copy_elem(kiln_tensor *dst, int64_t to, const kiln_tensor *src, int64_t from) {
    size_t es = kiln_dtype_size(dst->dtype);
    memcpy((char *)dst->data + (size_t)to * es, (const char *)src->data + (size_t)from * es, es);
}

kiln_status interp_error(const interp_ctx *c, kiln_status st, const char *fmt, ...) {
    char body[KILN_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    return diag_error(c->s.d, c->s.node->loc, st, "%s", body);
}

kiln_status interp_eval_node(const ir_node *n, const kiln_tensor *const *in, kiln_tensor **out,
                             kiln_diag *d) {
    kiln_tensor *types = calloc((size_t)n->output_count + 1, sizeof *types);
    if (!types)
        return diag_error(d, n->loc, KILN_ERR_OOM, "out of memory");
    for (int i = 0; i < n->output_count; i++)
        out[i] = NULL;
    kiln_status st = shape_infer_node(n, in, types, d);
    for (int i = 0; !st && i < n->output_count; i++) {
        if (!ir_type_known(&types[i])) {
            st = diag_error(d, n->loc, KILN_ERR_INTERNAL, "output %d has no concrete shape", i);
            break;
        }
        kiln_diag td = {0};
        if ((st = kiln_tensor_create(types[i].dtype, types[i].rank, types[i].dims, &out[i], &td)))
            st = diag_error(d, n->loc, st, "output %d: %s", i, td.message);
    }
    if (!st) {
        interp_ctx c = {{n, in, n->input_count, types, n->output_count, d}, out};
        st = interp_rules[n->op](&c);
    }
    if (st)
        for (int i = 0; i < n->output_count; i++) {
            kiln_tensor_free(out[i]);
            out[i] = NULL;
        }
    free(types);
    return st;
}

/* Checks a fed tensor against the declared input type; the batch dim must agree across
 * inputs. */
static kiln_status check_input(const ir_graph *g, const ir_value *v, const kiln_tensor *t,
                               int64_t *batch, kiln_diag *d) {
    bool ok = t && t->dtype == v->type.dtype && t->rank == v->type.rank;
    for (int i = 0; ok && i < t->rank; i++) {
        int64_t want = v->type.dims[i];
        if (want == IR_DIM_BATCH) {
            if (*batch < 0)
                *batch = t->dims[i];
            ok = t->dims[i] == *batch;
        } else {
            ok = want < 0 || want == t->dims[i];
        }
    }
    if (ok)
        return KILN_OK;
    if (!t)
        return diag_error(d, v->loc, KILN_ERR_INVALID, "input '%s' was not given", v->name);
    char got[160] = "", *p = got;
    p += snprintf(p, 20, "%s[", kiln_dtype_name(t->dtype));
    for (int i = 0; i < t->rank; i++)
        p += snprintf(p, 24, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
    snprintf(p, 4, "]");
    char *want = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&want, &len);
    if (f) {
        ir_print_type(f, g, &v->type);
        fclose(f);
    }
    kiln_status st = diag_error(d, (kiln_loc){.file = g->file}, KILN_ERR_SHAPE,
                                "input '%s': expected %s, got %s", v->name, want ? want : "?", got);
    free(want);
    return st;
}

kiln_status interp_check_inputs(const ir_graph *g, const kiln_tensor *const *inputs, kiln_diag *d) {
    int64_t batch = -1;
    for (int i = 0; i < g->input_count; i++) {
        kiln_status st = check_input(g, g->inputs[i], inputs[i], &batch, d);
        if (st)
            return st;
    }
    return KILN_OK;
}

kiln_status interp_run(const ir_graph *g, const kiln_tensor *const *inputs, kiln_tensor **outputs,
                       kiln_diag *d) {
    const kiln_tensor **val = calloc((size_t)g->value_ids + 1, sizeof *val);
    kiln_tensor **owned = calloc((size_t)g->value_ids + 1, sizeof *owned);
    int *last_use = calloc((size_t)g->value_ids + 1, sizeof *last_use);
    kiln_tensor **outs = calloc(IR_VARIADIC + 1, sizeof *outs);
    kiln_status st = KILN_OK;
    int64_t batch = -1;
    for (int j = 0; j < g->output_count; j++)
        outputs[j] = NULL;
    if (!val || !owned || !last_use || !outs) {
        st = diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
        goto done;
    }
    for (int i = 0; !st && i < g->input_count; i++) {
        st = check_input(g, g->inputs[i], inputs[i], &batch, d);
        val[g->inputs[i]->id] = inputs[i];
    }
    for (int i = 0; i < g->init_count; i++)
        val[g->inits[i]->id] = g->inits[i]->init;
    for (int i = 0; i < g->node_count; i++)
        for (int j = 0; j < g->nodes[i]->input_count; j++)
            if (g->nodes[i]->inputs[j])
                last_use[g->nodes[i]->inputs[j]->id] = i;
    for (int j = 0; j < g->output_count; j++)
        last_use[g->outputs[j]->id] = g->node_count; /* kept to the end */
    for (int i = 0; !st && i < g->node_count; i++) {
        const ir_node *n = g->nodes[i];
        const kiln_tensor *in[IR_VARIADIC];
        for (int j = 0; j < n->input_count; j++)
            in[j] = n->inputs[j] ? val[n->inputs[j]->id] : NULL;
        if ((st = interp_eval_node(n, in, outs, d)))
            break;
        for (int j = 0; j < n->output_count; j++) {
            int id = n->outputs[j]->id;
            val[id] = owned[id] = outs[j];
        }
        for (int j = 0; j < n->input_count; j++) { /* free what no later node reads */
            const ir_value *v = n->inputs[j];
            if (v && owned[v->id] && last_use[v->id] == i) {
                kiln_tensor_free(owned[v->id]);
                owned[v->id] = NULL;
                val[v->id] = NULL;
            }
        }
    }
    for (int j = 0; !st && j < g->output_count; j++) {
        const kiln_tensor *t = val[g->outputs[j]->id];
        kiln_diag td = {0};
        if ((st = kiln_tensor_create(t->dtype, t->rank, t->dims, &outputs[j], &td)))
            st = diag_error(d, LOC_NONE, st, "%s", td.message);
        else
            memcpy(outputs[j]->data, t->data, kiln_tensor_bytes(t));
    }
done:
    if (st)
        for (int j = 0; j < g->output_count; j++) {
            kiln_tensor_free(outputs[j]);
            outputs[j] = NULL;
        }
    for (int i = 0; owned && i < g->value_ids; i++)
        kiln_tensor_free(owned[i]);
    free(val), free(owned), free(last_use), free(outs);
    return st;
}
