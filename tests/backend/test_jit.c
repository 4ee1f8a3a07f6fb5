/*
 * test_jit.c — the LLVM JIT against the reference: every hand-checked op case whose ops
 * all have a loop lowering runs compiled (f32 arithmetic against double-derived expected
 * values: |got - want| <= 1e-5 + 1e-4 * |want|), every lowered op must be exercised by at
 * least one case, and randomized shapes (ranks 0 to 5, odd sizes, broadcasting) compare
 * the JIT with the interpreter at the same tolerance.
 */
#include "random_inputs.h"

#include "../ops/op_cases.h"
#include "driver/model.h"
#include "backend/llvm/llvm_backend.h"
#include "passes/lower.h"

#include <float.h>
#include <pthread.h>
#include <stdlib.h>

#define JIT_ATOL 1e-5
#define JIT_RTOL 1e-4

static bool all_lowered(const char *src) {
    kiln_diag d = {0};
    ir_graph *g;
    if (txt_parse(src, strlen(src), "case.kiln", &g, &d))
        return false;
    bool ok = true;
    for (int i = 0; i < g->node_count; i++)
        ok &= lower_supported(g->nodes[i]->op);
    ir_graph_destroy(g);
    return ok;
}

/* A case that must fail (a bad shape, an index out of range, an integer division by
 * zero) fails compiled too, with a message naming the node. */
static void check_error_case(const op_case *c) {
    char *src = case_source(c, MODE_SHAPE_CONSTS);
    kiln_options opts = {.backend = KILN_BACKEND_JIT};
    kiln_diag d = {0};
    kiln_model *m = NULL;
    kiln_status st = kiln_model_parse(src, strlen(src), "case.kiln", &opts, &m, &d);
    if (st == KILN_OK) {
        kiln_tensor *in[6] = {0}, *out[3] = {0};
        int nin = 0;
        for (int k = 0; k < ARRAY_LEN(c->inputs) && c->inputs[k]; k++) {
            const char *lit = strchr(c->inputs[k], ':') + 2;
            if (lit[0] != 'i' && lit[0] != 'u')
                in[nin++] = test_literal(lit);
        }
        st = kiln_model_run(m, (const kiln_tensor *const *)in, out, &d);
        for (int k = 0; k < nin; k++)
            kiln_tensor_free(in[k]);
        for (int k = 0; k < ARRAY_LEN(out); k++)
            kiln_tensor_free(out[k]);
    }
    if (st == KILN_OK || !strstr(d.message, "node '")) {
        print_error("%s (jit): want an error naming the node, got: %s\n", c->name, st ? d.message : "success");
        fail();
    }
    kiln_model_destroy(m);
    free(src);
}

static void differential(const char *body, int rank_a, const int64_t *a, int rank_b, const int64_t *b);

/* Vector loops, and register-tile transposes (vector code of their own). */
static int count_vector_loops(const lir_stmt *s) {
    switch (s->kind) {
    case LIR_FOR: return (s->loop == LIR_VECTOR) + count_vector_loops(s->body);
    case LIR_TRANSPOSE: return 1;
    case LIR_IF: return count_vector_loops(s->body) + (s->other ? count_vector_loops(s->other) : 0);
    case LIR_SEQ: {
        int n = 0;
        for (int i = 0; i < s->count; i++)
            n += count_vector_loops(s->items[i]);
        return n;
    }
    default: return 0;
    }
}
static bool *differential_ops; /* when set, differential marks the ops its compiled graph kept */
static bool differential_zeros; /* when set, random inputs are about half zeros */
/* The absolute tolerance's scale for contractions longer than the stated one's K = 36: an
 * f32 sum of K products of values in [-2, 2] differs from the interpreter's f64 sum by
 * roundings of partial sums that grow with K, so the bound grows as K / 36. */
static double differential_atol_scale = 1;
static int differential_threads; /* the JIT's threads (0: all), which some lowerings block by */

static void test_op_cases(void **state) {
    (void)state;
    bool covered[IR_OP_COUNT] = {0};
    int ran = 0, skipped = 0;
    for (int i = 0; i < ARRAY_LEN(cases); i++) {
        const op_case *c = &cases[i];
        if (c->error) {
            char *src = case_source(c, MODE_INPUTS);
            if (all_lowered(src))
                check_error_case(c);
            free(src);
            continue;
        }
        int mode = MODE_INPUTS;
        char *src = case_source(c, mode);
        if (!all_lowered(src)) {
            printf("skip %s (not lowered)\n", c->name);
            free(src);
            skipped++;
            continue;
        }
        kiln_options opts = {.backend = KILN_BACKEND_JIT};
        kiln_diag d = {0};
        kiln_model *m;
        kiln_status st = kiln_model_parse(src, strlen(src), "case.kiln", &opts, &m, &d);
        if (st == KILN_ERR_UNSUPPORTED) { /* shapes that only constant inputs make static */
            free(src);
            src = case_source(c, mode = MODE_SHAPE_CONSTS);
            d = (kiln_diag){0};
            st = kiln_model_parse(src, strlen(src), "case.kiln", &opts, &m, &d);
        }
        if (st == KILN_ERR_UNSUPPORTED) { /* a dtype the lowering does not take yet */
            printf("skip %s: %s\n", c->name, d.message);
            free(src);
            skipped++;
            continue;
        }
        if (st) {
            print_error("%s: %s\n", c->name, d.message);
            fail();
        }
        kiln_tensor *in[6] = {0}, *out[3] = {0};
        int nin = 0;
        for (int k = 0; k < ARRAY_LEN(c->inputs) && c->inputs[k]; k++) {
            const char *lit = strchr(c->inputs[k], ':') + 2;
            if (mode == MODE_INPUTS || (lit[0] != 'i' && lit[0] != 'u'))
                in[nin++] = test_literal(lit);
        }
        if (kiln_model_run(m, (const kiln_tensor *const *)in, out, &d)) {
            print_error("%s: %s\n", c->name, d.message);
            fail();
        }
        for (int j = 0; j < ARRAY_LEN(c->outputs) && c->outputs[j]; j++) {
            kiln_tensor *want = test_literal(strchr(c->outputs[j], ':') + 2);
            char what[128];
            snprintf(what, sizeof what, "%s (jit) output %d", c->name, j);
            assert_true(test_tensor_close(out[j], want, JIT_ATOL, JIT_RTOL, what));
            kiln_tensor_free(want);
        }
        for (int n = 0; n < m->graph->node_count; n++)
            covered[m->graph->nodes[n]->op] = true;
        for (int k = 0; k < nin; k++)
            kiln_tensor_free(in[k]);
        for (int k = 0; k < ARRAY_LEN(out); k++)
            kiln_tensor_free(out[k]);
        kiln_model_destroy(m);
        free(src);
        ran++;
    }
    /* Ops whose results constant folding would compute, made too large to fold */
    static const struct { const char *src; double sum; } large[] = {
        {"graph g {\n  const %s: i64[2] = [300, 300]\n  %y = ConstantOfShape(%s) {value = f32[1] [2.5]}\n"
         "  %z = ReduceSum(%y) {keepdims = 0}\n  output %z\n}\n", 225000},
        {"graph g {\n  const %a: f64[] = [0]\n  const %b: f64[] = [20000]\n  const %d: f64[] = [1]\n"
         "  %y = Range(%a, %b, %d)\n  %z = ReduceSum(%y) {keepdims = 0}\n  output %z\n}\n", 199990000},
    };
    for (int i = 0; i < ARRAY_LEN(large); i++) {
        kiln_options opts = {.backend = KILN_BACKEND_JIT};
        kiln_diag d = {0};
        kiln_model *m;
        kiln_tensor *out = NULL;
        assert_int_equal(kiln_model_parse(large[i].src, strlen(large[i].src), "large.kiln", &opts, &m, &d), KILN_OK);
        assert_int_equal(kiln_model_run(m, NULL, &out, &d), KILN_OK);
        assert_true(fabs(ir_tensor_get(out, 0) - large[i].sum) <= 1e-6 * large[i].sum);
        for (int n = 0; n < m->graph->node_count; n++)
            covered[m->graph->nodes[n]->op] = true;
        kiln_tensor_free(out);
        kiln_model_destroy(m);
    }
    /* NonZero folds when its input is a small constant (a pinned input is one): a large
     * one keeps it, since its output would be larger still. */
    int64_t big[2] = {150, 151};
    differential_ops = covered;
    differential_zeros = true;
    differential("%n = NonZero(%a)\n  %y = Cast(%n) {to = \"f32\"}", 2, big, 0, NULL);
    differential_zeros = false;
    differential_ops = NULL;
    int missing = 0;
    for (int op = 0; op < IR_OP_COUNT; op++)
        if (lower_supported((ir_op)op) && !covered[op]) {
            print_error("lowered op %s has no case that runs through the JIT\n", ir_op_table[op].name);
            missing++;
        }
    printf("jit: %d op cases compiled and checked, %d use ops or dtypes not lowered yet\n", ran, skipped);
    assert_int_equal(missing, 0);
}

/* ---- randomized shapes: JIT against the interpreter ------------------------------------ */

static kiln_tensor *random_tensor(int rank, const int64_t *dims) { return random_tensor_of(rank, dims, differential_zeros); }

/* Runs `body` (inputs %a and optionally %b, output %y) both ways and compares. */
static void differential(const char *body, int rank_a, const int64_t *a, int rank_b, const int64_t *b) {
    char ta[128], tb[128], *src = malloc(70000);
    shape_text(rank_a, a, ta, sizeof ta);
    shape_text(rank_b, b, tb, sizeof tb);
    snprintf(src, 70000, "graph r {\n  input %%a: %s\n%s%s%s  %s\n  output %%y\n}\n", ta,
             b ? "  input %b: " : "", b ? tb : "", b ? "\n" : "", body);
    kiln_tensor *in[2] = {random_tensor(rank_a, a), b ? random_tensor(rank_b, b) : NULL}, *ref = NULL, *got = NULL;
    kiln_options jit = {.backend = KILN_BACKEND_JIT, .threads = differential_threads};
    kiln_model *mi, *mj;
    kiln_diag d = {0};
    if (kiln_model_parse(src, strlen(src), "random.kiln", NULL, &mi, &d) ||
        kiln_model_parse(src, strlen(src), "random.kiln", &jit, &mj, &d)) {
        print_error("%s\n%s", d.message, src);
        fail();
    }
    assert_int_equal(kiln_model_run(mi, (const kiln_tensor *const *)in, &ref, &d), KILN_OK);
    assert_int_equal(kiln_model_run(mj, (const kiln_tensor *const *)in, &got, &d), KILN_OK);
    for (int n = 0; differential_ops && n < mj->graph->node_count; n++)
        differential_ops[mj->graph->nodes[n]->op] = true;
    if (!test_tensor_close(got, ref, JIT_ATOL * differential_atol_scale, JIT_RTOL, "jit vs interpreter")) {
        print_error("%s", src);
        fail();
    }
    kiln_tensor_free(in[0]), kiln_tensor_free(in[1]), kiln_tensor_free(ref), kiln_tensor_free(got);
    kiln_model_destroy(mi), kiln_model_destroy(mj);
    free(src);
}

static void random_dims(int rank, int64_t *dims) {
    static const int64_t sizes[] = {1, 2, 3, 5, 7, 16, 17, 33};
    for (int d = 0; d < rank; d++)
        dims[d] = sizes[uniform(ARRAY_LEN(sizes))];
}

