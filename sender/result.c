/*
 * result.c - one recipient's result (result.h): its TLS facts copied out of
 * sts_tls_info, the summary at the end of the transcript, and its JSON object, whose
 * field names and order are DESIGN.md's `send --json` contract.
 */
#include "sender/result.h"

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
    memset(t, 0, sizeof(*t));
}

int sts_mx_tls_set(sts_mx_tls *t, const sts_tls_info *info)
{
    sts_mx_tls_free(t);
    snprintf(t->version, sizeof(t->version), "%s", info->version);
    snprintf(t->cipher, sizeof(t->cipher), "%s", info->cipher);
    t->verified = info->verified;
    t->chain_ok = info->chain_ok;
    t->time_ok = info->time_ok;
    t->name_ok = info->name_ok;
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
    sts_info(log, "RESULT %s: %s (policy %s, mode %s%s)", r->arg, sts_outcome_name(r->outcome),
             sts_policy_source_name(d->source), sts_mode_name(r->mode),
             r->tls_required ? ", TLS required" : "");
    if (r->detail[0] && r->outcome != STS_OUTCOME_DELIVERED)
        sts_info(log, "RESULT detail: %s", r->detail);
    if (r->nmx)
        sts_info(log, "%-28s %4s %-7s %-8s %-8s %-7s %-7s %-6s %-9s", "MX", "pref", "connect",
                 "starttls", "tls", "trusted", "name-ok", "policy", "result");
    for (size_t i = 0; i < r->nmx; i++) {
        const sts_mx_result *m = &r->mx[i];
        sts_info(log, "%-28s %4u %-7s %-8s %-8s %-7s %-7s %-6s %-9s", m->host, m->preference,
                 yes_no(m->connected), yes_no(m->starttls_offered),
                 m->tls_up ? m->tls.version : "no",
                 m->tls_up ? yes_no(m->tls.chain_ok && m->tls.time_ok) : "-",
                 m->tls_up ? yes_no(m->tls.name_ok) : "-",
                 m->policy_match < 0 ? "-" : (m->policy_match ? "match" : "NO"),
                 sts_action_name(m->action));
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

/* ---- JSON ---- */

static json_t *str_or_null(const char *s)
{
    return s && *s ? json_string(s) : json_null();
}

static json_t *time_or_null(time_t t)
{
    if (!t)
        return json_null();
    char s[32];
    sts_time_iso8601(t, s, sizeof(s));
    return json_string(s);
}

static json_t *tls_json(const sts_mx_result *m)
{
    json_t *t = json_object();
    const sts_mx_tls *ti = &m->tls;
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
    json_object_set_new(t, "verify_error", str_or_null(ti->verify_error));
    json_object_set_new(t, "error", str_or_null(ti->error));
    return t;
}

static json_t *smtp_json(const sts_mx_result *m)
{
    if (!m->code)
        return json_null();
    json_t *s = json_object();
    json_object_set_new(s, "code", json_integer(m->code));
    json_object_set_new(s, "enhanced", str_or_null(m->enhanced));
    json_object_set_new(s, "text", json_string(m->text));
    return s;
}

static json_t *mx_json(const sts_mx_result *m)
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
    json_object_set_new(o, "tls", m->tls_attempted ? tls_json(m) : json_null());
    json_object_set_new(o, "plain_retry", json_boolean(m->plain_retry));
    json_object_set_new(o, "pipelined", json_boolean(m->pipelined));
    json_object_set_new(o, "action", json_string(sts_action_name(m->action)));
    json_object_set_new(o, "failure", str_or_null(sts_result_type_name(m->failure)));
    json_object_set_new(o, "stage", str_or_null(m->stage));
    json_object_set_new(o, "detail", str_or_null(m->detail));
    json_object_set_new(o, "smtp", smtp_json(m));
    return o;
}

/* "policy": the policy applied and the mode (RFC 8461 5). */
static json_t *policy_json(const sts_rcpt_result *r, const sts_discovery *d)
{
    json_t *o = json_object();
    json_object_set_new(o, "source", json_string(sts_policy_source_name(d->source)));
    json_object_set_new(o, "mode", json_string(sts_mode_name(r->mode)));
    json_object_set_new(o, "policy_mode",
                        d->have_policy ? json_string(sts_mode_name(d->policy.mode)) : json_null());
    json_object_set_new(o, "id",
                        str_or_null(d->have_policy ? d->policy_id
                                    : d->have_txt  ? d->txt_id
                                                   : NULL));
    json_object_set_new(o, "txt_id", str_or_null(d->have_txt ? d->txt_id : NULL));
    json_object_set_new(o, "max_age",
                        d->have_policy ? json_integer(d->policy.max_age) : json_null());
    json_t *mxp = json_array();
    for (size_t i = 0; d->have_policy && i < d->policy.nmx; i++)
        json_array_append_new(mxp, json_string(d->policy.mx[i]));
    json_object_set_new(o, "mx", mxp);
    return o;
}

/* "cache": RFC 8461 3.3, the cache's decision and the policy's dates. */
static json_t *cache_json(const sts_discovery *d, int cache_on)
{
    json_t *c = json_object();
    json_object_set_new(c, "enabled", json_boolean(cache_on));
    json_object_set_new(c, "decision",
                        d->decided ? json_string(sts_cache_decision_name(d->decision))
                                   : json_null());
    json_object_set_new(c, "fetched_at", time_or_null(d->have_policy ? d->fetched_at : 0));
    json_object_set_new(c, "expires_at",
                        d->have_policy ? time_or_null(d->expires_at) : json_null());
    return c;
}

/* "recheck": RFC 8461 5.1, the re-check after every MX was refused under a cached
 * policy; null when none ran. */
static json_t *recheck_json(const sts_rcpt_result *r, const sts_discovery *d)
{
    if (!d->rechecked)
        return json_null();
    json_t *rc = json_object();
    json_object_set_new(rc, "txt_id", str_or_null(d->recheck_id));
    json_object_set_new(rc, "changed", json_boolean(d->recheck_changed));
    json_object_set_new(rc, "fetched", json_boolean(d->recheck_fetched));
    json_object_set_new(rc, "retried", json_boolean(r->recheck_retried));
    return rc;
}

json_t *sts_result_json(const sts_rcpt_result *r, const sts_discovery *d, int check, int cache_on)
{
    json_t *o = json_object();
    json_object_set_new(o, "recipient", check ? json_null() : json_string(r->arg));
    json_object_set_new(o, "argument", json_string(r->arg));
    json_object_set_new(o, "command", json_string(check ? "check" : "send"));
    json_object_set_new(o, "domain", json_string(r->domain));
    json_object_set_new(o, "outcome", json_string(sts_outcome_name(r->outcome)));
    json_object_set_new(o, "detail", str_or_null(r->detail));
    json_object_set_new(o, "tls_required", json_boolean(r->tls_required));
    json_object_set_new(o, "policy", policy_json(r, d));
    json_object_set_new(o, "cache", cache_json(d, cache_on));
    json_object_set_new(o, "recheck", recheck_json(r, d));
    json_object_set_new(o, "null_mx", json_boolean(r->null_mx));
    json_t *mx = json_array();
    for (size_t i = 0; i < r->nmx; i++)
        json_array_append_new(mx, mx_json(&r->mx[i]));
    json_object_set_new(o, "mx", mx);
    json_t *fl = json_array();
    for (size_t i = 0; i < r->nfailures; i++)
        json_array_append_new(fl, json_string(sts_result_type_name(r->failures[i])));
    json_object_set_new(o, "failures", fl);
    return o;
}
