/*
 * dnszone.c - the world's DNS zone and the pure answer function (see dnszone.h):
 * zone-file lines into records, scripted faults, the reference answer path (ldns)
 * and the index of precomputed wire answers. Functions return 0 or a negative
 * STS_* code unless dnszone.h says otherwise.
 */
#include "fakedns/dnszone.h"
#include "common/err.h"
#include "common/scenario.h"

#include <ctype.h>
#include <ldns/ldns.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define DNS_DEFAULT_TTL 300
#define DNS_MAX_CNAME_HOPS 8
/* The payload size we advertise in our own OPT record (RFC 6891 6.2.5; 1232 is the
 * DNS Flag Day 2020 value that avoids IP fragmentation). */
#define DNS_OUR_UDP_SIZE 1232
#define DNS_MAX_APEXES 256
#define DNS_MAX_FAULTS 1024

enum {
    RC_NOERROR = 0,
    RC_FORMERR = 1,
    RC_SERVFAIL = 2,
    RC_NXDOMAIN = 3,
    RC_NOTIMP = 4,
    RC_REFUSED = 5,
};

struct sts_dns_zone {
    ldns_rdf *origin;               /* the domain */
    ldns_rdf *rel;                  /* relative names of lines and faults end in it
                                       (sts_dns_zone_set_origin); NULL = origin */
    ldns_rr_list *rrs;              /* every record; owners in lower case */
    ldns_rdf *apex[DNS_MAX_APEXES]; /* apex[0] = origin; others: out-of-domain hosts */
    size_t napex;
    struct {
        ldns_rdf *name;
        int any; /* every type */
        ldns_rr_type type;
        int fault;
        double delay;
    } faults[DNS_MAX_FAULTS];
    size_t nfaults;
    struct dns_index *ix; /* precomputed answers (sts_dns_zone_finish); NULL = none */
};

static int index_build(sts_dns_zone *z);
static void index_free(struct dns_index *ix);

/* An addition after sts_dns_zone_finish makes the index stale: drop it. */
static void zone_index_drop(sts_dns_zone *z)
{
    index_free(z->ix);
    z->ix = NULL;
}

/* name equals or lies below parent (both absolute; case-insensitive). */
static int dname_under(const ldns_rdf *name, const ldns_rdf *parent)
{
    return ldns_dname_compare(name, parent) == 0 || ldns_dname_is_subdomain(name, parent);
}

static int dname_eq(const ldns_rdf *a, const ldns_rdf *b)
{
    return ldns_dname_compare(a, b) == 0;
}

/* The apex name lies under (the longest one), or NULL. */
static const ldns_rdf *zone_apex_of(const sts_dns_zone *z, const ldns_rdf *name)
{
    const ldns_rdf *best = NULL;
    for (size_t i = 0; i < z->napex; i++)
        if (dname_under(name, z->apex[i]) &&
            (!best || ldns_dname_label_count(z->apex[i]) > ldns_dname_label_count(best)))
            best = z->apex[i];
    return best;
}

/* Lower-case presentation of a dname without the trailing dot ("." for the root). */
/* Room for any name's presentation form: at most 255 octets on the wire, and an
 * octet that is not a letter, digit or hyphen is written as \DDD (four characters):
 * a 256-octet buffer would cut such a name into another one. */
#define DNS_NAME_TEXT_MAX (4 * 255 + 1)

static void dname_text(const ldns_rdf *d, char *out, size_t outlen)
{
    char *s = ldns_rdf2str(d);
    if (!s) {
        snprintf(out, outlen, "?");
        return;
    }
    size_t n = strlen(s);
    if (n > 1 && s[n - 1] == '.')
        s[n - 1] = '\0';
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    snprintf(out, outlen, "%s", s);
    free(s);
}

sts_dns_zone *sts_dns_zone_new(const char *domain, char *err, size_t errlen)
{
    sts_dns_zone *z = calloc(1, sizeof(*z));
    if (!z) {
        sts_errf(err, errlen, "out of memory");
        return NULL;
    }
    z->rrs = ldns_rr_list_new();
    if (ldns_str2rdf_dname(&z->origin, domain) != LDNS_STATUS_OK || !z->rrs) {
        sts_errf(err, errlen, "invalid domain name '%s'", domain);
        sts_dns_zone_free(z);
        return NULL;
    }
    ldns_dname2canonical(z->origin);
    z->apex[z->napex++] = ldns_rdf_clone(z->origin);
    return z;
}

void sts_dns_zone_free(sts_dns_zone *z)
{
    if (!z)
        return;
    ldns_rdf_deep_free(z->origin);
    ldns_rdf_deep_free(z->rel);
    ldns_rr_list_deep_free(z->rrs);
    for (size_t i = 0; i < z->napex; i++)
        ldns_rdf_deep_free(z->apex[i]);
    for (size_t i = 0; i < z->nfaults; i++)
        ldns_rdf_deep_free(z->faults[i].name);
    index_free(z->ix);
    free(z);
}

/* RFC 1034 3.6.2 / RFC 2181 10.1: a name with a CNAME has no other data. Returns
 * the offending record or NULL. */
static const ldns_rr *zone_cname_conflict(const sts_dns_zone *z, const ldns_rr *rr)
{
    for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
        const ldns_rr *o = ldns_rr_list_rr(z->rrs, i);
        if (!dname_eq(ldns_rr_owner(o), ldns_rr_owner(rr)))
            continue;
        if ((ldns_rr_get_type(o) == LDNS_RR_TYPE_CNAME) !=
                (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME) ||
            (ldns_rr_get_type(rr) == LDNS_RR_TYPE_CNAME && ldns_rr_compare(o, rr) != 0))
            return o;
    }
    return NULL;
}

/* The octets of the longest "quoted" string on a zone line (\DDD and \X count as
 * one octet each, as in RFC 1035 5.1). */
static size_t longest_quoted(const char *line)
{
    size_t best = 0;
    for (const char *p = line; *p; p++) {
        if (*p == ';')
            break;
        if (*p != '"')
            continue;
        size_t n = 0;
        for (p++; *p && *p != '"'; p++, n++)
            if (*p == '\\' && p[1]) {
                if (isdigit((unsigned char)p[1]) && isdigit((unsigned char)p[2]) &&
                    isdigit((unsigned char)p[3]))
                    p += 3;
                else
                    p++;
            }
        if (n > best)
            best = n;
        if (!*p)
            break;
    }
    return best;
}

/* 1 when rr, written in wire form, reads back as the same record. ldns takes RFC
 * 3597's generic "\\# LEN HEX" data for any type without checking it against the
 * type's format (found by fuzz/fuzz_zone_lines.c): such an MX would make every answer
 * that carries it a message no client can parse. */
static int rr_wire_round_trip(const ldns_rr *rr)
{
    uint8_t *wire = NULL;
    size_t size = 0, pos = 0;
    ldns_rr *back = NULL;
    int ok = ldns_rr2wire(&wire, rr, LDNS_SECTION_ANSWER, &size) == LDNS_STATUS_OK &&
             ldns_wire2rr(&back, wire, size, &pos, LDNS_SECTION_ANSWER) == LDNS_STATUS_OK &&
             pos == size && ldns_rr_compare(rr, back) == 0;
    /* ldns reads short data leniently: every field the type requires must be there
     * (an MX of two octets has a preference and no exchange). */
    const ldns_rr_descriptor *desc = ldns_rr_descript(ldns_rr_get_type(rr));
    if (ok && desc && ldns_rr_rd_count(back) < ldns_rr_descriptor_minimum(desc))
        ok = 0;
    ldns_rr_free(back);
    free(wire);
    return ok;
}

