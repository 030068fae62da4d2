/*
 * cache.c - the sender's MTA-STS policy cache: the RFC 8461 cache rules as pure
 * functions, and their storage in an SQLite file shared by concurrent runs.
 *
 * Functions return 0 or a negative code from common/err.h (see cache.h per function);
 * the predicates return 1 or 0; the decision functions return enum values and cannot
 * fail.
 *
 * Storage is an sqlfile.h database (opening, symbolic links, WAL, busy retry, "disk
 * full", cleanup of a failed open); its choices, and why, for this cache:
 *  - journal_mode=WAL: readers never block the writer nor the writer the readers, so a
 *    survey with many `ststest check` processes sharing one cache does not serialise
 *    on reads; a crash mid-write leaves the last committed state (the WAL is replayed
 *    or ignored on the next open).
 *  - busy_timeout: a writer waits up to STS_CACHE_BUSY_TIMEOUT_MS for another process's
 *    write lock instead of failing at once with SQLITE_BUSY.
 *  - BEGIN IMMEDIATE for every update: the write lock is taken at the start of the
 *    transaction, where the busy handler can wait for it. A deferred transaction that
 *    reads first and then writes can get SQLITE_BUSY at once in WAL mode (its snapshot
 *    is stale when another process committed meanwhile), with no retry possible.
 *  - synchronous=NORMAL: in WAL mode this never corrupts the database, and a crash of
 *    the process loses nothing committed; only a crash of the operating system or a
 *    power cut may roll back the last transactions before a checkpoint. For this cache
 *    that is harmless: losing an update leaves the previous policy (still the safe
 *    direction: an older enforce policy keeps being enforced until it expires or is
 *    refetched) or no policy (as on first contact, when the sender simply fetches).
 *    FULL would fsync on every commit, which a survey of thousands of domains pays for
 *    in every single put.
 *  - The file is created by us with mode 0600 before SQLite opens it: the cache tells
 *    which domains this user mails.
 *  - A file that is not an SQLite database, is corrupt, belongs to something else or
 *    has a newer schema is reported, naming the file; it is never deleted or rewritten.
 */
#include "sender/cache.h"

#include <ctype.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/err.h"
#include "sender/sqlfile.h"

struct sts_cache {
    sts_sqlfile *f; /* the SQLite file (sqlfile.h) */
};

/* ---- pure decisions ---------------------------------------------------------- */

void sts_cache_entry_free(sts_cache_entry *e)
{
    if (!e)
        return;
    free(e->policy_text);
    sts_policy_free(&e->policy);
    memset(e, 0, sizeof(*e));
}

int sts_cache_entry_valid(const sts_cache_entry *e, time_t now)
{
    /* RFC 8461 3.3: only a "valid (non-expired)" cached policy may be applied; the
     * policy lives max_age seconds from its fetch (3.2), so at expires_at it is gone. */
    return e && e->has_policy && now < e->expires_at;
}

int sts_cache_fetch_allowed(const sts_cache_entry *e, const char *txt_id, time_t now)
{
    /* RFC 8461 3.3: "Senders may wish to rate-limit the frequency of attempts to fetch
     * the HTTPS endpoint even if a valid TXT record for the recipient domain exists. In
     * the case that the HTTPS GET fails, implementers SHOULD limit further attempts to a
     * period of five minutes or longer per version ID, to avoid overwhelming
     * resource-constrained recipients with cascading failures."
     * Per version ID: a new id in the TXT record may be fetched at once. */
    if (!e || !txt_id || !e->failed_id[0] || strcmp(e->failed_id, txt_id) != 0)
        return 1;
    if (now < e->failed_at)
        return 1; /* recorded "in the future" of this run's clock: not a recent failure */
    return now - e->failed_at >= STS_CACHE_FAILURE_BACKOFF;
}

static const char *const txt_names[] = {"found", "absent", "tempfail", "invalid"};

