/*
 * graph.c — building and editing graphs, the name table, attribute access with
 * defaults, and per-element tensor access for reference code.
 */
#include "ir/graph.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Open addressing over value pointers; the table lives outside the arena so it can grow
 * without leaving old copies behind. */
typedef struct ir_name_table {
    ir_value **slots;
    size_t cap, count;
} ir_name_table;

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool names_grow(ir_name_table *t) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    ir_value **slots = calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->slots[i])
            continue;
        size_t j = name_hash(t->slots[i]->name) & (cap - 1);
        while (slots[j])
            j = (j + 1) & (cap - 1);
        slots[j] = t->slots[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return true;
}

ir_value *ir_graph_find(const ir_graph *g, const char *name) {
    const ir_name_table *t = g->names;
    if (!t->cap)
        return NULL;
    for (size_t j = name_hash(name) & (t->cap - 1); t->slots[j]; j = (j + 1) & (t->cap - 1))
        if (!strcmp(t->slots[j]->name, name))
            return t->slots[j];
    return NULL;
}

static bool names_insert(ir_name_table *t, ir_value *v) {
    if ((t->count + 1) * 2 > t->cap && !names_grow(t))
        return false;
    size_t j = name_hash(v->name) & (t->cap - 1);
    while (t->slots[j])
        j = (j + 1) & (t->cap - 1);
    t->slots[j] = v;
    t->count++;
    return true;
}

kiln_status ir_graph_create(const char *name, const char *file, ir_graph **out, kiln_diag *d) {
    *out = NULL;
    ir_graph *g = calloc(1, sizeof *g);
    if (!g || !(g->arena = arena_create(0)) || !(g->names = calloc(1, sizeof *g->names))) {
        ir_graph_destroy(g);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory creating a graph");
    }
    g->name = arena_strdup(g->arena, name ? name : "main");
    g->file = file ? arena_strdup(g->arena, file) : NULL;
    if (!g->name || (file && !g->file)) {
        ir_graph_destroy(g);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory creating a graph");
    }
    *out = g;
    return KILN_OK;
}

void ir_graph_destroy(ir_graph *g) {
    if (!g)
        return;
    if (g->names)
        free(g->names->slots);
    free(g->names);
    arena_destroy(g->arena);
    free(g);
}

