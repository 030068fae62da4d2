/*
 * rptjson.h - the RFC 8460 section 4 aggregate TLS report as JSON: a model, a builder
 * that turns the model into the report object, and a strict validator for reports
 * received (`ststest lint --report`, and later the world's collector).
 *
 * The report (RFC 8460 4.4, field names exactly as the RFC spells them):
 *
 *   { "organization-name": "...",
 *     "date-range": {"start-datetime": RFC 3339, "end-datetime": RFC 3339},
 *     "contact-info": "...", "report-id": "...",
 *     "policies": [ {
 *        "policy": {"policy-type": "tlsa" | "sts" | "no-policy-found",
 *                   "policy-string": ["version: STSv1", ...], "policy-domain": "...",
 *                   "mx-host": ["*.mail.example", ...]},
 *        "summary": {"total-successful-session-count": N,
 *                    "total-failure-session-count": N},
 *        "failure-details": [ {"result-type": RFC 8460 4.3 word, "sending-mta-ip": IP,
 *                   "receiving-mx-hostname": "...", "receiving-mx-helo": "...",
 *                   "receiving-ip": IP, "failed-session-count": N,
 *                   "additional-information": URI, "failure-reason-code": "..."} ] } ] }
 *
 * The policy-type and result-type words come from common/vocab.h's tables.
 *
 * What the validator decides, each where the RFC leaves room:
 *  - Errors: not JSON (line and column from the parser), a key given twice (jansson
 *    JSON_REJECT_DUPLICATES, with its position), a required field missing, a field of
 *    the wrong JSON type, an empty string where a name is needed, a time that is not an
 *    RFC 3339 date-time (section 5.6 of RFC 3339: "T"/"Z" in either case, fractions,
 *    numeric offsets), a date range that does not end after it starts or spans other
 *    than one day (RFC 8460 4.1: reports cover a UTC day; end 23:59:59 or the next
 *    midnight are both read as one day), a policy-type or result-type outside the
 *    tables, a count that is not a non-negative integer (5.0 and -1 are errors), an
 *    address field that is not an IPv4 or IPv6 address, a report without policies,
 *    failure-details whose failed-session-counts add up to more than the summary's
 *    total-failure-session-count (each failed session is counted once).
 *  - Warnings: an mx-host given as one string instead of a list (the RFC's own example
 *    in 4.8 does so; read as a list of one), unknown fields (the RFC defines no extension point,
 * but a reader should not fail on one), a date range that does not start at 00:00:00 UTC, an sts
 * policy without policy-string or mx-host, a failure detail without sending-mta-ip or
 *    receiving-mx-hostname (the RFC's example gives both in every detail).
 * Each finding names its place as a JSON path ("$.policies[0].summary.total-failure-
 * session-count"); parse errors carry line and column instead ("$" as the path).
 *
 * Functions return 0 or a negative code from common/err.h, as documented per function.
 */
#ifndef STS_RPTJSON_H
#define STS_RPTJSON_H

#include <jansson.h>
#include <stddef.h>
#include <time.h>

#include "common/vocab.h"

/* ---- the model ---------------------------------------------------------------------
 * Every string is borrowed: it must live until sts_rpt_build() returns. NULL (or a
 * zero count) leaves an optional field out. */
typedef struct sts_rpt_failure {
    sts_result_type result_type; /* required, not STS_RESULT_NONE */
    const char *sending_mta_ip, *receiving_mx_hostname, *receiving_mx_helo, *receiving_ip;
    long long failed_session_count;
    const char *additional_information, *failure_reason_code;
} sts_rpt_failure;

typedef struct sts_rpt_policy {
    sts_policy_type policy_type;
    const char *const *policy_string; /* lines of the applied policy */
    size_t npolicy_string;
    const char *policy_domain; /* required */
    const char *const *mx_host;
    size_t nmx_host;
    long long successful, failed; /* the summary */
    const sts_rpt_failure *failures;
    size_t nfailures;
} sts_rpt_policy;

typedef struct sts_rpt_report {
    const char *organization_name, *contact_info, *report_id; /* required */
    time_t start, end; /* the date range, seconds since the epoch */
    const sts_rpt_policy *policies;
    size_t npolicies;
} sts_rpt_report;

/* The report object of r, keys in the RFC's order (dump it with JSON_PRESERVE_ORDER).
 * Returns a new reference, or NULL when out of memory or r is not a report the
 * validator would accept without errors (a required string NULL or empty, no policy,
 * a negative count, failure counts over the summary's, an unnamed result type, an
 * address that is not one, a range other than one day): the builder never writes what
 * the validator refuses. */
json_t *sts_rpt_build(const sts_rpt_report *r);

/* "2016-04-01T00:00:00Z" for t into out[outlen] (at least 21 bytes). Returns out. */
char *sts_rpt_time(time_t t, char *out, size_t outlen);

/* RFC 3339 date-time s (exactly, nothing after it) to seconds since the epoch in UTC
 * (fractions dropped, the offset applied). 0 and *out, or STS_ESYNTAX. */
int sts_rpt_parse_time(const char *s, time_t *out);

/* ---- the validator ---------------------------------------------------------------- */
typedef enum { STS_RPT_ERROR = 0, STS_RPT_WARNING = 1 } sts_rpt_severity;

#define STS_RPT_PATH_MAX 160
#define STS_RPT_MSG_MAX 256
/* At most this many findings are kept; the rest are counted in ndropped. */
#define STS_RPT_FINDINGS_MAX 200

typedef struct sts_rpt_finding {
    sts_rpt_severity severity;
    char path[STS_RPT_PATH_MAX]; /* "$.policies[0].policy.policy-type" */
    int line, column;            /* 1-based where the JSON text gives one, else 0 */
    char message[STS_RPT_MSG_MAX];
} sts_rpt_finding;

typedef struct sts_rpt_findings {
    sts_rpt_finding *items;
    size_t n, cap;
    size_t nerrors, nwarnings, ndropped;
} sts_rpt_findings;

void sts_rpt_findings_init(sts_rpt_findings *f);
void sts_rpt_findings_free(sts_rpt_findings *f);
/* "error" / "warning". */
const char *sts_rpt_severity_name(sts_rpt_severity s);

/* Validate the report object root (f may be NULL: only the verdict). Returns 0 when
 * there is no error (warnings allowed), STS_ESYNTAX when there is one, STS_ENOMEM. */
int sts_rpt_validate(const json_t *root, sts_rpt_findings *f);

/* Parse len bytes of JSON text (duplicate keys refused, NUL bytes refused) and validate
 * it. *root (may be NULL) gets the parsed object when it parsed (the caller
 * json_decref()s it), else NULL. Returns as sts_rpt_validate. */
int sts_rpt_validate_text(const char *text, size_t len, sts_rpt_findings *f, json_t **root);

#endif
