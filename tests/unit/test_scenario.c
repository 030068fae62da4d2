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
    "sender: {require_tls: true, dns_timeout: 1.5}\n"
    "expect:\n"
    "  enforce: {outcome: deferred, failures: [starttls-not-supported], received: 0,\n"
    "            policy_abandoned: true}\n"
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
    assert_true(s->sender.dns_timeout == 1.5);
    assert_int_equal(s->modes.n, 2);
    const sts_scn_expect *e = sts_scenario_expect(s, "enforce");
    assert_non_null(e);
    assert_true(e->outcome_set);
    assert_int_equal(e->outcome, STS_OUTCOME_DEFERRED);
    assert_int_equal(e->received, 0);
    assert_int_equal(e->exit_status, -1);
    assert_int_equal(e->policy_abandoned, 1);
    assert_int_equal(e->policy_fetched, -1);
    assert_true(e->failures_set);
    assert_int_equal(e->failures.n, 1);
    e = sts_scenario_expect(s, "testing");
    assert_int_equal(e->policy_abandoned, -1);
    assert_true(e->failures_set);
    assert_int_equal(e->failures.n, 0);
    assert_true(e->tls_set);
    assert_int_equal(e->tls, STS_DELIVERY_TLS_NONE);
    assert_false(e->policy_source_set);
    assert_int_equal(e->received, -1);
    assert_true(e->delivered_to_set);
    assert_null(sts_scenario_expect(s, "none"));
    sts_scenario_free(s);
}

static const char KNOBS[] =
    "name: k\n"
    "about: every knob\n"
    "refs: [x]\n"
    "domain: example.test\n"
    "policy:\n"
    "  mode: enforce\n"
    "  redirect: https://elsewhere.example.test/x\n"
    "  headers: {X-A: b}\n"
    "  size: 4096\n"
    "  chunked: true\n"
    "  delay: 2.5\n"
    "  drip: 0.05\n"
    "  cut_after: 40\n"
    "  tls_versions: {min: \"1.2\", max: \"1.3\"}\n"
    "mx:\n"
    "  mail.example.test:\n"
    "    inject_after_starttls: \"250 injected\\r\\n\"\n"
    "    tls_versions: {min: 1.0, max: \"1.1\"}\n"
    "    handshake: abort\n"
    "    greeting: \"421 4.3.2 busy\"\n"
    "    replies: {mail: \"451-a\\n451 b\\r\\n\", dot: \"550 5.7.1 no\"}\n"
    "    delay: {greeting: 2.5, rcpt: 1}\n"
    "    disconnect_after: data\n"
    "    ehlo_keywords: [SIZE 1000, PIPELINING]\n"
    "    cert: {chain: missing_intermediate, names: ['*.example.test']}\n"
    "dns_faults:\n"
    "  - {name: _mta-sts, type: txt, fault: delay, delay: 0.5}\n"
    "  - {name: '@', fault: wrong_id}\n"
    "modes: [enforce, none]\n"
    "steps:\n"
    "  - name: one\n"
    "    expect: {enforce: {outcome: delivered}, none: {}}\n"
    "  - name: two\n"
    "    advance: 25h\n"
    "    dns: ''\n"
    "    policy: {absent: true}\n"
    "    mx: {mail.example.test: {starttls_reply: \"454 4.7.0 TLS not available\"}}\n"
    "    dns_faults: []\n"
    "    expect: {enforce: {outcome: deferred}, none: {}}\n";

