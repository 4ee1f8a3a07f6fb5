/*
 * graph.h — the graph IR: values, nodes, attributes, graphs.
 *
 * A graph owns everything reachable from it through its arena (nodes, values, names,
 * attributes, initializer data); ir_graph_destroy frees it all at once. Nodes are kept in
 * topological order: a node's inputs are graph inputs, initializers, or outputs of earlier
 * nodes. Values have unique names that every pass keeps, so a message, a dump or a profile
 * can always say which model value it is about.
 *
 * Shapes: dims are >= 0, IR_DIM_BATCH for the graph's one symbolic batch dimension, or
 * IR_DIM_UNKNOWN where inference could not say (data-dependent shapes). A value's type is a
 * kiln_tensor whose data is NULL; dtype KILN_DTYPE_INVALID and rank -1 mean "not inferred".
 */
#ifndef KILN_IR_GRAPH_H
#define KILN_IR_GRAPH_H

#include "ir/arena.h"
#include "ir/diag.h"
#include "ir/op.h"
#include "kiln.h"

#define IR_DIM_BATCH (-1)
#define IR_DIM_UNKNOWN (-2)

typedef struct ir_value ir_value;
typedef struct ir_node ir_node;
typedef struct ir_graph ir_graph;

typedef enum ir_value_kind {
    IR_VAL_NODE,  /* produced by a node */
    IR_VAL_INPUT, /* a graph input, fed at run time */
    IR_VAL_PARAM, /* an initializer that training updates */
    IR_VAL_CONST, /* an initializer that never changes */
} ir_value_kind;

struct ir_value {
    const char *name;
    ir_value_kind kind;
    bool is_output;
    kiln_tensor type;           /* dtype/rank/dims; type.data is always NULL */
    kiln_tensor *init;          /* PARAM/CONST data, in the graph arena */
    const char *init_file;      /* the .npy/.npz it was read from (relative), or NULL: inline */
    const char *init_key;       /* the array's key inside an .npz, or NULL */
    ir_node *producer;          /* IR_VAL_NODE only */
    int producer_slot;
    kiln_loc loc;
    int id; /* dense, unique in the graph: index side tables with it (< value_ids) */
};

typedef struct ir_attr {
    const char *name;
    ir_attr_kind kind;
    int64_t i;
    double f;
    const char *s;
    int count; /* elements of ints/floats/strings */
    int64_t *ints;
    double *floats;
    const char **strings;
    kiln_tensor *t;
} ir_attr;

struct ir_node {
    ir_op op;
    const char *name;
    kiln_loc loc; /* loc.node and loc.op name this node */
    ir_value **inputs; /* NULL entries are omitted optional inputs */
    int input_count;
    ir_value **outputs;
    int output_count;
    ir_attr *attrs;
    int attr_count, attr_cap;
    int id; /* dense, unique in the graph (< node_ids); removed nodes keep theirs */
};

struct ir_graph {
    arena *arena;
    const char *name;
    const char *file;       /* the model file, for messages; NULL for built graphs */
    const char *batch_name; /* the symbolic batch dimension's name, or NULL */
    ir_node **nodes;        /* topological order */
    int node_count, node_cap;
    ir_value **inputs;
    int input_count, input_cap;
    ir_value **inits; /* params and consts, in declaration order */
    int init_count, init_cap;
    ir_value **outputs;
    int output_count, output_cap;
    int value_ids, node_ids;     /* ids handed out so far */
    struct ir_name_table *names; /* name -> value */
};

kiln_status ir_graph_create(const char *name, const char *file, ir_graph **out, kiln_diag *d);
void ir_graph_destroy(ir_graph *g); /* NULL is a no-op */

/* Creates a value with a new, unique name. Its kind decides which list it joins. */
kiln_status ir_graph_new_value(ir_graph *g, const char *name, ir_value_kind kind, kiln_loc loc,
                               ir_value **out, kiln_diag *d);
