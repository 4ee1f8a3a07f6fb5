/*
 * kiln.c — the `kiln` command-line tool.
 *
 *   kiln run MODEL --input NAME=FILE.npy ... [--output-dir DIR]
 *   kiln dump MODEL [--after PASS] [--elide N]
 *   kiln check MODEL
 *
 * Exit status: 0 on success, 1 on a model or input error (one line on stderr naming the
 * file and the place), 2 on a usage error.
 */
#include "tools/cli.h"
#include "driver/model.h"
#include "ir/print.h"
#include "passes/lower.h"
#include "passes/tuning.h"
#include "passes/train_graph.h"
#include "backend/llvm/llvm_backend.h"
#include "ir/verify.h"
#include "frontend/onnx.h"
#include "frontend/txt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>


static const char *const usage_main =
    "usage: kiln COMMAND [ARGS]\n"
    "\n"
    "kiln is a deep-learning graph compiler for CPUs.\n"
    "\n"
    "commands:\n"
    "  run     run a model on .npy inputs and write its outputs as .npy files\n"
    "  dump    print a model in the .kiln text format, optionally after a pass\n"
    "  check   verify a model and list every problem found\n"
    "  compile build a model into libNAME.so with NAME.h, or C source\n"
    "  bench   time a model compiled (median, p10, p90), fused against unfused, per kernel\n"
    "  train   train a model on an IDX dataset, the whole step compiled as one graph\n"
    "  tune    time the schedule choices per node and write the faster ones to a file\n"
    "\n"
    "Run `kiln COMMAND --help` for a command's flags.\n";

static const char *const usage_run =
    "usage: kiln run MODEL --input NAME=FILE ... [--output-dir DIR] [--backend jit|interp|c]\n"
    "\n"
    "Runs MODEL (.kiln or .onnx).\n"
    "\n"
    "  --input NAME=FILE   feed graph input NAME from FILE: .npy, or an ONNX TensorProto .pb;\n"
    "                      once per graph input\n"
    "  --output-dir DIR    write DIR/OUTPUT.npy for each graph output (default: .);\n"
    "                      characters other than letters, digits, '_', '-' and '.' in an\n"
    "                      output's name become '_'\n"
    "  --backend B         jit (the default): compiled by LLVM for this CPU; interp: the\n"
    "                      reference interpreter; c: emitted as C and built by the system's cc\n"
    "  --threads N         JIT: threads for parallel loops (default: all processors)\n"
    "  --no-fuse           JIT and C: one kernel per node, to see what fusion buys\n"
    "  --tuning FILE       JIT and C: follow the schedule choices `kiln tune` wrote to FILE\n"
    "  --max-memory SIZE   refuse any tensor or arena the model sizes above SIZE (bytes, or\n"
    "                      with K, M, G; default: this machine's memory)\n"
    "  --time              print how long the first run took (for the JIT with a symbolic\n"
    "                      batch, that includes compiling) and the median of 10 more\n"
    "  -h, --help          show this help\n";

static const char *const usage_dump =
    "usage: kiln dump MODEL [--train] [--after PASS] [--elide N] [--loops | --llvm | --fusion [--dot FILE]]\n"
    "                 [--no-fuse] [--batch N] [--tuning FILE]\n"
    "\n"
    "Prints MODEL (.kiln or .onnx) in the .kiln text format.\n"
    "\n"
    "  --train        the training step kiln train compiles instead of the model: forward,\n"
    "                 loss, backward and update (AdamW, cross-entropy) in one graph, at\n"
    "                 --batch; its inputs are those of the C API's step (`kiln bench` times it)\n"
    "  --after PASS   run the pass pipeline up to PASS first: shape, fold, layout, dce, or all\n"
    "  --elide N      print inline data longer than N elements as <N values> (the output\n"
    "                 then does not parse back)\n"
    "  --loops        print the loop IR the graph lowers to (after all graph passes)\n"
    "  --llvm         print the optimized LLVM IR of those loops, for this CPU\n"
    "  --fusion       list each kernel with the nodes fused into it, and every node left\n"
    "                 alone with the reason\n"
    "  --dot FILE     with --fusion: write the graph to FILE for Graphviz, kernels as clusters\n"
    "  --no-fuse      lower one kernel per node\n"
    "  --batch N      the size of a symbolic batch dimension, for --loops/--llvm/--fusion\n"
    "                 (default 1)\n"
    "  --tuning FILE  follow the schedule choices `kiln tune` wrote to FILE\n"
    "  -h, --help     show this help\n";

