/*
 * tuning.c — the table of per-node schedule choices (tuning.h): parsing, lookup, writing.
 */
#include "passes/tuning.h"

#include <string.h>

static const char *const knob_names[TUNE_KNOBS] = {"conv", "conv_order"};
static const char *const value_names[TUNE_KNOBS][2] = {{"direct", "winograd"}, {"rows", "channels"}};

const char *tuning_knob_name(tuning_knob k) { return k >= 0 && k < TUNE_KNOBS ? knob_names[k] : "?"; }

const char *tuning_value_name(tuning_knob k, int value) {
    return k >= 0 && k < TUNE_KNOBS && (value == 0 || value == 1) ? value_names[k][value] : "?";
}

kiln_tuning *tuning_new(void) {
    kiln_tuning *t = calloc(1, sizeof *t);
    for (int k = 0; t && k < TUNE_KNOBS; k++)
        t->all[k] = TUNE_UNSET;
    return t;
}

void tuning_free(kiln_tuning *t) {
    if (!t)
        return;
    for (int i = 0; i < t->count; i++)
        free(t->choices[i].node);
    free(t->choices);
    free(t);
}

kiln_status tuning_set(kiln_tuning *t, tuning_knob k, const char *node, int value, kiln_diag *d) {
    for (int i = 0; i < t->count; i++)
        if (t->choices[i].knob == k && !strcmp(t->choices[i].node, node)) {
            if (value != TUNE_UNSET) {
                t->choices[i].value = value;
                return KILN_OK;
            }
            free(t->choices[i].node);
            memmove(t->choices + i, t->choices + i + 1, sizeof *t->choices * (size_t)(t->count - i - 1));
            t->count--;
            return KILN_OK;
        }
    if (value == TUNE_UNSET)
        return KILN_OK;
    if (t->count == t->cap) {
        int cap = t->cap ? 2 * t->cap : 16;
        tuning_choice *grown = realloc(t->choices, sizeof *grown * (size_t)cap);
        if (!grown)
            return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
        t->choices = grown, t->cap = cap;
    }
    char *name = strdup(node);
    if (!name)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    t->choices[t->count++] = (tuning_choice){.knob = k, .value = value, .node = name};
    return KILN_OK;
}

int tuning_get(const kiln_tuning *t, tuning_knob k, const char *node) {
    if (!t)
        return TUNE_UNSET;
    if (t->all[k] != TUNE_UNSET)
        return t->all[k];
    for (int i = 0; node && i < t->count; i++)
        if (t->choices[i].knob == k && !strcmp(t->choices[i].node, node))
            return t->choices[i].value;
    return TUNE_UNSET;
}

/* The next space-separated word of [*p, end) (at most cap - 1 bytes), *p moved past it. */
static size_t word(const char **p, const char *end, char *out, size_t cap) {
    while (*p < end && (**p == ' ' || **p == '\t'))
        (*p)++;
    size_t n = 0;
    while (*p < end && **p != ' ' && **p != '\t') {
        if (n + 1 < cap)
            out[n] = **p;
        n++, (*p)++;
    }
    out[n < cap ? n : cap - 1] = '\0';
    return n;
}

kiln_status tuning_parse(const char *text, size_t len, const char *file, kiln_tuning **out, kiln_diag *d) {
    kiln_tuning *t = *out = tuning_new();
    if (!t)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    const char *p = text, *end = text + len;
    kiln_status st = KILN_OK;
    for (int line = 1; p < end && !st; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            eol = end;
        const char *hash = memchr(p, '#', (size_t)(eol - p)), *stop = hash ? hash : eol;
        while (stop > p && (stop[-1] == ' ' || stop[-1] == '\t' || stop[-1] == '\r'))
            stop--;
        kiln_loc loc = {.file = file, .line = line};
        char knob[32], value[32];
        const char *q = p;
        size_t kn = word(&q, stop, knob, sizeof knob);
        if (kn) {
            size_t vn = word(&q, stop, value, sizeof value);
            while (q < stop && (*q == ' ' || *q == '\t'))
                q++;
            int k = 0, v = 0;
            while (k < TUNE_KNOBS && strcmp(knob, knob_names[k]))
                k++;
            while (k < TUNE_KNOBS && v < 2 && strcmp(value, value_names[k][v]))
                v++;
            if (k == TUNE_KNOBS)
                st = diag_error(d, loc, KILN_ERR_INVALID, "unknown knob '%s' (expected conv or conv_order)", knob);
            else if (!vn || v == 2)
                st = diag_error(d, loc, KILN_ERR_INVALID, "%s takes %s or %s, not '%s'", knob, value_names[k][0],
                                value_names[k][1], value);
            else if (q == stop)
                st = diag_error(d, loc, KILN_ERR_INVALID, "%s %s names no node", knob, value);
            else {
                char node[512];
                size_t n = (size_t)(stop - q);
                if (n >= sizeof node)
                    st = diag_error(d, loc, KILN_ERR_INVALID, "the node name is longer than %zu bytes", sizeof node - 1);
                else {
                    memcpy(node, q, n), node[n] = '\0';
                    st = tuning_set(t, (tuning_knob)k, node, v, d);
                }
            }
        }
        p = eol + (eol < end);
    }
    if (st) {
        tuning_free(t);
        *out = NULL;
    }
    return st;
}

void tuning_write(const kiln_tuning *t, FILE *f) {
    for (int i = 0; i < t->count; i++)
        fprintf(f, "%s %s %s\n", knob_names[t->choices[i].knob], tuning_value_name(t->choices[i].knob, t->choices[i].value),
                t->choices[i].node);
}
