/*
 * einsum.c — parsing Einsum equations (see einsum.h) and Einsum's shape rule.
 */
#include "passes/einsum.h"

#include <ctype.h>
#include <string.h>

/* A term's letters and ellipsis, e.g. "b...ij": letters in order, and where "..." sits. */
typedef struct term {
    char letters[KILN_MAX_RANK + 1];
    int count;
    int ellipsis_at; /* index among the letters where "..." stands; -1 if none */
} term;

static kiln_status parse_term(const shape_ctx *c, const char **p, term *t) {
    t->count = 0;
    t->ellipsis_at = -1;
    for (;;) {
        while (**p == ' ')
            (*p)++;
        if (isalpha((unsigned char)**p)) {
            if (t->count == KILN_MAX_RANK)
                return shape_error(c, "equation: a term has more than %d axes", KILN_MAX_RANK);
            t->letters[t->count++] = *(*p)++;
        } else if (!strncmp(*p, "...", 3)) {
            if (t->ellipsis_at >= 0)
                return shape_error(c, "equation: '...' twice in one term");
            t->ellipsis_at = t->count;
            *p += 3;
        } else {
            return KILN_OK;
        }
    }
}

static int letter_label(char ch) {
    return islower((unsigned char)ch) ? ch - 'a' : 26 + ch - 'A';
}

/* Records `size` for label l: equal sizes agree; for ellipsis labels, 1 broadcasts. */
static kiln_status set_size(const shape_ctx *c, einsum_spec *s, int l, int64_t size, bool ellipsis) {
    int64_t *have = &s->size[l];
    if (*have == -3 || *have == IR_DIM_UNKNOWN || (ellipsis && *have == 1))
        *have = size < 0 ? (*have == -3 ? IR_DIM_UNKNOWN : *have) : size;
    else if (size >= 0 && size != *have && !(ellipsis && size == 1))
        return shape_error(c, "equation: a label has sizes %lld and %lld", (long long)*have, (long long)size);
    return KILN_OK;
}

kiln_status einsum_parse(const shape_ctx *c, einsum_spec *s) {
    const char *eq = ir_attr_string(c->node, "equation"), *p = eq;
    term terms[EINSUM_OPERANDS], out;
    kiln_status st;
    memset(s, 0, sizeof *s);
    if (c->in_count > EINSUM_OPERANDS)
        return shape_error(c, "more than %d operands", EINSUM_OPERANDS);
    for (int i = 0; i < c->in_count; i++) {
        if ((st = parse_term(c, &p, &terms[i])))
            return st;
        while (*p == ' ')
            p++;
        if (i + 1 < c->in_count && *p++ != ',')
            return shape_error(c, "equation '%s' has fewer terms than the %d inputs", eq, c->in_count);
    }
    bool explicit_out = !strncmp(p, "->", 2);
    if (explicit_out) {
        p += 2;
        if ((st = parse_term(c, &p, &out)))
            return st;
    }
    while (*p == ' ')
        p++;
    if (*p)
        return shape_error(c, "equation '%s': unexpected '%c'", eq, *p);
    /* ellipsis axes: the widest operand's count, right-aligned */
    int ellipsis_rank = 0;
    for (int i = 0; i < c->in_count; i++) {
        int e = c->in[i]->rank - terms[i].count;
        if ((terms[i].ellipsis_at < 0 && e != 0) || e < 0)
            return shape_error(c, "equation '%s': term %d has %d axes, input %d has rank %d", eq, i, terms[i].count, i, c->in[i]->rank);
        ellipsis_rank = e > ellipsis_rank ? e : ellipsis_rank;
    }
    for (int l = 0; l < EINSUM_LABELS; l++)
        s->size[l] = -3; /* not seen */
    s->operand_count = c->in_count;
    int counts[EINSUM_LABELS] = {0};
    for (int i = 0; i < c->in_count; i++) {
        const term *t = &terms[i];
        int e = c->in[i]->rank - t->count, axis = 0;
        s->rank[i] = c->in[i]->rank;
        for (int k = 0; k <= t->count; k++) {
            if (k == t->ellipsis_at)
                for (int j = 0; j < e; j++, axis++) {
                    int l = 52 + ellipsis_rank - e + j;
                    s->label[i][axis] = l;
                    if ((st = set_size(c, s, l, c->in[i]->dims[axis], true)))
                        return st;
                }
            if (k == t->count)
                break;
            int l = letter_label(t->letters[k]);
            s->label[i][axis] = l;
            counts[l]++;
            if ((st = set_size(c, s, l, c->in[i]->dims[axis++], false)))
                return st;
        }
    }
    s->out_rank = 0;
    if (explicit_out) {
        for (int k = 0; k <= out.count; k++) {
            if (k == out.ellipsis_at)
                for (int j = 0; j < ellipsis_rank; j++)
                    s->out_label[s->out_rank++] = 52 + j;
            if (k == out.count)
                break;
            int l = letter_label(out.letters[k]);
            if (s->size[l] == -3)
                return shape_error(c, "equation '%s': output label '%c' is on no input", eq, out.letters[k]);
            s->out_label[s->out_rank++] = l;
        }
    } else {
        for (int j = 0; j < ellipsis_rank; j++)
            s->out_label[s->out_rank++] = 52 + j;
        for (int l = 0; l < 52; l++)
            if (counts[l] == 1) {
                if (s->out_rank == KILN_MAX_RANK)
                    return shape_error(c, "equation: output rank above %d", KILN_MAX_RANK);
                s->out_label[s->out_rank++] = l;
            }
    }
    s->label_count = 52 + ellipsis_rank;
    return KILN_OK;
}

kiln_status shape_einsum(shape_ctx *c) {
    einsum_spec s;
    kiln_status st = shape_require(c, 0, shape_is_numeric, "numeric");
    for (int i = 1; !st && i < c->in_count; i++)
        st = shape_same_dtype(c, 0, i);
    if (st || (st = einsum_parse(c, &s)))
        return st;
    int64_t dims[KILN_MAX_RANK];
    for (int i = 0; i < s.out_rank; i++)
        dims[i] = s.size[s.out_label[i]];
    shape_set(c, 0, c->in[0]->dtype, s.out_rank, dims);
    return KILN_OK;
}
