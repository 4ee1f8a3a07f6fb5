/*
 * jit.c — the target machine for the host CPU (or --target-cpu), the optimization
 * pipeline (LLVMRunPasses, "default<O3>"), in-process compilation with ORC LLJIT (libm
 * and the runtime resolved from the kiln process), and running the compiled kernels
 * over the storage the memory plan laid out.
 */
#include "backend/llvm/cg_internal.h"
#include "runtime/rt.h"

#include <stdatomic.h>

#include <llvm-c/Support.h>

#include <pthread.h>
#include <string.h>
#include <time.h>

enum { COMPILE_SHARES_MAX = 8 };

typedef int32_t (*kernel_fn)(void *const *args, int32_t threads);

struct cg_jit {
    const lir_module *m;
    int threads;
    LLVMOrcLLJITRef jit;
    kernel_fn *fns;
    double *begin_ms, *end_ms; /* profiling: each kernel's start and end in the last run */
    unsigned char *persist;    /* the persistent block: once kernels' outputs */
    size_t persist_pages;      /* its size where it came from kiln_rt_pages_alloc, else 0 */
    /* A spare arena kept from one run to the next: freed and allocated again every run, a
     * ResNet-18's 4.5 MiB came back from the kernel zeroed, page by page (1 thread 14.7 ->
     * 15.1 ms without glibc's tunables). A run takes it (or, while another run holds it,
     * allocates its own) and puts it back, so runs on several threads stay apart. */
    _Atomic(unsigned char *) spare;
    bool filled;               /* the once kernels have run */
};

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

void cg_jit_set_timing(cg_jit *j, double *begin_ms, double *end_ms) {
    j->begin_ms = begin_ms, j->end_ms = end_ms;
}

static kiln_status llvm_error(kiln_diag *d, LLVMErrorRef err, const char *what) {
    char *msg = LLVMGetErrorMessage(err);
    kiln_status st = diag_error(d, LOC_NONE, KILN_ERR_BACKEND, "%s: %s", what, msg);
    LLVMDisposeErrorMessage(msg);
    return st;
}

/* glibc's vector math library, loaded into the process once so that JIT code resolves
 * its functions (and linked into AOT libraries, driver/compile.c). */
static bool vector_math_loaded;
static void load_vector_math(void) { vector_math_loaded = !LLVMLoadLibraryPermanently("libmvec.so.1"); }
bool cg_vector_math(void) {
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, load_vector_math);
    return vector_math_loaded;
}

/* A target machine for the host (name and features detected now) or for `cpu`. */
static kiln_status target_machine(const cg_options *o, LLVMTargetMachineRef *out, char **triple_out, kiln_diag *d) {
    static bool initialized;
    if (!initialized) {
        LLVMInitializeNativeTarget();
        LLVMInitializeNativeAsmPrinter();
        initialized = true;
    }
    char *triple = LLVMGetDefaultTargetTriple(), *err = NULL;
    LLVMTargetRef target;
    if (LLVMGetTargetFromTriple(triple, &target, &err)) {
        kiln_status st = diag_error(d, LOC_NONE, KILN_ERR_BACKEND, "no LLVM target for %s: %s", triple, err);
        LLVMDisposeMessage(err), LLVMDisposeMessage(triple);
        return st;
    }
    char *cpu = o && o->target_cpu ? NULL : LLVMGetHostCPUName();
    char *features = o && o->target_cpu ? NULL : LLVMGetHostCPUFeatures();
    int level = o && o->opt_level >= 0 && o->opt_level <= 3 ? o->opt_level : 3;
    static const LLVMCodeGenOptLevel levels[] = {LLVMCodeGenLevelNone, LLVMCodeGenLevelLess, LLVMCodeGenLevelDefault,
                                                 LLVMCodeGenLevelAggressive};
    *out = LLVMCreateTargetMachine(target, triple, cpu ? cpu : o->target_cpu, features ? features : "", levels[level],
                                   LLVMRelocPIC, LLVMCodeModelJITDefault);
    LLVMDisposeMessage(cpu), LLVMDisposeMessage(features);
    if (triple_out)
        *triple_out = triple;
    else
        LLVMDisposeMessage(triple);
    return *out ? KILN_OK : diag_error(d, LOC_NONE, KILN_ERR_BACKEND, "LLVM could not create a target machine");
}

