/*
 * sqlfile.c - an SQLite database file opened safely and shared across processes
 * (sqlfile.h). Functions return 0 or a negative code from common/err.h.
 *
 * Why these choices (the policy cache and the report store share them):
 *  - journal_mode=WAL: readers never block the writer nor the writer the readers, so
 *    many processes sharing one file do not serialise on reads; a crash mid-write
 *    leaves the last committed state.
 *  - busy_timeout: a writer waits for another process's write lock instead of failing
 *    at once with SQLITE_BUSY; BEGIN IMMEDIATE takes that lock where the wait can
 *    happen (a deferred transaction that reads first can get SQLITE_BUSY at once in WAL
 *    mode, with no retry possible).
 *  - synchronous=NORMAL: in WAL mode this never corrupts the database, and a crash of
 *    the process loses nothing committed; only an OS crash or power cut may roll back
 *    the last transactions before a checkpoint.
 *  - The file is created by us with mode 0600 before SQLite opens it.
 */
#include "sender/sqlfile.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/err.h"

struct sts_sqlfile {
    sqlite3 *db;
    char *path;
    const sts_sqlfile_names *names;
    char err[1024]; /* room for two paths: a link and its target */
    /* What the open found and made, so that a failed open removes what it created
     * (remove_created) and nothing else. */
    int created;          /* precheck() created the database file */
    int had_wal, had_shm; /* the -wal / -shm files were there before SQLite opened it */
};

void sts_sqlfile_seterr(sts_sqlfile *f, const char *fmt, ...)
{
    int n = snprintf(f->err, sizeof(f->err), "%s %s: ", f->names->label, f->path);
    if (n < 0 || (size_t)n >= sizeof(f->err))
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->err + n, sizeof(f->err) - (size_t)n, fmt, ap);
    va_end(ap);
}

/* ---- SQLite codes and messages ---------------------------------------------------- */

static int map_sqlite(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_DONE:
    case SQLITE_ROW:
        return 0;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return STS_ETIMEDOUT;
    case SQLITE_NOMEM:
        return STS_ENOMEM;
    default:
        return STS_EIO;
    }
}

/* The hint after the SQLite code, e.g. " (check the permissions ...)", into buf. */
static const char *sqlite_hint(const sts_sqlfile *f, int rc, char *buf, size_t len)
{
    switch (rc & 0xff) {
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
        snprintf(buf, len,
                 " (not an SQLite database or damaged; it is left untouched: move it aside "
                 "or give another %s file)",
                 f->names->option);
        return buf;
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        snprintf(buf, len, " (another process held %s locked for longer than the busy timeout)",
                 f->names->noun);
        return buf;
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
        return " (check the permissions of the file and its directory)";
    default:
        return "";
    }
}

/* A full file system (SQLITE_FULL, or an I/O error whose errno is ENOSPC or EDQUOT:
 * SQLite reports a failed write to its -shm file as SQLITE_IOERR_SHMSIZE, "disk I/O
 * error"). */
static int disk_full(const sts_sqlfile *f, int rc)
{
    if ((rc & 0xff) == SQLITE_FULL)
        return 1;
    int e = f->db && (rc & 0xff) == SQLITE_IOERR ? sqlite3_system_errno(f->db) : 0;
    return e == ENOSPC || e == EDQUOT;
}

int sts_sqlfile_fail(sts_sqlfile *f, int rc, const char *what)
{
    int ext = f->db ? sqlite3_extended_errcode(f->db) : rc;
    const char *msg = f->db ? sqlite3_errmsg(f->db) : sqlite3_errstr(rc);
    char hint[256];
    if (disk_full(f, rc))
        sts_sqlfile_seterr(f,
                           "%s: disk full (%s) [SQLite %d] (free some space, or give another "
                           "%s file)",
                           what, msg, ext, f->names->option);
    else
        sts_sqlfile_seterr(f, "%s: %s [SQLite %d]%s", what, msg, ext,
                           sqlite_hint(f, rc, hint, sizeof(hint)));
    return map_sqlite(rc);
}

