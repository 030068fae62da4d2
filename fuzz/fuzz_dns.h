/*
 * fuzz_dns.h - what the two DNS fuzz targets (fuzz_dns_answer.c, fuzz_zone_lines.c)
 * share: fuzz_dns_check(), which answers one query through both paths of the world's
 * DNS server, sts_dns_answer (precomputed index) and sts_dns_answer_ref (ldns), and
 * aborts unless they agree and the reply is sound; and fuzz_dns_query(), which writes
 * a query in wire form.
 *
 * The properties of fuzz_dns_check, for any query bytes:
 *  - Both paths return 0 (STS_ENOMEM aside) and the same sts_dns_result (answered,
 *    rcode, aa, tc, ancount, nscount, authority_soa, fault, drop, spoof, delay, and the
 *    question: the same pointer into the query, length and type).
 *  - The question, when parsed, lies inside the query bytes.
 *  - Not answered, or dropped: an empty reply. Else a reply of at least 12 octets
 *    (RFC 1035 4.1.1) with the query's ID, QR set, and RCODE, TC, ANCOUNT and NSCOUNT
 *    as the result says; over UDP at most 512 octets when the query cannot carry EDNS
 *    (ARCOUNT 0), at most 4096 otherwise.
 *  - Both replies parse with ldns and say the same thing: header, EDNS fields and
 *    every section as lower-cased presentation text (only name compression and the
 *    case of names may differ, as tests/unit/test_dnssrv.c allows).
 *  - A reply with answers can be forged by sts_dns_spoof (the wrong_id and
 *    wrong_source faults do so) into a message ldns parses, with as many answers.
 */
#ifndef STS_FUZZ_DNS_H
#define STS_FUZZ_DNS_H

#include <ctype.h>
#include <ldns/ldns.h>
#include <string.h>

#include "common/err.h"
#include "fakedns/dnssrv.h"
#include "fuzz/fuzz.h"

/* The records of one section as lower-cased presentation lines (malloc'd). */
static inline char *fuzz_dns_section(const ldns_rr_list *l)
{
    size_t n = 0;
    char *all = calloc(1, 1);
    for (size_t i = 0; all && l && i < ldns_rr_list_rr_count(l); i++) {
        char *t = ldns_rr2str(ldns_rr_list_rr(l, i));
        if (!t)
            break;
        size_t tl = strlen(t);
        char *na = realloc(all, n + tl + 1);
        if (!na) {
            free(t);
            break;
        }
        all = na;
        for (size_t k = 0; k < tl; k++)
            all[n + k] = (char)tolower((unsigned char)t[k]);
        n += tl;
        all[n] = '\0';
        free(t);
    }
    return all;
}

static inline void fuzz_dns_same_reply(const sts_buf *a, const sts_buf *b)
{
    ldns_pkt *p = NULL, *r = NULL;
    FUZZ_CHECK(ldns_wire2pkt(&p, (const uint8_t *)a->data, a->len) == LDNS_STATUS_OK,
               "the reply (%zu octets) does not parse", a->len);
    FUZZ_CHECK(ldns_wire2pkt(&r, (const uint8_t *)b->data, b->len) == LDNS_STATUS_OK,
               "the reference reply (%zu octets) does not parse", b->len);
#define SAME(f) FUZZ_CHECK(f(p) == f(r), "%s: %ld vs reference %ld", #f, (long)f(p), (long)f(r))
    SAME(ldns_pkt_id);
    SAME(ldns_pkt_qr);
    SAME(ldns_pkt_get_opcode);
    SAME(ldns_pkt_aa);
    SAME(ldns_pkt_tc);
    SAME(ldns_pkt_rd);
    SAME(ldns_pkt_cd);
    SAME(ldns_pkt_ra);
    SAME(ldns_pkt_ad);
    SAME(ldns_pkt_get_rcode);
    SAME(ldns_pkt_qdcount);
    SAME(ldns_pkt_ancount);
    SAME(ldns_pkt_nscount);
    SAME(ldns_pkt_arcount);
    SAME(ldns_pkt_edns);
    SAME(ldns_pkt_edns_udp_size);
    SAME(ldns_pkt_edns_version);
    SAME(ldns_pkt_edns_do);
    SAME(ldns_pkt_edns_extended_rcode);
    SAME(ldns_pkt_edns_z);
#undef SAME
    ldns_rr_list *(*secs[4])(const ldns_pkt *) = {ldns_pkt_question, ldns_pkt_answer,
                                                  ldns_pkt_authority, ldns_pkt_additional};
    for (int k = 0; k < 4; k++) {
        char *x = fuzz_dns_section(secs[k](p)), *y = fuzz_dns_section(secs[k](r));
        if (x && y)
            FUZZ_CHECK(!strcmp(x, y), "section %d differs:\n%s--- reference:\n%s", k, x, y);
        free(x);
        free(y);
    }
    ldns_pkt_free(p);
    ldns_pkt_free(r);
}

static inline unsigned fuzz_dns_u16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

