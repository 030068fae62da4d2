/* test_sqlfile.c - the SQLite file under the policy cache and the report store
 * (sqlfile.h): a new file made with mode 0600 in WAL mode and the caller's schema step;
 * a symbolic link as the file, its -wal or its -shm refused with nothing created; the
 * files a failed open created removed and an existing file kept; a directory refused;
 * a file or directory without write permission refused naming the cause; the setup
 * retried while busy, within the busy timeout; the messages of SQLite codes ("disk
 * full", a held lock, a damaged file); parent directories made with mode 0700. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"
#include "sender/sqlfile.h"
#include "tests/unit/unit_fixture.h"

static const sts_sqlfile_names names = {"test db", "the db", "--test"};

/* A schema step: creates table t (counting its calls in *arg). */
static int make_table(sts_sqlfile *f, void *arg)
{
    (*(int *)arg)++;
    return sts_sqlfile_exec(f, "CREATE TABLE IF NOT EXISTS t (x INTEGER)", "creating t");
}

/* A schema step that fails, as a foreign file would make it. */
static int refuse(sts_sqlfile *f, void *arg)
{
    (void)arg;
    sts_sqlfile_seterr(f, "not ours");
    return STS_EIO;
}

/* Busy *arg more times, then fine. */
static int busy_then_ok(sts_sqlfile *f, void *arg)
{
    (void)f;
    int *left = arg;
    return (*left)-- > 0 ? STS_ETIMEDOUT : 0;
}

static int exists(const char *dir, const char *name)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, name);
    return lstat(p, &st) == 0;
}

