/*
 * test_cemit.c — ahead-of-time compilation end to end: models compiled by `kiln compile`
 * into shared libraries (kernels by LLVM, or all C from the C backend), loaded with
 * dlopen and called through the emitted API, against the reference interpreter on random inputs (f32 arithmetic
 * against double: |got - want| <= 1e-5 + 1e-4 * |want|); a kernel error (integer
 * division by zero) comes back as a return code and a message naming the node.
 */
#include "../test_util.h"

#include "driver/model.h"
#include "ir/loop.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct desc {
    const char *name;
    int dtype, rank;
    int64_t dims[8];
} desc;

typedef struct library {
    void *handle;
    void *(*create)(void);
    void (*destroy)(void *);
    int (*run)(void *, const void *const *, void *const *);
    const char *(*last_error)(void *);
    int (*num_inputs)(void), (*num_outputs)(void);
    const desc *(*input_desc)(int), *(*output_desc)(int);
} library;

static char tmp_dir[] = "/tmp/kiln_cemit_XXXXXX";

static int setup(void **state) {
    (void)state;
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void *symbol(library *l, const char *name, const char *fn) {
    char full[128];
    snprintf(full, sizeof full, "%s_%s", name, fn);
    void *p = dlsym(l->handle, full);
    assert_non_null(p);
    return p;
}

/* Compiles `model` (batch `batch`) into a library, with LLVM or the C backend, and opens it;
 * no_fuse: one kernel per node. */
static library build(const char *model, const char *name, int64_t batch, bool c_backend, bool no_fuse) {
    char so[512];
    snprintf(so, sizeof so, "%s/lib%s.so", tmp_dir, name);
    driver_compile_options o = {.out = so, .name = name, .batch = batch, .c_backend = c_backend, .no_fuse = no_fuse};
    kiln_diag d = {0};
    if (driver_compile(model, &o, &d)) {
        print_error("%s\n", d.message);
        fail();
    }
    library l = {.handle = dlopen(so, RTLD_NOW | RTLD_LOCAL)};
    if (!l.handle) {
        print_error("dlopen: %s\n", dlerror());
        fail();
    }
    *(void **)&l.create = symbol(&l, name, "create");
    *(void **)&l.destroy = symbol(&l, name, "destroy");
    *(void **)&l.run = symbol(&l, name, "run");
    *(void **)&l.last_error = symbol(&l, name, "last_error");
    *(void **)&l.num_inputs = symbol(&l, name, "num_inputs");
    *(void **)&l.num_outputs = symbol(&l, name, "num_outputs");
    *(void **)&l.input_desc = symbol(&l, name, "input_desc");
    *(void **)&l.output_desc = symbol(&l, name, "output_desc");
    return l;
}

static uint64_t rng = 12345;
static float random_float(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) / 9007199254740992.0 * 4 - 2);
}

static void check_model(const char *model, const char *name, int64_t batch, bool c_backend, bool no_fuse) {
    library l = build(model, name, batch, c_backend, no_fuse);
    kiln_options opts = {.batch = batch};
    kiln_model *m;
    kiln_diag d = {0};
    assert_int_equal(kiln_model_load(model, &opts, &m, &d), KILN_OK);
    int nin = l.num_inputs(), nout = l.num_outputs();
    assert_int_equal(nin, kiln_model_input_count(m));
    assert_int_equal(nout, kiln_model_output_count(m));
    kiln_tensor *in[8] = {0}, *ref[8] = {0}, *got[8] = {0};
    const void *in_data[8];
    void *out_data[8];
    for (int i = 0; i < nin; i++) {
        const desc *ds = l.input_desc(i);
        assert_string_equal(ds->name, kiln_model_input_name(m, i));
        assert_int_equal(ds->dtype, KILN_F32);
        assert_int_equal(kiln_tensor_create(KILN_F32, ds->rank, ds->dims, &in[i], &d), KILN_OK);
        for (int64_t k = 0; k < kiln_tensor_count(in[i]); k++)
            ((float *)in[i]->data)[k] = random_float();
        in_data[i] = in[i]->data;
    }
    for (int j = 0; j < nout; j++) {
        const desc *ds = l.output_desc(j);
        assert_int_equal(kiln_tensor_create((kiln_dtype)ds->dtype, ds->rank, ds->dims, &got[j], &d), KILN_OK);
        out_data[j] = got[j]->data;
    }
    assert_null(l.input_desc(nin));
    void *ctx = l.create();
    assert_non_null(ctx);
    assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, ref, &d), KILN_OK);
    for (int again = 0; again < 2; again++) { /* the second run reuses what `once` kernels packed */
        for (int j = 0; j < nout; j++)
            memset(got[j]->data, 0, kiln_tensor_bytes(got[j]));
        assert_int_equal(l.run(ctx, in_data, out_data), 0);
        for (int j = 0; j < nout; j++)
            assert_true(test_tensor_close(got[j], ref[j], 1e-5, 1e-4, name));
    }
    l.destroy(ctx);
    dlclose(l.handle);
    for (int i = 0; i < 8; i++)
        kiln_tensor_free(in[i]), kiln_tensor_free(ref[i]), kiln_tensor_free(got[i]);
    kiln_model_destroy(m);
}

