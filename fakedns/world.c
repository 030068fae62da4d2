/*
 * world.c - assembles one scenario's fake world (see world.h): assigns the hosts
 * addresses in a 127.x.y.0/24 block, builds the zone, mints certificates with a
 * per-world CA, binds every socket, then starts the DNS, policy and MX servers.
 *
 * Sockets are bound with plain system calls before any libuv handle exists, so an
 * address clash with another world (EADDRINUSE) costs nothing to undo: the fds are
 * closed and the next block is tried. The only state shared between worlds is the
 * atomic block counter.
 *
 * sts_world_start returns 0 or a negative STS_* code with a message; the JSON
 * functions return new references (NULL on ENOMEM).
 */
#include "fakedns/world.h"
#include "common/err.h"
#include "common/testca.h"
#include "common/tls.h"
#include "fakedns/dnssrv.h"
#include "fakedns/httpsrv.h"
#include "fakedns/mxsrv.h"
#include "fakedns/observer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define DAY (24L * 3600L)
#define WORLD_FIRST_HOST 10 /* hosts get <block>.10, .11, ... */
#define WORLD_LAST_HOST 250
#define WORLD_DNS_HOST 53
#define WORLD_BLOCK_TRIES 64
#define WORLD_BLOCK_SPACE (100 * 256) /* 127.100.0 .. 127.199.255 */

/* The one piece of process-wide state: which block the next world tries. */
static atomic_uint world_next_block;

typedef enum { HOST_MX, HOST_POLICY } host_kind;

typedef struct world_host {
    char *name; /* lowercase, no trailing dot */
    host_kind kind;
    const sts_scn_mx *mx; /* the scenario's settings; NULL = defaults (zone-only MX) */
    int listen;           /* gets an address in the block and a listener */
    char addr[32];
    SSL_CTX *ctx; /* TLS server context (MX with STARTTLS, the policy host) */
    int fd[2];    /* bound sockets until the servers take them */
    sts_mxsrv *mxsrv;
} world_host;

struct sts_world {
    uv_loop_t *loop;
    sts_log *log;
    char *domain;
    char *mode;
    char block[16];
    int dns_port, smtp_port, https_port, http_port;
    char dir[PATH_MAX];
    int own_dir;
    char ca_file[PATH_MAX + 16];
    time_t now;
    time_t start; /* the clock when the world started */

    sts_observer *obs;
    sts_dns_zone *zone;
    sts_ca *ca;
    sts_ca *ca_unknown; /* signs "unknown_ca" certificates; never written out */
    sts_ca *ca_inter;   /* intermediate of the world CA, for `chain:` certificates */

    /* what is served now (the scenario's, or the last step's that changed it) */
    const char *cur_dns;
    int cur_dns_line;
    const sts_scn_dns_fault *cur_faults;
    size_t cur_nfaults;
    const sts_scn_policy *cur_policy;
    const char *file;

    world_host *hosts;
    size_t nhosts;
    world_host *policy; /* the mta-sts.<domain> entry */

    /* the policy as served */
    int policy_present;
    int policy_status;
    char *policy_ctype;
    char *policy_body;
    size_t policy_len;

    int dns_fd[2]; /* udp, tcp */
    sts_dnssrv *dns;
    sts_httpsrv *https, *http;

    int running; /* servers started */
    int pending; /* servers still closing */
    int stopping;
    void (*done)(void *);
    void *done_arg;
};


static char *lower_dup(const char *s)
{
    char *d = strdup(s);
    for (char *p = d; p && *p; p++)
        if (*p >= 'A' && *p <= 'Z')
            *p = (char)(*p - 'A' + 'a');
    return d;
}

/* ---- hosts ---- */

static world_host *world_find_host(sts_world *w, const char *name)
{
    for (size_t i = 0; i < w->nhosts; i++)
        if (!strcasecmp(w->hosts[i].name, name))
            return &w->hosts[i];
    return NULL;
}

static int world_add_host(sts_world *w, const char *name, host_kind kind, const sts_scn_mx *mx,
                          world_host **out)
{
    world_host *h = world_find_host(w, name);
    if (h) {
        *out = h;
        return 0;
    }
    world_host *v = realloc(w->hosts, (w->nhosts + 1) * sizeof(*v));
    if (!v)
        return STS_ENOMEM;
    w->hosts = v;
    h = &w->hosts[w->nhosts];
    memset(h, 0, sizeof(*h));
    h->fd[0] = h->fd[1] = -1;
    h->kind = kind;
    h->mx = mx;
    if (!(h->name = lower_dup(name)))
        return STS_ENOMEM;
    w->nhosts++;
    *out = h;
    return 0;
}

/* A zone with the lines of text (after ${mode}), nothing else yet. */
static int world_zone_lines(sts_world *w, const char *text, int line, sts_dns_zone **out,
                            char *err, size_t errlen)
{
    sts_dns_zone *z = sts_dns_zone_new(w->domain, err, errlen);
    if (!z)
        return STS_EINVAL;
    int rc = 0;
    if (text) {
        char *t = sts_scenario_subst(text, w->mode);
        rc = t ? sts_dns_zone_add_lines(z, t, w->file, line, err, errlen) : STS_ENOMEM;
        free(t);
    }
    if (rc) {
        sts_dns_zone_free(z);
        return rc;
    }
    *out = z;
    return 0;
}

