/*
 * rptmail.h - the mail message that carries one TLS report (RFC 8460 5.3), and its
 * DKIM signature (RFC 6376, with Debian's libopendkim).
 *
 * The message, lines ending in CRLF:
 *   From: CONTACT
 *   To: ADDRESS
 *   Date: RFC 5322 3.3 date of `date`, UTC
 *   Message-ID: <tlsrpt.DATE.RANDOM@SUBMITTER>
 *   Subject: Report Domain: POLICYDOMAIN Submitter: SUBMITTER Report-ID: <REPORTID>
 *   TLS-Report-Domain: POLICYDOMAIN
 *   TLS-Report-Submitter: SUBMITTER
 *   MIME-Version: 1.0
 *   Content-Type: multipart/report; report-type="tlsrpt"; boundary="..."
 * then a text/plain part (what this is, for people) and the report as an
 * `application/tlsrpt+gzip` part, base64 in lines of 76, with
 * `Content-Disposition: attachment; filename="FILENAME"` (the 5.3 file name).
 *
 * The signature (sts_rptmail_sign): d=SUBMITTER, s=SELECTOR, a=rsa-sha256,
 * c=relaxed/relaxed, h= the headers above (From, To, Subject, Date, Message-ID,
 * MIME-Version, Content-Type, TLS-Report-Domain, TLS-Report-Submitter), the whole body.
 *
 * Functions return 0 or a negative code from common/err.h, with a reason in err.
 */
#ifndef STS_RPTMAIL_H
#define STS_RPTMAIL_H

#include <stddef.h>
#include <time.h>

#include "common/buf.h"

typedef struct sts_rptmail {
    const char *from;          /* the contact address (contact-info) */
    const char *to;            /* the rua address */
    const char *policy_domain; /* TLS-Report-Domain */
    const char *submitter;     /* TLS-Report-Submitter, Message-ID's domain */
    const char *report_id;     /* the report's report-id (a msg-id without <>) */
    const char *filename;      /* the 5.3 file name of the attachment */
    const void *gz;            /* the gzip report */
    size_t gzlen;
    time_t date;        /* Date: */
    const char *unique; /* Message-ID's and the boundary's unique part ([A-Za-z0-9.-]) */
} sts_rptmail;

/* The headers sts_rptmail_sign signs, lower case, NULL-terminated. */
extern const char *const sts_rptmail_signed_headers[];

/* Append the message of m to out. 0, STS_EINVAL (a field missing, or a CR, LF or
 * non-ASCII octet in one; err names it) or STS_ENOMEM. */
int sts_rptmail_build(const sts_rptmail *m, sts_buf *out, char *err, size_t errlen);

/* Read the DKIM key at path: a PEM RSA private key (PKCS#1 or PKCS#8), into pem.
 * 0, or STS_EIO (unreadable: err has the path and errno's text) or STS_EINVAL (not a
 * PEM RSA private key: err says what it is instead). */
int sts_rptmail_load_key(const char *path, sts_buf *pem, char *err, size_t errlen);

/* 1 when sel is a DKIM selector (RFC 6376 3.1: dot-separated sub-domains, each a
 * letter-or-digit, then letters, digits, '-', ending in letter-or-digit), else 0. */
int sts_rptmail_selector_ok(const char *sel);

/* Sign msg[0..len) (a message as sts_rptmail_build makes it: CRLF lines, a header
 * section, an empty line, the body) with key (PEM) as d=domain s=selector, and append
 * the DKIM-Signature header field (CRLF-terminated, folded) to sig: the caller puts it
 * before the message. 0, STS_EINVAL (no header/body split, a bad key, domain or
 * selector; err has libopendkim's words), STS_ENOMEM or STS_EIO (the library failed). */
int sts_rptmail_sign(const char *msg, size_t len, const char *key, size_t keylen,
                     const char *selector, const char *domain, sts_buf *sig, char *err,
                     size_t errlen);

#endif
