/*
 * httpsrv.c - the world's policy server (see httpsrv.h). Functions return 0 or a
 * negative STS_* code; sts_http_parse_request returns 0 or an HTTP status.
 */
#include "fakedns/httpsrv.h"
#include "common/buf.h"
#include "common/err.h"
#include "fakedns/served.h"
#include "fakedns/tcpsrv.h"

#include <stdio.h>

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Chunk size of chunked answers: small, so that a client must join several. */
#define HTTP_CHUNK 64

struct sts_httpsrv {
    sts_served *const *served; /* the world's pointer to what is served now */
    int https;                 /* serve its https part, else its http part */
    size_t slot;               /* of which policy host (sts_served_policy_conf) */
    sts_tcpsrv *tcp;
    sts_observer *obs;
    sts_log *log;
    unsigned nconn;
};

typedef struct http_sess {
    sts_tcpsrv_conn conn; /* first: the stream's data pointer */
    sts_httpsrv *srv;
    sts_served *served;         /* what is served to this connection (a reference) */
    const sts_httpsrv_conf *cf; /* its part for this listener */
    sts_stream *st;
    unsigned id;
    sts_buf in;      /* received octets not yet taken as a request */
    unsigned nreq;   /* requests answered (or being answered) */
    int answering;   /* an answer is being sent */
    int keep;        /* ... and the connection persists after it */
    int closing;     /* the last answer is out: the rest of the input is ignored */
    int serving;     /* inside http_serve (an answer that ends there loops) */
    sts_delay *idle; /* between two requests of a persistent connection */
    /* the answer, sent in steps when delayed, dripped or cut */
    sts_buf head, body; /* body as on the wire (chunked or not) */
    size_t sent;        /* body octets handed to the stream */
    size_t limit;       /* body octets to send before closing */
    double drip;
    sts_delay *wait;
    sts_obs_fetch *fetch;
    /* for the policy_connections record when the connection ends */
    char peer[64];
    const char *outcome; /* NULL: "request" if answered, else "no_request" */
    char error[256];
} http_sess;

/* RFC 9110 5.6.2: tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Whether the comma-separated list v..ve (a Connection field value) has token
 * (case-insensitive, RFC 9110 7.6.1). */
static int has_token(const char *v, const char *ve, const char *token)
{
    size_t tl = strlen(token);
    while (v < ve) {
        while (v < ve && (*v == ' ' || *v == '\t' || *v == ','))
            v++;
        const char *e = v;
        while (e < ve && *e != ',' && *e != ' ' && *e != '\t')
            e++;
        if ((size_t)(e - v) == tl && !strncasecmp(v, token, tl))
            return 1;
        v = e;
    }
    return 0;
}

/* One line of the head starting at *pos (ends in LF, optional CR before it);
 * returns its length without the line end, and moves *pos past it. */
static size_t head_line(const char *data, size_t end, size_t *pos, const char **line)
{
    const char *p = data + *pos;
    const char *nl = memchr(p, '\n', end - *pos);
    size_t n = nl ? (size_t)(nl - p) : end - *pos;
    *line = p;
    *pos += n + (nl ? 1 : 0);
    if (n && p[n - 1] == '\r')
        n--;
    return n;
}

