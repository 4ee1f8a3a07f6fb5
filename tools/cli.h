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

/* The subcommands defined outside tools/kiln.c. */
int cmd_bench(int argc, char **argv);
int cmd_train(int argc, char **argv);

#endif
