/*
 * loop.h — the loop IR: what every graph op lowers to, and what the backends compile.
 *
 * A module holds kernels and the program that calls them. A kernel is a function over
 * buffers (its parameters) whose body is a tree of statements: loop nests (each loop
 * serial, parallel, vectorized with a width, or unrolled), stores, local scalars (let /
 * assign, for accumulators) and conditionals. Expressions are trees over scalars or
 * vectors of `lanes` elements: constants, variables, loads at a flat index expression,
 * unary/binary/compare ops, selects, casts and calls to math intrinsics.
 *
 * Indices are i64 expressions in elements (not bytes); buffers are dense and C-ordered.
 * Everything lives in the module's arena. The program binds every graph value to its
 * storage (a run's input or output buffer, an embedded constant, or an offset in the one
 * arena the memory plan lays out) and lists the kernel calls in order.
 */
#ifndef KILN_IR_LOOP_H
#define KILN_IR_LOOP_H

#include "ir/graph.h"

#include <stdio.h>

typedef struct lir_expr lir_expr;
typedef struct lir_stmt lir_stmt;
typedef struct lir_buffer lir_buffer;

typedef enum lir_expr_kind {
    LIR_CONST,  /* i (integer types) or f (float types) */
    LIR_VAR,    /* a loop index (i64) or a local scalar */
    LIR_LOAD,   /* buf[index] */
    LIR_UNARY,  /* op(a) */
    LIR_BINARY, /* a op b; comparisons give bool */
    LIR_SELECT, /* a ? b : c */
    LIR_CAST,   /* a converted to `type` (float -> int truncates, saturating) */
    LIR_CALL,   /* intrinsic(a[, b]) on floats */
} lir_expr_kind;

typedef enum lir_op {
    /* binary */
    LIR_ADD, LIR_SUB, LIR_MUL, LIR_DIV, LIR_REM /* C's fmod / % */, LIR_MIN, LIR_MAX,
    LIR_AND, LIR_OR, LIR_XOR,
    LIR_EQ, LIR_NE, LIR_LT, LIR_LE, LIR_GT, LIR_GE,
    /* unary */
    LIR_NEG, LIR_NOT, LIR_ABS,
    LIR_OP_COUNT
} lir_op;

typedef enum lir_intrinsic {
    LIR_EXP, LIR_LOG, LIR_SQRT, LIR_TANH, LIR_ERF, LIR_SIN, LIR_COS, LIR_TAN, LIR_ASIN, LIR_ACOS,
    LIR_ATAN, LIR_SINH, LIR_COSH, LIR_ASINH, LIR_ACOSH, LIR_ATANH, LIR_FLOOR, LIR_CEIL,
    LIR_ROUND_EVEN, LIR_LOG1P, LIR_POW /* binary */, LIR_FMOD /* binary */,
    LIR_INTRINSIC_COUNT
} lir_intrinsic;

struct lir_expr {
    lir_expr_kind kind;
    kiln_dtype type; /* element type of the result */
    int lanes;       /* 1: scalar; > 1: a vector */
    int op;          /* lir_op or lir_intrinsic */
    int64_t i;
    double f;
    int var;
    lir_buffer *buf;
    lir_expr *a, *b, *c; /* operands; a is also LOAD's index */
};

typedef enum lir_loop_kind { LIR_SERIAL, LIR_PARALLEL, LIR_VECTOR, LIR_UNROLL } lir_loop_kind;

typedef enum lir_stmt_kind {
    LIR_FOR,    /* for var in [begin, end) step step: body */
    LIR_STORE,  /* buf[index] = value */
    LIR_LET,    /* declares local scalar var = value (it may be assigned later) */
    LIR_ASSIGN, /* var = value */
    LIR_IF,     /* if cond: body else other */
    LIR_SEQ,    /* items in order */
    LIR_FAIL,   /* stops the kernel with error `var` (1-based, into the module's messages) */
    LIR_TRANSPOSE, /* a tile turned over: buf[index + a * strides[0] + b] = value's buffer at
                      value's index + b * strides[1] + a, for a < rows and b < cols (at most
                      `width`, the vector's lanes); value is a LIR_LOAD of the tile's first
                      element. One load per source row and one store per destination row,
                      the lanes moved across in registers, where a vector loop would gather. */
} lir_stmt_kind;

struct lir_stmt {
    lir_stmt_kind kind;
    int var;
    lir_expr *begin, *end, *index, *value, *cond;
    int64_t step;
    lir_loop_kind loop;
    int width; /* LIR_VECTOR lanes or LIR_UNROLL factor; LIR_TRANSPOSE's tile */
    int rows, cols;      /* LIR_TRANSPOSE */
    int64_t strides[2];  /* LIR_TRANSPOSE: the destination's between rows, the source's */
    lir_buffer *buf;
    lir_stmt *body, *other;
    lir_stmt **items;
    int count, cap;
};

