/*
 * llvm_backend.h — the LLVM backend: loop IR -> LLVM IR (through the LLVM 19 C API),
 * optimized for the host CPU (its name and features detected at run time) with the
 * new pass manager, and compiled in-process with ORC LLJIT.
 *
 * Every kernel becomes `int32_t NAME(void *const *args, int32_t threads)`, args[i] being
 * the address of its i-th parameter buffer; parallel loops are outlined into functions
 * the runtime's kiln_rt_parallel_for runs on `threads` threads; it returns 0, or the 1-based index of the module's error message
 * that stopped it (an index out of range, an integer division by zero). A compiled model runs its kernels in order over storage bound
 * by the memory plan: the caller's inputs and outputs, the graph's constants, and one
 * arena of the planned size.
 */
#ifndef KILN_BACKEND_LLVM_H
#define KILN_BACKEND_LLVM_H

#include "ir/loop.h"

#include <stdio.h>

typedef struct cg_jit cg_jit;

typedef struct cg_options {
    int opt_level;          /* 0..3; 3 by default */
    const char *target_cpu; /* NULL: the host's (name and features); else an LLVM CPU name
                               such as x86-64-v3, with that CPU's own features */
    const char *prefix;     /* prepended to kernel and constant symbols (AOT: "NAME_") */
    int compile_threads;    /* JIT: shares compiled at once; 0: one per processor */
} cg_options;

/* Compiles every kernel of m. m must outlive the result. */
kiln_status cg_jit_compile(const lir_module *m, const cg_options *opts, cg_jit **out, kiln_diag *d);
/* Runs the compiled model: inputs in graph order; outputs[j] receives a new tensor the
 * caller frees with kiln_tensor_free. */
kiln_status cg_jit_run(cg_jit *j, const kiln_tensor *const *inputs, kiln_tensor **outputs, kiln_diag *d);
void cg_jit_destroy(cg_jit *j); /* NULL is a no-op */
/* Threads for the parallel loops of later runs (default: the processors OpenMP sees). */
void cg_jit_set_threads(cg_jit *j, int threads);
/* Profiling: later runs write each kernel's start and end (monotonic milliseconds) into
 * begin_ms[i] and end_ms[i] (one per kernel of the module); NULL stops it. */
void cg_jit_set_timing(cg_jit *j, double *begin_ms, double *end_ms);
/* Ahead of time: writes an object file (PIC) defining every kernel as PREFIXkN_Op and
 * every constant as PREFIXc<i> (i: its index among the graph's initializers), hidden, for
 * the runner the C backend writes (cemit_source with `external`). */
kiln_status cg_emit_object(const lir_module *m, const cg_options *opts, const char *path, kiln_diag *d);

/* The vector register width to schedule for (lower_graph's vector_bits): the host's
 * (512 with AVX-512, 256 with AVX2, else 128), or that of target_cpu when given. */
int cg_vector_bits(const char *target_cpu);
/* Whether glibc's libmvec could be loaded (AVX-512 kernels call its f32 functions). */
bool cg_vector_math(void);

/* Writes the optimized LLVM IR of m (for kiln dump --llvm). */
kiln_status cg_print_llvm(const lir_module *m, const cg_options *opts, FILE *f, kiln_diag *d);

#endif
