/*
 * fuzz_npy.c — libFuzzer target: bytes as a .npy array (header dictionary, dtype,
 * shape, fortran_order, data length), read into a tensor under the memory cap.
 */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kiln_tensor *t;
    kiln_diag d = {0};
    if (kiln_npy_read_mem(data, size, "fuzz.npy", &t, &d) == KILN_OK)
        kiln_tensor_free(t);
    return 0;
}
