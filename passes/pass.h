/*
 * pass.h — graph passes and the pass manager.
 *
 * A pass reads IR and writes IR: no file I/O, no globals. Passes that need to evaluate an
 * op (constant folding) call cx->eval, which the driver wires to the reference
 * interpreter, so that passes never reach into a backend.
 *
 * The pipeline, in order:
 *   shape  dtype and shape inference; checks declared types against inferred ones
 *   fold   evaluates nodes whose inputs are all constant (and Shape/Size of static
 *          shapes), re-inferring each node's shape as values become known
 *   layout data layouts for compiled code: Gemm's constant B transposed, blocked convs
 *   dce    removes nodes and initializers that no graph output depends on
 */
#ifndef KILN_PASSES_PASS_H
#define KILN_PASSES_PASS_H

#include "ir/graph.h"

#include <stdio.h>

/* Evaluates one node on concrete inputs; *out receives output_count tensors that the
 * caller frees with kiln_tensor_free. */
typedef kiln_status (*pass_eval_fn)(const ir_node *n, const kiln_tensor *const *in,
                                    kiln_tensor **out, kiln_diag *d);

typedef struct pass_ctx {
    kiln_diag *d;
    pass_eval_fn eval; /* NULL: fold does nothing */
    const struct kiln_tuning *tuning; /* kiln tune's per-node choices (passes/tuning.h), or NULL */
    int threads;                      /* the threads runs will use (0: unknown, several) */
} pass_ctx;

typedef struct pass {
    const char *name; /* what `kiln dump --after NAME` accepts */
    const char *about;
    kiln_status (*run)(ir_graph *g, pass_ctx *cx);
} pass;

kiln_status pass_shape(ir_graph *g, pass_ctx *cx);
kiln_status pass_fold(ir_graph *g, pass_ctx *cx);
/* Gemm with a constant B and transB = 1: B stored transposed, transB = 0; inference
 * BatchNormalization with constant parameters as Mul and Add; convs with constant weights
 * as ConvNCHWc, the blocked layout carried through elementwise nodes and pools (layout.c). */
kiln_status pass_layout(ir_graph *g, pass_ctx *cx);
kiln_status pass_dce(ir_graph *g, pass_ctx *cx);

/* Re-infers one node's output types from its inputs' current types and values. */
kiln_status pass_shape_node(ir_graph *g, ir_node *n, kiln_diag *d);

extern const pass pass_pipeline[];
extern const int pass_pipeline_count;
const pass *pass_lookup(const char *name); /* NULL if none */

/* Runs the pipeline up to and including `stop_after` (NULL: all of it). With verify set,
 * runs ir_verify after every pass and reports a broken invariant as the pass's bug. */
kiln_status pass_run_pipeline(ir_graph *g, pass_ctx *cx, const char *stop_after, bool verify);

#endif
