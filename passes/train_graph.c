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
    for (int i = 0; t->buffer_initial && i < t->buffer_count; i++)
        kiln_tensor_free(t->buffer_initial[i]);
    free(t->initial), free(t->params), free(t->buffer_initial), free(t->buffers);
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

/* Input slots that hold a setting rather than a weight: Dropout's ratio and mode, Clip's
 * bounds, Pad's value, Resize's roi and scales, Pow's exponent. An ONNX file makes every
 * constant an initializer; one read only in such slots stays a constant when training. */
static bool setting_slot(const ir_node *n, int k) {
    switch (n->op) {
    case IR_OP_DROPOUT: case IR_OP_CLIP: case IR_OP_RESIZE: return k >= 1;
    case IR_OP_PAD: return k == 2;
    case IR_OP_POW: return k == 1;
    default: return false;
    }
}

/* Classifies the initializers by value id: 1 for the values BatchNormalizations read as
 * running statistics (inputs 3 and 4), the buffers, fed and updated but never trained;
 * 2 for those read only as settings (setting_slot), never trained either. */
static char *classify(const ir_graph *g) {
    char *kind = calloc((size_t)g->value_ids + 1, 1);
    bool *other = calloc((size_t)g->value_ids + 1, sizeof *other);
    for (int i = 0; kind && other && i < g->node_count; i++) {
        const ir_node *n = g->nodes[i];
        for (int k = 0; k < n->input_count; k++) {
            const ir_value *v = n->inputs[k];
            if (!v)
                continue;
            if (n->op == IR_OP_BATCH_NORM && n->input_count == 5 && k >= 3)
                kind[v->id] = 1;
            else if (setting_slot(n, k) && !other[v->id] && kind[v->id] != 1)
                kind[v->id] = 2;
            else if (!setting_slot(n, k)) {
                other[v->id] = true;
                if (kind[v->id] == 2)
                    kind[v->id] = 0;
            }
        }
    }
    if (!other) {
        free(kind);
        return NULL;
    }
    free(other);
    return kind;
}

/* Copies v's data, then makes v a graph input. */
static kiln_status take_initializer(ir_graph *g, ir_value *v, kiln_tensor **copy, kiln_diag *d) {
    kiln_status st = kiln_tensor_create(v->init->dtype, v->init->rank, v->init->dims, copy, d);
    if (st)
        return st;
    memcpy((*copy)->data, v->init->data, kiln_tensor_bytes(*copy));
    return ir_value_make_input(g, v, d);
}

kiln_status train_graph_params_as_inputs(ir_graph *g, const train_spec *s, train_graph *out, kiln_diag *d) {
    *out = (train_graph){.forward_inputs = g->input_count};
    int n = g->init_count;
    out->params = calloc((size_t)n + 1, sizeof *out->params);
    out->initial = calloc((size_t)n + 1, sizeof *out->initial);
    out->buffers = calloc((size_t)n + 1, sizeof *out->buffers);
    out->buffer_initial = calloc((size_t)n + 1, sizeof *out->buffer_initial);
    char *kind = classify(g);
    if (!out->params || !out->initial || !out->buffers || !out->buffer_initial || !kind) {
        free(kind);
        train_graph_free(out);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    /* two passes so that parameters come before buffers among the inputs */
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < g->init_count;) {
            ir_value *v = g->inits[i];
            bool buffer = ir_dtype_is_float(v->type.dtype) && kind[v->id] == 1;
            bool param = !kind[v->id] && v->kind == IR_VAL_PARAM && ir_dtype_is_float(v->type.dtype) &&
                         !(s->freeze && strstr(v->name, s->freeze));
            if (pass == 0 ? !param : !buffer) {
                i++;
                continue;
            }
            kiln_status st = pass == 0 ? take_initializer(g, v, &out->initial[out->param_count], d)
                                       : take_initializer(g, v, &out->buffer_initial[out->buffer_count], d);
            if (st) {
                free(kind);
                train_graph_free(out);
                return st;
            }
            if (pass == 0)
                out->params[out->param_count++] = v;
            else
                out->buffers[out->buffer_count++] = v;
        }
    free(kind);
    return KILN_OK;
}

/* Switches each BatchNormalization to training mode with its running statistics as two
 * more outputs; *stats gets them, two per node (the caller frees it). */
