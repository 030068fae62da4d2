/*
 * runner.c - replay scenarios: collect files, load and validate them all (a bad file
 * stops everything before any world starts), expand each into one case per mode,
 * run the cases on a pool of worker threads, and report (console, JUnit, JSON).
 *
 * One case: a world thread (own uv loop) serves the scenario on its own 127.x.y.0/24
 * block; the worker thread runs the sender on another loop, pointed at the world's
 * DNS server, CA file and ports, exactly as an external sender would be. The two meet
 * only over the network. Then the world is stopped and its observer log read.
 */
#include "runner/runner.h"

#include <dirent.h>
#include <ftw.h>
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "common/log.h"
#include "common/rfcref.h"
#include "common/scenario.h"
#include "common/vocab.h"
#include "fakedns/world.h"
#include "runner/external.h"
#include "runner/features.h"
#include "runner/report.h"
#include "runner/verdict.h"
#include "sender/assure.h"
#include "sender/policy.h"
#include "sender/sender.h"

/* ---- collecting files ---- */

typedef struct pathv {
    char **v;
    size_t n;
} pathv;

static int pathv_push(pathv *p, const char *s)
{
    char **nv = realloc(p->v, (p->n + 1) * sizeof(*nv));
    if (!nv)
        return STS_ENOMEM;
    p->v = nv;
    if (!(p->v[p->n] = strdup(s)))
        return STS_ENOMEM;
    p->n++;
    return 0;
}

