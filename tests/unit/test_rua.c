/* test_rua.c - a TLSRPT rua URI taken apart for delivery (sender/rua.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "sender/rua.h"

struct rua_case {
    const char *uri;
    int ok;
    sts_tlsrpt_scheme scheme;
    const char *addr_or_host; /* mailto: the address; https: the host */
    const char *domain_or_path;
    int port;                 /* https */
    unsigned long long limit; /* mailto */
    int literal;
    const char *errpart; /* !ok: a piece of the message */
};

#define M STS_TLSRPT_MAILTO
#define H STS_TLSRPT_HTTPS

static const struct rua_case cases[] = {
    /* RFC 8460 3.1.1 / 3.1.2 */
    {"mailto:reports@example.com", 1, M, "reports@example.com", "example.com", 0, 0, 0, NULL},
    {"https://reporting.example.com/v1/tlsrpt", 1, H, "reporting.example.com", "/v1/tlsrpt", 443, 0,
     0, NULL},
    /* scheme and domain case, %HH, hfields, a trailing dot */
    {"MAILTO:TLS%2Brpt@Example.COM.?subject=x", 1, M, "TLS+rpt@Example.COM.", "example.com", 0, 0,
     0, NULL},
    {"mailto:a@[192.0.2.1]", 1, M, "a@[192.0.2.1]", "192.0.2.1", 0, 0, 1, NULL},
    {"mailto:a@[IPv6:2001:db8::1]", 1, M, "a@[IPv6:2001:db8::1]", "2001:db8::1", 0, 0, 1, NULL},
    {"mailto:a@[IPv6:2D:B8::]", 1, M, "a@[IPv6:2D:B8::]", "2d:b8::", 0, 0, 1, NULL},
    /* DMARC-style size limits */
    {"mailto:a@example.com!10m", 1, M, "a@example.com", "example.com", 0, 10ULL << 20, 0, NULL},
    {"mailto:a@example.com!500", 1, M, "a@example.com", "example.com", 0, 500, 0, NULL},
    {"mailto:a@example.com!2K", 1, M, "a@example.com", "example.com", 0, 2048, 0, NULL},
    /* https: port, query, fragment dropped, no path, IP literals, trailing dot */
    {"https://r.example.com:8443/a%2Cb?x=1&y=2#frag", 1, H, "r.example.com", "/a%2Cb?x=1&y=2", 8443,
     0, 0, NULL},
    {"HTTPS://R.Example.COM", 1, H, "r.example.com", "/", 443, 0, 0, NULL},
    {"https://r.example.com?x=1", 1, H, "r.example.com", "/?x=1", 443, 0, 0, NULL},
    {"https://[2001:db8::1]:444/r", 1, H, "2001:db8::1", "/r", 444, 0, 1, NULL},
    {"https://192.0.2.7/r", 1, H, "192.0.2.7", "/r", 443, 0, 1, NULL},
    {"https://r.example.com.:443", 1, H, "r.example.com", "/", 443, 0, 0, NULL},
    /* an IPv4 address with a trailing dot is that address (found by fuzz_rua) */
    {"https://192.0.2.72./R.", 1, H, "192.0.2.72", "/R.", 443, 0, 1, NULL},
    /* errors, each named */
    {"ftp://r.example.com/", 0, M, NULL, NULL, 0, 0, 0, "not a mailto: or https: URI"},
    {"reports@example.com", 0, M, NULL, NULL, 0, 0, 0, "not a mailto: or https: URI"},
    {"mailto:", 0, M, NULL, NULL, 0, 0, 0, "empty address"},
    {"mailto:reports", 0, M, NULL, NULL, 0, 0, 0, "no '@'"},
    {"mailto:@example.com", 0, M, NULL, NULL, 0, 0, 0, "empty local part"},
    {"mailto:a@b@example.com", 0, M, NULL, NULL, 0, 0, 0, "more than one '@'"},
    {"mailto:a@exa_mple..com", 0, M, NULL, NULL, 0, 0, 0, "not a host name"},
    {"mailto:a@-example.com", 0, M, NULL, NULL, 0, 0, 0, "not a host name"},
    {"mailto:a%2@example.com", 0, M, NULL, NULL, 0, 0, 0, "two hex digits"},
    {"mailto:a%0A@example.com", 0, M, NULL, NULL, 0, 0, 0, "control"},
    {"mailto:a b@example.com", 0, M, NULL, NULL, 0, 0, 0, "a space"},
    {"mailto:a@[999.1.1.1]", 0, M, NULL, NULL, 0, 0, 0, "address literal"},
    {"mailto:a@[192.0.2.1", 0, M, NULL, NULL, 0, 0, 0, "unterminated"},
    {"mailto:a@example.com!10x", 0, M, NULL, NULL, 0, 0, 0, "not followed by a size"},
    {"mailto:a@example.com!", 0, M, NULL, NULL, 0, 0, 0, "not followed by a size"},
    {"mailto:a@example.com!99999999999999999999999", 0, M, NULL, NULL, 0, 0, 0,
     "not followed by a size"},
    {"https:r.example.com/x", 0, H, NULL, NULL, 0, 0, 0, "no '//'"},
    {"https:///x", 0, H, NULL, NULL, 0, 0, 0, "empty host"},
    {"https://:443/x", 0, H, NULL, NULL, 0, 0, 0, "empty host"},
    {"https://user@r.example.com/", 0, H, NULL, NULL, 0, 0, 0, "userinfo"},
    {"https://r.example.com:99999/", 0, H, NULL, NULL, 0, 0, 0, "port out of range"},
    {"https://r.example.com:0/", 0, H, NULL, NULL, 0, 0, 0, "port out of range"},
    {"https://r.example.com:8x/", 0, H, NULL, NULL, 0, 0, 0, "not a number"},
    {"https://[2001:db8::1/", 0, H, NULL, NULL, 0, 0, 0, "unterminated"},
    {"https://[r.example.com]/", 0, H, NULL, NULL, 0, 0, 0, "not an IPv6"},
    {"https://r_.exa mple.com/", 0, H, NULL, NULL, 0, 0, 0, "not a host name"},
    {"https://r.example.com/a b", 0, H, NULL, NULL, 0, 0, 0, "in the path"},
};