typedef enum lir_buffer_kind {
    LIR_BUF_VALUE, /* a graph value: bound by the program to input, output, const or arena */
    LIR_BUF_LOCAL, /* a kernel's own scratch: arena bytes the plan reserves while it runs */
} lir_buffer_kind;

typedef enum lir_storage_kind {
    LIR_STORE_NONE, LIR_STORE_INPUT, LIR_STORE_OUTPUT, LIR_STORE_CONST, LIR_STORE_ARENA,
    LIR_STORE_PERSIST /* the model's own block, kept from one run to the next */
} lir_storage_kind;

typedef struct lir_storage {
    lir_storage_kind kind;
    int index;      /* input or output number */
    int64_t offset; /* bytes into the arena */
} lir_storage;

struct lir_buffer {
    const char *name;
    kiln_dtype dtype;
    int64_t count; /* elements */
    lir_buffer_kind kind;
    const ir_value *value; /* LIR_BUF_VALUE */
    lir_storage local;     /* LIR_BUF_LOCAL: where the plan put it (the arena, or the
                              persistent block when `persistent`) */
    bool persistent;       /* LIR_BUF_LOCAL written by a `once` kernel: data derived from
                              constants (packed weights), kept between runs */
};

typedef struct lir_var {
    const char *name;
    kiln_dtype type; /* KILN_I64 for loop indices */
} lir_var;

typedef struct lir_kernel {
    const char *name;
    const ir_node *origin;  /* the graph node it computes (names the kernel in profiles) */
    lir_buffer **params;    /* what the kernel reads and writes */
    int param_count, param_cap;
    lir_var *vars;
    int var_count, var_cap;
    lir_stmt *body;         /* a LIR_SEQ */
    bool once;              /* reads only constants and writes only persistent buffers: run
                               once, before the first run's kernels, not at every run */
    int64_t flops;          /* the arithmetic its nodes need (2 per multiply-add; 1 per element
                               of other ops): what profiles divide by time for GFLOP/s */
} lir_kernel;

typedef struct lir_module {
    arena *arena;
    const ir_graph *graph;
    lir_kernel **kernels; /* in call order */
    int kernel_count, kernel_cap;
    lir_storage *storage; /* indexed by ir_value id */
    int64_t arena_bytes;  /* the planned arena's size */
    int64_t persist_bytes; /* the persistent block's size (once kernels' outputs) */
    int vector_bits;      /* the target's vector register width; 0: no vector loops */
    int threads;          /* the threads runs will use (lower_options): a blocking hint; 0: unknown */
    int64_t l2_bytes;     /* one core's L2 cache (lower_options): what working sets are sized for */
    const char **errors;  /* what a kernel's nonzero return code means: errors[code - 1] */
    int error_count, error_cap;
} lir_module;

kiln_status lir_module_create(const ir_graph *g, lir_module **out, kiln_diag *d);
void lir_module_destroy(lir_module *m);
lir_kernel *lir_kernel_add(lir_module *m, const char *name, const ir_node *origin);
/* The kernel's parameter for graph value v (added once). */
lir_buffer *lir_param(lir_module *m, lir_kernel *k, const ir_value *v);
/* A scratch buffer of `count` elements private to kernel k (a parameter too: the program
 * passes its place in the arena, which the plan reserves for the kernel's run). */
lir_buffer *lir_local(lir_module *m, lir_kernel *k, const char *name, kiln_dtype t, int64_t count);
/* Makes buffer b (another kernel's) a parameter of k too; false on OOM. */
bool lir_kernel_use(lir_module *m, lir_kernel *k, lir_buffer *b);
/* Where buffer b lives during a run. */
static inline const lir_storage *lir_buffer_storage(const lir_module *m, const lir_buffer *b) {
    return b->kind == LIR_BUF_LOCAL ? &b->local : &m->storage[b->value->id];
}
int lir_var_new(lir_module *m, lir_kernel *k, const char *name, kiln_dtype type);

/* Expression builders: NULL on OOM (the module's arena), which lowering reports. */
lir_expr *lir_int(lir_module *m, int64_t v);                   /* i64 constant */
lir_expr *lir_const(lir_module *m, kiln_dtype t, double v);   /* any type; integers: v in range */
lir_expr *lir_int_const(lir_module *m, kiln_dtype t, int64_t v); /* integer type t (u64: v's bits) */
lir_expr *lir_var_ref(lir_module *m, const lir_kernel *k, int var);
lir_expr *lir_load(lir_module *m, lir_buffer *b, lir_expr *index);
lir_expr *lir_unary(lir_module *m, lir_op op, lir_expr *a);
lir_expr *lir_binary(lir_module *m, lir_op op, lir_expr *a, lir_expr *b);
lir_expr *lir_select(lir_module *m, lir_expr *cond, lir_expr *a, lir_expr *b);
lir_expr *lir_cast(lir_module *m, kiln_dtype t, lir_expr *a);
lir_expr *lir_call(lir_module *m, lir_intrinsic fn, lir_expr *a, lir_expr *b);
/* acc + a * b with leave to round once (a fused multiply-add where the target has one):
 * a float LIR_ADD whose `i` is 1. Only for accumulations whose op's tolerance allows it
 * (MatMul, Gemm, Conv, the recurrent gates): their sums then differ from the
 * interpreter's by the rounding of the products, well inside the stated tolerances. */
