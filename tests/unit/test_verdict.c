/* test_verdict.c - judging a sender run: expectation differences and the security
 * invariant, from hand-written sender results and observer logs. */
#pragma GCC diagnostic ignored "-Woverride-init" /* EXPECT() defaults, then overrides */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers" /* rows omit external, bad_hosts */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "runner/verdict.h"

/* A delivered-over-verified-TLS run under an enforce policy. */
static const char RESULT_OK[] =
    "{\"results\":[{\"recipient\":\"postmaster@example.test\",\"outcome\":\"delivered\","
    "\"policy\":{\"source\":\"fetched\",\"mode\":\"enforce\"},"
    "\"mx\":[{\"host\":\"mail.example.test\",\"action\":\"delivered\",\"tls\":{\"verified\":true}}]"
    ","
    "\"failures\":[]}]}";
static const char OBSERVED_OK[] =
    "{\"event\":\"observed\",\"policy_fetches\":[{\"scheme\":\"https\",\"status\":200}],"
    "\"smtp_sessions\":[{\"host\":\"mail.example.test\",\"commands\":["
    "{\"verb\":\"EHLO\",\"tls\":false},{\"verb\":\"STARTTLS\",\"tls\":false},"
    "{\"verb\":\"EHLO\",\"tls\":true},{\"verb\":\"MAIL\",\"tls\":true},"
    "{\"verb\":\"RCPT\",\"tls\":true},{\"verb\":\"DATA\",\"tls\":true}],"
    "\"messages\":[{\"tls\":true,\"bytes\":100}]}]}";
/* The verified delivery, but the policy was (also) asked for over plain HTTP. */
static const char OBSERVED_HTTP[] =
    "{\"event\":\"observed\",\"policy_fetches\":[{\"scheme\":\"http\",\"status\":200},"
    "{\"scheme\":\"https\",\"status\":200}],"
    "\"smtp_sessions\":[{\"host\":\"mail.example.test\",\"commands\":["
    "{\"verb\":\"MAIL\",\"tls\":true}],\"messages\":[{\"tls\":true,\"bytes\":100}]}]}";
/* Nothing reached any MX. */
static const char OBSERVED_PLAIN_NONE[] =
    "{\"event\":\"observed\",\"policy_fetches\":[],\"smtp_sessions\":[]}";
/* The same delivery in the clear. */
static const char OBSERVED_PLAIN[] =
    "{\"event\":\"observed\",\"policy_fetches\":[],"
    "\"smtp_sessions\":[{\"host\":\"mail.example.test\",\"commands\":["
    "{\"verb\":\"EHLO\",\"tls\":false},{\"verb\":\"MAIL\",\"tls\":false},"
    "{\"verb\":\"RCPT\",\"tls\":false},{\"verb\":\"DATA\",\"tls\":false}],"
    "\"messages\":[{\"tls\":false,\"bytes\":100}]}]}";
/* The sender tried the policy host over HTTPS and left without a request: a failed
 * handshake, then a close after a completed one (as libcurl does on a name
 * mismatch); the plain-HTTP and aborted connections do not count. */
static const char OBSERVED_ABANDONED_TLS[] =
    "{\"event\":\"observed\",\"policy_fetches\":[],\"policy_connections\":["
    "{\"scheme\":\"http\",\"outcome\":\"no_request\"},"
    "{\"scheme\":\"https\",\"outcome\":\"tls_failed\",\"error\":\"tlsv1 alert unknown ca\"}],"
    "\"smtp_sessions\":[]}";
static const char OBSERVED_ABANDONED_CLOSE[] =
    "{\"event\":\"observed\",\"policy_fetches\":[],\"policy_connections\":["
    "{\"scheme\":\"https\",\"outcome\":\"no_request\",\"tls_version\":\"TLSv1.3\"}],"
    "\"smtp_sessions\":[]}";
static const char OBSERVED_NOT_ABANDONED[] =
    "{\"event\":\"observed\",\"policy_fetches\":[],\"policy_connections\":["
    "{\"scheme\":\"https\",\"outcome\":\"handshake_aborted\"},"
    "{\"scheme\":\"https\",\"outcome\":\"refused\"},"
    "{\"scheme\":\"http\",\"outcome\":\"tls_failed\"}],"
    "\"smtp_sessions\":[]}";
