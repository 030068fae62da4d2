/*
 * check.c - `ststest check`'s facts, verdict block and JSON keys (check.h).
 */
#include "sender/check.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "sender/smtpc.h"
#include "sender/tlsrpt.h"

void sts_check_extra_free(sts_check_extra *x)
{
    json_decref(x->tlsrpt_json);
    x->tlsrpt_json = NULL;
}

/* ---- TLSRPT (RFC 8460 3) ---- */

static json_t *tlsrpt_json(const char *name, const sts_dns_txt_result *res, const sts_tlsrpt *t,
                           const char *error)
{
    json_t *o = json_object(), *recs = json_array(), *rua = json_array();
    for (size_t i = 0; res && i < res->n; i++)
        json_array_append_new(recs,
                              json_stringn_nocheck(res->records[i].data, res->records[i].len));
    for (size_t i = 0; t && i < t->nrua; i++)
        json_array_append_new(rua, json_string(t->rua[i].uri));
    json_object_set_new(o, "name", json_string(name));
    json_object_set_new(o, "records", recs);
    json_object_set_new(o, "valid", json_boolean(error == NULL));
    json_object_set_new(o, "rua", rua);
    json_object_set_new(o, "error", error ? json_string(error) : json_null());
    return o;
}

void sts_check_read_tlsrpt(sts_check_extra *x, const char *name, const sts_dns_txt_result *res)
{
    x->tlsrpt_done = 1;
    json_decref(x->tlsrpt_json);
    if (res->status != STS_DNS_OK || !res->n) {
        sts_dns_failure_text(res->name, "TXT", res->status, res->detail, x->tlsrpt_why,
                             sizeof(x->tlsrpt_why));
        x->tlsrpt = sts_dns_status_is_temporary(res->status) ? STS_CHECK_TLSRPT_INVALID
                                                             : STS_CHECK_TLSRPT_MISSING;
        x->tlsrpt_json = tlsrpt_json(name, NULL, NULL, x->tlsrpt_why);
        return;
    }
    const char **recs = calloc(res->n, sizeof(*recs));
    size_t *lens = calloc(res->n, sizeof(*lens));
    for (size_t i = 0; recs && lens && i < res->n; i++) {
        recs[i] = res->records[i].data;
        lens[i] = res->records[i].len;
    }
    sts_tlsrpt t;
    sts_diags diags;
    sts_diags_init(&diags);
    int rc = recs && lens ? sts_tlsrpt_select(recs, lens, res->n, &t, &diags, x->tlsrpt_why,
                                              sizeof(x->tlsrpt_why))
                          : STS_ENOMEM;
    free(recs);
    free(lens);
    if (rc && !x->tlsrpt_why[0])
        snprintf(x->tlsrpt_why, sizeof(x->tlsrpt_why), "%s", sts_strerror(rc));
    /* TXT records at _smtp._tls of which none is v=TLSRPTv1 (v=TLSRPTv2, a typo) are a
     * record meant for TLSRPT that senders discard: invalid, not missing. */
    x->tlsrpt = rc == 0 ? STS_CHECK_TLSRPT_VALID : STS_CHECK_TLSRPT_INVALID;
    x->tlsrpt_json = tlsrpt_json(name, res, rc ? NULL : &t, rc ? x->tlsrpt_why : NULL);
    if (!rc)
        sts_tlsrpt_free(&t);
    sts_diags_free(&diags);
}

/* ---- drift ---- */

void sts_check_drift(sts_check_extra *x, const sts_cache_entry *e, const sts_discovery *d)
{
    x->drift = STS_DRIFT_NONE;
    x->cached_id[0] = '\0';
    if (!e || !e->has_policy || !d->have_policy || !d->have_txt)
        return;
    snprintf(x->cached_id, sizeof(x->cached_id), "%s", e->id);
    int same_id = !strcmp(e->id, d->txt_id), same = sts_policy_same(&e->policy, &d->policy);
    if (same_id && !same)
        x->drift = STS_DRIFT_SAME_ID;
    else if (!same_id && same)
        x->drift = STS_DRIFT_ID_ONLY;
}

