/*
 * train.c — `kiln train`: trains a model on an IDX dataset (MNIST, Fashion-MNIST) with the
 * whole step compiled as one graph (kiln_trainer), and reports per epoch.
 *
 * Data order is a function of (seed, epoch) only (a counter-based shuffle), and a
 * checkpoint (after each epoch, and every --checkpoint-every steps) holds the parameters,
 * the optimizer state, the step count, the epoch, the position in it and the epoch's
 * running figures, so a run killed at any moment and resumed with --resume goes on from
 * its last checkpoint and ends with the same weights, bit for bit, as a run never
 * interrupted (same seed, same thread count).
 */
#include "cli.h"
#include "runtime/rng.h"

#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const usage_train =
    "usage: kiln train MODEL --data DIR|FILE.npz [--epochs N] [--batch N] [--optimizer sgd|adam|adamw]\n"
    "                  [--lr X] [--momentum X] [--nesterov] [--weight-decay X] [--clip-norm X]\n"
    "                  [--schedule constant|step|cosine|onecycle] [--warmup STEPS]\n"
    "                  [--step-epochs N] [--gamma X] [--seed N] [--val N] [--patience N]\n"
    "                  [--checkpoint DIR [--resume] [--checkpoint-every STEPS]] [--threads N]\n"
    "                  [--freeze PATTERN] [--quiet]\n"
    "                  [--bench STEPS] [--export OUT.onnx]\n"
    "                  [--loss cross_entropy|mse|bce|l1|huber] [--label-smoothing X]\n"
    "\n"
    "Trains MODEL (.kiln or .onnx; its first output is the logits, its float params are\n"
    "trained) on the IDX files in DIR (train-images-idx3-ubyte, train-labels-idx1-ubyte,\n"
    "t10k-*, optionally .gz), on an .npz holding x_train, y_train, x_test, y_test, or on\n"
    "a DIR of x_train.npy, y_train.npy, x_test.npy, y_test.npy (images u8, scaled to\n"
    "[0, 1], or f32; labels u8, i32 or i64). Images are\n"
    "standardized with the training set's mean and deviation. The whole step (forward,\n"
    "loss, backward, update) is one compiled graph; Dropout is active and\n"
    "BatchNormalization uses batch statistics while training. Prints a line per epoch\n"
    "and test_accuracy=... at the end; with --checkpoint, writes DIR/last.npz after each\n"
    "epoch and DIR/metrics.csv and DIR/metrics.jsonl.\n"
    "\n"
    "  --epochs N         passes over the training set (10)\n"
    "  --batch N          the step's batch (64); the last partial batch of an epoch is dropped\n"
    "  --optimizer O      adamw (default), adam or sgd\n"
    "  --lr X             peak learning rate (1e-3; 0.05 for sgd)\n"
    "  --schedule S       constant (default), step (x gamma every --step-epochs), cosine\n"
    "                     (to 0, after a linear --warmup of STEPS), onecycle\n"
    "  --val N            hold out N training images (after a seeded shuffle) for validation\n"
    "  --patience N       stop when validation accuracy has not improved for N epochs\n"
    "  --seed N           data order and dropout masks (initial weights come from the model)\n"
    "  --checkpoint-every STEPS  also checkpoint inside an epoch, every STEPS steps (a killed\n"
    "                     run then resumes from the middle of its epoch)\n"
    "  --checkpoint DIR   write DIR/last.npz (parameters, optimizer state, position)\n"
    "                     atomically; --resume continues from it, to the same final weights\n"
    "  --loss L           cross_entropy (default; --label-smoothing X), mse, bce (on logits),\n"
    "                     l1 or huber; all but cross-entropy compare with one-hot labels\n"
    "  --freeze PATTERN   do not train the params whose name contains PATTERN\n"
    "  --threads N        threads for the step's parallel loops (default: all processors)\n"
    "  --export OUT.onnx  write the trained model as ONNX (opset 17) at the end\n"
    "  --bench STEPS      time STEPS training steps (after 5 warm-up steps) and print the\n"
    "                     median, p10 and p90 milliseconds per step instead of training\n";

