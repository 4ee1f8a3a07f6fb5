/*
 * test_schedule.c — schedule choices the compiler makes from outside the graph: blocking
 * sized for the L2 the driver detects, and the per-node choices of a tuning file (kiln
 * tune's), each build compared with the reference interpreter.
 */
#include "../test_util.h"

#include "driver/model.h"
#include "backend/llvm/llvm_backend.h"
#include "passes/lower.h"
#include "passes/tuning.h"

#include <stdlib.h>
#include <unistd.h>

#define JIT_ATOL 1e-5 /* test_jit.c's tolerance for f32 against the interpreter */
#define JIT_RTOL 1e-4

static uint64_t rng_state = 0x2545f4914f6cdd1dull;
static uint64_t next_u64(void) { /* splitmix64, as test_jit.c's */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static int uniform(int n) { return (int)(next_u64() % (uint64_t)n); }

/* Uniform in [-2, 2). */
static kiln_tensor *random_tensor(int rank, const int64_t *dims) {
    kiln_tensor *t;
    kiln_diag d = {0};
    assert_int_equal(kiln_tensor_create(KILN_F32, rank, dims, &t, &d), KILN_OK);
    for (int64_t i = 0; i < kiln_tensor_count(t); i++)
        ((float *)t->data)[i] = (float)((double)(next_u64() >> 11) / 9007199254740992.0 * 4 - 2);
    return t;
}

/* Schedules sized for the L2 the driver detects (lower_options.l2_bytes): a Winograd conv
 * with 64 KiB of transformed weights (32 -> 32 channels) is one fused kernel while they fit
 * half the L2, in blocks of tiles sized to a quarter of it (1 MiB: all 25 tiles at once;
 * 256 KiB: blocks of 16, a partial second), and three kernels below (96 KiB). Each build
 * against the interpreter's plain Conv (weights as inputs). */
static void test_schedule_sized_for_l2(void **state) {
    (void)state;
    enum { C = 32, HW = 10, CAP = 1 << 18 };
    char *src = malloc(CAP), *ref_src = malloc(CAP);
    const int64_t xd[4] = {1, C, HW, HW}, wd[4] = {C, C, 3, 3};
    kiln_tensor *in[2] = {random_tensor(4, xd), NULL}, *ref, *got;
    kiln_diag d = {0};
    assert_int_equal(kiln_tensor_create(KILN_F32, 4, wd, &in[1], &d), KILN_OK);
    size_t n = (size_t)snprintf(src, CAP, "graph w {\n  input %%a: f32[1, %d, %d, %d]\n  const %%w: f32[%d, %d, 3, 3] = [", C,
                                HW, HW, C, C);
    for (int64_t k = 0; k < kiln_tensor_count(in[1]); k++) {
        char v[16];
        snprintf(v, sizeof v, "%.3f", uniform(2001) / 1000.0 - 1);
        ((float *)in[1]->data)[k] = strtof(v, NULL);
        n += (size_t)snprintf(src + n, CAP - n, "%s%s", k ? ", " : "", v);
    }
    static const char body[] = "  %c = Conv(%a, %w) {pads = [1, 1, 1, 1]}\n  %y = Relu(%c)\n  output %y\n}\n";
    snprintf(src + n, CAP - n, "]\n%s", body);
    snprintf(ref_src, CAP, "graph w {\n  input %%a: f32[1, %d, %d, %d]\n  input %%w: f32[%d, %d, 3, 3]\n%s", C, HW, HW, C,
             C, body);
    kiln_options jit = {.backend = KILN_BACKEND_JIT};
    kiln_model *ref_model, *m;
    assert_int_equal(kiln_model_parse(ref_src, strlen(ref_src), "ref.kiln", NULL, &ref_model, &d), KILN_OK);
    assert_int_equal(kiln_model_parse(src, strlen(src), "w.kiln", &jit, &m, &d), KILN_OK);
    assert_int_equal(kiln_model_run(ref_model, (const kiln_tensor *const *)in, &ref, &d), KILN_OK);
    static const struct { int64_t l2; bool fused; } sizes[] = {{1 << 20, true}, {256 << 10, true}, {96 << 10, false}};
    for (int i = 0; i < ARRAY_LEN(sizes); i++) {
        lir_module *lm;
        cg_jit *j;
        lower_options o = {.vector_bits = 512, .threads = 1, .l2_bytes = sizes[i].l2};
        assert_int_equal(lower_graph(m->graph, &o, &lm, NULL, &d), KILN_OK);
        bool fused = false;
        for (int k = 0; k < lm->kernel_count; k++)
            fused |= strstr(lm->kernels[k]->name, "WinogradConv") != NULL;
        if (fused != sizes[i].fused) {
            print_error("L2 %lld KiB: fused Winograd kernel %d, expected %d\n", (long long)(sizes[i].l2 >> 10), fused,
                        sizes[i].fused);
            fail();
        }
        assert_int_equal(cg_jit_compile(lm, NULL, &j, &d), KILN_OK);
        assert_int_equal(cg_jit_run(j, (const kiln_tensor *const *)in, &got, &d), KILN_OK);
        assert_true(test_tensor_close(got, ref, JIT_ATOL * 300, JIT_RTOL, "Winograd sized for an L2 vs Conv"));
        kiln_tensor_free(got);
        cg_jit_destroy(j);
        lir_module_destroy(lm);
    }
    kiln_tensor_free(in[0]), kiln_tensor_free(in[1]), kiln_tensor_free(ref);
    kiln_model_destroy(m), kiln_model_destroy(ref_model);
    free(src), free(ref_src);
}

/* A tuning file's choices are followed where they apply and ignored where they cannot
 * (Winograd for a strided conv), and every choice computes what the interpreter does: the
 * conv knob turns a conv the cost rule makes Winograd into the direct blocked conv and one
 * it leaves direct (4 tiles) into Winograd; conv_order changes the loops, not the sums (to
 * the bit). Bad files name the file and line. */
/* Whether the kernels computing conv `node` (the nodes the layout pass made from it are
 * named node.nchwc...) include a Winograd one, and whether any computes it. */
static bool conv_by_winograd(const kiln_model *m, const char *node, bool *found) {
    bool winograd = false;
    size_t n = strlen(node);
    *found = false;
    for (int k = 0; k < m->lowered->kernel_count; k++) {
        const ir_node *o = m->lowered->kernels[k]->origin;
        if (o && !strncmp(o->name, node, n) && (o->name[n] == '.' || !o->name[n])) {
            *found = true;
            winograd |= strstr(m->lowered->kernels[k]->name, "Winograd") != NULL;
        }
    }
    return winograd;
}

static void test_tuning_followed(void **state) {
    (void)state;
    enum { C = 32, CAP = 1 << 18 };
    char *src = malloc(CAP), *ref_src = malloc(CAP), path[] = "/tmp/kiln_tune_XXXXXX";
    const int64_t wd[4] = {C, C, 3, 3};
    kiln_tensor *w;
    kiln_diag d = {0};
    assert_int_equal(kiln_tensor_create(KILN_F32, 4, wd, &w, &d), KILN_OK);
    size_t n = 0;
    for (int64_t k = 0; k < kiln_tensor_count(w); k++) {
        char v[16];
        snprintf(v, sizeof v, "%.3f", uniform(2001) / 1000.0 - 1);
        ((float *)w->data)[k] = strtof(v, NULL);
        n += (size_t)snprintf(src + n, CAP - n, "%s%s", k ? ", " : "", v);
    }
    char *values = strdup(src);
    int fd = mkstemp(path);
    assert_true(fd >= 0 && values);
    close(fd);
    static const struct {
        int hw;
        const char *file;  /* the tuning file's text */
        bool winograd;     /* how conv c must be computed (strided s: always direct) */
        int threads;
    } cases[] = {
        {10, "", true, 1},
        {10, "# a comment\n\nconv direct c   # the 3x3 conv\n", false, 1},
        {4, "", false, 1},
        {4, "conv winograd c\n", true, 1},
        {10, "conv winograd s\nconv direct t\n", true, 1}, /* s: strided; t: no such node */
        {10, "conv direct c\nconv_order rows c.nchwc\n", false, 2},
        {10, "conv direct c\nconv_order channels c.nchwc\n", false, 2},
    };
    const int64_t x10[4] = {1, C, 10, 10}, x4[4] = {1, C, 4, 4};
    char *loops[2] = {NULL, NULL}; /* the conv_order cases' loop IR */
    kiln_tensor *orders[2] = {NULL, NULL}, *inputs[2] = {random_tensor(4, x10), random_tensor(4, x4)};
    for (int i = 0; i < ARRAY_LEN(cases); i++) {
        int hw = cases[i].hw;
        static const char body[] = "  %c = Conv(%a, %w) {pads = [1, 1, 1, 1]}\n  %r = Relu(%c)\n"
                                   "  %s = Conv(%r, %w) {pads = [1, 1, 1, 1], strides = [2, 2]}\n  output %s\n}\n";
        snprintf(src, CAP, "graph t {\n  input %%a: f32[1, %d, %d, %d]\n  const %%w: f32[%d, %d, 3, 3] = [%s]\n%s", C, hw, hw,
                 C, C, values, body);
        snprintf(ref_src, CAP, "graph t {\n  input %%a: f32[1, %d, %d, %d]\n  input %%w: f32[%d, %d, 3, 3]\n%s", C, hw, hw, C, C,
                 body);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(cases[i].file, f);
        fclose(f);
        kiln_tensor *in[2] = {inputs[hw == 4], w}, *ref, *got;
        kiln_options jit = {.backend = KILN_BACKEND_JIT, .threads = cases[i].threads, .tuning = path};
        kiln_model *ref_model, *m;
        assert_int_equal(kiln_model_parse(ref_src, strlen(ref_src), "ref.kiln", NULL, &ref_model, &d), KILN_OK);
        if (kiln_model_parse(src, strlen(src), "t.kiln", &jit, &m, &d)) {
            print_error("case %d: %s\n", i, d.message);
            fail();
        }
        bool c_found, s_found, c_wino = conv_by_winograd(m, "c", &c_found), s_wino = conv_by_winograd(m, "s", &s_found);
        if (!c_found || !s_found || c_wino != cases[i].winograd || s_wino) {
            print_error("case %d: conv c by Winograd %d (expected %d), strided s %d\n", i, c_wino, cases[i].winograd, s_wino);
            fail();
        }
        assert_int_equal(kiln_model_run(ref_model, (const kiln_tensor *const *)in, &ref, &d), KILN_OK);
        assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, &got, &d), KILN_OK);
        assert_true(test_tensor_close(got, ref, JIT_ATOL * 300, JIT_RTOL, "tuned conv vs interpreter"));
        if (cases[i].threads == 2) { /* the two conv_order cases, same input */
            int o = orders[0] != NULL;
            size_t size;
            FILE *lf = open_memstream(&loops[o], &size);
            assert_non_null(lf);
            lir_print(m->lowered, lf);
            fclose(lf);
            orders[o] = got, got = NULL;
        }
        kiln_tensor_free(got), kiln_tensor_free(ref);
        kiln_model_destroy(m), kiln_model_destroy(ref_model);
    }
    assert_non_null(orders[0]), assert_non_null(orders[1]);
    assert_memory_equal(orders[0]->data, orders[1]->data, kiln_tensor_bytes(orders[0])); /* the same sums */
    if (!strcmp(loops[0], loops[1])) { /* in other loops */
        print_error("conv_order rows and channels built the same loops\n");
        fail();
    }
    free(loops[0]), free(loops[1]);
    kiln_tensor_free(orders[0]), kiln_tensor_free(orders[1]), kiln_tensor_free(inputs[0]), kiln_tensor_free(inputs[1]);
    /* bad files: the message names the file and line */
    static const struct { const char *text, *says; } bad[] = {
        {"conv direct c\nconv sideways c\n", ":2: conv takes direct or winograd, not 'sideways'"},
        {"\n\nunroll 4 c\n", ":3: unknown knob 'unroll'"},
        {"conv_order rows\n", ":1: conv_order rows names no node"},
    };
    for (int i = 0; i < ARRAY_LEN(bad); i++) {
        kiln_tuning *t = NULL;
        kiln_diag e = {0};
        assert_int_not_equal(tuning_parse(bad[i].text, strlen(bad[i].text), "bad.tune", &t, &e), KILN_OK);
        assert_null(t);
        if (!strstr(e.message, "bad.tune") || !strstr(e.message, bad[i].says)) {
            print_error("bad file %d: '%s', expected '%s'\n", i, e.message, bad[i].says);
            fail();
        }
    }
    kiln_tuning *t = NULL;
    const char good[] = "conv winograd a b  # spaces in a name\r\nconv direct x\nconv winograd x\n";
    assert_int_equal(tuning_parse(good, strlen(good), "good.tune", &t, &d), KILN_OK);
    assert_int_equal(t->count, 2); /* x's second line replaced its first */
    assert_int_equal(tuning_get(t, TUNE_CONV, "a b"), TUNE_WINOGRAD);
    assert_int_equal(tuning_get(t, TUNE_CONV, "x"), TUNE_WINOGRAD);
    assert_int_equal(tuning_get(t, TUNE_CONV_ORDER, "x"), TUNE_UNSET);
    assert_int_equal(tuning_set(t, TUNE_CONV, "x", TUNE_UNSET, &d), KILN_OK); /* kiln tune dropping a choice */
    assert_int_equal(t->count, 1);
    assert_int_equal(tuning_get(t, TUNE_CONV, "x"), TUNE_UNSET);
    assert_int_equal(tuning_get(t, TUNE_CONV, "a b"), TUNE_WINOGRAD);
    t->all[TUNE_CONV] = TUNE_DIRECT; /* kiln tune's trials: one value for every node */
    assert_int_equal(tuning_get(t, TUNE_CONV, "a b"), TUNE_DIRECT);
    tuning_free(t);
    /* a missing file names itself */
    kiln_options missing = {.backend = KILN_BACKEND_JIT, .tuning = "/nonexistent/x.tune"};
    kiln_model *m = NULL;
    assert_int_not_equal(kiln_model_parse(ref_src, strlen(ref_src), "t.kiln", &missing, &m, &d), KILN_OK);
    assert_null(m);
    assert_non_null(strstr(d.message, "/nonexistent/x.tune"));
    unlink(path);
    kiln_tensor_free(w);
    free(src), free(ref_src), free(values);
}

