/*
 * test_fetch.c - the HTTPS policy fetcher (libcurl multi-socket on libuv) against an
 * in-test HTTPS server built on common/tls.h with certificates from common/testca.h.
 * Each case serves one canned response (or none) with one certificate and checks
 * the RFC 8461 3.3 verdict: ok, or sts-policy-fetch-error / sts-webpki-invalid with
 * its detail.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/testca.h"
#include "common/tls.h"
#include "sender/fetch.h"

#define DAY (24L * 3600L)
/* 66 bytes: the Content-Length of the responses below */
#define POLICY "version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 86400\n"

/* ---- shared certificates ---- */

static struct {
    char dir[64];
    char ca_pem[128], other_pem[128];
    sts_ca *ca, *other;
    time_t now;
    SSL_CTX *good, *wrong_name, *expired, *untrusted;
} W;

static SSL_CTX *make_ctx(sts_ca *ca, const char *name, time_t nb, time_t na)
{
    const char *names[] = {name};
    sts_cert_spec spec = {.names = names, .nnames = 1, .not_before = nb, .not_after = na};
    X509 *cert;
    EVP_PKEY *key;
    char err[256];
    if (sts_ca_mint(ca, &spec, 0, &cert, &key) != 0)
        return NULL;
    SSL_CTX *ctx = sts_tls_server_ctx(cert, key, NULL, 0, 0, err, sizeof(err));
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}

static int group_setup(void **state)
{
    char err[256];
    W.now = time(NULL);
    snprintf(W.dir, sizeof(W.dir), "/tmp/test_fetch.XXXXXX");
    if (!mkdtemp(W.dir))
        return -1;
    snprintf(W.ca_pem, sizeof(W.ca_pem), "%s/ca.pem", W.dir);
    snprintf(W.other_pem, sizeof(W.other_pem), "%s/other.pem", W.dir);
    /* The CA is valid from a month ago so that the time-travel case can go back. */
    W.ca = sts_ca_new("fetch test root", W.now - 30 * DAY, err, sizeof(err));
    W.other = sts_ca_new("someone else's root", 0, err, sizeof(err));
    if (!W.ca || !W.other || sts_ca_write_pem(W.ca, W.ca_pem) ||
        sts_ca_write_pem(W.other, W.other_pem))
        return -1;
    W.good = make_ctx(W.ca, "mta-sts.example.test", 0, 0);
    W.wrong_name = make_ctx(W.ca, "mta-sts.other.test", 0, 0);
    W.expired = make_ctx(W.ca, "mta-sts.example.test", W.now - 20 * DAY, W.now - 10 * DAY);
    W.untrusted = make_ctx(W.other, "mta-sts.example.test", 0, 0);
    return W.good && W.wrong_name && W.expired && W.untrusted ? 0 : -1;
}

static int group_teardown(void **state)
{
    SSL_CTX_free(W.good);
    SSL_CTX_free(W.wrong_name);
    SSL_CTX_free(W.expired);
    SSL_CTX_free(W.untrusted);
    sts_ca_free(W.ca);
    sts_ca_free(W.other);
    unlink(W.ca_pem);
    unlink(W.other_pem);
    rmdir(W.dir);
    return 0;
}

/* ---- the in-test HTTPS server ---- */

struct hsrv {
    uv_tcp_t tcp;
    SSL_CTX *ctx;
    int port;
    const char *response; /* raw HTTP response; NULL = never answer */
    int nconn;
    int nrequests;
    char request[2048];
};

struct conn {
    struct hsrv *h;
    sts_buf req;
    int answered;
};

static void c_tls(sts_stream *s, int status)
{
    if (status != 0)
        sts_stream_close(s); /* e.g. the client rejected our certificate */
}

static void c_read(sts_stream *s, const char *data, size_t len)
{
    struct conn *c = sts_stream_data(s);
    if (sts_buf_append(&c->req, data, len) != 0) {
        sts_stream_close(s);
        return;
    }
    if (c->answered || !strstr(c->req.data, "\r\n\r\n"))
        return;
    c->answered = 1;
    c->h->nrequests++;
    snprintf(c->h->request, sizeof(c->h->request), "%s", c->req.data);
    if (!c->h->response)
        return; /* hang: the client must time out */
    sts_stream_write(s, c->h->response, strlen(c->h->response));
    sts_stream_shutdown(s);
}

