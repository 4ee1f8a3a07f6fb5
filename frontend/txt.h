/*
 * txt.h — the .kiln text format: lexer and parser (the grammar is in ir/print.h).
 *
 * Parse errors name the place as `file:line:col: message`. Initializer files named by
 * npy("...")/npz("...", "...") are resolved against the model file's folder and must stay
 * inside it: absolute paths, ".." and symlinks that lead out are refused.
 */
#ifndef KILN_FRONTEND_TXT_H
#define KILN_FRONTEND_TXT_H

#include "ir/graph.h"

typedef enum txt_tok_kind {
    TXT_EOF,
    TXT_IDENT,  /* [A-Za-z_][A-Za-z0-9_.]* */
    TXT_VALUE,  /* %name or %"quoted name" */
    TXT_STRING, /* "..." with \" \\ \n \t \xHH escapes */
    TXT_NUMBER, /* integer, decimal, exponent, nan, inf, with an optional leading '-' */
    TXT_PUNCT,  /* one of { } ( ) [ ] , = : ? * */
    TXT_ERROR,
} txt_tok_kind;

typedef struct txt_token {
    txt_tok_kind kind;
    const char *start; /* the token's text (for VALUE and STRING, inside the quotes if any) */
    size_t len;
    int line, col;
    bool quoted;   /* VALUE written as %"..." */
    bool is_float; /* NUMBER written with '.', an exponent, nan or inf */
    bool is_big;   /* an integer past INT64_MAX: ival holds its uint64 bits (u64 data only) */
    int64_t ival;
    double fval;
    char punct;
} txt_token;

typedef struct txt_lexer {
    const char *p, *end;
    int line, col;
    const char *error; /* set with a TXT_ERROR token */
} txt_lexer;

void txt_lex_init(txt_lexer *lx, const char *text, size_t len);
txt_token txt_lex_next(txt_lexer *lx);
/* Decodes a STRING or quoted VALUE token into the arena; NULL on OOM or a bad escape. */
char *txt_decode(arena *a, const txt_token *t);

kiln_status txt_parse(const char *text, size_t len, const char *filename, ir_graph **out,
                      kiln_diag *d);
kiln_status txt_parse_file(const char *path, ir_graph **out, kiln_diag *d);
/* Parses a typed literal such as "f32[2, 2] [1, 2, 3, 4]" into a tensor the caller frees
 * with kiln_tensor_free. For tests and tools. */
kiln_status txt_parse_tensor(const char *text, kiln_tensor **out, kiln_diag *d);

#endif
