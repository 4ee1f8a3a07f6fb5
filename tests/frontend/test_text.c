/*
 * test_text.c — the .kiln text format: print -> parse -> print is the identity on the
 * bundled models and on graphs that use every corner of the syntax, and each kind of
 * malformed text is rejected with `file:line:col: message`.
 */
#include "../test_util.h"

#include "ir/print.h"
#include "ir/verify.h"

#include <stdlib.h>
#include <unistd.h>

static char *read_text(const char *path) {
    unsigned char *buf;
    size_t size;
    kiln_diag d = {0};
    assert_int_equal(kiln_rt_read_file(path, 1 << 26, &buf, &size, &d), KILN_OK);
    return (char *)buf;
}

/* Parses `text` as `file`, prints it, parses and prints again: the prints must match. */
static char *round_trip(const char *text, const char *file) {
    kiln_diag d = {0};
    ir_graph *g1, *g2;
    if (txt_parse(text, strlen(text), file, &g1, &d)) {
        print_error("%s\n", d.message);
        fail();
    }
    assert_int_equal(ir_verify(g1, NULL, NULL, &d), KILN_OK);
    char *p1 = ir_print_string(g1, NULL);
    assert_int_equal(txt_parse(p1, strlen(p1), file, &g2, &d), KILN_OK);
    char *p2 = ir_print_string(g2, NULL);
    assert_string_equal(p1, p2);
    free(p2);
    ir_graph_destroy(g1);
    ir_graph_destroy(g2);
    return p1;
}

static void test_bundled_models_round_trip(void **state) {
    (void)state;
    const char *models[] = {"../examples/models/mlp.kiln", "../examples/models/cnn.kiln"};
    for (int i = 0; i < ARRAY_LEN(models); i++) {
        char *text = read_text(models[i]);
        free(round_trip(text, models[i]));
        free(text);
    }
}

static const char syntax_corners[] =
    "# every corner of the syntax\n"
    "graph \"my graph\" {\n"
    "  input %\"input:0\": f32[batch, 3]\n"
    "  input %flags: bool[batch, ?]\n"
    "  const %big: i64[3] = [9223372036854775807, -9223372036854775807, 0]\n"
    "  const %odd: f32[4] = [nan, inf, -inf, 1.00000012]\n"
    "  param %w.0: f64[3] = [0.1, 1e-300, -2.5e+300]\n"
    "  const %scalar: u8[] = [255]\n"
    "  const %empty: i8[0, 2] = []\n"
    "  \"layer/1\": %\"a b\": f32[batch, 3] = Add(%\"input:0\", %\"input:0\")\n"
    "  %p, %q = Split(%\"a b\", _) {axis = 1, split = [1, 2]}\n"
    "  %c = Constant() {value = f32[2] [0.5, -0.25]}\n"
    "  %k = Constant() {value_floats = [1.0, 2.5, 1e-07]}\n"
    "  %s = Cast(%p) {to = \"f64\"}\n"
    "  %e = Gelu(%q) {approximate = \"tan\\\"h\\\\\\n\\t\\x01\"}\n"
    "  output %s, %c, %k, %e\n"
    "}\n";

static void test_syntax_corners_round_trip(void **state) {
    (void)state;
    char *printed = round_trip(syntax_corners, "corners.kiln");
    /* spot checks that the printer kept what matters */
    assert_non_null(strstr(printed, "graph \"my graph\" {"));
    assert_non_null(strstr(printed, "input %\"input:0\": f32[batch, 3]"));
    assert_non_null(strstr(printed, "bool[batch, ?]"));
    assert_non_null(strstr(printed, "[9223372036854775807, -9223372036854775807, 0]"));
    assert_non_null(strstr(printed, "[nan, inf, -inf, 1.0000001]"));
    assert_non_null(strstr(printed, "\"layer/1\": %\"a b\": f32[batch, 3] = Add("));
    assert_non_null(strstr(printed, "Split(%\"a b\", _) {axis = 1, split = [1, 2]}"));
    assert_non_null(strstr(printed, "value_floats = [1.0, 2.5, 1e-07]"));
    free(printed);
}

typedef struct bad_text {
    const char *text;
    const char *message; /* the expected message, from the file name on */
} bad_text;