/* One query through both paths; see the file comment. */
static inline void fuzz_dns_check(const sts_dns_zone *z, const uint8_t *q, size_t len,
                                  sts_dns_transport tr)
{
    sts_buf a, b;
    sts_buf_init(&a, 0);
    sts_buf_init(&b, 0);
    sts_dns_result ra, rb;
    memset(&ra, 0, sizeof(ra));
    memset(&rb, 0, sizeof(rb));
    int rca = sts_dns_answer(z, q, len, tr, &a, &ra);
    int rcb = sts_dns_answer_ref(z, q, len, tr, &b, &rb);
    FUZZ_CHECK(rca == 0 || rca == STS_ENOMEM, "answer rc %d", rca);
    FUZZ_CHECK(rcb == 0 || rcb == STS_ENOMEM, "reference rc %d", rcb);
    if (rca || rcb)
        goto out;
#define SAME(f) FUZZ_CHECK(ra.f == rb.f, "%s: %ld vs reference %ld", #f, (long)ra.f, (long)rb.f)
    SAME(answered);
    SAME(rcode);
    SAME(aa);
    SAME(tc);
    SAME(ancount);
    SAME(nscount);
    SAME(authority_soa);
    SAME(fault);
    SAME(drop);
    SAME(spoof);
    SAME(qname_len);
    SAME(qtype);
#undef SAME
    FUZZ_CHECK(ra.delay == rb.delay, "delay %g vs reference %g", ra.delay, rb.delay);
    FUZZ_CHECK(ra.qname == rb.qname, "question at %p vs reference %p", (const void *)ra.qname,
               (const void *)rb.qname);
    if (ra.qname)
        FUZZ_CHECK(ra.qname >= q && ra.qname_len <= len &&
                       ra.qname - q <= (long)(len - ra.qname_len),
                   "question outside the query");
    if (!ra.answered || ra.drop) {
        FUZZ_CHECK(a.len == 0 && b.len == 0, "nothing to send, yet %zu / %zu octets", a.len, b.len);
        goto out;
    }
    FUZZ_CHECK(ra.rcode >= 0 && (ra.rcode <= 15 || ra.rcode == STS_DNS_BADVERS), "rcode %d",
               ra.rcode);
    const uint8_t *h = (const uint8_t *)a.data;
    FUZZ_CHECK(a.len >= 12 && len >= 2, "reply of %zu octets", a.len);
    FUZZ_CHECK(h[0] == q[0] && h[1] == q[1], "reply ID differs from the query's");
    FUZZ_CHECK(h[2] & 0x80, "QR not set");
    FUZZ_CHECK((h[3] & 0x0f) == (ra.rcode & 0x0f), "header RCODE %d, result %d", h[3] & 0x0f,
               ra.rcode);
    FUZZ_CHECK(!!(h[2] & 0x02) == !!ra.tc, "header TC %d, result %d", !!(h[2] & 0x02), ra.tc);
    FUZZ_CHECK(fuzz_dns_u16(h + 6) == (unsigned)ra.ancount, "ANCOUNT %u, result %d",
               fuzz_dns_u16(h + 6), ra.ancount);
    FUZZ_CHECK(fuzz_dns_u16(h + 8) == (unsigned)ra.nscount, "NSCOUNT %u, result %d",
               fuzz_dns_u16(h + 8), ra.nscount);
    if (tr == STS_DNS_UDP) {
        size_t cap = len >= 12 && fuzz_dns_u16(q + 10) == 0 ? 512 : 4096;
        FUZZ_CHECK(a.len <= cap && b.len <= cap, "UDP reply of %zu / %zu octets (cap %zu)", a.len,
                   b.len, cap);
    }
    fuzz_dns_same_reply(&a, &b);
    if (ra.ancount > 0) {
        sts_buf s;
        sts_buf_init(&s, 0);
        int src = sts_dns_spoof((const uint8_t *)a.data, a.len, 0, &s);
        FUZZ_CHECK(src == 0 || src == STS_ENOMEM, "spoof rc %d", src);
        if (src == 0) {
            ldns_pkt *p = NULL;
            FUZZ_CHECK(ldns_wire2pkt(&p, (const uint8_t *)s.data, s.len) == LDNS_STATUS_OK,
                       "the forged reply does not parse");
            FUZZ_CHECK(ldns_pkt_ancount(p) == (size_t)ra.ancount, "forged reply: %zu answers",
                       (size_t)ldns_pkt_ancount(p));
            ldns_pkt_free(p);
        }
        sts_buf_free(&s);
    }
out:
    sts_buf_free(&a);
    sts_buf_free(&b);
}

/* A query for the presentation name `name` (absolute, no trailing dot needed) and type
 * into q (cap octets), RD set, ID 0x4242, with an OPT record advertising edns octets
 * when edns > 0. Returns its length, 0 when the name cannot be written. */
static inline size_t fuzz_dns_query(const char *name, uint16_t type, int edns, uint8_t *q,
                                    size_t cap)
{
    if (cap < 12 + 256 + 4 + 11)
        return 0;
    size_t o = 0;
    static const uint8_t hdr[12] = {0x42, 0x42, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0};
    memcpy(q, hdr, 12);
    q[11] = edns > 0;
    o = 12;
    size_t total = 0;
    const char *s = name;
    while (*s) {
        const char *dot = strchr(s, '.');
        size_t n = dot ? (size_t)(dot - s) : strlen(s);
        if (n == 0 || n > 63 || (total += n + 1) > 254)
            return 0;
        q[o++] = (uint8_t)n;
        memcpy(q + o, s, n);
        o += n;
        s += n + (dot ? 1 : 0);
    }
    q[o++] = 0;
    q[o++] = (uint8_t)(type >> 8);
    q[o++] = (uint8_t)type;
    q[o++] = 0;
    q[o++] = 1; /* IN */
    if (edns > 0) {
        const uint8_t opt[11] = {0, 0, 41, (uint8_t)(edns >> 8), (uint8_t)edns, 0, 0, 0, 0, 0, 0};
        memcpy(q + o, opt, sizeof(opt));
        o += sizeof(opt);
    }
    return o;
}

#endif
