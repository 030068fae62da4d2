/*
 * tls.h - a byte stream over a libuv TCP handle, with TLS as a property of the
 * stream: it starts in plaintext and can be upgraded in place (STARTTLS) on the
 * client or the server side. OpenSSL runs over memory BIOs; libuv does all I/O.
 * One implementation serves the sender (SMTP client, see also sender/fetch for
 * HTTPS, which libcurl does itself), the world's policy server and its MX servers.
 *
 * Life cycle (libuv rules): the stream owns its uv_tcp_t; sts_stream_close() starts
 * closing, and on_close is the last callback, after which the stream's memory is
 * freed. Callbacks never run inside the call that started the operation, so a
 * protocol handler may call sts_stream_close() from any callback; it must not free
 * its own state until on_close.
 *
 * Verification (client side): the OpenSSL verify callback never aborts a handshake.
 * It records what failed; after the handshake sts_stream_tls_info() says whether the
 * chain was trusted, the certificate within its dates and the name matched, and maps
 * that once to an RFC 8460 result type. The caller decides (fail closed).
 *
 * Details of the contract (tls.c):
 * - An operation that fails at once (connect, accept, start_tls_*, write) returns a
 *   negative code and calls no callback; the stream stays usable or closable.
 * - Every byte read after sts_stream_start_tls_*() goes into TLS. Bytes that came in
 *   the same read as the end of the plaintext phase were already handed to on_read:
 *   the protocol layer sees them in its own line buffer and must treat them as a
 *   STARTTLS injection (RFC 3207 5, "pipelined after 220").
 * - While the handshake runs, writes fail with STS_ESTATE (nothing leaves in the
 *   clear once STARTTLS began); EOF or a read error then ends in on_tls(STS_ETLS)
 *   with info.error set ("peer closed during handshake"), not in on_eof. After a
 *   failed handshake the stream ignores further input; the owner closes it.
 * - on_eof is called at most once; after a close_notify or EOF nothing more is read.
 * - sts_stream_pause() stops reading from the socket; bytes of a read already
 *   received (with TLS: records already decrypted) are still delivered.
 * - Client verification: name_ok means a DNS-ID subjectAltName matches host
 *   (X509_check_host with NEVER_CHECK_SUBJECT): RFC 8461 4.2 requires a DNS-ID, so a
 *   CN-only certificate is a certificate-host-mismatch.
 * - Writes to a peer that reset the connection may raise SIGPIPE: programs ignore it.
 * - Every connection sets TCP_NODELAY. What is written while a read is handled (from
 *   on_read, on_tls or on_eof) is queued and leaves in one write (plaintext: one
 *   SSL_write) when that read is handled, so replies to a pipelined group travel
 *   together; a write of 16 KiB or more with nothing queued goes at once. For a
 *   queued write, 0 means accepted; a failure to send it later ends in on_eof, like
 *   any failed write. start_tls_*, shutdown and close send the queue first.
 */
#ifndef STS_TLS_H
#define STS_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <time.h>
#include <uv.h>

#include "common/vocab.h"

typedef struct sts_stream sts_stream;

#define STS_TLS_MAX_PEER_NAMES 32
#define STS_TLS_PEER_NAME_LEN 256 /* one "DNS:x" / "CN:x", truncated to fit */
/* The most one on_read call hands over (plaintext of one TLS read, or one socket
 * read): a reader that caps its buffer knows how far one call can overshoot. */
#define STS_STREAM_READ_MAX 16384

#define STS_TLS_MAX_CHAIN 4 /* certificates of the peer's chain described, leaf first */

/* One certificate of a peer's chain, as a postmaster reads it (`check`). */
typedef struct sts_tls_cert {
    char subject[160]; /* RFC 2253 one-liner: "CN=mail.example.test" */
    char issuer[160];
    char sans[256];    /* the DNS SANs, separated by one space ("" = none) */
    char key_type[16]; /* OpenSSL's name: "RSA", "EC", "ED25519" */
    int key_bits;
    char not_before[32]; /* ISO 8601 UTC */
    char not_after[32];
} sts_tls_cert;

/* The facts of certificate x into out. */
void sts_tls_cert_describe(X509 *x, sts_tls_cert *out);