/* Parse one line (already trimmed of its newline) into the zone. */
static int zone_add_line(sts_dns_zone *z, const char *line, ldns_rdf **prev, const char *where,
                         int lineno, char *err, size_t errlen)
{
    ldns_rr *rr = NULL;
    ldns_status st =
        ldns_rr_new_frm_str(&rr, line, DNS_DEFAULT_TTL, z->rel ? z->rel : z->origin, prev);
    size_t longest = 0;
    if (st != LDNS_STATUS_OK && (longest = longest_quoted(line)) > 255) {
        /* ldns only says "could not parse the RR's rdata"; say what is wrong. */
        sts_errf(err, errlen,
                 "%s:%d: a quoted string of %zu octets: a TXT character-string is at most 255 "
                 "octets (RFC 1035 3.3.14); split it into several quoted strings",
                 where, lineno, longest);
        return STS_ESYNTAX;
    }
    if (st != LDNS_STATUS_OK) {
        sts_errf(err, errlen, "%s:%d: bad zone line '%s': %s", where, lineno, line,
                 ldns_get_errorstr_by_id(st));
        return STS_ESYNTAX;
    }
    char owner[DNS_NAME_TEXT_MAX];
    dname_text(ldns_rr_owner(rr), owner, sizeof(owner));
    int rc = STS_ESYNTAX;
    if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) {
        sts_errf(err, errlen, "%s:%d: only class IN is served ('%s')", where, lineno, line);
    } else if (!dname_under(ldns_rr_owner(rr), z->origin)) {
        char dom[DNS_NAME_TEXT_MAX];
        dname_text(z->origin, dom, sizeof(dom));
        sts_errf(err, errlen, "%s:%d: owner %s lies outside the domain %s", where, lineno, owner,
                 dom);
    } else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_OPT) {
        sts_errf(err, errlen, "%s:%d: OPT is not a zone record", where, lineno);
    } else if (!rr_wire_round_trip(rr)) {
        sts_errf(err, errlen,
                 "%s:%d: bad zone line '%s': its data does not make a valid %s record on the "
                 "wire (RFC 3597 \\# data must have the type's own format)",
                 where, lineno, line,
                 ldns_rr_descript(ldns_rr_get_type(rr))
                     ? ldns_rr_descript(ldns_rr_get_type(rr))->_name
                     : "such");
    } else {
        ldns_dname2canonical(ldns_rr_owner(rr));
        if (zone_cname_conflict(z, rr)) {
            sts_errf(err, errlen,
                     "%s:%d: %s has a CNAME and other data (RFC 1034 3.6.2 forbids it)", where,
                     lineno, owner);
        } else if (!ldns_rr_list_push_rr(z->rrs, rr)) {
            sts_errf(err, errlen, "out of memory");
            rc = STS_ENOMEM;
        } else {
            return 0;
        }
    }
    ldns_rr_free(rr);
    return rc;
}

int sts_dns_zone_set_origin(sts_dns_zone *z, const char *name)
{
    ldns_rdf *d = NULL;
    if (ldns_str2rdf_dname(&d, name) != LDNS_STATUS_OK)
        return STS_EINVAL;
    ldns_dname2canonical(d);
    if (!dname_under(d, z->origin)) {
        ldns_rdf_deep_free(d);
        return STS_EINVAL;
    }
    ldns_rdf_deep_free(z->rel);
    z->rel = d;
    return 0;
}

int sts_dns_zone_add_lines(sts_dns_zone *z, const char *text, const char *where, int first_line,
                           char *err, size_t errlen)
{
    ldns_rdf *prev = NULL;
    int rc = 0;
    int lineno = first_line;
    zone_index_drop(z);
    for (const char *p = text; p && *p && rc == 0; lineno++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = sts_strdup_n(p, n);
        if (!line) {
            sts_errf(err, errlen, "out of memory");
            rc = STS_ENOMEM;
            break;
        }
        n = strlen(line); /* a NUL octet (a YAML "\0") ends the line early */
        if (n && line[n - 1] == '\r')
            line[n - 1] = '\0';
        const char *s = line + strspn(line, " \t");
        if (*s == '$') {
            sts_errf(err, errlen, "%s:%d: zone directives such as %s are not supported", where,
                     lineno, s);
            rc = STS_ESYNTAX;
        } else if (*s && *s != ';') {
            rc = zone_add_line(z, line, &prev, where, lineno, err, errlen);
        }
        free(line);
        p = nl ? nl + 1 : NULL;
    }
    ldns_rdf_deep_free(prev);
    return rc;
}

int sts_dns_zone_add_a(sts_dns_zone *z, const char *name, const char *addr)
{
    ldns_rdf *owner = NULL;
    zone_index_drop(z);
    if (ldns_str2rdf_dname(&owner, name) != LDNS_STATUS_OK)
        return STS_EINVAL;
    ldns_dname2canonical(owner);
    int rc = 0;
    if (!zone_apex_of(z, owner)) {
        if (z->napex == DNS_MAX_APEXES) {
            rc = STS_ETOOBIG;
            goto out;
        }
        z->apex[z->napex++] = ldns_rdf_clone(owner);
    }
    ldns_rr *rr = ldns_rr_new_frm_type(LDNS_RR_TYPE_A);
    ldns_rdf *a = ldns_rdf_new_frm_str(LDNS_RDF_TYPE_A, addr);
    if (!rr || !a) {
        ldns_rr_free(rr);
        ldns_rdf_deep_free(a);
        rc = a ? STS_ENOMEM : STS_EINVAL;
        goto out;
    }
    ldns_rr_set_owner(rr, owner);
    owner = NULL;
    ldns_rr_set_ttl(rr, DNS_DEFAULT_TTL);
    ldns_rr_set_class(rr, LDNS_RR_CLASS_IN);
    ldns_rr_set_rdf(rr, a, 0);
    if (zone_cname_conflict(z, rr)) {
        ldns_rr_free(rr);
        rc = STS_EINVAL;
    } else if (!ldns_rr_list_push_rr(z->rrs, rr)) {
        ldns_rr_free(rr);
        rc = STS_ENOMEM;
    }
out:
    ldns_rdf_deep_free(owner);
    return rc;
}

int sts_dns_zone_add_record(sts_dns_zone *z, const char *apex, const char *rr_text)
{
    ldns_rdf *a = NULL;
    ldns_rr *rr = NULL;
    zone_index_drop(z);
    if (ldns_str2rdf_dname(&a, apex) != LDNS_STATUS_OK)
        return STS_EINVAL;
    ldns_dname2canonical(a);
    if (ldns_rr_new_frm_str(&rr, rr_text, DNS_DEFAULT_TTL, NULL, NULL) != LDNS_STATUS_OK ||
        !dname_under(ldns_rr_owner(rr), a)) {
        ldns_rr_free(rr);
        ldns_rdf_deep_free(a);
        return STS_EINVAL;
    }
    ldns_dname2canonical(ldns_rr_owner(rr));
    int rc = 0;
    if (!zone_apex_of(z, a)) {
        if (z->napex == DNS_MAX_APEXES) {
            rc = STS_ETOOBIG;
        } else {
            z->apex[z->napex++] = a;
            a = NULL;
        }
    }
    if (!rc && zone_cname_conflict(z, rr))
        rc = STS_EINVAL;
    if (!rc && !ldns_rr_list_push_rr(z->rrs, rr))
        rc = STS_ENOMEM;
    if (rc)
        ldns_rr_free(rr);
    ldns_rdf_deep_free(a);
    return rc;
}

