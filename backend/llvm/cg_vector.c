/*
 * cg_vector.c — LIR_VECTOR loops as explicit LLVM vectors: `lanes` iterations at once,
 * then one tail iteration under a lane mask (AVX-512 masked loads and stores), so no
 * scalar remainder loop. passes/schedule.c chose the loops and checked that this is
 * exact: every store writes consecutive elements, scalars assigned in the body are its
 * own, no buffer is both read and written, nothing can stop the kernel.
 *
 * Inside the body an expression is uniform (the same for every lane: computed once as a
 * scalar and broadcast) or per lane. A load whose index moves by one element per
 * iteration is a vector load; one whose lanes read within a window of `lanes` elements at
 * offsets known before the run is a load and a shuffle; any other per-lane index is a
 * gather. A condition that differs between lanes narrows the mask instead of branching
 * (its body runs only when some lane is active), and assignments under such a mask keep
 * the inactive lanes' values.
 * The math is the scalar code's, lane by lane: no fast-math reassociation.
 */
#include "backend/llvm/cg_internal.h"

static bool uniform(const cg_ctx *g, const lir_expr *e) {
    return lir_stride(e, g->vvar, g->varying) == 0;
}

static LLVMTypeRef i32_type(cg_ctx *g) { return LLVMInt32TypeInContext(g->ctx); }
static LLVMTypeRef i64_type(cg_ctx *g) { return LLVMInt64TypeInContext(g->ctx); }
static LLVMTypeRef vec(cg_ctx *g, LLVMTypeRef t) { return LLVMVectorType(t, (unsigned)g->lanes); }

static LLVMValueRef splat(cg_ctx *g, LLVMValueRef v) {
    LLVMTypeRef t = vec(g, LLVMTypeOf(v));
    LLVMValueRef one = LLVMBuildInsertElement(g->b, LLVMGetUndef(t), v, LLVMConstInt(i32_type(g), 0, 0), "");
    return LLVMBuildShuffleVector(g->b, one, LLVMGetUndef(t), LLVMConstNull(vec(g, i32_type(g))), "");
}

/* <0, 1, ..., lanes-1> as i64 */
static LLVMValueRef iota(cg_ctx *g) {
    LLVMValueRef lanes[64];
    for (int l = 0; l < g->lanes; l++)
        lanes[l] = LLVMConstInt(i64_type(g), (unsigned long long)l, 0);
    return LLVMConstVector(lanes, (unsigned)g->lanes);
}

/* The alloca of per-lane scalar var, in the function's entry block (so mem2reg takes it). */
static LLVMValueRef vvar(cg_ctx *g, int var) {
    if (!g->vvars[var]) {
        LLVMBasicBlockRef entry = LLVMGetEntryBasicBlock(g->fn);
        LLVMBuilderRef b = LLVMCreateBuilderInContext(g->ctx);
        LLVMValueRef first = LLVMGetFirstInstruction(entry);
        if (first)
            LLVMPositionBuilderBefore(b, first);
        else
            LLVMPositionBuilderAtEnd(b, entry);
        g->vvars[var] = LLVMBuildAlloca(b, vec(g, cg_reg_type(g, g->kernel->vars[var].type)), g->kernel->vars[var].name);
        LLVMDisposeBuilder(b);
    }
    return g->vvars[var];
}

static unsigned align_of(const lir_buffer *buf) { return (unsigned)kiln_dtype_size(buf->dtype); }

static LLVMValueRef all_lanes(cg_ctx *g) {
    return LLVMConstAllOnes(vec(g, LLVMInt1TypeInContext(g->ctx)));
}

/* The width of the range off[0..n) spans; *lo receives its least value. */
static int64_t span(const int64_t *off, int n, int64_t *lo) {
    int64_t hi = off[0];
    *lo = off[0];
    for (int l = 1; l < n; l++)
        *lo = off[l] < *lo ? off[l] : *lo, hi = off[l] > hi ? off[l] : hi;
    return hi - *lo;
}

