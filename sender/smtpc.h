/*
 * smtpc.h - the SMTP client of the sender (RFC 5321, STARTTLS RFC 3207), one session
 * to one MX address, as a state machine in the OpenSMTPD mta_session style:
 * smtpc_enter() says what to send on entering a state, smtpc_response() what a reply
 * means in the current state, smtpc_io() is the one entry point for stream events.
 *
 *   CONNECT -> BANNER -> EHLO (5xx: HELO) -> STARTTLS -> TLS -> EHLO2 -> MAIL -> RCPT...
 *           -> DATA -> BODY -> QUIT -> DONE
 *
 * The session sees only the sts_stream interface (common/tls.h).
 *
 * PIPELINING (RFC 2920): when the last EHLO reply (the one after TLS, or the only one
 * when the session stays in plaintext) offers it, MAIL, every RCPT and DATA go out as
 * one group in one write and their replies are matched in order; every reply of the
 * group is read (RFC 2920 3.1: "MUST check ALL statuses"), and a 354 to DATA after
 * every RCPT failed is answered with a lone "." . EHLO, STARTTLS and QUIT are never
 * pipelined, so nothing crosses the STARTTLS boundary and the injection check stays
 * exact.
 *
 * SIZE (RFC 1870): when the last EHLO reply offers SIZE, MAIL carries SIZE=<octets>;
 * a message larger than a non-zero announced limit is not sent at all: the session
 * ends with PERMFAIL at MAIL (RFC 1870 6: 552 / 5.3.4 "message size exceeds fixed
 * maximum message size"), before MAIL is sent.
 *
 * TLS policy is the caller's (tls_required, from decide.h): with TLS required nothing
 * after EHLO other than STARTTLS and QUIT is sent without a verified TLS session (the
 * security invariant of DESIGN.md; smtpc_send() checks it before every command).
 *
 * Life cycle: sts_smtpc_start() returns a running session; done_cb runs exactly once,
 * never inside sts_smtpc_start(), from the last close callback when every handle is
 * closed. The caller reads sts_smtpc_get_result() there and may sts_smtpc_free() the
 * session inside done_cb (it is the session's last act) or later.
 *
 * Functions return 0 or a negative code from common/err.h. What happened to the
 * delivery is data in sts_smtpc_result, not an error code.
 */
#ifndef STS_SMTPC_H
#define STS_SMTPC_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>
#include <uv.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/tls.h"
#include "sender/decide.h"

typedef enum {
    STS_SMTPC_CONNECT = 0,
    STS_SMTPC_BANNER,
    STS_SMTPC_EHLO,
    STS_SMTPC_HELO,
    STS_SMTPC_STARTTLS,
    STS_SMTPC_TLS,
    STS_SMTPC_EHLO2,
    STS_SMTPC_MAIL,
    STS_SMTPC_RCPT,
    STS_SMTPC_DATA,
    STS_SMTPC_BODY,
    STS_SMTPC_QUIT,
    STS_SMTPC_DONE,
} sts_smtpc_state;

/* "CONNECT", "BANNER", ... for logs and JSON ("stage"). */
const char *sts_smtpc_state_name(sts_smtpc_state st);

/* Per-stage timeouts in milliseconds (RFC 5321 4.5.3.2). */
typedef struct sts_smtpc_timeouts {
    uint64_t connect;  /* TCP connect: not in the RFC; the greeting's 5 minutes */
    uint64_t greeting; /* 4.5.3.2.1 initial 220: 5 min */
    uint64_t command;  /* EHLO/HELO/STARTTLS/TLS handshake/QUIT: 5 min */
    uint64_t mail;     /* 4.5.3.2.2 MAIL: 5 min */
    uint64_t rcpt;     /* 4.5.3.2.3 RCPT: 5 min */
    uint64_t data;     /* 4.5.3.2.4 DATA initiation: 2 min */
    uint64_t block;    /* 4.5.3.2.5 data block: 3 min */
    uint64_t eod;      /* 4.5.3.2.6 DATA termination: 10 min */
} sts_smtpc_timeouts;

/* RFC 5321 4.5.3.2 defaults, or every stage = seconds when seconds > 0 (--timeout). */
void sts_smtpc_timeouts_init(sts_smtpc_timeouts *t, double seconds);

typedef struct sts_smtpc_params {
    const struct sockaddr *addr; /* MX address with the SMTP port (copied) */
    const char *host;            /* MX host name: SNI and certificate name (RFC 8461 4.2) */
    const char *helo;            /* our name for EHLO/HELO; "" = an address literal of the
                                  * connection's local end ("[127.0.0.1]") */
    const char *from;            /* envelope sender ("" = null reverse-path; NULL =
                                  * ststest@<the EHLO name>) */
    const char *const *rcpts;    /* envelope recipients (>= 1 unless check_only) */
    size_t nrcpts;
    const char *msg;             /* the message as given (normalised here); borrowed */
    size_t msglen;
    SSL_CTX *ssl_ctx;            /* client context (trust anchors, time) */
    int tls_required;            /* enforce or --require-tls: fail closed */
    int check_only;              /* stop after the (second) EHLO, then QUIT */
    int no_starttls;             /* opportunistic retry after a failed handshake */
    sts_smtpc_timeouts timeouts;
    sts_log *log;                /* transcript (may be NULL) */
} sts_smtpc_params;

