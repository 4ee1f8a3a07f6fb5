/*
 * test_train.c — the trainer: optimizer steps against updates computed by hand (in
 * double, from the same gradients), a loss that falls at every step on a fixed batch, and
 * checkpoints (saved and restored exactly; a truncated or foreign one refused with the
 * trainer left as it was).
 *
 * The model is y = x @ W + b with MSE against fixed targets, so the gradient is known in
 * closed form: dY = 2 (y - t) / (N * M), dW = x^T dY, db = sum over rows of dY. Stated
 * tolerance for f32 against the double computation: 1e-6 + 1e-5 * |value|.
 */
#include "../test_util.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

enum { N = 4, K = 3, M = 2 };

static const char *model_text =
    "graph lin {\n"
    "  input %x: f32[N, 3]\n"
    "  param %w: f32[3, 2] = [0.5, -0.25, 0.125, 0.75, -0.5, 0.3]\n"
    "  param %b: f32[2] = [0.1, -0.2]\n"
    "  %m = MatMul(%x, %w)\n"
    "  %y = Add(%m, %b)\n"
    "  output %y\n"
    "}\n";

static const float X[N][K] = {{1, 2, -1}, {0.5, -1, 2}, {-1.5, 0.25, 1}, {2, 1, 0.5}};
static const float T[N][M] = {{1, 0}, {0, 1}, {-1, 0.5}, {0.5, -0.5}};

static char model_path[80];

static int write_model(void **state) {
    (void)state;
    snprintf(model_path, sizeof model_path, "/tmp/kiln-train-XXXXXX");
    int fd = mkstemp(model_path);
    if (fd < 0)
        return -1;
    close(fd);
    char renamed[96];
    snprintf(renamed, sizeof renamed, "%s.kiln", model_path);
    if (rename(model_path, renamed))
        return -1;
    snprintf(model_path, sizeof model_path, "%.70s", renamed);
    FILE *f = fopen(model_path, "w");
    fputs(model_text, f);
    fclose(f);
    return 0;
}

static int remove_model(void **state) {
    (void)state;
    unlink(model_path);
    return 0;
}

static kiln_tensor *tensor2(int rows, int cols, const float *v) {
    int64_t dims[2] = {rows, cols};
    kiln_tensor *t;
    kiln_diag d = {0};
    assert_int_equal(kiln_tensor_create(KILN_F32, 2, dims, &t, &d), KILN_OK);
    memcpy(t->data, v, sizeof(float) * (size_t)(rows * cols));
    return t;
}

/* The MSE gradients of the linear model at (w, b), in double. */
static void gradients(const double *w, const double *b, double *dw, double *db) {
    double dy[N][M];
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            double y = b[m];
            for (int k = 0; k < K; k++)
                y += X[n][k] * w[k * M + m];
            dy[n][m] = 2 * (y - T[n][m]) / (N * M);
        }
    for (int k = 0; k < K; k++)
        for (int m = 0; m < M; m++) {
            dw[k * M + m] = 0;
            for (int n = 0; n < N; n++)
                dw[k * M + m] += X[n][k] * dy[n][m];
        }
    for (int m = 0; m < M; m++) {
        db[m] = 0;
        for (int n = 0; n < N; n++)
            db[m] += dy[n][m];
    }
}

typedef struct opt_case {
    const char *name;
    kiln_optimizer optimizer;
    double momentum, weight_decay;
    bool nesterov;
} opt_case;

