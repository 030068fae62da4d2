/*
 * test_tls.c - unit tests of common/tls.c: a client and a server sts_stream on
 * loopback TCP talk in plaintext, upgrade in place (STARTTLS) and talk encrypted,
 * against certificates minted by common/testca.c. A table of certificate and
 * version cases checks the verification outcome; further cases close streams from
 * inside callbacks (run them under ASan). Exit status 0 when every test passes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/testca.h"
#include "common/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DAY (24L * 3600L)
#define NOT_CALLED 12345

enum {
    MODE_NORMAL = 0,
    MODE_CLOSE_IN_CONNECT, /* client closes (twice) inside on_connect */
    MODE_CLOSE_IN_TLS,     /* client closes inside on_tls, then tries to write */
    MODE_CLOSE_IN_READ,    /* server closes inside the first encrypted on_read */
    MODE_CLOSE_WITH_QUEUE, /* client queues 1 MiB and closes at once */
    MODE_SERVER_SHUTDOWN,  /* server answers and shuts down gracefully (close_notify) */
    MODE_PAUSE,            /* server paused for 100 ms after accept, then resumed */
    MODE_PIPELINE,         /* server answers PING with three writes in one read */
    MODE_CHAIN,            /* as NORMAL, and the client asks for the chain's facts */
};

typedef struct side {
    struct pair *p;
    sts_stream *s;
    int is_client;
    sts_buf in;
    int reads;
    int connect_status;
    int tls_status;
    int tls_calls;
    int eof_status;
    int eof_calls;
    int closed;
    int after_close_calls; /* any callback after on_close: must stay 0 */
    int write_after_close;
    sts_tls_info info;
    char peer[64], local[64];
    char got[256]; /* what in held when the run ended */
} side;

typedef struct pair {
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_timer_t timer;
    int listener_closed;
    side cli, srv;
    SSL_CTX *cctx, *sctx;
    const char *sni, *host;
    int mode;
    int timed_out;
    int srv_tls_started;
    uv_timer_t pause_timer;
    int reads_while_paused;
    int port; /* the listener's port */
} pair;

/* The port the next pair_run listens on (0: any); resumption is per host, address and
 * port, so a second connection to "the same server" needs the same port. */
static int listen_port;

/* ---- callbacks ---- */

static side *side_of(sts_stream *s)
{
    side *d = sts_stream_data(s);
    if (d->closed)
        d->after_close_calls++;
    return d;
}

static void listener_close_cb(uv_handle_t *h)
{
    pair *p = h->data;
    p->listener_closed = 1;
}

static void close_listener(pair *p)
{
    if (!uv_is_closing((uv_handle_t *)&p->listener))
        uv_close((uv_handle_t *)&p->listener, listener_close_cb);
}

static void on_close(sts_stream *s)
{
    side *d = side_of(s);
    d->closed = 1;
    d->s = NULL;
}

static void on_eof(sts_stream *s, int status)
{
    side *d = side_of(s);
    d->eof_calls++;
    d->eof_status = status;
    sts_stream_close(s);
}

static void on_connect(sts_stream *s, int status)
{
    side *d = side_of(s);
    pair *p = d->p;
    d->connect_status = status;
    if (status != 0) {
        sts_stream_close(s);
        return;
    }
    snprintf(d->peer, sizeof(d->peer), "%s", sts_stream_peer_addr(s));
    snprintf(d->local, sizeof(d->local), "%s", sts_stream_local_addr(s));
    if (p->mode == MODE_CLOSE_IN_CONNECT) {
        sts_stream_close(s);
        sts_stream_close(s); /* idempotent */
        d->write_after_close = sts_stream_write(s, "x", 1);
        return;
    }
    assert_int_equal(sts_stream_write(s, "STARTTLS\r\n", 10), 0);
}

static void on_tls(sts_stream *s, int status)
{
    side *d = side_of(s);
    pair *p = d->p;
    d->tls_calls++;
    d->tls_status = status;
    /* An owned copy: the stream (and the chain it owns) is gone after on_close. */
    assert_int_equal(sts_tls_info_copy(&d->info, sts_stream_tls_info(s)), 0);
    if (status != 0) {
        sts_stream_close(s);
        return;
    }
    assert_true(sts_stream_is_tls(s));
    if (!d->is_client)
        return;
    if (p->mode == MODE_CLOSE_IN_TLS) {
        sts_stream_close(s);
        d->write_after_close = sts_stream_write(s, "PING\r\n", 6);
        return;
    }
    if (p->mode == MODE_CLOSE_IN_READ) {
        /* Two records, most likely read by the server in one go: a full one, which
         * leaves at once, and a small one, queued until this read is handled. */
        char big[16384];
        memset(big, 'A', sizeof(big));
        assert_int_equal(sts_stream_write(s, big, sizeof(big)), 0);
        assert_int_equal(sts_stream_write(s, "B\r\n", 3), 0);
        return;
    }
    if (p->mode == MODE_CLOSE_WITH_QUEUE) {
        size_t n = 1 << 20;
        char *big = malloc(n);
        assert_non_null(big);
        memset(big, 'z', n);
        assert_int_equal(sts_stream_write(s, big, n), 0);
        free(big);
        assert_true(sts_stream_write_queue(s) > 0);
        sts_stream_close(s);
        return;
    }
    assert_int_equal(sts_stream_write(s, "PING\r\n", 6), 0);
}

static void client_read(side *d, sts_stream *s)
{
    pair *p = d->p;
    if (!sts_stream_is_tls(s)) {
        if (strcmp(d->in.data, "220 go\r\n") == 0) {
            sts_buf_reset(&d->in);
            sts_stream_describe_chain(s, p->mode == MODE_CHAIN);
            assert_int_equal(sts_stream_start_tls_client(s, p->cctx, p->sni, p->host), 0);
            /* Nothing may leave in the clear during the handshake. */
            assert_int_equal(sts_stream_write(s, "MAIL\r\n", 6), STS_ESTATE);
        }
        return;
    }
    size_t n = strlen(d->in.data);
    if (n >= 6 && strcmp(d->in.data + n - 6, "PONG\r\n") == 0 && p->mode != MODE_SERVER_SHUTDOWN)
        sts_stream_shutdown(s);
}

