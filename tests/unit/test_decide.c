/* test_decide.c - the delivery decisions (sender/decide.h) as tables: effective mode,
 * MX acceptance, every mode x policy-match x STARTTLS x verified combination -> action,
 * outcomes from action lists, exit statuses. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "sender/decide.h"
#include "sender/diag.h"
#include "sender/policy.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))
#define E STS_MODE_ENFORCE
#define T STS_MODE_TESTING
#define NO STS_MODE_NONE
#define AUTO STS_MODE_AUTO

static void test_mode(void **state)
{
    (void)state;
    static const struct {
        int have_policy;
        sts_mode policy_mode, override, want;
    } t[] = {
        {0, E, AUTO, NO}, /* no policy: none, whatever the override says */
        {0, E, E, NO},
        {1, E, AUTO, E},
        {1, T, AUTO, T},
        {1, NO, AUTO, NO},
        {1, E, T, T},
        {1, T, E, E},
        {1, E, NO, NO},
        {1, AUTO, AUTO, NO}, /* a policy without a mode (parsing never gives one) */
    };
    for (size_t i = 0; i < N(t); i++)
        if (sts_decide_mode(t[i].have_policy, t[i].policy_mode, t[i].override) != t[i].want)
            fail_msg("mode row %zu", i);
    assert_string_equal(sts_action_name(STS_ACTION_REFUSED), "refused");
    assert_string_equal(sts_outcome_name(STS_OUTCOME_DEFERRED), "deferred");
}

/* The whole per-MX decision chain for one session: MX acceptance, then TLS. */
typedef struct mx_case {
    sts_mode mode;
    int require_tls;
    int match, offered, handshake, verified;
    sts_result_type result_type; /* of an unverified certificate */
    int want_connect;
    sts_tls_verdict want_verdict;
    sts_result_type want_failure; /* the first failure recorded */
} mx_case;

static const char *rt_name(sts_result_type t)
{
    return t == STS_RESULT_NONE ? "none" : sts_result_type_name(t);
}

static const mx_case mx_cases[] = {
    /* enforce: MX must match; STARTTLS + verified or refused */
    {E, 0, 0, 1, 1, 1, STS_RESULT_NONE, 0, STS_TLSV_REFUSE, STS_RESULT_VALIDATION_FAILURE},
    {E, 0, 1, 1, 1, 1, STS_RESULT_NONE, 1, STS_TLSV_CONTINUE, STS_RESULT_NONE},
    {E, 0, 1, 0, 0, 0, STS_RESULT_NONE, 1, STS_TLSV_REFUSE, STS_RESULT_STARTTLS_NOT_SUPPORTED},
    {E, 0, 1, 1, 0, 0, STS_RESULT_NONE, 1, STS_TLSV_REFUSE, STS_RESULT_VALIDATION_FAILURE},
    {E, 0, 1, 1, 1, 0, STS_RESULT_CERTIFICATE_HOST_MISMATCH, 1, STS_TLSV_REFUSE,
     STS_RESULT_CERTIFICATE_HOST_MISMATCH},
    {E, 0, 1, 1, 1, 0, STS_RESULT_CERTIFICATE_EXPIRED, 1, STS_TLSV_REFUSE,
     STS_RESULT_CERTIFICATE_EXPIRED},
    {E, 0, 1, 1, 1, 0, STS_RESULT_CERTIFICATE_NOT_TRUSTED, 1, STS_TLSV_REFUSE,
     STS_RESULT_CERTIFICATE_NOT_TRUSTED},
    /* testing: connect to anything, deliver, record */
    {T, 0, 0, 1, 1, 1, STS_RESULT_NONE, 1, STS_TLSV_CONTINUE, STS_RESULT_VALIDATION_FAILURE},
    {T, 0, 1, 1, 1, 1, STS_RESULT_NONE, 1, STS_TLSV_CONTINUE, STS_RESULT_NONE},
    {T, 0, 1, 0, 0, 0, STS_RESULT_NONE, 1, STS_TLSV_CONTINUE, STS_RESULT_STARTTLS_NOT_SUPPORTED},
    {T, 0, 1, 1, 0, 0, STS_RESULT_NONE, 1, STS_TLSV_RETRY_PLAIN, STS_RESULT_VALIDATION_FAILURE},
    {T, 0, 1, 1, 1, 0, STS_RESULT_CERTIFICATE_HOST_MISMATCH, 1, STS_TLSV_CONTINUE,
     STS_RESULT_CERTIFICATE_HOST_MISMATCH},
    {T, 0, 0, 1, 1, 0, STS_RESULT_CERTIFICATE_EXPIRED, 1, STS_TLSV_CONTINUE,
     STS_RESULT_VALIDATION_FAILURE},
    /* none: as if no policy */
    {NO, 0, 0, 1, 1, 1, STS_RESULT_NONE, 1, STS_TLSV_CONTINUE, STS_RESULT_NONE},
    {NO, 0, 1, 0, 0, 0, STS_RESULT_NONE, 1, STS_TLSV_CONTINUE, STS_RESULT_STARTTLS_NOT_SUPPORTED},
    {NO, 0, 1, 1, 0, 0, STS_RESULT_NONE, 1, STS_TLSV_RETRY_PLAIN, STS_RESULT_VALIDATION_FAILURE},
    {NO, 0, 1, 1, 1, 0, STS_RESULT_CERTIFICATE_NOT_TRUSTED, 1, STS_TLSV_CONTINUE,
     STS_RESULT_CERTIFICATE_NOT_TRUSTED},
    /* --require-tls makes any mode fail closed */
    {NO, 1, 0, 0, 0, 0, STS_RESULT_NONE, 1, STS_TLSV_REFUSE, STS_RESULT_STARTTLS_NOT_SUPPORTED},
    {NO, 1, 1, 1, 0, 0, STS_RESULT_NONE, 1, STS_TLSV_REFUSE, STS_RESULT_VALIDATION_FAILURE},
    {T, 1, 1, 1, 1, 0, STS_RESULT_CERTIFICATE_EXPIRED, 1, STS_TLSV_REFUSE,
     STS_RESULT_CERTIFICATE_EXPIRED},
    {T, 1, 1, 1, 1, 1, STS_RESULT_NONE, 1, STS_TLSV_CONTINUE, STS_RESULT_NONE},
    {E, 1, 1, 1, 1, 1, STS_RESULT_NONE, 1, STS_TLSV_CONTINUE, STS_RESULT_NONE},
};

