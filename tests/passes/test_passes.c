/*
 * test_passes.c — the graph passes: shape inference with a symbolic batch dimension,
 * constant folding of the Shape -> Gather -> Concat -> Reshape chains exporters emit,
 * the refusal to fold small inputs into large constants, dead-code elimination, and a
 * declared type that disagrees with the inferred one.
 */
#include "../test_util.h"

#include "backend/interp/interp.h"
#include "driver/model.h"
#include "ir/print.h"
#include "passes/pass.h"

#include <stdlib.h>

static ir_graph *parse(const char *text) {
    ir_graph *g;
    kiln_diag d = {0};
    if (txt_parse(text, strlen(text), "p.kiln", &g, &d)) {
        print_error("%s\n", d.message);
        fail();
    }
    return g;
}

static kiln_status run(ir_graph *g, const char *stop_after, kiln_diag *d) {
    pass_ctx cx = {.d = d, .eval = interp_eval_node};
    return pass_run_pipeline(g, &cx, stop_after, true);
}

static void test_symbolic_batch(void **state) {
    (void)state;
    ir_graph *g = parse("graph g {\n"
                        "  input %x: f32[N, 1, 4, 4]\n"
                        "  const %w: f32[2, 1, 3, 3] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]\n"
                        "  const %s: i64[2] = [-1, 8]\n"
                        "  %c = Conv(%x, %w)\n"
                        "  %r = Reshape(%c, %s)\n"
                        "  %t = Transpose(%r)\n"
                        "  %m = ReduceMean(%t) {axes = [0], keepdims = 0}\n"
                        "  output %m\n}\n");
    kiln_diag d = {0};
    assert_int_equal(run(g, "shape", &d), KILN_OK);
    char *text = ir_print_string(g, NULL);
    assert_non_null(strstr(text, "%c: f32[N, 2, 2, 2] = Conv"));
    assert_non_null(strstr(text, "%r: f32[N, 8] = Reshape"));
    assert_non_null(strstr(text, "%t: f32[8, N] = Transpose"));
    assert_non_null(strstr(text, "%m: f32[N] = ReduceMean"));
    free(text);
    ir_graph_destroy(g);
}

static void test_fold_shape_chain(void **state) {
    (void)state;
    ir_graph *g = parse("graph g {\n"
                        "  input %x: f32[2, 3, 4]\n"
                        "  const %zero: i64[] = [0]\n"
                        "  const %minus1: i64[1] = [-1]\n"
                        "  %shape = Shape(%x)\n"
                        "  %batch = Gather(%shape, %zero)\n"
                        "  %batch1 = Unsqueeze(%batch) {axes = [0]}\n"
                        "  %target = Concat(%batch1, %minus1) {axis = 0}\n"
                        "  %y = Reshape(%x, %target)\n"
                        "  output %y\n}\n");
    kiln_diag d = {0};
    assert_int_equal(run(g, NULL, &d), KILN_OK);
    assert_int_equal(g->node_count, 1);
    assert_int_equal(g->nodes[0]->op, IR_OP_RESHAPE);
    const kiln_tensor *t = &g->outputs[0]->type;
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->dims[0], 2);
    assert_int_equal(t->dims[1], 12);
    const kiln_tensor *target = g->nodes[0]->inputs[1]->init;
    assert_non_null(target);
    assert_int_equal(ir_tensor_get_int(target, 0), 2);
    assert_int_equal(ir_tensor_get_int(target, 1), -1);
    /* the folded chain's initializers that nothing reads any more are gone */
    assert_int_equal(g->init_count, 1);
    ir_graph_destroy(g);
}

/* A value whose rank only folding reveals gets its whole shape, not zeros. */
static void test_rank_revealed_by_folding(void **state) {
    (void)state;
    ir_graph *g = parse("graph g {\n"
                        "  input %t: i64[3]\n"
                        "  %one = Constant() {value = i64[1] [1]}\n"
                        "  %u = Unsqueeze(%t, %one)\n"
                        "  %v = Neg(%u)\n"
                        "  output %v\n}\n");
    kiln_diag d = {0};
    assert_int_equal(run(g, "shape", &d), KILN_OK);
    assert_int_equal(g->outputs[0]->type.rank, -1);
    assert_int_equal(run(g, NULL, &d), KILN_OK);
    const kiln_tensor *t = &g->outputs[0]->type;
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->dims[0], 3);
    assert_int_equal(t->dims[1], 1);
    ir_graph_destroy(g);
}

