/*
 * onnx_export.c — a graph written as an ONNX model (opset 17), so that a model trained by
 * kiln runs in ONNX Runtime, PyTorch's importer or kiln itself.
 *
 * kiln's IR keeps most ops in their ONNX opset-17 form; those are written as they are
 * (attributes one to one, Cast's dtype name back to its TensorProto code). Ops whose kiln
 * form differs (attributes that later opsets made inputs, kiln-only ops) are refused by
 * name rather than written wrongly. Initializers are written with raw_data; the symbolic
 * batch dimension keeps its name. Every protobuf struct lives in one arena, freed at once.
 */
#include "frontend/onnx_internal.h"
#include "ir/graph.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Ops written unchanged: the kiln form is the opset-17 form. */
static bool exportable(const ir_node *n) {
    const ir_op_info *info = &ir_op_table[n->op];
    if (info->flags & (OPF_KILN_ONLY | OPF_TRAINING_DOMAIN))
        return false;
    switch (n->op) {
    case IR_OP_MATMUL: case IR_OP_GEMM: case IR_OP_CONV: case IR_OP_CONV_TRANSPOSE: case IR_OP_MAX_POOL:
    case IR_OP_AVERAGE_POOL: case IR_OP_GLOBAL_AVERAGE_POOL: case IR_OP_GLOBAL_MAX_POOL: case IR_OP_BATCH_NORM:
    case IR_OP_LAYER_NORM: case IR_OP_FLATTEN: case IR_OP_RESHAPE: case IR_OP_TRANSPOSE: case IR_OP_SOFTMAX:
    case IR_OP_LOG_SOFTMAX: case IR_OP_CONCAT: case IR_OP_DROPOUT:
        return true;
    default:
        return info->kind == IR_KIND_ELTWISE && n->op != IR_OP_CLIP;
    }
}

static int32_t onnx_code(kiln_dtype dt) {
    for (int32_t t = 0; t < 17; t++)
        if (onnx_dtype(t) == dt && dt != KILN_DTYPE_INVALID)
            return t;
    return 0;
}

#define NEW(a, T) ((T *)arena_alloc((a), sizeof(T), _Alignof(T)))
#define NEW_ARRAY(a, T, n) ((T *)arena_array((a), sizeof(T), (int64_t)(n), _Alignof(T)))

static Onnx__ValueInfoProto *value_info(arena *a, const ir_graph *g, const ir_value *v) {
    Onnx__ValueInfoProto *vi = NEW(a, Onnx__ValueInfoProto);
    Onnx__TypeProto *tp = NEW(a, Onnx__TypeProto);
    Onnx__TypeProto__Tensor *tt = NEW(a, Onnx__TypeProto__Tensor);
    Onnx__TensorShapeProto *sp = NEW(a, Onnx__TensorShapeProto);
    Onnx__TensorShapeProto__Dimension **dims = NEW_ARRAY(a, Onnx__TensorShapeProto__Dimension *, v->type.rank + 1);
    if (!vi || !tp || !tt || !sp || !dims)
        return NULL;
    *vi = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
    *tp = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
    *tt = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
    *sp = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
    for (int i = 0; i < v->type.rank; i++) {
        Onnx__TensorShapeProto__Dimension *d = dims[i] = NEW(a, Onnx__TensorShapeProto__Dimension);
        if (!d)
            return NULL;
        *d = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
        if (v->type.dims[i] >= 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = v->type.dims[i];
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = (char *)(g->batch_name && v->type.dims[i] == IR_DIM_BATCH ? g->batch_name : "unk");
        }
    }
    sp->n_dim = (size_t)v->type.rank, sp->dim = dims;
    tt->has_elem_type = true, tt->elem_type = onnx_code(v->type.dtype), tt->shape = sp;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE, tp->tensor_type = tt;
    vi->name = (char *)v->name, vi->type = tp;
    return vi;
}

static Onnx__TensorProto *tensor(arena *a, const char *name, const kiln_tensor *t) {
    Onnx__TensorProto *tp = NEW(a, Onnx__TensorProto);
    int64_t *dims = NEW_ARRAY(a, int64_t, t->rank + 1);
    if (!tp || !dims)
        return NULL;
    *tp = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
    memcpy(dims, t->dims, sizeof(int64_t) * (size_t)t->rank);
    tp->name = (char *)name, tp->n_dims = (size_t)t->rank, tp->dims = dims;
    tp->has_data_type = true, tp->data_type = onnx_code(t->dtype);
    tp->has_raw_data = true, tp->raw_data.len = kiln_tensor_bytes(t), tp->raw_data.data = t->data;
    return tp;
}

static Onnx__AttributeProto *attribute(arena *a, const ir_node *n, const ir_attr *at) {
    Onnx__AttributeProto *p = NEW(a, Onnx__AttributeProto);
    if (!p)
        return NULL;
    *p = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
    p->name = (char *)at->name, p->has_type = true;
    switch (at->kind) {
    case IR_ATTR_INT: p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, p->has_i = true, p->i = at->i; break;
    case IR_ATTR_FLOAT: p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT, p->has_f = true, p->f = (float)at->f; break;
    case IR_ATTR_STRING:
        if (n->op == IR_OP_CAST && !strcmp(at->name, "to")) { /* kiln names the dtype; ONNX codes it */
            p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT, p->has_i = true;
            p->i = onnx_code(ir_dtype_lookup(at->s));
        } else {
            p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING, p->has_s = true;
            p->s.len = strlen(at->s), p->s.data = (uint8_t *)at->s;
        }
        break;
    case IR_ATTR_INTS:
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS, p->n_ints = (size_t)at->count, p->ints = at->ints;
        break;
    case IR_ATTR_FLOATS: {
        float *f = NEW_ARRAY(a, float, at->count + 1);
        if (!f)
            return NULL;
        for (int i = 0; i < at->count; i++)
            f[i] = (float)at->floats[i];
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS, p->n_floats = (size_t)at->count, p->floats = f;
        break;
    }
    case IR_ATTR_STRINGS: {
        ProtobufCBinaryData *s = NEW_ARRAY(a, ProtobufCBinaryData, at->count + 1);
        if (!s)
            return NULL;
        for (int i = 0; i < at->count; i++)
            s[i].len = strlen(at->strings[i]), s[i].data = (uint8_t *)at->strings[i];
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS, p->n_strings = (size_t)at->count, p->strings = s;
        break;
    }
    case IR_ATTR_TENSOR:
        p->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSOR;
        if (!(p->t = tensor(a, "", at->t)))
            return NULL;
        break;
    }
    return p;
}

