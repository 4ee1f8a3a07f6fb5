/*
 * lower_index.c — loop lowering of the indexing ops: DepthToSpace, SpaceToDepth,
 * ReverseSequence, EyeLike, OneHot, GatherND, ScatterND, ScatterElements, CumSum,
 * ConstantOfShape and Range. Indices read from data are checked (lower_checked_index):
 * out of range stops the kernel with an error naming the node.
 */
#include "passes/einsum.h"
#include "passes/lower.h"

#include <string.h>

#define M (c->m)

static lir_expr *i64(lower_ctx *c, int64_t v) { return lir_int(M, v); }
static lir_expr *add(lower_ctx *c, lir_expr *a, lir_expr *b) { return lir_binary(M, LIR_ADD, a, b); }
static lir_expr *mul(lower_ctx *c, lir_expr *a, int64_t b) { return lir_binary(M, LIR_MUL, a, i64(c, b)); }

static kiln_status d2s_index(lower_ctx *c, lir_expr **oc, lir_expr **ic, lir_expr **outside, void *arg) {
    (void)outside, (void)arg;
    int64_t b = ir_attr_int(c->node, "blocksize"), c_out = c->out_type[0]->dims[1];
    lir_expr *hi = lir_binary(M, LIR_REM, oc[2], i64(c, b)), *wi = lir_binary(M, LIR_REM, oc[3], i64(c, b));
    bool crd = !strcmp(ir_attr_string(c->node, "mode"), "CRD");
    ic[0] = oc[0];
    ic[1] = crd ? add(c, mul(c, add(c, mul(c, oc[1], b), hi), b), wi) : add(c, mul(c, add(c, mul(c, hi, b), wi), c_out), oc[1]);
    ic[2] = lir_binary(M, LIR_DIV, oc[2], i64(c, b));
    ic[3] = lir_binary(M, LIR_DIV, oc[3], i64(c, b));
    return KILN_OK;
}
kiln_status lower_depth_to_space(lower_ctx *c) { return lower_gather_map(c, d2s_index, NULL, NULL); }

static kiln_status s2d_index(lower_ctx *c, lir_expr **oc, lir_expr **ic, lir_expr **outside, void *arg) {
    (void)outside, (void)arg;
    int64_t b = ir_attr_int(c->node, "blocksize"), c_in = c->in_type[0]->dims[1];
    lir_expr *blk = lir_binary(M, LIR_DIV, oc[1], i64(c, c_in));
    ic[0] = oc[0];
    ic[1] = lir_binary(M, LIR_REM, oc[1], i64(c, c_in));
    ic[2] = add(c, mul(c, oc[2], b), lir_binary(M, LIR_DIV, blk, i64(c, b)));
    ic[3] = add(c, mul(c, oc[3], b), lir_binary(M, LIR_REM, blk, i64(c, b)));
    return KILN_OK;
}
kiln_status lower_space_to_depth(lower_ctx *c) { return lower_gather_map(c, s2d_index, NULL, NULL); }