int sts_http_parse_request(const char *data, size_t len, sts_http_request *req)
{
    memset(req, 0, sizeof(*req));
    /* The head ends at the first empty line (RFC 9112 2.1); a bare LF is accepted as
     * a line end (RFC 9112 2.2). */
    size_t end = 0;
    for (size_t i = 0; i + 1 < len && !end; i++)
        if (data[i] == '\n' &&
            (data[i + 1] == '\n' || (data[i + 1] == '\r' && i + 2 < len && data[i + 2] == '\n')))
            end = i + 1;
    if (!end)
        return len >= STS_HTTP_MAX_HEAD ? 431 : 0;
    if (end > STS_HTTP_MAX_HEAD)
        return 431;
    req->head_len = end + (data[end] == '\n' ? 1 : 2);
    int conn_close = 0, conn_keep = 0;

    size_t pos = 0;
    const char *l;
    size_t n = head_line(data, end, &pos, &l);
    /* request-line = method SP request-target SP HTTP-version (RFC 9112 3) */
    const char *sp1 = memchr(l, ' ', n);
    const char *sp2 = sp1 ? memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - l)) : NULL;
    if (!sp1 || !sp2 || sp1 == l || sp2 == sp1 + 1)
        return 400;
    size_t mlen = (size_t)(sp1 - l), tlen = (size_t)(sp2 - sp1 - 1),
           vlen = n - (size_t)(sp2 + 1 - l);
    for (size_t i = 0; i < mlen; i++)
        if (!is_tchar((unsigned char)l[i]))
            return 400;
    if (mlen >= sizeof(req->method))
        return 400;
    if (vlen != 8 || memcmp(sp2 + 1, "HTTP/", 5) || sp2[7] != '.' || sp2[6] < '0' || sp2[6] > '9' ||
        sp2[8] < '0' || sp2[8] > '9')
        return 400;
    if (sp2[6] != '1')
        return 505;
    if (tlen >= sizeof(req->path))
        return 414;
    for (size_t i = 0; i < tlen; i++)
        if ((unsigned char)sp1[1 + i] <= ' ' || (unsigned char)sp1[1 + i] >= 0x7f)
            return 400;
    if (sp1[1] != '/')
        return 400; /* only origin-form (RFC 9112 3.2.1) */
    memcpy(req->method, l, mlen);
    memcpy(req->path, sp1 + 1, tlen);
    req->minor = sp2[8] - '0';

    /* field-line = field-name ":" OWS field-value OWS (RFC 9112 5) */
    while (pos < end) {
        n = head_line(data, end, &pos, &l);
        if (n == 0)
            break;
        const char *colon = memchr(l, ':', n);
        if (!colon || colon == l)
            return 400;
        for (const char *c = l; c < colon; c++)
            if (!is_tchar((unsigned char)*c))
                return 400; /* includes whitespace before the colon (RFC 9112 5.1) */
        const char *v = colon + 1, *ve = l + n;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        for (const char *c = v; c < ve; c++)
            if ((unsigned char)*c < ' ' && *c != '\t')
                return 400;
        if ((size_t)(colon - l) == 4 && !strncasecmp(l, "host", 4)) {
            /* RFC 9112 3.2: more than one Host field is a 400. */
            if (req->have_host || (size_t)(ve - v) >= sizeof(req->host))
                return 400;
            req->have_host = 1;
            memcpy(req->host, v, (size_t)(ve - v));
            req->host[ve - v] = '\0';
        } else if ((size_t)(colon - l) == 10 && !strncasecmp(l, "connection", 10)) {
            conn_close |= has_token(v, ve, "close");
            conn_keep |= has_token(v, ve, "keep-alive");
        } else if ((size_t)(colon - l) == 14 && !strncasecmp(l, "content-length", 14)) {
            /* Content we do not read: its end is unknown to us (RFC 9112 6.3). */
            for (const char *c = v; c < ve && !req->has_content; c++)
                req->has_content = *c != '0';
        } else if ((size_t)(colon - l) == 17 && !strncasecmp(l, "transfer-encoding", 17)) {
            req->has_content = 1;
        }
    }
    /* RFC 9112 9.3: HTTP/1.1 persists unless the client says close; HTTP/1.0 only
     * with keep-alive. */
    req->keep_alive = !conn_close && (req->minor >= 1 || conn_keep);
    /* RFC 9112 3.2: an HTTP/1.1 request without Host is a 400. */
    if (req->minor >= 1 && !req->have_host)
        return 400;
    return 200;
}

static const char *status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 410:
        return "Gone";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 505:
        return "HTTP Version Not Supported";
    }
    return "Status";
}

