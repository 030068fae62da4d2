/*
 * sender.c - one run of the sender (sender.h): for each recipient, RFC 8461 policy
 * discovery (discover.h: TXT, policy cache, policy host, HTTPS fetch, parse), MX lookup
 * (RFC 5321 5.1, RFC 7505), then per MX in preference order the policy match, the
 * address lookup and an SMTP session per address (smtpc.h), the decisions of decide.h,
 * and at the end a per-MX summary for people and the JSON result (result.h).
 *
 * Each recipient is a job, a state machine on the shared loop (sts_job_state):
 *   NEW -> DISCOVER -> MX -> (MX_ADDR -> SMTP per address)* -> [every MX refused under
 *   a cached enforce policy: RECHECK (RFC 8461 5.1), and on a new, different policy the
 *   MX list once more] -> DONE
 * in the shape of OpenSMTPD's mta_session.c: job_enter() does what entering a state
 * means (start a lookup, a session, the re-check, or report the outcome); the
 * callbacks (discovered_cb, mx_cb, mx_addr_cb, smtp_done_cb, rechecked_cb) say what a
 * result means and which state comes next.
 *
 * Jobs are created lazily, while fewer than opts->concurrency run, so that a recipient
 * still queued costs only its argument; a job keeps only the MX entries it tried, and
 * when it is done its JSON result is built and the job is freed from a zero-delay
 * timer (never inside one of its own callbacks). Results are printed in recipient
 * order. Jobs never free shared objects from inside their callbacks either: the
 * resolver and the fetcher are freed from that timer once every job is done, or by the
 * deadline timer (opts->deadline), whose callback is no resolver/fetcher callback
 * either; their pending callbacks then run with a cancelled status and the jobs end as
 * deferred ("time limit").
 *
 * sts_sender_run returns an exit status (sysexits), see sender.h.
 */
#include "sender/sender.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/tls.h"
#include "sender/cache.h"
#include "sender/check.h"
#include "sender/decide.h"
#include "sender/discover.h"
#include "sender/fetch.h"
#include "sender/finding.h"
#include "sender/policy.h"
#include "sender/resolver.h"
#include "sender/result.h"
#include "sender/rptstore.h"
#include "sender/smtpc.h"
#include "sender/tlsrpt.h"

#define SENDER_CONCURRENCY 8
#define SENDER_MAX_MX 16                      /* MX hosts tried per recipient */
#define SENDER_MAX_ADDRS STS_RESULT_MAX_ADDRS /* addresses tried per MX host */
#define SENDER_FETCH_TIMEOUT 60.0             /* RFC 8461 3.3: "a reasonable timeout" */

static const char *const job_state_names[] = {
    [STS_JOB_NEW] = "NEW",         [STS_JOB_DISCOVER] = "DISCOVER", [STS_JOB_TLSRPT] = "TLSRPT",
    [STS_JOB_MX] = "MX",           [STS_JOB_MX_ADDR] = "MX_ADDR",   [STS_JOB_SMTP] = "SMTP",
    [STS_JOB_RECHECK] = "RECHECK", [STS_JOB_DONE] = "DONE",
};
_Static_assert(sizeof(job_state_names) / sizeof(job_state_names[0]) == STS_JOB_DONE + 1,
               "a name for every job state");

const char *sts_job_state_name(sts_job_state st)
{
    if ((unsigned)st < sizeof(job_state_names) / sizeof(job_state_names[0]) && job_state_names[st])
        return job_state_names[st];
    return "UNKNOWN";
}

/* One host of the MX list, as DNS gave it. */
typedef struct mx_host {
    char *host;
    unsigned preference;
    int implicit; /* RFC 5321 5.1: the domain itself, no MX records */
} mx_host;

struct run;
struct job;

/* One policy discovery shared by every job of the run whose recipient is in its
 * domain (single flight): N recipients of one domain cost one TXT lookup and one
 * fetch, not N, with or without a cache. The RFC 8461 5.1 re-check is shared too: a
 * run is one moment, so the first job refused under a cached enforce policy re-checks
 * for all, the others that need it wait for that re-check (or, when it is over, take
 * its verdict) instead of asking DNS again. Owned by the jobs holding it (refs); its
 * discovery is freed with the last, never inside the discovery's own callback. */
typedef struct disc_share {
    struct disc_share *next; /* the run's shares */
    struct run *run;
    sts_discover *d;
    size_t refs;
    int found;           /* discovery (start) is over */
    int rechecking;      /* a re-check runs */
    int rechecked;       /* a re-check is over */
    struct job *waiters; /* jobs waiting for the running step, through wait_next */
    sts_log *log;        /* its transcript: a child of the run's when several jobs */
    char domain[256];
} disc_share;

typedef struct job {
    struct run *run;
    struct job *prev, *next; /* the run's jobs alive */
    size_t index;            /* of the recipient: where its result goes */
    sts_job_state state;
    sts_log *log;        /* the run's log, or a child with a prefix */
    char recipient[512]; /* send: local@domain; check: "" */
    sts_rcpt_result res; /* what the job found: its summary and JSON (result.h) */
    /* policy discovery and the RFC 8461 5.1 re-check (discover.h): the policy applied */
    sts_discover *disc;    /* the share's (NULL until the job starts discovery) */
    disc_share *share;     /* the discovery of its domain, shared (NULL: none yet) */
    struct job *wait_next; /* on share->waiters */
    int applied_cached;    /* the policy applied came from the cache (RFC 8461 5.1) */
    int rechecked;         /* the job took a re-check's verdict: never twice */
    int aborted;           /* the run's time limit passed */
    /* MX: the list, and res.mx[0 .. cur] the entries tried so far (in list order) */
    mx_host *hosts;
    size_t nhosts;
    size_t mx_cap; /* entries res.mx has room for */
    size_t cur;
    int no_such_domain;
    int mx_temp;                          /* MX lookup failed temporarily */
    sts_dns_addr addrs[SENDER_MAX_ADDRS]; /* the current MX's addresses, A then AAAA */
    size_t naddrs, addr_idx;
    struct sockaddr_storage addr;
    int no_starttls;     /* the next session is the plaintext retry (opportunistic TLS) */
    sts_smtpc *smtp;     /* the session in progress, or NULL */
    sts_check_extra chk; /* check: the facts beyond send's (check.h) */
    uint64_t addr_t0;    /* uv_hrtime() when the current MX's address lookup started */
    sts_buf msg;         /* the generated message (when no --data) */
    const char *rcpt_list[1];
} job;

typedef struct run {
    uv_loop_t *loop;
    const sts_sender_opts *opts;
    sts_resolver *resolver;
    sts_fetcher *fetcher;
    sts_cache *cache;       /* NULL: no cache (--no-cache, or the default is unusable) */
    sts_cache *drift_cache; /* check --cache FILE: only read, for the drift */
    sts_rptstore *rptstore; /* NULL: no TLS report store (rptstore.h) */
    SSL_CTX *ctx;
    char *const *rcpts;
    size_t njobs, next, done;
    size_t concurrency;
    json_t **results;          /* per recipient, set when its job is done */
    size_t emitted;            /* results handed to opts->on_result so far */
    sts_outcome *outcomes;     /* likewise */
    sts_verdict *verdicts;     /* check: likewise */
    sts_result_pool *pool;     /* their equal values, stored once (NULL: none shared) */
    job *jobs;                 /* jobs alive: running, or done and not yet freed */
    disc_share *shares;        /* discoveries, one per policy domain (single flight) */
    int starting, start_again; /* run_start_jobs is not re-entered (no deep recursion) */
    char helo[256];
    char from[512];
    sts_buf data; /* --data contents */
    int have_data;
    uv_timer_t reap; /* zero-delay: frees done jobs, and tears down after the last */
    int timers_on;   /* reap and deadline are initialised */
    int torn_down;
    uv_timer_t deadline;
    int deadline_passed;
} run;

static void job_enter(job *j, sts_job_state st);
static void job_next_mx(job *j);
static void job_abort(job *j);
static void run_start_jobs(run *r);

/* ---- small helpers ---- */

static void lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

/* The deadline passed: end the job here (callers return right after). */
static int job_deadline(job *j)
{
    if (!j->run->deadline_passed)
        return 0;
    job_abort(j);
    return 1;
}

