/*
 * fuzz_tlsrpt.c - fuzz target for the `_smtp._tls` TLSRPT record parser
 * (sender/tlsrpt.h, RFC 8460 3). The input is one record; its lines (split at LF) are
 * also used as the record set given to sts_tlsrpt_select.
 *
 * Properties checked (abort on violation):
 *  - sts_tlsrpt_parse returns 0 or STS_ESYNTAX (STS_ENOMEM only on allocation failure);
 *    every diagnostic is on line 1 with a column inside the record (or just past it).
 *  - Success: no error diagnostic, version "TLSRPTv1", at least one rua URI, each with
 *    the scheme its text begins with (mailto: or https:, any case) and only URI
 *    characters; extension names and values as the ABNF allows, none named "rua";
 *    sts_tlsrpt_is_tlsrpt holds. Failure: at least one error and *out zeroed.
 *  - It agrees with ref_parse below, an independent reading of the header's grammar
 *    that splits the record at ';' and each rua at ',' instead of scanning it
 *    (accept/reject, every kept URI with its scheme and every extension, in order).
 *  - Round trip: the parsed record written back canonically
 *    ("v=TLSRPTv1; rua=u1,u2; n=v;") parses to the same URIs and extensions.
 *  - sts_tlsrpt_select over the input's lines: ENOTFOUND when no line is a TLSRPT
 *    record, EINVAL when several are, else exactly sts_tlsrpt_parse's result for that
 *    line, with *out zeroed whenever it fails.
 * The function returns 0 (libFuzzer's convention).
 */
#include <string.h>
#include <strings.h>

#include "fuzz/fuzz_txtrec.h"
#include "sender/tlsrpt.h"

#define MAX_ITEMS 512

enum { REF_BAD = 0, REF_MAILTO, REF_HTTPS, REF_OTHER };

static int hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Every character of a rua URI: RFC 3986 minus "!", "," and ";" (RFC 8460 3), and
 * "%" only as %HH. */
static int uri_chars_ok(const char *s, size_t n)
{
    static const char allowed[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                  "0123456789-._~:/?#[]@$&'()*+=";
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n || !hex((unsigned char)s[i + 1]) || !hex((unsigned char)s[i + 2]))
                return 0;
            i += 2;
        } else if (s[i] == '\0' || !strchr(allowed, s[i])) {
            return 0;
        }
    }
    return 1;
}

/* A host name with one optional trailing dot, labels of letters, digits, "-" and %HH,
 * or "[" hex digits, ":" and "." "]". */