kiln_status lower_eye_like(lower_ctx *c) {
    const kiln_tensor *out = c->out_type[0];
    lir_expr *oc[2];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, out, oc, &inner, &outer);
    if (st)
        return st;
    lir_expr *diag = lir_binary(M, LIR_EQ, lir_binary(M, LIR_SUB, oc[1], oc[0]), i64(c, ir_attr_int(c->node, "k")));
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, 2), lir_cast(M, out->dtype, diag))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_one_hot(lower_ctx *c) {
    const kiln_tensor *idx = c->in_type[0], *out = c->out_type[0];
    int axis = (int)ir_attr_int(c->node, "axis");
    axis = axis < 0 ? axis + out->rank : axis;
    int64_t depth = out->dims[axis];
    lir_expr *oc[KILN_MAX_RANK], *jc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, out, oc, &inner, &outer);
    if (st)
        return st;
    for (int d = 0, j = 0; d < out->rank; d++)
        if (d != axis)
            jc[j++] = oc[d];
    lir_expr *raw = lir_cast(M, KILN_I64, lir_load(M, c->in[0], lower_index(c, idx, jc, idx->rank)));
    lir_expr *norm = lir_select(M, lir_binary(M, LIR_LT, raw, i64(c, 0)), add(c, raw, i64(c, depth)), raw);
    lir_expr *hot = lir_binary(M, LIR_EQ, norm, oc[axis]);
    lir_expr *v = lir_select(M, hot, lir_load(M, c->in[2], i64(c, 1)), lir_load(M, c->in[2], i64(c, 0)));
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank), v)))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_reverse_sequence(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    int b = (int)ir_attr_int(c->node, "batch_axis"), t = (int)ir_attr_int(c->node, "time_axis");
    lir_expr *oc[KILN_MAX_RANK], *ic[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, x, oc, &inner, &outer);
    if (st)
        return st;
    int len = lower_var(c, "len", KILN_I64);
    lir_expr *raw = lir_cast(M, KILN_I64, lir_load(M, c->in[1], oc[b])), *l = lir_var_ref(M, c->k, len);
    lir_expr *bad = lir_binary(M, LIR_OR, lir_binary(M, LIR_LT, l, i64(c, 0)), lir_binary(M, LIR_GT, l, i64(c, x->dims[t])));
    for (int d = 0; d < x->rank; d++)
        ic[d] = oc[d];
    ic[t] = lir_select(M, lir_binary(M, LIR_LT, oc[t], l), lir_binary(M, LIR_SUB, lir_binary(M, LIR_SUB, l, i64(c, 1)), oc[t]), oc[t]);
    if (!lir_seq_push(M, inner, lir_let(M, len, raw)) ||
        !lir_seq_push(M, inner, lir_if(M, bad, lir_fail(M, "a sequence length is outside [0, the time axis]"), NULL)) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, x, oc, x->rank),
                                          lir_load(M, c->in[0], lower_index(c, x, ic, x->rank)))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* The flat offset in data of index tuple `t` (k components) of an [..., k] index tensor,
 * after `batch_flat` batch entries; components are checked. */
static lir_expr *tuple_offset(lower_ctx *c, lir_stmt *inner, const kiln_tensor *data, lir_expr *t, int64_t k,
                              int64_t batch_dims, lir_expr *batch_flat) {
    lir_expr *off = batch_flat;
    for (int64_t j = 0; j < k; j++) {
        int64_t dim = data->dims[batch_dims + j];
        lir_expr *raw = lir_load(M, c->in[1], add(c, mul(c, t, k), i64(c, j)));
        lir_expr *ix = lower_checked_index(c, inner, raw, dim);
        if (!ix)
            return NULL;
        off = off ? add(c, mul(c, off, dim), ix) : ix;
    }
    int64_t rest = 1;
    for (int d = (int)(batch_dims + k); d < data->rank; d++)
        rest *= data->dims[d];
    return off ? mul(c, off, rest) : i64(c, 0);
}

