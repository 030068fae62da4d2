/*
 * mxsrv.h - one scripted MX server of the world: an ESMTP server (RFC 5321) with
 * STARTTLS (RFC 3207) on one address and port.
 *
 * The session is a state machine; each command is split into a check (is it valid
 * here? if not, reply with the error) and a proceed (do it, reply), after
 * OpenSMTPD's smtp_session.c. Every session, command (with whether it came over TLS
 * and the reply code), TLS handshake and message (size and SHA-256, after
 * dot-unstuffing) is recorded in the observer.
 *
 * Functions return 0 or a negative STS_* code.
 */
#ifndef STS_MXSRV_H
#define STS_MXSRV_H

#include <stddef.h>
#include <uv.h>

#include "common/log.h"
#include "common/scenario.h"
#include "common/tls.h"
#include "fakedns/observer.h"

#define STS_SMTP_MAX_MESSAGE (10u * 1024u * 1024u) /* SIZE we advertise and enforce */
#define STS_SMTP_MAX_RCPTS 100                     /* RFC 5321 4.5.3.1.8 minimum */

/* One MX host's part of what the world serves (fakedns/served.h): its strings and
 * ctx belong to the served state (or to the scenario and the world, which outlive
 * it). Zero means "normal" for every script field. */
typedef struct sts_mxsrv_conf {
    const char *host;    /* the MX host name (banner, observer) */
    const char *address; /* the address it listens on */
    int starttls;        /* advertise and accept STARTTLS */
    int require_tls;     /* 530 5.7.0 to mail commands before TLS */
    SSL_CTX *ctx;        /* server context for STARTTLS (NULL = none) */
    size_t max_message;  /* 0 = STS_SMTP_MAX_MESSAGE, or the SIZE of ehlo_keywords */
    /* the script (common/scenario.h stages) */
    const char *replies[STS_SCN_NSTAGES]; /* CRLF-terminated reply lines; NULL = normal */
    double delay[STS_SCN_NSTAGES];        /* seconds before acting on a stage */
    int disconnect;                       /* close without a reply at disconnect_stage */
    int disconnect_stage;
    const char *inject_after_starttls; /* sent in the same write as the 220 */
    int handshake_abort;               /* close when the ClientHello arrives */
    const char *const *ehlo_keywords;  /* replaces the default keywords */
    size_t nehlo_keywords;
    int ehlo_keywords_set;
    const char *tlsrpt_rcpt; /* the world's TLSRPT mailbox address (NULL = none): a
                                message to it is judged as a report (rptrecv.h) */
} sts_mxsrv_conf;

/* The reply code of a scripted reply ("550 ..." -> 550; 0 if malformed). */
int sts_smtp_reply_code(const char *reply);

typedef struct sts_mxsrv sts_mxsrv;
struct sts_served;

/* Serve host entry `index` of the world's served state on the listening socket fd
 * (owned by the server from now on, also on failure). *served is read when a
 * session is accepted: the session holds a reference to that state until it
 * closes, so it finishes on the configuration it started with whatever the world
 * swaps in meanwhile. The entry's host and address at start name the server. */
int sts_mxsrv_start(uv_loop_t *loop, int fd, struct sts_served *const *served, size_t index,
                    sts_observer *obs, sts_log *log, sts_mxsrv **out);
/* Close the listener and every session; done(arg) runs when all are closed. */
void sts_mxsrv_stop(sts_mxsrv *s, void (*done)(void *arg), void *arg);

#endif
