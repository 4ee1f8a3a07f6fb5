/*
 * cemit.c — the C backend (see cemit.h). The kernels are printed from the loop IR as
 * plain C99: every variable declared at the top of its kernel, loops as `for`, stores as
 * assignments, failures as `return CODE;`. Float min/max propagate NaN and float -> int
 * conversion saturates, as the LLVM backend and the reference interpreter do.
 */
#include "backend/c/cemit.h"

#include "ir/print.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *c_type(kiln_dtype t) {
    switch (t) {
    case KILN_F32: return "float";
    case KILN_F64: return "double";
    case KILN_I64: return "int64_t";
    case KILN_I32: return "int32_t";
    case KILN_I16: return "int16_t";
    case KILN_I8: return "int8_t";
    case KILN_U64: return "uint64_t";
    case KILN_U32: return "uint32_t";
    case KILN_U16: case KILN_F16: case KILN_BF16: return "uint16_t"; /* 16-bit floats: their bits */
    default: return "uint8_t"; /* u8, bool */
    }
}

static bool is_unsigned(kiln_dtype t) {
    return t == KILN_U8 || t == KILN_U16 || t == KILN_U32 || t == KILN_U64 || t == KILN_BOOL;
}

static const char helpers[] =
    "static inline float kiln_fmaxf(float a, float b) { return a != a || b != b ? a + b : a > b ? a : b; }\n"
    "static inline float kiln_fminf(float a, float b) { return a != a || b != b ? a + b : a < b ? a : b; }\n"
    "static inline double kiln_fmax(double a, double b) { return a != a || b != b ? a + b : a > b ? a : b; }\n"
    "static inline double kiln_fmin(double a, double b) { return a != a || b != b ? a + b : a < b ? a : b; }\n"
    "static inline int64_t kiln_maxi(int64_t a, int64_t b) { return a > b ? a : b; }\n"
    "static inline int64_t kiln_mini(int64_t a, int64_t b) { return a < b ? a : b; }\n"
    "static inline uint64_t kiln_maxu(uint64_t a, uint64_t b) { return a > b ? a : b; }\n"
    "static inline uint64_t kiln_minu(uint64_t a, uint64_t b) { return a < b ? a : b; }\n"
    "/* float -> integer: truncates toward zero, saturates, NaN -> 0 */\n"
    "static inline int64_t kiln_f2i(double v, double lo, double hi) {\n"
    "    return v != v ? 0 : v <= lo ? (int64_t)lo : v >= hi ? (int64_t)hi : (int64_t)v;\n}\n"
    "static inline uint64_t kiln_f2u64(double v) {\n"
    "    return v != v || v <= 0 ? 0 : v >= 18446744073709551615.0 ? UINT64_MAX : (uint64_t)v;\n}\n"
    "static inline float kiln_h2f(uint16_t h) {\n"
    "    uint32_t s = (uint32_t)(h & 0x8000) << 16, e = (h >> 10) & 0x1f, m = h & 0x3ff, b;\n"
    "    if (e == 0x1f) b = s | 0x7f800000 | m << 13;\n"
    "    else if (e) b = s | (e + 112) << 23 | m << 13;\n"
    "    else if (!m) b = s;\n"
    "    else { int k = 0; while (!(m & 0x400)) m <<= 1, k++; b = s | (uint32_t)(113 - k) << 23 | (m & 0x3ff) << 13; }\n"
    "    float f; memcpy(&f, &b, 4); return f;\n}\n"
    "static inline uint16_t kiln_f2h(float f) {\n"
    "    uint32_t b; memcpy(&b, &f, 4);\n"
    "    uint16_t s = (uint16_t)((b >> 16) & 0x8000); uint32_t e = (b >> 23) & 0xff, m = b & 0x7fffff;\n"
    "    if (e == 0xff) return s | 0x7c00 | (m ? 0x200 | (uint16_t)(m >> 13) : 0);\n"
    "    int x = (int)e - 112;\n"
    "    if (x >= 0x1f) return s | 0x7c00;\n"
    "    if (x <= 0) {\n"
    "        if (x < -10) return s;\n"
    "        m |= 0x800000; uint32_t sh = (uint32_t)(14 - x), h = m >> sh, r = m & ((1u << sh) - 1), mid = 1u << (sh - 1);\n"
    "        if (r > mid || (r == mid && (h & 1))) h++;\n"
    "        return s | (uint16_t)h;\n    }\n"
    "    uint32_t h = (uint32_t)x << 10 | m >> 13, r = m & 0x1fff;\n"
    "    if (r > 0x1000 || (r == 0x1000 && (h & 1))) h++;\n"
    "    return s | (uint16_t)h;\n}\n"
    "static inline float kiln_b2f(uint16_t h) { uint32_t b = (uint32_t)h << 16; float f; memcpy(&f, &b, 4); return f; }\n"
    "static inline uint16_t kiln_f2b(float f) {\n"
    "    uint32_t b; memcpy(&b, &f, 4);\n"
    "    if ((b & 0x7fffffff) > 0x7f800000) return (uint16_t)(b >> 16 | 0x40);\n"
    "    b += 0x7fff + ((b >> 16) & 1); return (uint16_t)(b >> 16);\n}\n";

