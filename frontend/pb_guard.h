/*
 * pb_guard.h — protobuf bytes checked before protobuf-c unpacks them (nesting depth,
 * lengths, wire types), and unpacked under a memory cap (see pb_guard.c).
 */
#ifndef KILN_FRONTEND_PB_GUARD_H
#define KILN_FRONTEND_PB_GUARD_H

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>

enum { PB_MAX_DEPTH = 64 };                       /* messages within messages */
enum { PB_CAP_FACTOR = 16 };                      /* unpacking may take 16 x the input ... */
#define PB_CAP_BASE ((size_t)64 << 20)            /* ... plus 64 MiB */

/* Walks the wire format of a `desc` message; false with the reason in why[cap] if it
 * nests too deep, runs past its end, or uses a group wire type. */
bool pb_prescan(const ProtobufCMessageDescriptor *desc, const void *data, size_t size, char *why, size_t cap);
/* pb_prescan, then protobuf_c_message_unpack under the cap; NULL with the reason in why,
 * and *oom set when the reason is that memory ran out (not the input). */
ProtobufCMessage *pb_unpack(const ProtobufCMessageDescriptor *desc, const void *data, size_t size, char *why,
                            size_t cap, bool *oom);
/* Frees what pb_unpack returned (its blocks carry their size). */
void pb_free(ProtobufCMessage *m);

#endif
