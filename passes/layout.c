/*
 * layout.c — data layouts chosen at compile time.
 *
 * A Gemm with transB = 1 and a constant B ([N, K]) gets B transposed once into a new
 * constant [K, N] and transB = 0: compiled code then reads B along n, consecutive elements
 * for consecutive lanes of its vector loop, instead of gathering with a stride of K.
 *
 * An inference Conv (one group, or groups that fit the blocks: grouped(); constant f32
 * weights, rows that do not already fill the vectors, readers that can all take the result
 * blocked; rows that fill the vectors too if it is grouped, takes Winograd's kernels, or
 * its result flows into such a conv or its input from one) becomes ConvNCHWc or, 3x3 with
 * stride 1 where that pays (winograd_pays), WinogradInput -> MatMul -> WinogradOutput;
 * either way its output is [N, C' / b, H, W, b], b channels innermost, C' the channels
 * padded to a multiple of b (padded(): MobileNetV2's 24), so its kernel's vectors run
 * along channels and fill every lane whatever the image's width (lower_window.c), with its
 * weights packed once here, [Cout' / b, KH, KW, Cin' or Cin / group, b], zero for padding
 * channels. The blocked value then flows on through the nodes that can take it as it is:
 * elementwise nodes whose other inputs are scalars, per-channel constants (reshaped to the
 * blocks) or blocked [N, C, 1, 1] values (a squeeze-and-excitation scale), inference batch
 * norms (as Mul and Add), 2-D and global pools (a 3-D pool over [H, W, b] with a window of
 * 1 along b), further convs (which read either layout), a Transpose to NHWC (whole blocks
 * moved) and a classifier: a Flatten into a Gemm with constant weights reads the blocked
 * value flattened, the weights' rows permuted to match (flat_gemm). A Transpose from NHWC
 * back to NCHW whose value flows into a blocked conv gets a blocked twin of views. Where an
 * NCHW reader remains (a graph output, an op with no blocked form), the NCHW value is made
 * back from the blocked one by a Transpose and a Reshape (and a Slice, past padding); an
 * NCHW value no reader needs any more is removed by dce, with the nodes that made it. A
 * blocked conv sums over (kh, kw, ci) where Conv's kernels sum over (ci, kh, kw),
 * Winograd's over transformed tiles, and a batch norm's S and T are rounded to f32: the
 * results differ from the unblocked graph's by rounding.
 */
#include "passes/autodiff.h"
#include "passes/pass.h"
#include "passes/tuning.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static kiln_status transpose_b(ir_graph *g, ir_node *n, kiln_diag *d) {
    const ir_value *b = n->inputs[1];
    const kiln_tensor *w = b->init;
    int64_t rows = w->dims[0], cols = w->dims[1], dims[2] = {cols, rows};
    size_t size = kiln_dtype_size(w->dtype);
    kiln_tensor *t;
    ir_value *v;
    kiln_status st = ir_graph_new_tensor(g, w->dtype, 2, dims, &t, d);
    if (!st)
        st = ir_graph_new_value(g, ir_graph_fresh_name(g, b->name), IR_VAL_NODE, b->loc, &v, d);
    if (st)
        return st;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            memcpy((char *)t->data + (size_t)(c * rows + r) * size, (const char *)w->data + (size_t)(r * cols + c) * size, size);
    if ((st = ir_value_make_const(g, v, t, d)))
        return st;
    n->inputs[1] = v;
    for (int i = 0; i < n->attr_count; i++)
        if (!strcmp(n->attrs[i].name, "transB"))
            n->attrs[i].i = 0;
    return KILN_OK;
}

enum { NCHWC_BLOCK = 16 };

/* Channels as the blocked layout holds them: a whole number of blocks. The channels past
 * C in the last block are padding: a conv writes zeros there (zero weights and bias), maps
 * that keep values finite (keeps_finite) keep them finite, and readers ignore them (a
 * conv's weights for those input channels are zero, the NCHW value slices them off). */
static int64_t padded(int64_t channels) { return (channels + NCHWC_BLOCK - 1) / NCHWC_BLOCK * NCHWC_BLOCK; }

typedef struct blocking {
    grad_ctx b;          /* the graph builder (gb_*) */
    ir_value **twin;     /* by value id: the blocked value that stands for an NCHW one */
    bool *plain_reader;  /* by value id: some node reads it that cannot take it blocked */
    bool *to_blocked;    /* by value id: it flows (through maps and pools) into a Winograd or grouped conv */
    bool *from_blocked;  /* ... it flows from a conv blocked whatever its rows (a depthwise conv's, say) */
    bool *to_conv;       /* ... it flows (through maps and pools, in any slot) into a conv blocked in any case */
    const ir_node **reader;    /* by value id: its one reader (NULL: none, several, or a graph output) */
    const kiln_tuning *tuning; /* kiln tune's choices, or NULL */
    int threads;               /* the threads runs will use (0: unknown, several) */
} blocking;

static bool same_dims(const kiln_tensor *a, const kiln_tensor *b) {
    return a->rank == b->rank && !memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank);
}

/* The conv's weights [Cout, Cin, KH, KW] as a constant [Cout' / b, KH, KW, Cin', b]: the
 * order the kernel's loops read them in (input channels innermost, see lower_window.c),
 * zero for the padding channels Cout' = padded(Cout) and, for a padded input, Cin'. */