static LLVMValueRef load(cg_ctx *g, const lir_expr *e) {
    LLVMTypeRef et = cg_mem_type(g, e->buf->dtype), vt = vec(g, et), ptr = LLVMPointerTypeInContext(g->ctx, 0);
    LLVMValueRef base = cg_buffer(g, e->buf), align = LLVMConstInt(i32_type(g), align_of(e->buf), 0), v;
    int64_t off[64], lo, stride = lir_stride(e->a, g->vvar, g->varying);
    if (stride == 1) { /* consecutive: lane 0's index is the scalar one */
        LLVMValueRef idx = cg_scalar(g, e->a), at = LLVMBuildGEP2(g->b, et, base, &idx, 1, "");
        if (g->mask) {
            LLVMTypeRef types[2] = {vt, ptr};
            LLVMValueRef args[4] = {at, align, g->mask, LLVMConstNull(vt)};
            v = cg_intrinsic(g, "llvm.masked.load", types, 2, args, 4);
        } else {
            v = LLVMBuildLoad2(g->b, vt, at, "");
            LLVMSetAlignment(v, align_of(e->buf));
        }
    } else if (!g->mask && stride >= 2 && stride <= 4 && g->lanes * stride <= 64) {
        /* a small constant stride: lanes * stride consecutive elements (the last stride - 1
         * masked off, so nothing past the last lane's element is touched), every stride-th
         * kept by a shuffle: a 16-lane stride-2 read is two loads and a permute where a
         * gather is 16 element loads (the conv's phase split, pools' strided outputs) */
        int n = g->lanes * (int)stride;
        LLVMTypeRef wide = LLVMVectorType(et, (unsigned)n), i1 = LLVMInt1TypeInContext(g->ctx);
        LLVMValueRef bits[256], pick[64];
        for (int l = 0; l < n; l++)
            bits[l] = LLVMConstInt(i1, l <= (g->lanes - 1) * stride, 0);
        for (int l = 0; l < g->lanes; l++)
            pick[l] = LLVMConstInt(i32_type(g), (unsigned long long)(l * stride), 0);
        LLVMValueRef idx = cg_scalar(g, e->a), at = LLVMBuildGEP2(g->b, et, base, &idx, 1, "");
        LLVMTypeRef types[2] = {wide, ptr};
        LLVMValueRef args[4] = {at, align, LLVMConstVector(bits, (unsigned)n), LLVMConstNull(wide)};
        LLVMValueRef all = cg_intrinsic(g, "llvm.masked.load", types, 2, args, 4);
        v = LLVMBuildShuffleVector(g->b, all, LLVMGetUndef(wide), LLVMConstVector(pick, (unsigned)g->lanes), "");
    } else if (!g->mask && g->vonce && lir_lane_offsets(e->a, g->vvar, g->varying, g->vfirst, g->lanes, off) &&
               span(off, g->lanes, &lo) < g->lanes) {
        /* lanes that read elements of one window of `lanes` (a grouped conv's lanes read
         * their group's channel of one input block: lane - lane % c + ci): the elements
         * read, loaded together, and a shuffle to the lanes, where a gather loads each */
        LLVMTypeRef i1 = LLVMInt1TypeInContext(g->ctx);
        LLVMValueRef bits[64], pick[64];
        for (int l = 0; l < g->lanes; l++)
            bits[l] = LLVMConstInt(i1, 0, 0);
        for (int l = 0; l < g->lanes; l++) {
            bits[off[l] - lo] = LLVMConstInt(i1, 1, 0);
            pick[l] = LLVMConstInt(i32_type(g), (unsigned long long)(off[l] - lo), 0);
        }
        LLVMValueRef idx = LLVMBuildAdd(g->b, cg_scalar(g, e->a), LLVMConstInt(i64_type(g), (unsigned long long)lo, 1), "");
        LLVMValueRef at = LLVMBuildGEP2(g->b, et, base, &idx, 1, "");
        LLVMTypeRef types[2] = {vt, ptr};
        LLVMValueRef args[4] = {at, align, LLVMConstVector(bits, (unsigned)g->lanes), LLVMConstNull(vt)};
        LLVMValueRef all = cg_intrinsic(g, "llvm.masked.load", types, 2, args, 4);
        v = LLVMBuildShuffleVector(g->b, all, LLVMGetUndef(vt), LLVMConstVector(pick, (unsigned)g->lanes), "");
    } else { /* a gather */
        LLVMValueRef idx = cg_expr(g, e->a), at = LLVMBuildGEP2(g->b, et, base, &idx, 1, "");
        LLVMTypeRef types[2] = {vt, vec(g, ptr)};
        LLVMValueRef args[4] = {at, align, g->mask ? g->mask : all_lanes(g), LLVMConstNull(vt)};
        v = cg_intrinsic(g, "llvm.masked.gather", types, 2, args, 4);
    }
    return e->type == KILN_BOOL ? LLVMBuildICmp(g->b, LLVMIntNE, v, LLVMConstNull(vt), "") : v;
}