typedef struct dataset {
    kiln_tensor *images; /* u8 (scaled to [0, 1]) or f32 (taken as they are), [N, ...] */
    kiln_tensor *labels; /* u8, i32 or i64 [N] */
    int64_t count, pixels;
} dataset;

static double pixel(const kiln_tensor *t, int64_t i) {
    return t->dtype == KILN_U8 ? ((const uint8_t *)t->data)[i] / 255.0 : ((const float *)t->data)[i];
}

static int64_t label(const kiln_tensor *t, int64_t i) {
    switch (t->dtype) {
    case KILN_U8: return ((const uint8_t *)t->data)[i];
    case KILN_I32: return ((const int32_t *)t->data)[i];
    default: return ((const int64_t *)t->data)[i];
    }
}

/* The images and labels agree in count and have types kiln train reads. */
static int check_split(const char *what, dataset *ds) {
    ds->count = ds->images->rank ? ds->images->dims[0] : 0;
    ds->pixels = kiln_tensor_count(ds->images) / (ds->count ? ds->count : 1);
    bool images = ds->images->rank >= 2 && (ds->images->dtype == KILN_U8 || ds->images->dtype == KILN_F32);
    bool labels = ds->labels->rank == 1 && ds->labels->dims[0] == ds->count &&
                  (ds->labels->dtype == KILN_U8 || ds->labels->dtype == KILN_I32 || ds->labels->dtype == KILN_I64);
    if (!images || !labels || !ds->count) {
        fprintf(stderr, "kiln: %s: expected images (u8 or f32, [N, ...]) and as many labels (u8, i32 or i64, [N]); "
                        "got %lld images and %lld labels\n", what, (long long)ds->count,
                (long long)(ds->labels->rank ? ds->labels->dims[0] : 0));
        return EXIT_MODEL;
    }
    return 0;
}

/* An .npz with x_train, y_train, x_test, y_test (numpy.savez of a Keras-style dataset),
 * or a folder with x_train.npy, y_train.npy, x_test.npy, y_test.npy (npy_dir). */
static int load_arrays(const char *path, bool npy_dir, dataset *train, dataset *test) {
    const char *keys[4] = {"x_train", "y_train", "x_test", "y_test"};
    kiln_tensor **dst[4] = {&train->images, &train->labels, &test->images, &test->labels};
    for (int k = 0; k < 4; k++) {
        kiln_diag d = {0};
        char file[4200];
        snprintf(file, sizeof file, "%s/%s.npy", path, keys[k]);
        if (npy_dir ? kiln_npy_read(file, dst[k], &d) : kiln_npz_read(path, keys[k], dst[k], &d))
            return model_error(&d);
    }
    char what[4200];
    snprintf(what, sizeof what, "%s[x_train, y_train]", path);
    int rc = check_split(what, train);
    snprintf(what, sizeof what, "%s[x_test, y_test]", path);
    return rc ? rc : check_split(what, test);
}

static int load_split(const char *dir, const char *prefix, dataset *ds) {
    const char *kinds[2] = {"images-idx3-ubyte", "labels-idx1-ubyte"};
    kiln_tensor **dst[2] = {&ds->images, &ds->labels};
    for (int k = 0; k < 2; k++) {
        char path[4096];
        kiln_diag d = {0};
        snprintf(path, sizeof path, "%s/%s-%s.gz", dir, prefix, kinds[k]);
        if (access(path, R_OK) != 0)
            snprintf(path, sizeof path, "%s/%s-%s", dir, prefix, kinds[k]);
        if (kiln_idx_read(path, dst[k], &d))
            return model_error(&d);
    }
    char what[4200];
    snprintf(what, sizeof what, "%s/%s-*", dir, prefix);
    if (check_split(what, ds))
        return EXIT_MODEL;
    return 0;
}

