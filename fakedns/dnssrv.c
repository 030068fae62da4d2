/*
 * dnssrv.c - the world's DNS server (see dnssrv.h): the answer function of
 * dnszone.h over UDP (read and answered in batches) and TCP, with the scripted
 * delays and forged answers. Functions return 0 or a negative STS_* code unless
 * dnssrv.h says otherwise.
 */
#include "fakedns/dnssrv.h"
#include "common/err.h"
#include "common/scenario.h"
#include "fakedns/served.h"
#include "fakedns/tcpsrv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

/* The UDP receive buffer asked for, so that a burst of queries waits in the kernel
 * rather than being dropped; the kernel may grant less (net.core.rmem_max), and
 * whatever it drops is counted (sts_dnssrv_get_drops). STSTEST_DNS_RCVBUF (octets)
 * overrides it, for tests that want drops. */
#define DNS_RCVBUF (4 * 1024 * 1024)

#define DNS_TCP_MAX (2 + 65535) /* one length prefix and the largest message */

/* UDP in batches: libuv (UV_UDP_RECVMMSG) reads up to DNS_BATCH datagrams with one
 * recvmmsg(2) into slots of 64 KiB (the largest datagram) when the receive buffer
 * has room for at least two; the replies to one batch leave with one sendmmsg(2).
 * Under load this halves the system calls per query; a lone query costs the same. */
#define DNS_DGRAM_MAX (64 * 1024)
#define DNS_BATCH 16

/* Replies held until the end of the recvmmsg batch they answer. */
typedef struct dns_batch {
    int active; /* inside a batch's callbacks: replies wait here */
    unsigned n;
    struct mmsghdr msgs[DNS_BATCH];
    struct iovec iov[DNS_BATCH];
    struct sockaddr_storage addr[DNS_BATCH];
    size_t off[DNS_BATCH], len[DNS_BATCH]; /* in data (which may move as it grows) */
    sts_buf data;
} dns_batch;

typedef struct dns_tcp_sess dns_tcp_sess;

/* The links of the list of held answers (the head is a bare link in the server). */
typedef struct dns_link {
    struct dns_link *prev, *next;
} dns_link;

/* An answer held back by a scripted delay; on the server's list until sent or
 * cancelled. */
typedef struct dns_pending {
    dns_link link; /* first: a dns_link * of the list is the dns_pending */
    struct sts_dnssrv *srv;
    dns_tcp_sess *tcp; /* NULL: UDP to addr */
    sts_stream *st;
    struct sockaddr_storage addr;
    sts_delay *delay;
    int spoof;             /* STS_DNS_SPOOF_* */
    size_t spoof_len, len; /* data = spoofed answer (spoof_len), then the answer */
    uint8_t data[];
} dns_pending;

struct sts_dnssrv {
    uv_udp_t udp;              /* embedded; the server is freed once it and the TCP side closed */
    sts_served *const *served; /* the world's pointer: each query gets its zone */
    dns_link pending;          /* list head */
    sts_buf spoof;
    /* wrong_source: the sockets forged answers leave from, made on first use: [0] the
     * server's own address on another (ephemeral) port, [1] another address of its
     * /24 on the server's port. -1: not made yet; -2: cannot be made (said once). */
    int spoof_fd[2];
    sts_tcpsrv *tcp;
    sts_observer *obs;
    sts_log *log;
    sts_buf reply;
    int udp_closed, tcp_stopped, stopping;
    int obs_full_noted; /* the transcript said the observer log is full */
    void (*done)(void *);
    void *done_arg;
    dns_batch batch;
    char *rbuf;            /* DNS_BATCH slots of DNS_DGRAM_MAX */
    uint64_t server_drops; /* messages this server read and dropped */
    int rcvbuf;            /* the receive buffer the kernel granted */
};

struct dns_send {
    uv_udp_send_t req;
    size_t len;
    char data[];
};

struct dns_tcp_sess {
    sts_tcpsrv_conn conn; /* first: the stream's data pointer */
    sts_dnssrv *srv;
    sts_buf in;
    sts_buf reply;
};

