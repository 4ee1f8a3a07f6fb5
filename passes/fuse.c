/*
 * fuse.c — the fusion plan: which nodes keep a kernel of their own, which are computed
 * inside the kernel that reads them (inlined), and which run as an anchor's epilogue.
 *
 * The rules (DESIGN.md, "Fusion"):
 * - An elementwise node read by exactly one other node, through that node's element
 *   reads (lower_read: elementwise maps, and MatMul, Gemm, Conv, pools and reductions on
 *   their data inputs), is inlined there: its value is computed where it would be loaded,
 *   and it is never stored. Where the reader reads each element many times (a Conv, a
 *   pool, a broadcast), only cheap ops are inlined (no transcendental calls): recomputing
 *   exp for every read would cost more than one store and many loads.
 * - So is a view (lower_view: a Transpose keeping the last axis, a Slice of step 1 on it,
 *   Reshape, Flatten, (Un)Squeeze): the reader computes the input element's address. A
 *   Transpose or Slice with a kernel of its own reads elements too; a reshape inlined
 *   reads its input's elements where its output's last axis divides its input's, else
 *   its input flat: stored, or a reshape inlined in turn, the same flat index (the
 *   bundled CNN's Reshape back from the blocked layout under its Flatten: a copy kernel
 *   of 0.0045 ms at 1 thread, 0.014 at 2, gone).
 * - A MatMul, Gemm or Conv whose output is read only by elementwise nodes of the same
 *   shape takes them as its epilogue, applied to the accumulator before the store; the
 *   epilogue goes on while its nodes' values are read only by later nodes of it, several
 *   of them or one (SiLU's x * sigmoid(x) reads x twice), and ends on a node whose value
 *   is the one stored. The fused kernel runs where the epilogue's last node was, when
 *   every other input of it is ready.
 * - Attention as PyTorch exports it, Softmax(scale * Q x KT [+ mask]) x V along the last
 *   axis, each value between read only by the next node, is one kernel (the P x V MatMul's;
 *   lower_attention.c) that never stores the scores whole. Its inputs are loaded whole,
 *   not inlined. Where its scratch per batch would pass ATTENTION_SCRATCH_MAX elements,
 *   the nodes run unfused.
 * - A Winograd conv as passes/layout.c writes it, WinogradInput -> MatMul (constant
 *   weights [16, Cin, Cout]) -> WinogradOutput, each value between read only by the next
 *   node, is one kernel (the WinogradOutput's, with its epilogue; lower_winograd.c) where
 *   the weights fit winograd_fused_weights (half the L2): it works through blocks of
 *   tiles, so the tiles and products it never stores whole stay in the core's cache. With
 *   larger weights, reading all of them again for every block costs more than the stores
 *   saved.
 * - A value that is a graph output, or has several readers, is materialized once (the
 *   cost rule that keeps recomputation bounded). One elementwise reader that reads it in
 *   several slots (x * x) counts as one: the value is inlined into each slot, and the code
 *   generator's common-subexpression elimination computes it once; at most
 *   FUSE_MAX_COPIES copies of a node per kernel expression, so x = x * x repeated cannot
 *   grow an expression exponentially.
 * - A chain of inlined nodes is at most FUSE_MAX_INLINE deep: every inlined node is one
 *   more level of the reader's expression tree, which the code generators walk
 *   recursively, so a model of a million chained Neg nodes must not become one expression
 *   a million deep (a stack overflow); past the limit the value is stored.
 * With fusion off (--no-fuse) every node keeps its own kernel: the same code generator
 * and schedules, for comparison.
 */
#include "passes/lower.h"

#include <stdlib.h>
#include <string.h>

/* Reads through lower_read, element by element, of input `slot` (so an inlined
 * producer is computed there); *many: each element is read more than once. A view
 * (lower_view) does when inlined unless it is a reshape that merges the last axes; as a
 * kernel of its own, a Transpose or Slice does (a reshape copies its input flat). */
