/* test_rptmsg.c - a received TLS report as JSON text: plain JSON, gzip, and whole mail
 * messages (multipart/report with a base64 gzip part, nested multipart, a
 * quoted-printable JSON part); what is refused and why; gzip writing and its cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/rptmsg.h"

#define REPORT "{\"organization-name\": \"x\"}"

static void b64(const unsigned char *in, size_t n, sts_buf *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16 | (i + 1 < n ? (unsigned)in[i + 1] << 8 : 0) |
                     (i + 2 < n ? in[i + 2] : 0);
        char q[4] = {t[v >> 18 & 63], t[v >> 12 & 63], i + 1 < n ? t[v >> 6 & 63] : '=',
                     i + 2 < n ? t[v & 63] : '='};
        assert_int_equal(sts_buf_append(out, q, 4), 0);
        if (i % 57 == 54)
            assert_int_equal(sts_buf_append(out, "\r\n", 2), 0);
    }
}

static void decode_ok(const char *in, size_t len, sts_rptmsg_form want_form, const char *want)
{
    sts_buf out;
    sts_buf_init(&out, 0);
    sts_rptmsg_form form = STS_RPTMSG_GZIP;
    char err[256] = "";
    int rc = sts_rptmsg_decode(in, len, &out, &form, err, sizeof(err));
    if (rc)
        fail_msg("decode: %d %s", rc, err);
    assert_int_equal(form, want_form);
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    sts_buf_free(&out);
}

static void decode_bad(const char *in, size_t len, int want_rc, const char *msgpart)
{
    sts_buf out;
    sts_buf_init(&out, 0);
    sts_rptmsg_form form;
    char err[256] = "";
    int rc = sts_rptmsg_decode(in, len, &out, &form, err, sizeof(err));
    if (rc != want_rc || !strstr(err, msgpart))
        fail_msg("wanted %d '%s', got %d '%s'", want_rc, msgpart, rc, err);
    sts_buf_free(&out);
}

static void test_json_and_gzip(void **state)
{
    (void)state;
    decode_ok(REPORT, strlen(REPORT), STS_RPTMSG_JSON, REPORT);
    decode_ok("\r\n  " REPORT, strlen(REPORT) + 4, STS_RPTMSG_JSON, "\r\n  " REPORT);
    sts_buf gz;
    sts_buf_init(&gz, 0);
    assert_int_equal(sts_rptmsg_gzip(REPORT, strlen(REPORT), &gz), 0);
    assert_true(gz.len > 18);
    assert_int_equal((unsigned char)gz.data[0], 0x1f);
    assert_int_equal((unsigned char)gz.data[1], 0x8b);
    decode_ok(gz.data, gz.len, STS_RPTMSG_GZIP, REPORT);
    /* Truncated and corrupted streams. */
    decode_bad(gz.data, gz.len - 8, STS_ESYNTAX, "corrupt gzip stream");
    gz.data[12] ^= 0x55;
    decode_bad(gz.data, gz.len, STS_ESYNTAX, "corrupt gzip");
    sts_buf_free(&gz);
    decode_bad("hello world", 11, STS_ESYNTAX, "neither JSON");
    decode_bad("", 0, STS_ESYNTAX, "neither JSON");
}

/* A gzip bomb stops at the cap. */
static void test_cap(void **state)
{
    (void)state;
    size_t n = STS_RPTMSG_MAX + 4096;
    char *zeros = calloc(1, n);
    assert_non_null(zeros);
    sts_buf gz;
    sts_buf_init(&gz, 0);
    assert_int_equal(sts_rptmsg_gzip(zeros, n, &gz), 0);
    assert_true(gz.len < 100000);
    decode_bad(gz.data, gz.len, STS_ETOOBIG, "larger than");
    sts_buf_free(&gz);
    free(zeros);
}

