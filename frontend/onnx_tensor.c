/*
 * onnx_tensor.c — TensorProto -> kiln_tensor: the typed fields (float_data, int32_data,
 * int64_data, double_data), raw_data (little-endian), and external data read from a file
 * inside the model's folder, with every length checked against the shape first.
 */
#include "frontend/model_path.h"
#include "frontend/onnx_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    kiln_dtype dtype;
    int size; /* bytes per element in raw_data */
} onnx_types[] = {
    [0] = {"UNDEFINED", KILN_DTYPE_INVALID, 0}, [1] = {"FLOAT", KILN_F32, 4},
    [2] = {"UINT8", KILN_U8, 1},               [3] = {"INT8", KILN_I8, 1},
    [4] = {"UINT16", KILN_U16, 2},             [5] = {"INT16", KILN_I16, 2},
    [6] = {"INT32", KILN_I32, 4},              [7] = {"INT64", KILN_I64, 8},
    [8] = {"STRING", KILN_DTYPE_INVALID, 0},   [9] = {"BOOL", KILN_BOOL, 1},
    [10] = {"FLOAT16", KILN_F16, 2},           [11] = {"DOUBLE", KILN_F64, 8},
    [12] = {"UINT32", KILN_U32, 4},            [13] = {"UINT64", KILN_U64, 8},
    [14] = {"COMPLEX64", KILN_DTYPE_INVALID, 8}, [15] = {"COMPLEX128", KILN_DTYPE_INVALID, 16},
    [16] = {"BFLOAT16", KILN_BF16, 2},
};

kiln_dtype onnx_dtype(int32_t t) {
    return t >= 0 && t < ARRAY_LEN(onnx_types) ? onnx_types[t].dtype : KILN_DTYPE_INVALID;
}

const char *onnx_dtype_name(int32_t t) {
    static _Thread_local char number[32]; /* a type ONNX does not define: its number */
    if (t >= 0 && t < ARRAY_LEN(onnx_types) && onnx_types[t].name)
        return onnx_types[t].name;
    snprintf(number, sizeof number, "%d", (int)t);
    return number;
}

/* Reads [offset, offset + length) of `location` inside `dir` into dst (length bytes). */
static kiln_status read_external(const Onnx__TensorProto *tp, const char *dir, const char *file,
                                 const char *what, void *dst, size_t want, kiln_diag *d) {
    const char *location = NULL;
    long long offset = 0, length = -1;
    for (size_t i = 0; i < tp->n_external_data; i++) {
        const Onnx__StringStringEntryProto *e = tp->external_data[i];
        if (!e->key || !e->value)
            continue;
        char *end;
        if (!strcmp(e->key, "location"))
            location = e->value;
        else if (!strcmp(e->key, "offset") && ((offset = strtoll(e->value, &end, 10)) < 0 || *end))
            return diag_error(d, (kiln_loc){.file = file}, KILN_ERR_INVALID, "%s: bad external offset '%s'", what, e->value);
        else if (!strcmp(e->key, "length") && ((length = strtoll(e->value, &end, 10)) < 0 || *end))
            return diag_error(d, (kiln_loc){.file = file}, KILN_ERR_INVALID, "%s: bad external length '%s'", what, e->value);
    }
    kiln_loc loc = {.file = file};
    if (!location || !*location)
        return diag_error(d, loc, KILN_ERR_INVALID, "%s: external data without a location", what);
    if (length >= 0 && (unsigned long long)length != want)
        return diag_error(d, loc, KILN_ERR_INVALID, "%s: external length %lld does not match the shape's %zu bytes", what, length, want);
    char *real;
    switch (model_path_resolve(dir, location, &real)) {
    case MODEL_PATH_OK: break;
    case MODEL_PATH_OUTSIDE:
        return diag_error(d, loc, KILN_ERR_INVALID, "%s: external data location '%s' is outside the model's folder", what, location);
    case MODEL_PATH_ESCAPES:
        return diag_error(d, loc, KILN_ERR_INVALID, "%s: external data '%s' leads outside the model's folder", what, location);
    case MODEL_PATH_NOT_FILE:
        return diag_error(d, loc, KILN_ERR_INVALID, "%s: external data '%s' is not a regular file", what, location);
    case MODEL_PATH_LINKED:
        return diag_error(d, loc, KILN_ERR_INVALID, "%s: external data '%s' has other hard links (it may be a file from outside the model's folder)", what, location);
    case MODEL_PATH_MISSING:
        return diag_error(d, loc, KILN_ERR_IO, "%s: cannot open external data '%s'", what, location);
    case MODEL_PATH_OOM:
        return diag_error(d, loc, KILN_ERR_OOM, "%s: out of memory", what);
    }
    kiln_status st = KILN_OK;
    struct stat sb;
    int fd = model_path_open(real);
    free(real);
    if (fd < 0 || fstat(fd, &sb) != 0) {
        st = diag_error(d, loc, KILN_ERR_IO, "%s: cannot open external data '%s'", what, location);
    } else if ((unsigned long long)offset > (unsigned long long)sb.st_size ||
               want > (unsigned long long)sb.st_size - (unsigned long long)offset) {
        st = diag_error(d, loc, KILN_ERR_INVALID, "%s: external data '%s' is shorter than offset %lld + %zu bytes", what, location, offset, want);
    } else {
        for (size_t done = 0; !st && done < want;) {
            ssize_t got = pread(fd, (char *)dst + done, want - done, (off_t)(offset + (long long)done));
            if (got <= 0)
                st = diag_error(d, loc, KILN_ERR_IO, "%s: cannot read external data '%s'", what, location);
            else
                done += (size_t)got;
        }
    }
    if (fd >= 0)
        close(fd);
    return st;
}

