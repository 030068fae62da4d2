/*
 * httpsrv.c - the world's policy server (see httpsrv.h). Functions return 0 or a
 * negative STS_* code; sts_http_parse_request returns 0 or an HTTP status.
 */
#include "fakedns/httpsrv.h"
#include "common/buf.h"
#include "common/err.h"
#include "fakedns/tcpsrv.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

struct sts_httpsrv {
    sts_httpsrv_conf conf;
    sts_tcpsrv *tcp;
    sts_observer *obs;
    sts_log *log;
    unsigned nconn;
    void (*done)(void *);
    void *done_arg;
};

typedef struct http_sess {
    sts_tcpsrv_conn conn; /* first: the stream's data pointer */
    sts_httpsrv *srv;
    unsigned id;
    sts_buf in;
    int answered;
} http_sess;

/* RFC 9110 5.6.2: tchar. */
static int is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
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
        }
    }
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

/* Send the answer to the request parsed with status pstatus, record it, and close
 * once it is written. */
static void http_answer(http_sess *hs, sts_stream *st, int pstatus, const sts_http_request *req)
{
    sts_httpsrv *s = hs->srv;
    const sts_httpsrv_conf *c = &s->conf;
    int status = pstatus;
    const char *ctype = "text/plain";
    const char *body = "bad request\n";
    const char *allow = NULL;
    int head = 0;
    size_t blen;
    if (pstatus == 200) {
        head = !strcmp(req->method, "HEAD");
        if (strcmp(req->method, "GET") && !head) {
            status = 405;
            allow = "GET, HEAD";
            body = "method not allowed\n";
        } else if (c->present && !strcmp(req->path, STS_HTTP_POLICY_PATH)) {
            status = c->status;
            ctype = c->content_type;
            body = c->body;
        } else {
            status = 404;
            body = "not found\n";
        }
    }
    blen = body == c->body ? c->body_len : strlen(body);
    sts_buf out;
    sts_buf_init(&out, 0);
    int rc = sts_buf_appendf(&out,
                             "HTTP/1.1 %d %s\r\nServer: ststest-world\r\nContent-Type: %s\r\n"
                             "Content-Length: %zu\r\n%s%s%sCache-Control: no-store\r\n"
                             "Connection: close\r\n\r\n",
                             status, status_text(status), ctype, blen, allow ? "Allow: " : "",
                             allow ? allow : "", allow ? "\r\n" : "");
    /* A HEAD answer has the GET answer's fields but no content (RFC 9110 9.3.2). */
    if (rc == 0 && !head)
        rc = sts_buf_append(&out, body, blen);
    if (rc == 0)
        rc = sts_stream_write(st, out.data, out.len);
    sts_buf_free(&out);

    const sts_tls_info *ti = sts_stream_tls_info(st);
    const char *sni = c->ctx ? ti->sni : NULL;
    sts_info(s->log, "policy %s#%u %s %s host=%s sni=%s -> %d", c->scheme, hs->id,
             pstatus == 200 ? req->method : "-", pstatus == 200 ? req->path : "-",
             pstatus == 200 && req->have_host ? req->host : "-", sni && *sni ? sni : "-", status);
    sts_observer_fetch(s->obs, pstatus == 200 && req->have_host ? req->host : NULL, c->scheme, sni,
                       pstatus == 200 ? req->method : NULL, pstatus == 200 ? req->path : NULL,
                       status);
    hs->answered = 1;
    if (rc != 0)
        sts_stream_close(st);
    else
        sts_stream_shutdown(st); /* after the answer is written */
}

static sts_tcpsrv_conn *http_accept(sts_tcpsrv *t, sts_stream *st)
{
    sts_httpsrv *s = sts_tcpsrv_arg(t);
    http_sess *hs = calloc(1, sizeof(*hs));
    if (!hs)
        return NULL;
    hs->srv = s;
    hs->id = ++s->nconn;
    sts_buf_init(&hs->in, STS_HTTP_MAX_HEAD);
    sts_debug(s->log, "policy %s#%u connection from %s to %s", s->conf.scheme, hs->id,
              sts_stream_peer_addr(st), sts_stream_local_addr(st));
    if (s->conf.ctx && sts_stream_start_tls_server(st, s->conf.ctx) != 0) {
        sts_buf_free(&hs->in);
        free(hs);
        return NULL;
    }
    return &hs->conn;
}

static void http_read(sts_stream *st, const char *data, size_t len)
{
    http_sess *hs = (http_sess *)sts_tcpsrv_conn_of(st);
    if (hs->answered)
        return; /* one request per connection; the rest is ignored */
    sts_http_request req;
    int status;
    if (sts_buf_append(&hs->in, data, len) != 0)
        status = 431;
    else
        status = sts_http_parse_request(hs->in.data, hs->in.len, &req);
    if (status)
        http_answer(hs, st, status, &req);
}

static void http_tls(sts_stream *st, int status)
{
    http_sess *hs = (http_sess *)sts_tcpsrv_conn_of(st);
    const sts_tls_info *ti = sts_stream_tls_info(st);
    if (status != 0) {
        sts_info(hs->srv->log, "policy https#%u TLS handshake failed: %s", hs->id, ti->error);
        sts_stream_close(st);
        return;
    }
    sts_debug(hs->srv->log, "policy https#%u TLS up: %s %s sni=%s", hs->id, ti->version, ti->cipher,
              ti->sni[0] ? ti->sni : "-");
}

static void http_eof(sts_stream *st, int status)
{
    http_sess *hs = (http_sess *)sts_tcpsrv_conn_of(st);
    if (!hs->answered && hs->in.len)
        sts_debug(hs->srv->log, "policy %s#%u: peer closed before a complete request",
                  hs->srv->conf.scheme, hs->id);
    sts_stream_close(st);
}

static void http_close(sts_tcpsrv_conn *conn)
{
    http_sess *hs = (http_sess *)conn;
    sts_buf_free(&hs->in);
    free(hs);
}

static const sts_tcpsrv_ops http_ops = {
    .on_accept = http_accept,
    .on_read = http_read,
    .on_tls = http_tls,
    .on_eof = http_eof,
    .on_close = http_close,
};

int sts_httpsrv_start(uv_loop_t *loop, int fd, const sts_httpsrv_conf *conf, sts_observer *obs,
                      sts_log *log, sts_httpsrv **out)
{
    sts_httpsrv *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return STS_ENOMEM;
    }
    s->conf = *conf;
    s->obs = obs;
    s->log = log;
    int rc = sts_tcpsrv_start(loop, fd, &http_ops, s, conf->scheme, &s->tcp);
    if (rc != 0) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

static void httpsrv_done(void *arg)
{
    sts_httpsrv *s = arg;
    void (*done)(void *) = s->done;
    void *darg = s->done_arg;
    free(s);
    if (done)
        done(darg);
}

void sts_httpsrv_stop(sts_httpsrv *s, void (*done)(void *arg), void *arg)
{
    s->done = done;
    s->done_arg = arg;
    sts_tcpsrv_stop(s->tcp, httpsrv_done, s);
}
