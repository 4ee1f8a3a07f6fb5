/*
 * test_layout.c — the blocked layout (passes/layout.c): convolutions run as ConvNCHWc
 * (direct, depthwise, grouped) or Winograd's kernels, the blocked values carried through maps,
 * pools and into a classifier, against the same graphs unblocked. Each graph runs with its
 * weights as graph inputs (the interpreter's plain Conv: the reference) and as constants,
 * which the layout pass blocks, through the interpreter, the JIT and the unfused JIT:
 * |got - want| <= 1e-5 scale + 1e-4 |want|, the scale growing with the terms of a sum.
 * ConvNCHWc with groups, written out directly, runs against the interpreter's own.
 */
#include "random_inputs.h"

#include "driver/model.h"

#include <stdlib.h>

#define JIT_ATOL 1e-5
#define JIT_RTOL 1e-4

static kiln_tensor *random_tensor(int rank, const int64_t *dims) { return random_tensor_of(rank, dims, false); }

static int blocked_threads; /* the JIT's threads in blocked_case (0: all) */

typedef struct weight_spec {
    const char *name;
    int rank;
    int64_t dims[4];
} weight_spec;

/* Runs `body` (input %a, the weights, output %y) with the weights as graph inputs (the
 * interpreter's plain Conv: the reference) and as constants, where inference convs become
 * ConvNCHWc or Winograd convs: through the interpreter, the JIT and the unfused JIT. The
 * constant graph must keep `blocked` blocked convs, `winograd` of them Winograd's. Weights are in [-1, 1] with three decimals, written out as
 * text and read back, so both graphs hold the same values. */
static void blocked_case(const char *body, int rank_a, const int64_t *a, int nw, const weight_spec *w, int blocked,
                         int winograd, int kernels, double atol_scale) {
    enum { CAP = 1 << 21 };
    char *with_consts = malloc(CAP), *with_inputs = malloc(CAP), ta[128];
    kiln_tensor *in[8] = {random_tensor(rank_a, a)};
    shape_text(rank_a, a, ta, sizeof ta);
    size_t nc = (size_t)snprintf(with_consts, CAP, "graph b {\n  input %%a: %s\n", ta);
    size_t ni = (size_t)snprintf(with_inputs, CAP, "graph b {\n  input %%a: %s\n", ta);
    for (int i = 0; i < nw; i++) {
        char tw[128];
        shape_text(w[i].rank, w[i].dims, tw, sizeof tw);
        nc += (size_t)snprintf(with_consts + nc, CAP - nc, "  const %%%s: %s = [", w[i].name, tw);
        ni += (size_t)snprintf(with_inputs + ni, CAP - ni, "  input %%%s: %s\n", w[i].name, tw);
        kiln_tensor *t;
        kiln_diag d = {0};
        assert_int_equal(kiln_tensor_create(KILN_F32, w[i].rank, w[i].dims, &t, &d), KILN_OK);
        for (int64_t k = 0; k < kiln_tensor_count(t); k++) {
            char v[16];
            snprintf(v, sizeof v, "%.3f", uniform(2001) / 1000.0 - 1);
            ((float *)t->data)[k] = strtof(v, NULL);
            nc += (size_t)snprintf(with_consts + nc, CAP - nc, "%s%s", k ? ", " : "", v);
        }
        nc += (size_t)snprintf(with_consts + nc, CAP - nc, "]\n");
        in[1 + i] = t;
    }
    snprintf(with_consts + nc, CAP - nc, "  %s\n  output %%y\n}\n", body);
    snprintf(with_inputs + ni, CAP - ni, "  %s\n  output %%y\n}\n", body);
    /* 1 thread: channel blocks in parallel; all (2 here): rows, the weights being small */
    kiln_options jit = {.backend = KILN_BACKEND_JIT, .threads = blocked_threads};
    kiln_options unfused = {.backend = KILN_BACKEND_JIT, .no_fuse = true, .threads = blocked_threads};
    kiln_model *ref_model, *m[3];
    kiln_diag d = {0};
    if (kiln_model_parse(with_inputs, strlen(with_inputs), "ref.kiln", NULL, &ref_model, &d) ||
        kiln_model_parse(with_consts, strlen(with_consts), "b.kiln", NULL, &m[0], &d) ||
        kiln_model_parse(with_consts, strlen(with_consts), "b.kiln", &jit, &m[1], &d) ||
        kiln_model_parse(with_consts, strlen(with_consts), "b.kiln", &unfused, &m[2], &d)) {
        print_error("%s\n%s", d.message, body);
        fail();
    }
    int count = 0, wcount = 0;
    for (int n = 0; n < m[1]->graph->node_count; n++) {
        count += m[1]->graph->nodes[n]->op == IR_OP_CONV_NCHWC;
        wcount += m[1]->graph->nodes[n]->op == IR_OP_WINOGRAD_OUTPUT;
    }
    if (count != blocked - winograd || wcount != winograd) {
        print_error("%d ConvNCHWc and %d Winograd convs, expected %d and %d:\n%s\n", count, wcount, blocked - winograd,
                    winograd, body);
        fail();
    }
    int every_run = 0; /* the kernels a run runs: not those that pack constants once */
    for (int k = 0; k < m[1]->lowered->kernel_count; k++)
        every_run += !m[1]->lowered->kernels[k]->once;
    if (kernels >= 0 && every_run != kernels) {
        print_error("%d kernels, expected %d:\n%s\n", every_run, kernels, body);
        fail();
    }
    kiln_tensor *ref, *got;
    assert_int_equal(kiln_model_run(ref_model, (const kiln_tensor *const *)in, &ref, &d), KILN_OK);
    static const char *const what[] = {"blocked interpreter vs Conv", "blocked JIT vs Conv", "blocked unfused JIT vs Conv"};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(kiln_model_run(m[k], (const kiln_tensor *const *)in, &got, &d), KILN_OK);
        if (!test_tensor_close(got, ref, JIT_ATOL * atol_scale, JIT_RTOL, what[k])) {
            print_error("%s\n", body);
            fail();
        }
        kiln_tensor_free(got);
        kiln_model_destroy(m[k]);
    }
    for (int i = 0; i <= nw; i++)
        kiln_tensor_free(in[i]);
    kiln_tensor_free(ref);
    kiln_model_destroy(ref_model);
    free(with_consts), free(with_inputs);
}

