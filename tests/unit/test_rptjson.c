/* test_rptjson.c - the RFC 8460 section 4 report: builder, strict validator, RFC 3339
 * times; the RFC's own example report validates and each single-field mutation of it
 * is caught with the right finding. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/rptjson.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* The RFC 8460 example report (tests/data/rfc8460-example.json), parsed. */
static json_t *rfc_example(void)
{
    const char *src = getenv("STSTEST_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/data/rfc8460-example.json", src ? src : ".");
    json_error_t e;
    json_t *j = json_load_file(path, JSON_REJECT_DUPLICATES, &e);
    if (!j)
        fail_msg("%s: %s (line %d)", path, e.text, e.line);
    return j;
}

static const sts_rpt_finding *find(const sts_rpt_findings *f, const char *path,
                                   sts_rpt_severity sev)
{
    for (size_t i = 0; i < f->n; i++)
        if (!strcmp(f->items[i].path, path) && f->items[i].severity == sev)
            return &f->items[i];
    return NULL;
}

static void dump(const sts_rpt_findings *f)
{
    for (size_t i = 0; i < f->n; i++)
        fprintf(stderr, "  %s %s: %s\n", sts_rpt_severity_name(f->items[i].severity),
                f->items[i].path, f->items[i].message);
}

static void test_rfc_example_validates(void **state)
{
    (void)state;
    json_t *j = rfc_example();
    sts_rpt_findings f;
    sts_rpt_findings_init(&f);
    int rc = sts_rpt_validate(j, &f);
    if (rc)
        dump(&f);
    assert_int_equal(rc, 0);
    assert_int_equal(f.nerrors, 0);
    /* The one remark: the example's mx-host is a string where 4.4 defines a list. */
    assert_int_equal(f.nwarnings, 1);
    assert_non_null(find(&f, "$.policies[0].policy.mx-host", STS_RPT_WARNING));
    sts_rpt_findings_free(&f);
    /* As a list it is clean. */
    json_t *pol = json_object_get(json_array_get(json_object_get(j, "policies"), 0), "policy");
    json_object_set_new(pol, "mx-host", json_pack("[s]", "*.mail.company-y.example"));
    sts_rpt_findings_init(&f);
    assert_int_equal(sts_rpt_validate(j, &f), 0);
    assert_int_equal(f.n, 0);
    sts_rpt_findings_free(&f);
    json_decref(j);
}

/* Walk "a/b/0/c" from root; *parent and *key (or *index) name the last step. */
static json_t *walk(json_t *root, const char *path, json_t **parent, char *key, size_t keylen,
                    long *index)
{
    char buf[256];
    snprintf(buf, sizeof(buf), "%s", path);
    json_t *cur = root, *par = NULL;
    char *save = NULL;
    for (char *tok = strtok_r(buf, "/", &save); tok; tok = strtok_r(NULL, "/", &save)) {
        par = cur;
        if (json_is_array(cur)) {
            *index = strtol(tok, NULL, 10);
            cur = json_array_get(cur, (size_t)*index);
        } else {
            *index = -1;
            snprintf(key, keylen, "%s", tok);
            cur = json_object_get(cur, tok);
        }
    }
    *parent = par;
    return cur;
}

struct mutation {
    const char *where; /* "policies/0/summary/total-failure-session-count"; "" = root */
    const char *value; /* JSON text to put there; NULL deletes the field */
    const char *path;  /* the finding's JSON path */
    const char *msg;   /* a part of its message */
};