static void test_knobs(void **state)
{
    (void)state;
    char err[512] = "";
    sts_scenario *s = sts_scenario_parse(KNOBS, strlen(KNOBS), "k.yaml", err, sizeof(err));
    if (!s)
        fail_msg("%s", err);
    const sts_scn_policy *p = &s->policy;
    assert_string_equal(p->redirect, "https://elsewhere.example.test/x");
    assert_int_equal(p->status, 301); /* the default with a redirect */
    assert_int_equal(p->headers.n, 2);
    assert_string_equal(p->headers.v[0], "X-A");
    assert_int_equal(p->size, 4096);
    assert_true(p->chunked);
    assert_true(p->delay == 2.5 && p->drip == 0.05);
    assert_int_equal(p->cut_after, 40);
    assert_int_equal(p->tls.min, STS_TLS_VERSION_1_2);
    assert_int_equal(p->tls.max, STS_TLS_VERSION_1_3);
    const sts_scn_mx *m = &s->mx[0];
    assert_null(m->replies[STS_SCN_STAGE_STARTTLS]);
    assert_string_equal(m->inject_after_starttls, "250 injected\r\n");
    assert_int_equal(m->tls.min, STS_TLS_VERSION_1_0);
    assert_int_equal(m->tls.max, STS_TLS_VERSION_1_1);
    assert_true(m->handshake_abort);
    assert_string_equal(m->replies[STS_SCN_STAGE_GREETING], "421 4.3.2 busy\r\n");
    assert_string_equal(m->replies[STS_SCN_STAGE_MAIL], "451-a\r\n451 b\r\n");
    assert_string_equal(m->replies[STS_SCN_STAGE_DOT], "550 5.7.1 no\r\n");
    assert_null(m->replies[STS_SCN_STAGE_RCPT]);
    assert_true(m->delay[STS_SCN_STAGE_GREETING] == 2.5 && m->delay[STS_SCN_STAGE_RCPT] == 1);
    assert_int_equal(m->disconnect_after, STS_SCN_STAGE_DATA);
    assert_int_equal(m->ehlo_keywords.n, 2);
    assert_int_equal(m->cert.chain, STS_SCN_CHAIN_MISSING);
    assert_string_equal(m->cert.names.v[0], "*.example.test");
    assert_int_equal(s->ndns_faults, 2);
    assert_string_equal(s->dns_faults[0].type, "TXT");
    assert_int_equal(s->dns_faults[0].fault, STS_SCN_DNS_DELAY);
    assert_string_equal(s->dns_faults[1].type, "ANY");
    assert_int_equal(s->dns_faults[1].fault, STS_SCN_DNS_WRONG_ID);
    assert_int_equal(s->nexpect, 0);
    assert_int_equal(s->nsteps, 2);
    assert_int_equal(s->steps[0].advance, 0);
    assert_false(s->steps[0].policy_set);
    assert_null(s->steps[0].dns);
    assert_int_equal(s->steps[1].advance, 25 * 3600);
    assert_string_equal(s->steps[1].dns, "");
    assert_true(s->steps[1].policy_set);
    assert_false(s->steps[1].policy.present);
    assert_int_equal(s->steps[1].nmx, 1);
    assert_true(s->steps[1].mx[0].starttls);
    assert_string_equal(s->steps[1].mx[0].replies[STS_SCN_STAGE_STARTTLS],
                        "454 4.7.0 TLS not available\r\n");
    assert_int_equal(s->steps[1].mx[0].disconnect_after, -1);
    assert_true(s->steps[1].dns_faults_set);
    assert_int_equal(s->steps[1].ndns_faults, 0);
    assert_int_equal(sts_scenario_step_expect(s, 1, "enforce")->outcome, STS_OUTCOME_DEFERRED);
    assert_null(sts_scenario_step_expect(s, 2, "enforce"));
    assert_null(sts_scenario_expect(s, "enforce"));
    assert_string_equal(sts_scn_stage_name(STS_SCN_STAGE_DOT), "dot");
    assert_null(sts_scn_stage_name(STS_SCN_NSTAGES));
    assert_string_equal(sts_scn_dns_fault_name(STS_SCN_DNS_WRONG_ID), "wrong_id");
    sts_scenario_free(s);
}

#define HEAD "name: t\nabout: a\nrefs: [x]\ndomain: d.test\n"
#define EXP "expect: {enforce: {}}\n"