/* Whether passes/layout.c takes the Winograd kernels for a 3x3 stride-1 conv of this
 * geometry (its rule, restated: at least 16 tiles and 16 input channels). */
static bool winograd_pays(int64_t n, int64_t cin, int64_t oh, int64_t ow) {
    return n * ((oh + 1) / 2) * ((ow + 1) / 2) >= 16 && cin >= 16;
}

/* One conv on random geometry (1 to 40 input channels, 16 to 48 outputs: one or two
 * channel blocks per lane loop; widths that leave a partial segment or take whole rows;
 * pads, strides, dilations, with and without bias), then a ResNet-like block, blocked from
 * its first conv to its end: conv, Relu, conv, a 1x1 strided shortcut conv, Add, Relu, a
 * per-channel Mul, MaxPool, and sometimes a GlobalAveragePool read through the NCHW value. */
static void test_blocked_convs(void **state) {
    (void)state;
    for (int trial = 0; trial < 10; trial++) {
        blocked_threads = trial % 3 ? 0 : 1;
        int64_t cin = 1 + uniform(40), cout = 16 * (1 + uniform(3)), k = 1 + uniform(3);
        int64_t x[4] = {1 + uniform(2), cin, 5 + uniform(16), 5 + uniform(40)};
        int p[4] = {uniform(2), uniform(2), uniform(2), uniform(2)}, st = 1 + uniform(2), dl = 1 + uniform(2);
        bool bias = uniform(2);
        weight_spec w[5] = {{"w", 4, {cout, cin, k, k}}, {"bias", 1, {cout}}};
        char body[600];
        snprintf(body, sizeof body, "%%c = Conv(%%a, %%w%s) {pads = [%d, %d, %d, %d], strides = [%d, %d], dilations = [%d, %d]}\n  %%y = Relu(%%c)",
                 bias ? ", %bias" : "", p[0], p[1], p[2], p[3], st, st, dl, dl);
        int64_t ow = (x[3] + p[1] + p[3] - dl * (k - 1) - 1) / st + 1;
        int64_t oh = (x[2] + p[0] + p[2] - dl * (k - 1) - 1) / st + 1;
        bool wino = k == 3 && st == 1 && dl == 1 && winograd_pays(x[0], cin, oh, ow);
        blocked_case(body, 4, x, bias ? 2 : 1, w, wino || ow % 16 || st != 1, wino, -1, (double)(cin * k * k) / 36 + 1);

        int64_t c = 1 + uniform(20), s = 2;
        int64_t xb[4] = {1 + uniform(2), c, 6 + uniform(20), 6 + uniform(30)};
        weight_spec wb[5] = {{"w1", 4, {32, c, 3, 3}}, {"w2", 4, {32, 32, 3, 3}}, {"w3", 4, {32, c, 1, 1}}, {"scale", 3, {32, 1, 1}}};
        snprintf(body, sizeof body,
                 "%%c1 = Conv(%%a, %%w1) {pads = [1, 1, 1, 1], strides = [%lld, %lld]}\n  %%r1 = Relu(%%c1)\n"
                 "  %%c2 = Conv(%%r1, %%w2) {pads = [1, 1, 1, 1]}\n  %%c3 = Conv(%%a, %%w3) {strides = [%lld, %lld]}\n"
                 "  %%s = Add(%%c2, %%c3)\n  %%r2 = Relu(%%s)\n  %%m = Mul(%%r2, %%scale)\n"
                 "  %%%s = MaxPool(%%m) {kernel_shape = [3, 3], pads = [1, 1, 1, 1], strides = [2, 2]}%s",
                 (long long)s, (long long)s, (long long)s, (long long)s, trial % 2 ? "p" : "y",
                 trial % 2 ? "\n  %y = GlobalAveragePool(%p)" : "");
        int64_t ow2 = (xb[3] - 1) / s + 1; /* the stride-1 conv keeps the row schedule on 16 columns */
        /* fused, blocked: conv1 + Relu; the shortcut; conv2 + Add + Relu + Mul; MaxPool; the
         * Transpose back to NCHW; the Reshape after it, or a GlobalAveragePool reading
         * through it (a view, inlined) */
        bool wino2 = winograd_pays(xb[0], 32, (xb[2] - 1) / s + 1, ow2); /* conv2 as one fused Winograd kernel */
        blocked_case(body, 4, xb, 4, wb, wino2 || ow2 % 16 ? 3 : 2, wino2, wino2 || ow2 % 16 ? 6 : -1, 300);

        /* a classifier on the blocked value: conv (stride 2: blocked), Relu, MaxPool, then a
         * Flatten or a Reshape to [N, C H W] into a Gemm (transB or not, with a bias or not),
         * which takes the blocked value flattened with its weights' rows permuted: 3 kernels,
         * no Transpose back to NCHW */
        int64_t cf = 1 + uniform(8), co2 = 16 * (1 + uniform(2)), classes = 1 + uniform(20);
        int64_t xf[4] = {1 + uniform(3), cf, 8 + uniform(12), 8 + uniform(12)};
        int64_t feat = co2 * (((xf[2] - 1) / 2 + 1) / 2) * (((xf[3] - 1) / 2 + 1) / 2);
        bool tb = uniform(2), fc_bias = uniform(2);
        weight_spec wf[5] = {{"w", 4, {co2, cf, 3, 3}}, {"fc", 2, {tb ? classes : feat, tb ? feat : classes}}, {"fb", 1, {classes}}};
        snprintf(body, sizeof body,
                 "%%c = Conv(%%a, %%w) {pads = [1, 1, 1, 1], strides = [2, 2]}\n  %%r = Relu(%%c)\n"
                 "  %%p = MaxPool(%%r) {kernel_shape = [2, 2], strides = [2, 2]}\n  %s\n"
                 "  %%y = Gemm(%%f, %%fc%s) {transB = %d}",
                 trial % 2 ? "%f = Flatten(%p) {axis = 1}" : "const %s: i64[2] = [0, -1]\n  %f = Reshape(%p, %s)",
                 fc_bias ? ", %fb" : "", tb);
        blocked_case(body, 4, xf, fc_bias ? 3 : 2, wf, 1, 0, 3, 300);

        /* Winograd: a 3x3 conv reading the NCHW input (blocked first where its channels are a
         * multiple of 16), then one reading the first's blocked output; pads of 0 to 2 per side,
         * odd and even sizes (a last tile half outside), with and without bias; fused (blocks
         * of tiles, a last partial block, 1 or 8 slots) and unfused (three kernels) */
        int64_t ci = 16 + uniform(40), co = 16 * (1 + uniform(3));
        int64_t xw[4] = {1 + uniform(2), ci, 4 + uniform(14), 4 + uniform(14)};
        int q[8];
        for (int i = 0; i < 8; i++)
            q[i] = uniform(3);
        weight_spec ww[5] = {{"w1", 4, {co, ci, 3, 3}}, {"w2", 4, {co, co, 3, 3}}, {"bias", 1, {co}}};
        snprintf(body, sizeof body,
                 "%%c1 = Conv(%%a, %%w1) {pads = [%d, %d, %d, %d]}\n  %%r1 = Relu(%%c1)\n"
                 "  %%y = Conv(%%r1, %%w2%s) {pads = [%d, %d, %d, %d]}",
                 q[0], q[1], q[2], q[3], bias ? ", %bias" : "", q[4], q[5], q[6], q[7]);
        int64_t h1 = xw[2] + q[0] + q[2] - 2, w1 = xw[3] + q[1] + q[3] - 2;
        int64_t h2 = h1 + q[4] + q[6] - 2, w2 = w1 + q[5] + q[7] - 2;
        if (h2 < 1 || w2 < 1)
            continue;
        bool first = winograd_pays(xw[0], ci, h1, w1), second = winograd_pays(xw[0], co, h2, w2);
        /* the row schedule stays where rows fill the vectors, unless the conv is Winograd's
         * or its result flows into a Winograd conv */
        bool rows1 = w1 % 16 == 0 && !first && !second, rows2 = w2 % 16 == 0 && !second;
        blocked_case(body, 4, xw, bias ? 3 : 2, ww, !rows1 + !rows2, first + second, -1, 300);
    }
}

