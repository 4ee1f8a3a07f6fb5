/*
 * model.c — kiln.h's model API: load (parse, verify, optimize), inspect, run. The
 * reference interpreter is the only backend today; the JIT plugs in behind kiln_model_run.
 */
#include "driver/model.h"

#include "backend/interp/interp.h"
#include "frontend/onnx.h"
#include "frontend/txt.h"
#include "ir/verify.h"
#include "passes/lower.h"
#include "passes/tuning.h"

#include <dlfcn.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

kiln_status driver_load_graph(const char *path, ir_graph **out, kiln_diag *d) {
    *out = NULL;
    size_t len = strlen(path);
    kiln_status st;
    if (len >= 5 && !strcmp(path + len - 5, ".kiln"))
        st = txt_parse_file(path, out, d);
    else if (len >= 5 && !strcmp(path + len - 5, ".onnx"))
        st = onnx_import_file(path, out, d);
    else
        return diag_error(d, (kiln_loc){.file = path}, KILN_ERR_UNSUPPORTED,
                          "unknown model format (expected .kiln or .onnx)");
    if (!st && (st = ir_verify(*out, NULL, NULL, d))) {
        ir_graph_destroy(*out);
        *out = NULL;
    }
    return st;
}

/* Messages from passes and backends name the node; make sure they also name the file. */
void name_model(const ir_graph *g, kiln_diag *d) {
    if (!d->message[0] || !g->file || strstr(d->message, g->file))
        return;
    char msg[KILN_DIAG_MAX];
    memcpy(msg, d->message, sizeof msg);
    kiln_status st = d->status;
    d->status = KILN_OK;
    kiln_rt_error(d, st, "%s: %.*s", g->file, KILN_DIAG_MAX - 256, msg);
}

kiln_status driver_read_tuning(const char *path, kiln_tuning **out, kiln_diag *d) {
    unsigned char *text;
    size_t size;
    *out = NULL;
    kiln_status st = kiln_rt_read_file(path, (size_t)64 << 20, &text, &size, d);
    if (st)
        return st;
    st = tuning_parse((const char *)text, size, path, out, d);
    free(text);
    return st;
}

kiln_status driver_optimize(ir_graph *g, const char *stop_after, kiln_diag *d) {
    return driver_optimize_tuned(g, stop_after, NULL, 0, d);
}

kiln_status driver_optimize_tuned(ir_graph *g, const char *stop_after, const kiln_tuning *tuning, int threads,
                                  kiln_diag *d) {
    pass_ctx cx = {.d = d, .eval = interp_eval_node, .tuning = tuning, .threads = threads};
#ifdef NDEBUG
    bool verify = false;
#else
    bool verify = true;
#endif
    kiln_status st = pass_run_pipeline(g, &cx, stop_after, verify);
    if (st)
        name_model(g, d);
    return st;
}

/* The C backend in-process: the emitted C built into a library in a temporary folder
 * and loaded (the same library `kiln compile --backend c` writes). */
struct c_library {
    char dir[64], path[128];
    void *handle, *ctx;
    void (*destroy)(void *);
    int (*run)(void *, const void *const *, void *const *);
    const char *(*last_error)(void *);
};

static void c_library_close(struct c_library *l) {
    if (!l)
        return;
    if (l->ctx)
        l->destroy(l->ctx);
    if (l->handle)
        dlclose(l->handle);
    char header[160];
    snprintf(header, sizeof header, "%s/kiln_model.h", l->dir);
    unlink(l->path), unlink(header), rmdir(l->dir);
    free(l);
}

