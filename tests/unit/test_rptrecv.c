/* test_rptrecv.c - the world's judgement of received TLS reports (fakedns/rptrecv.h):
 * a table of HTTPS bodies and media types, a table of report messages with one RFC
 * 8460 5.3 rule broken each, and DKIM verified against a key in a zone of the test's
 * own (a good signature made here with libopendkim, a tampered body, a wrong key, no
 * signature, a selector the zone does not publish). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <opendkim/dkim.h>

#include "common/buf.h"
#include "common/rptmsg.h"
#include "fakedns/dnszone.h"
#include "fakedns/rptrecv.h"

static const char REPORT[] =
    "{\"organization-name\":\"Company-X\",\"date-range\":{\"start-datetime\":"
    "\"2016-04-01T00:00:00Z\",\"end-datetime\":\"2016-04-01T23:59:59Z\"},\"contact-info\":"
    "\"sts-reporting@company-x.example\",\"report-id\":\"5065427c-23d3\",\"policies\":[{"
    "\"policy\":{\"policy-type\":\"sts\",\"policy-string\":[\"version: STSv1\",\"mode: testing\","
    "\"mx: mail.example.test\",\"max_age: 86400\"],\"policy-domain\":\"example.test\","
    "\"mx-host\":[\"mail.example.test\"]},\"summary\":{\"total-successful-session-count\":5,"
    "\"total-failure-session-count\":1},\"failure-details\":[{\"result-type\":"
    "\"certificate-expired\",\"sending-mta-ip\":\"192.0.2.1\",\"receiving-mx-hostname\":"
    "\"mail.example.test\",\"failed-session-count\":1}]}]}";

/* Whether rec has an error finding named name; and how many error findings. */
static int has_error(json_t *rec, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(rec, "findings"), i, f)
    {
        if (!strcmp(json_string_value(json_object_get(f, "severity")), "error") &&
            !strcmp(json_string_value(json_object_get(f, "name")), name))
            return 1;
    }
    return 0;
}

static void gz(const char *text, sts_buf *out)
{
    sts_buf_init(out, 0);
    assert_int_equal(sts_rptmsg_gzip(text, strlen(text), out), 0);
}

/* ---- https ---- */

static void test_https(void **state)
{
    (void)state;
    sts_buf g;
    gz(REPORT, &g);
    static const struct {
        const char *ctype;
        int gzip;        /* body: the gzip of REPORT, else REPORT itself (or "x") */
        int junk;        /* body "not a report" */
        int valid;       /* expected valid */
        const char *err; /* the one error finding expected (NULL: none) */
    } T[] = {
        {"application/tlsrpt+gzip", 1, 0, 1, NULL},
        {"Application/TLSRPT+gzip; charset=x", 1, 0, 1, NULL},
        {"application/tlsrpt+json", 0, 0, 1, NULL},
        {"application/tlsrpt+gzip", 0, 0, 0, "not-gzip"},
        {"application/tlsrpt+json", 1, 0, 0, "not-gzip"},
        {"application/json", 1, 0, 0, "content-type"},
        {NULL, 1, 0, 0, "content-type"},
        {"application/tlsrpt+json", 0, 1, 0, "decode"},
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        const char *body = T[i].junk ? "not a report" : T[i].gzip ? g.data : REPORT;
        size_t len = T[i].junk ? 12 : T[i].gzip ? g.len : strlen(REPORT);
        json_t *rec = sts_rptrecv_https(T[i].ctype, NULL, body, len);
        assert_non_null(rec);
        if (json_is_true(json_object_get(rec, "valid")) != T[i].valid ||
            (T[i].err && !has_error(rec, T[i].err))) {
            char *dump = json_dumps(rec, JSON_COMPACT);
            print_error("case %zu: %s\n", i, dump);
            free(dump);
            fail();
        }
        assert_string_equal(json_string_value(json_object_get(rec, "via")), "https");
        assert_int_equal(json_is_true(json_object_get(rec, "gzip")), T[i].gzip && !T[i].junk);
        if (!T[i].junk) {
            assert_string_equal(json_string_value(json_object_get(rec, "report_id")),
                                "5065427c-23d3");
            json_t *doms = json_object_get(rec, "policy_domains");
            assert_string_equal(json_string_value(json_array_get(doms, 0)), "example.test");
        }
        json_decref(rec);
    }
    /* A report that breaks RFC 8460 4.4: findings named "report" with their paths. */
    const char *bad = "{\"organization-name\":\"x\",\"date-range\":{\"start-datetime\":\"x\","
                      "\"end-datetime\":\"2016-04-01T23:59:59Z\"},\"contact-info\":\"c\","
                      "\"report-id\":\"r\",\"policies\":[]}";
    json_t *rec = sts_rptrecv_https("application/tlsrpt+json", NULL, bad, strlen(bad));
    assert_false(json_is_true(json_object_get(rec, "valid")));
    assert_true(has_error(rec, "report"));
    assert_true(json_integer_value(json_object_get(rec, "errors")) >= 2);
    json_decref(rec);
    sts_buf_free(&g);
}

/* ---- mail ---- */

