/*
 * finding.h - `ststest check`'s verdict on a deployment: the findings a postmaster
 * reads (what is wrong, how bad, how to fix it) and the pure function that turns the
 * facts a check gathered into them.
 *
 * Everything here is data and pure functions, no I/O: the sender (sender.c) gathers
 * the facts (policy discovery, the MX probes, the _smtp._tls lookup, the drift against
 * a cache), sts_finding_judge() decides, and result.c reports. tests/unit/test_finding.c
 * holds the table of cases.
 *
 * Vocabularies (X-macro tables, like common/vocab.h; their words are JSON contracts of
 * `check --json`, see README "check"):
 *   - STS_FINDINGS: id, severity and the one-line fix hint of every finding. A hint may
 *     name the finding's subject once, where it says "%s".
 *   - STS_VERDICTS: pass, warn, fail (a finding's severity is warn or fail).
 *   - STS_DRIFTS: how the served policy differs from the cached one.
 *   - STS_WOULDS: what a sender applying the served policy would do.
 *
 * Functions return values; name functions return NULL for a value not in the table.
 */
#ifndef STS_FINDING_H
#define STS_FINDING_H

#include <stddef.h>
#include <time.h>

#include "common/vocab.h"
#include "sender/policy.h"

#define STS_VERDICT_WORDS(X)                                                                       \
    X(STS_VERDICT_PASS, 0, "pass")                                                                 \
    X(STS_VERDICT_WARN, 1, "warn")                                                                 \
    X(STS_VERDICT_FAIL, 2, "fail")

#define STS_FINDING_ENUM3(sym, val, name) sym = val,
typedef enum { STS_VERDICT_WORDS(STS_FINDING_ENUM3) } sts_verdict;