/* Add the MX targets of z that are not hosts yet. */
static int world_add_targets(sts_world *w, const sts_dns_zone *z)
{
    char **targets = sts_dns_zone_mx_targets(z);
    if (!targets)
        return STS_ENOMEM;
    int rc = 0;
    world_host *h;
    for (size_t i = 0; targets[i]; i++) {
        if (!rc && !world_find_host(w, targets[i]))
            rc = world_add_host(w, targets[i], HOST_MX, NULL, &h);
        free(targets[i]);
    }
    free(targets);
    return rc;
}

/* The served zone: the lines, an A record for every host with a listener, the
 * faults, SOA and NS. */
static int world_make_zone(sts_world *w, sts_dns_zone **out, char *err, size_t errlen)
{
    sts_dns_zone *z = NULL;
    int rc = world_zone_lines(w, w->cur_dns, w->cur_dns_line, &z, err, errlen);
    for (size_t i = 0; !rc && i < w->nhosts; i++)
        if (w->hosts[i].listen && sts_dns_zone_add_a(z, w->hosts[i].name, w->hosts[i].addr)) {
            sts_errf(err, errlen, "%s: the zone gives %s other data than the world's address",
                    w->file, w->hosts[i].name);
            rc = STS_EINVAL;
        }
    for (size_t i = 0; !rc && i < w->cur_nfaults; i++) {
        const sts_scn_dns_fault *f = &w->cur_faults[i];
        rc = sts_dns_zone_add_fault(z, f->name, f->type, f->fault, f->delay, w->file, f->line,
                                    err, errlen);
    }
    if (!rc)
        rc = sts_dns_zone_finish(z);
    if (rc) {
        sts_dns_zone_free(z);
        return rc;
    }
    *out = z;
    return 0;
}

/* Collect the hosts in order: the scenario's MX hosts, the policy host, then MX
 * targets of the zone that have no address of their own. A host whose name already
 * has A/AAAA/CNAME records in the zone is served as written: no listener. */
static int world_collect_hosts(sts_world *w, const sts_scenario *scn, char *err, size_t errlen)
{
    world_host *h;
    for (size_t i = 0; i < scn->nmx; i++)
        if (world_add_host(w, scn->mx[i].host, HOST_MX, &scn->mx[i], &h))
            return STS_ENOMEM;
    char policy_name[300];
    snprintf(policy_name, sizeof(policy_name), "mta-sts.%s", w->domain);
    size_t before = w->nhosts;
    if (world_add_host(w, policy_name, HOST_POLICY, NULL, &h))
        return STS_ENOMEM;
    if (w->nhosts == before) {
        sts_errf(err, errlen, "%s: mta-sts.%s is the policy host and cannot also be an MX",
                scn->file ? scn->file : "scenario", w->domain);
        return STS_EINVAL;
    }
    int rc = world_add_targets(w, w->zone);
    /* Hosts a later step names get their listeners now: listeners are never added
     * while the world runs. */
    for (size_t k = 0; !rc && k < scn->nsteps; k++) {
        const sts_scn_step *st = &scn->steps[k];
        for (size_t i = 0; !rc && i < st->nmx; i++)
            if (!world_find_host(w, st->mx[i].host))
                rc = world_add_host(w, st->mx[i].host, HOST_MX, NULL, &h);
        if (rc || !st->dns)
            continue;
        sts_dns_zone *z = NULL;
        rc = world_zone_lines(w, st->dns, st->dns_line, &z, err, errlen);
        if (!rc)
            rc = world_add_targets(w, z);
        sts_dns_zone_free(z);
    }
    if (rc)
        return rc;
    size_t n = 0;
    for (size_t i = 0; i < w->nhosts; i++) {
        h = &w->hosts[i];
        if (h->kind == HOST_POLICY)
            w->policy = h;
        h->listen = !sts_dns_zone_has_address(w->zone, h->name);
        if (!h->listen)
            sts_info(w->log, "host %s: the zone gives its address; no listener", h->name);
        else
            n++;
    }
    if (n > WORLD_LAST_HOST - WORLD_FIRST_HOST + 1) {
        sts_errf(err, errlen, "%s: too many hosts (%zu) for one address block",
                scn->file ? scn->file : "scenario", n);
        return STS_ETOOBIG;
    }
    return 0;
}

/* ---- certificates ---- */

/* tls_versions on a server context. Once either bound is given, both are set: an open
 * end means the oldest or newest version, not the library's default (Debian's
 * configuration sets MinProtocol TLSv1.2); sts_tls_ctx_set_versions() lowers the
 * security level when TLS 1.0 or 1.1 is allowed. */