/* passes/layout.c's cost rule for Winograd: a 3x3 conv whose transformed weights pass
 * WINOGRAD_SHARED_WEIGHTS (384 channels: 9 MiB) stays direct when several threads (or an
 * unknown number) share the memory's bandwidth, and is Winograd at one thread; a smaller
 * one (64 channels) is Winograd either way. The decision only: test_tuning_followed and
 * test_jit compare both algorithms' results. */
static void test_winograd_by_threads(void **state) {
    (void)state;
    char dir[] = "/tmp/kiln_wino_XXXXXX", npz[64], model[64];
    assert_non_null(mkdtemp(dir));
    snprintf(npz, sizeof npz, "%s/w.npz", dir), snprintf(model, sizeof model, "%s/m.kiln", dir);
    static const struct { int channels, threads; bool winograd; } cases[] = {
        {384, 1, true}, {384, 2, false}, {384, 0, false}, {64, 1, true}, {64, 2, true}};
    for (int i = 0; i < ARRAY_LEN(cases); i++) {
        int c = cases[i].channels;
        const int64_t wd[4] = {c, c, 3, 3};
        kiln_tensor *w = random_tensor(4, wd);
        const char *keys[1] = {"w"};
        const kiln_tensor *arrays[1] = {w};
        kiln_diag d = {0};
        assert_int_equal(kiln_npz_write(npz, 1, keys, arrays, &d), KILN_OK);
        FILE *f = fopen(model, "w");
        assert_non_null(f);
        fprintf(f, "graph t {\n  input %%a: f32[1, %d, 8, 8]\n  const %%w: f32[%d, %d, 3, 3] = npz(\"w.npz\", \"w\")\n"
                   "  %%c = Conv(%%a, %%w) {pads = [1, 1, 1, 1]}\n  output %%c\n}\n", c, c, c);
        fclose(f);
        ir_graph *g;
        assert_int_equal(driver_load_graph(model, &g, &d), KILN_OK);
        assert_int_equal(driver_optimize_tuned(g, NULL, NULL, cases[i].threads, &d), KILN_OK);
        bool winograd = false;
        for (int k = 0; k < g->node_count; k++)
            winograd |= g->nodes[k]->op == IR_OP_WINOGRAD_INPUT;
        if (winograd != cases[i].winograd) {
            print_error("case %d: %d channels at %d threads: Winograd %d, expected %d\n", i, c, cases[i].threads, winograd,
                        cases[i].winograd);
            fail();
        }
        ir_graph_destroy(g);
        kiln_tensor_free(w);
    }
    unlink(npz), unlink(model), rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schedule_sized_for_l2),
        cmocka_unit_test(test_tuning_followed),
        cmocka_unit_test(test_winograd_by_threads),
    };
    return cmocka_run_group_tests_name("schedule", tests, NULL, NULL);
}
