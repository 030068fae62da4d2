/* test_discover.c - policy discovery (sender/discover.h) without a DNS server: the TXT
 * lookup goes to a loopback port nobody answers on (refused or timed out: a temporary
 * failure, RFC 8461 3.1), so what applies comes from the policy cache in a temp file
 * (RFC 8461 3.3 / 10.2: a non-expired cached policy survives a DNS failure), with a
 * fixed clock. Also: the argument checks, the re-check's precondition, cancelling
 * a pending lookup (the callback reports cancelled and nothing is written), and a TXT
 * query that cannot even start (the callback still comes from the loop, never inside
 * sts_discover_start). Every test ends with uv_loop_close(loop) == 0. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "sender/discover.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define NOW ((time_t)1700000000)
#define DOMAIN "example.test"
/* Port 1 on loopback: nothing listens, the query is refused (or times out after 1 s). */
#define DEAD_DNS "127.0.0.1:1"
#define ENFORCE "version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 86400\n"

typedef struct env {
    uv_loop_t loop;
    sts_resolver *resolver;
    sts_fetcher *fetcher;
    char dir[64];
    char path[128];
    sts_cache *cache;
    int calls;
    sts_discovery seen; /* a shallow copy of what the callback got (policy not owned) */
} env;

static void env_open(env *e, int with_cache)
{
    memset(e, 0, sizeof(*e));
    char err[256] = "";
    assert_int_equal(uv_loop_init(&e->loop), 0);
    assert_int_equal(
        sts_resolver_new(&e->loop, DEAD_DNS, 1.0, NULL, &e->resolver, err, sizeof(err)), 0);
    assert_int_equal(sts_fetcher_new(&e->loop, NULL, NOW, NULL, &e->fetcher, err, sizeof(err)), 0);
    if (with_cache) {
        snprintf(e->dir, sizeof(e->dir), "/tmp/test_discover.XXXXXX");
        assert_non_null(mkdtemp(e->dir));
        snprintf(e->path, sizeof(e->path), "%s/cache.sqlite", e->dir);
        assert_int_equal(sts_cache_open(e->path, &e->cache, err, sizeof(err)), 0);
    }
}

static void env_close(env *e)
{
    if (e->resolver)
        sts_resolver_free(e->resolver);
    if (e->fetcher)
        sts_fetcher_free(e->fetcher);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    sts_cache_close(e->cache);
    if (e->dir[0]) {
        char p[160];
        snprintf(p, sizeof(p), "%s-wal", e->path);
        unlink(p);
        snprintf(p, sizeof(p), "%s-shm", e->path);
        unlink(p);
        unlink(e->path);
        rmdir(e->dir);
    }
}

static void found_cb(const sts_discovery *res, void *arg)
{
    env *e = arg;
    e->calls++;
    e->seen = *res;
}

static sts_discover *discover_new(env *e)
{
    sts_discover_params p = {
        .loop = &e->loop,
        .domain = DOMAIN,
        .resolver = e->resolver,
        .fetcher = e->fetcher,
        .cache = e->cache,
        .fetch_timeout = 5,
        .now = NOW,
    };
    sts_discover *d = NULL;
    assert_int_equal(sts_discover_new(&p, &d), 0);
    assert_non_null(d);
    return d;
}

/* ---- the TXT lookup fails: what the cache says applies ---- */

struct tcase {
    const char *name;
    int with_cache;     /* a cache file at all */
    long cached_age;    /* -1: nothing cached; else the policy was fetched this long ago */
    sts_policy_source source; /* expected */
    sts_cache_decision decision;
    int have_policy;
    int may_recheck;
};