const char *sts_cache_txt_name(sts_cache_txt t)
{
    if ((unsigned)t < sizeof(txt_names) / sizeof(txt_names[0]))
        return txt_names[t];
    return "unknown";
}

sts_cache_txt sts_cache_txt_from_dns(sts_dns_status st)
{
    if (st == STS_DNS_OK)
        return STS_CACHE_TXT_FOUND;
    if (st == STS_DNS_NXDOMAIN || st == STS_DNS_NODATA)
        return STS_CACHE_TXT_ABSENT;
    return STS_CACHE_TXT_TEMPFAIL;
}

sts_cache_txt sts_cache_txt_from_select(int rc)
{
    if (rc == 0)
        return STS_CACHE_TXT_FOUND;
    if (rc == STS_ENOTFOUND)
        return STS_CACHE_TXT_ABSENT;
    return STS_CACHE_TXT_INVALID;
}

static const struct {
    const char *name;
    const char *why;
} decision_table[] = {
    [STS_CACHE_USE_CACHED] = {"use-cached",
                              "TXT id unchanged and the cached policy is not expired: "
                              "applying it without a fetch (RFC 8461 3.1, 5.1)"},
    [STS_CACHE_FETCH] = {"fetch", "no valid cached policy for this id: fetching the policy "
                                  "(RFC 8461 3.3)"},
    [STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE] =
        {"fetch-keep-cached-on-failure",
         "TXT id changed: fetching the new policy; the cached one stays in force if the "
         "fetch fails (RFC 8461 3.3, 10.2)"},
    [STS_CACHE_USE_CACHED_DNS_FAILED] =
        {"use-cached-dns-failed",
         "no live policy via DNS, but the cached policy is not expired: applying it "
         "(RFC 8461 3.1, 3.3, 10.2)"},
    [STS_CACHE_NO_POLICY] = {"no-policy", "no usable TXT record and no valid cached policy: "
                                          "no policy (RFC 8461 3.1, 5)"},
    [STS_CACHE_SKIP_FETCH_RECENT_FAILURE] =
        {"skip-fetch-recent-failure",
         "the fetch of this id failed less than five minutes ago: not fetching again, "
         "and no valid cached policy: no policy (RFC 8461 3.3)"},
    [STS_CACHE_USE_CACHED_RECENT_FAILURE] =
        {"use-cached-recent-failure",
         "the fetch of this id failed less than five minutes ago: not fetching again; the "
         "cached policy is not expired: applying it (RFC 8461 3.3)"},
};

const char *sts_cache_decision_name(sts_cache_decision d)
{
    if ((unsigned)d < sizeof(decision_table) / sizeof(decision_table[0]))
        return decision_table[d].name;
    return "unknown";
}

const char *sts_cache_decision_why(sts_cache_decision d)
{
    if ((unsigned)d < sizeof(decision_table) / sizeof(decision_table[0]))
        return decision_table[d].why;
    return "unknown decision";
}

int sts_cache_decision_fetches(sts_cache_decision d)
{
    return d == STS_CACHE_FETCH || d == STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE;
}

