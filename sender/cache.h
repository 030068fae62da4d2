/*
 * cache.h - the sender's MTA-STS policy cache (RFC 8461 3.3, 5.1, 10.2): an SQLite file
 * shared by concurrent runs, and the cache rules as pure functions of data.
 *
 * Two halves:
 *
 *  1. Pure decisions (no I/O, no clock, no allocation): sts_cache_decide() says what to
 *     do with a domain given its cached entry (or none), the outcome of the TXT lookup
 *     of _mta-sts.<domain> and `now`; sts_cache_resolve() says which policy applies once
 *     the fetch (if any) is over. Every rule of RFC 8461 about the cache lives there,
 *     so that tables can test it.
 *
 *  2. Storage: one table keyed by policy domain (lower case, no trailing dot) holding
 *     the TXT id a policy was fetched for, the raw policy text as served (re-parsed with
 *     sts_policy_parse() on every load: one parser), mode and max_age for display,
 *     fetched_at and expires_at (= fetched_at + max_age, RFC 8461 3.2), and the last
 *     failed fetch (id + time) for the five-minute rule of RFC 8461 3.3. A domain may
 *     have a row with only a failure in it (no policy ever fetched).
 *
 * How the sender uses it, per recipient domain:
 *
 *     sts_cache_get(c, domain, now, &e)        -> 0 (e filled) or STS_ENOTFOUND
 *     txt = sts_cache_txt_from_dns(status) / sts_cache_txt_from_select(rc)
 *     d = sts_cache_decide(found ? &e : NULL, txt, txt_id, now)
 *     if (sts_cache_decision_fetches(d)) {
 *         fetch + parse;  on success sts_cache_put(...), else sts_cache_note_failure(...)
 *     }
 *     switch (sts_cache_resolve(d, fetch_ok, policy_ok)) {  (a policy source, vocab.h)
 *     case STS_POLICY_SOURCE_FETCHED: the fetched policy
 *     case STS_POLICY_SOURCE_CACHE:   e.policy
 *     case STS_POLICY_SOURCE_NONE:    no policy (RFC 8461 5)
 *     }
 *     sts_cache_entry_free(&e);
 *
 * Time: every function takes `now` (the sender's --now); nothing reads the clock.
 *
 * Concurrency and crashes: WAL journal, busy_timeout of STS_CACHE_BUSY_TIMEOUT_MS,
 * every update one BEGIN IMMEDIATE transaction, synchronous=NORMAL (see cache.c for
 * why). Several processes may use one file at once. One sts_cache handle must not be
 * used by two threads at once, nor across fork(): open one per process.
 *
 * Functions return 0 or a negative code from common/err.h, as documented per function.
 * After a failure of a function taking an open cache, sts_cache_last_error() says what
 * went wrong, naming the file.
 */
#ifndef STS_CACHE_H
#define STS_CACHE_H

#include <stddef.h>
#include <time.h>

#include "common/vocab.h"
#include "sender/policy.h"
#include "sender/resolver.h"
#include "sender/ststxt.h"

/* The schema this code writes (PRAGMA user_version). */
#define STS_CACHE_SCHEMA_VERSION 1
/* How long a writer waits for another process's lock before giving up. */
#define STS_CACHE_BUSY_TIMEOUT_MS 5000
/* RFC 8461 3.3: no new fetch of an id whose fetch failed for at least five minutes. */
#define STS_CACHE_FAILURE_BACKOFF 300
/* Largest policy text stored (the fetch's own cap, RFC 8461 3.3's suggested 64 KiB). */
#define STS_CACHE_POLICY_MAX 65536
/* Longest domain name (RFC 1035 presentation form without the trailing dot). */
#define STS_CACHE_DOMAIN_MAX 253

typedef struct sts_cache sts_cache;

/* ---- pure decisions ---------------------------------------------------------- */

