/*
 * rt.h — runtime-internal helpers shared by the runtime's files (not installed).
 * The runtime depends on nothing of the compiler: only libc, libm, zlib, OpenMP and
 * kiln.h's types.
 */
#ifndef KILN_RUNTIME_RT_H
#define KILN_RUNTIME_RT_H

#include "kiln.h"

#if defined(__GNUC__)
#define KILN_PRINTF(f, a) __attribute__((format(printf, f, a)))
#else
#define KILN_PRINTF(f, a)
#endif

/* Records `st` and a formatted message in `d` unless it already holds an error (the first
 * error is the one worth reading), and returns `st`. `d` may be NULL. */
kiln_status kiln_rt_error(kiln_diag *d, kiln_status st, const char *fmt, ...) KILN_PRINTF(3, 4);

/* Reads a whole file, refusing files over `cap` bytes. Caller frees *buf (NUL-terminated). */
kiln_status kiln_rt_read_file(const char *path, size_t cap, unsigned char **buf, size_t *size,
                              kiln_diag *d);
/* Blocks of at least KILN_RT_PAGES_MIN bytes for the compiler's big copies: whole pages
 * mapped for the block, zeroed, 2 MiB aligned (huge pages where the kernel grants them).
 * NULL when out of memory. Free with the size given. */
#define KILN_RT_PAGES_MIN ((size_t)1 << 20)
void *kiln_rt_pages_alloc(size_t size);
void kiln_rt_pages_free(void *p, size_t size);
/* Writes the .npy 1.0 header (magic through padding) for `t` into hdr; returns its length,
 * 0 if it does not fit in `cap`. */
size_t kiln_rt_npy_header(const kiln_tensor *t, char *hdr, size_t cap);

/* Runs body over [0, n) split into `threads` contiguous chunks (OpenMP); returns the first
 * nonzero code a chunk returned. Generated kernels call it with an outlined loop body. */
int32_t kiln_rt_parallel_for(int32_t (*body)(void *const *args, int64_t begin, int64_t end), void *const *args,
                             int64_t n, int32_t threads);
/* kiln_tensor_create without zeroing the data: for outputs the kernels write whole. A
 * 16 MiB output's memset cost 0.4 ms a run, a fifth of the elementwise chain's time. */
kiln_status kiln_rt_tensor_create_uninit(kiln_dtype dt, int rank, const int64_t *dims, kiln_tensor **out,
                                         kiln_diag *diag);
/* The number of processors OpenMP sees: the default thread count. */
int kiln_rt_default_threads(void);

#endif
