/*
 * sender.c - one run of the sender (sender.h): for each recipient, RFC 8461 policy
 * discovery (discover.h: TXT, policy cache, policy host, HTTPS fetch, parse), MX lookup
 * (RFC 5321 5.1, RFC 7505), then per MX in preference order the policy match, the
 * address lookup and an SMTP session per address (smtpc.h), the decisions of decide.h,
 * and at the end the JSON result and a per-MX summary for people.
 *
 * Each recipient is a job, a small state machine on the shared loop:
 *   DISCOVER (discover.h) -> policy applied -> MX -> (MX_ADDR -> SMTP per address)*
 *   -> [every MX refused under a cached enforce policy: the re-check of RFC 8461 5.1
 *   (DISCOVER again), and on a new, different policy the MX list once more] -> DONE
 * Up to opts->concurrency jobs run at once. Jobs never free shared objects from inside
 * their callbacks: the resolver and the fetcher are freed from a zero-delay timer once
 * every job is done, or by the deadline timer (opts->deadline), whose callback is no
 * resolver/fetcher callback either; their pending callbacks then run with a cancelled
 * status and the jobs end as deferred ("time limit").
 *
 * sts_sender_run returns an exit status (sysexits), see sender.h.
 */
#include "sender/sender.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
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
#include "sender/decide.h"
#include "sender/discover.h"
#include "sender/fetch.h"
#include "sender/policy.h"
#include "sender/resolver.h"
#include "sender/smtpc.h"

#define SENDER_CONCURRENCY 8
#define SENDER_MAX_MX 16   /* MX hosts tried per recipient */
#define SENDER_MAX_ADDRS 8 /* addresses tried per MX host */
#define SENDER_MAX_FAILURES 16
#define SENDER_FETCH_TIMEOUT 60.0 /* RFC 8461 3.3: "a reasonable timeout" */

typedef struct mx_entry {
    char host[256];
    unsigned preference;
    int implicit;     /* RFC 5321 5.1: the domain itself, no MX records */
    int policy_match; /* 1/0; -1 when there is no policy */
    char address[INET6_ADDRSTRLEN];
    char addresses[SENDER_MAX_ADDRS][INET6_ADDRSTRLEN]; /* every address connected to */
    size_t naddresses;
    int tried; /* an address lookup or session happened */
    sts_action action;
    sts_result_type failure; /* RFC 8460 result type that matters, or none */
    char detail[512];
    const char *stage;
    int connected;
    int starttls_offered;
    int tls_attempted, tls_up;
    sts_tls_info tls;
    int pipelined;
    int code;
    char enhanced[16];
    char text[STS_SMTPC_TEXT_MAX];
    int plain_retry; /* a plaintext retry followed a failed handshake */
} mx_entry;

typedef enum { J_WAIT, J_DISCOVER, J_MX, J_MX_ADDR, J_SMTP, J_DONE } job_state;

struct run;

typedef struct job {
    struct run *run;
    size_t index;
    const char *arg;     /* the argument as given */
    char recipient[512]; /* send: local@domain; check: "" */
    char domain[256];
    job_state state;
    sts_log *log; /* the run's log, or a child with a prefix */
    /* policy discovery and the RFC 8461 5.1 re-check (discover.h): the policy applied */
    sts_discover *disc; /* NULL until the job starts discovery */
    sts_mode mode;      /* the mode applied: none until a policy says otherwise */
    int tls_required;
    int recheck_retried; /* the MX list was tried again under a re-checked policy */
    sts_result_type failures[SENDER_MAX_FAILURES];
    size_t nfailures;
    char detail[512]; /* why the outcome, for people */
    int aborted;      /* the run's time limit passed */
    /* MX */
    mx_entry mx[SENDER_MAX_MX];
    size_t nmx;
    size_t cur;
    int null_mx;
    int no_such_domain;
    int mx_temp;                          /* MX lookup failed temporarily */
    sts_dns_addr addrs[SENDER_MAX_ADDRS]; /* the current MX's addresses, A then AAAA */
    size_t naddrs, addr_idx;
    struct sockaddr_storage addr;
    sts_smtpc *smtp; /* the session in progress, or NULL */
    sts_buf msg;     /* the generated message (when no --data) */
    const char *rcpt_list[1];
    sts_outcome outcome;
} job;

typedef struct run {
    uv_loop_t *loop;
    const sts_sender_opts *opts;
    sts_resolver *resolver;
    sts_fetcher *fetcher;
    sts_cache *cache; /* NULL: no cache (--no-cache, or the default is unusable) */
    SSL_CTX *ctx;
    job *jobs;
    size_t njobs, next, done;
    size_t concurrency;
    int starting, start_again; /* run_start_jobs is not re-entered (no deep recursion) */
    char helo[256];
    char from[512];
    sts_buf data; /* --data contents */
    int have_data;
    uv_timer_t teardown;
    int teardown_started;
    uv_timer_t deadline;
    int deadline_passed;
} run;

static void job_next_mx(job *j);
static void job_finish(job *j);
static void job_finish_final(job *j);
static void job_mx_lookup(job *j);
static void job_abort(job *j);
static void run_start_jobs(run *r);

/* ---- small helpers ---- */

