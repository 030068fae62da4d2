/* test_scenario.c - the scenario loader: valid files and a table of schema errors,
 * each reported as file:line:column with a message naming what is wrong. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/scenario.h"

static const char VALID[] =
    "name: t\n"
    "about: a test\n"
    "refs: [RFC 8461 3.1]\n"
    "domain: Example.TEST.\n"
    "dns: |\n"
    "  @ MX 10 mail\n"
    "policy:\n"
    "  mode: ${mode}\n"
    "  mx: [mail.example.test, '*.example.test']\n"
    "  max_age: 86400\n"
    "mx:\n"
    "  mail.example.test:\n"
    "    starttls: false\n"
    "    cert: {names: [wrong.example.test], expired: true}\n"
    "  mx2.example.test:\n"
    "modes: [enforce, testing]\n"
    "sender: {require_tls: true}\n"
    "expect:\n"
    "  enforce: {outcome: deferred, failures: [starttls-not-supported], received: 0}\n"
    "  testing: {outcome: delivered, tls: none, failures: [], delivered_to: [mail.example.test]}\n";

static void test_valid(void **state)
{
    (void)state;
    char err[512];
    sts_scenario *s = sts_scenario_parse(VALID, strlen(VALID), "v.yaml", err, sizeof(err));
    assert_non_null(s);
    assert_string_equal(s->name, "t");
    assert_string_equal(s->domain, "example.test");
    assert_int_equal(s->dns_line, 6);
    assert_string_equal(s->dns, "@ MX 10 mail\n");
    assert_true(s->policy.present);
    assert_string_equal(s->policy.mode, "${mode}");
    assert_int_equal(s->policy.mx.n, 2);
    assert_string_equal(s->policy.mx.v[1], "*.example.test");
    assert_int_equal(s->policy.max_age, 86400);
    assert_int_equal(s->policy.status, 200);
    assert_int_equal(s->nmx, 2);
    assert_false(s->mx[0].starttls);
    assert_true(s->mx[0].cert.expired);
    assert_string_equal(s->mx[0].cert.names.v[0], "wrong.example.test");
    assert_true(s->mx[1].starttls);
    assert_false(s->mx[1].cert.names_set);
    assert_true(s->sender.require_tls);
    assert_int_equal(s->modes.n, 2);
    const sts_scn_expect *e = sts_scenario_expect(s, "enforce");
    assert_non_null(e);
    assert_string_equal(e->outcome, "deferred");
    assert_int_equal(e->received, 0);
    assert_int_equal(e->exit_status, -1);
    assert_true(e->failures_set);
    assert_int_equal(e->failures.n, 1);
    e = sts_scenario_expect(s, "testing");
    assert_true(e->failures_set);
    assert_int_equal(e->failures.n, 0);
    assert_int_equal(e->received, -1);
    assert_true(e->delivered_to_set);
    assert_null(sts_scenario_expect(s, "none"));
    sts_scenario_free(s);
}

static const struct {
    const char *text;
    const char *err; /* expected message, after "f.yaml:" */
} BAD[] = {
    {"", "f.yaml: empty file: a scenario is a YAML mapping"},
    {"- a\n", "1:1: a scenario file must be a mapping, not a list"},
    {"name: [\n", "2:1: YAML error: did not find expected node content"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\nbogus: 1\n",
     "6:1: unknown key 'bogus' in the scenario"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\n", "1:1: missing required key 'expect'"},
    {"about: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n",
     "1:1: missing required key 'name'"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {outcome: maybe}}\n",
     "5:29: 'outcome' must be one of delivered, deferred, failed, not 'maybe'"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {failures: [oops]}}\n",
     "5:30: 'oops' is not an RFC 8460 result type"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {received: lots}}\n",
     "5:30: 'received' must be an integer, not 'lots'"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nmodes: [enforce, strict]\n"
     "expect: {enforce: {}}\n",
     "5:8: modes must be enforce, testing or none, not 'strict'"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nmodes: [enforce, testing]\n"
     "expect: {enforce: {}}\n",
     "6:9: no expectation for mode 'testing' listed in modes"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect:\n  enforce: {}\n  none: {}\n",
     "7:3: expectation for mode 'none' which is not in modes"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "mx:\n  mail.d.test: {starttls: maybe}\n",
     "7:27: 'starttls' must be true or false"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "mx:\n  mail.d.test: {cert: {nmaes: [x]}}\n",
     "7:24: unknown key 'nmaes' in cert"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "mx:\n  bad host!: {}\n",
     "7:3: 'bad host!' is not a host name (character ' ')"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "policy: {mx: [a]}\n",
     "6:9: policy needs 'mode' (or a verbatim 'body')"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "policy: {mode: enforce, status: 9999}\n",
     "6:33: 'status' must be between 100 and 599, not 9999"},
    {"name: t\nname: u\n", "2:1: duplicate key 'name' in a scenario file"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "sender: {mode: strict}\n",
     "6:16: sender 'mode' must be auto, enforce, testing or none"},
    {"name:\nabout: a\n", "1:6: 'name' must be a string, not empty"},
};

static void test_errors(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(BAD) / sizeof(BAD[0]); i++) {
        char err[512], want[512];
        sts_scenario *s =
            sts_scenario_parse(BAD[i].text, strlen(BAD[i].text), "f.yaml", err, sizeof(err));
        if (s) {
            print_error("case %zu: accepted:\n%s\n", i, BAD[i].text);
            sts_scenario_free(s);
            bad++;
            continue;
        }
        if (!strncmp(BAD[i].err, "f.yaml", 6))
            snprintf(want, sizeof(want), "%s", BAD[i].err);
        else
            snprintf(want, sizeof(want), "f.yaml:%s", BAD[i].err);
        if (strncmp(err, want, strlen(want))) {
            print_error("case %zu:\n  got:  %s\n  want: %s\n", i, err, want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

static void test_subst(void **state)
{
    (void)state;
    char *s = sts_scenario_subst("mode: ${mode} and ${mode}!", "testing");
    assert_string_equal(s, "mode: testing and testing!");
    free(s);
    s = sts_scenario_subst("no var", "none");
    assert_string_equal(s, "no var");
    free(s);
    assert_null(sts_scenario_subst(NULL, "x"));
}

static void test_bundled_scenarios_load(void **state)
{
    (void)state;
    /* The source tree: from ctest's environment, else from this file's own path. */
    const char *src = getenv("STSTEST_SOURCE_DIR");
    char path[4096], err[512];
    if (src)
        snprintf(path, sizeof(path), "%s/scenarios/valid-enforce.yaml", src);
    else
        snprintf(path, sizeof(path), "%.*s/../../scenarios/valid-enforce.yaml",
                 (int)(strrchr(__FILE__, '/') - __FILE__), __FILE__);
    sts_scenario *s = sts_scenario_load(path, err, sizeof(err));
    if (!s)
        fail_msg("%s", err);
    assert_int_equal(s->modes.n, 3);
    sts_scenario_free(s);
    assert_null(sts_scenario_load("/nonexistent/x.yaml", err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/x.yaml: cannot open"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_subst),
        cmocka_unit_test(test_bundled_scenarios_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
