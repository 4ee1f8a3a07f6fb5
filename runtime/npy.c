/*
 * npy.c — reading and writing numpy's .npy format (versions 1.0, 2.0 and 3.0).
 *
 * Layout: magic "\x93NUMPY", major, minor, a little-endian header length (2 bytes in 1.0,
 * 4 in 2.0/3.0), then an ASCII Python dict {'descr': '<f4', 'fortran_order': False,
 * 'shape': (2, 3), } padded to 64 bytes, then the raw C-order data. Every length read from
 * the file is checked against the bytes actually present before it is used.
 */
#include "runtime/rt.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *descr; /* without the byte-order character */
    kiln_dtype dtype;
} npy_types[] = {
    {"f4", KILN_F32}, {"f8", KILN_F64}, {"i8", KILN_I64}, {"i4", KILN_I32},
    {"i1", KILN_I8},  {"u1", KILN_U8},  {"b1", KILN_BOOL}, {"f2", KILN_F16},
    {"i2", KILN_I16}, {"u2", KILN_U16}, {"u4", KILN_U32},  {"u8", KILN_U64}, /* numpy's u8: uint64 */
};

static const char *npy_descr(kiln_dtype dt) {
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (npy_types[i].dtype == dt)
            return npy_types[i].descr;
    return NULL;
}

/* Finds `'key':` in the header dict and returns the text after the colon, or NULL. */
static const char *dict_value(const char *hdr, const char *key) {
    char pat[32];
    snprintf(pat, sizeof pat, "'%s'", key);
    const char *p = strstr(hdr, pat);
    if (!p)
        return NULL;
    p += strlen(pat);
    while (isspace((unsigned char)*p))
        p++;
    if (*p != ':')
        return NULL;
    p++;
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

static kiln_status parse_header(const char *hdr, const char *what, kiln_dtype *dt, int *rank,
                                int64_t *dims, kiln_diag *d) {
    size_t n = strlen(hdr);
    while (n && isspace((unsigned char)hdr[n - 1]))
        n--;
    if (hdr[0] != '{' || !n || hdr[n - 1] != '}')
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy header is not a dictionary {...}", what);
    const char *v = dict_value(hdr, "descr");
    if (!v || *v != '\'')
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy header has no 'descr'", what);
    char order = v[1];
    const char *end = strchr(v + 1, '\'');
    if (!end || end - v < 3)
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy header has a malformed 'descr'", what);
    size_t len = (size_t)(end - (v + 2));
    *dt = KILN_DTYPE_INVALID;
    for (size_t i = 0; i < sizeof npy_types / sizeof npy_types[0]; i++)
        if (strlen(npy_types[i].descr) == len && !strncmp(v + 2, npy_types[i].descr, len))
            *dt = npy_types[i].dtype;
    if (*dt == KILN_DTYPE_INVALID)
        return kiln_rt_error(d, KILN_ERR_UNSUPPORTED, "%s: unsupported npy dtype '%.*s'", what,
                             (int)(end - v - 1), v + 1);
    bool one_byte = kiln_dtype_size(*dt) == 1;
    if (order == '>' && !one_byte)
        return kiln_rt_error(d, KILN_ERR_UNSUPPORTED, "%s: big-endian npy data is not supported",
                             what);
    if (order != '<' && order != '|' && order != '=' && order != '>')
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy 'descr' has bad byte order '%c'", what,
                             order);

    v = dict_value(hdr, "fortran_order");
    if (!v)
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy header has no 'fortran_order'", what);
    if (!strncmp(v, "True", 4))
        return kiln_rt_error(d, KILN_ERR_UNSUPPORTED,
                             "%s: fortran_order arrays are not supported; save a C-order copy "
                             "(numpy.ascontiguousarray)",
                             what);
    if (strncmp(v, "False", 5))
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy 'fortran_order' is neither True nor False",
                             what);

    v = dict_value(hdr, "shape");
    if (!v || *v != '(')
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy header has no 'shape' tuple", what);
    v++;
    *rank = 0;
    for (;;) {
        while (isspace((unsigned char)*v))
            v++;
        if (*v == ')')
            break;
        if (!isdigit((unsigned char)*v))
            return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy 'shape' is malformed", what);
        if (*rank == KILN_MAX_RANK)
            return kiln_rt_error(d, KILN_ERR_UNSUPPORTED, "%s: npy rank above %d", what,
                                 KILN_MAX_RANK);
        errno = 0;
        char *num_end;
        long long dim = strtoll(v, &num_end, 10);
        if (errno || dim < 0)
            return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy dimension out of range", what);
        dims[(*rank)++] = dim;
        v = num_end;
        while (isspace((unsigned char)*v))
            v++;
        if (*v == ',')
            v++;
        else if (*v != ')')
            return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy 'shape' is malformed", what);
    }
    return KILN_OK;
}