static void server_read(side *d, sts_stream *s)
{
    pair *p = d->p;
    if (!sts_stream_is_tls(s)) {
        if (strcmp(d->in.data, "STARTTLS\r\n") == 0) {
            sts_buf_reset(&d->in);
            assert_int_equal(sts_stream_write(s, "220 go\r\n", 8), 0);
            assert_int_equal(sts_stream_start_tls_server(s, p->sctx), 0);
            p->srv_tls_started = 1;
        }
        return;
    }
    if (p->mode == MODE_CLOSE_IN_READ) {
        sts_stream_close(s);
        sts_stream_close(s);
        d->write_after_close = sts_stream_write(s, "x", 1);
        return;
    }
    if (strcmp(d->in.data, "PING\r\n") == 0) {
        if (p->mode == MODE_PIPELINE) {
            /* Replies to a pipelined group: queued, they leave as one record. */
            assert_int_equal(sts_stream_write(s, "250 a\r\n", 7), 0);
            assert_int_equal(sts_stream_write(s, "250 b\r\n", 7), 0);
            assert_true(sts_stream_write_queue(s) >= 14);
        }
        assert_int_equal(sts_stream_write(s, "PONG\r\n", 6), 0);
        if (p->mode == MODE_SERVER_SHUTDOWN)
            sts_stream_shutdown(s);
    }
}

static void on_read(sts_stream *s, const char *data, size_t len)
{
    side *d = side_of(s);
    d->reads++;
    if (d->p->mode == MODE_CLOSE_WITH_QUEUE && !d->is_client && sts_stream_is_tls(s))
        return; /* the megabyte is not kept */
    assert_int_equal(sts_buf_append(&d->in, data, len), 0);
    if (d->is_client)
        client_read(d, s);
    else
        server_read(d, s);
}

static const sts_stream_cbs cbs = {
    .on_connect = on_connect,
    .on_read = on_read,
    .on_tls = on_tls,
    .on_eof = on_eof,
    .on_close = on_close,
};

static void pause_timer_cb(uv_timer_t *t)
{
    pair *p = t->data;
    p->reads_while_paused = p->srv.reads;
    if (p->srv.s)
        sts_stream_resume(p->srv.s);
}

static void on_connection(uv_stream_t *server, int status)
{
    pair *p = server->data;
    assert_int_equal(status, 0);
    p->srv.s = sts_stream_new(&p->loop, &cbs, &p->srv);
    assert_non_null(p->srv.s);
    assert_int_equal(sts_stream_accept(p->srv.s, server), 0);
    snprintf(p->srv.peer, sizeof(p->srv.peer), "%s", sts_stream_peer_addr(p->srv.s));
    close_listener(p); /* one connection per test */
    if (p->mode == MODE_PAUSE) {
        sts_stream_pause(p->srv.s);
        sts_stream_pause(p->srv.s);
        assert_int_equal(uv_timer_start(&p->pause_timer, pause_timer_cb, 100, 0), 0);
    }
}

static void timer_cb(uv_timer_t *t)
{
    pair *p = t->data;
    p->timed_out = 1;
    if (p->cli.s)
        sts_stream_close(p->cli.s);
    if (p->srv.s)
        sts_stream_close(p->srv.s);
    close_listener(p);
}

static void side_init(side *d, pair *p, int is_client)
{
    memset(d, 0, sizeof(*d));
    d->p = p;
    d->is_client = is_client;
    d->connect_status = NOT_CALLED;
    d->tls_status = NOT_CALLED;
    d->eof_status = NOT_CALLED;
    sts_buf_init(&d->in, 1 << 16);
    sts_buf_append(&d->in, "", 0);
}

/* Run one connection: plaintext, STARTTLS, encrypted exchange (by mode). */
static void pair_run(pair *p, SSL_CTX *cctx, SSL_CTX *sctx, const char *sni, const char *host,
                     int mode)
{
    memset(p, 0, sizeof(*p));
    p->cctx = cctx;
    p->sctx = sctx;
    p->sni = sni;
    p->host = host;
    p->mode = mode;
    side_init(&p->cli, p, 1);
    side_init(&p->srv, p, 0);
    assert_int_equal(uv_loop_init(&p->loop), 0);

    assert_int_equal(uv_tcp_init(&p->loop, &p->listener), 0);
    p->listener.data = p;
    struct sockaddr_in addr;
    assert_int_equal(uv_ip4_addr("127.0.0.1", listen_port, &addr), 0);
    assert_int_equal(uv_tcp_bind(&p->listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&p->listener, 8, on_connection), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    assert_int_equal(uv_tcp_getsockname(&p->listener, (struct sockaddr *)&ss, &len), 0);
    p->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);

    assert_int_equal(uv_timer_init(&p->loop, &p->timer), 0);
    p->timer.data = p;
    assert_int_equal(uv_timer_start(&p->timer, timer_cb, 10000, 0), 0);
    uv_unref((uv_handle_t *)&p->timer);
    assert_int_equal(uv_timer_init(&p->loop, &p->pause_timer), 0);
    p->pause_timer.data = p;

    p->cli.s = sts_stream_new(&p->loop, &cbs, &p->cli);
    assert_non_null(p->cli.s);
    assert_ptr_equal(sts_stream_loop(p->cli.s), &p->loop);
    assert_int_equal(sts_stream_connect(p->cli.s, (const struct sockaddr *)&ss, NULL), 0);
    /* A second connect on the same stream is refused at once. */
    assert_int_equal(sts_stream_connect(p->cli.s, (const struct sockaddr *)&ss, NULL),
                     STS_ESTATE);

    uv_run(&p->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&p->timer, NULL);
    uv_close((uv_handle_t *)&p->pause_timer, NULL);
    uv_run(&p->loop, UV_RUN_DEFAULT);
    assert_false(p->timed_out);
    assert_true(p->cli.closed);
    assert_true(p->srv.closed);
    assert_true(p->listener_closed);
    assert_int_equal(p->cli.after_close_calls, 0);
    assert_int_equal(p->srv.after_close_calls, 0);
    snprintf(p->cli.got, sizeof(p->cli.got), "%s", p->cli.in.data ? p->cli.in.data : "");
    snprintf(p->srv.got, sizeof(p->srv.got), "%s", p->srv.in.data ? p->srv.in.data : "");
    sts_buf_free(&p->cli.in);
    sts_buf_free(&p->srv.in);
    assert_int_equal(uv_loop_close(&p->loop), 0);
}

