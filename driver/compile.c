/*
 * compile.c — ahead-of-time compilation: a model becomes libNAME.so and NAME.h (or the
 * C source NAME.c and NAME.h). The graph is specialized for one batch size, optimized,
 * lowered, emitted as C by the C backend, and built with the system C compiler ($CC, or
 * cc) as `-O2 -fPIC -shared ... -lm`.
 */
#include "driver/model.h"

#include "backend/c/cemit.h"
#include "passes/lower.h"

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

static kiln_status write_sources(const lir_module *m, const char *dir, const char *name, kiln_diag *d) {
    char c_path[4096], h_path[4096];
    snprintf(c_path, sizeof c_path, "%s/%s.c", dir, name);
    snprintf(h_path, sizeof h_path, "%s/%s.h", dir, name);
    FILE *c = fopen(c_path, "w"), *h = fopen(h_path, "w");
    kiln_status st = c && h ? cemit_source(m, name, c, h, d)
                            : diag_error(d, LOC_NONE, KILN_ERR_IO, "cannot create %s: %s", c ? h_path : c_path, strerror(errno));
    if (c && fclose(c) != 0 && !st)
        st = diag_error(d, LOC_NONE, KILN_ERR_IO, "%s: write failed", c_path);
    if (h && fclose(h) != 0 && !st)
        st = diag_error(d, LOC_NONE, KILN_ERR_IO, "%s: write failed", h_path);
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
    if (!(st = driver_optimize(g, NULL, d)) && !(st = lower_graph(g, &m, d))) {
        if (o->emit_c) {
            st = write_sources(m, o->out, o->name, d);
        } else {
            char dir[] = "/tmp/kiln_compile_XXXXXX", c_path[4200], h_src[4200], h_dst[4200];
            if (!mkdtemp(dir)) {
                st = diag_error(d, LOC_NONE, KILN_ERR_IO, "cannot create a temporary folder: %s", strerror(errno));
            } else if (!(st = write_sources(m, dir, o->name, d))) {
                snprintf(c_path, sizeof c_path, "%s/%s.c", dir, o->name);
                const char *cc = getenv("CC") && *getenv("CC") ? getenv("CC") : "cc";
                char *argv[] = {(char *)cc, "-O2", "-fPIC", "-shared", "-std=c11", "-o", (char *)o->out, c_path, "-lm", NULL};
                int rc = run_program(argv);
                if (rc)
                    st = diag_error(d, LOC_NONE, KILN_ERR_BACKEND, "%s failed (%d) building %s", cc, rc, o->out);
                /* the header goes beside the library */
                const char *slash = strrchr(o->out, '/');
                snprintf(h_src, sizeof h_src, "%s/%s.h", dir, o->name);
                snprintf(h_dst, sizeof h_dst, "%.*s%s.h", slash ? (int)(slash - o->out + 1) : 0, o->out, o->name);
                if (!st && rename(h_src, h_dst) != 0) {
                    char *cp[] = {"cp", h_src, h_dst, NULL};
                    if (run_program(cp))
                        st = diag_error(d, LOC_NONE, KILN_ERR_IO, "cannot write %s", h_dst);
                }
                unlink(c_path), unlink(h_src);
            }
            rmdir(dir);
        }
    }
    lir_module_destroy(m);
    ir_graph_destroy(g);
    return st;
}