static void test_random_elementwise(void **state) {
    (void)state;
    static const char *const unary[] = {"Relu", "Sigmoid", "Tanh", "Exp", "Abs", "Neg", "Softsign", "Erf", "Floor", "Gelu"};
    static const char *const binary[] = {"Add", "Sub", "Mul", "Max", "Min", "PRelu"};
    for (int trial = 0; trial < 40; trial++) {
        int rank = uniform(6);
        int64_t a[KILN_MAX_RANK], b[KILN_MAX_RANK];
        random_dims(rank, a);
        int rank_b = rank ? uniform(rank + 1) : 0; /* b broadcasts: a suffix of a, some dims 1 */
        for (int d = 0; d < rank_b; d++)
            b[d] = uniform(3) ? a[rank - rank_b + d] : 1;
        char body[128];
        snprintf(body, sizeof body, "%%y = %s(%%a)", unary[trial % ARRAY_LEN(unary)]);
        differential(body, rank, a, 0, NULL);
        snprintf(body, sizeof body, "%%y = %s(%%a, %%b)", binary[trial % ARRAY_LEN(binary)]);
        differential(body, rank, a, rank_b, b);
    }
    /* long chains, computed in stages over tiles: rows of 64 to 1000, on 1 and 2 threads */
    for (int trial = 0; trial < 6; trial++) {
        int64_t a[3] = {1 + uniform(3), 1 + uniform(4), 64 + uniform(937)}, b[1] = {a[2]};
        differential_threads = 1 + trial % 2;
        differential("%s = Sigmoid(%a)\n  %m = Mul(%s, %b)\n  %t = Tanh(%m)\n  %y = Mul(%t, %t)", 3, a, 1, b);
        /* the bench's chain: sigmoid of a ReLU (through tanh), then tanh, clamped */
        differential("%s = Mul(%a, %b)\n  %r = Relu(%s)\n  %g = Sigmoid(%r)\n  %m = Mul(%g, %a)\n"
                     "  %t = Tanh(%m)\n  %q = Mul(%t, %t)\n  %u = Add(%q, %a)\n  %y = Clip(%u)",
                     3, a, 1, b);
        /* tanh's Gelu: 1 + tanh(...) folds into tanh's last step */
        differential("%y = Gelu(%a) {approximate = \"tanh\"}", 3, a, 0, NULL);
    }
    differential_threads = 0;
}

/* Einsum through the JIT against the interpreter: contractions, diagonals, traces, sums,
 * transposes and broadcasting ellipses, each on random sizes (1 broadcasts under "..."). */
static void test_random_einsum(void **state) {
    (void)state;
    static const struct {
        const char *eq;
        int rank_a, rank_b;
        const char *labels_a, *labels_b; /* the letter of each axis, '.' for an ellipsis axis */
    } eqs[] = {
        {"bij,bjk->bik", 3, 3, "bij", "bjk"}, {"ij,jk", 2, 2, "ij", "jk"}, {"ii->i", 2, 0, "ii", ""},
        {"ii", 2, 0, "ii", ""},               {"ij->", 2, 0, "ij", ""},    {"ijk->kji", 3, 0, "ijk", ""},
        {"...ij,...jk->...ik", 4, 3, "..ij", ".jk"}, {"i,i->", 1, 1, "i", "i"}, {"bii->bi", 3, 0, "bii", ""},
    };
    for (int trial = 0; trial < 3; trial++)
        for (int k = 0; k < ARRAY_LEN(eqs); k++) {
            int64_t size[128] = {0}, a[KILN_MAX_RANK], b[KILN_MAX_RANK];
            for (const char *l = "bijk"; *l; l++)
                size[(int)*l] = 1 + uniform(6);
            for (int d = 0; d < eqs[k].rank_a; d++)
                a[d] = eqs[k].labels_a[d] == '.' ? 1 + uniform(3) : size[(int)eqs[k].labels_a[d]];
            for (int d = 0; d < eqs[k].rank_b; d++) /* ellipsis axes of b: 1 or a's, aligned right */
                b[d] = eqs[k].labels_b[d] == '.' ? (uniform(2) ? a[1] : 1) : size[(int)eqs[k].labels_b[d]];
            char body[128];
            snprintf(body, sizeof body, "%%y = Einsum(%%a%s) {equation = \"%s\"}", eqs[k].rank_b ? ", %b" : "", eqs[k].eq);
            differential(body, eqs[k].rank_a, a, eqs[k].rank_b, eqs[k].rank_b ? b : NULL);
        }
}

static void test_random_matmul(void **state) {
    (void)state;
    for (int trial = 0; trial < 20; trial++) {
        int64_t m = 1 + uniform(19), k = 1 + uniform(37), n = 1 + uniform(23), batch = 1 + uniform(3);
        int64_t a[3] = {batch, m, k}, b[2] = {k, n};
        differential("%y = MatMul(%a, %b)", trial % 2 ? 3 : 2, trial % 2 ? a : a + 1, 2, b);
    }
    /* columns a multiple of 32 (two vectors per lane loop), and B past the 256 KiB a column
     * tile holds (K 300 x N 256: tiles of 128 columns, 64+ rows: packed into panels), rows
     * not a multiple of the block */
    for (int trial = 0; trial < 4; trial++) {
        int64_t m = trial < 2 ? 64 + uniform(40) : 1 + uniform(21), k = trial < 2 ? 300 : 1 + uniform(40), n = 32 * (1 + uniform(8)) + (trial < 2 ? 192 : 0);
        int64_t a[3] = {1 + uniform(2), m, k}, b[2] = {k, n};
        differential_atol_scale = k > 36 ? (double)k / 36 : 1; /* the stated bound for a K-term contraction */
        differential("%y = MatMul(%a, %b)", trial % 2 ? 3 : 2, trial % 2 ? a : a + 1, 2, b);
        /* Gemm past the tile budget too: B packed into panels, transposed or not */
        int64_t bt[2] = {n, k};
        differential(trial % 2 ? "%y = Gemm(%a, %b) {transB = 1, alpha = 0.25}" : "%y = Gemm(%a, %b) {alpha = 0.5}", 2, a + 1, 2,
                     trial % 2 ? bt : b);
        differential_atol_scale = 1;
    }
    /* one row (a classifier at batch 1) on 2 threads, columns past a vector's multiple:
     * few_rows' sums in scratch, B streamed by rows */
    static const int64_t one_row[][2] = {{17, 65}, {300, 1000}, {64, 257}, {1280, 100}};
    differential_threads = 2;
    for (int i = 0; i < ARRAY_LEN(one_row); i++) {
        int64_t a[2] = {1, one_row[i][0]}, b[2] = {one_row[i][0], one_row[i][1]};
        differential_atol_scale = a[1] > 36 ? (double)a[1] / 36 : 1;
        differential("%y = MatMul(%a, %b)", 2, a, 2, b);
        int64_t bt[2] = {b[1], b[0]};
        differential("%y = Gemm(%a, %b) {transB = 1, alpha = 0.5}", 2, a, 2, bt);
    }
    differential_threads = 0, differential_atol_scale = 1;
    /* the sizes around the vector and block edges: 1, 7, 17, 63, 65, 129 for each of M, K,
     * N (squares, and rotations so no two are equal), batched MatMul and Gemm with a bias */
    static const int64_t edges[] = {1, 7, 17, 63, 65, 129};
    for (int i = 0; i < ARRAY_LEN(edges); i++) {
        int64_t m = edges[i], k = edges[(i + 2) % ARRAY_LEN(edges)], n = edges[(i + 4) % ARRAY_LEN(edges)];
        int64_t sq[2] = {m, m}, a[3] = {2, m, k}, b[2] = {k, n};
        differential_atol_scale = m > 36 ? (double)m / 36 : 1;
        differential("%y = MatMul(%a, %b)", 2, sq, 2, sq);
        differential_atol_scale = k > 36 ? (double)k / 36 : 1;
        differential("%y = MatMul(%a, %b)", 3, a, 2, b);
        char gemm[4096];
        int len = snprintf(gemm, sizeof gemm, "const %%c: f32[%lld] = [", (long long)n);
        for (int j = 0; j < n; j++)
            len += snprintf(gemm + len, sizeof gemm - (size_t)len, "%s%d", j ? ", " : "", uniform(9) - 4);
        snprintf(gemm + len, sizeof gemm - (size_t)len, "]\n  %%y = Gemm(%%a, %%b, %%c) {alpha = 0.5, beta = 2}");
        differential(gemm, 2, a + 1, 2, b);
    }
    differential_atol_scale = 1;
    /* a shared B's rows blocked across the batch dims, one flat run of rows ([S, 1 to 3, K],
     * the sequence first; [N, H, W, C]), and a deep sum (K = 3072: column tiles of 32, past
     * the quarter of the L2 the tiles are sized for) */
    for (int trial = 0; trial < 4; trial++) {
        int64_t k = trial < 2 ? 1 + uniform(40) : 3072, n = trial < 2 ? 16 + uniform(60) : 64 + 32 * uniform(2);
        int64_t a[3] = {8 + uniform(40), 1 + uniform(3), k}, b[2] = {k, n};
        differential_atol_scale = k > 36 ? (double)k / 36 : 1;
        differential("%y = MatMul(%a, %b)", trial < 2 ? 3 : 2, trial < 2 ? a : a + 1, 2, b);
        int64_t a4[4] = {1 + uniform(3), 1 + uniform(7), 1 + uniform(7), k}; /* [N, H, W, C] x [C, C']: ConvNeXt's */
        differential("%y = MatMul(%a, %b)", 4, a4, 2, b);
    }
    differential_atol_scale = 1;
    /* 1 to 3 rows (k outermost, sums in scratch), Gemm with transB and alpha too */
    for (int trial = 0; trial < 6; trial++) {
        int64_t m = 1 + uniform(3), k = 1 + uniform(40), n = 16 + uniform(60);
        int64_t a[3] = {1 + uniform(2), m, k}, b[2] = {k, n}, bt[2] = {n, k};
        differential("%y = MatMul(%a, %b)", trial % 2 ? 3 : 2, trial % 2 ? a : a + 1, 2, b);
        differential("%y = Gemm(%a, %b) {transB = 1, alpha = 0.5}", 2, a + 1, 2, bt);
    }
}