#define STS_SMTPC_TEXT_MAX 512

typedef struct sts_smtpc_result {
    sts_action action;          /* DELIVERED (check: would be), REFUSED, TEMPFAIL, PERMFAIL */
    sts_result_type failure;    /* RFC 8460 result type, or STS_RESULT_NONE */
    sts_smtpc_state stage;      /* state in which the action was decided */
    int error;                  /* local error (STS_ETIMEDOUT, STS_EPROTO, ...) or 0 */
    char detail[512];           /* one line for people */
    int connected;
    char local_addr[INET6_ADDRSTRLEN]; /* our end of the connection ("" = not connected) */
    /* The host name the MX gave in its first 2xx EHLO/HELO reply: the first word of
     * its first line (RFC 5321 4.1.1.1: "250" SP Domain ...); TLSRPT's
     * receiving-mx-helo (RFC 8460 4.4). "" when none came or the word is not
     * printable ASCII. */
    char ehlo_host[256];
    int starttls_offered;
    int starttls_code;          /* reply to STARTTLS, 0 = not sent */
    int tls_attempted;          /* a handshake was started */
    int tls_up;                 /* handshake completed */
    sts_tls_info tls;           /* valid when tls_attempted */
    int helo_fallback;          /* EHLO got 5xx and HELO was used */
    int retry_plain;            /* decide: reconnect once without STARTTLS */
    int injection;              /* bytes followed the STARTTLS 220 (aborted) */
    size_t rcpt_accepted;
    size_t body_bytes;          /* bytes of the encoded message sent */
    int code;                   /* last reply: code, enhanced code, text */
    char enhanced[16];
    char text[STS_SMTPC_TEXT_MAX];
    int pipelined;              /* MAIL/RCPT/DATA went out as one RFC 2920 group */
    int size_offered;           /* the last EHLO offered SIZE (RFC 1870) */
    unsigned long long size_limit; /* its limit; 0 = no fixed maximum */
    size_t message_size;        /* RFC 1870 message size (CRLF lines, no dot-stuffing) */
    int aborted;                /* sts_smtpc_abort() ended the session */
    double stage_ms[STS_SMTPC_DONE]; /* milliseconds spent in each state (uv_hrtime) */
    /* Commands sent after EHLO without a verified TLS session while TLS was required.
     * Always 0: smtpc_send() refuses such a command (kept to make tests exact). */
    int invariant_violations;
} sts_smtpc_result;

typedef struct sts_smtpc sts_smtpc;
typedef void (*sts_smtpc_done_cb)(sts_smtpc *s, void *arg);

/* Start a session on loop. params is copied, but the strings and arrays it points to
 * (host, helo, from, rcpts, msg) are borrowed and must stay valid until done_cb.
 * Returns 0 and *out (done_cb follows, even when the connect fails at once), or
 * STS_EINVAL / STS_ENOMEM (nothing started, done_cb never called). */
int sts_smtpc_start(uv_loop_t *loop, const sts_smtpc_params *params, sts_smtpc_done_cb done_cb,
                    void *arg, sts_smtpc **out);
const sts_smtpc_result *sts_smtpc_get_result(const sts_smtpc *s);
/* End a running session now (the run's time limit): the verdict becomes TEMPFAIL with
 * detail `why` (unless one was already taken) and the session closes; done_cb follows
 * from the close callback as usual, never inside this call. Nothing when the session
 * is already closing. */
void sts_smtpc_abort(sts_smtpc *s, const char *why);
/* Free a finished session (after or inside done_cb). */
void sts_smtpc_free(sts_smtpc *s);

/* RFC 5321 4.5.2 / 2.3.8: encode a message for DATA: every line ending (LF, CR or CRLF)
 * becomes CRLF, a line starting with "." gets another ".", the last line gets a CRLF,
 * then ".\r\n". out is appended to. 0, STS_ENOMEM or STS_ETOOBIG (out's cap). */
int sts_smtpc_encode_body(const char *msg, size_t len, sts_buf *out);

/* RFC 1870 the message size a SIZE= parameter declares: the octets of the message
 * with every line ending made CRLF, before dot-stuffing and without the final
 * ".\r\n" (what sts_smtpc_encode_body sends, less those). */
size_t sts_smtpc_message_size(const char *msg, size_t len);

#endif