static void dnssrv_record(sts_dnssrv *s, const sts_dns_result *res, int tcp)
{
    const char *transport = tcp ? "tcp" : "udp";
    /* Text only when the line is written: the hot path stays in wire form. */
    if (s->log && sts_log_verbosity(s->log) >= STS_LOG_DEBUG) {
        const char *fault = sts_scn_dns_fault_name(res->fault);
        char name[1024] = "-", type[24] = "-";
        if (res->qname) {
            sts_dns_name_text(res->qname, res->qname_len, name, sizeof(name));
            sts_dns_type_text(res->qtype, type, sizeof(type));
        }
        sts_debug(s->log, "dns %s %s %s -> %s%s%s an=%d%s%s", transport, name, type,
                  res->drop ? "(no answer)" : sts_dns_rcode_name(res->rcode), res->aa ? " aa" : "",
                  res->tc ? " tc" : "", res->ancount, fault ? " fault=" : "", fault ? fault : "");
    }
    int rc = sts_observer_dns_query(s->obs, res->qname, res->qname_len, res->qtype, tcp,
                                    res->drop ? -1 : res->rcode, res->fault);
    if (rc == STS_ETOOBIG && !s->obs_full_noted) {
        s->obs_full_noted = 1;
        sts_info(s->log,
                 "dns: the observer keeps at most %zu DNS queries; later ones are only counted "
                 "(dns_dropped)",
                 sts_observer_dns_max(s->obs));
    }
}

static void dnssrv_alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    sts_dnssrv *s = h->data;
    buf->base = s->rbuf;
    buf->len = (size_t)DNS_BATCH * DNS_DGRAM_MAX;
}

static void dnssrv_send_cb(uv_udp_send_t *req, int status)
{
    free(req->data);
}

static void dnssrv_udp_send_now(sts_dnssrv *s, const void *data, size_t len,
                                const struct sockaddr *addr)
{
    uv_buf_t out = uv_buf_init((char *)data, (unsigned)len);
    int rc = uv_udp_try_send(&s->udp, &out, 1, addr);
    if (rc == (int)len)
        return;
    /* The socket buffer is full (or try_send is unsupported): queue a copy. */
    struct dns_send *ds = malloc(sizeof(*ds) + len);
    if (!ds)
        return;
    memcpy(ds->data, data, len);
    ds->len = len;
    ds->req.data = ds;
    out = uv_buf_init(ds->data, (unsigned)ds->len);
    if (uv_udp_send(&ds->req, &s->udp, &out, 1, addr, dnssrv_send_cb) != 0)
        free(ds);
}

