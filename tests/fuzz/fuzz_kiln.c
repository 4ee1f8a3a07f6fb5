/*
 * fuzz_kiln.c — libFuzzer target: bytes as a .kiln model, through the lexer, the parser,
 * the verifier and shape inference (weights files resolve inside fuzz/, which does not
 * exist: the escape and missing-file paths are exercised, nothing outside is read).
 */
#include "fuzz.h"

#include "frontend/txt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ir_graph *g;
    kiln_diag d = {0};
    if (txt_parse((const char *)data, size, "fuzz/model.kiln", &g, &d) == KILN_OK)
        fuzz_check_graph(g);
    return 0;
}