/* No discovery ran (the argument was rejected before): no policy, no TXT, no decision. */
static const sts_discovery no_discovery = {.source = STS_POLICY_SOURCE_NONE};

/* What discovery found so far (the policy applied, the TXT id, the cache decision). */
static const sts_discovery *job_disc(const job *j)
{
    return j->disc ? sts_discover_result(j->disc) : &no_discovery;
}

/* The MX entry being tried. */
static sts_mx_result *job_mx(job *j)
{
    return &j->res.mx[j->cur];
}

/* ---- policy discovery (RFC 8461 3, discover.h) ---- */

/* The failures and the sentence a discovery step reports become the recipient's. */
static void job_take_findings(job *j, const sts_discovery *d)
{
    for (size_t i = 0; i < d->nfailures; i++)
        sts_result_add_failure(&j->res, d->failures[i]);
    if (d->detail[0])
        snprintf(j->res.detail, sizeof(j->res.detail), "%s", d->detail);
}

static void job_apply_policy(job *j)
{
    const sts_sender_opts *o = j->run->opts;
    const sts_discovery *d = job_disc(j);
    j->res.mode = sts_decide_mode(d->have_policy, d->policy.mode, o->mode);
    j->res.tls_required = sts_decide_tls_required(j->res.mode, o->require_tls);
    if (d->have_policy && o->mode != STS_MODE_AUTO)
        sts_info(j->log, "MTASTS mode %s overridden by --mode: applying %s",
                 sts_mode_name(d->policy.mode), sts_mode_name(j->res.mode));
    sts_info(j->log, "MTASTS applying mode %s%s", sts_mode_name(j->res.mode),
             o->require_tls ? " (+ --require-tls: verified TLS required on every MX)" : "");
}

/* Discovery is over: apply its policy and go on with the MX list. */
static void discovered_cb(const sts_discovery *d, void *arg)
{
    job *j = arg;
    job_take_findings(j, d);
    if (job_deadline(j))
        return;
    if (d->cancelled) { /* cannot happen: only the deadline cancels */
        job_abort(j);
        return;
    }
    j->applied_cached = d->have_policy && d->source == STS_POLICY_SOURCE_CACHE;
    job_apply_policy(j);
    job_enter(j, j->run->opts->check_only ? STS_JOB_TLSRPT : STS_JOB_MX);
}

/* ---- RFC 8461 5.1: re-check DNS before giving up under a cached enforce policy ---- */

/* "When a message fails to deliver due to an "enforce" policy, a compliant MTA MUST NOT
 * permanently fail to deliver messages before checking, via DNS, for the presence of an
 * updated policy." We never fail permanently under enforce (we defer), but when every MX
 * was refused under a policy that came from the cache, the policy may simply be stale:
 * look at the TXT record once more within this run (sts_discover_recheck). */
static int job_should_recheck(const job *j)
{
    const disc_share *sh = j->share;
    if (j->run->deadline_passed || !sh || j->rechecked || !j->applied_cached ||
        !(sh->rechecking || sh->rechecked || sts_discover_may_recheck(sh->d)) ||
        j->res.mode != STS_MODE_ENFORCE || !j->nhosts)
        return 0;
    for (size_t i = 0; i < j->res.nmx; i++)
        if (j->res.mx[i].action != STS_ACTION_REFUSED)
            return 0;
    return j->res.nmx > 0;
}

/* The MX list is done: maybe re-check the policy (RFC 8461 5.1), else report. */
static void job_finish(job *j)
{
    job_enter(j, job_should_recheck(j) ? STS_JOB_RECHECK : STS_JOB_DONE);
}

/* Forget every MX entry: the list is tried again from its first host. */
static void job_forget_mx(job *j)
{
    for (size_t i = 0; i < j->res.nmx; i++)
        sts_mx_tls_free(&j->res.mx[i].tls);
    j->res.nmx = 0;
    j->cur = 0;
}

/* The re-check is over: the message stays deferred, or the MX list is tried again
 * under the new policy. */
static void rechecked_cb(const sts_discovery *d, void *arg)
{
    job *j = arg;
    j->rechecked = 1;
    job_take_findings(j, d);
    if (job_deadline(j))
        return;
    switch (d->recheck) {
    case STS_RECHECK_ID_UNCHANGED:
    case STS_RECHECK_NO_TXT:
        sts_info(j->log,
                 "MTASTS re-check: %s: the cached policy id=%s stands, the message "
                 "stays deferred",
                 d->recheck == STS_RECHECK_ID_UNCHANGED ? "TXT id unchanged"
                                                        : "no usable TXT record",
                 d->policy_id);
        job_enter(j, STS_JOB_DONE);
        return;
    case STS_RECHECK_NOT_FETCHED:
    case STS_RECHECK_SAME:
        sts_info(j->log, "MTASTS re-check: %s: the message stays deferred",
                 d->recheck == STS_RECHECK_NOT_FETCHED ? "no new policy could be fetched"
                                                       : "the new policy says the same");
        job_enter(j, STS_JOB_DONE);
        return;
    case STS_RECHECK_CHANGED:
        break;
    default: /* out of memory, or cancelled (cannot happen: only the deadline cancels) */
        if (d->cancelled)
            job_abort(j);
        else
            job_enter(j, STS_JOB_DONE);
        return;
    }
    sts_info(j->log,
             "MTASTS re-check: the new policy id=%s differs: retrying the MX list "
             "under it",
             d->policy_id);
    j->res.recheck_retried = 1;
    job_apply_policy(j);
    job_forget_mx(j);
    job_next_mx(j);
}

/* ---- MX (RFC 5321 5.1, RFC 7505) ---- */

/* The MX list from DNS (at most SENDER_MAX_MX hosts). 0 or STS_ENOMEM. */
static int job_take_mx_list(job *j, const sts_dns_mx_result *res)
{
    size_t n = res->n < SENDER_MAX_MX ? res->n : SENDER_MAX_MX;
    j->hosts = calloc(n ? n : 1, sizeof(*j->hosts));
    if (!j->hosts)
        return STS_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        mx_host *h = &j->hosts[j->nhosts];
        h->host = strdup(res->mx[i].host);
        if (!h->host)
            return STS_ENOMEM;
        h->preference = res->mx[i].preference;
        j->nhosts++;
        sts_info(j->log, "DNS %s MX -> %u %s", res->name, h->preference, h->host);
    }
    if (res->n > SENDER_MAX_MX)
        sts_info(j->log, "MX only the first %d of %zu hosts are tried", SENDER_MAX_MX, res->n);
    return 0;
}

/* RFC 5321 5.1: no MX records: the domain itself is the implicit MX. */
static int job_take_implicit_mx(job *j)
{
    j->hosts = calloc(1, sizeof(*j->hosts));
    if (!j->hosts || !(j->hosts[0].host = strdup(j->res.domain)))
        return STS_ENOMEM;
    j->hosts[0].implicit = 1;
    j->nhosts = 1;
    return 0;
}

/* The MX lookup gave nothing to try: say why and finish. */
static void job_mx_failed(job *j, const sts_dns_mx_result *res)
{
    char why[400];
    sts_dns_failure_text(res->name, "MX", res->status, res->detail, why, sizeof(why));
    sts_info(j->log, "DNS %s", why);
    if (res->status == STS_DNS_NXDOMAIN) {
        j->no_such_domain = 1;
        snprintf(j->res.detail, sizeof(j->res.detail), "domain %s does not exist: %s",
                 j->res.domain, why);
    } else {
        j->mx_temp = 1;
        snprintf(j->res.detail, sizeof(j->res.detail), "%s", why);
    }
    job_finish(j);
}

