/*
 * discover.c - MTA-STS policy discovery for one policy domain (discover.h): TXT lookup
 * (RFC 8461 3.1), cache load and decision (cache.h), policy host address lookup, HTTPS
 * fetch and parse (3.3), cache update, and the re-check of 5.1.
 *
 * One discovery is a small chain of continuations on the caller's loop:
 *   TXT -> cache decision -> [POLICY HOST A/AAAA -> FETCH -> parse, cache put]
 *   -> sts_cache_resolve -> the callback
 * and for the re-check: TXT -> (same id or no record: done) -> the chain above -> done.
 * Every resolver, fetcher and timer callback first looks at the cancel mark. When the
 * TXT query cannot start, the chain goes on from a zero-delay timer (d->defer) instead,
 * so that the callback never runs inside sts_discover_start.
 *
 * Functions return 0 or a negative code from common/err.h (see discover.h).
 */
#include "sender/discover.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/err.h"

/* RFC 1035 2.3.4: 255 octets at most (the cache itself takes 253: cache.h). */
#define DISCOVER_DOMAIN_MAX 255

struct sts_discover {
    uv_timer_t defer; /* zero-delay: the step goes on outside sts_discover_start */
    char domain[DISCOVER_DOMAIN_MAX + 1];
    sts_discover_params p; /* as given, but p.domain points to domain above */

    sts_discovery res;  /* the public outcome */
    int started;        /* sts_discover_start ran */
    int running;        /* a step is under way: its callback is still to come */
    int rechecking;     /* the step under way is the re-check */
    int cancelled;      /* sts_discover_cancel */
    sts_discover_cb cb; /* of the step under way */
    void *arg;

    sts_cache_txt txt_kind; /* RFC 8461 3.1: what the last TXT lookup said */
    uint64_t addr_t0;       /* uv_hrtime() when the policy host's lookup started */
    int have_centry;        /* the domain's cache entry (RFC 8461 3.3, 5.1, 10.2) */
    sts_cache_entry centry;
    sts_policy_source apply;
    int have_fpolicy; /* a policy was just fetched and parsed */
    sts_policy fpolicy;
    int have_old_policy; /* the policy applied before the re-check's new one */
    sts_policy old_policy;
};

/* ---- small helpers ---- */

static void add_failure(sts_discover *d, sts_result_type type)
{
    sts_discovery *r = &d->res;
    for (size_t i = 0; i < r->nfailures; i++)
        if (r->failures[i] == type)
            return;
    if (r->nfailures < STS_DISCOVER_MAX_FAILURES)
        r->failures[r->nfailures++] = type;
}

