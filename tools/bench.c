/*
 * bench.c — `kiln bench`: compile a model, run it after a warm-up, and report the median,
 * p10 and p90 latency, throughput, peak arena memory and compile time; with --compare
 * unfused, the same with fusion off, after checking both builds give the same outputs;
 * with --profile, each kernel's time, share and memory throughput; with --trace, one
 * run's kernels as a Chrome trace. Timing is a benchmark's business, never a test's.
 */
#include "tools/cli.h"

#include "driver/model.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const usage_bench =
    "usage: kiln bench MODEL [--input NAME=FILE ...] [--batch N] [--threads N] [--backend jit|c]\n"
    "                  [--iterations N] [--warmup N] [--compare unfused] [--profile]\n"
    "                  [--trace FILE.json] [--json]\n"
    "\n"
    "Compiles MODEL, runs it --warmup times (default 3), then --iterations times (default 50),\n"
    "and reports the median, p10 and p90 latency, throughput, the arena's peak bytes and the\n"
    "compile time. Inputs not given are filled with seeded random values (floats uniform in\n"
    "[-1, 1), integers and bools 0).\n"
    "\n"
    "  --input NAME=FILE  feed input NAME from a .npy or ONNX TensorProto .pb file\n"
    "  --batch N          the size of a symbolic batch dimension (default 1); also gives\n"
    "                     samples/s\n"
    "  --threads N        threads for parallel loops (default: all processors)\n"
    "  --backend B        jit (the default) or c\n"
    "  --compare unfused  also build with fusion off (one kernel per node), check that both\n"
    "                     builds give the same outputs, and print the speedup\n"
    "  --profile          JIT: each kernel's median time, its share, its GFLOP/s (2 per\n"
    "                     multiply-add, 1 per element of other ops) and the GB/s of the\n"
    "                     bytes its buffers hold\n"
    "  --trace FILE.json  JIT: the kernels of one run as a Chrome trace (Perfetto,\n"
    "                     chrome://tracing)\n"
    "  --json             one JSON object on stdout instead of the table\n"
    "  --max-memory SIZE  refuse any tensor or arena the model sizes above SIZE\n"
    "  -h, --help         show this help\n";

/* Seeded values for an input nobody gave: floats uniform in [-1, 1), the rest zeros. */
static int random_input(const kiln_tensor *type, uint64_t seed, kiln_tensor **out, kiln_diag *d) {
    if (kiln_tensor_create(type->dtype, type->rank, type->dims, out, d))
        return model_error(d);
    uint64_t s = seed * 0x9e3779b97f4a7c15ull + 1;
    for (int64_t i = 0; i < kiln_tensor_count(*out); i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17; /* xorshift64 */
        double v = (double)(s >> 11) / 9007199254740992.0 * 2 - 1;
        if ((*out)->dtype == KILN_F32)
            ((float *)(*out)->data)[i] = (float)v;
        else if ((*out)->dtype == KILN_F64)
            ((double *)(*out)->data)[i] = v;
    }
    return 0;
}

static double percentile(const double *sorted, int n, double p) {
    double at = p * (n - 1);
    int lo = (int)at;
    return lo + 1 < n ? sorted[lo] + (at - lo) * (sorted[lo + 1] - sorted[lo]) : sorted[lo];
}

/* Whether fused and unfused outputs agree: to the bit, but for float sums that fusion
 * reorders (the attention kernel's online softmax, the division after P x V): there the
 * MatMul tolerance, 1e-5 + 1e-4 |unfused|. *worst receives the largest difference. */
static bool outputs_agree(const kiln_tensor *a, const kiln_tensor *b, double *worst) {
    if (a->dtype != b->dtype || kiln_tensor_bytes(a) != kiln_tensor_bytes(b))
        return false;
    if (!memcmp(a->data, b->data, kiln_tensor_bytes(a)))
        return true;
    if (!ir_dtype_is_float(a->dtype))
        return false;
    bool ok = true;
    for (int64_t i = 0; i < kiln_tensor_count(a); i++) {
        double x = ir_tensor_get(a, i), y = ir_tensor_get(b, i), diff = fabs(x - y);
        if (x != y && !(isnan(x) && isnan(y))) {
            ok &= diff <= 1e-5 + 1e-4 * fabs(y);
            *worst = diff > *worst || isnan(diff) ? diff : *worst;
        }
    }
    return ok;
}

