/*
 * rptstore.h - the TLS report store (RFC 8460): every MX session of `send` and `check`,
 * per policy domain, kept in an SQLite file until `ststest report` aggregates a UTC day
 * of them into one report per policy domain (common/rptjson.h).
 *
 * A session row holds what RFC 8460 4.4 reports: the policy (policy-type, the applied
 * policy's lines, its mx patterns), and either success or the failure details
 * (result-type, sending-mta-ip, receiving-mx-hostname, receiving-mx-helo (the name in
 * the MX's EHLO reply), receiving-ip, failure-reason-code), at the run's time (the
 * virtual clock, `--now`).
 *
 * Which MX entries of a result are sessions (sts_rptstore_sessions_of):
 *  - an MX with an RFC 8460 failure of its own (a certificate fault, no STARTTLS, a
 *    failed handshake, an MX outside the policy: decide.c's words) is a failed session
 *    of that result type, connected or not (the sender declined it under the policy);
 *  - a connected MX whose TLS came up verified is a successful session, unless
 *    discovery failed (sts-policy-fetch-error, sts-policy-invalid, sts-webpki-invalid
 *    while no policy applied): then it is a failed session of that type, since the
 *    domain's policy could not be applied to it;
 *  - a connected MX that did not offer STARTTLS is a failed session
 *    (starttls-not-supported) even where nothing required TLS;
 *  - anything else (no address, connection refused, timeouts, 4xx before STARTTLS) is
 *    not a session: RFC 8460 4.3.x leaves transient failures out of reports.
 * The policy type is sts when a policy applied or discovery failed on a published
 * policy, else no-policy-found. sending-mta-ip is our end of the failed session's own
 * connection (sts_mx_result.local_address), as the MX saw it.
 *
 * Storage is sqlfile.h, as under the policy cache: the file is created with mode 0600,
 * a symbolic link as the file (or its -wal, -shm) is refused, SQLite opens it with
 * SQLITE_OPEN_NOFOLLOW, WAL journal, a busy timeout, the schema set up in one BEGIN
 * IMMEDIATE transaction retried while another process holds the lock, "disk full" named
 * as such, files created by a failed open removed. Several processes may record at once.
 *
 * Functions return 0 or a negative code from common/err.h, as documented per function;
 * messages go to err[errlen] or sts_rptstore_last_error().
 */
#ifndef STS_RPTSTORE_H
#define STS_RPTSTORE_H

#include <stddef.h>
#include <time.h>

#include "common/rptjson.h"
#include "common/vocab.h"
#include "sender/discover.h"
#include "sender/result.h"

/* 1: sessions; 2: the delivery ledger too (a version 1 store is migrated on open). */
#define STS_RPTSTORE_SCHEMA_VERSION 2
#define STS_RPTSTORE_BUSY_TIMEOUT_MS 5000
/* File name of the default store, in the policy cache's directory. */
#define STS_RPTSTORE_DEFAULT_NAME "tlsrpt-store.sqlite"

typedef struct sts_rptstore sts_rptstore;

/* One session as stored. Strings are borrowed (NULL: absent). policy_string and
 * mx_host are lines joined by LF ("" none). */
typedef struct sts_rptstore_session {
    time_t at;
    const char *policy_domain;
    sts_policy_type policy_type;
    const char *policy_string, *mx_host;
    sts_result_type result_type; /* STS_RESULT_NONE: a successful session */
    const char *sending_mta_ip, *receiving_mx_hostname, *receiving_mx_helo, *receiving_ip;
    const char *additional_information, *failure_reason_code;
} sts_rptstore_session;

/* The default store: STS_RPTSTORE_DEFAULT_NAME next to the default policy cache
 * (sts_cache_default_path; its directory is created). As that function. */
int sts_rptstore_default_path(char *out, size_t outlen, char *err, size_t errlen);