/* Free what the sides' owned copies of their TLS facts hold (common/tls.h). */
static void pair_release(pair *p)
{
    sts_tls_info_release(&p->cli.info);
    sts_tls_info_release(&p->srv.info);
}

/* ---- fixtures: one CA file for all tests ---- */

typedef struct world {
    char dir[64];
    char ca_path[128];
    sts_ca *ca;
    sts_ca *other; /* a CA the client does not trust */
    sts_ca *mid;   /* an intermediate under ca */
    time_t now;
} world;

static int world_setup(void **state)
{
    world *w = calloc(1, sizeof(*w));
    char err[256];
    snprintf(w->dir, sizeof(w->dir), "/tmp/ststest-tls-XXXXXX");
    if (!mkdtemp(w->dir))
        return -1;
    w->now = time(NULL);
    w->ca = sts_ca_new("ststest test root", 0, err, sizeof(err));
    w->other = sts_ca_new("unknown root", 0, err, sizeof(err));
    w->mid = w->ca ? sts_ca_new_intermediate(w->ca, "ststest intermediate", 0, err,
                                             sizeof(err))
                   : NULL;
    if (!w->ca || !w->other || !w->mid)
        return -1;
    snprintf(w->ca_path, sizeof(w->ca_path), "%s/ca.pem", w->dir);
    if (sts_ca_write_pem(w->ca, w->ca_path) != 0)
        return -1;
    *state = w;
    return 0;
}

static int world_teardown(void **state)
{
    world *w = *state;
    unlink(w->ca_path);
    rmdir(w->dir);
    sts_ca_free(w->ca);
    sts_ca_free(w->other);
    sts_ca_free(w->mid);
    free(w);
    return 0;
}

/* ---- the certificate / version table ---- */

enum { ISSUER_CA = 0, ISSUER_OTHER, ISSUER_SELF, ISSUER_MID, ISSUER_MID_NOCHAIN };

typedef struct tls_case {
    const char *label;
    /* server certificate */
    const char *names[3];
    size_t nnames;
    const char *cn;
    int no_san;
    long nb_days, na_days; /* offsets from now; 0 = defaults */
    int issuer;
    int srv_min, srv_max;
    /* client */
    const char *sni, *host;
    int cli_min;
    long cli_time_days; /* sts_tls_ctx_set_time(now + days); 0 = wall clock */
    /* expectations */
    int want_status; /* client's on_tls status */
    int verified, chain_ok, time_ok, name_ok, not_yet_valid;
    sts_result_type result_type;
    long verify_error;
    const char *version; /* NULL: TLSv1.2 or TLSv1.3 */
    const char *peer_names[4];
} tls_case;

#define MX "mx.example.test"

