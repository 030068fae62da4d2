/*
 * test_mxsrv.c - the world's scripted MX server, driven in-process over loopback by a
 * scripted SMTP client: one table row per script (scripted replies per stage,
 * disconnect_after, STARTTLS with and without bytes pipelined or injected around it,
 * handshake: abort, a slow greeting, commands out of order), each checked for the
 * reply codes the client got, the text it got, and what the observer recorded; and
 * the cap on sessions (fakedns/tcpsrv.h) against slowloris clients.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/testca.h"
#include "fakedns/mxsrv.h"
#include "fakedns/served.h"
#include "fakedns/tcpsrv.h"
#include "tests/unit/unit_fixture.h"

#define MSG "Subject: t\r\n\r\nbody\r\n.\r\n" /* 20 octets received: the dot line ends it */
#define EHLO "EHLO client.test\r\n"
#define MAIL "MAIL FROM:<a@client.test>\r\n"
#define RCPT "RCPT TO:<postmaster@example.test>\r\n"
#define QUIT "QUIT\r\n"

static const struct mxrow {
    const char *what;
    /* the MX's script */
    int no_starttls;
    int require_tls;
    const char *reply; /* a scripted reply (NULL: none) at stage */
    int stage;
    int disconnect; /* disconnect_after disconnect_stage */
    int disconnect_stage;
    const char *inject; /* inject_after_starttls */
    int handshake_abort;
    double greeting_delay;
    /* The client: each step is sent after the previous reply (the first after the
     * greeting); a step that starts with STARTTLS starts TLS on a 220. */
    const char *steps[16];
    /* what must happen */
    const char *codes; /* reply codes in order; "TLS" handshake done, "TLSFAIL" failed,
                        * "left N" octets after the 220 to STARTTLS, "EOF" closed */
    const char *text_has, *text_lacks; /* in what the client received */
    size_t received;                   /* messages the observer recorded */
    const char *obs_has;               /* in the session's record (compact JSON) */
    double min_seconds;                /* the session lasted at least this long */
} rows[] = {
    {.what = "a message in the clear",
     .steps = {EHLO, MAIL, RCPT, "DATA\r\n", MSG, QUIT},
     .codes = "220;250;250;250;354;250;221;EOF;",
     .text_has = "250 STARTTLS\r\n",
     .received = 1,
     .obs_has = "\"messages\":[{\"tls\":false,\"bytes\":20,"},
    {.what = "STARTTLS, then the message inside TLS",
     .steps = {EHLO, "STARTTLS\r\n", EHLO, MAIL, RCPT, "DATA\r\n", MSG, QUIT},
     .codes = "220;250;220;TLS;250;250;250;354;250;221;EOF;",
     .text_has = "250 ENHANCEDSTATUSCODES\r\n", /* no STARTTLS offered inside TLS */
     .received = 1,
     .obs_has = "{\"verb\":\"MAIL\",\"tls\":true,\"reply\":250}"},
    {.what = "no STARTTLS: not offered, and refused",
     .no_starttls = 1,
     .steps = {EHLO, "STARTTLS\r\n", QUIT},
     .codes = "220;250;502;221;EOF;",
     .text_lacks = "STARTTLS\r\n",
     .obs_has = "{\"verb\":\"STARTTLS\",\"tls\":false,\"reply\":502}"},
    {.what = "require_tls: 530 to MAIL, RCPT, DATA before TLS; RSET, NOOP, QUIT served",
     .require_tls = 1,
     .steps = {EHLO, MAIL, RCPT, "DATA\r\n", "VRFY x\r\n", "RSET\r\n", "NOOP\r\n", QUIT},
     .codes = "220;250;530;530;530;530;250;250;221;EOF;",
     .text_has = "530 5.7.0 Must issue a STARTTLS command first\r\n",
     .obs_has = "{\"verb\":\"RCPT\",\"tls\":false,\"reply\":530}"},
    {.what = "require_tls: inside TLS the message is taken",
     .require_tls = 1,
     .steps = {EHLO, "STARTTLS\r\n", EHLO, MAIL, RCPT, "DATA\r\n", MSG, QUIT},
     .codes = "220;250;220;TLS;250;250;250;354;250;221;EOF;",
     .received = 1},
    {.what = "a scripted refusal of MAIL: MAIL is not carried out",
     .reply = "451 4.3.0 try again later\r\n",
     .stage = STS_SCN_STAGE_MAIL,
     .steps = {EHLO, MAIL, RCPT, QUIT},
     .codes = "220;250;451;503;221;EOF;",
     .text_has = "451 4.3.0 try again later\r\n",
     .obs_has = "{\"verb\":\"MAIL\",\"tls\":false,\"reply\":451}"},
    {.what = "a scripted multi-line reply to RCPT",
     .reply = "451-4.7.1 greylisted\r\n451 4.7.1 come back later\r\n",
     .stage = STS_SCN_STAGE_RCPT,
     .steps = {EHLO, MAIL, RCPT, QUIT},
     .codes = "220;250;250;451;221;EOF;",
     .text_has = "451-4.7.1 greylisted\r\n451 4.7.1 come back later\r\n"},
    {.what = "a scripted positive reply replaces the normal one",
     .reply = "250 2.1.5 scripted ok\r\n",
     .stage = STS_SCN_STAGE_RCPT,
     .steps = {EHLO, MAIL, RCPT, QUIT},
     .codes = "220;250;250;250;221;EOF;",
     .text_has = "250 2.1.5 scripted ok\r\n",
     .text_lacks = "2.1.5 Ok"},
    {.what = "a 554 greeting: only QUIT is served",
     .reply = "554 5.3.2 no service here\r\n",
     .stage = STS_SCN_STAGE_GREETING,
     .steps = {EHLO, "NOOP\r\n", QUIT},
     .codes = "554;503;503;221;EOF;",
     .text_has = "554 5.3.2 no service here\r\n"},
    {.what = "a 421 greeting closes the connection",
     .reply = "421 4.3.2 shutting down\r\n",
     .stage = STS_SCN_STAGE_GREETING,
     .codes = "421;EOF;"},
    {.what = "a scripted refusal of the message at the dot: not received",
     .reply = "550 5.7.1 not this one\r\n",
     .stage = STS_SCN_STAGE_DOT,
     .steps = {EHLO, MAIL, RCPT, "DATA\r\n", MSG, QUIT},
     .codes = "220;250;250;250;354;550;221;EOF;",
     .text_has = "550 5.7.1 not this one\r\n"},
    {.what = "disconnect_after greeting",
     .disconnect = 1,
     .disconnect_stage = STS_SCN_STAGE_GREETING,
     .codes = "EOF;",
     .obs_has = "\"disconnected_at\":\"greeting\""},
    {.what = "disconnect_after mail",
     .disconnect = 1,
     .disconnect_stage = STS_SCN_STAGE_MAIL,
     .steps = {EHLO, MAIL},
     .codes = "220;250;EOF;",
     .obs_has = "\"disconnected_at\":\"mail\""},
    {.what = "disconnect_after dot: the message is not received",
     .disconnect = 1,
     .disconnect_stage = STS_SCN_STAGE_DOT,
     .steps = {EHLO, MAIL, RCPT, "DATA\r\n", MSG},
     .codes = "220;250;250;250;354;EOF;",
     .obs_has = "\"disconnected_at\":\"dot\""},
    {.what = "commands out of order and malformed",
     .steps = {MAIL, "EHLO\r\n", EHLO, RCPT, "DATA\r\n", "MAIL FROM:a@client.test\r\n", "FOO\r\n",
               "NOOP\r\n", "VRFY x\r\n", "RSET x\r\n", "MAIL FROM:<a@b> SIZE=99999999999\r\n",
               "HELO\r\n", QUIT},
     .codes = "220;503;501;250;503;503;501;500;250;252;501;552;501;221;EOF;",
     .text_has = "552 5.3.4 Message size exceeds fixed limit\r\n"},
    {.what = "dot-unstuffing",
     .steps = {EHLO, MAIL, RCPT, "DATA\r\n", "..x\r\n.\r\n", QUIT},
     .codes = "220;250;250;250;354;250;221;EOF;",
     .received = 1,
     .obs_has = "\"bytes\":4,"},
    {.what = "bytes pipelined after STARTTLS are thrown away",
     .steps = {EHLO, "STARTTLS\r\nNOOP\r\n", EHLO, QUIT},
     .codes = "220;250;220;TLS;250;221;EOF;",
     .obs_has = "\"pipelined_after_starttls\":6"},
    {.what = "bytes injected behind the 220 to STARTTLS",
     .inject = "250 injected\r\n",
     .steps = {EHLO, "STARTTLS\r\n", EHLO, QUIT},
     .codes = "220;250;220;left 14;TLS;250;221;EOF;",
     .obs_has = "\"injected_after_starttls\":14"},
    {.what = "handshake: abort",
     .handshake_abort = 1,
     .steps = {EHLO, "STARTTLS\r\n"},
     .codes = "220;250;220;TLSFAIL;",
     .obs_has = "\"handshake_aborted\":true"},
    {.what = "a slow greeting",
     .greeting_delay = 0.3,
     .steps = {QUIT},
     .codes = "220;221;EOF;",
     .text_has = "220 mail.example.test ESMTP ststest\r\n",
     .min_seconds = 0.25},
};