static void job_add_failure(job *j, sts_result_type type)
{
    if (type == STS_RESULT_NONE)
        return;
    for (size_t i = 0; i < j->nfailures; i++)
        if (j->failures[i] == type)
            return;
    if (j->nfailures < SENDER_MAX_FAILURES)
        j->failures[j->nfailures++] = type;
}

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

/* ---- policy discovery (RFC 8461 3, discover.h) ---- */

/* No discovery ran (the argument was rejected before): no policy, no TXT, no decision. */
static const sts_discovery no_discovery = {.source = STS_POLICY_SOURCE_NONE};

/* What discovery found so far (the policy applied, the TXT id, the cache decision). */
static const sts_discovery *job_disc(const job *j)
{
    return j->disc ? sts_discover_result(j->disc) : &no_discovery;
}

/* The failures and the sentence a discovery step reports become the recipient's. */
static void job_take_findings(job *j, const sts_discovery *d)
{
    for (size_t i = 0; i < d->nfailures; i++)
        job_add_failure(j, d->failures[i]);
    if (d->detail[0])
        snprintf(j->detail, sizeof(j->detail), "%s", d->detail);
}

static void job_apply_policy(job *j)
{
    const sts_sender_opts *o = j->run->opts;
    const sts_discovery *d = job_disc(j);
    j->mode = sts_decide_mode(d->have_policy, d->policy.mode, o->mode);
    j->tls_required = sts_decide_tls_required(j->mode, o->require_tls);
    if (d->have_policy && o->mode != STS_MODE_AUTO)
        sts_info(j->log, "MTASTS mode %s overridden by --mode: applying %s",
                 sts_mode_name(d->policy.mode), sts_mode_name(j->mode));
    sts_info(j->log, "MTASTS applying mode %s%s", sts_mode_name(j->mode),
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
    job_apply_policy(j);
    job_mx_lookup(j);
}

/* ---- RFC 8461 5.1: re-check DNS before giving up under a cached enforce policy ---- */

/* "When a message fails to deliver due to an "enforce" policy, a compliant MTA MUST NOT
 * permanently fail to deliver messages before checking, via DNS, for the presence of an
 * updated policy." We never fail permanently under enforce (we defer), but when every MX
 * was refused under a policy that came from the cache, the policy may simply be stale:
 * look at the TXT record once more within this run (sts_discover_recheck). */
static int job_should_recheck(const job *j)
{
    if (j->run->deadline_passed || !sts_discover_may_recheck(j->disc) ||
        j->mode != STS_MODE_ENFORCE || !j->nmx)
        return 0;
    size_t tried = 0;
    for (size_t i = 0; i < j->nmx; i++) {
        if (!j->mx[i].tried)
            continue;
        tried++;
        if (j->mx[i].action != STS_ACTION_REFUSED)
            return 0;
    }
    return tried > 0;
}

/* The re-check is over: the message stays deferred, or the MX list is tried again
 * under the new policy. */
static void rechecked_cb(const sts_discovery *d, void *arg)
{
    job *j = arg;
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
        job_finish_final(j);
        return;
    case STS_RECHECK_NOT_FETCHED:
    case STS_RECHECK_SAME:
        sts_info(j->log, "MTASTS re-check: %s: the message stays deferred",
                 d->recheck == STS_RECHECK_NOT_FETCHED ? "no new policy could be fetched"
                                                       : "the new policy says the same");
        job_finish_final(j);
        return;
    case STS_RECHECK_CHANGED:
        break;
    default: /* out of memory, or cancelled (cannot happen: only the deadline cancels) */
        if (d->cancelled)
            job_abort(j);
        else
            job_finish_final(j);
        return;
    }
    sts_info(j->log,
             "MTASTS re-check: the new policy id=%s differs: retrying the MX list "
             "under it",
             d->policy_id);
    j->recheck_retried = 1;
    job_apply_policy(j);
    for (size_t i = 0; i < j->nmx; i++) {
        mx_entry *m = &j->mx[i];
        mx_entry fresh;
        memset(&fresh, 0, sizeof(fresh));
        snprintf(fresh.host, sizeof(fresh.host), "%s", m->host);
        fresh.preference = m->preference;
        fresh.implicit = m->implicit;
        *m = fresh;
    }
    j->cur = 0;
    job_next_mx(j);
}

static void job_recheck_start(job *j)
{
    sts_info(j->log,
             "MTASTS every MX was refused under the CACHED enforce policy id=%s: "
             "re-checking _mta-sts.%s for an updated policy (RFC 8461 5.1)",
             job_disc(j)->policy_id, j->domain);
    j->state = J_DISCOVER;
    int rc = sts_discover_recheck(j->disc, rechecked_cb, j);
    if (rc) {
        sts_info(j->log, "MTASTS re-check could not start: %s", sts_strerror(rc));
        job_finish_final(j);
    }
}

/* ---- MX (RFC 5321 5.1, RFC 7505) ---- */