int cg_vector_bits(const char *target_cpu) {
    if (target_cpu) { /* a named CPU: its widest registers, from the name (a hint only:
                         LLVM splits or joins vectors to fit the real ones) */
        static const char *const wide[] = {"x86-64-v4", "avx512", "znver4", "znver5", "skylake-avx512", "cascadelake",
                                           "cooperlake", "icelake", "tigerlake", "sapphirerapids", "graniterapids",
                                           "emeraldrapids", "rocketlake", "cannonlake"};
        for (int i = 0; i < ARRAY_LEN(wide); i++)
            if (strstr(target_cpu, wide[i]))
                return 512;
        return !strcmp(target_cpu, "x86-64") || !strcmp(target_cpu, "x86-64-v2") || !strcmp(target_cpu, "generic") ? 128 : 256;
    }
    char *features = LLVMGetHostCPUFeatures();
    int bits = strstr(features, "+avx512f") ? 512 : strstr(features, "+avx2") ? 256 : 128;
    LLVMDisposeMessage(features);
    return bits;
}

/* The graph's constants as hidden globals PREFIXc<i>, their bytes as they are. */
static void embed_constants(cg_ctx *g, const lir_module *m) {
    const ir_graph *graph = m->graph;
    for (int i = 0; i < graph->init_count; i++) {
        const kiln_tensor *t = graph->inits[i]->init;
        size_t bytes = kiln_tensor_bytes(t);
        char symbol[512];
        snprintf(symbol, sizeof symbol, "%sc%d", g->prefix, i);
        LLVMValueRef data = LLVMConstStringInContext(g->ctx, bytes ? t->data : "", bytes ? (unsigned)bytes : 1, 1);
        LLVMValueRef global = LLVMAddGlobal(g->mod, LLVMTypeOf(data), symbol);
        LLVMSetInitializer(global, data);
        LLVMSetGlobalConstant(global, 1);
        LLVMSetAlignment(global, 64);
        LLVMSetVisibility(global, LLVMHiddenVisibility);
    }
}

/* Generates and optimizes m's kernels of `part` (of `parts`) into a new module of ctx. */
static kiln_status build(const lir_module *m, const cg_options *o, int part, int parts, const int *same,
                         LLVMContextRef ctx, LLVMModuleRef *out, kiln_diag *d) {
    cg_ctx g = {.ctx = ctx, .prefix = o && o->prefix ? o->prefix : "", .hidden = o && o->prefix, .part = part, .parts = parts, .same = same,
               .avx512 = cg_vector_bits(o ? o->target_cpu : NULL) == 512};
    g.mvec = g.avx512 && cg_vector_math();
    LLVMTargetMachineRef tm;
    char *triple;
    kiln_status st = target_machine(o, &tm, &triple, d);
    if (st)
        return st;
    g.mod = LLVMModuleCreateWithNameInContext("kiln", ctx);
    LLVMSetTarget(g.mod, triple);
    LLVMTargetDataRef layout = LLVMCreateTargetDataLayout(tm);
    LLVMSetModuleDataLayout(g.mod, layout);
    LLVMDisposeTargetData(layout);
    LLVMDisposeMessage(triple);
    if (g.hidden)
        embed_constants(&g, m);
    if (!(st = cg_module(&g, m, d))) {
        int level = o && o->opt_level >= 0 && o->opt_level <= 3 ? o->opt_level : 3;
        char passes[32];
        snprintf(passes, sizeof passes, "default<O%d>", level);
        LLVMPassBuilderOptionsRef po = LLVMCreatePassBuilderOptions();
        LLVMErrorRef err = LLVMRunPasses(g.mod, passes, tm, po);
        LLVMDisposePassBuilderOptions(po);
        if (err)
            st = llvm_error(d, err, "LLVM optimization failed");
    }
    LLVMDisposeTargetMachine(tm);
    if (st) {
        LLVMDisposeModule(g.mod);
        return st;
    }
    *out = g.mod;
    return KILN_OK;
}

