/*
 * shape_tensor.c — shape rules of the data-movement and shape ops: Reshape, Flatten,
 * Transpose, (Un)Squeeze, Concat, Split, Slice, Gather(Elements), Expand, Tile, Pad,
 * Trilu, CumSum, TopK, Shape, Size, ConstantOfShape, Range, Constant. Many of them read
 * a small integer input (a shape, axes, pads); when its value is not known the output
 * gets unknown dims, and constant folding usually makes it known first.
 */
#include "passes/shape.h"

#include <math.h>
#include <string.h>

/* Product of dims [from, to): IR_DIM_BATCH if that is the batch dim times known 1s...,
 * IR_DIM_UNKNOWN if any other dim is symbolic. */
static int64_t dim_product(const kiln_tensor *t, int from, int to) {
    int64_t p = 1;
    int symbolic = 0;
    for (int d = from; d < to; d++) {
        if (t->dims[d] < 0)
            symbolic = t->dims[d] == IR_DIM_BATCH && !symbolic ? 1 : 2;
        else
            p *= t->dims[d];
    }
    if (symbolic == 2 || (symbolic == 1 && p != 1))
        return IR_DIM_UNKNOWN;
    return symbolic ? IR_DIM_BATCH : p;
}

kiln_status shape_reshape(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t shape[KILN_MAX_RANK];
    int n;
    bool known;
    kiln_status st = shape_ints(c, 1, shape, KILN_MAX_RANK, &n, &known);
    if (st)
        return st;
    if (!known) {
        shape_set(c, 0, x->dtype, c->in[1]->rank == 1 && c->in[1]->dims[0] >= 0 ?
                  (int)c->in[1]->dims[0] : -1, NULL);
        if (c->out[0].rank > KILN_MAX_RANK)
            return shape_error(c, "target rank above %d", KILN_MAX_RANK);
        return KILN_OK;
    }
    bool allowzero = ir_attr_int(c->node, "allowzero");
    int infer = -1;
    int64_t known_out = 1;
    for (int d = 0; d < n; d++) {
        if (shape[d] == 0 && !allowzero) {
            if (d >= x->rank)
                return shape_error(c, "shape[%d] = 0 copies a dimension the input lacks", d);
            shape[d] = x->dims[d];
        } else if (shape[d] == -1) {
            if (infer >= 0)
                return shape_error(c, "shape has more than one -1");
            infer = d;
            continue;
        } else if (shape[d] < -1) {
            return shape_error(c, "shape[%d] = %lld is invalid", d, (long long)shape[d]);
        }
        if (shape[d] >= 0 && !kiln_mul_ok(known_out, shape[d], &known_out))
            return shape_error(c, "target shape overflows");
    }
    if (infer >= 0 && allowzero && known_out == 0)
        return shape_error(c, "cannot infer -1 next to a 0 dimension with allowzero");
    int64_t in_count = dim_product(x, 0, x->rank);
    bool out_symbolic = false;
    for (int d = 0; d < n; d++)
        out_symbolic |= d != infer && shape[d] < 0;
    if (in_count >= 0 && !out_symbolic) {
        if (infer >= 0) {
            if (known_out == 0 || in_count % known_out)
                return shape_error(c, "cannot reshape %lld elements: -1 does not divide evenly",
                                   (long long)in_count);
            shape[infer] = in_count / known_out;
        } else if (known_out != in_count) {
            return shape_error(c, "cannot reshape %lld elements into %lld", (long long)in_count,
                               (long long)known_out);
        }
    } else if (infer >= 0) {
        /* [N, a, b] -> [-1, a*b] keeps N when the known parts match */
        int64_t in_known = 1;
        bool batch_only = true;
        for (int d = 0; d < x->rank; d++) {
            if (x->dims[d] == IR_DIM_BATCH)
                continue;
            if (x->dims[d] < 0)
                batch_only = false;
            else
                in_known *= x->dims[d];
        }
        shape[infer] = batch_only && !out_symbolic && in_known == known_out ? IR_DIM_BATCH
                                                                             : IR_DIM_UNKNOWN;
    }
    shape_set(c, 0, x->dtype, n, shape);
    return KILN_OK;
}

