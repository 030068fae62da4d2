/*
 * observer.h - the world's record of what a sender did to it: DNS queries, policy
 * fetches and SMTP sessions, kept as JSON (the "observed" event of DESIGN.md).
 *
 * The world's servers write from the world's loop thread; sts_observer_snapshot()
 * may be called from any thread (the runner reads it while the world runs), so every
 * function takes the observer's lock. Functions returning int return 0 or STS_ENOMEM.
 */
#ifndef STS_OBSERVER_H
#define STS_OBSERVER_H

#include <jansson.h>

typedef struct sts_observer sts_observer;
/* One SMTP session's record (a JSON object owned by the observer). */
typedef struct sts_obs_smtp sts_obs_smtp;

sts_observer *sts_observer_new(void);
void sts_observer_free(sts_observer *o);

/* A DNS query: name (lowercase, no trailing dot), type ("TXT"), transport
 * ("udp"/"tcp"), rcode ("NOERROR"). */
int sts_observer_dns(sts_observer *o, const char *name, const char *type, const char *transport,
                     const char *rcode);

/* The same, for a query answered under a scripted fault (dns_faults: "servfail",
 * "wrong_id", ...; NULL = none). The record gets a "fault" key. */
int sts_observer_dns_fault(sts_observer *o, const char *name, const char *type,
                           const char *transport, const char *rcode, const char *fault);

/* A policy-server request: host (the Host header's name without any port, NULL if
 * none; the whole field value is kept as "host_header"), scheme ("https" or "http"),
 * sni (NULL for http), method, path, status. */
int sts_observer_fetch(sts_observer *o, const char *host, const char *scheme, const char *sni,
                       const char *method, const char *path, int status);

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
/* A command: verb (upper case), whether it came over TLS, and the reply code sent. */
int sts_observer_smtp_command(sts_observer *o, sts_obs_smtp *s, const char *verb, int tls,
                              int reply);
/* A message accepted for delivery. rcpts: n forward paths. */
int sts_observer_smtp_message(sts_observer *o, sts_obs_smtp *s, int tls, size_t bytes,
                              const char *sha256_hex, const char *from, const char *const *rcpts,
                              size_t n);
/* Set any other key of the session (takes the reference of value). */
int sts_observer_smtp_set(sts_observer *o, sts_obs_smtp *s, const char *key, json_t *value);

/* A deep copy: {"dns": [...], "policy_fetches": [...], "smtp_sessions": [...]}. */
json_t *sts_observer_snapshot(sts_observer *o);

#endif
