/*
 * train.c — the trainer behind kiln.h's kiln_trainer_*: a model's training step compiled
 * as one graph (passes/train_graph.c), its evaluation graph compiled beside it, and the
 * parameters and optimizer state the runtime keeps between steps.
 *
 * A step feeds [inputs, labels, lr, step_size, eps, seed, parameters, buffers, state] and takes back
 * [loss, prediction, new parameters, new state]; the new tensors replace the old ones
 * (no copy). Checkpoints are .npz archives written to a temporary file, synced and
 * renamed over the old one, so a crash leaves the previous checkpoint whole.
 */
#include "driver/model.h"
#include "frontend/onnx.h"
#include "passes/pass.h"
#include "passes/train_graph.h"
#include "runtime/rng.h"

#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct kiln_trainer {
    kiln_model *step, *eval;
    train_graph tg;
    kiln_train_options o;
    char **names;         /* parameter names (owned: the graphs may be rewritten) */
    kiln_tensor **params; /* current values */
    kiln_tensor **state;  /* param_count * state_per_param */
    char **buffer_names;
    kiln_tensor **buffers; /* BatchNormalization running statistics */
    int64_t steps;
    kiln_tensor *scalars[4]; /* lr, step_size, eps (f32), seed (i64) */
    char *model_path;
};

void kiln_train_options_default(kiln_train_options *o) {
    *o = (kiln_train_options){.optimizer = KILN_ADAMW, .loss = KILN_LOSS_CROSS_ENTROPY, .beta1 = 0.9,
                              .beta2 = 0.999, .eps = 1e-8, .batch = 64};
}

void kiln_trainer_destroy(kiln_trainer *t) {
    if (!t)
        return;
    for (int i = 0; i < t->tg.param_count; i++) {
        kiln_tensor_free(t->params ? t->params[i] : NULL);
        free(t->names ? t->names[i] : NULL);
        for (int k = 0; t->state && k < t->tg.state_per_param; k++)
            kiln_tensor_free(t->state[i * t->tg.state_per_param + k]);
    }
    for (int i = 0; i < t->tg.buffer_count; i++) {
        kiln_tensor_free(t->buffers ? t->buffers[i] : NULL);
        free(t->buffer_names ? t->buffer_names[i] : NULL);
    }
    for (int i = 0; i < 4; i++)
        kiln_tensor_free(t->scalars[i]);
    free(t->params), free(t->state), free(t->names), free(t->buffers), free(t->buffer_names), free(t->model_path);
    train_graph_free(&t->tg);
    kiln_model_destroy(t->step);
    kiln_model_destroy(t->eval);
    free(t);
}

/* Loads the model, fixes its batch and infers shapes: what both graphs start from. */
static kiln_status load_shaped(const char *path, int64_t batch, ir_graph **g, kiln_diag *d) {
    kiln_status st = driver_load_graph(path, g, d);
    if (st)
        return st;
    ir_graph_set_batch(*g, batch);
    if ((st = driver_optimize(*g, "shape", d))) {
        ir_graph_destroy(*g);
        *g = NULL;
    }
    return st;
}

