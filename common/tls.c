/*
 * tls.c - a byte stream over a libuv TCP handle with in-place TLS upgrade.
 *
 * OpenSSL never touches the socket: it reads from one memory BIO (fed with what
 * libuv read) and writes to another (drained into uv_write). The handshake is a
 * chain of continuations driven by reads: every read feeds the input BIO and
 * advances SSL_do_handshake (or SSL_read once the session is up).
 *
 * Public functions return 0 or a negative STS_* code (common/err.h); constructors
 * return NULL on failure. An operation that fails at once returns its error code
 * and calls no callback; callbacks only ever run from the loop, never inside the
 * call that started the operation.
 *
 * Closing: sts_stream_close() sets `closing` and calls uv_close(); the memory stays
 * valid until the uv_close callback, which runs in a later loop phase, so code that
 * called a user callback may still read the stream afterwards but checks `closing`
 * and stops. No user callback but on_close runs once closing is set.
 *
 * Writing: every socket sets TCP_NODELAY, and what the handlers write while one read
 * is handled is queued and leaves at the end of that read in one SSL_write and one
 * uv_write (stream_read_cb). A pipelined MAIL/RCPT/DATA group then gets its replies
 * in one TLS record and one segment: with one write per reply, Nagle's algorithm
 * held the second reply until the peer's delayed ACK, 40 ms per message.
 */
#include "common/tls.h"
#include "common/buf.h"
#include "common/err.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STREAM_RBUF STS_STREAM_READ_MAX
/* Plaintext octets in one TLS record at most (RFC 8446 5.1). */
#define TLS_RECORD_MAX 16384

enum { TLS_NONE = 0, TLS_HANDSHAKE, TLS_UP, TLS_FAILED };

struct sts_stream {
    uv_tcp_t tcp; /* embedded: freed only in its close callback */
    uv_connect_t connect_req;
    uv_shutdown_t shutdown_req;
    uv_loop_t *loop;
    sts_stream_cbs cbs;
    void *data;

    SSL *ssl;
    BIO *rbio; /* network -> OpenSSL */
    BIO *wbio; /* OpenSSL -> network */
    int tls_state;
    int is_client;
    int want_chain;       /* sts_stream_describe_chain() */
    char *session_key;    /* client, resumption on: "host|address|port" (heap) */
    SSL_SESSION *pending; /* a session offered before the verdict (TLS 1.2) */

    int connected;   /* connect succeeded or accepted */
    int reading;     /* uv_read_start is in effect */
    int paused;      /* the user asked for no reads */
    int eof;         /* the read side is finished (EOF or error) */
    int eof_reported;
    int shutting;    /* sts_stream_shutdown() was called */
    int closing;     /* sts_stream_close() was called */
    size_t wqueue;   /* bytes handed to uv_write, not yet written */
    int batching;    /* a read is being handled: writes queue up in out */
    sts_buf out;     /* plaintext written during this read, sent when it is handled */

    /* Verification outcome recorded by the verify callback (client side). */
    int v_chain_bad, v_time_bad, v_name_bad, v_other_bad, v_not_yet;

    sts_tls_info info;
    char peer_addr[64];
    char local_addr[64];
    char *rbuf; /* STREAM_RBUF octets, lent from a read's alloc_cb to the end of its
                   read_cb (also for SSL_read): a stream waiting for its peer holds none */
};

typedef struct write_req {
    uv_write_t req;
    sts_stream *s;
    size_t len;
    char data[];
} write_req;

static void stream_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf);
static int stream_flush_out(sts_stream *s);

/* ---- small helpers ---- */

/* Copy src into dst[cap], truncating on purpose (names and messages are capped). */
static void copy_str(char *dst, size_t cap, const char *src)
{
    if (!cap)
        return;
    size_t n = src ? strlen(src) : 0;
    if (n > cap - 1)
        n = cap - 1;
    if (n)
        memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Copy n bytes that came from a certificate, replacing anything unprintable, so
 * logs and JSON never carry control bytes or embedded NULs. */
static void copy_printable(char *dst, size_t cap, const unsigned char *src, size_t n)
{
    size_t j = 0;
    for (size_t i = 0; i < n && j + 1 < cap; i++)
        dst[j++] = (src[i] >= 0x20 && src[i] < 0x7f) ? (char)src[i] : '?';
    dst[j] = '\0';
}

/* The first queued OpenSSL error as text into dst (or fallback); clears the queue. */
static void ssl_error_text(char *dst, size_t cap, const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (e) {
        char tmp[256];
        ERR_error_string_n(e, tmp, sizeof(tmp));
        copy_str(dst, cap, tmp);
    } else {
        copy_str(dst, cap, fallback);
    }
    ERR_clear_error();
}

static void addr_name(const struct sockaddr_storage *ss, char *dst, size_t cap)
{
    dst[0] = '\0';
    if (ss->ss_family == AF_INET)
        uv_ip4_name((const struct sockaddr_in *)ss, dst, cap);
    else if (ss->ss_family == AF_INET6)
        uv_ip6_name((const struct sockaddr_in6 *)ss, dst, cap);
}

/* Request/response protocols (SMTP, HTTP, DNS over TCP) write small replies that
 * the peer waits for: Nagle's algorithm would hold each one behind the previous
 * one's ACK. Failing to set it costs only speed, so it is not an error. */
static void stream_set_nodelay(sts_stream *s)
{
    (void)uv_tcp_nodelay(&s->tcp, 1);
}

static void stream_record_addrs(sts_stream *s)
{
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0)
        addr_name(&ss, s->peer_addr, sizeof(s->peer_addr));
    len = sizeof(ss);
    memset(&ss, 0, sizeof(ss));
    if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &len) == 0)
        addr_name(&ss, s->local_addr, sizeof(s->local_addr));
}

/* ---- life cycle ---- */

sts_stream *sts_stream_new(uv_loop_t *loop, const sts_stream_cbs *cbs, void *data)
{
    sts_stream *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->loop = loop;
    if (cbs)
        s->cbs = *cbs;
    s->data = data;
    sts_buf_init(&s->out, 0); /* our own bytes: the peer cannot grow it */
    if (uv_tcp_init(loop, &s->tcp) != 0) {
        free(s);
        return NULL;
    }
    s->tcp.data = s;
    return s;
}