bool cg_vector_expr(cg_ctx *g, const lir_expr *e, LLVMValueRef *out) {
    if (uniform(g, e)) {
        *out = splat(g, cg_scalar(g, e));
        return true;
    }
    if (e->kind == LIR_VAR) {
        if (e->var == g->vvar) /* the loop variable: base + lane */
            *out = LLVMBuildAdd(g->b, splat(g, LLVMBuildLoad2(g->b, i64_type(g), g->vars[e->var], "")), iota(g), "");
        else
            *out = LLVMBuildLoad2(g->b, vec(g, cg_reg_type(g, e->type)), vvar(g, e->var), "");
        return true;
    }
    if (e->kind == LIR_LOAD) {
        *out = load(g, e);
        return true;
    }
    return false;
}

/* Runs `body` under mask m (NULL: all lanes), only if some lane of m is active. */
static void masked(cg_ctx *g, LLVMValueRef m, const lir_stmt *body) {
    LLVMTypeRef i1v = vec(g, LLVMInt1TypeInContext(g->ctx));
    LLVMValueRef any = cg_intrinsic(g, "llvm.vector.reduce.or", &i1v, 1, &m, 1);
    LLVMBasicBlockRef run = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "lanes");
    LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "lanes_done");
    LLVMBuildCondBr(g->b, any, run, done);
    LLVMPositionBuilderAtEnd(g->b, run);
    LLVMValueRef saved = g->mask;
    g->mask = m;
    cg_stmt(g, body);
    g->mask = saved;
    LLVMBuildBr(g->b, done);
    LLVMPositionBuilderAtEnd(g->b, done);
}

bool cg_vector_stmt(cg_ctx *g, const lir_stmt *s) {
    switch (s->kind) {
    case LIR_STORE: { /* consecutive (the schedule checked) */
        LLVMTypeRef et = cg_mem_type(g, s->buf->dtype), vt = vec(g, et), ptr = LLVMPointerTypeInContext(g->ctx, 0);
        LLVMValueRef v = cg_expr(g, s->value), idx = cg_scalar(g, s->index);
        if (s->buf->dtype == KILN_BOOL)
            v = LLVMBuildZExt(g->b, v, vt, "");
        LLVMValueRef at = LLVMBuildGEP2(g->b, et, cg_buffer(g, s->buf), &idx, 1, "");
        if (g->mask) {
            LLVMTypeRef types[2] = {vt, ptr};
            LLVMValueRef args[4] = {v, at, LLVMConstInt(i32_type(g), align_of(s->buf), 0), g->mask};
            cg_intrinsic(g, "llvm.masked.store", types, 2, args, 4);
        } else {
            LLVMSetAlignment(LLVMBuildStore(g->b, v, at), align_of(s->buf));
        }
        return true;
    }
    case LIR_LET:
        LLVMBuildStore(g->b, cg_expr(g, s->value), vvar(g, s->var));
        return true;
    case LIR_ASSIGN: {
        /* a scalar of the body's own; lanes a condition left inactive keep their value.
         * Lanes past the end may take any (as a let gives them): they are never stored,
         * and a select on every assignment of a loop-carried sum was two more
         * instructions on its chain (the MLP's 64 x 512 x 10 classifier: 0.0080 -> 0.0062 ms) */
        LLVMValueRef v = cg_expr(g, s->value), at = vvar(g, s->var);
        if (g->mask && g->mask != g->tail)
            v = LLVMBuildSelect(g->b, g->mask, v, LLVMBuildLoad2(g->b, LLVMTypeOf(v), at, ""), "");
        LLVMBuildStore(g->b, v, at);
        return true;
    }
    case LIR_IF: {
        if (uniform(g, s->cond))
            return false; /* a branch, as in scalar code */
        LLVMValueRef c = cg_expr(g, s->cond);
        masked(g, g->mask ? LLVMBuildAnd(g->b, g->mask, c, "") : c, s->body);
        if (s->other) {
            LLVMValueRef not_c = LLVMBuildNot(g->b, c, "");
            masked(g, g->mask ? LLVMBuildAnd(g->b, g->mask, not_c, "") : not_c, s->other);
        }
        return true;
    }
    default: return false; /* sequences and inner loops (uniform bounds): as in scalar code */
    }
}