/* counter-based (runtime/rng.h), so an epoch's order depends on (seed, epoch) only */
static uint64_t mix(uint64_t x) { return kiln_rng_bits(x, 0); }

static void shuffle(int64_t *order, int64_t n, uint64_t seed, uint64_t stream) {
    for (int64_t i = 0; i < n; i++)
        order[i] = i;
    for (int64_t i = n - 1; i > 0; i--) {
        int64_t j = (int64_t)(mix(seed * 0x100000001B3ull ^ mix(stream << 32 ^ (uint64_t)i)) % (uint64_t)(i + 1));
        int64_t t = order[i];
        order[i] = order[j], order[j] = t;
    }
}

typedef struct schedule {
    const char *kind;
    double lr, gamma;
    int64_t warmup, total, step_epochs, steps_per_epoch;
} schedule;

static double lr_at(const schedule *s, int64_t step) {
    double pi = 3.14159265358979323846;
    if (!strcmp(s->kind, "step"))
        return s->lr * pow(s->gamma, (double)(step / s->steps_per_epoch / (s->step_epochs ? s->step_epochs : 1)));
    if (!strcmp(s->kind, "cosine")) {
        if (step < s->warmup)
            return s->lr * (double)(step + 1) / (double)s->warmup;
        double p = (double)(step - s->warmup) / (double)(s->total - s->warmup > 0 ? s->total - s->warmup : 1);
        return 0.5 * s->lr * (1 + cos(pi * (p > 1 ? 1 : p)));
    }
    if (!strcmp(s->kind, "onecycle")) { /* up from lr/25 over 30%, then cosine down to lr/1e4 */
        int64_t up = s->total * 3 / 10 > 0 ? s->total * 3 / 10 : 1;
        if (step < up)
            return s->lr / 25 + (s->lr - s->lr / 25) * (double)step / (double)up;
        double p = (double)(step - up) / (double)(s->total - up > 0 ? s->total - up : 1);
        return s->lr / 1e4 + 0.5 * (s->lr - s->lr / 1e4) * (1 + cos(pi * (p > 1 ? 1 : p)));
    }
    return s->lr;
}

/* Fills a batch: images standardized, labels as i64. */
static void fill_batch(const dataset *ds, const int64_t *idx, int64_t count, double mean, double std, kiln_tensor *x,
                       kiln_tensor *y) {
    float *xp = x->data;
    int64_t *yp = y->data;

    int64_t batch = y->dims[0];
    for (int64_t b = 0; b < batch; b++) {
        if (b >= count) { /* padding of a last partial evaluation batch */
            memset(xp + b * ds->pixels, 0, sizeof(float) * (size_t)ds->pixels);
            yp[b] = 0;
            continue;
        }
        const int64_t first = idx[b] * ds->pixels;
        for (int64_t p = 0; p < ds->pixels; p++)
            xp[b * ds->pixels + p] = (float)((pixel(ds->images, first + p) - mean) / std);
        yp[b] = label(ds->labels, idx[b]);
    }
}

/* What the loss compares with: the labels, or (onehot given) the labels one-hot. */
static const kiln_tensor *targets(const kiln_tensor *labels, kiln_tensor *onehot) {
    if (!onehot)
        return labels;
    int64_t classes = onehot->dims[1];
    float *o = onehot->data;
    memset(o, 0, kiln_tensor_bytes(onehot));
    for (int64_t b = 0; b < labels->dims[0]; b++) {
        int64_t l = ((const int64_t *)labels->data)[b];
        if (l >= 0 && l < classes)
            o[b * classes + l] = 1;
    }
    return onehot;
}