static const struct tcase tcases[] = {
    {"no cache file", 0, -1, STS_POLICY_SOURCE_NONE, STS_CACHE_NO_POLICY, 0, 0},
    {"nothing cached", 1, -1, STS_POLICY_SOURCE_NONE, STS_CACHE_NO_POLICY, 0, 0},
    /* RFC 8461 3.3 / 10.2: a DNS failure does not remove a non-expired cached policy. */
    {"cached, fresh", 1, 60, STS_POLICY_SOURCE_CACHE, STS_CACHE_USE_CACHED_DNS_FAILED, 1, 1},
    {"cached, one second left", 1, 86399, STS_POLICY_SOURCE_CACHE, STS_CACHE_USE_CACHED_DNS_FAILED,
     1, 1},
    /* RFC 8461 3.2: max_age is counted from the fetch; at fetched + max_age it is gone. */
    {"cached, expired exactly now", 1, 86400, STS_POLICY_SOURCE_NONE, STS_CACHE_NO_POLICY, 0, 0},
    {"cached, long expired", 1, 400000, STS_POLICY_SOURCE_NONE, STS_CACHE_NO_POLICY, 0, 0},
};

static void test_txt_failure_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(tcases); i++) {
        const struct tcase *t = &tcases[i];
        env e;
        env_open(&e, t->with_cache);
        if (t->cached_age >= 0)
            assert_int_equal(sts_cache_put(e.cache, DOMAIN, "id1", ENFORCE, strlen(ENFORCE), 86400,
                                           NOW - t->cached_age),
                             0);
        sts_discover *d = discover_new(&e);
        assert_int_equal(sts_discover_start(d, found_cb, &e), 0);
        assert_int_equal(e.calls, 0); /* never inside the call */
        /* A second start while running is refused. */
        assert_int_equal(sts_discover_start(d, found_cb, &e), STS_EINVAL);
        while (!e.calls)
            uv_run(&e.loop, UV_RUN_ONCE);
        const sts_discovery *r = sts_discover_result(d);
        if (e.calls != 1 || r->source != t->source || r->decision != t->decision ||
            r->have_policy != t->have_policy)
            fail_msg("case '%s': calls %d source %s decision %s have_policy %d", t->name, e.calls,
                     sts_policy_source_name(r->source), sts_cache_decision_name(r->decision),
                     r->have_policy);
        assert_int_equal(e.seen.source, r->source);
        assert_int_equal(r->decided, 1);
        assert_int_equal(r->have_txt, 0);
        assert_string_equal(r->txt_id, "");
        assert_int_equal(r->cancelled, 0);
        assert_int_equal(r->nfailures, 0); /* no fetch, nothing failed to report */
        assert_int_equal(sts_discover_may_recheck(d), t->may_recheck);
        if (t->have_policy) {
            assert_int_equal(r->policy.mode, STS_MODE_ENFORCE);
            assert_int_equal(r->policy.nmx, 1);
            assert_string_equal(r->policy.mx[0], "mail.example.test");
            assert_string_equal(r->policy_id, "id1");
            assert_int_equal(r->fetched_at, NOW - t->cached_age);
            assert_int_equal(r->expires_at, NOW - t->cached_age + 86400);
        }
        /* Nothing was fetched, so nothing about the domain changed in the cache. */
        if (e.cache) {
            sts_cache_entry ce;
            int rc = sts_cache_get(e.cache, DOMAIN, NOW, &ce);
            assert_int_equal(rc, t->cached_age >= 0 ? 0 : STS_ENOTFOUND);
            if (!rc) {
                assert_string_equal(ce.failed_id, "");
                sts_cache_entry_free(&ce);
            }
        }
        sts_discover_free(d);
        env_close(&e);
    }
}

/* RFC 8461 5.1: the re-check looks the TXT record up again; it fails again, so the
 * cached policy stands (NO_TXT), and a second re-check is refused. */
