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
#include "runtime/rt.h"

#include <stdio.h>
#include <stdlib.h>

/* Reads a varint at *p (< end): 1 on success, 0 if it runs past end, -1 if it is longer
 * than the 10 bytes a 64-bit value takes. */
static int varint(const uint8_t **p, const uint8_t *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (*p >= end)
            return 0;
        uint8_t b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = v;
            return 1;
        }
    }
    return -1;
}

/* The wire type a field of this type is written with: 0 varint, 1 fixed64, 2 length-delimited,
 * 5 fixed32. */
static unsigned wire_of(ProtobufCType type) {
    switch (type) {
    case PROTOBUF_C_TYPE_INT32: case PROTOBUF_C_TYPE_SINT32: case PROTOBUF_C_TYPE_UINT32:
    case PROTOBUF_C_TYPE_INT64: case PROTOBUF_C_TYPE_SINT64: case PROTOBUF_C_TYPE_UINT64:
    case PROTOBUF_C_TYPE_BOOL: case PROTOBUF_C_TYPE_ENUM:
        return 0;
    case PROTOBUF_C_TYPE_FIXED64: case PROTOBUF_C_TYPE_SFIXED64: case PROTOBUF_C_TYPE_DOUBLE:
        return 1;
    case PROTOBUF_C_TYPE_FIXED32: case PROTOBUF_C_TYPE_SFIXED32: case PROTOBUF_C_TYPE_FLOAT:
        return 5;
    default:
        return 2;
    }
}

/* A packed repeated field's payload: whole varints or whole fixed-size values. */
static bool packed_ok(unsigned wire, const uint8_t *p, const uint8_t *end) {
    if (wire == 1 || wire == 5)
        return (size_t)(end - p) % (wire == 1 ? 8u : 4u) == 0;
    uint64_t v;
    while (p < end)
        if (varint(&p, end, &v) != 1)
            return false;
    return true;
}

static bool scan(const ProtobufCMessageDescriptor *desc, const uint8_t *p, const uint8_t *end, int depth, char *why,
                 size_t cap) {
    if (depth > PB_MAX_DEPTH) {
        snprintf(why, cap, "%s: messages nested deeper than %d levels", desc->short_name, PB_MAX_DEPTH);
        return false;
    }
    while (p < end) {
        uint64_t tag, len;
        if (varint(&p, end, &tag) != 1) {
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
        /* protobuf-c refuses a known field in the wrong wire type with no word of which one:
         * said here (a repeated number may also come packed, as a length-delimited run) */
        unsigned want = f ? wire_of(f->type) : wire;
        if (wire < 6 && wire != 3 && wire != 4 && wire != want &&
            !(wire == 2 && f->label == PROTOBUF_C_LABEL_REPEATED)) {
            snprintf(why, cap, "%s: wire type %u where the schema says %u", field, wire, want);
            return false;
        }
        switch (wire) {
        case 0: {
            int got = varint(&p, end, &len);
            if (got != 1) {
                snprintf(why, cap, got ? "%s: a varint longer than 10 bytes" : "%s: a varint runs past the end of its message",
                         field);
                return false;
            }
            break;
        }
        case 1:
        case 5:
            if ((size_t)(end - p) < (wire == 1 ? 8u : 4u)) {
                snprintf(why, cap, "%s: a fixed-size value runs past the end of its message", field);
                return false;
            }
            p += wire == 1 ? 8 : 4;
            break;
        case 2: {
            if (varint(&p, end, &len) != 1 || len > (uint64_t)(end - p)) {
                snprintf(why, cap, "%s: its length runs past the end of its message", field);
                return false;
            }
            if (f && f->type == PROTOBUF_C_TYPE_MESSAGE && !scan(f->descriptor, p, p + len, depth + 1, why, cap))
                return false;
            if (f && want != 2 && !packed_ok(want, p, p + len)) {
                snprintf(why, cap, "%s: a packed value runs past the end of the field", field);
                return false;
            }
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
    bool exceeded, oom;
} capped;

/* Each block carries its size in front (16 bytes, so the rest stays aligned). Big ones
 * (raw_data: a model's weights, copied by protobuf-c) are whole pages: see runtime/pages.c. */
static void *capped_alloc(void *data, size_t size) {
    capped *c = data;
    if (size > c->cap - c->used || size > SIZE_MAX - 16) {
        c->exceeded = true;
        return NULL;
    }
    size_t *block = size + 16 >= KILN_RT_PAGES_MIN ? kiln_rt_pages_alloc(size + 16) : malloc(size + 16);
    if (!block) {
        c->oom = true;
        return NULL;
    }
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
    if (block[0] + 16 >= KILN_RT_PAGES_MIN)
        kiln_rt_pages_free(block, block[0] + 16);
    else
        free(block);
}

ProtobufCMessage *pb_unpack(const ProtobufCMessageDescriptor *desc, const void *data, size_t size, char *why,
                            size_t cap, bool *oom) {
    *oom = false;
    if (!pb_prescan(desc, data, size, why, cap))
        return NULL;
    capped state = {.cap = size > (SIZE_MAX - PB_CAP_BASE) / PB_CAP_FACTOR ? SIZE_MAX : size * PB_CAP_FACTOR + PB_CAP_BASE};
    ProtobufCAllocator a = {.alloc = capped_alloc, .free = capped_free, .allocator_data = &state};
    ProtobufCMessage *m = protobuf_c_message_unpack(desc, &a, size, data);
    *oom = !m && state.oom;
    if (*oom)
        snprintf(why, cap, "out of memory");
    else if (!m)
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
