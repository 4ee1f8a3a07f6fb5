/*
 * jit_host.c — a host program that compiles a model in-process through kiln.h (the LLVM
 * JIT) and runs it: loads MODEL (.kiln or .onnx), reads each input from a .npy file,
 * runs, and prints every output's shape and first values.
 *
 * usage: jit_host MODEL INPUT.npy...
 */
#include "kiln.h"

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL INPUT.npy...\n", argv[0]);
        return 2;
    }
    kiln_diag d = {0};
    kiln_options opts = {.backend = KILN_BACKEND_JIT};
    kiln_model *m;
    if (kiln_model_load(argv[1], &opts, &m, &d)) {
        fprintf(stderr, "%s\n", d.message);
        return 1;
    }
    int nin = kiln_model_input_count(m), nout = kiln_model_output_count(m), rc = 0;
    if (argc - 2 != nin) {
        fprintf(stderr, "%s takes %d inputs\n", argv[1], nin);
        kiln_model_destroy(m);
        return 2;
    }
    kiln_tensor **in = calloc((size_t)nin + 1, sizeof *in), **out = calloc((size_t)nout + 1, sizeof *out);
    for (int i = 0; i < nin && !rc; i++)
        if (kiln_npy_read(argv[2 + i], &in[i], &d))
            rc = 1;
    if (!rc && kiln_model_run(m, (const kiln_tensor *const *)in, out, &d))
        rc = 1;
    if (rc)
        fprintf(stderr, "%s\n", d.message);
    for (int j = 0; j < nout && !rc; j++) {
        printf("%s: %s[", kiln_model_output_name(m, j), kiln_dtype_name(out[j]->dtype));
        for (int k = 0; k < out[j]->rank; k++)
            printf("%s%lld", k ? ", " : "", (long long)out[j]->dims[k]);
        printf("]");
        for (int64_t k = 0; k < kiln_tensor_count(out[j]) && k < 4 && out[j]->dtype == KILN_F32; k++)
            printf(" %.4f", ((const float *)out[j]->data)[k]);
        printf("\n");
    }
    for (int i = 0; i < nin; i++)
        kiln_tensor_free(in[i]);
    for (int j = 0; j < nout; j++)
        kiln_tensor_free(out[j]);
    free(in), free(out);
    kiln_model_destroy(m);
    return rc;
}
