/* test_cache.c - the MTA-STS policy cache (sender/cache.h): the RFC 8461 cache decisions
 * as tables (expiry edges, id changes, downgrade attempts, DNS failures, the five-minute
 * rule), and the SQLite storage (round trip, replace, delete, persistence, concurrent
 * connections and processes, lock waits, bad files, schema versions, permissions,
 * default path). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "sender/cache.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NOW ((time_t)1700000000)

#define ENFORCE_A "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n"
#define NONE_B "version: STSv1\r\nmode: none\r\nmax_age: 600\r\n"
#define TESTING_C                                                                                  \
    "version: STSv1\nmode: testing\nmx: *.example.com\nmx: mx2.example.net\nmax_age: 3600\n"

/* ---- pure decisions ---------------------------------------------------------- */

struct dcase {
    const char *name;
    int has_policy; /* a cached policy is present */
    const char *cached_id;
    long expires_in;       /* expires_at = NOW + expires_in */
    const char *failed_id; /* NULL: no failure */
    long failed_ago;       /* failed_at = NOW - failed_ago */
    sts_cache_txt txt;
    const char *txt_id;
    sts_cache_decision want;
};

#define F STS_CACHE_TXT_FOUND
#define ABS STS_CACHE_TXT_ABSENT
#define TMP STS_CACHE_TXT_TEMPFAIL
#define INV STS_CACHE_TXT_INVALID

static const struct dcase dcases[] = {
    /* No cache at all. */
    {"no cache, TXT id A: fetch", 0, NULL, 0, NULL, 0, F, "A", STS_CACHE_FETCH},
    {"no cache, no TXT (NXDOMAIN/NODATA): no policy", 0, NULL, 0, NULL, 0, ABS, NULL,
     STS_CACHE_NO_POLICY},
    {"no cache, SERVFAIL/timeout: no policy", 0, NULL, 0, NULL, 0, TMP, NULL, STS_CACHE_NO_POLICY},
    {"no cache, invalid TXT records: no policy", 0, NULL, 0, NULL, 0, INV, NULL,
     STS_CACHE_NO_POLICY},

    /* Same id, around expiry (RFC 8461 3.2 max_age from the fetch time). */
    {"same id, well before expiry: use cached", 1, "A", 86400, NULL, 0, F, "A",
     STS_CACHE_USE_CACHED},
    {"same id, now = expires_at - 1: use cached", 1, "A", 1, NULL, 0, F, "A", STS_CACHE_USE_CACHED},
    {"same id, now = expires_at: expired, fetch", 1, "A", 0, NULL, 0, F, "A", STS_CACHE_FETCH},
    {"same id, now = expires_at + 1: expired, fetch", 1, "A", -1, NULL, 0, F, "A", STS_CACHE_FETCH},
    {"max_age 0 (expires_at = fetched_at = now): fetch", 1, "A", 0, NULL, 0, F, "A",
     STS_CACHE_FETCH},
    {"max_age 0, TXT gone: nothing to keep, no policy", 1, "A", 0, NULL, 0, ABS, NULL,
     STS_CACHE_NO_POLICY},

    /* The id changed. */
    {"id changed, cached valid: fetch, keep cached on failure", 1, "A", 86400, NULL, 0, F, "B",
     STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE},
    {"id changed, cached valid to expires_at - 1: keep on failure", 1, "A", 1, NULL, 0, F, "B",
     STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE},
    {"id changed, cached expired: plain fetch", 1, "A", 0, NULL, 0, F, "B", STS_CACHE_FETCH},
    {"id compared case-sensitively", 1, "abc", 86400, NULL, 0, F, "ABC",
     STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE},

    /* Downgrade attempts and DNS trouble with a valid cache (RFC 8461 3.1, 3.3, 10.2). */
    {"TXT removed after caching: keep enforcing the cached policy", 1, "A", 86400, NULL, 0, ABS,
     NULL, STS_CACHE_USE_CACHED_DNS_FAILED},
    {"SERVFAIL with a valid cache: use cached", 1, "A", 86400, NULL, 0, TMP, NULL,
     STS_CACHE_USE_CACHED_DNS_FAILED},
    {"two STS records with a valid cache: use cached", 1, "A", 86400, NULL, 0, INV, NULL,
     STS_CACHE_USE_CACHED_DNS_FAILED},
    {"TXT found without id: invalid, use cached", 1, "A", 86400, NULL, 0, F, "",
     STS_CACHE_USE_CACHED_DNS_FAILED},
    {"TXT found with NULL id: invalid, no cache: no policy", 0, NULL, 0, NULL, 0, F, NULL,
     STS_CACHE_NO_POLICY},
    {"TXT removed, now = expires_at - 1: use cached", 1, "A", 1, NULL, 0, ABS, NULL,
     STS_CACHE_USE_CACHED_DNS_FAILED},
    {"TXT removed, now = expires_at: no policy", 1, "A", 0, NULL, 0, ABS, NULL,
     STS_CACHE_NO_POLICY},
    {"SERVFAIL, now = expires_at + 1: no policy", 1, "A", -1, NULL, 0, TMP, NULL,
     STS_CACHE_NO_POLICY},

    /* Five minutes per version ID after a failed fetch (RFC 8461 3.3). */
    {"no cache, id B failed 4m59s ago: skip fetch", 0, NULL, 0, "B", 299, F, "B",
     STS_CACHE_SKIP_FETCH_RECENT_FAILURE},
    {"no cache, id B failed 5m00s ago: fetch", 0, NULL, 0, "B", 300, F, "B", STS_CACHE_FETCH},
    {"no cache, id B failed just now: skip fetch", 0, NULL, 0, "B", 0, F, "B",
     STS_CACHE_SKIP_FETCH_RECENT_FAILURE},
    {"no cache, id B failed 4m59s ago, TXT now id C: fetch (per id)", 0, NULL, 0, "B", 299, F, "C",
     STS_CACHE_FETCH},
    {"cached A valid, id B failed 4m59s ago: use cached A", 1, "A", 86400, "B", 299, F, "B",
     STS_CACHE_USE_CACHED_RECENT_FAILURE},
    {"cached A valid, id B failed 5m00s ago: fetch B, keep A", 1, "A", 86400, "B", 300, F, "B",
     STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE},
    {"cached A expired, refresh of A failed 4m59s ago: skip", 1, "A", -10, "A", 299, F, "A",
     STS_CACHE_SKIP_FETCH_RECENT_FAILURE},
    {"cached A expired, refresh of A failed 5m00s ago: fetch", 1, "A", -10, "A", 300, F, "A",
     STS_CACHE_FETCH},
    {"cached A valid and current: a failure of A does not matter", 1, "A", 86400, "A", 10, F, "A",
     STS_CACHE_USE_CACHED},
    {"failure recorded in the future of now: fetch", 0, NULL, 0, "B", -100, F, "B",
     STS_CACHE_FETCH},
    {"failure only, TXT gone: no policy", 0, NULL, 0, "B", 10, ABS, NULL, STS_CACHE_NO_POLICY},
};