static ir_value *packed_weights(blocking *k, const kiln_tensor *w, int64_t cin_p) {
    int64_t b = NCHWC_BLOCK, cin = w->dims[1], taps = w->dims[2] * w->dims[3];
    int64_t dims[5] = {padded(w->dims[0]) / b, w->dims[2], w->dims[3], cin_p, b};
    ir_value *v = gb_tensor(&k->b, w->dtype, 5, dims, NULL);
    if (!v)
        return NULL;
    float *to = v->init->data;
    const float *from = w->data;
    for (int64_t o = 0; o < w->dims[0]; o++)
        for (int64_t i = 0; i < cin; i++)
            for (int64_t t = 0; t < taps; t++)
                to[((o / b * taps + t) * cin_p + i) * b + o % b] = from[(o * cin + i) * taps + t];
    return v;
}

/* A conv's bias (or any [C] constant) padded to padded(C) with zeros. */
static ir_value *padded_vector(blocking *k, ir_value *v) {
    const kiln_tensor *t = v->init;
    int64_t n = padded(t->dims[0]);
    if (n == t->dims[0])
        return v;
    ir_value *p = gb_tensor(&k->b, t->dtype, 1, &n, NULL);
    if (p)
        memcpy(p->init->data, t->data, kiln_tensor_bytes(t));
    return p;
}

/* A constant read per channel ([C, 1, 1] or [1, C, 1, 1] against [N, C, H, W]) as the
 * same data shaped [1, C' / b, 1, 1, b], C' = padded(C), zeros past C; NULL if t is not one. */
static ir_value *blocked_channels(blocking *k, const ir_value *t, int64_t channels) {
    const kiln_tensor *c = t->init;
    if (!c || c->rank < 3 || c->rank > 4 || (c->rank == 4 && c->dims[0] != 1) || c->dims[c->rank - 3] != channels ||
        c->dims[c->rank - 2] != 1 || c->dims[c->rank - 1] != 1)
        return NULL;
    int64_t dims[5] = {1, padded(channels) / NCHWC_BLOCK, 1, 1, NCHWC_BLOCK};
    ir_value *v = gb_tensor(&k->b, c->dtype, 5, dims, NULL);
    if (v)
        memcpy(v->init->data, c->data, kiln_tensor_bytes(c));
    return v;
}

static void copy_attrs(blocking *k, ir_node *to, const ir_node *from) {
    for (int i = 0; i < from->attr_count && !k->b.st; i++) {
        const ir_attr *a = &from->attrs[i];
        if (!strcmp(a->name, "group")) /* a blocked conv's is set for its padded channels */
            continue;
        ir_attr *c = ir_node_add_attr(k->b.g, to, a->name, a->kind);
        if (!c) {
            k->b.st = diag_error(k->b.d, LOC_NONE, KILN_ERR_OOM, "out of memory");
            return;
        }
        *c = *a; /* the arrays stay shared: both live in the graph's arena, read only */
    }
}

/* Where the row schedule (lower_conv) already fills every lane, a multiple of 16 output
 * columns read with unit stride, it stays: the bundled CNN's 32- and 16-column convs ran
 * at 194 and 212 GFLOP/s there, 165 and 189 blocked (1 thread). */
static bool rows_fill_lanes(const ir_node *n) {
    const ir_attr *s = ir_node_attr(n, "strides");
    bool unit = !s || s->count != 2 || s->ints[1] == 1;
    return unit && n->outputs[0]->type.rank == 4 && n->outputs[0]->type.dims[3] % NCHWC_BLOCK == 0;
}

/* Winograd F(2x2, 3x3) in place of a 3x3 stride-1 conv: each 2 x 2 block of outputs from a
 * 4 x 4 input tile with 16 products per input and output channel where the direct conv
 * takes 36, 2.25x fewer multiplies; the products are 16 matrix products [tiles, Cin] x
 * [Cin, Cout], which the GEMM kernel runs near the FMA peak. The transforms cost a pass
 * over 16 / 4 = 4x the input and the output each, and the transformed weights are 16 / 9 of
 * the conv's. ResNet-18 at 1 thread 19.8 -> 15.2 ms, 2 threads 10.9 -> 9.0-9.4: a 64-channel
 * 56x56 conv took 1.15 ms direct, 0.52 (products, 196 GFLOP/s) + 0.14 + 0.08 (transforms).
 * With few tiles the weights' stream dominates, the more so the more cores share the
 * memory's bandwidth: the 512-channel 7x7 convs (16 tiles, 16 MiB of transformed weights
 * against 9 MiB) run 1% faster as Winograd at 1 thread (ResNet-18 14.01-14.06 ms against
 * 14.11-14.22 direct) but 2% slower at 2 (9.37-9.41 against 9.08-9.28; per conv 0.75-0.96
 * ms and the transforms against 0.78-0.82 direct), so past WINOGRAD_SHARED_WEIGHTS they
 * stay direct unless one thread runs. With few input channels the transforms dominate:
 * the bundled CNN's first conv (3 channels) took 0.16 ms direct, 0.53 as Winograd. */
enum {
    WINOGRAD_MIN_TILES = 16,
    WINOGRAD_MIN_CHANNELS = 16,
    WINOGRAD_MAX_WEIGHTS = 16 << 20,   /* transformed weights, one thread */
    WINOGRAD_SHARED_WEIGHTS = 8 << 20, /* ... several (or unknown) */
};

/* Whether Winograd F(2x2, 3x3) computes n at all: 3x3, stride and dilation 1, explicit pads. */
static bool winograd_fits(const ir_node *n) {
    const kiln_tensor *w = n->inputs[1]->init;
    const ir_attr *s = ir_node_attr(n, "strides"), *dl = ir_node_attr(n, "dilations");
    for (int i = 0; i < 2; i++)
        if ((s && s->count == 2 && s->ints[i] != 1) || (dl && dl->count == 2 && dl->ints[i] != 1))
            return false;
    return w->dims[2] == 3 && w->dims[3] == 3 && !strcmp(ir_attr_string(n, "auto_pad"), "NOTSET") &&
           n->outputs[0]->type.rank == 4 && ir_attr_int(n, "group") == 1 && w->dims[0] % NCHWC_BLOCK == 0;
}