static bool inlined_view(const fusion_plan *p, const ir_node *r) {
    return p->role[r->id] == FUSE_INLINE && !lower_scalar_rule(r);
}
static bool element_reader(const fusion_plan *p, const ir_node *r, int slot, bool *many) {
    *many = false;
    if (inlined_view(p, r))
        return slot == 0 && lower_view_reads_elements(r);
    if (r->op == IR_OP_TRANSPOSE || r->op == IR_OP_SLICE)
        return slot == 0;
    if (lower_scalar_rule(r)) { /* a map: once per output element, broadcast aside */
        const ir_value *v = r->inputs[slot];
        *many = ir_type_count(&v->type) != ir_type_count(&r->outputs[0]->type);
        return true;
    }
    *many = true;
    switch (r->op) {
    case IR_OP_CONV: case IR_OP_CONV_NCHWC: case IR_OP_MAX_POOL: case IR_OP_AVERAGE_POOL: case IR_OP_GLOBAL_AVERAGE_POOL:
    case IR_OP_GLOBAL_MAX_POOL: case IR_OP_REDUCE_SUM: case IR_OP_REDUCE_MEAN: case IR_OP_REDUCE_MAX:
    case IR_OP_REDUCE_MIN: case IR_OP_REDUCE_PROD: case IR_OP_REDUCE_L1: case IR_OP_REDUCE_L2:
    case IR_OP_REDUCE_SUM_SQUARE: case IR_OP_REDUCE_LOG_SUM: case IR_OP_REDUCE_LOG_SUM_EXP:
        *many = r->op != IR_OP_GLOBAL_AVERAGE_POOL && r->op != IR_OP_GLOBAL_MAX_POOL && r->op != IR_OP_REDUCE_SUM &&
                r->op != IR_OP_REDUCE_MEAN && r->op != IR_OP_REDUCE_MAX && r->op != IR_OP_REDUCE_MIN;
        return slot == 0;
    case IR_OP_MATMUL: case IR_OP_GEMM: return slot <= 1;
    default: return false;
    }
}

/* Ops whose scalar rule is a handful of arithmetic: cheap to recompute per read. */
static bool cheap(ir_op op) {
    switch (op) {
    case IR_OP_RELU: case IR_OP_LEAKY_RELU: case IR_OP_ADD: case IR_OP_SUB: case IR_OP_MUL: case IR_OP_NEG:
    case IR_OP_ABS: case IR_OP_MAX: case IR_OP_MIN: case IR_OP_SUM: case IR_OP_CLIP: case IR_OP_PRELU:
    case IR_OP_IDENTITY: case IR_OP_CAST: case IR_OP_CAST_LIKE: case IR_OP_WHERE: case IR_OP_NOT:
    case IR_OP_EQUAL: case IR_OP_LESS: case IR_OP_LESS_OR_EQUAL: case IR_OP_GREATER: case IR_OP_GREATER_OR_EQUAL:
    case IR_OP_AND: case IR_OP_OR: case IR_OP_XOR: case IR_OP_SIGN: case IR_OP_THRESHOLDED_RELU: case IR_OP_SHRINK:
    case IR_OP_HARD_SIGMOID: case IR_OP_HARD_SWISH:
    case IR_OP_TRANSPOSE: case IR_OP_SLICE: case IR_OP_RESHAPE: case IR_OP_FLATTEN: case IR_OP_SQUEEZE: case IR_OP_UNSQUEEZE:
        return true; /* views: an address computed, one load */
    default: return false;
    }
}

static bool same_shape(const kiln_tensor *a, const kiln_tensor *b) {
    return a->rank == b->rank && !memcmp(a->dims, b->dims, sizeof(int64_t) * (size_t)a->rank);
}

static bool anchor(ir_op op) {
    return op == IR_OP_CONV || op == IR_OP_CONV_NCHWC || op == IR_OP_WINOGRAD_OUTPUT || op == IR_OP_MATMUL ||
           op == IR_OP_GEMM;
}

enum { FUSE_MAX_INLINE = 32, FUSE_MAX_COPIES = 4 };