static const struct mutation mutations[] = {
    {"organization-name", NULL, "$.organization-name", "required field missing"},
    {"organization-name", "5", "$.organization-name", "must be a non-empty string, not an integer"},
    {"organization-name", "\"\"", "$.organization-name", "must not be empty"},
    {"date-range", NULL, "$.date-range", "required field missing"},
    {"date-range", "\"2016-04-01\"", "$.date-range", "must be an object, not a string"},
    {"date-range/start-datetime", "\"2016-04-01 00:00:00Z\"", "$.date-range.start-datetime",
     "not an RFC 3339 date-time"},
    {"date-range/start-datetime", "\"2016-02-30T00:00:00Z\"", "$.date-range.start-datetime",
     "not an RFC 3339 date-time"},
    {"date-range/start-datetime", "\"2016-04-01T00:00:00\"", "$.date-range.start-datetime",
     "not an RFC 3339 date-time"},
    {"date-range/start-datetime", "1459468800", "$.date-range.start-datetime",
     "must be an RFC 3339 date-time string, not an integer"},
    {"date-range/end-datetime", NULL, "$.date-range.end-datetime", "required field missing"},
    {"date-range/end-datetime", "\"2016-04-02T23:59:59Z\"", "$.date-range", "spans 172799"},
    {"date-range/end-datetime", "\"2016-04-01T12:00:00Z\"", "$.date-range", "one UTC day"},
    {"date-range/end-datetime", "\"2016-03-31T23:59:59Z\"", "$.date-range.end-datetime",
     "must be after start-datetime"},
    {"contact-info", NULL, "$.contact-info", "required field missing"},
    {"contact-info", "null", "$.contact-info", "not null"},
    {"report-id", NULL, "$.report-id", "required field missing"},
    {"report-id", "[]", "$.report-id", "not an array"},
    {"policies", NULL, "$.policies", "required field missing"},
    {"policies", "{}", "$.policies", "must be an array, not an object"},
    {"policies", "[]", "$.policies", "names no policy"},
    {"policies/0", "\"sts\"", "$.policies[0]", "must be an object, not a string"},
    {"policies/0/policy", NULL, "$.policies[0].policy", "required field missing"},
    {"policies/0/policy/policy-type", NULL, "$.policies[0].policy.policy-type",
     "required field missing"},
    {"policies/0/policy/policy-type", "\"dane\"", "$.policies[0].policy.policy-type",
     "not an RFC 8460 4.4 policy type"},
    {"policies/0/policy/policy-type", "\"STS\"", "$.policies[0].policy.policy-type",
     "not an RFC 8460 4.4 policy type"},
    {"policies/0/policy/policy-type", "true", "$.policies[0].policy.policy-type", "not a boolean"},
    {"policies/0/policy/policy-domain", NULL, "$.policies[0].policy.policy-domain",
     "required field missing"},
    {"policies/0/policy/policy-domain", "\"\"", "$.policies[0].policy.policy-domain",
     "must not be empty"},
    {"policies/0/policy/policy-string", "\"version: STSv1\"", "$.policies[0].policy.policy-string",
     "must be an array of strings, not a string"},
    {"policies/0/policy/policy-string", "[\"version: STSv1\", 1]",
     "$.policies[0].policy.policy-string[1]", "must be a string, not an integer"},
    {"policies/0/policy/mx-host", "7", "$.policies[0].policy.mx-host",
     "must be an array of strings, not an integer"},
    {"policies/0/summary", NULL, "$.policies[0].summary", "required field missing"},
    {"policies/0/summary/total-successful-session-count", NULL,
     "$.policies[0].summary.total-successful-session-count", "required field missing"},
    {"policies/0/summary/total-successful-session-count", "-1",
     "$.policies[0].summary.total-successful-session-count", "non-negative integer, not -1"},
    {"policies/0/summary/total-failure-session-count", "303.0",
     "$.policies[0].summary.total-failure-session-count",
     "not a number with a fraction or exponent"},
    {"policies/0/summary/total-failure-session-count", "\"303\"",
     "$.policies[0].summary.total-failure-session-count", "not a string"},
    {"policies/0/summary/total-failure-session-count", "302",
     "$.policies[0].summary.total-failure-session-count",
     "is 302, but the failure-details count 303"},
    {"policies/0/failure-details", "{}", "$.policies[0].failure-details",
     "must be an array, not an object"},
    {"policies/0/failure-details/1", "\"x\"", "$.policies[0].failure-details[1]",
     "must be an object, not a string"},
    {"policies/0/failure-details/0/result-type", NULL,
     "$.policies[0].failure-details[0].result-type", "required field missing"},
    {"policies/0/failure-details/0/result-type", "\"certificate-expiry\"",
     "$.policies[0].failure-details[0].result-type", "not an RFC 8460 4.3 result type"},
    {"policies/0/failure-details/0/result-type", "\"\"",
     "$.policies[0].failure-details[0].result-type", "must not be empty"},
    {"policies/0/failure-details/0/failed-session-count", NULL,
     "$.policies[0].failure-details[0].failed-session-count", "required field missing"},
    {"policies/0/failure-details/1/failed-session-count", "-200",
     "$.policies[0].failure-details[1].failed-session-count", "non-negative integer, not -200"},
    {"policies/0/failure-details/1/failed-session-count", "2e2",
     "$.policies[0].failure-details[1].failed-session-count", "not a number with a fraction"},
    {"policies/0/failure-details/1/receiving-ip", "\"203.0.113\"",
     "$.policies[0].failure-details[1].receiving-ip", "not an IPv4 or IPv6 address"},
    {"policies/0/failure-details/0/sending-mta-ip", "\"mx1.mail.company-y.example\"",
     "$.policies[0].failure-details[0].sending-mta-ip", "not an IPv4 or IPv6 address"},
    {"policies/0/failure-details/0/receiving-mx-hostname", "[]",
     "$.policies[0].failure-details[0].receiving-mx-hostname", "must be a string, not an array"},
    {"policies/0/failure-details/1/additional-information", "{}",
     "$.policies[0].failure-details[1].additional-information", "must be a string"},
    {"policies/0/failure-details/2/failure-reason-code", "42",
     "$.policies[0].failure-details[2].failure-reason-code", "must be a string, not an integer"},
    {"policies/0/failure-details/2/receiving-mx-helo", "false",
     "$.policies[0].failure-details[2].receiving-mx-helo", "must be a string, not a boolean"},
    {"", "[]", "$", "must be an object, not an array"},
};

