/*
 * result.c - one recipient's result (result.h): its TLS facts copied out of
 * sts_tls_info, the summary at the end of the transcript, and its JSON object, whose
 * field names and order are DESIGN.md's `send --json` contract.
 */
#include "sender/result.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* ---- TLS facts ---- */

/* A heap copy of s, or NULL for "" (which the JSON shows as null either way). */
static int dup_or_null(char **out, const char *s)
{
    *out = NULL;
    if (!s[0])
        return 0;
    *out = strdup(s);
    return *out ? 0 : STS_ENOMEM;
}

void sts_mx_tls_free(sts_mx_tls *t)
{
    free(t->sni);
    free(t->verify_error);
    free(t->error);
    for (size_t i = 0; i < t->npeer_names; i++)
        free(t->peer_names[i]);
    free(t->peer_names);
    free(t->chain);
    memset(t, 0, sizeof(*t));
}

int sts_mx_tls_set(sts_mx_tls *t, const sts_tls_info *info, int with_chain)
{
    sts_mx_tls_free(t);
    snprintf(t->version, sizeof(t->version), "%s", info->version);
    snprintf(t->cipher, sizeof(t->cipher), "%s", info->cipher);
    t->verified = info->verified;
    t->chain_ok = info->chain_ok;
    t->time_ok = info->time_ok;
    t->name_ok = info->name_ok;
    t->not_yet_valid = info->not_yet_valid;
    t->result_type = info->result_type;
    snprintf(t->not_before, sizeof(t->not_before), "%s", info->not_before);
    snprintf(t->not_after, sizeof(t->not_after), "%s", info->not_after);
    int rc = dup_or_null(&t->sni, info->sni);
    rc |= dup_or_null(&t->verify_error, info->verify_error_str);
    rc |= dup_or_null(&t->error, info->error);
    if (info->npeer_names) {
        t->peer_names = calloc(info->npeer_names, sizeof(*t->peer_names));
        if (!t->peer_names)
            return STS_ENOMEM;
        for (size_t i = 0; i < info->npeer_names; i++) {
            t->peer_names[i] = strdup(info->peer_names[i]);
            if (!t->peer_names[i])
                return STS_ENOMEM;
            t->npeer_names++;
        }
    }
    if (with_chain && info->chain && info->nchain) {
        t->chain = malloc(info->nchain * sizeof(*t->chain));
        if (!t->chain)
            return STS_ENOMEM;
        memcpy(t->chain, info->chain, info->nchain * sizeof(*t->chain));
        t->nchain = info->nchain;
    }
    return rc ? STS_ENOMEM : 0;
}

void sts_result_add_failure(sts_rcpt_result *r, sts_result_type type)
{
    if (type == STS_RESULT_NONE)
        return;
    for (size_t i = 0; i < r->nfailures; i++)
        if (r->failures[i] == type)
            return;
    if (r->nfailures < STS_RESULT_MAX_FAILURES)
        r->failures[r->nfailures++] = type;
}

/* ---- the summary people read ---- */

static const char *yes_no(int v)
{
    return v ? "yes" : "no";
}