kiln_status kiln_trainer_create(const char *path, const kiln_train_options *opts, kiln_trainer **out, kiln_diag *d) {
    *out = NULL;
    kiln_trainer *t = calloc(1, sizeof *t);
    if (!t)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    if (opts)
        t->o = *opts;
    else
        kiln_train_options_default(&t->o);
    if (t->o.batch <= 0) {
        free(t);
        return diag_error(d, (kiln_loc){.file = path}, KILN_ERR_INVALID, "the batch size must be positive");
    }
    kiln_options mo = {.backend = KILN_BACKEND_JIT, .threads = t->o.threads, .no_fuse = t->o.no_fuse};
    ir_graph *g = NULL, *e = NULL;
    train_graph eval_tg = {0};
    kiln_status st = load_shaped(path, t->o.batch, &g, d);
    if (!st)
        st = train_graph_build(g, &t->o, &t->tg, d);
    if (!st) {
        st = driver_model_from_graph(g, &mo, &t->step, d); /* takes g */
        g = NULL;
    }
    /* the evaluation graph: the forward one, its parameters fed like the step's */
    if (!st)
        st = load_shaped(path, t->o.batch, &e, d);
    if (!st)
        st = train_graph_params_as_inputs(e, &t->o, &eval_tg, d);
    if (!st) {
        for (int i = 1; i < e->output_count; i++)
            e->outputs[i]->is_output = false;
        e->output_count = 1;
        st = driver_model_from_graph(e, &mo, &t->eval, d);
        e = NULL;
    }
    ir_graph_destroy(g);
    ir_graph_destroy(e);
    train_graph_free(&eval_tg);
    int n = t->tg.param_count, s = t->tg.state_per_param, nb = t->tg.buffer_count;
    if (!st) {
        t->params = calloc((size_t)n + 1, sizeof *t->params);
        t->names = calloc((size_t)n + 1, sizeof *t->names);
        t->state = calloc((size_t)(n * s) + 1, sizeof *t->state);
        t->buffers = calloc((size_t)nb + 1, sizeof *t->buffers);
        t->buffer_names = calloc((size_t)nb + 1, sizeof *t->buffer_names);
        if (!t->params || !t->names || !t->state || !t->buffers || !t->buffer_names)
            st = diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; !st && i < nb; i++) {
        t->buffers[i] = t->tg.buffer_initial[i];
        t->tg.buffer_initial[i] = NULL;
        if (!(t->buffer_names[i] = strdup(t->tg.buffers[i]->name)))
            st = diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; !st && i < n; i++) {
        t->params[i] = t->tg.initial[i];
        t->tg.initial[i] = NULL;
        if (!(t->names[i] = strdup(t->tg.params[i]->name)))
            st = diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
        for (int k = 0; !st && k < s; k++) /* zeros, as PyTorch starts them */
            st = kiln_tensor_create(t->params[i]->dtype, t->params[i]->rank, t->params[i]->dims, &t->state[i * s + k], d);
    }
    for (int i = 0; !st && i < 4; i++)
        st = kiln_tensor_create(i < 3 ? KILN_F32 : KILN_I64, 0, NULL, &t->scalars[i], d);
    if (!st && !(t->model_path = strdup(path)))
        st = diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    if (st) {
        kiln_trainer_destroy(t);
        return st;
    }
    *out = t;
    return KILN_OK;
}

int kiln_trainer_param_count(const kiln_trainer *t) { return t->tg.param_count; }
const char *kiln_trainer_param_name(const kiln_trainer *t, int i) { return t->names[i]; }
const kiln_tensor *kiln_trainer_param(const kiln_trainer *t, int i) { return t->params[i]; }
int64_t kiln_trainer_steps(const kiln_trainer *t) { return t->steps; }

