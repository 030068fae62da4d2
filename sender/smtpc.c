/*
 * smtpc.c - the SMTP client state machine (RFC 5321 + RFC 3207 STARTTLS), one session
 * to one MX address. See smtpc.h for the contract.
 *
 * Shape (after OpenSMTPD's mta_session.c): smtpc_io() is the only entry point for
 * stream and timer events; smtpc_enter() does what entering a state means (send a
 * command, start the handshake, arm the state's timer); smtpc_response() interprets
 * one complete reply in the current state; smtpc_set_verdict() records the verdict
 * (delivered, refused or failed) once, the first one standing;
 * smtpc_close() starts the asynchronous close, and the session reports (done_cb) only
 * from the last close callback, so it is never freed inside its own handler.
 *
 * Functions return 0 or a negative code from common/err.h.
 */
#include "sender/smtpc.h"

#include <arpa/inet.h>
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "sender/smtpreply.h"

/* The encoded message may be larger than the input (CRLF, dot-stuffing). */
#define SMTPC_BODY_MAX (32u * 1024 * 1024)
/* Received bytes not yet forming a complete reply. */
/* What the reply parser accepts before it refuses a reply as too long (a whole reply
 * and a line more), plus one read: the parser, not this cap, then says what was wrong,
 * in the same words however the server's bytes were cut into reads. */
#define SMTPC_RBUF_MAX (STS_SMTP_REPLY_MAX + STS_SMTP_LINE_MAX + STS_STREAM_READ_MAX)
/* Waiting for the 221 to QUIT: the verdict is already taken, so do not wait long. */
#define SMTPC_QUIT_WAIT_MS 10000

static const char *const state_names[] = {
    [STS_SMTPC_CONNECT] = "CONNECT", [STS_SMTPC_BANNER] = "BANNER",
    [STS_SMTPC_EHLO] = "EHLO",       [STS_SMTPC_HELO] = "HELO",
    [STS_SMTPC_STARTTLS] = "STARTTLS", [STS_SMTPC_TLS] = "TLS",
    [STS_SMTPC_EHLO2] = "EHLO2",     [STS_SMTPC_MAIL] = "MAIL",
    [STS_SMTPC_RCPT] = "RCPT",       [STS_SMTPC_DATA] = "DATA",
    [STS_SMTPC_BODY] = "BODY",       [STS_SMTPC_QUIT] = "QUIT",
    [STS_SMTPC_DONE] = "DONE",
};

const char *sts_smtpc_state_name(sts_smtpc_state st)
{
    if ((unsigned)st < sizeof(state_names) / sizeof(state_names[0]) && state_names[st])
        return state_names[st];
    return "UNKNOWN";
}

enum smtpc_event { EV_CONNECT, EV_READ, EV_TLS, EV_EOF, EV_TIMEOUT, EV_CLOSE };

struct sts_smtpc {
    uv_loop_t *loop;
    sts_smtpc_params p;
    struct sockaddr_storage addr;
    char addr_text[INET6_ADDRSTRLEN + 8];
    sts_smtpc_state state;
    sts_stream *stream;
    uv_timer_t timer;
    sts_buf rbuf;          /* received, not yet a complete reply */
    sts_smtp_reply reply;  /* the reply being handled */
    size_t rcpt_idx;
    int rcpt_temp;         /* RCPTs answered 4xx */
    int ext_pipelining;    /* the last EHLO offered PIPELINING (RFC 2920) */
    int empty_body;        /* send a lone "." (RFC 2920 3.1: DATA 354, no recipient) */
    int closing;
    uint64_t state_t0; /* uv_hrtime() when the current state was entered; 0 = none */
    char helo_lit[INET6_ADDRSTRLEN + 8]; /* "[127.0.0.1]" when p.helo is "" */
    char from_buf[300];                  /* "ststest@<EHLO name>" when p.from is NULL */
    sts_smtpc_result res;
    sts_smtpc_done_cb done_cb;
    void *arg;
};

static void smtpc_io(sts_smtpc *s, enum smtpc_event ev, const char *data, size_t len,
                     int status);
static void smtpc_enter(sts_smtpc *s, sts_smtpc_state st);

void sts_smtpc_timeouts_init(sts_smtpc_timeouts *t, double seconds)
{
    if (seconds > 0) {
        uint64_t ms = (uint64_t)(seconds * 1000.0);
        if (!ms)
            ms = 1;
        t->connect = t->greeting = t->command = t->mail = t->rcpt = t->data = t->block =
            t->eod = ms;
        return;
    }
    /* RFC 5321 4.5.3.2. */
    t->connect = 5 * 60 * 1000;
    t->greeting = 5 * 60 * 1000;
    t->command = 5 * 60 * 1000;
    t->mail = 5 * 60 * 1000;
    t->rcpt = 5 * 60 * 1000;
    t->data = 2 * 60 * 1000;
    t->block = 3 * 60 * 1000;
    t->eod = 10 * 60 * 1000;
}