int sts_sqlfile_exec(sts_sqlfile *f, const char *sql, const char *what)
{
    int rc = sqlite3_exec(f->db, sql, NULL, NULL, NULL);
    return rc == SQLITE_OK ? 0 : sts_sqlfile_fail(f, rc, what);
}

int sts_sqlfile_begin(sts_sqlfile *f, const char *what)
{
    return sts_sqlfile_exec(f, "BEGIN IMMEDIATE", what);
}

int sts_sqlfile_commit(sts_sqlfile *f, const char *what)
{
    int rc = sqlite3_exec(f->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        int ret = sts_sqlfile_fail(f, rc, what);
        sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
        return ret;
    }
    return 0;
}

void sts_sqlfile_rollback(sts_sqlfile *f)
{
    if (!sqlite3_get_autocommit(f->db))
        sqlite3_exec(f->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- directories --------------------------------------------------------------------- */

int sts_sqlfile_make_parents(const char *path, const char *label, char *err, size_t errlen)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf)) {
        sts_errf(err, errlen, "%s path too long: %s", label, path);
        return STS_ETOOBIG;
    }
    char *slash = strrchr(buf, '/');
    if (!slash || slash == buf)
        return 0;
    *slash = '\0';
    for (char *p = buf + 1;; p++) {
        int last = *p == '\0';
        if (*p == '/' || last) {
            char saved = *p;
            *p = '\0';
            if (mkdir(buf, 0700) != 0 && errno != EEXIST) {
                sts_errf(err, errlen, "%s directory %s: cannot create: %s", label, buf,
                         strerror(errno));
                return STS_EIO;
            }
            struct stat st;
            if (stat(buf, &st) != 0) {
                sts_errf(err, errlen, "%s directory %s: %s", label, buf, strerror(errno));
                return STS_EIO;
            }
            if (!S_ISDIR(st.st_mode)) {
                sts_errf(err, errlen, "%s directory %s: exists and is not a directory", label, buf);
                return STS_EIO;
            }
            *p = saved;
            if (last)
                break;
        }
    }
    return 0;
}

/* ---- opening -------------------------------------------------------------------------- */

/* A symbolic link as the file (or as its -wal or -shm file) is refused: whoever placed
 * it could point the database at any file this user may write, and SQLite would turn
 * that file into a database. what: "the policy cache", ... */
static int refuse_symlink(sts_sqlfile *f, const char *file, const char *what)
{
    char target[PATH_MAX];
    ssize_t n = readlink(file, target, sizeof(target) - 1);
    target[n > 0 ? n : 0] = '\0';
    snprintf(f->err, sizeof(f->err),
             "%s is a symbolic link; refusing it as %s: a link could point %s at any "
             "file this user may write (it points to %s)",
             file, what, f->names->noun, n > 0 ? target : "?");
    return STS_EIO;
}

/* 1 when file exists (as anything, a link too), 0 when not; *is_link says a link. */
static int file_there(const char *file, int *is_link)
{
    struct stat stb;
    *is_link = 0;
    if (lstat(file, &stb) != 0)
        return 0;
    *is_link = S_ISLNK(stb.st_mode);
    return 1;
}

/* Check the file before SQLite opens it, so that errors name the real cause (errno).
 * POSIX record locks (SQLite's) belong to the process and are all dropped when ANY
 * descriptor of the file is closed: opening and closing an existing database file here
 * would silently release the locks of another connection of this process to it. So an
 * existing file is only looked at with stat() and access(); only a missing one is
 * created here, with mode 0600 (no connection of ours can have it open). What is inside
 * (an SQLite database or not) is left to SQLite, which reports SQLITE_NOTADB. */
