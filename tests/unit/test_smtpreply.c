/* test_smtpreply.c - the SMTP reply parser (sender/smtpreply.h): a table of valid,
 * incomplete and invalid replies (RFC 5321 4.2, RFC 2034 / RFC 3463), caps, and
 * EHLO keyword lookup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/err.h"
#include "sender/smtpreply.h"

typedef struct reply_case {
    const char *name;
    const char *in;
    int rc;               /* expected return */
    int complete;         /* 1: a reply was parsed */
    size_t consumed;      /* expected bytes consumed (when complete) */
    int code;
    const char *enhanced;
    const char *text;     /* expected joined text */
    size_t nlines;
} reply_case;

#define OK(n, i, c, e, t, l) {n, i, 0, 1, sizeof(i) - 1, c, e, t, l}

static const reply_case cases[] = {
    OK("single line", "220 mail.example.test ESMTP\r\n", 220, "", "mail.example.test ESMTP", 1),
    OK("bare code", "250\r\n", 250, "", "", 1),
    OK("bare LF tolerated", "250 ok\n", 250, "", "ok", 1),
    OK("enhanced code", "250 2.1.0 Sender ok\r\n", 250, "2.1.0", "Sender ok", 1),
    OK("enhanced 3-digit parts", "550 5.123.456 no\r\n", 550, "5.123.456", "no", 1),
    OK("enhanced class mismatch is text", "250 5.1.0 odd\r\n", 250, "", "5.1.0 odd", 1),
    OK("enhanced too many digits is text", "250 2.1234.0 x\r\n", 250, "", "2.1234.0 x", 1),
    OK("enhanced glued to text is text", "250 2.1.0x\r\n", 250, "", "2.1.0x", 1),
    OK("enhanced alone", "451 4.7.0\r\n", 451, "4.7.0", "", 1),
    OK("multi-line EHLO",
       "250-mail.example.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SIZE 1000\r\n", 250, "",
       "mail.example.test\nPIPELINING\nSTARTTLS\nSIZE 1000", 4),
    OK("multi-line enhanced", "550-5.7.1 first\r\n550 5.7.1 second\r\n", 550, "5.7.1",
       "first\nsecond", 2),
    OK("empty continuation", "250-\r\n250 done\r\n", 250, "", "\ndone", 2),
    OK("4xx", "421 4.3.2 shutting down\r\n", 421, "4.3.2", "shutting down", 1),
    OK("354", "354 End data with <CR><LF>.<CR><LF>\r\n", 354, "",
       "End data with <CR><LF>.<CR><LF>", 1),
    /* incomplete: wait for more, nothing consumed */
    {"no line end", "250 ok", 0, 0, 0, 0, NULL, NULL, 0},
    {"continuation without last line", "250-one\r\n250-two\r\n", 0, 0, 0, 0, NULL, NULL, 0},
    {"empty input", "", 0, 0, 0, 0, NULL, NULL, 0},
    /* malformed */
    {"letters", "abc hello\r\n", STS_EPROTO, 0, 0, 0, NULL, NULL, 0},
    {"two digits", "25 ok\r\n", STS_EPROTO, 0, 0, 0, NULL, NULL, 0},
    {"1yz code", "150 ok\r\n", STS_EPROTO, 0, 0, 0, NULL, NULL, 0},
    {"6yz code", "650 ok\r\n", STS_EPROTO, 0, 0, 0, NULL, NULL, 0},
    {"second digit 6", "260 ok\r\n", STS_EPROTO, 0, 0, 0, NULL, NULL, 0},
    {"bad separator", "250+ok\r\n", STS_EPROTO, 0, 0, 0, NULL, NULL, 0},
    {"mismatched codes", "250-one\r\n251 two\r\n", STS_EPROTO, 0, 0, 0, NULL, NULL, 0},
    {"empty line", "\r\n", STS_EPROTO, 0, 0, 0, NULL, NULL, 0},
};

