/*
 * interp_nn.c — reference implementations of MatMul, Gemm, convolutions, pools,
 * normalizations and softmax. Accumulation is in double. Window ops share their
 * geometry (pads, strides, dilations, output sizes) with shape inference through
 * shape_window_geometry, so a shape and its values can never disagree.
 */
#include "backend/interp/interp.h"
#include "runtime/rng.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void unravel_dims(int64_t flat, int rank, const int64_t *dims, int64_t *coord) {
    for (int d = rank - 1; d >= 0; d--) {
        coord[d] = dims[d] ? flat % dims[d] : 0;
        flat = dims[d] ? flat / dims[d] : 0;
    }
}

static int64_t product(int rank, const int64_t *dims) {
    int64_t p = 1;
    for (int d = 0; d < rank; d++)
        p *= dims[d];
    return p;
}

kiln_status interp_matmul(interp_ctx *c) {
    const kiln_tensor *a = c->s.in[0], *b = c->s.in[1];
    kiln_tensor *out = c->out[0];
    int64_t m = a->rank >= 2 ? a->dims[a->rank - 2] : 1, k = a->dims[a->rank - 1];
    int64_t n = b->rank >= 2 ? b->dims[b->rank - 1] : 1;
    /* batch parts: everything before the two matrix dims */
    kiln_tensor ba = {.rank = a->rank > 2 ? a->rank - 2 : 0}, bb = {.rank = b->rank > 2 ? b->rank - 2 : 0};
    kiln_tensor bo = {.rank = out->rank - (a->rank >= 2) - (b->rank >= 2)};
    memcpy(ba.dims, a->dims, sizeof(int64_t) * (size_t)ba.rank);
    memcpy(bb.dims, b->dims, sizeof(int64_t) * (size_t)bb.rank);
    memcpy(bo.dims, out->dims, sizeof(int64_t) * (size_t)bo.rank);
    int64_t batches = product(bo.rank, bo.dims), coord[KILN_MAX_RANK];
    for (int64_t ob = 0; ob < batches; ob++) {
        interp_unravel(ob, &bo, coord);
        int64_t ai = interp_broadcast_index(&ba, coord, bo.rank);
        int64_t bi = interp_broadcast_index(&bb, coord, bo.rank);
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) {
                double acc = 0;
                for (int64_t p = 0; p < k; p++)
                    acc += ir_tensor_get(a, (ai * m + i) * k + p) * ir_tensor_get(b, (bi * k + p) * n + j);
                ir_tensor_set(out, (ob * m + i) * n + j, acc);
            }
    }
    return KILN_OK;
}

kiln_status interp_gemm(interp_ctx *c) {
    const kiln_tensor *a = c->s.in[0], *b = c->s.in[1];
    const kiln_tensor *bias = c->s.in_count > 2 ? c->s.in[2] : NULL;
    kiln_tensor *out = c->out[0];
    bool ta = ir_attr_int(c->s.node, "transA"), tb = ir_attr_int(c->s.node, "transB");
    double alpha = ir_attr_float(c->s.node, "alpha"), beta = ir_attr_float(c->s.node, "beta");
    int64_t m = out->dims[0], n = out->dims[1], k = a->dims[ta ? 0 : 1];
    int64_t coord[2];
    for (int64_t i = 0; i < m; i++)
        for (int64_t j = 0; j < n; j++) {
            double acc = 0;
            for (int64_t p = 0; p < k; p++)
                acc += ir_tensor_get(a, ta ? p * m + i : i * k + p) *
                       ir_tensor_get(b, tb ? j * k + p : p * n + j);
            acc *= alpha;
            if (bias) {
                coord[0] = i, coord[1] = j;
                acc += beta * ir_tensor_get(bias, interp_broadcast_index(bias, coord, 2));
            }
            ir_tensor_set(out, i * n + j, acc);
        }
    return KILN_OK;
}

/* The window geometry of this node, for the kernel in `kernel`. */
static kiln_status geometry(interp_ctx *c, const int64_t *kernel, bool transposed, shape_window *w) {
    return shape_window_geometry(&c->s, c->s.in[0], kernel, transposed,
                                 ir_op_attr_spec(c->s.node->op, "ceil_mode") &&
                                     ir_attr_int(c->s.node, "ceil_mode"),
                                 w);
}

/* Input position along every spatial axis of window `kpos` at output `opos`; false if
 * it falls in the padding. `flat` receives the spatial flat index inside the input. */
