/*
 * shape_rnn.c — shape rules of the recurrent ops RNN, GRU and LSTM, and the parameters
 * they share with the interpreter and the lowering (dims, activations).
 *
 * Inputs: X, W, R, B, sequence_lens, initial_h (and for LSTM initial_c, P). With layout 0,
 * X is [seq, batch, input] and Y [seq, directions, batch, hidden]; with layout 1, X is
 * [batch, seq, input] and Y [batch, seq, directions, hidden]. Y_h (and LSTM's Y_c) are
 * [directions, batch, hidden] (layout 1: [batch, directions, hidden]).
 */
#include "passes/shape.h"

#include <string.h>

kiln_status shape_rnn_dims(const shape_ctx *c, int gates, shape_rnn_spec *r) {
    const kiln_tensor *x = c->in[0], *w = c->in[1], *rr = c->in[2];
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_float, "a float tensor")) || (st = shape_same_dtype(c, 0, 1)) ||
        (st = shape_same_dtype(c, 0, 2)))
        return st;
    const char *dir = ir_attr_string(c->node, "direction");
    r->directions = !strcmp(dir, "bidirectional") ? 2 : 1;
    r->reverse = !strcmp(dir, "reverse");
    if (r->directions == 1 && !r->reverse && strcmp(dir, "forward"))
        return shape_error(c, "attribute 'direction': unknown value '%s'", dir);
    r->layout = ir_attr_int(c->node, "layout");
    if (r->layout != 0 && r->layout != 1)
        return shape_error(c, "attribute 'layout' must be 0 or 1");
    if (x->rank != 3 || w->rank != 3 || rr->rank != 3)
        return shape_error(c, "X, W and R must be 3-D");
    r->seq = x->dims[r->layout ? 1 : 0];
    r->batch = x->dims[r->layout ? 0 : 1];
    r->input = x->dims[2];
    r->hidden = ir_attr_int(c->node, "hidden_size");
    if (r->hidden <= 0)
        r->hidden = rr->dims[2];
    if (r->hidden <= 0)
        return shape_error(c, "hidden_size must be given or follow from R");
    r->gates = gates;
    if ((w->dims[0] >= 0 && w->dims[0] != r->directions) || (w->dims[1] >= 0 && w->dims[1] != gates * r->hidden) ||
        (w->dims[2] >= 0 && r->input >= 0 && w->dims[2] != r->input))
        return shape_error(c, "W must be [%d, %lld, input_size]", r->directions, (long long)(gates * r->hidden));
    if ((rr->dims[0] >= 0 && rr->dims[0] != r->directions) || (rr->dims[1] >= 0 && rr->dims[1] != gates * r->hidden) ||
        rr->dims[2] != r->hidden)
        return shape_error(c, "R must be [%d, %lld, %lld]", r->directions, (long long)(gates * r->hidden), (long long)r->hidden);
    if (c->in_count > 3 && c->in[3] &&
        (c->in[3]->rank != 2 || (c->in[3]->dims[1] >= 0 && c->in[3]->dims[1] != 2 * gates * r->hidden)))
        return shape_error(c, "B must be [%d, %lld]", r->directions, (long long)(2 * gates * r->hidden));
    if (c->in_count > 4 && c->in[4] && (c->in[4]->rank != 1 || !shape_is_index(c->in[4]->dtype)))
        return shape_error(c, "sequence_lens must be a 1-D integer tensor");
    for (int i = 5; i < c->in_count && i < 7; i++)
        if (c->in[i] && c->in[i]->rank != 3)
            return shape_error(c, "input %d (an initial state) must be 3-D", i);
    return KILN_OK;
}

/* An activation by its ONNX name; false if kiln does not know it. */
static bool activation_known(const char *name) {
    static const char *const names[] = {"Relu", "Tanh", "Sigmoid", "Affine", "LeakyRelu", "ThresholdedRelu",
                                        "ScaledTanh", "HardSigmoid", "Elu", "Softsign", "Softplus"};
    for (int i = 0; i < ARRAY_LEN(names); i++)
        if (!strcmp(names[i], name))
            return true;
    return false;
}

/* alpha and beta are consumed in the order of the functions that take them. */
kiln_status shape_rnn_activations(const shape_ctx *c, int per_direction, int directions, shape_activation *out) {
    static const char *const defaults[3][3] = {{"Tanh"}, {"Sigmoid", "Tanh"}, {"Sigmoid", "Tanh", "Tanh"}};
    const ir_attr *names = ir_node_attr(c->node, "activations");
    const ir_attr *alphas = ir_node_attr(c->node, "activation_alpha"), *betas = ir_node_attr(c->node, "activation_beta");
    int total = per_direction * directions, ai = 0, bi = 0;
    if (names && names->count != total)
        return shape_error(c, "attribute 'activations' needs %d names, got %d", total, names->count);
    for (int i = 0; i < total; i++) {
        shape_activation *f = &out[i];
        f->name = names ? names->strings[i] : defaults[per_direction - 1][i % per_direction];
        if (!activation_known(f->name))
            return diag_error(c->d, c->node->loc, KILN_ERR_UNSUPPORTED, "activation '%s' is not supported", f->name);
        bool takes_alpha = strcmp(f->name, "Relu") && strcmp(f->name, "Tanh") && strcmp(f->name, "Sigmoid") &&
                           strcmp(f->name, "Softsign") && strcmp(f->name, "Softplus");
        bool takes_beta = !strcmp(f->name, "Affine") || !strcmp(f->name, "ScaledTanh") || !strcmp(f->name, "HardSigmoid");
        f->alpha = !strcmp(f->name, "LeakyRelu") ? 0.01 : !strcmp(f->name, "HardSigmoid") ? 0.2 : 1.0;
        f->beta = !strcmp(f->name, "HardSigmoid") ? 0.5 : !strcmp(f->name, "Affine") ? 0.0 : 1.0;
        if (takes_alpha && alphas && ai < alphas->count)
            f->alpha = alphas->floats[ai++];
        if (takes_beta && betas && bi < betas->count)
            f->beta = betas->floats[bi++];
    }
    return KILN_OK;
}

static kiln_status recurrent(shape_ctx *c, int gates) {
    shape_rnn_spec r;
    kiln_status st = shape_rnn_dims(c, gates, &r);
    if (st)
        return st;
    shape_activation funcs[SHAPE_RNN_MAX_ACTIVATIONS];
    if ((st = shape_rnn_activations(c, gates == 1 ? 1 : gates == 3 ? 2 : 3, r.directions, funcs)))
        return st;
    kiln_dtype dt = c->in[0]->dtype;
    int64_t y[4] = {r.seq, r.directions, r.batch, r.hidden}, y1[4] = {r.batch, r.seq, r.directions, r.hidden};
    int64_t h[3] = {r.directions, r.batch, r.hidden}, h1[3] = {r.batch, r.directions, r.hidden};
    for (int i = 0; i < c->out_count; i++)
        if (i == 0)
            shape_set(c, 0, dt, 4, r.layout ? y1 : y);
        else
            shape_set(c, i, dt, 3, r.layout ? h1 : h);
    return KILN_OK;
}

kiln_status shape_rnn(shape_ctx *c) { return recurrent(c, 1); }
kiln_status shape_gru(shape_ctx *c) { return recurrent(c, 3); }
kiln_status shape_lstm(shape_ctx *c) { return recurrent(c, 4); }
