/*
 * cg_math.c — f32 exp, tanh and erf as inline LLVM IR, the same code for a scalar and for a
 * vector of any width, so vector loops stay vector (a libm call per lane does not) and
 * agree to the bit with scalar loops.
 *
 * exp: n = round(x / ln 2), r = x - n ln 2 in two parts (Cody and Waite), e^r by a
 * degree-6 polynomial on [-ln 2 / 2, ln 2 / 2] (Cephes' expf coefficients), times 2^n
 * (scale2) so results down to the subnormals and up to overflow come out right. n is
 * rounded by adding and subtracting 1.5 * 2^23 (the sum's low bits are n as an integer:
 * no round, NaN mask and convert), and the reduction and polynomials use multiply-adds
 * (llvm.fmuladd: fused where the target has FMA): 20 instructions per vector of exp on
 * AVX-512 (45 when written plainly). Relative error <= 2 ulp against exp in double (test_jit checks it over
 * [-104, 89]); exp(-inf) = 0, exp(inf) = inf, NaN stays NaN.
 * tanh and erf: rational functions of x (below); error <= 6 ulp (checked the same way).
 */
#include "backend/llvm/cg_internal.h"

#include <math.h>

/* The scalar constant `one` in x's shape: itself, or a vector of as many lanes as x. */
static LLVMValueRef shaped(LLVMValueRef x, LLVMValueRef one) {
    LLVMTypeRef t = LLVMTypeOf(x);
    if (LLVMGetTypeKind(t) != LLVMVectorTypeKind)
        return one;
    unsigned n = LLVMGetVectorSize(t);
    LLVMValueRef lanes[64];
    for (unsigned i = 0; i < n; i++)
        lanes[i] = one;
    return LLVMConstVector(lanes, n);
}

/* The i32 type (or vector of i32) with x's shape. */
static LLVMTypeRef int_like(cg_ctx *g, LLVMValueRef x) {
    LLVMTypeRef t = LLVMTypeOf(x), i32 = LLVMInt32TypeInContext(g->ctx);
    return LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMVectorType(i32, LLVMGetVectorSize(t)) : i32;
}

static LLVMValueRef cst(cg_ctx *g, LLVMValueRef x, double v) {
    LLVMTypeRef t = LLVMTypeOf(x);
    (void)g;
    return shaped(x, LLVMConstReal(LLVMGetTypeKind(t) == LLVMVectorTypeKind ? LLVMGetElementType(t) : t, v));
}

static LLVMValueRef icst(cg_ctx *g, LLVMValueRef x, int v) {
    return shaped(x, LLVMConstInt(LLVMInt32TypeInContext(g->ctx), (unsigned long long)(long long)v, 1));
}

static LLVMValueRef fmul(cg_ctx *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFMul(g->b, a, b, ""); }
static LLVMValueRef fadd(cg_ctx *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFAdd(g->b, a, b, ""); }
static LLVMValueRef fsub(cg_ctx *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFSub(g->b, a, b, ""); }
static LLVMValueRef sel(cg_ctx *g, LLVMValueRef c, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildSelect(g->b, c, a, b, ""); }
static LLVMValueRef olt(cg_ctx *g, LLVMValueRef a, LLVMValueRef b) { return LLVMBuildFCmp(g->b, LLVMRealOLT, a, b, ""); }
static LLVMValueRef fmuladd(cg_ctx *g, LLVMValueRef a, LLVMValueRef b, LLVMValueRef c) {
    LLVMTypeRef t = LLVMTypeOf(a);
    LLVMValueRef args[3] = {a, b, c};
    return cg_intrinsic(g, "llvm.fmuladd", &t, 1, args, 3);
}

LLVMValueRef cg_x86_minmax(cg_ctx *g, bool max, LLVMValueRef a, LLVMValueRef b) {
    LLVMTypeRef t = LLVMTypeOf(a);
    if (!g->avx512 || LLVMTypeOf(b) != t || LLVMGetTypeKind(t) != LLVMVectorTypeKind || LLVMGetVectorSize(t) != 16 ||
        LLVMGetElementType(t) != LLVMFloatTypeInContext(g->ctx))
        return NULL;
    LLVMValueRef args[3] = {a, b, LLVMConstInt(LLVMInt32TypeInContext(g->ctx), 4, 0)}; /* the current rounding */
    return cg_intrinsic(g, max ? "llvm.x86.avx512.max.ps.512" : "llvm.x86.avx512.min.ps.512", NULL, 0, args, 3);
}

/* hi < x ? hi : x, NaN passed through: x86's min(hi, x) exactly. */
static LLVMValueRef clamp_above(cg_ctx *g, LLVMValueRef x, LLVMValueRef hi) {
    LLVMValueRef y = cg_x86_minmax(g, false, hi, x);
    return y ? y : sel(g, olt(g, hi, x), hi, x);
}

/* x clamped to [lo, hi], NaN passed through: x < lo ? lo : hi < x ? hi : x, which is x86's
 * min(hi, max(lo, x)) exactly (a NaN x comes back as x): LLVM leaves the nested selects as
 * compares and masked moves. */
