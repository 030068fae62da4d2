/*
 * rptstore.c - the TLS report store (rptstore.h): sessions in SQLite, read back as one
 * aggregate per policy. Functions return 0 or a negative code from common/err.h.
 */
#include "sender/rptstore.h"

#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "sender/cache.h"
#include "sender/sqlfile.h"

struct sts_rptstore {
    sts_sqlfile *f; /* the SQLite file (sqlfile.h) */
};

/* ---- opening ---------------------------------------------------------------------- */

int sts_rptstore_default_path(char *out, size_t outlen, char *err, size_t errlen)
{
    char cache[PATH_MAX];
    int rc = sts_cache_default_path(cache, sizeof(cache), err, errlen);
    if (rc)
        return rc;
    char *slash = strrchr(cache, '/');
    if (!slash)
        return STS_EINVAL;
    *slash = '\0';
    int n = snprintf(out, outlen, "%s/%s", cache, STS_RPTSTORE_DEFAULT_NAME);
    return n < 0 || (size_t)n >= outlen ? STS_ETOOBIG : 0;
}

static const char SCHEMA[] =
    "CREATE TABLE session ("
    " id INTEGER PRIMARY KEY,"
    " at INTEGER NOT NULL,"
    " policy_domain TEXT NOT NULL,"
    " policy_type TEXT NOT NULL,"
    " policy_string TEXT NOT NULL,"
    " mx_host TEXT NOT NULL,"
    " result_type TEXT," /* NULL: a successful session */
    " sending_mta_ip TEXT, receiving_mx_hostname TEXT, receiving_mx_helo TEXT,"
    " receiving_ip TEXT, additional_information TEXT, failure_reason_code TEXT);"
    "CREATE INDEX session_at ON session(at);";

/* Version 2: the delivery ledger of `report --deliver`, one row per (report-id, rua)
 * delivered; day is the reported day's first second (what pruning goes by). */
static const char SCHEMA_DELIVERY[] = "CREATE TABLE delivery ("
                                      " report_id TEXT NOT NULL,"
                                      " rua TEXT NOT NULL,"
                                      " day INTEGER NOT NULL,"
                                      " at INTEGER NOT NULL,"
                                      " PRIMARY KEY (report_id, rua));"
                                      "CREATE INDEX delivery_day ON delivery(day);";

static int query_version(sts_sqlfile *f, long long *out, long long *ntables)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sts_sqlfile_db(f), "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (rc != SQLITE_ROW)
        return sts_sqlfile_fail(f, rc, "reading the schema version");
    rc = sqlite3_prepare_v2(sts_sqlfile_db(f), "SELECT count(*) FROM sqlite_master", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        *ntables = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? 0 : sts_sqlfile_fail(f, rc, "reading the schema");
}

/* The version is ours: are the session table (and with_ledger, the delivery table)
 * really there with all their columns (a policy cache, or another program's database,
 * has a version too)? */
static int check_table(sts_sqlfile *f, int with_ledger)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(sts_sqlfile_db(f),
                                "SELECT at, policy_domain, policy_type, policy_string, mx_host, "
                                "result_type, sending_mta_ip, receiving_mx_hostname, "
                                "receiving_mx_helo, receiving_ip, additional_information, "
                                "failure_reason_code FROM session LIMIT 0",
                                -1, &st, NULL);
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && !with_ledger)
        return 0;
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(sts_sqlfile_db(f),
                                "SELECT report_id, rua, day, at FROM delivery LIMIT 0", -1, &st,
                                NULL);
        sqlite3_finalize(st);
        if (rc == SQLITE_OK)
            return 0;
    }
    if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
        return sts_sqlfile_fail(f, rc, "reading the schema");
    sts_sqlfile_seterr(f,
                       "an SQLite database, but not a ststest report store (no session or "
                       "delivery table: %s); left untouched",
                       sqlite3_errmsg(sts_sqlfile_db(f)));
    return STS_EIO;
}

