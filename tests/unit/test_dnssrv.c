/*
 * test_dnssrv.c - the world's DNS answer function, without sockets: a table of
 * queries (well-formed and malformed) against one zone, each checked for rcode,
 * flags, section counts and the SOA in the authority section; plus zone-building
 * errors and the helpers the world uses to assign addresses.
 */
#include <ctype.h>
#include <setjmp.h>
#include <stdlib.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <ldns/ldns.h>

#include "common/err.h"
#include "common/scenario.h"
#include "fakedns/dnssrv.h"
#include "tests/unit/dns_zone_fixture.h"

static const char *zone_text = STS_TEST_ZONE_TEXT;

static sts_dns_zone *make_zone(void)
{
    char err[256] = "";
    sts_dns_zone *z = sts_dns_zone_new("example.test", err, sizeof(err));
    assert_non_null(z);
    assert_int_equal(sts_dns_zone_add_lines(z, zone_text, "t.yaml", 5, err, sizeof(err)), 0);
    /* 20 TXT records of ~100 octets: over 512 octets, under 4096. */
    char line[256];
    for (int i = 0; i < 20; i++) {
        snprintf(line, sizeof(line), "big TXT \"%02d%s\"", i,
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxx");
        assert_int_equal(sts_dns_zone_add_lines(z, line, "t.yaml", 100 + i, err, sizeof(err)), 0);
    }
    assert_int_equal(sts_dns_zone_add_a(z, "mail.example.test", "127.1.2.10"), 0);
    assert_int_equal(sts_dns_zone_add_a(z, "mx.provider.test", "127.1.2.12"), 0);
    assert_int_equal(sts_dns_zone_finish(z), 0);
    return z;
}

enum mutation {
    M_NONE,
    M_SHORT,      /* 5 octets */
    M_QR,         /* a response */
    M_OPCODE,     /* opcode STATUS */
    M_QD2,        /* qdcount 2 */
    M_CUT,        /* question cut short */
    M_POINTER,    /* compression pointer in the question */
    M_TRAILING,   /* garbage after the question */
    M_TC,         /* TC set in the query */
    M_TWO_OPT,    /* two OPT records */
    M_LONG_LABEL, /* label length 64 */
    M_ANCOUNT,    /* an answer in a query */
};

struct qcase {
    const char *what;
    const char *qname;
    uint16_t qtype;
    uint16_t qclass; /* 0 = IN */
    int edns;        /* 0 = none, else the advertised UDP size */
    int edns_version;
    sts_dns_transport transport;
    enum mutation mut;
    /* expected */
    int answered;
    int rcode;
    int aa, tc;
    int ancount;
    int soa;         /* authority holds the SOA */
    int txt_strings; /* >0: the first answer is a TXT with this many strings */
};

static const struct qcase cases[] = {
    {"A of an auto host", "mail.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0,
     1, 0, 1, 0, 0},
    {"case-insensitive name", "MAIL.Example.TEST", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 1,
     0, 1, 0, 1, 0, 0},
    {"MX at the apex", "example.test", LDNS_RR_TYPE_MX, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0, 1, 0, 2,
     0, 0},
    {"MX over TCP", "example.test", LDNS_RR_TYPE_MX, 0, 0, 0, STS_DNS_TCP, M_NONE, 1, 0, 1, 0, 2, 0,
     0},
    {"TXT multi-string kept", "_mta-sts.example.test", LDNS_RR_TYPE_TXT, 0, 0, 0, STS_DNS_UDP,
     M_NONE, 1, 0, 1, 0, 1, 0, 2},
    {"two TXT records", "multi.example.test", LDNS_RR_TYPE_TXT, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0,
     1, 0, 2, 0, 3},
    {"CNAME chain followed", "www.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0,
     1, 0, 3, 0, 0},
    {"CNAME asked for", "www.example.test", LDNS_RR_TYPE_CNAME, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0,
     1, 0, 1, 0, 0},
    {"CNAME chain ends in NODATA", "www.example.test", LDNS_RR_TYPE_AAAA, 0, 0, 0, STS_DNS_UDP,
     M_NONE, 1, 0, 1, 0, 2, 1, 0},
    {"CNAME loop stops", "loop1.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0,
     1, 0, 2, 0, 0},
    {"CNAME out of zone", "ext.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0, 1,
     0, 1, 0, 0},
    {"NXDOMAIN carries SOA", "nope.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 1,
     3, 1, 0, 0, 1, 0},
    {"NXDOMAIN below a leaf", "x.mail.example.test", LDNS_RR_TYPE_TXT, 0, 0, 0, STS_DNS_UDP, M_NONE,
     1, 3, 1, 0, 0, 1, 0},
    {"NODATA carries SOA", "mail.example.test", LDNS_RR_TYPE_AAAA, 0, 0, 0, STS_DNS_UDP, M_NONE, 1,
     0, 1, 0, 0, 1, 0},
    {"empty non-terminal is NODATA", "b.c.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP,
     M_NONE, 1, 0, 1, 0, 0, 1, 0},
    {"explicit AAAA", "v6.example.test", LDNS_RR_TYPE_AAAA, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0, 1,
     0, 1, 0, 0},
    {"synthesized SOA", "example.test", LDNS_RR_TYPE_SOA, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0, 1, 0,
     1, 0, 0},
    {"synthesized NS", "example.test", LDNS_RR_TYPE_NS, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0, 1, 0, 1,
     0, 0},
    {"ANY", "mail.example.test", LDNS_RR_TYPE_ANY, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 0, 1, 0, 1, 0,
     0},
    {"out-of-domain host apex", "mx.provider.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 1,
     0, 1, 0, 1, 0, 0},
    {"out-of-domain host NODATA", "mx.provider.test", LDNS_RR_TYPE_MX, 0, 0, 0, STS_DNS_UDP, M_NONE,
     1, 0, 1, 0, 0, 1, 0},
    {"out of zone REFUSED", "example.org", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 5, 0, 0,
     0, 0, 0},
    {"parent of zone REFUSED", "test", LDNS_RR_TYPE_NS, 0, 0, 0, STS_DNS_UDP, M_NONE, 1, 5, 0, 0, 0,
     0, 0},
    {"big over UDP truncated", "big.example.test", LDNS_RR_TYPE_TXT, 0, 0, 0, STS_DNS_UDP, M_NONE,
     1, 0, 1, 1, 0, 0, 0},
    {"big, EDNS 4096 fits", "big.example.test", LDNS_RR_TYPE_TXT, 0, 4096, 0, STS_DNS_UDP, M_NONE,
     1, 0, 1, 0, 20, 0, 0},
    {"big, EDNS 300 counts as 512", "big.example.test", LDNS_RR_TYPE_TXT, 0, 300, 0, STS_DNS_UDP,
     M_NONE, 1, 0, 1, 1, 0, 0, 0},
    {"big over TCP whole", "big.example.test", LDNS_RR_TYPE_TXT, 0, 0, 0, STS_DNS_TCP, M_NONE, 1, 0,
     1, 0, 20, 0, 0},
    {"EDNS version 1 BADVERS", "mail.example.test", LDNS_RR_TYPE_A, 0, 1232, 1, STS_DNS_UDP, M_NONE,
     1, STS_DNS_BADVERS, 0, 0, 0, 0, 0},
    {"class CH NOTIMP", "mail.example.test", LDNS_RR_TYPE_A, LDNS_RR_CLASS_CH, 0, 0, STS_DNS_UDP,
     M_NONE, 1, 4, 0, 0, 0, 0, 0},
    {"AXFR NOTIMP", "example.test", LDNS_RR_TYPE_AXFR, 0, 0, 0, STS_DNS_TCP, M_NONE, 1, 4, 0, 0, 0,
     0, 0},
    {"OPT as question FORMERR", "example.test", LDNS_RR_TYPE_OPT, 0, 0, 0, STS_DNS_UDP, M_NONE, 1,
     1, 0, 0, 0, 0, 0},
    {"too short: dropped", "example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_SHORT, 0, 0, 0,
     0, 0, 0, 0},
    {"a response: dropped", "example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_QR, 0, 0, 0, 0,
     0, 0, 0},
    {"opcode STATUS NOTIMP", "example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_OPCODE, 1, 4,
     0, 0, 0, 0, 0},
    {"two questions FORMERR", "example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_QD2, 1, 1, 0,
     0, 0, 0, 0},
    {"an answer in a query FORMERR", "example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP,
     M_ANCOUNT, 1, 1, 0, 0, 0, 0, 0},
    {"question cut short FORMERR", "example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_CUT, 1,
     1, 0, 0, 0, 0, 0},
    {"compression pointer FORMERR", "example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_POINTER,
     1, 1, 0, 0, 0, 0, 0},
    {"label of 64 FORMERR", "example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_LONG_LABEL, 1,
     1, 0, 0, 0, 0, 0},
    {"trailing octets FORMERR", "example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_TRAILING, 1,
     1, 0, 0, 0, 0, 0},
    {"TC in query FORMERR", "example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_TC, 1, 1, 0, 0,
     0, 0, 0},
    {"two OPT FORMERR", "example.test", LDNS_RR_TYPE_A, 0, 1232, 0, STS_DNS_UDP, M_TWO_OPT, 1, 1, 0,
     0, 0, 0, 0},
};

static size_t put16(uint8_t *p, size_t o, uint16_t v)
{
    p[o] = (uint8_t)(v >> 8);
    p[o + 1] = (uint8_t)v;
    return o + 2;
}

static size_t put_opt(uint8_t *p, size_t o, int size, int version)
{
    p[o++] = 0;
    o = put16(p, o, LDNS_RR_TYPE_OPT);
    o = put16(p, o, (uint16_t)size);
    p[o++] = 0;
    p[o++] = (uint8_t)version;
    o = put16(p, o, 0);
    return put16(p, o, 0);
}

/* Build the query of c into p; returns its length. */
static size_t build_query(const struct qcase *c, uint8_t *p)
{
    size_t o = 0;
    uint16_t flags = 0x0100; /* RD */
    if (c->mut == M_QR)
        flags |= 0x8000;
    if (c->mut == M_OPCODE)
        flags |= 2 << 11;
    if (c->mut == M_TC)
        flags |= 0x0200;
    o = put16(p, o, 0x1234);
    o = put16(p, o, flags);
    o = put16(p, o, c->mut == M_QD2 ? 2 : 1);
    o = put16(p, o, c->mut == M_ANCOUNT ? 1 : 0);
    o = put16(p, o, 0);
    o = put16(p, o, c->mut == M_TWO_OPT ? 2 : c->edns ? 1 : 0);
    if (c->mut == M_POINTER) {
        p[o++] = 0xC0;
        p[o++] = 0x0C;
    } else if (c->mut == M_LONG_LABEL) {
        p[o++] = 64;
        memset(p + o, 'a', 64);
        o += 64;
        p[o++] = 0;
    } else {
        const char *s = c->qname;
        while (*s) {
            const char *dot = strchr(s, '.');
            size_t n = dot ? (size_t)(dot - s) : strlen(s);
            p[o++] = (uint8_t)n;
            memcpy(p + o, s, n);
            o += n;
            s += n + (dot ? 1 : 0);
        }
        p[o++] = 0;
    }
    o = put16(p, o, c->qtype);
    o = put16(p, o, c->qclass ? c->qclass : LDNS_RR_CLASS_IN);
    if (c->edns)
        o = put_opt(p, o, c->edns, c->edns_version);
    if (c->mut == M_TWO_OPT)
        o = put_opt(p, o, c->edns, 0);
    if (c->mut == M_TRAILING)
        p[o++] = 0x42;
    if (c->mut == M_CUT)
        o -= 3;
    if (c->mut == M_SHORT)
        o = 5;
    return o;
}

static void test_answers(void **state)
{
    sts_dns_zone *z = make_zone();
    sts_buf out;
    sts_buf_init(&out, 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct qcase *c = &cases[i];
        uint8_t q[512];
        size_t len = build_query(c, q);
        sts_dns_result res;
        print_message("case: %s\n", c->what);
        assert_int_equal(sts_dns_answer(z, q, len, c->transport, &out, &res), 0);
        assert_int_equal(res.answered, c->answered);
        if (!c->answered)
            continue;
        assert_int_equal(res.rcode, c->rcode);
        assert_int_equal(res.aa, c->aa);
        assert_int_equal(res.tc, c->tc);
        assert_int_equal(res.ancount, c->ancount);
        assert_int_equal(res.authority_soa, c->soa);
        if (c->transport == STS_DNS_UDP)
            assert_true(out.len <= (size_t)(c->edns > 512 ? c->edns : 512));
        /* The reply itself must be well-formed and say the same. */
        ldns_pkt *p = NULL;
        assert_int_equal(ldns_wire2pkt(&p, (const uint8_t *)out.data, out.len), LDNS_STATUS_OK);
        assert_int_equal(ldns_pkt_id(p), 0x1234);
        assert_true(ldns_pkt_qr(p));
        assert_true(ldns_pkt_rd(p));
        assert_int_equal(ldns_pkt_get_rcode(p), c->rcode & 0x0F);
        assert_int_equal(ldns_pkt_aa(p), c->aa);
        assert_int_equal(ldns_pkt_tc(p), c->tc);
        assert_int_equal(ldns_pkt_ancount(p), c->ancount);
        if (c->rcode == STS_DNS_BADVERS) {
            assert_true(ldns_pkt_edns(p));
            assert_int_equal(ldns_pkt_edns_extended_rcode(p), 1);
        }
        if (c->edns && c->mut == M_NONE)
            assert_true(ldns_pkt_edns(p)); /* OPT echoed */
        if (!c->edns)
            assert_false(ldns_pkt_edns(p));
        if (c->soa) {
            assert_int_equal(ldns_pkt_nscount(p), 1);
            assert_int_equal(ldns_rr_get_type(ldns_rr_list_rr(ldns_pkt_authority(p), 0)),
                             LDNS_RR_TYPE_SOA);
        }
        if (c->mut == M_NONE)
            assert_int_equal(ldns_pkt_qdcount(p), 1); /* question echoed */
        if (c->txt_strings) {
            ldns_rr *rr = ldns_rr_list_rr(ldns_pkt_answer(p), 0);
            assert_int_equal(ldns_rr_get_type(rr), LDNS_RR_TYPE_TXT);
            assert_int_equal(ldns_rr_rd_count(rr), (size_t)c->txt_strings);
        }
        ldns_pkt_free(p);
    }
    sts_buf_free(&out);
    sts_dns_zone_free(z);
}

static void test_result_names(void **state)
{
    sts_dns_zone *z = make_zone();
    sts_buf out;
    sts_buf_init(&out, 0);
    const struct qcase c = {"",
                            "_MTA-STS.example.test",
                            LDNS_RR_TYPE_TXT,
                            0,
                            0,
                            0,
                            STS_DNS_UDP,
                            M_NONE,
                            1,
                            0,
                            1,
                            0,
                            1,
                            0,
                            0};
    uint8_t q[512];
    size_t len = build_query(&c, q);
    sts_dns_result res;
    assert_int_equal(sts_dns_answer(z, q, len, STS_DNS_UDP, &out, &res), 0);
    char name[256], type[24];
    assert_non_null(res.qname);
    sts_dns_name_text(res.qname, res.qname_len, name, sizeof(name));
    sts_dns_type_text(res.qtype, type, sizeof(type));
    assert_string_equal(name, "_mta-sts.example.test");
    assert_string_equal(type, "TXT");
    assert_string_equal(sts_dns_rcode_name(res.rcode), "NOERROR");
    assert_string_equal(sts_dns_rcode_name(3), "NXDOMAIN");
    assert_string_equal(sts_dns_rcode_name(STS_DNS_BADVERS), "BADVERS");
    sts_buf_free(&out);
    sts_dns_zone_free(z);
}

struct zerr {
    const char *text;
    const char *want; /* substring of the message */
};

static const struct zerr zone_errors[] = {
    {"@ MX 10 mail\nbad A 1.2.3\n", "scn.yaml:11: bad zone line 'bad A 1.2.3'"},
    {"other.test. A 192.0.2.1\n",
     "scn.yaml:10: owner other.test lies outside the domain example.test"},
    {"x CNAME y\nx A 192.0.2.1\n", "scn.yaml:11: x.example.test has a CNAME and other data"},
    {"x A 192.0.2.1\nx CNAME y\n", "scn.yaml:11: x.example.test has a CNAME and other data"},
    {"$TTL 60\n", "scn.yaml:10: zone directives such as $TTL 60 are not supported"},
    {"x CH TXT \"a\"\n", "scn.yaml:10: only class IN"},
    {"@ MX mail\n", "scn.yaml:10: bad zone line"},
    /* RFC 3597 generic data that is no MX (found by fuzz/fuzz_zone_lines.c): every
     * answer carrying it would be a message no client can parse. */
    {"@ MX  \\# x. id\"1\"\n", "scn.yaml:10: bad zone line '@ MX  \\# x. id\"1\"': its data "
                               "does not make a valid MX record on the wire"},
    {"@ MX \\# 2 000a\n", "does not make a valid MX record"},
    /* RFC 1035 3.3.14: a character-string is at most 255 octets; we refuse a longer
     * one with a message instead of splitting it behind the author's back. */
    {"x TXT \""
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "0123456789012345678901234567890123456789012345678901234567890123456789\"\n",
     "scn.yaml:10: a quoted string of 280 octets: a TXT character-string is at most 255"},
    {"x TXT \""
     "\\065\\065\\065"
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "0123456789012345678901234567890123456789012345678901234567890123456789"
     "01234567890123456789012345678901234567890123456789012345678901\"\n",
     "scn.yaml:10: a quoted string of 275 octets"},
};

/* A query for name/type with ID 0x1234 (RD set) into q; returns its length. */
static size_t simple_query(const char *name, ldns_rr_type type, uint8_t *q, size_t cap)
{
    ldns_pkt *p = NULL;
    assert_int_equal(ldns_pkt_query_new_frm_str(&p, name, type, LDNS_RR_CLASS_IN, LDNS_RD),
                     LDNS_STATUS_OK);
    ldns_pkt_set_id(p, 0x1234);
    uint8_t *wire = NULL;
    size_t len = 0;
    assert_int_equal(ldns_pkt2wire(&wire, p, &len), LDNS_STATUS_OK);
    assert_true(len <= cap);
    memcpy(q, wire, len);
    free(wire);
    ldns_pkt_free(p);
    return len;
}

static const struct fcase {
    const char *qname;
    ldns_rr_type qtype;
    sts_dns_transport transport;
    int fault; /* expected res.fault */
    int rcode, tc, drop, spoof, ancount;
    double delay;
} fcases[] = {
    {"_mta-sts.example.test", LDNS_RR_TYPE_TXT, STS_DNS_UDP, STS_SCN_DNS_SERVFAIL, 2, 0, 0, 0, 0,
     0},
    {"_mta-sts.example.test", LDNS_RR_TYPE_TXT, STS_DNS_TCP, STS_SCN_DNS_SERVFAIL, 2, 0, 0, 0, 0,
     0},
    /* the fault is for TXT only */
    {"_mta-sts.example.test", LDNS_RR_TYPE_A, STS_DNS_UDP, -1, 0, 0, 0, 0, 0, 0},
    {"example.test", LDNS_RR_TYPE_MX, STS_DNS_UDP, STS_SCN_DNS_REFUSED, 5, 0, 0, 0, 0, 0},
    {"mail.example.test", LDNS_RR_TYPE_A, STS_DNS_UDP, STS_SCN_DNS_NXDOMAIN, 3, 0, 0, 0, 0, 0},
    {"a.b.c.example.test", LDNS_RR_TYPE_A, STS_DNS_TCP, STS_SCN_DNS_TIMEOUT, 0, 0, 1, 0, 0, 0},
    {"multi.example.test", LDNS_RR_TYPE_TXT, STS_DNS_UDP, STS_SCN_DNS_TRUNCATE, 0, 1, 0, 0, 0, 0},
    {"multi.example.test", LDNS_RR_TYPE_TXT, STS_DNS_TCP, STS_SCN_DNS_TRUNCATE, 0, 0, 0, 0, 2, 0},
    {"v6.example.test", LDNS_RR_TYPE_AAAA, STS_DNS_UDP, STS_SCN_DNS_DELAY, 0, 0, 0, 0, 1, 1.5},
    {"www.example.test", LDNS_RR_TYPE_CNAME, STS_DNS_UDP, STS_SCN_DNS_WRONG_ID, 0, 0, 0,
     STS_DNS_SPOOF_ID, 1, 0},
    {"www.example.test", LDNS_RR_TYPE_CNAME, STS_DNS_TCP, STS_SCN_DNS_WRONG_ID, 0, 0, 0,
     STS_DNS_SPOOF_ID, 1, 0},
    /* wrong_source: the right ID (only the source tells); over TCP nothing is forged */
    {"alias.example.test", LDNS_RR_TYPE_A, STS_DNS_UDP, STS_SCN_DNS_WRONG_SOURCE, 0, 0, 0,
     STS_DNS_SPOOF_SOURCE, 2, 0},
    {"alias.example.test", LDNS_RR_TYPE_A, STS_DNS_TCP, STS_SCN_DNS_WRONG_SOURCE, 0, 0, 0,
     STS_DNS_SPOOF_NONE, 2, 0},
};

static void test_faults(void **state)
{
    sts_dns_zone *z = make_zone();
    char err[256] = "";
    assert_int_equal(sts_dns_zone_add_fault(z, "_mta-sts", "TXT", STS_SCN_DNS_SERVFAIL, 0, "f", 1,
                                            err, sizeof(err)),
                     0);
    assert_int_equal(
        sts_dns_zone_add_fault(z, "@", "MX", STS_SCN_DNS_REFUSED, 0, "f", 2, err, sizeof(err)), 0);
    assert_int_equal(sts_dns_zone_add_fault(z, "mail.example.test.", "ANY", STS_SCN_DNS_NXDOMAIN, 0,
                                            "f", 3, err, sizeof(err)),
                     0);
    assert_int_equal(
        sts_dns_zone_add_fault(z, "a.b.c", "ANY", STS_SCN_DNS_TIMEOUT, 0, "f", 4, err, sizeof(err)),
        0);
    assert_int_equal(sts_dns_zone_add_fault(z, "multi", "TXT", STS_SCN_DNS_TRUNCATE, 0, "f", 5, err,
                                            sizeof(err)),
                     0);
    assert_int_equal(
        sts_dns_zone_add_fault(z, "V6", "aaaa", STS_SCN_DNS_DELAY, 1.5, "f", 6, err, sizeof(err)),
        0);
    assert_int_equal(sts_dns_zone_add_fault(z, "www", "CNAME", STS_SCN_DNS_WRONG_ID, 0, "f", 7, err,
                                            sizeof(err)),
                     0);
    assert_int_equal(sts_dns_zone_add_fault(z, "alias", "A", STS_SCN_DNS_WRONG_SOURCE, 0, "f", 9,
                                            err, sizeof(err)),
                     0);
    assert_int_not_equal(sts_dns_zone_add_fault(z, "x", "BOGUS", 0, 0, "f", 8, err, sizeof(err)),
                         0);
    assert_string_equal(err, "f:8: 'BOGUS' is not a record type");
    sts_buf out, spoof;
    sts_buf_init(&out, 0);
    sts_buf_init(&spoof, 0);
    for (size_t i = 0; i < sizeof(fcases) / sizeof(fcases[0]); i++) {
        const struct fcase *c = &fcases[i];
        uint8_t q[512];
        size_t len = simple_query(c->qname, c->qtype, q, sizeof(q));
        sts_dns_result res;
        print_message("fault case %zu: %s\n", i, c->qname);
        assert_int_equal(sts_dns_answer(z, q, len, c->transport, &out, &res), 0);
        assert_true(res.answered);
        assert_int_equal(res.fault, c->fault);
        assert_int_equal(res.drop, c->drop);
        assert_int_equal(res.spoof, c->spoof);
        assert_true(res.delay == c->delay);
        if (c->drop) {
            assert_int_equal(out.len, 0);
            continue;
        }
        assert_int_equal(res.rcode, c->rcode);
        assert_int_equal(res.tc, c->tc);
        assert_int_equal(res.ancount, c->ancount);
        if (!c->spoof)
            continue;
        /* The spoofed answer: another ID (wrong_id) or the same (wrong_source), other
         * data; the real one is untouched. */
        int keep_id = c->spoof == STS_DNS_SPOOF_SOURCE;
        assert_int_equal(sts_dns_spoof((const uint8_t *)out.data, out.len, keep_id, &spoof), 0);
        ldns_pkt *p = NULL, *sp = NULL;
        assert_int_equal(ldns_wire2pkt(&p, (const uint8_t *)out.data, out.len), LDNS_STATUS_OK);
        assert_int_equal(ldns_wire2pkt(&sp, (const uint8_t *)spoof.data, spoof.len),
                         LDNS_STATUS_OK);
        assert_int_equal(ldns_pkt_id(p), 0x1234);
        if (keep_id)
            assert_int_equal(ldns_pkt_id(sp), 0x1234);
        else
            assert_int_not_equal(ldns_pkt_id(sp), 0x1234);
        assert_int_equal(ldns_pkt_ancount(sp), ldns_pkt_ancount(p));
        /* The address record at the end of a CNAME chain is the attacker's. */
        ldns_rr *last = ldns_rr_list_rr(ldns_pkt_answer(sp), ldns_pkt_ancount(sp) - 1);
        if (ldns_rr_get_type(last) == LDNS_RR_TYPE_A) {
            char *a = ldns_rdf2str(ldns_rr_rdf(last, 0));
            assert_string_equal(a, "192.0.2.66");
            free(a);
        }
        ldns_pkt_free(p);
        ldns_pkt_free(sp);
    }
    /* A spoofed TXT answer carries the attacker's policy id; a query is no reply. */
    uint8_t q[512];
    size_t len = simple_query("multi.example.test", LDNS_RR_TYPE_TXT, q, sizeof(q));
    sts_dns_result res;
    assert_int_equal(sts_dns_answer(z, q, len, STS_DNS_TCP, &out, &res), 0);
    assert_int_equal(sts_dns_spoof((const uint8_t *)out.data, out.len, 0, &spoof), 0);
    ldns_pkt *sp = NULL;
    assert_int_equal(ldns_wire2pkt(&sp, (const uint8_t *)spoof.data, spoof.len), LDNS_STATUS_OK);
    char *txt = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(sp), 0), 0));
    assert_string_equal(txt, "\"v=STSv1; id=spoofed;\"");
    assert_int_equal(ldns_rr_rd_count(ldns_rr_list_rr(ldns_pkt_answer(sp), 0)), 1);
    free(txt);
    ldns_pkt_free(sp);
    assert_int_equal(sts_dns_spoof(q, len, 0, &spoof), STS_EINVAL);
    sts_buf_free(&out);
    sts_buf_free(&spoof);
    sts_dns_zone_free(z);
}