typedef struct emitter {
    FILE *f;
    const lir_module *m;
    const lir_kernel *k;
} emitter;

static void var_name(emitter *e, int v) {
    fprintf(e->f, "%s_%d", e->k->vars[v].name, v);
}

/* Kernel parameters are p0, p1, ...: graph value names need not be C identifiers. */
static void buf_name(emitter *e, const lir_buffer *b) {
    for (int i = 0; i < e->k->param_count; i++)
        if (e->k->params[i] == b)
            fprintf(e->f, "p%d", i);
}

static void number(FILE *f, kiln_dtype t, double v, int64_t i) {
    if (!ir_dtype_is_float(t)) {
        if (i > -2147483647 && i < 2147483647) /* an int literal converts exactly */
            fprintf(f, "%" PRId64, i);
        else if (t == KILN_U64)
            fprintf(f, "UINT64_C(%" PRIu64 ")", (uint64_t)i);
        else if (i == INT64_MIN)
            fprintf(f, "INT64_MIN");
        else
            fprintf(f, "INT64_C(%" PRId64 ")", i);
        return;
    }
    bool dbl = t == KILN_F64;
    if (isnan(v))
        fprintf(f, "%s", dbl ? "(double)NAN" : "NAN");
    else if (isinf(v))
        fprintf(f, "%s%s", v < 0 ? "-" : "", dbl ? "(double)INFINITY" : "INFINITY");
    else { /* the shortest decimal that reads back to the same value: exact, and readable */
        char buf[40];
        ir_format_number(buf, sizeof buf, v, !dbl);
        fprintf(f, "%s%s%s", buf, strpbrk(buf, ".e") ? "" : ".0", dbl ? "" : "f");
    }
}

static void expr(emitter *e, const lir_expr *x);

/* The value of `x` converted from its type to `to`. 16-bit floats go through f32. */
static void cast(emitter *e, const lir_expr *x, kiln_dtype to) {
    FILE *f = e->f;
    kiln_dtype from = x->type;
    const char *open = "", *close = "";
    if (from == KILN_F16 || from == KILN_BF16) {
        open = from == KILN_F16 ? "kiln_h2f(" : "kiln_b2f(";
        close = ")";
        from = KILN_F32;
    }
    bool ff = ir_dtype_is_float(from), ft = ir_dtype_is_float(to);
    if (to == KILN_F16 || to == KILN_BF16) {
        fprintf(f, "%s((float)(%s", to == KILN_F16 ? "kiln_f2h" : "kiln_f2b", open);
        expr(e, x);
        fprintf(f, "%s))", close);
    } else if (to == KILN_BOOL) {
        fprintf(f, "((%s", open);
        expr(e, x);
        fprintf(f, "%s) != 0)", close);
    } else if (ff && !ft) { /* saturating, NaN -> 0 */
        static const struct { kiln_dtype t; const char *lo, *hi; } limits[] = {
            {KILN_I64, "-9223372036854775808.0", "9223372036854775807.0"}, {KILN_I32, "-2147483648.0", "2147483647.0"},
            {KILN_I16, "-32768.0", "32767.0"}, {KILN_I8, "-128.0", "127.0"}, {KILN_U32, "0.0", "4294967295.0"},
            {KILN_U16, "0.0", "65535.0"}, {KILN_U8, "0.0", "255.0"},
        };
        if (to == KILN_U64)
            fprintf(f, "kiln_f2u64((double)(%s", open);
        else
            fprintf(f, "(%s)kiln_f2i((double)(%s", c_type(to), open);
        expr(e, x);
        fprintf(f, "%s)", close);
        for (int i = 0; to != KILN_U64 && i < ARRAY_LEN(limits); i++)
            if (limits[i].t == to)
                fprintf(f, ", %s, %s", limits[i].lo, limits[i].hi);
        fputc(')', f);
    } else {
        fprintf(f, "(%s)(%s", c_type(to), open);
        expr(e, x);
        fprintf(f, "%s)", close);
    }
}