/* ---- the scripted client ---- */

typedef struct client {
    const struct mxrow *row;
    SSL_CTX *cctx;
    sts_mxsrv *srv;
    sts_stream *st;
    uv_timer_t guard; /* a server that never answers fails the row instead of hanging */
    size_t step;      /* the next step to send */
    int tls_next;     /* the step just sent asks for TLS on a 220 */
    sts_buf in;       /* received, not yet parsed */
    char codes[256];
    char text[4096]; /* everything received */
    int closed, stopped, timed_out;
} client;

static void note(client *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(client *c, const char *fmt, ...)
{
    size_t n = strlen(c->codes);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->codes + n, sizeof(c->codes) - n, fmt, ap);
    va_end(ap);
}

static void send_step(client *c)
{
    const char *s = c->row->steps[c->step];
    if (!s)
        return; /* the script is done: wait for the close */
    c->step++;
    c->tls_next = !strncmp(s, "STARTTLS", 8);
    assert_int_equal(sts_stream_write(c->st, s, strlen(s)), 0);
}

/* One complete reply at the start of the input: its length (0: not complete yet). */
static size_t reply_len(const sts_buf *in, int *code)
{
    for (size_t off = 0; off < in->len;) {
        const char *crlf = memmem(in->data + off, in->len - off, "\r\n", 2);
        if (!crlf)
            return 0;
        size_t n = (size_t)(crlf - (in->data + off));
        if (n < 4 || in->data[off + 3] != '-') {
            *code = atoi(in->data + off);
            return off + n + 2;
        }
        off += n + 2;
    }
    return 0;
}

