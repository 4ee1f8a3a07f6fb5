/*
 * grad_index.c — gradient rules of data movement and indexing (see grad_rules.h): what
 * a gather reads, its gradient scatters back (and the reverse); masks and permutations
 * apply to dy again or undo themselves; Einsum's gradient is another Einsum; Resize's
 * applies its per-axis weights transposed; the likelihood losses' gradients are one-hots
 * weighted per sample.
 */
#include "passes/einsum.h"
#include "passes/grad_rules.h"
#include "passes/shape.h"

#include <stdlib.h>
#include <string.h>

/* ---- splitting, tiling, gathering ----------------------------------------------------------- */

/* Split: the outputs' gradients concatenated back (zeros for an output none flows to) */
kiln_status grad_split(grad_ctx *c) {
    const ir_node *n = c->node;
    ir_value *parts[IR_VARIADIC];
    for (int i = 0; i < n->output_count; i++)
        parts[i] = c->dy[i] ? c->dy[i] : grad_zeros_like(c, Y(i));
    int64_t axis = ir_attr_int(n, "axis");
    ir_node *cat = gb_begin(c, IR_OP_CONCAT, n->output_count, parts);
    gb_attr_int(c, cat, "axis", axis < 0 ? axis + X(0)->type.rank : axis);
    c->dx[0] = gb_done(c, cat);
    return c->st;
}

/* Tile (constant repeats): dy as [r0, d0, r1, d1, ...], summed over the r axes */
kiln_status grad_tile(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type, *reps = X(1)->init;
    if (!reps || 2 * x->rank > KILN_MAX_RANK)
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "Tile is differentiated for constant repeats up to rank %d",
                       KILN_MAX_RANK / 2), c->st;
    kiln_tensor split = {.dtype = x->dtype, .rank = 2 * x->rank};
    int64_t axes[KILN_MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        split.dims[2 * i] = ir_tensor_get_int(reps, i), split.dims[2 * i + 1] = x->dims[i];
        axes[i] = 2 * i;
    }
    c->dx[0] = gb_reduce(c, IR_OP_REDUCE_SUM, gb_reshape(c, DY, &split), x->rank, axes, false);
    return c->st;
}

/* GatherElements: dy added back where each element came from */
kiln_status grad_gather_elements(grad_ctx *c) {
    ir_node *sc = gb_begin(c, IR_OP_SCATTER_ELEMENTS, 3, (ir_value *[]){grad_zeros_like(c, X(0)), X(1), DY});
    gb_attr_int(c, sc, "axis", ir_attr_int(c->node, "axis"));
    gb_attr_string(c, sc, "reduction", "add");
    c->dx[0] = gb_done(c, sc);
    return c->st;
}

/* ---- more gathers and scatters ------------------------------------------------------------ */

/* Gather's adjoint along axis a: with the gathered axis moved to the front and dy's index
 * dimensions first, a ScatterND (reduction add) of dy into zeros at idx, moved back.
 * x: the gathered tensor's type; idx: its indices (any rank, negatives allowed). */
static ir_value *gather_adjoint(grad_ctx *c, ir_value *dy, ir_value *idx, int64_t a, const kiln_tensor *x) {
    if (c->st)
        return NULL;
    const kiln_tensor *it = &idx->type, *y = &dy->type;
    int q = it->rank, r = x->rank;
    int64_t to_front[KILN_MAX_RANK], dy_perm[KILN_MAX_RANK], back[KILN_MAX_RANK];
    to_front[0] = a; /* x's axes with a first: [a, 0..a-1, a+1..r-1] */
    for (int i = 0, k = 1; i < r; i++)
        if (i != a)
            to_front[k++] = i;
    for (int i = 0; i < r; i++)
        back[to_front[i]] = i;
    int k = 0; /* dy's axes [pre (a), idx (q), post] to [idx, pre, post] */
    for (int i = 0; i < q; i++)
        dy_perm[k++] = a + i;
    for (int i = 0; i < a; i++)
        dy_perm[k++] = i;
    for (int i = (int)a + q; i < y->rank; i++)
        dy_perm[k++] = i;
    ir_value *dyt = gb_transpose(c, dy, dy_perm);
    kiln_tensor front = {.dtype = x->dtype, .rank = r};
    for (int i = 0; i < r; i++)
        front.dims[i] = x->dims[to_front[i]];
    kiln_tensor idx1 = *it;
    idx1.rank = q + 1, idx1.dims[q] = 1;
    ir_value *zeros = gb2(c, IR_OP_EXPAND, gb_scalar(c, x->dtype, 0), gb_i64s(c, r, front.dims));
    ir_node *sc = gb_begin(c, IR_OP_SCATTER_ND, 3, (ir_value *[]){zeros, gb_reshape(c, idx, &idx1), dyt});
    gb_attr_string(c, sc, "reduction", "add");
    return gb_transpose(c, gb_done(c, sc), back);
}