ir_value *ir_graph_find(const ir_graph *g, const char *name); /* NULL if none */
/* A name not used yet, made from `base` ("x" -> "x", "x_1", "x_2", ...). In the arena. */
const char *ir_graph_fresh_name(ir_graph *g, const char *base);
kiln_status ir_graph_add_output(ir_graph *g, ir_value *v, kiln_diag *d);

/* The most nodes a graph may have (a model of more is refused, not half-loaded). */
enum { IR_MAX_NODES = 1 << 22 };

/* Appends a node; the outputs must be fresh IR_VAL_NODE values without a producer. */
kiln_status ir_graph_add_node(ir_graph *g, ir_op op, const char *name, ir_value *const *inputs,
                              int input_count, ir_value *const *outputs, int output_count,
                              kiln_loc loc, ir_node **out, kiln_diag *d);
/* Adds an attribute (kind set, payload zeroed) for the caller to fill; NULL on OOM. */
ir_attr *ir_node_add_attr(ir_graph *g, ir_node *n, const char *name, ir_attr_kind kind);
/* Removes nodes for which keep[i] is false, keeping the order of the rest. */
void ir_graph_keep_nodes(ir_graph *g, const bool *keep);
/* Removes initializers for which keep[i] is false. */
void ir_graph_keep_inits(ir_graph *g, const bool *keep);
/* Turns an initializer into a graph input (appended to the inputs; its data is dropped:
 * the caller keeps what it needs of it first). Training feeds parameters this way. */
kiln_status ir_value_make_input(ir_graph *g, ir_value *v, kiln_diag *d);
/* Turns a node-produced value into a constant holding `t` (which must live in g's arena). */
kiln_status ir_value_make_const(ir_graph *g, ir_value *v, kiln_tensor *t, kiln_diag *d);

/* Replaces the symbolic batch dimension by `batch` in every value's type (specializing
 * the graph for one batch size); the graph then has no symbolic dimension. */
void ir_graph_set_batch(ir_graph *g, int64_t batch);

/* A zeroed tensor in the graph's arena; refuses shapes past the tensor cap. */
kiln_status ir_graph_new_tensor(ir_graph *g, kiln_dtype dt, int rank, const int64_t *dims,
                                kiln_tensor **out, kiln_diag *d);

/* Attribute access with the op schema's defaults. Asking for an attribute the op's schema
 * does not declare is a bug in kiln (asserted). */
const ir_attr *ir_node_attr(const ir_node *n, const char *name); /* NULL if the node omits it */
int64_t ir_attr_int(const ir_node *n, const char *name);
double ir_attr_float(const ir_node *n, const char *name);
const char *ir_attr_string(const ir_node *n, const char *name);

/* What a declared or inferred type would cost, over its known dims: *count elements;
 * KILN_ERR_INVALID if the count overflows, KILN_ERR_OOM if the bytes overflow or pass the
 * memory cap (kiln_max_memory), else KILN_OK. Callers word the message for their place. */
kiln_status ir_type_size_check(const kiln_tensor *type, int64_t *count);
/* Element count of a fully known type; -1 if a dim is symbolic or unknown. */
int64_t ir_type_count(const kiln_tensor *type);
bool ir_type_known(const kiln_tensor *type); /* dtype, rank and every dim known */

/* kiln dtype by name ("f32", ...); KILN_DTYPE_INVALID if none. */
kiln_dtype ir_dtype_lookup(const char *name);

/* Element access for reference code: any dtype through double or int64. */
double ir_tensor_get(const kiln_tensor *t, int64_t i);
int64_t ir_tensor_get_int(const kiln_tensor *t, int64_t i);
void ir_tensor_set(kiln_tensor *t, int64_t i, double v);
void ir_tensor_set_int(kiln_tensor *t, int64_t i, int64_t v);
bool ir_dtype_is_float(kiln_dtype dt);
bool ir_dtype_is_int(kiln_dtype dt); /* integer types, not bool */

#endif
