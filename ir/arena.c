/*
 * arena.c — a chain of blocks; each allocation bumps a pointer in the newest block.
 * Large requests get a block of their own so small ones do not waste its tail; those of
 * a MiB or more (a model's weights) are whole pages from the kernel, zeroed as they are
 * mapped (runtime/pages.c), where malloc's memory needed a memset before the copy.
 */
#include "ir/arena.h"
#include "runtime/rt.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct arena_block {
    struct arena_block *next;
    size_t size, used;
    bool pages; /* from kiln_rt_pages_alloc */
    _Alignas(64) unsigned char data[];
} arena_block;

struct arena {
    arena_block *head;
    size_t cap, total;
};

enum { ARENA_BLOCK_BYTES = 64 * 1024 };

arena *arena_create(size_t cap_bytes) {
    arena *a = calloc(1, sizeof *a);
    if (a)
        a->cap = cap_bytes;
    return a;
}

void arena_destroy(arena *a) {
    if (!a)
        return;
    for (arena_block *b = a->head, *next; b; b = next) {
        next = b->next;
        if (b->pages)
            kiln_rt_pages_free(b, sizeof(arena_block) + b->size);
        else
            free(b);
    }
    free(a);
}

void *arena_alloc(arena *a, size_t size, size_t align) {
    if (!a || align == 0 || align > 64)
        return NULL;
    arena_block *b = a->head;
    if (b) {
        size_t at = (b->used + align - 1) & ~(align - 1);
        if (at <= b->size && size <= b->size - at) {
            b->used = at + size;
            return memset(b->data + at, 0, size);
        }
    }
    size_t want = size > ARENA_BLOCK_BYTES / 4 ? size : ARENA_BLOCK_BYTES;
    if (want > SIZE_MAX - sizeof(arena_block) || (a->cap && a->total + want > a->cap))
        return NULL;
    bool pages = want >= KILN_RT_PAGES_MIN;
    size_t bytes = sizeof(arena_block) + want;
    void *mem = NULL;
    arena_block *nb = pages ? kiln_rt_pages_alloc(bytes) : posix_memalign(&mem, 64, bytes) ? NULL : mem;
    if (!nb)
        return NULL;
    nb->pages = pages;
    nb->size = want;
    nb->used = size;
    a->total += want;
    if (b && want != ARENA_BLOCK_BYTES) { /* a big one-off: keep the current block for bumping */
        nb->next = b->next;
        b->next = nb;
    } else {
        nb->next = b;
        a->head = nb;
    }
    return pages ? nb->data : memset(nb->data, 0, size);
}

void *arena_array(arena *a, size_t elem, int64_t count, size_t align) {
    if (count < 0 || (elem && (uint64_t)count > SIZE_MAX / elem))
        return NULL;
    size_t bytes = elem * (size_t)count;
    return arena_alloc(a, bytes ? bytes : 1, align);
}

char *arena_strndup(arena *a, const char *s, size_t n) {
    char *r = arena_alloc(a, n + 1, 1);
    if (r)
        memcpy(r, s, n);
    return r;
}

char *arena_strdup(arena *a, const char *s) {
    return arena_strndup(a, s, strlen(s));
}

size_t arena_used(const arena *a) {
    return a->total;
}
