/*
 * policy.c - the MTA-STS policy parser (RFC 8461 3.2) and mx pattern matching (4.1).
 * sts_policy_parse returns 0, STS_ESYNTAX (with every problem in the diagnostics) or
 * STS_ENOMEM; the predicates return 1 or 0. No I/O.
 */
#include "sender/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"

void sts_policy_free(sts_policy *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nmx; i++)
        free(p->mx[i]);
    free(p->mx);
    memset(p, 0, sizeof(*p));
}

int sts_policy_copy(sts_policy *dst, const sts_policy *src)
{
    memset(dst, 0, sizeof(*dst));
    memcpy(dst->version, src->version, sizeof(dst->version));
    dst->mode = src->mode;
    dst->max_age = src->max_age;
    if (src->nmx) {
        dst->mx = calloc(src->nmx, sizeof(*dst->mx));
        if (!dst->mx)
            return STS_ENOMEM;
        for (size_t i = 0; i < src->nmx; i++) {
            dst->mx[i] = strdup(src->mx[i]);
            if (!dst->mx[i]) {
                dst->nmx = i;
                sts_policy_free(dst);
                return STS_ENOMEM;
            }
        }
        dst->nmx = src->nmx;
    }
    return 0;
}

static int is_alnum(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}
static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 5321 Domain = sub-domain *("." sub-domain); sub-domain = Let-dig [Ldh-str], with
 * DNS's limits (RFC 1035 2.3.4: labels of at most 63 octets, names of at most 253
 * characters in text form). 1 valid, 0 with why. */
static int domain_valid(const char *d, size_t len, char *why, size_t whylen)
{
    if (len == 0) {
        snprintf(why, whylen, "empty host name");
        return 0;
    }
    if (len > 253) {
        snprintf(why, whylen, "host name longer than 253 characters");
        return 0;
    }
    if (d[len - 1] == '.') {
        snprintf(why, whylen, "trailing dot (write the name without it)");
        return 0;
    }
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && d[i] != '.') {
            unsigned char c = (unsigned char)d[i];
            if (c == '*') {
                snprintf(why, whylen,
                         "'*' is allowed only as the whole leftmost label (\"*.\" prefix)");
                return 0;
            }
            if (c >= 0x80) {
                snprintf(why, whylen,
                         "non-ASCII character: internationalized names must be written as "
                         "A-labels (xn--...)");
                return 0;
            }
            if (!is_alnum(c) && c != '-') {
                snprintf(why, whylen, "character '%c' is not allowed in a host name", c);
                return 0;
            }
            continue;
        }
        size_t l = i - start;
        if (l == 0) {
            snprintf(why, whylen, "empty label");
            return 0;
        }
        if (l > 63) {
            snprintf(why, whylen, "label longer than 63 characters");
            return 0;
        }
        if (d[start] == '-' || d[i - 1] == '-') {
            snprintf(why, whylen, "label '%.*s' begins or ends with '-'", (int)l, d + start);
            return 0;
        }
        start = i + 1;
    }
    return 1;
}

int sts_mx_pattern_valid(const char *pattern, char *why, size_t whylen)
{
    char dummy[8];
    if (!why) {
        why = dummy;
        whylen = sizeof(dummy);
    }
    if (!pattern) {
        snprintf(why, whylen, "no pattern");
        return 0;
    }
    size_t len = strlen(pattern);
    /* sts-policy-mx-value = ["*."] Domain: the wildcard is the whole leftmost label. */
    if (len >= 2 && pattern[0] == '*' && pattern[1] == '.')
        return domain_valid(pattern + 2, len - 2, why, whylen);
    if (len == 1 && pattern[0] == '*') {
        snprintf(why, whylen, "'*' alone is not a pattern (use \"*.\" followed by a domain)");
        return 0;
    }
    return domain_valid(pattern, len, why, whylen);
}

