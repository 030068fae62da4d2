/*
 * collector.c - the world's HTTPS report collector (see collector.h). A connection
 * is read into one buffer until the request head and its Content-Length body are
 * complete; then the report is judged and the one answer sent.
 */
#include "fakedns/collector.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/scenario.h"
#include "fakedns/httpsrv.h"
#include "fakedns/rptrecv.h"
#include "fakedns/served.h"
#include "fakedns/tcpsrv.h"

struct sts_collector {
    sts_served *const *served;
    size_t index; /* the host's entry in the served state */
    sts_tcpsrv *tcp;
    sts_observer *obs;
    sts_log *log;
    unsigned nconn;
};

typedef struct col_sess {
    sts_tcpsrv_conn conn; /* first: the stream's data pointer */
    sts_collector *srv;
    sts_served *served;
    const sts_collector_conf *cf;
    sts_stream *st;
    unsigned id;
    sts_buf in;
    int answered;  /* the answer is out (or scheduled): the rest is ignored */
    int continued; /* "100 Continue" was sent */
    sts_delay *wait;
    int status; /* the answer being delayed */
} col_sess;

/* The fields a POST needs, from the request head (RFC 9112 5, 6). */
typedef struct col_fields {
    char content_type[256], content_encoding[64];
    int has_type, has_encoding;
    long long length; /* -1: no Content-Length */
    int chunked, expect_continue, bad_length;
} col_fields;

static void col_fields_read(const char *head, size_t len, col_fields *f)
{
    memset(f, 0, sizeof(*f));
    f->length = -1;
    const char *p = memchr(head, '\n', len), *end = head + len;
    while (p && ++p < end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        const char *le = e ? e : end;
        if (le > p && le[-1] == '\r')
            le--;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (colon) {
            const char *v = colon + 1;
            while (v < le && (*v == ' ' || *v == '\t'))
                v++;
            size_t nl = (size_t)(colon - p), vl = (size_t)(le - v);
            while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
                vl--;
            if (nl == 12 && !strncasecmp(p, "content-type", 12)) {
                snprintf(f->content_type, sizeof(f->content_type), "%.*s", (int)vl, v);
                f->has_type = 1;
            } else if (nl == 16 && !strncasecmp(p, "content-encoding", 16)) {
                snprintf(f->content_encoding, sizeof(f->content_encoding), "%.*s", (int)vl, v);
                f->has_encoding = 1;
            } else if (nl == 14 && !strncasecmp(p, "content-length", 14)) {
                char num[32];
                snprintf(num, sizeof(num), "%.*s", (int)vl, v);
                char *ne = NULL;
                long long n = strtoll(num, &ne, 10);
                if (!num[0] || *ne || n < 0 || (f->length >= 0 && f->length != n))
                    f->bad_length = 1;
                f->length = n;
            } else if (nl == 17 && !strncasecmp(p, "transfer-encoding", 17)) {
                f->chunked = 1;
            } else if (nl == 6 && !strncasecmp(p, "expect", 6) && vl == 12 &&
                       !strncasecmp(v, "100-continue", 12)) {
                f->expect_continue = 1;
            }
        }
        p = e;
    }
}

static const char *col_status_text(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

static void col_send(col_sess *cs, int status)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nServer: ststest-world\r\nContent-Length: 0\r\n"
                     "Connection: close\r\n\r\n",
                     status, col_status_text(status));
    if (sts_stream_write(cs->st, head, (size_t)n) != 0) {
        sts_stream_close(cs->st);
        return;
    }
    sts_stream_shutdown(cs->st);
}

static void col_slow_cb(void *arg)
{
    col_sess *cs = arg;
    cs->wait = NULL;
    sts_info(cs->srv->log, "tlsrpt https#%u answering %d after %.0fs (slow)", cs->id, cs->status,
             STS_SCN_COLLECTOR_SLOW_SECONDS);
    col_send(cs, cs->status);
}

/* The answer to a complete request; a report POSTed on the path is judged and
 * recorded first. */
