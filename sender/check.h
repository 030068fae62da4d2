/*
 * check.h - what `ststest check` adds to a domain's result (sender.c gathers, this
 * module tells): the facts beyond `send`'s (the _smtp._tls record, the drift against a
 * cache), the findings (finding.h) and their verdict, told twice: a verdict block at the
 * end of the domain's transcript, and the JSON keys of the contract (README "check"):
 * verdict, findings, tlsrpt, drift, would, policy_fetch, and per MX timings and
 * tls.chain.
 *
 * Gathering is split from judging: sts_check_gather() only copies facts out of the
 * sender's result, sts_finding_judge() (finding.h) decides.
 */
#ifndef STS_CHECK_H
#define STS_CHECK_H

#include <jansson.h>
#include <time.h>

#include "common/log.h"
#include "sender/cache.h"
#include "sender/discover.h"
#include "sender/finding.h"
#include "sender/resolver.h"
#include "sender/result.h"

/* check's facts beyond send's, per domain. */
typedef struct sts_check_extra {
    int tlsrpt_done;         /* the _smtp._tls lookup answered */
    sts_check_tlsrpt tlsrpt; /* what it gave */
    char tlsrpt_why[300];    /* why it is not valid, for people */
    json_t *tlsrpt_json;     /* {"name", "records", "valid", "rua", "error"}; owned */
    sts_drift drift;         /* against --cache's entry */
    char cached_id[STS_TXT_ID_MAX + 1];
    int mx_known; /* an MX list (or the implicit MX) was found */
    int warn_days;
    time_t now;
} sts_check_extra;

/* Release x's JSON. */
void sts_check_extra_free(sts_check_extra *x);

/* RFC 8460 3: judge the TXT answer of _smtp._tls.<domain> (name) into x. */
void sts_check_read_tlsrpt(sts_check_extra *x, const char *name, const sts_dns_txt_result *res);

/* The drift between the cached entry e (may be NULL: none) and what d fetched. */
void sts_check_drift(sts_check_extra *x, const sts_cache_entry *e, const sts_discovery *d);

/* The findings of one domain: facts from r, d and x, judged. */
void sts_check_judge(const sts_rcpt_result *r, const sts_discovery *d, const sts_check_extra *x,
                     sts_findings *out);

/* The verdict block that ends a domain's transcript:
 *     VERDICT example.test: fail
 *     FINDING mx-cert-expired (fail) mail.example.test: the certificate ... has expired
 *       fix: renew the certificate of mail.example.test and reload the mail server
 * and the per-MX facts (chain, TLS, timings) before it. */
void sts_check_log(sts_log *log, const sts_rcpt_result *r, const sts_findings *fs);

/* The verdict block alone (also `check --assure-tls`'s), findings a[0..n). */
void sts_check_log_verdict(sts_log *log, const char *domain, const sts_finding *a, size_t n,
                           sts_verdict v);

/* The JSON "findings" array of a[0..n): {id, severity, subject, detail, hint}. */
json_t *sts_check_findings_json(const sts_finding *a, size_t n);

/* Add check's keys to the domain's JSON object o (from sts_result_json), and replace its
 * "outcome" by "would"; per MX "timings_ms" and "tls"."chain". */
void sts_check_json(json_t *o, const sts_rcpt_result *r, const sts_discovery *d,
                    const sts_check_extra *x, const sts_findings *fs);

#endif