/* The schema step of the open (sqlfile.h), run after WAL is set up. */
static int setup(sts_sqlfile *f, void *arg)
{
    (void)arg;
    int rc;
    long long version = 0, ntables = 0;
    if ((rc = query_version(f, &version, &ntables)))
        return rc;
    if (version == STS_RPTSTORE_SCHEMA_VERSION)
        return check_table(f, 1);
    if (version > STS_RPTSTORE_SCHEMA_VERSION) {
        sts_sqlfile_seterr(f, "schema version %lld is newer than this ststest understands (%d)",
                           version, STS_RPTSTORE_SCHEMA_VERSION);
        return STS_EUNSUPPORTED;
    }
    if ((rc = sts_sqlfile_begin(f, "starting the schema setup")))
        return rc;
    /* Again under the write lock: another process may have done it first. */
    if ((rc = query_version(f, &version, &ntables)))
        goto fail;
    if (version == 0 && ntables) {
        sts_sqlfile_seterr(
            f,
            "an SQLite database, but not a ststest report store (%lld schema objects "
            "and no schema version); left untouched",
            ntables);
        rc = STS_EIO;
        goto fail;
    }
    /* A version 1 store is migrated only when it is one: never add a table to a
     * policy cache or another program's database of version 1. */
    if (version == 1 && (rc = check_table(f, 0)))
        goto fail;
    if (version < STS_RPTSTORE_SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", STS_RPTSTORE_SCHEMA_VERSION);
        /* Version 1 (sessions only) gains the delivery ledger; its sessions stay. */
        if ((version == 0 && (rc = sts_sqlfile_exec(f, SCHEMA, "creating the schema"))) ||
            (version <= 1 &&
             (rc = sts_sqlfile_exec(f, SCHEMA_DELIVERY, "creating the delivery ledger"))) ||
            (rc = sts_sqlfile_exec(f, sql, "setting the schema version")))
            goto fail;
    }
    if ((rc = sts_sqlfile_commit(f, "committing the schema")))
        return rc;
    return check_table(f, 1);
fail:
    sts_sqlfile_rollback(f);
    return rc;
}

static const sts_sqlfile_names store_names = {"report store", "the store", "--report-store"};

int sts_rptstore_open(const char *path, sts_rptstore **out, char *err, size_t errlen)
{
    *out = NULL;
    sts_rptstore *s = calloc(1, sizeof(*s));
    if (!s) {
        sts_errf(err, errlen, "report store %s: out of memory", path ? path : "");
        return STS_ENOMEM;
    }
    int rc = sts_sqlfile_open(path, &store_names, STS_RPTSTORE_BUSY_TIMEOUT_MS, setup, NULL, &s->f,
                              err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void sts_rptstore_close(sts_rptstore *s)
{
    if (!s)
        return;
    sts_sqlfile_close(s->f);
    free(s);
}

const char *sts_rptstore_path(const sts_rptstore *s)
{
    return sts_sqlfile_path(s->f);
}

const char *sts_rptstore_last_error(const sts_rptstore *s)
{
    return sts_sqlfile_last_error(s->f);
}

/* ---- writing ---------------------------------------------------------------------- */

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

int sts_rptstore_add(sts_rptstore *s, const sts_rptstore_session *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!v[i].policy_domain || !v[i].policy_domain[0] ||
            !sts_policy_type_name(v[i].policy_type)) {
            sts_sqlfile_seterr(s->f, "add: a session without a policy domain or policy type");
            return STS_EINVAL;
        }
    if (!n)
        return 0;
    int rc = sts_sqlfile_begin(s->f, "add: begin");
    if (rc)
        return rc;
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(
        sts_sqlfile_db(s->f),
        "INSERT INTO session (at, policy_domain, policy_type, policy_string, mx_host, "
        "result_type, sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip, "
        "additional_information, failure_reason_code) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
        -1, &st, NULL);
    for (size_t i = 0; src == SQLITE_OK && i < n; i++) {
        const sts_rptstore_session *x = &v[i];
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, (sqlite3_int64)x->at);
        bind_text(st, 2, x->policy_domain);
        bind_text(st, 3, sts_policy_type_name(x->policy_type));
        bind_text(st, 4, x->policy_string ? x->policy_string : "");
        bind_text(st, 5, x->mx_host ? x->mx_host : "");
        bind_text(st, 6, sts_result_type_name(x->result_type)); /* NULL for none */
        bind_text(st, 7, x->sending_mta_ip);
        bind_text(st, 8, x->receiving_mx_hostname);
        bind_text(st, 9, x->receiving_mx_helo);
        bind_text(st, 10, x->receiving_ip);
        bind_text(st, 11, x->additional_information);
        bind_text(st, 12, x->failure_reason_code);
        src = sqlite3_step(st);
        if (src == SQLITE_DONE)
            src = SQLITE_OK;
    }
    if (src != SQLITE_OK) {
        rc = sts_sqlfile_fail(s->f, src, "add");
        sqlite3_finalize(st);
        sts_sqlfile_rollback(s->f);
        return rc;
    }
    sqlite3_finalize(st);
    return sts_sqlfile_commit(s->f, "add: commit");
}