static void test_bundled_models(void **state) {
    (void)state;
    check_model("../examples/models/mlp.kiln", "mlp", 3, false, false);
    check_model("../examples/models/cnn.kiln", "cnn", 2, false, false);
    check_model("../examples/models/mlp.kiln", "mlp_c", 3, true, false);
    check_model("../examples/models/cnn.kiln", "cnn_c", 2, true, false);
}

/* A new model file `file` in the tests' folder, its path in path[600]. */
static FILE *model_file(const char *file, char *path) {
    snprintf(path, 600, "%s/%s", tmp_dir, file);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    return f;
}

/* Writes the line `const %NAME: f32[ROWS, COLS] = [...]` of random values. */
static void random_const(FILE *f, const char *name, int rows, int cols) {
    fprintf(f, "  const %%%s: f32[%d, %d] = [", name, rows, cols);
    for (int i = 0; i < rows * cols; i++)
        fprintf(f, "%s%.4f", i ? ", " : "", random_float());
    fputs("]\n", f);
}

/* Constant weights packed by `once` kernels into the library's persistent block, on its
 * first run (a 300 x 256 B: wider than an L2 tile, so packed into column panels). */
static void test_packed_weights(void **state) {
    (void)state;
    char path[600];
    FILE *f = model_file("packed.kiln", path);
    fputs("graph packed {\n  input %x: f32[9, 300]\n", f);
    random_const(f, "w", 300, 256);
    fputs("  %m = MatMul(%x, %w)\n  %y = Relu(%m)\n  output %y\n}\n", f);
    assert_int_equal(fclose(f), 0);
    check_model(path, "packed", 0, false, false);
    check_model(path, "packed_c", 0, true, false);
}

/* Twin kernels (the same code on other buffers: lir_kernel_same) are compiled once; the
 * library calls that one code for each, on each kernel's own weights and values. y1's and
 * y2's kernels are twins; y3's differs from them by its constant. */
static void test_twin_kernels(void **state) {
    (void)state;
    char path[600];
    FILE *f = model_file("twins.kiln", path);
    fputs("graph twins {\n  input %x: f32[5, 40]\n", f);
    random_const(f, "w1", 40, 24);
    random_const(f, "w2", 40, 24);
    fputs("  const %three: f32[] = [3]\n  const %five: f32[] = [5]\n"
          "  %m1 = MatMul(%x, %w1)\n  %r1 = Relu(%m1)\n  %y1 = Mul(%r1, %three)\n"
          "  %m2 = MatMul(%x, %w2)\n  %r2 = Relu(%m2)\n  %y2 = Mul(%r2, %three)\n"
          "  %m3 = MatMul(%x, %w1)\n  %r3 = Relu(%m3)\n  %y3 = Mul(%r3, %five)\n  output %y1, %y2, %y3\n}\n", f);
    assert_int_equal(fclose(f), 0);
    kiln_options opts = {.backend = KILN_BACKEND_JIT}; /* lowered as the library's kernels are */
    kiln_model *m;
    kiln_diag d = {0};
    assert_int_equal(kiln_model_load(path, &opts, &m, &d), KILN_OK);
    int distinct, *same = lir_same_kernels(m->lowered, &distinct);
    assert_non_null(same);
    assert_int_equal(distinct, m->lowered->kernel_count - 1); /* y2's is y1's */
    free(same);
    kiln_model_destroy(m);
    check_model(path, "twins", 0, false, false);
    check_model(path, "twins_c", 0, true, false);
}