static bool window_input(const shape_window *w, const int64_t *in_dims, const int64_t *opos,
                         const int64_t *kpos, int64_t *flat) {
    *flat = 0;
    for (int d = 0; d < w->spatial; d++) {
        int64_t p = opos[d] * w->stride[d] - w->pad_begin[d] + kpos[d] * w->dilation[d];
        if (p < 0 || p >= in_dims[d])
            return false;
        *flat = *flat * in_dims[d] + p;
    }
    return true;
}

kiln_status interp_conv(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *wt = c->s.in[1];
    const kiln_tensor *bias = c->s.in_count > 2 ? c->s.in[2] : NULL;
    kiln_tensor *out = c->out[0];
    shape_window w;
    kiln_status st = geometry(c, wt->dims + 2, false, &w);
    if (st)
        return st;
    int64_t batch = x->dims[0], cin = x->dims[1], cout = wt->dims[0], group = ir_attr_int(c->s.node, "group");
    int64_t cin_g = cin / group, cout_g = cout / group;
    int64_t in_sp = product(w.spatial, x->dims + 2), out_sp = product(w.spatial, w.out);
    int64_t k_sp = product(w.spatial, w.kernel);
    int64_t opos[KILN_MAX_RANK], kpos[KILN_MAX_RANK], xi;
    for (int64_t nb = 0; nb < batch; nb++)
        for (int64_t m = 0; m < cout; m++) {
            int64_t g = m / cout_g;
            for (int64_t o = 0; o < out_sp; o++) {
                unravel_dims(o, w.spatial, w.out, opos);
                double acc = bias ? ir_tensor_get(bias, m) : 0;
                for (int64_t ci = 0; ci < cin_g; ci++)
                    for (int64_t kk = 0; kk < k_sp; kk++) {
                        unravel_dims(kk, w.spatial, w.kernel, kpos);
                        if (!window_input(&w, x->dims + 2, opos, kpos, &xi))
                            continue;
                        acc += ir_tensor_get(x, (nb * cin + g * cin_g + ci) * in_sp + xi) *
                               ir_tensor_get(wt, (m * cin_g + ci) * k_sp + kk);
                    }
                ir_tensor_set(out, (nb * cout + m) * out_sp + o, acc);
            }
        }
    return KILN_OK;
}

/* ConvNCHWc: the same sums as Conv (groups too), in double, read and written through the
 * blocked layouts. */
kiln_status interp_conv_nchwc(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *wt = c->s.in[1];
    const kiln_tensor *bias = c->s.in_count > 2 ? c->s.in[2] : NULL;
    kiln_tensor *out = c->out[0];
    shape_window w;
    kiln_status st = shape_nchwc_window(&c->s, x, wt, &w);
    if (st)
        return st;
    bool blocked_in = x->rank == 5;
    int64_t xb = blocked_in ? x->dims[4] : 1, b = wt->dims[4], cin = wt->dims[3];
    int64_t h = x->dims[2], wd = x->dims[3], kh = wt->dims[1], kw = wt->dims[2];
    int64_t cout_g = wt->dims[0] * b / ir_attr_int(c->s.node, "group"), chans = x->dims[1] * xb;
    int64_t oh = w.out[0], ow = w.out[1];
    for (int64_t nb = 0; nb < x->dims[0]; nb++)
        for (int64_t m = 0; m < wt->dims[0] * b; m++)
            for (int64_t i = 0; i < oh; i++)
                for (int64_t j = 0; j < ow; j++) {
                    double acc = bias ? ir_tensor_get(bias, m) : 0;
                    for (int64_t ci = 0; ci < cin; ci++)
                        for (int64_t p = 0; p < kh; p++)
                            for (int64_t q = 0; q < kw; q++) {
                                int64_t y = i * w.stride[0] - w.pad_begin[0] + p * w.dilation[0];
                                int64_t z = j * w.stride[1] - w.pad_begin[1] + q * w.dilation[1];
                                if (y < 0 || y >= h || z < 0 || z >= wd)
                                    continue;
                                int64_t ch = m / cout_g * cin + ci; /* group m / cout_g's channel ci */
                                int64_t xi = (((nb * (chans / xb) + ch / xb) * h + y) * wd + z) * xb + ch % xb;
                                int64_t wi = (((m / b * kh + p) * kw + q) * cin + ci) * b + m % b;
                                acc += ir_tensor_get(x, xi) * ir_tensor_get(wt, wi);
                            }
                    ir_tensor_set(out, (((nb * wt->dims[0] + m / b) * oh + i) * ow + j) * b + m % b, acc);
                }
    return KILN_OK;
}

/* Winograd F(2x2, 3x3) (Lavin and Gray, 2015): a 3 x 3 correlation over a 4 x 4 tile d gives
 * 2 x 2 outputs A^T [(G g G^T) . (B^T d B)] A, the product elementwise. The interpreter
 * uses the matrices as written; the compiled kernels the adds they reduce to. */
