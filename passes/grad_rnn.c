/*
 * grad_rnn.c — the gradient of RNN, GRU and LSTM (see grad_rules.h): backpropagation
 * through time by writing the recurrence out step by step in graph ops — the input
 * projection as one MatMul over the whole sequence, then per step the recurrent MatMul,
 * the gates, activations and state updates, exactly as the interpreter computes them
 * (backend/interp/interp_rnn.c) — and differentiating that unrolled graph (gb_vjp) with
 * the ordinary rules. The forward values are recomputed once by the unrolled graph; the
 * op's own kernel still produces the outputs the rest of the model reads.
 *
 * Covered: both directions, layout 0 and 1, sequence_lens (steps past a sequence's end keep
 * the state and give zeros; a reverse direction reverses each sequence within its own
 * length), initial states, biases, peepholes, clip, input_forget, linear_before_reset, and
 * every activation the operators name.
 */
#include "passes/grad_rules.h"
#include "passes/shape.h"

#include <string.h>

typedef struct unroll {
    grad_ctx *c;
    kiln_dtype dt;
    int64_t S, B, I, H, rows;
    double clip; /* 0: none */
} unroll;

static ir_value *num(unroll *u, double v) { return gb_scalar(u->c, u->dt, v); }
static ir_value *add(unroll *u, ir_value *a, ir_value *b) { return gb2(u->c, IR_OP_ADD, a, b); }
static ir_value *mul(unroll *u, ir_value *a, ir_value *b) { return gb2(u->c, IR_OP_MUL, a, b); }

static ir_value *shaped(unroll *u, ir_value *v, int rank, const int64_t *dims) {
    kiln_tensor t = {.dtype = v ? v->type.dtype : u->dt, .rank = rank};
    memcpy(t.dims, dims, sizeof(int64_t) * (size_t)rank);
    return gb_reshape(u->c, v, &t);
}

/* v[start:end] along axis */
static ir_value *cut(unroll *u, ir_value *v, int64_t axis, int64_t start, int64_t end) {
    ir_value *in[4] = {v, gb_i64s(u->c, 1, &start), gb_i64s(u->c, 1, &end), gb_i64s(u->c, 1, &axis)};
    return gb_done(u->c, gb_begin(u->c, IR_OP_SLICE, 4, in));
}

static ir_value *unsqueeze(unroll *u, ir_value *v, int64_t axis) {
    return gb_done(u->c, gb_begin(u->c, IR_OP_UNSQUEEZE, 2, (ir_value *[]){v, gb_i64s(u->c, 1, &axis)}));
}

static ir_value *concat(unroll *u, int count, ir_value **parts, int64_t axis) {
    if (count == 1)
        return parts[0];
    ir_node *cat = gb_begin(u->c, IR_OP_CONCAT, count, parts);
    gb_attr_int(u->c, cat, "axis", axis);
    return gb_done(u->c, cat);
}

static ir_value *clipped(unroll *u, ir_value *x) {
    if (u->clip <= 0)
        return x;
    return gb3(u->c, IR_OP_CLIP, x, num(u, -u->clip), num(u, u->clip));
}