/* Appends to an arena-backed array, doubling it (the old block stays in the arena). */
static bool push_ptr(arena *a, void ***items, int *count, int *cap, void *item) {
    if (*count == *cap) {
        int ncap = *cap ? *cap * 2 : 8;
        void **n = ARENA_ARRAY(a, void *, ncap);
        if (!n)
            return false;
        if (*count)
            memcpy(n, *items, sizeof(void *) * (size_t)*count);
        *items = n;
        *cap = ncap;
    }
    (*items)[(*count)++] = item;
    return true;
}
#define PUSH(g, list, field, item) \
    push_ptr((g)->arena, (void ***)&(g)->list, &(g)->field##_count, &(g)->field##_cap, (item))

kiln_status ir_graph_new_value(ir_graph *g, const char *name, ir_value_kind kind, kiln_loc loc,
                               ir_value **out, kiln_diag *d) {
    *out = NULL;
    ir_value *prev = ir_graph_find(g, name);
    if (prev) {
        if (prev->loc.line)
            return diag_error(d, loc, KILN_ERR_INVALID,
                              "value '%s' is defined twice (first at line %d)", name,
                              prev->loc.line);
        return diag_error(d, loc, KILN_ERR_INVALID, "value '%s' is defined twice", name);
    }
    ir_value *v = ARENA_NEW(g->arena, ir_value);
    if (!v || !(v->name = arena_strdup(g->arena, name)))
        return diag_error(d, loc, KILN_ERR_OOM, "out of memory");
    v->kind = kind;
    v->type.rank = -1;
    v->loc = loc;
    v->id = g->value_ids++;
    bool ok = names_insert(g->names, v);
    if (ok && kind == IR_VAL_INPUT)
        ok = PUSH(g, inputs, input, v);
    else if (ok && (kind == IR_VAL_PARAM || kind == IR_VAL_CONST))
        ok = PUSH(g, inits, init, v);
    if (!ok)
        return diag_error(d, loc, KILN_ERR_OOM, "out of memory");
    *out = v;
    return KILN_OK;
}

const char *ir_graph_fresh_name(ir_graph *g, const char *base) {
    if (!ir_graph_find(g, base))
        return arena_strdup(g->arena, base);
    size_t len = strlen(base) + 24;
    char *buf = arena_alloc(g->arena, len, 1);
    if (!buf)
        return NULL;
    for (long i = 1;; i++) {
        snprintf(buf, len, "%s_%ld", base, i);
        if (!ir_graph_find(g, buf))
            return buf;
    }
}

kiln_status ir_graph_add_output(ir_graph *g, ir_value *v, kiln_diag *d) {
    if (v->is_output)
        return diag_error(d, v->loc, KILN_ERR_INVALID, "value '%s' is listed as an output twice",
                          v->name);
    v->is_output = true;
    if (!PUSH(g, outputs, output, v))
        return diag_error(d, v->loc, KILN_ERR_OOM, "out of memory");
    return KILN_OK;
}

kiln_status ir_graph_add_node(ir_graph *g, ir_op op, const char *name, ir_value *const *inputs,
                              int input_count, ir_value *const *outputs, int output_count,
                              kiln_loc loc, ir_node **out, kiln_diag *d) {
    if (out)
        *out = NULL;
    if (g->node_ids >= IR_MAX_NODES) /* ids are ints; passes size arrays by them */
        return diag_error(d, loc, KILN_ERR_UNSUPPORTED, "the graph has more than %d nodes", IR_MAX_NODES);
    ir_node *n = ARENA_NEW(g->arena, ir_node);
    if (!n)
        return diag_error(d, loc, KILN_ERR_OOM, "out of memory");
    n->op = op;
    n->id = g->node_ids++;
    n->name = arena_strdup(g->arena, name);
    n->inputs = ARENA_ARRAY(g->arena, ir_value *, input_count);
    n->outputs = ARENA_ARRAY(g->arena, ir_value *, output_count);
    if (!n->name || !n->inputs || !n->outputs)
        return diag_error(d, loc, KILN_ERR_OOM, "out of memory");
    if (input_count)
        memcpy(n->inputs, inputs, sizeof(ir_value *) * (size_t)input_count);
    n->input_count = input_count;
    for (int i = 0; i < output_count; i++) {
        KILN_ASSERT(outputs[i]->kind == IR_VAL_NODE && !outputs[i]->producer);
        n->outputs[i] = outputs[i];
        outputs[i]->producer = n;
        outputs[i]->producer_slot = i;
    }
    n->output_count = output_count;
    n->loc = loc;
    n->loc.node = n->name;
    n->loc.op = ir_op_table[op].name;
    if (!PUSH(g, nodes, node, n))
        return diag_error(d, loc, KILN_ERR_OOM, "out of memory");
    if (out)
        *out = n;
    return KILN_OK;
}

ir_attr *ir_node_add_attr(ir_graph *g, ir_node *n, const char *name, ir_attr_kind kind) {
    if (n->attr_count == n->attr_cap) {
        int cap = n->attr_cap ? n->attr_cap * 2 : 4;
        ir_attr *a = ARENA_ARRAY(g->arena, ir_attr, cap);
        if (!a)
            return NULL;
        if (n->attr_count)
            memcpy(a, n->attrs, sizeof(ir_attr) * (size_t)n->attr_count);
        n->attrs = a;
        n->attr_cap = cap;
    }
    ir_attr *a = &n->attrs[n->attr_count];
    memset(a, 0, sizeof *a);
    if (!(a->name = arena_strdup(g->arena, name)))
        return NULL;
    a->kind = kind;
    n->attr_count++;
    return a;
}

void ir_graph_keep_nodes(ir_graph *g, const bool *keep) {
    int j = 0;
    for (int i = 0; i < g->node_count; i++)
        if (keep[i])
            g->nodes[j++] = g->nodes[i];
    g->node_count = j;
}

void ir_graph_keep_inits(ir_graph *g, const bool *keep) {
    int j = 0;
    for (int i = 0; i < g->init_count; i++)
        if (keep[i])
            g->inits[j++] = g->inits[i];
    g->init_count = j;
}

kiln_status ir_value_make_input(ir_graph *g, ir_value *v, kiln_diag *d) {
    KILN_ASSERT(v->kind == IR_VAL_PARAM || v->kind == IR_VAL_CONST);
    int j = 0;
    for (int i = 0; i < g->init_count; i++)
        if (g->inits[i] != v)
            g->inits[j++] = g->inits[i];
    g->init_count = j;
    v->kind = IR_VAL_INPUT;
    v->init = NULL;
    v->init_file = v->init_key = NULL;
    if (!PUSH(g, inputs, input, v))
        return diag_error(d, v->loc, KILN_ERR_OOM, "out of memory");
    return KILN_OK;
}

kiln_status ir_value_make_const(ir_graph *g, ir_value *v, kiln_tensor *t, kiln_diag *d) {
    KILN_ASSERT(v->kind == IR_VAL_NODE);
    v->kind = IR_VAL_CONST;
    v->producer = NULL;
    v->init = t;
    v->type = *t;
    v->type.data = NULL;
    if (!PUSH(g, inits, init, v))
        return diag_error(d, v->loc, KILN_ERR_OOM, "out of memory");
    return KILN_OK;
}

static void set_batch(ir_value *v, int64_t batch) {
    for (int d = 0; d < v->type.rank; d++)
        if (v->type.dims[d] == IR_DIM_BATCH)
            v->type.dims[d] = batch;
}

void ir_graph_set_batch(ir_graph *g, int64_t batch) {
    for (int i = 0; i < g->input_count; i++)
        set_batch(g->inputs[i], batch);
    for (int i = 0; i < g->node_count; i++)
        for (int j = 0; j < g->nodes[i]->output_count; j++)
            set_batch(g->nodes[i]->outputs[j], batch);
    g->batch_name = NULL;
}

kiln_status ir_graph_new_tensor(ir_graph *g, kiln_dtype dt, int rank, const int64_t *dims,
                                kiln_tensor **out, kiln_diag *d) {
    int64_t count, bytes;
    *out = NULL;
    if (rank < 0 || rank > KILN_MAX_RANK)
        return diag_error(d, LOC_NONE, KILN_ERR_UNSUPPORTED, "rank %d outside 0..%d", rank,
                          KILN_MAX_RANK);
    if (!kiln_shape_count(rank, dims, &count) ||
        !kiln_mul_ok(count, (int64_t)kiln_dtype_size(dt), &bytes) || bytes > kiln_max_memory())
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "tensor of %s too large or malformed (memory cap %lld bytes)",
                          kiln_dtype_name(dt), (long long)kiln_max_memory());
    kiln_tensor *t = ARENA_NEW(g->arena, kiln_tensor);
    void *data = arena_alloc(g->arena, (size_t)bytes ? (size_t)bytes : 1, 64);
    if (!t || !data)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory for %lld bytes",
                          (long long)bytes);
    t->dtype = dt;
    t->rank = rank;
    if (rank) /* a scalar may come with no dims array */
        memcpy(t->dims, dims, sizeof(int64_t) * (size_t)rank);
    t->data = data;
    *out = t;
    return KILN_OK;
}