static int64_t correct_in(const kiln_tensor *logits, const kiln_tensor *labels, int64_t count) {
    int64_t classes = logits->dims[1], right = 0;
    const float *l = logits->data;
    const int64_t *y = labels->data;
    for (int64_t b = 0; b < count; b++) {
        int64_t best = 0;
        for (int64_t c = 1; c < classes; c++)
            if (l[b * classes + c] > l[b * classes + best])
                best = c;
        right += best == y[b];
    }
    return right;
}

/* Accuracy of the current parameters on ds[idx[0..n)]. */
static int evaluate(kiln_trainer *t, const dataset *ds, const int64_t *idx, int64_t n, double mean, double std,
                    kiln_tensor *x, kiln_tensor *y, double *accuracy) {
    int64_t batch = y->dims[0], right = 0;
    for (int64_t at = 0; at < n; at += batch) {
        int64_t count = n - at < batch ? n - at : batch;
        fill_batch(ds, idx + at, count, mean, std, x, y);
        kiln_tensor *logits = NULL;
        kiln_diag d = {0};
        if (kiln_trainer_predict(t, (const kiln_tensor *const *)&x, &logits, &d))
            return model_error(&d);
        right += correct_in(logits, y, count);
        kiln_tensor_free(logits);
    }
    *accuracy = n ? (double)right / (double)n : 0;
    return 0;
}

static bool parse_num(const char *s, double *out) {
    char *end;
    errno = 0;
    *out = strtod(s, &end);
    return s[0] && !*end && !errno && isfinite(*out);
}