static const tls_case tls_cases[] = {
    {.label = "valid",
     .names = {MX, "alt.example.test"}, .nnames = 2, .sni = MX, .host = MX,
     .verified = 1, .chain_ok = 1, .time_ok = 1, .name_ok = 1,
     .peer_names = {"DNS:" MX, "DNS:alt.example.test", "CN:" MX}},
    {.label = "valid, name case differs",
     .names = {"MX.Example.TEST"}, .nnames = 1, .sni = MX, .host = MX,
     .verified = 1, .chain_ok = 1, .time_ok = 1, .name_ok = 1},
    {.label = "wrong name",
     .names = {"wrong.example.test"}, .nnames = 1, .sni = MX, .host = MX,
     .chain_ok = 1, .time_ok = 1, .result_type = STS_RESULT_CERTIFICATE_HOST_MISMATCH,
     .verify_error = X509_V_ERR_HOSTNAME_MISMATCH},
    {.label = "untrusted CA",
     .names = {MX}, .nnames = 1, .issuer = ISSUER_OTHER, .sni = MX, .host = MX,
     .time_ok = 1, .name_ok = 1, .result_type = STS_RESULT_CERTIFICATE_NOT_TRUSTED,
     .verify_error = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY},
    {.label = "self-signed",
     .names = {MX}, .nnames = 1, .issuer = ISSUER_SELF, .sni = MX, .host = MX,
     .time_ok = 1, .name_ok = 1, .result_type = STS_RESULT_CERTIFICATE_NOT_TRUSTED,
     .verify_error = X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT},
    {.label = "untrusted and wrong name: not-trusted first",
     .names = {"wrong.example.test"}, .nnames = 1, .issuer = ISSUER_OTHER, .sni = MX,
     .host = MX, .time_ok = 1, .result_type = STS_RESULT_CERTIFICATE_NOT_TRUSTED,
     .verify_error = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY},
    {.label = "expired",
     .names = {MX}, .nnames = 1, .nb_days = -30, .na_days = -1, .sni = MX, .host = MX,
     .chain_ok = 1, .name_ok = 1, .result_type = STS_RESULT_CERTIFICATE_EXPIRED,
     .verify_error = X509_V_ERR_CERT_HAS_EXPIRED},
    {.label = "not yet valid",
     .names = {MX}, .nnames = 1, .nb_days = 1, .na_days = 30, .sni = MX, .host = MX,
     .chain_ok = 1, .name_ok = 1, .not_yet_valid = 1, .result_type = STS_RESULT_CERTIFICATE_EXPIRED,
     .verify_error = X509_V_ERR_CERT_NOT_YET_VALID},
    {.label = "expired and wrong name: expired first",
     .names = {"wrong.example.test"}, .nnames = 1, .nb_days = -30, .na_days = -1, .sni = MX,
     .host = MX, .chain_ok = 1, .result_type = STS_RESULT_CERTIFICATE_EXPIRED,
     /* OpenSSL checks the name (check_id) before the dates (internal_verify), so
      * the first error recorded is the mismatch; the precedence still says
      * expired. */
     .verify_error = X509_V_ERR_HOSTNAME_MISMATCH},
    {.label = "client clock 200 days ahead: expired",
     .names = {MX}, .nnames = 1, .sni = MX, .host = MX, .cli_time_days = 200,
     .chain_ok = 1, .name_ok = 1, .result_type = STS_RESULT_CERTIFICATE_EXPIRED,
     .verify_error = X509_V_ERR_CERT_HAS_EXPIRED},
    {.label = "client clock 10 days ahead: valid",
     .names = {MX}, .nnames = 1, .sni = MX, .host = MX, .cli_time_days = 10,
     .verified = 1, .chain_ok = 1, .time_ok = 1, .name_ok = 1},
    {.label = "wildcard matches one label",
     .names = {"*.example.test"}, .nnames = 1, .sni = "a.example.test",
     .host = "a.example.test", .verified = 1, .chain_ok = 1, .time_ok = 1, .name_ok = 1},
    {.label = "wildcard does not match two labels",
     .names = {"*.example.test"}, .nnames = 1, .sni = "a.b.example.test",
     .host = "a.b.example.test", .chain_ok = 1, .time_ok = 1,
     .result_type = STS_RESULT_CERTIFICATE_HOST_MISMATCH,
     .verify_error = X509_V_ERR_HOSTNAME_MISMATCH},
    {.label = "wildcard does not match the parent",
     .names = {"*.example.test"}, .nnames = 1, .sni = "example.test", .host = "example.test",
     .chain_ok = 1, .time_ok = 1, .result_type = STS_RESULT_CERTIFICATE_HOST_MISMATCH,
     .verify_error = X509_V_ERR_HOSTNAME_MISMATCH},
    {.label = "partial wildcard never matches",
     .names = {"f*.example.test"}, .nnames = 1, .sni = "foo.example.test",
     .host = "foo.example.test", .chain_ok = 1, .time_ok = 1,
     .result_type = STS_RESULT_CERTIFICATE_HOST_MISMATCH,
     .verify_error = X509_V_ERR_HOSTNAME_MISMATCH},
    /* RFC 8461 4.2 requires a DNS-ID SAN: the CN is never a fallback, unlike
     * OpenSSL's default (RFC 6125 6.4.4), which the stream switches off. */
    {.label = "CN only, no SAN: no match (RFC 8461 4.2 needs a DNS SAN)",
     .names = {MX}, .nnames = 1, .cn = MX, .no_san = 1, .sni = MX, .host = MX,
     .chain_ok = 1, .time_ok = 1, .result_type = STS_RESULT_CERTIFICATE_HOST_MISMATCH,
     .verify_error = X509_V_ERR_HOSTNAME_MISMATCH, .peer_names = {"CN:" MX}},
    {.label = "CN matches but a SAN is present: SAN only",
     .names = {"other.example.test"}, .nnames = 1, .cn = MX, .sni = MX, .host = MX,
     .chain_ok = 1, .time_ok = 1, .result_type = STS_RESULT_CERTIFICATE_HOST_MISMATCH,
     .verify_error = X509_V_ERR_HOSTNAME_MISMATCH,
     .peer_names = {"DNS:other.example.test", "CN:" MX}},
    {.label = "no host asked: name_ok 0",
     .names = {MX}, .nnames = 1, .sni = MX, .host = NULL, .chain_ok = 1, .time_ok = 1,
     .result_type = STS_RESULT_VALIDATION_FAILURE},
    {.label = "intermediate sent by the server",
     .names = {MX}, .nnames = 1, .issuer = ISSUER_MID, .sni = MX, .host = MX,
     .verified = 1, .chain_ok = 1, .time_ok = 1, .name_ok = 1},
    {.label = "intermediate missing",
     .names = {MX}, .nnames = 1, .issuer = ISSUER_MID_NOCHAIN, .sni = MX, .host = MX,
     .time_ok = 1, .name_ok = 1, .result_type = STS_RESULT_CERTIFICATE_NOT_TRUSTED,
     .verify_error = X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY},
    {.label = "server at most TLS 1.2",
     .names = {MX}, .nnames = 1, .sni = MX, .host = MX, .srv_max = TLS1_2_VERSION,
     .verified = 1, .chain_ok = 1, .time_ok = 1, .name_ok = 1, .version = "TLSv1.2"},
    {.label = "server at most TLS 1.1, client min 1.2: handshake fails",
     .names = {MX}, .nnames = 1, .sni = MX, .host = MX, .srv_max = TLS1_1_VERSION,
     .want_status = STS_ETLS},
    {.label = "server at most TLS 1.1, client allows 1.1",
     .names = {MX}, .nnames = 1, .sni = MX, .host = MX, .srv_max = TLS1_1_VERSION,
     .cli_min = TLS1_1_VERSION, .verified = 1, .chain_ok = 1, .time_ok = 1, .name_ok = 1,
     .version = "TLSv1.1"},
    {.label = "no SNI sent",
     .names = {MX}, .nnames = 1, .sni = NULL, .host = MX,
     .verified = 1, .chain_ok = 1, .time_ok = 1, .name_ok = 1},
};