static void mx_cb(const sts_dns_mx_result *res, void *arg)
{
    job *j = arg;
    if (job_deadline(j))
        return;
    int rc = 0;
    if (res->status == STS_DNS_OK && res->null_mx) {
        sts_info(j->log, "DNS %s MX -> 0 . (null MX, RFC 7505: the domain accepts no mail)",
                 res->name);
        j->res.null_mx = 1;
        snprintf(j->res.detail, sizeof(j->res.detail), "null MX: %s accepts no mail (RFC 7505)",
                 j->res.domain);
        job_finish(j);
        return;
    }
    if (res->status == STS_DNS_OK) {
        rc = job_take_mx_list(j, res);
    } else if (res->status == STS_DNS_NODATA) {
        sts_info(j->log, "DNS %s MX -> NODATA: implicit MX %s", res->name, j->res.domain);
        rc = job_take_implicit_mx(j);
    } else {
        job_mx_failed(j, res);
        return;
    }
    if (rc) {
        snprintf(j->res.detail, sizeof(j->res.detail), "out of memory");
        job_finish(j);
        return;
    }
    j->cur = 0;
    job_next_mx(j);
}

/* ---- per MX: policy match, addresses, SMTP sessions ---- */

/* A new entry for the MX list's host j->cur (the next to be tried), or NULL (out of
 * memory). Entries are kept for the hosts tried only, so the array grows as they are. */
static sts_mx_result *job_mx_open(job *j)
{
    if (j->res.nmx == j->mx_cap) {
        size_t cap = j->mx_cap ? 2 * j->mx_cap : 1;
        sts_mx_result *mx = realloc(j->res.mx, cap * sizeof(*mx));
        if (!mx)
            return NULL;
        j->res.mx = mx;
        j->mx_cap = cap;
    }
    sts_mx_result *m = &j->res.mx[j->res.nmx++];
    memset(m, 0, sizeof(*m));
    const mx_host *h = &j->hosts[j->cur];
    m->host = h->host;
    m->preference = h->preference;
    m->implicit = h->implicit;
    return m;
}

/* RFC 8461 4.1 / 5: may the current MX be contacted under the policy? Logs the match;
 * 1 to connect, 0 when it is refused (recorded in m). */
static int job_mx_allowed(job *j, sts_mx_result *m)
{
    sts_result_type failure = STS_RESULT_NONE;
    const sts_discovery *d = job_disc(j);
    if (d->have_policy) {
        /* RFC 8461 3.2 / 4.1: names are compared as A-labels; the resolver gives MX
         * names as they are on the wire (A-labels), and a name with non-ASCII bytes
         * matches no pattern (sts_decide_mx_host_ascii). */
        const char *pat =
            sts_decide_mx_host_ascii(m->host) ? sts_policy_mx_match(&d->policy, m->host) : NULL;
        m->policy_match = pat != NULL;
        if (pat)
            sts_info(j->log, "MX %u %s policy match (%s)", m->preference, m->host, pat);
        else if (!sts_decide_mx_host_ascii(m->host))
            sts_info(j->log,
                     "MX %u %s is not an A-label name: it matches no policy "
                     "pattern (RFC 8461 3.2)",
                     m->preference, m->host);
        else
            sts_info(j->log, "MX %u %s does NOT match the policy", m->preference, m->host);
    } else {
        m->policy_match = -1;
        sts_info(j->log, "MX %u %s (no policy)", m->preference, m->host);
    }
    int go = sts_decide_mx_connect(j->res.mode, m->policy_match != 0, &failure);
    if (failure != STS_RESULT_NONE) {
        m->failure = failure;
        sts_result_add_failure(&j->res, failure);
    }
    if (!go && j->run->opts->check_only) {
        /* check: the refusal decides the verdict, not whether we look (its facts). */
        m->probed_refused = 1;
        sts_info(j->log, "MX %s refused: not in the policy (enforce); probed for its facts only",
                 m->host);
        return 1;
    }
    if (!go) {
        /* RFC 8461 4.1 / 5: under enforce an MX outside the policy is not contacted. */
        m->action = STS_ACTION_REFUSED;
        m->stage = "POLICY";
        snprintf(m->detail, sizeof(m->detail),
                 "MX does not match the policy's mx patterns: not contacted");
        sts_info(j->log, "MX %s refused: not in the policy (enforce)", m->host);
    }
    return go;
}

/* Take the next MX in preference order: policy match, then its addresses. */
static void job_next_mx(job *j)
{
    if (job_deadline(j))
        return;
    for (; j->cur < j->nhosts; j->cur++) {
        sts_mx_result *m = job_mx_open(j);
        if (!m) {
            snprintf(j->res.detail, sizeof(j->res.detail), "out of memory");
            break;
        }
        if (job_mx_allowed(j, m)) {
            job_enter(j, STS_JOB_MX_ADDR);
            return;
        }
    }
    job_finish(j);
}

/* The current MX is over without a session that counts: on to the next one. */
static void job_skip_mx(job *j)
{
    j->cur++;
    job_next_mx(j);
}

/* Connect to the current MX's address j->addrs[j->addr_idx]. */
static void job_connect_addr(job *j)
{
    sts_mx_result *m = job_mx(j);
    const sts_dns_addr *a = &j->addrs[j->addr_idx];
    snprintf(m->address, sizeof(m->address), "%s", a->text);
    if (m->naddresses < SENDER_MAX_ADDRS)
        snprintf(m->addresses[m->naddresses++], sizeof(m->addresses[0]), "%s", a->text);
    memcpy(&j->addr, &a->sa, sizeof(a->sa));
    int port = j->run->opts->smtp_port ? j->run->opts->smtp_port : 25;
    if (a->family == AF_INET6)
        ((struct sockaddr_in6 *)&j->addr)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&j->addr)->sin_port = htons((uint16_t)port);
    j->no_starttls = 0;
    job_enter(j, STS_JOB_SMTP);
}

/* The current MX has no address to connect to (detail says why): a temporary failure
 * of that MX; on to the next. */
static void job_mx_no_address(job *j, const char *detail)
{
    sts_mx_result *m = job_mx(j);
    m->action = STS_ACTION_TEMPFAIL;
    m->stage = "DNS";
    snprintf(m->detail, sizeof(m->detail), "%s", detail);
    job_skip_mx(j);
}

/* The address lookup of the current MX failed. */
static void job_addr_failed(job *j, const sts_dns_addr_result *res)
{
    char why[400], detail[sizeof(why) + 16];
    sts_dns_failure_text(res->name, "A/AAAA", res->status, res->detail, why, sizeof(why));
    sts_info(j->log, "DNS %s", why);
    snprintf(detail, sizeof(detail), "no address: %s", why);
    if (job_mx(j)->implicit && !sts_dns_status_is_temporary(res->status)) {
        /* RFC 5321 5.1: no MX and no address records: the domain cannot receive. */
        j->no_such_domain = 1;
        snprintf(j->res.detail, sizeof(j->res.detail), "%s has neither MX nor address records",
                 j->res.domain);
    }
    job_mx_no_address(j, detail);
}

static void mx_addr_cb(const sts_dns_addr_result *res, void *arg)
{
    job *j = arg;
    if (job_deadline(j))
        return;
    job_mx(j)->dns_ms = (double)(uv_hrtime() - j->addr_t0) / 1e6;
    if (res->status != STS_DNS_OK || !res->n) {
        job_addr_failed(j, res);
        return;
    }
    sts_mx_result *m = job_mx(j);
    for (size_t i = 0; i < res->n; i++)
        sts_info(j->log, "DNS %s %s -> %s", res->name,
                 res->addrs[i].family == AF_INET6 ? "AAAA" : "A", res->addrs[i].text);
    /* Every usable address in turn, A before AAAA (the resolver's order), on
     * connection failures (smtp_done_cb). One no sender may use (0.0.0.0 reaches this
     * very host) is skipped, saying why. */
    char why[sizeof(m->detail)] = "";
    size_t usable = 0;
    j->naddrs = 0;
    for (size_t i = 0; i < res->n; i++) {
        if (sts_dns_addr_check(&res->addrs[i], why, sizeof(why))) {
            sts_info(j->log, "MX %s: %s: not contacted", m->host, why);
            continue;
        }
        if (usable++ < SENDER_MAX_ADDRS)
            j->addrs[j->naddrs++] = res->addrs[i];
    }
    if (usable > SENDER_MAX_ADDRS)
        sts_info(j->log, "MX %s: only the first %d of %zu addresses are tried", m->host,
                 SENDER_MAX_ADDRS, usable);
    if (!j->naddrs) {
        job_mx_no_address(j, why);
        return;
    }
    j->addr_idx = 0;
    job_connect_addr(j);
}

