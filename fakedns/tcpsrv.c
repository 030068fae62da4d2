/*
 * tcpsrv.c - a listening socket and its live sessions (see tcpsrv.h). Functions
 * return 0 or a negative STS_* code.
 */
#include "fakedns/tcpsrv.h"
#include "common/err.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct sts_tcpsrv {
    uv_tcp_t listener; /* embedded: the server is freed in its close callback */
    const sts_tcpsrv_ops *ops;
    sts_stream_cbs cbs; /* stable storage for the streams' callbacks */
    void *arg;
    char name[64];
    sts_tcpsrv_conn head; /* circular list of live sessions */
    size_t nsessions;     /* in the list and not evicted */
    uint64_t evictions;
    sts_log *log;
    char where[64]; /* the listening address, for the log */
    int stopping;
    int listener_closed;
    int waiting;        /* a connection is left unaccepted at the cap (see tcpsrv.h) */
    sts_delay *recheck; /* while waiting: look again for a session idle long enough */
    void (*done)(void *);
    void *done_arg;
    void (*free_owner)(void *); /* sts_tcpsrv_stop_owner: frees arg after the server */
};

static void tcpsrv_accept(sts_tcpsrv *srv);

static void tcpsrv_maybe_done(sts_tcpsrv *srv)
{
    if (!srv->stopping || !srv->listener_closed || srv->head.next != &srv->head)
        return;
    void (*done)(void *) = srv->done;
    void *arg = srv->done_arg;
    void (*free_owner)(void *) = srv->free_owner;
    void *owner = srv->arg;
    free(srv);
    if (free_owner)
        free_owner(owner);
    if (done)
        done(arg);
}

static void tcpsrv_stream_close_cb(sts_stream *s)
{
    sts_tcpsrv_conn *c = sts_stream_data(s);
    if (!c)
        return; /* refused before a session existed */
    sts_tcpsrv *srv = c->srv;
    if (!c->evicted)
        srv->nsessions--;
    c->prev->next = c->next;
    c->next->prev = c->prev;
    c->prev = c->next = NULL;
    c->stream = NULL;
    srv->ops->on_close(c);
    if (srv->waiting && !srv->stopping && srv->nsessions < STS_TCPSRV_MAX_SESSIONS)
        tcpsrv_accept(srv); /* the connection left waiting at the cap takes its place */
    tcpsrv_maybe_done(srv);
}

/* At the cap: close the session that made no progress for longest (the first of
 * equals: the oldest, as sessions are added at the head), if that is at least
 * STS_TCPSRV_EVICT_IDLE_MS. 1 when one was closed, 0 when every session made progress
 * more recently than that (all are working: none is closed). */
static int tcpsrv_evict(sts_tcpsrv *srv, uv_loop_t *loop)
{
    sts_tcpsrv_conn *victim = NULL;
    for (sts_tcpsrv_conn *c = srv->head.next; c != &srv->head; c = c->next)
        if (!c->evicted && (!victim || c->progress <= victim->progress))
            victim = c;
    if (!victim || uv_now(loop) - victim->progress < STS_TCPSRV_EVICT_IDLE_MS)
        return 0;
    victim->evicted = 1;
    srv->nsessions--;
    srv->evictions++;
    uint64_t idle = uv_now(loop) - victim->progress;
    const char *peer = sts_stream_peer_addr(victim->stream);
    /* Once per power of two: an attack of thousands of connections leaves a few
     * dozen lines, each with the running count. */
    if (srv->log && (srv->evictions & (srv->evictions - 1)) == 0)
        sts_info(srv->log,
                 "%s %s: %d sessions open (the cap): closing the one without progress for "
                 "longest (from %s, %.1f s without a complete command, request or message) "
                 "to accept a new one; %llu closed so far (STS_TCPSRV_MAX_SESSIONS)",
                 srv->name, srv->where, STS_TCPSRV_MAX_SESSIONS, peer && *peer ? peer : "?",
                 (double)idle / 1000.0, (unsigned long long)srv->evictions);
    sts_stream_close(victim->stream);
    return 1;
}

static void tcpsrv_recheck_cb(void *arg)
{
    sts_tcpsrv *srv = arg;
    srv->recheck = NULL;
    if (srv->waiting && !srv->stopping)
        tcpsrv_accept(srv);
}

/* A completed handshake is progress; then the protocol's own callback. */
static void tcpsrv_tls_cb(sts_stream *s, int status)
{
    sts_tcpsrv_conn *c = sts_stream_data(s);
    if (status == 0)
        sts_tcpsrv_progress(s);
    if (c && c->srv)
        c->srv->ops->on_tls(s, status);
}

/* Accept the connection libuv holds for us, making room at the cap; or, when every
 * session at the cap is working, leave it waiting (libuv stops watching the listener
 * until it is accepted, so the rest wait in the kernel's backlog) and look again in
 * STS_TCPSRV_RECHECK_MS, or when a session closes. */
static void tcpsrv_accept(sts_tcpsrv *srv)
{
    uv_stream_t *server = (uv_stream_t *)&srv->listener;
    srv->waiting = 0;
    if (srv->nsessions >= STS_TCPSRV_MAX_SESSIONS && !tcpsrv_evict(srv, server->loop)) {
        srv->waiting = 1;
        if (!srv->recheck)
            srv->recheck = sts_delay_start(server->loop, STS_TCPSRV_RECHECK_MS / 1000.0,
                                           tcpsrv_recheck_cb, srv);
        return;
    }
    sts_delay_cancel(srv->recheck);
    srv->recheck = NULL;
    sts_stream *s = sts_stream_new(server->loop, &srv->cbs, NULL);
    if (!s)
        return;
    if (sts_stream_accept(s, server) != 0) {
        sts_stream_close(s);
        return;
    }
    sts_tcpsrv_conn *c = srv->ops->on_accept(srv, s);
    if (!c) {
        sts_stream_close(s);
        return;
    }
    c->srv = srv;
    c->stream = s;
    c->progress = uv_now(server->loop);
    c->evicted = 0;
    srv->nsessions++;
    c->next = srv->head.next;
    c->prev = &srv->head;
    srv->head.next->prev = c;
    srv->head.next = c;
    sts_stream_set_data(s, c);
}