void *sts_stream_data(sts_stream *s)
{
    return s->data;
}

void sts_stream_set_data(sts_stream *s, void *data)
{
    s->data = data;
}

uv_loop_t *sts_stream_loop(sts_stream *s)
{
    return s->loop;
}

static void stream_close_cb(uv_handle_t *h)
{
    sts_stream *s = h->data;
    /* Every write and the shutdown request were cancelled before this runs, so
     * no request still points at s. */
    if (s->cbs.on_close)
        s->cbs.on_close(s);
    if (s->ssl)
        SSL_free(s->ssl); /* frees both BIOs */
    sts_tls_info_release(&s->info);
    SSL_SESSION_free(s->pending);
    free(s->session_key);
    sts_buf_free(&s->out);
    free(s->rbuf);
    free(s);
}

void sts_stream_close(sts_stream *s)
{
    if (!s || s->closing)
        return;
    /* What this read's handlers wrote goes before the close, as it would have
     * without the batching (best effort: uv_close cancels what the kernel did not
     * take at once). */
    stream_flush_out(s);
    s->closing = 1;
    uv_close((uv_handle_t *)&s->tcp, stream_close_cb);
}

/* ---- reading ---- */

static void stream_alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
    sts_stream *s = h->data;
    if (!s->rbuf)
        s->rbuf = malloc(STREAM_RBUF);
    buf->base = s->rbuf; /* NULL: libuv reports UV_ENOBUFS to the read callback */
    buf->len = s->rbuf ? STREAM_RBUF : 0;
}

/* The read is handled: give the buffer back (the next read's alloc_cb lends one). */
static void stream_rbuf_release(sts_stream *s)
{
    free(s->rbuf);
    s->rbuf = NULL;
}

static void stream_read_start(sts_stream *s)
{
    if (s->closing || s->eof || s->paused || s->reading || !s->connected)
        return;
    if (uv_read_start((uv_stream_t *)&s->tcp, stream_alloc_cb, stream_read_cb) == 0)
        s->reading = 1;
}

static void stream_read_stop(sts_stream *s)
{
    if (s->reading && !s->closing)
        uv_read_stop((uv_stream_t *)&s->tcp);
    s->reading = 0;
}

void sts_stream_pause(sts_stream *s)
{
    s->paused = 1;
    stream_read_stop(s);
}

void sts_stream_resume(sts_stream *s)
{
    s->paused = 0;
    stream_read_start(s);
}

/* Report the end of the read side once: as a handshake failure while the
 * handshake runs, else through on_eof. */
static void stream_fail(sts_stream *s, int code, const char *why)
{
    if (s->closing)
        return;
    if (s->tls_state == TLS_HANDSHAKE) {
        s->tls_state = TLS_FAILED;
        copy_str(s->info.error, sizeof(s->info.error), why);
        s->eof_reported = 1;
        if (s->cbs.on_tls)
            s->cbs.on_tls(s, STS_ETLS);
        return;
    }
    if (s->eof_reported)
        return;
    s->eof_reported = 1;
    if (s->cbs.on_eof)
        s->cbs.on_eof(s, code);
}

/* ---- writing ---- */

static void stream_write_cb(uv_write_t *req, int status)
{
    write_req *w = (write_req *)req;
    sts_stream *s = w->s;
    s->wqueue -= w->len;
    free(w);
    if (status < 0 && status != UV_ECANCELED && !s->closing)
        stream_fail(s, STS_EIO, uv_strerror(status));
}

static int stream_write_raw(sts_stream *s, const void *p, size_t n)
{
    write_req *w = malloc(sizeof(*w) + n);
    if (!w)
        return STS_ENOMEM;
    w->s = s;
    w->len = n;
    memcpy(w->data, p, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned int)n);
    int r = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, stream_write_cb);
    if (r != 0) {
        free(w);
        return r == UV_ENOMEM ? STS_ENOMEM : STS_EIO;
    }
    s->wqueue += n;
    return 0;
}

/* Move whatever OpenSSL produced (handshake records, alerts, application records)
 * from the output BIO to the socket. */
static int stream_flush_tls(sts_stream *s)
{
    size_t pending = BIO_ctrl_pending(s->wbio);
    if (pending == 0)
        return 0;
    write_req *w = malloc(sizeof(*w) + pending);
    if (!w)
        return STS_ENOMEM;
    int n = BIO_read(s->wbio, w->data, (int)pending);
    if (n <= 0) {
        free(w);
        return 0;
    }
    w->s = s;
    w->len = (size_t)n;
    uv_buf_t b = uv_buf_init(w->data, (unsigned int)n);
    int r = uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, stream_write_cb);
    if (r != 0) {
        free(w);
        return r == UV_ENOMEM ? STS_ENOMEM : STS_EIO;
    }
    s->wqueue += (size_t)n;
    return 0;
}

/* Send n bytes now: in the clear before TLS, else as TLS records of up to 16 KiB
 * (one SSL_write each), all in one uv_write. */
static int stream_send(sts_stream *s, const void *p, size_t n)
{
    if (s->tls_state == TLS_NONE)
        return stream_write_raw(s, p, n);
    const char *cp = p;
    while (n > 0) {
        int chunk = n > TLS_RECORD_MAX ? TLS_RECORD_MAX : (int)n;
        ERR_clear_error();
        int r = SSL_write(s->ssl, cp, chunk);
        if (r <= 0) {
            ERR_clear_error();
            return STS_ETLS;
        }
        cp += r;
        n -= (size_t)r;
    }
    return stream_flush_tls(s);
}

/* Send what was written while a read was handled (see stream_read_cb). Only a
 * plaintext stream or an established session sends: the plaintext phase is flushed
 * before a handshake starts, the session's before it is marked failed. */
