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

/* The server's configuration. The server keeps its own copy (strings duplicated,
 * ctx referenced), and each session keeps the copy that was current when it was
 * accepted: sts_mxsrv_set_conf() changes what new sessions get, never a session in
 * flight. Zero means "normal" for every script field. */
typedef struct sts_mxsrv_conf {
    const char *host;    /* the MX host name (banner, observer) */
    const char *address; /* the address it listens on */
    int starttls;        /* advertise and accept STARTTLS */
    SSL_CTX *ctx;        /* server context for STARTTLS (NULL = none) */
    size_t max_message;  /* 0 = STS_SMTP_MAX_MESSAGE, or the SIZE of ehlo_keywords */
    /* the script (common/scenario.h stages) */
    const char *replies[STS_SCN_NSTAGES]; /* CRLF-terminated reply lines; NULL = normal */
    double delay[STS_SCN_NSTAGES];        /* seconds before acting on a stage */
    int disconnect;                       /* close without a reply at disconnect_stage */
    int disconnect_stage;
    const char *inject_after_starttls;    /* sent in the same write as the 220 */
    int handshake_abort;                  /* close when the ClientHello arrives */
    const char *const *ehlo_keywords;     /* replaces the default keywords */
    size_t nehlo_keywords;
    int ehlo_keywords_set;
} sts_mxsrv_conf;

/* The reply code of a scripted reply ("550 ..." -> 550; 0 if malformed). */
int sts_smtp_reply_code(const char *reply);

typedef struct sts_mxsrv sts_mxsrv;

/* Serve conf (copied; strings borrowed) on the listening socket fd (owned by the
 * server from now on, also on failure). */
int sts_mxsrv_start(uv_loop_t *loop, int fd, const sts_mxsrv_conf *conf, sts_observer *obs,
                    sts_log *log, sts_mxsrv **out);
/* New sessions get conf from now on (copied as for start); sessions in flight
 * finish on the configuration they started with. host and address are not
 * changed. Returns 0 or STS_ENOMEM (the old configuration stays). */
int sts_mxsrv_set_conf(sts_mxsrv *s, const sts_mxsrv_conf *conf);
/* Close the listener and every session; done(arg) runs when all are closed. */
void sts_mxsrv_stop(sts_mxsrv *s, void (*done)(void *arg), void *arg);

#endif