static socklen_t sockaddr_len(const struct sockaddr *addr)
{
    return addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Send the replies held for the batch that just ended, in order: one sendmmsg when
 * libuv has nothing queued (else ours would overtake its queue); whatever the
 * kernel did not take (EAGAIN, an error) goes the one-by-one way. */
static void dnssrv_batch_flush(sts_dnssrv *s)
{
    dns_batch *b = &s->batch;
    unsigned n = b->n, sent = 0;
    b->n = 0;
    if (!n)
        goto done;
    for (unsigned i = 0; i < n; i++) {
        b->iov[i].iov_base = b->data.data + b->off[i];
        b->iov[i].iov_len = b->len[i];
        memset(&b->msgs[i], 0, sizeof(b->msgs[i]));
        b->msgs[i].msg_hdr.msg_name = &b->addr[i];
        b->msgs[i].msg_hdr.msg_namelen = sockaddr_len((struct sockaddr *)&b->addr[i]);
        b->msgs[i].msg_hdr.msg_iov = &b->iov[i];
        b->msgs[i].msg_hdr.msg_iovlen = 1;
    }
    uv_os_fd_t fd;
    if (uv_udp_get_send_queue_count(&s->udp) == 0 && uv_fileno((uv_handle_t *)&s->udp, &fd) == 0) {
        int r;
        do
            r = sendmmsg(fd, b->msgs, n, MSG_DONTWAIT);
        while (r < 0 && errno == EINTR);
        if (r > 0)
            sent = (unsigned)r;
    }
    for (unsigned i = sent; i < n; i++)
        dnssrv_udp_send_now(s, b->iov[i].iov_base, b->iov[i].iov_len,
                            (struct sockaddr *)&b->addr[i]);
done:
    sts_buf_reset(&b->data);
}

/* One UDP datagram to addr: held for the batch's sendmmsg while a batch is being
 * answered, else sent now. */
static void dnssrv_udp_send(sts_dnssrv *s, const void *data, size_t len,
                            const struct sockaddr *addr)
{
    dns_batch *b = &s->batch;
    if (!b->active) {
        dnssrv_udp_send_now(s, data, len, addr);
        return;
    }
    if (b->n == DNS_BATCH)
        dnssrv_batch_flush(s); /* a forged answer ahead of a reply can fill it */
    size_t off = b->data.len;
    if (sts_buf_append(&b->data, data, len) != 0) {
        dnssrv_udp_send_now(s, data, len, addr);
        return;
    }
    b->off[b->n] = off;
    b->len[b->n] = len;
    memcpy(&b->addr[b->n], addr, sockaddr_len(addr));
    b->n++;
}

/* TCP: each message with its two-octet length (RFC 1035 4.2.2). */
static int dns_tcp_send(sts_stream *st, const uint8_t *data, size_t len)
{
    uint8_t pfx[2] = {(uint8_t)(len >> 8), (uint8_t)len};
    return sts_stream_write(st, pfx, 2) || sts_stream_write(st, data, len) ? -1 : 0;
}

/* The address a wrong_source forgery comes from when it is not the server's own:
 * the last octet of the server's IPv4 address set to 254 (253 when the server is
 * .254), so it stays in the world's /24 and outside the hosts' range. IPv6: none. */
static int spoof_other_addr(const struct sockaddr_storage *own, struct sockaddr_storage *out)
{
    if (own->ss_family != AF_INET)
        return -1;
    memcpy(out, own, sizeof(struct sockaddr_in));
    struct sockaddr_in *a = (struct sockaddr_in *)out;
    uint32_t ip = ntohl(a->sin_addr.s_addr);
    ip = (ip & ~0xffu) | ((ip & 0xffu) == 254 ? 253u : 254u);
    a->sin_addr.s_addr = htonl(ip);
    return 0;
}

/* Make spoof socket k (see sts_dnssrv.spoof_fd) unless made or failed before. */
static int spoof_socket(sts_dnssrv *s, int k)
{
    if (s->spoof_fd[k] != -1)
        return s->spoof_fd[k];
    s->spoof_fd[k] = -2;
    uv_os_fd_t ufd;
    struct sockaddr_storage own, from;
    socklen_t olen = sizeof(own);
    if (uv_fileno((uv_handle_t *)&s->udp, &ufd) != 0 ||
        getsockname(ufd, (struct sockaddr *)&own, &olen) != 0) {
        sts_info(s->log, "dns: wrong_source: cannot read the server's own address");
        return -2;
    }
    socklen_t flen = sockaddr_len((struct sockaddr *)&own);
    if (k == 0) {
        from = own; /* the same address, port 0: the kernel picks another one */
        if (from.ss_family == AF_INET6)
            ((struct sockaddr_in6 *)&from)->sin6_port = 0;
        else
            ((struct sockaddr_in *)&from)->sin_port = 0;
    } else if (spoof_other_addr(&own, &from) != 0) {
        sts_info(s->log, "dns: wrong_source: no other address next to an IPv6 server; "
                         "forging from another port only");
        return -2;
    }
    int fd = socket(from.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&from, flen) != 0) {
        char a[INET6_ADDRSTRLEN] = "?";
        const void *ip = from.ss_family == AF_INET6
                             ? (const void *)&((struct sockaddr_in6 *)&from)->sin6_addr
                             : (const void *)&((struct sockaddr_in *)&from)->sin_addr;
        inet_ntop(from.ss_family, ip, a, sizeof(a));
        sts_info(s->log, "dns: wrong_source: cannot send from %s port %u: %s", a,
                 (unsigned)ntohs(((struct sockaddr_in *)&from)->sin_port), strerror(errno));
        if (fd >= 0)
            close(fd);
        return -2;
    }
    return s->spoof_fd[k] = fd;
}

/* wrong_source over UDP: the forgery (right ID, other data) from the server's
 * address on another port, then from another address on the server's port. A
 * client must take an answer only from the address and port it asked (RFC 5452
 * 9.1); a connected UDP socket lets the kernel drop both. */
static void dnssrv_udp_forge(sts_dnssrv *s, const uint8_t *spoof, size_t len,
                             const struct sockaddr *addr)
{
    socklen_t alen = sockaddr_len(addr);
    for (int k = 0; k < 2; k++) {
        int fd = spoof_socket(s, k);
        if (fd >= 0 && sendto(fd, spoof, len, MSG_DONTWAIT, addr, alen) < 0)
            sts_debug(s->log, "dns: wrong_source: forged answer not sent: %s", strerror(errno));
    }
}

/* Send what res says: the forged answers first (wrong_id, wrong_source), then the
 * answer. */
