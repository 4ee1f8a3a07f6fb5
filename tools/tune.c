/*
 * tune.c — `kiln tune`: measures, per node, the schedule choices the compiler otherwise
 * makes by a cost rule (passes/tuning.h), and writes the faster ones to a tuning file
 * that run, bench and compile follow with --tuning.
 *
 * One knob at a time, each value is tried on every node at once (one build per value:
 * a model's convs need not be built one by one), and each node's kernels are timed in the
 * same runs (per-kernel medians, as bench --profile). A node keeps a value only where it
 * beat the cost rule's own build by TUNE_MARGIN: the rest of the file is noise otherwise.
 * The choices of one knob are fixed before the next is tried; then all of them are timed
 * together against none, node by node, and those no longer faster dropped. Last, the
 * model is timed with the file against without it, in alternating rounds.
 */
#include "tools/cli.h"

#include "driver/model.h"
#include "passes/tuning.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char *const usage_tune =
    "usage: kiln tune MODEL -o FILE [--input NAME=FILE ...] [--batch N] [--threads N]\n"
    "                 [--iterations N]\n"
    "\n"
    "Times the schedule choices that kiln otherwise makes by its cost rules, per node, on\n"
    "this machine at --threads, and writes to FILE those that measured faster (by 3% or\n"
    "more): whether a 3x3 conv runs as Winograd or as the direct blocked conv, and what a\n"
    "blocked conv's threads split (output rows or channel blocks). `kiln run`, `bench` and\n"
    "`compile` follow FILE with --tuning FILE. Prints each choice with its kernels' time\n"
    "before and after, and the model's median latency without and with the file.\n"
    "\n"
    "  -o FILE            the tuning file to write\n"
    "  --input NAME=FILE  feed input NAME from a .npy or ONNX TensorProto .pb file (others:\n"
    "                     seeded random values, as kiln bench)\n"
    "  --batch N          the size of a symbolic batch dimension (default 1)\n"
    "  --threads N        the threads the choices are for (default: all processors)\n"
    "  --iterations N     timed runs per build (default 50)\n"
    "  -h, --help         show this help\n";

#define TUNE_MARGIN 0.97 /* a value must take at most this share of the cost rule's time */

/* The time of node's kernels in r: those computing it, or (prefix) a node the layout pass
 * made from it ("NAME.nchwc", "NAME.nchwc_2", ...). -1 when none. */
static double node_ms(const bench_result *r, const char *node, bool prefix, char *shape, size_t cap) {
    double ms = -1;
    size_t n = strlen(node), used = 0;
    if (shape)
        shape[0] = '\0';
    for (int k = 0; k < r->kernel_count; k++) {
        const char *o = r->origin[k];
        if (!o || !(strcmp(o, node) == 0 || (prefix && !strncmp(o, node, n) && o[n] == '.')))
            continue;
        ms = (ms < 0 ? 0 : ms) + r->kernel_ms[k];
        if (shape && used + 2 < cap) /* which ops ran: tells a changed schedule from noise */
            used += (size_t)snprintf(shape + used, cap - used, "%d,", r->origin_op[k]);
    }
    return ms;
}

typedef struct tuner {
    bench_opts b;
    kiln_tensor **given;
    kiln_tuning *choices; /* what the file will hold */
} tuner;

/* Builds and times the model following `with` (NULL: the cost rules alone). */
static int measure(tuner *t, const kiln_tuning *with, bench_result *r) {
    t->b.trial = with;
    return bench_one(&t->b, t->b.opts, t->given, r);
}

/* Tries both values of knob on every node in `nodes` (or, when nodes is NULL, on the nodes
 * of kernels whose op is `op`), keeping in t->choices each value that beat the cost rule. */
