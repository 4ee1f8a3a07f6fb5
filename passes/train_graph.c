/*
 * train_graph.c — a forward graph rewritten into its training step (see train_graph.h).
 *
 * The update rules follow PyTorch's, so that a run can be compared with one:
 *   SGD:   g += wd * p;  v = mu * v + g;  p -= lr * (nesterov ? g + mu * v : v)
 *   Adam:  g += wd * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;
 *          p -= step_size * m / (sqrt(v) + eps)
 *   AdamW: p *= 1 - lr * wd, then Adam's update without the L2 term
 * where step_size = lr * sqrt(1 - b2^t) / (1 - b1^t) and eps = eps0 * sqrt(1 - b2^t)
 * carry Adam's bias correction (computed by the trainer for each step t).
 */
#include "passes/train_graph.h"
#include "passes/autodiff.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void train_graph_free(train_graph *t) {
    for (int i = 0; t->initial && i < t->param_count; i++)
        kiln_tensor_free(t->initial[i]);
    free(t->initial), free(t->params);
    *t = (train_graph){0};
}

static kiln_status new_input(ir_graph *g, const char *name, kiln_dtype dt, int rank, const int64_t *dims,
                             ir_value **out, kiln_diag *d) {
    kiln_status st = ir_graph_new_value(g, ir_graph_fresh_name(g, name), IR_VAL_INPUT, LOC_NONE, out, d);
    if (st)
        return st;
    (*out)->type = (kiln_tensor){.dtype = dt, .rank = rank};
    if (rank)
        memcpy((*out)->type.dims, dims, sizeof(int64_t) * (size_t)rank);
    return KILN_OK;
}

kiln_status train_graph_params_as_inputs(ir_graph *g, const train_spec *s, train_graph *out, kiln_diag *d) {
    *out = (train_graph){.forward_inputs = g->input_count};
    int n = 0;
    for (int i = 0; i < g->init_count; i++) {
        const ir_value *v = g->inits[i];
        n += v->kind == IR_VAL_PARAM && ir_dtype_is_float(v->type.dtype) && !(s->freeze && strstr(v->name, s->freeze));
    }
    out->params = calloc((size_t)n + 1, sizeof *out->params);
    out->initial = calloc((size_t)n + 1, sizeof *out->initial);
    if (!out->params || !out->initial) {
        train_graph_free(out);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; i < g->init_count;) {
        ir_value *v = g->inits[i];
        if (v->kind != IR_VAL_PARAM || !ir_dtype_is_float(v->type.dtype) || (s->freeze && strstr(v->name, s->freeze))) {
            i++;
            continue;
        }
        kiln_tensor *t;
        kiln_status st = kiln_tensor_create(v->init->dtype, v->init->rank, v->init->dims, &t, d);
        if (!st) {
            memcpy(t->data, v->init->data, kiln_tensor_bytes(t));
            out->initial[out->param_count] = t;
            out->params[out->param_count++] = v;
            st = ir_value_make_input(g, v, d); /* removes it from inits: i stays */
        }
        if (st) {
            train_graph_free(out);
            return st;
        }
    }
    return KILN_OK;
}

