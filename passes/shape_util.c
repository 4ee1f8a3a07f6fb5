/*
 * shape_util.c — helpers for the shape rules and the interpreter: axes, broadcasting,
 * reading small integer inputs, and the geometry of windows, slices, pads and splits.
 * Dimensions may be IR_DIM_BATCH (symbolic) or IR_DIM_UNKNOWN; arithmetic on either
 * gives IR_DIM_UNKNOWN unless the rule below says otherwise.
 */
#include "passes/shape.h"

#include <stdarg.h>
#include <string.h>

kiln_status shape_error(const shape_ctx *c, const char *fmt, ...) {
    char body[KILN_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    return diag_error(c->d, c->node->loc, KILN_ERR_SHAPE, "%s", body);
}

const kiln_tensor *shape_value(const shape_ctx *c, int i) {
    return i < c->in_count && c->in[i] && c->in[i]->data ? c->in[i] : NULL;
}

kiln_status shape_axis(const shape_ctx *c, int64_t axis, int rank, const char *what, int *out) {
    if (axis < -rank || axis >= (rank ? rank : 1) || (rank == 0 && axis != 0 && axis != -1))
        return shape_error(c, "%s %lld is out of range for rank %d", what, (long long)axis, rank);
    *out = (int)(axis < 0 ? axis + rank : axis);
    return KILN_OK;
}

void shape_set(shape_ctx *c, int i, kiln_dtype dt, int rank, const int64_t *dims) {
    c->out[i].dtype = dt;
    c->out[i].rank = rank;
    for (int d = 0; d < rank; d++)
        c->out[i].dims[d] = dims ? dims[d] : IR_DIM_UNKNOWN;
}

/* One broadcast dimension: equal, or one side 1; symbolic sides resolve when they can. */
static kiln_status broadcast_dim(const shape_ctx *c, int64_t a, int64_t b, int64_t *out) {
    if (a == b || b == 1)
        *out = a;
    else if (a == 1)
        *out = b;
    else if (a < 0 && b < 0)
        *out = IR_DIM_UNKNOWN;
    else if (a < 0 || b < 0)
        *out = a < 0 ? b : a; /* the symbolic side must be the known size at run time */
    else
        return shape_error(c, "shapes cannot be broadcast: dimension %lld vs %lld", (long long)a,
                           (long long)b);
    return KILN_OK;
}

kiln_status shape_broadcast(const shape_ctx *c, const kiln_tensor *a, const kiln_tensor *b,
                            kiln_tensor *out) {
    int rank = a->rank > b->rank ? a->rank : b->rank;
    int64_t dims[KILN_MAX_RANK];
    for (int d = 0; d < rank; d++) {
        int da = d - (rank - a->rank), db = d - (rank - b->rank);
        int64_t x = da >= 0 ? a->dims[da] : 1, y = db >= 0 ? b->dims[db] : 1;
        kiln_status st = broadcast_dim(c, x, y, &dims[d]);
        if (st)
            return st;
    }
    out->rank = rank;
    memcpy(out->dims, dims, sizeof(int64_t) * (size_t)rank);
    return KILN_OK;
}

kiln_status shape_ints(const shape_ctx *c, int i, int64_t *vals, int cap, int *count, bool *known) {
    const kiln_tensor *t = i < c->in_count ? c->in[i] : NULL;
    *known = false;
    *count = 0;
    if (!t)
        return KILN_OK;
    if (!ir_dtype_is_int(t->dtype))
        return shape_error(c, "input %d must be an integer tensor, got %s", i,
                           kiln_dtype_name(t->dtype));
    if (t->rank > 1)
        return shape_error(c, "input %d must be a scalar or 1-D, got rank %d", i, t->rank);
    if (!t->data)
        return KILN_OK;
    int64_t n = kiln_tensor_count(t);
    if (n > cap)
        return shape_error(c, "input %d has %lld elements, at most %d allowed", i, (long long)n, cap);
    for (int64_t k = 0; k < n; k++)
        vals[k] = ir_tensor_get_int(t, k);
    *count = (int)n;
    *known = true;
    return KILN_OK;
}

bool shape_is_float(kiln_dtype dt) {
    return ir_dtype_is_float(dt);
}
bool shape_is_numeric(kiln_dtype dt) {
    return dt != KILN_BOOL && dt != KILN_DTYPE_INVALID;
}
bool shape_is_bool(kiln_dtype dt) {
    return dt == KILN_BOOL;
}
bool shape_is_index(kiln_dtype dt) {
    return dt == KILN_I64 || dt == KILN_I32;
}

kiln_status shape_require(const shape_ctx *c, int i, bool (*ok)(kiln_dtype), const char *what) {
    if (i < c->in_count && c->in[i] && !ok(c->in[i]->dtype))
        return shape_error(c, "input %d must be %s, got %s", i, what,
                           kiln_dtype_name(c->in[i]->dtype));
    return KILN_OK;
}

kiln_status shape_same_dtype(const shape_ctx *c, int a, int b) {
    if (c->in[a] && c->in[b] && c->in[a]->dtype != c->in[b]->dtype)
        return shape_error(c, "inputs %d and %d have different dtypes: %s and %s", a, b,
                           kiln_dtype_name(c->in[a]->dtype), kiln_dtype_name(c->in[b]->dtype));
    return KILN_OK;
}

kiln_status shape_reduce_axes(const shape_ctx *c, bool *mask, bool *identity, bool *known) {
    int rank = c->in[0]->rank, count = 0;
    int64_t axes[KILN_MAX_RANK];
    kiln_status st;
    *identity = false;
    *known = true;
    memset(mask, 0, sizeof(bool) * KILN_MAX_RANK);
    if (c->in_count > 1 && c->in[1]) {
        if ((st = shape_ints(c, 1, axes, KILN_MAX_RANK, &count, known)) || !*known)
            return st;
    } else if (ir_node_attr(c->node, "axes")) {
        const ir_attr *a = ir_node_attr(c->node, "axes");
        if (a->count > KILN_MAX_RANK)
            return shape_error(c, "attribute 'axes': too many axes (%d)", a->count);
        count = a->count;
        memcpy(axes, a->ints, sizeof(int64_t) * (size_t)count);
    }
    if (count == 0) {
        if (ir_attr_int(c->node, "noop_with_empty_axes"))
            *identity = true;
        else
            for (int d = 0; d < rank; d++)
                mask[d] = true;
        return KILN_OK;
    }
    for (int k = 0; k < count; k++) {
        int axis = 0; /* set by shape_axis when it succeeds (GCC cannot tell) */
        if ((st = shape_axis(c, axes[k], rank, "reduction axis", &axis)))
            return st;
        if (mask[axis])
            return shape_error(c, "reduction axis %lld is repeated", (long long)axes[k]);
        mask[axis] = true;
    }
    return KILN_OK;
}

/* Reads an INTS attribute of exactly `n` values (or none: fills `fill`). */
static kiln_status window_attr(const shape_ctx *c, const char *name, int n, int64_t fill,
                               int64_t *out) {
    const ir_attr *a = ir_node_attr(c->node, name);
    if (!a || a->count == 0) {
        for (int i = 0; i < n; i++)
            out[i] = fill;
        return KILN_OK;
    }
    if (a->count != n)
        return shape_error(c, "attribute '%s': expected %d values, got %d", name, n, a->count);
    memcpy(out, a->ints, sizeof(int64_t) * (size_t)n);
    return KILN_OK;
}

static int64_t ceil_div(int64_t a, int64_t b) {
    return a >= 0 ? (a + b - 1) / b : -((-a) / b);
}

kiln_status shape_window_geometry(const shape_ctx *c, const kiln_tensor *x, const int64_t *kernel,
                                  bool transposed, bool ceil_mode, shape_window *w) {
    int n = x->rank - 2;
    kiln_status st;
    if (n < 1 || n > 3)
        return shape_error(c, "input must have 1 to 3 spatial axes, got rank %d", x->rank);
    w->spatial = n;
    int64_t pads[2 * KILN_MAX_RANK], out_pad[KILN_MAX_RANK];
    if ((st = window_attr(c, "strides", n, 1, w->stride)) ||
        (st = window_attr(c, "dilations", n, 1, w->dilation)) ||
        (st = window_attr(c, "pads", 2 * n, 0, pads)))
        return st;
    if (transposed && (st = window_attr(c, "output_padding", n, 0, out_pad)))
        return st;
    const char *auto_pad = ir_attr_string(c->node, "auto_pad");
    bool same_upper = !strcmp(auto_pad, "SAME_UPPER"), same_lower = !strcmp(auto_pad, "SAME_LOWER");
    bool valid = !strcmp(auto_pad, "VALID");
    if (!same_upper && !same_lower && !valid && strcmp(auto_pad, "NOTSET"))
        return shape_error(c, "attribute 'auto_pad': unknown value '%s'", auto_pad);
    const ir_attr *out_shape = transposed ? ir_node_attr(c->node, "output_shape") : NULL;
    if (out_shape && out_shape->count && out_shape->count != n)
        return shape_error(c, "attribute 'output_shape': expected %d values, got %d", n,
                           out_shape->count);
    for (int i = 0; i < n; i++) {
        int64_t in = x->dims[i + 2], k = kernel[i], s = w->stride[i], dl = w->dilation[i];
        if (k < 1 || s < 1 || dl < 1)
            return shape_error(c, "kernel, strides and dilations must be >= 1 (axis %d)", i);
        if (!transposed && (pads[i] < 0 || pads[i + n] < 0))
            return shape_error(c, "attribute 'pads' must be >= 0");
        w->kernel[i] = k;
        /* in 128 bits: every number here may come from the model, up to INT64_MAX; what
         * does not fit back in 62 bits is refused below */
        typedef __int128 wide;
        wide span = (wide)(k - 1) * dl + 1, out, pb = valid ? 0 : pads[i], pe = valid ? 0 : pads[i + n];
        if (in < 0) {
            w->pad_begin[i] = (int64_t)pb, w->pad_end[i] = (int64_t)pe;
            w->out[i] = IR_DIM_UNKNOWN;
            continue;
        }
        if (transposed) {
            wide target = -1;
            if (out_shape && out_shape->count)
                target = out_shape->ints[i];
            else if (same_upper || same_lower)
                target = (wide)in * s;
            if (target >= 0) {
                wide total = (wide)s * (in - 1) + out_pad[i] + span - target;
                /* ONNX: SAME_UPPER puts the smaller half first; halves floor, as Python's
                 * // does, so a negative total (output_shape past the natural size) grows
                 * the end */
                wide half = total >= 0 ? total / 2 : -((-total + 1) / 2);
                pb = same_upper ? half : total - half;
                pe = total - pb;
            }
            out = (wide)s * (in - 1) + out_pad[i] + span - pb - pe;
        } else if (same_upper || same_lower) {
            out = ceil_div(in, s);
            wide total = (out - 1) * s + span - in;
            if (total < 0)
                total = 0;
            pb = same_upper ? total / 2 : total - total / 2;
            pe = total - pb;
        } else {
            wide room = in + pb + pe - span;
            if (room < 0 && span < ((wide)1 << 62) && in + pb + pe < ((wide)1 << 62))
                return shape_error(c, "window of %lld does not fit the padded input of %lld (axis %d)",
                                   (long long)span, (long long)(in + pb + pe), i);
            if (room < 0)
                return shape_error(c, "the window does not fit the padded input (axis %d)", i);
            out = (ceil_mode ? (room + s - 1) / s : room / s) + 1;
            /* the last window must start inside the input or the left padding */
            if (ceil_mode && (out - 1) * s >= in + pb)
                out--;
        }
        const wide limit = (wide)1 << 62;
        if (span >= limit || out >= limit || pb >= limit || pe >= limit || pb <= -limit || pe <= -limit)
            return shape_error(c, "kernel, strides, dilations and pads give sizes past 2^62 (axis %d)", i);
        w->out[i] = (int64_t)out, w->pad_begin[i] = (int64_t)pb, w->pad_end[i] = (int64_t)pe;
        if (w->out[i] < 0)
            return shape_error(c, "output size %lld is negative (axis %d)", (long long)w->out[i], i);
    }
    return KILN_OK;
}

static int64_t clamp(int64_t v, int64_t lo, int64_t hi) {
    return v < lo ? lo : v > hi ? hi : v;
}

kiln_status shape_slice_params(const shape_ctx *c, shape_slice_spec *s, bool *known) {
    const kiln_tensor *x = c->in[0];
    int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK], steps[KILN_MAX_RANK];
    int ns, ne, na = 0, nst = 0;
    bool k1, k2, k3 = true, k4 = true;
    kiln_status st;
    if ((st = shape_ints(c, 1, starts, KILN_MAX_RANK, &ns, &k1)) ||
        (st = shape_ints(c, 2, ends, KILN_MAX_RANK, &ne, &k2)) ||
        (c->in_count > 3 && c->in[3] && (st = shape_ints(c, 3, axes, KILN_MAX_RANK, &na, &k3))) ||
        (c->in_count > 4 && c->in[4] && (st = shape_ints(c, 4, steps, KILN_MAX_RANK, &nst, &k4))))
        return st;
    *known = k1 && k2 && k3 && k4;
    if (!*known)
        return KILN_OK;
    if (ns != ne || (c->in_count > 3 && c->in[3] && na != ns) ||
        (c->in_count > 4 && c->in[4] && nst != ns))
        return shape_error(c, "starts, ends, axes and steps must have the same length");
    for (int d = 0; d < x->rank; d++) {
        s->start[d] = 0;
        s->step[d] = 1;
        s->count[d] = x->dims[d];
    }
    bool seen[KILN_MAX_RANK] = {0};
    for (int k = 0; k < ns; k++) {
        int axis;
        if ((st = shape_axis(c, na ? axes[k] : k, x->rank, "slice axis", &axis)))
            return st;
        if (seen[axis])
            return shape_error(c, "slice axis %d is repeated", axis);
        seen[axis] = true;
        int64_t dim = x->dims[axis], step = nst ? steps[k] : 1;
        if (step == 0)
            return shape_error(c, "slice step must not be 0");
        if (dim < 0) {
            s->count[axis] = IR_DIM_UNKNOWN;
            continue;
        }
        /* A stride of at least the dimension takes one element at most, so
         * bound it there: -INT64_MIN overflows below, and start + i * step
         * must stay within int64_t wherever the slice is indexed. */
        int64_t span = dim > 0 ? dim : 1;
        step = clamp(step, -span, span);
        int64_t b = starts[k], e = ends[k];
        if (b < 0)
            b = b < -dim ? 0 : b + dim; /* avoids overflow with INT64_MIN */
        if (e < 0)
            e = e < -dim ? -1 : e + dim;
        int64_t n;
        if (step > 0) {
            b = clamp(b, 0, dim);
            e = clamp(e, 0, dim);
            n = e > b ? (e - b - 1) / step + 1 : 0;
        } else {
            b = clamp(b, 0, dim - 1);
            e = clamp(e, -1, dim - 1);
            n = b > e ? (b - e - 1) / -step + 1 : 0;
        }
        s->start[axis] = b;
        s->step[axis] = step;
        s->count[axis] = n;
    }
    return KILN_OK;
}

