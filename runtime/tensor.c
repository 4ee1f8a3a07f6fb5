/*
 * tensor.c — dense tensors, dtype facts and checked size arithmetic.
 *
 * A kiln_tensor and its data live in one block aligned to 64 bytes (header first, padded
 * to 64, then the data: a cache line of its own, so vector loads never straddle two), so
 * one free releases both. Sizes are checked before anything is
 * allocated: a hostile shape becomes KILN_ERR_OOM or KILN_ERR_SHAPE, never a huge malloc.
 */
#include "runtime/rt.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

kiln_status kiln_rt_error(kiln_diag *d, kiln_status st, const char *fmt, ...) {
    if (!d || d->status != KILN_OK)
        return st;
    d->status = st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->message, sizeof d->message, fmt, ap);
    va_end(ap);
    return st;
}

const char *kiln_status_name(kiln_status st) {
    static const char *const names[] = {
        [KILN_OK] = "ok",
        [KILN_ERR_INVALID] = "invalid",
        [KILN_ERR_UNSUPPORTED] = "unsupported",
        [KILN_ERR_SHAPE] = "shape",
        [KILN_ERR_OOM] = "out of memory",
        [KILN_ERR_IO] = "i/o",
        [KILN_ERR_BACKEND] = "backend",
        [KILN_ERR_INTERNAL] = "internal",
    };
    return (unsigned)st < sizeof names / sizeof names[0] ? names[st] : "unknown";
}

static const struct {
    const char *name;
    size_t size;
} dtype_facts[KILN_DTYPE_COUNT] = {
    [KILN_DTYPE_INVALID] = {"invalid", 0}, [KILN_F32] = {"f32", 4}, [KILN_F64] = {"f64", 8},
    [KILN_I64] = {"i64", 8},   [KILN_I32] = {"i32", 4}, [KILN_I8] = {"i8", 1},
    [KILN_U8] = {"u8", 1},     [KILN_BOOL] = {"bool", 1}, [KILN_F16] = {"f16", 2},
    [KILN_BF16] = {"bf16", 2}, [KILN_I16] = {"i16", 2}, [KILN_U16] = {"u16", 2},
    [KILN_U32] = {"u32", 4},   [KILN_U64] = {"u64", 8},
};

const char *kiln_dtype_name(kiln_dtype dt) {
    return (unsigned)dt < KILN_DTYPE_COUNT ? dtype_facts[dt].name : "invalid";
}

size_t kiln_dtype_size(kiln_dtype dt) {
    return (unsigned)dt < KILN_DTYPE_COUNT ? dtype_facts[dt].size : 0;
}

bool kiln_mul_ok(int64_t a, int64_t b, int64_t *out) {
    int64_t r;
    if (a < 0 || b < 0 || __builtin_mul_overflow(a, b, &r))
        return false;
    *out = r;
    return true;
}

bool kiln_shape_count(int rank, const int64_t *dims, int64_t *out) {
    int64_t n = 1;
    for (int i = 0; i < rank; i++)
        if (!kiln_mul_ok(n, dims[i], &n))
            return false;
    *out = n;
    return true;
}

#define TENSOR_HEADER_BYTES ((sizeof(kiln_tensor) + 63) / 64 * 64)

static _Atomic int64_t max_memory; /* 0: not set */

void kiln_set_max_memory(int64_t bytes) {
    max_memory = bytes > 0 ? bytes : 0;
}

int64_t kiln_max_memory(void) {
    int64_t cap = max_memory;
    if (cap > 0)
        return cap;
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    int64_t phys = pages > 0 && page > 0 && pages < INT64_MAX / page ? (int64_t)pages * page : KILN_TENSOR_MAX_BYTES;
    return phys < KILN_TENSOR_MAX_BYTES ? phys : KILN_TENSOR_MAX_BYTES;
}

static kiln_status create(kiln_dtype dt, int rank, const int64_t *dims, bool zero, kiln_tensor **out, kiln_diag *diag) {
    *out = NULL;
    if (kiln_dtype_size(dt) == 0)
        return kiln_rt_error(diag, KILN_ERR_INVALID, "tensor: invalid dtype %d", (int)dt);
    if (rank < 0 || rank > KILN_MAX_RANK)
        return kiln_rt_error(diag, KILN_ERR_UNSUPPORTED, "tensor: rank %d outside 0..%d", rank,
                             KILN_MAX_RANK);
    int64_t count, bytes;
    if (!kiln_shape_count(rank, dims, &count))
        return kiln_rt_error(diag, KILN_ERR_SHAPE, "tensor: negative or overflowing dimensions");
    if (!kiln_mul_ok(count, (int64_t)kiln_dtype_size(dt), &bytes) || bytes > kiln_max_memory())
        return kiln_rt_error(diag, KILN_ERR_OOM, "tensor: %lld elements of %s exceed the memory cap of %lld bytes",
                             (long long)count, kiln_dtype_name(dt), (long long)kiln_max_memory());
    /* the exact size, + 1 so that a tensor of no elements has a block too (aligned_alloc
     * would round it up to 64: AddressSanitizer would miss a read just past the data,
     * which sanitizer_proof makes) */
    size_t size = TENSOR_HEADER_BYTES + (size_t)bytes + 1;
    void *mem;
    char *block = posix_memalign(&mem, 64, size) ? NULL : mem;
    if (!block)
        return kiln_rt_error(diag, KILN_ERR_OOM, "tensor: out of memory for %lld bytes",
                             (long long)bytes);
    memset(block, 0, zero ? size : TENSOR_HEADER_BYTES);
    kiln_tensor *t = (kiln_tensor *)block;
    t->dtype = dt;
    t->rank = rank;
    for (int i = 0; i < rank; i++)
        t->dims[i] = dims[i];
    t->data = block + TENSOR_HEADER_BYTES;
    *out = t;
    return KILN_OK;
}

kiln_status kiln_tensor_create(kiln_dtype dt, int rank, const int64_t *dims, kiln_tensor **out, kiln_diag *diag) {
    return create(dt, rank, dims, true, out, diag);
}

kiln_status kiln_rt_tensor_create_uninit(kiln_dtype dt, int rank, const int64_t *dims, kiln_tensor **out,
                                         kiln_diag *diag) {
    return create(dt, rank, dims, false, out, diag);
}

void kiln_tensor_free(kiln_tensor *t) {
    free(t);
}

int64_t kiln_tensor_count(const kiln_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->rank; i++)
        n *= t->dims[i]; /* checked when the tensor was created */
    return n;
}

size_t kiln_tensor_bytes(const kiln_tensor *t) {
    return (size_t)kiln_tensor_count(t) * kiln_dtype_size(t->dtype);
}