static void test_open_new(void **state)
{
    (void)state;
    char dir[128], path[256], err[1024];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "sqlfile"), 0);
    snprintf(path, sizeof(path), "%s/db.sqlite", dir);
    sts_sqlfile *f = NULL;
    int calls = 0;
    assert_int_equal(sts_sqlfile_open(path, &names, 5000, make_table, &calls, &f, err, sizeof(err)),
                     0);
    assert_non_null(f);
    assert_int_equal(calls, 1);
    assert_string_equal(sts_sqlfile_path(f), path);
    assert_string_equal(sts_sqlfile_last_error(f), "");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* WAL mode, and a transaction that commits. */
    sqlite3_stmt *q = NULL;
    assert_int_equal(sqlite3_prepare_v2(sts_sqlfile_db(f), "PRAGMA journal_mode", -1, &q, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
    sqlite3_finalize(q);
    assert_int_equal(sts_sqlfile_begin(f, "adding"), 0);
    assert_int_equal(sts_sqlfile_exec(f, "INSERT INTO t VALUES (7)", "adding"), 0);
    assert_int_equal(sts_sqlfile_commit(f, "adding"), 0);
    /* A rolled-back transaction leaves nothing. */
    assert_int_equal(sts_sqlfile_begin(f, "adding"), 0);
    assert_int_equal(sts_sqlfile_exec(f, "INSERT INTO t VALUES (8)", "adding"), 0);
    sts_sqlfile_rollback(f);
    /* A failed statement names the file, what was done and SQLite's code. */
    assert_int_equal(sts_sqlfile_exec(f, "INSERT INTO nosuch VALUES (1)", "adding more"), STS_EIO);
    char want[512];
    snprintf(want, sizeof(want), "test db %s: adding more: no such table: nosuch [SQLite 1]", path);
    assert_string_equal(sts_sqlfile_last_error(f), want);
    sts_sqlfile_close(f);

    /* Reopened: the schema step runs again, the row is there, once. */
    assert_int_equal(sts_sqlfile_open(path, &names, 5000, make_table, &calls, &f, err, sizeof(err)),
                     0);
    assert_int_equal(calls, 2);
    assert_int_equal(
        sqlite3_prepare_v2(sts_sqlfile_db(f), "SELECT group_concat(x) FROM t", -1, &q, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(q), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(q, 0), "7");
    sqlite3_finalize(q);
    sts_sqlfile_close(f);
    sts_sqlfile_close(NULL);
    assert_int_equal(sts_sqlfile_open("", &names, 5000, NULL, NULL, &f, err, sizeof(err)),
                     STS_EINVAL);
    assert_string_equal(err, "test db: empty file name");
    assert_null(f);
    assert_int_equal(fixture_dir_remove(dir), 0);
}

/* A symbolic link as the file, its -wal or its -shm: refused, naming the link and its
 * target, and nothing is created, neither through the link nor next to it. */
static void test_symlinks(void **state)
{
    (void)state;
    static const struct {
        const char *link; /* which name is the link */
        const char *as;   /* what the message refuses it as */
    } cases[] = {
        {"db.sqlite", "the test db"},
        {"db.sqlite-wal", "the test db's write-ahead log"},
        {"db.sqlite-shm", "the test db's shared-memory index"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char dir[128], path[256], link[256], target[256], err[1024], want[1024];
        assert_int_equal(fixture_dir_new(dir, sizeof(dir), "sqlfile"), 0);
        snprintf(path, sizeof(path), "%s/db.sqlite", dir);
        snprintf(link, sizeof(link), "%s/%s", dir, cases[i].link);
        snprintf(target, sizeof(target), "%s/target", dir);
        assert_int_equal(symlink(target, link), 0);
        sts_sqlfile *f = NULL;
        int calls = 0;
        assert_int_equal(
            sts_sqlfile_open(path, &names, 5000, make_table, &calls, &f, err, sizeof(err)),
            STS_EIO);
        assert_null(f);
        assert_int_equal(calls, 0);
        snprintf(want, sizeof(want),
                 "%s is a symbolic link; refusing it as %s: a link could point the db at any "
                 "file this user may write (it points to %s)",
                 link, cases[i].as, target);
        assert_string_equal(err, want);
        assert_false(exists(dir, "target"));
        if (i)
            assert_false(exists(dir, "db.sqlite"));
        assert_int_equal(fixture_dir_remove(dir), 0);
    }
}

/* A failed open removes the empty database file, the -wal and the -shm it created (a
 * full disk is not left fuller); a file that holds data, and an existing file, are
 * kept whatever happens. No file may grow here (RLIMIT_FSIZE 0, as on a full disk):
 * SQLite's first write fails after the files were created. */
static void test_failed_open_cleans_up(void **state)
{
    (void)state;
    char dir[128], path[256], err[1024], want[512];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "sqlfile"), 0);
    snprintf(path, sizeof(path), "%s/db.sqlite", dir);
    sts_sqlfile *f = NULL;
    struct rlimit old, none = {0, 0};
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    none.rlim_max = old.rlim_max;
    void (*was)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &none), 0);
    int calls = 0;
    int rc = sts_sqlfile_open(path, &names, 5000, make_table, &calls, &f, err, sizeof(err));
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, was);
    assert_int_equal(rc, STS_EIO);
    assert_null(f);
    snprintf(want, sizeof(want), "test db %s: ", path);
    assert_memory_equal(err, want, strlen(want));
    assert_false(exists(dir, "db.sqlite"));
    assert_false(exists(dir, "db.sqlite-wal"));
    assert_false(exists(dir, "db.sqlite-shm"));

    /* A new file the schema step refuses once SQLite has written to it: the message is
     * the step's; the file holds data and stays, the -shm goes. */
    assert_int_equal(sts_sqlfile_open(path, &names, 5000, refuse, NULL, &f, err, sizeof(err)),
                     STS_EIO);
    snprintf(want, sizeof(want), "test db %s: not ours", path);
    assert_string_equal(err, want);
    assert_false(exists(dir, "db.sqlite-shm"));

    /* An existing database the schema step refuses: kept, with its row. */
    assert_int_equal(sts_sqlfile_open(path, &names, 5000, make_table, &calls, &f, err, sizeof(err)),
                     0);
    assert_int_equal(sts_sqlfile_exec(f, "INSERT INTO t VALUES (1)", "adding"), 0);
    sts_sqlfile_close(f);
    assert_int_equal(sts_sqlfile_open(path, &names, 5000, refuse, NULL, &f, err, sizeof(err)),
                     STS_EIO);
    assert_true(exists(dir, "db.sqlite"));
    assert_int_equal(sts_sqlfile_open(path, &names, 5000, make_table, &calls, &f, err, sizeof(err)),
                     0);
    sts_sqlfile_close(f);

    /* An existing file that is not a database: named, and left untouched. */
    snprintf(path, sizeof(path), "%s/text", dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 20; i++)
        fputs("not a database, and longer than an SQLite header\n", fp);
    fclose(fp);
    struct stat before, after;
    assert_int_equal(stat(path, &before), 0);
    assert_int_equal(sts_sqlfile_open(path, &names, 5000, make_table, &calls, &f, err, sizeof(err)),
                     STS_EIO);
    assert_non_null(strstr(err, "file is not a database [SQLite 26] (not an SQLite database or "
                                "damaged; it is left untouched: move it aside or give another "
                                "--test file)"));
    assert_int_equal(stat(path, &after), 0);
    assert_int_equal(after.st_size, before.st_size);
    assert_false(exists(dir, "text-wal"));
    assert_false(exists(dir, "text-shm"));
    assert_int_equal(fixture_dir_remove(dir), 0);
}