static kiln_status batch_norms_to_training(ir_graph *g, ir_value ***stats, int *count, kiln_diag *d) {
    *count = 0;
    *stats = calloc((size_t)g->node_count * 2 + 1, sizeof **stats);
    if (!*stats)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    for (int i = 0; i < g->node_count; i++) {
        ir_node *n = g->nodes[i];
        if (n->op != IR_OP_BATCH_NORM)
            continue;
        if (n->output_count != 1)
            return diag_error(d, n->loc, KILN_ERR_UNSUPPORTED, "a BatchNormalization already in training mode");
        ir_value **outs = ARENA_ARRAY(g->arena, ir_value *, 3);
        ir_attr *mode = (ir_attr *)ir_node_attr(n, "training_mode");
        if (!mode && !(mode = ir_node_add_attr(g, n, "training_mode", IR_ATTR_INT)))
            return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
        if (!outs)
            return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
        mode->i = 1;
        outs[0] = n->outputs[0];
        for (int k = 1; k < 3; k++) {
            char name[256];
            snprintf(name, sizeof name, "%s.new", n->inputs[k + 2]->name);
            kiln_status st = ir_graph_new_value(g, ir_graph_fresh_name(g, name), IR_VAL_NODE, n->loc, &outs[k], d);
            if (st)
                return st;
            outs[k]->producer = n, outs[k]->producer_slot = k;
            outs[k]->type = n->inputs[k + 2]->type;
            (*stats)[(*count)++] = outs[k];
        }
        n->outputs = outs;
        n->output_count = 3;
    }
    return KILN_OK;
}

/* Turns each Dropout with a nonzero ratio (a constant; 0.5 when absent, as in ONNX) into
 * X * DropoutMask(X, seed): the mask node goes right before it, with the node's ordinal
 * as its salt so two dropouts draw different masks from the step's seed. */
static kiln_status dropouts_to_training(grad_ctx *c, ir_value *seed) {
    ir_graph *g = c->g;
    int salt = 0;
    for (int i = 0; i < g->node_count && !c->st; i++) {
        ir_node *n = g->nodes[i];
        if (n->op != IR_OP_DROPOUT)
            continue;
        const ir_value *r = n->input_count > 1 ? n->inputs[1] : NULL;
        if (r && !r->init)
            return diag_error(c->d, n->loc, KILN_ERR_UNSUPPORTED, "the ratio of a Dropout must be a constant to train");
        double ratio = r ? ir_tensor_get(r->init, 0) : 0.5;
        if (ratio == 0)
            continue;
        bool mask_read = n->output_count > 1 && n->outputs[1]->is_output;
        for (int k = 0; k < g->node_count && n->output_count > 1; k++)
            for (int j = 0; j < g->nodes[k]->input_count; j++)
                mask_read |= g->nodes[k]->inputs[j] == n->outputs[1];
        if (mask_read)
            return diag_error(c->d, n->loc, KILN_ERR_UNSUPPORTED, "a Dropout's mask output cannot be read in training");
        ir_value *x = n->inputs[0], **in = ARENA_ARRAY(g->arena, ir_value *, 2);
        if (!in)
            return diag_error(c->d, LOC_NONE, KILN_ERR_OOM, "out of memory");
        ir_node *m = gb_begin(c, IR_OP_DROPOUT_MASK, 2, (ir_value *[]){x, seed});
        gb_attr_float(c, m, "ratio", ratio);
        gb_attr_int(c, m, "salt", salt++);
        in[0] = x, in[1] = gb_done(c, m);
        if (c->st)
            return c->st;
        /* the mask node was appended; it belongs right before its reader */
        memmove(&g->nodes[i + 1], &g->nodes[i], sizeof *g->nodes * (size_t)(g->node_count - 1 - i));
        g->nodes[i++] = m;
        n->op = IR_OP_MUL, n->inputs = in, n->input_count = 2, n->attr_count = 0, n->output_count = 1;
    }
    return c->st;
}

/* The mean of x over every element: a scalar. */
static ir_value *mean_all(grad_ctx *c, ir_value *x) {
    return gb_reduce(c, IR_OP_REDUCE_MEAN, x, -1, NULL, false);
}

/* The loss in graph ops, so that autodiff differentiates it like the model (PyTorch's
 * definitions: means over every element; cross-entropy over the batch). */