static void col_answer(col_sess *cs, int pstatus, const sts_http_request *req, const col_fields *f,
                       const char *body, size_t blen)
{
    const sts_collector_conf *c = cs->cf;
    int status = pstatus, report = 0;
    if (pstatus == 200) {
        if (!c->present || strcmp(req->path, c->path))
            status = 404;
        else if (strcmp(req->method, "POST"))
            status = 405;
        else
            report = 1;
    }
    if (report) {
        status = c->fault == STS_COLLECTOR_500 ? 500 : c->fault == STS_COLLECTOR_503 ? 503 : 200;
        json_t *rec =
            sts_rptrecv_https(f->has_type ? f->content_type : NULL,
                              f->has_encoding ? f->content_encoding : NULL, body ? body : "", blen);
        const sts_tls_info *ti = sts_stream_tls_info(cs->st);
        if (rec) {
            json_object_set_new(rec, "host", json_string(c->name));
            json_object_set_new(rec, "path", json_string(req->path));
            json_object_set_new(rec, "status", json_integer(status));
            /* A slow answer comes after the sender's timeout: it gave up, so the
             * report counts as not delivered (the sender defers it). */
            json_object_set_new(rec, "accepted",
                                json_boolean(status == 200 && c->fault != STS_COLLECTOR_SLOW));
            json_object_set_new(rec, "sni", ti->sni[0] ? json_string(ti->sni) : json_null());
            json_object_set_new(rec, "tls_version", json_string(ti->version));
            json_object_set_new(rec, "fault", json_string(sts_collector_fault_name(c->fault)));
        }
        sts_observer_tlsrpt(cs->srv->obs, rec);
    }
    sts_info(cs->srv->log, "tlsrpt https#%u %s %s content-type=%s %zu octets -> %d%s", cs->id,
             pstatus == 200 ? req->method : "-", pstatus == 200 ? req->path : "-",
             f->has_type ? f->content_type : "-", blen, status,
             report && c->fault == STS_COLLECTOR_SLOW ? " (after a delay: slow)" : "");
    cs->answered = 1;
    if (report && c->fault == STS_COLLECTOR_SLOW) {
        cs->status = status;
        if (!(cs->wait = sts_delay_start(sts_stream_loop(cs->st), STS_SCN_COLLECTOR_SLOW_SECONDS,
                                         col_slow_cb, cs)))
            sts_stream_close(cs->st);
        return;
    }
    col_send(cs, status);
}

/* Take the request once its head and body are in. */
static void col_serve(col_sess *cs)
{
    sts_http_request req;
    int status = sts_http_parse_request(cs->in.data, cs->in.len, &req);
    if (!status)
        return; /* more of the head to come */
    col_fields f;
    memset(&f, 0, sizeof(f));
    if (status != 200) {
        col_answer(cs, status, &req, &f, NULL, 0);
        return;
    }
    col_fields_read(cs->in.data, req.head_len, &f);
    int post = !strcmp(req.method, "POST");
    if (post && (f.chunked || f.length < 0)) {
        col_answer(cs, 411, &req, &f, NULL, 0); /* Content-Length only */
        return;
    }
    if (f.bad_length) {
        col_answer(cs, 400, &req, &f, NULL, 0);
        return;
    }
    if (f.length > STS_COLLECTOR_MAX_BODY) {
        col_answer(cs, 413, &req, &f, NULL, 0);
        return;
    }
    size_t want = f.length > 0 ? (size_t)f.length : 0;
    if (cs->in.len - req.head_len < want) {
        /* RFC 9110 10.1.1: a client that waits for "100 Continue" sends the body on it. */
        if (f.expect_continue && !cs->continued) {
            cs->continued = 1;
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (sts_stream_write(cs->st, cont, sizeof(cont) - 1) != 0)
                sts_stream_close(cs->st);
        }
        return;
    }
    sts_tcpsrv_progress(cs->st);
    col_answer(cs, 200, &req, &f, cs->in.data + req.head_len, want);
}

