/* test_rptmail.c - the RFC 8460 5.3 report message and its DKIM signature
 * (sender/rptmail.h). The signature is checked by libopendkim's verifier, fed the
 * public key of a key made here, and a changed header or body must fail it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <dkim.h>

#include "common/buf.h"
#include "common/err.h"
#include "sender/rptmail.h"

static const unsigned char GZ[] = {0x1f, 0x8b, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                   0x03, 0xab, 0xae, 0x05, 0x00, 0x43, 0xbf, 0xa6, 0xa3,
                                   0x02, 0x00, 0x00, 0x00, 0xff, 0x00, 0x7f};

static sts_rptmail example(void)
{
    sts_rptmail m = {
        .from = "tlsrpt@reporter.test",
        .to = "reports@example.com",
        .policy_domain = "example.com",
        .submitter = "reporter.test",
        .report_id = "20300101.example.com@reporter.test",
        .filename = "reporter.test!example.com!1893456000!1893542399.json.gz",
        .gz = GZ,
        .gzlen = sizeof(GZ),
        .date = 1893456000 + 86400 + 3661, /* Wed, 02 Jan 2030 01:01:01 */
        .unique = "1893456000.1.2.3",
    };
    return m;
}

static char *build(const sts_rptmail *m)
{
    sts_buf b;
    sts_buf_init(&b, 0);
    char err[256];
    assert_int_equal(sts_rptmail_build(m, &b, err, sizeof(err)), 0);
    assert_int_equal(sts_buf_append(&b, "", 1), 0);
    return (char *)b.data;
}

static void test_headers_and_parts(void **state)
{
    (void)state;
    sts_rptmail m = example();
    char *msg = build(&m);
    /* The header section, in this order, as RFC 8460 5.3 asks. */
    const char *head[] = {
        "From: tlsrpt@reporter.test\r\n",
        "To: reports@example.com\r\n",
        "Date: Wed, 02 Jan 2030 01:01:01 +0000\r\n",
        "Message-ID: <tlsrpt.1893456000.1.2.3@reporter.test>\r\n",
        "Subject: Report Domain: example.com\r\n Submitter: reporter.test\r\n Report-ID: "
        "<20300101.example.com@reporter.test>\r\n",
        "TLS-Report-Domain: example.com\r\n",
        "TLS-Report-Submitter: reporter.test\r\n",
        "MIME-Version: 1.0\r\n",
        "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
        "\tboundary=\"tlsrpt=_1893456000.1.2.3\"\r\n\r\n",
    };
    const char *p = msg;
    for (size_t i = 0; i < sizeof(head) / sizeof(head[0]); i++) {
        assert_memory_equal(p, head[i], strlen(head[i]));
        p += strlen(head[i]);
    }
    /* Two parts, then the closing boundary. */
    const char *text = strstr(p, "--tlsrpt=_1893456000.1.2.3\r\nContent-Type: text/plain;");
    const char *att = strstr(p, "--tlsrpt=_1893456000.1.2.3\r\n"
                                "Content-Type: application/tlsrpt+gzip\r\n"
                                "Content-Transfer-Encoding: base64\r\n"
                                "Content-Disposition: attachment;\r\n"
                                "\tfilename=\"reporter.test!example.com!1893456000!1893542399."
                                "json.gz\"\r\n\r\n");
    assert_non_null(text);
    assert_non_null(att);
    assert_true(text < att);
    const char *b64 = strstr(att, "\r\n\r\n") + 4;
    const char *end = strstr(b64, "\r\n--tlsrpt=_1893456000.1.2.3--\r\n");
    assert_non_null(end);
    assert_string_equal(end + 2, "--tlsrpt=_1893456000.1.2.3--\r\n");
    /* The base64 is the gzip file. */
    unsigned char dec[64];
    int n = EVP_DecodeBlock(dec, (const unsigned char *)b64, (int)(end - b64));
    assert_true(n >= (int)sizeof(GZ));
    assert_memory_equal(dec, GZ, sizeof(GZ));
    /* Every line ends in CRLF and is at most 78 characters (RFC 5322 2.1.1). */
    size_t col = 0;
    for (const char *q = msg; *q; q++) {
        if (*q == '\n') {
            assert_true(q > msg && q[-1] == '\r');
            col = 0;
        } else {
            assert_true(*q != '\r' || q[1] == '\n');
            assert_true(++col <= 79);
        }
    }
    free(msg);
}