const ir_attr *ir_node_attr(const ir_node *n, const char *name) {
    for (int i = 0; i < n->attr_count; i++)
        if (!strcmp(n->attrs[i].name, name))
            return &n->attrs[i];
    return NULL;
}

static const ir_attr_spec *spec_or_die(const ir_node *n, const char *name, ir_attr_kind kind) {
    const ir_attr_spec *s = ir_op_attr_spec(n->op, name);
    KILN_ASSERT(s && s->kind == kind);
    return s;
}

int64_t ir_attr_int(const ir_node *n, const char *name) {
    const ir_attr_spec *s = spec_or_die(n, name, IR_ATTR_INT);
    const ir_attr *a = ir_node_attr(n, name);
    return a ? a->i : s->def_i;
}

double ir_attr_float(const ir_node *n, const char *name) {
    const ir_attr_spec *s = spec_or_die(n, name, IR_ATTR_FLOAT);
    const ir_attr *a = ir_node_attr(n, name);
    return a ? a->f : s->def_f;
}

const char *ir_attr_string(const ir_node *n, const char *name) {
    const ir_attr_spec *s = spec_or_die(n, name, IR_ATTR_STRING);
    const ir_attr *a = ir_node_attr(n, name);
    return a ? a->s : s->def_s;
}

kiln_status ir_type_size_check(const kiln_tensor *type, int64_t *count) {
    int64_t bytes;
    *count = 1;
    for (int i = 0; i < type->rank; i++)
        if (type->dims[i] >= 0 && !kiln_mul_ok(*count, type->dims[i], count))
            return KILN_ERR_INVALID;
    /* a count that fits whose bytes do not is simply too large */
    return !kiln_mul_ok(*count, (int64_t)kiln_dtype_size(type->dtype), &bytes) || bytes > kiln_max_memory() ? KILN_ERR_OOM
                                                                                                           : KILN_OK;
}