/* id, JSON id, severity, hint ("%s": the subject). */
#define STS_FINDINGS(X)                                                                            \
    X(STS_FINDING_STS_RECORD_MISSING, "sts-record-missing", STS_VERDICT_WARN,                      \
      "publish a TXT record \"v=STSv1; id=...\" at %s to enable MTA-STS")                          \
    X(STS_FINDING_STS_RECORD_INVALID, "sts-record-invalid", STS_VERDICT_FAIL,                      \
      "publish exactly one valid \"v=STSv1; id=<1-32 letters or digits>\" TXT record at %s")       \
    X(STS_FINDING_POLICY_FETCH_FAILED, "policy-fetch-failed", STS_VERDICT_FAIL,                    \
      "serve the policy at https://%s/.well-known/mta-sts.txt with status 200, "                   \
      "Content-Type: text/plain and no redirect: new senders get no MTA-STS")                      \
    X(STS_FINDING_POLICY_HOST_CERT_INVALID, "policy-host-cert-invalid", STS_VERDICT_FAIL,          \
      "install a certificate for %s from a trusted CA, unexpired, with that name as a DNS SAN")    \
    X(STS_FINDING_POLICY_INVALID, "policy-invalid", STS_VERDICT_FAIL,                              \
      "fix the policy at %s: version: STSv1, mode, max_age and mx: lines (RFC 8461 3.2)")          \
    X(STS_FINDING_POLICY_MODE_TESTING, "policy-mode-testing", STS_VERDICT_WARN,                    \
      "switch the policy at %s to mode: enforce once TLS reports show no failures")                \
    X(STS_FINDING_POLICY_MODE_NONE, "policy-mode-none", STS_VERDICT_WARN,                          \
      "the policy at %s switches MTA-STS off: use mode: enforce (or testing) to protect mail")     \
    X(STS_FINDING_POLICY_MAX_AGE_SHORT, "policy-max-age-short", STS_VERDICT_WARN,                  \
      "raise max_age in the policy at %s to at least 86400, better weeks (e.g. 604800)")           \
    X(STS_FINDING_POLICY_MX_UNUSED, "policy-mx-unused", STS_VERDICT_WARN,                          \
      "remove the unused mx: pattern from the policy at %s, or add the MX it was meant for")       \
    X(STS_FINDING_MX_NOT_IN_POLICY, "mx-not-in-policy", STS_VERDICT_FAIL,                          \
      "add an mx: line matching %s to the policy (and bump the TXT id)")                           \
    X(STS_FINDING_MX_UNREACHABLE, "mx-unreachable", STS_VERDICT_FAIL,                              \
      "make %s resolve and accept SMTP connections with a 220 greeting")                           \
    X(STS_FINDING_MX_STARTTLS_MISSING, "mx-starttls-missing", STS_VERDICT_FAIL,                    \
      "enable STARTTLS on %s (Postfix: smtpd_tls_security_level = may, with a certificate)")       \
    X(STS_FINDING_MX_TLS_HANDSHAKE_FAILED, "mx-tls-handshake-failed", STS_VERDICT_FAIL,            \
      "fix TLS on %s: a TLS 1.2 or 1.3 handshake must complete with a certificate and key that "   \
      "match")                                                                                     \
    X(STS_FINDING_MX_TLS_TOO_OLD, "mx-tls-too-old", STS_VERDICT_FAIL,                              \
      "enable TLS 1.2 and 1.3 on %s (RFC 8996 deprecates TLS 1.0 and 1.1)")                        \
    X(STS_FINDING_MX_CERT_NAME_MISMATCH, "mx-cert-name-mismatch", STS_VERDICT_FAIL,                \
      "reissue the certificate for %s with that name as a DNS SAN")                                \
    X(STS_FINDING_MX_CERT_EXPIRED, "mx-cert-expired", STS_VERDICT_FAIL,                            \
      "renew the certificate of %s and reload the mail server")                                    \
    X(STS_FINDING_MX_CERT_NOT_YET_VALID, "mx-cert-not-yet-valid", STS_VERDICT_FAIL,                \
      "check the clock of the CA and of %s, or install a certificate valid now")                   \
    X(STS_FINDING_MX_CERT_UNTRUSTED, "mx-cert-untrusted", STS_VERDICT_FAIL,                        \
      "serve on %s a certificate from a public CA with its full chain (intermediates included)")   \
    X(STS_FINDING_MX_CERT_EXPIRING, "mx-cert-expiring", STS_VERDICT_WARN,                          \
      "renew the certificate of %s before it expires (check that automatic renewal runs)")         \
    X(STS_FINDING_TLSRPT_MISSING, "tlsrpt-missing", STS_VERDICT_WARN,                              \
      "publish a TXT record \"v=TLSRPTv1; rua=mailto:...\" at %s to receive TLS reports")          \
    X(STS_FINDING_TLSRPT_INVALID, "tlsrpt-invalid", STS_VERDICT_WARN,                              \
      "publish exactly one TXT record \"v=TLSRPTv1; rua=mailto:...\" at %s (RFC 8460 3)")          \
    X(STS_FINDING_POLICY_DRIFT_SAME_ID, "policy-drift-same-id", STS_VERDICT_FAIL,                  \
      "bump the TXT id at %s after changing the policy: senders with the old one cached keep it")  \
    X(STS_FINDING_POLICY_DRIFT_ID_ONLY, "policy-drift-id-only", STS_VERDICT_WARN,                  \
      "the TXT id at %s changed but the policy did not: change the id only with the policy")       \
    X(STS_FINDING_ASSURE_TLS_ACCEPTED, "assure-tls-accepted", STS_VERDICT_FAIL,                    \
      "make %s refuse mail before STARTTLS (Postfix: smtpd_tls_security_level = encrypt)")

#define STS_FINDING_ENUM4(sym, id, sev, hint) sym,
typedef enum { STS_FINDINGS(STS_FINDING_ENUM4) STS_FINDING_COUNT } sts_finding_id;
#undef STS_FINDING_ENUM4

/* The drift between a cached policy and the one served (check --cache). */
#define STS_DRIFTS(X)                                                                              \
    X(STS_DRIFT_NONE, 0, "unchanged")                                                              \
    X(STS_DRIFT_SAME_ID, 1, "policy-changed-same-id")                                              \
    X(STS_DRIFT_ID_ONLY, 2, "id-changed-same-policy")

typedef enum { STS_DRIFTS(STS_FINDING_ENUM3) } sts_drift;

/* What a sender applying the served policy would do with a message. */
#define STS_WOULDS(X)                                                                              \
    X(STS_WOULD_DELIVER, 0, "deliver")                                                             \
    X(STS_WOULD_DEFER, 1, "defer")                                                                 \
    X(STS_WOULD_FAIL, 2, "fail")

typedef enum { STS_WOULDS(STS_FINDING_ENUM3) } sts_would;
#undef STS_FINDING_ENUM3

const char *sts_verdict_name(sts_verdict v);
const char *sts_drift_name(sts_drift d);
const char *sts_would_name(sts_would w);
sts_would sts_would_from_outcome(sts_outcome o);

