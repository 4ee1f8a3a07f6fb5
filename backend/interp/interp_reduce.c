/*
 * interp_reduce.c — reference reductions (ReduceSum ... ReduceLogSumExp) and
 * ArgMax/ArgMin. Every input element is folded into the output element it reduces to,
 * in double; an empty reduction yields the operation's identity (0 for sums, 1 for
 * products, -inf for max and log-sum-exp, +inf for min), as ONNX 18 specifies.
 */
#include "backend/interp/interp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { R_SUM, R_MEAN, R_MAX, R_MIN, R_PROD, R_L1, R_L2, R_SUM_SQUARE, R_LOG_SUM, R_LOG_SUM_EXP } reduce_kind;

static double reduce_init(reduce_kind k) {
    return k == R_PROD ? 1 : k == R_MAX || k == R_LOG_SUM_EXP ? -INFINITY : k == R_MIN ? INFINITY : 0;
}

static kiln_status reduce(interp_ctx *c, reduce_kind k) {
    const kiln_tensor *x = c->s.in[0];
    kiln_tensor *out = c->out[0];
    bool mask[KILN_MAX_RANK], identity, known;
    kiln_status st = shape_reduce_axes(&c->s, mask, &identity, &known);
    if (st)
        return st;
    if (identity) {
        memcpy(out->data, x->data, kiln_tensor_bytes(x));
        return KILN_OK;
    }
    int64_t n_out = kiln_tensor_count(out), n_in = kiln_tensor_count(x), count = 1;
    for (int d = 0; d < x->rank; d++)
        if (mask[d])
            count *= x->dims[d];
    double *acc = malloc(sizeof(double) * (size_t)(n_out + 1));
    if (!acc)
        return interp_error(c, KILN_ERR_OOM, "out of memory");
    double init = reduce_init(k);
    for (int64_t i = 0; i < n_out; i++)
        acc[i] = init;
    /* log-sum-exp needs the max first, for stability */
    double *shift = NULL;
    if (k == R_LOG_SUM_EXP) {
        if (!(shift = malloc(sizeof(double) * (size_t)(n_out + 1)))) {
            free(acc);
            return interp_error(c, KILN_ERR_OOM, "out of memory");
        }
        for (int64_t i = 0; i < n_out; i++)
            shift[i] = -INFINITY;
    }
    int64_t coord[KILN_MAX_RANK];
    kiln_tensor kept = {.rank = x->rank}; /* the input's shape with reduced axes set to 1 */
    for (int d = 0; d < x->rank; d++)
        kept.dims[d] = mask[d] ? 1 : x->dims[d];
    for (int pass = k == R_LOG_SUM_EXP ? 0 : 1; pass < 2; pass++)
        for (int64_t i = 0; i < n_in; i++) {
            interp_unravel(i, x, coord);
            for (int d = 0; d < x->rank; d++)
                if (mask[d])
                    coord[d] = 0;
            int64_t o = interp_ravel(coord, &kept);
            double v = ir_tensor_get(x, i), *a = &acc[o];
            if (pass == 0) {
                shift[o] = fmax(shift[o], v);
                continue;
            }
            switch (k) {
            case R_SUM: case R_MEAN: case R_LOG_SUM: *a += v; break;
            case R_MAX: *a = isnan(v) || isnan(*a) ? NAN : fmax(*a, v); break;
            case R_MIN: *a = isnan(v) || isnan(*a) ? NAN : fmin(*a, v); break;
            case R_PROD: *a *= v; break;
            case R_L1: *a += fabs(v); break;
            case R_L2: case R_SUM_SQUARE: *a += v * v; break;
            case R_LOG_SUM_EXP: *a = (*a == -INFINITY ? 0 : *a) + exp(v - shift[o]); break;
            }
        }
    for (int64_t o = 0; o < n_out; o++) {
        double v = acc[o];
        if (k == R_MEAN)
            v /= (double)count;
        else if (k == R_L2)
            v = sqrt(v);
        else if (k == R_LOG_SUM)
            v = log(v);
        else if (k == R_LOG_SUM_EXP && count)
            v = isinf(shift[o]) ? shift[o] : log(v) + shift[o];
        if (!ir_dtype_is_float(out->dtype) && isinf(v)) /* empty max/min on integers */
            ir_tensor_set_int(out, o, v > 0 ? INT64_MAX : INT64_MIN);
        else
            ir_tensor_set(out, o, v);
    }
    free(acc);
    free(shift);
    return KILN_OK;
}

kiln_status interp_reduce_sum(interp_ctx *c) { return reduce(c, R_SUM); }
kiln_status interp_reduce_mean(interp_ctx *c) { return reduce(c, R_MEAN); }
kiln_status interp_reduce_max(interp_ctx *c) { return reduce(c, R_MAX); }
kiln_status interp_reduce_min(interp_ctx *c) { return reduce(c, R_MIN); }
kiln_status interp_reduce_prod(interp_ctx *c) { return reduce(c, R_PROD); }
kiln_status interp_reduce_l1(interp_ctx *c) { return reduce(c, R_L1); }
kiln_status interp_reduce_l2(interp_ctx *c) { return reduce(c, R_L2); }
kiln_status interp_reduce_sum_square(interp_ctx *c) { return reduce(c, R_SUM_SQUARE); }
kiln_status interp_reduce_log_sum(interp_ctx *c) { return reduce(c, R_LOG_SUM); }
kiln_status interp_reduce_log_sum_exp(interp_ctx *c) { return reduce(c, R_LOG_SUM_EXP); }

static kiln_status arg_reduce(interp_ctx *c, bool is_max) {
    const kiln_tensor *x = c->s.in[0];
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), x->rank, "axis", &axis);
    bool last = ir_attr_int(c->s.node, "select_last_index");
    int64_t outer, len, inner;
    interp_around_axis(x, axis, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            int64_t best = 0;
            double bv = ir_tensor_get(x, o * len * inner + in);
            for (int64_t i = 1; i < len; i++) {
                double v = ir_tensor_get(x, (o * len + i) * inner + in);
                bool better = is_max ? (last ? v >= bv : v > bv) : (last ? v <= bv : v < bv);
                if (better)
                    best = i, bv = v;
            }
            ir_tensor_set_int(c->out[0], o * inner + in, best);
        }
    return KILN_OK;
}

kiln_status interp_argmax(interp_ctx *c) { return arg_reduce(c, true); }
kiln_status interp_argmin(interp_ctx *c) { return arg_reduce(c, false); }
