/*
 * lower_select.c — loop lowering of the ops that select elements by their values: TopK,
 * Compress and NonZero. How many they select decides their output shape, so it must be
 * static by now: K (TopK) and the condition (Compress) are inputs that decide shapes
 * (ir_op_input_static), compiled in as constants; NonZero's output size is static only
 * when its input is (it then folds), or when a caller states it.
 */
#include "passes/lower.h"

#include <string.h>

#define M (c->m)
#define V(id) lir_var_ref(M, c->k, id)

static lir_expr *i64(lower_ctx *c, int64_t v) { return lir_int(M, v); }
static lir_expr *bin(lower_ctx *c, lir_op op, lir_expr *a, lir_expr *b) { return lir_binary(M, op, a, b); }

/* TopK by repeated selection: the j-th output is the best element that ranks after the
 * (j-1)-th, in the order (value, then lower index first) — the interpreter's sort order,
 * with no scratch memory. O(K * len) per row: TopK's K is small in the models that use it. */
kiln_status lower_topk(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *k_in = c->in_type[1];
    if (!k_in->data)
        return lower_error(c, KILN_ERR_UNSUPPORTED, "K must be a constant to compile TopK");
    int axis;
    shape_ctx s = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    kiln_status st = shape_axis(&s, ir_attr_int(c->node, "axis"), x->rank, "axis", &axis);
    if (st)
        return st;
    int64_t k = ir_tensor_get_int(k_in, 0), len = x->dims[axis];
    bool largest = ir_attr_int(c->node, "largest");
    kiln_dtype t = lower_compute_type(x->dtype);
    kiln_tensor rows = *x;
    rows.dims[axis] = 1;
    lir_expr *rc[KILN_MAX_RANK], *xc[KILN_MAX_RANK], *j, *i;
    lir_stmt *inner, *outer;
    if ((st = lower_nest(c, &rows, rc, &inner, &outer)))
        return st;
    int best = lower_var(c, "best", t), at = lower_var(c, "at", KILN_I64);
    int prev = lower_var(c, "prev", t), prev_at = lower_var(c, "prev_at", KILN_I64);
    lir_stmt *scan = lir_seq(M), *pick = lir_seq(M);
    lir_stmt *i_loop = lower_loop(c, "i", len, scan, &i), *j_loop = lower_loop(c, "j", k, pick, &j);
    memcpy(xc, rc, sizeof(lir_expr *) * (size_t)x->rank);
    xc[axis] = i;
    lir_expr *v = lower_read(c, 0, xc);
    lir_op beats = largest ? LIR_GT : LIR_LT, trails = largest ? LIR_LT : LIR_GT;
    /* ranks after the previous pick: a worse value, or an equal one further along */
    lir_expr *after = bin(c, LIR_OR, bin(c, LIR_LT, V(prev_at), i64(c, 0)),
                          bin(c, LIR_OR, bin(c, trails, v, V(prev)),
                              bin(c, LIR_AND, bin(c, LIR_EQ, v, V(prev)), bin(c, LIR_GT, i, V(prev_at)))));
    lir_expr *better = bin(c, LIR_OR, bin(c, LIR_LT, V(at), i64(c, 0)), bin(c, beats, v, V(best)));
    lir_stmt *take = lir_seq(M);
    lir_expr *oc[KILN_MAX_RANK];
    memcpy(oc, rc, sizeof(lir_expr *) * (size_t)x->rank);
    oc[axis] = j;
    const kiln_tensor *vals = c->out_type[0], *idx = c->out_type[1];
    if (!take || !lir_seq_push(M, take, lir_assign(M, best, v)) || !lir_seq_push(M, take, lir_assign(M, at, i)) ||
        !lir_seq_push(M, scan, lir_if(M, bin(c, LIR_AND, after, better), take, NULL)) ||
        !lir_seq_push(M, pick, lir_let(M, best, lir_const(M, t, 0))) || !lir_seq_push(M, pick, lir_let(M, at, i64(c, -1))) ||
        !lir_seq_push(M, pick, i_loop) ||
        !lir_seq_push(M, pick, lir_store(M, c->out[0], lower_index(c, vals, oc, vals->rank), lir_cast(M, vals->dtype, V(best)))) ||
        !lir_seq_push(M, pick, lir_store(M, c->out[1], lower_index(c, idx, oc, idx->rank), V(at))) ||
        !lir_seq_push(M, pick, lir_assign(M, prev, V(best))) || !lir_seq_push(M, pick, lir_assign(M, prev_at, V(at))) ||
        !lir_seq_push(M, inner, lir_let(M, prev, lir_const(M, t, 0))) ||
        !lir_seq_push(M, inner, lir_let(M, prev_at, i64(c, -1))) || !lir_seq_push(M, inner, j_loop))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* Compress: per outer row, walk the axis and copy each slice whose condition holds to the
 * next output position. The count kept must match the static output (the condition was
 * compiled in); a mismatch stops the kernel rather than write past the output. */
kiln_status lower_compress(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *cond = c->in_type[1], *out = c->out_type[0];
    const ir_attr *axis_attr = ir_node_attr(c->node, "axis");
    kiln_tensor flat = {.dtype = x->dtype, .rank = 1, .dims = {kiln_tensor_count(x)}};
    const kiln_tensor *src = x;
    int axis = 0;
    if (axis_attr) {
        shape_ctx s = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
        kiln_status st = shape_axis(&s, axis_attr->i, x->rank, "axis", &axis);
        if (st)
            return st;
    } else
        src = &flat; /* no axis: the flattened input */
    int64_t len = src->dims[axis], kept = out->dims[axis], n = cond->dims[0] < len ? cond->dims[0] : len;
    kiln_tensor outer_shape = {.rank = axis}, inner_shape = {.rank = src->rank - axis - 1};
    memcpy(outer_shape.dims, src->dims, sizeof(int64_t) * (size_t)axis);
    memcpy(inner_shape.dims, src->dims + axis + 1, sizeof(int64_t) * (size_t)inner_shape.rank);
    lir_expr *ocs[KILN_MAX_RANK], *ics[KILN_MAX_RANK], *i, *xc[KILN_MAX_RANK], *oc[KILN_MAX_RANK];
    lir_stmt *o_inner, *o_outer, *in_inner, *in_outer;
    kiln_status st;
    if ((st = lower_nest(c, &outer_shape, ocs, &o_inner, &o_outer)) ||
        (st = lower_nest(c, &inner_shape, ics, &in_inner, &in_outer)))
        return st;
    lower_serial(in_outer);
    int pos = lower_var(c, "pos", KILN_I64);
    lir_stmt *walk = lir_seq(M), *i_loop = lower_loop(c, "i", n, walk, &i), *copy = lir_seq(M);
    for (int d = 0; d < src->rank; d++) {
        xc[d] = d < axis ? ocs[d] : d == axis ? i : ics[d - axis - 1];
        oc[d] = d == axis ? V(pos) : xc[d];
    }
    lir_expr *ci[1] = {i};
    lir_expr *full = bin(c, LIR_GE, V(pos), i64(c, kept));
    kiln_tensor out_view = *src;
    out_view.dims[axis] = kept;
    lir_expr *value = lir_load(M, c->in[0], lower_index(c, src, xc, src->rank));
    if (!copy || !lir_seq_push(M, copy, lir_if(M, full, lir_fail(M, "the condition keeps more entries than the compiled output holds"), NULL)) ||
        !lir_seq_push(M, in_inner, lir_store(M, c->out[0], lower_index(c, &out_view, oc, src->rank), value)) ||
        !lir_seq_push(M, copy, in_outer) ||
        !lir_seq_push(M, copy, lir_assign(M, pos, bin(c, LIR_ADD, V(pos), i64(c, 1)))) ||
        !lir_seq_push(M, walk, lir_if(M, bin(c, LIR_NE, lower_read(c, 1, ci), lir_const(M, KILN_BOOL, 0)), copy, NULL)) ||
        !lir_seq_push(M, o_inner, lir_let(M, pos, i64(c, 0))) || !lir_seq_push(M, o_inner, i_loop) ||
        !lir_seq_push(M, o_inner, lir_if(M, bin(c, LIR_NE, V(pos), i64(c, kept)),
                                         lir_fail(M, "the condition keeps fewer entries than the compiled output holds"), NULL)))
        return lower_oom(c);
    return lower_emit(c, o_outer);
}

/* NonZero: one serial walk in C order writing each nonzero element's coordinates to the
 * next column, checked against the static column count. */
kiln_status lower_non_zero(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    int64_t nnz = c->out_type[0]->dims[1];
    lir_expr *xc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, x, xc, &inner, &outer);
    if (st)
        return st;
    lower_serial(outer);
    int pos = lower_var(c, "pos", KILN_I64);
    lir_expr *v = lower_read(c, 0, xc);
    lir_stmt *take = lir_seq(M);
    if (!take || !lir_seq_push(M, take, lir_if(M, bin(c, LIR_GE, V(pos), i64(c, nnz)),
                                               lir_fail(M, "more nonzero elements than the compiled output holds"), NULL)))
        return lower_oom(c);
    for (int d = 0; d < x->rank; d++) {
        lir_expr *at = bin(c, LIR_ADD, i64(c, d * nnz), V(pos));
        if (!lir_seq_push(M, take, lir_store(M, c->out[0], at, xc[d])))
            return lower_oom(c);
    }
    if (!lir_seq_push(M, take, lir_assign(M, pos, bin(c, LIR_ADD, V(pos), i64(c, 1)))) ||
        !lir_seq_push(M, inner, lir_if(M, bin(c, LIR_NE, v, lir_const(M, v->type, 0)), take, NULL)) ||
        !lir_seq_push(M, c->k->body, lir_let(M, pos, i64(c, 0))) || (st = lower_emit(c, outer)))
        return st ? st : lower_oom(c);
    return lower_emit(c, lir_if(M, bin(c, LIR_NE, V(pos), i64(c, nnz)),
                                lir_fail(M, "fewer nonzero elements than the compiled output holds"), NULL));
}