typedef struct msg_opts {
    const char *report_type, *part_type, *subject, *domain;
    int no_submitter;
} msg_opts;

static void message(const msg_opts *o, sts_buf *out)
{
    sts_buf g;
    gz(REPORT, &g);
    char b64[4096];
    int n = EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)g.data, (int)g.len);
    assert_true(n > 0 && (size_t)n < sizeof(b64));
    const char *dom = o->domain ? o->domain : "example.test";
    char subject[256];
    snprintf(subject, sizeof(subject),
             "Report Domain: %s Submitter: reporter.test Report-ID: "
             "<5065427c-23d3>",
             dom);
    sts_buf_init(out, 0);
    sts_buf_appendf(out,
                    "From: tlsrpt@reporter.test\r\nTo: tlsrpt@example.test\r\n"
                    "Date: Sat, 02 Apr 2016 01:00:00 +0000\r\nMessage-ID: <1@reporter.test>\r\n"
                    "Subject: %s\r\nTLS-Report-Domain: %s\r\n%s"
                    "MIME-Version: 1.0\r\n"
                    "Content-Type: multipart/report; report-type=\"%s\"; boundary=\"b1\"\r\n\r\n"
                    "--b1\r\nContent-Type: text/plain\r\n\r\nA TLS report.\r\n"
                    "--b1\r\nContent-Type: %s\r\nContent-Transfer-Encoding: base64\r\n"
                    "Content-Disposition: attachment; filename=\"r.json.gz\"\r\n\r\n%s\r\n"
                    "--b1--\r\n",
                    o->subject ? o->subject : subject, dom,
                    o->no_submitter ? "" : "TLS-Report-Submitter: reporter.test\r\n",
                    o->report_type ? o->report_type : "tlsrpt",
                    o->part_type ? o->part_type : "application/tlsrpt+gzip", b64);
    sts_buf_free(&g);
}

/* A new 2048-bit RSA key as PEM (malloc'd) and its DKIM key record data. */
static char *new_key(char *txt, size_t txtlen)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    assert_non_null(k);
    BIO *b = BIO_new(BIO_s_mem());
    assert_true(PEM_write_bio_PrivateKey_traditional(b, k, NULL, NULL, 0, NULL, NULL));
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    assert_true(n > 0);
    char *pem = malloc((size_t)n + 1); /* the BIO's data has no NUL: not strndup */
    assert_non_null(pem);
    memcpy(pem, p, (size_t)n);
    pem[n] = '\0';
    BIO_free(b);
    unsigned char *der = NULL;
    int dl = i2d_PUBKEY(k, &der);
    assert_true(dl > 0);
    int off = snprintf(txt, txtlen, "v=DKIM1; k=rsa; p=");
    assert_true((size_t)(off + 4 * ((dl + 2) / 3) + 1) < txtlen);
    EVP_EncodeBlock((unsigned char *)txt + off, der, dl);
    OPENSSL_free(der);
    EVP_PKEY_free(k);
    return pem;
}

