/*
 * test_math.c — the accuracy of the f32 math the JIT compiles: its own exp, tanh, erf and
 * sigmoid (backend/llvm/cg_math.c, inline vector code) and the functions it takes from
 * libm / libmvec, each against double over many points of its range, with the special
 * values. Bounds are in units of 2^-24 relative, as the code states them.
 */
#include "../test_util.h"

#include "driver/model.h"

#include <float.h>
#include <stdlib.h>

/* `body` (input %a: f32[n], output %y) compiled by the JIT; fails the test if it does not parse. */
static kiln_model *jit_model(const char *body, int n) {
    char src[256];
    snprintf(src, sizeof src, "graph m {\n  input %%a: f32[%d]\n  %s\n  output %%y\n}\n", n, body);
    kiln_options opts = {.backend = KILN_BACKEND_JIT};
    kiln_model *m;
    kiln_diag d = {0};
    assert_int_equal(kiln_model_parse(src, strlen(src), "m.kiln", &opts, &m, &d), KILN_OK);
    return m;
}

/* The largest error of y[0..n) against ref(x) in units of 2^-24 relative, where the
 * reference is a normal float (subnormal and overflowing results are checked apart). */
static double worst_units(const float *x, const float *y, int n, double (*ref)(double)) {
    double worst = 0;
    for (int i = 0; i < n; i++) {
        double want = ref((double)x[i]);
        if (fabs(want) < FLT_MIN || fabs(want) > FLT_MAX)
            continue;
        double err = fabs((double)y[i] - want) / (fabs(want) * FLT_EPSILON / 2);
        worst = err > worst ? err : worst;
    }
    return worst;
}

static double sigmoid(double x) { return 1 / (1 + exp(-x)); }
static double sigmoid_of_relu(double x) { return sigmoid(fmax(x, 0)); }

/* The JIT's own f32 exp, tanh and erf (backend/llvm/cg_math.c), and sigmoid (through exp,
 * or through tanh where its input cannot be negative: a ReLU's output), against double
 * over 2^20 points: three quarters spread across their whole range (exp: [-104, 89], past
 * which results are 0 and inf; tanh: [-12, 12]; erf: [-6, 6]), a quarter of magnitudes
 * from 10^-30 to 1 (where tanh x is about x, erf x about 1.13 x), plus the special values.
 * The stated accuracy, in units of 2^-24 relative where the result is normal: exp within
 * 2, tanh and erf within 6 (their rational forms' f32 steps: 5.28 and 5.07 at worst over
 * every third float, scripts/fit_tanh.py and fit_erf.py), sigmoid within 4.
 * Each kernel must call the function the row names, so the tanh path cannot go untested. */