/* Printable, quoted rendering of a TXT record for the transcript. */
static void quote_bytes(const char *p, size_t n, char *out, size_t outlen)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 5 < outlen; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20 || c > 0x7e) {
            o += (size_t)snprintf(out + o, outlen - o, "\\%03o", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

/* The `now` of every cache call: the caller's clock, else the wall clock. */
static time_t disc_now(const sts_discover *d)
{
    return d->p.now ? d->p.now : time(NULL);
}

static void log_policy(sts_discover *d, const sts_policy *p)
{
    sts_info(d->p.log, "MTASTS policy-->version %s", p->version);
    sts_info(d->p.log, "MTASTS policy-->mode %s", sts_mode_name(p->mode));
    for (size_t i = 0; i < p->nmx; i++)
        sts_info(d->p.log, "MTASTS policy-->mx %s", p->mx[i]);
    sts_info(d->p.log, "MTASTS policy-->max_age %ld", p->max_age);
}

/* The step is over: tell the caller (its last act on d in this step). */
static void step_done(sts_discover *d)
{
    d->running = 0;
    d->rechecking = 0;
    d->cb(&d->res, d->arg);
}

/* A callback came after sts_discover_cancel: end the step, silently. */
static int step_cancelled(sts_discover *d)
{
    if (!d->cancelled)
        return 0;
    d->res.cancelled = 1;
    step_done(d);
    return 1;
}

/* ---- the policy that applies ---- */

static void recheck_resolved(sts_discover *d);

/* The fetch (if any) is over: sts_cache_resolve() says which policy applies. */
static void policy_resolved(sts_discover *d, int fetch_ok, int policy_ok)
{
    sts_discovery *r = &d->res;
    d->apply = sts_cache_resolve(r->decision, fetch_ok, policy_ok);
    if (r->have_policy)
        sts_policy_free(&r->policy);
    r->have_policy = 0;
    char t1[32], t2[32];
    switch (d->apply) {
    case STS_POLICY_SOURCE_FETCHED:
        r->policy = d->fpolicy; /* moved */
        memset(&d->fpolicy, 0, sizeof(d->fpolicy));
        d->have_fpolicy = 0;
        r->have_policy = 1;
        r->source = STS_POLICY_SOURCE_FETCHED;
        snprintf(r->policy_id, sizeof(r->policy_id), "%s", r->txt_id);
        r->fetched_at = disc_now(d);
        r->expires_at = r->fetched_at + r->policy.max_age;
        break;
    case STS_POLICY_SOURCE_CACHE:
        if (!d->have_centry || !d->centry.has_policy ||
            sts_policy_copy(&r->policy, &d->centry.policy)) {
            /* Cannot happen (the decision needs a cached policy) but for ENOMEM. */
            sts_error(d->p.log, "MTASTS the cached policy could not be loaded");
            r->source = STS_POLICY_SOURCE_NONE;
            break;
        }
        r->have_policy = 1;
        r->source = STS_POLICY_SOURCE_CACHE;
        snprintf(r->policy_id, sizeof(r->policy_id), "%s", d->centry.id);
        r->fetched_at = d->centry.fetched_at;
        r->expires_at = d->centry.expires_at;
        sts_time_iso8601(d->centry.fetched_at, t1, sizeof(t1));
        sts_time_iso8601(d->centry.expires_at, t2, sizeof(t2));
        sts_info(d->p.log, "MTASTS applying the CACHED policy id=%s (fetched %s, expires %s)",
                 r->policy_id, t1, t2);
        log_policy(d, &r->policy);
        break;
    case STS_POLICY_SOURCE_NONE:
        r->source = STS_POLICY_SOURCE_NONE;
        r->policy_id[0] = '\0';
        break;
    }
    if (d->have_fpolicy) {
        sts_policy_free(&d->fpolicy);
        d->have_fpolicy = 0;
    }
    if (d->rechecking) {
        recheck_resolved(d);
        return;
    }
    step_done(d);
}

/* ---- fetch (RFC 8461 3.3) ---- */

/* A fetch of txt_id failed (or its policy did not parse): RFC 8461 3.3's five-minute
 * rule needs the failure remembered. */
static void note_fetch_failure(sts_discover *d)
{
    if (!d->p.cache)
        return;
    int rc = sts_cache_note_failure(d->p.cache, d->domain, d->res.txt_id, disc_now(d));
    if (rc)
        sts_info(d->p.log, "MTASTS cache: could not record the failed fetch: %s",
                 sts_cache_last_error(d->p.cache));
}

static void fetch_cb(const sts_fetch_result *res, void *arg)
{
    sts_discover *d = arg;
    sts_discovery *r = &d->res;
    if (step_cancelled(d))
        return;
    r->have_policy_host = 1;
    r->policy_host = *res->facts;
    snprintf(r->policy_host_address, sizeof(r->policy_host_address), "%s",
             res->address ? res->address : "");
    if (!res->ok) {
        sts_result_type type = res->result_type != STS_RESULT_NONE
                                   ? res->result_type
                                   : STS_RESULT_STS_POLICY_FETCH_ERROR;
        sts_info(d->p.log, "MTASTS policy fetch FAILED: %s -> %s",
                 res->detail ? res->detail : sts_strerror(res->err), sts_result_type_name(type));
        add_failure(d, type);
        snprintf(r->detail, sizeof(r->detail), "policy fetch failed: %s",
                 res->detail ? res->detail : sts_strerror(res->err));
        note_fetch_failure(d);
        policy_resolved(d, 0, 0);
        return;
    }
    sts_diags diags;
    sts_diags_init(&diags);
    int rc = sts_policy_parse(res->body, res->body_len, &d->fpolicy, &diags);
    if (rc) {
        char why[300];
        sts_diags_summary(&diags, why, sizeof(why));
        sts_info(d->p.log, "MTASTS policy INVALID: %s -> %s", why[0] ? why : sts_strerror(rc),
                 sts_result_type_name(STS_RESULT_STS_POLICY_INVALID));
        add_failure(d, STS_RESULT_STS_POLICY_INVALID);
        snprintf(r->detail, sizeof(r->detail), "policy invalid: %s", why[0] ? why : "?");
        memset(&d->fpolicy, 0, sizeof(d->fpolicy));
        sts_diags_free(&diags);
        /* An invalid policy is a failed fetch of that id (RFC 8461 3.3). */
        note_fetch_failure(d);
        policy_resolved(d, 1, 0);
        return;
    }
    d->have_fpolicy = 1;
    for (size_t i = 0; i < diags.n; i++)
        sts_debug(d->p.log, "MTASTS policy %s line %d: %s",
                  sts_diag_severity_name(diags.items[i].severity), diags.items[i].line,
                  diags.items[i].message);
    sts_diags_free(&diags);
    log_policy(d, &d->fpolicy);
    if (d->p.cache) {
        /* RFC 8461 3.3: cache it for max_age under the id it was fetched for; a policy
         * of mode none replaces a cached enforce one (8.3). */
        rc = sts_cache_put(d->p.cache, d->domain, r->txt_id, res->body, res->body_len,
                           d->fpolicy.max_age, disc_now(d));
        if (rc)
            sts_info(d->p.log, "MTASTS cache: could not store the policy: %s",
                     sts_cache_last_error(d->p.cache));
        else
            sts_info(d->p.log, "MTASTS cache: stored policy id=%s for %ld s", r->txt_id,
                     d->fpolicy.max_age);
    }
    policy_resolved(d, 1, 1);
}

static void policy_addr_cb(const sts_dns_addr_result *res, void *arg)
{
    sts_discover *d = arg;
    d->res.policy_host_dns_ms = (double)(uv_hrtime() - d->addr_t0) / 1e6;
    if (step_cancelled(d))
        return;
    char why[400] = "";
    if (res->status != STS_DNS_OK || !res->n) {
        sts_dns_failure_text(res->name, "A/AAAA", res->status, res->detail, why, sizeof(why));
        sts_info(d->p.log, "DNS %s", why);
    }
    for (size_t i = 0; i < res->n; i++)
        sts_info(d->p.log, "DNS %s %s -> %s", res->name,
                 res->addrs[i].family == AF_INET6 ? "AAAA" : "A", res->addrs[i].text);
    /* The first address a sender may use (0.0.0.0 would reach this very host). */
    const sts_dns_addr *addr = NULL;
    for (size_t i = 0; i < res->n && !addr; i++) {
        if (!sts_dns_addr_check(&res->addrs[i], why, sizeof(why)))
            addr = &res->addrs[i];
        else
            sts_info(d->p.log, "MTASTS policy host %s: %s: not contacted", res->name, why);
    }
    if (!addr) {
        sts_info(d->p.log, "MTASTS policy host has no usable address -> %s",
                 sts_result_type_name(STS_RESULT_STS_POLICY_FETCH_ERROR));
        add_failure(d, STS_RESULT_STS_POLICY_FETCH_ERROR);
        snprintf(d->res.detail, sizeof(d->res.detail), "policy host has no usable address: %s",
                 why);
        note_fetch_failure(d);
        policy_resolved(d, 0, 0);
        return;
    }
    /* RFC 8461 3.3: HTTPS to mta-sts.<domain>, at the address our resolver found. */
    int rc = sts_fetch_policy(d->p.fetcher, d->domain, addr->text, d->p.https_port,
                              d->p.fetch_timeout, fetch_cb, d);
    if (rc) {
        sts_info(d->p.log, "MTASTS policy fetch could not start: %s", sts_strerror(rc));
        add_failure(d, STS_RESULT_STS_POLICY_FETCH_ERROR);
        note_fetch_failure(d);
        policy_resolved(d, 0, 0);
    }
}

/* ---- cache decision (RFC 8461 3.3, 5.1, 10.2) ---- */

/* Load the domain's cache entry into d->centry (replacing a loaded one). */
static void cache_load(sts_discover *d)
{
    if (d->have_centry)
        sts_cache_entry_free(&d->centry);
    d->have_centry = 0;
    if (!d->p.cache)
        return;
    int rc = sts_cache_get(d->p.cache, d->domain, disc_now(d), &d->centry);
    if (rc == STS_ENOTFOUND) {
        sts_info(d->p.log, "MTASTS cache: nothing cached for %s", d->domain);
        return;
    }
    if (rc) {
        sts_info(d->p.log, "MTASTS cache lookup failed (going on without it): %s",
                 sts_cache_last_error(d->p.cache));
        return;
    }
    d->have_centry = 1;
    const sts_cache_entry *e = &d->centry;
    char t1[32], t2[32];
    if (e->has_policy) {
        sts_time_iso8601(e->fetched_at, t1, sizeof(t1));
        sts_time_iso8601(e->expires_at, t2, sizeof(t2));
        sts_info(d->p.log, "MTASTS cache: policy id=%s mode %s fetched %s, %s %s", e->id,
                 sts_mode_name(e->policy.mode), t1, e->expired ? "EXPIRED" : "expires", t2);
    }
    if (e->problem[0])
        sts_info(d->p.log, "MTASTS cache: %s", e->problem);
    if (e->failed_id[0]) {
        sts_time_iso8601(e->failed_at, t1, sizeof(t1));
        sts_info(d->p.log, "MTASTS cache: the fetch of id=%s failed at %s", e->failed_id, t1);
    }
}

/* After the TXT lookup: the cache decision (cache.h), then fetch or not. */
static void decide(sts_discover *d)
{
    sts_discovery *r = &d->res;
    cache_load(d);
    r->decided = 1;
    r->decision =
        sts_cache_decide(d->have_centry ? &d->centry : NULL, d->txt_kind, r->txt_id, disc_now(d));
    if (d->p.cache)
        sts_info(d->p.log, "MTASTS cache decision %s: %s", sts_cache_decision_name(r->decision),
                 sts_cache_decision_why(r->decision));
    if (!sts_cache_decision_fetches(r->decision)) {
        if (r->decision == STS_CACHE_NO_POLICY && d->txt_kind != STS_CACHE_TXT_FOUND)
            sts_info(d->p.log, "MTASTS no policy announced for %s", d->domain);
        policy_resolved(d, 0, 0);
        return;
    }
    char host[300];
    snprintf(host, sizeof(host), "mta-sts.%s", d->domain);
    d->addr_t0 = uv_hrtime();
    int rc = sts_resolver_query_addr(d->p.resolver, host, policy_addr_cb, d);
    if (rc) {
        add_failure(d, STS_RESULT_STS_POLICY_FETCH_ERROR);
        note_fetch_failure(d);
        policy_resolved(d, 0, 0);
    }
}

/* ---- TXT (RFC 8461 3.1) ---- */

/* What the TXT answer says: d->txt_kind and, when FOUND, res.have_txt and res.txt_id. */
static void read_txt(sts_discover *d, const sts_dns_txt_result *res)
{
    sts_discovery *r = &d->res;
    r->have_txt = 0;
    r->txt_id[0] = '\0';
    if (res->status != STS_DNS_OK) {
        char why[400];
        sts_info(
            d->p.log, "DNS %s",
            sts_dns_failure_text(res->name, "TXT", res->status, res->detail, why, sizeof(why)));
        d->txt_kind = sts_cache_txt_from_dns(res->status);
        r->txt_kind = d->txt_kind;
        snprintf(r->txt_why, sizeof(r->txt_why), "%s", why);
        return;
    }
    const char **recs = calloc(res->n, sizeof(*recs));
    size_t *lens = calloc(res->n, sizeof(*lens));
    if (!recs || !lens) {
        free(recs);
        free(lens);
        sts_error(d->p.log, "MTASTS out of memory reading the TXT records");
        d->txt_kind = STS_CACHE_TXT_TEMPFAIL;
        return;
    }
    for (size_t i = 0; i < res->n; i++) {
        char q[600];
        quote_bytes(res->records[i].data, res->records[i].len, q, sizeof(q));
        sts_info(d->p.log, "DNS %s TXT -> \"%s\"", res->name, q);
        recs[i] = res->records[i].data;
        lens[i] = res->records[i].len;
    }
    sts_txt txt;
    char why[300] = "";
    int rc = sts_txt_select(recs, lens, res->n, &txt, NULL, why, sizeof(why));
    free(recs);
    free(lens);
    d->txt_kind = sts_cache_txt_from_select(rc);
    r->txt_kind = d->txt_kind;
    snprintf(r->txt_why, sizeof(r->txt_why), "%s", why);
    if (rc) {
        /* RFC 8461 3.1: not exactly one valid STS record: no policy available (unless a
         * cached one still applies). */
        sts_info(d->p.log, "MTASTS %s", why[0] ? why : "no valid STS record: no policy");
        return;
    }
    r->have_txt = 1;
    snprintf(r->txt_id, sizeof(r->txt_id), "%s", txt.id);
    sts_txt_free(&txt);
    sts_info(d->p.log, "MTASTS TXT id=%s", r->txt_id);
}

static void txt_cb(const sts_dns_txt_result *res, void *arg)
{
    sts_discover *d = arg;
    if (step_cancelled(d))
        return;
    read_txt(d, res);
    decide(d);
}

/* ---- RFC 8461 5.1 re-check ---- */

static void recheck_txt_cb(const sts_dns_txt_result *res, void *arg)
{
    sts_discover *d = arg;
    sts_discovery *r = &d->res;
    if (step_cancelled(d))
        return;
    read_txt(d, res);
    if (d->txt_kind != STS_CACHE_TXT_FOUND || !strcmp(r->txt_id, r->policy_id)) {
        r->recheck =
            d->txt_kind == STS_CACHE_TXT_FOUND ? STS_RECHECK_ID_UNCHANGED : STS_RECHECK_NO_TXT;
        step_done(d);
        return;
    }
    r->recheck_changed = 1;
    snprintf(r->recheck_id, sizeof(r->recheck_id), "%s", r->txt_id);
    sts_info(d->p.log, "MTASTS re-check: TXT id changed %s -> %s", r->policy_id, r->txt_id);
    if (sts_policy_copy(&d->old_policy, &r->policy)) {
        r->recheck = STS_RECHECK_FAILED;
        step_done(d);
        return;
    }
    d->have_old_policy = 1;
    decide(d); /* reloads the cache entry: the five-minute rule applies too */
}

/* The re-check's fetch is over (policy_resolved set res.policy). */
static void recheck_resolved(sts_discover *d)
{
    sts_discovery *r = &d->res;
    r->recheck_fetched = d->apply == STS_POLICY_SOURCE_FETCHED;
    int differs =
        r->recheck_fetched && d->have_old_policy && !sts_policy_same(&r->policy, &d->old_policy);
    if (!differs) {
        r->recheck = r->recheck_fetched ? STS_RECHECK_SAME : STS_RECHECK_NOT_FETCHED;
        if (!r->have_policy) /* cannot happen under FETCH_KEEP_CACHED_ON_FAILURE */
            r->source = STS_POLICY_SOURCE_NONE;
    } else {
        r->recheck = STS_RECHECK_CHANGED;
    }
    step_done(d);
}

/* ---- the API ---- */

int sts_discover_new(const sts_discover_params *p, sts_discover **out)
{
    *out = NULL;
    if (!p || !p->loop || !p->domain || !p->domain[0] || !p->resolver || !p->fetcher ||
        strlen(p->domain) > DISCOVER_DOMAIN_MAX)
        return STS_EINVAL;
    sts_discover *d = calloc(1, sizeof(*d));
    if (!d)
        return STS_ENOMEM;
    uv_timer_init(p->loop, &d->defer);
    d->defer.data = d;
    snprintf(d->domain, sizeof(d->domain), "%s", p->domain);
    d->p = *p;
    d->p.domain = d->domain;
    d->res.source = STS_POLICY_SOURCE_NONE;
    *out = d;
    return 0;
}

/* The last of d: its timer is closed. */
static void defer_close_cb(uv_handle_t *h)
{
    free(h->data);
}

void sts_discover_free(sts_discover *d)
{
    if (!d)
        return;
    if (d->res.have_policy)
        sts_policy_free(&d->res.policy);
    if (d->have_fpolicy)
        sts_policy_free(&d->fpolicy);
    if (d->have_old_policy)
        sts_policy_free(&d->old_policy);
    if (d->have_centry)
        sts_cache_entry_free(&d->centry);
    uv_close((uv_handle_t *)&d->defer, defer_close_cb); /* a pending step is dropped */
}

const sts_discovery *sts_discover_result(const sts_discover *d)
{
    return &d->res;
}

/* A new step: what it reports starts empty. */
static void step_begin(sts_discover *d, sts_discover_cb cb, void *arg, int rechecking)
{
    d->running = 1;
    d->rechecking = rechecking;
    d->cb = cb;
    d->arg = arg;
    d->res.nfailures = 0;
    d->res.detail[0] = '\0';
}

/* The TXT query could not start: go on as after a failed lookup (RFC 8461 3.1: a cached
 * policy may still apply), outside sts_discover_start. */
static void defer_cb(uv_timer_t *t)
{
    sts_discover *d = t->data;
    if (step_cancelled(d))
        return;
    d->txt_kind = STS_CACHE_TXT_TEMPFAIL;
    decide(d);
}

int sts_discover_start(sts_discover *d, sts_discover_cb cb, void *arg)
{
    if (!d || !cb || d->started || d->running)
        return STS_EINVAL;
    d->started = 1;
    step_begin(d, cb, arg, 0);
    char name[300];
    snprintf(name, sizeof(name), "_mta-sts.%s", d->domain);
    /* RFC 8461 3.1: the TXT record at _mta-sts.<domain>, never a parent zone (3.4). */
    int rc = sts_resolver_query_txt(d->p.resolver, name, txt_cb, d);
    if (rc) {
        /* As a failed lookup, from the timer: the callback never runs in here. */
        snprintf(d->res.detail, sizeof(d->res.detail), "TXT lookup could not start: %s",
                 sts_strerror(rc));
        uv_timer_start(&d->defer, defer_cb, 0, 0);
    }
    return 0;
}

int sts_discover_may_recheck(const sts_discover *d)
{
    return d && !d->running && !d->res.rechecked && d->res.have_policy &&
           d->res.source == STS_POLICY_SOURCE_CACHE;
}

int sts_discover_recheck(sts_discover *d, sts_discover_cb cb, void *arg)
{
    if (!cb || !sts_discover_may_recheck(d))
        return STS_EINVAL;
    d->res.rechecked = 1;
    char name[300];
    snprintf(name, sizeof(name), "_mta-sts.%s", d->domain);
    int rc = sts_resolver_query_txt(d->p.resolver, name, recheck_txt_cb, d);
    if (rc)
        return rc;
    step_begin(d, cb, arg, 1);
    return 0;
}

void sts_discover_cancel(sts_discover *d)
{
    if (d)
        d->cancelled = 1;
}