kiln_status shape_flatten(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t axis = ir_attr_int(c->node, "axis");
    if (axis < -x->rank || axis > x->rank)
        return shape_error(c, "axis %lld is out of range for rank %d", (long long)axis, x->rank);
    int a = (int)(axis < 0 ? axis + x->rank : axis);
    int64_t dims[2] = {dim_product(x, 0, a), dim_product(x, a, x->rank)};
    shape_set(c, 0, x->dtype, 2, dims);
    return KILN_OK;
}

/* The permutation of Transpose: the attribute, or reversed axes. */
static kiln_status transpose_perm(shape_ctx *c, int *perm) {
    int rank = c->in[0]->rank;
    const ir_attr *a = ir_node_attr(c->node, "perm");
    if (!a || (a->count == 0 && rank != 0)) {
        for (int d = 0; d < rank; d++)
            perm[d] = rank - 1 - d;
        return KILN_OK;
    }
    if (a->count != rank)
        return shape_error(c, "attribute 'perm' has %d values for rank %d", a->count, rank);
    bool seen[KILN_MAX_RANK] = {0};
    for (int d = 0; d < rank; d++) {
        int p;
        kiln_status st = shape_axis(c, a->ints[d], rank, "perm entry", &p);
        if (st)
            return st;
        if (seen[p])
            return shape_error(c, "attribute 'perm' is not a permutation");
        seen[p] = true;
        perm[d] = p;
    }
    return KILN_OK;
}

kiln_status shape_transpose(shape_ctx *c) {
    int perm[KILN_MAX_RANK];
    kiln_status st = transpose_perm(c, perm);
    if (st)
        return st;
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < c->in[0]->rank; d++)
        dims[d] = c->in[0]->dims[perm[d]];
    shape_set(c, 0, c->in[0]->dtype, c->in[0]->rank, dims);
    return KILN_OK;
}

/* Axes of (Un)Squeeze from input 1 or the attribute. */
static kiln_status squeeze_axes(shape_ctx *c, int64_t *axes, int *n, bool *known) {
    if (c->in_count > 1 && c->in[1])
        return shape_ints(c, 1, axes, KILN_MAX_RANK, n, known);
    const ir_attr *a = ir_node_attr(c->node, "axes");
    *known = true;
    *n = a ? a->count : 0;
    if (*n > KILN_MAX_RANK)
        return shape_error(c, "too many axes");
    if (*n)
        memcpy(axes, a->ints, sizeof(int64_t) * (size_t)*n);
    return KILN_OK;
}

kiln_status shape_squeeze(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t axes[KILN_MAX_RANK];
    int n;
    bool known, drop[KILN_MAX_RANK] = {0};
    kiln_status st = squeeze_axes(c, axes, &n, &known);
    if (st || !known) {
        if (!st)
            shape_set(c, 0, x->dtype, -1, NULL);
        return st;
    }
    for (int k = 0; k < n; k++) {
        int axis;
        if ((st = shape_axis(c, axes[k], x->rank, "axis", &axis)))
            return st;
        if (x->dims[axis] >= 0 && x->dims[axis] != 1)
            return shape_error(c, "cannot squeeze axis %d of size %lld", axis,
                               (long long)x->dims[axis]);
        drop[axis] = true;
    }
    int64_t dims[KILN_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < x->rank; d++)
        if (!(n ? drop[d] : x->dims[d] == 1))
            dims[rank++] = x->dims[d];
    shape_set(c, 0, x->dtype, rank, dims);
    return KILN_OK;
}

