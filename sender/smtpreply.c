/*
 * smtpreply.c - the SMTP reply parser (RFC 5321 4.2 + RFC 2034/3463 enhanced codes).
 * A pure function over bytes: no I/O, no state beyond the reply it fills. Returns 0 or
 * a negative code from common/err.h (see smtpreply.h).
 */
#include "sender/smtpreply.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"

void sts_smtp_reply_init(sts_smtp_reply *r)
{
    memset(r, 0, sizeof(*r));
    sts_buf_init(&r->text, STS_SMTP_REPLY_MAX);
}

void sts_smtp_reply_free(sts_smtp_reply *r)
{
    sts_buf_free(&r->text);
    r->code = 0;
    r->nlines = 0;
    r->enhanced[0] = '\0';
}

/* RFC 3463 2: status-code = class "." subject "." detail, class "2"/"4"/"5", subject and
 * detail 1-3 digits; RFC 2034 4: followed by SP (or the end of the line) and its class
 * equals the first digit of the reply code. Returns the length of the code (0 = none). */
static size_t enhanced_len(const char *p, size_t n, int reply_class)
{
    size_t i = 0;
    if (n < 5 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[0] - '0' != reply_class)
        return 0;
    i = 1;
    for (int part = 0; part < 2; part++) {
        if (i >= n || p[i] != '.')
            return 0;
        i++;
        size_t d = 0;
        while (i < n && d < 4 && isdigit((unsigned char)p[i])) {
            i++;
            d++;
        }
        if (d < 1 || d > 3)
            return 0;
    }
    if (i < n && p[i] != ' ')
        return 0;
    return i;
}

int sts_smtp_reply_parse(const char *data, size_t len, sts_smtp_reply *r, size_t *consumed,
                         char *why, size_t whylen)
{
    size_t off = 0;
    size_t lineno = 0;
    int code = 0;
    char dummy[1];

    if (!why) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    why[0] = '\0';
    *consumed = 0;
    sts_buf_reset(&r->text);
    r->code = 0;
    r->nlines = 0;
    r->enhanced[0] = '\0';

    while (off < len) {
        const char *line = data + off;
        size_t left = len - off;
        const char *lf = memchr(line, '\n', left < STS_SMTP_LINE_MAX ? left : STS_SMTP_LINE_MAX);
        if (!lf) {
            if (left >= STS_SMTP_LINE_MAX) {
                snprintf(why, whylen, "reply line %zu longer than %d bytes", lineno + 1,
                         STS_SMTP_LINE_MAX);
                return STS_ETOOBIG;
            }
            return 0; /* incomplete: wait for more */
        }
        size_t full = (size_t)(lf - line) + 1;
        size_t n = full - 1;
        if (n > 0 && line[n - 1] == '\r')
            n--;
        lineno++;
        if (off + full > STS_SMTP_REPLY_MAX) {
            snprintf(why, whylen, "reply longer than %d bytes", STS_SMTP_REPLY_MAX);
            return STS_ETOOBIG;
        }
        if (memchr(line, '\0', n)) {
            snprintf(why, whylen, "NUL byte in reply line %zu", lineno);
            return STS_EPROTO;
        }
        /* RFC 5321 4.2: three digits, then SP, "-" or the end of the line. */
        if (n < 3 || line[0] < '2' || line[0] > '5' || line[1] < '0' || line[1] > '5' ||
            !isdigit((unsigned char)line[2])) {
            snprintf(why, whylen, "reply line %zu does not start with a reply code: \"%.*s\"",
                     lineno, (int)(n > 60 ? 60 : n), line);
            return STS_EPROTO;
        }
        int c = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (n > 3 && line[3] != ' ' && line[3] != '-') {
            snprintf(why, whylen, "reply line %zu: code %d followed by '%c', not SP or '-'",
                     lineno, c, isprint((unsigned char)line[3]) ? line[3] : '?');
            return STS_EPROTO;
        }
        if (code && c != code) {
            snprintf(why, whylen, "reply line %zu has code %d, earlier lines %d", lineno, c,
                     code);
            return STS_EPROTO;
        }
        code = c;
        int last = n == 3 || line[3] == ' ';

        const char *t = n > 4 ? line + 4 : line + n;
        size_t tn = n > 4 ? n - 4 : 0;
        size_t el = enhanced_len(t, tn, c / 100);
        if (el) {
            if (!r->enhanced[0] && el < sizeof(r->enhanced)) {
                memcpy(r->enhanced, t, el);
                r->enhanced[el] = '\0';
            }
            t += el;
            tn -= el;
            if (tn && *t == ' ') {
                t++;
                tn--;
            }
        }
        int rc = 0;
        if (lineno > 1)
            rc = sts_buf_append(&r->text, "\n", 1);
        if (!rc)
            rc = sts_buf_append(&r->text, t, tn);
        if (rc) {
            if (rc == STS_ETOOBIG)
                snprintf(why, whylen, "reply longer than %d bytes", STS_SMTP_REPLY_MAX);
            return rc;
        }
        off += full;
        if (last) {
            r->code = code;
            r->nlines = lineno;
            if (!r->text.data)
                sts_buf_append(&r->text, "", 0);
            *consumed = off;
            return 0;
        }
    }
    return 0;
}

