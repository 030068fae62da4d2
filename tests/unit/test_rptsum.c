/* test_rptsum.c - the summary of received TLS reports: per policy domain, per result
 * type and per MX, first and last day seen, a report counted once per domain, what is
 * not a report refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/rptsum.h"

/* A report of one day (2030-01-DD) with policies for a.test and b.test. */
static json_t *report(int dd, int a_ok, int a_bad, int b_ok)
{
    char start[32], end[32];
    snprintf(start, sizeof(start), "2030-01-%02dT00:00:00Z", dd);
    snprintf(end, sizeof(end), "2030-01-%02dT23:59:59Z", dd);
    json_t *r = json_pack(
        "{s:s, s:{s:s, s:s}, s:s, s:s, s:[{s:{s:s, s:s}, s:{s:i, s:i}, s:[{s:s, s:s, s:i}]},"
        " {s:{s:s, s:s}, s:{s:i, s:i}}, {s:{s:s, s:s}, s:{s:i, s:i}}]}",
        "organization-name", "x", "date-range", "start-datetime", start, "end-datetime", end,
        "contact-info", "c", "report-id", "r", "policies", "policy", "policy-type", "sts",
        "policy-domain", "a.test", "summary", "total-successful-session-count", a_ok,
        "total-failure-session-count", a_bad, "failure-details", "result-type",
        "certificate-expired", "receiving-mx-hostname", "mx1.a.test", "failed-session-count", a_bad,
        "policy", "policy-type", "no-policy-found", "policy-domain", "b.test", "summary",
        "total-successful-session-count", b_ok, "total-failure-session-count", 0, "policy",
        "policy-type", "sts", "policy-domain", "a.test", "summary",
        "total-successful-session-count", 1, "total-failure-session-count", 0);
    assert_non_null(r);
    return r;
}

static const json_t *domain(const json_t *sum, const char *name)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(sum, "domains"), i, d)
    {
        if (!strcmp(json_string_value(json_object_get(d, "policy_domain")), name))
            return d;
    }
    fail_msg("no domain %s", name);
    return NULL;
}

#define INT(o, k) ((long long)json_integer_value(json_object_get((o), (k))))
#define STR(o, k) json_string_value(json_object_get((o), (k)))

static void test_summary(void **state)
{
    (void)state;
    sts_rptsum *s = sts_rptsum_new();
    assert_non_null(s);
    json_t *r1 = report(2, 5, 3, 7), *r2 = report(1, 0, 2, 1);
    assert_int_equal(sts_rptsum_add(s, r1), 0);
    assert_int_equal(sts_rptsum_add(s, r2), 0);
    json_t *sum = sts_rptsum_json(s);
    assert_non_null(sum);
    assert_int_equal(INT(sum, "reports"), 2);
    assert_int_equal(json_array_size(json_object_get(sum, "domains")), 2);
    /* sorted by name */
    assert_string_equal(STR(json_array_get(json_object_get(sum, "domains"), 0), "policy_domain"),
                        "a.test");
    const json_t *a = domain(sum, "a.test");
    /* two policies of a.test in each report: counted in the sessions, the report once */
    assert_int_equal(INT(a, "reports"), 2);
    assert_int_equal(INT(a, "successful_sessions"), 5 + 1 + 0 + 1);
    assert_int_equal(INT(a, "failed_sessions"), 5);
    assert_int_equal(INT(a, "sessions"), 12);
    assert_string_equal(STR(a, "first_seen"), "2030-01-01T00:00:00Z");
    assert_string_equal(STR(a, "last_seen"), "2030-01-02T23:59:59Z");
    const json_t *rt = json_array_get(json_object_get(a, "result_types"), 0);
    assert_string_equal(STR(rt, "result_type"), "certificate-expired");
    assert_int_equal(INT(rt, "failed_sessions"), 5);
    const json_t *mx = json_array_get(json_object_get(a, "mx"), 0);
    assert_string_equal(STR(mx, "receiving_mx_hostname"), "mx1.a.test");
    assert_int_equal(INT(mx, "failed_sessions"), 5);
    assert_string_equal(STR(mx, "first_seen"), "2030-01-01T00:00:00Z");
    assert_int_equal(INT(json_array_get(json_object_get(mx, "result_types"), 0), "failed_sessions"),
                     5);
    const json_t *b = domain(sum, "b.test");
    assert_int_equal(INT(b, "successful_sessions"), 8);
    assert_int_equal(json_array_size(json_object_get(b, "mx")), 0);
    assert_int_equal(json_array_size(json_object_get(b, "result_types")), 0);

    /* The text form says the same. */
    char *text = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&text, &len);
    assert_non_null(fp);
    sts_rptsum_print(sum, fp);
    fclose(fp);
    assert_non_null(strstr(text, "2 reports\n"));
    assert_non_null(strstr(text, "a.test: 12 sessions, 7 successful, 5 failed; 2 reports, "
                                 "2030-01-01T00:00:00Z to 2030-01-02T23:59:59Z\n"));
    assert_non_null(strstr(text, "  MX mx1.a.test: 5 failed, first 2030-01-01T00:00:00Z, "
                                 "last 2030-01-02T23:59:59Z\n"));
    assert_non_null(strstr(text, "    certificate-expired: 5 failed"));
    free(text);
    json_decref(sum);

    /* Not a report: refused, the summary unchanged. */
    json_t *bad = json_pack("{s:[]}", "policies");
    assert_int_equal(sts_rptsum_add(s, bad), STS_EINVAL);
    json_decref(bad);
    sum = sts_rptsum_json(s);
    assert_int_equal(INT(sum, "reports"), 2);
    json_decref(sum);
    json_decref(r1);
    json_decref(r2);
    sts_rptsum_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_summary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
