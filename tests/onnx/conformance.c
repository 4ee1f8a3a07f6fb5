/*
 * conformance.c — runs the ONNX backend node tests (Debian's libonnx-testdata) that
 * tests/onnx-scope.txt lists, through kiln's importer, passes and reference interpreter.
 *
 * Each test is a model.onnx and test_data_set_K/input_N.pb, output_N.pb; outputs are
 * compared as numpy.testing.assert_allclose does, with ONNX's backend-test tolerances
 * (rtol 1e-3, atol 1e-7), NaN matching NaN. Failures are listed with their reason and
 * grouped by kind. A test listed in the expected-failures file may fail; any other
 * failure is a regression and makes the exit status 1. A listed test that passes is
 * reported so it can be taken off the list.
 *
 * usage: conformance SCOPE DATA_DIR EXPECTED_FAILURES [--write-expected FILE] [--only NAME]
 *                    [--rtol R] [--atol A] [--backend interp|jit|c] [--no-fuse]
 * --no-fuse compiles one kernel per op (kiln_options.no_fuse): the same suite checks the
 * unfused kernels, which the fused ones are compared against in `kiln bench --compare`.
 * It also checks the PyTorch-exported models in tests/models/torch, which use the same
 * layout, at rtol 1e-4 and atol 1e-5.
 */
#include "driver/model.h"
#include "frontend/onnx.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double rel_tol = 1e-3, abs_tol = 1e-7; /* ONNX's backend-test defaults */
static kiln_options load_options; /* --backend jit compiles with LLVM */

enum { MAX_TESTS = 4096, MAX_IO = 64 };

typedef struct result {
    char name[128];
    bool passed, expected_to_fail;
    char reason[512];
} result;

static char *read_lines(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n)
        n = 0;
    if (buf)
        buf[n] = 0;
    fclose(f);
    return buf;
}