static int64_t kernel_bytes(const lir_kernel *k) {
    int64_t b = 0;
    for (int p = 0; p < k->param_count; p++)
        b += k->params[p]->count * (int64_t)kiln_dtype_size(k->params[p]->dtype);
    return b;
}

static int write_trace(const char *path, const lir_module *lm, const double *begin, const double *end) {
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "kiln: %s: cannot write: %s\n", path, strerror(errno));
        return EXIT_MODEL;
    }
    fputs("{\"traceEvents\": [\n", f);
    int first = 0, written = 0; /* once kernels ran before the first run: not in the timed one */
    while (first < lm->kernel_count && lm->kernels[first]->once)
        first++;
    for (int k = first; k < lm->kernel_count; k++) {
        if (lm->kernels[k]->once)
            continue;
        fprintf(f, "%s  {\"name\": \"%s\", \"cat\": \"kernel\", \"ph\": \"X\", \"pid\": 1, \"tid\": 1, \"ts\": %.3f, "
                   "\"dur\": %.3f, \"args\": {\"bytes\": %lld, \"flops\": %lld}}",
                written++ ? ",\n" : "", lm->kernels[k]->name, (begin[k] - begin[first]) * 1e3, (end[k] - begin[k]) * 1e3,
                (long long)kernel_bytes(lm->kernels[k]), (long long)lm->kernels[k]->flops);
    }
    fputs("\n", f);
    fputs("], \"displayTimeUnit\": \"ms\"}\n", f);
    if (fclose(f)) {
        fprintf(stderr, "kiln: %s: cannot write: %s\n", path, strerror(errno));
        return EXIT_MODEL;
    }
    return 0;
}

