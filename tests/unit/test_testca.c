/*
 * test_testca.c - unit tests of common/testca.c: names, CN, dates, issuer,
 * extensions, self-signed leaves, intermediate chains verified by OpenSSL, and PEM
 * files written and read back. Exit status 0 when every test passes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/testca.h"

#include <dirent.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY (24L * 3600L)
/* A fixed "now" so dates are exact: 2030-01-01T00:00:00Z. */
#define NOW ((time_t)1893456000)

/* The DNS SANs of x joined by ",", "" when the extension is absent. */
static void san_list(X509 *x, char *out, size_t cap, int *has_ext)
{
    out[0] = '\0';
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    *has_ext = gens != NULL;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        assert_int_equal(g->type, GEN_DNS);
        size_t len = strlen(out);
        snprintf(out + len, cap - len, "%s%.*s", i ? "," : "",
                 ASN1_STRING_length(g->d.dNSName),
                 (const char *)ASN1_STRING_get0_data(g->d.dNSName));
    }
    GENERAL_NAMES_free(gens);
}

static void name_cn(const X509_NAME *n, char *out, size_t cap)
{
    out[0] = '\0';
    X509_NAME_get_text_by_NID((X509_NAME *)n, NID_commonName, out, (int)cap);
}

static time_t asn1_time_t(const ASN1_TIME *t)
{
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    return timegm(&tm);
}

typedef struct mint_case {
    const char *label;
    const char *names[3];
    size_t nnames;
    const char *cn;
    int no_san;
    time_t not_before, not_after;
    int self_signed;
    sts_key_type key_type;
    /* expectations */
    const char *want_cn;
    const char *want_sans; /* NULL = no SAN extension */
    time_t want_nb, want_na;
} mint_case;

static const mint_case mint_cases[] = {
    {"one name", {"mx.example.test"}, 1, NULL, 0, 0, 0, 0, STS_KEY_EC_P256,
     "mx.example.test", "mx.example.test", NOW - DAY, NOW + 90 * DAY},
    {"two names, explicit cn", {"a.example.test", "*.b.example.test"}, 2, "Some CN", 0,
     NOW - 5 * DAY, NOW + 5 * DAY, 0, STS_KEY_EC_P256, "Some CN",
     "a.example.test,*.b.example.test", NOW - 5 * DAY, NOW + 5 * DAY},
    {"cn only, no san", {"mx.example.test"}, 1, "mx.example.test", 1, 0, 0, 0,
     STS_KEY_EC_P256, "mx.example.test", NULL, NOW - DAY, NOW + 90 * DAY},
    {"no names", {NULL}, 0, NULL, 0, 0, 0, 0, STS_KEY_EC_P256, "ststest leaf", NULL,
     NOW - DAY, NOW + 90 * DAY},
    {"expired", {"old.example.test"}, 1, NULL, 0, NOW - 30 * DAY, NOW - DAY, 0,
     STS_KEY_EC_P256, "old.example.test", "old.example.test", NOW - 30 * DAY, NOW - DAY},
    {"self-signed", {"self.example.test"}, 1, NULL, 0, 0, 0, 1, STS_KEY_EC_P256,
     "self.example.test", "self.example.test", NOW - DAY, NOW + 90 * DAY},
    {"rsa", {"rsa.example.test"}, 1, NULL, 0, 0, 0, 0, STS_KEY_RSA_2048,
     "rsa.example.test", "rsa.example.test", NOW - DAY, NOW + 90 * DAY},
};