/* One cached domain as loaded by sts_cache_get() (or built by hand in tests). */
typedef struct sts_cache_entry {
    char domain[STS_CACHE_DOMAIN_MAX + 1]; /* lower case, no trailing dot */
    int has_policy;                        /* 0: the row holds only a failure, or the
                                            * stored policy no longer parses (problem) */
    char id[STS_TXT_ID_MAX + 1];           /* TXT id the policy was fetched for */
    char *policy_text;                     /* the policy as served (NUL-terminated) */
    size_t policy_len;
    sts_policy policy; /* policy_text parsed again on load */
    long max_age;      /* the caching lifetime stored with it */
    time_t fetched_at;
    time_t expires_at; /* fetched_at + max_age */
    int expired;       /* now >= expires_at, for the `now` given to sts_cache_get() */
    char failed_id[STS_TXT_ID_MAX + 1]; /* id of the last failed fetch; "" = none */
    time_t failed_at;                   /* when it failed */
    char problem[256];                  /* why a stored policy was ignored ("" = none) */
} sts_cache_entry;

/* Release what sts_cache_get() allocated and zero the entry. NULL is fine. */
void sts_cache_entry_free(sts_cache_entry *e);

/* 1 when e holds a policy that is not expired at now (now < expires_at), else 0.
 * RFC 8461 3.2: "Well-behaved clients SHOULD cache a policy for up to this value from
 * the last policy fetch time"; max_age 0 is therefore expired at once. e may be NULL. */
int sts_cache_entry_valid(const sts_cache_entry *e, time_t now);

/* RFC 8461 3.3 five-minute rule: 1 when a fetch of txt_id may start at now, 0 when the
 * last fetch of this same id failed less than STS_CACHE_FAILURE_BACKOFF seconds ago
 * (0 <= now - failed_at < 300). A failure recorded in the future of now (a clock set
 * back, or an earlier --now) does not block. e may be NULL (then 1). */
int sts_cache_fetch_allowed(const sts_cache_entry *e, const char *txt_id, time_t now);

/* What the TXT lookup of _mta-sts.<domain> gave (RFC 8461 3.1). */
typedef enum {
    STS_CACHE_TXT_FOUND = 0, /* exactly one valid STS record, with an id */
    STS_CACHE_TXT_ABSENT,    /* NXDOMAIN, NODATA, or no record beginning with v=STSv1 */
    STS_CACHE_TXT_TEMPFAIL,  /* SERVFAIL, timeout, refused, ...: no answer to trust */
    STS_CACHE_TXT_INVALID,   /* more than one STS record, or an invalid one */
} sts_cache_txt;

/* "found" / "absent" / "tempfail" / "invalid". */
const char *sts_cache_txt_name(sts_cache_txt t);
/* From the resolver's status of the TXT query: NXDOMAIN and NODATA -> ABSENT, the
 * temporary ones (sts_dns_status_is_temporary) -> TEMPFAIL, OK -> FOUND (the caller then
 * runs sts_txt_select and uses sts_cache_txt_from_select). */
sts_cache_txt sts_cache_txt_from_dns(sts_dns_status st);
/* From sts_txt_select()'s return: 0 -> FOUND, STS_ENOTFOUND -> ABSENT, anything else
 * (STS_EINVAL several records, STS_ESYNTAX invalid, STS_ENOMEM) -> INVALID. */
sts_cache_txt sts_cache_txt_from_select(int rc);

/* What to do about a domain's policy before any fetch. */
typedef enum {
    /* TXT id equals the cached policy's id and the policy is not expired: apply it,
     * no fetch (RFC 8461 3.1: the id lets senders "determine when the policy has been
     * updated"). */
    STS_CACHE_USE_CACHED = 0,
    /* No usable cached policy and a TXT record: fetch (no cache, cache expired). */
    STS_CACHE_FETCH,
    /* The TXT id differs from a cached policy that is not expired: fetch the new one,
     * and if that fails keep applying the cached one (RFC 8461 3.3, the anti-downgrade
     * rule of 10.2). */
    STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE,
    /* The TXT lookup failed, found nothing or found something invalid, and a cached
     * policy is not expired: keep applying it (RFC 8461 3.1, 3.3, 5.1, 10.2). */
    STS_CACHE_USE_CACHED_DNS_FAILED,
    /* No TXT record (or none usable) and no usable cached policy: no policy. */
    STS_CACHE_NO_POLICY,
    /* The fetch of this id failed less than five minutes ago (RFC 8461 3.3) and there is
     * no usable cached policy: no fetch, no policy. */
    STS_CACHE_SKIP_FETCH_RECENT_FAILURE,
    /* The fetch of this (new) id failed less than five minutes ago, and a cached policy
     * with another id is not expired: no fetch, apply the cached one. */
    STS_CACHE_USE_CACHED_RECENT_FAILURE,
} sts_cache_decision;