/* Three steps of the trainer against three steps by hand. */
static void check_optimizer(const opt_case *oc) {
    kiln_train_options o;
    kiln_train_options_default(&o);
    o.optimizer = oc->optimizer, o.loss = KILN_LOSS_MSE, o.batch = N, o.momentum = oc->momentum,
    o.weight_decay = oc->weight_decay, o.nesterov = oc->nesterov, o.threads = 1;
    kiln_trainer *t;
    kiln_diag d = {0};
    if (kiln_trainer_create(model_path, &o, &t, &d)) {
        print_error("%s\n", d.message);
        fail();
    }
    assert_int_equal(kiln_trainer_param_count(t), 2);
    kiln_tensor *x = tensor2(N, K, &X[0][0]), *tg = tensor2(N, M, &T[0][0]);
    double p[K * M + M] = {0.5, -0.25, 0.125, 0.75, -0.5, 0.3, 0.1, -0.2}, s1[K * M + M] = {0}, s2[K * M + M] = {0};
    const double lr = 0.05, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    for (int step = 1; step <= 3; step++) {
        double g[K * M + M];
        gradients(p, p + K * M, g, g + K * M);
        for (int i = 0; i < K * M + M; i++) {
            if (oc->optimizer == KILN_SGD) {
                double gi = g[i] + oc->weight_decay * p[i];
                s1[i] = oc->momentum * s1[i] + gi;
                p[i] -= lr * (oc->nesterov ? gi + oc->momentum * s1[i] : oc->momentum ? s1[i] : gi);
            } else {
                double gi = oc->optimizer == KILN_ADAM ? g[i] + oc->weight_decay * p[i] : g[i];
                if (oc->optimizer == KILN_ADAMW)
                    p[i] *= 1 - lr * oc->weight_decay;
                s1[i] = b1 * s1[i] + (1 - b1) * gi;
                s2[i] = b2 * s2[i] + (1 - b2) * gi * gi;
                double mhat = s1[i] / (1 - pow(b1, step)), vhat = s2[i] / (1 - pow(b2, step));
                p[i] -= lr * mhat / (sqrt(vhat) + eps);
            }
        }
        assert_int_equal(kiln_trainer_step(t, (const kiln_tensor *const *)&x, tg, lr, NULL, NULL, &d), KILN_OK);
    }
    for (int which = 0; which < 2; which++) {
        const kiln_tensor *got = kiln_trainer_param(t, which);
        const double *want = which ? p + K * M : p;
        for (int64_t i = 0; i < kiln_tensor_count(got); i++) {
            double v = ((const float *)got->data)[i];
            if (fabs(v - want[i]) > 1e-6 + 1e-5 * fabs(want[i])) {
                print_error("%s: %s[%lld] after 3 steps: trainer %.9g, by hand %.9g\n", oc->name,
                            kiln_trainer_param_name(t, which), (long long)i, v, want[i]);
                fail();
            }
        }
    }
    kiln_tensor_free(x), kiln_tensor_free(tg);
    kiln_trainer_destroy(t);
}

static void test_optimizer_steps(void **state) {
    (void)state;
    static const opt_case cases[] = {
        {"sgd", KILN_SGD, 0, 0, false},
        {"sgd momentum", KILN_SGD, 0.9, 0, false},
        {"sgd nesterov + L2", KILN_SGD, 0.9, 0.01, true},
        {"adam", KILN_ADAM, 0, 0, false},
        {"adam + L2", KILN_ADAM, 0, 0.05, false},
        {"adamw", KILN_ADAMW, 0, 0.1, false},
    };
    for (int i = 0; i < ARRAY_LEN(cases); i++)
        check_optimizer(&cases[i]);
}

/* Cross-entropy on one fixed batch with plain SGD: the loss falls at every step. */
static void test_loss_decreases(void **state) {
    (void)state;
    kiln_train_options o;
    kiln_train_options_default(&o);
    o.optimizer = KILN_SGD, o.batch = N, o.threads = 1;
    kiln_trainer *t;
    kiln_diag d = {0};
    assert_int_equal(kiln_trainer_create(model_path, &o, &t, &d), KILN_OK);
    kiln_tensor *x = tensor2(N, K, &X[0][0]), *labels;
    int64_t dims[1] = {N};
    assert_int_equal(kiln_tensor_create(KILN_I64, 1, dims, &labels, &d), KILN_OK);
    const int64_t classes[N] = {0, 1, 1, 0};
    memcpy(labels->data, classes, sizeof classes);
    double prev = INFINITY;
    for (int step = 0; step < 30; step++) {
        double loss;
        kiln_tensor *pred = NULL;
        assert_int_equal(kiln_trainer_step(t, (const kiln_tensor *const *)&x, labels, 0.1, &loss, &pred, &d), KILN_OK);
        assert_int_equal(pred->dims[0], N);
        kiln_tensor_free(pred);
        if (!(loss < prev)) {
            print_error("step %d: loss %.9g after %.9g\n", step, loss, prev);
            fail();
        }
        prev = loss;
    }
    assert_int_equal(kiln_trainer_steps(t), 30);
    kiln_tensor_free(x), kiln_tensor_free(labels);
    kiln_trainer_destroy(t);
}

/* A checkpoint restores parameters, state and step exactly; a truncated one is refused
 * with its file named, and the trainer keeps what it had. */
