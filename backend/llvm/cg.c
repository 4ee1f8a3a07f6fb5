/*
 * cg.c — loop IR -> LLVM IR. One function per kernel; loop variables and local scalars
 * live in allocas that mem2reg promotes; bools are i1 in registers and one byte in
 * memory; unsigned dtypes use the unsigned forms of division, remainder, comparison and
 * conversion. Float min/max propagate NaN (llvm.minimum/maximum), as the reference does.
 * Math functions LLVM has intrinsics for use them; the rest call libm.
 */
#include "backend/llvm/cg_internal.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static bool is_unsigned(kiln_dtype t) {
    return t == KILN_U8 || t == KILN_U16 || t == KILN_U32 || t == KILN_U64 || t == KILN_BOOL;
}

/* The type a value has in memory. */
LLVMTypeRef cg_mem_type(cg_ctx *g, kiln_dtype t) {
    switch (t) {
    case KILN_F32: return LLVMFloatTypeInContext(g->ctx);
    case KILN_F64: return LLVMDoubleTypeInContext(g->ctx);
    case KILN_F16: return LLVMHalfTypeInContext(g->ctx);
    case KILN_BF16: return LLVMBFloatTypeInContext(g->ctx);
    case KILN_I64: case KILN_U64: return LLVMInt64TypeInContext(g->ctx);
    case KILN_I32: case KILN_U32: return LLVMInt32TypeInContext(g->ctx);
    case KILN_I16: case KILN_U16: return LLVMInt16TypeInContext(g->ctx);
    default: return LLVMInt8TypeInContext(g->ctx); /* i8, u8, bool */
    }
}

/* The type a value has in registers: bools are i1. */
LLVMTypeRef cg_reg_type(cg_ctx *g, kiln_dtype t) {
    return t == KILN_BOOL ? LLVMInt1TypeInContext(g->ctx) : cg_mem_type(g, t);
}
#define mem_type cg_mem_type
#define reg_type cg_reg_type
#define expr cg_expr
#define stmt cg_stmt

LLVMValueRef cg_intrinsic(cg_ctx *g, const char *name, LLVMTypeRef *types, int ntypes, LLVMValueRef *args, int n) {
    unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
    LLVMValueRef fn = LLVMGetIntrinsicDeclaration(g->mod, id, types, (size_t)ntypes);
    LLVMTypeRef fty = LLVMIntrinsicGetType(g->ctx, id, types, (size_t)ntypes);
    return LLVMBuildCall2(g->b, fty, fn, args, (unsigned)n, "");
}

static LLVMValueRef intrinsic(cg_ctx *g, const char *name, LLVMTypeRef type, LLVMValueRef *args, int n) {
    return cg_intrinsic(g, name, &type, 1, args, n);
}

/* The loop IR's libm functions glibc's vector math (libmvec) has as 16-lane AVX-512
 * functions, within 4 ulp (f32 exp, tanh and erf are inline, cg_math.c). */
static bool in_libmvec(const char *name) {
    static const char *const names[] = {"acos", "acosh", "asin", "asinh", "atan", "atanh", "cos",
                                        "cosh", "log",   "log1p", "sin",   "sinh",  "tan"};
    for (int i = 0; i < ARRAY_LEN(names); i++)
        if (!strcmp(name, names[i]))
            return true;
    return false;
}

/* f32 `name` of x through libmvec's _ZGVeN16v_<name>f: a vector of up to 16 lanes widened
 * to 16 (lane 0 repeated), a scalar in all 16, so vector loops and their scalar tails
 * compute every element the same way; a libm call per lane took 20x as long (Erf of 4M
 * elements: 21 ms, Exp inline: 1.0). */
