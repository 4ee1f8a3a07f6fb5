/*
 * print.h — writes a graph in the .kiln text format, the IR's printed form.
 *
 * The format (parsed back by frontend/txt_parse.c; print -> parse -> print is the identity):
 *
 *   # a comment
 *   graph mlp {
 *     input %x: f32[N, 784]                        # N: the symbolic batch dimension
 *     param %w: f32[784, 10] = npz("mlp.npz", "w") # trainable; data from a file beside it
 *     const %s: i64[2] = [1, -1]                   # frozen; data inline
 *     %h = MatMul(%x, %w)                          # output types are optional
 *     "fc/relu": %y: f32[N, 10] = Relu(%h)         # a node name, when not the first output's
 *     %a, %b = Split(%y, _) {axis = 1, split = [5, 5]}   # _ is an omitted optional input
 *     output %y, %a
 *   }
 */
#ifndef KILN_IR_PRINT_H
#define KILN_IR_PRINT_H

#include "ir/graph.h"

#include <stdio.h>

typedef struct ir_print_opts {
    int64_t elide_over; /* print "<N values>" for inline data above this many elements; 0: never
                           (the result then does not parse back: for dumps only) */
} ir_print_opts;

void ir_print(const ir_graph *g, FILE *f, const ir_print_opts *opts); /* opts may be NULL */
/* The whole graph as a malloc'd string (caller frees); NULL on OOM. */
char *ir_print_string(const ir_graph *g, const ir_print_opts *opts);
/* A value reference as the format writes it: %name or %"quoted name". */
void ir_print_value_ref(FILE *f, const char *name);
void ir_print_type(FILE *f, const ir_graph *g, const kiln_tensor *type);
/* The same text in buf (for messages); returns buf, or "?" if it cannot be written. */
const char *ir_type_text(const kiln_tensor *type, char *buf, size_t cap);
/* The shortest decimal that reads back to the same double (or float, if `as_float`). */
void ir_format_number(char *buf, size_t cap, double v, bool as_float);

#endif
