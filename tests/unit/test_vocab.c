/* test_vocab.c - the shared vocabularies (common/vocab.h): every value of every table
 * goes to its contract word and back through the typed and the generic functions, and
 * anything else is refused. The words are spelled out here on purpose: they are the
 * contract (DESIGN.md), and a table that changes one must fail this test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/vocab.h"

#define N(a) (sizeof(a) / sizeof((a)[0]))

/* Text no vocabulary knows: near misses in case, spacing and spelling. */
static const char *const strangers[] = {
    "",
    " ",
    "unknown",
    "Enforce",
    "ENFORCE",
    "enforce ",
    " none",
    "Fetched",
    "cached",
    "Delivered",
    "deliver",
    "refuse",
    "TEMPFAIL",
    "unverified ",
    "starttls",
    "certificate-expired\n",
    "STS-POLICY-INVALID",
    "validation_failure",
    "unset",
    "null",
};

static void check_strangers(const sts_vocab *v)
{
    for (size_t i = 0; i < N(strangers); i++) {
        int x = -12345;
        assert_int_equal(sts_vocab_parse(v, strangers[i], &x), STS_EINVAL);
        assert_int_equal(x, -12345); /* untouched */
    }
    int x = -12345;
    assert_int_equal(sts_vocab_parse(v, NULL, &x), STS_EINVAL);
    assert_int_equal(x, -12345);
}

/* Every table on its own terms: unique values and names, generic round trip, a value
 * outside the table has no name, strangers are refused. */
static void test_tables(void **state)
{
    (void)state;
    const sts_vocab *all[] = {&sts_vocab_result_type,   &sts_vocab_policy_type, &sts_vocab_mode,
                              &sts_vocab_policy_source, &sts_vocab_outcome,     &sts_vocab_action,
                              &sts_vocab_delivery_tls,  &sts_vocab_tls_version};
    for (size_t t = 0; t < N(all); t++) {
        const sts_vocab *v = all[t];
        assert_non_null(v->what);
        assert_true(v->n > 0);
        for (size_t i = 0; i < v->n; i++) {
            const sts_vocab_word *w = &v->words[i];
            assert_non_null(w->name);
            assert_true(w->name[0] != '\0');
            for (size_t j = i + 1; j < v->n; j++) {
                assert_int_not_equal(w->value, v->words[j].value);
                assert_string_not_equal(w->name, v->words[j].name);
            }
            assert_string_equal(sts_vocab_name(v, w->value), w->name);
            int x = -1;
            assert_int_equal(sts_vocab_parse(v, w->name, &x), 0);
            assert_int_equal(x, w->value);
        }
        assert_null(sts_vocab_name(v, 1000));
        assert_null(sts_vocab_name(v, -1));
        check_strangers(v);
    }
}

static void test_result_types(void **state)
{
    (void)state;
    static const struct {
        sts_result_type t;
        const char *name;
    } w[] = {
        {STS_RESULT_STARTTLS_NOT_SUPPORTED, "starttls-not-supported"},
        {STS_RESULT_CERTIFICATE_HOST_MISMATCH, "certificate-host-mismatch"},
        {STS_RESULT_CERTIFICATE_EXPIRED, "certificate-expired"},
        {STS_RESULT_CERTIFICATE_NOT_TRUSTED, "certificate-not-trusted"},
        {STS_RESULT_VALIDATION_FAILURE, "validation-failure"},
        {STS_RESULT_TLSA_INVALID, "tlsa-invalid"},
        {STS_RESULT_DNSSEC_INVALID, "dnssec-invalid"},
        {STS_RESULT_DANE_REQUIRED, "dane-required"},
        {STS_RESULT_STS_POLICY_FETCH_ERROR, "sts-policy-fetch-error"},
        {STS_RESULT_STS_POLICY_INVALID, "sts-policy-invalid"},
        {STS_RESULT_STS_WEBPKI_INVALID, "sts-webpki-invalid"},
    };
    assert_int_equal(N(w), sts_vocab_result_type.n);
    for (size_t i = 0; i < N(w); i++) {
        assert_string_equal(sts_result_type_name(w[i].t), w[i].name);
        sts_result_type t = STS_RESULT_NONE;
        assert_int_equal(sts_result_type_parse(w[i].name, &t), 0);
        assert_int_equal(t, w[i].t);
    }
    /* "No failure" has no word, and no word means it. */
    assert_int_equal(STS_RESULT_NONE, 0);
    assert_null(sts_result_type_name(STS_RESULT_NONE));
    sts_result_type t = STS_RESULT_DANE_REQUIRED;
    assert_int_equal(sts_result_type_parse("none", &t), STS_EINVAL);
    assert_int_equal(sts_result_type_parse(NULL, &t), STS_EINVAL);
    assert_int_equal(t, STS_RESULT_DANE_REQUIRED);
}

