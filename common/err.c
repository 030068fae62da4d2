/* err.c - names and messages for the codes of err.h. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

/* The table of err.h as data: one row per code. */
static const struct err_row {
    int code;
    const char *name, *msg;
} err_rows[] = {
#define STS_ERR_ROW(sym, val, name, msg) {val, name, msg},
    STS_ERRORS(STS_ERR_ROW)
#undef STS_ERR_ROW
};

/* The row of code, or NULL for a code not in the table. */
static const struct err_row *err_row(int code)
{
    for (size_t i = 0; i < sizeof(err_rows) / sizeof(err_rows[0]); i++)
        if (err_rows[i].code == code)
            return &err_rows[i];
    return NULL;
}

const char *sts_errname(int code)
{
    const struct err_row *r = err_row(code);
    return r ? r->name : "unknown";
}

const char *sts_strerror(int code)
{
    const struct err_row *r = err_row(code);
    return r ? r->msg : "unknown error";
}

void sts_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}