static void test_mint_table(void **state)
{
    char err[256] = "";
    sts_ca *ca = sts_ca_new("ststest root", NOW, err, sizeof(err));
    assert_non_null(ca);
    for (size_t i = 0; i < sizeof(mint_cases) / sizeof(mint_cases[0]); i++) {
        const mint_case *c = &mint_cases[i];
        print_message("case: %s\n", c->label);
        sts_cert_spec spec = {.names = c->names,
                              .nnames = c->nnames,
                              .cn = c->cn,
                              .no_san = c->no_san,
                              .not_before = c->not_before,
                              .not_after = c->not_after,
                              .self_signed = c->self_signed,
                              .key_type = c->key_type};
        X509 *x = NULL;
        EVP_PKEY *k = NULL;
        assert_int_equal(sts_ca_mint(ca, &spec, NOW, &x, &k), 0);
        assert_non_null(x);
        assert_non_null(k);

        char buf[512];
        name_cn(X509_get_subject_name(x), buf, sizeof(buf));
        assert_string_equal(buf, c->want_cn);
        int has_san = 0;
        san_list(x, buf, sizeof(buf), &has_san);
        if (c->want_sans) {
            assert_true(has_san);
            assert_string_equal(buf, c->want_sans);
        } else {
            assert_false(has_san);
        }
        assert_int_equal(asn1_time_t(X509_get0_notBefore(x)), c->want_nb);
        assert_int_equal(asn1_time_t(X509_get0_notAfter(x)), c->want_na);
        assert_int_equal(X509_get_version(x), X509_VERSION_3);
        assert_int_equal(X509_check_private_key(x, k), 1);
        assert_int_equal(EVP_PKEY_is_a(k, c->key_type == STS_KEY_RSA_2048 ? "RSA" : "EC"), 1);
        /* A leaf: not a CA, usable as a TLS server certificate. */
        assert_int_equal(X509_check_ca(x), 0);
        assert_int_equal(X509_check_purpose(x, X509_PURPOSE_SSL_SERVER, 0), 1);
        assert_non_null(X509_get0_subject_key_id(x));
        if (c->self_signed) {
            assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x), X509_get_subject_name(x)),
                             0);
            assert_int_equal(X509_verify(x, k), 1);
            assert_int_not_equal(X509_verify(x, sts_ca_key(ca)), 1);
        } else {
            assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(x),
                                           X509_get_subject_name(sts_ca_cert(ca))),
                             0);
            assert_int_equal(X509_verify(x, sts_ca_key(ca)), 1);
            assert_int_equal(X509_check_issued(sts_ca_cert(ca), x), X509_V_OK);
        }
        ERR_clear_error();
        X509_free(x);
        EVP_PKEY_free(k);
    }
    sts_ca_free(ca);
}