static void test_math_accuracy(void **state) {
    (void)state;
    static const struct {
        const char *name, *body;
        double lo, hi, ulps;
        double (*ref)(double);
        float at_inf, at_minus_inf, at_zero;
        const char *calls; /* the one math function its kernel calls */
    } fns[] = {
        {"Exp", "%y = Exp(%a)", -104, 89, 2, exp, INFINITY, 0, 1, "exp("},
        {"Tanh", "%y = Tanh(%a)", -12, 12, 6, tanh, 1, -1, 0, "tanh("},
        {"Erf", "%y = Erf(%a)", -6, 6, 6, erf, 1, -1, 0, "erf("},
        {"Sigmoid", "%y = Sigmoid(%a)", -87, 20, 4, sigmoid, 1, 0, 0.5f, "exp("},
        {"Sigmoid(Relu)", "%r = Relu(%a)\n  %y = Sigmoid(%r)", -4, 20, 4, sigmoid_of_relu, 1, 0.5f, 0.5f, "tanh("},
    };
    for (int f = 0; f < ARRAY_LEN(fns); f++) {
        enum { N = 1 << 20 };
        kiln_model *m = jit_model(fns[f].body, N + 5);
        kiln_diag d = {0};
        char *lowered = NULL;
        size_t lowered_size = 0;
        FILE *lf = open_memstream(&lowered, &lowered_size);
        lir_print(m->lowered, lf);
        fclose(lf);
        static const char *const inline_fns[] = {"exp(", "tanh(", "erf("};
        int called = 0;
        for (int k = 0; k < ARRAY_LEN(inline_fns); k++)
            called += strstr(lowered, inline_fns[k]) != NULL;
        if (!strstr(lowered, fns[f].calls) || called != 1) {
            print_error("%s: expected a kernel calling %s only\n%s", fns[f].name, fns[f].calls, lowered);
            fail();
        }
        free(lowered);
        int64_t dims[1] = {N + 5};
        kiln_tensor *in, *out = NULL;
        assert_int_equal(kiln_tensor_create(KILN_F32, 1, dims, &in, &d), KILN_OK);
        float *x = in->data;
        for (int i = 0; i < N; i++) /* three quarters evenly spaced, a quarter +-10^-30 .. 1 */
            x[i] = i < N / 4 * 3 ? (float)(fns[f].lo + (fns[f].hi - fns[f].lo) * i / (N / 4 * 3 - 1))
                                 : (float)((i & 1 ? -1 : 1) * pow(10, -30.0 * (N - 1 - i) / (N / 4)));
        x[N] = INFINITY, x[N + 1] = -INFINITY, x[N + 2] = NAN, x[N + 3] = 0.0f, x[N + 4] = -0.0f;
        assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)&in, &out, &d), KILN_OK);
        const float *y = out->data;
        double worst = worst_units(x, y, N, fns[f].ref); /* subnormal and infinite results: checked below */
        printf("jit %s: worst error %.2f ulp over %d points\n", fns[f].name, worst, N);
        assert_true(worst <= fns[f].ulps);
        assert_true(y[N] == fns[f].at_inf && y[N + 1] == fns[f].at_minus_inf && isnan(y[N + 2]));
        assert_true(y[N + 3] == fns[f].at_zero && y[N + 4] == fns[f].at_zero);
        assert_true(f != 1 || signbit(y[N + 4]));              /* tanh(-0) = -0 */
        assert_true(f != 2 || signbit(y[N + 4]));              /* erf(-0) = -0 */
        assert_true(f != 0 || (y[0] >= 0 && y[0] < 1e-44f)); /* exp(-104): the smallest subnormals */
        kiln_tensor_free(in), kiln_tensor_free(out);
        kiln_model_destroy(m);
    }
}

/* f32 functions the JIT takes from libm (through glibc's libmvec on AVX-512: 16 lanes a
 * call) against double, over 2^18 points of a range each (Log: positive; Sin, Cos: no
 * zero but 0, where relative error would mean nothing): within 4 ulp, libmvec's stated
 * bound (8 units of 2^-24 relative; scalar libm is within about 1.2). */
static void test_libm_accuracy(void **state) {
    (void)state;
    static const struct { const char *op; double lo, hi; double (*ref)(double); } fns[] = {
        {"Log", 1e-3, 100, log}, {"Sin", -3, 3, sin}, {"Cos", -1.5, 1.5, cos}, {"Atan", -20, 20, atan},
        {"Asinh", -20, 20, asinh}, {"Cosh", -10, 10, cosh}};
    for (int f = 0; f < ARRAY_LEN(fns); f++) {
        enum { N = 1 << 18 };
        char body[64];
        snprintf(body, sizeof body, "%%y = %s(%%a)", fns[f].op);
        kiln_model *m = jit_model(body, N);
        kiln_diag d = {0};
        int64_t dims[1] = {N};
        kiln_tensor *in, *out = NULL;
        assert_int_equal(kiln_tensor_create(KILN_F32, 1, dims, &in, &d), KILN_OK);
        float *x = in->data;
        for (int i = 0; i < N; i++)
            x[i] = (float)(fns[f].lo + (fns[f].hi - fns[f].lo) * i / (N - 1));
        assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)&in, &out, &d), KILN_OK);
        double worst = worst_units(x, out->data, N, fns[f].ref);
        printf("jit %s: worst error %.2f units of 2^-24 over %d points\n", fns[f].op, worst, N);
        assert_true(worst <= 8);
        kiln_tensor_free(in), kiln_tensor_free(out);
        kiln_model_destroy(m);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_math_accuracy),
        cmocka_unit_test(test_libm_accuracy),
    };
    return cmocka_run_group_tests_name("math", tests, NULL, NULL);
}
