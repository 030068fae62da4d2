/*
 * fetch.h - the HTTPS policy fetch of RFC 8461 section 3.3, with libcurl's multi-socket
 * API on the same libuv loop as everything else.
 *
 * The policy is fetched from https://mta-sts.<domain>[:port]/.well-known/mta-sts.txt:
 *  - only over HTTPS, with a certificate that chains to a trusted root (ca_file or the
 *    system store), is within its dates (at `now`) and names mta-sts.<domain>
 *    (RFC 8461 3.3: "The certificate ... MUST be valid for the Policy Host");
 *  - at the address our own resolver found (CURLOPT_RESOLVE): libcurl does no DNS;
 *  - status 200 only; redirects are not followed ("Senders MUST NOT follow HTTP
 *    redirects") and there is no HTTP caching: every fetch is a fresh connection;
 *  - Content-Type must be text/plain (parameters such as charset allowed);
 *  - the body is capped at STS_FETCH_MAX_BODY bytes and the whole fetch at timeout_s
 *    (RFC 8461 3.3 suggests a 64 KiB cap and "a reasonable timeout");
 *  - the response header section is capped at STS_FETCH_MAX_HEADER bytes, and each of
 *    its lines at libcurl's CURL_MAX_HTTP_HEADER: over either, the fetch fails with
 *    "response header too large" (STS_ETOOBIG), naming the cap.
 *
 * Callbacks: sts_fetch_policy() calls its callback exactly once when it returned 0,
 * never inside the call itself. The result and everything it points to is valid only
 * during the callback.
 *
 * Functions return 0 or a negative code from common/err.h.
 */
#ifndef STS_FETCH_H
#define STS_FETCH_H

#include <stddef.h>
#include <time.h>
#include <uv.h>

#include "common/log.h"
#include "common/tls.h"
#include "common/vocab.h"

#define STS_FETCH_MAX_BODY 65536
#define STS_FETCH_MAX_HEADER 32768 /* the whole response header section, in bytes */
#define STS_FETCH_PATH "/.well-known/mta-sts.txt"

typedef struct sts_fetcher sts_fetcher;

/* What a postmaster reads about the policy host's connection (`check`): the TLS
 * session and the chain its certificate came with, and libcurl's timings. */
typedef struct sts_fetch_facts {
    char version[16]; /* "TLSv1.3"; "" when no TLS session came up */
    char cipher[64];
    size_t nchain; /* the chain the server sent, leaf first (also when it failed) */
    sts_tls_cert chain[STS_TLS_MAX_CHAIN];
    double connect_ms, handshake_ms, first_byte_ms, total_ms; /* from the start */
} sts_fetch_facts;

typedef struct sts_fetch_result {
    int ok;                   /* 1: status 200, text/plain, body within the cap */
    int err;                  /* 0 when ok, else a negative STS_* code: STS_ECONNECT,
                               * STS_ETIMEDOUT, STS_ETLS (certificate or handshake),
                               * STS_EPROTO (status, redirect, content type),
                               * STS_ETOOBIG, STS_ECLOSED (fetcher freed), STS_EIO */
    const char *domain;       /* the policy domain asked for */
    const char *url;          /* the URL fetched */
    const char *address;      /* the address connected to */
    long status;              /* HTTP status, 0 when no response was received */
    const char *content_type; /* the Content-Type header as sent, NULL when absent */
    const char *body;         /* NUL-terminated; body_len bytes (may hold NULs) */
    size_t body_len;
    /* RFC 8460 result type when !ok (else STS_RESULT_NONE): sts-webpki-invalid for
     * certificate problems (untrusted, expired, name mismatch), sts-policy-fetch-error
     * for everything else (connect, timeout, handshake, non-200, redirect, content
     * type, size). */
    sts_result_type result_type;
    const char *detail; /* when !ok, e.g. "HTTP status 404", "redirect (301) not
                         * followed", "Content-Type text/html is not text/plain",
                         * "body over 65536 bytes", or libcurl's error text */
    double elapsed;     /* seconds from start to result */
    const sts_fetch_facts *facts; /* never NULL */
} sts_fetch_result;

typedef void (*sts_fetch_cb)(const sts_fetch_result *res, void *arg);

/* A fetcher on loop. ca_file: PEM trust anchors (NULL = system store). now: judge
 * certificate validity at this time (0 = wall clock). log may be NULL (each fetch is
 * logged at info level: URL, address, status, content type, size; libcurl's
 * connection details at debug).
 * Returns 0 and *out, STS_ENOMEM, or STS_EIO (libcurl could not be initialised; err
 * says why). curl_global_init runs once per process. */
int sts_fetcher_new(uv_loop_t *loop, const char *ca_file, time_t now, sts_log *log,
                    sts_fetcher **out, char *err, size_t errlen);

/* Free the fetcher. Safe while fetches are pending: their callbacks run, inside this
 * call, with ok 0 and err STS_ECLOSED (result_type sts-policy-fetch-error, detail
 * "cancelled"); a callback must not free the fetcher again. The uv handles then close
 * asynchronously and the memory is released in the last close callback: run the loop
 * (uv_run) once more before uv_loop_close(). */
void sts_fetcher_free(sts_fetcher *f);

/* Fetch the policy of domain from `address` (the IPv4 or IPv6 address our resolver
 * found for mta-sts.<domain>), port (0 = 443; tests use --https-port), within
 * timeout_s seconds (<= 0: 60 s). 0, STS_EINVAL (bad domain/address) or STS_ENOMEM. */
int sts_fetch_policy(sts_fetcher *f, const char *domain, const char *address, int port,
                     double timeout_s, sts_fetch_cb cb, void *arg);

#endif