kiln_status shape_unsqueeze(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t axes[KILN_MAX_RANK];
    int n;
    bool known, add[KILN_MAX_RANK] = {0};
    kiln_status st = squeeze_axes(c, axes, &n, &known);
    if (st || !known) {
        if (!st)
            shape_set(c, 0, x->dtype, -1, NULL);
        return st;
    }
    int rank = x->rank + n;
    if (rank > KILN_MAX_RANK)
        return shape_error(c, "result rank %d above %d", rank, KILN_MAX_RANK);
    for (int k = 0; k < n; k++) {
        int axis;
        if ((st = shape_axis(c, axes[k], rank, "axis", &axis)))
            return st;
        if (add[axis])
            return shape_error(c, "axis %d is repeated", axis);
        add[axis] = true;
    }
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0, s = 0; d < rank; d++)
        dims[d] = add[d] ? 1 : x->dims[s++];
    shape_set(c, 0, x->dtype, rank, dims);
    return KILN_OK;
}

kiln_status shape_concat(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int axis;
    kiln_status st = shape_axis(c, ir_attr_int(c->node, "axis"), x->rank, "axis", &axis);
    if (st)
        return st;
    if (x->rank == 0)
        return shape_error(c, "cannot concatenate scalars");
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    for (int i = 1; i < c->in_count; i++) {
        const kiln_tensor *t = c->in[i];
        if ((st = shape_same_dtype(c, 0, i)))
            return st;
        if (t->rank != x->rank)
            return shape_error(c, "input %d has rank %d, input 0 has %d", i, t->rank, x->rank);
        for (int d = 0; d < x->rank; d++) {
            if (d == axis && dims[d] >= 0 && t->dims[d] >= 0) {
                if (__builtin_add_overflow(dims[d], t->dims[d], &dims[d]))
                    return shape_error(c, "the concatenated axis overflows");
            } else if (d == axis)
                dims[d] = IR_DIM_UNKNOWN;
            else if (dims[d] >= 0 && t->dims[d] >= 0 && dims[d] != t->dims[d])
                return shape_error(c, "input %d differs at axis %d: %lld vs %lld", i, d,
                                   (long long)t->dims[d], (long long)dims[d]);
        }
    }
    shape_set(c, 0, x->dtype, x->rank, dims);
    return KILN_OK;
}

kiln_status shape_split(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int axis;
    bool known;
    int64_t sizes[4096];
    kiln_status st;
    if ((st = shape_axis(c, ir_attr_int(c->node, "axis"), x->rank, "axis", &axis)))
        return st;
    if (c->out_count > ARRAY_LEN(sizes))
        return shape_error(c, "too many outputs");
    if ((st = shape_split_sizes(c, axis, sizes, &known)))
        return st;
    for (int i = 0; i < c->out_count; i++) {
        shape_set(c, i, x->dtype, x->rank, x->dims);
        c->out[i].dims[axis] = known ? sizes[i] : IR_DIM_UNKNOWN;
    }
    return KILN_OK;
}

kiln_status shape_slice(shape_ctx *c) {
    shape_slice_spec s;
    bool known;
    kiln_status st = shape_slice_params(c, &s, &known);
    if (st)
        return st;
    shape_set(c, 0, c->in[0]->dtype, c->in[0]->rank, known ? s.count : NULL);
    return KILN_OK;
}

kiln_status shape_gather(shape_ctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    int axis;
    kiln_status st;
    if ((st = shape_require(c, 1, shape_is_index, "i32 or i64")) ||
        (st = shape_axis(c, ir_attr_int(c->node, "axis"), x->rank, "axis", &axis)))
        return st;
    if (x->rank == 0)
        return shape_error(c, "data must have rank >= 1");
    int rank = x->rank - 1 + idx->rank;
    if (rank > KILN_MAX_RANK)
        return shape_error(c, "result rank %d above %d", rank, KILN_MAX_RANK);
    int64_t dims[KILN_MAX_RANK];
    int r = 0;
    for (int d = 0; d < axis; d++)
        dims[r++] = x->dims[d];
    for (int d = 0; d < idx->rank; d++)
        dims[r++] = idx->dims[d];
    for (int d = axis + 1; d < x->rank; d++)
        dims[r++] = x->dims[d];
    shape_set(c, 0, x->dtype, rank, dims);
    return KILN_OK;
}

