/*
 * test_httpsrv.c - the policy server's request-head parser: a table of valid and
 * invalid HTTP/1.x request heads (RFC 9112) and the status each gets; the chunked
 * encoding of answers; and the listener's connection-level knobs (handshake: abort,
 * https: false) against a real client stream on loopback, each row checked for what
 * the client saw, what the observer recorded and the transcript line.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/testca.h"
#include "fakedns/httpsrv.h"
#include "fakedns/served.h"
#include "fakedns/tcpsrv.h"
#include "tests/unit/unit_fixture.h"

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

/* Persistence (RFC 9112 9.3), content and the head's length, each request followed by
 * the next one's first octets (a pipelined client). */
static const struct {
    const char *what;
    const char *req;
    int keep_alive, has_content;
    size_t head_len;
} persist[] = {
    {"HTTP/1.1 persists", "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET", 1, 0, 27},
    {"close token", "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\nG", 0, 0, 46},
    {"close in a list, any case", "GET / HTTP/1.1\r\nHost: h\r\nconnection: TE, Close\r\n\r\n", 0,
     0, 50},
    {"closed is not close", "GET / HTTP/1.1\r\nHost: h\r\nConnection: closed\r\n\r\n", 1, 0, 47},
    {"HTTP/1.0 closes", "GET / HTTP/1.0\r\n\r\nGET", 0, 0, 18},
    {"HTTP/1.0 keep-alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", 1, 0, 42},
    {"keep-alive and close", "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n", 0, 0, 49},
    {"bare LF head", "GET / HTTP/1.1\nHost: h\n\nGET", 1, 0, 24},
    {"content", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello", 1, 1, 46},
    {"no content", "GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 00\r\n\r\n", 1, 0, 47},
    {"chunked content", "GET / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n", 1, 1,
     55},
};

static void test_parse_persist(void **state)
{
    for (size_t i = 0; i < sizeof(persist) / sizeof(persist[0]); i++) {
        sts_http_request req;
        print_message("case: %s\n", persist[i].what);
        assert_int_equal(sts_http_parse_request(persist[i].req, strlen(persist[i].req), &req), 200);
        assert_int_equal(req.keep_alive, persist[i].keep_alive);
        assert_int_equal(req.has_content, persist[i].has_content);
        assert_int_equal(req.head_len, persist[i].head_len);
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
        assert_int_equal(
            sts_http_chunk(chunks[i].body, strlen(chunks[i].body), chunks[i].chunk, &b), 0);
        assert_int_equal(b.len, strlen(chunks[i].wire));
        assert_memory_equal(b.data, chunks[i].wire, b.len);
        sts_buf_free(&b);
    }
}

/* ---- the listener's knobs, with a real client ---- */

static const char POLICY[] =
    "version: STSv1\r\nmode: enforce\r\nmx: mail.example.test\r\nmax_age: 86400\r\n";
static const char GET[] =
    "GET /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.test\r\n\r\n";

static const struct kcase {
    const char *what;
    int https;      /* the listener serves TLS (conf.ctx set) */
    int abort_hs;   /* conf.handshake_abort */
    int refuse;     /* conf.refuse */
    int client_tls; /* the client starts TLS; else it sends GET in the clear */
    double idle;    /* seconds the client waits after connecting before it talks */
    /* what must happen */
    int tls_ok;         /* 1 handshake done, -1 failed, 0 never started */
    int early_eof;      /* the server closed while the client was still idle */
    int answered;       /* the client got "HTTP/1.1 200 OK" and the policy */
    size_t fetches;     /* policy_fetches records */
    const char *line;   /* in the transcript (NULL = not checked) */
    const char *absent; /* not in the transcript */
    /* the policy_connections record */
    const char *conn;       /* its outcome */
    const char *conn_error; /* in its error (NULL: no error key) */
} kcases[] = {
    {"https, normal handshake", 1, 0, 0, 1, 0, 1, 0, 1, 1, NULL, "aborting", "request", NULL},
    {"https, handshake: abort", 1, 1, 0, 1, 0, -1, 0, 0, 0,
     "policy https#1 aborting the TLS handshake (scripted)", NULL, "handshake_aborted", NULL},
    /* The abort waits for the client's first octets, unlike https: false. */
    {"https, handshake: abort, idle client", 1, 1, 0, 1, 0.3, -1, 0, 0, 0,
     "policy https#1 aborting the TLS handshake (scripted)", NULL, "handshake_aborted", NULL},
    {"https: false, idle client", 1, 0, 1, 1, 0.3, 0, 1, 0, 0, "closed at once (https: false)",
     "aborting", "refused", NULL},
    /* Any first octets end it, even a plaintext request: nothing is answered. */
    {"https, handshake: abort, plaintext GET", 1, 1, 0, 0, 0, 0, 0, 0, 0,
     "policy https#1 aborting the TLS handshake (scripted)", NULL, "handshake_aborted", NULL},
    /* A plaintext request to the TLS listener fails the handshake, with OpenSSL's
     * reason in the record. */
    {"https, plaintext GET", 1, 0, 0, 0, 0, 0, 0, 0, 0, "policy https#1 TLS handshake failed",
     "aborting", "tls_failed", "http request"},
    /* The plain-HTTP listener has no handshake to abort. */
    {"http, handshake: abort ignored", 0, 1, 0, 0, 0, 0, 0, 1, 1, NULL, "aborting", "request",
     NULL},
};

typedef struct kclient {
    const struct kcase *k;
    SSL_CTX *cctx;
    sts_httpsrv *srv;
    sts_stream *st;
    sts_delay *wait;
    uv_timer_t guard; /* a server that never answers fails the row instead of hanging */
    int tls_ok, early_eof, closed, stopped, timed_out;
    char got[1024];
    size_t ngot;
} kclient;

static void kc_talk(kclient *c)
{
    if (c->k->client_tls)
        assert_int_equal(sts_stream_start_tls_client(c->st, c->cctx, "mta-sts.example.test", NULL),
                         0);
    else
        assert_int_equal(sts_stream_write(c->st, GET, strlen(GET)), 0);
}

static void kc_idle_cb(void *arg)
{
    kclient *c = arg;
    c->wait = NULL;
    kc_talk(c);
}

static void kc_connect(sts_stream *st, int status)
{
    kclient *c = sts_stream_data(st);
    assert_int_equal(status, 0);
    if (c->k->idle > 0)
        assert_non_null(c->wait = sts_delay_start(sts_stream_loop(st), c->k->idle, kc_idle_cb, c));
    else
        kc_talk(c);
}

static void kc_tls(sts_stream *st, int status)
{
    kclient *c = sts_stream_data(st);
    c->tls_ok = status == 0 ? 1 : -1;
    if (status == 0)
        assert_int_equal(sts_stream_write(st, GET, strlen(GET)), 0);
    else
        sts_stream_close(st); /* the owner closes after a failed handshake */
}

static void kc_read(sts_stream *st, const char *data, size_t len)
{
    kclient *c = sts_stream_data(st);
    size_t room = sizeof(c->got) - 1 - c->ngot; /* capped: the answer is small */
    if (len > room)
        len = room;
    memcpy(c->got + c->ngot, data, len);
    c->ngot += len;
    c->got[c->ngot] = '\0';
}

static void kc_eof(sts_stream *st, int status)
{
    (void)status;
    kclient *c = sts_stream_data(st);
    if (c->wait) {
        c->early_eof = 1;
        sts_delay_cancel(c->wait);
        c->wait = NULL;
    }
    sts_stream_close(st);
}

static void kc_stopped(void *arg)
{
    ((kclient *)arg)->stopped = 1;
}

static void kc_close(sts_stream *st)
{
    kclient *c = sts_stream_data(st);
    c->closed = 1;
    sts_delay_cancel(c->wait);
    c->wait = NULL;
    uv_close((uv_handle_t *)&c->guard, NULL);
    sts_httpsrv_stop(c->srv, kc_stopped, c);
}

static void kc_guard_cb(uv_timer_t *t)
{
    kclient *c = t->data;
    c->timed_out = 1;
    sts_stream_close(c->st);
}

static const sts_stream_cbs kc_cbs = {
    .on_connect = kc_connect,
    .on_read = kc_read,
    .on_tls = kc_tls,
    .on_eof = kc_eof,
    .on_close = kc_close,
};

static void test_listener_knobs(void **state)
{
    (void)state;
    /* No verification is asked: only whether a handshake happens counts. */
    fixture_tls tls;
    fixture_tls_new(&tls, "mta-sts.example.test");
    SSL_CTX *sctx = tls.sctx, *cctx = tls.cctx;

    int bad = 0;
    for (size_t i = 0; i < sizeof(kcases) / sizeof(kcases[0]); i++) {
        const struct kcase *k = &kcases[i];
        uv_loop_t loop;
        assert_int_equal(uv_loop_init(&loop), 0);
        sts_observer *obs = sts_observer_new();
        sts_log *log = sts_log_new_mem(STS_LOG_INFO, NULL);
        assert_non_null(obs);
        assert_non_null(log);
        sts_httpsrv_conf conf = {
            .scheme = k->https ? "https" : "http",
            .ctx = k->https ? sctx : NULL,
            .present = 1,
            .status = 200,
            .content_type = "text/plain",
            .body = POLICY,
            .body_len = strlen(POLICY),
            .name = "mta-sts.example.test",
            .refuse = k->refuse,
            .handshake_abort = k->abort_hs,
        };
        sts_served *served = sts_served_new(0, NULL);
        assert_non_null(served);
        *(k->https ? &served->https : &served->http) = conf;
        struct sockaddr_in sa;
        kclient c = {.k = k, .cctx = cctx};
        assert_int_equal(sts_httpsrv_start(&loop, fixture_listen_fd(&sa), &served, k->https, 0, obs,
                                           log, &c.srv),
                         0);
        assert_non_null(c.st = sts_stream_new(&loop, &kc_cbs, &c));
        assert_int_equal(sts_stream_connect(c.st, (struct sockaddr *)&sa, NULL), 0);
        assert_int_equal(uv_timer_init(&loop, &c.guard), 0);
        c.guard.data = &c;
        assert_int_equal(uv_timer_start(&c.guard, kc_guard_cb, 10000, 0), 0);
        assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
        assert_true(c.closed && c.stopped);

        json_t *snap = sts_observer_snapshot(obs);
        size_t fetches = json_array_size(json_object_get(snap, "policy_fetches"));
        json_t *conns = json_object_get(snap, "policy_connections");
        json_t *conn = json_array_get(conns, 0);
        const char *outcome = json_string_value(json_object_get(conn, "outcome"));
        const char *cerr = json_string_value(json_object_get(conn, "error"));
        const char *scheme = json_string_value(json_object_get(conn, "scheme"));
        int conn_ok = json_array_size(conns) == 1 && outcome && !strcmp(outcome, k->conn) &&
                      scheme && !strcmp(scheme, k->https ? "https" : "http") &&
                      (k->conn_error ? cerr && strstr(cerr, k->conn_error) != NULL : !cerr);
        char *conns_text = json_dumps(conns, JSON_COMPACT);
        json_decref(snap);
        const char *text = sts_log_text(log);
        int answered = !strncmp(c.got, "HTTP/1.1 200 OK\r\n", 17) && strstr(c.got, POLICY);
        if (c.timed_out || c.tls_ok != k->tls_ok || c.early_eof != k->early_eof ||
            answered != k->answered || (!k->answered && c.ngot) || fetches != k->fetches ||
            (k->line && !strstr(text, k->line)) || (k->absent && strstr(text, k->absent)) ||
            !conn_ok) {
            print_error("%s: timed out %d tls %d early_eof %d answered %d (%zu octets) "
                        "fetches %zu connections %s\n%s\n",
                        k->what, c.timed_out, c.tls_ok, c.early_eof, answered, c.ngot, fetches,
                        conns_text ? conns_text : "?", text);
            bad++;
        }
        free(conns_text);
        assert_int_equal(served->refs, 1); /* every connection let go of it */
        sts_served_unref(served);          /* the conf's ctx is the test's own */
        sts_log_free(log);
        sts_observer_free(obs);
        assert_int_equal(uv_loop_close(&loop), 0);
    }
    fixture_tls_free(&tls);
    assert_int_equal(bad, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),    cmocka_unit_test(test_parse_limits),
        cmocka_unit_test(test_parse_persist),  cmocka_unit_test(test_chunk),
        cmocka_unit_test(test_listener_knobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