typedef struct sts_tls_info {
    int done;            /* handshake completed */
    char version[16];    /* "TLSv1.3" */
    char cipher[64];     /* "TLS_AES_256_GCM_SHA384" */
    char sni[256];       /* client: the SNI sent; server: the SNI received ("" if none) */
    /* Client side only: */
    char host[256];      /* the name checked against the certificate ("" = none asked) */
    int verified;        /* chain_ok && time_ok && name_ok */
    int chain_ok;        /* chains to a trusted root */
    int time_ok;         /* every certificate of the chain within its dates */
    int name_ok;         /* a DNS SAN matches host (never the CN: RFC 8461 4.2) */
    int not_yet_valid;   /* time_ok is 0 because a certificate is not valid yet */
    int resumed;         /* a session kept from an earlier verified handshake was resumed
                          * (sts_tls_ctx_enable_resumption): no certificate was sent */
    long verify_error;   /* first X509_V_ERR_* recorded, 0 if none */
    char verify_error_str[128];
    sts_result_type result_type; /* RFC 8460 result type when !verified, else NONE */
    /* Peer leaf certificate (client side) */
    size_t npeer_names;
    char (*peer_names)[STS_TLS_PEER_NAME_LEN]; /* "DNS:x" SANs, then "CN:x"; owned, heap */
    char not_before[32];  /* ISO 8601 UTC, "2024-01-01T00:00:00Z" */
    char not_after[32];
    /* The chain the peer sent, leaf first (client side; at most STS_TLS_MAX_CHAIN), only
     * when the stream was asked for it (sts_stream_describe_chain); else NULL and 0.
     * Owned by this info: see "Ownership of the chain" below. */
    size_t nchain;
    sts_tls_cert *chain;
    /* Failure (handshake did not complete) */
    char error[256];      /* OpenSSL's reason or "peer closed during handshake" */
} sts_tls_info;

/* Ownership of the heap parts. An sts_tls_info owns its peer names and its chain (one
 * heap array each, of npeer_names and nchain entries, or NULL):
 * - the stream's own info (sts_stream_tls_info) is owned by the stream and freed with
 *   it, after on_close; a caller only reads it;
 * - a plain struct copy (`a = *info`) shares the pointer: it is a view that is valid
 *   only while the source is, and must never be released;
 * - sts_tls_info_copy() makes an owned deep copy, which its holder releases with
 *   sts_tls_info_release() exactly once (release leaves the info empty, so a second
 *   release is harmless).
 * Both are sized to what the peer sent (a leaf with one name costs 256 bytes, not 32
 * slots), and most users (`send`, the world) never ask for the chain, so its array
 * does not exist at all. Nothing here decides a verdict (OpenSSL checks the name and
 * the chain): an array that could not be allocated is missing from logs and `check`'s
 * facts only. */

/* Copy src into dst, peer names and chain included (deep). dst must be zeroed or owned
 * (what it held is released first). 0, or STS_ENOMEM: then dst has every fact but the
 * arrays that could not be copied (NULL, count 0). */
int sts_tls_info_copy(sts_tls_info *dst, const sts_tls_info *src);
/* Free the arrays an owned info holds; NULL and 0 afterwards. */
void sts_tls_info_release(sts_tls_info *info);

typedef struct sts_stream_cbs {
    /* Outgoing connection finished: status 0 or a negative STS_* code. */
    void (*on_connect)(sts_stream *s, int status);
    /* Application bytes (decrypted once TLS is up). */
    void (*on_read)(sts_stream *s, const char *data, size_t len);
    /* TLS handshake finished: 0 (see sts_stream_tls_info() for the verification
     * outcome) or STS_ETLS when the handshake failed (info.error says why). */
    void (*on_tls)(sts_stream *s, int status);
    /* The peer closed its side (status STS_ECLOSED) or reading failed (other codes). */
    void (*on_eof)(sts_stream *s, int status);
    /* Last callback: the stream is closed and freed right after this returns. */
    void (*on_close)(sts_stream *s);
} sts_stream_cbs;

/* A new stream on loop; data is the protocol handler's pointer (sts_stream_data()). */
sts_stream *sts_stream_new(uv_loop_t *loop, const sts_stream_cbs *cbs, void *data);
void *sts_stream_data(sts_stream *s);
void sts_stream_set_data(sts_stream *s, void *data);
uv_loop_t *sts_stream_loop(sts_stream *s);

/* Connect to addr (optionally from bind_addr). on_connect follows. */
int sts_stream_connect(sts_stream *s, const struct sockaddr *addr,
                       const struct sockaddr *bind_addr);