static void test_random_reductions_softmax_transpose(void **state) {
    (void)state;
    static const char *const reduce[] = {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceL2", "ReduceLogSumExp"};
    for (int trial = 0; trial < 30; trial++) {
        int rank = 1 + uniform(5);
        int64_t a[KILN_MAX_RANK];
        random_dims(rank, a);
        char body[160];
        snprintf(body, sizeof body, "%%y = %s(%%a) {axes = [%d], keepdims = %d}", reduce[trial % ARRAY_LEN(reduce)],
                 uniform(rank) - (trial % 2 ? rank : 0), trial % 3 ? 1 : 0);
        differential(body, rank, a, 0, NULL);
        snprintf(body, sizeof body, "%%y = %s(%%a) {axis = %d}", trial % 2 ? "Softmax" : "LogSoftmax", uniform(rank));
        differential(body, rank, a, 0, NULL);
        differential("%y = Transpose(%a)", rank, a, 0, NULL);
    }
    /* softmax over a long last axis: lane-partial passes, a row not a multiple of the lanes */
    for (int trial = 0; trial < 8; trial++) {
        int64_t a[3] = {1 + uniform(3), 1 + uniform(9), 8 + uniform(133)};
        differential(trial % 2 ? "%y = Softmax(%a) {axis = -1}" : "%y = LogSoftmax(%a) {axis = 2}", 3, a, 0, NULL);
        /* tiled transposes: the input's last axis goes elsewhere, rows not a multiple of the tile */
        int64_t b[4] = {1 + uniform(3), 4 + uniform(40), 4 + uniform(40), 1 + uniform(3)};
        differential(trial % 2 ? "%y = Transpose(%a) {perm = [0, 2, 1]}" : "%y = Transpose(%a) {perm = [2, 0, 1]}", 3, b + 1, 0, NULL);
        differential("%y = Transpose(%a) {perm = [1, 3, 0, 2]}", 4, b, 0, NULL);
        /* layer norm over a long tail (lane-partial mean and variance): one axis, two axes
         * with a whole-tail scale, two axes with a scale broadcast along the first */
        int64_t s1[1] = {a[2]}, s2[2] = {a[1], a[2]}, s3[2] = {1, a[2]};
        differential("%y = LayerNormalization(%a, %b, %b) {axis = -1}", 3, a, 1, s1);
        differential("%y = LayerNormalization(%a, %b) {axis = 1}", 3, a, 2, trial % 2 ? s2 : s3);
    }
}

/* LIR_TRANSPOSE tiles in the statements under s. */
static int count_transposes(const lir_stmt *s) {
    int n = s->kind == LIR_TRANSPOSE;
    for (int i = 0; i < s->count; i++)
        n += count_transposes(s->items[i]);
    return n + (s->body ? count_transposes(s->body) : 0) + (s->other ? count_transposes(s->other) : 0);
}

/* Transposes that move the input's contiguous axis run as register tiles (LIR_TRANSPOSE),
 * each of the graphs below checked to take that path at 512-bit vectors (16 x 16 tiles of
 * f32, 8 x 8 of i64): whole tiles and the partial ones at the ends of both axes, axes
 * shorter than a tile, 8-byte elements (an ArgMax's i64 output), and an input read through
 * a Reshape (the Transformer's K^T: / and % in the read's index, which keep the tile's
 * strides). Each against the interpreter on random sizes, where the values must agree to
 * the bit (a transpose moves them). */
static void test_register_transposes(void **state) {
    (void)state;
    for (int trial = 0; trial < 12; trial++) {
        /* the output's last axis at least 4 long: shorter ones are not tiled at all */
        int64_t a[3] = {1 + uniform(3), 4 + uniform(70), 4 + uniform(70)};
        int64_t e[3] = {4 + uniform(30), 1 + uniform(3), 12 * (1 + uniform(3))}, b[4] = {a[0], a[1], a[2], 3};
        char shape[64], body[512];
        snprintf(shape, sizeof shape, "const %%sh: i64[3] = [%lld, %lld, 12]\n  ", (long long)e[0],
                 (long long)(e[1] * e[2] / 12));
        const char *bodies[3] = {"%y = Transpose(%a) {perm = [0, 2, 1]}",
                                 "%m = ArgMax(%a) {axis = 3, keepdims = 0}\n  %t = Transpose(%m) {perm = [2, 0, 1]}\n"
                                 "  %y = Cast(%t) {to = \"f32\"}",
                                 "%r = Reshape(%a, %sh)\n  %y = Transpose(%r) {perm = [1, 2, 0]}"};
        const int64_t *dims[3] = {a, b, e};
        int ranks[3] = {3, 4, 3};
        for (int g = 0; g < 3; g++) {
            snprintf(body, sizeof body, "%s%s", g == 2 ? shape : "", bodies[g]);
            char ta[128], src[1024];
            shape_text(ranks[g], dims[g], ta, sizeof ta);
            snprintf(src, sizeof src, "graph t {\n  input %%a: %s\n  %s\n  output %%y\n}\n", ta, body);
            kiln_model *m;
            kiln_diag d = {0};
            lir_module *lm;
            assert_int_equal(kiln_model_parse(src, strlen(src), "t.kiln", NULL, &m, &d), KILN_OK);
            assert_int_equal(lower_graph(m->graph, &(lower_options){.vector_bits = 512}, &lm, NULL, &d), KILN_OK);
            int tiles = 0;
            for (int k = 0; k < lm->kernel_count; k++)
                tiles += count_transposes(lm->kernels[k]->body);
            if (!tiles) {
                print_error("no register tiles for\n%s", src);
                fail();
            }
            lir_module_destroy(lm);
            kiln_model_destroy(m);
            differential(body, ranks[g], dims[g], 0, NULL);
        }
    }
}

static void test_random_conv_pool(void **state) {
    (void)state;
    for (int trial = 0; trial < 12; trial++) {
        int64_t c = 1 + uniform(4), h = 5 + uniform(8), w = 5 + uniform(8), k = 1 + uniform(3);
        /* up to 37 output channels: full blocks of 16 and a partial one; strides up to 3
         * (the last axis's stride splits the padded copy by phase) */
        int64_t x[4] = {1 + uniform(2), c, h, w}, wt[4] = {1 + uniform(trial % 3 ? 5 : 37), c, k, k};
        char body[200];
        snprintf(body, sizeof body, "%%y = Conv(%%a, %%b) {pads = [%d, %d, %d, %d], strides = [%d, %d], dilations = [%d, %d]}",
                 uniform(2), uniform(2), uniform(2), uniform(2), 1 + uniform(3), 1 + uniform(3), 1 + uniform(2), 1 + uniform(2));
        differential(body, 4, x, 4, wt);
        /* wide rows (two vectors of columns per lane loop, 8 channels): 24 to 73 columns */
        int64_t xw[4] = {1, c, 3 + uniform(3), 24 + uniform(50)}, ww[4] = {8 + uniform(13), c, k, k};
        snprintf(body, sizeof body, "%%y = Conv(%%a, %%b) {pads = [%d, %d, %d, %d], strides = [1, %d]}",
                 uniform(2), uniform(2), uniform(2), uniform(2), 1 + uniform(2));
        differential(body, 4, xw, 4, ww);
        int64_t x1[3] = {x[0], c, 7 + uniform(20)}, w1[3] = {wt[0], c, k};
        snprintf(body, sizeof body, "%%y = Conv(%%a, %%b) {strides = [%d], pads = [%d, %d]}", 1 + uniform(3), uniform(2), uniform(2));
        differential(body, 3, x1, 3, w1);
        snprintf(body, sizeof body, "%%y = %s(%%a) {kernel_shape = [%lld, %lld], pads = [1, 0, 1, 0], strides = [2, 1]}",
                 trial % 2 ? "MaxPool" : "AveragePool", (long long)k + 1, (long long)k + 1);
        differential(body, 4, x, 0, NULL);
        /* small images in flat vector groups (1 to 4 vectors per lane loop, 16 / parts
         * channels): many input channels take it even where the rows fill their vectors */
        int64_t xf[4] = {1 + uniform(2), trial % 2 ? 80 : 1 + uniform(4), 3 + uniform(14), 3 + uniform(14)};
        int64_t wf[4] = {1 + uniform(37), xf[1], 1 + uniform(3), 1 + uniform(3)};
        snprintf(body, sizeof body, "%%y = Conv(%%a, %%b) {pads = [%d, %d, %d, %d]}", uniform(2), uniform(2), uniform(2), uniform(2));
        double taps = (double)(xf[1] * wf[2] * wf[3]);
        differential_atol_scale = taps > 36 ? taps / 36 : 1;
        differential(body, 4, xf, 4, wf);
        /* strided and dilated, on the flat path too (the padded copy split into phase
         * planes along both axes; a 1x1 kernel copies only the first phase) */
        snprintf(body, sizeof body, "%%y = Conv(%%a, %%b) {pads = [%d, %d, %d, %d], strides = [%d, %d], dilations = [%d, %d]}",
                 uniform(2), uniform(2), uniform(2), uniform(2), 1 + uniform(3), 1 + uniform(3), 1 + uniform(2), 1 + uniform(2));
        xf[1] = wf[1] = 80, xf[2] += 4, xf[3] += 4;
        differential_atol_scale = (double)(xf[1] * wf[2] * wf[3]) / 36;
        differential(body, 4, xf, 4, wf);
        differential_atol_scale = 1;
        /* narrow rows (9 to 16 columns) in groups of 2 or 4 rows per lane loop: stride 1 with
         * and without padding (no padded copy), stride 2, 2 to 17 rows */
        int sr = 1 + uniform(2);
        int64_t xr[4] = {1 + uniform(2), c, 2 + uniform(16) + k, (8 + uniform(8)) * sr + k + 1}, wr[4] = {4 + uniform(20), c, k, k};
        snprintf(body, sizeof body, "%%y = Conv(%%a, %%b) {pads = [%d, %d, %d, %d], strides = [%d, %d]}",
                 trial % 3 ? uniform(2) : 0, trial % 3 ? uniform(2) : 0, trial % 3 ? uniform(2) : 0, trial % 3 ? uniform(2) : 0, sr, sr);
        differential(body, 4, xr, 4, wr);
        /* non-overlapping windows inside the input (no bounds checks, strided loads) */
        int ks = 1 + uniform(3);
        int64_t xs[4] = {1 + uniform(2), c, ks * (1 + uniform(5)) + uniform(ks), ks * (1 + uniform(40)) + uniform(ks)};
        snprintf(body, sizeof body, "%%y = %s(%%a) {kernel_shape = [%d, %d], strides = [%d, %d]}",
                 trial % 2 ? "MaxPool" : "AveragePool", ks, ks, ks, ks);
        differential(body, 4, xs, 0, NULL);
        /* MaxPool over wide rows (row, column and stride passes): strides 1 to 3, pads below
         * the window, ceil_mode, rows not a multiple of the vector */
        int kh = 1 + uniform(3), kw = 1 + uniform(3), sw = 1 + uniform(3);
        int64_t xp[4] = {1 + uniform(2), c, 4 + uniform(6), 16 * sw + uniform(40)};
        snprintf(body, sizeof body, "%%y = MaxPool(%%a) {kernel_shape = [%d, %d], pads = [%d, %d, %d, %d], strides = [%d, %d], ceil_mode = %d}",
                 kh, kw, uniform(kh), uniform(kw), uniform(kh), uniform(kw), 1 + uniform(2), sw, uniform(2));
        differential(body, 4, xp, 0, NULL);
    }
}

/* The ops that select by value and the training-mode ops, on random shapes: TopK (random
 * axis, K up to the whole axis, largest and smallest; the values are distinct), MaxPool's
 * Indices in both storage orders, Compress along an axis and flattened, training-mode
 * BatchNormalization (output and running statistics) and the Adam/Momentum/Adagrad
 * updates (x, gradient and state are random; rate 0.1, step 3). */
static void test_random_select_train(void **state) {
    (void)state;
    for (int trial = 0; trial < 12; trial++) {
        int rank = 1 + uniform(4);
        int64_t a[KILN_MAX_RANK];
        random_dims(rank, a);
        int axis = uniform(rank);
        char body[512];
        snprintf(body, sizeof body, "const %%k: i64[1] = [%d]\n  %%v, %%i = TopK(%%a, %%k) {axis = %d, largest = %d}\n"
                 "  %%f = Cast(%%i) {to = \"f32\"}\n  %%y = Add(%%v, %%f)", 1 + uniform((int)a[axis]), axis - (trial % 2) * rank,
                 trial % 3 != 0);
        differential(body, rank, a, 0, NULL);
        char cond[256] = "";
        int64_t len = a[axis];
        for (int64_t i = 0, n = 0; i < len && i < 40; i++)
            n += (size_t)snprintf(cond + n, sizeof cond - (size_t)n, "%s%d", i ? ", " : "", uniform(2));
        snprintf(body, sizeof body, "const %%c: bool[%lld] = [%s]\n  %%y = Compress(%%a, %%c)%s", (long long)(len < 40 ? len : 40),
                 cond, trial % 2 ? "" : (axis ? " {axis = 1}" : " {axis = 0}"));
        if (trial % 2 == 0 && axis > 1) /* the axis written above */
            continue;
        differential(body, rank, a, 0, NULL);
    }
    for (int trial = 0; trial < 8; trial++) {
        int64_t x[4] = {1 + uniform(2), 1 + uniform(3), 4 + uniform(6), 4 + uniform(6)};
        char body[300];
        snprintf(body, sizeof body, "%%v, %%i = MaxPool(%%a) {kernel_shape = [%d, 2], pads = [1, 0, 1, 1], strides = [%d, 1], "
                 "storage_order = %d}\n  %%y = Cast(%%i) {to = \"f32\"}", 2 + uniform(2), 1 + uniform(2), trial % 2);
        differential(body, 4, x, 0, NULL);
        int64_t ch[1] = {x[1]};
        static const char *const bn_out[] = {"%y", "%m", "%s"};
        snprintf(body, sizeof body, "%%o, %%m, %%s = BatchNormalization(%%a, %%b, %%b, %%b, %%b) {training_mode = 1, "
                 "momentum = 0.8}\n  %%y = Identity(%s)", bn_out[trial % 3]);
        for (char *p = body; (p = strstr(p, "%y = Identity(%y)")); ) /* output 0 itself */
            memcpy(p, "%y = Identity(%o)", 17);
        differential(body, 4, x, 1, ch);
    }
    static const char *const optims[] = {
        "%y, %v1 = Adagrad(%r, %t, %a, %b, %b) {decay_factor = 0.1, epsilon = 1e-6, norm_coefficient = 0.01}",
        "%y, %v1 = Momentum(%r, %t, %a, %b, %b) {alpha = 0.9, beta = 0.5, mode = \"nesterov\", norm_coefficient = 0.01}",
        "%y, %v1 = Momentum(%r, %t, %a, %b, %b) {alpha = 0.9, beta = 0.5, mode = \"standard\", norm_coefficient = 0}",
        "%x1, %y, %h1 = Adam(%r, %t, %a, %b, %b, %b) {alpha = 0.9, beta = 0.999, epsilon = 1e-6, norm_coefficient_post = 0.01}",
    };
    for (int k = 0; k < ARRAY_LEN(optims); k++) {
        int rank = uniform(4);
        int64_t a[KILN_MAX_RANK];
        random_dims(rank, a);
        char body[512];
        snprintf(body, sizeof body, "const %%r: f32[] = [0.1]\n  const %%t: i64[] = [3]\n  %s", optims[k]);
        differential(body, rank, a, rank, a);
    }
}

/* A constant %name of random values in [-1, 1] (f32) or, for lens, in [0, max]. */
static int const_text(char *buf, size_t cap, const char *name, const char *dtype, int rank, const int64_t *dims, int max_int) {
    int n = snprintf(buf, cap, "  const %%%s: %s[", name, dtype);
    int64_t count = 1;
    for (int d = 0; d < rank; d++) {
        n += snprintf(buf + n, cap - (size_t)n, "%s%lld", d ? ", " : "", (long long)dims[d]);
        count *= dims[d];
    }
    n += snprintf(buf + n, cap - (size_t)n, "] = [");
    for (int64_t i = 0; i < count; i++)
        n += max_int ? snprintf(buf + n, cap - (size_t)n, "%s%d", i ? ", " : "", uniform(max_int + 1))
                     : snprintf(buf + n, cap - (size_t)n, "%s%.4f", i ? ", " : "", uniform(2001) / 1000.0 - 1);
    return n + snprintf(buf + n, cap - (size_t)n, "]\n");
}

/* RNN, GRU and LSTM on random sizes and attribute mixes (directions, layouts, biases,
 * sequence lengths, initial states, peepholes, clip, custom activations,
 * linear_before_reset, input_forget), each output in turn, against the interpreter. */
static void test_random_recurrent(void **state) {
    (void)state;
    static const char *const ops[] = {"RNN", "GRU", "LSTM"};
    static const char *const dirs[] = {"forward", "reverse", "bidirectional"};
    static const char *const acts[3][3] = {{"\"Relu\"", "\"Tanh\"", "\"Softsign\""},
                                           {"\"HardSigmoid\", \"Tanh\"", "\"Sigmoid\", \"Elu\"", "\"Sigmoid\", \"ScaledTanh\""},
                                           {"\"Sigmoid\", \"Tanh\", \"Tanh\"", "\"HardSigmoid\", \"LeakyRelu\", \"Softplus\"",
                                            "\"Sigmoid\", \"Affine\", \"ThresholdedRelu\""}};
    char *src = malloc(65536);
    for (int trial = 0; trial < 36; trial++) {
        int op = trial % 3, gates = op == 0 ? 1 : op == 1 ? 3 : 4, dir = (trial / 3) % 3, layout = uniform(2);
        /* batch entries share weight loads in blocks of as many as each thread gets (up to 16):
         * on 1 thread up to 20 entries (a full block and a partial one), on 2 up to 12 */
        differential_threads = 1 + (trial / 4) % 2;
        int64_t S = 1 + uniform(5), B = trial % 4 == 3 ? 9 + uniform(differential_threads == 1 ? 12 : 4) : 1 + uniform(3);
        int64_t I = 1 + uniform(6);
        /* gate rows a multiple of the vector width: W and R in several panels of rows */
        int64_t H = trial % 9 >= 6 ? (gates == 3 ? 16 : 8 * (1 + uniform(2))) : 1 + uniform(5), D = dir == 2 ? 2 : 1;
        int64_t x[3] = {layout ? B : S, layout ? S : B, I}, w[3] = {D, gates * H, I}, r[3] = {D, gates * H, H};
        int64_t bias[2] = {D, 2 * gates * H}, lens[1] = {B}, st[3] = {layout ? B : D, layout ? D : B, H}, p[2] = {D, 3 * H};
        bool with_bias = uniform(3), with_lens = uniform(2), with_h0 = uniform(2), with_c0 = uniform(2), with_p = uniform(2);
        size_t n = 0;
        n += (size_t)const_text(src + n, 65536 - n, "r", "f32", 3, r, 0);
        if (with_bias)
            n += (size_t)const_text(src + n, 65536 - n, "bias", "f32", 2, bias, 0);
        if (with_lens)
            n += (size_t)const_text(src + n, 65536 - n, "lens", "i32", 1, lens, (int)S);
        if (with_h0)
            n += (size_t)const_text(src + n, 65536 - n, "h0", "f32", 3, st, 0);
        if (op == 2 && with_c0)
            n += (size_t)const_text(src + n, 65536 - n, "c0", "f32", 3, st, 0);
        if (op == 2 && with_p)
            n += (size_t)const_text(src + n, 65536 - n, "p", "f32", 2, p, 0);
        int outs = op == 2 ? 3 : 2, which = uniform(outs);
        n += (size_t)snprintf(src + n, 65536 - n, "  %%o0, %%o1%s = %s(%%a, %%b, %%r, %s, %s, %s%s%s) {hidden_size = %lld, "
                              "direction = \"%s\", layout = %d", op == 2 ? ", %o2" : "", ops[op], with_bias ? "%bias" : "_",
                              with_lens ? "%lens" : "_", with_h0 ? "%h0" : "_", op == 2 ? (with_c0 ? ", %c0" : ", _") : "",
                              op == 2 ? (with_p ? ", %p" : ", _") : "", (long long)H, dirs[dir], layout);
        if (uniform(2))
            n += (size_t)snprintf(src + n, 65536 - n, ", clip = %.2f", 0.5 + uniform(100) / 100.0);
        if (trial % 2) { /* custom activations, the same for both directions */
            const char *list = acts[op][uniform(3)];
            n += (size_t)snprintf(src + n, 65536 - n, ", activations = [%s%s%s], activation_alpha = [0.7, 0.3, 1.2, 0.6, 0.5, 0.8], "
                                  "activation_beta = [0.4, 0.9, 0.2, 0.1]", list, D == 2 ? ", " : "", D == 2 ? list : "");
        }
        if (op == 1)
            n += (size_t)snprintf(src + n, 65536 - n, ", linear_before_reset = %d", uniform(2));
        if (op == 2)
            n += (size_t)snprintf(src + n, 65536 - n, ", input_forget = %d", uniform(2));
        snprintf(src + n, 65536 - n, "}\n  %%y = Identity(%%o%d)", which);
        differential(src + 2, 3, x, 3, w);
    }
    differential_threads = 0;
    free(src);
}

/* Resize with constant scales or sizes, every mode and coordinate transformation, against
 * the interpreter (the ONNX suite feeds its scales at run time, which compiled code
 * cannot take: its output shape would change). */
static void test_random_resize(void **state) {
    (void)state;
    static const char *const modes[] = {"nearest", "linear", "cubic"};
    static const char *const coords[] = {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                         "tf_half_pixel_for_nn", "tf_crop_and_resize"};
    static const char *const nearest[] = {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"};
    static const char *const scales[] = {"[1, 1, 2, 3]", "[1, 1, 0.5, 0.8]", "[1, 1, 1.7, 1]"};
    int n = 0;
    for (int m = 0; m < ARRAY_LEN(modes); m++)
        for (int k = 0; k < ARRAY_LEN(coords); k++)
            for (int s = 0; s < ARRAY_LEN(scales); s++, n++) {
                int64_t a[4] = {1, 2, 4 + uniform(3), 5 + uniform(3)};
                char body[600];
                snprintf(body, sizeof body,
                         "const %%roi: f32[8] = [0, 0, 0.2, 0.1, 1, 1, 0.9, 0.8]\n  const %%s: f32[4] = %s\n"
                         "  %%y = Resize(%%a, %%roi, %%s) {mode = \"%s\", coordinate_transformation_mode = \"%s\", "
                         "nearest_mode = \"%s\", exclude_outside = %d, extrapolation_value = 7.5}",
                         scales[s], modes[m], coords[k], nearest[n % ARRAY_LEN(nearest)], (n / 3) % 2);
                differential(body, 4, a, 0, NULL);
            }
    for (int t = 0; t < 4; t++) { /* sizes instead of scales */
        int64_t a[4] = {2, 1, 3 + uniform(4), 3 + uniform(4)};
        char body[300];
        snprintf(body, sizeof body, "const %%z: i64[4] = [2, 1, %d, %d]\n  %%y = Resize(%%a, _, _, %%z) {mode = \"%s\"}",
                 1 + uniform(9), 1 + uniform(9), modes[t % 3]);
        differential(body, 4, a, 0, NULL);
    }
}

/* Parallel loops split each nest's outermost loop into contiguous chunks and every output
 * element is still computed by one thread in the same order: 1 and 2 threads agree to
 * the bit, and both agree with the interpreter. */
static void test_parallel_equals_serial(void **state) {
    (void)state;
    static const char *const bodies[] = {
        "  %y = MatMul(%a, %b)",
        "  %r = Relu(%a)\n  %y = Softmax(%r) {axis = -1}",
        "  %y = ReduceSum(%a) {axes = [1], keepdims = 0}",
    };
    int64_t a[2] = {256, 300}, b[2] = {300, 96};
    for (int i = 0; i < ARRAY_LEN(bodies); i++) {
        char src[512];
        snprintf(src, sizeof src, "graph p {\n  input %%a: f32[256, 300]\n  input %%b: f32[300, 96]\n%s\n  output %%y\n}\n", bodies[i]);
        kiln_tensor *in[2] = {random_tensor(2, a), random_tensor(2, b)}, *out[3] = {0};
        kiln_diag d = {0};
        for (int t = 0; t < 3; t++) {
            kiln_options opts = {.backend = t < 2 ? KILN_BACKEND_JIT : KILN_BACKEND_INTERP, .threads = t + 1};
            kiln_model *m;
            assert_int_equal(kiln_model_parse(src, strlen(src), "p.kiln", &opts, &m, &d), KILN_OK);
            if (t == 1) { /* the big nest did go parallel */
                bool parallel = false;
                for (int k = 0; k < m->lowered->kernel_count; k++)
                    for (int j = 0; j < m->lowered->kernels[k]->body->count; j++)
                        parallel |= m->lowered->kernels[k]->body->items[j]->loop == LIR_PARALLEL;
                assert_true(parallel);
            }
            assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, &out[t], &d), KILN_OK);
            kiln_model_destroy(m);
        }
        assert_memory_equal(out[0]->data, out[1]->data, kiln_tensor_bytes(out[0]));
        /* Sums of 300 terms of magnitude <= 4 in another order: results that nearly cancel
         * differ by up to about 300 roundings of a term, 300 * 4 * FLT_EPSILON = 1.4e-4. */
        assert_true(test_tensor_close(out[1], out[2], 300 * 4 * FLT_EPSILON, JIT_RTOL, "parallel jit vs interpreter"));
        for (int k = 0; k < 3; k++)
            kiln_tensor_free(out[k]);
        kiln_tensor_free(in[0]), kiln_tensor_free(in[1]);
    }
}