static void dnssrv_emit(sts_dnssrv *s, sts_stream *st, const struct sockaddr *addr, int spoof_kind,
                        const uint8_t *spoof, size_t spoof_len, const uint8_t *reply, size_t len)
{
    if (st) {
        if ((spoof_len && dns_tcp_send(st, spoof, spoof_len)) || dns_tcp_send(st, reply, len))
            sts_stream_close(st);
        return;
    }
    if (spoof_len && spoof_kind == STS_DNS_SPOOF_SOURCE)
        dnssrv_udp_forge(s, spoof, spoof_len, addr);
    else if (spoof_len)
        dnssrv_udp_send(s, spoof, spoof_len, addr);
    dnssrv_udp_send(s, reply, len, addr);
}

static void pending_unlink(dns_pending *p)
{
    p->link.prev->next = p->link.next;
    p->link.next->prev = p->link.prev;
}

static void pending_fire_cb(void *arg)
{
    dns_pending *p = arg;
    pending_unlink(p);
    dnssrv_emit(p->srv, p->st, (const struct sockaddr *)&p->addr, p->spoof, p->data, p->spoof_len,
                p->data + p->spoof_len, p->len);
    free(p);
}

/* Cancel the pending answers of one TCP session (tcp) or all of them (NULL). */
static void pending_cancel(sts_dnssrv *s, dns_tcp_sess *tcp)
{
    for (dns_link *l = s->pending.next, *n; l != &s->pending; l = n) {
        n = l->next;
        dns_pending *p = (dns_pending *)l;
        if (tcp && p->tcp != tcp)
            continue;
        pending_unlink(p);
        sts_delay_cancel(p->delay);
        free(p);
    }
}

/* Deliver the answer in reply as res says: nothing (timeout), now, or later. */
static void dnssrv_deliver(sts_dnssrv *s, const sts_dns_result *res, const sts_buf *reply,
                           dns_tcp_sess *tcp, sts_stream *st, const struct sockaddr *addr)
{
    if (res->drop)
        return;
    size_t spoof_len = 0;
    if (res->spoof) {
        if (sts_dns_spoof((const uint8_t *)reply->data, reply->len,
                          res->spoof == STS_DNS_SPOOF_SOURCE, &s->spoof) == 0)
            spoof_len = s->spoof.len;
        else
            sts_info(s->log, "dns: cannot build the spoofed answer");
    }
    if (!(res->delay > 0)) {
        dnssrv_emit(s, st, addr, res->spoof, (const uint8_t *)s->spoof.data, spoof_len,
                    (const uint8_t *)reply->data, reply->len);
        return;
    }
    dns_pending *p = calloc(1, sizeof(*p) + spoof_len + reply->len);
    if (!p)
        return;
    p->srv = s;
    p->tcp = tcp;
    p->st = st;
    if (addr)
        memcpy(&p->addr, addr, sockaddr_len(addr));
    p->spoof = res->spoof;
    p->spoof_len = spoof_len;
    p->len = reply->len;
    if (spoof_len)
        memcpy(p->data, s->spoof.data, spoof_len);
    memcpy(p->data + spoof_len, reply->data, reply->len);
    p->delay =
        sts_delay_start(uv_handle_get_loop((uv_handle_t *)&s->udp), res->delay, pending_fire_cb, p);
    if (!p->delay) {
        free(p);
        return;
    }
    p->link.next = s->pending.next;
    p->link.prev = &s->pending;
    s->pending.next->prev = &p->link;
    s->pending.next = &p->link;
}

static void dnssrv_recv_cb(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf,
                           const struct sockaddr *addr, unsigned flags)
{
    sts_dnssrv *s = h->data;
    /* The datagrams of a recvmmsg batch come as UV_UDP_MMSG_CHUNK calls and their
     * replies wait; any other call (the batch's UV_UDP_MMSG_FREE, an empty read, a
     * single recvmsg) sends what waits first. */
    if (flags & UV_UDP_MMSG_CHUNK) {
        s->batch.active = 1;
    } else {
        dnssrv_batch_flush(s);
        s->batch.active = 0;
    }
    if (nread < 0) {
        sts_debug(s->log, "dns udp read error: %s", uv_strerror((int)nread));
        return;
    }
    if (nread == 0 || !addr || (flags & UV_UDP_PARTIAL))
        return;
    sts_dns_result res;
    const sts_dns_zone *zone = (*s->served)->zone; /* what is served now */
    if (sts_dns_answer(zone, (const uint8_t *)buf->base, (size_t)nread, STS_DNS_UDP, &s->reply,
                       &res) != 0 ||
        !res.answered) {
        s->server_drops++;
        sts_debug(s->log, "dns udp: dropped a %zd-octet message", nread);
        return;
    }
    dnssrv_record(s, &res, 0);
    dnssrv_deliver(s, &res, &s->reply, NULL, NULL, addr);
}

