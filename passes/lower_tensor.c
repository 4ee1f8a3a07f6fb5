/*
 * lower_tensor.c — loop lowering of the data-movement ops: each output element reads one
 * input element (or a pad value) at an index computed from the output's coordinates.
 * The amounts these ops take from small integer inputs (shapes, starts, pads) must be
 * constants by now; constant folding and shape inference usually made them so.
 */
#include "passes/lower.h"

#include <string.h>

#define M (c->m)

static lir_expr *i64(lower_ctx *c, int64_t v) { return lir_int(M, v); }

kiln_status lower_gather_map(lower_ctx *c, lower_index_fn f, void *arg, lir_expr *pad_value) {
    const kiln_tensor *out = c->out_type[0], *x = c->in_type[0];
    lir_expr *oc[KILN_MAX_RANK], *ic[KILN_MAX_RANK], *outside = NULL;
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, out, oc, &inner, &outer);
    if (st || (st = f(c, oc, ic, &outside, arg)))
        return st;
    lir_expr *v = lir_cast(M, x->dtype, lower_read(c, 0, ic));
    if (outside) /* the index is clamped so the load stays in bounds; the select drops it */
        v = lir_select(M, outside, pad_value, v);
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank), v)))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_fill(lower_ctx *c, lir_expr *value) {
    const kiln_tensor *out = c->out_type[0];
    lir_expr *oc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, out, oc, &inner, &outer);
    if (st)
        return st;
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank), value)))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* Reshape, Flatten, (Un)Squeeze: the same elements in the same order. */
kiln_status lower_copy(lower_ctx *c) {
    kiln_tensor flat = {.dtype = c->out_type[0]->dtype, .rank = 1, .dims = {ir_type_count(c->out_type[0])}};
    lir_expr *oc[1];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, &flat, oc, &inner, &outer);
    if (st)
        return st;
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], oc[0], lir_load(M, c->in[0], oc[0]))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_reshape(lower_ctx *c) { return lower_copy(c); }
kiln_status lower_flatten(lower_ctx *c) { return lower_copy(c); }
kiln_status lower_squeeze(lower_ctx *c) { return lower_copy(c); }
kiln_status lower_unsqueeze(lower_ctx *c) { return lower_copy(c); }

static kiln_status transpose_index(lower_ctx *c, lir_expr **oc, lir_expr **ic, lir_expr **pad, void *arg) {
    (void)arg, (void)pad;
    int rank = c->in_type[0]->rank;
    const ir_attr *a = ir_node_attr(c->node, "perm");
    for (int d = 0; d < rank; d++) {
        int p = a && a->count ? (int)(a->ints[d] < 0 ? a->ints[d] + rank : a->ints[d]) : rank - 1 - d;
        ic[p] = oc[d];
    }
    return KILN_OK;
}
/* A transpose that moves the input's contiguous axis away from the output's last one
 * reads each output row's elements from as many input rows, a cache line each (8 KiB
 * apart for attention's K, the same cache set every time). Tiled instead: the output's
 * last axis in tiles of TILE (a vector), and inside a tile the loop over the output axis
 * that the input's last one became, so the TILE input lines a tile reads serve all the
 * elements in them before they leave L1. 8, not a full 16-lane vector: input rows a
 * power of two apart share one L1 set, and 16 lines overflow its 12 ways (16: 0.23 ms for
 * the Transformer's K, 8: 0.13 ms; untiled 0.73 ms). */
enum { TRANSPOSE_TILE = 8 };