/* What a finished session says about the current MX, recorded in its entry. */
static void job_take_session(job *j, const sts_smtpc_result *res, int relevant)
{
    sts_mx_result *m = job_mx(j);
    m->action = res->action;
    /* A testing-mode mismatch recorded before connecting stays the MX's failure. */
    if (m->failure == STS_RESULT_NONE && relevant)
        m->failure = res->failure;
    snprintf(m->detail, sizeof(m->detail), "%s", res->detail);
    m->stage = sts_smtpc_state_name(res->stage);
    m->connected |= res->connected;
    if (res->local_addr[0])
        snprintf(m->local_address, sizeof(m->local_address), "%s", res->local_addr);
    if (res->ehlo_host[0])
        snprintf(m->helo, sizeof(m->helo), "%s", res->ehlo_host);
    m->greeted |= res->connected &&
                  (res->starttls_offered || res->tls_attempted || res->stage > STS_SMTPC_HELO ||
                   res->failure == STS_RESULT_STARTTLS_NOT_SUPPORTED);
    if (!m->plain_retry || res->tls_attempted) {
        m->starttls_offered = res->starttls_offered;
        m->starttls_code = res->starttls_code;
        m->tls_attempted = res->tls_attempted;
        m->tls_up = res->tls_up;
        memcpy(m->stage_ms, res->stage_ms, sizeof(m->stage_ms));
        if (sts_mx_tls_set(&m->tls, &res->tls, j->run->opts->check_only))
            sts_error(j->log, "ERROR out of memory keeping the TLS facts of %s", m->host);
    }
    m->pipelined = res->pipelined;
    m->code = res->code;
    snprintf(m->enhanced, sizeof(m->enhanced), "%s", res->enhanced);
    snprintf(m->text, sizeof(m->text), "%s", res->text);
    if (relevant) {
        /* Both a testing-mode mismatch and the session's own failure are reported. */
        sts_result_add_failure(&j->res, m->failure);
        sts_result_add_failure(&j->res, res->failure);
    }
}

/* check: what a sender applying the policy would have done with this MX, when the probe
 * saw more than it would: an MX the policy refuses stays refused (its facts kept), and
 * TLS older than 1.2 (which check accepts, to report it) fails where TLS is required. */
static void job_check_session(job *j, sts_mx_result *m)
{
    if (m->probed_refused) {
        m->action = STS_ACTION_REFUSED;
        m->stage = "POLICY";
        snprintf(m->detail, sizeof(m->detail),
                 "MX does not match the policy's mx patterns: a sender would not use it");
    } else if (m->tls_up && sts_finding_tls_too_old(m->tls.version) && j->res.tls_required &&
               m->action == STS_ACTION_DELIVERED) {
        m->action = STS_ACTION_TEMPFAIL;
        snprintf(m->detail, sizeof(m->detail),
                 "%s only: a sender that requires TLS 1.2 cannot complete the handshake",
                 m->tls.version);
    }
}

static void smtp_done_cb(sts_smtpc *s, void *arg)
{
    job *j = arg;
    sts_mx_result *m = job_mx(j);
    const sts_smtpc_result *res = sts_smtpc_get_result(s);
    int check = j->run->opts->check_only;
    int relevant = (j->res.mode != STS_MODE_NONE || j->res.tls_required) && !m->probed_refused;

    j->smtp = NULL;
    job_take_session(j, res, relevant);
    if (check)
        job_check_session(j, m);
    int retry = res->retry_plain && !m->plain_retry;
    int in_transaction = res->stage == STS_SMTPC_MAIL || res->stage == STS_SMTPC_RCPT ||
                         res->stage == STS_SMTPC_DATA || res->stage == STS_SMTPC_BODY;
    int connect_failed = !res->connected && res->stage == STS_SMTPC_CONNECT;
    sts_action act = m->action;
    sts_smtpc_free(s); /* done_cb is the session's last act */

    if (j->run->deadline_passed) {
        /* A delivery that completed before the limit stands. */
        if (act == STS_ACTION_DELIVERED)
            job_finish(j);
        else
            job_abort(j);
        return;
    }
    if (retry) {
        /* Opportunistic TLS (no policy / testing / none): a failed handshake may be
         * retried once in plaintext; recorded in the result (plain_retry). */
        m->plain_retry = 1;
        sts_info(j->log, "MX %s: TLS handshake failed, retrying once without STARTTLS", m->host);
        j->no_starttls = 1;
        job_enter(j, STS_JOB_SMTP);
        return;
    }
    if (connect_failed && j->addr_idx + 1 < j->naddrs) {
        /* RFC 5321 5.1: an MX host may have several addresses; a connection failure to
         * one is no verdict on the host: try its next address first. */
        j->addr_idx++;
        sts_info(j->log, "MX %s: no connection to %s: trying its next address %s", m->host,
                 m->address, j->addrs[j->addr_idx].text);
        job_connect_addr(j);
        return;
    }
    /* check probes every MX host; a sender stops at the first that takes the message. */
    if ((!check && !sts_decide_try_next_mx(act, in_transaction)) || j->cur + 1 >= j->nhosts) {
        job_finish(j);
        return;
    }
    job_skip_mx(j);
}

/* ---- entering a state ---- */