kiln_status lower_gather_nd(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *idx = c->in_type[1];
    int64_t batch = ir_attr_int(c->node, "batch_dims"), k = idx->dims[idx->rank - 1], tuples = 1, slice = 1, per_batch = 1;
    for (int d = 0; d < idx->rank - 1; d++)
        tuples *= idx->dims[d];
    for (int d = (int)batch; d < idx->rank - 1; d++)
        per_batch *= idx->dims[d];
    for (int d = (int)(batch + k); d < x->rank; d++)
        slice *= x->dims[d];
    kiln_tensor shape = {.dtype = x->dtype, .rank = 2, .dims = {tuples, slice}};
    lir_expr *tc[2];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &shape, tc, &inner, &outer);
    if (st)
        return st;
    lir_expr *bflat = batch ? lir_binary(M, LIR_DIV, tc[0], i64(c, per_batch)) : NULL;
    lir_expr *off = tuple_offset(c, inner, x, tc[0], k, batch, bflat);
    if (!off || !lir_seq_push(M, inner, lir_store(M, c->out[0], add(c, mul(c, tc[0], slice), tc[1]),
                                                  lir_load(M, c->in[0], add(c, off, tc[1])))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* Scatters copy the data, then write the updates in order (later duplicates win). */
static lir_expr *combine(lower_ctx *c, lir_expr *old, lir_expr *update) {
    const char *r = ir_attr_string(c->node, "reduction");
    lir_op op = !strcmp(r, "add") ? LIR_ADD : !strcmp(r, "mul") ? LIR_MUL : !strcmp(r, "max") ? LIR_MAX
              : !strcmp(r, "min") ? LIR_MIN : LIR_OP_COUNT;
    return op == LIR_OP_COUNT ? update : lir_binary(M, op, old, update);
}

kiln_status lower_scatter_nd(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *idx = c->in_type[1];
    int64_t k = idx->dims[idx->rank - 1], tuples = ir_type_count(idx) / (k ? k : 1), slice = 1;
    for (int d = (int)k; d < x->rank; d++)
        slice *= x->dims[d];
    if (ir_type_count(c->in_type[2]) != tuples * slice)
        return lower_error(c, KILN_ERR_SHAPE, "updates hold %lld values, the indices address %lld",
                           (long long)ir_type_count(c->in_type[2]), (long long)(tuples * slice));
    kiln_status st = lower_copy(c);
    if (st)
        return st;
    kiln_tensor shape = {.dtype = x->dtype, .rank = 2, .dims = {tuples, slice}};
    lir_expr *tc[2];
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, &shape, tc, &inner, &outer)))
        return st;
    lower_serial(outer); /* later updates of one position win */
    lir_expr *off = tuple_offset(c, inner, x, tc[0], k, 0, NULL);
    if (!off)
        return lower_oom(c);
    lir_expr *at = add(c, off, tc[1]);
    lir_expr *v = combine(c, lir_load(M, c->out[0], at), lir_load(M, c->in[2], add(c, mul(c, tc[0], slice), tc[1])));
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], at, v)))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_scatter_elements(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *idx = c->in_type[1];
    int axis = (int)ir_attr_int(c->node, "axis");
    axis = axis < 0 ? axis + x->rank : axis;
    for (int d = 0; d < x->rank; d++)
        if (d != axis && idx->dims[d] > x->dims[d])
            return lower_error(c, KILN_ERR_SHAPE, "indices reach past the data at axis %d", d);
    kiln_status st = lower_copy(c);
    if (st)
        return st;
    lir_expr *jc[KILN_MAX_RANK], *xc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, idx, jc, &inner, &outer)))
        return st;
    lower_serial(outer); /* later updates of one position win */
    for (int d = 0; d < x->rank; d++)
        xc[d] = jc[d];
    lir_expr *raw = lir_load(M, c->in[1], lower_index(c, idx, jc, idx->rank));
    if (!(xc[axis] = lower_checked_index(c, inner, raw, x->dims[axis])))
        return lower_oom(c);
    lir_expr *at = lower_index(c, x, xc, x->rank);
    lir_expr *v = combine(c, lir_load(M, c->out[0], at), lir_load(M, c->in[2], lower_index(c, c->in_type[2], jc, idx->rank)));
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], at, v)))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_cumsum(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    if (!c->in_type[1]->data)
        return lower_error(c, KILN_ERR_UNSUPPORTED, "CumSum's axis must be a constant to compile");
    int axis = (int)ir_tensor_get_int(c->in_type[1], 0);
    axis = axis < 0 ? axis + x->rank : axis;
    bool exclusive = ir_attr_int(c->node, "exclusive"), reverse = ir_attr_int(c->node, "reverse");
    kiln_dtype t = lower_compute_type(x->dtype);
    kiln_tensor rows = *x;
    rows.dims[axis] = 1;
    int64_t len = x->dims[axis];
    lir_expr *oc[KILN_MAX_RANK], *xc[KILN_MAX_RANK], *j;
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &rows, oc, &inner, &outer);
    if (st)
        return st;
    int acc = lower_var(c, "acc", t), jv = lower_var(c, "j", KILN_I64);
    j = lir_var_ref(M, c->k, jv);
    lir_expr *pos = reverse ? lir_binary(M, LIR_SUB, i64(c, len - 1), j) : j;
    for (int d = 0; d < x->rank; d++)
        xc[d] = d == axis ? pos : oc[d];
    lir_expr *at = lower_index(c, x, xc, x->rank), *a = lir_var_ref(M, c->k, acc);
    lir_stmt *body = lir_seq(M);
    lir_stmt *store = lir_store(M, c->out[0], at, lir_cast(M, x->dtype, a));
    lir_stmt *update = lir_assign(M, acc, lir_binary(M, LIR_ADD, a, lir_cast(M, t, lir_load(M, c->in[0], at))));
    if ((exclusive && (!lir_seq_push(M, body, store) || !lir_seq_push(M, body, update))) ||
        (!exclusive && (!lir_seq_push(M, body, update) || !lir_seq_push(M, body, store))) ||
        !lir_seq_push(M, inner, lir_let(M, acc, lir_const(M, t, 0))) ||
        !lir_seq_push(M, inner, lir_for(M, jv, i64(c, 0), i64(c, len), body)))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_constant_of_shape(lower_ctx *c) {
    const ir_attr *v = ir_node_attr(c->node, "value");
    double value = v ? ir_tensor_get(v->t, 0) : 0;
    if (v && !ir_dtype_is_float(v->t->dtype))
        return lower_fill(c, lir_cast(M, c->out_type[0]->dtype, i64(c, ir_tensor_get_int(v->t, 0))));
    return lower_fill(c, lir_const(M, c->out_type[0]->dtype, value));
}