lir_expr *lir_fma(lir_module *m, lir_expr *a, lir_expr *b, lir_expr *acc);
/* A float LIR_MAX or LIR_MIN (op) that may give either operand where one is NaN (its `i` is 1):
 * one vmaxps where NaN-propagating max takes five instructions. Only where a NaN shows up
 * anyway: a softmax's row max (exp(NaN - max) makes the row's sum, so every output, NaN). */
lir_expr *lir_max_any(lir_module *m, lir_op op, lir_expr *a, lir_expr *b);

/* Statement builders. */
lir_stmt *lir_seq(lir_module *m);
bool lir_seq_push(lir_module *m, lir_stmt *seq, lir_stmt *item); /* false on OOM */
lir_stmt *lir_for(lir_module *m, int var, lir_expr *begin, lir_expr *end, lir_stmt *body);
lir_stmt *lir_store(lir_module *m, lir_buffer *b, lir_expr *index, lir_expr *value);
lir_stmt *lir_let(lir_module *m, int var, lir_expr *value);
lir_stmt *lir_assign(lir_module *m, int var, lir_expr *value);
lir_stmt *lir_if(lir_module *m, lir_expr *cond, lir_stmt *then, lir_stmt *other);
/* A rows x cols tile of src (a LIR_LOAD of its first element, source rows src_stride
 * apart) stored turned over at dst[index] (destination rows dst_stride apart), in tiles
 * of `width` lanes (a power of two up to 64; rows, cols <= width). */
lir_stmt *lir_transpose(lir_module *m, lir_buffer *dst, lir_expr *index, int64_t dst_stride, lir_expr *src,
                        int64_t src_stride, int rows, int cols, int width);
/* A statement that stops the kernel, reporting `message` (copied into the module). */
lir_stmt *lir_fail(lir_module *m, const char *message);

/* How an i64 index expression moves when loop variable `var` steps by one, the other
 * variables fixed: the constant stride (0: the same for every iteration), or
 * LIR_STRIDE_VARYING when it is not affine in var or reads a variable marked in `varying`
 * (scalars that differ between the iterations of a vectorized loop). Loads count as
 * varying unless their own index has stride 0. */
#define LIR_STRIDE_VARYING INT64_MIN
int64_t lir_stride(const lir_expr *e, int var, const bool *varying);
/* Whether i64 index e is a part uniform in loop variable `var` plus a part made of var and
 * constants alone (lane - lane % 4, say), so that its value at var = first + l, less its
 * value at first, is known before the kernel runs: off[l] for l < lanes (lanes <= 64). */
bool lir_lane_offsets(const lir_expr *e, int var, const bool *varying, int64_t first, int lanes, int64_t *off);

/* Whether a and b are the same expression, node for node. */
bool lir_expr_same(const lir_expr *a, const lir_expr *b);
/* Whether kernels a and b compile to the same code (ir/loop_same.c): the same statements
 * on the same variables, constants equal to the bit, buffers matched by parameter position
 * with the same element type and size. Names, origins and storage may differ. */
bool lir_kernel_same(const lir_kernel *a, const lir_kernel *b);
/* A new array (the caller frees it; NULL when out of memory): at i, the first kernel whose
 * code kernel i's is (i itself if none before it). *distinct receives how many are their own. */
int *lir_same_kernels(const lir_module *m, int *distinct);
/* Whether float expression e is >= 0 (or -0, or NaN) wherever it is evaluated, by its
 * form alone: constants, |x|, x * x, exp, sqrt, a ReLU's select(x < 0, 0, x), max with a
 * non-negative operand, and sums, products, quotients, min and selects of such values.
 * Conservative: false says nothing. */
bool lir_nonneg(const lir_expr *e);
/* The f32 tanh call t when e is c * t + d: a multiply-add (lir_fma) with a constant c =
 * 2^k (1/1024 <= c <= 1024) beside t in the product, or an add t + d (c = 1); *c and *d
 * receive the map. NULL for any other e. tanh's rational form takes c into its numerator
 * and d into its last step (backend/llvm/cg_math.c), so stage.c keeps the map with the call. */
const lir_expr *lir_tanh_affine(const lir_expr *e, double *c, const lir_expr **d);

const char *lir_op_name(lir_op op);
const char *lir_intrinsic_name(lir_intrinsic fn);
void lir_print(const lir_module *m, FILE *f);

#endif
