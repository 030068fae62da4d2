/*
 * mxsrv.c - a scripted MX: ESMTP server state machine with STARTTLS (see mxsrv.h).
 * Functions return 0 or a negative STS_* code.
 *
 * Input is handled in one place (smtp_feed): complete command lines are taken from
 * a capped buffer one at a time and dispatched; in DATA state the message is taken
 * line by line (CRLF only, so a bare LF never ends the message). Replies are queued
 * in order, which is all PIPELINING (RFC 2920) needs from a server.
 */
#include "fakedns/mxsrv.h"
#include "common/buf.h"
#include "common/err.h"
#include "fakedns/rptrecv.h"
#include "fakedns/served.h"
#include "fakedns/tcpsrv.h"

#include <ctype.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* RFC 5321 4.5.3.1.4: a command line is at most 512 octets with its CRLF. */
#define SMTP_MAX_CMDLINE 512
/* What we buffer while waiting for a line end in command state. */
#define SMTP_MAX_INPUT 65536
/* RFC 5321 4.5.3.1.3: a path is at most 256 octets. */
#define SMTP_MAX_PATH 256

struct sts_mxsrv {
    char *host, *address;
    sts_served *const *served; /* the world's pointer to what is served now */
    size_t index;              /* this host's entry in a served state */
    sts_tcpsrv *tcp;
    sts_observer *obs;
    sts_log *log;
    unsigned nsess;
};

typedef enum {
    SMTP_CONNECTED, /* banner sent, no HELO/EHLO yet (also right after TLS is up) */
    SMTP_HELO,      /* greeted, no transaction */
    SMTP_MAIL,      /* MAIL accepted */
    SMTP_RCPT,      /* at least one RCPT accepted */
    SMTP_DATA,      /* reading the message */
    SMTP_TLS,       /* STARTTLS accepted, handshake running */
    SMTP_QUIT,      /* closing; input ignored */
    SMTP_ABORT,     /* STARTTLS accepted; the ClientHello will be answered by a close */
    SMTP_GREETING,  /* a delayed greeting is pending */
} smtp_state;

static const char *smtp_state_name(smtp_state s)
{
    static const char *names[] = {"CONNECTED", "HELO", "MAIL",  "RCPT",    "DATA",
                                  "TLS",       "QUIT", "ABORT", "GREETING"};
    return names[s];
}

typedef struct smtp_sess {
    sts_tcpsrv_conn conn; /* first: the stream's data pointer */
    sts_mxsrv *srv;
    sts_served *served;       /* what is served to this session (a reference) */
    const sts_mxsrv_conf *cf; /* its entry for this host */
    size_t max_message;       /* the SIZE limit of cf */
    sts_delay *wait;          /* a scripted delay is running: input waits */
    int waited;               /* the delay of the next stage has passed */
    const char *override;     /* scripted text replacing the next reply */
    const char *trailer;      /* bytes sent in the same write as the next reply */
    int rejected;             /* the greeting was negative: only QUIT is served */
    sts_stream *st;
    unsigned id;
    smtp_state state;
    int tls;        /* TLS is up */
    int esmtp;      /* greeted with EHLO */
    int last_reply; /* code of the last reply sent */
    sts_obs_smtp *obs;
    sts_buf in;
    /* the transaction */
    char from[SMTP_MAX_PATH + 1];
    char *rcpts[STS_SMTP_MAX_RCPTS];
    size_t nrcpts;
    sts_buf msg;
    int msg_too_big;
    int line_start; /* DATA: at the start of a line */
    unsigned nmsg;
} smtp_sess;

static void smtp_set_state(smtp_sess *s, smtp_state next)
{
    if (s->state != next)
        sts_trace(s->srv->log, "mx %s#%u state %s -> %s", s->srv->host, s->id,
                  smtp_state_name(s->state), smtp_state_name(next));
    s->state = next;
}

/* Send one reply (a single line, or several separated by '\n' in text: each gets
 * "code-" and the last "code "; RFC 5321 4.2.1). */