kiln_status lower_range(lower_ctx *c) {
    const kiln_tensor *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(out->dtype);
    lir_expr *oc[1];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, out, oc, &inner, &outer);
    if (st)
        return st;
    lir_expr *start = lir_cast(M, t, lir_load(M, c->in[0], i64(c, 0))), *delta = lir_cast(M, t, lir_load(M, c->in[2], i64(c, 0)));
    lir_expr *v = lir_binary(M, LIR_ADD, start, lir_binary(M, LIR_MUL, lir_cast(M, t, oc[0]), delta));
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], oc[0], lir_cast(M, out->dtype, v))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* Resize: per output element and per axis, the source coordinate (by the coordinate
 * transformation mode), its n neighbours (n = 2 for nearest and linear, 4 for cubic;
 * clamped to the edge) and their coefficients, exactly as the reference computes them;
 * the value is the sum over the tensor product of the axes' neighbours. Axes whose
 * output equals their input under an identity transform take their one element. */
typedef struct resize_axis {
    bool identity;
    int n;
    lir_expr *base, *ratio, *kept; /* first neighbour, ratio in (0, 1], coefficient sum */
    lir_expr *outside;             /* tf_crop_and_resize: past the input */
} resize_axis;

static lir_expr *f64(lower_ctx *c, double v) { return lir_const(M, KILN_F64, v); }
static lir_expr *fb(lower_ctx *c, lir_op op, lir_expr *a, lir_expr *b) { return lir_binary(M, op, a, b); }