static void make_ctxs(world *w, const tls_case *c, SSL_CTX **cctx, SSL_CTX **sctx)
{
    char err[256] = "";
    sts_cert_spec spec = {.names = c->names,
                          .nnames = c->nnames,
                          .cn = c->cn,
                          .no_san = c->no_san,
                          .not_before = c->nb_days ? w->now + c->nb_days * DAY : 0,
                          .not_after = c->na_days ? w->now + c->na_days * DAY : 0,
                          .self_signed = c->issuer == ISSUER_SELF};
    sts_ca *issuer = c->issuer == ISSUER_OTHER                                ? w->other
                     : (c->issuer == ISSUER_MID || c->issuer == ISSUER_MID_NOCHAIN) ? w->mid
                                                                                    : w->ca;
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    assert_int_equal(sts_ca_mint(issuer, &spec, w->now, &cert, &key), 0);
    STACK_OF(X509) *chain = NULL;
    if (c->issuer == ISSUER_MID) {
        chain = sk_X509_new_null();
        assert_non_null(chain);
        sk_X509_push(chain, sts_ca_cert(w->mid));
    }
    *sctx = sts_tls_server_ctx(cert, key, chain, c->srv_min, c->srv_max, err, sizeof(err));
    if (!*sctx)
        fail_msg("server ctx: %s", err);
    /* The context holds its own references. */
    sk_X509_free(chain);
    X509_free(cert);
    EVP_PKEY_free(key);
    *cctx = sts_tls_client_ctx(w->ca_path, c->cli_min, err, sizeof(err));
    if (!*cctx)
        fail_msg("client ctx: %s", err);
    if (c->cli_time_days)
        sts_tls_ctx_set_time(*cctx, w->now + c->cli_time_days * DAY);
}

static void iso_time(time_t t, char *out, size_t cap)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void test_tls_table(void **state)
{
    world *w = *state;
    for (size_t i = 0; i < sizeof(tls_cases) / sizeof(tls_cases[0]); i++) {
        const tls_case *c = &tls_cases[i];
        print_message("case: %s\n", c->label);
        SSL_CTX *cctx, *sctx;
        make_ctxs(w, c, &cctx, &sctx);
        pair p;
        pair_run(&p, cctx, sctx, c->sni, c->host, MODE_NORMAL);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);

        const sts_tls_info *ci = &p.cli.info, *si = &p.srv.info;
        assert_int_equal(p.cli.connect_status, 0);
        assert_string_equal(p.cli.peer, "127.0.0.1");
        assert_string_equal(p.cli.local, "127.0.0.1");
        assert_string_equal(p.srv.peer, "127.0.0.1");
        assert_int_equal(p.cli.tls_calls, 1);
        assert_int_equal(p.srv.tls_calls, 1);
        assert_int_equal(p.cli.tls_status, c->want_status);
        if (c->want_status != 0) {
            assert_int_equal(ci->done, 0);
            assert_true(strlen(ci->error) > 0);
            assert_int_equal(p.srv.tls_status, STS_ETLS);
            assert_true(strlen(si->error) > 0);
            print_message("  client error: %s\n  server error: %s\n", ci->error, si->error);
            pair_release(&p);
            continue;
        }
        assert_int_equal(p.srv.tls_status, 0);
        /* The encrypted exchange went through both ways. */
        assert_string_equal(p.srv.got, "PING\r\n");
        assert_string_equal(p.cli.got, "PONG\r\n");
        assert_int_equal(ci->done, 1);
        assert_int_equal(si->done, 1);
        if (c->version) {
            assert_string_equal(ci->version, c->version);
        } else {
            assert_true(strcmp(ci->version, "TLSv1.2") == 0 ||
                        strcmp(ci->version, "TLSv1.3") == 0);
        }
        assert_string_equal(si->version, ci->version);
        assert_true(strlen(ci->cipher) > 0);
        assert_string_equal(si->cipher, ci->cipher);
        assert_string_equal(ci->sni, c->sni ? c->sni : "");
        assert_string_equal(si->sni, c->sni ? c->sni : "");
        assert_string_equal(ci->host, c->host ? c->host : "");
        assert_int_equal(ci->verified, c->verified);
        assert_int_equal(ci->chain_ok, c->chain_ok);
        assert_int_equal(ci->time_ok, c->time_ok);
        assert_int_equal(ci->name_ok, c->name_ok);
        assert_int_equal(ci->not_yet_valid, c->not_yet_valid);
        assert_int_equal(ci->verify_error, c->verify_error);
        if (c->verify_error)
            assert_true(strlen(ci->verify_error_str) > 0);
        assert_int_equal(ci->result_type, c->result_type);
        assert_int_equal(sts_tls_result_type(ci), ci->result_type);
        if (c->peer_names[0]) {
            size_t n = 0;
            while (n < 4 && c->peer_names[n]) {
                assert_true(n < ci->npeer_names);
                assert_string_equal(ci->peer_names[n], c->peer_names[n]);
                n++;
            }
            assert_int_equal(ci->npeer_names, n);
        }
        char want[32];
        iso_time(c->nb_days ? w->now + c->nb_days * DAY : w->now - DAY, want, sizeof(want));
        assert_string_equal(ci->not_before, want);
        iso_time(c->na_days ? w->now + c->na_days * DAY : w->now + 90 * DAY, want,
                 sizeof(want));
        assert_string_equal(ci->not_after, want);
        /* The client shut down gracefully: the server saw the end. */
        assert_int_equal(p.srv.eof_calls, 1);
        assert_int_equal(p.srv.eof_status, STS_ECLOSED);
        pair_release(&p);
    }
}

/* ---- closing from inside callbacks ---- */

static void mode_ctxs(world *w, SSL_CTX **cctx, SSL_CTX **sctx)
{
    static const tls_case c = {.names = {MX}, .nnames = 1};
    make_ctxs(w, &c, cctx, sctx);
}

static void test_close_in_connect(void **state)
{
    SSL_CTX *cctx, *sctx;
    mode_ctxs(*state, &cctx, &sctx);
    pair p;
    pair_run(&p, cctx, sctx, MX, MX, MODE_CLOSE_IN_CONNECT);
    assert_int_equal(p.cli.connect_status, 0);
    assert_int_equal(p.cli.write_after_close, STS_ESTATE);
    assert_int_equal(p.cli.reads + p.cli.tls_calls + p.cli.eof_calls, 0);
    assert_int_equal(p.srv.eof_calls, 1);
    assert_int_equal(p.srv.reads, 0);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    pair_release(&p);
}