/* Gather along axis a, y = x[pre, idx, post] */
kiln_status grad_gather(grad_ctx *c) {
    int64_t a = ir_attr_int(c->node, "axis");
    c->dx[0] = gather_adjoint(c, DY, X(1), a < 0 ? a + X(0)->type.rank : a, &X(0)->type);
    return c->st;
}

/* GatherND: dy added back at each index tuple (ScatterND, reduction add). With batch_dims
 * b, the tuples gain the b batch coordinates in front, so the scatter addresses the whole
 * tensor. */
kiln_status grad_gather_nd(grad_ctx *c) {
    ir_value *idx = X(1);
    int64_t b = ir_attr_int(c->node, "batch_dims");
    const kiln_tensor *it = &idx->type;
    if (b > 0) {
        kiln_tensor coords = {.dtype = it->dtype, .rank = it->rank};
        memcpy(coords.dims, it->dims, sizeof(int64_t) * (size_t)it->rank);
        coords.dims[it->rank - 1] = b;
        int64_t n = ir_type_count(&coords), pos[KILN_MAX_RANK];
        double *v = malloc(sizeof *v * (size_t)(n + 1));
        if (!v)
            return gb_fail(c, KILN_ERR_OOM, "out of memory"), c->st;
        for (int64_t i = 0; i < n; i++) { /* the coordinate of batch axis (i % b) */
            int64_t rest = i / b;
            for (int d = it->rank - 2; d >= 0; d--)
                pos[d] = rest % it->dims[d], rest /= it->dims[d];
            v[i] = (double)pos[i % b];
        }
        ir_value *front = gb_tensor(c, it->dtype, coords.rank, coords.dims, v);
        free(v);
        ir_node *cat = gb_begin(c, IR_OP_CONCAT, 2, (ir_value *[]){front, idx});
        gb_attr_int(c, cat, "axis", it->rank - 1);
        idx = gb_done(c, cat);
    }
    ir_node *sc = gb_begin(c, IR_OP_SCATTER_ND, 3, (ir_value *[]){grad_zeros_like(c, X(0)), idx, DY});
    gb_attr_string(c, sc, "reduction", "add");
    c->dx[0] = gb_done(c, sc);
    return c->st;
}

/* ScatterND and ScatterElements (reduction none or add). The data's gradient is dy, with
 * zeros where `none` overwrote it; the updates' is dy gathered at their indices. */
static kiln_status scatter(grad_ctx *c, ir_op scatter_op, ir_op gather_op) {
    const char *reduction = ir_attr_string(c->node, "reduction");
    bool add = !strcmp(reduction, "add");
    if (!add && strcmp(reduction, "none"))
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "%s is differentiated with reduction none or add, not %s",
                       ir_op_table[c->node->op].name, reduction), c->st;
    bool elements = scatter_op == IR_OP_SCATTER_ELEMENTS;
    if (c->need[0] && add)
        c->dx[0] = DY;
    else if (c->need[0]) {
        ir_node *sc = gb_begin(c, scatter_op, 3, (ir_value *[]){DY, X(1), grad_zeros_like(c, X(2))});
        if (elements)
            gb_attr_int(c, sc, "axis", ir_attr_int(c->node, "axis"));
        c->dx[0] = gb_done(c, sc);
    }
    if (c->need[2]) {
        ir_node *g = gb_begin(c, gather_op, 2, (ir_value *[]){DY, X(1)});
        if (elements)
            gb_attr_int(c, g, "axis", ir_attr_int(c->node, "axis"));
        c->dx[2] = gb_done(c, g);
    }
    return c->st;
}