kiln_status shape_gather_elements(shape_ctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    int axis;
    kiln_status st;
    if ((st = shape_require(c, 1, shape_is_index, "i32 or i64")) ||
        (st = shape_axis(c, ir_attr_int(c->node, "axis"), x->rank, "axis", &axis)))
        return st;
    if (idx->rank != x->rank || x->rank == 0)
        return shape_error(c, "indices must have the data's rank (%d), got %d", x->rank, idx->rank);
    for (int d = 0; d < x->rank; d++)
        if (d != axis && idx->dims[d] >= 0 && x->dims[d] >= 0 && idx->dims[d] > x->dims[d])
            return shape_error(c, "indices dimension %d (%lld) exceeds the data's (%lld)", d,
                               (long long)idx->dims[d], (long long)x->dims[d]);
    shape_set(c, 0, x->dtype, idx->rank, idx->dims);
    return KILN_OK;
}

kiln_status shape_expand(shape_ctx *c) {
    kiln_tensor target = {0};
    int n;
    bool known;
    kiln_status st = shape_ints(c, 1, target.dims, KILN_MAX_RANK, &n, &known);
    if (st)
        return st;
    if (!known) {
        shape_set(c, 0, c->in[0]->dtype, -1, NULL);
        return KILN_OK;
    }
    target.rank = n;
    for (int d = 0; d < n; d++)
        if (target.dims[d] < 0)
            return shape_error(c, "shape[%d] = %lld is negative", d, (long long)target.dims[d]);
    kiln_tensor out;
    if ((st = shape_broadcast(c, c->in[0], &target, &out)))
        return st;
    shape_set(c, 0, c->in[0]->dtype, out.rank, out.dims);
    return KILN_OK;
}

kiln_status shape_tile(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t reps[KILN_MAX_RANK], dims[KILN_MAX_RANK];
    int n;
    bool known;
    kiln_status st = shape_ints(c, 1, reps, KILN_MAX_RANK, &n, &known);
    if (st)
        return st;
    if (known && n != x->rank)
        return shape_error(c, "repeats has %d values for rank %d", n, x->rank);
    for (int d = 0; d < x->rank; d++) {
        if (known && reps[d] < 0)
            return shape_error(c, "repeats[%d] is negative", d);
        dims[d] = !known || x->dims[d] < 0 ? IR_DIM_UNKNOWN : 0;
        if (dims[d] == 0 && !kiln_mul_ok(x->dims[d], reps[d], &dims[d]))
            return shape_error(c, "tiled dimension %d overflows", d);
    }
    shape_set(c, 0, x->dtype, x->rank, dims);
    return KILN_OK;
}

kiln_status shape_pad(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int64_t begin[KILN_MAX_RANK], end[KILN_MAX_RANK], dims[KILN_MAX_RANK];
    bool known;
    const char *mode = ir_attr_string(c->node, "mode");
    if (strcmp(mode, "constant") && strcmp(mode, "reflect") && strcmp(mode, "edge") &&
        strcmp(mode, "wrap"))
        return shape_error(c, "attribute 'mode': unknown value '%s'", mode);
    kiln_status st = shape_pad_amounts(c, begin, end, &known);
    if (st)
        return st;
    if (c->in_count > 2 && c->in[2] && ((st = shape_same_dtype(c, 0, 2)) || ir_type_count(c->in[2]) != 1))
        return st ? st : shape_error(c, "constant_value must be a single value");
    for (int d = 0; d < x->rank; d++) {
        dims[d] = IR_DIM_UNKNOWN;
        if (known && x->dims[d] >= 0 &&
            (__builtin_add_overflow(x->dims[d], begin[d], &dims[d]) || __builtin_add_overflow(dims[d], end[d], &dims[d])))
            return shape_error(c, "pads of axis %d overflow", d);
        if (known && x->dims[d] >= 0 && dims[d] < 0)
            return shape_error(c, "pads crop axis %d below zero", d);
        if (known && strcmp(mode, "constant") && x->dims[d] == 0 && (begin[d] || end[d]))
            return shape_error(c, "cannot pad empty axis %d in %s mode", d, mode);
        if (known && !strcmp(mode, "reflect") && x->dims[d] >= 0 &&
            (begin[d] >= x->dims[d] || end[d] >= x->dims[d]) && (begin[d] > 0 || end[d] > 0))
            return shape_error(c, "reflect pads must be smaller than the axis (%d)", d);
    }
    shape_set(c, 0, x->dtype, x->rank, dims);
    return KILN_OK;
}

