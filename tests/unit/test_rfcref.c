/* test_rfcref.c - the tables of RFC sections that a scenario's refs are checked against
 * (common/rfcref.h): lookups that must pass, fail or say "sections not known", and the
 * tables themselves well formed (each section once, in document order, its parent
 * present), so that a mistyped row cannot hide. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/rfcref.h"

static void test_lookups(void **state)
{
    (void)state;
    static const struct {
        const char *ref;
        int rc; /* 0 accepted, -1 no such section, 1 sections not known */
        const char *why;
    } rows[] = {
        {"RFC 5321 5.1", 0, NULL},
        {"RFC 5321 4.5.4.1", 0, NULL}, /* below the depth of its table of contents */
        {"RFC 5321 4.1.1.11", 0, NULL},
        {"RFC 5321 D.4", 0, NULL},  /* an appendix */
        {"RFC 5321", 0, NULL},      /* the whole document */
        {"RFC 5321  ", 0, NULL},    /* the whole document, trailing blanks */
        {"RFC 7208 99.9", 0, NULL}, /* an RFC the issue does not ask for: not checked */
        {"DESIGN.md security invariant", 0, NULL},
        {"RFC5321 4.9", 0, NULL}, /* not "RFC <n>": not a citation the check reads */
        {"RFC 5321 4.9", -1, "RFC 5321 has no section 4.9"},
        {"RFC 5321 4.5.4.3", -1, "RFC 5321 has no section 4.5.4.3"},
        {"RFC 5321 5.1.", -1, "RFC 5321 has no section 5.1."},
        {"RFC 5321 G", -1, "RFC 5321 has no section G"},
        {"RFC 5321 4.2, 5.1", 0, NULL}, /* the section ends at a comma */
        {"RFC 5321 4.9, 5.1", -1, "RFC 5321 has no section 4.9"},
        /* RFC 8461, 8460 and 7505: tables read from the RFC text (rfcref.c). */
        {"RFC 8461 4.2", 0, NULL},
        {"RFC 8461 8.4", 0, NULL},
        {"RFC 8461 B", 0, NULL},
        {"RFC 8461 12", -1, "RFC 8461 has no section 12"}, /* References are 11 */
        {"RFC 8461 4.3", -1, "RFC 8461 has no section 4.3"},
        {"RFC 8461 C", -1, "RFC 8461 has no section C"},
        {"RFC 8460 4.3.2.2", 0, NULL}, /* below the depth of its table of contents */
        {"RFC 8460 4.3.1", 0, NULL},
        {"RFC 8460 A.2", 0, NULL},
        {"RFC 8460 4.3.2.3", -1, "RFC 8460 has no section 4.3.2.3"},
        {"RFC 8460 4.6", -1, "RFC 8460 has no section 4.6"},
        {"RFC 7505 3", 0, NULL},
        {"RFC 7505 4.2", 0, NULL},
        {"RFC 7505 4.3", -1, "RFC 7505 has no section 4.3"},
        {"RFC 7505 8", -1, "RFC 7505 has no section 8"},
        /* RFC 6125: complete to two levels, plus 6.4.1-6.4.4. */
        {"RFC 6125 6.4.3", 0, NULL},
        {"RFC 6125 6.4.4", 0, NULL},
        {"RFC 6125 7.2", 0, NULL},
        {"RFC 6125 6.7", -1, "RFC 6125 has no section 6.7"},
        {"RFC 6125 11", -1, "RFC 6125 has no section 11"},
        {"RFC 6125 6.4.5", 1,
         "RFC 6125 6.4.5: section not known (the table is complete to 2 levels)"},
        {"RFC 6125 6.2.1", 1,
         "RFC 6125 6.2.1: section not known (the table is complete to 2 levels)"},
        {"RFC 6125 B.1", 1, "RFC 6125 B.1: section not known (the table is complete to 2 levels)"},
        /* RFC 7672: table not verified, never guessed. */
        {"RFC 7672 2.2", 1, "RFC 7672: sections not known"},
        {"RFC 7672 99.9", 1, "RFC 7672: sections not known"},
        {"RFC 6125", 0, NULL},                   /* the whole document needs no table */
        {"RFC 99999999999999999999 1", 0, NULL}, /* out of range: no RFC of ours */
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        char why[128] = "";
        print_message("ref: %s\n", rows[i].ref);
        assert_int_equal(sts_rfcref_check(rows[i].ref, why, sizeof(why)), rows[i].rc);
        if (rows[i].why)
            assert_string_equal(why, rows[i].why);
    }
}