kiln_status onnx_export_file(const ir_graph *g, const char *path, kiln_diag *d) {
    kiln_loc loc = {.file = path};
    for (int i = 0; i < g->node_count; i++)
        if (!exportable(g->nodes[i]))
            return diag_error(d, g->nodes[i]->loc, KILN_ERR_UNSUPPORTED, "export to ONNX: op %s is not exported yet",
                              ir_op_table[g->nodes[i]->op].name);
    arena *a = arena_create(0);
    if (!a)
        return diag_error(d, loc, KILN_ERR_OOM, "out of memory");
    kiln_status st = KILN_OK;
    Onnx__ModelProto *m = NEW(a, Onnx__ModelProto);
    Onnx__GraphProto *gp = NEW(a, Onnx__GraphProto);
    Onnx__OperatorSetIdProto *opset = NEW(a, Onnx__OperatorSetIdProto), **opsets = NEW_ARRAY(a, Onnx__OperatorSetIdProto *, 1);
    Onnx__NodeProto **nodes = NEW_ARRAY(a, Onnx__NodeProto *, g->node_count + 1);
    Onnx__TensorProto **inits = NEW_ARRAY(a, Onnx__TensorProto *, g->init_count + 1);
    Onnx__ValueInfoProto **ins = NEW_ARRAY(a, Onnx__ValueInfoProto *, g->input_count + 1);
    Onnx__ValueInfoProto **outs = NEW_ARRAY(a, Onnx__ValueInfoProto *, g->output_count + 1);
    bool ok = m && gp && opset && opsets && nodes && inits && ins && outs;
    if (ok) {
        *m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
        *gp = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
        *opset = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
        opset->domain = "", opset->has_version = true, opset->version = 17;
        opsets[0] = opset;
        m->has_ir_version = true, m->ir_version = 8, m->producer_name = "kiln", m->n_opset_import = 1;
        m->opset_import = opsets, m->graph = gp;
        gp->name = (char *)g->name;
    }
    for (int i = 0; ok && i < g->init_count; i++)
        ok = (inits[i] = tensor(a, g->inits[i]->name, g->inits[i]->init)) != NULL;
    for (int i = 0; ok && i < g->input_count; i++)
        ok = (ins[i] = value_info(a, g, g->inputs[i])) != NULL;
    for (int i = 0; ok && i < g->output_count; i++)
        ok = (outs[i] = value_info(a, g, g->outputs[i])) != NULL;
    for (int i = 0; ok && i < g->node_count; i++) {
        const ir_node *n = g->nodes[i];
        Onnx__NodeProto *np = nodes[i] = NEW(a, Onnx__NodeProto);
        char **in = NEW_ARRAY(a, char *, n->input_count + 1), **out = NEW_ARRAY(a, char *, n->output_count + 1);
        Onnx__AttributeProto **attrs = NEW_ARRAY(a, Onnx__AttributeProto *, n->attr_count + 1);
        if (!(ok = np && in && out && attrs))
            break;
        *np = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
        for (int k = 0; k < n->input_count; k++)
            in[k] = (char *)(n->inputs[k] ? n->inputs[k]->name : "");
        for (int k = 0; k < n->output_count; k++)
            out[k] = (char *)n->outputs[k]->name;
        for (int k = 0; ok && k < n->attr_count; k++)
            ok = (attrs[k] = attribute(a, n, &n->attrs[k])) != NULL;
        np->name = (char *)n->name, np->op_type = (char *)ir_op_table[n->op].name, np->domain = "";
        np->n_input = (size_t)n->input_count, np->input = in;
        np->n_output = (size_t)n->output_count, np->output = out;
        np->n_attribute = (size_t)n->attr_count, np->attribute = attrs;
    }
    if (ok) {
        gp->n_node = (size_t)g->node_count, gp->node = nodes;
        gp->n_initializer = (size_t)g->init_count, gp->initializer = inits;
        gp->n_input = (size_t)g->input_count, gp->input = ins;
        gp->n_output = (size_t)g->output_count, gp->output = outs;
    }
    size_t size = ok ? onnx__model_proto__get_packed_size(m) : 0;
    uint8_t *buf = ok ? malloc(size + 1) : NULL;
    if (!ok || !buf) {
        st = diag_error(d, loc, KILN_ERR_OOM, "out of memory");
    } else {
        onnx__model_proto__pack(m, buf);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(buf, 1, size, f) != size)
            st = diag_error(d, loc, KILN_ERR_IO, "cannot write");
        if (f && fclose(f) != 0 && !st)
            st = diag_error(d, loc, KILN_ERR_IO, "cannot write");
    }
    free(buf);
    arena_destroy(a);
    return st;
}
