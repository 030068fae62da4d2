/* test_tlsrpt.c - the `_smtp._tls` TLSRPT record parser and selection (RFC 8460 3). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tests/unit/txt_mutate.h"
#include "sender/tlsrpt.h"

#define MAILTO "mailto:a@example.com"
#define V "v=TLSRPTv1; "

struct rpt_case {
    const char *rec;
    int valid;
    size_t nrua;         /* URIs kept when valid */
    const char *rua0;    /* the first one */
    int col;             /* column of the first error (invalid) or warning (valid, nwarn > 0) */
    const char *msgpart; /* substring of that diagnostic's message */
    size_t next;         /* extension fields when valid */
    size_t nwarn;
};

static const struct rpt_case cases[] = {
    /* RFC 8460 3.1.1 and 3.1.2 */
    {"v=TLSRPTv1;rua=mailto:reports@example.com", 1, 1, "mailto:reports@example.com", 0, NULL, 0,
     0},
    {"v=TLSRPTv1; rua=https://reporting.example.com/v1/tlsrpt", 1, 1,
     "https://reporting.example.com/v1/tlsrpt", 0, NULL, 0, 0},
    /* two URIs, mailto + https, whitespace around ";" and "," */
    {V "rua=" MAILTO ",https://r.example.com/tlsrpt", 1, 2, MAILTO, 0, NULL, 0, 0},
    {"v=TLSRPTv1 ;\trua=" MAILTO " , \thttps://r.example.com/x ;", 1, 2, MAILTO, 0, NULL, 0, 0},
    {"v=TLSRPTv1;rua=" MAILTO ",\thttps://r.example.com", 1, 2, MAILTO, 0, NULL, 0, 0},
    /* trailing delimiter */
    {V "rua=" MAILTO ";", 1, 1, MAILTO, 0, NULL, 0, 0},
    {V "rua=" MAILTO " ; ", 1, 1, MAILTO, 0, NULL, 0, 0},
    /* extensions, before and after rua */
    {V "rua=" MAILTO "; ext=val; x.y-z_w=1", 1, 1, MAILTO, 0, NULL, 2, 0},
    {V "foo=bar; rua=" MAILTO, 1, 1, MAILTO, 0, NULL, 1, 0},
    {V "rua=" MAILTO "; 12345678901234567890123456789012=!\"#$%&'()*+,-./:<>?@[\\]^_`{|}~", 1, 1,
     MAILTO, 0, NULL, 1, 0},
    /* URI forms: port, query, fragment, %HH, IP literal, hfields, address literal, case */
    {V "rua=https://r.example.com:8443/a%2Cb?x=1&y=2#f", 1, 1,
     "https://r.example.com:8443/a%2Cb?x=1&y=2#f", 0, NULL, 0, 0},
    {V "rua=https://[2001:db8::1]/r", 1, 1, "https://[2001:db8::1]/r", 0, NULL, 0, 0},
    {V "rua=https://r.example.com.:443", 1, 1, "https://r.example.com.:443", 0, NULL, 0, 0},
    {V "rua=mailto:tls%2Brpt@example.com?subject=tlsrpt", 1, 1,
     "mailto:tls%2Brpt@example.com?subject=tlsrpt", 0, NULL, 0, 0},
    {V "rua=mailto:a@[192.0.2.1]", 1, 1, "mailto:a@[192.0.2.1]", 0, NULL, 0, 0},
    {V "rua=MAILTO:a@example.com,HTTPS://r.example.com", 1, 2, "MAILTO:a@example.com", 0, NULL, 0,
     0},
    /* valid with warnings */
    {V "rua=" MAILTO " ", 1, 1, MAILTO, 37, "whitespace after the last field", 0, 1},
    {V "rua=" MAILTO "; rua=https://r.example.com/", 1, 2, MAILTO, 39, "rua given more than once",
     0, 1},
    {V "rua=" MAILTO ",http://r.example.com/", 1, 1, MAILTO, 38, "scheme 'http' is not supported",
     0, 1},
    {V "rua=ftp://r.example.com/," MAILTO, 1, 1, MAILTO, 17, "scheme 'ftp' is not supported", 0, 1},
    {V "rua=" MAILTO "; RUA=x", 1, 1, MAILTO, 39, "field names are case-sensitive", 1, 1},
    {V "rua=" MAILTO "; e=1; e=2", 1, 1, MAILTO, 44, "'e' given more than once", 2, 1},
    {V "rua=" MAILTO "; v=TLSRPTv1", 1, 1, MAILTO, 39, "v= appears again", 1, 1},
    /* invalid: version */
    {"v=TLSRPTv2; rua=" MAILTO, 0, 0, NULL, 3, "unsupported version 'TLSRPTv2'", 0, 0},
    {"v=tlsrptv1; rua=" MAILTO, 0, 0, NULL, 3, "unsupported version 'tlsrptv1'", 0, 0},
    {"v=STSv1; id=1", 0, 0, NULL, 3, "unsupported version 'STSv1' (expected TLSRPTv1)", 0, 0},
    {"rua=" MAILTO "; v=TLSRPTv1", 0, 0, NULL, 1, "must begin with v=TLSRPTv1", 0, 0},
    {" v=TLSRPTv1; rua=" MAILTO, 0, 0, NULL, 1, "leading whitespace", 0, 0},
    {"v=TLSRPTv1x; rua=" MAILTO, 0, 0, NULL, 11, "expected ';' after v=TLSRPTv1", 0, 0},
    {"", 0, 0, NULL, 1, "must begin with v=TLSRPTv1", 0, 0},
    /* invalid: fields */
    {"v=TLSRPTv1", 0, 0, NULL, 11, "no fields", 0, 0},
    {"v=TLSRPTv1;", 0, 0, NULL, 11, "no fields", 0, 0},
    {V "ext=1", 0, 0, NULL, 0, "missing required field rua", 0, 0},
    {V "RUA=" MAILTO, 0, 0, NULL, 0, "missing required field rua", 0, 0},
    {"v=TLSRPTv1;; rua=" MAILTO, 0, 0, NULL, 12, "empty field", 0, 0},
    {"v=TLSRPTv1 rua=" MAILTO, 0, 0, NULL, 12, "expected ';' before 'rua=", 0, 0},
    {V "rua=" MAILTO "; ext", 0, 0, NULL, 39, "no '='", 0, 0},
    {V "rua=" MAILTO "; ext=", 0, 0, NULL, 43, "empty value", 0, 0},
    {V "rua=" MAILTO "; _x=1", 0, 0, NULL, 39, "must begin with a letter or digit", 0, 0},
    {V "rua=" MAILTO "; e!x=1", 0, 0, NULL, 40, "contains '!'", 0, 0},
    {V "rua=" MAILTO "; 123456789012345678901234567890123=1", 0, 0, NULL, 39, "longer than 32", 0,
     0},
    {V "rua=" MAILTO "; e=a b", 0, 0, NULL, 43, "expected ';' before 'b'", 0, 0},
    {V "rua=" MAILTO "; e=a=b", 0, 0, NULL, 42, "contains '='", 0, 0},
    {V "rua=" MAILTO "; e=a\x01z", 0, 0, NULL, 42, "byte 0x01", 0, 0},
    {V "rua=" MAILTO "; e=\x80", 0, 0, NULL, 41, "byte 0x80", 0, 0},
    /* invalid: rua */
    {V "rua=", 0, 0, NULL, 17, "rua is empty", 0, 0},
    {V "rua=;", 0, 0, NULL, 17, "rua is empty", 0, 0},
    {V "rua= " MAILTO, 0, 0, NULL, 17, "rua is empty", 0, 0},
    {V "rua=" MAILTO ",", 0, 0, NULL, 38, "empty URI in the rua list", 0, 0},
    {V "rua=," MAILTO, 0, 0, NULL, 17, "empty URI in the rua list", 0, 0},
    {V "rua=" MAILTO ",,https://r.example.com", 0, 0, NULL, 38, "empty URI", 0, 0},
    {V "rua=http://r.example.com/", 0, 0, NULL, 17, "scheme 'http' is not supported", 0, 0},
    {V "rua=ftp://r.example.com/", 0, 0, NULL, 17, "scheme 'ftp' is not supported", 0, 0},
    {V "rua=a@example.com", 0, 0, NULL, 17, "does not begin with a scheme", 0, 0},
    {V "rua=" MAILTO ",b@example.com", 0, 0, NULL, 38, "does not begin with a scheme", 0, 0},
    {V "rua=1mailto:a@example.com", 0, 0, NULL, 17, "does not begin with a scheme", 0, 0},
    {V "rua=" MAILTO "!10m", 0, 0, NULL, 37, "'!' in a rua URI must be percent-encoded", 0, 0},
    {V "rua=mailto:a%@example.com", 0, 0, NULL, 25, "%HH", 0, 0},
    {V "rua=mailto:a\x7f@example.com", 0, 0, NULL, 25, "byte 0x7f", 0, 0},
    {V "rua=mailto:a\"b@example.com", 0, 0, NULL, 25, "contains '\"'", 0, 0},
    {V "rua=mailto:", 0, 0, NULL, 24, "has no address", 0, 0},
    {V "rua=mailto:?subject=x", 0, 0, NULL, 24, "has no address", 0, 0},
    {V "rua=mailto:example.com", 0, 0, NULL, 24, "has no '@'", 0, 0},
    {V "rua=mailto:@example.com", 0, 0, NULL, 24, "empty local part", 0, 0},
    {V "rua=mailto:a@", 0, 0, NULL, 26, "no domain", 0, 0},
    {V "rua=mailto:a@b@example.com", 0, 0, NULL, 24, "more than one '@'", 0, 0},
    {V "rua=mailto:a@exa_mple.com", 0, 0, NULL, 26, "not a host name", 0, 0},
    {V "rua=mailto:a@example..com", 0, 0, NULL, 26, "not a host name", 0, 0},
    {V "rua=https:r.example.com", 0, 0, NULL, 23, "must begin with https://", 0, 0},
    {V "rua=https:///tlsrpt", 0, 0, NULL, 25, "no host", 0, 0},
    {V "rua=https://", 0, 0, NULL, 25, "no host", 0, 0},
    {V "rua=https://user@r.example.com/", 0, 0, NULL, 29, "userinfo", 0, 0},
    {V "rua=https://r.example.com:99999/", 0, 0, NULL, 39, "not a number from 0 to 65535", 0, 0},
    {V "rua=https://r.example.com:8x/", 0, 0, NULL, 39, "not a number", 0, 0},
    {V "rua=https://[2001:db8::1/", 0, 0, NULL, 25, "not a host name or [IP literal]", 0, 0},
    {V "rua=https://[::1]x/", 0, 0, NULL, 30, "followed by 'x'", 0, 0},
    {V "rua=https://r.example.com/a b", 0, 0, NULL, 41, "expected ';' before 'b'", 0, 0},
    {V "rua=https://r.example.com/%zz", 0, 0, NULL, 39, "%HH", 0, 0},
    {V "rua=https://r.example.com/<x>", 0, 0, NULL, 39, "contains '<'", 0, 0},
};

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct rpt_case *c = &cases[i];
        sts_diags d;
        sts_diags_init(&d);
        sts_tlsrpt t;
        int rc = sts_tlsrpt_parse(c->rec, strlen(c->rec), &t, &d);
        const sts_diag *g = NULL;
        if (c->valid) {
            if (rc != 0)
                fail_msg("case %zu '%s': expected valid, got %s (%s)", i, c->rec, sts_errname(rc),
                         d.n ? d.items[0].message : "");
            assert_string_equal(t.version, "TLSRPTv1");
            if (t.nrua != c->nrua)
                fail_msg("case %zu '%s': %zu URIs, expected %zu", i, c->rec, t.nrua, c->nrua);
            assert_string_equal(t.rua[0].uri, c->rua0);
            assert_int_equal(t.next, c->next);
            assert_int_equal(d.nerrors, 0);
            if (d.nwarnings != c->nwarn)
                fail_msg("case %zu '%s': %zu warnings, expected %zu (%s)", i, c->rec, d.nwarnings,
                         c->nwarn, d.n ? d.items[0].message : "");
            g = d.n ? &d.items[0] : NULL;
            sts_tlsrpt_free(&t);
        } else {
            if (rc != STS_ESYNTAX)
                fail_msg("case %zu '%s': expected invalid, got %d", i, c->rec, rc);
            assert_int_equal(t.nrua, 0);
            assert_null(t.rua);
            g = sts_diags_first_error(&d);
            assert_non_null(g);
        }
        if (c->msgpart) {
            if (g->column != c->col)
                fail_msg("case %zu '%s': diagnostic at column %d, expected %d (%s)", i, c->rec,
                         g->column, c->col, g->message);
            if (!strstr(g->message, c->msgpart))
                fail_msg("case %zu '%s': message '%s' lacks '%s'", i, c->rec, g->message,
                         c->msgpart);
            assert_int_equal(g->line, 1);
        }
        sts_diags_free(&d);
    }
}

