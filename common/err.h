/*
 * err.h - the one error table of ststest.
 *
 * Functions return 0 (STS_OK) or one of the negative codes below. The table gives
 * each code a stable name (for logs and JSON) and a message (for people). A delivery
 * result is data, not an error code: see sender/sender.h.
 */
#ifndef STS_ERR_H
#define STS_ERR_H

#define STS_ERRORS(X)                                                                  \
    X(STS_OK, 0, "ok", "success")                                                      \
    X(STS_ENOMEM, -1, "nomem", "out of memory")                                        \
    X(STS_EINVAL, -2, "invalid", "invalid argument")                                   \
    X(STS_EIO, -3, "io", "input/output error")                                         \
    X(STS_ETIMEDOUT, -4, "timeout", "timed out")                                       \
    X(STS_ETLS, -5, "tls", "TLS error")                                                \
    X(STS_EPROTO, -6, "protocol", "protocol error")                                    \
    X(STS_EDNS, -7, "dns", "DNS error")                                                \
    X(STS_ENOTFOUND, -8, "notfound", "not found")                                      \
    X(STS_ECLOSED, -9, "closed", "connection closed")                                  \
    X(STS_ETOOBIG, -10, "toobig", "size limit exceeded")                               \
    X(STS_ESYNTAX, -11, "syntax", "syntax error")                                      \
    X(STS_ESTATE, -12, "state", "operation not valid in this state")                   \
    X(STS_ECONNECT, -13, "connect", "connection failed")                               \
    X(STS_EUNSUPPORTED, -14, "unsupported", "not supported")

enum sts_err {
#define STS_ERR_ENUM(sym, val, name, msg) sym = val,
    STS_ERRORS(STS_ERR_ENUM)
#undef STS_ERR_ENUM
};

/* Stable short name of a code ("timeout"); "unknown" for codes not in the table. */
const char *sts_errname(int code);
/* Human message of a code ("timed out"). */
const char *sts_strerror(int code);

#include <stddef.h>

/* Format a message into err[errlen] (truncated; nothing when err is NULL or errlen 0):
 * the one helper behind every "char *err, size_t errlen" out-parameter. */
void sts_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* sysexits-style exit statuses used by every sub-command (see README). */
enum sts_exit {
    STS_EXIT_OK = 0,
    STS_EXIT_FAILED_CHECK = 1, /* `run`: some expectation failed */
    STS_EXIT_USAGE = 64,
    STS_EXIT_DATAERR = 65,
    STS_EXIT_UNAVAILABLE = 69,
    STS_EXIT_SOFTWARE = 70,
    STS_EXIT_TEMPFAIL = 75,
    STS_EXIT_NOPERM = 77, /* --standard-ports without root */
};

#endif