int64_t ir_type_count(const kiln_tensor *type) {
    if (type->rank < 0)
        return -1;
    int64_t n = 1;
    for (int i = 0; i < type->rank; i++) {
        if (type->dims[i] < 0 || !kiln_mul_ok(n, type->dims[i], &n))
            return -1;
    }
    return n;
}

bool ir_type_known(const kiln_tensor *type) {
    return type->dtype != KILN_DTYPE_INVALID && ir_type_count(type) >= 0;
}

kiln_dtype ir_dtype_lookup(const char *name) {
    for (int dt = 1; dt < KILN_DTYPE_COUNT; dt++)
        if (!strcmp(kiln_dtype_name((kiln_dtype)dt), name))
            return (kiln_dtype)dt;
    return KILN_DTYPE_INVALID;
}

bool ir_dtype_is_float(kiln_dtype dt) {
    return dt == KILN_F32 || dt == KILN_F64 || dt == KILN_F16 || dt == KILN_BF16;
}

bool ir_dtype_is_int(kiln_dtype dt) {
    return dt == KILN_I64 || dt == KILN_I32 || dt == KILN_I8 || dt == KILN_U8 || dt == KILN_I16 ||
           dt == KILN_U16 || dt == KILN_U32 || dt == KILN_U64;
}

/* binary16 <-> binary32, rounding to nearest even; subnormals, infinities and NaN kept. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0x1f)
        bits = sign | 0x7f800000 | man << 13;
    else if (exp != 0)
        bits = sign | (exp + 112) << 23 | man << 13;
    else if (man == 0)
        bits = sign;
    else { /* subnormal: normalize */
        int shift = 0;
        while (!(man & 0x400))
            man <<= 1, shift++;
        bits = sign | (uint32_t)(113 - shift) << 23 | (man & 0x3ff) << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_half(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t exp = (bits >> 23) & 0xff, man = bits & 0x7fffff;
    if (exp == 0xff) /* inf, or NaN kept quiet */
        return sign | 0x7c00 | (man ? 0x200 | (uint16_t)(man >> 13) : 0);
    int e = (int)exp - 127 + 15;
    if (e >= 0x1f)
        return sign | 0x7c00;
    if (e <= 0) { /* a subnormal half, or zero */
        if (e < -10)
            return sign;
        man |= 0x800000;
        uint32_t shift = (uint32_t)(14 - e), half = man >> shift, rest = man & ((1u << shift) - 1);
        uint32_t mid = 1u << (shift - 1);
        if (rest > mid || (rest == mid && (half & 1)))
            half++;
        return sign | (uint16_t)half;
    }
    uint32_t half = (uint32_t)e << 10 | man >> 13, rest = man & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1)))
        half++; /* may carry into the exponent, and to infinity: both right */
    return sign | (uint16_t)half;
}

