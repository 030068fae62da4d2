/*
 * dnssrv.c - the world's authoritative DNS server (see dnssrv.h): the zone, the
 * pure answer function, and the UDP + TCP server around it. Functions return 0 or
 * a negative STS_* code unless dnssrv.h says otherwise.
 */
#include "fakedns/dnssrv.h"
#include "common/err.h"
#include "common/scenario.h"
#include "fakedns/tcpsrv.h"

#include <ctype.h>
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
};

static void set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
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
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    z->rrs = ldns_rr_list_new();
    if (ldns_str2rdf_dname(&z->origin, domain) != LDNS_STATUS_OK || !z->rrs) {
        set_err(err, errlen, "invalid domain name '%s'", domain);
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
        set_err(err, errlen,
                "%s:%d: a quoted string of %zu octets: a TXT character-string is at most 255 "
                "octets (RFC 1035 3.3.14); split it into several quoted strings",
                where, lineno, longest);
        return STS_ESYNTAX;
    }
    if (st != LDNS_STATUS_OK) {
        set_err(err, errlen, "%s:%d: bad zone line '%s': %s", where, lineno, line,
                ldns_get_errorstr_by_id(st));
        return STS_ESYNTAX;
    }
    char owner[256];
    dname_text(ldns_rr_owner(rr), owner, sizeof(owner));
    int rc = STS_ESYNTAX;
    if (ldns_rr_get_class(rr) != LDNS_RR_CLASS_IN) {
        set_err(err, errlen, "%s:%d: only class IN is served ('%s')", where, lineno, line);
    } else if (!dname_under(ldns_rr_owner(rr), z->origin)) {
        char dom[256];
        dname_text(z->origin, dom, sizeof(dom));
        set_err(err, errlen, "%s:%d: owner %s lies outside the domain %s", where, lineno, owner,
                dom);
    } else if (ldns_rr_get_type(rr) == LDNS_RR_TYPE_OPT) {
        set_err(err, errlen, "%s:%d: OPT is not a zone record", where, lineno);
    } else {
        ldns_dname2canonical(ldns_rr_owner(rr));
        if (zone_cname_conflict(z, rr)) {
            set_err(err, errlen, "%s:%d: %s has a CNAME and other data (RFC 1034 3.6.2 forbids it)",
                    where, lineno, owner);
        } else if (!ldns_rr_list_push_rr(z->rrs, rr)) {
            set_err(err, errlen, "out of memory");
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
    for (const char *p = text; p && *p && rc == 0; lineno++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char *line = strndup(p, n);
        if (!line) {
            set_err(err, errlen, "out of memory");
            rc = STS_ENOMEM;
            break;
        }
        n = strlen(line); /* a NUL octet (a YAML "\0") ends the line early */
        if (n && line[n - 1] == '\r')
            line[n - 1] = '\0';
        const char *s = line + strspn(line, " \t");
        if (*s == '$') {
            set_err(err, errlen, "%s:%d: zone directives such as %s are not supported", where,
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
        set_err(err, errlen, "%s:%d: more than %d dns faults", where, line, DNS_MAX_FAULTS);
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
        set_err(err, errlen, "%s:%d: '%s' is not a domain name", where, line, name);
        return STS_ESYNTAX;
    }
    ldns_dname2canonical(d);
    int any = !strcasecmp(type, "ANY");
    ldns_rr_type t = any ? LDNS_RR_TYPE_ANY : ldns_get_rr_type_by_name(type);
    if (!any && t == 0) {
        ldns_rdf_deep_free(d);
        set_err(err, errlen, "%s:%d: '%s' is not a record type", where, line, type);
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
    return 0;
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

int sts_dns_answer(const sts_dns_zone *z, const uint8_t *msg, size_t len,
                   sts_dns_transport transport, sts_buf *out, sts_dns_result *res)
{
    memset(res, 0, sizeof(*res));
    sts_buf_reset(out);
    struct dns_query q;
    memset(&q, 0, sizeof(q));
    sts_cur c;
    sts_cur_init(&c, msg, len);
    uint16_t flags, qd, an, ns, ar;
    /* RFC 1035 4.1.1. Checked in this order (after NSD's query_process): a message
     * shorter than a header, or a response, gets no reply at all (answering responses
     * invites loops); then opcode, flags and counts; then the question; then EDNS. */
    if (sts_cur_u16(&c, &q.id) || sts_cur_u16(&c, &flags) || sts_cur_u16(&c, &qd) ||
        sts_cur_u16(&c, &an) || sts_cur_u16(&c, &ns) || sts_cur_u16(&c, &ar))
        return 0;
    if (flags & 0x8000)
        return 0;
    q.opcode = (flags >> 11) & 0x0F;
    q.rd = (flags >> 8) & 1;
    q.cd = (flags >> 4) & 1;
    res->answered = 1;

    int rcode = RC_NOERROR;
    if (q.opcode != LDNS_PACKET_QUERY)
        rcode = RC_NOTIMP;
    else if ((flags & 0x0200) || qd != 1 || an != 0 || ns != 0 || ar > 1)
        rcode = RC_FORMERR; /* TC in a query, or sections a query cannot have */
    else if (parse_qname(&c, &q) || sts_cur_u16(&c, &q.qtype) || sts_cur_u16(&c, &q.qclass))
        rcode = RC_FORMERR;
    else {
        q.have_question = 1;
        if (ar == 1 && parse_opt(&c, &q))
            rcode = RC_FORMERR; /* only an OPT may follow, once (RFC 6891 6.1.1) */
        else if (sts_cur_left(&c) != 0)
            rcode = RC_FORMERR; /* trailing garbage */
        else if (q.edns && q.edns_version != 0)
            rcode = STS_DNS_BADVERS; /* RFC 6891 6.1.3 */
        else if (q.qclass != LDNS_RR_CLASS_IN)
            rcode = RC_NOTIMP;
        else if (q.qtype == LDNS_RR_TYPE_OPT)
            rcode = RC_FORMERR; /* OPT is a pseudo-RR, never a question (RFC 6891 6.1.1) */
        else if (q.qtype == LDNS_RR_TYPE_AXFR || q.qtype == LDNS_RR_TYPE_IXFR ||
                 q.qtype == LDNS_RR_TYPE_MAILA || q.qtype == LDNS_RR_TYPE_MAILB)
            rcode = RC_NOTIMP;
    }

    ldns_rdf *qname = NULL;
    if (q.have_question) {
        qname = ldns_dname_new_frm_data((uint16_t)q.qname_len, q.qname);
        if (!qname)
            return STS_ENOMEM;
        dname_text(qname, res->qname, sizeof(res->qname));
        char *t = ldns_rr_type2str((ldns_rr_type)q.qtype);
        snprintf(res->qtype, sizeof(res->qtype), "%s", t ? t : "?");
        free(t);
    }

    ldns_rr_list *anl = ldns_rr_list_new(), *nsl = ldns_rr_list_new();
    int aa = 0, rc = STS_ENOMEM;
    res->fault = -1;
    if (!anl || !nsl)
        goto out;
    int fi = rcode == RC_NOERROR ? zone_fault(z, qname, q.qtype) : -1;
    size_t limit = 65535;
    if (transport == STS_DNS_UDP) {
        /* RFC 1035 4.2.1: 512 octets over UDP; RFC 6891 6.2.5: the advertised size,
         * values below 512 counting as 512. */
        limit = 512;
        if (q.edns && q.udp_size > 512)
            limit = q.udp_size;
    }
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
            res->spoof = 1;
            break;
        default:
            break;
        }
    }
    if (rcode == RC_NOERROR)
        rcode = zone_lookup(z, qname, (ldns_rr_type)q.qtype, anl, nsl, &aa);
    res->rcode = rcode;
    res->aa = aa;
    res->authority_soa = ldns_rr_list_rr_count(nsl) > 0;

    if (res->drop) {
        rc = 0; /* timeout: nothing goes out */
        goto out;
    }
    ldns_pkt *p = reply_pkt(&q, rcode, aa, 0, anl, nsl);
    if (p) {
        rc = reply_wire(p, &q, rcode, aa, limit, out, res);
        ldns_pkt_free(p);
    }
out:
    /* The lists borrow the zone's records: free only the lists. */
    ldns_rr_list_free(anl);
    ldns_rr_list_free(nsl);
    ldns_rdf_deep_free(qname);
    return rc;
}

int sts_dns_spoof(const uint8_t *reply, size_t len, sts_buf *out)
{
    ldns_pkt *p = NULL;
    if (ldns_wire2pkt(&p, reply, len) != LDNS_STATUS_OK)
        return STS_EINVAL;
    if (!ldns_pkt_qr(p)) {
        ldns_pkt_free(p);
        return STS_EINVAL;
    }
    /* Any other ID: a client that matches IDs (RFC 5452 4.3) drops this one. */
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
    size_t spoof_len, len; /* data = spoofed answer (spoof_len), then the answer */
    uint8_t data[];
} dns_pending;

struct sts_dnssrv {
    uv_udp_t udp; /* embedded; the server is freed once it and the TCP side closed */
    const sts_dns_zone *zone;
    dns_pending pending; /* list head */
    sts_buf spoof;
    sts_tcpsrv *tcp;
    sts_observer *obs;
    sts_log *log;
    sts_buf reply;
    int udp_closed, tcp_stopped, stopping;
    void (*done)(void *);
    void *done_arg;
    char rbuf[65536];
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

static void dnssrv_record(sts_dnssrv *s, const sts_dns_result *res, const char *transport)
{
    const char *fault = sts_scn_dns_fault_name(res->fault);
    sts_debug(s->log, "dns %s %s %s -> %s%s%s an=%d%s%s", transport,
              res->qname[0] ? res->qname : "-", res->qtype[0] ? res->qtype : "-",
              res->drop ? "(no answer)" : sts_dns_rcode_name(res->rcode), res->aa ? " aa" : "",
              res->tc ? " tc" : "", res->ancount, fault ? " fault=" : "", fault ? fault : "");
    sts_observer_dns_fault(s->obs, res->qname[0] ? res->qname : NULL,
                           res->qtype[0] ? res->qtype : "-", transport,
                           res->drop ? "none" : sts_dns_rcode_name(res->rcode), fault);
}

static void dnssrv_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sts_dnssrv *s = h->data;
    buf->base = s->rbuf;
    buf->len = sizeof(s->rbuf);
}

static void dnssrv_send_cb(uv_udp_send_t *req, int status)
{
    free(req->data);
}

static void dnssrv_udp_send(sts_dnssrv *s, const void *data, size_t len,
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

/* TCP: each message with its two-octet length (RFC 1035 4.2.2). */
static int dns_tcp_send(sts_stream *st, const uint8_t *data, size_t len)
{
    uint8_t pfx[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    return sts_stream_write(st, pfx, 2) || sts_stream_write(st, data, len) ? -1 : 0;
}

/* Send what res says: the spoofed answer first (wrong_id), then the answer. */
static void dnssrv_emit(sts_dnssrv *s, sts_stream *st, const struct sockaddr *addr,
                        const uint8_t *spoof, size_t spoof_len, const uint8_t *reply, size_t len)
{
    if (st) {
        if ((spoof_len && dns_tcp_send(st, spoof, spoof_len)) || dns_tcp_send(st, reply, len))
            sts_stream_close(st);
        return;
    }
    if (spoof_len)
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
    dnssrv_emit(p->srv, p->st, (const struct sockaddr *)&p->addr, p->data, p->spoof_len,
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
        if (sts_dns_spoof((const uint8_t *)reply->data, reply->len, &s->spoof) == 0)
            spoof_len = s->spoof.len;
        else
            sts_info(s->log, "dns: cannot build the spoofed answer");
    }
    if (!(res->delay > 0)) {
        dnssrv_emit(s, st, addr, (const uint8_t *)s->spoof.data, spoof_len,
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
    dnssrv_record(s, &res, "udp");
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
        dnssrv_record(s, &res, "tcp");
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
    sts_buf_init(&s->reply, 0);
    sts_buf_init(&s->spoof, 0);
    uv_udp_init(loop, &s->udp);
    s->udp.data = s;
    int rc = uv_udp_open(&s->udp, (uv_os_sock_t)udp_fd);
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
    uv_close((uv_handle_t *)&s->udp, dnssrv_udp_close_cb);
    if (!s->tcp_stopped)
        sts_tcpsrv_stop(s->tcp, dnssrv_tcp_done, s);
}

void sts_dnssrv_set_zone(sts_dnssrv *s, const sts_dns_zone *zone)
{
    s->zone = zone;
}