static LLVMValueRef vector_math(cg_ctx *g, const char *name, LLVMValueRef x) {
    LLVMTypeRef f32 = LLVMFloatTypeInContext(g->ctx), v16 = LLVMVectorType(f32, 16), i32 = LLVMInt32TypeInContext(g->ctx);
    char full[48];
    snprintf(full, sizeof full, "_ZGVeN16v_%sf", name);
    LLVMTypeRef fty = LLVMFunctionType(v16, &v16, 1, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(g->mod, full);
    if (!fn)
        fn = LLVMAddFunction(g->mod, full, fty);
    bool vec = LLVMGetTypeKind(LLVMTypeOf(x)) == LLVMVectorTypeKind;
    unsigned lanes = vec ? LLVMGetVectorSize(LLVMTypeOf(x)) : 1;
    LLVMValueRef idx[16], wide;
    for (unsigned l = 0; l < 16; l++)
        idx[l] = LLVMConstInt(i32, l < lanes ? l : 0, 0);
    if (vec)
        wide = lanes == 16 ? x : LLVMBuildShuffleVector(g->b, x, LLVMGetUndef(LLVMTypeOf(x)), LLVMConstVector(idx, 16), "");
    else
        wide = LLVMBuildShuffleVector(g->b, LLVMBuildInsertElement(g->b, LLVMGetUndef(v16), x, idx[0], ""),
                                      LLVMGetUndef(v16), LLVMConstNull(LLVMVectorType(i32, 16)), "");
    LLVMValueRef y = LLVMBuildCall2(g->b, fty, fn, &wide, 1, "");
    if (!vec)
        return LLVMBuildExtractElement(g->b, y, idx[0], "");
    return lanes == 16 ? y : LLVMBuildShuffleVector(g->b, y, LLVMGetUndef(v16), LLVMConstVector(idx, lanes), "");
}

/* A libm function on float or double; on a vector, called lane by lane (f32 through
 * libmvec where the target has it). */
static LLVMValueRef libm(cg_ctx *g, const char *name, kiln_dtype t, LLVMValueRef *args, int n) {
    if (g->mvec && t == KILN_F32 && n == 1 && in_libmvec(name) &&
        (LLVMGetTypeKind(LLVMTypeOf(args[0])) != LLVMVectorTypeKind || LLVMGetVectorSize(LLVMTypeOf(args[0])) <= 16))
        return vector_math(g, name, args[0]);
    char full[32];
    snprintf(full, sizeof full, "%s%s", name, t == KILN_F64 ? "" : "f");
    LLVMTypeRef ft = reg_type(g, t == KILN_F64 ? KILN_F64 : KILN_F32);
    LLVMTypeRef params[2] = {ft, ft};
    LLVMTypeRef fty = LLVMFunctionType(ft, params, (unsigned)n, 0);
    LLVMValueRef fn = LLVMGetNamedFunction(g->mod, full);
    if (!fn)
        fn = LLVMAddFunction(g->mod, full, fty);
    if (LLVMGetTypeKind(LLVMTypeOf(args[0])) != LLVMVectorTypeKind)
        return LLVMBuildCall2(g->b, fty, fn, args, (unsigned)n, "");
    unsigned lanes = LLVMGetVectorSize(LLVMTypeOf(args[0]));
    LLVMValueRef out = LLVMGetUndef(LLVMTypeOf(args[0]));
    for (unsigned l = 0; l < lanes; l++) {
        LLVMValueRef lane = LLVMConstInt(LLVMInt32TypeInContext(g->ctx), l, 0), one[2];
        for (int i = 0; i < n; i++)
            one[i] = LLVMBuildExtractElement(g->b, args[i], lane, "");
        out = LLVMBuildInsertElement(g->b, out, LLVMBuildCall2(g->b, fty, fn, one, (unsigned)n, ""), lane, "");
    }
    return out;
}

/* `to` in registers, a vector of as many lanes as `like` when that is one. */
static LLVMTypeRef like_lanes(cg_ctx *g, kiln_dtype to, LLVMValueRef like) {
    LLVMTypeRef t = reg_type(g, to), lt = LLVMTypeOf(like);
    return LLVMGetTypeKind(lt) == LLVMVectorTypeKind ? LLVMVectorType(t, LLVMGetVectorSize(lt)) : t;
}

static LLVMValueRef cast(cg_ctx *g, LLVMValueRef v, kiln_dtype from, kiln_dtype to) {
    if (from == to)
        return v;
    LLVMTypeRef dst = like_lanes(g, to, v);
    bool ff = ir_dtype_is_float(from), ft = ir_dtype_is_float(to);
    if (to == KILN_BOOL) /* nonzero is true */
        return ff ? LLVMBuildFCmp(g->b, LLVMRealUNE, v, LLVMConstNull(LLVMTypeOf(v)), "")
                  : LLVMBuildICmp(g->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "");
    if (ff && ft)
        return LLVMBuildFPCast(g->b, v, dst, "");
    if (ff) { /* float -> int: truncate toward zero, saturating (NaN -> 0) */
        LLVMValueRef args[1] = {v};
        LLVMTypeRef types[2] = {dst, LLVMTypeOf(v)};
        const char *name = is_unsigned(to) ? "llvm.fptoui.sat" : "llvm.fptosi.sat";
        unsigned id = LLVMLookupIntrinsicID(name, strlen(name));
        LLVMValueRef fn = LLVMGetIntrinsicDeclaration(g->mod, id, types, 2);
        return LLVMBuildCall2(g->b, LLVMIntrinsicGetType(g->ctx, id, types, 2), fn, args, 1, "");
    }
    if (ft)
        return is_unsigned(from) ? LLVMBuildUIToFP(g->b, v, dst, "") : LLVMBuildSIToFP(g->b, v, dst, "");
    return LLVMBuildIntCast2(g->b, v, dst, !is_unsigned(from), "");
}

/* buf + index; an index `x + constant` as two steps, so the address is a known offset
 * from buf + x: LLVM's GVN then forwards a stored vector's lanes to the scalar loads
 * that fold it (lower_lane_pass's partials), where a single step hid the offset and
 * every lane went through memory (and store-to-load forwarding) again. */
static LLVMValueRef address(cg_ctx *g, const lir_buffer *buf, const lir_expr *index) {
    LLVMTypeRef t = mem_type(g, buf->dtype);
    if (index->kind == LIR_BINARY && index->op == LIR_ADD && index->b->kind == LIR_CONST) {
        LLVMValueRef x = expr(g, index->a), k = expr(g, index->b);
        return LLVMBuildGEP2(g->b, t, LLVMBuildGEP2(g->b, t, cg_buffer(g, buf), &x, 1, ""), &k, 1, "");
    }
    LLVMValueRef idx = expr(g, index);
    return LLVMBuildGEP2(g->b, t, cg_buffer(g, buf), &idx, 1, "");
}

/* select(a < b, b, a) is x86's max(b, a) exactly (b > a ? b : a: a NaN in either gives a,
 * equal zeros give a), and select(a > b, b, a) its min: one vmaxps/vminps. LLVM finds
 * this itself for a plain clamp, but once InstCombine has pushed a negation or another
 * select through it (sigmoid's exp(-relu(x)), exp's own clamp) it keeps compare and
 * masked moves, three instructions on the chain instead of one. 16-lane f32 on AVX-512. */
static LLVMValueRef x86_minmax(cg_ctx *g, const lir_expr *cmp, const lir_expr *b, const lir_expr *c) {
    if (!g->avx512 || cmp->a->type != KILN_F32 || !lir_expr_same(cmp->b, b) || !lir_expr_same(cmp->a, c))
        return NULL;
    LLVMValueRef bv = expr(g, b), cv = expr(g, c);
    if (LLVMTypeOf(cv) != LLVMTypeOf(bv)) /* a uniform operand beside a per-lane one: the plain select broadcasts */
        return NULL;
    LLVMValueRef v = cg_x86_minmax(g, cmp->op == LIR_LT, bv, cv);
    return v ? v : LLVMBuildSelect(g->b, LLVMBuildFCmp(g->b, cmp->op == LIR_LT ? LLVMRealOLT : LLVMRealOGT, cv, bv, ""), bv, cv, "");
}

static LLVMValueRef tanh_f32(cg_ctx *g, const lir_expr *t, double c, const lir_expr *d);

static LLVMValueRef binary(cg_ctx *g, const lir_expr *e) {
    double c;
    const lir_expr *d, *tanh_call = lir_tanh_affine(e, &c, &d);
    if (tanh_call)
        return tanh_f32(g, tanh_call, c, d);
    if (e->op == LIR_ADD && e->i && e->b->kind == LIR_BINARY && e->b->op == LIR_MUL) { /* lir_fma */
        LLVMValueRef args[3] = {expr(g, e->b->a), expr(g, e->b->b), expr(g, e->a)};
        return intrinsic(g, "llvm.fmuladd", LLVMTypeOf(args[0]), args, 3);
    }
    LLVMValueRef a = expr(g, e->a), b = expr(g, e->b);
    kiln_dtype t = e->a->type;
    bool f = ir_dtype_is_float(t), u = is_unsigned(t);
    LLVMValueRef args[2] = {a, b};
    switch ((lir_op)e->op) {
    case LIR_ADD: return f ? LLVMBuildFAdd(g->b, a, b, "") : LLVMBuildAdd(g->b, a, b, "");
    case LIR_SUB: return f ? LLVMBuildFSub(g->b, a, b, "") : LLVMBuildSub(g->b, a, b, "");
    case LIR_MUL: return f ? LLVMBuildFMul(g->b, a, b, "") : LLVMBuildMul(g->b, a, b, "");
    case LIR_DIV: return f ? LLVMBuildFDiv(g->b, a, b, "") : u ? LLVMBuildUDiv(g->b, a, b, "") : LLVMBuildSDiv(g->b, a, b, "");
    case LIR_REM: return f ? LLVMBuildFRem(g->b, a, b, "") : u ? LLVMBuildURem(g->b, a, b, "") : LLVMBuildSRem(g->b, a, b, "");
    case LIR_MIN:
    case LIR_MAX:
        if (f && e->i) /* lir_max_any: a > b ? a : b, one instruction */
            return LLVMBuildSelect(g->b, LLVMBuildFCmp(g->b, e->op == LIR_MIN ? LLVMRealOLT : LLVMRealOGT, a, b, ""), a, b, "");
        if (f)
            return intrinsic(g, e->op == LIR_MIN ? "llvm.minimum" : "llvm.maximum", LLVMTypeOf(a), args, 2);
        return LLVMBuildSelect(g->b,
                               LLVMBuildICmp(g->b, e->op == LIR_MIN ? (u ? LLVMIntULT : LLVMIntSLT) : (u ? LLVMIntUGT : LLVMIntSGT), a, b, ""),
                               a, b, "");
    case LIR_AND: return LLVMBuildAnd(g->b, a, b, "");
    case LIR_OR: return LLVMBuildOr(g->b, a, b, "");
    case LIR_XOR: return LLVMBuildXor(g->b, a, b, "");
    default: break;
    }
    static const LLVMRealPredicate fp[] = {LLVMRealOEQ, LLVMRealUNE, LLVMRealOLT, LLVMRealOLE, LLVMRealOGT, LLVMRealOGE};
    static const LLVMIntPredicate sp[] = {LLVMIntEQ, LLVMIntNE, LLVMIntSLT, LLVMIntSLE, LLVMIntSGT, LLVMIntSGE};
    static const LLVMIntPredicate up[] = {LLVMIntEQ, LLVMIntNE, LLVMIntULT, LLVMIntULE, LLVMIntUGT, LLVMIntUGE};
    int k = e->op - LIR_EQ;
    return f ? LLVMBuildFCmp(g->b, fp[k], a, b, "") : LLVMBuildICmp(g->b, u ? up[k] : sp[k], a, b, "");
}

/* c where x is c * y or y * c for a constant c = 2^k, 1/64 <= c <= 256, which tanh folds
 * into its coefficients exactly (sigmoid's tanh(x/2)), *y receiving y; else 1 and x. */
static double tanh_scale(const lir_expr *x, const lir_expr **y) {
    *y = x;
    if (x->kind != LIR_BINARY || x->op != LIR_MUL)
        return 1;
    const lir_expr *k = x->a->kind == LIR_CONST ? x->a : x->b->kind == LIR_CONST ? x->b : NULL;
    int exponent;
    if (!k || !(k->f > 0) || frexp(k->f, &exponent) != 0.5 || exponent < -5 || exponent > 9)
        return 1;
    *y = k == x->a ? x->b : x->a;
    return k->f;
}

/* c * tanh(y) + d for f32 (d NULL: c tanh(y)), inline: vector loops stay vector */
static LLVMValueRef tanh_f32(cg_ctx *g, const lir_expr *t, double c, const lir_expr *d) {
    const lir_expr *y;
    double scale = tanh_scale(t->a, &y);
    LLVMValueRef yv = expr(g, y);
    return cg_tanh_f32(g, yv, scale, lir_nonneg(y), c, d ? expr(g, d) : NULL);
}

static LLVMValueRef call(cg_ctx *g, const lir_expr *e) {
    static const char *const llvm_names[LIR_INTRINSIC_COUNT] = {
        [LIR_EXP] = "llvm.exp", [LIR_LOG] = "llvm.log", [LIR_SQRT] = "llvm.sqrt", [LIR_SIN] = "llvm.sin",
        [LIR_COS] = "llvm.cos", [LIR_FLOOR] = "llvm.floor", [LIR_CEIL] = "llvm.ceil",
        [LIR_ROUND_EVEN] = "llvm.roundeven", [LIR_POW] = "llvm.pow",
    };
    if (e->type == KILN_F32 && e->op == LIR_TANH)
        return tanh_f32(g, e, 1, NULL);
    LLVMValueRef args[2] = {expr(g, e->a), e->b ? expr(g, e->b) : NULL};
    int n = e->b ? 2 : 1;
    if (e->op == LIR_FMOD)
        return LLVMBuildFRem(g->b, args[0], args[1], "");
    if (e->type == KILN_F32 && e->op == LIR_EXP)
        return cg_exp_f32(g, args[0]);
    if (e->type == KILN_F32 && e->op == LIR_ERF)
        return cg_erf_f32(g, args[0]);
    if (llvm_names[e->op] && !(g->mvec && e->type == KILN_F32 && (e->op == LIR_LOG || e->op == LIR_SIN || e->op == LIR_COS)))
        return intrinsic(g, llvm_names[e->op], LLVMTypeOf(args[0]), args, n); /* log, sin, cos: libm calls on x86 */
    if (e->type != KILN_F32 && e->type != KILN_F64) { /* libm has float and double only */
        args[0] = cast(g, args[0], e->type, KILN_F32);
        return cast(g, libm(g, lir_intrinsic_name((lir_intrinsic)e->op), KILN_F32, args, n), KILN_F32, e->type);
    }
    return libm(g, lir_intrinsic_name((lir_intrinsic)e->op), e->type, args, n);
}

LLVMValueRef cg_scalar(cg_ctx *g, const lir_expr *e) {
    int lanes = g->lanes;
    g->lanes = 0;
    LLVMValueRef v = expr(g, e);
    g->lanes = lanes;
    return v;
}

LLVMValueRef cg_expr(cg_ctx *g, const lir_expr *e) {
    LLVMValueRef lanes;
    if (g->lanes && cg_vector_expr(g, e, &lanes))
        return lanes;
    switch (e->kind) {
    case LIR_CONST:
        if (ir_dtype_is_float(e->type))
            return LLVMConstReal(reg_type(g, e->type), e->f);
        return LLVMConstInt(reg_type(g, e->type), (unsigned long long)e->i, !is_unsigned(e->type));
    case LIR_VAR: return LLVMBuildLoad2(g->b, reg_type(g, g->kernel->vars[e->var].type), g->vars[e->var], "");
    case LIR_LOAD: {
        LLVMValueRef v = LLVMBuildLoad2(g->b, mem_type(g, e->buf->dtype), address(g, e->buf, e->a), "");
        return e->type == KILN_BOOL ? LLVMBuildICmp(g->b, LLVMIntNE, v, LLVMConstNull(LLVMTypeOf(v)), "") : v;
    }
    case LIR_UNARY: {
        LLVMValueRef a = expr(g, e->a);
        bool f = ir_dtype_is_float(e->type);
        if (e->op == LIR_NOT)
            return LLVMBuildNot(g->b, a, "");
        if (e->op == LIR_NEG)
            return f ? LLVMBuildFNeg(g->b, a, "") : LLVMBuildNeg(g->b, a, "");
        if (f) /* abs */
            return intrinsic(g, "llvm.fabs", LLVMTypeOf(a), &a, 1);
        if (is_unsigned(e->type))
            return a;
        return LLVMBuildSelect(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, a, LLVMConstNull(LLVMTypeOf(a)), ""),
                               LLVMBuildNeg(g->b, a, ""), a, "");
    }
    case LIR_BINARY: return binary(g, e);
    case LIR_SELECT: {
        const lir_expr *cmp = e->a;
        LLVMValueRef v;
        if (cmp->kind == LIR_BINARY && (cmp->op == LIR_LT || cmp->op == LIR_GT) && (v = x86_minmax(g, cmp, e->b, e->c)))
            return v;
        return LLVMBuildSelect(g->b, expr(g, e->a), expr(g, e->b), expr(g, e->c), "");
    }
    case LIR_CAST: return cast(g, expr(g, e->a), e->a->type, e->type);
    case LIR_CALL: return call(g, e);
    }
    return NULL;
}