kiln_status grad_scatter_nd(grad_ctx *c) { return scatter(c, IR_OP_SCATTER_ND, IR_OP_GATHER_ND); }
kiln_status grad_scatter_elements(grad_ctx *c) { return scatter(c, IR_OP_SCATTER_ELEMENTS, IR_OP_GATHER_ELEMENTS); }

/* TopK: the values' gradient goes back to where each came from (the Indices output) */
kiln_status grad_topk(grad_ctx *c) {
    if (!DY)
        return c->st;
    ir_node *sc = gb_begin(c, IR_OP_SCATTER_ELEMENTS, 3, (ir_value *[]){grad_zeros_like(c, X(0)), Y(1), DY});
    gb_attr_int(c, sc, "axis", ir_attr_int(c->node, "axis"));
    gb_attr_string(c, sc, "reduction", "add");
    c->dx[0] = gb_done(c, sc);
    return c->st;
}

/* Compress by a constant condition: a Gather of the kept positions, so its adjoint */
kiln_status grad_compress(grad_ctx *c) {
    const kiln_tensor *cond = X(1)->init, *x = &X(0)->type;
    if (!cond)
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "Compress is differentiated with a constant condition"), c->st;
    const ir_attr *axis = ir_node_attr(c->node, "axis");
    int64_t n = kiln_tensor_count(cond), kept = 0;
    int64_t *at = malloc(sizeof *at * (size_t)(n + 1));
    if (!at)
        return gb_fail(c, KILN_ERR_OOM, "out of memory"), c->st;
    for (int64_t i = 0; i < n; i++)
        if (ir_tensor_get(cond, i) != 0)
            at[kept++] = i;
    ir_value *idx = gb_i64s(c, (int)kept, at);
    free(at);
    if (axis) {
        int64_t a = axis->i < 0 ? axis->i + x->rank : axis->i;
        c->dx[0] = gather_adjoint(c, DY, idx, a, x);
    } else {
        kiln_tensor flat = {.dtype = x->dtype, .rank = 1, .dims = {ir_type_count(x)}};
        c->dx[0] = gb_reshape(c, gather_adjoint(c, DY, idx, 0, &flat), x);
    }
    return c->st;
}

/* MaxUnpool puts x[i] at the flat output position I[i]: dx = dy (flattened) at I */
kiln_status grad_max_unpool(grad_ctx *c) {
    kiln_tensor flat = {.dtype = Y(0)->type.dtype, .rank = 1, .dims = {ir_type_count(&Y(0)->type)}};
    c->dx[0] = gb2(c, IR_OP_GATHER, gb_reshape(c, DY, &flat), X(1));
    return c->st;
}

/* ---- masks and permutations: the same op (or its inverse) on dy ----------------------------- */

/* Trilu keeps a triangle: dy's same triangle */
kiln_status grad_trilu(grad_ctx *c) {
    int count = c->node->input_count > 1 && X(1) ? 2 : 1;
    ir_node *t = gb_begin(c, IR_OP_TRILU, count, (ir_value *[]){DY, count > 1 ? X(1) : NULL});
    gb_attr_int(c, t, "upper", ir_attr_int(c->node, "upper"));
    c->dx[0] = gb_done(c, t);
    return c->st;
}

/* ReverseSequence is its own inverse */
kiln_status grad_reverse_sequence(grad_ctx *c) {
    ir_node *r = gb_begin(c, IR_OP_REVERSE_SEQUENCE, 2, (ir_value *[]){DY, X(1)});
    gb_attr_int(c, r, "batch_axis", ir_attr_int(c->node, "batch_axis"));
    gb_attr_int(c, r, "time_axis", ir_attr_int(c->node, "time_axis"));
    c->dx[0] = gb_done(c, r);
    return c->st;
}

/* y_i = sum over j <= i (j < i: exclusive) of x_j, so dx_j = sum over i >= j (i > j) of dy_i:
 * the same CumSum run the other way */
