/*
 * interp_tensor.c — reference data movement and shape ops. Most rules map each output
 * element to the input element it copies (by coordinates), moving bytes, so every dtype
 * is handled alike. Indices from data (Gather, GatherElements) are bounds-checked: an
 * out-of-range index is an error naming the node, never an out-of-bounds read.
 */
#include "backend/interp/interp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static kiln_status copy_all(interp_ctx *c) {
    memcpy(c->out[0]->data, c->s.in[0]->data, kiln_tensor_bytes(c->s.in[0]));
    return KILN_OK;
}

kiln_status interp_reshape(interp_ctx *c) { return copy_all(c); }
kiln_status interp_flatten(interp_ctx *c) { return copy_all(c); }
kiln_status interp_squeeze(interp_ctx *c) { return copy_all(c); }
kiln_status interp_unsqueeze(interp_ctx *c) { return copy_all(c); }

kiln_status interp_transpose(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    kiln_tensor *out = c->out[0];
    int rank = x->rank, perm[KILN_MAX_RANK];
    const ir_attr *a = ir_node_attr(c->s.node, "perm");
    for (int d = 0; d < rank; d++)
        perm[d] = a && a->count ? (int)(a->ints[d] < 0 ? a->ints[d] + rank : a->ints[d]) : rank - 1 - d;
    int64_t n = kiln_tensor_count(out), oc[KILN_MAX_RANK], ic[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, oc);
        for (int d = 0; d < rank; d++)
            ic[perm[d]] = oc[d];
        interp_copy_elem(out, i, x, interp_ravel(ic, x));
    }
    return KILN_OK;
}

/* Concat and Split move whole rows: outer = product of dims before the axis. */
kiln_status interp_concat(interp_ctx *c) {
    kiln_tensor *out = c->out[0];
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), out->rank, "axis", &axis);
    int64_t outer, len, inner, offset = 0;
    interp_around_axis(out, axis, &outer, &len, &inner);
    size_t es = kiln_dtype_size(out->dtype);
    for (int k = 0; k < c->s.in_count; k++) {
        const kiln_tensor *x = c->s.in[k];
        int64_t rows = x->dims[axis] * inner;
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)out->data + (size_t)((o * len * inner) + offset) * es,
                   (const char *)x->data + (size_t)(o * rows) * es, (size_t)rows * es);
        offset += rows;
    }
    return KILN_OK;
}

kiln_status interp_split(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), x->rank, "axis", &axis);
    int64_t outer, len, inner, offset = 0;
    interp_around_axis(x, axis, &outer, &len, &inner);
    size_t es = kiln_dtype_size(x->dtype);
    for (int k = 0; k < c->s.out_count; k++) {
        kiln_tensor *out = c->out[k];
        int64_t rows = out->dims[axis] * inner;
        for (int64_t o = 0; o < outer; o++)
            memcpy((char *)out->data + (size_t)(o * rows) * es,
                   (const char *)x->data + (size_t)(o * len * inner + offset) * es,
                   (size_t)rows * es);
        offset += rows;
    }
    return KILN_OK;
}

kiln_status interp_slice(interp_ctx *c) {
    shape_slice_spec s;
    bool known;
    kiln_status st = shape_slice_params(&c->s, &s, &known);
    if (st)
        return st;
    const kiln_tensor *x = c->s.in[0];
    kiln_tensor *out = c->out[0];
    int64_t n = kiln_tensor_count(out), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        for (int d = 0; d < x->rank; d++)
            coord[d] = s.start[d] + coord[d] * s.step[d];
        interp_copy_elem(out, i, x, interp_ravel(coord, x));
    }
    return KILN_OK;
}

/* A data-supplied index, normalized into [0, dim) or reported. */
static kiln_status take_index(interp_ctx *c, const kiln_tensor *idx, int64_t at, int64_t dim,
                              int64_t *out) {
    int64_t v = ir_tensor_get_int(idx, at);
    if (v < -dim || v >= dim)
        return interp_error(c, KILN_ERR_INVALID, "index %lld is out of range [%lld, %lld)",
                            (long long)v, (long long)-dim, (long long)dim);
    *out = v < 0 ? v + dim : v;
    return KILN_OK;
}