/* Winograd where it fits and the tuning file says so, or else where the cost rule above
 * expects it to pay. */
static bool winograd_pays(const blocking *k, const ir_node *n) {
    if (!winograd_fits(n))
        return false;
    int tuned = tuning_get(k->tuning, TUNE_CONV, n->name);
    if (tuned != TUNE_UNSET)
        return tuned == TUNE_WINOGRAD;
    const kiln_tensor *w = n->inputs[1]->init, *out = &n->outputs[0]->type;
    int64_t tiles = out->dims[0] * ((out->dims[2] + 1) / 2) * ((out->dims[3] + 1) / 2);
    int64_t weights = 16 * w->dims[0] * w->dims[1] * 4;
    return tiles >= WINOGRAD_MIN_TILES && w->dims[1] >= WINOGRAD_MIN_CHANNELS &&
           weights <= (k->threads == 1 ? WINOGRAD_MAX_WEIGHTS : WINOGRAD_SHARED_WEIGHTS);
}

/* A depthwise conv (as many groups as channels, one output channel each: MobileNet's):
 * blocked, its vectors are 16 channels of one pixel, each lane reading its own channel;
 * unblocked it sums one channel at a time (lower_conv's grouped path, a few GFLOP/s). */
static bool depthwise(const ir_node *n) {
    const kiln_tensor *w = n->inputs[1]->init;
    int64_t group = ir_attr_int(n, "group");
    return group > 1 && w->dims[0] == group && w->dims[1] == 1 && n->inputs[0]->type.dims[1] == group;
}

/* A grouped conv the blocked layout runs well: a depthwise one; other groups (ResNeXt's,
 * RegNet's) where each output block lies inside one group (Cout / group a multiple of the
 * block: the block broadcasts its group's input channels, as a dense conv does), or where
 * groups of c input and c output channels, c dividing the block, tile the blocks (each
 * lane reads its group's channels of the input block of the same number: a shuffle,
 * lower_conv_nchwc). Unblocked, a grouped conv sums one output channel at a time:
 * ResNeXt-50's ran at 15-55 GFLOP/s. Other groupings would gather lane by lane: they stay
 * NCHW. All of these are blocked whatever their rows. */
static bool grouped(const ir_node *n) {
    const kiln_tensor *w = n->inputs[1]->init;
    int64_t group = ir_attr_int(n, "group"), cout_g = w->dims[0] / group, cin_g = w->dims[1];
    return group > 1 && (depthwise(n) || cout_g % NCHWC_BLOCK == 0 || (cin_g == cout_g && NCHWC_BLOCK % cout_g == 0));
}

/* Output channels not a multiple of the block are padded (padded()), if there are more than
 * a block of them (8 would waste half the lanes, where the row schedule wastes 4 of 32 on
 * the bundled CNN's 28-column rows); the bias, if any, must then be a constant, to pad too. */
static bool conv_fits(const ir_node *n) {
    const ir_value *x = n->inputs[0], *w = n->inputs[1], *bias = n->input_count > 2 ? n->inputs[2] : NULL;
    int64_t cout = w->init ? w->init->dims[0] : 0;
    return w->init && w->init->rank == 4 && w->init->dtype == KILN_F32 && x->type.dtype == KILN_F32 &&
           x->type.rank == 4 && ir_type_known(&x->type) && n->output_count == 1 &&
           (cout % NCHWC_BLOCK == 0 || (cout > NCHWC_BLOCK && (!bias || (bias->init && bias->init->rank == 1)))) &&
           (ir_attr_int(n, "group") == 1 || grouped(n));
}

/* A conv whose rows fill the vectors is blocked too where its result flows into a Winograd
 * conv, which would otherwise block it itself (a Transpose and a Reshape): the bundled
 * CNN's first conv (3 -> 32 channels, 32 columns) runs a little slower blocked, the whole
 * CNN faster (1 thread 0.72-0.77 -> 0.66 ms, 2 threads 0.53 -> 0.48); or into a grouped
 * conv, blocked whatever its rows, which would gather from an NCHW input; or where its
 * input flows from such a conv (the Transpose back to NCHW cost as much as the conv:
 * MobileNetV2's 1x1 conv after its first depthwise one, 0.14 ms each). */
static bool blockable_conv(const blocking *k, const ir_node *n) {
    return conv_fits(n) && (!rows_fill_lanes(n) || ir_attr_int(n, "group") > 1 || winograd_pays(k, n) ||
                            k->to_blocked[n->outputs[0]->id] || k->from_blocked[n->inputs[0]->id]);
}

static bool global_pool(ir_op op) { return op == IR_OP_GLOBAL_AVERAGE_POOL || op == IR_OP_GLOBAL_MAX_POOL; }

static bool blockable_pool(const ir_node *n) {
    const ir_attr *ks = ir_node_attr(n, "kernel_shape");
    if (global_pool(n->op))
        return n->output_count == 1 && n->inputs[0]->type.rank == 4 && ir_type_known(&n->inputs[0]->type);
    return n->output_count == 1 && !strcmp(ir_attr_string(n, "auto_pad"), "NOTSET") && ks && ks->count == 2 &&
           n->inputs[0]->type.rank == 4;
}

static bool constant_batch_norm(const ir_node *n) {
    if (ir_attr_int(n, "training_mode") || n->output_count != 1 || n->inputs[0]->type.dtype != KILN_F32)
        return false;
    for (int i = 1; i < 5; i++)
        if (!n->inputs[i] || !n->inputs[i]->init || n->inputs[i]->init->dtype != KILN_F32)
            return false;
    return true;
}

