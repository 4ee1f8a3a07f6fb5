/*
 * fuzz_npz.c — libFuzzer target: bytes as a .npz archive (end record, central directory,
 * local headers, stored and deflated members), the member "x" read into a tensor under
 * the memory cap.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kiln_tensor *t;
    kiln_diag d = {0};
    if (kiln_npz_read_mem(data, size, "fuzz.npz", "x", &t, &d) == KILN_OK)
        kiln_tensor_free(t);
    return 0;
}
