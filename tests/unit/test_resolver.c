/*
 * test_resolver.c - the c-ares resolver on libuv, against a tiny in-test DNS server:
 * a uv_udp_t on 127.0.0.1 answering canned wire-format responses built by hand, and a
 * uv_tcp_t on the same port that answers every query truncated (TC), as a hostile
 * server does.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <uv.h>

#include "common/err.h"
#include "sender/resolver.h"

/* ---- a canned DNS server ---- */

#define HOLD_MAX 512

/* A query for a name under hold.test waits in the server until srv_release(). */
struct held {
    uint8_t q[300]; /* header and question */
    size_t len;
    struct sockaddr_storage addr;
};

struct srv {
    uv_udp_t udp;
    uv_tcp_t tcp;
    int tcp_queries;
    int port;
    int nqueries;
    char last_qname[256];
    struct held held[HOLD_MAX];
    int nheld, peak_held, released;
};

struct wire {
    uint8_t b[1024];
    size_t n;
};

static void w8(struct wire *w, uint8_t v)
{
    w->b[w->n++] = v;
}
static void w16(struct wire *w, uint16_t v)
{
    w8(w, (uint8_t)(v >> 8));
    w8(w, (uint8_t)v);
}
static void w32(struct wire *w, uint32_t v)
{
    w16(w, (uint16_t)(v >> 16));
    w16(w, (uint16_t)v);
}
static void wname(struct wire *w, const char *name)
{
    while (*name) {
        const char *dot = strchr(name, '.');
        size_t l = dot ? (size_t)(dot - name) : strlen(name);
        w8(w, (uint8_t)l);
        memcpy(w->b + w->n, name, l);
        w->n += l;
        name += l;
        if (*name == '.')
            name++;
    }
    w8(w, 0);
}
/* An answer RR owned by the question name (pointer to offset 12). Returns the offset
 * of its RDLENGTH so the caller can fill it. */
static size_t rr_begin(struct wire *w, const char *owner, uint16_t type)
{
    if (owner)
        wname(w, owner);
    else
        w16(w, 0xC00C);
    w16(w, type);
    w16(w, 1);
    w32(w, 300);
    size_t at = w->n;
    w16(w, 0);
    return at;
}
static void rr_end(struct wire *w, size_t at)
{
    uint16_t len = (uint16_t)(w->n - at - 2);
    w->b[at] = (uint8_t)(len >> 8);
    w->b[at + 1] = (uint8_t)len;
}
static void txt_rr(struct wire *w, const char *owner, const char *const *strs, size_t n)
{
    size_t at = rr_begin(w, owner, 16);
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(strs[i]);
        w8(w, (uint8_t)l);
        memcpy(w->b + w->n, strs[i], l);
        w->n += l;
    }
    rr_end(w, at);
}
static void mx_rr(struct wire *w, uint16_t pref, const char *host)
{
    size_t at = rr_begin(w, NULL, 15);
    w16(w, pref);
    wname(w, host);
    rr_end(w, at);
}

static void send_cb(uv_udp_send_t *req, int status)
{
    free(req);
}