static void tcpsrv_connection_cb(uv_stream_t *server, int status)
{
    sts_tcpsrv *srv = server->data;
    if (status < 0 || srv->stopping)
        return;
    tcpsrv_accept(srv);
}

int sts_tcpsrv_start(uv_loop_t *loop, int fd, const sts_tcpsrv_ops *ops, void *arg,
                     const char *name, sts_log *log, sts_tcpsrv **out)
{
    sts_tcpsrv *srv = calloc(1, sizeof(*srv));
    if (!srv) {
        close(fd);
        return STS_ENOMEM;
    }
    srv->ops = ops;
    srv->arg = arg;
    srv->log = log;
    snprintf(srv->name, sizeof(srv->name), "%s", name);
    srv->head.next = srv->head.prev = &srv->head;
    srv->cbs.on_read = ops->on_read;
    srv->cbs.on_tls = ops->on_tls ? tcpsrv_tls_cb : NULL;
    srv->cbs.on_eof = ops->on_eof;
    srv->cbs.on_close = tcpsrv_stream_close_cb;
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    int rc = uv_tcp_open(&srv->listener, (uv_os_sock_t)fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&srv->listener, STS_TCPSRV_BACKLOG, tcpsrv_connection_cb);
    if (rc != 0) {
        /* The handle exists: it must be closed through the loop. */
        if (uv_fileno((uv_handle_t *)&srv->listener, &(uv_os_fd_t){0}) != 0)
            close(fd);
        sts_tcpsrv_stop(srv, NULL, NULL);
        return STS_EIO;
    }
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    char host[64] = "?";
    if (uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET6) {
            uv_ip6_name((struct sockaddr_in6 *)&ss, host, sizeof(host));
            snprintf(srv->where, sizeof(srv->where), "[%s]:%u", host,
                     ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
        } else {
            uv_ip4_name((struct sockaddr_in *)&ss, host, sizeof(host));
            snprintf(srv->where, sizeof(srv->where), "%s:%u", host,
                     ntohs(((struct sockaddr_in *)&ss)->sin_port));
        }
    }
    *out = srv;
    return 0;
}

void sts_tcpsrv_progress(sts_stream *s)
{
    sts_tcpsrv_conn *c = sts_stream_data(s);
    if (c && c->srv)
        c->progress = uv_now(sts_stream_loop(s));
}

void *sts_tcpsrv_arg(const sts_tcpsrv *srv)
{
    return srv->arg;
}

const char *sts_tcpsrv_name(const sts_tcpsrv *srv)
{
    return srv->name;
}

sts_tcpsrv_conn *sts_tcpsrv_conn_of(sts_stream *s)
{
    return sts_stream_data(s);
}

static void tcpsrv_listener_close_cb(uv_handle_t *h)
{
    sts_tcpsrv *srv = h->data;
    srv->listener_closed = 1;
    tcpsrv_maybe_done(srv);
}

void sts_tcpsrv_stop(sts_tcpsrv *srv, void (*done)(void *arg), void *arg)
{
    if (srv->stopping)
        return;
    srv->stopping = 1;
    srv->done = done;
    srv->done_arg = arg;
    sts_delay_cancel(srv->recheck);
    srv->recheck = NULL;
    srv->waiting = 0;
    uv_close((uv_handle_t *)&srv->listener, tcpsrv_listener_close_cb);
    /* sts_stream_close() never calls back inside itself, so the list stays intact
     * while we walk it; each session unlinks itself later, in its on_close. */
    for (sts_tcpsrv_conn *c = srv->head.next; c != &srv->head; c = c->next)
        sts_stream_close(c->stream);
}

void sts_tcpsrv_stop_owner(sts_tcpsrv *srv, void (*free_owner)(void *owner),
                           void (*done)(void *arg), void *arg)
{
    if (!srv->stopping)
        srv->free_owner = free_owner;
    sts_tcpsrv_stop(srv, done, arg);
}

/* ---- delays ---- */

struct sts_delay {
    uv_timer_t timer; /* first: the close callback frees the delay through it */
    void (*cb)(void *arg);
    void *arg;
};

static void delay_close_cb(uv_handle_t *h)
{
    free(h);
}

static void delay_timer_cb(uv_timer_t *t)
{
    sts_delay *d = t->data;
    void (*cb)(void *) = d->cb;
    d->cb = NULL;
    uv_close((uv_handle_t *)&d->timer, delay_close_cb);
    if (cb)
        cb(d->arg);
}

sts_delay *sts_delay_start(uv_loop_t *loop, double seconds, void (*cb)(void *arg), void *arg)
{
    sts_delay *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    d->cb = cb;
    d->arg = arg;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    uint64_t ms = seconds > 0 ? (uint64_t)(seconds * 1000.0 + 0.5) : 0;
    if (uv_timer_start(&d->timer, delay_timer_cb, ms, 0) != 0) {
        uv_close((uv_handle_t *)&d->timer, delay_close_cb);
        return NULL;
    }
    return d;
}

void sts_delay_cancel(sts_delay *d)
{
    if (!d || !d->cb)
        return;
    d->cb = NULL;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, delay_close_cb);
}