int cmd_train(int argc, char **argv) {
    /* each step's outputs (new parameters, state, activations) are fresh blocks of the
     * same sizes as the last step's: keep freed memory for them instead of returning it to
     * the kernel and faulting it in again (a fifth of a CNN step otherwise) */
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    const char *model = NULL, *data = NULL, *ckpt = NULL, *opt = "adamw", *export_path = NULL;
    schedule sched = {.kind = "constant", .lr = -1, .gamma = 0.1, .step_epochs = 1};
    double num;
    int64_t epochs = 10, val = 0, patience = 0, bench = 0, every = 0;
    uint64_t seed = 1;
    bool resume = false, quiet = false;
    kiln_train_options o;
    kiln_train_options_default(&o);
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (is_help(a)) {
            fputs(usage_train, stdout);
            return 0;
        } else if (!strcmp(a, "--data") && has) {
            data = argv[++i];
        } else if (!strcmp(a, "--export") && has) {
            export_path = argv[++i];
        } else if (!strcmp(a, "--checkpoint") && has) {
            ckpt = argv[++i];
        } else if (!strcmp(a, "--optimizer") && has) {
            opt = argv[++i];
        } else if (!strcmp(a, "--schedule") && has) {
            sched.kind = argv[++i];
        } else if (!strcmp(a, "--loss") && has) {
            const char *l = argv[++i];
            if (!strcmp(l, "cross_entropy")) o.loss = KILN_LOSS_CROSS_ENTROPY;
            else if (!strcmp(l, "mse")) o.loss = KILN_LOSS_MSE;
            else if (!strcmp(l, "bce")) o.loss = KILN_LOSS_BCE_LOGITS;
            else if (!strcmp(l, "l1")) o.loss = KILN_LOSS_L1;
            else if (!strcmp(l, "huber")) o.loss = KILN_LOSS_HUBER;
            else return usage_error(usage_train, "unknown loss '%s' (cross_entropy, mse, bce, l1, huber)", l);
        } else if (!strcmp(a, "--freeze") && has) {
            o.freeze = argv[++i];
        } else if (!strcmp(a, "--resume")) {
            resume = true;
        } else if (!strcmp(a, "--nesterov")) {
            o.nesterov = true;
        } else if (!strcmp(a, "--quiet")) {
            quiet = true;
        } else if (a[0] == '-' && a[1] == '-' && has && parse_num(argv[i + 1], &num)) {
            const char *v = argv[++i];
            bool whole = num >= 0 && num == floor(num);
            if (!strcmp(a, "--epochs") && whole && num >= 1) epochs = (int64_t)num;
            else if (!strcmp(a, "--batch") && whole && num >= 1) o.batch = (int64_t)num;
            else if (!strcmp(a, "--lr") && num > 0) sched.lr = num;
            else if (!strcmp(a, "--momentum") && num >= 0 && num < 1) o.momentum = num;
            else if (!strcmp(a, "--weight-decay") && num >= 0) o.weight_decay = num;
            else if (!strcmp(a, "--clip-norm") && num > 0) o.clip_norm = num;
            else if (!strcmp(a, "--label-smoothing") && num >= 0 && num < 1) o.label_smoothing = num;
            else if (!strcmp(a, "--warmup") && whole) sched.warmup = (int64_t)num;
            else if (!strcmp(a, "--step-epochs") && whole && num >= 1) sched.step_epochs = (int64_t)num;
            else if (!strcmp(a, "--gamma") && num > 0) sched.gamma = num;
            else if (!strcmp(a, "--seed") && whole) seed = (uint64_t)num;
            else if (!strcmp(a, "--val") && whole) val = (int64_t)num;
            else if (!strcmp(a, "--patience") && whole) patience = (int64_t)num;
            else if (!strcmp(a, "--bench") && whole && num >= 1) bench = (int64_t)num;
            else if (!strcmp(a, "--checkpoint-every") && whole && num >= 1) every = (int64_t)num;
            else if (!strcmp(a, "--threads") && whole && num >= 1) o.threads = (int)num;
            else return (void)v, usage_error(usage_train, "bad value for %s", a);
        } else if (a[0] == '-') {
            return usage_error(usage_train, "unknown flag or missing value: %s", a);
        } else if (!model) {
            model = a;
        } else {
            return usage_error(usage_train, "unexpected argument '%s'", a);
        }
    }
    if (!model || !data)
        return usage_error(usage_train, "%s", !model ? "no MODEL given" : "--data DIR is required");
    if (!strcmp(opt, "sgd")) o.optimizer = KILN_SGD;
    else if (!strcmp(opt, "adam")) o.optimizer = KILN_ADAM;
    else if (!strcmp(opt, "adamw")) o.optimizer = KILN_ADAMW;
    else return usage_error(usage_train, "unknown optimizer '%s' (sgd, adam, adamw)", opt);
    if (strcmp(sched.kind, "constant") && strcmp(sched.kind, "step") && strcmp(sched.kind, "cosine") &&
        strcmp(sched.kind, "onecycle"))
        return usage_error(usage_train, "unknown schedule '%s' (constant, step, cosine, onecycle)", sched.kind);
    if (resume && !ckpt)
        return usage_error(usage_train, "--resume needs --checkpoint DIR%s", "");
    if (sched.lr < 0)
        sched.lr = o.optimizer == KILN_SGD ? 0.05 : 1e-3;

    dataset train = {0}, test = {0};
    size_t dlen = strlen(data);
    char npy_probe[4200];
    snprintf(npy_probe, sizeof npy_probe, "%s/x_train.npy", data);
    bool npz = dlen > 4 && !strcmp(data + dlen - 4, ".npz"), npy_dir = !npz && access(npy_probe, R_OK) == 0;
    int rc = npz || npy_dir ? load_arrays(data, npy_dir, &train, &test) : load_split(data, "train", &train);
    if (!rc && !test.images)
        rc = load_split(data, "t10k", &test);
    if (!rc && val >= train.count)
        rc = usage_error(usage_train, "--val must be below the training set's size%s", "");
    if (rc) {
        kiln_tensor_free(train.images), kiln_tensor_free(train.labels);
        kiln_tensor_free(test.images), kiln_tensor_free(test.labels);
        return rc;
    }
    /* the training set's mean and deviation, over every pixel */
    double sum = 0, sq = 0;
    int64_t total_px = kiln_tensor_count(train.images);
    for (int64_t i = 0; i < total_px; i++) {
        double v = pixel(train.images, i);
        sum += v, sq += v * v;
    }
    double mean = sum / (double)total_px, std = sqrt(sq / (double)total_px - mean * mean);

    double t0 = elapsed_ms(NULL);
    FILE *csv = NULL, *json = NULL;
    kiln_trainer *t = NULL;
    kiln_diag d = {0};
    int64_t *split = NULL, *order = NULL, *test_idx = NULL;
    kiln_tensor *x = NULL, *y = NULL, *onehot = NULL; /* onehot: targets of the losses other than cross-entropy */
    o.seed = seed;
    if (kiln_trainer_create(model, &o, &t, &d)) {
        rc = model_error(&d);
        goto done;
    }
    if (!quiet)
        printf("%s: %d parameter tensors, %s, batch %lld, compiled in %.0f ms\n", model,
               kiln_trainer_param_count(t), opt, (long long)o.batch, elapsed_ms(&t0));
    /* the held-out split is fixed by the seed; each epoch shuffles the rest */
    int64_t n_train = train.count - val;
    split = malloc(sizeof(int64_t) * (size_t)train.count), order = malloc(sizeof(int64_t) * (size_t)n_train);
    test_idx = malloc(sizeof(int64_t) * (size_t)test.count);
    /* a batch of samples: [N, H, W] images get a channel axis ([batch, 1, H, W]) */
    int64_t xdims[KILN_MAX_RANK] = {o.batch}, ydims[1] = {o.batch};
    int xrank = 1;
    if (train.images->rank == 3)
        xdims[xrank++] = 1;
    for (int i = 1; i < train.images->rank && xrank < KILN_MAX_RANK; i++)
        xdims[xrank++] = train.images->dims[i];
    if (!split || !order || !test_idx || kiln_tensor_create(KILN_F32, xrank, xdims, &x, &d) ||
        kiln_tensor_create(KILN_I64, 1, ydims, &y, &d)) {
        fprintf(stderr, "kiln: out of memory\n");
        rc = EXIT_MODEL;
        goto done;
    }
    if (o.loss != KILN_LOSS_CROSS_ENTROPY) {
        int64_t classes = 0;
        for (int64_t i = 0; i < train.count; i++)
            if (label(train.labels, i) >= classes)
                classes = label(train.labels, i) + 1;
        int64_t odims[2] = {o.batch, classes};
        if (kiln_tensor_create(KILN_F32, 2, odims, &onehot, &d)) {
            rc = model_error(&d);
            goto done;
        }
    }
    shuffle(split, train.count, seed, 0xFFFFFFFF);
    for (int64_t i = 0; i < test.count; i++)
        test_idx[i] = i;
    sched.steps_per_epoch = n_train / o.batch;
    sched.total = sched.steps_per_epoch * epochs;
    int64_t start_epoch = 0, best_bad[2] = {0, 0}; /* best val accuracy (x 1e6), epochs without gain */
    /* inside the epoch a checkpoint was taken in: the next step, and the running figures */
    int64_t start_step = 0, start_right = 0, start_seen = 0;
    double start_loss = 0;
    char last[4096], csv_path[4096], json_path[4096];
    if (ckpt) {
        mkdir(ckpt, 0755);
        snprintf(last, sizeof last, "%s/last.npz", ckpt);
        snprintf(csv_path, sizeof csv_path, "%s/metrics.csv", ckpt);
        snprintf(json_path, sizeof json_path, "%s/metrics.jsonl", ckpt);
        if (resume && access(last, R_OK) == 0) {
            int64_t meta[8] = {0};
            int got = 0;
            if (kiln_trainer_load(t, last, 8, meta, &got, &d)) {
                rc = model_error(&d);
                goto done;
            }
            if (got < 4 || (uint64_t)meta[1] != seed) {
                fprintf(stderr, "kiln: %s: written by a run with another seed or version\n", last);
                rc = EXIT_MODEL;
                goto done;
            }
            start_epoch = meta[0], best_bad[0] = meta[2], best_bad[1] = meta[3];
            start_step = meta[4], start_right = meta[6], start_seen = meta[7];
            memcpy(&start_loss, &meta[5], sizeof start_loss); /* the running loss sum, bit for bit */
            if (!quiet)
                printf("resumed from %s: %lld epochs and %lld steps done, step %lld\n", last, (long long)start_epoch,
                       (long long)start_step, (long long)kiln_trainer_steps(t));
        }
        csv = fopen(csv_path, start_epoch ? "a" : "w");
        json = fopen(json_path, start_epoch ? "a" : "w");
        if (csv && !start_epoch)
            fprintf(csv, "epoch,loss,train_accuracy,val_accuracy,lr,samples_per_second\n");
    }
    if (bench) { /* time steps on the first batches of the seeded order */
        double *ms = malloc(sizeof(double) * (size_t)bench);
        shuffle(order, n_train, seed, 0);
        for (int64_t s = 0; ms && s < bench + 5; s++) {
            fill_batch(&train, order + (s % sched.steps_per_epoch) * o.batch, o.batch, mean, std, x, y);
            double s0 = elapsed_ms(NULL);
            if (kiln_trainer_step(t, (const kiln_tensor *const *)&x, targets(y, onehot), sched.lr, NULL, NULL, &d)) {
                free(ms);
                rc = model_error(&d);
                goto done;
            }
            if (s >= 5)
                ms[s - 5] = elapsed_ms(&s0);
        }
        if (ms) {
            qsort(ms, (size_t)bench, sizeof *ms, compare_double);
            printf("train_step_ms median=%.3f p10=%.3f p90=%.3f steps=%lld batch=%lld\n", ms[bench / 2],
                   ms[bench / 10], ms[bench * 9 / 10], (long long)bench, (long long)o.batch);
        }
        free(ms);
        goto done;
    }
    bool tty = isatty(2) && !quiet;
    for (int64_t epoch = start_epoch; epoch < epochs; epoch++) {
        for (int64_t i = 0; i < n_train; i++)
            order[i] = i;
        shuffle(order, n_train, seed, (uint64_t)epoch);
        for (int64_t i = 0; i < n_train; i++)
            order[i] = split[val + order[i]];
        bool resumed = epoch == start_epoch;
        double e0 = elapsed_ms(NULL), loss_sum = resumed ? start_loss : 0, lr = sched.lr;
        int64_t right = resumed ? start_right : 0, seen = resumed ? start_seen : 0, first = resumed ? start_step : 0;
        const int64_t seen0 = seen; /* a resumed epoch's rate counts only its own steps */
        for (int64_t s = first; s < sched.steps_per_epoch; s++) {
            fill_batch(&train, order + s * o.batch, o.batch, mean, std, x, y);
            lr = lr_at(&sched, kiln_trainer_steps(t));
            double loss;
            kiln_tensor *logits = NULL;
            if (kiln_trainer_step(t, (const kiln_tensor *const *)&x, targets(y, onehot), lr, &loss, &logits, &d)) {
                rc = model_error(&d);
                goto done;
            }
            if (!isfinite(loss)) {
                fprintf(stderr, "kiln: the loss diverged (%g) at step %lld; try a lower --lr\n", loss,
                        (long long)kiln_trainer_steps(t));
                kiln_tensor_free(logits);
                rc = EXIT_MODEL;
                goto done;
            }
            loss_sum += loss;
            right += correct_in(logits, y, o.batch);
            seen += o.batch;
            kiln_tensor_free(logits);
            if (ckpt && every && (s + 1) % every == 0 && s + 1 < sched.steps_per_epoch) {
                int64_t meta[8] = {epoch, (int64_t)seed, best_bad[0], best_bad[1], s + 1, 0, right, seen};
                memcpy(&meta[5], &loss_sum, sizeof loss_sum);
                if (kiln_trainer_save(t, last, 8, meta, &d)) {
                    rc = model_error(&d);
                    goto done;
                }
            }
            if (tty && (s % 20 == 0 || s + 1 == sched.steps_per_epoch)) {
                int bar = (int)(30 * (s + 1) / sched.steps_per_epoch);
                fprintf(stderr, "\repoch %lld/%lld [%.*s%*s] loss %.4f acc %.4f %.0f samples/s ", (long long)epoch + 1,
                        (long long)epochs, bar, "==============================", 30 - bar, "", loss_sum / (double)(s + 1),
                        (double)right / (double)seen, (double)(seen - seen0) / (elapsed_ms(&e0) / 1000));
            }
        }
        if (tty)
            fputc('\n', stderr);
        double secs = elapsed_ms(&e0) / 1000, val_acc = -1;
        if (val && (rc = evaluate(t, &train, split, val, mean, std, x, y, &val_acc)))
            goto done;
        double train_loss = loss_sum / (double)(sched.steps_per_epoch ? sched.steps_per_epoch : 1);
        double train_acc = seen ? (double)right / (double)seen : 0;
        if (!quiet) {
            printf("epoch %lld/%lld  loss %.4f  train_accuracy %.4f", (long long)epoch + 1, (long long)epochs, train_loss,
                   train_acc);
            if (val)
                printf("  val_accuracy %.4f", val_acc);
            printf("  lr %.3g  %.0f samples/s\n", lr, (double)(seen - seen0) / secs);
            fflush(stdout);
        }
        bool stop = false;
        if (val) {
            int64_t acc6 = (int64_t)llround(val_acc * 1e6);
            if (acc6 > best_bad[0])
                best_bad[0] = acc6, best_bad[1] = 0;
            else
                best_bad[1]++;
            stop = patience && best_bad[1] >= patience;
        }
        if (ckpt) {
            int64_t meta[8] = {epoch + 1, (int64_t)seed, best_bad[0], best_bad[1], 0, 0, 0, 0};
            if (kiln_trainer_save(t, last, 8, meta, &d)) {
                rc = model_error(&d);
                goto done;
            }
        }
        /* after the checkpoint: a metrics line means its epoch is saved */
        if (csv)
            fprintf(csv, "%lld,%.6f,%.6f,%.6f,%.6g,%.1f\n", (long long)epoch + 1, train_loss, train_acc, val_acc, lr,
                    (double)(seen - seen0) / secs), fflush(csv);
        if (json)
            fprintf(json, "{\"epoch\": %lld, \"loss\": %.6f, \"train_accuracy\": %.6f, \"val_accuracy\": %.6f, "
                          "\"lr\": %.6g, \"samples_per_second\": %.1f}\n",
                    (long long)epoch + 1, train_loss, train_acc, val_acc, lr, (double)(seen - seen0) / secs), fflush(json);
        if (stop) {
            if (!quiet)
                printf("early stop: no validation gain in %lld epochs\n", (long long)patience);
            break;
        }
    }
    double test_acc;
    if ((rc = evaluate(t, &test, test_idx, test.count, mean, std, x, y, &test_acc)))
        goto done;
    printf("test_accuracy=%.4f\n", test_acc);
    if (export_path) {
        if (kiln_trainer_export_onnx(t, export_path, &d)) {
            rc = model_error(&d);
            goto done;
        }
        if (!quiet)
            printf("wrote %s\n", export_path);
    }
done:
    if (csv)
        fclose(csv);
    if (json)
        fclose(json);
    free(split), free(order), free(test_idx);
    kiln_tensor_free(x), kiln_tensor_free(y), kiln_tensor_free(onehot);
    kiln_tensor_free(train.images), kiln_tensor_free(train.labels);
    kiln_tensor_free(test.images), kiln_tensor_free(test.labels);
    kiln_trainer_destroy(t);
    return rc;
}
