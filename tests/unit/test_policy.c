/* test_policy.c - the MTA-STS policy parser (RFC 8461 3.2) and mx matching (4.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "sender/policy.h"

#define GOOD_BODY "version: STSv1\nmode: enforce\nmx: mail.example.com\nmax_age: 86400\n"

struct pcase {
    const char *name;
    const char *text;
    int valid;
    /* valid: expected fields */
    sts_mode mode;
    long max_age;
    size_t nmx;
    size_t nwarn;
    /* invalid: first error position and message part */
    int line, col;
    const char *msgpart;
};

static const struct pcase cases[] = {
    /* RFC 8461 3.2 example */
    {"rfc example",
     "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\n"
     "mx: backupmx.example.com\nmax_age: 604800\n",
     1, STS_MODE_ENFORCE, 604800, 3, 0, 0, 0, NULL},
    {"crlf", "version: STSv1\r\nmode: testing\r\nmx: mx.example.com\r\nmax_age: 1\r\n", 1,
     STS_MODE_TESTING, 1, 1, 0, 0, 0, NULL},
    {"mixed endings, no final newline",
     "version: STSv1\r\nmode: enforce\nmx: a.example\r\nmax_age: 0", 1, STS_MODE_ENFORCE, 0, 1, 0,
     0, 0, NULL},
    {"any order", "max_age: 31557600\nmx: a.example.com\nmode: enforce\nversion: STSv1\n", 1,
     STS_MODE_ENFORCE, 31557600, 1, 0, 0, 0, NULL},
    {"mode none without mx", "version: STSv1\nmode: none\nmax_age: 86400\n", 1, STS_MODE_NONE,
     86400, 0, 0, 0, 0, NULL},
    {"no space after colon, trailing ws",
     "version:STSv1\nmode:enforce  \nmx:\ta.example\t\nmax_age:5\n", 1, STS_MODE_ENFORCE, 5, 1, 0,
     0, 0, NULL},
    {"unknown keys ignored", GOOD_BODY "foo: bar baz\nx-y.z_1: anything goes here\n", 1,
     STS_MODE_ENFORCE, 86400, 1, 0, 0, 0, NULL},
    {"duplicate mode: first wins", GOOD_BODY "mode: testing\n", 1, STS_MODE_ENFORCE, 86400, 1, 1, 0,
     0, NULL},
    {"duplicate max_age", GOOD_BODY "max_age: 5\n", 1, STS_MODE_ENFORCE, 86400, 1, 1, 0, 0, NULL},
    {"blank line warns", "version: STSv1\n\nmode: enforce\nmx: a.example\nmax_age: 9\n", 1,
     STS_MODE_ENFORCE, 9, 1, 1, 0, 0, NULL},
    {"upper-case mx allowed", "version: STSv1\nmode: enforce\nmx: MAIL.Example.COM\nmax_age: 9\n",
     1, STS_MODE_ENFORCE, 9, 1, 0, 0, 0, NULL},
    {"max_age ten digits", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 0000086400\n", 1,
     STS_MODE_ENFORCE, 86400, 1, 0, 0, 0, NULL},

    /* invalid */
    {"empty", "", 0, 0, 0, 0, 0, 0, 0, "empty policy"},
    {"missing version", "mode: enforce\nmx: a.example\nmax_age: 9\n", 0, 0, 0, 0, 0, 0, 0,
     "missing required field version"},
    {"missing mode", "version: STSv1\nmx: a.example\nmax_age: 9\n", 0, 0, 0, 0, 0, 0, 0,
     "missing required field mode"},
    {"missing max_age", "version: STSv1\nmode: enforce\nmx: a.example\n", 0, 0, 0, 0, 0, 0, 0,
     "missing required field max_age"},
    {"missing mx (enforce)", "version: STSv1\nmode: enforce\nmax_age: 9\n", 0, 0, 0, 0, 0, 0, 0,
     "no mx field"},
    {"missing mx (testing)", "version: STSv1\nmode: testing\nmax_age: 9\n", 0, 0, 0, 0, 0, 0, 0,
     "no mx field"},
    {"bad version", "version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 9\n", 0, 0, 0, 0, 0, 1,
     10, "version 'STSv2' is not STSv1"},
    {"bad mode", "version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 9\n", 0, 0, 0, 0, 0, 2, 7,
     "mode 'Enforce'"},
    {"max_age too big", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 31557601\n", 0, 0,
     0, 0, 0, 4, 10, "over the maximum"},
    {"max_age negative", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: -1\n", 0, 0, 0, 0,
     0, 4, 10, "digits only"},
    {"max_age non-digit", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1d\n", 0, 0, 0, 0,
     0, 4, 11, "digits only"},
    {"max_age 11 digits", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 00000000001\n", 0,
     0, 0, 0, 0, 4, 10, "more than 10 digits"},
    {"max_age empty", "version: STSv1\nmode: enforce\nmx: a.example\nmax_age:\n", 0, 0, 0, 0, 0, 4,
     9, "empty value"},
    {"space before colon", "version : STSv1\nmode: enforce\nmx: a.example\nmax_age: 9\n", 0, 0, 0,
     0, 0, 1, 8, "whitespace before ':'"},
    {"leading space", " version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 9\n", 0, 0, 0, 0, 0,
     1, 1, "begins with whitespace"},
    {"no colon", "version STSv1\nmode: enforce\nmx: a.example\nmax_age: 9\n", 0, 0, 0, 0, 0, 1, 1,
     "no ':'"},
    {"bare CR", "version: STSv1\rmode: enforce\nmx: a.example\nmax_age: 9\n", 0, 0, 0, 0, 0, 1, 15,
     "carriage return"},
    {"wildcard twice", "version: STSv1\nmode: enforce\nmx: *.*.example.com\nmax_age: 9\n", 0, 0, 0,
     0, 0, 3, 5, "leftmost label"},
    {"wildcard in the middle",
     "version: STSv1\nmode: enforce\nmx: mail.*.example.com\nmax_age: 9\n", 0, 0, 0, 0, 0, 3, 5,
     "leftmost label"},
    {"partial wildcard", "version: STSv1\nmode: enforce\nmx: *example.com\nmax_age: 9\n", 0, 0, 0,
     0, 0, 3, 5, "leftmost label"},
    {"partial wildcard label", "version: STSv1\nmode: enforce\nmx: mx*.example.com\nmax_age: 9\n",
     0, 0, 0, 0, 0, 3, 5, "leftmost label"},
    {"trailing dot", "version: STSv1\nmode: enforce\nmx: mail.example.com.\nmax_age: 9\n", 0, 0, 0,
     0, 0, 3, 5, "trailing dot"},
    {"underscore", "version: STSv1\nmode: enforce\nmx: mail_1.example.com\nmax_age: 9\n", 0, 0, 0,
     0, 0, 3, 5, "'_'"},
    {"U-label", "version: STSv1\nmode: enforce\nmx: m\xc3\xa4il.example\nmax_age: 9\n", 0, 0, 0, 0,
     0, 3, 5, "A-labels"},
    {"hyphen end", "version: STSv1\nmode: enforce\nmx: mail-.example\nmax_age: 9\n", 0, 0, 0, 0, 0,
     3, 5, "begins or ends with '-'"},
    {"empty label", "version: STSv1\nmode: enforce\nmx: mail..example\nmax_age: 9\n", 0, 0, 0, 0, 0,
     3, 5, "empty label"},
    {"mx empty", "version: STSv1\nmode: enforce\nmx:\nmax_age: 9\n", 0, 0, 0, 0, 0, 3, 4,
     "empty value"},
    {"mx with space", "version: STSv1\nmode: enforce\nmx: a.example b.example\nmax_age: 9\n", 0, 0,
     0, 0, 0, 3, 5, "' '"},
    {"bad extension key", GOOD_BODY "-foo: bar\n", 0, 0, 0, 0, 0, 5, 1,
     "must begin with a letter or digit"},
    {"extension empty value", GOOD_BODY "foo:\n", 0, 0, 0, 0, 0, 5, 5, "empty value"},
    {"case-sensitive key", "Version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 9\n", 0, 0, 0, 0,
     0, 0, 0, "missing required field version"},
};

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct pcase *c = &cases[i];
        sts_diags d;
        sts_diags_init(&d);
        sts_policy p;
        int rc = sts_policy_parse(c->text, strlen(c->text), &p, &d);
        if (c->valid) {
            if (rc != 0)
                fail_msg("%s: expected valid, got %s: line %d col %d %s", c->name, sts_errname(rc),
                         d.n ? d.items[0].line : 0, d.n ? d.items[0].column : 0,
                         d.n ? d.items[0].message : "");
            assert_string_equal(p.version, "STSv1");
            if (p.mode != c->mode || p.max_age != c->max_age || p.nmx != c->nmx)
                fail_msg("%s: mode %s max_age %ld nmx %zu", c->name, sts_mode_name(p.mode),
                         p.max_age, p.nmx);
            if (d.nwarnings != c->nwarn)
                fail_msg("%s: %zu warnings, expected %zu", c->name, d.nwarnings, c->nwarn);
            sts_policy_free(&p);
        } else {
            if (rc != STS_ESYNTAX)
                fail_msg("%s: expected invalid, got %d", c->name, rc);
            assert_int_equal(p.nmx, 0);
            assert_null(p.mx);
            const sts_diag *e = sts_diags_first_error(&d);
            assert_non_null(e);
            if (e->line != c->line || e->column != c->col || !strstr(e->message, c->msgpart))
                fail_msg("%s: first error %d:%d '%s', expected %d:%d '%s'", c->name, e->line,
                         e->column, e->message, c->line, c->col, c->msgpart);
        }
        sts_diags_free(&d);
    }
}