/* The coefficient of neighbour j (an i64 expression) at ratio r. */
static lir_expr *resize_coeff(lower_ctx *c, lir_expr *r, lir_expr *j) {
    const char *mode = ir_attr_string(c->node, "mode");
    lir_expr *is[4];
    for (int k = 0; k < 4; k++)
        is[k] = fb(c, LIR_EQ, j, i64(c, k));
    if (!strcmp(mode, "cubic")) {
        double a = ir_attr_float(c->node, "cubic_coeff_a");
        lir_expr *s = fb(c, LIR_SUB, f64(c, 1), r);
        lir_expr *t0 = fb(c, LIR_ADD, r, f64(c, 1)), *t3 = fb(c, LIR_ADD, s, f64(c, 1));
#define OUTER(t) fb(c, LIR_SUB, fb(c, LIR_MUL, fb(c, LIR_ADD, fb(c, LIR_MUL, fb(c, LIR_SUB, fb(c, LIR_MUL, f64(c, a), t), f64(c, 5 * a)), t), f64(c, 8 * a)), t), f64(c, 4 * a))
#define INNER(t) fb(c, LIR_ADD, fb(c, LIR_MUL, fb(c, LIR_MUL, fb(c, LIR_SUB, fb(c, LIR_MUL, f64(c, a + 2), t), f64(c, a + 3)), t), t), f64(c, 1))
        lir_expr *c0 = OUTER(t0), *c1 = INNER(r), *c2 = INNER(s), *c3 = OUTER(t3);
#undef OUTER
#undef INNER
        return lir_select(M, is[0], c0, lir_select(M, is[1], c1, lir_select(M, is[2], c2, c3)));
    }
    if (!strcmp(mode, "linear"))
        return lir_select(M, is[0], fb(c, LIR_SUB, f64(c, 1), r), r);
    const char *nm = ir_attr_string(c->node, "nearest_mode"); /* r == 1: the source is whole */
    lir_expr *right = !strcmp(nm, "round_prefer_ceil") ? fb(c, LIR_GE, r, f64(c, 0.5))
                    : !strcmp(nm, "floor") ? lir_const(M, KILN_BOOL, 0)
                    : !strcmp(nm, "ceil") ? lir_const(M, KILN_BOOL, 1) : fb(c, LIR_GT, r, f64(c, 0.5));
    right = fb(c, LIR_OR, right, fb(c, LIR_EQ, r, f64(c, 1)));
    return lir_cast(M, KILN_F64, lir_select(M, is[0], lir_unary(M, LIR_NOT, right), right));
}

