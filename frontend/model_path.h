/*
 * model_path.h — where a model's companion files (weights, external data) may come from.
 *
 * A model names its companion files relative to its own folder, and kiln reads nothing
 * outside that folder: absolute paths, ".." components, and paths whose real location
 * (after following symlinks) leaves the folder are refused. The frontends share this one
 * check so that it is hardened in one place.
 */
#ifndef KILN_FRONTEND_MODEL_PATH_H
#define KILN_FRONTEND_MODEL_PATH_H

#include <stddef.h>

#include "kiln.h"

/* The folder holding `path`: "." for a bare file name, "/" for a file in the root. */
void model_path_dir(const char *path, char *dir, size_t cap);

typedef enum model_path_problem {
    MODEL_PATH_OK,
    MODEL_PATH_OUTSIDE, /* absolute, or a ".." component */
    MODEL_PATH_ESCAPES, /* its real path (symlinks followed) is outside the folder */
    MODEL_PATH_MISSING, /* it does not exist, or cannot be resolved */
    MODEL_PATH_NOT_FILE, /* it is not a regular file */
    MODEL_PATH_LINKED,   /* it has other hard links: possibly a file from outside, linked in */
    MODEL_PATH_OOM       /* memory ran out */
} model_path_problem;

/* Resolves `rel` inside `dir`. On MODEL_PATH_OK, *real is the file's real path (caller
 * frees); otherwise *real is NULL. */
model_path_problem model_path_resolve(const char *dir, const char *rel, char **real);

/* Opens a path model_path_resolve returned, read-only, without following a symlink put in
 * its place since, and checks again what it opened (a regular file with one link).
 * Returns the descriptor, or -1. */
int model_path_open(const char *real);

#endif
