/*
 * test_buf.c - common/buf: capped buffers (append, cap, consume, line ends), the
 * bounded read cursor, sts_strdup_n and sts_array_grow, each from a table of rows.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/buf.h"
#include "common/err.h"

/* Appends into a buffer with a cap: what each returns and what the buffer holds. */
static void test_append_cap(void **state)
{
    (void)state;
    static const struct {
        const char *what;
        size_t max;
        const char *parts[4]; /* appended in order, NULL ends */
        int last_rc;          /* the result of the last append */
        const char *holds;
    } rows[] = {
        {"no cap", 0, {"abc", "def", NULL}, 0, "abcdef"},
        {"exactly the cap", 6, {"abc", "def", NULL}, 0, "abcdef"},
        {"one over the cap fails, buffer unchanged", 5, {"abc", "def", NULL}, STS_ETOOBIG, "abc"},
        {"after a refusal a smaller append fits", 5, {"abc", "def", "de", NULL}, 0, "abcde"},
        {"empty appends", 1, {"", "", NULL}, 0, ""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        print_message("row: %s\n", rows[i].what);
        sts_buf b;
        sts_buf_init(&b, rows[i].max);
        int rc = 0;
        for (size_t k = 0; rows[i].parts[k]; k++)
            rc = sts_buf_append(&b, rows[i].parts[k], strlen(rows[i].parts[k]));
        assert_int_equal(rc, rows[i].last_rc);
        assert_int_equal(b.len, strlen(rows[i].holds));
        if (b.data) {
            assert_memory_equal(b.data, rows[i].holds, b.len);
            assert_int_equal(b.data[b.len], '\0'); /* always NUL-terminated past len */
        } else {
            assert_int_equal(b.len, 0);
        }
        sts_buf_free(&b);
        assert_null(b.data);
        assert_int_equal(b.len, 0);
    }
}

/* A buffer grows across many appends and keeps every byte. */
static void test_append_grows(void **state)
{
    (void)state;
    sts_buf b;
    sts_buf_init(&b, 0);
    for (int i = 0; i < 5000; i++)
        assert_int_equal(sts_buf_appendf(&b, "%04d,", i % 10000), 0);
    assert_int_equal(b.len, 5000 * 5);
    assert_true(b.cap > b.len);
    assert_memory_equal(b.data, "0000,0001,", 10);
    assert_memory_equal(b.data + b.len - 5, "4999,", 5);
    assert_int_equal(b.data[b.len], '\0');
    sts_buf_free(&b);
}

static void test_appendf_cap(void **state)
{
    (void)state;
    sts_buf b;
    sts_buf_init(&b, 8);
    assert_int_equal(sts_buf_appendf(&b, "%s-%d", "ab", 12), 0);
    assert_string_equal(b.data, "ab-12");
    assert_int_equal(sts_buf_appendf(&b, "%s", "xyzw"), STS_ETOOBIG); /* 9 > 8 */
    assert_string_equal(b.data, "ab-12");
    assert_int_equal(sts_buf_appendf(&b, "%s", "xyz"), 0);
    assert_string_equal(b.data, "ab-12xyz");
    sts_buf_free(&b);
}

static void test_consume_reset(void **state)
{
    (void)state;
    static const struct {
        const char *holds;
        size_t n;
        const char *left;
    } rows[] = {
        {"abcdef", 0, "abcdef"}, {"abcdef", 2, "cdef"}, {"abcdef", 6, ""},
        {"abcdef", 60, ""},      {"", 3, ""},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sts_buf b;
        sts_buf_init(&b, 0);
        assert_int_equal(sts_buf_append(&b, rows[i].holds, strlen(rows[i].holds)), 0);
        sts_buf_consume(&b, rows[i].n);
        assert_int_equal(b.len, strlen(rows[i].left));
        assert_string_equal(b.data, rows[i].left);
        sts_buf_free(&b);
    }
    sts_buf b;
    sts_buf_init(&b, 0);
    sts_buf_reset(&b); /* nothing allocated yet: a no-op */
    assert_null(b.data);
    assert_int_equal(sts_buf_append(&b, "xy", 2), 0);
    sts_buf_reset(&b);
    assert_int_equal(b.len, 0);
    assert_string_equal(b.data, "");
    sts_buf_free(&b);
}

/* sts_buf_line: the length of the first complete line with its LF, and without CRLF/LF. */
static void test_line(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t line, content;
    } rows[] =
        {
            {"", 0, 0},        {"abc", 0, 0}, {"abc\r", 0, 0}, {"abc\n", 4, 3},
            {"abc\r\n", 5, 3}, {"\n", 1, 0},  {"\r\n", 2, 0},  {"a\r\nb\n", 3, 1},
            {"a\rb\n", 4, 3}, /* a CR inside the line is content */
            {"\r\r\n", 3, 1},
        };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        sts_buf b;
        sts_buf_init(&b, 0);
        assert_int_equal(sts_buf_append(&b, rows[i].in, strlen(rows[i].in)), 0);
        size_t content = 999;
        size_t line = sts_buf_line(&b, &content);
        assert_int_equal(line, rows[i].line);
        if (line)
            assert_int_equal(content, rows[i].content);
        assert_int_equal(sts_buf_line(&b, NULL), rows[i].line);
        sts_buf_free(&b);
    }
}

