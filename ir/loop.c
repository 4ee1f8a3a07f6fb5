/*
 * loop.c — building and printing the loop IR (see loop.h).
 */
#include "ir/loop.h"

#include "ir/print.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

kiln_status lir_module_create(const ir_graph *g, lir_module **out, kiln_diag *d) {
    lir_module *m = calloc(1, sizeof *m);
    *out = NULL;
    if (!m || !(m->arena = arena_create(0)) ||
        !(m->storage = ARENA_ARRAY(m->arena, lir_storage, g->value_ids + 1))) {
        lir_module_destroy(m);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    m->graph = g;
    *out = m;
    return KILN_OK;
}

void lir_module_destroy(lir_module *m) {
    if (!m)
        return;
    arena_destroy(m->arena);
    free(m);
}

/* Grows an arena-backed array of `elem`-sized items to hold one more. */
static void *grow(arena *a, void *items, int count, int *cap, size_t elem) {
    if (count < *cap)
        return items;
    int ncap = *cap ? *cap * 2 : 8;
    void *n = arena_array(a, elem, ncap, 16);
    if (n && count)
        memcpy(n, items, elem * (size_t)count);
    if (n)
        *cap = ncap;
    return n;
}

lir_kernel *lir_kernel_add(lir_module *m, const char *name, const ir_node *origin) {
    lir_kernel *k = ARENA_NEW(m->arena, lir_kernel);
    lir_kernel **ks = grow(m->arena, m->kernels, m->kernel_count, &m->kernel_cap, sizeof *ks);
    if (!k || !ks || !(k->name = arena_strdup(m->arena, name)) || !(k->body = lir_seq(m)))
        return NULL;
    k->origin = origin;
    m->kernels = ks;
    m->kernels[m->kernel_count++] = k;
    return k;
}

/* Appends b to k's parameters; false on OOM. */
static bool append_param(lir_module *m, lir_kernel *k, lir_buffer *b) {
    lir_buffer **ps = grow(m->arena, k->params, k->param_count, &k->param_cap, sizeof *ps);
    if (!ps)
        return false;
    k->params = ps;
    k->params[k->param_count++] = b;
    return true;
}

bool lir_kernel_use(lir_module *m, lir_kernel *k, lir_buffer *b) {
    for (int i = 0; i < k->param_count; i++)
        if (k->params[i] == b)
            return true;
    return append_param(m, k, b);
}

lir_buffer *lir_param(lir_module *m, lir_kernel *k, const ir_value *v) {
    for (int i = 0; i < k->param_count; i++)
        if (k->params[i]->value == v)
            return k->params[i];
    lir_buffer *b = ARENA_NEW(m->arena, lir_buffer);
    if (!b)
        return NULL;
    b->name = v->name;
    b->dtype = v->type.dtype;
    b->count = ir_type_count(&v->type);
    b->kind = LIR_BUF_VALUE;
    b->value = v;
    return append_param(m, k, b) ? b : NULL;
}

lir_buffer *lir_local(lir_module *m, lir_kernel *k, const char *name, kiln_dtype t, int64_t count) {
    lir_buffer *b = ARENA_NEW(m->arena, lir_buffer);
    if (!b || !(b->name = arena_strdup(m->arena, name)))
        return NULL;
    b->dtype = t;
    b->count = count;
    b->kind = LIR_BUF_LOCAL;
    b->local.kind = LIR_STORE_NONE;
    return append_param(m, k, b) ? b : NULL;
}

int lir_var_new(lir_module *m, lir_kernel *k, const char *name, kiln_dtype type) {
    lir_var *vs = grow(m->arena, k->vars, k->var_count, &k->var_cap, sizeof *vs);
    if (!vs)
        return -1;
    k->vars = vs;
    k->vars[k->var_count] = (lir_var){arena_strdup(m->arena, name), type};
    return k->var_count++;
}

static lir_expr *expr(lir_module *m, lir_expr_kind kind, kiln_dtype type, int lanes) {
    lir_expr *e = ARENA_NEW(m->arena, lir_expr);
    if (e) {
        e->kind = kind;
        e->type = type;
        e->lanes = lanes;
    }
    return e;
}

lir_expr *lir_int(lir_module *m, int64_t v) {
    lir_expr *e = expr(m, LIR_CONST, KILN_I64, 1);
    if (e)
        e->i = v, e->f = (double)v;
    return e;
}

int64_t lir_stride(const lir_expr *e, int var, const bool *varying) {
    const int64_t V = LIR_STRIDE_VARYING;
    switch (e->kind) {
    case LIR_CONST: return 0;
    case LIR_VAR: return e->var == var ? 1 : varying && varying[e->var] ? V : 0;
    case LIR_LOAD: return lir_stride(e->a, var, varying) == 0 ? 0 : V;
    case LIR_CAST: { /* a widening or same-size integer cast keeps the stride; others vary */
        int64_t s = lir_stride(e->a, var, varying);
        bool ints = !ir_dtype_is_float(e->type) && !ir_dtype_is_float(e->a->type);
        return s == 0 || (ints && kiln_dtype_size(e->type) >= kiln_dtype_size(e->a->type)) ? s : V;
    }
    case LIR_BINARY: {
        int64_t a = lir_stride(e->a, var, varying), b = lir_stride(e->b, var, varying);
        if (a == V || b == V)
            return V;
        if (a == 0 && b == 0)
            return 0;
        if (e->type != KILN_I64)
            return V;
        switch ((lir_op)e->op) {
        case LIR_ADD: return a + b;
        case LIR_SUB: return a - b;
        case LIR_MUL: /* by a constant */
            if (b == 0 && e->b->kind == LIR_CONST)
                return a * e->b->i;
            if (a == 0 && e->a->kind == LIR_CONST)
                return b * e->a->i;
            return V;
        default: return V;
        }
    }
    default: { /* unary, select, call: uniform only if every operand is */
        const lir_expr *ops[3] = {e->a, e->b, e->c};
        for (int i = 0; i < 3; i++)
            if (ops[i] && lir_stride(ops[i], var, varying) != 0)
                return V;
        return 0;
    }
    }
}

/* e at var = v, where e is made of integer constants, var and integer operators alone. */
static bool value_at(const lir_expr *e, int var, int64_t v, int64_t *out) {
    int64_t a, b;
    switch (e->kind) {
    case LIR_CONST: *out = e->i; return !ir_dtype_is_float(e->type);
    case LIR_VAR: *out = v; return e->var == var;
    case LIR_BINARY:
        if (e->type != KILN_I64 || !value_at(e->a, var, v, &a) || !value_at(e->b, var, v, &b))
            return false;
        switch ((lir_op)e->op) {
        case LIR_ADD: *out = a + b; return true;
        case LIR_SUB: *out = a - b; return true;
        case LIR_MUL: *out = a * b; return true;
        case LIR_DIV: *out = b ? a / b : 0; return b != 0;
        case LIR_REM: *out = b ? a % b : 0; return b != 0;
        case LIR_MIN: *out = a < b ? a : b; return true;
        case LIR_MAX: *out = a > b ? a : b; return true;
        default: return false;
        }
    default: return false;
    }
}

bool lir_lane_offsets(const lir_expr *e, int var, const bool *varying, int64_t first, int lanes, int64_t *off) {
    int64_t v0, v, other[64];
    if (lanes > 64)
        return false;
    if (lir_stride(e, var, varying) == 0) {
        for (int l = 0; l < lanes; l++)
            off[l] = 0;
        return true;
    }
    if (value_at(e, var, first, &v0)) {
        for (int l = 0; l < lanes; l++) {
            if (!value_at(e, var, first + l, &v))
                return false;
            off[l] = v - v0;
        }
        return true;
    }
    if (e->kind != LIR_BINARY || e->type != KILN_I64)
        return false;
    switch ((lir_op)e->op) {
    case LIR_ADD:
    case LIR_SUB:
        if (!lir_lane_offsets(e->a, var, varying, first, lanes, off) ||
            !lir_lane_offsets(e->b, var, varying, first, lanes, other))
            return false;
        for (int l = 0; l < lanes; l++)
            off[l] = e->op == LIR_ADD ? off[l] + other[l] : off[l] - other[l];
        return true;
    case LIR_MUL: { /* by a constant */
        const lir_expr *k = e->b->kind == LIR_CONST ? e->b : e->a->kind == LIR_CONST ? e->a : NULL;
        if (!k || !lir_lane_offsets(k == e->b ? e->a : e->b, var, varying, first, lanes, off))
            return false;
        for (int l = 0; l < lanes; l++)
            off[l] *= k->i;
        return true;
    }
    default: return false;
    }
}

lir_expr *lir_max_any(lir_module *m, lir_op op, lir_expr *a, lir_expr *b) {
    lir_expr *e = lir_binary(m, op, a, b);
    if (e && ir_dtype_is_float(e->type) && (op == LIR_MAX || op == LIR_MIN))
        e->i = 1;
    return e;
}

lir_expr *lir_fma(lir_module *m, lir_expr *a, lir_expr *b, lir_expr *acc) {
    lir_expr *e = lir_binary(m, LIR_ADD, acc, lir_binary(m, LIR_MUL, a, b));
    if (e && ir_dtype_is_float(e->type))
        e->i = 1;
    return e;
}

lir_expr *lir_int_const(lir_module *m, kiln_dtype t, int64_t v) {
    lir_expr *e = expr(m, LIR_CONST, t, 1);
    if (e)
        e->i = v, e->f = t == KILN_U64 ? (double)(uint64_t)v : (double)v;
    return e;
}

lir_expr *lir_const(lir_module *m, kiln_dtype t, double v) {
    lir_expr *e = expr(m, LIR_CONST, t, 1);
    if (e)
        e->f = v, e->i = ir_dtype_is_float(t) ? 0 : (int64_t)v;
    return e;
}

lir_expr *lir_var_ref(lir_module *m, const lir_kernel *k, int var) {
    lir_expr *e = var >= 0 ? expr(m, LIR_VAR, k->vars[var].type, 1) : NULL;
    if (e)
        e->var = var;
    return e;
}

lir_expr *lir_load(lir_module *m, lir_buffer *b, lir_expr *index) {
    lir_expr *e = b && index ? expr(m, LIR_LOAD, b->dtype, 1) : NULL;
    if (e)
        e->buf = b, e->a = index;
    return e;
}

lir_expr *lir_unary(lir_module *m, lir_op op, lir_expr *a) {
    lir_expr *e = a ? expr(m, LIR_UNARY, a->type, a->lanes) : NULL;
    if (e)
        e->op = op, e->a = a;
    return e;
}

lir_expr *lir_binary(lir_module *m, lir_op op, lir_expr *a, lir_expr *b) {
    if (!a || !b)
        return NULL;
    bool compare = op >= LIR_EQ && op <= LIR_GE;
    lir_expr *e = expr(m, LIR_BINARY, compare ? KILN_BOOL : a->type, a->lanes > b->lanes ? a->lanes : b->lanes);
    if (e)
        e->op = op, e->a = a, e->b = b;
    return e;
}

lir_expr *lir_select(lir_module *m, lir_expr *cond, lir_expr *a, lir_expr *b) {
    lir_expr *e = cond && a && b ? expr(m, LIR_SELECT, a->type, a->lanes) : NULL;
    if (e)
        e->a = cond, e->b = a, e->c = b;
    return e;
}

lir_expr *lir_cast(lir_module *m, kiln_dtype t, lir_expr *a) {
    if (a && a->type == t)
        return a;
    lir_expr *e = a ? expr(m, LIR_CAST, t, a->lanes) : NULL;
    if (e)
        e->a = a;
    return e;
}

lir_expr *lir_call(lir_module *m, lir_intrinsic fn, lir_expr *a, lir_expr *b) {
    lir_expr *e = a ? expr(m, LIR_CALL, a->type, a->lanes) : NULL;
    if (e)
        e->op = fn, e->a = a, e->b = b;
    return e;
}

static lir_stmt *stmt(lir_module *m, lir_stmt_kind kind) {
    lir_stmt *s = ARENA_NEW(m->arena, lir_stmt);
    if (s)
        s->kind = kind;
    return s;
}

lir_stmt *lir_seq(lir_module *m) {
    return stmt(m, LIR_SEQ);
}

bool lir_seq_push(lir_module *m, lir_stmt *seq, lir_stmt *item) {
    if (!seq || !item)
        return false;
    lir_stmt **items = grow(m->arena, seq->items, seq->count, &seq->cap, sizeof *items);
    if (!items)
        return false;
    seq->items = items;
    seq->items[seq->count++] = item;
    return true;
}

lir_stmt *lir_for(lir_module *m, int var, lir_expr *begin, lir_expr *end, lir_stmt *body) {
    lir_stmt *s = var >= 0 && begin && end && body ? stmt(m, LIR_FOR) : NULL;
    if (s)
        s->var = var, s->begin = begin, s->end = end, s->body = body, s->step = 1, s->loop = LIR_SERIAL;
    return s;
}

lir_stmt *lir_store(lir_module *m, lir_buffer *b, lir_expr *index, lir_expr *value) {
    lir_stmt *s = b && index && value ? stmt(m, LIR_STORE) : NULL;
    if (s)
        s->buf = b, s->index = index, s->value = value;
    return s;
}

lir_stmt *lir_transpose(lir_module *m, lir_buffer *dst, lir_expr *index, int64_t dst_stride, lir_expr *src,
                        int64_t src_stride, int rows, int cols, int width) {
    bool ok = dst && index && src && src->kind == LIR_LOAD && rows >= 1 && cols >= 1 && rows <= width && cols <= width &&
              width <= 64 && !(width & (width - 1)); /* the shuffle rounds halve it */
    lir_stmt *s = ok ? stmt(m, LIR_TRANSPOSE) : NULL;
    if (s)
        s->buf = dst, s->index = index, s->value = src, s->strides[0] = dst_stride, s->strides[1] = src_stride,
        s->rows = rows, s->cols = cols, s->width = width;
    return s;
}

lir_stmt *lir_let(lir_module *m, int var, lir_expr *value) {
    lir_stmt *s = var >= 0 && value ? stmt(m, LIR_LET) : NULL;
    if (s)
        s->var = var, s->value = value;
    return s;
}

lir_stmt *lir_assign(lir_module *m, int var, lir_expr *value) {
    lir_stmt *s = var >= 0 && value ? stmt(m, LIR_ASSIGN) : NULL;
    if (s)
        s->var = var, s->value = value;
    return s;
}

lir_stmt *lir_if(lir_module *m, lir_expr *cond, lir_stmt *then, lir_stmt *other) {
    lir_stmt *s = cond && then ? stmt(m, LIR_IF) : NULL;
    if (s)
        s->cond = cond, s->body = then, s->other = other;
    return s;
}

lir_stmt *lir_fail(lir_module *m, const char *message) {
    const char **es = grow(m->arena, m->errors, m->error_count, &m->error_cap, sizeof *es);
    const char *copy = arena_strdup(m->arena, message);
    lir_stmt *s = es && copy ? stmt(m, LIR_FAIL) : NULL;
    if (!s)
        return NULL;
    m->errors = es;
    m->errors[m->error_count++] = copy;
    s->var = m->error_count;
    return s;
}

const char *lir_op_name(lir_op op) {
    static const char *const names[LIR_OP_COUNT] = {
        "+", "-", "*", "/", "%", "min", "max", "and", "or", "xor",
        "==", "!=", "<", "<=", ">", ">=", "neg", "not", "abs",
    };
    return names[op];
}

const char *lir_intrinsic_name(lir_intrinsic fn) {
    static const char *const names[LIR_INTRINSIC_COUNT] = {
        "exp", "log", "sqrt", "tanh", "erf", "sin", "cos", "tan", "asin", "acos", "atan", "sinh",
        "cosh", "asinh", "acosh", "atanh", "floor", "ceil", "round_even", "log1p", "pow", "fmod",
    };
    return names[fn];
}

/* ---- printer ---------------------------------------------------------------------------- */

static void print_expr(const lir_kernel *k, const lir_expr *e, FILE *f) {
    char buf[40];
    switch (e->kind) {
    case LIR_CONST:
        if (ir_dtype_is_float(e->type)) {
            ir_format_number(buf, sizeof buf, e->f, e->type != KILN_F64);
            fprintf(f, "%s", buf);
        } else {
            fprintf(f, "%lld", (long long)e->i);
        }
        break;
    case LIR_VAR: fprintf(f, "%s", k->vars[e->var].name); break;
    case LIR_LOAD:
        fprintf(f, "%s[", e->buf->name);
        print_expr(k, e->a, f);
        fputc(']', f);
        break;
    case LIR_UNARY:
        fprintf(f, "%s(", lir_op_name((lir_op)e->op));
        print_expr(k, e->a, f);
        fputc(')', f);
        break;
    case LIR_BINARY:
        if (e->op == LIR_ADD && e->i && e->b->kind == LIR_BINARY && e->b->op == LIR_MUL) { /* lir_fma */
            fputs("fma(", f);
            print_expr(k, e->b->a, f);
            fputs(", ", f);
            print_expr(k, e->b->b, f);
            fputs(", ", f);
            print_expr(k, e->a, f);
            fputc(')', f);
        } else if (e->op == LIR_MIN || e->op == LIR_MAX || (e->op >= LIR_AND && e->op <= LIR_XOR)) {
            fprintf(f, "%s(", lir_op_name((lir_op)e->op));
            print_expr(k, e->a, f);
            fputs(", ", f);
            print_expr(k, e->b, f);
            fputc(')', f);
        } else {
            fputc('(', f);
            print_expr(k, e->a, f);
            fprintf(f, " %s ", lir_op_name((lir_op)e->op));
            print_expr(k, e->b, f);
            fputc(')', f);
        }
        break;
    case LIR_SELECT:
        fputs("select(", f);
        print_expr(k, e->a, f);
        fputs(", ", f);
        print_expr(k, e->b, f);
        fputs(", ", f);
        print_expr(k, e->c, f);
        fputc(')', f);
        break;
    case LIR_CAST:
        fprintf(f, "%s(", kiln_dtype_name(e->type));
        print_expr(k, e->a, f);
        fputc(')', f);
        break;
    case LIR_CALL:
        fprintf(f, "%s(", lir_intrinsic_name((lir_intrinsic)e->op));
        print_expr(k, e->a, f);
        if (e->b) {
            fputs(", ", f);
            print_expr(k, e->b, f);
        }
        fputc(')', f);
        break;
    }
}

static void print_stmt(const lir_module *m, const lir_kernel *k, const lir_stmt *s, int depth, FILE *f) {
    static const char *const loop_names[] = {"for", "parallel for", "vector for", "unroll for"};
    fprintf(f, "%*s", 2 * depth, "");
    switch (s->kind) {
    case LIR_FOR:
        fprintf(f, "%s %s in [", loop_names[s->loop], k->vars[s->var].name);
        print_expr(k, s->begin, f);
        fputs(", ", f);
        print_expr(k, s->end, f);
        fputc(')', f);
        if (s->step != 1)
            fprintf(f, " step %lld", (long long)s->step);
        if (s->width > 1)
            fprintf(f, " width %d", s->width);
        fputs(":\n", f);
        print_stmt(m, k, s->body, depth + 1, f);
        return;
    case LIR_STORE:
        fprintf(f, "%s[", s->buf->name);
        print_expr(k, s->index, f);
        fputs("] = ", f);
        print_expr(k, s->value, f);
        break;
    case LIR_LET:
    case LIR_ASSIGN:
        if (s->kind == LIR_LET)
            fprintf(f, "let %s %s = ", kiln_dtype_name(k->vars[s->var].type), k->vars[s->var].name);
        else
            fprintf(f, "%s = ", k->vars[s->var].name);
        print_expr(k, s->value, f);
        break;
    case LIR_IF:
        fputs("if ", f);
        print_expr(k, s->cond, f);
        fputs(":\n", f);
        print_stmt(m, k, s->body, depth + 1, f);
        if (s->other) {
            fprintf(f, "%*selse:\n", 2 * depth, "");
            print_stmt(m, k, s->other, depth + 1, f);
        }
        return;
    case LIR_FAIL:
        fprintf(f, "fail %d  # %s", s->var, m->errors[s->var - 1]);
        break;
    case LIR_TRANSPOSE:
        fprintf(f, "transpose %dx%d of %d: %s[", s->rows, s->cols, s->width, s->buf->name);
        print_expr(k, s->index, f);
        fprintf(f, " + a * %lld + b] = ", (long long)s->strides[0]);
        fprintf(f, "%s[", s->value->buf->name);
        print_expr(k, s->value->a, f);
        fprintf(f, " + b * %lld + a]", (long long)s->strides[1]);
        break;
    case LIR_SEQ:
        fprintf(f, "{\n");
        for (int i = 0; i < s->count; i++)
            print_stmt(m, k, s->items[i], depth + 1, f);
        fprintf(f, "%*s}", 2 * depth, "");
        break;
    }
    fputc('\n', f);
}

void lir_print(const lir_module *m, FILE *f) {
    static const char *const where[] = {"?", "input", "output", "const", "arena", "persist"};
    fprintf(f, "# target: %d-bit vectors, L2 %lld KiB per core\n", m->vector_bits, (long long)(m->l2_bytes >> 10));
    fprintf(f, "# arena: %lld bytes\n", (long long)m->arena_bytes);
    if (m->persist_bytes)
        fprintf(f, "# persistent: %lld bytes (computed once, from constants)\n", (long long)m->persist_bytes);
    for (int i = 0; i < m->kernel_count; i++) {
        const lir_kernel *k = m->kernels[i];
        fprintf(f, "%skernel %s(", k->once ? "once " : "", k->name);
        for (int p = 0; p < k->param_count; p++) {
            const lir_buffer *b = k->params[p];
            const lir_storage *s = lir_buffer_storage(m, b);
            fprintf(f, "%s%s: %s[%lld] @%s", p ? ", " : "", b->name, kiln_dtype_name(b->dtype),
                    (long long)b->count, where[s->kind]);
            if (s->kind == LIR_STORE_ARENA || s->kind == LIR_STORE_PERSIST)
                fprintf(f, "+%lld", (long long)s->offset);
            else if (s->kind == LIR_STORE_INPUT || s->kind == LIR_STORE_OUTPUT)
                fprintf(f, "%d", s->index);
        }
        fputs(") ", f);
        print_stmt(m, k, k->body, 0, f);
    }
}

/* select(v < k, t, v) with constant k >= 0 (or k > v, or <=): where v is chosen, v < k
 * was false, so v >= k >= 0 or v is NaN (a ReLU, a threshold). */
static bool below_replaced(const lir_expr *e) {
    const lir_expr *cmp = e->a;
    if (cmp->kind != LIR_BINARY || !lir_nonneg(e->b))
        return false;
    const lir_expr *v = cmp->op == LIR_LT || cmp->op == LIR_LE ? cmp->a : cmp->op == LIR_GT || cmp->op == LIR_GE ? cmp->b : NULL;
    const lir_expr *k = v == cmp->a ? cmp->b : cmp->a;
    return v && k->kind == LIR_CONST && k->f >= 0 && lir_expr_same(v, e->c);
}

static bool is_tanh_f32(const lir_expr *e) { return e->kind == LIR_CALL && e->op == LIR_TANH && e->type == KILN_F32; }

const lir_expr *lir_tanh_affine(const lir_expr *e, double *c, const lir_expr **d) {
    if (e->kind != LIR_BINARY || e->op != LIR_ADD || e->type != KILN_F32)
        return NULL;
    const lir_expr *p = e->b;
    if (e->i && p->kind == LIR_BINARY && p->op == LIR_MUL) { /* lir_fma: d + k * t or d + t * k */
        const lir_expr *k = p->a->kind == LIR_CONST ? p->a : p->b->kind == LIR_CONST ? p->b : NULL;
        const lir_expr *t = k == p->a ? p->b : p->a;
        int exponent;
        if (!k || !is_tanh_f32(t) || !(k->f > 0) || frexp(k->f, &exponent) != 0.5 || exponent < -9 || exponent > 11)
            return NULL;
        *c = k->f, *d = e->a;
        return t;
    }
    if (e->i) /* another multiply-add: its product is not c * t */
        return NULL;
    const lir_expr *t = is_tanh_f32(e->a) ? e->a : is_tanh_f32(e->b) ? e->b : NULL;
    if (t)
        *c = 1, *d = t == e->a ? e->b : e->a;
    return t;
}

bool lir_nonneg(const lir_expr *e) {
    if (!ir_dtype_is_float(e->type)) /* integer sums and products wrap */
        return false;
    switch (e->kind) {
    case LIR_CONST: return !(e->f < 0);
    case LIR_CAST: return ir_dtype_is_float(e->a->type) && lir_nonneg(e->a); /* rounding keeps the sign */
    case LIR_UNARY: return e->op == LIR_ABS;
    case LIR_CALL: return e->op == LIR_EXP || e->op == LIR_SQRT || e->op == LIR_COSH;
    case LIR_SELECT: return (lir_nonneg(e->b) && lir_nonneg(e->c)) || below_replaced(e);
    case LIR_BINARY:
        switch (e->op) {
        case LIR_MUL: return lir_expr_same(e->a, e->b) || (lir_nonneg(e->a) && lir_nonneg(e->b));
        case LIR_ADD:
        case LIR_DIV:
        case LIR_MIN: return lir_nonneg(e->a) && lir_nonneg(e->b);
        case LIR_MAX: /* NaN-propagating; lir_max_any may pass over a NaN operand to the other */
            if (e->i)
                return (lir_nonneg(e->a) && lir_nonneg(e->b)) || (e->a->kind == LIR_CONST && e->a->f >= 0) ||
                       (e->b->kind == LIR_CONST && e->b->f >= 0);
            return lir_nonneg(e->a) || lir_nonneg(e->b);
        default: return false;
        }
    default: return false;
    }
}

bool lir_expr_same(const lir_expr *a, const lir_expr *b) {
    if (a == b)
        return true;
    if (!a || !b || a->kind != b->kind || a->type != b->type || a->lanes != b->lanes || a->op != b->op ||
        a->i != b->i || a->var != b->var || a->buf != b->buf || (a->f != b->f && !(a->f != a->f && b->f != b->f)))
        return false;
    return lir_expr_same(a->a, b->a) && lir_expr_same(a->b, b->b) && lir_expr_same(a->c, b->c);
}