static ir_value *build_loss(grad_ctx *c, const train_spec *s, ir_value *pred, ir_value *target) {
    kiln_dtype dt = pred->type.dtype;
    if (s->loss == KILN_LOSS_CROSS_ENTROPY && !s->label_smoothing)
        return gb2(c, IR_OP_SOFTMAX_CROSS_ENTROPY, pred, target);
    if (s->loss == KILN_LOSS_CROSS_ENTROPY) { /* -mean_n sum_c q_c log softmax(x)_c */
        int64_t classes = pred->type.dims[1], axis = 1;
        ir_node *ls = gb_begin(c, IR_OP_LOG_SOFTMAX, 1, &pred);
        gb_attr_int(c, ls, "axis", 1);
        ir_value *logp = gb_done(c, ls);
        double eps = s->label_smoothing, off_on[2] = {eps / (double)classes, 1 - eps + eps / (double)classes};
        ir_value *q = gb3(c, IR_OP_ONE_HOT, target, gb_i64s(c, 1, &classes), gb_floats(c, dt, 2, off_on));
        return gb1(c, IR_OP_NEG, mean_all(c, gb_reduce(c, IR_OP_REDUCE_SUM, gb2(c, IR_OP_MUL, q, logp), 1, &axis, false)));
    }
    ir_value *diff = gb2(c, IR_OP_SUB, pred, target);
    switch (s->loss) {
    case KILN_LOSS_MSE: return mean_all(c, gb2(c, IR_OP_MUL, diff, diff));
    case KILN_LOSS_L1: return mean_all(c, gb1(c, IR_OP_ABS, diff));
    case KILN_LOSS_HUBER: {
        double delta = s->huber_delta > 0 ? s->huber_delta : 1;
        ir_value *a = gb1(c, IR_OP_ABS, diff);
        ir_value *quad = gb2(c, IR_OP_MUL, gb2(c, IR_OP_MUL, diff, diff), gb_scalar(c, dt, 0.5));
        ir_value *lin = gb2(c, IR_OP_MUL, gb2(c, IR_OP_SUB, a, gb_scalar(c, dt, 0.5 * delta)), gb_scalar(c, dt, delta));
        return mean_all(c, gb3(c, IR_OP_WHERE, gb2(c, IR_OP_LESS, a, gb_scalar(c, dt, delta)), quad, lin));
    }
    default: { /* binary cross-entropy on logits, stable: max(x, 0) - x t + log(1 + exp(-|x|)) */
        ir_value *soft = gb1(c, IR_OP_LOG, gb2(c, IR_OP_ADD, gb_scalar(c, dt, 1),
                                               gb1(c, IR_OP_EXP, gb1(c, IR_OP_NEG, gb1(c, IR_OP_ABS, pred)))));
        return mean_all(c, gb2(c, IR_OP_ADD, gb2(c, IR_OP_SUB, gb1(c, IR_OP_RELU, pred), gb2(c, IR_OP_MUL, pred, target)), soft));
    }
    }
}

