/*
 * fuzz_onnx.c — libFuzzer target: bytes as an ONNX model, through the importer (the
 * protobuf pre-scan, the capped unpack, external-data rules), the verifier and shape
 * inference. Any input must end in KILN_OK or an error, never a crash, a leak or an
 * allocation past the cap.
 */
#include "fuzz.h"

#include "frontend/onnx.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ir_graph *g;
    kiln_diag d = {0};
    if (onnx_import_buffer(data, size, "fuzz/model.onnx", &g, &d) == KILN_OK)
        fuzz_check_graph(g);
    return 0;
}