/* Build the answer for (qname, qtype); 0 = do not answer (timeout). */
static int answer(struct wire *w, const char *qname, uint16_t qtype, int *rcode, int *ancount)
{
    *rcode = 0;
    *ancount = 0;
    if (!strcasecmp(qname, "slow.test"))
        return 0;
    if (!strcasecmp(qname, "multi.test") && qtype == 16) {
        const char *r1[] = {"v=STSv1; ", "id=abc;"};
        const char *r2[] = {"other"};
        const char *r3[] = {""};
        txt_rr(w, NULL, r1, 2);
        txt_rr(w, NULL, r2, 1);
        txt_rr(w, NULL, r3, 1);
        *ancount = 3;
    } else if (!strcasecmp(qname, "mx.test") && qtype == 15) {
        mx_rr(w, 20, "b.mx.test");
        mx_rr(w, 10, "a.mx.test");
        mx_rr(w, 30, "Z.MX.TEST");
        mx_rr(w, 10, "c.mx.test");
        mx_rr(w, 10, "d.mx.test");
        *ancount = 5;
    } else if (!strcasecmp(qname, "nullmx.test") && qtype == 15) {
        mx_rr(w, 0, "");
        *ancount = 1;
    } else if (!strcasecmp(qname, "nx.test")) {
        *rcode = 3;
    } else if (!strcasecmp(qname, "sf.test")) {
        *rcode = 2;
    } else if (!strcasecmp(qname, "refused.test")) {
        *rcode = 5;
    } else if (!strcasecmp(qname, "cname.test") && qtype == 16) {
        /* only the CNAME, as an authoritative server would answer */
        size_t at = rr_begin(w, NULL, 5);
        wname(w, "target.test");
        rr_end(w, at);
        *ancount = 1;
    } else if (!strcasecmp(qname, "loop.test") && qtype == 16) {
        size_t at = rr_begin(w, NULL, 5);
        wname(w, "loop.test");
        rr_end(w, at);
        *ancount = 1;
    } else if ((!strcasecmp(qname, "aloop.test") || !strcasecmp(qname, "bloop.test")) &&
               (qtype == 1 || qtype == 28)) {
        /* aloop -> bloop -> aloop, both in one answer, as a recursive server gives it */
        int a = !strcasecmp(qname, "aloop.test");
        size_t at = rr_begin(w, NULL, 5);
        wname(w, a ? "bloop.test" : "aloop.test");
        rr_end(w, at);
        at = rr_begin(w, a ? "bloop.test" : "aloop.test", 5);
        wname(w, qname);
        rr_end(w, at);
        *ancount = 2;
    } else if (!strcasecmp(qname, "badtxt.test") && qtype == 16) {
        /* a character-string of 200 bytes in an RDATA of 4 */
        size_t at = rr_begin(w, NULL, 16);
        w8(w, 200);
        w8(w, 'v');
        w8(w, '=');
        w8(w, 'S');
        rr_end(w, at);
        *ancount = 1;
    } else if (!strcasecmp(qname, "badmx.test") && qtype == 15) {
        /* preference 10, then a label of 40 bytes that runs past the message */
        size_t at = rr_begin(w, NULL, 15);
        w16(w, 10);
        w8(w, 40);
        w8(w, 'm');
        rr_end(w, at);
        *ancount = 1;
    } else if (!strcasecmp(qname, "target.test") && qtype == 16) {
        const char *r[] = {"v=STSv1; id=t1;"};
        txt_rr(w, NULL, r, 1);
        *ancount = 1;
    } else if (!strcasecmp(qname, "host.test") && qtype == 1) {
        size_t at = rr_begin(w, NULL, 1);
        w32(w, 0x7f000005);
        rr_end(w, at);
        at = rr_begin(w, NULL, 1);
        w32(w, 0x7f000006);
        rr_end(w, at);
        *ancount = 2;
    } else if ((!strcasecmp(qname, "host.test") || !strcasecmp(qname, "v6only.test")) &&
               qtype == 28) {
        size_t at = rr_begin(w, NULL, 28);
        static const uint8_t v6[16] = {0x20, 0x01, 0x0d, 0xb8, [15] = 1};
        memcpy(w->b + w->n, v6, 16);
        w->n += 16;
        rr_end(w, at);
        *ancount = 1;
    } else if (!strcasecmp(qname, "v6only.test") && qtype == 1) {
        *rcode = 0; /* NODATA */
    } else if (!strcasecmp(qname, "nodata.test")) {
        *rcode = 0;
    } else {
        *rcode = 3;
    }
    return 1;
}

static void alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    static char mem[2048];
    buf->base = mem;
    buf->len = sizeof(mem);
}

/* Send the answer ans to the query q (header and question: p octets). */
static void srv_reply(uv_udp_t *udp, const uint8_t *q, size_t p, const struct sockaddr *addr,
                      const struct wire *ans, int rcode, int ancount, int tc)
{
    struct wire *w = calloc(1, sizeof(*w));
    w8(w, q[0]);
    w8(w, q[1]);
    w16(w, (uint16_t)((tc ? 0x8380 : 0x8180) | rcode));
    w16(w, 1);
    w16(w, (uint16_t)ancount);
    w16(w, 0);
    w16(w, 0);
    memcpy(w->b + w->n, q + 12, p - 12);
    w->n += p - 12;
    memcpy(w->b + w->n, ans->b, ans->n);
    w->n += ans->n;
    static uint8_t out[1024];
    memcpy(out, w->b, w->n);
    uv_buf_t ob = uv_buf_init((char *)out, (unsigned)w->n);
    free(w);
    /* uv_udp_try_send: the kernel takes it at once on loopback. */
    if (uv_udp_try_send(udp, &ob, 1, addr) < 0)
        fail_msg("uv_udp_try_send failed");
}

static void recv_cb(uv_udp_t *udp, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags)
{
    struct srv *s = udp->data;
    if (nread < 12 || !addr)
        return;
    const uint8_t *q = (const uint8_t *)buf->base;
    /* question name */
    char qname[256] = "";
    size_t p = 12, qn = 0;
    while (p < (size_t)nread && q[p]) {
        uint8_t l = q[p++];
        if (p + l > (size_t)nread || qn + l + 2 > sizeof(qname))
            return;
        if (qn)
            qname[qn++] = '.';
        memcpy(qname + qn, q + p, l);
        qn += l;
        p += l;
    }
    qname[qn] = '\0';
    p++;
    if (p + 4 > (size_t)nread)
        return;
    uint16_t qtype = (uint16_t)(q[p] << 8 | q[p + 1]);
    p += 4;
    s->nqueries++;
    snprintf(s->last_qname, sizeof(s->last_qname), "%s", qname);

    if (qn > 10 && !strcasecmp(qname + qn - 10, ".hold.test")) {
        if (s->nheld < HOLD_MAX && p <= sizeof(s->held[0].q)) {
            struct held *h = &s->held[s->nheld++];
            memcpy(h->q, q, p);
            h->len = p;
            memcpy(&h->addr, addr,
                   addr->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6)
                                               : sizeof(struct sockaddr_in));
            if (s->nheld > s->peak_held)
                s->peak_held = s->nheld;
        }
        return;
    }
    struct wire ans = {.n = 0};
    int rcode, ancount;
    if (!answer(&ans, qname, qtype, &rcode, &ancount))
        return;
    /* tc.test: truncated over UDP (and over TCP: srv_tcp_read). */
    srv_reply(udp, q, p, addr, &ans, rcode, ancount, !strcasecmp(qname, "tc.test"));
}