/* The JSON id ("mx-cert-expired"), or NULL. */
const char *sts_finding_name(sts_finding_id id);
/* The id of name: 0 and *out, or -1. */
int sts_finding_parse(const char *name, sts_finding_id *out);
sts_verdict sts_finding_severity(sts_finding_id id);
/* The hint with subject filled in, into out[outlen]; returns out. */
char *sts_finding_hint(sts_finding_id id, const char *subject, char *out, size_t outlen);

/* 1 when a negotiated TLS version (OpenSSL's name, "TLSv1.1") is older than TLS 1.2. */
int sts_finding_tls_too_old(const char *version);

/* ---- the facts ---- */

/* What the _mta-sts TXT lookup gave (RFC 8461 3.1). */
typedef enum {
    STS_CHECK_TXT_FOUND = 0, /* exactly one valid record */
    STS_CHECK_TXT_ABSENT,    /* no record beginning with v=STSv1 (NXDOMAIN, NODATA) */
    STS_CHECK_TXT_INVALID,   /* several records, or an invalid one */
    STS_CHECK_TXT_TEMPFAIL,  /* no answer (SERVFAIL, timeout) */
} sts_check_txt;

/* What the _smtp._tls TXT lookup gave (RFC 8460 3). */
typedef enum {
    STS_CHECK_TLSRPT_VALID = 0,
    STS_CHECK_TLSRPT_MISSING, /* no TXT record at all (NXDOMAIN, NODATA) */
    STS_CHECK_TLSRPT_INVALID, /* several, or one invalid */
} sts_check_tlsrpt;

/* One MX host as probed (also when the policy refuses it). */
typedef struct sts_check_mx {
    const char *host;
    int policy_match; /* 1/0; -1 when there is no policy */
    int greeted;      /* connected, 220 greeting and EHLO answered */
    const char *why;  /* when !greeted, or STARTTLS refused, or the handshake failed */
    int starttls_offered;
    int starttls_refused; /* STARTTLS offered but not answered 220 */
    int tls_attempted, tls_up;
    const char *version; /* "TLSv1.3" when tls_up */
    int chain_ok, time_ok, not_yet_valid, name_ok;
    const char *verify_error; /* OpenSSL's words, or NULL */
    const char *names;        /* the certificate's DNS names, for the detail */
    time_t not_after;         /* of the leaf; 0 unknown */
    int assure_accepted;      /* check --assure-tls: accepted mail in the clear */
} sts_check_mx;

typedef struct sts_check_facts {
    const char *domain;
    sts_check_txt txt;
    const char *txt_why;            /* a sentence for people, may be NULL */
    sts_result_type policy_failure; /* fetch-error, webpki-invalid, policy-invalid, or NONE */
    const char *policy_why;         /* why the fetch failed or the policy is invalid */
    const sts_policy *policy;       /* the served policy, NULL when none */
    int mx_known;                   /* the MX list was found (or is the implicit MX) */
    int null_mx;                    /* RFC 7505: the domain takes no mail */
    const char *mx_why;             /* why there is no MX list */
    const sts_check_mx *mx;
    size_t nmx;
    sts_check_tlsrpt tlsrpt;
    const char *tlsrpt_why;
    sts_drift drift;
    const char *cached_id, *served_id;
    int warn_days;
    time_t now;
} sts_check_facts;

#define STS_FINDING_SUBJECT_MAX 256
#define STS_FINDING_DETAIL_MAX 512
#define STS_FINDINGS_MAX 64

typedef struct sts_finding {
    sts_finding_id id;
    char subject[STS_FINDING_SUBJECT_MAX];
    char detail[STS_FINDING_DETAIL_MAX];
} sts_finding;

typedef struct sts_findings {
    sts_finding items[STS_FINDINGS_MAX];
    size_t n;
    sts_verdict verdict; /* fail if any fails, else warn if any warns, else pass */
} sts_findings;

/* The findings the facts show, in a fixed order (the record, the policy, each MX in
 * order, TLSRPT, drift), and the verdict. Pure. */
void sts_finding_judge(const sts_check_facts *f, sts_findings *out);

/* The verdict of findings a[0..n) (the rule above). */
sts_verdict sts_finding_verdict(const sts_finding *a, size_t n);

/* The exit status of `check` for the worst verdict: 0 pass, 1 warn, 2 fail. */
int sts_verdict_exit(sts_verdict worst);

#endif