static const struct {
    const char *text;
    const char *err; /* expected message, after "f.yaml:" */
} BAD[] = {
    {HEAD EXP "mx:\n  m.d.test: {starttls_reply: \"ok\"}\n",
     "7:30: 'starttls_reply' line 1 must start with a reply code 200-599"},
    {HEAD EXP "mx:\n  m.d.test: {replies: {mail: \"451 a\\r\\n451 b\"}}\n",
     "7:30: 'mail' line 1: ' ' after the code; RFC 5321 4.2.1 wants 'ddd-'"},
    {HEAD EXP "mx:\n  m.d.test: {replies: {mail: \"451-a\\r\\n452 b\"}}\n",
     "7:30: 'mail' line 2: every line of a reply has the same code"},
    {HEAD EXP "mx:\n  m.d.test: {replies: {helo: \"250 ok\"}}\n",
     "7:24: unknown key 'helo' in replies"},
    {HEAD EXP "mx:\n  m.d.test: {greeting: \"421 x\", replies: {greeting: \"421 y\"}}\n",
     "7:43: the greeting reply is given twice"},
    {HEAD EXP "mx:\n  m.d.test: {delay: {mail: -1}}\n",
     "7:28: 'mail' must be a number of seconds from 0 to 600, not '-1'"},
    {HEAD EXP "mx:\n  m.d.test: {disconnect_after: never}\n",
     "7:32: 'disconnect_after' must be one of greeting"},
    {HEAD EXP "mx:\n  m.d.test: {tls_versions: {min: \"1.3\", max: \"1.2\"}}\n",
     "7:28: tls_versions: min is above max"},
    {HEAD EXP "mx:\n  m.d.test: {tls_versions: {min: \"2.0\"}}\n",
     "7:34: 'min' must be one of \"1.0\", \"1.1\", \"1.2\", \"1.3\""},
    {HEAD EXP "mx:\n  m.d.test: {require_tls: true, starttls: false}\n",
     "7:13: require_tls needs starttls"},
    {HEAD EXP "mx:\n  m.d.test: {handshake: maybe}\n", "7:25: 'handshake' must be normal or abort"},
    {HEAD EXP "mx:\n  m.d.test: {ehlo_keywords: [STARTTLS]}\n",
     "7:29: STARTTLS is governed by 'starttls', not ehlo_keywords"},
    {HEAD EXP "mx:\n  m.d.test: {cert: {chain: long}}\n",
     "7:28: 'chain' must be direct, intermediate or missing_intermediate"},
    {HEAD EXP "mx:\n  m.d.test: {}\n  M.d.test: {}\n", "8:3: mx host 'M.d.test' is listed twice"},
    {HEAD EXP "policy: {mode: enforce, headers: {\"a b\": c}}\n",
     "6:35: 'a b' is not an HTTP field name (character ' ')"},
    {HEAD EXP "policy: {mode: enforce, drip: fast}\n",
     "6:31: 'drip' must be a number of seconds from 0 to 10, not 'fast'"},
    {HEAD EXP "policy: {body: x, size: 10}\n",
     "6:9: 'size' pads a policy built from mode/mx/max_age, not a verbatim body"},
    {HEAD EXP "policy: {absent: true, mode: enforce}\n",
     "6:9: a policy with 'absent: true' has no other keys"},
    {HEAD EXP "policy: {mode: enforce, handshake: maybe}\n",
     "6:36: 'handshake' must be normal or abort"},
    {HEAD EXP "policy: {mode: enforce, handshake: [abort]}\n",
     "6:36: 'handshake' must be normal or abort"},
    {HEAD EXP "policy: {mode: enforce, handshake: true}\n",
     "6:36: 'handshake' must be normal or abort"},
    {HEAD EXP "policy: {mode: enforce, handshak: abort}\n",
     "6:25: unknown key 'handshak' in policy (allowed: mode, mx, max_age, body, status, "
     "content_type, cert, redirect, headers, size, chunked, delay, drip, cut_after, "
     "tls_versions, https, handshake, keep_alive, absent)"},
    {HEAD EXP "policy: {mode: enforce, https: false, handshake: abort}\n",
     "6:9: 'handshake: abort' needs the HTTPS listener that 'https: false' turns off"},
    {HEAD "steps: [{name: a, policy: {mode: enforce, handshake: Abort}, expect: {enforce: {}}}]\n",
     "5:54: 'handshake' must be normal or abort"},
    {HEAD EXP "dns_faults: [{name: x, fault: slow}]\n",
     "6:31: 'fault' must be one of servfail, refused"},
    {HEAD EXP "dns_faults: [{name: x, fault: delay}]\n",
     "6:14: fault 'delay' needs 'delay' (seconds, above 0)"},
    {HEAD EXP "dns_faults: [{fault: servfail}]\n", "6:14: a dns fault needs 'name'"},
    {HEAD EXP "dns_faults: [{name: x, fault: timeout, delay: 1}]\n",
     "6:14: fault 'timeout' never answers: 'delay' makes no sense with it"},
    {HEAD "expect: {enforce: {policy_abandoned: maybe}}\n",
     "5:38: 'policy_abandoned' must be true or false"},
    {HEAD EXP "steps: [{name: a, expect: {enforce: {}}}]\n",
     "5:9: a scenario with 'steps' has its 'expect' in each step"},
    {HEAD "steps: []\n", "5:8: 'steps' must be a non-empty list of steps"},
    {HEAD "steps: [{name: a}]\n", "5:9: step 'a' needs 'expect'"},
    {HEAD "steps: [{expect: {enforce: {}}}]\n", "5:9: a step needs 'name'"},
    {HEAD "steps: [{name: a, advance: 3w, expect: {enforce: {}}}]\n",
     "5:28: 'advance' must be a duration such as 90s, 10m, 25h, 2d or seconds, not '3w'"},
    {HEAD "steps: [{name: a, expect: {enforce: {}}}, {name: a, expect: {enforce: {}}}]\n",
     "5:43: two steps are named 'a'"},
    {HEAD "modes: [enforce, none]\nsteps: [{name: a, expect: {enforce: {}}}]\n",
     "6:8: step 'a': no expectation for mode 'none' listed in modes"},
    {HEAD "steps: [{name: a, bogus: 1, expect: {enforce: {}}}]\n",
     "5:19: unknown key 'bogus' in a step"},
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
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "sender: {dns_timeout: 0}\n",
     "6:23: sender 'dns_timeout' must be at least 0.1 seconds"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "sender: {dns_timeout: 3601}\n",
     "6:23: 'dns_timeout' must be a number of seconds from 0 to 3600, not '3601'"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "sender: {dns_timeout: '2'}\n",
     "6:23: 'dns_timeout' must be a number of seconds"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "sender: {dns_timout: 2}\n",
     "6:10: unknown key 'dns_timout' in sender"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {}}\n"
     "sender: {assure_tls: true, require_tls: true}\n",
     "6:9: sender 'assure_tls' sends in the clear and applies no policy"},
    {"name: t\nabout: a\nrefs: [x]\ndomain: d.test\nexpect: {enforce: {assuredness: 50}}\n",
     "5:33: 'assuredness' must be 0 or 100"},
    {"name:\nabout: a\n", "1:6: 'name' must be a string, not empty"},
};