int sts_dns_zone_txt(const sts_dns_zone *z, const char *name, sts_buf *out)
{
    ldns_rdf *d = NULL;
    if (ldns_str2rdf_dname(&d, name) != LDNS_STATUS_OK)
        return STS_EINVAL;
    int found = 0, rc = 0;
    for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs) && !rc; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_TXT || !dname_eq(ldns_rr_owner(rr), d))
            continue;
        if (found++)
            continue; /* the first record's text only; the count says there are more */
        /* RFC 1035 3.3.14: character-strings, each a length octet and its data;
         * concatenated as a DKIM or TLSRPT reader does (RFC 6376 3.6.2.2). */
        for (size_t k = 0; k < ldns_rr_rd_count(rr) && !rc; k++) {
            const ldns_rdf *f = ldns_rr_rdf(rr, k);
            const uint8_t *p = ldns_rdf_data(f);
            size_t n = ldns_rdf_size(f);
            if (n && p[0] < n)
                rc = sts_buf_append(out, (const char *)p + 1, p[0]);
        }
    }
    ldns_rdf_deep_free(d);
    return rc ? rc : found;
}

int sts_dns_zone_has_address(const sts_dns_zone *z, const char *name)
{
    ldns_rdf *d = NULL;
    if (ldns_str2rdf_dname(&d, name) != LDNS_STATUS_OK)
        return 0;
    int found = 0;
    for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs) && !found; i++) {
        const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
        ldns_rr_type t = ldns_rr_get_type(rr);
        found = (t == LDNS_RR_TYPE_A || t == LDNS_RR_TYPE_AAAA || t == LDNS_RR_TYPE_CNAME) &&
                dname_eq(ldns_rr_owner(rr), d);
    }
    ldns_rdf_deep_free(d);
    return found;
}

char **sts_dns_zone_mx_targets(const sts_dns_zone *z)
{
    size_t cap = ldns_rr_list_rr_count(z->rrs) + 1, n = 0;
    char **v = calloc(cap, sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
        if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_MX || ldns_rr_rd_count(rr) < 2)
            continue;
        const ldns_rdf *t = ldns_rr_mx_exchange(rr);
        if (!dname_under(t, z->origin))
            continue; /* includes the null MX "." of RFC 7505 */
        char name[DNS_NAME_TEXT_MAX];
        dname_text(t, name, sizeof(name));
        int dup = 0;
        for (size_t j = 0; j < n && !dup; j++)
            dup = !strcmp(v[j], name);
        if (dup)
            continue;
        if (!(v[n++] = strdup(name))) {
            for (size_t j = 0; j < n; j++)
                free(v[j]);
            free(v);
            return NULL;
        }
    }
    return v;
}

int sts_dns_zone_add_fault(sts_dns_zone *z, const char *name, const char *type, int fault,
                           double delay, const char *where, int line, char *err, size_t errlen)
{
    if (z->nfaults == DNS_MAX_FAULTS) {
        sts_errf(err, errlen, "%s:%d: more than %d dns faults", where, line, DNS_MAX_FAULTS);
        return STS_ETOOBIG;
    }
    ldns_rdf *d = NULL;
    size_t nl = strlen(name);
    const ldns_rdf *rel = z->rel ? z->rel : z->origin;
    if (!strcmp(name, "@")) {
        d = ldns_rdf_clone(rel);
    } else if (ldns_str2rdf_dname(&d, name) == LDNS_STATUS_OK && nl && name[nl - 1] != '.') {
        /* relative, as the owner of a zone line */
        if (ldns_dname_cat(d, rel) != LDNS_STATUS_OK) {
            ldns_rdf_deep_free(d);
            d = NULL;
        }
    }
    if (!d) {
        sts_errf(err, errlen, "%s:%d: '%s' is not a domain name", where, line, name);
        return STS_ESYNTAX;
    }
    ldns_dname2canonical(d);
    int any = !strcasecmp(type, "ANY");
    ldns_rr_type t = any ? LDNS_RR_TYPE_ANY : ldns_get_rr_type_by_name(type);
    if (!any && t == 0) {
        ldns_rdf_deep_free(d);
        sts_errf(err, errlen, "%s:%d: '%s' is not a record type", where, line, type);
        return STS_ESYNTAX;
    }
    z->faults[z->nfaults].name = d;
    z->faults[z->nfaults].any = any;
    z->faults[z->nfaults].type = t;
    z->faults[z->nfaults].fault = fault;
    z->faults[z->nfaults].delay = delay;
    z->nfaults++;
    return 0;
}

/* The first fault matching (name, type), or -1. */
static int zone_fault(const sts_dns_zone *z, const ldns_rdf *name, uint16_t type)
{
    for (size_t i = 0; i < z->nfaults; i++)
        if (dname_eq(z->faults[i].name, name) &&
            (z->faults[i].any || z->faults[i].type == (ldns_rr_type)type))
            return (int)i;
    return -1;
}

/* Does any record of type t sit at name? */
static int zone_has(const sts_dns_zone *z, const ldns_rdf *name, ldns_rr_type t)
{
    for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
        if (ldns_rr_get_type(rr) == t && dname_eq(ldns_rr_owner(rr), name))
            return 1;
    }
    return 0;
}

int sts_dns_zone_finish(sts_dns_zone *z)
{
    char origin[DNS_NAME_TEXT_MAX];
    dname_text(z->origin, origin, sizeof(origin));
    for (size_t i = 0; i < z->napex; i++) {
        char apex[DNS_NAME_TEXT_MAX], line[4 * DNS_NAME_TEXT_MAX];
        dname_text(z->apex[i], apex, sizeof(apex));
        for (int k = 0; k < 2; k++) {
            if (zone_has(z, z->apex[i], k == 0 ? LDNS_RR_TYPE_SOA : LDNS_RR_TYPE_NS))
                continue;
            if (k == 0) /* serial refresh retry expire minimum; the minimum is the
                         * negative-caching TTL (RFC 2308 4): short, so that scenarios
                         * may change the world between steps. */
                snprintf(line, sizeof(line),
                         "%s. %d IN SOA ns.%s. hostmaster.%s. 1 3600 600 86400 %d", apex,
                         DNS_DEFAULT_TTL, origin, origin, DNS_DEFAULT_TTL);
            else
                snprintf(line, sizeof(line), "%s. %d IN NS ns.%s.", apex, DNS_DEFAULT_TTL, origin);
            ldns_rr *rr = NULL;
            if (ldns_rr_new_frm_str(&rr, line, DNS_DEFAULT_TTL, NULL, NULL) != LDNS_STATUS_OK)
                return STS_EINVAL;
            ldns_dname2canonical(ldns_rr_owner(rr));
            if (!ldns_rr_list_push_rr(z->rrs, rr)) {
                ldns_rr_free(rr);
                return STS_ENOMEM;
            }
        }
    }
    return index_build(z);
}

/* ---- the answer function ---- */

const char *sts_dns_rcode_name(int rcode)
{
    static const char *names[] = {"NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN",
                                  "NOTIMP",  "REFUSED", "YXDOMAIN", "YXRRSET",
                                  "NXRRSET", "NOTAUTH", "NOTZONE"};
    if (rcode >= 0 && rcode < (int)(sizeof(names) / sizeof(names[0])))
        return names[rcode];
    if (rcode == STS_DNS_BADVERS)
        return "BADVERS";
    return "RCODE?";
}

