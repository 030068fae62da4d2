/*
 * fuzz_txtrec.h - what the reference readers of fuzz_ststxt.c and fuzz_tlsrpt.c share:
 * the extension grammar both RFCs write the same way (RFC 8461 3.1, RFC 8460 3), the
 * split of a record into ';'-separated segments, and the split of a fuzz input into
 * the TXT records handed to a select function. Written apart from sender/txtrec.c on
 * purpose: the targets check the parsers against this reading.
 */
#ifndef STS_FUZZ_TXTREC_H
#define STS_FUZZ_TXTREC_H

#include <stddef.h>
#include <string.h>

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

#endif
