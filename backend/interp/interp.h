/*
 * interp.h — the reference interpreter: naive, obviously-correct implementations of
 * every op over the graph IR. It is the oracle every other path is checked against, so
 * clarity beats speed: values are read through ir_tensor_get (double) or
 * ir_tensor_get_int (int64), computed in double or int64, and stored in the output's
 * dtype. Output shapes come from the same shape rules the compiler uses.
 */
#ifndef KILN_BACKEND_INTERP_H
#define KILN_BACKEND_INTERP_H

#include "passes/shape.h"

typedef struct interp_ctx {
    shape_ctx s;      /* node, inputs (all with data), diag; s.out holds the output types */
    kiln_tensor **out; /* allocated outputs to fill */
} interp_ctx;

typedef kiln_status (*interp_fn)(interp_ctx *c);

#define OP(ID, fn, ...) kiln_status interp_##fn(interp_ctx *c);
#include "ir/ops.def"
#undef OP

/* Evaluates one node; out[i] receives a tensor the caller frees with kiln_tensor_free. */
kiln_status interp_eval_node(const ir_node *n, const kiln_tensor *const *in, kiln_tensor **out,
                             kiln_diag *d);
/* Runs the whole graph. inputs[i] feeds graph input i; outputs[j] receives graph output j
 * (caller frees each with kiln_tensor_free). */
kiln_status interp_run(const ir_graph *g, const kiln_tensor *const *inputs, kiln_tensor **outputs,
                       kiln_diag *d);

/* Checks the fed tensors against the graph's input types (dtype, rank, dims, one batch
 * size), naming the input that does not fit. */
kiln_status interp_check_inputs(const ir_graph *g, const kiln_tensor *const *inputs, kiln_diag *d);

/* ---- helpers for the rules ------------------------------------------------------------ */

/* Coordinates of a flat C-order index, and back. */
static inline void interp_unravel(int64_t flat, const kiln_tensor *t, int64_t *coord) {
    for (int d = t->rank - 1; d >= 0; d--) {
        coord[d] = t->dims[d] ? flat % t->dims[d] : 0;
        flat = t->dims[d] ? flat / t->dims[d] : 0;
    }
}
static inline int64_t interp_ravel(const int64_t *coord, const kiln_tensor *t) {
    int64_t flat = 0;
    for (int d = 0; d < t->rank; d++)
        flat = flat * t->dims[d] + coord[d];
    return flat;
}
/* The flat index in `in` that broadcasts to output coordinate `coord` (of rank out_rank). */
static inline int64_t interp_broadcast_index(const kiln_tensor *in, const int64_t *coord,
                                             int out_rank) {
    int64_t flat = 0;
    for (int d = 0; d < in->rank; d++) {
        int64_t c = coord[d + out_rank - in->rank];
        flat = flat * in->dims[d] + (in->dims[d] == 1 ? 0 : c);
    }
    return flat;
}
/* Views t as [outer, len, inner] around `axis`: the products of the dims before it, the
 * axis itself (1 for a scalar), and the dims after it. */
static inline void interp_around_axis(const kiln_tensor *t, int axis, int64_t *outer, int64_t *len,
                                      int64_t *inner) {
    *outer = *inner = 1;
    *len = t->rank ? t->dims[axis] : 1;
    for (int d = 0; d < axis; d++)
        *outer *= t->dims[d];
    for (int d = axis + 1; d < t->rank; d++)
        *inner *= t->dims[d];
}
/* Copies element `from` of src to element `to` of dst (same dtype). */
void interp_copy_elem(kiln_tensor *dst, int64_t to, const kiln_tensor *src, int64_t from);
kiln_status interp_error(const interp_ctx *c, kiln_status st, const char *fmt, ...)
    KILN_PRINTF(3, 4);

#endif