kiln_status grad_cumsum(grad_ctx *c) {
    ir_node *s = gb_begin(c, IR_OP_CUMSUM, 2, (ir_value *[]){DY, X(1)});
    gb_attr_int(c, s, "exclusive", ir_attr_int(c->node, "exclusive"));
    gb_attr_int(c, s, "reverse", !ir_attr_int(c->node, "reverse"));
    c->dx[0] = gb_done(c, s);
    return c->st;
}

/* DepthToSpace and SpaceToDepth are y = reshape(transpose(reshape(x, view), perm)): dx
 * undoes the three steps (the ONNX definitions give view and perm). */
kiln_status grad_depth_space(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type;
    if (x->rank != 4)
        return gb_fail(c, KILN_ERR_INTERNAL, "expected a rank-4 input"), c->st;
    int64_t b = ir_attr_int(c->node, "blocksize"), n = x->dims[0], ch = x->dims[1], h = x->dims[2], w = x->dims[3];
    kiln_tensor view = {.dtype = x->dtype, .rank = 6};
    int64_t perm[6];
    if (c->node->op == IR_OP_SPACE_TO_DEPTH) {
        memcpy(view.dims, (int64_t[]){n, ch, h / b, b, w / b, b}, sizeof perm);
        memcpy(perm, (int64_t[]){0, 3, 5, 1, 2, 4}, sizeof perm);
    } else if (!strcmp(ir_attr_string(c->node, "mode"), "CRD")) {
        memcpy(view.dims, (int64_t[]){n, ch / (b * b), b, b, h, w}, sizeof perm);
        memcpy(perm, (int64_t[]){0, 1, 4, 2, 5, 3}, sizeof perm);
    } else {
        memcpy(view.dims, (int64_t[]){n, b, b, ch / (b * b), h, w}, sizeof perm);
        memcpy(perm, (int64_t[]){0, 3, 4, 1, 5, 2}, sizeof perm);
    }
    kiln_tensor moved = view;
    int64_t inverse[6];
    for (int i = 0; i < 6; i++)
        moved.dims[i] = view.dims[perm[i]], inverse[perm[i]] = i;
    c->dx[0] = gb_reshape(c, gb_transpose(c, gb_reshape(c, DY, &moved), inverse), x);
    return c->st;
}

/* ---- Einsum ---------------------------------------------------------------------------------- */

/* The gradient of operand i is an Einsum of dy with the other operands, onto operand i's
 * labels: "out,others->labels_i". Labels of operand i found nowhere else were summed
 * away; dx is constant along them (a reshape and Expand). Operands with a repeated label
 * (a diagonal) or an ellipsis axis broadcast from size 1 are refused by name. */
kiln_status grad_einsum(grad_ctx *c) {
    const ir_node *n = c->node;
    einsum_spec s;
    const kiln_tensor *in[IR_VARIADIC];
    shape_ctx sc = grad_shape_ctx(c, in);
    if (n->input_count >= EINSUM_OPERANDS || einsum_parse(&sc, &s))
        return gb_fail(c, KILN_ERR_INTERNAL, "the equation no longer parses"), c->st;
    /* each label used (letters and the ellipsis's axes) gets a letter of its own */
    char letter[EINSUM_LABELS] = {0};
    int used = 0;
    for (int i = 0; i <= s.operand_count; i++)
        for (int k = 0; k < (i < s.operand_count ? s.rank[i] : s.out_rank); k++) {
            int l = i < s.operand_count ? s.label[i][k] : s.out_label[k];
            if (!letter[l] && used < 52)
                letter[l] = (char)(used < 26 ? 'a' + used : 'A' + used - 26), used++;
            else if (!letter[l])
                return gb_fail(c, KILN_ERR_UNSUPPORTED, "Einsum with more than 52 labels is not differentiated"), c->st;
        }
    for (int i = 0; i < s.operand_count; i++) {
        if (!c->need[i])
            continue;
        bool elsewhere[EINSUM_LABELS] = {0}, seen[EINSUM_LABELS] = {0};
        for (int k = 0; k < s.out_rank; k++)
            elsewhere[s.out_label[k]] = true;
        for (int j = 0; j < s.operand_count; j++)
            for (int k = 0; j != i && k < s.rank[j]; k++)
                elsewhere[s.label[j][k]] = true;
        char eq[4 * EINSUM_OPERANDS * (KILN_MAX_RANK + 1) + 16];
        int len = 0;
        for (int k = 0; k < s.out_rank; k++)
            eq[len++] = letter[s.out_label[k]];
        ir_value *ops[EINSUM_OPERANDS + 1];
        int count = 0;
        ops[count++] = DY;
        for (int j = 0; j < s.operand_count; j++) {
            if (j == i)
                continue;
            eq[len++] = ',';
            for (int k = 0; k < s.rank[j]; k++)
                eq[len++] = letter[s.label[j][k]];
            ops[count++] = X(j);
        }
        eq[len++] = '-', eq[len++] = '>';
        kiln_tensor kept = X(i)->type;
        for (int k = 0; k < s.rank[i]; k++) {
            int l = s.label[i][k];
            if (seen[l] || X(i)->type.dims[k] != s.size[l])
                return gb_fail(c, KILN_ERR_UNSUPPORTED, "Einsum is not differentiated for operand %d: it %s", i,
                               seen[l] ? "repeats a label (a diagonal)" : "broadcasts an ellipsis axis"), c->st;
            seen[l] = true;
            if (elsewhere[l])
                eq[len++] = letter[l];
            else
                kept.dims[k] = 1;
        }
        eq[len] = 0;
        ir_node *e = gb_begin(c, IR_OP_EINSUM, count, ops);
        gb_attr_string(c, e, "equation", eq);
        ir_value *r = gb_reshape(c, gb_done(c, e), &kept);
        c->dx[i] = gb2(c, IR_OP_EXPAND, r, gb_i64s(c, X(i)->type.rank, X(i)->type.dims));
    }
    return c->st;
}