static void mark_declared(const lir_stmt *s, bool *varying) {
    switch (s->kind) {
    case LIR_LET: varying[s->var] = true; return;
    case LIR_SEQ:
        for (int i = 0; i < s->count; i++)
            mark_declared(s->items[i], varying);
        return;
    case LIR_IF:
        mark_declared(s->body, varying);
        if (s->other)
            mark_declared(s->other, varying);
        return;
    case LIR_FOR: mark_declared(s->body, varying); return;
    default: return;
    }
}

void cg_vector_loop(cg_ctx *g, const lir_stmt *s) {
    const lir_kernel *k = g->kernel;
    g->varying = calloc((size_t)k->var_count + 1, sizeof *g->varying);
    g->vvars = calloc((size_t)k->var_count + 1, sizeof *g->vvars);
    if (!g->varying || !g->vvars) {
        free(g->varying), free(g->vvars);
        g->varying = NULL, g->vvars = NULL;
        g->oom = true;
        return;
    }
    mark_declared(s->body, g->varying);
    LLVMTypeRef i64 = i64_type(g);
    LLVMValueRef var = g->vars[s->var], end = cg_expr(g, s->end), w = LLVMConstInt(i64, (unsigned long long)s->width, 0);
    LLVMBuildStore(g->b, cg_expr(g, s->begin), var);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "vloop");
    LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "vbody");
    LLVMBasicBlockRef check = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "vtail_check");
    LLVMBasicBlockRef tail = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "vtail");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "vexit");
    LLVMBuildBr(g->b, head);
    /* whole vectors while i + lanes <= end */
    LLVMPositionBuilderAtEnd(g->b, head);
    LLVMValueRef i = LLVMBuildLoad2(g->b, i64, var, "");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLE, LLVMBuildAdd(g->b, i, w, ""), end, ""), body, check);
    LLVMPositionBuilderAtEnd(g->b, body);
    g->lanes = s->width, g->vvar = s->var, g->mask = NULL;
    g->vonce = s->begin->kind == LIR_CONST && s->end->kind == LIR_CONST && s->end->i - s->begin->i == s->width;
    g->vfirst = s->begin->i;
    cg_stmt(g, s->body);
    g->lanes = 0, g->vonce = false;
    LLVMBuildStore(g->b, LLVMBuildAdd(g->b, LLVMBuildLoad2(g->b, i64, var, ""), w, ""), var);
    LLVMBuildBr(g->b, head);
    /* the rest, end - i < lanes of them, under a mask */
    LLVMPositionBuilderAtEnd(g->b, check);
    i = LLVMBuildLoad2(g->b, i64, var, "");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, i, end, ""), tail, exit);
    LLVMPositionBuilderAtEnd(g->b, tail);
    g->lanes = s->width;
    LLVMValueRef left = splat(g, LLVMBuildSub(g->b, end, i, ""));
    g->mask = g->tail = LLVMBuildICmp(g->b, LLVMIntSLT, iota(g), left, "");
    cg_stmt(g, s->body);
    g->lanes = 0, g->mask = g->tail = NULL;
    LLVMBuildBr(g->b, exit);
    LLVMPositionBuilderAtEnd(g->b, exit);
    free(g->varying), free(g->vvars);
    g->varying = NULL, g->vvars = NULL;
}

enum { MAX_W = 64 }; /* the widest tile: 64 lanes */

