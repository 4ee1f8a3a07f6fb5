/*
 * test_npy.c — .npy and .npz reading and writing: round trips of every dtype and of
 * edge shapes (scalar, empty), files written by numpy (stored and deflated .npz), and
 * malformed files, each rejected with a message naming the file and the problem.
 */
#include "../test_util.h"

#include <stdlib.h>
#include <unistd.h>

static char tmp_dir[] = "/tmp/kiln_npy_XXXXXX";

static int setup(void **state) {
    (void)state;
    return mkdtemp(tmp_dir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmp_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static const char *tmp_path(const char *name) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp_dir, name);
    return path;
}

static void test_round_trip_every_dtype(void **state) {
    (void)state;
    const char *lits[] = {
        "f32[2, 3] [1.5, -2, 3.25, 0, nan, -inf]", "f64[2] [0.1, -1e300]", "i64[3] [-9223372036854775807, 0, 42]",
        "i32[2, 1, 2] [1, -2, 3, -4]", "i8[3] [-128, 0, 127]", "u8[3] [0, 128, 255]", "bool[4] [1, 0, 0, 1]",
        "f32[] [3.5]", "f32[0, 4] []", "i64[1] [7]", "f16[3] [1.5, -65504, 5.9604645e-08]",
        "i16[2] [-32768, 32767]", "u16[2] [0, 65535]", "u32[2] [0, 4294967295]", "u64[2] [0, 18446744073709551615]",
    };
    for (int i = 0; i < ARRAY_LEN(lits); i++) {
        kiln_tensor *t = test_literal(lits[i]), *back = NULL;
        kiln_diag d = {0};
        assert_int_equal(kiln_npy_write(tmp_path("t.npy"), t, &d), KILN_OK);
        assert_int_equal(kiln_npy_read(tmp_path("t.npy"), &back, &d), KILN_OK);
        assert_true(test_tensor_close(back, t, 0, 0, lits[i]));
        kiln_tensor_free(t);
        kiln_tensor_free(back);
    }
}

/* numpy has no bfloat16: writing one is refused with a message */
static void test_bf16_not_written(void **state) {
    (void)state;
    kiln_tensor *t = test_literal("bf16[1] [1]");
    kiln_diag d = {0};
    assert_int_equal(kiln_npy_write(tmp_path("bf.npy"), t, &d), KILN_ERR_INVALID);
    assert_non_null(strstr(d.message, "bf.npy: cannot write dtype bf16"));
    kiln_tensor_free(t);
}

static void test_npz_round_trip(void **state) {
    (void)state;
    kiln_tensor *a = test_literal("f32[2] [1, 2]"), *b = test_literal("i64[] [5]"), *back;
    const char *keys[] = {"w.a", "b"};
    const kiln_tensor *ts[] = {a, b};
    kiln_diag d = {0};
    assert_int_equal(kiln_npz_write(tmp_path("t.npz"), 2, keys, ts, &d), KILN_OK);
    assert_int_equal(kiln_npz_read(tmp_path("t.npz"), "b", &back, &d), KILN_OK);
    assert_true(test_tensor_close(back, b, 0, 0, "b"));
    kiln_tensor_free(back);
    assert_int_equal(kiln_npz_read(tmp_path("t.npz"), "w.a", &back, &d), KILN_OK);
    assert_true(test_tensor_close(back, a, 0, 0, "w.a"));
    kiln_tensor_free(back);
    assert_int_equal(kiln_npz_read(tmp_path("t.npz"), "c", &back, &d), KILN_ERR_INVALID);
    assert_non_null(strstr(d.message, "t.npz: no array named 'c'"));
    kiln_tensor_free(a), kiln_tensor_free(b);
}