static const char *const usage_compile =
    "usage: kiln compile MODEL -o OUT [--emit so|c|obj|llvm] [--backend llvm|c] [--name NAME]\n"
    "                    [--target-cpu CPU] [--batch N] [--tuning FILE]\n"
    "\n"
    "Compiles MODEL ahead of time. With --emit so (the default) OUT is the shared library to\n"
    "build (libNAME.so), and NAME.h is written beside it. The library embeds the weights and\n"
    "needs only libc and libm; NAME.h declares NAME_create, NAME_run, NAME_destroy,\n"
    "NAME_last_error and the tensor descriptions of the inputs and outputs.\n"
    "\n"
    "  -o OUT            the file to write; for --emit c, a folder for NAME.c and NAME.h\n"
    "  --emit KIND       so: the library; c: its C source (the C backend); obj: the LLVM\n"
    "                    object of the kernels and weights; llvm: their LLVM IR\n"
    "  --backend B       llvm (the default) or c: what compiles the kernels of the .so\n"
    "  --name NAME       the API prefix (default: from libNAME.so, or the model's file name)\n"
    "  --target-cpu CPU  an LLVM CPU name (x86-64-v3, znver4, ...); default: this machine's\n"
    "  --batch N         the size of the model's symbolic batch dimension (default 1)\n"
    "  --no-fuse         one kernel per node\n"
    "  --tuning FILE     follow the schedule choices `kiln tune` wrote to FILE\n"
    "  -h, --help        show this help\n";

static const char *const usage_check =
    "usage: kiln check MODEL\n"
    "\n"
    "Parses and verifies MODEL, lists every structural problem, then runs shape inference.\n"
    "Prints a summary and exits 0 if the model is sound.\n"
    "\n"
    "  -h, --help   show this help\n";




/* The output's file name: unsafe characters become '_', and no leading '.'. */
static void sanitize(const char *name, char *out, size_t cap) {
    size_t j = 0;
    for (size_t i = 0; name[i] && j + 1 < cap; i++) {
        char ch = name[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                  ch == '_' || ch == '-' || (ch == '.' && j > 0);
        out[j++] = ok ? ch : '_';
    }
    if (j == 0)
        out[j++] = '_';
    out[j] = 0;
}

/* mkdir -p: creates `dir` and any missing parents. */
static int make_dirs(const char *dir) {
    char path[4096];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return ENAMETOOLONG;
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0777) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    return mkdir(path, 0777) != 0 && errno != EEXIST ? errno : 0;
}