/* Answer every held query with one TXT record. */
static void srv_release(struct srv *s)
{
    for (int i = 0; i < s->nheld; i++) {
        struct wire ans = {.n = 0};
        const char *rec[] = {"held"};
        txt_rr(&ans, NULL, rec, 1);
        srv_reply(&s->udp, s->held[i].q, s->held[i].len, (struct sockaddr *)&s->held[i].addr, &ans,
                  0, 1, 0);
    }
    s->released += s->nheld;
    s->nheld = 0;
}

/* One TCP client of the server: every length-prefixed query is answered with its
 * own header and question, QR and TC set, no records: truncated even over TCP. */
struct tcp_client {
    uv_tcp_t h; /* first: freed through the handle in its close callback */
    struct srv *s;
    uint8_t in[1024];
    size_t n;
};

static void tcp_client_closed(uv_handle_t *h)
{
    free(h);
}

static void tcp_alloc_cb(uv_handle_t *h, size_t sz, uv_buf_t *buf)
{
    struct tcp_client *c = h->data;
    buf->base = (char *)c->in + c->n;
    buf->len = sizeof(c->in) - c->n;
}

static void srv_tcp_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    struct tcp_client *c = st->data;
    if (nread < 0 || c->n + (size_t)nread >= sizeof(c->in)) {
        uv_close((uv_handle_t *)st, tcp_client_closed);
        return;
    }
    c->n += (size_t)nread;
    while (c->n >= 2 && c->n >= 2u + (size_t)(c->in[0] << 8 | c->in[1])) {
        size_t len = (size_t)(c->in[0] << 8 | c->in[1]);
        uint8_t out[1024];
        if (len < 12 || len + 2 > sizeof(out)) {
            uv_close((uv_handle_t *)st, tcp_client_closed);
            return;
        }
        memcpy(out, c->in, 2 + len);
        out[4] = 0x83;         /* QR, TC, RD */
        out[5] = 0x80;         /* RA, NOERROR */
        memset(out + 8, 0, 6); /* no answer, authority or additional records */
        uv_buf_t ob = uv_buf_init((char *)out, (unsigned)(2 + len));
        if (uv_try_write(st, &ob, 1) != (int)(2 + len))
            fail_msg("uv_try_write of a TCP answer failed");
        c->s->tcp_queries++;
        memmove(c->in, c->in + 2 + len, c->n - 2 - len);
        c->n -= 2 + len;
    }
}

static void srv_tcp_accept(uv_stream_t *server, int status)
{
    struct srv *s = server->data;
    if (status < 0)
        return;
    struct tcp_client *c = calloc(1, sizeof(*c));
    assert_non_null(c);
    c->s = s;
    uv_tcp_init(server->loop, &c->h);
    c->h.data = c;
    if (uv_accept(server, (uv_stream_t *)&c->h) != 0 ||
        uv_read_start((uv_stream_t *)&c->h, tcp_alloc_cb, srv_tcp_read) != 0)
        uv_close((uv_handle_t *)&c->h, tcp_client_closed);
}

static void srv_start(uv_loop_t *loop, struct srv *s)
{
    memset(s, 0, sizeof(*s));
    /* A UDP port that is free for TCP too (another test may hold it for TCP). */
    for (int tries = 0;; tries++) {
        assert_int_equal(uv_udp_init(loop, &s->udp), 0);
        s->udp.data = s;
        struct sockaddr_in sa;
        uv_ip4_addr("127.0.0.1", 0, &sa);
        assert_int_equal(uv_udp_bind(&s->udp, (struct sockaddr *)&sa, 0), 0);
        int len = sizeof(sa);
        uv_udp_getsockname(&s->udp, (struct sockaddr *)&sa, &len);
        s->port = ntohs(sa.sin_port);
        assert_int_equal(uv_tcp_init(loop, &s->tcp), 0);
        s->tcp.data = s;
        if (uv_tcp_bind(&s->tcp, (struct sockaddr *)&sa, 0) == 0 &&
            uv_listen((uv_stream_t *)&s->tcp, 16, srv_tcp_accept) == 0)
            break;
        assert_true(tries < 20);
        uv_close((uv_handle_t *)&s->udp, NULL);
        uv_close((uv_handle_t *)&s->tcp, NULL);
        uv_run(loop, UV_RUN_NOWAIT);
    }
    assert_int_equal(uv_udp_recv_start(&s->udp, alloc_cb, recv_cb), 0);
    (void)send_cb;
}

/* ---- results ---- */

struct got {
    int calls;
    int in_call; /* set while the query function runs: a callback then is a bug */
    sts_dns_status status;
    size_t n;
    char recs[8][128];
    unsigned prefs[8];
    int null_mx;
    int family[8];
    char canonical[256];
    sts_dns_status sa, saaaa;
    char detail[200];
};