static kiln_status transpose_tiled(lower_ctx *c, int q) {
    const kiln_tensor *out = c->out_type[0], *x = c->in_type[0];
    int rank = out->rank, last = rank - 1;
    int64_t n = out->dims[last], tiles = (n + TRANSPOSE_TILE - 1) / TRANSPOSE_TILE;
    lir_expr *oc[KILN_MAX_RANK], *ic[KILN_MAX_RANK], *tile, *lane;
    lir_stmt *body = lir_seq(M), *lane_body = lir_seq(M);
    if (!body || !lane_body)
        return lower_oom(c);
    lir_stmt *lanes = lower_loop(c, "lane", TRANSPOSE_TILE, lane_body, &lane), *nest = lanes;
    nest = nest && lir_seq_push(M, body, nest) ? lower_loop(c, "q", out->dims[q], body, &oc[q]) : NULL;
    nest = nest ? lower_loop(c, "tile", tiles, lower_seq1(c, nest), &tile) : NULL;
    /* no loops over axes of 1: the outermost loop is the parallel one, and a batch of 1
     * outside left the blocked layout's Transposes serial (MobileNetV2's, at 2 threads) */
    for (int d = last - 1; nest && d >= 0; d--)
        if (d != q && out->dims[d] == 1)
            oc[d] = lir_int(M, 0);
        else if (d != q)
            nest = lower_loop(c, "i", out->dims[d], lower_seq1(c, nest), &oc[d]);
    if (!nest)
        return lower_oom(c);
    lower_parallel(nest);
    oc[last] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, tile, lir_int(M, TRANSPOSE_TILE)), lane);
    kiln_status st = transpose_index(c, oc, ic, NULL, NULL);
    if (st)
        return st;
    lir_stmt *store = lir_store(M, c->out[0], lower_index(c, out, oc, rank), lir_cast(M, x->dtype, lower_read(c, 0, ic)));
    if (n % TRANSPOSE_TILE) /* the last tile's lanes past the row: masked off */
        store = lir_if(M, lir_binary(M, LIR_LT, oc[last], lir_int(M, n)), lower_seq1(c, store), NULL);
    if (!store || !lir_seq_push(M, lane_body, store))
        return lower_oom(c);
    return lower_emit(c, nest);
}

/* Whether index e is k[0] u + k[1] v + (a part that reads neither) for loop variables u
 * and v (var[0], var[1]), e built from loop variables and non-negative constants by +, *,
 * and / or % by a positive constant (a reshape's view of its input's index). Every part is
 * then non-negative, so C's truncating / and % are floor's: (c m + r) / c = m + r / c and
 * (c m + r) % c = r % c for whole m, r >= 0. False where e is not of that form. */
static bool tile_affine(const lir_expr *e, const int var[2], int64_t k[2]) {
    k[0] = k[1] = 0;
    if (e->kind == LIR_CONST)
        return e->i >= 0;
    if (e->kind == LIR_VAR) { /* a transpose's kernel has loop variables alone */
        k[0] = e->var == var[0], k[1] = e->var == var[1];
        return true;
    }
    int64_t a[2], b[2];
    if (e->kind != LIR_BINARY || !tile_affine(e->a, var, a) || !tile_affine(e->b, var, b))
        return false;
    bool a_free = !a[0] && !a[1], b_free = !b[0] && !b[1];
    int64_t c = e->b->kind == LIR_CONST ? e->b->i : 0;
    switch (e->op) {
    case LIR_ADD: k[0] = a[0] + b[0], k[1] = a[1] + b[1]; return true;
    case LIR_MUL: { /* by a constant (>= 0, as every constant here is) the form holds */
        const lir_expr *f = e->b->kind == LIR_CONST ? e->b : e->a->kind == LIR_CONST ? e->a : NULL;
        const int64_t *x = f == e->b ? a : b;
        if (!f) /* other factors only without u and v */
            return a_free && b_free;
        k[0] = x[0] * f->i, k[1] = x[1] * f->i;
        return true;
    }
    case LIR_DIV:
    case LIR_REM:
        if (c <= 0 || a[0] % c || a[1] % c)
            return false;
        if (e->op == LIR_DIV)
            k[0] = a[0] / c, k[1] = a[1] / c;
        return true;
    case LIR_MIN:
    case LIR_MAX: return a_free && b_free;
    default: return false;
    }
}

/* The same transpose in register tiles (LIR_TRANSPOSE) where the elements are 4 or 8 bytes
 * and the input is read by a plain load, one element apart along the input's last axis:
 * w x w tiles of output axis q and the output's last axis (w, the vector's lanes), each w
 * source rows loaded whole and turned over in registers, where the tiled loop above
 * gathers 8 lanes at a time, about 26 cycles each (the Transformer's K^T, 1 MB: 0.11-0.17
 * ms -> 0.04; ConvNeXt-tiny's transposes 2.0 -> 0.8 ms). Partial tiles at the ends of
 * either axis run under lane masks. False, with nothing emitted, where it does not apply. */