int sts_http_chunk(const char *body, size_t len, size_t chunk, sts_buf *out)
{
    int rc = 0;
    for (size_t off = 0; rc == 0 && off < len; off += chunk) {
        size_t n = len - off < chunk ? len - off : chunk;
        rc = sts_buf_appendf(out, "%zx\r\n", n);
        if (rc == 0)
            rc = sts_buf_append(out, body + off, n);
        if (rc == 0)
            rc = sts_buf_append(out, "\r\n", 2);
    }
    /* last-chunk, an empty trailer section, and the final CRLF */
    return rc ? rc : sts_buf_append(out, "0\r\n\r\n", 5);
}

static void http_send_body(http_sess *hs);
static void http_serve(http_sess *hs);

static void http_drip_cb(void *arg)
{
    http_sess *hs = arg;
    hs->wait = NULL;
    http_send_body(hs);
}

/* Record how much of the answer's body went out (the whole of it, or less when
 * cut or when the connection closed first) on its fetch record. */
static void http_fetch_done(http_sess *hs)
{
    if (!hs->fetch)
        return;
    /* Whether the whole answer went out before the connection closed: a client
     * that gives up on a slow or oversized answer leaves complete false. */
    int complete = hs->sent == hs->body.len;
    sts_observer_fetch_set(hs->srv->obs, hs->fetch, "body_sent",
                           json_integer((json_int_t)hs->sent));
    sts_observer_fetch_set(hs->srv->obs, hs->fetch, "complete", json_boolean(complete));
    hs->fetch = NULL;
}

static void http_idle_cb(void *arg)
{
    http_sess *hs = arg;
    hs->idle = NULL;
    sts_debug(hs->srv->log, "policy %s#%u idle for %.0fs after %u requests: closing",
              hs->cf->scheme, hs->id, STS_HTTP_KEEPALIVE_IDLE, hs->nreq);
    hs->closing = 1;
    sts_stream_shutdown(hs->st);
}

/* The answer is handed to the stream: close after it, or wait for the next request
 * (perhaps already received: pipelined). */
static void http_answer_done(http_sess *hs)
{
    hs->answering = 0;
    if (!hs->keep) {
        /* The fetch record is completed when the connection closes (http_close). */
        hs->closing = 1;
        sts_stream_shutdown(hs->st); /* after the answer is written */
        return;
    }
    http_fetch_done(hs);
    sts_buf_reset(&hs->head);
    sts_buf_reset(&hs->body);
    hs->sent = hs->limit = 0;
    if (!(hs->idle = sts_delay_start(sts_stream_loop(hs->st), STS_HTTP_KEEPALIVE_IDLE, http_idle_cb,
                                     hs))) {
        sts_stream_close(hs->st);
        return;
    }
    http_serve(hs);
}

/* Send the body from hs->sent: all of it (up to the limit), or, when dripping, one
 * octet now and the next one after the drip interval. */
static void http_send_body(http_sess *hs)
{
    size_t n = hs->limit - hs->sent;
    if (n && hs->drip > 0)
        n = 1;
    if (n && sts_stream_write(hs->st, hs->body.data + hs->sent, n) != 0) {
        sts_stream_close(hs->st);
        return;
    }
    hs->sent += n;
    if (hs->sent < hs->limit) {
        hs->wait = sts_delay_start(sts_stream_loop(hs->st), hs->drip, http_drip_cb, hs);
        if (!hs->wait)
            sts_stream_close(hs->st);
        return;
    }
    if (hs->limit < hs->body.len)
        sts_info(hs->srv->log, "policy %s#%u cutting the answer after %zu of %zu body octets",
                 hs->cf->scheme, hs->id, hs->sent, hs->body.len);
    http_answer_done(hs);
}

static void http_send_head(http_sess *hs)
{
    if (sts_stream_write(hs->st, hs->head.data, hs->head.len) != 0) {
        sts_stream_close(hs->st);
        return;
    }
    http_send_body(hs);
}

static void http_delay_cb(void *arg)
{
    http_sess *hs = arg;
    hs->wait = NULL;
    http_send_head(hs);
}

/* Whether the connection may carry another request after answering this one with
 * a body of blen octets cut at limit (RFC 9112 9.3, 9.6). */
static int http_keeps(const http_sess *hs, int pstatus, const sts_http_request *req)
{
    return hs->cf->keep_alive && pstatus == 200 && req->keep_alive && !req->has_content &&
           hs->nreq < STS_HTTP_KEEPALIVE_MAX && hs->limit == hs->body.len;
}