int sts_smtpc_encode_body(const char *msg, size_t len, sts_buf *out)
{
    size_t i = 0;
    int rc = 0;
    while (i < len && !rc) {
        size_t j = i;
        while (j < len && msg[j] != '\r' && msg[j] != '\n')
            j++;
        /* RFC 5321 4.5.2: "Before sending a line of mail text, the SMTP client checks
         * the first character of the line. If it is a period, one additional period is
         * inserted at the beginning of the line." */
        if (j > i && msg[i] == '.')
            rc = sts_buf_append(out, ".", 1);
        if (!rc)
            rc = sts_buf_append(out, msg + i, j - i);
        /* RFC 5321 2.3.8: lines end in CRLF; a bare CR or LF is made one. */
        if (!rc)
            rc = sts_buf_append(out, "\r\n", 2);
        if (j < len && msg[j] == '\r' && j + 1 < len && msg[j + 1] == '\n')
            j += 2;
        else if (j < len)
            j += 1;
        i = j;
    }
    if (!rc)
        rc = sts_buf_append(out, ".\r\n", 3); /* RFC 5321 4.1.1.4 end of data */
    return rc;
}

size_t sts_smtpc_message_size(const char *msg, size_t len)
{
    /* RFC 1870 3: "the number of octets, including CR-LF pairs, but not the SMTP DATA
     * command's terminating dot or doubled quoting dots". */
    size_t i = 0, size = 0;
    while (i < len) {
        size_t j = i;
        while (j < len && msg[j] != '\r' && msg[j] != '\n')
            j++;
        size += (j - i) + 2;
        if (j < len && msg[j] == '\r' && j + 1 < len && msg[j + 1] == '\n')
            j += 2;
        else if (j < len)
            j += 1;
        i = j;
    }
    return size;
}

/* ---- verdict and closing ---- */

/* The session's verdict: action, RFC 8460 failure (STS_RESULT_NONE: none), local error
 * and a detail for people; the first one stands, later calls do nothing. */
static void smtpc_set_verdict(sts_smtpc *s, sts_action action, sts_result_type failure, int err,
                              const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void smtpc_set_verdict(sts_smtpc *s, sts_action action, sts_result_type failure, int err,
                              const char *fmt, ...)
{
    if (s->res.action != STS_ACTION_NONE)
        return; /* the first verdict stands */
    s->res.action = action;
    if (failure != STS_RESULT_NONE)
        s->res.failure = failure;
    s->res.stage = s->state;
    s->res.error = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->res.detail, sizeof(s->res.detail), fmt, ap);
    va_end(ap);
    const char *type = sts_result_type_name(failure); /* NULL for none */
    /* check sends no mail: its "delivered" is an MX a sender could deliver to. */
    const char *act =
        s->p.check_only && action == STS_ACTION_DELIVERED ? "usable" : sts_action_name(action);
    sts_info(s->p.log, "SMTP %s %s: %s%s%s", sts_smtpc_state_name(s->state), act, s->res.detail,
             type ? " -> " : "", type ? type : "");
}

/* The time spent in the state being left goes to its stage_ms. */
static void smtpc_clock(sts_smtpc *s)
{
    uint64_t now = uv_hrtime();
    if (s->state_t0 && s->state < STS_SMTPC_DONE)
        s->res.stage_ms[s->state] += (double)(now - s->state_t0) / 1e6;
    s->state_t0 = now;
}

static void timer_close_cb(uv_handle_t *h)
{
    sts_smtpc *s = h->data;
    s->state = STS_SMTPC_DONE;
    /* The session's last act: the owner may free it inside done_cb. */
    s->done_cb(s, s->arg);
}

static void smtpc_close(sts_smtpc *s)
{
    if (s->closing)
        return;
    smtpc_clock(s);
    s->closing = 1;
    uv_timer_stop(&s->timer);
    if (s->res.action == STS_ACTION_NONE)
        smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, STS_ESTATE,
                          "session ended without a verdict");
    sts_stream_close(s->stream); /* on_close -> EV_CLOSE -> timer close -> done_cb */
}

/* ---- output ---- */

/* The security invariant (DESIGN.md): with TLS required, no envelope or message byte
 * before a verified TLS session; in check mode, none at all. */
static int smtpc_may_send_envelope(const sts_smtpc *s)
{
    if (s->p.check_only)
        return 0;
    if (s->p.tls_required && !(s->res.tls_up && s->res.tls.verified))
        return 0;
    return 1;
}

static int smtpc_is_envelope_state(sts_smtpc_state st)
{
    return st == STS_SMTPC_MAIL || st == STS_SMTPC_RCPT || st == STS_SMTPC_DATA ||
           st == STS_SMTPC_BODY;
}

/* The security invariant was about to be broken: unreachable by construction (the
 * states before MAIL decide TLS first), so if it is ever reached, count it, fail
 * closed (REFUSED, validation-failure) and close. what: what would have been sent, for
 * the log ("MAIL", "the envelope", "the message"); kind: for the detail ("envelope
 * command", "message"). Returns STS_ESTATE. */
static int smtpc_refuse_unverified(sts_smtpc *s, const char *what, const char *kind)
{
    s->res.invariant_violations++;
    sts_error(s->p.log, "BUG: refusing to send %s without a verified TLS session", what);
    assert(!"security invariant: envelope or message without verified TLS");
    smtpc_set_verdict(s, STS_ACTION_REFUSED, STS_RESULT_VALIDATION_FAILURE, STS_ESTATE,
                      "internal: %s without verified TLS refused", kind);
    smtpc_close(s);
    return STS_ESTATE;
}

static const char *smtpc_out_arrow(const sts_smtpc *s)
{
    return s->res.tls_up ? "~~>" : "-->";
}