static int stream_flush_out(sts_stream *s)
{
    if (!s->out.len)
        return 0;
    int rc = 0;
    if (s->tls_state == TLS_NONE || s->tls_state == TLS_UP)
        rc = stream_send(s, s->out.data, s->out.len);
    sts_buf_reset(&s->out);
    return rc;
}

int sts_stream_write(sts_stream *s, const void *p, size_t n)
{
    if (!s || (!p && n))
        return STS_EINVAL;
    if (s->closing || s->shutting || !s->connected)
        return STS_ESTATE;
    if (n == 0)
        return 0;
    /* Nothing may be written in the clear once STARTTLS began, nor before the
     * handshake finished: the sender's invariant is that no byte of the envelope
     * leaves before a verified session exists. */
    if (s->tls_state != TLS_NONE && s->tls_state != TLS_UP)
        return STS_ESTATE;
    /* While a read is handled, replies queue up and leave together when it ends. A
     * large write with nothing queued before it goes at once: it fills segments of
     * its own, and a copy would only cost memory. */
    if (s->batching && (s->out.len || n < TLS_RECORD_MAX))
        return sts_buf_append(&s->out, p, n);
    return stream_send(s, p, n);
}

size_t sts_stream_write_queue(const sts_stream *s)
{
    return s->wqueue + s->out.len;
}

/* ---- connecting ---- */

static void stream_connect_cb(uv_connect_t *req, int status)
{
    sts_stream *s = req->data;
    if (status == UV_ECANCELED || s->closing)
        return;
    if (status < 0) {
        s->eof = 1;
        if (s->cbs.on_connect)
            s->cbs.on_connect(s, STS_ECONNECT);
        return;
    }
    s->connected = 1;
    stream_set_nodelay(s);
    stream_record_addrs(s);
    stream_read_start(s);
    if (s->cbs.on_connect)
        s->cbs.on_connect(s, 0);
}

int sts_stream_connect(sts_stream *s, const struct sockaddr *addr,
                       const struct sockaddr *bind_addr)
{
    if (!s || !addr)
        return STS_EINVAL;
    if (s->closing || s->connected || s->connect_req.data)
        return STS_ESTATE;
    if (bind_addr && uv_tcp_bind(&s->tcp, bind_addr, 0) != 0)
        return STS_ECONNECT;
    s->connect_req.data = s;
    if (uv_tcp_connect(&s->connect_req, &s->tcp, addr, stream_connect_cb) != 0) {
        s->connect_req.data = NULL;
        return STS_ECONNECT;
    }
    return 0;
}

int sts_stream_accept(sts_stream *s, uv_stream_t *server)
{
    if (!s || !server)
        return STS_EINVAL;
    if (s->closing || s->connected || s->connect_req.data)
        return STS_ESTATE;
    if (uv_accept(server, (uv_stream_t *)&s->tcp) != 0)
        return STS_EIO;
    s->connected = 1;
    stream_set_nodelay(s);
    stream_record_addrs(s);
    stream_read_start(s);
    return 0;
}

const char *sts_stream_peer_addr(const sts_stream *s)
{
    return s->peer_addr;
}

const char *sts_stream_local_addr(const sts_stream *s)
{
    return s->local_addr;
}

/* ---- TLS ---- */

/* Our own ex_data slot for the stream behind an SSL, so the verify callback never
 * mistakes another user's app data (ex index 0) for a stream. */
static CRYPTO_ONCE stream_ex_once = CRYPTO_ONCE_STATIC_INIT;
static int stream_ex_idx = -1;

static void stream_ex_init(void)
{
    stream_ex_idx = SSL_get_ex_new_index(0, "sts_stream", NULL, NULL, NULL);
}

static int stream_ex_index(void)
{
    if (!CRYPTO_THREAD_run_once(&stream_ex_once, stream_ex_init))
        return -1;
    return stream_ex_idx;
}

/* ---- client session resumption (sts_tls_ctx_enable_resumption) ----
 *
 * A cache hangs off the client SSL_CTX (ex_data, freed with it): per key
 * "host|address|port" a few sessions from handshakes that were verified for that host
 * (chain, dates, name). A TLS 1.3 ticket is good for one connection (RFC 8446 C.4;
 * OpenSSL's client marks it used), so start_tls_client takes the newest one out and
 * offers it; OpenSSL hands every new session to session_new_cb, which keeps a copy
 * only once the stream's own verdict says verified, so an unverified session is never
 * offered. A server sends two tickets after a full handshake and one after a
 * resumption, so connections one after another keep resuming. */

#define SESSION_CACHE_MAX 1024 /* keys kept; the oldest goes first when full */
/* Sessions kept per key; the oldest goes first. Each connection takes one and the
 * server gives one or two back, so a key holds about as many as connections to it ran
 * at once: enough for every one of 100 concurrent deliveries to one MX to resume. */
#define SESSION_POOL 128

typedef struct session_entry {
    char *key;
    SSL_SESSION **sess; /* oldest first */
    size_t n, cap;
} session_entry;

typedef struct session_cache {
    session_entry *v;
    size_t n, cap;
    size_t evict; /* next entry to replace when full (round robin: the oldest) */
} session_cache;

static CRYPTO_ONCE cache_ex_once = CRYPTO_ONCE_STATIC_INIT;
static int cache_ex_idx = -1;

static void session_entry_clear(session_entry *e)
{
    free(e->key);
    e->key = NULL;
    for (size_t i = 0; i < e->n; i++)
        SSL_SESSION_free(e->sess[i]);
    free(e->sess);
    e->sess = NULL;
    e->n = e->cap = 0;
}

static void session_cache_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                                  void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    session_cache *c = ptr;
    if (!c)
        return;
    for (size_t i = 0; i < c->n; i++)
        session_entry_clear(&c->v[i]);
    free(c->v);
    free(c);
}

static void cache_ex_init(void)
{
    cache_ex_idx =
        SSL_CTX_get_ex_new_index(0, "sts_session_cache", NULL, NULL, session_cache_free_cb);
}

static session_cache *ctx_session_cache(SSL_CTX *ctx)
{
    if (!CRYPTO_THREAD_run_once(&cache_ex_once, cache_ex_init) || cache_ex_idx < 0)
        return NULL;
    return SSL_CTX_get_ex_data(ctx, cache_ex_idx);
}