/* msg signed by libopendkim with pem as s=sel d=reporter.test, into out. */
static void sign(const sts_buf *msg, const char *pem, const char *sel, sts_buf *out)
{
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    DKIM_STAT st;
    DKIM *d = dkim_sign(lib, (const unsigned char *)"t", NULL, (dkim_sigkey_t)pem,
                        (const unsigned char *)sel, (const unsigned char *)"reporter.test",
                        DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
    assert_non_null(d);
    assert_int_equal(dkim_chunk(d, (unsigned char *)msg->data, msg->len), DKIM_STAT_OK);
    assert_int_equal(dkim_chunk(d, NULL, 0), DKIM_STAT_OK);
    assert_int_equal(dkim_eom(d, NULL), DKIM_STAT_OK);
    unsigned char hdr[4096];
    assert_int_equal(dkim_getsighdr(d, hdr, sizeof(hdr), strlen(DKIM_SIGNHEADER ": ")),
                     DKIM_STAT_OK);
    sts_buf_init(out, 0);
    sts_buf_appendf(out, "%s: %s\r\n", DKIM_SIGNHEADER, hdr);
    sts_buf_append(out, msg->data, msg->len);
    dkim_free(d);
    dkim_close(lib);
}

/* A zone publishing txt at s1._domainkey.reporter.test (split into strings). */
static sts_dns_zone *zone_with(const char *txt)
{
    char err[256];
    sts_dns_zone *z = sts_dns_zone_new("example.test", err, sizeof(err));
    assert_non_null(z);
    sts_buf rr;
    sts_buf_init(&rr, 0);
    sts_buf_appendf(&rr, "s1._domainkey.reporter.test. TXT");
    for (size_t i = 0, n = strlen(txt); i < n; i += 200)
        sts_buf_appendf(&rr, " \"%.*s\"", (int)(n - i < 200 ? n - i : 200), txt + i);
    assert_int_equal(sts_dns_zone_add_record(z, "reporter.test", rr.data), 0);
    sts_buf_free(&rr);
    assert_int_equal(sts_dns_zone_finish(z), 0);
    /* The zone gives the record back whole. */
    sts_buf back;
    sts_buf_init(&back, 0);
    assert_int_equal(sts_dns_zone_txt(z, "s1._domainkey.reporter.test", &back), 1);
    assert_int_equal(back.len, strlen(txt));
    assert_memory_equal(back.data, txt, back.len);
    sts_buf_free(&back);
    return z;
}

static const char *dkim_result(json_t *rec)
{
    return json_string_value(json_object_get(json_object_get(rec, "dkim"), "result"));
}

static void test_mail_dkim(void **state)
{
    (void)state;
    char txt[1024], other_txt[1024];
    char *pem = new_key(txt, sizeof(txt));
    char *other = new_key(other_txt, sizeof(other_txt));
    sts_dns_zone *z = zone_with(txt);
    msg_opts o = {0};
    sts_buf msg, good, bad;
    message(&o, &msg);

    sign(&msg, pem, "s1", &good);
    json_t *rec = sts_rptrecv_mail(good.data, good.len, z);
    assert_string_equal(dkim_result(rec), "pass");
    assert_true(json_is_true(json_object_get(rec, "valid")));
    assert_int_equal(json_integer_value(json_object_get(rec, "errors")), 0);
    assert_string_equal(json_string_value(json_object_get(json_object_get(rec, "dkim"), "domain")),
                        "reporter.test");
    json_decref(rec);

    /* One octet of the body changed after signing. */
    char *at = strstr(good.data, "A TLS report.");
    assert_non_null(at);
    at[2] = 't';
    rec = sts_rptrecv_mail(good.data, good.len, z);
    assert_string_equal(dkim_result(rec), "fail");
    assert_non_null(strstr(
        json_string_value(json_object_get(json_object_get(rec, "dkim"), "reason")), "body hash"));
    assert_true(has_error(rec, "dkim"));
    assert_false(json_is_true(json_object_get(rec, "valid")));
    json_decref(rec);

    /* Signed with a key the zone does not publish. */
    sign(&msg, other, "s1", &bad);
    rec = sts_rptrecv_mail(bad.data, bad.len, z);
    assert_string_equal(dkim_result(rec), "fail");
    assert_true(has_error(rec, "dkim"));
    json_decref(rec);
    sts_buf_free(&bad);

    /* A selector the zone has no key for. */
    sign(&msg, pem, "s9", &bad);
    rec = sts_rptrecv_mail(bad.data, bad.len, z);
    assert_string_equal(dkim_result(rec), "fail");
    json_decref(rec);

    /* No signature at all. */
    rec = sts_rptrecv_mail(msg.data, msg.len, z);
    assert_string_equal(dkim_result(rec), "none");
    assert_true(has_error(rec, "dkim"));
    assert_string_equal(json_string_value(json_object_get(rec, "report_id")), "5065427c-23d3");
    json_decref(rec);

    sts_buf_free(&bad);
    sts_buf_free(&good);
    sts_buf_free(&msg);
    sts_dns_zone_free(z);
    free(pem);
    free(other);
}

static void test_mail_headers(void **state)
{
    (void)state;
    char txt[1024];
    char *pem = new_key(txt, sizeof(txt));
    sts_dns_zone *z = zone_with(txt);
    static const struct {
        msg_opts o;
        const char *err;
    } T[] = {
        {{0}, NULL},
        {{.report_type = "tlsrpt-x"}, "report-type"},
        {{.part_type = "application/octet-stream"}, "report-part"},
        {{.subject = "TLS report"}, "subject"},
        {{.subject =
              "Report Domain: example.test Submitter: other.test Report-ID: <5065427c-23d3>"},
         "subject"},
        {{.subject = "Report Domain: example.test Submitter: reporter.test Report-ID: <nope>"},
         "subject"},
        {{.domain = "other.test"}, "tls-report-domain"},
        {{.no_submitter = 1}, "tls-report-submitter"},
    };
    for (size_t i = 0; i < sizeof(T) / sizeof(T[0]); i++) {
        sts_buf msg, signed_msg;
        message(&T[i].o, &msg);
        sign(&msg, pem, "s1", &signed_msg);
        json_t *rec = sts_rptrecv_mail(signed_msg.data, signed_msg.len, z);
        assert_non_null(rec);
        int errors = (int)json_integer_value(json_object_get(rec, "errors"));
        if (T[i].err ? !has_error(rec, T[i].err) || has_error(rec, "dkim") : errors != 0) {
            char *dump = json_dumps(json_object_get(rec, "findings"), JSON_COMPACT);
            print_error("case %zu: %s\n", i, dump);
            free(dump);
            fail();
        }
        assert_string_equal(dkim_result(rec), "pass");
        json_decref(rec);
        sts_buf_free(&msg);
        sts_buf_free(&signed_msg);
    }
    /* Not a message at all. */
    json_t *rec = sts_rptrecv_mail("garbage", 7, z);
    assert_true(has_error(rec, "decode"));
    assert_string_equal(dkim_result(rec), "none");
    json_decref(rec);
    sts_dns_zone_free(z);
    free(pem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_https),
        cmocka_unit_test(test_mail_dkim),
        cmocka_unit_test(test_mail_headers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
