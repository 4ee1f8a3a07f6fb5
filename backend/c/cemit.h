/*
 * cemit.h — the C backend: loop IR -> a self-contained C99 library, NAME.c and NAME.h.
 *
 * NAME.c holds the kernels (one static function each), the weights as C arrays (floats
 * as hexadecimal literals, so they are exact), the memory plan and a runner; it needs
 * only libc and libm and builds with `cc -O3 -fPIC -shared`. NAME.h declares the API
 * that every emitted kiln library exports:
 *
 *   NAME_ctx *NAME_create(void);  void NAME_destroy(NAME_ctx *);
 *   void NAME_set_threads(NAME_ctx *, int);
 *   int NAME_run(NAME_ctx *, const void *const *inputs, void *const *outputs);
 *   const char *NAME_last_error(NAME_ctx *);
 *   int NAME_num_inputs(void);  int NAME_num_outputs(void);
 *   const kiln_tensor_desc *NAME_input_desc(int);  ... NAME_output_desc(int);
 */
#ifndef KILN_BACKEND_C_CEMIT_H
#define KILN_BACKEND_C_CEMIT_H

#include "ir/loop.h"

#include <stdio.h>

/* Writes the library's source and header. `name` must be a C identifier. With `external`,
 * the kernels and constants are not written but declared: another backend's object file
 * defines them as NAME_kernel and NAME_c<i> (the LLVM backend's `kiln compile`). */
kiln_status cemit_source(const lir_module *m, const char *name, bool external, FILE *c_file, FILE *h_file,
                         kiln_diag *d);

#endif