/* ---- the likelihood losses ----------------------------------------------------------------- */

/* What the negative log-likelihood's gradients share, for logp [N, C, D...] and target
 * [N, D...] (the sample's class weight w, 0 for ignore_index; reduction none, sum or mean
 * over the sum of the weights W). */
typedef struct nll_parts {
    ir_value *onehot; /* the targets as [N, C, D...] one-hots (an ignored one reads class 0) */
    ir_value *keep;   /* [N, D...]: 1, or 0 for ignored targets */
    ir_value *scale;  /* [N, D...] or a scalar: dloss per element (/ W for the mean) */
    ir_value *g;      /* [N, 1, D...]: w * scale, -dlogp at the target class */
} nll_parts;

static nll_parts nll_grad_parts(grad_ctx *c, const kiln_tensor *x, ir_value *target, ir_value *weight, ir_value *dloss) {
    nll_parts p = {0};
    const ir_attr *ignore = ir_node_attr(c->node, "ignore_index");
    kiln_dtype dt = x->dtype, it = target->type.dtype;
    ir_value *t = target, *ones = gb2(c, IR_OP_EXPAND, gb_scalar(c, dt, 1), gb_i64s(c, target->type.rank, target->type.dims));
    p.keep = ones;
    if (ignore) { /* an ignored target reads class 0, then weighs 0 */
        ir_value *valid = gb1(c, IR_OP_NOT, gb2(c, IR_OP_EQUAL, target, gb_scalar(c, it, (double)ignore->i)));
        t = gb3(c, IR_OP_WHERE, valid, target, gb_scalar(c, it, 0));
        p.keep = gb3(c, IR_OP_WHERE, valid, ones, gb_scalar(c, dt, 0));
    }
    ir_value *w = weight ? gb2(c, IR_OP_MUL, gb2(c, IR_OP_GATHER, weight, t), p.keep) : p.keep;
    p.scale = dloss;
    if (!strcmp(ir_attr_string(c->node, "reduction"), "mean"))
        p.scale = gb2(c, IR_OP_DIV, dloss, gb_reduce(c, IR_OP_REDUCE_SUM, w, -1, NULL, false));
    int64_t classes = x->dims[1], axis1 = 1;
    const double off_on[2] = {0, 1};
    ir_node *oh = gb_begin(c, IR_OP_ONE_HOT, 3, (ir_value *[]){t, gb_i64s(c, 1, &classes), gb_floats(c, dt, 2, off_on)});
    gb_attr_int(c, oh, "axis", 1);
    p.onehot = gb_done(c, oh);
    ir_node *u = gb_begin(c, IR_OP_UNSQUEEZE, 2, (ir_value *[]){gb2(c, IR_OP_MUL, w, p.scale), gb_i64s(c, 1, &axis1)});
    p.g = gb_done(c, u);
    return p;
}

