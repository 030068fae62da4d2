/*
 * sqlfile.h - an SQLite database file opened safely and shared across processes: the
 * storage under the policy cache (cache.h) and the TLS report store (rptstore.h).
 *
 * What opening does, in order (sts_sqlfile_open):
 *  - a symbolic link as the file, its -wal or its -shm file is refused: it could point
 *    the database at any file this user may write, and SQLite would make a database of
 *    it; SQLite opens with SQLITE_OPEN_NOFOLLOW (3.31+) for a link put in place later;
 *  - a missing file is created here with mode 0600 (O_EXCL, O_NOFOLLOW); an existing
 *    one must be a regular file, readable and writable; its directory must be writable
 *    (WAL mode creates the -wal and -shm files there); a read-only open is refused;
 *  - busy timeout, then journal_mode=WAL (set only when the file is not in WAL mode
 *    yet), synchronous=NORMAL and the caller's schema step, retried with jitter while
 *    they meet SQLITE_BUSY, until the busy timeout has passed;
 *  - a failed open removes what it created (an empty database file, an empty -wal, the
 *    -shm) unless another process has begun to use them, so that a full disk is not
 *    left fuller.
 * Failures name the file ("LABEL PATH: ..."), say "disk full" for SQLITE_FULL and for
 * I/O errors whose errno is ENOSPC or EDQUOT, and give a hint for a damaged file, a
 * held lock and permissions.
 *
 * Functions returning int return 0 or a negative code from common/err.h; the message
 * is then in sts_sqlfile_last_error(). One handle must not be used by two threads at
 * once, nor across fork().
 */
#ifndef STS_SQLFILE_H
#define STS_SQLFILE_H

#include <sqlite3.h>
#include <stddef.h>

/* How messages name the database. */
typedef struct sts_sqlfile_names {
    const char *label;  /* "policy cache": messages begin "policy cache PATH: " */
    const char *noun;   /* "the cache": "a link could point the cache at ..." */
    const char *option; /* "--cache": "give another --cache file" */
} sts_sqlfile_names;

typedef struct sts_sqlfile sts_sqlfile;

/* The caller's schema step, run after WAL is set up: 0 or a code (STS_ETIMEDOUT makes
 * the open retry the whole setup). */
typedef int (*sts_sqlfile_setup_fn)(sts_sqlfile *f, void *arg);

/* Open (creating if missing) the database at path, as described above; names must
 * outlive the handle. Returns 0 and *out, or (err naming the file and what is wrong):
 *   STS_EINVAL       empty path
 *   STS_EIO          cannot create/open/write the file or its directory, a symbolic
 *                    link, not a regular file, read-only, not an SQLite database or
 *                    damaged, WAL mode refused, a full disk ("disk full")
 *   STS_ETIMEDOUT    another process held the database locked for busy_ms
 *   STS_ENOMEM
 *   or what setup returned. */
int sts_sqlfile_open(const char *path, const sts_sqlfile_names *names, int busy_ms,
                     sts_sqlfile_setup_fn setup, void *arg, sts_sqlfile **out, char *err,
                     size_t errlen);

/* Close the database. NULL is fine. */
void sts_sqlfile_close(sts_sqlfile *f);

/* The connection, the path it was opened with, and the last message ("" none yet). */
sqlite3 *sts_sqlfile_db(const sts_sqlfile *f);
const char *sts_sqlfile_path(const sts_sqlfile *f);
const char *sts_sqlfile_last_error(const sts_sqlfile *f);

/* Record "LABEL PATH: <message>" as the last error. */
void sts_sqlfile_seterr(sts_sqlfile *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Record "LABEL PATH: <what>: <SQLite's message> [SQLite <code>]<hint>" (or "<what>:
 * disk full (...)") for SQLite code rc; returns 0 for SQLITE_OK/ROW/DONE, STS_ETIMEDOUT
 * for BUSY/LOCKED, STS_ENOMEM, else STS_EIO. */
int sts_sqlfile_fail(sts_sqlfile *f, int rc, const char *what);

/* Run sql (no rows); 0 or sts_sqlfile_fail(f, code, what). */
int sts_sqlfile_exec(sts_sqlfile *f, const char *sql, const char *what);

/* BEGIN IMMEDIATE (the write lock at once, where the busy handler can wait for it);
 * COMMIT, rolled back when it fails; ROLLBACK when a transaction is open. begin and
 * commit return 0 or sts_sqlfile_fail()'s code. */
int sts_sqlfile_begin(sts_sqlfile *f, const char *what);
int sts_sqlfile_commit(sts_sqlfile *f, const char *what);
void sts_sqlfile_rollback(sts_sqlfile *f);

/* mkdir -p of the directory part of path, missing directories with mode 0700; messages
 * "LABEL directory DIR: ...". Returns 0, STS_ETOOBIG (path too long) or STS_EIO. */
int sts_sqlfile_make_parents(const char *path, const char *label, char *err, size_t errlen);

#endif