static json_t *mutate(const struct mutation *m)
{
    json_t *root = rfc_example();
    if (!m->where[0]) {
        json_decref(root);
        json_error_t e;
        return json_loads(m->value, JSON_DECODE_ANY, &e);
    }
    json_t *parent;
    char key[128] = "";
    long index = -1;
    json_t *target = walk(root, m->where, &parent, key, sizeof(key), &index);
    assert_non_null(parent);
    if (!m->value) {
        assert_non_null(target);
        assert_int_equal(json_object_del(parent, key), 0);
        return root;
    }
    json_error_t e;
    json_t *v = json_loads(m->value, JSON_DECODE_ANY, &e);
    assert_non_null(v);
    if (index >= 0)
        assert_int_equal(json_array_set_new(parent, (size_t)index, v), 0);
    else
        assert_int_equal(json_object_set_new(parent, key, v), 0);
    return root;
}

static void test_mutations(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(mutations); i++) {
        const struct mutation *m = &mutations[i];
        json_t *root = mutate(m);
        sts_rpt_findings f;
        sts_rpt_findings_init(&f);
        int rc = sts_rpt_validate(root, &f);
        const sts_rpt_finding *hit = find(&f, m->path, STS_RPT_ERROR);
        if (rc != STS_ESYNTAX || !hit || !strstr(hit->message, m->msg)) {
            fprintf(stderr, "mutation %zu (%s = %s): rc %d, wanted an error at %s with '%s'\n", i,
                    m->where, m->value ? m->value : "(deleted)", rc, m->path, m->msg);
            dump(&f);
            fail();
        }
        assert_int_equal(hit->line, 0);
        sts_rpt_findings_free(&f);
        json_decref(root);
    }
}

/* Remarks that are not errors: the report stays valid. */
static void test_warnings(void **state)
{
    (void)state;
    static const struct mutation warn[] = {
        {"policies/0/policy/x-extra", "1", "$.policies[0].policy.x-extra", "unknown field"},
        {"comment", "\"hi\"", "$.comment", "unknown field"},
        {"date-range/start-datetime", "\"2016-04-01T06:00:00+06:00\"", "$.date-range", NULL},
        {"policies/0/failure-details/0/sending-mta-ip", NULL,
         "$.policies[0].failure-details[0].sending-mta-ip", "field missing"},
        {"policies/0/policy/policy-string", NULL, "$.policies[0].policy.policy-string",
         "without the policy it applied"},
    };
    for (size_t i = 0; i < N(warn); i++) {
        json_t *root = mutate(&warn[i]);
        sts_rpt_findings f;
        sts_rpt_findings_init(&f);
        int rc = sts_rpt_validate(root, &f);
        if (rc != 0)
            dump(&f);
        assert_int_equal(rc, 0);
        if (warn[i].msg) {
            const sts_rpt_finding *hit = find(&f, warn[i].path, STS_RPT_WARNING);
            assert_non_null(hit);
            assert_non_null(strstr(hit->message, warn[i].msg));
        }
        sts_rpt_findings_free(&f);
        json_decref(root);
    }
    /* A day that starts at 06:00 UTC is one day long, but not a UTC day. */
    static const struct mutation shifted = {"date-range/start-datetime",
                                            "\"2016-03-31T23:59:59-06:00\"", NULL, NULL};
    json_t *root = mutate(&shifted);
    json_object_set_new(json_object_get(root, "date-range"), "end-datetime",
                        json_string("2016-04-02T05:59:59Z"));
    sts_rpt_findings f;
    sts_rpt_findings_init(&f);
    assert_int_equal(sts_rpt_validate(root, &f), 0);
    assert_non_null(find(&f, "$.date-range.start-datetime", STS_RPT_WARNING));
    sts_rpt_findings_free(&f);
    json_decref(root);
}