/* ---- tlsrpt: the section, report steps and expect.tlsrpt ---- */

static void test_tlsrpt_valid(void **state)
{
    (void)state;
    static const char text[] =
        HEAD "tlsrpt:\n"
             "  https: {host: Reports.D.test, fault: status-503, cert: {expired: true}}\n"
             "  mailto: {address: tlsrpt@d.test}\n"
             "  submitter: reporter.test\n"
             "  selector: s1\n"
             "steps:\n"
             "  - {name: day, expect: {enforce: {outcome: delivered}}}\n"
             "  - name: deliver\n"
             "    advance: 1d\n"
             "    report: deliver\n"
             "    tlsrpt: {record: ['v=TLSRPTv1; rua=mailto:a@d.test', 'v=TLSRPTv1;'], "
             "selector: s1}\n"
             "    expect:\n"
             "      enforce:\n"
             "        exit: 75\n"
             "        tlsrpt: {reports: 2, valid: true, via: [https, mailto], dkim: pass,\n"
             "                 policies: [{policy_type: sts, policy_domain: d.test, successful: 1,"
             "\n                             failed: 0, result_types: []}]}\n";
    char err[512];
    sts_scenario *s = sts_scenario_parse(text, strlen(text), "f.yaml", err, sizeof(err));
    if (!s)
        print_error("%s\n", err);
    assert_non_null(s);
    assert_true(s->tlsrpt.present && s->tlsrpt.https_set);
    assert_string_equal(s->tlsrpt.https_host, "reports.d.test");
    assert_string_equal(s->tlsrpt.https_path, "/tlsrpt");
    assert_int_equal(s->tlsrpt.https_fault, STS_COLLECTOR_503);
    assert_true(s->tlsrpt.https_cert.expired);
    assert_string_equal(s->tlsrpt.mailto, "tlsrpt@d.test");
    assert_string_equal(s->tlsrpt_submitter, "reporter.test");
    assert_string_equal(s->tlsrpt_selector, "s1");
    assert_true(s->tlsrpt_any);
    assert_int_equal(s->nsteps, 2);
    assert_false(s->steps[0].report);
    assert_true(s->steps[1].report && s->steps[1].tlsrpt_set);
    assert_int_equal(s->steps[1].tlsrpt.record.n, 2);
    assert_string_equal(s->steps[1].tlsrpt.record.v[1], "v=TLSRPTv1;");
    const sts_scn_expect *e = sts_scenario_step_expect(s, 1, "enforce");
    assert_non_null(e);
    assert_int_equal(e->exit_status, 75);
    assert_true(e->tlsrpt.set);
    assert_int_equal(e->tlsrpt.reports, 2);
    assert_int_equal(e->tlsrpt.valid, 1);
    assert_int_equal(e->tlsrpt.via.n, 2);
    assert_int_equal(e->tlsrpt.dkim, STS_DKIM_PASS);
    assert_int_equal(e->tlsrpt.npolicies, 1);
    assert_string_equal(e->tlsrpt.policies[0].policy_type, "sts");
    assert_int_equal(e->tlsrpt.policies[0].successful, 1);
    assert_int_equal(e->tlsrpt.policies[0].failed, 0);
    assert_true(e->tlsrpt.policies[0].result_types_set);
    assert_int_equal(e->tlsrpt.policies[0].result_types.n, 0);
    sts_scenario_free(s);

    /* The defaults: no submitter or selector given. */
    static const char plain[] = HEAD EXP "tlsrpt: {mailto: {address: x@sub.d.test}}\n";
    s = sts_scenario_parse(plain, strlen(plain), "f.yaml", err, sizeof(err));
    assert_non_null(s);
    assert_string_equal(s->tlsrpt_submitter, STS_SCN_TLSRPT_SUBMITTER);
    assert_string_equal(s->tlsrpt_selector, STS_SCN_TLSRPT_SELECTOR);
    assert_false(s->tlsrpt.https_set);
    sts_scenario_free(s);
}