static float bf16_to_float(uint16_t h) {
    uint32_t bits = (uint32_t)h << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static uint16_t float_to_bf16(float f) {
    uint32_t bits;
    memcpy(&bits, &f, 4);
    if ((bits & 0x7fffffff) > 0x7f800000)
        return (uint16_t)(bits >> 16 | 0x40); /* NaN stays NaN */
    bits += 0x7fff + ((bits >> 16) & 1); /* round to nearest even */
    return (uint16_t)(bits >> 16);
}

double ir_tensor_get(const kiln_tensor *t, int64_t i) {
    switch (t->dtype) {
    case KILN_F32: return ((const float *)t->data)[i];
    case KILN_F64: return ((const double *)t->data)[i];
    case KILN_I64: return (double)((const int64_t *)t->data)[i];
    case KILN_I32: return ((const int32_t *)t->data)[i];
    case KILN_I8: return ((const int8_t *)t->data)[i];
    case KILN_U8: return ((const uint8_t *)t->data)[i];
    case KILN_BOOL: return ((const uint8_t *)t->data)[i] != 0;
    case KILN_F16: return half_to_float(((const uint16_t *)t->data)[i]);
    case KILN_BF16: return bf16_to_float(((const uint16_t *)t->data)[i]);
    case KILN_I16: return ((const int16_t *)t->data)[i];
    case KILN_U16: return ((const uint16_t *)t->data)[i];
    case KILN_U32: return ((const uint32_t *)t->data)[i];
    case KILN_U64: return (double)((const uint64_t *)t->data)[i];
    default: KILN_ASSERT(!"bad dtype"); return 0;
    }
}

int64_t ir_tensor_get_int(const kiln_tensor *t, int64_t i) {
    switch (t->dtype) {
    case KILN_I64: return ((const int64_t *)t->data)[i];
    case KILN_I32: return ((const int32_t *)t->data)[i];
    case KILN_I8: return ((const int8_t *)t->data)[i];
    case KILN_U8: return ((const uint8_t *)t->data)[i];
    case KILN_BOOL: return ((const uint8_t *)t->data)[i] != 0;
    case KILN_I16: return ((const int16_t *)t->data)[i];
    case KILN_U16: return ((const uint16_t *)t->data)[i];
    case KILN_U32: return ((const uint32_t *)t->data)[i];
    case KILN_U64: return (int64_t)((const uint64_t *)t->data)[i]; /* the same bits */
    default: {
        double v = ir_tensor_get(t, i); /* float -> int truncates toward zero, saturating */
        if (isnan(v))
            return 0;
        return v >= 9.2233720368547758e18 ? INT64_MAX : v <= -9.2233720368547758e18 ? INT64_MIN
                                                                                     : (int64_t)v;
    }
    }
}

/* Integer stores wrap modulo 2^bits, as a C cast to the narrow unsigned type would. */
void ir_tensor_set_int(kiln_tensor *t, int64_t i, int64_t v) {
    switch (t->dtype) {
    case KILN_F32: ((float *)t->data)[i] = (float)v; break;
    case KILN_F64: ((double *)t->data)[i] = (double)v; break;
    case KILN_I64: ((int64_t *)t->data)[i] = v; break;
    case KILN_I32: ((int32_t *)t->data)[i] = (int32_t)(uint32_t)v; break;
    case KILN_I8: ((int8_t *)t->data)[i] = (int8_t)(uint8_t)v; break;
    case KILN_U8: ((uint8_t *)t->data)[i] = (uint8_t)v; break;
    case KILN_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    case KILN_I16: ((int16_t *)t->data)[i] = (int16_t)(uint16_t)v; break;
    case KILN_U16: ((uint16_t *)t->data)[i] = (uint16_t)v; break;
    case KILN_U32: ((uint32_t *)t->data)[i] = (uint32_t)v; break;
    case KILN_U64: ((uint64_t *)t->data)[i] = (uint64_t)v; break;
    case KILN_F16: case KILN_BF16: ir_tensor_set(t, i, (double)v); break;
    default: KILN_ASSERT(!"bad dtype");
    }
}

void ir_tensor_set(kiln_tensor *t, int64_t i, double v) {
    switch (t->dtype) {
    case KILN_F32: ((float *)t->data)[i] = (float)v; break;
    case KILN_F64: ((double *)t->data)[i] = v; break;
    case KILN_BOOL: ((uint8_t *)t->data)[i] = v != 0; break;
    case KILN_F16: ((uint16_t *)t->data)[i] = float_to_half((float)v); break;
    case KILN_BF16: ((uint16_t *)t->data)[i] = float_to_bf16((float)v); break;
    case KILN_U64:
        if (v >= 9.2233720368547758e18) { /* past INT64_MAX: convert as unsigned */
            ((uint64_t *)t->data)[i] = v >= 1.8446744073709552e19 ? UINT64_MAX : (uint64_t)v;
            break;
        }
        /* fall through */
    default: {
        int64_t iv = isnan(v) ? 0 : v >= 9.2233720368547758e18 ? INT64_MAX
                                  : v <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)v;
        ir_tensor_set_int(t, i, iv);
    }
    }
}