kiln_status lower_resize(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *out = c->out_type[0];
    double scales[KILN_MAX_RANK];
    int64_t dims[KILN_MAX_RANK];
    bool known;
    shape_ctx s = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    kiln_status st = shape_resize_geometry(&s, scales, dims, &known);
    if (st)
        return st;
    if (!known)
        return lower_error(c, KILN_ERR_UNSUPPORTED, "Resize's scales or sizes must be constants to compile");
    const char *ct = ir_attr_string(c->node, "coordinate_transformation_mode");
    bool cubic = !strcmp(ir_attr_string(c->node, "mode"), "cubic"), exclude = ir_attr_int(c->node, "exclude_outside");
    const kiln_tensor *roi = c->node->input_count > 1 && c->in_type[1] && ir_type_count(c->in_type[1]) ? c->in_type[1] : NULL;
    if (!strcmp(ct, "tf_crop_and_resize") && roi && !roi->data)
        return lower_error(c, KILN_ERR_UNSUPPORTED, "Resize's roi must be a constant to compile");
    lir_expr *oc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, out, oc, &inner, &outer)))
        return st;
    resize_axis ax[KILN_MAX_RANK] = {0};
    lir_expr *outside = NULL;
    for (int d = 0; d < x->rank; d++) {
        int64_t in = x->dims[d];
        double outd = scales[d] * (double)in, sc = scales[d];
        bool transform_identity = !strcmp(ct, "asymmetric") || !strcmp(ct, "half_pixel") ||
                                  (!strcmp(ct, "pytorch_half_pixel") && outd > 1) || (!strcmp(ct, "align_corners"));
        if (sc == 1 && out->dims[d] == in && transform_identity) {
            ax[d].identity = true;
            continue;
        }
        lir_expr *xf = lir_cast(M, KILN_F64, oc[d]), *xo;
        if (!strcmp(ct, "align_corners"))
            xo = outd == 1 ? f64(c, 0) : fb(c, LIR_MUL, xf, f64(c, (double)(in - 1) / (outd - 1)));
        else if (!strcmp(ct, "asymmetric"))
            xo = fb(c, LIR_DIV, xf, f64(c, sc));
        else if (!strcmp(ct, "tf_crop_and_resize")) {
            double b = roi ? ir_tensor_get(roi, d) : 0, e = roi ? ir_tensor_get(roi, d + x->rank) : 1;
            xo = outd > 1 ? fb(c, LIR_ADD, f64(c, b * (double)(in - 1)), fb(c, LIR_MUL, xf, f64(c, (e - b) * (double)(in - 1) / (outd - 1))))
                          : f64(c, 0.5 * (b + e) * (double)(in - 1));
            lir_expr *out_d = fb(c, LIR_OR, fb(c, LIR_LT, xo, f64(c, 0)), fb(c, LIR_GT, xo, f64(c, (double)(in - 1))));
            outside = outside ? fb(c, LIR_OR, outside, out_d) : out_d;
        } else if (!strcmp(ct, "pytorch_half_pixel"))
            xo = outd == 1 ? f64(c, -0.5) : fb(c, LIR_SUB, fb(c, LIR_DIV, fb(c, LIR_ADD, xf, f64(c, 0.5)), f64(c, sc)), f64(c, 0.5));
        else if (!strcmp(ct, "tf_half_pixel_for_nn"))
            xo = fb(c, LIR_DIV, fb(c, LIR_ADD, xf, f64(c, 0.5)), f64(c, sc));
        else
            xo = fb(c, LIR_SUB, fb(c, LIR_DIV, fb(c, LIR_ADD, xf, f64(c, 0.5)), f64(c, sc)), f64(c, 0.5));
        int vx = lower_var(c, "src", KILN_F64), vr = lower_var(c, "ratio", KILN_F64), vb = lower_var(c, "base", KILN_I64);
        lir_expr *src = lir_var_ref(M, c->k, vx), *fl = lir_call(M, LIR_FLOOR, src, NULL);
        lir_expr *whole = fb(c, LIR_EQ, src, fl);
        ax[d].n = cubic ? 4 : 2;
        lir_expr *base = lir_select(M, whole, fb(c, LIR_SUB, lir_cast(M, KILN_I64, src), i64(c, ax[d].n / 2)),
                                    fb(c, LIR_SUB, lir_cast(M, KILN_I64, fl), i64(c, ax[d].n / 2 - 1)));
        if (!lir_seq_push(M, inner, lir_let(M, vx, xo)) ||
            !lir_seq_push(M, inner, lir_let(M, vr, lir_select(M, whole, f64(c, 1), fb(c, LIR_SUB, src, fl)))) ||
            !lir_seq_push(M, inner, lir_let(M, vb, base)))
            return lower_oom(c);
        ax[d].ratio = lir_var_ref(M, c->k, vr);
        ax[d].base = lir_var_ref(M, c->k, vb);
        if (exclude) { /* coefficients of neighbours outside the input drop out, the rest renormalize */
            int vk = lower_var(c, "kept", KILN_F64);
            lir_expr *kept = NULL;
            for (int j = 0; j < ax[d].n; j++) {
                lir_expr *i = fb(c, LIR_ADD, ax[d].base, i64(c, j));
                lir_expr *in_range = fb(c, LIR_AND, fb(c, LIR_GE, i, i64(c, 0)), fb(c, LIR_LT, i, i64(c, in)));
                lir_expr *term = lir_select(M, in_range, resize_coeff(c, ax[d].ratio, i64(c, j)), f64(c, 0));
                kept = kept ? fb(c, LIR_ADD, kept, term) : term;
            }
            if (!lir_seq_push(M, inner, lir_let(M, vk, kept)))
                return lower_oom(c);
            ax[d].kept = lir_var_ref(M, c->k, vk);
        }
    }
    /* the sum over neighbours: one loop per interpolated axis */
    int acc = lower_var(c, "acc", KILN_F64);
    lir_expr *ic[KILN_MAX_RANK], *w = NULL;
    lir_stmt *body = lir_seq(M), *loops = body;
    for (int d = x->rank - 1; d >= 0; d--) {
        if (ax[d].identity) {
            ic[d] = oc[d];
            continue;
        }
        lir_expr *j;
        loops = lower_seq1(c, lower_loop(c, "j", ax[d].n, loops, &j));
        lir_expr *i = fb(c, LIR_ADD, ax[d].base, j);
        ic[d] = fb(c, LIR_MIN, fb(c, LIR_MAX, i, i64(c, 0)), i64(c, x->dims[d] - 1));
        lir_expr *coef = resize_coeff(c, ax[d].ratio, j);
        if (exclude) { /* renormalized unless nothing was kept (then every coefficient is 0) */
            lir_expr *scaled = lir_select(M, fb(c, LIR_NE, ax[d].kept, f64(c, 0)), fb(c, LIR_DIV, coef, ax[d].kept), coef);
            coef = lir_select(M, fb(c, LIR_AND, fb(c, LIR_GE, i, i64(c, 0)), fb(c, LIR_LT, i, i64(c, x->dims[d]))), scaled, f64(c, 0));
        }
        w = w ? fb(c, LIR_MUL, w, coef) : coef;
    }
    lir_expr *v = lir_cast(M, KILN_F64, lir_load(M, c->in[0], lower_index(c, x, ic, x->rank)));
    lir_expr *term = w ? fb(c, LIR_MUL, w, v) : v;
    lir_expr *result = lir_var_ref(M, c->k, acc);
    if (outside)
        result = lir_select(M, outside, f64(c, ir_attr_float(c->node, "extrapolation_value")), result);
    if (!lir_seq_push(M, body, lir_assign(M, acc, fb(c, LIR_ADD, lir_var_ref(M, c->k, acc), term))) ||
        !lir_seq_push(M, inner, lir_let(M, acc, f64(c, 0))) || !lir_seq_push(M, inner, loops) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank), lir_cast(M, out->dtype, result))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* Einsum: a loop per output label (the output nest), inside it a loop per summed label, and
 * the product of the operands at those labels summed into an accumulator. Size-1 axes of an
 * operand broadcast (lower_read reads them at 0), as ellipsis axes do. */
