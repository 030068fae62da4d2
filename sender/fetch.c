/*
 * fetch.c - the HTTPS policy fetcher (see fetch.h): libcurl's multi-socket API driven
 * by libuv, in the shape of curl's docs/examples/multi-uv.c: libcurl tells us which
 * sockets to watch (CURLMOPT_SOCKETFUNCTION) and when to call it back
 * (CURLMOPT_TIMERFUNCTION); we watch with one uv_poll_t per socket and one uv_timer_t,
 * and hand events back with curl_multi_socket_action(). Finished transfers are
 * collected with curl_multi_info_read() and judged by RFC 8461 3.3.
 * Public functions return 0 or a negative STS_* code.
 */
#include "sender/fetch.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"

struct sockctx {
    uv_poll_t poll; /* first member: the close callback frees the struct */
    curl_socket_t fd;
    sts_fetcher *f;
    struct sockctx *next;
};

struct fetch {
    sts_fetcher *f;
    struct fetch *next;
    CURL *easy;
    struct curl_slist *resolve;
    char domain[256];
    char host[264];
    char address[INET6_ADDRSTRLEN];
    char url[400];
    double timeout_s;
    sts_buf body;
    int too_big;
    size_t head_bytes; /* of the response header sections so far */
    int head_too_big;  /* over STS_FETCH_MAX_HEADER: header_cb stopped the transfer */
    int head_done;     /* the last header section has ended (its empty line came) */
    char errbuf[CURL_ERROR_SIZE];
    sts_fetch_cb cb;
    void *arg;
    uint64_t start_ns;
    sts_fetch_facts facts;
};

struct sts_fetcher {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    char *ca_file;
    time_t now;
    sts_log *log;
    struct fetch *fetches;
    struct sockctx *socks;
    int open_handles;
    int delivering;
    int free_requested;
    int freed;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* ---- uv glue ---- */

static void fetcher_release(sts_fetcher *f)
{
    if (f->freed && f->open_handles == 0) {
        free(f->ca_file);
        free(f);
    }
}

static void handle_closed_cb(uv_handle_t *h)
{
    sts_fetcher *f = h->data;
    if (h->type == UV_POLL)
        free(h);
    f->open_handles--;
    fetcher_release(f);
}

static void check_done(sts_fetcher *f);

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct sockctx *s = (struct sockctx *)h;
    sts_fetcher *f = s->f;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(f->multi, s->fd, flags, &running);
    check_done(f);
}

static void timeout_cb(uv_timer_t *t)
{
    sts_fetcher *f = t->data;
    int running;
    curl_multi_socket_action(f->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_done(f);
}

/* CURLMOPT_TIMERFUNCTION: libcurl wants to be called after timeout_ms (-1: never).
 * Never call curl_multi_socket_action from here: the uv timer does it, even for 0. */
static int multi_timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    sts_fetcher *f = userp;
    if (f->freed)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&f->timer);
    else
        uv_timer_start(&f->timer, timeout_cb, (uint64_t)timeout_ms, 0);
    return 0;
}

static void sock_close(sts_fetcher *f, struct sockctx *s)
{
    struct sockctx **pp = &f->socks;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    uv_poll_stop(&s->poll);
    uv_close((uv_handle_t *)&s->poll, handle_closed_cb);
}

/* CURLMOPT_SOCKETFUNCTION: watch (or stop watching) one socket. */
static int multi_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    sts_fetcher *f = userp;
    struct sockctx *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            sock_close(f, s);
            curl_multi_assign(f->multi, fd, NULL);
        }
        return 0;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return -1;
        if (uv_poll_init_socket(f->loop, &s->poll, fd) != 0) {
            free(s);
            return -1;
        }
        s->fd = fd;
        s->f = f;
        s->poll.data = f;
        s->next = f->socks;
        f->socks = s;
        f->open_handles++;
        curl_multi_assign(f->multi, fd, s);
    }
    int ev = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev |= UV_WRITABLE;
    uv_poll_start(&s->poll, ev, poll_cb);
    return 0;
}

/* ---- per fetch ---- */

static void fetch_take_tls(struct fetch *x);

static size_t write_cb(char *p, size_t size, size_t n, void *userp)
{
    struct fetch *x = userp;
    /* RFC 8461 3.3 suggests a cap (64 KiB) on the policy: refuse the rest, which
     * makes libcurl abort the transfer with CURLE_WRITE_ERROR. */
    if (sts_buf_append(&x->body, p, size * n) != 0) {
        x->too_big = 1;
        return 0;
    }
    return size * n;
}