/* A constant B wider than an L2 tile is packed into column panels by a `once` kernel, into
 * the persistent block, on the first run only: later runs (other inputs) read the panels
 * it left. MatMul and Gemm with transB; the JIT against the interpreter, run after run. */
static void test_packed_constants(void **state) {
    (void)state;
    static const char *const bodies[] = {"%y = MatMul(%a, %w)", "%y = Gemm(%a, %w) {transB = 1}"};
    char *src = malloc(1 << 20);
    for (int i = 0; i < 2; i++) {
        int64_t w[2] = {i ? 256 : 300, i ? 300 : 256}, a[2] = {5 + uniform(70), 300};
        size_t n = (size_t)snprintf(src, 1 << 20, "graph p {\n  input %%a: f32[%lld, 300]\n", (long long)a[0]);
        n += (size_t)const_text(src + n, (1 << 20) - n, "w", "f32", 2, w, 0);
        snprintf(src + n, (1 << 20) - n, "  %s\n  output %%y\n}\n", bodies[i]);
        kiln_options jit = {.backend = KILN_BACKEND_JIT};
        kiln_model *mi, *mj;
        kiln_diag d = {0};
        assert_int_equal(kiln_model_parse(src, strlen(src), "p.kiln", NULL, &mi, &d), KILN_OK);
        assert_int_equal(kiln_model_parse(src, strlen(src), "p.kiln", &jit, &mj, &d), KILN_OK);
        int once = 0;
        for (int k = 0; k < mj->lowered->kernel_count; k++)
            once += mj->lowered->kernels[k]->once;
        assert_int_equal(once, 1);
        assert_true(mj->lowered->persist_bytes >= 300 * 256 * 4);
        for (int run = 0; run < 3; run++) {
            kiln_tensor *in = random_tensor(2, a), *ref, *got;
            assert_int_equal(kiln_model_run(mi, (const kiln_tensor *const *)&in, &ref, &d), KILN_OK);
            assert_int_equal(kiln_model_run(mj, (const kiln_tensor *const *)&in, &got, &d), KILN_OK);
            assert_true(test_tensor_close(got, ref, JIT_ATOL * 300 / 36, JIT_RTOL, "packed constants vs interpreter"));
            kiln_tensor_free(in), kiln_tensor_free(ref), kiln_tensor_free(got);
        }
        kiln_model_destroy(mi), kiln_model_destroy(mj);
    }
    free(src);
}