static void fill_entry(sts_cache_entry *e, const struct dcase *c)
{
    memset(e, 0, sizeof(*e));
    snprintf(e->domain, sizeof(e->domain), "example.com");
    e->has_policy = c->has_policy;
    if (c->cached_id)
        snprintf(e->id, sizeof(e->id), "%s", c->cached_id);
    e->expires_at = NOW + c->expires_in;
    e->max_age = c->expires_in > 0 ? c->expires_in : 0;
    e->fetched_at = e->expires_at - e->max_age;
    if (c->failed_id) {
        snprintf(e->failed_id, sizeof(e->failed_id), "%s", c->failed_id);
        e->failed_at = NOW - c->failed_ago;
    }
}

static void test_decision_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(dcases); i++) {
        const struct dcase *c = &dcases[i];
        sts_cache_entry e;
        fill_entry(&e, c);
        int any = c->has_policy || c->failed_id;
        sts_cache_decision got = sts_cache_decide(any ? &e : NULL, c->txt, c->txt_id, NOW);
        if (got != c->want)
            fail_msg("%s: got %s, want %s", c->name, sts_cache_decision_name(got),
                     sts_cache_decision_name(c->want));
        /* The decision must be a function of data only: a NULL entry and an empty one
         * say the same. */
        if (!any) {
            sts_cache_entry empty;
            memset(&empty, 0, sizeof(empty));
            assert_int_equal(sts_cache_decide(&empty, c->txt, c->txt_id, NOW), c->want);
        }
    }
}

static void test_entry_predicates(void **state)
{
    (void)state;
    sts_cache_entry e;
    memset(&e, 0, sizeof(e));
    assert_int_equal(sts_cache_entry_valid(NULL, NOW), 0);
    e.expires_at = NOW + 5;
    assert_int_equal(sts_cache_entry_valid(&e, NOW), 0); /* no policy in the row */
    e.has_policy = 1;
    assert_int_equal(sts_cache_entry_valid(&e, NOW + 4), 1);
    assert_int_equal(sts_cache_entry_valid(&e, NOW + 5), 0);

    assert_int_equal(sts_cache_fetch_allowed(NULL, "A", NOW), 1);
    snprintf(e.failed_id, sizeof(e.failed_id), "A");
    e.failed_at = NOW;
    assert_int_equal(sts_cache_fetch_allowed(&e, "A", NOW + 299), 0);
    assert_int_equal(sts_cache_fetch_allowed(&e, "A", NOW + 300), 1);
    assert_int_equal(sts_cache_fetch_allowed(&e, "B", NOW + 1), 1);
    assert_int_equal(sts_cache_fetch_allowed(&e, "A", NOW - 1), 1);
}

static void test_resolve_table(void **state)
{
    (void)state;
    static const struct {
        sts_cache_decision d;
        int fetch_ok, policy_ok;
        sts_policy_source want;
    } t[] = {
        {STS_CACHE_USE_CACHED, 0, 0, STS_POLICY_SOURCE_CACHE},
        {STS_CACHE_USE_CACHED, 1, 1, STS_POLICY_SOURCE_CACHE}, /* no fetch: flags ignored */
        {STS_CACHE_FETCH, 1, 1, STS_POLICY_SOURCE_FETCHED},
        {STS_CACHE_FETCH, 0, 0, STS_POLICY_SOURCE_NONE}, /* fetch failed, no cache */
        {STS_CACHE_FETCH, 1, 0, STS_POLICY_SOURCE_NONE}, /* policy invalid, no cache */
        {STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE, 1, 1, STS_POLICY_SOURCE_FETCHED},
        {STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE, 0, 0,
         STS_POLICY_SOURCE_CACHE}, /* anti-downgrade */
        {STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE, 1, 0, STS_POLICY_SOURCE_CACHE},
        {STS_CACHE_USE_CACHED_DNS_FAILED, 0, 0, STS_POLICY_SOURCE_CACHE},
        {STS_CACHE_NO_POLICY, 1, 1, STS_POLICY_SOURCE_NONE},
        {STS_CACHE_SKIP_FETCH_RECENT_FAILURE, 0, 0, STS_POLICY_SOURCE_NONE},
        {STS_CACHE_USE_CACHED_RECENT_FAILURE, 0, 0, STS_POLICY_SOURCE_CACHE},
    };
    for (size_t i = 0; i < N(t); i++) {
        sts_policy_source got = sts_cache_resolve(t[i].d, t[i].fetch_ok, t[i].policy_ok);
        if (got != t[i].want)
            fail_msg("%s fetch_ok=%d policy_ok=%d: got %s, want %s",
                     sts_cache_decision_name(t[i].d), t[i].fetch_ok, t[i].policy_ok,
                     sts_policy_source_name(got), sts_policy_source_name(t[i].want));
    }
    /* Only the two fetching decisions fetch. */
    for (int d = STS_CACHE_USE_CACHED; d <= STS_CACHE_USE_CACHED_RECENT_FAILURE; d++)
        assert_int_equal(sts_cache_decision_fetches((sts_cache_decision)d),
                         d == STS_CACHE_FETCH || d == STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE);
}

