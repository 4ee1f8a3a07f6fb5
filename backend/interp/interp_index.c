/*
 * interp_index.c — reference indexing ops: DepthToSpace, SpaceToDepth, GatherND,
 * ScatterND, ScatterElements, ReverseSequence, EyeLike, OneHot, Compress, NonZero, and
 * Einsum (by enumerating every label assignment: slow, and plainly right). Indices
 * read from data are bounds-checked and reported with the node's name.
 */
#include "backend/interp/interp.h"
#include "passes/einsum.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static kiln_status space_depth(interp_ctx *c, bool to_space) {
    const kiln_tensor *x = c->s.in[0];
    kiln_tensor *out = c->out[0];
    int64_t b = ir_attr_int(c->s.node, "blocksize");
    bool crd = to_space && !strcmp(ir_attr_string(c->s.node, "mode"), "CRD");
    int64_t n = kiln_tensor_count(out), oc[4], ic[4];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, oc);
        if (to_space) { /* out [N, C, H*b, W*b] from in [N, C*b*b, H, W] */
            int64_t hi = oc[2] % b, wi = oc[3] % b, c_out = out->dims[1];
            ic[1] = crd ? (oc[1] * b + hi) * b + wi : (hi * b + wi) * c_out + oc[1];
            ic[2] = oc[2] / b, ic[3] = oc[3] / b;
        } else { /* out [N, C*b*b, H/b, W/b] from in [N, C, H, W] */
            int64_t c_in = x->dims[1], blk = oc[1] / c_in;
            ic[1] = oc[1] % c_in;
            ic[2] = oc[2] * b + blk / b, ic[3] = oc[3] * b + blk % b;
        }
        ic[0] = oc[0];
        interp_copy_elem(out, i, x, interp_ravel(ic, x));
    }
    return KILN_OK;
}

kiln_status interp_depth_to_space(interp_ctx *c) { return space_depth(c, true); }
kiln_status interp_space_to_depth(interp_ctx *c) { return space_depth(c, false); }

/* Where index tuple `t` (of indices [..., k], for batch `b`) points into data: the flat
 * offset of the slice it selects, whose length is the product of data's remaining dims. */
static kiln_status nd_offset(interp_ctx *c, const kiln_tensor *data, const kiln_tensor *idx,
                             int64_t t, int64_t batch_dims, int64_t batch_flat, int64_t *offset) {
    int64_t k = idx->dims[idx->rank - 1], off = batch_flat;
    for (int64_t j = 0; j < k; j++) {
        int64_t dim = data->dims[batch_dims + j], v = ir_tensor_get_int(idx, t * k + j);
        if (v < -dim || v >= dim)
            return interp_error(c, KILN_ERR_INVALID, "index %lld is out of range [%lld, %lld)",
                                (long long)v, (long long)-dim, (long long)dim);
        off = off * dim + (v < 0 ? v + dim : v);
    }
    for (int d = (int)(batch_dims + k); d < data->rank; d++)
        off *= data->dims[d];
    *offset = off;
    return KILN_OK;
}

kiln_status interp_gather_nd(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *idx = c->s.in[1];
    kiln_tensor *out = c->out[0];
    int64_t batch_dims = ir_attr_int(c->s.node, "batch_dims"), k = idx->dims[idx->rank - 1];
    int64_t tuples = kiln_tensor_count(idx) / (k ? k : 1), slice = 1, per_batch = 1;
    for (int d = (int)(batch_dims + k); d < x->rank; d++)
        slice *= x->dims[d];
    for (int d = (int)batch_dims; d < idx->rank - 1; d++)
        per_batch *= idx->dims[d];
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off;
        kiln_status st = nd_offset(c, x, idx, t, batch_dims, t / per_batch, &off);
        if (st)
            return st;
        for (int64_t e = 0; e < slice; e++)
            interp_copy_elem(out, t * slice + e, x, off + e);
    }
    return KILN_OK;
}

/* out = f(out, update) for a scatter's reduction. */
static void scatter_store(kiln_tensor *out, int64_t at, const kiln_tensor *up, int64_t from, const char *reduction) {
    if (!strcmp(reduction, "none")) {
        interp_copy_elem(out, at, up, from);
        return;
    }
    double a = ir_tensor_get(out, at), b = ir_tensor_get(up, from);
    double r = !strcmp(reduction, "add") ? a + b : !strcmp(reduction, "mul") ? a * b
             : !strcmp(reduction, "max") ? fmax(a, b) : fmin(a, b);
    ir_tensor_set(out, at, r);
}