static int tune_knob(tuner *t, tuning_knob knob, const char *const *nodes, int count, int op, bool prefix) {
    bench_result base = {0}, tried[2] = {{0}}; /* base: with the earlier knobs' choices */
    int rc = measure(t, t->choices, &base);
    for (int v = 0; !rc && v < 2; v++) {
        t->choices->all[knob] = v;
        rc = measure(t, t->choices, &tried[v]);
    }
    t->choices->all[knob] = TUNE_UNSET;
    kiln_diag d = {0};
    int total = nodes ? count : base.kernel_count;
    for (int i = 0; !rc && i < total; i++) {
        const char *node = nodes ? nodes[i] : base.origin[i];
        if (!node || (!nodes && base.origin_op[i] != op))
            continue;
        bool seen = false; /* a node of several kernels: once */
        for (int j = 0; !nodes && j < i && !seen; j++)
            seen = base.origin[j] && !strcmp(base.origin[j], node);
        if (seen)
            continue;
        char s[3][256];
        double was = node_ms(&base, node, prefix, s[2], sizeof s[2]);
        double ms[2] = {node_ms(&tried[0], node, prefix, s[0], sizeof s[0]), node_ms(&tried[1], node, prefix, s[1], sizeof s[1])};
        if (was <= 0 || ms[0] < 0 || ms[1] < 0 || (knob == TUNE_CONV && !strcmp(s[0], s[1])))
            continue; /* not built, or (a conv Winograd cannot compute) built the same either way */
        int best = ms[1] < ms[0];
        /* faster than the cost rule's build and than the other value's (the same schedule as
         * the cost rule's differs from it by noise only); a conv's kernels show which
         * algorithm the cost rule took: a choice equal to it is not written */
        if (ms[best] > TUNE_MARGIN * was || ms[best] > TUNE_MARGIN * ms[!best] || (knob == TUNE_CONV && !strcmp(s[best], s[2])))
            continue;
        if (tuning_set(t->choices, knob, node, best, &d))
            rc = model_error(&d);
        else
            printf("  %-10s %-9s %-48s %8.4f -> %8.4f ms\n", tuning_knob_name(knob), tuning_value_name(knob, best), node, was,
                   ms[best]);
    }
    bench_free(&base), bench_free(&tried[0]), bench_free(&tried[1]);
    return rc;
}

/* Each choice again, all of them in one build against none: a node's time in the trial
 * builds depends on its neighbours' choices too (the kernel before a direct conv left
 * other data in the caches than the one before it did when every conv was direct), so a
 * choice stays only where the node's kernels are still faster by the margin. */
static int confirm(tuner *t) {
    bench_result with = {0}, without = {0}; /* back to back: the machine's speed drifts */
    int rc = measure(t, t->choices, &with);
    if (!rc)
        rc = measure(t, NULL, &without);
    kiln_diag d = {0};
    for (int i = t->choices->count - 1; !rc && i >= 0; i--) {
        const tuning_choice *c = &t->choices->choices[i];
        bool prefix = c->knob == TUNE_CONV;
        double was = node_ms(&without, c->node, prefix, NULL, 0), now = node_ms(&with, c->node, prefix, NULL, 0);
        if (was < 0 || now < 0 || now <= TUNE_MARGIN * was)
            continue; /* kept (a conv_order node may exist only with its conv's choice) */
        printf("  dropped: %s %s %s (%.4f -> %.4f ms with every choice)\n", tuning_knob_name(c->knob),
               tuning_value_name(c->knob, c->value), c->node, was, now);
        if (tuning_set(t->choices, c->knob, c->node, TUNE_UNSET, &d))
            rc = model_error(&d);
    }
    bench_free(&with), bench_free(&without);
    return rc;
}

/* The model's median with and without the choices, in alternating builds (the machine's
 * speed drifts: 3 rounds each, the median of the medians). */
static int compare(tuner *t, double *without, double *with) {
    double a[3], b[3];
    int rc = 0;
    t->b.profile = false;
    for (int round = 0; !rc && round < 3; round++) {
        bench_result r = {0};
        if (!(rc = measure(t, NULL, &r)))
            a[round] = r.median;
        bench_free(&r);
        if (!rc && !(rc = measure(t, t->choices, &r)))
            b[round] = r.median;
        bench_free(&r);
    }
    if (!rc) {
        qsort(a, 3, sizeof *a, compare_double), qsort(b, 3, sizeof *b, compare_double);
        *without = a[1], *with = b[1];
    }
    return rc;
}

