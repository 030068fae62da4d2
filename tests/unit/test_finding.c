/* test_finding.c - `check`'s findings and verdict from gathered facts (sender/finding.h):
 * one row per finding id, from a healthy deployment with one fact broken, plus the
 * verdict and exit rule and the tables themselves. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "sender/finding.h"

#define NOW 1900000000
#define DAY 86400

static char *mx_pats[] = {"mail.example.test", "backup.example.test"};

/* A healthy deployment: one valid TXT record, an enforce policy naming both MX hosts,
 * both MX with TLS 1.3 and a certificate valid for 90 more days, a TLSRPT record. */
static void healthy(sts_check_facts *f, sts_policy *p, sts_check_mx mx[2])
{
    memset(p, 0, sizeof(*p));
    snprintf(p->version, sizeof(p->version), "STSv1");
    p->mode = STS_MODE_ENFORCE;
    p->max_age = 604800;
    p->nmx = 2;
    p->mx = mx_pats;
    for (int i = 0; i < 2; i++) {
        memset(&mx[i], 0, sizeof(mx[i]));
        mx[i].host = mx_pats[i];
        mx[i].policy_match = 1;
        mx[i].greeted = 1;
        mx[i].starttls_offered = 1;
        mx[i].tls_attempted = mx[i].tls_up = 1;
        mx[i].version = "TLSv1.3";
        mx[i].chain_ok = mx[i].time_ok = mx[i].name_ok = 1;
        mx[i].not_after = NOW + 90 * DAY;
        mx[i].names = mx_pats[i];
    }
    memset(f, 0, sizeof(*f));
    f->domain = "example.test";
    f->txt = STS_CHECK_TXT_FOUND;
    f->policy = p;
    f->mx_known = 1;
    f->mx = mx;
    f->nmx = 2;
    f->tlsrpt = STS_CHECK_TLSRPT_VALID;
    f->warn_days = 14;
    f->now = NOW;
}

typedef void (*breaker)(sts_check_facts *f, sts_policy *p, sts_check_mx *mx);

static void b_none(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p, (void)mx;
}
static void b_txt_absent(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)p, (void)mx;
    f->txt = STS_CHECK_TXT_ABSENT;
    f->policy = NULL;
    mx[0].policy_match = mx[1].policy_match = -1;
}
static void b_txt_invalid(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    b_txt_absent(f, p, mx);
    f->txt = STS_CHECK_TXT_INVALID;
    f->txt_why = "2 records begin with v=STSv1";
}
static void b_txt_tempfail(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    b_txt_absent(f, p, mx);
    f->txt = STS_CHECK_TXT_TEMPFAIL;
}
static void b_fetch(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    b_txt_absent(f, p, mx);
    f->txt = STS_CHECK_TXT_FOUND;
    f->policy_failure = STS_RESULT_STS_POLICY_FETCH_ERROR;
    f->policy_why = "Content-Type text/html, not text/plain";
}
static void b_webpki(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    b_fetch(f, p, mx);
    f->policy_failure = STS_RESULT_STS_WEBPKI_INVALID;
}
static void b_policy_invalid(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    b_fetch(f, p, mx);
    f->policy_failure = STS_RESULT_STS_POLICY_INVALID;
}
static void b_testing(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)mx;
    p->mode = STS_MODE_TESTING;
}
static void b_mode_none(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)mx;
    p->mode = STS_MODE_NONE;
}
static void b_max_age(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)mx;
    p->max_age = 86399;
}
static void b_max_age_day(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)mx;
    p->max_age = 86400;
}
static void b_mx_unused(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)p, (void)mx;
    f->nmx = 1; /* backup.example.test is in the policy but not an MX */
}
static void b_unused_unknown_mx(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)p, (void)mx;
    f->nmx = 0; /* no MX list: nothing to say about patterns */
    f->mx_known = 0;
    f->mx_why = "example.test MX: SERVFAIL";
}
static void b_null_mx(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)p, (void)mx;
    f->nmx = 0;
    f->mx_known = 0;
    f->null_mx = 1;
}
static void b_not_in_policy(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].policy_match = 0; /* and backup.example.test is unused then? no: still an MX */
}
static void b_unreachable(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].greeted = 0;
    mx[1].why = "connection refused";
}
static void b_starttls(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].starttls_offered = 0;
    mx[1].tls_attempted = mx[1].tls_up = 0;
}
static void b_starttls_refused(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].starttls_refused = 1;
    mx[1].tls_attempted = mx[1].tls_up = 0;
    mx[1].why = "454 TLS not available";
}
static void b_handshake(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].tls_up = 0;
    mx[1].why = "sslv3 alert handshake failure";
}
static void b_tls10(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].version = "TLSv1";
}
static void b_tls11(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].version = "TLSv1.1";
}
static void b_tls12(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].version = "TLSv1.2";
}
static void b_name(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].name_ok = 0;
    mx[1].names = "wrong.example.test";
}
static void b_expired(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].time_ok = 0;
    mx[1].not_after = NOW - DAY;
}
static void b_not_yet(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].time_ok = 0;
    mx[1].not_yet_valid = 1;
}
static void b_untrusted(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].chain_ok = 0;
    mx[1].verify_error = "self-signed certificate";
}
static void b_expiring(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[1].not_after = NOW + 5 * DAY;
}
static void b_expiring_edge(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)p;
    mx[1].not_after = NOW + 14 * DAY; /* exactly warn_days left: no warning */
    f->warn_days = 14;
}
static void b_warn_days(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)p, (void)mx;
    f->warn_days = 100; /* 90 days left are now too few */
}
static void b_tlsrpt_missing(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)p, (void)mx;
    f->tlsrpt = STS_CHECK_TLSRPT_MISSING;
}
static void b_tlsrpt_invalid(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)p, (void)mx;
    f->tlsrpt = STS_CHECK_TLSRPT_INVALID;
    f->tlsrpt_why = "rua= missing";
}
static void b_drift_same(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)p, (void)mx;
    f->drift = STS_DRIFT_SAME_ID;
    f->cached_id = f->served_id = "1";
}
static void b_drift_id(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)p, (void)mx;
    f->drift = STS_DRIFT_ID_ONLY;
    f->cached_id = "1";
    f->served_id = "2";
}
static void b_assure(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    (void)f, (void)p;
    mx[0].assure_accepted = 1;
    mx[0].why = "250 2.1.5 Ok";
}
static void b_many(sts_check_facts *f, sts_policy *p, sts_check_mx *mx)
{
    b_testing(f, p, mx);
    b_name(f, p, mx);
    b_expired(f, p, mx);
    b_untrusted(f, p, mx);
}