static int smtpc_send(sts_smtpc *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int smtpc_send(sts_smtpc *s, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(line) - 2) {
        smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, STS_ETOOBIG,
                          "command too long in %s", sts_smtpc_state_name(s->state));
        smtpc_close(s);
        return STS_ETOOBIG;
    }
    if (smtpc_is_envelope_state(s->state) && !smtpc_may_send_envelope(s))
        return smtpc_refuse_unverified(s, sts_smtpc_state_name(s->state), "envelope command");
    sts_info(s->p.log, "%s %s", smtpc_out_arrow(s), line);
    memcpy(line + n, "\r\n", 2);
    int rc = sts_stream_write(s->stream, line, (size_t)n + 2);
    if (rc) {
        smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, rc, "write failed in %s: %s",
                          sts_smtpc_state_name(s->state), sts_strerror(rc));
        smtpc_close(s);
    }
    return rc;
}

/* RFC 2920 3.1: MAIL, every RCPT and DATA as one group, in one write. The envelope
 * check of smtpc_send() is made once for the whole group (every command in it is an
 * envelope command). Returns 0 or the error (the session is then closing). */
static int smtpc_send_group(sts_smtpc *s, const char *mail)
{
    if (!smtpc_may_send_envelope(s))
        return smtpc_refuse_unverified(s, "the envelope", "envelope command");
    sts_buf group;
    /* MAIL, up to nrcpts RCPT lines of at most 1 KiB each, DATA. */
    sts_buf_init(&group, 0);
    int rc = sts_buf_appendf(&group, "%s\r\n", mail);
    sts_info(s->p.log, "%s %s", smtpc_out_arrow(s), mail);
    for (size_t i = 0; !rc && i < s->p.nrcpts; i++) {
        char line[1024];
        int n = snprintf(line, sizeof(line), "RCPT TO:<%s>", s->p.rcpts[i]);
        if (n < 0 || (size_t)n >= sizeof(line)) {
            rc = STS_ETOOBIG;
            break;
        }
        sts_info(s->p.log, "%s %s", smtpc_out_arrow(s), line);
        rc = sts_buf_appendf(&group, "%s\r\n", line);
    }
    if (!rc) {
        sts_info(s->p.log, "%s DATA", smtpc_out_arrow(s));
        rc = sts_buf_append(&group, "DATA\r\n", 6);
    }
    if (!rc) {
        sts_debug(s->p.log, "smtpc %s: MAIL, %zu RCPT and DATA pipelined in one write "
                  "(RFC 2920)", s->p.host, s->p.nrcpts);
        rc = sts_stream_write(s->stream, group.data, group.len);
    }
    sts_buf_free(&group);
    if (rc) {
        smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, rc,
                          "sending the pipelined envelope: %s", sts_strerror(rc));
        smtpc_close(s);
        return rc;
    }
    s->res.pipelined = 1;
    return 0;
}

static void timer_cb(uv_timer_t *t);

/* ---- TLS ---- */

static void smtpc_log_tls(sts_smtpc *s)
{
    const sts_tls_info *t = &s->res.tls;
    const char *rt = sts_result_type_name(t->result_type); /* NULL when verified */
    sts_log *log = s->p.log;
    sts_info(log, "TLS %s %s", t->version, t->cipher);
    if (t->chain_ok && t->time_ok)
        sts_info(log, "Cert VALIDATED: ok");
    else
        sts_info(log, "Cert NOT VALIDATED: %s",
                 t->verify_error_str[0] ? t->verify_error_str : (rt ? rt : "unknown"));
    char names[1024];
    size_t off = 0;
    names[0] = '\0';
    for (size_t i = 0; i < t->npeer_names && off < sizeof(names); i++)
        off += (size_t)snprintf(names + off, sizeof(names) - off, "%s%s", i ? " " : "",
                                t->peer_names[i]);
    /* Said so that a mismatch cannot be read as a match: what the certificate names,
     * then the MX host it had to name. */
    const char *checked = t->host[0] ? t->host : s->p.host;
    sts_info(log, "Cert Hostname %s: certificate names %s, MX is %s%s%s%s",
             t->name_ok ? "VERIFIED" : "MISMATCH", names[0] ? names : "nothing", s->p.host,
             strcmp(checked, s->p.host) ? " (checked as " : "",
             strcmp(checked, s->p.host) ? checked : "", strcmp(checked, s->p.host) ? ")" : "");
    sts_info(log, "Not Valid Before %s", t->not_before[0] ? t->not_before : "?");
    sts_info(log, "Not Valid After %s", t->not_after[0] ? t->not_after : "?");
}

/* The first word of the first line of a 2xx EHLO/HELO reply: the name the MX gives
 * itself (RFC 5321 4.1.1.1), kept when it is printable ASCII. */
static void smtpc_take_ehlo_host(sts_smtpc *s, const sts_smtp_reply *r)
{
    char line[STS_SMTPC_TEXT_MAX];
    if (sts_smtp_reply_line(r, 0, line, sizeof(line)))
        return;
    size_t n = strcspn(line, " \t");
    if (!n || n >= sizeof(s->res.ehlo_host))
        return;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)line[i] <= 0x20 || (unsigned char)line[i] >= 0x7f)
            return;
    memcpy(s->res.ehlo_host, line, n);
    s->res.ehlo_host[n] = '\0';
}

/* The TLS step is over (no STARTTLS, STARTTLS refused, handshake failed or done):
 * ask decide.h and act. */