static void mx_cb(const sts_dns_mx_result *res, void *arg)
{
    job *j = arg;
    if (job_deadline(j))
        return;
    if (res->status == STS_DNS_OK && res->null_mx) {
        sts_info(j->log, "DNS %s MX -> 0 . (null MX, RFC 7505: the domain accepts no mail)",
                 res->name);
        j->null_mx = 1;
        snprintf(j->detail, sizeof(j->detail), "null MX: %s accepts no mail (RFC 7505)", j->domain);
        job_finish(j);
        return;
    }
    if (res->status == STS_DNS_OK) {
        for (size_t i = 0; i < res->n && j->nmx < SENDER_MAX_MX; i++) {
            mx_entry *m = &j->mx[j->nmx++];
            snprintf(m->host, sizeof(m->host), "%s", res->mx[i].host);
            m->preference = res->mx[i].preference;
            sts_info(j->log, "DNS %s MX -> %u %s", res->name, m->preference, m->host);
        }
        if (res->n > SENDER_MAX_MX)
            sts_info(j->log, "MX only the first %d of %zu hosts are tried", SENDER_MAX_MX, res->n);
    } else if (res->status == STS_DNS_NODATA) {
        /* RFC 5321 5.1: no MX records: the domain itself is the implicit MX. */
        sts_info(j->log, "DNS %s MX -> NODATA: implicit MX %s", res->name, j->domain);
        mx_entry *m = &j->mx[j->nmx++];
        snprintf(m->host, sizeof(m->host), "%s", j->domain);
        m->preference = 0;
        m->implicit = 1;
    } else {
        char why[400];
        sts_dns_failure_text(res->name, "MX", res->status, res->detail, why, sizeof(why));
        sts_info(j->log, "DNS %s", why);
        if (res->status == STS_DNS_NXDOMAIN) {
            j->no_such_domain = 1;
            snprintf(j->detail, sizeof(j->detail), "domain %s does not exist: %s", j->domain, why);
        } else {
            j->mx_temp = 1;
            snprintf(j->detail, sizeof(j->detail), "%s", why);
        }
        job_finish(j);
        return;
    }
    j->cur = 0;
    job_next_mx(j);
}

static void job_mx_lookup(job *j)
{
    j->state = J_MX;
    int rc = sts_resolver_query_mx(j->run->resolver, j->domain, mx_cb, j);
    if (rc) {
        snprintf(j->detail, sizeof(j->detail), "MX lookup could not start: %s", sts_strerror(rc));
        j->mx_temp = 1;
        job_finish(j);
    }
}

/* ---- per MX: addresses, SMTP sessions ---- */

static void smtp_done_cb(sts_smtpc *s, void *arg);
static void job_connect_addr(job *j);

static void job_start_smtp(job *j, int no_starttls)
{
    mx_entry *m = &j->mx[j->cur];
    run *r = j->run;
    const sts_sender_opts *o = r->opts;
    sts_smtpc_params p = {
        .addr = (const struct sockaddr *)&j->addr,
        .host = m->host,
        .helo = r->helo,
        .from = r->from,
        .rcpts = j->rcpt_list,
        .nrcpts = o->check_only ? 0 : 1,
        .msg = r->have_data ? r->data.data : j->msg.data,
        .msglen = r->have_data ? r->data.len : j->msg.len,
        .ssl_ctx = r->ctx,
        .tls_required = j->tls_required,
        .check_only = o->check_only,
        .no_starttls = no_starttls,
        .log = j->log,
    };
    sts_smtpc_timeouts_init(&p.timeouts, o->timeout);
    j->state = J_SMTP;
    int rc = sts_smtpc_start(r->loop, &p, smtp_done_cb, j, &j->smtp);
    if (rc) {
        j->smtp = NULL;
        m->action = STS_ACTION_TEMPFAIL;
        snprintf(m->detail, sizeof(m->detail), "SMTP session could not start: %s",
                 sts_strerror(rc));
        j->cur++;
        job_next_mx(j);
    }
}

static void smtp_done_cb(sts_smtpc *s, void *arg)
{
    job *j = arg;
    mx_entry *m = &j->mx[j->cur];
    const sts_smtpc_result *res = sts_smtpc_get_result(s);
    int relevant = j->mode != STS_MODE_NONE || j->tls_required;

    j->smtp = NULL;
    m->action = res->action;
    /* A testing-mode mismatch recorded before connecting stays the MX's failure. */
    if (m->failure == STS_RESULT_NONE && relevant)
        m->failure = res->failure;
    snprintf(m->detail, sizeof(m->detail), "%s", res->detail);
    m->stage = sts_smtpc_state_name(res->stage);
    m->connected |= res->connected;
    if (!m->plain_retry || res->tls_attempted) {
        m->starttls_offered = res->starttls_offered;
        m->tls_attempted = res->tls_attempted;
        m->tls_up = res->tls_up;
        m->tls = res->tls;
    }
    m->pipelined = res->pipelined;
    m->code = res->code;
    snprintf(m->enhanced, sizeof(m->enhanced), "%s", res->enhanced);
    snprintf(m->text, sizeof(m->text), "%s", res->text);
    int retry = res->retry_plain && !m->plain_retry;
    int in_transaction = res->stage == STS_SMTPC_MAIL || res->stage == STS_SMTPC_RCPT ||
                         res->stage == STS_SMTPC_DATA || res->stage == STS_SMTPC_BODY;
    int connect_failed = !res->connected && res->stage == STS_SMTPC_CONNECT;
    sts_action act = res->action;
    sts_result_type res_failure = res->failure;
    sts_smtpc_free(s); /* done_cb is the session's last act */

    if (relevant) {
        /* Both a testing-mode mismatch and the session's own failure are reported. */
        job_add_failure(j, m->failure);
        job_add_failure(j, res_failure);
    }
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
        job_start_smtp(j, 1);
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
    if (!sts_decide_try_next_mx(act, in_transaction) || j->cur + 1 >= j->nmx) {
        job_finish(j);
        return;
    }
    j->cur++;
    job_next_mx(j);
}

