/*
 * onnx_adapt.c — from each opset's form of an ONNX op to kiln's.
 *
 * kiln's ops follow the newest ONNX forms (axes, pads, starts/ends as inputs where ONNX
 * moved them there; reductions also accept the `axes` attribute). Older forms are
 * rewritten here: attributes that later opsets turned into inputs become constants, the
 * 2-D coercion of Softmax/LogSoftmax before opset 13 becomes Flatten -> op -> Reshape, and
 * the ONNX type codes of Cast and EyeLike become kiln dtype names. Each adapter names the opsets it
 * handles; everything else passes through unchanged.
 */
#include "frontend/onnx_internal.h"

#include <math.h>
#include <string.h>

const Onnx__AttributeProto *onnx_take_attr(onnx_node *n, const char *name) {
    for (int i = 0; i < n->attr_count; i++)
        if (n->attrs[i]->name && !strcmp(n->attrs[i]->name, name)) {
            const Onnx__AttributeProto *a = n->attrs[i];
            n->attrs[i] = n->attrs[--n->attr_count];
            return a;
        }
    return NULL;
}

/* A fresh value name derived from the node's name. */
static const char *derived_name(onnx_importer *im, const onnx_node *n, const char *suffix) {
    char base[512];
    snprintf(base, sizeof base, "%s/%s", n->loc.node, suffix);
    return ir_graph_fresh_name(im->g, base);
}

kiln_status onnx_const_ints(onnx_importer *im, const onnx_node *n, const char *suffix,
                            const int64_t *vals, int count, bool scalar, ir_value **out) {
    ir_value *v;
    const char *name = derived_name(im, n, suffix);
    kiln_status st = name ? ir_graph_new_value(im->g, name, IR_VAL_CONST, n->loc, &v, im->d)
                          : diag_error(im->d, n->loc, KILN_ERR_OOM, "out of memory");
    int64_t dims[1] = {count};
    if (!st)
        st = ir_graph_new_tensor(im->g, KILN_I64, scalar ? 0 : 1, dims, &v->init, im->d);
    if (st)
        return st;
    for (int i = 0; i < count; i++)
        ir_tensor_set_int(v->init, i, vals[i]);
    v->type = *v->init;
    v->type.data = NULL;
    *out = v;
    return KILN_OK;
}

kiln_status onnx_const_float(onnx_importer *im, const onnx_node *n, const char *suffix, double val,
                             ir_value **out) {
    ir_value *v;
    const char *name = derived_name(im, n, suffix);
    kiln_status st = name ? ir_graph_new_value(im->g, name, IR_VAL_CONST, n->loc, &v, im->d)
                          : diag_error(im->d, n->loc, KILN_ERR_OOM, "out of memory");
    if (!st)
        st = ir_graph_new_tensor(im->g, KILN_F32, 0, NULL, &v->init, im->d);
    if (st)
        return st;
    ir_tensor_set(v->init, 0, val);
    v->type = *v->init;
    v->type.data = NULL;
    *out = v;
    return KILN_OK;
}

kiln_status onnx_emit(onnx_importer *im, const onnx_node *n, ir_op op, const char *suffix,
                      ir_value **inputs, int input_count, int output_count, ir_node **out) {
    ir_value *outs[8];
    for (int i = 0; i < output_count; i++) {
        const char *name = derived_name(im, n, suffix);
        kiln_status st = name ? ir_graph_new_value(im->g, name, IR_VAL_NODE, n->loc, &outs[i], im->d)
                              : diag_error(im->d, n->loc, KILN_ERR_OOM, "out of memory");
        if (st)
            return st;
    }
    return ir_graph_add_node(im->g, op, outs[0]->name, inputs, input_count, outs, output_count,
                             n->loc, out, im->d);
}

ir_attr *onnx_emit_attr(onnx_importer *im, ir_node *node, const char *name, ir_attr_kind kind) {
    return ir_node_add_attr(im->g, node, name, kind);
}

static kiln_status attr_error(onnx_importer *im, const onnx_node *n, const char *attr, const char *want) {
    return diag_error(im->d, n->loc, KILN_ERR_INVALID, "attribute '%s': expected %s", attr, want);
}

static bool is_ints(const Onnx__AttributeProto *a) {
    return a->has_type && a->type == ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS;
}

/* Moves the INTS attribute `attr` into input slot `slot` as an i64 constant. */
static kiln_status attr_to_input(onnx_importer *im, onnx_node *n, const char *attr, int slot) {
    const Onnx__AttributeProto *a = onnx_take_attr(n, attr);
    if (!a)
        return KILN_OK;
    if (!is_ints(a))
        return attr_error(im, n, attr, "a list of integers");
    if (a->n_ints > IR_VARIADIC)
        return attr_error(im, n, attr, "a shorter list");
    while (n->input_count <= slot)
        n->inputs[n->input_count++] = NULL;
    return onnx_const_ints(im, n, attr, a->ints, (int)a->n_ints, false, &n->inputs[slot]);
}

