/*
 * resolver.c - c-ares on a libuv loop (see resolver.h).
 *
 * c-ares 1.18 has no event thread: it tells us which sockets it wants watched
 * (ARES_OPT_SOCK_STATE_CB) and we give each a uv_poll_t; one uv_timer_t drives
 * c-ares' retransmissions (ares_timeout/ares_process_fd), our per-query deadlines and
 * the delivery of results. Results are never delivered from inside a c-ares callback
 * nor inside the call that started a query: c-ares callbacks only store the answer in
 * the query, and deliver_ready() hands finished queries to their callbacks from the
 * poll and timer callbacks. Public functions return 0 or a negative STS_* code.
 */
#include "sender/resolver.h"

#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/err.h"

#define MAX_CNAME_HOPS 8

typedef enum { Q_TXT, Q_MX, Q_ADDR } qkind;

struct sock {
    uv_poll_t poll; /* embedded: freed in its close callback */
    ares_socket_t fd;
    sts_resolver *r;
    struct sock *next;
};

struct query {
    sts_resolver *r;
    struct query *next;
    qkind kind;
    char *name;
    char *canonical; /* TXT: current name after CNAMEs */
    int hops;
    void *cb;
    void *arg;
    uint64_t deadline; /* uv_now() ms */
    int pending;       /* c-ares queries outstanding */
    int complete;      /* result ready */
    int delivered;
    sts_dns_status status, status_a, status_aaaa;
    char detail[160];
    /* results */
    sts_dns_txt *txt;
    sts_dns_mx *mx;
    int null_mx;
    sts_dns_addr *addrs;
    size_t n;
    size_t nalloc;
};

/* One DNS question of a query, outstanding in c-ares or waiting for a free slot
 * (STS_RESOLVER_MAX_IN_FLIGHT); the c-ares callback's argument. */
struct ask {
    struct ask *next;
    struct query *q;
    int type; /* ns_t_* */
    ares_callback cb;
    char name[]; /* a copy: a CNAME chase replaces the query's name */
};

struct sts_resolver {
    uv_loop_t *loop;
    ares_channel ch;
    int ch_ok;
    uv_timer_t timer;
    sts_log *log;
    double timeout_s;
    struct sock *socks;
    struct query *queries;
    int open_handles; /* handles not yet closed (timer + polls) */
    int delivering;   /* inside deliver_ready: free is deferred */
    int free_requested;
    int closing;      /* inside do_free: c-ares' channel is gone, no query may start */
    int freed;        /* sts_resolver_free done; memory goes with the last handle */
    size_t in_flight; /* questions outstanding in c-ares */
    size_t waiting;   /* questions on the wait list */
    struct ask *wait_head, **wait_tail; /* FIFO */
    int pumping;                        /* inside ask_pump: do not re-enter */
};

static const char *const status_names[] = {"OK",      "NXDOMAIN", "NODATA",    "SERVFAIL",
                                           "TIMEOUT", "REFUSED",  "CANCELLED", "ERROR"};

const char *sts_dns_status_name(sts_dns_status st)
{
    if ((unsigned)st < sizeof(status_names) / sizeof(status_names[0]))
        return status_names[st];
    return "ERROR";
}

int sts_dns_status_is_temporary(sts_dns_status st)
{
    return !(st == STS_DNS_OK || st == STS_DNS_NXDOMAIN || st == STS_DNS_NODATA);
}

/* What each status says, in the words of sts_dns_failure_text(). */
static const char *const status_words[] = {
    "no usable record", "no such name",          "no record",        "server failure",
    "no answer",        "the server refused it", "lookup cancelled", "lookup failed"};

const char *sts_dns_failure_text(const char *name, const char *type, sts_dns_status st,
                                 const char *detail, char *buf, size_t len)
{
    const char *what = detail && detail[0] ? detail
                       : (unsigned)st < sizeof(status_words) / sizeof(status_words[0])
                           ? status_words[st]
                           : status_words[STS_DNS_ERROR];
    char words[64];
    if (what == status_words[STS_DNS_NODATA]) {
        snprintf(words, sizeof(words), "no %s record", type);
        what = words;
    }
    snprintf(buf, len, "%s %s: %s (%s)", name && name[0] ? name : "?", type, what,
             sts_dns_status_name(st));
    return buf;
}

/* RFC 6890 (IPv4 special-purpose registry: "Destination" False), RFC 5771 and RFC
 * 4291 2.5.2 / 2.7. The first match wins, so 255.255.255.255 comes before 240.0.0.0/4.
 * An IPv4-mapped IPv6 address (::ffff:a.b.c.d, RFC 4291 2.5.5.2) is the IPv4 address
 * to the kernel: it is judged by the IPv4 rows and named in their `mapped` words. */
