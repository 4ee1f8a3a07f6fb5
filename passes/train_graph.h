/*
 * train_graph.h — a model's training step as one graph.
 *
 * From a forward graph whose first output is the prediction (logits, for cross-entropy),
 * train_graph_build makes the whole step: the loss on a labels input, its gradients
 * (autodiff), optional clipping by global norm, and the optimizer's update. Parameters
 * and optimizer state become graph inputs, and their updated values graph outputs, so
 * the runtime owns them between steps; the learning rate and the step's bias-correction
 * terms are scalar inputs too (a schedule changes numbers, never the compiled code).
 *
 * Dropout nodes with a nonzero ratio train as X * DropoutMask(X, seed): a counter-based
 * mask (runtime/rng.h), computed once per step and read by the backward Mul as well.
 * BatchNormalization nodes train in training mode (batch statistics); their running mean
 * and variance are buffers: fed like parameters, updated by the step, never trained.
 *
 * Inputs, in order: the forward inputs, labels (i64 [N] for cross-entropy; the
 * prediction's type for MSE), lr, step_size, eps (f32 scalars), seed (an i64 scalar: the
 * step's key for dropout's random stream), the parameters, the
 * buffers, then the optimizer state (per parameter: none for plain SGD, one velocity for
 * momentum, two moments for Adam/AdamW).
 * Outputs, in order: loss (f32 scalar), the prediction, the new parameters, the new
 * state, the new buffers.
 */
#ifndef KILN_PASSES_TRAIN_GRAPH_H
#define KILN_PASSES_TRAIN_GRAPH_H

#include "ir/graph.h"

/* The step is built from the caller's kiln_train_options (kiln.h): optimizer, loss,
 * their hyperparameters, clipping and the frozen-parameter pattern. */
typedef kiln_train_options train_spec;

typedef struct train_graph {
    int forward_inputs;   /* the model's own inputs, first */
    int param_count;
    ir_value **params;    /* the parameters (now graph inputs), in input order */
    kiln_tensor **initial; /* their values from the model file (owned: kiln_tensor_free) */
    int state_per_param;  /* 0, 1 or 2 */
    int buffer_count;
    ir_value **buffers;   /* BatchNormalization running statistics (graph inputs) */
    kiln_tensor **buffer_initial; /* owned */
} train_graph;

/* Rewrites g (shapes inferred, batch fixed) into its training step. */
kiln_status train_graph_build(ir_graph *g, const train_spec *s, train_graph *out, kiln_diag *d);
/* Turns g's parameters and buffers into inputs without adding a loss (the evaluation
 * graph, which takes the trained values); fills out like train_graph_build. */
kiln_status train_graph_params_as_inputs(ir_graph *g, const train_spec *s, train_graph *out, kiln_diag *d);
void train_graph_free(train_graph *t);

#endif