/* ---- gathering the facts ---- */

static sts_check_txt txt_kind(const sts_discovery *d)
{
    switch (d->txt_kind) {
    case STS_CACHE_TXT_FOUND:
        return STS_CHECK_TXT_FOUND;
    case STS_CACHE_TXT_ABSENT:
        return STS_CHECK_TXT_ABSENT;
    case STS_CACHE_TXT_INVALID:
        return STS_CHECK_TXT_INVALID;
    default:
        return STS_CHECK_TXT_TEMPFAIL;
    }
}

/* The failure of the fetch or the policy that counts (RFC 8460 4.3.2.2). */
static sts_result_type policy_failure(const sts_discovery *d)
{
    for (size_t i = 0; i < d->nfailures; i++)
        if (d->failures[i] == STS_RESULT_STS_WEBPKI_INVALID ||
            d->failures[i] == STS_RESULT_STS_POLICY_INVALID ||
            d->failures[i] == STS_RESULT_STS_POLICY_FETCH_ERROR)
            return d->failures[i];
    return STS_RESULT_NONE;
}

static time_t iso_time(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    if (!s || !*s || !strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm))
        return 0;
    return timegm(&tm);
}

/* The certificate's DNS names, "a, b", into out. */
static void dns_names(const sts_mx_tls *t, char *out, size_t outlen)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < t->npeer_names && off < outlen; i++)
        if (!strncmp(t->peer_names[i], "DNS:", 4))
            off += (size_t)snprintf(out + off, outlen - off, "%s%s", off ? ", " : "",
                                    t->peer_names[i] + 4);
}

static void gather_mx(const sts_mx_result *m, sts_check_mx *c, char *names, size_t nameslen)
{
    memset(c, 0, sizeof(*c));
    c->host = m->host;
    c->policy_match = m->policy_match;
    c->greeted = m->greeted;
    c->why = m->tls_attempted && !m->tls_up && m->tls.error ? m->tls.error : m->detail;
    c->starttls_offered = m->starttls_offered;
    c->starttls_refused = m->starttls_offered && m->starttls_code && m->starttls_code != 220;
    c->tls_attempted = m->tls_attempted;
    c->tls_up = m->tls_up;
    c->version = m->tls_up ? m->tls.version : NULL;
    c->chain_ok = m->tls.chain_ok;
    c->time_ok = m->tls.time_ok;
    c->not_yet_valid = m->tls.not_yet_valid;
    c->name_ok = m->tls.name_ok;
    c->verify_error = m->tls.verify_error;
    dns_names(&m->tls, names, nameslen);
    c->names = names;
    c->not_after = iso_time(m->tls.not_after);
}

#define CHECK_NAMES_MAX 512

void sts_check_judge(const sts_rcpt_result *r, const sts_discovery *d, const sts_check_extra *x,
                     sts_findings *out)
{
    sts_check_mx *mx = calloc(r->nmx ? r->nmx : 1, sizeof(*mx));
    char(*names)[CHECK_NAMES_MAX] = calloc(r->nmx ? r->nmx : 1, sizeof(*names));
    sts_check_facts f = {
        .domain = r->domain,
        .txt = txt_kind(d),
        .txt_why = d->txt_why,
        .policy_failure = policy_failure(d),
        .policy_why = d->detail,
        .policy = d->have_policy ? &d->policy : NULL,
        .mx_known = x->mx_known,
        .null_mx = r->null_mx,
        .mx_why = r->detail,
        .mx = mx,
        .nmx = mx && names ? r->nmx : 0,
        .tlsrpt = x->tlsrpt,
        .tlsrpt_why = x->tlsrpt_why,
        .drift = x->drift,
        .cached_id = x->cached_id,
        .served_id = d->txt_id,
        .warn_days = x->warn_days,
        .now = x->now,
    };
    for (size_t i = 0; i < f.nmx; i++)
        gather_mx(&r->mx[i], &mx[i], names[i], sizeof(names[i]));
    sts_finding_judge(&f, out);
    free(mx);
    free(names);
}