/* Which RFCs have a table, and which are named as not verified. */
static void test_known(void **state)
{
    (void)state;
    static const unsigned known[] = {5321, 8461, 8460, 7505, 6125};
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        const char *const *t;
        assert_true(sts_rfcref_known(known[i]));
        assert_false(sts_rfcref_unverified(known[i]));
        assert_true(sts_rfcref_sections(known[i], &t) > 0);
        assert_non_null(t);
    }
    static const unsigned unverified[] = {7672};
    for (size_t i = 0; i < sizeof(unverified) / sizeof(unverified[0]); i++) {
        const char *const *t;
        assert_false(sts_rfcref_known(unverified[i]));
        assert_true(sts_rfcref_unverified(unverified[i]));
        assert_int_equal(sts_rfcref_sections(unverified[i], &t), 0);
        assert_null(t);
    }
    assert_false(sts_rfcref_known(7208));
    assert_false(sts_rfcref_unverified(7208));
    /* The sizes of the tables as read from the RFC texts (rfcref.c). */
    const char *const *t;
    assert_int_equal(sts_rfcref_sections(8461, &t), 37);
    assert_int_equal(sts_rfcref_sections(8460, &t), 45);
    assert_int_equal(sts_rfcref_sections(7505, &t), 11);
    assert_int_equal(sts_rfcref_sections(6125, &t), 39);
}

/* A number of a section, without a leading zero, at *s (moved past it): 0 or -1. */
static int number(const char **s, unsigned *v)
{
    if (**s < '1' || **s > '9')
        return -1;
    for (*v = 0; **s >= '0' && **s <= '9'; (*s)++)
        *v = *v * 10 + (unsigned)(**s - '0');
    return 0;
}

/* A section's parts: numbers for "4.3.2", the letter then numbers for "A.1" (the letter
 * as 1000 + its place, so that appendices sort after the numbered sections). Returns
 * the number of parts, 0 when s is not of that form or has more than max parts. */
static size_t parts(const char *s, unsigned *p, size_t max)
{
    size_t n = 0;
    if (*s >= 'A' && *s <= 'Z')
        p[n++] = 1000u + (unsigned)(*s++ - 'A');
    else if (number(&s, &p[n++]))
        return 0;
    while (*s == '.' && n < max) {
        s++;
        if (number(&s, &p[n++]))
            return 0;
    }
    return *s ? 0 : n;
}

static int before(const unsigned *a, size_t na, const unsigned *b, size_t nb)
{
    for (size_t i = 0; i < na && i < nb; i++)
        if (a[i] != b[i])
            return a[i] < b[i];
    return na < nb;
}

static void test_tables_well_formed(void **state)
{
    (void)state;
    static const unsigned rfcs[] = {5321, 8461, 8460, 7505};
    for (size_t r = 0; r < sizeof(rfcs) / sizeof(rfcs[0]); r++) {
        const char *const *t;
        size_t n = sts_rfcref_sections(rfcs[r], &t);
        unsigned prev[8];
        size_t nprev = 0;
        for (size_t i = 0; i < n; i++) {
            unsigned p[8];
            size_t np = parts(t[i], p, 8);
            print_message("RFC %u %s\n", rfcs[r], t[i]);
            assert_true(np > 0);
            if (i)
                assert_true(before(prev, nprev, p, np)); /* document order, no repeat */
            memcpy(prev, p, sizeof(p));
            nprev = np;
            if (np > 1) { /* its parent is a section too: "4.3.2" for "4.3.2.1" */
                char parent[32];
                snprintf(parent, sizeof(parent), "RFC %u %.*s", rfcs[r],
                         (int)(strrchr(t[i], '.') - t[i]), t[i]);
                assert_int_equal(sts_rfcref_check(parent, NULL, 0), 0);
            }
            char ref[40], why[64];
            snprintf(ref, sizeof(ref), "RFC %u %s", rfcs[r], t[i]);
            assert_int_equal(sts_rfcref_check(ref, why, sizeof(why)), 0);
        }
    }
    /* The order test itself can fail. */
    unsigned a[2] = {4, 2}, b[2] = {4, 10}, c[1] = {1000};
    assert_true(before(a, 2, b, 2));
    assert_false(before(b, 2, a, 2));
    assert_true(before(b, 2, c, 1));
    assert_int_equal(parts("4.3.21", a, 2), 0); /* three parts do not fit in two */
    assert_int_equal(parts("4.03", a, 2), 0);
    assert_int_equal(parts("a.1", a, 2), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_known),
        cmocka_unit_test(test_tables_well_formed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