kiln_status lower_einsum(lower_ctx *c) {
    shape_ctx sc = {.node = c->node, .in = c->in_type, .in_count = c->node->input_count, .d = c->d};
    einsum_spec s;
    kiln_status st = einsum_parse(&sc, &s);
    if (st)
        return st;
    const kiln_tensor *out = c->out_type[0];
    kiln_dtype t = lower_compute_type(out->dtype);
    lir_expr *at[EINSUM_LABELS] = {0}, *oc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, out, oc, &inner, &outer)))
        return st;
    bool in_out[EINSUM_LABELS] = {0};
    for (int d = 0; d < s.out_rank; d++)
        at[s.out_label[d]] = oc[d], in_out[s.out_label[d]] = true;
    int acc = lower_var(c, "acc", t);
    if (!lir_seq_push(M, inner, lir_let(M, acc, lir_const(M, t, 0))))
        return lower_oom(c);
    lir_stmt *body = inner;
    for (int l = 0; l < s.label_count; l++) {
        if (in_out[l] || s.size[l] < 0)
            continue;
        lir_stmt *next = lir_seq(M), *loop = next ? lower_loop(c, "r", s.size[l], next, &at[l]) : NULL;
        if (!loop || !lir_seq_push(M, body, loop))
            return lower_oom(c);
        body = next;
    }
    lir_expr *prod = NULL;
    for (int i = 0; i < s.operand_count; i++) {
        lir_expr *xc[KILN_MAX_RANK];
        for (int d = 0; d < s.rank[i]; d++)
            xc[d] = at[s.label[i][d]];
        lir_expr *x = lir_cast(M, t, lower_read(c, i, xc));
        prod = prod ? lir_binary(M, LIR_MUL, prod, x) : x;
    }
    lir_expr *a = lir_var_ref(M, c->k, acc);
    if (!prod || !lir_seq_push(M, body, lir_assign(M, acc, lir_binary(M, LIR_ADD, a, prod))) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank), lir_cast(M, out->dtype, a))))
        return lower_oom(c);
    return lower_emit(c, outer);
}