int sts_mx_pattern_match(const char *pattern, const char *host)
{
    if (!pattern || !host || !sts_mx_pattern_valid(pattern, NULL, 0))
        return 0;
    size_t hl = strlen(host);
    /* A host from DNS may carry the root's trailing dot: it names the same host. */
    if (hl && host[hl - 1] == '.')
        hl--;
    char why[8];
    if (!domain_valid(host, hl, why, sizeof(why)))
        return 0;
    if (pattern[0] == '*') {
        /* RFC 8461 4.1: "*.example.com" matches "mail.example.com" but not
         * "example.com" nor "foo.bar.example.com": exactly one leftmost label. */
        const char *dot = memchr(host, '.', hl);
        if (!dot || dot == host)
            return 0;
        size_t rest = hl - (size_t)(dot + 1 - host);
        const char *suffix = pattern + 2;
        return strlen(suffix) == rest && !strncasecmp(dot + 1, suffix, rest);
    }
    return strlen(pattern) == hl && !strncasecmp(pattern, host, hl);
}

const char *sts_policy_mx_match(const sts_policy *policy, const char *host)
{
    if (!policy)
        return NULL;
    for (size_t i = 0; i < policy->nmx; i++)
        if (sts_mx_pattern_match(policy->mx[i], host))
            return policy->mx[i];
    return NULL;
}

int sts_policy_mx_allowed(const sts_policy *policy, const char *host)
{
    return sts_policy_mx_match(policy, host) != NULL;
}

json_t *sts_policy_to_json(const sts_policy *policy)
{
    json_t *mx = json_array();
    if (!mx)
        return NULL;
    for (size_t i = 0; i < policy->nmx; i++)
        if (json_array_append_new(mx, json_string(policy->mx[i]))) {
            json_decref(mx);
            return NULL;
        }
    return json_pack("{s:s, s:s, s:I, s:o}", "version", policy->version, "mode",
                     sts_mode_name(policy->mode), "max_age", (json_int_t)policy->max_age, "mx", mx);
}

/* ---- the parser ---- */

enum { F_VERSION, F_MODE, F_MAX_AGE, F_MX, F_OTHER };
static const char *const field_names[] = {"version", "mode", "max_age", "mx"};

struct pstate {
    sts_policy *p;
    sts_diags *diags;
    int nerr;
    int seen[3]; /* line where version/mode/max_age was first seen, 0 = not yet */
    int nomem;
};