static const char RESULT_NONE_PLAIN[] =
    "{\"results\":[{\"outcome\":\"delivered\",\"policy\":{\"source\":\"none\"},"
    "\"mx\":[{\"host\":\"mail.example.test\",\"action\":\"delivered\",\"tls\":null}],"
    "\"failures\":[\"starttls-not-supported\"]}]}";

/* check --assure-tls: one MX accepted RCPT in the clear; MAIL and RCPT without TLS,
 * never DATA, no message. */
static const char RESULT_ASSURE0[] =
    "{\"results\":[{\"domain\":\"example.test\",\"assure_tls\":{\"assuredness\":0,"
    "\"mx\":[{\"host\":\"mail.example.test\",\"verdict\":\"accepted\"}]}}]}";
static const char OBSERVED_ASSURE[] =
    "{\"event\":\"observed\",\"policy_fetches\":[],"
    "\"smtp_sessions\":[{\"host\":\"mail.example.test\",\"commands\":["
    "{\"verb\":\"EHLO\",\"tls\":false},{\"verb\":\"MAIL\",\"tls\":false},"
    "{\"verb\":\"RCPT\",\"tls\":false},{\"verb\":\"QUIT\",\"tls\":false}],"
    "\"messages\":[]}]}";

typedef struct row {
    const char *what;
    const char *result, *observed;
    int exit_status;
    int require_tls;
    sts_mode mode_override;
    sts_scn_expect expect;
    int passed, invariant;
    const char *diff_has; /* a substring of the difference lines, or NULL */
    int external;         /* judged as an external sender (result ignored) */
    const char *const *bad_hosts;
    int assure_tls; /* judged as check --assure-tls */
} row;