#define MAXIDS 5
typedef struct row {
    const char *what;
    breaker brk;
    sts_verdict verdict;
    const char *ids[MAXIDS]; /* the findings, in order */
    const char *subject0;    /* the first finding's subject */
    const char *detail_part; /* a substring of its detail */
} row;

static const row rows[] = {
    {"healthy", b_none, STS_VERDICT_PASS, {NULL}, NULL, NULL},
    {"no TXT",
     b_txt_absent,
     STS_VERDICT_WARN,
     {"sts-record-missing"},
     "_mta-sts.example.test",
     "no MTA-STS"},
    {"bad TXT",
     b_txt_invalid,
     STS_VERDICT_FAIL,
     {"sts-record-invalid"},
     "_mta-sts.example.test",
     "2 records"},
    {"TXT SERVFAIL", b_txt_tempfail, STS_VERDICT_FAIL, {"sts-record-invalid"}, NULL, NULL},
    {"fetch",
     b_fetch,
     STS_VERDICT_FAIL,
     {"policy-fetch-failed"},
     "mta-sts.example.test",
     "text/html"},
    {"webpki",
     b_webpki,
     STS_VERDICT_FAIL,
     {"policy-host-cert-invalid"},
     "mta-sts.example.test",
     "new senders get no MTA-STS"},
    {"policy invalid", b_policy_invalid, STS_VERDICT_FAIL, {"policy-invalid"}, NULL, NULL},
    {"testing",
     b_testing,
     STS_VERDICT_WARN,
     {"policy-mode-testing"},
     "mta-sts.example.test",
     "testing"},
    {"mode none", b_mode_none, STS_VERDICT_WARN, {"policy-mode-none"}, NULL, NULL},
    {"max_age", b_max_age, STS_VERDICT_WARN, {"policy-max-age-short"}, NULL, "86399"},
    {"max_age a day", b_max_age_day, STS_VERDICT_PASS, {NULL}, NULL, NULL},
    {"unused pattern",
     b_mx_unused,
     STS_VERDICT_WARN,
     {"policy-mx-unused"},
     "mta-sts.example.test",
     "backup.example.test"},
    {"no MX list",
     b_unused_unknown_mx,
     STS_VERDICT_FAIL,
     {"mx-unreachable"},
     "example.test",
     "SERVFAIL"},
    {"null MX", b_null_mx, STS_VERDICT_PASS, {NULL}, NULL, NULL},
    {"not in policy",
     b_not_in_policy,
     STS_VERDICT_FAIL,
     {"mx-not-in-policy"},
     "backup.example.test",
     NULL},
    {"unreachable",
     b_unreachable,
     STS_VERDICT_FAIL,
     {"mx-unreachable"},
     "backup.example.test",
     "connection refused"},
    {"no STARTTLS", b_starttls, STS_VERDICT_FAIL, {"mx-starttls-missing"}, NULL, "not offered"},
    {"STARTTLS 454", b_starttls_refused, STS_VERDICT_FAIL, {"mx-starttls-missing"}, NULL, "454"},
    {"handshake", b_handshake, STS_VERDICT_FAIL, {"mx-tls-handshake-failed"}, NULL, "alert"},
    {"TLS 1.0", b_tls10, STS_VERDICT_FAIL, {"mx-tls-too-old"}, NULL, "TLSv1,"},
    {"TLS 1.1", b_tls11, STS_VERDICT_FAIL, {"mx-tls-too-old"}, NULL, NULL},
    {"TLS 1.2", b_tls12, STS_VERDICT_PASS, {NULL}, NULL, NULL},
    {"name",
     b_name,
     STS_VERDICT_FAIL,
     {"mx-cert-name-mismatch"},
     "backup.example.test",
     "certificate names wrong.example.test, MX is backup.example.test"},
    {"expired", b_expired, STS_VERDICT_FAIL, {"mx-cert-expired"}, NULL, "expired"},
    {"not yet valid", b_not_yet, STS_VERDICT_FAIL, {"mx-cert-not-yet-valid"}, NULL, NULL},
    {"untrusted", b_untrusted, STS_VERDICT_FAIL, {"mx-cert-untrusted"}, NULL, "self-signed"},
    {"expiring", b_expiring, STS_VERDICT_WARN, {"mx-cert-expiring"}, NULL, "5.0 days"},
    {"expiring edge", b_expiring_edge, STS_VERDICT_PASS, {NULL}, NULL, NULL},
    {"warn-days 100",
     b_warn_days,
     STS_VERDICT_WARN,
     {"mx-cert-expiring", "mx-cert-expiring"},
     "mail.example.test",
     NULL},
    {"TLSRPT missing",
     b_tlsrpt_missing,
     STS_VERDICT_WARN,
     {"tlsrpt-missing"},
     "_smtp._tls.example.test",
     NULL},
    {"TLSRPT invalid", b_tlsrpt_invalid, STS_VERDICT_WARN, {"tlsrpt-invalid"}, NULL, "rua"},
    {"drift same id",
     b_drift_same,
     STS_VERDICT_FAIL,
     {"policy-drift-same-id"},
     "_mta-sts.example.test",
     NULL},
    {"drift id only", b_drift_id, STS_VERDICT_WARN, {"policy-drift-id-only"}, NULL, "from 1 to 2"},
    {"assure accepted",
     b_assure,
     STS_VERDICT_FAIL,
     {"assure-tls-accepted"},
     "mail.example.test",
     "in the clear"},
    {"warn and fail",
     b_many,
     STS_VERDICT_FAIL,
     {"policy-mode-testing", "mx-cert-name-mismatch", "mx-cert-expired", "mx-cert-untrusted"},
     NULL,
     NULL},
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]); r++) {
        const row *w = &rows[r];
        sts_check_facts f;
        sts_policy p;
        sts_check_mx mx[2];
        healthy(&f, &p, mx);
        w->brk(&f, &p, mx);
        sts_findings out;
        sts_finding_judge(&f, &out);
        size_t n = 0;
        while (n < MAXIDS && w->ids[n])
            n++;
        if (out.n != n || out.verdict != w->verdict) {
            print_error("row '%s': %zu findings (want %zu), verdict %s (want %s)\n", w->what, out.n,
                        n, sts_verdict_name(out.verdict), sts_verdict_name(w->verdict));
            for (size_t i = 0; i < out.n; i++)
                print_error("  %s %s: %s\n", sts_finding_name(out.items[i].id),
                            out.items[i].subject, out.items[i].detail);
            fail();
        }
        for (size_t i = 0; i < n; i++)
            assert_string_equal(sts_finding_name(out.items[i].id), w->ids[i]);
        if (w->subject0)
            assert_string_equal(out.items[0].subject, w->subject0);
        if (w->detail_part && !strstr(out.items[0].detail, w->detail_part)) {
            print_error("row '%s': detail '%s' lacks '%s'\n", w->what, out.items[0].detail,
                        w->detail_part);
            fail();
        }
    }
}