/* Findings in the JSON text itself carry line and column. */
static void test_text(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int line, column;
        const char *msg;
    } bad[] = {
        {"{\n  \"organization-name\": \"x\",,\n}", 2, 28, "not valid JSON"},
        {"{\"report-id\": \"a\",\n \"report-id\": \"b\"}", 2, 12, "duplicate object key"},
        {"", 1, 0, "not valid JSON"},
        {"{\"a\": \"\\u0000\"}", 1, 14, "not valid JSON"},
    };
    for (size_t i = 0; i < N(bad); i++) {
        sts_rpt_findings f;
        sts_rpt_findings_init(&f);
        json_t *root = (json_t *)1;
        assert_int_equal(sts_rpt_validate_text(bad[i].text, strlen(bad[i].text), &f, &root),
                         STS_ESYNTAX);
        assert_null(root);
        assert_int_equal(f.n, 1);
        if (f.items[0].line != bad[i].line || f.items[0].column != bad[i].column ||
            !strstr(f.items[0].message, bad[i].msg)) {
            fprintf(stderr, "case %zu: %d:%d %s\n", i, f.items[0].line, f.items[0].column,
                    f.items[0].message);
            fail();
        }
        sts_rpt_findings_free(&f);
    }
    /* A valid text hands back its object. */
    const char *src = getenv("STSTEST_SOURCE_DIR");
    char path[4096];
    snprintf(path, sizeof(path), "%s/tests/data/rfc8460-example.json", src ? src : ".");
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    char text[8192];
    size_t n = fread(text, 1, sizeof(text), fp);
    fclose(fp);
    json_t *root = NULL;
    assert_int_equal(sts_rpt_validate_text(text, n, NULL, &root), 0);
    assert_non_null(root);
    json_decref(root);
}

static void test_times(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        long long t; /* -1: invalid */
    } cases[] = {
        {"2016-04-01T00:00:00Z", 1459468800},
        {"2016-04-01t00:00:00z", 1459468800},
        {"2016-04-01T23:59:59Z", 1459555199},
        {"2016-04-01T00:00:00.123Z", 1459468800},
        {"2016-04-01T02:00:00+02:00", 1459468800},
        {"2016-03-31T22:00:00-02:00", 1459468800},
        {"2016-02-29T00:00:00Z", 1456704000},
        {"2016-12-31T23:59:60Z", 1483228799},
        {"2015-02-29T00:00:00Z", -1},
        {"2016-13-01T00:00:00Z", -1},
        {"2016-04-31T00:00:00Z", -1},
        {"2016-04-01T24:00:00Z", -1},
        {"2016-04-01T00:60:00Z", -1},
        {"2016-04-01T00:00:00", -1},
        {"2016-04-01T00:00:00.Z", -1},
        {"2016-04-01T00:00:00+0200", -1},
        {"2016-04-01T00:00:00Z ", -1},
        {"2016-04-01 00:00:00Z", -1},
        {"16-04-01T00:00:00Z", -1},
        {"", -1},
    };
    for (size_t i = 0; i < N(cases); i++) {
        time_t t = 0;
        int rc = sts_rpt_parse_time(cases[i].s, &t);
        if (cases[i].t < 0) {
            assert_int_equal(rc, STS_ESYNTAX);
        } else {
            assert_int_equal(rc, 0);
            assert_int_equal((long long)t, cases[i].t);
        }
    }
    assert_int_equal(sts_rpt_parse_time(NULL, &(time_t){0}), STS_ESYNTAX);
    char buf[32];
    assert_string_equal(sts_rpt_time(1459468800, buf, sizeof(buf)), "2016-04-01T00:00:00Z");
}

