/*
 * fuzz_npy.c — libFuzzer target: bytes as a .npy array (header dictionary, dtype,
 * shape, fortran_order, data length), read into a tensor under the memory cap.
 */
#include "kiln.h"

#include <stdint.h>

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    kiln_set_max_memory((int64_t)64 << 20);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    kiln_tensor *t;
    kiln_diag d = {0};
    if (kiln_npy_read_mem(data, size, "fuzz.npy", &t, &d) == KILN_OK)
        kiln_tensor_free(t);
    return 0;
}
