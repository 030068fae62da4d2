/*
 * finding.c - the findings of `ststest check` from the facts it gathered (finding.h).
 * Pure: no I/O, no clock (the facts carry `now`).
 */
#include "sender/finding.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

typedef struct finding_row {
    const char *name;
    sts_verdict severity;
    const char *hint;
} finding_row;

static const finding_row rows[STS_FINDING_COUNT] = {
#define ROW(sym, name, sev, hint) [sym] = {name, sev, hint},
    STS_FINDINGS(ROW)
#undef ROW
};

#define NAME_CASE(sym, val, name)                                                                  \
    case sym:                                                                                      \
        return name;

const char *sts_verdict_name(sts_verdict v)
{
    switch (v) {
        STS_VERDICT_WORDS(NAME_CASE)
    }
    return NULL;
}

const char *sts_drift_name(sts_drift d)
{
    switch (d) {
        STS_DRIFTS(NAME_CASE)
    }
    return NULL;
}

const char *sts_would_name(sts_would w)
{
    switch (w) {
        STS_WOULDS(NAME_CASE)
    }
    return NULL;
}
#undef NAME_CASE

sts_would sts_would_from_outcome(sts_outcome o)
{
    switch (o) {
    case STS_OUTCOME_DELIVERED:
        return STS_WOULD_DELIVER;
    case STS_OUTCOME_FAILED:
        return STS_WOULD_FAIL;
    default:
        return STS_WOULD_DEFER;
    }
}

const char *sts_finding_name(sts_finding_id id)
{
    return (unsigned)id < STS_FINDING_COUNT ? rows[id].name : NULL;
}

int sts_finding_parse(const char *name, sts_finding_id *out)
{
    for (int i = 0; name && i < STS_FINDING_COUNT; i++)
        if (!strcmp(rows[i].name, name)) {
            *out = (sts_finding_id)i;
            return 0;
        }
    return -1;
}

sts_verdict sts_finding_severity(sts_finding_id id)
{
    return (unsigned)id < STS_FINDING_COUNT ? rows[id].severity : STS_VERDICT_FAIL;
}

/* The hint's "%s" replaced by subject (every hint has at most one). */
char *sts_finding_hint(sts_finding_id id, const char *subject, char *out, size_t outlen)
{
    const char *h = (unsigned)id < STS_FINDING_COUNT ? rows[id].hint : "";
    const char *s = strstr(h, "%s");
    if (!s)
        snprintf(out, outlen, "%s", h);
    else
        snprintf(out, outlen, "%.*s%s%s", (int)(s - h), h, subject ? subject : "", s + 2);
    return out;
}

sts_verdict sts_finding_verdict(const sts_finding *a, size_t n)
{
    sts_verdict v = STS_VERDICT_PASS;
    for (size_t i = 0; i < n; i++)
        if (sts_finding_severity(a[i].id) > v)
            v = sts_finding_severity(a[i].id);
    return v;
}

int sts_verdict_exit(sts_verdict worst)
{
    return worst == STS_VERDICT_PASS ? 0 : worst == STS_VERDICT_WARN ? 1 : 2;
}

/* ---- judging ---- */