static void test_rua_list(void **state)
{
    (void)state;
    const char *r = "v=TLSRPTv1; rua=mailto:a@example.com , https://r.example.com/x,"
                    "HTTP://skip.example.com; rua=Https://second.example.com; ruf=ignored";
    sts_tlsrpt t;
    sts_diags d;
    sts_diags_init(&d);
    assert_int_equal(sts_tlsrpt_parse(r, strlen(r), &t, &d), 0);
    assert_int_equal(t.nrua, 3);
    assert_int_equal(t.rua[0].scheme, STS_TLSRPT_MAILTO);
    assert_string_equal(t.rua[0].uri, "mailto:a@example.com");
    assert_int_equal(t.rua[1].scheme, STS_TLSRPT_HTTPS);
    assert_string_equal(t.rua[1].uri, "https://r.example.com/x");
    assert_int_equal(t.rua[2].scheme, STS_TLSRPT_HTTPS);
    assert_string_equal(t.rua[2].uri, "Https://second.example.com");
    assert_int_equal(t.next, 1);
    assert_string_equal(t.ext[0].name, "ruf");
    assert_string_equal(t.ext[0].value, "ignored");
    assert_int_equal(d.nwarnings, 2); /* the second rua, the http: URI */
    assert_string_equal(sts_tlsrpt_scheme_name(t.rua[0].scheme), "mailto");
    assert_string_equal(sts_tlsrpt_scheme_name(t.rua[1].scheme), "https");
    assert_string_equal(sts_tlsrpt_scheme_name((sts_tlsrpt_scheme)7), "unknown");
    sts_tlsrpt_scheme k = STS_TLSRPT_HTTPS;
    assert_int_equal(sts_tlsrpt_scheme_parse("MailTo", 6, &k), 0);
    assert_int_equal(k, STS_TLSRPT_MAILTO);
    assert_int_equal(sts_tlsrpt_scheme_parse("httpsx", 5, &k), 0);
    assert_int_equal(k, STS_TLSRPT_HTTPS);
    assert_int_equal(sts_tlsrpt_scheme_parse("http", 4, &k), STS_EINVAL);
    assert_int_equal(sts_tlsrpt_scheme_parse("mailt", 5, &k), STS_EINVAL);
    sts_tlsrpt_free(&t);
    sts_tlsrpt_free(&t); /* zeroed: a second free is harmless */
    sts_diags_free(&d);
}