static void test_checkpoints(void **state) {
    (void)state;
    kiln_train_options o;
    kiln_train_options_default(&o);
    o.loss = KILN_LOSS_MSE, o.batch = N, o.threads = 1;
    kiln_trainer *a, *b;
    kiln_diag d = {0};
    assert_int_equal(kiln_trainer_create(model_path, &o, &a, &d), KILN_OK);
    assert_int_equal(kiln_trainer_create(model_path, &o, &b, &d), KILN_OK);
    kiln_tensor *x = tensor2(N, K, &X[0][0]), *tg = tensor2(N, M, &T[0][0]);
    for (int i = 0; i < 3; i++)
        assert_int_equal(kiln_trainer_step(a, (const kiln_tensor *const *)&x, tg, 0.01, NULL, NULL, &d), KILN_OK);
    char ck[128], cut[128];
    snprintf(ck, sizeof ck, "%s.ckpt.npz", model_path);
    snprintf(cut, sizeof cut, "%s.cut.npz", model_path);
    const int64_t meta[2] = {7, 42};
    assert_int_equal(kiln_trainer_save(a, ck, 2, meta, &d), KILN_OK);
    int64_t got[4];
    int count = 0;
    assert_int_equal(kiln_trainer_load(b, ck, 4, got, &count, &d), KILN_OK);
    assert_int_equal(count, 2);
    assert_int_equal(got[0], 7), assert_int_equal(got[1], 42);
    assert_int_equal(kiln_trainer_steps(b), 3);
    /* the same next step from both: state and step count came back too */
    assert_int_equal(kiln_trainer_step(a, (const kiln_tensor *const *)&x, tg, 0.01, NULL, NULL, &d), KILN_OK);
    assert_int_equal(kiln_trainer_step(b, (const kiln_tensor *const *)&x, tg, 0.01, NULL, NULL, &d), KILN_OK);
    for (int i = 0; i < 2; i++)
        assert_memory_equal(kiln_trainer_param(a, i)->data, kiln_trainer_param(b, i)->data,
                            kiln_tensor_bytes(kiln_trainer_param(a, i)));
    /* truncated: refused, b unchanged */
    FILE *in = fopen(ck, "rb"), *out = fopen(cut, "wb");
    char buf[4096];
    size_t len = fread(buf, 1, sizeof buf, in);
    fwrite(buf, 1, len / 2, out);
    fclose(in), fclose(out);
    float before = ((const float *)kiln_trainer_param(b, 0)->data)[0];
    d = (kiln_diag){0};
    assert_int_not_equal(kiln_trainer_load(b, cut, 4, got, &count, &d), KILN_OK);
    char want[160];
    snprintf(want, sizeof want, "%s: not a .npz (zip) file", cut);
    assert_string_equal(d.message, want);
    assert_true(((const float *)kiln_trainer_param(b, 0)->data)[0] == before);
    assert_int_equal(kiln_trainer_steps(b), 4);
    unlink(ck), unlink(cut);
    kiln_tensor_free(x), kiln_tensor_free(tg);
    kiln_trainer_destroy(a), kiln_trainer_destroy(b);
}

