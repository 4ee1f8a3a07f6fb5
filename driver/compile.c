/*
 * compile.c — ahead-of-time compilation: a model becomes libNAME.so and NAME.h. The graph
 * is specialized for one batch size, optimized and lowered; LLVM compiles the kernels and
 * embeds the weights in an object file for the target CPU, the C backend writes the
 * runner (the memory plan, the API of NAME.h), and the system C compiler ($CC, or cc)
 * links the two as `-O2 -fPIC -shared ... -lm` (and glibc's -lmvec, whose vector math the
 * AVX-512 kernels call, where the JIT found it). With the C backend alone, the kernels and
 * weights are C source too; --emit c stops there and keeps NAME.c and NAME.h.
 */
#include "driver/model.h"

#include "backend/c/cemit.h"
#include "backend/llvm/llvm_backend.h"
#include "passes/lower.h"
#include "passes/tuning.h"

#include <errno.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Runs argv, waiting for it; its status, or -1 if it could not start. */
static int run_program(char *const *argv) {
    pid_t pid;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0)
        return -1;
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static kiln_status write_sources(const lir_module *m, const char *dir, const char *name, bool external,
                                 kiln_diag *d) {
    char c_path[4096], h_path[4096];
    snprintf(c_path, sizeof c_path, "%s/%s.c", dir, name);
    snprintf(h_path, sizeof h_path, "%s/%s.h", dir, name);
    FILE *c = fopen(c_path, "w"), *h = fopen(h_path, "w");
    kiln_status st = c && h ? cemit_source(m, name, external, c, h, d)
                            : diag_error(d, LOC_NONE, KILN_ERR_IO, "cannot create %s: %s", c ? h_path : c_path, strerror(errno));
    if (c && fclose(c) != 0 && !st)
        st = diag_error(d, LOC_NONE, KILN_ERR_IO, "%s: write failed", c_path);
    if (h && fclose(h) != 0 && !st)
        st = diag_error(d, LOC_NONE, KILN_ERR_IO, "%s: write failed", h_path);
    return st;
}

/* Builds libNAME.so in a temporary folder: the C runner (and, with the C backend, the
 * kernels), the LLVM object (with the LLVM backend), compiled and linked by $CC. */
kiln_status driver_build_library(const lir_module *m, const driver_compile_options *o, kiln_diag *d) {
    char dir[] = "/tmp/kiln_compile_XXXXXX", c_path[4200], o_path[4200], h_src[4200], h_dst[4200], prefix[300];
    if (!mkdtemp(dir))
        return diag_error(d, LOC_NONE, KILN_ERR_IO, "cannot create a temporary folder: %s", strerror(errno));
    bool llvm = !o->c_backend;
    snprintf(c_path, sizeof c_path, "%s/%s.c", dir, o->name);
    snprintf(o_path, sizeof o_path, "%s/%s.o", dir, o->name);
    snprintf(h_src, sizeof h_src, "%s/%s.h", dir, o->name);
    snprintf(prefix, sizeof prefix, "%s_", o->name);
    cg_options cg = {.opt_level = 3, .target_cpu = o->target_cpu, .prefix = prefix};
    kiln_status st = write_sources(m, dir, o->name, llvm, d);
    if (!st && llvm)
        st = cg_emit_object(m, &cg, o_path, d);
    if (!st) {
        const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
        char *argv[] = {(char *)cc, "-O2", "-fPIC", "-shared", "-std=c11", "-fopenmp", "-o", (char *)o->out, c_path,
                        llvm ? o_path : "-lm", "-lm", llvm && cg_vector_math() ? "-lmvec" : NULL, NULL};
        int rc = run_program(argv);
        if (rc)
            st = diag_error(d, LOC_NONE, KILN_ERR_BACKEND, "%s failed (%d) building %s", cc, rc, o->out);
    }
    const char *slash = strrchr(o->out, '/'); /* the header goes beside the library */
    snprintf(h_dst, sizeof h_dst, "%.*s%s.h", slash ? (int)(slash - o->out + 1) : 0, o->out, o->name);
    if (!st && rename(h_src, h_dst) != 0) {
        char *cp[] = {"cp", h_src, h_dst, NULL};
        if (run_program(cp))
            st = diag_error(d, LOC_NONE, KILN_ERR_IO, "cannot write %s", h_dst);
    }
    unlink(c_path), unlink(o_path), unlink(h_src), rmdir(dir);
    return st;
}

kiln_status driver_compile(const char *model_path, const driver_compile_options *o, kiln_diag *d) {
    ir_graph *g;
    lir_module *m = NULL;
    kiln_status st = driver_load_graph(model_path, &g, d);
    if (st)
        return st;
    if (g->batch_name) /* one batch size per library */
        ir_graph_set_batch(g, o->batch > 0 ? o->batch : 1);
    kiln_tuning *tuning = NULL;
    if (o->tuning && (st = driver_read_tuning(o->tuning, &tuning, d))) {
        ir_graph_destroy(g);
        return st;
    }
    lower_options lo = driver_lower_options(o->target_cpu, o->no_fuse, 0);
    lo.tuning = tuning;
    if (!(st = driver_optimize_tuned(g, NULL, tuning, 0, d)) && !(st = lower_graph(g, &lo, &m, NULL, d))) {
        if (o->emit == DRIVER_EMIT_C) {
            st = write_sources(m, o->out, o->name, false, d);
        } else if (o->emit == DRIVER_EMIT_LLVM || o->emit == DRIVER_EMIT_OBJ) {
            char prefix[300];
            snprintf(prefix, sizeof prefix, "%s_", o->name);
            cg_options cg = {.opt_level = 3, .target_cpu = o->target_cpu, .prefix = prefix};
            if (o->emit == DRIVER_EMIT_OBJ) {
                st = cg_emit_object(m, &cg, o->out, d);
            } else {
                FILE *f = fopen(o->out, "w");
                st = f ? cg_print_llvm(m, &cg, f, d) : diag_error(d, LOC_NONE, KILN_ERR_IO, "%s: %s", o->out, strerror(errno));
                if (f && fclose(f) != 0 && !st)
                    st = diag_error(d, LOC_NONE, KILN_ERR_IO, "%s: write failed", o->out);
            }
        } else {
            st = driver_build_library(m, o, d);
        }
    }
    if (st)
        name_model(g, d);
    lir_module_destroy(m);
    ir_graph_destroy(g);
    tuning_free(tuning);
    return st;
}