static void kernel_prologue(cg_ctx *g, LLVMValueRef args);

/* A parallel loop: its body becomes `i32 KERNEL_parN(ptr args, i64 begin, i64 end)`,
 * which the runtime's parallel-for calls on each thread's chunk; the kernel returns the
 * first error a chunk returned. Only a kernel's outermost loops run in parallel, so the
 * body reads nothing but its parameters and its own variables. */
static void parallel_loop(cg_ctx *g, const lir_stmt *s) {
    LLVMTypeRef ptr = LLVMPointerTypeInContext(g->ctx, 0), i64 = LLVMInt64TypeInContext(g->ctx);
    LLVMTypeRef i32 = LLVMInt32TypeInContext(g->ctx);
    LLVMTypeRef body_params[3] = {ptr, i64, i64};
    LLVMTypeRef body_type = LLVMFunctionType(i32, body_params, 3, 0);
    char name[600];
    snprintf(name, sizeof name, "%s%s_par%d", g->prefix ? g->prefix : "", g->kernel->name, g->outlined++);
    LLVMValueRef body = LLVMAddFunction(g->mod, name, body_type);
    LLVMSetLinkage(body, LLVMInternalLinkage);
    /* save the kernel's state, emit the body function, restore */
    cg_ctx saved = *g;
    LLVMBasicBlockRef resume = LLVMGetInsertBlock(g->b);
    g->fn = body;
    LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, body, "entry"));
    kernel_prologue(g, LLVMGetParam(body, 0));
    if (g->oom) { /* this prologue's, or an earlier failure: the kernel is abandoned */
        free(g->params), free(g->vars);
        *g = saved;
        g->oom = true;
        LLVMPositionBuilderAtEnd(g->b, resume);
        return;
    }
    LLVMValueRef var = g->vars[s->var];
    LLVMBuildStore(g->b, LLVMGetParam(body, 1), var);
    LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(g->ctx, body, "loop");
    LLVMBasicBlockRef loop_body = LLVMAppendBasicBlockInContext(g->ctx, body, "body");
    LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(g->ctx, body, "exit");
    LLVMBuildBr(g->b, head);
    LLVMPositionBuilderAtEnd(g->b, head);
    LLVMValueRef i = LLVMBuildLoad2(g->b, i64, var, "");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, i, LLVMGetParam(body, 2), ""), loop_body, exit);
    LLVMPositionBuilderAtEnd(g->b, loop_body);
    stmt(g, s->body);
    LLVMBuildStore(g->b, LLVMBuildAdd(g->b, LLVMBuildLoad2(g->b, i64, var, ""), LLVMConstInt(i64, 1, 0), ""), var);
    LLVMBuildBr(g->b, head);
    LLVMPositionBuilderAtEnd(g->b, exit);
    LLVMBuildRet(g->b, LLVMConstInt(i32, 0, 0));
    free(g->params), free(g->vars);
    int outlined = g->outlined;
    bool oom = g->oom;
    *g = saved;
    g->outlined = outlined, g->oom = oom;
    LLVMPositionBuilderAtEnd(g->b, resume);
    /* in the kernel: rc = kiln_rt_parallel_for(body, args, n, threads); if (rc) return rc */
    LLVMTypeRef pf_params[4] = {ptr, ptr, i64, i32};
    LLVMTypeRef pf_type = LLVMFunctionType(i32, pf_params, 4, 0);
    LLVMValueRef pf = LLVMGetNamedFunction(g->mod, "kiln_rt_parallel_for");
    if (!pf) {
        pf = LLVMAddFunction(g->mod, "kiln_rt_parallel_for", pf_type);
        if (g->hidden)
            LLVMSetVisibility(pf, LLVMHiddenVisibility);
    }
    LLVMValueRef call_args[4] = {body, g->args, LLVMConstInt(i64, (unsigned long long)s->end->i, 0), g->threads};
    LLVMValueRef rc = LLVMBuildCall2(g->b, pf_type, pf, call_args, 4, "");
    LLVMBasicBlockRef fail = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "fail");
    LLVMBasicBlockRef next = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "next");
    LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntNE, rc, LLVMConstInt(i32, 0, 0), ""), fail, next);
    LLVMPositionBuilderAtEnd(g->b, fail);
    LLVMBuildRet(g->b, rc);
    LLVMPositionBuilderAtEnd(g->b, next);
}