void sts_dns_name_text(const uint8_t *w, size_t len, char *out, size_t outlen)
{
    if (!outlen)
        return;
    size_t o = 0, i = 0;
    if (len <= 1) {
        snprintf(out, outlen, ".");
        return;
    }
    while (i < len && w[i]) {
        size_t l = w[i++];
        if (o && o + 1 < outlen)
            out[o++] = '.';
        for (size_t k = 0; k < l && i < len; k++, i++) {
            uint8_t c = (uint8_t)tolower(w[i]);
            char tmp[5];
            if (c == '.' || c == ';' || c == '(' || c == ')' || c == '\\')
                snprintf(tmp, sizeof(tmp), "\\%c", c);
            else if (c < 0x21 || c > 0x7e)
                snprintf(tmp, sizeof(tmp), "\\%03u", c);
            else
                snprintf(tmp, sizeof(tmp), "%c", c);
            for (const char *p = tmp; *p && o + 1 < outlen; p++)
                out[o++] = *p;
        }
    }
    out[o] = '\0';
}

void sts_dns_type_text(uint16_t type, char *out, size_t outlen)
{
    char *t = ldns_rr_type2str((ldns_rr_type)type);
    if (t)
        snprintf(out, outlen, "%s", t);
    else
        snprintf(out, outlen, "TYPE%u", (unsigned)type);
    free(t);
}

/* What the query said, as far as it could be parsed. */
struct dns_query {
    uint16_t id;
    int opcode, rd, cd;
    int have_question;
    uint8_t qname[255];
    size_t qname_len;
    uint16_t qtype, qclass;
    int edns; /* a valid OPT record was present */
    uint16_t udp_size;
    int edns_version;
    int edns_do;
};

/* Read a question name through the cursor into q->qname (wire form). RFC 1035
 * 3.1 / 4.1.4: labels of at most 63 octets, a name of at most 255; a query's
 * question has nothing before it to point to, so compression pointers (and the
 * reserved label types 01/10) are malformed here. */
static int parse_qname(sts_cur *c, struct dns_query *q)
{
    size_t n = 0;
    for (;;) {
        uint8_t l;
        if (sts_cur_u8(c, &l))
            return STS_ESYNTAX;
        if (l & 0xC0)
            return STS_ESYNTAX;
        if (n + 1 + l > sizeof(q->qname))
            return STS_ESYNTAX;
        q->qname[n++] = l;
        if (l == 0)
            break;
        if (sts_cur_bytes(c, q->qname + n, l))
            return STS_ESYNTAX;
        n += l;
    }
    q->qname_len = n;
    return 0;
}

/* Parse the one additional record a query may carry: an OPT (RFC 6891 6.1.2). */
static int parse_opt(sts_cur *c, struct dns_query *q)
{
    uint8_t root, ext_rcode, version;
    uint16_t type, udp, flags, rdlen;
    if (sts_cur_u8(c, &root) || root != 0 || sts_cur_u16(c, &type) || type != LDNS_RR_TYPE_OPT ||
        sts_cur_u16(c, &udp) || sts_cur_u8(c, &ext_rcode) || sts_cur_u8(c, &version) ||
        sts_cur_u16(c, &flags) || sts_cur_u16(c, &rdlen) || sts_cur_skip(c, rdlen))
        return STS_ESYNTAX;
    q->edns = 1;
    q->udp_size = udp;
    q->edns_version = version;
    q->edns_do = (flags & 0x8000) != 0;
    return 0;
}

/* Build the reply packet. Sections an/ns may be NULL. Returns the packet or NULL. */
static ldns_pkt *reply_pkt(const struct dns_query *q, int rcode, int aa, int tc,
                           const ldns_rr_list *an, const ldns_rr_list *ns)
{
    ldns_pkt *p = ldns_pkt_new();
    if (!p)
        return NULL;
    ldns_pkt_set_id(p, q->id);
    ldns_pkt_set_qr(p, true);
    ldns_pkt_set_opcode(p, (ldns_pkt_opcode)q->opcode);
    ldns_pkt_set_rd(p, q->rd);
    ldns_pkt_set_cd(p, q->cd);
    ldns_pkt_set_aa(p, aa);
    ldns_pkt_set_tc(p, tc);
    ldns_pkt_set_rcode(p, (uint8_t)(rcode & 0x0F));
    if (q->have_question) {
        ldns_rr *qr = ldns_rr_new();
        ldns_rdf *owner = ldns_dname_new_frm_data((uint16_t)q->qname_len, q->qname);
        if (!qr || !owner) {
            ldns_rr_free(qr);
            ldns_rdf_deep_free(owner);
            ldns_pkt_free(p);
            return NULL;
        }
        ldns_rr_set_owner(qr, owner);
        ldns_rr_set_type(qr, (ldns_rr_type)q->qtype);
        ldns_rr_set_class(qr, (ldns_rr_class)q->qclass);
        ldns_rr_set_question(qr, true);
        ldns_pkt_push_rr(p, LDNS_SECTION_QUESTION, qr);
    }
    const ldns_rr_list *secs[2] = {an, ns};
    ldns_pkt_section sec[2] = {LDNS_SECTION_ANSWER, LDNS_SECTION_AUTHORITY};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; secs[k] && i < ldns_rr_list_rr_count(secs[k]); i++) {
            ldns_rr *rr = ldns_rr_clone(ldns_rr_list_rr(secs[k], i));
            if (!rr || !ldns_pkt_push_rr(p, sec[k], rr)) {
                ldns_rr_free(rr);
                ldns_pkt_free(p);
                return NULL;
            }
        }
    /* RFC 6891 6.1.1 / 7: answer an EDNS query with an OPT of our own; its version is
     * 0, the highest we implement; the DO bit is copied (RFC 3225 3). */
    if (q->edns) {
        ldns_pkt_set_edns_udp_size(p, DNS_OUR_UDP_SIZE);
        ldns_pkt_set_edns_version(p, 0);
        ldns_pkt_set_edns_extended_rcode(p, (uint8_t)(rcode >> 4));
        ldns_pkt_set_edns_do(p, q->edns_do);
    }
    return p;
}

/* Look qname up, filling an (answer) and ns (authority). Returns the rcode. */
static int zone_lookup(const sts_dns_zone *z, ldns_rdf *qname, ldns_rr_type qtype, ldns_rr_list *an,
                       ldns_rr_list *ns, int *aa)
{
    const ldns_rdf *apex = zone_apex_of(z, qname);
    if (!apex)
        return RC_REFUSED; /* not authoritative: we are no recursive resolver */
    *aa = 1;
    const ldns_rdf *name = qname;
    for (int hop = 0; hop <= DNS_MAX_CNAME_HOPS; hop++) {
        int exists = 0, found = 0;
        const ldns_rr *cname = NULL;
        for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
            const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
            if (!dname_eq(ldns_rr_owner(rr), name))
                continue;
            exists = 1;
            ldns_rr_type t = ldns_rr_get_type(rr);
            if (t == qtype || qtype == LDNS_RR_TYPE_ANY) {
                found = 1;
                ldns_rr_list_push_rr(an, (ldns_rr *)rr);
            } else if (t == LDNS_RR_TYPE_CNAME) {
                cname = rr;
            }
        }
        if (found)
            return RC_NOERROR;
        if (cname) {
            /* RFC 1034 4.3.2 step 3a: put the CNAME in the answer and restart with its
             * target, as long as the target is ours. A loop ends the chain. */
            for (size_t i = 0; i < ldns_rr_list_rr_count(an); i++)
                if (ldns_rr_list_rr(an, i) == cname)
                    return RC_NOERROR;
            ldns_rr_list_push_rr(an, (ldns_rr *)cname);
            name = ldns_rr_rdf(cname, 0);
            apex = zone_apex_of(z, name);
            if (!apex)
                return RC_NOERROR;
            continue;
        }
        if (!exists) /* an empty non-terminal exists too (RFC 8020) */
            for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs) && !exists; i++)
                exists = ldns_dname_is_subdomain(ldns_rr_owner(ldns_rr_list_rr(z->rrs, i)), name);
        /* RFC 2308 3: NXDOMAIN and NODATA answers carry the zone's SOA. */
        for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
            const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
            if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_SOA && dname_eq(ldns_rr_owner(rr), apex)) {
                ldns_rr_list_push_rr(ns, (ldns_rr *)rr);
                break;
            }
        }
        return exists ? RC_NOERROR : RC_NXDOMAIN;
    }
    return RC_NOERROR; /* chain longer than we follow: the resolver continues */
}