static const double winograd_bt[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
static const double winograd_at[2][4] = {{1, 1, 1, 0}, {0, 1, -1, -1}};

kiln_status interp_winograd_input(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    shape_winograd g;
    kiln_status st = shape_winograd_geometry(&c->s, x, &g);
    if (st)
        return st;
    int64_t xb = x->rank == 5 ? x->dims[4] : 1;
    for (int64_t n = 0; n < g.batch; n++)
        for (int64_t ty = 0; ty < g.th; ty++)
            for (int64_t tx = 0; tx < g.tw; tx++)
                for (int64_t ch = 0; ch < g.channels; ch++) {
                    double d[4][4], v;
                    for (int a = 0; a < 4; a++)
                        for (int b = 0; b < 4; b++) {
                            int64_t y = 2 * ty - g.pad_top + a, z = 2 * tx - g.pad_left + b;
                            bool in = y >= 0 && y < g.h && z >= 0 && z < g.w;
                            d[a][b] = in ? ir_tensor_get(x, (((n * (g.channels / xb) + ch / xb) * g.h + y) * g.w + z) * xb + ch % xb) : 0;
                        }
                    int64_t t = (n * g.th + ty) * g.tw + tx;
                    for (int i = 0; i < 4; i++)
                        for (int j = 0; j < 4; j++) {
                            v = 0;
                            for (int a = 0; a < 4; a++)
                                for (int b = 0; b < 4; b++)
                                    v += winograd_bt[i][a] * d[a][b] * winograd_bt[j][b];
                            ir_tensor_set(c->out[0], ((i * 4 + j) * g.tiles + t) * g.channels + ch, v);
                        }
                }
    return KILN_OK;
}

kiln_status interp_winograd_output(interp_ctx *c) {
    const kiln_tensor *m = c->s.in[0], *bias = c->s.in_count > 1 ? c->s.in[1] : NULL;
    kiln_tensor *out = c->out[0];
    int64_t tiles = m->dims[1], ch = m->dims[2], b = out->dims[4], oh = out->dims[2], ow = out->dims[3];
    int64_t th = (oh + 1) / 2, tw = (ow + 1) / 2;
    for (int64_t t = 0; t < tiles; t++)
        for (int64_t k = 0; k < ch; k++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int64_t n = t / (th * tw), y = t / tw % th * 2 + i, z = t % tw * 2 + j;
                    if (y >= oh || z >= ow)
                        continue;
                    double v = bias ? ir_tensor_get(bias, k) : 0;
                    for (int a = 0; a < 4; a++)
                        for (int e = 0; e < 4; e++)
                            v += winograd_at[i][a] * ir_tensor_get(m, ((a * 4 + e) * tiles + t) * ch + k) * winograd_at[j][e];
                    ir_tensor_set(out, (((n * (ch / b) + k / b) * oh + y) * ow + z) * b + k % b, v);
                }
    return KILN_OK;
}

kiln_status interp_conv_transpose(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *wt = c->s.in[1];
    const kiln_tensor *bias = c->s.in_count > 2 ? c->s.in[2] : NULL;
    kiln_tensor *out = c->out[0];
    shape_window w;
    kiln_status st = geometry(c, wt->dims + 2, true, &w);
    if (st)
        return st;
    int64_t batch = x->dims[0], cin = x->dims[1], group = ir_attr_int(c->s.node, "group");
    int64_t cout_g = wt->dims[1], cout = cout_g * group, cin_g = cin / group;
    int64_t in_sp = product(w.spatial, x->dims + 2), out_sp = product(w.spatial, w.out);
    int64_t k_sp = product(w.spatial, w.kernel);
    double *acc = calloc((size_t)(batch * cout * out_sp) + 1, sizeof *acc);
    if (!acc)
        return interp_error(c, KILN_ERR_OOM, "out of memory");
    int64_t ipos[KILN_MAX_RANK], kpos[KILN_MAX_RANK];
    for (int64_t nb = 0; nb < batch; nb++)
        for (int64_t ch = 0; ch < cin; ch++) {
            int64_t g = ch / cin_g;
            for (int64_t i = 0; i < in_sp; i++) {
                unravel_dims(i, w.spatial, x->dims + 2, ipos);
                double xv = ir_tensor_get(x, (nb * cin + ch) * in_sp + i);
                for (int64_t kk = 0; kk < k_sp; kk++) {
                    unravel_dims(kk, w.spatial, w.kernel, kpos);
                    int64_t o = 0;
                    bool inside = true;
                    for (int d = 0; d < w.spatial && inside; d++) {
                        int64_t p = ipos[d] * w.stride[d] - w.pad_begin[d] + kpos[d] * w.dilation[d];
                        inside = p >= 0 && p < w.out[d];
                        o = o * w.out[d] + p;
                    }
                    if (!inside)
                        continue;
                    for (int64_t mo = 0; mo < cout_g; mo++)
                        acc[(nb * cout + g * cout_g + mo) * out_sp + o] +=
                            xv * ir_tensor_get(wt, (ch * cout_g + mo) * k_sp + kk);
                }
            }
        }
    for (int64_t i = 0; i < batch * cout * out_sp; i++)
        ir_tensor_set(out, i, acc[i] + (bias ? ir_tensor_get(bias, (i / out_sp) % cout) : 0));
    free(acc);
    return KILN_OK;
}

/* MaxPool and AveragePool: each output reduces the in-bounds part of its window. */
static kiln_status pool(interp_ctx *c, bool is_max) {
    const kiln_tensor *x = c->s.in[0];
    const ir_attr *ks = ir_node_attr(c->s.node, "kernel_shape");
    shape_window w;
    kiln_status st = geometry(c, ks->ints, false, &w);
    if (st)
        return st;
    bool include_pad = !is_max && ir_attr_int(c->s.node, "count_include_pad");
    bool col_major = is_max && ir_attr_int(c->s.node, "storage_order");
    int64_t planes = x->dims[0] * x->dims[1];
    int64_t in_sp = product(w.spatial, x->dims + 2), out_sp = product(w.spatial, w.out);
    int64_t k_sp = product(w.spatial, w.kernel);
    int64_t opos[KILN_MAX_RANK], kpos[KILN_MAX_RANK], xi;
    for (int64_t pl = 0; pl < planes; pl++)
        for (int64_t o = 0; o < out_sp; o++) {
            unravel_dims(o, w.spatial, w.out, opos);
            double acc = is_max ? -INFINITY : 0;
            int64_t count = 0, arg = -1;
            for (int64_t kk = 0; kk < k_sp; kk++) {
                unravel_dims(kk, w.spatial, w.kernel, kpos);
                if (include_pad) { /* count positions inside the padded input, not past it */
                    bool in_padded = true;
                    for (int d = 0; d < w.spatial; d++) {
                        int64_t p = opos[d] * w.stride[d] - w.pad_begin[d] + kpos[d] * w.dilation[d];
                        in_padded &= p < x->dims[d + 2] + w.pad_end[d];
                    }
                    count += in_padded;
                }
                if (!window_input(&w, x->dims + 2, opos, kpos, &xi))
                    continue;
                double v = ir_tensor_get(x, pl * in_sp + xi);
                if (!include_pad)
                    count++;
                if (!is_max)
                    acc += v;
                else if (v > acc || arg < 0)
                    acc = v, arg = xi;
            }
            ir_tensor_set(c->out[0], pl * out_sp + o, is_max ? acc : acc / (double)count);
            if (is_max && c->s.out_count > 1) {
                int64_t idx = arg, coord[KILN_MAX_RANK];
                if (col_major) { /* spatial axes in column-major order */
                    unravel_dims(arg, w.spatial, x->dims + 2, coord);
                    idx = 0;
                    for (int d = w.spatial - 1; d >= 0; d--)
                        idx = idx * x->dims[d + 2] + coord[d];
                }
                ir_tensor_set_int(c->out[1], pl * out_sp + o, pl * in_sp + idx);
            }
        }
    return KILN_OK;
}

kiln_status interp_max_pool(interp_ctx *c) { return pool(c, true); }
kiln_status interp_average_pool(interp_ctx *c) { return pool(c, false); }

static kiln_status global_pool(interp_ctx *c, bool is_max) {
    const kiln_tensor *x = c->s.in[0];
    int64_t planes = x->dims[0] * x->dims[1], sp = product(x->rank - 2, x->dims + 2);
    for (int64_t pl = 0; pl < planes; pl++) {
        double acc = is_max ? -INFINITY : 0;
        for (int64_t i = 0; i < sp; i++) {
            double v = ir_tensor_get(x, pl * sp + i);
            acc = is_max ? (v > acc ? v : acc) : acc + v;
        }
        ir_tensor_set(c->out[0], pl, is_max ? acc : acc / (double)sp);
    }
    return KILN_OK;
}

kiln_status interp_global_average_pool(interp_ctx *c) { return global_pool(c, false); }
kiln_status interp_global_max_pool(interp_ctx *c) { return global_pool(c, true); }

/* Inference: normalizes with the running statistics. Training mode: with the batch's
 * mean and (population) variance over N and the spatial axes, and also outputs the
 * running statistics moved toward them by (1 - momentum). */
kiln_status interp_batch_norm(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *scale = c->s.in[1], *bias = c->s.in[2];
    const kiln_tensor *mean = c->s.in[3], *var = c->s.in[4];
    double eps = ir_attr_float(c->s.node, "epsilon"), momentum = ir_attr_float(c->s.node, "momentum");
    bool training = ir_attr_int(c->s.node, "training_mode");
    int64_t ch = x->dims[1], sp = product(x->rank - 2, x->dims + 2), n = kiln_tensor_count(x);
    double *stats = calloc((size_t)(2 * ch + 1), sizeof *stats), *bvar = stats + ch;
    if (!stats)
        return interp_error(c, KILN_ERR_OOM, "out of memory");
    for (int64_t k = 0; k < ch; k++) {
        if (!training) {
            stats[k] = ir_tensor_get(mean, k), bvar[k] = ir_tensor_get(var, k);
            continue;
        }
        double s = 0, sq = 0;
        int64_t count = n / ch;
        for (int64_t i = 0; i < n; i++)
            if ((i / sp) % ch == k) {
                s += ir_tensor_get(x, i);
                sq += ir_tensor_get(x, i) * ir_tensor_get(x, i);
            }
        stats[k] = count ? s / (double)count : 0;
        bvar[k] = count ? sq / (double)count - stats[k] * stats[k] : 0;
        if (c->s.out_count > 1)
            ir_tensor_set(c->out[1], k, ir_tensor_get(mean, k) * momentum + stats[k] * (1 - momentum));
        if (c->s.out_count > 2)
            ir_tensor_set(c->out[2], k, ir_tensor_get(var, k) * momentum + bvar[k] * (1 - momentum));
    }
    for (int64_t i = 0; i < n; i++) {
        int64_t k = (i / sp) % ch;
        double v = (ir_tensor_get(x, i) - stats[k]) / sqrt(bvar[k] + eps);
        ir_tensor_set(c->out[0], i, v * ir_tensor_get(scale, k) + ir_tensor_get(bias, k));
    }
    free(stats);
    return KILN_OK;
}

kiln_status interp_instance_norm(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *scale = c->s.in[1], *bias = c->s.in[2];
    double eps = ir_attr_float(c->s.node, "epsilon");
    int64_t ch = x->dims[1], planes = x->dims[0] * ch, sp = product(x->rank - 2, x->dims + 2);
    for (int64_t pl = 0; pl < planes; pl++) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < sp; i++)
            mean += ir_tensor_get(x, pl * sp + i);
        mean /= (double)sp;
        for (int64_t i = 0; i < sp; i++) {
            double dv = ir_tensor_get(x, pl * sp + i) - mean;
            var += dv * dv;
        }
        var /= (double)sp;
        double s = ir_tensor_get(scale, pl % ch) / sqrt(var + eps), b = ir_tensor_get(bias, pl % ch);
        for (int64_t i = 0; i < sp; i++)
            ir_tensor_set(c->out[0], pl * sp + i, (ir_tensor_get(x, pl * sp + i) - mean) * s + b);
    }
    return KILN_OK;
}

