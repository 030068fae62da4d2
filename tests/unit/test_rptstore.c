/* test_rptstore.c - the TLS report store: which MX entries of a result are sessions
 * (a table over sts_rptstore_sessions_of), storing and reading a day back as one
 * aggregate per policy, the day's bounds, symbolic links and foreign files refused,
 * several processes recording at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/err.h"
#include "sender/cache.h"
#include "sender/rptstore.h"
#include "tests/unit/unit_fixture.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define DAY 1893456000 /* 2030-01-01T00:00:00Z */
/* A successful session, and a failed one. */
#define OK(at_, dom, type, pol, mx)                                                                \
    {                                                                                              \
        .at = (at_), .policy_domain = (dom), .policy_type = (type), .policy_string = (pol),        \
        .mx_host = (mx)                                                                            \
    }
#define FAIL(at_, dom, pol, mx, rt, host, ip)                                                      \
    {                                                                                              \
        .at = (at_), .policy_domain = (dom), .policy_type = STS_POLICY_TYPE_STS,                   \
        .policy_string = (pol), .mx_host = (mx), .result_type = (rt),                              \
        .sending_mta_ip = "127.0.0.1", .receiving_mx_hostname = (host), .receiving_ip = (ip)       \
    }

/* One MX entry of a result, as the sender leaves it. */
struct mx_case {
    const char *about;
    int have_policy;         /* an sts policy applied */
    sts_result_type disc;    /* a discovery failure (no policy applied) */
    sts_result_type failure; /* the MX's own failure */
    int connected, starttls, tls_attempted, tls_up, verified, code;
    sts_result_type tls_type; /* the handshake's type when not verified */
    int session;              /* 1: a session is recorded */
    sts_policy_type want_type;
    sts_result_type want; /* its result type (none: success) */
};

static const struct mx_case mx_cases[] = {
    {"verified TLS under a policy", 1, 0, 0, 1, 1, 1, 1, 1, 250, 0, 1, STS_POLICY_TYPE_STS,
     STS_RESULT_NONE},
    {"verified TLS, no policy", 0, 0, 0, 1, 1, 1, 1, 1, 250, 0, 1, STS_POLICY_TYPE_NO_POLICY_FOUND,
     STS_RESULT_NONE},
    {"certificate name refused under enforce", 1, 0, STS_RESULT_CERTIFICATE_HOST_MISMATCH, 1, 1, 1,
     1, 0, 250, STS_RESULT_CERTIFICATE_HOST_MISMATCH, 1, STS_POLICY_TYPE_STS,
     STS_RESULT_CERTIFICATE_HOST_MISMATCH},
    {"expired certificate accepted under none", 0, 0, 0, 1, 1, 1, 1, 0, 250,
     STS_RESULT_CERTIFICATE_EXPIRED, 1, STS_POLICY_TYPE_NO_POLICY_FOUND,
     STS_RESULT_CERTIFICATE_EXPIRED},
    {"an MX outside the policy, never connected", 1, 0, STS_RESULT_VALIDATION_FAILURE, 0, 0, 0, 0,
     0, 0, 0, 1, STS_POLICY_TYPE_STS, STS_RESULT_VALIDATION_FAILURE},
    {"no STARTTLS offered, nothing required it", 0, 0, 0, 1, 0, 0, 0, 0, 250, 0, 1,
     STS_POLICY_TYPE_NO_POLICY_FOUND, STS_RESULT_STARTTLS_NOT_SUPPORTED},
    {"policy fetch failed, TLS fine", 0, STS_RESULT_STS_POLICY_FETCH_ERROR, 0, 1, 1, 1, 1, 1, 250,
     0, 1, STS_POLICY_TYPE_STS, STS_RESULT_STS_POLICY_FETCH_ERROR},
    {"invalid policy, the MX's own failure wins", 0, STS_RESULT_STS_POLICY_INVALID,
     STS_RESULT_CERTIFICATE_NOT_TRUSTED, 1, 1, 1, 1, 0, 250, 0, 1, STS_POLICY_TYPE_STS,
     STS_RESULT_CERTIFICATE_NOT_TRUSTED},
    {"connection refused: transient", 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, STS_POLICY_TYPE_STS,
     STS_RESULT_NONE},
    {"421 at the banner: transient", 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, STS_POLICY_TYPE_STS,
     STS_RESULT_NONE},
};

static char *mx_names[] = {"mail.example.test", "*.example.test"};