/* Serialize p into out within limit; if it does not fit, rebuild it empty with TC. */
static int reply_wire(ldns_pkt *p, const struct dns_query *q, int rcode, int aa, size_t limit,
                      sts_buf *out, sts_dns_result *res)
{
    uint8_t *wire = NULL;
    size_t size = 0;
    if (ldns_pkt2wire(&wire, p, &size) != LDNS_STATUS_OK)
        return STS_ENOMEM;
    res->ancount = ldns_pkt_ancount(p);
    res->nscount = ldns_pkt_nscount(p);
    if (size > limit) {
        free(wire);
        wire = NULL;
        ldns_pkt *t = reply_pkt(q, rcode, aa, 1, NULL, NULL);
        if (!t || ldns_pkt2wire(&wire, t, &size) != LDNS_STATUS_OK) {
            ldns_pkt_free(t);
            return STS_ENOMEM;
        }
        ldns_pkt_free(t);
        res->tc = 1;
        res->ancount = res->nscount = 0;
        res->authority_soa = 0;
    }
    int rc = sts_buf_append(out, wire, size);
    free(wire);
    return rc;
}

/* ---- the index: precomputed answers ----
 *
 * Every owner name and every empty non-terminal (RFC 8020: a name with no records
 * but names below it exists) is a node in a hash table keyed by its lower-case wire
 * name. Per node, the reference path (answer_ldns) answers once, at finish time,
 * a query (ID 0, no flags, no EDNS, over TCP so nothing is cut) for each type whose
 * answer can differ: the types present at the node and ANY, or, at a CNAME, every
 * type of the zone (the chain's end depends on it); the last entry answers every
 * other type, all of which get the same reply. A query then copies that reply and
 * patches ID, RD, CD, the question (same length; the query's own case) and appends
 * our OPT: the compression pointers in it stay valid because the question has the
 * same length. A name that is no node gets NXDOMAIN with the SOA of the apex of its
 * nearest node ancestor, or REFUSED without one. */

typedef struct dns_resp {
    uint16_t type;
    uint8_t rcode, aa, soa, tc;
    uint16_t ancount, nscount;
    size_t len;
    uint8_t *wire;
} dns_resp;

typedef struct dns_node {
    uint8_t *name; /* lower-case wire form */
    size_t len;
    uint32_t hash;
    size_t apex; /* index into z->apex: the longest apex the name lies under */
    dns_resp *resp;
    size_t nresp; /* the last one answers every type not listed */
} dns_node;

#define DNS_INDEX_MAX_TYPES 64

struct dns_index {
    dns_node *nodes;
    size_t nnodes, capnodes;
    uint32_t *slots; /* node index + 1, 0 = empty; nslots a power of two */
    size_t nslots;
    /* Per apex: its SOA record after the owner name (type, class, TTL, RDLENGTH,
     * RDATA with names uncompressed), for NXDOMAIN replies; NULL = none. */
    uint8_t *soa[DNS_MAX_APEXES];
    size_t soa_len[DNS_MAX_APEXES];
    uint16_t types[DNS_INDEX_MAX_TYPES]; /* every type of the zone, and ANY */
    size_t ntypes;
    uint16_t other; /* a type the zone does not have: stands for all of them */
};

static void index_free(struct dns_index *ix)
{
    if (!ix)
        return;
    for (size_t i = 0; i < ix->nnodes; i++) {
        for (size_t k = 0; k < ix->nodes[i].nresp; k++)
            free(ix->nodes[i].resp[k].wire);
        free(ix->nodes[i].resp);
        free(ix->nodes[i].name);
    }
    free(ix->nodes);
    free(ix->slots);
    for (size_t i = 0; i < DNS_MAX_APEXES; i++)
        free(ix->soa[i]);
    free(ix);
}

static uint32_t name_hash(const uint8_t *w, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ w[i]) * 16777619u;
    return h;
}

static const dns_node *index_find(const struct dns_index *ix, const uint8_t *lc, size_t n,
                                  uint32_t h)
{
    for (size_t k = h & (ix->nslots - 1); ix->slots[k]; k = (k + 1) & (ix->nslots - 1)) {
        const dns_node *d = &ix->nodes[ix->slots[k] - 1];
        if (d->hash == h && d->len == n && !memcmp(d->name, lc, n))
            return d;
    }
    return NULL;
}

static int index_has_type(const struct dns_index *ix, uint16_t t)
{
    for (size_t i = 0; i < ix->ntypes; i++)
        if (ix->types[i] == t)
            return 1;
    return 0;
}

/* Add the node (w, n) under apex unless it is there. */
static int index_add_node(struct dns_index *ix, const uint8_t *w, size_t n, size_t apex)
{
    uint32_t h = name_hash(w, n);
    if (ix->nslots && index_find(ix, w, n, h))
        return 0;
    if ((ix->nnodes + 1) * 2 > ix->nslots) {
        size_t ns = ix->nslots ? ix->nslots * 2 : 64;
        uint32_t *slots = calloc(ns, sizeof(*slots));
        if (!slots)
            return STS_ENOMEM;
        for (size_t i = 0; i < ix->nnodes; i++) {
            size_t k = ix->nodes[i].hash & (ns - 1);
            while (slots[k])
                k = (k + 1) & (ns - 1);
            slots[k] = (uint32_t)i + 1;
        }
        free(ix->slots);
        ix->slots = slots;
        ix->nslots = ns;
    }
    if (sts_array_grow((void **)&ix->nodes, &ix->capnodes, ix->nnodes + 1, sizeof(*ix->nodes), 32))
        return STS_ENOMEM;
    dns_node *d = &ix->nodes[ix->nnodes];
    memset(d, 0, sizeof(*d));
    if (!(d->name = malloc(n)))
        return STS_ENOMEM;
    memcpy(d->name, w, n);
    d->len = n;
    d->hash = h;
    d->apex = apex;
    size_t k = h & (ix->nslots - 1);
    while (ix->slots[k])
        k = (k + 1) & (ix->nslots - 1);
    ix->slots[k] = (uint32_t)ix->nnodes + 1;
    ix->nnodes++;
    return 0;
}

static int answer_ldns(const sts_dns_zone *z, const struct dns_query *q, int rcode,
                       sts_dns_transport transport, int use_faults, sts_buf *out,
                       sts_dns_result *res);
static int query_parse(const uint8_t *msg, size_t len, struct dns_query *q, int *rcodep);
static size_t reply_limit(const struct dns_query *q, sts_dns_transport transport);