/* The cursor never reads past its end; a read that does not fit fails and moves
 * nothing. */
static void test_cursor(void **state)
{
    (void)state;
    static const uint8_t wire[] = {0x01, 0x02, 0x03, 0xfe, 0xff};
    sts_cur c;
    sts_cur_init(&c, wire, sizeof(wire));
    uint8_t u8 = 0;
    uint16_t u16 = 0;
    uint8_t two[2];
    assert_int_equal(sts_cur_left(&c), 5);
    assert_int_equal(sts_cur_u8(&c, &u8), 0);
    assert_int_equal(u8, 0x01);
    assert_int_equal(sts_cur_u16(&c, &u16), 0);
    assert_int_equal(u16, 0x0203); /* network order */
    assert_int_equal(sts_cur_left(&c), 2);
    assert_int_equal(sts_cur_bytes(&c, two, 3), STS_ETOOBIG);
    assert_int_equal(c.off, 3);
    assert_int_equal(sts_cur_skip(&c, 3), STS_ETOOBIG);
    assert_int_equal(sts_cur_u16(&c, &u16), 0);
    assert_int_equal(u16, 0xfeff);
    assert_int_equal(sts_cur_left(&c), 0);
    assert_int_equal(sts_cur_u8(&c, &u8), STS_ETOOBIG);
    assert_int_equal(u8, 0x01); /* untouched */
    assert_int_equal(sts_cur_u16(&c, &u16), STS_ETOOBIG);
    assert_int_equal(sts_cur_skip(&c, 0), 0);
    /* An empty cursor. */
    sts_cur_init(&c, NULL, 0);
    assert_int_equal(sts_cur_u8(&c, &u8), STS_ETOOBIG);
    assert_int_equal(sts_cur_bytes(&c, NULL, 0), 0);
}

static void test_strdup_n(void **state)
{
    (void)state;
    /* Not a string: no NUL within n, and the copy stops at n. */
    static const char raw[4] = {'a', 'b', 'c', 'd'};
    char *d = sts_strdup_n(raw, 3);
    assert_non_null(d);
    assert_string_equal(d, "abc");
    free(d);
    d = sts_strdup_n(raw, 0);
    assert_non_null(d);
    assert_string_equal(d, "");
    free(d);
    /* An embedded NUL is copied, and the copy is terminated after n. */
    d = sts_strdup_n("x\0y", 3);
    assert_non_null(d);
    assert_memory_equal(d, "x\0y\0", 4);
    free(d);
}

/* sts_array_grow: the capacity doubles from the current one, or from first, until
 * the need fits; a need that fits changes nothing. */
static void test_array_grow(void **state)
{
    (void)state;
    static const struct {
        size_t cap, need, first;
        size_t new_cap;
    } rows[] = {
        {0, 1, 8, 8},  {0, 8, 8, 8}, {0, 9, 8, 16}, {0, 100, 4, 128}, {8, 8, 4, 8},
        {8, 9, 4, 16}, {8, 0, 4, 8}, {3, 4, 64, 6}, {16, 17, 1, 32},  {1, 1000, 1, 1024},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t cap = rows[i].cap;
        int *v = cap ? calloc(cap, sizeof(*v)) : NULL;
        for (size_t k = 0; k < cap; k++)
            v[k] = (int)k + 1;
        int *before = v;
        assert_int_equal(sts_array_grow((void **)&v, &cap, rows[i].need, sizeof(*v), rows[i].first),
                         0);
        assert_int_equal(cap, rows[i].new_cap);
        if (rows[i].need <= rows[i].cap)
            assert_ptr_equal(v, before); /* nothing to do: not even a realloc */
        for (size_t k = 0; k < rows[i].cap; k++)
            assert_int_equal(v[k], (int)k + 1); /* the elements survive the move */
        if (cap)
            v[cap - 1] = 7; /* the whole new capacity is there (ASan checks) */
        free(v);
    }
    /* A size that would overflow: ENOMEM, nothing changed. */
    char *p = NULL;
    size_t cap = 0;
    assert_int_equal(sts_array_grow((void **)&p, &cap, SIZE_MAX / 2 + 2, 1, 1), STS_ENOMEM);
    assert_int_equal(sts_array_grow((void **)&p, &cap, SIZE_MAX / 8, 16, 1), STS_ENOMEM);
    assert_null(p);
    assert_int_equal(cap, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_append_cap),  cmocka_unit_test(test_append_grows),
        cmocka_unit_test(test_appendf_cap), cmocka_unit_test(test_consume_reset),
        cmocka_unit_test(test_line),        cmocka_unit_test(test_cursor),
        cmocka_unit_test(test_strdup_n),    cmocka_unit_test(test_array_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
