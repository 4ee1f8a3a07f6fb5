/*
 * test_plan.c — the memory plan (passes/plan.c): which values share arena bytes. In
 * place, a kernel writes its output over an input it reads last (passes/in_place.c), and
 * the results stay those of the fused build to the bit.
 */
#include "random_inputs.h"

#include "driver/model.h"

#define JIT_ATOL 1e-5 /* test_jit.c's tolerance for f32 against the interpreter */
#define JIT_RTOL 1e-4

static kiln_tensor *random_tensor(int rank, const int64_t *dims) { return random_tensor_of(rank, dims, false); }

/* The arena storage of the value named `name` (a parameter of some kernel). */
static lir_storage storage_of(const lir_module *m, const char *name) {
    for (int k = 0; k < m->kernel_count; k++)
        for (int p = 0; p < m->kernels[k]->param_count; p++) {
            const lir_buffer *b = m->kernels[k]->params[p];
            if (b->kind == LIR_BUF_VALUE && !strcmp(b->value->name, name))
                return *lir_buffer_storage(m, b);
        }
    fail_msg("no kernel reads or writes %s", name);
    return (lir_storage){0};
}

static bool same_bytes(const lir_module *m, const char *a, const char *b) {
    lir_storage x = storage_of(m, a), y = storage_of(m, b);
    return x.kind == LIR_STORE_ARENA && y.kind == LIR_STORE_ARENA && x.offset == y.offset;
}

/* In-place outputs (passes/in_place.c): unfused, a kernel writes its output over an input
 * it reads last when it reads each element just before writing the same bytes. Each graph
 * lists the value pairs that must share a block and those that must not: an elementwise
 * kernel takes its dying operand's block (chains reuse one block), but not through a
 * transpose, a softmax row, a broadcast operand, a Cast to another element size, or an
 * operand read again later. Every build runs on 1 and on 2 threads and gives the fused
 * build's outputs to the bit, and the interpreter's within the JIT tolerance. */
static void test_in_place(void **state) {
    (void)state;
    static const struct { const char *body; const char *same[3][2], *apart[3][2]; } graphs[] = {
        {"%m = MatMul(%a, %b)\n  %e = Exp(%m)\n  %n = Neg(%e)\n  %y = Tanh(%n)", {{"m", "e"}, {"e", "n"}}, {{0}}},
        {"%m = MatMul(%a, %b)\n  %t = Transpose(%m)\n  %y = Relu(%t)", {{0}}, {{"m", "t"}}},
        {"%m = MatMul(%a, %b)\n  %s = Softmax(%m) {axis = -1}\n  %n = Neg(%s)\n  %y = Abs(%n)", {{"s", "n"}}, {{"m", "s"}}},
        {"%m = MatMul(%a, %b)\n  %e = Exp(%m)\n  %p = Add(%e, %m)\n  %y = Relu(%p)", {{0}}, {{"m", "e"}}},
        {"%m = MatMul(%a, %b)\n  %r = ReduceSum(%m) {axes = [0], keepdims = 1}\n  %e = Exp(%r)\n  %p = Add(%m, %e)\n"
         "  %y = Relu(%p)", {{"m", "p"}, {"r", "e"}}, {{"e", "p"}}},
        {"%m = MatMul(%a, %b)\n  %h = Cast(%m) {to = \"f64\"}\n  %g = Cast(%h) {to = \"f32\"}\n  %y = Neg(%g)",
         {{0}}, {{"m", "h"}, {"h", "g"}}},
    };
    const int64_t a[2] = {37, 33}, b[2] = {33, 45};
    for (int i = 0; i < ARRAY_LEN(graphs); i++) {
        char src[1024];
        snprintf(src, sizeof src, "graph ip {\n  input %%a: f32[37, 33]\n  input %%b: f32[33, 45]\n  %s\n  output %%y\n}\n",
                 graphs[i].body);
        kiln_tensor *in[2] = {random_tensor(2, a), random_tensor(2, b)}, *want, *ref;
        kiln_diag d = {0};
        kiln_options iopts = {.backend = KILN_BACKEND_INTERP};
        kiln_model *m;
        assert_int_equal(kiln_model_parse(src, strlen(src), "ip.kiln", &iopts, &m, &d), KILN_OK);
        assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, &ref, &d), KILN_OK);
        kiln_model_destroy(m);
        kiln_options fopts = {.backend = KILN_BACKEND_JIT, .threads = 1};
        assert_int_equal(kiln_model_parse(src, strlen(src), "ip.kiln", &fopts, &m, &d), KILN_OK);
        assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, &want, &d), KILN_OK);
        kiln_model_destroy(m);
        for (int threads = 1; threads <= 2; threads++) {
            kiln_options opts = {.backend = KILN_BACKEND_JIT, .no_fuse = true, .threads = threads};
            if (kiln_model_parse(src, strlen(src), "ip.kiln", &opts, &m, &d)) {
                print_error("%s\n%s", d.message, src);
                fail();
            }
            for (int j = 0; j < 3 && graphs[i].same[j][0]; j++)
                if (!same_bytes(m->lowered, graphs[i].same[j][0], graphs[i].same[j][1]))
                    fail_msg("%s: %%%s not written over %%%s", graphs[i].body, graphs[i].same[j][1], graphs[i].same[j][0]);
            for (int j = 0; j < 3 && graphs[i].apart[j][0]; j++)
                if (same_bytes(m->lowered, graphs[i].apart[j][0], graphs[i].apart[j][1]))
                    fail_msg("%s: %%%s written over %%%s", graphs[i].body, graphs[i].apart[j][1], graphs[i].apart[j][0]);
            kiln_tensor *got;
            assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, &got, &d), KILN_OK);
            if (memcmp(got->data, want->data, kiln_tensor_bytes(want)) ||
                !test_tensor_close(got, ref, JIT_ATOL, JIT_RTOL, graphs[i].body)) {
                print_error("%s (%d threads): in place differs from the fused build\n", graphs[i].body, threads);
                fail();
            }
            kiln_tensor_free(got);
            kiln_model_destroy(m);
        }
        kiln_tensor_free(in[0]), kiln_tensor_free(in[1]), kiln_tensor_free(want), kiln_tensor_free(ref);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_place),
    };
    return cmocka_run_group_tests_name("plan", tests, NULL, NULL);
}