/* Stable name for logs and JSON: "use-cached", "fetch",
 * "fetch-keep-cached-on-failure", "use-cached-dns-failed", "no-policy",
 * "skip-fetch-recent-failure", "use-cached-recent-failure" ("unknown" otherwise). */
const char *sts_cache_decision_name(sts_cache_decision d);
/* A one-line explanation with its RFC 8461 section, for the transcript. */
const char *sts_cache_decision_why(sts_cache_decision d);
/* 1 for the decisions that fetch (FETCH, FETCH_KEEP_CACHED_ON_FAILURE), else 0. */
int sts_cache_decision_fetches(sts_cache_decision d);

/* The decision for one domain. cached: the entry sts_cache_get() loaded, or NULL when
 * there is none; txt_id: the id of the TXT record when txt is FOUND (else ignored; a
 * FOUND without an id is treated as INVALID). In order:
 *   TXT found, id == cached id, cached not expired          -> USE_CACHED
 *   TXT found, the id's last fetch failed < 5 min ago        -> USE_CACHED_RECENT_FAILURE
 *                                                               when a cached policy is
 *                                                               not expired, else
 *                                                               SKIP_FETCH_RECENT_FAILURE
 *   TXT found, cached not expired (another id)               -> FETCH_KEEP_CACHED_ON_FAILURE
 *   TXT found otherwise (no cache, expired, or only a failure) -> FETCH
 *   TXT absent / tempfail / invalid, cached not expired      -> USE_CACHED_DNS_FAILED
 *   TXT absent / tempfail / invalid otherwise                -> NO_POLICY */
sts_cache_decision sts_cache_decide(const sts_cache_entry *cached, sts_cache_txt txt,
                                    const char *txt_id, time_t now);

/* Which policy applies in the end, as its source (common/vocab.h, DESIGN.md's
 * policy.source): FETCHED the policy just fetched (then sts_cache_put), CACHE the cached
 * entry's policy, NONE as if the domain had no policy (RFC 8461 5).
 * After the fetch: fetch_ok = the HTTPS fetch succeeded (status 200, text/plain, within
 * the caps), policy_ok = its body parsed. Both are ignored for decisions that do not
 * fetch. FETCH: FETCHED when both, else NONE (RFC 8461 3.3: "senders MUST continue with
 * delivery as though the domain has not implemented MTA-STS"). FETCH_KEEP_CACHED_ON_
 * FAILURE: FETCHED when both, else CACHED ("the sender MUST apply that cached policy").
 * USE_CACHED*: CACHED. NO_POLICY, SKIP_FETCH_RECENT_FAILURE: NONE. */
sts_policy_source sts_cache_resolve(sts_cache_decision d, int fetch_ok, int policy_ok);

/* ---- storage ------------------------------------------------------------------ */

/* The default cache file: $XDG_CACHE_HOME/ststest/policy-cache.sqlite when
 * XDG_CACHE_HOME is set to an absolute path (the XDG base directory spec says to ignore
 * relative ones), else $HOME/.cache/ststest/policy-cache.sqlite. Creates the missing
 * directories of that path with mode 0700 (the cache tells which domains one mails).
 * Returns 0 and the path in out, STS_EINVAL when neither variable gives a path,
 * STS_ETOOBIG when out is too small, STS_EIO when a directory cannot be created or is
 * not a directory (err says which and why). */
int sts_cache_default_path(char *out, size_t outlen, char *err, size_t errlen);