static void col_read(sts_stream *st, const char *data, size_t len)
{
    col_sess *cs = (col_sess *)sts_tcpsrv_conn_of(st);
    if (cs->answered)
        return;
    if (sts_buf_append(&cs->in, data, len) != 0) {
        sts_http_request req;
        col_fields f;
        memset(&req, 0, sizeof(req));
        memset(&f, 0, sizeof(f));
        col_answer(cs, 413, &req, &f, NULL, 0);
        return;
    }
    col_serve(cs);
}

static void col_sess_free(col_sess *cs)
{
    sts_delay_cancel(cs->wait);
    sts_buf_free(&cs->in);
    sts_served_unref(cs->served);
    free(cs);
}

static sts_tcpsrv_conn *col_accept(sts_tcpsrv *t, sts_stream *st)
{
    sts_collector *s = sts_tcpsrv_arg(t);
    const sts_collector_conf *cf = &(*s->served)->hosts[s->index].col_conf;
    if (cf->present && cf->fault == STS_COLLECTOR_REFUSED) {
        sts_info(s->log, "tlsrpt https connection from %s to %s closed at once (fault: refused)",
                 sts_stream_peer_addr(st), cf->name);
        return NULL;
    }
    col_sess *cs = calloc(1, sizeof(*cs));
    if (!cs)
        return NULL;
    cs->srv = s;
    cs->st = st;
    cs->served = sts_served_ref(*s->served);
    cs->cf = &cs->served->hosts[s->index].col_conf;
    cs->id = ++s->nconn;
    /* The head, then the body: both capped. */
    sts_buf_init(&cs->in, STS_HTTP_MAX_HEAD + STS_COLLECTOR_MAX_BODY);
    sts_debug(s->log, "tlsrpt https#%u connection from %s to %s", cs->id, sts_stream_peer_addr(st),
              cs->cf->name);
    if (!cs->cf->ctx || sts_stream_start_tls_server(st, cs->cf->ctx) != 0) {
        col_sess_free(cs);
        return NULL;
    }
    return &cs->conn;
}

static void col_tls(sts_stream *st, int status)
{
    col_sess *cs = (col_sess *)sts_tcpsrv_conn_of(st);
    const sts_tls_info *ti = sts_stream_tls_info(st);
    if (status != 0) {
        sts_info(cs->srv->log, "tlsrpt https#%u TLS handshake failed: %s", cs->id, ti->error);
        sts_stream_close(st);
        return;
    }
    sts_tcpsrv_progress(st);
    sts_debug(cs->srv->log, "tlsrpt https#%u TLS up: %s sni=%s", cs->id, ti->version,
              ti->sni[0] ? ti->sni : "-");
}

static void col_eof(sts_stream *st, int status)
{
    col_sess *cs = (col_sess *)sts_tcpsrv_conn_of(st);
    if (!cs->answered && cs->in.len)
        sts_info(cs->srv->log, "tlsrpt https#%u: the client closed before a complete request",
                 cs->id);
    sts_stream_close(st);
}

static void col_close(sts_tcpsrv_conn *conn)
{
    col_sess_free((col_sess *)conn);
}

static const sts_tcpsrv_ops col_ops = {
    .on_accept = col_accept,
    .on_read = col_read,
    .on_tls = col_tls,
    .on_eof = col_eof,
    .on_close = col_close,
};

int sts_collector_start(uv_loop_t *loop, int fd, sts_served *const *served, size_t index,
                        sts_observer *obs, sts_log *log, sts_collector **out)
{
    sts_collector *s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return STS_ENOMEM;
    }
    s->served = served;
    s->index = index;
    s->obs = obs;
    s->log = log;
    int rc = sts_tcpsrv_start(loop, fd, &col_ops, s, "tlsrpt-https", log, &s->tcp);
    if (rc != 0)
        free(s);
    else
        *out = s;
    return rc;
}

void sts_collector_stop(sts_collector *s, void (*done)(void *arg), void *arg)
{
    sts_tcpsrv_stop_owner(s->tcp, free, done, arg);
}