static void test_bad_fields(void **state)
{
    (void)state;
    struct {
        int field;
        const char *value;
        const char *errpart;
    } bad[] = {
        {0, NULL, "no From address"},
        {1, "", "no To address"},
        {2, "example.com\r\nBcc: x@y", "control"},
        {3, "reporter.t\xc3\xa9st", "non-ASCII"},
        {4, NULL, "no report id"},
        {5, "a\"b.json.gz", "quote"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sts_rptmail m = example();
        const char **f[] = {&m.from,      &m.to,        &m.policy_domain,
                            &m.submitter, &m.report_id, &m.filename};
        *f[bad[i].field] = bad[i].value;
        sts_buf b;
        sts_buf_init(&b, 0);
        char err[256] = "";
        assert_int_equal(sts_rptmail_build(&m, &b, err, sizeof(err)), STS_EINVAL);
        assert_non_null(strstr(err, bad[i].errpart));
        sts_buf_free(&b);
    }
    sts_rptmail m = example();
    m.gzlen = 0;
    sts_buf b;
    sts_buf_init(&b, 0);
    char err[256];
    assert_int_equal(sts_rptmail_build(&m, &b, err, sizeof(err)), STS_EINVAL);
    sts_buf_free(&b);
}

static void test_selector(void **state)
{
    (void)state;
    assert_true(sts_rptmail_selector_ok("s1"));
    assert_true(sts_rptmail_selector_ok("tlsrpt2030.eu-1"));
    assert_false(sts_rptmail_selector_ok(""));
    assert_false(sts_rptmail_selector_ok("bad_selector"));
    assert_false(sts_rptmail_selector_ok("-s"));
    assert_false(sts_rptmail_selector_ok("s."));
    assert_false(sts_rptmail_selector_ok("a..b"));
}

/* ---- DKIM ----------------------------------------------------------------------------- */

static char key_pem[8192], pub_b64[2048];

static void make_key(void)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    assert_non_null(k);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    int n = BIO_read(b, key_pem, sizeof(key_pem) - 1);
    assert_true(n > 0);
    key_pem[n] = '\0';
    BIO_free(b);
    unsigned char *der = NULL;
    int dl = i2d_PUBKEY(k, &der);
    assert_true(dl > 0);
    EVP_EncodeBlock((unsigned char *)pub_b64, der, dl);
    OPENSSL_free(der);
    EVP_PKEY_free(k);
}

static DKIM_CBSTAT key_lookup(DKIM *d, DKIM_SIGINFO *sig, u_char *buf, size_t len)
{
    (void)d;
    /* Only the selector and domain this test signs with have a key. */
    if (strcmp((const char *)dkim_sig_getselector(sig), "s1") ||
        strcmp((const char *)dkim_sig_getdomain(sig), "reporter.test"))
        return DKIM_CBSTAT_NOTFOUND;
    snprintf((char *)buf, len, "v=DKIM1; k=rsa; p=%s", pub_b64);
    return DKIM_CBSTAT_CONTINUE;
}

/* libopendkim's verdict on a whole message (CRLF lines). */
static DKIM_STAT verify(const char *msg)
{
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    assert_non_null(lib);
    assert_int_equal(dkim_set_key_lookup(lib, key_lookup), DKIM_STAT_OK);
    DKIM_STAT st;
    DKIM *d = dkim_verify(lib, (const unsigned char *)"test", NULL, &st);
    assert_non_null(d);
    const char *sep = strstr(msg, "\r\n\r\n");
    assert_non_null(sep);
    for (const char *p = msg; p < sep + 2;) {
        const char *e = p;
        for (;;) {
            e = strstr(e, "\r\n");
            if (e[2] != ' ' && e[2] != '\t')
                break;
            e += 2;
        }
        assert_int_equal(dkim_header(d, (u_char *)p, (size_t)(e - p)), DKIM_STAT_OK);
        p = e + 2;
    }
    assert_int_equal(dkim_eoh(d), DKIM_STAT_OK);
    assert_int_equal(dkim_body(d, (u_char *)sep + 4, strlen(sep + 4)), DKIM_STAT_OK);
    st = dkim_eom(d, NULL);
    dkim_free(d);
    dkim_close(lib);
    return st;
}

static char *signed_message(const char *selector, const char *domain, int *rc, char *err,
                            size_t errlen)
{
    sts_rptmail m = example();
    char *msg = build(&m);
    sts_buf sig;
    sts_buf_init(&sig, 0);
    *rc = sts_rptmail_sign(msg, strlen(msg), key_pem, strlen(key_pem), selector, domain, &sig, err,
                           errlen);
    if (*rc) {
        sts_buf_free(&sig);
        free(msg);
        return NULL;
    }
    size_t n = sig.len + strlen(msg) + 1;
    char *all = malloc(n);
    assert_non_null(all);
    snprintf(all, n, "%.*s%s", (int)sig.len, (const char *)sig.data, msg);
    sts_buf_free(&sig);
    free(msg);
    return all;
}