kiln_status train_graph_build(ir_graph *g, const train_spec *s, train_graph *out, kiln_diag *d) {
    if (!g->output_count)
        return diag_error(d, (kiln_loc){.file = g->file}, KILN_ERR_INVALID, "the model has no output to train");
    ir_value *pred = g->outputs[0];
    if (!ir_dtype_is_float(pred->type.dtype) || !ir_type_known(&pred->type))
        return diag_error(d, pred->loc, KILN_ERR_INVALID, "the prediction '%s' must be a float tensor of known shape",
                          pred->name);
    if (s->loss == KILN_LOSS_CROSS_ENTROPY && pred->type.rank != 2)
        return diag_error(d, pred->loc, KILN_ERR_INVALID,
                          "cross-entropy needs [batch, classes] logits; '%s' has rank %d", pred->name,
                          pred->type.rank);
    int forward_inputs = g->input_count;
    /* labels and the step's scalars come right after the model's own inputs */
    ir_value *labels, *lr, *step_size, *eps, *seed;
    kiln_status st = s->loss == KILN_LOSS_CROSS_ENTROPY
                         ? new_input(g, "labels", KILN_I64, 1, pred->type.dims, &labels, d)
                         : new_input(g, "targets", pred->type.dtype, pred->type.rank, pred->type.dims, &labels, d);
    if (!st)
        st = new_input(g, "kiln.lr", KILN_F32, 0, NULL, &lr, d);
    if (!st)
        st = new_input(g, "kiln.step_size", KILN_F32, 0, NULL, &step_size, d);
    if (!st)
        st = new_input(g, "kiln.eps", KILN_F32, 0, NULL, &eps, d);
    if (!st)
        st = new_input(g, "kiln.seed", KILN_I64, 0, NULL, &seed, d);
    if (!st)
        st = train_graph_params_as_inputs(g, s, out, d);
    if (st)
        return st;
    out->forward_inputs = forward_inputs;
    ir_value **stats = NULL;
    int stat_count = 0;
    if ((st = batch_norms_to_training(g, &stats, &stat_count, d))) {
        free(stats);
        train_graph_free(out);
        return st;
    }
    if (!out->param_count) {
        free(stats);
        train_graph_free(out);
        return diag_error(d, (kiln_loc){.file = g->file}, KILN_ERR_INVALID, "the model has no trainable parameters");
    }

    grad_ctx c = {.g = g, .d = d, .base = "dropout"};
    if ((st = dropouts_to_training(&c, seed))) {
        free(stats);
        train_graph_free(out);
        return st;
    }
    c.base = "loss";
    ir_value *loss = build_loss(&c, s, pred, labels);
    ir_value **grads = c.st ? NULL : calloc((size_t)out->param_count, sizeof *grads);
    st = c.st ? c.st : !grads ? diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory")
                              : autodiff(g, loss, out->params, out->param_count, grads, d);
    if (st) {
        free(grads), free(stats);
        train_graph_free(out);
        return st;
    }
    c.base = "opt";
    kiln_dtype f32 = KILN_F32;
    /* clipping by global norm: every gradient scaled by min(1, clip / (norm + 1e-6)) */
    if (s->clip_norm > 0) {
        ir_value *sq = NULL;
        for (int i = 0; i < out->param_count; i++) {
            ir_value *part = gb_reduce(&c, IR_OP_REDUCE_SUM_SQUARE, grads[i], -1, NULL, false);
            sq = sq ? gb2(&c, IR_OP_ADD, sq, part) : part;
        }
        ir_value *norm = gb2(&c, IR_OP_ADD, gb1(&c, IR_OP_SQRT, sq), gb_scalar(&c, f32, 1e-6));
        ir_value *scale = gb2(&c, IR_OP_MIN, gb_scalar(&c, f32, 1.0), gb2(&c, IR_OP_DIV, gb_scalar(&c, f32, s->clip_norm), norm));
        for (int i = 0; i < out->param_count; i++)
            grads[i] = gb2(&c, IR_OP_MUL, grads[i], scale);
    }
    out->state_per_param = s->optimizer != KILN_SGD ? 2 : s->momentum != 0 ? 1 : 0;
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
        if (wd && s->optimizer != KILN_ADAMW)
            gr = gb2(&c, IR_OP_ADD, gr, gb2(&c, IR_OP_MUL, p, wd));
        if (s->optimizer == KILN_SGD) {
            ir_value *upd = gr;
            if (s->momentum) {
                ir_value *mu = gb_scalar(&c, f32, s->momentum);
                state_out[i * 2] = gb2(&c, IR_OP_ADD, gb2(&c, IR_OP_MUL, state_in[i * 2], mu), gr);
                upd = s->nesterov ? gb2(&c, IR_OP_ADD, gr, gb2(&c, IR_OP_MUL, state_out[i * 2], mu)) : state_out[i * 2];
            }
            new_params[i] = gb2(&c, IR_OP_SUB, p, gb2(&c, IR_OP_MUL, upd, lr));
        } else {
            ir_value *base = p;
            if (wd && s->optimizer == KILN_ADAMW)
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
    for (int b = 0; !st && b < out->buffer_count; b++) {
        ir_value *next = NULL;
        for (int k = 0; k < stat_count && !next; k++) {
            const ir_node *bn = stats[k]->producer;
            if (bn->inputs[stats[k]->producer_slot + 2] == out->buffers[b])
                next = stats[k];
        }
        st = next ? ir_graph_add_output(g, next, d)
                  : diag_error(d, out->buffers[b]->loc, KILN_ERR_UNSUPPORTED,
                               "'%s' is the running statistic of two BatchNormalizations", out->buffers[b]->name);
    }
    /* lr, step_size, eps and seed are inputs every step, even where nothing reads them */
    free(stats);
    free(grads), free(new_params), free(state_in), free(state_out);
    if (st)
        train_graph_free(out);
    return st;
}