static session_entry *session_find(session_cache *c, const char *key)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->v[i].key, key))
            return &c->v[i];
    return NULL;
}

/* The newest resumable session kept under key, taken out of the cache (the caller
 * frees it), or NULL. */
static SSL_SESSION *session_take(session_cache *c, const char *key)
{
    session_entry *e = session_find(c, key);
    while (e && e->n) {
        SSL_SESSION *sess = e->sess[--e->n];
        if (SSL_SESSION_is_resumable(sess))
            return sess;
        SSL_SESSION_free(sess);
    }
    return NULL;
}

/* Keep sess (the caller's reference is taken over) under key. Out of memory drops it:
 * a later connection makes a full handshake. */
static void session_put(session_cache *c, const char *key, SSL_SESSION *sess)
{
    session_entry *e = session_find(c, key);
    if (!e) {
        char *k = strdup(key);
        if (!k) {
            SSL_SESSION_free(sess);
            return;
        }
        if (c->n == c->cap && c->cap < SESSION_CACHE_MAX) {
            size_t cap = c->cap ? c->cap * 2 : 8;
            session_entry *v = realloc(c->v, cap * sizeof(*v));
            if (v) {
                c->v = v;
                c->cap = cap;
            }
        }
        if (c->n < c->cap) {
            e = &c->v[c->n++];
        } else if (c->n) {
            e = &c->v[c->evict++ % c->n];
            session_entry_clear(e);
        } else {
            free(k);
            SSL_SESSION_free(sess);
            return;
        }
        e->key = k;
        e->sess = NULL;
        e->n = e->cap = 0;
    }
    if (e->n == e->cap && e->cap < SESSION_POOL) {
        size_t cap = e->cap ? e->cap * 2 : 4;
        SSL_SESSION **v = realloc(e->sess, cap * sizeof(*v));
        if (v) {
            e->sess = v;
            e->cap = cap;
        }
    }
    if (e->n == e->cap) {
        if (!e->n) {
            SSL_SESSION_free(sess);
            return;
        }
        SSL_SESSION_free(e->sess[0]);
        memmove(e->sess, e->sess + 1, (e->n - 1) * sizeof(e->sess[0]));
        e->n--;
    }
    e->sess[e->n++] = sess;
}

/* The verify callback never aborts the handshake: it records what failed and
 * returns 1; the caller decides after the handshake (fail closed, as Postfix
 * does). RFC 8461 4.2 asks for a trusted chain, valid dates and a matching name;
 * each failure is kept apart so it maps to one RFC 8460 result type. */
static int stream_verify_cb(int ok, X509_STORE_CTX *x)
{
    if (ok)
        return 1;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    int idx = stream_ex_index();
    sts_stream *s = ssl && idx >= 0 ? SSL_get_ex_data(ssl, idx) : NULL;
    if (!s)
        return ok; /* not one of our streams: OpenSSL's own verdict (fail closed) */
    int err = X509_STORE_CTX_get_error(x);
    switch (err) {
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
    case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
    case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
    case X509_V_ERR_CERT_UNTRUSTED:
    case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    /* A signature that does not verify (an issuer found by name whose key did not
     * sign) or a chain longer than the verify depth: the chain does not lead to a
     * trusted root either, and must not read as "validated". */
    case X509_V_ERR_CERT_SIGNATURE_FAILURE:
    case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
    case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
    case X509_V_ERR_CERT_CHAIN_TOO_LONG:
        s->v_chain_bad = 1;
        break;
    case X509_V_ERR_CERT_HAS_EXPIRED:
        s->v_time_bad = 1;
        break;
    case X509_V_ERR_CERT_NOT_YET_VALID:
        s->v_time_bad = 1;
        s->v_not_yet = 1;
        break;
    case X509_V_ERR_HOSTNAME_MISMATCH:
        s->v_name_bad = 1;
        break;
    default:
        s->v_other_bad = 1;
        break;
    }
    if (s->info.verify_error == 0) {
        s->info.verify_error = err;
        copy_str(s->info.verify_error_str, sizeof(s->info.verify_error_str),
                 X509_verify_cert_error_string(err));
    }
    return 1;
}

static void asn1_time_iso(const ASN1_TIME *t, char *dst, size_t cap)
{
    struct tm tm;
    dst[0] = '\0';
    if (t && ASN1_TIME_to_tm(t, &tm) == 1)
        strftime(dst, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A new slot at the end of in->peer_names (grown one name at a time: a leaf has a
 * few), or NULL when full or out of memory. */
static char *peer_name_slot(sts_tls_info *in)
{
    if (in->npeer_names >= STS_TLS_MAX_PEER_NAMES)
        return NULL;
    void *p = realloc(in->peer_names, (in->npeer_names + 1) * sizeof(*in->peer_names));
    if (!p)
        return NULL;
    in->peer_names = p;
    return in->peer_names[in->npeer_names++];
}

/* Leaf names as "DNS:x" for each DNS SAN, then "CN:x" for each CN. */
static void stream_peer_names(sts_stream *s, X509 *leaf)
{
    sts_tls_info *in = &s->info;
    char *dst;
    GENERAL_NAMES *gens = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS || !(dst = peer_name_slot(in)))
            continue;
        memcpy(dst, "DNS:", 4);
        copy_printable(dst + 4, sizeof(in->peer_names[0]) - 4,
                       ASN1_STRING_get0_data(g->d.dNSName),
                       (size_t)ASN1_STRING_length(g->d.dNSName));
    }
    GENERAL_NAMES_free(gens);
    const X509_NAME *subj = X509_get_subject_name(leaf);
    int idx = -1;
    while (subj && (idx = X509_NAME_get_index_by_NID(subj, NID_commonName, idx)) >= 0) {
        if (!(dst = peer_name_slot(in)))
            break;
        const ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, idx));
        memcpy(dst, "CN:", 3);
        copy_printable(dst + 3, sizeof(in->peer_names[0]) - 3, ASN1_STRING_get0_data(d),
                       (size_t)ASN1_STRING_length(d));
    }
    asn1_time_iso(X509_get0_notBefore(leaf), in->not_before, sizeof(in->not_before));
    asn1_time_iso(X509_get0_notAfter(leaf), in->not_after, sizeof(in->not_after));
}