/* Each loss's value on the first step against the formula, in double. */
static void test_losses(void **state) {
    (void)state;
    double p[K * M + M] = {0.5, -0.25, 0.125, 0.75, -0.5, 0.3, 0.1, -0.2}, y[N][M];
    for (int n = 0; n < N; n++)
        for (int m = 0; m < M; m++) {
            y[n][m] = p[K * M + m];
            for (int k = 0; k < K; k++)
                y[n][m] += X[n][k] * p[k * M + m];
        }
    static const int64_t classes[N] = {0, 1, 1, 0};
    static const struct { kiln_loss loss; double smoothing; const char *name; } cases[] = {
        {KILN_LOSS_MSE, 0, "mse"}, {KILN_LOSS_L1, 0, "l1"}, {KILN_LOSS_HUBER, 0, "huber"},
        {KILN_LOSS_BCE_LOGITS, 0, "bce"}, {KILN_LOSS_CROSS_ENTROPY, 0, "cross-entropy"},
        {KILN_LOSS_CROSS_ENTROPY, 0.2, "cross-entropy, smoothing 0.2"},
    };
    for (int i = 0; i < ARRAY_LEN(cases); i++) {
        double want = 0;
        for (int n = 0; n < N; n++) {
            double lse = log(exp(y[n][0]) + exp(y[n][1]));
            for (int m = 0; m < M; m++) {
                double d = y[n][m] - T[n][m], a = fabs(d), x = y[n][m], t = T[n][m];
                switch (cases[i].loss) {
                case KILN_LOSS_MSE: want += d * d / (N * M); break;
                case KILN_LOSS_L1: want += a / (N * M); break;
                case KILN_LOSS_HUBER: want += (a < 1 ? 0.5 * d * d : a - 0.5) / (N * M); break;
                case KILN_LOSS_BCE_LOGITS: want += (fmax(x, 0) - x * t + log1p(exp(-fabs(x)))) / (N * M); break;
                default: {
                    double q = (m == classes[n] ? 1 - cases[i].smoothing : 0) + cases[i].smoothing / M;
                    want -= q * (x - lse) / N;
                }
                }
            }
        }
        kiln_train_options o;
        kiln_train_options_default(&o);
        o.loss = cases[i].loss, o.label_smoothing = cases[i].smoothing, o.batch = N, o.threads = 1;
        kiln_trainer *t;
        kiln_diag d = {0};
        assert_int_equal(kiln_trainer_create(model_path, &o, &t, &d), KILN_OK);
        kiln_tensor *x = tensor2(N, K, &X[0][0]), *target;
        int64_t dims[1] = {N};
        if (cases[i].loss == KILN_LOSS_CROSS_ENTROPY) {
            assert_int_equal(kiln_tensor_create(KILN_I64, 1, dims, &target, &d), KILN_OK);
            memcpy(target->data, classes, sizeof classes);
        } else {
            target = tensor2(N, M, &T[0][0]);
        }
        double loss;
        assert_int_equal(kiln_trainer_step(t, (const kiln_tensor *const *)&x, target, 0.01, &loss, NULL, &d), KILN_OK);
        if (fabs(loss - want) > 1e-6 + 1e-5 * fabs(want)) {
            print_error("%s: loss %.9g, by the formula %.9g\n", cases[i].name, loss, want);
            fail();
        }
        kiln_tensor_free(x), kiln_tensor_free(target);
        kiln_trainer_destroy(t);
    }
}

/* The trained model exported as ONNX and read back by kiln's importer predicts what the
 * trainer predicts, to the bit (same graph, same weights, same kernels). */
static void test_export_onnx(void **state) {
    (void)state;
    kiln_train_options o;
    kiln_train_options_default(&o);
    o.loss = KILN_LOSS_MSE, o.batch = N, o.threads = 1;
    kiln_trainer *t;
    kiln_diag d = {0};
    assert_int_equal(kiln_trainer_create(model_path, &o, &t, &d), KILN_OK);
    kiln_tensor *x = tensor2(N, K, &X[0][0]), *tg = tensor2(N, M, &T[0][0]), *want = NULL, *got = NULL;
    for (int i = 0; i < 3; i++)
        assert_int_equal(kiln_trainer_step(t, (const kiln_tensor *const *)&x, tg, 0.05, NULL, NULL, &d), KILN_OK);
    char onnx[128];
    snprintf(onnx, sizeof onnx, "%s.onnx", model_path);
    assert_int_equal(kiln_trainer_export_onnx(t, onnx, &d), KILN_OK);
    assert_int_equal(kiln_trainer_predict(t, (const kiln_tensor *const *)&x, &want, &d), KILN_OK);
    kiln_options mo = {.backend = KILN_BACKEND_JIT, .threads = 1, .batch = N};
    kiln_model *m;
    if (kiln_model_load(onnx, &mo, &m, &d)) {
        print_error("%s\n", d.message);
        fail();
    }
    assert_int_equal(kiln_model_run(m, (const kiln_tensor *const *)&x, &got, &d), KILN_OK);
    assert_memory_equal(got->data, want->data, kiln_tensor_bytes(want));
    unlink(onnx);
    kiln_model_destroy(m);
    kiln_tensor_free(x), kiln_tensor_free(tg), kiln_tensor_free(want), kiln_tensor_free(got);
    kiln_trainer_destroy(t);
}

/* Dropout in training: y = Dropout(x, 0.3) * w on x = 1, so the step's prediction is the
 * mask itself (the ratio, a param, is a setting and is not trained). About 30% of the elements drop (16384 of them: 4 standard deviations is
 * 0.015), the rest scale by 1 / 0.7; the weight gradient uses the same mask as the
 * forward pass (checked against the update by hand); masks depend on the seed and the
 * step, and not on the thread count. */
static kiln_trainer *dropout_trainer(const char *path, uint64_t seed, int threads) {
    kiln_train_options o;
    kiln_train_options_default(&o);
    o.optimizer = KILN_SGD, o.loss = KILN_LOSS_MSE, o.batch = 64, o.threads = threads, o.seed = seed;
    kiln_trainer *t;
    kiln_diag d = {0};
    if (kiln_trainer_create(path, &o, &t, &d)) {
        print_error("%s\n", d.message);
        fail();
    }
    return t;
}

