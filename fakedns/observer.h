/*
 * observer.h - the world's record of what a sender did to it: DNS queries, policy
 * fetches and SMTP sessions (the "observed" event of DESIGN.md). DNS queries are
 * kept as compact records (bounded in number) and turned to JSON in the snapshot;
 * fetches and sessions are kept as JSON.
 *
 * The world's servers write from the world's loop thread; sts_observer_snapshot()
 * may be called from any thread (the runner reads it while the world runs), so every
 * function takes the observer's lock. Functions returning int return 0 or STS_ENOMEM.
 */
#ifndef STS_OBSERVER_H
#define STS_OBSERVER_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

typedef struct sts_observer sts_observer;
/* One SMTP session's record (a JSON object owned by the observer). */
typedef struct sts_obs_smtp sts_obs_smtp;

sts_observer *sts_observer_new(void);
void sts_observer_free(sts_observer *o);

/* The default bound on DNS query records (sts_observer_set_dns_max). */
#define STS_OBSERVER_DNS_MAX_DEFAULT 100000

/* Keep at most max DNS query records (0 = STS_OBSERVER_DNS_MAX_DEFAULT); later ones
 * are only counted, as "dns_dropped" in the snapshot (the key appears once K > 0). A long-running
 * world serving a real MTA must not grow without limit. */
void sts_observer_set_dns_max(sts_observer *o, size_t max);
size_t sts_observer_dns_max(sts_observer *o);

/* A DNS query, recorded as a compact fixed-size record; the JSON is built only by
 * sts_observer_snapshot(). qname: the question name in wire form (any case, no
 * compression; NULL = the question could not be parsed, "name" becomes null and
 * "type" "-"), qlen its length; qtype the type number; tcp 0/1; rcode 0..15 or 16
 * (BADVERS), or -1 = no answer was sent ("none"); fault STS_SCN_DNS_* or -1.
 * Returns 0, STS_ETOOBIG when the record was only counted (the bound is reached)
 * or STS_ENOMEM. */
int sts_observer_dns_query(sts_observer *o, const uint8_t *qname, size_t qlen, uint16_t qtype,
                           int tcp, int rcode, int fault);

/* The same from text (slow; for callers without the wire form): name (no trailing
 * dot, NULL = unparsed), type ("TXT", "TYPE65280", "-"), transport ("udp"/"tcp"),
 * rcode ("NOERROR", "none"), fault (dns_faults name: "servfail", ...; NULL = none).
 * Returns as sts_observer_dns_query, or STS_EINVAL for a value it cannot encode. */
int sts_observer_dns(sts_observer *o, const char *name, const char *type, const char *transport,
                     const char *rcode);
int sts_observer_dns_fault(sts_observer *o, const char *name, const char *type,
                           const char *transport, const char *rcode, const char *fault);

/* A policy-server request: host (the Host header's name without any port, NULL if
 * none; the whole field value is kept as "host_header"), scheme ("https" or "http"),
 * sni (NULL for http), method, path, status. */
int sts_observer_fetch(sts_observer *o, const char *host, const char *scheme, const char *sni,
                       const char *method, const char *path, int status);

/* A connection to a policy-host listener ended (one record per connection, in the
 * order they ended): scheme ("https" or "http"), peer (the client's address), sni (NULL
 * or "" = none), tls_version (NULL = no TLS session was set up), outcome, and error
 * (NULL = none; for "tls_failed" OpenSSL's reason, e.g. the client's alert
 * "tlsv1 alert unknown ca"). Outcomes: "request" (an HTTP request was answered:
 * see policy_fetches), "no_request" (closed before a complete request),
 * "tls_failed" (the TLS handshake failed: a sender that rejects the certificate
 * shows here), "handshake_aborted" (the `handshake: abort` knob), "refused" (the
 * `https: false` knob). Without this a sender that never tried to fetch and one
 * that tried and rejected the certificate would look the same. */
int sts_observer_policy_conn(sts_observer *o, const char *scheme, const char *peer, const char *sni,
                             const char *tls_version, const char *outcome, const char *error);

/* One fetch's record (a JSON object owned by the observer). */
typedef struct sts_obs_fetch sts_obs_fetch;
/* As sts_observer_fetch, returning the record (NULL on ENOMEM); valid until
 * sts_observer_free(). */
sts_obs_fetch *sts_observer_fetch_begin(sts_observer *o, const char *host, const char *scheme,
                                        const char *sni, const char *method, const char *path,
                                        int status);
/* Set another key of a fetch record (takes the reference of value; f NULL: dropped). */
int sts_observer_fetch_set(sts_observer *o, sts_obs_fetch *f, const char *key, json_t *value);

/* A new SMTP session on host (its name) / address, from peer. NULL on ENOMEM. The
 * handle stays valid until sts_observer_free(). */
sts_obs_smtp *sts_observer_smtp_begin(sts_observer *o, const char *host, const char *address,
                                      const char *peer);
/* The TLS handshake completed: SNI received ("" = none), version, cipher. */
int sts_observer_smtp_tls(sts_observer *o, sts_obs_smtp *s, const char *sni, const char *version,
                          const char *cipher);
/* Commands kept per SMTP session. Past it a command is only counted, as
 * "commands_dropped" in the session's record, unless it is an envelope command (MAIL,
 * RCPT, DATA) of a verb and TLS state not kept yet in that session: the security
 * invariants (runner/verdict.c) see every kind of envelope command a session had,
 * and a client sending commands without end (10,000 RCPT) costs bounded memory. */
#define STS_OBSERVER_SMTP_COMMANDS_MAX 1000

/* A command: verb (upper case), whether it came over TLS, and the reply code sent. */
int sts_observer_smtp_command(sts_observer *o, sts_obs_smtp *s, const char *verb, int tls,
                              int reply);
/* A message accepted for delivery. rcpts: n forward paths. */
int sts_observer_smtp_message(sts_observer *o, sts_obs_smtp *s, int tls, size_t bytes,
                              const char *sha256_hex, const char *from, const char *const *rcpts,
                              size_t n);
/* Set any other key of the session (takes the reference of value). */
int sts_observer_smtp_set(sts_observer *o, sts_obs_smtp *s, const char *key, json_t *value);

/* TLS reports kept (sts_observer_tlsrpt); later ones are only counted, as
 * "tlsrpt_dropped" in the snapshot. Each record keeps its report only up to
 * STS_RPTRECV_KEEP_MAX (fakedns/rptrecv.h), so this bounds the memory too. */
#define STS_OBSERVER_TLSRPT_MAX 200

/* A TLS report received (a record of fakedns/rptrecv.h; takes the reference of rec,
 * NULL: out of memory, counted as dropped). */
int sts_observer_tlsrpt(sts_observer *o, json_t *rec);

/* A copy: {"dns": [...], "policy_fetches": [...], "policy_connections": [...],
 * "smtp_sessions": [...], "tlsrpt_reports": [...]}, plus
 * "dns_dropped": K once K queries were only counted (sts_observer_set_dns_max); each
 * DNS record becomes {"name", "type", "transport", "rcode"} plus "fault" when one
 * applied. */
json_t *sts_observer_snapshot(sts_observer *o);

#endif