static void test_close_in_tls(void **state)
{
    SSL_CTX *cctx, *sctx;
    mode_ctxs(*state, &cctx, &sctx);
    pair p;
    pair_run(&p, cctx, sctx, MX, MX, MODE_CLOSE_IN_TLS);
    assert_int_equal(p.cli.tls_calls, 1);
    assert_int_equal(p.cli.tls_status, 0);
    assert_int_equal(p.cli.write_after_close, STS_ESTATE);
    assert_int_equal(p.cli.eof_calls, 0);
    /* The server either finished its handshake and then saw EOF, or saw the
     * connection end during it. */
    assert_true(p.srv.eof_calls == 1 || p.srv.tls_status == STS_ETLS);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    pair_release(&p);
}

static void test_close_in_read(void **state)
{
    SSL_CTX *cctx, *sctx;
    mode_ctxs(*state, &cctx, &sctx);
    pair p;
    pair_run(&p, cctx, sctx, MX, MX, MODE_CLOSE_IN_READ);
    assert_int_equal(p.srv.tls_status, 0);
    /* The plaintext STARTTLS line, then one TLS record: nothing after the close. */
    assert_int_equal(p.srv.reads, 2);
    assert_int_equal(strlen(p.srv.got), sizeof(p.srv.got) - 1); /* a prefix of 16 KiB */
    assert_null(strchr(p.srv.got, 'B'));
    assert_int_equal(p.srv.write_after_close, STS_ESTATE);
    assert_int_equal(p.cli.eof_calls, 1);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    pair_release(&p);
}

static void test_close_with_queue(void **state)
{
    SSL_CTX *cctx, *sctx;
    mode_ctxs(*state, &cctx, &sctx);
    pair p;
    pair_run(&p, cctx, sctx, MX, MX, MODE_CLOSE_WITH_QUEUE);
    assert_int_equal(p.cli.tls_status, 0);
    assert_int_equal(p.cli.eof_calls, 0);
    assert_true(p.srv.eof_calls == 1 || p.srv.tls_status == STS_ETLS);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    pair_release(&p);
}

/* The server sends close_notify after its answer: the client sees the answer,
 * then on_eof(STS_ECLOSED). */
static void test_server_shutdown(void **state)
{
    SSL_CTX *cctx, *sctx;
    mode_ctxs(*state, &cctx, &sctx);
    pair p;
    pair_run(&p, cctx, sctx, MX, MX, MODE_SERVER_SHUTDOWN);
    assert_string_equal(p.cli.got, "PONG\r\n");
    assert_int_equal(p.cli.eof_calls, 1);
    assert_int_equal(p.cli.eof_status, STS_ECLOSED);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    pair_release(&p);
}

/* A paused stream reads nothing; resumed, it carries on. */
static void test_pause_resume(void **state)
{
    SSL_CTX *cctx, *sctx;
    mode_ctxs(*state, &cctx, &sctx);
    pair p;
    pair_run(&p, cctx, sctx, MX, MX, MODE_PAUSE);
    assert_int_equal(p.reads_while_paused, 0);
    assert_int_equal(p.cli.tls_status, 0);
    assert_string_equal(p.srv.got, "PING\r\n");
    assert_string_equal(p.cli.got, "PONG\r\n");
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    pair_release(&p);
}

/* Three writes made while one read is handled leave together: the client reads
 * them as one record, in one on_read (one per record otherwise). */
static void test_pipeline_one_write(void **state)
{
    SSL_CTX *cctx, *sctx;
    mode_ctxs(*state, &cctx, &sctx);
    pair p;
    pair_run(&p, cctx, sctx, MX, MX, MODE_PIPELINE);
    assert_string_equal(p.cli.got, "250 a\r\n250 b\r\nPONG\r\n");
    /* "220 go" in the clear, then the three replies at once. */
    assert_int_equal(p.cli.reads, 2);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    pair_release(&p);
}

/* ---- the chain's facts: only when asked, owned by whoever holds the info ---- */

static void test_chain_only_when_asked(void **state)
{
    world *w = *state;
    static const tls_case c = {.names = {MX}, .nnames = 1, .issuer = ISSUER_MID};
    SSL_CTX *cctx, *sctx;
    make_ctxs(w, &c, &cctx, &sctx);
    pair p;
    /* Not asked (send, the world): no chain, nothing on the heap. */
    pair_run(&p, cctx, sctx, MX, MX, MODE_NORMAL);
    assert_int_equal(p.cli.info.done, 1);
    assert_int_equal(p.cli.info.verified, 1);
    assert_null(p.cli.info.chain);
    assert_int_equal(p.cli.info.nchain, 0);
    assert_null(p.srv.info.chain);
    /* The peer names are always there, sized to what the leaf holds. */
    assert_int_equal(p.cli.info.npeer_names, 2); /* the SAN, then the CN */
    assert_string_equal(p.cli.info.peer_names[0], "DNS:" MX);
    sts_tls_info_release(&p.cli.info);

    /* Asked (check): the leaf, then the intermediate the server sent. */
    pair_run(&p, cctx, sctx, MX, MX, MODE_CHAIN);
    sts_tls_info *ci = &p.cli.info;
    assert_int_equal(ci->verified, 1);
    assert_non_null(ci->chain);
    assert_int_equal(ci->nchain, 2);
    assert_string_equal(ci->chain[0].sans, MX);
    assert_string_equal(ci->chain[0].issuer, ci->chain[1].subject);
    assert_true(strlen(ci->chain[0].key_type) > 0);
    assert_true(ci->chain[0].key_bits > 0);
    assert_string_equal(ci->chain[0].not_after, ci->not_after);
    assert_null(p.srv.info.chain); /* the server side never describes one */

    /* A deep copy owns its own array: it outlives the original's release. */
    sts_tls_info copy;
    memset(&copy, 0, sizeof(copy));
    assert_int_equal(sts_tls_info_copy(&copy, ci), 0);
    assert_non_null(copy.chain);
    assert_ptr_not_equal(copy.chain, ci->chain);
    assert_int_equal(copy.npeer_names, 2);
    assert_ptr_not_equal(copy.peer_names, ci->peer_names);
    sts_tls_info_release(ci);
    assert_null(ci->peer_names);
    assert_null(ci->chain);
    assert_int_equal(ci->nchain, 0);
    assert_int_equal(copy.nchain, 2);
    assert_string_equal(copy.chain[0].sans, MX);
    assert_string_equal(copy.peer_names[0], "DNS:" MX);
    assert_string_equal(copy.version, p.srv.info.version);
    /* Copying over an owned info releases its old chain (ASan: no leak), and copying
     * an info without a chain leaves none. */
    assert_int_equal(sts_tls_info_copy(&copy, &p.srv.info), 0);
    assert_null(copy.chain);
    assert_int_equal(copy.nchain, 0);
    sts_tls_info_release(&copy);
    sts_tls_info_release(&copy); /* a second release is harmless */
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    pair_release(&p);
}