static void test_rfc_example_fields(void **state)
{
    (void)state;
    const char *t = "version: STSv1\nmode: enforce\nmx: mail.example.com\nmx: *.example.net\n"
                    "mx: backupmx.example.com\nmax_age: 604800\n";
    sts_policy p, q;
    assert_int_equal(sts_policy_parse(t, strlen(t), &p, NULL), 0);
    assert_string_equal(p.mx[0], "mail.example.com");
    assert_string_equal(p.mx[1], "*.example.net");
    assert_string_equal(p.mx[2], "backupmx.example.com");
    assert_int_equal(sts_policy_copy(&q, &p), 0);
    sts_policy_free(&p);
    assert_int_equal(q.nmx, 3);
    assert_string_equal(q.mx[1], "*.example.net");
    json_t *j = sts_policy_to_json(&q);
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(s, "{\"max_age\":604800,\"mode\":\"enforce\",\"mx\":[\"mail.example.com\","
                           "\"*.example.net\",\"backupmx.example.com\"],\"version\":\"STSv1\"}");
    free(s);
    json_decref(j);
    sts_policy_free(&q);
}

static void test_all_errors_reported(void **state)
{
    (void)state;
    const char *t = "version: STSv2\nmode: strict\nmx: *.*.x\nmax_age: 99999999999\n";
    sts_diags d;
    sts_diags_init(&d);
    sts_policy p;
    assert_int_equal(sts_policy_parse(t, strlen(t), &p, &d), STS_ESYNTAX);
    assert_int_equal(d.nerrors, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(d.items[i].line, (int)i + 1);
    char sum[300];
    assert_string_equal(sts_diags_summary(&d, sum, sizeof(sum)),
                        "line 1, column 10: version 'STSv2' is not STSv1");
    sts_diags_free(&d);
}

static void test_mode_names(void **state)
{
    (void)state;
    sts_mode m;
    assert_int_equal(sts_mode_parse("enforce", &m), 0);
    assert_int_equal(m, STS_MODE_ENFORCE);
    assert_int_equal(sts_mode_parse("testing", &m), 0);
    assert_int_equal(m, STS_MODE_TESTING);
    assert_int_equal(sts_mode_parse("none", &m), 0);
    assert_int_equal(m, STS_MODE_NONE);
    assert_int_equal(sts_mode_parse("NONE", &m), STS_EINVAL);
    assert_int_equal(sts_mode_parse("", &m), STS_EINVAL);
    assert_string_equal(sts_mode_name(STS_MODE_TESTING), "testing");
    assert_int_equal(sts_mode_parse("auto", &m), STS_EINVAL); /* --mode's, not a policy's */
    assert_null(sts_mode_name((sts_mode)42));
}

struct mcase {
    const char *pattern, *host;
    int match;
};

static const struct mcase mcases[] = {
    /* RFC 8461 4.1 examples */
    {"mail.example.com", "mail.example.com", 1},
    {"*.example.com", "mail.example.com", 1},
    {"*.example.com", "example.com", 0},
    {"*.example.com", "foo.bar.example.com", 0},
    /* case and trailing dot */
    {"Mail.Example.COM", "mail.example.com", 1},
    {"mail.example.com", "MAIL.EXAMPLE.COM.", 1},
    {"*.EXAMPLE.com", "Mx1.example.COM.", 1},
    {"mail.example.com", "mail.example.com..", 0},
    /* near misses */
    {"mail.example.com", "mail.example.co", 0},
    {"mail.example.com", "amail.example.com", 0},
    {"mail.example.com", "xmail.example.com", 0},
    {"*.example.com", "mailexample.com", 0},
    {"*.example.com", ".example.com", 0},
    {"*.example.com", "mail.example.com.evil", 0},
    {"*.example.com", "*.example.com", 0},
    {"example.com", "mail.example.com", 0},
    /* invalid patterns never match */
    {"*.*.example.com", "a.b.example.com", 0},
    {"mail.*.example.com", "mail.x.example.com", 0},
    {"*example.com", "mailexample.com", 0},
    {"*", "mail", 0},
    {"", "", 0},
    {"mail.example.com.", "mail.example.com", 0},
};

static void test_mx_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(mcases) / sizeof(mcases[0]); i++)
        if (sts_mx_pattern_match(mcases[i].pattern, mcases[i].host) != mcases[i].match)
            fail_msg("pattern '%s' host '%s': expected %s", mcases[i].pattern, mcases[i].host,
                     mcases[i].match ? "match" : "no match");
    assert_false(sts_mx_pattern_match(NULL, "a"));
    assert_false(sts_mx_pattern_match("a", NULL));
}