/* Precompute node d's reply to type t (entry r) with the reference path. */
static int index_answer_type(const sts_dns_zone *z, const dns_node *d, uint16_t t, dns_resp *r)
{
    uint8_t msg[12 + 255 + 4] = {0, 0, 0, 0, 0, 1}; /* ID 0, no flags, QDCOUNT 1 */
    memcpy(msg + 12, d->name, d->len);
    msg[12 + d->len] = (uint8_t)(t >> 8);
    msg[13 + d->len] = (uint8_t)t;
    msg[14 + d->len] = 0;
    msg[15 + d->len] = LDNS_RR_CLASS_IN;
    struct dns_query q;
    int rcode;
    if (!query_parse(msg, 16 + d->len, &q, &rcode) || rcode != RC_NOERROR)
        return STS_EINVAL;
    sts_buf out;
    sts_buf_init(&out, 0);
    sts_dns_result res;
    memset(&res, 0, sizeof(res));
    int rc = answer_ldns(z, &q, RC_NOERROR, STS_DNS_TCP, 0, &out, &res);
    if (rc == 0 && !(r->wire = malloc(out.len)))
        rc = STS_ENOMEM;
    if (rc == 0) {
        memcpy(r->wire, out.data, out.len);
        r->len = out.len;
        r->type = t;
        r->rcode = (uint8_t)res.rcode;
        r->aa = (uint8_t)res.aa;
        r->soa = (uint8_t)res.authority_soa;
        r->tc = (uint8_t)res.tc;
        r->ancount = (uint16_t)res.ancount;
        r->nscount = (uint16_t)res.nscount;
    }
    sts_buf_free(&out);
    return rc;
}

/* Does a record of type t (any type: t == 0) sit at the node? */
static int index_node_has(const sts_dns_zone *z, const dns_node *d, uint16_t t)
{
    for (size_t i = 0; i < ldns_rr_list_rr_count(z->rrs); i++) {
        const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
        const ldns_rdf *o = ldns_rr_owner(rr);
        if ((t == 0 || ldns_rr_get_type(rr) == t) && ldns_rdf_size(o) == d->len &&
            !memcmp(ldns_rdf_data(o), d->name, d->len))
            return 1;
    }
    return 0;
}

static int index_build_node(const sts_dns_zone *z, const struct dns_index *ix, dns_node *d)
{
    int cname = index_node_has(z, d, LDNS_RR_TYPE_CNAME);
    if (!(d->resp = calloc(ix->ntypes + 1, sizeof(*d->resp))))
        return STS_ENOMEM;
    for (size_t i = 0; i < ix->ntypes; i++) {
        uint16_t t = ix->types[i];
        if (!cname && t != LDNS_RR_TYPE_ANY && !index_node_has(z, d, t))
            continue; /* NODATA, the same as the catch-all entry */
        int rc = index_answer_type(z, d, t, &d->resp[d->nresp]);
        if (rc)
            return rc;
        d->nresp++;
    }
    int rc = index_answer_type(z, d, ix->other, &d->resp[d->nresp]);
    if (rc == 0)
        d->nresp++;
    return rc;
}

static int index_build(sts_dns_zone *z)
{
    zone_index_drop(z);
    struct dns_index *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return STS_ENOMEM;
    size_t nrr = ldns_rr_list_rr_count(z->rrs);
    int rc = 0;
    ix->types[ix->ntypes++] = LDNS_RR_TYPE_ANY;
    for (size_t i = 0; i < nrr; i++) {
        uint16_t t = (uint16_t)ldns_rr_get_type(ldns_rr_list_rr(z->rrs, i));
        if (index_has_type(ix, t))
            continue;
        if (ix->ntypes == DNS_INDEX_MAX_TYPES) {
            index_free(ix); /* that many types: answer everything by the reference path */
            return 0;
        }
        ix->types[ix->ntypes++] = t;
    }
    for (ix->other = 65280; index_has_type(ix, ix->other); ix->other++)
        ;
    /* Owners and every name between an owner and its apex (empty non-terminals). */
    for (size_t i = 0; rc == 0 && i < nrr; i++) {
        const ldns_rdf *owner = ldns_rr_owner(ldns_rr_list_rr(z->rrs, i));
        const ldns_rdf *apex = zone_apex_of(z, owner);
        size_t ai = 0;
        while (ai < z->napex && z->apex[ai] != apex)
            ai++;
        if (ai == z->napex) {
            rc = STS_EINVAL;
            break;
        }
        const uint8_t *w = ldns_rdf_data(owner);
        size_t n = ldns_rdf_size(owner), alen = ldns_rdf_size(apex);
        for (size_t off = 0; rc == 0 && off < n && n - off >= alen && w[off];
             off += 1 + (size_t)w[off])
            rc = index_add_node(ix, w + off, n - off, ai);
    }
    for (size_t i = 0; rc == 0 && i < ix->nnodes; i++)
        rc = index_build_node(z, ix, &ix->nodes[i]);
    /* RFC 2308 3: NXDOMAIN carries the apex's SOA (the first, as zone_lookup takes). */
    for (size_t a = 0; rc == 0 && a < z->napex; a++)
        for (size_t i = 0; i < nrr; i++) {
            const ldns_rr *rr = ldns_rr_list_rr(z->rrs, i);
            if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA ||
                !dname_eq(ldns_rr_owner(rr), z->apex[a]))
                continue;
            uint8_t *wire = NULL;
            size_t size = 0, on = ldns_rdf_size(ldns_rr_owner(rr));
            if (ldns_rr2wire(&wire, rr, LDNS_SECTION_ANSWER, &size) != LDNS_STATUS_OK ||
                size <= on || !(ix->soa[a] = malloc(size - on))) {
                free(wire);
                rc = STS_ENOMEM;
                break;
            }
            memcpy(ix->soa[a], wire + on, size - on);
            ix->soa_len[a] = size - on;
            free(wire);
            break;
        }
    if (rc) {
        index_free(ix);
        return rc;
    }
    z->ix = ix;
    return 0;
}

/* Header and question of a reply built here: the query's ID, opcode (QUERY), RD and
 * CD; the question as it came. */
static int index_head(sts_buf *out, const struct dns_query *q, int aa, int tc, int rcode,
                      uint16_t an, uint16_t ns)
{
    uint8_t h[12 + 255 + 4];
    h[0] = (uint8_t)(q->id >> 8);
    h[1] = (uint8_t)q->id;
    h[2] = (uint8_t)(0x80 | (aa ? 0x04 : 0) | (tc ? 0x02 : 0) | (q->rd ? 0x01 : 0));
    h[3] = (uint8_t)((q->cd ? 0x10 : 0) | (rcode & 0x0F));
    uint16_t counts[4] = {1, an, ns, (uint16_t)(q->edns ? 1 : 0)};
    for (int i = 0; i < 4; i++) {
        h[4 + 2 * i] = (uint8_t)(counts[i] >> 8);
        h[5 + 2 * i] = (uint8_t)counts[i];
    }
    memcpy(h + 12, q->qname, q->qname_len);
    size_t o = 12 + q->qname_len;
    h[o++] = (uint8_t)(q->qtype >> 8);
    h[o++] = (uint8_t)q->qtype;
    h[o++] = (uint8_t)(q->qclass >> 8);
    h[o++] = (uint8_t)q->qclass;
    return sts_buf_append(out, h, o);
}

/* RFC 6891 6.1.1 / 7: our OPT: owner root, payload size, extended rcode 0 (the
 * rcodes answered here all fit in 4 bits), version 0, the DO bit copied (RFC 3225 3),
 * no options. */
static int index_opt(sts_buf *out, const struct dns_query *q)
{
    const uint8_t opt[11] = {0,
                             0,
                             LDNS_RR_TYPE_OPT,
                             DNS_OUR_UDP_SIZE >> 8,
                             DNS_OUR_UDP_SIZE & 0xFF,
                             0,
                             0,
                             (uint8_t)(q->edns_do ? 0x80 : 0),
                             0,
                             0,
                             0};
    return sts_buf_append(out, opt, sizeof(opt));
}

