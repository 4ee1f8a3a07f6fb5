/*
 * onnx_import.c — ModelProto -> graph IR.
 *
 * Order: opset imports; initializers (trainable params; a graph input that is also an
 * initializer is a weight with a default); graph inputs (tensor types; the first symbolic
 * dim_param becomes the batch dimension, any other is unknown); nodes in file order, each
 * adapted from its opset's form (onnx_adapt.c) and its remaining attributes converted by
 * the op's schema; graph outputs; value_info types as declarations that shape inference
 * checks. ONNX requires nodes in topological order; an input defined later is an error.
 */
#define _DEFAULT_SOURCE /* MAP_POPULATE */
#include "frontend/model_path.h"
#include "frontend/onnx_internal.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

static kiln_status node_error(onnx_importer *im, const onnx_node *n, kiln_status st, const char *fmt,
                              ...) KILN_PRINTF(4, 5);

#include <stdarg.h>
static kiln_status node_error(onnx_importer *im, const onnx_node *n, kiln_status st, const char *fmt,
                              ...) {
    char body[KILN_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    return diag_error(im->d, n->loc, st, "%s", body);
}

static kiln_status file_error(onnx_importer *im, kiln_status st, const char *fmt, ...) KILN_PRINTF(3, 4);
static kiln_status file_error(onnx_importer *im, kiln_status st, const char *fmt, ...) {
    char body[KILN_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    return diag_error(im->d, (kiln_loc){.file = im->file}, st, "%s", body);
}

/* The type of a graph input, output or value_info entry. */
static kiln_status value_type(onnx_importer *im, const Onnx__ValueInfoProto *vi, bool declare_batch,
                              kiln_tensor *type) {
    const Onnx__TypeProto *tp = vi->type;
    *type = (kiln_tensor){.rank = -1};
    if (!tp || tp->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET)
        return file_error(im, KILN_ERR_INVALID, "value '%s' has no type", vi->name);
    if (tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE)
        return file_error(im, KILN_ERR_UNSUPPORTED, "value '%s': only tensor types are supported", vi->name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    int32_t et = tt->has_elem_type ? tt->elem_type : 0;
    if ((type->dtype = onnx_dtype(et)) == KILN_DTYPE_INVALID)
        return file_error(im, KILN_ERR_UNSUPPORTED, "value '%s': dtype %s is not supported", vi->name, onnx_dtype_name(et));
    if (!tt->shape)
        return KILN_OK;
    if (tt->shape->n_dim > KILN_MAX_RANK)
        return file_error(im, KILN_ERR_UNSUPPORTED, "value '%s': rank %zu above %d", vi->name, tt->shape->n_dim, KILN_MAX_RANK);
    type->rank = (int)tt->shape->n_dim;
    for (int i = 0; i < type->rank; i++) {
        const Onnx__TensorShapeProto__Dimension *dim = tt->shape->dim[i];
        if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
            if (dim->dim_value < 0)
                return file_error(im, KILN_ERR_INVALID, "value '%s': dimension %d is negative (%lld)", vi->name, i, (long long)dim->dim_value);
            type->dims[i] = dim->dim_value;
        } else if (dim->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM && declare_batch &&
                   dim->dim_param && *dim->dim_param &&
                   (!im->g->batch_name || !strcmp(im->g->batch_name, dim->dim_param))) {
            if (!im->g->batch_name)
                im->g->batch_name = arena_strdup(im->g->arena, dim->dim_param);
            type->dims[i] = IR_DIM_BATCH;
        } else {
            type->dims[i] = IR_DIM_UNKNOWN;
        }
    }
    int64_t count;
    kiln_status size = ir_type_size_check(type, &count);
    if (size == KILN_ERR_INVALID)
        return file_error(im, KILN_ERR_INVALID, "value '%s': the shape's element count overflows", vi->name);
    if (size)
        return file_error(im, KILN_ERR_OOM, "value '%s': %lld elements of %s are over the memory cap of %lld bytes",
                          vi->name, (long long)count, kiln_dtype_name(type->dtype), (long long)kiln_max_memory());
    return KILN_OK;
}

static kiln_status import_initializers(onnx_importer *im, const Onnx__GraphProto *gp) {
    for (size_t i = 0; i < gp->n_initializer; i++) {
        const Onnx__TensorProto *tp = gp->initializer[i];
        if (!tp->name || !*tp->name)
            return file_error(im, KILN_ERR_INVALID, "initializer %zu has no name", i);
        ir_value *v;
        kiln_status st = ir_graph_new_value(im->g, tp->name, IR_VAL_PARAM, (kiln_loc){.file = im->file}, &v, im->d);
        if (st)
            return st;
        char what[512];
        snprintf(what, sizeof what, "initializer '%s'", tp->name);
        if ((st = onnx_tensor_convert(tp, im->dir, im->g, im->file, what, &v->init, im->d)))
            return st;
        v->type = *v->init;
        v->type.data = NULL;
    }
    return KILN_OK;
}

static kiln_status import_inputs(onnx_importer *im, const Onnx__GraphProto *gp) {
    for (size_t i = 0; i < gp->n_input; i++) {
        const Onnx__ValueInfoProto *vi = gp->input[i];
        if (!vi->name || !*vi->name)
            return file_error(im, KILN_ERR_INVALID, "graph input %zu has no name", i);
        const ir_value *known = ir_graph_find(im->g, vi->name);
        if (known && known->kind == IR_VAL_INPUT)
            return file_error(im, KILN_ERR_INVALID, "graph input '%s' is listed twice", vi->name);
        if (known)
            continue; /* an initializer: a weight with a default value */
        ir_value *v;
        kiln_status st = ir_graph_new_value(im->g, vi->name, IR_VAL_INPUT, (kiln_loc){.file = im->file}, &v, im->d);
        if (!st)
            st = value_type(im, vi, true, &v->type);
        if (!st && v->type.rank < 0)
            st = file_error(im, KILN_ERR_UNSUPPORTED, "graph input '%s' has no shape", vi->name);
        if (st)
            return st;
    }
    return KILN_OK;
}

static kiln_status convert_attr(onnx_importer *im, const onnx_node *n, ir_node *node,
                                const Onnx__AttributeProto *a) {
    if (!a->name || !*a->name) /* optional in proto2: protobuf-c leaves it NULL */
        return node_error(im, n, KILN_ERR_INVALID, "an attribute has no name");
    const ir_attr_spec *spec = ir_op_attr_spec(node->op, a->name);
    if (!spec)
        return node_error(im, n, KILN_ERR_UNSUPPORTED, "attribute '%s' is not supported", a->name);
    static const int onnx_kind[] = {
        [IR_ATTR_INT] = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT,
        [IR_ATTR_FLOAT] = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT,
        [IR_ATTR_STRING] = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING,
        [IR_ATTR_INTS] = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS,
        [IR_ATTR_FLOATS] = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS,
        [IR_ATTR_STRINGS] = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS,
        [IR_ATTR_TENSOR] = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR,
    };
    static const char *const onnx_kind_names[] = {"undefined", "float", "int", "string", "tensor", "graph",
                                                  "floats", "ints", "strings", "tensors", "graphs",
                                                  "sparse tensor", "sparse tensors", "type", "types"};
    int got = a->has_type ? (int)a->type : 0;
    if (got != onnx_kind[spec->kind])
        return node_error(im, n, KILN_ERR_INVALID, "attribute '%s': expected %s, got %s", a->name,
                          ir_attr_kind_name(spec->kind),
                          got >= 0 && got < ARRAY_LEN(onnx_kind_names) ? onnx_kind_names[got] : "an unknown type");
    ir_attr *at = ir_node_add_attr(im->g, node, a->name, spec->kind);
    if (!at)
        return node_error(im, n, KILN_ERR_OOM, "out of memory");
    switch (spec->kind) {
    case IR_ATTR_INT: at->i = a->i; break;
    case IR_ATTR_FLOAT: at->f = a->f; break;
    case IR_ATTR_STRING:
        if (a->s.len && memchr(a->s.data, 0, a->s.len))
            return node_error(im, n, KILN_ERR_INVALID, "attribute '%s': string holds a NUL byte", a->name);
        if (!(at->s = arena_strndup(im->g->arena, a->s.len ? (const char *)a->s.data : "", a->s.len)))
            return node_error(im, n, KILN_ERR_OOM, "out of memory");
        break;
    case IR_ATTR_INTS:
        at->count = (int)a->n_ints;
        if (!(at->ints = ARENA_ARRAY(im->g->arena, int64_t, a->n_ints)))
            return node_error(im, n, KILN_ERR_OOM, "out of memory");
        if (a->n_ints)
            memcpy(at->ints, a->ints, sizeof(int64_t) * a->n_ints);
        break;
    case IR_ATTR_FLOATS:
        at->count = (int)a->n_floats;
        if (!(at->floats = ARENA_ARRAY(im->g->arena, double, a->n_floats)))
            return node_error(im, n, KILN_ERR_OOM, "out of memory");
        for (size_t i = 0; i < a->n_floats; i++)
            at->floats[i] = a->floats[i];
        break;
    case IR_ATTR_STRINGS:
        at->count = (int)a->n_strings;
        if (!(at->strings = ARENA_ARRAY(im->g->arena, const char *, a->n_strings)))
            return node_error(im, n, KILN_ERR_OOM, "out of memory");
        for (size_t i = 0; i < a->n_strings; i++)
            if (!(at->strings[i] = arena_strndup(im->g->arena, a->strings[i].len ? (const char *)a->strings[i].data : "",
                                                 a->strings[i].len)))
                return node_error(im, n, KILN_ERR_OOM, "out of memory");
        break;
    case IR_ATTR_TENSOR: {
        char what[512];
        snprintf(what, sizeof what, "node '%s' (%s): attribute '%s'", n->loc.node, n->loc.op, a->name);
        if (!a->t)
            return node_error(im, n, KILN_ERR_INVALID, "attribute '%s' holds no tensor", a->name);
        return onnx_tensor_convert(a->t, im->dir, im->g, im->file, what, &at->t, im->d);
    }
    }
    return KILN_OK;
}

static kiln_status import_node(onnx_importer *im, const Onnx__NodeProto *np, int index) {
    onnx_node n = {.proto = np};
    const char *name = np->name && *np->name ? np->name : np->n_output && *np->output[0] ? np->output[0] : "";
    char fallback[32];
    if (!*name) {
        snprintf(fallback, sizeof fallback, "node_%d", index);
        name = fallback;
    }
    n.loc = (kiln_loc){.file = im->file, .node = arena_strdup(im->g->arena, name)};
    if (!np->op_type || !*np->op_type)
        return node_error(im, &n, KILN_ERR_INVALID, "node has no op_type");
    n.loc.op = arena_strdup(im->g->arena, np->op_type); /* the proto is freed after import */
    bool training_domain = np->domain && !strcmp(np->domain, "ai.onnx.preview.training");
    if (np->domain && *np->domain && strcmp(np->domain, "ai.onnx") && !training_domain)
        return node_error(im, &n, KILN_ERR_UNSUPPORTED, "op '%s' of domain '%s' is not supported", np->op_type, np->domain);
    n.op = ir_op_lookup(np->op_type);
    if (n.op != IR_OP_COUNT && training_domain != !!(ir_op_table[n.op].flags & OPF_TRAINING_DOMAIN))
        return node_error(im, &n, KILN_ERR_UNSUPPORTED, "op '%s' of domain '%s' is not supported", np->op_type,
                          np->domain && *np->domain ? np->domain : "ai.onnx");
    if (np->n_input > IR_VARIADIC || np->n_attribute > ARRAY_LEN(n.attrs) || np->n_output > IR_VARIADIC)
        return node_error(im, &n, KILN_ERR_UNSUPPORTED, "too many inputs, outputs or attributes");
    for (size_t i = 0; i < np->n_input; i++) {
        const char *in = np->input[i];
        if (!*in) {
            n.inputs[n.input_count++] = NULL;
            continue;
        }
        if (!(n.inputs[n.input_count++] = ir_graph_find(im->g, in)))
            return node_error(im, &n, KILN_ERR_INVALID, "input '%s' is not defined before this node", in);
    }
    for (size_t i = 0; i < np->n_attribute; i++)
        n.attrs[n.attr_count++] = np->attribute[i];
    kiln_status st = onnx_adapt(im, &n);
    if (st)
        return st;
    if (n.op == IR_OP_COUNT || (ir_op_table[n.op].flags & OPF_KILN_ONLY))
        return node_error(im, &n, KILN_ERR_UNSUPPORTED, "op '%s' is not supported", np->op_type);
    while (n.input_count && !n.inputs[n.input_count - 1])
        n.input_count--; /* trailing omitted optional inputs */
    int out_count = (int)np->n_output;
    while (out_count && !*np->output[out_count - 1])
        out_count--;
    ir_value *outs[IR_VARIADIC];
    for (int i = 0; i < out_count; i++) {
        const char *oname = *np->output[i] ? np->output[i] : ir_graph_fresh_name(im->g, "unused");
        kiln_diag one = {0};
        if ((st = ir_graph_new_value(im->g, oname, IR_VAL_NODE, n.loc, &outs[i], &one)))
            return node_error(im, &n, st, "output '%s' is already defined", oname);
    }
    const ir_op_info *info = &ir_op_table[n.op];
    if (n.input_count < info->min_inputs || n.input_count > info->max_inputs)
        return node_error(im, &n, KILN_ERR_INVALID, "expects %d..%d inputs, got %d", info->min_inputs, info->max_inputs, n.input_count);
    if (out_count < info->min_outputs || out_count > info->max_outputs)
        return node_error(im, &n, KILN_ERR_INVALID, "expects %d..%d outputs, got %d", info->min_outputs, info->max_outputs, out_count);
    ir_node *node;
    if ((st = ir_graph_add_node(im->g, n.op, n.loc.node, n.inputs, n.input_count, outs, out_count, n.loc, &node, im->d)))
        return st;
    for (int i = 0; !st && i < n.attr_count; i++)
        st = convert_attr(im, &n, node, n.attrs[i]);
    for (int i = 0; !st && i < n.extra_count; i++) {
        ir_attr *at = ir_node_add_attr(im->g, node, n.extra[i].name, n.extra[i].kind);
        if (!at)
            return node_error(im, &n, KILN_ERR_OOM, "out of memory");
        const char *attr_name = at->name;
        *at = n.extra[i];
        at->name = attr_name;
    }
    return st;
}

/* value_info and graph output types become declarations that shape inference checks. */
static kiln_status declare_types(onnx_importer *im, Onnx__ValueInfoProto **vis, size_t count) {
    for (size_t i = 0; i < count; i++) {
        ir_value *v = vis[i]->name ? ir_graph_find(im->g, vis[i]->name) : NULL;
        if (!v || v->kind != IR_VAL_NODE || !vis[i]->type)
            continue;
        kiln_tensor type;
        kiln_diag ignored = {0};
        if (value_type(im, vis[i], false, &type) == KILN_OK) /* types kiln lacks: left to inference */
            v->type = type;
        (void)ignored;
    }
    return KILN_OK;
}

static kiln_status import_graph(onnx_importer *im, const Onnx__ModelProto *m) {
    const Onnx__GraphProto *gp = m->graph;
    kiln_status st;
    if (gp->n_sparse_initializer)
        return file_error(im, KILN_ERR_UNSUPPORTED, "sparse initializers are not supported ('%s')",
                          gp->sparse_initializer[0]->values && gp->sparse_initializer[0]->values->name
                              ? gp->sparse_initializer[0]->values->name : "");
    if ((st = import_initializers(im, gp)) || (st = import_inputs(im, gp)))
        return st;
    for (size_t i = 0; i < gp->n_node; i++)
        if ((st = import_node(im, gp->node[i], (int)i)))
            return st;
    for (size_t i = 0; i < gp->n_output; i++) {
        const char *name = gp->output[i]->name;
        ir_value *v = name ? ir_graph_find(im->g, name) : NULL;
        if (!v)
            return file_error(im, KILN_ERR_INVALID, "graph output '%s' is not produced by any node", name ? name : "");
        if ((st = ir_graph_add_output(im->g, v, im->d)))
            return st;
    }
    declare_types(im, gp->value_info, gp->n_value_info);
    return declare_types(im, gp->output, gp->n_output);
}

kiln_status onnx_import_buffer(const void *data, size_t size, const char *path, ir_graph **out,
                               kiln_diag *d) {
    *out = NULL;
    kiln_loc loc = {.file = path};
    char why[160];
    bool oom;
    Onnx__ModelProto *m = (Onnx__ModelProto *)pb_unpack(&onnx__model_proto__descriptor, data, size, why, sizeof why, &oom);
    if (!m)
        return oom ? diag_error(d, loc, KILN_ERR_OOM, "out of memory")
                   : diag_error(d, loc, KILN_ERR_INVALID, "not a valid ONNX model (%s)", why);
    char dir[4096];
    model_path_dir(path, dir, sizeof dir);
    onnx_importer im = {.file = path, .dir = dir, .opset = 1, .d = d}; /* none imported: opset 1 */
    kiln_status st = KILN_OK;
    for (size_t i = 0; i < m->n_opset_import; i++) {
        const Onnx__OperatorSetIdProto *o = m->opset_import[i];
        if (!o->domain || !*o->domain || !strcmp(o->domain, "ai.onnx"))
            im.opset = o->has_version ? o->version : 1;
    }
    if (!m->graph)
        st = diag_error(d, loc, KILN_ERR_INVALID, "the model has no graph");
    else if (!m->n_opset_import)
        st = diag_error(d, loc, KILN_ERR_INVALID, "the model imports no opset (opset_import is empty)");
    else if (im.opset < 1 || im.opset > 21)
        st = diag_error(d, loc, KILN_ERR_UNSUPPORTED, "opset %lld is outside the supported 1..21", (long long)im.opset);
    if (!st)
        st = ir_graph_create(m->graph->name && *m->graph->name ? m->graph->name : "main", path, &im.g, d);
    if (!st)
        st = import_graph(&im, m);
    pb_free(&m->base);
    if (st) {
        ir_graph_destroy(im.g);
        return st;
    }
    *out = im.g;
    return KILN_OK;
}

/* The file's pages mapped read-only, all faulted in by one call (MAP_POPULATE): no copy
 * into a buffer of fresh pages, each faulted and zeroed (ViT-B's 346 MB: `kiln check`
 * 3.5-4.3 -> 1.9 s by this alone). NULL where it cannot be mapped (a pipe, an empty file, a
 * file past the 2 GiB cap): the caller reads it instead, and read_file says what is wrong. */
static const unsigned char *map_file(const char *path, size_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat sb;
    void *p = MAP_FAILED;
    if (fd >= 0 && fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode) && sb.st_size > 0 && (uint64_t)sb.st_size <= (uint64_t)1 << 31) {
        *size = (size_t)sb.st_size;
        p = mmap(NULL, *size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
    }
    if (fd >= 0)
        close(fd);
    return p == MAP_FAILED ? NULL : p;
}

kiln_status onnx_import_file(const char *path, ir_graph **out, kiln_diag *d) {
    unsigned char *buf = NULL;
    size_t size;
    *out = NULL;
    const unsigned char *mapped = map_file(path, &size);
    kiln_status st = mapped ? KILN_OK : kiln_rt_read_file(path, (size_t)1 << 31, &buf, &size, d);
    if (st)
        return st;
    st = onnx_import_buffer(mapped ? mapped : buf, size, path, out, d);
    if (mapped)
        munmap((void *)mapped, size);
    free(buf);
    return st;
}