/* OpenSSL's default trust anchors, as SSL_CTX_set_default_verify_paths finds them:
 * $SSL_CERT_FILE and $SSL_CERT_DIR, else the compiled-in file and folder. One that
 * does not exist is left out (NULL), since libcurl refuses a CA file it cannot read
 * even when the folder would do. */
static void default_anchors(const char **file, const char **dir)
{
    const char *e = getenv(X509_get_default_cert_file_env());
    *file = e && *e ? e : X509_get_default_cert_file();
    e = getenv(X509_get_default_cert_dir_env());
    *dir = e && *e ? e : X509_get_default_cert_dir();
    if (access(*file, R_OK) != 0)
        *file = NULL;
    if (!strchr(*dir, ':') && access(*dir, R_OK) != 0)
        *dir = NULL;
}

/* CURLOPT_HEADERFUNCTION: one whole header line at a time (libcurl itself refuses a
 * line over CURL_MAX_HTTP_HEADER before we see it). The header section is capped here:
 * a policy needs a handful of short fields, and a server that sends more is refused
 * (0 makes libcurl abort with CURLE_WRITE_ERROR). */
static size_t header_cb(char *p, size_t size, size_t n, void *userp)
{
    struct fetch *x = userp;
    size_t len = size * n;
    fetch_take_tls(x);
    x->head_bytes += len;
    if (x->head_bytes > STS_FETCH_MAX_HEADER) {
        x->head_too_big = 1;
        return 0;
    }
    if (len >= 5 && !memcmp(p, "HTTP/", 5))
        x->head_done = 0; /* a status line: a (next) header section begins */
    else if ((len == 2 && p[0] == '\r' && p[1] == '\n') || (len == 1 && p[0] == '\n'))
        x->head_done = 1;
    return len;
}

/* libcurl's own limit on one header line (CURL_MAX_HTTP_HEADER) fails the transfer
 * with CURLE_OUT_OF_MEMORY before libcurl 8.6.0 and with CURLE_TOO_LARGE since: the
 * one place that knows. */
static int curl_header_overflow(CURLcode cc)
{
#if LIBCURL_VERSION_NUM >= 0x080600
    if (cc == CURLE_TOO_LARGE)
        return 1;
#endif
    return cc == CURLE_OUT_OF_MEMORY;
}

/* The SSL_CTX ex_data slot that leads a verify callback to its fetch. */
static pthread_once_t fetch_idx_once = PTHREAD_ONCE_INIT;
static int fetch_idx = -1;
static void fetch_idx_init(void)
{
    fetch_idx = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

/* Records the chain the server sent (the facts check reports) and decides nothing:
 * libcurl's verification stands as it was (preverify_ok is returned unchanged). */
static int verify_cb(int preverify_ok, X509_STORE_CTX *sc)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(sc, SSL_get_ex_data_X509_STORE_CTX_idx());
    struct fetch *x =
        ssl && fetch_idx >= 0 ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), fetch_idx) : NULL;
    if (!x || x->facts.nchain)
        return preverify_ok;
    STACK_OF(X509) *sent = X509_STORE_CTX_get0_untrusted(sc);
    X509 *leaf = X509_STORE_CTX_get0_cert(sc);
    if (leaf)
        sts_tls_cert_describe(leaf, &x->facts.chain[x->facts.nchain++]);
    for (int i = 0; sent && i < sk_X509_num(sent) && x->facts.nchain < STS_TLS_MAX_CHAIN; i++)
        if (X509_cmp(sk_X509_value(sent, i), leaf) != 0)
            sts_tls_cert_describe(sk_X509_value(sent, i), &x->facts.chain[x->facts.nchain++]);
    return preverify_ok;
}

static CURLcode ssl_ctx_cb(CURL *easy, void *sslctx, void *userp)
{
    sts_fetcher *f = userp;
    /* The injectable clock: certificates are judged at f->now (time travel). */
    if (f->now)
        X509_VERIFY_PARAM_set_time(SSL_CTX_get0_param((SSL_CTX *)sslctx), f->now);
    /* libcurl made this context for this transfer's connection (no reuse: FORBID_REUSE,
     * FRESH_CONNECT): its verify callback records the chain for the transfer. */
    struct fetch *x = NULL;
    pthread_once(&fetch_idx_once, fetch_idx_init);
    curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    if (x && fetch_idx >= 0 && SSL_CTX_set_ex_data((SSL_CTX *)sslctx, fetch_idx, x) == 1)
        SSL_CTX_set_verify((SSL_CTX *)sslctx, SSL_CTX_get_verify_mode((SSL_CTX *)sslctx),
                           verify_cb);
    return CURLE_OK;
}