static int is_yaml(const char *name)
{
    size_t n = strlen(name);
    return name[0] != '.' &&
           ((n > 5 && !strcmp(name + n - 5, ".yaml")) || (n > 4 && !strcmp(name + n - 4, ".yml")));
}

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add path (a file) or every *.yaml / *.yml below it (a folder), sorted. */
static int collect(const char *path, pathv *out, FILE *err)
{
    struct stat st;
    if (stat(path, &st)) {
        fprintf(err, "ststest run: %s: %s\n", path, strerror(errno));
        return STS_EIO;
    }
    if (!S_ISDIR(st.st_mode))
        return pathv_push(out, path);
    DIR *d = opendir(path);
    if (!d) {
        fprintf(err, "ststest run: %s: %s\n", path, strerror(errno));
        return STS_EIO;
    }
    pathv here = {0};
    int rc = 0;
    struct dirent *de;
    while (!rc && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        char *full = NULL;
        if (asprintf(&full, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", de->d_name) <
            0) {
            rc = STS_ENOMEM;
            break;
        }
        struct stat cst;
        if (!stat(full, &cst) && (S_ISDIR(cst.st_mode) || is_yaml(de->d_name)))
            rc = pathv_push(&here, full);
        free(full);
    }
    closedir(d);
    /* A folder with nothing to collect leaves here.v NULL, which qsort may not get. */
    if (here.n)
        qsort(here.v, here.n, sizeof(*here.v), cmp_path);
    for (size_t i = 0; i < here.n; i++) {
        if (!rc)
            rc = collect(here.v[i], out, err);
        free(here.v[i]);
    }
    free(here.v);
    return rc;
}

/* ---- the world thread ---- */

/* The world runs on its own thread and loop. The worker asks it, through uv_async
 * handles, to apply a scenario step (waiting for the answer) and to stop. */
typedef struct world_thread {
    pthread_t tid;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int state; /* 0 starting, 1 ready, -1 failed */
    uv_loop_t loop;
    uv_async_t stop;
    uv_async_t apply;
    const sts_scenario *scn;
    sts_world_opts opts;
    sts_world *world;
    json_t *ready;
    json_t *observed;
    char err[512];
    /* the pending request: apply a step, or (snapshot) copy the observer log */
    int snapshot;
    json_t *snap;
    size_t step;
    time_t step_now;
    int step_rc;
    int step_done;
    char step_err[512];
} world_thread;

static void world_stopped_cb(void *arg)
{
    (void)arg;
}

static void world_stop_cb(uv_async_t *a)
{
    world_thread *wt = a->data;
    wt->observed = sts_world_observed(wt->world);
    sts_world_stop(wt->world, world_stopped_cb, wt);
    uv_close((uv_handle_t *)&wt->stop, NULL);
    uv_close((uv_handle_t *)&wt->apply, NULL);
}

static void world_apply_cb(uv_async_t *a)
{
    world_thread *wt = a->data;
    pthread_mutex_lock(&wt->mu);
    size_t step = wt->step;
    time_t now = wt->step_now;
    int snapshot = wt->snapshot;
    pthread_mutex_unlock(&wt->mu);
    char err[512] = "";
    int rc = 0;
    json_t *snap = NULL;
    if (snapshot)
        snap = sts_world_observed(wt->world);
    else
        rc = sts_world_apply_step(wt->world, wt->scn, step, now, err, sizeof(err));
    pthread_mutex_lock(&wt->mu);
    wt->snap = snap;
    wt->step_rc = rc;
    snprintf(wt->step_err, sizeof(wt->step_err), "%s", err);
    wt->step_done = 1;
    pthread_cond_signal(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

/* Apply step `step` at `now` on the world's thread (or, with snapshot, take a copy
 * of its observer log into wt->snap); wait for it. */
static int world_request(world_thread *wt, int snapshot, size_t step, time_t now, char *err,
                         size_t errlen)
{
    pthread_mutex_lock(&wt->mu);
    wt->snapshot = snapshot;
    wt->snap = NULL;
    wt->step = step;
    wt->step_now = now;
    wt->step_done = 0;
    pthread_mutex_unlock(&wt->mu);
    uv_async_send(&wt->apply);
    pthread_mutex_lock(&wt->mu);
    while (!wt->step_done)
        pthread_cond_wait(&wt->cv, &wt->mu);
    int rc = wt->step_rc;
    snprintf(err, errlen, "%s", wt->step_err);
    pthread_mutex_unlock(&wt->mu);
    return rc;
}

static void world_signal(world_thread *wt, int state)
{
    pthread_mutex_lock(&wt->mu);
    wt->state = state;
    pthread_cond_signal(&wt->cv);
    pthread_mutex_unlock(&wt->mu);
}

static void *world_main(void *arg)
{
    world_thread *wt = arg;
    if (uv_loop_init(&wt->loop)) {
        snprintf(wt->err, sizeof(wt->err), "cannot create an event loop");
        world_signal(wt, -1);
        return NULL;
    }
    uv_async_init(&wt->loop, &wt->stop, world_stop_cb);
    uv_async_init(&wt->loop, &wt->apply, world_apply_cb);
    wt->stop.data = wt;
    wt->apply.data = wt;
    int rc = sts_world_start(&wt->loop, wt->scn, &wt->opts, &wt->world, wt->err, sizeof(wt->err));
    if (rc) {
        uv_close((uv_handle_t *)&wt->stop, NULL);
        uv_close((uv_handle_t *)&wt->apply, NULL);
        uv_run(&wt->loop, UV_RUN_DEFAULT);
        uv_loop_close(&wt->loop);
        world_signal(wt, -1);
        return NULL;
    }
    wt->ready = sts_world_ready(wt->world);
    world_signal(wt, 1);
    uv_run(&wt->loop, UV_RUN_DEFAULT);
    sts_world_free(wt->world);
    if (uv_loop_close(&wt->loop))
        snprintf(wt->err, sizeof(wt->err), "world left handles open after stopping");
    return NULL;
}

/* The part of the cumulative observer log that is new since `before` (arrays of the
 * observed event only grow): a new "observed" object holding the new entries. */
static json_t *observed_since(json_t *now, json_t *before)
{
    static const char *const keys[] = {"dns", "policy_fetches", "policy_connections",
                                       "smtp_sessions", "tlsrpt_reports"};
    json_t *out = json_object();
    json_object_set_new(out, "event", json_string("observed"));
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        json_t *a = json_object_get(now, keys[k]);
        size_t from = json_array_size(json_object_get(before, keys[k]));
        json_t *slice = json_array();
        for (size_t i = from; i < json_array_size(a); i++)
            json_array_append(slice, json_array_get(a, i));
        json_object_set_new(out, keys[k], slice);
    }
    return out;
}

/* ---- cases ---- */

typedef struct run_case {
    const sts_scenario *scn;
    const char *mode;
    size_t index;
    int waits; /* sts_scenario_waits(): its time goes in timers, not on a CPU */
    int taken; /* a worker has it (under run_state.mu) */
    /* results */
    int ran;
    int error; /* the case could not be run (world failed to start…) */
    char error_msg[1024];
    int unsupported; /* the sender cannot do what the case asks (runner.h) */
    char unsupported_msg[1024];
    int exit_status;
    double seconds;
    sts_verdict verdict;
    char *transcript; /* sender + world lines */
    int verdict_set;  /* verdict holds data to free */
    json_t *result;
    json_t *observed;
} run_case;

typedef struct run_state {
    const sts_run_opts *opts;
    run_case *cases;
    size_t ncases;
    size_t next[2]; /* where to look for the next case that computes [0] / waits [1] */
    int lanes;      /* waiting cases have lanes of their own (the default --jobs) */
    size_t done;
    size_t failed;
    size_t unsupported;
    pthread_mutex_t mu;
    int tty;
} run_state;

static const char *str_or_empty(json_t *v)
{
    const char *s = json_string_value(v);
    return s ? s : "";
}

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* How long the sender may run per step: --time-limit, else the default. */
static double run_time_limit(const sts_run_opts *o)
{
    return o->time_limit > 0 ? o->time_limit : STS_RUN_TIME_LIMIT;
}

/* The MX hosts whose certificate a correct sender rejects at step `nsteps_done` (for
 * the verdict on an external sender; NULL-terminated, the names borrowed from scn).
 * A host's entry is its latest override in the steps so far, else the top-level one;
 * hosts without an entry get the world's default certificate, which is valid. The
 * names are matched with the policy's own mx pattern rule (RFC 8461 4.1: a wildcard
 * only as the whole leftmost label), the same rule as RFC 6125's for certificates. */
static const char **bad_cert_hosts(const sts_scenario *scn, size_t nsteps_done)
{
    size_t n = 0, cap = scn->nmx;
    for (size_t s = 0; s < nsteps_done && s < scn->nsteps; s++)
        cap += scn->steps[s].nmx;
    const sts_scn_mx **all = calloc(cap + 1, sizeof(*all));
    const char **v = calloc(cap + 1, sizeof(*v));
    if (!all || !v) {
        free(all);
        return v;
    }
    for (size_t i = 0; i < scn->nmx; i++)
        all[n++] = &scn->mx[i];
    for (size_t s = 0; s < nsteps_done && s < scn->nsteps; s++)
        for (size_t i = 0; i < scn->steps[s].nmx; i++)
            all[n++] = &scn->steps[s].mx[i];
    size_t k = 0;
    for (size_t j = 0; j < n; j++) {
        int superseded = 0;
        for (size_t l = j + 1; l < n && !superseded; l++)
            superseded = !strcmp(all[l]->host, all[j]->host);
        const sts_scn_cert *c = &all[j]->cert;
        int names_ok = !c->names_set;
        for (size_t i = 0; i < c->names.n && !names_ok; i++)
            names_ok = sts_mx_pattern_match(c->names.v[i], all[j]->host);
        if (!superseded && (c->expired || c->not_yet_valid || c->self_signed || c->unknown_ca ||
                            c->no_san || c->chain == STS_SCN_CHAIN_MISSING || !names_ok))
            v[k++] = all[j]->host;
    }
    free(all);
    return v;
}

/* Whether the world serves, for this mode and step, a valid policy in mode enforce
 * over HTTPS with status 200 (what a correct external sender would then enforce). */
static int served_enforce(const sts_scenario *scn, size_t nsteps_done, const char *mode)
{
    const sts_scn_policy *p = &scn->policy;
    for (size_t i = 0; i < nsteps_done && i < scn->nsteps; i++)
        if (scn->steps[i].policy_set)
            p = &scn->steps[i].policy;
    if (!p->present || p->absent || p->status != 200)
        return 0;
    if (!p->body) {
        char *m = sts_scenario_subst(p->mode, mode);
        sts_mode served;
        int enforce = !sts_mode_parse(m, &served) && served == STS_MODE_ENFORCE && p->mx.n > 0;
        free(m);
        return enforce;
    }
    char *body = sts_scenario_subst(p->body, mode);
    sts_policy pol;
    memset(&pol, 0, sizeof(pol));
    int enforce = 0;
    if (body && !sts_policy_parse(body, strlen(body), &pol, NULL)) {
        enforce = pol.mode == STS_MODE_ENFORCE;
        sts_policy_free(&pol);
    }
    free(body);
    return enforce;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* How a case ends without a verdict of its own: it could not be run or judged
 * (ERROR), or the sender cannot do what it asks (unsupported, runner.h). */
enum case_stop_kind { CASE_STOP_ERROR, CASE_STOP_UNSUPPORTED };

/* The case ends as k: set its flag and say why in its message. Returns -1. */
static int case_stop(run_case *c, enum case_stop_kind k, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int case_stop(run_case *c, enum case_stop_kind k, const char *fmt, ...)
{
    int *flag = &c->error;
    char *msg = c->error_msg;
    size_t len = sizeof(c->error_msg);
    if (k == CASE_STOP_UNSUPPORTED) {
        flag = &c->unsupported;
        msg = c->unsupported_msg;
        len = sizeof(c->unsupported_msg);
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, len, fmt, ap);
    va_end(ap);
    *flag = 1;
    return -1;
}
#define case_error(c, ...) case_stop((c), CASE_STOP_ERROR, __VA_ARGS__)
#define case_unsupported(c, ...) case_stop((c), CASE_STOP_UNSUPPORTED, __VA_ARGS__)

/* An external command line for one step: the template tmpl (--sender-cmd, or a report
 * step's command) with its placeholders {rcpt} {domain} {dns} {dns_host} {dns_port} {ca}
 * {smtp_port} {https_port} {mode} {require_tls} {sender_mode} {now} {cache}
 * {dns_timeout} {report_store} and {ststest_flags} (runner.h), and those of more (NULL
 * or {name, value} pairs ending with a NULL name), replaced. malloc'd; NULL on ENOMEM. */
static char *external_command(const char *tmpl, const run_case *c, const sts_sender_opts *so,
                              const char *rcpt, const char *const more[][2])
{
    char port_s[3][16], now_s_[32], cache_path[4096];
    const char *dns = so->dns ? so->dns : "";
    const char *colon = strrchr(dns, ':');
    char dns_host[256];
    snprintf(dns_host, sizeof(dns_host), "%.*s", (int)(colon ? colon - dns : 0), dns);
    snprintf(port_s[0], sizeof(port_s[0]), "%s", colon ? colon + 1 : "");
    snprintf(port_s[1], sizeof(port_s[1]), "%d", so->smtp_port);
    snprintf(port_s[2], sizeof(port_s[2]), "%d", so->https_port);
    snprintf(now_s_, sizeof(now_s_), "%lld", (long long)so->now);
    snprintf(cache_path, sizeof(cache_path), "%s", so->cache_file ? so->cache_file : "");
    /* {dns_timeout}: the scenario's, else our sender's default, in seconds. */
    char dns_timeout_s[32];
    snprintf(dns_timeout_s, sizeof(dns_timeout_s), "%g",
             so->dns_timeout > 0 ? so->dns_timeout : STS_SENDER_DNS_TIMEOUT);
    /* ststest options for the scenario's `sender:` and the case's own policy cache and
     * clock (the cache path is ours: no shell metacharacters). */
    char flags[4300];
    const int mode_set = c->scn->sender.mode_set;
    snprintf(flags, sizeof(flags), "%s%s%s --cache %s --now %lld%s%s",
             so->require_tls ? "--require-tls" : "", mode_set ? " --mode " : "",
             mode_set ? sts_mode_name(so->mode) : "", cache_path, (long long)so->now,
             so->dns_timeout > 0 ? " --dns-timeout " : "",
             so->dns_timeout > 0 ? dns_timeout_s : "");
    const char *const vars[][2] = {
        {"require_tls", so->require_tls ? "1" : "0"},
        {"sender_mode", sts_mode_name(so->mode)},
        {"ststest_flags", flags},
        {"rcpt", rcpt},
        {"domain", c->scn->domain},
        {"dns", dns},
        {"dns_host", dns_host},
        {"dns_port", port_s[0]},
        {"ca", so->ca_file},
        {"smtp_port", port_s[1]},
        {"https_port", port_s[2]},
        {"mode", c->mode},
        {"now", now_s_},
        {"cache", cache_path},
        {"dns_timeout", dns_timeout_s},
        {"report_store", so->report_store_file ? so->report_store_file : ""},
        {NULL, NULL},
    };
    /* The sender's placeholders, then the report step's (more), in one list. */
    size_t nvars = 0, nmore = 0;
    while (vars[nvars][0])
        nvars++;
    while (more && more[nmore][0])
        nmore++;
    const char *(*all)[2] = calloc(nvars + nmore + 1, sizeof(*all));
    if (!all)
        return NULL;
    for (size_t i = 0; i < nvars; i++)
        all[i][0] = vars[i][0], all[i][1] = vars[i][1];
    for (size_t i = 0; i < nmore; i++)
        all[nvars + i][0] = more[i][0], all[nvars + i][1] = more[i][1];
    char *cmd = sts_external_command(tmpl, (const char *const(*)[2])all);
    free(all);
    return cmd;
}

/* Run the command template tmpl (--sender-cmd or the report command; what: "sender"
 * or "report") with the case's placeholders and more, its lines into log: "external
 * sender: CMD", "report command: CMD". 0 when it ran (*exit_status, *out to free with
 * sts_external_out_free, *timed_out), else -1 with the error in c. */
static int run_command(run_state *rs, run_case *c, const sts_sender_opts *so, const char *rcpt,
                       const char *tmpl, const char *const more[][2], const char *what,
                       sts_log *log, sts_external_out *out, int *exit_status, int *timed_out)
{
    char *cmd = external_command(tmpl, c, so, rcpt, more);
    int sender = !strcmp(what, "sender");
    sts_info(log, sender ? "external sender: %s" : "report command: %s", cmd ? cmd : "?");
    *timed_out = 0;
    *exit_status = cmd ? sts_external_run(cmd, run_time_limit(rs->opts), log, out, timed_out) : -1;
    free(cmd);
    if (*exit_status < 0)
        return case_error(c, "cannot run the %s command", what);
    return 0;
}

/* The external command as the sender of one step (external.h): its output joins the
 * transcript as it arrives; when stdout is a JSON document in our format (say, from
 * `ststest send --json`) it is the result. Exit status STS_RUN_EXIT_UNSUPPORTED makes
 * the case unsupported, its last stderr line the reason. Returns 0 when it ran, else
 * -1 with the error (or the unsupported reason) in c. */
static int sender_external(run_state *rs, run_case *c, const sts_sender_opts *so, const char *rcpt,
                           sts_log *log, json_t **result, int *exit_status)
{
    int timed_out;
    sts_external_out out;
    if (run_command(rs, c, so, rcpt, rs->opts->sender_cmd, NULL, "sender", log, &out, exit_status,
                    &timed_out))
        return -1;
    *result = sts_external_result(&out);
    char reason[sizeof(out.last_err)];
    snprintf(reason, sizeof(reason), "%s", out.last_err);
    sts_external_out_free(&out);
    if (timed_out)
        return case_error(c, "the sender command ran over the time limit of %.0f s",
                          run_time_limit(rs->opts));
    if (*exit_status == STS_RUN_EXIT_UNSUPPORTED)
        return case_unsupported(c, "the sender command exited %d: %s", STS_RUN_EXIT_UNSUPPORTED,
                                reason[0] ? reason : "(no reason on stderr)");
    return 0;
}

/* Our sender, in-process on a loop of its own, for one step. Returns 0 when it ran,
 * else -1 with the error in c. */
static int sender_in_process(run_case *c, const sts_sender_opts *so, const char *rcpt,
                             json_t **result, int *exit_status)
{
    uv_loop_t loop;
    char *rcpts[1] = {(char *)rcpt};
    if (uv_loop_init(&loop))
        return case_error(c, "cannot create an event loop");
    if (c->scn->sender.assure_tls) {
        char *domains[1] = {c->scn->domain};
        *exit_status = sts_assure_run(&loop, so, domains, 1, result);
    } else {
        *exit_status = sts_sender_run(&loop, so, rcpts, 1, result);
    }
    if (uv_loop_close(&loop))
        return case_error(c, "sender left handles open on its loop");
    /* A run cut short by the time limit says nothing about the scenario (it would
     * look like a deferral): the case is an error, not a pass or a fail. */
    const char *detail = json_string_value(
        json_object_get(json_array_get(json_object_get(*result, "results"), 0), "detail"));
    if (detail && !strcmp(detail, STS_DETAIL_TIME_LIMIT))
        return case_error(c, "the sender ran over the time limit of %.0f s", so->deadline);
    return 0;
}

/* Run the sender once (ours in-process, or the external command) for one step.
 * Returns 0 when it ran (*exit_status, *result set), else -1 with the error in c. */
static int sender_once(run_state *rs, run_case *c, const sts_sender_opts *so, const char *rcpt,
                       sts_log *log, json_t **result, int *exit_status)
{
    *result = NULL;
    /* assure_tls tests the world's MX hosts with ststest's own check --assure-tls (a
     * probe, not a delivery): no external sender has a part in it. */
    if (rs->opts->sender_cmd && c->scn->sender.assure_tls)
        sts_info(log, "sender assure_tls: ststest's own check --assure-tls, not --sender-cmd");
    else if (rs->opts->sender_cmd)
        return sender_external(rs, c, so, rcpt, log, result, exit_status);
    return sender_in_process(c, so, rcpt, result, exit_status);
}

/* ststest's own report delivery (contract section 3), run as a command like an
 * external one: {ststest} is this very binary. */
#define STS_RUN_REPORT_CMD                                                                         \
    "{ststest} report --deliver --now {now} --report-store {report_store} --dns {dns} "            \
    "--ca-file {ca} --smtp-port {smtp_port} --submitter {submitter} --dkim-key {dkim_key} "        \
    "--dkim-selector {dkim_selector} --out {report_dir} --timeout {timeout}"

/* The report command of a `report: deliver` step (--report-cmd, else ours) with the
 * sender's placeholders and {report_store} {submitter} {dkim_key} {dkim_selector}
 * {report_dir} {day} {timeout} {ststest}: run it (its lines join the transcript).
 * Returns 0 when it ran (*exit_status), else -1 with the error in c. */
static int report_once(run_state *rs, run_case *c, const sts_sender_opts *so, const char *rcpt,
                       json_t *ready, const char *report_dir, sts_log *log, int *exit_status)
{
    json_t *t = json_object_get(ready, "tlsrpt");
    char self[4096], day[16], timeout[32];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    self[n > 0 ? n : 0] = '\0';
    /* The day reported: the UTC day before the step's clock. */
    time_t yesterday = so->now - 24 * 3600;
    struct tm tm;
    gmtime_r(&yesterday, &tm);
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    snprintf(timeout, sizeof(timeout), "%g", so->timeout);
    const char *const more[][2] = {
        {"submitter", str_or_empty(json_object_get(t, "submitter"))},
        {"dkim_key", str_or_empty(json_object_get(t, "dkim_key"))},
        {"dkim_selector", str_or_empty(json_object_get(t, "selector"))},
        {"report_dir", report_dir},
        {"day", day},
        {"timeout", timeout},
        {"ststest", self},
        {NULL, NULL},
    };
    if (mkdir(report_dir, 0700) && errno != EEXIST)
        return case_error(c, "cannot create %s: %s", report_dir, strerror(errno));
    const char *tmpl = rs->opts->report_cmd ? rs->opts->report_cmd : STS_RUN_REPORT_CMD;
    int timed_out;
    sts_external_out out;
    if (run_command(rs, c, so, rcpt, tmpl, more, "report", log, &out, exit_status, &timed_out))
        return -1;
    sts_external_out_free(&out);
    if (timed_out)
        return case_error(c, "the report command ran over the time limit of %.0f s",
                          run_time_limit(rs->opts));
    return 0;
}

#define CASE_DIR_TEMPLATE "/tmp/ststest-run-XXXXXX"

/* One case in flight: what the parts of run_one share. */
typedef struct case_run {
    run_state *rs;
    run_case *c;
    sts_log *log, *wlog; /* the case's transcript: the sender's lines and the world's */
    char dir_buf[sizeof(CASE_DIR_TEMPLATE)];
    char *dir; /* the case's folder (policy cache, external sender's output); NULL: none */
    char cache_file[sizeof(CASE_DIR_TEMPLATE) + 32];
    char store_file[sizeof(CASE_DIR_TEMPLATE) + 32]; /* the case's TLS report store */
    char report_dir[sizeof(CASE_DIR_TEMPLATE) + 32]; /* where report steps write reports */
    world_thread wt;
    char rcpt[512];
    sts_sender_opts so;
    time_t clock0, clock; /* the case's virtual clock: at its start, and now */
    json_t *before;       /* the observer log as the previous step left it */
    sts_buf diff;         /* every step's differences */
    json_t *actuals;      /* every step's facts */
    json_t *diffs;        /* every step's differences, classified (verdict.h) */
    int passed;
} case_run;

/* Start the world thread and wait until it serves. 0, or -1 with the error in c. */
static int world_thread_start(world_thread *wt, run_case *c)
{
    if (pthread_create(&wt->tid, NULL, world_main, wt))
        return case_error(c, "cannot start the world thread");
    pthread_mutex_lock(&wt->mu);
    while (wt->state == 0)
        pthread_cond_wait(&wt->cv, &wt->mu);
    pthread_mutex_unlock(&wt->mu);
    if (wt->state < 0) {
        pthread_join(wt->tid, NULL);
        return case_error(c, "world did not start: %s", wt->err);
    }
    return 0;
}

/* The case's transcript, folder, clock and world. 0 when the world serves, else -1
 * with the error in c; case_end() undoes it either way. */
static int case_begin(case_run *cr, run_state *rs, run_case *c)
{
    memset(cr, 0, sizeof(*cr));
    cr->rs = rs;
    cr->c = c;
    cr->log = sts_log_new_mem(rs->opts->verbose ? STS_LOG_DEBUG : STS_LOG_INFO, "sender: ");
    cr->wlog = sts_log_new_child(cr->log, "world:  ");
    snprintf(cr->dir_buf, sizeof(cr->dir_buf), "%s", CASE_DIR_TEMPLATE);
    cr->dir = mkdtemp(cr->dir_buf);
    world_thread *wt = &cr->wt;
    wt->scn = c->scn;
    pthread_mutex_init(&wt->mu, NULL);
    pthread_cond_init(&wt->cv, NULL);
    wt->opts.mode = c->mode;
    wt->opts.dir = cr->dir;
    wt->opts.log = cr->wlog;
    if (rs->opts->standard_ports) {
        /* Each case keeps its own block, so parallel cases still do not clash. */
        sts_world_standard_ports(&wt->opts);
    }
    if (!cr->log || !cr->wlog || !cr->dir)
        return case_error(c, "cannot set up the case: %s", strerror(errno));
    /* One virtual clock for the case: the world mints certificates at it and the
     * sender judges certificates and its policy cache at it. */
    cr->clock0 = cr->clock = time(NULL);
    wt->opts.now = cr->clock0;
    return world_thread_start(wt, c);
}

/* The sender, told only what any sender would be told: where DNS is, which CA to
 * trust, which ports stand for 25 and 443; and a policy cache of its own that lives
 * as long as the case, so that steps share it. */
static void case_sender_opts(case_run *cr)
{
    const sts_scenario *scn = cr->c->scn;
    const sts_run_opts *o = cr->rs->opts;
    json_t *ready = cr->wt.ready;
    if (scn->sender.rcpt)
        snprintf(cr->rcpt, sizeof(cr->rcpt), "%s", scn->sender.rcpt);
    else
        snprintf(cr->rcpt, sizeof(cr->rcpt), "postmaster@%s", scn->domain);
    snprintf(cr->cache_file, sizeof(cr->cache_file), "%s/policy-cache.sqlite", cr->dir);
    sts_sender_opts *so = &cr->so;
    so->dns = json_string_value(json_object_get(ready, "dns"));
    so->ca_file = json_string_value(json_object_get(ready, "ca_file"));
    so->smtp_port = (int)json_integer_value(json_object_get(ready, "smtp_port"));
    so->https_port = (int)json_integer_value(json_object_get(ready, "https_port"));
    so->require_tls = scn->sender.require_tls;
    so->mode = scn->sender.mode;
    so->cache_file = cr->cache_file;
    /* A TLS report store of the case's own (contract: {report_store}): its sessions
     * are what a report step delivers, and nothing lands in the user's default store. */
    snprintf(cr->store_file, sizeof(cr->store_file), "%s/report-store.sqlite", cr->dir);
    snprintf(cr->report_dir, sizeof(cr->report_dir), "%s/reports", cr->dir);
    so->report_store_file = cr->store_file;
    so->from = "ststest@runner.invalid";
    so->helo = "runner.invalid";
    so->timeout = o->stage_timeout > 0 ? o->stage_timeout : STS_RUN_STAGE_TIMEOUT;
    so->dns_timeout = scn->sender.dns_timeout;
    so->deadline = run_time_limit(o);
    so->log = cr->log;
}

/* Move the world to step i, its clock advanced by the step's `advance`. 0, or -1
 * with the error in c. */
static int case_apply_step(case_run *cr, size_t i)
{
    const sts_scn_step *st = &cr->c->scn->steps[i];
    char err[512];
    cr->clock += st->advance;
    sts_info(cr->log, "STEP %zu: %s (clock +%lds)", i + 1, st->name,
             (long)(cr->clock - cr->clock0));
    if (world_request(&cr->wt, 0, i, cr->clock, err, sizeof(err)))
        return case_error(cr->c, "step %zu (%s): world: %s", i + 1, st->name, err);
    return 0;
}

/* What the world observed since the previous step. */
static json_t *case_observed_step(case_run *cr)
{
    char err[64];
    world_request(&cr->wt, 1, 0, 0, err, sizeof(err));
    json_t *snap = cr->wt.snap;
    json_t *observed = observed_since(snap, cr->before);
    json_decref(cr->before);
    cr->before = snap;
    return observed;
}

/* Append the difference lines of one verdict to the case's, each prefixed with its
 * step when the scenario has steps. */
static void append_diff(sts_buf *diff, size_t i, const char *step_name, const char *lines)
{
    for (const char *p = lines; p && *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (step_name)
            sts_buf_appendf(diff, "step %zu (%s): %.*s\n", i + 1, step_name, (int)n, p);
        else
            sts_buf_appendf(diff, "%.*s\n", (int)n, p);
        p += n + (nl ? 1 : 0);
    }
}

/* Judge step i's run against the scenario's expectation for it; the differences and
 * the facts join the case's. On error, c says why. */
static void case_judge(case_run *cr, size_t i, json_t *result, json_t *observed, int exit_status)
{
    run_case *c = cr->c;
    const sts_scenario *scn = c->scn;
    const char *step_name = scn->nsteps ? scn->steps[i].name : NULL;
    const sts_scn_expect *expect =
        scn->nsteps ? sts_scenario_step_expect(scn, i, c->mode) : sts_scenario_expect(scn, c->mode);
    const int external = cr->rs->opts->sender_cmd != NULL;
    const char **bad_hosts = external ? bad_cert_hosts(scn, i + 1) : NULL;
    sts_verdict v;
    sts_verdict_input in = {
        .expect = expect,
        .require_tls = scn->sender.require_tls,
        .assure_tls = scn->sender.assure_tls,
        .mode_override = scn->sender.mode,
        .exit_status = exit_status,
        .result = result,
        .observed = observed,
        .external = external && result == NULL,
        .cert_bad_hosts = bad_hosts,
        .served_enforce = served_enforce(scn, i + 1, c->mode),
        .report = scn->nsteps && scn->steps[i].report,
    };
    int vrc = expect ? sts_verdict_check(&in, &v) : -1;
    free(bad_hosts);
    if (vrc) {
        case_error(c, "%s",
                   expect ? "out of memory judging the run" : "no expectation for this mode");
        return;
    }
    cr->passed &= v.passed;
    append_diff(&cr->diff, i, step_name, v.diff.data);
    for (size_t k = 0; k < json_array_size(v.diffs); k++) {
        json_t *d = json_deep_copy(json_array_get(v.diffs, k));
        if (step_name) {
            char *text = NULL;
            if (asprintf(&text, "step %zu (%s): %s", i + 1, step_name,
                         json_string_value(json_object_get(d, "text"))) >= 0) {
                json_object_set_new(d, "text", json_string(text));
                free(text);
            }
            json_object_set_new(d, "step", json_string(step_name));
        }
        json_array_append_new(cr->diffs, d);
    }
    if (step_name)
        json_array_append_new(cr->actuals,
                              json_pack("{s:s, s:O}", "step", step_name, "actual", v.actual));
    else
        json_array_append(cr->actuals, v.actual);
    sts_verdict_free(&v);
}

/* Step i of the case (a scenario without steps has one): move the world on, run the
 * sender, judge what it did. On error, c says why. */
static void case_step(case_run *cr, size_t i)
{
    run_case *c = cr->c;
    if (c->scn->nsteps && case_apply_step(cr, i))
        return;
    cr->so.now = cr->clock;
    json_t *result = NULL;
    int exit_status = 0;
    int report = c->scn->nsteps && c->scn->steps[i].report;
    if (report ? report_once(cr->rs, c, &cr->so, cr->rcpt, cr->wt.ready, cr->report_dir, cr->log,
                             &exit_status)
               : sender_once(cr->rs, c, &cr->so, cr->rcpt, cr->log, &result, &exit_status)) {
        json_decref(result);
        return;
    }
    c->ran = 1;
    c->exit_status = exit_status;
    json_t *observed = case_observed_step(cr);
    case_judge(cr, i, result, observed, exit_status);
    json_decref(observed);
    json_decref(c->result);
    c->result = result;
}

/* The case's verdict: every step's differences, and the facts of each step. */
static void case_verdict(case_run *cr)
{
    run_case *c = cr->c;
    memset(&c->verdict, 0, sizeof(c->verdict));
    c->verdict.diff = cr->diff;
    c->verdict.diffs = cr->diffs;
    c->verdict.passed = cr->passed && !c->error;
    c->verdict.actual = c->scn->nsteps ? json_pack("{s:o}", "steps", cr->actuals)
                                       : json_incref(json_array_get(cr->actuals, 0));
    if (!c->scn->nsteps)
        json_decref(cr->actuals);
    c->verdict_set = 1;
}

/* Stop the world and keep its observer log; a world that did not stop cleanly, or
 * that lost DNS queries (sts_verdict_world_drops), makes the case an error. */
static void case_stop_world(case_run *cr)
{
    run_case *c = cr->c;
    cr->wt.snap = NULL;
    uv_async_send(&cr->wt.stop);
    pthread_join(cr->wt.tid, NULL);
    c->observed = cr->wt.observed;
    char drops[256];
    if (cr->wt.err[0] && !c->error)
        case_error(c, "%s", cr->wt.err);
    else if (!c->error && sts_verdict_world_drops(c->observed, drops, sizeof(drops)) > 0)
        case_error(c, "%s", drops);
}

/* Keep the transcript; free what case_begin() made and remove the case's folder. */
static void case_end(case_run *cr)
{
    json_decref(cr->before);
    json_decref(cr->wt.ready);
    pthread_mutex_destroy(&cr->wt.mu);
    pthread_cond_destroy(&cr->wt.cv);
    if (cr->log)
        cr->c->transcript = strdup(sts_log_text(cr->log));
    sts_log_free(cr->wlog);
    sts_log_free(cr->log);
    if (cr->dir)
        nftw(cr->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Whether the case needs a sender feature that --sender-features leaves out; if so
 * it is unsupported (and not run). */
static int case_lacks_feature(const run_state *rs, run_case *c)
{
    /* Our report command reports the sessions our sender recorded: another sender's
     * sessions need that implementation's own report command. */
    if (rs->opts->sender_cmd && !rs->opts->report_cmd &&
        (sts_features_needed(c->scn) & STS_FEATURE_TLSRPT)) {
        case_unsupported(c, "a report: deliver step with --sender-cmd needs --report-cmd "
                            "(ststest's report command cannot read another sender's sessions)");
        return 1;
    }
    if (!rs->opts->features_set)
        return 0;
    unsigned missing = sts_features_needed(c->scn) & ~rs->opts->sender_features;
    if (!missing)
        return 0;
    char names[256];
    sts_features_text(missing, names, sizeof(names));
    case_unsupported(c, "needs sender feature(s) %s, not in --sender-features", names);
    return 1;
}

static void run_one(run_state *rs, run_case *c)
{
    double t0 = now_s();
    if (case_lacks_feature(rs, c)) {
        c->seconds = now_s() - t0;
        return;
    }
    case_run cr;
    if (!case_begin(&cr, rs, c)) {
        size_t nsteps = c->scn->nsteps ? c->scn->nsteps : 1;
        case_sender_opts(&cr);
        sts_buf_init(&cr.diff, 0);
        cr.actuals = json_array();
        cr.diffs = json_array();
        cr.passed = 1;
        cr.before = json_object();
        for (size_t i = 0; i < nsteps && !c->error && !c->unsupported; i++)
            case_step(&cr, i);
        case_verdict(&cr);
        case_stop_world(&cr);
    }
    case_end(&cr);
    c->seconds = now_s() - t0;
}

/* An unsupported case neither passed nor failed (runner.h); an error (the world did
 * not start, ...) still counts as a failure. */
static int case_unsupported_only(const run_case *c)
{
    return c->unsupported && !c->error;
}

static int case_passed(const run_case *c)
{
    return c->ran && !c->error && !c->unsupported && c->verdict_set && c->verdict.passed;
}

static int case_failed(const run_case *c)
{
    return !case_passed(c) && !case_unsupported_only(c);
}

/* Print the last `max` lines of text, indented. */
static void print_tail(FILE *out, const char *text, size_t max)
{
    size_t lines = 0;
    for (const char *p = text; *p; p++)
        lines += *p == '\n';
    size_t skip = lines > max ? lines - max : 0;
    if (skip)
        fprintf(out, "    ... (%zu earlier lines)\n", skip);
    const char *p = text;
    for (size_t i = 0; i < skip; i++)
        p = strchr(p, '\n') + 1;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        fprintf(out, "    %.*s\n", (int)n, p);
        p += n + (nl ? 1 : 0);
    }
}

/* The differences of a case grouped by class, security first (verdict.h), then the
 * rule each broken expectation enforces (its `why`), once each. */
static void print_diffs(FILE *out, json_t *diffs)
{
    for (int cls = 0; cls < STS_DIFF_NCLASSES; cls++) {
        const char *name = sts_diff_class_name((sts_diff_class)cls);
        int head = 0;
        for (size_t i = 0; i < json_array_size(diffs); i++) {
            json_t *d = json_array_get(diffs, i);
            if (strcmp(json_string_value(json_object_get(d, "class")), name))
                continue;
            if (!head++)
                fprintf(out, "  %s differences:\n", name);
            fprintf(out, "    %s\n", json_string_value(json_object_get(d, "text")));
        }
    }
    for (size_t i = 0; i < json_array_size(diffs); i++) {
        const char *why = json_string_value(json_object_get(json_array_get(diffs, i), "why"));
        int seen = 0;
        for (size_t j = 0; why && j < i && !seen; j++) {
            const char *w = json_string_value(json_object_get(json_array_get(diffs, j), "why"));
            seen = w && !strcmp(w, why);
        }
        if (why && !seen)
            fprintf(out, "  why: %s\n", why);
    }
}

static void report_case(run_state *rs, run_case *c)
{
    FILE *out = rs->opts->out;
    int ok = case_passed(c);
    if (rs->tty)
        fprintf(out, "\r\033[K");
    if (case_unsupported_only(c)) {
        /* Not a failure and not a security finding: the sender said it cannot do it. */
        fprintf(out, "UNSUPPORTED %s [%s] (%.2fs)\n  reason: %s\n", c->scn->name, c->mode,
                c->seconds, c->unsupported_msg);
        ok = 1;
    } else {
        fprintf(out, "%s %s [%s] (%.2fs)%s\n", ok ? "PASS" : (c->error ? "ERROR" : "FAIL"),
                c->scn->name, c->mode, c->seconds, "");
    }
    if (!ok) {
        fprintf(out, "  file: %s\n", c->scn->file);
        if (c->error)
            fprintf(out, "  error: %s\n", c->error_msg);
        if (c->verdict_set)
            print_diffs(out, c->verdict.diffs);
        if (c->verdict_set && c->verdict.actual) {
            char *a = json_dumps(c->verdict.actual, JSON_COMPACT);
            fprintf(out, "  actual: %s\n", a ? a : "?");
            free(a);
        }
    }
    if ((!ok || rs->opts->verbose) && c->transcript && *c->transcript) {
        fprintf(out, "  transcript:\n");
        print_tail(out, c->transcript, rs->opts->verbose ? (size_t)-1 : 150);
    }
    if (rs->tty && rs->done < rs->ncases)
        fprintf(out, "[%zu/%zu] %zu failed", rs->done, rs->ncases, rs->failed);
    fflush(out);
}

/* A worker computes (it takes any case) or is a lane for a waiting case (it takes only
 * those, and ends when none is left). */
typedef struct worker {
    run_state *rs;
    int lane;
} worker;

/* The next case of the kind (0 computes, 1 waits) not taken yet, in file order, or NULL.
 * Under rs->mu. */
static run_case *take_kind(run_state *rs, int waits)
{
    size_t *i = &rs->next[waits];
    while (*i < rs->ncases && (rs->cases[*i].waits != waits || rs->cases[*i].taken))
        (*i)++;
    if (*i == rs->ncases)
        return NULL;
    rs->cases[*i].taken = 1;
    return &rs->cases[(*i)++];
}

/* What a worker runs next, or NULL when it is done. A lane takes only waiting cases.
 * A computing worker takes the waiting ones first when there are no lanes (the
 * longest start first, so they do not end the run alone), last when there are. */
static run_case *take_case(run_state *rs, int lane)
{
    if (lane)
        return take_kind(rs, 1);
    run_case *c = take_kind(rs, !rs->lanes);
    return c ? c : take_kind(rs, rs->lanes);
}

static void *worker_main(void *arg)
{
    const worker *w = arg;
    run_state *rs = w->rs;
    for (;;) {
        pthread_mutex_lock(&rs->mu);
        run_case *c = take_case(rs, w->lane);
        pthread_mutex_unlock(&rs->mu);
        if (!c)
            return NULL;
        run_one(rs, c);
        pthread_mutex_lock(&rs->mu);
        rs->done++;
        if (case_failed(c))
            rs->failed++;
        else if (case_unsupported_only(c))
            rs->unsupported++;
        report_case(rs, c);
        pthread_mutex_unlock(&rs->mu);
    }
}

/* After a scenario's refs: the RFCs (or sections) that could not be checked because
 * they are not known (common/rfcref.h), once each: "refs not checked: RFC 7672:
 * sections not known". */
static void list_unchecked_refs(FILE *out, const sts_strv *refs)
{
    for (size_t j = 0; j < refs->n; j++) {
        char why[128], earlier[128];
        if (sts_rfcref_check(refs->v[j], why, sizeof(why)) != 1)
            continue;
        size_t k = 0;
        while (k < j && !(sts_rfcref_check(refs->v[k], earlier, sizeof(earlier)) == 1 &&
                          !strcmp(earlier, why)))
            k++;
        if (k == j)
            fprintf(out, "\n  refs not checked: %s", why);
    }
}

static void list_scenarios(FILE *out, sts_scenario **scns, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "%s  (%s)\n", scns[i]->name, scns[i]->file);
        fprintf(out, "  modes: ");
        for (size_t j = 0; j < scns[i]->modes.n; j++)
            fprintf(out, "%s%s", j ? ", " : "", scns[i]->modes.v[j]);
        fprintf(out, "\n  refs: ");
        for (size_t j = 0; j < scns[i]->refs.n; j++)
            fprintf(out, "%s%s", j ? "; " : "", scns[i]->refs.v[j]);
        list_unchecked_refs(out, &scns[i]->refs);
        fprintf(out, "\n  about: ");
        /* Fold the about text onto indented lines. */
        for (const char *p = scns[i]->about; *p; p++) {
            if (*p == '\n') {
                if (p[1])
                    fputs("\n         ", out);
            } else {
                fputc(*p, out);
            }
        }
        fputc('\n', out);
    }
}

/* Whether an --exclude pattern matches the scenario name. */
static int excluded(const sts_run_opts *opts, const char *name)
{
    for (size_t i = 0; i < opts->nexclude; i++)
        if (!fnmatch(opts->exclude[i], name, 0))
            return 1;
    return 0;
}

/* Every scenario file named by paths (files or folders). 0, or a sysexits status
 * after saying what is wrong. */
static int collect_files(char *const *paths, size_t npaths, pathv *files)
{
    int rc = 0;
    for (size_t i = 0; i < npaths && !rc; i++)
        rc = collect(paths[i], files, stderr);
    if (rc)
        return rc == STS_ENOMEM ? STS_EXIT_SOFTWARE : STS_EXIT_DATAERR;
    if (!files->n) {
        fprintf(stderr, "ststest run: no scenario files (*.yaml, *.yml) found\n");
        return STS_EXIT_DATAERR;
    }
    return 0;
}

/* The scenarios to run, loaded from files in order. */
typedef struct scn_list {
    sts_scenario **v;
    size_t n;
} scn_list;

/* Load every file first: a bad scenario file stops the run before any world starts,
 * and every bad file is named, not just the first. Scenarios that --filter leaves
 * out or an --exclude pattern matches are dropped. 0, or a sysexits status. */
static int load_scenarios(const pathv *files, const sts_run_opts *opts, scn_list *scns)
{
    size_t nbad = 0;
    if (!(scns->v = calloc(files->n, sizeof(*scns->v))))
        return STS_EXIT_SOFTWARE;
    for (size_t i = 0; i < files->n; i++) {
        char err[1024];
        sts_scenario *s = sts_scenario_load(files->v[i], err, sizeof(err));
        if (!s) {
            fprintf(stderr, "%s\n", err);
            nbad++;
            continue;
        }
        if ((opts->filter && fnmatch(opts->filter, s->name, 0)) || excluded(opts, s->name)) {
            sts_scenario_free(s);
            continue;
        }
        for (size_t j = 0; j < scns->n; j++)
            if (!strcmp(scns->v[j]->name, s->name)) {
                fprintf(stderr, "%s: scenario name '%s' is also used by %s\n", s->file, s->name,
                        scns->v[j]->file);
                nbad++;
            }
        scns->v[scns->n++] = s;
    }
    if (nbad) {
        fprintf(stderr, "ststest run: %zu bad scenario file(s); nothing was run\n", nbad);
        return STS_EXIT_DATAERR;
    }
    return 0;
}

/* One case per scenario and mode, in order. 0 or STS_ENOMEM. */
static int cases_make(run_state *rs, const scn_list *scns)
{
    for (size_t i = 0; i < scns->n; i++)
        rs->ncases += scns->v[i]->modes.n;
    rs->cases = calloc(rs->ncases ? rs->ncases : 1, sizeof(*rs->cases));
    if (!rs->cases)
        return STS_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < scns->n; i++)
        for (size_t j = 0; j < scns->v[i]->modes.n; j++) {
            rs->cases[k].scn = scns->v[i];
            rs->cases[k].mode = scns->v[i]->modes.v[j];
            rs->cases[k].index = k;
            rs->cases[k].waits = sts_scenario_waits(scns->v[i]);
            k++;
        }
    return 0;
}

static void cases_free(run_state *rs)
{
    for (size_t i = 0; i < rs->ncases; i++) {
        if (rs->cases[i].verdict_set)
            sts_verdict_free(&rs->cases[i].verdict);
        json_decref(rs->cases[i].result);
        json_decref(rs->cases[i].observed);
        free(rs->cases[i].transcript);
    }
    free(rs->cases);
}

/* Run every case on --jobs worker threads (default: one per CPU, at most one per
 * case). With the default, a case whose world keeps the sender waiting (delays,
 * timeouts, a dripped body: sts_scenario_waits) runs on a lane of its own besides them,
 * up to RUN_WAIT_LANES at once: it spends seconds in timers and almost no CPU, and
 * holding a CPU's worker for it only made the library wait. An explicit --jobs N
 * means N cases at once, whatever they do (peers that share one resolver need -j 1);
 * the waiting cases then start first. Returns the seconds it took. */
#define RUN_WAIT_LANES 32
static double run_workers(run_state *rs, size_t nscns, FILE *out)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int jobs = rs->opts->jobs > 0 ? rs->opts->jobs : (ncpu > 0 ? (int)ncpu : 1);
    int nlanes = 0;
    if (rs->opts->jobs <= 0)
        for (size_t i = 0; i < rs->ncases && nlanes < RUN_WAIT_LANES; i++)
            nlanes += rs->cases[i].waits;
    if ((size_t)jobs > rs->ncases - (size_t)nlanes)
        jobs = (int)(rs->ncases - (size_t)nlanes);
    if (jobs < 1)
        jobs = 1;
    rs->lanes = nlanes > 0;
    if (nlanes)
        fprintf(out,
                "running %zu case(s) from %zu scenario(s), %d at a time and %d that wait "
                "besides\n",
                rs->ncases, nscns, jobs, nlanes);
    else
        fprintf(out, "running %zu case(s) from %zu scenario(s), %d at a time\n", rs->ncases, nscns,
                jobs);
    fflush(out);
    double t0 = now_s();
    int n = jobs + nlanes;
    pthread_t *tids = calloc((size_t)n, sizeof(*tids));
    worker *ws = calloc((size_t)n, sizeof(*ws));
    int started = 0, computing = 0;
    for (int i = 0; tids && ws && i < n; i++) {
        ws[started] = (worker){.rs = rs, .lane = i >= jobs};
        if (!pthread_create(&tids[started], NULL, worker_main, &ws[started])) {
            computing += !ws[started].lane;
            started++;
        }
    }
    if (!computing) {
        /* No thread to compute (none to be had at all, or only lanes): this one does. */
        worker self = {.rs = rs, .lane = 0};
        worker_main(&self);
    }
    for (int i = 0; i < started; i++)
        pthread_join(tids[i], NULL);
    free(tids);
    free(ws);
    return now_s() - t0;
}

/* The failed cases, the unsupported ones, then "N passed, M failed[, K unsupported]". */
static void print_summary(const run_state *rs, size_t nscns, double secs, FILE *out)
{
    if (rs->tty)
        fprintf(out, "\r\033[K");
    if (rs->failed) {
        fprintf(out, "\nfailed:\n");
        for (size_t i = 0; i < rs->ncases; i++)
            if (case_failed(&rs->cases[i]))
                fprintf(out, "  %s [%s]  %s\n", rs->cases[i].scn->name, rs->cases[i].mode,
                        rs->cases[i].scn->file);
    }
    if (rs->unsupported) {
        fprintf(out, "\nunsupported:\n");
        for (size_t i = 0; i < rs->ncases; i++)
            if (case_unsupported_only(&rs->cases[i]))
                fprintf(out, "  %s [%s]  %s\n", rs->cases[i].scn->name, rs->cases[i].mode,
                        rs->cases[i].unsupported_msg);
    }
    /* "N passed, M failed" leads the line (CI greps for it); the unsupported count
     * follows only when there are some. */
    fprintf(out, "\n%zu passed, %zu failed", rs->ncases - rs->failed - rs->unsupported, rs->failed);
    if (rs->unsupported)
        fprintf(out, ", %zu unsupported", rs->unsupported);
    fprintf(out, " (%zu scenarios, %.1fs)\n", nscns, secs);
}

/* --junit and --json (report.h). 0, or -1 after saying which file could not be
 * written. */
static int write_reports(const run_state *rs, double secs)
{
    const sts_run_opts *opts = rs->opts;
    int rc = 0;
    sts_report_case *rc_ = calloc(rs->ncases ? rs->ncases : 1, sizeof(*rc_));
    for (size_t i = 0; rc_ && i < rs->ncases; i++) {
        const run_case *c = &rs->cases[i];
        rc_[i] = (sts_report_case){
            .scenario = c->scn->name,
            .file = c->scn->file,
            .about = c->scn->about,
            .mode = c->mode,
            .passed = case_passed(c),
            .error = c->error ? c->error_msg : NULL,
            .unsupported = case_unsupported_only(c) ? c->unsupported_msg : NULL,
            .diff = c->verdict_set ? c->verdict.diff.data : NULL,
            .diffs = c->verdict_set ? c->verdict.diffs : NULL,
            .actual = c->verdict_set ? c->verdict.actual : NULL,
            .exit_status = c->exit_status,
            .seconds = c->seconds,
            .transcript = c->transcript,
        };
    }
    if (opts->junit_file && (!rc_ || sts_report_junit(opts->junit_file, rc_, rs->ncases, secs))) {
        fprintf(stderr, "ststest run: cannot write %s: %s\n", opts->junit_file, strerror(errno));
        rc = -1;
    }
    if (opts->json_file && (!rc_ || sts_report_json(opts->json_file, rc_, rs->ncases, secs))) {
        fprintf(stderr, "ststest run: cannot write %s: %s\n", opts->json_file, strerror(errno));
        rc = -1;
    }
    free(rc_);
    return rc;
}

/* Run the cases of scns and report them. Returns the exit status of `ststest run`. */
static int run_cases(const scn_list *scns, const sts_run_opts *opts, FILE *out)
{
    run_state rs = {.opts = opts};
    pthread_mutex_init(&rs.mu, NULL);
    rs.tty = isatty(fileno(out));
    if (cases_make(&rs, scns)) {
        pthread_mutex_destroy(&rs.mu);
        return STS_EXIT_SOFTWARE;
    }
    double secs = run_workers(&rs, scns->n, out);
    print_summary(&rs, scns->n, secs, out);
    int status = rs.failed ? STS_EXIT_FAILED_CHECK : STS_EXIT_OK;
    if (write_reports(&rs, secs))
        status = STS_EXIT_SOFTWARE;
    cases_free(&rs);
    pthread_mutex_destroy(&rs.mu);
    return status;
}

int sts_runner_run(char *const *paths, size_t npaths, const sts_run_opts *opts)
{
    FILE *out = opts->out ? opts->out : stdout;
    pathv files = {0};
    scn_list scns = {0};
    int status = collect_files(paths, npaths, &files);
    if (!status)
        status = load_scenarios(&files, opts, &scns);
    if (!status && opts->list)
        list_scenarios(out, scns.v, scns.n);
    else if (!status)
        status = run_cases(&scns, opts, out);
    for (size_t i = 0; i < scns.n; i++)
        sts_scenario_free(scns.v[i]);
    free(scns.v);
    for (size_t i = 0; i < files.n; i++)
        free(files.v[i]);
    free(files.v);
    return status;
}