static void test_directory_refused(void **state)
{
    (void)state;
    char dir[128], err[1024], want[512];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "sqlfile"), 0);
    sts_sqlfile *f = NULL;
    assert_int_equal(sts_sqlfile_open(dir, &names, 5000, NULL, NULL, &f, err, sizeof(err)),
                     STS_EIO);
    snprintf(want, sizeof(want), "test db %s: cannot open or create it: not a regular file", dir);
    assert_string_equal(err, want);
    assert_null(f);
    /* No directory at all. */
    char path[256];
    snprintf(path, sizeof(path), "%s/no/db.sqlite", dir);
    assert_int_equal(sts_sqlfile_open(path, &names, 5000, NULL, NULL, &f, err, sizeof(err)),
                     STS_EIO);
    snprintf(want, sizeof(want),
             "test db %s: cannot open or create it: No such file or directory (its directory "
             "does not exist)",
             path);
    assert_string_equal(err, want);
    assert_int_equal(fixture_dir_remove(dir), 0);
}

/* Root reads and writes anything: the permission checks run as "nobody" (real and
 * effective ids, as access() checks the real one), back to root afterwards. */
static int as_nobody(int on)
{
    if (geteuid() != 0 && on)
        return 0;
    if (on)
        return setresgid(65534, 65534, 0) || setresuid(65534, 65534, 0) ? -1 : 1;
    return setresuid(0, 0, 0) || setresgid(0, 0, 0) ? -1 : 0;
}

/* A file, or a directory, this user may not write: refused, saying which. */
static void test_read_only(void **state)
{
    (void)state;
    char dir[128], ro[256], own[256], path[256], err[1024], want[1024];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "sqlfile"), 0);
    assert_int_equal(chmod(dir, 0755), 0);
    /* ro: a database only its owner (root) may write, or read-only for us. */
    snprintf(ro, sizeof(ro), "%s/ro.sqlite", dir);
    sts_sqlfile *f = NULL;
    assert_int_equal(sts_sqlfile_open(ro, &names, 5000, NULL, NULL, &f, err, sizeof(err)), 0);
    sts_sqlfile_close(f);
    assert_int_equal(chmod(ro, 0444), 0);
    /* own/db.sqlite: ours to write, in a directory we may not write. */
    snprintf(own, sizeof(own), "%s/own", dir);
    assert_int_equal(mkdir(own, 0755), 0);
    snprintf(path, sizeof(path), "%s/db.sqlite", own);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    if (geteuid() == 0)
        assert_int_equal(chown(path, 65534, 65534), 0);
    else
        assert_int_equal(chmod(own, 0555), 0);

    int switched = as_nobody(1);
    assert_true(switched >= 0);
    int rc_ro = sts_sqlfile_open(ro, &names, 5000, NULL, NULL, &f, err, sizeof(err));
    char err_ro[1024];
    snprintf(err_ro, sizeof(err_ro), "%s", err);
    int rc_dir = sts_sqlfile_open(path, &names, 5000, NULL, NULL, &f, err, sizeof(err));
    char err_dir[1024];
    snprintf(err_dir, sizeof(err_dir), "%s", err);
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/new.sqlite", own);
    int rc_new = sts_sqlfile_open(missing, &names, 5000, NULL, NULL, &f, err, sizeof(err));
    if (switched)
        assert_int_equal(as_nobody(0), 0);

    assert_int_equal(rc_ro, STS_EIO);
    snprintf(want, sizeof(want),
             "test db %s: cannot open it for reading and writing: Permission denied (check its "
             "permissions)",
             ro);
    assert_string_equal(err_ro, want);
    assert_int_equal(rc_dir, STS_EIO);
    snprintf(want, sizeof(want),
             "test db %s: its directory %s is not writable (Permission denied); the db needs "
             "to create its -wal and -shm files there",
             path, own);
    assert_string_equal(err_dir, want);
    assert_int_equal(rc_new, STS_EIO);
    snprintf(want, sizeof(want),
             "test db %s: cannot open or create it: Permission denied (check the permissions "
             "of its directory)",
             missing);
    assert_string_equal(err, want);
    assert_false(exists(own, "new.sqlite"));
    assert_false(exists(own, "db.sqlite-wal"));
    chmod(own, 0755);
    assert_int_equal(fixture_dir_remove(dir), 0);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A setup that meets SQLITE_BUSY is retried until the busy timeout has passed. */