kiln_status interp_layer_norm(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *scale = c->s.in[1];
    const kiln_tensor *bias = c->s.in_count > 2 ? c->s.in[2] : NULL;
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), x->rank, "axis", &axis);
    double eps = ir_attr_float(c->s.node, "epsilon");
    kiln_tensor tail = {.rank = x->rank - axis};
    memcpy(tail.dims, x->dims + axis, sizeof(int64_t) * (size_t)tail.rank);
    int64_t rows = product(axis, x->dims), len = product(tail.rank, tail.dims);
    int64_t coord[KILN_MAX_RANK];
    for (int64_t r = 0; r < rows; r++) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < len; i++)
            mean += ir_tensor_get(x, r * len + i);
        mean /= (double)len;
        for (int64_t i = 0; i < len; i++) {
            double dv = ir_tensor_get(x, r * len + i) - mean;
            var += dv * dv;
        }
        double inv = 1 / sqrt(var / (double)len + eps);
        for (int64_t i = 0; i < len; i++) {
            interp_unravel(i, &tail, coord);
            double y = (ir_tensor_get(x, r * len + i) - mean) * inv *
                       ir_tensor_get(scale, interp_broadcast_index(scale, coord, tail.rank));
            if (bias)
                y += ir_tensor_get(bias, interp_broadcast_index(bias, coord, tail.rank));
            ir_tensor_set(c->out[0], r * len + i, y);
        }
        if (c->s.out_count > 1)
            ir_tensor_set(c->out[1], r, mean);
        if (c->s.out_count > 2)
            ir_tensor_set(c->out[2], r, inv);
    }
    return KILN_OK;
}

