/*
 * pb_guard.c — protobuf input checked before protobuf-c unpacks it, and unpacked with a
 * memory cap. protobuf-c recurses once per nested message with no limit (the C++, Java
 * and Python runtimes stop at 100), so a few kilobytes of nested ONNX subgraphs could
 * exhaust the stack; and its repeated fields cost a pointer plus a struct per element,
 * so two bytes of input can ask for a hundred: a small file, a huge allocation.
 *
 * pb_prescan walks the wire format with the message descriptors (a length-delimited field
 * is a submessage only if the schema says so) and refuses nesting past PB_MAX_DEPTH,
 * lengths past the end, and the deprecated group wire types. pb_unpack then unpacks with
 * an allocator that stops at a cap (16 times the input plus 64 MiB: far above what a real
 * model's unpacking takes, far below what the amplification can ask), so protobuf-c
 * fails cleanly instead.
 */
#include "frontend/pb_guard.h"

#include <stdio.h>
#include <stdlib.h>

/* Reads a varint at *p (< end); false if it runs past end or past 10 bytes. */
static bool varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*p >= end)
            return false;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return true;
        }
    }
    return false;
}

static bool scan(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end, int depth, char *why,
                 size_t cap) {
    if (depth > PB_MAX_DEPTH) {
        snprintf(why, cap, "%s: messages nested deeper than %d levels", desc->short_name, PB_MAX_DEPTH);
        return false;
    }
    while (p < end) {
        uint64_t tag, len;
        if (!varint(&p, end, &tag)) {
            snprintf(why, cap, "%s: a field tag runs past the end of the message", desc->short_name);
            return false;
        }
        unsigned wire = (unsigned)(tag & 7);
        uint64_t number = tag >> 3;
        const ProtobufCFieldDescriptor *f =
            number <= 0xffffffffu ? protobuf_c_message_descriptor_get_field(desc, (unsigned)number) : NULL;
        char field[96];
        snprintf(field, sizeof field, "%s field %llu%s%s%s", desc->short_name, (unsigned long long)number,
                 f ? " (" : "", f ? f->name : "", f ? ")" : "");
        if (number == 0) {
            snprintf(why, cap, "%s: field number 0 is not valid", desc->short_name);
            return false;
        }
        switch (wire) {
        case 0:
            if (!varint(&p, end, &len)) {
                snprintf(why, cap, "%s: a varint runs past the end of its message", field);
                return false;
            }
            break;
        case 1:
        case 5:
            if ((size_t)(end - p) < (wire == 1 ? 8u : 4u)) {
                snprintf(why, cap, "%s: a fixed-size value runs past the end of its message", field);
                return false;
            }
            p += wire == 1 ? 8 : 4;
            break;
        case 2: {
            if (!varint(&p, end, &len) || len > (uint64_t)(end - p)) {
                snprintf(why, cap, "%s: its length runs past the end of its message", field);
                return false;
            }
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && !scan(f->descriptor, p, p + len, depth + 1, why, cap))
                return false;
            p += len;
            break;
        }
        default:
            snprintf(why, cap, "%s: wire type %u (a group, or invalid) is not accepted", field, wire);
            return false;
        }
    }
    return true;
}

bool pb_prescan(const ProtobufCMessageDescriptor *desc, const void *data, size_t size, char *why, size_t cap) {
    const uint8_t *p = data;
    return scan(desc, p, p + size, 1, why, cap);
}

typedef struct capped {
    size_t used, cap;
    bool exceeded;
} capped;

/* Each block carries its size in front (16 bytes, so the rest stays aligned). */
static void *capped_alloc(void *data, size_t size) {
    capped *c = data;
    if (size > c->cap - c->used || size > SIZE_MAX - 16) {
        c->exceeded = true;
        return NULL;
    }
    size_t *block = malloc(size + 16);
    if (!block)
        return NULL;
    c->used += size;
    block[0] = size;
    return (char *)block + 16;
}

static void capped_free(void *data, void *ptr) {
    if (!ptr)
        return;
    capped *c = data;
    size_t *block = (size_t *)((char *)ptr - 16);
    c->used -= block[0];
    free(block);
}

ProtobufCMessage *pb_unpack(const ProtobufCMessageDescriptor *desc, const void *data, size_t size, char *why,
                            size_t cap) {
    if (!pb_prescan(desc, data, size, why, cap))
        return NULL;
    capped state = {.cap = size > (SIZE_MAX - PB_CAP_BASE) / PB_CAP_FACTOR ? SIZE_MAX : size * PB_CAP_FACTOR + PB_CAP_BASE};
    ProtobufCAllocator a = {.alloc = capped_alloc, .free = capped_free, .allocator_data = &state};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a, size, data);
    if (!m)
        snprintf(why, cap, state.exceeded ? "unpacking it would take more than %zu bytes (16 times the file plus 64 MiB)"
                                          : "corrupt or truncated protobuf",
                 state.cap);
    return m;
}

void pb_free(ProtobufCMessage *m) {
    capped state = {.cap = SIZE_MAX, .used = SIZE_MAX / 2}; /* frees only: the count is not checked */
    ProtobufCAllocator a = {.alloc = capped_alloc, .free = capped_free, .allocator_data = &state};
    protobuf_c_message_free_unpacked(m, &a);
}
