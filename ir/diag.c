/* diag.c — formats an error with its location prefix (see diag.h). */
#include "ir/diag.h"

#include <stdarg.h>
#include <string.h>

kiln_status diag_error(kiln_diag *d, kiln_loc loc, kiln_status st, const char *fmt, ...) {
    if (!d || d->status != KILN_OK)
        return st;
    char prefix[512] = "";
    size_t n = 0;
    if (loc.file && loc.line > 0 && loc.col > 0)
        n += (size_t)snprintf(prefix, sizeof prefix, "%s:%d:%d: ", loc.file, loc.line, loc.col);
    else if (loc.file && loc.line > 0) /* a line-based file (a tuning file) */
        n += (size_t)snprintf(prefix, sizeof prefix, "%s:%d: ", loc.file, loc.line);
    else if (loc.file)
        n += (size_t)snprintf(prefix, sizeof prefix, "%s: ", loc.file);
    if (loc.node && n < sizeof prefix)
        n += (size_t)snprintf(prefix + n, sizeof prefix - n, "node '%s'%s%s%s: ", loc.node,
                              loc.op ? " (" : "", loc.op ? loc.op : "", loc.op ? ")" : "");
    char body[KILN_DIAG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(body, sizeof body, fmt, ap);
    va_end(ap);
    return kiln_rt_error(d, st, "%s%s", prefix, body);
}