static void test_messages(void **state)
{
    (void)state;
    sts_buf gz, enc, msg;
    sts_buf_init(&gz, 0);
    sts_buf_init(&enc, 0);
    sts_buf_init(&msg, 0);
    assert_int_equal(sts_rptmsg_gzip(REPORT, strlen(REPORT), &gz), 0);
    b64((const unsigned char *)gz.data, gz.len, &enc);
    /* RFC 8460 5.3's shape: multipart/report, a text part, the gzip part. */
    assert_int_equal(sts_buf_appendf(&msg,
                                     "From: tlsrpt@sender.test\r\n"
                                     "Subject: Report Domain: example.test Submitter: sender.test "
                                     "Report-ID: <1@sender.test>\r\n"
                                     "TLS-Report-Domain: example.test\r\n"
                                     "MIME-Version: 1.0\r\n"
                                     "Content-Type: multipart/report;\r\n"
                                     "\treport-type=\"tlsrpt\"; boundary=\"----=_b1\"\r\n"
                                     "\r\n"
                                     "preamble\r\n"
                                     "------=_b1\r\n"
                                     "Content-Type: text/plain; charset=us-ascii\r\n"
                                     "\r\n"
                                     "This is a TLS report.\r\n"
                                     "------=_b1\r\n"
                                     "Content-Type: application/tlsrpt+gzip\r\n"
                                     "Content-Transfer-Encoding: base64\r\n"
                                     "Content-Disposition: attachment;\r\n"
                                     " filename=\"sender.test!example.test!1!2.json.gz\"\r\n"
                                     "\r\n"
                                     "%s\r\n"
                                     "------=_b1--\r\n",
                                     enc.data),
                     0);
    decode_ok(msg.data, msg.len, STS_RPTMSG_MESSAGE, REPORT);

    /* Nested multipart, the report found by its file name, quoted-printable JSON. */
    sts_buf_reset(&msg);
    assert_int_equal(sts_buf_appendf(&msg, "Content-Type: multipart/mixed; boundary=outer\n"
                                           "\n"
                                           "--outerwear is not a delimiter\n"
                                           "--outer\n"
                                           "Content-Type: multipart/alternative; boundary=inner\n"
                                           "\n"
                                           "--inner\n"
                                           "Content-Type: text/plain\n"
                                           "\n"
                                           "hi\n"
                                           "--inner\n"
                                           "Content-Type: application/octet-stream; "
                                           "name=report.json\n"
                                           "Content-Transfer-Encoding: quoted-printable\n"
                                           "\n"
                                           "{\"organization-name\"=3A =\n\"x\"}\n"
                                           "--inner--\n"
                                           "--outer--\n"),
                     0);
    decode_ok(msg.data, msg.len, STS_RPTMSG_MESSAGE, REPORT);

    /* A line that begins with the delimiter but goes on is content (RFC 2046 5.1.1). */
    sts_buf_reset(&msg);
    assert_int_equal(sts_buf_appendf(&msg, "Content-Type: multipart/mixed; boundary=b1\n\n"
                                           "--b1\n"
                                           "Content-Type: application/json\n\n"
                                           "{\"a\":\n--b1x\n}\n"
                                           "--b1 \n"
                                           "Content-Type: text/plain\n\nbye\n"
                                           "--b1--\n"),
                     0);
    decode_ok(msg.data, msg.len, STS_RPTMSG_MESSAGE, "{\"a\":\n--b1x\n}");

    /* A single-part message whose body is the gzip itself. */
    sts_buf_reset(&msg);
    assert_int_equal(sts_buf_appendf(&msg,
                                     "Content-Type: application/tlsrpt+gzip\r\n"
                                     "Content-Transfer-Encoding: base64\r\n\r\n%s\r\n",
                                     enc.data),
                     0);
    decode_ok(msg.data, msg.len, STS_RPTMSG_MESSAGE, REPORT);

    /* What is refused. */
    static const struct {
        const char *msg, *why;
    } bad[] = {
        {"Subject: hi\r\n\r\nplain text\r\n", "without a report part"},
        {"Content-Type: multipart/report\r\n\r\n--x\r\n", "without a boundary parameter"},
        {"Content-Type: multipart/mixed; boundary=b\r\n\r\nno delimiter here\r\n", "never appears"},
        {"Content-Type: application/tlsrpt+gzip\r\nContent-Transfer-Encoding: base64\r\n\r\n"
         "H4s*\r\n",
         "stray character"},
        {"Content-Type: application/tlsrpt+gzip\r\n\r\n{}\r\n", "is not gzip data"},
        {"Content-Type: application/json\r\nContent-Transfer-Encoding: x-uue\r\n\r\n{}\r\n",
         "unknown Content-Transfer-Encoding"},
        {"Content-Type: application/json\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
         "{=ZZ}\r\n",
         "bad =XX escape"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        decode_bad(bad[i].msg, strlen(bad[i].msg), STS_ESYNTAX, bad[i].why);

    /* Nesting is bounded. */
    sts_buf_reset(&msg);
    for (int i = 0; i < 12; i++)
        assert_int_equal(sts_buf_appendf(&msg,
                                         "Content-Type: multipart/mixed; boundary=b%d\n\n"
                                         "--b%d\n",
                                         i, i),
                         0);
    decode_bad(msg.data, msg.len, STS_ESYNTAX, "nested deeper");
    sts_buf_free(&gz);
    sts_buf_free(&enc);
    sts_buf_free(&msg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_and_gzip),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_messages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
