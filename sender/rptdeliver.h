/*
 * rptdeliver.h - delivering TLS reports to the places a domain names (RFC 8460 3, 5):
 * the `_smtp._tls` lookup, the HTTPS POST and the SMTP delivery of the report message,
 * for `ststest report --deliver`. One report at a time: every call runs its own libuv
 * loop until its answer is in, so the caller reads like a script.
 *
 *  - sts_rptdeliver_record: `_smtp._tls.DOMAIN TXT` through our resolver (`--dns`), the
 *    records judged by sender/tlsrpt.c (RFC 8460 3: exactly one v=TLSRPTv1 record, valid).
 *  - sts_rptdeliver_https (RFC 8460 5.2): POST, Content-Type application/tlsrpt+gzip, the
 *    gzip report as the body, to the address our resolver gave for the host (A and
 *    AAAA; libcurl does no DNS); the certificate verified against ca_file (default: the
 *    system store) at `now` unless `insecure` (5.2: submitters MAY ignore certificate
 *    errors; ours verifies unless told); no redirect followed, no proxy. Any 2xx is
 *    success.
 *  - sts_rptdeliver_mail (RFC 8460 5.3): the MX of the address's domain (RFC 5321 5.1:
 *    its MX records by preference, or the domain's own A/AAAA when it has none; a null
 *    MX (RFC 7505) accepts nothing), each address in turn, port smtp_port, with
 *    sender/smtpc.c: opportunistic STARTTLS, "MUST deliver reports despite any
 *    TLS-related failures": a certificate that does not verify is used anyway, and a
 *    failed handshake is followed by a plaintext session to the same address. A 5xx
 *    reply ends the delivery (permanent); a 4xx, a refused connection or a timeout
 *    moves on to the next address. These sessions are never recorded anywhere.
 *
 * Functions return 0 or a negative code from common/err.h; `why` gets one line naming
 * what failed (the record, the host, the address, the reply).
 */
#ifndef STS_RPTDELIVER_H
#define STS_RPTDELIVER_H

#include <stddef.h>
#include <time.h>

#include "common/log.h"
#include "sender/rua.h"
#include "sender/tlsrpt.h"

typedef struct sts_rptdeliver_opts {
    const char *dns;     /* "HOST[:PORT][,...]"; NULL: /etc/resolv.conf */
    const char *ca_file; /* PEM trust anchors; NULL: the system store */
    int smtp_port;       /* 0: 25 */
    int insecure;        /* HTTPS: do not verify the collector's certificate */
    double timeout_s;    /* each DNS query, each HTTPS POST, each SMTP stage; <= 0: 60 */
    const char *helo;    /* EHLO name (the submitter) */
    const char *from;    /* MAIL FROM address */
    time_t now;          /* certificate validity is judged at this time (0: the clock) */
    sts_log *log;        /* may be NULL */
} sts_rptdeliver_opts;

typedef struct sts_rptdeliver sts_rptdeliver;

/* 0 and *out, STS_EINVAL (a bad --dns), STS_EDNS, STS_ETLS (the CA file), STS_EIO
 * (libcurl) or STS_ENOMEM; err says which. */
int sts_rptdeliver_new(const sts_rptdeliver_opts *o, sts_rptdeliver **out, char *err,
                       size_t errlen);
void sts_rptdeliver_free(sts_rptdeliver *d);

/* The TLSRPT record of domain into *out (sts_tlsrpt_free it). 0; or, meaning "no
 * reporting": STS_ENOTFOUND (no v=TLSRPTv1 record, NXDOMAIN or NODATA), STS_EINVAL
 * (more than one), STS_ESYNTAX (invalid; why has the parser's first problem); or
 * STS_EDNS (a temporary DNS failure: SERVFAIL, timeout, ...: try again later);
 * STS_ENOMEM. */
int sts_rptdeliver_record(sts_rptdeliver *d, const char *domain, sts_tlsrpt *out, char *why,
                          size_t whylen);

/* POST the gzip report gz[0..len) to the https rua r. 0 on a 2xx; else STS_EDNS (the
 * host has no usable address), STS_ECONNECT, STS_ETIMEDOUT, STS_ETLS (handshake or
 * certificate), STS_EPROTO (a non-2xx status, a redirect) or STS_EIO. */
int sts_rptdeliver_https(sts_rptdeliver *d, const sts_rua *r, const void *gz, size_t len, char *why,
                         size_t whylen);

/* Deliver msg[0..len) to the mailto rua r. 0 when an MX accepted it (how gets e.g.
 * "mail.example.net[127.0.0.1]:25 250 2.0.0 Ok, TLS unverified"); else STS_EDNS (no
 * MX or address, a temporary DNS failure), STS_EPROTO (a 5xx: permanent; a null MX),
 * STS_ECONNECT / STS_ETIMEDOUT / STS_ETOOBIG (over the rua's !size limit) or
 * STS_ENOMEM, why naming the MX and the reply. */
int sts_rptdeliver_mail(sts_rptdeliver *d, const sts_rua *r, const char *msg, size_t len, char *how,
                        size_t howlen, char *why, size_t whylen);

#endif