static void call(emitter *e, const lir_expr *x) {
    static const char *const names[LIR_INTRINSIC_COUNT] = {
        "exp", "log", "sqrt", "tanh", "erf", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
        "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "nearbyint", "log1p", "pow", "fmod",
    };
    fprintf(e->f, "%s%s(", names[x->op], x->type == KILN_F64 ? "" : "f");
    expr(e, x->a);
    if (x->b) {
        fputs(", ", e->f);
        expr(e, x->b);
    }
    fputc(')', e->f);
}

static bool reads_data(const lir_expr *x) {
    return x && (x->kind == LIR_LOAD || reads_data(x->a) || reads_data(x->b) || reads_data(x->c));
}

static void binary(emitter *e, const lir_expr *x) {
    FILE *f = e->f;
    kiln_dtype t = x->a->type;
    bool fl = ir_dtype_is_float(t);
    if (x->op == LIR_MIN || x->op == LIR_MAX) {
        bool max = x->op == LIR_MAX;
        if (fl && x->i) { /* lir_max_any */
            fputs("((", f);
            expr(e, x->a);
            fputs(max ? ") > (" : ") < (", f);
            expr(e, x->b);
            fputs(") ? (", f);
            expr(e, x->a);
            fputs(") : (", f);
            expr(e, x->b);
            fputs("))", f);
            return;
        }
        if (fl)
            fprintf(f, "kiln_f%s%s(", max ? "max" : "min", t == KILN_F64 ? "" : "f");
        else
            fprintf(f, "(%s)kiln_%s%s(", c_type(t), max ? "max" : "min", is_unsigned(t) ? "u" : "i");
        expr(e, x->a);
        fputs(", ", f);
        expr(e, x->b);
        fputc(')', f);
        return;
    }
    if (x->op == LIR_REM && fl) {
        fprintf(f, "fmod%s(", t == KILN_F64 ? "" : "f");
        expr(e, x->a);
        fputs(", ", f);
        expr(e, x->b);
        fputc(')', f);
        return;
    }
    static const char *const ops[] = {"+", "-", "*", "/", "%", "", "", "&", "|", "^", "==", "!=", "<", "<=", ">", ">="};
    /* index arithmetic (on loop variables and constants) stays far from overflow; data may not */
    bool wrap = !fl && (x->op == LIR_ADD || x->op == LIR_SUB || x->op == LIR_MUL) && !is_unsigned(t) &&
                (reads_data(x->a) || reads_data(x->b));
    if (wrap) /* signed overflow is undefined in C: compute in unsigned, as the hardware wraps */
        fprintf(f, "(%s)((uint64_t)", c_type(t));
    fputc('(', f);
    expr(e, x->a);
    fprintf(f, " %s %s", ops[x->op], wrap ? "(uint64_t)" : "");
    expr(e, x->b);
    fputc(')', f);
    if (wrap)
        fputc(')', f);
}

static void expr(emitter *e, const lir_expr *x) {
    FILE *f = e->f;
    switch (x->kind) {
    case LIR_CONST: number(f, x->type, x->f, x->i); return;
    case LIR_VAR: var_name(e, x->var); return;
    case LIR_LOAD:
        if (x->type == KILN_BOOL)
            fputc('(', f);
        buf_name(e, x->buf);
        fputc('[', f);
        expr(e, x->a);
        fputc(']', f);
        if (x->type == KILN_BOOL)
            fputs(" != 0)", f);
        return;
    case LIR_UNARY:
        if (x->op == LIR_ABS && ir_dtype_is_float(x->type)) {
            fprintf(f, "fabs%s(", x->type == KILN_F64 ? "" : "f");
            expr(e, x->a);
            fputc(')', f);
        } else if (x->op == LIR_ABS) {
            fprintf(f, "(%s)kiln_maxi(", c_type(x->type));
            expr(e, x->a);
            fputs(", -(int64_t)", f);
            expr(e, x->a);
            fputc(')', f);
        } else {
            fputs(x->op == LIR_NOT ? "(!" : "(-", f);
            expr(e, x->a);
            fputc(')', f);
        }
        return;
    case LIR_BINARY: binary(e, x); return;
    case LIR_SELECT:
        fputc('(', f);
        expr(e, x->a);
        fputs(" ? ", f);
        expr(e, x->b);
        fputs(" : ", f);
        expr(e, x->c);
        fputc(')', f);
        return;
    case LIR_CAST: cast(e, x->a, x->type); return;
    case LIR_CALL: call(e, x); return;
    }
}