kiln_status interp_gather(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *idx = c->s.in[1];
    kiln_tensor *out = c->out[0];
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), x->rank, "axis", &axis);
    int64_t n = kiln_tensor_count(out), oc[KILN_MAX_RANK], ic[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, oc);
        /* out coords: x[:axis] ++ idx[:] ++ x[axis+1:] */
        int64_t ii = 0;
        for (int d = 0; d < idx->rank; d++)
            ii = ii * idx->dims[d] + oc[axis + d];
        for (int d = 0; d < axis; d++)
            ic[d] = oc[d];
        kiln_status st = take_index(c, idx, ii, x->dims[axis], &ic[axis]);
        if (st)
            return st;
        for (int d = axis + 1; d < x->rank; d++)
            ic[d] = oc[d - 1 + idx->rank];
        interp_copy_elem(out, i, x, interp_ravel(ic, x));
    }
    return KILN_OK;
}

kiln_status interp_gather_elements(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *idx = c->s.in[1];
    kiln_tensor *out = c->out[0];
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), x->rank, "axis", &axis);
    int64_t n = kiln_tensor_count(out), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        kiln_status st = take_index(c, idx, i, x->dims[axis], &coord[axis]);
        if (st)
            return st;
        interp_copy_elem(out, i, x, interp_ravel(coord, x));
    }
    return KILN_OK;
}

kiln_status interp_expand(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    kiln_tensor *out = c->out[0];
    int64_t n = kiln_tensor_count(out), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        interp_copy_elem(out, i, x, interp_broadcast_index(x, coord, out->rank));
    }
    return KILN_OK;
}

kiln_status interp_tile(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    kiln_tensor *out = c->out[0];
    int64_t n = kiln_tensor_count(out), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        for (int d = 0; d < x->rank; d++)
            coord[d] %= x->dims[d];
        interp_copy_elem(out, i, x, interp_ravel(coord, x));
    }
    return KILN_OK;
}

kiln_status interp_pad(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    kiln_tensor *out = c->out[0];
    int64_t begin[KILN_MAX_RANK], end[KILN_MAX_RANK];
    bool known;
    kiln_status st = shape_pad_amounts(&c->s, begin, end, &known);
    if (st)
        return st;
    const char *mode = ir_attr_string(c->s.node, "mode");
    bool constant = !strcmp(mode, "constant");
    const kiln_tensor *value = c->s.in_count > 2 ? c->s.in[2] : NULL;
    int64_t n = kiln_tensor_count(out), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        bool inside = true;
        for (int d = 0; d < x->rank; d++) {
            int64_t p = coord[d] - begin[d];
            if (p < 0 || p >= x->dims[d]) {
                if (constant)
                    inside = false;
                else
                    p = shape_pad_source(p, x->dims[d], mode);
            }
            coord[d] = p;
        }
        if (inside)
            interp_copy_elem(out, i, x, interp_ravel(coord, x));
        else if (value)
            interp_copy_elem(out, i, value, 0);
        else
            ir_tensor_set_int(out, i, 0);
    }
    return KILN_OK;
}

kiln_status interp_trilu(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    kiln_tensor *out = c->out[0];
    int64_t k = c->s.in_count > 1 && c->s.in[1] ? ir_tensor_get_int(c->s.in[1], 0) : 0;
    bool upper = ir_attr_int(c->s.node, "upper");
    int64_t n = kiln_tensor_count(out), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        int64_t row = coord[x->rank - 2], col = coord[x->rank - 1];
        bool keep = upper ? col - row >= k : col - row <= k;
        if (keep)
            interp_copy_elem(out, i, x, i);
        else
            ir_tensor_set_int(out, i, 0);
    }
    return KILN_OK;
}

kiln_status interp_cumsum(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    int axis;
    kiln_status st = shape_axis(&c->s, ir_tensor_get_int(c->s.in[1], 0), x->rank, "axis", &axis);
    if (st)
        return st;
    bool exclusive = ir_attr_int(c->s.node, "exclusive"), reverse = ir_attr_int(c->s.node, "reverse");
    bool ints = !ir_dtype_is_float(x->dtype);
    int64_t outer, len, inner;
    interp_around_axis(x, axis, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            double acc = 0;
            int64_t iacc = 0;
            for (int64_t s = 0; s < len; s++) {
                int64_t i = reverse ? len - 1 - s : s, at = (o * len + i) * inner + in;
                if (exclusive) {
                    ints ? ir_tensor_set_int(c->out[0], at, iacc) : ir_tensor_set(c->out[0], at, acc);
                }
                acc += ir_tensor_get(x, at);
                iacc += ir_tensor_get_int(x, at);
                if (!exclusive) {
                    ints ? ir_tensor_set_int(c->out[0], at, iacc) : ir_tensor_set(c->out[0], at, acc);
                }
            }
        }
    return KILN_OK;
}