static void c_read(sts_stream *st, const char *data, size_t len)
{
    client *c = sts_stream_data(st);
    size_t have = strlen(c->text), room = sizeof(c->text) - 1 - have;
    memcpy(c->text + have, data, len < room ? len : room);
    c->text[have + (len < room ? len : room)] = '\0';
    assert_int_equal(sts_buf_append(&c->in, data, len), 0);
    size_t n;
    int code;
    while ((n = reply_len(&c->in, &code))) {
        sts_buf_consume(&c->in, n);
        note(c, "%d;", code);
        if (c->tls_next && code == 220) {
            /* What came behind the 220 in the clear is not a reply (RFC 3207 5). */
            if (c->in.len)
                note(c, "left %zu;", c->in.len);
            sts_buf_reset(&c->in);
            assert_int_equal(sts_stream_start_tls_client(st, c->cctx, "mail.example.test", NULL),
                             0);
            return;
        }
        send_step(c);
    }
}

static void c_tls(sts_stream *st, int status)
{
    client *c = sts_stream_data(st);
    c->tls_next = 0;
    if (status) {
        note(c, "TLSFAIL;");
        sts_stream_close(st);
        return;
    }
    note(c, "TLS;");
    send_step(c);
}

static void c_eof(sts_stream *st, int status)
{
    (void)status;
    note(sts_stream_data(st), "EOF;");
    sts_stream_close(st);
}

static void c_stopped(void *arg)
{
    ((client *)arg)->stopped = 1;
}