/* The scalars s declares (lets, loop variables). */
static void body_vars(const lir_stmt *s, bool *mine) {
    switch (s->kind) {
    case LIR_LET: mine[s->var] = true; return;
    case LIR_FOR: mine[s->var] = true; body_vars(s->body, mine); return;
    case LIR_IF:
        body_vars(s->body, mine);
        if (s->other)
            body_vars(s->other, mine);
        return;
    case LIR_SEQ:
        for (int i = 0; i < s->count; i++)
            body_vars(s->items[i], mine);
        return;
    default: return;
    }
}

static void stmt(emitter *e, const lir_stmt *s, int depth) {
    FILE *f = e->f;
    fprintf(f, "%*s", 4 * depth, "");
    switch (s->kind) {
    case LIR_SEQ:
        fputs("{\n", f);
        for (int i = 0; i < s->count; i++)
            stmt(e, s->items[i], depth + 1);
        fprintf(f, "%*s}\n", 4 * depth, "");
        return;
    case LIR_FOR:
        if (s->loop == LIR_PARALLEL) { /* every other variable is private to a thread */
            fprintf(f, "#pragma omp parallel for num_threads(threads) schedule(static)");
            bool any = false;
            for (int v = 0; v < e->k->var_count; v++) {
                if (v == s->var)
                    continue;
                fputs(any ? ", " : " private(", f);
                var_name(e, v);
                any = true;
            }
            fprintf(f, "%s\n%*s", any ? ")" : "", 4 * depth, "");
        } else if (s->loop == LIR_VECTOR) { /* lanes independent (schedule.c checked): scalars declared in the body are per lane */
            fprintf(f, "#pragma omp simd simdlen(%d)", s->width);
            bool *mine = calloc((size_t)e->k->var_count + 1, sizeof *mine), any = false;
            KILN_ASSERT(mine);
            body_vars(s->body, mine);
            for (int v = 0; v < e->k->var_count; v++)
                if (mine[v]) {
                    fputs(any ? ", " : " private(", f);
                    var_name(e, v);
                    any = true;
                }
            free(mine);
            fprintf(f, "%s\n%*s", any ? ")" : "", 4 * depth, "");
        }
        fputs("for (", f);
        var_name(e, s->var);
        fputs(" = ", f);
        expr(e, s->begin);
        fputs("; ", f);
        var_name(e, s->var);
        fputs(" < ", f);
        expr(e, s->end);
        fputs("; ", f);
        var_name(e, s->var);
        fprintf(f, " += %" PRId64 ")\n", s->step);
        stmt(e, s->body, s->body->kind == LIR_SEQ ? depth : depth + 1);
        return;
    case LIR_STORE:
        buf_name(e, s->buf);
        fputc('[', f);
        expr(e, s->index);
        fputs("] = ", f);
        if (s->buf->dtype == KILN_BOOL)
            fputs("(uint8_t)", f);
        expr(e, s->value);
        fputs(";\n", f);
        return;
    case LIR_LET:
    case LIR_ASSIGN:
        var_name(e, s->var);
        fputs(" = ", f);
        expr(e, s->value);
        fputs(";\n", f);
        return;
    case LIR_IF:
        fputs("if (", f);
        expr(e, s->cond);
        fputs(")\n", f);
        stmt(e, s->body, s->body->kind == LIR_SEQ ? depth : depth + 1);
        if (s->other) {
            fprintf(f, "%*selse\n", 4 * depth, "");
            stmt(e, s->other, s->other->kind == LIR_SEQ ? depth : depth + 1);
        }
        return;
    case LIR_FAIL: fprintf(f, "return %d; /* %s */\n", s->var, e->m->errors[s->var - 1]); return;
    case LIR_TRANSPOSE: /* element by element: the C compiler's vectorizer sees plain loops */
        fprintf(f, "for (int64_t a = 0; a < %d; a++)\n%*sfor (int64_t b = 0; b < %d; b++)\n%*s", s->rows,
                4 * depth + 4, "", s->cols, 4 * depth + 8, "");
        buf_name(e, s->buf);
        fputs("[", f);
        expr(e, s->index);
        fprintf(f, " + a * %" PRId64 " + b] = ", s->strides[0]);
        buf_name(e, s->value->buf);
        fputs("[", f);
        expr(e, s->value->a);
        fprintf(f, " + b * %" PRId64 " + a];\n", s->strides[1]);
        return;
    }
}

