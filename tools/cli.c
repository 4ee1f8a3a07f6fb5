/*
 * cli.c — what the `kiln` subcommands share: error reporting with the exit statuses,
 * timing, and reading a model's inputs from files.
 */
#include "tools/cli.h"

#include "frontend/onnx.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int usage_error(const char *usage, const char *fmt, const char *arg) {
    fprintf(stderr, "kiln: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n\n%s", usage);
    return EXIT_USAGE;
}

int model_error(const kiln_diag *d) {
    fprintf(stderr, "kiln: %s\n", d->message);
    return EXIT_MODEL;
}

bool is_help(const char *a) {
    return !strcmp(a, "-h") || !strcmp(a, "--help");
}

/* Milliseconds since *since, or (since == NULL) a monotonic timestamp in milliseconds. */
double elapsed_ms(const double *since) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    double now = (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
    return since ? now - *since : now;
}

int compare_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int cli_read_inputs(kiln_model *m, const char *model_path, const feed *feeds, int nfeeds, kiln_tensor **in) {
    kiln_diag d = {0};
    int nin = kiln_model_input_count(m);
    for (int f = 0; f < nfeeds; f++) {
        int slot = -1;
        for (int i = 0; i < nin; i++)
            if (!strcmp(kiln_model_input_name(m, i), feeds[f].name))
                slot = i;
        size_t len = strlen(feeds[f].file);
        if (slot < 0) {
            fprintf(stderr, "kiln: %s: the model has no input named '%s'\n", model_path, feeds[f].name);
            return EXIT_MODEL;
        } else if (in[slot]) {
            fprintf(stderr, "kiln: input '%s' is given twice\n", feeds[f].name);
            return EXIT_MODEL;
        } else if (len >= 4 && !strcmp(feeds[f].file + len - 4, ".npy")) {
            if (kiln_npy_read(feeds[f].file, &in[slot], &d))
                return model_error(&d);
        } else if (len >= 3 && !strcmp(feeds[f].file + len - 3, ".pb")) {
            if (onnx_read_tensor_file(feeds[f].file, &in[slot], &d))
                return model_error(&d);
        } else {
            fprintf(stderr, "kiln: %s: unsupported input file format (expected .npy or .pb)\n", feeds[f].file);
            return EXIT_MODEL;
        }
    }
    return 0;
}

int cli_parse_feed(const char *usage, char *arg, feed *feeds, int *nfeeds, int cap) {
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg)
        return usage_error(usage, "--input expects NAME=FILE, got '%s'", arg);
    if (*nfeeds == cap)
        return usage_error(usage, "too many inputs%s", "");
    *eq = 0;
    feeds[(*nfeeds)++] = (feed){arg, eq + 1};
    return 0;
}

int cli_max_memory(const char *usage, const char *arg) {
    char *end;
    errno = 0;
    long long v = strtoll(arg, &end, 10);
    int shift = *end == 'K' ? 10 : *end == 'M' ? 20 : *end == 'G' ? 30 : 0;
    if (shift)
        end++;
    if (errno || v < 1 || *end || v > (INT64_MAX >> shift))
        return usage_error(usage, "--max-memory needs a size such as 4096, 512M or 4G, got '%s'", arg);
    kiln_set_max_memory((int64_t)v << shift);
    return 0;
}