/* RFC 8460 4.4 policy-type: the three words, sts the zero value. */
static void test_policy_types(void **state)
{
    (void)state;
    static const struct {
        sts_policy_type t;
        const char *name;
    } w[] = {
        {STS_POLICY_TYPE_TLSA, "tlsa"},
        {STS_POLICY_TYPE_STS, "sts"},
        {STS_POLICY_TYPE_NO_POLICY_FOUND, "no-policy-found"},
    };
    assert_int_equal(N(w), sts_vocab_policy_type.n);
    for (size_t i = 0; i < N(w); i++) {
        assert_string_equal(sts_policy_type_name(w[i].t), w[i].name);
        sts_policy_type t = STS_POLICY_TYPE_TLSA;
        assert_int_equal(sts_policy_type_parse(w[i].name, &t), 0);
        assert_int_equal(t, w[i].t);
    }
    assert_int_equal(STS_POLICY_TYPE_STS, 0);
    sts_policy_type t = STS_POLICY_TYPE_TLSA;
    assert_int_equal(sts_policy_type_parse("STS", &t), STS_EINVAL);
    assert_int_equal(sts_policy_type_parse("no-policy", &t), STS_EINVAL);
    assert_int_equal(t, STS_POLICY_TYPE_TLSA);
}

static void test_modes(void **state)
{
    (void)state;
    static const struct {
        sts_mode m;
        const char *name;
        int policy_word; /* a word of the policy ABNF (RFC 8461 3.2) */
    } w[] = {
        {STS_MODE_ENFORCE, "enforce", 1},
        {STS_MODE_TESTING, "testing", 1},
        {STS_MODE_NONE, "none", 1},
        {STS_MODE_AUTO, "auto", 0},
    };
    assert_int_equal(N(w), sts_vocab_mode.n);
    for (size_t i = 0; i < N(w); i++) {
        assert_string_equal(sts_mode_name(w[i].m), w[i].name);
        sts_mode m = (sts_mode)99;
        assert_int_equal(sts_mode_parse_option(w[i].name, &m), 0);
        assert_int_equal(m, w[i].m);
        m = (sts_mode)99;
        assert_int_equal(sts_mode_parse(w[i].name, &m), w[i].policy_word ? 0 : STS_EINVAL);
        assert_int_equal(m, w[i].policy_word ? w[i].m : (sts_mode)99);
    }
    /* The zero value overrides nothing (vocab.h). */
    assert_int_equal(STS_MODE_AUTO, 0);
    sts_mode m = STS_MODE_TESTING;
    for (size_t i = 0; i < N(strangers); i++) {
        assert_int_equal(sts_mode_parse(strangers[i], &m), STS_EINVAL);
        assert_int_equal(sts_mode_parse_option(strangers[i], &m), STS_EINVAL);
    }
    assert_int_equal(sts_mode_parse(NULL, &m), STS_EINVAL);
    assert_int_equal(sts_mode_parse_option(NULL, &m), STS_EINVAL);
    assert_int_equal(m, STS_MODE_TESTING);
    assert_null(sts_mode_name((sts_mode)42));
}

static void test_policy_sources(void **state)
{
    (void)state;
    static const struct {
        sts_policy_source s;
        const char *name;
    } w[] = {
        {STS_POLICY_SOURCE_FETCHED, "fetched"},
        {STS_POLICY_SOURCE_CACHE, "cache"},
        {STS_POLICY_SOURCE_NONE, "none"},
    };
    assert_int_equal(N(w), sts_vocab_policy_source.n);
    for (size_t i = 0; i < N(w); i++) {
        assert_string_equal(sts_policy_source_name(w[i].s), w[i].name);
        sts_policy_source s = (sts_policy_source)99;
        assert_int_equal(sts_policy_source_parse(w[i].name, &s), 0);
        assert_int_equal(s, w[i].s);
    }
    assert_int_equal(STS_POLICY_SOURCE_NONE, 0);
    sts_policy_source s = STS_POLICY_SOURCE_CACHE;
    assert_int_equal(sts_policy_source_parse("cached", &s), STS_EINVAL);
    assert_int_equal(sts_policy_source_parse(NULL, &s), STS_EINVAL);
    assert_int_equal(s, STS_POLICY_SOURCE_CACHE);
}