/* One of the activation functions the recurrent ops name, in graph ops. */
static ir_value *activate(unroll *u, const shape_activation *f, ir_value *x) {
    grad_ctx *c = u->c;
    const char *n = f->name;
    ir_op op = !strcmp(n, "Tanh") ? IR_OP_TANH : !strcmp(n, "Sigmoid") ? IR_OP_SIGMOID : !strcmp(n, "Relu") ? IR_OP_RELU
             : !strcmp(n, "Softsign") ? IR_OP_SOFTSIGN : !strcmp(n, "Softplus") ? IR_OP_SOFTPLUS : IR_OP_COUNT;
    if (op != IR_OP_COUNT)
        return gb1(c, op, x);
    if (!strcmp(n, "Affine"))
        return add(u, mul(u, x, num(u, f->alpha)), num(u, f->beta));
    if (!strcmp(n, "ScaledTanh"))
        return mul(u, gb1(c, IR_OP_TANH, mul(u, x, num(u, f->beta))), num(u, f->alpha));
    op = !strcmp(n, "LeakyRelu") ? IR_OP_LEAKY_RELU : !strcmp(n, "ThresholdedRelu") ? IR_OP_THRESHOLDED_RELU
       : !strcmp(n, "Elu") ? IR_OP_ELU : IR_OP_HARD_SIGMOID;
    ir_node *a = gb_begin(c, op, 1, &x);
    gb_attr_float(c, a, "alpha", f->alpha);
    if (op == IR_OP_HARD_SIGMOID)
        gb_attr_float(c, a, "beta", f->beta);
    return gb_done(c, a);
}

/* The initial state of direction d as [B, H] (zeros if absent); layout 1 keeps [B, D, H]. */
static ir_value *initial(unroll *u, ir_value *v, int d, int64_t layout) {
    if (!v)
        return gb2(u->c, IR_OP_EXPAND, num(u, 0), gb_i64s(u->c, 2, (int64_t[]){u->B, u->H}));
    return shaped(u, cut(u, v, layout ? 1 : 0, d, d + 1), 2, (int64_t[]){u->B, u->H});
}