sts_cache_decision sts_cache_decide(const sts_cache_entry *cached, sts_cache_txt txt,
                                    const char *txt_id, time_t now)
{
    int valid = sts_cache_entry_valid(cached, now);

    if (txt == STS_CACHE_TXT_FOUND && (!txt_id || !txt_id[0]))
        txt = STS_CACHE_TXT_INVALID; /* RFC 8461 3.1: id is required */

    if (txt != STS_CACHE_TXT_FOUND) {
        /* RFC 8461 3.1: "(Note that the absence of a usable TXT record is not by itself
         * sufficient to remove a sender's previously cached policy for the Policy
         * Domain, as discussed in Section 5.1 ...)". RFC 8461 3.3: "Conversely, if no
         * "live" policy can be discovered via DNS or fetched via HTTPS, but a valid
         * (non-expired) policy exists in the sender's cache, the sender MUST apply that
         * cached policy." This is what defeats the downgrade of 10.2: an attacker who
         * strips or blocks the TXT record cannot switch off a cached enforce policy. */
        return valid ? STS_CACHE_USE_CACHED_DNS_FAILED : STS_CACHE_NO_POLICY;
    }

    /* RFC 8461 3.1: the id lets senders "determine when the policy has been updated by
     * comparing to the "id" of a previously seen policy": same id, same policy. */
    if (valid && !strcmp(cached->id, txt_id))
        return STS_CACHE_USE_CACHED;

    /* RFC 8461 3.3: five minutes or longer per version ID after a failed fetch. */
    if (!sts_cache_fetch_allowed(cached, txt_id, now))
        return valid ? STS_CACHE_USE_CACHED_RECENT_FAILURE : STS_CACHE_SKIP_FETCH_RECENT_FAILURE;

    /* A new id with a valid cached policy: fetch, but a failed fetch must not remove the
     * cached policy (RFC 8461 3.3 "Conversely ..." above; 10.2). */
    return valid ? STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE : STS_CACHE_FETCH;
}

sts_policy_source sts_cache_resolve(sts_cache_decision d, int fetch_ok, int policy_ok)
{
    switch (d) {
    case STS_CACHE_USE_CACHED:
    case STS_CACHE_USE_CACHED_DNS_FAILED:
    case STS_CACHE_USE_CACHED_RECENT_FAILURE:
        return STS_POLICY_SOURCE_CACHE;
    case STS_CACHE_FETCH:
        /* RFC 8461 3.3: "If a valid TXT record is found but no policy can be fetched via
         * HTTPS (for any reason), and there is no valid (non-expired) previously cached
         * policy, senders MUST continue with delivery as though the domain has not
         * implemented MTA-STS." */
        return fetch_ok && policy_ok ? STS_POLICY_SOURCE_FETCHED : STS_POLICY_SOURCE_NONE;
    case STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE:
        return fetch_ok && policy_ok ? STS_POLICY_SOURCE_FETCHED : STS_POLICY_SOURCE_CACHE;
    case STS_CACHE_NO_POLICY:
    case STS_CACHE_SKIP_FETCH_RECENT_FAILURE:
    default:
        return STS_POLICY_SOURCE_NONE;
    }
}

/* ---- names and validation -------------------------------------------------------- */

/* Lower-case domain into out (STS_CACHE_DOMAIN_MAX + 1 bytes), one trailing dot dropped.
 * LDH labels of 1-63 characters. 0 or STS_EINVAL. */
static int norm_domain(const char *domain, char *out)
{
    if (!domain)
        return STS_EINVAL;
    size_t len = strlen(domain);
    if (len && domain[len - 1] == '.')
        len--;
    if (len == 0 || len > STS_CACHE_DOMAIN_MAX)
        return STS_EINVAL;
    size_t label = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)domain[i];
        if (ch == '.') {
            if (label == 0)
                return STS_EINVAL;
            label = 0;
        } else if (isalnum(ch) || ch == '-') {
            if (++label > 63)
                return STS_EINVAL;
        } else {
            return STS_EINVAL;
        }
        out[i] = (char)tolower(ch);
    }
    out[len] = '\0';
    return 0;
}

/* RFC 8461 3.1: sts-id = 1*32(ALPHA / DIGIT). */
static int id_valid(const char *id)
{
    if (!id)
        return 0;
    size_t n = strlen(id);
    if (n < 1 || n > STS_TXT_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)id[i]))
            return 0;
    return 1;
}

/* ---- default path ------------------------------------------------------------------ */