static int world_tls_versions(SSL_CTX *ctx, const sts_scn_tls_versions *t)
{
    if (!t->min && !t->max)
        return 0;
    int min = sts_tls_version_proto(t->min ? t->min : STS_TLS_VERSION_1_0);
    int max = sts_tls_version_proto(t->max ? t->max : STS_TLS_VERSION_1_3);
    return sts_tls_ctx_set_versions(ctx, min, max) ? STS_ETLS : 0;
}

static int world_mint_ctx(sts_world *w, const sts_scn_cert *c, const sts_scn_tls_versions *tls,
                          const char *host, SSL_CTX **out, char *err, size_t errlen)
{
    const char *deflt[1] = {host};
    sts_cert_spec spec;
    memset(&spec, 0, sizeof(spec));
    if (c->names_set) {
        spec.names = (const char *const *)c->names.v;
        spec.nnames = c->names.n;
    } else {
        spec.names = deflt;
        spec.nnames = 1;
    }
    spec.cn = c->cn;
    spec.no_san = c->no_san;
    spec.self_signed = c->self_signed;
    spec.key_type = c->rsa ? STS_KEY_RSA_2048 : STS_KEY_EC_P256;
    if (c->expired) {
        spec.not_before = w->now - 60 * DAY;
        spec.not_after = w->now - DAY;
    } else if (c->not_yet_valid) {
        spec.not_before = w->now + DAY;
        spec.not_after = w->now + 90 * DAY;
    } else {
        /* Valid both at the virtual now (a sender given --now) and at the moment the
         * world started (peers on the wall clock), however far steps moved the clock. */
        spec.not_before = (w->start < w->now ? w->start : w->now) - DAY;
        spec.not_after = (w->start > w->now ? w->start : w->now) + 90 * DAY;
    }
    sts_ca *ca = w->ca;
    if (c->unknown_ca) {
        if (!w->ca_unknown &&
            !(w->ca_unknown = sts_ca_new("ststest unknown CA", w->now, err, errlen)))
            return STS_ETLS;
        ca = w->ca_unknown;
    } else if (c->chain != STS_SCN_CHAIN_DIRECT) {
        if (!w->ca_inter && !(w->ca_inter = sts_ca_new_intermediate(
                                  w->ca, "ststest world intermediate CA", w->now, err, errlen)))
            return STS_ETLS;
        ca = w->ca_inter;
    }
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    int rc = sts_ca_mint(ca, &spec, w->now, &cert, &key);
    if (rc) {
        sts_errf(err, errlen, "cannot mint a certificate for %s: %s", host, sts_strerror(rc));
        return rc;
    }
    /* chain: intermediate sends the intermediate along; missing_intermediate leaves
     * it out, so only a client that already has it could build the chain. */
    STACK_OF(X509) *chain = NULL;
    if (c->chain == STS_SCN_CHAIN_INTERMEDIATE && (chain = sk_X509_new_null()))
        sk_X509_push(chain, sts_ca_cert(w->ca_inter));
    *out = sts_tls_server_ctx(cert, key, chain, 0, 0, err, errlen);
    sk_X509_free(chain);
    X509_free(cert);
    EVP_PKEY_free(key);
    if (!*out)
        return STS_ETLS;
    if (world_tls_versions(*out, tls)) {
        sts_errf(err, errlen, "%s: cannot set the TLS versions", host);
        SSL_CTX_free(*out);
        *out = NULL;
        return STS_ETLS;
    }
    sts_debug(w->log, "certificate for %s: %zu name(s)%s%s%s%s%s%s%s", host, spec.nnames,
              c->no_san ? " no-san" : "", c->expired ? " expired" : "",
              c->not_yet_valid ? " not-yet-valid" : "", c->self_signed ? " self-signed" : "",
              c->unknown_ca ? " unknown-ca" : "", c->rsa ? " rsa" : "",
              c->chain == STS_SCN_CHAIN_MISSING        ? " missing-intermediate"
              : c->chain == STS_SCN_CHAIN_INTERMEDIATE ? " via-intermediate"
                                                       : "");
    return 0;
}

/* The certificate (server context) of host h as configured now; *out NULL for an
 * MX without STARTTLS. */
static int world_host_ctx(sts_world *w, world_host *h, SSL_CTX **out, char *err, size_t errlen)
{
    static const sts_scn_cert plain; /* defaults: the host's own name, valid */
    static const sts_scn_tls_versions any;
    *out = NULL;
    if (h->kind == HOST_POLICY)
        return world_mint_ctx(w, &w->cur_policy->cert, &w->cur_policy->tls, h->name, out, err,
                              errlen);
    if (h->mx && !h->mx->starttls)
        return 0;
    return world_mint_ctx(w, h->mx ? &h->mx->cert : &plain, h->mx ? &h->mx->tls : &any, h->name,
                          out, err, errlen);
}