/* An X509_NAME as one RFC 2253 line into dst. */
static void name_line(const X509_NAME *n, char *dst, size_t cap)
{
    dst[0] = '\0';
    BIO *b = BIO_new(BIO_s_mem());
    if (!b)
        return;
    if (n && X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253) >= 0) {
        char *p;
        long len = BIO_get_mem_data(b, &p);
        copy_printable(dst, cap, (const unsigned char *)p, len > 0 ? (size_t)len : 0);
    }
    BIO_free(b);
}

void sts_tls_cert_describe(X509 *x, sts_tls_cert *out)
{
    memset(out, 0, sizeof(*out));
    name_line(X509_get_subject_name(x), out->subject, sizeof(out->subject));
    name_line(X509_get_issuer_name(x), out->issuer, sizeof(out->issuer));
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    size_t off = 0;
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char one[256];
        if (g->type != GEN_DNS)
            continue;
        copy_printable(one, sizeof(one), ASN1_STRING_get0_data(g->d.dNSName),
                       (size_t)ASN1_STRING_length(g->d.dNSName));
        if (off + strlen(one) + 2 > sizeof(out->sans))
            break;
        off +=
            (size_t)snprintf(out->sans + off, sizeof(out->sans) - off, "%s%s", off ? " " : "", one);
    }
    GENERAL_NAMES_free(gens);
    EVP_PKEY *key = X509_get0_pubkey(x);
    if (key) {
        copy_str(out->key_type, sizeof(out->key_type), EVP_PKEY_get0_type_name(key));
        out->key_bits = EVP_PKEY_get_bits(key);
    }
    asn1_time_iso(X509_get0_notBefore(x), out->not_before, sizeof(out->not_before));
    asn1_time_iso(X509_get0_notAfter(x), out->not_after, sizeof(out->not_after));
}

/* The chain the peer sent (client side: SSL_get_peer_cert_chain has the leaf), when
 * asked. Out of memory leaves no chain: the facts are for people, never a verdict. */
static void stream_chain(sts_stream *s)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(s->ssl);
    sts_tls_info *in = &s->info;
    int n = chain ? sk_X509_num(chain) : 0;
    if (!s->want_chain || n <= 0)
        return;
    if (n > STS_TLS_MAX_CHAIN)
        n = STS_TLS_MAX_CHAIN;
    in->chain = calloc((size_t)n, sizeof(*in->chain));
    if (!in->chain)
        return;
    for (int i = 0; i < n; i++)
        sts_tls_cert_describe(sk_X509_value(chain, i), &in->chain[in->nchain++]);
}

/* A heap copy of n elements of size each at src (NULL for none or out of memory). */
static void *dup_array(const void *src, size_t n, size_t size)
{
    void *p = src && n ? malloc(n * size) : NULL;
    if (p)
        memcpy(p, src, n * size);
    return p;
}

int sts_tls_info_copy(sts_tls_info *dst, const sts_tls_info *src)
{
    sts_tls_info_release(dst);
    *dst = *src;
    dst->peer_names = dup_array(src->peer_names, src->npeer_names, sizeof(*src->peer_names));
    dst->npeer_names = dst->peer_names ? src->npeer_names : 0;
    dst->chain = dup_array(src->chain, src->nchain, sizeof(*src->chain));
    dst->nchain = dst->chain ? src->nchain : 0;
    return dst->npeer_names == src->npeer_names && dst->nchain == src->nchain ? 0 : STS_ENOMEM;
}

void sts_tls_info_release(sts_tls_info *info)
{
    free(info->peer_names);
    info->peer_names = NULL;
    info->npeer_names = 0;
    free(info->chain);
    info->chain = NULL;
    info->nchain = 0;
}

static void stream_handshake_done(sts_stream *s)
{
    sts_tls_info *in = &s->info;
    in->done = 1;
    copy_str(in->version, sizeof(in->version), SSL_get_version(s->ssl));
    copy_str(in->cipher, sizeof(in->cipher), SSL_get_cipher_name(s->ssl));
    if (!s->is_client) {
        copy_str(in->sni, sizeof(in->sni),
                 SSL_get_servername(s->ssl, TLSEXT_NAMETYPE_host_name));
        return;
    }
    X509 *leaf = SSL_get0_peer_certificate(s->ssl);
    if (!leaf) {
        /* No certificate at all (anonymous suites are off, but fail closed). */
        s->v_other_bad = 1;
        if (!in->verify_error) {
            in->verify_error = X509_V_ERR_UNSPECIFIED;
            copy_str(in->verify_error_str, sizeof(in->verify_error_str),
                     "no peer certificate");
        }
    } else {
        stream_peer_names(s, leaf);
        stream_chain(s);
    }
    /* The verify callback only sees failures; a result other than OK that it did
     * not classify (should not happen) still must not pass as verified. */
    long vr = SSL_get_verify_result(s->ssl);
    if (vr != X509_V_OK && !in->verify_error) {
        s->v_other_bad = 1;
        in->verify_error = vr;
        copy_str(in->verify_error_str, sizeof(in->verify_error_str),
                 X509_verify_cert_error_string(vr));
    }
    in->chain_ok = leaf && !s->v_chain_bad;
    in->time_ok = leaf && !s->v_time_bad;
    in->not_yet_valid = s->v_not_yet;
    in->name_ok = leaf && in->host[0] != '\0' && !s->v_name_bad;
    in->verified = in->chain_ok && in->time_ok && in->name_ok && !s->v_other_bad;
    in->result_type = sts_tls_result_type(in);
    /* A resumed session ran no verify callback: it is one the cache kept, and the cache
     * keeps only sessions verified for this very host and address (session_new_cb);
     * OpenSSL restores the peer's certificate and the verify result with it. */
    in->resumed = SSL_session_reused(s->ssl);
    if (s->pending) {
        /* TLS 1.2 handed its session over before this verdict. */
        session_cache *c = ctx_session_cache(SSL_get_SSL_CTX(s->ssl));
        if (c && in->verified)
            session_put(c, s->session_key, s->pending);
        else
            SSL_SESSION_free(s->pending);
        s->pending = NULL;
    }
}