int sts_cache_default_path(char *out, size_t outlen, char *err, size_t errlen)
{
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    /* XDG Base Directory spec: "All paths set in these environment variables must be
     * absolute. If an implementation encounters a relative path in any of these
     * variables it should consider the path invalid and ignore it." */
    if (xdg && xdg[0] == '/')
        n = snprintf(out, outlen, "%s/ststest/policy-cache.sqlite", xdg);
    else if (home && home[0] == '/')
        n = snprintf(out, outlen, "%s/.cache/ststest/policy-cache.sqlite", home);
    else {
        sts_errf(err, errlen,
                 "no default policy cache: neither XDG_CACHE_HOME nor HOME is an "
                 "absolute path; give --cache FILE or --no-cache");
        return STS_EINVAL;
    }
    if (n < 0 || (size_t)n >= outlen) {
        sts_errf(err, errlen, "default policy cache path too long");
        return STS_ETOOBIG;
    }
    return sts_sqlfile_make_parents(out, "policy cache", err, errlen);
}

static void problemf(sts_cache_entry *e, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problemf(sts_cache_entry *e, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->problem, sizeof(e->problem), fmt, ap);
    va_end(ap);
}

/* ---- SQLite statements ---------------------------------------------------------- */

/* Prepare sql, a statement on the row of one domain: ?1 is bound to the domain dom
 * and, when id is not NULL, ?2 to the policy id. Returns SQLite's code; *st is NULL or
 * the statement, which the caller finalizes whatever the code. */
static int prepare_row(sts_sqlfile *f, const char *sql, const char *dom, const char *id,
                       sqlite3_stmt **st)
{
    *st = NULL;
    int src = sqlite3_prepare_v2(sts_sqlfile_db(f), sql, -1, st, NULL);
    if (src == SQLITE_OK)
        src = sqlite3_bind_text(*st, 1, dom, -1, SQLITE_TRANSIENT);
    if (src == SQLITE_OK && id)
        src = sqlite3_bind_text(*st, 2, id, -1, SQLITE_TRANSIENT);
    return src;
}

/* One write on the row of a domain, in a transaction of its own: row_write_begin(),
 * the statement's other parameters bound while src is SQLITE_OK, row_write_end(). */
typedef struct row_write {
    char what[300];   /* what the write does, for messages ("put example.org") */
    sqlite3_stmt *st; /* NULL when preparing failed */
    int src;          /* SQLite's code so far */
} row_write;

/* Begin the transaction and prepare sql on the row of dom and id (prepare_row()); fmt
 * names the write. Returns sts_sqlfile_begin()'s error (nothing to end then), else 0. */
static int row_write_begin(sts_sqlfile *f, row_write *w, const char *sql, const char *dom,
                           const char *id, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
static int row_write_begin(sts_sqlfile *f, row_write *w, const char *sql, const char *dom,
                           const char *id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->what, sizeof(w->what), fmt, ap);
    va_end(ap);
    int rc = sts_sqlfile_begin(f, w->what);
    if (rc)
        return rc;
    w->src = prepare_row(f, sql, dom, id, &w->st);
    return 0;
}

/* Bind ?n to v, unless an earlier step failed. */
static void row_bind_int(row_write *w, int n, sqlite3_int64 v)
{
    if (w->src == SQLITE_OK)
        w->src = sqlite3_bind_int64(w->st, n, v);
}

/* The end of every write: step the prepared statement (when preparing and binding
 * went well, src == SQLITE_OK), then finalize it and commit, or on any failure
 * roll back. *changed (may be NULL) gets the rows changed. Returns 0 or the code
 * of sts_sqlfile_fail()/sts_sqlfile_commit(). */
static int row_write_end(sts_sqlfile *f, row_write *w, int *changed)
{
    int src = w->src;
    if (src == SQLITE_OK)
        src = sqlite3_step(w->st);
    if (src != SQLITE_DONE) {
        int rc = sts_sqlfile_fail(f, src, w->what);
        sqlite3_finalize(w->st);
        sts_sqlfile_rollback(f);
        return rc;
    }
    if (changed)
        *changed = sqlite3_changes(sts_sqlfile_db(f));
    sqlite3_finalize(w->st);
    return sts_sqlfile_commit(f, w->what);
}