/* Every error is reported, not only the first. */
static void test_all_errors(void **state)
{
    (void)state;
    const char *r = "v=TLSRPTv1; rua=ftp://a,mailto:b; _x=1;; e=";
    sts_tlsrpt t;
    sts_diags d;
    sts_diags_init(&d);
    assert_int_equal(sts_tlsrpt_parse(r, strlen(r), &t, &d), STS_ESYNTAX);
    assert_int_equal(d.nerrors, 5);
    assert_int_equal(d.items[0].column, 32); /* mailto:b has no '@' */
    assert_int_equal(d.items[1].column, 35); /* _x */
    assert_int_equal(d.items[2].column, 40); /* ;; */
    assert_int_equal(d.items[3].column, 44); /* e= */
    assert_int_equal(d.items[4].column, 17); /* ftp: no supported URI left, decided last */
    sts_diags_free(&d);
}

static void test_nul_byte(void **state)
{
    (void)state;
    const char r[] = "v=TLSRPTv1; rua=mailto:a@example.com\0x";
    sts_tlsrpt t;
    sts_diags d;
    sts_diags_init(&d);
    assert_int_equal(sts_tlsrpt_parse(r, sizeof(r) - 1, &t, &d), STS_ESYNTAX);
    assert_int_equal(d.items[0].column, 37);
    assert_non_null(strstr(d.items[0].message, "NUL"));
    sts_diags_free(&d);
}