/* clang-format off */
static const struct unusable_range {
    int family;
    unsigned char prefix[16];
    unsigned bits;
    const char *why, *mapped;
} unusable_ranges[] = {
    {AF_INET, {0}, 8, "0.0.0.0/8: 'this network', RFC 6890",
     "::ffff:0.0.0.0/104: IPv4-mapped 'this network', RFC 6890"},
    {AF_INET, {255, 255, 255, 255}, 32, "255.255.255.255/32: limited broadcast, RFC 6890",
     "::ffff:255.255.255.255/128: IPv4-mapped limited broadcast, RFC 6890"},
    {AF_INET, {224}, 4, "224.0.0.0/4: multicast, RFC 5771",
     "::ffff:224.0.0.0/100: IPv4-mapped multicast, RFC 5771"},
    {AF_INET, {240}, 4, "240.0.0.0/4: reserved, RFC 6890",
     "::ffff:240.0.0.0/100: IPv4-mapped reserved, RFC 6890"},
    {AF_INET6, {0}, 128, "::/128: the unspecified address, RFC 4291 2.5.2", NULL},
    {AF_INET6, {0xff}, 8, "ff00::/8: multicast, RFC 4291 2.7", NULL},
};
/* clang-format on */

static int prefix_match(const unsigned char *a, const unsigned char *prefix, unsigned bits)
{
    for (unsigned i = 0; i < bits; i++) {
        unsigned char m = (unsigned char)(0x80u >> (i % 8));
        if ((a[i / 8] & m) != (prefix[i / 8] & m))
            return 0;
    }
    return 1;
}

const char *sts_dns_addr_unusable(const struct sockaddr *sa)
{
    static const unsigned char v4mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    const unsigned char *a;
    int family = sa ? sa->sa_family : AF_UNSPEC, mapped = 0;
    if (family == AF_INET) {
        a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    } else if (family == AF_INET6) {
        a = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
        if (!memcmp(a, v4mapped, sizeof(v4mapped))) {
            a += sizeof(v4mapped);
            family = AF_INET;
            mapped = 1;
        }
    } else {
        return "not an IPv4 or IPv6 address";
    }
    for (size_t i = 0; i < sizeof(unusable_ranges) / sizeof(unusable_ranges[0]); i++) {
        const struct unusable_range *u = &unusable_ranges[i];
        if (u->family == family && prefix_match(a, u->prefix, u->bits))
            return mapped ? u->mapped : u->why;
    }
    return NULL;
}

int sts_dns_addr_check(const sts_dns_addr *a, char *buf, size_t len)
{
    const char *why = sts_dns_addr_unusable((const struct sockaddr *)&a->sa);
    if (!why)
        return 0;
    snprintf(buf, len, "address %s is not a usable destination (%s)", a->text, why);
    return 1;
}

static sts_dns_status map_ares(int status)
{
    switch (status) {
    case ARES_SUCCESS:
        return STS_DNS_OK;
    case ARES_ENODATA:
        return STS_DNS_NODATA;
    case ARES_ENOTFOUND:
        return STS_DNS_NXDOMAIN;
    case ARES_ESERVFAIL:
        return STS_DNS_SERVFAIL;
    case ARES_ETIMEOUT:
        return STS_DNS_TIMEOUT;
    case ARES_EREFUSED:
        return STS_DNS_REFUSED;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
        return STS_DNS_CANCELLED;
    default:
        return STS_DNS_ERROR;
    }
}

/* ---- handles ---- */

static void resolver_release(sts_resolver *r)
{
    if (r->freed && r->open_handles == 0)
        free(r);
}

static void handle_closed_cb(uv_handle_t *h)
{
    sts_resolver *r = h->data;
    if (h->type == UV_POLL)
        free(h); /* struct sock begins with its poll */
    r->open_handles--;
    resolver_release(r);
}

static void schedule(sts_resolver *r);
static void deliver_ready(sts_resolver *r);

static void poll_cb(uv_poll_t *h, int status, int events)
{
    struct sock *s = (struct sock *)h;
    sts_resolver *r = s->r;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
    if (status < 0 || (events & UV_READABLE))
        rfd = s->fd;
    if (status < 0 || (events & UV_WRITABLE))
        wfd = s->fd;
    /* s may be closed by the state callback inside ares_process_fd: not used after. */
    ares_process_fd(r->ch, rfd, wfd);
    deliver_ready(r);
    if (!r->freed)
        schedule(r);
}

static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    sts_resolver *r = data;
    struct sock **pp = &r->socks, *s;
    while ((s = *pp) && s->fd != fd)
        pp = &s->next;
    if (!readable && !writable) {
        if (s) {
            *pp = s->next;
            uv_poll_stop(&s->poll);
            uv_close((uv_handle_t *)&s->poll, handle_closed_cb);
        }
        return;
    }
    if (!s) {
        s = calloc(1, sizeof(*s));
        if (!s)
            return; /* the query will time out */
        if (uv_poll_init_socket(r->loop, &s->poll, fd) != 0) {
            free(s);
            return;
        }
        s->fd = fd;
        s->r = r;
        s->poll.data = r;
        s->next = r->socks;
        r->socks = s;
        r->open_handles++;
    }
    uv_poll_start(&s->poll, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0), poll_cb);
}