static void test_no_blow_up_folding(void **state) {
    (void)state;
    ir_graph *g = parse("graph g {\n"
                        "  input %x: f32[1000, 1000]\n"
                        "  const %s: i64[2] = [1000, 1000]\n"
                        "  %big = ConstantOfShape(%s) {value = f32[1] [1]}\n"
                        "  %y = Add(%x, %big)\n"
                        "  output %y\n}\n");
    kiln_diag d = {0};
    assert_int_equal(run(g, NULL, &d), KILN_OK);
    assert_int_equal(g->node_count, 2); /* 4 MB of ones stay a ConstantOfShape */
    assert_int_equal(g->outputs[0]->type.dims[1], 1000);
    ir_graph_destroy(g);
}

static void test_dce(void **state) {
    (void)state;
    ir_graph *g = parse("graph g {\n"
                        "  input %x: f32[2]\n"
                        "  input %unused: f32[2]\n"
                        "  param %w: f32[2] = [1, 2]\n"
                        "  param %dead_w: f32[2] = [1, 2]\n"
                        "  %a = Mul(%x, %w)\n"
                        "  %dead = Add(%x, %dead_w)\n"
                        "  %dead2 = Relu(%dead)\n"
                        "  output %a\n}\n");
    kiln_diag d = {0};
    assert_int_equal(run(g, NULL, &d), KILN_OK);
    assert_int_equal(g->node_count, 1);
    assert_int_equal(g->init_count, 1);
    assert_string_equal(g->inits[0]->name, "w");
    assert_int_equal(g->input_count, 2); /* inputs are the interface: kept */
    ir_graph_destroy(g);
}

static void test_declared_type_checked(void **state) {
    (void)state;
    ir_graph *g = parse("graph g {\n"
                        "  input %x: f32[2, 3]\n"
                        "  %y: f32[3, 2] = Relu(%x)\n"
                        "  output %y\n}\n");
    kiln_diag d = {0};
    assert_int_equal(run(g, NULL, &d), KILN_ERR_SHAPE);
    assert_string_equal(d.message, "p.kiln:3:3: node 'y' (Relu): output 'y' is declared f32[3, 2] but "
                                   "the inputs give f32[2, 3]");
    ir_graph_destroy(g);
}

/* kiln_options.batch specializes N: every shape becomes static, and inputs of another
 * batch size are refused. */
static void test_batch_specialization(void **state) {
    (void)state;
    const char *text = "graph g {\n  input %x: f32[N, 3]\n  %y = ReduceSum(%x) {axes = [1]}\n  output %y\n}\n";
    kiln_options opts = {.batch = 2};
    kiln_model *m;
    kiln_diag d = {0};
    assert_int_equal(kiln_model_parse(text, strlen(text), "b.kiln", &opts, &m, &d), KILN_OK);
    const kiln_tensor *t = &m->graph->outputs[0]->type;
    assert_int_equal(t->rank, 2);
    assert_int_equal(t->dims[0], 2);
    kiln_tensor *x = test_literal("f32[3, 3] [1, 2, 3, 4, 5, 6, 7, 8, 9]"), *y = NULL;
    assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)&x, &y, &d), KILN_ERR_SHAPE);
    assert_string_equal(d.message, "b.kiln: input 'x': expected f32[2, 3], got f32[3, 3]");
    kiln_tensor_free(x);
    kiln_model_destroy(m);
    opts.batch = -1;
    d = (kiln_diag){0};
    assert_int_equal(kiln_model_parse(text, strlen(text), "b.kiln", &opts, &m, &d), KILN_ERR_INVALID);
    assert_string_equal(d.message, "b.kiln: batch size -1 is negative");
}

static void test_pass_names(void **state) {
    (void)state;
    assert_non_null(pass_lookup("shape"));
    assert_non_null(pass_lookup("fold"));
    assert_non_null(pass_lookup("dce"));
    assert_null(pass_lookup("fuse"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_symbolic_batch),   cmocka_unit_test(test_fold_shape_chain),
        cmocka_unit_test(test_rank_revealed_by_folding),
        cmocka_unit_test(test_no_blow_up_folding), cmocka_unit_test(test_dce),
        cmocka_unit_test(test_declared_type_checked), cmocka_unit_test(test_batch_specialization),
        cmocka_unit_test(test_pass_names),
    };
    return cmocka_run_group_tests_name("passes", tests, NULL, NULL);
}