#define RSTEP "steps: [{name: r, report: deliver, expect: {enforce: "

static const struct {
    const char *text;
    const char *err;
} TLSRPT_BAD[] = {
    {HEAD EXP "tlsrpt: {submitter: r.test}\n",
     "6:9: tlsrpt needs 'https', 'mailto' or a verbatim 'record'"},
    {HEAD EXP "tlsrpt: {https: {path: /x}}\n", "6:17: tlsrpt https needs 'host'"},
    {HEAD EXP "tlsrpt: {https: {host: r.d.test, path: x}}\n", "6:40: 'path' must start with '/'"},
    {HEAD EXP "tlsrpt: {https: {host: r.d.test, path: /a b}}\n",
     "6:40: 'path' must be printable ASCII without spaces"},
    {HEAD EXP "tlsrpt: {https: {host: r.d.test, fault: slowly}}\n",
     "6:41: 'fault' must be one of none, status-500, status-503, refused, slow, not 'slowly'"},
    {HEAD EXP "tlsrpt: {https: {host: 'r d'}}\n", "6:24: 'r d' is not a host name"},
    {HEAD EXP "tlsrpt: {https: {host: mta-sts.d.test}}\n",
     "6:1: tlsrpt https host mta-sts.d.test is the policy host"},
    {HEAD EXP "mx: {mail.d.test: {}}\ntlsrpt: {https: {host: mail.d.test}}\n",
     "7:1: tlsrpt https host mail.d.test is an MX host"},
    {HEAD EXP "tlsrpt: {https: {host: r.d.test, port: 1}}\n",
     "6:34: unknown key 'port' in tlsrpt https (allowed: host, path, fault, cert)"},
    {HEAD EXP "tlsrpt: {mailto: {address: nobody}}\n",
     "6:28: 'address' must be one address local@domain, not 'nobody'"},
    {HEAD EXP "tlsrpt: {mailto: {address: a@x.test}}\n",
     "6:1: tlsrpt mailto 'a@x.test': the mailbox must lie in the world's domain d.test"},
    {HEAD EXP "tlsrpt: {mailto: {}}\n", "6:18: tlsrpt mailto needs 'address'"},
    {HEAD EXP "tlsrpt: {record: []}\n", "6:18: 'record' must name at least one record"},
    {HEAD EXP "tlsrpt: {record: [a, b, a]}\n",
     "6:18: 'record' lists 'a' twice: a DNS server sends a record once (RFC 2181 5)"},
    {HEAD EXP "tlsrpt: {record: \"v=TLSRPTv1;\\trua=x\"}\n",
     "6:18: 'record' must be printable ASCII (character 0x09)"},
    {HEAD EXP "tlsrpt: {record: x, selector: 'a b'}\n", "6:31: 'selector' must be a DNS label"},
    {HEAD EXP "tlsrpt: {record: x, rua: y}\n",
     "6:21: unknown key 'rua' in tlsrpt (allowed: record, https, mailto, submitter, selector)"},
    {HEAD "tlsrpt: {record: x, submitter: a.test}\n"
          "steps: [{name: a, tlsrpt: {record: y, submitter: b.test}, expect: {enforce: {}}}]\n",
     "6:1: tlsrpt submitter b.test differs from a.test given before"},
    {HEAD "steps: [{name: a, report: send, expect: {enforce: {}}}]\n",
     "5:27: 'report' must be deliver"},
    {HEAD RSTEP "{outcome: delivered}}}]\n",
     "5:1: step 'r' runs the report delivery, no sender: expect only exit, tlsrpt and why"},
    {HEAD "steps: [{name: a, expect: {enforce: {tlsrpt: {reports: 1}}}}]\n",
     "5:1: step 'a': 'tlsrpt' is expected of a step with 'report: deliver'"},
    {HEAD "expect: {enforce: {tlsrpt: {reports: 1}}}\n",
     "5:1: 'tlsrpt' is expected of a step with 'report: deliver'"},
    {HEAD RSTEP "{tlsrpt: {reports: -1}}}}]\n",
     "5:73: 'reports' must be between 0 and 1000, not -1"},
    {HEAD RSTEP "{tlsrpt: {via: [smtp]}}}}]\n", "5:69: 'via' lists https and mailto, not 'smtp'"},
    {HEAD RSTEP "{tlsrpt: {dkim: ok}}}}]\n",
     "5:70: 'dkim' must be one of pass, fail, none, not 'ok'"},
    {HEAD RSTEP "{tlsrpt: {policies: {policy_type: sts}}}}}]\n",
     "5:74: 'policies' must be a list of policies, not a mapping"},
    {HEAD RSTEP "{tlsrpt: {policies: [{policy_type: dane}]}}}}]\n",
     "5:89: 'dane' is not an RFC 8460 policy type"},
    {HEAD RSTEP "{tlsrpt: {policies: [{result_types: [cert-expired]}]}}}}]\n",
     "5:90: 'cert-expired' is not an RFC 8460 result type"},
    {HEAD RSTEP "{tlsrpt: {policies: [{failed: -2}]}}}}]\n",
     "5:84: 'failed' must be between 0 and 1000000, not -2"},
    {HEAD RSTEP "{tlsrpt: {policies: [{sessions: 1}]}}}}]\n",
     "5:76: unknown key 'sessions' in an expected policy"},
    {HEAD RSTEP "{tlsrpt: {count: 1}}}}]\n", "5:64: unknown key 'count' in expect tlsrpt"},
};