static void test_is_tlsrpt(void **state)
{
    (void)state;
    assert_true(sts_tlsrpt_is_tlsrpt("v=TLSRPTv1;", 11));
    assert_true(sts_tlsrpt_is_tlsrpt("v=TLSRPTv1 ;", 12));
    assert_true(sts_tlsrpt_is_tlsrpt("v=TLSRPTv1\t", 11));
    assert_true(sts_tlsrpt_is_tlsrpt("v=TLSRPTv1", 10));
    assert_false(sts_tlsrpt_is_tlsrpt("v=TLSRPTv10;", 12));
    assert_false(sts_tlsrpt_is_tlsrpt("v=TLSRPTv2;", 11));
    assert_false(sts_tlsrpt_is_tlsrpt(" v=TLSRPTv1;", 12));
    assert_false(sts_tlsrpt_is_tlsrpt("v=STSv1; id=1", 13));
    assert_false(sts_tlsrpt_is_tlsrpt("v=TLSRPT", 8));
    assert_false(sts_tlsrpt_is_tlsrpt("", 0));
}

static void test_record_name(void **state)
{
    (void)state;
    char name[300];
    assert_int_equal(sts_tlsrpt_record_name("example.com", name, sizeof(name)), 0);
    assert_string_equal(name, "_smtp._tls.example.com");
    assert_int_equal(sts_tlsrpt_record_name("example.com.", name, sizeof(name)), 0);
    assert_string_equal(name, "_smtp._tls.example.com");
    assert_int_equal(sts_tlsrpt_record_name("", name, sizeof(name)), STS_EINVAL);
    assert_int_equal(sts_tlsrpt_record_name(".", name, sizeof(name)), STS_EINVAL);
    assert_int_equal(sts_tlsrpt_record_name("example.com", name, 10), STS_ETOOBIG);
    char longname[260];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    longname[242] = '\0'; /* 11 + 242 = 253: the longest */
    assert_int_equal(sts_tlsrpt_record_name(longname, name, sizeof(name)), 0);
    assert_int_equal(strlen(name), 253);
    longname[242] = 'a';
    longname[243] = '\0';
    assert_int_equal(sts_tlsrpt_record_name(longname, name, sizeof(name)), STS_ETOOBIG);
}