static void timer_cb(uv_timer_t *t)
{
    sts_resolver *r = t->data;
    /* Let c-ares retransmit or give up on whatever timed out. */
    ares_process_fd(r->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    uint64_t now = uv_now(r->loop);
    for (struct query *q = r->queries; q; q = q->next)
        if (!q->complete && q->deadline <= now) {
            q->complete = 1;
            q->status = q->status_a = q->status_aaaa = STS_DNS_TIMEOUT;
            snprintf(q->detail, sizeof(q->detail), "no answer within %.1f s", r->timeout_s);
        }
    deliver_ready(r);
    if (!r->freed)
        schedule(r);
}

static void schedule(sts_resolver *r)
{
    uint64_t now = uv_now(r->loop), next = UINT64_MAX;
    for (struct query *q = r->queries; q; q = q->next) {
        if (q->complete && !q->delivered)
            next = now;
        else if (!q->complete && q->deadline < next)
            next = q->deadline;
    }
    struct timeval tv, *tvp = ares_timeout(r->ch, NULL, &tv);
    if (tvp) {
        uint64_t at = now + (uint64_t)tvp->tv_sec * 1000 + (uint64_t)(tvp->tv_usec + 999) / 1000;
        if (at < next)
            next = at;
    }
    if (next == UINT64_MAX) {
        uv_timer_stop(&r->timer);
        return;
    }
    uv_timer_start(&r->timer, timer_cb, next > now ? next - now : 0, 0);
}

/* ---- queries ---- */

static void query_free(struct query *q)
{
    for (size_t i = 0; i < q->n && q->kind == Q_TXT; i++)
        free((char *)q->txt[i].data);
    for (size_t i = 0; i < q->n && q->kind == Q_MX; i++)
        free((char *)q->mx[i].host);
    free(q->txt);
    free(q->mx);
    free(q->addrs);
    free(q->name);
    free(q->canonical);
    free(q);
}

static void log_result(sts_resolver *r, struct query *q)
{
    if (!r->log || sts_log_verbosity(r->log) < STS_LOG_DEBUG)
        return;
    sts_buf b;
    sts_buf_init(&b, 4096);
    static const char *const kinds[] = {"TXT", "MX", "A/AAAA"};
    sts_buf_appendf(&b, "dns answer %s %s %s", kinds[q->kind], q->name,
                    q->status == STS_DNS_OK ? "NOERROR" : sts_dns_status_name(q->status));
    if (q->kind == Q_TXT && q->canonical && strcasecmp(q->canonical, q->name))
        sts_buf_appendf(&b, " (via CNAME %s)", q->canonical);
    if (q->status != STS_DNS_OK && q->detail[0])
        sts_buf_appendf(&b, ": %s", q->detail);
    if (q->kind == Q_MX && q->null_mx)
        sts_buf_appendf(&b, ": null MX (RFC 7505)");
    if (q->status == STS_DNS_OK && !q->null_mx)
        sts_buf_appendf(&b, " %zu record(s):", q->n);
    for (size_t i = 0; i < q->n; i++) {
        if (q->kind == Q_TXT)
            sts_buf_appendf(&b, " \"%.*s\"", (int)q->txt[i].len, q->txt[i].data);
        else if (q->kind == Q_MX)
            sts_buf_appendf(&b, " %u %s", q->mx[i].preference, q->mx[i].host);
        else
            sts_buf_appendf(&b, " %s", q->addrs[i].text);
    }
    sts_debug(r->log, "%s", b.data ? b.data : "dns answer");
    sts_buf_free(&b);
}

static void deliver(sts_resolver *r, struct query *q)
{
    q->delivered = 1;
    log_result(r, q);
    switch (q->kind) {
    case Q_TXT: {
        sts_dns_txt_result res = {q->status,
                                  q->name,
                                  q->canonical ? q->canonical : q->name,
                                  q->status == STS_DNS_OK ? q->n : 0,
                                  q->txt,
                                  q->detail};
        ((sts_dns_txt_cb)q->cb)(&res, q->arg);
        break;
    }
    case Q_MX: {
        sts_dns_mx_result res = {q->status, q->name,    q->status == STS_DNS_OK ? q->n : 0,
                                 q->mx,     q->null_mx, q->detail};
        ((sts_dns_mx_cb)q->cb)(&res, q->arg);
        break;
    }
    case Q_ADDR: {
        sts_dns_addr_result res = {
            q->status, q->status_a, q->status_aaaa, q->name, q->status == STS_DNS_OK ? q->n : 0,
            q->addrs,  q->detail};
        ((sts_dns_addr_cb)q->cb)(&res, q->arg);
        break;
    }
    }
}

static void do_free(sts_resolver *r);

/* Hand finished queries to their callbacks and drop queries nothing refers to. */
static void deliver_ready(sts_resolver *r)
{
    r->delivering++;
    for (;;) {
        struct query *q = r->queries;
        while (q && !(q->complete && !q->delivered))
            q = q->next;
        if (!q)
            break;
        deliver(r, q);
        if (r->free_requested)
            break;
    }
    struct query **pp = &r->queries, *q;
    while ((q = *pp)) {
        if (q->delivered && q->pending == 0) {
            *pp = q->next;
            query_free(q);
        } else {
            pp = &q->next;
        }
    }
    r->delivering--;
    if (r->free_requested && !r->delivering) {
        r->free_requested = 0;
        do_free(r);
    }
}

/* The final target of the CNAME chain starting at qname in the answer section, or
 * NULL when the answer holds no CNAME for qname. Malloc'd. A chain that comes back to
 * a name it passed is a loop: NULL, and loop (when given) gets "CNAME loop: a -> b ->
 * a" (empty otherwise). */
static char *answer_cname(const unsigned char *abuf, int alen, const char *qname, char *loop,
                          size_t looplen)
{
    if (loop && looplen)
        loop[0] = '\0';
    sts_cur c;
    sts_cur_init(&c, abuf, (size_t)alen);
    uint16_t id, flags, qd, an, ns, ar;
    if (sts_cur_u16(&c, &id) || sts_cur_u16(&c, &flags) || sts_cur_u16(&c, &qd) ||
        sts_cur_u16(&c, &an) || sts_cur_u16(&c, &ns) || sts_cur_u16(&c, &ar))
        return NULL;
    char *owners[32], *targets[32];
    int n = 0;
    for (uint16_t i = 0; i < qd; i++) {
        char *nm;
        long enclen;
        if (ares_expand_name(abuf + c.off, abuf, alen, &nm, &enclen) != ARES_SUCCESS)
            return NULL;
        ares_free_string(nm);
        if (sts_cur_skip(&c, (size_t)enclen) || sts_cur_skip(&c, 4))
            return NULL;
    }
    for (uint16_t i = 0; i < an && n < 32; i++) {
        char *owner;
        long enclen;
        uint16_t type, cls, rdlen;
        if (ares_expand_name(abuf + c.off, abuf, alen, &owner, &enclen) != ARES_SUCCESS)
            break;
        if (sts_cur_skip(&c, (size_t)enclen) || sts_cur_u16(&c, &type) || sts_cur_u16(&c, &cls) ||
            sts_cur_skip(&c, 4) || sts_cur_u16(&c, &rdlen) || sts_cur_left(&c) < rdlen) {
            ares_free_string(owner);
            break;
        }
        if (type == ns_t_cname && cls == ns_c_in) {
            char *target;
            if (ares_expand_name(abuf + c.off, abuf, alen, &target, &enclen) == ARES_SUCCESS) {
                owners[n] = owner;
                targets[n] = target;
                n++;
                owner = NULL;
            }
        }
        if (owner)
            ares_free_string(owner);
        sts_cur_skip(&c, rdlen);
    }
    const char *cur = qname;
    const char *path[33];
    int npath = 0, looped = 0;
    path[npath++] = qname;
    for (int hop = 0; hop < n && !looped; hop++) {
        int found = -1;
        for (int i = 0; i < n; i++)
            if (!strcasecmp(owners[i], cur)) {
                found = i;
                break;
            }
        if (found < 0)
            break;
        cur = targets[found];
        for (int k = 0; k < npath; k++)
            looped |= !strcasecmp(path[k], cur);
        path[npath++] = cur;
    }
    if (looped && loop && looplen) {
        size_t off = (size_t)snprintf(loop, looplen, "CNAME loop:");
        for (int k = 0; k < npath && off < looplen; k++)
            off += (size_t)snprintf(loop + off, looplen - off, "%s%s", k ? " -> " : " ", path[k]);
    }
    char *res = cur != qname && !looped ? strdup(cur) : NULL;
    for (int i = 0; i < n; i++) {
        ares_free_string(owners[i]);
        ares_free_string(targets[i]);
    }
    return res;
}

static void lower_nodot(char *s)
{
    for (char *p = s; *p; p++)
        *p = (char)tolower((unsigned char)*p);
    size_t l = strlen(s);
    if (l && s[l - 1] == '.')
        s[l - 1] = '\0';
}

/* What went wrong, for statuses whose name does not say it already (those that map to
 * STS_DNS_ERROR): a malformed answer in the same words for every type. The first
 * detail of a query stays. */
static void set_detail(struct query *q, int status)
{
    if (status == ARES_SUCCESS || q->detail[0] || map_ares(status) != STS_DNS_ERROR)
        return;
    if (status == ARES_EBADRESP || status == ARES_EBADNAME || status == ARES_EFORMERR)
        snprintf(q->detail, sizeof(q->detail), "malformed answer: %s", ares_strerror(status));
    else
        snprintf(q->detail, sizeof(q->detail), "%s", ares_strerror(status));
}

static void txt_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

/* ---- the bound on questions in flight ---- */

static void ask_pump(sts_resolver *r);

static void ask_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct ask *a = arg;
    struct query *q = a->q;
    sts_resolver *r = q->r;
    ares_callback cb = a->cb;
    r->in_flight--;
    free(a);
    /* RFC 1035 4.2.1, RFC 7766 5: a truncated UDP answer (TC) is asked again over TCP,
     * which c-ares does. An answer that still carries TC reached us over TCP, where
     * nothing may truncate it: it is no answer at all (a temporary failure), never
     * the absence of a record, which would end as NODATA and a permanent failure. */
    if ((status == ARES_SUCCESS || status == ARES_ENODATA) && abuf && alen >= 12 &&
        (abuf[2] & 0x02)) {
        if (!q->detail[0])
            snprintf(q->detail, sizeof(q->detail),
                     "truncated answer: the TC bit is set even over TCP");
        status = ARES_EBADRESP;
        abuf = NULL;
        alen = 0;
    }
    cb(q, status, timeouts, abuf, alen);
    ask_pump(r);
}