kiln_status onnx_tensor_convert(const Onnx__TensorProto *tp, const char *dir, ir_graph *g,
                                const char *file, const char *what, kiln_tensor **out,
                                kiln_diag *d) {
    kiln_loc loc = {.file = file};
    *out = NULL;
    int32_t type = tp->has_data_type ? tp->data_type : 0;
    kiln_dtype dt = onnx_dtype(type);
    if (dt == KILN_DTYPE_INVALID)
        return diag_error(d, loc, KILN_ERR_UNSUPPORTED, "%s: dtype %s is not supported", what, onnx_dtype_name(type));
    if (tp->n_dims > KILN_MAX_RANK)
        return diag_error(d, loc, KILN_ERR_UNSUPPORTED, "%s: rank %zu above %d", what, tp->n_dims, KILN_MAX_RANK);
    int64_t dims[KILN_MAX_RANK], count, bytes;
    for (size_t i = 0; i < tp->n_dims; i++)
        if ((dims[i] = tp->dims[i]) < 0)
            return diag_error(d, loc, KILN_ERR_INVALID, "%s: dimension %zu is negative (%lld)", what, i, (long long)dims[i]);
    if (!kiln_shape_count((int)tp->n_dims, dims, &count) || !kiln_mul_ok(count, (int64_t)kiln_dtype_size(dt), &bytes))
        return diag_error(d, loc, KILN_ERR_INVALID, "%s: the shape's element count overflows", what);
    kiln_status st;
    kiln_tensor *t;
    kiln_diag td = {0};
    st = g ? ir_graph_new_tensor(g, dt, (int)tp->n_dims, dims, &t, &td)
           : kiln_tensor_create(dt, (int)tp->n_dims, dims, &t, &td);
    if (st)
        return diag_error(d, loc, st, "%s: %s", what, td.message);
    size_t n = (size_t)count;
    bool external = tp->has_data_location && tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
    const char *field = NULL;
    size_t have = 0;
    size_t typed = tp->n_float_data + tp->n_int32_data + tp->n_string_data + tp->n_int64_data +
                   tp->n_double_data + tp->n_uint64_data;
    if (tp->segment)
        st = diag_error(d, loc, KILN_ERR_UNSUPPORTED, "%s: segmented tensors are not supported", what);
    else if ((tp->has_raw_data || external) && typed)
        st = diag_error(d, loc, KILN_ERR_INVALID, "%s: holds both %s and typed values (%zu of them)", what,
                        external ? "external data" : "raw_data", typed);
    else if (external) {
        st = read_external(tp, dir, file, what, t->data, (size_t)bytes, d);
    } else if (tp->has_raw_data) {
        field = "raw_data", have = tp->raw_data.len / (size_t)onnx_types[type].size;
        if (tp->raw_data.len != (size_t)bytes)
            st = diag_error(d, loc, KILN_ERR_INVALID, "%s: raw_data has %zu bytes, the shape needs %lld", what, tp->raw_data.len, (long long)bytes);
        else if (bytes) /* an empty tensor's raw_data has no buffer */
            memcpy(t->data, tp->raw_data.data, (size_t)bytes); /* little-endian, like the host */
    } else if (type == 1) {
        field = "float_data", have = tp->n_float_data;
        for (size_t i = 0; i < n && have == n; i++)
            ((float *)t->data)[i] = tp->float_data[i];
    } else if (type == 11) {
        field = "double_data", have = tp->n_double_data;
        for (size_t i = 0; i < n && have == n; i++)
            ((double *)t->data)[i] = tp->double_data[i];
    } else if (type == 7) {
        field = "int64_data", have = tp->n_int64_data;
        for (size_t i = 0; i < n && have == n; i++)
            ((int64_t *)t->data)[i] = tp->int64_data[i];
    } else if (type == 12 || type == 13) {
        field = "uint64_data", have = tp->n_uint64_data;
        for (size_t i = 0; i < n && have == n; i++)
            ir_tensor_set_int(t, (int64_t)i, (int64_t)tp->uint64_data[i]); /* u64: the same bits */
    } else if (type == 10 || type == 16) { /* the 16 bits of each value, in int32_data */
        field = "int32_data", have = tp->n_int32_data;
        for (size_t i = 0; i < n && have == n; i++)
            ((uint16_t *)t->data)[i] = (uint16_t)tp->int32_data[i];
    } else {
        field = "int32_data", have = tp->n_int32_data;
        for (size_t i = 0; i < n && have == n; i++)
            ir_tensor_set_int(t, (int64_t)i, tp->int32_data[i]);
    }
    if (!st && field && have != n)
        st = diag_error(d, loc, KILN_ERR_INVALID, "%s: %s holds %zu values, the shape needs %zu", what, field, have, n);
    if (!st && dt == KILN_BOOL)
        for (size_t i = 0; i < n; i++)
            ((uint8_t *)t->data)[i] = ((uint8_t *)t->data)[i] != 0;
    if (st && !g)
        kiln_tensor_free(t);
    if (!st)
        *out = t;
    return st;
}

kiln_status onnx_read_tensor_file(const char *path, kiln_tensor **out, kiln_diag *d) {
    unsigned char *buf;
    size_t size;
    *out = NULL;
    kiln_status st = kiln_rt_read_file(path, (size_t)KILN_TENSOR_MAX_BYTES + (1 << 20), &buf, &size, d);
    if (st)
        return st;
    char why[160];
    bool oom;
    Onnx__TensorProto *tp = (Onnx__TensorProto *)pb_unpack(&onnx__tensor_proto__descriptor, buf, size, why, sizeof why, &oom);
    free(buf);
    if (!tp)
        return oom ? diag_error(d, (kiln_loc){.file = path}, KILN_ERR_OOM, "out of memory")
                   : diag_error(d, (kiln_loc){.file = path}, KILN_ERR_INVALID, "not a valid ONNX TensorProto (%s)", why);
    char dir[4096];
    model_path_dir(path, dir, sizeof dir);
    char what[256];
    snprintf(what, sizeof what, "tensor '%s'", tp->name ? tp->name : "");
    st = onnx_tensor_convert(tp, dir, NULL, path, what, out, d);
    pb_free(&tp->base);
    return st;
}
