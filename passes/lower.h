/*
 * lower.h — graph IR -> loop IR: one kernel per node (fusion comes with issue 5), and the
 * memory plan that binds every value to its storage.
 *
 * Needs: a verified graph whose types are all known and static (specialize the batch
 * dimension first). Each op's lowering rule is expanded from ir/ops.def; an op whose rule
 * is still lower_none cannot be compiled yet and is reported, naming the node.
 */
#ifndef KILN_PASSES_LOWER_H
#define KILN_PASSES_LOWER_H

#include "ir/loop.h"
#include "passes/shape.h"

typedef struct fusion_plan fusion_plan;

/* A value's type as lower_ctx.in_type holds it: with the data, for constants; NULL for an
 * absent optional input. */
static inline const kiln_tensor *lower_value_type(const ir_value *v) {
    return v ? (v->init ? v->init : &v->type) : NULL;
}

typedef struct lower_ctx {
    lir_module *m;
    lir_kernel *k;
    const ir_node *node;
    lir_buffer *in[IR_VARIADIC]; /* NULL for absent optional inputs */
    lir_buffer *out[16];
    const kiln_tensor *in_type[IR_VARIADIC];  /* with data for constants */
    const kiln_tensor *out_type[16];
    lir_expr *fail_if;    /* set by an elementwise rule: stop the kernel when it holds */
    const char *fail_msg;
    lir_stmt *inner;      /* the elementwise map's innermost body: a rule may push statements there */
    const fusion_plan *plan;          /* which producers to inline, which epilogue to apply */
    const ir_node *const *epilogue;   /* elementwise nodes applied to output 0 before its store */
    int epilogue_count;
    kiln_diag *d;
} lower_ctx;

/* An elementwise op's scalar rule: its value from its inputs' values x (in their compute
 * types; absent optional inputs NULL). */
typedef lir_expr *(*lower_scalar_fn)(lower_ctx *c, lir_expr **x);
/* n's scalar rule if it has one that can run inside any kernel (not integer division,
 * which can stop the kernel, or integer Pow, which loops), else NULL. */
lower_scalar_fn lower_scalar_rule(const ir_node *n);

/* ---- fusion (fuse.c) ----------------------------------------------------------------------
 * Which nodes get a kernel of their own. An elementwise node whose only reader is another
 * kernel's input read (lower_read) is computed inside that read instead (inlined);
 * elementwise nodes of its shape after a MatMul, Gemm or Conv whose values only later ones
 * read (a chain, or SiLU's x * sigmoid(x)) are applied to the accumulator before the store
 * (the epilogue), and that kernel runs where the epilogue's last node was. */
typedef enum fuse_role { FUSE_OWN, FUSE_INLINE, FUSE_EPILOGUE, FUSE_ATTENTION, FUSE_WINOGRAD } fuse_role;
enum { FUSE_EPILOGUE_MAX = 64 }; /* nodes in one epilogue */
/* Attention as PyTorch exports it: P = Softmax(scale * MatMul(Q, KT) [+ mask], axis -1),
 * then MatMul(P, V), each value between read only by the next node. The second MatMul's
 * kernel computes all of it (lower_attention.c) and the others (role FUSE_ATTENTION)
 * get none: the scores are never stored whole. */
typedef struct fuse_attention {
    const ir_node *scores, *scale, *mask_add, *softmax; /* the nodes it absorbs (scale, mask_add: optional) */
    const ir_value *q, *kt, *v, *mask;                  /* [..., Lq, D], [..., D, Lk], [..., Lk, Dv], mask or NULL */
    double scale_value;                                  /* 1 without a scale node */
} fuse_attention;
/* Its blocking (lower_attention.c): query rows per block; keys per block (all of them up to
 * twice that); and the most scratch, in elements, fusion lets it keep for all batches. */