/* Append s to buf at *off (NUL-terminated); the copy, or NULL when it does not fit. */
static char *buf_put(char *buf, size_t buflen, size_t *off, const char *s, size_t n)
{
    if (*off + n + 1 > buflen)
        return NULL;
    char *p = buf + *off;
    memcpy(p, s, n);
    p[n] = '\0';
    *off += n + 1;
    return p;
}

/* The applied policy as the lines of its file (RFC 8461 3.2), joined by LF, written
 * into buf at *off; NULL when it does not fit. */
static char *policy_lines(const sts_policy *p, char *buf, size_t buflen, size_t *off)
{
    size_t start = *off, left = buflen - *off;
    int n =
        snprintf(buf + start, left, "version: %s\nmode: %s", p->version, sts_mode_name(p->mode));
    size_t used = n < 0 ? left : (size_t)n;
    for (size_t i = 0; i < p->nmx && used < left; i++) {
        n = snprintf(buf + start + used, left - used, "\nmx: %s", p->mx[i]);
        used += n < 0 ? left : (size_t)n;
    }
    if (used < left) {
        n = snprintf(buf + start + used, left - used, "\nmax_age: %ld", p->max_age);
        used += n < 0 ? left : (size_t)n;
    }
    if (used >= left)
        return NULL;
    *off += used + 1;
    return buf + start;
}

static char *mx_lines(const sts_policy *p, char *buf, size_t buflen, size_t *off)
{
    size_t start = *off;
    for (size_t i = 0; i < p->nmx; i++) {
        size_t n = strlen(p->mx[i]);
        if (*off + n + 1 > buflen)
            return NULL;
        memcpy(buf + *off, p->mx[i], n);
        *off += n;
        buf[(*off)++] = i + 1 < p->nmx ? '\n' : '\0';
    }
    if (!p->nmx)
        return buf_put(buf, buflen, off, "", 0);
    return buf + start;
}

/* RFC 8461 policy failures found by discovery while no policy applied. */
static sts_result_type discovery_failure(const sts_discovery *d)
{
    if (!d || d->have_policy)
        return STS_RESULT_NONE;
    for (size_t i = 0; i < d->nfailures; i++)
        if (d->failures[i] == STS_RESULT_STS_POLICY_FETCH_ERROR ||
            d->failures[i] == STS_RESULT_STS_POLICY_INVALID ||
            d->failures[i] == STS_RESULT_STS_WEBPKI_INVALID)
            return d->failures[i];
    return STS_RESULT_NONE;
}

size_t sts_rptstore_sessions_of(const sts_rcpt_result *r, const sts_discovery *d, time_t at,
                                sts_rptstore_session *v, size_t max, char *buf, size_t buflen)
{
    size_t off = 0, n = 0;
    sts_result_type disc_fail = discovery_failure(d);
    int have_policy = d && d->have_policy;
    sts_policy_type type =
        have_policy || disc_fail ? STS_POLICY_TYPE_STS : STS_POLICY_TYPE_NO_POLICY_FOUND;
    const char *lines = have_policy ? policy_lines(&d->policy, buf, buflen, &off) : "";
    const char *mx = have_policy ? mx_lines(&d->policy, buf, buflen, &off) : "";
    if (!lines || !mx || !r->domain[0])
        return 0;
    for (size_t i = 0; i < r->nmx && n < max; i++) {
        const sts_mx_result *m = &r->mx[i];
        sts_result_type fail = m->failure;
        if (fail == STS_RESULT_NONE && m->connected) {
            if (m->tls_up && m->tls.verified)
                fail = disc_fail;
            else if (m->tls_attempted && !m->tls.verified)
                fail = m->tls.result_type != STS_RESULT_NONE ? m->tls.result_type
                                                             : STS_RESULT_VALIDATION_FAILURE;
            else if (!m->starttls_offered && m->code > 0)
                fail = STS_RESULT_STARTTLS_NOT_SUPPORTED;
            else
                continue; /* a transient failure: not a session to report */
        } else if (fail == STS_RESULT_NONE) {
            continue;
        }
        sts_rptstore_session *x = &v[n++];
        memset(x, 0, sizeof(*x));
        x->at = at;
        x->policy_domain = r->domain;
        x->policy_type = type;
        x->policy_string = lines;
        x->mx_host = mx;
        x->result_type = fail;
        if (fail == STS_RESULT_NONE)
            continue;
        x->receiving_mx_hostname = m->host;
        if (m->helo[0])
            x->receiving_mx_helo = m->helo;
        if (m->address[0]) {
            x->receiving_ip = m->address;
            if (m->local_address[0]) /* our end of the connection that failed */
                x->sending_mta_ip = m->local_address;
        }
        if (m->tls_attempted && m->tls.verify_error)
            x->failure_reason_code = m->tls.verify_error;
    }
    return n;
}

