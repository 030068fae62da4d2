/*
 * verdict.h - judge one sender run against a scenario's expectation.
 *
 * A pure function of data: the expectation, the sender's JSON result and exit
 * status, and the world's observer log. It computes the "actual" facts in the
 * expectation's own vocabulary, lists every difference, and checks what fails a run
 * whatever the expectation says: the security invariant (under enforce or
 * --require-tls, no MAIL/RCPT/DATA and no message may reach any MX outside TLS) and
 * RFC 8461 3.3's HTTPS-only policy fetch (no request to the plain-HTTP listener).
 */
#ifndef STS_VERDICT_H
#define STS_VERDICT_H

#include <jansson.h>

#include "common/buf.h"
#include "common/scenario.h"

/* What a difference means, in the order a report leads with them (X-macro table,
 * like common/vocab.h):
 *   security      the breach a mandatory-TLS sender exists to prevent: envelope or
 *                 message bytes before TLS (the security invariant), a message
 *                 delivered, or delivered to an MX, or over a TLS session, that the
 *                 expectation refuses (more received than expected, an unexpected host,
 *                 verified TLS expected but not had), a policy fetched over plain HTTP;
 *   other         a difference of substance that is no breach (a message not
 *                 delivered that should have been, another result type, policy source);
 *   outcome-only  how a message that was not delivered was reported: deferred vs
 *                 failed, a different non-zero exit status. */
#define STS_DIFF_CLASSES(X)                                                                        \
    X(STS_DIFF_SECURITY, 0, "security")                                                            \
    X(STS_DIFF_OTHER, 1, "other")                                                                  \
    X(STS_DIFF_OUTCOME_ONLY, 2, "outcome-only")

#define STS_DIFF_ENUM(sym, val, name) sym = val,
typedef enum { STS_DIFF_CLASSES(STS_DIFF_ENUM) } sts_diff_class;
#undef STS_DIFF_ENUM
#define STS_DIFF_NCLASSES 3

/* "security", ...; NULL out of range. */
const char *sts_diff_class_name(sts_diff_class c);

typedef struct sts_verdict {
    int passed; /* no difference and no invariant violation */
    int invariant_violated;
    sts_buf diff; /* one line per difference: "outcome: expected X, got Y\n" */
    /* The same differences in order, one object each: {"text": the line without its
     * newline, "class": sts_diff_class_name(), "why": the expectation's why (only when
     * it has one)}. */
    json_t *diffs;
    const char *why; /* the expectation's why (borrowed), or NULL */
    json_t *actual;  /* the facts as computed, in the expectation's keys */
} sts_verdict;

typedef struct sts_verdict_input {
    const sts_scn_expect *expect;
    int require_tls;        /* the sender was run with --require-tls */
    int assure_tls;         /* the sender was run as check --assure-tls: MAIL and RCPT
                               in the clear on purpose; DATA or a message never */
    sts_mode mode_override; /* the sender's --mode (STS_MODE_AUTO: none) */
    int exit_status;
    json_t *result;   /* {"results": [ ... ]}; may be NULL (sender printed nothing) */
    json_t *observed; /* the world's "observed" event */
    /* An external sender (`run --sender-cmd`) gives no JSON result: its outcome is
     * judged from the observer log (received -> delivered) and its exit status
     * (sendmail-style: 0 or 75 without a delivery -> deferred, other -> failed);
     * `failures` and `policy_source` cannot be known and are not compared; `tls`
     * is "verified" when the MX that received the message presented a certificate
     * that a correct sender verifies (not in cert_bad_hosts), else "unverified"; the
     * security invariant applies when the world served a valid enforce policy
     * (served_enforce) and the expectation does not say the policy was unusable
     * (policy_source: none). */
    int external;
    const char *const *cert_bad_hosts; /* NULL-terminated: MX hosts whose certificate a
                                          correct sender rejects; external mode only */
    int served_enforce;                /* external mode: the world served a valid enforce policy */
    /* A `report: deliver` step: the run was the report command's, no sender's. Only
     * its exit status and the TLS reports the world accepted (observed
     * "tlsrpt_reports" with "accepted": true) are compared (expect exit, tlsrpt); the
     * security invariant does not apply (RFC 8460 5.3: reports are delivered even
     * when TLS fails), the HTTPS-only policy fetch rule still does. */
    int report;
} sts_verdict_input;

/* Fill v (initialised here); returns 0 or STS_ENOMEM. Free with sts_verdict_free. */
int sts_verdict_check(const sts_verdict_input *in, sts_verdict *v);
void sts_verdict_free(sts_verdict *v);

/* The DNS queries the world lost ("dns_drops" of its observed event: the kernel's
 * drops on its socket and the server's own; 0 when absent). A run whose world lost
 * any is not judged at all: its sender saw a world other than the scenario's (a
 * timeout and a retry where the scenario answers), so the runner makes the case an
 * ERROR, never a pass or a fail. Writes the error message to msg when the count is
 * above 0, and returns the count. */
long long sts_verdict_world_drops(const json_t *observed, char *msg, size_t msglen);

#endif
