/*
 * test_ops.c — every op in ir/ops.def on hand-checked small cases and edge cases
 * (rank-0 and size-1 broadcasting, negative axes, empty tensors), through the whole
 * pipeline: parse, verify, shape inference, constant folding, reference interpreter.
 *
 * Each case runs twice: with its inputs as graph inputs (the interpreter computes the
 * result at run time; static shape inference must agree with it wherever it claims to
 * know a dim) and with its inputs as constants (constant folding computes it at compile
 * time). A coverage test fails if an op in the table has no case. Expected values are
 * hand-derived, or for transcendental functions computed independently with numpy in
 * float64 (8 significant digits); tolerance: TEST_ATOL + TEST_RTOL * |want|.
 */
#include "../test_util.h"

#include "driver/model.h"
#include "ir/print.h"

#include <stdlib.h>

#include "op_cases.h"

static void run_case(const op_case *c, int mode) {
    char *src = case_source(c, mode);
    kiln_diag d = {0};
    kiln_model *m = NULL;
    kiln_tensor *in[6] = {0}, *out[3] = {0};
    kiln_status st = kiln_model_parse(src, strlen(src), "case.kiln", NULL, &m, &d);
    int nin = 0;
    if (!st && mode == MODE_INPUTS)
        for (; nin < ARRAY_LEN(c->inputs) && c->inputs[nin]; nin++)
            in[nin] = test_literal(strchr(c->inputs[nin], ':') + 2);
    if (!st)
        st = kiln_model_run(m, (const kiln_tensor *const *)in, out, &d);
    if (c->error) {
        if (st == KILN_OK || !strstr(d.message, c->error)) {
            print_error("%s (%s): want an error containing \"%s\", got: %s\n", c->name,
                        mode ? "consts" : "inputs", c->error, st ? d.message : "success");
            fail();
        }
    } else {
        if (st) {
            print_error("%s (%s): %s\nsource:\n%s", c->name, mode ? "consts" : "inputs", d.message, src);
            fail();
        }
        for (int j = 0; j < ARRAY_LEN(c->outputs) && c->outputs[j]; j++) {
            kiln_tensor *want = test_literal(strchr(c->outputs[j], ':') + 2);
            char what[128];
            snprintf(what, sizeof what, "%s (%s) output %d", c->name, mode ? "consts" : "inputs", j);
            assert_true(test_tensor_close(out[j], want, TEST_ATOL, TEST_RTOL, what));
            /* static inference must agree with the computed shape wherever it claims to know */
            const kiln_tensor *inferred = &m->graph->outputs[j]->type;
            assert_int_equal(inferred->dtype, want->dtype);
            if (inferred->rank >= 0) {
                assert_int_equal(inferred->rank, want->rank);
                for (int k = 0; k < want->rank; k++)
                    if (inferred->dims[k] >= 0)
                        assert_int_equal(inferred->dims[k], want->dims[k]);
            }
            kiln_tensor_free(want);
        }
    }
    for (int i = 0; i < nin; i++)
        kiln_tensor_free(in[i]);
    for (int j = 0; j < ARRAY_LEN(out); j++)
        kiln_tensor_free(out[j]);
    kiln_model_destroy(m);
    free(src);
}

/* print -> parse -> print is the identity on the case's graph. */
static void check_round_trip(const op_case *c, int mode) {
    char *src = case_source(c, mode);
    kiln_diag d = {0};
    ir_graph *g1, *g2;
    assert_int_equal(txt_parse(src, strlen(src), "case.kiln", &g1, &d), KILN_OK);
    char *p1 = ir_print_string(g1, NULL);
    assert_int_equal(txt_parse(p1, strlen(p1), "case.kiln", &g2, &d), KILN_OK);
    char *p2 = ir_print_string(g2, NULL);
    assert_string_equal(p1, p2);
    free(p1), free(p2), free(src);
    ir_graph_destroy(g1), ir_graph_destroy(g2);
}

static void test_case(void **state) {
    const op_case *c = *state;
    run_case(c, MODE_INPUTS);
    run_case(c, MODE_CONSTS);
    check_round_trip(c, MODE_INPUTS);
    check_round_trip(c, MODE_CONSTS);
}

/* Every op in ir/ops.def has at least one successful case. */
static void test_every_op_has_a_case(void **state) {
    (void)state;
    bool covered[IR_OP_COUNT] = {0};
    for (int i = 0; i < ARRAY_LEN(cases); i++) {
        if (cases[i].error)
            continue;
        char *src = case_source(&cases[i], MODE_INPUTS);
        kiln_diag d = {0};
        ir_graph *g;
        assert_int_equal(txt_parse(src, strlen(src), "case.kiln", &g, &d), KILN_OK);
        for (int n = 0; n < g->node_count; n++)
            covered[g->nodes[n]->op] = true;
        ir_graph_destroy(g);
        free(src);
    }
    int missing = 0;
    for (int op = 0; op < IR_OP_COUNT; op++)
        if (!covered[op]) {
            print_error("op %s has no test case\n", ir_op_table[op].name);
            missing++;
        }
    assert_int_equal(missing, 0);
}

int main(void) {
    int n = ARRAY_LEN(cases);
    struct CMUnitTest *tests = calloc((size_t)n + 1, sizeof *tests);
    for (int i = 0; i < n; i++)
        tests[i] = (struct CMUnitTest){cases[i].name, test_case, NULL, NULL, (void *)&cases[i]};
    tests[n] = (struct CMUnitTest){"every_op_has_a_case", test_every_op_has_a_case, NULL, NULL, NULL};
    int rc = _cmocka_run_group_tests("ops", tests, (size_t)n + 1, NULL, NULL);
    free(tests);
    return rc;
}