void cg_stmt(cg_ctx *g, const lir_stmt *s) {
    if (g->lanes && cg_vector_stmt(g, s))
        return;
    switch (s->kind) {
    case LIR_SEQ:
        for (int i = 0; i < s->count; i++)
            stmt(g, s->items[i]);
        return;
    case LIR_STORE: {
        LLVMValueRef v = expr(g, s->value);
        if (s->buf->dtype == KILN_BOOL)
            v = LLVMBuildZExt(g->b, v, mem_type(g, KILN_BOOL), "");
        LLVMBuildStore(g->b, v, address(g, s->buf, s->index));
        return;
    }
    case LIR_LET:
    case LIR_ASSIGN: LLVMBuildStore(g->b, expr(g, s->value), g->vars[s->var]); return;
    case LIR_TRANSPOSE: cg_transpose(g, s); return;
    case LIR_FAIL: /* return the error code; what follows is unreachable but must have a block */
        LLVMBuildRet(g->b, LLVMConstInt(LLVMInt32TypeInContext(g->ctx), (unsigned long long)s->var, 0));
        LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, g->fn, "dead"));
        return;
    case LIR_IF: {
        LLVMBasicBlockRef then = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "then");
        LLVMBasicBlockRef other = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "else");
        LLVMBasicBlockRef done = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "endif");
        LLVMBuildCondBr(g->b, cg_scalar(g, s->cond), then, other); /* in vector mode: a uniform condition */
        LLVMPositionBuilderAtEnd(g->b, then);
        stmt(g, s->body);
        LLVMBuildBr(g->b, done);
        LLVMPositionBuilderAtEnd(g->b, other);
        if (s->other)
            stmt(g, s->other);
        LLVMBuildBr(g->b, done);
        LLVMPositionBuilderAtEnd(g->b, done);
        return;
    }
    case LIR_FOR: {
        if (s->loop == LIR_PARALLEL) {
            parallel_loop(g, s);
            return;
        }
        if (s->loop == LIR_VECTOR && !g->lanes) {
            cg_vector_loop(g, s);
            return;
        }
        /* var = begin; while (var < end) { body; var += step; } (bounds the same for all lanes) */
        LLVMTypeRef i64 = LLVMInt64TypeInContext(g->ctx);
        LLVMValueRef var = g->vars[s->var], end = cg_scalar(g, s->end);
        LLVMBuildStore(g->b, cg_scalar(g, s->begin), var);
        LLVMBasicBlockRef head = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "loop");
        LLVMBasicBlockRef body = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "body");
        LLVMBasicBlockRef exit = LLVMAppendBasicBlockInContext(g->ctx, g->fn, "exit");
        LLVMBuildBr(g->b, head);
        LLVMPositionBuilderAtEnd(g->b, head);
        LLVMValueRef i = LLVMBuildLoad2(g->b, i64, var, "");
        LLVMBuildCondBr(g->b, LLVMBuildICmp(g->b, LLVMIntSLT, i, end, ""), body, exit);
        LLVMPositionBuilderAtEnd(g->b, body);
        stmt(g, s->body);
        LLVMValueRef next = LLVMBuildAdd(g->b, LLVMBuildLoad2(g->b, i64, var, ""), LLVMConstInt(i64, (unsigned long long)s->step, 1), "");
        LLVMBuildStore(g->b, next, var);
        LLVMBuildBr(g->b, head);
        LLVMPositionBuilderAtEnd(g->b, exit);
        return;
    }
    }
}

