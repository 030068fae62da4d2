/*
 * tlsrpt.c - the `_smtp._tls` TLSRPT policy record parser and the RFC 8460 3 record
 * selection. sts_tlsrpt_parse/sts_tlsrpt_select return 0 or STS_ESYNTAX / STS_ENOTFOUND /
 * STS_EINVAL / STS_ENOMEM as tlsrpt.h documents; every problem is reported with its
 * column. The record is read through a bounded cursor (common/buf.h); what the
 * `_mta-sts` record shares with it (version, extensions, selection) is in txtrec.c.
 */
#include "sender/tlsrpt.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"
#include "sender/txtrec.h"

#define TLSRPT_TAG "TLSRPTv1"
#define TLSRPT_V_LEN (sizeof("v=" TLSRPT_TAG) - 1)
#define SMTP_TLS_PREFIX "_smtp._tls."

static int is_wsp(int c)
{
    return c == ' ' || c == '\t';
}
static int is_alpha(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}
static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}
static int is_hex(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

const char *sts_tlsrpt_scheme_name(sts_tlsrpt_scheme s)
{
    switch (s) {
#define STS_TLSRPT_SCHEME_CASE(sym, name)                                                          \
    case sym:                                                                                      \
        return name;
        STS_TLSRPT_SCHEMES(STS_TLSRPT_SCHEME_CASE)
#undef STS_TLSRPT_SCHEME_CASE
    }
    return "unknown";
}

int sts_tlsrpt_scheme_parse(const char *s, size_t n, sts_tlsrpt_scheme *out)
{
    static const sts_tlsrpt_scheme all[] = {
#define STS_TLSRPT_SCHEME_ALL(sym, name) sym,
        STS_TLSRPT_SCHEMES(STS_TLSRPT_SCHEME_ALL)
#undef STS_TLSRPT_SCHEME_ALL
    };
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        const char *name = sts_tlsrpt_scheme_name(all[i]);
        if (strlen(name) == n && !strncasecmp(s, name, n)) {
            *out = all[i];
            return 0;
        }
    }
    return STS_EINVAL;
}

int sts_tlsrpt_record_name(const char *domain, char *out, size_t outlen)
{
    size_t n = strlen(domain);
    if (n && domain[n - 1] == '.')
        n--;
    if (n == 0)
        return STS_EINVAL;
    if (sizeof(SMTP_TLS_PREFIX) - 1 + n > 253)
        return STS_ETOOBIG;
    int w = snprintf(out, outlen, SMTP_TLS_PREFIX "%.*s", (int)n, domain);
    return w < 0 || (size_t)w >= outlen ? STS_ETOOBIG : 0;
}

int sts_tlsrpt_is_tlsrpt(const char *rec, size_t len)
{
    return sts_txtrec_begins(rec, len, TLSRPT_TAG);
}

void sts_tlsrpt_free(sts_tlsrpt *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->nrua; i++)
        free(r->rua[i].uri);
    free(r->rua);
    for (size_t i = 0; i < r->next; i++) {
        free(r->ext[i].name);
        free(r->ext[i].value);
    }
    free(r->ext);
    memset(r, 0, sizeof(*r));
}

typedef struct uri_span {
    size_t off, len, scheme_len;
} uri_span;

typedef struct parser {
    const char *rec;
    size_t len;
    sts_cur c; /* over rec[0..len) */
    sts_tlsrpt *t;
    sts_diags *diags;
    int nerr;
    size_t nrua_fields;
    uri_span *other; /* URIs with a scheme other than mailto/https, decided at the end */
    size_t nother;
} parser;