/* A Gemm whose A is [N, C, H, W] flattened, [N, C H W], by its only reader r (a Flatten or
 * a Reshape), with constant f32 weights: it can take the blocked value flattened instead,
 * its weights' rows permuted to the blocked order (flat_gemm), where the NCHW value took a
 * Transpose kernel to make (the bundled CNN's classifier). NULL if r is not such a node. */
static const ir_node *flat_gemm_of(const blocking *k, const ir_node *r) {
    if ((r->op != IR_OP_FLATTEN && r->op != IR_OP_RESHAPE) || r->output_count != 1 || !r->inputs[0])
        return NULL;
    const kiln_tensor *x = &r->inputs[0]->type, *f = &r->outputs[0]->type;
    const ir_node *n = k->reader[r->outputs[0]->id];
    if (x->rank != 4 || f->rank != 2 || f->dims[0] != x->dims[0] || f->dims[1] != x->dims[1] * x->dims[2] * x->dims[3] ||
        x->dims[1] % NCHWC_BLOCK || !n || n->op != IR_OP_GEMM || n->inputs[0] != r->outputs[0] ||
        ir_attr_int(n, "transA"))
        return NULL;
    const kiln_tensor *b = n->inputs[1]->init;
    return b && b->rank == 2 && b->dtype == KILN_F32 && b->dims[ir_attr_int(n, "transB") ? 1 : 0] == f->dims[1] ? n : NULL;
}

/* Gemm n (flat_gemm_of) on the blocked value xb flattened: A's column k = (c H + h) W + w
 * is now ((c / b H + h) W + w) b + c % b, and so is B's row (column, with transB). The
 * sum runs over K in the blocked order: the result differs by rounding. */
static ir_value *flat_gemm(blocking *k, const ir_node *n, ir_value *xb) {
    const kiln_tensor *x = &n->inputs[0]->producer->inputs[0]->type, *w = n->inputs[1]->init;
    int64_t b = NCHWC_BLOCK, hw = x->dims[2] * x->dims[3], kk = x->dims[1] * hw;
    bool trans = ir_attr_int(n, "transB");
    int64_t cols = w->dims[1];
    ir_value *v = gb_tensor(&k->b, w->dtype, 2, w->dims, NULL);
    if (!v)
        return NULL;
    float *to = v->init->data;
    const float *from = w->data;
    for (int64_t c = 0; c < x->dims[1]; c++)
        for (int64_t p = 0; p < hw; p++) {
            int64_t was = c * hw + p, now = ((c / b) * hw + p) * b + c % b;
            if (trans)
                for (int64_t o = 0; o < w->dims[0]; o++)
                    to[o * kk + now] = from[o * kk + was];
            else
                memcpy(to + now * cols, from + was * cols, sizeof(float) * (size_t)cols);
        }
    ir_value *in[3] = {gb_reshape(&k->b, xb, &n->inputs[0]->type), v, n->input_count > 2 ? n->inputs[2] : NULL};
    ir_node *m = in[0] ? gb_begin(&k->b, IR_OP_GEMM, in[2] ? 3 : 2, in) : NULL;
    if (m)
        copy_attrs(k, m, n);
    return gb_done(&k->b, m);
}

/* A 4-D Transpose between NCHW and NHWC (`to_nhwc`: perm [0, 2, 3, 1], else [0, 3, 1, 2]),
 * of whole channel blocks: ConvNeXt's around each LayerNorm and MLP. */
static bool nhwc_transpose(const ir_node *n, bool to_nhwc) {
    static const int64_t there[4] = {0, 2, 3, 1}, back[4] = {0, 3, 1, 2};
    const ir_attr *a = n->op == IR_OP_TRANSPOSE ? ir_node_attr(n, "perm") : NULL;
    const kiln_tensor *x = &n->inputs[0]->type;
    if (!a || a->count != 4 || memcmp(a->ints, to_nhwc ? there : back, sizeof there) || x->rank != 4 || !ir_type_known(x) ||
        x->dtype != KILN_F32)
        return false;
    return x->dims[to_nhwc ? 1 : 3] % NCHWC_BLOCK == 0;
}

/* NHWC from blocked xb: [N, C / b, H, W, b] -> [N, H, W, C / b, b] -> [N, H, W, C], whole
 * blocks moved (a view where its reader takes one: it keeps the last axis), where NCHW's
 * transpose moves one element at a time. */
static ir_value *nhwc_of_blocked(blocking *k, const ir_node *n, ir_value *xb) {
    static const int64_t perm[5] = {0, 2, 3, 1, 4};
    if (xb->type.dims[1] * xb->type.dims[4] != n->inputs[0]->type.dims[1]) /* padded: NHWC has no room for it */
        return NULL;
    return gb_reshape(&k->b, gb_transpose(&k->b, xb, perm), &n->outputs[0]->type);
}

/* The blocked twin of NHWC x transposed to NCHW: [N, H, W, C] -> [N, H, W, C / b, b] ->
 * [N, C / b, H, W, b], views both. */
static ir_value *blocked_of_nhwc(blocking *k, const ir_node *n) {
    static const int64_t perm[5] = {0, 3, 1, 2, 4};
    const kiln_tensor *x = &n->inputs[0]->type;
    kiln_tensor split = {.dtype = x->dtype, .rank = 5,
                         .dims = {x->dims[0], x->dims[1], x->dims[2], x->dims[3] / NCHWC_BLOCK, NCHWC_BLOCK}};
    return gb_transpose(&k->b, gb_reshape(&k->b, n->inputs[0], &split), perm);
}

/* Whether node r can read input `slot` blocked: a conv this pass blocks (either layout in),
 * a pool, an elementwise node (if its other inputs do not fit, it reads the NCHW value). A
 * conv whose output some other reader needs as NCHW stays as it is: blocking it would add a
 * Transpose for that reader (the bundled CNN's conv read by a BatchNormalization, before
 * those became Mul and Add). */