static LLVMValueRef clamp(cg_ctx *g, LLVMValueRef x, LLVMValueRef lo, LLVMValueRef hi) {
    LLVMValueRef y = cg_x86_minmax(g, true, lo, x);
    return clamp_above(g, y ? y : sel(g, olt(g, x, lo), lo, x), hi);
}

/* 2^k for integer k in [-126, 127], built from its exponent bits. */
static LLVMValueRef pow2(cg_ctx *g, LLVMValueRef k) {
    LLVMValueRef bits = LLVMBuildShl(g->b, LLVMBuildAdd(g->b, k, icst(g, k, 127), ""), icst(g, k, 23), "");
    LLVMTypeRef ft = LLVMGetTypeKind(LLVMTypeOf(k)) == LLVMVectorTypeKind
                         ? LLVMVectorType(LLVMFloatTypeInContext(g->ctx), LLVMGetVectorSize(LLVMTypeOf(k)))
                         : LLVMFloatTypeInContext(g->ctx);
    return LLVMBuildBitCast(g->b, bits, ft, "");
}

/* y 2^n for a whole float n in [-150, 129]: one vscalefps on AVX-512 (16 lanes), else
 * through the exponent bits in two halves, so results down to the subnormals and up to
 * overflow come out right. Both round once (y 2^(n/2) is exact), so they agree to the bit. */
static LLVMValueRef scale2(cg_ctx *g, LLVMValueRef y, LLVMValueRef n, LLVMValueRef k) {
    LLVMTypeRef t = LLVMTypeOf(y);
    if (g->avx512 && LLVMGetTypeKind(t) == LLVMVectorTypeKind && LLVMGetVectorSize(t) == 16) {
        LLVMValueRef args[5] = {y, n, LLVMGetUndef(t), LLVMConstInt(LLVMInt16TypeInContext(g->ctx), 0xffff, 0),
                                LLVMConstInt(LLVMInt32TypeInContext(g->ctx), 4, 0)}; /* the current rounding */
        return cg_intrinsic(g, "llvm.x86.avx512.mask.scalef.ps.512", NULL, 0, args, 5);
    }
    LLVMValueRef k1 = LLVMBuildAShr(g->b, k, icst(g, k, 1), ""), k2 = LLVMBuildSub(g->b, k, k1, "");
    return fmul(g, fmul(g, y, pow2(g, k1)), pow2(g, k2));
}

LLVMValueRef cg_exp_f32(cg_ctx *g, LLVMValueRef x) {
    LLVMValueRef lo = cst(g, x, -104), hi = cst(g, x, 89);
    LLVMValueRef xc = clamp(g, x, lo, hi);
    /* t + 1.5 * 2^23 rounds t to an integer (to even, |t| < 2^22) held in the low bits */
    LLVMValueRef magic = cst(g, x, 12582912.0);
    LLVMValueRef shifted = fmuladd(g, xc, cst(g, x, 1.44269504088896341), magic);
    LLVMValueRef n = fsub(g, shifted, magic);
    LLVMValueRef r = fmuladd(g, n, cst(g, x, -0.693359375), xc);
    r = fmuladd(g, n, cst(g, x, 2.12194440e-4), r);
    static const double p[] = {1.9875691500E-4, 1.3981999507E-3, 8.3334519073E-3, 4.1665795894E-2, 1.6666665459E-1,
                               5.0000001201E-1};
    LLVMValueRef y = cst(g, x, p[0]);
    for (int i = 1; i < 6; i++)
        y = fmuladd(g, y, r, cst(g, x, p[i]));
    y = fadd(g, fmuladd(g, y, fmul(g, r, r), r), cst(g, x, 1));
    /* n is in [-150, 129] (NaN: any n, y is NaN) */
    LLVMTypeRef it = int_like(g, x);
    LLVMValueRef k = LLVMBuildSub(g->b, LLVMBuildBitCast(g->b, shifted, it, ""), LLVMBuildBitCast(g->b, magic, it, ""), "");
    return scale2(g, y, n, k);
}

/* tanh x = x (a + R(x^2) / Q(x^2)) on [-9, 9] (beyond, tanh x rounds to +-1 in f32 and x
 * is clamped to 9), Q monic of degree 4 in x^2 and R of degree 3: a rational function of
 * degrees 4 and 4 in x^2 (equal degrees fit best for the count: 2.2e-8 of relative error
 * in double where degrees 6 and 3, one multiply-add more, gave 2.9e-8, and 3 and 4 gave
 * 4e-7), written so its multiplies are few. On Zen 5 multiplies and multiply-adds share two
 * pipes while adds, min and max have two more, and the chain's tanh stages were bound by
 * the former: Q's leading 1 makes its first step an add, and P / Q = a + R / Q (a, P's
 * leading coefficient) moves P's into an add after the division: 9 multiplies a vector
 * where x P / Q took 11 (the bench's chain, sigmoid then tanh: 1.42 -> 1.29 ms at 1 thread,
 * 0.83 -> 0.74 at 2).
 * The coefficients are a minimax fit of relative error, a rounded to f32 first and the rest
 * one at a time with the others refitted (scripts/fit_tanh.py): 3.8e-8 in exact arithmetic.
 * a + R(0) / Q(0) rounds to 1 exactly, so tiny and subnormal x come back as x, the sign of
 * zero kept. The f32 evaluation's rounding makes the error up to 6 units of 2^-24 (5.28
 * measured over every third float in [3e-5, 12], largest near |x| = 5.7); 8 for the
 * functions from libmvec. */
