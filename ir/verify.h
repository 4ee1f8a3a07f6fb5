/*
 * verify.h — checks every structural invariant of a graph and reports each broken one
 * with the node or value it is about. Run after parsing/import and, in debug builds,
 * after every pass. Types are checked only where they are already known.
 */
#ifndef KILN_IR_VERIFY_H
#define KILN_IR_VERIFY_H

#include "ir/graph.h"

/* Called once per problem with a full one-line message. */
typedef void (*ir_problem_fn)(void *ctx, const char *message);

/* Returns the status of the first problem (also recorded in d), or KILN_OK.
 * `report` may be NULL; otherwise every problem is passed to it. */
kiln_status ir_verify(const ir_graph *g, ir_problem_fn report, void *ctx, kiln_diag *d);

#endif