/* Whether input `slot` of r is a matrix product's A or a conv's input that it reads once
 * for each of three or more column pairs or channel blocks: the product loads A's element
 * of a row once per pair of output vectors (lower_nn.c), the blocked conv an input element
 * once per block of 16 output channels, so an inlined producer's arithmetic is redone that
 * many times, where the product's own step is one load for a multiply-add or two. ViT's
 * GELU tail ((erf + 1) x 0.5) inlined into its second MLP layer's A (N = 768): 74 GFLOP/s
 * there, 153-159 with the tail stored by a kernel of its own (0.30 ms, erf and all,
 * against 6.5 ms saved per layer). EfficientNet's squeeze-and-excitation x * scale inlined
 * into the 1x1 conv after it: 87-91 GFLOP/s on 672 -> 112 channels at 14 x 14; stored,
 * the whole model 8.2-9.5 -> 8.7-8.9 ms at 1 thread, 6.7 -> 5.6-6.6 at 2 (a noisy hour).
 * Views cost an address. */
static bool rereads_input(const ir_node *r, int slot) {
    const kiln_tensor *out = &r->outputs[0]->type;
    if (slot != 0 || out->rank < 1)
        return false;
    if (r->op == IR_OP_CONV || r->op == IR_OP_CONV_NCHWC) { /* an input channel feeds its group's outputs */
        int64_t channels = r->op == IR_OP_CONV_NCHWC && out->rank == 5 ? out->dims[1] * out->dims[4] : out->dims[1];
        int64_t group = ir_attr_int(r, "group");
        return out->rank >= 2 && (channels / (group > 0 ? group : 1) > 32 || channels < 0);
    }
    int64_t n = out->dims[out->rank - 1];
    return (r->op == IR_OP_MATMUL || r->op == IR_OP_GEMM) && (n > 64 || n < 0);
}

void fuse_plan_free(fusion_plan *p) {
    if (p->chain)
        for (int i = 0; i < p->node_ids; i++)
            free(p->chain[i]);
    if (p->attention)
        for (int i = 0; i < p->node_ids; i++)
            free(p->attention[i]);
    free(p->winograd), free(p->role), free(p->host), free(p->chain), free(p->chain_count), free(p->why), free(p->attention);
    *p = (fusion_plan){0};
}

typedef struct use {
    const ir_node *reader; /* the one reader, if count == 1 */
    int slot, count;
    int slots; /* how many of that reader's inputs it is (x * x: 2) */
    int last;  /* where its last reader is in the graph's order */
} use;

static bool one_reader(const use *uses, const ir_value *v, const ir_node *r) {
    return v && uses[v->id].count == 1 && uses[v->id].slots == 1 && uses[v->id].reader == r;
}

static const ir_node *made_by(const ir_value *v, ir_op op) {
    return v && v->producer && v->producer->op == op ? v->producer : NULL;
}

/* A float constant holding one element. */
static bool scalar_const(const ir_value *v, double *out) {
    const kiln_tensor *t = v ? v->init : NULL;
    if (!t || !t->data || ir_type_count(t) != 1 || (t->dtype != KILN_F32 && t->dtype != KILN_F64))
        return false;
    *out = t->dtype == KILN_F32 ? (double)((const float *)t->data)[0] : ((const double *)t->data)[0];
    return true;
}

/* Whether v is Q x KT, or that times (divided by) a scalar constant: the scores side of
 * the mask's Add. */
static bool scores_side(const ir_value *v) {
    const ir_node *n = v ? v->producer : NULL;
    double k;
    if (n && (n->op == IR_OP_MUL || n->op == IR_OP_DIV))
        for (int i = 0; i < 2; i++)
            if ((n->op == IR_OP_MUL || i == 1) && scalar_const(n->inputs[i], &k))
                return made_by(n->inputs[1 - i], IR_OP_MATMUL);
    return made_by(v, IR_OP_MATMUL);
}

static bool float_rank(const ir_value *v, kiln_dtype t, int rank) {
    return v->type.dtype == t && v->type.rank == rank;
}

