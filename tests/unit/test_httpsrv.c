/*
 * test_httpsrv.c - the policy server's request-head parser: a table of valid and
 * invalid HTTP/1.x request heads (RFC 9112) and the status each gets; the chunked
 * encoding of answers.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fakedns/httpsrv.h"

struct hcase {
    const char *what;
    const char *req;
    int status;         /* 0 = needs more */
    const char *method; /* for 200 */
    const char *path;
    const char *host; /* NULL = no Host field */
};

static const struct hcase cases[] = {
    {"plain GET", "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\n\r\n",
     200, "GET", "/.well-known/mta-sts.txt", "mta-sts.example.test"},
    {"host with port, OWS",
     "GET / HTTP/1.1\r\nhOsT:   mta-sts.example.test:10443  \r\nAccept: */*\r\n\r\n", 200, "GET",
     "/", "mta-sts.example.test:10443"},
    {"bare LF line ends", "GET /x HTTP/1.1\nHost: h\n\n", 200, "GET", "/x", "h"},
    {"HTTP/1.0 without Host", "HEAD / HTTP/1.0\r\n\r\n", 200, "HEAD", "/", NULL},
    {"other method parses", "POST / HTTP/1.1\r\nHost: h\r\n\r\n", 200, "POST", "/", "h"},
    {"incomplete head", "GET / HTTP/1.1\r\nHost: h\r\n", 0, NULL, NULL, NULL},
    {"empty", "", 0, NULL, NULL, NULL},
    {"HTTP/1.1 without Host", "GET / HTTP/1.1\r\n\r\n", 400, NULL, NULL, NULL},
    {"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, NULL, NULL, NULL},
    {"space before colon", "GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, NULL, NULL, NULL},
    {"no colon", "GET / HTTP/1.1\r\nHost h\r\n\r\n", 400, NULL, NULL, NULL},
    {"absolute-form target", "GET https://h/ HTTP/1.1\r\nHost: h\r\n\r\n", 400, NULL, NULL, NULL},
    {"missing version", "GET /\r\nHost: h\r\n\r\n", 400, NULL, NULL, NULL},
    {"two spaces", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", 400, NULL, NULL, NULL},
    {"bad method char", "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", 400, NULL, NULL, NULL},
    {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, NULL, NULL, NULL},
    {"bad version", "GET / HTTP/1.x\r\nHost: h\r\n\r\n", 400, NULL, NULL, NULL},
    {"lowercase http", "GET / http/1.1\r\nHost: h\r\n\r\n", 400, NULL, NULL, NULL},
    {"control char in value", "GET / HTTP/1.1\r\nHost: h\x01x\r\n\r\n", 400, NULL, NULL, NULL},
    {"control char in target", "GET /\x7f HTTP/1.1\r\nHost: h\r\n\r\n", 400, NULL, NULL, NULL},
};

static void test_parse_table(void **state)
{
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct hcase *c = &cases[i];
        sts_http_request req;
        print_message("case: %s\n", c->what);
        int st = sts_http_parse_request(c->req, strlen(c->req), &req);
        assert_int_equal(st, c->status);
        if (st != 200)
            continue;
        assert_string_equal(req.method, c->method);
        assert_string_equal(req.path, c->path);
        assert_int_equal(req.have_host, c->host != NULL);
        if (c->host)
            assert_string_equal(req.host, c->host);
    }
}

static void test_parse_limits(void **state)
{
    sts_http_request req;
    /* A target longer than we keep: 414. */
    char *big = malloc(4096);
    strcpy(big, "GET /");
    memset(big + 5, 'a', 2000);
    strcpy(big + 2005, " HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_int_equal(sts_http_parse_request(big, strlen(big), &req), 414);
    free(big);
    /* A head that never ends within the cap: 431, not "need more". */
    char *head = malloc(STS_HTTP_MAX_HEAD + 64);
    int n = snprintf(head, 64, "GET / HTTP/1.1\r\nX: ");
    memset(head + n, 'x', STS_HTTP_MAX_HEAD);
    size_t len = (size_t)n + STS_HTTP_MAX_HEAD;
    assert_int_equal(sts_http_parse_request(head, len, &req), 431);
    assert_int_equal(sts_http_parse_request(head, STS_HTTP_MAX_HEAD - 1, &req), 0);
    free(head);
}

/* RFC 9112 7.1: chunk-size in hex, CRLF, data, CRLF; last-chunk "0", trailer, CRLF. */
static const struct {
    const char *body;
    size_t chunk;
    const char *wire;
} chunks[] = {
    {"", 64, "0\r\n\r\n"},
    {"abc", 64, "3\r\nabc\r\n0\r\n\r\n"},
    {"abcdefghijklmnopq", 16, "10\r\nabcdefghijklmnop\r\n1\r\nq\r\n0\r\n\r\n"},
    {"abcd", 2, "2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"},
};

static void test_chunk(void **state)
{
    for (size_t i = 0; i < sizeof(chunks) / sizeof(chunks[0]); i++) {
        sts_buf b;
        sts_buf_init(&b, 0);
        assert_int_equal(sts_http_chunk(chunks[i].body, strlen(chunks[i].body), chunks[i].chunk, &b),
                         0);
        assert_int_equal(b.len, strlen(chunks[i].wire));
        assert_memory_equal(b.data, chunks[i].wire, b.len);
        sts_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