/* Start waiting questions while there is room. A question of a query already
 * complete (it timed out while waiting) is not sent: its callback sees the query
 * complete and only counts it off. */
static void ask_pump(sts_resolver *r)
{
    if (r->pumping || r->closing || !r->ch_ok)
        return;
    r->pumping = 1;
    while (r->wait_head && r->in_flight < STS_RESOLVER_MAX_IN_FLIGHT) {
        struct ask *a = r->wait_head;
        r->wait_head = a->next;
        if (!r->wait_head)
            r->wait_tail = &r->wait_head;
        r->waiting--;
        if (a->q->complete) {
            ares_callback cb = a->cb;
            struct query *q = a->q;
            free(a);
            cb(q, ARES_ECANCELLED, 0, NULL, 0);
            continue;
        }
        r->in_flight++;
        /* c-ares may call ask_cb inside (a bad name): the pumping flag keeps that
         * from starting a second loop. */
        ares_query(r->ch, a->name, ns_c_in, a->type, ask_cb, a);
    }
    r->pumping = 0;
}

/* Ask name/type for query q: at once when fewer than STS_RESOLVER_MAX_IN_FLIGHT
 * questions are outstanding, else after those before it. cb runs once, as c-ares'
 * callback would (with ARES_ENOMEM when the question could not be queued). */