/* Connect to the current MX's address j->addrs[j->addr_idx]. */
static void job_connect_addr(job *j)
{
    mx_entry *m = &j->mx[j->cur];
    run *r = j->run;
    const sts_dns_addr *a = &j->addrs[j->addr_idx];
    /* Through a local copy: the address text and the MX entry both live in *j, and
     * GCC's -Wrestrict cannot tell that they never overlap. */
    char text[sizeof(a->text)];
    memcpy(text, a->text, sizeof(text));
    text[sizeof(text) - 1] = '\0';
    snprintf(m->address, sizeof(m->address), "%s", text);
    if (m->naddresses < SENDER_MAX_ADDRS)
        snprintf(m->addresses[m->naddresses++], sizeof(m->addresses[0]), "%s", text);
    memcpy(&j->addr, &a->sa, sizeof(a->sa));
    int port = r->opts->smtp_port ? r->opts->smtp_port : 25;
    if (a->family == AF_INET6)
        ((struct sockaddr_in6 *)&j->addr)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&j->addr)->sin_port = htons((uint16_t)port);
    job_start_smtp(j, 0);
}

static void mx_addr_cb(const sts_dns_addr_result *res, void *arg)
{
    job *j = arg;
    if (job_deadline(j))
        return;
    mx_entry *m = &j->mx[j->cur];
    if (res->status != STS_DNS_OK || !res->n) {
        char why[400];
        sts_dns_failure_text(res->name, "A/AAAA", res->status, res->detail, why, sizeof(why));
        sts_info(j->log, "DNS %s", why);
        m->action = STS_ACTION_TEMPFAIL;
        m->stage = "DNS";
        snprintf(m->detail, sizeof(m->detail), "no address: %s", why);
        if (m->implicit && !sts_dns_status_is_temporary(res->status)) {
            /* RFC 5321 5.1: no MX and no address records: the domain cannot receive. */
            j->no_such_domain = 1;
            snprintf(j->detail, sizeof(j->detail), "%s has neither MX nor address records",
                     j->domain);
        }
        j->cur++;
        job_next_mx(j);
        return;
    }
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
        m->action = STS_ACTION_TEMPFAIL;
        m->stage = "DNS";
        snprintf(m->detail, sizeof(m->detail), "%s", why);
        j->cur++;
        job_next_mx(j);
        return;
    }
    j->addr_idx = 0;
    job_connect_addr(j);
}

/* Take the next MX in preference order: policy match, then its addresses. */
static void job_next_mx(job *j)
{
    if (job_deadline(j))
        return;
    while (j->cur < j->nmx) {
        mx_entry *m = &j->mx[j->cur];
        m->tried = 1;
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
        int go = sts_decide_mx_connect(j->mode, m->policy_match != 0, &failure);
        if (failure != STS_RESULT_NONE) {
            m->failure = failure;
            job_add_failure(j, failure);
        }
        if (!go) {
            /* RFC 8461 4.1 / 5: under enforce an MX outside the policy is not contacted. */
            m->action = STS_ACTION_REFUSED;
            m->stage = "POLICY";
            snprintf(m->detail, sizeof(m->detail),
                     "MX does not match the policy's mx patterns: not contacted");
            sts_info(j->log, "MX %s refused: not in the policy (enforce)", m->host);
            j->cur++;
            continue;
        }
        j->state = J_MX_ADDR;
        int rc = sts_resolver_query_addr(j->run->resolver, m->host, mx_addr_cb, j);
        if (rc) {
            m->action = STS_ACTION_TEMPFAIL;
            snprintf(m->detail, sizeof(m->detail), "address lookup could not start: %s",
                     sts_strerror(rc));
            j->cur++;
            continue;
        }
        return;
    }
    job_finish(j);
}

/* ---- the end of a job ---- */

static const char *yes_no(int v)
{
    return v ? "yes" : "no";
}

/* The per-MX matrix people read at the end (send and check alike). */
static void job_summary(job *j)
{
    sts_log *log = j->log;
    sts_info(log, "RESULT %s: %s (policy %s, mode %s%s)", j->arg, sts_outcome_name(j->outcome),
             sts_policy_source_name(job_disc(j)->source), sts_mode_name(j->mode),
             j->tls_required ? ", TLS required" : "");
    if (j->detail[0] && j->outcome != STS_OUTCOME_DELIVERED)
        sts_info(log, "RESULT detail: %s", j->detail);
    int any = 0;
    for (size_t i = 0; i < j->nmx; i++)
        any |= j->mx[i].tried;
    if (any)
        sts_info(log, "%-28s %4s %-7s %-8s %-8s %-7s %-7s %-6s %-9s", "MX", "pref", "connect",
                 "starttls", "tls", "trusted", "name-ok", "policy", "result");
    for (size_t i = 0; i < j->nmx; i++) {
        const mx_entry *m = &j->mx[i];
        if (!m->tried)
            continue;
        sts_info(log, "%-28s %4u %-7s %-8s %-8s %-7s %-7s %-6s %-9s", m->host, m->preference,
                 yes_no(m->connected), yes_no(m->starttls_offered),
                 m->tls_up ? m->tls.version : "no",
                 m->tls_up ? yes_no(m->tls.chain_ok && m->tls.time_ok) : "-",
                 m->tls_up ? yes_no(m->tls.name_ok) : "-",
                 m->policy_match < 0 ? "-" : (m->policy_match ? "match" : "NO"),
                 sts_action_name(m->action));
    }
    if (j->nfailures) {
        char buf[512];
        size_t off = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < j->nfailures && off < sizeof(buf); i++)
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", i ? " " : "",
                                    sts_result_type_name(j->failures[i]));
        sts_info(log, "RESULT failures: %s", buf);
    }
}

