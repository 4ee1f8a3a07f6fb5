/*
 * shape.h — dtype and shape inference, one rule per op (expanded from ir/ops.def).
 *
 * A rule sees the node, its input types and, where known, input values (constants, or
 * everything when the interpreter runs it), and fills in each output's dtype, rank and
 * dims. Unknown input values give IR_DIM_UNKNOWN dims or rank -1, never a guess. The
 * interpreter runs the same rules on concrete tensors to size its outputs, and uses the
 * geometry helpers below (axes, windows, slices, pads) so that shapes and values always
 * agree.
 */
#ifndef KILN_PASSES_SHAPE_H
#define KILN_PASSES_SHAPE_H

#include "ir/graph.h"

typedef struct shape_ctx {
    const ir_node *node;
    const kiln_tensor *const *in; /* input_count entries; NULL: absent; data NULL: unknown */
    int in_count;
    kiln_tensor *out; /* output_count entries to fill (data untouched) */
    int out_count;
    kiln_diag *d;
} shape_ctx;

typedef kiln_status (*shape_fn)(shape_ctx *c);

#define OP(ID, fn, ...) kiln_status shape_##fn(shape_ctx *c);
#include "ir/ops.def"
#undef OP

/* Runs n's rule. in[i] describes input i (NULL if absent); out must hold output_count. */
kiln_status shape_infer_node(const ir_node *n, const kiln_tensor *const *in, kiln_tensor *out,
                             kiln_diag *d);

/* ---- helpers shared by the rules and the interpreter -------------------------------- */

kiln_status shape_error(const shape_ctx *c, const char *fmt, ...) KILN_PRINTF(2, 3);
/* The input's value, or NULL when absent or not known. */
const kiln_tensor *shape_value(const shape_ctx *c, int i);
/* Normalizes a possibly negative axis into [0, rank), or reports `what` out of range. */
kiln_status shape_axis(const shape_ctx *c, int64_t axis, int rank, const char *what, int *out);
void shape_set(shape_ctx *c, int i, kiln_dtype dt, int rank, const int64_t *dims);
/* numpy broadcasting of two shapes into out (rank = max of the two). */
kiln_status shape_broadcast(const shape_ctx *c, const kiln_tensor *a, const kiln_tensor *b,
                            kiln_tensor *out);
/* Reads a 1-D (or scalar) integer input into vals (at most `cap`); *known false if the
 * value is not known. */
kiln_status shape_ints(const shape_ctx *c, int i, int64_t *vals, int cap, int *count, bool *known);
/* Requires input i's dtype to satisfy `ok`, naming `what` it must be. */
kiln_status shape_require(const shape_ctx *c, int i, bool (*ok)(kiln_dtype), const char *what);
bool shape_is_float(kiln_dtype dt);
bool shape_is_numeric(kiln_dtype dt);
bool shape_is_bool(kiln_dtype dt);
bool shape_is_index(kiln_dtype dt); /* i32 or i64 */
kiln_status shape_same_dtype(const shape_ctx *c, int a, int b);

/* Reduction axes (input 1 or the `axes` attribute): mask[d] for each reduced axis.
 * *identity is set when noop_with_empty_axes leaves the input as it is. *known is false
 * when the axes input is not known. */
kiln_status shape_reduce_axes(const shape_ctx *c, bool *mask, bool *identity, bool *known);

/* Window geometry of Conv, ConvTranspose and the pools, per spatial axis. */
typedef struct shape_window {
    int spatial;                      /* number of spatial axes */
    int64_t kernel[KILN_MAX_RANK];
    int64_t stride[KILN_MAX_RANK];
    int64_t dilation[KILN_MAX_RANK];
    int64_t pad_begin[KILN_MAX_RANK]; /* may be negative only for ConvTranspose */
    int64_t pad_end[KILN_MAX_RANK];
    int64_t out[KILN_MAX_RANK];       /* output size, IR_DIM_UNKNOWN if the input's is */
} shape_window;
/* x: the data input; kernel: spatial kernel sizes (from W or kernel_shape);
 * transposed: ConvTranspose's output formula; ceil_mode: pools. */
kiln_status shape_window_geometry(const shape_ctx *c, const kiln_tensor *x, const int64_t *kernel,
                                  bool transposed, bool ceil_mode, shape_window *w);

