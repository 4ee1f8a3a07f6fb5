/*
 * txt_lex.c — the .kiln lexer. Comments run from '#' to the end of the line. Columns
 * count bytes from 1.
 */
#include "frontend/txt.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void txt_lex_init(txt_lexer *lx, const char *text, size_t len) {
    lx->p = text;
    lx->end = text + len;
    lx->line = 1;
    lx->col = 1;
    lx->error = NULL;
}

static void advance(txt_lexer *lx) {
    if (*lx->p == '\n') {
        lx->line++;
        lx->col = 1;
    } else {
        lx->col++;
    }
    lx->p++;
}

static bool ident_char(char c) {
    return isalnum((unsigned char)c) || c == '_' || c == '.';
}

static txt_token error_token(txt_lexer *lx, txt_token t, const char *msg) {
    t.kind = TXT_ERROR;
    lx->error = msg;
    return t;
}

/* Scans a "..." string; t->start/len cover the text inside the quotes. */
static txt_token lex_string(txt_lexer *lx, txt_token t) {
    advance(lx); /* the opening quote */
    t.start = lx->p;
    while (lx->p < lx->end && *lx->p != '"') {
        if (*lx->p == '\n')
            return error_token(lx, t, "unterminated string");
        if (*lx->p == '\\' && lx->p + 1 < lx->end)
            advance(lx);
        advance(lx);
    }
    if (lx->p >= lx->end)
        return error_token(lx, t, "unterminated string");
    t.len = (size_t)(lx->p - t.start);
    advance(lx);
    return t;
}

static txt_token lex_number(txt_lexer *lx, txt_token t) {
    const char *s = lx->p;
    const char *q = s + (*s == '-');
    size_t rest = (size_t)(lx->end - q);
    if ((rest >= 3 && !strncmp(q, "nan", 3)) || (rest >= 3 && !strncmp(q, "inf", 3))) {
        if (rest > 3 && ident_char(q[3]))
            return error_token(lx, t, "malformed number");
        t.kind = TXT_NUMBER;
        t.is_float = true;
        t.fval = q[0] == 'n' ? NAN : (*s == '-' ? -INFINITY : INFINITY);
        while (lx->p < q + 3)
            advance(lx);
        t.len = (size_t)(lx->p - s);
        return t;
    }
    const char *e = q;
    while (e < lx->end && (isalnum((unsigned char)*e) || *e == '.' ||
                           ((*e == '-' || *e == '+') && (e[-1] == 'e' || e[-1] == 'E'))))
        e++;
    char buf[64];
    size_t n = (size_t)(e - s);
    if (n == 0 || n >= sizeof buf)
        return error_token(lx, t, "malformed number");
    memcpy(buf, s, n);
    buf[n] = 0;
    char *endp;
    t.kind = TXT_NUMBER;
    t.is_float = strpbrk(buf, ".eE") != NULL;
    errno = 0;
    if (t.is_float) {
        t.fval = strtod(buf, &endp);
    } else {
        t.ival = strtoll(buf, &endp, 10);
        t.fval = buf[0] == '-' && t.ival == 0 ? -0.0 : (double)t.ival; /* "-0" in a float tensor */
        if (errno == ERANGE && buf[0] != '-') { /* maybe a u64 past INT64_MAX */
            errno = 0;
            unsigned long long u = strtoull(buf, &endp, 10);
            t.ival = (int64_t)u;
            t.fval = (double)u;
            t.is_big = true;
        }
    }
    if (*endp || errno == ERANGE)
        return error_token(lx, t, errno == ERANGE ? "number out of range" : "malformed number");
    while (lx->p < e)
        advance(lx);
    t.len = n;
    return t;
}

txt_token txt_lex_next(txt_lexer *lx) {
    for (;;) {
        while (lx->p < lx->end && isspace((unsigned char)*lx->p))
            advance(lx);
        if (lx->p < lx->end && *lx->p == '#') {
            while (lx->p < lx->end && *lx->p != '\n')
                advance(lx);
            continue;
        }
        break;
    }
    txt_token t = {.line = lx->line, .col = lx->col, .start = lx->p};
    if (lx->p >= lx->end)
        return t; /* TXT_EOF */
    char c = *lx->p;
    if (c == '"') {
        t.kind = TXT_STRING;
        return lex_string(lx, t);
    }
    if (c == '%') {
        advance(lx);
        t.kind = TXT_VALUE;
        if (lx->p < lx->end && *lx->p == '"') {
            t.quoted = true;
            return lex_string(lx, t);
        }
        t.start = lx->p;
        while (lx->p < lx->end && ident_char(*lx->p))
            advance(lx);
        t.len = (size_t)(lx->p - t.start);
        return t.len ? t : error_token(lx, t, "expected a value name after '%'");
    }
    if (isdigit((unsigned char)c) || (c == '-' && lx->p + 1 < lx->end &&
                                      (isdigit((unsigned char)lx->p[1]) || lx->p[1] == 'i' ||
                                       lx->p[1] == '.')))
        return lex_number(lx, t);
    if ((c == 'n' || c == 'i') && (size_t)(lx->end - lx->p) >= 3 &&
        (!strncmp(lx->p, "nan", 3) || !strncmp(lx->p, "inf", 3)) &&
        ((size_t)(lx->end - lx->p) == 3 || !ident_char(lx->p[3])))
        return lex_number(lx, t);
    if (isalpha((unsigned char)c) || c == '_') {
        t.kind = TXT_IDENT;
        while (lx->p < lx->end && ident_char(*lx->p))
            advance(lx);
        t.len = (size_t)(lx->p - t.start);
        return t;
    }
    if (strchr("{}()[],=:?*", c)) {
        t.kind = TXT_PUNCT;
        t.punct = c;
        t.len = 1;
        advance(lx);
        return t;
    }
    return error_token(lx, t, "unexpected character");
}

static int hex_digit(char c) {
    return isdigit((unsigned char)c) ? c - '0'
           : (c >= 'a' && c <= 'f')  ? c - 'a' + 10
           : (c >= 'A' && c <= 'F')  ? c - 'A' + 10
                                     : -1;
}

char *txt_decode(arena *a, const txt_token *t) {
    char *out = arena_alloc(a, t->len + 1, 1);
    if (!out)
        return NULL;
    size_t j = 0;
    for (size_t i = 0; i < t->len; i++) {
        char c = t->start[i];
        if (c != '\\') {
            out[j++] = c;
            continue;
        }
        if (++i >= t->len)
            return NULL;
        switch (t->start[i]) {
        case 'n': out[j++] = '\n'; break;
        case 't': out[j++] = '\t'; break;
        case '"': out[j++] = '"'; break;
        case '\\': out[j++] = '\\'; break;
        case 'x': {
            if (i + 2 >= t->len + 0 || hex_digit(t->start[i + 1]) < 0 ||
                hex_digit(t->start[i + 2]) < 0)
                return NULL;
            int v = hex_digit(t->start[i + 1]) * 16 + hex_digit(t->start[i + 2]);
            if (v == 0)
                return NULL; /* names are C strings */
            out[j++] = (char)v;
            i += 2;
            break;
        }
        default: return NULL;
        }
    }
    out[j] = 0;
    return out;
}