static void fill(const struct mx_case *c, sts_rcpt_result *r, sts_mx_result *m, sts_discovery *d)
{
    memset(r, 0, sizeof(*r));
    memset(m, 0, sizeof(*m));
    memset(d, 0, sizeof(*d));
    snprintf(r->domain, sizeof(r->domain), "example.test");
    r->mx = m;
    r->nmx = 1;
    m->host = "mail.example.test";
    snprintf(m->address, sizeof(m->address), "127.0.0.1");
    if (c->connected) /* our end of the connection, as smtpc recorded it */
        snprintf(m->local_address, sizeof(m->local_address), "127.0.0.9");
    m->failure = c->failure;
    m->connected = c->connected;
    m->starttls_offered = c->starttls;
    m->tls_attempted = c->tls_attempted;
    m->tls_up = c->tls_up;
    m->tls.verified = c->verified;
    m->tls.result_type = c->tls_type;
    m->code = c->code;
    d->have_policy = c->have_policy;
    if (c->have_policy) {
        snprintf(d->policy.version, sizeof(d->policy.version), "STSv1");
        d->policy.mode = STS_MODE_ENFORCE;
        d->policy.max_age = 86400;
        d->policy.mx = mx_names;
        d->policy.nmx = 2;
    }
    if (c->disc) {
        d->failures[0] = c->disc;
        d->nfailures = 1;
    }
}

static void test_sessions_of(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(mx_cases); i++) {
        const struct mx_case *c = &mx_cases[i];
        sts_rcpt_result r;
        sts_mx_result m;
        sts_discovery d;
        fill(c, &r, &m, &d);
        sts_rptstore_session v[4];
        char buf[4096];
        size_t n = sts_rptstore_sessions_of(&r, &d, DAY + 60, v, N(v), buf, sizeof(buf));
        if (n != (size_t)c->session)
            fail_msg("%s: %zu sessions", c->about, n);
        if (!n)
            continue;
        assert_int_equal(v[0].at, DAY + 60);
        assert_string_equal(v[0].policy_domain, "example.test");
        if (v[0].policy_type != c->want_type || v[0].result_type != c->want)
            fail_msg("%s: %s %s", c->about, sts_policy_type_name(v[0].policy_type),
                     sts_result_type_name(v[0].result_type));
        if (c->have_policy) {
            assert_string_equal(v[0].policy_string, "version: STSv1\nmode: enforce\n"
                                                    "mx: mail.example.test\nmx: *.example.test\n"
                                                    "max_age: 86400");
            assert_string_equal(v[0].mx_host, "mail.example.test\n*.example.test");
        } else {
            assert_string_equal(v[0].policy_string, "");
            assert_string_equal(v[0].mx_host, "");
        }
        if (c->want) {
            assert_string_equal(v[0].receiving_mx_hostname, "mail.example.test");
            assert_string_equal(v[0].receiving_ip, "127.0.0.1");
            /* Our end of the session's own connection. */
            if (c->connected) {
                assert_non_null(v[0].sending_mta_ip);
                assert_string_equal(v[0].sending_mta_ip, "127.0.0.9");
            } else {
                assert_null(v[0].sending_mta_ip);
            }
        } else {
            assert_null(v[0].receiving_mx_hostname);
        }
    }
}