/* RFC 5322 3.3 date-time. */
static void rfc5322_date(time_t t, char *out, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

static int job_make_message(job *j)
{
    run *r = j->run;
    time_t now = r->opts->now ? r->opts->now : time(NULL);
    char date[64];
    rfc5322_date(now, date, sizeof(date));
    unsigned char rnd[8];
    if (RAND_bytes(rnd, sizeof(rnd)) != 1)
        memset(rnd, 0, sizeof(rnd));
    char id[17];
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(id + 2 * i, 3, "%02x", rnd[i]);
    sts_buf_init(&j->msg, 0);
    return sts_buf_appendf(&j->msg,
                           "From: <%s>\r\n"
                           "To: <%s>\r\n"
                           "Subject: ststest delivery test\r\n"
                           "Date: %s\r\n"
                           "Message-ID: <%s.ststest@%s>\r\n"
                           "MIME-Version: 1.0\r\n"
                           "Content-Type: text/plain; charset=us-ascii\r\n"
                           "\r\n"
                           "This is a test message from ststest, a harness for mandatory TLS\r\n"
                           "between mail servers (MTA-STS, RFC 8461). It can be discarded.\r\n",
                           r->from[0] ? r->from : "ststest@localhost", j->recipient, date, id,
                           r->helo[0] ? r->helo : "localhost");
}

/* Split the argument: send takes local@domain (the last "@"), check a domain (a
 * local@domain is accepted too). 0 or STS_EINVAL with j->res.detail set. */
static int job_parse_arg(job *j, int check)
{
    const char *a = j->res.arg;
    char *domain = j->res.domain, *detail = j->res.detail;
    size_t dlen = sizeof(j->res.detail);
    const char *at = strrchr(a, '@');
    const char *dom = at ? at + 1 : a;
    if (!check && (!at || at == a)) {
        snprintf(detail, dlen, "'%s' is not an address (local@domain)", a);
        return STS_EINVAL;
    }
    size_t n = strlen(dom);
    if (n && dom[n - 1] == '.')
        n--;
    if (!n || n >= sizeof(j->res.domain)) {
        snprintf(detail, dlen, "'%s' has no valid domain", a);
        return STS_EINVAL;
    }
    memcpy(domain, dom, n);
    domain[n] = '\0';
    lower(domain);
    for (const char *p = domain; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.' || *p == '_')) {
            snprintf(detail, dlen, "'%s': invalid character '%c' in domain", a, *p);
            return STS_EINVAL;
        }
    if (!check) {
        if (strlen(a) >= sizeof(j->recipient) || strchr(a, '<') || strchr(a, '>') ||
            strpbrk(a, " \r\n\t")) {
            snprintf(detail, dlen, "'%s' is not a valid address", a);
            return STS_EINVAL;
        }
        snprintf(j->recipient, sizeof(j->recipient), "%s", a);
    }
    return 0;
}

/* ---- single-flight discovery (disc_share) ---- */

/* Hand the step's outcome to every job that waited for it (in the order they came). */
static void share_wake(disc_share *sh, const sts_discovery *d, sts_discover_cb cb)
{
    job *w = sh->waiters, *rev = NULL;
    sh->waiters = NULL;
    while (w) { /* the list is newest first: reverse it */
        job *n = w->wait_next;
        w->wait_next = rev;
        rev = w;
        w = n;
    }
    while (rev) {
        job *n = rev->wait_next;
        rev->wait_next = NULL;
        cb(d, rev);
        rev = n;
    }
}

static void share_found_cb(const sts_discovery *d, void *arg)
{
    disc_share *sh = arg;
    sh->found = 1;
    share_wake(sh, d, discovered_cb);
}

static void share_rechecked_cb(const sts_discovery *d, void *arg)
{
    disc_share *sh = arg;
    sh->rechecking = 0;
    sh->rechecked = 1;
    share_wake(sh, d, rechecked_cb);
}

static void share_wait(disc_share *sh, job *j)
{
    j->wait_next = sh->waiters;
    sh->waiters = j;
}

/* The run's discovery of j's domain, made and started when it has none yet; j holds a
 * reference. Returns 0 or a negative STS_* code. */
static int share_join(job *j, const sts_discover_params *dp)
{
    run *r = j->run;
    disc_share *sh = r->shares;
    while (sh && strcmp(sh->domain, j->res.domain))
        sh = sh->next;
    if (!sh) {
        sh = calloc(1, sizeof(*sh));
        if (!sh)
            return STS_ENOMEM;
        snprintf(sh->domain, sizeof(sh->domain), "%s", j->res.domain);
        /* The discovery outlives the job that started it: with several jobs it logs
         * under the domain's name, not the first recipient's. */
        sts_discover_params p = *dp;
        if (j->log != r->opts->log) {
            char prefix[300];
            snprintf(prefix, sizeof(prefix), "%.250s: ", sh->domain);
            sh->log = sts_log_new_child(r->opts->log, prefix);
            p.log = sh->log;
        }
        int rc = sts_discover_new(&p, &sh->d);
        if (rc) {
            sts_log_free(sh->log);
            free(sh);
            return rc;
        }
        sh->run = r;
        sh->next = r->shares;
        r->shares = sh;
        sts_discover_start(sh->d, share_found_cb, sh);
    } else {
        sts_info(j->log, "MTASTS policy discovery for %s is shared with an earlier recipient",
                 sh->domain);
    }
    sh->refs++;
    j->share = sh;
    j->disc = sh->d;
    return 0;
}

/* j lets go of its discovery; the last one frees it (never inside its callback: jobs
 * are freed from the run's reaper). */
static void share_leave(job *j)
{
    disc_share *sh = j->share;
    j->share = NULL;
    j->disc = NULL;
    if (!sh || --sh->refs > 0)
        return;
    disc_share **pp = &sh->run->shares;
    while (*pp != sh)
        pp = &(*pp)->next;
    *pp = sh->next;
    sts_discover_free(sh->d);
    sts_log_free(sh->log);
    free(sh);
}

/* DISCOVER: check the argument, make the message, start policy discovery. */
static void job_discover(job *j)
{
    run *r = j->run;
    if (job_deadline(j))
        return;
    if (job_parse_arg(j, r->opts->check_only)) {
        sts_info(j->log, "ERROR %s", j->res.detail);
        j->no_such_domain = 1; /* a bad address is a permanent failure */
        job_finish(j);
        return;
    }
    j->rcpt_list[0] = j->recipient;
    if (!r->opts->check_only && !r->have_data && job_make_message(j)) {
        snprintf(j->res.detail, sizeof(j->res.detail), "out of memory");
        job_finish(j);
        return;
    }
    sts_discover_params dp = {
        .loop = r->loop,
        .domain = j->res.domain,
        .resolver = r->resolver,
        .fetcher = r->fetcher,
        .cache = r->cache,
        .https_port = r->opts->https_port,
        .fetch_timeout = SENDER_FETCH_TIMEOUT,
        .now = r->opts->now,
        .log = j->log,
    };
    int rc = share_join(j, &dp);
    if (rc) {
        snprintf(j->res.detail, sizeof(j->res.detail), "policy discovery could not start: %s",
                 sts_strerror(rc));
        job_finish(j);
        return;
    }
    sts_info(j->log, "%s %s", r->opts->check_only ? "CHECK" : "SEND",
             r->opts->check_only ? j->res.domain : j->recipient);
    /* RFC 8461 3: TXT, cache, fetch; discovered_cb goes on with the MX list. While the
     * shared discovery runs, it never runs inside this call (discover.h); once it is
     * over, a later job of the domain goes on with its outcome at once. */
    if (j->share->found)
        discovered_cb(sts_discover_result(j->share->d), j);
    else
        share_wait(j->share, j);
}

/* check: the _smtp._tls record has answered (RFC 8460 3); on to the MX list. */
static void tlsrpt_cb(const sts_dns_txt_result *res, void *arg)
{
    job *j = arg;
    if (job_deadline(j))
        return;
    sts_check_read_tlsrpt(&j->chk, res->name, res);
    if (j->chk.tlsrpt == STS_CHECK_TLSRPT_VALID)
        sts_info(j->log, "TLSRPT %s: one valid record", res->name);
    else
        sts_info(j->log, "TLSRPT %s: %s", res->name, j->chk.tlsrpt_why);
    job_enter(j, STS_JOB_MX);
}

/* TLSRPT: look _smtp._tls.<domain> up (check only). */
static void job_query_tlsrpt(job *j)
{
    char name[300];
    int rc = sts_tlsrpt_record_name(j->res.domain, name, sizeof(name));
    if (!rc)
        rc = sts_resolver_query_txt(j->run->resolver, name, tlsrpt_cb, j);
    if (rc) {
        j->chk.tlsrpt = STS_CHECK_TLSRPT_INVALID;
        snprintf(j->chk.tlsrpt_why, sizeof(j->chk.tlsrpt_why),
                 "the lookup of _smtp._tls.%.250s could not start: %s", j->res.domain,
                 sts_strerror(rc));
        job_enter(j, STS_JOB_MX);
    }
}

/* MX: look the domain's MX records up. */
static void job_query_mx(job *j)
{
    int rc = sts_resolver_query_mx(j->run->resolver, j->res.domain, mx_cb, j);
    if (rc) {
        snprintf(j->res.detail, sizeof(j->res.detail), "MX lookup could not start: %s",
                 sts_strerror(rc));
        j->mx_temp = 1;
        job_finish(j);
    }
}

/* MX_ADDR: look the current MX's addresses up. */
static void job_query_addr(job *j)
{
    sts_mx_result *m = job_mx(j);
    j->addr_t0 = uv_hrtime();
    int rc = sts_resolver_query_addr(j->run->resolver, m->host, mx_addr_cb, j);
    if (rc) {
        m->action = STS_ACTION_TEMPFAIL;
        snprintf(m->detail, sizeof(m->detail), "address lookup could not start: %s",
                 sts_strerror(rc));
        job_skip_mx(j);
    }
}

/* SMTP: a session to j->addr (j->no_starttls: the plaintext retry). */
static void job_start_smtp(job *j)
{
    sts_mx_result *m = job_mx(j);
    run *r = j->run;
    const sts_sender_opts *o = r->opts;
    sts_smtpc_params p = {
        .addr = (const struct sockaddr *)&j->addr,
        .host = m->host,
        .helo = r->helo,
        .from = r->from[0] || o->from ? r->from : NULL,
        .rcpts = j->rcpt_list,
        .nrcpts = o->check_only ? 0 : 1,
        .msg = r->have_data ? r->data.data : j->msg.data,
        .msglen = r->have_data ? r->data.len : j->msg.len,
        .ssl_ctx = r->ctx,
        .tls_required = j->res.tls_required,
        .check_only = o->check_only,
        .no_starttls = j->no_starttls,
        .log = j->log,
    };
    sts_smtpc_timeouts_init(&p.timeouts, o->timeout);
    int rc = sts_smtpc_start(r->loop, &p, smtp_done_cb, j, &j->smtp);
    if (rc) {
        j->smtp = NULL;
        m->action = STS_ACTION_TEMPFAIL;
        snprintf(m->detail, sizeof(m->detail), "SMTP session could not start: %s",
                 sts_strerror(rc));
        job_skip_mx(j);
    }
}

/* RECHECK: every MX was refused under a cached enforce policy (RFC 8461 5.1). */
static void job_recheck(job *j)
{
    sts_info(j->log,
             "MTASTS every MX was refused under the CACHED enforce policy id=%s: "
             "re-checking _mta-sts.%s for an updated policy (RFC 8461 5.1)",
             job_disc(j)->policy_id, j->res.domain);
    disc_share *sh = j->share;
    if (sh->rechecked) { /* this run re-checked already: its verdict is this job's too */
        sts_info(j->log, "MTASTS re-check of %s already done in this run: taking its verdict",
                 sh->domain);
        rechecked_cb(sts_discover_result(sh->d), j);
        return;
    }
    share_wait(sh, j);
    if (sh->rechecking)
        return;
    int rc = sts_discover_recheck(sh->d, share_rechecked_cb, sh);
    if (rc == 0) {
        sh->rechecking = 1;
    } else {
        sh->waiters = j->wait_next; /* j is the only waiter: no re-check ran */
        j->wait_next = NULL;
        sts_info(j->log, "MTASTS re-check could not start: %s", sts_strerror(rc));
        job_enter(j, STS_JOB_DONE);
    }
}

/* The outcome from the actions on the MX hosts (decide.h), and the sentence for it. */
static void job_decide(job *j)
{
    sts_rcpt_result *res = &j->res;
    sts_action actions[SENDER_MAX_MX];
    for (size_t i = 0; i < res->nmx; i++)
        actions[i] = res->mx[i].action;
    sts_outcome_facts f = {
        .actions = actions,
        .nactions = res->nmx,
        .mode = res->mode,
        .require_tls = res->tls_required,
        .null_mx = res->null_mx,
        .no_such_domain = j->no_such_domain,
    };
    res->outcome = sts_decide_outcome(&f);
    if (j->aborted && res->outcome != STS_OUTCOME_DELIVERED) {
        /* The run's time limit: whatever was pending is left for a later try. */
        res->outcome = STS_OUTCOME_DEFERRED;
        snprintf(res->detail, sizeof(res->detail), "%s", STS_DETAIL_TIME_LIMIT);
    } else if (!res->detail[0] || res->outcome == STS_OUTCOME_DELIVERED) {
        for (size_t i = res->nmx; i-- > 0;)
            if (res->mx[i].detail[0]) {
                snprintf(res->detail, sizeof(res->detail), "%.200s: %.300s", res->mx[i].host,
                         res->mx[i].detail);
                break;
            }
    }
}

static void reap_cb(uv_timer_t *t);
static json_t *run_unfinished(run *r, size_t i);

/* With opts->on_result: hand over the results done, in recipient order, up to the
 * first one still running (all: every one, the unfinished as deferred), and free
 * them. */
static void run_emit(run *r, int all)
{
    if (!r->opts->on_result)
        return;
    for (; r->emitted < r->njobs && (all || r->results[r->emitted]); r->emitted++) {
        size_t i = r->emitted;
        json_t *o = r->results[i] ? r->results[i] : run_unfinished(r, i);
        r->results[i] = NULL;
        if (o)
            r->opts->on_result(r->opts->on_result_arg, o);
        json_decref(o);
    }
}

/* check: the drift against --cache, the findings, the verdict block and the JSON keys. */
static void job_check_verdict(job *j, json_t *o)
{
    run *r = j->run;
    const sts_discovery *d = job_disc(j);
    sts_cache_entry e;
    int have_e = r->drift_cache && !sts_cache_get(r->drift_cache, j->res.domain, j->chk.now, &e);
    sts_check_drift(&j->chk, have_e ? &e : NULL, d);
    if (have_e)
        sts_cache_entry_free(&e);
    j->chk.mx_known = j->nhosts > 0;
    sts_findings *fs = malloc(sizeof(*fs));
    if (!fs) {
        sts_error(j->log, "ERROR out of memory judging %s", j->res.domain);
        r->verdicts[j->index] = STS_VERDICT_FAIL;
        return;
    }
    sts_check_judge(&j->res, d, &j->chk, fs);
    sts_check_log(j->log, &j->res, d, fs);
    if (o)
        sts_check_json(o, &j->res, d, &j->chk, fs);
    r->verdicts[j->index] = fs->verdict;
    free(fs);
}

/* RFC 8460: the job's MX sessions into the TLS report store, on the run's clock. A
 * store that fails is a warning: the delivery result stands. */
static void run_record_sessions(run *r, job *j)
{
    if (!r->rptstore)
        return;
    time_t at = r->opts->now ? r->opts->now : time(NULL);
    if (sts_rptstore_record(r->rptstore, &j->res, job_disc(j), at) != 0)
        sts_info(j->log, "WARNING %s", sts_rptstore_last_error(r->rptstore));
}

/* DONE: decide, tell, keep the JSON result; the job is freed from the reap timer. */
static void job_done(job *j)
{
    run *r = j->run;
    job_decide(j);
    sts_result_log(j->log, &j->res, job_disc(j));
    r->outcomes[j->index] = j->res.outcome;
    r->results[j->index] =
        sts_result_json(&j->res, job_disc(j), r->opts->check_only, r->cache != NULL, r->pool);
    if (r->opts->check_only)
        job_check_verdict(j, r->results[j->index]);
    run_record_sessions(r, j);
    run_emit(r, 0);
    r->done++;
    run_start_jobs(r);
    if (!r->torn_down)
        uv_timer_start(&r->reap, reap_cb, 0, 0);
}

/* What entering a state means; the callbacks above say which state comes next. */
static void job_enter(job *j, sts_job_state st)
{
    if (j->state == STS_JOB_DONE)
        return; /* the outcome is taken */
    sts_trace(j->log, "job %.250s: %s -> %s", j->res.arg, sts_job_state_name(j->state),
              sts_job_state_name(st));
    j->state = st;
    switch (st) {
    case STS_JOB_NEW:
        break; /* a job is created in it, never enters it */
    case STS_JOB_DISCOVER:
        job_discover(j);
        break;
    case STS_JOB_TLSRPT:
        job_query_tlsrpt(j);
        break;
    case STS_JOB_MX:
        job_query_mx(j);
        break;
    case STS_JOB_MX_ADDR:
        job_query_addr(j);
        break;
    case STS_JOB_SMTP:
        job_start_smtp(j);
        break;
    case STS_JOB_RECHECK:
        job_recheck(j);
        break;
    case STS_JOB_DONE:
        job_done(j);
        break;
    }
}

/* The run's deadline passed while j was waiting for something (or never started). */
static void job_abort(job *j)
{
    if (j->state == STS_JOB_DONE)
        return;
    j->aborted = 1;
    if (j->cur < j->res.nmx && job_mx(j)->action == STS_ACTION_NONE) {
        sts_mx_result *m = job_mx(j);
        m->action = STS_ACTION_TEMPFAIL;
        m->stage = j->state == STS_JOB_MX_ADDR ? "DNS" : m->stage;
        snprintf(m->detail, sizeof(m->detail), "%s", STS_DETAIL_TIME_LIMIT);
    }
    sts_info(j->log, "ABORTED %s: time limit reached", j->res.arg);
    job_enter(j, STS_JOB_DONE);
}

/* ---- creating and freeing jobs ---- */

/* The job of recipient i, in state NEW, linked into the run's jobs; NULL when out of
 * memory. */
static job *job_new(run *r, size_t i)
{
    job *j = calloc(1, sizeof(*j));
    if (!j)
        return NULL;
    j->run = r;
    j->index = i;
    j->res.arg = r->rcpts[i];
    j->res.check = r->opts->check_only;
    j->res.mode = STS_MODE_NONE; /* until discovery: no policy, RFC 8461 5 */
    j->chk.tlsrpt = STS_CHECK_TLSRPT_MISSING;
    j->chk.warn_days = r->opts->warn_days > 0    ? r->opts->warn_days
                       : r->opts->warn_days == 0 ? STS_SENDER_WARN_DAYS
                                                 : 0;
    j->chk.now = r->opts->now ? r->opts->now : time(NULL);
    if (r->njobs > 1 && r->opts->log) {
        char prefix[300];
        snprintf(prefix, sizeof(prefix), "%.250s: ", r->rcpts[i]);
        j->log = sts_log_new_child(r->opts->log, prefix);
    }
    if (!j->log)
        j->log = r->opts->log;
    j->next = r->jobs;
    if (r->jobs)
        r->jobs->prev = j;
    r->jobs = j;
    return j;
}

/* Free j: never inside one of its own callbacks (its discovery's, its session's). */
static void job_free(job *j)
{
    run *r = j->run;
    if (j->prev)
        j->prev->next = j->next;
    else
        r->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    share_leave(j);
    job_forget_mx(j);
    free(j->res.mx);
    for (size_t i = 0; i < j->nhosts; i++)
        free(j->hosts[i].host);
    free(j->hosts);
    sts_buf_free(&j->msg);
    sts_check_extra_free(&j->chk);
    if (j->log && j->log != r->opts->log)
        sts_log_free(j->log);
    free(j);
}

/* Start jobs while fewer than r->concurrency run. Never re-entered: a job that ends at
 * once (a bad address, the deadline) asks for another round instead of recursing. */
static void run_start_jobs(run *r)
{
    if (r->starting) {
        r->start_again = 1;
        return;
    }
    r->starting = 1;
    do {
        r->start_again = 0;
        while (r->next < r->njobs && r->next - r->done < r->concurrency) {
            size_t i = r->next++;
            job *j = job_new(r, i);
            if (!j) {
                sts_error(r->opts->log, "ERROR %s: out of memory", r->rcpts[i]);
                r->outcomes[i] = STS_OUTCOME_DEFERRED;
                r->verdicts[i] = STS_VERDICT_FAIL;
                r->done++;
                continue;
            }
            job_enter(j, STS_JOB_DISCOVER);
            /* Ended at once (before discovery started: it never calls back inside
             * sts_discover_start), so no callback of its own is on the stack. */
            if (j->state == STS_JOB_DONE)
                job_free(j);
        }
    } while (r->start_again);
    r->starting = 0;
}

/* ---- the run's timers ---- */

static void timer_close_cb(uv_handle_t *h)
{
    (void)h;
}

/* Outside every job, resolver and fetcher callback: free the jobs that are done, and
 * once every job is, the resolver and the fetcher, and close the run's timers. */
static void reap_cb(uv_timer_t *t)
{
    run *r = t->data;
    for (job *j = r->jobs, *next; j; j = next) {
        next = j->next;
        if (j->state == STS_JOB_DONE)
            job_free(j);
    }
    if (r->done < r->njobs || r->torn_down)
        return;
    r->torn_down = 1;
    if (r->resolver)
        sts_resolver_free(r->resolver);
    r->resolver = NULL;
    if (r->fetcher)
        sts_fetcher_free(r->fetcher);
    r->fetcher = NULL;
    uv_close((uv_handle_t *)&r->reap, timer_close_cb);
    uv_close((uv_handle_t *)&r->deadline, timer_close_cb);
}

/* opts->deadline passed: abort every pending lookup, fetch and session. */
static void deadline_cb(uv_timer_t *t)
{
    run *r = t->data;
    r->deadline_passed = 1;
    sts_info(r->opts->log,
             "TIME LIMIT of %.3g s reached: aborting every pending lookup, fetch "
             "and session; the remaining recipients are deferred",
             r->opts->deadline);
    /* Sessions report later, from their close callbacks (smtp_done_cb). */
    for (job *j = r->jobs; j; j = j->next)
        if (j->smtp)
            sts_smtpc_abort(j->smtp, STS_DETAIL_TIME_LIMIT);
    /* Pending DNS queries and fetches call back inside these calls, cancelled; the
     * callbacks see deadline_passed (discovery: its cancel mark) and end their jobs. */
    for (job *j = r->jobs; j; j = j->next)
        if (j->state != STS_JOB_DONE)
            sts_discover_cancel(j->disc);
    sts_resolver *res = r->resolver;
    r->resolver = NULL;
    if (res)
        sts_resolver_free(res);
    sts_fetcher *f = r->fetcher;
    r->fetcher = NULL;
    if (f)
        sts_fetcher_free(f);
    /* Jobs not started yet end at once (job_discover checks the deadline). */
    run_start_jobs(r);
}

/* ---- the run ---- */

static int read_data(run *r, const char *path, sts_log *log)
{
    FILE *fp = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!fp) {
        sts_error(log, "ERROR cannot open --data %s: %s", path, strerror(errno));
        return STS_EIO;
    }
    sts_buf_init(&r->data, STS_SENDER_DATA_MAX);
    char chunk[65536];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        rc = sts_buf_append(&r->data, chunk, n);
    if (!rc && ferror(fp))
        rc = STS_EIO;
    if (fp != stdin)
        fclose(fp);
    if (rc == STS_ETOOBIG)
        sts_error(log, "ERROR --data %s is larger than %d bytes", path, STS_SENDER_DATA_MAX);
    else if (rc)
        sts_error(log, "ERROR reading --data %s: %s", path, sts_strerror(rc));
    if (!rc && !r->data.data)
        rc = sts_buf_append(&r->data, "", 0);
    r->have_data = !rc;
    return rc;
}