static void test_names(void **state)
{
    (void)state;
    static const char *const want[] = {"use-cached",
                                       "fetch",
                                       "fetch-keep-cached-on-failure",
                                       "use-cached-dns-failed",
                                       "no-policy",
                                       "skip-fetch-recent-failure",
                                       "use-cached-recent-failure"};
    for (size_t d = 0; d < N(want); d++) {
        assert_string_equal(sts_cache_decision_name((sts_cache_decision)d), want[d]);
        assert_non_null(strstr(sts_cache_decision_why((sts_cache_decision)d), "RFC 8461"));
    }
    assert_string_equal(sts_cache_decision_name((sts_cache_decision)N(want)), "unknown");
    assert_string_equal(sts_cache_decision_name((sts_cache_decision)-1), "unknown");
    assert_string_equal(sts_cache_txt_name(STS_CACHE_TXT_TEMPFAIL), "tempfail");
    assert_string_equal(sts_cache_txt_name((sts_cache_txt)9), "unknown");
}

static void test_txt_mapping(void **state)
{
    (void)state;
    static const struct {
        sts_dns_status st;
        sts_cache_txt want;
    } d[] = {
        {STS_DNS_OK, STS_CACHE_TXT_FOUND},           {STS_DNS_NXDOMAIN, STS_CACHE_TXT_ABSENT},
        {STS_DNS_NODATA, STS_CACHE_TXT_ABSENT},      {STS_DNS_SERVFAIL, STS_CACHE_TXT_TEMPFAIL},
        {STS_DNS_TIMEOUT, STS_CACHE_TXT_TEMPFAIL},   {STS_DNS_REFUSED, STS_CACHE_TXT_TEMPFAIL},
        {STS_DNS_CANCELLED, STS_CACHE_TXT_TEMPFAIL}, {STS_DNS_ERROR, STS_CACHE_TXT_TEMPFAIL},
    };
    for (size_t i = 0; i < N(d); i++)
        assert_int_equal(sts_cache_txt_from_dns(d[i].st), d[i].want);
    assert_int_equal(sts_cache_txt_from_select(0), STS_CACHE_TXT_FOUND);
    assert_int_equal(sts_cache_txt_from_select(STS_ENOTFOUND), STS_CACHE_TXT_ABSENT);
    assert_int_equal(sts_cache_txt_from_select(STS_EINVAL), STS_CACHE_TXT_INVALID);
    assert_int_equal(sts_cache_txt_from_select(STS_ESYNTAX), STS_CACHE_TXT_INVALID);
}

/* ---- storage ------------------------------------------------------------------ */

typedef struct tstate {
    char dir[256];
    char path[300];
} tstate;

static int setup_dir(void **state)
{
    tstate *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    snprintf(t->dir, sizeof(t->dir), "/tmp/ststest-cache-XXXXXX");
    if (!mkdtemp(t->dir)) {
        free(t);
        return -1;
    }
    snprintf(t->path, sizeof(t->path), "%s/policy-cache.sqlite", t->dir);
    *state = t;
    return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    chmod(p, 0700);
    return remove(p);
}

