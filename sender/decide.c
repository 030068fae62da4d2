/*
 * decide.c - the delivery decisions as pure functions (see decide.h). No I/O; every
 * function returns an enum value and cannot fail.
 */
#include "sender/decide.h"

#include "common/err.h"

sts_mode sts_decide_mode(int have_policy, sts_mode policy_mode, sts_mode override)
{
    /* RFC 8461 5: without a policy the sender behaves as for mode none; --mode only
     * overrides the mode of a policy that exists (its mx list still applies). */
    if (!have_policy)
        return STS_MODE_NONE;
    if (override != STS_MODE_AUTO)
        return override;
    return policy_mode == STS_MODE_AUTO ? STS_MODE_NONE : policy_mode;
}

int sts_decide_tls_required(sts_mode mode, int require_tls)
{
    return mode == STS_MODE_ENFORCE || require_tls;
}

int sts_decide_mx_connect(sts_mode mode, int policy_match, sts_result_type *failure)
{
    *failure = STS_RESULT_NONE;
    if (policy_match || mode == STS_MODE_NONE)
        return 1;
    /* RFC 8461 4.1: "senders MUST NOT ... deliver to a host that does not match" under
     * enforce; RFC 8461 5 testing: proceed, report the failure (RFC 8460 4.3.3). */
    *failure = STS_RESULT_VALIDATION_FAILURE;
    return mode != STS_MODE_ENFORCE;
}

sts_tls_verdict sts_decide_tls(int tls_required, const sts_tls_facts *f, sts_result_type *failure)
{
    *failure = STS_RESULT_NONE;
    if (f->plain_retry) {
        /* The retry without STARTTLS exists only in opportunistic mode. */
        return tls_required ? STS_TLSV_REFUSE : STS_TLSV_CONTINUE;
    }
    if (!f->starttls_offered || (f->starttls_code && f->starttls_code != 220)) {
        /* RFC 8460 4.3.1: no STARTTLS, or STARTTLS refused (RFC 3207 4: 454). */
        *failure = STS_RESULT_STARTTLS_NOT_SUPPORTED;
        return tls_required ? STS_TLSV_REFUSE : STS_TLSV_CONTINUE;
    }
    if (!f->handshake_done) {
        /* RFC 8460 4.3.3: a handshake that fails has no more specific type. */
        *failure = STS_RESULT_VALIDATION_FAILURE;
        return tls_required ? STS_TLSV_REFUSE : STS_TLSV_RETRY_PLAIN;
    }
    if (!f->verified) {
        *failure =
            f->result_type != STS_RESULT_NONE ? f->result_type : STS_RESULT_VALIDATION_FAILURE;
        /* RFC 8461 5: testing/none deliver over the unverified TLS session. */
        return tls_required ? STS_TLSV_REFUSE : STS_TLSV_CONTINUE;
    }
    return STS_TLSV_CONTINUE;
}

int sts_decide_mx_host_ascii(const char *host)
{
    if (!host || !*host)
        return 0;
    for (const unsigned char *p = (const unsigned char *)host; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return 0;
    return 1;
}

sts_action sts_decide_reply_action(int code)
{
    if (code >= 500)
        return STS_ACTION_PERMFAIL;
    if (code >= 400)
        return STS_ACTION_TEMPFAIL;
    return STS_ACTION_NONE;
}

int sts_decide_try_next_mx(sts_action a, int in_transaction)
{
    switch (a) {
    case STS_ACTION_DELIVERED:
        return 0;
    case STS_ACTION_PERMFAIL:
        return !in_transaction;
    default:
        return 1;
    }
}

sts_outcome sts_decide_outcome(const sts_outcome_facts *f)
{
    int any_perm = 0;
    /* RFC 7505 3.2: a null MX means the domain accepts no mail: fail at once. */
    if (f->null_mx)
        return STS_OUTCOME_FAILED;
    for (size_t i = 0; i < f->nactions; i++) {
        if (f->actions[i] == STS_ACTION_DELIVERED)
            return STS_OUTCOME_DELIVERED;
        any_perm |= f->actions[i] == STS_ACTION_PERMFAIL;
    }
    if (f->no_such_domain || any_perm)
        return STS_OUTCOME_FAILED;
    /* Refusals defer. RFC 8461 5.1: under enforce, never fail permanently before
     * re-checking for a new policy; under --require-tls alone the MX may yet get its
     * TLS right, so a real MTA would keep the message queued too
     * (scenarios/require-tls-no-policy.yaml). 4xx and connection trouble defer. */
    return STS_OUTCOME_DEFERRED;
}

int sts_decide_exit(const sts_outcome *outcomes, size_t n)
{
    int deferred = 0;
    for (size_t i = 0; i < n; i++) {
        if (outcomes[i] == STS_OUTCOME_FAILED)
            return STS_EXIT_UNAVAILABLE;
        deferred |= outcomes[i] == STS_OUTCOME_DEFERRED;
    }
    return deferred ? STS_EXIT_TEMPFAIL : STS_EXIT_OK;
}
