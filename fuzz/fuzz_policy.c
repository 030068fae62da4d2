/*
 * fuzz_policy.c - fuzz target for the MTA-STS policy body parser (sender/policy.h,
 * RFC 8461 3.2). The input is one policy body as an HTTPS server would serve it.
 *
 * Properties checked (abort on violation):
 *  - sts_policy_parse returns 0 or STS_ESYNTAX (STS_ENOMEM only on allocation failure).
 *    On success: no error diagnostic, version "STSv1", mode enforce/testing/none,
 *    0 <= max_age <= 31557600, at least one mx unless mode is none, every mx a valid
 *    pattern (sts_mx_pattern_valid) that occurs in the input. On failure: at least one
 *    error, *out zeroed. Every diagnostic names a line of the input (0 = the whole
 *    input) and a column inside that line.
 *  - Round trip: the parsed policy written back canonically (CRLF, fields in another
 *    order) parses to the same policy.
 *  - Line endings: when the input has no CR, the same input with every LF turned into
 *    CRLF gives the same result, the same policy and the same number of errors and
 *    warnings (RFC 8461 3.2 allows both).
 *  - sts_policy_copy and sts_policy_to_json reproduce the policy.
 *  - mx matching: every plain pattern matches itself (also upper-cased and with a
 *    trailing dot), "*.d" matches "x.d" but neither "d" nor "y.x.d".
 * The function returns 0 (libFuzzer's convention).
 */
#include <ctype.h>
#include <string.h>

#include "common/err.h"
#include "fuzz/fuzz.h"
#include "sender/policy.h"

static void check_same(const sts_policy *a, const sts_policy *b, const char *what)
{
    FUZZ_CHECK(!strcmp(a->version, b->version), "%s: version", what);
    FUZZ_CHECK(a->mode == b->mode, "%s: mode %d vs %d", what, a->mode, b->mode);
    FUZZ_CHECK(a->max_age == b->max_age, "%s: max_age %ld vs %ld", what, a->max_age, b->max_age);
    FUZZ_CHECK(a->nmx == b->nmx, "%s: %zu vs %zu mx", what, a->nmx, b->nmx);
    for (size_t i = 0; i < a->nmx; i++)
        FUZZ_CHECK(!strcmp(a->mx[i], b->mx[i]), "%s: mx %zu '%s' vs '%s'", what, i, a->mx[i],
                   b->mx[i]);
}

/* Line count of the input as the parser numbers lines (LF-terminated, a last line
 * without LF counts too). */
static size_t count_lines(const char *t, size_t n)
{
    size_t lines = 0;
    for (size_t i = 0; i < n; i++)
        if (t[i] == '\n')
            lines++;
    if (n && t[n - 1] != '\n')
        lines++;
    return lines;
}

static void check_diags(const char *t, size_t n, const sts_diags *d)
{
    size_t lines = count_lines(t, n);
    for (size_t i = 0; i < d->n; i++) {
        const sts_diag *g = &d->items[i];
        FUZZ_CHECK(g->line >= 0 && (size_t)g->line <= lines, "diagnostic on line %d of %zu: %s",
                   g->line, lines, g->message);
        FUZZ_CHECK(g->column >= 0, "negative column");
        if (g->line == 0) {
            FUZZ_CHECK(g->column == 0, "whole-input diagnostic with column %d", g->column);
            continue;
        }
        /* the length of that line */
        size_t ln = 1, s = 0;
        while (ln < (size_t)g->line) {
            const char *lf = memchr(t + s, '\n', n - s);
            s = (size_t)(lf - t) + 1;
            ln++;
        }
        const char *lf = memchr(t + s, '\n', n - s);
        size_t llen = lf ? (size_t)(lf - t) - s : n - s;
        FUZZ_CHECK((size_t)g->column <= llen + 1, "column %d on line %d of %zu bytes: %s",
                   g->column, g->line, llen, g->message);
    }
}

/* The canonical text of p: CRLF, mx first, then max_age, mode, version. */
static char *canonical(const sts_policy *p, size_t *len)
{
    size_t cap = 128;
    for (size_t i = 0; i < p->nmx; i++)
        cap += strlen(p->mx[i]) + 8;
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < p->nmx; i++)
        n += (size_t)snprintf(s + n, cap - n, "mx: %s\r\n", p->mx[i]);
    n += (size_t)snprintf(s + n, cap - n, "max_age: %ld\r\nmode: %s\r\nversion: %s\r\n", p->max_age,
                          sts_mode_name(p->mode), p->version);
    *len = n;
    return s;
}