static int ref_host(const char *s, size_t n)
{
    if (n >= 1 && s[0] == '[') {
        if (n < 3 || s[n - 1] != ']')
            return 0;
        for (size_t i = 1; i + 1 < n; i++)
            if (!hex((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
                return 0;
        return 1;
    }
    if (n > 1 && s[n - 1] == '.')
        n--;
    if (n == 0)
        return 0;
    size_t label = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.') {
            if (!label)
                return 0;
            label = 0;
        } else if (s[i] == '%') {
            if (i + 2 >= n || !hex((unsigned char)s[i + 1]) || !hex((unsigned char)s[i + 2]))
                return 0;
            i += 2;
            label++;
        } else if (fuzz_is_alnum((unsigned char)s[i]) || s[i] == '-') {
            label++;
        } else {
            return 0;
        }
    }
    return label > 0;
}

/* mailto:local@domain[?hfields] (RFC 6068, one address). */
static int ref_mailto(const char *s, size_t n)
{
    const char *q = memchr(s, '?', n);
    size_t to = q ? (size_t)(q - s) : n, nat = 0, at = 0;
    for (size_t i = 0; i < to; i++)
        if (s[i] == '@') {
            nat++;
            at = i;
        }
    return nat == 1 && at > 0 && ref_host(s + at + 1, to - at - 1);
}

/* //host[:port][/...] (RFC 7230 2.7.2, no userinfo). */
static int ref_https(const char *s, size_t n)
{
    if (n < 2 || s[0] != '/' || s[1] != '/')
        return 0;
    s += 2;
    n -= 2;
    size_t auth = 0;
    while (auth < n && s[auth] != '/' && s[auth] != '?' && s[auth] != '#')
        auth++;
    if (memchr(s, '@', auth))
        return 0;
    size_t host;
    if (auth && s[0] == '[') {
        const char *close = memchr(s, ']', auth);
        host = close ? (size_t)(close - s) + 1 : auth;
    } else {
        const char *colon = memchr(s, ':', auth);
        host = colon ? (size_t)(colon - s) : auth;
    }
    if (host == 0 || !ref_host(s, host))
        return 0;
    if (host == auth)
        return 1;
    if (s[host] != ':')
        return 0;
    unsigned long port = 0;
    for (size_t i = host + 1; i < auth; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        port = port * 10 + (unsigned long)(s[i] - '0');
        if (port > 65535)
            return 0;
    }
    return 1;
}

/* One URI of a rua list: REF_BAD, REF_MAILTO, REF_HTTPS or REF_OTHER (valid URI, another
 * scheme). */
static int ref_uri(const char *s, size_t n)
{
    const char *colon = memchr(s, ':', n);
    if (!colon || colon == s || !uri_chars_ok(s, n))
        return REF_BAD;
    size_t sl = (size_t)(colon - s);
    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z')))
        return REF_BAD;
    for (size_t i = 1; i < sl; i++)
        if (!fuzz_is_alnum((unsigned char)s[i]) && !strchr("+-.", s[i]))
            return REF_BAD;
    if (sl == 6 && !strncasecmp(s, "mailto", 6))
        return ref_mailto(s + 7, n - 7) ? REF_MAILTO : REF_BAD;
    if (sl == 5 && !strncasecmp(s, "https", 5))
        return ref_https(s + 6, n - 6) ? REF_HTTPS : REF_BAD;
    return REF_OTHER;
}

typedef struct ref_item {
    const char *a, *b; /* URI (a, alen, kind) or extension (a=name, b=value) */
    size_t alen, blen;
    int kind;
} ref_item;

typedef struct ref_rec {
    size_t nrua, next;
    ref_item rua[MAX_ITEMS]; /* the supported URIs, in order */
    ref_item ext[MAX_ITEMS];
} ref_rec;

/* The rua value v[0..n): URIs separated by *WSP "," *WSP. 1 well formed. */
static int ref_rua(const char *v, size_t n, ref_rec *r, size_t *nother)
{
    size_t start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && v[i] != ',')
            continue;
        const char *u;
        size_t ul;
        int empty;
        if (!fuzz_segment(v + start, i - start, &u, &ul, &empty) || empty)
            return 0;
        if (i == n && u + ul != v + n)
            return 0; /* whitespace after the last URI belongs to the field delimiter */
        if (start == 0 && u != v)
            return 0; /* rua= is followed by the URI itself */
        int kind = ref_uri(u, ul);
        if (kind == REF_BAD)
            return 0;
        if (kind == REF_OTHER) {
            (*nother)++;
        } else {
            if (r->nrua >= MAX_ITEMS)
                return -1;
            r->rua[r->nrua++] = (ref_item){u, NULL, ul, 0, kind};
        }
        start = i + 1;
    }
    return 1;
}

/* The record as tlsrpt.h documents it, read by splitting at ';':
 *   "v=TLSRPTv1" seg0 (";" seg)*   seg0 only whitespace; every middle segment holds one
 *   field, the last one field or nothing ([field-delim]); whitespace after the last field
 *   without a ';' is tolerated (with a warning, as in the parser). A field starting with
 *   "rua=" is a rua list (any number of them, merged); any other is name=value with an
 *   ext-name and an ext-value. At least one rua field and one mailto/https URI.
 * 1 valid (r filled), 0 invalid, -1 too many items to compare. */