/* Answer a valid query (rcode NOERROR so far) from the index. Returns 0 (answered),
 * 1 (not covered: scripted fault, or no precomputed reply; use the reference path)
 * or STS_ENOMEM. */
static int index_answer(const sts_dns_zone *z, const struct dns_query *q,
                        sts_dns_transport transport, sts_buf *out, sts_dns_result *res)
{
    const struct dns_index *ix = z->ix;
    uint8_t lc[255];
    size_t n = q->qname_len;
    /* RFC 4343: names match case-insensitively; the index holds lower case. */
    for (size_t i = 0; i < n; i++)
        lc[i] =
            (q->qname[i] >= 'A' && q->qname[i] <= 'Z') ? (uint8_t)(q->qname[i] + 32) : q->qname[i];
    for (size_t i = 0; i < z->nfaults; i++)
        if ((z->faults[i].any || z->faults[i].type == (ldns_rr_type)q->qtype) &&
            ldns_rdf_size(z->faults[i].name) == n &&
            !memcmp(ldns_rdf_data(z->faults[i].name), lc, n))
            return 1;
    size_t limit = reply_limit(q, transport), optlen = q->edns ? 11 : 0;
    const dns_node *d = index_find(ix, lc, n, name_hash(lc, n));
    int rc;
    if (d) {
        const dns_resp *r = &d->resp[d->nresp - 1];
        for (size_t i = 0; i + 1 < d->nresp; i++)
            if (d->resp[i].type == q->qtype) {
                r = &d->resp[i];
                break;
            }
        if (r->tc || r->len < 16 + n)
            return 1;
        res->rcode = r->rcode;
        res->aa = r->aa;
        if (r->len + optlen > limit) {
            /* RFC 1035 4.2.1, RFC 2181 9: does not fit: TC and empty sections. */
            res->tc = 1;
            rc = index_head(out, q, r->aa, 1, r->rcode, 0, 0);
        } else {
            res->ancount = r->ancount;
            res->nscount = r->nscount;
            res->authority_soa = r->soa;
            rc = sts_buf_append(out, r->wire, r->len);
            if (rc == 0) {
                uint8_t *p = (uint8_t *)out->data;
                p[0] = (uint8_t)(q->id >> 8);
                p[1] = (uint8_t)q->id;
                p[2] = (uint8_t)((p[2] & ~0x01) | (q->rd ? 0x01 : 0));
                p[3] = (uint8_t)((p[3] & ~0x10) | (q->cd ? 0x10 : 0));
                p[11] = (uint8_t)(q->edns ? 1 : 0); /* ARCOUNT: only our OPT */
                memcpy(p + 12, q->qname, n);
                p[12 + n] = (uint8_t)(q->qtype >> 8);
                p[13 + n] = (uint8_t)q->qtype;
            }
        }
    } else {
        /* Not a node: below the nearest node ancestor (if any) nothing exists. */
        const dns_node *anc = NULL;
        for (size_t off = 0; !anc && lc[off];) {
            off += 1 + (size_t)lc[off];
            anc = index_find(ix, lc + off, n - off, name_hash(lc + off, n - off));
        }
        if (!anc) {
            res->rcode = RC_REFUSED; /* not authoritative: we are no recursive resolver */
            rc = index_head(out, q, 0, 0, RC_REFUSED, 0, 0);
        } else {
            const uint8_t *soa = ix->soa[anc->apex];
            size_t soa_len = ix->soa_len[anc->apex];
            size_t alen = ldns_rdf_size(z->apex[anc->apex]);
            if (!soa || alen > n)
                return 1;
            res->rcode = RC_NXDOMAIN;
            res->aa = 1;
            if (12 + n + 4 + 2 + soa_len + optlen > limit) {
                res->tc = 1;
                rc = index_head(out, q, 1, 1, RC_NXDOMAIN, 0, 0);
            } else {
                /* RFC 2308 3: the SOA, its owner a pointer to the apex's labels at the
                 * end of the question name (RFC 1035 4.1.4). */
                size_t ptr = 12 + n - alen;
                uint8_t own[2] = {(uint8_t)(0xC0 | (ptr >> 8)), (uint8_t)ptr};
                res->nscount = 1;
                res->authority_soa = 1;
                rc = index_head(out, q, 1, 0, RC_NXDOMAIN, 0, 1);
                if (rc == 0)
                    rc = sts_buf_append(out, own, 2);
                if (rc == 0)
                    rc = sts_buf_append(out, soa, soa_len);
            }
        }
    }
    if (rc == 0 && q->edns)
        rc = index_opt(out, q);
    return rc;
}

/* Parse and validate the query (RFC 1035 4.1.1). Checked in this order (after NSD's
 * query_process): a message shorter than a header, or a response, gets no reply at
 * all (answering responses invites loops): returns 0; then opcode, flags and counts;
 * then the question; then EDNS: returns 1 with the rcode to answer with. */
static int query_parse(const uint8_t *msg, size_t len, struct dns_query *q, int *rcodep)
{
    memset(q, 0, sizeof(*q));
    sts_cur c;
    sts_cur_init(&c, msg, len);
    uint16_t flags, qd, an, ns, ar;
    if (sts_cur_u16(&c, &q->id) || sts_cur_u16(&c, &flags) || sts_cur_u16(&c, &qd) ||
        sts_cur_u16(&c, &an) || sts_cur_u16(&c, &ns) || sts_cur_u16(&c, &ar))
        return 0;
    if (flags & 0x8000)
        return 0;
    q->opcode = (flags >> 11) & 0x0F;
    q->rd = (flags >> 8) & 1;
    q->cd = (flags >> 4) & 1;

    int rcode = RC_NOERROR;
    if (q->opcode != LDNS_PACKET_QUERY)
        rcode = RC_NOTIMP;
    else if ((flags & 0x0200) || qd != 1 || an != 0 || ns != 0 || ar > 1)
        rcode = RC_FORMERR; /* TC in a query, or sections a query cannot have */
    else if (parse_qname(&c, q) || sts_cur_u16(&c, &q->qtype) || sts_cur_u16(&c, &q->qclass))
        rcode = RC_FORMERR;
    else {
        q->have_question = 1;
        if (ar == 1 && parse_opt(&c, q))
            rcode = RC_FORMERR; /* only an OPT may follow, once (RFC 6891 6.1.1) */
        else if (sts_cur_left(&c) != 0)
            rcode = RC_FORMERR; /* trailing garbage */
        else if (q->edns && q->edns_version != 0)
            rcode = STS_DNS_BADVERS; /* RFC 6891 6.1.3 */
        else if (q->qclass != LDNS_RR_CLASS_IN)
            rcode = RC_NOTIMP;
        else if (q->qtype == LDNS_RR_TYPE_OPT)
            rcode = RC_FORMERR; /* OPT is a pseudo-RR, never a question (RFC 6891 6.1.1) */
        else if (q->qtype == LDNS_RR_TYPE_AXFR || q->qtype == LDNS_RR_TYPE_IXFR ||
                 q->qtype == LDNS_RR_TYPE_MAILA || q->qtype == LDNS_RR_TYPE_MAILB)
            rcode = RC_NOTIMP;
    }
    *rcodep = rcode;
    return 1;
}

/* The reply size limit of the transport: RFC 1035 4.2.1: 512 octets over UDP;
 * RFC 6891 6.2.5: the advertised size, values below 512 counting as 512. */
static size_t reply_limit(const struct dns_query *q, sts_dns_transport transport)
{
    if (transport != STS_DNS_UDP)
        return 65535;
    return q->edns && q->udp_size > 512 ? q->udp_size : 512;
}

/* The reference answer to a parsed query, entirely with ldns. use_faults 0: as if
 * the zone had no faults (to precompute the index). */