static void test_add_and_read(void **state)
{
    (void)state;
    char dir[128], path[256];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "rptstore"), 0);
    snprintf(path, sizeof(path), "%s/store.sqlite", dir);
    char err[1024];
    sts_rptstore *s;
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), 0);
    const char *pol = "version: STSv1\nmode: testing\nmx: mail.example.test\nmax_age: 86400";
    sts_rptstore_session v[] = {
        OK(DAY + 10, "example.test", STS_POLICY_TYPE_STS, pol, "mail.example.test"),
        OK(DAY + 20, "example.test", STS_POLICY_TYPE_STS, pol, "mail.example.test"),
        FAIL(DAY + 30, "example.test", pol, "mail.example.test",
             STS_RESULT_CERTIFICATE_HOST_MISMATCH, "mail.example.test", "127.1.2.10"),
        FAIL(DAY + 40, "example.test", pol, "mail.example.test",
             STS_RESULT_CERTIFICATE_HOST_MISMATCH, "mail.example.test", "127.1.2.10"),
        FAIL(DAY + 50, "example.test", pol, "mail.example.test", STS_RESULT_STARTTLS_NOT_SUPPORTED,
             "mx2.example.test", "127.1.2.11"),
        OK(DAY + 86399, "other.test", STS_POLICY_TYPE_NO_POLICY_FOUND, "", ""),
        /* the day before and the day after */
        OK(DAY - 1, "example.test", STS_POLICY_TYPE_STS, pol, "mail.example.test"),
        FAIL(DAY + 86400, "example.test", pol, "mail.example.test", STS_RESULT_CERTIFICATE_EXPIRED,
             "mail.example.test", "127.1.2.10"),
    };
    assert_int_equal(sts_rptstore_add(s, v, N(v)), 0);
    sts_rptstore_session bad = OK(DAY, "", STS_POLICY_TYPE_STS, "", "");
    assert_int_equal(sts_rptstore_add(s, &bad, 1), STS_EINVAL);
    assert_non_null(strstr(sts_rptstore_last_error(s), "without a policy domain"));

    sts_rptstore_policy *p;
    size_t n;
    assert_int_equal(sts_rptstore_read(s, DAY, DAY + 86400, &p, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(p[0].policy_domain, "example.test");
    assert_int_equal(p[0].policy_type, STS_POLICY_TYPE_STS);
    assert_int_equal(p[0].npolicy_string, 4);
    assert_string_equal(p[0].policy_string[1], "mode: testing");
    assert_int_equal(p[0].nmx_host, 1);
    assert_string_equal(p[0].mx_host[0], "mail.example.test");
    assert_int_equal(p[0].successful, 2);
    assert_int_equal(p[0].failed, 3);
    assert_int_equal(p[0].first, DAY + 10);
    assert_int_equal(p[0].last, DAY + 50);
    assert_int_equal(p[0].nfailures, 2);
    assert_int_equal(p[0].failures[0].result_type, STS_RESULT_CERTIFICATE_HOST_MISMATCH);
    assert_int_equal(p[0].failures[0].failed_session_count, 2);
    assert_string_equal(p[0].failures[0].receiving_ip, "127.1.2.10");
    assert_null(p[0].failures[0].receiving_mx_helo);
    assert_int_equal(p[0].failures[1].result_type, STS_RESULT_STARTTLS_NOT_SUPPORTED);
    assert_string_equal(p[0].failures[1].receiving_mx_hostname, "mx2.example.test");
    assert_int_equal(p[0].failures[1].failed_session_count, 1);
    assert_string_equal(p[1].policy_domain, "other.test");
    assert_int_equal(p[1].policy_type, STS_POLICY_TYPE_NO_POLICY_FOUND);
    assert_int_equal(p[1].npolicy_string, 0);
    assert_int_equal(p[1].successful, 1);
    assert_int_equal(p[1].nfailures, 0);
    sts_rptstore_policies_free(p, n);

    /* A day with nothing. */
    assert_int_equal(sts_rptstore_read(s, DAY + 2 * 86400, DAY + 3 * 86400, &p, &n), 0);
    assert_int_equal(n, 0);
    sts_rptstore_policies_free(p, n);
    sts_rptstore_close(s);

    /* Reopened, the rows are there. */
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), 0);
    assert_int_equal(sts_rptstore_read(s, DAY - 86400, DAY, &p, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].successful, 1);
    sts_rptstore_policies_free(p, n);
    sts_rptstore_close(s);
    assert_int_equal(fixture_dir_remove(dir), 0);
}

static void test_refused(void **state)
{
    (void)state;
    char dir[128], path[256], target[256], cmd[600];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "rptstore"), 0);
    char err[1024];
    sts_rptstore *s = NULL;
    /* A symbolic link, as the store and as its -wal. */
    snprintf(target, sizeof(target), "%s/target", dir);
    snprintf(path, sizeof(path), "%s/link.sqlite", dir);
    assert_int_equal(symlink(target, path), 0);
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), STS_EIO);
    assert_non_null(strstr(err, "is a symbolic link"));
    assert_null(s);
    assert_int_equal(access(target, F_OK), -1); /* nothing created through it */
    snprintf(path, sizeof(path), "%s/store.sqlite", dir);
    char wal[300];
    snprintf(wal, sizeof(wal), "%s-wal", path);
    assert_int_equal(symlink(target, wal), 0);
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), STS_EIO);
    assert_non_null(strstr(err, "-wal is a symbolic link"));
    unlink(wal);
    /* Not a database; a database of someone else's; no directory; empty name. */
    snprintf(path, sizeof(path), "%s/text", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs("this is not a database, but it is longer than a header would be........"
          "...........................................................................",
          fp);
    fclose(fp);
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), STS_EIO);
    assert_non_null(strstr(err, "not an SQLite database"));
    snprintf(path, sizeof(path), "%s/foreign.sqlite", dir);
    snprintf(cmd, sizeof(cmd), "%s/policy-cache.sqlite", dir);
    sts_cache *c;
    assert_int_equal(sts_cache_open(cmd, &c, err, sizeof(err)), 0);
    sts_cache_close(c);
    assert_int_equal(sts_rptstore_open(cmd, &s, err, sizeof(err)), STS_EIO);
    assert_non_null(strstr(err, "not a ststest report store"));
    /* ... and left untouched: still version 1, no delivery ledger added to it */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(cmd, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT user_version FROM pragma_user_version), "
                                        "(SELECT count(*) FROM sqlite_master WHERE name = "
                                        "'delivery')",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    assert_int_equal(sqlite3_column_int(st, 1), 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    snprintf(path, sizeof(path), "%s/no/such/dir/store.sqlite", dir);
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), STS_EIO);
    assert_non_null(strstr(err, "its directory does not exist"));
    assert_int_equal(sts_rptstore_open("", &s, err, sizeof(err)), STS_EINVAL);
    assert_int_equal(fixture_dir_remove(dir), 0);
}