/* The class weights' gradient: loss element i is -w[t_i] logp[i, t_i] (over W for the
 * mean, which also moves W: -(logp[i, t_i] + loss) / W per element), summed per class. */
static ir_value *nll_weight_grad(grad_ctx *c, const nll_parts *p, ir_value *logp) {
    int64_t axis1 = 1, others[KILN_MAX_RANK];
    int no = 0;
    ir_value *picked = gb_reduce(c, IR_OP_REDUCE_SUM, gb2(c, IR_OP_MUL, p->onehot, logp), 1, &axis1, false);
    if (!strcmp(ir_attr_string(c->node, "reduction"), "mean"))
        picked = gb2(c, IR_OP_ADD, picked, Y(0));
    ir_value *q = gb1(c, IR_OP_NEG, gb2(c, IR_OP_MUL, gb2(c, IR_OP_MUL, picked, p->scale), p->keep));
    ir_node *u = gb_begin(c, IR_OP_UNSQUEEZE, 2, (ir_value *[]){q, gb_i64s(c, 1, &axis1)});
    for (int i = 0; i < logp->type.rank; i++)
        if (i != 1)
            others[no++] = i;
    return gb_reduce(c, IR_OP_REDUCE_SUM, gb2(c, IR_OP_MUL, p->onehot, gb_done(c, u)), no, others, false);
}

/* NegativeLogLikelihoodLoss(logp [N, C, D...], target [N, D...], weight [C]?):
 * dlogp = -onehot(target) * w * scale */
kiln_status grad_nll_loss(grad_ctx *c) {
    ir_value *w = c->node->input_count > 2 ? X(2) : NULL;
    nll_parts p = nll_grad_parts(c, &X(0)->type, X(1), w, DY);
    if (c->need[0])
        c->dx[0] = gb1(c, IR_OP_NEG, gb2(c, IR_OP_MUL, p.onehot, p.g));
    if (w && c->need[2])
        c->dx[2] = nll_weight_grad(c, &p, X(0));
    return c->st;
}

/* SoftmaxCrossEntropyLoss = NLL of log_softmax over axis 1: through the loss,
 * dx = (softmax(x) - onehot) * w * scale; through the log_prob output (if it has a
 * gradient g), dx += g - softmax(x) * sum(g) over the classes. */
kiln_status grad_softmax_cross_entropy(grad_ctx *c) {
    const ir_node *n = c->node;
    ir_value *w = n->input_count > 2 ? X(2) : NULL;
    ir_node *sm = gb_begin(c, IR_OP_SOFTMAX, 1, (ir_value *[]){X(0)});
    gb_attr_int(c, sm, "axis", 1);
    ir_value *prob = gb_done(c, sm), *dx = NULL;
    if (DY) {
        nll_parts p = nll_grad_parts(c, &X(0)->type, X(1), w, DY);
        dx = gb2(c, IR_OP_MUL, gb2(c, IR_OP_SUB, prob, p.onehot), p.g);
        if (w && c->need[2]) {
            ir_value *logp = n->output_count > 1 ? Y(1) : NULL;
            if (!logp) {
                ir_node *ls = gb_begin(c, IR_OP_LOG_SOFTMAX, 1, (ir_value *[]){X(0)});
                gb_attr_int(c, ls, "axis", 1);
                logp = gb_done(c, ls);
            }
            c->dx[2] = nll_weight_grad(c, &p, logp);
        }
    }
    if (n->output_count > 1 && c->dy[1]) {
        int64_t axis = 1;
        ir_value *g = c->dy[1], *s = gb_reduce(c, IR_OP_REDUCE_SUM, g, 1, &axis, true);
        ir_value *more = gb2(c, IR_OP_SUB, g, gb2(c, IR_OP_MUL, prob, s));
        dx = dx ? gb2(c, IR_OP_ADD, dx, more) : more;
    }
    if (c->need[0])
        c->dx[0] = dx;
    return c->st;
}

/* ---- Resize ---------------------------------------------------------------------------------- */

