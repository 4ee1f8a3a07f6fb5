/*
 * model_path.c — companion files of a model stay inside its folder (see model_path.h).
 */
#include "frontend/model_path.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

void model_path_dir(const char *path, char *dir, size_t cap) {
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, cap, ".");
    else if (slash == path)
        snprintf(dir, cap, "/");
    else
        snprintf(dir, cap, "%.*s", (int)(slash - path), path);
}

/* Any ".." component: "..", "../x", "x/../y", "x/..". */
static bool has_dotdot(const char *rel) {
    for (const char *p = rel; (p = strstr(p, "..")); p += 2)
        if ((p == rel || p[-1] == '/') && (p[2] == 0 || p[2] == '/'))
            return true;
    return false;
}

model_path_problem model_path_resolve(const char *dir, const char *rel, char **real) {
    *real = NULL;
    if (rel[0] == '/' || has_dotdot(rel))
        return MODEL_PATH_OUTSIDE;
    size_t len = strlen(dir) + strlen(rel) + 2;
    char *path = malloc(len);
    if (!path)
        return MODEL_PATH_OOM;
    snprintf(path, len, "%s/%s", dir, rel);
    char *real_dir = realpath(dir, NULL), *real_file = realpath(path, NULL);
    free(path);
    model_path_problem problem = MODEL_PATH_OK;
    struct stat sb;
    size_t n = real_dir ? strlen(real_dir) : 0;
    if ((!real_dir || !real_file) && errno == ENOMEM)
        problem = MODEL_PATH_OOM;
    else if (!real_dir || !real_file)
        problem = MODEL_PATH_MISSING;
    else if (!strcmp(real_file, real_dir))
        problem = MODEL_PATH_NOT_FILE; /* the folder itself */
    else if (strncmp(real_file, real_dir, n) || (real_file[n] != '/' && strcmp(real_dir, "/")))
        problem = MODEL_PATH_ESCAPES;
    else if (stat(real_file, &sb) != 0 || !S_ISREG(sb.st_mode))
        problem = MODEL_PATH_NOT_FILE;
    else if (sb.st_nlink != 1)
        problem = MODEL_PATH_LINKED;
    free(real_dir);
    if (problem == MODEL_PATH_OK)
        *real = real_file;
    else
        free(real_file);
    return problem;
}

int model_path_open(const char *real) {
    int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat sb;
    if (fd >= 0 && (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_nlink != 1)) {
        close(fd);
        fd = -1;
    }
    return fd;
}