static void smtpc_tls_verdict(sts_smtpc *s)
{
    sts_tls_facts f = {
        .starttls_offered = s->res.starttls_offered,
        .starttls_code = s->res.starttls_code,
        .handshake_done = s->res.tls_up,
        .verified = s->res.tls_up && s->res.tls.verified,
        .result_type = s->res.tls_up ? s->res.tls.result_type : STS_RESULT_NONE,
        .plain_retry = s->p.no_starttls,
    };
    sts_result_type failure = STS_RESULT_NONE;
    sts_tls_verdict v = sts_decide_tls(s->p.tls_required, &f, &failure);
    if (failure != STS_RESULT_NONE && s->res.failure == STS_RESULT_NONE)
        s->res.failure = failure;

    switch (v) {
    case STS_TLSV_REFUSE:
        smtpc_set_verdict(s, STS_ACTION_REFUSED, failure, 0, "%s; TLS is required, MX refused",
                          f.plain_retry                               ? "plaintext retry"
                          : !f.starttls_offered                       ? "STARTTLS not offered"
                          : f.starttls_code && f.starttls_code != 220 ? "STARTTLS refused"
                          : !f.handshake_done                         ? "TLS handshake failed"
                                                                      : "certificate not verified");
        if (s->res.tls_attempted && !s->res.tls_up)
            smtpc_close(s); /* no usable channel left for QUIT */
        else
            smtpc_enter(s, STS_SMTPC_QUIT);
        return;
    case STS_TLSV_RETRY_PLAIN:
        s->res.retry_plain = 1;
        smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, failure, STS_ETLS,
                          "TLS handshake failed (%s); opportunistic: retry without STARTTLS",
                          s->res.tls.error[0] ? s->res.tls.error : "unknown");
        smtpc_close(s);
        return;
    case STS_TLSV_CONTINUE:
        if (failure != STS_RESULT_NONE)
            sts_info(s->p.log, "TLS problem recorded, delivery goes on: %s",
                     sts_result_type_name(failure));
        if (s->res.tls_up) {
            smtpc_enter(s, STS_SMTPC_EHLO2);
        } else if (s->p.check_only) {
            smtpc_set_verdict(s, STS_ACTION_DELIVERED, failure, 0,
                              "check: session would proceed without TLS");
            smtpc_enter(s, STS_SMTPC_QUIT);
        } else {
            smtpc_enter(s, STS_SMTPC_MAIL);
        }
        return;
    }
}

/* ---- states ---- */

static void smtpc_arm(sts_smtpc *s, uint64_t ms)
{
    uv_timer_stop(&s->timer);
    uv_timer_start(&s->timer, timer_cb, ms, 0);
}

static uint64_t smtpc_state_timeout(const sts_smtpc *s, sts_smtpc_state st)
{
    const sts_smtpc_timeouts *t = &s->p.timeouts;
    switch (st) {
    case STS_SMTPC_CONNECT:
        return t->connect;
    case STS_SMTPC_BANNER:
        return t->greeting;
    case STS_SMTPC_MAIL:
        return t->mail;
    case STS_SMTPC_RCPT:
        return t->rcpt;
    case STS_SMTPC_DATA:
        return t->data;
    case STS_SMTPC_BODY:
        /* The message goes out as one write: bound the transfer (data block) and the
         * wait for the final reply (end of data) together. */
        return t->block + t->eod;
    case STS_SMTPC_QUIT:
        return t->command < SMTPC_QUIT_WAIT_MS ? t->command : SMTPC_QUIT_WAIT_MS;
    default:
        return t->command;
    }
}

/* Our EHLO name: p.helo, or when it is "" an address literal of the local end of the
 * connection (RFC 5321 4.1.3: "[192.0.2.1]", "[IPv6:2001:db8::1]"). */
static const char *smtpc_helo(sts_smtpc *s)
{
    if (s->p.helo[0])
        return s->p.helo;
    const char *a = sts_stream_local_addr(s->stream);
    snprintf(s->helo_lit, sizeof(s->helo_lit), "[%s%s]", strchr(a, ':') ? "IPv6:" : "",
             a[0] ? a : "127.0.0.1");
    return s->helo_lit;
}

/* The envelope sender: p.from, or when it is NULL ststest@<our EHLO name>. */
static const char *smtpc_from(sts_smtpc *s)
{
    if (s->p.from)
        return s->p.from;
    snprintf(s->from_buf, sizeof(s->from_buf), "ststest@%s", smtpc_helo(s));
    return s->from_buf;
}

