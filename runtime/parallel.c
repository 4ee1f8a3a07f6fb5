/*
 * parallel.c — the parallel-for that compiled kernels call with an outlined loop body.
 *
 * [0, n) is split into one contiguous chunk per thread (static schedule), so a run's
 * result does not depend on timing; the first nonzero code a chunk returns (an index out
 * of range, say) is the call's result.
 */
#include "runtime/rt.h"

#include <omp.h>

int kiln_rt_default_threads(void) {
    return omp_get_num_procs();
}

int32_t kiln_rt_parallel_for(int32_t (*body)(void *const *args, int64_t begin, int64_t end), void *const *args,
                             int64_t n, int32_t threads) {
    if (threads <= 1 || n <= 1)
        return body(args, 0, n);
    if (threads > n)
        threads = (int32_t)n;
    int32_t rc = 0;
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int32_t t = 0; t < threads; t++) {
        int64_t begin = n * t / threads, end = n * (t + 1) / threads;
        int32_t r = body(args, begin, end);
        if (r) {
#pragma omp critical
            if (!rc)
                rc = r;
        }
    }
    return rc;
}