kiln_status interp_scatter_nd(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *idx = c->s.in[1], *up = c->s.in[2];
    kiln_tensor *out = c->out[0];
    const char *reduction = ir_attr_string(c->s.node, "reduction");
    memcpy(out->data, x->data, kiln_tensor_bytes(x));
    int64_t k = idx->dims[idx->rank - 1], tuples = kiln_tensor_count(idx) / (k ? k : 1), slice = 1;
    for (int d = (int)k; d < x->rank; d++)
        slice *= x->dims[d];
    if (kiln_tensor_count(up) != tuples * slice)
        return interp_error(c, KILN_ERR_SHAPE, "updates hold %lld values, the indices address %lld",
                            (long long)kiln_tensor_count(up), (long long)(tuples * slice));
    for (int64_t t = 0; t < tuples; t++) {
        int64_t off;
        kiln_status st = nd_offset(c, x, idx, t, 0, 0, &off);
        if (st)
            return st;
        for (int64_t e = 0; e < slice; e++)
            scatter_store(out, off + e, up, t * slice + e, reduction);
    }
    return KILN_OK;
}

kiln_status interp_scatter_elements(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *idx = c->s.in[1], *up = c->s.in[2];
    kiln_tensor *out = c->out[0];
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), x->rank, "axis", &axis);
    const char *reduction = ir_attr_string(c->s.node, "reduction");
    memcpy(out->data, x->data, kiln_tensor_bytes(x));
    int64_t n = kiln_tensor_count(idx), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, idx, coord);
        for (int d = 0; d < x->rank; d++)
            if (d != axis && coord[d] >= x->dims[d])
                return interp_error(c, KILN_ERR_SHAPE, "indices reach past the data at axis %d", d);
        int64_t v = ir_tensor_get_int(idx, i), dim = x->dims[axis];
        if (v < -dim || v >= dim)
            return interp_error(c, KILN_ERR_INVALID, "index %lld is out of range [%lld, %lld)",
                                (long long)v, (long long)-dim, (long long)dim);
        coord[axis] = v < 0 ? v + dim : v;
        scatter_store(out, interp_ravel(coord, x), up, i, reduction);
    }
    return KILN_OK;
}

kiln_status interp_reverse_sequence(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *lens = c->s.in[1];
    kiln_tensor *out = c->out[0];
    int b = (int)ir_attr_int(c->s.node, "batch_axis"), t = (int)ir_attr_int(c->s.node, "time_axis");
    int64_t n = kiln_tensor_count(out), coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        int64_t len = ir_tensor_get_int(lens, coord[b]);
        if (len < 0 || len > x->dims[t])
            return interp_error(c, KILN_ERR_INVALID, "sequence length %lld is outside [0, %lld]",
                                (long long)len, (long long)x->dims[t]);
        if (coord[t] < len)
            coord[t] = len - 1 - coord[t];
        interp_copy_elem(out, i, x, interp_ravel(coord, x));
    }
    return KILN_OK;
}

kiln_status interp_eye_like(interp_ctx *c) {
    kiln_tensor *out = c->out[0];
    int64_t k = ir_attr_int(c->s.node, "k"), cols = out->dims[1];
    for (int64_t i = 0; i < kiln_tensor_count(out); i++)
        ir_tensor_set_int(out, i, i % cols - i / cols == k);
    return KILN_OK;
}

kiln_status interp_one_hot(interp_ctx *c) {
    const kiln_tensor *idx = c->s.in[0], *values = c->s.in[2];
    kiln_tensor *out = c->out[0];
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), idx->rank + 1, "axis", &axis);
    int64_t depth = out->dims[axis], n = kiln_tensor_count(out), coord[KILN_MAX_RANK + 1];
    for (int64_t i = 0; i < n; i++) {
        interp_unravel(i, out, coord);
        int64_t at = 0; /* the index element this output reads: coord without the axis */
        for (int d = 0; d < out->rank; d++)
            if (d != axis)
                at = at * out->dims[d] + coord[d];
        int64_t v = (int64_t)ir_tensor_get(idx, at);
        if (v < 0)
            v += depth; /* negative indices count from the end */
        interp_copy_elem(out, i, values, v == coord[axis] ? 1 : 0);
    }
    return KILN_OK;
}

kiln_status interp_compress(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *cond = c->s.in[1];
    kiln_tensor *out = c->out[0];
    const ir_attr *axis_attr = ir_node_attr(c->s.node, "axis");
    int axis = 0;
    int64_t outer = 1, len = kiln_tensor_count(x), inner = 1;
    if (axis_attr) {
        shape_axis(&c->s, axis_attr->i, x->rank, "axis", &axis);
        interp_around_axis(x, axis, &outer, &len, &inner);
    }
    int64_t o_i = 0;
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < len && i < cond->dims[0]; i++) {
            if (!ir_tensor_get_int(cond, i))
                continue;
            for (int64_t in = 0; in < inner; in++)
                interp_copy_elem(out, o_i * inner + in, x, (o * len + i) * inner + in);
            o_i++;
        }
    return KILN_OK;
}

