/*
 * fuzz_kiln.c — libFuzzer target: bytes as a .kiln model, through the lexer, the parser,
 * the verifier and shape inference (weights files resolve inside fuzz/, which does not
 * exist: the escape and missing-file paths are exercised, nothing outside is read).
 */
#include "driver/model.h"
#include "ir/verify.h"
#include "frontend/txt.h"

#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    kiln_set_max_memory((int64_t)64 << 20);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ir_graph *g;
    kiln_diag d = {0};
    if (txt_parse((const char *)data, size, "fuzz/model.kiln", &g, &d) == KILN_OK) { /* then as kiln_model_load does */
        if (ir_verify(g, NULL, NULL, &d) == KILN_OK)
            driver_optimize(g, "shape", &d);
        ir_graph_destroy(g);
    }
    return 0;
}