static sts_tcpsrv_conn *dns_tcp_accept(sts_tcpsrv *t, sts_stream *stream)
{
    dns_tcp_sess *ss = calloc(1, sizeof(*ss));
    if (!ss)
        return NULL;
    ss->srv = sts_tcpsrv_arg(t);
    sts_buf_init(&ss->in, DNS_TCP_MAX);
    sts_buf_init(&ss->reply, 0);
    return &ss->conn;
}

static void dns_tcp_read(sts_stream *st, const char *data, size_t len)
{
    dns_tcp_sess *ss = (dns_tcp_sess *)sts_tcpsrv_conn_of(st);
    sts_dnssrv *s = ss->srv;
    if (sts_buf_append(&ss->in, data, len) != 0) {
        sts_stream_close(st);
        return;
    }
    /* RFC 1035 4.2.2 / RFC 7766 6.2.1: each message is prefixed by a two-octet length;
     * a client may send several queries on one connection, back to back. */
    for (;;) {
        sts_cur c;
        uint16_t n;
        sts_cur_init(&c, ss->in.data, ss->in.len);
        if (sts_cur_u16(&c, &n) || sts_cur_left(&c) < n)
            return;
        sts_dns_result res;
        const sts_dns_zone *zone = (*s->served)->zone; /* now, not at accept */
        if (sts_dns_answer(zone, c.p + c.off, n, STS_DNS_TCP, &ss->reply, &res) != 0 ||
            !res.answered) {
            s->server_drops++;
            sts_debug(s->log, "dns tcp: dropped a %u-octet message, closing", n);
            sts_stream_close(st);
            return;
        }
        dnssrv_record(s, &res, 1);
        sts_tcpsrv_progress(st); /* a complete message: not a slowloris */
        sts_buf_consume(&ss->in, 2 + (size_t)n);
        dnssrv_deliver(s, &res, &ss->reply, ss, st, NULL);
    }
}

static void dns_tcp_eof(sts_stream *st, int status)
{
    /* Let replies still queued reach the client, then close. */
    sts_stream_shutdown(st);
}

static void dns_tcp_close(sts_tcpsrv_conn *conn)
{
    dns_tcp_sess *ss = (dns_tcp_sess *)conn;
    pending_cancel(ss->srv, ss);
    sts_buf_free(&ss->in);
    sts_buf_free(&ss->reply);
    free(ss);
}

static const sts_tcpsrv_ops dns_tcp_ops = {
    .on_accept = dns_tcp_accept,
    .on_read = dns_tcp_read,
    .on_tls = NULL,
    .on_eof = dns_tcp_eof,
    .on_close = dns_tcp_close,
};

static void dnssrv_maybe_done(sts_dnssrv *s)
{
    if (!s->udp_closed || !s->tcp_stopped)
        return;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    sts_buf_free(&s->reply);
    sts_buf_free(&s->spoof);
    sts_buf_free(&s->batch.data);
    free(s->rbuf);
    for (int k = 0; k < 2; k++)
        if (s->spoof_fd[k] >= 0)
            close(s->spoof_fd[k]);
    free(s);
    if (done)
        done(arg);
}

static void dnssrv_udp_close_cb(uv_handle_t *h)
{
    sts_dnssrv *s = h->data;
    s->udp_closed = 1;
    dnssrv_maybe_done(s);
}

static void dnssrv_tcp_done(void *arg)
{
    sts_dnssrv *s = arg;
    s->tcp_stopped = 1;
    dnssrv_maybe_done(s);
}

/* Ask for DNS_RCVBUF (or STSTEST_DNS_RCVBUF): SO_RCVBUFFORCE passes rmem_max when
 * the process may (CAP_NET_ADMIN), SO_RCVBUF otherwise; returns what was granted. */