static void test_table(void **state)
{
    (void)state;
    static char *fail_starttls[] = {"starttls-not-supported"};
    static const char *const bad_none[] = {NULL};
    static const char *const bad_mail[] = {"mail.example.test", NULL};
    static char *hosts_mail[] = {"mail.example.test"};
    static char *hosts_other[] = {"other.example.test"};
#define OUTCOME(w) .outcome_set = 1, .outcome = STS_OUTCOME_##w
#define TLS(w) .tls_set = 1, .tls = STS_DELIVERY_TLS_##w
#define EXPECT(...)                                                                                \
    {.exit_status = -1, .received = -1, .policy_fetched = -1, .policy_abandoned = -1, __VA_ARGS__}
    row rows[] = {
        {"all facts match", RESULT_OK, OBSERVED_OK, 0, 0, STS_MODE_AUTO,
         EXPECT(OUTCOME(DELIVERED), TLS(VERIFIED), .received = 1, .policy_source_set = 1,
                .policy_source = STS_POLICY_SOURCE_FETCHED, .policy_fetched = 1, .failures_set = 1,
                .exit_status = 0, .delivered_to_set = 1, .delivered_to = {hosts_mail, 1}),
         1, 0, NULL},
        {"outcome differs", RESULT_OK, OBSERVED_OK, 0, 0, STS_MODE_AUTO, EXPECT(OUTCOME(DEFERRED)),
         0, 0, "outcome: expected deferred, got delivered"},
        {"exit differs", RESULT_OK, OBSERVED_OK, 75, 0, STS_MODE_AUTO, EXPECT(.exit_status = 0), 0,
         0, "exit: expected 0, got 75"},
        {"received differs", RESULT_OK, OBSERVED_OK, 0, 0, STS_MODE_AUTO, EXPECT(.received = 0), 0,
         0, "received: expected 0, got 1"},
        {"failures differ", RESULT_OK, OBSERVED_OK, 0, 0, STS_MODE_AUTO,
         EXPECT(.failures_set = 1, .failures = {fail_starttls, 1}), 0, 0,
         "failures: expected [\"starttls-not-supported\"], got []"},
        {"delivered_to differs", RESULT_OK, OBSERVED_OK, 0, 0, STS_MODE_AUTO,
         EXPECT(.delivered_to_set = 1, .delivered_to = {hosts_other, 1}), 0, 0,
         "delivered_to: expected [\"other.example.test\"], got [\"mail.example.test\"]"},
        {"tls none vs verified", RESULT_OK, OBSERVED_OK, 0, 0, STS_MODE_AUTO, EXPECT(TLS(NONE)), 0,
         0, "tls: expected none, got verified"},
        {"policy not fetched", RESULT_NONE_PLAIN, OBSERVED_PLAIN, 0, 0, STS_MODE_AUTO,
         EXPECT(.policy_fetched = 1), 0, 0, "policy_fetched: expected true, got false"},
        {"plain delivery without policy is fine", RESULT_NONE_PLAIN, OBSERVED_PLAIN, 0, 0,
         STS_MODE_AUTO,
         EXPECT(OUTCOME(DELIVERED), TLS(NONE), .failures_set = 1, .failures = {fail_starttls, 1}),
         1, 0, NULL},
        {"plain delivery under --require-tls violates the invariant", RESULT_NONE_PLAIN,
         OBSERVED_PLAIN, 0, 1, STS_MODE_AUTO, EXPECT(OUTCOME(DELIVERED)), 0, 1,
         "SECURITY INVARIANT: MAIL reached mail.example.test without TLS under --require-tls"},
        {"plain delivery under --mode enforce violates the invariant", RESULT_NONE_PLAIN,
         OBSERVED_PLAIN, 0, 0, STS_MODE_ENFORCE, EXPECT(OUTCOME(DELIVERED)), 0, 1,
         "received without TLS"},
        {"no result at all", NULL, OBSERVED_OK, 70, 0, STS_MODE_AUTO, EXPECT(OUTCOME(DELIVERED)), 0,
         0, "the sender printed no result"},
        {"external: delivered to an MX with a good certificate is verified", NULL, OBSERVED_OK, 0,
         0, STS_MODE_AUTO, EXPECT(OUTCOME(DELIVERED), TLS(VERIFIED), .received = 1), 1, 0, NULL, 1,
         bad_none},
        {"external: delivered to an MX with a bad certificate is unverified", NULL, OBSERVED_OK, 0,
         0, STS_MODE_AUTO, EXPECT(TLS(VERIFIED)), 0, 0, "tls: expected verified, got unverified", 1,
         bad_mail},
        {"external: nothing received and exit 75 is deferred", NULL, OBSERVED_PLAIN_NONE, 75, 0,
         STS_MODE_AUTO, EXPECT(OUTCOME(DEFERRED), .received = 0), 1, 0, NULL, 1, bad_none},
        {"external: a failed handshake with the policy host is abandoned", NULL,
         OBSERVED_ABANDONED_TLS, 75, 0, STS_MODE_AUTO, EXPECT(.policy_abandoned = 1), 1, 0, NULL, 1,
         bad_none},
        {"external: a close after the handshake without a request is abandoned", NULL,
         OBSERVED_ABANDONED_CLOSE, 75, 0, STS_MODE_AUTO, EXPECT(.policy_abandoned = 1), 1, 0, NULL,
         1, bad_none},
        {"external: never connecting is not abandoning", NULL, OBSERVED_PLAIN_NONE, 75, 0,
         STS_MODE_AUTO, EXPECT(.policy_abandoned = 1), 0, 0,
         "policy_abandoned: expected true, got false", 1, bad_none},
        {"aborted, refused and plain-HTTP connections are not abandoned", NULL,
         OBSERVED_NOT_ABANDONED, 75, 0, STS_MODE_AUTO, EXPECT(.policy_abandoned = 1), 0, 0,
         "policy_abandoned: expected true, got false", 1, bad_none},
        {"a fetched policy is not abandoned", RESULT_OK, OBSERVED_OK, 0, 0, STS_MODE_AUTO,
         EXPECT(.policy_abandoned = 0), 1, 0, NULL},
        {"a policy fetch over plain HTTP always fails the run", RESULT_OK, OBSERVED_HTTP, 0, 0,
         STS_MODE_AUTO, EXPECT(OUTCOME(DELIVERED)), 0, 0,
         "policy fetched over plain HTTP 1 time(s) (RFC 8461 3.3: HTTPS only)"},
        {"assure_tls: MAIL and RCPT in the clear on purpose, assuredness as expected",
         RESULT_ASSURE0, OBSERVED_ASSURE, 1, 0, STS_MODE_AUTO,
         EXPECT(.assuredness_set = 1, .assuredness = 0, .exit_status = 1, .received = 0), 1, 0,
         NULL, 0, NULL, 1},
        {"assure_tls: assuredness differs", RESULT_ASSURE0, OBSERVED_ASSURE, 1, 0, STS_MODE_AUTO,
         EXPECT(.assuredness_set = 1, .assuredness = 100), 0, 0, "assuredness: expected 100, got 0",
         0, NULL, 1},
        {"assure_tls: DATA and a message are a violation", RESULT_ASSURE0, OBSERVED_PLAIN, 1, 0,
         STS_MODE_AUTO, EXPECT(), 0, 1, "DATA reached mail.example.test under assure_tls", 0, NULL,
         1},
    };
    int bad = 0;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        row *r = &rows[i];
        json_error_t je;
        json_t *res = r->result ? json_loads(r->result, 0, &je) : NULL;
        json_t *obs = json_loads(r->observed, 0, &je);
        assert_non_null(obs);
        sts_verdict_input in = {.expect = &r->expect,
                                .require_tls = r->require_tls,
                                .mode_override = r->mode_override,
                                .exit_status = r->exit_status,
                                .result = res,
                                .observed = obs,
                                .external = r->external,
                                .cert_bad_hosts = r->bad_hosts,
                                .assure_tls = r->assure_tls};
        sts_verdict v;
        assert_int_equal(sts_verdict_check(&in, &v), 0);
        const char *diff = v.diff.data ? v.diff.data : "";
        if (v.passed != r->passed || v.invariant_violated != r->invariant ||
            (r->diff_has && !strstr(diff, r->diff_has))) {
            print_error("row '%s': passed=%d invariant=%d diff:\n%s\n", r->what, v.passed,
                        v.invariant_violated, diff);
            bad++;
        }
        sts_verdict_free(&v);
        json_decref(res);
        json_decref(obs);
    }
    assert_int_equal(bad, 0);
}