/* Send the answer to the request parsed with status pstatus and record it; the
 * connection closes once it is written unless it persists (http_keeps). */
static void http_answer(http_sess *hs, sts_stream *st, int pstatus, const sts_http_request *req)
{
    sts_httpsrv *s = hs->srv;
    const sts_httpsrv_conf *c = hs->cf;
    int status = pstatus;
    const char *ctype = "text/plain";
    const char *body = "bad request\n";
    const char *allow = NULL;
    int head = 0, policy = 0;
    size_t blen;
    if (pstatus == 200) {
        head = !strcmp(req->method, "HEAD");
        if (strcmp(req->method, "GET") && !head) {
            status = 405;
            allow = "GET, HEAD";
            body = "method not allowed\n";
        } else if (c->present && !strcmp(req->path, STS_HTTP_POLICY_PATH)) {
            status = c->status;
            ctype = c->content_type ? c->content_type : ctype;
            body = c->body ? c->body : "";
            policy = 1;
        } else {
            status = 404;
            body = "not found\n";
        }
    }
    hs->nreq++;
    hs->answering = 1;
    blen = policy ? c->body_len : strlen(body);
    int chunked = policy && c->chunked;
    /* A HEAD answer has the GET answer's fields but no content (RFC 9110 9.3.2). */
    int rc = head      ? 0
             : chunked ? sts_http_chunk(body, blen, HTTP_CHUNK, &hs->body)
                       : sts_buf_append(&hs->body, body, blen);
    hs->limit = hs->body.len;
    if (policy && c->cut && c->cut_after < hs->limit)
        hs->limit = c->cut_after;
    hs->drip = policy ? c->drip : 0;
    hs->keep = http_keeps(hs, pstatus, req);

    if (rc == 0)
        rc = sts_buf_appendf(&hs->head,
                             "HTTP/1.1 %d %s\r\nServer: ststest-world\r\nContent-Type: %s\r\n",
                             status, status_text(status), ctype);
    if (rc == 0)
        rc = chunked ? sts_buf_appendf(&hs->head, "Transfer-Encoding: chunked\r\n")
                     : sts_buf_appendf(&hs->head, "Content-Length: %zu\r\n", blen);
    if (rc == 0 && allow)
        rc = sts_buf_appendf(&hs->head, "Allow: %s\r\n", allow);
    if (rc == 0 && policy && c->location)
        rc = sts_buf_appendf(&hs->head, "Location: %s\r\n", c->location);
    for (size_t i = 0; rc == 0 && policy && i < c->nheaders; i++)
        rc = sts_buf_appendf(&hs->head, "%s: %s\r\n", c->headers[2 * i], c->headers[2 * i + 1]);
    if (rc == 0)
        rc = sts_buf_appendf(&hs->head, "Cache-Control: no-store\r\n%s\r\n",
                             !hs->keep         ? "Connection: close\r\n"
                             : req->minor == 0 ? "Connection: keep-alive\r\n"
                                               : "");

    const sts_tls_info *ti = sts_stream_tls_info(st);
    const char *sni = c->ctx ? ti->sni : NULL;
    sts_info(s->log, "policy %s#%u %s %s host=%s sni=%s -> %d", c->scheme, hs->id,
             pstatus == 200 ? req->method : "-", pstatus == 200 ? req->path : "-",
             pstatus == 200 && req->have_host ? req->host : "-", sni && *sni ? sni : "-", status);
    hs->fetch = sts_observer_fetch_begin(
        s->obs, pstatus == 200 && req->have_host ? req->host : NULL, c->scheme, sni,
        pstatus == 200 ? req->method : NULL, pstatus == 200 ? req->path : NULL, status);
    if (rc != 0) {
        sts_stream_close(st);
    } else if (policy && c->delay > 0) {
        sts_debug(s->log, "policy %s#%u waiting %.3fs before answering", c->scheme, hs->id,
                  c->delay);
        if (!(hs->wait = sts_delay_start(sts_stream_loop(st), c->delay, http_delay_cb, hs)))
            sts_stream_close(st);
    } else {
        http_send_head(hs);
    }
}

