/*
 * decide.h - the delivery decisions of the sender as pure functions of data (no I/O,
 * no clock, no allocation), so that tables can test every combination.
 *
 *   effective mode     RFC 8461 5: the policy's mode, or --mode's override, or none
 *                      when there is no policy (sts_mode, common/vocab.h).
 *   MX acceptance      RFC 8461 4.1: under enforce an MX not matching the policy's mx
 *                      patterns is never contacted; under testing it is, and the
 *                      mismatch is reported as validation-failure (RFC 8460 4.3.3).
 *   TLS verdict        RFC 8461 4.2 / 5: with TLS required (enforce or --require-tls)
 *                      a missing or refused STARTTLS, a failed handshake or an
 *                      unverified certificate ends the session before MAIL; otherwise
 *                      the failure is recorded and delivery goes on.
 *   outcome            of one recipient from the actions taken on its MX hosts.
 *   exit status        of a run from its outcomes (sysexits, DESIGN.md).
 *
 * Functions return values of the enums below and of common/vocab.h; none can fail.
 */
#ifndef STS_DECIDE_H
#define STS_DECIDE_H

#include <stddef.h>

#include "common/vocab.h" /* sts_mode, sts_action, sts_outcome, sts_result_type */

/* What to do after the TLS step of a session. */
typedef enum {
    STS_TLSV_CONTINUE = 0,    /* go on (over TLS, or in plaintext when TLS is not up) */
    STS_TLSV_REFUSE = 1,      /* QUIT now: the MX is refused */
    STS_TLSV_RETRY_PLAIN = 2, /* opportunistic: the handshake failed; reconnect once
                                 without STARTTLS */
} sts_tls_verdict;

/* The mode the sender applies (RFC 8461 5): enforce, testing or none, never auto. No
 * policy means none (an override cannot invent an mx list); with a policy an override
 * other than STS_MODE_AUTO replaces its mode, else the policy's mode applies (a policy
 * without a mode, which parsing never gives, counts as none). */
sts_mode sts_decide_mode(int have_policy, sts_mode policy_mode, sts_mode override);

/* TLS with a verified certificate is required under enforce and under --require-tls. */
int sts_decide_tls_required(sts_mode mode, int require_tls);

/* RFC 8461 4.1 / 5: may the sender connect to an MX that does (policy_match) or does
 * not match the policy? Returns 1 to connect, 0 to refuse without connecting.
 * *failure gets validation-failure for a mismatch that matters (testing/enforce),
 * else STS_RESULT_NONE. */
int sts_decide_mx_connect(sts_mode mode, int policy_match, sts_result_type *failure);

/* RFC 8461 3.2: "In the case of Internationalized Domain Names, the "mx" value MUST
 * specify the Punycode-encoded A-label to match against, and not the Unicode-encoded
 * U-label." MX host names from DNS are A-labels on the wire; a name with any byte
 * outside printable ASCII (a U-label, or garbage) is compared with no pattern.
 * 1 when host is printable ASCII (and not empty), else 0. */
int sts_decide_mx_host_ascii(const char *host);

/* The facts of the TLS step of one session. */
typedef struct sts_tls_facts {
    int starttls_offered;      /* EHLO advertised STARTTLS */
    int starttls_code;         /* reply code to STARTTLS; 0 = not sent */
    int handshake_done;        /* the TLS handshake completed */
    int verified;              /* chain, dates and name all good */
    sts_result_type result_type; /* RFC 8460 type from the TLS layer when !verified */
    int plain_retry;           /* this session is already the plaintext retry */
} sts_tls_facts;

/* RFC 8461 4.2 / 5 and RFC 3207: the verdict once the TLS step is over (STARTTLS
 * absent, refused, failed or done). *failure gets the RFC 8460 result type of a
 * problem (starttls-not-supported, validation-failure, certificate-*), else
 * STS_RESULT_NONE. */
sts_tls_verdict sts_decide_tls(int tls_required, const sts_tls_facts *f, sts_result_type *failure);

/* The action a final reply of class 4 or 5 means (RFC 5321 4.2.1): TEMPFAIL or
 * PERMFAIL; NONE for 2xx/3xx. */
sts_action sts_decide_reply_action(int code);

/* Whether to try the next MX after an action. A 5xx to MAIL, RCPT or DATA (in_transaction)
 * speaks for the recipient and ends the attempt; a 5xx greeting or EHLO, a 4xx, a refusal
 * or a connection failure moves on to the next MX (RFC 5321 5.1). */
int sts_decide_try_next_mx(sts_action a, int in_transaction);

/* The facts that decide one recipient's outcome. */
typedef struct sts_outcome_facts {
    const sts_action *actions; /* one per MX tried or skipped, in order */
    size_t nactions;
    sts_mode mode;             /* effective mode */
    int require_tls;
    int null_mx;               /* RFC 7505: the domain accepts no mail */
    int no_such_domain;        /* NXDOMAIN / no MX and no address records */
} sts_outcome_facts;

/* delivered when an MX delivered; failed for a null MX, a domain that does not exist or
 * a 5xx; deferred for refusals (under enforce RFC 8461 5.1: never fail permanently
 * before re-checking for a new policy; under --require-tls alone the MX may still fix
 * its TLS), 4xx, connection failures and DNS trouble. */
sts_outcome sts_decide_outcome(const sts_outcome_facts *f);

/* Exit status of a run (DESIGN.md): 69 when any recipient failed, else 75 when any was
 * deferred, else 0. A failure is the stronger news: it needs a person, a deferral
 * only time. */
int sts_decide_exit(const sts_outcome *outcomes, size_t n);

#endif
