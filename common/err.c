/* err.c - names and messages for the codes of err.h. */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *sts_errname(int code)
{
    switch (code) {
#define STS_ERR_NAME(sym, val, name, msg)                                              \
    case val:                                                                          \
        return name;
        STS_ERRORS(STS_ERR_NAME)
#undef STS_ERR_NAME
    }
    return "unknown";
}

const char *sts_strerror(int code)
{
    switch (code) {
#define STS_ERR_MSG(sym, val, name, msg)                                               \
    case val:                                                                          \
        return msg;
        STS_ERRORS(STS_ERR_MSG)
#undef STS_ERR_MSG
    }
    return "unknown error";
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