/* Open (creating when missing, with mode 0600) the cache file at path; its directory
 * must exist (sts_cache_default_path() creates the default one). Sets busy_timeout,
 * WAL (when the file is not in WAL mode yet) and synchronous, then checks the schema
 * version: 0 (a new file) is brought to STS_CACHE_SCHEMA_VERSION inside one BEGIN
 * IMMEDIATE transaction, and the whole setup is retried while SQLite answers BUSY
 * within the busy timeout (so several processes creating it at once are safe); a newer
 * version is refused. Never deletes or rewrites a file it does not understand; a failed
 * open removes the files it created (an empty database file, -wal, -shm) unless another
 * process uses them. A symbolic link as the file (or its -wal or -shm) is refused.
 * Returns 0 and *out, or (err naming the file and what is wrong):
 *   STS_EINVAL       empty path
 *   STS_EIO          cannot create/open/write the file or its directory (errno text),
 *                    not an SQLite database, corrupt, or a file with foreign tables,
 *                    a symbolic link ("FILE is a symbolic link; refusing it as the
 *                    policy cache: ..."), a full disk ("disk full")
 *   STS_EUNSUPPORTED schema version newer than this program knows
 *   STS_ETIMEDOUT    another process held the database locked for the whole busy timeout
 *   STS_ENOMEM */
int sts_cache_open(const char *path, sts_cache **out, char *err, size_t errlen);

/* Close the cache. NULL is fine. */
void sts_cache_close(sts_cache *c);

/* The path the cache was opened with. */
const char *sts_cache_path(const sts_cache *c);

/* The message of the last failure of a function on c ("" when none yet), e.g.
 * "policy cache /x/policy-cache.sqlite: put example.com: database is locked". */
const char *sts_cache_last_error(const sts_cache *c);

/* Load domain's row (domain compared case-insensitively, trailing dot ignored) into
 * *entry, parsing the stored policy again (a stored policy that no longer parses is
 * reported in entry->problem and has_policy is 0: it is never applied). expired is
 * computed at now. Returns 0 (release with sts_cache_entry_free), STS_ENOTFOUND when
 * there is no row (entry zeroed), STS_EINVAL for a bad domain, STS_EIO,
 * STS_ETIMEDOUT or STS_ENOMEM. */
int sts_cache_get(sts_cache *c, const char *domain, time_t now, sts_cache_entry *entry);

/* Store a policy after a successful fetch and parse: replaces whatever was cached for
 * domain (so a policy of mode none replaces a cached enforce one: RFC 8461 8.3, "none"
 * is how a domain withdraws). id: the TXT id it was fetched for (1-32 alphanumerics);
 * policy_text/len: the body as served; max_age: the caching lifetime (0..31557600,
 * normally the policy's own max_age); now: the fetch time. expires_at = now + max_age.
 * A failure recorded for this same id is cleared; one for another id is kept.
 * Returns 0, STS_EINVAL (bad domain, id or max_age), STS_ETOOBIG (text over
 * STS_CACHE_POLICY_MAX), STS_ESYNTAX (the text is not a valid policy: only what parses
 * is cached), STS_EIO, STS_ETIMEDOUT or STS_ENOMEM. */
int sts_cache_put(sts_cache *c, const char *domain, const char *id, const char *policy_text,
                  size_t len, long max_age, time_t now);

/* Record that fetching (or parsing) the policy for id failed at now (RFC 8461 3.3); the
 * cached policy, if any, is kept. Returns 0, STS_EINVAL, STS_EIO, STS_ETIMEDOUT. */
int sts_cache_note_failure(sts_cache *c, const char *domain, const char *id, time_t now);

/* "May this id be fetched now?" from the stored failure: 1 yes, 0 no (less than five
 * minutes since a failed fetch of this id), or a negative code (STS_EINVAL, STS_EIO,
 * STS_ETIMEDOUT). The same rule as sts_cache_fetch_allowed(). */
int sts_cache_may_fetch(sts_cache *c, const char *domain, const char *id, time_t now);

/* Remove domain's row (policy and failure). Returns 0, STS_ENOTFOUND when there was
 * none, STS_EINVAL, STS_EIO or STS_ETIMEDOUT. */
int sts_cache_delete(sts_cache *c, const char *domain);

#endif
