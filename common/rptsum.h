/*
 * rptsum.h - what a pile of received TLS reports (RFC 8460 4.4) says, the part of a
 * report reader like parsedmarc that matters for MTA-STS: per policy domain the
 * sessions, successful and failed, and the first and last time seen; per MX
 * (receiving-mx-hostname) and per result type the failed sessions with their first and
 * last time seen. `ststest report --summary` prints it.
 *
 * "Seen" is the report's date range: a report says how many sessions a day had, not
 * when each one was. A failure detail without receiving-mx-hostname counts under the
 * MX name "" (printed as "(no MX named)"). Successful sessions are per policy only:
 * the report format does not give them per MX.
 *
 * The summary as JSON:
 *   {"reports": N, "domains": [{"policy_domain": D, "reports": N, "sessions": N,
 *     "successful_sessions": N, "failed_sessions": N, "first_seen": T, "last_seen": T,
 *     "result_types": [{"result_type": R, "failed_sessions": N, "first_seen": T, "last_seen": T}],
 *     "mx": [{"receiving_mx_hostname": H, "failed_sessions": N, "first_seen": T, "last_seen": T,
 *             "result_types": [{"result_type": R, "failed_sessions": N, "first_seen": T,
 *                               "last_seen": T}]}]}]}
 * domains, mx and result_types sorted by name; T as RFC 3339 UTC.
 *
 * Functions return 0 or a negative code from common/err.h, or values as documented.
 */
#ifndef STS_RPTSUM_H
#define STS_RPTSUM_H

#include <jansson.h>
#include <stdio.h>

typedef struct sts_rptsum sts_rptsum;

/* An empty summary; NULL when out of memory. */
sts_rptsum *sts_rptsum_new(void);
void sts_rptsum_free(sts_rptsum *s); /* NULL is fine */

/* Add one report that sts_rpt_validate() accepted. 0, STS_EINVAL (it is not such a
 * report: a field the validator requires is missing or of another type) or
 * STS_ENOMEM. */
int sts_rptsum_add(sts_rptsum *s, const json_t *report);

/* The summary as above: a new reference, NULL when out of memory. */
json_t *sts_rptsum_json(const sts_rptsum *s);

/* The summary as text for people, one line per domain, MX and result type. */
void sts_rptsum_print(const json_t *summary, FILE *fp);

#endif
