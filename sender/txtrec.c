/*
 * txtrec.c - the parts of the `_mta-sts` (RFC 8461 3.1) and `_smtp._tls` (RFC 8460 3)
 * TXT record grammars that are the same: the version filter, the start of a record,
 * extension fields, and the "exactly one record" selection. Every read goes through a
 * bounded cursor; functions return 0 or STS_ESYNTAX / STS_ENOTFOUND / STS_EINVAL /
 * STS_ENOMEM as txtrec.h documents.
 */
#include "sender/txtrec.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"

static int is_wsp(int c)
{
    return c == ' ' || c == '\t';
}
static int is_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

size_t sts_txtrec_token_len(const char *rec, size_t p, size_t len)
{
    sts_cur c;
    sts_cur_init(&c, rec + p, len - p);
    while (sts_cur_peek(&c) >= 0 && sts_cur_peek(&c) != ';' && !is_wsp(sts_cur_peek(&c)))
        sts_cur_skip(&c, 1);
    return c.off;
}

/* 1 when rec[0..len) begins with "v=" tag, else 0; *vlen gets strlen("v=" tag). */
static int has_version(const char *rec, size_t len, const char *tag, size_t *vlen)
{
    size_t tl = strlen(tag);
    *vlen = 2 + tl;
    return len >= *vlen && !memcmp(rec, "v=", 2) && !memcmp(rec + 2, tag, tl);
}

int sts_txtrec_begins(const char *rec, size_t len, const char *tag)
{
    size_t vl;
    if (!has_version(rec, len, tag, &vl))
        return 0;
    sts_cur c;
    sts_cur_init(&c, rec, len);
    sts_cur_skip(&c, vl);
    int next = sts_cur_peek(&c);
    return next < 0 || next == ';' || is_wsp(next);
}

int sts_txtrec_check_start(const char *rec, size_t len, const char *tag, sts_diags *diags)
{
    int rc = 0;
    size_t vl;
    const char *nul = memchr(rec, '\0', len);
    if (nul) {
        rc = sts_diags_add(diags, STS_DIAG_ERROR, 1, (int)(nul - rec) + 1,
                           "record contains a NUL byte");
    } else if (!has_version(rec, len, tag, &vl)) {
        sts_cur c;
        sts_cur_init(&c, rec, len);
        while (is_wsp(sts_cur_peek(&c)))
            sts_cur_skip(&c, 1);
        size_t ws = c.off;
        int v_after_ws =
            sts_cur_peek(&c) == 'v' && sts_cur_skip(&c, 1) == 0 && sts_cur_peek(&c) == '=';
        if (ws > 0 && v_after_ws)
            rc = sts_diags_add(diags, STS_DIAG_ERROR, 1, 1,
                               "record must begin with v=%s (no leading whitespace)", tag);
        else if (ws == 0 && v_after_ws)
            rc = sts_diags_add(diags, STS_DIAG_ERROR, 1, 3,
                               "unsupported version '%.*s' (expected %s)",
                               (int)sts_txtrec_token_len(rec, 2, len), rec + 2, tag);
        else
            rc = sts_diags_add(diags, STS_DIAG_ERROR, 1, 1, "record must begin with v=%s", tag);
    } else if (!sts_txtrec_begins(rec, len, tag)) {
        rc = sts_diags_add(diags, STS_DIAG_ERROR, 1, (int)vl + 1, "expected ';' after v=%s", tag);
    } else {
        return 0;
    }
    return rc ? rc : STS_ESYNTAX;
}

/* Report at byte offset off (column off+1); errors are counted in *nerr. */
#define ERR_AT(off, ...)                                                                           \
    do {                                                                                           \
        (*nerr)++;                                                                                 \
        if (sts_diags_add(diags, STS_DIAG_ERROR, 1, (int)(off) + 1, __VA_ARGS__))                  \
            return STS_ENOMEM;                                                                     \
    } while (0)
#define WARN_AT(off, ...)                                                                          \
    do {                                                                                           \
        if (sts_diags_add(diags, STS_DIAG_WARNING, 1, (int)(off) + 1, __VA_ARGS__))                \
            return STS_ENOMEM;                                                                     \
    } while (0)