static void test_recheck_keeps_cached_policy(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    assert_int_equal(
        sts_cache_put(e.cache, DOMAIN, "id1", ENFORCE, strlen(ENFORCE), 86400, NOW - 60), 0);
    sts_discover *d = discover_new(&e);
    assert_int_equal(sts_discover_recheck(d, found_cb, &e), STS_EINVAL); /* not started */
    assert_int_equal(sts_discover_start(d, found_cb, &e), 0);
    while (!e.calls)
        uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(e.seen.source, STS_POLICY_SOURCE_CACHE);
    assert_int_equal(sts_discover_recheck(d, found_cb, &e), 0);
    assert_int_equal(e.calls, 1);
    while (e.calls < 2)
        uv_run(&e.loop, UV_RUN_ONCE);
    const sts_discovery *r = sts_discover_result(d);
    assert_int_equal(r->rechecked, 1);
    assert_int_equal(r->recheck, STS_RECHECK_NO_TXT);
    assert_int_equal(r->recheck_changed, 0);
    assert_int_equal(r->recheck_fetched, 0);
    assert_string_equal(r->recheck_id, "");
    assert_int_equal(r->have_policy, 1);
    assert_int_equal(r->source, STS_POLICY_SOURCE_CACHE);
    assert_int_equal(sts_discover_may_recheck(d), 0);
    assert_int_equal(sts_discover_recheck(d, found_cb, &e), STS_EINVAL);
    sts_discover_free(d);
    env_close(&e);
}

/* Under no policy there is nothing to re-check. */
static void test_recheck_needs_cached_policy(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    sts_discover *d = discover_new(&e);
    assert_int_equal(sts_discover_start(d, found_cb, &e), 0);
    while (!e.calls)
        uv_run(&e.loop, UV_RUN_ONCE);
    assert_int_equal(e.seen.source, STS_POLICY_SOURCE_NONE);
    assert_int_equal(sts_discover_may_recheck(d), 0);
    assert_int_equal(sts_discover_recheck(d, found_cb, &e), STS_EINVAL);
    assert_int_equal(sts_discover_result(d)->rechecked, 0);
    assert_int_equal(sts_discover_may_recheck(NULL), 0);
    sts_discover_free(d);
    env_close(&e);
}

/* Cancel, then free the resolver: the pending TXT lookup ends the discovery at once,
 * cancelled, before any decision. */
static void test_cancel(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    sts_discover *d = discover_new(&e);
    assert_int_equal(sts_discover_start(d, found_cb, &e), 0);
    sts_discover_cancel(d);
    assert_int_equal(e.calls, 0);
    sts_resolver_free(e.resolver);
    e.resolver = NULL;
    assert_int_equal(e.calls, 1);
    const sts_discovery *r = sts_discover_result(d);
    assert_int_equal(r->cancelled, 1);
    assert_int_equal(r->decided, 0);
    assert_int_equal(r->have_policy, 0);
    assert_int_equal(r->source, STS_POLICY_SOURCE_NONE);
    sts_cache_entry ce;
    assert_int_equal(sts_cache_get(e.cache, DOMAIN, NOW, &ce), STS_ENOTFOUND);
    sts_discover_free(d);
    env_close(&e);
}

/* ---- the TXT query cannot start: the callback comes from a zero-delay timer ---- */

typedef struct nested {
    env *e;
    sts_discover *d[3]; /* started inside the first one's callback */
    int calls[3];       /* of each */
    int calls_inside;   /* callbacks run inside sts_discover_start: must stay 0 */
    sts_discovery seen[3];
} nested;

static void nested_cb(nested *n, int i, const sts_discovery *res)
{
    n->calls[i]++;
    n->seen[i] = *res;
}

static void second_cb(const sts_discovery *res, void *arg)
{
    nested_cb(arg, 0, res);
}

static void third_cb(const sts_discovery *res, void *arg)
{
    nested_cb(arg, 1, res);
}

static void fourth_cb(const sts_discovery *res, void *arg)
{
    nested_cb(arg, 2, res);
}

/* The first discovery's callback runs inside sts_resolver_free (its query cancelled):
 * the resolver takes no more queries, so each start here cannot start its TXT query. */
static void first_cb(const sts_discovery *res, void *arg)
{
    nested *n = arg;
    (void)res;
    sts_discover_cb cbs[3] = {second_cb, third_cb, fourth_cb};
    for (int i = 0; i < 3; i++) {
        n->d[i] = discover_new(n->e);
        assert_int_equal(sts_discover_start(n->d[i], cbs[i], n), 0);
        n->calls_inside += n->calls[i];
    }
    sts_discover_free(n->d[1]); /* pending step dropped: no callback, ever */
    n->d[1] = NULL;
    sts_discover_cancel(n->d[2]); /* the timer's callback reports it cancelled */
}