static void c_close(sts_stream *st)
{
    client *c = sts_stream_data(st);
    c->closed = 1;
    uv_close((uv_handle_t *)&c->guard, NULL);
    sts_mxsrv_stop(c->srv, c_stopped, c);
}

static void c_connect(sts_stream *st, int status)
{
    assert_int_equal(status, 0); /* then the greeting comes */
}

static void c_guard_cb(uv_timer_t *t)
{
    client *c = t->data;
    c->timed_out = 1;
    sts_stream_close(c->st);
}

static const sts_stream_cbs client_cbs = {
    .on_connect = c_connect,
    .on_read = c_read,
    .on_tls = c_tls,
    .on_eof = c_eof,
    .on_close = c_close,
};

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Run one row; returns 0 when everything it asks for happened (else prints why). */
static int run_row(const struct mxrow *r, SSL_CTX *sctx, SSL_CTX *cctx)
{
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sts_observer *obs = sts_observer_new();
    sts_log *log = sts_log_new_mem(STS_LOG_DEBUG, NULL);
    sts_served *served = sts_served_new(1, NULL);
    assert_non_null(obs);
    assert_non_null(log);
    assert_non_null(served);
    sts_mxsrv_conf *cf = &served->hosts[0].mx_conf;
    cf->host = "mail.example.test";
    cf->address = "127.0.0.1";
    cf->starttls = !r->no_starttls;
    cf->require_tls = r->require_tls;
    cf->ctx = sctx;
    if (r->reply)
        cf->replies[r->stage] = r->reply;
    cf->disconnect = r->disconnect;
    cf->disconnect_stage = r->disconnect_stage;
    cf->inject_after_starttls = r->inject;
    cf->handshake_abort = r->handshake_abort;
    cf->delay[STS_SCN_STAGE_GREETING] = r->greeting_delay;

    struct sockaddr_in sa;
    client c = {.row = r, .cctx = cctx};
    sts_buf_init(&c.in, 1 << 16);
    assert_int_equal(sts_mxsrv_start(&loop, fixture_listen_fd(&sa), &served, 0, obs, log, &c.srv),
                     0);
    assert_non_null(c.st = sts_stream_new(&loop, &client_cbs, &c));
    assert_int_equal(sts_stream_connect(c.st, (struct sockaddr *)&sa, NULL), 0);
    assert_int_equal(uv_timer_init(&loop, &c.guard), 0);
    c.guard.data = &c;
    assert_int_equal(uv_timer_start(&c.guard, c_guard_cb, 10000, 0), 0);
    double t0 = mono();
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    double seconds = mono() - t0;
    assert_true(c.closed && c.stopped);

    json_t *snap = sts_observer_snapshot(obs);
    json_t *sessions = json_object_get(snap, "smtp_sessions");
    json_t *s0 = json_array_get(sessions, 0);
    char *rec = s0 ? json_dumps(s0, JSON_COMPACT) : NULL;
    size_t received = json_array_size(json_object_get(s0, "messages"));
    int bad = c.timed_out || strcmp(c.codes, r->codes) != 0 || json_array_size(sessions) != 1 ||
              (r->text_has && !strstr(c.text, r->text_has)) ||
              (r->text_lacks && strstr(c.text, r->text_lacks)) || received != r->received ||
              (r->obs_has && (!rec || !strstr(rec, r->obs_has))) || seconds < r->min_seconds;
    if (bad)
        print_error("%s:\n  codes %s (want %s)%s, %zu message(s) in %.3fs\n  received: %s\n"
                    "  record: %s\n  transcript:\n%s\n",
                    r->what, c.codes, r->codes, c.timed_out ? ", timed out" : "", received, seconds,
                    c.text, rec ? rec : "(none)", sts_log_text(log));
    free(rec);
    json_decref(snap);
    sts_buf_free(&c.in);
    assert_int_equal(served->refs, 1); /* the session let go of what it was served */
    sts_served_unref(served);
    sts_log_free(log);
    sts_observer_free(obs);
    assert_int_equal(uv_loop_close(&loop), 0);
    return bad;
}

