/*
 * print.c — the .kiln printer (grammar in print.h, parser in frontend/txt_parse.c).
 * Everything is printed in a fixed order and spacing so that print -> parse -> print is
 * the identity: header, inputs, initializers, nodes, outputs.
 */
#include "ir/print.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

void ir_format_number(char *buf, size_t cap, double v, bool as_float) {
    if (isnan(v)) {
        snprintf(buf, cap, "nan");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, cap, v < 0 ? "-inf" : "inf");
        return;
    }
    for (int prec = as_float ? 6 : 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        double back = strtod(buf, NULL);
        if (as_float ? (float)back == (float)v : back == v)
            break;
    }
}

static void print_string(FILE *f, const char *s) {
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c == '\n')
            fputs("\\n", f);
        else if (c == '\t')
            fputs("\\t", f);
        else if (c < 0x20 || c == 0x7f)
            fprintf(f, "\\x%02x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

static bool plain_name(const char *s) {
    if (!*s)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '.')
            return false;
    return true;
}

void ir_print_value_ref(FILE *f, const char *name) {
    fputc('%', f);
    if (plain_name(name))
        fputs(name, f);
    else
        print_string(f, name);
}

void ir_print_type(FILE *f, const ir_graph *g, const kiln_tensor *type) {
    fputs(kiln_dtype_name(type->dtype), f);
    if (type->rank < 0) {
        fputs("[*]", f);
        return;
    }
    fputc('[', f);
    for (int i = 0; i < type->rank; i++) {
        if (i)
            fputs(", ", f);
        int64_t dim = type->dims[i];
        if (dim == IR_DIM_BATCH)
            fputs(g && g->batch_name ? g->batch_name : "N", f);
        else if (dim < 0)
            fputc('?', f);
        else
            fprintf(f, "%lld", (long long)dim);
    }
    fputc(']', f);
}

const char *ir_type_text(const kiln_tensor *type, char *buf, size_t cap) {
    FILE *f = fmemopen(buf, cap, "w");
    if (!f)
        return "?";
    ir_print_type(f, NULL, type);
    fclose(f);
    return buf;
}

static void print_data(FILE *f, const kiln_tensor *t, const ir_print_opts *o) {
    int64_t n = kiln_tensor_count(t);
    if (o && o->elide_over && n > o->elide_over) {
        fprintf(f, "<%lld values>", (long long)n);
        return;
    }
    char buf[40];
    fputc('[', f);
    for (int64_t i = 0; i < n; i++) {
        if (i)
            fputs(", ", f);
        if (ir_dtype_is_float(t->dtype)) {
            ir_format_number(buf, sizeof buf, ir_tensor_get(t, i), t->dtype != KILN_F64);
            fputs(buf, f);
        } else {
            if (t->dtype == KILN_U64)
                fprintf(f, "%llu", (unsigned long long)(uint64_t)ir_tensor_get_int(t, i));
            else
                fprintf(f, "%lld", (long long)ir_tensor_get_int(t, i));
        }
    }
    fputc(']', f);
}

static void print_attr(FILE *f, const ir_graph *g, const ir_attr *a, const ir_print_opts *o) {
    char buf[40];
    fprintf(f, "%s = ", a->name);
    switch (a->kind) {
    case IR_ATTR_INT: fprintf(f, "%lld", (long long)a->i); break;
    case IR_ATTR_FLOAT:
        ir_format_number(buf, sizeof buf, a->f, false);
        /* a float literal always shows it is one, so the parser needs no schema to know */
        fprintf(f, "%s%s", buf, strpbrk(buf, ".ein") ? "" : ".0");
        break;
    case IR_ATTR_STRING: print_string(f, a->s); break;
    case IR_ATTR_INTS:
        fputc('[', f);
        for (int i = 0; i < a->count; i++)
            fprintf(f, "%s%lld", i ? ", " : "", (long long)a->ints[i]);
        fputc(']', f);
        break;
    case IR_ATTR_FLOATS:
        fputc('[', f);
        for (int i = 0; i < a->count; i++) {
            ir_format_number(buf, sizeof buf, a->floats[i], false);
            fprintf(f, "%s%s%s", i ? ", " : "", buf, strpbrk(buf, ".ein") ? "" : ".0");
        }
        fputc(']', f);
        break;
    case IR_ATTR_STRINGS:
        fputc('[', f);
        for (int i = 0; i < a->count; i++) {
            if (i)
                fputs(", ", f);
            print_string(f, a->strings[i]);
        }
        fputc(']', f);
        break;
    case IR_ATTR_TENSOR:
        ir_print_type(f, g, a->t);
        fputc(' ', f);
        print_data(f, a->t, o);
        break;
    }
}

