/*
 * test_alloc_fail.c — allocation failure, everywhere kiln allocates: each model is loaded,
 * compiled by the JIT and run with its N-th allocation failing, for N = 1, 2, 3, ... until
 * a run makes no more allocations than N. Every run must end in success or
 * KILN_ERR_OOM (never another status, a crash or an abort), and every block kiln
 * allocated must be freed again (the count of live blocks is back where it started).
 *
 * The debug allocator is the linker's: this binary is linked with --wrap=malloc/calloc/
 * realloc/free (tests/CMakeLists.txt), which redirects the calls in kiln's own objects
 * (libkiln.a) to the __wrap_ functions below and leaves those inside shared libraries
 * alone. LLVM's allocations are not counted (it aborts on allocation failure by design),
 * nor libc's own (realpath, fopen); protobuf-c's are, through kiln's capped allocator.
 */
#include "../test_util.h"

#include "driver/model.h"

#include <stdlib.h>

void *__real_malloc(size_t size);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t size);
void __real_free(void *p);

/* ---- the failing allocator ----------------------------------------------------------- */

static long alloc_count;     /* allocations since arming */
static long fail_at;         /* the allocation to fail (1-based); 0: none */
static bool failed;          /* the injected failure happened */

/* Live blocks allocated through the wrappers: an open-addressing set of pointers, so a
 * block from elsewhere (strdup, realpath: libc's own malloc) freed by kiln is told apart. */
enum { LIVE_CAP = 1 << 20 };
static void **live;
static long *live_index; /* which allocation of its run each live block was */
static long *live_run, run_id; /* and which run */
static long live_count;

static size_t slot_of(void *p) {
    return (size_t)(((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull >> 44) & (LIVE_CAP - 1);
}

static void live_add(void *p) {
    if (!live || !p)
        return;
    size_t i = slot_of(p);
    while (live[i] && live[i] != (void *)1)
        i = (i + 1) & (LIVE_CAP - 1);
    live[i] = p;
    live_index[i] = alloc_count;
    live_run[i] = run_id;
    live_count++;
}

static void live_remove(void *p) {
    if (!live || !p)
        return;
    for (size_t i = slot_of(p); live[i]; i = (i + 1) & (LIVE_CAP - 1))
        if (live[i] == p) {
            live[i] = (void *)1; /* a tombstone keeps later probes going */
            live_count--;
            return;
        }
}

static bool should_fail(void) {
    alloc_count++;
    if (fail_at && alloc_count == fail_at) {
        failed = true;
        return true;
    }
    return false;
}

void *__wrap_malloc(size_t size) {
    if (should_fail())
        return NULL;
    void *p = __real_malloc(size);
    live_add(p);
    return p;
}

void *__wrap_calloc(size_t n, size_t size) {
    if (should_fail())
        return NULL;
    void *p = __real_calloc(n, size);
    live_add(p);
    return p;
}

void *__wrap_realloc(void *old, size_t size) {
    if (should_fail())
        return NULL; /* the old block stays valid, as realloc promises */
    void *p = __real_realloc(old, size);
    if (p) {
        live_remove(old);
        live_add(p);
    }
    return p;
}

void __wrap_free(void *p) {
    live_remove(p);
    __real_free(p);
}

/* ---- the loop ------------------------------------------------------------------------- */

/* Loads `path` for the JIT, runs it once on zeros, frees everything. */
static kiln_status load_compile_run(const char *path, kiln_diag *d) {
    kiln_options opts = {.backend = KILN_BACKEND_JIT, .threads = 1, .batch = 2, .compile_threads = 1};
    kiln_model *m = NULL;
    kiln_status st = kiln_model_load(path, &opts, &m, d);
    if (st)
        return st;
    int nin = kiln_model_input_count(m), nout = kiln_model_output_count(m);
    kiln_tensor *in[8] = {0}, *out[8] = {0};
    if (nin > 8 || nout > 8) {
        kiln_model_destroy(m);
        return KILN_ERR_UNSUPPORTED;
    }
    const ir_graph *g = m->graph;
    for (int i = 0; !st && i < nin; i++) {
        kiln_tensor type = g->inputs[i]->type;
        for (int k = 0; k < type.rank; k++)
            if (type.dims[k] < 0)
                type.dims[k] = 2; /* the batch */
        st = kiln_tensor_create(type.dtype, type.rank, type.dims, &in[i], d);
    }
    if (!st)
        st = kiln_model_run(m, (const kiln_tensor *const *)in, out, d);
    for (int i = 0; i < nin; i++)
        kiln_tensor_free(in[i]);
    for (int i = 0; i < nout; i++)
        kiln_tensor_free(out[i]);
    kiln_model_destroy(m);
    return st;
}

static void fail_each_allocation(const char *path) {
    /* the allocations of a run that fails none: how far the loop goes */
    alloc_count = 0, fail_at = 0;
    kiln_diag d = {0};
    if (load_compile_run(path, &d)) {
        print_error("%s: %s\n", path, d.message);
        fail();
    }
    long total = alloc_count, oom = 0, failures = 0;
    for (long n = 1; n <= total; n++) {
        long before = live_count;
        alloc_count = 0, fail_at = n, failed = false, run_id++;
        d = (kiln_diag){0};
        kiln_status st = load_compile_run(path, &d);
        fail_at = 0;
        if (st != KILN_OK && st != KILN_ERR_OOM && failures++ < 20)
            print_error("%s, allocation %ld failed: status %s, '%s' (want OOM or success)\n", path, n,
                        kiln_status_name(st), d.message);
        oom += st == KILN_ERR_OOM;
        if (getenv("KILN_ALLOC_VERBOSE") && failed && st == KILN_OK)
            printf("  allocation %ld failed, the run succeeded anyway\n", n);
        if (live_count != before && failures++ < 20) {
            print_error("%s, allocation %ld failed: %ld blocks leaked (%s); they were allocations", path, n,
                        live_count - before, st ? d.message : "success");
            for (size_t i = 0; i < LIVE_CAP; i++)
                if (live[i] && live[i] != (void *)1 && live_run[i] == run_id)
                    print_error(" %ld", live_index[i]);
            print_error("\n");
        }
        live_count = before; /* one leak reported once, not again in every later run */
    }
    assert_int_equal(failures, 0);
    printf("%s: %ld allocations, each failed once: %ld runs ended in KILN_ERR_OOM, the rest recovered; "
           "no leak\n", path, total, oom);
}

/* One test per model; its path (relative to tests/) is the test's initial state. */
static void test_model(void **state) {
    fail_each_allocation(*state);
}

static int setup(void **state) {
    (void)state;
    live = __real_calloc(LIVE_CAP, sizeof *live);
    live_index = __real_calloc(LIVE_CAP, sizeof *live_index);
    live_run = __real_calloc(LIVE_CAP, sizeof *live_run);
    return live && live_index && live_run ? 0 : -1;
}

int main(void) {
#define MODEL(path) {path, test_model, NULL, NULL, (void *)(path)}
    const struct CMUnitTest tests[] = {
        MODEL("../examples/models/mlp.kiln"),         MODEL("../examples/models/cnn.kiln"),
        MODEL("../examples/models/fashion_mlp.kiln"), MODEL("../examples/models/fashion_cnn.kiln"),
        MODEL("models/torch/cnn_bn_opset13/model.onnx"),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
