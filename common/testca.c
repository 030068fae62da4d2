/*
 * testca.c - a throw-away certificate authority minting X.509v3 certificates in
 * memory (OpenSSL 3), for the fake world and for tests.
 *
 * sts_ca_new/sts_ca_new_intermediate return a CA or NULL with a message in err;
 * sts_ca_mint and the PEM writers return 0 or a negative STS_* code.
 */
#include "common/testca.h"
#include "common/err.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define DAY (24L * 3600L)
#define CA_LIFETIME (3653L * DAY) /* ten years */
#define LEAF_LIFETIME (90L * DAY)

struct sts_ca {
    X509 *cert;
    EVP_PKEY *key;
};

static void err_set(char *err, size_t errlen, const char *what)
{
    if (!err || !errlen)
        return;
    unsigned long e = ERR_get_error();
    if (e) {
        char tmp[200];
        ERR_error_string_n(e, tmp, sizeof(tmp));
        snprintf(err, errlen, "%s: %s", what, tmp);
    } else {
        snprintf(err, errlen, "%s", what);
    }
    ERR_clear_error();
}

static EVP_PKEY *key_new(sts_key_type type)
{
    if (type == STS_KEY_RSA_2048)
        return EVP_RSA_gen(2048);
    return EVP_EC_gen("P-256");
}

/* A positive random 127-bit serial: unique enough that no two certificates of one
 * run share an issuer and serial (RFC 5280 4.1.2.2 allows up to 20 octets). */
static int set_serial(X509 *x)
{
    unsigned char r[16];
    if (RAND_bytes(r, sizeof(r)) != 1)
        return -1;
    r[0] &= 0x7f;
    r[0] |= 0x01;
    BIGNUM *bn = BN_bin2bn(r, sizeof(r), NULL);
    if (!bn)
        return -1;
    ASN1_INTEGER *ai = BN_to_ASN1_INTEGER(bn, NULL);
    BN_free(bn);
    if (!ai)
        return -1;
    int ok = X509_set_serialNumber(x, ai);
    ASN1_INTEGER_free(ai);
    return ok == 1 ? 0 : -1;
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (!ext)
        return -1;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok == 1 ? 0 : -1;
}

/* subjectAltName with one dNSName per entry, built directly (not through a config
 * string) so that any name, even a malformed one a scenario wants, goes in as is. */
static int add_san(X509 *x, const char *const *names, size_t n)
{
    GENERAL_NAMES *gens = sk_GENERAL_NAME_new_null();
    if (!gens)
        return -1;
    for (size_t i = 0; i < n; i++) {
        GENERAL_NAME *g = GENERAL_NAME_new();
        ASN1_IA5STRING *s = ASN1_IA5STRING_new();
        if (!g || !s || !names[i] || ASN1_STRING_set(s, names[i], (int)strlen(names[i])) != 1) {
            GENERAL_NAME_free(g);
            ASN1_IA5STRING_free(s);
            GENERAL_NAMES_free(gens);
            return -1;
        }
        GENERAL_NAME_set0_value(g, GEN_DNS, s);
        if (!sk_GENERAL_NAME_push(gens, g)) {
            GENERAL_NAME_free(g);
            GENERAL_NAMES_free(gens);
            return -1;
        }
    }
    int ok = X509_add1_ext_i2d(x, NID_subject_alt_name, gens, 0, X509V3_ADD_DEFAULT);
    GENERAL_NAMES_free(gens);
    return ok == 1 ? 0 : -1;
}

typedef struct mint_args {
    const char *cn;
    const char *const *names;
    size_t nnames;
    int no_san;
    int is_ca;
    time_t not_before, not_after;
    EVP_PKEY *pub;       /* the subject's key */
    X509 *issuer;        /* NULL = self-signed */
    EVP_PKEY *sign_key;  /* issuer's key (or pub when self-signed) */
} mint_args;