static void check_matching(const sts_policy *p)
{
    char host[600];
    for (size_t i = 0; i < p->nmx; i++) {
        const char *pat = p->mx[i];
        if (pat[0] == '*') {
            const char *dom = pat + 2;
            FUZZ_CHECK(!sts_mx_pattern_match(pat, dom), "'%s' matches its bare domain", pat);
            if (strlen(dom) + 2 <= 253) {
                snprintf(host, sizeof(host), "x.%s", dom);
                FUZZ_CHECK(sts_mx_pattern_match(pat, host), "'%s' does not match '%s'", pat, host);
                FUZZ_CHECK(sts_policy_mx_allowed(p, host), "policy does not allow '%s'", host);
            }
            if (strlen(dom) + 4 <= 253) {
                snprintf(host, sizeof(host), "y.x.%s", dom);
                FUZZ_CHECK(!sts_mx_pattern_match(pat, host), "'%s' matches two labels '%s'", pat,
                           host);
            }
        } else {
            FUZZ_CHECK(sts_mx_pattern_match(pat, pat), "'%s' does not match itself", pat);
            FUZZ_CHECK(sts_policy_mx_match(p, pat) != NULL, "policy does not allow '%s'", pat);
            size_t n = strlen(pat);
            for (size_t k = 0; k < n; k++)
                host[k] = (char)toupper((unsigned char)pat[k]);
            host[n] = '.';
            host[n + 1] = '\0';
            FUZZ_CHECK(sts_mx_pattern_match(pat, host), "'%s' does not match '%s'", pat, host);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    sts_policy p;
    sts_diags d;
    sts_diags_init(&d);
    int rc = sts_policy_parse(text, size, &p, &d);
    FUZZ_CHECK(rc == 0 || rc == STS_ESYNTAX || rc == STS_ENOMEM, "rc %d", rc);
    if (rc == STS_ENOMEM)
        goto out;
    check_diags(text, size, &d);
    if (rc == 0) {
        FUZZ_CHECK(d.nerrors == 0, "valid with %zu errors", d.nerrors);
        FUZZ_CHECK(!strcmp(p.version, "STSv1"), "version '%s'", p.version);
        FUZZ_CHECK(p.mode == STS_MODE_ENFORCE || p.mode == STS_MODE_TESTING ||
                       p.mode == STS_MODE_NONE,
                   "mode %d", p.mode);
        FUZZ_CHECK(p.max_age >= 0 && p.max_age <= STS_POLICY_MAX_AGE_MAX, "max_age %ld", p.max_age);
        FUZZ_CHECK(p.nmx > 0 || p.mode == STS_MODE_NONE, "mode %s without mx",
                   sts_mode_name(p.mode));
        for (size_t i = 0; i < p.nmx; i++) {
            char why[160];
            FUZZ_CHECK(sts_mx_pattern_valid(p.mx[i], why, sizeof(why)), "mx '%s' invalid: %s",
                       p.mx[i], why);
            FUZZ_CHECK(memmem(text, size, p.mx[i], strlen(p.mx[i])) != NULL,
                       "mx '%s' not in the input", p.mx[i]);
        }
        /* round trip */
        size_t cl;
        char *c = canonical(&p, &cl);
        if (c) {
            sts_policy q;
            int qrc = sts_policy_parse(c, cl, &q, NULL);
            if (qrc != STS_ENOMEM) {
                FUZZ_CHECK(qrc == 0, "canonical form does not parse:\n%s", c);
                check_same(&p, &q, "round trip");
                sts_policy_free(&q);
            }
            free(c);
        }
        /* copy and JSON */
        sts_policy q;
        if (sts_policy_copy(&q, &p) == 0) {
            check_same(&p, &q, "copy");
            sts_policy_free(&q);
        }
        json_t *j = sts_policy_to_json(&p);
        if (j) {
            FUZZ_CHECK(json_array_size(json_object_get(j, "mx")) == p.nmx, "JSON mx count");
            FUZZ_CHECK(json_integer_value(json_object_get(j, "max_age")) == p.max_age,
                       "JSON max_age");
            FUZZ_CHECK(
                !strcmp(json_string_value(json_object_get(j, "mode")), sts_mode_name(p.mode)),
                "JSON mode");
            json_decref(j);
        }
        check_matching(&p);
    } else {
        FUZZ_CHECK(d.nerrors > 0, "rejected without an error diagnostic");
        FUZZ_CHECK(p.nmx == 0 && p.mx == NULL && p.mode == STS_MODE_AUTO && p.version[0] == '\0',
                   "*out not zeroed");
    }

    /* LF vs CRLF: the same policy either way. */
    if (!memchr(text, '\r', size)) {
        size_t nl = 0;
        for (size_t i = 0; i < size; i++)
            nl += text[i] == '\n';
        char *crlf = malloc(size + nl + 1);
        if (crlf) {
            size_t k = 0;
            for (size_t i = 0; i < size; i++) {
                if (text[i] == '\n')
                    crlf[k++] = '\r';
                crlf[k++] = text[i];
            }
            sts_policy q;
            sts_diags e;
            sts_diags_init(&e);
            int qrc = sts_policy_parse(crlf, k, &q, &e);
            if (qrc != STS_ENOMEM) {
                FUZZ_CHECK(qrc == rc, "LF gives %d, CRLF gives %d", rc, qrc);
                FUZZ_CHECK(e.nerrors == d.nerrors && e.nwarnings == d.nwarnings,
                           "LF: %zu errors %zu warnings; CRLF: %zu errors %zu warnings", d.nerrors,
                           d.nwarnings, e.nerrors, e.nwarnings);
                if (rc == 0)
                    check_same(&p, &q, "CRLF");
            }
            sts_policy_free(&q);
            sts_diags_free(&e);
            free(crlf);
        }
    }
out:
    sts_policy_free(&p);
    sts_diags_free(&d);
    return 0;
}