/* Every id has a row above (the table and the tests cannot drift apart). */
static void test_every_id_covered(void **state)
{
    (void)state;
    for (int id = 0; id < STS_FINDING_COUNT; id++) {
        const char *name = sts_finding_name((sts_finding_id)id);
        assert_non_null(name);
        int seen = 0;
        for (size_t r = 0; r < sizeof(rows) / sizeof(rows[0]) && !seen; r++)
            for (size_t i = 0; i < MAXIDS && rows[r].ids[i]; i++)
                seen |= !strcmp(rows[r].ids[i], name);
        if (!seen) {
            print_error("finding %s has no row\n", name);
            fail();
        }
        sts_finding_id back;
        assert_int_equal(sts_finding_parse(name, &back), 0);
        assert_int_equal(back, id);
    }
    sts_finding_id x;
    assert_int_equal(sts_finding_parse("no-such-finding", &x), -1);
    assert_null(sts_finding_name(STS_FINDING_COUNT));
}

/* The contract's severities (verdict-contract.md). */
static void test_severities(void **state)
{
    (void)state;
    static const char *const warns[] = {
        "sts-record-missing",   "policy-mode-testing", "policy-mode-none",
        "policy-max-age-short", "policy-mx-unused",    "mx-cert-expiring",
        "tlsrpt-missing",       "tlsrpt-invalid",      "policy-drift-id-only"};
    for (int id = 0; id < STS_FINDING_COUNT; id++) {
        int warn = 0;
        for (size_t i = 0; i < sizeof(warns) / sizeof(warns[0]); i++)
            warn |= !strcmp(warns[i], sts_finding_name((sts_finding_id)id));
        assert_int_equal(sts_finding_severity((sts_finding_id)id),
                         warn ? STS_VERDICT_WARN : STS_VERDICT_FAIL);
    }
}