static void test_mx_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(mx_cases); i++) {
        const mx_case *c = &mx_cases[i];
        sts_result_type first = STS_RESULT_NONE, f = STS_RESULT_NONE;
        int connect = sts_decide_mx_connect(c->mode, c->match, &f);
        first = f;
        if (connect != c->want_connect)
            fail_msg("mx row %zu: connect %d, want %d", i, connect, c->want_connect);
        sts_tls_verdict v = STS_TLSV_REFUSE;
        if (connect) {
            sts_tls_facts facts = {
                .starttls_offered = c->offered,
                .starttls_code = c->offered ? 220 : 0,
                .handshake_done = c->handshake,
                .verified = c->verified,
                .result_type = c->result_type,
            };
            int req = sts_decide_tls_required(c->mode, c->require_tls);
            v = sts_decide_tls(req, &facts, &f);
            if (first == STS_RESULT_NONE)
                first = f;
        }
        if (v != c->want_verdict)
            fail_msg("mx row %zu: verdict %d, want %d", i, v, c->want_verdict);
        if (first != c->want_failure)
            fail_msg("mx row %zu: failure %s, want %s", i, rt_name(first),
                     rt_name(c->want_failure));
    }
}

static void test_tls_edges(void **state)
{
    (void)state;
    sts_result_type f;
    /* STARTTLS offered but answered 454 (RFC 3207 4). */
    sts_tls_facts refused = {.starttls_offered = 1, .starttls_code = 454};
    assert_int_equal(sts_decide_tls(1, &refused, &f), STS_TLSV_REFUSE);
    assert_int_equal(f, STS_RESULT_STARTTLS_NOT_SUPPORTED);
    assert_int_equal(sts_decide_tls(0, &refused, &f), STS_TLSV_CONTINUE);
    /* Unverified with no result type from the TLS layer: still a failure. */
    sts_tls_facts unknown = {.starttls_offered = 1, .starttls_code = 220, .handshake_done = 1};
    assert_int_equal(sts_decide_tls(1, &unknown, &f), STS_TLSV_REFUSE);
    assert_int_equal(f, STS_RESULT_VALIDATION_FAILURE);
    /* The plaintext retry continues only when TLS is not required. */
    sts_tls_facts retry = {.plain_retry = 1, .starttls_offered = 1};
    assert_int_equal(sts_decide_tls(0, &retry, &f), STS_TLSV_CONTINUE);
    assert_int_equal(sts_decide_tls(1, &retry, &f), STS_TLSV_REFUSE);
    /* Required TLS. */
    assert_true(sts_decide_tls_required(E, 0));
    assert_false(sts_decide_tls_required(T, 0));
    assert_false(sts_decide_tls_required(NO, 0));
    assert_true(sts_decide_tls_required(NO, 1));
}

