/*
 * limits.c — this machine's limits, measured the same day as the benchmark, so each
 * kernel's figure can be read as a fraction of them: peak f32 FMA throughput (GFLOP/s;
 * independent FMA chains in registers, as wide as the compiler's -march=native vectors)
 * and memory bandwidth (GB/s; a STREAM-style triad over arrays far larger than the
 * caches), each on 1 thread and on all of them (OpenMP). Prints one JSON object.
 * Build: cc -O3 -march=native -fopenmp bench/limits.c -o limits
 */
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef float vec __attribute__((vector_size(64))); /* 16 floats; split if registers are narrower */
enum { CHAINS = 12, LANES = 16 };

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* GFLOP/s of `threads` threads each running CHAINS independent FMA chains. */
static double fma_gflops(int threads, long iters) {
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        double t0 = now(), sink = 0;
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        {
            vec acc[CHAINS], m, a;
            for (int l = 0; l < LANES; l++)
                m[l] = 0.999999f, a[l] = 1e-7f * (float)(omp_get_thread_num() + 1);
            for (int c = 0; c < CHAINS; c++)
                acc[c] = m * (float)c;
            for (long i = 0; i < iters; i++)
                for (int c = 0; c < CHAINS; c++)
                    acc[c] = acc[c] * m + a;
            for (int c = 0; c < CHAINS; c++)
                for (int l = 0; l < LANES; l++)
                    sink += acc[c][l];
        }
        double dt = now() - t0, flops = 2.0 * LANES * CHAINS * (double)iters * threads;
        if (sink == 12345.678) /* keep the work */
            puts("");
        if (flops / dt * 1e-9 > best)
            best = flops / dt * 1e-9;
    }
    return best;
}

/* GB/s of a[i] = b[i] + s * c[i] over n floats (three streams: 12 bytes per element). */
static double triad_gbs(int threads, float *a, const float *b, const float *c, long n) {
    double best = 0;
    for (int rep = 0; rep < 5; rep++) {
        double t0 = now();
#pragma omp parallel for num_threads(threads) schedule(static)
        for (long i = 0; i < n; i++)
            a[i] = b[i] + 1.5f * c[i];
        double dt = now() - t0;
        if (12.0 * (double)n / dt * 1e-9 > best)
            best = 12.0 * (double)n / dt * 1e-9;
    }
    return best;
}

int main(void) {
    long n = 32L << 20; /* 128 MiB per array */
    float *a = malloc((size_t)n * sizeof *a), *b = malloc((size_t)n * sizeof *b), *c = malloc((size_t)n * sizeof *c);
    if (!a || !b || !c)
        return 1;
    for (long i = 0; i < n; i++)
        a[i] = 0, b[i] = (float)(i & 1023), c[i] = 1;
    int all = omp_get_max_threads();
    printf("{\"threads\": %d, \"fma_gflops_1\": %.1f, \"fma_gflops_all\": %.1f, \"triad_gbs_1\": %.1f, "
           "\"triad_gbs_all\": %.1f}\n",
           all, fma_gflops(1, 20000000), fma_gflops(all, 20000000), triad_gbs(1, a, b, c, n), triad_gbs(all, a, b, c, n));
    free(a), free(b), free(c);
    return 0;
}
