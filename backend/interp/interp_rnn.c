/*
 * interp_rnn.c — reference RNN, GRU and LSTM, step by step as the ONNX operator
 * definitions write them: gates in ONNX's order (GRU z, r, h; LSTM i, o, f, c; peepholes
 * i, o, f), default activations (RNN tanh; GRU sigmoid, tanh; LSTM sigmoid, tanh, tanh),
 * activation_alpha/beta consumed in the order of the functions that take them, optional
 * clip of every pre-activation, per-batch sequence lengths (steps past a sequence's end
 * give zeros in Y), and layout 0 or 1.
 */
#include "backend/interp/interp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static double activate(const shape_activation *f, double x) {
    const char *n = f->name;
    if (!strcmp(n, "Tanh")) return tanh(x);
    if (!strcmp(n, "Sigmoid")) return 1 / (1 + exp(-x));
    if (!strcmp(n, "Relu")) return x > 0 ? x : 0;
    if (!strcmp(n, "Affine")) return f->alpha * x + f->beta;
    if (!strcmp(n, "LeakyRelu")) return x < 0 ? f->alpha * x : x;
    if (!strcmp(n, "ThresholdedRelu")) return x > f->alpha ? x : 0;
    if (!strcmp(n, "ScaledTanh")) return f->alpha * tanh(f->beta * x);
    if (!strcmp(n, "HardSigmoid")) return fmax(0, fmin(1, f->alpha * x + f->beta));
    if (!strcmp(n, "Elu")) return x < 0 ? f->alpha * (exp(x) - 1) : x;
    if (!strcmp(n, "Softsign")) return x / (1 + fabs(x));
    return log1p(exp(x)); /* Softplus */
}

typedef struct rnn_run {
    interp_ctx *c;
    shape_rnn_spec r;
    const kiln_tensor *x, *w, *rw, *b, *lens, *h0, *c0, *p;
    double clip; /* 0: none */
    const shape_activation *f; /* per_direction functions for the current direction */
} rnn_run;

static double clipped(const rnn_run *run, double v) {
    return run->clip > 0 ? fmax(-run->clip, fmin(run->clip, v)) : v;
}

/* out[g*H + j] = sum_k M[d][g*H + j][k] * v[k] + bias[d][offset + g*H + j], for all gates g. */
static void gate_products(const rnn_run *run, const kiln_tensor *m, int d, const double *v, int64_t len,
                          int64_t bias_offset, double *out) {
    int64_t rows = run->r.gates * run->r.hidden;
    for (int64_t row = 0; row < rows; row++) {
        double acc = run->b ? ir_tensor_get(run->b, d * 2 * rows + bias_offset + row) : 0;
        for (int64_t k = 0; k < len; k++)
            acc += ir_tensor_get(m, (d * rows + row) * len + k) * v[k];
        out[row] = acc;
    }
}

/* One direction of one batch entry. h and cell hold the state in and out. */
static void run_sequence(rnn_run *run, int d, int64_t b, double *h, double *cell, double *scratch) {
    const shape_rnn_spec *r = &run->r;
    int64_t H = r->hidden, S = r->seq, B = r->batch, D = r->directions, I = r->input, rows = r->gates * H;
    int64_t len = run->lens ? ir_tensor_get_int(run->lens, b) : S;
    bool backward = r->reverse || d == 1;
    double *xt = scratch, *gx = xt + I, *gh = gx + rows, *rh = gh + rows, *hn = rh + H, *tmp = hn + H;
    for (int64_t s = 0; s < len; s++) {
        int64_t t = backward ? len - 1 - s : s;
        for (int64_t k = 0; k < I; k++)
            xt[k] = ir_tensor_get(run->x, r->layout ? (b * S + t) * I + k : (t * B + b) * I + k);
        gate_products(run, run->w, d, xt, I, 0, gx);
        gate_products(run, run->rw, d, h, H, rows, gh);
        ir_op op = run->c->s.node->op;
        for (int64_t j = 0; j < H; j++) {
            if (op == IR_OP_RNN) {
                hn[j] = activate(&run->f[0], clipped(run, gx[j] + gh[j]));
            } else if (op == IR_OP_GRU) { /* z, r, h */
                double z = activate(&run->f[0], clipped(run, gx[j] + gh[j]));
                double rg = activate(&run->f[0], clipped(run, gx[H + j] + gh[H + j]));
                tmp[j] = z;
                rh[j] = rg;
            } else { /* LSTM: i, o, f, c; peepholes i, o, f */
                double pi = run->p ? ir_tensor_get(run->p, d * 3 * H + j) : 0;
                double pf = run->p ? ir_tensor_get(run->p, d * 3 * H + 2 * H + j) : 0;
                double po = run->p ? ir_tensor_get(run->p, d * 3 * H + H + j) : 0;
                double i = activate(&run->f[0], clipped(run, gx[j] + gh[j] + pi * cell[j]));
                double f = ir_attr_int(run->c->s.node, "input_forget")
                               ? 1 - i : activate(&run->f[0], clipped(run, gx[2 * H + j] + gh[2 * H + j] + pf * cell[j]));
                double g = activate(&run->f[1], clipped(run, gx[3 * H + j] + gh[3 * H + j]));
                cell[j] = f * cell[j] + i * g;
                double o = activate(&run->f[0], clipped(run, gx[H + j] + gh[H + j] + po * cell[j]));
                hn[j] = o * activate(&run->f[2], cell[j]);
            }
        }
        if (op == IR_OP_GRU) {
            bool before_reset = ir_attr_int(run->c->s.node, "linear_before_reset");
            for (int64_t j = 0; j < H; j++) {
                double recur;
                if (before_reset) {
                    recur = rh[j] * gh[2 * H + j];
                } else { /* (r . h) R_h^T + Rb_h */
                    recur = run->b ? ir_tensor_get(run->b, d * 2 * rows + rows + 2 * H + j) : 0;
                    for (int64_t k = 0; k < H; k++)
                        recur += ir_tensor_get(run->rw, (d * rows + 2 * H + j) * H + k) * rh[k] * h[k];
                }
                double cand = activate(&run->f[1], clipped(run, gx[2 * H + j] + recur));
                hn[j] = (1 - tmp[j]) * cand + tmp[j] * h[j];
            }
        }
        memcpy(h, hn, sizeof(double) * (size_t)H);
        if (run->c->s.out_count > 0 && run->c->out[0])
            for (int64_t j = 0; j < H; j++)
                ir_tensor_set(run->c->out[0], r->layout ? ((b * S + t) * D + d) * H + j : ((t * D + d) * B + b) * H + j, h[j]);
    }
}