static void test_pattern_valid(void **state)
{
    (void)state;
    char why[128];
    assert_true(sts_mx_pattern_valid("mail.example.com", why, sizeof(why)));
    assert_true(sts_mx_pattern_valid("*.example.com", why, sizeof(why)));
    assert_true(sts_mx_pattern_valid("xn--mil-via.example", why, sizeof(why)));
    assert_true(sts_mx_pattern_valid("localhost", why, sizeof(why)));
    char label64[80];
    memset(label64, 'a', 64);
    strcpy(label64 + 64, ".com");
    assert_false(sts_mx_pattern_valid(label64, why, sizeof(why)));
    assert_non_null(strstr(why, "63"));
    label64[1] = '.'; /* "a." + 62 a + ".com": labels fine */
    assert_true(sts_mx_pattern_valid(label64, why, sizeof(why)));
    assert_false(sts_mx_pattern_valid("*.", why, sizeof(why)));
    assert_false(sts_mx_pattern_valid("-a.example", why, sizeof(why)));
}

static void test_policy_allowed(void **state)
{
    (void)state;
    const char *t = GOOD_BODY "mx: *.example.net\n";
    sts_policy p;
    assert_int_equal(sts_policy_parse(t, strlen(t), &p, NULL), 0);
    assert_true(sts_policy_mx_allowed(&p, "mail.example.com"));
    assert_true(sts_policy_mx_allowed(&p, "mx2.example.net."));
    assert_string_equal(sts_policy_mx_match(&p, "mx2.example.net"), "*.example.net");
    assert_false(sts_policy_mx_allowed(&p, "example.net"));
    assert_false(sts_policy_mx_allowed(&p, "evil.example.org"));
    assert_null(sts_policy_mx_match(NULL, "mail.example.com"));
    sts_policy_free(&p);
}