static int world_make_certs(sts_world *w, char *err, size_t errlen)
{
    if (!(w->ca = sts_ca_new("ststest world CA", w->now, err, errlen)))
        return STS_ETLS;
    for (size_t i = 0; i < w->nhosts; i++) {
        world_host *h = &w->hosts[i];
        if (!h->listen)
            continue;
        int rc = world_host_ctx(w, h, &h->ctx, err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- the policy ---- */

/* Pad body (len octets, CRLF lines) to exactly size octets with "x-pad: ..." lines:
 * RFC 8461 3.2 says unknown keys are ignored, so the policy stays valid but grows
 * past what a sender should accept. */
static int world_pad(sts_buf *b, long size, char *err, size_t errlen, const char *file)
{
    static const char pfx[] = "x-pad: ";
    size_t min = sizeof(pfx) - 1 + 2; /* an empty pad line */
    if (size < 0 || (size_t)size == b->len)
        return 0;
    if ((size_t)size < b->len + min) {
        sts_errf(err, errlen, "%s: policy 'size' %ld is below the policy itself plus one pad line "
                             "(%zu octets)", file, size, b->len + min);
        return STS_EINVAL;
    }
    size_t r = (size_t)size - b->len;
    size_t lines = (r + 79) / 80; /* lines of at most 80 octets */
    if (r / lines < min)
        lines = r / min;
    for (size_t i = 0; i < lines; i++) {
        size_t len = r / lines + (i < r % lines ? 1 : 0); /* with its CRLF */
        int rc = sts_buf_append(b, pfx, sizeof(pfx) - 1);
        for (size_t k = 0; rc == 0 && k < len - min; k++)
            rc = sts_buf_append(b, &"abcdefghijklmnopqrstuvwxyz"[k % 26], 1);
        if (rc == 0)
            rc = sts_buf_append(b, "\r\n", 2);
        if (rc)
            return rc;
    }
    return 0;
}

/* The body of the policy as configured now (new string in *out, its length). */
static int world_policy_body(sts_world *w, char **out, size_t *len, char *err, size_t errlen)
{
    const sts_scn_policy *p = w->cur_policy;
    *out = NULL;
    if (!p->present) {
        *out = strdup("");
        *len = 0;
        return *out ? 0 : STS_ENOMEM;
    }
    if (p->body || (p->redirect && !p->mode)) {
        *out = sts_scenario_subst(p->body ? p->body : "", w->mode);
        *len = *out ? strlen(*out) : 0;
        return *out ? 0 : STS_ENOMEM;
    }
    /* RFC 8461 3.2: the policy as key/value lines, CRLF-terminated. */
    char *mode = sts_scenario_subst(p->mode ? p->mode : "${mode}", w->mode);
    sts_buf b;
    sts_buf_init(&b, 0);
    int rc = mode ? sts_buf_appendf(&b, "version: STSv1\r\nmode: %s\r\n", mode) : STS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < p->mx.n; i++)
        rc = sts_buf_appendf(&b, "mx: %s\r\n", p->mx.v[i]);
    if (rc == 0)
        rc = sts_buf_appendf(&b, "max_age: %ld\r\n", p->max_age >= 0 ? p->max_age : 86400L);
    if (rc == 0)
        rc = world_pad(&b, p->size, err, errlen, w->file);
    free(mode);
    if (rc) {
        sts_buf_free(&b);
        return rc;
    }
    *len = b.len;
    *out = b.data ? b.data : strdup("");
    return *out ? 0 : STS_ENOMEM;
}

static int world_make_policy(sts_world *w, char *err, size_t errlen)
{
    const sts_scn_policy *p = w->cur_policy;
    free(w->policy_ctype);
    free(w->policy_body);
    w->policy_body = NULL;
    w->policy_present = p->present;
    w->policy_status = p->status ? p->status : 200;
    w->policy_ctype = strdup(p->content_type ? p->content_type : "text/plain");
    if (!w->policy_ctype)
        return STS_ENOMEM;
    return world_policy_body(w, &w->policy_body, &w->policy_len, err, errlen);
}

/* The policy server's configuration for one scheme (ctx NULL: plain HTTP). */
static sts_httpsrv_conf world_policy_conf(const sts_world *w, const char *scheme, SSL_CTX *ctx)
{
    const sts_scn_policy *p = w->cur_policy;
    sts_httpsrv_conf c = {
        .scheme = scheme,
        .ctx = ctx,
        .present = w->policy_present,
        .status = w->policy_status,
        .content_type = w->policy_ctype,
        .body = w->policy_body,
        .body_len = w->policy_len,
        .name = w->policy->name,
        .location = p->redirect,
        .headers = (const char *const *)p->headers.v,
        .nheaders = p->headers.n / 2,
        .chunked = p->chunked,
        .delay = p->delay,
        .drip = p->drip,
        .cut = p->cut_after >= 0,
        .cut_after = p->cut_after >= 0 ? (size_t)p->cut_after : 0,
        .refuse = ctx && p->https_off,
        .handshake_abort = ctx && p->handshake_abort,
    };
    return c;
}

/* An MX server's configuration from host h's scenario entry (defaults without). */
static sts_mxsrv_conf world_mx_conf(const world_host *h, SSL_CTX *ctx)
{
    sts_mxsrv_conf c = {
        .host = h->name,
        .address = h->addr,
        .starttls = h->mx ? h->mx->starttls : 1,
        .ctx = ctx,
    };
    const sts_scn_mx *m = h->mx;
    if (!m)
        return c;
    for (int i = 0; i < STS_SCN_NSTAGES; i++) {
        c.replies[i] = m->replies[i];
        c.delay[i] = m->delay[i];
    }
    c.disconnect = m->disconnect_after >= 0;
    c.disconnect_stage = m->disconnect_after;
    c.inject_after_starttls = m->inject_after_starttls;
    c.handshake_abort = m->handshake_abort;
    c.ehlo_keywords = (const char *const *)m->ehlo_keywords.v;
    c.nehlo_keywords = m->ehlo_keywords.n;
    c.ehlo_keywords_set = m->ehlo_keywords_set;
    return c;
}

/* ---- sockets ---- */

static int bind_socket(int type, const char *addr, int port, int *out)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1)
        return -EINVAL;
    int fd = socket(AF_INET, type | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    /* TCP: reuse an address whose old connections linger in TIME_WAIT; a second
     * listener on the same address and port still fails with EADDRINUSE. */
    if (type == SOCK_STREAM)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        (type == SOCK_STREAM && listen(fd, 128) != 0)) {
        int e = errno;
        close(fd);
        return -e;
    }
    *out = fd;
    return 0;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static void world_close_fds(sts_world *w)
{
    close_fd(&w->dns_fd[0]);
    close_fd(&w->dns_fd[1]);
    for (size_t i = 0; i < w->nhosts; i++) {
        close_fd(&w->hosts[i].fd[0]);
        close_fd(&w->hosts[i].fd[1]);
    }
}

/* Bind every socket of the world in block. Returns 0 or -errno (what, the address
 * and port that failed go to err). */
static int world_bind(sts_world *w, char *err, size_t errlen)
{
    char addr[32];
    snprintf(addr, sizeof(addr), "%s.%d", w->block, WORLD_DNS_HOST);
    int rc = bind_socket(SOCK_DGRAM, addr, w->dns_port, &w->dns_fd[0]);
    if (!rc)
        rc = bind_socket(SOCK_STREAM, addr, w->dns_port, &w->dns_fd[1]);
    if (rc) {
        sts_errf(err, errlen, "DNS %s:%d: %s", addr, w->dns_port, strerror(-rc));
        return rc;
    }
    int next = WORLD_FIRST_HOST;
    for (size_t i = 0; i < w->nhosts; i++) {
        world_host *h = &w->hosts[i];
        if (!h->listen)
            continue;
        snprintf(h->addr, sizeof(h->addr), "%s.%d", w->block, next++);
        int ports[2] = {h->kind == HOST_POLICY ? w->https_port : w->smtp_port,
                        h->kind == HOST_POLICY ? w->http_port : -1};
        for (int k = 0; k < 2; k++) {
            if (ports[k] < 0)
                continue;
            rc = bind_socket(SOCK_STREAM, h->addr, ports[k], &h->fd[k]);
            if (rc) {
                sts_errf(err, errlen, "%s %s:%d: %s", h->name, h->addr, ports[k], strerror(-rc));
                return rc;
            }
        }
    }
    return 0;
}

/* Bind in opts->block, or in the next free automatic block. */
static int world_bind_block(sts_world *w, const char *block, char *err, size_t errlen)
{
    if (block) {
        snprintf(w->block, sizeof(w->block), "%s", block);
        int rc = world_bind(w, err, errlen);
        if (rc)
            world_close_fds(w);
        return rc ? STS_EIO : 0;
    }
    /* 127.(100+a).(b): start from a pid-derived offset so that processes running
     * worlds at the same time mostly start apart; within a process a counter moves
     * on; a clash (EADDRINUSE) moves on too. */
    unsigned start = ((unsigned)getpid() * 257u) % WORLD_BLOCK_SPACE;
    for (int t = 0; t < WORLD_BLOCK_TRIES; t++) {
        unsigned s = (start + atomic_fetch_add(&world_next_block, 1u)) % WORLD_BLOCK_SPACE;
        snprintf(w->block, sizeof(w->block), "127.%u.%u", 100 + s / 256, s % 256);
        int rc = world_bind(w, err, errlen);
        if (rc == 0)
            return 0;
        world_close_fds(w);
        if (rc != -EADDRINUSE)
            return STS_EIO;
        sts_debug(w->log, "block %s busy (%s), trying the next", w->block, err);
    }
    sts_errf(err, errlen, "no free address block after %d tries (last: %s)", WORLD_BLOCK_TRIES, err);
    return STS_EIO;
}

/* ---- start ---- */

static int world_start_servers(sts_world *w)
{
    int rc =
        sts_dnssrv_start(w->loop, w->zone, w->dns_fd[0], w->dns_fd[1], w->obs, w->log, &w->dns);
    w->dns_fd[0] = w->dns_fd[1] = -1;
    if (rc)
        return rc;
    w->pending++;
    for (size_t i = 0; i < w->nhosts; i++) {
        world_host *h = &w->hosts[i];
        if (!h->listen)
            continue;
        if (h->kind == HOST_POLICY) {
            sts_httpsrv_conf c = world_policy_conf(w, "https", h->ctx);
            rc = sts_httpsrv_start(w->loop, h->fd[0], &c, w->obs, w->log, &w->https);
            h->fd[0] = -1;
            if (rc)
                return rc;
            w->pending++;
            c = world_policy_conf(w, "http", NULL);
            rc = sts_httpsrv_start(w->loop, h->fd[1], &c, w->obs, w->log, &w->http);
            h->fd[1] = -1;
            if (rc)
                return rc;
            w->pending++;
        } else {
            sts_mxsrv_conf c = world_mx_conf(h, h->ctx);
            rc = sts_mxsrv_start(w->loop, h->fd[0], &c, w->obs, w->log, &h->mxsrv);
            h->fd[0] = -1;
            if (rc)
                return rc;
            w->pending++;
        }
    }
    return 0;
}

static int world_make_dir(sts_world *w, const char *dir, char *err, size_t errlen)
{
    if (dir) {
        snprintf(w->dir, sizeof(w->dir), "%s", dir);
    } else {
        const char *tmp = getenv("TMPDIR");
        snprintf(w->dir, sizeof(w->dir), "%s/ststest-world-XXXXXX", tmp && *tmp ? tmp : "/tmp");
        if (!mkdtemp(w->dir)) {
            sts_errf(err, errlen, "cannot create a directory %s: %s", w->dir, strerror(errno));
            return STS_EIO;
        }
        w->own_dir = 1;
    }
    snprintf(w->ca_file, sizeof(w->ca_file), "%s/ca.pem", w->dir);
    int rc = sts_ca_write_pem(w->ca, w->ca_file);
    if (rc) {
        sts_errf(err, errlen, "cannot write %s: %s", w->ca_file, sts_strerror(rc));
        return rc;
    }
    return 0;
}

static int world_build(sts_world *w, const sts_scenario *scn, const sts_world_opts *opts, char *err,
                       size_t errlen)
{
    if (!(w->domain = lower_dup(scn->domain)) || !(w->obs = sts_observer_new()))
        return STS_ENOMEM;
    sts_observer_set_dns_max(w->obs, opts->observe_max); /* 0: the default bound */
    size_t dl = strlen(w->domain);
    if (dl && w->domain[dl - 1] == '.')
        w->domain[dl - 1] = '\0';
    w->file = scn->file ? scn->file : "scenario";
    w->cur_dns = scn->dns;
    w->cur_dns_line = scn->dns_line;
    w->cur_faults = scn->dns_faults;
    w->cur_nfaults = scn->ndns_faults;
    w->cur_policy = &scn->policy;
    /* The zone as written decides which hosts there are; the served zone (with the
     * hosts' addresses) is built once the addresses are known. */
    int rc = world_zone_lines(w, w->cur_dns, w->cur_dns_line, &w->zone, err, errlen);
    if (!rc)
        rc = world_collect_hosts(w, scn, err, errlen);
    if (!rc)
        rc = world_make_policy(w, err, errlen);
    if (!rc)
        rc = world_make_certs(w, err, errlen);
    if (!rc)
        rc = world_make_dir(w, opts->dir, err, errlen);
    if (!rc)
        rc = world_bind_block(w, opts->block, err, errlen);
    if (!rc) {
        sts_dns_zone *z = NULL;
        rc = world_make_zone(w, &z, err, errlen);
        if (!rc) {
            sts_dns_zone_free(w->zone);
            w->zone = z;
        }
    }
    if (rc && !err[0])
        sts_errf(err, errlen, "cannot build the world: %s", sts_strerror(rc));
    return rc;
}

static void world_free_cb(void *arg)
{
    sts_world_free(arg);
}

void sts_world_standard_ports(sts_world_opts *opts)
{
    opts->dns_port = 53;
    opts->smtp_port = 25;
    opts->https_port = 443;
    opts->http_port = 80;
}

int sts_world_start(uv_loop_t *loop, const sts_scenario *scn, const sts_world_opts *opts,
                    sts_world **out, char *err, size_t errlen)
{
    static const sts_world_opts defaults;
    if (!opts)
        opts = &defaults;
    if (err && errlen)
        err[0] = '\0';
    *out = NULL;
    if (!scn || !scn->domain) {
        sts_errf(err, errlen, "the scenario has no domain");
        return STS_EINVAL;
    }
    sts_world *w = calloc(1, sizeof(*w));
    if (!w) {
        sts_errf(err, errlen, "out of memory");
        return STS_ENOMEM;
    }
    w->loop = loop;
    w->log = opts->log;
    w->dns_fd[0] = w->dns_fd[1] = -1;
    w->dns_port = opts->dns_port ? opts->dns_port : STS_WORLD_DNS_PORT;
    w->smtp_port = opts->smtp_port ? opts->smtp_port : STS_WORLD_SMTP_PORT;
    w->https_port = opts->https_port ? opts->https_port : STS_WORLD_HTTPS_PORT;
    w->http_port = opts->http_port ? opts->http_port : STS_WORLD_HTTP_PORT;
    w->now = opts->now ? opts->now : time(NULL);
    w->start = w->now;
    w->mode = strdup(opts->mode ? opts->mode : sts_mode_name(STS_MODE_ENFORCE));
    int rc = w->mode ? world_build(w, scn, opts, err, errlen) : STS_ENOMEM;
    if (rc) {
        world_close_fds(w);
        sts_world_free(w);
        return rc;
    }
    rc = world_start_servers(w);
    w->running = 1;
    if (rc) {
        /* Handles exist now: they close through the loop, and the world frees itself
         * once they are closed (the caller's loop must run for that, as after any
         * stop). */
        sts_errf(err, errlen, "cannot start the world's servers: %s", sts_strerror(rc));
        world_close_fds(w);
        sts_world_stop(w, world_free_cb, w);
        return rc;
    }
    sts_info(w->log, "world %s ready: block %s, dns %s.%d:%d, mode %s", w->domain, w->block,
             w->block, WORLD_DNS_HOST, w->dns_port, w->mode);
    for (size_t i = 0; i < w->nhosts; i++)
        if (w->hosts[i].listen)
            sts_info(w->log, "host %s %s (%s)", w->hosts[i].name, w->hosts[i].addr,
                     w->hosts[i].kind == HOST_POLICY ? "policy" : "mx");
    *out = w;
    return 0;
}

/* ---- steps ---- */

int sts_world_apply_step(sts_world *w, const sts_scenario *scn, size_t step, time_t now, char *err,
                         size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (!scn || step >= scn->nsteps) {
        sts_errf(err, errlen, "no step %zu in the scenario", step);
        return STS_EINVAL;
    }
    if (!w->running || w->stopping) {
        sts_errf(err, errlen, "the world is not running");
        return STS_ESTATE;
    }
    const sts_scn_step *st = &scn->steps[step];
    int moved = now && now != w->now;
    /* Everything new is built first, and only then swapped in, so that a failure
     * leaves the world as it was. */
    const char *old_dns = w->cur_dns, *old_file = w->file;
    int old_dns_line = w->cur_dns_line;
    const sts_scn_dns_fault *old_faults = w->cur_faults;
    size_t old_nfaults = w->cur_nfaults;
    const sts_scn_policy *old_policy = w->cur_policy;
    time_t old_now = w->now;
    const sts_scn_mx **old_mx = calloc(w->nhosts + 1, sizeof(*old_mx));
    SSL_CTX **ctx = calloc(w->nhosts + 1, sizeof(*ctx));
    int *remint = calloc(w->nhosts + 1, sizeof(*remint));
    sts_dns_zone *zone = NULL;
    int rc = old_mx && ctx && remint ? 0 : STS_ENOMEM;
    for (size_t i = 0; i < w->nhosts && old_mx; i++)
        old_mx[i] = w->hosts[i].mx;

    if (st->dns) {
        w->cur_dns = st->dns;
        w->cur_dns_line = st->dns_line;
    }
    if (st->dns_faults_set) {
        w->cur_faults = st->dns_faults;
        w->cur_nfaults = st->ndns_faults;
    }
    if (st->policy_set)
        w->cur_policy = &st->policy;
    if (now)
        w->now = now;
    for (size_t i = 0; !rc && i < st->nmx; i++) {
        world_host *h = world_find_host(w, st->mx[i].host);
        if (!h || h->kind != HOST_MX || !h->listen) {
            sts_errf(err, errlen, "%s:%d: step '%s': %s is not an MX host the world serves",
                    w->file, st->mx[i].line, st->name, st->mx[i].host);
            rc = STS_EINVAL;
            break;
        }
        h->mx = &st->mx[i];
        remint[h - w->hosts] = 1;
    }
    if (!rc && (st->dns || st->dns_faults_set))
        rc = world_make_zone(w, &zone, err, errlen);
    if (!rc && st->policy_set && w->policy)
        remint[w->policy - w->hosts] = 1;
    for (size_t i = 0; !rc && i < w->nhosts; i++)
        if (w->hosts[i].listen && (moved || remint[i]))
            rc = world_host_ctx(w, &w->hosts[i], &ctx[i], err, errlen);
    char *body = NULL, *ctype = NULL;
    size_t body_len = 0;
    if (!rc && st->policy_set) {
        ctype = w->policy_ctype;
        body = w->policy_body;
        body_len = w->policy_len;
        w->policy_ctype = w->policy_body = NULL;
        rc = world_make_policy(w, err, errlen);
    }
    if (rc) {
        /* Undo: the world serves what it served before. */
        w->cur_dns = old_dns;
        w->cur_dns_line = old_dns_line;
        w->cur_faults = old_faults;
        w->cur_nfaults = old_nfaults;
        w->cur_policy = old_policy;
        w->file = old_file;
        w->now = old_now;
        for (size_t i = 0; i < w->nhosts && old_mx; i++)
            w->hosts[i].mx = old_mx[i];
        if (ctype || body) {
            free(w->policy_ctype);
            free(w->policy_body);
            w->policy_ctype = ctype;
            w->policy_body = body;
            w->policy_len = body_len;
            w->policy_present = old_policy->present;
            w->policy_status = old_policy->status ? old_policy->status : 200;
        }
        for (size_t i = 0; ctx && i < w->nhosts; i++)
            SSL_CTX_free(ctx[i]);
        sts_dns_zone_free(zone);
        if (!err[0])
            sts_errf(err, errlen, "cannot apply step '%s': %s", st->name, sts_strerror(rc));
        free(old_mx);
        free(ctx);
        free(remint);
        return rc;
    }
    free(ctype);
    free(body);

    /* Swap. The servers copy what they are given; sessions in flight keep theirs. */
    if (zone) {
        sts_dnssrv_set_zone(w->dns, zone);
        sts_dns_zone_free(w->zone);
        w->zone = zone;
    }
    for (size_t i = 0; i < w->nhosts; i++) {
        world_host *h = &w->hosts[i];
        if (!h->listen)
            continue;
        if (moved || remint[i]) {
            SSL_CTX_free(h->ctx);
            h->ctx = ctx[i];
            ctx[i] = NULL;
        }
        if (h->kind == HOST_POLICY && (moved || remint[i])) {
            sts_httpsrv_conf c = world_policy_conf(w, "https", h->ctx);
            if (!rc)
                rc = sts_httpsrv_set_conf(w->https, &c);
            c = world_policy_conf(w, "http", NULL);
            if (!rc)
                rc = sts_httpsrv_set_conf(w->http, &c);
        } else if (h->kind == HOST_MX && h->mxsrv && (moved || remint[i])) {
            sts_mxsrv_conf c = world_mx_conf(h, h->ctx);
            if (!rc)
                rc = sts_mxsrv_set_conf(h->mxsrv, &c);
        }
    }
    free(old_mx);
    free(ctx);
    free(remint);
    sts_info(w->log, "world %s: step %zu '%s' applied (now %lld)%s", w->domain, step + 1, st->name,
             (long long)w->now, rc ? ", partly: out of memory" : "");
    if (rc)
        sts_errf(err, errlen, "step '%s': out of memory while swapping", st->name);
    return rc;
}

/* ---- JSON ---- */

json_t *sts_world_ready(const sts_world *w)
{
    json_t *hosts = json_object();
    for (size_t i = 0; hosts && i < w->nhosts; i++)
        if (w->hosts[i].listen &&
            json_object_set_new(hosts, w->hosts[i].name, json_string(w->hosts[i].addr))) {
            json_decref(hosts);
            hosts = NULL;
        }
    if (!hosts)
        return NULL;
    char dns[64];
    snprintf(dns, sizeof(dns), "%s.%d:%d", w->block, WORLD_DNS_HOST, w->dns_port);
    return json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:o,s:s,s:s,s:b}", "event", "ready", "domain",
                     w->domain, "dns", dns, "ca_file", w->ca_file, "smtp_port", w->smtp_port,
                     "https_port", w->https_port, "http_port", w->http_port, "hosts", hosts,
                     "block", w->block, "mode", w->mode, "policy", w->policy_present);
}