kiln_status kiln_npy_read_mem(const void *bytes, size_t size, const char *what, kiln_tensor **out,
                              kiln_diag *d) {
    const unsigned char *b = bytes;
    *out = NULL;
    if (size < 10 || memcmp(b, "\x93NUMPY", 6))
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: not a .npy file (bad magic)", what);
    size_t hlen, hstart;
    if (b[6] == 1) {
        hlen = b[8] | (size_t)b[9] << 8;
        hstart = 10;
    } else if (b[6] == 2 || b[6] == 3) {
        if (size < 12)
            return kiln_rt_error(d, KILN_ERR_INVALID, "%s: truncated .npy header", what);
        hlen = b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        hstart = 12;
    } else {
        return kiln_rt_error(d, KILN_ERR_UNSUPPORTED, "%s: .npy version %d.%d", what, b[6], b[7]);
    }
    if (hlen > size - hstart)
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: truncated .npy header", what);
    char *hdr = malloc(hlen + 1);
    if (!hdr)
        return kiln_rt_error(d, KILN_ERR_OOM, "%s: out of memory", what);
    memcpy(hdr, b + hstart, hlen);
    hdr[hlen] = 0;
    kiln_dtype dt = KILN_F32; /* set by parse_header when it succeeds (GCC cannot tell) */
    int rank = 0;
    int64_t dims[KILN_MAX_RANK];
    kiln_status st = parse_header(hdr, what, &dt, &rank, dims, d);
    free(hdr);
    if (st)
        return st;
    int64_t count, nbytes;
    if (!kiln_shape_count(rank, dims, &count) ||
        !kiln_mul_ok(count, (int64_t)kiln_dtype_size(dt), &nbytes))
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy shape overflows", what);
    size_t avail = size - hstart - hlen;
    if ((uint64_t)nbytes != avail) /* short: truncated; long: not what the header says */
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: npy data has %zu bytes, the shape needs %lld", what,
                             avail, (long long)nbytes);
    if ((st = kiln_rt_tensor_create_uninit(dt, rank, dims, out, d))) /* every byte copied below */
        return st;
    memcpy((*out)->data, b + hstart + hlen, (size_t)nbytes);
    if (dt == KILN_BOOL) /* numpy bools are 0/1 bytes; normalize anything else */
        for (int64_t i = 0; i < count; i++)
            ((uint8_t *)(*out)->data)[i] = ((uint8_t *)(*out)->data)[i] != 0;
    return KILN_OK;
}

kiln_status kiln_rt_read_file(const char *path, size_t cap, unsigned char **buf, size_t *size,
                              kiln_diag *d) {
    *buf = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return kiln_rt_error(d, KILN_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    kiln_status st = KILN_OK;
    long len = -1;
    if (fseek(f, 0, SEEK_END) == 0)
        len = ftell(f);
    if (len < 0 || fseek(f, 0, SEEK_SET) != 0) {
        st = kiln_rt_error(d, KILN_ERR_IO, "%s: cannot determine the file size", path);
    } else if ((size_t)len > cap) {
        st = kiln_rt_error(d, KILN_ERR_OOM, "%s: file of %ld bytes exceeds the cap", path, len);
    } else if (!(*buf = malloc((size_t)len + 1))) {
        st = kiln_rt_error(d, KILN_ERR_OOM, "%s: out of memory", path);
    } else if (fread(*buf, 1, (size_t)len, f) != (size_t)len) {
        st = kiln_rt_error(d, KILN_ERR_IO, "%s: read failed", path);
        free(*buf);
        *buf = NULL;
    } else {
        (*buf)[len] = 0;
        *size = (size_t)len;
    }
    fclose(f);
    return st;
}

kiln_status kiln_npy_read(const char *path, kiln_tensor **out, kiln_diag *d) {
    unsigned char *buf;
    size_t size;
    *out = NULL;
    kiln_status st = kiln_rt_read_file(path, (size_t)KILN_TENSOR_MAX_BYTES + 4096, &buf, &size, d);
    if (st)
        return st;
    st = kiln_npy_read_mem(buf, size, path, out, d);
    free(buf);
    return st;
}

size_t kiln_rt_npy_header(const kiln_tensor *t, char *hdr, size_t cap) {
    char dict[512], shape[256] = "";
    size_t n = 0;
    for (int i = 0; i < t->rank; i++)
        n += (size_t)snprintf(shape + n, sizeof shape - n, "%lld%s", (long long)t->dims[i],
                              t->rank == 1 || i + 1 < t->rank ? ", " : "");
    if (t->rank == 1) /* Python writes a 1-tuple as "(3,)" */
        shape[n - 1] = 0;
    const char *descr = npy_descr(t->dtype);
    char order = kiln_dtype_size(t->dtype) == 1 ? '|' : '<';
    int dl = snprintf(dict, sizeof dict, "{'descr': '%c%s', 'fortran_order': False, 'shape': (%s), }",
                      order, descr, shape);
    size_t total = 10 + (size_t)dl + 1;
    size_t padded = (total + 63) / 64 * 64;
    if (padded > cap)
        return 0;
    memcpy(hdr, "\x93NUMPY\x01\x00", 8);
    size_t hlen = padded - 10;
    hdr[8] = (char)(hlen & 0xff);
    hdr[9] = (char)(hlen >> 8);
    memcpy(hdr + 10, dict, (size_t)dl);
    memset(hdr + 10 + dl, ' ', padded - 10 - (size_t)dl - 1);
    hdr[padded - 1] = '\n';
    return padded;
}

kiln_status kiln_npy_write(const char *path, const kiln_tensor *t, kiln_diag *d) {
    char hdr[1024];
    if (!npy_descr(t->dtype))
        return kiln_rt_error(d, KILN_ERR_INVALID, "%s: cannot write dtype %s", path,
                             kiln_dtype_name(t->dtype));
    size_t hl = kiln_rt_npy_header(t, hdr, sizeof hdr);
    FILE *f = fopen(path, "wb");
    if (!f)
        return kiln_rt_error(d, KILN_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    size_t bytes = kiln_tensor_bytes(t);
    bool ok = fwrite(hdr, 1, hl, f) == hl && fwrite(t->data, 1, bytes, f) == bytes;
    if (fclose(f) != 0)
        ok = false;
    return ok ? KILN_OK : kiln_rt_error(d, KILN_ERR_IO, "%s: write failed", path);
}