/* Drive the session with whatever the input BIO holds: finish the handshake,
 * then hand decrypted bytes to on_read. Stops as soon as the stream closes. */
static void stream_tls_process(sts_stream *s)
{
    if (s->tls_state == TLS_HANDSHAKE) {
        ERR_clear_error();
        int r = SSL_do_handshake(s->ssl);
        int e = r == 1 ? SSL_ERROR_NONE : SSL_get_error(s->ssl, r);
        char why[256];
        if (e != SSL_ERROR_NONE && e != SSL_ERROR_WANT_READ) {
            char fallback[64];
            snprintf(fallback, sizeof(fallback), "handshake failed (SSL_get_error %d)", e);
            ssl_error_text(why, sizeof(why), fallback);
        }
        /* Send what the handshake produced, alerts included, so the peer learns
         * why we gave up. */
        int fr = stream_flush_tls(s);
        if (e == SSL_ERROR_WANT_READ) {
            if (fr != 0)
                stream_fail(s, fr, "cannot write handshake");
            return;
        }
        if (e != SSL_ERROR_NONE) {
            stream_fail(s, STS_ETLS, why);
            return;
        }
        s->tls_state = TLS_UP;
        stream_handshake_done(s);
        if (s->cbs.on_tls)
            s->cbs.on_tls(s, 0);
        if (s->closing)
            return;
    }
    if (s->tls_state != TLS_UP)
        return;
    for (;;) {
        ERR_clear_error();
        int r = SSL_read(s->ssl, s->rbuf, STREAM_RBUF);
        if (r > 0) {
            if (s->cbs.on_read)
                s->cbs.on_read(s, s->rbuf, (size_t)r);
            if (s->closing)
                return;
            continue;
        }
        int e = SSL_get_error(s->ssl, r);
        stream_flush_tls(s); /* e.g. a reply to a key update or close_notify */
        if (e == SSL_ERROR_WANT_READ)
            return;
        if (e == SSL_ERROR_ZERO_RETURN) {
            /* close_notify: the peer will send nothing more. */
            ERR_clear_error();
            s->eof = 1;
            stream_read_stop(s);
            stream_fail(s, STS_ECLOSED, "peer closed");
            return;
        }
        char why[256];
        ssl_error_text(why, sizeof(why), "TLS read failed");
        stream_flush_out(s); /* replies to the records read before this one */
        s->tls_state = TLS_FAILED;
        copy_str(s->info.error, sizeof(s->info.error), why);
        s->eof = 1;
        stream_read_stop(s);
        stream_fail(s, STS_ETLS, why);
        return;
    }
}

/* Hand one read to TLS or, in the plaintext phase, to on_read; report its end. */
static void stream_read_dispatch(sts_stream *s, ssize_t nread, const uv_buf_t *buf)
{
    if (nread < 0) {
        s->eof = 1;
        stream_read_stop(s);
        if (nread == UV_EOF)
            stream_fail(s, STS_ECLOSED,
                        s->tls_state == TLS_HANDSHAKE ? "peer closed during handshake"
                                                      : "peer closed");
        else
            stream_fail(s, STS_EIO, uv_strerror((int)nread));
        return;
    }
    if (s->tls_state == TLS_NONE) {
        if (s->cbs.on_read)
            s->cbs.on_read(s, buf->base, (size_t)nread);
        return;
    }
    if (s->tls_state == TLS_FAILED)
        return; /* the session is dead; the owner is expected to close */
    /* Every byte read after start_tls_* belongs to TLS (see tls.h). */
    if (BIO_write(s->rbio, buf->base, (int)nread) != (int)nread) {
        stream_fail(s, STS_ENOMEM, "cannot buffer TLS input");
        return;
    }
    stream_tls_process(s);
}

/* One read from the socket. Whatever the handlers write in answer to it (a reply to
 * each command of a pipelined group, an HTTP head and body) is queued and leaves
 * in one write when the read is handled. */
static void stream_read_cb(uv_stream_t *h, ssize_t nread, const uv_buf_t *buf)
{
    sts_stream *s = h->data;
    if (s->closing || nread == 0) {
        stream_rbuf_release(s);
        return;
    }
    s->batching = 1;
    stream_read_dispatch(s, nread, buf);
    s->batching = 0;
    stream_rbuf_release(s);
    if (s->closing)
        return; /* sts_stream_close() sent what was queued */
    int rc = stream_flush_out(s);
    if (rc != 0)
        stream_fail(s, rc, "cannot write");
}

/* With resumption on in ctx: remember the key "host|address|port" for the session this
 * handshake makes, and offer the one kept under it. Out of memory: a full handshake. */
static void stream_offer_session(sts_stream *s, SSL_CTX *ctx, SSL *ssl, const char *host)
{
    session_cache *c = ctx_session_cache(ctx);
    if (!c)
        return;
    struct sockaddr_storage ss;
    int len = sizeof(ss);
    int port = 0;
    if (uv_tcp_getpeername(&s->tcp, (struct sockaddr *)&ss, &len) == 0)
        port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                        : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    size_t n = strlen(host) + strlen(s->peer_addr) + 16;
    free(s->session_key);
    if (!(s->session_key = malloc(n)))
        return;
    snprintf(s->session_key, n, "%s|%s|%d", host, s->peer_addr, port);
    SSL_SESSION *sess = session_take(c, s->session_key);
    if (sess) {
        SSL_set_session(ssl, sess); /* its own reference */
        SSL_SESSION_free(sess);
    }
}