static bool transpose_registers(lower_ctx *c, int q, kiln_status *st) {
    const kiln_tensor *out = c->out_type[0];
    int rank = out->rank, last = rank - 1, esize = (int)kiln_dtype_size(out->dtype);
    int w = c->m->vector_bits / (8 * (esize ? esize : 1));
    if ((esize != 4 && esize != 8) || w < 4 || w > 64)
        return false;
    int64_t rows = out->dims[q], cols = out->dims[last];
    int ta_var = lower_var(c, "ta", KILN_I64), tb_var = lower_var(c, "tb", KILN_I64);
    lir_expr *oc[KILN_MAX_RANK], *ic[KILN_MAX_RANK], *ta = lir_var_ref(M, c->k, ta_var), *tb = lir_var_ref(M, c->k, tb_var);
    if (!ta || !tb) {
        *st = lower_oom(c);
        return true;
    }
    /* the read with the tile variables standing for the element's coordinates (the others
     * at 0, which tile_affine takes as it takes them): its strides along both */
    for (int d = 0; d < rank; d++)
        oc[d] = d == q ? ta : d == last ? tb : lir_int(M, 0);
    lir_expr *probe = transpose_index(c, oc, ic, NULL, NULL) ? NULL : lower_read(c, 0, ic);
    int var[2] = {ta_var, tb_var};
    int64_t k[2], dst_stride = 1;
    if (!probe || probe->kind != LIR_LOAD || !tile_affine(probe->a, var, k) || k[0] != 1)
        return false; /* an inlined producer's value, or the input's rows are not along q */
    for (int d = q + 1; d < rank; d++)
        dst_stride *= out->dims[d];
    lir_stmt *body = lir_seq(M);
    lir_stmt *nest = body ? lir_for(M, tb_var, lir_int(M, 0), lir_int(M, (cols + w - 1) / w), body) : NULL;
    nest = nest ? lir_for(M, ta_var, lir_int(M, 0), lir_int(M, (rows + w - 1) / w), lower_seq1(c, nest)) : NULL;
    for (int d = last - 1; nest && d >= 0; d--)
        if (d != q && out->dims[d] == 1)
            oc[d] = lir_int(M, 0);
        else if (d != q)
            nest = lower_loop(c, "i", out->dims[d], lower_seq1(c, nest), &oc[d]);
    /* the tile's first element; whole tiles, and those at the ends of q and of the last axis */
    oc[q] = lir_binary(M, LIR_MUL, ta, lir_int(M, w)), oc[last] = lir_binary(M, LIR_MUL, tb, lir_int(M, w));
    lir_expr *from = nest && !transpose_index(c, oc, ic, NULL, NULL) ? lower_read(c, 0, ic) : NULL;
    lir_expr *to = lower_index(c, out, oc, rank);
    /* tile[i][j]: whole (0) or the end's part (1) along q (i) and the last axis (j) */
    lir_stmt *tile[2][2] = {{NULL}}, *pick[2] = {NULL}, *choice = NULL;
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) {
            int r = (int)(i ? rows % w : rows >= w ? w : 0), n = (int)(j ? cols % w : cols >= w ? w : 0);
            if (r && n && !(tile[i][j] = lir_transpose(M, c->out[0], to, dst_stride, from, k[1], r, n, w))) {
                *st = lower_oom(c);
                return true;
            }
        }
    for (int i = 0; i < 2; i++)
        pick[i] = tile[i][0] && tile[i][1] ? lir_if(M, lir_binary(M, LIR_LT, tb, lir_int(M, cols / w)),
                                                    lower_seq1(c, tile[i][0]), lower_seq1(c, tile[i][1]))
                                           : tile[i][0] ? tile[i][0] : tile[i][1];
    choice = pick[0] && pick[1] ? lir_if(M, lir_binary(M, LIR_LT, ta, lir_int(M, rows / w)), lower_seq1(c, pick[0]),
                                         lower_seq1(c, pick[1]))
                                : pick[0] ? pick[0] : pick[1];
    if (!nest || !choice || !lir_seq_push(M, body, choice)) {
        *st = lower_oom(c);
        return true;
    }
    lower_parallel(nest);
    *st = lower_emit(c, nest);
    return true;
}

