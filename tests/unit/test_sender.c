/*
 * test_sender.c - the sender's job state machine (sender.h: sts_job_state), driven
 * through a real run: a fake world (fakedns/world.h) on a thread of its own, as
 * `ststest run` has it, and sts_sender_run on the test's loop with a transcript at
 * trace level, where every job transition is a line ("job ARG: FROM -> TO").
 *
 *   - the state-name table covers every state;
 *   - the transitions of a canned run: MX fallback under enforce (the first MX's
 *     certificate has expired, the second delivers), and a bad address that ends
 *     before discovery;
 *   - jobs are created lazily: never more than the concurrency window between a job's
 *     NEW -> DISCOVER and its -> DONE, and results still in recipient order;
 *   - the run's time limit with jobs in SMTP and jobs still queued: every one ends
 *     deferred, and the loop closes with nothing left on it.
 * Every run ends with uv_loop_close(loop) == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "common/log.h"
#include "common/scenario.h"
#include "fakedns/world.h"
#include "sender/sender.h"
#include "tests/unit/world_fixture.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Two MX hosts under an enforce policy: the preferred one's certificate has expired,
 * so the sender refuses it after the handshake and delivers to the second. */
static const char *fallback_scn = "name: t\n"
                                  "about: t\n"
                                  "refs: [RFC 8461]\n"
                                  "domain: example.test\n"
                                  "dns: |\n"
                                  "  @ MX 10 mail\n"
                                  "  @ MX 20 backup\n"
                                  "  _mta-sts TXT \"v=STSv1; id=1;\"\n"
                                  "policy:\n"
                                  "  mode: enforce\n"
                                  "  mx: [mail.example.test, backup.example.test]\n"
                                  "  max_age: 86400\n"
                                  "mx:\n"
                                  "  mail.example.test: {cert: {expired: true}}\n"
                                  "  backup.example.test: {starttls: true}\n"
                                  "expect:\n"
                                  "  enforce: {outcome: delivered}\n";

/* One MX that takes its time to greet: sessions are in flight when the limit passes. */
static const char *slow_scn = "name: t\n"
                              "about: t\n"
                              "refs: [RFC 8461]\n"
                              "domain: example.test\n"
                              "dns: |\n"
                              "  @ MX 10 mail\n"
                              "  _mta-sts TXT \"v=STSv1; id=1;\"\n"
                              "policy:\n"
                              "  mode: enforce\n"
                              "  mx: [mail.example.test]\n"
                              "  max_age: 86400\n"
                              "mx:\n"
                              "  mail.example.test: {delay: {greeting: 5}}\n"
                              "expect:\n"
                              "  enforce: {outcome: deferred}\n";

/* ---- a run of the sender and its transcript ---- */

typedef struct send_run {
    int status;
    json_t *out;
    char *transcript; /* a copy of the trace-level transcript */
} send_run;

static void send_all(const world_thread *wt, char **rcpts, size_t n, int concurrency,
                     double deadline, send_run *sr)
{
    sts_log *log = sts_log_new_mem(STS_LOG_TRACE, NULL);
    sts_sender_opts o = {
        .dns = wt->dns,
        .ca_file = wt->ca_file,
        .smtp_port = wt->smtp_port,
        .https_port = wt->https_port,
        .no_cache = 1,
        .no_report_store = 1,
        .from = "sender@t.invalid",
        .helo = "t.invalid",
        .timeout = 10,
        .dns_timeout = 5,
        .concurrency = concurrency,
        .deadline = deadline,
        .log = log,
    };
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sr->out = NULL;
    sr->status = sts_sender_run(&loop, &o, rcpts, n, &sr->out);
    assert_int_equal(uv_loop_close(&loop), 0); /* nothing left on the loop */
    sr->transcript = strdup(sts_log_text(log));
    sts_log_free(log);
    assert_non_null(sr->out);
}

static void send_run_free(send_run *sr)
{
    json_decref(sr->out);
    free(sr->transcript);
}

/* Every "job ARG: FROM -> TO" line of the transcript, in order, into arg/from/to
 * (each line's own fields); returns how many. */
typedef struct transition {
    char arg[64], from[16], to[16];
} transition;

static size_t transitions(const char *text, transition *out, size_t max)
{
    size_t n = 0;
    for (const char *p = strstr(text, ": job "); p && n < max; p = strstr(p + 1, ": job ")) {
        transition *t = &out[n];
        if (sscanf(p, ": job %63[^:]: %15s -> %15s", t->arg, t->from, t->to) == 3)
            n++;
    }
    return n;
}

/* The sequence of states arg went through, "NEW DISCOVER MX ...". */
static void path_of(const transition *t, size_t n, const char *arg, char *out, size_t len)
{
    size_t off = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (strcmp(t[i].arg, arg))
            continue;
        if (!off)
            off += (size_t)snprintf(out + off, len - off, "%s", t[i].from);
        if (off < len)
            off += (size_t)snprintf(out + off, len - off, " %s", t[i].to);
    }
}

/* Jobs between NEW -> DISCOVER and -> DONE: never more than the window, and job k
 * (counting from 0) is created only once k - window jobs are done. */
