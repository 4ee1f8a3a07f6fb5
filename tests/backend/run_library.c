/*
 * run_library.c — runs a kiln-built shared library on an ONNX test case and compares its
 * outputs with the expected ones: the check that a compiled libNAME.so matches PyTorch.
 *
 * usage: run_library LIB.so NAME CASE_DIR [RTOL ATOL]
 * CASE_DIR holds test_data_set_0/input_K.pb and output_K.pb. Prints `N passed, M failed`
 * over the outputs.
 */
#include "frontend/onnx.h"

#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *symbol(void *lib, const char *name, const char *fn) {
    char full[256];
    snprintf(full, sizeof full, "%s_%s", name, fn);
    void *p = dlsym(lib, full);
    if (!p) {
        fprintf(stderr, "run_library: no symbol %s\n", full);
        exit(2);
    }
    return p;
}

int main(int argc, char **argv) {
    if (argc != 4 && argc != 6) {
        fprintf(stderr, "usage: run_library LIB.so NAME CASE_DIR [RTOL ATOL]\n");
        return 2;
    }
    double rtol = argc == 6 ? strtod(argv[4], NULL) : 1e-4, atol = argc == 6 ? strtod(argv[5], NULL) : 1e-5;
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) {
        fprintf(stderr, "run_library: %s\n", dlerror());
        return 2;
    }
    const char *name = argv[2];
    int (*num_inputs)(void) = (int (*)(void))symbol(lib, name, "num_inputs");
    int (*num_outputs)(void) = (int (*)(void))symbol(lib, name, "num_outputs");
    void *(*create)(void) = (void *(*)(void))symbol(lib, name, "create");
    int (*run)(void *, const void *const *, void *const *) = (int (*)(void *, const void *const *, void *const *))symbol(lib, name, "run");
    const char *(*last_error)(void *) = (const char *(*)(void *))symbol(lib, name, "last_error");
    int nin = num_inputs(), nout = num_outputs(), failed = 0;
    const void *in[64];
    void *out[64];
    kiln_tensor *want[64];
    kiln_diag d = {0};
    char path[4096];
    for (int i = 0; i < nin && i < 64; i++) {
        kiln_tensor *t;
        snprintf(path, sizeof path, "%s/test_data_set_0/input_%d.pb", argv[3], i);
        if (onnx_read_tensor_file(path, &t, &d)) {
            fprintf(stderr, "run_library: %s\n", d.message);
            return 2;
        }
        in[i] = t->data; /* kept for the life of the program */
    }
    for (int j = 0; j < nout && j < 64; j++) {
        snprintf(path, sizeof path, "%s/test_data_set_0/output_%d.pb", argv[3], j);
        if (onnx_read_tensor_file(path, &want[j], &d)) {
            fprintf(stderr, "run_library: %s\n", d.message);
            return 2;
        }
        out[j] = calloc(kiln_tensor_bytes(want[j]) + 1, 1);
    }
    void *ctx = create();
    if (run(ctx, in, out)) {
        fprintf(stderr, "run_library: %s\n", last_error(ctx));
        return 1;
    }
    for (int j = 0; j < nout; j++) {
        int64_t n = kiln_tensor_count(want[j]), bad = -1;
        double worst = 0;
        for (int64_t k = 0; k < n; k++) {
            double g = ((const float *)out[j])[k], w = ((const float *)want[j]->data)[k];
            double err = fabs(g - w) / (atol + rtol * fabs(w));
            if (err > worst)
                worst = err;
            if (err > 1 && bad < 0)
                bad = k;
        }
        printf("output %d: %lld values, worst |got - want| / (atol + rtol |want|) = %.3g%s\n", j, (long long)n, worst,
               bad >= 0 ? ": MISMATCH" : "");
        failed += bad >= 0;
    }
    printf("%d passed, %d failed\n", nout - failed, failed);
    return failed ? 1 : 0;
}
