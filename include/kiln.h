/*
 * kiln.h — the public C API of kiln, the only header a host application includes.
 *
 * Load a model (.kiln text today; ONNX and compiled backends plug in behind the same
 * calls), inspect its inputs and outputs, run it on tensors, read and write .npy/.npz.
 * Every fallible call returns a kiln_status and fills a caller-owned kiln_diag with a
 * one-line message naming the file and the node or field it is about. Nothing here
 * calls exit() or abort() on bad input.
 */
#ifndef KILN_KILN_H
#define KILN_KILN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum kiln_status {
    KILN_OK = 0,
    KILN_ERR_INVALID,     /* malformed model or input */
    KILN_ERR_UNSUPPORTED, /* valid, but kiln does not handle it (yet) */
    KILN_ERR_SHAPE,       /* shapes or dtypes do not agree */
    KILN_ERR_OOM,         /* an allocation failed or would pass the memory cap */
    KILN_ERR_IO,          /* a file could not be read or written */
    KILN_ERR_BACKEND,
    KILN_ERR_INTERNAL,
} kiln_status;

/* Element types. The numbering is kiln's own; it is not ONNX's. */
typedef enum kiln_dtype {
    KILN_DTYPE_INVALID = 0,
    KILN_F32,
    KILN_F64,
    KILN_I64,
    KILN_I32,
    KILN_I8,
    KILN_U8,
    KILN_BOOL, /* one byte, 0 or 1 */
    KILN_F16,  /* IEEE binary16 */
    KILN_BF16, /* bfloat16: the upper half of an f32 */
    KILN_I16,
    KILN_U16,
    KILN_U32,
    KILN_U64,
    KILN_DTYPE_COUNT
} kiln_dtype;

#define KILN_MAX_RANK 8
#define KILN_DIAG_MAX 1024

/* A diagnostic: the first error of a call. Caller-owned, usually on the stack. */
typedef struct kiln_diag {
    kiln_status status;
    char message[KILN_DIAG_MAX];
} kiln_diag;

/* A dense, C-order tensor. `data` holds dims[0]*...*dims[rank-1] elements of `dtype`. */
typedef struct kiln_tensor {
    kiln_dtype dtype;
    int rank;                     /* 0 for a scalar */
    int64_t dims[KILN_MAX_RANK];  /* in elements */
    void *data;
} kiln_tensor;

const char *kiln_status_name(kiln_status st);
const char *kiln_dtype_name(kiln_dtype dt); /* "f32", "i64", ... ; "invalid" if unknown */
size_t kiln_dtype_size(kiln_dtype dt);      /* bytes per element; 0 if invalid */

/* Checked arithmetic for sizes that come from models or files. */
bool kiln_mul_ok(int64_t a, int64_t b, int64_t *out);
/* Element count of a shape; false if a dim is negative or the product overflows. */
bool kiln_shape_count(int rank, const int64_t *dims, int64_t *out);

/* The cap on any one allocation a model's sizes decide (tensors, constants, the compiled
 * model's arena): by default this machine's physical memory (at most 64 GiB); a caller
 * lowers it for untrusted models (kiln --max-memory). Process-wide. */
#define KILN_TENSOR_MAX_BYTES ((int64_t)1 << 36)
void kiln_set_max_memory(int64_t bytes); /* <= 0: back to the default */
int64_t kiln_max_memory(void);
/* Allocates a tensor and its zeroed data in one block, the data aligned to 64 bytes (a
 * cache line, an AVX-512 vector); caller frees with kiln_tensor_free. Refuses shapes whose
 * byte size overflows or passes kiln_max_memory(). */
kiln_status kiln_tensor_create(kiln_dtype dt, int rank, const int64_t *dims, kiln_tensor **out,
                               kiln_diag *diag);
void kiln_tensor_free(kiln_tensor *t); /* NULL is a no-op */
int64_t kiln_tensor_count(const kiln_tensor *t);
size_t kiln_tensor_bytes(const kiln_tensor *t);