static void test_tlsrpt_errors(void **state)
{
    (void)state;
    int bad = 0;
    for (size_t i = 0; i < sizeof(TLSRPT_BAD) / sizeof(TLSRPT_BAD[0]); i++) {
        char err[512], want[512];
        sts_scenario *s = sts_scenario_parse(TLSRPT_BAD[i].text, strlen(TLSRPT_BAD[i].text),
                                             "f.yaml", err, sizeof(err));
        if (s) {
            print_error("tlsrpt case %zu: accepted:\n%s\n", i, TLSRPT_BAD[i].text);
            sts_scenario_free(s);
            bad++;
            continue;
        }
        snprintf(want, sizeof(want), "f.yaml:%s", TLSRPT_BAD[i].err);
        if (strncmp(err, want, strlen(want))) {
            print_error("tlsrpt case %zu:\n  got:  %s\n  want: %s\n", i, err, want);
            bad++;
        }
    }
    assert_int_equal(bad, 0);
}

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

/* policy.handshake at the top and in a step: the value each one parses to. */
static const struct {
    const char *text;
    int top;  /* s->policy.handshake_abort */
    int step; /* s->steps[0].policy.handshake_abort, -1 = no steps */
} HANDSHAKE[] = {
    {HEAD EXP "policy: {mode: enforce}\n", 0, -1},
    {HEAD EXP "policy: {mode: enforce, handshake: normal}\n", 0, -1},
    {HEAD EXP "policy: {mode: enforce, handshake: abort}\n", 1, -1},
    {HEAD EXP "policy: {mode: enforce, https: true, handshake: abort}\n", 1, -1},
    {HEAD "policy: {mode: enforce}\n"
          "steps: [{name: a, policy: {mode: enforce, handshake: abort}, expect: {enforce: {}}}]\n",
     0, 1},
    {HEAD "policy: {mode: enforce, handshake: abort}\n"
          "steps: [{name: a, policy: {mode: enforce}, expect: {enforce: {}}}]\n",
     1, 0},
    {HEAD "policy: {mode: enforce, handshake: abort}\n"
          "steps: [{name: a, policy: {mode: enforce, handshake: normal}, expect: {enforce: {}}}]\n",
     1, 0},
};