static int dnssrv_size_rcvbuf(int fd)
{
    int want = DNS_RCVBUF;
    const char *env = getenv("STSTEST_DNS_RCVBUF");
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end == '\0' && v > 0 && v <= INT_MAX)
            want = (int)v;
    }
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &want, sizeof(want)) != 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &want, sizeof(want));
    int got = 0;
    socklen_t len = sizeof(got);
    if (getsockopt(fd, SOL_SOCKET, SO_RCVBUF, &got, &len) != 0)
        got = -1;
    return got;
}

/* The "drops" column (the last) of the line of /proc/net/<file> whose inode (the
 * tenth column) is ino. Returns 1 found, 0 not there, -1 unreadable. */
static int proc_udp_drops(const char *file, unsigned long ino, uint64_t *out)
{
    FILE *f = fopen(file, "r");
    if (!f)
        return -1;
    char line[512];
    int found = 0;
    if (!fgets(line, sizeof(line), f)) { /* the header */
        fclose(f);
        return -1;
    }
    while (!found && fgets(line, sizeof(line), f)) {
        unsigned long inode;
        unsigned long long drops;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref pointer drops */
        if (sscanf(line, "%*s %*s %*s %*s %*s %*s %*s %*s %*s %lu %*s %*s %llu", &inode, &drops) ==
                2 &&
            inode == ino) {
            *out = drops;
            found = 1;
        }
    }
    fclose(f);
    return found;
}

int sts_dnssrv_get_drops(sts_dnssrv *s, sts_dnssrv_drops *out)
{
    out->kernel = 0;
    out->server = s->server_drops;
    out->rcvbuf = s->rcvbuf;
    uv_os_fd_t fd;
    struct stat st;
    if (uv_fileno((uv_handle_t *)&s->udp, &fd) != 0 || fstat(fd, &st) != 0)
        return STS_EIO;
    int r = proc_udp_drops("/proc/net/udp", (unsigned long)st.st_ino, &out->kernel);
    if (r != 1)
        r = proc_udp_drops("/proc/net/udp6", (unsigned long)st.st_ino, &out->kernel);
    return r == 1 ? 0 : STS_EIO;
}

int sts_dnssrv_start(uv_loop_t *loop, sts_served *const *served, int udp_fd, int tcp_fd,
                     sts_observer *obs, sts_log *log, sts_dnssrv **out)
{
    sts_dnssrv *s = calloc(1, sizeof(*s));
    if (!s) {
        close(udp_fd);
        close(tcp_fd);
        return STS_ENOMEM;
    }
    s->served = served;
    s->obs = obs;
    s->log = log;
    s->pending.next = s->pending.prev = &s->pending;
    s->spoof_fd[0] = s->spoof_fd[1] = -1;
    sts_buf_init(&s->reply, 0);
    sts_buf_init(&s->spoof, 0);
    sts_buf_init(&s->batch.data, 0);
    uv_udp_init_ex(loop, &s->udp, AF_UNSPEC | UV_UDP_RECVMMSG);
    s->udp.data = s;
    s->rbuf = malloc((size_t)DNS_BATCH * DNS_DGRAM_MAX);
    s->rcvbuf = dnssrv_size_rcvbuf(udp_fd);
    sts_debug(log, "dns udp: receive buffer %d octets", s->rcvbuf);
    int rc = s->rbuf ? uv_udp_open(&s->udp, (uv_os_sock_t)udp_fd) : UV_ENOMEM;
    if (rc != 0)
        close(udp_fd);
    else
        rc = uv_udp_recv_start(&s->udp, dnssrv_alloc_cb, dnssrv_recv_cb);
    int trc = sts_tcpsrv_start(loop, tcp_fd, &dns_tcp_ops, s, "dns", log, &s->tcp);
    if (trc != 0)
        s->tcp_stopped = 1; /* sts_tcpsrv_start cleaned up after itself */
    if (rc != 0 || trc != 0) {
        sts_dnssrv_stop(s, NULL, NULL);
        return STS_EIO;
    }
    *out = s;
    return 0;
}

void sts_dnssrv_stop(sts_dnssrv *s, void (*done)(void *arg), void *arg)
{
    if (s->stopping)
        return;
    s->stopping = 1;
    s->done = done;
    s->done_arg = arg;
    pending_cancel(s, NULL);
    dnssrv_batch_flush(s);
    s->batch.active = 0;
    uv_close((uv_handle_t *)&s->udp, dnssrv_udp_close_cb);
    if (!s->tcp_stopped)
        sts_tcpsrv_stop(s->tcp, dnssrv_tcp_done, s);
}