/* out = softmax (or log-softmax) of x along `axis`, shifted by the row max for stability. */
static void softmax_along(const kiln_tensor *x, int axis, bool log_out, kiln_tensor *out) {
    int64_t outer, len, inner;
    interp_around_axis(x, axis, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            int64_t base = o * len * inner + in;
            double mx = -INFINITY, sum = 0;
            for (int64_t i = 0; i < len; i++)
                mx = fmax(mx, ir_tensor_get(x, base + i * inner));
            for (int64_t i = 0; i < len; i++)
                sum += exp(ir_tensor_get(x, base + i * inner) - mx);
            for (int64_t i = 0; i < len; i++) {
                double z = ir_tensor_get(x, base + i * inner) - mx;
                ir_tensor_set(out, base + i * inner, log_out ? z - log(sum) : exp(z) / sum);
            }
        }
}

/* Softmax along one axis (opset 13 semantics). */
static kiln_status softmax(interp_ctx *c, bool log_out) {
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), c->s.in[0]->rank, "axis", &axis);
    softmax_along(c->s.in[0], axis, log_out, c->out[0]);
    return KILN_OK;
}

kiln_status interp_softmax(interp_ctx *c) { return softmax(c, false); }
kiln_status interp_log_softmax(interp_ctx *c) { return softmax(c, true); }