LLVMValueRef cg_buffer(cg_ctx *g, const lir_buffer *buf) {
    for (int i = 0; i < g->kernel->param_count; i++)
        if (g->kernel->params[i] == buf)
            return g->params[i];
    return NULL; /* locals come with the scheduling work */
}

/* In the current function: each parameter's address loaded from `args`, and an alloca
 * for every variable of the kernel. */
static void kernel_prologue(cg_ctx *g, LLVMValueRef args) {
    const lir_kernel *k = g->kernel;
    LLVMTypeRef ptr = LLVMPointerTypeInContext(g->ctx, 0);
    g->params = calloc((size_t)k->param_count + 1, sizeof *g->params);
    g->vars = calloc((size_t)k->var_count + 1, sizeof *g->vars);
    if (!g->params || !g->vars) {
        free(g->params), free(g->vars);
        g->params = g->vars = NULL;
        g->oom = true;
        return;
    }
    for (int i = 0; i < k->param_count; i++) {
        LLVMValueRef idx = LLVMConstInt(LLVMInt64TypeInContext(g->ctx), (unsigned long long)i, 0);
        g->params[i] = LLVMBuildLoad2(g->b, ptr, LLVMBuildGEP2(g->b, ptr, args, &idx, 1, ""), k->params[i]->name);
    }
    for (int v = 0; v < k->var_count; v++)
        g->vars[v] = LLVMBuildAlloca(g->b, reg_type(g, k->vars[v].type), k->vars[v].name);
}