static bool takes_blocked(const blocking *k, const ir_node *r, int slot) {
    if (slot != 0 && ir_op_table[r->op].kind != IR_KIND_ELTWISE)
        return false;
    switch (r->op) {
    case IR_OP_CONV: return blockable_conv(k, r);
    case IR_OP_MAX_POOL: case IR_OP_AVERAGE_POOL: case IR_OP_GLOBAL_AVERAGE_POOL: case IR_OP_GLOBAL_MAX_POOL:
        return blockable_pool(r);
    case IR_OP_BATCH_NORM: return slot == 0 && constant_batch_norm(r) && r->inputs[0]->type.rank == 4;
    case IR_OP_DROPOUT: return false;
    case IR_OP_FLATTEN: case IR_OP_RESHAPE: return slot == 0 && flat_gemm_of(k, r);
    case IR_OP_TRANSPOSE: return nhwc_transpose(r, true);
    default: return ir_op_table[r->op].kind == IR_KIND_ELTWISE;
    }
}

/* The conv's weights g [Cout, Cin, 3, 3] as U [16, Cin', Cout], U[4 i + j] = (G g G^T)[i][j]
 * computed in double: the B operand of the 16 products (zero past Cin, for a padded input). */
static ir_value *winograd_weights(blocking *k, const kiln_tensor *w, int64_t cin_p) {
    static const double G[4][3] = {{1, 0, 0}, {0.5, 0.5, 0.5}, {0.5, -0.5, 0.5}, {0, 0, 1}};
    int64_t cout = w->dims[0], cin = w->dims[1], dims[3] = {16, cin_p, cout};
    ir_value *v = gb_tensor(&k->b, w->dtype, 3, dims, NULL);
    if (!v)
        return NULL;
    float *to = v->init->data;
    const float *from = w->data;
    for (int64_t o = 0; o < cout; o++)
        for (int64_t c = 0; c < cin; c++) {
            const float *g = from + (o * cin + c) * 9;
            double gg[4][3]; /* G g */
            for (int i = 0; i < 4; i++)
                for (int q = 0; q < 3; q++)
                    gg[i][q] = G[i][0] * g[q] + G[i][1] * g[3 + q] + G[i][2] * g[6 + q];
            for (int i = 0; i < 4; i++)
                for (int j = 0; j < 4; j++)
                    to[((i * 4 + j) * cin_p + c) * cout + o] = (float)(gg[i][0] * G[j][0] + gg[i][1] * G[j][1] + gg[i][2] * G[j][2]);
        }
    return v;
}

/* WinogradInput -> MatMul -> WinogradOutput, the output blocked as ConvNCHWc's. */
static ir_value *winograd_conv(blocking *k, const ir_node *n, ir_value *x) {
    const ir_attr *p = ir_node_attr(n, "pads");
    int64_t pads[4] = {0, 0, 0, 0}, size[2] = {n->outputs[0]->type.dims[2], n->outputs[0]->type.dims[3]};
    for (int i = 0; p && p->count == 4 && i < 4; i++)
        pads[i] = p->ints[i];
    const kiln_tensor *xt = &x->type;
    if (xt->rank == 4 && xt->dims[1] % NCHWC_BLOCK == 0) {
        /* an NCHW input blocked first, [N, C, H, W] -> [N, C / b, b, H, W] -> [N, C / b, H, W, b]:
         * the transform's vectors then load b consecutive channels where they gathered them
         * H W apart (the bundled CNN's second conv at 1 thread: 0.26 ms -> 0.10 + 0.08 for
         * the Transpose and Reshape) */
        kiln_tensor split = {.dtype = xt->dtype, .rank = 5, .dims = {xt->dims[0], xt->dims[1] / NCHWC_BLOCK, NCHWC_BLOCK, xt->dims[2], xt->dims[3]}};
        int64_t perm[5] = {0, 1, 3, 4, 2};
        x = gb_transpose(&k->b, gb_reshape(&k->b, x, &split), perm);
    }
    ir_node *in = gb_begin(&k->b, IR_OP_WINOGRAD_INPUT, 1, &x);
    gb_attr_ints(&k->b, in, "pads", 4, pads);
    int64_t cin_p = x->type.rank == 5 ? x->type.dims[1] * x->type.dims[4] : x->type.dims[1];
    ir_value *prod = gb2(&k->b, IR_OP_MATMUL, gb_done(&k->b, in), winograd_weights(k, n->inputs[1]->init, cin_p));
    ir_value *args[2] = {prod, n->input_count > 2 ? n->inputs[2] : NULL};
    ir_node *o = prod ? gb_begin(&k->b, IR_OP_WINOGRAD_OUTPUT, args[1] ? 2 : 1, args) : NULL;
    gb_attr_ints(&k->b, o, "output_size", 2, size);
    gb_attr_int(&k->b, o, "block", NCHWC_BLOCK);
    return gb_done(&k->b, o);
}

