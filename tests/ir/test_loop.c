/*
 * test_loop.c — the loop IR's expression facts: lir_nonneg, which lowering trusts to pick
 * cheaper formulas (sigmoid through tanh), holds for the forms it names and for nothing
 * that can be negative; lir_tanh_affine, which the stages and the JIT fold into tanh,
 * finds c * tanh(y) + d only where c is a power of two beside an f32 tanh.
 */
#include "../test_util.h"

#include "ir/loop.h"

/* An empty module with one kernel: expressions to build, variables to declare. */
typedef struct fixture {
    ir_graph *g;
    lir_module *m;
    lir_kernel *k;
} fixture;

static int setup(void **state) {
    static fixture f;
    kiln_diag d = {0};
    if (ir_graph_create("g", "g.kiln", &f.g, &d) || lir_module_create(f.g, &f.m, &d) || !(f.k = lir_kernel_add(f.m, "k", NULL)))
        return -1;
    *state = &f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    lir_module_destroy(f->m);
    ir_graph_destroy(f->g);
    return 0;
}

static lir_expr *var(void **state, const char *name, kiln_dtype t) {
    fixture *f = *state;
    return lir_var_ref(f->m, f->k, lir_var_new(f->m, f->k, name, t));
}

static void test_nonneg(void **state) {
    lir_module *m = ((fixture *)*state)->m;
    lir_expr *x = var(state, "x", KILN_F32), *y = var(state, "y", KILN_F32), *n = var(state, "n", KILN_I32);
#define F(v) lir_const(m, KILN_F32, v)
#define BIN(op, a, b) lir_binary(m, op, a, b)
    lir_expr *relu = lir_select(m, BIN(LIR_LT, x, F(0)), F(0), x);
    struct { const char *what; lir_expr *e; bool nonneg; } cases[] = {
        {"0", F(0), true},
        {"-0", F(-0.0), true},
        {"-1", F(-1), false},
        {"x", x, false},
        {"relu(x)", relu, true},
        {"0.5 > x ? 0 : x", lir_select(m, BIN(LIR_GT, F(0.5), x), F(0), x), true},
        {"x < -1 ? 0 : x", lir_select(m, BIN(LIR_LT, x, F(-1)), F(0), x), false},
        {"x < 0 ? -1 : x", lir_select(m, BIN(LIR_LT, x, F(0)), F(-1), x), false},
        {"x < 0 ? 0 : y", lir_select(m, BIN(LIR_LT, x, F(0)), F(0), y), false},
        {"x * x", BIN(LIR_MUL, x, x), true},
        {"x * y", BIN(LIR_MUL, x, y), false},
        {"relu(x) * 1.5 + 0.5", BIN(LIR_ADD, BIN(LIR_MUL, relu, F(1.5)), F(0.5)), true},
        {"relu(x) - 0.5", BIN(LIR_SUB, relu, F(0.5)), false},
        {"relu(x) / exp(y)", BIN(LIR_DIV, relu, lir_call(m, LIR_EXP, y, NULL)), true},
        {"|x|", lir_unary(m, LIR_ABS, x), true},
        {"-relu(x)", lir_unary(m, LIR_NEG, relu), false},
        {"sqrt(x)", lir_call(m, LIR_SQRT, x, NULL), true},
        {"tanh(relu(x))", lir_call(m, LIR_TANH, relu, NULL), false},
        {"max(x, 0)", BIN(LIR_MAX, x, F(0)), true},
        {"max(x, y)", BIN(LIR_MAX, x, y), false},
        {"max_any(x, 0)", lir_max_any(m, LIR_MAX, x, F(0)), true},
        {"max_any(x, |y|)", lir_max_any(m, LIR_MAX, x, lir_unary(m, LIR_ABS, y)), false},
        {"min(relu(x), 6)", BIN(LIR_MIN, relu, F(6)), true},
        {"min(relu(x), y)", BIN(LIR_MIN, relu, y), false},
        {"f16(relu(x))", lir_cast(m, KILN_F16, relu), true},
        {"f32(n * n)", lir_cast(m, KILN_F32, BIN(LIR_MUL, n, n)), false},
    };
#undef F
#undef BIN
    for (int i = 0; i < ARRAY_LEN(cases); i++) {
        assert_non_null(cases[i].e);
        if (lir_nonneg(cases[i].e) != cases[i].nonneg) {
            print_error("lir_nonneg(%s) should be %s\n", cases[i].what, cases[i].nonneg ? "true" : "false");
            fail();
        }
    }
}

static void test_tanh_affine(void **state) {
    lir_module *m = ((fixture *)*state)->m;
    lir_expr *x = var(state, "x", KILN_F32), *y = var(state, "y", KILN_F32), *xd = var(state, "xd", KILN_F64);
    lir_expr *t = lir_call(m, LIR_TANH, x, NULL), *td = lir_call(m, LIR_TANH, xd, NULL);
#define F(v) lir_const(m, KILN_F32, v)
    struct { const char *what; lir_expr *e; double c; lir_expr *d; } cases[] = {
        {"fma(0.5, tanh(x), 0.5)", lir_fma(m, F(0.5), t, F(0.5)), 0.5, NULL},
        {"fma(tanh(x), 4, y)", lir_fma(m, t, F(4), y), 4, y},
        {"1 + tanh(x)", lir_binary(m, LIR_ADD, F(1), t), 1, NULL},
        {"tanh(x) + y", lir_binary(m, LIR_ADD, t, y), 1, y},
        {"fma(0.3, tanh(x), 0.5): not a power of two", lir_fma(m, F(0.3), t, F(0.5)), 0, NULL},
        {"fma(-0.5, tanh(x), 0.5): negative", lir_fma(m, F(-0.5), t, F(0.5)), 0, NULL},
        {"fma(y, tanh(x), 0.5): not a constant", lir_fma(m, y, t, F(0.5)), 0, NULL},
        {"fma(0.5, exp(x), 0.5)", lir_fma(m, F(0.5), lir_call(m, LIR_EXP, x, NULL), F(0.5)), 0, NULL},
        {"fma(0.5, x, tanh(x)): tanh outside the product", lir_fma(m, F(0.5), x, t), 0, NULL},
        {"tanh(x) - 1", lir_binary(m, LIR_SUB, t, F(1)), 0, NULL},
        {"0.5 * tanh(x)", lir_binary(m, LIR_MUL, F(0.5), t), 0, NULL},
        {"f64: 1 + tanh(xd)", lir_binary(m, LIR_ADD, lir_const(m, KILN_F64, 1), td), 0, NULL},
    };
#undef F
    for (int i = 0; i < ARRAY_LEN(cases); i++) {
        double c = 0;
        const lir_expr *dd = NULL, *call = lir_tanh_affine(cases[i].e, &c, &dd);
        bool want = cases[i].c != 0;
        if ((call != NULL) != want || (want && (call != t || c != cases[i].c || (cases[i].d && dd != cases[i].d) ||
                                                 (!cases[i].d && dd->kind != LIR_CONST)))) {
            print_error("lir_tanh_affine(%s): got %s, c = %g\n", cases[i].what, call ? "a tanh" : "NULL", c);
            fail();
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nonneg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tanh_affine, setup, teardown),
    };
    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