static void txt_cb(const sts_dns_txt_result *res, void *arg)
{
    struct got *g = arg;
    assert_false(g->in_call);
    g->calls++;
    g->status = res->status;
    snprintf(g->detail, sizeof(g->detail), "%s", res->detail ? res->detail : "");
    g->n = res->n;
    snprintf(g->canonical, sizeof(g->canonical), "%s", res->canonical);
    for (size_t i = 0; i < res->n && i < 8; i++) {
        assert_int_equal(strlen(res->records[i].data), res->records[i].len);
        snprintf(g->recs[i], sizeof(g->recs[i]), "%s", res->records[i].data);
    }
}

static void mx_cb(const sts_dns_mx_result *res, void *arg)
{
    struct got *g = arg;
    assert_false(g->in_call);
    g->calls++;
    g->status = res->status;
    snprintf(g->detail, sizeof(g->detail), "%s", res->detail ? res->detail : "");
    g->n = res->n;
    g->null_mx = res->null_mx;
    for (size_t i = 0; i < res->n && i < 8; i++) {
        snprintf(g->recs[i], sizeof(g->recs[i]), "%s", res->mx[i].host);
        g->prefs[i] = res->mx[i].preference;
    }
}

static void addr_cb(const sts_dns_addr_result *res, void *arg)
{
    struct got *g = arg;
    assert_false(g->in_call);
    g->calls++;
    g->status = res->status;
    snprintf(g->detail, sizeof(g->detail), "%s", res->detail ? res->detail : "");
    g->sa = res->status_a;
    g->saaaa = res->status_aaaa;
    g->n = res->n;
    for (size_t i = 0; i < res->n && i < 8; i++) {
        snprintf(g->recs[i], sizeof(g->recs[i]), "%s", res->addrs[i].text);
        g->family[i] = res->addrs[i].family;
        assert_int_equal(res->addrs[i].sa.ss_family, res->addrs[i].family);
    }
}

struct env {
    uv_loop_t loop;
    struct srv srv;
    sts_resolver *r;
    sts_log *log;
};

static void env_start(struct env *e, double timeout)
{
    assert_int_equal(uv_loop_init(&e->loop), 0);
    srv_start(&e->loop, &e->srv);
    char servers[64], err[256];
    snprintf(servers, sizeof(servers), "127.0.0.1:%d", e->srv.port);
    e->log = sts_log_new_mem(STS_LOG_DEBUG, NULL);
    int rc = sts_resolver_new(&e->loop, servers, timeout, e->log, &e->r, err, sizeof(err));
    if (rc)
        fail_msg("sts_resolver_new: %s", err);
}

static void env_finish(struct env *e)
{
    sts_resolver_free(e->r);
    uv_close((uv_handle_t *)&e->srv.udp, NULL);
    uv_close((uv_handle_t *)&e->srv.tcp, NULL);
    uv_run(&e->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&e->loop), 0);
    sts_log_free(e->log);
}

#define RUN_UNTIL(e, cond)                                                                         \
    do {                                                                                           \
        uint64_t t0 = uv_now(&(e)->loop);                                                          \
        while (!(cond) && uv_now(&(e)->loop) - t0 < 5000)                                          \
            uv_run(&(e)->loop, UV_RUN_ONCE);                                                       \
        if (!(cond))                                                                               \
            fprintf(stderr, "transcript:\n%s", sts_log_text((e)->log));                            \
        assert_true(cond);                                                                         \
    } while (0)

static void test_txt_multistring(void **state)
{
    struct env e;
    env_start(&e, 2.0);
    struct got g = {0};
    g.in_call = 1;
    assert_int_equal(sts_resolver_query_txt(e.r, "multi.test", txt_cb, &g), 0);
    g.in_call = 0;
    RUN_UNTIL(&e, g.calls == 1);
    assert_int_equal(g.status, STS_DNS_OK);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.recs[0], "v=STSv1; id=abc;");
    assert_string_equal(g.recs[1], "other");
    assert_string_equal(g.recs[2], "");
    assert_string_equal(g.canonical, "multi.test");
    assert_non_null(strstr(sts_log_text(e.log), "dns query TXT multi.test"));
    assert_non_null(strstr(sts_log_text(e.log), "dns answer TXT multi.test NOERROR 3 record(s)"));
    env_finish(&e);
}

static void test_txt_cname_chase(void **state)
{
    struct env e;
    env_start(&e, 2.0);
    struct got g = {0}, g2 = {0};
    assert_int_equal(sts_resolver_query_txt(e.r, "cname.test", txt_cb, &g), 0);
    assert_int_equal(sts_resolver_query_txt(e.r, "loop.test", txt_cb, &g2), 0);
    RUN_UNTIL(&e, g.calls == 1 && g2.calls == 1);
    assert_int_equal(g.status, STS_DNS_OK);
    assert_int_equal(g.n, 1);
    assert_string_equal(g.recs[0], "v=STSv1; id=t1;");
    assert_string_equal(g.canonical, "target.test");
    /* a CNAME pointing at itself ends as an error, not a loop */
    assert_int_equal(g2.status, STS_DNS_ERROR);
    assert_int_equal(g2.n, 0);
    assert_string_equal(g2.detail, "CNAME loop: loop.test -> loop.test");
    env_finish(&e);
}