static ir_value *blocked_conv(blocking *k, const ir_node *n) {
    const ir_value *x = n->inputs[0], *w = n->inputs[1];
    ir_value *xb = k->twin[x->id];
    if (!blockable_conv(k, n) || k->plain_reader[n->outputs[0]->id])
        return NULL;
    if (winograd_pays(k, n))
        return winograd_conv(k, n, xb ? xb : (ir_value *)x);
    /* the input's channels as the conv reads them: padded if blocked */
    int64_t cin_p = xb ? xb->type.dims[1] * xb->type.dims[4] : x->type.dims[1], cin_g = w->init->dims[1];
    int64_t group = ir_attr_int(n, "group"), cout_g = w->init->dims[0] / group;
    /* padded groups (as many as the padded channels make) where the groups tile the
     * blocks: a depthwise conv's, or groups of c that tile blocked channels (on an NCHW
     * input, they would gather); whole groups past the padding where a block lies in one */
    bool tiles = group > 1 && cout_g % NCHWC_BLOCK;
    if (tiles ? (cin_p != padded(x->type.dims[1]) || (cin_g > 1 && !xb)) : group > 1 && cin_p != x->type.dims[1])
        return NULL;
    ir_value *bias = n->input_count > 2 ? n->inputs[2] : NULL;
    ir_value *in[3] = {xb ? xb : (ir_value *)x, packed_weights(k, w->init, group > 1 ? cin_g : cin_p),
                       bias && bias->init ? padded_vector(k, bias) : bias};
    ir_node *c = in[1] ? gb_begin(&k->b, IR_OP_CONV_NCHWC, in[2] ? 3 : 2, in) : NULL;
    if (c) {
        copy_attrs(k, c, n);
        gb_attr_int(&k->b, c, "group", cin_p / (group > 1 ? cin_g : cin_p));
    }
    return gb_done(&k->b, c);
}

/* A 2-D pool as a 3-D one over [H, W, b], its window 1 wide along b; a global pool as one
 * whose window is the whole image (its NCHW value, [N, C, 1, 1], is then the blocked one
 * reshaped: unblock). */
static ir_value *blocked_pool(blocking *k, const ir_node *n, ir_value *xb) {
    const ir_attr *ks = ir_node_attr(n, "kernel_shape");
    if (!blockable_pool(n))
        return NULL;
    const int64_t *image = n->inputs[0]->type.dims + 2;
    int64_t kernel[3] = {global_pool(n->op) ? image[0] : ks->ints[0], global_pool(n->op) ? image[1] : ks->ints[1], 1};
    int64_t strides[3] = {1, 1, 1}, dil[3] = {1, 1, 1}, pads[6] = {0};
    ir_op op = n->op == IR_OP_GLOBAL_AVERAGE_POOL ? IR_OP_AVERAGE_POOL : n->op == IR_OP_GLOBAL_MAX_POOL ? IR_OP_MAX_POOL : n->op;
    const ir_attr *a;
    if ((a = ir_node_attr(n, "strides")) && a->count == 2)
        strides[0] = a->ints[0], strides[1] = a->ints[1];
    if ((a = ir_node_attr(n, "dilations")) && a->count == 2)
        dil[0] = a->ints[0], dil[1] = a->ints[1];
    if ((a = ir_node_attr(n, "pads")) && a->count == 4)
        pads[0] = a->ints[0], pads[1] = a->ints[1], pads[3] = a->ints[2], pads[4] = a->ints[3];
    ir_node *p = gb_begin(&k->b, op, 1, &xb);
    gb_attr_ints(&k->b, p, "kernel_shape", 3, kernel);
    gb_attr_ints(&k->b, p, "strides", 3, strides);
    gb_attr_ints(&k->b, p, "dilations", 3, dil);
    gb_attr_ints(&k->b, p, "pads", 6, pads);
    gb_attr_int(&k->b, p, "ceil_mode", global_pool(n->op) ? 0 : ir_attr_int(n, "ceil_mode"));
    if (n->op == IR_OP_AVERAGE_POOL)
        gb_attr_int(&k->b, p, "count_include_pad", ir_attr_int(n, "count_include_pad"));
    return gb_done(&k->b, p);
}

/* Whether op gives finite values on finite inputs (zeros, in the padding channels): not a
 * division, a logarithm, a square root, a power. */
static bool keeps_finite(ir_op op) {
    switch (op) {
    case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_MAX: case IR_OP_MIN: case IR_OP_RELU:
    case IR_OP_LEAKY_RELU: case IR_OP_CLIP: case IR_OP_SIGMOID: case IR_OP_HARD_SIGMOID: case IR_OP_HARD_SWISH:
    case IR_OP_TANH: case IR_OP_NEG: case IR_OP_ABS: case IR_OP_IDENTITY: case IR_OP_ELU: case IR_OP_GELU:
        return true;
    default: return false;
    }
}

/* An elementwise node whose inputs are blocked values of its output's shape or per channel
 * ([N, C, 1, 1]: a squeeze-and-excitation block's scales, which broadcast over the blocked
 * pixels as over the NCHW ones), scalars or per-channel constants: the same node on the
 * blocked values (with padding channels, only one that keeps them finite). EfficientNet's
 * x * scale ran NCHW, behind a Transpose of x per block. */
static ir_value *blocked_map(blocking *k, const ir_node *n) {
    const kiln_tensor *out = &n->outputs[0]->type;
    if (ir_op_table[n->op].kind != IR_KIND_ELTWISE || n->op == IR_OP_BATCH_NORM || n->op == IR_OP_DROPOUT ||
        n->output_count != 1 || out->rank != 4 || n->input_count > 8 ||
        (out->dims[1] % NCHWC_BLOCK && !keeps_finite(n->op)))
        return NULL;
    ir_value *in[8];
    bool any = false;
    for (int i = 0; i < n->input_count; i++) {
        const ir_value *v = n->inputs[i];
        if (!v)
            return NULL;
        const kiln_tensor *t = &v->type;
        bool per_channel = t->rank == 4 && t->dims[0] == out->dims[0] && t->dims[1] == out->dims[1] && t->dims[2] == 1 &&
                           t->dims[3] == 1;
        if ((in[i] = k->twin[v->id]) && (same_dims(t, out) || per_channel))
            any |= same_dims(t, out);
        else if (ir_type_count(&v->type) == 1)
            in[i] = (ir_value *)v;
        else if (!(in[i] = blocked_channels(k, v, out->dims[1])))
            return NULL;
    }
    if (!any)
        return NULL;
    ir_node *m = gb_begin(&k->b, n->op, n->input_count, in);
    if (m)
        copy_attrs(k, m, n);
    return gb_done(&k->b, m);
}