/* Vector loops (explicit LLVM vectors, masked tails, gathers, lane masks for conditions)
 * compute what scalar loops compute, to the bit: the same operations in the same order
 * per element. Each graph is lowered twice, with and without vector loops, at sizes that
 * leave tails; the vector build must have vector loops. Chains of several exp / tanh /
 * divisions are computed in stages over tiles (passes/stage.c) in the vector build only
 * (`staged`): a whole number of tiles and a rest, inside a parallel loop and not. */
static void test_vector_equals_scalar(void **state) {
    (void)state;
    static const struct { const char *body; int64_t a[4], b[4]; int ra, rb; bool staged; } graphs[] = {
        {"%s = Sigmoid(%a)\n  %m = Mul(%s, %b)\n  %t = Tanh(%m)\n  %y = Mul(%t, %t)", {3, 5, 300}, {300}, 3, 1, true},
        {"%e = Exp(%a)\n  %q = Div(%b, %e)\n  %t = Erf(%q)\n  %c = Max(%t, %b)\n  %y = Min(%c, %e)", {5, 700}, {700}, 2, 1, true},
        {"%s = Sigmoid(%a)\n  %y = Mul(%s, %b)", {2, 333}, {333}, 2, 1, true},
        {"%s = Sin(%a)\n  %p = Abs(%b)\n  %l = Log(%p)\n  %y = Add(%s, %l)", {3, 45}, {45}, 2, 1, false},
        {"%s = Sigmoid(%a)\n  %t = Tanh(%b)\n  %y = Add(%s, %t)", {4, 63}, {63}, 2, 1, false},
        {"%y = MatMul(%a, %b)", {7, 37}, {37, 29}, 2, 2},
        {"%s = Add(%a, %b)\n  %y = Gelu(%s)", {3, 5, 19}, {5, 1}, 3, 2},
        {"%y = Conv(%a, %b) {pads = [1, 2, 1, 0], strides = [1, 2]}", {2, 3, 9, 21}, {4, 3, 3, 3}, 4, 4},
        {"%y = MaxPool(%a) {kernel_shape = [3, 3], pads = [1, 1, 1, 1]}", {1, 3, 11, 23}, {1}, 4, 1},
        /* windows inside the input, not overlapping: strided loads (2 to 4 apart) */
        {"%y = MaxPool(%a) {kernel_shape = [2, 2], strides = [2, 2]}", {2, 3, 10, 69}, {1}, 4, 1},
        {"%y = AveragePool(%a) {kernel_shape = [3, 3], strides = [3, 3]}", {1, 2, 9, 100}, {1}, 4, 1},
        {"%y = MaxPool(%a) {kernel_shape = [1, 2], strides = [1, 4]}", {1, 2, 3, 140}, {1}, 4, 1},
        {"%y = Softmax(%a) {axis = 0}", {6, 35}, {1}, 2, 1},
        {"%y = Transpose(%a) {perm = [1, 0]}", {21, 17}, {1}, 2, 1},
        {"%y = ReduceSum(%a) {axes = [0], keepdims = 0}", {9, 45}, {1}, 2, 1},
        {"%m = Greater(%a, %b)\n  %i = Cast(%a) {to = \"i32\"}\n  %f = Cast(%i) {to = \"f32\"}\n  %y = Where(%m, %f, %b)",
         {4, 33}, {33}, 2, 1},
        {"%o, %m, %v = BatchNormalization(%a, %b, %b, %b, %b) {training_mode = 1}\n  %y = Identity(%o)", {2, 3, 5, 7}, {3}, 4, 1},
    };
    for (int i = 0; i < ARRAY_LEN(graphs); i++) {
        char ta[128], tb[128], src[1024];
        shape_text(graphs[i].ra, graphs[i].a, ta, sizeof ta);
        shape_text(graphs[i].rb, graphs[i].b, tb, sizeof tb);
        snprintf(src, sizeof src, "graph v {\n  input %%a: %s\n  input %%b: %s\n  %s\n  output %%y\n}\n", ta, tb, graphs[i].body);
        kiln_options opts = {.backend = KILN_BACKEND_JIT};
        kiln_model *m;
        kiln_diag d = {0};
        assert_int_equal(kiln_model_parse(src, strlen(src), "v.kiln", &opts, &m, &d), KILN_OK);
        kiln_tensor *in[2] = {random_tensor(graphs[i].ra, graphs[i].a), random_tensor(graphs[i].rb, graphs[i].b)}, *out[2];
        for (int v = 0; v < 2; v++) {
            lir_module *lm;
            cg_jit *jit;
            assert_int_equal(lower_graph(m->graph, &(lower_options){.vector_bits = v ? 512 : 0}, &lm, NULL, &d), KILN_OK);
            int vector_loops = 0;
            for (int k = 0; k < lm->kernel_count; k++)
                vector_loops += count_vector_loops(lm->kernels[k]->body);
            if ((vector_loops > 0) != (v == 1)) {
                print_error("%s: %d vector loops with vector_bits %d\n", graphs[i].body, vector_loops, v ? 512 : 0);
                fail();
            }
            bool staged = false;
            for (int k = 0; k < lm->kernel_count; k++)
                for (int p = 0; p < lm->kernels[k]->param_count; p++)
                    staged |= !strcmp(lm->kernels[k]->params[p]->name, "stage0");
            if (staged != (v == 1 && graphs[i].staged)) {
                print_error("%s: staged %d with vector_bits %d\n", graphs[i].body, staged, v ? 512 : 0);
                fail();
            }
            assert_int_equal(cg_jit_compile(lm, NULL, &jit, &d), KILN_OK);
            assert_int_equal(cg_jit_run(jit, (const kiln_tensor *const *)in, &out[v], &d), KILN_OK);
            cg_jit_destroy(jit);
            lir_module_destroy(lm);
        }
        if (memcmp(out[0]->data, out[1]->data, kiln_tensor_bytes(out[0]))) {
            print_error("%s: vector and scalar loops differ\n", graphs[i].body);
            fail();
        }
        kiln_tensor_free(out[0]), kiln_tensor_free(out[1]), kiln_tensor_free(in[0]), kiln_tensor_free(in[1]);
        kiln_model_destroy(m);
    }
}

/* Fusion changes where values are computed, not how: inlined producers and epilogues
 * round through their output dtype as a store and a load would, so fused and unfused
 * builds agree to the bit, and the fused one has fewer kernels. The graphs cover inlining
 * into maps, convolutions, pools and reductions, epilogue chains (bias, BatchNorm,
 * activation, a residual input computed after the anchor), several readers, one reader
 * reading a value twice (x * x: inlined in both places), broadcast expensive producers
 * (left alone), and f16 values between fused nodes. */
static void test_fused_equals_unfused(void **state) {
    (void)state;
    static const struct { const char *body; int64_t a[4], b[4]; int ra, rb; } graphs[] = {
        {"%m = MatMul(%a, %b)\n  %s = Add(%m, %b0)\n  %y = Relu(%s)", {5, 33}, {33, 19}, 2, 2},
        {"%c = Conv(%a, %b) {pads = [1, 1, 1, 1]}\n  %n = BatchNormalization(%c, %s4, %b4, %m4, %v4)\n"
         "  %r = Relu(%n)\n  %y = MaxPool(%r) {kernel_shape = [2, 2], strides = [2, 2]}", {2, 3, 9, 11}, {4, 3, 3, 3}, 4, 4},
        {"%e = Exp(%a)\n  %n = Neg(%b)\n  %t = Tanh(%n)\n  %y = Add(%e, %t)", {3, 17}, {17}, 2, 1},
        {"%m = MatMul(%a, %b)\n  %k = Sigmoid(%a)\n  %r = ReduceSum(%k) {axes = [1], keepdims = 1}\n"
         "  %y = Add(%m, %r)", {6, 21}, {21, 21}, 2, 2},
        {"%h = Cast(%a) {to = \"f16\"}\n  %q = Mul(%h, %h)\n  %f = Cast(%q) {to = \"f32\"}\n  %r = Relu(%f)\n"
         "  %y = AveragePool(%r) {kernel_shape = [2]}", {2, 5, 13}, {1}, 3, 1},
        {"%x = Abs(%a)\n  %p = Add(%x, %x)\n  %y = Mul(%p, %x)", {4, 19}, {1}, 2, 1},
        {"%t = Tanh(%a)\n  %q = Mul(%t, %t)\n  %y = Add(%q, %a)", {3, 40}, {1}, 2, 1},
    };
    for (int i = 0; i < ARRAY_LEN(graphs); i++) {
        char ta[128], tb[128], src[2048];
        shape_text(graphs[i].ra, graphs[i].a, ta, sizeof ta);
        shape_text(graphs[i].rb, graphs[i].b, tb, sizeof tb);
        snprintf(src, sizeof src, "graph f {\n  input %%a: %s\n  input %%b: %s\n"
                 "  const %%b0: f32[19] = [%s]\n  const %%s4: f32[4] = [1.5, 0.5, 2, 1]\n  const %%b4: f32[4] = [0.1, -0.2, 0.3, 0]\n"
                 "  const %%m4: f32[4] = [0.5, 0, -0.5, 1]\n  const %%v4: f32[4] = [1, 2, 0.5, 4]\n  %s\n  output %%y\n}\n",
                 ta, tb, "0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1, -0.1, -0.2, -0.3, -0.4, -0.5, -0.6, -0.7, -0.8, -0.9",
                 graphs[i].body);
        kiln_tensor *in[2] = {random_tensor(graphs[i].ra, graphs[i].a), random_tensor(graphs[i].rb, graphs[i].b)}, *out[2];
        int kernels[2];
        for (int u = 0; u < 2; u++) {
            kiln_options opts = {.backend = KILN_BACKEND_JIT, .no_fuse = u == 1};
            kiln_model *m;
            kiln_diag d = {0};
            if (kiln_model_parse(src, strlen(src), "f.kiln", &opts, &m, &d)) {
                print_error("%s\n%s", d.message, src);
                fail();
            }
            kernels[u] = m->lowered->kernel_count;
            assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, &out[u], &d), KILN_OK);
            kiln_model_destroy(m);
        }
        if (memcmp(out[0]->data, out[1]->data, kiln_tensor_bytes(out[0])) || kernels[0] >= kernels[1]) {
            print_error("%s: fused (%d kernels) and unfused (%d kernels) %s\n", graphs[i].body, kernels[0], kernels[1],
                        kernels[0] >= kernels[1] ? "have as many kernels" : "differ");
            fail();
        }
        kiln_tensor_free(out[0]), kiln_tensor_free(out[1]), kiln_tensor_free(in[0]), kiln_tensor_free(in[1]);
    }
}

/* Views (Transpose keeping the last axis, Slice, the reshapes) are computed inside their
 * element reader instead of copied by a kernel (lower_tensor.c): each graph becomes
 * exactly `kernels` kernels, gives the unfused build's result to the bit and the
 * interpreter's within the JIT tolerance. Random sizes: attention's head split as PyTorch
 * exports it (Slice of the packed projection, Reshape [L, N, E] -> [L, N H, D], Transpose)
 * read by a MatMul; a head merge (a Reshape of the last two axes into one, which takes no
 * inlined producer: the Transpose before it stays a kernel); a Slice of size 1 broadcast
 * by its reader; a reshape splitting the last axis with an Exp inlined under it, read by
 * a reduction; Flatten and Unsqueeze / Squeeze read by a Gemm, over an Exp (stored: the
 * Flatten reads its input flat) or a Reshape (inlined, one more flat index). */