kiln_status shape_pad_amounts(const shape_ctx *c, int64_t *begin, int64_t *end, bool *known) {
    int rank = c->in[0]->rank, np, na = 0;
    int64_t pads[2 * KILN_MAX_RANK], axes[KILN_MAX_RANK];
    bool k1, k2 = true;
    kiln_status st;
    if ((st = shape_ints(c, 1, pads, 2 * KILN_MAX_RANK, &np, &k1)) ||
        (c->in_count > 3 && c->in[3] && (st = shape_ints(c, 3, axes, KILN_MAX_RANK, &na, &k2))))
        return st;
    *known = k1 && k2;
    if (!*known)
        return KILN_OK;
    int n = c->in_count > 3 && c->in[3] ? na : rank;
    if (np != 2 * n)
        return shape_error(c, "'pads' must have %d values, got %d", 2 * n, np);
    for (int d = 0; d < rank; d++)
        begin[d] = end[d] = 0;
    for (int k = 0; k < n; k++) {
        int axis = k;
        if (c->in_count > 3 && c->in[3] && (st = shape_axis(c, axes[k], rank, "pad axis", &axis)))
            return st;
        begin[axis] = pads[k];
        end[axis] = pads[k + n];
    }
    return KILN_OK;
}

kiln_status shape_split_sizes(const shape_ctx *c, int axis, int64_t *sizes, bool *known) {
    int64_t dim = c->in[0]->dims[axis];
    int n = c->out_count, count = 0;
    kiln_status st;
    *known = true;
    if (c->in_count > 1 && c->in[1]) {
        if (n > 4096)
            return shape_error(c, "too many outputs");
        if ((st = shape_ints(c, 1, sizes, n, &count, known)) || !*known)
            return st;
    } else if (ir_node_attr(c->node, "split") && ir_node_attr(c->node, "split")->count) {
        const ir_attr *a = ir_node_attr(c->node, "split");
        if (a->count != n)
            return shape_error(c, "attribute 'split' has %d values for %d outputs", a->count, n);
        count = a->count;
        memcpy(sizes, a->ints, sizeof(int64_t) * (size_t)n);
    }
    if (count) {
        if (count != n)
            return shape_error(c, "'split' has %d values for %d outputs", count, n);
        int64_t total = 0;
        for (int i = 0; i < n; i++) {
            if (sizes[i] < 0)
                return shape_error(c, "'split' values must be >= 0");
            if (__builtin_add_overflow(total, sizes[i], &total))
                return shape_error(c, "'split' values overflow");
        }
        if (dim >= 0 && total != dim)
            return shape_error(c, "'split' sums to %lld but the axis has %lld", (long long)total,
                               (long long)dim);
        return KILN_OK;
    }
    if (dim < 0) {
        for (int i = 0; i < n; i++)
            sizes[i] = IR_DIM_UNKNOWN;
        return KILN_OK;
    }
    int64_t num = ir_attr_int(c->node, "num_outputs");
    if (num && num != n)
        return shape_error(c, "num_outputs is %lld but the node has %d outputs", (long long)num, n);
    if (!num && dim % n)
        return shape_error(c, "axis of %lld cannot be split evenly into %d outputs", (long long)dim, n);
    int64_t chunk = (dim + n - 1) / n; /* opset 18: the last chunk may be smaller */
    for (int i = 0; i < n; i++) {
        int64_t left = dim - chunk * i;
        sizes[i] = left < 0 ? 0 : left < chunk ? left : chunk;
    }
    return KILN_OK;
}

/* Maps a padded coordinate back into [0, dim) for the non-constant modes. */
int64_t shape_pad_source(int64_t p, int64_t dim, const char *mode) {
    if (!strcmp(mode, "edge"))
        return p < 0 ? 0 : p >= dim ? dim - 1 : p;
    if (!strcmp(mode, "wrap"))
        return ((p % dim) + dim) % dim;
    if (dim == 1) /* reflect */
        return 0;
    int64_t period = 2 * (dim - 1);
    p = ((p % period) + period) % period;
    return p < dim ? p : period - p;
}