/* One integer from a one-row query (PRAGMA user_version, counts). */
static int query_int(sts_sqlfile *f, const char *sql, const char *what, long long *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sts_sqlfile_db(f), sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    int ret = rc == SQLITE_OK ? 0 : sts_sqlfile_fail(f, rc, what);
    sqlite3_finalize(st);
    return ret;
}

/* Schema, version by version: migrations[v] brings a file from version v to v + 1. A
 * future version appends a step (ALTER TABLE ...), so older files are upgraded in place
 * inside the same transaction that checks the version. */
static const char *const migrations[STS_CACHE_SCHEMA_VERSION] = {
    /* 0 -> 1: the policy table. */
    "CREATE TABLE policy (\n"
    "  domain     TEXT PRIMARY KEY NOT NULL, -- policy domain, lower case, no final dot\n"
    "  id         TEXT,    -- TXT id the policy was fetched for (NULL: failure only)\n"
    "  policy     BLOB,    -- the policy text as served, parsed again on load\n"
    "  mode       TEXT,    -- for display; the text is authoritative\n"
    "  max_age    INTEGER, -- caching lifetime (seconds)\n"
    "  fetched_at INTEGER, -- unix time of the fetch\n"
    "  expires_at INTEGER, -- fetched_at + max_age (RFC 8461 3.2)\n"
    "  failed_id  TEXT,    -- id of the last failed fetch (RFC 8461 3.3)\n"
    "  failed_at  INTEGER  -- unix time of that failure\n"
    ")",
};

#define COLUMNS "domain, id, policy, mode, max_age, fetched_at, expires_at, failed_id, failed_at"

/* sts_cache_put: one row per domain: the new policy replaces the old one whatever its
 * mode. A failure recorded for this id is over; one for another id still counts. */
static const char SQL_PUT[] =
    "INSERT INTO policy (" COLUMNS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, NULL, NULL)\n"
    "ON CONFLICT (domain) DO UPDATE SET id = excluded.id, policy = excluded.policy,\n"
    "  mode = excluded.mode, max_age = excluded.max_age,\n"
    "  fetched_at = excluded.fetched_at, expires_at = excluded.expires_at,\n"
    "  failed_id = CASE WHEN failed_id = excluded.id THEN NULL ELSE failed_id END,\n"
    "  failed_at = CASE WHEN failed_id = excluded.id THEN NULL ELSE failed_at END";

/* sts_cache_note_failure: the failed id and its time on the domain's row (a row with
 * only these when the domain has none). */
static const char SQL_NOTE_FAILURE[] =
    "INSERT INTO policy (domain, failed_id, failed_at) VALUES (?1, ?2, ?3)\n"
    "ON CONFLICT (domain) DO UPDATE SET failed_id = excluded.failed_id,\n"
    "  failed_at = excluded.failed_at";

static int schema_setup(sts_sqlfile *f)
{
    long long version = 0;
    int rc = query_int(f, "PRAGMA user_version", "reading the schema version", &version);
    if (rc)
        return rc;
    if (version > STS_CACHE_SCHEMA_VERSION) {
        sts_sqlfile_seterr(f,
                           "schema version %lld is newer than this ststest "
                           "understands (%d): written by a newer ststest? Use that one, or another "
                           "--cache file",
                           version, STS_CACHE_SCHEMA_VERSION);
        return STS_EUNSUPPORTED;
    }
    if (version < STS_CACHE_SCHEMA_VERSION) {
        if ((rc = sts_sqlfile_begin(f, "starting the schema upgrade")))
            return rc;
        /* Read again under the write lock: another process may have done it first. */
        if ((rc = query_int(f, "PRAGMA user_version", "reading the schema version", &version)))
            goto fail;
        if (version == 0) {
            long long ntables = 0;
            if ((rc = query_int(f, "SELECT count(*) FROM sqlite_master", "reading the schema",
                                &ntables)))
                goto fail;
            if (ntables) {
                sts_sqlfile_seterr(f,
                                   "an SQLite database, but not a ststest policy "
                                   "cache (it has %lld schema objects and no schema version); left "
                                   "untouched: give another --cache file",
                                   ntables);
                rc = STS_EIO;
                goto fail;
            }
        }
        for (long long v = version; v < STS_CACHE_SCHEMA_VERSION; v++)
            if ((rc = sts_sqlfile_exec(f, migrations[v], "upgrading the schema")))
                goto fail;
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STS_CACHE_SCHEMA_VERSION);
        if ((rc = sts_sqlfile_exec(f, sql, "setting the schema version")))
            goto fail;
        if ((rc = sts_sqlfile_commit(f, "committing the schema upgrade")))
            return rc;
    }
    /* The version says 1: check that the table is really there with all its columns. */
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(sts_sqlfile_db(f), "SELECT " COLUMNS " FROM policy LIMIT 0", -1,
                                 &st, NULL);
    sqlite3_finalize(st);
    if (src != SQLITE_OK)
        return sts_sqlfile_fail(f, src,
                                "schema version 1 but the policy table is missing or malformed");
    return 0;