void sts_result_log(sts_log *log, const sts_rcpt_result *r, const sts_discovery *d)
{
    sts_info(log, "RESULT %s: %s%s (policy %s, mode %s%s)", r->arg,
             r->check ? "a sender would have it " : "", sts_outcome_name(r->outcome),
             sts_policy_source_name(d->source), sts_mode_name(r->mode),
             r->tls_required ? ", TLS required" : "");
    if (r->detail[0] && r->outcome != STS_OUTCOME_DELIVERED)
        sts_info(log, "RESULT detail: %s", r->detail);
    if (r->nmx)
        sts_info(log, "%-28s %4s %-7s %-8s %-8s %-7s %-7s %-6s %-9s%s", "MX", "pref", "connect",
                 "starttls", "tls", "trusted", "name-ok", "policy", "result",
                 r->check ? " ms         cert-expires" : "");
    for (size_t i = 0; i < r->nmx; i++) {
        const sts_mx_result *m = &r->mx[i];
        /* check: CheckTLS's MX matrix also shows how long each MX took (its address
         * lookup and every stage up to the EHLO after TLS) and the day the certificate
         * it presented ends. */
        char extra[64] = "";
        if (r->check) {
            double ms = m->dns_ms;
            for (int s = STS_SMTPC_CONNECT; s <= STS_SMTPC_EHLO2; s++)
                ms += m->stage_ms[s];
            snprintf(extra, sizeof(extra), " %-10.1f %.10s", ms,
                     m->tls.nchain ? m->tls.chain[0].not_after : "-");
        }
        sts_info(log, "%-28s %4u %-7s %-8s %-8s %-7s %-7s %-6s %-9s%s", m->host, m->preference,
                 yes_no(m->connected), yes_no(m->starttls_offered),
                 m->tls_up ? m->tls.version : "no",
                 m->tls_up ? yes_no(m->tls.chain_ok && m->tls.time_ok) : "-",
                 m->tls_up ? yes_no(m->tls.name_ok) : "-",
                 m->policy_match < 0 ? "-" : (m->policy_match ? "match" : "NO"),
                 sts_action_name(m->action), extra);
    }
    if (r->nfailures) {
        char buf[512];
        size_t off = 0;
        buf[0] = '\0';
        for (size_t i = 0; i < r->nfailures && off < sizeof(buf); i++)
            off += (size_t)snprintf(buf + off, sizeof(buf) - off, "%s%s", i ? " " : "",
                                    sts_result_type_name(r->failures[i]));
        sts_info(log, "RESULT failures: %s", buf);
    }
}

/* ---- equal JSON values stored once ---- */

/* The set of canonical values: open addressing, each slot holding a reference. A
 * container is kept only once its children are canonical, so two containers are
 * equal when their keys (in order) are and their children are the same pointers. */
struct sts_result_pool {
    json_t **slot; /* NULL: empty */
    size_t cap;    /* a power of two */
    size_t n;
};

#define POOL_FIRST_CAP 1024

static uint64_t mix(uint64_t h, uint64_t v)
{
    return (h ^ v) * 0x100000001b3ULL; /* FNV-1a's prime */
}

static uint64_t bytes_hash(uint64_t h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        h = mix(h, (unsigned char)p[i]);
    return h;
}

static uint64_t value_hash(json_t *v)
{
    uint64_t h = mix(0xcbf29ce484222325ULL, (uint64_t)json_typeof(v));
    switch (json_typeof(v)) {
    case JSON_STRING:
        return bytes_hash(h, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return mix(h, (uint64_t)json_integer_value(v));
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v); i++)
            h = mix(h, (uint64_t)(uintptr_t)json_array_get(v, i));
        return h;
    case JSON_OBJECT:
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
            h = bytes_hash(h, json_object_iter_key(it), json_object_iter_key_len(it));
            h = mix(h, (uint64_t)(uintptr_t)json_object_iter_value(it));
        }
        return h;
    default:
        return mix(h, (uint64_t)(uintptr_t)v);
    }
}

/* a and b say the same; their children are canonical, so compared by identity. */
static int value_same(json_t *a, json_t *b)
{
    if (json_typeof(a) != json_typeof(b))
        return 0;
    switch (json_typeof(a)) {
    case JSON_STRING:
        return json_string_length(a) == json_string_length(b) &&
               !memcmp(json_string_value(a), json_string_value(b), json_string_length(a));
    case JSON_INTEGER:
        return json_integer_value(a) == json_integer_value(b);
    case JSON_ARRAY:
        if (json_array_size(a) != json_array_size(b))
            return 0;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (json_array_get(a, i) != json_array_get(b, i))
                return 0;
        return 1;
    case JSON_OBJECT: {
        if (json_object_size(a) != json_object_size(b))
            return 0;
        void *ia = json_object_iter(a), *ib = json_object_iter(b);
        for (; ia && ib; ia = json_object_iter_next(a, ia), ib = json_object_iter_next(b, ib))
            if (json_object_iter_key_len(ia) != json_object_iter_key_len(ib) ||
                memcmp(json_object_iter_key(ia), json_object_iter_key(ib),
                       json_object_iter_key_len(ia)) ||
                json_object_iter_value(ia) != json_object_iter_value(ib))
                return 0;
        return 1;
    }
    default:
        return a == b;
    }
}

