/*
 * rptrecv.h - the world's judgement of a TLS report it received (RFC 8460 5), over
 * HTTPS at its collector or as mail at its mailbox: one JSON record for the
 * observer's "tlsrpt_reports".
 *
 * The record:
 *   {"via": "https" | "mailto", "bytes": N, "content_type": "...", "gzip": bool,
 *    "report": {...} | null, "report_id": "...", "policy_domains": [...],
 *    "valid": bool, "errors": N, "warnings": N,
 *    "findings": [{"severity": "error" | "warning", "name": "...", "where": "...",
 *                  "message": "...", "line": L, "column": C}],
 *    mailto only: "headers": {"tls_report_domain", "tls_report_submitter", "subject"},
 *                 "dkim": {"result": "pass" | "fail" | "none", "domain", "selector",
 *                          "reason"}}
 * plus what the caller adds (path, status, rcpt, tls).
 *
 * Finding names: "report" (common/rptjson's strict RFC 8460 4.4 validation; "where"
 * is its JSON path), "decode" (the body is no report at all: not gzip, broken
 * MIME...), "content-type" (RFC 8460 5.2: application/tlsrpt+gzip or +json),
 * "not-gzip" (the media type says gzip, the body is not), and for mail (RFC 8460 5.3)
 * "message-type" (multipart/report), "report-type" (report-type=tlsrpt),
 * "tls-report-domain", "tls-report-submitter", "subject", "report-part"
 * (application/tlsrpt+gzip or +json), "dkim" (no valid signature: RFC 8460 5.3 says
 * unsigned reports may be ignored). `valid` is true when no finding is an error;
 * a DKIM failure is an error finding and also its own verdict in "dkim".
 *
 * DKIM (RFC 6376) is verified with libopendkim, the keys looked up in the world's
 * own zone through libopendkim's key lookup callback (sts_dns_zone_txt): the real DNS
 * is never asked.
 */
#ifndef STS_RPTRECV_H
#define STS_RPTRECV_H

#include <jansson.h>
#include <stddef.h>

#include "fakedns/dnszone.h"

/* The largest report text kept in a record ("report"); a bigger one is judged but
 * kept as null with "report_dropped": its size. */
#define STS_RPTRECV_KEEP_MAX (256 * 1024)

/* A report POSTed to the collector: body[0..len) with the request's Content-Type and
 * Content-Encoding field values (NULL = absent). A new record (NULL on ENOMEM). */
json_t *sts_rptrecv_https(const char *content_type, const char *content_encoding, const char *body,
                          size_t len);

/* A mail message msg[0..len) (as received after DATA, CRLF lines) delivered to the
 * mailbox; zone: where the DKIM keys are looked up. A new record (NULL on ENOMEM). */
json_t *sts_rptrecv_mail(const char *msg, size_t len, const sts_dns_zone *zone);

#endif