fail:
    sts_sqlfile_rollback(f);
    return rc;
}

static const sts_sqlfile_names cache_names = {"policy cache", "the cache", "--cache"};

static int schema_step(sts_sqlfile *f, void *arg)
{
    (void)arg;
    return schema_setup(f);
}

int sts_cache_open(const char *path, sts_cache **out, char *err, size_t errlen)
{
    *out = NULL;
    sts_cache *c = calloc(1, sizeof(*c));
    if (!c) {
        sts_errf(err, errlen, "policy cache %s: out of memory", path ? path : "");
        return STS_ENOMEM;
    }
    int rc = sts_sqlfile_open(path, &cache_names, STS_CACHE_BUSY_TIMEOUT_MS, schema_step, NULL,
                              &c->f, err, errlen);
    if (rc) {
        free(c);
        return rc;
    }
    *out = c;
    return 0;
}

void sts_cache_close(sts_cache *c)
{
    if (!c)
        return;
    sts_sqlfile_close(c->f);
    free(c);
}

const char *sts_cache_path(const sts_cache *c)
{
    return c ? sts_sqlfile_path(c->f) : "";
}

const char *sts_cache_last_error(const sts_cache *c)
{
    return c ? sts_sqlfile_last_error(c->f) : "";
}

/* ---- operations --------------------------------------------------------------------- */

static int bad_arg(sts_cache *c, const char *what, const char *value)
{
    sts_sqlfile_seterr(c->f, "%s '%s'", what, value ? value : "(null)");
    return STS_EINVAL;
}

static void copy_text(char *dst, size_t dstlen, const unsigned char *src)
{
    snprintf(dst, dstlen, "%s", src ? (const char *)src : "");
}