/* One certificate from a; NULL on failure (OpenSSL's error queue says why). */
static X509 *mint_cert(const mint_args *a)
{
    X509 *x = X509_new();
    if (!x)
        return NULL;
    X509_NAME *name = X509_get_subject_name(x);
    if (X509_set_version(x, X509_VERSION_3) != 1 || set_serial(x) != 0 ||
        !ASN1_TIME_set(X509_getm_notBefore(x), a->not_before) ||
        !ASN1_TIME_set(X509_getm_notAfter(x), a->not_after) ||
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)a->cn, -1,
                                   -1, 0) != 1 ||
        X509_set_issuer_name(x, a->issuer ? X509_get_subject_name(a->issuer) : name) != 1 ||
        X509_set_pubkey(x, a->pub) != 1)
        goto fail;

    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, a->issuer ? a->issuer : x, x, NULL, NULL, 0);
    int rsa = EVP_PKEY_is_a(a->pub, "RSA");
    if (a->is_ca) {
        if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:TRUE") != 0 ||
            add_ext(x, &ctx, NID_key_usage, "critical,keyCertSign,cRLSign,digitalSignature") !=
                0)
            goto fail;
    } else {
        if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
            add_ext(x, &ctx, NID_key_usage,
                    rsa ? "critical,digitalSignature,keyEncipherment"
                        : "critical,digitalSignature") != 0 ||
            add_ext(x, &ctx, NID_ext_key_usage, "serverAuth") != 0)
            goto fail;
    }
    if (add_ext(x, &ctx, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") != 0)
        goto fail;
    if (!a->no_san && a->nnames > 0 && add_san(x, a->names, a->nnames) != 0)
        goto fail;
    if (X509_sign(x, a->sign_key, EVP_sha256()) <= 0)
        goto fail;
    return x;
fail:
    X509_free(x);
    return NULL;
}

static sts_ca *ca_make(X509 *issuer, EVP_PKEY *issuer_key, const char *cn, time_t now,
                       char *err, size_t errlen)
{
    if (!cn || !*cn) {
        if (err && errlen)
            snprintf(err, errlen, "CA: empty common name");
        return NULL;
    }
    if (!now)
        now = time(NULL);
    ERR_clear_error();
    sts_ca *ca = calloc(1, sizeof(*ca));
    if (!ca) {
        if (err && errlen)
            snprintf(err, errlen, "CA %s: out of memory", cn);
        return NULL;
    }
    ca->key = key_new(STS_KEY_EC_P256);
    if (!ca->key) {
        char what[300];
        snprintf(what, sizeof(what), "CA %s: key generation failed", cn);
        err_set(err, errlen, what);
        sts_ca_free(ca);
        return NULL;
    }
    mint_args a = {.cn = cn,
                   .is_ca = 1,
                   .not_before = now - DAY,
                   .not_after = now + CA_LIFETIME,
                   .pub = ca->key,
                   .issuer = issuer,
                   .sign_key = issuer ? issuer_key : ca->key};
    ca->cert = mint_cert(&a);
    if (!ca->cert) {
        char what[300];
        snprintf(what, sizeof(what), "CA %s: cannot build the certificate", cn);
        err_set(err, errlen, what);
        sts_ca_free(ca);
        return NULL;
    }
    return ca;
}

sts_ca *sts_ca_new(const char *cn, time_t now, char *err, size_t errlen)
{
    return ca_make(NULL, NULL, cn, now, err, errlen);
}

sts_ca *sts_ca_new_intermediate(sts_ca *parent, const char *cn, time_t now, char *err,
                                size_t errlen)
{
    if (!parent) {
        if (err && errlen)
            snprintf(err, errlen, "intermediate CA %s: no parent", cn ? cn : "");
        return NULL;
    }
    return ca_make(parent->cert, parent->key, cn, now, err, errlen);
}

void sts_ca_free(sts_ca *ca)
{
    if (!ca)
        return;
    X509_free(ca->cert);
    EVP_PKEY_free(ca->key);
    free(ca);
}

X509 *sts_ca_cert(const sts_ca *ca)
{
    return ca->cert;
}

EVP_PKEY *sts_ca_key(const sts_ca *ca)
{
    return ca->key;
}

int sts_ca_mint(sts_ca *ca, const sts_cert_spec *spec, time_t now, X509 **cert,
                EVP_PKEY **key)
{
    if (!spec || !cert || !key || (!ca && !spec->self_signed) ||
        (spec->nnames && !spec->names) ||
        (spec->key_type != STS_KEY_EC_P256 && spec->key_type != STS_KEY_RSA_2048))
        return STS_EINVAL;
    *cert = NULL;
    *key = NULL;
    if (!now)
        now = time(NULL);
    const char *cn = spec->cn;
    if (!cn)
        cn = spec->nnames ? spec->names[0] : "ststest leaf";
    ERR_clear_error();
    EVP_PKEY *k = key_new(spec->key_type);
    if (!k)
        return STS_ENOMEM;
    mint_args a = {.cn = cn,
                   .names = spec->names,
                   .nnames = spec->nnames,
                   .no_san = spec->no_san,
                   .is_ca = spec->is_ca,
                   .not_before = spec->not_before ? spec->not_before : now - DAY,
                   .not_after = spec->not_after ? spec->not_after : now + LEAF_LIFETIME,
                   .pub = k,
                   .issuer = spec->self_signed ? NULL : ca->cert,
                   .sign_key = spec->self_signed ? k : ca->key};
    X509 *x = mint_cert(&a);
    if (!x) {
        ERR_clear_error();
        EVP_PKEY_free(k);
        return STS_EINVAL; /* e.g. a CN longer than 64 characters */
    }
    *cert = x;
    *key = k;
    return 0;
}

/* Write through fn into a temporary file next to path, then rename it over path,
 * so a reader never sees half a file. */
static int pem_write_atomic(const char *path, int (*fn)(FILE *, const void *),
                            const void *obj, mode_t mode)
{
    if (!path || !*path || !obj)
        return STS_EINVAL;
    size_t n = strlen(path) + sizeof(".tmpXXXXXX");
    char *tmp = malloc(n);
    if (!tmp)
        return STS_ENOMEM;
    snprintf(tmp, n, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        free(tmp);
        return STS_EIO;
    }
    FILE *fp = fdopen(fd, "w");
    if (!fp) {
        close(fd);
        unlink(tmp);
        free(tmp);
        return STS_EIO;
    }
    int ok = fchmod(fd, mode) == 0 && fn(fp, obj) == 1;
    ok = (fflush(fp) == 0) && ok;
    ok = (fsync(fd) == 0) && ok;
    ok = (fclose(fp) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        free(tmp);
        ERR_clear_error();
        return STS_EIO;
    }
    free(tmp);
    return 0;
}

static int write_cert_cb(FILE *fp, const void *obj)
{
    return PEM_write_X509(fp, (X509 *)obj);
}

static int write_key_cb(FILE *fp, const void *obj)
{
    return PEM_write_PrivateKey(fp, (EVP_PKEY *)obj, NULL, NULL, 0, NULL, NULL);
}

int sts_ca_write_pem(const sts_ca *ca, const char *path)
{
    if (!ca)
        return STS_EINVAL;
    return sts_pem_write_cert(ca->cert, path);
}

int sts_pem_write_cert(X509 *cert, const char *path)
{
    return pem_write_atomic(path, write_cert_cb, cert, 0644);
}

int sts_pem_write_key(EVP_PKEY *key, const char *path)
{
    /* A private key is for its owner only. */
    return pem_write_atomic(path, write_key_cb, key, 0600);
}