int sts_txtrec_check_ext(const char *rec, size_t s, size_t e, const char *defined, sts_diags *diags,
                         int *nerr, size_t *eq)
{
    *eq = (size_t)-1;
    sts_cur c;
    sts_cur_init(&c, rec + s, e - s);
    while (sts_cur_peek(&c) >= 0 && sts_cur_peek(&c) != '=')
        sts_cur_skip(&c, 1);
    if (sts_cur_peek(&c) < 0) {
        ERR_AT(s, "field '%.*s' has no '=' (expected name=value)", (int)(e - s), rec + s);
        return 0;
    }
    const char *name = rec + s;
    size_t nlen = c.off, v = s + nlen + 1, vlen = e - v;
    /* ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
    if (nlen == 0) {
        ERR_AT(s, "field name is empty");
        return 0;
    }
    if (nlen > STS_TXTREC_EXT_NAME_MAX)
        ERR_AT(s, "field name '%.*s' is longer than %d characters", (int)nlen, name,
               STS_TXTREC_EXT_NAME_MAX);
    sts_cur_init(&c, name, nlen);
    uint8_t ch;
    sts_cur_u8(&c, &ch);
    if (!is_alnum(ch))
        ERR_AT(s, "field name '%.*s' must begin with a letter or digit", (int)nlen, name);
    while (sts_cur_u8(&c, &ch) == 0)
        if (!is_alnum(ch) && ch != '_' && ch != '-' && ch != '.') {
            ERR_AT(s + c.off - 1, "field name '%.*s' contains '%c'", (int)nlen, name, ch);
            break;
        }
    /* ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
    if (vlen == 0)
        ERR_AT(v, "field '%.*s' has an empty value", (int)nlen, name);
    sts_cur_init(&c, rec + v, vlen);
    while (sts_cur_u8(&c, &ch) == 0)
        if (ch < 0x21 || ch > 0x7e || ch == '=' || ch == ';') {
            if (ch >= 0x21 && ch <= 0x7e)
                ERR_AT(v + c.off - 1, "value of '%.*s' contains '%c'", (int)nlen, name, ch);
            else
                ERR_AT(v + c.off - 1, "value of '%.*s' contains byte 0x%02x", (int)nlen, name, ch);
            break;
        }
    if (nlen == strlen(defined) && !strncasecmp(name, defined, nlen))
        WARN_AT(s, "field '%.*s' is not '%s' (field names are case-sensitive)", (int)nlen, name,
                defined);
    if (nlen == 1 && name[0] == 'v')
        WARN_AT(s, "v= appears again after the version");
    *eq = s + nlen;
    return 0;
}

int sts_txtrec_select(const sts_txtrec_kind *kind, const char *const *records, const size_t *lens,
                      size_t n, void *out, sts_diags *diags, char *why, size_t whylen)
{
    char dummy[8];
    if (!why) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    memset(out, 0, kind->size);
    size_t nfound = 0, which = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = lens ? lens[i] : strlen(records[i]);
        if (sts_txtrec_begins(records[i], len, kind->tag)) {
            if (nfound == 0)
                which = i;
            nfound++;
        }
    }
    if (nfound != 1) {
        if (nfound == 0) {
            if (n)
                snprintf(why, whylen, "no TXT record begins with v=%s: %s", kind->tag,
                         kind->absent);
            else
                snprintf(why, whylen, "no TXT record: %s", kind->absent);
            return STS_ENOTFOUND;
        }
        snprintf(why, whylen, "%zu TXT records begin with v=%s: %s (%s requires exactly one)",
                 nfound, kind->tag, kind->absent, kind->rfc);
        return STS_EINVAL;
    }
    size_t len = lens ? lens[which] : strlen(records[which]);
    sts_diags local;
    sts_diags_init(&local);
    int rc = kind->parse(records[which], len, out, &local);
    if (rc == STS_ESYNTAX) {
        char s[300];
        snprintf(why, whylen, "invalid %s: %s: %s", kind->label,
                 sts_diags_summary(&local, s, sizeof(s)), kind->absent);
    } else if (rc != 0) {
        snprintf(why, whylen, "%s", sts_strerror(rc));
    }
    if (diags)
        for (size_t i = 0; i < local.n && rc != STS_ENOMEM; i++)
            if (sts_diags_add(diags, local.items[i].severity, local.items[i].line,
                              local.items[i].column, "%s", local.items[i].message)) {
                kind->release(out);
                rc = STS_ENOMEM;
            }
    sts_diags_free(&local);
    return rc;
}
