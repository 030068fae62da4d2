/*
 * smtpreply.h - the SMTP reply parser (RFC 5321 4.2, enhanced status codes RFC 2034 /
 * RFC 3463), a pure function over a byte buffer.
 *
 *   reply-line = *( Reply-code "-" [ textstring ] CRLF )
 *                   Reply-code [ SP textstring ] CRLF
 *
 * Every line of one reply must carry the same code; the first digit must be 2-5
 * (RFC 5321 4.2.1; 1yz is never used in SMTP), the second 0-5. A line may be
 * longer than RFC 5321 4.5.3.1.5's 512 octets (real servers send longer ones): we
 * tolerate up to STS_SMTP_LINE_MAX, and a whole reply up to STS_SMTP_REPLY_MAX.
 * A bare LF ends a line too (robustness); NUL bytes are a protocol error.
 *
 * sts_smtp_reply_parse returns 0 (a reply parsed, or not complete yet: see consumed),
 * STS_EPROTO (malformed), STS_ETOOBIG (over a cap) or STS_ENOMEM.
 */
#ifndef STS_SMTPREPLY_H
#define STS_SMTPREPLY_H

#include <stddef.h>

#include "common/buf.h"

#define STS_SMTP_LINE_MAX 4096          /* one reply line, CRLF included */
#define STS_SMTP_REPLY_MAX (64 * 1024)  /* one whole (multi-line) reply */

typedef struct sts_smtp_reply {
    int code;           /* 220, 250, 354, 421, 550, ... */
    char enhanced[16];  /* "2.1.0" (RFC 3463 class.subject.detail) or "" */
    size_t nlines;
    /* The text of every line without the code, the separator and (when present) the
     * enhanced code of that line, lines joined by '\n'. Capped at STS_SMTP_REPLY_MAX. */
    sts_buf text;
} sts_smtp_reply;

void sts_smtp_reply_init(sts_smtp_reply *r);
void sts_smtp_reply_free(sts_smtp_reply *r);

/* Parse the first reply in data[0..len). On 0 with *consumed > 0, *r holds one
 * complete reply of *consumed bytes (r is reset first); on 0 with *consumed == 0 the
 * reply is not complete yet (read more). Errors: STS_EPROTO with a reason in why
 * (may be NULL) naming the line, STS_ETOOBIG, STS_ENOMEM. */
int sts_smtp_reply_parse(const char *data, size_t len, sts_smtp_reply *r, size_t *consumed,
                         char *why, size_t whylen);

/* The n-th line (0-based) of r's text into out (NUL-terminated, truncated to outlen);
 * returns 0 or STS_ENOTFOUND. Used for EHLO keywords. */
int sts_smtp_reply_line(const sts_smtp_reply *r, size_t n, char *out, size_t outlen);

/* 1 when an EHLO reply advertises keyword (case-insensitive, RFC 5321 2.4: ehlo-keyword
 * followed by the end of the line or SP and parameters), else 0. */
int sts_smtp_reply_has_ext(const sts_smtp_reply *r, const char *keyword);

/* The parameters of an EHLO keyword (RFC 5321 4.1.1.1: ehlo-line = ehlo-keyword
 * *( SP ehlo-param )): 1 when keyword is advertised, with the text after the keyword
 * and its SP copied to out (NUL-terminated, truncated to outlen; "" when it has no
 * parameters), else 0 and out "". E.g. "SIZE 10240000" -> 1, "10240000". */
int sts_smtp_reply_ext_param(const sts_smtp_reply *r, const char *keyword, char *out,
                             size_t outlen);

/* RFC 1870 4: the limit of an EHLO reply's SIZE keyword: 1 when SIZE is advertised,
 * *limit = its value (0 = "no fixed maximum", also when the parameter is absent or not
 * a number of at most 20 digits); 0 when SIZE is not advertised. */
int sts_smtp_reply_size_limit(const sts_smtp_reply *r, unsigned long long *limit);

/* The reply class: 2, 3, 4 or 5 (code / 100). */
static inline int sts_smtp_reply_class(const sts_smtp_reply *r) { return r->code / 100; }

#endif