static void test_outcomes_and_actions(void **state)
{
    (void)state;
    static const struct {
        sts_outcome o;
        const char *name;
    } o[] = {
        {STS_OUTCOME_DELIVERED, "delivered"},
        {STS_OUTCOME_DEFERRED, "deferred"},
        {STS_OUTCOME_FAILED, "failed"},
    };
    assert_int_equal(N(o), sts_vocab_outcome.n);
    for (size_t i = 0; i < N(o); i++) {
        assert_string_equal(sts_outcome_name(o[i].o), o[i].name);
        sts_outcome x = (sts_outcome)99;
        assert_int_equal(sts_outcome_parse(o[i].name, &x), 0);
        assert_int_equal(x, o[i].o);
    }
    static const struct {
        sts_action a;
        const char *name;
    } a[] = {
        {STS_ACTION_NONE, "none"},         {STS_ACTION_DELIVERED, "delivered"},
        {STS_ACTION_REFUSED, "refused"},   {STS_ACTION_TEMPFAIL, "tempfail"},
        {STS_ACTION_PERMFAIL, "permfail"},
    };
    assert_int_equal(N(a), sts_vocab_action.n);
    for (size_t i = 0; i < N(a); i++) {
        assert_string_equal(sts_action_name(a[i].a), a[i].name);
        sts_action x = (sts_action)99;
        assert_int_equal(sts_action_parse(a[i].name, &x), 0);
        assert_int_equal(x, a[i].a);
    }
    sts_outcome x = STS_OUTCOME_FAILED;
    assert_int_equal(sts_outcome_parse("refused", &x), STS_EINVAL); /* an action, not an outcome */
    assert_int_equal(sts_outcome_parse(NULL, &x), STS_EINVAL);
    assert_int_equal(x, STS_OUTCOME_FAILED);
    sts_action y = STS_ACTION_PERMFAIL;
    assert_int_equal(sts_action_parse("deferred", &y), STS_EINVAL); /* an outcome */
    assert_int_equal(sts_action_parse(NULL, &y), STS_EINVAL);
    assert_int_equal(y, STS_ACTION_PERMFAIL);
}

static void test_delivery_tls(void **state)
{
    (void)state;
    static const struct {
        sts_delivery_tls t;
        const char *name;
    } w[] = {
        {STS_DELIVERY_TLS_VERIFIED, "verified"},
        {STS_DELIVERY_TLS_UNVERIFIED, "unverified"},
        {STS_DELIVERY_TLS_NONE, "none"},
    };
    assert_int_equal(N(w), sts_vocab_delivery_tls.n);
    for (size_t i = 0; i < N(w); i++) {
        assert_string_equal(sts_delivery_tls_name(w[i].t), w[i].name);
        sts_delivery_tls t = (sts_delivery_tls)99;
        assert_int_equal(sts_delivery_tls_parse(w[i].name, &t), 0);
        assert_int_equal(t, w[i].t);
    }
    sts_delivery_tls t = STS_DELIVERY_TLS_NONE;
    assert_int_equal(sts_delivery_tls_parse("plain", &t), STS_EINVAL);
    assert_int_equal(sts_delivery_tls_parse(NULL, &t), STS_EINVAL);
    assert_int_equal(t, STS_DELIVERY_TLS_NONE);
}

static void test_tls_versions(void **state)
{
    (void)state;
    static const struct {
        sts_tls_version v;
        const char *name;
    } w[] = {
        {STS_TLS_VERSION_1_0, "1.0"},
        {STS_TLS_VERSION_1_1, "1.1"},
        {STS_TLS_VERSION_1_2, "1.2"},
        {STS_TLS_VERSION_1_3, "1.3"},
    };
    assert_int_equal(N(w), sts_vocab_tls_version.n);
    for (size_t i = 0; i < N(w); i++) {
        assert_string_equal(sts_tls_version_name(w[i].v), w[i].name);
        sts_tls_version v = STS_TLS_VERSION_DEFAULT;
        assert_int_equal(sts_tls_version_parse(w[i].name, &v), 0);
        assert_int_equal(v, w[i].v);
        /* Oldest first: the values compare like the versions (min <= max checks). */
        if (i)
            assert_true(w[i - 1].v < w[i].v);
    }
    assert_int_equal(STS_TLS_VERSION_DEFAULT, 0);
    assert_null(sts_tls_version_name(STS_TLS_VERSION_DEFAULT));
    sts_tls_version v = STS_TLS_VERSION_1_2;
    assert_int_equal(sts_tls_version_parse("1", &v), STS_EINVAL);
    assert_int_equal(sts_tls_version_parse("1.00", &v), STS_EINVAL);
    assert_int_equal(sts_tls_version_parse("TLSv1.2", &v), STS_EINVAL);
    assert_int_equal(sts_tls_version_parse(NULL, &v), STS_EINVAL);
    assert_int_equal(v, STS_TLS_VERSION_1_2);
}

static void test_time_limit_detail(void **state)
{
    (void)state;
    /* The sender writes it and the runner looks for it: one definition, this text. */
    assert_string_equal(STS_DETAIL_TIME_LIMIT, "time limit");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tables),
        cmocka_unit_test(test_result_types),
        cmocka_unit_test(test_policy_types),
        cmocka_unit_test(test_modes),
        cmocka_unit_test(test_policy_sources),
        cmocka_unit_test(test_outcomes_and_actions),
        cmocka_unit_test(test_delivery_tls),
        cmocka_unit_test(test_tls_versions),
        cmocka_unit_test(test_time_limit_detail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