/* i32 NAME(ptr args, i32 threads): loads each parameter's address, then the body; returns
 * 0, or the code of the LIR_FAIL that stopped it. */
static kiln_status kernel(cg_ctx *g, const lir_kernel *k, kiln_diag *d) {
    LLVMTypeRef ptr = LLVMPointerTypeInContext(g->ctx, 0);
    LLVMTypeRef params[2] = {ptr, LLVMInt32TypeInContext(g->ctx)};
    LLVMTypeRef fty = LLVMFunctionType(LLVMInt32TypeInContext(g->ctx), params, 2, 0);
    g->kernel = k;
    char symbol[512];
    snprintf(symbol, sizeof symbol, "%s%s", g->prefix ? g->prefix : "", k->name);
    g->fn = LLVMAddFunction(g->mod, symbol, fty);
    LLVMSetLinkage(g->fn, LLVMExternalLinkage);
    if (g->hidden)
        LLVMSetVisibility(g->fn, LLVMHiddenVisibility);
    LLVMPositionBuilderAtEnd(g->b, LLVMAppendBasicBlockInContext(g->ctx, g->fn, "entry"));
    g->args = LLVMGetParam(g->fn, 0);
    g->threads = LLVMGetParam(g->fn, 1);
    g->outlined = 0;
    kernel_prologue(g, g->args);
    if (!g->oom)
        stmt(g, k->body);
    LLVMBuildRet(g->b, LLVMConstInt(LLVMInt32TypeInContext(g->ctx), 0, 0));
    free(g->params), free(g->vars);
    g->params = g->vars = NULL;
    return g->oom ? diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory while generating kernel '%s'", k->name)
                  : KILN_OK;
}

kiln_status cg_module(cg_ctx *g, const lir_module *m, kiln_diag *d) {
    g->b = LLVMCreateBuilderInContext(g->ctx);
    kiln_status st = KILN_OK;
    for (int i = 0, n = 0; !st && i < m->kernel_count; i++)
        if ((!g->same || g->same[i] == i) && (g->parts <= 1 || n++ % g->parts == g->part))
            st = kernel(g, m->kernels[i], d);
    LLVMDisposeBuilder(g->b);
    char *msg = NULL;
    if (!st && LLVMVerifyModule(g->mod, LLVMReturnStatusAction, &msg)) {
        if (getenv("KILN_DEBUG_IR")) /* a code generator bug: the module, to find the kernel */
            LLVMDumpModule(g->mod);
        st = diag_error(d, LOC_NONE, KILN_ERR_INTERNAL, "generated LLVM IR is invalid: %.400s", msg ? msg : "");
    }
    LLVMDisposeMessage(msg);
    return st;
}