static void test_mx_sorted(void **state)
{
    struct env e;
    env_start(&e, 2.0);
    int seen_first[4] = {0};
    /* Equal preferences come in random order: over 40 queries, each of a, c, d leads
     * at least once (probability of failure ~ 3 * (2/3)^40). */
    for (int round = 0; round < 40; round++) {
        struct got g = {0};
        assert_int_equal(sts_resolver_query_mx(e.r, "mx.test", mx_cb, &g), 0);
        RUN_UNTIL(&e, g.calls == 1);
        assert_int_equal(g.status, STS_DNS_OK);
        assert_int_equal(g.n, 5);
        assert_false(g.null_mx);
        for (int i = 0; i < 3; i++) {
            assert_int_equal(g.prefs[i], 10);
            assert_true(!strcmp(g.recs[i], "a.mx.test") || !strcmp(g.recs[i], "c.mx.test") ||
                        !strcmp(g.recs[i], "d.mx.test"));
        }
        assert_string_equal(g.recs[3], "b.mx.test");
        assert_int_equal(g.prefs[3], 20);
        assert_string_equal(g.recs[4], "z.mx.test"); /* lower-cased */
        assert_int_equal(g.prefs[4], 30);
        seen_first[g.recs[0][0] - 'a']++;
    }
    assert_true(seen_first[0] > 0);
    assert_true(seen_first[2] > 0);
    assert_true(seen_first[3] > 0);
    env_finish(&e);
}

static void test_null_mx(void **state)
{
    struct env e;
    env_start(&e, 2.0);
    struct got g = {0};
    assert_int_equal(sts_resolver_query_mx(e.r, "nullmx.test", mx_cb, &g), 0);
    RUN_UNTIL(&e, g.calls == 1);
    assert_int_equal(g.status, STS_DNS_OK);
    assert_true(g.null_mx);
    assert_int_equal(g.n, 0);
    env_finish(&e);
}

struct scase {
    const char *name;
    int type; /* 0 TXT, 1 MX */
    sts_dns_status want;
};

static void test_status_mapping(void **state)
{
    static const struct scase cases[] = {
        {"nx.test", 0, STS_DNS_NXDOMAIN},     {"sf.test", 0, STS_DNS_SERVFAIL},
        {"refused.test", 1, STS_DNS_REFUSED}, {"nodata.test", 0, STS_DNS_NODATA},
        {"nodata.test", 1, STS_DNS_NODATA},   {"nx.test", 1, STS_DNS_NXDOMAIN},
        {"slow.test", 0, STS_DNS_TIMEOUT},
    };
    struct env e;
    env_start(&e, 0.4);
    struct got g[sizeof(cases) / sizeof(cases[0])];
    memset(g, 0, sizeof(g));
    size_t n = sizeof(cases) / sizeof(cases[0]);
    for (size_t i = 0; i < n; i++) {
        if (cases[i].type == 0)
            assert_int_equal(sts_resolver_query_txt(e.r, cases[i].name, txt_cb, &g[i]), 0);
        else
            assert_int_equal(sts_resolver_query_mx(e.r, cases[i].name, mx_cb, &g[i]), 0);
    }
    uint64_t t0 = uv_now(&e.loop);
    int all = 0;
    while (!all && uv_now(&e.loop) - t0 < 5000) {
        uv_run(&e.loop, UV_RUN_ONCE);
        all = 1;
        for (size_t i = 0; i < n; i++)
            all &= g[i].calls == 1;
    }
    assert_true(all);
    for (size_t i = 0; i < n; i++) {
        if (g[i].status != cases[i].want)
            fail_msg("%s: got %s, want %s", cases[i].name, sts_dns_status_name(g[i].status),
                     sts_dns_status_name(cases[i].want));
        assert_int_equal(g[i].n, 0);
    }
    /* the timeout honoured the 0.4 s budget */
    assert_true(uv_now(&e.loop) - t0 < 1500);
    env_finish(&e);
}

static void test_addr(void **state)
{
    struct env e;
    env_start(&e, 1.0);
    struct got g = {0}, g6 = {0}, gx = {0};
    assert_int_equal(sts_resolver_query_addr(e.r, "host.test", addr_cb, &g), 0);
    assert_int_equal(sts_resolver_query_addr(e.r, "v6only.test", addr_cb, &g6), 0);
    assert_int_equal(sts_resolver_query_addr(e.r, "nx.test", addr_cb, &gx), 0);
    RUN_UNTIL(&e, g.calls == 1 && g6.calls == 1 && gx.calls == 1);
    assert_int_equal(g.status, STS_DNS_OK);
    assert_int_equal(g.n, 3);
    assert_string_equal(g.recs[0], "127.0.0.5");
    assert_string_equal(g.recs[1], "127.0.0.6");
    assert_string_equal(g.recs[2], "2001:db8::1");
    assert_int_equal(g.family[0], AF_INET);
    assert_int_equal(g.family[2], AF_INET6);
    assert_int_equal(g6.status, STS_DNS_OK);
    assert_int_equal(g6.sa, STS_DNS_NODATA);
    assert_int_equal(g6.saaaa, STS_DNS_OK);
    assert_int_equal(g6.n, 1);
    assert_int_equal(gx.status, STS_DNS_NXDOMAIN);
    assert_int_equal(gx.n, 0);
    env_finish(&e);
}

