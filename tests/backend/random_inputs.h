/*
 * random_inputs.h — seeded random inputs for the backend tests that compare compiled code
 * with the interpreter (test_jit.c, test_layout.c): a splitmix64 stream, random f32
 * tensors in [-2, 2), and shapes written as .kiln types. Header-only, like test_util.h.
 */
#ifndef KILN_TESTS_BACKEND_RANDOM_INPUTS_H
#define KILN_TESTS_BACKEND_RANDOM_INPUTS_H

#include "../test_util.h"

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static inline uint64_t next_u64(void) { /* splitmix64 */
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static inline int uniform(int n) { return (int)(next_u64() % (uint64_t)n); }

static inline void shape_text(int rank, const int64_t *dims, char *buf, size_t cap) {
    size_t n = (size_t)snprintf(buf, cap, "f32[");
    for (int d = 0; d < rank; d++)
        n += (size_t)snprintf(buf + n, cap - n, "%s%lld", d ? ", " : "", (long long)dims[d]);
    snprintf(buf + n, cap - n, "]");
}

/* Uniform in [-2, 2); with `zeros`, about half the elements 0 instead. */
static inline kiln_tensor *random_tensor_of(int rank, const int64_t *dims, bool zeros) {
    kiln_tensor *t;
    kiln_diag d = {0};
    assert_int_equal(kiln_tensor_create(KILN_F32, rank, dims, &t, &d), KILN_OK);
    for (int64_t i = 0; i < kiln_tensor_count(t); i++)
        ((float *)t->data)[i] = zeros && (next_u64() & 1) ? 0.0f : (float)((double)(next_u64() >> 11) / 9007199254740992.0 * 4 - 2);
    return t;
}

#endif