/* .npy: C-order, little-endian; every kiln dtype but bf16 (numpy has none). Caller frees *out. */
kiln_status kiln_npy_read(const char *path, kiln_tensor **out, kiln_diag *diag);
kiln_status kiln_npy_read_mem(const void *bytes, size_t size, const char *what, kiln_tensor **out,
                              kiln_diag *diag);
kiln_status kiln_npy_write(const char *path, const kiln_tensor *t, kiln_diag *diag);
/* .npz (stored or deflated members): reads the array named `key` (without ".npy"). */
kiln_status kiln_npz_read(const char *path, const char *key, kiln_tensor **out, kiln_diag *diag);
kiln_status kiln_npz_read_mem(const void *bytes, size_t size, const char *path, const char *key,
                              kiln_tensor **out, kiln_diag *diag);
/* IDX (MNIST's format), plain or gzipped. */
kiln_status kiln_idx_read(const char *path, kiln_tensor **out, kiln_diag *diag);
/* Writes an uncompressed .npz of `count` arrays, as numpy.savez does. */
kiln_status kiln_npz_write(const char *path, int count, const char *const *keys,
                           const kiln_tensor *const *tensors, kiln_diag *diag);

/* ---- models ------------------------------------------------------------------------- */

typedef struct kiln_model kiln_model;

typedef enum kiln_backend {
    KILN_BACKEND_INTERP = 0, /* the reference interpreter */
    KILN_BACKEND_JIT,        /* loop IR compiled in-process by LLVM for the host CPU */
    KILN_BACKEND_C,          /* loop IR emitted as C, built by the system's cc, loaded */
} kiln_backend;

typedef struct kiln_options {
    kiln_backend backend;
    int threads;   /* JIT: threads for parallel loops; 0: as many as there are processors */
    int64_t batch; /* > 0: specialize the symbolic batch dimension to this size at load time;
                      0: keep it symbolic and take it from the inputs at each run */
    bool no_fuse;  /* JIT and C: one kernel per node (to measure what fusion buys) */
    const char *tuning; /* JIT and C: a file `kiln tune` wrote, whose per-node schedule
                           choices the compiler follows (NULL: its cost rules decide) */
    int compile_threads; /* JIT: threads that compile the kernels (LLVM), whatever `threads`
                            is; 0: as many as there are processors */
} kiln_options;

/* Loads a .kiln model (weights referenced from .npy/.npz beside it), verifies it and infers
 * shapes. `opts` may be NULL. On failure *out is NULL. Free with kiln_model_destroy. */
kiln_status kiln_model_load(const char *path, const kiln_options *opts, kiln_model **out,
                            kiln_diag *diag);
kiln_status kiln_model_parse(const char *text, size_t len, const char *filename,
                             const kiln_options *opts, kiln_model **out, kiln_diag *diag);
void kiln_model_destroy(kiln_model *m); /* NULL is a no-op */

int kiln_model_input_count(const kiln_model *m);
int kiln_model_output_count(const kiln_model *m);
const char *kiln_model_input_name(const kiln_model *m, int i);  /* borrowed: valid while m lives */
const char *kiln_model_output_name(const kiln_model *m, int i); /* borrowed */

/* Runs the model on the backend it was loaded for. inputs[i] is graph input i. On success,
 * outputs[j] receives graph output j, which the caller frees with kiln_tensor_free. With
 * the JIT backend and a symbolic batch dimension, the first run compiles for its inputs'
 * batch size, and later runs must use the same one. */
kiln_status kiln_model_run(kiln_model *m, const kiln_tensor *const *inputs, kiln_tensor **outputs,
                           kiln_diag *diag);

/* kiln_model_run with the inputs given by name, in any order: names[k] names the graph input
 * that inputs[k] feeds. Every graph input must be given exactly once; an unknown, repeated or
 * missing name is KILN_ERR_INVALID with a message naming it. Outputs come in graph order
 * (kiln_model_output_name gives their names). */
kiln_status kiln_model_run_named(kiln_model *m, int count, const char *const *names,
                                 const kiln_tensor *const *inputs, kiln_tensor **outputs,
                                 kiln_diag *diag);

