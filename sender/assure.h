/*
 * assure.h - `check --assure-tls`: CheckTLS's TestReceiverAssureTLS. For each domain,
 * every MX in preference order is offered mail in the clear: banner, EHLO (its
 * STARTTLS offer ignored on purpose), MAIL FROM and RCPT TO:<postmaster@DOMAIN>, then
 * QUIT. Never DATA, never a message. An MX passes when it refuses MAIL or RCPT because
 * TLS is required (530, or an enhanced code 5.7.x / 4.7.x: sts_assure_tls_refusal), fails
 * when it accepts RCPT in the clear, and is not tested when it cannot be reached or
 * refuses for another reason (a 4xx/5xx greeting or EHLO reply, "550 5.1.1 User
 * unknown", a close): the reply says why.
 *
 * This is a probe of its own, not a mode of the SMTP client (smtpc.h): `send` cannot
 * reach it, so the sender's security invariant stays what it was.
 */
#ifndef STS_ASSURE_H
#define STS_ASSURE_H

#include <jansson.h>
#include <uv.h>

#include "sender/sender.h"

/* Probe every MX of each domain, running loop until all are done (every handle closed
 * when it returns). *out gets {"results": [{"argument", "domain", "assure_tls":
 * {"assuredness": 0|100, "detail"?, "mx": [{"host", "address", "verdict", "stage",
 * "reply"}]}}]}. Of opts only dns, dns_timeout, smtp_port, helo, timeout and log are
 * used. Returns 0 when every domain's assuredness is 100, STS_EXIT_FAILED_CHECK (1)
 * when some is 0, 64 for a bad --dns list (then *out stays NULL), 70 internal error. */
/* 1 when an SMTP reply (code, enhanced code or NULL/"") refuses because TLS is required:
 * 530 (RFC 3207 4), or an enhanced code of class 4 or 5 with subject 7 (RFC 3463 3.8,
 * security or policy) that agrees with the code's class; else 0. Pure. */
int sts_assure_tls_refusal(int code, const char *enhanced);

int sts_assure_run(uv_loop_t *loop, const sts_sender_opts *opts, char *const *domains,
                   size_t ndomains, json_t **out);

#endif