/* <w x i1> with the first n lanes on. */
static LLVMValueRef first_lanes(cg_ctx *g, int n, int w) {
    LLVMValueRef lanes[MAX_W];
    for (int l = 0; l < w; l++)
        lanes[l] = LLVMConstInt(LLVMInt1TypeInContext(g->ctx), l < n, 0);
    return LLVMConstVector(lanes, (unsigned)w);
}

/* A LIR_TRANSPOSE tile of w x w lanes: the source's cols rows loaded as vectors (rows lanes
 * of each, under a mask when fewer than w), turned over in registers by log2 w rounds of
 * two-vector shuffles, each round swapping the off-diagonal h x h blocks of every 2h x 2h
 * block (h = w/2, ..., 1), and the first `rows` vectors stored (cols lanes each). 64
 * shuffles for 16 x 16 f32, where the tiled loop gathered 8 lanes at a time. */
void cg_transpose(cg_ctx *g, const lir_stmt *s) {
    int w = s->width;
    const lir_buffer *src = s->value->buf, *dst = s->buf;
    LLVMTypeRef et = cg_mem_type(g, dst->dtype), vt = LLVMVectorType(et, (unsigned)w), i64 = i64_type(g), i32 = i32_type(g);
    LLVMTypeRef ptr = LLVMPointerTypeInContext(g->ctx, 0);
    LLVMValueRef row[MAX_W], src_mask = first_lanes(g, s->rows, w), dst_mask = first_lanes(g, s->cols, w);
    LLVMValueRef from = cg_scalar(g, s->value->a), to = cg_scalar(g, s->index);
    unsigned align = (unsigned)kiln_dtype_size(dst->dtype);
    for (int b = 0; b < w; b++) {
        if (b >= s->cols) {
            row[b] = LLVMConstNull(vt);
            continue;
        }
        LLVMValueRef at = LLVMBuildAdd(g->b, from, LLVMConstInt(i64, (unsigned long long)(b * s->strides[1]), 1), "");
        at = LLVMBuildGEP2(g->b, et, cg_buffer(g, src), &at, 1, "");
        if (s->rows == w) {
            row[b] = LLVMBuildLoad2(g->b, vt, at, "");
            LLVMSetAlignment(row[b], align);
        } else {
            LLVMTypeRef types[2] = {vt, ptr};
            LLVMValueRef args[4] = {at, LLVMConstInt(i32, align, 0), src_mask, LLVMConstNull(vt)};
            row[b] = cg_intrinsic(g, "llvm.masked.load", types, 2, args, 4);
        }
    }
    for (int h = w / 2; h >= 1; h /= 2)
        for (int i = 0; i < w; i++) {
            if (i & h)
                continue;
            LLVMValueRef lo[MAX_W], hi[MAX_W];
            for (int j = 0; j < w; j++) {
                lo[j] = LLVMConstInt(i32, (unsigned long long)((j & h) ? w + j - h : j), 0);
                hi[j] = LLVMConstInt(i32, (unsigned long long)((j & h) ? w + j : j + h), 0);
            }
            LLVMValueRef a = row[i], b = row[i + h];
            row[i] = LLVMBuildShuffleVector(g->b, a, b, LLVMConstVector(lo, (unsigned)w), "");
            row[i + h] = LLVMBuildShuffleVector(g->b, a, b, LLVMConstVector(hi, (unsigned)w), "");
        }
    for (int a = 0; a < s->rows; a++) {
        LLVMValueRef at = LLVMBuildAdd(g->b, to, LLVMConstInt(i64, (unsigned long long)(a * s->strides[0]), 1), "");
        at = LLVMBuildGEP2(g->b, et, cg_buffer(g, dst), &at, 1, "");
        if (s->cols == w) {
            LLVMSetAlignment(LLVMBuildStore(g->b, row[a], at), align);
        } else {
            LLVMTypeRef types[2] = {vt, ptr};
            LLVMValueRef args[4] = {row[a], at, LLVMConstInt(i32, align, 0), dst_mask};
            cg_intrinsic(g, "llvm.masked.store", types, 2, args, 4);
        }
    }
}