void sts_sender_default_helo(char *out, size_t len)
{
    char host[256] = "";
    out[0] = '\0';
    if (gethostname(host, sizeof(host)) != 0)
        return;
    host[sizeof(host) - 1] = '\0';
    if (strchr(host, '.')) {
        snprintf(out, len, "%s", host);
        return;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_flags = AI_CANONNAME}, *ai = NULL;
    if (host[0] && getaddrinfo(host, NULL, &hints, &ai) == 0 && ai && ai->ai_canonname &&
        strchr(ai->ai_canonname, '.'))
        snprintf(out, len, "%s", ai->ai_canonname);
    if (ai)
        freeaddrinfo(ai);
}

/* Our name (EHLO) and the envelope sender: --helo, else the host's FQDN, else "" (an
 * address literal of each connection's local end, smtpc.h); --from, else ststest@ that
 * name (NULL from: smtpc fills in the literal). */
static void run_identity(run *r)
{
    const sts_sender_opts *opts = r->opts;
    if (opts->helo)
        snprintf(r->helo, sizeof(r->helo), "%s", opts->helo);
    else
        sts_sender_default_helo(r->helo, sizeof(r->helo));
    if (opts->from)
        snprintf(r->from, sizeof(r->from), "%s", opts->from);
    else if (r->helo[0])
        snprintf(r->from, sizeof(r->from), "ststest@%s", r->helo);
}