/* Whether MatMul pv ends an attention pattern (fuse_attention) that one kernel can compute. */
static bool match_attention(const ir_node *pv, const use *uses, fuse_attention *a, const char **why) {
    *a = (fuse_attention){.scale_value = 1, .v = pv->inputs[1]};
    const ir_node *n = made_by(pv->inputs[0], IR_OP_SOFTMAX);
    if (!n || !one_reader(uses, pv->inputs[0], pv))
        return false;
    const kiln_tensor *p = &n->outputs[0]->type;
    int rank = p->rank;
    int64_t axis = ir_attr_int(n, "axis");
    if (rank < 2 || (axis != -1 && axis != rank - 1) || (p->dtype != KILN_F32 && p->dtype != KILN_F64))
        return false;
    a->softmax = n;
    const ir_value *x = n->inputs[0];
    if ((n = made_by(x, IR_OP_ADD)) && one_reader(uses, x, a->softmax)) { /* the mask */
        int s = scores_side(n->inputs[0]) ? 0 : 1;
        const ir_value *m = n->inputs[1 - s];
        if (!scores_side(n->inputs[s]) || !same_shape(&n->inputs[s]->type, p) || m->type.dtype != p->dtype ||
            m->type.rank > rank)
            return false;
        a->mask_add = n, a->mask = m, x = n->inputs[s];
    } else if (n) {
        return false;
    }
    const ir_node *reader = a->mask_add ? a->mask_add : a->softmax;
    if (!one_reader(uses, x, reader))
        return false;
    if ((n = x->producer) && (n->op == IR_OP_MUL || n->op == IR_OP_DIV)) { /* the scale */
        int c = n->op == IR_OP_DIV || scalar_const(n->inputs[1], &a->scale_value) ? 1 : 0;
        if (!scalar_const(n->inputs[c], &a->scale_value) || !one_reader(uses, n->inputs[1 - c], n))
            return false;
        if (n->op == IR_OP_DIV)
            a->scale_value = 1 / a->scale_value;
        a->scale = n, x = n->inputs[1 - c];
    }
    if (!(a->scores = made_by(x, IR_OP_MATMUL)))
        return false;
    a->q = a->scores->inputs[0], a->kt = a->scores->inputs[1];
    if (!float_rank(a->q, p->dtype, rank) || !float_rank(a->kt, p->dtype, rank) || !float_rank(a->v, p->dtype, rank))
        return false;
    const int64_t *q = a->q->type.dims, *kt = a->kt->type.dims, *v = a->v->type.dims;
    int64_t batch = 1;
    for (int d = 0; d < rank - 2; d++) {
        if (q[d] != p->dims[d] || kt[d] != p->dims[d] || v[d] != p->dims[d])
            return false; /* broadcast batch dims: left to the MatMuls */
        batch *= p->dims[d];
    }
    if (q[rank - 1] != kt[rank - 2] || v[rank - 2] != kt[rank - 1] || kt[rank - 1] == 0)
        return false;
    if (batch * attention_scratch(kt[rank - 1], v[rank - 1]) > ATTENTION_SCRATCH_MAX) {
        *why = "attention whose scratch per batch would be too large: its nodes run unfused";
        return false;
    }
    return true;
}

/* The epilogue of anchor g->nodes[at]: elementwise nodes of its shape, in graph order,
 * each reading a value the anchor or an earlier one of them made, up to the last node
 * where every value made before it has no reader outside the epilogue (nor is a graph
 * output). A value may have several readers inside: SiLU's x * sigmoid(x) and GELU's
 * x * 0.5 * (1 + erf(x / sqrt 2)) read the accumulator twice (EfficientNet's convs stored
 * x, ran Sigmoid as a kernel of its own and multiplied in the next conv's reads). The
 * number of nodes; at most `most`. */