int cmd_tune(int argc, char **argv) {
    tuner t = {.b = {.opts = {.backend = KILN_BACKEND_JIT, .batch = 1}, .warmup = 3, .iterations = 50,
                     .profile = true, .json = true}};
    const char *out = NULL;
    feed feeds[256];
    int nfeeds = 0;
    for (int i = 0; i < argc; i++) {
        char *end;
        if (is_help(argv[i])) {
            fputs(usage_tune, stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o")) {
            if (i + 1 >= argc)
                return usage_error(usage_tune, "%s needs a file name", argv[i]);
            out = argv[++i];
        } else if (!strcmp(argv[i], "--input")) {
            if (i + 1 >= argc)
                return usage_error(usage_tune, "%s needs NAME=FILE", argv[i]);
            int rc = cli_parse_feed(usage_tune, argv[++i], feeds, &nfeeds, ARRAY_LEN(feeds));
            if (rc)
                return rc;
        } else if (!strcmp(argv[i], "--batch")) {
            if (i + 1 >= argc || (t.b.opts.batch = strtoll(argv[++i], &end, 10)) < 1 || *end)
                return usage_error(usage_tune, "--batch needs a size >= 1%s", "");
        } else if (!strcmp(argv[i], "--threads")) {
            if (i + 1 >= argc || (t.b.opts.threads = (int)strtol(argv[++i], &end, 10)) < 1 || *end)
                return usage_error(usage_tune, "--threads needs a count >= 1%s", "");
        } else if (!strcmp(argv[i], "--iterations")) {
            if (i + 1 >= argc || (t.b.iterations = (int)strtol(argv[++i], &end, 10)) < 1 || *end || t.b.iterations > 100000)
                return usage_error(usage_tune, "--iterations needs a count in [1, 100000]%s", "");
        } else if (argv[i][0] == '-') {
            return usage_error(usage_tune, "unknown flag '%s'", argv[i]);
        } else if (!t.b.path) {
            t.b.path = argv[i];
        } else {
            return usage_error(usage_tune, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!t.b.path || !out)
        return usage_error(usage_tune, "missing %s", t.b.path ? "-o FILE" : "MODEL");
    /* the original convs' names (what the conv knob is keyed by, gone once the layout pass
     * has run), then the same graph as an interpreter model to read the inputs for (once) */
    kiln_diag d = {0};
    ir_graph *g;
    if (driver_load_graph(t.b.path, &g, &d))
        return model_error(&d);
    int nconv = 0, rc = 0;
    char **convs = calloc((size_t)g->node_count + 1, sizeof *convs);
    for (int i = 0; convs && !rc && i < g->node_count; i++)
        if (g->nodes[i]->op == IR_OP_CONV && !(convs[nconv++] = strdup(g->nodes[i]->name)))
            rc = EXIT_MODEL;
    kiln_model *names = NULL;
    kiln_options plain = {.backend = KILN_BACKEND_INTERP};
    if (driver_model_from_graph(g, &plain, &names, &d)) {
        for (int i = 0; convs && i < nconv; i++)
            free(convs[i]);
        free(convs);
        return model_error(&d);
    }
    int nin = kiln_model_input_count(names);
    t.given = calloc((size_t)nin + 1, sizeof *t.given);
    t.choices = tuning_new();
    if (rc || !t.given || !convs || !t.choices) {
        fprintf(stderr, "kiln: out of memory\n");
        rc = EXIT_MODEL;
    }
    if (!rc)
        rc = cli_read_inputs(names, t.b.path, feeds, nfeeds, t.given);
    int threads = t.b.opts.threads ? t.b.opts.threads : kiln_rt_default_threads();
    double without = 0, with = 0;
    if (!rc)
        printf("%s: tuning for %d thread%s (%d timed runs per build)\n", t.b.path, threads, threads == 1 ? "" : "s",
               t.b.iterations);
    if (!rc && nconv)
        rc = tune_knob(&t, TUNE_CONV, (const char *const *)convs, nconv, -1, true);
    if (!rc && threads > 1) /* one thread splits nothing */
        rc = tune_knob(&t, TUNE_CONV_ORDER, NULL, 0, IR_OP_CONV_NCHWC, false);
    if (!rc && t.choices->count)
        rc = confirm(&t);
    if (!rc)
        rc = compare(&t, &without, &with);
    FILE *f = NULL;
    if (!rc && !(f = fopen(out, "w"))) {
        fprintf(stderr, "kiln: %s: cannot write: %s\n", out, strerror(errno));
        rc = EXIT_MODEL;
    }
    if (f) {
        char day[32];
        time_t now = time(NULL);
        strftime(day, sizeof day, "%Y-%m-%d", localtime(&now));
        fprintf(f, "# kiln tune %s, %d thread%s, %s: median %.4f ms without these choices, %.4f with\n", t.b.path, threads,
                threads == 1 ? "" : "s", day, without, with);
        tuning_write(t.choices, f);
        if (fclose(f)) {
            fprintf(stderr, "kiln: %s: cannot write: %s\n", out, strerror(errno));
            rc = EXIT_MODEL;
        }
    }
    if (!rc)
        printf("%d choice%s -> %s; median %.4f ms with the cost rules, %.4f with the file (%.3fx)\n", t.choices->count,
               t.choices->count == 1 ? "" : "s", out, without, with, with > 0 ? without / with : 0);
    for (int i = 0; t.given && i < nin; i++)
        kiln_tensor_free(t.given[i]);
    for (int i = 0; convs && i < nconv; i++)
        free(convs[i]);
    free(t.given), free(convs);
    tuning_free(t.choices);
    kiln_model_destroy(names);
    return rc;
}