static void teardown_close_cb(uv_handle_t *h)
{
    (void)h;
}

static void teardown_cb(uv_timer_t *t)
{
    run *r = t->data;
    /* Outside every resolver/fetcher callback: safe to free them here. */
    if (r->resolver)
        sts_resolver_free(r->resolver);
    r->resolver = NULL;
    if (r->fetcher)
        sts_fetcher_free(r->fetcher);
    r->fetcher = NULL;
    uv_close((uv_handle_t *)&r->teardown, teardown_close_cb);
    uv_close((uv_handle_t *)&r->deadline, teardown_close_cb);
}

/* The MX list is done: maybe re-check the policy (RFC 8461 5.1), else finish. */
static void job_finish(job *j)
{
    if (job_should_recheck(j)) {
        job_recheck_start(j);
        return;
    }
    job_finish_final(j);
}

static void job_finish_final(job *j)
{
    if (j->state == J_DONE)
        return;
    sts_action actions[SENDER_MAX_MX];
    for (size_t i = 0; i < j->nmx; i++)
        actions[i] = j->mx[i].action;
    sts_outcome_facts f = {
        .actions = actions,
        .nactions = j->nmx,
        .mode = j->mode,
        .require_tls = j->tls_required,
        .null_mx = j->null_mx,
        .no_such_domain = j->no_such_domain,
    };
    j->outcome = sts_decide_outcome(&f);
    if (j->aborted && j->outcome != STS_OUTCOME_DELIVERED) {
        /* The run's time limit: whatever was pending is left for a later try. */
        j->outcome = STS_OUTCOME_DEFERRED;
        snprintf(j->detail, sizeof(j->detail), "%s", STS_DETAIL_TIME_LIMIT);
    } else if (!j->detail[0] || j->outcome == STS_OUTCOME_DELIVERED) {
        for (size_t i = j->nmx; i-- > 0;)
            if (j->mx[i].tried && j->mx[i].detail[0]) {
                snprintf(j->detail, sizeof(j->detail), "%.200s: %.300s", j->mx[i].host,
                         j->mx[i].detail);
                break;
            }
    }
    j->state = J_DONE;
    job_summary(j);
    run *r = j->run;
    r->done++;
    run_start_jobs(r);
    if (r->done == r->njobs && !r->teardown_started) {
        r->teardown_started = 1;
        uv_timer_start(&r->teardown, teardown_cb, 0, 0);
    }
}

/* The run's deadline passed while j was waiting for something (or never started). */
static void job_abort(job *j)
{
    if (j->state == J_DONE)
        return;
    j->aborted = 1;
    if (j->cur < j->nmx && j->mx[j->cur].tried && j->mx[j->cur].action == STS_ACTION_NONE) {
        mx_entry *m = &j->mx[j->cur];
        m->action = STS_ACTION_TEMPFAIL;
        m->stage = j->state == J_MX_ADDR ? "DNS" : m->stage;
        snprintf(m->detail, sizeof(m->detail), "%s", STS_DETAIL_TIME_LIMIT);
    }
    sts_info(j->log, "ABORTED %s: time limit reached", j->arg);
    job_finish_final(j);
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
    for (size_t i = 0; i < r->njobs; i++)
        if (r->jobs[i].smtp)
            sts_smtpc_abort(r->jobs[i].smtp, STS_DETAIL_TIME_LIMIT);
    /* Pending DNS queries and fetches call back inside these calls, cancelled; the
     * callbacks see deadline_passed (discovery: its cancel mark) and end their jobs. */
    for (size_t i = 0; i < r->njobs; i++)
        sts_discover_cancel(r->jobs[i].disc);
    sts_resolver *res = r->resolver;
    r->resolver = NULL;
    if (res)
        sts_resolver_free(res);
    sts_fetcher *f = r->fetcher;
    r->fetcher = NULL;
    if (f)
        sts_fetcher_free(f);
    /* Jobs not started yet end at once (job_start checks the deadline). */
    run_start_jobs(r);
}
/* ---- starting a job ---- */

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
                           r->from, j->recipient, date, id, r->helo);
}

/* Split the argument: send takes local@domain (the last "@"), check a domain (a
 * local@domain is accepted too). 0 or STS_EINVAL with j->detail set. */