static int epilogue(const ir_graph *g, const fusion_plan *p, const use *uses, int at, const ir_node **chain, int most) {
    const ir_node *a = g->nodes[at];
    const ir_value *made[FUSE_EPILOGUE_MAX + 1] = {a->outputs[0]};
    int inside[FUSE_EPILOGUE_MAX + 1] = {0}, n = 0, valid = 0; /* inside: readers of made[k] in the chain */
    int horizon = uses[made[0]->id].last; /* no node past the last reader of a made value reads one */
    if (most > FUSE_EPILOGUE_MAX)
        most = FUSE_EPILOGUE_MAX;
    for (int i = at + 1; i < g->node_count && i <= horizon && n < most; i++) {
        const ir_node *r = g->nodes[i];
        bool reads = false;
        for (int k = 0; k <= n; k++) {
            bool here = false;
            for (int j = 0; j < r->input_count; j++)
                here |= r->inputs[j] == made[k];
            inside[k] += here, reads |= here;
        }
        if (!reads)
            continue;
        if (!lower_scalar_rule(r) || r->output_count != 1 || !same_shape(&r->outputs[0]->type, &a->outputs[0]->type) ||
            p->role[r->id] != FUSE_OWN)
            break;
        chain[n++] = r, made[n] = r->outputs[0];
        horizon = uses[made[n]->id].last > horizon ? uses[made[n]->id].last : horizon;
        bool closed = true;
        for (int k = 0; k < n; k++)
            closed &= inside[k] == uses[made[k]->id].count;
        valid = closed ? n : valid;
    }
    return valid;
}