/* Files numpy wrote: np.save, np.savez (stored) and np.savez_compressed (deflated). */
static void test_files_from_numpy(void **state) {
    (void)state;
    kiln_tensor *t;
    kiln_diag d = {0};
    assert_int_equal(kiln_npy_read("../examples/models/images.npy", &t, &d), KILN_OK);
    assert_int_equal(t->dtype, KILN_F32);
    assert_int_equal(t->rank, 4);
    assert_int_equal(t->dims[0], 4);
    assert_int_equal(t->dims[3], 28);
    kiln_tensor_free(t);
    assert_int_equal(kiln_npz_read("../examples/models/mlp.npz", "fc1.weight", &t, &d), KILN_OK);
    assert_int_equal(t->dims[0], 784);
    assert_int_equal(t->dims[1], 64);
    kiln_tensor_free(t);
    assert_int_equal(kiln_npz_read("../examples/models/cnn.npz", "conv2.weight", &t, &d), KILN_OK);
    assert_int_equal(t->rank, 4);
    assert_int_equal(t->dims[1], 8);
    kiln_tensor_free(t);
}

/* Writes a version-1.0 .npy with the given dict text and `data_bytes` zero bytes. */
static void write_npy(const char *name, const char *magic, const char *dict, size_t data_bytes) {
    FILE *f = fopen(tmp_path(name), "wb");
    assert_non_null(f);
    size_t dl = strlen(dict), hlen = (10 + dl + 1 + 63) / 64 * 64 - 10;
    fwrite(magic, 1, 8, f);
    fputc((int)(hlen & 0xff), f);
    fputc((int)(hlen >> 8), f);
    fputs(dict, f);
    for (size_t i = dl; i + 1 < hlen; i++)
        fputc(' ', f);
    fputc('\n', f);
    for (size_t i = 0; i < data_bytes; i++)
        fputc(0, f);
    fclose(f);
}

typedef struct bad_npy {
    const char *magic, *dict;
    size_t data;
    const char *message;
} bad_npy;