/* A name inside a C comment: no comment terminators, no control characters. */
static void comment_text(FILE *f, const char *s) {
    for (; *s; s++)
        fputc((*s == '*' && s[1] == '/') || (unsigned char)*s < 0x20 ? '_' : *s, f);
}

/* A C string literal. */
static void string_literal(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\')
            fprintf(f, "\\%c", ch);
        else if (ch < 0x20 || ch >= 0x7f)
            fprintf(f, "\\%03o", ch);
        else
            fputc(ch, f);
    }
    fputc('"', f);
}

/* Whether parameter p of kernel k shares its bytes with another of its parameters (an
 * output written in place of an input, passes/in_place.c). */
static bool param_shared(const lir_module *m, const lir_kernel *k, int p) {
    const lir_storage *s = lir_buffer_storage(m, k->params[p]);
    for (int q = 0; q < k->param_count; q++) {
        const lir_storage *t = lir_buffer_storage(m, k->params[q]);
        if (q != p && s->kind == LIR_STORE_ARENA && t->kind == LIR_STORE_ARENA && s->offset == t->offset)
            return true;
    }
    return false;
}

/* A kernel's function; `shared` marks the parameters that, in some kernel calling it, share
 * their bytes with another parameter: those are not `restrict`. */
static void kernel(emitter *e, const lir_kernel *k, const bool *shared) {
    FILE *f = e->f;
    e->k = k;
    fputs("\n/* node '", f);
    comment_text(f, k->origin->name);
    fprintf(f, "' (%s) */\nstatic int32_t %s(void *const *args, int32_t threads) {\n", ir_op_table[k->origin->op].name, k->name);
    fputs("    (void)threads;\n", f);
    for (int i = 0; i < k->param_count; i++) {
        fprintf(f, "    %s *%sp%d = args[%d]; /* ", c_type(k->params[i]->dtype), shared[i] ? "" : "restrict ", i, i);
        comment_text(f, k->params[i]->name);
        fputs(" */\n", f);
    }
    for (int v = 0; v < k->var_count; v++) {
        fprintf(f, "    %s ", k->vars[v].type == KILN_BOOL ? "int" : c_type(k->vars[v].type));
        var_name(e, v);
        fputs(";\n", f);
    }
    stmt(e, k->body, 1);
    fputs("    return 0;\n}\n", f);
}

/* A constant's data as a C array initializer. */
static void const_data(FILE *f, const kiln_tensor *t) {
    int64_t n = kiln_tensor_count(t);
    for (int64_t i = 0; i < n; i++) {
        fputs(i % 8 ? " " : "\n    ", f);
        if (t->dtype == KILN_F32 || t->dtype == KILN_F64)
            number(f, t->dtype, ir_tensor_get(t, i), 0);
        else if (t->dtype == KILN_F16 || t->dtype == KILN_BF16)
            fprintf(f, "0x%04x", ((const uint16_t *)t->data)[i]);
        else if (t->dtype == KILN_U64)
            fprintf(f, "UINT64_C(%" PRIu64 ")", (uint64_t)ir_tensor_get_int(t, i));
        else
            number(f, KILN_I64, 0, ir_tensor_get_int(t, i));
        fputc(',', f);
    }
    if (!n)
        fputs("0", f); /* C has no empty arrays */
}