static int cmd_run(int argc, char **argv) {
    const char *model_path = NULL, *out_dir = ".";
    bool show_time = false;
    kiln_options opts = {.backend = KILN_BACKEND_JIT};
    feed feeds[256];
    int nfeeds = 0;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_run, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--input")) {
            if (i + 1 >= argc)
                return usage_error(usage_run, "%s needs NAME=FILE", argv[i]);
            int rc = cli_parse_feed(usage_run, argv[++i], feeds, &nfeeds, ARRAY_LEN(feeds));
            if (rc)
                return rc;
        } else if (!strcmp(argv[i], "--output-dir")) {
            if (i + 1 >= argc)
                return usage_error(usage_run, "%s needs a directory", argv[i]);
            out_dir = argv[++i];
        } else if (!strcmp(argv[i], "--backend")) {
            if (i + 1 >= argc)
                return usage_error(usage_run, "%s needs jit, interp or c", argv[i]);
            i++;
            if (!strcmp(argv[i], "jit"))
                opts.backend = KILN_BACKEND_JIT;
            else if (!strcmp(argv[i], "c"))
                opts.backend = KILN_BACKEND_C;
            else if (!strcmp(argv[i], "interp"))
                opts.backend = KILN_BACKEND_INTERP;
            else
                return usage_error(usage_run, "unknown backend '%s' (interp, jit, c)", argv[i]);
        } else if (!strcmp(argv[i], "--threads")) {
            char *end;
            if (i + 1 >= argc || (opts.threads = (int)strtol(argv[++i], &end, 10)) < 1 || *end)
                return usage_error(usage_run, "--threads needs a count >= 1%s", "");
        } else if (!strcmp(argv[i], "--no-fuse")) {
            opts.no_fuse = true;
        } else if (!strcmp(argv[i], "--tuning")) {
            if (i + 1 >= argc)
                return usage_error(usage_run, "%s needs a file name", argv[i]);
            opts.tuning = argv[++i];
        } else if (!strcmp(argv[i], "--max-memory")) {
            if (i + 1 >= argc)
                return usage_error(usage_run, "%s needs a size", argv[i]);
            int rc = cli_max_memory(usage_run, argv[++i]);
            if (rc)
                return rc;
        } else if (!strcmp(argv[i], "--time")) {
            show_time = true;
        } else if (argv[i][0] == '-') {
            return usage_error(usage_run, "unknown flag '%s'", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else {
            return usage_error(usage_run, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!model_path)
        return usage_error(usage_run, "missing MODEL%s", "");

    kiln_diag d = {0};
    kiln_model *m;
    if (kiln_model_load(model_path, &opts, &m, &d))
        return model_error(&d);
    int nin = kiln_model_input_count(m), nout = kiln_model_output_count(m), rc = 0;
    kiln_tensor **in = calloc((size_t)nin + 1, sizeof *in), **out = calloc((size_t)nout + 1, sizeof *out);
    if (!in || !out) {
        fprintf(stderr, "kiln: out of memory\n");
        rc = EXIT_MODEL;
        goto done;
    }
    if (!rc)
        rc = cli_read_inputs(m, model_path, feeds, nfeeds, in);
    for (int i = 0; i < nin && !rc; i++)
        if (!in[i]) {
            fprintf(stderr, "kiln: %s: input '%s' was not given (use --input %s=FILE.npy)\n",
                    model_path, kiln_model_input_name(m, i), kiln_model_input_name(m, i));
            rc = EXIT_MODEL;
        }
    double first = elapsed_ms(NULL);
    if (!rc && kiln_model_run(m, (const kiln_tensor *const *)in, out, &d))
        rc = model_error(&d);
    first = elapsed_ms(&first);
    if (!rc && show_time) {
        double times[10];
        for (int r = 0; r < 10 && !rc; r++) {
            kiln_tensor *again[64] = {0};
            times[r] = elapsed_ms(NULL);
            if (nout > 64 || kiln_model_run(m, (const kiln_tensor *const *)in, again, &d))
                rc = nout > 64 ? EXIT_MODEL : model_error(&d);
            times[r] = elapsed_ms(&times[r]);
            for (int j = 0; j < nout && j < 64; j++)
                kiln_tensor_free(again[j]);
        }
        qsort(times, 10, sizeof times[0], compare_double);
        if (!rc)
            printf("%s: %s: first run %.3f ms, then %.3f ms (median of 10)\n", model_path,
                   opts.backend == KILN_BACKEND_JIT ? "LLVM JIT" : opts.backend == KILN_BACKEND_C ? "C backend" : "reference interpreter", first,
                   (times[4] + times[5]) / 2);
    }
    int err = rc ? 0 : make_dirs(out_dir);
    if (err) {
        fprintf(stderr, "kiln: %s: cannot create the output directory: %s\n", out_dir, strerror(err));
        rc = EXIT_MODEL;
    }
    for (int j = 0; j < nout && !rc; j++) {
        char name[256], path[4096];
        sanitize(kiln_model_output_name(m, j), name, sizeof name);
        snprintf(path, sizeof path, "%s/%s.npy", out_dir, name);
        if (kiln_npy_write(path, out[j], &d))
            rc = model_error(&d);
        else
            printf("%s -> %s\n", kiln_model_output_name(m, j), path);
    }
done:
    for (int i = 0; in && i < nin; i++)
        kiln_tensor_free(in[i]);
    for (int j = 0; out && j < nout; j++)
        kiln_tensor_free(out[j]);
    free(in), free(out);
    kiln_model_destroy(m);
    return rc;
}

static int cmd_dump(int argc, char **argv) {
    const char *model_path = NULL, *after = NULL, *dot = NULL, *tuning_path = NULL;
    bool loops = false, llvm = false, fusion = false, no_fuse = false, train = false;
    int64_t batch = 1;
    ir_print_opts opts = {0};
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_dump, stdout);
            return 0;
        } else if (!strcmp(argv[i], "--after")) {
            if (i + 1 >= argc)
                return usage_error(usage_dump, "%s needs a pass name", argv[i]);
            after = argv[++i];
            if (strcmp(after, "all") && !pass_lookup(after))
                return usage_error(usage_dump, "unknown pass '%s' (shape, fold, layout, dce, all)", after);
        } else if (!strcmp(argv[i], "--train")) {
            train = true;
        } else if (!strcmp(argv[i], "--loops")) {
            loops = true;
        } else if (!strcmp(argv[i], "--llvm")) {
            loops = llvm = true;
        } else if (!strcmp(argv[i], "--fusion")) {
            loops = fusion = true;
        } else if (!strcmp(argv[i], "--no-fuse")) {
            no_fuse = true;
        } else if (!strcmp(argv[i], "--dot")) {
            if (i + 1 >= argc)
                return usage_error(usage_dump, "%s needs a file name", argv[i]);
            dot = argv[++i];
        } else if (!strcmp(argv[i], "--tuning")) {
            if (i + 1 >= argc)
                return usage_error(usage_dump, "%s needs a file name", argv[i]);
            tuning_path = argv[++i];
        } else if (!strcmp(argv[i], "--batch")) {
            char *end;
            if (i + 1 >= argc || (batch = strtoll(argv[++i], &end, 10)) < 1 || *end)
                return usage_error(usage_dump, "--batch needs a size >= 1%s", "");
        } else if (!strcmp(argv[i], "--elide")) {
            char *end;
            if (i + 1 >= argc || (opts.elide_over = strtoll(argv[++i], &end, 10)) < 1 || *end)
                return usage_error(usage_dump, "--elide needs a count >= 1%s", "");
        } else if (argv[i][0] == '-') {
            return usage_error(usage_dump, "unknown flag '%s'", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else {
            return usage_error(usage_dump, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!model_path)
        return usage_error(usage_dump, "missing MODEL%s", "");
    if (dot && !fusion)
        return usage_error(usage_dump, "--dot goes with --fusion%s", "");
    kiln_diag d = {0};
    ir_graph *g;
    if (driver_load_graph(model_path, &g, &d))
        return model_error(&d);
    if ((loops || train) && g->batch_name)
        ir_graph_set_batch(g, batch);
    if (train) {
        kiln_train_options to;
        kiln_train_options_default(&to);
        to.batch = batch;
        train_graph tg = {0};
        kiln_status st = driver_optimize(g, "shape", &d);
        if (!st)
            st = train_graph_build(g, &to, &tg, &d);
        train_graph_free(&tg);
        if (st) {
            ir_graph_destroy(g);
            return model_error(&d);
        }
    }
    kiln_tuning *tuning = NULL;
    if ((tuning_path && driver_read_tuning(tuning_path, &tuning, &d)) ||
        ((after || loops) && driver_optimize_tuned(g, after && strcmp(after, "all") ? after : NULL, tuning, 0, &d))) {
        tuning_free(tuning);
        ir_graph_destroy(g);
        return model_error(&d);
    }
    if (loops) {
        lir_module *m;
        fusion_plan plan;
        lower_options lo = driver_lower_options(NULL, no_fuse, 0);
        lo.tuning = tuning;
        if (lower_graph(g, &lo, &m, &plan, &d)) {
            tuning_free(tuning);
            ir_graph_destroy(g);
            return model_error(&d);
        }
        kiln_status st = KILN_OK;
        if (llvm) {
            st = cg_print_llvm(m, NULL, stdout, &d);
        } else if (fusion) {
            fuse_print(m, &plan, stdout);
            FILE *f = dot ? fopen(dot, "w") : NULL;
            if (dot && !f)
                st = diag_error(&d, LOC_NONE, KILN_ERR_IO, "%s: cannot write: %s", dot, strerror(errno));
            if (f) {
                fuse_dot(m, &plan, f);
                if (fclose(f))
                    st = diag_error(&d, LOC_NONE, KILN_ERR_IO, "%s: cannot write: %s", dot, strerror(errno));
            }
        } else {
            lir_print(m, stdout);
        }
        fuse_plan_free(&plan);
        lir_module_destroy(m);
        if (st) {
            tuning_free(tuning);
            ir_graph_destroy(g);
            return model_error(&d);
        }
    } else {
        ir_print(g, stdout, &opts);
    }
    tuning_free(tuning);
    ir_graph_destroy(g);
    return 0;
}

static void print_problem(void *ctx, const char *message) {
    int *count = ctx;
    (*count)++;
    fprintf(stderr, "kiln: %s\n", message);
}

static int cmd_check(int argc, char **argv) {
    const char *model_path = NULL;
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_check, stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            return usage_error(usage_check, "unknown flag '%s'", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else {
            return usage_error(usage_check, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!model_path)
        return usage_error(usage_check, "missing MODEL%s", "");
    kiln_diag d = {0};
    ir_graph *g;
    size_t len = strlen(model_path);
    kiln_status st;
    if (len >= 5 && !strcmp(model_path + len - 5, ".onnx"))
        st = onnx_import_file(model_path, &g, &d);
    else if (len >= 5 && !strcmp(model_path + len - 5, ".kiln"))
        st = txt_parse_file(model_path, &g, &d);
    else
        st = diag_error(&d, (kiln_loc){.file = model_path}, KILN_ERR_UNSUPPORTED,
                        "unknown model format (expected .kiln or .onnx)");
    if (st)
        return model_error(&d);
    int problems = 0;
    kiln_diag vd = {0};
    ir_verify(g, print_problem, &problems, &vd);
    if (!problems) {
        kiln_diag sd = {0};
        pass_ctx cx = {.d = &sd};
        if (pass_shape(g, &cx)) {
            problems++;
            fprintf(stderr, "kiln: %s\n", sd.message);
        }
    }
    if (!problems)
        printf("%s: ok: graph '%s', %d inputs, %d initializers, %d nodes, %d outputs\n",
               model_path, g->name, g->input_count, g->init_count, g->node_count, g->output_count);
    else
        fprintf(stderr, "kiln: %s: %d problem%s\n", model_path, problems, problems == 1 ? "" : "s");
    ir_graph_destroy(g);
    return problems ? EXIT_MODEL : 0;
}

/* A C identifier from `base`: letters, digits and '_'; not starting with a digit. */
static void c_identifier(const char *base, char *out, size_t cap) {
    size_t j = 0;
    for (size_t i = 0; base[i] && base[i] != '.' && j + 1 < cap; i++) {
        char ch = base[i];
        bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || ch == '_' || (j && ch >= '0' && ch <= '9');
        out[j++] = ok ? ch : '_';
    }
    if (!j)
        out[j++] = 'm';
    out[j] = 0;
}

static int cmd_compile(int argc, char **argv) {
    const char *model_path = NULL, *name = NULL;
    driver_compile_options o = {0};
    for (int i = 0; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(usage_compile, stdout);
            return 0;
        } else if (!strcmp(argv[i], "-o") || !strcmp(argv[i], "--emit") || !strcmp(argv[i], "--name") ||
                   !strcmp(argv[i], "--batch") || !strcmp(argv[i], "--backend") || !strcmp(argv[i], "--target-cpu") ||
                   !strcmp(argv[i], "--tuning")) {
            if (i + 1 >= argc)
                return usage_error(usage_compile, "%s needs a value", argv[i]);
            const char *flag = argv[i++];
            if (!strcmp(flag, "-o"))
                o.out = argv[i];
            else if (!strcmp(flag, "--name"))
                name = argv[i];
            else if (!strcmp(flag, "--target-cpu"))
                o.target_cpu = argv[i];
            else if (!strcmp(flag, "--tuning"))
                o.tuning = argv[i];
            else if (!strcmp(flag, "--backend")) {
                if (strcmp(argv[i], "llvm") && strcmp(argv[i], "c"))
                    return usage_error(usage_compile, "unknown backend '%s' (llvm, c)", argv[i]);
                o.c_backend = !strcmp(argv[i], "c");
            }
            else if (!strcmp(flag, "--batch")) {
                char *end;
                if ((o.batch = strtoll(argv[i], &end, 10)) < 1 || *end)
                    return usage_error(usage_compile, "--batch needs a size >= 1, got '%s'", argv[i]);
            } else if (!strcmp(argv[i], "c"))
                o.emit = DRIVER_EMIT_C;
            else if (!strcmp(argv[i], "obj"))
                o.emit = DRIVER_EMIT_OBJ;
            else if (!strcmp(argv[i], "llvm"))
                o.emit = DRIVER_EMIT_LLVM;
            else if (strcmp(argv[i], "so"))
                return usage_error(usage_compile, "unknown --emit kind '%s' (so, c, obj, llvm)", argv[i]);
        } else if (!strcmp(argv[i], "--no-fuse")) {
            o.no_fuse = true;
        } else if (argv[i][0] == '-') {
            return usage_error(usage_compile, "unknown flag '%s'", argv[i]);
        } else if (!model_path) {
            model_path = argv[i];
        } else {
            return usage_error(usage_compile, "unexpected argument '%s'", argv[i]);
        }
    }
    if (!model_path || !o.out)
        return usage_error(usage_compile, "missing %s", model_path ? "-o OUT" : "MODEL");
    char ident[128];
    const char *base = name;
    if (!base) { /* libNAME.so -> NAME; else the model's file name */
        const char *file = strrchr(o.out, '/') ? strrchr(o.out, '/') + 1 : o.out;
        if (o.emit == DRIVER_EMIT_SO && !strncmp(file, "lib", 3))
            base = file + 3;
        else
            base = strrchr(model_path, '/') ? strrchr(model_path, '/') + 1 : model_path;
    }
    c_identifier(base, ident, sizeof ident);
    if (name && strcmp(ident, name))
        return usage_error(usage_compile, "--name '%s' is not a C identifier", name);
    o.name = ident;
    kiln_diag d = {0};
    char folder[4096];
    snprintf(folder, sizeof folder, "%s", o.out);
    if (!(o.emit == DRIVER_EMIT_C)) /* the library's folder */
        *(strrchr(folder, '/') ? strrchr(folder, '/') : folder) = 0;
    int err = folder[0] ? make_dirs(folder) : 0;
    if (err) {
        fprintf(stderr, "kiln: %s: cannot create the folder: %s\n", folder, strerror(err));
        return EXIT_MODEL;
    }
    if (driver_compile(model_path, &o, &d))
        return model_error(&d);
    printf("%s -> %s%s%s\n", model_path, o.out, (o.emit == DRIVER_EMIT_C) ? "/" : "", (o.emit == DRIVER_EMIT_C) ? ident : "");
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(usage_main, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (is_help(cmd)) {
        fputs(usage_main, stdout);
        return 0;
    }
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 2, argv + 2);
    if (!strcmp(cmd, "dump"))
        return cmd_dump(argc - 2, argv + 2);
    if (!strcmp(cmd, "check"))
        return cmd_check(argc - 2, argv + 2);
    if (!strcmp(cmd, "compile"))
        return cmd_compile(argc - 2, argv + 2);
    if (!strcmp(cmd, "bench"))
        return cmd_bench(argc - 2, argv + 2);
    if (!strcmp(cmd, "train"))
        return cmd_train(argc - 2, argv + 2);
    if (!strcmp(cmd, "tune"))
        return cmd_tune(argc - 2, argv + 2);
    fprintf(stderr, "kiln: unknown command '%s'\n\n%s", cmd, usage_main);
    return EXIT_USAGE;
}