static void test_select(void **state)
{
    (void)state;
    sts_tlsrpt t;
    char why[256];
    const char *none[] = {"v=spf1 -all", "v=STSv1; id=1;"};
    assert_int_equal(sts_tlsrpt_select(none, NULL, 2, &t, NULL, why, sizeof(why)), STS_ENOTFOUND);
    assert_string_equal(why, "no TXT record begins with v=TLSRPTv1: no reporting");
    assert_int_equal(sts_tlsrpt_select(NULL, NULL, 0, &t, NULL, why, sizeof(why)), STS_ENOTFOUND);
    assert_string_equal(why, "no TXT record: no reporting");

    /* The others are discarded, also one with another version and one with leading space. */
    const char *one[] = {"v=spf1 -all", "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example",
                         "v=TLSRPTv2; rua=mailto:x@example.com", " v=TLSRPTv1; rua=mailto:y@x.y"};
    assert_int_equal(sts_tlsrpt_select(one, NULL, 4, &t, NULL, why, sizeof(why)), 0);
    assert_int_equal(t.nrua, 2);
    assert_string_equal(why, "TLSRPT record rua=mailto:a@example.com,https://r.example");
    sts_tlsrpt_free(&t);

    /* "If the number of resulting records is not one": none, even when both are valid. */
    const char *two[] = {"v=TLSRPTv1; rua=mailto:a@example.com",
                         "v=TLSRPTv1;rua=https://r.example.com"};
    assert_int_equal(sts_tlsrpt_select(two, NULL, 2, &t, NULL, why, sizeof(why)), STS_EINVAL);
    assert_string_equal(
        why, "2 TXT records begin with v=TLSRPTv1: no reporting (RFC 8460 3 requires exactly one)");
    assert_int_equal(t.nrua, 0);
    /* An invalid second record still counts. */
    const char *twobad[] = {"v=TLSRPTv1; rua=mailto:a@example.com", "v=TLSRPTv1"};
    assert_int_equal(sts_tlsrpt_select(twobad, NULL, 2, &t, NULL, why, sizeof(why)), STS_EINVAL);

    /* One, invalid: no reporting, with the reason. */
    const char *bad[] = {"v=TLSRPTv1; rua=http://r.example.com", "other"};
    sts_diags d;
    sts_diags_init(&d);
    assert_int_equal(sts_tlsrpt_select(bad, NULL, 2, &t, &d, why, sizeof(why)), STS_ESYNTAX);
    assert_int_equal(d.nerrors, 1);
    assert_non_null(strstr(why, "invalid TLSRPT record: line 1, column 17: rua URI"));
    assert_non_null(strstr(why, ": no reporting"));
    assert_null(t.rua);
    sts_diags_free(&d);

    /* Lengths given: records need not be NUL-terminated; why may be NULL. */
    const char *lr[] = {"v=TLSRPTv1; rua=mailto:a@example.comXYZ"};
    size_t lens[] = {36};
    assert_int_equal(sts_tlsrpt_select(lr, lens, 1, &t, NULL, NULL, 0), 0);
    assert_string_equal(t.rua[0].uri, "mailto:a@example.com");
    sts_tlsrpt_free(&t);

    /* A why buffer too small for the list is cut, not overrun. */
    char small[24];
    assert_int_equal(sts_tlsrpt_select(one, NULL, 4, &t, NULL, small, sizeof(small)), 0);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    sts_tlsrpt_free(&t);
}

