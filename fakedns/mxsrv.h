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
#include "common/tls.h"
#include "fakedns/observer.h"

#define STS_SMTP_MAX_MESSAGE (10u * 1024u * 1024u) /* SIZE we advertise and enforce */
#define STS_SMTP_MAX_RCPTS 100                     /* RFC 5321 4.5.3.1.8 minimum */

typedef struct sts_mxsrv_conf {
    const char *host;    /* the MX host name (banner, observer); borrowed */
    const char *address; /* the address it listens on; borrowed */
    int starttls;        /* advertise and accept STARTTLS */
    SSL_CTX *ctx;        /* server context for STARTTLS (borrowed; NULL = none) */
    size_t max_message;  /* 0 = STS_SMTP_MAX_MESSAGE */
} sts_mxsrv_conf;

typedef struct sts_mxsrv sts_mxsrv;

/* Serve conf (copied; strings borrowed) on the listening socket fd (owned by the
 * server from now on, also on failure). */
int sts_mxsrv_start(uv_loop_t *loop, int fd, const sts_mxsrv_conf *conf, sts_observer *obs,
                    sts_log *log, sts_mxsrv **out);
/* Close the listener and every session; done(arg) runs when all are closed. */
void sts_mxsrv_stop(sts_mxsrv *s, void (*done)(void *arg), void *arg);

#endif