/* ---- session resumption: only of a session verified for the same host ---- */

static const struct {
    const char *label;
    tls_case c;        /* the server's certificate and versions; the first host */
    int enable;        /* sts_tls_ctx_enable_resumption on the client context */
    const char *host2; /* the host of the second connection (NULL: the same) */
    int resumed;       /* the second connection resumed */
} RESUME[] = {
    {"verified, TLS 1.3: resumed",
     {.names = {MX}, .nnames = 1, .sni = MX, .host = MX, .verified = 1},
     1,
     NULL,
     1},
    {"verified, TLS 1.2: resumed (the session comes inside the handshake)",
     {.names = {MX}, .nnames = 1, .sni = MX, .host = MX, .srv_max = TLS1_2_VERSION, .verified = 1},
     1,
     NULL,
     1},
    {"resumption not enabled: a full handshake",
     {.names = {MX}, .nnames = 1, .sni = MX, .host = MX, .verified = 1},
     0,
     NULL,
     0},
    {"another host name: a full handshake (its own name check)",
     {.names = {MX, "alt.example.test"}, .nnames = 2, .sni = MX, .host = MX, .verified = 1},
     1,
     "alt.example.test",
     0},
    {"name mismatch: never kept, the second one is judged afresh",
     {.names = {"wrong.example.test"},
      .nnames = 1,
      .sni = MX,
      .host = MX,
      .result_type = STS_RESULT_CERTIFICATE_HOST_MISMATCH},
     1,
     NULL,
     0},
    {"name mismatch over TLS 1.2: never kept either",
     {.names = {"wrong.example.test"},
      .nnames = 1,
      .sni = MX,
      .host = MX,
      .srv_max = TLS1_2_VERSION,
      .result_type = STS_RESULT_CERTIFICATE_HOST_MISMATCH},
     1,
     NULL,
     0},
    {"untrusted issuer: never kept",
     {.names = {MX},
      .nnames = 1,
      .issuer = ISSUER_OTHER,
      .sni = MX,
      .host = MX,
      .result_type = STS_RESULT_CERTIFICATE_NOT_TRUSTED},
     1,
     NULL,
     0},
};

static void test_resumption(void **state)
{
    world *w = *state;
    for (size_t i = 0; i < sizeof(RESUME) / sizeof(RESUME[0]); i++) {
        print_message("case: %s\n", RESUME[i].label);
        const tls_case *c = &RESUME[i].c;
        SSL_CTX *cctx, *sctx;
        make_ctxs(w, c, &cctx, &sctx);
        if (RESUME[i].enable) {
            assert_int_equal(sts_tls_ctx_enable_resumption(cctx), 0);
            assert_int_equal(sts_tls_ctx_enable_resumption(cctx), 0); /* idempotent */
        }
        pair p1, p2;
        pair_run(&p1, cctx, sctx, c->sni, c->host, MODE_NORMAL);
        listen_port = p1.port;
        const char *host2 = RESUME[i].host2 ? RESUME[i].host2 : c->host;
        pair_run(&p2, cctx, sctx, host2, host2, MODE_NORMAL);
        listen_port = 0;
        const sts_tls_info *a = &p1.cli.info, *b = &p2.cli.info;
        assert_int_equal(a->done, 1);
        assert_int_equal(b->done, 1);
        assert_int_equal(a->resumed, 0);
        assert_int_equal(b->resumed, RESUME[i].resumed);
        /* The verdict is the same either way, and a resumed session still names its
         * certificate (OpenSSL keeps it with the session). */
        for (int k = 0; k < 2; k++) {
            const sts_tls_info *in = k ? b : a;
            assert_int_equal(in->verified, c->verified);
            assert_int_equal(in->result_type, c->result_type);
            assert_true(in->npeer_names >= 1);
            assert_string_equal(in->not_after, a->not_after);
        }
        assert_string_equal(b->peer_names[0], a->peer_names[0]);
        assert_string_equal(b->host, host2);
        pair_release(&p1);
        pair_release(&p2);
        SSL_CTX_free(cctx);
        SSL_CTX_free(sctx);
    }
}

/* ---- no network ---- */

static void connect_refused_cb(sts_stream *s, int status)
{
    int *got = sts_stream_data(s);
    *got = status;
    sts_stream_close(s);
}

static void close_count_cb(sts_stream *s)
{
    int *got = sts_stream_data(s);
    got[1]++;
}

/* A connection refused ends in on_connect(STS_ECONNECT); an unused stream closes;
 * starting TLS before connecting is refused at once. */