/* Slice parameters per axis of the data input: start, step and count (elements taken). */
typedef struct shape_slice_spec {
    int64_t start[KILN_MAX_RANK], step[KILN_MAX_RANK], count[KILN_MAX_RANK];
} shape_slice_spec;
/* ConvNCHWc's input as the NCHW tensor it stands for (a blocked [N, C / b, H, W, b] gives
 * [N, C, H, W]), and its window geometry (kernel from the packed W [Cout / b, KH, KW, Cin, b]). */
void shape_nchwc_plain(const kiln_tensor *x, kiln_tensor *plain);
kiln_status shape_nchwc_window(const shape_ctx *c, const kiln_tensor *x, const kiln_tensor *w, shape_window *win);
/* WinogradInput's geometry (F(2x2, 3x3), stride 1): X's dims as NCHW, the output OH x OW
 * (pads from the node), ceil(OH / 2) x ceil(OW / 2) tiles per image; tiles unknown
 * (IR_DIM_UNKNOWN) where X's dims are. */
typedef struct shape_winograd {
    int64_t batch, channels, h, w, pad_top, pad_left, oh, ow, th, tw, tiles;
} shape_winograd;
kiln_status shape_winograd_geometry(const shape_ctx *c, const kiln_tensor *x, shape_winograd *g);
kiln_status shape_slice_params(const shape_ctx *c, shape_slice_spec *s, bool *known);

/* Pad amounts per axis: begin[d], end[d] (negative crops). */
kiln_status shape_pad_amounts(const shape_ctx *c, int64_t *begin, int64_t *end, bool *known);
/* Pad's source coordinate in [0, dim) of padded coordinate p (outside [0, dim)) in the
 * reflect, edge or wrap mode. */
int64_t shape_pad_source(int64_t p, int64_t dim, const char *mode);

/* MaxUnpool's output dims without output_shape; its indices address this shape. */
kiln_status shape_max_unpool_default(const shape_ctx *c, int64_t *dims);

/* Resize: per axis, the scale factor (output / input, or as given) and the output size.
 * Inputs: X, roi, scales, sizes (exactly one of scales and sizes). */
kiln_status shape_resize_geometry(const shape_ctx *c, double *scales, int64_t *dims, bool *known);
/* Resize's 1-D sampling weights, as ONNX's reference computes them: the source coordinate
 * of output index x along one axis (input size in), its n neighbours and their
 * coefficients. False if the coordinate falls outside the input for tf_crop_and_resize
 * (the output is then extrapolation_value). The interpreter and Resize's gradient use it. */
typedef struct shape_resize_axis {
    int64_t index[4];
    double coeff[4];
    int n;
} shape_resize_axis;
bool shape_resize_sample(const ir_node *node, int64_t x, int64_t in, double scale, double roi_start, double roi_end,
                         shape_resize_axis *ax);

/* The dimensions of RNN, GRU and LSTM (see passes/shape_rnn.c). */
typedef struct shape_rnn_spec {
    int directions; /* 1 or 2 */
    bool reverse;   /* a single reverse direction */
    int64_t layout, seq, batch, input, hidden;
    int gates; /* 1 RNN, 3 GRU, 4 LSTM */
} shape_rnn_spec;
kiln_status shape_rnn_dims(const shape_ctx *c, int gates, shape_rnn_spec *r);
/* A recurrent op's activation function, with its alpha and beta (ONNX defaults filled in). */
typedef struct shape_activation {
    const char *name; /* "Tanh", "Sigmoid", "Relu", "Affine", "LeakyRelu", ... */
    double alpha, beta;
} shape_activation;
enum { SHAPE_RNN_MAX_ACTIVATIONS = 6 }; /* 3 per direction (LSTM), 2 directions */
/* The activations of every direction in order (per_direction: RNN 1, GRU 2, LSTM 3), from
 * the attributes activations / activation_alpha / activation_beta or the defaults. */
kiln_status shape_rnn_activations(const shape_ctx *c, int per_direction, int directions, shape_activation *out);

/* Split: the size of each output along the split axis. */
kiln_status shape_split_sizes(const shape_ctx *c, int axis, int64_t *sizes, bool *known);

#endif