static int precheck(sts_sqlfile *f)
{
    struct stat stb;
    int link, wal_link, shm_link;
    char wal[PATH_MAX], shm[PATH_MAX], what[128];
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    snprintf(shm, sizeof(shm), "%s-shm", f->path);
    f->had_wal = file_there(wal, &wal_link);
    f->had_shm = file_there(shm, &shm_link);
    if (file_there(f->path, &link) && link) {
        snprintf(what, sizeof(what), "the %s", f->names->label);
        return refuse_symlink(f, f->path, what);
    }
    if (wal_link || shm_link) {
        snprintf(what, sizeof(what), "the %s's %s", f->names->label,
                 wal_link ? "write-ahead log" : "shared-memory index");
        return refuse_symlink(f, wal_link ? wal : shm, what);
    }
    if (stat(f->path, &stb) == 0) {
        if (!S_ISREG(stb.st_mode)) {
            sts_sqlfile_seterr(f, "cannot open or create it: not a regular file");
            return STS_EIO;
        }
        if (access(f->path, R_OK | W_OK) != 0) {
            sts_sqlfile_seterr(f,
                               "cannot open it for reading and writing: %s (check its "
                               "permissions)",
                               strerror(errno));
            return STS_EIO;
        }
    } else {
        int fd = open(f->path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0 && errno != EEXIST) {
            int e = errno;
            sts_sqlfile_seterr(f, "cannot open or create it: %s%s", strerror(e),
                               e == ENOENT ? " (its directory does not exist)"
                               : e == EACCES || e == EROFS
                                   ? " (check the permissions of its directory)"
                                   : "");
            return STS_EIO;
        }
        if (fd >= 0) {
            f->created = 1;
            close(fd);
        }
    }
    /* WAL mode needs the -wal and -shm files next to the database. */
    char dir[PATH_MAX];
    snprintf(dir, sizeof(dir), "%s", f->path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    if (access(dir, W_OK | X_OK) != 0) {
        sts_sqlfile_seterr(f,
                           "its directory %s is not writable (%s); %s needs to create "
                           "its -wal and -shm files there",
                           dir, strerror(errno), f->names->noun);
        return STS_EIO;
    }
    return 0;
}

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Journal mode, synchronous, the caller's schema. WAL is a property of the file: set it
 * only when the file is not in WAL mode yet. */
static int setup_connection(sts_sqlfile *f, sts_sqlfile_setup_fn setup, void *arg)
{
    int rc;
    for (int pass = 0; pass < 2; pass++) {
        sqlite3_stmt *st = NULL;
        const char *sql = pass ? "PRAGMA journal_mode=WAL" : "PRAGMA journal_mode";
        int src = sqlite3_prepare_v2(f->db, sql, -1, &st, NULL);
        if (src == SQLITE_OK)
            src = sqlite3_step(st);
        if (src != SQLITE_ROW) {
            rc = sts_sqlfile_fail(f, src,
                                  pass ? "setting WAL journal mode" : "reading the journal mode");
            sqlite3_finalize(st);
            return rc;
        }
        const char *mode = (const char *)sqlite3_column_text(st, 0);
        int wal = mode && !strcmp(mode, "wal");
        if (pass && !wal) {
            /* journal_mode answers with the mode in force: anything but "wal" means WAL
             * could not be set (e.g. no shared memory on this file system), which we
             * refuse rather than run with weaker concurrency than documented. */
            sts_sqlfile_seterr(f, "cannot use WAL journal mode (got %s)", mode ? mode : "nothing");
            sqlite3_finalize(st);
            return STS_EIO;
        }
        sqlite3_finalize(st);
        if (wal)
            break;
    }
    if ((rc = sts_sqlfile_exec(f, "PRAGMA synchronous=NORMAL", "setting synchronous=NORMAL")))
        return rc;
    return setup ? setup(f, arg) : 0;
}

/* Is some connection (of another process) using the database whose -shm file is
 * shm? SQLite holds a read lock on the "DMS" byte of the -shm file (offset 128) for as
 * long as a connection has it mapped. Only called when no connection of ours is open:
 * closing the probe's descriptor drops this process's locks on the file. */
static int shm_in_use(const char *shm)
{
    int fd = open(shm, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
    if (fd < 0)
        return 0;
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 128, .l_len = 1};
    int busy = fcntl(fd, F_GETLK, &fl) != 0 || fl.l_type != F_UNLCK;
    close(fd);
    return busy;
}

/* After a failed open, with our connection closed: remove the files this open created
 * (a disk that is full must not be left fuller, nor a directory littered with a
 * 3-byte -shm file), unless another process has begun to use them meanwhile. */
static void remove_created(sts_sqlfile *f)
{
    char wal[PATH_MAX], shm[PATH_MAX];
    struct stat stb;
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    snprintf(shm, sizeof(shm), "%s-shm", f->path);
    int shm_mine = !f->had_shm && !shm_in_use(shm);
    if (!f->had_wal && shm_mine && lstat(wal, &stb) == 0 && S_ISREG(stb.st_mode) &&
        stb.st_size == 0)
        unlink(wal);
    if (shm_mine && lstat(shm, &stb) == 0 && S_ISREG(stb.st_mode))
        unlink(shm);
    if (f->created && shm_mine && lstat(f->path, &stb) == 0 && S_ISREG(stb.st_mode) &&
        stb.st_size == 0)
        unlink(f->path);
}

/* SQLite's open and the settings of the connection; 0 or a code (message in f). */
static int open_db(sts_sqlfile *f, int busy_ms, sts_sqlfile_setup_fn setup, void *arg)
{
    int rc = precheck(f);
    if (rc)
        return rc;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX;
#ifdef SQLITE_OPEN_NOFOLLOW
    /* SQLite 3.31+: refuse a link put in place after precheck() looked. */
    flags |= SQLITE_OPEN_NOFOLLOW;
#endif
    int src = sqlite3_open_v2(f->path, &f->db, flags, NULL);
    if (src != SQLITE_OK) {
        int link;
        if (file_there(f->path, &link) && link) {
            char what[128];
            snprintf(what, sizeof(what), "the %s", f->names->label);
            return refuse_symlink(f, f->path, what);
        }
        return sts_sqlfile_fail(f, src, "cannot open");
    }
    sqlite3_extended_result_codes(f->db, 1);
    if (sqlite3_db_readonly(f->db, "main") == 1) {
        sts_sqlfile_seterr(f, "opened read-only: check the "
                              "permissions of the file and its directory");
        return STS_EIO;
    }
    sqlite3_busy_timeout(f->db, busy_ms);
    /* Switching a file to WAL and creating the schema can meet SQLITE_BUSY without the
     * busy handler being called (SQLite returns at once where waiting could deadlock,
     * e.g. when several processes open a new file together): retry the whole setup,
     * with a little jitter, until the busy timeout has passed. */
    double deadline = mono_now() + busy_ms / 1000.0;
    unsigned jitter = (unsigned)getpid();
    while ((rc = setup_connection(f, setup, arg)) == STS_ETIMEDOUT && mono_now() < deadline) {
        jitter = jitter * 1103515245u + 12345u;
        usleep(2000 + (jitter >> 8) % 20000);
    }
    return rc;
}

int sts_sqlfile_open(const char *path, const sts_sqlfile_names *names, int busy_ms,
                     sts_sqlfile_setup_fn setup, void *arg, sts_sqlfile **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (!path || !path[0]) {
        sts_errf(err, errlen, "%s: empty file name", names->label);
        return STS_EINVAL;
    }
    sts_sqlfile *f = calloc(1, sizeof(*f));
    if (!f || !(f->path = strdup(path))) {
        free(f);
        sts_errf(err, errlen, "%s %s: out of memory", names->label, path);
        return STS_ENOMEM;
    }
    f->names = names;
    int rc = open_db(f, busy_ms, setup, arg);
    if (rc) {
        sts_errf(err, errlen, "%s", f->err);
        if (f->db)
            sqlite3_close(f->db);
        f->db = NULL;
        remove_created(f);
        sts_sqlfile_close(f);
        return rc;
    }
    f->err[0] = '\0';
    *out = f;
    return 0;
}

void sts_sqlfile_close(sts_sqlfile *f)
{
    if (!f)
        return;
    if (f->db)
        sqlite3_close(f->db); /* all statements are finalized where they are used */
    free(f->path);
    free(f);
}

sqlite3 *sts_sqlfile_db(const sts_sqlfile *f)
{
    return f->db;
}

const char *sts_sqlfile_path(const sts_sqlfile *f)
{
    return f ? f->path : "";
}

const char *sts_sqlfile_last_error(const sts_sqlfile *f)
{
    return f ? f->err : "";
}