static void test_views_inlined(void **state) {
    (void)state;
    for (int trial = 0; trial < 10; trial++) {
        int64_t l = 1 + uniform(9), n = 1 + uniform(3), h = 1 + uniform(4), d = 1 + uniform(17), e = h * d, k = 1 + uniform(7);
        char src[2048];
        const char *which[] = {"head split", "head merge", "broadcast slice", "split into a reduction", "flatten"};
        int c = trial % 5, kernels = 0;
        int64_t a[4], b[4];
        int ra = 0, rb = 0;
        switch (c) {
        case 0: /* [L, N, 3E] -> q [L, N, E] -> [L, N H, D] -> [N H, L, D] x [N H, D, K] */
            ra = 3, a[0] = l, a[1] = n, a[2] = 3 * e, rb = 3, b[0] = n * h, b[1] = d, b[2] = k, kernels = 1;
            snprintf(src, sizeof src,
                     "const %%st: i64[1] = [%lld]\n  const %%en: i64[1] = [%lld]\n  const %%ax: i64[1] = [2]\n"
                     "  const %%sh: i64[3] = [%lld, %lld, %lld]\n  %%q = Slice(%%a, %%st, %%en, %%ax)\n"
                     "  %%r = Reshape(%%q, %%sh)\n  %%t = Transpose(%%r) {perm = [1, 0, 2]}\n  %%y = MatMul(%%t, %%b)",
                     (long long)e, (long long)(2 * e), (long long)l, (long long)(n * h), (long long)d);
            break;
        case 1: /* [N, H, L, D] -> [N, L, H, D] -> [N, L, E] -> Relu */
            ra = 4, a[0] = n, a[1] = h, a[2] = l, a[3] = d, rb = 1, b[0] = 1, kernels = 2;
            snprintf(src, sizeof src,
                     "const %%sh: i64[3] = [%lld, %lld, %lld]\n  %%t = Transpose(%%a) {perm = [0, 2, 1, 3]}\n"
                     "  %%r = Reshape(%%t, %%sh)\n  %%y = Relu(%%r)",
                     (long long)n, (long long)l, (long long)e);
            if (h == 1) /* nothing merged (D divides D): the transpose is inlined too */
                kernels = 1;
            break;
        case 2: /* a [L, E] + b [N, E] sliced to [1, E] at row N - 1 */
            ra = 2, a[0] = l, a[1] = e, rb = 2, b[0] = n, b[1] = e, kernels = 1;
            snprintf(src, sizeof src,
                     "const %%st: i64[1] = [%lld]\n  const %%en: i64[1] = [%lld]\n  const %%ax: i64[1] = [0]\n"
                     "  %%s = Slice(%%b, %%st, %%en, %%ax)\n  %%y = Add(%%a, %%s)",
                     (long long)(n - 1), (long long)n);
            break;
        case 3: /* Exp of [L, H D] read as [L, H, D], summed over D */
            ra = 2, a[0] = l, a[1] = e, rb = 1, b[0] = 1, kernels = 1;
            snprintf(src, sizeof src,
                     "const %%sh: i64[3] = [%lld, %lld, %lld]\n  %%x = Exp(%%a)\n  %%r = Reshape(%%x, %%sh)\n"
                     "  %%y = ReduceSum(%%r) {axes = [2], keepdims = 0}",
                     (long long)l, (long long)h, (long long)d);
            break;
        default: /* [N, H, L, D] flattened, unsqueezed and squeezed, times [H L D, K]; the second
                  * time reshaped to [N, H, L D] first: a reshape under one that reads flat (the
                  * Flatten) is one more flat index, inlined too */
            ra = 4, a[0] = n, a[1] = h, a[2] = l, a[3] = d, rb = 2, b[0] = h * l * d, b[1] = k, kernels = 1;
            snprintf(src, sizeof src,
                     "const %%ax: i64[1] = [1]\n  const %%sh: i64[3] = [%lld, %lld, %lld]\n  %%r = %s\n"
                     "  %%f = Flatten(%%r) {axis = 1}\n  %%u = Unsqueeze(%%f, %%ax)\n"
                     "  %%s = Squeeze(%%u, %%ax)\n  %%y = Gemm(%%s, %%b)",
                     (long long)n, (long long)h, (long long)(l * d), trial < 5 ? "Exp(%a)" : "Reshape(%a, %sh)");
            if (trial < 5)
                kernels = 2; /* the Exp is stored: the Flatten reads it flat */
            break;
        }
        char ta[128], tb[128], full[2600];
        shape_text(ra, a, ta, sizeof ta), shape_text(rb, b, tb, sizeof tb);
        snprintf(full, sizeof full, "graph views {\n  input %%a: %s\n  input %%b: %s\n  %s\n  output %%y\n}\n", ta, tb, src);
        kiln_tensor *in[2] = {random_tensor(ra, a), random_tensor(rb, b)}, *out[3];
        for (int u = 0; u < 3; u++) {
            kiln_options opts = {.backend = u < 2 ? KILN_BACKEND_JIT : KILN_BACKEND_INTERP, .no_fuse = u == 1};
            kiln_model *m;
            kiln_diag dg = {0};
            if (kiln_model_parse(full, strlen(full), "views.kiln", &opts, &m, &dg)) {
                print_error("%s\n%s", dg.message, full);
                fail();
            }
            if (u == 0 && m->lowered->kernel_count != kernels) {
                print_error("%s: %d kernels, expected %d\n%s", which[c], m->lowered->kernel_count, kernels, full);
                fail();
            }
            assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, &out[u], &dg), KILN_OK);
            kiln_model_destroy(m);
        }
        if (memcmp(out[0]->data, out[1]->data, kiln_tensor_bytes(out[0]))) {
            print_error("%s: fused and unfused differ\n%s", which[c], full);
            fail();
        }
        assert_true(test_tensor_close(out[0], out[2], JIT_ATOL * 10, JIT_RTOL, which[c]));
        for (int u = 0; u < 3; u++)
            kiln_tensor_free(out[u]);
        kiln_tensor_free(in[0]), kiln_tensor_free(in[1]);
    }
}

/* Attention (Q x KT, scaled, masked, softmax, x V) is one kernel when fused
 * (passes/lower_attention.c: key blocks with an online softmax) and agrees with the
 * interpreter, the unfused build and the emitted C within the MatMul tolerance: query
 * rows not a multiple of the row block, keys past one key block with a short last one
 * (600 = 256 + 256 + 88), scale by Mul, Div or none, masks of several broadcast shapes
 * and a causal one with -inf, an epilogue after the last MatMul, rank 3 and 4. */
static void test_attention(void **state) {
    (void)state;
    static const int64_t lqs[] = {1, 5, 8, 13, 37}, ds[] = {1, 7, 16, 33}, lks[] = {1, 9, 16, 130, 600}, dvs[] = {3, 16, 17, 64};
    static const char *const scales[] = {"", "  %t = Mul(%s, %c)\n", "  %t = Div(%s, %c)\n"};
    for (int trial = 0; trial < 16; trial++) {
        int rank = 3 + trial % 2, mask = trial % 4, scale = trial % 3; /* mask 0: none; 1: [Lq, Lk]; 2: [B.., 1.., Lq, Lk]; 3: causal */
        int64_t lq = lqs[uniform(5)], d = ds[uniform(4)], lk = trial < 5 ? lks[trial] : lks[uniform(5)], dv = dvs[uniform(4)];
        if (mask == 3 && lk < lq)
            lk = lq; /* every row keeps a finite score */
        int64_t q[4], kt[4], v[4], m[4], nb = rank - 2;
        for (int i = 0; i < nb; i++)
            q[i] = kt[i] = v[i] = 1 + uniform(3), m[i] = mask == 2 && i == 0 ? q[0] : 1;
        q[nb] = lq, q[nb + 1] = d, kt[nb] = d, kt[nb + 1] = lk, v[nb] = lk, v[nb + 1] = dv, m[nb] = lq, m[nb + 1] = lk;
        int mrank = mask == 2 ? rank : 2;
        const int64_t *mdims = mask == 2 ? m : m + nb;
        char tq[96], tk[96], tv[96], tm[96], src[1024];
        shape_text(rank, q, tq, sizeof tq), shape_text(rank, kt, tk, sizeof tk), shape_text(rank, v, tv, sizeof tv);
        shape_text(mrank, mdims, tm, sizeof tm);
        const char *scores = scale ? "%t" : "%s";
        char masked[64] = "";
        if (mask)
            snprintf(masked, sizeof masked, "  %%u = Add(%s, %%m)\n", scores);
        snprintf(src, sizeof src,
                 "graph attn {\n  input %%q: %s\n  input %%k: %s\n  input %%v: %s\n%s%s%s  const %%c: f32[] = [%s]\n"
                 "  %%s = MatMul(%%q, %%k)\n%s%s  %%p = Softmax(%s) {axis = -1}\n  %%o = MatMul(%%p, %%v)\n"
                 "  %%y = %s(%%o)\n  output %%y\n}\n",
                 tq, tk, tv, mask ? "  input %m: " : "", mask ? tm : "", mask ? "\n" : "", scale == 2 ? "8" : "0.125",
                 scales[scale], masked, mask ? "%u" : scores, trial % 5 == 4 ? "Relu" : "Identity");
        kiln_tensor *in[4] = {random_tensor(rank, q), random_tensor(rank, kt), random_tensor(rank, v),
                              mask ? random_tensor(mrank, mdims) : NULL};
        if (mask == 3)
            for (int64_t i = 0; i < lq; i++)
                for (int64_t j = 0; j < lk; j++)
                    ((float *)in[3]->data)[i * lk + j] = j > i ? -INFINITY : 0.0f;
        kiln_tensor *ref = NULL;
        static const struct { kiln_backend backend; bool no_fuse; const char *what; } builds[] = {
            {KILN_BACKEND_INTERP, false, "interpreter"}, {KILN_BACKEND_JIT, false, "fused"},
            {KILN_BACKEND_JIT, true, "unfused"}, {KILN_BACKEND_C, false, "emitted C"}};
        for (int b = 0; b < ARRAY_LEN(builds) - (trial % 4 != 1); b++) {
            kiln_options opts = {.backend = builds[b].backend, .no_fuse = builds[b].no_fuse};
            kiln_model *mo;
            kiln_diag dg = {0};
            kiln_tensor *out = NULL;
            if (kiln_model_parse(src, strlen(src), "attn.kiln", &opts, &mo, &dg)) {
                print_error("%s\n%s", dg.message, src);
                fail();
            }
            if (b == 1) { /* fused: one Attention kernel, three or more kernels fewer than unfused */
                bool found = false;
                for (int k = 0; k < mo->lowered->kernel_count; k++)
                    found |= strstr(mo->lowered->kernels[k]->name, "_Attention") != NULL;
                if (!found) {
                    print_error("no attention kernel:\n%s", src);
                    fail();
                }
            }
            assert_int_equal(kiln_model_run(mo, (const kiln_tensor *const *)in, &out, &dg), KILN_OK);
            if (!ref) {
                ref = out;
            } else {
                if (!test_tensor_close(out, ref, JIT_ATOL, JIT_RTOL, builds[b].what)) {
                    print_error("%s", src);
                    fail();
                }
                kiln_tensor_free(out);
            }
            kiln_model_destroy(mo);
        }
        kiln_tensor_free(ref);
        for (int i = 0; i < 4; i++)
            kiln_tensor_free(in[i]);
    }
}

/* A NaN in a softmax row makes the whole row NaN, as in the interpreter, though the row's
 * max may pass over it (lir_max_any): exp(NaN - max) makes the row's sum NaN. Rows of 40
 * (lane passes) with the NaN first, inside and last; and attention (Q = K = a, so a NaN
 * in a reaches every row of scores). */