static void test_free_cancels(void **state)
{
    struct env e;
    env_start(&e, 5.0);
    struct got g = {0}, g2 = {0};
    assert_int_equal(sts_resolver_query_txt(e.r, "slow.test", txt_cb, &g), 0);
    assert_int_equal(sts_resolver_query_addr(e.r, "slow.test", addr_cb, &g2), 0);
    /* let the queries go out */
    RUN_UNTIL(&e, e.srv.nqueries >= 3);
    assert_int_equal(g.calls, 0);
    sts_resolver_free(e.r);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, STS_DNS_CANCELLED);
    assert_int_equal(g2.calls, 1);
    assert_int_equal(g2.status, STS_DNS_CANCELLED);
    e.r = NULL;
    env_finish(&e);
}

/* Freeing the resolver from inside a result callback is safe. */
static void free_in_cb(const sts_dns_txt_result *res, void *arg)
{
    sts_resolver **rp = arg;
    sts_resolver_free(*rp);
    *rp = NULL;
}

static void test_free_in_callback(void **state)
{
    struct env e;
    env_start(&e, 2.0);
    sts_resolver *r = e.r;
    struct got g = {0};
    assert_int_equal(sts_resolver_query_txt(r, "multi.test", free_in_cb, &e.r), 0);
    assert_int_equal(sts_resolver_query_txt(r, "slow.test", txt_cb, &g), 0);
    RUN_UNTIL(&e, e.r == NULL);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.status, STS_DNS_CANCELLED);
    env_finish(&e);
}

