/*
 * served.h - what the world serves, as one value: the clock, the zone with its DNS
 * faults, the policy with the policy server's knobs, and every host's MX script
 * and TLS server context (its certificate).
 *
 * A world step never changes a served state in place. It builds a new one
 * completely (zone lines parsed, policy body made, certificates minted, SSL_CTXs
 * made), and only when all of that succeeded it swaps the world's one pointer to
 * it (world.c), as OpenSMTPD's configuration reload does. A step that fails frees
 * what it built and the world serves what it served before.
 *
 * Lifetime: a served state is reference-counted. The world holds one reference to
 * the current state. Each MX session and each policy connection (HTTPS and plain
 * HTTP) takes a reference to the state that is current when it is accepted and
 * drops it when it closes: a connection that began before a step finishes on the
 * old state, and the old state is freed when the last connection using it closes.
 * DNS takes no reference: every query, over UDP or TCP, is answered from the state
 * current when it is answered (a DNS TCP connection keeps no state of its own
 * between queries; an answer a fault delays was made when the query came).
 *
 * The observer log is not part of a served state: it spans steps (world.c).
 * Everything here runs on the world's loop thread, so the count is a plain one.
 */
#ifndef STS_SERVED_H
#define STS_SERVED_H

#include <stddef.h>
#include <time.h>

#include "common/log.h"
#include "common/scenario.h"
#include "common/tls.h"
#include "fakedns/collector.h"
#include "fakedns/dnszone.h"
#include "fakedns/httpsrv.h"
#include "fakedns/mxsrv.h"

/* One host of the world (the world's hosts, in the world's order). */
typedef struct sts_served_host {
    const sts_scn_mx *mx;        /* the scenario's settings (borrowed); NULL = defaults */
    SSL_CTX *ctx;                /* a reference of this state's: the host's certificate, or NULL */
    sts_mxsrv_conf mx_conf;      /* MX hosts with a listener: what a session is served */
    sts_collector_conf col_conf; /* TLSRPT collector hosts: what a request is served */
} sts_served_host;

/* Filled by the world while it builds the state, read-only once it is served.
 * Strings not owned here are the scenario's or the world's, which outlive every
 * served state. */
/* The policy host of one more domain of a survey world (`world --domains N`): its
 * policy and its two listeners, as policy_body/https/http of sts_served for the first. */
typedef struct sts_served_policy {
    char *body; /* owned */
    size_t len;
    sts_httpsrv_conf https, http;
} sts_served_policy;

typedef struct sts_served {
    unsigned refs;
    unsigned gen; /* 0 for the world's start, then one more per step applied */
    sts_log *log; /* the world's transcript (may be NULL) */
    time_t now;   /* the clock: certificates were minted at it */
    /* What it was built from (the scenario's, borrowed): the next step builds on it. */
    const char *dns;
    int dns_line;
    const sts_scn_dns_fault *faults;
    size_t nfaults;
    const sts_scn_policy *policy;
    const sts_scn_tlsrpt *tlsrpt; /* the TLSRPT record and endpoints (present or not) */
    /* What is served. */
    sts_dns_zone *zone; /* owned */
    char *policy_ctype; /* owned */
    char *policy_body;  /* owned */
    size_t policy_len;
    sts_httpsrv_conf https, http; /* the policy host's two listeners */
    sts_served_policy *more;      /* a survey world's domains 2..N (nmore, owned) */
    size_t nmore;
    sts_served_host *hosts; /* nhosts entries, owned */
    size_t nhosts;
} sts_served;

/* A new, empty state with nhosts zeroed host entries and one reference (the
 * caller's). NULL on ENOMEM. */
sts_served *sts_served_new(size_t nhosts, sts_log *log);
/* The conf of policy host slot (0: the first or only one; k: survey domain k + 1) for
 * its https (https set) or http listener; NULL when there is no such slot. */
const sts_httpsrv_conf *sts_served_policy_conf(const sts_served *s, size_t slot, int https);
/* One more reference to s (returned). */
sts_served *sts_served_ref(sts_served *s);
/* Drop one reference; the last one frees s and what it owns. NULL is a no-op. */
void sts_served_unref(sts_served *s);

#endif
