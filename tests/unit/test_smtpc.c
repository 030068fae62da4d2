/*
 * test_smtpc.c - the SMTP client state machine (sender/smtpc.h) against a scripted
 * SMTP server built from sts_stream on 127.0.0.1, with certificates from the test CA.
 * One table row per session: the server's replies, the client's TLS policy, and what
 * must happen (action, RFC 8460 failure, stage, the commands the server saw and
 * whether each came over TLS, messages received). The security invariant is checked
 * on the server's side: no MAIL/RCPT/DATA without TLS when TLS is required.
 * Every run ends with uv_loop_close() == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/testca.h"
#include "common/tls.h"
#include "sender/smtpc.h"

#define HOST "mail.example.test"

/* The message as given, and as it must arrive after DATA (CRLF, dot-stuffing). */
static const char MSG[] = "Subject: t\n\n.hidden\nline2\r\n..two\rlast";
static const char MSG_WIRE[] = "Subject: t\r\n\r\n..hidden\r\nline2\r\n...two\r\nlast\r\n.\r\n";

typedef struct smtpc_case {
    const char *name;
    /* server: NULL = the default reply, "" = say nothing */
    const char *banner, *ehlo, *helo, *starttls, *ehlo2, *mail, *rcpt, *data, *eod;
    int bad_cert;            /* certificate names wrong.example.test */
    int starttls_then_close; /* 220 to STARTTLS, then hang up instead of TLS */
    /* client */
    int tls_required, check_only, no_starttls;
    double timeout;
    /* expected */
    sts_action action;
    sts_result_type failure;
    sts_smtpc_state stage;
    int tls_up, verified;
    const char *commands; /* verbs the server saw; "*" = over TLS */
    int messages;
    int injection, retry_plain, helo_fallback;
    int pipelined; /* MAIL, RCPT and DATA must arrive in one read (RFC 2920) */
    int lone_dot;  /* the one message received is a lone "." (RFC 2920 3.1) */
    const char *ehlo_host; /* the result's ehlo_host (receiving-mx-helo); NULL: unchecked */
} smtpc_case;

static const char *rt_name(sts_result_type t)
{
    return t == STS_RESULT_NONE ? "none" : sts_result_type_name(t);
}

static const char EHLO_TLS[] = "250-" HOST "\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SIZE 1000\r\n";
static const char EHLO_PLAIN[] = "250-" HOST "\r\n250 SIZE 1000\r\n";
static const char EHLO_PIPE[] = "250-" HOST "\r\n250-PIPELINING\r\n250 SIZE 1000\r\n";
static const char EHLO_PIPE_TLS[] =
    "250-" HOST "\r\n250-PIPELINING\r\n250-SIZE\r\n250 STARTTLS\r\n";
static const char EHLO_SMALL[] = "250-" HOST "\r\n250-PIPELINING\r\n250 SIZE 10\r\n";
static const char EHLO_NOEXT[] = "250 " HOST "\r\n";

