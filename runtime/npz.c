/*
 * npz.c — numpy's .npz archives: a zip file whose members are "KEY.npy".
 *
 * Reading walks the central directory (found from the end-of-central-directory record),
 * takes each member's sizes from it, and inflates deflated members with zlib. Every offset
 * and size from the archive is checked against the file's length before use. ZIP64
 * archives (members past 4 GiB) are refused with a clear message. Writing produces an
 * uncompressed archive, as numpy.savez does.
 */
#include "runtime/rt.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static uint32_t rd16(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}
static uint32_t rd32(const unsigned char *p) {
    return rd16(p) | rd16(p + 2) << 16;
}

/* Inflates `csize` raw-deflate bytes into exactly `usize` bytes. */
static kiln_status inflate_member(const unsigned char *src, size_t csize, unsigned char *dst,
                                  size_t usize, const char *what, kiln_diag *d) {
    z_stream z = {0};
    if (inflateInit2(&z, -MAX_WBITS) != Z_OK)
        return kiln_rt_error(d, KILN_ERR_OOM, "%s: zlib init failed", what);
    z.next_in = (unsigned char *)src;
    z.avail_in = (uInt)csize;
    z.next_out = dst;
    z.avail_out = (uInt)usize;
    int rc = inflate(&z, Z_FINISH);
    size_t produced = usize - z.avail_out;
    inflateEnd(&z);
    if (rc != Z_STREAM_END || produced != usize)
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: corrupt deflate data", what);
    return KILN_OK;
}

kiln_status kiln_npz_read_mem(const void *bytes, size_t size, const char *path, const char *key,
                              kiln_tensor **out, kiln_diag *d) {
    const unsigned char *buf = bytes;
    *out = NULL;
    char want[512];
    snprintf(want, sizeof want, "%s.npy", key);
    /* the end record is 22 bytes plus a comment of up to 65535 bytes */
    size_t eocd = (size_t)-1;
    for (size_t i = size >= 22 ? size - 22 + 1 : 0; i-- > 0 && size - i <= 22 + 65535;)
        if (rd32(buf + i) == 0x06054b50) {
            eocd = i;
            break;
        }
    if (eocd == (size_t)-1)
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: not a .npz (zip) file", path);
    uint32_t entries = rd16(buf + eocd + 10), cd_off = rd32(buf + eocd + 16);
    if (cd_off == 0xffffffffu || entries == 0xffff)
        return kiln_rt_error(d, KILN_ERR_UNSUPPORTED, "%s: ZIP64 archives are not supported", path);
    size_t p = cd_off;
    for (uint32_t e = 0; e < entries; e++) {
        if (p > size || size - p < 46 || rd32(buf + p) != 0x02014b50)
            return kiln_rt_error(d, KILN_ERR_INVALID, "%s: corrupt zip central directory", path);
        uint32_t method = rd16(buf + p + 10), csize = rd32(buf + p + 20), usize = rd32(buf + p + 24);
        uint32_t nlen = rd16(buf + p + 28), xlen = rd16(buf + p + 30), clen = rd16(buf + p + 32);
        uint32_t loff = rd32(buf + p + 42);
        if (size - p - 46 < (size_t)nlen + xlen + clen)
            return kiln_rt_error(d, KILN_ERR_INVALID, "%s: corrupt zip central directory", path);
        const char *name = (const char *)buf + p + 46;
        p += 46 + (size_t)nlen + xlen + clen;
        if (nlen != strlen(want) || memcmp(name, want, nlen))
            continue;
        if (csize == 0xffffffffu || usize == 0xffffffffu || loff == 0xffffffffu)
            return kiln_rt_error(d, KILN_ERR_UNSUPPORTED, "%s: ZIP64 member '%s'", path, want);
        if ((size_t)loff > size || size - loff < 30 || rd32(buf + loff) != 0x04034b50)
            return kiln_rt_error(d, KILN_ERR_INVALID, "%s: corrupt local header for '%s'", path, want);
        size_t data = (size_t)loff + 30 + rd16(buf + loff + 26) + rd16(buf + loff + 28);
        if (data > size || size - data < csize)
            return kiln_rt_error(d, KILN_ERR_INVALID, "%s: member '%s' runs past the end", path, want);
        char what[1024];
        snprintf(what, sizeof what, "%s[%s]", path, key);
        if (method == 0)
            return kiln_npy_read_mem(buf + data, csize, what, out, d);
        if (method != 8)
            return kiln_rt_error(d, KILN_ERR_UNSUPPORTED, "%s: zip compression method %u", what, method);
        /* the inflated size comes from the archive: checked against the cap before it is
         * allocated (a few bytes of deflate can claim 4 GiB) */
        if ((int64_t)usize > kiln_max_memory())
            return kiln_rt_error(d, KILN_ERR_OOM, "%s: member of %u bytes is over the memory cap of %lld bytes",
                                 what, usize, (long long)kiln_max_memory());
        unsigned char *raw = malloc((size_t)usize + 1);
        if (!raw)
            return kiln_rt_error(d, KILN_ERR_OOM, "%s: out of memory", what);
        kiln_status st = inflate_member(buf + data, csize, raw, usize, what, d);
        if (!st)
            st = kiln_npy_read_mem(raw, usize, what, out, d);
        free(raw);
        return st;
    }
    return kiln_rt_error(d, KILN_ERR_INVALID, "%s: no array named '%s'", path, key);
}