static void header(FILE *h, const char *name, const lir_module *m) {
    const ir_graph *g = m->graph;
    fprintf(h, "/* %s.h: the API of lib%s, generated by kiln from %s. */\n", name, name, g->file ? g->file : "a model");
    fprintf(h, "#ifndef %s_KILN_H\n#define %s_KILN_H\n\n#include <stdint.h>\n\n", name, name);
    fputs("#ifndef KILN_TENSOR_DESC_DEFINED\n#define KILN_TENSOR_DESC_DEFINED\n"
          "/* dtype codes (kiln.h's kiln_dtype): 1 f32, 2 f64, 3 i64, 4 i32, 5 i8, 6 u8, 7 bool (one byte),\n"
          " * 8 f16, 9 bf16, 10 i16, 11 u16, 12 u32, 13 u64 */\n"
          "typedef struct kiln_tensor_desc {\n    const char *name;\n    int dtype;\n    int rank;\n"
          "    int64_t dims[8];\n} kiln_tensor_desc;\n#endif\n\n", h);
    fprintf(h, "typedef struct %s_ctx %s_ctx;\n\n", name, name);
    fprintf(h, "/* A context owns the working memory of one run at a time. NULL on out of memory. */\n"
               "%s_ctx *%s_create(void);\nvoid %s_destroy(%s_ctx *ctx); /* NULL is a no-op */\n"
               "/* Threads for the parallel loops of later runs (default: the processors OpenMP sees). */\n"
               "void %s_set_threads(%s_ctx *ctx, int threads);\n"
               "/* inputs and outputs: dense C-order buffers in graph order, of the shapes below.\n"
               " * Returns 0, or an error code with the message in %s_last_error. */\n"
               "int %s_run(%s_ctx *ctx, const void *const *inputs, void *const *outputs);\n"
               "const char *%s_last_error(%s_ctx *ctx);\n"
               "int %s_num_inputs(void);\nint %s_num_outputs(void);\n"
               "const kiln_tensor_desc *%s_input_desc(int i);  /* NULL if out of range */\n"
               "const kiln_tensor_desc *%s_output_desc(int i);\n\n#endif\n",
            name, name, name, name, name, name, name, name, name, name, name, name, name, name, name);
}

static void descs(FILE *f, const char *name, const char *which, ir_value **values, int count) {
    fprintf(f, "static const kiln_tensor_desc %s_%s[%d] = {\n", name, which, count ? count : 1);
    for (int i = 0; i < count; i++) {
        fputs("    {", f);
        string_literal(f, values[i]->name);
        fprintf(f, ", %d, %d, {", (int)values[i]->type.dtype, values[i]->type.rank);
        for (int d = 0; d < values[i]->type.rank; d++)
            fprintf(f, "%s%" PRId64, d ? ", " : "", values[i]->type.dims[d]);
        fputs("}},\n", f);
    }
    fprintf(f, "%s};\n", count ? "" : "    {0}\n");
}