/* Four processes record at once (and create the file together): nothing is lost. */
static void test_processes(void **state)
{
    (void)state;
    char dir[128], path[256];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "rptstore"), 0);
    snprintf(path, sizeof(path), "%s/store.sqlite", dir);
    enum { NPROC = 4, NADD = 50 };
    pid_t pids[NPROC];
    for (int i = 0; i < NPROC; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            char err[1024];
            sts_rptstore *s;
            if (sts_rptstore_open(path, &s, err, sizeof(err))) {
                fprintf(stderr, "child: %s\n", err);
                _exit(1);
            }
            sts_rptstore_session x = OK(DAY + i, "example.test", STS_POLICY_TYPE_STS, "", "");
            for (int k = 0; k < NADD; k++)
                if (sts_rptstore_add(s, &x, 1)) {
                    fprintf(stderr, "child: %s\n", sts_rptstore_last_error(s));
                    _exit(1);
                }
            sts_rptstore_close(s);
            _exit(0);
        }
    }
    for (int i = 0; i < NPROC; i++) {
        int st;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    char err[1024];
    sts_rptstore *s;
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), 0);
    sts_rptstore_policy *p;
    size_t n;
    assert_int_equal(sts_rptstore_read(s, DAY, DAY + 86400, &p, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].successful, NPROC * NADD);
    sts_rptstore_policies_free(p, n);
    sts_rptstore_close(s);
    assert_int_equal(fixture_dir_remove(dir), 0);
}