kiln_status train_graph_build(ir_graph *g, const train_spec *s, train_graph *out, kiln_diag *d) {
    if (!g->output_count)
        return diag_error(d, (kiln_loc){.file = g->file}, KILN_ERR_INVALID, "the model has no output to train");
    ir_value *pred = g->outputs[0];
    if (!ir_dtype_is_float(pred->type.dtype) || !ir_type_known(&pred->type))
        return diag_error(d, pred->loc, KILN_ERR_INVALID, "the prediction '%s' must be a float tensor of known shape",
                          pred->name);
    if (s->loss == TRAIN_CROSS_ENTROPY && pred->type.rank != 2)
        return diag_error(d, pred->loc, KILN_ERR_INVALID,
                          "cross-entropy needs [batch, classes] logits; '%s' has rank %d", pred->name,
                          pred->type.rank);
    int forward_inputs = g->input_count;
    /* labels and the step's scalars come right after the model's own inputs */
    ir_value *labels, *lr, *step_size, *eps;
    kiln_status st = s->loss == TRAIN_CROSS_ENTROPY
                         ? new_input(g, "labels", KILN_I64, 1, pred->type.dims, &labels, d)
                         : new_input(g, "targets", pred->type.dtype, pred->type.rank, pred->type.dims, &labels, d);
    if (!st)
        st = new_input(g, "kiln.lr", KILN_F32, 0, NULL, &lr, d);
    if (!st)
        st = new_input(g, "kiln.step_size", KILN_F32, 0, NULL, &step_size, d);
    if (!st)
        st = new_input(g, "kiln.eps", KILN_F32, 0, NULL, &eps, d);
    if (!st)
        st = train_graph_params_as_inputs(g, s, out, d);
    if (st)
        return st;
    out->forward_inputs = forward_inputs;
    if (!out->param_count)
        return diag_error(d, (kiln_loc){.file = g->file}, KILN_ERR_INVALID, "the model has no trainable parameters");

    grad_ctx c = {.g = g, .d = d, .base = "loss"};
    ir_value *loss;
    if (s->loss == TRAIN_CROSS_ENTROPY) {
        loss = gb2(&c, IR_OP_SOFTMAX_CROSS_ENTROPY, pred, labels);
    } else {
        ir_value *diff = gb2(&c, IR_OP_SUB, pred, labels);
        ir_node *mean = gb_begin(&c, IR_OP_REDUCE_MEAN, 1, (ir_value *[]){gb2(&c, IR_OP_MUL, diff, diff)});
        gb_attr_int(&c, mean, "keepdims", 0);
        loss = gb_done(&c, mean);
    }
    if (c.st) {
        train_graph_free(out);
        return c.st;
    }
    ir_value **grads = calloc((size_t)out->param_count, sizeof *grads);
    if (!grads) {
        train_graph_free(out);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    if ((st = autodiff(g, loss, out->params, out->param_count, grads, d))) {
        free(grads);
        train_graph_free(out);
        return st;
    }
    c.base = "opt";
    kiln_dtype f32 = KILN_F32;
    /* clipping by global norm: every gradient scaled by min(1, clip / (norm + 1e-6)) */
    if (s->clip_norm > 0) {
        ir_value *sq = NULL;
        for (int i = 0; i < out->param_count; i++) {
            ir_node *r = gb_begin(&c, IR_OP_REDUCE_SUM_SQUARE, 1, &grads[i]);
            gb_attr_int(&c, r, "keepdims", 0);
            ir_value *part = gb_done(&c, r);
            sq = sq ? gb2(&c, IR_OP_ADD, sq, part) : part;
        }
        ir_value *norm = gb2(&c, IR_OP_ADD, gb1(&c, IR_OP_SQRT, sq), gb_scalar(&c, f32, 1e-6));
        ir_value *scale = gb2(&c, IR_OP_MIN, gb_scalar(&c, f32, 1.0), gb2(&c, IR_OP_DIV, gb_scalar(&c, f32, s->clip_norm), norm));
        for (int i = 0; i < out->param_count; i++)
            grads[i] = gb2(&c, IR_OP_MUL, grads[i], scale);
    }
    out->state_per_param = s->optimizer != TRAIN_SGD ? 2 : s->momentum != 0 ? 1 : 0;
    ir_value **new_params = calloc((size_t)out->param_count, sizeof *new_params);
    ir_value **state_in = calloc((size_t)out->param_count * 2 + 1, sizeof *state_in);
    ir_value **state_out = calloc((size_t)out->param_count * 2 + 1, sizeof *state_out);
    if (!new_params || !state_in || !state_out)
        st = diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    for (int i = 0; !st && i < out->param_count; i++) {
        ir_value *p = out->params[i], *gr = grads[i];
        char name[256];
        for (int k = 0; !st && k < out->state_per_param; k++) {
            snprintf(name, sizeof name, "%s.%s", p->name, out->state_per_param == 1 ? "velocity" : k ? "v" : "m");
            st = new_input(g, name, p->type.dtype, p->type.rank, p->type.dims, &state_in[i * 2 + k], d);
        }
        if (st)
            break;
        snprintf(name, sizeof name, "%s.new", p->name);
        c.base = name;
        ir_value *wd = s->weight_decay ? gb_scalar(&c, f32, s->weight_decay) : NULL;
        if (wd && s->optimizer != TRAIN_ADAMW)
            gr = gb2(&c, IR_OP_ADD, gr, gb2(&c, IR_OP_MUL, p, wd));
        if (s->optimizer == TRAIN_SGD) {
            ir_value *upd = gr;
            if (s->momentum) {
                ir_value *mu = gb_scalar(&c, f32, s->momentum);
                state_out[i * 2] = gb2(&c, IR_OP_ADD, gb2(&c, IR_OP_MUL, state_in[i * 2], mu), gr);
                upd = s->nesterov ? gb2(&c, IR_OP_ADD, gr, gb2(&c, IR_OP_MUL, state_out[i * 2], mu)) : state_out[i * 2];
            }
            new_params[i] = gb2(&c, IR_OP_SUB, p, gb2(&c, IR_OP_MUL, upd, lr));
        } else {
            ir_value *base = p;
            if (wd && s->optimizer == TRAIN_ADAMW)
                base = gb2(&c, IR_OP_MUL, p, gb2(&c, IR_OP_SUB, gb_scalar(&c, f32, 1.0), gb2(&c, IR_OP_MUL, lr, wd)));
            ir_value *b1 = gb_scalar(&c, f32, s->beta1), *b2 = gb_scalar(&c, f32, s->beta2);
            ir_value *m = gb2(&c, IR_OP_ADD, gb2(&c, IR_OP_MUL, state_in[i * 2], b1),
                              gb2(&c, IR_OP_MUL, gr, gb_scalar(&c, f32, 1 - s->beta1)));
            ir_value *v = gb2(&c, IR_OP_ADD, gb2(&c, IR_OP_MUL, state_in[i * 2 + 1], b2),
                              gb2(&c, IR_OP_MUL, gb2(&c, IR_OP_MUL, gr, gr), gb_scalar(&c, f32, 1 - s->beta2)));
            ir_value *upd = gb2(&c, IR_OP_DIV, m, gb2(&c, IR_OP_ADD, gb1(&c, IR_OP_SQRT, v), eps));
            new_params[i] = gb2(&c, IR_OP_SUB, base, gb2(&c, IR_OP_MUL, upd, step_size));
            state_out[i * 2] = m, state_out[i * 2 + 1] = v;
        }
        st = c.st;
    }
    /* the outputs: loss, prediction, new parameters, new state */
    for (int i = 0; i < g->output_count; i++)
        g->outputs[i]->is_output = false;
    g->output_count = 0;
    if (!st)
        st = ir_graph_add_output(g, loss, d);
    if (!st)
        st = ir_graph_add_output(g, pred, d);
    for (int i = 0; !st && i < out->param_count; i++)
        st = ir_graph_add_output(g, new_params[i], d);
    for (int i = 0; !st && i < out->param_count; i++)
        for (int k = 0; !st && k < out->state_per_param; k++)
            st = ir_graph_add_output(g, state_out[i * 2 + k], d);
    /* lr, step_size and eps are inputs every step, even where an optimizer reads none */
    free(grads), free(new_params), free(state_in), free(state_out);
    if (st)
        train_graph_free(out);
    return st;
}
