/*
 * test_bad_corpus.c — the malformed-input corpus (tests/bad): every case in
 * tests/bad/expected.txt is rejected with exactly its message, under a fixed memory cap
 * (1 GiB, so messages that name the cap are the same on every machine), and every
 * model, array and archive in the corpus folders is listed there (a case cannot be added
 * without its message). Also the one case a repository cannot hold: external data that
 * is a hard link to a file outside the model's folder, made here at run time.
 *
 * expected.txt, one case per line, relative to tests/bad:
 *   ok   FILE                      loads (a well-formed neighbour of the broken ones)
 *   load FILE | MESSAGE            kiln_model_load fails with MESSAGE
 *   read FILE | MESSAGE            reading the .npy / .npz (member "x") / .pb tensor fails
 *   run  MODEL NAME=FILE... | MESSAGE     loads, reads the inputs, runs on the interpreter
 *   jit  MODEL NAME=FILE... | MESSAGE     the same with the JIT
 * Set KILN_CORPUS_PRINT=1 to print each case with the message kiln gives now (to draft
 * a new line; the message is then checked by reading it, not copied blindly).
 */
#include "../test_util.h"

#include "driver/model.h"
#include "frontend/onnx.h"

#include <dirent.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

enum { MAX_CASES = 1024, MAX_INPUTS = 8 };

typedef struct corpus_case {
    char kind[8];
    char *file;
    int input_count;
    char *input_names[MAX_INPUTS], *input_files[MAX_INPUTS];
    char *message; /* NULL for "ok" */
    int line;
} corpus_case;

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n'))
        s[--n] = 0;
    return s;
}

/* Parses expected.txt into cases (strings point into *text, which the caller frees). */
static int read_manifest(const char *path, corpus_case *cases, char **text) {
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    *text = malloc((size_t)len + 1);
    assert_int_equal(fread(*text, 1, (size_t)len, f), (size_t)len);
    (*text)[len] = 0;
    fclose(f);
    int n = 0, line = 0;
    for (char *s = *text, *next; s && *s; s = next) {
        line++;
        next = strchr(s, '\n');
        if (next)
            *next++ = 0;
        s = trim(s);
        if (!*s || *s == '#')
            continue;
        assert_true(n < MAX_CASES);
        corpus_case *c = &cases[n++];
        *c = (corpus_case){.line = line};
        char *bar = strstr(s, " | ");
        if (bar) {
            *bar = 0;
            c->message = bar + 3;
        }
        char *save = NULL, *word = strtok_r(s, " ", &save);
        snprintf(c->kind, sizeof c->kind, "%s", word);
        c->file = strtok_r(NULL, " ", &save);
        while ((word = strtok_r(NULL, " ", &save))) {
            char *eq = strchr(word, '=');
            if (!eq || c->input_count == MAX_INPUTS) {
                print_error("expected.txt:%d: bad input '%s'\n", line, word);
                fail();
            }
            *eq = 0;
            c->input_names[c->input_count] = word;
            c->input_files[c->input_count++] = eq + 1;
        }
        if (!c->file || (strcmp(c->kind, "ok") != 0) != (c->message != NULL)) {
            print_error("expected.txt:%d: malformed line\n", line);
            fail();
        }
    }
    return n;
}

static bool ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

static kiln_status read_tensor(const char *file, kiln_tensor **t, kiln_diag *d) {
    if (ends_with(file, ".npz"))
        return kiln_npz_read(file, "x", t, d);
    if (ends_with(file, ".pb"))
        return onnx_read_tensor_file(file, t, d);
    return kiln_npy_read(file, t, d);
}

/* Runs one case; returns the status and leaves the message in d. */
static kiln_status run_case(const corpus_case *c, kiln_diag *d) {
    bool model = ends_with(c->file, ".onnx") || ends_with(c->file, ".kiln");
    if (!strcmp(c->kind, "read") || (!strcmp(c->kind, "ok") && !model)) {
        kiln_tensor *t = NULL;
        kiln_status st = read_tensor(c->file, &t, d);
        kiln_tensor_free(t);
        return st;
    }
    kiln_options opts = {.backend = !strcmp(c->kind, "jit") ? KILN_BACKEND_JIT : KILN_BACKEND_INTERP};
    kiln_model *m = NULL;
    kiln_status st = kiln_model_load(c->file, &opts, &m, d);
    if (st || (strcmp(c->kind, "run") && strcmp(c->kind, "jit"))) {
        assert_true(st == KILN_OK || m == NULL);
        kiln_model_destroy(m);
        return st;
    }
    kiln_tensor *in[MAX_INPUTS] = {0}, *out[16] = {0};
    for (int i = 0; !st && i < c->input_count; i++)
        st = read_tensor(c->input_files[i], &in[i], d);
    assert_true(kiln_model_output_count(m) <= 16);
    if (!st)
        st = kiln_model_run_named(m, c->input_count, (const char *const *)c->input_names,
                                  (const kiln_tensor *const *)in, out, d);
    for (int i = 0; i < c->input_count; i++)
        kiln_tensor_free(in[i]);
    for (int i = 0; i < kiln_model_output_count(m); i++)
        kiln_tensor_free(out[i]);
    kiln_model_destroy(m);
    return st;
}