/* The slot of v's canonical value, or the empty slot where it goes. */
static json_t **pool_find(const sts_result_pool *p, json_t *v)
{
    uint64_t h = value_hash(v);
    h = (h ^ (h >> 31)) * 0xbf58476d1ce4e5b9ULL; /* the low bits of the slot depend on */
    h ^= h >> 29;                                /* every bit of the hash */
    size_t i = (size_t)h & (p->cap - 1);
    while (p->slot[i] && !value_same(p->slot[i], v))
        i = (i + 1) & (p->cap - 1);
    return &p->slot[i];
}

/* Whether only the pool holds v: no result uses it any more (a result printed and
 * freed as soon as it was done, sts_sender_opts.on_result). */
static int pool_only(const json_t *v)
{
    return v->refcount == 1;
}

/* Make room: drop the values no result holds any more (again and again: dropping a
 * container can leave its children held by the pool alone), then double the table
 * unless that left it at most a quarter full. */
static int pool_grow(sts_result_pool *p)
{
    size_t live = p->n, dropped;
    do {
        dropped = 0;
        for (size_t i = 0; i < p->cap; i++)
            if (p->slot[i] && pool_only(p->slot[i])) {
                json_decref(p->slot[i]);
                p->slot[i] = NULL; /* the table is rebuilt below */
                dropped++;
            }
        live -= dropped;
    } while (dropped);
    size_t cap = !p->cap ? POOL_FIRST_CAP : 4 * (live + 1) <= p->cap ? p->cap : 2 * p->cap;
    sts_result_pool next = {.cap = cap, .n = live};
    next.slot = calloc(next.cap, sizeof(*next.slot));
    if (!next.slot) {
        /* Out of memory: p keeps its values, but the holes may hide some of them from
         * pool_find, so an equal value may be stored twice: shared less, still equal. */
        p->n = live;
        return STS_ENOMEM;
    }
    for (size_t i = 0; i < p->cap; i++)
        if (p->slot[i])
            *pool_find(&next, p->slot[i]) = p->slot[i];
    free(p->slot);
    *p = next;
    return 0;
}

sts_result_pool *sts_result_pool_new(void)
{
    return calloc(1, sizeof(sts_result_pool));
}

void sts_result_pool_free(sts_result_pool *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->cap; i++)
        json_decref(p->slot[i]);
    free(p->slot);
    free(p);
}

/* Takes v's reference and returns one to the canonical value equal to v (v itself when
 * it is the first, or when there is no pool). v must not change afterwards. */
static json_t *keep(sts_result_pool *p, json_t *v)
{
    if (!p || !v || json_is_null(v) || json_is_boolean(v)) /* NULL, or a singleton */
        return v;
    if (2 * (p->n + 1) > p->cap && pool_grow(p))
        return v; /* out of memory: not shared */
    json_t **slot = pool_find(p, v);
    if (*slot) {
        json_t *c = json_incref(*slot);
        json_decref(v);
        return c;
    }
    *slot = json_incref(v);
    p->n++;
    return v;
}

/* ---- JSON ---- */

static json_t *str(sts_result_pool *p, const char *s)
{
    return keep(p, json_string(s));
}

static json_t *str_or_null(sts_result_pool *p, const char *s)
{
    return s && *s ? str(p, s) : json_null();
}

static json_t *integer(sts_result_pool *p, json_int_t v)
{
    return keep(p, json_integer(v));
}