static void smtpc_enter(sts_smtpc *s, sts_smtpc_state st)
{
    if (s->closing)
        return;
    sts_debug(s->p.log, "smtpc %s: %s -> %s", s->p.host, sts_smtpc_state_name(s->state),
              sts_smtpc_state_name(st));
    smtpc_clock(s);
    s->state = st;
    smtpc_arm(s, smtpc_state_timeout(s, st));

    switch (st) {
    case STS_SMTPC_CONNECT: {
        sts_info(s->p.log, "Connecting to %s (%s)", s->addr_text, s->p.host);
        int rc = sts_stream_connect(s->stream, (const struct sockaddr *)&s->addr, NULL);
        if (rc) {
            smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, rc, "connect to %s: %s",
                              s->addr_text, sts_strerror(rc));
            smtpc_close(s);
        }
        break;
    }
    case STS_SMTPC_BANNER:
        break; /* RFC 5321 3.1: wait for the server's 220 */
    case STS_SMTPC_EHLO:
    case STS_SMTPC_EHLO2:
        /* RFC 3207 4.2: after TLS the client MUST discard what it knew and send EHLO
         * again. */
        smtpc_send(s, "EHLO %s", smtpc_helo(s));
        break;
    case STS_SMTPC_HELO:
        smtpc_send(s, "HELO %s", smtpc_helo(s));
        break;
    case STS_SMTPC_STARTTLS:
        smtpc_send(s, "STARTTLS");
        break;
    case STS_SMTPC_TLS: {
        /* RFC 8461 4.2 / RFC 6066: SNI and the certificate name are the MX host name. */
        s->res.tls_attempted = 1;
        int rc = sts_stream_start_tls_client(s->stream, s->p.ssl_ctx, s->p.host, s->p.host);
        if (rc) {
            /* Failed before a byte left: no on_tls follows. */
            s->res.tls = *sts_stream_tls_info(s->stream);
            if (!s->res.tls.error[0])
                snprintf(s->res.tls.error, sizeof(s->res.tls.error), "%s", sts_strerror(rc));
            sts_info(s->p.log, "TLS handshake FAILED: %s", s->res.tls.error);
            smtpc_tls_verdict(s);
        }
        break;
    }
    case STS_SMTPC_MAIL: {
        s->res.message_size = sts_smtpc_message_size(s->p.msg, s->p.msglen);
        if (s->res.size_offered && s->res.size_limit &&
            s->res.message_size > s->res.size_limit) {
            /* RFC 1870 6: a message over the server's announced fixed maximum is a
             * permanent failure ("552 ... 5.3.4"); the client need not send it. */
            smtpc_set_verdict(s, STS_ACTION_PERMFAIL, STS_RESULT_NONE, STS_ETOOBIG,
                              "message of %zu octets exceeds the SIZE limit %llu the server "
                              "announced (RFC 1870): not sent",
                              s->res.message_size, s->res.size_limit);
            smtpc_enter(s, STS_SMTPC_QUIT);
            break;
        }
        char mail[1100];
        int n = s->res.size_offered ? snprintf(mail, sizeof(mail), "MAIL FROM:<%s> SIZE=%zu",
                                               smtpc_from(s), s->res.message_size)
                                    : snprintf(mail, sizeof(mail), "MAIL FROM:<%s>", smtpc_from(s));
        if (n < 0 || (size_t)n >= 1000) {
            smtpc_set_verdict(s, STS_ACTION_PERMFAIL, STS_RESULT_NONE, STS_ETOOBIG,
                              "envelope sender too long");
            smtpc_enter(s, STS_SMTPC_QUIT);
            break;
        }
        s->rcpt_idx = 0;
        if (s->ext_pipelining)
            smtpc_send_group(s, mail);
        else
            smtpc_send(s, "%s", mail);
        break;
    }
    case STS_SMTPC_RCPT:
        if (!s->res.pipelined) /* else already sent with the group: await its reply */
            smtpc_send(s, "RCPT TO:<%s>", s->p.rcpts[s->rcpt_idx]);
        break;
    case STS_SMTPC_DATA:
        if (!s->res.pipelined)
            smtpc_send(s, "DATA");
        break;
    case STS_SMTPC_BODY: {
        if (!smtpc_may_send_envelope(s)) {
            smtpc_refuse_unverified(s, "the message", "message");
            break;
        }
        sts_buf body;
        sts_buf_init(&body, SMTPC_BODY_MAX);
        /* RFC 2920 3.1: a 354 after every RCPT failed gets "a single dot". */
        int rc = s->empty_body ? sts_buf_append(&body, ".\r\n", 3)
                               : sts_smtpc_encode_body(s->p.msg, s->p.msglen, &body);
        if (!rc)
            rc = sts_stream_write(s->stream, body.data, body.len);
        if (rc) {
            sts_buf_free(&body);
            smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, rc,
                              "sending the message: %s", sts_strerror(rc));
            smtpc_close(s);
            break;
        }
        s->res.body_bytes = body.len;
        sts_info(s->p.log, "%s [message: %zu bytes, ending in <CRLF>.<CRLF>]",
                 smtpc_out_arrow(s), body.len);
        sts_buf_free(&body);
        break;
    }
    case STS_SMTPC_QUIT:
        smtpc_send(s, "QUIT");
        break;
    case STS_SMTPC_DONE:
        break;
    }
}