static bool listed(const corpus_case *cases, int n, const char *file) {
    for (int i = 0; i < n; i++) {
        if (!strcmp(cases[i].file, file))
            return true;
        for (int k = 0; k < cases[i].input_count; k++)
            if (!strcmp(cases[i].input_files[k], file))
                return true;
    }
    return false;
}

/* Every file of the corpus folders with one of the case suffixes has a line. */
static int check_listed(const corpus_case *cases, int n, const char *dir, const char *suffix) {
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    int missing = 0;
    for (struct dirent *e; (e = readdir(dp));) {
        if (!ends_with(e->d_name, suffix))
            continue;
        char file[512];
        snprintf(file, sizeof file, "%s%s%s", strcmp(dir, ".") ? dir : "", strcmp(dir, ".") ? "/" : "", e->d_name);
        if (!listed(cases, n, file)) {
            print_error("tests/bad/%s is not in expected.txt\n", file);
            missing++;
        }
    }
    closedir(dp);
    return missing;
}

static void test_corpus(void **state) {
    (void)state;
    assert_int_equal(chdir("bad"), 0);
    static corpus_case cases[MAX_CASES];
    char *text;
    int n = read_manifest("expected.txt", cases, &text);
    bool print = getenv("KILN_CORPUS_PRINT") != NULL;
    kiln_set_max_memory((int64_t)1 << 30);
    int failures = 0, rejected = 0;
    for (int i = 0; i < n; i++) {
        const corpus_case *c = &cases[i];
        kiln_diag d = {0};
        kiln_status st = run_case(c, &d);
        const char *got = st ? d.message : NULL;
        if (print)
            printf("%s %s | %s\n", c->kind, c->file, got ? got : "(success)");
        rejected += st != KILN_OK;
        bool ok = c->message ? got && !strcmp(got, c->message) : st == KILN_OK;
        if (!ok) {
            print_error("expected.txt:%d (%s):\n  want %s\n  got  %s\n", c->line, c->file,
                        c->message ? c->message : "(success)", got ? got : "(success)");
            failures++;
        }
    }
    kiln_set_max_memory(0);
    int missing = check_listed(cases, n, "onnx", ".onnx") + check_listed(cases, n, "kiln", ".kiln") +
                  check_listed(cases, n, ".", ".kiln") + check_listed(cases, n, "npy", ".npy") +
                  check_listed(cases, n, "npz", ".npz");
    printf("malformed-input corpus: %d cases, %d rejected with their message, %d failures, %d unlisted files\n",
           n, rejected - failures, failures, missing);
    free(text);
    assert_int_equal(chdir(".."), 0);
    assert_int_equal(failures, 0);
    assert_int_equal(missing, 0);
}

/* External data hard-linked to a file outside the model's folder: refused, like a symlink
 * (a hard link cannot be committed, so the case is built in a temporary folder). */
static void test_external_hardlink(void **state) {
    (void)state;
    char root[] = "/tmp/kiln-hardlink-XXXXXX";
    assert_non_null(mkdtemp(root));
    char model_dir[64], outside[96], linked[96], model[96];
    snprintf(model_dir, sizeof model_dir, "%s/model", root);
    snprintf(outside, sizeof outside, "%s/secret.bin", root);
    snprintf(linked, sizeof linked, "%s/weights.bin", model_dir);
    snprintf(model, sizeof model, "%s/external_ok.onnx", model_dir);
    assert_int_equal(mkdir(model_dir, 0700), 0);
    FILE *f = fopen(outside, "wb");
    float secret[4] = {1, 2, 3, 4};
    assert_int_equal(fwrite(secret, sizeof secret, 1, f), 1);
    fclose(f);
    assert_int_equal(link(outside, linked), 0);
    unsigned char buf[4096];
    FILE *src = fopen("bad/onnx/external_ok.onnx", "rb"), *dst = fopen(model, "wb");
    size_t len = fread(buf, 1, sizeof buf, src);
    assert_int_equal(fwrite(buf, 1, len, dst), len);
    fclose(src), fclose(dst);
    kiln_diag d = {0};
    kiln_model *m = NULL;
    kiln_status st = kiln_model_load(model, NULL, &m, &d);
    char want[512];
    snprintf(want, sizeof want,
             "%s: initializer 'w': external data 'weights.bin' has other hard links (it may be a file from outside the "
             "model's folder)", model);
    unlink(model), unlink(linked), unlink(outside), rmdir(model_dir), rmdir(root);
    assert_int_equal(st, KILN_ERR_INVALID);
    assert_string_equal(d.message, want);
    assert_null(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_external_hardlink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