static void test_bad_npy(void **state) {
    (void)state;
    const char *v1 = "\x93NUMPY\x01\x00";
    const bad_npy cases[] = {
        {"\x93NUMPX\x01\x00", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, "not a .npy file (bad magic)"},
        {"\x93NUMPY\x09\x00", "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", 8, ".npy version 9.0"},
        {v1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", 16, "fortran_order arrays are not supported"},
        {v1, "{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", 16, "unsupported npy dtype '<c8'"},
        {v1, "{'descr': '<U3', 'fortran_order': False, 'shape': (2,), }", 24, "unsupported npy dtype '<U3'"},
        {v1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", 8, "big-endian npy data is not supported"},
        {v1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }", 8, "npy data has 8 bytes, the shape needs 12"},
        {v1, "{'descr': '<f4', 'fortran_order': False, 'shape': (9223372036854775807, 4), }", 8, "npy shape overflows"},
        {v1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }", 8, "npy dimension out of range"},
        {v1, "{'fortran_order': False, 'shape': (2,), }", 8, "npy header has no 'descr'"},
        {v1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", 8, "npy 'shape' is malformed"},
        {v1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 1, 1, 1, 1, 1), }", 4, "npy rank above 8"},
    };
    for (int i = 0; i < ARRAY_LEN(cases); i++) {
        write_npy("bad.npy", cases[i].magic, cases[i].dict, cases[i].data);
        kiln_tensor *t = NULL;
        kiln_diag d = {0};
        kiln_status st = kiln_npy_read(tmp_path("bad.npy"), &t, &d);
        if (st == KILN_OK || !strstr(d.message, cases[i].message) || !strstr(d.message, "bad.npy: ")) {
            print_error("case %d: want \"%s\", got \"%s\"\n", i, cases[i].message, st ? d.message : "success");
            fail();
        }
        assert_null(t);
    }
    /* a header length that runs past the end of the file */
    FILE *f = fopen(tmp_path("short.npy"), "wb");
    fwrite("\x93NUMPY\x01\x00\xff\x7f{'descr'", 1, 18, f);
    fclose(f);
    kiln_tensor *t = NULL;
    kiln_diag d = {0};
    assert_int_equal(kiln_npy_read(tmp_path("short.npy"), &t, &d), KILN_ERR_INVALID);
    assert_non_null(strstr(d.message, "truncated .npy header"));
    d = (kiln_diag){0};
    assert_int_equal(kiln_npy_read(tmp_path("absent.npy"), &t, &d), KILN_ERR_IO);
    assert_non_null(strstr(d.message, "absent.npy: cannot open: No such file or directory"));
}

static void test_bad_npz(void **state) {
    (void)state;
    kiln_tensor *t = NULL;
    kiln_diag d = {0};
    FILE *f = fopen(tmp_path("junk.npz"), "wb");
    fputs("this is not a zip file at all, not even close to one", f);
    fclose(f);
    assert_int_equal(kiln_npz_read(tmp_path("junk.npz"), "a", &t, &d), KILN_ERR_INVALID);
    assert_non_null(strstr(d.message, "junk.npz: not a .npz (zip) file"));
    /* a real archive cut short: the central directory is gone */
    unsigned char *buf;
    size_t size;
    assert_int_equal(kiln_rt_read_file("../examples/models/cnn.npz", 1 << 24, &buf, &size, &d), KILN_OK);
    f = fopen(tmp_path("cut.npz"), "wb");
    fwrite(buf, 1, size / 2, f);
    fclose(f);
    d = (kiln_diag){0};
    assert_int_not_equal(kiln_npz_read(tmp_path("cut.npz"), "fc.weight", &t, &d), KILN_OK);
    assert_non_null(strstr(d.message, "cut.npz"));
    /* corrupt the deflate stream of a member: every byte after the first local header */
    for (size_t i = 100; i < size / 2; i++)
        buf[i] ^= 0x5a;
    f = fopen(tmp_path("corrupt.npz"), "wb");
    fwrite(buf, 1, size, f);
    fclose(f);
    d = (kiln_diag){0};
    assert_int_not_equal(kiln_npz_read(tmp_path("corrupt.npz"), "conv1.weight", &t, &d), KILN_OK);
    assert_non_null(strstr(d.message, "corrupt.npz"));
    assert_null(t);
    free(buf);
}

static void test_tensor_caps(void **state) {
    (void)state;
    kiln_tensor *t = NULL;
    kiln_diag d = {0};
    int64_t huge[2] = {INT64_MAX / 2, 4};
    assert_int_equal(kiln_tensor_create(KILN_F32, 2, huge, &t, &d), KILN_ERR_SHAPE);
    int64_t big[1] = {(int64_t)1 << 40};
    d = (kiln_diag){0};
    assert_int_equal(kiln_tensor_create(KILN_F32, 1, big, &t, &d), KILN_ERR_OOM);
    int64_t neg[1] = {-1};
    d = (kiln_diag){0};
    assert_int_equal(kiln_tensor_create(KILN_F32, 1, neg, &t, &d), KILN_ERR_SHAPE);
    assert_null(t);
    for (int64_t n = 0; n < 300; n += 7) { /* data on a cache line of its own, zeroed */
        int64_t dims[1] = {n};
        assert_int_equal(kiln_tensor_create(KILN_I8, 1, dims, &t, &d), KILN_OK);
        assert_int_equal((uintptr_t)t->data % 64, 0);
        for (int64_t i = 0; i < n; i++)
            assert_int_equal(((const signed char *)t->data)[i], 0);
        kiln_tensor_free(t);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_every_dtype), cmocka_unit_test(test_bf16_not_written),
        cmocka_unit_test(test_npz_round_trip),
        cmocka_unit_test(test_files_from_numpy),       cmocka_unit_test(test_bad_npy),
        cmocka_unit_test(test_bad_npz),                cmocka_unit_test(test_tensor_caps),
    };
    return cmocka_run_group_tests_name("npy", tests, setup, teardown);
}