typedef struct ranked {
    double v;
    int64_t i;
} ranked;

static int by_value_desc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* ties: the lower index first, as ONNX says */
}

static int by_value_asc(const void *a, const void *b) {
    const ranked *x = a, *y = b;
    if (x->v != y->v)
        return x->v < y->v ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

kiln_status interp_topk(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), x->rank, "axis", &axis);
    int64_t k = ir_tensor_get_int(c->s.in[1], 0), outer, len, inner;
    interp_around_axis(x, axis, &outer, &len, &inner);
    ranked *row = malloc(sizeof(ranked) * (size_t)(len + 1));
    if (!row)
        return interp_error(c, KILN_ERR_OOM, "out of memory");
    bool largest = ir_attr_int(c->s.node, "largest");
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            for (int64_t i = 0; i < len; i++)
                row[i] = (ranked){ir_tensor_get(x, (o * len + i) * inner + in), i};
            qsort(row, (size_t)len, sizeof *row, largest ? by_value_desc : by_value_asc);
            for (int64_t j = 0; j < k; j++) {
                int64_t at = (o * k + j) * inner + in;
                interp_copy_elem(c->out[0], at, x, (o * len + row[j].i) * inner + in);
                ir_tensor_set_int(c->out[1], at, row[j].i);
            }
        }
    free(row);
    return KILN_OK;
}

kiln_status interp_shape(interp_ctx *c) {
    int64_t start = ir_attr_int(c->s.node, "start"), rank = c->s.in[0]->rank;
    start = start < 0 ? start + rank : start;
    start = start < 0 ? 0 : start > rank ? rank : start;
    for (int64_t i = 0; i < c->out[0]->dims[0]; i++)
        ir_tensor_set_int(c->out[0], i, c->s.in[0]->dims[start + i]);
    return KILN_OK;
}

kiln_status interp_size(interp_ctx *c) {
    ir_tensor_set_int(c->out[0], 0, kiln_tensor_count(c->s.in[0]));
    return KILN_OK;
}

kiln_status interp_constant_of_shape(interp_ctx *c) {
    const ir_attr *v = ir_node_attr(c->s.node, "value");
    int64_t n = kiln_tensor_count(c->out[0]);
    for (int64_t i = 0; i < n && v; i++)
        interp_copy_elem(c->out[0], i, v->t, 0);
    return KILN_OK; /* without a value: zeros, as allocated */
}

kiln_status interp_range(interp_ctx *c) {
    const kiln_tensor *s = c->s.in[0], *dl = c->s.in[2];
    int64_t n = c->out[0]->dims[0];
    for (int64_t i = 0; i < n; i++) {
        if (ir_dtype_is_float(s->dtype))
            ir_tensor_set(c->out[0], i, ir_tensor_get(s, 0) + (double)i * ir_tensor_get(dl, 0));
        else
            ir_tensor_set_int(c->out[0], i, ir_tensor_get_int(s, 0) + i * ir_tensor_get_int(dl, 0));
    }
    return KILN_OK;
}

kiln_status interp_constant(interp_ctx *c) {
    const ir_node *n = c->s.node;
    const ir_attr *a;
    kiln_tensor *out = c->out[0];
    if ((a = ir_node_attr(n, "value")))
        memcpy(out->data, a->t->data, kiln_tensor_bytes(a->t));
    else if ((a = ir_node_attr(n, "value_floats")))
        for (int i = 0; i < a->count; i++)
            ir_tensor_set(out, i, a->floats[i]);
    else if ((a = ir_node_attr(n, "value_ints")))
        for (int i = 0; i < a->count; i++)
            ir_tensor_set_int(out, i, a->ints[i]);
    else if ((a = ir_node_attr(n, "value_float")))
        ir_tensor_set(out, 0, a->f);
    else
        ir_tensor_set_int(out, 0, ir_attr_int(n, "value_int"));
    return KILN_OK;
}
