/*
 * test_verify.c — the verifier reports every broken invariant, each naming its node or
 * value. Graphs are built through the graph API, since the parser refuses most of these
 * shapes before the verifier sees them.
 */
#include "../test_util.h"

#include "ir/verify.h"

#include <stdlib.h>

typedef struct problems {
    int count;
    char text[4096];
} problems;

static void collect(void *ctx, const char *message) {
    problems *p = ctx;
    p->count++;
    strncat(p->text, message, sizeof p->text - strlen(p->text) - 2);
    strcat(p->text, "\n");
}

static ir_value *new_value(ir_graph *g, const char *name, ir_value_kind kind, kiln_dtype dt,
                           int rank, const int64_t *dims) {
    ir_value *v;
    kiln_diag d = {0};
    assert_int_equal(ir_graph_new_value(g, name, kind, (kiln_loc){.file = "v.kiln"}, &v, &d), KILN_OK);
    v->type.dtype = dt;
    v->type.rank = rank;
    if (rank > 0)
        memcpy(v->type.dims, dims, sizeof(int64_t) * (size_t)rank);
    return v;
}

static ir_node *new_node(ir_graph *g, ir_op op, const char *name, ir_value **in, int nin,
                         ir_value **out, int nout) {
    ir_node *n;
    kiln_diag d = {0};
    assert_int_equal(ir_graph_add_node(g, op, name, in, nin, out, nout, (kiln_loc){.file = "v.kiln"}, &n, &d), KILN_OK);
    return n;
}

static void test_sound_graph(void **state) {
    (void)state;
    ir_graph *g;
    kiln_diag d = {0};
    assert_int_equal(ir_graph_create("ok", "v.kiln", &g, &d), KILN_OK);
    ir_value *x = new_value(g, "x", IR_VAL_INPUT, KILN_F32, 1, (int64_t[]){4});
    ir_value *y = new_value(g, "y", IR_VAL_NODE, 0, -1, NULL);
    new_node(g, IR_OP_RELU, "relu", &x, 1, &y, 1);
    assert_int_equal(ir_graph_add_output(g, y, &d), KILN_OK);
    problems p = {0};
    assert_int_equal(ir_verify(g, collect, &p, &d), KILN_OK);
    assert_int_equal(p.count, 0);
    ir_graph_destroy(g);
}

static void test_every_problem_reported(void **state) {
    (void)state;
    ir_graph *g;
    kiln_diag d = {0};
    assert_int_equal(ir_graph_create("bad", "v.kiln", &g, &d), KILN_OK);
    ir_value *x = new_value(g, "x", IR_VAL_INPUT, KILN_F32, 1, (int64_t[]){4});
    ir_value *untyped = new_value(g, "untyped", IR_VAL_INPUT, KILN_DTYPE_INVALID, -1, NULL);
    ir_value *w = new_value(g, "w", IR_VAL_CONST, KILN_F32, 1, (int64_t[]){2}); /* no data */
    ir_value *a = new_value(g, "a", IR_VAL_NODE, 0, -1, NULL);
    ir_value *b = new_value(g, "b", IR_VAL_NODE, 0, -1, NULL);
    ir_value *c = new_value(g, "c", IR_VAL_NODE, 0, -1, NULL);
    ir_value *e = new_value(g, "e", IR_VAL_NODE, 0, -1, NULL);
    /* "first" reads b, which "second" produces later: a use before definition */
    ir_value *in1[2] = {x, b};
    new_node(g, IR_OP_ADD, "first", in1, 2, &a, 1);
    new_node(g, IR_OP_RELU, "second", &x, 1, &b, 1);
    /* wrong arity, an unknown attribute, a wrong attribute kind */
    ir_value *in3[3] = {x, x, x};
    ir_node *n3 = new_node(g, IR_OP_SUB, "third", in3, 3, &c, 1);
    ir_attr *at = ir_node_add_attr(g, n3, "alpha", IR_ATTR_FLOAT);
    at->f = 1;
    ir_node *n4 = new_node(g, IR_OP_SOFTMAX, "fourth", &x, 1, &e, 1);
    at = ir_node_add_attr(g, n4, "axis", IR_ATTR_STRING);
    at->s = "last";
    /* a Concat without its required axis */
    ir_value *f = new_value(g, "f", IR_VAL_NODE, 0, -1, NULL);
    new_node(g, IR_OP_CONCAT, "fifth", &x, 1, &f, 1);
    /* an output nobody produces */
    ir_value *ghost = new_value(g, "ghost", IR_VAL_NODE, 0, -1, NULL);
    assert_int_equal(ir_graph_add_output(g, ghost, &d), KILN_OK);
    (void)untyped, (void)w;

    problems p = {0};
    assert_int_not_equal(ir_verify(g, collect, &p, &d), KILN_OK);
    const char *expected[] = {
        "v.kiln: input 'untyped' needs a dtype and a shape",
        "v.kiln: initializer 'w' has no data",
        "v.kiln: node 'first' (Add): input 'b' is used before it is produced (cycle or order)",
        "v.kiln: node 'third' (Sub): expects 2..2 inputs, got 3",
        "v.kiln: node 'third' (Sub): unknown attribute 'alpha'",
        "v.kiln: node 'fourth' (Softmax): attribute 'axis': expected int, got string",
        "v.kiln: node 'fifth' (Concat): missing required attribute 'axis'",
        "v.kiln: output 'ghost' is not produced by any node",
    };
    for (int i = 0; i < ARRAY_LEN(expected); i++)
        if (!strstr(p.text, expected[i])) {
            print_error("missing problem \"%s\" in:\n%s", expected[i], p.text);
            fail();
        }
    assert_int_equal(p.count, ARRAY_LEN(expected));
    /* the diag holds the first problem */
    assert_string_equal(d.message, "v.kiln: input 'untyped' needs a dtype and a shape");
    ir_graph_destroy(g);
}

static void test_duplicate_names_refused(void **state) {
    (void)state;
    ir_graph *g;
    kiln_diag d = {0};
    assert_int_equal(ir_graph_create("dup", NULL, &g, &d), KILN_OK);
    new_value(g, "x", IR_VAL_INPUT, KILN_F32, 0, NULL);
    ir_value *v;
    assert_int_equal(ir_graph_new_value(g, "x", IR_VAL_NODE, LOC_NONE, &v, &d), KILN_ERR_INVALID);
    assert_string_equal(d.message, "value 'x' is defined twice");
    assert_string_equal(ir_graph_fresh_name(g, "x"), "x_1");
    assert_string_equal(ir_graph_fresh_name(g, "y"), "y");
    ir_graph_destroy(g);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sound_graph),
        cmocka_unit_test(test_every_problem_reported),
        cmocka_unit_test(test_duplicate_names_refused),
    };
    return cmocka_run_group_tests_name("verify", tests, NULL, NULL);
}
