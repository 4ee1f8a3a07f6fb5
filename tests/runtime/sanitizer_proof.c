/*
 * sanitizer_proof.c — deliberately broken, to show the sanitizers are really on: with
 * `asan` it reads one element past a tensor that libkiln allocated; with `ubsan` it
 * overflows a signed integer. Registered only in sanitizer builds (KILN_SANITIZE), where
 * ctest passes it only if the sanitizer's report appears. If a build lost its sanitizer
 * flags, the program would run to the end quietly and the test would fail.
 */
#include "kiln.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    if (!strcmp(argv[1], "asan")) {
        kiln_tensor *t;
        const int64_t dims[] = {4};
        if (kiln_tensor_create(KILN_F32, 1, dims, &t, NULL))
            return 2;
        volatile int64_t past = kiln_tensor_count(t); /* one past the end */
        float x = ((float *)t->data)[past];
        printf("read %g past the end: AddressSanitizer is not active\n", x);
        kiln_tensor_free(t);
    } else {
        volatile int big = INT_MAX;
        int y = big + 1;
        printf("computed %d: UndefinedBehaviorSanitizer is not active\n", y);
    }
    return 0;
}
