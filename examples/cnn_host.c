/*
 * cnn_host.c — a host program that uses a kiln-compiled library through its emitted
 * header only: it runs libcnn.so (built by `kiln compile examples/models/cnn.kiln -o
 * libcnn.so --batch 4`) on a .npy batch of four 28x28 images and prints each image's
 * predicted class and probability.
 *
 * usage: cnn_host IMAGES.npy
 */
#include "cnn.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The float32 data of a version-1 .npy file whose shape is the model's input. */
static int read_npy_floats(const char *path, float *out, size_t count) {
    FILE *f = fopen(path, "rb");
    unsigned char head[10];
    if (!f || fread(head, 1, 10, f) != 10 || memcmp(head, "\x93NUMPY", 6) || head[6] != 1) {
        if (f)
            fclose(f);
        return -1;
    }
    long header_len = head[8] | head[9] << 8;
    int ok = fseek(f, 10 + header_len, SEEK_SET) == 0 && fread(out, sizeof(float), count, f) == count;
    fclose(f);
    return ok ? 0 : -1;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s IMAGES.npy\n", argv[0]);
        return 2;
    }
    const kiln_tensor_desc *in = cnn_input_desc(0), *out = cnn_output_desc(1); /* "probs" */
    size_t in_count = 1, out_count = 1;
    for (int d = 0; d < in->rank; d++)
        in_count *= (size_t)in->dims[d];
    for (int d = 0; d < out->rank; d++)
        out_count *= (size_t)out->dims[d];
    float *images = malloc(in_count * sizeof *images), *logits = malloc(out_count * sizeof *logits);
    float *probs = malloc(out_count * sizeof *probs);
    cnn_ctx *ctx = cnn_create();
    if (!images || !logits || !probs || !ctx || read_npy_floats(argv[1], images, in_count)) {
        fprintf(stderr, "%s: cannot read %s (expected %zu floats)\n", argv[0], argv[1], in_count);
        return 1;
    }
    const void *inputs[1] = {images};
    void *outputs[2] = {logits, probs};
    if (cnn_run(ctx, inputs, outputs)) {
        fprintf(stderr, "%s: %s\n", argv[0], cnn_last_error(ctx));
        return 1;
    }
    int64_t classes = out->dims[1];
    for (int64_t b = 0; b < out->dims[0]; b++) {
        int64_t best = 0;
        for (int64_t c = 1; c < classes; c++)
            if (probs[b * classes + c] > probs[b * classes + best])
                best = c;
        printf("image %lld: class %lld (p = %.3f)\n", (long long)b, (long long)best, probs[b * classes + best]);
    }
    cnn_destroy(ctx);
    free(images), free(logits), free(probs);
    return 0;
}
