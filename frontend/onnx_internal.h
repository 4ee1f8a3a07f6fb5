/*
 * onnx_internal.h — what the importer's files share (not installed): tensor conversion
 * and the per-op adapters that turn each opset's form of an op into kiln's.
 */
#ifndef KILN_FRONTEND_ONNX_INTERNAL_H
#define KILN_FRONTEND_ONNX_INTERNAL_H

#include "frontend/onnx.h"
#include "frontend/pb_guard.h"
#include "onnx.pb-c.h"

/* Converts a TensorProto. With g, the tensor lives in g's arena; without, the caller frees
 * it with kiln_tensor_free. `dir` is the folder external data must stay inside. `what`
 * names the tensor in messages ("initializer 'w'"). */
kiln_status onnx_tensor_convert(const Onnx__TensorProto *tp, const char *dir, ir_graph *g,
                                const char *file, const char *what, kiln_tensor **out,
                                kiln_diag *d);

/* One ONNX node on its way into the graph: adapters may rewrite its op, inputs and
 * attributes, or emit nodes of their own before it. */
typedef struct onnx_node {
    const Onnx__NodeProto *proto;
    ir_op op;
    ir_value *inputs[IR_VARIADIC];
    int input_count;
    const Onnx__AttributeProto *attrs[64]; /* the attributes still to convert */
    int attr_count;
    ir_attr extra[4]; /* kiln attributes the adapters made (names and strings static) */
    int extra_count;
    kiln_loc loc;
} onnx_node;

typedef struct onnx_importer {
    ir_graph *g;
    const char *file, *dir;
    int64_t opset; /* of the default domain */
    kiln_diag *d;
} onnx_importer;

/* Rewrites n from its opset's ONNX form into kiln's (attributes that became inputs,
 * opset-dependent semantics). May add nodes and constants to the graph. */
kiln_status onnx_adapt(onnx_importer *im, onnx_node *n);

/* Helpers for the adapters. */
const Onnx__AttributeProto *onnx_take_attr(onnx_node *n, const char *name); /* removes it */
kiln_status onnx_const_ints(onnx_importer *im, const onnx_node *n, const char *suffix,
                            const int64_t *vals, int count, bool scalar, ir_value **out);
kiln_status onnx_const_float(onnx_importer *im, const onnx_node *n, const char *suffix, double v,
                             ir_value **out);
/* Appends a kiln node with fresh output values named after n; returns its outputs. */
kiln_status onnx_emit(onnx_importer *im, const onnx_node *n, ir_op op, const char *suffix,
                      ir_value **inputs, int input_count, int output_count, ir_node **out);
ir_attr *onnx_emit_attr(onnx_importer *im, ir_node *node, const char *name, ir_attr_kind kind);

#endif
