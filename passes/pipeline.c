/*
 * pipeline.c — the graph pass pipeline (see pass.h for what each pass does).
 */
#include "passes/pass.h"
#include "ir/verify.h"

#include <string.h>

const pass pass_pipeline[] = {
    {"shape", "dtype and shape inference", pass_shape},
    {"fold", "constant folding", pass_fold},
    {"layout", "data layouts for compiled code (Gemm's transposed constant B, blocked convs)", pass_layout},
    {"dce", "dead-code elimination", pass_dce},
};
const int pass_pipeline_count = ARRAY_LEN(pass_pipeline);

const pass *pass_lookup(const char *name) {
    for (int i = 0; i < pass_pipeline_count; i++)
        if (!strcmp(pass_pipeline[i].name, name))
            return &pass_pipeline[i];
    return NULL;
}

kiln_status pass_run_pipeline(ir_graph *g, pass_ctx *cx, const char *stop_after, bool verify) {
    for (int i = 0; i < pass_pipeline_count; i++) {
        kiln_status st = pass_pipeline[i].run(g, cx);
        if (st)
            return st;
        if (verify) {
            kiln_diag vd = {0};
            kiln_status vst = ir_verify(g, NULL, NULL, &vd);
            if (vst == KILN_ERR_OOM)
                return diag_error(cx->d, LOC_NONE, KILN_ERR_OOM, "out of memory");
            if (vst)
                return diag_error(cx->d, LOC_NONE, KILN_ERR_INTERNAL,
                                  "pass '%s' broke an invariant: %s", pass_pipeline[i].name,
                                  vd.message);
        }
        if (stop_after && !strcmp(stop_after, pass_pipeline[i].name))
            break;
    }
    return KILN_OK;
}