static void add(sts_findings *out, sts_finding_id id, const char *subject, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add(sts_findings *out, sts_finding_id id, const char *subject, const char *fmt, ...)
{
    if (out->n >= STS_FINDINGS_MAX)
        return;
    sts_finding *f = &out->items[out->n++];
    f->id = id;
    snprintf(f->subject, sizeof(f->subject), "%s", subject ? subject : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->detail, sizeof(f->detail), fmt, ap);
    va_end(ap);
}

static const char *or_unknown(const char *s)
{
    return s && *s ? s : "no reason given";
}

/* RFC 8461 3.1 and 3.3: the record, the fetch and the policy. */
static void judge_record(const sts_check_facts *f, sts_findings *out)
{
    char txt[STS_FINDING_SUBJECT_MAX], host[STS_FINDING_SUBJECT_MAX];
    snprintf(txt, sizeof(txt), "_mta-sts.%s", f->domain);
    snprintf(host, sizeof(host), "mta-sts.%s", f->domain);
    switch (f->txt) {
    case STS_CHECK_TXT_ABSENT:
        add(out, STS_FINDING_STS_RECORD_MISSING, txt,
            "no TXT record beginning with v=STSv1 "
            "at %s: the domain has no MTA-STS",
            txt);
        return;
    case STS_CHECK_TXT_INVALID:
    case STS_CHECK_TXT_TEMPFAIL:
        add(out, STS_FINDING_STS_RECORD_INVALID, txt, "%s: new senders get no MTA-STS",
            or_unknown(f->txt_why));
        return;
    case STS_CHECK_TXT_FOUND:
        break;
    }
    switch (f->policy_failure) {
    case STS_RESULT_STS_WEBPKI_INVALID:
        add(out, STS_FINDING_POLICY_HOST_CERT_INVALID, host, "%s: new senders get no MTA-STS",
            or_unknown(f->policy_why));
        return;
    case STS_RESULT_STS_POLICY_INVALID:
        add(out, STS_FINDING_POLICY_INVALID, host, "%s: new senders get no MTA-STS",
            or_unknown(f->policy_why));
        return;
    case STS_RESULT_NONE:
        break;
    default:
        add(out, STS_FINDING_POLICY_FETCH_FAILED, host, "%s: new senders get no MTA-STS",
            or_unknown(f->policy_why));
        return;
    }
}

/* RFC 8461 3.2 and 5: what the served policy says. */
static void judge_policy(const sts_check_facts *f, sts_findings *out)
{
    const sts_policy *p = f->policy;
    char host[STS_FINDING_SUBJECT_MAX];
    snprintf(host, sizeof(host), "mta-sts.%s", f->domain);
    if (!p)
        return;
    if (p->mode == STS_MODE_TESTING)
        add(out, STS_FINDING_POLICY_MODE_TESTING, host,
            "the policy's mode is %s: senders report failures but deliver anyway",
            sts_mode_name(p->mode));
    if (p->mode == STS_MODE_NONE)
        add(out, STS_FINDING_POLICY_MODE_NONE, host,
            "the policy's mode is %s: senders treat the domain as having no policy",
            sts_mode_name(p->mode));
    if (p->max_age < 86400)
        add(out, STS_FINDING_POLICY_MAX_AGE_SHORT, host,
            "max_age is %ld s, under a day (RFC 8461 3.2 suggests weeks)", p->max_age);
    if (!f->mx_known)
        return;
    for (size_t i = 0; i < p->nmx; i++) {
        size_t k = 0;
        while (k < f->nmx && !sts_mx_pattern_match(p->mx[i], f->mx[k].host))
            k++;
        if (k == f->nmx)
            add(out, STS_FINDING_POLICY_MX_UNUSED, host,
                "the policy's mx: %s matches none of the domain's MX hosts", p->mx[i]);
    }
}

/* The certificate of one MX whose handshake completed. */
static void judge_cert(const sts_check_facts *f, const sts_check_mx *m, sts_findings *out)
{
    if (!m->name_ok)
        add(out, STS_FINDING_MX_CERT_NAME_MISMATCH, m->host, "certificate names %s, MX is %s",
            m->names && *m->names ? m->names : "no DNS name", m->host);
    if (!m->time_ok && m->not_yet_valid)
        add(out, STS_FINDING_MX_CERT_NOT_YET_VALID, m->host,
            "the certificate of %s is not "
            "valid yet",
            m->host);
    else if (!m->time_ok)
        add(out, STS_FINDING_MX_CERT_EXPIRED, m->host, "the certificate of %s has expired",
            m->host);
    if (!m->chain_ok)
        add(out, STS_FINDING_MX_CERT_UNTRUSTED, m->host,
            "the certificate of %s does not chain to a trusted root: %s", m->host,
            or_unknown(m->verify_error));
    if (m->time_ok && m->not_after) {
        double days = difftime(m->not_after, f->now) / 86400.0;
        if (days < f->warn_days)
            add(out, STS_FINDING_MX_CERT_EXPIRING, m->host,
                "the certificate of %s expires in %.1f days (--warn-days %d)", m->host, days,
                f->warn_days);
    }
}

int sts_finding_tls_too_old(const char *version)
{
    return version && strcmp(version, "TLSv1.2") && strcmp(version, "TLSv1.3");
}

/* One MX host: the policy, the connection, STARTTLS, TLS, the certificate. */
static void judge_mx(const sts_check_facts *f, const sts_check_mx *m, sts_findings *out)
{
    if (m->policy_match == 0)
        add(out, STS_FINDING_MX_NOT_IN_POLICY, m->host,
            "%s matches no mx: pattern of the policy: enforcing senders refuse it", m->host);
    if (m->assure_accepted)
        add(out, STS_FINDING_ASSURE_TLS_ACCEPTED, m->host,
            "%s accepted a recipient in the clear: %s", m->host, or_unknown(m->why));
    if (!m->greeted) {
        add(out, STS_FINDING_MX_UNREACHABLE, m->host, "%s", or_unknown(m->why));
        return;
    }
    if (!m->starttls_offered || m->starttls_refused) {
        add(out, STS_FINDING_MX_STARTTLS_MISSING, m->host, "%s",
            !m->starttls_offered ? "STARTTLS is not offered in the EHLO reply"
                                 : or_unknown(m->why));
        return;
    }
    if (m->tls_attempted && !m->tls_up) {
        add(out, STS_FINDING_MX_TLS_HANDSHAKE_FAILED, m->host, "TLS handshake failed: %s",
            or_unknown(m->why));
        return;
    }
    if (!m->tls_up)
        return;
    if (sts_finding_tls_too_old(m->version))
        add(out, STS_FINDING_MX_TLS_TOO_OLD, m->host, "%s negotiated %s, older than TLS 1.2",
            m->host, m->version);
    judge_cert(f, m, out);
}

/* RFC 8460 3. */
static void judge_tlsrpt(const sts_check_facts *f, sts_findings *out)
{
    char name[STS_FINDING_SUBJECT_MAX];
    snprintf(name, sizeof(name), "_smtp._tls.%s", f->domain);
    if (f->tlsrpt == STS_CHECK_TLSRPT_MISSING)
        add(out, STS_FINDING_TLSRPT_MISSING, name,
            "no TXT record at %s: nobody receives TLS reports", name);
    else if (f->tlsrpt == STS_CHECK_TLSRPT_INVALID)
        add(out, STS_FINDING_TLSRPT_INVALID, name, "%s", or_unknown(f->tlsrpt_why));
}

static void judge_drift(const sts_check_facts *f, sts_findings *out)
{
    char txt[STS_FINDING_SUBJECT_MAX];
    snprintf(txt, sizeof(txt), "_mta-sts.%s", f->domain);
    if (f->drift == STS_DRIFT_SAME_ID)
        add(out, STS_FINDING_POLICY_DRIFT_SAME_ID, txt,
            "the policy served under id %s differs from the one cached under that id",
            f->served_id ? f->served_id : "");
    else if (f->drift == STS_DRIFT_ID_ONLY)
        add(out, STS_FINDING_POLICY_DRIFT_ID_ONLY, txt,
            "the TXT id changed from %s to %s but the policy is the same",
            f->cached_id ? f->cached_id : "", f->served_id ? f->served_id : "");
}

void sts_finding_judge(const sts_check_facts *f, sts_findings *out)
{
    memset(out, 0, sizeof(*out));
    judge_record(f, out);
    judge_policy(f, out);
    if (!f->mx_known && !f->null_mx)
        add(out, STS_FINDING_MX_UNREACHABLE, f->domain, "%s", or_unknown(f->mx_why));
    for (size_t i = 0; i < f->nmx; i++)
        judge_mx(f, &f->mx[i], out);
    judge_tlsrpt(f, out);
    judge_drift(f, out);
    out->verdict = sts_finding_verdict(out->items, out->n);
}