/* Node `old` leaves its output v to `made`'s output r: r's producer and v's swap, so every
 * reader of v reads what `made` computes, and `old` is left with an output no one reads. */
static void take_over(ir_value *v, ir_value *r) {
    ir_node *old = v->producer, *made = r->producer;
    int slot = v->producer_slot;
    old->outputs[slot] = r, r->producer = old, r->producer_slot = slot;
    made->outputs[0] = v, v->producer = made, v->producer_slot = 0;
}

/* Inference BatchNormalization with constant parameters as x * S + T per channel, S =
 * scale / sqrt(var + epsilon) and T = B - mean * S computed here in double: a multiply and
 * an add per element where the node divided and took a square root, and Mul and Add carry
 * the blocked layout (S and T then shaped [1, C / b, 1, 1, b]). Returns the blocked
 * result when x is blocked; otherwise the Add takes over the node's output. */
static ir_value *affine_batch_norm(blocking *k, const ir_node *n, ir_value *xb) {
    const ir_value *x = n->inputs[0];
    if (!constant_batch_norm(n) || x->type.rank < 2 || (xb && x->type.rank != 4))
        return NULL;
    int64_t ch = x->type.dims[1], dims[5] = {1, 1, 1, 1, 1};
    int rank = xb ? 5 : x->type.rank - 1;
    if (xb)
        dims[1] = padded(ch) / NCHWC_BLOCK, dims[4] = NCHWC_BLOCK;
    else
        dims[0] = ch;
    ir_value *s = gb_tensor(&k->b, KILN_F32, rank, dims, NULL), *t = gb_tensor(&k->b, KILN_F32, rank, dims, NULL);
    if (!s || !t)
        return NULL;
    const float *scale = n->inputs[1]->init->data, *bias = n->inputs[2]->init->data;
    const float *mean = n->inputs[3]->init->data, *var = n->inputs[4]->init->data;
    for (int64_t c = 0; c < ch; c++) {
        double f = scale[c] / sqrt((double)var[c] + ir_attr_float(n, "epsilon"));
        ((float *)s->init->data)[c] = (float)f;
        ((float *)t->init->data)[c] = (float)(bias[c] - mean[c] * f);
    }
    ir_value *y = gb2(&k->b, IR_OP_ADD, gb2(&k->b, IR_OP_MUL, xb ? xb : (ir_value *)x, s), t);
    if (y && !xb)
        take_over(n->outputs[0], y);
    return xb ? y : NULL;
}

/* v (NCHW) made from its blocked twin: [N, C' / b, H, W, b] -> [N, C' / b, b, H, W] ->
 * [N, C', H, W], then the first C channels of padded C'. */
static void unblock(blocking *k, ir_value *v) {
    int64_t perm[5] = {0, 1, 4, 2, 3}, channels = v->type.dims[1];
    kiln_tensor whole = v->type;
    whole.dims[1] = padded(channels);
    ir_value *t = k->twin[v->id];
    /* one pixel per image (a global pool's): the blocked order is NCHW's already */
    ir_value *r = gb_reshape(&k->b, v->type.dims[2] * v->type.dims[3] == 1 ? t : gb_transpose(&k->b, t, perm), &whole);
    if (r && whole.dims[1] != channels) {
        int64_t zero = 0, one = 1;
        ir_value *in[4] = {r, gb_i64s(&k->b, 1, &zero), gb_i64s(&k->b, 1, &channels), gb_i64s(&k->b, 1, &one)};
        ir_node *s = gb_begin(&k->b, IR_OP_SLICE, 4, in);
        r = gb_done(&k->b, s);
    }
    if (r)
        take_over(v, r);
}

/* Puts the nodes made for node i right after it, so the order stays topological. */
static kiln_status reorder(ir_graph *g, int original, const int *made_end, kiln_diag *d) {
    ir_node **order = malloc(sizeof *order * (size_t)(g->node_count + 1));
    if (!order)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    int at = 0, next = original;
    for (int i = 0; i < original; i++) {
        order[at++] = g->nodes[i];
        while (next < made_end[i])
            order[at++] = g->nodes[next++];
    }
    memcpy(g->nodes, order, sizeof *order * (size_t)g->node_count);
    free(order);
    return KILN_OK;
}

/* A node the blocked layout flows through from its input 0: a map or a pool. */
static bool passes_layout(const ir_node *n) {
    return n->output_count == 1 && n->input_count && n->inputs[0] &&
           (ir_op_table[n->op].kind == IR_KIND_ELTWISE || n->op == IR_OP_MAX_POOL || n->op == IR_OP_AVERAGE_POOL);
}