kiln_status lower_transpose(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    int rank = x->rank, q = -1;
    lir_expr *oc[KILN_MAX_RANK], *ic[KILN_MAX_RANK];
    for (int d = 0; d < rank; d++) /* q: which output axis the input's last one became */
        oc[d] = lir_int(M, d);
    if (rank >= 2 && transpose_index(c, oc, ic, NULL, NULL) == KILN_OK && ic[rank - 1])
        q = (int)ic[rank - 1]->i;
    kiln_status st = KILN_OK;
    if (q >= 0 && q != rank - 1 && c->out_type[0]->dims[rank - 1] >= TRANSPOSE_TILE / 2 && x->dims[rank - 1] >= 4)
        return transpose_registers(c, q, &st) ? st : transpose_tiled(c, q);
    return lower_gather_map(c, transpose_index, NULL, NULL);
}

static kiln_status expand_index(lower_ctx *c, lir_expr **oc, lir_expr **ic, lir_expr **pad, void *arg) {
    (void)arg, (void)pad;
    int rank = c->in_type[0]->rank, out_rank = c->out_type[0]->rank;
    for (int d = 0; d < rank; d++)
        ic[d] = oc[d + out_rank - rank]; /* lower_index reads size-1 dims at 0 */
    return KILN_OK;
}
kiln_status lower_expand(lower_ctx *c) { return lower_gather_map(c, expand_index, NULL, NULL); }

static kiln_status tile_index(lower_ctx *c, lir_expr **oc, lir_expr **ic, lir_expr **pad, void *arg) {
    (void)arg, (void)pad;
    for (int d = 0; d < c->in_type[0]->rank; d++)
        ic[d] = lir_binary(M, LIR_REM, oc[d], i64(c, c->in_type[0]->dims[d]));
    return KILN_OK;
}
kiln_status lower_tile(lower_ctx *c) { return lower_gather_map(c, tile_index, NULL, NULL); }

static kiln_status slice_index(lower_ctx *c, lir_expr **oc, lir_expr **ic, lir_expr **pad, void *arg) {
    (void)pad;
    const shape_slice_spec *s = arg;
    for (int d = 0; d < c->in_type[0]->rank; d++)
        ic[d] = lir_binary(M, LIR_ADD, i64(c, s->start[d]), lir_binary(M, LIR_MUL, oc[d], i64(c, s->step[d])));
    return KILN_OK;
}
static kiln_status slice_spec(lower_ctx *c, shape_slice_spec *spec) {
    shape_ctx s = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    bool known;
    kiln_status st = shape_slice_params(&s, spec, &known);
    if (!st && !known)
        return lower_error(c, KILN_ERR_UNSUPPORTED, "Slice's starts, ends, axes and steps must be constants to compile");
    return st;
}
kiln_status lower_slice(lower_ctx *c) {
    shape_slice_spec spec;
    kiln_status st = slice_spec(c, &spec);
    return st ? st : lower_gather_map(c, slice_index, &spec, NULL);
}

/* ---- views ------------------------------------------------------------------------------
 * Transpose, Slice and the reshapes, inlined into an element reader (fuse.c): the value at
 * output coordinates is one input element at coordinates affine in them, so a reader
 * computes the address instead of a kernel copying the data. Only where the output's last
 * axis stays the input's contiguous one (a Transpose that keeps it, a Slice of step 1 on
 * it): vector loops keep consecutive loads. A reshape keeps the elements' order: of a
 * stored input, the output's flat index is the input's; of an inlined one, the input's
 * coordinates are needed (reshape_coords). */
bool lower_is_reshape(ir_op op) {
    return op == IR_OP_RESHAPE || op == IR_OP_FLATTEN || op == IR_OP_SQUEEZE || op == IR_OP_UNSQUEEZE;
}

/* Of an inlined input, a reshape's input coordinates from the output's: with F the flat
 * index of the output's coordinates but the last, and the output's last axis (size Lo)
 * dividing the input's (Li = m Lo), the input's last coordinate is (F % m) Lo + the
 * output's last, and the others F / m in the input's other axes: divisions of outer loop
 * indices only, the innermost one stays a unit stride. False where Lo does not divide Li
 * (a merge of the last axes). */