static void test_connect_refused(void **state)
{
    world *w = *state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    /* Find a port nobody listens on: bind one, note it, close it. */
    uv_tcp_t tmp;
    assert_int_equal(uv_tcp_init(&loop, &tmp), 0);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    assert_int_equal(uv_tcp_bind(&tmp, (const struct sockaddr *)&a, 0), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    assert_int_equal(uv_tcp_getsockname(&tmp, (struct sockaddr *)&ss, &len), 0);
    uv_close((uv_handle_t *)&tmp, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);

    static const sts_stream_cbs c = {.on_connect = connect_refused_cb,
                                     .on_close = close_count_cb};
    int got[2] = {NOT_CALLED, 0};
    sts_stream *s = sts_stream_new(&loop, &c, got);
    assert_non_null(s);
    char err[256];
    SSL_CTX *cctx = sts_tls_client_ctx(w->ca_path, 0, err, sizeof(err));
    assert_non_null(cctx);
    assert_int_equal(sts_stream_start_tls_client(s, cctx, MX, MX), STS_ESTATE);
    assert_int_equal(sts_stream_write(s, "x", 1), STS_ESTATE);
    assert_string_equal(sts_stream_peer_addr(s), "");
    assert_int_equal(sts_stream_connect(s, (const struct sockaddr *)&ss, NULL), 0);
    assert_int_equal(got[0], NOT_CALLED); /* never inside the call */
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(got[0], STS_ECONNECT);
    assert_int_equal(got[1], 1);

    int got2[2] = {NOT_CALLED, 0};
    s = sts_stream_new(&loop, &c, got2);
    assert_non_null(s);
    sts_stream_close(s);
    sts_stream_close(s);
    assert_int_equal(got2[1], 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(got2[1], 1);
    assert_int_equal(got2[0], NOT_CALLED);

    SSL_CTX_free(cctx);
    assert_int_equal(uv_loop_close(&loop), 0);
}

static void test_ctx_errors(void **state)
{
    world *w = *state;
    char err[256] = "";
    assert_null(sts_tls_client_ctx("/nonexistent/ca.pem", 0, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/ca.pem"));

    /* set_time sets and clears the fixed verification time. */
    SSL_CTX *c = sts_tls_client_ctx(w->ca_path, 0, err, sizeof(err));
    assert_non_null(c);
    assert_int_equal(SSL_CTX_get_min_proto_version(c), TLS1_2_VERSION);
    sts_tls_ctx_set_time(c, w->now + DAY);
    X509_VERIFY_PARAM *vp = SSL_CTX_get0_param(c);
    assert_true(X509_VERIFY_PARAM_get_flags(vp) & X509_V_FLAG_USE_CHECK_TIME);
    assert_int_equal(X509_VERIFY_PARAM_get_time(vp), w->now + DAY);
    sts_tls_ctx_set_time(c, 0);
    assert_false(X509_VERIFY_PARAM_get_flags(vp) & X509_V_FLAG_USE_CHECK_TIME);
    SSL_CTX_free(c);

    /* A key that does not belong to the certificate. */
    const char *names[] = {MX};
    sts_cert_spec spec = {.names = names, .nnames = 1};
    X509 *c1 = NULL, *c2 = NULL;
    EVP_PKEY *k1 = NULL, *k2 = NULL;
    assert_int_equal(sts_ca_mint(w->ca, &spec, 0, &c1, &k1), 0);
    assert_int_equal(sts_ca_mint(w->ca, &spec, 0, &c2, &k2), 0);
    err[0] = '\0';
    assert_null(sts_tls_server_ctx(c1, k2, NULL, 0, 0, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    err[0] = '\0';
    assert_null(sts_tls_server_ctx(NULL, k1, NULL, 0, 0, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    SSL_CTX *s = sts_tls_server_ctx(c1, k1, NULL, 0, 0, err, sizeof(err));
    assert_non_null(s);
    SSL_CTX_free(s);
    X509_free(c1);
    X509_free(c2);
    EVP_PKEY_free(k1);
    EVP_PKEY_free(k2);
    ERR_clear_error();
}

typedef struct rt_case {
    int done, chain_ok, time_ok, name_ok, verified;
    const char *host;
    sts_result_type want;
} rt_case;

/* The scenario's version names and OpenSSL's versions: one table. */
static void test_version_proto(void **state)
{
    (void)state;
    assert_int_equal(sts_tls_version_proto(STS_TLS_VERSION_DEFAULT), 0);
    assert_int_equal(sts_tls_version_proto(STS_TLS_VERSION_1_0), TLS1_VERSION);
    assert_int_equal(sts_tls_version_proto(STS_TLS_VERSION_1_1), TLS1_1_VERSION);
    assert_int_equal(sts_tls_version_proto(STS_TLS_VERSION_1_2), TLS1_2_VERSION);
    assert_int_equal(sts_tls_version_proto(STS_TLS_VERSION_1_3), TLS1_3_VERSION);
}

static void test_result_type(void **state)
{
    static const rt_case cases[] = {
        {1, 1, 1, 1, 1, MX, STS_RESULT_NONE},
        {1, 0, 0, 0, 0, MX, STS_RESULT_CERTIFICATE_NOT_TRUSTED},
        {1, 0, 1, 1, 0, MX, STS_RESULT_CERTIFICATE_NOT_TRUSTED},
        {1, 1, 0, 0, 0, MX, STS_RESULT_CERTIFICATE_EXPIRED},
        {1, 1, 1, 0, 0, MX, STS_RESULT_CERTIFICATE_HOST_MISMATCH},
        {1, 1, 1, 0, 0, "", STS_RESULT_VALIDATION_FAILURE},
        {1, 1, 1, 1, 0, MX, STS_RESULT_VALIDATION_FAILURE}, /* some other verify error */
        {0, 0, 0, 0, 0, MX, STS_RESULT_VALIDATION_FAILURE}, /* handshake never finished */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sts_tls_info in;
        memset(&in, 0, sizeof(in));
        in.done = cases[i].done;
        in.chain_ok = cases[i].chain_ok;
        in.time_ok = cases[i].time_ok;
        in.name_ok = cases[i].name_ok;
        in.verified = cases[i].verified;
        snprintf(in.host, sizeof(in.host), "%s", cases[i].host);
        assert_int_equal(sts_tls_result_type(&in), cases[i].want);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_result_type),
        cmocka_unit_test(test_version_proto),
        cmocka_unit_test(test_ctx_errors),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_tls_table),
        cmocka_unit_test(test_close_in_connect),
        cmocka_unit_test(test_close_in_tls),
        cmocka_unit_test(test_close_in_read),
        cmocka_unit_test(test_close_with_queue),
        cmocka_unit_test(test_server_shutdown),
        cmocka_unit_test(test_pause_resume),
        cmocka_unit_test(test_pipeline_one_write),
        cmocka_unit_test(test_chain_only_when_asked),
        cmocka_unit_test(test_resumption),
    };
    return cmocka_run_group_tests(tests, world_setup, world_teardown);
}