kiln_status cg_emit_object(const lir_module *m, const cg_options *o, const char *path, kiln_diag *d) {
    int distinct, *same = lir_same_kernels(m, &distinct); /* cemit_source's runner calls each kernel by its first twin's name */
    if (!same)
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod;
    LLVMTargetMachineRef tm = NULL;
    kiln_status st = build(m, o, 0, 1, same, ctx, &mod, d);
    free(same);
    if (!st && !(st = target_machine(o, &tm, NULL, d))) {
        char *err = NULL;
        if (LLVMTargetMachineEmitToFile(tm, mod, (char *)path, LLVMObjectFile, &err)) {
            st = diag_error(d, LOC_NONE, KILN_ERR_BACKEND, "%s: LLVM could not write the object: %s", path, err);
            LLVMDisposeMessage(err);
        }
        LLVMDisposeTargetMachine(tm);
    }
    if (!st)
        LLVMDisposeModule(mod);
    LLVMContextDispose(ctx);
    return st;
}

kiln_status cg_print_llvm(const lir_module *m, const cg_options *o, FILE *f, kiln_diag *d) {
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod;
    kiln_status st = build(m, o, 0, 1, NULL, ctx, &mod, d);
    if (!st) {
        char *text = LLVMPrintModuleToString(mod);
        fputs(text, f);
        LLVMDisposeMessage(text);
        LLVMDisposeModule(mod);
    }
    LLVMContextDispose(ctx);
    return st;
}

/* One share of the JIT's work: kernels i % parts == part, optimized and compiled to an
 * object in memory, in a context of its own, so that shares compile on threads of their
 * own (LLVM's optimization and code generation were 60% of ResNet-18's 1.1-1.4 s). */
typedef struct compile_share {
    const lir_module *m;
    const cg_options *o;
    int part, parts;
    const int *same;
    LLVMMemoryBufferRef object;
    kiln_status st;
    kiln_diag d;
} compile_share;

static void *compile_share_run(void *arg) {
    compile_share *s = arg;
    LLVMContextRef ctx = LLVMContextCreate();
    LLVMModuleRef mod;
    LLVMTargetMachineRef tm;
    if (!(s->st = build(s->m, s->o, s->part, s->parts, s->same, ctx, &mod, &s->d))) {
        if (!(s->st = target_machine(s->o, &tm, NULL, &s->d))) {
            char *err = NULL;
            if (LLVMTargetMachineEmitToMemoryBuffer(tm, mod, LLVMObjectFile, &err, &s->object)) {
                s->st = diag_error(&s->d, LOC_NONE, KILN_ERR_BACKEND, "LLVM could not compile the kernels: %s", err);
                LLVMDisposeMessage(err);
            }
            LLVMDisposeTargetMachine(tm);
        }
        LLVMDisposeModule(mod);
    }
    LLVMContextDispose(ctx);
    return NULL;
}

/* Compiles m's kernels in `parts` shares, parts - 1 of them on threads of their own. */
static kiln_status compile_shares(const lir_module *m, const cg_options *o, int parts, const int *same,
                                  compile_share *shares, kiln_diag *d) {
    pthread_t threads[COMPILE_SHARES_MAX];
    bool started[COMPILE_SHARES_MAX] = {0};
    for (int p = 0; p < parts; p++)
        shares[p] = (compile_share){.m = m, .o = o, .part = p, .parts = parts, .same = same};
    for (int p = 1; p < parts; p++)
        started[p] = !pthread_create(&threads[p], NULL, compile_share_run, &shares[p]);
    compile_share_run(&shares[0]);
    for (int p = 1; p < parts; p++) {
        if (started[p])
            pthread_join(threads[p], NULL);
        else /* no thread to be had: this one does it */
            compile_share_run(&shares[p]);
    }
    for (int p = 0; p < parts; p++)
        if (shares[p].st) {
            *d = shares[p].d;
            return shares[p].st;
        }
    return KILN_OK;
}