static json_t *time_or_null(sts_result_pool *p, time_t t)
{
    if (!t)
        return json_null();
    char s[32];
    sts_time_iso8601(t, s, sizeof(s));
    return str(p, s);
}

static json_t *tls_json(sts_result_pool *p, const sts_mx_result *m)
{
    json_t *t = json_object();
    const sts_mx_tls *ti = &m->tls;
    json_object_set_new(t, "handshake", json_boolean(m->tls_up));
    json_object_set_new(t, "version", str_or_null(p, m->tls_up ? ti->version : NULL));
    json_object_set_new(t, "cipher", str_or_null(p, m->tls_up ? ti->cipher : NULL));
    json_object_set_new(t, "verified", json_boolean(m->tls_up && ti->verified));
    json_object_set_new(t, "chain_ok", json_boolean(ti->chain_ok));
    json_object_set_new(t, "time_ok", json_boolean(ti->time_ok));
    json_object_set_new(t, "name_ok", json_boolean(ti->name_ok));
    json_object_set_new(t, "sni", str_or_null(p, ti->sni));
    json_t *names = json_array();
    for (size_t i = 0; i < ti->npeer_names; i++)
        json_array_append_new(names, str(p, ti->peer_names[i]));
    json_object_set_new(t, "peer_names", keep(p, names));
    json_object_set_new(t, "not_before", str_or_null(p, ti->not_before));
    json_object_set_new(t, "not_after", str_or_null(p, ti->not_after));
    json_object_set_new(
        t, "result_type",
        str_or_null(p, m->tls_up && !ti->verified ? sts_result_type_name(ti->result_type) : NULL));
    json_object_set_new(t, "verify_error", str_or_null(p, ti->verify_error));
    json_object_set_new(t, "error", str_or_null(p, ti->error));
    return keep(p, t);
}

static json_t *smtp_json(sts_result_pool *p, const sts_mx_result *m)
{
    if (!m->code)
        return json_null();
    json_t *s = json_object();
    json_object_set_new(s, "code", integer(p, m->code));
    json_object_set_new(s, "enhanced", str_or_null(p, m->enhanced));
    json_object_set_new(s, "text", str(p, m->text));
    return keep(p, s);
}

static json_t *mx_json(sts_result_pool *p, const sts_mx_result *m)
{
    json_t *o = json_object();
    json_object_set_new(o, "host", str(p, m->host));
    json_object_set_new(o, "preference", integer(p, m->preference));
    json_object_set_new(o, "implicit", json_boolean(m->implicit));
    json_object_set_new(o, "address", str_or_null(p, m->address));
    json_t *addrs = json_array();
    for (size_t i = 0; i < m->naddresses; i++)
        json_array_append_new(addrs, str(p, m->addresses[i]));
    json_object_set_new(o, "addresses", keep(p, addrs));
    json_object_set_new(o, "policy_match",
                        m->policy_match < 0 ? json_null() : json_boolean(m->policy_match));
    json_object_set_new(o, "connected", json_boolean(m->connected));
    json_object_set_new(o, "starttls", json_boolean(m->starttls_offered));
    json_object_set_new(o, "tls", m->tls_attempted ? tls_json(p, m) : json_null());
    json_object_set_new(o, "plain_retry", json_boolean(m->plain_retry));
    json_object_set_new(o, "pipelined", json_boolean(m->pipelined));
    json_object_set_new(o, "action", str(p, sts_action_name(m->action)));
    json_object_set_new(o, "failure", str_or_null(p, sts_result_type_name(m->failure)));
    json_object_set_new(o, "stage", str_or_null(p, m->stage));
    json_object_set_new(o, "detail", str_or_null(p, m->detail));
    json_object_set_new(o, "smtp", smtp_json(p, m));
    return keep(p, o);
}