static void c_eof(sts_stream *s, int status)
{
    sts_stream_close(s);
}

static void c_close(sts_stream *s)
{
    struct conn *c = sts_stream_data(s);
    sts_buf_free(&c->req);
    free(c);
}

static const sts_stream_cbs conn_cbs = {
    .on_read = c_read, .on_tls = c_tls, .on_eof = c_eof, .on_close = c_close};

static void on_connection(uv_stream_t *server, int status)
{
    struct hsrv *h = server->data;
    if (status < 0)
        return;
    struct conn *c = calloc(1, sizeof(*c));
    c->h = h;
    sts_buf_init(&c->req, 16384);
    sts_stream *s = sts_stream_new(server->loop, &conn_cbs, c);
    h->nconn++;
    if (sts_stream_accept(s, server) != 0 || sts_stream_start_tls_server(s, h->ctx) != 0)
        sts_stream_close(s);
}

static void hsrv_start(uv_loop_t *loop, struct hsrv *h, SSL_CTX *ctx, const char *response)
{
    memset(h, 0, sizeof(*h));
    h->ctx = ctx;
    h->response = response;
    assert_int_equal(uv_tcp_init(loop, &h->tcp), 0);
    h->tcp.data = h;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", 0, &sa);
    assert_int_equal(uv_tcp_bind(&h->tcp, (struct sockaddr *)&sa, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&h->tcp, 16, on_connection), 0);
    int len = sizeof(sa);
    uv_tcp_getsockname(&h->tcp, (struct sockaddr *)&sa, &len);
    h->port = ntohs(sa.sin_port);
}

/* ---- results ---- */

struct got {
    int calls;
    int in_call;
    int ok, err;
    long status;
    char content_type[128];
    sts_result_type result_type;
    char detail[512];
    char url[256];
    sts_buf body;
};

static void fetch_cb(const sts_fetch_result *r, void *arg)
{
    struct got *g = arg;
    assert_false(g->in_call);
    g->calls++;
    g->ok = r->ok;
    g->err = r->err;
    g->status = r->status;
    snprintf(g->content_type, sizeof(g->content_type), "%s",
             r->content_type ? r->content_type : "");
    g->result_type = r->result_type;
    snprintf(g->detail, sizeof(g->detail), "%s", r->detail ? r->detail : "");
    snprintf(g->url, sizeof(g->url), "%s", r->url);
    if (r->ok)
        sts_buf_append(&g->body, r->body, r->body_len);
    if (r->ok)
        assert_int_equal(r->result_type, STS_RESULT_NONE);
    else
        assert_int_not_equal(r->err, 0);
}

struct fcase {
    const char *name;
    SSL_CTX **ctx;
    const char *response;
    int use_other_ca;  /* the fetcher trusts someone else's root */
    time_t now_offset; /* fetcher clock = now + offset (0 = wall clock) */
    double timeout;
    int ok;
    int err;
    sts_result_type result_type;
    const char *detail_part;
    long status;
};

#define RESP(status, headers, body)                                                                \
    "HTTP/1.1 " status "\r\n" headers "Content-Length: " #body "\r\n\r\n"

static char big_response[STS_FETCH_MAX_BODY + 4096];