static void test_policy_handshake(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(HANDSHAKE) / sizeof(HANDSHAKE[0]); i++) {
        char err[512] = "";
        sts_scenario *s = sts_scenario_parse(HANDSHAKE[i].text, strlen(HANDSHAKE[i].text), "h.yaml",
                                             err, sizeof(err));
        if (!s)
            fail_msg("case %zu: %s", i, err);
        assert_int_equal(s->policy.handshake_abort, HANDSHAKE[i].top);
        if (HANDSHAKE[i].step < 0) {
            assert_int_equal(s->nsteps, 0);
        } else {
            assert_int_equal(s->nsteps, 1);
            assert_true(s->steps[0].policy_set);
            assert_int_equal(s->steps[0].policy.handshake_abort, HANDSHAKE[i].step);
        }
        sts_scenario_free(s);
    }
}

/* sts_scenario_waits: which scripted faults keep a sender waiting. */
static const struct {
    const char *text;
    int waits;
} WAITS[] = {
    {HEAD EXP "policy: {mode: enforce}\n", 0},
    {HEAD EXP "policy: {mode: enforce, drip: 0.02}\n", 1},
    {HEAD EXP "policy: {mode: enforce, delay: 1}\n", 1},
    {HEAD EXP "mx:\n  m.d.test: {delay: {greeting: 1.5}}\n", 1},
    {HEAD EXP "mx:\n  m.d.test: {delay: {data: 0.5}}\n", 1},
    {HEAD EXP "mx:\n  m.d.test: {disconnect_after: ehlo}\n", 0},
    {HEAD EXP "dns_faults: [{name: '@', type: MX, fault: timeout}]\n", 1},
    {HEAD EXP "dns_faults: [{name: '@', type: MX, fault: delay, delay: 1.5}]\n", 1},
    {HEAD EXP "dns_faults: [{name: '@', type: MX, fault: servfail, delay: 0.5}]\n", 1},
    {HEAD EXP "dns_faults: [{name: '@', type: MX, fault: servfail}]\n", 0},
    {HEAD "policy: {mode: enforce}\n"
          "steps: [{name: a, expect: {enforce: {}}},\n"
          "        {name: b, policy: {mode: enforce, drip: 0.01}, expect: {enforce: {}}}]\n",
     1},
    {HEAD "steps: [{name: a, expect: {enforce: {}}},\n"
          "        {name: b, dns_faults: [{name: '@', type: TXT, fault: timeout}],\n"
          "         expect: {enforce: {}}}]\n",
     1},
    {HEAD "steps: [{name: a, expect: {enforce: {}}},\n"
          "        {name: b, mx: {m.d.test: {delay: {rcpt: 2}}}, expect: {enforce: {}}}]\n",
     1},
    {HEAD "steps: [{name: a, expect: {enforce: {}}}, {name: b, advance: 1d, expect: "
          "{enforce: {}}}]\n",
     0},
};

