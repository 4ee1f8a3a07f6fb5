/*
 * diag.h — source locations and error reporting for the compiler.
 *
 * Every IR node carries a kiln_loc; diag_error prefixes the message with it, giving
 *   mlp.kiln:12:9: node 'fc1' (MatMul): inner dimensions differ: 784 vs 256
 * The first error recorded in a kiln_diag wins; later ones are dropped.
 */
#ifndef KILN_IR_DIAG_H
#define KILN_IR_DIAG_H

#include "kiln.h"
#include "runtime/rt.h"

#include <stdio.h>
#include <stdlib.h>

typedef struct kiln_loc {
    const char *file; /* model file, or NULL */
    int line, col;    /* 1-based in .kiln text; 0 when unknown */
    const char *node; /* node name, or NULL */
    const char *op;   /* op name, or NULL */
} kiln_loc;

#define LOC_NONE ((kiln_loc){0})

kiln_status diag_error(kiln_diag *d, kiln_loc loc, kiln_status st, const char *fmt, ...)
    KILN_PRINTF(4, 5);

/* For kiln's own invariants only, never for anything a model can influence. */
#define KILN_ASSERT(cond)                                                                       \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            fprintf(stderr, "kiln: internal error at %s:%d: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                            \
        }                                                                                       \
    } while (0)

#define ARRAY_LEN(a) ((int)(sizeof(a) / sizeof((a)[0])))

#endif
