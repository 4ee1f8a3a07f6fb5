/*
 * onnx.h — the ONNX importer: ModelProto (protobuf-c code generated at build time from the
 * system's onnx.proto) -> graph IR, and ONNX TensorProto files (.pb) -> tensors.
 *
 * Every error names the model file and the node, initializer or field it is about. External
 * tensor data is read only from regular files inside the model's own folder.
 */
#ifndef KILN_FRONTEND_ONNX_H
#define KILN_FRONTEND_ONNX_H

#include "ir/graph.h"

kiln_status onnx_import_file(const char *path, ir_graph **out, kiln_diag *d);
kiln_status onnx_import_buffer(const void *data, size_t size, const char *path, ir_graph **out,
                               kiln_diag *d);
/* Reads a serialized TensorProto (the ONNX test suite's input_N.pb / output_N.pb). The
 * caller frees *out with kiln_tensor_free. */
kiln_status onnx_read_tensor_file(const char *path, kiln_tensor **out, kiln_diag *d);
/* Writes g (shapes inferred, initializers holding data) as an ONNX model, opset 17. Ops
 * whose kiln form is not their ONNX form are refused by name. */
kiln_status onnx_export_file(const struct ir_graph *g, const char *path, kiln_diag *d);

/* kiln's dtype for an ONNX TensorProto.DataType, or KILN_DTYPE_INVALID if kiln has none. */
kiln_dtype onnx_dtype(int32_t onnx_type);
const char *onnx_dtype_name(int32_t onnx_type); /* "FLOAT16", ... */

#endif