kiln_status shape_trilu(shape_ctx *c) {
    if (c->in[0]->rank < 2)
        return shape_error(c, "input must have rank >= 2");
    if (c->in_count > 1 && c->in[1] && (ir_type_count(c->in[1]) != 1 || !shape_is_index(c->in[1]->dtype)))
        return shape_error(c, "k must be a single integer");
    shape_set(c, 0, c->in[0]->dtype, c->in[0]->rank, c->in[0]->dims);
    return KILN_OK;
}

kiln_status shape_cumsum(shape_ctx *c) {
    kiln_status st = shape_require(c, 0, shape_is_numeric, "numeric");
    if (st)
        return st;
    if (ir_type_count(c->in[1]) != 1 || !shape_is_index(c->in[1]->dtype))
        return shape_error(c, "axis must be a single integer");
    const kiln_tensor *a = shape_value(c, 1);
    int axis;
    if (a && (st = shape_axis(c, ir_tensor_get_int(a, 0), c->in[0]->rank, "axis", &axis)))
        return st;
    shape_set(c, 0, c->in[0]->dtype, c->in[0]->rank, c->in[0]->dims);
    return KILN_OK;
}

kiln_status shape_topk(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    int axis, n;
    int64_t k;
    bool known;
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_numeric, "numeric")) ||
        (st = shape_axis(c, ir_attr_int(c->node, "axis"), x->rank, "axis", &axis)) ||
        (st = shape_ints(c, 1, &k, 1, &n, &known)))
        return st;
    int64_t dims[KILN_MAX_RANK];
    memcpy(dims, x->dims, sizeof(int64_t) * (size_t)x->rank);
    dims[axis] = IR_DIM_UNKNOWN;
    if (known) {
        if (n != 1 || k < 0 || (x->dims[axis] >= 0 && k > x->dims[axis]))
            return shape_error(c, "K must be one value in [0, %lld]", (long long)x->dims[axis]);
        dims[axis] = k;
    }
    shape_set(c, 0, x->dtype, x->rank, dims);
    shape_set(c, 1, KILN_I64, x->rank, dims);
    return KILN_OK;
}

/* Shape's [start, end) window over the input's axes, clamped as ONNX says. */
static void shape_window_range(const shape_ctx *c, int64_t *start, int64_t *end) {
    int64_t rank = c->in[0]->rank;
    int64_t s = ir_attr_int(c->node, "start"), e = ir_attr_int(c->node, "end");
    s = s < 0 ? s + rank : s;
    e = e < 0 ? e + rank : e;
    *start = s < 0 ? 0 : s > rank ? rank : s;
    *end = e < 0 ? 0 : e > rank ? rank : e;
    if (*end < *start)
        *end = *start;
}

kiln_status shape_shape(shape_ctx *c) {
    int64_t start, end;
    shape_window_range(c, &start, &end);
    int64_t dims[1] = {end - start};
    shape_set(c, 0, KILN_I64, 1, dims);
    return KILN_OK;
}

kiln_status shape_size(shape_ctx *c) {
    shape_set(c, 0, KILN_I64, 0, NULL);
    return KILN_OK;
}

