/*
 * arena.h — bump allocation for objects that share one lifetime (a graph, a pass, a run).
 *
 * Nothing allocated here is freed one object at a time: arena_destroy releases it all.
 * Allocation returns NULL when memory runs out or the arena's cap would be passed; callers
 * turn that into KILN_ERR_OOM.
 */
#ifndef KILN_IR_ARENA_H
#define KILN_IR_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct arena arena;

arena *arena_create(size_t cap_bytes); /* 0: no cap beyond the system's */
void arena_destroy(arena *a);          /* NULL is a no-op */
void *arena_alloc(arena *a, size_t size, size_t align); /* zeroed */
void *arena_array(arena *a, size_t elem, int64_t count, size_t align); /* overflow-checked */
char *arena_strdup(arena *a, const char *s);
char *arena_strndup(arena *a, const char *s, size_t n);
size_t arena_used(const arena *a);

#define ARENA_NEW(a, T) ((T *)arena_alloc((a), sizeof(T), _Alignof(T)))
#define ARENA_ARRAY(a, T, n) ((T *)arena_array((a), sizeof(T), (n), _Alignof(T)))

#endif