int sts_rptstore_record(sts_rptstore *s, const sts_rcpt_result *r, const sts_discovery *d,
                        time_t at)
{
    sts_rptstore_session v[64];
    /* Room for the policy twice (its lines, its patterns) and a source address per MX. */
    size_t need = 256 + r->nmx * (INET6_ADDRSTRLEN + 1);
    if (d && d->have_policy)
        for (size_t i = 0; i < d->policy.nmx; i++)
            need += 2 * (strlen(d->policy.mx[i]) + 8);
    char *buf = malloc(need);
    if (!buf) {
        sts_sqlfile_seterr(s->f, "add: out of memory");
        return STS_ENOMEM;
    }
    size_t n = sts_rptstore_sessions_of(r, d, at, v, sizeof(v) / sizeof(v[0]), buf, need);
    int rc = sts_rptstore_add(s, v, n);
    free(buf);
    return rc;
}

/* ---- reading ---------------------------------------------------------------------- */

/* Split LF-joined text into owned lines (none for ""). 0 or STS_ENOMEM. */
static int split_lines(const char *text, char ***out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!text || !text[0])
        return 0;
    size_t cap = 1;
    for (const char *p = text; *p; p++)
        cap += *p == '\n';
    char **v = calloc(cap, sizeof(*v));
    if (!v)
        return STS_ENOMEM;
    const char *start = text;
    for (;;) {
        const char *lf = strchr(start, '\n');
        size_t len = lf ? (size_t)(lf - start) : strlen(start);
        if (!(v[*n] = strndup(start, len))) {
            for (size_t i = 0; i < *n; i++)
                free(v[i]);
            free(v);
            *n = 0;
            return STS_ENOMEM;
        }
        (*n)++;
        if (!lf)
            break;
        start = lf + 1;
    }
    *out = v;
    return 0;
}

static char *col_dup(sqlite3_stmt *st, int i, int *nomem)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    if (!t)
        return NULL;
    char *c = strdup((const char *)t);
    if (!c)
        *nomem = 1;
    return c;
}

static void free_failure(sts_rpt_failure *f)
{
    free((char *)f->sending_mta_ip);
    free((char *)f->receiving_mx_hostname);
    free((char *)f->receiving_mx_helo);
    free((char *)f->receiving_ip);
    free((char *)f->additional_information);
    free((char *)f->failure_reason_code);
}

void sts_rptstore_policies_free(sts_rptstore_policy *v, size_t n)
{
    for (size_t i = 0; v && i < n; i++) {
        free(v[i].policy_domain);
        for (size_t k = 0; k < v[i].npolicy_string; k++)
            free(v[i].policy_string[k]);
        free(v[i].policy_string);
        for (size_t k = 0; k < v[i].nmx_host; k++)
            free(v[i].mx_host[k]);
        free(v[i].mx_host);
        for (size_t k = 0; k < v[i].nfailures; k++)
            free_failure(&v[i].failures[k]);
        free(v[i].failures);
    }
    free(v);
}

#define KEY_COLS "policy_domain, policy_type, policy_string, mx_host"
#define FAIL_COLS                                                                                  \
    "result_type, sending_mta_ip, receiving_mx_hostname, receiving_mx_helo, receiving_ip, "        \
    "additional_information, failure_reason_code"

static const char SQL_POLICIES[] =
    "SELECT " KEY_COLS ", SUM(result_type IS NULL), SUM(result_type IS NOT NULL), MIN(at), "
    "MAX(at) FROM session WHERE at >= ?1 AND at < ?2 GROUP BY " KEY_COLS " ORDER BY " KEY_COLS;