/* The negative log-likelihood of `logp` ([N, C, D] flattened) at the target classes,
 * weighted, reduced as the node's `reduction` says; targets equal to ignore_index count
 * neither in the sum nor in the mean's denominator. */
static kiln_status nll(interp_ctx *c, const kiln_tensor *logp, const kiln_tensor *target,
                       const kiln_tensor *weight, kiln_tensor *out) {
    int64_t n = logp->dims[0], classes = logp->dims[1], inner = 1;
    for (int d = 2; d < logp->rank; d++)
        inner *= logp->dims[d];
    const ir_attr *ignore_attr = ir_node_attr(c->s.node, "ignore_index");
    const char *reduction = ir_attr_string(c->s.node, "reduction");
    double sum = 0, weight_sum = 0;
    for (int64_t i = 0; i < n * inner; i++) {
        int64_t cls = ir_tensor_get_int(target, i), b = i / inner, d = i % inner;
        double loss = 0, w = 0;
        if (!ignore_attr || cls != ignore_attr->i) {
            if (cls < 0 || cls >= classes)
                return interp_error(c, KILN_ERR_INVALID, "target %lld is not a class in [0, %lld)",
                                    (long long)cls, (long long)classes);
            w = weight ? ir_tensor_get(weight, cls) : 1;
            loss = -ir_tensor_get(logp, (b * classes + cls) * inner + d) * w;
        }
        if (!strcmp(reduction, "none"))
            ir_tensor_set(out, i, loss);
        sum += loss;
        weight_sum += w;
    }
    if (!strcmp(reduction, "sum"))
        ir_tensor_set(out, 0, sum);
    else if (!strcmp(reduction, "mean"))
        ir_tensor_set(out, 0, sum / weight_sum);
    return KILN_OK;
}

kiln_status interp_nll_loss(interp_ctx *c) {
    return nll(c, c->s.in[0], c->s.in[1], c->s.in_count > 2 ? c->s.in[2] : NULL, c->out[0]);
}

/* log_softmax over the class axis (1), then the negative log-likelihood. */
kiln_status interp_softmax_cross_entropy(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    kiln_tensor *logp = c->s.out_count > 1 ? c->out[1] : NULL;
    kiln_diag td = {0};
    if (!logp && kiln_tensor_create(x->dtype, x->rank, x->dims, &logp, &td))
        return interp_error(c, KILN_ERR_OOM, "%s", td.message);
    softmax_along(x, 1, true, logp);
    kiln_status st = nll(c, logp, c->s.in[1], c->s.in_count > 2 ? c->s.in[2] : NULL, c->out[0]);
    if (c->s.out_count < 2)
        kiln_tensor_free(logp);
    return st;
}

/* 1 at the first maximum along the axis, 0 elsewhere. */
kiln_status interp_hardmax(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), x->rank, "axis", &axis);
    int64_t outer, len, inner;
    interp_around_axis(x, axis, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            int64_t base = o * len * inner + in, best = 0;
            for (int64_t i = 1; i < len; i++)
                if (ir_tensor_get(x, base + i * inner) > ir_tensor_get(x, base + best * inner))
                    best = i;
            for (int64_t i = 0; i < len; i++)
                ir_tensor_set(c->out[0], base + i * inner, i == best);
        }
    return KILN_OK;
}

