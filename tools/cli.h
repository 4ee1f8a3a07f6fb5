/*
 * cli.h — what the `kiln` subcommands (tools/) share.
 */
#ifndef KILN_TOOLS_CLI_H
#define KILN_TOOLS_CLI_H

#include "kiln.h"

#include <stdbool.h>

enum { EXIT_MODEL = 1, EXIT_USAGE = 2 };

/* Prints "kiln: " fmt (with arg), then the usage text; returns EXIT_USAGE. */
int usage_error(const char *usage, const char *fmt, const char *arg);
/* Prints the diagnostic's one line; returns EXIT_MODEL. */
int model_error(const kiln_diag *d);
bool is_help(const char *a);
/* Milliseconds since *since, or (since == NULL) a monotonic timestamp in milliseconds. */
double elapsed_ms(const double *since);
int compare_double(const void *a, const void *b); /* for qsort */

typedef struct feed {
    const char *name, *file;
} feed;
/* NAME=FILE into feeds (arg is modified); 0 or a usage error's exit status. */
int cli_parse_feed(const char *usage, char *arg, feed *feeds, int *nfeeds, int cap);
/* Reads each feed (.npy or ONNX TensorProto .pb) into in[slot of its input]; inputs not
 * fed stay NULL. 0, or EXIT_MODEL after printing the error. */
int cli_read_inputs(kiln_model *m, const char *model_path, const feed *feeds, int nfeeds, kiln_tensor **in);

/* --max-memory SIZE: bytes, or with a K, M or G suffix (powers of 1024); sets the cap.
 * 0 or a usage error's exit status. */
int cli_max_memory(const char *usage, const char *arg);

/* ---- timing a model (bench.c), shared with kiln tune ---- */
typedef struct bench_opts {
    const char *path, *trace;
    kiln_options opts;
    const struct kiln_tuning *trial; /* kiln tune: these choices instead of opts.tuning's file */
    int warmup, iterations;
    bool profile, json, batch_given; /* profile: per-kernel medians (printed unless json) */
} bench_opts;

typedef struct bench_result {
    double load_ms, first_ms, median, p10, p90;
    int64_t arena;
    int kernels;        /* run at every run (not the once kernels that pack constants) */
    int kernel_count;   /* profile: all of the module's kernels, and for each */
    double *kernel_ms;  /*   its median time */
    char **origin;      /*   the name of the node it computes (NULL for once kernels) */
    int *origin_op;     /*   that node's op (an ir_op) */
    kiln_tensor **out;  /* the last run's outputs */
    int nout;
} bench_result;

/* Compiles b->path with opts and times it (given[i] feeds input i; NULL: seeded random
 * values). 0, or an exit status after printing the error. Free r with bench_free. */
int bench_one(const bench_opts *b, kiln_options opts, kiln_tensor **given, bench_result *r);
void bench_free(bench_result *r);

/* The subcommands defined outside tools/kiln.c. */
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);
int cmd_tune(int argc, char **argv);

#endif