static int job_parse_arg(job *j, int check)
{
    const char *a = j->arg;
    const char *at = strrchr(a, '@');
    const char *dom = at ? at + 1 : a;
    if (!check && (!at || at == a)) {
        snprintf(j->detail, sizeof(j->detail), "'%s' is not an address (local@domain)", a);
        return STS_EINVAL;
    }
    size_t n = strlen(dom);
    if (n && dom[n - 1] == '.')
        n--;
    if (!n || n >= sizeof(j->domain)) {
        snprintf(j->detail, sizeof(j->detail), "'%s' has no valid domain", a);
        return STS_EINVAL;
    }
    memcpy(j->domain, dom, n);
    j->domain[n] = '\0';
    lower(j->domain);
    for (const char *p = j->domain; *p; p++)
        if (!(isalnum((unsigned char)*p) || *p == '-' || *p == '.' || *p == '_')) {
            snprintf(j->detail, sizeof(j->detail), "'%s': invalid character '%c' in domain", a, *p);
            return STS_EINVAL;
        }
    if (!check) {
        if (strlen(a) >= sizeof(j->recipient) || strchr(a, '<') || strchr(a, '>') ||
            strpbrk(a, " \r\n\t")) {
            snprintf(j->detail, sizeof(j->detail), "'%s' is not a valid address", a);
            return STS_EINVAL;
        }
        snprintf(j->recipient, sizeof(j->recipient), "%s", a);
    }
    return 0;
}

static void job_start(job *j)
{
    run *r = j->run;
    j->state = J_DISCOVER;
    if (job_deadline(j))
        return;
    if (job_parse_arg(j, r->opts->check_only)) {
        sts_info(j->log, "ERROR %s", j->detail);
        j->no_such_domain = 1; /* a bad address is a permanent failure */
        job_finish(j);
        return;
    }
    j->rcpt_list[0] = j->recipient;
    if (!r->opts->check_only && !r->have_data && job_make_message(j)) {
        snprintf(j->detail, sizeof(j->detail), "out of memory");
        job_finish(j);
        return;
    }
    sts_discover_params dp = {
        .loop = r->loop,
        .domain = j->domain,
        .resolver = r->resolver,
        .fetcher = r->fetcher,
        .cache = r->cache,
        .https_port = r->opts->https_port,
        .fetch_timeout = SENDER_FETCH_TIMEOUT,
        .now = r->opts->now,
        .log = j->log,
    };
    int rc = sts_discover_new(&dp, &j->disc);
    if (rc) {
        snprintf(j->detail, sizeof(j->detail), "policy discovery could not start: %s",
                 sts_strerror(rc));
        job_finish(j);
        return;
    }
    sts_info(j->log, "%s %s", r->opts->check_only ? "CHECK" : "SEND",
             r->opts->check_only ? j->domain : j->recipient);
    /* RFC 8461 3: TXT, cache, fetch; discovered_cb goes on with the MX list. */
    sts_discover_start(j->disc, discovered_cb, j);
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
            job *j = &r->jobs[r->next++];
            job_start(j);
        }
    } while (r->start_again);
    r->starting = 0;
}

/* ---- JSON ---- */

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *mx_json(const mx_entry *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "host", json_string(m->host));
    json_object_set_new(o, "preference", json_integer(m->preference));
    json_object_set_new(o, "implicit", json_boolean(m->implicit));
    json_object_set_new(o, "address", str_or_null(m->address));
    json_t *addrs = json_array();
    for (size_t i = 0; i < m->naddresses; i++)
        json_array_append_new(addrs, json_string(m->addresses[i]));
    json_object_set_new(o, "addresses", addrs);
    json_object_set_new(o, "policy_match",
                        m->policy_match < 0 ? json_null() : json_boolean(m->policy_match));
    json_object_set_new(o, "connected", json_boolean(m->connected));
    json_object_set_new(o, "starttls", json_boolean(m->starttls_offered));
    if (m->tls_attempted) {
        json_t *t = json_object();
        const sts_tls_info *ti = &m->tls;
        json_object_set_new(t, "handshake", json_boolean(m->tls_up));
        json_object_set_new(t, "version", str_or_null(m->tls_up ? ti->version : NULL));
        json_object_set_new(t, "cipher", str_or_null(m->tls_up ? ti->cipher : NULL));
        json_object_set_new(t, "verified", json_boolean(m->tls_up && ti->verified));
        json_object_set_new(t, "chain_ok", json_boolean(ti->chain_ok));
        json_object_set_new(t, "time_ok", json_boolean(ti->time_ok));
        json_object_set_new(t, "name_ok", json_boolean(ti->name_ok));
        json_object_set_new(t, "sni", str_or_null(ti->sni));
        json_t *names = json_array();
        for (size_t i = 0; i < ti->npeer_names; i++)
            json_array_append_new(names, json_string(ti->peer_names[i]));
        json_object_set_new(t, "peer_names", names);
        json_object_set_new(t, "not_before", str_or_null(ti->not_before));
        json_object_set_new(t, "not_after", str_or_null(ti->not_after));
        json_object_set_new(
            t, "result_type",
            str_or_null(m->tls_up && !ti->verified ? sts_result_type_name(ti->result_type) : NULL));
        json_object_set_new(t, "verify_error", str_or_null(ti->verify_error_str));
        json_object_set_new(t, "error", str_or_null(ti->error));
        json_object_set_new(o, "tls", t);
    } else {
        json_object_set_new(o, "tls", json_null());
    }
    json_object_set_new(o, "plain_retry", json_boolean(m->plain_retry));
    json_object_set_new(o, "pipelined", json_boolean(m->pipelined));
    json_object_set_new(o, "action", json_string(sts_action_name(m->action)));
    json_object_set_new(o, "failure", str_or_null(sts_result_type_name(m->failure)));
    json_object_set_new(o, "stage", str_or_null(m->stage));
    json_object_set_new(o, "detail", str_or_null(m->detail));
    if (m->code) {
        json_t *s = json_object();
        json_object_set_new(s, "code", json_integer(m->code));
        json_object_set_new(s, "enhanced", str_or_null(m->enhanced));
        json_object_set_new(s, "text", json_string(m->text));
        json_object_set_new(o, "smtp", s);
    } else {
        json_object_set_new(o, "smtp", json_null());
    }
    return o;
}

