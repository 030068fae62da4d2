/*
 * test_err.c - common/err: every code of the table has its own stable name and a
 * message; codes outside the table are "unknown"; sts_errf truncates and tolerates no
 * buffer.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/err.h"

static void test_table(void **state)
{
    (void)state;
    /* A few names and messages are contracts (logs, JSON): spelled out here. */
    static const struct {
        int code;
        const char *name, *msg;
    } rows[] = {
        {STS_OK, "ok", "success"},
        {STS_ENOMEM, "nomem", "out of memory"},
        {STS_ETIMEDOUT, "timeout", "timed out"},
        {STS_ECLOSED, "closed", "connection closed"},
        {STS_EUNSUPPORTED, "unsupported", "not supported"},
        {1, "unknown", "unknown error"},
        {-15, "unknown", "unknown error"},
        {-1000, "unknown", "unknown error"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        assert_string_equal(sts_errname(rows[i].code), rows[i].name);
        assert_string_equal(sts_strerror(rows[i].code), rows[i].msg);
    }
    /* Every code of the table: a name of its own and a message. */
    static const int codes[] = {
#define CODE(sym, val, name, msg) sym,
        STS_ERRORS(CODE)
#undef CODE
    };
    size_t n = sizeof(codes) / sizeof(codes[0]);
    assert_int_equal(n, 15);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(codes[i], -(int)i); /* 0, -1, ... in order, no gaps */
        assert_string_not_equal(sts_errname(codes[i]), "unknown");
        assert_string_not_equal(sts_strerror(codes[i]), "unknown error");
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(sts_errname(codes[i]), sts_errname(codes[j]));
    }
}

static void test_errf(void **state)
{
    (void)state;
    char err[8] = "xxxxxxx";
    sts_errf(err, sizeof(err), "%s %d", "abc", 12345);
    assert_string_equal(err, "abc 123"); /* truncated to the buffer */
    sts_errf(err, 0, "%s", "untouched");
    assert_string_equal(err, "abc 123");
    sts_errf(NULL, 10, "%s", "nowhere");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_errf),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
