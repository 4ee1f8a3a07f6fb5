/*
 * test_loop.c — the loop IR's expression facts: lir_nonneg, which lowering trusts to pick
 * cheaper formulas (sigmoid through tanh), holds for the forms it names and for nothing
 * that can be negative; lir_tanh_affine, which the stages and the JIT fold into tanh,
 * finds c * tanh(y) + d only where c is a power of two beside an f32 tanh; lir_lane_offsets,
 * which turns a grouped conv's per-lane reads into a load and a shuffle, knows the lanes'
 * offsets only where the lane enters apart from the rest; lower_in_place_safe, which lets
 * the memory plan write a kernel's output over its input, only for a kernel that reads each
 * element in the one store that overwrites it, at an index no two iterations share.
 */
#include "../test_util.h"

#include "ir/loop.h"
#include "passes/lower.h"

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

/* lir_lane_offsets: the lanes of a vector loop over `lane` (16 of them, from 0) read
 * base + f(lane) with f known before the run (cg_vector.c loads the window and shuffles),
 * or the offsets are not known (a gather). */
static void test_lane_offsets(void **state) {
    lir_module *m = ((fixture *)*state)->m;
    lir_expr *lane = var(state, "lane", KILN_I64), *ci = var(state, "ci", KILN_I64), *p = var(state, "p", KILN_I64);
    lir_expr *sc = var(state, "scalar", KILN_I64); /* declared inside the loop: differs by lane */
    bool varying[8] = {false};
    varying[sc->var] = true;
#define I(v) lir_int(m, v)
#define B(op, a, b) lir_binary(m, LIR_##op, a, b)
    lir_expr *group4 = B(SUB, lane, B(REM, lane, I(4))); /* lane - lane % 4 */
    struct { const char *what; lir_expr *e; bool known; int64_t off[16]; } cases[] = {
        {"p 16 + ci + (lane - lane % 4)", B(ADD, B(MUL, p, I(16)), B(ADD, ci, group4)), true,
         {0, 0, 0, 0, 4, 4, 4, 4, 8, 8, 8, 8, 12, 12, 12, 12}},
        {"(p + lane / 8) * 3", B(MUL, B(ADD, p, B(DIV, lane, I(8))), I(3)), true, {0, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3, 3, 3}},
        {"p - lane", B(SUB, p, lane), true, {0, -1, -2, -3, -4, -5, -6, -7, -8, -9, -10, -11, -12, -13, -14, -15}},
        {"ci: uniform", ci, true, {0}},
        {"(p + lane) / 4: a uniform part under the division", B(DIV, B(ADD, p, lane), I(4)), false, {0}},
        {"lane * p: a product of both", B(MUL, lane, p), false, {0}},
        {"scalar + lane: a value per lane", B(ADD, sc, lane), false, {0}},
    };
#undef I
#undef B
    for (int i = 0; i < ARRAY_LEN(cases); i++) {
        int64_t off[16];
        bool known = lir_lane_offsets(cases[i].e, lane->var, varying, 0, 16, off);
        bool same = known == cases[i].known && (!known || !memcmp(off, cases[i].off, sizeof off));
        if (!same) {
            print_error("lir_lane_offsets(%s): got %s, offsets %lld %lld ... %lld\n", cases[i].what, known ? "known" : "unknown",
                        (long long)off[0], (long long)off[1], (long long)off[15]);
            fail();
        }
    }
}

/* Kernels over `in` and `out` (32 elements) for lower_in_place_safe, each rebuilt in the
 * fixture's kernel: its body is replaced case by case. */