static void perr(struct pstate *st, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void perr(struct pstate *st, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    st->nerr++;
    if (sts_diags_vadd(st->diags, STS_DIAG_ERROR, line, col, fmt, ap))
        st->nomem = 1;
    va_end(ap);
}

static void pwarn(struct pstate *st, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void pwarn(struct pstate *st, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (sts_diags_vadd(st->diags, STS_DIAG_WARNING, line, col, fmt, ap))
        st->nomem = 1;
    va_end(ap);
}

static int add_mx(sts_policy *p, const char *v, size_t vl)
{
    char **mx = realloc(p->mx, (p->nmx + 1) * sizeof(*mx));
    if (!mx)
        return STS_ENOMEM;
    p->mx = mx;
    if (!(mx[p->nmx] = sts_strdup_n(v, vl)))
        return STS_ENOMEM;
    p->nmx++;
    return 0;
}

/* One line without its terminator: line[0..len), 1-based line number ln. */
static void parse_line(struct pstate *st, const char *line, size_t len, int ln)
{
    if (len == 0) {
        pwarn(st, ln, 1, "empty line ignored (not allowed by the RFC 8461 3.2 ABNF)");
        return;
    }
    if (is_wsp(line[0])) {
        perr(st, ln, 1, "line begins with whitespace");
        return;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon) {
        perr(st, ln, 1, "expected 'key: value', found no ':'");
        return;
    }
    size_t kl = (size_t)(colon - line);
    /* sts-policy-field-delim = ":" *WSP: no whitespace between key and ':'. */
    if (kl && is_wsp(line[kl - 1])) {
        size_t k = kl;
        while (k && is_wsp(line[k - 1]))
            k--;
        perr(st, ln, (int)k + 1, "whitespace before ':'");
        return;
    }
    /* sts-policy-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".") */
    if (kl == 0) {
        perr(st, ln, 1, "empty key before ':'");
        return;
    }
    if (!is_alnum((unsigned char)line[0])) {
        perr(st, ln, 1, "key '%.*s' must begin with a letter or digit", (int)kl, line);
        return;
    }
    for (size_t i = 1; i < kl; i++) {
        unsigned char c = (unsigned char)line[i];
        if (!is_alnum(c) && c != '_' && c != '-' && c != '.') {
            perr(st, ln, (int)i + 1, "key '%.*s' contains '%c'", (int)kl, line, c);
            return;
        }
    }
    if (kl > 32) {
        perr(st, ln, 1, "key '%.*s' is longer than 32 characters", (int)kl, line);
        return;
    }
    size_t v = kl + 1;
    while (v < len && is_wsp(line[v]))
        v++;
    size_t ve = len;
    while (ve > v && is_wsp(line[ve - 1]))
        ve--;
    const char *val = line + v;
    size_t vl = ve - v;
    int vcol = (int)v + 1;
    /* sts-policy-vchar = %x21-7E / UTF8-2 / UTF8-3 / UTF8-4, SP inside: no controls. */
    for (size_t i = v; i < ve; i++) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 0x20 && c != '\t') || c == 0x7f || (c == '\t')) {
            perr(st, ln, (int)i + 1, "control character 0x%02x in value", c);
            return;
        }
    }

    int f = F_OTHER;
    for (int i = 0; i < 4; i++)
        if (strlen(field_names[i]) == kl && !memcmp(line, field_names[i], kl))
            f = i;
    if (f == F_OTHER) {
        for (int i = 0; i < 4; i++)
            if (strlen(field_names[i]) == kl && !strncasecmp(line, field_names[i], kl))
                pwarn(st, ln, 1,
                      "key '%.*s' is not '%s' (keys are case-sensitive): ignored as an "
                      "unknown field",
                      (int)kl, line, field_names[i]);
        if (vl == 0)
            perr(st, ln, vcol, "field '%.*s' has an empty value", (int)kl, line);
        /* RFC 8461 3.2: unknown fields are ignored. */
        return;
    }
    if (vl == 0) {
        perr(st, ln, vcol, "%s has an empty value", field_names[f]);
        return;
    }
    if (f != F_MX && st->seen[f]) {
        pwarn(st, ln, 1, "%s given again (first on line %d); the first value is used",
              field_names[f], st->seen[f]);
        return;
    }
    sts_policy *p = st->p;
    switch (f) {
    case F_VERSION:
        st->seen[f] = ln;
        if (vl == 5 && !memcmp(val, "STSv1", 5))
            memcpy(p->version, "STSv1", 6);
        else
            perr(st, ln, vcol, "version '%.*s' is not STSv1", (int)vl, val);
        break;
    case F_MODE: {
        st->seen[f] = ln;
        char m[16];
        if (vl < sizeof(m)) {
            memcpy(m, val, vl);
            m[vl] = '\0';
        }
        if (vl >= sizeof(m) || sts_mode_parse(m, &p->mode))
            perr(st, ln, vcol, "mode '%.*s' is not one of enforce, testing, none", (int)vl, val);
        break;
    }
    case F_MAX_AGE: {
        st->seen[f] = ln;
        /* sts-policy-max-age-value = 1*10(DIGIT); "Maximum value is 31557600". */
        for (size_t i = 0; i < vl; i++)
            if (val[i] < '0' || val[i] > '9') {
                perr(st, ln, vcol + (int)i,
                     "max_age '%.*s' is not a number of seconds "
                     "(digits only)",
                     (int)vl, val);
                return;
            }
        if (vl > 10) {
            perr(st, ln, vcol, "max_age '%.*s' has more than 10 digits", (int)vl, val);
            return;
        }
        long n = 0;
        for (size_t i = 0; i < vl; i++)
            n = n * 10 + (val[i] - '0');
        if (n > STS_POLICY_MAX_AGE_MAX) {
            perr(st, ln, vcol, "max_age %ld is over the maximum of %ld seconds", n,
                 STS_POLICY_MAX_AGE_MAX);
            return;
        }
        p->max_age = n;
        break;
    }
    case F_MX: {
        char pat[300], why[160];
        if (vl >= sizeof(pat)) {
            perr(st, ln, vcol, "mx pattern longer than 255 characters");
            return;
        }
        memcpy(pat, val, vl);
        pat[vl] = '\0';
        if (!sts_mx_pattern_valid(pat, why, sizeof(why))) {
            perr(st, ln, vcol, "invalid mx pattern '%s': %s", pat, why);
            return;
        }
        for (size_t i = 0; i < p->nmx; i++)
            if (!strcasecmp(p->mx[i], pat))
                pwarn(st, ln, vcol, "mx pattern '%s' listed more than once", pat);
        if (add_mx(p, val, vl))
            st->nomem = 1;
        break;
    }
    }
}