static kiln_status c_library_open(kiln_model *m, kiln_diag *d) {
    struct c_library *l = calloc(1, sizeof *l);
    if (!l)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    snprintf(l->dir, sizeof l->dir, "/tmp/kiln_c_XXXXXX");
    if (!mkdtemp(l->dir)) {
        free(l);
        return diag_error(d, LOC_NONE, KILN_ERR_IO, "cannot create a temporary folder");
    }
    snprintf(l->path, sizeof l->path, "%s/libkiln_model.so", l->dir);
    driver_compile_options o = {.out = l->path, .name = "kiln_model", .c_backend = true};
    kiln_status st = driver_build_library(m->lowered, &o, d);
    void *(*create)(void) = NULL;
    void (*set_threads)(void *, int) = NULL;
    if (!st && !(l->handle = dlopen(l->path, RTLD_NOW | RTLD_LOCAL)))
        st = diag_error(d, LOC_NONE, KILN_ERR_BACKEND, "cannot load the built library: %s", dlerror());
    if (!st) {
        *(void **)&create = dlsym(l->handle, "kiln_model_create");
        *(void **)&set_threads = dlsym(l->handle, "kiln_model_set_threads");
        *(void **)&l->destroy = dlsym(l->handle, "kiln_model_destroy");
        *(void **)&l->run = dlsym(l->handle, "kiln_model_run");
        *(void **)&l->last_error = dlsym(l->handle, "kiln_model_last_error");
        if (!create || !set_threads || !l->destroy || !l->run || !l->last_error || !(l->ctx = create()))
            st = diag_error(d, LOC_NONE, KILN_ERR_BACKEND, "the built library is incomplete or out of memory");
    }
    if (!st && m->threads > 0)
        set_threads(l->ctx, m->threads);
    if (st)
        c_library_close(l);
    else
        m->c = l;
    return st;
}

static kiln_status c_library_run(kiln_model *m, const kiln_tensor *const *inputs, kiln_tensor **outputs, kiln_diag *d) {
    const ir_graph *g = m->graph;
    const void *in[IR_VARIADIC];
    void *out[IR_VARIADIC];
    kiln_status st = KILN_OK;
    for (int i = 0; i < g->input_count && i < IR_VARIADIC; i++)
        in[i] = inputs[i]->data;
    for (int j = 0; j < g->output_count; j++)
        outputs[j] = NULL;
    for (int j = 0; !st && j < g->output_count && j < IR_VARIADIC; j++) {
        const kiln_tensor *t = &g->outputs[j]->type;
        if (!(st = kiln_rt_tensor_create_uninit(t->dtype, t->rank, t->dims, &outputs[j], d)))
            out[j] = outputs[j]->data;
    }
    if (!st && m->c->run(m->c->ctx, in, out))
        st = diag_error(d, (kiln_loc){.file = g->file}, KILN_ERR_INVALID, "%s", m->c->last_error(m->c->ctx));
    if (st)
        for (int j = 0; j < g->output_count; j++) {
            kiln_tensor_free(outputs[j]);
            outputs[j] = NULL;
        }
    return st;
}

/* Whether graph input v feeds an input whose value decides shapes (ir_op_input_static). */
static bool feeds_static_slot(const ir_graph *g, const ir_value *v) {
    for (int n = 0; n < g->node_count; n++)
        for (int k = 0; k < g->nodes[n]->input_count; k++)
            if (g->nodes[n]->inputs[k] == v && ir_op_input_static(g->nodes[n]->op, k))
                return true;
    return false;
}

static bool needs_run_inputs(const ir_graph *g) {
    for (int i = 0; i < g->input_count; i++)
        if (feeds_static_slot(g, g->inputs[i]))
            return true;
    return g->batch_name != NULL;
}

lower_options driver_lower_options(const char *target_cpu, bool no_fuse, int threads) {
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE); /* 0 or -1 where unknown */
    return (lower_options){.vector_bits = cg_vector_bits(target_cpu), .no_fuse = no_fuse, .threads = threads,
                           .l2_bytes = l2 >= 64 << 10 && l2 <= 64 << 20 ? l2 : 0};
}

/* The threads a model's runs use: those it was given, else every processor. The passes
 * (Winograd's cost rule), the lowering and the JIT all size their choices by it. */
static int run_threads(int given) {
    return given > 0 ? given : kiln_rt_default_threads();
}

/* Lowers the (static) graph and compiles it for the model's backend. */
static kiln_status compile(kiln_model *m, kiln_diag *d) {
    lower_options lo = driver_lower_options(NULL, m->no_fuse, run_threads(m->threads));
    lo.tuning = m->tuning;
    kiln_status st = lower_graph(m->graph, &lo, &m->lowered, NULL, d);
    if (!st && m->backend == KILN_BACKEND_C)
        st = c_library_open(m, d);
    else if (!st)
        st = cg_jit_compile(m->lowered, &(cg_options){.opt_level = 3, .compile_threads = m->compile_threads}, &m->jit, d);
    if (!st && m->threads > 0 && m->jit) /* the C backend's library was given them when opened */
        cg_jit_set_threads(m->jit, m->threads);
    if (st)
        name_model(m->graph, d);
    return st;
}