kiln_status grad_recurrent(grad_ctx *c) {
    const ir_node *n = c->node;
    int gates = n->op == IR_OP_RNN ? 1 : n->op == IR_OP_GRU ? 3 : 4, per_direction = gates == 1 ? 1 : gates == 3 ? 2 : 3;
    const kiln_tensor *types[IR_VARIADIC];
    shape_ctx sc = grad_shape_ctx(c, types);
    shape_rnn_spec r;
    shape_activation funcs[SHAPE_RNN_MAX_ACTIVATIONS];
    if (shape_rnn_dims(&sc, gates, &r) || shape_rnn_activations(&sc, per_direction, r.directions, funcs))
        return gb_fail(c, KILN_ERR_INTERNAL, "the recurrence no longer checks"), c->st;
    unroll u = {.c = c, .dt = X(0)->type.dtype, .S = r.seq, .B = r.batch, .I = r.input, .H = r.hidden};
    u.rows = gates * u.H;
    u.clip = ir_node_attr(n, "clip") ? ir_attr_float(n, "clip") : 0;
    int in_count = n->input_count;
    ir_value *bias = in_count > 3 ? X(3) : NULL, *lens = in_count > 4 ? X(4) : NULL, *h0 = in_count > 5 ? X(5) : NULL;
    ir_value *c0 = gates == 4 && in_count > 6 ? X(6) : NULL, *peep = gates == 4 && in_count > 7 ? X(7) : NULL;
    bool input_forget = gates == 4 && ir_attr_int(n, "input_forget");
    bool before_reset = gates == 3 && ir_attr_int(n, "linear_before_reset");
    int64_t S = u.S, B = u.B, H = u.H, rows = u.rows, D = r.directions;
    int first = c->g->node_count;

    ir_value *x = X(0); /* [S, B, I] */
    if (r.layout)
        x = gb_transpose(c, x, (int64_t[]){1, 0, 2});
    ir_value *y_dir[2] = {0}, *h_dir[2] = {0}, *c_dir[2] = {0};
    ir_value **steps = calloc((size_t)S + 1, sizeof *steps);
    if (!steps)
        return gb_fail(c, KILN_ERR_OOM, "out of memory"), c->st;
    for (int d = 0; d < D && !c->st; d++) {
        const shape_activation *f = &funcs[d * per_direction];
        bool reverse = r.reverse || d == 1;
        ir_value *w = shaped(&u, cut(&u, X(1), 0, d, d + 1), 2, (int64_t[]){rows, u.I});
        ir_value *rw = shaped(&u, cut(&u, X(2), 0, d, d + 1), 2, (int64_t[]){rows, H});
        ir_value *bd = bias ? shaped(&u, cut(&u, bias, 0, d, d + 1), 1, (int64_t[]){2 * rows}) : NULL;
        ir_value *wb = bd ? cut(&u, bd, 0, 0, rows) : NULL, *rb = bd ? cut(&u, bd, 0, rows, 2 * rows) : NULL;
        /* the input's share of every gate at every step: one product */
        ir_value *xw = gb2(c, IR_OP_MATMUL, x, gb_transpose(c, w, (int64_t[]){1, 0}));
        if (wb)
            xw = add(&u, xw, wb);
        if (reverse && lens) { /* each sequence reversed within its length, run forward */
            ir_node *rs = gb_begin(c, IR_OP_REVERSE_SEQUENCE, 2, (ir_value *[]){xw, lens});
            gb_attr_int(c, rs, "time_axis", 0);
            gb_attr_int(c, rs, "batch_axis", 1);
            xw = gb_done(c, rs);
        }
        /* GRU's candidate without linear_before_reset multiplies r * h by its own rows */
        ir_value *rw_zr = gates == 3 && !before_reset ? cut(&u, rw, 0, 0, 2 * H) : rw;
        ir_value *rw_h = gates == 3 && !before_reset ? cut(&u, rw, 0, 2 * H, 3 * H) : NULL;
        ir_value *rb_zr = rb && rw_h ? cut(&u, rb, 0, 0, 2 * H) : rb, *rb_h = rb && rw_h ? cut(&u, rb, 0, 2 * H, 3 * H) : NULL;
        ir_value *rt = gb_transpose(c, rw_zr, (int64_t[]){1, 0}), *rt_h = rw_h ? gb_transpose(c, rw_h, (int64_t[]){1, 0}) : NULL;
        ir_value *pd = peep ? shaped(&u, cut(&u, peep, 0, d, d + 1), 1, (int64_t[]){3 * H}) : NULL;
        ir_value *h = initial(&u, h0, d, r.layout), *cell = gates == 4 ? initial(&u, c0, d, r.layout) : NULL;
        for (int64_t s = 0; s < S && !c->st; s++) {
            int64_t t = reverse && !lens ? S - 1 - s : s;
            ir_value *gx = shaped(&u, cut(&u, xw, 0, t, t + 1), 2, (int64_t[]){B, rows});
            ir_value *gh = gb2(c, IR_OP_MATMUL, h, rt);
            if (rb_zr)
                gh = add(&u, gh, rb_zr);
#define GATE(v, k) cut(&u, v, 1, (k) * H, ((k) + 1) * H)
            ir_value *hn, *cn = NULL;
            if (gates == 1) {
                hn = activate(&u, &f[0], clipped(&u, add(&u, gx, gh)));
            } else if (gates == 3) { /* z, r, h */
                ir_value *z = activate(&u, &f[0], clipped(&u, add(&u, GATE(gx, 0), GATE(gh, 0))));
                ir_value *rg = activate(&u, &f[0], clipped(&u, add(&u, GATE(gx, 1), GATE(gh, 1))));
                ir_value *recur;
                if (before_reset) {
                    recur = mul(&u, rg, GATE(gh, 2));
                } else {
                    recur = gb2(c, IR_OP_MATMUL, mul(&u, rg, h), rt_h);
                    if (rb_h)
                        recur = add(&u, recur, rb_h);
                }
                ir_value *cand = activate(&u, &f[1], clipped(&u, add(&u, GATE(gx, 2), recur)));
                hn = add(&u, mul(&u, gb2(c, IR_OP_SUB, num(&u, 1), z), cand), mul(&u, z, h));
            } else { /* LSTM: i, o, f, c; peepholes i, o, f */
                ir_value *pre_i = add(&u, GATE(gx, 0), GATE(gh, 0)), *pre_f = add(&u, GATE(gx, 2), GATE(gh, 2));
                if (pd) {
                    pre_i = add(&u, pre_i, mul(&u, cut(&u, pd, 0, 0, H), cell));
                    pre_f = add(&u, pre_f, mul(&u, cut(&u, pd, 0, 2 * H, 3 * H), cell));
                }
                ir_value *ig = activate(&u, &f[0], clipped(&u, pre_i));
                ir_value *fg = input_forget ? gb2(c, IR_OP_SUB, num(&u, 1), ig) : activate(&u, &f[0], clipped(&u, pre_f));
                ir_value *gg = activate(&u, &f[1], clipped(&u, add(&u, GATE(gx, 3), GATE(gh, 3))));
                cn = add(&u, mul(&u, fg, cell), mul(&u, ig, gg));
                ir_value *pre_o = add(&u, GATE(gx, 1), GATE(gh, 1));
                if (pd)
                    pre_o = add(&u, pre_o, mul(&u, cut(&u, pd, 0, H, 2 * H), cn));
                hn = mul(&u, activate(&u, &f[0], clipped(&u, pre_o)), activate(&u, &f[2], cn));
            }
#undef GATE
            ir_value *out = hn;
            if (lens) { /* past a sequence's end: the state stays, the output is 0 */
                ir_value *active = shaped(&u, gb2(c, IR_OP_LESS, gb_scalar(c, lens->type.dtype, (double)s), lens), 2,
                                          (int64_t[]){B, 1});
                hn = gb3(c, IR_OP_WHERE, active, hn, h);
                if (cn)
                    cn = gb3(c, IR_OP_WHERE, active, cn, cell);
                out = gb3(c, IR_OP_WHERE, active, out, num(&u, 0));
            }
            steps[t] = unsqueeze(&u, out, 0);
            h = hn, cell = cn;
        }
        if (c->st)
            break;
        y_dir[d] = concat(&u, (int)S, steps, 0); /* [S, B, H] */
        if (reverse && lens) {
            ir_node *rs = gb_begin(c, IR_OP_REVERSE_SEQUENCE, 2, (ir_value *[]){y_dir[d], lens});
            gb_attr_int(c, rs, "time_axis", 0);
            gb_attr_int(c, rs, "batch_axis", 1);
            y_dir[d] = gb_done(c, rs);
        }
        y_dir[d] = unsqueeze(&u, y_dir[d], 1);
        h_dir[d] = unsqueeze(&u, h, 0);
        c_dir[d] = cell ? unsqueeze(&u, cell, 0) : NULL;
    }
    free(steps);
    if (c->st)
        return c->st;
    ir_value *y = concat(&u, (int)D, y_dir, 1), *yh = concat(&u, (int)D, h_dir, 0);
    ir_value *yc = gates == 4 ? concat(&u, (int)D, c_dir, 0) : NULL;
    if (r.layout) { /* Y [B, S, D, H]; Y_h and Y_c [B, D, H] */
        y = gb_transpose(c, y, (int64_t[]){2, 0, 1, 3});
        yh = gb_transpose(c, yh, (int64_t[]){1, 0, 2});
        yc = yc ? gb_transpose(c, yc, (int64_t[]){1, 0, 2}) : NULL;
    }
    ir_value *values[3] = {y, yh, yc}, *seeds[3] = {0}, *wrt[8] = {0}, *grads[8] = {0};
    for (int k = 0; k < n->output_count && k < 3; k++)
        seeds[k] = c->dy[k];
    for (int k = 0; k < in_count && k < 8; k++)
        wrt[k] = c->need[k] ? X(k) : NULL;
    if (gb_vjp(c, first, 3, values, seeds, in_count, wrt, grads))
        return c->st;
    for (int k = 0; k < in_count && k < 8; k++)
        if (c->need[k])
            c->dx[k] = grads[k];
    return c->st;
}
