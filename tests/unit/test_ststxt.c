/* test_ststxt.c - the `_mta-sts` TXT record parser and selection (RFC 8461 3.1). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "common/err.h"
#include "tests/unit/txt_mutate.h"
#include "sender/ststxt.h"

struct txt_case {
    const char *rec;
    int valid;
    const char *id;      /* expected id when valid */
    int col;             /* expected column of the first error when invalid (-1: any) */
    const char *msgpart; /* substring of the first error message */
    size_t next;         /* extension fields when valid */
    size_t nwarn;
};

static const struct txt_case cases[] = {
    /* RFC 8461 3.1 example */
    {"v=STSv1; id=20160831085700Z;", 1, "20160831085700Z", 0, NULL, 0, 0},
    {"v=STSv1; id=20160831085700Z", 1, "20160831085700Z", 0, NULL, 0, 0},
    {"v=STSv1;id=abc", 1, "abc", 0, NULL, 0, 0},
    {"v=STSv1 ; id=abc ;", 1, "abc", 0, NULL, 0, 0},
    {"v=STSv1;\tid=abc\t;\t", 1, "abc", 0, NULL, 0, 0},
    {"v=STSv1; id=a", 1, "a", 0, NULL, 0, 0},
    {"v=STSv1; id=12345678901234567890123456789012", 1, "12345678901234567890123456789012", 0, NULL,
     0, 0},
    {"v=STSv1; id=abc; ext=val; x.y-z_w=1", 1, "abc", 0, NULL, 2, 0},
    {"v=STSv1; foo=bar; id=abc", 1, "abc", 0, NULL, 1, 0},
    {"v=STSv1; id=abc; id=def", 1, "abc", 0, NULL, 0, 1},
    /* trailing whitespace without a ';' is outside the ABNF: taken, with a warning */
    {"v=STSv1; id=abc ", 1, "abc", 0, NULL, 0, 1},
    {"v=STSv1; id=abc\t \t", 1, "abc", 0, NULL, 0, 1},
    {"v=STSv1; id=abc; ", 1, "abc", 0, NULL, 0, 0},
    /* invalid */
    {"v=STSv1;", 0, NULL, 8, "no fields", 0, 0},
    {"v=STSv1", 0, NULL, 8, "no fields", 0, 0},
    {"v=STSv1; ext=1", 0, NULL, 0, "missing required field id", 0, 0},
    {"v=STSv1; id=", 0, NULL, 13, "empty", 0, 0},
    {"v=STSv1; id=123456789012345678901234567890123", 0, NULL, 13, "33 characters", 0, 0},
    {"v=STSv1; id=abc-def", 0, NULL, 16, "'-'", 0, 0},
    {"v=STSv1; id=abc def", 0, NULL, 17, "expected ';'", 0, 0},
    {"id=abc; v=STSv1", 0, NULL, 1, "must begin with v=STSv1", 0, 0},
    {" v=STSv1; id=abc", 0, NULL, 1, "leading whitespace", 0, 0},
    {"v=STSv2; id=abc", 0, NULL, 3, "unsupported version 'STSv2'", 0, 0},
    {"v=stsv1; id=abc", 0, NULL, 3, "unsupported version", 0, 0},
    {"v=STSv1x; id=abc", 0, NULL, 8, "expected ';' after v=STSv1", 0, 0},
    {"v=STSv1;; id=abc", 0, NULL, 9, "empty field", 0, 0},
    {"v=STSv1; ID=abc", 0, NULL, 0, "missing required field id", 0, 0},
    {"v=STSv1; id=abc; ext", 0, NULL, 18, "no '='", 0, 0},
    {"v=STSv1; id=abc; ext=", 0, NULL, 22, "empty value", 0, 0},
    {"v=STSv1; id=abc; _x=1", 0, NULL, 18, "must begin with a letter or digit", 0, 0},
    {"v=STSv1; id=abc; e=a=b", 0, NULL, 21, "contains '='", 0, 0},
    {"v=STSv1; id=abc; 123456789012345678901234567890123=1", 0, NULL, 18, "longer than 32", 0, 0},
    {"", 0, NULL, 1, "must begin with v=STSv1", 0, 0},
};

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct txt_case *c = &cases[i];
        sts_diags d;
        sts_diags_init(&d);
        sts_txt t;
        int rc = sts_txt_parse(c->rec, strlen(c->rec), &t, &d);
        if (c->valid) {
            if (rc != 0)
                fail_msg("case %zu '%s': expected valid, got %s (%s)", i, c->rec, sts_errname(rc),
                         d.n ? d.items[0].message : "");
            assert_string_equal(t.id, c->id);
            assert_string_equal(t.version, "STSv1");
            assert_int_equal(t.next, c->next);
            assert_int_equal(d.nerrors, 0);
            if (d.nwarnings != c->nwarn)
                fail_msg("case %zu '%s': %zu warnings, expected %zu", i, c->rec, d.nwarnings,
                         c->nwarn);
            sts_txt_free(&t);
        } else {
            if (rc != STS_ESYNTAX)
                fail_msg("case %zu '%s': expected invalid, got %d", i, c->rec, rc);
            const sts_diag *e = sts_diags_first_error(&d);
            assert_non_null(e);
            if (c->col >= 0 && e->column != c->col)
                fail_msg("case %zu '%s': error at column %d, expected %d (%s)", i, c->rec,
                         e->column, c->col, e->message);
            if (!strstr(e->message, c->msgpart))
                fail_msg("case %zu '%s': message '%s' lacks '%s'", i, c->rec, e->message,
                         c->msgpart);
            assert_int_equal(e->line, 1);
        }
        sts_diags_free(&d);
    }
}