static const char SQL_FAILURES[] =
    "SELECT " KEY_COLS ", " FAIL_COLS ", COUNT(*) FROM session WHERE at >= ?1 AND at < ?2 "
    "AND result_type IS NOT NULL GROUP BY " KEY_COLS ", " FAIL_COLS " ORDER BY " KEY_COLS
    ", receiving_mx_hostname, result_type, receiving_ip, sending_mta_ip, receiving_mx_helo, "
    "additional_information, failure_reason_code";

/* Does the failures row st belong to policy p (same key columns)? */
static int same_key(sqlite3_stmt *st, const sts_rptstore_policy *p, const char *pstr,
                    const char *pmx)
{
    const char *dom = (const char *)sqlite3_column_text(st, 0);
    const char *type = (const char *)sqlite3_column_text(st, 1);
    const char *str = (const char *)sqlite3_column_text(st, 2);
    const char *mx = (const char *)sqlite3_column_text(st, 3);
    return dom && type && str && mx && !strcmp(dom, p->policy_domain) &&
           !strcmp(type, sts_policy_type_name(p->policy_type)) && !strcmp(str, pstr) &&
           !strcmp(mx, pmx);
}

static int read_failures(sts_rptstore *s, time_t start, time_t end, sts_rptstore_policy *v,
                         char **keys_str, char **keys_mx, size_t n)
{
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(sts_sqlfile_db(s->f), SQL_FAILURES, -1, &st, NULL);
    if (src != SQLITE_OK)
        return sts_sqlfile_fail(s->f, src, "reading the failures");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)start);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)end);
    size_t pi = 0;
    int rc = 0, nomem = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        while (pi < n && !same_key(st, &v[pi], keys_str[pi], keys_mx[pi]))
            pi++;
        if (pi == n) {
            sts_sqlfile_seterr(s->f, "reading the failures: a failure row without its policy");
            rc = STS_EIO;
            break;
        }
        sts_rptstore_policy *p = &v[pi];
        sts_rpt_failure *f = realloc(p->failures, (p->nfailures + 1) * sizeof(*f));
        if (!f) {
            rc = STS_ENOMEM;
            break;
        }
        p->failures = f;
        f = &p->failures[p->nfailures++];
        memset(f, 0, sizeof(*f));
        if (sts_result_type_parse((const char *)sqlite3_column_text(st, 4), &f->result_type)) {
            sts_sqlfile_seterr(s->f, "an unknown result type '%s' in the store",
                               (const char *)sqlite3_column_text(st, 4));
            rc = STS_EIO;
            break;
        }
        f->sending_mta_ip = col_dup(st, 5, &nomem);
        f->receiving_mx_hostname = col_dup(st, 6, &nomem);
        f->receiving_mx_helo = col_dup(st, 7, &nomem);
        f->receiving_ip = col_dup(st, 8, &nomem);
        f->additional_information = col_dup(st, 9, &nomem);
        f->failure_reason_code = col_dup(st, 10, &nomem);
        f->failed_session_count = sqlite3_column_int64(st, 11);
        if (nomem) {
            rc = STS_ENOMEM;
            break;
        }
    }
    if (!rc && src != SQLITE_DONE)
        rc = sts_sqlfile_fail(s->f, src, "reading the failures");
    sqlite3_finalize(st);
    return rc;
}