int bench_one(const bench_opts *b, kiln_options opts, kiln_tensor **given, bench_result *r) {
    kiln_diag d = {0};
    kiln_model *m;
    *r = (bench_result){0};
    double t = elapsed_ms(NULL);
    ir_graph *g;
    if (b->trial ? driver_load_graph(b->path, &g, &d) || driver_model_tuned(g, &opts, b->trial, &m, &d)
                 : kiln_model_load(b->path, &opts, &m, &d))
        return model_error(&d);
    r->load_ms = elapsed_ms(&t);
    int nin = kiln_model_input_count(m), rc = 0;
    r->nout = kiln_model_output_count(m);
    kiln_tensor **in = calloc((size_t)nin + 1, sizeof *in);
    r->out = calloc((size_t)r->nout + 1, sizeof *r->out);
    double *times = calloc((size_t)b->iterations + 1, sizeof *times), *begin = NULL, *end = NULL, *per = NULL;
    if (!in || !r->out || !times) {
        fprintf(stderr, "kiln: out of memory\n");
        rc = EXIT_MODEL;
    }
    for (int i = 0; !rc && i < nin; i++)
        if (!(in[i] = given[i]))
            rc = random_input(&m->graph->inputs[i]->type, (uint64_t)i + 1, &in[i], &d);
    for (int run = -1 - b->warmup; !rc && run < b->iterations; run++) {
        if (run == 0 && m->jit && (b->profile || b->trace)) { /* profiling after the warm-up */
            int nk = m->lowered->kernel_count;
            begin = calloc((size_t)nk + 1, sizeof *begin), end = calloc((size_t)nk + 1, sizeof *end);
            per = calloc((size_t)nk * (size_t)b->iterations + 1, sizeof *per);
            if (!begin || !end || !per) {
                fprintf(stderr, "kiln: out of memory\n");
                rc = EXIT_MODEL;
                break;
            }
            cg_jit_set_timing(m->jit, begin, end);
        }
        for (int j = 0; j < r->nout; j++) {
            kiln_tensor_free(r->out[j]);
            r->out[j] = NULL;
        }
        t = elapsed_ms(NULL);
        if (kiln_model_run(m, (const kiln_tensor *const *)in, r->out, &d)) {
            rc = model_error(&d);
            break;
        }
        double ms = elapsed_ms(&t);
        if (run == -1 - b->warmup)
            r->first_ms = ms;
        if (run >= 0) {
            times[run] = ms;
            for (int k = 0; per && k < m->lowered->kernel_count; k++)
                per[(size_t)k * (size_t)b->iterations + (size_t)run] = end[k] - begin[k];
        }
    }
    if (!rc) {
        qsort(times, (size_t)b->iterations, sizeof *times, compare_double);
        r->median = percentile(times, b->iterations, 0.5);
        r->p10 = percentile(times, b->iterations, 0.1), r->p90 = percentile(times, b->iterations, 0.9);
        r->arena = m->lowered ? m->lowered->arena_bytes : 0;
        r->kernels = 0; /* the kernels each run calls: once kernels (packing constants) ran before */
        for (int k = 0; m->lowered && k < m->lowered->kernel_count; k++)
            r->kernels += !m->lowered->kernels[k]->once;
    }
    if (!rc && per) {
        int nk = r->kernel_count = m->lowered->kernel_count;
        r->kernel_ms = calloc((size_t)nk + 1, sizeof *r->kernel_ms);
        r->origin = calloc((size_t)nk + 1, sizeof *r->origin);
        r->origin_op = calloc((size_t)nk + 1, sizeof *r->origin_op);
        for (int k = 0; r->origin && r->origin_op && k < nk; k++) {
            const ir_node *o = m->lowered->kernels[k]->origin;
            r->origin[k] = o && !m->lowered->kernels[k]->once ? strdup(o->name) : NULL;
            r->origin_op[k] = o ? (int)o->op : -1;
        }
        for (int k = 0; r->kernel_ms && k < nk; k++) {
            double *row = per + (size_t)k * (size_t)b->iterations;
            qsort(row, (size_t)b->iterations, sizeof *row, compare_double);
            r->kernel_ms[k] = percentile(row, b->iterations, 0.5);
        }
        if (b->trace)
            rc = write_trace(b->trace, m->lowered, begin, end);
        if (!rc && b->profile && !b->json) {
            int *order = calloc((size_t)nk + 1, sizeof *order);
            for (int k = 0; order && k < nk; k++)
                order[k] = k;
            for (int i = 1; order && i < nk; i++) /* by time, longest first */
                for (int j = i; j > 0 && r->kernel_ms[order[j]] > r->kernel_ms[order[j - 1]]; j--) {
                    int x = order[j];
                    order[j] = order[j - 1], order[j - 1] = x;
                }
            double total = 0;
            for (int k = 0; k < nk; k++)
                total += r->kernel_ms[k];
            printf("  %-40s %10s %6s %9s %9s\n", "kernel", "ms", "share", "GFLOP/s", "GB/s");
            for (int i = 0; order && i < nk; i++) {
                int k = order[i];
                double ms = r->kernel_ms[k];
                const lir_kernel *kn = m->lowered->kernels[k];
                if (kn->once) /* ran before the first run (packing constants), not in any timed one */
                    continue;
                printf("  %-40.40s %10.4f %5.1f%% %9.2f %9.2f\n", kn->name, ms, total > 0 ? 100 * ms / total : 0,
                       ms > 0 ? (double)kn->flops / (ms * 1e6) : 0, ms > 0 ? (double)kernel_bytes(kn) / (ms * 1e6) : 0);
            }
            free(order);
        }
    }
    if (m->jit)
        cg_jit_set_timing(m->jit, NULL, NULL);
    for (int i = 0; in && i < nin; i++)
        if (in[i] != given[i])
            kiln_tensor_free(in[i]);
    free(in), free(times), free(begin), free(end), free(per);
    kiln_model_destroy(m);
    return rc;
}

