/*
 * world.h - the fake world of one scenario: a DNS server (UDP+TCP), an HTTPS policy
 * server (and a plain-HTTP listener), scripted MX servers, and a throw-away CA, all
 * on one libuv loop, on loopback addresses of the world's own 127.x.y.0/24 block.
 *
 * The world records what any sender did to it (DNS queries, policy fetches, SMTP
 * sessions) in an observer log; see DESIGN.md for the JSON shapes of the "ready"
 * and "observed" events.
 */
#ifndef STS_WORLD_H
#define STS_WORLD_H

#include <jansson.h>
#include <time.h>
#include <uv.h>

#include "common/log.h"
#include "common/scenario.h"

typedef struct sts_world sts_world;

/* The world's ports when none is given: unprivileged ones, so that tests need no root. */
#define STS_WORLD_DNS_PORT 10053
#define STS_WORLD_SMTP_PORT 10025
#define STS_WORLD_HTTPS_PORT 10443
#define STS_WORLD_HTTP_PORT 10080

typedef struct sts_world_opts {
    const char *mode;   /* substituted for ${mode} in the scenario (NULL = enforce) */
    const char *block;  /* "127.x.y": the /24 to use; NULL = pick a free one */
    int dns_port;       /* 0 = STS_WORLD_DNS_PORT */
    int smtp_port;      /* 0 = STS_WORLD_SMTP_PORT */
    int https_port;     /* 0 = STS_WORLD_HTTPS_PORT */
    int http_port;      /* 0 = STS_WORLD_HTTP_PORT */
    const char *dir;    /* where ca.pem is written; NULL = a new temporary directory,
                           removed by sts_world_free() */
    time_t now;         /* the moment certificates are minted for; 0 = wall clock */
    sts_log *log;       /* transcript of the world's side (may be NULL) */
    size_t observe_max; /* DNS queries the observer keeps (later ones are counted as
                           "dns_dropped"); 0 = STS_OBSERVER_DNS_MAX_DEFAULT (100 000) */
    unsigned domains;   /* a survey world: the scenario served for d1.<domain> ...
                           dN.<domain> (world.c); 0 = for its domain, as written */
} sts_world_opts;

/* --standard-ports: DNS 53, SMTP 25, HTTPS 443 and HTTP 80 in opts, for software that
 * cannot be told a port (binding them needs root). */
void sts_world_standard_ports(sts_world_opts *opts);

/* Build the world and start every listener on loop. scn is borrowed: it must
 * outlive the world. Returns 0, or a negative STS_* code with a message in err
 * (nothing left running). */
int sts_world_start(uv_loop_t *loop, const sts_scenario *scn, const sts_world_opts *opts,
                    sts_world **out, char *err, size_t errlen);

/* Change the world to step `step` of scn (the same scenario the world was started
 * with; steps apply in order, each on top of the last): the clock moves to now
 * (0: it stays), the zone, DNS faults, policy and MX configurations the step names
 * replace the current ones, and certificates are minted again at now (every host's
 * when the clock moved, else those whose configuration changed). All of that is
 * built first, as a new served state (served.h); only when everything succeeded
 * does the world swap to it. Listeners stay up: an SMTP session or policy
 * connection in flight finishes on the state it started with, new ones get the new
 * one; DNS answers each query from the state current when it is answered. The
 * observer log spans steps. Call it on the world's loop thread. Returns 0, or a
 * negative STS_* code with a message in err (nothing changed: the world serves
 * what it served before). */
int sts_world_apply_step(sts_world *w, const sts_scenario *scn, size_t step, time_t now, char *err,
                         size_t errlen);

struct sts_served;
/* What the world serves now (fakedns/served.h), borrowed: valid until the next step
 * is applied or the world is freed; sts_served_ref() keeps it longer. */
struct sts_served *sts_world_served(const sts_world *w);

/* The "ready" event (new reference): event, domain, dns, ca_file, ports, hosts; a
 * survey world's lists the hosts outside the domain and those of d1, and "domains":
 * {"count": N, "first": "d1.<domain>", "last": "dN.<domain>", "stride": S}, host
 * X.dK.<domain> being at X.d1.<domain>'s address + (K - 1) * S (last octet). */
json_t *sts_world_ready(const sts_world *w);
/* The "observed" event so far (new reference): dns, policy_fetches, smtp_sessions. */
json_t *sts_world_observed(const sts_world *w);

/* Close every listener and session; done(arg) runs once all handles are closed. */
void sts_world_stop(sts_world *w, void (*done)(void *arg), void *arg);
/* Free a stopped world (removes its temporary directory). */
void sts_world_free(sts_world *w);

#endif