static void test_scripts(void **state)
{
    (void)state;
    /* No verification is asked: whether a handshake happens is what counts. */
    fixture_tls tls;
    fixture_tls_new(&tls, "mail.example.test");
    int bad = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        bad += run_row(&rows[i], tls.sctx, tls.cctx);
    fixture_tls_free(&tls);
    assert_int_equal(bad, 0);
}

/* The reply code of a scripted reply, as the server reads it. */
static void test_reply_code(void **state)
{
    (void)state;
    static const struct {
        const char *reply;
        int code;
    } codes[] = {
        {"250 ok\r\n", 250}, {"451-4.7.1 x\r\n451 4.7.1 y\r\n", 451},
        {"554", 554},        {"25 short", 0},
        {"abc", 0},          {"", 0},
        {NULL, 0},           {"2x0 no", 0},
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        assert_int_equal(sts_smtp_reply_code(codes[i].reply), codes[i].code);
}

/* ---- the cap on sessions ---- */

static void stopped_cb(void *arg)
{
    *(int *)arg = 1;
}

/* Read what fd has without blocking; 1 once the server closed it (EOF), else 0.
 * What was read is appended to text (cap octets at most). */
static int drain(int fd, char *text, size_t cap)
{
    for (;;) {
        char b[4096];
        ssize_t n = recv(fd, b, sizeof(b), MSG_DONTWAIT);
        if (n == 0)
            return 1;
        if (n < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : 1;
        size_t have = strlen(text), k = (size_t)n < cap - 1 - have ? (size_t)n : cap - 1 - have;
        memcpy(text + have, b, k);
        text[have + k] = '\0';
    }
}

static int connect_nb(const struct sockaddr_in *sa)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
    assert_true(rc == 0 || errno == EINPROGRESS);
    return fd;
}

static void spin(uv_loop_t *loop, int rounds)
{
    for (int i = 0; i < rounds; i++)
        uv_run(loop, UV_RUN_NOWAIT);
}

/* The cap tests' world: an MX server and STS_TCPSRV_MAX_SESSIONS clients connected to
 * it (cap_fds[0..N), each with its cap_text), the loop spun until each is accepted. */
enum { CAP_N = STS_TCPSRV_MAX_SESSIONS };
static int cap_fds[CAP_N + 1];
static char cap_text[CAP_N + 1][512];
typedef struct cap_world {
    uv_loop_t loop;
    sts_observer *obs;
    sts_log *log;
    sts_served *served;
    sts_mxsrv *srv;
    struct sockaddr_in sa;
} cap_world;

static void cap_start(cap_world *w)
{
    assert_int_equal(uv_loop_init(&w->loop), 0);
    w->obs = sts_observer_new();
    w->log = sts_log_new_mem(STS_LOG_INFO, NULL);
    w->served = sts_served_new(1, NULL);
    sts_mxsrv_conf *cf = &w->served->hosts[0].mx_conf;
    cf->host = "mail.example.test";
    cf->address = "127.0.0.1";
    w->srv = NULL;
    assert_int_equal(sts_mxsrv_start(&w->loop, fixture_listen_fd(&w->sa), &w->served, 0, w->obs,
                                     w->log, &w->srv),
                     0);
    memset(cap_text, 0, sizeof(cap_text));
    for (int i = 0; i < CAP_N; i++) {
        cap_fds[i] = connect_nb(&w->sa);
        spin(&w->loop, 3);
    }
}

static void cap_stop(cap_world *w)
{
    int stopped = 0;
    sts_mxsrv_stop(w->srv, stopped_cb, &stopped);
    assert_int_equal(uv_run(&w->loop, UV_RUN_DEFAULT), 0);
    assert_true(stopped);
    sts_served_unref(w->served);
    sts_log_free(w->log);
    sts_observer_free(w->obs);
    assert_int_equal(uv_loop_close(&w->loop), 0);
}

/* STS_TCPSRV_MAX_SESSIONS clients that have just connected (all working: none idle for
 * STS_TCPSRV_EVICT_IDLE_MS), then one more: no session is closed, and the new one
 * waits, ungreeted, until a client leaves; then it is greeted. */
static void test_session_cap_all_working(void **state)
{
    (void)state;
    enum { N = CAP_N };
    cap_world w;
    cap_start(&w);
    int *fds = cap_fds;
    char(*text)[512] = cap_text;
    fds[N] = connect_nb(&w.sa);
    for (int t = 0; t < 300; t++) { /* 0.3 s: well below STS_TCPSRV_EVICT_IDLE_MS */
        uv_run(&w.loop, UV_RUN_NOWAIT);
        usleep(1000);
        for (int i = 0; i < N; i++)
            assert_int_equal(drain(fds[i], text[i], sizeof(text[i])), 0); /* none closed */
        drain(fds[N], text[N], sizeof(text[N]));
    }
    assert_null(strstr(text[N], "220 ")); /* waiting, not served */
    assert_null(strstr(sts_log_text(w.log), "(the cap)"));
    close(fds[7]); /* a client leaves: its place goes to the waiting one */
    fds[7] = -1;
    for (int t = 0; t < 3000 && !strstr(text[N], "220 "); t++) {
        uv_run(&w.loop, UV_RUN_NOWAIT);
        usleep(1000);
        drain(fds[N], text[N], sizeof(text[N]));
    }
    assert_non_null(strstr(text[N], "220 "));
    assert_null(strstr(sts_log_text(w.log), "(the cap)"));
    for (int i = 0; i <= N; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    cap_stop(&w);
}

/* STS_TCPSRV_MAX_SESSIONS clients that each send half a command and stop (slowloris),
 * but the first completes a command after a while: a connection more closes the
 * second (no progress for longest), not the first, and says so in the log; the new
 * one is served. */
static void test_session_cap(void **state)
{
    (void)state;
    enum { N = CAP_N };
    cap_world w;
    cap_start(&w);
    int *fds = cap_fds;
    char(*text)[512] = cap_text;
    spin(&w.loop, 20);
    for (int i = 0; i < N; i++) {
        assert_int_equal(send(fds[i], "EHLO slow", 9, MSG_NOSIGNAL), 9);
        spin(&w.loop, 1);
    }
    /* Later, the first client completes its command: progress. */
    usleep(20000);
    assert_int_equal(send(fds[0], ".example\r\n", 10, MSG_NOSIGNAL), 10);
    for (int t = 0; t < 2000 && !strstr(text[0], "\r\n250 "); t++) {
        uv_run(&w.loop, UV_RUN_NOWAIT); /* never blocks: a missing event fails, not hangs */
        usleep(1000);
        drain(fds[0], text[0], sizeof(text[0]));
    }
    assert_non_null(strstr(text[0], "\r\n250 "));
    /* One more connection: at the cap. */
    fds[N] = connect_nb(&w.sa);
    int closed1 = 0; /* after STS_TCPSRV_EVICT_IDLE_MS without progress */
    for (int t = 0; t < 6000 && !(closed1 && strstr(text[N], "220 ")); t++) {
        uv_run(&w.loop, UV_RUN_NOWAIT); /* never blocks: a missing event fails, not hangs */
        usleep(1000);
        closed1 = closed1 || drain(fds[1], text[1], sizeof(text[1]));
        drain(fds[N], text[N], sizeof(text[N]));
    }
    assert_true(closed1);                                         /* the second client: closed */
    assert_non_null(strstr(text[N], "220 "));                     /* the new one: greeted */
    assert_int_equal(drain(fds[0], text[0], sizeof(text[0])), 0); /* the first: open */
    for (int i = 2; i < N; i++)
        assert_int_equal(drain(fds[i], text[i], sizeof(text[i])), 0);
    const char *t = sts_log_text(w.log);
    if (!strstr(t, "mx mail.example.test 127.0.0.1:") ||
        !strstr(t, ": 256 sessions open (the cap): closing the one without progress for longest "
                   "(from 127.0.0.1, ") ||
        !strstr(t, "; 1 closed so far (STS_TCPSRV_MAX_SESSIONS)"))
        fail_msg("log at the cap: %.400s",
                 strstr(t, "sessions open") ? strstr(t, "sessions open") - 60 : "(no such line)");
    for (int i = 0; i <= N; i++)
        close(fds[i]);
    cap_stop(&w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_code),
        cmocka_unit_test(test_scripts),
        cmocka_unit_test(test_session_cap),
        cmocka_unit_test(test_session_cap_all_working),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