/* One complete reply in the current state (what it means). */
static void smtpc_response(sts_smtpc *s)
{
    const sts_smtp_reply *r = &s->reply;
    int cls = sts_smtp_reply_class(r);
    sts_action act = sts_decide_reply_action(r->code);

    switch (s->state) {
    case STS_SMTPC_BANNER:
        if (cls != 2) {
            smtpc_set_verdict(s, act == STS_ACTION_NONE ? STS_ACTION_TEMPFAIL : act,
                              STS_RESULT_NONE, 0, "greeting %d %s", r->code, s->res.text);
            smtpc_enter(s, STS_SMTPC_QUIT);
            return;
        }
        smtpc_enter(s, STS_SMTPC_EHLO);
        return;

    case STS_SMTPC_EHLO:
        if (cls == 5) {
            /* RFC 5321 4.1.4 / 3.2: a server that does not know EHLO: fall back. */
            s->res.helo_fallback = 1;
            smtpc_enter(s, STS_SMTPC_HELO);
            return;
        }
        /* fall through */
    case STS_SMTPC_HELO:
        if (cls != 2) {
            smtpc_set_verdict(s, act == STS_ACTION_NONE ? STS_ACTION_TEMPFAIL : act,
                              STS_RESULT_NONE, 0, "%s rejected: %d %s",
                              sts_smtpc_state_name(s->state), r->code, s->res.text);
            smtpc_enter(s, STS_SMTPC_QUIT);
            return;
        }
        if (!s->res.ehlo_host[0])
            smtpc_take_ehlo_host(s, r);
        s->res.starttls_offered =
            s->state == STS_SMTPC_EHLO && sts_smtp_reply_has_ext(r, "STARTTLS");
        /* HELO has no extensions; these hold until STARTTLS (RFC 3207 4.2). */
        s->ext_pipelining =
            s->state == STS_SMTPC_EHLO && sts_smtp_reply_has_ext(r, "PIPELINING");
        s->res.size_offered = s->state == STS_SMTPC_EHLO &&
                              sts_smtp_reply_size_limit(r, &s->res.size_limit);
        sts_info(s->p.log, "STARTTLS %s", s->res.starttls_offered ? "offered" : "NOT offered");
        if (s->res.starttls_offered && !s->p.no_starttls)
            smtpc_enter(s, STS_SMTPC_STARTTLS);
        else
            smtpc_tls_verdict(s);
        return;

    case STS_SMTPC_STARTTLS:
        s->res.starttls_code = r->code;
        if (r->code == 220) {
            /* RFC 3207 4.2: forget what the plaintext EHLO said. */
            s->ext_pipelining = 0;
            s->res.size_offered = 0;
            s->res.size_limit = 0;
            smtpc_enter(s, STS_SMTPC_TLS);
        }
        else
            smtpc_tls_verdict(s); /* RFC 3207 4: 454 TLS not available */
        return;

    case STS_SMTPC_EHLO2:
        if (cls != 2) {
            smtpc_set_verdict(s, act == STS_ACTION_NONE ? STS_ACTION_TEMPFAIL : act,
                              STS_RESULT_NONE, 0, "EHLO after STARTTLS rejected: %d %s", r->code,
                              s->res.text);
            smtpc_enter(s, STS_SMTPC_QUIT);
            return;
        }
        /* RFC 3207 4.2: only what the EHLO over TLS says counts. */
        s->ext_pipelining = sts_smtp_reply_has_ext(r, "PIPELINING");
        s->res.size_offered = sts_smtp_reply_size_limit(r, &s->res.size_limit);
        if (s->p.check_only) {
            smtpc_set_verdict(
                s, STS_ACTION_DELIVERED, STS_RESULT_NONE, 0, "check: TLS %s and EHLO accepted",
                sts_delivery_tls_name(s->res.tls.verified ? STS_DELIVERY_TLS_VERIFIED
                                                          : STS_DELIVERY_TLS_UNVERIFIED));
            smtpc_enter(s, STS_SMTPC_QUIT);
            return;
        }
        smtpc_enter(s, STS_SMTPC_MAIL);
        return;

    case STS_SMTPC_MAIL:
        if (cls != 2) {
            smtpc_set_verdict(s, act == STS_ACTION_NONE ? STS_ACTION_TEMPFAIL : act,
                              STS_RESULT_NONE, 0, "MAIL rejected: %d %s", r->code, s->res.text);
            if (s->res.pipelined) {
                /* RFC 2920 3.1: the replies to the RCPTs and DATA of the group are
                 * still coming; read them all before QUIT. */
                s->rcpt_idx = 0;
                smtpc_enter(s, STS_SMTPC_RCPT);
                return;
            }
            smtpc_enter(s, STS_SMTPC_QUIT);
            return;
        }
        s->rcpt_idx = 0;
        smtpc_enter(s, STS_SMTPC_RCPT);
        return;

    case STS_SMTPC_RCPT:
        if (cls == 2)
            s->res.rcpt_accepted++;
        else if (cls != 5)
            s->rcpt_temp++;
        if (++s->rcpt_idx < s->p.nrcpts) {
            smtpc_enter(s, STS_SMTPC_RCPT);
            return;
        }
        if (!s->res.rcpt_accepted) {
            smtpc_set_verdict(s, s->rcpt_temp ? STS_ACTION_TEMPFAIL : STS_ACTION_PERMFAIL,
                              STS_RESULT_NONE, 0, "RCPT rejected: %d %s", r->code, s->res.text);
            if (s->res.pipelined) {
                smtpc_enter(s, STS_SMTPC_DATA); /* its reply is coming */
                return;
            }
            smtpc_enter(s, STS_SMTPC_QUIT);
            return;
        }
        smtpc_enter(s, STS_SMTPC_DATA);
        return;

    case STS_SMTPC_DATA:
        if (s->res.action != STS_ACTION_NONE) {
            /* Pipelined, and MAIL or every RCPT already failed. RFC 2920 3.1: "if the
             * DATA command was accepted the client SMTP should send a single dot". */
            if (r->code == 354) {
                s->empty_body = 1;
                smtpc_enter(s, STS_SMTPC_BODY);
            } else {
                smtpc_enter(s, STS_SMTPC_QUIT);
            }
            return;
        }
        if (r->code != 354) {
            smtpc_set_verdict(s, act == STS_ACTION_NONE ? STS_ACTION_TEMPFAIL : act,
                              STS_RESULT_NONE, act == STS_ACTION_NONE ? STS_EPROTO : 0,
                              "DATA rejected: %d %s", r->code, s->res.text);
            smtpc_enter(s, STS_SMTPC_QUIT);
            return;
        }
        smtpc_enter(s, STS_SMTPC_BODY);
        return;

    case STS_SMTPC_BODY:
        if (cls == 2)
            smtpc_set_verdict(s, STS_ACTION_DELIVERED, STS_RESULT_NONE, 0,
                              "message accepted: %d %s", r->code, s->res.text);
        else
            smtpc_set_verdict(s, act == STS_ACTION_NONE ? STS_ACTION_TEMPFAIL : act,
                              STS_RESULT_NONE, 0, "message rejected: %d %s", r->code, s->res.text);
        smtpc_enter(s, STS_SMTPC_QUIT);
        return;

    case STS_SMTPC_QUIT:
        smtpc_close(s);
        return;

    default:
        smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, STS_EPROTO,
                          "unexpected reply %d in %s", r->code, sts_smtpc_state_name(s->state));
        smtpc_close(s);
        return;
    }
}