enum { ATTENTION_ROWS = 8, ATTENTION_KEYS = 256, ATTENTION_SCRATCH_MAX = 1 << 22 };
static inline int64_t attention_key_block(int64_t lk) {
    return lk <= 2 * ATTENTION_KEYS ? lk : ATTENTION_KEYS;
}
/* Scratch elements per batch: the block's scores, its output accumulators and row stats, and
 * the lane partials. */
static inline int64_t attention_scratch(int64_t lk, int64_t dv) {
    return ATTENTION_ROWS * (attention_key_block(lk) + dv + 3) + 64;
}
/* Winograd as passes/layout.c writes it, WinogradInput -> MatMul (constant weights) ->
 * WinogradOutput, each value between read only by the next node, with weights of at most
 * winograd_fused_weights bytes: the WinogradOutput's kernel computes all of it, a block of
 * tiles at a time, its transformed tiles and their products in scratch that stays in the
 * core's cache (lower_winograd.c); the others (role FUSE_WINOGRAD) get no kernel. */
/* At most half the L2 (512 KiB of Zen 5's 1 MiB), the scratch taking a quarter. 1 thread, ms
 * fused / unfused: ResNet-18's 64-channel convs (256 KiB of weights) 0.60 / 0.74; its
 * 128-channel convs (1 MiB) 0.78-0.84 / 0.70, 256 (4 MiB) 1.05-1.16 / ~0.6, 512 (16 MiB)
 * 2.5-2.8 / ~0.8: every block reads all the weights again. */
static inline int64_t winograd_fused_weights(int64_t l2_bytes) { return l2_bytes / 2; }
struct fusion_plan {
    fuse_role *role;           /* by node id */
    const ir_node **winograd;  /* by node id of a WinogradOutput computing its whole conv: its WinogradInput */
    const ir_node **host;      /* FUSE_EPILOGUE, FUSE_ATTENTION, FUSE_WINOGRAD: the anchor whose kernel computes it */
    fuse_attention **attention; /* by node id of an attention's P x V MatMul (NULL: none) */
    const ir_node ***chain;    /* by anchor node id: its epilogue in order (NULL: none) */
    int *chain_count;
    const char **why;          /* by node id: why it was not fused into its reader */
    int node_ids;
    const struct kiln_tuning *tuning; /* lower_options' tuning: what the schedules follow */
};
typedef struct lower_options lower_options;
/* Plans fusion for g; with o->no_fuse every node keeps its own kernel (--no-fuse). */
kiln_status fuse_plan(const ir_graph *g, const lower_options *o, fusion_plan *p, kiln_diag *d);
void fuse_plan_free(fusion_plan *p);
/* Writes each kernel of m with the nodes fused into it, and every node left alone with why. */
void fuse_print(const lir_module *m, const fusion_plan *p, FILE *f);
/* The graph for Graphviz: nodes, value edges, each kernel's nodes in a cluster. */
void fuse_dot(const lir_module *m, const fusion_plan *p, FILE *f);

typedef kiln_status (*lower_fn)(lower_ctx *c);
/* The attention kernel for anchor c->node; c->in[0..3]: Q, KT, V, mask (or NULL). */
kiln_status lower_attention(lower_ctx *c, const fuse_attention *a);
/* The whole Winograd conv for WinogradOutput c->node; c->in[0..2]: X (input's input), the
 * transformed weights [16, Cin, Cout], the bias (or NULL). */
kiln_status lower_winograd_fused(lower_ctx *c, const ir_node *input);

#define OP(ID, fn, ...) kiln_status lower_##fn(lower_ctx *c);
#include "ir/ops.def"
#undef OP

/* What the schedules are sized for. The driver fills it for the host
 * (driver_lower_options); results never depend on it, only how work is blocked. */