static void test_reply_actions(void **state)
{
    (void)state;
    assert_int_equal(sts_decide_reply_action(250), STS_ACTION_NONE);
    assert_int_equal(sts_decide_reply_action(354), STS_ACTION_NONE);
    assert_int_equal(sts_decide_reply_action(421), STS_ACTION_TEMPFAIL);
    assert_int_equal(sts_decide_reply_action(452), STS_ACTION_TEMPFAIL);
    assert_int_equal(sts_decide_reply_action(550), STS_ACTION_PERMFAIL);
    assert_int_equal(sts_decide_reply_action(554), STS_ACTION_PERMFAIL);
    /* next MX? */
    assert_false(sts_decide_try_next_mx(STS_ACTION_DELIVERED, 0));
    assert_false(sts_decide_try_next_mx(STS_ACTION_PERMFAIL, 1));
    assert_true(sts_decide_try_next_mx(STS_ACTION_PERMFAIL, 0));
    assert_true(sts_decide_try_next_mx(STS_ACTION_TEMPFAIL, 1));
    assert_true(sts_decide_try_next_mx(STS_ACTION_REFUSED, 0));
}

#define D STS_ACTION_DELIVERED
#define R STS_ACTION_REFUSED
#define TF STS_ACTION_TEMPFAIL
#define PF STS_ACTION_PERMFAIL

typedef struct outcome_case {
    sts_action actions[4];
    size_t n;
    sts_mode mode;
    int require_tls, null_mx, no_such_domain;
    sts_outcome want;
} outcome_case;

static const outcome_case outcome_cases[] = {
    {{D}, 1, E, 0, 0, 0, STS_OUTCOME_DELIVERED},
    {{R, D}, 2, E, 0, 0, 0, STS_OUTCOME_DELIVERED},
    {{TF, R, D}, 3, E, 0, 0, 0, STS_OUTCOME_DELIVERED},
    {{R}, 1, E, 0, 0, 0, STS_OUTCOME_DEFERRED},      /* RFC 8461 5.1 */
    {{R, R}, 2, E, 1, 0, 0, STS_OUTCOME_DEFERRED},   /* enforce wins over require-tls */
    {{R}, 1, NO, 1, 0, 0, STS_OUTCOME_DEFERRED},     /* --require-tls alone */
    {{R}, 1, T, 1, 0, 0, STS_OUTCOME_DEFERRED},
    {{TF}, 1, NO, 0, 0, 0, STS_OUTCOME_DEFERRED},
    {{TF, TF}, 2, E, 0, 0, 0, STS_OUTCOME_DEFERRED},
    {{PF}, 1, NO, 0, 0, 0, STS_OUTCOME_FAILED},
    {{TF, PF}, 2, T, 0, 0, 0, STS_OUTCOME_FAILED},
    {{R, TF}, 2, E, 0, 0, 0, STS_OUTCOME_DEFERRED},
    {{0}, 0, NO, 0, 1, 0, STS_OUTCOME_FAILED},       /* RFC 7505 null MX */
    {{0}, 0, E, 0, 1, 0, STS_OUTCOME_FAILED},
    {{0}, 0, NO, 0, 0, 1, STS_OUTCOME_FAILED},       /* no such domain */
    {{0}, 0, NO, 0, 0, 0, STS_OUTCOME_DEFERRED},     /* DNS trouble: nothing tried */
};