/* A random window over image x [N, C, H, W] for a kh x kw kernel: pads p of 0 to 2 per
 * side, stride and dilation 1 or 2; false where the dilated kernel does not fit the padded
 * image (the caller draws again). */
static bool draw_window(const int64_t *x, int64_t kh, int64_t kw, int *p, int *st, int *dl) {
    for (int i = 0; i < 4; i++)
        p[i] = uniform(3);
    *st = 1 + uniform(2), *dl = 1 + uniform(2);
    return x[2] + p[0] + p[2] >= *dl * (kh - 1) + 1 && x[3] + p[1] + p[3] >= *dl * (kw - 1) + 1;
}

/* Depthwise convs (lower_depthwise.c): 16 to 48 channels (one or two channel blocks per
 * lane loop), kernels 1 to 5 wide and high (7 wide: one block), pads of 0 to 2 per side,
 * strides and dilations 1 or 2, images from 1 x 1 (whole rows per block, partial blocks)
 * to 20 x 40 (segments), with and without bias, a Relu after. Half read a 1x1 conv's
 * blocked output (vector loads), half the NCHW input (a gather per lane). */
static void test_depthwise_convs(void **state) {
    (void)state;
    for (int trial = 0; trial < 16; trial++) {
        blocked_threads = trial % 3 ? 0 : 1;
        int64_t ch = 16 * (1 + uniform(3)), kh = 1 + uniform(5), kw = trial % 8 == 7 ? 7 : 1 + uniform(5);
        bool after_conv = trial % 2, bias = uniform(2);
        int64_t cin = after_conv ? 1 + uniform(20) : ch;
        int64_t x[4] = {1 + uniform(2), cin, 1 + uniform(20), 1 + uniform(40)};
        int p[4], st, dl;
        if (!draw_window(x, kh, kw, p, &st, &dl)) {
            trial--; /* the window does not fit: draw again */
            continue;
        }
        weight_spec w[3] = {{"w", 4, {ch, 1, kh, kw}}, {"bias", 1, {ch}}, {"w0", 4, {ch, cin, 1, 1}}};
        char body[600];
        snprintf(body, sizeof body,
                 "%s%%c = Conv(%%%s, %%w%s) {group = %lld, pads = [%d, %d, %d, %d], strides = [%d, %d], dilations = [%d, %d]}\n"
                 "  %%y = Relu(%%c)",
                 after_conv ? "%e = Conv(%a, %w0)\n  " : "", after_conv ? "e" : "a", bias ? ", %bias" : "", (long long)ch, p[0],
                 p[1], p[2], p[3], st, st, dl, dl);
        if (after_conv && !bias) /* the weights in the order the body names them */
            w[1] = w[2];
        blocked_case(body, 4, x, 1 + bias + after_conv, w, 1 + after_conv, 0, -1, (double)(kh * kw) / 36 + 1 + after_conv * cin / 8.0);
    }
}

