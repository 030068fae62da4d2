/*
 * diag.h - a list of parser diagnostics (errors and warnings with line and column).
 *
 * The TXT record parser (ststxt.h) and the policy parser (policy.h) report every
 * problem they find here, so that `ststest lint` can print them all as
 * FILE:LINE:COL: error|warning: message and the sender can log them.
 * Lines and columns count from 1; a TXT record is line 1. Column 0 means "not tied to
 * a position in the line" and line 0 "the whole input" (e.g. a policy's "missing
 * required field mode" is line 0, column 0; a TXT record's "missing required field
 * id" is line 1, column 0).
 *
 * Functions return 0 or STS_ENOMEM (common/err.h). A NULL list is allowed wherever
 * a parser takes one: the diagnostics are then dropped (the parse result still says
 * whether the input was valid).
 */
#ifndef STS_DIAG_H
#define STS_DIAG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum { STS_DIAG_ERROR = 0, STS_DIAG_WARNING = 1 } sts_diag_severity;

#define STS_DIAG_MSG_MAX 256

typedef struct sts_diag {
    sts_diag_severity severity;
    int line;   /* 1-based; 0 = the whole input */
    int column; /* 1-based byte column; 0 = not tied to a position */
    char message[STS_DIAG_MSG_MAX];
} sts_diag;

typedef struct sts_diags {
    sts_diag *items; /* in the order found */
    size_t n;
    size_t cap;
    size_t nerrors;
    size_t nwarnings;
} sts_diags;

void sts_diags_init(sts_diags *d);
void sts_diags_free(sts_diags *d);
/* Append one diagnostic. 0 or STS_ENOMEM. d may be NULL (then 0, nothing kept). */
int sts_diags_add(sts_diags *d, sts_diag_severity sev, int line, int column, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int sts_diags_vadd(sts_diags *d, sts_diag_severity sev, int line, int column, const char *fmt,
                   va_list ap) __attribute__((format(printf, 5, 0)));
/* "error" / "warning". */
const char *sts_diag_severity_name(sts_diag_severity sev);
/* The first error (NULL when there is none). */
const sts_diag *sts_diags_first_error(const sts_diags *d);
/* Format the first error as "line L, column C: message" into out (for one-line logs and
 * JSON "detail" fields); "" when there is no error. Returns out. */
char *sts_diags_summary(const sts_diags *d, char *out, size_t outlen);

#endif