/* Accept a pending connection of a listening uv_tcp_t. Reading starts at once. */
int sts_stream_accept(sts_stream *s, uv_stream_t *server);

/* Queue bytes: plaintext before TLS, encrypted after. Copies p. */
int sts_stream_write(sts_stream *s, const void *p, size_t n);
/* Bytes queued to the kernel but not yet written. */
size_t sts_stream_write_queue(const sts_stream *s);

/* Upgrade to TLS as the client. sni: server name to send (NULL = none);
 * host: name the certificate must match (NULL = no name check, name_ok stays 0).
 * The host check follows RFC 6125 / RFC 8461 4.2: DNS SANs, wildcard only as the
 * whole leftmost label, no partial wildcards. on_tls follows. */
int sts_stream_start_tls_client(sts_stream *s, SSL_CTX *ctx, const char *sni, const char *host);
/* Describe the chain the server sends (sts_tls_info.chain, `check`'s facts) in the
 * next client handshake. Off by default: a stream not asked allocates no chain. */
void sts_stream_describe_chain(sts_stream *s, int on);
/* Upgrade to TLS as the server. on_tls follows. */
int sts_stream_start_tls_server(sts_stream *s, SSL_CTX *ctx);
int sts_stream_is_tls(const sts_stream *s);
const sts_tls_info *sts_stream_tls_info(const sts_stream *s);

/* Peer and local addresses as "127.0.0.1" / "::1" (no port); "" when unknown. */
const char *sts_stream_peer_addr(const sts_stream *s);
const char *sts_stream_local_addr(const sts_stream *s);

/* Stop reading until resumed (back-pressure). */
void sts_stream_pause(sts_stream *s);
void sts_stream_resume(sts_stream *s);

/* Close after the write queue drains (graceful: TLS close_notify when TLS is up). */
void sts_stream_shutdown(sts_stream *s);
/* Close now. Idempotent; on_close follows. */
void sts_stream_close(sts_stream *s);

/* ---- SSL_CTX helpers ---- */

/* Client context: trust anchors from ca_file (PEM, loaded once) or, when NULL, the
 * system's default store; TLS 1.2 or newer unless min_version says otherwise
 * (0 = TLS1_2_VERSION). err gets a message on failure. */
SSL_CTX *sts_tls_client_ctx(const char *ca_file, int min_version, char *err, size_t errlen);
/* OpenSSL's protocol version (TLS1_VERSION ... TLS1_3_VERSION) for v; 0 for
 * STS_TLS_VERSION_DEFAULT (the library's default). */
int sts_tls_version_proto(sts_tls_version v);
/* Limit ctx to the protocol versions min..max (OpenSSL's TLS*_VERSION; 0 = the library's
 * default). A context that allows TLS 1.0 or 1.1 gets security level 0 (OpenSSL 3
 * refuses them above it: they need SHA-1 signatures) and the default cipher list at
 * that level, for this context only. 0, or -1 when OpenSSL refuses a version. */
int sts_tls_ctx_set_versions(SSL_CTX *ctx, int min_version, int max_version);
/* Session resumption for a client context: each stream that names a host offers the
 * session kept for "host|address|port", and a new session is kept only when the
 * handshake that made it was verified for that host (chain, dates, name), so a resumed
 * session stands for a verified one (info.resumed; the peer's certificate and the
 * verify result come back with it). Up to 1024 keys per context, freed with it.
 * TLS 1.3 tickets or TLS 1.2 sessions, as the server offers. 0 or STS_ENOMEM. */
int sts_tls_ctx_enable_resumption(SSL_CTX *ctx);
/* Judge certificate dates at `now` instead of the wall clock (0 = wall clock). */
void sts_tls_ctx_set_time(SSL_CTX *ctx, time_t now);
/* Server context with a leaf, its key and extra chain certificates (may be NULL).
 * min/max_version 0 = library defaults. Does not take ownership of the arguments. */
SSL_CTX *sts_tls_server_ctx(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain,
                            int min_version, int max_version, char *err, size_t errlen);

/* The RFC 8460 result type for a completed client handshake's verification:
 * certificate-not-trusted, certificate-expired, certificate-host-mismatch or
 * validation-failure (in that order of precedence); STS_RESULT_NONE when verified. */
sts_result_type sts_tls_result_type(const sts_tls_info *info);

#endif