static void test_outcome_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < N(outcome_cases); i++) {
        const outcome_case *c = &outcome_cases[i];
        sts_outcome_facts f = {
            .actions = c->actions,
            .nactions = c->n,
            .mode = c->mode,
            .require_tls = c->require_tls,
            .null_mx = c->null_mx,
            .no_such_domain = c->no_such_domain,
        };
        sts_outcome o = sts_decide_outcome(&f);
        if (o != c->want)
            fail_msg("outcome row %zu: %s, want %s", i, sts_outcome_name(o),
                     sts_outcome_name(c->want));
    }
}

static void test_exit(void **state)
{
    (void)state;
    sts_outcome all_ok[] = {STS_OUTCOME_DELIVERED, STS_OUTCOME_DELIVERED};
    sts_outcome some_def[] = {STS_OUTCOME_DELIVERED, STS_OUTCOME_DEFERRED};
    sts_outcome some_fail[] = {STS_OUTCOME_DEFERRED, STS_OUTCOME_FAILED, STS_OUTCOME_DELIVERED};
    assert_int_equal(sts_decide_exit(all_ok, 2), STS_EXIT_OK);
    assert_int_equal(sts_decide_exit(some_def, 2), STS_EXIT_TEMPFAIL);
    assert_int_equal(sts_decide_exit(some_fail, 3), STS_EXIT_UNAVAILABLE);
    assert_int_equal(sts_decide_exit(NULL, 0), STS_EXIT_OK);
}

/* RFC 8461 3.2: "In the case of Internationalized Domain Names, the "mx" value MUST
 * specify the Punycode-encoded A-label to match against, and not the Unicode-encoded
 * U-label." MX names are compared as A-labels: a U-label on either side never matches,
 * and a policy with a U-label mx is invalid. */
static void test_idn_a_labels(void **state)
{
    (void)state;
    static const char policy_text[] = "version: STSv1\nmode: enforce\n"
                                      "mx: xn--mil-via.example\nmx: *.xn--bcher-kva.example\n"
                                      "max_age: 86400\n";
    sts_policy p;
    sts_diags d;
    sts_diags_init(&d);
    assert_int_equal(sts_policy_parse(policy_text, sizeof(policy_text) - 1, &p, &d), 0);
    static const struct {
        const char *host;
        int ascii, match;
    } t[] = {
        {"xn--mil-via.example", 1, 1},       /* the A-label of "mäil.example" */
        {"XN--MIL-VIA.example", 1, 1},       /* A-labels compare case-insensitively */
        {"xn--mil-via.example.", 1, 1},      /* root dot from DNS */
        {"m\xc3\xa4il.example", 0, 0},       /* its U-label: never compared */
        {"mx.xn--bcher-kva.example", 1, 1},  /* wildcard over an A-label domain */
        {"mx.b\xc3\xbc" "cher.example", 0, 0},  /* U-label domain under the wildcard */
        {"mil.example", 1, 0},
        {"", 0, 0},
        {"a b.example", 0, 0},
    };
    for (size_t i = 0; i < N(t); i++) {
        int ascii = sts_decide_mx_host_ascii(t[i].host);
        int match = ascii && sts_policy_mx_match(&p, t[i].host) != NULL;
        if (ascii != t[i].ascii || match != t[i].match)
            fail_msg("idn row %zu (%s): ascii %d match %d", i, t[i].host, ascii, match);
    }
    assert_int_equal(sts_decide_mx_host_ascii(NULL), 0);
    sts_policy_free(&p);
    sts_diags_free(&d);
    /* A U-label mx pattern makes the policy invalid (it is not an RFC 5321 Domain). */
    static const char ulabel[] = "version: STSv1\nmode: enforce\nmx: m\xc3\xa4il.example\n"
                                 "max_age: 86400\n";
    sts_diags_init(&d);
    assert_int_equal(sts_policy_parse(ulabel, sizeof(ulabel) - 1, &p, &d), STS_ESYNTAX);
    char why[300];
    sts_diags_summary(&d, why, sizeof(why));
    assert_non_null(strstr(why, "A-labels"));
    sts_diags_free(&d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mode),          cmocka_unit_test(test_mx_table),
        cmocka_unit_test(test_tls_edges),     cmocka_unit_test(test_reply_actions),
        cmocka_unit_test(test_outcome_table), cmocka_unit_test(test_exit),
        cmocka_unit_test(test_idn_a_labels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
