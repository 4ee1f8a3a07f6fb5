/*
 * model.h — the driver behind kiln.h's model calls: frontend -> verify -> pass pipeline ->
 * backend. Tools that need more than the public API (dumps after a pass) use this.
 */
#ifndef KILN_DRIVER_MODEL_H
#define KILN_DRIVER_MODEL_H

#include "ir/graph.h"
#include "passes/pass.h"

#include "backend/llvm/llvm_backend.h"

struct kiln_model {
    ir_graph *graph;
    kiln_backend backend;
    lir_module *lowered; /* JIT: the loop IR, kept alive for the compiled kernels */
    cg_jit *jit;
    int threads;         /* 0: the default */
    int compile_threads; /* JIT: threads that compile; 0: every processor */
    bool no_fuse;        /* lower one kernel per node */
    const struct kiln_tuning *tuning; /* the per-node schedule choices followed, or NULL */
    struct kiln_tuning *own_tuning;   /* the table read from kiln_options' file (freed with m) */
    struct c_library *c; /* the C backend: the library built from the emitted C, loaded */
    const kiln_tensor **pinned; /* per graph input: the value compiled in as a constant (in the
                                   graph's arena), or NULL */
};

/* Parses a model file by its extension (.kiln) into a verified graph, without passes. */
kiln_status driver_load_graph(const char *path, ir_graph **out, kiln_diag *d);
typedef enum driver_emit {
    DRIVER_EMIT_SO,   /* libNAME.so and NAME.h */
    DRIVER_EMIT_C,    /* NAME.c and NAME.h (the C backend) into a folder */
    DRIVER_EMIT_OBJ,  /* the LLVM object of the kernels and weights */
    DRIVER_EMIT_LLVM, /* the LLVM IR, as text */
} driver_emit;

typedef struct driver_compile_options {
    const char *out;        /* the file (or, for C, the folder) to write */
    const char *name;       /* a C identifier: the prefix of the library's API */
    driver_emit emit;
    bool c_backend;         /* build the .so from C source alone instead of with LLVM */
    const char *target_cpu; /* NULL: this machine's CPU; else e.g. x86-64-v3 */
    int64_t batch;          /* the size of a symbolic batch dimension (default 1) */
    bool no_fuse;           /* one kernel per node */
    const char *tuning;     /* a tuning file to follow, or NULL */
} driver_compile_options;

/* Builds o->out (libNAME.so and NAME.h beside it) from lowered loops (driver/compile.c). */
kiln_status driver_build_library(const lir_module *m, const driver_compile_options *o, kiln_diag *d);

/* Ahead-of-time compilation (driver/compile.c). */
kiln_status driver_compile(const char *model_path, const driver_compile_options *o, kiln_diag *d);

/* Prefixes d's message with the model file's name if it does not name it already. */
void name_model(const ir_graph *g, kiln_diag *d);

/* A model from a graph that has been verified (and, for the passes' sake, nothing more):
 * fixes the batch, runs the pipeline and compiles for opts' backend. Takes g, even on
 * failure. */
kiln_status driver_model_from_graph(ir_graph *g, const kiln_options *opts, kiln_model **out, kiln_diag *d);
/* The same with the schedule choices of `tuning` (which must outlive the model; NULL:
 * none) in place of opts->tuning's file: kiln tune's trials. */
kiln_status driver_model_tuned(ir_graph *g, const kiln_options *opts, const struct kiln_tuning *tuning, kiln_model **out,
                               kiln_diag *d);
/* Reads a tuning file (passes/tuning.h). */
kiln_status driver_read_tuning(const char *path, struct kiln_tuning **out, kiln_diag *d);

/* What lowering sizes schedules for: the vector width of the host (target_cpu NULL) or of
 * the named CPU, and the host's L2 per core as the C library reports it (a named CPU is
 * taken to have the host's caches). */
struct lower_options driver_lower_options(const char *target_cpu, bool no_fuse, int threads);

/* Runs the pipeline (up to `stop_after`, or all) with the interpreter as the evaluator,
 * following tuning's choices (NULL: none). */
kiln_status driver_optimize(ir_graph *g, const char *stop_after, kiln_diag *d);
/* ... following a tuning file (or NULL), for runs on `threads` threads (0: unknown, several) */
kiln_status driver_optimize_tuned(ir_graph *g, const char *stop_after, const struct kiln_tuning *tuning, int threads,
                                  kiln_diag *d);

#endif