/* Resize is linear in X and separable: each output is a sum over neighbours of products of
 * per-axis coefficients (shape_resize_sample, the interpreter's weights), or
 * extrapolation_value outside tf_crop_and_resize's box. dX is dY with each axis's weight
 * matrix M_d [out_d, in_d] applied transposed, axis by axis (a MatMul with that axis
 * moved last); axes where M_d is the identity are skipped, and an outside coordinate's row
 * of M_d is zero (its outputs are constants). */
kiln_status grad_resize(grad_ctx *c) {
    const ir_node *n = c->node;
    const kiln_tensor *x = &X(0)->type, *types[IR_VARIADIC];
    shape_ctx sc = grad_shape_ctx(c, types);
    const kiln_tensor *roi = n->input_count > 1 && types[1] && ir_type_count(types[1]) ? X(1)->init : NULL;
    double scales[KILN_MAX_RANK];
    int64_t dims[KILN_MAX_RANK];
    bool known = false;
    if ((n->input_count > 1 && types[1] && ir_type_count(types[1]) && !roi) || shape_resize_geometry(&sc, scales, dims, &known) || !known)
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "Resize is differentiated with constant roi, scales and sizes"), c->st;
    int r = x->rank;
    ir_value *g = DY;
    for (int d = 0; d < r && !c->st; d++) {
        int64_t in = x->dims[d], out = dims[d];
        double *m = calloc((size_t)(in * out) + 1, sizeof *m);
        if (!m)
            return gb_fail(c, KILN_ERR_OOM, "out of memory"), c->st;
        bool identity = in == out;
        for (int64_t o = 0; o < out; o++) {
            shape_resize_axis ax;
            if (shape_resize_sample(n, o, in, scales[d], roi ? ir_tensor_get(roi, d) : 0, roi ? ir_tensor_get(roi, d + r) : 1, &ax))
                for (int j = 0; j < ax.n; j++)
                    m[o * in + ax.index[j]] += ax.coeff[j];
            for (int64_t k = 0; identity && k < in; k++)
                identity = m[o * in + k] == (o == k);
        }
        if (identity) {
            free(m);
            continue;
        }
        int64_t perm[KILN_MAX_RANK], back[KILN_MAX_RANK];
        for (int i = 0, k = 0; i < r; i++)
            if (i != d)
                perm[k++] = i;
        perm[r - 1] = d;
        for (int i = 0; i < r; i++)
            back[perm[i]] = i;
        ir_value *moved = d != r - 1 ? gb_transpose(c, g, perm) : g;
        ir_value *prod = gb2(c, IR_OP_MATMUL, moved, gb_tensor(c, x->dtype, 2, (int64_t[]){out, in}, m));
        free(m);
        g = d != r - 1 ? gb_transpose(c, prod, back) : prod;
    }
    c->dx[0] = g;
    return c->st;
}

/* ---- Pad and Slice: per-axis gathers ---------------------------------------------------------- */

/* The adjoint of a gather separable by axis: along each axis d, output coordinate o read
 * input coordinate map[d][o]; dy scattered back axis by axis (gather_adjoint), axes whose
 * map is the identity skipped. maps[d] NULL: the identity. */
static ir_value *axis_maps_adjoint(grad_ctx *c, ir_value *dy, const kiln_tensor *x, int64_t *const *maps) {
    ir_value *g = dy;
    for (int d = 0; d < x->rank && g && !c->st; d++) {
        int64_t out = g->type.dims[d];
        bool identity = out == x->dims[d];
        for (int64_t o = 0; identity && maps[d] && o < out; o++)
            identity = maps[d][o] == o;
        if (identity || !maps[d])
            continue;
        kiln_tensor to = g->type;
        to.dims[d] = x->dims[d];
        g = gather_adjoint(c, g, gb_i64s(c, (int)out, maps[d]), d, &to);
    }
    return g;
}

/* Pad. Constant mode: dy cropped to the outputs that read the input, zero-padded where
 * negative pads cropped the input. Reflect, edge and wrap: each output reads one input
 * coordinate per axis (shape_pad_source, the interpreter's), scattered back. */