static json_t *time_or_null(time_t t)
{
    if (!t)
        return json_null();
    char s[32];
    sts_time_iso8601(t, s, sizeof(s));
    return json_string(s);
}

static json_t *job_json(const job *j, int check, int cache_on)
{
    json_t *o = json_object();
    json_object_set_new(o, "recipient", check ? json_null() : json_string(j->arg));
    json_object_set_new(o, "argument", json_string(j->arg));
    json_object_set_new(o, "command", json_string(check ? "check" : "send"));
    json_object_set_new(o, "domain", json_string(j->domain));
    json_object_set_new(o, "outcome", json_string(sts_outcome_name(j->outcome)));
    json_object_set_new(o, "detail", str_or_null(j->detail));
    json_object_set_new(o, "tls_required", json_boolean(j->tls_required));
    const sts_discovery *d = job_disc(j);

    json_t *p = json_object();
    json_object_set_new(p, "source", json_string(sts_policy_source_name(d->source)));
    json_object_set_new(p, "mode", json_string(sts_mode_name(j->mode)));
    json_object_set_new(p, "policy_mode",
                        d->have_policy ? json_string(sts_mode_name(d->policy.mode)) : json_null());
    json_object_set_new(p, "id",
                        str_or_null(d->have_policy ? d->policy_id
                                    : d->have_txt  ? d->txt_id
                                                   : NULL));
    json_object_set_new(p, "txt_id", str_or_null(d->have_txt ? d->txt_id : NULL));
    json_object_set_new(p, "max_age",
                        d->have_policy ? json_integer(d->policy.max_age) : json_null());
    json_t *mxp = json_array();
    for (size_t i = 0; d->have_policy && i < d->policy.nmx; i++)
        json_array_append_new(mxp, json_string(d->policy.mx[i]));
    json_object_set_new(p, "mx", mxp);
    json_object_set_new(o, "policy", p);

    json_t *c = json_object();
    json_object_set_new(c, "enabled", json_boolean(cache_on));
    json_object_set_new(c, "decision",
                        d->decided ? json_string(sts_cache_decision_name(d->decision))
                                   : json_null());
    json_object_set_new(c, "fetched_at", time_or_null(d->have_policy ? d->fetched_at : 0));
    json_object_set_new(c, "expires_at",
                        d->have_policy ? time_or_null(d->expires_at) : json_null());
    json_object_set_new(o, "cache", c);
    if (d->rechecked) {
        /* RFC 8461 5.1: the re-check after every MX was refused under a cached policy. */
        json_t *rc = json_object();
        json_object_set_new(rc, "txt_id", str_or_null(d->recheck_id));
        json_object_set_new(rc, "changed", json_boolean(d->recheck_changed));
        json_object_set_new(rc, "fetched", json_boolean(d->recheck_fetched));
        json_object_set_new(rc, "retried", json_boolean(j->recheck_retried));
        json_object_set_new(o, "recheck", rc);
    } else {
        json_object_set_new(o, "recheck", json_null());
    }

    json_object_set_new(o, "null_mx", json_boolean(j->null_mx));
    json_t *mx = json_array();
    for (size_t i = 0; i < j->nmx; i++)
        if (j->mx[i].tried)
            json_array_append_new(mx, mx_json(&j->mx[i]));
    json_object_set_new(o, "mx", mx);
    json_t *fl = json_array();
    for (size_t i = 0; i < j->nfailures; i++)
        json_array_append_new(fl, json_string(sts_result_type_name(j->failures[i])));
    json_object_set_new(o, "failures", fl);
    return o;
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

int sts_sender_run(uv_loop_t *loop, const sts_sender_opts *opts, char *const *rcpts, size_t nrcpts,
                   json_t **out)
{
    sts_log *log = opts->log;
    run r;
    memset(&r, 0, sizeof(r));
    r.loop = loop;
    r.opts = opts;
    *out = NULL;
    int status = STS_EXIT_SOFTWARE;
    char err[1024] = "";

    if (opts->helo) {
        snprintf(r.helo, sizeof(r.helo), "%s", opts->helo);
    } else if (gethostname(r.helo, sizeof(r.helo)) != 0 || !r.helo[0]) {
        snprintf(r.helo, sizeof(r.helo), "localhost");
    }
    r.helo[sizeof(r.helo) - 1] = '\0';
    if (opts->from)
        snprintf(r.from, sizeof(r.from), "%s", opts->from);
    else
        snprintf(r.from, sizeof(r.from), "ststest@%s", r.helo);

    if (!opts->check_only && opts->data_file && read_data(&r, opts->data_file, log)) {
        sts_buf_free(&r.data);
        return STS_EXIT_DATAERR;
    }

    /* The policy cache (RFC 8461 3.3): --cache FILE must work (65 otherwise); the
     * default one is a convenience, and a run without it is still correct (only
     * without the anti-downgrade memory), so its trouble is a warning. */
    if (!opts->no_cache) {
        char path[4096];
        const char *cpath = opts->cache_file;
        int crc = 0;
        if (!cpath) {
            crc = sts_cache_default_path(path, sizeof(path), err, sizeof(err));
            cpath = path;
        }
        if (!crc)
            crc = sts_cache_open(cpath, &r.cache, err, sizeof(err));
        if (crc && opts->cache_file) {
            sts_error(log, "ERROR --cache %s: %s", opts->cache_file, err);
            sts_buf_free(&r.data);
            return STS_EXIT_DATAERR;
        }
        if (crc)
            sts_info(log,
                     "WARNING the default policy cache is unusable, running without a "
                     "cache: %s",
                     err);
        else
            sts_debug(log, "MTASTS policy cache %s", sts_cache_path(r.cache));
    }

    r.ctx = sts_tls_client_ctx(opts->ca_file, 0, err, sizeof(err));
    if (!r.ctx) {
        sts_error(log, "ERROR TLS client context: %s", err);
        sts_buf_free(&r.data);
        sts_cache_close(r.cache);
        return opts->ca_file ? STS_EXIT_DATAERR : STS_EXIT_SOFTWARE;
    }
    if (opts->now)
        sts_tls_ctx_set_time(r.ctx, opts->now);

    double dns_timeout = opts->dns_timeout > 0 ? opts->dns_timeout : STS_SENDER_DNS_TIMEOUT;
    int rc = sts_resolver_new(loop, opts->dns, dns_timeout, log, &r.resolver, err, sizeof(err));
    if (rc) {
        sts_error(log, "ERROR resolver: %s", err);
        status = rc == STS_EINVAL ? STS_EXIT_USAGE : STS_EXIT_SOFTWARE;
        goto out;
    }
    rc = sts_fetcher_new(loop, opts->ca_file, opts->now, log, &r.fetcher, err, sizeof(err));
    if (rc) {
        sts_error(log, "ERROR policy fetcher: %s", err);
        goto out;
    }

    r.jobs = calloc(nrcpts ? nrcpts : 1, sizeof(*r.jobs));
    if (!r.jobs)
        goto out;
    r.njobs = nrcpts;
    r.concurrency = opts->concurrency > 0 ? (size_t)opts->concurrency : SENDER_CONCURRENCY;
    for (size_t i = 0; i < nrcpts; i++) {
        job *j = &r.jobs[i];
        j->run = &r;
        j->index = i;
        j->arg = rcpts[i];
        j->mode = STS_MODE_NONE; /* until discovery: no policy, RFC 8461 5 */
        if (nrcpts > 1 && log) {
            char prefix[300];
            snprintf(prefix, sizeof(prefix), "%.250s: ", rcpts[i]);
            j->log = sts_log_new_child(log, prefix);
        }
        if (!j->log)
            j->log = log;
    }
    uv_timer_init(loop, &r.teardown);
    r.teardown.data = &r;
    uv_timer_init(loop, &r.deadline);
    r.deadline.data = &r;
    if (opts->deadline > 0) {
        uint64_t ms = (uint64_t)(opts->deadline * 1000.0);
        uv_timer_start(&r.deadline, deadline_cb, ms ? ms : 1, 0);
    }
    if (!nrcpts) {
        r.teardown_started = 1;
        uv_timer_start(&r.teardown, teardown_cb, 0, 0);
    }
    run_start_jobs(&r);
    uv_run(loop, UV_RUN_DEFAULT);

    sts_outcome *outcomes = calloc(nrcpts ? nrcpts : 1, sizeof(*outcomes));
    json_t *results = json_array();
    for (size_t i = 0; i < nrcpts; i++) {
        job *j = &r.jobs[i];
        if (j->state != J_DONE) {
            /* Cannot happen: the loop ran until every job finished. */
            sts_error(log, "BUG: %s did not finish", j->arg);
            j->outcome = STS_OUTCOME_DEFERRED;
        }
        if (outcomes)
            outcomes[i] = j->outcome;
        json_array_append_new(results, job_json(j, opts->check_only, r.cache != NULL));
    }
    status = outcomes ? sts_decide_exit(outcomes, nrcpts) : STS_EXIT_SOFTWARE;
    free(outcomes);
    *out = json_object();
    json_object_set_new(*out, "results", results);

out:
    if (r.jobs) {
        for (size_t i = 0; i < r.njobs; i++) {
            job *j = &r.jobs[i];
            sts_discover_free(j->disc);
            sts_buf_free(&j->msg);
            if (j->log && j->log != log)
                sts_log_free(j->log);
        }
        free(r.jobs);
        uv_run(loop, UV_RUN_DEFAULT); /* the discoveries' timers close */
    }
    if (r.resolver || r.fetcher) {
        /* Only on the error paths: the teardown timer did not run. */
        if (r.resolver)
            sts_resolver_free(r.resolver);
        if (r.fetcher)
            sts_fetcher_free(r.fetcher);
        uv_run(loop, UV_RUN_DEFAULT);
    }
    SSL_CTX_free(r.ctx);
    sts_cache_close(r.cache);
    sts_buf_free(&r.data);
    return status;
}
