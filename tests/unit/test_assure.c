/*
 * test_assure.c - `check --assure-tls` (sender/assure.h) through a real run against a
 * fake world on its own thread: one table row per world, each checked for the exit
 * status, the assuredness, every MX's verdict and stage in order, and the transcript:
 * the STARTTLS offer ignored, MAIL and RCPT in the clear, never DATA. Every run ends
 * with uv_loop_close(loop) == 0.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"
#include "common/log.h"
#include "sender/assure.h"
#include "tests/unit/world_fixture.h"

#define HEAD                                                                                       \
    "name: t\nabout: t\nrefs: [RFC 3207]\ndomain: example.test\n"                                  \
    "expect: {enforce: {outcome: delivered}}\n"

static const struct row {
    const char *what;
    const char *world; /* after HEAD */
    const char *domain;
    int status, assuredness;
    const char *verdicts; /* "HOST VERDICT STAGE;" per MX in order */
    const char *transcript_has;
} rows[] = {
    {"every MX demands TLS: 530 to MAIL",
     "dns: |\n  @ MX 10 mail\n  @ MX 20 backup\n"
     "mx:\n  mail.example.test: {require_tls: true}\n  backup.example.test: {require_tls: true}\n",
     "example.test", STS_EXIT_OK, 100,
     "mail.example.test refused mail;backup.example.test refused mail;",
     "<-- 530 5.7.0 Must issue a STARTTLS command first"},
    {"the backup MX takes RCPT in the clear",
     "dns: |\n  @ MX 10 mail\n  @ MX 20 backup\n"
     "mx:\n  mail.example.test: {require_tls: true}\n  backup.example.test: {}\n",
     "example.test", STS_EXIT_FAILED_CHECK, 0,
     "mail.example.test refused mail;backup.example.test accepted rcpt;",
     "--> RCPT TO:<postmaster@example.test>"},
    {"implicit MX (no MX records), closed at RCPT: not a refusal for want of TLS",
     "mx:\n  example.test: {disconnect_after: rcpt}\n", "example.test.", STS_EXIT_FAILED_CHECK, 0,
     "example.test not-tested rcpt;", "connection closed by the MX at rcpt"},
    {"550 5.1.1 at RCPT says nothing about TLS; 454 4.7.0 at MAIL does",
     "dns: |\n  @ MX 10 mail\n  @ MX 20 backup\n"
     "mx:\n  mail.example.test: {replies: {rcpt: \"550 5.1.1 User unknown\"}}\n"
     "  backup.example.test: {replies: {mail: \"454 4.7.0 TLS required\"}}\n",
     "example.test", STS_EXIT_OK, 100,
     "mail.example.test not-tested rcpt;backup.example.test refused mail;",
     "refused, but not for want of TLS: 550 5.1.1 User unknown"},
    {"null MX: nothing to test", "dns: |\n  @ MX 0 .\n", "example.test", STS_EXIT_FAILED_CHECK, 0,
     "", "null MX (RFC 7505)"},
};

static void verdicts_of(json_t *a, char *out, size_t len)
{
    size_t o = 0, i;
    json_t *m;
    out[0] = '\0';
    json_array_foreach(json_object_get(a, "mx"), i, m)
    {
        int n = snprintf(out + o, len - o, "%s %s %s;",
                         json_string_value(json_object_get(m, "host")),
                         json_string_value(json_object_get(m, "verdict")),
                         json_string_value(json_object_get(m, "stage")));
        if (n < 0 || (size_t)n >= len - o)
            break;
        o += (size_t)n;
    }
}

static int run_row(const struct row *r)
{
    char text[1024];
    snprintf(text, sizeof(text), "%s%s", HEAD, r->world);
    world_thread wt;
    world_start(&wt, 22000, text);
    sts_log *log = sts_log_new_mem(STS_LOG_TRACE, NULL);
    sts_sender_opts o = {.dns = wt.dns,
                         .smtp_port = wt.smtp_port,
                         .helo = "t.invalid",
                         .timeout = 10,
                         .dns_timeout = 5,
                         .log = log};
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    char *domains[1] = {(char *)r->domain};
    json_t *out = NULL;
    int status = sts_assure_run(&loop, &o, domains, 1, &out);
    assert_int_equal(uv_loop_close(&loop), 0); /* nothing left on the loop */
    world_end(&wt);

    json_t *a = json_object_get(json_array_get(json_object_get(out, "results"), 0), "assure_tls");
    char got[512];
    verdicts_of(a, got, sizeof(got));
    const char *tr = sts_log_text(log);
    int assuredness = (int)json_integer_value(json_object_get(a, "assuredness"));
    int bad = status != r->status || !a || assuredness != r->assuredness ||
              strcmp(got, r->verdicts) != 0 || !strstr(tr, r->transcript_has) ||
              strstr(tr, "--> DATA") || strstr(tr, "--> STARTTLS");
    if (bad)
        print_error("%s:\n  status %d (want %d), assuredness %d (want %d)\n  verdicts %s\n"
                    "  (want %s)\n  transcript:\n%s\n",
                    r->what, status, r->status, assuredness, r->assuredness, got, r->verdicts,
                    tr);
    json_decref(out);
    sts_log_free(log);
    return bad;
}

static void test_worlds(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
        bad += run_row(&rows[i]);
    assert_int_equal(bad, 0);
}

static void test_tls_refusal(void **state)
{
    (void)state;
    static const struct {
        int code;
        const char *enhanced;
        int tls;
    } t[] = {
        {530, "5.7.0", 1}, {530, "", 1},       {530, NULL, 1},    {454, "4.7.0", 1},
        {550, "5.7.1", 1}, {554, "5.7.26", 1}, {550, "5.1.1", 0}, {451, "4.3.0", 0},
        {550, "", 0},      {550, NULL, 0},     {450, "5.7.0", 0}, {554, "5.3.2", 0},
        {250, "2.7.0", 0}, {550, "5.17.0", 0},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (sts_assure_tls_refusal(t[i].code, t[i].enhanced) != t[i].tls) {
            print_error("%d %s: want %d\n", t[i].code, t[i].enhanced ? t[i].enhanced : "NULL",
                        t[i].tls);
            fail();
        }
}

static void test_verdict_names(void **state)
{
    (void)state;
    sts_assure_verdict v;
    for (int i = STS_ASSURE_REFUSED; i <= STS_ASSURE_NOT_TESTED; i++) {
        assert_non_null(sts_assure_verdict_name((sts_assure_verdict)i));
        assert_int_equal(sts_assure_verdict_parse(sts_assure_verdict_name((sts_assure_verdict)i),
                                                  &v),
                         0);
        assert_int_equal((int)v, i);
    }
    assert_int_not_equal(sts_assure_verdict_parse("passed", &v), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tls_refusal),
        cmocka_unit_test(test_verdict_names),
        cmocka_unit_test(test_worlds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