/* Channels that are not a multiple of the block (17 to 40, padded: layout.c's padded()),
 * blocked from the first conv to the last: conv + bias + Relu, a per-channel Mul and Add,
 * a depthwise conv over the padded channels (stride 1 or 2), Relu and a scalar Add (the
 * padding is 0.5 there), then a 3x3 conv (Winograd's where it pays, reading the padded
 * input; NCHW below 16 channels) to 1 to 40 channels, then the output itself (sliced back), a
 * MaxPool or a GlobalMaxPool (blocked: its NCHW value is the blocked one reshaped); a Div
 * (which could make the padding infinite) keeps its input NCHW. */
static void test_padded_channels(void **state) {
    (void)state;
    for (int trial = 0; trial < 12; trial++) {
        blocked_threads = trial % 3 ? 0 : 1;
        int64_t cin = 1 + uniform(8), c1 = 17 + uniform(24), c3 = 1 + uniform(40), st = 1 + uniform(2);
        int64_t x[4] = {1 + uniform(2), cin, 4 + uniform(14), 4 + uniform(30)};
        weight_spec w[6] = {{"w1", 4, {c1, cin, 3, 3}}, {"b1", 1, {c1}}, {"scale", 3, {c1, 1, 1}},
                            {"shift", 3, {c1, 1, 1}}, {"wd", 4, {c1, 1, 3, 3}}, {"w3", 4, {c3, c1, 3, 3}}};
        bool pool = trial % 2, div = trial % 4 == 3;
        char body[900];
        snprintf(body, sizeof body,
                 "%%c1 = Conv(%%a, %%w1, %%b1) {pads = [1, 1, 1, 1]}\n  %%r1 = Relu(%%c1)\n  %%m = Mul(%%r1, %%scale)\n"
                 "  %%s = Add(%%m, %%shift)\n  %%d = Conv(%%s, %%wd) {group = %lld, pads = [1, 1, 1, 1], strides = [%lld, %lld]}\n"
                 "  %%r = Relu(%%d)\n  const %%half: f32[1] = [0.5]\n  %%r2 = Add(%%r, %%half)\n"
                 "  %%c3 = Conv(%%r2, %%w3) {pads = [1, 1, 1, 1]}\n  %%%s = %s%s",
                 (long long)c1, (long long)st, (long long)st, pool ? "y" : div ? "q" : "y",
                 pool ? (trial % 4 == 1 ? "GlobalMaxPool(%c3)" : "MaxPool(%c3) {kernel_shape = [2, 2], strides = [2, 2]}")
                      : div ? "Div(%c3, %c3)" : "Relu(%c3)",
                 !pool && div ? "\n  %y = Add(%q, %c3)" : "");
        int64_t oh = (x[2] - 1) / st + 1, ow = (x[3] - 1) / st + 1;
        bool wino = c3 % 16 == 0 && winograd_pays(x[0], c1, oh, ow);
        blocked_case(body, 4, x, 6, w, 2 + (c3 >= 16), wino, -1, (double)(c1 * 9) / 36 + 1); /* fewer than 16: NCHW */
    }
}

