/*
 * test_util.h — helpers shared by kiln's cmocka tests: tensor literals and comparison
 * with a stated tolerance. Header-only so each test binary stays one file.
 */
#ifndef KILN_TESTS_TEST_UTIL_H
#define KILN_TESTS_TEST_UTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "frontend/txt.h"
#include "ir/graph.h"

/* The tolerance of the reference interpreter's op tests: the expected values are written
 * to 8 significant digits and outputs are f32, so |got - want| <= 1e-6 + 1e-5 * |want|. */
#define TEST_ATOL 1e-6
#define TEST_RTOL 1e-5

static inline kiln_tensor *test_literal(const char *text) {
    kiln_diag d = {0};
    kiln_tensor *t = NULL;
    if (txt_parse_tensor(text, &t, &d)) {
        print_error("bad literal '%s': %s\n", text, d.message);
        fail();
    }
    return t;
}

/* Writes a tensor's shape as "f32[2, 3]" into buf. */
static inline const char *test_type_str(const kiln_tensor *t, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "%s[", kiln_dtype_name(t->dtype));
    for (int i = 0; i < t->rank && n < cap; i++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", i ? ", " : "", (long long)t->dims[i]);
    if (n < cap)
        snprintf(buf + n, cap - n, "]");
    return buf;
}

/* True if `got` matches `want` in dtype, shape and values (floats within tolerance, NaN
 * matching NaN; integers and bools exactly); prints the first difference otherwise. */
static inline bool test_tensor_close(const kiln_tensor *got, const kiln_tensor *want, double atol,
                                     double rtol, const char *what) {
    char a[128], b[128];
    bool same = got->dtype == want->dtype && got->rank == want->rank;
    for (int i = 0; same && i < got->rank; i++)
        same = got->dims[i] == want->dims[i];
    if (!same) {
        print_error("%s: got %s, want %s\n", what, test_type_str(got, a, sizeof a),
                    test_type_str(want, b, sizeof b));
        return false;
    }
    int64_t n = kiln_tensor_count(got);
    for (int64_t i = 0; i < n; i++) {
        if (ir_dtype_is_float(got->dtype)) {
            double g = ir_tensor_get(got, i), w = ir_tensor_get(want, i);
            bool ok = (isnan(g) && isnan(w)) || g == w || fabs(g - w) <= atol + rtol * fabs(w);
            if (!ok) {
                print_error("%s: element %lld: got %.9g, want %.9g\n", what, (long long)i, g, w);
                return false;
            }
        } else if (ir_tensor_get_int(got, i) != ir_tensor_get_int(want, i)) {
            print_error("%s: element %lld: got %lld, want %lld\n", what, (long long)i,
                        (long long)ir_tensor_get_int(got, i), (long long)ir_tensor_get_int(want, i));
            return false;
        }
    }
    return true;
}

#endif