json_t *sts_world_observed(const sts_world *w)
{
    json_t *o = sts_observer_snapshot(w->obs);
    if (o && json_object_set_new(o, "event", json_string("observed"))) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* ---- stop and free ---- */

static void world_server_done(void *arg)
{
    sts_world *w = arg;
    if (--w->pending > 0)
        return;
    sts_info(w->log, "world %s stopped", w->domain);
    if (w->done)
        w->done(w->done_arg);
}

void sts_world_stop(sts_world *w, void (*done)(void *arg), void *arg)
{
    if (w->stopping)
        return;
    w->stopping = 1;
    w->done = done;
    w->done_arg = arg;
    if (w->pending == 0) {
        /* No server was started: nothing to wait for. */
        if (done)
            done(arg);
        return;
    }
    /* Every server calls back once all its handles are closed; each stop call below
     * returns before any callback runs. */
    if (w->dns)
        sts_dnssrv_stop(w->dns, world_server_done, w);
    if (w->https)
        sts_httpsrv_stop(w->https, world_server_done, w);
    if (w->http)
        sts_httpsrv_stop(w->http, world_server_done, w);
    for (size_t i = 0; i < w->nhosts; i++)
        if (w->hosts[i].mxsrv)
            sts_mxsrv_stop(w->hosts[i].mxsrv, world_server_done, w);
}

void sts_world_free(sts_world *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->nhosts; i++) {
        SSL_CTX_free(w->hosts[i].ctx);
        free(w->hosts[i].name);
    }
    free(w->hosts);
    sts_dns_zone_free(w->zone);
    sts_ca_free(w->ca);
    sts_ca_free(w->ca_unknown);
    sts_ca_free(w->ca_inter);
    sts_observer_free(w->obs);
    if (w->ca_file[0] && w->own_dir)
        unlink(w->ca_file);
    if (w->own_dir)
        rmdir(w->dir);
    free(w->policy_ctype);
    free(w->policy_body);
    free(w->domain);
    free(w->mode);
    free(w);
}