/* Grouped convs that are not depthwise (layout.c's grouped()): groups of c input and c
 * output channels, c = 2, 4 or 8, that tile the blocks (a shuffle of the input block;
 * 24 or 40 channels are padded with whole groups; taps shared at stride 1), groups of 16
 * or 32 output channels (a broadcast, as a dense conv's), and groupings that stay NCHW
 * (3 or 6 channels, or more input than output channels per group below a block). Kernels
 * 1 to 3 (5 wide), pads 0 to 2, strides and dilations 1 or 2, with and without bias, a
 * Relu after; on a 1x1 conv's blocked output, or on the NCHW input, where groups that tile
 * would gather and stay NCHW. */
static void test_grouped_convs(void **state) {
    (void)state;
    static const struct { int64_t cin_g, cout_g, channels; } groupings[] = {
        {2, 2, 32}, {4, 4, 32}, {8, 8, 48}, {8, 8, 24}, {4, 4, 40}, /* tile the blocks */
        {16, 16, 32}, {32, 32, 64}, {8, 16, 32},                   /* a block inside a group */
        {3, 3, 48}, {6, 6, 24}, {8, 4, 32},                        /* NCHW */
    };
    for (int trial = 0; trial < 2 * ARRAY_LEN(groupings); trial++) {
        blocked_threads = trial % 3 ? 0 : 1;
        int64_t cin_g = groupings[trial / 2].cin_g, cout_g = groupings[trial / 2].cout_g;
        int64_t ch_in = groupings[trial / 2].channels, groups = ch_in / cin_g, ch_out = groups * cout_g;
        int64_t kh = 1 + uniform(3), kw = trial % 5 == 4 ? 5 : 1 + uniform(3);
        bool after_conv = trial % 2 == 0, bias = uniform(2);
        int64_t cin = after_conv ? 1 + uniform(20) : ch_in;
        int64_t x[4] = {1 + uniform(2), cin, 3 + uniform(18), 3 + uniform(38)};
        int p[4], st, dl;
        if (!draw_window(x, kh, kw, p, &st, &dl)) {
            trial--; /* the window does not fit: draw again */
            continue;
        }
        weight_spec w[3] = {{"w", 4, {ch_out, cin_g, kh, kw}}, {"bias", 1, {ch_out}}, {"w0", 4, {ch_in, cin, 1, 1}}};
        char body[600];
        snprintf(body, sizeof body,
                 "%s%%c = Conv(%%%s, %%w%s) {group = %lld, pads = [%d, %d, %d, %d], strides = [%d, %d], dilations = [%d, %d]}\n"
                 "  %%y = Relu(%%c)",
                 after_conv ? "%e = Conv(%a, %w0)\n  " : "", after_conv ? "e" : "a", bias ? ", %bias" : "", (long long)groups,
                 p[0], p[1], p[2], p[3], st, st, dl, dl);
        if (after_conv && !bias) /* the weights in the order the body names them */
            w[1] = w[2];
        bool tiles = cin_g == cout_g && 16 % cout_g == 0, in_block = cout_g % 16 == 0;
        /* blocked: both convs, where the grouped one is (the 1x1 conv blocked for it); on the
         * NCHW input, only a conv whose blocks lie inside groups */
        int blocked = after_conv ? 2 * (tiles || in_block) : in_block;
        blocked_case(body, 4, x, 1 + bias + after_conv, w, blocked, 0, -1,
                     (double)(cin_g * kh * kw) / 36 + 1 + after_conv * cin / 8.0);
    }
}