static void test_dkim_signature_verifies(void **state)
{
    (void)state;
    make_key();
    int rc;
    char err[512];
    char *all = signed_message("s1", "reporter.test", &rc, err, sizeof(err));
    assert_int_equal(rc, 0);
    assert_memory_equal(all, "DKIM-Signature: ", 16);
    /* the tags the contract asks for */
    char flat[4096] = "";
    size_t o = 0;
    for (const char *p = all; *p && !(p[0] == '\r' && p[2] != ' ' && p[2] != '\t'); p++)
        if (*p != '\r' && *p != '\n' && *p != '\t' && *p != ' ' && o + 1 < sizeof(flat))
            flat[o++] = *p;
    flat[o] = '\0';
    assert_non_null(strstr(flat, "d=reporter.test;"));
    assert_non_null(strstr(flat, "s=s1;"));
    assert_non_null(strstr(flat, "a=rsa-sha256;"));
    assert_non_null(strstr(flat, "c=relaxed/relaxed;"));
    const char *h = strstr(flat, ";h="); /* not bh= */
    assert_non_null(h);
    h += 3;
    for (size_t i = 0; sts_rptmail_signed_headers[i]; i++) {
        char low[4096];
        size_t j;
        for (j = 0; h[j] && h[j] != ';' && j + 1 < sizeof(low); j++)
            low[j] = (char)(h[j] >= 'A' && h[j] <= 'Z' ? h[j] + 32 : h[j]);
        low[j] = '\0';
        char want[64];
        snprintf(want, sizeof(want), "%s", sts_rptmail_signed_headers[i]);
        assert_non_null(strstr(low, want));
    }
    /* libopendkim's verifier agrees ... */
    assert_int_equal(verify(all), DKIM_STAT_OK);
    /* ... and refuses a changed signed header and a changed body. */
    char *t = strdup(all);
    memcpy(strstr(t, "TLS-Report-Domain: example.com") + 19, "examp1e", 7);
    assert_int_not_equal(verify(t), DKIM_STAT_OK);
    free(t);
    t = strdup(all);
    memcpy(strstr(t, "This is an aggregate"), "THIS", 4);
    assert_int_not_equal(verify(t), DKIM_STAT_OK);
    free(t);
    free(all);
}

static void test_dkim_errors(void **state)
{
    (void)state;
    int rc;
    char err[512] = "";
    assert_null(signed_message("bad_sel", "reporter.test", &rc, err, sizeof(err)));
    assert_int_equal(rc, STS_EINVAL);
    assert_non_null(strstr(err, "bad_sel"));
    /* no empty line: not a message */
    sts_buf sig;
    sts_buf_init(&sig, 0);
    const char *nohead = "From: a@b\r\nTo: c@d\r\n";
    assert_int_equal(sts_rptmail_sign(nohead, strlen(nohead), key_pem, strlen(key_pem), "s1",
                                      "reporter.test", &sig, err, sizeof(err)),
                     STS_EINVAL);
    assert_non_null(strstr(err, "no empty line"));
    /* a key that is not a key */
    sts_rptmail m = example();
    char *msg = build(&m);
    rc = sts_rptmail_sign(msg, strlen(msg), "not a key", 9, "s1", "reporter.test", &sig, err,
                          sizeof(err));
    assert_int_equal(rc, STS_EINVAL);
    assert_non_null(strstr(err, "DKIM signing: the key: not a PEM private key"));
    free(msg);
    sts_buf_free(&sig);
}

static void test_load_key(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_rptmail.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    sts_buf pem;
    char err[512];
    /* missing */
    snprintf(path, sizeof(path), "%s/missing.pem", dir);
    sts_buf_init(&pem, 0);
    assert_int_equal(sts_rptmail_load_key(path, &pem, err, sizeof(err)), STS_EIO);
    assert_non_null(strstr(err, path));
    sts_buf_free(&pem);
    /* not PEM */
    snprintf(path, sizeof(path), "%s/junk.pem", dir);
    FILE *fp = fopen(path, "w");
    fputs("hello\n", fp);
    fclose(fp);
    sts_buf_init(&pem, 0);
    assert_int_equal(sts_rptmail_load_key(path, &pem, err, sizeof(err)), STS_EINVAL);
    assert_non_null(strstr(err, "not a PEM private key"));
    sts_buf_free(&pem);
    unlink(path);
    /* an EC key: not RSA */
    snprintf(path, sizeof(path), "%s/ec.pem", dir);
    EVP_PKEY *ec = EVP_EC_gen("P-256");
    fp = fopen(path, "w");
    PEM_write_PrivateKey(fp, ec, NULL, NULL, 0, NULL, NULL);
    fclose(fp);
    EVP_PKEY_free(ec);
    sts_buf_init(&pem, 0);
    assert_int_equal(sts_rptmail_load_key(path, &pem, err, sizeof(err)), STS_EINVAL);
    assert_non_null(strstr(err, "not an RSA key"));
    sts_buf_free(&pem);
    unlink(path);
    /* the RSA key of the DKIM test */
    snprintf(path, sizeof(path), "%s/rsa.pem", dir);
    fp = fopen(path, "w");
    fputs(key_pem, fp);
    fclose(fp);
    sts_buf_init(&pem, 0);
    assert_int_equal(sts_rptmail_load_key(path, &pem, err, sizeof(err)), 0);
    assert_int_equal(pem.len, strlen(key_pem));
    sts_buf_free(&pem);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_headers_and_parts), cmocka_unit_test(test_bad_fields),
        cmocka_unit_test(test_selector),          cmocka_unit_test(test_dkim_signature_verifies),
        cmocka_unit_test(test_dkim_errors),       cmocka_unit_test(test_load_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