static int stream_tls_begin(sts_stream *s, SSL_CTX *ctx, int client, const char *sni,
                            const char *host)
{
    if (!s || !ctx)
        return STS_EINVAL;
    if (s->closing || s->shutting || !s->connected || s->eof || s->tls_state != TLS_NONE)
        return STS_ESTATE;
    /* The plaintext queued in this read (the 220 to STARTTLS) leaves in the clear,
     * before the first byte of TLS. */
    int qr = stream_flush_out(s);
    if (qr != 0)
        return qr;
    sts_tls_info_release(&s->info);
    memset(&s->info, 0, sizeof(s->info));
    ERR_clear_error();
    SSL *ssl = SSL_new(ctx);
    BIO *rb = BIO_new(BIO_s_mem());
    BIO *wb = BIO_new(BIO_s_mem());
    if (!ssl || !rb || !wb) {
        SSL_free(ssl);
        BIO_free(rb);
        BIO_free(wb);
        ssl_error_text(s->info.error, sizeof(s->info.error), "out of memory");
        return STS_ENOMEM;
    }
    /* An empty input BIO means "wait for more", not end of stream. */
    BIO_set_mem_eof_return(rb, -1);
    SSL_set_bio(ssl, rb, wb);
    int idx = stream_ex_index();
    if (idx < 0 || !SSL_set_ex_data(ssl, idx, s)) {
        SSL_free(ssl);
        ssl_error_text(s->info.error, sizeof(s->info.error), "SSL ex_data");
        return STS_ENOMEM;
    }
    s->is_client = client;
    if (client) {
        SSL_set_connect_state(ssl);
        SSL_set_verify(ssl, SSL_VERIFY_PEER, stream_verify_cb);
        int ok = 1;
        if (sni) {
            ok = SSL_set_tlsext_host_name(ssl, sni) == 1;
            copy_str(s->info.sni, sizeof(s->info.sni), sni);
        }
        if (ok && host) {
            /* RFC 8461 4.2: "The certificate MUST have a subject alternative
             * name (SAN) with a DNS-ID matching the host name", so the subject CN
             * is never consulted, not even without DNS SANs; RFC 6125 6.4.3:
             * the wildcard only as the whole leftmost label. Set before the
             * handshake so OpenSSL checks it during chain verification. */
            SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS |
                                       X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
            ok = SSL_set1_host(ssl, host) == 1;
            copy_str(s->info.host, sizeof(s->info.host), host);
        }
        if (!ok) {
            ssl_error_text(s->info.error, sizeof(s->info.error), "bad SNI or host name");
            SSL_free(ssl);
            return STS_EINVAL;
        }
        if (host)
            stream_offer_session(s, ctx, ssl, host);
    } else {
        SSL_set_accept_state(ssl);
    }
    s->ssl = ssl;
    s->rbio = rb;
    s->wbio = wb;
    s->tls_state = TLS_HANDSHAKE;
    s->v_chain_bad = s->v_time_bad = s->v_name_bad = s->v_other_bad = s->v_not_yet = 0;
    if (!client)
        return 0; /* the server waits for the ClientHello */
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    int e = SSL_get_error(ssl, r);
    if (e != SSL_ERROR_WANT_READ) {
        /* Failed before a byte left (e.g. no usable protocol version): report
         * synchronously, no callback. */
        ssl_error_text(s->info.error, sizeof(s->info.error), "handshake could not start");
        s->tls_state = TLS_FAILED;
        return STS_ETLS;
    }
    int fr = stream_flush_tls(s);
    if (fr != 0) {
        copy_str(s->info.error, sizeof(s->info.error), "cannot write ClientHello");
        s->tls_state = TLS_FAILED;
        return fr;
    }
    return 0;
}

int sts_stream_start_tls_client(sts_stream *s, SSL_CTX *ctx, const char *sni, const char *host)
{
    return stream_tls_begin(s, ctx, 1, sni, host);
}

int sts_stream_start_tls_server(sts_stream *s, SSL_CTX *ctx)
{
    return stream_tls_begin(s, ctx, 0, NULL, NULL);
}

int sts_stream_is_tls(const sts_stream *s)
{
    return s->tls_state == TLS_UP;
}

void sts_stream_describe_chain(sts_stream *s, int on)
{
    s->want_chain = on != 0;
}

const sts_tls_info *sts_stream_tls_info(const sts_stream *s)
{
    return &s->info;
}

/* ---- shutdown ---- */

static void stream_shutdown_cb(uv_shutdown_t *req, int status)
{
    sts_stream *s = req->data;
    if (status == UV_ECANCELED)
        return;
    sts_stream_close(s);
}

void sts_stream_shutdown(sts_stream *s)
{
    if (!s || s->closing || s->shutting)
        return;
    s->shutting = 1;
    if (!s->connected) {
        sts_stream_close(s);
        return;
    }
    stream_flush_out(s); /* the last replies go before close_notify */
    if (s->tls_state == TLS_UP) {
        ERR_clear_error();
        SSL_shutdown(s->ssl); /* queues close_notify; we do not wait for the peer's */
        ERR_clear_error();
        stream_flush_tls(s);
    }
    /* uv_shutdown waits for the queued writes, then half-closes. */
    s->shutdown_req.data = s;
    if (uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, stream_shutdown_cb) != 0)
        sts_stream_close(s);
}

/* ---- contexts ---- */

int sts_tls_version_proto(sts_tls_version v)
{
    switch (v) {
    case STS_TLS_VERSION_1_0:
        return TLS1_VERSION;
    case STS_TLS_VERSION_1_1:
        return TLS1_1_VERSION;
    case STS_TLS_VERSION_1_2:
        return TLS1_2_VERSION;
    case STS_TLS_VERSION_1_3:
        return TLS1_3_VERSION;
    case STS_TLS_VERSION_DEFAULT:
        break;
    }
    return 0;
}

int sts_tls_ctx_set_versions(SSL_CTX *ctx, int min_version, int max_version)
{
    if (min_version && !SSL_CTX_set_min_proto_version(ctx, min_version))
        return -1;
    if (max_version && !SSL_CTX_set_max_proto_version(ctx, max_version))
        return -1;
    /* OpenSSL 3 refuses TLS 1.0/1.1 at security level 1 and above (they need
     * SHA-1 signatures); the world must be able to offer them on purpose. */
    if ((min_version && min_version < TLS1_2_VERSION) ||
        (max_version && max_version < TLS1_2_VERSION)) {
        SSL_CTX_set_security_level(ctx, 0);
        SSL_CTX_set_cipher_list(ctx, "DEFAULT@SECLEVEL=0");
    }
    return 0;
}

