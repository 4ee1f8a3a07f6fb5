/*
 * shape_index.c — shape rules of the indexing ops: DepthToSpace, SpaceToDepth, GatherND,
 * ScatterND, ScatterElements, ReverseSequence, EyeLike, OneHot, Compress, NonZero.
 * Compress and NonZero have data-dependent output shapes: known when their input values
 * are (constants, or the interpreter), unknown dims otherwise.
 */
#include "passes/shape.h"

#include <math.h>
#include <string.h>

static kiln_status space_depth(shape_ctx *c, bool to_space) {
    const kiln_tensor *x = c->in[0];
    int64_t b = ir_attr_int(c->node, "blocksize");
    if (x->rank != 4)
        return shape_error(c, "input must be [N, C, H, W], got rank %d", x->rank);
    if (b < 1)
        return shape_error(c, "attribute 'blocksize' must be >= 1");
    int64_t dims[4] = {x->dims[0], x->dims[1], x->dims[2], x->dims[3]};
    if (to_space) {
        const char *mode = ir_attr_string(c->node, "mode");
        if (strcmp(mode, "DCR") && strcmp(mode, "CRD"))
            return shape_error(c, "attribute 'mode': expected \"DCR\" or \"CRD\", got \"%s\"", mode);
        if (dims[1] >= 0 && dims[1] % (b * b))
            return shape_error(c, "channels %lld are not divisible by blocksize^2 = %lld", (long long)dims[1], (long long)(b * b));
        dims[1] = dims[1] >= 0 ? dims[1] / (b * b) : IR_DIM_UNKNOWN;
        dims[2] = dims[2] >= 0 ? dims[2] * b : IR_DIM_UNKNOWN;
        dims[3] = dims[3] >= 0 ? dims[3] * b : IR_DIM_UNKNOWN;
    } else {
        for (int d = 2; d < 4; d++)
            if (dims[d] >= 0 && dims[d] % b)
                return shape_error(c, "spatial dimension %lld is not divisible by blocksize %lld", (long long)dims[d], (long long)b);
        dims[1] = dims[1] >= 0 ? dims[1] * b * b : IR_DIM_UNKNOWN;
        dims[2] = dims[2] >= 0 ? dims[2] / b : IR_DIM_UNKNOWN;
        dims[3] = dims[3] >= 0 ? dims[3] / b : IR_DIM_UNKNOWN;
    }
    shape_set(c, 0, x->dtype, 4, dims);
    return KILN_OK;
}

kiln_status shape_depth_to_space(shape_ctx *c) { return space_depth(c, true); }
kiln_status shape_space_to_depth(shape_ctx *c) { return space_depth(c, false); }

/* GatherND/ScatterND: indices [..., k] address the first k dims (after batch_dims). */
static kiln_status nd_index_check(shape_ctx *c, int64_t batch, int64_t *k) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    kiln_status st = shape_require(c, 1, shape_is_index, "i32 or i64");
    if (st)
        return st;
    if (idx->rank < 1 || x->rank < 1)
        return shape_error(c, "data and indices must have rank >= 1");
    if (batch < 0 || batch >= idx->rank || batch >= x->rank)
        return shape_error(c, "batch_dims %lld is out of range", (long long)batch);
    *k = idx->dims[idx->rank - 1];
    if (*k < 0)
        return KILN_OK;
    if (*k < 1 || *k > x->rank - batch)
        return shape_error(c, "indices address %lld dims, data has %lld after the batch dims", (long long)*k, (long long)(x->rank - batch));
    return KILN_OK;
}

kiln_status shape_gather_nd(shape_ctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1];
    int64_t batch = ir_attr_int(c->node, "batch_dims"), k;
    kiln_status st = nd_index_check(c, batch, &k);
    if (st)
        return st;
    if (k < 0) {
        shape_set(c, 0, x->dtype, -1, NULL);
        return KILN_OK;
    }
    int64_t dims[KILN_MAX_RANK];
    int rank = 0;
    for (int d = 0; d < idx->rank - 1; d++)
        dims[rank++] = idx->dims[d];
    if (rank + x->rank - batch - k > KILN_MAX_RANK)
        return shape_error(c, "result rank above %d", KILN_MAX_RANK);
    for (int d = (int)(batch + k); d < x->rank; d++)
        dims[rank++] = x->dims[d];
    shape_set(c, 0, x->dtype, rank, dims);
    return KILN_OK;
}

