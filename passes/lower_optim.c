/*
 * lower_optim.c — loop lowering of the ONNX training optimizers (Adagrad, Momentum, Adam
 * from ai.onnx.preview.training): per tensor group, one elementwise nest that reads the
 * parameter, its gradient and its state and writes the new parameter and state. The math
 * runs in f64, as the interpreter's (formulas from the operator specs), so the step-size
 * corrections (powers of beta and alpha in Adam) lose nothing to f32.
 */
#include "passes/lower.h"
#include "runtime/rng.h"

#include <string.h>

#define M (c->m)

static lir_expr *d(lower_ctx *c, double v) { return lir_const(M, KILN_F64, v); }
static lir_expr *add(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_ADD, a, b); }
static lir_expr *sub(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_SUB, a, b); }
static lir_expr *mul(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_MUL, a, b); }
static lir_expr *dvd(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_DIV, a, b); }
static double attr(lower_ctx *c, const char *name) { return ir_attr_float(c->node, name); }

/* Input `i` at the flat position `at` of a tensor shaped like it, in f64. */
static lir_expr *at(lower_ctx *c, int i, lir_expr **coords, int rank) {
    const kiln_tensor *t = c->in_type[i];
    return lir_cast(M, KILN_F64, lir_load(M, c->in[i], lower_index(c, t, coords, rank)));
}

/* groups: 3 (X, G, V) or 4 (X, G, V, H); inputs are R, T, then each group's tensors. */
static kiln_status optimizer(lower_ctx *c, int groups) {
    int n = (c->node->input_count - 2) / groups;
    lir_expr *zero[1] = {NULL};
    if (!(zero[0] = lir_int(M, 0)))
        return lower_oom(c);
    lir_expr *rate = at(c, 0, zero, 0), *t = at(c, 1, zero, 0);
    lir_expr *t_pos = lir_binary(M, LIR_GT, t, d(c, 0));
    for (int g = 0; g < n; g++) {
        const kiln_tensor *shape = c->out_type[g];
        lir_expr *oc[KILN_MAX_RANK];
        lir_stmt *inner, *outer;
        kiln_status st = lower_nest(c, shape, oc, &inner, &outer);
        if (st)
            return st;
        int r = shape->rank;
        lir_expr *x = at(c, 2 + g, oc, r), *grad = at(c, 2 + n + g, oc, r), *a = at(c, 2 + 2 * n + g, oc, r);
        lir_expr *greg = add(c, mul(c, d(c, attr(c, "norm_coefficient")), x), grad);
        lir_expr *x_new, *a_new, *b_new = NULL;
        if (c->node->op == IR_OP_ADAGRAD) {
            lir_expr *step = dvd(c, rate, add(c, d(c, 1), mul(c, t, d(c, attr(c, "decay_factor")))));
            a_new = add(c, a, mul(c, greg, greg));
            lir_expr *denom = add(c, lir_call(M, LIR_SQRT, a_new, NULL), d(c, attr(c, "epsilon")));
            x_new = sub(c, x, dvd(c, mul(c, step, greg), denom));
        } else if (c->node->op == IR_OP_MOMENTUM) {
            double alpha = attr(c, "alpha");
            lir_expr *beta = lir_select(M, t_pos, d(c, attr(c, "beta")), d(c, 1)); /* the first step takes all of g */
            a_new = add(c, mul(c, d(c, alpha), a), mul(c, beta, greg));
            bool nesterov = !strcmp(ir_attr_string(c->node, "mode"), "nesterov");
            x_new = sub(c, x, mul(c, rate, nesterov ? add(c, greg, mul(c, d(c, alpha), a_new)) : a_new));
        } else { /* Adam: V is the first moment, H the second */
            double alpha = attr(c, "alpha"), beta = attr(c, "beta");
            lir_expr *h = at(c, 2 + 3 * n + g, oc, r);
            a_new = add(c, mul(c, d(c, alpha), a), mul(c, d(c, 1 - alpha), greg));
            b_new = add(c, mul(c, d(c, beta), h), mul(c, d(c, 1 - beta), mul(c, greg, greg)));
            lir_expr *corr = dvd(c, lir_call(M, LIR_SQRT, sub(c, d(c, 1), lir_call(M, LIR_POW, d(c, beta), t)), NULL),
                                 sub(c, d(c, 1), lir_call(M, LIR_POW, d(c, alpha), t)));
            lir_expr *step = lir_select(M, t_pos, mul(c, rate, corr), rate);
            lir_expr *denom = add(c, lir_call(M, LIR_SQRT, b_new, NULL), d(c, attr(c, "epsilon")));
            x_new = mul(c, sub(c, x, dvd(c, mul(c, step, a_new), denom)), d(c, 1 - attr(c, "norm_coefficient_post")));
        }
        lir_expr *results[3] = {x_new, a_new, b_new};
        for (int k = 0; k < groups - 1; k++) {
            int o = k * n + g;
            lir_expr *index = lower_index(c, c->out_type[o], oc, r);
            if (!lir_seq_push(M, inner, lir_store(M, c->out[o], index, lir_cast(M, c->out_type[o]->dtype, results[k]))))
                return lower_oom(c);
        }
        if ((st = lower_emit(c, outer)))
            return st;
    }
    return KILN_OK;
}

