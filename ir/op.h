/*
 * op.h — the operator table: what every op is, from one list (ir/ops.def).
 *
 * ir_op_table[op] gives an op's name, fusion kind, arity, flags and attribute schema.
 * Passes ask it questions (`ir_op_table[op].flags & OPF_DIFF`) instead of switching on op.
 */
#ifndef KILN_IR_OP_H
#define KILN_IR_OP_H

#include <stdbool.h>
#include <stdint.h>

#define IR_VARIADIC 1000

typedef enum ir_op {
#define OP(ID, ...) IR_OP_##ID,
#include "ir/ops.def"
#undef OP
    IR_OP_COUNT
} ir_op;

/* How an op fuses (see DESIGN.md, "Fusion"). */
typedef enum ir_op_kind {
    IR_KIND_ELTWISE,   /* out[i] = f(in[i]) after broadcasting */
    IR_KIND_INJECTIVE, /* each output element reads one input element: reshape, slice, ... */
    IR_KIND_REDUCE,    /* reduces along axes or windows: absorbs elementwise neighbours */
    IR_KIND_ANCHOR,    /* MatMul/Gemm/Conv: takes an elementwise epilogue */
    IR_KIND_OPAQUE,    /* fuses with nothing */
} ir_op_kind;

enum {
    OPF_DIFF = 1u << 0,        /* has a gradient rule */
    OPF_COMMUTATIVE = 1u << 1, /* binary and inputs may be swapped */
    OPF_SHAPE_ONLY = 1u << 2,  /* the output depends only on input shapes, not values */
    OPF_KILN_ONLY = 1u << 3,   /* no ONNX op of this name in the default domain */
    OPF_TRAINING_DOMAIN = 1u << 4, /* ONNX defines it in ai.onnx.preview.training */
};

typedef enum ir_attr_kind {
    IR_ATTR_INT,
    IR_ATTR_FLOAT,
    IR_ATTR_STRING,
    IR_ATTR_INTS,
    IR_ATTR_FLOATS,
    IR_ATTR_STRINGS,
    IR_ATTR_TENSOR,
} ir_attr_kind;

/* One attribute an op accepts, with the default used when a node omits it. */
typedef struct ir_attr_spec {
    const char *name; /* NULL ends a schema */
    ir_attr_kind kind;
    bool required;
    int64_t def_i;
    double def_f;
    const char *def_s;
} ir_attr_spec;

typedef struct ir_op_info {
    const char *name; /* the ONNX op type, unless OPF_KILN_ONLY */
    ir_op_kind kind;
    int min_inputs, max_inputs;
    int min_outputs, max_outputs;
    unsigned flags;
    const ir_attr_spec *attrs; /* NULL-name terminated */
} ir_op_info;

extern const ir_op_info ir_op_table[IR_OP_COUNT];

/* The op called `name`, or IR_OP_COUNT if there is none. */
ir_op ir_op_lookup(const char *name);
const ir_attr_spec *ir_op_attr_spec(ir_op op, const char *attr);
const char *ir_attr_kind_name(ir_attr_kind kind);
const char *ir_op_kind_name(ir_op_kind kind);
/* Whether input `slot` of `op` decides shapes or index maps (Reshape's shape, Slice's starts,
 * Resize's scales, a reduction's axes, ...): compiled code needs its value as a constant. */
bool ir_op_input_static(ir_op op, int slot);

#endif