static void test_busy_retry(void **state)
{
    (void)state;
    char dir[128], path[256], err[1024];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "sqlfile"), 0);
    snprintf(path, sizeof(path), "%s/db.sqlite", dir);
    sts_sqlfile *f = NULL;
    int left = 3;
    assert_int_equal(
        sts_sqlfile_open(path, &names, 5000, busy_then_ok, &left, &f, err, sizeof(err)), 0);
    assert_int_equal(left, -1); /* three busy calls and the good one */
    sts_sqlfile_close(f);
    left = 1000000;
    double t0 = now_s();
    assert_int_equal(sts_sqlfile_open(path, &names, 200, busy_then_ok, &left, &f, err, sizeof(err)),
                     STS_ETIMEDOUT);
    double took = now_s() - t0;
    assert_true(took >= 0.2);
    assert_true(took < 5.0);
    assert_null(f);
    assert_true(exists(dir, "db.sqlite")); /* it was there before this open */
    assert_int_equal(fixture_dir_remove(dir), 0);
}

/* What SQLite's codes become, and their messages. */
static void test_fail_codes(void **state)
{
    (void)state;
    static const struct {
        int rc, want;
        const char *says;
    } cases[] = {
        {SQLITE_FULL, STS_EIO, ": writing: disk full ("},
        {SQLITE_FULL, STS_EIO, "(free some space, or give another --test file)"},
        {SQLITE_BUSY, STS_ETIMEDOUT,
         " (another process held the db locked for longer than the busy timeout)"},
        {SQLITE_LOCKED, STS_ETIMEDOUT, " (another process held the db locked"},
        {SQLITE_NOMEM, STS_ENOMEM, ": writing: "},
        {SQLITE_CORRUPT, STS_EIO, "(not an SQLite database or damaged"},
        {SQLITE_READONLY, STS_EIO, " (check the permissions of the file and its directory)"},
        {SQLITE_ROW, 0, ": writing: "},
    };
    char dir[128], path[256], err[1024], prefix[300];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "sqlfile"), 0);
    snprintf(path, sizeof(path), "%s/db.sqlite", dir);
    snprintf(prefix, sizeof(prefix), "test db %s: writing: ", path);
    sts_sqlfile *f = NULL;
    assert_int_equal(sts_sqlfile_open(path, &names, 5000, NULL, NULL, &f, err, sizeof(err)), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(sts_sqlfile_fail(f, cases[i].rc, "writing"), cases[i].want);
        const char *e = sts_sqlfile_last_error(f);
        assert_memory_equal(e, prefix, strlen(prefix));
        if (!strstr(e, cases[i].says))
            fail_msg("case %zu: '%s' not in '%s'", i, cases[i].says, e);
    }
    sts_sqlfile_close(f);
    assert_int_equal(fixture_dir_remove(dir), 0);
}

static void test_make_parents(void **state)
{
    (void)state;
    char dir[128], path[256], sub[256], err[512], want[512];
    assert_int_equal(fixture_dir_new(dir, sizeof(dir), "sqlfile"), 0);
    snprintf(path, sizeof(path), "%s/a/b/db.sqlite", dir);
    assert_int_equal(sts_sqlfile_make_parents(path, "test db", err, sizeof(err)), 0);
    struct stat st;
    snprintf(sub, sizeof(sub), "%s/a/b", dir);
    assert_int_equal(stat(sub, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_false(exists(sub, "db.sqlite"));
    assert_int_equal(sts_sqlfile_make_parents(path, "test db", err, sizeof(err)), 0); /* again */
    /* A file where a directory should be. */
    snprintf(sub, sizeof(sub), "%s/file", dir);
    FILE *fp = fopen(sub, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(path, sizeof(path), "%s/file/db.sqlite", dir);
    assert_int_equal(sts_sqlfile_make_parents(path, "test db", err, sizeof(err)), STS_EIO);
    snprintf(want, sizeof(want), "test db directory %s: exists and is not a directory", sub);
    assert_string_equal(err, want);
    assert_int_equal(fixture_dir_remove(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_open_new),
        cmocka_unit_test(test_symlinks),
        cmocka_unit_test(test_failed_open_cleans_up),
        cmocka_unit_test(test_directory_refused),
        cmocka_unit_test(test_read_only),
        cmocka_unit_test(test_busy_retry),
        cmocka_unit_test(test_fail_codes),
        cmocka_unit_test(test_make_parents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