static void http_sess_free(http_sess *hs)
{
    sts_delay_cancel(hs->wait);
    sts_delay_cancel(hs->idle);
    sts_buf_free(&hs->in);
    sts_buf_free(&hs->head);
    sts_buf_free(&hs->body);
    sts_served_unref(hs->served);
    free(hs);
}

/* This listener's part of what is served now. */
static const sts_httpsrv_conf *httpsrv_conf(const sts_httpsrv *s, const sts_served *sv)
{
    return sts_served_policy_conf(sv, s->slot, s->https);
}

/* A later request on a persistent connection is answered from what is served now
 * (a world step may have changed it since the connection was accepted). Returns 0,
 * or -1 when what is served now has no HTTPS here (the connection is closed). */
static int http_refresh(http_sess *hs)
{
    sts_served *now = *hs->srv->served;
    if (now == hs->served)
        return 0;
    sts_served_unref(hs->served);
    hs->served = sts_served_ref(now);
    hs->cf = httpsrv_conf(hs->srv, hs->served);
    if (hs->cf->refuse || hs->cf->handshake_abort) {
        sts_info(hs->srv->log, "policy %s#%u closed: the policy host no longer serves %s",
                 hs->cf->scheme, hs->id, hs->cf->scheme);
        sts_stream_close(hs->st);
        return -1;
    }
    return 0;
}

static sts_tcpsrv_conn *http_accept(sts_tcpsrv *t, sts_stream *st)
{
    sts_httpsrv *s = sts_tcpsrv_arg(t);
    const sts_httpsrv_conf *cf = httpsrv_conf(s, *s->served);
    if (cf->refuse) {
        /* `https: false`: the policy host has no working HTTPS, only plain HTTP. */
        sts_info(s->log, "policy %s connection from %s closed at once (https: false)", cf->scheme,
                 sts_stream_peer_addr(st));
        sts_observer_policy_conn(s->obs, cf->scheme, sts_stream_peer_addr(st), NULL, NULL,
                                 "refused", NULL);
        return NULL;
    }
    http_sess *hs = calloc(1, sizeof(*hs));
    if (!hs)
        return NULL;
    hs->srv = s;
    hs->st = st;
    /* The connection keeps what is served now until it closes (served.h). */
    hs->served = sts_served_ref(*s->served);
    hs->cf = httpsrv_conf(s, hs->served);
    hs->id = ++s->nconn;
    snprintf(hs->peer, sizeof(hs->peer), "%s", sts_stream_peer_addr(st));
    sts_buf_init(&hs->in, STS_HTTP_MAX_HEAD);
    sts_buf_init(&hs->head, 0);
    sts_buf_init(&hs->body, 0);
    sts_debug(s->log, "policy %s#%u connection from %s to %s", hs->cf->scheme, hs->id,
              sts_stream_peer_addr(st), sts_stream_local_addr(st));
    /* handshake: abort - no TLS is started; http_read closes at the ClientHello. */
    if (hs->cf->ctx && !hs->cf->handshake_abort &&
        sts_stream_start_tls_server(st, hs->cf->ctx) != 0) {
        http_sess_free(hs);
        return NULL;
    }
    return &hs->conn;
}

/* Answer the requests received, one at a time: the next one is taken only once
 * the answer before it is handed to the stream (http_answer_done loops back). */
static void http_serve(http_sess *hs)
{
    if (hs->serving)
        return;
    hs->serving = 1;
    while (!hs->answering && !hs->closing && hs->in.len) {
        sts_http_request req;
        int status = sts_http_parse_request(hs->in.data, hs->in.len, &req);
        if (!status)
            break;
        if (hs->nreq && http_refresh(hs) != 0)
            break;
        sts_delay_cancel(hs->idle);
        hs->idle = NULL;
        if (status == 200)
            sts_buf_consume(&hs->in, req.head_len);
        http_answer(hs, hs->st, status, &req);
    }
    hs->serving = 0;
}