/* A bounded mutation fuzz run (deterministic seed): random byte edits of valid and
 * invalid policies must never crash (run under ASan), and the verdict must agree with
 * the diagnostics: valid <=> no errors, every mx of a valid policy a valid pattern. */
static void test_fuzz_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "vm:*.\r\n \t-_aZ09;=\xc3\x00";
    uint32_t x = 0x12345678;
    char buf[512];
    for (int round = 0; round < 20000; round++) {
        const struct pcase *c = &cases[round % (sizeof(cases) / sizeof(cases[0]))];
        size_t len = strlen(c->text);
        memcpy(buf, c->text, len);
        int edits = 1 + round % 4;
        for (int k = 0; k < edits; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            size_t at = len ? x % len : 0;
            char ch = alphabet[(x >> 8) % (sizeof(alphabet) - 1)];
            switch ((x >> 20) % 3) {
            case 0:
                if (len)
                    buf[at] = ch;
                break; /* replace */
            case 1:
                if (len < sizeof(buf) - 1) { /* insert */
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = ch;
                    len++;
                }
                break;
            default:
                if (len) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                } /* delete */
            }
        }
        sts_diags d;
        sts_diags_init(&d);
        sts_policy p;
        int rc = sts_policy_parse(buf, len, &p, &d);
        if (rc == 0) {
            assert_int_equal(d.nerrors, 0);
            assert_true(p.mode != STS_MODE_AUTO);
            assert_true(p.max_age >= 0 && p.max_age <= STS_POLICY_MAX_AGE_MAX);
            assert_true(p.nmx > 0 || p.mode == STS_MODE_NONE);
            for (size_t i = 0; i < p.nmx; i++)
                assert_true(sts_mx_pattern_valid(p.mx[i], NULL, 0));
            sts_policy_free(&p);
        } else {
            assert_int_equal(rc, STS_ESYNTAX);
            assert_true(d.nerrors > 0);
        }
        for (size_t i = 0; i < d.n; i++)
            assert_true(d.items[i].line >= 0 && d.items[i].column >= 0 &&
                        (size_t)d.items[i].column <= len + 1);
        sts_diags_free(&d);
        /* the matcher on arbitrary text must not crash either */
        char host[64];
        snprintf(host, sizeof(host), "%.*s", (int)(len < 63 ? len : 63), buf);
        sts_mx_pattern_match(host, "mail.example.com");
        sts_mx_pattern_match("*.example.com", host);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),         cmocka_unit_test(test_rfc_example_fields),
        cmocka_unit_test(test_all_errors_reported), cmocka_unit_test(test_mode_names),
        cmocka_unit_test(test_mx_match_table),      cmocka_unit_test(test_pattern_valid),
        cmocka_unit_test(test_policy_allowed),      cmocka_unit_test(test_fuzz_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