kiln_status cg_jit_compile(const lir_module *m, const cg_options *o, cg_jit **out, kiln_diag *d) {
    *out = NULL;
    cg_jit *j = calloc(1, sizeof *j);
    if (!j || !(j->fns = calloc((size_t)m->kernel_count + 1, sizeof *j->fns))) {
        free(j);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    atomic_init(&j->spare, NULL);
    j->m = m;
    j->threads = kiln_rt_default_threads();
    /* kernels that compile to the same code as an earlier one (ViT-B's 12 layers: 199
     * kernels with the packing ones, 21 distinct) are compiled once, called under each name */
    int distinct, *same = lir_same_kernels(m, &distinct);
    if (!same) {
        cg_jit_destroy(j);
        return diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    /* a share per processor, though the runs may be held to fewer threads: compiling is
     * once, before the first run (ResNet-18 at --threads 1: 1.3-2.0 s on one, ~0.8-1.1 on two) */
    int parts = o && o->compile_threads > 0 ? o->compile_threads : j->threads;
    parts = parts < COMPILE_SHARES_MAX ? parts : COMPILE_SHARES_MAX;
    parts = parts > distinct ? distinct : parts;
    parts = parts < 1 ? 1 : parts;
    compile_share shares[COMPILE_SHARES_MAX] = {0};
    LLVMTargetMachineRef tm = NULL;
    kiln_status st = target_machine(o, &tm, NULL, d); /* first: it initializes LLVM's target */
    if (!st)
        st = compile_shares(m, o, parts, same, shares, d);
    if (!st) { /* the JIT takes the target machine over */
        LLVMOrcLLJITBuilderRef builder = LLVMOrcCreateLLJITBuilder();
        LLVMOrcLLJITBuilderSetJITTargetMachineBuilder(builder, LLVMOrcJITTargetMachineBuilderCreateFromTargetMachine(tm));
        LLVMErrorRef err = LLVMOrcCreateLLJIT(&j->jit, builder);
        LLVMOrcDefinitionGeneratorRef gen = NULL;
        if (!err)
            err = LLVMOrcCreateDynamicLibrarySearchGeneratorForProcess(&gen, LLVMOrcLLJITGetGlobalPrefix(j->jit), NULL, NULL);
        if (!err) { /* the runtime's parallel-for, from this process (it is linked statically) */
            LLVMOrcCSymbolMapPair runtime = {
                LLVMOrcLLJITMangleAndIntern(j->jit, "kiln_rt_parallel_for"),
                {(LLVMOrcExecutorAddress)(uintptr_t)kiln_rt_parallel_for, {LLVMJITSymbolGenericFlagsExported, 0}}};
            err = LLVMOrcJITDylibDefine(LLVMOrcLLJITGetMainJITDylib(j->jit), LLVMOrcAbsoluteSymbols(&runtime, 1));
        }
        if (!err)
            LLVMOrcJITDylibAddGenerator(LLVMOrcLLJITGetMainJITDylib(j->jit), gen);
        for (int p = 0; p < parts; p++) { /* the JIT takes each object over */
            if (!err)
                err = LLVMOrcLLJITAddObjectFile(j->jit, LLVMOrcLLJITGetMainJITDylib(j->jit), shares[p].object);
            else
                LLVMDisposeMemoryBuffer(shares[p].object);
            shares[p].object = NULL;
        }
        for (int i = 0; !err && i < m->kernel_count; i++) {
            LLVMOrcExecutorAddress addr;
            if (same[i] != i) {
                j->fns[i] = j->fns[same[i]];
                continue;
            }
            err = LLVMOrcLLJITLookup(j->jit, &addr, m->kernels[i]->name);
            j->fns[i] = (kernel_fn)(uintptr_t)addr;
        }
        if (err)
            st = llvm_error(d, err, "LLVM JIT compilation failed");
    } else if (tm) {
        LLVMDisposeTargetMachine(tm);
    }
    for (int p = 0; p < parts; p++)
        if (shares[p].object)
            LLVMDisposeMemoryBuffer(shares[p].object);
    free(same);
    if (st) {
        cg_jit_destroy(j);
        return st;
    }
    *out = j;
    return KILN_OK;
}

void cg_jit_set_threads(cg_jit *j, int threads) {
    j->threads = threads > 0 ? threads : 1;
}

void cg_jit_destroy(cg_jit *j) {
    if (!j)
        return;
    if (j->jit)
        LLVMOrcDisposeLLJIT(j->jit);
    free(j->fns);
    if (j->persist_pages)
        kiln_rt_pages_free(j->persist, j->persist_pages);
    else
        free(j->persist);
    free(atomic_load(&j->spare));
    free(j);
}

/* The address of storage s during a run (v: the graph value it holds, for constants). */
static void *storage_address(const cg_jit *j, const lir_storage *s, const ir_value *v, const kiln_tensor *const *inputs,
                             kiln_tensor **outputs, unsigned char *scratch) {
    switch (s->kind) {
    case LIR_STORE_PERSIST: return j->persist + s->offset;
    case LIR_STORE_INPUT: return inputs[s->index]->data;
    case LIR_STORE_OUTPUT: return outputs[s->index]->data;
    case LIR_STORE_CONST: return v->init->data;
    case LIR_STORE_ARENA: return scratch + s->offset;
    default: return NULL;
    }
}

kiln_status cg_jit_run(cg_jit *j, const kiln_tensor *const *inputs, kiln_tensor **outputs, kiln_diag *d) {
    const lir_module *m = j->m;
    const ir_graph *g = m->graph;
    kiln_status st = KILN_OK;
    for (int k = 0; k < g->output_count; k++)
        outputs[k] = NULL;
    unsigned char *scratch = atomic_exchange(&j->spare, NULL);
    if (!scratch)
        scratch = aligned_alloc(64, (size_t)(m->arena_bytes + 63) / 64 * 64 + 64);
    void **args = calloc(IR_VARIADIC + 1, sizeof *args);
    if (!scratch || !args) {
        st = diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory for the %lld-byte arena", (long long)m->arena_bytes);
        goto done;
    }
    for (int k = 0; !st && k < g->output_count; k++) {
        const kiln_tensor *t = &g->outputs[k]->type;
        kiln_diag td = {0};
        if ((st = kiln_rt_tensor_create_uninit(t->dtype, t->rank, t->dims, &outputs[k], &td)))
            st = diag_error(d, LOC_NONE, st, "output '%s': %s", g->outputs[k]->name, td.message);
    }
    /* a big block (packed weights, read every run) on huge pages where granted: fewer
     * faults as the once kernels fill it, fewer TLB misses as kernels stream it */
    if (!st && m->persist_bytes && !j->persist) {
        size_t bytes = (size_t)(m->persist_bytes + 63) / 64 * 64;
        j->persist_pages = bytes >= KILN_RT_PAGES_MIN ? bytes : 0;
        j->persist = j->persist_pages ? kiln_rt_pages_alloc(bytes) : aligned_alloc(64, bytes);
    }
    if (!st && m->persist_bytes && !j->persist)
        st = diag_error(d, LOC_NONE, KILN_ERR_OOM, "out of memory for the %lld-byte persistent block", (long long)m->persist_bytes);
    /* the once kernels (data derived from constants) before the first run's, then the rest;
     * a once kernel is not run again, and takes no time in a profile */
    for (int pass = j->filled; !st && pass < 2; pass++) {
        for (int i = 0; !st && i < m->kernel_count; i++) {
            const lir_kernel *kn = m->kernels[i];
            if (kn->once != (pass == 0)) {
                if (kn->once && j->begin_ms)
                    j->begin_ms[i] = j->end_ms[i] = 0;
                continue;
            }
            for (int p = 0; p < kn->param_count; p++)
                args[p] = storage_address(j, lir_buffer_storage(m, kn->params[p]), kn->params[p]->value, inputs, outputs, scratch);
            if (j->begin_ms)
                j->begin_ms[i] = now_ms();
            int32_t rc = j->fns[i](args, j->threads);
            if (j->end_ms)
                j->end_ms[i] = now_ms();
            if (rc > 0 && rc <= m->error_count)
                st = diag_error(d, kn->origin->loc, KILN_ERR_INVALID, "%s", m->errors[rc - 1]);
            else if (rc)
                st = diag_error(d, kn->origin->loc, KILN_ERR_INTERNAL, "kernel %s returned %d", kn->name, (int)rc);
        }
        j->filled = !st;
    }
    for (int k = 0; !st && k < g->output_count; k++) { /* outputs that no kernel wrote */
        const lir_storage *s = &m->storage[g->outputs[k]->id];
        if (s->kind != LIR_STORE_OUTPUT || s->index != k)
            memcpy(outputs[k]->data, storage_address(j, s, g->outputs[k], inputs, outputs, scratch),
                   kiln_tensor_bytes(outputs[k]));
    }
done:
    if (st)
        for (int k = 0; k < g->output_count; k++) {
            kiln_tensor_free(outputs[k]);
            outputs[k] = NULL;
        }
    unsigned char *none = NULL;
    if (scratch && !atomic_compare_exchange_strong(&j->spare, &none, scratch))
        free(scratch); /* another run put its arena back first */
    free(args);
    return st;
}