static void test_waits(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(WAITS) / sizeof(WAITS[0]); i++) {
        char err[512] = "";
        sts_scenario *s =
            sts_scenario_parse(WAITS[i].text, strlen(WAITS[i].text), "w.yaml", err, sizeof(err));
        if (!s)
            fail_msg("case %zu: %s", i, err);
        if (sts_scenario_waits(s) != WAITS[i].waits)
            fail_msg("case %zu: waits %d, want %d", i, sts_scenario_waits(s), WAITS[i].waits);
        sts_scenario_free(s);
    }
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

/* refs: a cited section of an RFC with a table (common/rfcref.c; its lookups are
 * tests/unit/test_rfcref.c) must exist, else the load fails naming the file, the line
 * and column of the entry, and the bad ref; a section of an RFC whose sections are not
 * known loads. */
static void test_refs(void **state)
{
    (void)state;
    const char *text = "name: t\nabout: a\nrefs: [RFC 5321 5.1, RFC 5321 4.9]\ndomain: d.test\n"
                       "expect: {enforce: {}}\n";
    char err[512];
    assert_null(sts_scenario_parse(text, strlen(text), "f.yaml", err, sizeof(err)));
    assert_string_equal(err, "f.yaml:3:22: refs: 'RFC 5321 4.9': RFC 5321 has no section 4.9");
    text = "name: t\nabout: a\nrefs:\n  - RFC 5321 4.2.1\n  - RFC 5321 4.2.6\ndomain: d.test\n"
           "expect: {enforce: {}}\n";
    assert_null(sts_scenario_parse(text, strlen(text), "f.yaml", err, sizeof(err)));
    assert_string_equal(err, "f.yaml:5:5: refs: 'RFC 5321 4.2.6': RFC 5321 has no section 4.2.6");
    text = "name: t\nabout: a\nrefs: [RFC 8461 4.2, RFC 8460 4.3.2.9]\ndomain: d.test\n"
           "expect: {enforce: {}}\n";
    assert_null(sts_scenario_parse(text, strlen(text), "f.yaml", err, sizeof(err)));
    assert_string_equal(err,
                        "f.yaml:3:22: refs: 'RFC 8460 4.3.2.9': RFC 8460 has no section 4.3.2.9");
    /* A section of an RFC whose sections are not known does not stop the load. */
    text = "name: t\nabout: a\nrefs: [RFC 7672 2.2, RFC 6125 6.4.3]\ndomain: d.test\n"
           "expect: {enforce: {}}\n";
    sts_scenario *s = sts_scenario_parse(text, strlen(text), "f.yaml", err, sizeof(err));
    if (!s)
        fail_msg("%s", err);
    assert_int_equal(s->refs.n, 2);
    assert_string_equal(s->refs.v[1], "RFC 6125 6.4.3");
    sts_scenario_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_tlsrpt_valid),
        cmocka_unit_test(test_tlsrpt_errors),
        cmocka_unit_test(test_refs),
        cmocka_unit_test(test_knobs),
        cmocka_unit_test(test_policy_handshake),
        cmocka_unit_test(test_subst),
        cmocka_unit_test(test_waits),
        cmocka_unit_test(test_bundled_scenarios_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