kiln_status lower_adagrad(lower_ctx *c) { return optimizer(c, 3); }
kiln_status lower_momentum(lower_ctx *c) { return optimizer(c, 3); }
kiln_status lower_adam(lower_ctx *c) { return optimizer(c, 4); }

/* ---- DropoutMask ------------------------------------------------------------------------ */

static lir_expr *u64c(lower_ctx *c, uint64_t v) { return lir_int_const(M, KILN_U64, (int64_t)v); }
static lir_expr *shr(lower_ctx *c, lir_expr *a, int bits) { return dvd(c, a, u64c(c, UINT64_C(1) << bits)); }
/* kiln_rng_mix in loop IR: shifts are divisions by powers of two of unsigned values */
static lir_expr *mix(lower_ctx *c, lir_expr *z) {
    z = mul(c, lir_binary(M, LIR_XOR, z, shr(c, z, 30)), u64c(c, KILN_RNG_MUL1));
    z = mul(c, lir_binary(M, LIR_XOR, z, shr(c, z, 27)), u64c(c, KILN_RNG_MUL2));
    return lir_binary(M, LIR_XOR, z, shr(c, z, 31));
}
static lir_expr *rng_bits(lower_ctx *c, lir_expr *key, lir_expr *i) {
    return mix(c, add(c, key, mul(c, add(c, i, u64c(c, 1)), u64c(c, KILN_RNG_GOLDEN))));
}

/* The interpreter's formula (interp_dropout_mask), element by element over the output's
 * flat index, so the mask does not depend on how the nest is split among threads. */
kiln_status lower_dropout_mask(lower_ctx *c) {
    const kiln_tensor *shape = c->out_type[0];
    double ratio = ir_attr_float(c->node, "ratio");
    lir_expr *coords[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, shape, coords, &inner, &outer);
    if (st)
        return st;
    lir_expr *seed = lir_cast(M, KILN_U64, lir_load(M, c->in[1], lir_int(M, 0)));
    lir_expr *key = rng_bits(c, seed, u64c(c, (uint64_t)ir_attr_int(c->node, "salt")));
    lir_expr *flat = lower_index(c, shape, coords, shape->rank);
    lir_expr *top = shr(c, rng_bits(c, key, lir_cast(M, KILN_U64, flat)), 64 - KILN_RNG_KEEP_BITS);
    lir_expr *keep = lir_binary(M, LIR_GE, top, u64c(c, kiln_rng_keep_from(ratio)));
    lir_expr *value = lir_select(M, keep, d(c, 1 / (1 - ratio)), d(c, 0));
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], flat, lir_cast(M, shape->dtype, value))))
        return lower_oom(c);
    return lower_emit(c, outer);
}