static void test_zone_errors(void **state)
{
    for (size_t i = 0; i < sizeof(zone_errors) / sizeof(zone_errors[0]); i++) {
        char err[512] = "";
        sts_dns_zone *z = sts_dns_zone_new("example.test", err, sizeof(err));
        assert_non_null(z);
        int rc = sts_dns_zone_add_lines(z, zone_errors[i].text, "scn.yaml", 10, err, sizeof(err));
        print_message("zone error: %s\n", err);
        assert_int_not_equal(rc, 0);
        assert_non_null(strstr(err, zone_errors[i].want));
        sts_dns_zone_free(z);
    }
}

static void test_zone_helpers(void **state)
{
    char err[256];
    sts_dns_zone *z = sts_dns_zone_new("example.test", err, sizeof(err));
    assert_int_equal(sts_dns_zone_add_lines(z,
                                            "@ MX 10 mail\n@ MX 20 MX2\n@ MX 30 mail\n"
                                            "@ MX 40 mx.elsewhere.test.\nsub MX 0 .\n"
                                            "mx2 A 192.0.2.2\nalias CNAME mail\n",
                                            "z", 1, err, sizeof(err)),
                     0);
    /* RFC 3597 generic data in the type's own format is fine. */
    assert_int_equal(sts_dns_zone_add_lines(z, "gen A \\# 4 c0000201\nunk TYPE65280 \\# 2 abcd\n",
                                            "z", 9, err, sizeof(err)),
                     0);
    char **t = sts_dns_zone_mx_targets(z);
    assert_non_null(t);
    assert_string_equal(t[0], "mail.example.test");
    assert_string_equal(t[1], "mx2.example.test");
    assert_null(t[2]);
    for (size_t i = 0; t[i]; i++)
        free(t[i]);
    free(t);
    assert_true(sts_dns_zone_has_address(z, "mx2.example.test"));
    assert_true(sts_dns_zone_has_address(z, "ALIAS.example.test"));
    assert_false(sts_dns_zone_has_address(z, "mail.example.test"));
    /* An A record next to a CNAME is refused. */
    assert_int_not_equal(sts_dns_zone_add_a(z, "alias.example.test", "127.0.0.1"), 0);
    assert_int_not_equal(sts_dns_zone_add_a(z, "mail.example.test", "not-an-address"), 0);
    assert_int_equal(sts_dns_zone_add_a(z, "mail.example.test", "127.0.0.1"), 0);
    assert_true(sts_dns_zone_has_address(z, "mail.example.test"));
    sts_dns_zone_free(z);

    /* A target whose presentation form is long (60 octets written \255, four
     * characters each): listed whole, not cut at 255 characters (found by
     * fuzz/fuzz_zone_lines.c). */
    z = sts_dns_zone_new("example.test", err, sizeof(err));
    char line[512] = "@ MX 10 ";
    for (int i = 0; i < 60; i++)
        strcat(line, "\\255");
    strcat(line, ".mail\n");
    assert_int_equal(sts_dns_zone_add_lines(z, line, "z", 1, err, sizeof(err)), 0);
    t = sts_dns_zone_mx_targets(z);
    assert_non_null(t);
    assert_int_equal(strlen(t[0]), 60 * 4 + strlen(".mail.example.test"));
    assert_string_equal(t[0] + 60 * 4, ".mail.example.test");
    assert_null(t[1]);
    free(t[0]);
    free(t);
    sts_dns_zone_free(z);
}