int sts_rptstore_read(sts_rptstore *s, time_t start, time_t end, sts_rptstore_policy **out,
                      size_t *nout)
{
    *out = NULL;
    *nout = 0;
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(sts_sqlfile_db(s->f), SQL_POLICIES, -1, &st, NULL);
    if (src != SQLITE_OK)
        return sts_sqlfile_fail(s->f, src, "reading the sessions");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)start);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)end);
    sts_rptstore_policy *v = NULL;
    char **kstr = NULL, **kmx = NULL;
    size_t n = 0;
    int rc = 0, nomem = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        sts_rptstore_policy *nv = realloc(v, (n + 1) * sizeof(*v));
        char **ns = nv ? realloc(kstr, (n + 1) * sizeof(*kstr)) : NULL;
        if (nv)
            v = nv;
        if (ns)
            kstr = ns;
        char **nm = ns ? realloc(kmx, (n + 1) * sizeof(*kmx)) : NULL;
        if (!nm) {
            rc = STS_ENOMEM;
            break;
        }
        kmx = nm;
        sts_rptstore_policy *p = &v[n];
        memset(p, 0, sizeof(*p));
        kstr[n] = col_dup(st, 2, &nomem);
        kmx[n] = col_dup(st, 3, &nomem);
        n++;
        p->policy_domain = col_dup(st, 0, &nomem);
        if (nomem) {
            rc = STS_ENOMEM;
            break;
        }
        if (sts_policy_type_parse((const char *)sqlite3_column_text(st, 1), &p->policy_type)) {
            sts_sqlfile_seterr(s->f, "an unknown policy type '%s' in the store",
                               (const char *)sqlite3_column_text(st, 1));
            rc = STS_EIO;
            break;
        }
        if ((rc = split_lines(kstr[n - 1], &p->policy_string, &p->npolicy_string)) ||
            (rc = split_lines(kmx[n - 1], &p->mx_host, &p->nmx_host)))
            break;
        p->successful = sqlite3_column_int64(st, 4);
        p->failed = sqlite3_column_int64(st, 5);
        p->first = (time_t)sqlite3_column_int64(st, 6);
        p->last = (time_t)sqlite3_column_int64(st, 7);
    }
    if (!rc && src != SQLITE_DONE)
        rc = sts_sqlfile_fail(s->f, src, "reading the sessions");
    sqlite3_finalize(st);
    if (!rc)
        rc = read_failures(s, start, end, v, kstr, kmx, n);
    for (size_t i = 0; i < n; i++) {
        free(kstr[i]);
        free(kmx[i]);
    }
    free(kstr);
    free(kmx);
    if (rc == STS_ENOMEM)
        sts_sqlfile_seterr(s->f, "out of memory");
    if (rc) {
        sts_rptstore_policies_free(v, n);
        return rc;
    }
    *out = v;
    *nout = n;
    return 0;
}

/* ---- the delivery ledger and pruning ------------------------------------------------ */

int sts_rptstore_delivered(sts_rptstore *s, const char *report_id, const char *rua)
{
    sqlite3_stmt *st = NULL;
    int src =
        sqlite3_prepare_v2(sts_sqlfile_db(s->f),
                           "SELECT 1 FROM delivery WHERE report_id = ? AND rua = ?", -1, &st, NULL);
    if (src != SQLITE_OK)
        return sts_sqlfile_fail(s->f, src, "reading the delivery ledger");
    sqlite3_bind_text(st, 1, report_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, rua, -1, SQLITE_STATIC);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src == SQLITE_ROW)
        return 1;
    if (src == SQLITE_DONE)
        return 0;
    return sts_sqlfile_fail(s->f, src, "reading the delivery ledger");
}

int sts_rptstore_mark_delivered(sts_rptstore *s, const char *report_id, const char *rua, time_t day,
                                time_t at)
{
    if (!report_id || !*report_id || !rua || !*rua) {
        sts_sqlfile_seterr(s->f, "delivery ledger: an empty report id or rua");
        return STS_EINVAL;
    }
    sqlite3_stmt *st = NULL;
    int src = sqlite3_prepare_v2(sts_sqlfile_db(s->f),
                                 "INSERT OR IGNORE INTO delivery (report_id, rua, day, at) "
                                 "VALUES (?,?,?,?)",
                                 -1, &st, NULL);
    if (src != SQLITE_OK)
        return sts_sqlfile_fail(s->f, src, "writing the delivery ledger");
    sqlite3_bind_text(st, 1, report_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, rua, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)day);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)at);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    return src == SQLITE_DONE ? 0 : sts_sqlfile_fail(s->f, src, "writing the delivery ledger");
}

int sts_rptstore_prune(sts_rptstore *s, time_t before, long long *sessions, long long *deliveries)
{
    int rc = sts_sqlfile_begin(s->f, "prune: begin");
    if (rc)
        return rc;
    static const char *const sql[] = {"DELETE FROM session WHERE at < ?",
                                      "DELETE FROM delivery WHERE day < ?"};
    long long *counts[] = {sessions, deliveries};
    for (size_t i = 0; i < 2; i++) {
        sqlite3_stmt *st = NULL;
        int src = sqlite3_prepare_v2(sts_sqlfile_db(s->f), sql[i], -1, &st, NULL);
        if (src == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, (sqlite3_int64)before);
            src = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        if (src != SQLITE_DONE) {
            rc = sts_sqlfile_fail(s->f, src, "prune");
            sts_sqlfile_rollback(s->f);
            return rc;
        }
        if (counts[i])
            *counts[i] = sqlite3_changes(sts_sqlfile_db(s->f));
    }
    return sts_sqlfile_commit(s->f, "prune: commit");
}
