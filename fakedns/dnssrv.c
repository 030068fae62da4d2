/*
 * dnssrv.c - the world's authoritative DNS server (see dnssrv.h): the zone, the
 * pure answer function, and the UDP + TCP server around it. Functions return 0 or
 * a negative STS_* code unless dnssrv.h says otherwise.
 */
#include "fakedns/dnssrv.h"
#include "common/err.h"
#include "common/scenario.h"
#include "fakedns/tcpsrv.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <ldns/ldns.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DNS_DEFAULT_TTL 300
#define DNS_MAX_CNAME_HOPS 8
/* The payload size we advertise in our own OPT record (RFC 6891 6.2.5; 1232 is the
 * DNS Flag Day 2020 value that avoids IP fragmentation). */
#define DNS_OUR_UDP_SIZE 1232
#define DNS_MAX_APEXES 256
#define DNS_MAX_FAULTS 64

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
    ldns_rr_list *rrs;              /* every record; owners in lower case */
    ldns_rdf *apex[DNS_MAX_APEXES]; /* apex[0] = origin; others: out-of-domain hosts */
    size_t napex;
    struct {
        ldns_rdf *name;
        int any;           /* every type */
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

/* Parse one line (already trimmed of its newline) into the zone. */
static int zone_add_line(sts_dns_zone *z, const char *line, ldns_rdf **prev, const char *where,
                         int lineno, char *err, size_t errlen)
{
    ldns_rr *rr = NULL;
    ldns_status st = ldns_rr_new_frm_str(&rr, line, DNS_DEFAULT_TTL, z->origin, prev);
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
    char owner[256];
    dname_text(ldns_rr_owner(rr), owner, sizeof(owner));
    int rc = STS_ESYNTAX;
    if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) {
        sts_errf(err, errlen, "%s:%d: only class IN is served ('%s')", where, lineno, line);
    } else if (!dname_under(ldns_rr_owner(rr), z->origin)) {
        char dom[256];
        dname_text(z->origin, dom, sizeof(dom));
        sts_errf(err, errlen, "%s:%d: owner %s lies outside the domain %s", where, lineno, owner,
                dom);
    } else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_OPT) {
        sts_errf(err, errlen, "%s:%d: OPT is not a zone record", where, lineno);
    } else {
        ldns_dname2canonical(ldns_rr_owner(rr));
        if (zone_cname_conflict(z, rr)) {
            sts_errf(err, errlen, "%s:%d: %s has a CNAME and other data (RFC 1034 3.6.2 forbids it)",
                    where, lineno, owner);
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
        char *line = strndup(p, n);
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
        char name[256];
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
    if (!strcmp(name, "@")) {
        d = ldns_rdf_clone(z->origin);
    } else if (ldns_str2rdf_dname(&d, name) == LDNS_STATUS_OK && nl && name[nl - 1] != '.') {
        /* relative, as the owner of a zone line */
        if (ldns_dname_cat(d, z->origin) != LDNS_STATUS_OK) {
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
    char origin[256];
    dname_text(z->origin, origin, sizeof(origin));
    for (size_t i = 0; i < z->napex; i++) {
        char apex[256], line[1024];
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
    if (ix->nnodes == ix->capnodes) {
        size_t nc = ix->capnodes ? ix->capnodes * 2 : 32;
        dns_node *nodes = realloc(ix->nodes, nc * sizeof(*nodes));
        if (!nodes)
            return STS_ENOMEM;
        ix->nodes = nodes;
        ix->capnodes = nc;
    }
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
            if (ldns_rr_get_type(rr) != LDNS_RR_TYPE_SOA || !dname_eq(ldns_rr_owner(rr), z->apex[a]))
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
        lc[i] = (q->qname[i] >= 'A' && q->qname[i] <= 'Z') ? (uint8_t)(q->qname[i] + 32)
                                                           : q->qname[i];
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
        for (size_t off = 0; !anc && lc[off]; ) {
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

int sts_dns_answer_ref(const sts_dns_zone *z, const uint8_t *msg, size_t len,
                       sts_dns_transport transport, sts_buf *out, sts_dns_result *res)
{
    struct dns_query q;
    int rcode;
    if (!answer_begin(msg, len, out, res, &q, &rcode))
        return 0;
    return answer_ldns(z, &q, rcode, transport, 1, out, res);
}

int sts_dns_answer(const sts_dns_zone *z, const uint8_t *msg, size_t len,
                   sts_dns_transport transport, sts_buf *out, sts_dns_result *res)
{
    struct dns_query q;
    int rcode;
    if (!answer_begin(msg, len, out, res, &q, &rcode))
        return 0;
    /* Errors, scripted faults and anything the index does not cover take the
     * reference path; the rest is copied from the index (index_answer). */
    if (rcode == RC_NOERROR && z->ix) {
        int rc = index_answer(z, &q, transport, out, res);
        if (rc <= 0)
            return rc;
        sts_buf_reset(out);
    }
    return answer_ldns(z, &q, rcode, transport, 1, out, res);
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

/* ---- the server ---- */

#define DNS_TCP_MAX (2 + 65535) /* one length prefix and the largest message */

/* UDP in batches: libuv (UV_UDP_RECVMMSG) reads up to DNS_BATCH datagrams with one
 * recvmmsg(2) into slots of 64 KiB (the largest datagram) when the receive buffer
 * has room for at least two; the replies to one batch leave with one sendmmsg(2).
 * Under load this halves the system calls per query; a lone query costs the same. */
#define DNS_DGRAM_MAX (64 * 1024)
#define DNS_BATCH 16

/* Replies held until the end of the recvmmsg batch they answer. */
typedef struct dns_batch {
    int active; /* inside a batch's callbacks: replies wait here */
    unsigned n;
    struct mmsghdr msgs[DNS_BATCH];
    struct iovec iov[DNS_BATCH];
    struct sockaddr_storage addr[DNS_BATCH];
    size_t off[DNS_BATCH], len[DNS_BATCH]; /* in data (which may move as it grows) */
    sts_buf data;
} dns_batch;

typedef struct dns_tcp_sess dns_tcp_sess;

/* An answer held back by a scripted delay; on the server's list until sent or
 * cancelled. */
typedef struct dns_pending {
    struct dns_pending *prev, *next;
    struct sts_dnssrv *srv;
    dns_tcp_sess *tcp; /* NULL: UDP to addr */
    sts_stream *st;
    struct sockaddr_storage addr;
    sts_delay *delay;
    int spoof;             /* STS_DNS_SPOOF_* */
    size_t spoof_len, len; /* data = spoofed answer (spoof_len), then the answer */
    uint8_t data[];
} dns_pending;

struct sts_dnssrv {
    uv_udp_t udp; /* embedded; the server is freed once it and the TCP side closed */
    const sts_dns_zone *zone;
    dns_pending pending; /* list head */
    sts_buf spoof;
    /* wrong_source: the sockets forged answers leave from, made on first use: [0] the
     * server's own address on another (ephemeral) port, [1] another address of its
     * /24 on the server's port. -1: not made yet; -2: cannot be made (said once). */
    int spoof_fd[2];
    sts_tcpsrv *tcp;
    sts_observer *obs;
    sts_log *log;
    sts_buf reply;
    int udp_closed, tcp_stopped, stopping;
    int obs_full_noted; /* the transcript said the observer log is full */
    void (*done)(void *);
    void *done_arg;
    dns_batch batch;
    char *rbuf; /* DNS_BATCH slots of DNS_DGRAM_MAX */
};

struct dns_send {
    uv_udp_send_t req;
    size_t len;
    char data[];
};

struct dns_tcp_sess {
    sts_tcpsrv_conn conn; /* first: the stream's data pointer */
    sts_dnssrv *srv;
    sts_buf in;
    sts_buf reply;
};

static void dnssrv_record(sts_dnssrv *s, const sts_dns_result *res, int tcp)
{
    const char *transport = tcp ? "tcp" : "udp";
    /* Text only when the line is written: the hot path stays in wire form. */
    if (s->log && sts_log_verbosity(s->log) >= STS_LOG_DEBUG) {
        const char *fault = sts_scn_dns_fault_name(res->fault);
        char name[1024] = "-", type[24] = "-";
        if (res->qname) {
            sts_dns_name_text(res->qname, res->qname_len, name, sizeof(name));
            sts_dns_type_text(res->qtype, type, sizeof(type));
        }
        sts_debug(s->log, "dns %s %s %s -> %s%s%s an=%d%s%s", transport, name, type,
                  res->drop ? "(no answer)" : sts_dns_rcode_name(res->rcode), res->aa ? " aa" : "",
                  res->tc ? " tc" : "", res->ancount, fault ? " fault=" : "", fault ? fault : "");
    }
    int rc = sts_observer_dns_query(s->obs, res->qname, res->qname_len, res->qtype, tcp,
                                    res->drop ? -1 : res->rcode, res->fault);
    if (rc == STS_ETOOBIG && !s->obs_full_noted) {
        s->obs_full_noted = 1;
        sts_info(s->log,
                 "dns: the observer keeps at most %zu DNS queries; later ones are only counted "
                 "(dns_dropped)",
                 sts_observer_dns_max(s->obs));
    }
}

static void dnssrv_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sts_dnssrv *s = h->data;
    buf->base = s->rbuf;
    buf->len = (size_t)DNS_BATCH * DNS_DGRAM_MAX;
}

static void dnssrv_send_cb(uv_udp_send_t *req, int status)
{
    free(req->data);
}

static void dnssrv_udp_send_now(sts_dnssrv *s, const void *data, size_t len,
                                const struct sockaddr *addr)
{
    uv_buf_t out = uv_buf_init((char *)data, (unsigned)len);
    int rc = uv_udp_try_send(&s->udp, &out, 1, addr);
    if (rc == (int)len)
        return;
    /* The socket buffer is full (or try_send is unsupported): queue a copy. */
    struct dns_send *ds = malloc(sizeof(*ds) + len);
    if (!ds)
        return;
    memcpy(ds->data, data, len);
    ds->len = len;
    ds->req.data = ds;
    out = uv_buf_init(ds->data, (unsigned)ds->len);
    if (uv_udp_send(&ds->req, &s->udp, &out, 1, addr, dnssrv_send_cb) != 0)
        free(ds);
}

static socklen_t sockaddr_len(const struct sockaddr *addr)
{
    return addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Send the replies held for the batch that just ended, in order: one sendmmsg when
 * libuv has nothing queued (else ours would overtake its queue); whatever the
 * kernel did not take (EAGAIN, an error) goes the one-by-one way. */
static void dnssrv_batch_flush(sts_dnssrv *s)
{
    dns_batch *b = &s->batch;
    unsigned n = b->n, sent = 0;
    b->n = 0;
    if (!n)
        goto done;
    for (unsigned i = 0; i < n; i++) {
        b->iov[i].iov_base = b->data.data + b->off[i];
        b->iov[i].iov_len = b->len[i];
        memset(&b->msgs[i], 0, sizeof(b->msgs[i]));
        b->msgs[i].msg_hdr.msg_name = &b->addr[i];
        b->msgs[i].msg_hdr.msg_namelen = sockaddr_len((struct sockaddr *)&b->addr[i]);
        b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
        b->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uv_os_fd_t fd;
    if (uv_udp_get_send_queue_count(&s->udp) == 0 && uv_fileno((uv_handle_t *)&s->udp, &fd) == 0) {
        int r;
        do
            r = sendmmsg(fd, b->msgs, n, MSG_DONTWAIT);
        while (r < 0 && errno == EINTR);
        if (r > 0)
            sent = (unsigned)r;
    }
    for (unsigned i = sent; i < n; i++)
        dnssrv_udp_send_now(s, b->iov[i].iov_base, b->iov[i].iov_len,
                            (struct sockaddr *)&b->addr[i]);
done:
    sts_buf_reset(&b->data);
}

/* One UDP datagram to addr: held for the batch's sendmmsg while a batch is being
 * answered, else sent now. */
static void dnssrv_udp_send(sts_dnssrv *s, const void *data, size_t len,
                            const struct sockaddr *addr)
{
    dns_batch *b = &s->batch;
    if (!b->active) {
        dnssrv_udp_send_now(s, data, len, addr);
        return;
    }
    if (b->n == DNS_BATCH)
        dnssrv_batch_flush(s); /* a forged answer ahead of a reply can fill it */
    size_t off = b->data.len;
    if (sts_buf_append(&b->data, data, len) != 0) {
        dnssrv_udp_send_now(s, data, len, addr);
        return;
    }
    b->off[b->n] = off;
    b->len[b->n] = len;
    memcpy(&b->addr[b->n], addr, sockaddr_len(addr));
    b->n++;
}

/* TCP: each message with its two-octet length (RFC 1035 4.2.2). */
static int dns_tcp_send(sts_stream *st, const uint8_t *data, size_t len)
{
    uint8_t pfx[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    return sts_stream_write(st, pfx, 2) || sts_stream_write(st, data, len) ? -1 : 0;
}

/* The address a wrong_source forgery comes from when it is not the server's own:
 * the last octet of the server's IPv4 address set to 254 (253 when the server is
 * .254), so it stays in the world's /24 and outside the hosts' range. IPv6: none. */
static int spoof_other_addr(const struct sockaddr_storage *own, struct sockaddr_storage *out)
{
    if (own->ss_family != AF_INET)
        return -1;
    memcpy(out, own, sizeof(struct sockaddr_in));
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    uint32_t ip = ntohl(a->sin_addr.s_addr);
    ip = (ip & ~0xffu) | ((ip & 0xffu) == 254 ? 253u : 254u);
    a->sin_addr.s_addr = htonl(ip);
    return 0;
}

/* Make spoof socket k (see sts_dnssrv.spoof_fd) unless made or failed before. */
static int spoof_socket(sts_dnssrv *s, int k)
{
    if (s->spoof_fd[k] != -1)
        return s->spoof_fd[k];
    s->spoof_fd[k] = -2;
    uv_os_fd_t ufd;
    struct sockaddr_storage own, from;
    socklen_t olen = sizeof(own);
    if (uv_fileno((uv_handle_t *)&s->udp, &ufd) != 0 ||
        getsockname(ufd, (struct sockaddr *)&own, &olen) != 0) {
        sts_info(s->log, "dns: wrong_source: cannot read the server's own address");
        return -2;
    }
    socklen_t flen = sockaddr_len((struct sockaddr *)&own);
    if (k == 0) {
        from = own; /* the same address, port 0: the kernel picks another one */
        if (from.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&from)->sin6_port = 0;
        else
            ((struct sockaddr_in *)&from)->sin_port = 0;
    } else if (spoof_other_addr(&own, &from) != 0) {
        sts_info(s->log, "dns: wrong_source: no other address next to an IPv6 server; "
                         "forging from another port only");
        return -2;
    }
    int fd = socket(from.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&from, flen) != 0) {
        char a[INET6_ADDRSTRLEN] = "?";
        const void *ip = from.ss_family == AF_INET6
                             ? (const void *)&((struct sockaddr_in6 *)&from)->sin6_addr
                             : (const void *)&((struct sockaddr_in *)&from)->sin_addr;
        inet_ntop(from.ss_family, ip, a, sizeof(a));
        sts_info(s->log, "dns: wrong_source: cannot send from %s port %u: %s", a,
                 (unsigned)ntohs(((struct sockaddr_in *)&from)->sin_port), strerror(errno));
        if (fd >= 0)
            close(fd);
        return -2;
    }
    return s->spoof_fd[k] = fd;
}

/* wrong_source over UDP: the forgery (right ID, other data) from the server's
 * address on another port, then from another address on the server's port. A
 * client must take an answer only from the address and port it asked (RFC 5452
 * 9.1); a connected UDP socket lets the kernel drop both. */
static void dnssrv_udp_forge(sts_dnssrv *s, const uint8_t *spoof, size_t len,
                             const struct sockaddr *addr)
{
    socklen_t alen = sockaddr_len(addr);
    for (int k = 0; k < 2; k++) {
        int fd = spoof_socket(s, k);
        if (fd >= 0 && sendto(fd, spoof, len, MSG_DONTWAIT, addr, alen) < 0)
            sts_debug(s->log, "dns: wrong_source: forged answer not sent: %s", strerror(errno));
    }
}

/* Send what res says: the forged answers first (wrong_id, wrong_source), then the
 * answer. */
static void dnssrv_emit(sts_dnssrv *s, sts_stream *st, const struct sockaddr *addr, int spoof_kind,
                        const uint8_t *spoof, size_t spoof_len, const uint8_t *reply, size_t len)
{
    if (st) {
        if ((spoof_len && dns_tcp_send(st, spoof, spoof_len)) || dns_tcp_send(st, reply, len))
            sts_stream_close(st);
        return;
    }
    if (spoof_len && spoof_kind == STS_DNS_SPOOF_SOURCE)
        dnssrv_udp_forge(s, spoof, spoof_len, addr);
    else if (spoof_len)
        dnssrv_udp_send(s, spoof, spoof_len, addr);
    dnssrv_udp_send(s, reply, len, addr);
}

static void pending_unlink(dns_pending *p)
{
    p->prev->next = p->next;
    p->next->prev = p->prev;
}

static void pending_fire_cb(void *arg)
{
    dns_pending *p = arg;
    pending_unlink(p);
    dnssrv_emit(p->srv, p->st, (const struct sockaddr *)&p->addr, p->spoof, p->data, p->spoof_len,
                p->data + p->spoof_len, p->len);
    free(p);
}

/* Cancel the pending answers of one TCP session (tcp) or all of them (NULL). */
static void pending_cancel(sts_dnssrv *s, dns_tcp_sess *tcp)
{
    for (dns_pending *p = s->pending.next, *n; p != &s->pending; p = n) {
        n = p->next;
        if (tcp && p->tcp != tcp)
            continue;
        pending_unlink(p);
        sts_delay_cancel(p->delay);
        free(p);
    }
}

/* Deliver the answer in reply as res says: nothing (timeout), now, or later. */
static void dnssrv_deliver(sts_dnssrv *s, const sts_dns_result *res, const sts_buf *reply,
                           dns_tcp_sess *tcp, sts_stream *st, const struct sockaddr *addr)
{
    if (res->drop)
        return;
    size_t spoof_len = 0;
    if (res->spoof) {
        if (sts_dns_spoof((const uint8_t *)reply->data, reply->len,
                          res->spoof == STS_DNS_SPOOF_SOURCE, &s->spoof) == 0)
            spoof_len = s->spoof.len;
        else
            sts_info(s->log, "dns: cannot build the spoofed answer");
    }
    if (!(res->delay > 0)) {
        dnssrv_emit(s, st, addr, res->spoof, (const uint8_t *)s->spoof.data, spoof_len,
                    (const uint8_t *)reply->data, reply->len);
        return;
    }
    dns_pending *p = calloc(1, sizeof(*p) + spoof_len + reply->len);
    if (!p)
        return;
    p->srv = s;
    p->tcp = tcp;
    p->st = st;
    if (addr)
        memcpy(&p->addr, addr, addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                                            : sizeof(struct sockaddr_in));
    p->spoof = res->spoof;
    p->spoof_len = spoof_len;
    p->len = reply->len;
    if (spoof_len)
        memcpy(p->data, s->spoof.data, spoof_len);
    memcpy(p->data + spoof_len, reply->data, reply->len);
    p->delay = sts_delay_start(uv_handle_get_loop((uv_handle_t *)&s->udp), res->delay,
                               pending_fire_cb, p);
    if (!p->delay) {
        free(p);
        return;
    }
    p->next = s->pending.next;
    p->prev = &s->pending;
    s->pending.next->prev = p;
    s->pending.next = p;
}

static void dnssrv_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                           const struct sockaddr *addr, unsigned flags)
{
    sts_dnssrv *s = h->data;
    /* The datagrams of a recvmmsg batch come as UV_UDP_MMSG_CHUNK calls and their
     * replies wait; any other call (the batch's UV_UDP_MMSG_FREE, an empty read, a
     * single recvmsg) sends what waits first. */
    if (flags & UV_UDP_MMSG_CHUNK) {
        s->batch.active = 1;
    } else {
        dnssrv_batch_flush(s);
        s->batch.active = 0;
    }
    if (nread < 0) {
        sts_debug(s->log, "dns udp read error: %s", uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || !addr || (flags & UV_UDP_PARTIAL))
        return;
    sts_dns_result res;
    if (sts_dns_answer(s->zone, (const uint8_t *)buf->base, (size_t)nread, STS_DNS_UDP, &s->reply,
                       &res) != 0 ||
        !res.answered) {
        sts_debug(s->log, "dns udp: dropped a %zd-octet message", nread);
        return;
    }
    dnssrv_record(s, &res, 0);
    dnssrv_deliver(s, &res, &s->reply, NULL, NULL, addr);
}

static sts_tcpsrv_conn *dns_tcp_accept(sts_tcpsrv *t, sts_stream *stream)
{
    dns_tcp_sess *ss = calloc(1, sizeof(*ss));
    if (!ss)
        return NULL;
    ss->srv = sts_tcpsrv_arg(t);
    sts_buf_init(&ss->in, DNS_TCP_MAX);
    sts_buf_init(&ss->reply, 0);
    return &ss->conn;
}

static void dns_tcp_read(sts_stream *st, const char *data, size_t len)
{
    dns_tcp_sess *ss = (dns_tcp_sess *)sts_tcpsrv_conn_of(st);
    sts_dnssrv *s = ss->srv;
    if (sts_buf_append(&ss->in, data, len) != 0) {
        sts_stream_close(st);
        return;
    }
    /* RFC 1035 4.2.2 / RFC 7766 6.2.1: each message is prefixed by a two-octet length;
     * a client may send several queries on one connection, back to back. */
    for (;;) {
        sts_cur c;
        uint16_t n;
        sts_cur_init(&c, ss->in.data, ss->in.len);
        if (sts_cur_u16(&c, &n) || sts_cur_left(&c) < n)
            return;
        sts_dns_result res;
        if (sts_dns_answer(s->zone, c.p + c.off, n, STS_DNS_TCP, &ss->reply, &res) != 0 ||
            !res.answered) {
            sts_debug(s->log, "dns tcp: dropped a %u-octet message, closing", n);
            sts_stream_close(st);
            return;
        }
        dnssrv_record(s, &res, 1);
        sts_buf_consume(&ss->in, 2 + (size_t)n);
        dnssrv_deliver(s, &res, &ss->reply, ss, st, NULL);
    }
}

static void dns_tcp_eof(sts_stream *st, int status)
{
    /* Let replies still queued reach the client, then close. */
    sts_stream_shutdown(st);
}

static void dns_tcp_close(sts_tcpsrv_conn *conn)
{
    dns_tcp_sess *ss = (dns_tcp_sess *)conn;
    pending_cancel(ss->srv, ss);
    sts_buf_free(&ss->in);
    sts_buf_free(&ss->reply);
    free(ss);
}

static const sts_tcpsrv_ops dns_tcp_ops = {
    .on_accept = dns_tcp_accept,
    .on_read = dns_tcp_read,
    .on_tls = NULL,
    .on_eof = dns_tcp_eof,
    .on_close = dns_tcp_close,
};

static void dnssrv_maybe_done(sts_dnssrv *s)
{
    if (!s->udp_closed || !s->tcp_stopped)
        return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    sts_buf_free(&s->reply);
    sts_buf_free(&s->spoof);
    sts_buf_free(&s->batch.data);
    free(s->rbuf);
    for (int k = 0; k < 2; k++)
        if (s->spoof_fd[k] >= 0)
            close(s->spoof_fd[k]);
    free(s);
    if (done)
        done(arg);
}

static void dnssrv_udp_close_cb(uv_handle_t *h)
{
    sts_dnssrv *s = h->data;
    s->udp_closed = 1;
    dnssrv_maybe_done(s);
}

static void dnssrv_tcp_done(void *arg)
{
    sts_dnssrv *s = arg;
    s->tcp_stopped = 1;
    dnssrv_maybe_done(s);
}

int sts_dnssrv_start(uv_loop_t *loop, const sts_dns_zone *zone, int udp_fd, int tcp_fd,
                     sts_observer *obs, sts_log *log, sts_dnssrv **out)
{
    sts_dnssrv *s = calloc(1, sizeof(*s));
    if (!s) {
        close(udp_fd);
        close(tcp_fd);
        return STS_ENOMEM;
    }
    s->zone = zone;
    s->obs = obs;
    s->log = log;
    s->pending.next = s->pending.prev = &s->pending;
    s->spoof_fd[0] = s->spoof_fd[1] = -1;
    sts_buf_init(&s->reply, 0);
    sts_buf_init(&s->spoof, 0);
    sts_buf_init(&s->batch.data, 0);
    uv_udp_init_ex(loop, &s->udp, AF_UNSPEC | UV_UDP_RECVMMSG);
    s->udp.data = s;
    s->rbuf = malloc((size_t)DNS_BATCH * DNS_DGRAM_MAX);
    int rc = s->rbuf ? uv_udp_open(&s->udp, (uv_os_sock_t)udp_fd) : UV_ENOMEM;
    if (rc != 0)
        close(udp_fd);
    else
        rc = uv_udp_recv_start(&s->udp, dnssrv_alloc_cb, dnssrv_recv_cb);
    int trc = sts_tcpsrv_start(loop, tcp_fd, &dns_tcp_ops, s, "dns", &s->tcp);
    if (trc != 0)
        s->tcp_stopped = 1; /* sts_tcpsrv_start cleaned up after itself */
    if (rc != 0 || trc != 0) {
        sts_dnssrv_stop(s, NULL, NULL);
        return STS_EIO;
    }
    *out = s;
    return 0;
}

void sts_dnssrv_stop(sts_dnssrv *s, void (*done)(void *arg), void *arg)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    s->done = done;
    s->done_arg = arg;
    pending_cancel(s, NULL);
    dnssrv_batch_flush(s);
    s->batch.active = 0;
    uv_close((uv_handle_t *)&s->udp, dnssrv_udp_close_cb);
    if (!s->tcp_stopped)
        sts_tcpsrv_stop(s->tcp, dnssrv_tcp_done, s);
}

void sts_dnssrv_set_zone(sts_dnssrv *s, const sts_dns_zone *zone)
{
    s->zone = zone;
}
