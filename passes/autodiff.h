/*
 * autodiff.h — reverse-mode automatic differentiation as a graph pass.
 *
 * autodiff appends to a graph the nodes that compute the gradient of a scalar value (the
 * loss) with respect to chosen values (the parameters). Each differentiable op has a
 * gradient rule (passes/grad_rules.c) that writes its input gradients in graph ops, given
 * its output gradients, so the backward pass is an ordinary graph: it is shape-inferred,
 * fused, memory-planned and compiled like the forward one.
 *
 * The builder below is what rules use: every helper infers the new node's shape at once
 * (rules read shapes), and an error is sticky (the first one is kept; later helpers
 * return NULL and do nothing), so a rule is straight-line code checked once at its end.
 */
#ifndef KILN_PASSES_AUTODIFF_H
#define KILN_PASSES_AUTODIFF_H

#include "ir/graph.h"

/* Appends the backward pass of `loss` (a scalar or single-element float value) to g and
 * sets grads[i] to the gradient of loss with respect to wrt[i] (same type as wrt[i]); a
 * value the loss does not depend on gets a zero gradient. Errors name the node whose op
 * has no gradient rule, or whose inputs the rule cannot handle. */
kiln_status autodiff(ir_graph *g, ir_value *loss, ir_value *const *wrt, int wrt_count, ir_value **grads,
                     kiln_diag *d);

typedef struct grad_ctx {
    ir_graph *g;
    const ir_node *node;   /* the forward node whose rule runs; NULL outside rules */
    const char *base;      /* outside rules: what new values are named after */
    ir_value *const *dy;   /* gradient of each of its outputs; NULL: none flows back */
    ir_value **dx;         /* the rule sets the gradient of each input it differentiates */
    const bool *need;      /* need[i]: input i's gradient is wanted (others may be skipped) */
    kiln_diag *d;
    kiln_status st;        /* the first error; sticky */
} grad_ctx;

typedef kiln_status (*grad_fn)(grad_ctx *c);
/* The rule of op, or NULL if it has none. */
grad_fn grad_rule(ir_op op);

/* ---- the builder ----------------------------------------------------------------------- */

/* A node of `op` on inputs (NULL entries: omitted optional inputs) with one output; its
 * attributes are added with gb_attr_* and then gb_done infers its type. */
ir_node *gb_begin(grad_ctx *c, ir_op op, int count, ir_value *const *inputs);
void gb_attr_int(grad_ctx *c, ir_node *n, const char *name, int64_t v);
void gb_attr_float(grad_ctx *c, ir_node *n, const char *name, double v);
void gb_attr_string(grad_ctx *c, ir_node *n, const char *name, const char *v);
void gb_attr_ints(grad_ctx *c, ir_node *n, const char *name, int count, const int64_t *v);
ir_value *gb_done(grad_ctx *c, ir_node *n);

/* One-output nodes without attributes. */
ir_value *gb1(grad_ctx *c, ir_op op, ir_value *a);
ir_value *gb2(grad_ctx *c, ir_op op, ir_value *a, ir_value *b);
ir_value *gb3(grad_ctx *c, ir_op op, ir_value *a, ir_value *b, ir_value *x);

/* A reduction (ReduceSum, ReduceMean, ...) of x over `count` axes (count < 0: all of them). */
ir_value *gb_reduce(grad_ctx *c, ir_op op, ir_value *x, int count, const int64_t *axes, bool keepdims);

/* Constants: a scalar of dtype dt, and a 1-D i64 vector. */
ir_value *gb_scalar(grad_ctx *c, kiln_dtype dt, double v);
ir_value *gb_i64s(grad_ctx *c, int count, const int64_t *v);
ir_value *gb_floats(grad_ctx *c, kiln_dtype dt, int count, const double *v);
/* A constant of any shape, its values flat in C order; v NULL: zeroed, for the caller to
 * fill through ->init. */
ir_value *gb_tensor(grad_ctx *c, kiln_dtype dt, int rank, const int64_t *dims, const double *v);

/* dy summed over the axes along which a value of type `to` was broadcast to dy's shape,
 * then reshaped to `to`: the gradient of a broadcasting input. */
ir_value *gb_unbroadcast(grad_ctx *c, ir_value *dy, const kiln_tensor *to);
/* x reshaped to the dims of `to` (same element count). */
ir_value *gb_reshape(grad_ctx *c, ir_value *x, const kiln_tensor *to);
/* x transposed by perm (x's rank entries). */
ir_value *gb_transpose(grad_ctx *c, ir_value *x, const int64_t *perm);
/* x with its last two axes swapped. */
ir_value *gb_swap_last(grad_ctx *c, ir_value *x);
/* The vector-Jacobian product of a subgraph a rule built: the nodes from index `first` of
 * the graph to its end (a composite op written out in simpler ones), seeded with
 * gradient seeds[i] on values[i] (NULL seeds: none). grads[i] gets the gradient of each
 * wrt[i] through those nodes only, everything else held constant (NULL if none flows). */
kiln_status gb_vjp(grad_ctx *c, int first, int seed_count, ir_value *const *values, ir_value *const *seeds,
                   int wrt_count, ir_value *const *wrt, ir_value **grads);
/* Records an error at the forward node (unless one is recorded); returns NULL. */
ir_value *gb_fail(grad_ctx *c, kiln_status st, const char *fmt, ...) KILN_PRINTF(3, 4);

#endif
