/*
 * einsum.h — Einsum equations, parsed once for shape inference and the interpreter.
 *
 * Every letter and every axis covered by "..." becomes a label. Ellipsis axes line up
 * from the right across operands and broadcast (size 1 against n); letters must agree
 * exactly. Without "->", the output is the ellipsis axes, then the letters that occur
 * once, in alphabetical order.
 */
#ifndef KILN_PASSES_EINSUM_H
#define KILN_PASSES_EINSUM_H

#include "passes/shape.h"

enum { EINSUM_LABELS = 52 + KILN_MAX_RANK, EINSUM_OPERANDS = 16 };

typedef struct einsum_spec {
    int operand_count;
    int rank[EINSUM_OPERANDS];
    int label[EINSUM_OPERANDS][KILN_MAX_RANK]; /* label of each operand axis */
    int out_rank;
    int out_label[KILN_MAX_RANK];
    int label_count;                 /* labels 0..label_count-1 are used */
    int64_t size[EINSUM_LABELS];     /* each label's extent; IR_DIM_UNKNOWN if not known */
} einsum_spec;

kiln_status einsum_parse(const shape_ctx *c, einsum_spec *s);

#endif