struct lower_options {
    int vector_bits;  /* the target's vector registers: the widest vector loops (0: none) */
    bool no_fuse;     /* one kernel per node */
    int threads;      /* the threads runs will use (0: unknown, several) */
    int64_t l2_bytes; /* one core's L2 cache (0: unknown, LOWER_L2_DEFAULT) */
    const struct kiln_tuning *tuning; /* kiln tune's per-node choices (passes/tuning.h), or NULL */
};
enum { LOWER_L2_DEFAULT = 1 << 20 };
static inline int64_t lower_l2_bytes(const lower_options *o) {
    return o && o->l2_bytes > 0 ? o->l2_bytes : LOWER_L2_DEFAULT;
}
/* Lowers the whole graph into *out (a module with its memory plan and schedule). With
 * plan_out, the fusion plan is returned too (fuse_plan_free it). */
kiln_status lower_graph(const ir_graph *g, const lower_options *o, lir_module **out, fusion_plan *plan_out,
                        kiln_diag *d);
/* Decides the loop schedule (schedule.c): for now, which nests run on several threads
 * (how many is the run's choice). lower_graph calls it. */
void lir_schedule(lir_module *m);
/* Splits long elementwise expressions (several exp, tanh, divisions, ...) into stages
 * over tiles held in scratch (stage.c), so each stage's dependent chain is short. Runs
 * before the memory plan; lower_graph calls it. */
kiln_status lir_stage(lir_module *m, kiln_diag *d);
/* Whether kernel k may write `out` over the bytes of `in`, which it reads (in_place.c):
 * every load of `in` sits in the one store to `out`, at the store's index, and that index
 * visits each element once. The memory plan hands a dying input's block to the output. */
bool lower_in_place_safe(const lir_kernel *k, const lir_buffer *in, const lir_buffer *out);
/* Whether op has a lowering rule yet. */
bool lower_supported(ir_op op);

/* ---- helpers for the rules -------------------------------------------------------------- */

kiln_status lower_error(const lower_ctx *c, kiln_status st, const char *fmt, ...) KILN_PRINTF(3, 4);
kiln_status lower_oom(const lower_ctx *c);
/* A loop nest over every dim of `shape`: coords[d] receives each loop's index; *inner is
 * the innermost statement list, *outer the statement to add to the kernel body (the nest,
 * or *inner itself for a scalar). */
kiln_status lower_nest(lower_ctx *c, const kiln_tensor *shape, lir_expr **coords, lir_stmt **inner,
                       lir_stmt **outer);
/* Marks a nest from lower_nest whose iterations depend on each other (scatters, running
 * sums kept outside the nest): it must stay serial. */
static inline void lower_serial(lir_stmt *outer) {
    outer->loop = LIR_SERIAL;
}
/* Marks a loop whose iterations write disjoint outputs: schedule.c may run it in parallel. */
static inline void lower_parallel(lir_stmt *loop) {
    loop->loop = LIR_PARALLEL;
}
/* The flat index of `coords` in `shape`; with broadcast, coords are those of an output of
 * rank out_rank and size-1 dims of shape read index 0. */
lir_expr *lower_index(lower_ctx *c, const kiln_tensor *shape, lir_expr *const *coords, int out_rank);
/* A serial loop `for var in [0, n)` around `body`; *var receives the loop variable. */
lir_stmt *lower_loop(lower_ctx *c, const char *name, int64_t n, lir_stmt *body, lir_expr **var);
lir_stmt *lower_seq1(lower_ctx *c, lir_stmt *s); /* a sequence holding s */
/* Input i at `coords` of its own rank (size-1 dims read index 0), in its compute type; an
 * inlined producer is computed there instead of loaded. */
lir_expr *lower_read(lower_ctx *c, int i, lir_expr **coords);
/* The store of output 0's value at coords (of its rank), through the epilogue if any. */
lir_stmt *lower_store_out(lower_ctx *c, lir_expr **coords, lir_expr *value);
/* The type elementwise math runs in: f32 for f16/bf16 storage, else the type itself. */
kiln_dtype lower_compute_type(kiln_dtype t);
/* Pushes a statement into the kernel's top-level sequence. */
kiln_status lower_emit(lower_ctx *c, lir_stmt *s);
/* Whether input i is a constant: data a `once` kernel may pack before the first run. */
bool lower_input_constant(const lower_ctx *c, int i);
/* A new `once` kernel for the node's packing (NAME_pack, after the current kernel): it runs
 * before the first run, reads constants and writes persistent buffers. NULL: out of memory. */