static void print_init(FILE *f, const ir_graph *g, const ir_value *v, const ir_print_opts *o) {
    fprintf(f, "  %s ", v->kind == IR_VAL_PARAM ? "param" : "const");
    ir_print_value_ref(f, v->name);
    fputs(": ", f);
    ir_print_type(f, g, &v->type);
    fputs(" = ", f);
    if (v->init_file && v->init_key) {
        fputs("npz(", f);
        print_string(f, v->init_file);
        fputs(", ", f);
        print_string(f, v->init_key);
        fputc(')', f);
    } else if (v->init_file) {
        fputs("npy(", f);
        print_string(f, v->init_file);
        fputc(')', f);
    } else {
        print_data(f, v->init, o);
    }
    fputc('\n', f);
}

static void print_node(FILE *f, const ir_graph *g, const ir_node *n, const ir_print_opts *o) {
    fputs("  ", f);
    if (strcmp(n->name, n->outputs[0]->name)) {
        print_string(f, n->name);
        fputs(": ", f);
    }
    for (int i = 0; i < n->output_count; i++) {
        if (i)
            fputs(", ", f);
        ir_print_value_ref(f, n->outputs[i]->name);
        if (n->outputs[i]->type.dtype != KILN_DTYPE_INVALID) {
            fputs(": ", f);
            ir_print_type(f, g, &n->outputs[i]->type);
        }
    }
    fprintf(f, " = %s(", ir_op_table[n->op].name);
    for (int i = 0; i < n->input_count; i++) {
        if (i)
            fputs(", ", f);
        if (n->inputs[i])
            ir_print_value_ref(f, n->inputs[i]->name);
        else
            fputc('_', f);
    }
    fputc(')', f);
    if (n->attr_count) {
        fputs(" {", f);
        for (int i = 0; i < n->attr_count; i++) {
            if (i)
                fputs(", ", f);
            print_attr(f, g, &n->attrs[i], o);
        }
        fputc('}', f);
    }
    fputc('\n', f);
}

void ir_print(const ir_graph *g, FILE *f, const ir_print_opts *o) {
    fputs("graph ", f);
    if (plain_name(g->name) && !isdigit((unsigned char)g->name[0]))
        fputs(g->name, f);
    else
        print_string(f, g->name);
    fputs(" {\n", f);
    for (int i = 0; i < g->input_count; i++) {
        fputs("  input ", f);
        ir_print_value_ref(f, g->inputs[i]->name);
        fputs(": ", f);
        ir_print_type(f, g, &g->inputs[i]->type);
        fputc('\n', f);
    }
    for (int i = 0; i < g->init_count; i++)
        print_init(f, g, g->inits[i], o);
    for (int i = 0; i < g->node_count; i++)
        print_node(f, g, g->nodes[i], o);
    if (g->output_count) {
        fputs("  output ", f);
        for (int i = 0; i < g->output_count; i++) {
            if (i)
                fputs(", ", f);
            ir_print_value_ref(f, g->outputs[i]->name);
        }
        fputc('\n', f);
    }
    fputs("}\n", f);
}

char *ir_print_string(const ir_graph *g, const ir_print_opts *opts) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    ir_print(g, f, opts);
    if (fclose(f) != 0) {
        free(buf);
        return NULL;
    }
    return buf;
}