static void test_hints(void **state)
{
    (void)state;
    char h[300];
    sts_finding_hint(STS_FINDING_MX_CERT_NAME_MISMATCH, "mail.example.test", h, sizeof(h));
    assert_string_equal(h, "reissue the certificate for mail.example.test with that name as a "
                           "DNS SAN");
    sts_finding_hint(STS_FINDING_POLICY_DRIFT_SAME_ID, "_mta-sts.example.test", h, sizeof(h));
    assert_non_null(strstr(h, "bump the TXT id"));
    for (int id = 0; id < STS_FINDING_COUNT; id++) {
        sts_finding_hint((sts_finding_id)id, "SUBJ", h, sizeof(h));
        assert_non_null(strstr(h, "SUBJ")); /* every hint names what to fix */
        assert_null(strstr(h, "%"));        /* and has no format left */
        assert_true(strlen(h) > 20);
    }
}

static void test_verdict_exit(void **state)
{
    (void)state;
    assert_int_equal(sts_verdict_exit(STS_VERDICT_PASS), 0);
    assert_int_equal(sts_verdict_exit(STS_VERDICT_WARN), 1);
    assert_int_equal(sts_verdict_exit(STS_VERDICT_FAIL), 2);
    assert_int_equal(sts_finding_verdict(NULL, 0), STS_VERDICT_PASS);
    sts_finding a[2] = {{.id = STS_FINDING_TLSRPT_MISSING}, {.id = STS_FINDING_MX_CERT_EXPIRED}};
    assert_int_equal(sts_finding_verdict(a, 1), STS_VERDICT_WARN);
    assert_int_equal(sts_finding_verdict(a, 2), STS_VERDICT_FAIL);
    assert_string_equal(sts_verdict_name(STS_VERDICT_WARN), "warn");
    assert_string_equal(sts_drift_name(STS_DRIFT_SAME_ID), "policy-changed-same-id");
    assert_string_equal(sts_drift_name(STS_DRIFT_ID_ONLY), "id-changed-same-policy");
    assert_string_equal(sts_would_name(sts_would_from_outcome(STS_OUTCOME_DELIVERED)), "deliver");
    assert_string_equal(sts_would_name(sts_would_from_outcome(STS_OUTCOME_DEFERRED)), "defer");
    assert_string_equal(sts_would_name(sts_would_from_outcome(STS_OUTCOME_FAILED)), "fail");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),         cmocka_unit_test(test_every_id_covered),
        cmocka_unit_test(test_severities),   cmocka_unit_test(test_hints),
        cmocka_unit_test(test_verdict_exit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