static void ask(struct query *q, const char *name, int type, ares_callback cb)
{
    sts_resolver *r = q->r;
    size_t len = strlen(name) + 1;
    struct ask *a = malloc(sizeof(*a) + len);
    q->pending++;
    if (!a) {
        cb(q, ARES_ENOMEM, 0, NULL, 0);
        return;
    }
    a->next = NULL;
    a->q = q;
    a->type = type;
    a->cb = cb;
    memcpy(a->name, name, len);
    *r->wait_tail = a;
    r->wait_tail = &a->next;
    r->waiting++;
    ask_pump(r);
}

void sts_resolver_load(const sts_resolver *r, size_t *in_flight, size_t *waiting)
{
    *in_flight = r->in_flight;
    *waiting = r->waiting;
}

static int txt_store(struct query *q, struct ares_txt_ext *list)
{
    for (struct ares_txt_ext *t = list; t; t = t->next) {
        if (t->record_start || q->n == 0) {
            sts_dns_txt *a = realloc(q->txt, (q->n + 1) * sizeof(*a));
            if (!a)
                return STS_ENOMEM;
            q->txt = a;
            char *d = calloc(1, 1);
            if (!d)
                return STS_ENOMEM;
            a[q->n].data = d;
            a[q->n].len = 0;
            q->n++;
        }
        /* RFC 8461 3.1 / RFC 7208 3.3: the strings of one record are concatenated
         * without separator. A record is at most 64 KiB on the wire. */
        sts_dns_txt *rec = &q->txt[q->n - 1];
        char *d = realloc((char *)rec->data, rec->len + t->length + 1);
        if (!d)
            return STS_ENOMEM;
        memcpy(d + rec->len, t->txt, t->length);
        rec->len += t->length;
        d[rec->len] = '\0';
        rec->data = d;
    }
    return 0;
}

static void txt_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct query *q = arg;
    q->pending--;
    if (q->complete)
        return;
    if (status == ARES_SUCCESS || status == ARES_ENODATA) {
        struct ares_txt_ext *list = NULL;
        int prc = status == ARES_SUCCESS && abuf ? ares_parse_txt_reply_ext(abuf, alen, &list)
                                                 : ARES_ENODATA;
        if (prc == ARES_SUCCESS && !list)
            prc = ARES_ENODATA; /* the answer held no TXT record (only a CNAME?) */
        if (prc == ARES_SUCCESS) {
            int rc = txt_store(q, list);
            ares_free_data(list);
            q->status = rc ? STS_DNS_ERROR : STS_DNS_OK;
            if (rc)
                snprintf(q->detail, sizeof(q->detail), "out of memory");
            q->complete = 1;
            return;
        }
        /* No TXT in the answer: a server that answers only with the CNAME (an
         * authoritative one, not a recursive resolver) leaves the chase to us. */
        char loop[sizeof(q->detail)];
        char *target = abuf ? answer_cname(abuf, alen, q->canonical, loop, sizeof(loop)) : NULL;
        if (abuf && loop[0]) {
            snprintf(q->detail, sizeof(q->detail), "%s", loop);
            q->status = STS_DNS_ERROR;
            q->complete = 1;
            return;
        }
        if (target && q->hops < MAX_CNAME_HOPS) {
            q->hops++;
            sts_debug(q->r->log, "dns query TXT %s (CNAME of %s)", target, q->canonical);
            free(q->canonical);
            q->canonical = target;
            ask(q, target, ns_t_txt, txt_cb);
            return;
        }
        if (target) {
            free(target);
            snprintf(q->detail, sizeof(q->detail), "more than %d CNAMEs", MAX_CNAME_HOPS);
            q->status = STS_DNS_ERROR;
            q->complete = 1;
            return;
        }
        /* A TXT answer that does not parse is no answer at all, not the absence of a
         * record: a temporary failure, as it is for every other type. */
        q->status = prc == ARES_ENODATA ? STS_DNS_NODATA : STS_DNS_ERROR;
        set_detail(q, prc);
        q->complete = 1;
        return;
    }
    q->status = map_ares(status);
    set_detail(q, status);
    q->complete = 1;
}

static int mx_cmp(const void *a, const void *b)
{
    const sts_dns_mx *x = a, *y = b;
    if (x->preference != y->preference)
        return x->preference < y->preference ? -1 : 1;
    return 0;
}