static const bad_text bad_texts[] = {
    {"graph g {\n  input %x: f32[2]\n  %y = Relux(%x)\n  output %y\n}\n", "bad.kiln:3:8: unknown op 'Relux'"},
    {"graph g {\n  input %x: f32[2]\n  %y = Relu(%x %x)\n  output %y\n}\n", "bad.kiln:3:16: expected ',', found a value"},
    {"graph g {\n  input %x: f32[2]\n  %y = Add(%x)\n  output %y\n}\n", "bad.kiln:3:8: Add expects 2..2 inputs, got 1"},
    {"graph g {\n  input %x: f32[2]\n  %y = Relu(%z)\n  output %y\n}\n", "bad.kiln:3:13: unknown value '%z'"},
    {"graph g {\n  input %x: f32[2]\n  %x = Relu(%x)\n  output %x\n}\n", "bad.kiln:3:3: value 'x' is defined twice (first at line 2)"},
    {"graph g {\n  input %x: f33[2]\n  output %x\n}\n", "bad.kiln:2:13: unknown dtype 'f33'"},
    {"graph g {\n  input %x: f32[2, -1]\n  output %x\n}\n", "bad.kiln:2:20: expected a dimension (a size >= 0 or a symbolic name)"},
    {"graph g {\n  input %x: f32[N, M]\n  output %x\n}\n", "bad.kiln:2:20: only one symbolic dimension is supported: 'M' differs from 'N'"},
    {"graph g {\n  const %c: f32[3] = [1, 2]\n  output %c\n}\n", "bad.kiln:2:22: expected 3 values for f32 data, got 2"},
    {"graph g {\n  input %x: f32[2]\n  %y = Relu(%x) {alpha = 1.0}\n  output %y\n}\n", "bad.kiln:3:18: Relu has no attribute 'alpha'"},
    {"graph g {\n  input %x: f32[2]\n  %y = Softmax(%x) {axis = 1.5}\n  output %y\n}\n", "bad.kiln:3:28: attribute 'axis': expected an integer"},
    {"graph g {\n  input %x: f32[2]\n  %y = Softmax(%x) {axis = 0, axis = 0}\n  output %y\n}\n", "bad.kiln:3:31: attribute 'axis' given twice"},
    {"graph g {\n  input %x: f32[2]\n  %y = Relu(%x)\n", "bad.kiln:4:1: expected '}' before the end of file"},
    {"graph g {\n  input %x: f32[2]\n  %y = Relu(%x)\n  output %y\n} extra", "bad.kiln:5:3: unexpected text after the graph"},
    {"graph g {\n  input %x: f32[2] $\n}\n", "bad.kiln:2:20: unexpected character"},
    {"graph g {\n  const %s: f32[1] = [\"x\"]\n}\n", "bad.kiln:2:23: expected a number, found a string"},
    {"graph g {\n  input %x: f32[2]\n  output %\"unterminated\n}\n", "bad.kiln:3:10: unterminated string"},
    {"graph g {\n  const %w: f32[2] = npy(\"../secret.npy\")\n}\n", "bad.kiln:2:26: file '../secret.npy' is outside the model's folder"},
    {"graph g {\n  const %w: f32[2] = npy(\"/etc/passwd\")\n}\n", "bad.kiln:2:26: file '/etc/passwd' is outside the model's folder"},
    {"graph g {\n  const %w: f32[2] = npy(\"missing.npy\")\n}\n", "bad.kiln:2:26: cannot open './missing.npy'"},
    {"graph g {\n  input %x: f32[2]\n  %y = Relu(%x)\n  output %y, %y\n}\n", "bad.kiln:4:14: value 'y' is listed as an output twice"},
    {"graph g {\n  const %c: i64[1] = [99999999999999999999]\n}\n", "bad.kiln:2:23: number out of range"},
    {"garph g {}\n", "bad.kiln:1:1: expected 'graph'"},
};

static void test_bad_texts(void **state) {
    (void)state;
    for (int i = 0; i < ARRAY_LEN(bad_texts); i++) {
        kiln_diag d = {0};
        ir_graph *g = NULL;
        kiln_status st = txt_parse(bad_texts[i].text, strlen(bad_texts[i].text), "bad.kiln", &g, &d);
        if (st == KILN_OK || strcmp(d.message, bad_texts[i].message)) {
            print_error("case %d: want \"%s\"\n         got \"%s\"\n", i, bad_texts[i].message,
                        st ? d.message : "success");
            fail();
        }
        assert_null(g);
    }
}

/* A weight file reached through a symlink that leads out of the model's folder. */
static void test_symlink_escape(void **state) {
    (void)state;
    char dir[] = "/tmp/kiln_text_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char link[256], model[256];
    snprintf(link, sizeof link, "%s/w.npy", dir);
    snprintf(model, sizeof model, "%s/m.kiln", dir);
    assert_int_equal(symlink("/etc/hostname", link), 0);
    const char *text = "graph g {\n  const %w: f32[2] = npy(\"w.npy\")\n  output %w\n}\n";
    kiln_diag d = {0};
    ir_graph *g = NULL;
    assert_int_not_equal(txt_parse(text, strlen(text), model, &g, &d), KILN_OK);
    assert_non_null(strstr(d.message, "file 'w.npy' leads outside the model's folder"));
    unlink(link);
    rmdir(dir);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bundled_models_round_trip),
        cmocka_unit_test(test_syntax_corners_round_trip),
        cmocka_unit_test(test_bad_texts),
        cmocka_unit_test(test_symlink_escape),
    };
    return cmocka_run_group_tests_name("text", tests, NULL, NULL);
}