static int ref_parse(const char *rec, size_t len, ref_rec *r)
{
    memset(r, 0, sizeof(*r));
    if (memchr(rec, '\0', len) || len < 10 || memcmp(rec, "v=TLSRPTv1", 10))
        return 0;
    const char *p = rec + 10, *end = rec + len;
    size_t nrua_fields = 0, nother = 0, nseg = 0;
    const char *s = p;
    for (const char *q = p;; q++) {
        if (q < end && *q != ';')
            continue;
        const char *f;
        size_t fl;
        int empty;
        fuzz_trim(s, (size_t)(q - s), &f, &fl);
        empty = fl == 0;
        int last = q == end;
        if (nseg++ == 0) {
            if (!empty || last)
                return 0; /* only whitespace before the first ';', and a ';' */
        } else if (empty) {
            if (!last)
                return 0; /* ";;" or "; ;": an empty field */
        } else if (fl >= 4 && !memcmp(f, "rua=", 4)) {
            nrua_fields++;
            int rc = ref_rua(f + 4, fl - 4, r, &nother);
            if (rc <= 0)
                return rc;
        } else {
            const char *eq = memchr(f, '=', fl);
            if (memchr(f, ' ', fl) || memchr(f, '\t', fl) || !eq)
                return 0;
            size_t nl = (size_t)(eq - f);
            if (!fuzz_ext_name_ok(f, nl) || !fuzz_ext_value_ok(eq + 1, fl - nl - 1))
                return 0;
            if (r->next >= MAX_ITEMS)
                return -1;
            r->ext[r->next++] = (ref_item){f, eq + 1, nl, fl - nl - 1, 0};
        }
        if (last)
            break;
        s = q + 1;
    }
    return nrua_fields > 0 && r->nrua > 0;
}

static int scheme_of(const char *uri)
{
    if (!strncasecmp(uri, "mailto:", 7))
        return STS_TLSRPT_MAILTO;
    if (!strncasecmp(uri, "https:", 6))
        return STS_TLSRPT_HTTPS;
    return -1;
}

static void check_ok(const char *rec, size_t len, const sts_tlsrpt *t)
{
    FUZZ_CHECK(!strcmp(t->version, "TLSRPTv1"), "version '%s'", t->version);
    FUZZ_CHECK(t->nrua >= 1 && t->rua, "valid without a rua URI");
    FUZZ_CHECK(sts_tlsrpt_is_tlsrpt(rec, len), "a valid record that is not a TLSRPT record");
    for (size_t i = 0; i < t->nrua; i++) {
        const char *u = t->rua[i].uri;
        FUZZ_CHECK(scheme_of(u) == (int)t->rua[i].scheme, "URI '%s' kept as %s", u,
                   sts_tlsrpt_scheme_name(t->rua[i].scheme));
        FUZZ_CHECK(uri_chars_ok(u, strlen(u)), "URI '%s' has a character it may not have", u);
    }
    for (size_t i = 0; i < t->next; i++) {
        FUZZ_CHECK(fuzz_ext_name_ok(t->ext[i].name, strlen(t->ext[i].name)), "extension name '%s'",
                   t->ext[i].name);
        FUZZ_CHECK(strcmp(t->ext[i].name, "rua") != 0, "rua kept as an extension");
        FUZZ_CHECK(fuzz_ext_value_ok(t->ext[i].value, strlen(t->ext[i].value)),
                   "extension value '%s'", t->ext[i].value);
    }
}

static void check_ref(const sts_tlsrpt *t, const ref_rec *r)
{
    FUZZ_CHECK(t->nrua == r->nrua, "%zu URIs, reference %zu", t->nrua, r->nrua);
    for (size_t i = 0; i < t->nrua; i++)
        FUZZ_CHECK(strlen(t->rua[i].uri) == r->rua[i].alen &&
                       !memcmp(t->rua[i].uri, r->rua[i].a, r->rua[i].alen) &&
                       (r->rua[i].kind == REF_MAILTO) == (t->rua[i].scheme == STS_TLSRPT_MAILTO),
                   "URI %zu '%s' differs from the reference '%.*s'", i, t->rua[i].uri,
                   (int)r->rua[i].alen, r->rua[i].a);
    FUZZ_CHECK(t->next == r->next, "%zu extensions, reference %zu", t->next, r->next);
    for (size_t i = 0; i < t->next; i++)
        FUZZ_CHECK(strlen(t->ext[i].name) == r->ext[i].alen &&
                       !memcmp(t->ext[i].name, r->ext[i].a, r->ext[i].alen) &&
                       strlen(t->ext[i].value) == r->ext[i].blen &&
                       !memcmp(t->ext[i].value, r->ext[i].b, r->ext[i].blen),
                   "extension %zu '%s=%s' differs from the reference", i, t->ext[i].name,
                   t->ext[i].value);
}