/* A bounded mutation run (deterministic seed): random edits of the table's records never
 * crash (run under ASan), the verdict agrees with the diagnostics, and a valid record has
 * at least one mailto or https URI and is a TLSRPT record. */
static const char *case_rec(size_t i)
{
    return cases[i].rec;
}

static void check_mutant(const char *buf, size_t len)
{
    sts_diags d;
    sts_diags_init(&d);
    sts_tlsrpt t;
    int rc = sts_tlsrpt_parse(buf, len, &t, &d);
    if (rc == 0) {
        assert_int_equal(d.nerrors, 0);
        assert_true(t.nrua >= 1);
        for (size_t i = 0; i < t.nrua; i++)
            assert_true(t.rua[i].scheme == STS_TLSRPT_MAILTO ||
                        t.rua[i].scheme == STS_TLSRPT_HTTPS);
        assert_true(sts_tlsrpt_is_tlsrpt(buf, len));
        sts_tlsrpt_free(&t);
    } else {
        assert_int_equal(rc, STS_ESYNTAX);
        assert_true(d.nerrors > 0);
        assert_null(t.rua);
    }
    sts_diags_free(&d);
}

static void test_fuzz_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "v=TLSRPT1;rua:/@,.mailtohps \t%!-_[]\x00\x80";
    txt_mutation_run(sizeof(cases) / sizeof(cases[0]), case_rec, alphabet, sizeof(alphabet) - 1,
                     20000, check_mutant);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table), cmocka_unit_test(test_rua_list),
        cmocka_unit_test(test_all_errors),  cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_is_tlsrpt),   cmocka_unit_test(test_record_name),
        cmocka_unit_test(test_select),      cmocka_unit_test(test_fuzz_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