int sts_smtp_reply_line(const sts_smtp_reply *r, size_t n, char *out, size_t outlen)
{
    const char *p = r->text.data ? r->text.data : "";
    const char *end = p + r->text.len;
    for (size_t i = 0; i < n; i++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            return STS_ENOTFOUND;
        p = nl + 1;
    }
    if (n >= r->nlines)
        return STS_ENOTFOUND;
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    size_t l = nl ? (size_t)(nl - p) : (size_t)(end - p);
    if (outlen) {
        if (l >= outlen)
            l = outlen - 1;
        memcpy(out, p, l);
        out[l] = '\0';
    }
    return 0;
}

int sts_smtp_reply_has_ext(const sts_smtp_reply *r, const char *keyword)
{
    size_t kl = strlen(keyword);
    char line[256];
    /* RFC 5321 4.1.1.1: the first line of the EHLO reply is the greeting, keywords
     * follow one per line. */
    for (size_t i = 1; i < r->nlines; i++) {
        if (sts_smtp_reply_line(r, i, line, sizeof(line)))
            break;
        if (!strncasecmp(line, keyword, kl) && (line[kl] == '\0' || line[kl] == ' '))
            return 1;
    }
    return 0;
}

int sts_smtp_reply_ext_param(const sts_smtp_reply *r, const char *keyword, char *out,
                             size_t outlen)
{
    size_t kl = strlen(keyword);
    char line[256];
    if (outlen)
        out[0] = '\0';
    for (size_t i = 1; i < r->nlines; i++) {
        if (sts_smtp_reply_line(r, i, line, sizeof(line)))
            break;
        if (strncasecmp(line, keyword, kl) || (line[kl] != '\0' && line[kl] != ' '))
            continue;
        if (outlen && line[kl] == ' ')
            snprintf(out, outlen, "%s", line + kl + 1);
        return 1;
    }
    return 0;
}

int sts_smtp_reply_size_limit(const sts_smtp_reply *r, unsigned long long *limit)
{
    char param[64];
    *limit = 0;
    if (!sts_smtp_reply_ext_param(r, "SIZE", param, sizeof(param)))
        return 0;
    /* RFC 1870 4: size-param = [1*DIGIT]; 0 or nothing means no fixed maximum. A value
     * we cannot read is treated as no fixed maximum: the server still enforces its own
     * limit with a 552 to MAIL or at the end of data. */
    size_t n = strlen(param);
    if (!n || n > 20)
        return 1;
    unsigned long long v = 0;
    for (size_t i = 0; i < n; i++) {
        if (param[i] < '0' || param[i] > '9')
            return 1;
        unsigned d = (unsigned)(param[i] - '0');
        if (v > (~0ULL - d) / 10)
            return 1;
        v = v * 10 + d;
    }
    *limit = v;
    return 1;
}