/* ---- the precomputed answers equal the reference path ----
 *
 * sts_dns_answer() copies most replies from the zone's index; sts_dns_answer_ref()
 * computes them with ldns from the records, as the server always did. Every query
 * below (each row of cases[], and the rows of eq_cases in 8 variants of RD, CD and
 * the DO bit) must give the same result and a reply that says the same thing: the
 * same header, EDNS fields and records (compared as lower-cased presentation text,
 * TTLs included; only name compression and the case of names may differ). */

static const struct qcase eq_cases[] = {
    {"upper case", "MAIL.EXAMPLE.TEST", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0,
     0, 0},
    {"mixed case MX EDNS", "Example.Test", LDNS_RR_TYPE_MX, 0, 1232, 0, STS_DNS_UDP, M_NONE, 0, 0,
     0, 0, 0, 0, 0},
    {"NXDOMAIN EDNS", "nope.example.test", LDNS_RR_TYPE_A, 0, 1232, 0, STS_DNS_UDP, M_NONE, 0, 0, 0,
     0, 0, 0, 0},
    {"NXDOMAIN deep", "d.e.e.p.example.test", LDNS_RR_TYPE_TXT, 0, 0, 0, STS_DNS_TCP, M_NONE, 0, 0,
     0, 0, 0, 0, 0},
    {"NXDOMAIN upper", "NOPE.EXAMPLE.test", LDNS_RR_TYPE_MX, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0,
     0, 0, 0, 0},
    {"NXDOMAIN other apex", "x.mx.provider.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 0,
     0, 0, 0, 0, 0, 0},
    {"NXDOMAIN below CNAME", "x.www.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 0,
     0, 0, 0, 0, 0, 0},
    {"parent of other apex", "provider.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0,
     0, 0, 0, 0},
    {"root REFUSED", "", LDNS_RR_TYPE_NS, 0, 1232, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0, 0, 0},
    {"sibling REFUSED", "example.tes", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0,
     0, 0},
    {"ENT c", "c.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0, 0, 0},
    {"ENT b.c ANY", "b.c.example.test", LDNS_RR_TYPE_ANY, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0,
     0, 0, 0},
    {"leaf below ENT", "a.b.c.example.test", LDNS_RR_TYPE_A, 0, 1232, 0, STS_DNS_UDP, M_NONE, 0, 0,
     0, 0, 0, 0, 0},
    {"CNAME to MX", "www.example.test", LDNS_RR_TYPE_MX, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0,
     0, 0, 0},
    {"CNAME to TXT", "www.example.test", LDNS_RR_TYPE_TXT, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0,
     0, 0, 0},
    {"CNAME ANY", "www.example.test", LDNS_RR_TYPE_ANY, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0,
     0, 0},
    {"CNAME unknown type", "www.example.test", 65280, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0,
     0, 0},
    {"CNAME SPF", "alias.example.test", LDNS_RR_TYPE_SPF, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0,
     0, 0, 0},
    {"CNAME loop TXT", "loop2.example.test", LDNS_RR_TYPE_TXT, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0,
     0, 0, 0, 0, 0},
    {"CNAME out of zone AAAA", "ext.example.test", LDNS_RR_TYPE_AAAA, 0, 0, 0, STS_DNS_TCP, M_NONE,
     0, 0, 0, 0, 0, 0, 0},
    {"unknown type NODATA", "mail.example.test", 65281, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0,
     0, 0},
    {"type 65280 NODATA", "example.test", 65280, 0, 1232, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0, 0,
     0},
    {"big A NODATA", "big.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0,
     0, 0, 0},
    {"big EDNS 512", "big.example.test", LDNS_RR_TYPE_TXT, 0, 512, 0, STS_DNS_UDP, M_NONE, 0, 0, 0,
     0, 0, 0, 0},
    {"big EDNS 1232", "big.example.test", LDNS_RR_TYPE_TXT, 0, 1232, 0, STS_DNS_UDP, M_NONE, 0, 0,
     0, 0, 0, 0, 0},
    {"big EDNS 4096", "BIG.example.test", LDNS_RR_TYPE_TXT, 0, 4096, 0, STS_DNS_UDP, M_NONE, 0, 0,
     0, 0, 0, 0, 0},
    {"big ANY UDP", "big.example.test", LDNS_RR_TYPE_ANY, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0,
     0, 0, 0},
    {"big ANY TCP EDNS", "big.example.test", LDNS_RR_TYPE_ANY, 0, 1232, 0, STS_DNS_TCP, M_NONE, 0,
     0, 0, 0, 0, 0, 0},
    {"apex ANY TCP", "example.test", LDNS_RR_TYPE_ANY, 0, 0, 0, STS_DNS_TCP, M_NONE, 0, 0, 0, 0, 0,
     0, 0},
    {"apex SOA EDNS", "example.test", LDNS_RR_TYPE_SOA, 0, 4096, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0,
     0, 0, 0},
    {"apex NS", "EXAMPLE.TEST", LDNS_RR_TYPE_NS, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0, 0, 0},
    {"other apex SOA", "mx.provider.test", LDNS_RR_TYPE_SOA, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0,
     0, 0, 0, 0},
    {"other apex TXT", "MX.provider.test", LDNS_RR_TYPE_TXT, 0, 1232, 0, STS_DNS_UDP, M_NONE, 0, 0,
     0, 0, 0, 0, 0},
    {"multi TXT EDNS", "multi.example.test", LDNS_RR_TYPE_TXT, 0, 1232, 0, STS_DNS_UDP, M_NONE, 0,
     0, 0, 0, 0, 0, 0},
    {"v6 A NODATA", "v6.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0,
     0, 0},
    {"long NXDOMAIN",
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa."
     "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb."
     "ccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc."
     "ddddddddddddddddddddddddddddddddddddddddddddddddddddddddd.example.test",
     LDNS_RR_TYPE_A, 0, 1232, 0, STS_DNS_UDP, M_NONE, 0, 0, 0, 0, 0, 0, 0},
    {"EDNS BADVERS", "example.test", LDNS_RR_TYPE_MX, 0, 1232, 1, STS_DNS_UDP, M_NONE, 0, 0, 0, 0,
     0, 0, 0},
};

/* The records of section sec as lower-cased presentation lines. */
static char *section_text(const ldns_rr_list *l)
{
    size_t cap = 1, n = 0;
    char *all = calloc(1, 1);
    for (size_t i = 0; l && i < ldns_rr_list_rr_count(l); i++) {
        char *t = ldns_rr2str(ldns_rr_list_rr(l, i));
        assert_non_null(t);
        size_t tl = strlen(t);
        all = realloc(all, cap + tl);
        assert_non_null(all);
        for (size_t k = 0; k < tl; k++)
            all[n + k] = (char)tolower((unsigned char)t[k]);
        n += tl;
        cap += tl;
        all[n] = '\0';
        free(t);
    }
    return all;
}

static void assert_same_reply(const sts_buf *a, const sts_buf *b)
{
    if (a->len == 0 || b->len == 0) {
        assert_int_equal(a->len, b->len);
        return;
    }
    ldns_pkt *p = NULL, *r = NULL;
    assert_int_equal(ldns_wire2pkt(&p, (const uint8_t *)a->data, a->len), LDNS_STATUS_OK);
    assert_int_equal(ldns_wire2pkt(&r, (const uint8_t *)b->data, b->len), LDNS_STATUS_OK);
    assert_int_equal(ldns_pkt_id(p), ldns_pkt_id(r));
    assert_int_equal(ldns_pkt_qr(p), ldns_pkt_qr(r));
    assert_int_equal(ldns_pkt_get_opcode(p), ldns_pkt_get_opcode(r));
    assert_int_equal(ldns_pkt_aa(p), ldns_pkt_aa(r));
    assert_int_equal(ldns_pkt_tc(p), ldns_pkt_tc(r));
    assert_int_equal(ldns_pkt_rd(p), ldns_pkt_rd(r));
    assert_int_equal(ldns_pkt_cd(p), ldns_pkt_cd(r));
    assert_int_equal(ldns_pkt_ra(p), ldns_pkt_ra(r));
    assert_int_equal(ldns_pkt_ad(p), ldns_pkt_ad(r));
    assert_int_equal(ldns_pkt_get_rcode(p), ldns_pkt_get_rcode(r));
    assert_int_equal(ldns_pkt_qdcount(p), ldns_pkt_qdcount(r));
    assert_int_equal(ldns_pkt_ancount(p), ldns_pkt_ancount(r));
    assert_int_equal(ldns_pkt_nscount(p), ldns_pkt_nscount(r));
    assert_int_equal(ldns_pkt_arcount(p), ldns_pkt_arcount(r));
    assert_int_equal(ldns_pkt_edns(p), ldns_pkt_edns(r));
    assert_int_equal(ldns_pkt_edns_udp_size(p), ldns_pkt_edns_udp_size(r));
    assert_int_equal(ldns_pkt_edns_version(p), ldns_pkt_edns_version(r));
    assert_int_equal(ldns_pkt_edns_do(p), ldns_pkt_edns_do(r));
    assert_int_equal(ldns_pkt_edns_extended_rcode(p), ldns_pkt_edns_extended_rcode(r));
    assert_int_equal(ldns_pkt_edns_z(p), ldns_pkt_edns_z(r));
    ldns_rr_list *(*secs[4])(const ldns_pkt *) = {ldns_pkt_question, ldns_pkt_answer,
                                                  ldns_pkt_authority, ldns_pkt_additional};
    for (int k = 0; k < 4; k++) {
        char *x = section_text(secs[k](p)), *y = section_text(secs[k](r));
        assert_string_equal(x, y);
        free(x);
        free(y);
    }
    ldns_pkt_free(p);
    ldns_pkt_free(r);
}

/* Both paths on query (q, len); *same_bytes counts byte-identical replies. */
static void check_same(const sts_dns_zone *z, const uint8_t *q, size_t len,
                       sts_dns_transport transport, size_t *same_bytes)
{
    sts_buf a, b;
    sts_buf_init(&a, 0);
    sts_buf_init(&b, 0);
    sts_dns_result ra, rb;
    assert_int_equal(sts_dns_answer(z, q, len, transport, &a, &ra), 0);
    assert_int_equal(sts_dns_answer_ref(z, q, len, transport, &b, &rb), 0);
    assert_int_equal(ra.answered, rb.answered);
    assert_int_equal(ra.rcode, rb.rcode);
    assert_int_equal(ra.aa, rb.aa);
    assert_int_equal(ra.tc, rb.tc);
    assert_int_equal(ra.ancount, rb.ancount);
    assert_int_equal(ra.nscount, rb.nscount);
    assert_int_equal(ra.authority_soa, rb.authority_soa);
    assert_int_equal(ra.fault, rb.fault);
    assert_int_equal(ra.drop, rb.drop);
    assert_int_equal(ra.spoof, rb.spoof);
    assert_true(ra.delay == rb.delay);
    assert_ptr_equal(ra.qname, rb.qname);
    assert_int_equal(ra.qname_len, rb.qname_len);
    assert_int_equal(ra.qtype, rb.qtype);
    if (transport == STS_DNS_UDP)
        assert_true(a.len <= 4096);
    assert_same_reply(&a, &b);
    if (a.len == b.len && (a.len == 0 || !memcmp(a.data, b.data, a.len)))
        (*same_bytes)++;
    sts_buf_free(&a);
    sts_buf_free(&b);
}

static void test_index_equals_reference(void **state)
{
    sts_dns_zone *z = make_zone();
    size_t n = 0, same = 0;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++, n++) {
        uint8_t q[512];
        size_t len = build_query(&cases[i], q);
        print_message("case: %s\n", cases[i].what);
        check_same(z, q, len, cases[i].transport, &same);
    }
    for (size_t i = 0; i < sizeof(eq_cases) / sizeof(eq_cases[0]); i++) {
        const struct qcase *c = &eq_cases[i];
        for (int v = 0; v < 8; v++, n++) {
            uint8_t q[512];
            size_t len = build_query(c, q);
            if (v & 1)
                q[2] &= (uint8_t)~0x01; /* RD off */
            if (v & 2)
                q[3] |= 0x10; /* CD */
            if ((v & 4) && c->edns)
                q[len - 4] |= 0x80; /* DO, in the OPT's flags */
            print_message("eq case: %s (variant %d)\n", c->what, v);
            check_same(z, q, len, c->transport, &same);
        }
    }
    print_message("%zu queries, %zu replies byte-identical to the reference\n", n, same);
    /* Lower-case questions answered by a copy are byte-identical (the copy is the
     * reference's own reply): most of the table. */
    assert_true(same * 2 > n);

    /* With scripted faults: faulted (name, type) pairs go the reference way, the
     * others still come from the index, and both agree. */
    char err[256] = "";
    assert_int_equal(sts_dns_zone_add_fault(z, "_mta-sts", "TXT", STS_SCN_DNS_SERVFAIL, 0, "f", 1,
                                            err, sizeof(err)),
                     0);
    assert_int_equal(
        sts_dns_zone_add_fault(z, "NOPE", "ANY", STS_SCN_DNS_TIMEOUT, 0, "f", 2, err, sizeof(err)),
        0);
    assert_int_equal(
        sts_dns_zone_add_fault(z, "mail", "A", STS_SCN_DNS_WRONG_ID, 0.5, "f", 3, err, sizeof(err)),
        0);
    const struct qcase fq[] = {
        {"fault TXT", "_MTA-STS.example.test", LDNS_RR_TYPE_TXT, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0,
         0, 0, 0, 0, 0},
        {"no fault A", "_mta-sts.example.test", LDNS_RR_TYPE_A, 0, 0, 0, STS_DNS_UDP, M_NONE, 0, 0,
         0, 0, 0, 0, 0},
        {"fault on NXDOMAIN name", "nope.example.test", LDNS_RR_TYPE_MX, 0, 0, 0, STS_DNS_TCP,
         M_NONE, 0, 0, 0, 0, 0, 0, 0},
        {"fault wrong_id", "mail.example.test", LDNS_RR_TYPE_A, 0, 1232, 0, STS_DNS_UDP, M_NONE, 0,
         0, 0, 0, 0, 0, 0},
        {"no fault AAAA", "mail.example.test", LDNS_RR_TYPE_AAAA, 0, 0, 0, STS_DNS_UDP, M_NONE, 0,
         0, 0, 0, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof(fq) / sizeof(fq[0]); i++) {
        uint8_t q[512];
        size_t len = build_query(&fq[i], q);
        print_message("fault eq case: %s\n", fq[i].what);
        check_same(z, q, len, fq[i].transport, &same);
    }
    sts_buf out;
    sts_buf_init(&out, 0);
    uint8_t q[512];
    sts_dns_result res;
    size_t len = build_query(&fq[0], q);
    assert_int_equal(sts_dns_answer(z, q, len, STS_DNS_UDP, &out, &res), 0);
    assert_int_equal(res.fault, STS_SCN_DNS_SERVFAIL);
    assert_int_equal(res.rcode, 2);
    /* An addition after finish drops the index; answers stay right. */
    assert_int_equal(sts_dns_zone_add_lines(z, "late TXT \"x\"", "t", 1, err, sizeof(err)), 0);
    const struct qcase late = {"late",
                               "late.example.test",
                               LDNS_RR_TYPE_TXT,
                               0,
                               0,
                               0,
                               STS_DNS_UDP,
                               M_NONE,
                               0,
                               0,
                               0,
                               0,
                               0,
                               0,
                               0};
    len = build_query(&late, q);
    assert_int_equal(sts_dns_answer(z, q, len, STS_DNS_UDP, &out, &res), 0);
    assert_int_equal(res.rcode, 0);
    assert_int_equal(res.ancount, 1);
    sts_buf_free(&out);
    sts_dns_zone_free(z);
}

static void test_name_text(void **state)
{
    const uint8_t w[] = {3, 'W', 'w', 'W', 4, 'a', '.', ' ', '\\', 4, 't', 'e', 's', 't', 0};
    char out[64];
    sts_dns_name_text(w, sizeof(w), out, sizeof(out));
    assert_string_equal(out, "www.a\\.\\032\\\\.test");
    const uint8_t root[] = {0};
    sts_dns_name_text(root, 1, out, sizeof(out));
    assert_string_equal(out, ".");
    sts_dns_name_text(w, sizeof(w), out, 6);
    assert_string_equal(out, "www.a");
    sts_dns_type_text(LDNS_RR_TYPE_MX, out, sizeof(out));
    assert_string_equal(out, "MX");
    sts_dns_type_text(65280, out, sizeof(out));
    assert_string_equal(out, "TYPE65280");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_answers),     cmocka_unit_test(test_result_names),
        cmocka_unit_test(test_zone_errors), cmocka_unit_test(test_zone_helpers),
        cmocka_unit_test(test_faults),      cmocka_unit_test(test_index_equals_reference),
        cmocka_unit_test(test_name_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