int sts_policy_parse(const char *text, size_t len, sts_policy *out, sts_diags *diags)
{
    sts_policy p;
    memset(&p, 0, sizeof(p));
    memset(out, 0, sizeof(*out));
    struct pstate st = {.p = &p, .diags = diags};

    if (len == 0) {
        perr(&st, 0, 0, "empty policy");
        goto fail;
    }
    size_t pos = 0;
    int ln = 0;
    while (pos < len && !st.nomem) {
        ln++;
        /* sts-policy-term = LF / CRLF. A bare CR ends nothing: it is an error. */
        const char *lf = memchr(text + pos, '\n', len - pos);
        size_t end = lf ? (size_t)(lf - text) : len;
        size_t cl = end - pos;
        if (cl && text[end - 1] == '\r' && lf)
            cl--;
        const char *line = text + pos;
        const char *bad = memchr(line, '\r', cl);
        const char *nul = memchr(line, '\0', cl);
        if (nul)
            perr(&st, ln, (int)(nul - line) + 1, "NUL byte in line");
        else if (bad)
            perr(&st, ln, (int)(bad - line) + 1, "carriage return not followed by line feed");
        else
            parse_line(&st, line, cl, ln);
        pos = lf ? end + 1 : len;
    }
    if (st.nomem)
        goto nomem;
    /* RFC 8461 3.2: version, mode and max_age are required; mx is required at least
     * once "except when mode is none". */
    for (int f = F_VERSION; f <= F_MAX_AGE; f++)
        if (!st.seen[f])
            perr(&st, 0, 0, "missing required field %s", field_names[f]);
    /* A mode that did not parse stays STS_MODE_AUTO ("no mode"): already an error. */
    if (p.nmx == 0 && st.seen[F_MODE] && p.mode != STS_MODE_NONE && p.mode != STS_MODE_AUTO)
        perr(&st, 0, 0, "no mx field: at least one is required unless mode is none");
    if (st.nomem)
        goto nomem;
    if (st.nerr)
        goto fail;
    *out = p;
    return 0;
fail:
    sts_policy_free(&p);
    return STS_ESYNTAX;
nomem:
    sts_policy_free(&p);
    return STS_ENOMEM;
}

int sts_policy_same(const sts_policy *a, const sts_policy *b)
{
    if (a->mode != b->mode || a->max_age != b->max_age || a->nmx != b->nmx)
        return 0;
    for (size_t i = 0; i < a->nmx; i++)
        if (strcasecmp(a->mx[i], b->mx[i]))
            return 0;
    return 1;
}