static int teardown_dir(void **state)
{
    tstate *t = *state;
    chmod(t->dir, 0700);
    nftw(t->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(t);
    return 0;
}

static sts_cache *open_ok(const char *path)
{
    char err[512] = "";
    sts_cache *c = NULL;
    int rc = sts_cache_open(path, &c, err, sizeof(err));
    if (rc)
        fail_msg("sts_cache_open(%s): %s: %s", path, sts_errname(rc), err);
    assert_non_null(c);
    return c;
}

static void put_ok(sts_cache *c, const char *dom, const char *id, const char *text, long max_age,
                   time_t now)
{
    int rc = sts_cache_put(c, dom, id, text, strlen(text), max_age, now);
    if (rc)
        fail_msg("put %s: %s: %s", dom, sts_errname(rc), sts_cache_last_error(c));
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void raw_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *msg = NULL;
    int rc = sqlite3_exec(db, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fail_msg("%s: %s", sql, msg ? msg : "?");
    sqlite3_close(db);
}

static void test_roundtrip(void **state)
{
    tstate *t = *state;
    sts_cache *c = open_ok(t->path);
    assert_string_equal(sts_cache_path(c), t->path);

    /* The file is private to the user. */
    struct stat st;
    assert_int_equal(stat(t->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    sts_cache_entry e;
    assert_int_equal(sts_cache_get(c, "example.com", NOW, &e), STS_ENOTFOUND);
    assert_non_null(strstr(sts_cache_last_error(c), t->path));

    put_ok(c, "Example.COM.", "20240101T000000", ENFORCE_A, 86400, NOW);
    assert_int_equal(sts_cache_get(c, "EXAMPLE.com", NOW + 10, &e), 0);
    assert_string_equal(e.domain, "example.com");
    assert_int_equal(e.has_policy, 1);
    assert_string_equal(e.id, "20240101T000000");
    assert_int_equal(e.policy_len, strlen(ENFORCE_A));
    assert_memory_equal(e.policy_text, ENFORCE_A, e.policy_len);
    assert_int_equal(e.policy.mode, STS_MODE_ENFORCE);
    assert_int_equal(e.policy.nmx, 1);
    assert_string_equal(e.policy.mx[0], "mail.example.com");
    assert_int_equal(e.max_age, 86400);
    assert_int_equal(e.fetched_at, NOW);
    assert_int_equal(e.expires_at, NOW + 86400);
    assert_int_equal(e.expired, 0);
    assert_string_equal(e.failed_id, "");
    assert_string_equal(e.problem, "");
    assert_int_equal(sts_cache_decide(&e, STS_CACHE_TXT_FOUND, "20240101T000000", NOW + 10),
                     STS_CACHE_USE_CACHED);
    sts_cache_entry_free(&e);
    sts_cache_entry_free(&e); /* twice is harmless */

    /* Expiry flag around expires_at. */
    assert_int_equal(sts_cache_get(c, "example.com", NOW + 86399, &e), 0);
    assert_int_equal(e.expired, 0);
    sts_cache_entry_free(&e);
    assert_int_equal(sts_cache_get(c, "example.com", NOW + 86400, &e), 0);
    assert_int_equal(e.expired, 1);
    assert_int_equal(e.has_policy, 1); /* still loaded: the decision judges it */
    assert_int_equal(sts_cache_decide(&e, STS_CACHE_TXT_ABSENT, NULL, NOW + 86400),
                     STS_CACHE_NO_POLICY);
    sts_cache_entry_free(&e);

    /* CRLF text kept byte for byte. */
    put_ok(c, "b.example", "B1", NONE_B, 600, NOW);
    assert_int_equal(sts_cache_get(c, "b.example", NOW, &e), 0);
    assert_int_equal(e.policy_len, strlen(NONE_B));
    assert_memory_equal(e.policy_text, NONE_B, e.policy_len);
    assert_int_equal(e.policy.mode, STS_MODE_NONE);
    sts_cache_entry_free(&e);

    /* max_age 0: stored, expired at once. */
    put_ok(c, "zero.example", "Z", ENFORCE_A, 0, NOW);
    assert_int_equal(sts_cache_get(c, "zero.example", NOW, &e), 0);
    assert_int_equal(e.expired, 1);
    assert_int_equal(sts_cache_decide(&e, STS_CACHE_TXT_FOUND, "Z", NOW), STS_CACHE_FETCH);
    sts_cache_entry_free(&e);
    sts_cache_close(c);
}

static void test_replace_none_withdraws(void **state)
{
    tstate *t = *state;
    sts_cache *c = open_ok(t->path);
    put_ok(c, "example.com", "A", ENFORCE_A, 86400, NOW);
    /* RFC 8461 8.3: the domain withdraws by publishing mode none under a new id. */
    sts_cache_entry e;
    assert_int_equal(sts_cache_get(c, "example.com", NOW + 60, &e), 0);
    sts_cache_decision d = sts_cache_decide(&e, STS_CACHE_TXT_FOUND, "B", NOW + 60);
    assert_int_equal(d, STS_CACHE_FETCH_KEEP_CACHED_ON_FAILURE);
    sts_cache_entry_free(&e);
    assert_int_equal(sts_cache_resolve(d, 1, 1), STS_POLICY_SOURCE_FETCHED);
    put_ok(c, "example.com", "B", NONE_B, 600, NOW + 60);

    assert_int_equal(sts_cache_get(c, "example.com", NOW + 61, &e), 0);
    assert_string_equal(e.id, "B");
    assert_int_equal(e.policy.mode, STS_MODE_NONE);
    assert_int_equal(e.policy.nmx, 0);
    assert_int_equal(e.expires_at, NOW + 60 + 600);
    /* The enforce policy is gone: the cached "none" is what a DNS failure keeps now. */
    assert_int_equal(sts_cache_decide(&e, STS_CACHE_TXT_TEMPFAIL, NULL, NOW + 61),
                     STS_CACHE_USE_CACHED_DNS_FAILED);
    sts_cache_entry_free(&e);

    /* And a later testing policy replaces it in turn. */
    put_ok(c, "example.com", "C", TESTING_C, 3600, NOW + 100);
    assert_int_equal(sts_cache_get(c, "example.com", NOW + 100, &e), 0);
    assert_int_equal(e.policy.mode, STS_MODE_TESTING);
    assert_int_equal(e.policy.nmx, 2);
    sts_cache_entry_free(&e);
    sts_cache_close(c);
}

static void test_delete_and_persistence(void **state)
{
    tstate *t = *state;
    sts_cache *c = open_ok(t->path);
    put_ok(c, "a.example", "A", ENFORCE_A, 86400, NOW);
    put_ok(c, "b.example", "B", TESTING_C, 3600, NOW);
    assert_int_equal(sts_cache_note_failure(c, "b.example", "B2", NOW + 5), 0);
    sts_cache_close(c);

    c = open_ok(t->path);
    sts_cache_entry e;
    assert_int_equal(sts_cache_get(c, "a.example", NOW, &e), 0);
    assert_string_equal(e.id, "A");
    sts_cache_entry_free(&e);
    assert_int_equal(sts_cache_get(c, "b.example", NOW, &e), 0);
    assert_string_equal(e.failed_id, "B2");
    assert_int_equal(e.failed_at, NOW + 5);
    sts_cache_entry_free(&e);

    assert_int_equal(sts_cache_delete(c, "A.Example."), 0);
    assert_int_equal(sts_cache_get(c, "a.example", NOW, &e), STS_ENOTFOUND);
    assert_int_equal(sts_cache_delete(c, "a.example"), STS_ENOTFOUND);
    assert_non_null(strstr(sts_cache_last_error(c), "no entry for a.example"));
    sts_cache_close(c);

    c = open_ok(t->path);
    assert_int_equal(sts_cache_get(c, "a.example", NOW, &e), STS_ENOTFOUND);
    assert_int_equal(sts_cache_get(c, "b.example", NOW, &e), 0);
    sts_cache_entry_free(&e);
    sts_cache_close(c);
}

static void test_failures(void **state)
{
    tstate *t = *state;
    sts_cache *c = open_ok(t->path);
    sts_cache_entry e;

    /* A failure for a domain with nothing cached: a row with only the failure. */
    assert_int_equal(sts_cache_note_failure(c, "new.example", "N1", NOW), 0);
    assert_int_equal(sts_cache_get(c, "new.example", NOW + 299, &e), 0);
    assert_int_equal(e.has_policy, 0);
    assert_string_equal(e.failed_id, "N1");
    assert_int_equal(sts_cache_decide(&e, STS_CACHE_TXT_FOUND, "N1", NOW + 299),
                     STS_CACHE_SKIP_FETCH_RECENT_FAILURE);
    assert_int_equal(sts_cache_decide(&e, STS_CACHE_TXT_FOUND, "N1", NOW + 300), STS_CACHE_FETCH);
    sts_cache_entry_free(&e);
    assert_int_equal(sts_cache_may_fetch(c, "new.example", "N1", NOW + 299), 0);
    assert_int_equal(sts_cache_may_fetch(c, "new.example", "N1", NOW + 300), 1);
    assert_int_equal(sts_cache_may_fetch(c, "new.example", "N2", NOW + 1), 1);
    assert_int_equal(sts_cache_may_fetch(c, "other.example", "N1", NOW), 1);

    /* A failure keeps the cached policy. */
    put_ok(c, "example.com", "A", ENFORCE_A, 86400, NOW);
    assert_int_equal(sts_cache_note_failure(c, "example.com", "B", NOW + 10), 0);
    assert_int_equal(sts_cache_get(c, "example.com", NOW + 20, &e), 0);
    assert_int_equal(e.has_policy, 1);
    assert_string_equal(e.id, "A");
    assert_string_equal(e.failed_id, "B");
    assert_int_equal(sts_cache_decide(&e, STS_CACHE_TXT_FOUND, "B", NOW + 20),
                     STS_CACHE_USE_CACHED_RECENT_FAILURE);
    sts_cache_entry_free(&e);

    /* A put under another id keeps the failure of B; a put of B clears it. */
    put_ok(c, "example.com", "C", ENFORCE_A, 86400, NOW + 30);
    assert_int_equal(sts_cache_get(c, "example.com", NOW + 30, &e), 0);
    assert_string_equal(e.failed_id, "B");
    sts_cache_entry_free(&e);
    put_ok(c, "example.com", "B", ENFORCE_A, 86400, NOW + 400);
    assert_int_equal(sts_cache_get(c, "example.com", NOW + 400, &e), 0);
    assert_string_equal(e.failed_id, "");
    assert_int_equal(e.failed_at, 0);
    assert_string_equal(e.id, "B");
    sts_cache_entry_free(&e);
    sts_cache_close(c);
}

static void test_bad_arguments(void **state)
{
    tstate *t = *state;
    sts_cache *c = open_ok(t->path);
    static const char *const bad_domains[] = {
        "", ".", "a..b", "exa mple.com", "a_b.example", "ex\xc3\xa4mple.com", NULL};
    sts_cache_entry e;
    for (size_t i = 0; i < N(bad_domains); i++) {
        assert_int_equal(
            sts_cache_put(c, bad_domains[i], "A", ENFORCE_A, strlen(ENFORCE_A), 86400, NOW),
            STS_EINVAL);
        assert_int_equal(sts_cache_get(c, bad_domains[i], NOW, &e), STS_EINVAL);
        assert_int_equal(sts_cache_delete(c, bad_domains[i]), STS_EINVAL);
    }
    char longname[300];
    memset(longname, 'a', sizeof(longname));
    longname[299] = '\0';
    assert_int_equal(sts_cache_get(c, longname, NOW, &e), STS_EINVAL);

    static const char *const bad_ids[] = {"", "a-b", "123456789012345678901234567890123",
                                          "id with space", NULL};
    for (size_t i = 0; i < N(bad_ids); i++) {
        assert_int_equal(
            sts_cache_put(c, "example.com", bad_ids[i], ENFORCE_A, strlen(ENFORCE_A), 86400, NOW),
            STS_EINVAL);
        assert_int_equal(sts_cache_note_failure(c, "example.com", bad_ids[i], NOW), STS_EINVAL);
    }
    assert_non_null(strstr(sts_cache_last_error(c), "invalid policy id"));
    assert_int_equal(sts_cache_put(c, "example.com", "A", ENFORCE_A, strlen(ENFORCE_A), -1, NOW),
                     STS_EINVAL);
    assert_int_equal(
        sts_cache_put(c, "example.com", "A", ENFORCE_A, strlen(ENFORCE_A), 31557601, NOW),
        STS_EINVAL);
    assert_int_equal(
        sts_cache_put(c, "example.com", "A", ENFORCE_A, strlen(ENFORCE_A), 31557600, NOW), 0);

    /* Only valid policies are stored. */
    static const char bad_policy[] = "version: STSv1\nmode: enforce\nmax_age: 86400\n";
    assert_int_equal(sts_cache_put(c, "x.example", "A", bad_policy, strlen(bad_policy), 86400, NOW),
                     STS_ESYNTAX);
    assert_non_null(strstr(sts_cache_last_error(c), "not a valid policy"));
    assert_non_null(strstr(sts_cache_last_error(c), t->path));
    assert_int_equal(sts_cache_get(c, "x.example", NOW, &e), STS_ENOTFOUND);

    char *big = malloc(STS_CACHE_POLICY_MAX + 2);
    assert_non_null(big);
    memset(big, 'x', STS_CACHE_POLICY_MAX + 1);
    assert_int_equal(sts_cache_put(c, "x.example", "A", big, STS_CACHE_POLICY_MAX + 1, 86400, NOW),
                     STS_ETOOBIG);
    free(big);
    sts_cache_close(c);
}

static void test_stored_text_reparsed(void **state)
{
    tstate *t = *state;
    sts_cache *c = open_ok(t->path);
    put_ok(c, "example.com", "A", ENFORCE_A, 86400, NOW);
    put_ok(c, "mode.example", "A", ENFORCE_A, 86400, NOW);
    put_ok(c, "time.example", "A", ENFORCE_A, 86400, NOW);

    /* Someone damages the rows behind our back. */
    raw_exec(t->path, "UPDATE policy SET policy = CAST('version: STSv9\nmode: enforce\n' AS BLOB)"
                      " WHERE domain = 'example.com';"
                      "UPDATE policy SET mode = 'none' WHERE domain = 'mode.example';"
                      "UPDATE policy SET expires_at = expires_at + 99 WHERE domain = "
                      "'time.example';");
    sts_cache_entry e;
    assert_int_equal(sts_cache_get(c, "example.com", NOW, &e), 0);
    assert_int_equal(e.has_policy, 0);
    assert_non_null(strstr(e.problem, "no longer parses"));
    assert_int_equal(sts_cache_decide(&e, STS_CACHE_TXT_ABSENT, NULL, NOW), STS_CACHE_NO_POLICY);
    assert_int_equal(sts_cache_decide(&e, STS_CACHE_TXT_FOUND, "A", NOW), STS_CACHE_FETCH);
    sts_cache_entry_free(&e);
    assert_int_equal(sts_cache_get(c, "mode.example", NOW, &e), 0);
    assert_int_equal(e.has_policy, 0);
    assert_non_null(strstr(e.problem, "disagrees"));
    sts_cache_entry_free(&e);
    assert_int_equal(sts_cache_get(c, "time.example", NOW, &e), 0);
    assert_int_equal(e.has_policy, 0);
    assert_non_null(strstr(e.problem, "inconsistent times"));
    sts_cache_entry_free(&e);
    sts_cache_close(c);
}

static void test_two_connections(void **state)
{
    tstate *t = *state;
    sts_cache *c1 = open_ok(t->path);
    sts_cache *c2 = open_ok(t->path);
    sts_cache_entry e;
    for (int i = 0; i < 50; i++) {
        char id[16];
        snprintf(id, sizeof(id), "one%d", i);
        put_ok(c1, "example.com", id, ENFORCE_A, 86400, NOW + i);
        assert_int_equal(sts_cache_get(c2, "example.com", NOW + i, &e), 0);
        assert_string_equal(e.id, id);
        sts_cache_entry_free(&e);
        snprintf(id, sizeof(id), "two%d", i);
        put_ok(c2, "example.com", id, TESTING_C, 3600, NOW + i);
        assert_int_equal(sts_cache_note_failure(c1, "other.example", id, NOW + i), 0);
        assert_int_equal(sts_cache_get(c1, "example.com", NOW + i, &e), 0);
        assert_string_equal(e.id, id);
        assert_int_equal(e.policy.mode, STS_MODE_TESTING);
        sts_cache_entry_free(&e);
        assert_int_equal(sts_cache_may_fetch(c2, "other.example", id, NOW + i), 0);
    }
    sts_cache_close(c1);
    sts_cache_close(c2);
}

/* The child writes through its own connection while the parent reads and writes. */
#define FORK_N 150

static int child_writer(const char *path, int go_fd)
{
    char b;
    if (read(go_fd, &b, 1) != 1)
        return 10;
    char err[512];
    sts_cache *c = NULL;
    if (sts_cache_open(path, &c, err, sizeof(err))) {
        fprintf(stderr, "child open: %s\n", err);
        return 11;
    }
    for (int i = 0; i < FORK_N; i++) {
        char dom[64], id[16];
        snprintf(dom, sizeof(dom), "child%d.example", i);
        snprintf(id, sizeof(id), "c%d", i);
        int rc = sts_cache_put(c, dom, id, ENFORCE_A, strlen(ENFORCE_A), 86400, NOW);
        if (!rc)
            rc = sts_cache_note_failure(c, "shared.example", id, NOW + i);
        if (!rc)
            rc = sts_cache_put(c, "shared.example", id, TESTING_C, strlen(TESTING_C), 3600, NOW);
        if (rc) {
            fprintf(stderr, "child %d: %s: %s\n", i, sts_errname(rc), sts_cache_last_error(c));
            sts_cache_close(c);
            return 12;
        }
    }
    sts_cache_close(c);
    return 0;
}

static void test_fork_concurrent(void **state)
{
    tstate *t = *state;
    sts_cache *c = open_ok(t->path); /* creates the schema before the race */
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[1]);
        _exit(child_writer(t->path, pfd[0]));
    }
    close(pfd[0]);
    assert_int_equal(write(pfd[1], "g", 1), 1);
    close(pfd[1]);

    sts_cache_entry e;
    for (int i = 0; i < FORK_N; i++) {
        char dom[64], id[16];
        snprintf(dom, sizeof(dom), "parent%d.example", i);
        snprintf(id, sizeof(id), "p%d", i);
        put_ok(c, dom, id, ENFORCE_A, 86400, NOW);
        put_ok(c, "shared.example", id, ENFORCE_A, 86400, NOW);
        int rc = sts_cache_get(c, "shared.example", NOW, &e);
        if (rc)
            fail_msg("parent get: %s: %s", sts_errname(rc), sts_cache_last_error(c));
        assert_int_equal(e.has_policy, 1); /* always a whole row, never half of one */
        assert_true(e.id[0] == 'p' || e.id[0] == 'c');
        sts_cache_entry_free(&e);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    for (int i = 0; i < FORK_N; i++) {
        char dom[64];
        snprintf(dom, sizeof(dom), "child%d.example", i);
        assert_int_equal(sts_cache_get(c, dom, NOW, &e), 0);
        sts_cache_entry_free(&e);
        snprintf(dom, sizeof(dom), "parent%d.example", i);
        assert_int_equal(sts_cache_get(c, dom, NOW, &e), 0);
        sts_cache_entry_free(&e);
    }
    sts_cache_close(c);
}

/* Several processes open a cache file that does not exist yet, at the same moment: the
 * schema is created once (under BEGIN IMMEDIATE, version read again under the lock) and
 * every one of them can use it. */
#define RACERS 6

static void test_concurrent_create(void **state)
{
    tstate *t = *state;
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    pid_t pids[RACERS];
    fflush(NULL);
    for (int i = 0; i < RACERS; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            close(pfd[1]);
            char b;
            if (read(pfd[0], &b, 1) != 0) /* released when the parent closes the pipe */
                _exit(40);
            char err[512], dom[64], id[16];
            sts_cache *c = NULL;
            int rc = sts_cache_open(t->path, &c, err, sizeof(err));
            if (rc) {
                fprintf(stderr, "racer %d open: %s\n", i, err);
                _exit(41);
            }
            snprintf(dom, sizeof(dom), "racer%d.example", i);
            snprintf(id, sizeof(id), "r%d", i);
            rc = sts_cache_put(c, dom, id, ENFORCE_A, strlen(ENFORCE_A), 86400, NOW);
            if (rc)
                fprintf(stderr, "racer %d put: %s\n", i, sts_cache_last_error(c));
            sts_cache_close(c);
            _exit(rc ? 42 : 0);
        }
    }
    close(pfd[0]);
    usleep(50 * 1000);
    close(pfd[1]); /* go */
    for (int i = 0; i < RACERS; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    sts_cache *c = open_ok(t->path);
    for (int i = 0; i < RACERS; i++) {
        char dom[64];
        sts_cache_entry e;
        snprintf(dom, sizeof(dom), "racer%d.example", i);
        assert_int_equal(sts_cache_get(c, dom, NOW, &e), 0);
        sts_cache_entry_free(&e);
    }
    sts_cache_close(c);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Another process holds the write lock for a second: a put waits for it (busy_timeout)
 * instead of failing with SQLITE_BUSY, and a get is not blocked at all (WAL). */
static void test_lock_wait(void **state)
{
    tstate *t = *state;
    sts_cache *c = open_ok(t->path);
    put_ok(c, "example.com", "A", ENFORCE_A, 86400, NOW);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        sqlite3 *db = NULL;
        int rc = sqlite3_open(t->path, &db);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db,
                              "BEGIN IMMEDIATE; UPDATE policy SET max_age = max_age "
                              "WHERE domain = 'example.com'",
                              NULL, NULL, NULL);
        char b = rc == SQLITE_OK ? 'L' : 'E';
        if (write(pfd[1], &b, 1) != 1)
            _exit(20);
        usleep(1000 * 1000);
        if (rc == SQLITE_OK)
            rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
        sqlite3_close(db);
        _exit(rc == SQLITE_OK ? 0 : 21);
    }
    close(pfd[1]);
    char b = 0;
    assert_int_equal(read(pfd[0], &b, 1), 1);
    close(pfd[0]);
    assert_int_equal(b, 'L');

    double t0 = mono();
    sts_cache_entry e;
    assert_int_equal(sts_cache_get(c, "example.com", NOW, &e), 0);
    sts_cache_entry_free(&e);
    double t1 = mono();
    assert_true(t1 - t0 < 0.5); /* readers do not wait for the writer */

    put_ok(c, "example.com", "B", ENFORCE_A, 86400, NOW);
    double t2 = mono();
    assert_true(t2 - t1 > 0.5); /* it did wait for the lock ... */
    assert_true(t2 - t1 < 4.5); /* ... and not for the whole busy timeout */

    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(sts_cache_get(c, "example.com", NOW, &e), 0);
    assert_string_equal(e.id, "B");
    sts_cache_entry_free(&e);
    sts_cache_close(c);
}

static void expect_open_error(const char *path, int want_rc, const char *part1, const char *part2)
{
    char err[512] = "";
    sts_cache *c = (sts_cache *)0x1;
    int rc = sts_cache_open(path, &c, err, sizeof(err));
    if (rc != want_rc)
        fail_msg("open %s: got %s (%s), want %s", path, sts_errname(rc), err, sts_errname(want_rc));
    assert_null(c);
    if (!strstr(err, path))
        fail_msg("error does not name the file: %s", err);
    if (part1 && !strstr(err, part1))
        fail_msg("error lacks '%s': %s", part1, err);
    if (part2 && !strstr(err, part2))
        fail_msg("error lacks '%s': %s", part2, err);
}

static void test_garbage_file(void **state)
{
    tstate *t = *state;
    static const char junk[] = "this is not a database, it is a text file\n";
    write_file(t->path, junk, strlen(junk));
    expect_open_error(t->path, STS_EIO, "not an SQLite database", "left untouched");
    /* Never deleted nor rewritten. */
    char buf[128] = "";
    FILE *f = fopen(t->path, "rb");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    assert_int_equal(n, strlen(junk));
    assert_memory_equal(buf, junk, n);

    /* A file shorter than the magic string. */
    write_file(t->path, "SQL", 3);
    expect_open_error(t->path, STS_EIO, "not an SQLite database", NULL);

    /* The right magic followed by garbage: SQLite itself refuses it. */
    char fake[4096];
    memset(fake, 0xA5, sizeof(fake));
    memcpy(fake, "SQLite format 3", 16);
    write_file(t->path, fake, sizeof(fake));
    expect_open_error(t->path, STS_EIO, "not an SQLite database or damaged", NULL);

    /* A directory where the file should be. */
    char dpath[400];
    snprintf(dpath, sizeof(dpath), "%s/adir", t->dir);
    assert_int_equal(mkdir(dpath, 0700), 0);
    expect_open_error(dpath, STS_EIO, "cannot open or create", NULL);
}

/* A symbolic link as the cache file, or as its -wal or -shm file, is refused: the
 * target (here an empty file, which SQLite would happily make a database of) is left
 * as it was, a dangling link's target is not created, and nothing is left behind. */
static void test_symlink_refused(void **state)
{
    tstate *t = *state;
    char target[400], link[400], side[420];
    snprintf(target, sizeof(target), "%s/target", t->dir);
    snprintf(link, sizeof(link), "%s/link.sqlite", t->dir);
    write_file(target, "", 0);
    assert_int_equal(symlink(target, link), 0);
    char want[900];
    snprintf(want, sizeof(want), "%s is a symbolic link; refusing it as the policy cache: ", link);
    expect_open_error(link, STS_EIO, want, "(it points to ");
    struct stat stb;
    assert_int_equal(stat(target, &stb), 0);
    assert_int_equal(stb.st_size, 0);
    snprintf(side, sizeof(side), "%s-wal", link);
    assert_int_equal(access(side, F_OK), -1);
    snprintf(side, sizeof(side), "%s-shm", link);
    assert_int_equal(access(side, F_OK), -1);

    /* A dangling link: its target is not created. */
    unlink(target);
    expect_open_error(link, STS_EIO, want, NULL);
    assert_int_equal(access(target, F_OK), -1);

    /* The real file, but its write-ahead log is a link. */
    sts_cache_close(open_ok(t->path));
    snprintf(side, sizeof(side), "%s-wal", t->path);
    unlink(side);
    assert_int_equal(symlink(target, side), 0);
    expect_open_error(t->path, STS_EIO,
                      "-wal is a symbolic link; refusing it as the policy "
                      "cache's write-ahead log",
                      NULL);
    assert_int_equal(access(target, F_OK), -1);
}

static void test_foreign_database(void **state)
{
    tstate *t = *state;
    raw_exec(t->path, "CREATE TABLE contacts (name TEXT)");
    expect_open_error(t->path, STS_EIO, "not a ststest policy cache", "left untouched");
    /* Still there. */
    raw_exec(t->path, "INSERT INTO contacts VALUES ('x')");
}

static void test_schema_versions(void **state)
{
    tstate *t = *state;
    /* Newer: refused. */
    raw_exec(t->path, "PRAGMA user_version = 2");
    expect_open_error(t->path, STS_EUNSUPPORTED, "schema version 2 is newer", "(1)");
    unlink(t->path);

    /* Version 1 claimed but no table: refused. */
    raw_exec(t->path, "PRAGMA user_version = 1");
    expect_open_error(t->path, STS_EIO, "policy table is missing", NULL);
    unlink(t->path);

    /* Older (0, an empty SQLite database): brought to the current version. */
    raw_exec(t->path, "PRAGMA page_size = 4096; VACUUM");
    sts_cache *c = open_ok(t->path);
    put_ok(c, "example.com", "A", ENFORCE_A, 86400, NOW);
    sts_cache_close(c);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), STS_CACHE_SCHEMA_VERSION);
    sqlite3_finalize(st);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    sqlite3_close(db);

    /* A zero-byte file is a new database too. */
    unlink(t->path);
    write_file(t->path, "", 0);
    c = open_ok(t->path);
    sts_cache_close(c);
}