static bool reshape_coords(lower_ctx *c, const kiln_tensor *x, const kiln_tensor *out, lir_expr **oc, lir_expr **ic) {
    int li = x->rank - 1, lo = out->rank - 1;
    if (li < 0 || lo < 0 || out->dims[lo] <= 0 || x->dims[li] % out->dims[lo])
        return false;
    if (!c)
        return true;
    int64_t m = x->dims[li] / out->dims[lo];
    kiln_tensor outer = {.rank = lo};
    memcpy(outer.dims, out->dims, sizeof(int64_t) * (size_t)lo);
    lir_expr *f = lower_index(c, &outer, oc, lo), *g;
    ic[li] = lir_binary(M, LIR_ADD, lir_binary(M, LIR_MUL, lir_binary(M, LIR_REM, f, i64(c, m)), i64(c, out->dims[lo])), oc[lo]);
    g = lir_binary(M, LIR_DIV, f, i64(c, m));
    for (int k = li - 1; k >= 0; k--) {
        ic[k] = k ? lir_binary(M, LIR_REM, g, i64(c, x->dims[k])) : g;
        g = lir_binary(M, LIR_DIV, g, i64(c, x->dims[k]));
    }
    return true;
}

bool lower_view(const ir_node *n) {
    const kiln_tensor *x = n->input_count ? lower_value_type(n->inputs[0]) : NULL;
    if (!x || n->output_count != 1 || !x->rank)
        return false;
    int last = x->rank - 1;
    if (n->op == IR_OP_TRANSPOSE) {
        const ir_attr *a = ir_node_attr(n, "perm");
        return a && a->count == x->rank && (a->ints[last] == last || a->ints[last] == -1);
    }
    if (n->op == IR_OP_SLICE) {
        const kiln_tensor *in[IR_VARIADIC];
        for (int j = 0; j < n->input_count && j < IR_VARIADIC; j++)
            in[j] = lower_value_type(n->inputs[j]);
        kiln_diag d = {0};
        shape_ctx s = {n, in, n->input_count, NULL, 0, &d};
        shape_slice_spec spec;
        bool known;
        return shape_slice_params(&s, &spec, &known) == KILN_OK && known && spec.step[last] == 1;
    }
    return lower_is_reshape(n->op);
}

bool lower_view_reads_elements(const ir_node *n) {
    return !lower_is_reshape(n->op) || reshape_coords(NULL, lower_value_type(n->inputs[0]), &n->outputs[0]->type, NULL, NULL);
}

lir_expr *lower_view_value(lower_ctx *c, bool input_inlined, lir_expr **coords) {
    const kiln_tensor *x = c->in_type[0], *out = c->out_type[0];
    lir_expr *oc[KILN_MAX_RANK], *ic[KILN_MAX_RANK];
    for (int d = 0; d < out->rank; d++) /* a reader broadcasting the view passes any index on its size-1 axes */
        oc[d] = out->dims[d] == 1 ? i64(c, 0) : coords[d];
    shape_slice_spec spec;
    if (lower_is_reshape(c->node->op) && !input_inlined) /* the same flat index */
        return lir_cast(M, lower_compute_type(x->dtype), lir_load(M, c->in[0], lower_index(c, out, oc, out->rank)));
    if (lower_is_reshape(c->node->op)) {
        if (!reshape_coords(c, x, out, oc, ic))
            return NULL; /* fuse.c inlines only reshapes into such a view, read flat (view_value, lower.c) */
    } else if (c->node->op == IR_OP_SLICE ? slice_spec(c, &spec) || slice_index(c, oc, ic, NULL, &spec)
                                          : transpose_index(c, oc, ic, NULL, NULL)) {
        return NULL;
    }
    return lower_read(c, 0, ic);
}

typedef struct pad_spec {
    int64_t begin[KILN_MAX_RANK];
    const char *mode;
} pad_spec;

/* Maps padded coordinates back into the input: constant mode marks them outside (and
 * clamps so the load stays in bounds); edge clamps; wrap takes the remainder; reflect
 * folds at the borders with period 2 * (dim - 1). */