/* Squeeze and excitation (EfficientNet's, RegNetY's): a blocked conv's output x scaled by
 * per-channel values computed from it, sigmoid(conv(relu(conv(mean over pixels)))), then a
 * 1x1 conv. x * scale stays blocked, the [N, C, 1, 1] scale broadcasting over the blocked
 * pixels (layout.c's blocked_map): 16 to 40 channels (padded: the padding's sigmoid is 0.5,
 * times x's zeros), squeezed to 4 to 8 (an NCHW conv), the last conv to 16 or 48. */
static void test_squeeze_excitation(void **state) {
    (void)state;
    for (int trial = 0; trial < 6; trial++) {
        blocked_threads = trial % 3 ? 0 : 1;
        int64_t cin = 1 + uniform(8), c = 16 + uniform(25), sq = 4 + uniform(5), cout = trial % 2 ? 48 : 16;
        int64_t x[4] = {1 + uniform(2), cin, 4 + uniform(12), 4 + uniform(20)};
        weight_spec w[4] = {{"w1", 4, {c, cin, 3, 3}}, {"w2", 4, {sq, c, 1, 1}}, {"w3", 4, {c, sq, 1, 1}}, {"w4", 4, {cout, c, 1, 1}}};
        const char *body = "%c = Conv(%a, %w1) {pads = [1, 1, 1, 1]}\n  %x = Relu(%c)\n  %g = GlobalAveragePool(%x)\n"
                           "  %f = Conv(%g, %w2)\n  %r = Relu(%f)\n  %e = Conv(%r, %w3)\n  %s = Sigmoid(%e)\n"
                           "  %m = Mul(%x, %s)\n  %y = Conv(%m, %w4)";
        /* blocked: the first conv, the excitation (rows of one pixel) and the last conv;
         * kernels: conv + Relu, the pool, the squeeze, the excitation + Sigmoid, the last
         * conv with x * scale inlined (16 channels) or a kernel of x * scale before it (48:
         * fuse.c's rereads_input), the Transpose back to NCHW and the Reshape after it */
        blocked_case(body, 4, x, 4, w, 3, 0, trial % 2 ? 8 : 7, (double)(c * 9) / 36 + 1);
    }
}

