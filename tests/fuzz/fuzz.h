/*
 * fuzz.h — what the libFuzzer targets share (each includes it once): kiln's memory cap set
 * low, so a hostile size meets kiln's own limit and never the fuzzer's, and a parsed graph
 * taken on as kiln_model_load takes it (verify, then the passes up to shape inference).
 */
#ifndef KILN_TESTS_FUZZ_H
#define KILN_TESTS_FUZZ_H

#include "driver/model.h"
#include "ir/verify.h"

#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    kiln_set_max_memory((int64_t)64 << 20);
    return 0;
}

/* Verifies g, infers its shapes, and frees it. */
static inline void fuzz_check_graph(ir_graph *g) {
    kiln_diag d = {0};
    if (ir_verify(g, NULL, NULL, &d) == KILN_OK)
        driver_optimize(g, "shape", &d);
    ir_graph_destroy(g);
}

#endif