static void mx_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct query *q = arg;
    q->pending--;
    if (q->complete)
        return;
    q->complete = 1;
    if (status != ARES_SUCCESS) {
        q->status = map_ares(status);
        set_detail(q, status);
        return;
    }
    struct ares_mx_reply *list = NULL;
    int prc = ares_parse_mx_reply(abuf, alen, &list);
    if (prc != ARES_SUCCESS) {
        q->status = prc == ARES_ENODATA ? STS_DNS_NODATA : STS_DNS_ERROR;
        set_detail(q, prc);
        return;
    }
    size_t total = 0, nroot = 0;
    for (struct ares_mx_reply *m = list; m; m = m->next) {
        total++;
        if (!m->host[0] || !strcmp(m->host, "."))
            nroot++;
    }
    q->status = STS_DNS_OK;
    /* RFC 7505 3: a null MX is a single MX record with preference 0 and exchange ".". */
    if (total == 1 && nroot == 1 && list->priority == 0) {
        q->null_mx = 1;
        ares_free_data(list);
        return;
    }
    q->mx = calloc(total, sizeof(*q->mx));
    unsigned *keys = calloc(total, sizeof(unsigned));
    if (!q->mx || !keys) {
        free(keys);
        q->status = STS_DNS_ERROR;
        snprintf(q->detail, sizeof(q->detail), "out of memory");
        ares_free_data(list);
        return;
    }
    for (struct ares_mx_reply *m = list; m; m = m->next) {
        if (!m->host[0] || !strcmp(m->host, ".")) {
            /* "." among other MX names no host: skip it (RFC 7505 3 says a domain
             * with a null MX MUST NOT publish others). */
            sts_debug(q->r->log, "dns MX %s: ignoring \".\" among %zu MX records", q->name, total);
            continue;
        }
        char *h = strdup(m->host);
        if (!h)
            break;
        lower_nodot(h);
        q->mx[q->n].host = h;
        q->mx[q->n].preference = m->priority;
        q->n++;
    }
    ares_free_data(list);
    if (q->n == 0) {
        q->status = STS_DNS_NODATA;
        snprintf(q->detail, sizeof(q->detail), "no usable MX host");
    }
    /* RFC 5321 5.1: MX hosts of equal preference are tried in random order. Shuffle
     * (Fisher-Yates), then a stable sort by preference keeps the shuffled ties. */
    if (q->n > 1 && uv_random(NULL, NULL, keys, q->n * sizeof(unsigned), 0, NULL) == 0)
        for (size_t i = q->n - 1; i > 0; i--) {
            size_t j = keys[i] % (i + 1);
            sts_dns_mx t = q->mx[i];
            q->mx[i] = q->mx[j];
            q->mx[j] = t;
        }
    free(keys);
    /* insertion sort: stable */
    for (size_t i = 1; i < q->n; i++) {
        sts_dns_mx t = q->mx[i];
        size_t j = i;
        while (j > 0 && mx_cmp(&q->mx[j - 1], &t) > 0) {
            q->mx[j] = q->mx[j - 1];
            j--;
        }
        q->mx[j] = t;
    }
}

static int addr_add(struct query *q, int family, const void *bytes)
{
    if (sts_array_grow((void **)&q->addrs, &q->nalloc, q->n + 1, sizeof(*q->addrs), 4))
        return STS_ENOMEM;
    sts_dns_addr *a = &q->addrs[q->n];
    memset(a, 0, sizeof(*a));
    a->family = family;
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&a->sa;
        sin->sin_family = AF_INET;
        memcpy(&sin->sin_addr, bytes, 4);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->sa;
        sin6->sin6_family = AF_INET6;
        memcpy(&sin6->sin6_addr, bytes, 16);
    }
    inet_ntop(family, bytes, a->text, sizeof(a->text));
    q->n++;
    return 0;
}

static void addr_finish(struct query *q)
{
    if (q->pending > 0)
        return;
    /* A results first: the A callback may have come second. */
    size_t n4 = 0;
    for (size_t i = 0; i < q->n; i++)
        if (q->addrs[i].family == AF_INET) {
            sts_dns_addr t = q->addrs[i];
            memmove(&q->addrs[n4 + 1], &q->addrs[n4], (i - n4) * sizeof(t));
            q->addrs[n4++] = t;
        }
    if (q->n > 0)
        q->status = STS_DNS_OK;
    else if (sts_dns_status_is_temporary(q->status_aaaa) &&
             !sts_dns_status_is_temporary(q->status_a))
        q->status = q->status_aaaa;
    else
        q->status = q->status_a;
    q->complete = 1;
}