/* x / ||x||_p along the axis (p = 1 or 2). */
kiln_status interp_lp_norm(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    int axis;
    shape_axis(&c->s, ir_attr_int(c->s.node, "axis"), x->rank, "axis", &axis);
    bool l1 = ir_attr_int(c->s.node, "p") == 1;
    int64_t outer, len, inner;
    interp_around_axis(x, axis, &outer, &len, &inner);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t in = 0; in < inner; in++) {
            int64_t base = o * len * inner + in;
            double norm = 0;
            for (int64_t i = 0; i < len; i++) {
                double v = ir_tensor_get(x, base + i * inner);
                norm += l1 ? fabs(v) : v * v;
            }
            norm = l1 ? norm : sqrt(norm);
            for (int64_t i = 0; i < len; i++)
                ir_tensor_set(c->out[0], base + i * inner, ir_tensor_get(x, base + i * inner) / norm);
        }
    return KILN_OK;
}

/* Local response normalization across channels. */
kiln_status interp_lrn(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    double alpha = ir_attr_float(c->s.node, "alpha"), beta = ir_attr_float(c->s.node, "beta");
    double bias = ir_attr_float(c->s.node, "bias");
    int64_t size = ir_attr_int(c->s.node, "size"), ch = x->dims[1];
    int64_t sp = product(x->rank - 2, x->dims + 2), lo = (size - 1) / 2, hi = size - 1 - lo;
    for (int64_t i = 0; i < kiln_tensor_count(x); i++) {
        int64_t k = (i / sp) % ch, base = i - k * sp;
        double sq = 0;
        for (int64_t j = k - lo; j <= k + hi; j++)
            if (j >= 0 && j < ch)
                sq += ir_tensor_get(x, base + j * sp) * ir_tensor_get(x, base + j * sp);
        ir_tensor_set(c->out[0], i, ir_tensor_get(x, i) / pow(bias + alpha / (double)size * sq, beta));
    }
    return KILN_OK;
}

/* (x - mean) / (sqrt(variance) + 1e-9) over the axes, as ONNX's function body says. */
kiln_status interp_mvn(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0];
    const ir_attr *axes = ir_node_attr(c->s.node, "axes");
    bool mask[KILN_MAX_RANK] = {0};
    if (!axes)
        mask[0] = mask[2] = mask[3] = true;
    for (int i = 0; axes && i < axes->count; i++)
        mask[axes->ints[i] < 0 ? axes->ints[i] + x->rank : axes->ints[i]] = true;
    kiln_tensor kept = {.rank = x->rank};
    int64_t count = 1, coord[KILN_MAX_RANK];
    for (int d = 0; d < x->rank; d++) {
        kept.dims[d] = mask[d] ? 1 : x->dims[d];
        count *= mask[d] ? x->dims[d] : 1;
    }
    int64_t groups = kiln_tensor_count(&kept), n = kiln_tensor_count(x);
    double *sum = calloc((size_t)(2 * groups + 1), sizeof *sum), *sq = sum + groups;
    if (!sum)
        return interp_error(c, KILN_ERR_OOM, "out of memory");
    for (int pass = 0; pass < 2; pass++)
        for (int64_t i = 0; i < n; i++) {
            interp_unravel(i, x, coord);
            for (int d = 0; d < x->rank; d++)
                if (mask[d])
                    coord[d] = 0;
            int64_t g = interp_ravel(coord, &kept);
            double v = ir_tensor_get(x, i), mean = sum[g] / (double)count;
            if (pass == 0) {
                sum[g] += v;
                sq[g] += v * v;
            } else {
                double var = sq[g] / (double)count - mean * mean;
                ir_tensor_set(c->out[0], i, (v - mean) / (sqrt(var > 0 ? var : 0) + 1e-9));
            }
        }
    free(sum);
    return KILN_OK;
}

/* Scatters each value to the position its index names. Indices address the natural
 * output shape; a larger output_shape pads that at the end of each axis. */