/* ---- telling ---- */

/* The stages of a session people read, in order, with their JSON names. */
static const struct {
    sts_smtpc_state st;
    const char *name;
} stages[] = {
    {STS_SMTPC_CONNECT, "connect"},   {STS_SMTPC_BANNER, "banner"}, {STS_SMTPC_EHLO, "ehlo"},
    {STS_SMTPC_STARTTLS, "starttls"}, {STS_SMTPC_TLS, "handshake"}, {STS_SMTPC_EHLO2, "ehlo_tls"},
};

static void log_mx_facts(sts_log *log, const sts_mx_result *m)
{
    char t[256];
    size_t off = (size_t)snprintf(t, sizeof(t), "dns %.1f", m->dns_ms);
    for (size_t i = 0; i < sizeof(stages) / sizeof(stages[0]) && off < sizeof(t); i++)
        off += (size_t)snprintf(t + off, sizeof(t) - off, ", %s %.1f", stages[i].name,
                                m->stage_ms[stages[i].st]);
    sts_info(log, "FACTS %s: timings ms: %s", m->host, t);
    if (m->tls_up)
        sts_info(log, "FACTS %s: %s %s", m->host, m->tls.version, m->tls.cipher);
    for (size_t i = 0; i < m->tls.nchain; i++) {
        const sts_tls_cert *c = &m->tls.chain[i];
        sts_info(log, "FACTS %s: cert %zu: subject %s; issuer %s; SANs %s; key %s %d; %s .. %s",
                 m->host, i, c->subject, c->issuer, c->sans[0] ? c->sans : "(none)", c->key_type,
                 c->key_bits, c->not_before, c->not_after);
    }
}

void sts_check_log(sts_log *log, const sts_rcpt_result *r, const sts_findings *fs)
{
    for (size_t i = 0; i < r->nmx; i++)
        log_mx_facts(log, &r->mx[i]);
    sts_check_log_verdict(log, r->domain, fs->items, fs->n, fs->verdict);
}

void sts_check_log_verdict(sts_log *log, const char *domain, const sts_finding *a, size_t n,
                           sts_verdict v)
{
    sts_info(log, "VERDICT %s: %s", domain, sts_verdict_name(v));
    for (size_t i = 0; i < n; i++) {
        const sts_finding *f = &a[i];
        char hint[512];
        sts_info(log, "  %s %s %s: %s; fix: %s", sts_verdict_name(sts_finding_severity(f->id)),
                 sts_finding_name(f->id), f->subject, f->detail,
                 sts_finding_hint(f->id, f->subject, hint, sizeof(hint)));
    }
}

json_t *sts_check_findings_json(const sts_finding *fa, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        const sts_finding *f = &fa[i];
        char hint[512];
        json_t *o = json_object();
        json_object_set_new(o, "id", json_string(sts_finding_name(f->id)));
        json_object_set_new(o, "severity",
                            json_string(sts_verdict_name(sts_finding_severity(f->id))));
        json_object_set_new(o, "subject", json_string(f->subject));
        json_object_set_new(o, "detail", json_string(f->detail));
        json_object_set_new(o, "hint",
                            json_string(sts_finding_hint(f->id, f->subject, hint, sizeof(hint))));
        json_array_append_new(a, o);
    }
    return a;
}

static json_t *drift_json(const sts_check_extra *x, const sts_discovery *d)
{
    if (x->drift == STS_DRIFT_NONE)
        return json_null();
    json_t *o = json_object();
    json_object_set_new(o, "kind", json_string(sts_drift_name(x->drift)));
    json_object_set_new(o, "cached_id", json_string(x->cached_id));
    json_object_set_new(o, "served_id", json_string(d->txt_id));
    return o;
}