/* ONNX names dtypes by TensorProto code; kiln by name. Moves attribute `attr` (an
 * integer code) into a kiln string attribute of the same name. */
static kiln_status dtype_code_attr(onnx_importer *im, onnx_node *n, const char *attr, bool required) {
    const Onnx__AttributeProto *a = onnx_take_attr(n, attr);
    if (!a)
        return required ? diag_error(im->d, n->loc, KILN_ERR_INVALID, "missing required attribute '%s'", attr) : KILN_OK;
    if (!a->has_type || a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT)
        return attr_error(im, n, attr, "an integer type code");
    kiln_dtype dt = onnx_dtype((int32_t)a->i);
    if (dt == KILN_DTYPE_INVALID)
        return diag_error(im->d, n->loc, KILN_ERR_UNSUPPORTED, "attribute '%s': dtype %s is not supported",
                          attr, onnx_dtype_name((int32_t)a->i));
    n->extra[n->extra_count++] = (ir_attr){.name = attr, .kind = IR_ATTR_STRING, .s = kiln_dtype_name(dt)};
    return KILN_OK;
}

static kiln_status adapt_cast(onnx_importer *im, onnx_node *n) {
    onnx_take_attr(n, "saturate"); /* only float8 targets saturate; kiln has none */
    return dtype_code_attr(im, n, "to", true);
}

static kiln_status adapt_eye_like(onnx_importer *im, onnx_node *n) {
    return dtype_code_attr(im, n, "dtype", false);
}

/* Softmax, LogSoftmax before opset 13: the input is coerced to 2-D at `axis` (default 1),
 * normalized over the second dimension, and reshaped back. */
static kiln_status adapt_softmax_v1(onnx_importer *im, onnx_node *n) {
    const Onnx__AttributeProto *a = onnx_take_attr(n, "axis");
    int64_t axis = a ? a->i : 1;
    ir_value *x = n->inputs[0];
    if (x && x->type.rank >= 0 && (axis == -1 || axis == x->type.rank - 1)) {
        if (a) /* the last axis: the same as opset 13 (absent: 1 = the last of 2-D, opset 13's default) */
            n->attrs[n->attr_count++] = a;
        return KILN_OK;
    }
    ir_node *flat, *op, *shape;
    kiln_status st;
    if ((st = onnx_emit(im, n, IR_OP_FLATTEN, "flatten", &x, 1, 1, &flat)))
        return st;
    ir_attr *fa = onnx_emit_attr(im, flat, "axis", IR_ATTR_INT);
    if (!fa)
        return diag_error(im->d, n->loc, KILN_ERR_OOM, "out of memory");
    fa->i = axis;
    if ((st = onnx_emit(im, n, n->op, "softmax2d", flat->outputs, 1, 1, &op)) ||
        (st = onnx_emit(im, n, IR_OP_SHAPE, "shape", &x, 1, 1, &shape)))
        return st;
    n->op = IR_OP_RESHAPE;
    n->inputs[0] = op->outputs[0];
    n->inputs[1] = shape->outputs[0];
    n->input_count = 2;
    return KILN_OK;
}

/* Clip before opset 11: min and max were float attributes. */
static kiln_status adapt_clip_v6(onnx_importer *im, onnx_node *n) {
    const Onnx__AttributeProto *lo = onnx_take_attr(n, "min"), *hi = onnx_take_attr(n, "max");
    n->inputs[1] = n->inputs[2] = NULL;
    n->input_count = 3;
    kiln_status st = KILN_OK;
    if (lo)
        st = onnx_const_float(im, n, "min", lo->f, &n->inputs[1]);
    if (!st && hi)
        st = onnx_const_float(im, n, "max", hi->f, &n->inputs[2]);
    return st;
}

/* Slice before opset 10: starts, ends and axes were attributes. */
static kiln_status adapt_slice_v1(onnx_importer *im, onnx_node *n) {
    kiln_status st;
    if ((st = attr_to_input(im, n, "starts", 1)) || (st = attr_to_input(im, n, "ends", 2)) ||
        (st = attr_to_input(im, n, "axes", 3)))
        return st;
    return KILN_OK;
}

/* Pad before opset 11: pads and value were attributes (and mode stays one). */
static kiln_status adapt_pad_v2(onnx_importer *im, onnx_node *n) {
    const Onnx__AttributeProto *v = onnx_take_attr(n, "value");
    kiln_status st = attr_to_input(im, n, "pads", 1);
    if (!st && v && v->f != 0) {
        n->input_count = 3;
        st = onnx_const_float(im, n, "value", v->f, &n->inputs[2]);
    }
    return st;
}

