/*
 * test_report.c - runner/report: XML escaping (a table), the JUnit XML of a passed, a
 * failed and an errored case (counts, escaped attributes and text, <failure> with the
 * differences and the actual facts, <error>, <system-out>), the JSON report's shape,
 * and that a report is written whole or not at all.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "runner/report.h"
#include "tests/unit/unit_fixture.h"

static char *escaped(const char *s)
{
    char *mem = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&mem, &len);
    assert_non_null(fp);
    sts_report_xml_escape(fp, s);
    assert_int_equal(fclose(fp), 0);
    return mem;
}

static void test_xml_escape(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"", ""},
        {"plain text", "plain text"},
        {"a & b", "a &amp; b"},
        {"<failure>", "&lt;failure&gt;"},
        {"say \"it's\"", "say &quot;it&apos;s&quot;"},
        {"&amp;", "&amp;amp;"}, /* escaped again: the text is text */
        {"tab\tlf\ncr\r", "tab\tlf\ncr\r"},
        {"bell\a esc\x1b nul-less\x01\x1f end", "bell esc nul-less end"}, /* dropped */
        {"\x7f del stays", "\x7f del stays"},
        {"UTF-8 \xc3\xa9t\xc3\xa9", "UTF-8 \xc3\xa9t\xc3\xa9"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char *got = escaped(rows[i].in);
        assert_string_equal(got, rows[i].out);
        free(got);
    }
    char *got = escaped(NULL);
    assert_string_equal(got, "");
    free(got);
}

/* A report folder of its own. */
static char dir[64];

static int setup(void **state)
{
    (void)state;
    return fixture_dir_new(dir, sizeof(dir), "report");
}

static int teardown(void **state)
{
    (void)state;
    return fixture_dir_remove(dir);
}

static size_t count(const char *text, const char *what)
{
    size_t n = 0;
    for (const char *p = text; (p = strstr(p, what)); p++)
        n++;
    return n;
}

/* The folder holds exactly the one report (no temporary file left). */
static void assert_only_file(const char *name)
{
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "test \"$(ls -A '%s')\" = '%s'", dir, name);
    assert_int_equal(system(cmd), 0);
}

static json_t *actual_fail;

static void cases3(sts_report_case c[3])
{
    actual_fail = json_pack("{s:s, s:i}", "outcome", "delivered", "received", 1);
    c[0] = (sts_report_case){.scenario = "valid-enforce",
                             .file = "scenarios/valid-enforce.yaml",
                             .mode = "enforce",
                             .passed = 1,
                             .seconds = 0.25,
                             .transcript = "[000.001] sender: MX <mail> & co\n"};
    c[1] = (sts_report_case){.scenario = "bad-san",
                             .file = "scenarios/bad-san.yaml",
                             .mode = "testing",
                             .passed = 0,
                             .diff = "outcome: expected deferred, got delivered\n"
                                     "received: expected 0, got 1\n",
                             .actual = actual_fail,
                             .exit_status = 0,
                             .seconds = 1.5};
    c[2] = (sts_report_case){.scenario = "a\"quoted'<name>",
                             .file = "x.yaml",
                             .mode = "none",
                             .passed = 0,
                             .error = "world did not start: address in use",
                             .exit_status = 70,
                             .seconds = 0};
}

static void test_junit(void **state)
{
    (void)state;
    sts_report_case c[3];
    cases3(c);
    char path[128];
    snprintf(path, sizeof(path), "%s/junit.xml", dir);
    assert_int_equal(sts_report_junit(path, c, 3, 2.0), 0);
    char *xml = fixture_slurp(path);
    static const char *const has[] = {
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
        "<testsuites name=\"ststest\" tests=\"3\" failures=\"1\" errors=\"1\" time=\"2.000\">",
        "<testsuite name=\"ststest scenarios\" tests=\"3\" failures=\"1\" errors=\"1\" "
        "skipped=\"0\" time=\"2.000\">",
        "<testcase classname=\"valid-enforce\" name=\"enforce\" "
        "file=\"scenarios/valid-enforce.yaml\" time=\"0.250\">\n"
        "      <system-out>[000.001] sender: MX &lt;mail&gt; &amp; co\n</system-out>\n"
        "    </testcase>",
        "<testcase classname=\"bad-san\" name=\"testing\" file=\"scenarios/bad-san.yaml\" "
        "time=\"1.500\">\n      <failure message=\"expectation not met\">outcome: expected "
        "deferred, got delivered\nreceived: expected 0, got 1\nactual: "
        "{&quot;outcome&quot;:&quot;delivered&quot;,&quot;received&quot;:1}</failure>\n"
        "    </testcase>",
        "<testcase classname=\"a&quot;quoted&apos;&lt;name&gt;\" name=\"none\" file=\"x.yaml\" "
        "time=\"0.000\">\n      <error message=\"world did not start: address in use\"/>\n"
        "    </testcase>",
        "  </testsuite>\n</testsuites>\n",
    };
    for (size_t i = 0; i < sizeof(has) / sizeof(has[0]); i++)
        if (!strstr(xml, has[i]))
            fail_msg("JUnit XML lacks:\n%s\n--- in:\n%s", has[i], xml);
    /* One <failure>, one <error>, and <system-out> only where there is a transcript. */
    assert_int_equal(count(xml, "<failure"), 1);
    assert_int_equal(count(xml, "<error"), 1);
    assert_int_equal(count(xml, "<system-out>"), 1);
    assert_int_equal(count(xml, "<testcase "), 3);
    assert_only_file("junit.xml");
    free(xml);
    json_decref(actual_fail);
    unlink(path);
}