/* Open (creating when missing) the store at path; its directory must exist. Returns 0
 * and *out, or STS_EINVAL (empty path), STS_EIO (cannot create or open, not an SQLite
 * database, foreign tables, a symbolic link, disk full), STS_EUNSUPPORTED (a newer
 * schema), STS_ETIMEDOUT (locked by another process for the whole busy timeout),
 * STS_ENOMEM; err names the file and what is wrong. */
int sts_rptstore_open(const char *path, sts_rptstore **out, char *err, size_t errlen);
void sts_rptstore_close(sts_rptstore *s); /* NULL is fine */
const char *sts_rptstore_path(const sts_rptstore *s);
/* "report store PATH: add: disk full (...)"; "" when nothing failed yet. */
const char *sts_rptstore_last_error(const sts_rptstore *s);

/* Store n sessions in one transaction. 0, STS_EINVAL (a session without policy
 * domain), STS_EIO, STS_ETIMEDOUT or STS_ENOMEM (nothing stored then). */
int sts_rptstore_add(sts_rptstore *s, const sts_rptstore_session *v, size_t n);

/* The sessions of one finished result (rules above), at time at. Up to max into v;
 * their strings point into r, d or buf[buflen] (keep all three alive while v is
 * used). Returns how many (at most max). */
size_t sts_rptstore_sessions_of(const sts_rcpt_result *r, const sts_discovery *d, time_t at,
                                sts_rptstore_session *v, size_t max, char *buf, size_t buflen);

/* sts_rptstore_sessions_of + sts_rptstore_add: what the sender calls once per finished
 * recipient (send) or domain (check); a policy of any size, at most 64 MX sessions of
 * one result. 0 or as sts_rptstore_add. */
int sts_rptstore_record(sts_rptstore *s, const sts_rcpt_result *r, const sts_discovery *d,
                        time_t at);

/* ---- reading a day back ----------------------------------------------------------
 * One aggregate per (policy domain, policy type, policy lines, mx patterns) seen in
 * [start, end), in that order: the report's policies[] entries. The failure details
 * are grouped by every failure field, each with its count. Every string is owned. */
typedef struct sts_rptstore_policy {
    char *policy_domain;
    sts_policy_type policy_type;
    char **policy_string, **mx_host;
    size_t npolicy_string, nmx_host;
    long long successful, failed;
    sts_rpt_failure *failures; /* strings malloc'ed (cast away const to free) */
    size_t nfailures;
    time_t first, last; /* the first and last session seen */
} sts_rptstore_policy;

/* The aggregates of [start, end) into *out (n in *n; free with
 * sts_rptstore_policies_free). 0, STS_EIO, STS_ETIMEDOUT or STS_ENOMEM. */
int sts_rptstore_read(sts_rptstore *s, time_t start, time_t end, sts_rptstore_policy **out,
                      size_t *n);
void sts_rptstore_policies_free(sts_rptstore_policy *v, size_t n);

/* ---- the delivery ledger (`report --deliver`) ---------------------------------------
 * One row per (report-id, rua) delivered, so that a rerun sends nothing twice; a rua
 * that failed has no row and is tried again by the next run. */

/* 1 when (report_id, rua) was delivered, 0 when not, or STS_EIO / STS_ETIMEDOUT. */
int sts_rptstore_delivered(sts_rptstore *s, const char *report_id, const char *rua);
/* Remember that report_id (of the day starting at `day`) reached rua at `at`. 0,
 * STS_EINVAL (empty id or rua), STS_EIO, STS_ETIMEDOUT. */
int sts_rptstore_mark_delivered(sts_rptstore *s, const char *report_id, const char *rua, time_t day,
                                time_t at);

/* Delete the sessions recorded before `before` and the ledger rows of days before it,
 * in one transaction; the counts go to *sessions and *deliveries (either may be NULL).
 * 0, STS_EIO, STS_ETIMEDOUT. */
int sts_rptstore_prune(sts_rptstore *s, time_t before, long long *sessions, long long *deliveries);

#endif