kiln_status fuse_plan(const ir_graph *g, const lower_options *o, fusion_plan *p, kiln_diag *d) {
    bool enabled = !o || !o->no_fuse;
    int n_ids = g->node_ids;
    *p = (fusion_plan){.node_ids = n_ids, .tuning = o ? o->tuning : NULL};
    p->role = calloc((size_t)n_ids + 1, sizeof *p->role);
    p->host = calloc((size_t)n_ids + 1, sizeof *p->host);
    p->chain = calloc((size_t)n_ids + 1, sizeof *p->chain);
    p->chain_count = calloc((size_t)n_ids + 1, sizeof *p->chain_count);
    p->why = calloc((size_t)n_ids + 1, sizeof *p->why);
    p->attention = calloc((size_t)n_ids + 1, sizeof *p->attention);
    p->winograd = calloc((size_t)n_ids + 1, sizeof *p->winograd);
    use *uses = calloc((size_t)g->value_ids + 1, sizeof *uses);
    if (!p->role || !p->host || !p->chain || !p->chain_count || !p->why || !p->attention || !p->winograd || !uses) {
        free(uses);
        fuse_plan_free(p);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; i < g->node_count; i++)
        for (int j = 0; j < g->nodes[i]->input_count; j++) {
            const ir_value *v = g->nodes[i]->inputs[j];
            if (v && uses[v->id].count && uses[v->id].reader == g->nodes[i])
                uses[v->id].slots++; /* the same reader again: still one reader */
            else if (v)
                uses[v->id] = (use){g->nodes[i], j, uses[v->id].count + 1, 1, i};
        }
    for (int i = 0; i < g->output_count; i++)
        uses[g->outputs[i]->id].count += 2; /* stored for the caller, whatever reads it */
    if (!enabled) {
        for (int i = 0; i < g->node_count; i++)
            p->why[g->nodes[i]->id] = "fusion is off (--no-fuse)";
        free(uses);
        return KILN_OK;
    }
    /* attention: the P x V MatMul's kernel computes the scores and the softmax */
    for (int i = 0; i < g->node_count; i++) {
        const ir_node *n = g->nodes[i];
        fuse_attention a;
        const char *why = NULL;
        if (n->op != IR_OP_MATMUL || !match_attention(n, uses, &a, &why)) {
            if (why)
                p->why[n->id] = why;
            continue;
        }
        if (!(p->attention[n->id] = malloc(sizeof a))) {
            free(uses);
            fuse_plan_free(p);
            return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
        }
        *p->attention[n->id] = a;
        const ir_node *part[] = {a.scores, a.scale, a.mask_add, a.softmax};
        for (int k = 0; k < (int)ARRAY_LEN(part); k++)
            if (part[k])
                p->role[part[k]->id] = FUSE_ATTENTION, p->host[part[k]->id] = n;
    }
    /* Winograd: the WinogradOutput's kernel computes the transforms and the products */
    for (int i = 0; i < g->node_count; i++) {
        const ir_node *n = g->nodes[i], *mm, *in;
        if (n->op != IR_OP_WINOGRAD_OUTPUT || !(mm = made_by(n->inputs[0], IR_OP_MATMUL)) ||
            !(in = made_by(mm->inputs[0], IR_OP_WINOGRAD_INPUT)) || !one_reader(uses, mm->outputs[0], n) ||
            !one_reader(uses, in->outputs[0], mm) || !mm->inputs[1]->init || mm->inputs[1]->init->rank != 3 || mm->inputs[1]->init->dims[0] != 16 ||
            n->outputs[0]->type.dtype != KILN_F32 || in->inputs[0]->type.dtype != KILN_F32)
            continue;
        if ((int64_t)kiln_tensor_bytes(mm->inputs[1]->init) > winograd_fused_weights(lower_l2_bytes(o))) { /* said of the first of the three */
            p->why[in->id] = "Winograd with weights too large to stay in cache for each block of tiles: its "
                            "transforms and products run as kernels of their own";
            continue;
        }
        p->winograd[n->id] = in;
        p->role[in->id] = p->role[mm->id] = FUSE_WINOGRAD, p->host[in->id] = p->host[mm->id] = n;
    }
    /* epilogues: from each anchor, the chain of single elementwise readers of its shape */
    for (int i = 0; i < g->node_count; i++) {
        const ir_node *a = g->nodes[i];
        if (!anchor(a->op) || a->output_count != 1 || p->role[a->id] != FUSE_OWN)
            continue;
        const ir_node *chain[FUSE_EPILOGUE_MAX];
        int n = epilogue(g, p, uses, i, chain, (int)ARRAY_LEN(chain));
        if (!n) {
            const ir_value *cur = a->outputs[0];
            const ir_node *r = uses[cur->id].reader;
            p->why[a->id] = uses[cur->id].count != 1 ? "no epilogue: its output is read by other than elementwise "
                                                      "nodes of its shape, or is a graph output"
                            : !lower_scalar_rule(r) ? "no epilogue: its reader is not elementwise"
                                                    : "no epilogue: its reader's output has another shape";
            continue;
        }
        if (!(p->chain[a->id] = malloc(sizeof(const ir_node *) * (size_t)n))) {
            free(uses);
            fuse_plan_free(p);
            return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
        }
        memcpy(p->chain[a->id], chain, sizeof(const ir_node *) * (size_t)n);
        p->chain_count[a->id] = n;
        for (int k = 0; k < n; k++)
            p->role[chain[k]->id] = FUSE_EPILOGUE, p->host[chain[k]->id] = a;
    }
    /* inlining: an elementwise node into its single element reader, readers first (so a
     * node inlined into an inlined reader knows how often that reader is computed) */
    bool *repeated = calloc((size_t)n_ids + 1, sizeof *repeated); /* inlined, computed several times per element */
    int *depth = calloc((size_t)n_ids + 1, sizeof *depth); /* inlined: how deep in its kernel's expression */
    int *copies = calloc((size_t)n_ids + 1, sizeof *copies); /* inlined: copies of it in its kernel's expression */
    bool *flat = calloc((size_t)n_ids + 1, sizeof *flat); /* an inlined reshape read by flat index */
    bool *into_rows = calloc((size_t)n_ids + 1, sizeof *into_rows); /* an inlined view that rereads_input's reader reads */
    if (!repeated || !depth || !copies || !flat || !into_rows) {
        free(uses), free(repeated), free(depth), free(copies), free(flat), free(into_rows);
        fuse_plan_free(p);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    for (int i = g->node_count - 1; i >= 0; i--) {
        const ir_node *n = g->nodes[i];
        if (p->role[n->id] != FUSE_OWN || p->chain[n->id])
            continue;
        if ((!lower_scalar_rule(n) && !lower_view(n)) || n->output_count != 1) {
            if (!p->why[n->id])
                p->why[n->id] = ir_op_table[n->op].kind == IR_KIND_ELTWISE ? "no scalar rule that runs inside another kernel"
                                : n->op == IR_OP_TRANSPOSE ? "a transpose that moves the contiguous axis: a tiled kernel of its own"
                                : n->op == IR_OP_SLICE ? "a slice with steps on the contiguous axis: a kernel of its own"
                                                       : "not elementwise: a kernel of its own";
            continue;
        }
        const use *u = &uses[n->outputs[0]->id];
        /* a reshape that merges the last axes reads its input flat, as does one read flat:
         * a reshape under it is one more flat index (the same), anything else is stored */
        bool flat_reader = u->count == 1 && u->slot == 0 && inlined_view(p, u->reader) &&
                           (flat[u->reader->id] || !lower_view_reads_elements(u->reader));
        bool many = false;
        if (u->count == 0)
            p->why[n->id] = "nothing reads it";
        else if (u->count != 1)
            p->why[n->id] = "read more than once, or a graph output: stored once rather than recomputed";
        else if (p->role[u->reader->id] == FUSE_WINOGRAD)
            p->why[n->id] = "its reader is a Winograd conv's input transform, which loads it whole";
        else if (p->role[u->reader->id] == FUSE_ATTENTION || p->attention[u->reader->id])
            p->why[n->id] = "its reader is an attention kernel, which loads it whole";
        else if (flat_reader && !lower_is_reshape(n->op))
            p->why[n->id] = "its reader is a reshape that merges the last axes, computed where it is read from a "
                            "stored input";
        else if (!flat_reader && !element_reader(p, u->reader, u->slot, &many))
            p->why[n->id] = "its reader loads it whole (not element by element)";
        else if ((many || repeated[u->reader->id]) && !cheap(n->op))
            p->why[n->id] = "its reader reads each element many times: recomputing it would cost more than storing it";
        else if ((rereads_input(u->reader, u->slot) || into_rows[u->reader->id]) && !lower_view(n))
            p->why[n->id] = "its reader (a matrix product's A, a conv's input) reads each element once per 32 output "
                            "columns or 16 channels: arithmetic redone there costs more than one store";
        else if (depth[u->reader->id] >= FUSE_MAX_INLINE)
            p->why[n->id] = "the chain inlined into its reader is as deep as allowed: stored";
        else if (u->slots > 1 && (!lower_scalar_rule(u->reader) || (copies[u->reader->id] ? copies[u->reader->id] : 1) * u->slots > FUSE_MAX_COPIES))
            p->why[n->id] = "its reader reads it in several places, and more copies of it would grow the kernel: stored";
        else
            p->role[n->id] = FUSE_INLINE, flat[n->id] = flat_reader, repeated[n->id] = many || repeated[u->reader->id],
            into_rows[n->id] = rereads_input(u->reader, u->slot) || into_rows[u->reader->id],
            depth[n->id] = depth[u->reader->id] + 1, copies[n->id] = (copies[u->reader->id] ? copies[u->reader->id] : 1) * u->slots;
    }
    free(uses), free(repeated), free(depth), free(copies), free(flat), free(into_rows);
    return KILN_OK;
}

/* The nodes inlined into reads of n's inputs, depth first. */
static void print_inlined(const fusion_plan *p, const ir_node *n, FILE *f) {
    for (int j = 0; j < n->input_count; j++) {
        const ir_value *v = n->inputs[j];
        bool again = false; /* x * x: listed once */
        for (int k = 0; k < j && !again; k++)
            again = n->inputs[k] == v;
        if (!v || again || !v->producer || p->role[v->producer->id] != FUSE_INLINE)
            continue;
        print_inlined(p, v->producer, f);
        fprintf(f, "    inlined   %s '%s'\n", ir_op_table[v->producer->op].name, v->producer->name);
    }
}

void fuse_print(const lir_module *m, const fusion_plan *p, FILE *f) {
    const ir_graph *g = m->graph;
    fprintf(f, "%d kernels for %d nodes\n", m->kernel_count, g->node_count);
    for (int k = 0; k < m->kernel_count; k++) {
        const ir_node *n = m->kernels[k]->origin;
        fprintf(f, "kernel %s\n", m->kernels[k]->name);
        const fuse_attention *a = p->attention[n->id];
        const ir_node *part[] = {a ? a->scores : NULL, a ? a->scale : NULL, a ? a->mask_add : NULL, a ? a->softmax : NULL};
        for (int i = 0; i < (int)ARRAY_LEN(part); i++)
            if (part[i])
                fprintf(f, "    attention %s '%s'\n", ir_op_table[part[i]->op].name, part[i]->name);
        const ir_node *w = p->winograd[n->id];
        if (w)
            fprintf(f, "    winograd  %s '%s'\n    winograd  %s '%s'\n", ir_op_table[w->op].name, w->name,
                    ir_op_table[n->inputs[0]->producer->op].name, n->inputs[0]->producer->name);
        print_inlined(p, n, f);
        fprintf(f, "    %-9s %s '%s'\n", p->chain[n->id] ? "anchor" : "node", ir_op_table[n->op].name, n->name);
        for (int e = 0; e < p->chain_count[n->id]; e++) {
            const ir_node *x = p->chain[n->id][e];
            print_inlined(p, x, f);
            fprintf(f, "    epilogue  %s '%s'\n", ir_op_table[x->op].name, x->name);
        }
    }
    fputs("left alone:\n", f);
    for (int i = 0; i < g->node_count; i++) {
        const ir_node *n = g->nodes[i];
        if (p->role[n->id] == FUSE_OWN && p->why[n->id])
            fprintf(f, "    %s '%s': %s\n", ir_op_table[n->op].name, n->name, p->why[n->id]);
    }
}

static void dot_member(const fusion_plan *p, const ir_node *n, FILE *f) {
    fprintf(f, "    n%d [label=\"%s\\n%s\"];\n", n->id, ir_op_table[n->op].name, n->name);
    for (int j = 0; j < n->input_count; j++) {
        const ir_value *v = n->inputs[j];
        if (v && v->producer && p->role[v->producer->id] == FUSE_INLINE)
            dot_member(p, v->producer, f);
    }
}

void fuse_dot(const lir_module *m, const fusion_plan *p, FILE *f) {
    const ir_graph *g = m->graph;
    fputs("digraph kiln {\n  node [shape=box, fontname=\"monospace\"];\n", f);
    for (int k = 0; k < m->kernel_count; k++) {
        const ir_node *n = m->kernels[k]->origin;
        fprintf(f, "  subgraph cluster_%d {\n    label=\"%s\";\n", k, m->kernels[k]->name);
        const fuse_attention *a = p->attention[n->id];
        const ir_node *part[] = {a ? a->scores : NULL, a ? a->scale : NULL, a ? a->mask_add : NULL, a ? a->softmax : NULL};
        for (int i = 0; i < (int)ARRAY_LEN(part); i++)
            if (part[i])
                dot_member(p, part[i], f);
        if (p->winograd[n->id])
            dot_member(p, p->winograd[n->id], f), dot_member(p, n->inputs[0]->producer, f);
        dot_member(p, n, f);
        for (int e = 0; e < p->chain_count[n->id]; e++)
            dot_member(p, p->chain[n->id][e], f);
        fputs("  }\n", f);
    }
    for (int i = 0; i < g->node_count; i++)
        for (int j = 0; j < g->nodes[i]->input_count; j++) {
            const ir_value *v = g->nodes[i]->inputs[j];
            if (v && v->producer)
                fprintf(f, "  n%d -> n%d;\n", v->producer->id, g->nodes[i]->id);
        }
    fputs("}\n", f);
}
