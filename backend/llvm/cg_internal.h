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
} cg_ctx;

/* Emits every kernel of m into g->mod (created by the caller in g->ctx) and verifies it. */
kiln_status cg_module(cg_ctx *g, const lir_module *m, kiln_diag *d);
LLVMValueRef cg_buffer(cg_ctx *g, const lir_buffer *buf);

#endif