/* The TLS session of the transfer, once (from the first header line). */
static void fetch_take_tls(struct fetch *x)
{
    const struct curl_tlssessioninfo *ti = NULL;
    if (x->facts.version[0] || curl_easy_getinfo(x->easy, CURLINFO_TLS_SSL_PTR, &ti) != CURLE_OK ||
        !ti || ti->backend != CURLSSLBACKEND_OPENSSL || !ti->internals)
        return;
    SSL *ssl = ti->internals;
    snprintf(x->facts.version, sizeof(x->facts.version), "%s", SSL_get_version(ssl));
    snprintf(x->facts.cipher, sizeof(x->facts.cipher), "%s", SSL_get_cipher_name(ssl));
}

/* libcurl's timings of the transfer (microseconds from its start) in ms. */
static void fetch_take_times(struct fetch *x)
{
    curl_off_t t;
    if (curl_easy_getinfo(x->easy, CURLINFO_CONNECT_TIME_T, &t) == CURLE_OK)
        x->facts.connect_ms = (double)t / 1000.0;
    if (curl_easy_getinfo(x->easy, CURLINFO_APPCONNECT_TIME_T, &t) == CURLE_OK)
        x->facts.handshake_ms = (double)t / 1000.0;
    if (curl_easy_getinfo(x->easy, CURLINFO_STARTTRANSFER_TIME_T, &t) == CURLE_OK)
        x->facts.first_byte_ms = (double)t / 1000.0;
    if (curl_easy_getinfo(x->easy, CURLINFO_TOTAL_TIME_T, &t) == CURLE_OK)
        x->facts.total_ms = (double)t / 1000.0;
}

static int debug_cb(CURL *easy, curl_infotype type, char *data, size_t size, void *userp)
{
    sts_fetcher *f = userp;
    if (type != CURLINFO_TEXT)
        return 0;
    while (size && (data[size - 1] == '\n' || data[size - 1] == '\r'))
        size--;
    sts_debug(f->log, "https %.*s", (int)size, data);
    return 0;
}

static void fetch_free(struct fetch *x)
{
    if (x->easy)
        curl_easy_cleanup(x->easy);
    curl_slist_free_all(x->resolve);
    sts_buf_free(&x->body);
    free(x);
}

/* Is ct's media type text/plain? Parameters (charset=...) are allowed; RFC 9110
 * 8.3.1: type and subtype are case-insensitive, optional whitespace before ";". */
static int is_text_plain(const char *ct)
{
    while (*ct == ' ' || *ct == '\t')
        ct++;
    size_t n = strcspn(ct, ";");
    while (n && (ct[n - 1] == ' ' || ct[n - 1] == '\t'))
        n--;
    return n == 10 && !strncasecmp(ct, "text/plain", 10);
}