kiln_status shape_constant_of_shape(shape_ctx *c) {
    const ir_attr *v = ir_node_attr(c->node, "value");
    kiln_dtype dt = v ? v->t->dtype : KILN_F32;
    if (v && ir_type_count(v->t) != 1)
        return shape_error(c, "attribute 'value' must hold one element");
    int64_t dims[KILN_MAX_RANK];
    int n;
    bool known;
    kiln_status st = shape_ints(c, 0, dims, KILN_MAX_RANK, &n, &known);
    if (st)
        return st;
    if (!known) {
        int rank = c->in[0]->rank == 1 && c->in[0]->dims[0] >= 0 ? (int)c->in[0]->dims[0] : -1;
        if (rank > KILN_MAX_RANK)
            return shape_error(c, "rank above %d", KILN_MAX_RANK);
        shape_set(c, 0, dt, rank, NULL);
        return KILN_OK;
    }
    for (int d = 0; d < n; d++)
        if (dims[d] < 0)
            return shape_error(c, "shape[%d] = %lld is negative", d, (long long)dims[d]);
    shape_set(c, 0, dt, n, dims);
    return KILN_OK;
}

kiln_status shape_range(shape_ctx *c) {
    kiln_status st;
    for (int i = 0; i < 3; i++)
        if ((st = shape_same_dtype(c, 0, i)) || ir_type_count(c->in[i]) != 1)
            return st ? st : shape_error(c, "start, limit and delta must be scalars");
    if ((st = shape_require(c, 0, shape_is_numeric, "numeric")))
        return st;
    const kiln_tensor *s = shape_value(c, 0), *l = shape_value(c, 1), *dl = shape_value(c, 2);
    int64_t n = IR_DIM_UNKNOWN;
    if (s && l && dl) {
        double start = ir_tensor_get(s, 0), limit = ir_tensor_get(l, 0), delta = ir_tensor_get(dl, 0);
        if (delta == 0 || !isfinite(start) || !isfinite(limit) || !isfinite(delta))
            return shape_error(c, "delta must be non-zero and the bounds finite");
        double count = ceil((limit - start) / delta);
        if (ir_dtype_is_int(s->dtype)) { /* exact integer arithmetic */
            __int128 a = ir_tensor_get_int(s, 0), b = ir_tensor_get_int(l, 0), d = ir_tensor_get_int(dl, 0);
            __int128 span = b - a; /* in 128 bits: limit - start may not fit in 64 */
            count = (double)(span / d + (span % d != 0 && (span > 0) == (d > 0)));
        }
        if (count > (double)((int64_t)1 << 40))
            return shape_error(c, "range of %g elements is too large", count);
        n = count > 0 ? (int64_t)count : 0;
    }
    shape_set(c, 0, c->in[0]->dtype, 1, &n);
    return KILN_OK;
}

kiln_status shape_constant(shape_ctx *c) {
    static const char *const forms[] = {"value", "value_float", "value_floats", "value_int",
                                        "value_ints"};
    int given = 0;
    for (int i = 0; i < ARRAY_LEN(forms); i++)
        given += ir_node_attr(c->node, forms[i]) != NULL;
    if (given != 1)
        return shape_error(c, "exactly one of value, value_float(s), value_int(s) must be given");
    const ir_attr *a;
    if ((a = ir_node_attr(c->node, "value")))
        shape_set(c, 0, a->t->dtype, a->t->rank, a->t->dims);
    else if ((a = ir_node_attr(c->node, "value_floats")) || (a = ir_node_attr(c->node, "value_ints")))
        shape_set(c, 0, a->kind == IR_ATTR_FLOATS ? KILN_F32 : KILN_I64, 1, (int64_t[]){a->count});
    else
        shape_set(c, 0, ir_node_attr(c->node, "value_float") ? KILN_F32 : KILN_I64, 0, NULL);
    return KILN_OK;
}