/* ConvNeXt's block after a 1x1 conv: a depthwise 7x7 conv, a Transpose to NHWC, LayerNorm
 * over channels, a MatMul, the Transpose back to NCHW, a per-channel Mul, the residual Add
 * (of the 1x1 conv's output), and the next depthwise conv. The Transposes move whole channel blocks (layout.c's nhwc_of_blocked,
 * blocked_of_nhwc): the convs stay blocked with the Add between them, 16 to 48 channels,
 * images 1x1 to 14x20, 1 or 2 images. */
static void test_nhwc_blocks(void **state) {
    (void)state;
    for (int trial = 0; trial < 6; trial++) {
        blocked_threads = trial % 3 ? 0 : 1;
        int64_t c = 16 * (1 + uniform(3)), x[4] = {1 + uniform(2), c, 1 + uniform(14), 1 + uniform(20)};
        int64_t cin = 1 + uniform(8);
        x[1] = cin;
        weight_spec w[7] = {{"w0", 4, {c, cin, 1, 1}}, {"d1", 4, {c, 1, 7, 7}}, {"ln_s", 1, {c}}, {"ln_b", 1, {c}},
                            {"fc", 2, {c, c}}, {"gamma", 3, {c, 1, 1}}, {"d2", 4, {c, 1, 3, 3}}};
        char body[900];
        snprintf(body, sizeof body,
                 "%%e = Conv(%%a, %%w0)\n  %%d = Conv(%%e, %%d1) {group = %lld, pads = [3, 3, 3, 3]}\n"
                 "  %%t = Transpose(%%d) {perm = [0, 2, 3, 1]}\n"
                 "  %%n = LayerNormalization(%%t, %%ln_s, %%ln_b) {axis = -1}\n  %%m = MatMul(%%n, %%fc)\n"
                 "  %%u = Transpose(%%m) {perm = [0, 3, 1, 2]}\n  %%g = Mul(%%gamma, %%u)\n  %%r = Add(%%g, %%e)\n"
                 "  %%y = Conv(%%r, %%d2) {group = %lld, pads = [1, 1, 1, 1]}",
                 (long long)c, (long long)c);
        /* blocked: the 1x1 conv (the residual) and both depthwise convs; kernels: those
         * three, the NHWC block move and its reshape, LayerNorm, MatMul (the Mul and Add
         * inlined into the second depthwise conv, the move back a view), and the Transpose
         * and Reshape back to NCHW */
        blocked_case(body, 4, x, 7, w, 3, 0, 9, (double)c / 36 + 2);
    }
}