static void test_softmax_nan(void **state) {
    (void)state;
    static const char *const graphs[] = {
        "graph s {\n  input %a: f32[3, 40]\n  %y = Softmax(%a) {axis = -1}\n  output %y\n}\n",
        "graph s {\n  input %a: f32[3, 40]\n  %y = LogSoftmax(%a) {axis = 1}\n  output %y\n}\n",
        "graph s {\n  input %a: f32[3, 40]\n  input %v: f32[3, 16]\n"
        "  %q = Transpose(%a) {perm = [1, 0]}\n  %s = MatMul(%a, %q)\n  %p = Softmax(%s) {axis = -1}\n"
        "  %y = MatMul(%p, %v)\n  output %y\n}\n"};
    for (int g = 0; g < ARRAY_LEN(graphs); g++) {
        int64_t dims[2] = {3, 40}, vd[2] = {3, 16};
        kiln_tensor *in[2] = {random_tensor(2, dims), random_tensor(2, vd)}, *out[2] = {0};
        float *x = in[0]->data;
        x[0] = NAN, x[40 + 17] = NAN; /* rows 0 and 1; row 2 stays finite */
        if (g < 2)
            x[2 * 40 + 39] = NAN;
        for (int b = 0; b < 2; b++) {
            kiln_options opts = {.backend = b ? KILN_BACKEND_JIT : KILN_BACKEND_INTERP};
            kiln_model *m;
            kiln_diag d = {0};
            assert_int_equal(kiln_model_parse(graphs[g], strlen(graphs[g]), "s.kiln", &opts, &m, &d), KILN_OK);
            assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, &out[b], &d), KILN_OK);
            kiln_model_destroy(m);
        }
        assert_true(isnan(ir_tensor_get(out[1], 0)));
        assert_true(test_tensor_close(out[1], out[0], JIT_ATOL, JIT_RTOL, "softmax with NaN"));
        kiln_tensor_free(in[0]), kiln_tensor_free(in[1]), kiln_tensor_free(out[0]), kiln_tensor_free(out[1]);
    }
}

/* A long chain of elementwise nodes is inlined at most 32 deep (passes/fuse.c,
 * FUSE_MAX_INLINE), so the expression the code generators walk recursively stays
 * bounded: 100 chained Neg are 4 kernels (33 + 33 + 33 + 1 nodes), and the result is
 * the input (an even count of negations). A 50000-node chain used to overflow the stack. */
static void test_fusion_depth_limit(void **state) {
    (void)state;
    enum { N = 100 };
    static char src[N * 40 + 256];
    int at = snprintf(src, sizeof src, "graph chain {\n  input %%x0: f32[37]\n");
    for (int i = 0; i < N; i++)
        at += snprintf(src + at, sizeof src - (size_t)at, "  %%x%d = Neg(%%x%d)\n", i + 1, i);
    snprintf(src + at, sizeof src - (size_t)at, "  output %%x%d\n}\n", N);
    kiln_options opts = {.backend = KILN_BACKEND_JIT};
    kiln_model *m;
    kiln_diag d = {0};
    assert_int_equal(kiln_model_parse(src, strlen(src), "chain.kiln", &opts, &m, &d), KILN_OK);
    assert_int_equal(m->lowered->kernel_count, 4);
    const int64_t dims[] = {37};
    kiln_tensor *in = random_tensor(1, dims), *out = NULL;
    assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)&in, &out, &d), KILN_OK);
    assert_memory_equal(out->data, in->data, kiln_tensor_bytes(in));
    kiln_tensor_free(in), kiln_tensor_free(out);
    kiln_model_destroy(m);
}

/* Fusion outcomes, each graph exactly `kernels` kernels, equal to the unfused build to the
 * bit and to the interpreter within the JIT tolerance: epilogues whose values are read
 * twice inside them (SiLU x * sigmoid(x) on a Conv, GELU's erf form on a MatMul, a
 * sigmoid read by two nodes that meet again) are one kernel; one whose middle value has a
 * reader outside (a Concat) is not an epilogue at all; a Relu
 * feeding a MatMul's A is inlined where the product has 64 columns or fewer and stored
 * past them, and likewise before a conv with 32 output channels or more. */
static void test_fusion_outcomes(void **state) {
    (void)state;
    static const struct { const char *body; int64_t a[4], b[4]; int ra, rb, kernels; } graphs[] = {
        {"%c = Conv(%a, %b) {pads = [1, 1, 1, 1]}\n  %s = Sigmoid(%c)\n  %y = Mul(%c, %s)", {2, 3, 9, 13}, {8, 3, 3, 3}, 4, 4, 1},
        {"%m = MatMul(%a, %b)\n  %d = Div(%m, %sqrt2)\n  %e = Erf(%d)\n  %p = Add(%e, %one)\n  %q = Mul(%m, %p)\n"
         "  %y = Mul(%q, %half)", {7, 29}, {29, 40}, 2, 2, 1},
        {"%m = MatMul(%a, %b)\n  %s = Sigmoid(%m)\n  %t = Mul(%m, %s)\n  %r = Relu(%s)\n  %y = Add(%t, %r)", {7, 29}, {29, 40}, 2, 2, 1},
        {"%m = MatMul(%a, %b)\n  %s = Sigmoid(%m)\n  %t = Mul(%m, %s)\n  %z = Relu(%s)\n  %y = Concat(%t, %z) {axis = 0}",
         {7, 29}, {29, 40}, 2, 2, 5},
        {"%r = Relu(%a)\n  %y = MatMul(%r, %b)", {9, 33}, {33, 64}, 2, 2, 1},
        {"%r = Relu(%a)\n  %y = MatMul(%r, %b)", {9, 33}, {33, 96}, 2, 2, 2},
        {"%r = Relu(%a)\n  %y = Conv(%r, %b)", {1, 5, 7, 9}, {32, 5, 3, 3}, 4, 4, 1},
        {"%r = Relu(%a)\n  %y = Conv(%r, %b)", {1, 5, 7, 9}, {48, 5, 3, 3}, 4, 4, 2},
    };
    for (int i = 0; i < ARRAY_LEN(graphs); i++) {
        char ta[128], tb[128], src[2048];
        shape_text(graphs[i].ra, graphs[i].a, ta, sizeof ta);
        shape_text(graphs[i].rb, graphs[i].b, tb, sizeof tb);
        snprintf(src, sizeof src, "graph f {\n  input %%a: %s\n  input %%b: %s\n  const %%sqrt2: f32[1] = [1.4142135]\n"
                 "  const %%one: f32[1] = [1]\n  const %%half: f32[1] = [0.5]\n  %s\n  output %%y\n}\n",
                 ta, tb, graphs[i].body);
        kiln_tensor *in[2] = {random_tensor(graphs[i].ra, graphs[i].a), random_tensor(graphs[i].rb, graphs[i].b)}, *out[3];
        int kernels = 0;
        for (int u = 0; u < 3; u++) {
            kiln_options opts = {.backend = KILN_BACKEND_JIT, .no_fuse = u == 1};
            kiln_model *m;
            kiln_diag d = {0};
            if (kiln_model_parse(src, strlen(src), "f.kiln", u < 2 ? &opts : NULL, &m, &d)) {
                print_error("%s\n%s", d.message, src);
                fail();
            }
            if (u == 0)
                kernels = m->lowered->kernel_count;
            assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, &out[u], &d), KILN_OK);
            kiln_model_destroy(m);
        }
        if (kernels != graphs[i].kernels || memcmp(out[0]->data, out[1]->data, kiln_tensor_bytes(out[0])) ||
            !test_tensor_close(out[0], out[2], JIT_ATOL * 2, JIT_RTOL, graphs[i].body)) {
            print_error("%s: %d kernels (expected %d), fused %s unfused\n", graphs[i].body, kernels, graphs[i].kernels,
                        memcmp(out[0]->data, out[1]->data, kiln_tensor_bytes(out[0])) ? "differs from" : "equals");
            fail();
        }
        for (int u = 0; u < 3; u++)
            kiln_tensor_free(out[u]);
        kiln_tensor_free(in[0]), kiln_tensor_free(in[1]);
    }
}

/* A value read twice by one node is inlined into both reads, but at most 4 copies of a
 * node go into one expression (FUSE_MAX_COPIES): 12 chained squarings x = x * x are 4
 * kernels (each inlines the two squarings before it, 2 and 4 copies), not one expression
 * of 4096 leaves; the result matches the unfused build. */
static void test_fusion_copies_limit(void **state) {
    (void)state;
    enum { N = 12 };
    static char src[N * 48 + 256];
    int at = snprintf(src, sizeof src, "graph sq {\n  input %%x0: f32[29]\n");
    for (int i = 0; i < N; i++)
        at += snprintf(src + at, sizeof src - (size_t)at, "  %%x%d = Mul(%%x%d, %%x%d)\n", i + 1, i, i);
    snprintf(src + at, sizeof src - (size_t)at, "  output %%x%d\n}\n", N);
    const int64_t dims[] = {29};
    kiln_tensor *in = random_tensor(1, dims), *out[2] = {0};
    for (int u = 0; u < 2; u++) {
        kiln_options opts = {.backend = KILN_BACKEND_JIT, .no_fuse = u == 1};
        kiln_model *m;
        kiln_diag d = {0};
        assert_int_equal(kiln_model_parse(src, strlen(src), "sq.kiln", &opts, &m, &d), KILN_OK);
        assert_int_equal(m->lowered->kernel_count, u ? N : 4);
        assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)&in, &out[u], &d), KILN_OK);
        kiln_model_destroy(m);
    }
    assert_memory_equal(out[0]->data, out[1]->data, kiln_tensor_bytes(in));
    kiln_tensor_free(in), kiln_tensor_free(out[0]), kiln_tensor_free(out[1]);
}

/* Runs of one model on several threads at once keep apart: each takes the model's spare
 * arena or, while another holds it, one of its own (backend/llvm/jit.c). Four threads, 25
 * runs each on inputs of their own, against the serial results to the bit. */
enum { RACE_THREADS = 4, RACE_RUNS = 25 };
/* several kernels, intermediates in the arena */
static const char race_model[] = "graph r {\n  input %a: f32[64, 96]\n  %e = Exp(%a)\n  %s = Softmax(%e) {axis = -1}\n"
                                 "  %t = Transpose(%s)\n  %y = MatMul(%a, %t)\n  %z = Tanh(%y)\n  output %z\n}\n";
typedef struct race { kiln_model *m; kiln_tensor *in, *want; bool ok; } race;

static void *race_runs(void *arg) {
    race *r = arg;
    r->ok = true;
    for (int i = 0; i < RACE_RUNS && r->ok; i++) {
        kiln_tensor *got = NULL;
        kiln_diag d = {0};
        r->ok = !kiln_model_run(r->m, (const kiln_tensor *const *)&r->in, &got, &d) &&
                !memcmp(got->data, r->want->data, kiln_tensor_bytes(got));
        kiln_tensor_free(got);
    }
    return NULL;
}

static void test_concurrent_runs(void **state) {
    (void)state;
    kiln_options opts = {.backend = KILN_BACKEND_JIT, .threads = 1};
    kiln_model *m;
    kiln_diag d = {0};
    assert_int_equal(kiln_model_parse(race_model, strlen(race_model), "r.kiln", &opts, &m, &d), KILN_OK);
    assert_true(m->lowered->arena_bytes > 0); /* the intermediates live in the arena */
    const int64_t dims[2] = {64, 96};
    race r[RACE_THREADS];
    pthread_t t[RACE_THREADS];
    for (int i = 0; i < RACE_THREADS; i++) {
        r[i] = (race){.m = m, .in = random_tensor(2, dims)};
        assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)&r[i].in, &r[i].want, &d), KILN_OK);
    }
    for (int i = 0; i < RACE_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, race_runs, &r[i]), 0);
    for (int i = 0; i < RACE_THREADS; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_true(r[i].ok);
        kiln_tensor_free(r[i].in), kiln_tensor_free(r[i].want);
    }
    kiln_model_destroy(m);
}

/* Kernels compiled on one thread or on every processor (kiln_options.compile_threads)
 * run the same machine code: outputs equal to the bit. */
static void test_compile_threads(void **state) {
    (void)state;
    const int64_t dims[2] = {64, 96};
    kiln_tensor *in = random_tensor(2, dims), *out[2];
    for (int i = 0; i < 2; i++) {
        kiln_options opts = {.backend = KILN_BACKEND_JIT, .threads = 1, .compile_threads = i ? 0 : 1};
        kiln_model *m;
        kiln_diag d = {0};
        assert_int_equal(kiln_model_parse(race_model, strlen(race_model), "r.kiln", &opts, &m, &d), KILN_OK);
        assert_true(m->lowered->kernel_count >= 2);
        assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)&in, &out[i], &d), KILN_OK);
        kiln_model_destroy(m);
    }
    assert_memory_equal(out[0]->data, out[1]->data, kiln_tensor_bytes(out[0]));
    kiln_tensor_free(in), kiln_tensor_free(out[0]), kiln_tensor_free(out[1]);
}

