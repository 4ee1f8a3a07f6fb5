/*
 * txt_parse.c — the .kiln parser: text -> graph IR (grammar in ir/print.h).
 *
 * A recursive-descent parser over the token stream of txt_lex.c; the grammar rule each
 * function implements is in its comment. The first error stops the parse and is reported
 * as `file:line:col: message`. The graph is checked by ir_verify afterwards, but values
 * must already be defined before use here, which rules out cycles as they are written.
 */
#include "frontend/txt.h"
#include "frontend/model_path.h"
#include "ir/print.h"
#include "runtime/rt.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { TXT_LIST_MAX = 1 << 24 }; /* elements in one literal or attribute list */

typedef struct parser {
    txt_lexer lx;
    txt_token tok;
    const char *file; /* for messages */
    const char *dir;  /* initializer files are resolved here */
    ir_graph *g;
    kiln_diag *d;
} parser;

typedef struct number {
    int64_t i;
    double f;
    bool is_float, is_big; /* is_big: i holds uint64 bits past INT64_MAX */
} number;

static kiln_status error_at(parser *p, const txt_token *t, kiln_status st, const char *fmt, ...)
    KILN_PRINTF(4, 5);

#include <stdarg.h>
static kiln_status error_at(parser *p, const txt_token *t, kiln_status st, const char *fmt, ...) {
    char body[KILN_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    kiln_loc loc = {.file = p->file, .line = t->line, .col = t->col};
    return diag_error(p->d, loc, st, "%s", body);
}

static kiln_status next(parser *p) {
    p->tok = txt_lex_next(&p->lx);
    if (p->tok.kind == TXT_ERROR)
        return error_at(p, &p->tok, KILN_ERR_INVALID, "%s", p->lx.error);
    return KILN_OK;
}

static bool is_punct(const parser *p, char c) {
    return p->tok.kind == TXT_PUNCT && p->tok.punct == c;
}

static bool is_word(const parser *p, const char *w) {
    return p->tok.kind == TXT_IDENT && p->tok.len == strlen(w) && !strncmp(p->tok.start, w, p->tok.len);
}

static const char *describe(const txt_token *t) {
    switch (t->kind) {
    case TXT_EOF: return "end of file";
    case TXT_IDENT: return "a name";
    case TXT_VALUE: return "a value";
    case TXT_STRING: return "a string";
    case TXT_NUMBER: return "a number";
    default: return "punctuation";
    }
}

static kiln_status expect(parser *p, char c) {
    if (!is_punct(p, c)) {
        if (p->tok.kind == TXT_PUNCT)
            return error_at(p, &p->tok, KILN_ERR_INVALID, "expected '%c', found '%c'", c,
                            p->tok.punct);
        return error_at(p, &p->tok, KILN_ERR_INVALID, "expected '%c', found %s", c,
                        describe(&p->tok));
    }
    return next(p);
}

static char *token_text(parser *p, const txt_token *t) {
    char *s = (t->kind == TXT_STRING || t->quoted) ? txt_decode(p->g->arena, t)
                                                   : arena_strndup(p->g->arena, t->start, t->len);
    if (!s)
        error_at(p, t, KILN_ERR_INVALID, "bad escape in string");
    return s;
}

/* dims := '[' ('*' | (dim (',' dim)*)?) ']' ;  dim := INT | IDENT | '?' */
static kiln_status parse_dims(parser *p, kiln_tensor *type) {
    kiln_status st;
    if ((st = expect(p, '[')))
        return st;
    type->rank = 0;
    if (is_punct(p, '*')) {
        type->rank = -1;
        if ((st = next(p)))
            return st;
        return expect(p, ']');
    }
    while (!is_punct(p, ']')) {
        if (type->rank && (st = expect(p, ',')))
            return st;
        if (type->rank == KILN_MAX_RANK)
            return error_at(p, &p->tok, KILN_ERR_UNSUPPORTED, "rank above %d", KILN_MAX_RANK);
        int64_t *dim = &type->dims[type->rank++];
        if (p->tok.kind == TXT_NUMBER && !p->tok.is_float && !p->tok.is_big && p->tok.ival >= 0) {
            *dim = p->tok.ival;
        } else if (is_punct(p, '?')) {
            *dim = IR_DIM_UNKNOWN;
        } else if (p->tok.kind == TXT_IDENT) {
            char *name = token_text(p, &p->tok);
            if (!name)
                return p->d->status;
            if (!p->g->batch_name)
                p->g->batch_name = name;
            else if (strcmp(p->g->batch_name, name))
                return error_at(p, &p->tok, KILN_ERR_UNSUPPORTED,
                                "only one symbolic dimension is supported: '%s' differs from '%s'",
                                name, p->g->batch_name);
            *dim = IR_DIM_BATCH;
        } else {
            return error_at(p, &p->tok, KILN_ERR_INVALID,
                            "expected a dimension (a size >= 0 or a symbolic name)");
        }
        if ((st = next(p)))
            return st;
    }
    return next(p);
}

/* type := IDENT dims    e.g. f32[N, 784] */
static kiln_status parse_type(parser *p, kiln_tensor *type) {
    if (p->tok.kind != TXT_IDENT)
        return error_at(p, &p->tok, KILN_ERR_INVALID, "expected a type such as f32[2, 3]");
    char name[16] = "";
    if (p->tok.len < sizeof name)
        memcpy(name, p->tok.start, p->tok.len);
    memset(type, 0, sizeof *type);
    type->dtype = ir_dtype_lookup(name);
    if (type->dtype == KILN_DTYPE_INVALID)
        return error_at(p, &p->tok, KILN_ERR_INVALID, "unknown dtype '%.*s'", (int)p->tok.len,
                        p->tok.start);
    kiln_status st = next(p);
    return st ? st : parse_dims(p, type);
}

/* numbers := '[' (NUMBER (',' NUMBER)*)? ']' ; the caller frees *out */
static kiln_status parse_numbers(parser *p, number **out, int64_t *count) {
    kiln_status st;
    int64_t n = 0, cap = 0;
    number *items = NULL;
    *out = NULL;
    if ((st = expect(p, '[')))
        return st;
    while (!is_punct(p, ']')) {
        if (n && (st = expect(p, ',')))
            goto fail;
        if (p->tok.kind != TXT_NUMBER) {
            st = error_at(p, &p->tok, KILN_ERR_INVALID, "expected a number, found %s",
                          describe(&p->tok));
            goto fail;
        }
        if (n == cap) {
            if (cap >= TXT_LIST_MAX) {
                st = error_at(p, &p->tok, KILN_ERR_UNSUPPORTED, "list longer than %d elements",
                              TXT_LIST_MAX);
                goto fail;
            }
            cap = cap ? cap * 2 : 16;
            number *grown = realloc(items, sizeof(number) * (size_t)cap);
            if (!grown) {
                st = error_at(p, &p->tok, KILN_ERR_OOM, "out of memory");
                goto fail;
            }
            items = grown;
        }
        items[n++] = (number){p->tok.ival, p->tok.fval, p->tok.is_float, p->tok.is_big};
        if ((st = next(p)))
            goto fail;
    }
    if ((st = next(p)))
        goto fail;
    *out = items;
    *count = n;
    return KILN_OK;
fail:
    free(items);
    return st;
}

/* literal := numbers, with exactly as many elements as `type` holds */
static kiln_status parse_literal(parser *p, const kiln_tensor *type, kiln_tensor **out) {
    txt_token at = p->tok;
    int64_t want = ir_type_count(type);
    if (want < 0)
        return error_at(p, &at, KILN_ERR_INVALID, "inline data needs a fully known shape");
    number *items;
    int64_t n;
    kiln_status st = parse_numbers(p, &items, &n);
    if (st)
        return st;
    if (n != want) {
        free(items);
        return error_at(p, &at, KILN_ERR_SHAPE, "expected %lld values for %s data, got %lld",
                        (long long)want, kiln_dtype_name(type->dtype), (long long)n);
    }
    if ((st = ir_graph_new_tensor(p->g, type->dtype, type->rank, type->dims, out, p->d))) {
        free(items);
        return st;
    }
    for (int64_t i = 0; i < n; i++) {
        if (items[i].is_big && type->dtype != KILN_U64) {
            free(items);
            return error_at(p, &at, KILN_ERR_INVALID, "value %lld is out of range for %s", (long long)i,
                            kiln_dtype_name(type->dtype));
        }
        if (items[i].is_float || (items[i].i == 0 && signbit(items[i].f))) /* "-0": a float's sign, not an integer's */
            ir_tensor_set(*out, i, items[i].f);
        else
            ir_tensor_set_int(*out, i, items[i].i);
    }
    free(items);
    return KILN_OK;
}

/* Resolves an initializer file inside the model's folder, refusing escapes. */
static kiln_status resolve_file(parser *p, const txt_token *at, const char *rel, char **out) {
    char *real;
    switch (model_path_resolve(p->dir, rel, &real)) {
    case MODEL_PATH_OK: break;
    case MODEL_PATH_OUTSIDE:
        return error_at(p, at, KILN_ERR_INVALID, "file '%s' is outside the model's folder", rel);
    case MODEL_PATH_ESCAPES:
        return error_at(p, at, KILN_ERR_INVALID, "file '%s' leads outside the model's folder", rel);
    case MODEL_PATH_NOT_FILE:
        return error_at(p, at, KILN_ERR_INVALID, "'%s' is not a regular file", rel);
    case MODEL_PATH_LINKED:
        return error_at(p, at, KILN_ERR_INVALID, "file '%s' has other hard links (it may be a file from outside the model's folder)", rel);
    case MODEL_PATH_MISSING:
        return error_at(p, at, KILN_ERR_IO, "cannot open '%s/%s'", p->dir, rel);
    case MODEL_PATH_OOM:
        return error_at(p, at, KILN_ERR_OOM, "out of memory");
    }
    *out = arena_strdup(p->g->arena, real);
    free(real);
    return *out ? KILN_OK : error_at(p, at, KILN_ERR_OOM, "out of memory");
}

/* source := npy '(' STRING ')' | npz '(' STRING ',' STRING ')' */
static kiln_status parse_file_init(parser *p, ir_value *v) {
    kiln_status st;
    txt_token at = p->tok;
    bool npz = is_word(p, "npz");
    if ((st = next(p)) || (st = expect(p, '(')))
        return st;
    if (p->tok.kind != TXT_STRING)
        return error_at(p, &p->tok, KILN_ERR_INVALID, "expected a file name string");
    txt_token file_tok = p->tok;
    if (!(v->init_file = token_text(p, &p->tok)) || (st = next(p)))
        return p->d->status ? p->d->status : st;
    if (npz) {
        if ((st = expect(p, ',')))
            return st;
        if (p->tok.kind != TXT_STRING)
            return error_at(p, &p->tok, KILN_ERR_INVALID, "expected an array name string");
        if (!(v->init_key = token_text(p, &p->tok)) || (st = next(p)))
            return p->d->status ? p->d->status : st;
    }
    if ((st = expect(p, ')')))
        return st;
    char *path;
    if ((st = resolve_file(p, &file_tok, v->init_file, &path)))
        return st;
    /* read here rather than by path so that messages name the file as the model does */
    kiln_tensor *t = NULL;
    kiln_diag io = {0};
    unsigned char *bytes;
    size_t size;
    st = kiln_rt_read_file(path, (size_t)KILN_TENSOR_MAX_BYTES + 4096, &bytes, &size, &io);
    if (!st) {
        st = npz ? kiln_npz_read_mem(bytes, size, v->init_file, v->init_key, &t, &io)
                 : kiln_npy_read_mem(bytes, size, v->init_file, &t, &io);
        free(bytes);
    }
    if (st)
        return error_at(p, &at, st, "initializer '%s': %s", v->name, io.message);
    bool same = t->dtype == v->type.dtype && t->rank == v->type.rank;
    for (int i = 0; same && i < t->rank; i++)
        same = t->dims[i] == v->type.dims[i];
    if (!same) {
        char got[128], want[128];
        ir_type_text(t, got, sizeof got);
        kiln_tensor_free(t);
        return error_at(p, &at, KILN_ERR_SHAPE, "initializer '%s': '%s' holds %s, the model declares %s", v->name,
                        v->init_file, got, ir_type_text(&v->type, want, sizeof want));
    }
    if ((st = ir_graph_new_tensor(p->g, t->dtype, t->rank, t->dims, &v->init, p->d)) == KILN_OK)
        memcpy(v->init->data, t->data, kiln_tensor_bytes(t));
    kiln_tensor_free(t);
    return st;
}

/* input := 'input' VALUE ':' type */
/* init  := ('param' | 'const') VALUE ':' type '=' (literal | source) */
static kiln_status parse_decl(parser *p) {
    kiln_status st;
    ir_value_kind kind = is_word(p, "input") ? IR_VAL_INPUT
                         : is_word(p, "param") ? IR_VAL_PARAM : IR_VAL_CONST;
    if ((st = next(p)))
        return st;
    if (p->tok.kind != TXT_VALUE)
        return error_at(p, &p->tok, KILN_ERR_INVALID, "expected a value name such as %%x");
    txt_token name_tok = p->tok;
    char *name = token_text(p, &p->tok);
    if (!name)
        return p->d->status;
    kiln_loc loc = {.file = p->file, .line = name_tok.line, .col = name_tok.col};
    ir_value *v;
    if ((st = ir_graph_new_value(p->g, name, kind, loc, &v, p->d)) || (st = next(p)) ||
        (st = expect(p, ':')))
        return st;
    txt_token type_tok = p->tok;
    if ((st = parse_type(p, &v->type)))
        return st;
    /* sizes checked where they are written, before anything is allocated by them */
    int64_t count;
    kiln_status size = ir_type_size_check(&v->type, &count);
    if (size == KILN_ERR_INVALID)
        return error_at(p, &type_tok, KILN_ERR_INVALID, "value '%s': the element count overflows", name);
    if (size)
        return error_at(p, &type_tok, KILN_ERR_OOM, "value '%s': %lld elements of %s are over the memory cap of %lld bytes",
                        name, (long long)count, kiln_dtype_name(v->type.dtype), (long long)kiln_max_memory());
    if (kind == IR_VAL_INPUT)
        return KILN_OK;
    if ((st = expect(p, '=')))
        return st;
    if (is_word(p, "npy") || is_word(p, "npz"))
        return parse_file_init(p, v);
    return parse_literal(p, &v->type, &v->init);
}

/* output := 'output' VALUE (',' VALUE)* */
static kiln_status parse_outputs(parser *p) {
    kiln_status st = next(p);
    for (bool first = true; !st; first = false) {
        if (!first) {
            if (!is_punct(p, ','))
                return KILN_OK;
            if ((st = next(p)))
                return st;
        }
        if (p->tok.kind != TXT_VALUE)
            return error_at(p, &p->tok, KILN_ERR_INVALID, "expected a value name such as %%y");
        char *name = token_text(p, &p->tok);
        if (!name)
            return p->d->status;
        ir_value *v = ir_graph_find(p->g, name);
        if (!v)
            return error_at(p, &p->tok, KILN_ERR_INVALID, "unknown value '%%%s'", name);
        if (v->is_output)
            return error_at(p, &p->tok, KILN_ERR_INVALID, "value '%s' is listed as an output twice",
                            name);
        if ((st = ir_graph_add_output(p->g, v, p->d)))
            return st;
        st = next(p);
    }
    return st;
}

/* Reads '[' ITEM (',' ITEM)* ']' where each ITEM is a STRING, into the arena. */
static kiln_status parse_strings(parser *p, ir_attr *a) {
    kiln_status st;
    int cap = 0;
    if ((st = expect(p, '[')))
        return st;
    while (!is_punct(p, ']')) {
        if (a->count && (st = expect(p, ',')))
            return st;
        if (p->tok.kind != TXT_STRING)
            return error_at(p, &p->tok, KILN_ERR_INVALID, "expected a string");
        if (a->count == cap) {
            if (cap >= TXT_LIST_MAX)
                return error_at(p, &p->tok, KILN_ERR_UNSUPPORTED, "list too long");
            cap = cap ? cap * 2 : 8;
            const char **grown = ARENA_ARRAY(p->g->arena, const char *, cap);
            if (!grown)
                return error_at(p, &p->tok, KILN_ERR_OOM, "out of memory");
            if (a->count)
                memcpy(grown, a->strings, sizeof(char *) * (size_t)a->count);
            a->strings = grown;
        }
        if (!(a->strings[a->count++] = token_text(p, &p->tok)))
            return p->d->status;
        if ((st = next(p)))
            return st;
    }
    return next(p);
}

/* attr_value: its form follows the schema's kind (INT: 3, FLOAT: 0.5, STRING: "x",
 * INTS: [1, 2], FLOATS: [0.5], STRINGS: ["a"], TENSOR: type literal) */
static kiln_status parse_attr_value(parser *p, ir_attr *a) {
    txt_token at = p->tok;
    kiln_status st;
    switch (a->kind) {
    case IR_ATTR_INT:
        if (at.kind != TXT_NUMBER || at.is_float || at.is_big)
            return error_at(p, &at, KILN_ERR_INVALID, "attribute '%s': expected an integer",
                            a->name);
        a->i = at.ival;
        return next(p);
    case IR_ATTR_FLOAT:
        if (at.kind != TXT_NUMBER)
            return error_at(p, &at, KILN_ERR_INVALID, "attribute '%s': expected a number", a->name);
        a->f = at.fval;
        return next(p);
    case IR_ATTR_STRING:
        if (at.kind != TXT_STRING)
            return error_at(p, &at, KILN_ERR_INVALID, "attribute '%s': expected a string", a->name);
        if (!(a->s = token_text(p, &at)))
            return p->d->status;
        return next(p);
    case IR_ATTR_STRINGS: return parse_strings(p, a);
    case IR_ATTR_TENSOR: {
        kiln_tensor type;
        if ((st = parse_type(p, &type)))
            return st;
        return parse_literal(p, &type, &a->t);
    }
    case IR_ATTR_INTS:
    case IR_ATTR_FLOATS: {
        if (!is_punct(p, '['))
            return error_at(p, &at, KILN_ERR_INVALID, "attribute '%s': expected a list [..]",
                            a->name);
        number *items;
        int64_t n;
        if ((st = parse_numbers(p, &items, &n)))
            return st;
        a->count = (int)n;
        if (a->kind == IR_ATTR_INTS)
            a->ints = ARENA_ARRAY(p->g->arena, int64_t, n);
        else
            a->floats = ARENA_ARRAY(p->g->arena, double, n);
        for (int64_t i = 0; i < n && (a->ints || a->floats); i++) {
            if (a->kind == IR_ATTR_INTS && (items[i].is_float || items[i].is_big)) {
                free(items);
                return error_at(p, &at, KILN_ERR_INVALID,
                                "attribute '%s': expected integers, element %lld is not", a->name,
                                (long long)i);
            }
            if (a->ints)
                a->ints[i] = items[i].i;
            else
                a->floats[i] = items[i].f;
        }
        free(items);
        if (!a->ints && !a->floats)
            return error_at(p, &at, KILN_ERR_OOM, "out of memory");
        return KILN_OK;
    }
    }
    return KILN_OK;
}

/* attrs := '{' (IDENT '=' attr_value (',' IDENT '=' attr_value)*)? '}' */
static kiln_status parse_attrs(parser *p, ir_node *n) {
    kiln_status st = next(p);
    while (!st && !is_punct(p, '}')) {
        if (n->attr_count && (st = expect(p, ',')))
            return st;
        if (p->tok.kind != TXT_IDENT)
            return error_at(p, &p->tok, KILN_ERR_INVALID, "expected an attribute name");
        char *name = token_text(p, &p->tok);
        if (!name)
            return p->d->status;
        const ir_attr_spec *spec = ir_op_attr_spec(n->op, name);
        if (!spec)
            return error_at(p, &p->tok, KILN_ERR_INVALID, "%s has no attribute '%s'",
                            ir_op_table[n->op].name, name);
        if (ir_node_attr(n, name))
            return error_at(p, &p->tok, KILN_ERR_INVALID, "attribute '%s' given twice", name);
        ir_attr *a = ir_node_add_attr(p->g, n, name, spec->kind);
        if (!a)
            return error_at(p, &p->tok, KILN_ERR_OOM, "out of memory");
        if ((st = next(p)) || (st = expect(p, '=')) || (st = parse_attr_value(p, a)))
            return st;
    }
    return st ? st : next(p);
}

enum { TXT_NODE_ARGS_MAX = 4096 };

/* node := (STRING ':')? out (',' out)* '=' IDENT '(' (arg (',' arg)*)? ')' attrs?
 * out  := VALUE (':' type)?     arg := VALUE | '_' */
static kiln_status parse_node(parser *p) {
    kiln_status st;
    const char *label = NULL;
    txt_token start = p->tok;
    if (p->tok.kind == TXT_STRING) {
        if (!(label = token_text(p, &p->tok)) || (st = next(p)) || (st = expect(p, ':')))
            return p->d->status;
    }
    int nout = 0, nin = 0;
    txt_token out_tok[64];
    kiln_tensor out_type[64];
    ir_value **ins = NULL, *outs[64];
    while (nout == 0 || is_punct(p, ',')) {
        if (nout && (st = next(p)))
            return st;
        if (p->tok.kind != TXT_VALUE)
            return error_at(p, &p->tok, KILN_ERR_INVALID,
                            "expected a statement (input, param, const, output, or %%value = Op(...))");
        if (nout == ARRAY_LEN(outs))
            return error_at(p, &p->tok, KILN_ERR_UNSUPPORTED, "more than %d outputs",
                            ARRAY_LEN(outs));
        out_tok[nout] = p->tok;
        out_type[nout] = (kiln_tensor){.rank = -1};
        if ((st = next(p)))
            return st;
        if (is_punct(p, ':') && ((st = next(p)) || (st = parse_type(p, &out_type[nout]))))
            return st;
        nout++;
    }
    if ((st = expect(p, '=')))
        return st;
    txt_token op_tok = p->tok;
    if (op_tok.kind != TXT_IDENT)
        return error_at(p, &op_tok, KILN_ERR_INVALID, "expected an op name");
    char *op_name = token_text(p, &op_tok);
    if (!op_name)
        return p->d->status;
    ir_op op = ir_op_lookup(op_name);
    if (op == IR_OP_COUNT)
        return error_at(p, &op_tok, KILN_ERR_UNSUPPORTED, "unknown op '%s'", op_name);
    if ((st = next(p)) || (st = expect(p, '(')))
        return st;
    if (!(ins = ARENA_ARRAY(p->g->arena, ir_value *, TXT_NODE_ARGS_MAX)))
        return error_at(p, &p->tok, KILN_ERR_OOM, "out of memory");
    while (!is_punct(p, ')')) {
        if (nin && (st = expect(p, ',')))
            return st;
        if (nin == TXT_NODE_ARGS_MAX)
            return error_at(p, &p->tok, KILN_ERR_UNSUPPORTED, "too many inputs");
        if (is_word(p, "_")) {
            ins[nin++] = NULL;
        } else if (p->tok.kind == TXT_VALUE) {
            char *name = token_text(p, &p->tok);
            if (!name)
                return p->d->status;
            if (!(ins[nin++] = ir_graph_find(p->g, name)))
                return error_at(p, &p->tok, KILN_ERR_INVALID, "unknown value '%%%s'", name);
        } else {
            return error_at(p, &p->tok, KILN_ERR_INVALID, "expected an input value or '_'");
        }
        if ((st = next(p)))
            return st;
    }
    if ((st = next(p)))
        return st;
    const ir_op_info *info = &ir_op_table[op];
    if (nin < info->min_inputs || nin > info->max_inputs)
        return error_at(p, &op_tok, KILN_ERR_INVALID, "%s expects %d..%d inputs, got %d",
                        info->name, info->min_inputs, info->max_inputs, nin);
    if (nout < info->min_outputs || nout > info->max_outputs)
        return error_at(p, &op_tok, KILN_ERR_INVALID, "%s expects %d..%d outputs, got %d",
                        info->name, info->min_outputs, info->max_outputs, nout);
    for (int i = 0; i < nout; i++) {
        char *name = token_text(p, &out_tok[i]);
        if (!name)
            return p->d->status;
        kiln_loc loc = {.file = p->file, .line = out_tok[i].line, .col = out_tok[i].col};
        kiln_diag one = {0};
        if ((st = ir_graph_new_value(p->g, name, IR_VAL_NODE, LOC_NONE, &outs[i], &one)))
            return error_at(p, &out_tok[i], st, "%s", one.message);
        outs[i]->loc = loc;
        if (out_type[i].dtype != KILN_DTYPE_INVALID)
            outs[i]->type = out_type[i];
    }
    kiln_loc loc = {.file = p->file, .line = start.line, .col = start.col};
    ir_node *n;
    if ((st = ir_graph_add_node(p->g, op, label ? label : outs[0]->name, ins, nin, outs, nout, loc,
                                &n, p->d)))
        return st;
    if (is_punct(p, '{'))
        return parse_attrs(p, n);
    return KILN_OK;
}

/* graph := 'graph' (IDENT | STRING) '{' (input | init | node | output)* '}' EOF */
static kiln_status parse_graph(parser *p, const char *filename) {
    kiln_status st;
    if ((st = next(p)))
        return st;
    if (!is_word(p, "graph"))
        return error_at(p, &p->tok, KILN_ERR_INVALID, "expected 'graph'");
    if ((st = next(p)))
        return st;
    if (p->tok.kind != TXT_IDENT && p->tok.kind != TXT_STRING)
        return error_at(p, &p->tok, KILN_ERR_INVALID, "expected the graph's name");
    char name[256];
    snprintf(name, sizeof name, "%.*s", (int)p->tok.len, p->tok.start);
    if ((st = ir_graph_create(name, filename, &p->g, p->d)))
        return st;
    if (p->tok.kind == TXT_STRING && !(p->g->name = token_text(p, &p->tok)))
        return p->d->status;
    if ((st = next(p)) || (st = expect(p, '{')))
        return st;
    while (!st && !is_punct(p, '}')) {
        if (p->tok.kind == TXT_EOF)
            return error_at(p, &p->tok, KILN_ERR_INVALID, "expected '}' before the end of file");
        if (is_word(p, "input") || is_word(p, "param") || is_word(p, "const"))
            st = parse_decl(p);
        else if (is_word(p, "output"))
            st = parse_outputs(p);
        else
            st = parse_node(p);
    }
    if (st || (st = next(p)))
        return st;
    if (p->tok.kind != TXT_EOF)
        return error_at(p, &p->tok, KILN_ERR_INVALID, "unexpected text after the graph");
    return KILN_OK;
}

kiln_status txt_parse(const char *text, size_t len, const char *filename, ir_graph **out,
                      kiln_diag *d) {
    parser p = {.file = filename ? filename : "<text>", .d = d};
    *out = NULL;
    char dir[4096];
    model_path_dir(filename ? filename : "", dir, sizeof dir);
    p.dir = dir;
    txt_lex_init(&p.lx, text, len);
    kiln_status st = parse_graph(&p, filename);
    if (st) {
        ir_graph_destroy(p.g);
        return st;
    }
    *out = p.g;
    return KILN_OK;
}

kiln_status txt_parse_file(const char *path, ir_graph **out, kiln_diag *d) {
    unsigned char *buf;
    size_t size;
    *out = NULL;
    kiln_status st = kiln_rt_read_file(path, (size_t)1 << 30, &buf, &size, d);
    if (st)
        return st;
    st = txt_parse((const char *)buf, size, path, out, d);
    free(buf);
    return st;
}

kiln_status txt_parse_tensor(const char *text, kiln_tensor **out, kiln_diag *d) {
    parser p = {.file = "<literal>", .dir = ".", .d = d};
    *out = NULL;
    kiln_status st = ir_graph_create("literal", NULL, &p.g, d);
    if (st)
        return st;
    txt_lex_init(&p.lx, text, strlen(text));
    kiln_tensor type, *t = NULL;
    if (!(st = next(&p)) && !(st = parse_type(&p, &type)) && !(st = parse_literal(&p, &type, &t)) &&
        !(st = kiln_tensor_create(t->dtype, t->rank, t->dims, out, d)))
        memcpy((*out)->data, t->data, kiln_tensor_bytes(t));
    ir_graph_destroy(p.g);
    return st;
}