/* A policy of 200 long mx patterns (about 13 KB) is recorded whole. */
static void test_large_policy(void **state)
{
    (void)state;
    char dir[128], path[256], err[1024];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "rptstore"), 0);
    snprintf(path, sizeof(path), "%s/store.sqlite", dir);
    sts_rptstore *s;
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), 0);
    enum { NMX = 200 };
    static char names[NMX][64];
    static char *mx[NMX];
    for (int i = 0; i < NMX; i++) {
        snprintf(names[i], sizeof(names[i]),
                 "mx%03d.a-rather-long-name-of-a-mail-host.example.test", i);
        mx[i] = names[i];
    }
    sts_rcpt_result r;
    sts_mx_result m;
    sts_discovery d;
    fill(&mx_cases[0], &r, &m, &d);
    d.policy.mx = mx;
    d.policy.nmx = NMX;
    assert_int_equal(sts_rptstore_record(s, &r, &d, DAY + 5), 0);
    sts_rptstore_policy *p;
    size_t n;
    assert_int_equal(sts_rptstore_read(s, DAY, DAY + 86400, &p, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(p[0].successful, 1);
    assert_int_equal(p[0].npolicy_string, NMX + 3);
    assert_int_equal(p[0].nmx_host, NMX);
    assert_string_equal(p[0].mx_host[NMX - 1], names[NMX - 1]);
    assert_string_equal(p[0].policy_string[NMX + 2], "max_age: 86400");
    sts_rptstore_policies_free(p, n);
    sts_rptstore_close(s);
    assert_int_equal(fixture_dir_remove(dir), 0);
}

/* The delivery ledger: a (report-id, rua) is remembered once; pruning deletes old
 * sessions and old ledger rows; a version 1 store (sessions only) is migrated. */
static void test_ledger_prune_migrate(void **state)
{
    (void)state;
    char dir[128], path[256], err[1024];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "rptstore"), 0);
    snprintf(path, sizeof(path), "%s/v1.sqlite", dir);
    /* A version 1 store as ststest 1 made it, with a session in it. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "CREATE TABLE session (id INTEGER PRIMARY KEY, at INTEGER NOT NULL,"
                     " policy_domain TEXT NOT NULL, policy_type TEXT NOT NULL,"
                     " policy_string TEXT NOT NULL, mx_host TEXT NOT NULL, result_type TEXT,"
                     " sending_mta_ip TEXT, receiving_mx_hostname TEXT, receiving_mx_helo TEXT,"
                     " receiving_ip TEXT, additional_information TEXT, failure_reason_code TEXT);"
                     "CREATE INDEX session_at ON session(at);"
                     "INSERT INTO session (at, policy_domain, policy_type, policy_string, mx_host)"
                     " VALUES (1893456100, 'old.test', 'no-policy-found', '', '');"
                     "PRAGMA user_version = 1;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    sts_rptstore *s;
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), 0);
    sts_rptstore_policy *p;
    size_t n;
    assert_int_equal(sts_rptstore_read(s, DAY, DAY + 86400, &p, &n), 0);
    assert_int_equal(n, 1); /* the version 1 session is still there */
    assert_string_equal(p[0].policy_domain, "old.test");
    sts_rptstore_policies_free(p, n);

    /* The ledger. */
    assert_int_equal(sts_rptstore_delivered(s, "id1", "mailto:a@example.test"), 0);
    assert_int_equal(
        sts_rptstore_mark_delivered(s, "id1", "mailto:a@example.test", DAY, DAY + 90000), 0);
    assert_int_equal(
        sts_rptstore_mark_delivered(s, "id1", "mailto:a@example.test", DAY, DAY + 90001),
        0); /* twice is once */
    assert_int_equal(sts_rptstore_delivered(s, "id1", "mailto:a@example.test"), 1);
    assert_int_equal(sts_rptstore_delivered(s, "id1", "https://r.example.test/"), 0);
    assert_int_equal(sts_rptstore_delivered(s, "id2", "mailto:a@example.test"), 0);
    assert_int_equal(sts_rptstore_mark_delivered(s, "id2", "https://r.example.test/", DAY + 86400,
                                                 DAY + 2 * 86400),
                     0);
    assert_int_equal(sts_rptstore_mark_delivered(s, "", "x", DAY, DAY), STS_EINVAL);
    sts_rptstore_close(s);

    /* Reopened: version 2, the ledger kept. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), STS_RPTSTORE_SCHEMA_VERSION);
    assert_int_equal(STS_RPTSTORE_SCHEMA_VERSION, 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), 0);
    assert_int_equal(sts_rptstore_delivered(s, "id1", "mailto:a@example.test"), 1);

    /* Pruning before the next day: the old session and id1's row go, id2's stays. */
    sts_rptstore_session v[] = {
        OK(DAY + 86400 + 5, "new.test", STS_POLICY_TYPE_NO_POLICY_FOUND, "", "")};
    assert_int_equal(sts_rptstore_add(s, v, N(v)), 0);
    long long gone = -1, gone_ledger = -1;
    assert_int_equal(sts_rptstore_prune(s, DAY + 86400, &gone, &gone_ledger), 0);
    assert_int_equal(gone, 1);
    assert_int_equal(gone_ledger, 1);
    assert_int_equal(sts_rptstore_delivered(s, "id1", "mailto:a@example.test"), 0);
    assert_int_equal(sts_rptstore_delivered(s, "id2", "https://r.example.test/"), 1);
    assert_int_equal(sts_rptstore_read(s, DAY, DAY + 2 * 86400, &p, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(p[0].policy_domain, "new.test");
    sts_rptstore_policies_free(p, n);
    assert_int_equal(sts_rptstore_prune(s, DAY + 86400, &gone, NULL), 0);
    assert_int_equal(gone, 0);
    sts_rptstore_close(s);

    /* A newer schema is refused, named. */
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 3", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(sts_rptstore_open(path, &s, err, sizeof(err)), STS_EUNSUPPORTED);
    assert_non_null(strstr(err, "schema version 3 is newer"));
    assert_int_equal(fixture_dir_remove(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sessions_of),  cmocka_unit_test(test_add_and_read),
        cmocka_unit_test(test_refused),      cmocka_unit_test(test_processes),
        cmocka_unit_test(test_large_policy), cmocka_unit_test(test_ledger_prune_migrate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
