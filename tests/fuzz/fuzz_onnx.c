/*
 * fuzz_onnx.c — libFuzzer target: bytes as an ONNX model, through the importer (the
 * protobuf pre-scan, the capped unpack, external-data rules) and the graph passes up to
 * shape inference. Any input must end in KILN_OK or an error, never a crash, a leak or an
 * allocation past the cap (set low here, so the fuzzer's own memory limit is never what
 * stops a hostile size).
 */
#include "driver/model.h"
#include "ir/verify.h"
#include "frontend/onnx.h"

#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    kiln_set_max_memory((int64_t)64 << 20);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ir_graph *g;
    kiln_diag d = {0};
    if (onnx_import_buffer(data, size, "fuzz/model.onnx", &g, &d) == KILN_OK) { /* then as kiln_model_load does */
        if (ir_verify(g, NULL, NULL, &d) == KILN_OK)
            driver_optimize(g, "shape", &d);
        ir_graph_destroy(g);
    }
    return 0;
}