static kiln_status check_reduction(shape_ctx *c) {
    const char *r = ir_attr_string(c->node, "reduction");
    if (strcmp(r, "none") && strcmp(r, "add") && strcmp(r, "mul") && strcmp(r, "max") && strcmp(r, "min"))
        return shape_error(c, "attribute 'reduction': unknown value '%s'", r);
    return KILN_OK;
}

kiln_status shape_scatter_nd(shape_ctx *c) {
    int64_t k;
    kiln_status st;
    if ((st = check_reduction(c)) || (st = nd_index_check(c, 0, &k)) || (st = shape_same_dtype(c, 0, 2)))
        return st;
    const kiln_tensor *x = c->in[0], *idx = c->in[1], *up = c->in[2];
    if (k >= 0 && up->rank != idx->rank - 1 + x->rank - k)
        return shape_error(c, "updates must have rank %lld, got %d", (long long)(idx->rank - 1 + x->rank - k), up->rank);
    shape_set(c, 0, x->dtype, x->rank, x->dims);
    return KILN_OK;
}

kiln_status shape_scatter_elements(shape_ctx *c) {
    const kiln_tensor *x = c->in[0], *idx = c->in[1], *up = c->in[2];
    int axis;
    kiln_status st;
    if ((st = check_reduction(c)) || (st = shape_require(c, 1, shape_is_index, "i32 or i64")) ||
        (st = shape_same_dtype(c, 0, 2)) ||
        (st = shape_axis(c, ir_attr_int(c->node, "axis"), x->rank, "axis", &axis)))
        return st;
    if (idx->rank != x->rank || up->rank != x->rank)
        return shape_error(c, "data, indices and updates must have the same rank");
    for (int d = 0; d < idx->rank; d++)
        if (idx->dims[d] >= 0 && up->dims[d] >= 0 && idx->dims[d] != up->dims[d])
            return shape_error(c, "indices and updates differ at axis %d", d);
    shape_set(c, 0, x->dtype, x->rank, x->dims);
    return KILN_OK;
}

kiln_status shape_reverse_sequence(shape_ctx *c) {
    const kiln_tensor *x = c->in[0], *lens = c->in[1];
    int64_t b = ir_attr_int(c->node, "batch_axis"), t = ir_attr_int(c->node, "time_axis");
    if (x->rank < 2 || (b != 0 && b != 1) || (t != 0 && t != 1) || b == t)
        return shape_error(c, "batch_axis and time_axis must be 0 and 1, in either order");
    if (lens->rank != 1 || !shape_is_index(lens->dtype))
        return shape_error(c, "sequence_lens must be a 1-D integer tensor");
    if (lens->dims[0] >= 0 && x->dims[b] >= 0 && lens->dims[0] != x->dims[b])
        return shape_error(c, "sequence_lens has %lld entries for a batch of %lld", (long long)lens->dims[0], (long long)x->dims[b]);
    shape_set(c, 0, x->dtype, x->rank, x->dims);
    return KILN_OK;
}

kiln_status shape_eye_like(shape_ctx *c) {
    const kiln_tensor *x = c->in[0];
    const char *name = ir_attr_string(c->node, "dtype");
    kiln_dtype dt = *name ? ir_dtype_lookup(name) : x->dtype;
    if (dt == KILN_DTYPE_INVALID)
        return shape_error(c, "attribute 'dtype': unknown dtype '%s'", name);
    if (x->rank != 2)
        return shape_error(c, "input must be 2-D, got rank %d", x->rank);
    shape_set(c, 0, dt, 2, x->dims);
    return KILN_OK;
}

kiln_status shape_one_hot(shape_ctx *c) {
    const kiln_tensor *idx = c->in[0], *depth = c->in[1], *values = c->in[2];
    int axis;
    kiln_status st;
    if ((st = shape_require(c, 0, shape_is_numeric, "numeric")) ||
        (st = shape_axis(c, ir_attr_int(c->node, "axis"), idx->rank + 1, "axis", &axis)))
        return st;
    if (ir_type_count(depth) != 1 || ir_type_count(values) != 2)
        return shape_error(c, "depth must be one value and values two");
    if (idx->rank + 1 > KILN_MAX_RANK)
        return shape_error(c, "result rank above %d", KILN_MAX_RANK);
    int64_t d = IR_DIM_UNKNOWN;
    if (shape_value(c, 1)) {
        d = (int64_t)ir_tensor_get(depth, 0);
        if (d < 1)
            return shape_error(c, "depth must be >= 1, got %lld", (long long)d);
    }
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0, s = 0; i <= idx->rank; i++)
        dims[i] = i == axis ? d : idx->dims[s++];
    shape_set(c, 0, values->dtype, idx->rank + 1, dims);
    return KILN_OK;
}