static void test_extensions_kept(void **state)
{
    (void)state;
    sts_txt t;
    const char *r = "v=STSv1; id=X1; foo=bar; b.a-z=q!";
    assert_int_equal(sts_txt_parse(r, strlen(r), &t, NULL), 0);
    assert_int_equal(t.next, 2);
    assert_string_equal(t.ext[0].name, "foo");
    assert_string_equal(t.ext[0].value, "bar");
    assert_string_equal(t.ext[1].name, "b.a-z");
    assert_string_equal(t.ext[1].value, "q!");
    sts_txt_free(&t);
}

static void test_nul_byte(void **state)
{
    (void)state;
    const char r[] = "v=STSv1; id=abc\0x";
    sts_txt t;
    sts_diags d;
    sts_diags_init(&d);
    assert_int_equal(sts_txt_parse(r, sizeof(r) - 1, &t, &d), STS_ESYNTAX);
    assert_int_equal(d.items[0].column, 16);
    sts_diags_free(&d);
}

static void test_is_sts(void **state)
{
    (void)state;
    assert_true(sts_txt_is_sts("v=STSv1;", 8));
    assert_true(sts_txt_is_sts("v=STSv1 ;", 9));
    assert_true(sts_txt_is_sts("v=STSv1", 7));
    assert_false(sts_txt_is_sts("v=STSv10;", 9));
    assert_false(sts_txt_is_sts("v=spf1 -all", 11));
    assert_false(sts_txt_is_sts(" v=STSv1;", 9));
    assert_false(sts_txt_is_sts("v=STS", 5));
}

static void test_select(void **state)
{
    (void)state;
    sts_txt t;
    char why[256];
    const char *none[] = {"v=spf1 -all", "hello"};
    assert_int_equal(sts_txt_select(none, NULL, 2, &t, NULL, why, sizeof(why)), STS_ENOTFOUND);
    assert_non_null(strstr(why, "no TXT record begins with v=STSv1"));
    assert_int_equal(sts_txt_select(NULL, NULL, 0, &t, NULL, why, sizeof(why)), STS_ENOTFOUND);

    const char *one[] = {"v=spf1 -all", "v=STSv1; id=one;", "v=STSv10; id=x"};
    assert_int_equal(sts_txt_select(one, NULL, 3, &t, NULL, why, sizeof(why)), 0);
    assert_string_equal(t.id, "one");
    sts_txt_free(&t);

    const char *two[] = {"v=STSv1; id=one;", "v=STSv1; id=two;"};
    assert_int_equal(sts_txt_select(two, NULL, 2, &t, NULL, why, sizeof(why)), STS_EINVAL);
    assert_non_null(strstr(why, "2 TXT records begin with v=STSv1"));

    /* One STS record, but invalid; an invalid second one would still count as two. */
    const char *bad[] = {"v=STSv1; id=has-dash;", "other"};
    sts_diags d;
    sts_diags_init(&d);
    assert_int_equal(sts_txt_select(bad, NULL, 2, &t, &d, why, sizeof(why)), STS_ESYNTAX);
    assert_true(d.nerrors >= 1);
    assert_non_null(strstr(why, "invalid STS TXT record"));
    sts_diags_free(&d);
    const char *twobad[] = {"v=STSv1; id=ok;", "v=STSv1;"};
    assert_int_equal(sts_txt_select(twobad, NULL, 2, &t, NULL, why, sizeof(why)), STS_EINVAL);

    /* Lengths given: records need not be NUL-terminated. */
    const char *lr[] = {"v=STSv1; id=abcXYZ"};
    size_t lens[] = {15};
    assert_int_equal(sts_txt_select(lr, lens, 1, &t, NULL, NULL, 0), 0);
    assert_string_equal(t.id, "abc");
    sts_txt_free(&t);
}

/* A bounded mutation fuzz run (deterministic seed): random edits of the table's
 * records must never crash (run under ASan), and the verdict must agree with the
 * diagnostics; a valid record always has a 1-32 alphanumeric id. */
static const char *case_rec(size_t i)
{
    return cases[i].rec;
}

static void check_mutant(const char *buf, size_t len)
{
    sts_diags d;
    sts_diags_init(&d);
    sts_txt t;
    int rc = sts_txt_parse(buf, len, &t, &d);
    if (rc == 0) {
        assert_int_equal(d.nerrors, 0);
        size_t il = strlen(t.id);
        assert_true(il >= 1 && il <= STS_TXT_ID_MAX);
        for (size_t i = 0; i < il; i++)
            assert_true(isalnum((unsigned char)t.id[i]));
        assert_true(sts_txt_is_sts(buf, len));
        sts_txt_free(&t);
    } else {
        assert_int_equal(rc, STS_ESYNTAX);
        assert_true(d.nerrors > 0);
    }
    sts_diags_free(&d);
}

static void test_fuzz_mutations(void **state)
{
    (void)state;
    static const char alphabet[] = "v=STS1;id \t-_.aZ09\x00\x80";
    txt_mutation_run(sizeof(cases) / sizeof(cases[0]), case_rec, alphabet, sizeof(alphabet) - 1,
                     20000, check_mutant);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table), cmocka_unit_test(test_extensions_kept),
        cmocka_unit_test(test_nul_byte),    cmocka_unit_test(test_is_sts),
        cmocka_unit_test(test_select),      cmocka_unit_test(test_fuzz_mutations),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