kiln_status interp_non_zero(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    int64_t nnz = c->out[0]->dims[1], k = 0, coord[KILN_MAX_RANK];
    for (int64_t i = 0; i < kiln_tensor_count(x); i++) {
        if (ir_tensor_get(x, i) == 0)
            continue;
        interp_unravel(i, x, coord);
        for (int d = 0; d < x->rank; d++)
            ir_tensor_set_int(c->out[0], d * nnz + k, coord[d]);
        k++;
    }
    return KILN_OK;
}

kiln_status interp_einsum(interp_ctx *c) {
    einsum_spec s;
    kiln_status st = einsum_parse(&c->s, &s);
    if (st)
        return st;
    kiln_tensor *out = c->out[0];
    int used[EINSUM_LABELS], nused = 0;
    for (int l = 0; l < s.label_count; l++)
        if (s.size[l] >= 0)
            used[nused++] = l;
    int64_t total = 1, at[EINSUM_LABELS] = {0};
    for (int u = 0; u < nused; u++)
        total *= s.size[used[u]];
    double *acc = calloc((size_t)kiln_tensor_count(out) + 1, sizeof *acc);
    if (!acc)
        return interp_error(c, KILN_ERR_OOM, "out of memory");
    for (int64_t flat = 0; flat < total; flat++) {
        int64_t rest = flat;
        for (int u = nused - 1; u >= 0; u--) {
            at[used[u]] = rest % s.size[used[u]];
            rest /= s.size[used[u]];
        }
        double prod = 1;
        for (int i = 0; i < s.operand_count; i++) {
            const kiln_tensor *x = c->s.in[i];
            int64_t off = 0;
            for (int d = 0; d < x->rank; d++)
                off = off * x->dims[d] + (x->dims[d] == 1 ? 0 : at[s.label[i][d]]);
            prod *= ir_tensor_get(x, off);
        }
        int64_t o = 0;
        for (int d = 0; d < s.out_rank; d++)
            o = o * out->dims[d] + at[s.out_label[d]];
        acc[o] += prod;
    }
    for (int64_t i = 0; i < kiln_tensor_count(out); i++)
        ir_tensor_set(out, i, acc[i]);
    free(acc);
    return KILN_OK;
}


kiln_status interp_resize(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    const kiln_tensor *roi = c->s.in_count > 1 && c->s.in[1] && kiln_tensor_count(c->s.in[1]) ? c->s.in[1] : NULL;
    kiln_tensor *out = c->out[0];
    double scales[KILN_MAX_RANK];
    int64_t dims[KILN_MAX_RANK], coord[KILN_MAX_RANK], src[KILN_MAX_RANK];
    bool known;
    kiln_status st = shape_resize_geometry(&c->s, scales, dims, &known);
    if (st)
        return st;
    int rank = x->rank;
    if (roi && kiln_tensor_count(roi) != 2 * rank)
        return interp_error(c, KILN_ERR_SHAPE, "roi must hold %d values", 2 * rank);
    double extrapolation = ir_attr_float(c->s.node, "extrapolation_value");
    shape_resize_axis axes[KILN_MAX_RANK];
    for (int64_t i = 0; i < kiln_tensor_count(out); i++) {
        interp_unravel(i, out, coord);
        bool inside = true;
        for (int d = 0; d < rank && inside; d++)
            inside = shape_resize_sample(c->s.node, coord[d], x->dims[d], scales[d],
                                   roi ? ir_tensor_get(roi, d) : 0, roi ? ir_tensor_get(roi, d + rank) : 1, &axes[d]);
        if (!inside) {
            ir_tensor_set(out, i, extrapolation);
            continue;
        }
        /* the tensor product of the per-axis neighbours */
        int64_t combos = 1;
        for (int d = 0; d < rank; d++)
            combos *= axes[d].n;
        double acc = 0;
        for (int64_t k = 0; k < combos; k++) {
            int64_t rest = k;
            double w = 1;
            for (int d = rank - 1; d >= 0; d--) {
                int j = (int)(rest % axes[d].n);
                rest /= axes[d].n;
                src[d] = axes[d].index[j];
                w *= axes[d].coeff[j];
            }
            if (w != 0)
                acc += w * ir_tensor_get(x, interp_ravel(src, x));
        }
        ir_tensor_set(out, i, acc);
    }
    return KILN_OK;
}