/* Transposes that move the contiguous axis: register tiles (LIR_TRANSPOSE) in the LLVM
 * library, plain loops in the C one; whole and partial tiles along both axes, and an input
 * read through a Reshape. */
static void test_transposes(void **state) {
    (void)state;
    char path[600];
    FILE *f = model_file("transposes.kiln", path);
    fputs("graph transposes {\n  input %x: f32[3, 37, 50]\n  input %k: f32[20, 3, 48]\n"
          "  const %sh: i64[3] = [20, 12, 12]\n  %y = Transpose(%x) {perm = [0, 2, 1]}\n"
          "  %r = Reshape(%k, %sh)\n  %z = Transpose(%r) {perm = [1, 2, 0]}\n  output %y, %z\n}\n", f);
    assert_int_equal(fclose(f), 0);
    check_model(path, "transposes", 0, false, false);
    check_model(path, "transposes_c", 0, true, false);
}

/* Unfused, elementwise kernels write their outputs over the inputs they read last
 * (passes/in_place.c): the C library's kernels then take those two pointers without
 * `restrict`. A chain over a MatMul's result, a residual Add, a Softmax row between; both
 * backends against the interpreter. */
static void test_in_place(void **state) {
    (void)state;
    char path[600];
    FILE *f = model_file("in_place.kiln", path);
    fputs("graph in_place {\n  input %x: f32[7, 40]\n", f);
    random_const(f, "w", 40, 33);
    fputs("  %m = MatMul(%x, %w)\n  %e = Exp(%m)\n  %n = Neg(%e)\n  %s = Softmax(%n) {axis = -1}\n"
          "  %t = Tanh(%s)\n  %r = Add(%t, %s)\n  %y = Relu(%r)\n  output %y\n}\n", f);
    assert_int_equal(fclose(f), 0);
    check_model(path, "in_place", 0, false, true);
    check_model(path, "in_place_c", 0, true, true);
}

static void test_torch_exports(void **state) {
    (void)state;
    check_model("models/torch/cnn_bn_opset13/model.onnx", "cnn_bn", 0, false, false);
    check_model("models/torch/transformer_encoder_opset17/model.onnx", "encoder", 0, false, false);
    check_model("models/torch/cnn_bn_opset13/model.onnx", "cnn_bn_c", 0, true, false);
    check_model("models/torch/transformer_encoder_opset17/model.onnx", "encoder_c", 0, true, false);
}

static void test_kernel_error(void **state) {
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/div.kiln", tmp_dir);
    FILE *f = fopen(path, "w");
    fputs("graph div {\n  input %a: i32[3]\n  input %b: i32[3]\n  \"divide\": %y = Div(%a, %b)\n  output %y\n}\n", f);
    fclose(f);
    library l = build(path, "div", 0, false, false);
    int32_t a[3] = {7, -7, 5}, b[3] = {2, 2, 0}, y[3];
    const void *in[2] = {a, b};
    void *out[1] = {y};
    void *ctx = l.create();
    assert_int_not_equal(l.run(ctx, in, out), 0);
    assert_string_equal(l.last_error(ctx), "node 'divide': integer division by zero");
    b[2] = -1;
    assert_int_equal(l.run(ctx, in, out), 0);
    assert_int_equal(y[0], 3);
    assert_int_equal(y[1], -3);
    assert_int_equal(y[2], -5);
    l.destroy(ctx);
    dlclose(l.handle);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bundled_models),
        cmocka_unit_test(test_packed_weights),
        cmocka_unit_test(test_twin_kernels),
        cmocka_unit_test(test_transposes),
        cmocka_unit_test(test_in_place),
        cmocka_unit_test(test_torch_exports),
        cmocka_unit_test(test_kernel_error),
    };
    return cmocka_run_group_tests_name("cemit", tests, setup, teardown);
}