static void test_servers_parse(void **state)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    sts_resolver *r;
    char err[256];
    static const char *good[] = {"127.0.0.1", "127.0.0.1:5353", "[::1]:53", "::1",
                                 "127.0.0.1:53,[::1]:5353"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (sts_resolver_new(&loop, good[i], 1, NULL, &r, err, sizeof(err)))
            fail_msg("'%s' rejected: %s", good[i], err);
        sts_resolver_free(r);
    }
    static const char *bad[] = {"",     "dns.example", "127.0.0.1:0", "127.0.0.1:99999",
                                "[::1", "1.2.3.4:x",   "127.0.0.1,,"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (sts_resolver_new(&loop, bad[i], 1, NULL, &r, err, sizeof(err)) != STS_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
        assert_true(err[0] != '\0');
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* Hostile answers: a CNAME loop and malformed RDATA are errors (temporary), whatever
 * the type asked, each with a detail that says what was wrong; and one sentence
 * (sts_dns_failure_text) tells every failure in the same words. */
static void test_hostile_answers(void **state)
{
    struct env e;
    env_start(&e, 2.0);
    struct got ga = {0}, gt = {0}, gm = {0};
    assert_int_equal(sts_resolver_query_addr(e.r, "aloop.test", addr_cb, &ga), 0);
    assert_int_equal(sts_resolver_query_txt(e.r, "badtxt.test", txt_cb, &gt), 0);
    assert_int_equal(sts_resolver_query_mx(e.r, "badmx.test", mx_cb, &gm), 0);
    RUN_UNTIL(&e, ga.calls == 1 && gt.calls == 1 && gm.calls == 1);
    char buf[300];
    assert_int_equal(ga.status, STS_DNS_ERROR);
    assert_int_equal(ga.n, 0);
    assert_string_equal(
        sts_dns_failure_text("aloop.test", "A/AAAA", ga.status, ga.detail, buf, sizeof(buf)),
        "aloop.test A/AAAA: CNAME loop: aloop.test -> bloop.test -> aloop.test "
        "(ERROR)");
    assert_int_equal(gt.status, STS_DNS_ERROR);
    assert_string_equal(
        sts_dns_failure_text("badtxt.test", "TXT", gt.status, gt.detail, buf, sizeof(buf)),
        "badtxt.test TXT: malformed answer: Misformatted DNS reply (ERROR)");
    assert_int_equal(gm.status, STS_DNS_ERROR);
    assert_non_null(
        strstr(sts_dns_failure_text("badmx.test", "MX", gm.status, gm.detail, buf, sizeof(buf)),
               "badmx.test MX: malformed answer: Misformatted "));
    env_finish(&e);
}

/* TC over UDP, and TC again over TCP (where nothing may truncate): no answer at all,
 * a temporary failure with its reason, never NODATA (which would end as a permanent
 * failure: "neither MX nor address records"). Each lookup type asks once over each. */
static void test_truncated_over_tcp(void **state)
{
    struct env e;
    env_start(&e, 2.0);
    struct got gt = {0}, gm = {0}, ga = {0};
    assert_int_equal(sts_resolver_query_txt(e.r, "tc.test", txt_cb, &gt), 0);
    assert_int_equal(sts_resolver_query_mx(e.r, "tc.test", mx_cb, &gm), 0);
    assert_int_equal(sts_resolver_query_addr(e.r, "tc.test", addr_cb, &ga), 0);
    RUN_UNTIL(&e, gt.calls == 1 && gm.calls == 1 && ga.calls == 1);
    char buf[300];
    static const char why[] = "truncated answer: the TC bit is set even over TCP";
    assert_int_equal(gt.status, STS_DNS_ERROR);
    assert_int_equal(gt.n, 0);
    assert_string_equal(gt.detail, why);
    assert_int_equal(gm.status, STS_DNS_ERROR);
    assert_int_equal(gm.n, 0);
    assert_string_equal(
        sts_dns_failure_text("tc.test", "MX", gm.status, gm.detail, buf, sizeof(buf)),
        "tc.test MX: truncated answer: the TC bit is set even over TCP (ERROR)");
    assert_int_equal(ga.status, STS_DNS_ERROR);
    assert_int_equal(ga.n, 0);
    assert_string_equal(ga.detail, why);
    assert_true(sts_dns_status_is_temporary(ga.status));
    assert_int_equal(e.srv.nqueries, 4);    /* TXT, MX, A, AAAA over UDP */
    assert_int_equal(e.srv.tcp_queries, 4); /* and each once over TCP */
    env_finish(&e);
}

static void test_failure_text(void **state)
{
    static const struct {
        const char *name, *type;
        sts_dns_status st;
        const char *detail, *want;
    } cases[] = {
        {"a.test", "MX", STS_DNS_NXDOMAIN, NULL, "a.test MX: no such name (NXDOMAIN)"},
        {"a.test", "TXT", STS_DNS_NODATA, "", "a.test TXT: no TXT record (NODATA)"},
        {"a.test", "A/AAAA", STS_DNS_NODATA, NULL, "a.test A/AAAA: no A/AAAA record (NODATA)"},
        {"a.test", "MX", STS_DNS_SERVFAIL, NULL, "a.test MX: server failure (SERVFAIL)"},
        {"a.test", "TXT", STS_DNS_REFUSED, NULL, "a.test TXT: the server refused it (REFUSED)"},
        {"a.test", "TXT", STS_DNS_TIMEOUT, "no answer within 2.0 s",
         "a.test TXT: no answer within 2.0 s (TIMEOUT)"},
        {"a.test", "MX", STS_DNS_ERROR, NULL, "a.test MX: lookup failed (ERROR)"},
        {NULL, "MX", (sts_dns_status)99, NULL, "? MX: lookup failed (ERROR)"},
    };
    char buf[200];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(sts_dns_failure_text(cases[i].name, cases[i].type, cases[i].st,
                                                 cases[i].detail, buf, sizeof(buf)),
                            cases[i].want);
}

/* Addresses no sender may connect to (RFC 6890, RFC 5771, RFC 4291), and some that
 * look close but are fine: loopback above all, where the test worlds live. */
static void test_addr_unusable(void **state)
{
    static const struct {
        const char *addr, *why; /* why: NULL = usable */
    } cases[] = {
        {"0.0.0.0", "0.0.0.0/8: 'this network', RFC 6890"},
        {"0.1.2.3", "0.0.0.0/8: 'this network', RFC 6890"},
        {"255.255.255.255", "255.255.255.255/32: limited broadcast, RFC 6890"},
        {"224.0.0.1", "224.0.0.0/4: multicast, RFC 5771"},
        {"239.255.255.255", "224.0.0.0/4: multicast, RFC 5771"},
        {"240.0.0.1", "240.0.0.0/4: reserved, RFC 6890"},
        {"::", "::/128: the unspecified address, RFC 4291 2.5.2"},
        {"ff02::1", "ff00::/8: multicast, RFC 4291 2.7"},
        {"ff0e::1234", "ff00::/8: multicast, RFC 4291 2.7"},
        {"::ffff:0.0.0.0", "::ffff:0.0.0.0/104: IPv4-mapped 'this network', RFC 6890"},
        {"::ffff:0.255.0.1", "::ffff:0.0.0.0/104: IPv4-mapped 'this network', RFC 6890"},
        {"::ffff:224.0.0.5", "::ffff:224.0.0.0/100: IPv4-mapped multicast, RFC 5771"},
        {"::ffff:255.255.255.255",
         "::ffff:255.255.255.255/128: IPv4-mapped limited broadcast, RFC 6890"},
        {"127.0.0.1", NULL},
        {"127.255.255.254", NULL},
        {"1.0.0.0", NULL},
        {"192.0.2.1", NULL},
        {"223.255.255.255", NULL},
        {"::1", NULL},
        {"::ffff:127.0.0.1", NULL},
        {"::ffff:1.2.3.4", NULL},
        {"2001:db8::1", NULL},
        {"fe80::1", NULL},
        {"feff::1", NULL},
        {"::2", NULL},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        sts_dns_addr a;
        memset(&a, 0, sizeof(a));
        int v6 = strchr(cases[i].addr, ':') != NULL;
        a.family = v6 ? AF_INET6 : AF_INET;
        a.sa.ss_family = (sa_family_t)a.family;
        void *dst = v6 ? (void *)&((struct sockaddr_in6 *)&a.sa)->sin6_addr
                       : (void *)&((struct sockaddr_in *)&a.sa)->sin_addr;
        assert_int_equal(inet_pton(a.family, cases[i].addr, dst), 1);
        snprintf(a.text, sizeof(a.text), "%s", cases[i].addr);
        const char *why = sts_dns_addr_unusable((const struct sockaddr *)&a.sa);
        if (!cases[i].why ? why != NULL : !why || strcmp(why, cases[i].why))
            fail_msg("%s: got %s, want %s", cases[i].addr, why ? why : "usable",
                     cases[i].why ? cases[i].why : "usable");
        char buf[200], want[200];
        assert_int_equal(sts_dns_addr_check(&a, buf, sizeof(buf)), cases[i].why != NULL);
        if (cases[i].why) {
            snprintf(want, sizeof(want), "address %s is not a usable destination (%s)",
                     cases[i].addr, cases[i].why);
            assert_string_equal(buf, want);
        }
    }
    struct sockaddr other = {.sa_family = AF_UNIX};
    assert_non_null(sts_dns_addr_unusable(&other));
}

static void test_status_names(void **state)
{
    assert_string_equal(sts_dns_status_name(STS_DNS_NXDOMAIN), "NXDOMAIN");
    assert_string_equal(sts_dns_status_name((sts_dns_status)99), "ERROR");
    assert_false(sts_dns_status_is_temporary(STS_DNS_OK));
    assert_false(sts_dns_status_is_temporary(STS_DNS_NXDOMAIN));
    assert_false(sts_dns_status_is_temporary(STS_DNS_NODATA));
    assert_true(sts_dns_status_is_temporary(STS_DNS_SERVFAIL));
    assert_true(sts_dns_status_is_temporary(STS_DNS_TIMEOUT));
    assert_true(sts_dns_status_is_temporary(STS_DNS_REFUSED));
}

/* More queries than STS_RESOLVER_MAX_IN_FLIGHT: never more than the bound reach the
 * server unanswered, the rest wait, and every one completes. */
static int held_done;
static void held_cb(const sts_dns_txt_result *res, void *arg)
{
    (void)arg;
    assert_int_equal(res->status, STS_DNS_OK);
    assert_int_equal(res->n, 1);
    held_done++;
}

static void test_in_flight_bound(void **state)
{
    struct env e;
    env_start(&e, 5.0);
    enum { N = 3 * STS_RESOLVER_MAX_IN_FLIGHT + 10 };
    held_done = 0;
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof(name), "q%d.hold.test", i);
        assert_int_equal(sts_resolver_query_txt(e.r, name, held_cb, NULL), 0);
    }
    size_t in_flight, waiting;
    sts_resolver_load(e.r, &in_flight, &waiting);
    assert_int_equal(in_flight, STS_RESOLVER_MAX_IN_FLIGHT);
    assert_int_equal(waiting, N - STS_RESOLVER_MAX_IN_FLIGHT);
    uint64_t t0 = uv_now(&e.loop);
    while (held_done < N && uv_now(&e.loop) - t0 < 5000) {
        uv_run(&e.loop, UV_RUN_ONCE);
        sts_resolver_load(e.r, &in_flight, &waiting);
        assert_true(in_flight <= STS_RESOLVER_MAX_IN_FLIGHT);
        /* Every outstanding question has reached the server: answer them. */
        if (e.srv.nheld > 0 && (size_t)e.srv.nheld == in_flight)
            srv_release(&e.srv);
    }
    assert_int_equal(held_done, N);
    assert_int_equal(e.srv.released, N); /* one question each, no retransmission */
    assert_int_equal(e.srv.peak_held, STS_RESOLVER_MAX_IN_FLIGHT);
    sts_resolver_load(e.r, &in_flight, &waiting);
    assert_int_equal(in_flight, 0);
    assert_int_equal(waiting, 0);
    env_finish(&e);
}