/* ---- training ------------------------------------------------------------------------ */

/* A model's training step compiled as one graph (forward, loss, backward, update) by the
 * JIT, with its parameters and optimizer state kept between steps. The model's first
 * output is the prediction (logits for cross-entropy); its float params are trained. */
typedef struct kiln_trainer kiln_trainer;
typedef enum kiln_optimizer { KILN_SGD, KILN_ADAM, KILN_ADAMW } kiln_optimizer;
/* Cross-entropy takes i64 class labels [batch]; the others targets shaped as the prediction
 * (BCE: on logits, targets in [0, 1]; Huber: delta 1 unless huber_delta is set). */
typedef enum kiln_loss { KILN_LOSS_CROSS_ENTROPY, KILN_LOSS_MSE, KILN_LOSS_BCE_LOGITS, KILN_LOSS_L1, KILN_LOSS_HUBER } kiln_loss;
typedef struct kiln_train_options {
    kiln_optimizer optimizer;
    kiln_loss loss;
    double momentum;     /* SGD */
    bool nesterov;       /* SGD */
    double weight_decay; /* L2 for SGD and Adam, decoupled for AdamW */
    double beta1, beta2, eps; /* Adam/AdamW */
    double clip_norm;    /* > 0: clip the gradients' global L2 norm to this */
    double label_smoothing; /* cross-entropy */
    double huber_delta;  /* Huber (0: 1) */
    int64_t batch;       /* the step's batch size (the model's symbolic dimension) */
    int threads;         /* 0: all processors */
    const char *freeze;  /* parameters whose name contains this are not trained */
    uint64_t seed;       /* dropout's masks: a function of this, the step count and the element */
    bool no_fuse;
} kiln_train_options;

/* AdamW, cross-entropy, betas 0.9/0.999, eps 1e-8, batch 64, everything else 0. */
void kiln_train_options_default(kiln_train_options *o);
kiln_status kiln_trainer_create(const char *model_path, const kiln_train_options *opts, kiln_trainer **out,
                                kiln_diag *diag);
void kiln_trainer_destroy(kiln_trainer *t); /* NULL is a no-op */
/* One step on a batch: inputs are the model's inputs, labels i64 [batch] (cross-entropy)
 * or the prediction's shape (MSE); lr the learning rate for this step. *loss gets the
 * batch's loss; *prediction (if not NULL) the model's output, which the caller frees. */
kiln_status kiln_trainer_step(kiln_trainer *t, const kiln_tensor *const *inputs, const kiln_tensor *labels, double lr,
                              double *loss, kiln_tensor **prediction, kiln_diag *diag);
/* The model's output on a batch, with the current parameters (caller frees *prediction). */
kiln_status kiln_trainer_predict(kiln_trainer *t, const kiln_tensor *const *inputs, kiln_tensor **prediction,
                                 kiln_diag *diag);
int kiln_trainer_param_count(const kiln_trainer *t);
const char *kiln_trainer_param_name(const kiln_trainer *t, int i); /* borrowed */
const kiln_tensor *kiln_trainer_param(const kiln_trainer *t, int i); /* borrowed, valid until the next step */
int64_t kiln_trainer_steps(const kiln_trainer *t);
/* A checkpoint (.npz: parameters, optimizer state, step count and meta_count numbers of
 * the caller's), written atomically: a temporary file, fsync, rename. */
kiln_status kiln_trainer_save(const kiln_trainer *t, const char *path, int meta_count, const int64_t *meta,
                              kiln_diag *diag);
/* Writes the model with its trained parameters as ONNX (opset 17, the batch symbolic). */
kiln_status kiln_trainer_export_onnx(const kiln_trainer *t, const char *path, kiln_diag *diag);
/* Restores a checkpoint; on any error the trainer is left as it was. */
kiln_status kiln_trainer_load(kiln_trainer *t, const char *path, int meta_cap, int64_t *meta, int *meta_count,
                              kiln_diag *diag);

#ifdef __cplusplus
}
#endif
#endif /* KILN_KILN_H */
