/*
 * httpsrv.h - the world's policy server: serves the scenario's MTA-STS policy at
 * /.well-known/mta-sts.txt (RFC 8461 3.2) over HTTPS, and the same answers over
 * plain HTTP on a second listener, so that a sender that wrongly fetches over HTTP
 * is seen doing it. Minimal HTTP/1.1 (RFC 9112): one request per connection,
 * answered with "Connection: close". Every request is recorded in the observer.
 *
 * Functions return 0 or a negative STS_* code unless said otherwise.
 */
#ifndef STS_HTTPSRV_H
#define STS_HTTPSRV_H

#include <stddef.h>
#include <uv.h>

#include "common/log.h"
#include "common/tls.h"
#include "fakedns/observer.h"

/* The cap on a request head (request line + header fields). */
#define STS_HTTP_MAX_HEAD 16384

#define STS_HTTP_POLICY_PATH "/.well-known/mta-sts.txt"

typedef struct sts_httpsrv_conf {
    const char *scheme;       /* "https" (ctx set) or "http" */
    SSL_CTX *ctx;             /* borrowed; must outlive the server */
    int present;              /* a policy exists; else every path is 404 */
    int status;               /* status of the policy path */
    const char *content_type; /* of the policy path */
    const char *body;         /* the policy as served (borrowed) */
    size_t body_len;
    const char *name; /* the policy host's name, for the transcript */
} sts_httpsrv_conf;

typedef struct sts_http_request {
    char method[16];
    char path[1024];
    char host[256]; /* the Host field value, "" if absent */
    int have_host;
    int minor; /* HTTP/1.<minor> */
} sts_http_request;

/* Parse a request head from data (len octets received so far). Returns 0 when more
 * octets are needed, else the status to answer with: 200 for a well-formed request
 * (req filled), or 400 (malformed), 414 (target too long), 431 (head over
 * STS_HTTP_MAX_HEAD), 505 (not HTTP/1.x). */
int sts_http_parse_request(const char *data, size_t len, sts_http_request *req);

typedef struct sts_httpsrv sts_httpsrv;

/* Serve conf (copied; its strings are borrowed) on the listening socket fd (owned
 * by the server from now on, also on failure). */
int sts_httpsrv_start(uv_loop_t *loop, int fd, const sts_httpsrv_conf *conf, sts_observer *obs,
                      sts_log *log, sts_httpsrv **out);
/* Close the listener and every connection; done(arg) runs when all are closed. */
void sts_httpsrv_stop(sts_httpsrv *s, void (*done)(void *arg), void *arg);

#endif
