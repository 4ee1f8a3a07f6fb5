/*
 * test_onnx.c — the ONNX importer on small hand-made models (tests/bad/make_corpus.py
 * wrote them; the broken ones are test_bad_corpus.c's): the well-formed neighbours
 * (external data inside the folder, the 2-D coercion of Softmax before opset 13,
 * TensorProto inputs) work, and nesting and width limits hold.
 */
#include "../test_util.h"

#include "driver/model.h"
#include "frontend/onnx.h"

#include <stdlib.h>

#define DIR "bad/onnx/"

/* Runs a one-input, one-output model on `input` and compares with `want`. */
static void check_run(const char *file, const char *input, const char *want_text) {
    kiln_diag d = {0};
    kiln_model *m;
    if (kiln_model_load(file, NULL, &m, &d)) {
        print_error("%s\n", d.message);
        fail();
    }
    kiln_tensor *x = test_literal(input), *y = NULL, *want = test_literal(want_text);
    assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)&x, &y, &d), KILN_OK);
    assert_true(test_tensor_close(y, want, TEST_ATOL, TEST_RTOL, file));
    kiln_tensor_free(x), kiln_tensor_free(y), kiln_tensor_free(want);
    kiln_model_destroy(m);
}

static void test_external_data_inside_folder(void **state) {
    (void)state; /* w = [1.5, -2] at offset 8 of weights.bin */
    check_run(DIR "external_ok.onnx", "f32[2] [1, 1]", "f32[2] [2.5, -1]");
}

static void test_softmax_before_opset13(void **state) {
    (void)state; /* axis 1 of [2, 2, 2]: each batch's 4 values form one distribution */
    check_run(DIR "softmax_opset11.onnx", "f32[2, 2, 2] [1, 2, 3, 4, 5, 6, 7, 8]",
              "f32[2, 2, 2] [0.032058604, 0.087144319, 0.23688282, 0.64391426, "
              "0.032058604, 0.087144319, 0.23688282, 0.64391426]");
}

static void test_index_error_at_run_time(void **state) {
    (void)state;
    kiln_diag d = {0};
    kiln_model *m;
    assert_int_equal(kiln_model_load(DIR "gather_out_of_range.onnx", NULL, &m, &d), KILN_OK);
    kiln_tensor *x = test_literal("f32[3] [1, 2, 3]"), *y = NULL;
    assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)&x, &y, &d), KILN_ERR_INVALID);
    assert_string_equal(d.message, DIR "gather_out_of_range.onnx: node 'gather' (Gather): index 5 is out of range [-3, 3)");
    kiln_tensor_free(x);
    kiln_model_destroy(m);
}

static void test_tensor_files(void **state) {
    (void)state;
    kiln_tensor *t;
    kiln_diag d = {0};
    assert_int_equal(onnx_read_tensor_file("models/torch/mlp_opset13/test_data_set_0/input_0.pb", &t, &d), KILN_OK);
    assert_int_equal(t->dtype, KILN_F32);
    assert_int_equal(t->rank, 4);
    assert_int_equal(t->dims[0], 3);
    kiln_tensor_free(t);
    d = (kiln_diag){0};
    assert_int_equal(onnx_read_tensor_file(DIR "truncated.onnx", &t, &d), KILN_ERR_INVALID);
    assert_string_equal(d.message, DIR "truncated.onnx: not a valid ONNX TensorProto (TensorProto field 2 (data_type): "
                                       "wire type 2 where the schema says 0)");
}

/* Appends a protobuf length-delimited field (tag, length, bytes) to buf. */
static size_t field(unsigned char *buf, size_t at, unsigned number, const unsigned char *bytes, size_t len) {
    buf[at++] = (unsigned char)(number << 3 | 2);
    for (size_t v = len; ; v >>= 7) {
        buf[at++] = (unsigned char)((v & 0x7f) | (v >= 0x80 ? 0x80 : 0));
        if (v < 0x80)
            break;
    }
    memcpy(buf + at, bytes, len);
    return at + len;
}

/* protobuf-c recurses once per nested message with no limit: 300 levels of subgraphs
 * (Graph -> Node -> Attribute -> Graph ...) are refused before unpacking, not run into
 * the stack. */
static void test_nesting_refused(void **state) {
    (void)state;
    size_t cap = 1 << 16, len = 0;
    unsigned char *a = calloc(cap, 1), *b = calloc(cap, 1);
    for (int level = 0; level < 100; level++) { /* AttributeProto.g (6) in NodeProto.attribute (5) in GraphProto.node (1) */
        len = field(b, 0, 6, a, len), memcpy(a, b, len);
        len = field(b, 0, 5, a, len), memcpy(a, b, len);
        len = field(b, 0, 1, a, len), memcpy(a, b, len);
    }
    len = field(b, 0, 7, a, len); /* ModelProto.graph */
    ir_graph *g;
    kiln_diag d = {0};
    assert_int_equal(onnx_import_buffer(b, len, "deep.onnx", &g, &d), KILN_ERR_INVALID);
    assert_string_equal(d.message, "deep.onnx: not a valid ONNX model (GraphProto: messages nested deeper than 64 levels)");
    free(a), free(b);
}

/* Two bytes per empty node ask protobuf-c for a pointer and a NodeProto each: 1.5 million of
 * them (3 MB of input, over 150 MB unpacked) pass the cap of 16 x the input + 64 MiB, and are
 * refused with its message, not allocated. */
static void test_amplification_capped(void **state) {
    (void)state;
    size_t nodes = 1500000, len = 0;
    unsigned char *graph = malloc(nodes * 2), *model = malloc(nodes * 2 + 16);
    for (size_t i = 0; i < nodes; i++)
        graph[2 * i] = 1 << 3 | 2, graph[2 * i + 1] = 0; /* GraphProto.node = {} */
    len = field(model, 0, 7, graph, nodes * 2);
    ir_graph *g;
    kiln_diag d = {0};
    assert_int_equal(onnx_import_buffer(model, len, "wide.onnx", &g, &d), KILN_ERR_INVALID);
    assert_non_null(strstr(d.message, "unpacking it would take more than"));
    free(graph), free(model);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_external_data_inside_folder),
        cmocka_unit_test(test_softmax_before_opset13),
        cmocka_unit_test(test_index_error_at_run_time),
        cmocka_unit_test(test_tensor_files),
        cmocka_unit_test(test_nesting_refused),
        cmocka_unit_test(test_amplification_capped),
    };
    return cmocka_run_group_tests_name("onnx", tests, NULL, NULL);
}
