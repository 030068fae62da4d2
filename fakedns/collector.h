/*
 * collector.h - the world's HTTPS report collector (RFC 8460 3, 5.2): the endpoint
 * of an `https:` rua of the `_smtp._tls` record the world publishes. It takes a POST
 * on its path, reads the body (Content-Length, at most STS_COLLECTOR_MAX_BODY octets;
 * `Expect: 100-continue` is answered), judges the report (fakedns/rptrecv.h) into the
 * observer's "tlsrpt_reports" with the request's path, status, SNI and TLS version,
 * and answers. One request per connection: every answer closes it.
 *
 * Scripted faults (common/scenario.h sts_scn_collector_fault): status-500 and
 * status-503 answer that status (the report is recorded, "accepted": false), refused
 * closes every connection at once (nothing is recorded as a report), slow answers 200
 * after STS_SCN_COLLECTOR_SLOW_SECONDS (recorded with "accepted": false: the sender's
 * timeout is shorter, it gave up before the answer).
 *
 * Functions return 0 or a negative STS_* code.
 */
#ifndef STS_COLLECTOR_H
#define STS_COLLECTOR_H

#include <stddef.h>
#include <uv.h>

#include "common/log.h"
#include "common/tls.h"
#include "fakedns/observer.h"

/* The largest report body taken; a larger one is answered 413. */
#define STS_COLLECTOR_MAX_BODY (1024 * 1024)

/* One collector host's part of what the world serves (fakedns/served.h). */
typedef struct sts_collector_conf {
    int present;      /* the served tlsrpt section names this host; else every path 404 */
    const char *name; /* the host name (transcript, records) */
    const char *path; /* where reports are POSTed */
    int fault;        /* sts_scn_collector_fault */
    SSL_CTX *ctx;     /* its certificate */
} sts_collector_conf;

typedef struct sts_collector sts_collector;
struct sts_served;

/* Serve host entry `index` of the world's served state on the listening socket fd
 * (owned by the server from now on, also on failure). A connection keeps the state
 * current when it was accepted (served.h). */
int sts_collector_start(uv_loop_t *loop, int fd, struct sts_served *const *served, size_t index,
                        sts_observer *obs, sts_log *log, sts_collector **out);
/* Close the listener and every connection; done(arg) runs when all are closed. */
void sts_collector_stop(sts_collector *c, void (*done)(void *arg), void *arg);

#endif