int sts_cache_get(sts_cache *c, const char *domain, time_t now, sts_cache_entry *e)
{
    memset(e, 0, sizeof(*e));
    char dom[STS_CACHE_DOMAIN_MAX + 1];
    if (norm_domain(domain, dom))
        return bad_arg(c, "get: invalid domain name", domain);

    sqlite3_stmt *st;
    int src = prepare_row(c->f, "SELECT " COLUMNS " FROM policy WHERE domain = ?1", dom, NULL, &st);
    if (src == SQLITE_OK)
        src = sqlite3_step(st);
    if (src == SQLITE_DONE) {
        sqlite3_finalize(st);
        sts_sqlfile_seterr(c->f, "no entry for %s", dom);
        return STS_ENOTFOUND;
    }
    if (src != SQLITE_ROW) {
        char what[300];
        snprintf(what, sizeof(what), "get %s", dom);
        int rc = sts_sqlfile_fail(c->f, src, what);
        sqlite3_finalize(st);
        return rc;
    }

    snprintf(e->domain, sizeof(e->domain), "%s", dom);
    copy_text(e->failed_id, sizeof(e->failed_id), sqlite3_column_text(st, 7));
    e->failed_at = (time_t)sqlite3_column_int64(st, 8);
    if (e->failed_id[0] && !id_valid(e->failed_id))
        e->failed_id[0] = '\0'; /* a damaged failure record only loses its back-off */

    int rc = 0;
    if (sqlite3_column_type(st, 2) != SQLITE_NULL) {
        const void *blob = sqlite3_column_blob(st, 2);
        size_t len = (size_t)sqlite3_column_bytes(st, 2);
        const unsigned char *id = sqlite3_column_text(st, 1);
        const unsigned char *mode = sqlite3_column_text(st, 3);
        sts_mode stored_mode;
        e->max_age = (long)sqlite3_column_int64(st, 4);
        e->fetched_at = (time_t)sqlite3_column_int64(st, 5);
        e->expires_at = (time_t)sqlite3_column_int64(st, 6);
        e->expired = now >= e->expires_at;
        copy_text(e->id, sizeof(e->id), id);
        if (!id || !id_valid((const char *)id)) {
            problemf(e, "stored policy for %s has no valid id: row damaged, ignored", dom);
        } else if (e->max_age < 0 || e->max_age > STS_POLICY_MAX_AGE_MAX ||
                   e->expires_at != e->fetched_at + e->max_age) {
            problemf(e,
                     "stored policy for %s has inconsistent times (fetched_at %lld, max_age "
                     "%ld, expires_at %lld): row damaged, ignored",
                     dom, (long long)e->fetched_at, e->max_age, (long long)e->expires_at);
        } else if (len > STS_CACHE_POLICY_MAX) {
            problemf(e, "stored policy for %s is %zu bytes, over the %d-byte cap: ignored", dom,
                     len, STS_CACHE_POLICY_MAX);
        } else if (!(e->policy_text = malloc(len + 1))) {
            rc = STS_ENOMEM;
        } else {
            if (len)
                memcpy(e->policy_text, blob, len);
            e->policy_text[len] = '\0';
            e->policy_len = len;
            /* One parser: what is applied from the cache is exactly what the parser
             * makes of the text that was served. */
            sts_diags diags;
            sts_diags_init(&diags);
            int prc = sts_policy_parse(e->policy_text, len, &e->policy, &diags);
            if (prc == STS_ENOMEM) {
                rc = STS_ENOMEM;
            } else if (prc) {
                char why[300];
                sts_diags_summary(&diags, why, sizeof(why));
                problemf(e, "stored policy for %s no longer parses (%s): ignored", dom, why);
            } else if (sts_mode_parse((const char *)mode, &stored_mode) ||
                       stored_mode != e->policy.mode) {
                problemf(e,
                         "stored mode '%s' of %s disagrees with its policy text (mode %s): "
                         "row damaged, ignored",
                         mode ? (const char *)mode : "", dom, sts_mode_name(e->policy.mode));
                sts_policy_free(&e->policy);
                memset(&e->policy, 0, sizeof(e->policy));
            } else {
                e->has_policy = 1;
            }
            sts_diags_free(&diags);
        }
    }
    sqlite3_finalize(st);
    if (rc) {
        sts_sqlfile_seterr(c->f, "get %s: out of memory", dom);
        sts_cache_entry_free(e);
        return rc;
    }
    return 0;
}