kiln_status driver_model_from_graph(ir_graph *g, const kiln_options *opts, kiln_model **out, kiln_diag *d) {
    kiln_tuning *own = NULL;
    *out = NULL;
    kiln_status st = opts && opts->tuning ? driver_read_tuning(opts->tuning, &own, d) : KILN_OK;
    if (st) {
        ir_graph_destroy(g);
        return st;
    }
    if ((st = driver_model_tuned(g, opts, own, out, d)))
        tuning_free(own);
    else
        (*out)->own_tuning = own;
    return st;
}

kiln_status driver_model_tuned(ir_graph *g, const kiln_options *opts, const kiln_tuning *tuning, kiln_model **out,
                               kiln_diag *d) {
    kiln_status st = KILN_OK;
    *out = NULL;
    if (opts && opts->batch < 0)
        st = diag_error(d, (kiln_loc){.file = g->file}, KILN_ERR_INVALID,
                        "batch size %lld is negative", (long long)opts->batch);
    else if (opts && opts->batch > 0)
        ir_graph_set_batch(g, opts->batch);
    if (!st)
        st = driver_optimize_tuned(g, NULL, tuning, run_threads(opts ? opts->threads : 0), d);
    if (st) {
        ir_graph_destroy(g);
        return st;
    }
    if (!(*out = calloc(1, sizeof **out))) {
        ir_graph_destroy(g);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    (*out)->graph = g;
    (*out)->backend = opts ? opts->backend : KILN_BACKEND_INTERP;
    (*out)->threads = opts ? opts->threads : 0;
    (*out)->compile_threads = opts ? opts->compile_threads : 0;
    (*out)->no_fuse = opts && opts->no_fuse;
    (*out)->tuning = tuning;
    if ((*out)->backend != KILN_BACKEND_INTERP && !needs_run_inputs(g) && (st = compile(*out, d))) {
        kiln_model_destroy(*out);
        *out = NULL;
    }
    return st;
}

kiln_status kiln_model_load(const char *path, const kiln_options *opts, kiln_model **out,
                            kiln_diag *d) {
    ir_graph *g;
    *out = NULL;
    kiln_status st = driver_load_graph(path, &g, d);
    return st ? st : driver_model_from_graph(g, opts, out, d);
}

kiln_status kiln_model_parse(const char *text, size_t len, const char *filename,
                             const kiln_options *opts, kiln_model **out, kiln_diag *d) {
    ir_graph *g;
    *out = NULL;
    kiln_status st = txt_parse(text, len, filename, &g, d);
    if (!st && (st = ir_verify(g, NULL, NULL, d)))
        ir_graph_destroy(g);
    return st ? st : driver_model_from_graph(g, opts, out, d);
}

void kiln_model_destroy(kiln_model *m) {
    if (!m)
        return;
    cg_jit_destroy(m->jit);
    c_library_close(m->c);
    lir_module_destroy(m->lowered);
    tuning_free(m->own_tuning);
    free(m->pinned);
    ir_graph_destroy(m->graph);
    free(m);
}

int kiln_model_input_count(const kiln_model *m) { return m->graph->input_count; }
int kiln_model_output_count(const kiln_model *m) { return m->graph->output_count; }

const char *kiln_model_input_name(const kiln_model *m, int i) {
    return i >= 0 && i < m->graph->input_count ? m->graph->inputs[i]->name : NULL;
}

const char *kiln_model_output_name(const kiln_model *m, int i) {
    return i >= 0 && i < m->graph->output_count ? m->graph->outputs[i]->name : NULL;
}

/* Compiles in input i's value where it decides shapes: a constant copy takes the input's place
 * at those uses, and m->pinned[i] remembers the value for the guard in kiln_model_run. */
static kiln_status pin_input(kiln_model *m, int i, const kiln_tensor *t, kiln_diag *d) {
    ir_graph *g = m->graph;
    ir_value *in = g->inputs[i], *c;
    kiln_tensor *copy;
    kiln_status st = ir_graph_new_tensor(g, t->dtype, t->rank, t->dims, &copy, d);
    if (!st)
        st = ir_graph_new_value(g, ir_graph_fresh_name(g, in->name), IR_VAL_NODE, in->loc, &c, d);
    if (!st) {
        memcpy(copy->data, t->data, kiln_tensor_bytes(t));
        st = ir_value_make_const(g, c, copy, d);
    }
    if (st)
        return st;
    m->pinned[i] = copy; /* the graph's arena keeps it as long as the model lives */
    for (int n = 0; n < g->node_count; n++)
        for (int k = 0; k < g->nodes[n]->input_count; k++)
            if (g->nodes[n]->inputs[k] == in && ir_op_input_static(g->nodes[n]->op, k))
                g->nodes[n]->inputs[k] = c;
    return KILN_OK;
}

/* JIT and C backends, first run: the graph is specialized for what the inputs fix (the symbolic
 * batch size; the values of inputs that decide shapes), then compiled. */
static kiln_status compile_for_inputs(kiln_model *m, const kiln_tensor *const *inputs, kiln_diag *d) {
    ir_graph *g = m->graph;
    kiln_status st = interp_check_inputs(g, inputs, d);
    if (st)
        return st;
    for (int i = 0; i < g->input_count && g->batch_name; i++)
        for (int k = 0; k < g->inputs[i]->type.rank; k++)
            if (g->inputs[i]->type.dims[k] == IR_DIM_BATCH && k < inputs[i]->rank) {
                ir_graph_set_batch(g, inputs[i]->dims[k]);
                break;
            }
    if (!m->pinned && !(m->pinned = calloc((size_t)g->input_count + 1, sizeof *m->pinned)))
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    for (int i = 0; i < g->input_count && !st; i++)
        if (!m->pinned[i] && feeds_static_slot(g, g->inputs[i]))
            st = pin_input(m, i, inputs[i], d);
    if (!st)
        st = driver_optimize_tuned(g, NULL, m->tuning, run_threads(m->threads), d);
    return st ? st : compile(m, d);
}

/* Later runs must bring the values the first run compiled in. */
static kiln_status check_pinned(const kiln_model *m, const kiln_tensor *const *inputs, kiln_diag *d) {
    const ir_graph *g = m->graph;
    for (int i = 0; m->pinned && i < g->input_count; i++) {
        const kiln_tensor *p = m->pinned[i], *t = inputs[i];
        if (p && (kiln_tensor_bytes(t) != kiln_tensor_bytes(p) || memcmp(t->data, p->data, kiln_tensor_bytes(p))))
            return diag_error(d, (kiln_loc){.file = g->file}, KILN_ERR_UNSUPPORTED,
                              "input '%s' decides shapes and was compiled in with the values of the first run; "
                              "this run gives others (use the interpreter backend for varying ones)",
                              g->inputs[i]->name);
    }
    return KILN_OK;
}

kiln_status kiln_model_run(kiln_model *m, const kiln_tensor *const *inputs, kiln_tensor **outputs,
                           kiln_diag *d) {
    if (m->backend == KILN_BACKEND_INTERP)
        return interp_run(m->graph, inputs, outputs, d);
    kiln_status st = m->jit || m->c ? KILN_OK : compile_for_inputs(m, inputs, d);
    if (!st)
        st = interp_check_inputs(m->graph, inputs, d);
    if (!st)
        st = check_pinned(m, inputs, d);
    if (st)
        return st;
    return m->c ? c_library_run(m, inputs, outputs, d) : cg_jit_run(m->jit, inputs, outputs, d);
}

kiln_status kiln_model_run_named(kiln_model *m, int count, const char *const *names,
                                 const kiln_tensor *const *inputs, kiln_tensor **outputs, kiln_diag *d) {
    const ir_graph *g = m->graph;
    const kiln_tensor **ordered = calloc((size_t)g->input_count + 1, sizeof *ordered);
    if (!ordered)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    kiln_status st = KILN_OK;
    kiln_loc loc = {.file = g->file}; /* messages name the model */
    for (int k = 0; k < count && !st; k++) {
        const char *name = names[k] ? names[k] : "(null)";
        int i = 0;
        while (i < g->input_count && strcmp(g->inputs[i]->name, name))
            i++;
        if (i == g->input_count)
            st = diag_error(d, loc, KILN_ERR_INVALID, "the model has no input named '%s'", name);
        else if (ordered[i])
            st = diag_error(d, loc, KILN_ERR_INVALID, "input '%s' is given twice", name);
        else if (!inputs[k])
            st = diag_error(d, loc, KILN_ERR_INVALID, "input '%s' is given no tensor", name);
        else
            ordered[i] = inputs[k];
    }
    for (int i = 0; i < g->input_count && !st; i++)
        if (!ordered[i])
            st = diag_error(d, loc, KILN_ERR_INVALID, "input '%s' is not given", g->inputs[i]->name);
    if (!st)
        st = kiln_model_run(m, ordered, outputs, d);
    free(ordered);
    return st;
}