/* "policy": the policy applied and the mode (RFC 8461 5). */
static json_t *policy_json(sts_result_pool *p, const sts_rcpt_result *r, const sts_discovery *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "source", str(p, sts_policy_source_name(d->source)));
    json_object_set_new(o, "mode", str(p, sts_mode_name(r->mode)));
    json_object_set_new(o, "policy_mode",
                        d->have_policy ? str(p, sts_mode_name(d->policy.mode)) : json_null());
    json_object_set_new(o, "id",
                        str_or_null(p, d->have_policy ? d->policy_id
                                       : d->have_txt  ? d->txt_id
                                                      : NULL));
    json_object_set_new(o, "txt_id", str_or_null(p, d->have_txt ? d->txt_id : NULL));
    json_object_set_new(o, "max_age", d->have_policy ? integer(p, d->policy.max_age) : json_null());
    json_t *mxp = json_array();
    for (size_t i = 0; d->have_policy && i < d->policy.nmx; i++)
        json_array_append_new(mxp, str(p, d->policy.mx[i]));
    json_object_set_new(o, "mx", keep(p, mxp));
    return keep(p, o);
}

/* "cache": RFC 8461 3.3, the cache's decision and the policy's dates. */
static json_t *cache_json(sts_result_pool *p, const sts_discovery *d, int cache_on)
{
    json_t *c = json_object();
    json_object_set_new(c, "enabled", json_boolean(cache_on));
    json_object_set_new(c, "decision",
                        d->decided ? str(p, sts_cache_decision_name(d->decision)) : json_null());
    json_object_set_new(c, "fetched_at", time_or_null(p, d->have_policy ? d->fetched_at : 0));
    json_object_set_new(c, "expires_at",
                        d->have_policy ? time_or_null(p, d->expires_at) : json_null());
    return keep(p, c);
}

/* "recheck": RFC 8461 5.1, the re-check after every MX was refused under a cached
 * policy; null when none ran. */
static json_t *recheck_json(sts_result_pool *p, const sts_rcpt_result *r, const sts_discovery *d)
{
    if (!d->rechecked)
        return json_null();
    json_t *rc = json_object();
    json_object_set_new(rc, "txt_id", str_or_null(p, d->recheck_id));
    json_object_set_new(rc, "changed", json_boolean(d->recheck_changed));
    json_object_set_new(rc, "fetched", json_boolean(d->recheck_fetched));
    json_object_set_new(rc, "retried", json_boolean(r->recheck_retried));
    return keep(p, rc);
}

json_t *sts_result_json(const sts_rcpt_result *r, const sts_discovery *d, int check, int cache_on,
                        sts_result_pool *p)
{
    json_t *o = json_object();
    json_object_set_new(o, "recipient", check ? json_null() : str(p, r->arg));
    json_object_set_new(o, "argument", str(p, r->arg));
    json_object_set_new(o, "command", str(p, check ? "check" : "send"));
    json_object_set_new(o, "domain", str(p, r->domain));
    json_object_set_new(o, "outcome", str(p, sts_outcome_name(r->outcome)));
    json_object_set_new(o, "detail", str_or_null(p, r->detail));
    json_object_set_new(o, "tls_required", json_boolean(r->tls_required));
    json_object_set_new(o, "policy", policy_json(p, r, d));
    json_object_set_new(o, "cache", cache_json(p, d, cache_on));
    json_object_set_new(o, "recheck", recheck_json(p, r, d));
    json_object_set_new(o, "null_mx", json_boolean(r->null_mx));
    json_t *mx = json_array();
    for (size_t i = 0; i < r->nmx; i++)
        json_array_append_new(mx, mx_json(p, &r->mx[i]));
    json_object_set_new(o, "mx", keep(p, mx));
    json_t *fl = json_array();
    for (size_t i = 0; i < r->nfailures; i++)
        json_array_append_new(fl, str(p, sts_result_type_name(r->failures[i])));
    json_object_set_new(o, "failures", keep(p, fl));
    return o; /* itself unique: the argument is */
}