kiln_status interp_max_unpool(interp_ctx *c) {
    const kiln_tensor *x = c->s.in[0], *idx = c->s.in[1];
    kiln_tensor *out = c->out[0];
    kiln_tensor natural = {.rank = x->rank};
    kiln_status st = shape_max_unpool_default(&c->s, natural.dims);
    if (st)
        return st;
    int64_t total = kiln_tensor_count(&natural), coord[KILN_MAX_RANK];
    if (kiln_tensor_count(idx) != kiln_tensor_count(x))
        return interp_error(c, KILN_ERR_SHAPE, "indices must have the input's shape");
    for (int64_t i = 0; i < kiln_tensor_count(x); i++) {
        int64_t at = ir_tensor_get_int(idx, i);
        if (at < 0 || at >= total)
            return interp_error(c, KILN_ERR_INVALID, "index %lld is outside the output of %lld elements",
                                (long long)at, (long long)total);
        interp_unravel(at, &natural, coord);
        for (int d = 0; d < out->rank; d++)
            if (coord[d] >= out->dims[d])
                return interp_error(c, KILN_ERR_SHAPE, "output_shape is smaller than the unpooled size");
        ir_tensor_set(out, interp_ravel(coord, out), ir_tensor_get(x, i));
    }
    return KILN_OK;
}

/* The ONNX optimizer updates, element by element (formulas from the operator specs). */
static kiln_status optimizer(interp_ctx *c, int groups) {
    const ir_node *node = c->s.node;
    int64_t n = (c->s.in_count - 2) / groups, t = ir_tensor_get_int(c->s.in[1], 0);
    double rate = ir_tensor_get(c->s.in[0], 0);
    for (int64_t i = 0; i < n; i++) {
        const kiln_tensor *x = c->s.in[2 + i], *g = c->s.in[2 + n + i], *s1 = c->s.in[2 + 2 * n + i];
        const kiln_tensor *s2 = groups == 4 ? c->s.in[2 + 3 * n + i] : NULL;
        for (int64_t e = 0; e < kiln_tensor_count(x); e++) {
            double xv = ir_tensor_get(x, e), gv = ir_tensor_get(g, e), a = ir_tensor_get(s1, e);
            double greg = ir_attr_float(node, "norm_coefficient") * xv + gv, x_new, a_new, b_new = 0;
            if (node->op == IR_OP_ADAGRAD) {
                double r = rate / (1 + (double)t * ir_attr_float(node, "decay_factor"));
                a_new = a + greg * greg;
                x_new = xv - r * greg / (sqrt(a_new) + ir_attr_float(node, "epsilon"));
            } else if (node->op == IR_OP_MOMENTUM) {
                double alpha = ir_attr_float(node, "alpha"), beta = t > 0 ? ir_attr_float(node, "beta") : 1;
                a_new = alpha * a + beta * greg;
                bool nesterov = !strcmp(ir_attr_string(node, "mode"), "nesterov");
                x_new = xv - rate * (nesterov ? greg + alpha * a_new : a_new);
            } else { /* Adam: s1 is V (first moment), s2 is H (second moment) */
                double alpha = ir_attr_float(node, "alpha"), beta = ir_attr_float(node, "beta");
                a_new = alpha * a + (1 - alpha) * greg;
                b_new = beta * ir_tensor_get(s2, e) + (1 - beta) * greg * greg;
                double r = t > 0 ? rate * sqrt(1 - pow(beta, (double)t)) / (1 - pow(alpha, (double)t)) : rate;
                x_new = (xv - r * a_new / (sqrt(b_new) + ir_attr_float(node, "epsilon"))) *
                        (1 - ir_attr_float(node, "norm_coefficient_post"));
            }
            ir_tensor_set(c->out[i], e, x_new);
            ir_tensor_set(c->out[n + i], e, a_new);
            if (groups == 4)
                ir_tensor_set(c->out[2 * n + i], e, b_new);
        }
    }
    return KILN_OK;
}

kiln_status interp_adagrad(interp_ctx *c) { return optimizer(c, 3); }
kiln_status interp_momentum(interp_ctx *c) { return optimizer(c, 3); }
kiln_status interp_adam(interp_ctx *c) { return optimizer(c, 4); }

/* Element i keeps 1 / (1 - ratio) where the top bits of its draw clear the ratio, else 0;
 * the key is the step's seed mixed with the node's salt (runtime/rng.h). */
kiln_status interp_dropout_mask(interp_ctx *c) {
    double ratio = ir_attr_float(c->s.node, "ratio");
    uint64_t key = kiln_rng_bits((uint64_t)ir_tensor_get_int(c->s.in[1], 0), (uint64_t)ir_attr_int(c->s.node, "salt"));
    uint64_t keep_from = kiln_rng_keep_from(ratio);
    for (int64_t i = 0; i < kiln_tensor_count(c->out[0]); i++) {
        bool keep = kiln_rng_bits(key, (uint64_t)i) >> (64 - KILN_RNG_KEEP_BITS) >= keep_from;
        ir_tensor_set(c->out[0], i, keep ? 1 / (1 - ratio) : 0);
    }
    return KILN_OK;
}
