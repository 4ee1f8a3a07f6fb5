/*
 * grad_rules.h — what the files of gradient rules share (see autodiff.h for the builder):
 * the accessors a rule reads its node through, helpers more than one file uses, and the
 * rules defined outside grad_rules.c, whose grad_rule() table lists them all.
 *   grad_rules.c  elementwise ops, matrix products, reductions, softmax, batch and layer
 *                 normalization, global pooling
 *   grad_conv.c   convolution, transposed convolution and pooling
 *   grad_index.c  data movement and indexing: split, tile, gathers and scatters, top-k,
 *                 cumulative sums, Einsum, Resize, the likelihood losses
 *   grad_norm.c   instance, Lp, mean-variance and local response normalization
 *   grad_rnn.c    RNN, GRU and LSTM, through their recurrence written out step by step
 */
#ifndef KILN_PASSES_GRAD_RULES_H
#define KILN_PASSES_GRAD_RULES_H

#include "passes/autodiff.h"
#include "passes/shape.h"

#define X(i) (c->node->inputs[i])
#define Y(i) (c->node->outputs[i])
#define DY (c->dy[0])

/* A scalar 0 of v's dtype; zeros of v's type. */
ir_value *grad_zero_scalar(grad_ctx *c, const ir_value *v);
ir_value *grad_zeros_like(grad_ctx *c, const ir_value *v);
/* 1 where a == b, else 0, in a's dtype: which elements a max or min came from. */
ir_value *grad_indicator(grad_ctx *c, ir_value *a, ir_value *b);
/* The axes a reduction node reduces, as a mask over its input's rank; false if they are
 * not known (a run-time axes input). */
bool grad_reduced_axes(const ir_node *n, int rank, bool *mask);
/* Normalization over `axes` from the batch's own statistics: *inv = 1 / sqrt(var + eps)
 * and *xhat = (x - mean) * inv. */
void grad_normalize(grad_ctx *c, ir_value *x, int na, const int64_t *axes, double epsilon, ir_value **xhat,
                    ir_value **inv);
/* The input gradient of a normalization by batch statistics, given g = dy * gamma:
 * inv * (g - mean(g) - xhat * mean(g * xhat)), the means over the normalized axes. */
ir_value *grad_normalized_input(grad_ctx *c, ir_value *g, ir_value *xhat, ir_value *inv, int na,
                                const int64_t *axes);

/* The forward node as shape inference sees it, for the geometry helpers of passes/shape.h
 * (windows, slices, pads, Resize, recurrences): types[i] gets input i's constant value
 * where it has one, else its type (types holds the node's input_count entries). */
shape_ctx grad_shape_ctx(grad_ctx *c, const kiln_tensor **types);

/* grad_index.c */
kiln_status grad_split(grad_ctx *c);
kiln_status grad_tile(grad_ctx *c);
kiln_status grad_gather_elements(grad_ctx *c);
kiln_status grad_gather(grad_ctx *c);
kiln_status grad_gather_nd(grad_ctx *c);
kiln_status grad_scatter_nd(grad_ctx *c);
kiln_status grad_scatter_elements(grad_ctx *c);
kiln_status grad_topk(grad_ctx *c);
kiln_status grad_compress(grad_ctx *c);
kiln_status grad_max_unpool(grad_ctx *c);
kiln_status grad_trilu(grad_ctx *c);
kiln_status grad_reverse_sequence(grad_ctx *c);
kiln_status grad_cumsum(grad_ctx *c);
kiln_status grad_depth_space(grad_ctx *c);
kiln_status grad_einsum(grad_ctx *c);
kiln_status grad_resize(grad_ctx *c);
kiln_status grad_pad(grad_ctx *c);
kiln_status grad_slice(grad_ctx *c);
kiln_status grad_nll_loss(grad_ctx *c);
kiln_status grad_softmax_cross_entropy(grad_ctx *c);

/* grad_conv.c */
kiln_status grad_conv(grad_ctx *c);
kiln_status grad_conv_transpose(grad_ctx *c);
kiln_status grad_max_pool(grad_ctx *c);
kiln_status grad_average_pool(grad_ctx *c);

/* grad_rnn.c */
kiln_status grad_recurrent(grad_ctx *c);

/* grad_norm.c */
kiln_status grad_instance_norm(grad_ctx *c);
kiln_status grad_lp_norm(grad_ctx *c);
kiln_status grad_mvn(grad_ctx *c);
kiln_status grad_lrn(grad_ctx *c);

#endif