static void test_unwritable(void **state)
{
    tstate *t = *state;
    char path[512];

    /* Directory missing. */
    snprintf(path, sizeof(path), "%s/missing/policy-cache.sqlite", t->dir);
    expect_open_error(path, STS_EIO, "cannot open or create", "does not exist");

    /* Parent is a file. */
    char file[400];
    snprintf(file, sizeof(file), "%s/afile", t->dir);
    write_file(file, "x", 1);
    snprintf(path, sizeof(path), "%s/afile/policy-cache.sqlite", t->dir);
    expect_open_error(path, STS_EIO, "cannot open or create", "Not a directory");

    /* A read-only directory. root ignores permissions, so as root the check runs in a
     * child that has dropped to an unprivileged user. */
    char ro[400];
    snprintf(ro, sizeof(ro), "%s/ro", t->dir);
    assert_int_equal(mkdir(ro, 0755), 0);
    snprintf(path, sizeof(path), "%s/policy-cache.sqlite", ro);
    assert_int_equal(chmod(t->dir, 0755), 0);
    assert_int_equal(chmod(ro, 0555), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(30);
        char err[512] = "";
        sts_cache *c = NULL;
        int rc = sts_cache_open(path, &c, err, sizeof(err));
        if (rc != STS_EIO || c || !strstr(err, path) || !strstr(err, "Permission denied")) {
            fprintf(stderr, "read-only dir: rc %d err '%s'\n", rc, err);
            _exit(31);
        }
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);

    /* A database that exists but sits in a directory that became read-only. */
    assert_int_equal(chmod(ro, 0755), 0);
    sts_cache *c = open_ok(path);
    sts_cache_close(c);
    assert_int_equal(chmod(path, 0666), 0);
    assert_int_equal(chmod(ro, 0555), 0);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(30);
        char err[512] = "";
        sts_cache *cc = NULL;
        int rc = sts_cache_open(path, &cc, err, sizeof(err));
        if (rc != STS_EIO || cc || !strstr(err, path) || !strstr(err, "not writable")) {
            fprintf(stderr, "read-only dir, existing file: rc %d err '%s'\n", rc, err);
            _exit(32);
        }
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    chmod(ro, 0700);
}