/* Log the raw lines of a reply: <-- before TLS, <~~ inside. */
static void smtpc_log_reply(sts_smtpc *s, const char *p, size_t n)
{
    const char *arrow = s->res.tls_up ? "<~~" : "<--";
    while (n) {
        const char *lf = memchr(p, '\n', n);
        size_t l = lf ? (size_t)(lf - p) : n;
        size_t c = l;
        if (c && p[c - 1] == '\r')
            c--;
        sts_info(s->p.log, "%s %.*s", arrow, (int)c, p);
        if (!lf)
            break;
        p += l + 1;
        n -= l + 1;
    }
}

static void smtpc_keep_reply(sts_smtpc *s)
{
    const sts_smtp_reply *r = &s->reply;
    /* The result keeps the reply that decided the action, not the 221 to QUIT. */
    if (s->state == STS_SMTPC_QUIT)
        return;
    s->res.code = r->code;
    snprintf(s->res.enhanced, sizeof(s->res.enhanced), "%s", r->enhanced);
    size_t n = r->text.len < sizeof(s->res.text) - 1 ? r->text.len : sizeof(s->res.text) - 1;
    for (size_t i = 0; i < n; i++) {
        char c = r->text.data[i];
        s->res.text[i] = (c == '\n' || c == '\r' || (unsigned char)c < 0x20) ? ' ' : c;
    }
    s->res.text[n] = '\0';
}

static void smtpc_on_bytes(sts_smtpc *s, const char *data, size_t len)
{
    int rc = sts_buf_append(&s->rbuf, data, len);
    if (rc) {
        smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, STS_EPROTO,
                          "server sent more than %d bytes without completing a reply in %s",
                          SMTPC_RBUF_MAX, sts_smtpc_state_name(s->state));
        smtpc_close(s);
        return;
    }
    while (!s->closing && s->rbuf.len) {
        size_t used = 0;
        char why[200];
        rc = sts_smtp_reply_parse(s->rbuf.data, s->rbuf.len, &s->reply, &used, why, sizeof(why));
        if (rc) {
            smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, STS_EPROTO,
                              "bad reply in %s: %s", sts_smtpc_state_name(s->state), why);
            smtpc_close(s);
            return;
        }
        if (!used)
            return; /* incomplete: wait for more */
        smtpc_log_reply(s, s->rbuf.data, used);
        sts_buf_consume(&s->rbuf, used);
        smtpc_keep_reply(s);
        if (s->state == STS_SMTPC_BANNER || s->state == STS_SMTPC_EHLO ||
            s->state == STS_SMTPC_HELO || s->state == STS_SMTPC_STARTTLS ||
            s->state == STS_SMTPC_EHLO2 || s->state == STS_SMTPC_MAIL ||
            s->state == STS_SMTPC_RCPT || s->state == STS_SMTPC_DATA ||
            s->state == STS_SMTPC_BODY || s->state == STS_SMTPC_QUIT) {
            if (s->state == STS_SMTPC_STARTTLS && s->reply.code == 220 && s->rbuf.len) {
                /* RFC 3207 5 / CVE-2011-0411 class: bytes that arrived with the 220 were
                 * sent before TLS and could be an attacker's; never read them as replies
                 * of the TLS session. Abort. */
                s->res.injection = 1;
                s->res.starttls_code = 220;
                smtpc_set_verdict(
                    s, s->p.tls_required ? STS_ACTION_REFUSED : STS_ACTION_TEMPFAIL,
                    s->p.tls_required ? STS_RESULT_VALIDATION_FAILURE : STS_RESULT_NONE, STS_EPROTO,
                    "%zu bytes followed the STARTTLS 220 before TLS (injection): "
                    "aborted",
                    s->rbuf.len);
                smtpc_close(s);
                return;
            }
            smtpc_response(s);
        } else {
            smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, STS_EPROTO,
                              "unexpected reply %d in %s", s->reply.code,
                              sts_smtpc_state_name(s->state));
            smtpc_close(s);
            return;
        }
    }
}

