/*
 * tcpsrv.h - one listening TCP socket of the world and the sessions accepted on it.
 *
 * The world binds every socket itself (so that an address clash is known before any
 * libuv handle exists) and hands the listening fd over here. Each accepted
 * connection becomes an sts_stream (common/tls.h) whose data pointer is the
 * protocol's session, which embeds an sts_tcpsrv_conn. The server keeps the list of
 * live sessions so that stopping closes every one of them; a session's memory is
 * freed only in the protocol's on_close, never inside its own handler.
 *
 * A listener holds at most STS_TCPSRV_MAX_SESSIONS sessions. When a connection
 * arrives at the cap, the session that made no progress for longest (no complete
 * command, request or message since it was accepted or since its last one:
 * sts_tcpsrv_progress(), also called when a TLS handshake completes) is closed, with a
 * log line, if it made none for STS_TCPSRV_EVICT_IDLE_MS; the new connection takes its
 * place. If every session made progress more recently, all of them are working (a
 * sender at --concurrency 1000): none is closed, and the new connection waits, with
 * the ones behind it in the kernel's backlog (STS_TCPSRV_BACKLOG), until a session
 * ends or one has been idle that long (looked at again every STS_TCPSRV_RECHECK_MS).
 * So hundreds of clients that connect and drip bytes (slowloris) hold a bounded
 * number of descriptors and buffers and never lock out a client that speaks the
 * protocol, and a busy client is slowed down, never cut off. A world with fewer
 * sessions than the cap, every scenario, never closes one. There is no idle timeout
 * below the cap: a scripted delay or a sender's own timeout test may keep a session
 * silent for as long as it likes.
 *
 * Functions return 0 or a negative STS_* code.
 */
#ifndef STS_TCPSRV_H
#define STS_TCPSRV_H

#include <stdint.h>
#include <uv.h>

#include "common/log.h"
#include "common/tls.h"

typedef struct sts_tcpsrv sts_tcpsrv;

/* Sessions one listener holds at once (see above). */
#define STS_TCPSRV_MAX_SESSIONS 256
/* At the cap, a session idle this long may be closed to make room (see above). */
#define STS_TCPSRV_EVICT_IDLE_MS 1000
/* While a connection waits at the cap: how often to look for such a session. */
#define STS_TCPSRV_RECHECK_MS 100
/* listen(2)'s backlog (the kernel caps it at net.core.somaxconn). */
#define STS_TCPSRV_BACKLOG 4096

/* Embedded in every protocol session; set up by sts_tcpsrv (do not touch). */
typedef struct sts_tcpsrv_conn {
    struct sts_tcpsrv_conn *prev, *next;
    sts_tcpsrv *srv;
    sts_stream *stream;
    uint64_t progress; /* uv_now() of the accept or the last sts_tcpsrv_progress() */
    int evicted;       /* closed to make room: closing, not counted any more */
} sts_tcpsrv_conn;

typedef struct sts_tcpsrv_ops {
    /* A connection was accepted on stream: allocate the session and return its
     * embedded conn (NULL refuses: the stream is closed). */
    sts_tcpsrv_conn *(*on_accept)(sts_tcpsrv *srv, sts_stream *stream);
    void (*on_read)(sts_stream *s, const char *data, size_t len);
    void (*on_tls)(sts_stream *s, int status);
    void (*on_eof)(sts_stream *s, int status);
    /* The stream is closed: free the session (conn is already unlinked). */
    void (*on_close)(sts_tcpsrv_conn *conn);
} sts_tcpsrv_ops;

/* Listen on the bound, listening socket fd (ownership passes to the server, also
 * on failure). arg is the protocol's server object (sts_tcpsrv_arg()); log is where
 * the server logs the sessions it closes at the cap (NULL: nowhere). */
int sts_tcpsrv_start(uv_loop_t *loop, int fd, const sts_tcpsrv_ops *ops, void *arg,
                     const char *name, sts_log *log, sts_tcpsrv **out);
void *sts_tcpsrv_arg(const sts_tcpsrv *srv);
/* The session of s completed a unit of its protocol (a command, a request, a
 * message): it is not the one closed at the cap. */
void sts_tcpsrv_progress(sts_stream *s);
const char *sts_tcpsrv_name(const sts_tcpsrv *srv);
/* The session of a stream accepted by a tcpsrv. */
sts_tcpsrv_conn *sts_tcpsrv_conn_of(sts_stream *s);

/* Close the listener and every session; done(arg) runs once all are closed, then
 * the server is freed. */
void sts_tcpsrv_stop(sts_tcpsrv *srv, void (*done)(void *arg), void *arg);
/* sts_tcpsrv_stop, and once the server is freed, free_owner(the server's arg: the
 * protocol's server object, which embeds nothing of it) before done(arg): how a
 * protocol server stops and frees itself without a done callback of its own. */
void sts_tcpsrv_stop_owner(sts_tcpsrv *srv, void (*free_owner)(void *owner),
                           void (*done)(void *arg), void *arg);

/* ---- one-shot delays (scripted slowness of the world's servers) ----
 *
 * A delay owns its uv_timer_t and frees it in the close callback, so the owner of
 * a delay (a session that may be closed while it runs) never embeds a handle that
 * outlives it: it cancels the delay in its own close path and forgets it. */
typedef struct sts_delay sts_delay;

/* Run cb(arg) once, seconds from now (0 = on the next loop iteration, never inside
 * this call). After cb the delay frees itself: the owner forgets its pointer in cb.
 * Returns NULL on ENOMEM. */
sts_delay *sts_delay_start(uv_loop_t *loop, double seconds, void (*cb)(void *arg), void *arg);
/* cb will not run; the memory goes in the close callback. NULL is a no-op. */
void sts_delay_cancel(sts_delay *d);

#endif