kiln_status kiln_npz_read(const char *path, const char *key, kiln_tensor **out, kiln_diag *d) {
    unsigned char *buf;
    size_t size;
    *out = NULL;
    kiln_status st = kiln_rt_read_file(path, (size_t)KILN_TENSOR_MAX_BYTES + 4096, &buf, &size, d);
    if (st)
        return st;
    st = kiln_npz_read_mem(buf, size, path, key, out, d);
    free(buf);
    return st;
}

static void wr16(FILE *f, uint32_t v) {
    fputc((int)(v & 0xff), f);
    fputc((int)(v >> 8 & 0xff), f);
}
static void wr32(FILE *f, uint32_t v) {
    wr16(f, v & 0xffff);
    wr16(f, v >> 16);
}

kiln_status kiln_npz_write(const char *path, int count, const char *const *keys,
                           const kiln_tensor *const *tensors, kiln_diag *d) {
    FILE *f = fopen(path, "wb");
    if (!f)
        return kiln_rt_error(d, KILN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    uint32_t *offs = calloc((size_t)count + 1, sizeof *offs);
    uint32_t *crcs = calloc((size_t)count + 1, sizeof *crcs);
    uint32_t *sizes = calloc((size_t)count + 1, sizeof *sizes);
    kiln_status st = KILN_OK;
    if (!offs || !crcs || !sizes) {
        st = kiln_rt_error(d, KILN_ERR_OOM, "%s: out of memory", path);
        goto done;
    }
    for (int i = 0; i < count; i++) {
        char hdr[1024], name[512];
        size_t hl = kiln_rt_npy_header(tensors[i], hdr, sizeof hdr);
        size_t bytes = kiln_tensor_bytes(tensors[i]);
        int nl = snprintf(name, sizeof name, "%s.npy", keys[i]);
        if (hl == 0 || (uint64_t)hl + bytes >= 0xffffffffu || (uint64_t)ftell(f) >= 0xffffffffu) {
            st = kiln_rt_error(d, KILN_ERR_UNSUPPORTED, "%s: array '%s' too large for a zip32 npz",
                               path, keys[i]);
            goto done;
        }
        uint32_t crc = (uint32_t)crc32(0, (const unsigned char *)hdr, (uInt)hl);
        crc = (uint32_t)crc32(crc, tensors[i]->data, (uInt)bytes);
        offs[i] = (uint32_t)ftell(f);
        crcs[i] = crc;
        sizes[i] = (uint32_t)(hl + bytes);
        wr32(f, 0x04034b50), wr16(f, 20), wr16(f, 0), wr16(f, 0), wr16(f, 0), wr16(f, 0x21);
        wr32(f, crc), wr32(f, sizes[i]), wr32(f, sizes[i]), wr16(f, (uint32_t)nl), wr16(f, 0);
        fwrite(name, 1, (size_t)nl, f);
        fwrite(hdr, 1, hl, f);
        fwrite(tensors[i]->data, 1, bytes, f);
    }
    uint32_t cd = (uint32_t)ftell(f);
    for (int i = 0; i < count; i++) {
        char name[512];
        int nl = snprintf(name, sizeof name, "%s.npy", keys[i]);
        wr32(f, 0x02014b50), wr16(f, 20), wr16(f, 20), wr16(f, 0), wr16(f, 0), wr16(f, 0);
        wr16(f, 0x21), wr32(f, crcs[i]), wr32(f, sizes[i]), wr32(f, sizes[i]);
        wr16(f, (uint32_t)nl), wr16(f, 0), wr16(f, 0), wr16(f, 0), wr16(f, 0), wr32(f, 0);
        wr32(f, offs[i]);
        fwrite(name, 1, (size_t)nl, f);
    }
    uint32_t cd_end = (uint32_t)ftell(f);
    wr32(f, 0x06054b50), wr16(f, 0), wr16(f, 0), wr16(f, (uint32_t)count), wr16(f, (uint32_t)count);
    wr32(f, cd_end - cd), wr32(f, cd), wr16(f, 0);
done:
    if (fclose(f) != 0 && !st)
        st = kiln_rt_error(d, KILN_ERR_IO, "%s: write failed", path);
    free(offs), free(crcs), free(sizes);
    return st;
}