/* The record written back canonically must parse to the same thing. */
static void check_round_trip(const sts_tlsrpt *t)
{
    size_t cap = 32;
    for (size_t i = 0; i < t->nrua; i++)
        cap += strlen(t->rua[i].uri) + 1;
    for (size_t i = 0; i < t->next; i++)
        cap += strlen(t->ext[i].name) + strlen(t->ext[i].value) + 3;
    char *s = malloc(cap);
    if (!s)
        return;
    size_t n = (size_t)snprintf(s, cap, "v=TLSRPTv1; rua=");
    for (size_t i = 0; i < t->nrua; i++)
        n += (size_t)snprintf(s + n, cap - n, "%s%s", i ? "," : "", t->rua[i].uri);
    for (size_t i = 0; i < t->next; i++)
        n += (size_t)snprintf(s + n, cap - n, "; %s=%s", t->ext[i].name, t->ext[i].value);
    n += (size_t)snprintf(s + n, cap - n, ";");
    sts_tlsrpt u;
    int rc = sts_tlsrpt_parse(s, n, &u, NULL);
    if (rc == STS_ENOMEM) {
        free(s);
        return;
    }
    FUZZ_CHECK(rc == 0, "canonical form '%s' does not parse (%d)", s, rc);
    FUZZ_CHECK(u.nrua == t->nrua, "%zu URIs became %zu", t->nrua, u.nrua);
    for (size_t i = 0; i < t->nrua; i++)
        FUZZ_CHECK(!strcmp(u.rua[i].uri, t->rua[i].uri) && u.rua[i].scheme == t->rua[i].scheme,
                   "URI %zu changed", i);
    FUZZ_CHECK(u.next == t->next, "%zu extensions became %zu", t->next, u.next);
    for (size_t i = 0; i < t->next; i++)
        FUZZ_CHECK(!strcmp(u.ext[i].name, t->ext[i].name) &&
                       !strcmp(u.ext[i].value, t->ext[i].value),
                   "extension %zu changed", i);
    sts_tlsrpt_free(&u);
    free(s);
}

/* sts_tlsrpt_select over the input's lines. */
static void check_select(const char *rec, size_t len)
{
    enum { NREC = 8 };
    const char *recs[NREC];
    size_t lens[NREC], n = fuzz_split_lines(rec, len, recs, lens, NREC), which;
    size_t nfound = fuzz_count_records(recs, lens, n, sts_tlsrpt_is_tlsrpt, &which);
    sts_tlsrpt t, u;
    memset(&u, 0, sizeof(u));
    sts_diags d;
    sts_diags_init(&d);
    char why[512];
    int rc = sts_tlsrpt_select(recs, lens, n, &t, &d, why, sizeof(why)), prc = STS_ENOMEM;
    if (rc == STS_ENOMEM)
        goto out;
    if (nfound == 1)
        prc = sts_tlsrpt_parse(recs[which], lens[which], &u, NULL);
    fuzz_check_select(nfound, rc, prc, &d, why);
    if (rc == 0 && prc == 0)
        FUZZ_CHECK(u.nrua == t.nrua && !strcmp(u.rua[0].uri, t.rua[0].uri),
                   "select and parse keep other URIs");
    if (rc != 0)
        FUZZ_CHECK(t.nrua == 0 && t.rua == NULL && t.next == 0 && t.ext == NULL &&
                       t.version[0] == '\0',
                   "select: *out not zeroed");
out:
    sts_tlsrpt_free(&t);
    sts_tlsrpt_free(&u);
    sts_diags_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *rec = (const char *)data;
    sts_tlsrpt t;
    sts_diags d;
    sts_diags_init(&d);
    int rc = sts_tlsrpt_parse(rec, size, &t, &d);
    if (rc == STS_ENOMEM)
        goto out;
    static ref_rec r; /* large; only ever written by ref_parse before it is read */
    int ref = ref_parse(rec, size, &r);
    fuzz_check_parse(rc, &d, size, ref);
    if (rc == 0) {
        check_ok(rec, size, &t);
        if (ref > 0)
            check_ref(&t, &r);
        check_round_trip(&t);
    } else {
        FUZZ_CHECK(t.nrua == 0 && t.rua == NULL && t.next == 0 && t.ext == NULL, "*out not zeroed");
    }
    check_select(rec, size);
out:
    sts_tlsrpt_free(&t);
    sts_diags_free(&d);
    return 0;
}