static int answer_ldns(const sts_dns_zone *z, const struct dns_query *q, int rcode,
                       sts_dns_transport transport, int use_faults, sts_buf *out,
                       sts_dns_result *res)
{
    ldns_rdf *qname = NULL;
    if (q->have_question) {
        qname = ldns_dname_new_frm_data((uint16_t)q->qname_len, q->qname);
        if (!qname)
            return STS_ENOMEM;
    }

    ldns_rr_list *anl = ldns_rr_list_new(), *nsl = ldns_rr_list_new();
    int aa = 0, rc = STS_ENOMEM;
    res->fault = -1;
    if (!anl || !nsl)
        goto out;
    int fi = rcode == RC_NOERROR && use_faults ? zone_fault(z, qname, q->qtype) : -1;
    size_t limit = reply_limit(q, transport);
    if (fi >= 0) {
        res->fault = z->faults[fi].fault;
        res->delay = z->faults[fi].delay;
        switch (res->fault) {
        case STS_SCN_DNS_SERVFAIL:
            rcode = RC_SERVFAIL;
            break;
        case STS_SCN_DNS_REFUSED:
            rcode = RC_REFUSED;
            break;
        case STS_SCN_DNS_NXDOMAIN:
            rcode = RC_NXDOMAIN;
            aa = 1;
            break;
        case STS_SCN_DNS_TIMEOUT:
            res->drop = 1;
            break;
        case STS_SCN_DNS_TRUNCATE:
            /* RFC 1035 4.2.1 / RFC 7766: TC over UDP sends the client to TCP, where
             * the whole answer comes. */
            if (transport == STS_DNS_UDP)
                limit = 0;
            break;
        case STS_SCN_DNS_WRONG_ID:
            res->spoof = STS_DNS_SPOOF_ID;
            break;
        case STS_SCN_DNS_WRONG_SOURCE:
            if (transport == STS_DNS_UDP)
                res->spoof = STS_DNS_SPOOF_SOURCE;
            break;
        default:
            break;
        }
    }
    if (rcode == RC_NOERROR)
        rcode = zone_lookup(z, qname, (ldns_rr_type)q->qtype, anl, nsl, &aa);
    res->rcode = rcode;
    res->aa = aa;
    res->authority_soa = ldns_rr_list_rr_count(nsl) > 0;

    if (res->drop) {
        rc = 0; /* timeout: nothing goes out */
        goto out;
    }
    ldns_pkt *p = reply_pkt(q, rcode, aa, 0, anl, nsl);
    if (p) {
        rc = reply_wire(p, q, rcode, aa, limit, out, res);
        ldns_pkt_free(p);
    }
out:
    /* The lists borrow the zone's records: free only the lists. */
    ldns_rr_list_free(anl);
    ldns_rr_list_free(nsl);
    ldns_rdf_deep_free(qname);
    return rc;
}

/* The common start of both answer functions: parse, fill the question into res.
 * Returns 0 = drop, 1 = answer with *rcode. */
static int answer_begin(const uint8_t *msg, size_t len, sts_buf *out, sts_dns_result *res,
                        struct dns_query *q, int *rcode)
{
    memset(res, 0, sizeof(*res));
    res->fault = -1;
    sts_buf_reset(out);
    if (!query_parse(msg, len, q, rcode))
        return 0;
    res->answered = 1;
    if (q->have_question) {
        res->qname = msg + 12; /* the question follows the 12-octet header */
        res->qname_len = q->qname_len;
        res->qtype = q->qtype;
    }
    return 1;
}

/* Both answer functions: with use_index, what the index covers is copied from it
 * (index_answer); errors, scripted faults and anything the index does not cover take
 * the reference path (answer_ldns), which is all there is without use_index. */
static int answer(const sts_dns_zone *z, const uint8_t *msg, size_t len,
                  sts_dns_transport transport, int use_index, sts_buf *out, sts_dns_result *res)
{
    struct dns_query q;
    int rcode;
    if (!answer_begin(msg, len, out, res, &q, &rcode))
        return 0;
    if (use_index && rcode == RC_NOERROR && z->ix) {
        int rc = index_answer(z, &q, transport, out, res);
        if (rc <= 0)
            return rc;
        sts_buf_reset(out);
    }
    return answer_ldns(z, &q, rcode, transport, 1, out, res);
}

int sts_dns_answer_ref(const sts_dns_zone *z, const uint8_t *msg, size_t len,
                       sts_dns_transport transport, sts_buf *out, sts_dns_result *res)
{
    return answer(z, msg, len, transport, 0, out, res);
}

int sts_dns_answer(const sts_dns_zone *z, const uint8_t *msg, size_t len,
                   sts_dns_transport transport, sts_buf *out, sts_dns_result *res)
{
    return answer(z, msg, len, transport, 1, out, res);
}

int sts_dns_spoof(const uint8_t *reply, size_t len, int keep_id, sts_buf *out)
{
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, reply, len) != LDNS_STATUS_OK)
        return STS_EINVAL;
    if (!ldns_pkt_qr(p)) {
        ldns_pkt_free(p);
        return STS_EINVAL;
    }
    /* Any other ID: a client that matches IDs (RFC 5452 4.3) drops this one. */
    if (!keep_id)
        ldns_pkt_set_id(p, (uint16_t)(ldns_pkt_id(p) ^ 0x5A5A));
    ldns_rr_list *an = ldns_pkt_answer(p);
    int rc = 0;
    for (size_t i = 0; rc == 0 && an && i < ldns_rr_list_rr_count(an); i++) {
        ldns_rr *rr = ldns_rr_list_rr(an, i);
        const char *rdata = NULL;
        ldns_rdf_type t = LDNS_RDF_TYPE_NONE;
        switch (ldns_rr_get_type(rr)) {
        case LDNS_RR_TYPE_TXT:
            rdata = "v=STSv1; id=spoofed;";
            t = LDNS_RDF_TYPE_STR;
            break;
        case LDNS_RR_TYPE_A:
            rdata = "192.0.2.66"; /* TEST-NET-1 (RFC 5737) */
            t = LDNS_RDF_TYPE_A;
            break;
        case LDNS_RR_TYPE_AAAA:
            rdata = "2001:db8::66"; /* RFC 3849 */
            t = LDNS_RDF_TYPE_AAAA;
            break;
        case LDNS_RR_TYPE_MX:
            rdata = "spoofed.invalid."; /* the exchange; RFC 6761 6.4 */
            t = LDNS_RDF_TYPE_DNAME;
            break;
        default:
            continue;
        }
        ldns_rdf *nd = ldns_rdf_new_frm_str(t, rdata);
        if (!nd) {
            rc = STS_ENOMEM;
            break;
        }
        size_t k = ldns_rr_get_type(rr) == LDNS_RR_TYPE_MX ? 1 : 0;
        /* A TXT record may have several strings: keep only the spoofed one. */
        while (ldns_rr_get_type(rr) == LDNS_RR_TYPE_TXT && ldns_rr_rd_count(rr) > 1)
            ldns_rdf_deep_free(ldns_rr_pop_rdf(rr));
        ldns_rdf_deep_free(ldns_rr_set_rdf(rr, nd, k));
    }
    uint8_t *wire = NULL;
    size_t size = 0;
    if (rc == 0 && ldns_pkt2wire(&wire, p, &size) != LDNS_STATUS_OK)
        rc = STS_ENOMEM;
    ldns_pkt_free(p);
    if (rc == 0) {
        sts_buf_reset(out);
        rc = sts_buf_append(out, wire, size);
    }
    free(wire);
    return rc;
}