static kiln_status recurrent(interp_ctx *c, int gates) {
    rnn_run run = {.c = c};
    kiln_status st = shape_rnn_dims(&c->s, gates, &run.r);
    if (st)
        return st;
    const kiln_tensor *const *in = c->s.in;
    int n = c->s.in_count;
    run.x = in[0], run.w = in[1], run.rw = in[2];
    run.b = n > 3 ? in[3] : NULL, run.lens = n > 4 ? in[4] : NULL, run.h0 = n > 5 ? in[5] : NULL;
    run.c0 = gates == 4 && n > 6 ? in[6] : NULL, run.p = gates == 4 && n > 7 ? in[7] : NULL;
    run.clip = ir_node_attr(c->s.node, "clip") ? ir_attr_float(c->s.node, "clip") : 0;
    int per_direction = gates == 1 ? 1 : gates == 3 ? 2 : 3;
    shape_activation funcs[SHAPE_RNN_MAX_ACTIVATIONS];
    if ((st = shape_rnn_activations(&c->s, per_direction, run.r.directions, funcs)))
        return st;
    const shape_rnn_spec *r = &run.r;
    int64_t H = r->hidden, B = r->batch, D = r->directions;
    for (int64_t b = 0; run.lens && b < B; b++) {
        int64_t len = ir_tensor_get_int(run.lens, b);
        if (len < 0 || len > r->seq)
            return interp_error(c, KILN_ERR_INVALID, "sequence length %lld is outside [0, %lld]", (long long)len, (long long)r->seq);
    }
    size_t scratch_len = (size_t)(r->input + 4 * gates * H + 6 * H + 8);
    double *h = calloc((size_t)(2 * H) + scratch_len, sizeof *h), *cell = h + H, *scratch = cell + H;
    if (!h)
        return interp_error(c, KILN_ERR_OOM, "out of memory");
    for (int d = 0; d < D; d++) {
        run.f = &funcs[d * per_direction];
        for (int64_t b = 0; b < B; b++) {
            for (int64_t j = 0; j < H; j++) { /* initial states: layout 0 [D, B, H], layout 1 [B, D, H] */
                int64_t at = r->layout ? (b * D + d) * H + j : (d * B + b) * H + j;
                h[j] = run.h0 ? ir_tensor_get(run.h0, at) : 0;
                cell[j] = run.c0 ? ir_tensor_get(run.c0, at) : 0;
            }
            run_sequence(&run, d, b, h, cell, scratch);
            for (int64_t j = 0; j < H; j++) {
                int64_t at = r->layout ? (b * D + d) * H + j : (d * B + b) * H + j;
                if (c->s.out_count > 1 && c->out[1])
                    ir_tensor_set(c->out[1], at, h[j]);
                if (c->s.out_count > 2 && c->out[2])
                    ir_tensor_set(c->out[2], at, cell[j]);
            }
        }
    }
    free(h);
    return KILN_OK;
}

kiln_status interp_rnn(interp_ctx *c) { return recurrent(c, 1); }
kiln_status interp_gru(interp_ctx *c) { return recurrent(c, 3); }
kiln_status interp_lstm(interp_ctx *c) { return recurrent(c, 4); }