int sts_cache_put(sts_cache *c, const char *domain, const char *id, const char *policy_text,
                  size_t len, long max_age, time_t now)
{
    char dom[STS_CACHE_DOMAIN_MAX + 1];
    if (norm_domain(domain, dom))
        return bad_arg(c, "put: invalid domain name", domain);
    if (!id_valid(id))
        return bad_arg(c, "put: invalid policy id (1-32 letters and digits):", id);
    if (max_age < 0 || max_age > STS_POLICY_MAX_AGE_MAX) {
        sts_sqlfile_seterr(c->f,
                           "put %s: max_age %ld outside "
                           "0..%ld",
                           dom, max_age, STS_POLICY_MAX_AGE_MAX);
        return STS_EINVAL;
    }
    if (!policy_text && len)
        return bad_arg(c, "put: no policy text for", dom);
    if (len > STS_CACHE_POLICY_MAX) {
        sts_sqlfile_seterr(c->f,
                           "put %s: policy of %zu bytes over "
                           "the %d-byte cap",
                           dom, len, STS_CACHE_POLICY_MAX);
        return STS_ETOOBIG;
    }
    /* Only a policy that parses is cached: what a later run loads must be applicable. */
    sts_policy pol;
    sts_diags diags;
    sts_diags_init(&diags);
    int prc = sts_policy_parse(policy_text ? policy_text : "", len, &pol, &diags);
    if (prc) {
        char why[300];
        sts_diags_summary(&diags, why, sizeof(why));
        sts_diags_free(&diags);
        sts_sqlfile_seterr(c->f, "put %s: not a valid policy: %s", dom,
                           why[0] ? why : sts_strerror(prc));
        return prc == STS_ENOMEM ? STS_ENOMEM : STS_ESYNTAX;
    }
    sts_diags_free(&diags);
    const char *mode = sts_mode_name(pol.mode);
    sts_policy_free(&pol);

    row_write w;
    int rc = row_write_begin(c->f, &w, SQL_PUT, dom, id, "put %s", dom);
    if (rc)
        return rc;
    if (w.src == SQLITE_OK)
        w.src = sqlite3_bind_blob(w.st, 3, len ? policy_text : "", (int)len, SQLITE_TRANSIENT);
    if (w.src == SQLITE_OK)
        w.src = sqlite3_bind_text(w.st, 4, mode, -1, SQLITE_STATIC);
    row_bind_int(&w, 5, max_age);
    row_bind_int(&w, 6, (sqlite3_int64)now);
    row_bind_int(&w, 7, (sqlite3_int64)now + max_age);
    return row_write_end(c->f, &w, NULL);
}

int sts_cache_note_failure(sts_cache *c, const char *domain, const char *id, time_t now)
{
    char dom[STS_CACHE_DOMAIN_MAX + 1];
    if (norm_domain(domain, dom))
        return bad_arg(c, "note failure: invalid domain name", domain);
    if (!id_valid(id))
        return bad_arg(c, "note failure: invalid policy id", id);
    row_write w;
    int rc = row_write_begin(c->f, &w, SQL_NOTE_FAILURE, dom, id, "note failure %s id %s", dom, id);
    if (rc)
        return rc;
    row_bind_int(&w, 3, (sqlite3_int64)now);
    return row_write_end(c->f, &w, NULL);
}

int sts_cache_may_fetch(sts_cache *c, const char *domain, const char *id, time_t now)
{
    if (!id_valid(id))
        return bad_arg(c, "may fetch: invalid policy id", id);
    sts_cache_entry e;
    int rc = sts_cache_get(c, domain, now, &e);
    if (rc == STS_ENOTFOUND)
        return 1;
    if (rc)
        return rc;
    int ok = sts_cache_fetch_allowed(&e, id, now);
    sts_cache_entry_free(&e);
    return ok;
}

int sts_cache_delete(sts_cache *c, const char *domain)
{
    char dom[STS_CACHE_DOMAIN_MAX + 1];
    if (norm_domain(domain, dom))
        return bad_arg(c, "delete: invalid domain name", domain);
    row_write w;
    int changed = 0;
    int rc = row_write_begin(c->f, &w, "DELETE FROM policy WHERE domain = ?1", dom, NULL,
                             "delete %s", dom);
    if (rc || (rc = row_write_end(c->f, &w, &changed)))
        return rc;
    if (!changed) {
        sts_sqlfile_seterr(c->f, "delete: no entry for %s", dom);
        return STS_ENOTFOUND;
    }
    return 0;
}