static void addr_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen, int family)
{
    struct query *q = arg;
    q->pending--;
    if (q->complete)
        return;
    sts_dns_status *st = family == AF_INET ? &q->status_a : &q->status_aaaa;
    if (status == ARES_SUCCESS) {
        struct hostent *he = NULL;
        int prc = family == AF_INET ? ares_parse_a_reply(abuf, alen, &he, NULL, NULL)
                                    : ares_parse_aaaa_reply(abuf, alen, &he, NULL, NULL);
        size_t before = q->n;
        if (prc == ARES_SUCCESS && he) {
            *st = STS_DNS_OK;
            for (char **p = he->h_addr_list; *p; p++)
                if (addr_add(q, family, *p)) {
                    *st = STS_DNS_ERROR;
                    break;
                }
        } else {
            *st = prc == ARES_ENODATA ? STS_DNS_NODATA : STS_DNS_ERROR;
            set_detail(q, prc);
        }
        if (he)
            ares_free_hostent(he);
        if (*st == STS_DNS_OK && q->n == before) {
            /* NOERROR without an address: only CNAMEs, which may go round in a loop. */
            char loop[sizeof(q->detail)];
            char *target = answer_cname(abuf, alen, q->name, loop, sizeof(loop));
            free(target);
            *st = loop[0] ? STS_DNS_ERROR : STS_DNS_NODATA;
            if (loop[0] && !q->detail[0])
                snprintf(q->detail, sizeof(q->detail), "%s", loop);
        }
    } else {
        *st = map_ares(status);
        set_detail(q, status);
    }
    addr_finish(q);
}

static void a_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    addr_cb(arg, status, timeouts, abuf, alen, AF_INET);
}
static void aaaa_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    addr_cb(arg, status, timeouts, abuf, alen, AF_INET6);
}

/* 0 when a query may start: STS_EINVAL for a missing argument, STS_ESTATE while the
 * resolver is being freed (a callback it runs then may ask again, but c-ares' channel
 * is already destroyed). */
static int query_usable(const sts_resolver *r, const char *name, const void *cb)
{
    if (!r || !name || !name[0] || !cb)
        return STS_EINVAL;
    return r->closing || r->freed ? STS_ESTATE : 0;
}

static struct query *query_new(sts_resolver *r, qkind kind, const char *name, void *cb, void *arg)
{
    if (!r || r->freed || !name || !name[0] || !cb)
        return NULL;
    struct query *q = calloc(1, sizeof(*q));
    if (!q)
        return NULL;
    q->r = r;
    q->kind = kind;
    q->name = strdup(name);
    q->canonical = strdup(name);
    if (!q->name || !q->canonical) {
        query_free(q);
        return NULL;
    }
    q->cb = cb;
    q->arg = arg;
    q->status = q->status_a = q->status_aaaa = STS_DNS_ERROR;
    q->deadline = uv_now(r->loop) + (uint64_t)(r->timeout_s * 1000);
    /* Append: results of simultaneous queries are delivered in submission order. */
    struct query **pp = &r->queries;
    while (*pp)
        pp = &(*pp)->next;
    *pp = q;
    return q;
}

int sts_resolver_query_txt(sts_resolver *r, const char *name, sts_dns_txt_cb cb, void *arg)
{
    int rc = query_usable(r, name, cb);
    if (rc)
        return rc;
    struct query *q = query_new(r, Q_TXT, name, (void *)cb, arg);
    if (!q)
        return STS_ENOMEM;
    sts_debug(r->log, "dns query TXT %s", name);
    ask(q, name, ns_t_txt, txt_cb);
    schedule(r);
    return 0;
}

int sts_resolver_query_mx(sts_resolver *r, const char *domain, sts_dns_mx_cb cb, void *arg)
{
    int rc = query_usable(r, domain, cb);
    if (rc)
        return rc;
    struct query *q = query_new(r, Q_MX, domain, (void *)cb, arg);
    if (!q)
        return STS_ENOMEM;
    sts_debug(r->log, "dns query MX %s", domain);
    ask(q, domain, ns_t_mx, mx_cb);
    schedule(r);
    return 0;
}

int sts_resolver_query_addr(sts_resolver *r, const char *host, sts_dns_addr_cb cb, void *arg)
{
    int rc = query_usable(r, host, cb);
    if (rc)
        return rc;
    struct query *q = query_new(r, Q_ADDR, host, (void *)cb, arg);
    if (!q)
        return STS_ENOMEM;
    sts_debug(r->log, "dns query A/AAAA %s", host);
    ask(q, host, ns_t_a, a_cb);
    ask(q, host, ns_t_aaaa, aaaa_cb);
    schedule(r);
    return 0;
}

/* ---- life cycle ---- */