kiln_status shape_compress(shape_ctx *c) {
    const kiln_tensor *x = c->in[0], *cond = c->in[1];
    kiln_status st = shape_require(c, 1, shape_is_bool, "bool");
    if (st)
        return st;
    if (cond->rank != 1)
        return shape_error(c, "condition must be 1-D");
    const ir_attr *axis_attr = ir_node_attr(c->node, "axis");
    int axis = 0;
    if (axis_attr && (st = shape_axis(c, axis_attr->i, x->rank, "axis", &axis)))
        return st;
    int64_t len = axis_attr ? x->dims[axis] : ir_type_count(x);
    if (len >= 0 && cond->dims[0] > len)
        return shape_error(c, "condition has %lld entries for an axis of %lld", (long long)cond->dims[0], (long long)len);
    int64_t kept = IR_DIM_UNKNOWN;
    if (shape_value(c, 1)) {
        kept = 0;
        for (int64_t i = 0; i < cond->dims[0]; i++)
            kept += ir_tensor_get_int(cond, i) != 0;
    }
    if (!axis_attr) {
        shape_set(c, 0, x->dtype, 1, &kept);
        return KILN_OK;
    }
    shape_set(c, 0, x->dtype, x->rank, x->dims);
    c->out[0].dims[axis] = kept;
    return KILN_OK;
}

kiln_status shape_non_zero(shape_ctx *c) {
    const kiln_tensor *x = shape_value(c, 0);
    int64_t dims[2] = {c->in[0]->rank, IR_DIM_UNKNOWN};
    if (x) {
        dims[1] = 0;
        for (int64_t i = 0; i < kiln_tensor_count(x); i++)
            dims[1] += ir_tensor_get(x, i) != 0;
    }
    shape_set(c, 0, KILN_I64, 2, dims);
    return KILN_OK;
}