kiln_status grad_pad(grad_ctx *c) {
    const ir_node *n = c->node;
    const kiln_tensor *x = &X(0)->type, *types[IR_VARIADIC];
    shape_ctx sc = grad_shape_ctx(c, types);
    int64_t begin[KILN_MAX_RANK], end[KILN_MAX_RANK];
    bool known = false;
    if (shape_pad_amounts(&sc, begin, end, &known) || !known)
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "Pad is differentiated with constant pads and axes"), c->st;
    int r = x->rank;
    const char *mode = ir_attr_string(n, "mode");
    if (!strcmp(mode, "constant")) {
        int64_t starts[KILN_MAX_RANK], ends[KILN_MAX_RANK], axes[KILN_MAX_RANK], refill[2 * KILN_MAX_RANK];
        bool refilled = false;
        for (int d = 0; d < r; d++) {
            int64_t lo = begin[d] > 0 ? begin[d] : 0, hi = begin[d] + x->dims[d] - (end[d] < 0 ? -end[d] : 0);
            starts[d] = lo, ends[d] = hi > lo ? hi : lo, axes[d] = d;
            refill[d] = begin[d] < 0 ? -begin[d] : 0, refill[r + d] = end[d] < 0 ? -end[d] : 0;
            refilled |= refill[d] || refill[r + d];
        }
        ir_value *in[4] = {DY, gb_i64s(c, r, starts), gb_i64s(c, r, ends), gb_i64s(c, r, axes)};
        ir_value *g = gb_done(c, gb_begin(c, IR_OP_SLICE, 4, in));
        c->dx[0] = refilled ? gb2(c, IR_OP_PAD, g, gb_i64s(c, 2 * r, refill)) : g;
        return c->st;
    }
    int64_t *maps[KILN_MAX_RANK] = {0};
    for (int d = 0; d < r && !c->st; d++) {
        int64_t out = Y(0)->type.dims[d];
        if (!(maps[d] = malloc(sizeof(int64_t) * (size_t)(out + 1))))
            gb_fail(c, KILN_ERR_OOM, "out of memory");
        for (int64_t o = 0; maps[d] && o < out; o++) {
            int64_t p = o - begin[d];
            maps[d][o] = p >= 0 && p < x->dims[d] ? p : shape_pad_source(p, x->dims[d], mode);
        }
    }
    if (!c->st)
        c->dx[0] = axis_maps_adjoint(c, DY, x, maps);
    for (int d = 0; d < r; d++)
        free(maps[d]);
    return c->st;
}

/* Slice with constant bounds: unit steps are a crop, whose adjoint pads dy with zeros;
 * other steps (negative too) read input start + o * step along each axis, scattered back. */
kiln_status grad_slice(grad_ctx *c) {
    const kiln_tensor *x = &X(0)->type, *types[IR_VARIADIC];
    shape_ctx sc = grad_shape_ctx(c, types);
    shape_slice_spec sp;
    bool known = false;
    if (shape_slice_params(&sc, &sp, &known) || !known)
        return gb_fail(c, KILN_ERR_UNSUPPORTED, "Slice is differentiated with constant starts, ends, axes and steps"), c->st;
    int r = x->rank;
    bool unit = true;
    int64_t pads[2 * KILN_MAX_RANK];
    for (int d = 0; d < r; d++) {
        unit = unit && (sp.step[d] == 1 || sp.count[d] <= 1);
        pads[d] = sp.count[d] ? sp.start[d] : 0, pads[r + d] = x->dims[d] - pads[d] - sp.count[d];
    }
    if (unit) {
        c->dx[0] = gb2(c, IR_OP_PAD, DY, gb_i64s(c, 2 * r, pads));
        return c->st;
    }
    int64_t *maps[KILN_MAX_RANK] = {0};
    for (int d = 0; d < r && !c->st; d++) {
        if (!(maps[d] = malloc(sizeof(int64_t) * (size_t)(sp.count[d] + 1))))
            gb_fail(c, KILN_ERR_OOM, "out of memory");
        for (int64_t o = 0; maps[d] && o < sp.count[d]; o++)
            maps[d][o] = sp.start[d] + o * sp.step[d];
    }
    if (!c->st)
        c->dx[0] = axis_maps_adjoint(c, DY, x, maps);
    for (int d = 0; d < r; d++)
        free(maps[d]);
    return c->st;
}