/* check never judges by a cached policy: it discovers afresh. --cache FILE is only read,
 * to report drift; without it check touches no cache at all (not even the default one,
 * whose contents a check must neither depend on nor change). 0 or an exit status. */
static int run_open_drift_cache(run *r)
{
    const sts_sender_opts *opts = r->opts;
    char err[1024] = "";
    if (!opts->cache_file)
        return 0;
    if (sts_cache_open(opts->cache_file, &r->drift_cache, err, sizeof(err))) {
        sts_error(opts->log, "ERROR --cache %s: %s", opts->cache_file, err);
        return STS_EXIT_DATAERR;
    }
    sts_info(opts->log, "MTASTS check: policy cache %s is only read, for drift", opts->cache_file);
    return 0;
}

/* The policy cache (RFC 8461 3.3): --cache FILE must work (65 otherwise); the default
 * one is a convenience, and a run without it is still correct (only without the
 * anti-downgrade memory), so its trouble is a warning. 0 or an exit status. */
static int run_open_cache(run *r)
{
    const sts_sender_opts *opts = r->opts;
    if (opts->no_cache)
        return 0;
    if (opts->check_only)
        return run_open_drift_cache(r);
    char path[4096], err[1024] = "";
    const char *cpath = opts->cache_file;
    int crc = 0;
    if (!cpath) {
        crc = sts_cache_default_path(path, sizeof(path), err, sizeof(err));
        cpath = path;
    }
    if (!crc)
        crc = sts_cache_open(cpath, &r->cache, err, sizeof(err));
    if (crc && opts->cache_file) {
        sts_error(opts->log, "ERROR --cache %s: %s", opts->cache_file, err);
        return STS_EXIT_DATAERR;
    }
    if (crc)
        sts_info(opts->log,
                 "WARNING the default policy cache is unusable, running without a "
                 "cache: %s",
                 err);
    else
        sts_debug(opts->log, "MTASTS policy cache %s", sts_cache_path(r->cache));
    return 0;
}