static void test_in_place_proof(void **state) {
    fixture *f = *state;
    lir_module *m = f->m;
    lir_kernel *k = f->k;
    lir_buffer *in = lir_local(m, k, "in", KILN_F32, 32), *out = lir_local(m, k, "out", KILN_F32, 32);
    lir_buffer *wide = lir_local(m, k, "wide", KILN_F64, 32);
    assert_true(in && out && wide);
#define I(v) lir_int(m, v)
#define B(op, a, b) lir_binary(m, LIR_##op, a, b)
#define LD(buf, at) lir_load(m, buf, at)
#define ST(buf, at, v) lir_store(m, buf, at, v)
    for (int c = 0; c < 12; c++) {
        int iv = lir_var_new(m, k, "i", KILN_I64), jv = lir_var_new(m, k, "j", KILN_I64), xv = lir_var_new(m, k, "x", KILN_F32);
        lir_expr *i = lir_var_ref(m, k, iv), *j = lir_var_ref(m, k, jv);
        lir_expr *e = B(ADD, B(MUL, i, I(8)), j); /* i 8 + j: each of 32 elements once */
        lir_expr *one = lir_const(m, KILN_F32, 1);
        lir_stmt *inner = lir_seq(m);
        const char *what = NULL;
        bool want = false;
        lir_buffer *dst = out;
        int64_t ni = 4, nj = 8;
        switch (c) {
        case 0: what = "out[i 8 + j] = in[i 8 + j] + 1", want = true;
            lir_seq_push(m, inner, ST(out, e, B(ADD, LD(in, e), one)));
            break;
        case 1: what = "out[31 - (i 8 + j)] = in[31 - (i 8 + j)]: a falling index", want = true;
            e = B(SUB, I(31), e);
            lir_seq_push(m, inner, ST(out, e, LD(in, e)));
            break;
        case 2: what = "out[j] = in[j] + 1 for each i: the store revisits j";
            e = j;
            lir_seq_push(m, inner, ST(out, e, B(ADD, LD(in, e), one)));
            break;
        case 3: what = "out[i 4 + j] = in[i 4 + j], j < 8: rows overlap";
            e = B(ADD, B(MUL, i, I(4)), j), ni = 7;
            lir_seq_push(m, inner, ST(out, e, LD(in, e)));
            break;
        case 4: what = "out[i 8 + j] = in[j 4 + i]: another element";
            lir_seq_push(m, inner, ST(out, e, LD(in, B(ADD, B(MUL, j, I(4)), i))));
            break;
        case 5: what = "two stores to out";
            lir_seq_push(m, inner, ST(out, e, LD(in, e)));
            lir_seq_push(m, inner, ST(out, e, B(ADD, LD(in, e), one)));
            break;
        case 6: what = "let x = in[e]; out[e] = x: the load outside the store";
            lir_seq_push(m, inner, lir_let(m, xv, LD(in, e)));
            lir_seq_push(m, inner, ST(out, e, lir_var_ref(m, k, xv)));
            break;
        case 7: what = "out[e] = in[e] + out[e]: the kernel reads its output";
            lir_seq_push(m, inner, ST(out, e, B(ADD, LD(in, e), LD(out, e))));
            break;
        case 8: what = "out[e] = i 8 + j, then in read by a later loop";
            lir_seq_push(m, inner, ST(out, e, lir_cast(m, KILN_F32, e)));
            break;
        case 9: what = "wide[e] = in[e]: another element size";
            dst = wide;
            lir_seq_push(m, inner, ST(wide, e, lir_cast(m, KILN_F64, LD(in, e))));
            break;
        case 11: what = "out[e] = 1, in[e] = 2: in is another output, not read";
            lir_seq_push(m, inner, ST(out, e, one));
            lir_seq_push(m, inner, ST(in, e, lir_const(m, KILN_F32, 2)));
            break;
        case 10: what = "out[i 8 + j] = in[i 8 + j] * 2, i's loop not constant";
            ni = -1;
            lir_seq_push(m, inner, ST(out, e, B(MUL, LD(in, e), lir_const(m, KILN_F32, 2))));
            break;
        }
        lir_stmt *jl = lir_for(m, jv, I(0), I(nj), inner);
        lir_stmt *il = lir_for(m, iv, I(0), ni < 0 ? lir_var_ref(m, k, xv) : I(ni), lir_seq(m));
        lir_seq_push(m, il->body, jl);
        k->body = lir_seq(m);
        lir_seq_push(m, k->body, il);
        if (c == 8) { /* a second nest reading in after out is written */
            int v = lir_var_new(m, k, "t", KILN_I64);
            lir_expr *t = lir_var_ref(m, k, v);
            lir_seq_push(m, k->body, lir_for(m, v, I(0), I(32), ST(wide, t, lir_cast(m, KILN_F64, LD(in, t)))));
        }
        if (lower_in_place_safe(k, in, dst) != want)
            fail_msg("lower_in_place_safe(%s): got %d", what, !want);
    }
#undef I
#undef B
#undef LD
#undef ST
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nonneg, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tanh_affine, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lane_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_in_place_proof, setup, teardown),
    };
    return cmocka_run_group_tests_name("loop", tests, NULL, NULL);
}