static void http_read(sts_stream *st, const char *data, size_t len)
{
    http_sess *hs = (http_sess *)sts_tcpsrv_conn_of(st);
    if (hs->closing || (hs->answering && !hs->keep))
        return; /* after the last request the rest is ignored */
    if (hs->cf->ctx && hs->cf->handshake_abort) {
        /* handshake: abort - the ClientHello is answered by closing the connection,
         * like an MX's scripted abort. Nothing reached HTTP, so no fetch is recorded
         * (as for a handshake that fails on the certificate). */
        sts_info(hs->srv->log, "policy https#%u aborting the TLS handshake (scripted)", hs->id);
        hs->outcome = "handshake_aborted";
        sts_stream_close(st);
        return;
    }
    if (sts_buf_append(&hs->in, data, len) != 0) {
        if (hs->answering) {
            sts_stream_close(st); /* a client that floods while it is answered */
            return;
        }
        sts_http_request req;
        memset(&req, 0, sizeof(req));
        http_answer(hs, st, 431, &req);
        return;
    }
    http_serve(hs);
}

static void http_tls(sts_stream *st, int status)
{
    http_sess *hs = (http_sess *)sts_tcpsrv_conn_of(st);
    const sts_tls_info *ti = sts_stream_tls_info(st);
    if (status != 0) {
        sts_info(hs->srv->log, "policy https#%u TLS handshake failed: %s", hs->id, ti->error);
        hs->outcome = "tls_failed";
        snprintf(hs->error, sizeof(hs->error), "%s", ti->error);
        sts_stream_close(st);
        return;
    }
    sts_debug(hs->srv->log, "policy https#%u TLS up: %s %s sni=%s", hs->id, ti->version, ti->cipher,
              ti->sni[0] ? ti->sni : "-");
}

static void http_eof(sts_stream *st, int status)
{
    http_sess *hs = (http_sess *)sts_tcpsrv_conn_of(st);
    if (!hs->answering && !hs->closing && hs->in.len)
        sts_debug(hs->srv->log, "policy %s#%u: peer closed before a complete request",
                  hs->cf->scheme, hs->id);
    sts_stream_close(st);
}

static void http_close(sts_tcpsrv_conn *conn)
{
    http_sess *hs = (http_sess *)conn;
    const sts_tls_info *ti = hs->cf->ctx ? sts_stream_tls_info(hs->st) : NULL;
    const char *outcome = hs->outcome ? hs->outcome : hs->nreq ? "request" : "no_request";
    sts_observer_policy_conn(hs->srv->obs, hs->cf->scheme, hs->peer, ti ? ti->sni : NULL,
                             ti && ti->done ? ti->version : NULL, outcome,
                             hs->error[0] ? hs->error : NULL);
    if (hs->fetch && hs->sent != hs->body.len)
        sts_debug(hs->srv->log, "policy %s#%u closed after %zu of %zu body octets", hs->cf->scheme,
                  hs->id, hs->sent, hs->body.len);
    http_fetch_done(hs); /* an answer the connection closed in the middle of */
    http_sess_free(hs);
}

static const sts_tcpsrv_ops http_ops = {
    .on_accept = http_accept,
    .on_read = http_read,
    .on_tls = http_tls,
    .on_eof = http_eof,
    .on_close = http_close,
};

int sts_httpsrv_start(uv_loop_t *loop, int fd, sts_served *const *served, int https, size_t slot,
                      sts_observer *obs, sts_log *log, sts_httpsrv **out)
{
    sts_httpsrv *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return STS_ENOMEM;
    }
    s->served = served;
    s->https = https;
    s->slot = slot;
    s->obs = obs;
    s->log = log;
    int rc = sts_tcpsrv_start(loop, fd, &http_ops, s, https ? "https" : "http", log, &s->tcp);
    if (rc != 0)
        free(s);
    else
        *out = s;
    return rc;
}

void sts_httpsrv_stop(sts_httpsrv *s, void (*done)(void *arg), void *arg)
{
    sts_tcpsrv_stop_owner(s->tcp, free, done, arg);
}