/* The TLS report store (rptstore.h), as the policy cache: --report-store FILE must
 * work (65 otherwise), trouble with the default one is a warning. 0 or an exit status. */
static int run_open_rptstore(run *r)
{
    const sts_sender_opts *opts = r->opts;
    if (opts->no_report_store)
        return 0;
    char path[4096], err[1024] = "";
    const char *spath = opts->report_store_file;
    int rc = 0;
    if (!spath) {
        rc = sts_rptstore_default_path(path, sizeof(path), err, sizeof(err));
        spath = path;
    }
    if (!rc)
        rc = sts_rptstore_open(spath, &r->rptstore, err, sizeof(err));
    if (rc && opts->report_store_file) {
        sts_error(opts->log, "ERROR --report-store %s: %s", opts->report_store_file, err);
        return STS_EXIT_DATAERR;
    }
    if (rc)
        sts_info(opts->log,
                 "WARNING the default TLS report store is unusable, recording "
                 "no sessions: %s",
                 err);
    else
        sts_debug(opts->log, "TLSRPT report store %s", sts_rptstore_path(r->rptstore));
    return 0;
}

/* The TLS client context, the resolver and the fetcher. 0 or an exit status. */
static int run_open_clients(run *r)
{
    const sts_sender_opts *opts = r->opts;
    sts_log *log = opts->log;
    char err[1024] = "";
    r->ctx = sts_tls_client_ctx(opts->ca_file, 0, err, sizeof(err));
    if (!r->ctx) {
        sts_error(log, "ERROR TLS client context: %s", err);
        return opts->ca_file ? STS_EXIT_DATAERR : STS_EXIT_SOFTWARE;
    }
    if (opts->now)
        sts_tls_ctx_set_time(r->ctx, opts->now);
    /* check reports an MX that speaks only TLS 1.0 or 1.1 (mx-tls-too-old) instead of
     * failing its handshake: it accepts them to see them (job_check_session). */
    if (opts->check_only && sts_tls_ctx_set_versions(r->ctx, TLS1_VERSION, 0)) {
        sts_error(log, "ERROR TLS client context: cannot allow TLS 1.0 for check");
        return STS_EXIT_SOFTWARE;
    }
    double dns_timeout = opts->dns_timeout > 0 ? opts->dns_timeout : STS_SENDER_DNS_TIMEOUT;
    int rc = sts_resolver_new(r->loop, opts->dns, dns_timeout, log, &r->resolver, err, sizeof(err));
    if (rc) {
        sts_error(log, "ERROR resolver: %s", err);
        return rc == STS_EINVAL ? STS_EXIT_USAGE : STS_EXIT_SOFTWARE;
    }
    rc = sts_fetcher_new(r->loop, opts->ca_file, opts->now, log, &r->fetcher, err, sizeof(err));
    if (rc) {
        sts_error(log, "ERROR policy fetcher: %s", err);
        return STS_EXIT_SOFTWARE;
    }
    return 0;
}

/* Everything the jobs share. 0 or an exit status. */
static int run_open(run *r)
{
    const sts_sender_opts *opts = r->opts;
    run_identity(r);
    if (!opts->check_only && opts->data_file && read_data(r, opts->data_file, opts->log))
        return STS_EXIT_DATAERR;
    int status = run_open_cache(r);
    if (!status)
        status = run_open_rptstore(r);
    if (!status)
        status = run_open_clients(r);
    if (status)
        return status;
    size_t n = r->njobs ? r->njobs : 1;
    r->results = calloc(n, sizeof(*r->results));
    r->outcomes = calloc(n, sizeof(*r->outcomes));
    r->verdicts = calloc(n, sizeof(*r->verdicts));
    r->pool = sts_result_pool_new();
    return r->results && r->outcomes && r->verdicts ? 0 : STS_EXIT_SOFTWARE;
}

/* Run every job to its end on the loop. */
static void run_jobs(run *r)
{
    const sts_sender_opts *opts = r->opts;
    r->concurrency = opts->concurrency > 0 ? (size_t)opts->concurrency : SENDER_CONCURRENCY;
    uv_timer_init(r->loop, &r->reap);
    r->reap.data = r;
    uv_timer_init(r->loop, &r->deadline);
    r->deadline.data = r;
    r->timers_on = 1;
    if (opts->deadline > 0) {
        uint64_t ms = (uint64_t)(opts->deadline * 1000.0);
        uv_timer_start(&r->deadline, deadline_cb, ms ? ms : 1, 0);
    }
    if (!r->njobs)
        uv_timer_start(&r->reap, reap_cb, 0, 0);
    run_start_jobs(r);
    uv_run(r->loop, UV_RUN_DEFAULT);
}

/* The JSON result of recipient i when its job never finished (cannot happen but for
 * running out of memory): deferred. NULL when even that cannot be made. */
static json_t *run_unfinished(run *r, size_t i)
{
    sts_error(r->opts->log, "BUG: %s did not finish", r->rcpts[i]);
    r->outcomes[i] = STS_OUTCOME_DEFERRED;
    r->verdicts[i] = STS_VERDICT_FAIL;
    job *j = job_new(r, i);
    if (!j)
        return NULL;
    j->res.outcome = STS_OUTCOME_DEFERRED;
    json_t *o =
        sts_result_json(&j->res, job_disc(j), r->opts->check_only, r->cache != NULL, r->pool);
    job_free(j);
    return o;
}

/* check: 0 when every domain passes, 1 when the worst is warn, 2 when one fails. */
static int run_check_exit(const run *r)
{
    sts_verdict worst = STS_VERDICT_PASS;
    for (size_t i = 0; i < r->njobs; i++)
        if (r->verdicts[i] > worst)
            worst = r->verdicts[i];
    return sts_verdict_exit(worst);
}

/* {"results": [...]} in recipient order (the results move into it), and the exit
 * status. */
static int run_results(run *r, json_t **out)
{
    run_emit(r, 1);
    json_t *results = json_array();
    for (size_t i = r->emitted; i < r->njobs; i++) {
        json_t *o = r->results[i] ? r->results[i] : run_unfinished(r, i);
        r->results[i] = NULL;
        json_array_append_new(results, o);
    }
    *out = json_object();
    json_object_set_new(*out, "results", results);
    if (r->opts->check_only)
        return run_check_exit(r);
    return sts_decide_exit(r->outcomes, r->njobs);
}

/* Release everything; on the error paths the resolver's and fetcher's handles still
 * have to close on the loop. */
static void run_close(run *r)
{
    while (r->jobs)
        job_free(r->jobs); /* none: every job was freed once done */
    for (size_t i = 0; r->results && i < r->njobs; i++)
        json_decref(r->results[i]);
    free(r->results);
    free(r->outcomes);
    free(r->verdicts);
    sts_result_pool_free(r->pool);
    if (r->resolver || r->fetcher || (r->timers_on && !r->torn_down)) {
        if (r->resolver)
            sts_resolver_free(r->resolver);
        if (r->fetcher)
            sts_fetcher_free(r->fetcher);
        if (r->timers_on && !r->torn_down) {
            uv_close((uv_handle_t *)&r->reap, timer_close_cb);
            uv_close((uv_handle_t *)&r->deadline, timer_close_cb);
        }
        uv_run(r->loop, UV_RUN_DEFAULT);
    }
    SSL_CTX_free(r->ctx);
    sts_cache_close(r->cache);
    sts_cache_close(r->drift_cache);
    sts_rptstore_close(r->rptstore);
    sts_buf_free(&r->data);
}

int sts_sender_run(uv_loop_t *loop, const sts_sender_opts *opts, char *const *rcpts, size_t nrcpts,
                   json_t **out)
{
    run r;
    memset(&r, 0, sizeof(r));
    r.loop = loop;
    r.opts = opts;
    r.rcpts = rcpts;
    r.njobs = nrcpts;
    *out = NULL;
    int status = run_open(&r);
    if (!status) {
        run_jobs(&r);
        status = run_results(&r, out);
    }
    run_close(&r);
    return status;
}