static kiln_status pad_index(lower_ctx *c, lir_expr **oc, lir_expr **ic, lir_expr **outside, void *arg) {
    const pad_spec *p = arg;
    for (int d = 0; d < c->in_type[0]->rank; d++) {
        int64_t dim = c->in_type[0]->dims[d];
        lir_expr *q = lir_binary(M, LIR_SUB, oc[d], i64(c, p->begin[d]));
        lir_expr *clamped = lir_binary(M, LIR_MIN, lir_binary(M, LIR_MAX, q, i64(c, 0)), i64(c, dim - 1));
        if (!strcmp(p->mode, "constant") || !strcmp(p->mode, "edge")) {
            if (!strcmp(p->mode, "constant")) {
                lir_expr *out = lir_binary(M, LIR_OR, lir_binary(M, LIR_LT, q, i64(c, 0)), lir_binary(M, LIR_GE, q, i64(c, dim)));
                *outside = *outside ? lir_binary(M, LIR_OR, *outside, out) : out;
            }
            ic[d] = clamped;
        } else {
            int64_t period = !strcmp(p->mode, "wrap") ? dim : dim > 1 ? 2 * (dim - 1) : 1;
            lir_expr *r = lir_binary(M, LIR_REM, lir_binary(M, LIR_ADD, lir_binary(M, LIR_REM, q, i64(c, period)), i64(c, period)), i64(c, period));
            ic[d] = !strcmp(p->mode, "wrap") ? r : lir_select(M, lir_binary(M, LIR_LT, r, i64(c, dim)), r, lir_binary(M, LIR_SUB, i64(c, period), r));
        }
    }
    return KILN_OK;
}
kiln_status lower_pad(lower_ctx *c) {
    shape_ctx s = {c->node, c->in_type, c->node->input_count, NULL, 0, c->d};
    pad_spec p = {.mode = ir_attr_string(c->node, "mode")};
    int64_t end[KILN_MAX_RANK];
    bool known;
    kiln_status st = shape_pad_amounts(&s, p.begin, end, &known);
    if (st)
        return st;
    if (!known)
        return lower_error(c, KILN_ERR_UNSUPPORTED, "Pad's pads must be constants to compile");
    lir_expr *value = c->node->input_count > 2 && c->in[2] ? lir_load(M, c->in[2], i64(c, 0))
                                                          : lir_const(M, c->out_type[0]->dtype, 0);
    if (ir_type_count(c->in_type[0]) == 0) /* nothing to read: every element is padding */
        return lower_fill(c, value);
    return lower_gather_map(c, pad_index, &p, value);
}

/* Concat: one nest per input, writing at its offset along the axis. */
kiln_status lower_concat(lower_ctx *c) {
    const kiln_tensor *out = c->out_type[0];
    int axis = (int)ir_attr_int(c->node, "axis");
    axis = axis < 0 ? axis + out->rank : axis;
    int64_t offset = 0;
    for (int i = 0; i < c->node->input_count; i++) {
        const kiln_tensor *x = c->in_type[i];
        lir_expr *xc[KILN_MAX_RANK], *oc[KILN_MAX_RANK];
        lir_stmt *inner, *outer;
        kiln_status st = lower_nest(c, x, xc, &inner, &outer);
        if (st)
            return st;
        for (int d = 0; d < out->rank; d++)
            oc[d] = d == axis ? lir_binary(M, LIR_ADD, xc[d], i64(c, offset)) : xc[d];
        lir_expr *v = lir_load(M, c->in[i], lower_index(c, x, xc, x->rank));
        if (!lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank), v)) ||
            (st = lower_emit(c, outer)))
            return st ? st : lower_oom(c);
        offset += x->dims[axis];
    }
    return KILN_OK;
}

lir_expr *lower_checked_index(lower_ctx *c, lir_stmt *inner, lir_expr *raw, int64_t dim) {
    int v = lower_var(c, "index", KILN_I64);
    lir_expr *i = lir_cast(M, KILN_I64, raw);
    lir_expr *norm = lir_select(M, lir_binary(M, LIR_LT, i, i64(c, 0)), lir_binary(M, LIR_ADD, i, i64(c, dim)), i);
    lir_expr *ref = lir_var_ref(M, c->k, v);
    lir_expr *bad = lir_binary(M, LIR_OR, lir_binary(M, LIR_LT, ref, i64(c, 0)), lir_binary(M, LIR_GE, ref, i64(c, dim)));
    char msg[128];
    snprintf(msg, sizeof msg, "an index is out of range [%lld, %lld)", (long long)-dim, (long long)dim);
    if (!lir_seq_push(M, inner, lir_let(M, v, norm)) || !lir_seq_push(M, inner, lir_if(M, bad, lir_fail(M, msg), NULL)))
        return NULL;
    return ref;
}