lir_kernel *lower_pack_kernel(lower_ctx *c);
int lower_var(lower_ctx *c, const char *name, kiln_dtype type);

/* Views (lower_tensor.c): whether n (Transpose keeping the last axis, Slice with constant
 * bounds and step 1 on it, Reshape, Flatten, Squeeze, Unsqueeze) can be computed inside an
 * element reader; whether, inlined, it reads its input element by element (lower_read: a
 * producer may be inlined into it in turn; a reshape only where its output's last axis
 * divides its input's, else it reads flat, and only a reshape is inlined into it); and
 * its value at output coords, c being the view's own context. */
bool lower_view(const ir_node *n);
bool lower_view_reads_elements(const ir_node *n);
/* Reshape, Flatten, Squeeze, Unsqueeze: the elements in the same order, another shape. */
bool lower_is_reshape(ir_op op);
lir_expr *lower_view_value(lower_ctx *c, bool input_inlined, lir_expr **coords);
/* out[coords] = input 0 at the coordinates f fills (and, where f sets *outside, pad). */
typedef kiln_status (*lower_index_fn)(lower_ctx *c, lir_expr **oc, lir_expr **ic, lir_expr **outside, void *arg);
kiln_status lower_gather_map(lower_ctx *c, lower_index_fn f, void *arg, lir_expr *pad);
/* A blocked conv's pixels per lane loop (lower_window.c): V channel blocks (2 where `pairs`
 * and the blocks pair up) x rows x cols pixels (8 with two blocks, else 12: whole rows on
 * narrow images, else a segment of a row), segs segments per output row. */
typedef struct nchwc_plan {
    int v;
    int64_t rows, cols, segs;
} nchwc_plan;
nchwc_plan lower_nchwc_plan(int64_t blocks, bool pairs, int64_t oh, int64_t ow);
/* A depthwise ConvNCHWc (lower_depthwise.c; lower_conv_nchwc sends it there), kernel rows
 * at most DEPTHWISE_MAX_KW wide (unrolled); w: its window. */
enum { DEPTHWISE_MAX_KW = 16 };
kiln_status lower_conv_depthwise(lower_ctx *c, const shape_window *w);
/* One lane-partial pass over a row (a vector loop where one accumulator would serialize on
 * its own operations): `part` (w elements at `base`) starts at `start`, then for each
 * j = block * w + lane < len, part[base + lane] = op(part[base + lane], value(j)); `value`
 * may push statements (run first, under the same mask) into `body`. Returns the statements,
 * ending with the fold of the w partials (pairwise, a balanced tree) into scalar `acc`
 * (declared there). A max or min may pass over a NaN (lir_max_any): for rows where a NaN
 * shows up anyway, as in a softmax's sum. */
typedef lir_expr *(*lower_lane_fn)(lower_ctx *c, lir_expr *j, lir_stmt *body, void *arg);
lir_stmt *lower_lane_pass(lower_ctx *c, lir_buffer *part, lir_expr *base, lir_expr *len, int64_t w, lir_op op,
                          lir_expr *start, lower_lane_fn value, void *arg, int acc);
/* Output 0 = value everywhere. */
kiln_status lower_fill(lower_ctx *c, lir_expr *value);
/* Output 0 = input 0, element for element in flat order (same count, any shapes). */
kiln_status lower_copy(lower_ctx *c);
/* A data-supplied index along an axis of `dim`: negative counts from the end; out of
 * range stops the kernel. Emits the check into `inner`; returns the normalized index. */
lir_expr *lower_checked_index(lower_ctx *c, lir_stmt *inner, lir_expr *raw, int64_t dim);

#endif