void bench_free(bench_result *r) {
    for (int j = 0; r->out && j < r->nout; j++)
        kiln_tensor_free(r->out[j]);
    for (int k = 0; r->origin && k < r->kernel_count; k++)
        free(r->origin[k]);
    free(r->out), free(r->kernel_ms), free(r->origin), free(r->origin_op);
    *r = (bench_result){0};
}

static void print_result(const bench_opts *b, const char *what, const bench_result *r) {
    printf("%s: %d kernels, compile %.1f ms, arena %.1f KiB\n", what, r->kernels, r->load_ms, (double)r->arena / 1024);
    printf("  latency  median %.4f ms  p10 %.4f  p90 %.4f  (%d runs after %d warm-up; the first took %.3f ms)\n",
           r->median, r->p10, r->p90, b->iterations, b->warmup, r->first_ms);
    printf("  throughput %.1f runs/s", 1e3 / r->median);
    if (b->batch_given)
        printf(", %.1f samples/s (batch %lld)", 1e3 / r->median * (double)b->opts.batch, (long long)b->opts.batch);
    putchar('\n');
}

static void json_result(const char *key, const bench_result *r) {
    printf("\"%s\": {\"kernels\": %d, \"compile_ms\": %.3f, \"arena_bytes\": %lld, \"first_ms\": %.4f, \"median_ms\": %.5f, "
           "\"p10_ms\": %.5f, \"p90_ms\": %.5f}",
           key, r->kernels, r->load_ms, (long long)r->arena, r->first_ms, r->median, r->p10, r->p90);
}