static void test_start_fails_later(void **state)
{
    (void)state;
    env e;
    env_open(&e, 1);
    assert_int_equal(
        sts_cache_put(e.cache, DOMAIN, "id1", ENFORCE, strlen(ENFORCE), 86400, NOW - 60), 0);
    nested n = {.e = &e};
    sts_discover *first = discover_new(&e);
    assert_int_equal(sts_discover_start(first, first_cb, &n), 0);
    sts_resolver_free(e.resolver);
    e.resolver = NULL;
    assert_non_null(n.d[0]);
    assert_int_equal(n.calls_inside, 0);
    assert_int_equal(n.calls[0] + n.calls[1] + n.calls[2], 0); /* not before the loop runs */
    while (!n.calls[0] || !n.calls[2])
        uv_run(&e.loop, UV_RUN_ONCE);
    uv_run(&e.loop, UV_RUN_NOWAIT);
    assert_int_equal(n.calls[0], 1);
    assert_int_equal(n.calls[1], 0);
    assert_int_equal(n.calls[2], 1);
    /* As after a failed lookup (RFC 8461 3.1): the cached policy applies. */
    const sts_discovery *r = sts_discover_result(n.d[0]);
    assert_int_equal(n.seen[0].source, STS_POLICY_SOURCE_CACHE);
    assert_int_equal(r->decision, STS_CACHE_USE_CACHED_DNS_FAILED);
    assert_int_equal(r->have_policy, 1);
    assert_int_equal(r->cancelled, 0);
    assert_string_equal(r->detail, "TXT lookup could not start: operation not valid in this state");
    /* Cancelled before its timer fired: ended with nothing decided. */
    assert_int_equal(n.seen[2].cancelled, 1);
    assert_int_equal(n.seen[2].decided, 0);
    sts_discover_free(first);
    sts_discover_free(n.d[0]);
    sts_discover_free(n.d[2]);
    env_close(&e);
}

static void test_new_rejects(void **state)
{
    (void)state;
    env e;
    env_open(&e, 0);
    char long_name[300];
    memset(long_name, 'a', sizeof(long_name));
    long_name[256] = '\0';
    struct {
        const char *domain;
        int resolver, fetcher, loop;
    } bad[] = {{NULL, 1, 1, 1},   {"", 1, 1, 1},        {DOMAIN, 0, 1, 1},
               {DOMAIN, 1, 0, 1}, {long_name, 1, 1, 1}, {DOMAIN, 1, 1, 0}};
    for (size_t i = 0; i < N(bad); i++) {
        sts_discover_params p = {
            .loop = bad[i].loop ? &e.loop : NULL,
            .domain = bad[i].domain,
            .resolver = bad[i].resolver ? e.resolver : NULL,
            .fetcher = bad[i].fetcher ? e.fetcher : NULL,
        };
        sts_discover *d = (sts_discover *)&p; /* must be reset to NULL */
        if (sts_discover_new(&p, &d) != STS_EINVAL || d)
            fail_msg("case %zu accepted", i);
    }
    long_name[255] = '\0'; /* 255 octets: the longest name (RFC 1035 2.3.4) */
    sts_discover_params ok = {
        .loop = &e.loop, .domain = long_name, .resolver = e.resolver, .fetcher = e.fetcher};
    sts_discover *d = NULL;
    assert_int_equal(sts_discover_new(&ok, &d), 0);
    assert_int_equal(sts_discover_result(d)->source, STS_POLICY_SOURCE_NONE);
    sts_discover_free(d);
    sts_discover_free(NULL);
    env_close(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txt_failure_table),
        cmocka_unit_test(test_recheck_keeps_cached_policy),
        cmocka_unit_test(test_recheck_needs_cached_policy),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_start_fails_later),
        cmocka_unit_test(test_new_rejects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