/* TopK before opset 10: k was an attribute. */
static kiln_status adapt_topk_v1(onnx_importer *im, onnx_node *n) {
    const Onnx__AttributeProto *k = onnx_take_attr(n, "k");
    if (!k)
        return diag_error(im->d, n->loc, KILN_ERR_INVALID, "missing required attribute 'k'");
    n->input_count = 2;
    return onnx_const_ints(im, n, "k", &k->i, 1, false, &n->inputs[1]);
}

/* Dropout before opset 12: ratio was an attribute; at inference it changes nothing. */
static kiln_status adapt_dropout_v10(onnx_importer *im, onnx_node *n) {
    (void)im;
    onnx_take_attr(n, "ratio");
    return KILN_OK;
}

/* BatchNormalization before opset 9: `spatial` (1 is the only meaning kiln supports). */
static kiln_status adapt_batch_norm_v7(onnx_importer *im, onnx_node *n) {
    const Onnx__AttributeProto *a = onnx_take_attr(n, "spatial");
    if (a && a->i != 1)
        return diag_error(im->d, n->loc, KILN_ERR_UNSUPPORTED, "attribute 'spatial' = 0 is not supported");
    return KILN_OK;
}

/* Upsample (opsets 7-9) and Resize of opset 10: asymmetric coordinates and floor for
 * nearest; scales an attribute (opset 7, 8) or the second input (9, 10). */
static kiln_status adapt_upsample(onnx_importer *im, onnx_node *n) {
    const Onnx__AttributeProto *a = onnx_take_attr(n, "scales");
    ir_value *scales = n->input_count > 1 ? n->inputs[1] : NULL;
    if (a) {
        if (!a->has_type || a->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS || a->n_floats > KILN_MAX_RANK)
            return attr_error(im, n, "scales", "a list of floats");
        ir_value *v;
        const char *name = derived_name(im, n, "scales");
        int64_t dims[1] = {(int64_t)a->n_floats};
        kiln_status st = name ? ir_graph_new_value(im->g, name, IR_VAL_CONST, n->loc, &v, im->d)
                              : diag_error(im->d, n->loc, KILN_ERR_OOM, "out of memory");
        if (!st)
            st = ir_graph_new_tensor(im->g, KILN_F32, 1, dims, &v->init, im->d);
        if (st)
            return st;
        for (size_t i = 0; i < a->n_floats; i++)
            ir_tensor_set(v->init, (int64_t)i, a->floats[i]);
        v->type = *v->init;
        v->type.data = NULL;
        scales = v;
    }
    n->op = IR_OP_RESIZE;
    n->inputs[1] = NULL;
    n->inputs[2] = scales;
    n->input_count = 3;
    n->extra[n->extra_count++] = (ir_attr){.name = "coordinate_transformation_mode", .kind = IR_ATTR_STRING, .s = "asymmetric"};
    n->extra[n->extra_count++] = (ir_attr){.name = "nearest_mode", .kind = IR_ATTR_STRING, .s = "floor"};
    return KILN_OK;
}

typedef struct adapter {
    const char *op;
    int64_t min_opset, max_opset; /* the opsets whose form this adapter rewrites */
    kiln_status (*fn)(onnx_importer *im, onnx_node *n);
} adapter;

static const adapter adapters[] = {
    {"Cast", 1, 99, adapt_cast},
    {"Softmax", 1, 12, adapt_softmax_v1},
    {"LogSoftmax", 1, 12, adapt_softmax_v1},
    {"Hardmax", 1, 12, adapt_softmax_v1},
    {"EyeLike", 1, 99, adapt_eye_like},
    {"Upsample", 1, 9, adapt_upsample},
    {"Resize", 10, 10, adapt_upsample},
    {"Clip", 1, 10, adapt_clip_v6},
    {"Slice", 1, 9, adapt_slice_v1},
    {"Pad", 1, 10, adapt_pad_v2},
    {"TopK", 1, 9, adapt_topk_v1},
    {"Dropout", 1, 11, adapt_dropout_v10},
    {"BatchNormalization", 1, 8, adapt_batch_norm_v7},
};

kiln_status onnx_adapt(onnx_importer *im, onnx_node *n) {
    for (int i = 0; i < ARRAY_LEN(adapters); i++) {
        const adapter *a = &adapters[i];
        if (!strcmp(a->op, n->proto->op_type) && im->opset >= a->min_opset && im->opset <= a->max_opset)
            return a->fn(im, n);
    }
    return KILN_OK;
}