/* Freeing the resolver with questions still waiting cancels them all. */
static void test_free_while_waiting(void **state)
{
    struct env e;
    env_start(&e, 5.0);
    enum { N = STS_RESOLVER_MAX_IN_FLIGHT + 20 };
    struct got g[N];
    memset(g, 0, sizeof(g));
    for (int i = 0; i < N; i++) {
        char name[64];
        snprintf(name, sizeof(name), "w%d.hold.test", i);
        assert_int_equal(sts_resolver_query_txt(e.r, name, txt_cb, &g[i]), 0);
    }
    sts_resolver_free(e.r);
    for (int i = 0; i < N; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].status, STS_DNS_CANCELLED);
    }
    e.r = NULL;
    env_finish(&e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txt_multistring),    cmocka_unit_test(test_txt_cname_chase),
        cmocka_unit_test(test_mx_sorted),          cmocka_unit_test(test_null_mx),
        cmocka_unit_test(test_status_mapping),     cmocka_unit_test(test_addr),
        cmocka_unit_test(test_free_cancels),       cmocka_unit_test(test_free_in_callback),
        cmocka_unit_test(test_servers_parse),      cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_hostile_answers),    cmocka_unit_test(test_failure_text),
        cmocka_unit_test(test_addr_unusable),      cmocka_unit_test(test_in_flight_bound),
        cmocka_unit_test(test_free_while_waiting), cmocka_unit_test(test_truncated_over_tcp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