static const smtpc_case cases[] = {
    {.name = "delivery over verified TLS", .tls_required = 1, .action = STS_ACTION_DELIVERED,
     .stage = STS_SMTPC_BODY, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .messages = 1, .ehlo_host = HOST},
    {.name = "no STARTTLS, TLS required: refused, no MAIL", .ehlo = EHLO_PLAIN,
     .tls_required = 1, .action = STS_ACTION_REFUSED, .failure = STS_RESULT_STARTTLS_NOT_SUPPORTED,
     .stage = STS_SMTPC_EHLO, .commands = "EHLO QUIT"},
    {.name = "no STARTTLS, opportunistic: plaintext delivery", .ehlo = EHLO_PLAIN,
     .action = STS_ACTION_DELIVERED, .failure = STS_RESULT_STARTTLS_NOT_SUPPORTED,
     .stage = STS_SMTPC_BODY, .commands = "EHLO MAIL RCPT DATA QUIT", .messages = 1},
    {.name = "STARTTLS injection, TLS required", .starttls = "220 go\r\n250 injected\r\n",
     .tls_required = 1, .action = STS_ACTION_REFUSED, .failure = STS_RESULT_VALIDATION_FAILURE,
     .stage = STS_SMTPC_STARTTLS, .commands = "EHLO STARTTLS", .injection = 1},
    {.name = "STARTTLS injection, opportunistic", .starttls = "220 go\r\n250 injected\r\n",
     .action = STS_ACTION_TEMPFAIL, .stage = STS_SMTPC_STARTTLS, .commands = "EHLO STARTTLS",
     .injection = 1},
    {.name = "STARTTLS 454, TLS required", .starttls = "454 4.7.0 TLS not available\r\n",
     .tls_required = 1, .action = STS_ACTION_REFUSED, .failure = STS_RESULT_STARTTLS_NOT_SUPPORTED,
     .stage = STS_SMTPC_STARTTLS, .commands = "EHLO STARTTLS QUIT"},
    {.name = "STARTTLS 454, opportunistic", .starttls = "454 4.7.0 TLS not available\r\n",
     .action = STS_ACTION_DELIVERED, .failure = STS_RESULT_STARTTLS_NOT_SUPPORTED,
     .stage = STS_SMTPC_BODY, .commands = "EHLO STARTTLS MAIL RCPT DATA QUIT", .messages = 1,
     .pipelined = 1},
    {.name = "bad certificate name, TLS required", .bad_cert = 1, .tls_required = 1,
     .action = STS_ACTION_REFUSED, .failure = STS_RESULT_CERTIFICATE_HOST_MISMATCH,
     .stage = STS_SMTPC_TLS, .tls_up = 1, .commands = "EHLO STARTTLS QUIT*"},
    {.name = "bad certificate name, opportunistic", .bad_cert = 1,
     .action = STS_ACTION_DELIVERED, .failure = STS_RESULT_CERTIFICATE_HOST_MISMATCH,
     .stage = STS_SMTPC_BODY, .tls_up = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .messages = 1},
    {.name = "handshake fails, TLS required", .starttls_then_close = 1, .tls_required = 1,
     .action = STS_ACTION_REFUSED, .failure = STS_RESULT_VALIDATION_FAILURE, .stage = STS_SMTPC_TLS,
     .commands = "EHLO STARTTLS"},
    {.name = "handshake fails, opportunistic: retry plain", .starttls_then_close = 1,
     .action = STS_ACTION_TEMPFAIL, .failure = STS_RESULT_VALIDATION_FAILURE,
     .stage = STS_SMTPC_TLS, .commands = "EHLO STARTTLS", .retry_plain = 1},
    {.name = "the plaintext retry", .no_starttls = 1, .action = STS_ACTION_DELIVERED,
     .stage = STS_SMTPC_BODY, .commands = "EHLO MAIL RCPT DATA QUIT", .messages = 1,
     .pipelined = 1},
    {.name = "the plaintext retry under required TLS", .no_starttls = 1, .tls_required = 1,
     .action = STS_ACTION_REFUSED, .stage = STS_SMTPC_EHLO, .commands = "EHLO QUIT"},
    {.name = "RCPT 550", .rcpt = "550 5.1.1 no such user\r\n", .tls_required = 1,
     .action = STS_ACTION_PERMFAIL, .stage = STS_SMTPC_RCPT, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* QUIT*"},
    {.name = "RCPT 450", .rcpt = "450 4.2.0 try later\r\n", .action = STS_ACTION_TEMPFAIL,
     .stage = STS_SMTPC_RCPT, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* QUIT*"},
    {.name = "MAIL 421", .mail = "421 4.3.2 closing\r\n", .action = STS_ACTION_TEMPFAIL,
     .stage = STS_SMTPC_MAIL, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* QUIT*"},
    {.name = "DATA 554", .data = "554 5.7.1 no\r\n", .action = STS_ACTION_PERMFAIL,
     .stage = STS_SMTPC_DATA, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*"},
    {.name = "end of data 451", .eod = "451 4.3.0 queue full\r\n", .action = STS_ACTION_TEMPFAIL,
     .stage = STS_SMTPC_BODY, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .messages = 1},
    {.name = "end of data 554", .eod = "554 5.6.0 bad message\r\n",
     .action = STS_ACTION_PERMFAIL, .stage = STS_SMTPC_BODY, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .messages = 1},
    {.name = "EHLO 500: HELO fallback", .ehlo = "500 5.5.1 what?\r\n",
     .action = STS_ACTION_DELIVERED, .failure = STS_RESULT_STARTTLS_NOT_SUPPORTED,
     .stage = STS_SMTPC_BODY, .commands = "EHLO HELO MAIL RCPT DATA QUIT", .messages = 1,
     .helo_fallback = 1, .ehlo_host = HOST},
    /* receiving-mx-helo (RFC 8460 4.4): the first word of the first EHLO line, also
     * when the certificate then fails; the plaintext EHLO's, not the one over TLS */
    {.name = "EHLO host of the greeting line", .bad_cert = 1,
     .ehlo = "250-mx7.provider.example Hello [127.0.0.1]\r\n250-STARTTLS\r\n"
             "250 SIZE 1000\r\n",
     .ehlo2 = "250-other.provider.example\r\n250 SIZE 1000\r\n",
     .action = STS_ACTION_DELIVERED, .failure = STS_RESULT_CERTIFICATE_HOST_MISMATCH,
     .stage = STS_SMTPC_BODY, .tls_up = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .messages = 1,
     .ehlo_host = "mx7.provider.example"},
    {.name = "EHLO host: a control octet is not kept",
     .ehlo = "250-mx\x01.example\r\n250 SIZE 1000\r\n", .action = STS_ACTION_DELIVERED,
     .failure = STS_RESULT_STARTTLS_NOT_SUPPORTED, .stage = STS_SMTPC_BODY,
     .commands = "EHLO MAIL RCPT DATA QUIT", .messages = 1, .ehlo_host = ""},
    {.name = "EHLO host: none without a 2xx EHLO", .ehlo = "421 4.3.2 busy\r\n",
     .action = STS_ACTION_TEMPFAIL, .stage = STS_SMTPC_EHLO, .commands = "EHLO QUIT",
     .ehlo_host = ""},
    {.name = "EHLO 500 under required TLS", .ehlo = "500 5.5.1 what?\r\n", .tls_required = 1,
     .action = STS_ACTION_REFUSED, .failure = STS_RESULT_STARTTLS_NOT_SUPPORTED,
     .stage = STS_SMTPC_HELO, .commands = "EHLO HELO QUIT", .helo_fallback = 1},
    {.name = "greeting 554", .banner = "554 5.3.2 go away\r\n", .action = STS_ACTION_PERMFAIL,
     .stage = STS_SMTPC_BANNER, .commands = "QUIT"},
    {.name = "greeting timeout", .banner = "", .timeout = 0.3, .action = STS_ACTION_TEMPFAIL,
     .stage = STS_SMTPC_BANNER, .commands = ""},
    {.name = "malformed reply", .mail = "2x0 what\r\n", .action = STS_ACTION_TEMPFAIL,
     .stage = STS_SMTPC_MAIL, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL*"},
    {.name = "check: no mail", .check_only = 1, .tls_required = 1,
     .action = STS_ACTION_DELIVERED, .stage = STS_SMTPC_EHLO2, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* QUIT*"},
    {.name = "check without STARTTLS", .check_only = 1, .ehlo = EHLO_PLAIN,
     .action = STS_ACTION_DELIVERED, .failure = STS_RESULT_STARTTLS_NOT_SUPPORTED,
     .stage = STS_SMTPC_EHLO, .commands = "EHLO QUIT"},
    /* RFC 2920: the group after the EHLO over TLS; never before TLS. The default row
     * above ("delivery over verified TLS") has PIPELINING only in the plaintext EHLO:
     * it must not be pipelined (RFC 3207 4.2). */
    {.name = "pipelined delivery over verified TLS", .ehlo = EHLO_PIPE_TLS, .ehlo2 = EHLO_PIPE,
     .tls_required = 1, .action = STS_ACTION_DELIVERED, .stage = STS_SMTPC_BODY, .tls_up = 1,
     .verified = 1, .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .messages = 1,
     .pipelined = 1},
    {.name = "pipelined, MAIL 550: every reply read, no message", .ehlo2 = EHLO_PIPE,
     .mail = "550 5.7.1 sender rejected\r\n", .rcpt = "503 5.5.1 need MAIL\r\n",
     .data = "503 5.5.1 need RCPT\r\n", .action = STS_ACTION_PERMFAIL,
     .stage = STS_SMTPC_MAIL, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .pipelined = 1},
    {.name = "pipelined, RCPT 550 but DATA 354: a lone dot", .ehlo2 = EHLO_PIPE,
     .rcpt = "550 5.1.1 no such user\r\n", .action = STS_ACTION_PERMFAIL,
     .stage = STS_SMTPC_RCPT, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .messages = 1,
     .pipelined = 1, .lone_dot = 1},
    {.name = "pipelined, DATA 451", .ehlo2 = EHLO_PIPE, .data = "451 4.3.0 later\r\n",
     .action = STS_ACTION_TEMPFAIL, .stage = STS_SMTPC_DATA, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .pipelined = 1},
    {.name = "pipelined in plaintext (opportunistic, no STARTTLS)", .ehlo = EHLO_PIPE,
     .action = STS_ACTION_DELIVERED, .failure = STS_RESULT_STARTTLS_NOT_SUPPORTED,
     .stage = STS_SMTPC_BODY, .commands = "EHLO MAIL RCPT DATA QUIT", .messages = 1,
     .pipelined = 1},
    {.name = "no extensions: no SIZE=, no pipelining", .ehlo2 = EHLO_NOEXT,
     .action = STS_ACTION_DELIVERED, .stage = STS_SMTPC_BODY, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .messages = 1},
    /* RFC 1870 6: over the announced SIZE: a permanent failure, nothing sent. */
    {.name = "message over SIZE: permfail before MAIL", .ehlo2 = EHLO_SMALL,
     .tls_required = 1, .action = STS_ACTION_PERMFAIL, .stage = STS_SMTPC_MAIL, .tls_up = 1,
     .verified = 1, .commands = "EHLO STARTTLS EHLO* QUIT*"},
    {.name = "SIZE 10 in the plaintext EHLO only: forgotten after STARTTLS",
     .ehlo = "250-" HOST "\r\n250-SIZE 10\r\n250 STARTTLS\r\n", .ehlo2 = EHLO_NOEXT,
     .action = STS_ACTION_DELIVERED, .stage = STS_SMTPC_BODY, .tls_up = 1, .verified = 1,
     .commands = "EHLO STARTTLS EHLO* MAIL* RCPT* DATA* QUIT*", .messages = 1},
    {.name = "plaintext SIZE 10 without TLS: permfail", .ehlo = EHLO_SMALL,
     .action = STS_ACTION_PERMFAIL, .failure = STS_RESULT_STARTTLS_NOT_SUPPORTED,
     .stage = STS_SMTPC_MAIL, .commands = "EHLO QUIT"},
};

/* ---- the scripted server ---- */

typedef struct harness {
    uv_loop_t loop;
    uv_tcp_t listener;
    int listener_open;
    uv_timer_t guard;
    int timed_out;
    const smtpc_case *c;
    SSL_CTX *sctx;
    sts_stream *srv;
    int srv_closed;
    int srv_tls;
    sts_buf in;
    int data_mode;
    char commands[512];
    int nreads;            /* srv_read calls so far */
    int read_of_mail, read_of_rcpt, read_of_data; /* in which read each arrived (1-based) */
    char mail_line[600];
    int nmessages;
    sts_buf msg;
    int msg_tls;
    int envelope_in_clear; /* MAIL/RCPT/DATA seen without TLS */
    sts_smtpc_result res;
    int done;
} harness;

static void listener_close_cb(uv_handle_t *h)
{
    (void)h;
}

static void close_listener(harness *h)
{
    if (h->listener_open) {
        h->listener_open = 0;
        uv_close((uv_handle_t *)&h->listener, listener_close_cb);
    }
}

static void srv_say(harness *h, const char *reply)
{
    if (reply && *reply)
        assert_int_equal(sts_stream_write(h->srv, reply, strlen(reply)), 0);
}

static const char *pick(const char *v, const char *def)
{
    return v ? v : def;
}

static void srv_command(harness *h, const char *line, size_t n)
{
    char verb[16];
    size_t i = 0;
    while (i < n && i < sizeof(verb) - 1 && line[i] != ' ') {
        verb[i] = (char)toupper((unsigned char)line[i]);
        i++;
    }
    verb[i] = '\0';
    size_t off = strlen(h->commands);
    snprintf(h->commands + off, sizeof(h->commands) - off, "%s%s%s", off ? " " : "", verb,
             h->srv_tls ? "*" : "");
    const smtpc_case *c = h->c;
    if (!strcmp(verb, "MAIL")) {
        h->read_of_mail = h->nreads;
        snprintf(h->mail_line, sizeof(h->mail_line), "%s", line);
    } else if (!strcmp(verb, "RCPT") && !h->read_of_rcpt) {
        h->read_of_rcpt = h->nreads;
    } else if (!strcmp(verb, "DATA")) {
        h->read_of_data = h->nreads;
    }
    if ((!strcmp(verb, "MAIL") || !strcmp(verb, "RCPT") || !strcmp(verb, "DATA")) && !h->srv_tls)
        h->envelope_in_clear = 1;

    if (!strcmp(verb, "EHLO")) {
        srv_say(h, h->srv_tls ? pick(c->ehlo2, EHLO_PLAIN) : pick(c->ehlo, EHLO_TLS));
    } else if (!strcmp(verb, "HELO")) {
        srv_say(h, pick(c->helo, "250 " HOST "\r\n"));
    } else if (!strcmp(verb, "STARTTLS")) {
        const char *r = pick(c->starttls, "220 2.0.0 go ahead\r\n");
        srv_say(h, r);
        if (c->starttls_then_close)
            sts_stream_shutdown(h->srv);
        else if (!strncmp(r, "220", 3))
            assert_int_equal(sts_stream_start_tls_server(h->srv, h->sctx), 0);
    } else if (!strcmp(verb, "MAIL")) {
        srv_say(h, pick(c->mail, "250 2.1.0 ok\r\n"));
    } else if (!strcmp(verb, "RCPT")) {
        srv_say(h, pick(c->rcpt, "250 2.1.5 ok\r\n"));
    } else if (!strcmp(verb, "DATA")) {
        const char *r = pick(c->data, "354 go on\r\n");
        srv_say(h, r);
        if (!strncmp(r, "354", 3))
            h->data_mode = 1;
    } else if (!strcmp(verb, "QUIT")) {
        srv_say(h, "221 2.0.0 bye\r\n");
        sts_stream_shutdown(h->srv);
    } else {
        srv_say(h, "500 5.5.2 unknown\r\n");
    }
}

static void srv_read(sts_stream *s, const char *data, size_t len)
{
    harness *h = sts_stream_data(s);
    h->nreads++;
    assert_int_equal(sts_buf_append(&h->in, data, len), 0);
    for (;;) {
        if (h->data_mode) {
            /* RFC 5321 4.1.1.4: the data ends with CRLF "." CRLF (or "." CRLF at once). */
            const char *end = NULL;
            size_t mlen = 0;
            if (h->in.len >= 3 && !memcmp(h->in.data, ".\r\n", 3)) {
                mlen = 3;
                end = h->in.data;
            } else if (h->in.len >= 5) {
                end = memmem(h->in.data, h->in.len, "\r\n.\r\n", 5);
                if (end)
                    mlen = (size_t)(end - h->in.data) + 5;
            }
            if (!end)
                return;
            sts_buf_reset(&h->msg);
            sts_buf_append(&h->msg, h->in.data, mlen);
            sts_buf_consume(&h->in, mlen);
            h->nmessages++;
            h->msg_tls = h->srv_tls;
            h->data_mode = 0;
            srv_say(h, pick(h->c->eod, "250 2.0.0 queued as 1\r\n"));
            continue;
        }
        size_t n = 0;
        size_t full = sts_buf_line(&h->in, &n);
        if (!full)
            return;
        char line[600];
        snprintf(line, sizeof(line), "%.*s", (int)n, h->in.data);
        sts_buf_consume(&h->in, full);
        srv_command(h, line, n);
        if (!h->srv)
            return;
    }
}

static void srv_tls(sts_stream *s, int status)
{
    harness *h = sts_stream_data(s);
    if (status) {
        sts_stream_close(s);
        return;
    }
    h->srv_tls = 1;
}

static void srv_eof(sts_stream *s, int status)
{
    (void)status;
    sts_stream_close(s);
}

static void srv_close(sts_stream *s)
{
    harness *h = sts_stream_data(s);
    h->srv_closed = 1;
    h->srv = NULL;
}

static const sts_stream_cbs srv_cbs = {
    .on_read = srv_read,
    .on_tls = srv_tls,
    .on_eof = srv_eof,
    .on_close = srv_close,
};

static void on_connection(uv_stream_t *server, int status)
{
    harness *h = server->data;
    assert_int_equal(status, 0);
    h->srv = sts_stream_new(&h->loop, &srv_cbs, h);
    assert_non_null(h->srv);
    assert_int_equal(sts_stream_accept(h->srv, server), 0);
    close_listener(h);
    srv_say(h, pick(h->c->banner, "220 " HOST " ESMTP ready\r\n"));
}

static void guard_cb(uv_timer_t *t)
{
    harness *h = t->data;
    h->timed_out = 1;
    if (h->srv)
        sts_stream_close(h->srv);
    close_listener(h);
}

static void client_done(sts_smtpc *s, void *arg)
{
    harness *h = arg;
    h->res = *sts_smtpc_get_result(s);
    h->done++;
    sts_smtpc_free(s); /* allowed: done_cb is the session's last act */
    close_listener(h);
}

/* ---- fixture: a CA, its file, client and server contexts ---- */

typedef struct fixture {
    char dir[64];
    char ca_path[128];
    sts_ca *ca;
    SSL_CTX *cctx, *good, *bad;
    sts_log *log; /* STSTEST_TEST_LOG=1 shows the transcripts */
} fixture;

static SSL_CTX *server_ctx(sts_ca *ca, const char *name)
{
    const char *names[] = {name};
    sts_cert_spec spec = {.names = names, .nnames = 1};
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    char err[256];
    if (sts_ca_mint(ca, &spec, 0, &cert, &key))
        return NULL;
    SSL_CTX *ctx = sts_tls_server_ctx(cert, key, NULL, 0, 0, err, sizeof(err));
    X509_free(cert);
    EVP_PKEY_free(key);
    return ctx;
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    char err[256];
    snprintf(f->dir, sizeof(f->dir), "/tmp/ststest-smtpc-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    f->ca = sts_ca_new("ststest smtpc root", 0, err, sizeof(err));
    if (!f->ca)
        return -1;
    snprintf(f->ca_path, sizeof(f->ca_path), "%s/ca.pem", f->dir);
    if (sts_ca_write_pem(f->ca, f->ca_path))
        return -1;
    f->cctx = sts_tls_client_ctx(f->ca_path, 0, err, sizeof(err));
    f->good = server_ctx(f->ca, HOST);
    f->bad = server_ctx(f->ca, "wrong.example.test");
    if (!f->cctx || !f->good || !f->bad)
        return -1;
    if (getenv("STSTEST_TEST_LOG"))
        f->log = sts_log_new_file(stderr, STS_LOG_DEBUG, "smtpc: ");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    SSL_CTX_free(f->cctx);
    SSL_CTX_free(f->good);
    SSL_CTX_free(f->bad);
    sts_ca_free(f->ca);
    sts_log_free(f->log);
    unlink(f->ca_path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Run one session of case c; listen = 0 tests a refused connection. */
static void run_case(fixture *f, const smtpc_case *c, harness *h, int listen)
{
    memset(h, 0, sizeof(*h));
    h->c = c;
    h->sctx = c->bad_cert ? f->bad : f->good;
    sts_buf_init(&h->in, 1 << 20);
    sts_buf_init(&h->msg, 1 << 20);
    assert_int_equal(uv_loop_init(&h->loop), 0);
    assert_int_equal(uv_tcp_init(&h->loop, &h->listener), 0);
    h->listener_open = 1;
    h->listener.data = h;
    struct sockaddr_in addr;
    assert_int_equal(uv_ip4_addr("127.0.0.1", 0, &addr), 0);
    assert_int_equal(uv_tcp_bind(&h->listener, (const struct sockaddr *)&addr, 0), 0);
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    assert_int_equal(uv_tcp_getsockname(&h->listener, (struct sockaddr *)&ss, &len), 0);
    if (listen)
        assert_int_equal(uv_listen((uv_stream_t *)&h->listener, 8, on_connection), 0);
    else
        close_listener(h); /* nobody listens on that port any more */

    assert_int_equal(uv_timer_init(&h->loop, &h->guard), 0);
    h->guard.data = h;
    assert_int_equal(uv_timer_start(&h->guard, guard_cb, 10000, 0), 0);
    uv_unref((uv_handle_t *)&h->guard);

    static const char *const rcpts[] = {"postmaster@example.test"};
    sts_smtpc_params p = {
        .addr = (const struct sockaddr *)&ss,
        .host = HOST,
        .helo = "sender.example.test",
        .from = "ststest@sender.example.test",
        .rcpts = rcpts,
        .nrcpts = 1,
        .msg = MSG,
        .msglen = sizeof(MSG) - 1,
        .ssl_ctx = f->cctx,
        .tls_required = c->tls_required,
        .check_only = c->check_only,
        .no_starttls = c->no_starttls,
        .log = f->log,
    };
    sts_smtpc_timeouts_init(&p.timeouts, c->timeout);
    sts_smtpc *s = NULL;
    assert_int_equal(sts_smtpc_start(&h->loop, &p, client_done, h, &s), 0);
    assert_non_null(s);
    assert_int_equal(h->done, 0); /* never inside start */

    uv_run(&h->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&h->guard, NULL);
    uv_run(&h->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&h->loop), 0);
}

static void test_smtpc_table(void **state)
{
    fixture *f = *state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const smtpc_case *c = &cases[i];
        harness h;
        run_case(f, c, &h, 1);
        const sts_smtpc_result *r = &h.res;
        if (h.timed_out)
            fail_msg("%s: the session did not end", c->name);
        if (h.done != 1)
            fail_msg("%s: done_cb ran %d times", c->name, h.done);
        if (r->action != c->action)
            fail_msg("%s: action %s, want %s (%s)", c->name, sts_action_name(r->action),
                     sts_action_name(c->action), r->detail);
        if (r->failure != c->failure)
            fail_msg("%s: failure %s, want %s (%s)", c->name, rt_name(r->failure),
                     rt_name(c->failure), r->detail);
        if (r->stage != c->stage)
            fail_msg("%s: stage %s, want %s (%s)", c->name, sts_smtpc_state_name(r->stage),
                     sts_smtpc_state_name(c->stage), r->detail);
        if (r->tls_up != c->tls_up || (r->tls_up && r->tls.verified != c->verified))
            fail_msg("%s: tls_up %d verified %d, want %d %d", c->name, r->tls_up,
                     r->tls.verified, c->tls_up, c->verified);
        if (strcmp(h.commands, c->commands))
            fail_msg("%s: server saw \"%s\", want \"%s\"", c->name, h.commands, c->commands);
        if (h.nmessages != c->messages)
            fail_msg("%s: %d messages, want %d", c->name, h.nmessages, c->messages);
        if (h.nmessages && c->lone_dot) {
            if (h.msg.len != 3 || memcmp(h.msg.data, ".\r\n", 3))
                fail_msg("%s: not a lone dot: \"%s\"", c->name, h.msg.data);
        } else if (h.nmessages) {
            if (h.msg.len != sizeof(MSG_WIRE) - 1 || memcmp(h.msg.data, MSG_WIRE, h.msg.len))
                fail_msg("%s: message on the wire \"%s\"", c->name, h.msg.data);
            if (r->body_bytes != sizeof(MSG_WIRE) - 1)
                fail_msg("%s: body_bytes %zu", c->name, r->body_bytes);
        }
        if (r->injection != c->injection || r->retry_plain != c->retry_plain ||
            r->helo_fallback != c->helo_fallback)
            fail_msg("%s: injection %d retry_plain %d helo_fallback %d", c->name, r->injection,
                     r->retry_plain, r->helo_fallback);
        /* The security invariant, seen from the server. */
        if (c->tls_required && (h.envelope_in_clear || (h.nmessages && !h.msg_tls)))
            fail_msg("%s: envelope or message sent in the clear under required TLS", c->name);
        if (c->tls_required && r->action != STS_ACTION_DELIVERED && !r->tls.verified &&
            strstr(h.commands, "MAIL"))
            fail_msg("%s: MAIL sent without verified TLS", c->name);
        assert_int_equal(r->invariant_violations, 0);
        /* RFC 2920: the group in one read when offered by the last EHLO, else one
         * command per round trip. */
        if (r->pipelined != c->pipelined)
            fail_msg("%s: pipelined %d, want %d", c->name, r->pipelined, c->pipelined);
        if (c->pipelined && (h.read_of_mail != h.read_of_rcpt || h.read_of_rcpt != h.read_of_data))
            fail_msg("%s: MAIL/RCPT/DATA in reads %d/%d/%d, want one", c->name, h.read_of_mail,
                     h.read_of_rcpt, h.read_of_data);
        if (!c->pipelined && h.read_of_mail && h.read_of_rcpt &&
            h.read_of_mail == h.read_of_rcpt)
            fail_msg("%s: MAIL and RCPT in one read without PIPELINING", c->name);
        /* RFC 1870: SIZE= the message size, only when the last EHLO offered SIZE. */
        if (h.mail_line[0]) {
            const char *last_ehlo = r->tls_up ? pick(c->ehlo2, EHLO_PLAIN) : pick(c->ehlo, EHLO_TLS);
            int size_param = !r->helo_fallback && strstr(last_ehlo, "SIZE") != NULL;
            char want[64];
            snprintf(want, sizeof(want), " SIZE=%zu", sizeof(MSG_WIRE) - 1 - 3 - 2);
            const char *sz = strstr(h.mail_line, " SIZE=");
            if (size_param ? !sz || strcmp(sz, want) : sz != NULL)
                fail_msg("%s: MAIL line \"%s\" (want%s SIZE=)", c->name, h.mail_line,
                         size_param ? "" : " no");
        }
        if (c->tls_up && c->verified && !c->bad_cert) {
            assert_string_equal(r->tls.peer_names[0], "DNS:" HOST);
            assert_string_equal(r->tls.sni, HOST);
        }
        if (c->action != STS_ACTION_DELIVERED && !r->detail[0])
            fail_msg("%s: no detail", c->name);
        if (c->ehlo_host && strcmp(r->ehlo_host, c->ehlo_host))
            fail_msg("%s: ehlo_host \"%s\", want \"%s\"", c->name, r->ehlo_host, c->ehlo_host);
        sts_buf_free(&h.in);
        sts_buf_free(&h.msg);
    }
}

static void test_smtpc_connect_refused(void **state)
{
    fixture *f = *state;
    smtpc_case c = {.name = "refused"};
    harness h;
    run_case(f, &c, &h, 0);
    assert_int_equal(h.done, 1);
    assert_int_equal(h.res.action, STS_ACTION_TEMPFAIL);
    assert_int_equal(h.res.stage, STS_SMTPC_CONNECT);
    assert_false(h.res.connected);
    assert_int_not_equal(h.res.error, 0);
    sts_buf_free(&h.in);
    sts_buf_free(&h.msg);
}

static void test_encode_body(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } t[] = {
        {"", ".\r\n"},
        {"a", "a\r\n.\r\n"},
        {"a\n", "a\r\n.\r\n"},
        {".", "..\r\n.\r\n"},
        {"a\r\n.\r\nb", "a\r\n..\r\nb\r\n.\r\n"},
        {"x\r\r\ny", "x\r\n\r\ny\r\n.\r\n"},
        {"\n\n", "\r\n\r\n.\r\n"},
        {"a.b\n.c", "a.b\r\n..c\r\n.\r\n"},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        sts_buf b;
        sts_buf_init(&b, 0);
        assert_int_equal(sts_smtpc_encode_body(t[i].in, strlen(t[i].in), &b), 0);
        if (strcmp(b.data, t[i].out))
            fail_msg("encode row %zu: got \"%s\"", i, b.data);
        sts_buf_free(&b);
    }
    sts_buf capped;
    sts_buf_init(&capped, 4);
    assert_int_equal(sts_smtpc_encode_body("hello", 5, &capped), STS_ETOOBIG);
    sts_buf_free(&capped);
    /* RFC 1870 3: CRLF lines, without dot-stuffing and the final ".". */
    assert_int_equal(sts_smtpc_message_size(MSG, sizeof(MSG) - 1), sizeof(MSG_WIRE) - 1 - 3 - 2);
    assert_int_equal(sts_smtpc_message_size("", 0), 0);
    assert_int_equal(sts_smtpc_message_size("a\n", 2), 3);
    assert_int_equal(sts_smtpc_message_size("a\rb", 3), 6);
    assert_string_equal(sts_smtpc_state_name(STS_SMTPC_EHLO2), "EHLO2");
    assert_string_equal(sts_smtpc_state_name((sts_smtpc_state)99), "UNKNOWN");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_body),
        cmocka_unit_test_setup_teardown(test_smtpc_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_smtpc_connect_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
