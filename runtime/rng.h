/*
 * rng.h — the counter-based random numbers that training's dropout draws.
 *
 * Element i of a stream with key k gets kiln_rng_bits(k, i): SplitMix64's finalizer of
 * k + (i + 1) * golden. Nothing is carried from one element to the next, so a tensor's
 * numbers are the same whichever thread computes which part of it, and a run resumed from
 * a checkpoint (which stores the step count) draws exactly what the uninterrupted run did.
 * The JIT builds the same formula in loop IR (passes/lower_optim.c) and the interpreter
 * calls these functions; test_ops pins the stream's first values.
 */
#ifndef KILN_RUNTIME_RNG_H
#define KILN_RUNTIME_RNG_H

#include <stdint.h>

#define KILN_RNG_GOLDEN UINT64_C(0x9e3779b97f4a7c15)
#define KILN_RNG_MUL1 UINT64_C(0xbf58476d1ce4e5b9)
#define KILN_RNG_MUL2 UINT64_C(0x94d049bb133111eb)
/* DropoutMask compares the top 24 bits with ceil(ratio * 2^24): exact in any precision */
#define KILN_RNG_KEEP_BITS 24

static inline uint64_t kiln_rng_mix(uint64_t z) {
    z = (z ^ (z >> 30)) * KILN_RNG_MUL1;
    z = (z ^ (z >> 27)) * KILN_RNG_MUL2;
    return z ^ (z >> 31);
}

static inline uint64_t kiln_rng_bits(uint64_t key, uint64_t i) {
    return kiln_rng_mix(key + (i + 1) * KILN_RNG_GOLDEN);
}

/* The smallest top-24-bit value a DropoutMask element keeps at this ratio. */
static inline uint64_t kiln_rng_keep_from(double ratio) {
    double t = ratio * (double)(UINT64_C(1) << KILN_RNG_KEEP_BITS);
    uint64_t k = (uint64_t)t;
    return (double)k < t ? k + 1 : k;
}

#endif