int cmd_bench(int argc, char **argv) {
    bench_opts b = {.opts = {.backend = KILN_BACKEND_JIT}, .warmup = 3, .iterations = 50};
    bool compare = false;
    feed feeds[256];
    int nfeeds = 0;
    for (int i = 0; i < argc; i++) {
        char *end;
        if (is_help(argv[i])) {
            fputs(usage_bench, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--input")) {
            if (i + 1 >= argc)
                return usage_error(usage_bench, "%s needs NAME=FILE", argv[i]);
            int rc = cli_parse_feed(usage_bench, argv[++i], feeds, &nfeeds, ARRAY_LEN(feeds));
            if (rc)
                return rc;
        } else if (!strcmp(argv[i], "--batch")) {
            if (i + 1 >= argc || (b.opts.batch = strtoll(argv[++i], &end, 10)) < 1 || *end)
                return usage_error(usage_bench, "--batch needs a size >= 1%s", "");
        } else if (!strcmp(argv[i], "--threads")) {
            if (i + 1 >= argc || (b.opts.threads = (int)strtol(argv[++i], &end, 10)) < 1 || *end)
                return usage_error(usage_bench, "--threads needs a count >= 1%s", "");
        } else if (!strcmp(argv[i], "--iterations")) {
            if (i + 1 >= argc || (b.iterations = (int)strtol(argv[++i], &end, 10)) < 1 || *end || b.iterations > 1000000)
                return usage_error(usage_bench, "--iterations needs a count in [1, 1000000]%s", "");
        } else if (!strcmp(argv[i], "--warmup")) {
            if (i + 1 >= argc || (b.warmup = (int)strtol(argv[++i], &end, 10)) < 0 || *end || b.warmup > 1000000)
                return usage_error(usage_bench, "--warmup needs a count in [0, 1000000]%s", "");
        } else if (!strcmp(argv[i], "--backend")) {
            if (i + 1 >= argc || (strcmp(argv[i + 1], "jit") && strcmp(argv[i + 1], "c")))
                return usage_error(usage_bench, "--backend needs jit or c%s", "");
            b.opts.backend = !strcmp(argv[++i], "c") ? KILN_BACKEND_C : KILN_BACKEND_JIT;
        } else if (!strcmp(argv[i], "--compare")) {
            if (i + 1 >= argc || strcmp(argv[++i], "unfused"))
                return usage_error(usage_bench, "--compare takes 'unfused'%s", "");
            compare = true;
        } else if (!strcmp(argv[i], "--profile")) {
            b.profile = true;
        } else if (!strcmp(argv[i], "--trace")) {
            if (i + 1 >= argc)
                return usage_error(usage_bench, "%s needs a file name", argv[i]);
            b.trace = argv[++i];
        } else if (!strcmp(argv[i], "--json")) {
            b.json = true;
        } else if (!strcmp(argv[i], "--tuning")) {
            if (i + 1 >= argc)
                return usage_error(usage_bench, "%s needs a file name", argv[i]);
            b.opts.tuning = argv[++i];
        } else if (!strcmp(argv[i], "--max-memory")) {
            if (i + 1 >= argc)
                return usage_error(usage_bench, "%s needs a size", argv[i]);
            int rc = cli_max_memory(usage_bench, argv[++i]);
            if (rc)
                return rc;
        } else if (argv[i][0] == '-') {
            return usage_error(usage_bench, "unknown flag '%s'", argv[i]);
        } else if (!b.path) {
            b.path = argv[i];
        } else {
            return usage_error(usage_bench, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!b.path)
        return usage_error(usage_bench, "missing MODEL%s", "");
    b.batch_given = b.opts.batch > 0;
    if (!b.batch_given)
        b.opts.batch = 1; /* a symbolic batch dimension: compile for 1 */
    /* the inputs given, read once for both builds (a model loaded for their names) */
    kiln_diag d = {0};
    kiln_model *names;
    kiln_options plain = b.opts;
    plain.backend = KILN_BACKEND_INTERP;
    if (kiln_model_load(b.path, &plain, &names, &d))
        return model_error(&d);
    int nin = kiln_model_input_count(names);
    kiln_tensor **given = calloc((size_t)nin + 1, sizeof *given);
    int rc = given ? cli_read_inputs(names, b.path, feeds, nfeeds, given) : EXIT_MODEL;
    kiln_model_destroy(names);
    bench_result fused = {0}, unfused = {0};
    if (!rc && !b.json) {
        printf("%s: %s, ", b.path, b.opts.backend == KILN_BACKEND_C ? "C backend" : "LLVM JIT");
        if (b.opts.threads)
            printf("%d thread%s\n", b.opts.threads, b.opts.threads == 1 ? "" : "s");
        else
            printf("threads: all processors\n");
    }
    if (!rc)
        rc = bench_one(&b, b.opts, given, &fused);
    if (!rc && !b.json)
        print_result(&b, "fused", &fused);
    if (!rc && compare) {
        kiln_options o = b.opts;
        o.no_fuse = true;
        bench_opts bu = b;
        bu.trace = NULL;
        rc = bench_one(&bu, o, given, &unfused);
        double worst = 0;
        for (int j = 0; !rc && j < fused.nout; j++) /* both builds must agree before any time counts */
            if (!outputs_agree(fused.out[j], unfused.out[j], &worst)) {
                fprintf(stderr, "kiln: %s: output %d differs between the fused and unfused builds (largest difference %g)\n",
                        b.path, j, worst);
                rc = EXIT_MODEL;
            }
        if (!rc && !b.json) {
            print_result(&b, "unfused", &unfused);
            printf("fusion: %d -> %d kernels, %.2fx faster (median unfused / fused), ", unfused.kernels, fused.kernels,
                   unfused.median / fused.median);
            if (worst > 0)
                printf("outputs within %.3g (attention's sums in another order)\n", worst);
            else
                printf("same outputs\n");
        }
    }
    if (!rc && b.json) {
        printf("{\"model\": \"%s\", \"backend\": \"%s\", \"threads\": %d, ", b.path,
               b.opts.backend == KILN_BACKEND_C ? "c" : "jit", b.opts.threads);
        json_result("fused", &fused);
        if (compare) {
            fputs(", ", stdout);
            json_result("unfused", &unfused);
            printf(", \"speedup\": %.4f", unfused.median / fused.median);
        }
        puts("}");
    }
    bench_free(&fused), bench_free(&unfused);
    for (int i = 0; given && i < nin; i++)
        kiln_tensor_free(given[i]);
    free(given);
    return rc;
}