static void test_rua_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct rua_case *c = &cases[i];
        sts_rua r;
        char err[512];
        int rc = sts_rua_parse(c->uri, &r, err, sizeof(err));
        print_message("%s -> %d %s\n", c->uri, rc, rc ? err : "");
        if (!c->ok) {
            assert_int_equal(rc, STS_ESYNTAX);
            assert_non_null(strstr(err, c->errpart));
            assert_non_null(strstr(err, c->uri)); /* the URI is named */
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(r.scheme, c->scheme);
        if (c->scheme == STS_TLSRPT_MAILTO) {
            assert_string_equal(r.address, c->addr_or_host);
            assert_string_equal(r.domain, c->domain_or_path);
            assert_int_equal(r.limit, c->limit);
            assert_int_equal(r.domain_literal, c->literal);
        } else {
            assert_string_equal(r.host, c->addr_or_host);
            assert_string_equal(r.path, c->domain_or_path);
            assert_int_equal(r.port, c->port);
            assert_int_equal(r.host_literal, c->literal);
        }
    }
}

/* Every URI the TLSRPT parser accepts is one rua.c takes apart (or names why not). */
static void test_parser_agrees(void **state)
{
    (void)state;
    const char *rec = "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com:8443/x?y=1,"
                      "MAILTO:b%2Bc@[192.0.2.1]";
    sts_tlsrpt t;
    sts_diags d;
    sts_diags_init(&d);
    assert_int_equal(sts_tlsrpt_parse(rec, strlen(rec), &t, &d), 0);
    assert_int_equal(t.nrua, 3);
    const char *want[] = {"a@example.com", "r.example.com", "b+c@[192.0.2.1]"};
    for (size_t i = 0; i < t.nrua; i++) {
        sts_rua r;
        char err[256];
        assert_int_equal(sts_rua_parse(t.rua[i].uri, &r, err, sizeof(err)), 0);
        assert_int_equal(r.scheme, t.rua[i].scheme);
        assert_string_equal(r.scheme == STS_TLSRPT_MAILTO ? r.address : r.host, want[i]);
    }
    sts_tlsrpt_free(&t);
    sts_diags_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rua_table),
        cmocka_unit_test(test_parser_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