/* The builder writes what the validator accepts, field for field. */
static void test_build(void **state)
{
    (void)state;
    static const char *const lines[] = {"version: STSv1", "mode: enforce", "mx: mail.example.test",
                                        "max_age: 86400"};
    static const char *const mx[] = {"mail.example.test"};
    sts_rpt_failure fails[] = {
        {STS_RESULT_CERTIFICATE_HOST_MISMATCH, "127.0.0.1", "mail.example.test", NULL, "127.1.2.10",
         3, NULL, "hostname mismatch"},
        {STS_RESULT_STARTTLS_NOT_SUPPORTED, NULL, "mx2.example.test", "mx2.example.test", NULL, 1,
         "https://example.test/why", NULL},
    };
    sts_rpt_policy pols[] = {
        {STS_POLICY_TYPE_STS, lines, N(lines), "example.test", mx, N(mx), 5, 4, fails, N(fails)},
        {STS_POLICY_TYPE_NO_POLICY_FOUND, NULL, 0, "other.test", NULL, 0, 2, 0, NULL, 0},
    };
    sts_rpt_report r = {"ststest",  "postmaster@sender.test", "2030-01-01_example.test",
                        1893456000, 1893456000 + 86399,       pols,
                        N(pols)};
    json_t *j = sts_rpt_build(&r);
    assert_non_null(j);
    char *text = json_dumps(j, JSON_PRESERVE_ORDER | JSON_COMPACT);
    assert_non_null(text);
    /* Keys in the RFC's order, optional fields left out. */
    assert_non_null(strstr(
        text, "{\"organization-name\":\"ststest\",\"date-range\":{\"start-datetime\":\"2030-01-"
              "01T00:00:00Z\",\"end-datetime\":\"2030-01-01T23:59:59Z\"},\"contact-info\":"
              "\"postmaster@sender.test\",\"report-id\":\"2030-01-01_example.test\","));
    assert_non_null(strstr(text, "{\"policy\":{\"policy-type\":\"no-policy-found\",\"policy-"
                                 "domain\":\"other.test\"},\"summary\":{\"total-successful-"
                                 "session-count\":2,\"total-failure-session-count\":0}}"));
    assert_non_null(strstr(text, "{\"result-type\":\"certificate-host-mismatch\",\"sending-mta-"
                                 "ip\":\"127.0.0.1\",\"receiving-mx-hostname\":\"mail.example."
                                 "test\",\"receiving-ip\":\"127.1.2.10\",\"failed-session-"
                                 "count\":3,\"failure-reason-code\":\"hostname mismatch\"}"));
    sts_rpt_findings f;
    sts_rpt_findings_init(&f);
    int rc = sts_rpt_validate(j, &f);
    /* Only the detail without sending-mta-ip is remarked upon. */
    if (rc || f.n != 1)
        dump(&f);
    assert_int_equal(rc, 0);
    assert_int_equal(f.n, 1);
    assert_non_null(find(&f, "$.policies[0].failure-details[1].sending-mta-ip", STS_RPT_WARNING));
    sts_rpt_findings_free(&f);
    free(text);
    json_decref(j);

    /* What the validator would refuse is never built. */
    sts_rpt_report bad = r;
    bad.organization_name = "";
    assert_null(sts_rpt_build(&bad));
    bad = r;
    bad.end = bad.start;
    assert_null(sts_rpt_build(&bad));
    bad = r;
    bad.report_id = NULL;
    assert_null(sts_rpt_build(&bad));
    pols[0].failed = -1;
    assert_null(sts_rpt_build(&r));
    pols[0].failed = 4;
    fails[1].result_type = STS_RESULT_NONE;
    assert_null(sts_rpt_build(&r));
    fails[1].result_type = STS_RESULT_STARTTLS_NOT_SUPPORTED;
    pols[1].policy_domain = "";
    assert_null(sts_rpt_build(&r));
    pols[1].policy_domain = "other.test";
    pols[0].failed = 3; /* the details count 4 */
    assert_null(sts_rpt_build(&r));
    pols[0].failed = 4;
    fails[0].receiving_ip = "127.1.2";
    assert_null(sts_rpt_build(&r));
    fails[0].receiving_ip = "127.1.2.10";
    bad = r;
    bad.end = bad.start + 2 * 86400;
    assert_null(sts_rpt_build(&bad));
    bad = r;
    bad.npolicies = 0;
    assert_null(sts_rpt_build(&bad));
    j = sts_rpt_build(&r);
    assert_non_null(j);
    json_decref(j);
}

/* The findings list is capped; the verdict is not. */
static void test_cap(void **state)
{
    (void)state;
    json_t *root = rfc_example();
    json_t *fds =
        json_object_get(json_array_get(json_object_get(root, "policies"), 0), "failure-details");
    for (int i = 0; i < 300; i++)
        json_array_append_new(
            fds, json_pack("{s:s,s:i}", "result-type", "nope", "failed-session-count", 0));
    sts_rpt_findings f;
    sts_rpt_findings_init(&f);
    assert_int_equal(sts_rpt_validate(root, &f), STS_ESYNTAX);
    assert_int_equal(f.n, STS_RPT_FINDINGS_MAX);
    assert_true(f.ndropped > 0);
    assert_int_equal(f.nerrors, 300);
    sts_rpt_findings_free(&f);
    assert_int_equal(sts_rpt_validate(root, NULL), STS_ESYNTAX);
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc_example_validates),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_warnings),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_build),
        cmocka_unit_test(test_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