/* kiln_model_run_named: any order of names gives the positional result; bad names are named. */
static void test_run_named(void **state) {
    (void)state;
    static const char src[] = "graph named {\n  input %a: f32[2, 3]\n  input %b: f32[2, 3]\n"
                              "  %y = Sub(%a, %b)\n  output %y\n}\n";
    const int64_t dims[] = {2, 3};
    kiln_tensor *in[2] = {random_tensor(2, dims), random_tensor(2, dims)}, *ref = NULL, *got = NULL;
    kiln_options jit = {.backend = KILN_BACKEND_JIT};
    kiln_model *m;
    kiln_diag d = {0};
    assert_int_equal(kiln_model_parse(src, sizeof src - 1, "named.kiln", &jit, &m, &d), KILN_OK);
    assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, &ref, &d), KILN_OK);
    const char *names[] = {"b", "a"};
    const kiln_tensor *swapped[] = {in[1], in[0]};
    assert_int_equal(kiln_model_run_named(m, 2, names, swapped, &got, &d), KILN_OK);
    assert_true(test_tensor_close(got, ref, 0, 0, "named vs positional"));
    static const struct {
        int count;
        const char *names[3];
        const char *message;
    } bad[] = {
        {2, {"a", "c"}, "named.kiln: the model has no input named 'c'"},
        {3, {"a", "b", "a"}, "named.kiln: input 'a' is given twice"},
        {1, {"b"}, "named.kiln: input 'a' is not given"},
    };
    for (int k = 0; k < ARRAY_LEN(bad); k++) {
        const kiln_tensor *three[] = {in[0], in[1], in[0]};
        kiln_tensor *out = NULL;
        d = (kiln_diag){0};
        assert_int_equal(kiln_model_run_named(m, bad[k].count, bad[k].names, three, &out, &d), KILN_ERR_INVALID);
        assert_string_equal(d.message, bad[k].message);
        assert_null(out);
    }
    kiln_tensor_free(in[0]), kiln_tensor_free(in[1]), kiln_tensor_free(ref), kiln_tensor_free(got);
    kiln_model_destroy(m);
}

/* Integer Pow is exact and wraps on overflow like the interpreter; negative exponents truncate. */
static void test_int_pow(void **state) {
    (void)state;
    static const char *const types[] = {"i64", "i32", "u8"};
    static const kiln_dtype dtypes[] = {KILN_I64, KILN_I32, KILN_U8};
    for (int t = 0; t < ARRAY_LEN(types); t++) {
        char src[256];
        snprintf(src, sizeof src, "graph p {\n  input %%a: %s[7, 5]\n  input %%b: %s[5]\n  %%y = Pow(%%a, %%b)\n  output %%y\n}\n",
                 types[t], types[t]);
        const int64_t ad[] = {7, 5}, bd[] = {5};
        kiln_tensor *in[2], *ref = NULL, *got = NULL;
        kiln_diag d = {0};
        assert_int_equal(kiln_tensor_create(dtypes[t], 2, ad, &in[0], &d), KILN_OK);
        assert_int_equal(kiln_tensor_create(dtypes[t], 1, bd, &in[1], &d), KILN_OK);
        bool is_unsigned = dtypes[t] == KILN_U8;
        for (int64_t i = 0; i < 35; i++) { /* bases -60..60 but 0 (1/0 has no integer): big exponents overflow */
            int64_t v = (int64_t)uniform(121) - (is_unsigned ? 0 : 60);
            ir_tensor_set(in[0], i, (double)(v ? v : 1) * (is_unsigned ? 0.5 : 1));
        }
        static const double exps[] = {0, 1, 13, 40, -2};
        for (int64_t i = 0; i < 5; i++)
            ir_tensor_set(in[1], i, is_unsigned && exps[i] < 0 ? 3 : exps[i]);
        kiln_options jit = {.backend = KILN_BACKEND_JIT};
        kiln_model *mi, *mj;
        assert_int_equal(kiln_model_parse(src, strlen(src), "p.kiln", NULL, &mi, &d), KILN_OK);
        assert_int_equal(kiln_model_parse(src, strlen(src), "p.kiln", &jit, &mj, &d), KILN_OK);
        assert_int_equal(kiln_model_run(mi, (const kiln_tensor *const *)in, &ref, &d), KILN_OK);
        assert_int_equal(kiln_model_run(mj, (const kiln_tensor *const *)in, &got, &d), KILN_OK);
        assert_memory_equal(got->data, ref->data, kiln_tensor_bytes(ref));
        kiln_tensor_free(in[0]), kiln_tensor_free(in[1]), kiln_tensor_free(ref), kiln_tensor_free(got);
        kiln_model_destroy(mi), kiln_model_destroy(mj);
    }
}

/* Inputs that decide shapes are compiled in at the first run; later runs must repeat them. */
static void test_pinned_inputs(void **state) {
    (void)state;
    static const char src[] = "graph pin {\n  input %a: f32[2, 3]\n  input %axes: i64[1]\n"
                              "  %y = ReduceSum(%a, %axes) {keepdims = 0}\n  output %y\n}\n";
    const int64_t dims[] = {2, 3}, one = 1;
    kiln_tensor *a = random_tensor(2, dims), *axes, *ref = NULL, *got = NULL;
    kiln_options jit = {.backend = KILN_BACKEND_JIT};
    kiln_model *mi, *mj;
    kiln_diag d = {0};
    assert_int_equal(kiln_tensor_create(KILN_I64, 1, &one, &axes, &d), KILN_OK);
    ((int64_t *)axes->data)[0] = 1;
    const kiln_tensor *in[] = {a, axes};
    assert_int_equal(kiln_model_parse(src, sizeof src - 1, "pin.kiln", NULL, &mi, &d), KILN_OK);
    assert_int_equal(kiln_model_parse(src, sizeof src - 1, "pin.kiln", &jit, &mj, &d), KILN_OK);
    assert_int_equal(kiln_model_run(mi, in, &ref, &d), KILN_OK);
    for (int run = 0; run < 2; run++) {
        assert_int_equal(kiln_model_run(mj, in, &got, &d), KILN_OK);
        assert_int_equal(got->rank, 1);
        assert_int_equal(got->dims[0], 2);
        assert_true(test_tensor_close(got, ref, JIT_ATOL, JIT_RTOL, "pinned axes vs interpreter"));
        kiln_tensor_free(got);
    }
    ((int64_t *)axes->data)[0] = 0;
    got = NULL;
    assert_int_equal(kiln_model_run(mj, in, &got, &d), KILN_ERR_UNSUPPORTED);
    assert_non_null(strstr(d.message, "input 'axes' decides shapes"));
    assert_null(got);
    kiln_tensor_free(a), kiln_tensor_free(axes), kiln_tensor_free(ref);
    kiln_model_destroy(mi), kiln_model_destroy(mj);
}

/* The kernel of the node that makes value `name`. */
static const lir_kernel *kernel_making(const lir_module *m, const char *name) {
    for (int k = 0; k < m->kernel_count; k++) {
        const ir_node *n = m->kernels[k]->origin;
        if (n && n->output_count && !strcmp(n->outputs[0]->name, name))
            return m->kernels[k];
    }
    fail_msg("no kernel makes %s", name);
    return NULL;
}

/* Kernels that compile to the same code are compiled once and called under each name
 * (lir_kernel_same; ViT-B's 12 layers): the same op on other buffers of the same type is
 * the same kernel; another constant, its sign of zero, or another size is not. Each
 * kernel, shared or not, computes its own values. */
static void test_same_kernels(void **state) {
    (void)state;
    const char *src = "graph g {\n  input %a: f32[37]\n  input %b: f32[37]\n  input %c: f32[41]\n"
                      "  const %three: f32[] = [3]\n  const %three2: f32[] = [3]\n  const %five: f32[] = [5]\n"
                      "  const %zero: f32[] = [0]\n  const %minus_zero: f32[] = [-0]\n"
                      "  %y0 = Mul(%a, %three)\n  %y1 = Mul(%b, %three2)\n  %y2 = Mul(%a, %five)\n  %y3 = Mul(%c, %three)\n"
                      "  %y4 = Mul(%a, %zero)\n  %y5 = Mul(%b, %minus_zero)\n  output %y0, %y1, %y2, %y3, %y4, %y5\n}\n";
    kiln_options opts = {.backend = KILN_BACKEND_JIT};
    kiln_model *m;
    kiln_diag d = {0};
    if (kiln_model_parse(src, strlen(src), "same.kiln", &opts, &m, &d)) {
        print_error("%s\n%s", d.message, src);
        fail();
    }
    const lir_module *lm = m->lowered;
    const lir_kernel *k[6];
    for (int i = 0; i < 6; i++) {
        char name[8];
        snprintf(name, sizeof name, "y%d", i);
        k[i] = kernel_making(lm, name);
    }
    assert_true(lir_kernel_same(k[0], k[1]));
    assert_false(lir_kernel_same(k[0], k[2])); /* 3 and 5 */
    assert_false(lir_kernel_same(k[0], k[3])); /* 37 and 41 elements */
    assert_false(lir_kernel_same(k[4], k[5])); /* 0 and -0 */
    int64_t n37[1] = {37}, n41[1] = {41};
    kiln_tensor *in[3], *out[6];
    assert_int_equal(kiln_tensor_create(KILN_F32, 1, n37, &in[0], &d), KILN_OK);
    assert_int_equal(kiln_tensor_create(KILN_F32, 1, n37, &in[1], &d), KILN_OK);
    assert_int_equal(kiln_tensor_create(KILN_F32, 1, n41, &in[2], &d), KILN_OK);
    for (int i = 0; i < 41; i++) {
        if (i < 37)
            ((float *)in[0]->data)[i] = (float)i - 18.5f, ((float *)in[1]->data)[i] = 0.25f * (float)i - 4;
        ((float *)in[2]->data)[i] = 1.0f / (float)(i + 1);
    }
    assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)in, out, &d), KILN_OK);
    static const struct { int in; float k; } want[6] = {{0, 3}, {1, 3}, {0, 5}, {2, 3}, {0, 0}, {1, -0.0f}};
    for (int o = 0; o < 6; o++) {
        const float *x = in[want[o].in]->data, *y = out[o]->data;
        for (int64_t i = 0; i < kiln_tensor_count(out[o]); i++) {
            float w = x[i] * want[o].k;
            if (memcmp(&w, &y[i], sizeof w)) {
                print_error("y%d[%lld] = %g, expected %g\n", o, (long long)i, (double)y[i], (double)w);
                fail();
            }
        }
        kiln_tensor_free(out[o]);
    }
    for (int i = 0; i < 3; i++)
        kiln_tensor_free(in[i]);
    kiln_model_destroy(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_named),
        cmocka_unit_test(test_pinned_inputs),
        cmocka_unit_test(test_int_pow),
        cmocka_unit_test(test_parallel_equals_serial),
        cmocka_unit_test(test_vector_equals_scalar),
        cmocka_unit_test(test_packed_constants),
        cmocka_unit_test(test_views_inlined),
        cmocka_unit_test(test_fused_equals_unfused),
        cmocka_unit_test(test_fusion_outcomes),
        cmocka_unit_test(test_same_kernels),
        cmocka_unit_test(test_fusion_depth_limit),
        cmocka_unit_test(test_fusion_copies_limit),
        cmocka_unit_test(test_random_resize),
        cmocka_unit_test(test_random_select_train),
        cmocka_unit_test(test_random_recurrent),
        cmocka_unit_test(test_op_cases),
        cmocka_unit_test(test_random_elementwise),
        cmocka_unit_test(test_random_matmul),
        cmocka_unit_test(test_random_einsum),
        cmocka_unit_test(test_random_reductions_softmax_transpose),
        cmocka_unit_test(test_register_transposes),
        cmocka_unit_test(test_random_conv_pool),
        cmocka_unit_test(test_attention),
        cmocka_unit_test(test_concurrent_runs),
        cmocka_unit_test(test_compile_threads),
        cmocka_unit_test(test_softmax_nan),
    };
    return cmocka_run_group_tests_name("jit", tests, NULL, NULL);
}