/* Runs `src` (inputs %a and %w, output %y) in the interpreter, the JIT and the unfused JIT. */
static void same_as_interpreter(const char *src, kiln_tensor *const *in, double atol_scale) {
    kiln_options jit = {.backend = KILN_BACKEND_JIT}, unfused = {.backend = KILN_BACKEND_JIT, .no_fuse = true};
    const kiln_options *opts[3] = {NULL, &jit, &unfused};
    kiln_tensor *out[3];
    for (int k = 0; k < 3; k++) {
        kiln_model *m;
        kiln_diag d = {0};
        if (kiln_model_parse(src, strlen(src), "grouped.kiln", opts[k], &m, &d) ||
            kiln_model_run(m, (const kiln_tensor *const *)in, &out[k], &d)) {
            print_error("%s\n%s", d.message, src);
            fail();
        }
        kiln_model_destroy(m);
    }
    for (int k = 1; k < 3; k++)
        if (!test_tensor_close(out[k], out[0], JIT_ATOL * atol_scale, JIT_RTOL, k == 1 ? "grouped ConvNCHWc JIT" : "unfused")) {
            print_error("%s", src);
            fail();
        }
    for (int k = 0; k < 3; k++)
        kiln_tensor_free(out[k]);
}

/* ConvNCHWc with groups, as the .kiln text can write it (the layout pass makes only the
 * depthwise ones): output blocks inside one group in pairs (a broadcast of the group's
 * channel) or one at a time, groups narrower than a block (a shuffle of the input block
 * where a group's input and output channels are as many, else a gather per lane), depthwise
 * on either input layout and 17 taps wide (past the depthwise kernel's unrolled rows:
 * the general path), blocked or NCHW input. */
static void test_grouped_nchwc(void **state) {
    (void)state;
    static const struct { int64_t groups, cin_g, cout; int kw; } cases[] = {
        {2, 3, 64, 3}, {3, 5, 48, 2}, {4, 4, 32, 3}, {16, 2, 32, 1}, {32, 1, 32, 3}, {16, 1, 16, 17}, {2, 16, 32, 3},
        {8, 4, 32, 3}, {6, 8, 48, 3}, {16, 2, 32, 3}, /* groups that tile a block: a shuffle of its input block */
    };
    for (int i = 0; i < ARRAY_LEN(cases); i++)
        for (int blocked = 0; blocked < 2; blocked++) {
            int64_t c = cases[i].groups * cases[i].cin_g, h = 3 + uniform(9), wd = cases[i].kw + uniform(20);
            if (blocked && c % 16)
                continue;
            int64_t xn[4] = {1 + uniform(2), c, h, wd}, xb[5] = {xn[0], c / 16, h, wd, 16};
            int64_t wt[5] = {cases[i].cout / 16, 3, cases[i].kw, cases[i].cin_g, 16};
            char ta[128], tw[128], src[1024];
            shape_text(blocked ? 5 : 4, blocked ? xb : xn, ta, sizeof ta);
            shape_text(5, wt, tw, sizeof tw);
            int pad = uniform(2), stride = 1 + uniform(2);
            snprintf(src, sizeof src,
                     "graph g {\n  input %%a: %s\n  input %%w: %s\n"
                     "  %%y = ConvNCHWc(%%a, %%w) {group = %lld, kernel_shape = [3, %d], pads = [%d, %d, %d, %d], strides = [%d, %d]}\n"
                     "  output %%y\n}\n",
                     ta, tw, (long long)cases[i].groups, cases[i].kw, pad, pad, pad, pad, stride, stride);
            kiln_tensor *in[2] = {random_tensor(blocked ? 5 : 4, blocked ? xb : xn), random_tensor(5, wt)};
            same_as_interpreter(src, in, (double)(3 * cases[i].kw * cases[i].cin_g) / 9 + 1);
            kiln_tensor_free(in[0]), kiln_tensor_free(in[1]);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_blocked_convs),
        cmocka_unit_test(test_depthwise_convs),
        cmocka_unit_test(test_padded_channels),
        cmocka_unit_test(test_grouped_convs),
        cmocka_unit_test(test_squeeze_excitation),
        cmocka_unit_test(test_nhwc_blocks),
        cmocka_unit_test(test_grouped_nchwc),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