static void test_ca_cert(void **state)
{
    char err[256] = "";
    sts_ca *ca = sts_ca_new("ststest root", NOW, err, sizeof(err));
    assert_non_null(ca);
    X509 *c = sts_ca_cert(ca);
    char cn[128];
    name_cn(X509_get_subject_name(c), cn, sizeof(cn));
    assert_string_equal(cn, "ststest root");
    assert_int_equal(X509_NAME_cmp(X509_get_issuer_name(c), X509_get_subject_name(c)), 0);
    assert_int_equal(X509_check_ca(c), 1);
    assert_int_equal(X509_verify(c, sts_ca_key(ca)), 1);
    assert_int_equal(asn1_time_t(X509_get0_notBefore(c)), NOW - DAY);
    assert_true(asn1_time_t(X509_get0_notAfter(c)) >= NOW + 3650 * DAY);
    /* basicConstraints is critical on a CA. */
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(c, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_true(bc->ca);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    sts_ca_free(ca);

    /* Bad arguments give an error, not a CA. */
    err[0] = '\0';
    assert_null(sts_ca_new("", NOW, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    err[0] = '\0';
    assert_null(sts_ca_new_intermediate(NULL, "x", NOW, err, sizeof(err)));
    assert_true(strlen(err) > 0);
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    sts_cert_spec spec = {0};
    assert_int_equal(sts_ca_mint(NULL, &spec, NOW, &x, &k), STS_EINVAL);
    /* A CN beyond the 64 characters X.520 allows is refused. */
    char longcn[100];
    memset(longcn, 'a', sizeof(longcn) - 1);
    longcn[sizeof(longcn) - 1] = '\0';
    spec.cn = longcn;
    spec.self_signed = 1;
    assert_int_equal(sts_ca_mint(NULL, &spec, NOW, &x, &k), STS_EINVAL);
    assert_null(x);
    assert_null(k);
}

/* Verify leaf against a store holding root, with untrusted intermediates. Returns
 * the X509_V_* result. at is the verification time. */
static int verify_chain(X509 *root, STACK_OF(X509) *untrusted, X509 *leaf, time_t at)
{
    X509_STORE *store = X509_STORE_new();
    assert_non_null(store);
    assert_int_equal(X509_STORE_add_cert(store, root), 1);
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_non_null(ctx);
    assert_int_equal(X509_STORE_CTX_init(ctx, store, leaf, untrusted), 1);
    X509_STORE_CTX_set_time(ctx, 0, at);
    int ok = X509_verify_cert(ctx);
    int err = X509_STORE_CTX_get_error(ctx);
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(store);
    ERR_clear_error();
    if (ok == 1)
        assert_int_equal(err, X509_V_OK);
    return ok == 1 ? X509_V_OK : err;
}

static void test_intermediate_chain(void **state)
{
    char err[256] = "";
    sts_ca *root = sts_ca_new("root", NOW, err, sizeof(err));
    assert_non_null(root);
    sts_ca *mid = sts_ca_new_intermediate(root, "intermediate", NOW, err, sizeof(err));
    assert_non_null(mid);
    assert_int_equal(X509_check_ca(sts_ca_cert(mid)), 1);
    assert_int_equal(X509_verify(sts_ca_cert(mid), sts_ca_key(root)), 1);

    const char *names[] = {"mx.example.test"};
    sts_cert_spec spec = {.names = names, .nnames = 1};
    X509 *leaf = NULL;
    EVP_PKEY *key = NULL;
    assert_int_equal(sts_ca_mint(mid, &spec, NOW, &leaf, &key), 0);

    STACK_OF(X509) *chain = sk_X509_new_null();
    assert_non_null(chain);
    sk_X509_push(chain, sts_ca_cert(mid));
    assert_int_equal(verify_chain(sts_ca_cert(root), chain, leaf, NOW), X509_V_OK);
    /* Without the intermediate the chain cannot be built. */
    assert_int_equal(verify_chain(sts_ca_cert(root), NULL, leaf, NOW),
                     X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY);
    /* After the leaf's 90 days it is expired. */
    assert_int_equal(verify_chain(sts_ca_cert(root), chain, leaf, NOW + 91 * DAY),
                     X509_V_ERR_CERT_HAS_EXPIRED);
    /* Before its notBefore it is not valid yet. */
    assert_int_equal(verify_chain(sts_ca_cert(root), chain, leaf, NOW - 2 * DAY),
                     X509_V_ERR_CERT_NOT_YET_VALID);

    /* A self-signed leaf does not chain to the root. */
    sts_cert_spec self = {.names = names, .nnames = 1, .self_signed = 1};
    X509 *selfc = NULL;
    EVP_PKEY *selfk = NULL;
    assert_int_equal(sts_ca_mint(root, &self, NOW, &selfc, &selfk), 0);
    assert_int_equal(verify_chain(sts_ca_cert(root), NULL, selfc, NOW),
                     X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);

    /* A CA certificate minted through spec.is_ca can sign a chain too. */
    sts_cert_spec caspec = {.cn = "minted ca", .is_ca = 1};
    X509 *cac = NULL;
    EVP_PKEY *cak = NULL;
    assert_int_equal(sts_ca_mint(root, &caspec, NOW, &cac, &cak), 0);
    assert_int_equal(X509_check_ca(cac), 1);
    assert_int_equal(X509_check_purpose(cac, X509_PURPOSE_SSL_SERVER, 1), 1);

    sk_X509_free(chain);
    X509_free(leaf);
    EVP_PKEY_free(key);
    X509_free(selfc);
    EVP_PKEY_free(selfk);
    X509_free(cac);
    EVP_PKEY_free(cak);
    sts_ca_free(mid);
    sts_ca_free(root);
}

/* Number of entries in dir other than . and .. */
static int dir_count(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void test_pem_roundtrip(void **state)
{
    char dir[] = "/tmp/ststest-testca-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char err[256] = "";
    sts_ca *ca = sts_ca_new("pem root", 0, err, sizeof(err));
    assert_non_null(ca);
    const char *names[] = {"mx.example.test"};
    sts_cert_spec spec = {.names = names, .nnames = 1};
    X509 *x = NULL;
    EVP_PKEY *k = NULL;
    assert_int_equal(sts_ca_mint(ca, &spec, 0, &x, &k), 0);

    char capath[256], certpath[256], keypath[256];
    snprintf(capath, sizeof(capath), "%s/ca.pem", dir);
    snprintf(certpath, sizeof(certpath), "%s/cert.pem", dir);
    snprintf(keypath, sizeof(keypath), "%s/key.pem", dir);
    assert_int_equal(sts_ca_write_pem(ca, capath), 0);
    assert_int_equal(sts_pem_write_cert(x, certpath), 0);
    assert_int_equal(sts_pem_write_key(k, keypath), 0);
    /* Overwriting replaces the file whole. */
    assert_int_equal(sts_pem_write_cert(x, certpath), 0);
    assert_int_equal(dir_count(dir), 3); /* no temporary file left behind */

    struct stat st;
    assert_int_equal(stat(keypath, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    FILE *fp = fopen(capath, "r");
    assert_non_null(fp);
    X509 *rca = PEM_read_X509(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(rca);
    assert_int_equal(X509_cmp(rca, sts_ca_cert(ca)), 0);

    fp = fopen(certpath, "r");
    assert_non_null(fp);
    X509 *rx = PEM_read_X509(fp, NULL, NULL, NULL);
    assert_null(PEM_read_X509(fp, NULL, NULL, NULL)); /* exactly one certificate */
    fclose(fp);
    ERR_clear_error();
    assert_non_null(rx);
    assert_int_equal(X509_cmp(rx, x), 0);

    fp = fopen(keypath, "r");
    assert_non_null(fp);
    EVP_PKEY *rk = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
    fclose(fp);
    assert_non_null(rk);
    assert_int_equal(EVP_PKEY_eq(rk, k), 1);
    assert_int_equal(X509_check_private_key(rx, rk), 1);

    /* A directory that does not exist: an error, nothing written. */
    char bad[300];
    snprintf(bad, sizeof(bad), "%s/missing/cert.pem", dir);
    assert_int_equal(sts_pem_write_cert(x, bad), STS_EIO);
    assert_int_equal(sts_pem_write_cert(x, ""), STS_EINVAL);
    assert_int_equal(dir_count(dir), 3);

    unlink(capath);
    unlink(certpath);
    unlink(keypath);
    assert_int_equal(rmdir(dir), 0);
    X509_free(rca);
    X509_free(rx);
    EVP_PKEY_free(rk);
    X509_free(x);
    EVP_PKEY_free(k);
    sts_ca_free(ca);
}

/* Two mints never share a serial (RFC 5280 4.1.2.2: unique per issuer). */
static void test_serials_differ(void **state)
{
    char err[256];
    sts_ca *ca = sts_ca_new("serials", NOW, err, sizeof(err));
    assert_non_null(ca);
    sts_cert_spec spec = {.cn = "s"};
    X509 *a = NULL, *b = NULL;
    EVP_PKEY *ka = NULL, *kb = NULL;
    assert_int_equal(sts_ca_mint(ca, &spec, NOW, &a, &ka), 0);
    assert_int_equal(sts_ca_mint(ca, &spec, NOW, &b, &kb), 0);
    assert_int_not_equal(ASN1_INTEGER_cmp(X509_get0_serialNumber(a), X509_get0_serialNumber(b)),
                         0);
    assert_true(ASN1_INTEGER_get(X509_get0_serialNumber(a)) != 0);
    X509_free(a);
    X509_free(b);
    EVP_PKEY_free(ka);
    EVP_PKEY_free(kb);
    sts_ca_free(ca);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mint_table),
        cmocka_unit_test(test_ca_cert),
        cmocka_unit_test(test_intermediate_chain),
        cmocka_unit_test(test_pem_roundtrip),
        cmocka_unit_test(test_serials_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