static char *save_env(const char *name)
{
    const char *v = getenv(name);
    return v ? strdup(v) : NULL;
}

static void restore_env(const char *name, char *v)
{
    if (v)
        setenv(name, v, 1);
    else
        unsetenv(name);
    free(v);
}

static void test_default_path(void **state)
{
    tstate *t = *state;
    char *old_xdg = save_env("XDG_CACHE_HOME"), *old_home = save_env("HOME");
    char out[512], err[512], want[512], dir[512];
    struct stat st;

    /* XDG_CACHE_HOME wins; missing directories are created with mode 0700. */
    char xdg[400];
    snprintf(xdg, sizeof(xdg), "%s/xdg", t->dir);
    setenv("XDG_CACHE_HOME", xdg, 1);
    setenv("HOME", "/nonexistent-home", 1);
    assert_int_equal(sts_cache_default_path(out, sizeof(out), err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "%s/ststest/policy-cache.sqlite", xdg);
    assert_string_equal(out, want);
    snprintf(dir, sizeof(dir), "%s/ststest", xdg);
    assert_int_equal(stat(dir, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(stat(xdg, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    sts_cache *c = open_ok(out);
    sts_cache_close(c);
    /* Again: the directories exist now. */
    assert_int_equal(sts_cache_default_path(out, sizeof(out), err, sizeof(err)), 0);

    /* A relative XDG_CACHE_HOME is ignored (XDG spec): HOME/.cache. */
    char home[400];
    snprintf(home, sizeof(home), "%s/home", t->dir);
    setenv("XDG_CACHE_HOME", "relative/cache", 1);
    setenv("HOME", home, 1);
    assert_int_equal(sts_cache_default_path(out, sizeof(out), err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "%s/.cache/ststest/policy-cache.sqlite", home);
    assert_string_equal(out, want);
    snprintf(dir, sizeof(dir), "%s/.cache/ststest", home);
    assert_int_equal(stat(dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);

    /* Unset XDG_CACHE_HOME: HOME/.cache too. */
    unsetenv("XDG_CACHE_HOME");
    assert_int_equal(sts_cache_default_path(out, sizeof(out), err, sizeof(err)), 0);
    assert_string_equal(out, want);

    /* Neither. */
    unsetenv("HOME");
    assert_int_equal(sts_cache_default_path(out, sizeof(out), err, sizeof(err)), STS_EINVAL);
    assert_non_null(strstr(err, "--cache"));

    /* A file in the way of a directory. */
    char file[400];
    snprintf(file, sizeof(file), "%s/xdgfile", t->dir);
    write_file(file, "x", 1);
    setenv("XDG_CACHE_HOME", file, 1);
    assert_int_equal(sts_cache_default_path(out, sizeof(out), err, sizeof(err)), STS_EIO);
    assert_non_null(strstr(err, file));

    /* Too small a buffer. */
    setenv("XDG_CACHE_HOME", xdg, 1);
    assert_int_equal(sts_cache_default_path(out, 10, err, sizeof(err)), STS_ETOOBIG);

    restore_env("XDG_CACHE_HOME", old_xdg);
    restore_env("HOME", old_home);
}

static void test_open_args(void **state)
{
    (void)state;
    char err[128] = "";
    sts_cache *c = (sts_cache *)0x1;
    assert_int_equal(sts_cache_open("", &c, err, sizeof(err)), STS_EINVAL);
    assert_null(c);
    assert_non_null(strstr(err, "empty"));
    assert_int_equal(sts_cache_open(NULL, &c, err, sizeof(err)), STS_EINVAL);
    sts_cache_close(NULL);
    sts_cache_entry_free(NULL);
}

#define ST(f) cmocka_unit_test_setup_teardown(f, setup_dir, teardown_dir)

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decision_table),
        cmocka_unit_test(test_entry_predicates),
        cmocka_unit_test(test_resolve_table),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_txt_mapping),
        cmocka_unit_test(test_open_args),
        ST(test_roundtrip),
        ST(test_replace_none_withdraws),
        ST(test_delete_and_persistence),
        ST(test_failures),
        ST(test_bad_arguments),
        ST(test_stored_text_reparsed),
        ST(test_two_connections),
        ST(test_fork_concurrent),
        ST(test_lock_wait),
        ST(test_concurrent_create),
        ST(test_garbage_file),
        ST(test_foreign_database),
        ST(test_symlink_refused),
        ST(test_schema_versions),
        ST(test_unwritable),
        ST(test_default_path),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
