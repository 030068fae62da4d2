/*
 * discover.h - MTA-STS policy discovery for one policy domain (RFC 8461 3, 5.1): the TXT
 * lookup of _mta-sts.<domain> (3.1), the policy cache's decision (cache.h), the address
 * lookup of the policy host mta-sts.<domain>, the HTTPS fetch (fetch.h, 3.3), the parse
 * (policy.h), the cache update (sts_cache_put / sts_cache_note_failure), and the re-check
 * of RFC 8461 5.1. Every step is told in the transcript.
 *
 * It knows nothing of MX hosts, SMTP or the delivery verdict: its outcome is data
 * (sts_discovery): the policy to apply or none, where it came from (a policy source:
 * fetched, cache, none), the cache decision, the RFC 8460 result types of what failed
 * and a sentence for people.
 *
 * Use, per recipient domain:
 *
 *     sts_discover_new(&params, &d);
 *     sts_discover_start(d, found_cb, arg);       found_cb(res, arg) once: res->policy
 *     ... deliver under res->policy ...
 *     if (every MX was refused under an enforce policy && sts_discover_may_recheck(d))
 *         sts_discover_recheck(d, rechecked_cb, arg);   once: res->recheck says what
 *     sts_discover_free(d);                       never inside its own callback
 *
 * Callbacks: start and recheck call their callback exactly once when they return 0,
 * never inside the call (the libuv rule): from the resolver's or the fetcher's
 * callback, or, when sts_discover_start cannot even start the TXT query (out of
 * memory, or the resolver is being freed), from a zero-delay timer of d's own, which
 * goes on as after a failed lookup (RFC 8461 3.1: a cached policy may still apply).
 *
 * Handles: d embeds that timer, so sts_discover_free() closes it and d's memory is
 * released in its close callback: run the loop once more before uv_loop_close().
 * Freeing d with the timer pending drops the step: no callback follows.
 *
 * Cancelling (the sender's run deadline): sts_discover_cancel() marks the discovery;
 * the pending lookup or fetch (or the zero-delay timer), when it calls back (the caller
 * frees the resolver and fetcher right after, so a lookup or fetch does so at once),
 * ends the discovery with res->cancelled set and nothing more logged, cached or
 * fetched.
 *
 * Functions return 0 or a negative code from common/err.h, as documented per function.
 */
#ifndef STS_DISCOVER_H
#define STS_DISCOVER_H

#include <stddef.h>
#include <time.h>
#include <uv.h>

#include "common/log.h"
#include "sender/cache.h"
#include "sender/fetch.h"
#include "sender/policy.h"
#include "sender/resolver.h"
#include "sender/ststxt.h"

/* RFC 8460 result types one step (start or re-check) can report. */
#define STS_DISCOVER_MAX_FAILURES 4

typedef struct sts_discover sts_discover;

typedef struct sts_discover_params {
    uv_loop_t *loop;        /* the loop of resolver and fetcher (d's own timer) */
    const char *domain;     /* the policy domain: lower case, no trailing dot (copied) */
    sts_resolver *resolver; /* TXT and the policy host's addresses */
    sts_fetcher *fetcher;   /* the HTTPS fetch */
    sts_cache *cache;       /* NULL: no cache (nothing cached, nothing stored) */
    int https_port;         /* of the policy host; 0 = 443 */
    double fetch_timeout;   /* seconds for a whole fetch (fetch.h; <= 0: 60 s) */
    time_t now;             /* the cache's clock; 0 = time(NULL) at each use */
    sts_log *log;           /* the transcript (may be NULL) */
} sts_discover_params;

/* What the RFC 8461 5.1 re-check found. */
typedef enum {
    STS_RECHECK_NONE = 0,     /* no re-check finished */
    STS_RECHECK_ID_UNCHANGED, /* the TXT id is the applied policy's: that policy stands */
    STS_RECHECK_NO_TXT,       /* no usable TXT record: the cached policy stands */
    STS_RECHECK_FAILED,       /* a new id, but out of memory: the policy stands */
    STS_RECHECK_NOT_FETCHED,  /* a new id, but no new policy could be fetched */
    STS_RECHECK_SAME,         /* a new policy was fetched and says the same */
    STS_RECHECK_CHANGED,      /* a new policy was fetched that differs: it now applies */
} sts_recheck_verdict;