static const struct fcase cases[] = {
    {"ok", &W.good,
     "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 66\r\n"
     "\r\n" POLICY,
     0, 0, 5, 1, 0, STS_RESULT_NONE, NULL, 200},
    {"ok, upper-case media type", &W.good,
     "HTTP/1.1 200 OK\r\nContent-Type: Text/Plain\r\nConnection: close\r\n\r\n" POLICY, 0, 0, 5, 1,
     0, STS_RESULT_NONE, NULL, 200},
    {"404", &W.good,
     "HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 0\r\n\r\n", 0, 0, 5, 0,
     STS_EPROTO, STS_RESULT_STS_POLICY_FETCH_ERROR, "HTTP status 404", 404},
    {"redirect", &W.good,
     "HTTP/1.1 301 Moved\r\nLocation: https://elsewhere.test/p.txt\r\nContent-Length: 0\r\n\r\n", 0,
     0, 5, 0, STS_EPROTO, STS_RESULT_STS_POLICY_FETCH_ERROR,
     "redirect (301) not followed to https://elsewhere.test/p.txt", 301},
    {"text/html", &W.good,
     "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 66\r\n\r\n" POLICY, 0, 0, 5, 0,
     STS_EPROTO, STS_RESULT_STS_POLICY_FETCH_ERROR, "Content-Type text/html is not text/plain",
     200},
    {"text/plainx", &W.good,
     "HTTP/1.1 200 OK\r\nContent-Type: text/plainx\r\nContent-Length: 66\r\n\r\n" POLICY, 0, 0, 5,
     0, STS_EPROTO, STS_RESULT_STS_POLICY_FETCH_ERROR, "is not text/plain", 200},
    {"no content type", &W.good, "HTTP/1.1 200 OK\r\nContent-Length: 66\r\n\r\n" POLICY, 0, 0, 5, 0,
     STS_EPROTO, STS_RESULT_STS_POLICY_FETCH_ERROR, "no Content-Type", 200},
    {"too big", &W.good, big_response, 0, 0, 5, 0, STS_ETOOBIG, STS_RESULT_STS_POLICY_FETCH_ERROR,
     "body over 65536 bytes", 200},
    {"timeout", &W.good, NULL, 0, 0, 0.5, 0, STS_ETIMEDOUT, STS_RESULT_STS_POLICY_FETCH_ERROR, "",
     0},
    {"wrong name", &W.wrong_name, "HTTP/1.1 200 OK\r\n\r\n", 0, 0, 5, 0, STS_ETLS,
     STS_RESULT_STS_WEBPKI_INVALID, "mta-sts.example.test", 0},
    {"expired", &W.expired, "HTTP/1.1 200 OK\r\n\r\n", 0, 0, 5, 0, STS_ETLS,
     STS_RESULT_STS_WEBPKI_INVALID, "expired", 0},
    {"expired, but the clock is back when it was valid", &W.expired,
     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 66\r\n\r\n" POLICY, 0,
     -15 * DAY, 5, 1, 0, STS_RESULT_NONE, NULL, 200},
    {"valid now, but the clock is set before it", &W.good, "HTTP/1.1 200 OK\r\n\r\n", 0, -5 * DAY,
     5, 0, STS_ETLS, STS_RESULT_STS_WEBPKI_INVALID, "not yet valid", 0},
    {"untrusted root", &W.untrusted, "HTTP/1.1 200 OK\r\n\r\n", 0, 0, 5, 0, STS_ETLS,
     STS_RESULT_STS_WEBPKI_INVALID, "certificate of mta-sts.example.test", 0},
    {"trusting another root", &W.good, "HTTP/1.1 200 OK\r\n\r\n", 1, 0, 5, 0, STS_ETLS,
     STS_RESULT_STS_WEBPKI_INVALID, "", 0},
};

static void run_case(const struct fcase *c)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct hsrv h;
    hsrv_start(&loop, &h, *c->ctx, c->response);
    sts_log *log = sts_log_new_mem(STS_LOG_DEBUG, NULL);
    sts_fetcher *f;
    char err[256];
    assert_int_equal(sts_fetcher_new(&loop, c->use_other_ca ? W.other_pem : W.ca_pem,
                                     c->now_offset ? time(NULL) + c->now_offset : 0, log, &f, err,
                                     sizeof(err)),
                     0);
    struct got g = {0};
    sts_buf_init(&g.body, 0);
    g.in_call = 1;
    assert_int_equal(
        sts_fetch_policy(f, "Example.Test.", "127.0.0.1", h.port, c->timeout, fetch_cb, &g), 0);
    g.in_call = 0;
    uint64_t t0 = uv_now(&loop);
    while (!g.calls && uv_now(&loop) - t0 < 10000)
        uv_run(&loop, UV_RUN_ONCE);
    if (g.calls != 1)
        fail_msg("%s: no result; transcript:\n%s", c->name, sts_log_text(log));
    if (g.ok != c->ok || g.err != c->err || g.result_type != c->result_type ||
        (c->detail_part && !strstr(g.detail, c->detail_part)) || g.status != c->status)
        fail_msg("%s: ok %d err %s result_type '%s' status %ld detail '%s'\ntranscript:\n%s",
                 c->name, g.ok, sts_errname(g.err),
                 g.result_type ? sts_result_type_name(g.result_type) : "", g.status, g.detail,
                 sts_log_text(log));
    char want_url[128];
    snprintf(want_url, sizeof(want_url), "https://mta-sts.example.test:%d/.well-known/mta-sts.txt",
             h.port);
    assert_string_equal(g.url, want_url);
    if (c->ok) {
        assert_int_equal(g.body.len, strlen(POLICY));
        assert_memory_equal(g.body.data, POLICY, g.body.len);
        char want_host[128];
        snprintf(want_host, sizeof(want_host), "\r\nHost: mta-sts.example.test:%d\r\n", h.port);
        assert_non_null(strstr(h.request, "GET /.well-known/mta-sts.txt HTTP/1.1\r\n"));
        assert_non_null(strstr(h.request, want_host));
    }
    if (c->timeout < 1)
        assert_true(uv_now(&loop) - t0 < 3000);
    sts_buf_free(&g.body);
    sts_fetcher_free(f);
    uv_close((uv_handle_t *)&h.tcp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    sts_log_free(log);
}