/* Judge a finished transfer (RFC 8461 3.3) and call back. */
static void fetch_finish(sts_fetcher *f, struct fetch *x, CURLcode cc)
{
    sts_fetch_result res;
    memset(&res, 0, sizeof(res));
    char detail[CURL_ERROR_SIZE + 640] = "";
    long status = 0;
    char *ct = NULL;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(x->easy, CURLINFO_CONTENT_TYPE, &ct);
    res.domain = x->domain;
    res.url = x->url;
    res.address = x->address;
    res.status = status;
    res.content_type = ct;
    res.elapsed = (double)(uv_hrtime() - x->start_ns) / 1e9;
    res.result_type = STS_RESULT_STS_POLICY_FETCH_ERROR;
    fetch_take_times(x);
    res.facts = &x->facts;

    if (cc == CURLE_OK) {
        if (status >= 300 && status < 400) {
            char *loc = NULL;
            curl_easy_getinfo(x->easy, CURLINFO_REDIRECT_URL, &loc);
            /* RFC 8461 3.3: "Senders MUST NOT follow HTTP redirects." */
            snprintf(detail, sizeof(detail), "redirect (%ld) not followed%s%s", status,
                     loc ? " to " : "", loc ? loc : "");
            res.err = STS_EPROTO;
        } else if (status != 200) {
            /* "policy fetch ... MUST be a 200 OK" (anything else is a fetch error). */
            snprintf(detail, sizeof(detail), "HTTP status %ld", status);
            res.err = STS_EPROTO;
        } else if (!ct) {
            snprintf(detail, sizeof(detail), "no Content-Type (text/plain required)");
            res.err = STS_EPROTO;
        } else if (!is_text_plain(ct)) {
            /* RFC 8461 3.2: the policy is served as media type text/plain. */
            snprintf(detail, sizeof(detail), "Content-Type %s is not text/plain", ct);
            res.err = STS_EPROTO;
        } else {
            res.ok = 1;
            res.result_type = STS_RESULT_NONE;
        }
    } else if (cc == CURLE_WRITE_ERROR && x->too_big) {
        snprintf(detail, sizeof(detail), "body over %d bytes", STS_FETCH_MAX_BODY);
        res.err = STS_ETOOBIG;
    } else if (cc == CURLE_WRITE_ERROR && x->head_too_big) {
        snprintf(detail, sizeof(detail),
                 "response header too large: the header section is over %d bytes "
                 "(STS_FETCH_MAX_HEADER)",
                 STS_FETCH_MAX_HEADER);
        res.err = STS_ETOOBIG;
    } else if (curl_header_overflow(cc) && !x->head_done) {
        /* Before the header section ended, this is libcurl refusing a header line
         * (it says "Out of memory"), not the process running out of it. */
        snprintf(detail, sizeof(detail),
                 "response header too large: a header line over %d bytes (libcurl's "
                 "CURL_MAX_HTTP_HEADER)",
                 CURL_MAX_HTTP_HEADER);
        res.err = STS_ETOOBIG;
    } else if (cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_INVALIDCERTSTATUS) {
        /* RFC 8461 3.3: the certificate MUST be valid for the Policy Host; RFC 8460
         * 4.3.2 names this failure sts-webpki-invalid. */
        long vr = 0;
        curl_easy_getinfo(x->easy, CURLINFO_SSL_VERIFYRESULT, &vr);
        if (vr != X509_V_OK)
            snprintf(detail, sizeof(detail), "certificate of %s: %s (X509 error %ld)", x->host,
                     X509_verify_cert_error_string(vr), vr);
        else
            snprintf(detail, sizeof(detail), "certificate of %s: %s", x->host,
                     x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
        res.err = STS_ETLS;
        res.result_type = STS_RESULT_STS_WEBPKI_INVALID;
    } else {
        switch (cc) {
        case CURLE_OPERATION_TIMEDOUT:
            res.err = STS_ETIMEDOUT;
            break;
        case CURLE_COULDNT_CONNECT:
            res.err = STS_ECONNECT;
            break;
        case CURLE_SSL_CONNECT_ERROR:
            res.err = STS_ETLS;
            break;
        case CURLE_GOT_NOTHING:
        case CURLE_RECV_ERROR:
        case CURLE_PARTIAL_FILE:
            res.err = STS_ECLOSED;
            break;
        default:
            res.err = STS_EIO;
            break;
        }
        snprintf(detail, sizeof(detail), "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
    }
    if (res.ok) {
        res.body = x->body.data ? x->body.data : "";
        res.body_len = x->body.len;
        sts_info(f->log, "MTASTS policy fetch %s from %s: 200 %s, %zu bytes", x->url, x->address,
                 ct, x->body.len);
    } else {
        res.detail = detail;
        if (x->body.data) {
            res.body = x->body.data;
            res.body_len = x->body.len;
        }
        sts_info(f->log, "MTASTS policy fetch %s from %s failed: %s (%s)", x->url, x->address,
                 detail, sts_result_type_name(res.result_type));
    }
    x->cb(&res, x->arg);
}

static void unlink_fetch(sts_fetcher *f, struct fetch *x)
{
    struct fetch **pp = &f->fetches;
    while (*pp && *pp != x)
        pp = &(*pp)->next;
    if (*pp)
        *pp = x->next;
}

static void do_free(sts_fetcher *f);

static void check_done(sts_fetcher *f)
{
    CURLMsg *msg;
    int left;
    f->delivering++;
    while (!f->free_requested && (msg = curl_multi_info_read(f->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct fetch *x = NULL;
        CURLcode cc = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(f->multi, msg->easy_handle);
        unlink_fetch(f, x);
        fetch_finish(f, x, cc);
        fetch_free(x);
    }
    f->delivering--;
    if (f->free_requested && !f->delivering) {
        f->free_requested = 0;
        do_free(f);
    }
}

static int domain_ok(const char *d)
{
    size_t n = strlen(d);
    if (n == 0 || n > 240 || d[0] == '.' || d[0] == '-')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)d[i];
        if (!isalnum(c) && c != '-' && c != '.')
            return 0;
        if (c == '.' && i + 1 < n && d[i + 1] == '.')
            return 0;
    }
    return 1;
}

int sts_fetch_policy(sts_fetcher *f, const char *domain, const char *address, int port,
                     double timeout_s, sts_fetch_cb cb, void *arg)
{
    if (!f || f->freed || !domain || !address || !cb || port < 0 || port > 65535)
        return STS_EINVAL;
    struct fetch *x = calloc(1, sizeof(*x));
    if (!x)
        return STS_ENOMEM;
    x->f = f;
    x->cb = cb;
    x->arg = arg;
    snprintf(x->domain, sizeof(x->domain), "%s", domain);
    size_t dl = strlen(x->domain);
    if (dl && x->domain[dl - 1] == '.')
        x->domain[dl - 1] = '\0';
    for (char *p = x->domain; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    unsigned char tmp[16];
    int v6 = strchr(address, ':') != NULL;
    if (!domain_ok(x->domain) || strlen(domain) >= sizeof(x->domain) ||
        inet_pton(v6 ? AF_INET6 : AF_INET, address, tmp) != 1) {
        free(x);
        return STS_EINVAL;
    }
    snprintf(x->address, sizeof(x->address), "%s", address);
    if (port == 0)
        port = 443;
    x->timeout_s = timeout_s > 0 ? timeout_s : 60.0;
    /* RFC 8461 3.3: "the Policy Host ... mta-sts.<domain>", path /.well-known/mta-sts.txt */
    snprintf(x->host, sizeof(x->host), "mta-sts.%s", x->domain);
    if (port == 443)
        snprintf(x->url, sizeof(x->url), "https://%s%s", x->host, STS_FETCH_PATH);
    else
        snprintf(x->url, sizeof(x->url), "https://%s:%d%s", x->host, port, STS_FETCH_PATH);
    char resolve[400];
    snprintf(resolve, sizeof(resolve), "%s:%d:%s%s%s", x->host, port, v6 ? "[" : "", address,
             v6 ? "]" : "");
    sts_buf_init(&x->body, STS_FETCH_MAX_BODY);
    x->resolve = curl_slist_append(NULL, resolve);
    x->easy = curl_easy_init();
    if (!x->resolve || !x->easy) {
        fetch_free(x);
        return STS_ENOMEM;
    }
    CURL *e = x->easy;
    long ms = (long)(x->timeout_s * 1000);
    int bad = 0;
#define SET(opt, val) bad |= curl_easy_setopt(e, opt, val) != CURLE_OK
    SET(CURLOPT_URL, x->url);
    SET(CURLOPT_PRIVATE, (char *)x);
    SET(CURLOPT_ERRORBUFFER, x->errbuf);
    SET(CURLOPT_NOSIGNAL, 1L);
    /* Our resolver found the address: libcurl does no DNS of its own. */
    SET(CURLOPT_RESOLVE, x->resolve);
    /* HTTPS only, no redirects, certificate and name verified, TLS 1.2 or newer. */
    SET(CURLOPT_PROTOCOLS_STR, "https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    if (f->ca_file) {
        SET(CURLOPT_CAINFO, f->ca_file);
        SET(CURLOPT_CAPATH, NULL); /* the given anchors only */
    } else {
        /* The system's anchors as the SMTP side finds them (common/tls.c:
         * SSL_CTX_set_default_verify_paths), not libcurl's own compiled-in bundle:
         * one trust store for the MX and the policy host, $SSL_CERT_FILE and
         * $SSL_CERT_DIR included. */
        const char *file, *dir;
        default_anchors(&file, &dir);
        SET(CURLOPT_CAINFO, file);
        SET(CURLOPT_CAPATH, dir);
    }
    /* RFC 8461 3.3: the policy comes from mta-sts.<domain> at the address our own
     * resolver found (CURLOPT_RESOLVE), never through a proxy that $https_proxy or
     * $ALL_PROXY would otherwise bring in ("" disables them all). */
    SET(CURLOPT_PROXY, "");
    /* The anchors are read once per fetcher (libcurl caches the CA store in the
     * multi handle; -1: for its whole life), not once per fetch: a survey of many
     * domains must not reread the CA file for every policy (DESIGN.md). A fetcher
     * lives for one run, and a world keeps its CA across scenario steps. */
    SET(CURLOPT_CA_CACHE_TIMEOUT, -1L);
    SET(CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
    SET(CURLOPT_SSL_CTX_DATA, f);
    /* No HTTP caching and no reuse (RFC 8461 3.3): a fresh connection and a full
     * handshake (no TLS session resumption) every time. */
    SET(CURLOPT_FORBID_REUSE, 1L);
    SET(CURLOPT_FRESH_CONNECT, 1L);
    SET(CURLOPT_SSL_SESSIONID_CACHE, 0L);
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    /* The default since libcurl 7.50.2 (Debian 12 has 7.88), set so that it stays
     * so: without it Nagle's algorithm can hold the request behind a delayed ACK. */
    SET(CURLOPT_TCP_NODELAY, 1L);
    SET(CURLOPT_USERAGENT, "ststest/" STSTEST_VERSION);
    SET(CURLOPT_TIMEOUT_MS, ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, ms);
    SET(CURLOPT_WRITEFUNCTION, write_cb);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_HEADERFUNCTION, header_cb);
    SET(CURLOPT_HEADERDATA, x);
    if (f->log && sts_log_verbosity(f->log) >= STS_LOG_DEBUG) {
        SET(CURLOPT_DEBUGFUNCTION, debug_cb);
        SET(CURLOPT_DEBUGDATA, f);
        SET(CURLOPT_VERBOSE, 1L);
    }
#undef SET
    if (bad) {
        fetch_free(x);
        return STS_EUNSUPPORTED;
    }
    x->start_ns = uv_hrtime();
    x->next = f->fetches;
    f->fetches = x;
    sts_debug(f->log, "MTASTS policy fetch %s at %s", x->url, x->address);
    /* Starts nothing synchronously: libcurl asks for a 0 ms timer (multi_timer_cb). */
    if (curl_multi_add_handle(f->multi, e) != CURLM_OK) {
        unlink_fetch(f, x);
        fetch_free(x);
        return STS_EIO;
    }
    return 0;
}

int sts_fetcher_new(uv_loop_t *loop, const char *ca_file, time_t now, sts_log *log,
                    sts_fetcher **out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    *out = NULL;
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK) {
        snprintf(err, errlen, "curl_global_init: %s", curl_easy_strerror(curl_init_rc));
        return STS_EIO;
    }
    sts_fetcher *f = calloc(1, sizeof(*f));
    if (!f)
        return STS_ENOMEM;
    if (ca_file && !(f->ca_file = strdup(ca_file))) {
        free(f);
        return STS_ENOMEM;
    }
    f->multi = curl_multi_init();
    if (!f->multi) {
        snprintf(err, errlen, "curl_multi_init failed");
        free(f->ca_file);
        free(f);
        return STS_EIO;
    }
    f->loop = loop;
    f->now = now;
    f->log = log;
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETFUNCTION, multi_socket_cb);
    curl_multi_setopt(f->multi, CURLMOPT_SOCKETDATA, f);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERFUNCTION, multi_timer_cb);
    curl_multi_setopt(f->multi, CURLMOPT_TIMERDATA, f);
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    f->open_handles = 1;
    *out = f;
    return 0;
}

static void do_free(sts_fetcher *f)
{
    f->delivering++;
    while (f->fetches) {
        struct fetch *x = f->fetches;
        f->fetches = x->next;
        curl_multi_remove_handle(f->multi, x->easy);
        sts_fetch_result res;
        memset(&res, 0, sizeof(res));
        res.err = STS_ECLOSED;
        res.domain = x->domain;
        res.url = x->url;
        res.address = x->address;
        res.result_type = STS_RESULT_STS_POLICY_FETCH_ERROR;
        res.detail = "cancelled";
        res.elapsed = (double)(uv_hrtime() - x->start_ns) / 1e9;
        x->cb(&res, x->arg);
        fetch_free(x);
    }
    f->delivering--;
    f->freed = 1;
    curl_multi_cleanup(f->multi);
    f->multi = NULL;
    while (f->socks)
        sock_close(f, f->socks);
    uv_close((uv_handle_t *)&f->timer, handle_closed_cb);
}

void sts_fetcher_free(sts_fetcher *f)
{
    if (!f || f->freed || f->free_requested)
        return;
    if (f->delivering) {
        f->free_requested = 1;
        return;
    }
    do_free(f);
}
