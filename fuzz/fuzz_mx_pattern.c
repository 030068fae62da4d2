/*
 * fuzz_mx_pattern.c - fuzz target for the MTA-STS mx pattern rules (sender/policy.h:
 * sts_mx_pattern_valid, sts_mx_pattern_match; RFC 8461 3.2 and 4.1). The input is
 * "pattern LF host" (a missing LF means an empty host; both end at a NUL byte).
 *
 * Properties checked (abort on violation):
 *  - sts_mx_pattern_valid and sts_mx_pattern_match agree with ref_valid/ref_match
 *    below, an independent implementation of the rules as policy.h states them:
 *    ["*."] Domain, LDH labels of 1-63 characters with a letter or digit at both ends,
 *    at most 253 characters without the "*.", no trailing dot; a host matches when it
 *    is valid (one trailing dot ignored) and equals the pattern ignoring case, or, for
 *    "*.d", is exactly one more label in front of d.
 *  - A match implies a valid pattern.
 *  - Matching ignores case (of pattern and host) and one trailing dot on the host.
 * The function returns 0 (libFuzzer's convention).
 */
#include <ctype.h>
#include <string.h>
#include <strings.h>

#include "fuzz/fuzz.h"
#include "sender/policy.h"

static int ldh(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
}

/* One label s[0..n): 1-63 LDH characters, no '-' at either end. */
static int ref_label(const char *s, size_t n)
{
    if (n < 1 || n > 63 || s[0] == '-' || s[n - 1] == '-')
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!ldh((unsigned char)s[i]))
            return 0;
    return 1;
}

/* A domain: labels separated by single dots, at most 253 characters. */
static int ref_domain(const char *s, size_t n)
{
    if (n < 1 || n > 253)
        return 0;
    size_t start = 0;
    for (size_t i = 0; i < n; i++)
        if (s[i] == '.') {
            if (!ref_label(s + start, i - start))
                return 0;
            start = i + 1;
        }
    return ref_label(s + start, n - start);
}

static int ref_valid(const char *p)
{
    size_t n = strlen(p);
    if (n >= 2 && p[0] == '*' && p[1] == '.')
        return ref_domain(p + 2, n - 2);
    return ref_domain(p, n);
}

static int ref_match(const char *p, const char *h)
{
    if (!ref_valid(p))
        return 0;
    size_t hn = strlen(h);
    if (hn && h[hn - 1] == '.')
        hn--;
    if (!ref_domain(h, hn))
        return 0;
    if (p[0] == '*') {
        /* the host's first label, then the rest must equal the pattern's domain */
        const char *rest = memchr(h, '.', hn);
        if (!rest)
            return 0;
        rest++;
        size_t rn = hn - (size_t)(rest - h);
        return strlen(p + 2) == rn && !strncasecmp(rest, p + 2, rn);
    }
    return strlen(p) == hn && !strncasecmp(p, h, hn);
}

static void flip_case(char *s)
{
    for (; *s; s++)
        *s = (char)(isupper((unsigned char)*s) ? tolower((unsigned char)*s)
                                               : toupper((unsigned char)*s));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1024)
        return 0; /* names are at most 255 octets: longer inputs teach nothing */
    char pat[1100], host[1100];
    const char *in = (const char *)data;
    const char *lf = memchr(in, '\n', size);
    size_t pl = lf ? (size_t)(lf - in) : size;
    memcpy(pat, in, pl);
    pat[pl] = '\0'; /* a NUL inside ends the string early, as for a C caller */
    size_t hl = lf ? size - pl - 1 : 0;
    memcpy(host, lf ? lf + 1 : in, hl);
    host[hl] = '\0';

    char why[160] = "";
    int v = sts_mx_pattern_valid(pat, why, sizeof(why));
    FUZZ_CHECK(v == 0 || v == 1, "valid returned %d", v);
    FUZZ_CHECK(v == ref_valid(pat), "valid('%s') = %d, reference %d (%s)", pat, v, ref_valid(pat),
               why);
    if (!v)
        FUZZ_CHECK(why[0] != '\0', "invalid '%s' without a reason", pat);
    int m = sts_mx_pattern_match(pat, host);
    FUZZ_CHECK(m == 0 || m == 1, "match returned %d", m);
    FUZZ_CHECK(m == ref_match(pat, host), "match('%s', '%s') = %d, reference %d", pat, host, m,
               ref_match(pat, host));
    FUZZ_CHECK(!m || v, "invalid pattern '%s' matched '%s'", pat, host);

    /* case-insensitive (RFC 8461 4.1 compares names as DNS does) */
    char p2[1100], h2[1100];
    strcpy(p2, pat);
    strcpy(h2, host);
    flip_case(p2);
    flip_case(h2);
    FUZZ_CHECK(sts_mx_pattern_match(p2, host) == m, "case of the pattern changes the match");
    FUZZ_CHECK(sts_mx_pattern_match(pat, h2) == m, "case of the host changes the match");
    /* one trailing dot on the host names the same host */
    size_t n = strlen(host);
    if (n && host[n - 1] != '.') {
        host[n] = '.';
        host[n + 1] = '\0';
        FUZZ_CHECK(sts_mx_pattern_match(pat, host) == m, "a trailing dot changes the match");
    }
    return 0;
}