/* Turn "HOST[:PORT][,...]" into c-ares' csv, checking every entry is an IP address. */
static int servers_csv(const char *servers, sts_buf *out, char *err, size_t errlen)
{
    const char *p = servers;
    if (!*p) {
        snprintf(err, errlen, "empty nameserver list");
        return STS_EINVAL;
    }
    while (*p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char item[128], host[128];
        long port = 53;
        if (len == 0 || len >= sizeof(item)) {
            snprintf(err, errlen, "bad nameserver entry in '%s'", servers);
            return STS_EINVAL;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        int v6 = 0;
        const char *portstr = NULL;
        if (item[0] == '[') {
            char *rb = strchr(item, ']');
            if (!rb || (rb[1] && rb[1] != ':')) {
                snprintf(err, errlen, "bad nameserver '%s' (expected [IPv6]:PORT)", item);
                return STS_EINVAL;
            }
            snprintf(host, sizeof(host), "%.*s", (int)(rb - item - 1), item + 1);
            portstr = rb[1] ? rb + 2 : NULL;
            v6 = 1;
        } else if (strchr(item, ':') != strrchr(item, ':')) {
            snprintf(host, sizeof(host), "%s", item); /* bare IPv6, no port */
            v6 = 1;
        } else {
            char *c = strchr(item, ':');
            snprintf(host, sizeof(host), "%.*s", c ? (int)(c - item) : (int)len, item);
            portstr = c ? c + 1 : NULL;
        }
        unsigned char tmp[16];
        if (inet_pton(v6 ? AF_INET6 : AF_INET, host, tmp) != 1) {
            snprintf(err, errlen, "nameserver '%s' is not an IP address", host);
            return STS_EINVAL;
        }
        if (portstr) {
            char *end;
            port = strtol(portstr, &end, 10);
            if (!*portstr || *end || port < 1 || port > 65535) {
                snprintf(err, errlen, "bad port in nameserver '%s'", item);
                return STS_EINVAL;
            }
        }
        if (sts_buf_appendf(out, "%s%s%s%s:%ld", out->len ? "," : "", v6 ? "[" : "", host,
                            v6 ? "]" : "", port))
            return STS_ENOMEM;
        p += len;
        if (*p == ',')
            p++;
    }
    return 0;
}

int sts_resolver_new(uv_loop_t *loop, const char *servers, double timeout_s, sts_log *log,
                     sts_resolver **out, char *err, size_t errlen)
{
    char dummy[8];
    if (!err) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    *out = NULL;
    static int inited;
    if (!inited) {
        /* A no-op on Linux in c-ares 1.18, but documented as required. */
        ares_library_init(ARES_LIB_INIT_ALL);
        inited = 1;
    }
    sts_buf csv;
    sts_buf_init(&csv, 4096);
    if (servers) {
        int rc = servers_csv(servers, &csv, err, errlen);
        if (rc) {
            sts_buf_free(&csv);
            return rc;
        }
    }
    sts_resolver *r = calloc(1, sizeof(*r));
    if (!r) {
        sts_buf_free(&csv);
        return STS_ENOMEM;
    }
    r->loop = loop;
    r->wait_tail = &r->wait_head;
    r->log = log;
    r->timeout_s = timeout_s > 0 ? timeout_s : 10.0;

    struct ares_options o;
    memset(&o, 0, sizeof(o));
    /* No search list, no HOSTALIASES; SERVFAIL/REFUSED reported as such rather than
     * retried (NOCHECKRESP) so that the sender sees what the server said. Each try
     * gets a third of the budget: c-ares doubles it on the second round, and our own
     * deadline (timeout_s) ends the query in any case. */
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_NOCHECKRESP;
    o.timeout = (int)(r->timeout_s * 1000 / 3);
    if (o.timeout < 50)
        o.timeout = 50;
    o.tries = 2;
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = r;
    char lookups[] = "b";
    o.lookups = lookups;
    int rc = ares_init_options(&r->ch, &o,
                               ARES_OPT_FLAGS | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES |
                                   ARES_OPT_SOCK_STATE_CB | ARES_OPT_LOOKUPS);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        sts_buf_free(&csv);
        free(r);
        return STS_EDNS;
    }
    if (servers) {
        rc = ares_set_servers_ports_csv(r->ch, csv.data);
        if (rc != ARES_SUCCESS) {
            snprintf(err, errlen, "c-ares: nameservers '%s': %s", servers, ares_strerror(rc));
            sts_buf_free(&csv);
            ares_destroy(r->ch);
            free(r);
            return STS_EINVAL;
        }
    }
    sts_debug(log, "dns resolver: servers %s, timeout %.1f s",
              servers ? csv.data : "from /etc/resolv.conf", r->timeout_s);
    sts_buf_free(&csv);
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->open_handles = 1;
    r->ch_ok = 1;
    *out = r;
    return 0;
}

static void do_free(sts_resolver *r)
{
    /* ares_destroy ends every pending c-ares query with ARES_EDESTRUCTION: the c-ares
     * callbacks mark the queries complete (CANCELLED) and we deliver them here. */
    r->delivering++;
    r->closing = 1;
    ares_destroy(r->ch);
    r->ch_ok = 0;
    while (r->wait_head) { /* never sent: their queries are cancelled below */
        struct ask *a = r->wait_head;
        r->wait_head = a->next;
        a->q->pending--;
        free(a);
    }
    r->wait_tail = &r->wait_head;
    r->waiting = 0;
    for (struct query *q = r->queries; q; q = q->next)
        if (!q->complete) {
            q->complete = 1;
            q->status = q->status_a = q->status_aaaa = STS_DNS_CANCELLED;
            snprintf(q->detail, sizeof(q->detail), "resolver freed");
        }
    for (struct query *q = r->queries; q; q = q->next)
        if (!q->delivered)
            deliver(r, q);
    while (r->queries) {
        struct query *q = r->queries;
        r->queries = q->next;
        query_free(q);
    }
    r->delivering--;
    r->freed = 1;
    while (r->socks) {
        struct sock *s = r->socks;
        r->socks = s->next;
        uv_close((uv_handle_t *)&s->poll, handle_closed_cb);
    }
    uv_close((uv_handle_t *)&r->timer, handle_closed_cb);
}

void sts_resolver_free(sts_resolver *r)
{
    if (!r || r->freed || r->free_requested)
        return;
    if (r->delivering) {
        /* Called from a result callback: finish the delivery loop first. */
        r->free_requested = 1;
        return;
    }
    do_free(r);
}