static kiln_tensor *dropout_step(kiln_trainer *t, const kiln_tensor *x, const kiln_tensor *target) {
    kiln_tensor *pred = NULL;
    kiln_diag d = {0};
    assert_int_equal(kiln_trainer_step(t, (const kiln_tensor *const *)&x, target, 0.5, NULL, &pred, &d), KILN_OK);
    return pred;
}

static void test_dropout(void **state) {
    (void)state;
    char path[96];
    snprintf(path, sizeof path, "%s.dropout.kiln", model_path);
    FILE *f = fopen(path, "w");
    /* the ratio a param, as an ONNX initializer would be: read only as a setting, not trained */
    fputs("graph drop {\n  input %x: f32[N, 256]\n  param %r: f32[] = [0.3]\n"
          "  param %w: f32[256] = [", f);
    for (int i = 0; i < 256; i++)
        fputs(i ? ", 1" : "1", f);
    fputs("]\n  %d = Dropout(%x, %r)\n  %y = Mul(%d, %w)\n  output %y\n}\n", f);
    fclose(f);
    int64_t dims[2] = {64, 256};
    kiln_tensor *x, *target;
    kiln_diag d = {0};
    assert_int_equal(kiln_tensor_create(KILN_F32, 2, dims, &x, &d), KILN_OK);
    assert_int_equal(kiln_tensor_create(KILN_F32, 2, dims, &target, &d), KILN_OK);
    for (int64_t i = 0; i < 64 * 256; i++)
        ((float *)x->data)[i] = 1, ((float *)target->data)[i] = 0;
    kiln_trainer *a = dropout_trainer(path, 42, 1), *b = dropout_trainer(path, 42, 2), *c = dropout_trainer(path, 43, 1);
    assert_int_equal(kiln_trainer_param_count(a), 1);
    assert_string_equal(kiln_trainer_param_name(a, 0), "w");
    kiln_tensor *pa = dropout_step(a, x, target), *pb = dropout_step(b, x, target), *pc = dropout_step(c, x, target);
    int64_t dropped = 0;
    const float *m = pa->data;
    for (int64_t i = 0; i < 64 * 256; i++) {
        dropped += m[i] == 0;
        assert_true(m[i] == 0 || m[i] == (float)(1 / 0.7));
    }
    double frac = (double)dropped / (64 * 256);
    if (fabs(frac - 0.3) > 0.015) {
        print_error("dropped %.4f of the elements at ratio 0.3\n", frac);
        fail();
    }
    assert_memory_equal(pa->data, pb->data, kiln_tensor_bytes(pa)); /* threads change nothing */
    assert_true(memcmp(pa->data, pc->data, kiln_tensor_bytes(pa)) != 0); /* the seed does */
    /* MSE against 0: dL/dw_j = sum_n 2 y_nj m_nj / (64 * 256), y = m (w = 1) */
    const float *w = kiln_trainer_param(a, 0)->data;
    for (int j = 0; j < 256; j++) {
        double g = 0;
        for (int n = 0; n < 64; n++)
            g += 2.0 * m[n * 256 + j] * m[n * 256 + j] / (64 * 256);
        double want = 1 - 0.5 * g;
        if (fabs(w[j] - want) > 1e-6 + 1e-5 * fabs(want)) {
            print_error("w[%d] after one step: %.9g, by hand from the forward mask %.9g\n", j, w[j], want);
            fail();
        }
    }
    kiln_tensor *pa2 = dropout_step(a, x, target); /* the next step draws another mask */
    int64_t same = 0;
    for (int64_t i = 0; i < 64 * 256; i++)
        same += (((const float *)pa2->data)[i] == 0) == (m[i] == 0);
    assert_true(same < 64 * 256 * 3 / 4);
    kiln_tensor_free(pa), kiln_tensor_free(pb), kiln_tensor_free(pc), kiln_tensor_free(pa2);
    kiln_tensor_free(x), kiln_tensor_free(target);
    kiln_trainer_destroy(a), kiln_trainer_destroy(b), kiln_trainer_destroy(c);
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_optimizer_steps),
        cmocka_unit_test(test_loss_decreases),
        cmocka_unit_test(test_checkpoints),
        cmocka_unit_test(test_export_onnx),
        cmocka_unit_test(test_losses),
        cmocka_unit_test(test_dropout),
    };
    return cmocka_run_group_tests(tests, write_model, remove_model);
}
