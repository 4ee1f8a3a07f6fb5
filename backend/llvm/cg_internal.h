/*
 * cg_internal.h — state shared by the LLVM backend's files (not installed).
 */
#ifndef KILN_BACKEND_LLVM_CG_INTERNAL_H
#define KILN_BACKEND_LLVM_CG_INTERNAL_H

#include "backend/llvm/llvm_backend.h"

#include <llvm-c/Analysis.h>
#include <llvm-c/Core.h>
#include <llvm-c/Error.h>
#include <llvm-c/LLJIT.h>
#include <llvm-c/Orc.h>
#include <llvm-c/Target.h>
#include <llvm-c/TargetMachine.h>
#include <llvm-c/Transforms/PassBuilder.h>
#include <stdlib.h>

typedef struct cg_ctx {
    LLVMContextRef ctx;
    LLVMModuleRef mod;
    LLVMBuilderRef b;
    LLVMValueRef fn;
    const lir_kernel *kernel;
    LLVMValueRef *params; /* the kernel's parameter addresses */
    LLVMValueRef *vars;   /* allocas */
    LLVMValueRef args;    /* the kernel's argument array */
    LLVMValueRef threads; /* the kernel's thread count */
    int outlined;         /* parallel bodies outlined so far in this kernel */
    const char *prefix;   /* symbol prefix, "" for the JIT */
    bool hidden;          /* AOT: symbols stay inside the library */
    bool avx512;          /* the target has AVX-512F: cg_math.c may use its instructions */
    bool mvec;            /* and glibc's libmvec is there: f32 libm functions by vector */
    int part, parts;      /* this module holds the kernels numbered n % parts == part ... */
    const int *same;      /* ... counting only those with same[i] == i (NULL: all): a kernel
                             whose code is kernel same[i]'s is not emitted (lir_kernel_same) */
    /* inside a vectorized loop (cg_vector.c); lanes is 0 elsewhere */
    int lanes;
    int vvar;             /* the vectorized loop's variable */
    bool vonce;           /* ... which runs one whole vector from a constant start: */
    int64_t vfirst;       /* its lane 0's value */
    LLVMValueRef mask;    /* the active lanes (<lanes x i1>), or NULL for all */
    LLVMValueRef tail;    /* the tail's mask: lanes past the loop's end, iterations that do not exist */
    bool *varying;        /* scalars with a value per lane (declared in the loop's body) */
    LLVMValueRef *vvars;  /* their vector allocas, made on first use */
    bool oom;             /* an allocation failed: the kernel is abandoned (KILN_ERR_OOM) */
} cg_ctx;

/* Emits m's kernels of this part (all when parts <= 1; those g->same leaves) into g->mod
 * (created by the caller in g->ctx) and verifies it. */
kiln_status cg_module(cg_ctx *g, const lir_module *m, kiln_diag *d);
LLVMValueRef cg_buffer(cg_ctx *g, const lir_buffer *buf);

/* Shared by cg.c and cg_vector.c. */
LLVMValueRef cg_expr(cg_ctx *g, const lir_expr *e);
LLVMValueRef cg_scalar(cg_ctx *g, const lir_expr *e); /* e, uniform, as one scalar */
void cg_stmt(cg_ctx *g, const lir_stmt *s);
LLVMTypeRef cg_mem_type(cg_ctx *g, kiln_dtype t);
LLVMTypeRef cg_reg_type(cg_ctx *g, kiln_dtype t);
LLVMValueRef cg_intrinsic(cg_ctx *g, const char *name, LLVMTypeRef *types, int ntypes, LLVMValueRef *args, int n);
/* Vector mode: e's value per lane when cg_vector_expr knows it (uniform values broadcast,
 * variables, loads); false for operators, which cg_expr builds on vector operands. */
bool cg_vector_expr(cg_ctx *g, const lir_expr *e, LLVMValueRef *out);
/* Vector mode: emits s when it needs lanes (stores, scalars, conditions that differ
 * between lanes); false for what the scalar code emits as is (sequences, inner loops). */
bool cg_vector_stmt(cg_ctx *g, const lir_stmt *s);
/* f32 exp, tanh and erf inline, on a float or a vector of floats (cg_math.c). */
LLVMValueRef cg_exp_f32(cg_ctx *g, LLVMValueRef x);
/* c tanh(scale x) + d for scale and c powers of two (d NULL: no add); nonneg: x is >= 0
 * or NaN (lir_nonneg), so one clamp does */
LLVMValueRef cg_tanh_f32(cg_ctx *g, LLVMValueRef x, double scale, bool nonneg, double c, LLVMValueRef d);
/* f32 erf inline, within 6 units of 2^-24 relative */
LLVMValueRef cg_erf_f32(cg_ctx *g, LLVMValueRef x);
/* x86's max(a, b) = a > b ? a : b (max) or min(a, b) = a < b ? a : b as one vmaxps/vminps,
 * for 16-lane f32 on AVX-512; NULL for other types or targets (cg_math.c). */
LLVMValueRef cg_x86_minmax(cg_ctx *g, bool max, LLVMValueRef a, LLVMValueRef b);
/* A LIR_TRANSPOSE tile: vector loads, shuffles, vector stores (cg_vector.c). */
void cg_transpose(cg_ctx *g, const lir_stmt *s);
/* A LIR_VECTOR loop: full vectors, then one masked tail. */
void cg_vector_loop(cg_ctx *g, const lir_stmt *s);

#endif