kiln_status kiln_trainer_step(kiln_trainer *t, const kiln_tensor *const *inputs, const kiln_tensor *labels, double lr,
                              double *loss, kiln_tensor **prediction, kiln_diag *d) {
    int fwd = t->tg.forward_inputs, n = t->tg.param_count, s = t->tg.state_per_param, nb = t->tg.buffer_count;
    int in_count = fwd + 5 + n + nb + n * s, out_count = 2 + n + n * s + nb;
    const kiln_tensor **in = calloc((size_t)in_count, sizeof *in);
    kiln_tensor **out = calloc((size_t)out_count, sizeof *out);
    if (!in || !out) {
        free(in), free(out);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    /* Adam's bias correction for this step (t counts from 1) */
    double step = (double)(t->steps + 1), bc1 = 1 - pow(t->o.beta1, step), bc2 = 1 - pow(t->o.beta2, step);
    bool adam = t->o.optimizer != KILN_SGD;
    ((float *)t->scalars[0]->data)[0] = (float)lr;
    ((float *)t->scalars[1]->data)[0] = (float)(adam ? lr * sqrt(bc2) / bc1 : lr);
    ((float *)t->scalars[2]->data)[0] = (float)(adam ? t->o.eps * sqrt(bc2) : t->o.eps);
    /* the step's key: checkpoints keep the step count, so a resumed run draws the same masks */
    ((int64_t *)t->scalars[3]->data)[0] = (int64_t)kiln_rng_bits(t->o.seed, (uint64_t)t->steps);
    int k = 0;
    for (int i = 0; i < fwd; i++)
        in[k++] = inputs[i];
    in[k++] = labels;
    for (int i = 0; i < 4; i++)
        in[k++] = t->scalars[i];
    for (int i = 0; i < n; i++)
        in[k++] = t->params[i];
    for (int i = 0; i < nb; i++)
        in[k++] = t->buffers[i];
    for (int i = 0; i < n * s; i++)
        in[k++] = t->state[i];
    kiln_status st = kiln_model_run(t->step, in, out, d);
    if (!st) {
        if (loss)
            *loss = (double)((float *)out[0]->data)[0];
        if (prediction)
            *prediction = out[1], out[1] = NULL;
        for (int i = 0; i < n; i++) {
            kiln_tensor_free(t->params[i]);
            t->params[i] = out[2 + i], out[2 + i] = NULL;
        }
        for (int i = 0; i < n * s; i++) {
            kiln_tensor_free(t->state[i]);
            t->state[i] = out[2 + n + i], out[2 + n + i] = NULL;
        }
        for (int i = 0; i < nb; i++) {
            kiln_tensor_free(t->buffers[i]);
            t->buffers[i] = out[2 + n + n * s + i], out[2 + n + n * s + i] = NULL;
        }
        t->steps++;
    }
    for (int i = 0; i < out_count; i++)
        kiln_tensor_free(out[i]);
    free(in), free(out);
    return st;
}

kiln_status kiln_trainer_predict(kiln_trainer *t, const kiln_tensor *const *inputs, kiln_tensor **prediction,
                                 kiln_diag *d) {
    int fwd = t->tg.forward_inputs, n = t->tg.param_count, nb = t->tg.buffer_count;
    const kiln_tensor **in = calloc((size_t)(fwd + n + nb), sizeof *in);
    if (!in)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    for (int i = 0; i < fwd; i++)
        in[i] = inputs[i];
    for (int i = 0; i < n; i++)
        in[fwd + i] = t->params[i];
    for (int i = 0; i < nb; i++)
        in[fwd + n + i] = t->buffers[i];
    kiln_status st = kiln_model_run(t->eval, in, prediction, d);
    free(in);
    return st;
}

/* ---- checkpoints ----------------------------------------------------------------------- */

static kiln_status sync_rename(const char *tmp, const char *path, kiln_diag *d) {
    int fd = open(tmp, O_RDONLY | O_CLOEXEC);
    bool ok = fd >= 0 && fsync(fd) == 0;
    if (fd >= 0)
        close(fd);
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return diag_error(d, LOC_NONE, KILN_ERR_IO, "%s: cannot write the checkpoint", path);
    }
    /* the rename itself is durable once the folder is synced */
    char dir[4096];
    const char *slash = strrchr(path, '/');
    snprintf(dir, sizeof dir, "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
    int dfd = open(dir[0] ? dir : "/", O_RDONLY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return KILN_OK;
}

kiln_status kiln_trainer_save(const kiln_trainer *t, const char *path, int meta_count, const int64_t *meta,
                              kiln_diag *d) {
    int n = t->tg.param_count, s = t->tg.state_per_param, nb = t->tg.buffer_count, count = n + n * s + nb + 1;
    const char **keys = calloc((size_t)count, sizeof *keys);
    const kiln_tensor **arrays = calloc((size_t)count, sizeof *arrays);
    char **owned = calloc((size_t)count, sizeof *owned);
    kiln_tensor *m = NULL;
    int64_t mdims[1] = {2 + meta_count};
    kiln_status st = !keys || !arrays || !owned ? diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory")
                                                : kiln_tensor_create(KILN_I64, 1, mdims, &m, d);
    for (int i = 0; !st && i < n; i++) {
        keys[i] = t->names[i], arrays[i] = t->params[i];
        for (int k = 0; k < s; k++) {
            int at = n + i * s + k;
            size_t len = strlen(t->names[i]) + 16;
            if (!(owned[at] = malloc(len))) {
                st = diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
                break;
            }
            snprintf(owned[at], len, "%s.state%d", t->names[i], k);
            keys[at] = owned[at], arrays[at] = t->state[i * s + k];
        }
    }
    for (int i = 0; !st && i < nb; i++)
        keys[n + n * s + i] = t->buffer_names[i], arrays[n + n * s + i] = t->buffers[i];
    char tmp[4200];
    if (!st) {
        int64_t *md = m->data;
        md[0] = 1; /* the format's version */
        md[1] = t->steps;
        for (int i = 0; i < meta_count; i++)
            md[2 + i] = meta[i];
        keys[count - 1] = "kiln.meta", arrays[count - 1] = m;
        snprintf(tmp, sizeof tmp, "%s.tmp", path);
        st = kiln_npz_write(tmp, count, keys, arrays, d);
        if (st)
            unlink(tmp);
        else
            st = sync_rename(tmp, path, d);
    }
    for (int i = 0; owned && i < count; i++)
        free(owned[i]);
    free(owned), free(keys), free(arrays);
    kiln_tensor_free(m);
    return st;
}

/* Reads one array of the checkpoint, which must have the type of `like`. */
static kiln_status load_like(const char *path, const char *key, const kiln_tensor *like, kiln_tensor **out,
                             kiln_diag *d) {
    kiln_status st = kiln_npz_read(path, key, out, d);
    if (st)
        return st;
    bool same = (*out)->dtype == like->dtype && (*out)->rank == like->rank &&
                !memcmp((*out)->dims, like->dims, sizeof(int64_t) * (size_t)like->rank);
    if (!same) {
        kiln_tensor_free(*out);
        *out = NULL;
        return diag_error(d, LOC_NONE, KILN_ERR_INVALID, "%s: '%s' has another type than the model's", path, key);
    }
    return KILN_OK;
}

kiln_status kiln_trainer_load(kiln_trainer *t, const char *path, int meta_cap, int64_t *meta, int *meta_count,
                              kiln_diag *d) {
    int n = t->tg.param_count, s = t->tg.state_per_param, nb = t->tg.buffer_count;
    kiln_tensor **fresh = calloc((size_t)(n + n * s + nb) + 1, sizeof *fresh), *m = NULL;
    if (!fresh)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    /* everything is read and checked before anything is replaced */
    kiln_status st = kiln_npz_read(path, "kiln.meta", &m, d);
    if (!st && (m->dtype != KILN_I64 || m->rank != 1 || m->dims[0] < 2 || ((int64_t *)m->data)[0] != 1))
        st = diag_error(d, LOC_NONE, KILN_ERR_INVALID, "%s: not a kiln checkpoint of a known version", path);
    for (int i = 0; !st && i < n; i++) {
        st = load_like(path, t->names[i], t->params[i], &fresh[i], d);
        for (int k = 0; !st && k < s; k++) {
            char key[1024];
            snprintf(key, sizeof key, "%s.state%d", t->names[i], k);
            st = load_like(path, key, t->state[i * s + k], &fresh[n + i * s + k], d);
        }
    }
    for (int i = 0; !st && i < nb; i++)
        st = load_like(path, t->buffer_names[i], t->buffers[i], &fresh[n + n * s + i], d);
    if (!st) {
        for (int i = 0; i < nb; i++) {
            kiln_tensor_free(t->buffers[i]);
            t->buffers[i] = fresh[n + n * s + i];
        }
        for (int i = 0; i < n; i++) {
            kiln_tensor_free(t->params[i]);
            t->params[i] = fresh[i];
            for (int k = 0; k < s; k++) {
                kiln_tensor_free(t->state[i * s + k]);
                t->state[i * s + k] = fresh[n + i * s + k];
            }
        }
        const int64_t *md = m->data;
        t->steps = md[1];
        int have = (int)m->dims[0] - 2;
        if (meta_count)
            *meta_count = have < meta_cap ? have : meta_cap;
        for (int i = 0; meta && i < have && i < meta_cap; i++)
            meta[i] = md[2 + i];
    } else {
        for (int i = 0; i < n + n * s + nb; i++)
            kiln_tensor_free(fresh[i]);
    }
    kiln_tensor_free(m);
    free(fresh);
    return st;
}

kiln_status kiln_trainer_export_onnx(const kiln_trainer *t, const char *path, kiln_diag *d) {
    ir_graph *g;
    kiln_status st = driver_load_graph(t->model_path, &g, d);
    if (st)
        return st;
    /* the model as loaded, its parameters and running statistics replaced by the trained
     * values; the batch stays symbolic */
    for (int i = 0; !st && i < g->init_count; i++) {
        ir_value *v = g->inits[i];
        const kiln_tensor *now = NULL;
        for (int k = 0; !now && k < t->tg.param_count; k++)
            if (!strcmp(t->names[k], v->name))
                now = t->params[k];
        for (int k = 0; !now && k < t->tg.buffer_count; k++)
            if (!strcmp(t->buffer_names[k], v->name))
                now = t->buffers[k];
        if (now && kiln_tensor_bytes(now) == kiln_tensor_bytes(v->init))
            memcpy(v->init->data, now->data, kiln_tensor_bytes(now));
    }
    for (int i = 1; i < g->output_count; i++)
        g->outputs[i]->is_output = false;
    if (g->output_count > 1)
        g->output_count = 1;
    if (!(st = driver_optimize(g, "shape", d)))
        st = onnx_export_file(g, path, d);
    ir_graph_destroy(g);
    return st;
}