/* The one entry point for events. */
static void smtpc_io(sts_smtpc *s, enum smtpc_event ev, const char *data, size_t len,
                     int status)
{
    switch (ev) {
    case EV_CONNECT:
        if (s->closing)
            return;
        if (status) {
            smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, status,
                              "connect to %s failed: %s", s->addr_text, sts_strerror(status));
            smtpc_close(s);
            return;
        }
        s->res.connected = 1;
        snprintf(s->res.local_addr, sizeof(s->res.local_addr), "%s",
                 sts_stream_local_addr(s->stream));
        sts_info(s->p.log, "Connected to %s", s->addr_text);
        smtpc_enter(s, STS_SMTPC_BANNER);
        return;

    case EV_READ:
        if (s->closing)
            return;
        smtpc_on_bytes(s, data, len);
        return;

    case EV_TLS:
        if (s->closing)
            return;
        s->res.tls = *sts_stream_tls_info(s->stream);
        if (status == 0) {
            s->res.tls_up = 1;
            smtpc_log_tls(s);
        } else {
            sts_info(s->p.log, "TLS handshake FAILED: %s",
                     s->res.tls.error[0] ? s->res.tls.error : sts_strerror(status));
        }
        smtpc_tls_verdict(s);
        return;

    case EV_EOF:
        if (s->closing)
            return;
        if (s->state != STS_SMTPC_QUIT)
            smtpc_set_verdict(
                s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, status ? status : STS_ECLOSED,
                "connection closed by the server in %s", sts_smtpc_state_name(s->state));
        smtpc_close(s);
        return;

    case EV_TIMEOUT:
        if (s->closing)
            return;
        if (s->state != STS_SMTPC_QUIT)
            smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, STS_ETIMEDOUT,
                              "no reply in %s within %.1f s", sts_smtpc_state_name(s->state),
                              (double)smtpc_state_timeout(s, s->state) / 1000.0);
        smtpc_close(s);
        return;

    case EV_CLOSE:
        s->stream = NULL;
        uv_close((uv_handle_t *)&s->timer, timer_close_cb);
        return;
    }
}

/* ---- stream and timer callbacks: all go through smtpc_io ---- */

static void on_connect_cb(sts_stream *st, int status)
{
    smtpc_io(sts_stream_data(st), EV_CONNECT, NULL, 0, status);
}
static void on_read_cb(sts_stream *st, const char *data, size_t len)
{
    smtpc_io(sts_stream_data(st), EV_READ, data, len, 0);
}
static void on_tls_cb(sts_stream *st, int status)
{
    smtpc_io(sts_stream_data(st), EV_TLS, NULL, 0, status);
}
static void on_eof_cb(sts_stream *st, int status)
{
    smtpc_io(sts_stream_data(st), EV_EOF, NULL, 0, status);
}
static void on_close_cb(sts_stream *st)
{
    smtpc_io(sts_stream_data(st), EV_CLOSE, NULL, 0, 0);
}
static void timer_cb(uv_timer_t *t)
{
    smtpc_io(t->data, EV_TIMEOUT, NULL, 0, 0);
}

static const sts_stream_cbs smtpc_stream_cbs = {
    .on_connect = on_connect_cb,
    .on_read = on_read_cb,
    .on_tls = on_tls_cb,
    .on_eof = on_eof_cb,
    .on_close = on_close_cb,
};

int sts_smtpc_start(uv_loop_t *loop, const sts_smtpc_params *params, sts_smtpc_done_cb done_cb,
                    void *arg, sts_smtpc **out)
{
    if (!params || !params->addr || !params->host || !params->helo || !params->ssl_ctx ||
        !done_cb || (!params->check_only && !params->nrcpts))
        return STS_EINVAL;
    socklen_t alen = params->addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                     : params->addr->sa_family == AF_INET ? sizeof(struct sockaddr_in)
                                                          : 0;
    if (!alen)
        return STS_EINVAL;
    sts_smtpc *s = calloc(1, sizeof(*s));
    if (!s)
        return STS_ENOMEM;
    s->loop = loop;
    s->p = *params;
    memcpy(&s->addr, params->addr, alen);
    s->p.addr = (const struct sockaddr *)&s->addr;
    char ip[INET6_ADDRSTRLEN] = "?";
    int port = 0;
    if (s->addr.ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)&s->addr;
        inet_ntop(AF_INET, &a->sin_addr, ip, sizeof(ip));
        port = ntohs(a->sin_port);
        snprintf(s->addr_text, sizeof(s->addr_text), "%s:%d", ip, port);
    } else {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&s->addr;
        inet_ntop(AF_INET6, &a->sin6_addr, ip, sizeof(ip));
        port = ntohs(a->sin6_port);
        snprintf(s->addr_text, sizeof(s->addr_text), "[%s]:%d", ip, port);
    }
    s->done_cb = done_cb;
    s->arg = arg;
    sts_buf_init(&s->rbuf, SMTPC_RBUF_MAX);
    sts_smtp_reply_init(&s->reply);
    s->stream = sts_stream_new(loop, &smtpc_stream_cbs, s);
    if (!s->stream) {
        sts_smtp_reply_free(&s->reply);
        free(s);
        return STS_ENOMEM;
    }
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    s->state = STS_SMTPC_CONNECT;
    smtpc_enter(s, STS_SMTPC_CONNECT);
    *out = s;
    return 0;
}

void sts_smtpc_abort(sts_smtpc *s, const char *why)
{
    if (!s || s->closing)
        return;
    s->res.aborted = 1;
    smtpc_set_verdict(s, STS_ACTION_TEMPFAIL, STS_RESULT_NONE, STS_ETIMEDOUT, "%s",
                      why ? why : "aborted");
    smtpc_close(s);
}

const sts_smtpc_result *sts_smtpc_get_result(const sts_smtpc *s)
{
    return &s->res;
}

void sts_smtpc_free(sts_smtpc *s)
{
    if (!s)
        return;
    assert(s->state == STS_SMTPC_DONE);
    sts_buf_free(&s->rbuf);
    sts_smtp_reply_free(&s->reply);
    free(s);
}