LLVMValueRef cg_tanh_f32(cg_ctx *g, LLVMValueRef x, double scale, bool nonneg, double c, LLVMValueRef d) {
    static const double a = 0.0171953216;
    static const double q[] = {1, 421.643646, 33169.082, 598508.625, 1281126.38}; /* highest power first */
    static const double r[] = {19.2214184, 3912.42456, 161175.141, 1259097};
    enum { NQ = sizeof q / sizeof *q - 1, NR = sizeof r / sizeof *r - 1 }; /* the degrees in x^2 */
    /* c tanh(s x) + d = x (c s a + c s R'(x^2) / Q'(x^2)) + d, where Q'(u) = Q(s^2 u) / s^8
     * (still monic) and R'(u) = R(s^2 u) / s^8: for c and s powers of two the scaled
     * coefficients are exact and every step rounds as it would on s x, without the multiply
     * (sigmoid's 1/2 tanh(x/2) + 1/2 is one multiply-add at the end) */
    double s2 = scale * scale, cs = c * scale;
    LLVMValueRef lo = cst(g, x, -9 / scale), hi = cst(g, x, 9 / scale);
    LLVMValueRef xc = nonneg ? clamp_above(g, x, hi) : clamp(g, x, lo, hi);
    LLVMValueRef u = fmul(g, xc, xc);
    LLVMValueRef den = fadd(g, u, cst(g, x, q[1] / s2));
    for (int i = 2; i <= NQ; i++)
        den = fmuladd(g, den, u, cst(g, x, q[i] / pow(s2, i)));
    LLVMValueRef num = cst(g, x, cs * r[0] / pow(s2, NQ - NR));
    for (int i = 1; i <= NR; i++)
        num = fmuladd(g, num, u, cst(g, x, cs * r[i] / pow(s2, NQ - NR + i)));
    LLVMValueRef ratio = fadd(g, LLVMBuildFDiv(g->b, num, den, ""), cst(g, x, cs * a));
    return d ? fmuladd(g, xc, ratio, d) : fmul(g, xc, ratio);
}

/* k[0] + k[1] u + .. + k[5] u^5 by Estrin's scheme (u2 = u^2): three pairs, then two
 * multiply-adds by u2; k[5] = 1 makes the high pair an add. Fewer roundings in a row than
 * Horner's rule: erf's worst error 5.07 units of 2^-24 where Horner's gave 5.95. */
static LLVMValueRef estrin5(cg_ctx *g, const double *k, LLVMValueRef u, LLVMValueRef u2) {
    LLVMValueRef lo = fmuladd(g, u, cst(g, u, k[1]), cst(g, u, k[0]));
    LLVMValueRef mid = fmuladd(g, u, cst(g, u, k[3]), cst(g, u, k[2]));
    LLVMValueRef hi = k[5] == 1 ? fadd(g, u, cst(g, u, k[4])) : fmuladd(g, u, cst(g, u, k[5]), cst(g, u, k[4]));
    return fmuladd(g, fmuladd(g, hi, u2, mid), u2, lo);
}

/* erf x = x P(x^2) / Q(x^2) on [-4, 4], P of degree 5 and Q monic of degree 5, a minimax
 * fit of relative error (scripts/fit_erf.py: 3.4e-8 with the f32 coefficients, 5.07 units
 * of 2^-24 at worst in f32 steps). x is clamped to [-4, 4] (erf x rounds to +-1 from
 * 3.8725 on) and the result to [-1, 1]: P's leading coefficient is set so the clamped end
 * comes out at least 1, so erf(+-inf) = +-1 exactly; NaN passes both clamps. 12
 * multiplies and a division a vector, where libmvec's erff was a call that spilled the
 * live registers around it: a GELU (x/2 (1 + erf(x / sqrt 2))) fused after a MatMul of
 * K = 96 (ConvNeXt's first stage, 3136 x 96 x 384) doubled its time, 1.1 -> 2.1-2.5 ms;
 * inline, 1.4-1.8. */
LLVMValueRef cg_erf_f32(cg_ctx *g, LLVMValueRef x) {
    static const double p[] = {30153.0215, 5171.69629, 1418.97241, 103.76059, 7.60419703, 0.0530962348};
    static const double q[] = {26722.4199, 13490.749, 3082.31299, 406.351105, 31.678793, 1}; /* constant first */
    LLVMValueRef xc = clamp(g, x, cst(g, x, -4), cst(g, x, 4));
    LLVMValueRef u = fmul(g, xc, xc), u2 = fmul(g, u, u);
    LLVMValueRef y = LLVMBuildFDiv(g->b, fmul(g, xc, estrin5(g, p, u, u2)), estrin5(g, q, u, u2), "");
    return clamp(g, y, cst(g, x, -1), cst(g, x, 1));
}
