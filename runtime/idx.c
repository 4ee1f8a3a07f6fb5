/*
 * idx.c — the IDX format of MNIST and Fashion-MNIST ("train-images-idx3-ubyte"), plain
 * or gzipped (zlib reads both): a magic of two zero bytes, a type code and a rank, the
 * dimensions as big-endian u32, then the data, big-endian. Sizes are checked against the
 * memory cap before anything is allocated, and the data must be exactly as long as the
 * header says.
 */
#include "runtime/rt.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static kiln_dtype idx_dtype(int code, int *size) {
    switch (code) {
    case 0x08: *size = 1; return KILN_U8;
    case 0x09: *size = 1; return KILN_I8;
    case 0x0B: *size = 2; return KILN_I16;
    case 0x0C: *size = 4; return KILN_I32;
    case 0x0D: *size = 4; return KILN_F32;
    case 0x0E: *size = 8; return KILN_F64;
    default: return KILN_DTYPE_INVALID;
    }
}

kiln_status kiln_idx_read(const char *path, kiln_tensor **out, kiln_diag *d) {
    *out = NULL;
    gzFile f = gzopen(path, "rb");
    if (!f)
        return kiln_rt_error(d, KILN_ERR_IO, "%s: cannot open", path);
    unsigned char head[4], dimbuf[4 * 255];
    kiln_status st = KILN_OK;
    int size = 0;
    kiln_dtype dt = KILN_DTYPE_INVALID;
    int64_t dims[KILN_MAX_RANK];
    if (gzread(f, head, 4) != 4 || head[0] || head[1])
        st = kiln_rt_error(d, KILN_ERR_INVALID, "%s: not an IDX file (bad magic)", path);
    else if ((dt = idx_dtype(head[2], &size)) == KILN_DTYPE_INVALID)
        st = kiln_rt_error(d, KILN_ERR_UNSUPPORTED, "%s: IDX type code 0x%02x", path, head[2]);
    else if (head[3] == 0 || head[3] > KILN_MAX_RANK)
        st = kiln_rt_error(d, KILN_ERR_UNSUPPORTED, "%s: IDX rank %d (1..%d)", path, head[3], KILN_MAX_RANK);
    else if (gzread(f, dimbuf, 4u * head[3]) != (int)(4u * head[3]))
        st = kiln_rt_error(d, KILN_ERR_INVALID, "%s: truncated IDX header", path);
    for (int i = 0; !st && i < head[3]; i++)
        dims[i] = (int64_t)dimbuf[4 * i] << 24 | dimbuf[4 * i + 1] << 16 | dimbuf[4 * i + 2] << 8 | dimbuf[4 * i + 3];
    if (!st)
        st = kiln_rt_tensor_create_uninit(dt, head[3], dims, out, d); /* checks the cap; read whole or freed */
    if (!st) {
        size_t want = kiln_tensor_bytes(*out), got = 0;
        unsigned char *p = (*out)->data;
        while (got < want) {
            unsigned chunk = want - got > (1u << 30) ? 1u << 30 : (unsigned)(want - got);
            int n = gzread(f, p + got, chunk);
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        unsigned char extra;
        if (got != want)
            st = kiln_rt_error(d, KILN_ERR_INVALID, "%s: IDX data has %zu bytes, the header says %zu", path, got, want);
        else if (gzread(f, &extra, 1) != 0)
            st = kiln_rt_error(d, KILN_ERR_INVALID, "%s: IDX data is longer than the header says", path);
        for (size_t i = 0; !st && size > 1 && i < want; i += (size_t)size) /* big-endian to the host's */
            for (int a = 0, b = size - 1; a < b; a++, b--) {
                unsigned char tmp = p[i + a];
                p[i + a] = p[i + b], p[i + b] = tmp;
            }
    }
    gzclose(f);
    if (st) {
        kiln_tensor_free(*out);
        *out = NULL;
    }
    return st;
}
