/*
 * testca.h - a throw-away certificate authority that mints certificates in memory.
 *
 * The fake world uses it for every policy server and MX certificate, and tests use
 * it directly. Keys are ECDSA P-256 by default. Dates are absolute (time_t), so the
 * world can mint at a virtual "now" (time travel).
 */
#ifndef STS_TESTCA_H
#define STS_TESTCA_H

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <stddef.h>
#include <time.h>

typedef struct sts_ca sts_ca;

typedef enum { STS_KEY_EC_P256 = 0, STS_KEY_RSA_2048 = 1 } sts_key_type;

typedef struct sts_cert_spec {
    const char *const *names; /* DNS subjectAltNames, in order (may be 0 of them) */
    size_t nnames;
    const char *cn;           /* subject CN; NULL = the first name (or "ststest leaf") */
    int no_san;               /* put no subjectAltName extension at all (CN only) */
    time_t not_before;        /* 0 = now - 1 day */
    time_t not_after;         /* 0 = now + 90 days */
    int self_signed;          /* signed by its own key instead of the CA's */
    int is_ca;                /* basicConstraints CA:TRUE (for intermediates) */
    sts_key_type key_type;
} sts_cert_spec;

/* A new root CA named cn, valid from now - 1 day to now + 10 years (now 0 = wall
 * clock). Returns NULL and a message in err on failure. */
sts_ca *sts_ca_new(const char *cn, time_t now, char *err, size_t errlen);
/* An intermediate CA signed by parent (for chain scenarios). */
sts_ca *sts_ca_new_intermediate(sts_ca *parent, const char *cn, time_t now, char *err,
                                size_t errlen);
void sts_ca_free(sts_ca *ca);

X509 *sts_ca_cert(const sts_ca *ca);    /* borrowed */
EVP_PKEY *sts_ca_key(const sts_ca *ca); /* borrowed */

/* Mint a leaf (or, with spec->is_ca, a CA certificate). now 0 = wall clock; it is
 * the base for the default dates. On success *cert and *key are new references the
 * caller frees. Returns 0 or a negative STS_* code. */
int sts_ca_mint(sts_ca *ca, const sts_cert_spec *spec, time_t now, X509 **cert,
                EVP_PKEY **key);

/* PEM helpers. Files are written whole to a temporary name, then renamed. */
int sts_ca_write_pem(const sts_ca *ca, const char *path);
int sts_pem_write_cert(X509 *cert, const char *path);
int sts_pem_write_key(EVP_PKEY *key, const char *path);

#endif