static void test_json(void **state)
{
    (void)state;
    sts_report_case c[3];
    cases3(c);
    char path[128];
    snprintf(path, sizeof(path), "%s/report.json", dir);
    assert_int_equal(sts_report_json(path, c, 3, 2.5), 0);
    json_error_t je;
    json_t *doc = json_load_file(path, 0, &je);
    if (!doc)
        fail_msg("report.json: %s", je.text);
    assert_int_equal(json_integer_value(json_object_get(doc, "passed")), 1);
    assert_int_equal(json_integer_value(json_object_get(doc, "failed")), 2);
    assert_true(json_real_value(json_object_get(doc, "seconds")) == 2.5);
    json_t *cases = json_object_get(doc, "cases");
    assert_int_equal(json_array_size(cases), 3);
    /* Each case: exactly these keys. */
    static const char *const keys[] = {"scenario", "file",        "mode",        "passed",
                                       "seconds",  "exit",        "differences", "actual",
                                       "error",    "unsupported", "classified"};
    for (size_t i = 0; i < 3; i++) {
        json_t *o = json_array_get(cases, i);
        assert_int_equal(json_object_size(o), sizeof(keys) / sizeof(keys[0]));
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++)
            assert_non_null(json_object_get(o, keys[k]));
        assert_string_equal(json_string_value(json_object_get(o, "scenario")), c[i].scenario);
        assert_string_equal(json_string_value(json_object_get(o, "mode")), c[i].mode);
        assert_int_equal(json_is_true(json_object_get(o, "passed")), c[i].passed);
        assert_int_equal(json_integer_value(json_object_get(o, "exit")), c[i].exit_status);
    }
    json_t *pass = json_array_get(cases, 0), *fail = json_array_get(cases, 1),
           *err = json_array_get(cases, 2);
    assert_true(json_is_null(json_object_get(pass, "error")));
    assert_true(json_is_null(json_object_get(pass, "actual")));
    assert_int_equal(json_array_size(json_object_get(pass, "differences")), 0);
    /* The differences one string per line, the actual facts as given. */
    json_t *diff = json_object_get(fail, "differences");
    assert_int_equal(json_array_size(diff), 2);
    assert_string_equal(json_string_value(json_array_get(diff, 0)),
                        "outcome: expected deferred, got delivered");
    assert_string_equal(json_string_value(json_array_get(diff, 1)), "received: expected 0, got 1");
    assert_true(json_equal(json_object_get(fail, "actual"), actual_fail));
    assert_string_equal(json_string_value(json_object_get(err, "error")),
                        "world did not start: address in use");
    assert_only_file("report.json");
    json_decref(doc);
    json_decref(actual_fail);
    unlink(path);
}

/* A report that cannot be written: -1 with errno, and nothing left behind. */
static void test_unwritable(void **state)
{
    (void)state;
    sts_report_case c[3];
    cases3(c);
    char path[128];
    snprintf(path, sizeof(path), "%s/no/such/folder/r.xml", dir);
    errno = 0;
    assert_int_equal(sts_report_junit(path, c, 3, 1), -1);
    assert_int_equal(errno, ENOENT);
    errno = 0;
    assert_int_equal(sts_report_json(path, c, 3, 1), -1);
    assert_int_equal(errno, ENOENT);
    assert_only_file("");
    json_decref(actual_fail);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xml_escape),
        cmocka_unit_test_setup_teardown(test_junit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unwritable, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
