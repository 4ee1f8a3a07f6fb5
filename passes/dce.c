/*
 * dce.c — dead-code elimination: keeps the nodes and initializers that some graph
 * output depends on. Graph inputs stay, even unused: they are the model's interface.
 */
#include "passes/pass.h"

#include <stdlib.h>

kiln_status pass_dce(ir_graph *g, pass_ctx *cx) {
    bool *live = calloc((size_t)g->value_ids + 1, sizeof *live);
    bool *keep = calloc((size_t)(g->node_count > g->init_count ? g->node_count : g->init_count) + 1,
                        sizeof *keep);
    if (!live || !keep) {
        free(live), free(keep);
        return diag_error(cx->d, LOC_NONE, KILN_ERR_OOM, "out of memory");
    }
    for (int i = 0; i < g->output_count; i++)
        live[g->outputs[i]->id] = true;
    for (int i = g->node_count - 1; i >= 0; i--) { /* reverse topological order */
        const ir_node *n = g->nodes[i];
        for (int j = 0; j < n->output_count && !keep[i]; j++)
            keep[i] = live[n->outputs[j]->id];
        for (int j = 0; keep[i] && j < n->input_count; j++)
            if (n->inputs[j])
                live[n->inputs[j]->id] = true;
    }
    ir_graph_keep_nodes(g, keep);
    for (int i = 0; i < g->init_count; i++)
        keep[i] = live[g->inits[i]->id];
    ir_graph_keep_inits(g, keep);
    free(live), free(keep);
    return KILN_OK;
}
