/*
 * fuzz_txtrec.h - what the reference readers of fuzz_ststxt.c and fuzz_tlsrpt.c share:
 * the extension grammar both RFCs write the same way (RFC 8461 3.1, RFC 8460 3), the
 * split of a record into ';'-separated segments, the split of a fuzz input into the TXT
 * records handed to a select function, and the properties every parse and selection of
 * such a record has. Written apart from sender/txtrec.c on purpose: the targets check
 * the parsers against this reading.
 */
#ifndef STS_FUZZ_TXTREC_H
#define STS_FUZZ_TXTREC_H

#include <stddef.h>
#include <string.h>

#include "common/err.h"
#include "fuzz/fuzz.h"
#include "sender/diag.h"

static inline int fuzz_is_wsp(unsigned char c)
{
    return c == ' ' || c == '\t';
}
static inline int fuzz_is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
static inline int fuzz_ext_name_ok(const char *s, size_t n)
{
    if (n < 1 || n > 32 || !fuzz_is_alnum((unsigned char)s[0]))
        return 0;
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!fuzz_is_alnum(c) && c != '_' && c != '-' && c != '.')
            return 0;
    }
    return 1;
}

/* ext-value = 1*(%x21-3A / %x3C / %x3E-7E) */
static inline int fuzz_ext_value_ok(const char *s, size_t n)
{
    if (n < 1)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ';' || c == '=')
            return 0;
    }
    return 1;
}

/* s[0..n) without the whitespace at both ends: *field, *flen. */
static inline void fuzz_trim(const char *s, size_t n, const char **field, size_t *flen)
{
    size_t a = 0, b = n;
    while (a < b && fuzz_is_wsp((unsigned char)s[a]))
        a++;
    while (b > a && fuzz_is_wsp((unsigned char)s[b - 1]))
        b--;
    *field = s + a;
    *flen = b - a;
}

/* One ';'-separated segment: *WSP field *WSP, or only WSP (*empty = 1). 1 = well formed
 * (no whitespace inside the field). */
static inline int fuzz_segment(const char *s, size_t n, const char **field, size_t *flen,
                               int *empty)
{
    fuzz_trim(s, n, field, flen);
    *empty = *flen == 0;
    return memchr(*field, ' ', *flen) == NULL && memchr(*field, '\t', *flen) == NULL;
}

/* The input's lines (split at LF, at most max) as the TXT records of one name. */
static inline size_t fuzz_split_lines(const char *in, size_t len, const char **recs, size_t *lens,
                                      size_t max)
{
    size_t n = 0, start = 0;
    for (size_t i = 0; i <= len && n < max; i++)
        if (i == len || in[i] == '\n') {
            recs[n] = in + start;
            lens[n] = i - start;
            n++;
            start = i + 1;
        }
    return n;
}

/* A parse of a size-byte record returned rc (never STS_ENOMEM here): 0 or STS_ESYNTAX,
 * every diagnostic on line 1 with a column inside the record (or just past it), errors
 * exactly when it failed, and the verdict of the reference reader (1 valid, 0 invalid,
 * -1 none) the same. */
static inline void fuzz_check_parse(int rc, const sts_diags *d, size_t size, int ref)
{
    FUZZ_CHECK(rc == 0 || rc == STS_ESYNTAX, "rc %d", rc);
    for (size_t i = 0; i < d->n; i++)
        FUZZ_CHECK(d->items[i].line == 1 && d->items[i].column >= 0 &&
                       (size_t)d->items[i].column <= size + 1,
                   "diagnostic at line %d column %d of a %zu-byte record: %s", d->items[i].line,
                   d->items[i].column, size, d->items[i].message);
    if (rc == 0) {
        FUZZ_CHECK(d->nerrors == 0, "parse succeeded with %zu errors", d->nerrors);
        FUZZ_CHECK(ref != 0, "parser accepts what the grammar rejects");
    } else {
        FUZZ_CHECK(d->nerrors > 0, "rejected without an error diagnostic");
        FUZZ_CHECK(ref <= 0, "parser rejects what the grammar accepts: %s",
                   d->n ? d->items[0].message : "");
    }
}

/* How many of the n records is_rec takes for the record kind; *which: the first. */
static inline size_t fuzz_count_records(const char *const *recs, const size_t *lens, size_t n,
                                        int (*is_rec)(const char *, size_t), size_t *which)
{
    size_t found = 0;
    *which = 0;
    for (size_t i = 0; i < n; i++)
        if (is_rec(recs[i], lens[i]) && found++ == 0)
            *which = i;
    return found;
}

/* A selection among records of which nfound begin with the version returned rc with
 * diagnostics d and explanation why; prc is what parsing the one such record returned
 * (when nfound is 1). ENOTFOUND for none, EINVAL for several, else exactly prc. */
static inline void fuzz_check_select(size_t nfound, int rc, int prc, const sts_diags *d,
                                     const char *why)
{
    FUZZ_CHECK(why[0] != '\0', "select gave no explanation");
    if (nfound != 1) {
        FUZZ_CHECK(rc == (nfound ? STS_EINVAL : STS_ENOTFOUND), "%zu records, rc %d", nfound, rc);
    } else if (prc != STS_ENOMEM) {
        FUZZ_CHECK(rc == prc, "select rc %d, parse rc %d", rc, prc);
        if (rc == STS_ESYNTAX)
            FUZZ_CHECK(d->nerrors > 0, "select: invalid record without an error");
    }
}

#endif
