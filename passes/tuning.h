/*
 * tuning.h — schedule choices per node, measured by `kiln tune` and followed by the
 * compiler where its cost rules would otherwise decide.
 *
 * A tuning file is text, one choice per line, `#` starts a comment:
 *   conv direct /layer4/layer4.0/conv2/Conv
 *   conv_order channels /layer1/layer1.0/conv1/Conv.nchwc
 * the knob, its value, then the node's name (the rest of the line: names may hold
 * spaces). The knobs:
 *   conv        winograd | direct   a 3x3 stride-1 conv as Winograd F(2x2, 3x3) or as the
 *                                   blocked direct conv (passes/layout.c; the original
 *                                   Conv node's name)
 *   conv_order  rows | channels     what a blocked conv's threads split: output rows, each
 *                                   thread reading all the weights, or channel blocks, each
 *                                   streaming its share (lower_window.c; the ConvNCHWc
 *                                   node's name)
 * A choice that cannot apply (Winograd for a strided conv) leaves the cost rule's; names
 * that match no node are ignored, so one file serves models that share layers.
 */
#ifndef KILN_PASSES_TUNING_H
#define KILN_PASSES_TUNING_H

#include "ir/diag.h"

typedef enum tuning_knob { TUNE_CONV, TUNE_CONV_ORDER, TUNE_KNOBS } tuning_knob;
enum { TUNE_UNSET = -1 };
/* the values of each knob, in the file's words: conv 0 direct, 1 winograd; conv_order 0
 * rows, 1 channels */
enum { TUNE_DIRECT = 0, TUNE_WINOGRAD = 1, TUNE_ROWS = 0, TUNE_CHANNELS = 1 };

typedef struct tuning_choice {
    tuning_knob knob;
    int value;
    char *node;
} tuning_choice;

typedef struct kiln_tuning {
    tuning_choice *choices;
    int count, cap;
    int all[TUNE_KNOBS]; /* kiln tune's trials: a value for every node (TUNE_UNSET: none) */
} kiln_tuning;

const char *tuning_knob_name(tuning_knob k);
const char *tuning_value_name(tuning_knob k, int value);
/* An empty table (every knob unset); NULL when out of memory. */
kiln_tuning *tuning_new(void);
void tuning_free(kiln_tuning *t); /* NULL is a no-op */
/* Adds (or replaces) node's choice for knob; TUNE_UNSET removes it. */
kiln_status tuning_set(kiln_tuning *t, tuning_knob k, const char *node, int value, kiln_diag *d);
/* The text of a tuning file (`file` names it in messages) into a new table. */
kiln_status tuning_parse(const char *text, size_t len, const char *file, kiln_tuning **out, kiln_diag *d);
/* The value for node (t->all first, then the node's own line), or TUNE_UNSET; t may be NULL. */
int tuning_get(const kiln_tuning *t, tuning_knob k, const char *node);
/* Writes t as a tuning file, its choices in the order they were set. */
void tuning_write(const kiln_tuning *t, FILE *f);

#endif