static int report(parser *p, sts_diag_severity sev, long off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int report(parser *p, sts_diag_severity sev, long off, const char *fmt, ...)
{
    if (sev == STS_DIAG_ERROR)
        p->nerr++;
    va_list ap;
    va_start(ap, fmt);
    int rc = sts_diags_vadd(p->diags, sev, 1, off < 0 ? 0 : (int)off + 1, fmt, ap);
    va_end(ap);
    return rc;
}

/* Report at byte offset off (column off+1; -1: column 0) and return on ENOMEM. */
#define ERR_AT(off, ...)                                                                           \
    do {                                                                                           \
        if (report(p, STS_DIAG_ERROR, (long)(off), __VA_ARGS__))                                   \
            return STS_ENOMEM;                                                                     \
    } while (0)
#define WARN_AT(off, ...)                                                                          \
    do {                                                                                           \
        if (report(p, STS_DIAG_WARNING, (long)(off), __VA_ARGS__))                                 \
            return STS_ENOMEM;                                                                     \
    } while (0)

static void skip_wsp(sts_cur *c)
{
    while (is_wsp(sts_cur_peek(c)))
        sts_cur_skip(c, 1);
}

/* After a '%': take two hex digits. 1 when they were there. */
static int take_pct(sts_cur *c)
{
    uint8_t h[2];
    return sts_cur_bytes(c, h, 2) == 0 && is_hex(h[0]) && is_hex(h[1]);
}

/* A host name (labels of letters, digits, "-" and %HH; one trailing dot allowed) or an
 * address literal in brackets (hex digits, ":" and "."). */
static int host_ok(const char *s, size_t n)
{
    sts_cur c;
    sts_cur_init(&c, s, n);
    int ch;
    if (sts_cur_peek(&c) == '[') {
        sts_cur_skip(&c, 1);
        while ((ch = sts_cur_peek(&c)) >= 0 && (is_hex(ch) || ch == ':' || ch == '.'))
            sts_cur_skip(&c, 1);
        return ch == ']' && c.off > 1 && sts_cur_left(&c) == 1;
    }
    size_t label = 0, labels = 0;
    while ((ch = sts_cur_peek(&c)) >= 0) {
        sts_cur_skip(&c, 1);
        if (ch == '.') {
            if (label == 0)
                return 0;
            labels++;
            label = 0;
        } else if (is_alpha(ch) || is_digit(ch) || ch == '-' || (ch == '%' && take_pct(&c))) {
            label++;
        } else {
            return 0;
        }
    }
    return label > 0 || labels > 0;
}

/* RFC 3986 characters a rua URI may hold as they are: unreserved, gen-delims and the
 * sub-delims but "!", "," and ";" (RFC 8460 3: "MUST be encoded"); "%" starts %HH. */
static int uri_char_ok(int ch)
{
    return is_alpha(ch) || is_digit(ch) || (ch && strchr("-._~:/?#[]@$&'()*+=", ch) != NULL);
}

static int add_rua(parser *p, sts_tlsrpt_scheme scheme, size_t u, size_t n)
{
    sts_tlsrpt *t = p->t;
    sts_tlsrpt_rua *r = realloc(t->rua, (t->nrua + 1) * sizeof(*r));
    if (!r)
        return STS_ENOMEM;
    t->rua = r;
    if (!(r[t->nrua].uri = sts_strdup_n(p->rec + u, n)))
        return STS_ENOMEM;
    r[t->nrua++].scheme = scheme;
    return 0;
}

/* mailto (RFC 6068): mailto:local@domain[?hfields], one address. */
static int check_mailto(parser *p, size_t u, size_t from, size_t n)
{
    const char *to = p->rec + u + from;
    sts_cur c;
    sts_cur_init(&c, to, n - from);
    size_t at = 0, nat = 0;
    int ch;
    while ((ch = sts_cur_peek(&c)) >= 0 && ch != '?') {
        if (ch == '@' && nat++ == 0)
            at = c.off;
        sts_cur_skip(&c, 1);
    }
    size_t tolen = c.off, a = u + from;
    if (tolen == 0)
        ERR_AT(a, "mailto URI has no address");
    else if (nat == 0)
        ERR_AT(a, "mailto address '%.*s' has no '@'", (int)tolen, to);
    else if (nat > 1)
        ERR_AT(a, "mailto address '%.*s' has more than one '@' (percent-encode the others)",
               (int)tolen, to);
    else if (at == 0)
        ERR_AT(a, "mailto address '%.*s' has an empty local part", (int)tolen, to);
    else if (at + 1 == tolen)
        ERR_AT(a + at + 1, "mailto address '%.*s' has no domain after '@'", (int)tolen, to);
    else if (!host_ok(to + at + 1, tolen - at - 1))
        ERR_AT(a + at + 1, "mailto domain '%.*s' is not a host name or [address literal]",
               (int)(tolen - at - 1), to + at + 1);
    else
        return add_rua(p, STS_TLSRPT_MAILTO, u, n);
    return 0;
}

/* https (RFC 7230 2.7.2): https://host[:port][/path][?query][#fragment]. */
static int check_https(parser *p, size_t u, size_t from, size_t n)
{
    const char *s = p->rec + u + from;
    size_t m = n - from, a = u + from;
    if (m < 2 || memcmp(s, "//", 2) != 0) {
        ERR_AT(a, "https URI must begin with https:// (RFC 7230 2.7.2)");
        return 0;
    }
    sts_cur c;
    sts_cur_init(&c, s, m);
    sts_cur_skip(&c, 2);
    size_t host = c.off, host_end = 0, userinfo = 0;
    int ch, bracket = sts_cur_peek(&c) == '[';
    while ((ch = sts_cur_peek(&c)) >= 0 && ch != '/' && ch != '?' && ch != '#') {
        if (ch == '@' && !userinfo)
            userinfo = c.off;
        if (!host_end && ((bracket && ch == ']') || (!bracket && ch == ':')))
            host_end = c.off + (ch == ']');
        sts_cur_skip(&c, 1);
    }
    size_t auth_end = c.off;
    if (!host_end)
        host_end = auth_end;
    if (userinfo)
        ERR_AT(a + userinfo, "https URI has userinfo ('@' before the host; RFC 7230 2.7.1)");
    else if (host_end == host)
        ERR_AT(a + host, "https URI has no host (RFC 7230 2.7.2)");
    else if (!host_ok(s + host, host_end - host))
        ERR_AT(a + host, "https host '%.*s' is not a host name or [IP literal]",
               (int)(host_end - host), s + host);
    else if (host_end < auth_end && s[host_end] != ':')
        ERR_AT(a + host_end, "https host is followed by '%c' (expected ':', '/', '?' or '#')",
               s[host_end]);
    else {
        /* port = *DIGIT (RFC 3986 3.2.3), here at most 65535 */
        size_t port = host_end + 1;
        unsigned long v = 0;
        int ok = 1;
        sts_cur_init(&c, s, auth_end);
        sts_cur_skip(&c, port < auth_end ? port : auth_end);
        while ((ch = sts_cur_peek(&c)) >= 0 && ok) {
            ok = is_digit(ch) && (v = v * 10 + (unsigned long)(ch - '0')) <= 65535;
            sts_cur_skip(&c, 1);
        }
        if (!ok)
            ERR_AT(a + port, "https port '%.*s' is not a number from 0 to 65535",
                   (int)(auth_end - port), s + port);
        else
            return add_rua(p, STS_TLSRPT_HTTPS, u, n);
    }
    return 0;
}

/* One URI of a rua list, rec[u..u+n) (no whitespace, "," or ";" inside). */
static int check_uri(parser *p, size_t u, size_t n)
{
    const char *s = p->rec + u;
    sts_cur c;
    sts_cur_init(&c, s, n);
    int ch;
    /* scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986 3.1) */
    while ((ch = sts_cur_peek(&c)) >= 0 &&
           (is_alpha(ch) || (c.off && (is_digit(ch) || ch == '+' || ch == '-' || ch == '.'))))
        sts_cur_skip(&c, 1);
    size_t sl = c.off;
    if (sl == 0 || ch != ':') {
        ERR_AT(u, "rua URI '%.*s' does not begin with a scheme (mailto: or https:)", (int)n, s);
        return 0;
    }
    while ((ch = sts_cur_peek(&c)) >= 0) {
        size_t at = u + c.off;
        sts_cur_skip(&c, 1);
        if (ch == '%' && !take_pct(&c))
            ERR_AT(at, "'%%' in a rua URI must start a %%HH escape");
        else if (ch == '!')
            ERR_AT(at, "'!' in a rua URI must be percent-encoded (RFC 8460 3); DMARC's "
                       "size limit (!10m) is not part of TLSRPT");
        else if (ch != '%' && !uri_char_ok(ch) && ch >= 0x21 && ch <= 0x7e)
            ERR_AT(at, "rua URI contains '%c' (percent-encode it)", ch);
        else if (ch != '%' && !uri_char_ok(ch))
            ERR_AT(at, "rua URI contains byte 0x%02x", ch);
        else
            continue;
        return 0;
    }
    sts_tlsrpt_scheme scheme;
    if (sts_tlsrpt_scheme_parse(s, sl, &scheme) == 0)
        return scheme == STS_TLSRPT_MAILTO ? check_mailto(p, u, sl + 1, n)
                                           : check_https(p, u, sl + 1, n);
    /* Another scheme: an error or a warning, once the whole record is read. */
    uri_span *o = realloc(p->other, (p->nother + 1) * sizeof(*o));
    if (!o)
        return STS_ENOMEM;
    p->other = o;
    o[p->nother++] = (uri_span){u, n, sl};
    return 0;
}

/* The rua field at rec[s..): the cursor is on its '='. It ends before the *WSP ";"
 * that follows its last URI (or the record's end). */
static int read_rua(parser *p, size_t s)
{
    sts_cur_skip(&p->c, 1);
    if (p->nrua_fields++)
        WARN_AT(s, "rua given more than once; its URIs follow those of the first (one "
                   "comma-separated rua is the usual form)");
    for (size_t k = 0;; k++) {
        size_t u = p->c.off;
        int ch;
        while ((ch = sts_cur_peek(&p->c)) >= 0 && ch != ';' && ch != ',' && !is_wsp(ch))
            sts_cur_skip(&p->c, 1);
        size_t n = p->c.off - u;
        if (n == 0 && k == 0 && ch != ',')
            ERR_AT(u, "rua is empty (one or more mailto: or https: URIs required)");
        else if (n == 0)
            ERR_AT(u, "empty URI in the rua list");
        else if (check_uri(p, u, n))
            return STS_ENOMEM;
        sts_cur after = p->c;
        skip_wsp(&p->c);
        if (sts_cur_peek(&p->c) != ',') {
            p->c = after;
            return 0;
        }
        sts_cur_skip(&p->c, 1);
        skip_wsp(&p->c);
    }
}

static int read_ext(parser *p, size_t s, size_t e)
{
    sts_tlsrpt *t = p->t;
    size_t eq;
    if (sts_txtrec_check_ext(p->rec, s, e, "rua", p->diags, &p->nerr, &eq))
        return STS_ENOMEM;
    if (eq == (size_t)-1)
        return 0;
    size_t nlen = eq - s;
    for (size_t i = 0; i < t->next; i++)
        if (strlen(t->ext[i].name) == nlen && !memcmp(t->ext[i].name, p->rec + s, nlen)) {
            WARN_AT(s, "field '%.*s' given more than once", (int)nlen, p->rec + s);
            break;
        }
    sts_tlsrpt_ext *x = realloc(t->ext, (t->next + 1) * sizeof(*x));
    if (!x)
        return STS_ENOMEM;
    t->ext = x;
    char *name = sts_strdup_n(p->rec + s, nlen), *value = sts_strdup_n(p->rec + eq + 1, e - eq - 1);
    if (!name || !value) {
        free(name);
        free(value);
        return STS_ENOMEM;
    }
    x[t->next].name = name;
    x[t->next++].value = value;
    return 0;
}

/* Everything after v=TLSRPTv1: 0 (problems in p->nerr and the diagnostics) or ENOMEM. */
static int read_fields(parser *p)
{
    sts_cur *c = &p->c;
    size_t nfields = 0;
    int ch;
    sts_cur_init(c, p->rec, p->len);
    sts_cur_skip(c, TLSRPT_V_LEN);
    for (;;) {
        size_t ws = c->off;
        skip_wsp(c);
        if (sts_cur_peek(c) < 0) {
            /* [field-delim] ends the record: whitespace alone is outside the grammar;
             * it changes nothing, so it is taken, with a word for the lint. */
            if (ws < c->off && nfields)
                WARN_AT(ws, "whitespace after the last field without a ';' is outside "
                            "RFC 8460 3's grammar");
            break;
        }
        if (sts_cur_peek(c) != ';') {
            ERR_AT(c->off, "expected ';' before '%.*s'",
                   (int)sts_txtrec_token_len(p->rec, c->off, p->len), p->rec + c->off);
            /* Resynchronise at the next delimiter to report further problems. */
            while ((ch = sts_cur_peek(c)) >= 0 && ch != ';')
                sts_cur_skip(c, 1);
            if (ch < 0)
                break;
        }
        sts_cur_skip(c, 1);
        skip_wsp(c);
        if (sts_cur_peek(c) < 0)
            break; /* a trailing delimiter is allowed: [field-delim] */
        if (sts_cur_peek(c) == ';') {
            ERR_AT(c->off, "empty field (two ';' in a row)");
            continue;
        }
        size_t s = c->off;
        nfields++;
        while ((ch = sts_cur_peek(c)) >= 0 && ch != '=' && ch != ';' && !is_wsp(ch))
            sts_cur_skip(c, 1);
        if (ch == '=' && c->off - s == 3 && !memcmp(p->rec + s, "rua", 3)) {
            if (read_rua(p, s))
                return STS_ENOMEM;
            continue;
        }
        while ((ch = sts_cur_peek(c)) >= 0 && ch != ';' && !is_wsp(ch))
            sts_cur_skip(c, 1);
        if (read_ext(p, s, c->off))
            return STS_ENOMEM;
    }
    if (nfields == 0 && p->nerr == 0)
        ERR_AT(TLSRPT_V_LEN, "no fields after v=TLSRPTv1 (rua is required)");
    else if (p->nrua_fields == 0)
        ERR_AT(-1, "missing required field rua");
    /* "Two URI schemes are supported: "mailto" and "https"" (RFC 8460 3). */
    for (size_t i = 0; i < p->nother; i++) {
        const uri_span *o = &p->other[i];
        const char *s = p->rec + o->off;
        if (p->t->nrua)
            WARN_AT(o->off,
                    "rua URI '%.*s': scheme '%.*s' is not supported (mailto or https, RFC "
                    "8460 3); senders skip it",
                    (int)o->len, s, (int)o->scheme_len, s);
        else
            ERR_AT(o->off,
                   "rua URI '%.*s': scheme '%.*s' is not supported (mailto or https, RFC "
                   "8460 3)",
                   (int)o->len, s, (int)o->scheme_len, s);
    }
    return 0;
}

int sts_tlsrpt_parse(const char *rec, size_t len, sts_tlsrpt *out, sts_diags *diags)
{
    sts_tlsrpt t;
    memset(&t, 0, sizeof(t));
    memset(out, 0, sizeof(*out));
    parser p = {.rec = rec, .len = len, .t = &t, .diags = diags};
    /* tlsrpt-version = %s"v=TLSRPTv1", first in the record. */
    int rc = sts_txtrec_check_start(rec, len, TLSRPT_TAG, diags);
    if (rc == 0) {
        memcpy(t.version, TLSRPT_TAG, sizeof(TLSRPT_TAG));
        rc = read_fields(&p);
        if (rc == 0 && p.nerr)
            rc = STS_ESYNTAX;
    }
    free(p.other);
    if (rc) {
        sts_tlsrpt_free(&t);
        return rc;
    }
    *out = t;
    return 0;
}

static int parse_cb(const char *rec, size_t len, void *out, sts_diags *diags)
{
    return sts_tlsrpt_parse(rec, len, out, diags);
}
static void release_cb(void *out)
{
    sts_tlsrpt_free(out);
}

int sts_tlsrpt_select(const char *const *records, const size_t *lens, size_t n, sts_tlsrpt *out,
                      sts_diags *diags, char *why, size_t whylen)
{
    static const sts_txtrec_kind kind = {.tag = TLSRPT_TAG,
                                         .label = "TLSRPT record",
                                         .absent = "no reporting",
                                         .rfc = "RFC 8460 3",
                                         .size = sizeof(sts_tlsrpt),
                                         .parse = parse_cb,
                                         .release = release_cb};
    int rc = sts_txtrec_select(&kind, records, lens, n, out, diags, why, whylen);
    if (rc == 0 && why && whylen) {
        size_t w = (size_t)snprintf(why, whylen, "TLSRPT record rua=");
        for (size_t i = 0; i < out->nrua && w < whylen; i++)
            w += (size_t)snprintf(why + w, whylen - w, "%s%s", i ? "," : "", out->rua[i].uri);
    }
    return rc;
}