/* The outcome of discovery, kept up to date as it goes (a cancelled discovery shows
 * what was learnt until then). Valid until sts_discover_free(). */
typedef struct sts_discovery {
    /* RFC 8461 3.1: the last TXT lookup */
    int have_txt;                    /* exactly one valid STS record was found */
    char txt_id[STS_TXT_ID_MAX + 1]; /* its id; "" when !have_txt */
    sts_cache_txt txt_kind;          /* what the last TXT lookup said (cache.h) */
    char txt_why[300];               /* why it is not FOUND, for people; may be "" */
    /* RFC 8461 3.3: the cache's decision after the last TXT lookup (cache.h) */
    int decided; /* 0 until a decision was taken */
    sts_cache_decision decision;
    /* the policy to apply */
    int have_policy;
    sts_policy policy;
    sts_policy_source source;           /* fetched | cache | none (JSON policy.source) */
    char policy_id[STS_TXT_ID_MAX + 1]; /* the TXT id it was fetched for */
    time_t fetched_at, expires_at;      /* when it was fetched, fetched_at + max_age */
    /* what the last step (start or re-check) adds to the recipient's result */
    sts_result_type failures[STS_DISCOVER_MAX_FAILURES]; /* RFC 8460 result types */
    size_t nfailures;
    char detail[512]; /* why a fetch failed, for people; "" when nothing to say */
    int cancelled;    /* ended by sts_discover_cancel() */
    /* RFC 8461 5.1 */
    int rechecked;                       /* sts_discover_recheck() was called */
    sts_recheck_verdict recheck;         /* what it found */
    int recheck_changed;                 /* the TXT id had changed */
    int recheck_fetched;                 /* a policy was fetched for the new id */
    char recheck_id[STS_TXT_ID_MAX + 1]; /* the new id when changed, else "" */
} sts_discovery;

typedef void (*sts_discover_cb)(const sts_discovery *res, void *arg);

/* A discovery for p->domain (nothing runs yet). Returns 0 and *out, STS_EINVAL (no
 * loop, domain, resolver or fetcher, or a domain over 255 characters) or STS_ENOMEM. */
int sts_discover_new(const sts_discover_params *p, sts_discover **out);

/* Release d, its policies and cache entry; its timer closes and the memory goes in the
 * close callback (see "Handles"). NULL is fine. Not inside d's callback, and not while
 * a lookup or fetch of d is pending. */
void sts_discover_free(sts_discover *d);

/* The outcome so far (also what the callbacks get). */
const sts_discovery *sts_discover_result(const sts_discover *d);

/* RFC 8461 3: TXT lookup, cache decision, and when it says so the policy host's address
 * lookup, the fetch, the parse and the cache update; then sts_cache_resolve() says which
 * policy applies and cb(res, arg) runs once. Returns 0, or STS_EINVAL when d already
 * ran or runs a step. */
int sts_discover_start(sts_discover *d, sts_discover_cb cb, void *arg);

/* 1 when a re-check may run: the applied policy came from the cache and no re-check
 * ran yet; else 0 (also for NULL). */
int sts_discover_may_recheck(const sts_discover *d);

/* RFC 8461 5.1: "a compliant MTA MUST NOT permanently fail to deliver messages before
 * checking, via DNS, for the presence of an updated policy". Looks up the TXT record
 * once more; when its id differs from the applied policy's, discovers again (cache
 * decision, fetch: the five-minute rule applies too) and compares. cb(res, arg) runs
 * once with res->recheck set; on STS_RECHECK_CHANGED res->policy is the new policy.
 * Sets res->rechecked first. Returns 0; STS_EINVAL when no re-check may run
 * (sts_discover_may_recheck) or a step runs; or the TXT query's error (then no
 * callback: the applied policy stands). */
int sts_discover_recheck(sts_discover *d, sts_discover_cb cb, void *arg);

/* The run is being cut short: see "Cancelling" above. Harmless when nothing runs. */
void sts_discover_cancel(sts_discover *d);

#endif
