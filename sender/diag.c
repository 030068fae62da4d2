/* diag.c - parser diagnostics list (see diag.h). Functions return 0 or STS_ENOMEM. */
#include "sender/diag.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

void sts_diags_init(sts_diags *d)
{
    memset(d, 0, sizeof(*d));
}

void sts_diags_free(sts_diags *d)
{
    if (!d)
        return;
    free(d->items);
    memset(d, 0, sizeof(*d));
}

int sts_diags_vadd(sts_diags *d, sts_diag_severity sev, int line, int column, const char *fmt,
                   va_list ap)
{
    if (!d)
        return 0;
    if (sts_array_grow((void **)&d->items, &d->cap, d->n + 1, sizeof(*d->items), 8))
        return STS_ENOMEM;
    sts_diag *g = &d->items[d->n++];
    g->severity = sev;
    g->line = line;
    g->column = column;
    vsnprintf(g->message, sizeof(g->message), fmt, ap);
    if (sev == STS_DIAG_ERROR)
        d->nerrors++;
    else
        d->nwarnings++;
    return 0;
}

int sts_diags_add(sts_diags *d, sts_diag_severity sev, int line, int column, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sts_diags_vadd(d, sev, line, column, fmt, ap);
    va_end(ap);
    return rc;
}

const char *sts_diag_severity_name(sts_diag_severity sev)
{
    return sev == STS_DIAG_ERROR ? "error" : "warning";
}

const sts_diag *sts_diags_first_error(const sts_diags *d)
{
    if (!d)
        return NULL;
    for (size_t i = 0; i < d->n; i++)
        if (d->items[i].severity == STS_DIAG_ERROR)
            return &d->items[i];
    return NULL;
}

char *sts_diags_summary(const sts_diags *d, char *out, size_t outlen)
{
    if (!outlen)
        return out;
    out[0] = '\0';
    const sts_diag *g = sts_diags_first_error(d);
    if (!g)
        return out;
    if (g->column > 0)
        snprintf(out, outlen, "line %d, column %d: %s", g->line, g->column, g->message);
    else if (g->line > 0)
        snprintf(out, outlen, "line %d: %s", g->line, g->message);
    else
        snprintf(out, outlen, "%s", g->message);
    return out;
}