/* Is `name` listed (first word of a line) in the expected-failures text? */
static bool listed(const char *text, const char *name) {
    size_t len = strlen(name);
    for (const char *p = text; p && *p;) {
        if (!strncmp(p, name, len) && (p[len] == ' ' || p[len] == '\t' || p[len] == '\n' || !p[len]))
            return true;
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return false;
}

static bool compare(const kiln_tensor *got, const kiln_tensor *want, int j, char *reason, size_t cap) {
    if (got->dtype != want->dtype) {
        snprintf(reason, cap, "mismatch: output %d has dtype %s, expected %s", j,
                 kiln_dtype_name(got->dtype), kiln_dtype_name(want->dtype));
        return false;
    }
    bool same = got->rank == want->rank;
    for (int i = 0; same && i < got->rank; i++)
        same = got->dims[i] == want->dims[i];
    if (!same) {
        snprintf(reason, cap, "mismatch: output %d has another shape (rank %d vs %d)", j, got->rank, want->rank);
        return false;
    }
    int64_t n = kiln_tensor_count(got);
    for (int64_t i = 0; i < n; i++) {
        double g = ir_tensor_get(got, i), w = ir_tensor_get(want, i);
        bool ok = ir_dtype_is_float(got->dtype)
                      ? (isnan(g) && isnan(w)) || g == w || fabs(g - w) <= abs_tol + rel_tol * fabs(w)
                      : ir_tensor_get_int(got, i) == ir_tensor_get_int(want, i);
        if (!ok) {
            snprintf(reason, cap, "mismatch: output %d element %lld: got %.9g, expected %.9g", j,
                     (long long)i, g, w);
            return false;
        }
    }
    return true;
}

/* Runs one data set; returns false with a reason on failure. */
static bool run_data_set(kiln_model *m, const char *dir, char *reason, size_t cap) {
    int nin = kiln_model_input_count(m), nout = kiln_model_output_count(m);
    kiln_tensor *in[MAX_IO] = {0}, *out[MAX_IO] = {0}, *want = NULL;
    bool ok = nin <= MAX_IO && nout <= MAX_IO;
    kiln_diag d = {0};
    char path[4096];
    if (!ok)
        snprintf(reason, cap, "too many inputs or outputs");
    for (int i = 0; ok && i < nin; i++) {
        snprintf(path, sizeof path, "%s/input_%d.pb", dir, i);
        if (onnx_read_tensor_file(path, &in[i], &d)) {
            snprintf(reason, cap, "input: %s", d.message);
            ok = false;
        }
    }
    if (ok && kiln_model_run(m, (const kiln_tensor *const *)in, out, &d)) {
        snprintf(reason, cap, "run: %s", d.message);
        ok = false;
    }
    for (int j = 0; ok && j < nout; j++) {
        snprintf(path, sizeof path, "%s/output_%d.pb", dir, j);
        d = (kiln_diag){0};
        if (onnx_read_tensor_file(path, &want, &d)) {
            snprintf(reason, cap, "expected output: %s", d.message);
            ok = false;
        } else {
            ok = compare(out[j], want, j, reason, cap);
        }
        kiln_tensor_free(want);
        want = NULL;
    }
    for (int i = 0; i < MAX_IO; i++) {
        kiln_tensor_free(in[i]);
        kiln_tensor_free(out[i]);
    }
    return ok;
}

static void run_test(const char *data_dir, result *r) {
    char path[4096], sets[4096];
    snprintf(path, sizeof path, "%s/%s/model.onnx", data_dir, r->name);
    kiln_diag d = {0};
    kiln_model *m = NULL;
    if (kiln_model_load(path, &load_options, &m, &d)) {
        const char *msg = d.message;
        /* drop the file path: the test name already says where */
        const char *tail = strstr(msg, "model.onnx: ");
        snprintf(r->reason, sizeof r->reason, "load: %.480s", tail ? tail + 12 : msg);
        return;
    }
    snprintf(sets, sizeof sets, "%s/%s", data_dir, r->name);
    DIR *dir = opendir(sets);
    struct dirent *e;
    int count = 0;
    r->passed = true;
    while (r->passed && dir && (e = readdir(dir))) {
        if (strncmp(e->d_name, "test_data_set_", 14))
            continue;
        snprintf(path, sizeof path, "%.3800s/%.255s", sets, e->d_name);
        r->passed = run_data_set(m, path, r->reason, sizeof r->reason);
        count++;
    }
    if (dir)
        closedir(dir);
    if (!count) {
        r->passed = false;
        snprintf(r->reason, sizeof r->reason, "no test_data_set_* folder");
    }
    kiln_model_destroy(m);
}

/* The kind of a failure, for the summary: its text up to the first quote or digit. */
static void failure_kind(const char *reason, char *kind, size_t cap) {
    size_t n = strcspn(reason, "'0123456789");
    snprintf(kind, cap, "%.*s", (int)(n < cap - 1 ? n : cap - 1), reason);
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: conformance SCOPE DATA_DIR EXPECTED_FAILURES [--write-expected FILE] "
                        "[--only NAME] [--rtol R] [--atol A] [--backend interp|jit|c] [--no-fuse]\n");
        return 2;
    }
    const char *write_expected = NULL, *only = NULL;
    for (int i = 4; i < argc; i++) {
        if (!strcmp(argv[i], "--no-fuse")) {
            load_options.no_fuse = true;
            continue;
        }
        if (i + 1 == argc) {
            fprintf(stderr, "conformance: %s without a value\n", argv[i]);
            return 2;
        }
        const char *value = argv[i + 1];
        if (!strcmp(argv[i], "--write-expected"))
            write_expected = value;
        else if (!strcmp(argv[i], "--only"))
            only = value;
        else if (!strcmp(argv[i], "--rtol"))
            rel_tol = strtod(value, NULL);
        else if (!strcmp(argv[i], "--atol"))
            abs_tol = strtod(value, NULL);
        else if (!strcmp(argv[i], "--backend"))
            load_options.backend = !strcmp(value, "jit") ? KILN_BACKEND_JIT : !strcmp(value, "c") ? KILN_BACKEND_C : KILN_BACKEND_INTERP;
        else {
            fprintf(stderr, "conformance: unknown flag %s\n", argv[i]);
            return 2;
        }
        i++;
    }
    char *scope = read_lines(argv[1]), *expected = read_lines(argv[3]);
    if (!scope) {
        fprintf(stderr, "conformance: cannot read %s\n", argv[1]);
        return 2;
    }
    result *results = calloc(MAX_TESTS, sizeof *results);
    int n = 0;
    for (char *line = strtok(scope, "\n"); line && n < MAX_TESTS; line = strtok(NULL, "\n")) {
        if (!*line || *line == '#' || (only && strcmp(line, only)))
            continue;
        snprintf(results[n].name, sizeof results[n].name, "%s", line);
        results[n].expected_to_fail = expected && listed(expected, line);
        run_test(argv[2], &results[n]);
        n++;
    }
    int passed = 0, regressions = 0, fixed = 0;
    char kinds[256][128];
    int kind_counts[256] = {0}, nkinds = 0;
    for (int i = 0; i < n; i++) {
        result *r = &results[i];
        if (r->passed) {
            passed++;
            if (r->expected_to_fail) {
                printf("NOW PASSES (take it off the expected failures): %s\n", r->name);
                fixed++;
            }
            continue;
        }
        printf("%s %s: %s\n", r->expected_to_fail ? "xfail" : "FAIL ", r->name, r->reason);
        regressions += !r->expected_to_fail;
        char kind[128];
        failure_kind(r->reason, kind, sizeof kind);
        int k = 0;
        while (k < nkinds && strcmp(kinds[k], kind))
            k++;
        if (k == nkinds && nkinds < 256)
            snprintf(kinds[nkinds++], sizeof kinds[0], "%s", kind);
        if (k < 256)
            kind_counts[k]++;
    }
    printf("\nfailures by kind:\n");
    for (int k = 0; k < nkinds; k++)
        printf("  %4d  %s\n", kind_counts[k], kinds[k]);
    if (write_expected) {
        FILE *f = fopen(write_expected, "w");
        fprintf(f, "# ONNX node tests in scope that kiln does not pass yet, with the reason.\n"
                   "# tests/onnx/conformance fails on any failure not listed here; regenerate with\n"
                   "# --write-expected after fixing some.\n");
        for (int i = 0; i < n; i++)
            if (!results[i].passed)
                fprintf(f, "%s  %s\n", results[i].name, results[i].reason);
        fclose(f);
    }
    printf("\n%d of %d in-scope tests pass (%.1f%%); %d regressions, %d newly passing\n", passed, n,
           n ? 100.0 * passed / n : 0.0, regressions, fixed);
    printf("(rtol %g, atol %g)\nonnx: %d passed, %d failed\n", rel_tol, abs_tol, passed, n - passed);
    free(results), free(scope), free(expected);
    return regressions ? 1 : 0;
}