/* Each difference gets its class (verdict.h): a delivery the expectation refuses and
 * bytes outside TLS are security; deferred against failed is outcome-only; the rest is
 * other. The class of every difference line of the run, in order, and the why of the
 * expectation on each. */
static void test_classes(void **state)
{
    (void)state;
    static char *hosts_other[] = {"other.example.test"};
    static char *hosts_mail_other[] = {"mail.example.test", "other.example.test"};
    static const char *const bad_mail[] = {"mail.example.test", NULL};
    static const struct {
        const char *what, *result, *observed;
        int exit_status, external;
        const char *const *bad_hosts;
        sts_scn_expect expect;
        const char *classes; /* the class of each difference line, in order */
    } rows[] = {
        {"delivered where deferral is expected", RESULT_OK, OBSERVED_OK, 0, 0, NULL,
         EXPECT(OUTCOME(DEFERRED), .received = 0), "security security"},
        {"deferred where failure is expected", NULL, OBSERVED_PLAIN_NONE, 75, 1, NULL,
         EXPECT(OUTCOME(FAILED), .exit_status = 69), "outcome-only outcome-only"},
        {"failed where delivery is expected", NULL, OBSERVED_PLAIN_NONE, 69, 1, NULL,
         EXPECT(OUTCOME(DELIVERED), .received = 1, .exit_status = 0), "other other other"},
        {"delivered to a host the expectation does not name", RESULT_OK, OBSERVED_OK, 0, 0, NULL,
         EXPECT(.delivered_to_set = 1, .delivered_to = {hosts_other, 1}), "security"},
        {"not delivered to every host expected", RESULT_OK, OBSERVED_OK, 0, 0, NULL,
         EXPECT(.delivered_to_set = 1, .delivered_to = {hosts_mail_other, 2}), "other"},
        {"unverified where verified is expected", NULL, OBSERVED_OK, 0, 1, bad_mail,
         EXPECT(TLS(VERIFIED)), "security"},
        {"verified where none is expected", RESULT_OK, OBSERVED_OK, 0, 0, NULL, EXPECT(TLS(NONE)),
         "other"},
        {"policy fetched over plain HTTP", RESULT_OK, OBSERVED_HTTP, 0, 0, NULL, EXPECT(),
         "security"},
        {"plain delivery under --mode enforce", RESULT_NONE_PLAIN, OBSERVED_PLAIN, 0, 0, NULL,
         EXPECT(.policy_fetched = 1), "other security security security security"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        print_message("row: %s\n", rows[i].what);
        sts_scn_expect e = rows[i].expect;
        e.why = "RFC 8461 5: a rule";
        json_t *res = rows[i].result ? json_loads(rows[i].result, 0, NULL) : NULL;
        json_t *obs = json_loads(rows[i].observed, 0, NULL);
        sts_verdict_input in = {.expect = &e,
                                .exit_status = rows[i].exit_status,
                                .result = res,
                                .observed = obs,
                                .external = rows[i].external,
                                .cert_bad_hosts = rows[i].bad_hosts,
                                .mode_override = i == 8 ? STS_MODE_ENFORCE : STS_MODE_AUTO};
        sts_verdict v;
        assert_int_equal(sts_verdict_check(&in, &v), 0);
        char got[256] = "";
        size_t lines = 0;
        for (const char *p = v.diff.data; p && *p; p++)
            lines += *p == '\n';
        assert_int_equal(json_array_size(v.diffs), lines);
        for (size_t k = 0; k < json_array_size(v.diffs); k++) {
            json_t *d = json_array_get(v.diffs, k);
            snprintf(got + strlen(got), sizeof(got) - strlen(got), "%s%s", k ? " " : "",
                     json_string_value(json_object_get(d, "class")));
            assert_string_equal(json_string_value(json_object_get(d, "why")), e.why);
            assert_non_null(strstr(v.diff.data, json_string_value(json_object_get(d, "text"))));
        }
        if (strcmp(got, rows[i].classes))
            fail_msg("row '%s': classes '%s', want '%s':\n%s", rows[i].what, got, rows[i].classes,
                     v.diff.data);
        sts_verdict_free(&v);
        json_decref(res);
        json_decref(obs);
    }
    assert_string_equal(sts_diff_class_name(STS_DIFF_SECURITY), "security");
    assert_null(sts_diff_class_name((sts_diff_class)99));
}

/* A world that lost DNS queries makes the case an ERROR: the count and its message. */
static void test_world_drops(void **state)
{
    (void)state;
    static const struct {
        const char *observed;
        long long drops;
        const char *msg_has; /* NULL: no message */
    } t[] = {
        {"{}", 0, NULL},
        {"{\"dns_drops\": 0, \"dns_drops_kernel\": 0, \"dns_drops_server\": 0}", 0, NULL},
        {"{\"dns_drops\": 1, \"dns_drops_kernel\": 0, \"dns_drops_server\": 1}", 1,
         "lost 1 query (kernel 0, server 1)"},
        {"{\"dns_drops\": 4242, \"dns_drops_kernel\": 4240, \"dns_drops_server\": 2}", 4242,
         "lost 4242 queries (kernel 4240, server 2)"},
        {"{\"dns_drops\": \"7\"}", 0, NULL}, /* not a number: not counted */
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        json_t *o = json_loads(t[i].observed, 0, NULL);
        assert_non_null(o);
        char msg[256] = "";
        assert_int_equal(sts_verdict_world_drops(o, msg, sizeof(msg)), t[i].drops);
        if (t[i].msg_has)
            assert_non_null(strstr(msg, t[i].msg_has));
        else
            assert_string_equal(msg, "");
        json_decref(o);
    }
    assert_int_equal(sts_verdict_world_drops(NULL, NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_table), cmocka_unit_test(test_classes),
                                       cmocka_unit_test(test_world_drops)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