static void test_reply_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const reply_case *c = &cases[i];
        sts_smtp_reply r;
        sts_smtp_reply_init(&r);
        size_t used = 99;
        char why[200];
        int rc = sts_smtp_reply_parse(c->in, strlen(c->in), &r, &used, why, sizeof(why));
        if (rc != c->rc)
            fail_msg("%s: rc %d, expected %d (%s)", c->name, rc, c->rc, why);
        if (c->rc == STS_EPROTO && !why[0])
            fail_msg("%s: no reason given", c->name);
        if (!rc && c->complete) {
            if (used != c->consumed)
                fail_msg("%s: consumed %zu, expected %zu", c->name, used, c->consumed);
            if (r.code != c->code)
                fail_msg("%s: code %d, expected %d", c->name, r.code, c->code);
            if (strcmp(r.enhanced, c->enhanced))
                fail_msg("%s: enhanced '%s', expected '%s'", c->name, r.enhanced, c->enhanced);
            if (strcmp(r.text.data, c->text))
                fail_msg("%s: text '%s', expected '%s'", c->name, r.text.data, c->text);
            if (r.nlines != c->nlines)
                fail_msg("%s: %zu lines, expected %zu", c->name, r.nlines, c->nlines);
        } else if (!rc && used != 0) {
            fail_msg("%s: consumed %zu of an incomplete reply", c->name, used);
        }
        sts_smtp_reply_free(&r);
    }
}

/* Two replies in one buffer: the first is parsed, the rest is left. */
static void test_reply_leaves_rest(void **state)
{
    (void)state;
    const char in[] = "220 go\r\n250 injected\r\n";
    sts_smtp_reply r;
    sts_smtp_reply_init(&r);
    size_t used = 0;
    assert_int_equal(sts_smtp_reply_parse(in, sizeof(in) - 1, &r, &used, NULL, 0), 0);
    assert_int_equal(r.code, 220);
    assert_int_equal(used, 8);
    assert_int_equal(sts_smtp_reply_parse(in + used, sizeof(in) - 1 - used, &r, &used, NULL, 0), 0);
    assert_int_equal(r.code, 250);
    assert_string_equal(r.text.data, "injected");
    sts_smtp_reply_free(&r);
}

static void test_reply_caps(void **state)
{
    (void)state;
    sts_smtp_reply r;
    sts_smtp_reply_init(&r);
    size_t used = 0;
    char why[200];

    /* A 1000-byte line (over RFC 5321's 512) is tolerated. */
    char *line = malloc(1100);
    memcpy(line, "250 ", 4);
    memset(line + 4, 'a', 1000);
    memcpy(line + 1004, "\r\n", 3);
    assert_int_equal(sts_smtp_reply_parse(line, strlen(line), &r, &used, why, sizeof(why)), 0);
    assert_int_equal(used, 1006);
    free(line);

    /* A line without end beyond STS_SMTP_LINE_MAX is too big, not "incomplete". */
    char *big = malloc(STS_SMTP_LINE_MAX + 10);
    memcpy(big, "250 ", 4);
    memset(big + 4, 'b', STS_SMTP_LINE_MAX + 5);
    assert_int_equal(sts_smtp_reply_parse(big, STS_SMTP_LINE_MAX + 9, &r, &used, why, sizeof(why)),
                     STS_ETOOBIG);
    assert_non_null(strstr(why, "longer than"));
    free(big);

    /* Many continuation lines adding up beyond STS_SMTP_REPLY_MAX. */
    size_t n = STS_SMTP_REPLY_MAX / 100 + 10;
    char *many = malloc(n * 100 + 10);
    size_t off = 0;
    for (size_t i = 0; i < n; i++) {
        memcpy(many + off, "250-", 4);
        memset(many + off + 4, 'c', 94);
        memcpy(many + off + 98, "\r\n", 2);
        off += 100;
    }
    memcpy(many + off, "250 end\r\n", 9);
    off += 9;
    assert_int_equal(sts_smtp_reply_parse(many, off, &r, &used, why, sizeof(why)), STS_ETOOBIG);
    free(many);

    /* A NUL inside a line is a protocol error. */
    const char nul[] = "250 a\0b\r\n";
    assert_int_equal(sts_smtp_reply_parse(nul, sizeof(nul) - 1, &r, &used, why, sizeof(why)),
                     STS_EPROTO);
    sts_smtp_reply_free(&r);
}