static void test_fetch_table(void **state)
{
    assert_int_equal(strlen(POLICY), 66);
    /* 200 with a body over the cap: the fetcher must stop reading at 64 KiB. */
    int n = snprintf(big_response, sizeof(big_response),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n",
                     STS_FETCH_MAX_BODY + 1000);
    memset(big_response + n, 'x', STS_FETCH_MAX_BODY + 1000);
    big_response[n + STS_FETCH_MAX_BODY + 1000] = '\0';
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        run_case(&cases[i]);
}

static void test_connect_refused(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    /* A port nobody listens on: bind, learn the port, close. */
    struct hsrv h;
    hsrv_start(&loop, &h, W.good, NULL);
    int port = h.port;
    uv_close((uv_handle_t *)&h.tcp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    sts_fetcher *f;
    assert_int_equal(sts_fetcher_new(&loop, W.ca_pem, 0, NULL, &f, NULL, 0), 0);
    struct got g = {0};
    assert_int_equal(sts_fetch_policy(f, "example.test", "127.0.0.1", port, 5, fetch_cb, &g), 0);
    while (!g.calls)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(g.err, STS_ECONNECT);
    assert_int_equal(g.result_type, STS_RESULT_STS_POLICY_FETCH_ERROR);
    sts_fetcher_free(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_free_cancels(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct hsrv h;
    hsrv_start(&loop, &h, W.good, NULL); /* never answers */
    sts_fetcher *f;
    assert_int_equal(sts_fetcher_new(&loop, W.ca_pem, 0, NULL, &f, NULL, 0), 0);
    struct got g1 = {0}, g2 = {0};
    assert_int_equal(sts_fetch_policy(f, "example.test", "127.0.0.1", h.port, 5, fetch_cb, &g1), 0);
    assert_int_equal(sts_fetch_policy(f, "example.test", "127.0.0.1", h.port, 5, fetch_cb, &g2), 0);
    while (h.nrequests < 2)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(g1.calls + g2.calls, 0);
    assert_int_equal(h.nconn, 2); /* no connection reuse */
    sts_fetcher_free(f);
    assert_int_equal(g1.calls, 1);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g1.err, STS_ECLOSED);
    assert_string_equal(g1.detail, "cancelled");
    uv_close((uv_handle_t *)&h.tcp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_bad_arguments(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sts_fetcher *f;
    assert_int_equal(sts_fetcher_new(&loop, NULL, 0, NULL, &f, NULL, 0), 0);
    struct got g = {0};
    assert_int_equal(sts_fetch_policy(f, "example.test", "not-an-ip", 443, 5, fetch_cb, &g),
                     STS_EINVAL);
    assert_int_equal(sts_fetch_policy(f, "bad domain", "127.0.0.1", 443, 5, fetch_cb, &g),
                     STS_EINVAL);
    assert_int_equal(sts_fetch_policy(f, "", "127.0.0.1", 443, 5, fetch_cb, &g), STS_EINVAL);
    assert_int_equal(sts_fetch_policy(f, "example.test", "127.0.0.1", 70000, 5, fetch_cb, &g),
                     STS_EINVAL);
    assert_int_equal(g.calls, 0);
    sts_fetcher_free(f);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fetch_table),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_free_cancels),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