static void smtp_reply(smtp_sess *s, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void smtp_reply(smtp_sess *s, int code, const char *fmt, ...)
{
    char text[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    sts_buf out;
    sts_buf_init(&out, 0);
    if (s->override) {
        /* A scripted reply replaces this one, verbatim (already CRLF lines). */
        const char *o = s->override;
        s->override = NULL;
        code = sts_smtp_reply_code(o);
        sts_debug(s->srv->log, "mx %s#%u %s %.*s(scripted)", s->srv->host, s->id,
                  s->tls ? "~~>" : "-->", (int)strcspn(o, "\r"), o);
        sts_buf_append(&out, o, strlen(o));
    } else {
        for (char *line = text;;) {
            char *nl = strchr(line, '\n');
            if (nl)
                *nl = '\0';
            sts_debug(s->srv->log, "mx %s#%u %s %d%c%s", s->srv->host, s->id,
                      s->tls ? "~~>" : "-->", code, nl ? '-' : ' ', line);
            sts_buf_appendf(&out, "%d%c%s\r\n", code, nl ? '-' : ' ', line);
            if (!nl)
                break;
            line = nl + 1;
        }
    }
    if (s->trailer) {
        sts_buf_append(&out, s->trailer, strlen(s->trailer));
        s->trailer = NULL;
    }
    s->last_reply = code;
    if (sts_stream_write(s->st, out.data, out.len) != 0)
        sts_stream_close(s->st);
    sts_buf_free(&out);
}

static void smtp_reset_transaction(smtp_sess *s)
{
    s->from[0] = '\0';
    for (size_t i = 0; i < s->nrcpts; i++)
        free(s->rcpts[i]);
    s->nrcpts = 0;
    sts_buf_reset(&s->msg);
    s->msg_too_big = 0;
}

/* Parse "<path>" [SP params] after a "FROM:" / "TO:" prefix. Returns 0 and the path
 * (without brackets) in out, or -1. */
static int smtp_parse_path(const char *args, const char *prefix, char *out, size_t outlen,
                           const char **params)
{
    size_t pl = strlen(prefix);
    if (strncasecmp(args, prefix, pl))
        return -1;
    const char *p = args + pl;
    while (*p == ' ') /* tolerated, though RFC 5321 4.1.2 has no space here */
        p++;
    if (*p != '<')
        return -1;
    const char *e = strchr(p, '>');
    if (!e || (size_t)(e - p - 1) >= outlen)
        return -1;
    for (const char *c = p + 1; c < e; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f || *c == '<')
            return -1;
    memcpy(out, p + 1, (size_t)(e - p - 1));
    out[e - p - 1] = '\0';
    if (e[1] && e[1] != ' ')
        return -1;
    *params = e[1] ? e + 2 : e + 1;
    return 0;
}

/* ---- commands: check, then proceed ---- */

typedef struct smtp_cmd {
    const char *verb;
    int args;                                     /* 1 = required, 0 = none allowed, -1 = any */
    int (*check)(smtp_sess *s, const char *args); /* 0 = go on; else the reply was sent */
    void (*proceed)(smtp_sess *s, const char *args);
} smtp_cmd;

static int check_greeted(smtp_sess *s)
{
    if (s->state == SMTP_CONNECTED) {
        smtp_reply(s, 503, "5.5.1 Error: send HELO/EHLO first");
        return -1;
    }
    return 0;
}

static int check_helo(smtp_sess *s, const char *args)
{
    return 0;
}

static void proceed_helo(smtp_sess *s, const char *args)
{
    /* RFC 5321 4.1.4: HELO/EHLO also resets any transaction. */
    smtp_reset_transaction(s);
    s->esmtp = 0;
    smtp_set_state(s, SMTP_HELO);
    smtp_reply(s, 250, "%s", s->srv->host);
}

static void proceed_ehlo(smtp_sess *s, const char *args)
{
    smtp_reset_transaction(s);
    s->esmtp = 1;
    smtp_set_state(s, SMTP_HELO);
    size_t max = s->max_message;
    /* RFC 3207 4.2: after TLS, STARTTLS is no longer offered. */
    int starttls = s->cf->starttls && s->cf->ctx && !s->tls;
    if (s->cf->ehlo_keywords_set) {
        /* The scenario's keywords in its order; STARTTLS still follows `starttls`. */
        char text[1024];
        size_t o = (size_t)snprintf(text, sizeof(text), "%s Hello", s->srv->host);
        for (size_t i = 0; i < s->cf->nehlo_keywords && o < sizeof(text); i++)
            o += (size_t)snprintf(text + o, sizeof(text) - o, "\n%s", s->cf->ehlo_keywords[i]);
        if (starttls && o < sizeof(text))
            snprintf(text + o, sizeof(text) - o, "\nSTARTTLS");
        smtp_reply(s, 250, "%s", text);
        return;
    }
    /* The client's name is not echoed: it is network input. */
    smtp_reply(s, 250, "%s Hello\nPIPELINING\nSIZE %zu\n8BITMIME\nENHANCEDSTATUSCODES%s",
               s->srv->host, max, starttls ? "\nSTARTTLS" : "");
}

static int check_starttls(smtp_sess *s, const char *args)
{
    if (!s->cf->starttls || !s->cf->ctx) {
        smtp_reply(s, 502, "5.5.1 Error: command not implemented");
        return -1;
    }
    if (s->tls) {
        /* RFC 3207 4: no second TLS negotiation in one session. */
        smtp_reply(s, 503, "5.5.1 Error: TLS already active");
        return -1;
    }
    if (s->state == SMTP_MAIL || s->state == SMTP_RCPT) {
        smtp_reply(s, 503, "5.5.1 Error: STARTTLS inside a mail transaction");
        return -1;
    }
    return 0;
}

static void proceed_starttls(smtp_sess *s, const char *args)
{
    /* RFC 3207 4.2 ("pipelining" after STARTTLS): anything the client sent after the
     * STARTTLS line was sent in plaintext before the handshake and must be thrown
     * away, or an attacker could inject commands into the TLS session. */
    if (s->in.len) {
        sts_info(s->srv->log, "mx %s#%u discarding %zu octet(s) pipelined after STARTTLS",
                 s->srv->host, s->id, s->in.len);
        sts_observer_smtp_set(s->srv->obs, s->obs, "pipelined_after_starttls",
                              json_integer((json_int_t)s->in.len));
        sts_buf_reset(&s->in);
    }
    const char *inject = s->cf->inject_after_starttls;
    if (inject) {
        /* The downgrade attack of RFC 3207 5 from the server side: bytes right
         * behind the 220, in the same write, that a client must not take as a
         * reply inside TLS. */
        sts_info(s->srv->log, "mx %s#%u injecting %zu octet(s) after the 220 to STARTTLS",
                 s->srv->host, s->id, strlen(inject));
        sts_observer_smtp_set(s->srv->obs, s->obs, "injected_after_starttls",
                              json_integer((json_int_t)strlen(inject)));
        s->trailer = inject;
    }
    smtp_reply(s, 220, "2.0.0 Ready to start TLS");
    if (s->cf->handshake_abort) {
        smtp_set_state(s, SMTP_ABORT);
        return;
    }
    smtp_set_state(s, SMTP_TLS);
    if (sts_stream_start_tls_server(s->st, s->cf->ctx) != 0) {
        sts_info(s->srv->log, "mx %s#%u cannot start TLS", s->srv->host, s->id);
        sts_stream_close(s->st);
    }
}

static int check_mail(smtp_sess *s, const char *args)
{
    if (check_greeted(s))
        return -1;
    if (s->state != SMTP_HELO) {
        smtp_reply(s, 503, "5.5.1 Error: nested MAIL command");
        return -1;
    }
    char path[SMTP_MAX_PATH + 1];
    const char *params;
    if (smtp_parse_path(args, "FROM:", path, sizeof(path), &params)) {
        smtp_reply(s, 501, "5.5.4 Syntax: MAIL FROM:<address>");
        return -1;
    }
    /* RFC 1870 6: a declared size over our limit is refused at once. */
    for (const char *p = params; p && *p;) {
        if (!strncasecmp(p, "SIZE=", 5)) {
            unsigned long long n = strtoull(p + 5, NULL, 10);
            if (n > s->max_message) {
                smtp_reply(s, 552, "5.3.4 Message size exceeds fixed limit");
                return -1;
            }
        }
        const char *sp = strchr(p, ' ');
        p = sp ? sp + 1 : NULL;
    }
    return 0;
}

static void proceed_mail(smtp_sess *s, const char *args)
{
    const char *params;
    smtp_parse_path(args, "FROM:", s->from, sizeof(s->from), &params);
    smtp_set_state(s, SMTP_MAIL);
    smtp_reply(s, 250, "2.1.0 Ok");
}

static int check_rcpt(smtp_sess *s, const char *args)
{
    if (check_greeted(s))
        return -1;
    if (s->state != SMTP_MAIL && s->state != SMTP_RCPT) {
        smtp_reply(s, 503, "5.5.1 Error: need MAIL command");
        return -1;
    }
    char path[SMTP_MAX_PATH + 1];
    const char *params;
    if (smtp_parse_path(args, "TO:", path, sizeof(path), &params) || !path[0]) {
        smtp_reply(s, 501, "5.5.4 Syntax: RCPT TO:<address>");
        return -1;
    }
    if (s->nrcpts == STS_SMTP_MAX_RCPTS) {
        smtp_reply(s, 452, "4.5.3 Error: too many recipients");
        return -1;
    }
    return 0;
}

static void proceed_rcpt(smtp_sess *s, const char *args)
{
    char path[SMTP_MAX_PATH + 1];
    const char *params;
    smtp_parse_path(args, "TO:", path, sizeof(path), &params);
    if (!(s->rcpts[s->nrcpts] = strdup(path))) {
        smtp_reply(s, 451, "4.3.0 Error: out of memory");
        return;
    }
    s->nrcpts++;
    smtp_set_state(s, SMTP_RCPT);
    smtp_reply(s, 250, "2.1.5 Ok");
}

static int check_data(smtp_sess *s, const char *args)
{
    if (check_greeted(s))
        return -1;
    if (s->state != SMTP_RCPT) {
        smtp_reply(s, 503, "5.5.1 Error: need RCPT command");
        return -1;
    }
    return 0;
}

static void proceed_data(smtp_sess *s, const char *args)
{
    sts_buf_reset(&s->msg);
    s->msg_too_big = 0;
    s->line_start = 1;
    smtp_set_state(s, SMTP_DATA);
    smtp_reply(s, 354, "End data with <CR><LF>.<CR><LF>");
}

static int check_any(smtp_sess *s, const char *args)
{
    return 0;
}

static void proceed_rset(smtp_sess *s, const char *args)
{
    smtp_reset_transaction(s);
    if (s->state != SMTP_CONNECTED)
        smtp_set_state(s, SMTP_HELO);
    smtp_reply(s, 250, "2.0.0 Ok");
}

static void proceed_noop(smtp_sess *s, const char *args)
{
    smtp_reply(s, 250, "2.0.0 Ok");
}

static void proceed_vrfy(smtp_sess *s, const char *args)
{
    smtp_reply(s, 252, "2.5.2 Cannot VRFY user, but will accept message");
}

static void proceed_help(smtp_sess *s, const char *args)
{
    smtp_reply(s, 214, "2.0.0 ststest world MX: see RFC 5321");
}

static void proceed_quit(smtp_sess *s, const char *args)
{
    smtp_reply(s, 221, "2.0.0 Bye");
    smtp_set_state(s, SMTP_QUIT);
    sts_buf_reset(&s->in);
    sts_stream_shutdown(s->st);
}

static const smtp_cmd smtp_cmds[] = {
    {"EHLO", 1, check_helo, proceed_ehlo},
    {"HELO", 1, check_helo, proceed_helo},
    {"STARTTLS", 0, check_starttls, proceed_starttls},
    {"MAIL", 1, check_mail, proceed_mail},
    {"RCPT", 1, check_rcpt, proceed_rcpt},
    {"DATA", 0, check_data, proceed_data},
    {"RSET", 0, check_any, proceed_rset},
    {"NOOP", -1, check_any, proceed_noop},
    {"VRFY", 1, check_any, proceed_vrfy},
    {"HELP", -1, check_any, proceed_help},
    {"QUIT", 0, check_any, proceed_quit},
};

int sts_smtp_reply_code(const char *reply)
{
    if (!reply || !isdigit((unsigned char)reply[0]) || !isdigit((unsigned char)reply[1]) ||
        !isdigit((unsigned char)reply[2]))
        return 0;
    return (reply[0] - '0') * 100 + (reply[1] - '0') * 10 + (reply[2] - '0');
}

/* The script stage of a command verb (upper case), or -1. */
static int smtp_stage_of(const char *verb)
{
    static const struct {
        const char *verb;
        int stage;
    } map[] = {{"EHLO", STS_SCN_STAGE_EHLO},         {"HELO", STS_SCN_STAGE_EHLO},
               {"STARTTLS", STS_SCN_STAGE_STARTTLS}, {"MAIL", STS_SCN_STAGE_MAIL},
               {"RCPT", STS_SCN_STAGE_RCPT},         {"DATA", STS_SCN_STAGE_DATA},
               {"RSET", STS_SCN_STAGE_RSET},         {"QUIT", STS_SCN_STAGE_QUIT}};
    for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
        if (!strcmp(verb, map[i].verb))
            return map[i].stage;
    return -1;
}

/* require_tls: the commands served before TLS; every other one gets a 530. */
static int smtp_needs_tls(const char *verb)
{
    static const char *const clear[] = {"EHLO", "HELO", "STARTTLS", "QUIT", "NOOP", "RSET"};
    for (size_t i = 0; i < sizeof(clear) / sizeof(clear[0]); i++)
        if (!strcmp(verb, clear[i]))
            return 0;
    return 1;
}

/* Close once the queued replies are written; input from now on is ignored. */
static void smtp_close_after_reply(smtp_sess *s)
{
    smtp_set_state(s, SMTP_QUIT);
    sts_buf_reset(&s->in);
    sts_stream_shutdown(s->st);
}

/* disconnect_after: drop the connection at stage without any reply. */
static void smtp_disconnect(smtp_sess *s, int stage)
{
    sts_info(s->srv->log, "mx %s#%u scripted disconnect at %s", s->srv->host, s->id,
             sts_scn_stage_name(stage));
    sts_observer_smtp_set(s->srv->obs, s->obs, "disconnected_at",
                          json_string(sts_scn_stage_name(stage)));
    smtp_set_state(s, SMTP_QUIT);
    sts_buf_reset(&s->in);
    sts_stream_close(s->st);
}

/* One command line (without its line end; n octets, NUL-terminated copy). */
static void smtp_command(smtp_sess *s, char *line, size_t n)
{
    /* A NUL octet has no place in a command (RFC 5321 2.3.8: ASCII text); cutting
     * the line there would act on something other than what was sent. */
    if (memchr(line, '\0', n)) {
        sts_debug(s->srv->log, "mx %s#%u %s (a line with a NUL octet)", s->srv->host, s->id,
                  s->tls ? "<~~" : "<--");
        smtp_reply(s, 500, "5.5.2 Error: NUL octet in command");
        sts_observer_smtp_command(s->srv->obs, s->obs, "?", s->tls, s->last_reply);
        return;
    }
    sts_debug(s->srv->log, "mx %s#%u %s %s", s->srv->host, s->id, s->tls ? "<~~" : "<--", line);
    /* The verb, for the record: upper case, anything but letters and digits shown as
     * '?', capped (no verb we know is longer). */
    char verb[16];
    size_t vl = 0;
    while (vl < n && vl + 1 < sizeof(verb) && line[vl] != ' ') {
        unsigned char ch = (unsigned char)line[vl];
        verb[vl++] = isalnum(ch) ? (char)toupper(ch) : '?';
    }
    verb[vl] = '\0';
    const char *args = line + strcspn(line, " ");
    while (*args == ' ')
        args++;
    const smtp_cmd *cmd = NULL;
    for (size_t i = 0; i < sizeof(smtp_cmds) / sizeof(smtp_cmds[0]) && !cmd; i++)
        if (!strcmp(verb, smtp_cmds[i].verb))
            cmd = &smtp_cmds[i];
    int tls = s->tls;
    int stage = smtp_stage_of(verb);
    const char *script = stage >= 0 ? s->cf->replies[stage] : NULL;
    int scode = script ? sts_smtp_reply_code(script) : 0;
    if (n > SMTP_MAX_CMDLINE - 2) {
        smtp_reply(s, 500, "5.5.2 Error: line too long");
    } else if (!cmd) {
        smtp_reply(s, 500, "5.5.2 Error: command not recognized");
    } else if (s->rejected && stage != STS_SCN_STAGE_QUIT) {
        /* RFC 5321 3.1: after a 554 greeting the server answers 503 until QUIT. */
        smtp_reply(s, 503, "5.5.1 Error: no SMTP service here");
    } else if (stage >= 0 && s->cf->disconnect && s->cf->disconnect_stage == stage) {
        sts_observer_smtp_command(s->srv->obs, s->obs, verb, tls, 0);
        smtp_disconnect(s, stage);
        return;
    } else if (s->cf->require_tls && !s->tls && smtp_needs_tls(verb)) {
        /* Postfix with smtpd_tls_security_level = encrypt (RFC 3207 4). */
        smtp_reply(s, 530, "5.7.0 Must issue a STARTTLS command first");
    } else if (cmd->args == 1 && !*args) {
        smtp_reply(s, 501, "5.5.4 Syntax: %s requires an argument", cmd->verb);
    } else if (cmd->args == 0 && *args) {
        smtp_reply(s, 501, "5.5.4 Syntax: %s takes no argument", cmd->verb);
    } else if (script && scode >= 400) {
        /* A scripted refusal: the command is not carried out. */
        s->override = script;
        smtp_reply(s, scode, "scripted");
        if (scode == 421 || stage == STS_SCN_STAGE_QUIT)
            smtp_close_after_reply(s); /* RFC 5321 3.8: 421 closes the channel */
    } else if (cmd->check(s, args) == 0) {
        s->override = script; /* a scripted positive reply replaces the normal one */
        cmd->proceed(s, args);
        s->override = NULL;
    }
    sts_observer_smtp_command(s->srv->obs, s->obs, vl ? verb : "?", tls, s->last_reply);
}

static void smtp_feed(smtp_sess *s);

static void smtp_wait_cb(void *arg)
{
    smtp_sess *s = arg;
    s->wait = NULL;
    s->waited = 1;
    smtp_feed(s);
}

/* A scripted delay before acting on stage: returns 1 when it started (input waits
 * until it ends), 0 when the session may go on now. */
static int smtp_stage_wait(smtp_sess *s, int stage)
{
    if (s->waited) {
        s->waited = 0;
        return 0;
    }
    double d = s->cf->delay[stage];
    if (!(d > 0))
        return 0;
    sts_debug(s->srv->log, "mx %s#%u waiting %.3fs before %s", s->srv->host, s->id, d,
              sts_scn_stage_name(stage));
    s->wait = sts_delay_start(sts_stream_loop(s->st), d, smtp_wait_cb, s);
    return s->wait != NULL;
}

/* The message is complete: record it and answer (RFC 5321 4.1.1.4). */
static void smtp_mailbox(smtp_sess *s, const char *sha256_hex);

static void smtp_message_done(smtp_sess *s)
{
    const char *script = s->cf->replies[STS_SCN_STAGE_DOT];
    if (s->cf->disconnect && s->cf->disconnect_stage == STS_SCN_STAGE_DOT) {
        smtp_disconnect(s, STS_SCN_STAGE_DOT);
        return;
    }
    if (script && sts_smtp_reply_code(script) >= 400) {
        /* A scripted refusal of the message: it is not received. */
        sts_info(s->srv->log, "mx %s#%u refusing the message (scripted)", s->srv->host, s->id);
        s->override = script;
        smtp_reply(s, 550, "scripted");
        if (s->last_reply == 421)
            smtp_close_after_reply(s);
        else
            smtp_set_state(s, SMTP_HELO);
        smtp_reset_transaction(s);
        return;
    }
    s->override = script;
    if (s->msg_too_big) {
        smtp_reply(s, 552, "5.3.4 Error: message too big");
    } else {
        unsigned char md[32];
        unsigned int mdlen = 0;
        char hex[65];
        EVP_Digest(s->msg.data ? s->msg.data : "", s->msg.len, md, &mdlen, EVP_sha256(), NULL);
        for (unsigned i = 0; i < 32; i++)
            snprintf(hex + 2 * i, 3, "%02x", md[i]);
        s->nmsg++;
        sts_observer_smtp_message(s->srv->obs, s->obs, s->tls, s->msg.len, hex, s->from,
                                  (const char *const *)s->rcpts, s->nrcpts);
        smtp_mailbox(s, hex);
        sts_info(s->srv->log, "mx %s#%u received a message: %zu octets from <%s> to %zu rcpt(s)%s",
                 s->srv->host, s->id, s->msg.len, s->from, s->nrcpts,
                 s->tls ? " over TLS" : " IN PLAINTEXT");
        smtp_reply(s, 250, "2.0.0 Ok: queued as W%04X%02X%02X", s->srv->nsess & 0xFFFF,
                   s->id & 0xFF, s->nmsg & 0xFF);
    }
    s->override = NULL;
    smtp_reset_transaction(s);
    smtp_set_state(s, SMTP_HELO);
}

/* The world's TLSRPT mailbox (RFC 8460 5.3): a message to the mailto address of the
 * served `_smtp._tls` record is judged as a report (fakedns/rptrecv.h) and recorded,
 * with the session's facts, in the observer's tlsrpt_reports. */
static void smtp_mailbox(smtp_sess *s, const char *sha256_hex)
{
    const char *box = s->cf->tlsrpt_rcpt;
    size_t i = 0;
    while (box && i < s->nrcpts && strcasecmp(s->rcpts[i], box))
        i++;
    if (!box || i == s->nrcpts)
        return;
    json_t *rec = sts_rptrecv_mail(s->msg.data ? s->msg.data : "", s->msg.len, s->served->zone);
    if (rec) {
        json_object_set_new(rec, "host", json_string(s->srv->host));
        json_object_set_new(rec, "rcpt", json_string(s->rcpts[i]));
        json_object_set_new(rec, "from", json_string(s->from));
        json_object_set_new(rec, "tls", json_boolean(s->tls));
        json_object_set_new(rec, "accepted", json_true());
        json_object_set_new(rec, "sha256", json_string(sha256_hex));
    }
    sts_info(s->srv->log, "mx %s#%u: the message to <%s> is a TLS report: %s, dkim %s",
             s->srv->host, s->id, s->rcpts[i],
             rec && json_is_true(json_object_get(rec, "valid")) ? "valid" : "not valid",
             rec ? json_string_value(json_object_get(json_object_get(rec, "dkim"), "result"))
                 : "?");
    sts_observer_tlsrpt(s->srv->obs, rec);
}

/* DATA state: take message lines from the input. Returns 1 when the message ended
 * (the rest of the input is commands again), 0 when more input is needed. */
static int smtp_data(smtp_sess *s)
{
    while (s->in.len) {
        const char *d = s->in.data;
        size_t len = s->in.len;
        if (s->line_start) {
            /* RFC 5321 4.1.1.4: the message ends with CRLF "." CRLF. */
            if (len < 3 && !memcmp(d, ".\r\n", len))
                return 0;
            if (!memcmp(d, ".\r\n", 3)) {
                if (smtp_stage_wait(s, STS_SCN_STAGE_DOT))
                    return 0;
                sts_buf_consume(&s->in, 3);
                smtp_message_done(s);
                return 1;
            }
            if (d[0] == '.') { /* RFC 5321 4.5.2: dot-unstuffing, once per line */
                sts_buf_consume(&s->in, 1);
                s->line_start = 0;
                continue;
            }
        }
        const char *crlf = memmem(d, len, "\r\n", 2);
        size_t n;
        if (crlf) {
            n = (size_t)(crlf - d) + 2;
            s->line_start = 1;
        } else {
            n = d[len - 1] == '\r' ? len - 1 : len; /* keep a CR that may start CRLF */
            if (n == 0)
                return 0;
            s->line_start = 0;
        }
        if (!s->msg_too_big && sts_buf_append(&s->msg, d, n) != 0) {
            s->msg_too_big = 1;
            sts_buf_free(&s->msg);
        }
        sts_buf_consume(&s->in, n);
    }
    return 0;
}

/* Process what is buffered, command by command. */
static void smtp_feed(smtp_sess *s)
{
    while (s->in.len && !s->wait) {
        if (s->state == SMTP_DATA) {
            if (!smtp_data(s))
                return;
            continue;
        }
        if (s->state == SMTP_TLS || s->state == SMTP_QUIT || s->state == SMTP_ABORT) {
            sts_buf_reset(&s->in);
            return;
        }
        size_t n;
        size_t l = sts_buf_line(&s->in, &n);
        if (!l)
            return;
        /* The stage of the verb, to honour a scripted delay before acting on it. */
        char verb[16];
        size_t vl = 0;
        while (vl < n && vl + 1 < sizeof(verb) && s->in.data[vl] != ' ') {
            verb[vl] = (char)toupper((unsigned char)s->in.data[vl]);
            vl++;
        }
        verb[vl] = '\0';
        int stage = smtp_stage_of(verb);
        if (stage >= 0 && smtp_stage_wait(s, stage))
            return;
        s->waited = 0;
        char *line = malloc(n + 1);
        if (!line) {
            sts_stream_close(s->st);
            return;
        }
        memcpy(line, s->in.data, n);
        line[n] = '\0';
        sts_buf_consume(&s->in, l);
        sts_tcpsrv_progress(s->st); /* a complete command: not a slowloris */
        smtp_command(s, line, n);
        free(line);
    }
}

static void smtp_read(sts_stream *st, const char *data, size_t len)
{
    smtp_sess *s = (smtp_sess *)sts_tcpsrv_conn_of(st);
    if (s->state == SMTP_ABORT) {
        /* handshake: abort - the ClientHello is answered by closing the connection. */
        sts_info(s->srv->log, "mx %s#%u aborting the TLS handshake (scripted)", s->srv->host,
                 s->id);
        sts_observer_smtp_set(s->srv->obs, s->obs, "handshake_aborted", json_true());
        smtp_set_state(s, SMTP_QUIT);
        sts_stream_close(st);
        return;
    }
    if (s->state == SMTP_TLS || s->state == SMTP_QUIT)
        return;
    if (sts_buf_append(&s->in, data, len) != 0) {
        /* Only possible in command state (DATA drains the buffer as it goes): a line
         * without end longer than we keep. */
        sts_info(s->srv->log,
                 "mx %s#%u a command line of more than %d octets without its end: 500, "
                 "closing (SMTP_MAX_INPUT)",
                 s->srv->host, s->id, SMTP_MAX_INPUT);
        smtp_reply(s, 500, "5.5.2 Error: line too long");
        smtp_set_state(s, SMTP_QUIT);
        sts_stream_shutdown(st);
        return;
    }
    smtp_feed(s);
}

static void smtp_tls(sts_stream *st, int status)
{
    smtp_sess *s = (smtp_sess *)sts_tcpsrv_conn_of(st);
    const sts_tls_info *ti = sts_stream_tls_info(st);
    if (status != 0) {
        sts_info(s->srv->log, "mx %s#%u TLS handshake failed: %s", s->srv->host, s->id, ti->error);
        sts_observer_smtp_set(s->srv->obs, s->obs, "tls_error", json_string(ti->error));
        smtp_set_state(s, SMTP_QUIT);
        sts_stream_close(st);
        return;
    }
    s->tls = 1;
    sts_info(s->srv->log, "mx %s#%u TLS up: %s %s sni=%s", s->srv->host, s->id, ti->version,
             ti->cipher, ti->sni[0] ? ti->sni : "-");
    sts_observer_smtp_tls(s->srv->obs, s->obs, ti->sni, ti->version, ti->cipher);
    /* RFC 3207 4.2: forget everything learned before TLS; the client must EHLO again. */
    smtp_reset_transaction(s);
    s->esmtp = 0;
    smtp_set_state(s, SMTP_CONNECTED);
}

static void smtp_eof(sts_stream *st, int status)
{
    smtp_sess *s = (smtp_sess *)sts_tcpsrv_conn_of(st);
    if (s->state != SMTP_QUIT)
        sts_debug(s->srv->log, "mx %s#%u peer closed in state %s", s->srv->host, s->id,
                  smtp_state_name(s->state));
    if (s->state == SMTP_DATA)
        sts_observer_smtp_set(s->srv->obs, s->obs, "aborted_in_data", json_true());
    smtp_set_state(s, SMTP_QUIT);
    sts_stream_shutdown(st);
}

/* RFC 5321 4.3.1: the greeting (or the scenario's). */
static void smtp_greet(smtp_sess *s)
{
    const char *script = s->cf->replies[STS_SCN_STAGE_GREETING];
    int code = script ? sts_smtp_reply_code(script) : 220;
    smtp_set_state(s, SMTP_CONNECTED);
    s->override = script;
    smtp_reply(s, 220, "%s ESMTP ststest", s->srv->host);
    if (code == 421) {
        smtp_close_after_reply(s); /* RFC 5321 3.8 */
    } else if (code != 220) {
        /* RFC 5321 3.1: a 554 greeting; the client should send QUIT. */
        s->rejected = 1;
    }
}

static void smtp_greet_cb(void *arg)
{
    smtp_sess *s = arg;
    s->wait = NULL;
    smtp_greet(s);
    smtp_feed(s);
}

/* The SIZE limit of c (RFC 1870): its own, else "SIZE n" among its EHLO keywords
 * (the last one), else STS_SMTP_MAX_MESSAGE. */
static size_t smtp_max_message(const sts_mxsrv_conf *c)
{
    size_t max = c->max_message;
    for (size_t i = 0; !c->max_message && i < c->nehlo_keywords; i++) {
        unsigned long long n = 0;
        if (!strncasecmp(c->ehlo_keywords[i], "SIZE ", 5) &&
            (n = strtoull(c->ehlo_keywords[i] + 5, NULL, 10)) > 0)
            max = (size_t)n;
    }
    return max ? max : STS_SMTP_MAX_MESSAGE;
}

static sts_tcpsrv_conn *smtp_accept(sts_tcpsrv *t, sts_stream *st)
{
    sts_mxsrv *srv = sts_tcpsrv_arg(t);
    smtp_sess *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->srv = srv;
    s->st = st;
    s->id = ++srv->nsess;
    /* The session keeps what is served now until it closes (served.h). */
    s->served = sts_served_ref(*srv->served);
    s->cf = &s->served->hosts[srv->index].mx_conf;
    s->max_message = smtp_max_message(s->cf);
    sts_buf_init(&s->in, SMTP_MAX_INPUT);
    sts_buf_init(&s->msg, s->max_message);
    s->obs = sts_observer_smtp_begin(srv->obs, srv->host, srv->address, sts_stream_peer_addr(st));
    if (!s->obs) {
        sts_buf_free(&s->in);
        sts_buf_free(&s->msg);
        sts_served_unref(s->served);
        free(s);
        return NULL;
    }
    sts_info(srv->log, "mx %s#%u connection from %s to %s", srv->host, s->id,
             sts_stream_peer_addr(st), srv->address);
    if (s->cf->disconnect && s->cf->disconnect_stage == STS_SCN_STAGE_GREETING) {
        smtp_disconnect(s, STS_SCN_STAGE_GREETING); /* the close completes later */
    } else if (s->cf->delay[STS_SCN_STAGE_GREETING] > 0) {
        smtp_set_state(s, SMTP_GREETING);
        s->wait = sts_delay_start(sts_stream_loop(st), s->cf->delay[STS_SCN_STAGE_GREETING],
                                  smtp_greet_cb, s);
        if (!s->wait)
            smtp_greet(s);
    } else {
        smtp_greet(s);
    }
    return &s->conn;
}

static void smtp_close(sts_tcpsrv_conn *conn)
{
    smtp_sess *s = (smtp_sess *)conn;
    sts_debug(s->srv->log, "mx %s#%u closed", s->srv->host, s->id);
    sts_delay_cancel(s->wait);
    smtp_reset_transaction(s);
    sts_buf_free(&s->in);
    sts_buf_free(&s->msg);
    sts_served_unref(s->served);
    free(s);
}

static const sts_tcpsrv_ops smtp_ops = {
    .on_accept = smtp_accept,
    .on_read = smtp_read,
    .on_tls = smtp_tls,
    .on_eof = smtp_eof,
    .on_close = smtp_close,
};

static void mxsrv_free(void *arg)
{
    sts_mxsrv *s = arg;
    free(s->host);
    free(s->address);
    free(s);
}

int sts_mxsrv_start(uv_loop_t *loop, int fd, sts_served *const *served, size_t index,
                    sts_observer *obs, sts_log *log, sts_mxsrv **out)
{
    const sts_mxsrv_conf *conf = &(*served)->hosts[index].mx_conf;
    sts_mxsrv *s = calloc(1, sizeof(*s));
    if (!s || !(s->host = strdup(conf->host)) || !(s->address = strdup(conf->address))) {
        if (s)
            mxsrv_free(s);
        close(fd);
        return STS_ENOMEM;
    }
    s->served = served;
    s->index = index;
    s->obs = obs;
    s->log = log;
    char name[300];
    snprintf(name, sizeof(name), "mx %s", conf->host);
    int rc = sts_tcpsrv_start(loop, fd, &smtp_ops, s, name, log, &s->tcp);
    if (rc != 0)
        mxsrv_free(s);
    else
        *out = s;
    return rc;
}

void sts_mxsrv_stop(sts_mxsrv *s, void (*done)(void *arg), void *arg)
{
    sts_tcpsrv_stop_owner(s->tcp, mxsrv_free, done, arg);
}