kiln_status lower_gather(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *idx = c->in_type[1], *out = c->out_type[0];
    int axis = (int)ir_attr_int(c->node, "axis");
    axis = axis < 0 ? axis + x->rank : axis;
    lir_expr *oc[KILN_MAX_RANK], *xc[KILN_MAX_RANK], *jc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, out, oc, &inner, &outer);
    if (st)
        return st;
    for (int d = 0; d < idx->rank; d++) /* out coords: x[:axis] ++ idx[:] ++ x[axis+1:] */
        jc[d] = oc[axis + d];
    lir_expr *raw = lir_load(M, c->in[1], lower_index(c, idx, jc, idx->rank));
    for (int d = 0; d < x->rank; d++)
        xc[d] = d < axis ? oc[d] : d == axis ? NULL : oc[d - 1 + idx->rank];
    if (!(xc[axis] = lower_checked_index(c, inner, raw, x->dims[axis])) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank),
                                          lir_load(M, c->in[0], lower_index(c, x, xc, x->rank)))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

kiln_status lower_gather_elements(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0], *idx = c->in_type[1], *out = c->out_type[0];
    int axis = (int)ir_attr_int(c->node, "axis");
    axis = axis < 0 ? axis + x->rank : axis;
    lir_expr *oc[KILN_MAX_RANK], *xc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, out, oc, &inner, &outer);
    if (st)
        return st;
    lir_expr *raw = lir_load(M, c->in[1], lower_index(c, idx, oc, idx->rank));
    for (int d = 0; d < x->rank; d++)
        xc[d] = oc[d];
    if (!(xc[axis] = lower_checked_index(c, inner, raw, x->dims[axis])) ||
        !lir_seq_push(M, inner, lir_store(M, c->out[0], lower_index(c, out, oc, out->rank),
                                          lir_load(M, c->in[0], lower_index(c, x, xc, x->rank)))))
        return lower_oom(c);
    return lower_emit(c, outer);
}

/* Split: one nest per output, reading at its offset along the axis. */
kiln_status lower_split(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    int axis = (int)ir_attr_int(c->node, "axis");
    axis = axis < 0 ? axis + x->rank : axis;
    int64_t offset = 0;
    for (int k = 0; k < c->node->output_count; k++) {
        const kiln_tensor *out = c->out_type[k];
        lir_expr *oc[KILN_MAX_RANK], *xc[KILN_MAX_RANK];
        lir_stmt *inner, *outer;
        kiln_status st = lower_nest(c, out, oc, &inner, &outer);
        if (st)
            return st;
        for (int d = 0; d < x->rank; d++)
            xc[d] = d == axis ? lir_binary(M, LIR_ADD, oc[d], i64(c, offset)) : oc[d];
        lir_expr *v = lir_load(M, c->in[0], lower_index(c, x, xc, x->rank));
        if (!lir_seq_push(M, inner, lir_store(M, c->out[k], lower_index(c, out, oc, out->rank), v)) ||
            (st = lower_emit(c, outer)))
            return st ? st : lower_oom(c);
        offset += out->dims[axis];
    }
    return KILN_OK;
}

kiln_status lower_trilu(lower_ctx *c) {
    const kiln_tensor *x = c->in_type[0];
    /* k (the diagonal) is read when the kernel runs: it does not change any shape */
    lir_expr *k = c->node->input_count > 1 && c->in[1] ? lir_cast(M, KILN_I64, lir_load(M, c->in[1], i64(c, 0))) : i64(c, 0);
    lir_expr *oc[KILN_MAX_RANK];
    lir_stmt *inner, *outer;
    kiln_status st = lower_nest(c, x, oc, &inner, &outer);
    if (st)
        return st;
    lir_expr *diff = lir_binary(M, LIR_SUB, oc[x->rank - 1], oc[x->rank - 2]); /* col - row */
    lir_expr *keep = ir_attr_int(c->node, "upper") ? lir_binary(M, LIR_GE, diff, k) : lir_binary(M, LIR_LE, diff, k);
    lir_expr *index = lower_index(c, x, oc, x->rank);
    lir_expr *v = lir_select(M, keep, lir_load(M, c->in[0], index), lir_const(M, x->dtype, 0));
    if (!lir_seq_push(M, inner, lir_store(M, c->out[0], index, v)))
        return lower_oom(c);
    return lower_emit(c, outer);
}