static void test_reply_ext(void **state)
{
    (void)state;
    const char in[] = "250-mail.example.test hello STARTTLS\r\n250-SIZE 100\r\n"
                      "250-starttls\r\n250 8BITMIME\r\n";
    const char in2[] = "250-mail.example.test\r\n250-STARTTLSX\r\n250 X-STARTTLS\r\n";
    sts_smtp_reply r;
    sts_smtp_reply_init(&r);
    size_t used;
    assert_int_equal(sts_smtp_reply_parse(in, sizeof(in) - 1, &r, &used, NULL, 0), 0);
    assert_true(sts_smtp_reply_has_ext(&r, "STARTTLS")); /* case-insensitive */
    assert_true(sts_smtp_reply_has_ext(&r, "SIZE"));
    assert_true(sts_smtp_reply_has_ext(&r, "8BITMIME"));
    assert_false(sts_smtp_reply_has_ext(&r, "PIPELINING"));
    char line[64];
    assert_int_equal(sts_smtp_reply_line(&r, 1, line, sizeof(line)), 0);
    assert_string_equal(line, "SIZE 100");
    assert_int_equal(sts_smtp_reply_line(&r, 4, line, sizeof(line)), STS_ENOTFOUND);
    /* The greeting line never counts, nor do longer keywords. */
    assert_int_equal(sts_smtp_reply_parse(in2, sizeof(in2) - 1, &r, &used, NULL, 0), 0);
    assert_false(sts_smtp_reply_has_ext(&r, "STARTTLS"));
    sts_smtp_reply_free(&r);
}

/* RFC 1870 4: "SIZE" [SP 1*DIGIT]; 0 or no number = no fixed maximum. */
static void test_reply_size(void **state)
{
    (void)state;
    static const struct {
        const char *ehlo;
        int offered;
        unsigned long long limit;
        const char *param;
    } t[] = {
        {"250-m\r\n250 SIZE 10240000\r\n", 1, 10240000ULL, "10240000"},
        {"250-m\r\n250-PIPELINING\r\n250 size 1000\r\n", 1, 1000, "1000"},
        {"250-m\r\n250 SIZE\r\n", 1, 0, ""},
        {"250-m\r\n250 SIZE 0\r\n", 1, 0, "0"},
        {"250-m\r\n250 SIZE 12x\r\n", 1, 0, "12x"},
        {"250-m\r\n250 SIZE 99999999999999999999999\r\n", 1, 0, "99999999999999999999999"},
        {"250-m\r\n250 SIZEX 10\r\n", 0, 0, ""},
        {"250 m SIZE 10\r\n", 0, 0, ""}, /* the greeting line is no keyword */
        {"250-m\r\n250 PIPELINING\r\n", 0, 0, ""},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        sts_smtp_reply r;
        sts_smtp_reply_init(&r);
        size_t used;
        assert_int_equal(sts_smtp_reply_parse(t[i].ehlo, strlen(t[i].ehlo), &r, &used, NULL, 0),
                         0);
        unsigned long long lim = 77;
        char param[64];
        if (sts_smtp_reply_size_limit(&r, &lim) != t[i].offered || lim != t[i].limit)
            fail_msg("size row %zu: limit %llu", i, lim);
        if (sts_smtp_reply_ext_param(&r, "SIZE", param, sizeof(param)) != t[i].offered ||
            strcmp(param, t[i].param))
            fail_msg("size row %zu: param '%s'", i, param);
        sts_smtp_reply_free(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_table),
        cmocka_unit_test(test_reply_size),
        cmocka_unit_test(test_reply_leaves_rest),
        cmocka_unit_test(test_reply_caps),
        cmocka_unit_test(test_reply_ext),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