/* OpenSSL's new session (SSL_CTX_sess_set_new_cb). The cache keeps a copy: sess is
 * also the connection's own session, which OpenSSL marks not resumable when the
 * connection ends without a close_notify (as an SMTP session may, after QUIT), and
 * that must not spoil the copy the other connections resume. Returns 0: OpenSSL keeps
 * its reference. */
static int session_new_cb(SSL *ssl, SSL_SESSION *sess)
{
    int idx = stream_ex_index();
    sts_stream *s = idx >= 0 ? SSL_get_ex_data(ssl, idx) : NULL;
    session_cache *c = ctx_session_cache(SSL_get_SSL_CTX(ssl));
    if (!s || !c || !s->session_key)
        return 0;
    if (s->tls_state == TLS_UP && !s->info.verified)
        return 0; /* never offered again: the next connection verifies afresh */
    SSL_SESSION *copy = SSL_SESSION_dup(sess);
    if (!copy)
        return 0;
    if (s->tls_state != TLS_UP) {
        /* TLS 1.2 gives it inside the handshake, before the verdict: held until then. */
        SSL_SESSION_free(s->pending);
        s->pending = copy;
        return 0;
    }
    session_put(c, s->session_key, copy);
    return 0;
}

int sts_tls_ctx_enable_resumption(SSL_CTX *ctx)
{
    if (!CRYPTO_THREAD_run_once(&cache_ex_once, cache_ex_init) || cache_ex_idx < 0)
        return STS_ENOMEM;
    if (SSL_CTX_get_ex_data(ctx, cache_ex_idx))
        return 0;
    session_cache *c = calloc(1, sizeof(*c));
    if (!c || !SSL_CTX_set_ex_data(ctx, cache_ex_idx, c)) {
        free(c);
        return STS_ENOMEM;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, session_new_cb);
    return 0;
}

SSL_CTX *sts_tls_client_ctx(const char *ca_file, int min_version, char *err, size_t errlen)
{
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        ssl_error_text(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    /* RFC 8461 7.2 expects TLS 1.2 or newer (RFC 7525). */
    if (sts_tls_ctx_set_versions(ctx, min_version ? min_version : TLS1_2_VERSION, 0) != 0) {
        char why[200];
        ssl_error_text(why, sizeof(why), "bad version");
        snprintf(err, errlen, "min TLS version 0x%x: %s", (unsigned)min_version, why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    /* Trust anchors are loaded once into the shared context: with the default
     * verify paths every verification would reread /etc/ssl/certs. */
    int ok = ca_file ? SSL_CTX_load_verify_locations(ctx, ca_file, NULL)
                     : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        char why[200];
        ssl_error_text(why, sizeof(why), "cannot load");
        snprintf(err, errlen, "CA file %s: %s", ca_file ? ca_file : "(system default)", why);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, stream_verify_cb);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

void sts_tls_ctx_set_time(SSL_CTX *ctx, time_t now)
{
    X509_VERIFY_PARAM *p = SSL_CTX_get0_param(ctx);
    if (now)
        X509_VERIFY_PARAM_set_time(p, now);
    else
        X509_VERIFY_PARAM_clear_flags(p, X509_V_FLAG_USE_CHECK_TIME);
}

SSL_CTX *sts_tls_server_ctx(X509 *cert, EVP_PKEY *key, STACK_OF(X509) *chain,
                            int min_version, int max_version, char *err, size_t errlen)
{
    char why[200];
    if (!cert || !key) {
        snprintf(err, errlen, "server context: certificate and key are required");
        return NULL;
    }
    ERR_clear_error();
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx) {
        ssl_error_text(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    /* use_certificate/use_PrivateKey/add1_chain_cert take their own references. */
    if (SSL_CTX_use_certificate(ctx, cert) != 1) {
        ssl_error_text(why, sizeof(why), "rejected");
        snprintf(err, errlen, "server certificate: %s", why);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey(ctx, key) != 1 || SSL_CTX_check_private_key(ctx) != 1) {
        ssl_error_text(why, sizeof(why), "does not match the certificate");
        snprintf(err, errlen, "server key: %s", why);
        goto fail;
    }
    for (int i = 0; chain && i < sk_X509_num(chain); i++) {
        if (SSL_CTX_add1_chain_cert(ctx, sk_X509_value(chain, i)) != 1) {
            ssl_error_text(why, sizeof(why), "rejected");
            snprintf(err, errlen, "chain certificate %d: %s", i, why);
            goto fail;
        }
    }
    if (sts_tls_ctx_set_versions(ctx, min_version, max_version) != 0) {
        ssl_error_text(why, sizeof(why), "bad version");
        snprintf(err, errlen, "TLS versions 0x%x..0x%x: %s", (unsigned)min_version,
                 (unsigned)max_version, why);
        goto fail;
    }
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}

/* RFC 8460 4.3.2.2 result types, in a fixed order of precedence. A failed
 * "not yet valid" date check counts as certificate-expired (outside the validity
 * period; not_yet_valid tells them apart). Without a host to check, a chain that
 * is otherwise fine is a validation-failure, not a host mismatch. */
sts_result_type sts_tls_result_type(const sts_tls_info *info)
{
    if (!info || info->verified)
        return STS_RESULT_NONE;
    if (!info->done)
        return STS_RESULT_VALIDATION_FAILURE; /* the handshake itself failed */
    if (!info->chain_ok)
        return STS_RESULT_CERTIFICATE_NOT_TRUSTED;
    if (!info->time_ok)
        return STS_RESULT_CERTIFICATE_EXPIRED;
    if (!info->name_ok && info->host[0])
        return STS_RESULT_CERTIFICATE_HOST_MISMATCH;
    return STS_RESULT_VALIDATION_FAILURE;
}