static void check_window(const transition *t, size_t n, int window)
{
    int alive = 0, created = 0, done = 0, peak = 0;
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(t[i].from, "NEW")) {
            if (created - done >= window)
                fail_msg("job %s created with %d done of %d created", t[i].arg, done, created);
            created++;
            alive++;
        }
        if (!strcmp(t[i].to, "DONE")) {
            done++;
            alive--;
        }
        if (alive > peak)
            peak = alive;
    }
    assert_true(peak <= window);
    assert_int_equal(alive, 0);
}

/* ---- the tests ---- */

/* u0@example.test, u1@..., and at index bad (when < n) "badN", which is no address. */
static void make_rcpts(char **rcpts, char (*names)[32], size_t n, size_t bad)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(names[i], sizeof(names[i]), i == bad ? "bad%zu" : "u%zu@example.test", i);
        rcpts[i] = names[i];
    }
}

static void test_state_names(void **state)
{
    (void)state;
    for (int a = STS_JOB_NEW; a <= STS_JOB_DONE; a++) {
        const char *name = sts_job_state_name((sts_job_state)a);
        assert_non_null(name);
        assert_string_not_equal(name, "UNKNOWN");
        for (int b = STS_JOB_NEW; b < a; b++)
            assert_string_not_equal(name, sts_job_state_name((sts_job_state)b));
    }
    assert_string_equal(sts_job_state_name(STS_JOB_DISCOVER), "DISCOVER");
    assert_string_equal(sts_job_state_name(STS_JOB_MX_ADDR), "MX_ADDR");
    assert_string_equal(sts_job_state_name((sts_job_state)(STS_JOB_DONE + 1)), "UNKNOWN");
    assert_string_equal(sts_job_state_name((sts_job_state)-1), "UNKNOWN");
}

static void test_fallback_and_window(void **state)
{
    (void)state;
    world_thread wt;
    world_start(&wt, 21000, fallback_scn);
    char *rcpts[11];
    char names[11][32];
    make_rcpts(rcpts, names, N(rcpts), 4);
    send_run sr;
    send_all(&wt, rcpts, N(rcpts), 3, 0, &sr);
    world_end(&wt);
    assert_int_equal(sr.status, 69); /* the bad address failed, the others delivered */

    static transition t[200];
    size_t n = transitions(sr.transcript, t, N(t));
    check_window(t, n, 3);
    json_t *results = json_object_get(sr.out, "results");
    assert_int_equal(json_array_size(results), N(rcpts));
    for (size_t i = 0; i < N(rcpts); i++) {
        json_t *r = json_array_get(results, i);
        char path[256];
        path_of(t, n, rcpts[i], path, sizeof(path));
        assert_string_equal(json_string_value(json_object_get(r, "argument")), rcpts[i]);
        if (i == 4) {
            assert_string_equal(path, "NEW DISCOVER DONE");
            assert_string_equal(json_string_value(json_object_get(r, "outcome")), "failed");
            continue;
        }
        assert_string_equal(path, "NEW DISCOVER MX MX_ADDR SMTP MX_ADDR SMTP DONE");
        assert_string_equal(json_string_value(json_object_get(r, "outcome")), "delivered");
        json_t *mx = json_object_get(r, "mx");
        assert_int_equal(json_array_size(mx), 2);
        assert_string_equal(json_string_value(json_object_get(json_array_get(mx, 0), "action")),
                            "refused");
        assert_string_equal(json_string_value(json_object_get(json_array_get(mx, 1), "action")),
                            "delivered");
    }
    send_run_free(&sr);
}

static void test_deadline_with_queued_jobs(void **state)
{
    (void)state;
    world_thread wt;
    world_start(&wt, 21000, slow_scn);
    char *rcpts[6];
    char names[6][32];
    make_rcpts(rcpts, names, N(rcpts), N(rcpts));
    send_run sr;
    send_all(&wt, rcpts, N(rcpts), 2, 1.0, &sr);
    world_end(&wt);
    assert_int_equal(sr.status, 75);

    static transition t[100];
    size_t n = transitions(sr.transcript, t, N(t));
    check_window(t, n, 2);
    json_t *results = json_object_get(sr.out, "results");
    for (size_t i = 0; i < N(rcpts); i++) {
        json_t *r = json_array_get(results, i);
        char path[256];
        path_of(t, n, rcpts[i], path, sizeof(path));
        /* The first two wait for the greeting when the limit passes; the others start
         * after it and end at once. */
        assert_string_equal(path,
                            i < 2 ? "NEW DISCOVER MX MX_ADDR SMTP DONE" : "NEW DISCOVER DONE");
        assert_string_equal(json_string_value(json_object_get(r, "argument")), rcpts[i]);
        assert_string_equal(json_string_value(json_object_get(r, "outcome")), "deferred");
        assert_string_equal(json_string_value(json_object_get(r, "detail")), "time limit");
    }
    send_run_free(&sr);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_state_names),
        cmocka_unit_test(test_fallback_and_window),
        cmocka_unit_test(test_deadline_with_queued_jobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