kiln_status cemit_source(const lir_module *m, const char *name, bool external, FILE *c, FILE *h, kiln_diag *d) {
    const ir_graph *g = m->graph;
    header(h, name, m);
    fprintf(c, "/* lib%s, generated by kiln from %s: %s */\n", name, g->file ? g->file : "a model",
            external ? "the runner; the kernels and weights are in the object LLVM compiled."
                     : "plain C, needing only libc and libm.");
    fprintf(c, "#include \"%s.h\"\n\n#include <math.h>\n#include <stdint.h>\n#include <stdio.h>\n"
               "#include <stdlib.h>\n#include <string.h>\n#ifdef _OPENMP\n#include <omp.h>\n#endif\n\n%s", name, helpers);
    /* constants: one array each, numbered by their order in the graph */
    for (int i = 0; i < g->init_count; i++) {
        const ir_value *v = g->inits[i];
        fprintf(c, "\n/* ");
        comment_text(c, v->name);
        if (external) {
            fprintf(c, " */\nextern const %s %s_c%d[];\n#define c%d %s_c%d\n", c_type(v->type.dtype), name, i, i, name, i);
            continue;
        }
        fprintf(c, " */\nstatic const %s c%d[] = {", c_type(v->type.dtype), i);
        const_data(c, v->init);
        fputs("\n};\n", c);
    }
    emitter e = {.f = c, .m = m};
    int distinct, *same = lir_same_kernels(m, &distinct);
    if (!same)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    for (int i = 0; i < m->kernel_count; i++) {
        const char *kn = m->kernels[i]->name, *first = m->kernels[same[i]]->name;
        if (same[i] != i) /* the same code as an earlier kernel (lir_kernel_same): that one runs */
            fprintf(c, "#define %s %s\n", kn, first);
        else if (external)
            fprintf(c, "extern int32_t %s_%s(void *const *args, int32_t threads);\n#define %s %s_%s\n", name, kn, kn, name, kn);
        else {
            bool *shared = calloc((size_t)m->kernels[i]->param_count + 1, sizeof *shared);
            if (!shared) {
                free(same);
                return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
            }
            for (int j = i; j < m->kernel_count; j++) /* i and every kernel that runs i's code */
                if (same[j] == i)
                    for (int p = 0; p < m->kernels[j]->param_count; p++)
                        shared[p] |= param_shared(m, m->kernels[j], p);
            kernel(&e, m->kernels[i], shared);
            free(shared);
        }
    }
    free(same);
    /* the program: each kernel's arguments, bound by the memory plan */
    if (external) /* the parallel-for the object's kernels call (kiln's runtime has the same) */
        fputs("\n__attribute__((visibility(\"hidden\")))\n"
              "int32_t kiln_rt_parallel_for(int32_t (*body)(void *const *, int64_t, int64_t), void *const *args, int64_t n,\n"
              "                             int32_t threads) {\n"
              "    if (threads <= 1 || n <= 1)\n        return body(args, 0, n);\n"
              "    if (threads > n)\n        threads = (int32_t)n;\n    int32_t rc = 0;\n"
              "#pragma omp parallel for num_threads(threads) schedule(static, 1)\n"
              "    for (int32_t t = 0; t < threads; t++) {\n"
              "        int32_t r = body(args, n * t / threads, n * (t + 1) / threads);\n"
              "        if (r) {\n#pragma omp critical\n            if (!rc)\n                rc = r;\n        }\n    }\n"
              "    return rc;\n}\n", c);
    fputs("\n/* where each argument lives: 1 input, 2 output, 3 constant, 4 arena (+offset), 5 the persistent\n"
          " * block (+offset: data derived from constants by the `once` kernels, run before the first run) */\n"
          "typedef struct arg { int kind; int index; int64_t offset; } arg;\n"
          "typedef struct kernel { int32_t (*fn)(void *const *, int32_t); const char *node; int count; const arg *args; int once; } kernel;\n", c);
    int max_args = 1;
    for (int i = 0; i < m->kernel_count; i++) {
        const lir_kernel *k = m->kernels[i];
        max_args = k->param_count > max_args ? k->param_count : max_args;
        fprintf(c, "static const arg args%d[] = {", i);
        for (int p = 0; p < k->param_count; p++) {
            const ir_value *v = k->params[p]->value;
            const lir_storage *s = lir_buffer_storage(m, k->params[p]);
            int index = s->index;
            if (s->kind == LIR_STORE_CONST)
                for (int j = 0; j < g->init_count; j++)
                    if (g->inits[j] == v)
                        index = j;
            fprintf(c, "{%d, %d, %" PRId64 "}, ", (int)s->kind, index, s->offset);
        }
        fputs("{0, 0, 0}};\n", c);
    }
    fprintf(c, "static const kernel kernels[%d] = {\n", m->kernel_count ? m->kernel_count : 1);
    for (int i = 0; i < m->kernel_count; i++) {
        fprintf(c, "    {%s, ", m->kernels[i]->name);
        string_literal(c, m->kernels[i]->origin->name);
        fprintf(c, ", %d, args%d, %d},\n", m->kernels[i]->param_count, i, (int)m->kernels[i]->once);
    }
    fprintf(c, "%s};\n", m->kernel_count ? "" : "    {0}\n");
    fprintf(c, "static const void *const consts[%d] = {", g->init_count ? g->init_count : 1);
    for (int i = 0; i < g->init_count; i++)
        fprintf(c, "c%d, ", i);
    fputs(g->init_count ? "};\n" : "0};\n", c);
    fprintf(c, "static const char *const errors[%d] = {", m->error_count ? m->error_count : 1);
    for (int i = 0; i < m->error_count; i++) {
        string_literal(c, m->errors[i]);
        fputs(", ", c);
    }
    fputs(m->error_count ? "};\n" : "0};\n", c);
    /* graph outputs that no kernel writes: copied from where they live */
    fprintf(c, "static const struct { int kind, index; int64_t offset, bytes; int output; } copies[%d] = {", g->output_count + 1);
    for (int j = 0; j < g->output_count; j++) {
        const lir_storage *s = &m->storage[g->outputs[j]->id];
        if (s->kind == LIR_STORE_OUTPUT && s->index == j)
            continue;
        int index = s->index;
        for (int i = 0; s->kind == LIR_STORE_CONST && i < g->init_count; i++)
            if (g->inits[i] == g->outputs[j])
                index = i;
        fprintf(c, "{%d, %d, %" PRId64 ", %" PRId64 ", %d}, ", (int)s->kind, index, s->offset,
                ir_type_count(&g->outputs[j]->type) * (int64_t)kiln_dtype_size(g->outputs[j]->type.dtype), j);
    }
    fputs("{0, 0, 0, 0, 0}};\n", c);
    descs(c, name, "inputs", g->inputs, g->input_count);
    descs(c, name, "outputs", g->outputs, g->output_count);
    fprintf(c, "\nstruct %s_ctx {\n    unsigned char *arena, *persist;\n    int threads, filled;\n    char error[512];\n};\n", name);
    fprintf(c, "\n%s_ctx *%s_create(void) {\n    %s_ctx *ctx = calloc(1, sizeof *ctx);\n"
               "    if (ctx && (!(ctx->arena = aligned_alloc(64, %" PRId64 ")) || !(ctx->persist = aligned_alloc(64, %" PRId64 ")))) {\n"
               "        free(ctx->arena);\n        free(ctx);\n        return NULL;\n    }\n"
               "#ifdef _OPENMP\n    if (ctx)\n        ctx->threads = omp_get_num_procs();\n#else\n"
               "    if (ctx)\n        ctx->threads = 1;\n#endif\n    return ctx;\n}\n",
            name, name, name, (m->arena_bytes + 63) / 64 * 64 + 64, (m->persist_bytes + 63) / 64 * 64 + 64);
    fprintf(c, "\nvoid %s_destroy(%s_ctx *ctx) {\n    if (ctx)\n        free(ctx->arena), free(ctx->persist);\n    free(ctx);\n}\n", name, name);
    fprintf(c, "\nvoid %s_set_threads(%s_ctx *ctx, int threads) {\n    ctx->threads = threads > 0 ? threads : 1;\n}\n", name, name);
    fprintf(c, "\nconst char *%s_last_error(%s_ctx *ctx) {\n    return ctx->error;\n}\n", name, name);
    fprintf(c, "\nint %s_num_inputs(void) {\n    return %d;\n}\n\nint %s_num_outputs(void) {\n    return %d;\n}\n",
            name, g->input_count, name, g->output_count);
    fprintf(c, "\nconst kiln_tensor_desc *%s_input_desc(int i) {\n    return i >= 0 && i < %d ? &%s_inputs[i] : NULL;\n}\n",
            name, g->input_count, name);
    fprintf(c, "\nconst kiln_tensor_desc *%s_output_desc(int i) {\n    return i >= 0 && i < %d ? &%s_outputs[i] : NULL;\n}\n",
            name, g->output_count, name);
    fprintf(c, "\nstatic void *where(%s_ctx *ctx, int kind, int index, int64_t offset, const void *const *inputs,\n"
               "                   void *const *outputs) {\n"
               "    switch (kind) {\n    case 1: return (void *)inputs[index];\n    case 2: return outputs[index];\n"
               "    case 3: return (void *)consts[index];\n    case 5: return ctx->persist + offset;\n"
               "    default: return ctx->arena + offset;\n    }\n}\n", name);
    fprintf(c, "\nint %s_run(%s_ctx *ctx, const void *const *inputs, void *const *outputs) {\n"
               "    void *argv[%d];\n    ctx->error[0] = 0;\n"
               "    for (int pass = ctx->filled; pass < 2; pass++) {\n"
               "        for (int k = 0; k < %d; k++) {\n"
               "            if (kernels[k].once != (pass == 0))\n                continue;\n"
               "            for (int a = 0; a < kernels[k].count; a++)\n"
               "                argv[a] = where(ctx, kernels[k].args[a].kind, kernels[k].args[a].index, kernels[k].args[a].offset,\n"
               "                                inputs, outputs);\n"
               "            int32_t rc = kernels[k].fn(argv, ctx->threads);\n"
               "            if (rc) {\n"
               "                snprintf(ctx->error, sizeof ctx->error, \"node '%%s': %%s\", kernels[k].node, errors[rc - 1]);\n"
               "                return (int)rc;\n            }\n        }\n"
               "        ctx->filled = 1;\n    }\n"
               "    for (int j = 0; copies[j].kind; j++)\n"
               "        memcpy(outputs[copies[j].output], where(ctx, copies[j].kind, copies[j].index, copies[j].offset, inputs, outputs),\n"
               "               (size_t)copies[j].bytes);\n"
               "    return 0;\n}\n",
            name, name, max_args, m->kernel_count);
    (void)d;
    return ferror(c) || ferror(h) ? diag_error(d, LOC_NONE, KILN_ERR_IO, "could not write the C source") : KILN_OK;
}
