/*
 * httpsrv.h - the world's policy server: serves the scenario's MTA-STS policy at
 * /.well-known/mta-sts.txt (RFC 8461 3.2) over HTTPS, and the same answers over
 * plain HTTP on a second listener, so that a sender that wrongly fetches over HTTP
 * is seen doing it. Minimal HTTP/1.1 (RFC 9112) with persistent connections
 * (RFC 9112 9.3): a connection carries requests one after another (pipelined ones
 * are answered in order) until the client asks to close (`Connection: close`, or
 * HTTP/1.0 without `Connection: keep-alive`), an answer must close (a malformed
 * request, a request with content, a cut answer), STS_HTTP_KEEPALIVE_MAX requests
 * were answered, or it stays idle STS_HTTP_KEEPALIVE_IDLE seconds between
 * requests. With keep_alive off (the scenario's `policy: {keep_alive: false}`)
 * every answer carries "Connection: close" and the connection closes after it.
 * Every request is recorded in the observer.
 *
 * Functions return 0 or a negative STS_* code unless said otherwise.
 */
#ifndef STS_HTTPSRV_H
#define STS_HTTPSRV_H

#include <stddef.h>
#include <uv.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/tls.h"
#include "fakedns/observer.h"

/* The cap on a request head (request line + header fields). */
#define STS_HTTP_MAX_HEAD 16384

#define STS_HTTP_POLICY_PATH "/.well-known/mta-sts.txt"

/* Persistent connections: the most requests one connection carries (like nginx's
 * keepalive_requests), and the seconds it may stay idle between two requests. */
#define STS_HTTP_KEEPALIVE_MAX 100
#define STS_HTTP_KEEPALIVE_IDLE 5.0

/* One listener's part of what the world serves (fakedns/served.h): its strings and
 * ctx belong to the served state (or to the scenario and the world, which outlive
 * it). Each request is answered from the served state that was current when its
 * connection was accepted or, for a later request on a persistent connection, when
 * it arrived; a world step never changes an answer in flight. */
typedef struct sts_httpsrv_conf {
    const char *scheme;       /* "https" (ctx set) or "http" */
    SSL_CTX *ctx;             /* server context for https */
    int present;              /* a policy exists; else every path is 404 */
    int status;               /* status of the policy path */
    const char *content_type; /* of the policy path (NULL = text/plain) */
    const char *body;         /* the policy as served */
    size_t body_len;
    const char *name; /* the policy host's name, for the transcript */
    /* faults of the policy path's answer (zero = none) */
    const char *location;       /* a Location field (redirects) */
    const char *const *headers; /* extra fields: headers[2i] name, headers[2i+1] value */
    size_t nheaders;
    int chunked;  /* Transfer-Encoding: chunked (RFC 9112 7.1) */
    double delay; /* seconds before the response head */
    double drip;  /* seconds between octets of the body */
    int cut;      /* close after cut_after octets of the body */
    size_t cut_after;
    int refuse;          /* close every connection at once (no HTTPS here) */
    int handshake_abort; /* https only: accept, start no TLS, and close when
                            the first octets (the ClientHello) arrive */
    int keep_alive;      /* persistent connections (0: close after every answer) */
} sts_httpsrv_conf;

/* Encode body as HTTP/1.1 chunks of at most chunk octets, with the last chunk and
 * an empty trailer section (RFC 9112 7.1), appended to out. Returns 0 or ENOMEM. */
int sts_http_chunk(const char *body, size_t len, size_t chunk, sts_buf *out);

typedef struct sts_http_request {
    char method[16];
    char path[1024];
    char host[256]; /* the Host field value, "" if absent */
    int have_host;
    int minor;       /* HTTP/1.<minor> */
    int keep_alive;  /* the client lets the connection persist (RFC 9112 9.3) */
    int has_content; /* Content-Length other than 0, or Transfer-Encoding */
    size_t head_len; /* octets of the head, its empty last line included */
} sts_http_request;

/* Parse a request head from data (len octets received so far). Returns 0 when more
 * octets are needed, else the status to answer with: 200 for a well-formed request
 * (req filled; the request's head is the first req->head_len octets), or 400 (malformed), 414
 * (target too long), 431 (head over STS_HTTP_MAX_HEAD), 505 (not HTTP/1.x). */
int sts_http_parse_request(const char *data, size_t len, sts_http_request *req);

typedef struct sts_httpsrv sts_httpsrv;

struct sts_served;

/* Serve the world's served state, its https part (https set: TLS with its ctx) or
 * its http part, of policy host slot (0, or a survey world's domain index: see
 * sts_served_policy_conf in served.h), on the listening socket fd (owned by the
 * server from now on, also on failure). *served is read when a connection is
 * accepted: the connection holds a reference to that state until it closes
 * (served.h). */
int sts_httpsrv_start(uv_loop_t *loop, int fd, struct sts_served *const *served, int https,
                      size_t slot, sts_observer *obs, sts_log *log, sts_httpsrv **out);
/* Close the listener and every connection; done(arg) runs when all are closed. */
void sts_httpsrv_stop(sts_httpsrv *s, void (*done)(void *arg), void *arg);

#endif