kiln_status shape_resize_geometry(const shape_ctx *c, double *scales, int64_t *dims, bool *known) {
    const kiln_tensor *x = c->in[0];
    const kiln_tensor *sc = c->in_count > 2 && c->in[2] && ir_type_count(c->in[2]) != 0 ? c->in[2] : NULL;
    const kiln_tensor *sz = c->in_count > 3 && c->in[3] ? c->in[3] : NULL;
    static const char *const modes[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                        "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    const char *ct = ir_attr_string(c->node, "coordinate_transformation_mode"), *mode = ir_attr_string(c->node, "mode");
    bool ok = false;
    for (int i = 0; i < ARRAY_LEN(modes); i++)
        ok |= !strcmp(ct, modes[i]);
    if (!ok)
        return shape_error(c, "attribute 'coordinate_transformation_mode': unknown value '%s'", ct);
    if (strcmp(mode, "nearest") && strcmp(mode, "linear") && strcmp(mode, "cubic"))
        return shape_error(c, "attribute 'mode': unknown value '%s'", mode);
    if (ir_attr_int(c->node, "antialias") || ir_node_attr(c->node, "axes") ||
        strcmp(ir_attr_string(c->node, "keep_aspect_ratio_policy"), "stretch"))
        return diag_error(c->d, c->node->loc, KILN_ERR_UNSUPPORTED, "antialias, axes and keep_aspect_ratio_policy are not supported");
    if (!sc == !sz)
        return shape_error(c, "exactly one of scales and sizes must be given");
    const kiln_tensor *given = sc ? sc : sz;
    if (given->rank != 1 || (given->dims[0] >= 0 && given->dims[0] != x->rank))
        return shape_error(c, "%s must be 1-D with %d values", sc ? "scales" : "sizes", x->rank);
    if (sc && !shape_is_float(sc->dtype))
        return shape_error(c, "scales must be a float tensor");
    if (sz && sz->dtype != KILN_I64)
        return shape_error(c, "sizes must be i64");
    *known = given->data != NULL;
    for (int d = 0; d < x->rank; d++) {
        dims[d] = IR_DIM_UNKNOWN;
        scales[d] = 0;
        if (!*known)
            continue;
        if (sc) {
            scales[d] = ir_tensor_get(sc, d);
            if (!(scales[d] > 0))
                return shape_error(c, "scales[%d] = %g is not a positive factor", d, scales[d]);
            if (scales[d] > 1e6) /* past this the output is beyond any memory cap anyway */
                return shape_error(c, "scales[%d] = %g is too large (at most 1e6)", d, scales[d]);
            dims[d] = x->dims[d] < 0 ? IR_DIM_UNKNOWN : (int64_t)floor((double)x->dims[d] * scales[d]);
        } else {
            dims[d] = ir_tensor_get_int(sz, d);
            if (dims[d] < 0)
                return shape_error(c, "sizes[%d] = %lld is negative", d, (long long)dims[d]);
            scales[d] = x->dims[d] > 0 ? (double)dims[d] / (double)x->dims[d] : 1;
        }
    }
    return KILN_OK;
}

kiln_status shape_resize(shape_ctx *c) {
    double scales[KILN_MAX_RANK];
    int64_t dims[KILN_MAX_RANK];
    bool known;
    kiln_status st = shape_require(c, 0, shape_is_numeric, "numeric");
    if (st || (st = shape_resize_geometry(c, scales, dims, &known)))
        return st;
    shape_set(c, 0, c->in[0]->dtype, c->in[0]->rank, dims);
    return KILN_OK;
}

/* Resize's 1-D sampling weights, as ONNX's reference computes them (onnx/backend/test/
 * case/node/resize.py): the source coordinate of output index x along one axis, its n
 * neighbours, and their coefficients. Returns false if the coordinate falls outside the
 * input for tf_crop_and_resize (the output is then extrapolation_value). */
bool shape_resize_sample(const ir_node *node, int64_t x, int64_t in, double scale, double roi_start, double roi_end,
                         shape_resize_axis *ax) {
    const char *ct = ir_attr_string(node, "coordinate_transformation_mode");
    const char *mode = ir_attr_string(node, "mode");
    double out = scale * (double)in, xo;
    if (!strcmp(ct, "align_corners"))
        xo = out == 1 ? 0 : (double)x * (double)(in - 1) / (out - 1);
    else if (!strcmp(ct, "asymmetric"))
        xo = (double)x / scale;
    else if (!strcmp(ct, "tf_crop_and_resize")) {
        xo = out > 1 ? roi_start * (double)(in - 1) + (double)x * (roi_end - roi_start) * (double)(in - 1) / (out - 1)
                     : 0.5 * (roi_start + roi_end) * (double)(in - 1);
        if (xo < 0 || xo > (double)(in - 1))
            return false;
    } else if (!strcmp(ct, "pytorch_half_pixel"))
        xo = out == 1 ? -0.5 : ((double)x + 0.5) / scale - 0.5;
    else if (!strcmp(ct, "tf_half_pixel_for_nn"))
        xo = ((double)x + 0.5) / scale;
    else /* half_pixel */
        xo = ((double)x + 0.5) / scale - 0.5;
    double fl = floor(xo);
    bool whole = xo == fl;
    double r = whole ? 1 : xo - fl; /* in (0, 1]: the pixel left of xo is preferred */
    if (!strcmp(mode, "cubic")) {
        double a = ir_attr_float(node, "cubic_coeff_a"), s = 1 - r;
        ax->n = 4;
        ax->coeff[0] = ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a;
        ax->coeff[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
        ax->coeff[2] = ((a + 2) * s - (a + 3)) * s * s + 1;
        ax->coeff[3] = ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a;
    } else {
        ax->n = 2;
        if (!strcmp(mode, "linear")) {
            ax->coeff[0] = 1 - r, ax->coeff[1] = r;
        } else {
            const char *nm = ir_attr_string(node, "nearest_mode");
            bool right = whole || (!strcmp(nm, "round_prefer_ceil") ? r >= 0.5 : !strcmp(nm, "floor") ? false
                                   : !strcmp(nm, "ceil") ? true : r > 0.5);
            ax->coeff[0] = !right, ax->coeff[1] = right;
        }
    }
    /* the n nearest input indices, in order; an integral xo sits at slot n/2 */
    int64_t base = whole ? (int64_t)xo - ax->n / 2 : (int64_t)fl - (ax->n / 2 - 1);
    double kept = 0;
    for (int j = 0; j < ax->n; j++) {
        int64_t i = base + j;
        if (ir_attr_int(node, "exclude_outside") && (i < 0 || i >= in))
            ax->coeff[j] = 0;
        kept += ax->coeff[j];
        ax->index[j] = i < 0 ? 0 : i >= in ? in - 1 : i; /* edge padding */
    }
    if (ir_attr_int(node, "exclude_outside") && kept != 0)
        for (int j = 0; j < ax->n; j++)
            ax->coeff[j] /= kept;
    return true;
}