/* "policy_fetch": whether the policy could be had, and why not (RFC 8460 type + reason). */
static json_t *fetch_json(const sts_discovery *d)
{
    json_t *o = json_object();
    sts_result_type t = policy_failure(d);
    json_object_set_new(o, "ok", json_boolean(d->have_policy));
    json_object_set_new(o, "result_type", t ? json_string(sts_result_type_name(t)) : json_null());
    json_object_set_new(o, "reason", t && d->detail[0] ? json_string(d->detail) : json_null());
    return o;
}

static json_t *chain_json(const sts_mx_tls *t, time_t now)
{
    json_t *a = json_array();
    for (size_t i = 0; i < t->nchain; i++) {
        const sts_tls_cert *c = &t->chain[i];
        json_t *o = json_object(), *sans = json_array();
        char buf[sizeof(c->sans)];
        snprintf(buf, sizeof(buf), "%s", c->sans);
        for (char *save, *s = strtok_r(buf, " ", &save); s; s = strtok_r(NULL, " ", &save))
            json_array_append_new(sans, json_string(s));
        time_t na = iso_time(c->not_after);
        json_object_set_new(o, "subject", json_string(c->subject));
        json_object_set_new(o, "issuer", json_string(c->issuer));
        json_object_set_new(o, "dns_sans", sans);
        json_object_set_new(o, "key_type", json_string(c->key_type));
        json_object_set_new(o, "key_bits", json_integer(c->key_bits));
        json_object_set_new(o, "not_before", json_string(c->not_before));
        json_object_set_new(o, "not_after", json_string(c->not_after));
        json_object_set_new(o, "days_left",
                            na ? json_integer((json_int_t)((na - now) / 86400)) : json_null());
        json_array_append_new(a, o);
    }
    return a;
}

/* Milliseconds to the microsecond. */
static json_t *ms_json(double ms)
{
    return json_real(round(ms * 1000.0) / 1000.0);
}

/* The MX objects (pooled, so never changed: copied) with check's facts added. */
static json_t *mx_json(json_t *pooled, const sts_rcpt_result *r, time_t now)
{
    json_t *a = json_deep_copy(pooled);
    for (size_t i = 0; a && i < r->nmx && i < json_array_size(a); i++) {
        const sts_mx_result *m = &r->mx[i];
        json_t *o = json_array_get(a, i), *t = json_object();
        json_object_set_new(t, "dns", ms_json(m->dns_ms));
        for (size_t k = 0; k < sizeof(stages) / sizeof(stages[0]); k++)
            json_object_set_new(t, stages[k].name, ms_json(m->stage_ms[stages[k].st]));
        json_object_set_new(o, "timings_ms", t);
        json_object_set_new(o, "probed_refused", json_boolean(m->probed_refused));
        json_t *tls = json_object_get(o, "tls");
        if (json_is_object(tls))
            json_object_set_new(tls, "chain", chain_json(&m->tls, now));
    }
    return a;
}

void sts_check_json(json_t *o, const sts_rcpt_result *r, const sts_discovery *d,
                    const sts_check_extra *x, const sts_findings *fs)
{
    json_object_del(o, "outcome");
    json_object_set_new(o, "would",
                        json_string(sts_would_name(sts_would_from_outcome(r->outcome))));
    json_object_set_new(o, "verdict", json_string(sts_verdict_name(fs->verdict)));
    json_object_set_new(o, "findings", sts_check_findings_json(fs->items, fs->n));
    json_object_set_new(o, "tlsrpt", x->tlsrpt_json ? json_incref(x->tlsrpt_json) : json_null());
    json_object_set_new(o, "drift", drift_json(x, d));
    json_object_set_new(o, "policy_fetch", fetch_json(d));
    json_t *mx = mx_json(json_object_get(o, "mx"), r, x->now);
    if (mx)
        json_object_set_new(o, "mx", mx);
}