static kiln_status block_convs(ir_graph *g, pass_ctx *cx) {
    blocking k = {.b = {.g = g, .d = cx->d}, .tuning = cx->tuning, .threads = cx->threads};
    /* every lookup is of a value the original nodes read or write: ids below `ids` */
    int original = g->node_count, ids = g->value_ids;
    int *made_end = malloc(sizeof *made_end * (size_t)(original + 1));
    k.twin = calloc((size_t)ids + 1, sizeof *k.twin);
    k.plain_reader = calloc((size_t)ids + 1, sizeof *k.plain_reader);
    k.to_blocked = calloc((size_t)ids + 1, sizeof *k.to_blocked);
    k.from_blocked = calloc((size_t)ids + 1, sizeof *k.from_blocked);
    k.to_conv = calloc((size_t)ids + 1, sizeof *k.to_conv);
    k.reader = calloc((size_t)ids + 1, sizeof *k.reader);
    bool *read = calloc((size_t)ids + 1, sizeof *read);
    if (!made_end || !k.twin || !k.plain_reader || !k.to_blocked || !k.from_blocked || !k.to_conv || !k.reader || !read) {
        free(made_end), free(k.twin), free(k.plain_reader), free(k.to_blocked), free(k.from_blocked), free(k.to_conv),
            free(k.reader), free(read);
        return diag_error(cx->d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; i < original; i++) /* each value's one reader, if it has one */
        for (int j = 0; j < g->nodes[i]->input_count; j++) {
            const ir_value *v = g->nodes[i]->inputs[j];
            if (v)
                k.reader[v->id] = read[v->id] ? NULL : g->nodes[i], read[v->id] = true;
        }
    for (int i = 0; i < g->output_count; i++)
        k.reader[g->outputs[i]->id] = NULL;
    free(read);
    for (int i = original - 1; i >= 0; i--) { /* readers first */
        const ir_node *n = g->nodes[i];
        if ((n->op == IR_OP_CONV && conv_fits(n) && (winograd_pays(&k, n) || ir_attr_int(n, "group") > 1)) ||
            (passes_layout(n) && k.to_blocked[n->outputs[0]->id]))
            k.to_blocked[n->inputs[0]->id] = true;
        /* to_conv: into a conv blocked whatever flows in (where only a blocked input would
         * block it, the twin could cost a Transpose back); any input of a map of its shape
         * counts (ConvNeXt's residual Add reads the transposed MLP output through a
         * per-channel Mul, in its second slot) */
        if (n->op == IR_OP_CONV && conv_fits(n) &&
            (!rows_fill_lanes(n) || ir_attr_int(n, "group") > 1 || winograd_pays(&k, n)))
            k.to_conv[n->inputs[0]->id] = true;
        for (int j = 0; passes_layout(n) && k.to_conv[n->outputs[0]->id] && j < n->input_count; j++)
            if (n->inputs[j] && same_dims(&n->inputs[j]->type, &n->outputs[0]->type))
                k.to_conv[n->inputs[j]->id] = true;
    }
    for (int i = 0; i < original; i++) { /* producers first */
        const ir_node *n = g->nodes[i];
        if ((n->op == IR_OP_CONV && blockable_conv(&k, n)) ||
            (passes_layout(n) && k.from_blocked[n->inputs[0]->id]))
            k.from_blocked[n->outputs[0]->id] = true;
    }
    for (int i = 0; i < original; i++)
        for (int j = 0; j < g->nodes[i]->input_count; j++)
            if (g->nodes[i]->inputs[j] && !takes_blocked(&k, g->nodes[i], j))
                k.plain_reader[g->nodes[i]->inputs[j]->id] = true;
    bool any = false;
    for (int i = 0; i < original && !k.b.st; i++) {
        ir_node *n = g->nodes[i];
        ir_value *t = NULL, *xb = n->input_count && n->inputs[0] ? k.twin[n->inputs[0]->id] : NULL;
        char base[256]; /* new nodes are named after the node they stand for */
        snprintf(base, sizeof base, "%s.nchwc", n->name ? n->name : n->outputs[0]->name);
        k.b.base = base;
        if (n->op == IR_OP_CONV)
            t = blocked_conv(&k, n);
        else if (n->op == IR_OP_BATCH_NORM)
            t = affine_batch_norm(&k, n, xb);
        else if ((n->op == IR_OP_MAX_POOL || n->op == IR_OP_AVERAGE_POOL || global_pool(n->op)) && xb && n->inputs[0]->type.rank == 4)
            t = blocked_pool(&k, n, xb);
        else if (xb && nhwc_transpose(n, true)) { /* NHWC from the blocked value: it takes the output over */
            ir_value *y = nhwc_of_blocked(&k, n, xb);
            if (y && !k.b.st)
                take_over(n->outputs[0], y);
        } else if (nhwc_transpose(n, false) && k.to_conv[n->outputs[0]->id]) { /* NCHW made blocked too */
            ir_value *y = blocked_of_nhwc(&k, n);
            if (y && !k.b.st)
                k.twin[n->outputs[0]->id] = y, any = true;
        }
        else if (n->op == IR_OP_GEMM) { /* its output stays NCHW: the new Gemm takes it over */
            const ir_node *f = n->inputs[0]->producer;
            ir_value *fb = f && f->inputs[0] ? k.twin[f->inputs[0]->id] : NULL;
            ir_value *y = fb && flat_gemm_of(&k, f) ? flat_gemm(&k, n, fb) : NULL;
            if (y && !k.b.st)
                take_over(n->outputs[0], y);
        }
        else if (any)
            t = blocked_map(&k, n);
        if (t && !k.b.st) {
            k.twin[n->outputs[0]->id] = t;
            unblock(&k, n->outputs[0]);
            any = true;
        }
        made_end[i] = g->node_count;
    }
    kiln_status st = k.b.st;
    if (!st && g->node_count > original)
        st = reorder(g, original, made_end, cx->d);
    free(made_end), free(k.twin), free(k.plain_reader), free(k.to_blocked), free(k.from_blocked), free(k.to_conv),
        free(k.reader);
    return st;
}

kiln_status pass_layout(ir_graph *g, pass_ctx *cx) {
    kiln_status st = block_convs(g, cx);
    if (st)
        return st;
    for (int i = 0; i < g->node_count; i++) {
        ir_node *n = g->nodes[i];
        if (n->op != IR_OP_GEMM || !ir_attr_int(n, "transB") || !n->inputs[1]->init || n->inputs[1]->init->rank != 2)
            continue;
        if ((st = transpose_b(g, n, cx->d)))
            return st;
    }
    return KILN_OK;
}
