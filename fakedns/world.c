/*
 * world.c - assembles one scenario's fake world (see world.h): assigns the hosts
 * addresses in a 127.x.y.0/24 block, makes a per-world CA, binds every socket,
 * builds what is served (fakedns/served.h: zone, policy, MX scripts, certificates),
 * then starts the DNS, policy and MX servers.
 *
 * What is served is one reference-counted value behind one pointer (w->served),
 * which every server reads when a connection comes. A step builds a whole new value
 * (gather the step's choices on top of the current ones, build everything from
 * them) and only then swaps the pointer; the old value lives on while connections
 * that began on it are open. The world's own facts (hosts, addresses, sockets, CAs,
 * the observer log) never change after the start.
 *
 * Sockets are bound with plain system calls before any libuv handle exists, so an
 * address clash with another world (EADDRINUSE) costs nothing to undo: the fds are
 * closed and the next block is tried. The only state shared between worlds is the
 * atomic block counter.
 *
 * A survey world (opts->domains N) serves the scenario once for each of the domains
 * d1.<domain> ... dN.<domain>: the zone's lines and faults under each (relative names
 * end in the domain K, absolute names at or under the scenario's domain move under
 * it), a policy host mta-sts.dK.<domain> each, the scenario's MX hosts and the MX
 * targets under the domain renamed for each, and the names in the policies and
 * certificates likewise. Hosts outside the domain are shared and come first; then
 * each domain's hosts in the same order, so that their addresses repeat with a
 * stride (the ready line's "domains").
 *
 * sts_world_start returns 0 or a negative STS_* code with a message; the JSON
 * functions return new references (NULL on ENOMEM).
 */
#include "fakedns/world.h"
#include "common/err.h"
#include "common/testca.h"
#include "common/tls.h"
#include "common/buf.h"
#include "fakedns/collector.h"
#include "fakedns/dnssrv.h"
#include "fakedns/httpsrv.h"
#include "fakedns/mxsrv.h"
#include "fakedns/observer.h"
#include "fakedns/served.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
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

/* HOST_COLLECTOR: the HTTPS endpoint of a tlsrpt section's https rua. */
typedef enum { HOST_MX, HOST_POLICY, HOST_COLLECTOR } host_kind;

typedef struct world_host {
    char *name;   /* lowercase, no trailing dot */
    char *base;   /* the name as the scenario has it (steps name hosts by it) */
    unsigned dom; /* survey worlds: the domain K (1..N) it serves; 0 = shared */
    host_kind kind;
    const sts_scn_mx *mx; /* the scenario's own settings (before any step); NULL =
                             defaults (zone-only MX, or named only by a step) */
    int listen;           /* gets an address in the block and a listener */
    char addr[32];
    int fd[2]; /* bound sockets until the servers take them */
    sts_mxsrv *mxsrv;
    sts_httpsrv *https, *http; /* a policy host's listeners */
    sts_collector *collector;  /* a collector host's listener */
} world_host;

struct sts_world {
    uv_loop_t *loop;
    sts_log *log;
    char *domain;
    char *mode;
    unsigned ndomains; /* a survey world's N (d1..dN.<domain>); 0: an ordinary world */
    size_t shared;     /* survey: listening hosts outside the domain (first) */
    size_t stride;     /* survey: listening hosts of each domain */
    char block[16];
    int dns_port, smtp_port, https_port, http_port;
    char dir[PATH_MAX];
    int own_dir;
    char ca_file[PATH_MAX + 16];
    time_t start; /* the clock when the world started */

    sts_observer *obs; /* what senders did: spans every step */
    sts_ca *ca;
    sts_ca *ca_unknown; /* signs "unknown_ca" certificates; never written out */
    sts_ca *ca_inter;   /* intermediate of the world CA, for `chain:` certificates */
    const char *file;

    world_host *hosts;
    size_t nhosts;
    world_host *policy; /* the mta-sts.<domain> entry (survey: mta-sts.d1.<domain>) */

    sts_served *served; /* what is served now: the one pointer a step swaps */

    /* TLSRPT (scenario tlsrpt sections): the submitter's throw-away DKIM key, its
     * private key as PEM in dir, and its public key's TXT record data. */
    const char *submitter, *selector; /* the scenario's */
    char dkim_file[PATH_MAX + 16];    /* "" when the scenario has no tlsrpt section */
    char *dkim_txt;                   /* "v=DKIM1; k=rsa; p=..." */

    int dns_fd[2]; /* udp, tcp */
    sts_dnssrv *dns;
    sts_dnssrv_drops dns_drops; /* taken when the DNS server stops */
    int dns_drops_rc;           /* 0: the kernel's counter was read */

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

static world_host *world_find_host(const sts_world *w, const char *name)
{
    for (size_t i = 0; i < w->nhosts; i++)
        if (!strcasecmp(w->hosts[i].name, name))
            return &w->hosts[i];
    return NULL;
}

static int world_add_host_in(sts_world *w, const char *name, const char *base, unsigned dom,
                             host_kind kind, const sts_scn_mx *mx, world_host **out)
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
    h->dom = dom;
    if (!(h->name = lower_dup(name)) || !(h->base = lower_dup(base))) {
        free(h->name);
        return STS_ENOMEM;
    }
    w->nhosts++;
    *out = h;
    return 0;
}

static int world_add_host(sts_world *w, const char *name, host_kind kind, const sts_scn_mx *mx,
                          world_host **out)
{
    return world_add_host_in(w, name, name, 0, kind, mx, out);
}

/* ---- survey worlds: the scenario's names under domain K ---- */

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

/* Whether the len octets at name are the world's domain or a name under it
 * (case-insensitive). */
static int in_domain(const sts_world *w, const char *name, size_t len)
{
    size_t dl = strlen(w->domain);
    return len >= dl && !strncasecmp(name + len - dl, w->domain, dl) &&
           (len == dl || name[len - dl - 1] == '.');
}

/* name as domain K serves it: at or under the world's domain, moved under
 * dK.<domain> ("mail.example.test" -> "mail.d3.example.test", a trailing dot kept);
 * any other name, or K 0, unchanged. A new string (NULL on ENOMEM). */
static char *survey_name(const sts_world *w, unsigned k, const char *name)
{
    size_t nl = strlen(name), n = nl - (nl && name[nl - 1] == '.');
    size_t dl = strlen(w->domain);
    if (!k || !in_domain(w, name, n))
        return strdup(name);
    size_t sz = nl + 16;
    char *out = malloc(sz);
    if (out)
        snprintf(out, sz, "%.*sd%u.%s", (int)(n - dl), name, k, name + n - dl);
    return out;
}

/* text (zone lines, a policy) with every whole name at or under the world's domain
 * moved under domain K, as survey_name does to one name ("*.example.test" too). A
 * new string (NULL on ENOMEM). */
static char *survey_text(const sts_world *w, unsigned k, const char *text)
{
    size_t dl = strlen(w->domain);
    sts_buf b;
    sts_buf_init(&b, 0);
    int rc = 0;
    const char *p = text;
    for (const char *q = text; rc == 0 && *q;) {
        const char *e = q + dl;
        int starts = q == text || q[-1] == '.' || !name_char(q[-1]);
        int whole = starts && !strncasecmp(q, w->domain, dl) &&
                    (!*e || (!name_char(*e) && !(*e == '.' && name_char(e[1]))));
        if (!whole) {
            q++;
            continue;
        }
        rc = sts_buf_append(&b, p, (size_t)(q - p));
        if (rc == 0)
            rc = sts_buf_appendf(&b, "d%u.", k);
        p = q;
        q = e;
    }
    if (rc == 0)
        rc = sts_buf_append(&b, p, strlen(p));
    if (rc) {
        sts_buf_free(&b);
        return NULL;
    }
    return b.data ? b.data : strdup("");
}

/* A zone with the lines of text (after ${mode}), nothing else yet. */
static int world_zone_lines(sts_world *w, const char *text, int line, sts_dns_zone **out, char *err,
                            size_t errlen)
{
    sts_dns_zone *z = sts_dns_zone_new(w->domain, err, errlen);
    if (!z)
        return STS_EINVAL;
    int rc = 0;
    if (text && !w->ndomains) {
        char *t = sts_scenario_subst(text, w->mode);
        rc = t ? sts_dns_zone_add_lines(z, t, w->file, line, err, errlen) : STS_ENOMEM;
        free(t);
    }
    /* A survey world: the lines once under each domain K. */
    for (unsigned k = 1; text && !rc && k <= w->ndomains; k++) {
        char *t = sts_scenario_subst(text, w->mode);
        char *tk = t ? survey_text(w, k, t) : NULL;
        char *origin = survey_name(w, k, w->domain);
        rc = !tk || !origin ? STS_ENOMEM : sts_dns_zone_set_origin(z, origin);
        if (!rc)
            rc = sts_dns_zone_add_lines(z, tk, w->file, line, err, errlen);
        free(t);
        free(tk);
        free(origin);
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

/* A TXT record line "OWNER. TXT \"...\" \"...\"" of text: quotes and backslashes
 * escaped, split into character-strings of at most 255 octets (RFC 1035 3.3.14). */
static int txt_line(sts_buf *b, const char *owner, const char *text)
{
    int rc = sts_buf_appendf(b, "%s. TXT", owner);
    size_t n = strlen(text), i = 0;
    do {
        size_t k = n - i < 255 ? n - i : 255;
        rc = rc ? rc : sts_buf_append(b, " \"", 2);
        for (size_t j = i; !rc && j < i + k; j++)
            rc = text[j] == '"' || text[j] == '\\' ? sts_buf_appendf(b, "\\%c", text[j])
                                                   : sts_buf_append(b, &text[j], 1);
        rc = rc ? rc : sts_buf_append(b, "\"", 1);
        i += k;
    } while (!rc && i < n);
    return rc;
}

/* The TLSRPT part of the zone s serves: the _smtp._tls record(s) of its tlsrpt
 * section (verbatim, or "v=TLSRPTv1; rua=..." built from its endpoints, RFC 8460
 * 3), and the submitter's DKIM key record SELECTOR._domainkey.SUBMITTER (RFC 6376
 * 3.6.1) whenever the scenario has a tlsrpt section. */
static int world_tlsrpt_zone(sts_world *w, sts_served *s, char *err, size_t errlen)
{
    const sts_scn_tlsrpt *t = s->tlsrpt;
    char owner[600];
    int rc = 0;
    if (w->dkim_txt) {
        snprintf(owner, sizeof(owner), "%s._domainkey.%s", w->selector, w->submitter);
        sts_buf b;
        sts_buf_init(&b, 0);
        rc = txt_line(&b, owner, w->dkim_txt);
        if (!rc && sts_dns_zone_add_record(s->zone, w->submitter, b.data)) {
            sts_errf(err, errlen, "%s: cannot publish the DKIM key record %s", w->file, owner);
            rc = STS_EINVAL;
        }
        sts_buf_free(&b);
    }
    if (rc || !t || !t->present)
        return rc;
    snprintf(owner, sizeof(owner), "_smtp._tls.%s", w->domain);
    sts_buf rec;
    sts_buf_init(&rec, 0);
    if (!t->record_set) {
        rc = sts_buf_appendf(&rec, "v=TLSRPTv1; rua=");
        if (!rc && t->https_host)
            rc = sts_buf_appendf(&rec, "https://%s:%d%s", t->https_host, w->https_port,
                                 t->https_path);
        if (!rc && t->mailto)
            rc = sts_buf_appendf(&rec, "%smailto:%s", t->https_host ? "," : "", t->mailto);
    }
    for (size_t i = 0; !rc && i < (t->record_set ? t->record.n : 1); i++) {
        char *text = t->record_set ? sts_scenario_subst(t->record.v[i], w->mode) : NULL;
        sts_buf b;
        sts_buf_init(&b, 0);
        rc = t->record_set && !text ? STS_ENOMEM : txt_line(&b, owner, text ? text : rec.data);
        if (!rc && sts_dns_zone_add_record(s->zone, w->domain, b.data)) {
            sts_errf(err, errlen, "%s:%d: tlsrpt: cannot publish the record '%s'", w->file, t->line,
                     text ? text : rec.data);
            rc = STS_EINVAL;
        }
        free(text);
        sts_buf_free(&b);
    }
    sts_buf_free(&rec);
    return rc;
}

/* The zone s serves: its lines, an A record for every host with a listener, its
 * faults, SOA and NS. */
static int world_make_zone(sts_world *w, sts_served *s, char *err, size_t errlen)
{
    int rc = world_zone_lines(w, s->dns, s->dns_line, &s->zone, err, errlen);
    sts_dns_zone *z = s->zone;
    for (size_t i = 0; !rc && i < w->nhosts; i++)
        if (w->hosts[i].listen && sts_dns_zone_add_a(z, w->hosts[i].name, w->hosts[i].addr)) {
            sts_errf(err, errlen, "%s: the zone gives %s other data than the world's address",
                     w->file, w->hosts[i].name);
            rc = STS_EINVAL;
        }
    if (!rc)
        rc = world_tlsrpt_zone(w, s, err, errlen);
    for (size_t i = 0; !rc && !w->ndomains && i < s->nfaults; i++) {
        const sts_scn_dns_fault *f = &s->faults[i];
        rc = sts_dns_zone_add_fault(z, f->name, f->type, f->fault, f->delay, w->file, f->line, err,
                                    errlen);
    }
    /* A survey world: each fault once under each domain K. */
    for (unsigned k = 1; !rc && k <= w->ndomains; k++) {
        char *origin = survey_name(w, k, w->domain);
        rc = origin ? sts_dns_zone_set_origin(z, origin) : STS_ENOMEM;
        free(origin);
        for (size_t i = 0; !rc && i < s->nfaults; i++) {
            const sts_scn_dns_fault *f = &s->faults[i];
            char *name = survey_name(w, k, f->name);
            rc = name ? sts_dns_zone_add_fault(z, name, f->type, f->fault, f->delay, w->file,
                                               f->line, err, errlen)
                      : STS_ENOMEM;
            free(name);
        }
    }
    return rc ? rc : sts_dns_zone_finish(z);
}

/* The MX hosts and targets (of the zone text, a step's or the scenario's) in the
 * order an ordinary world takes them, filtered: with shared, those outside the
 * domain; else those under domain K, renamed. */
static int survey_add_targets(sts_world *w, const sts_dns_zone *z, int shared, unsigned k)
{
    char **targets = sts_dns_zone_mx_targets(z);
    if (!targets)
        return STS_ENOMEM;
    char *dk = survey_name(w, k, w->domain);
    int rc = dk ? 0 : STS_ENOMEM;
    world_host *h;
    for (size_t i = 0; targets[i]; i++) {
        size_t tl = strlen(targets[i]), kl = dk ? strlen(dk) : 0;
        int mine = shared ? !in_domain(w, targets[i], tl)
                          : tl >= kl && !strcasecmp(targets[i] + tl - kl, dk) &&
                                (tl == kl || targets[i][tl - kl - 1] == '.');
        if (!rc && mine && !world_find_host(w, targets[i]))
            rc = world_add_host_in(w, targets[i], targets[i], shared ? 0 : k, HOST_MX, NULL, &h);
        free(targets[i]);
    }
    free(targets);
    free(dk);
    return rc;
}

/* A scenario MX host (settings mx; NULL: named by a step) for domain K, or shared
 * (k 0) when it lies outside the domain: each is added in its own pass. */
static int survey_add_mx(sts_world *w, const char *host, const sts_scn_mx *mx, unsigned k)
{
    world_host *h;
    int outside = !in_domain(w, host, strlen(host));
    if (outside != !k)
        return 0;
    char *name = survey_name(w, k, host);
    int rc = !name                      ? STS_ENOMEM
             : world_find_host(w, name) ? 0
                                        : world_add_host_in(w, name, host, k, HOST_MX, mx, &h);
    free(name);
    return rc;
}

/* A survey world's hosts: the shared ones (outside the domain), then for each
 * domain K in turn its MX hosts, its policy host and its MX targets, each domain's
 * in the same order. */
static int world_gather_survey(sts_world *w, const sts_scenario *scn, const sts_dns_zone *written,
                               char *err, size_t errlen)
{
    int rc = 0;
    for (unsigned k = 0; !rc && k <= w->ndomains; k++) {
        for (size_t i = 0; !rc && i < scn->nmx; i++)
            rc = survey_add_mx(w, scn->mx[i].host, &scn->mx[i], k);
        if (!rc && k) {
            char policy_name[300];
            snprintf(policy_name, sizeof(policy_name), "mta-sts.d%u.%s", k, w->domain);
            size_t before = w->nhosts;
            char base[300];
            snprintf(base, sizeof(base), "mta-sts.%s", w->domain);
            world_host *h;
            rc = world_add_host_in(w, policy_name, base, k, HOST_POLICY, NULL, &h);
            if (!rc && w->nhosts == before) {
                sts_errf(err, errlen, "%s: %s is the policy host and cannot also be an MX",
                         scn->file ? scn->file : "scenario", policy_name);
                return STS_EINVAL;
            }
        }
        if (!rc)
            rc = survey_add_targets(w, written, !k, k);
        for (size_t s = 0; !rc && s < scn->nsteps; s++) {
            const sts_scn_step *st = &scn->steps[s];
            for (size_t i = 0; !rc && i < st->nmx; i++)
                rc = survey_add_mx(w, st->mx[i].host, NULL, k);
            if (rc || !st->dns)
                continue;
            sts_dns_zone *z = NULL;
            rc = world_zone_lines(w, st->dns, st->dns_line, &z, err, errlen);
            if (!rc)
                rc = survey_add_targets(w, z, !k, k);
            sts_dns_zone_free(z);
        }
    }
    return rc;
}

/* An ordinary world's hosts in order: the scenario's MX hosts, the policy host, then
 * MX targets of the zone that have no address of their own (and those steps name). */
static int world_gather(sts_world *w, const sts_scenario *scn, const sts_dns_zone *written,
                        char *err, size_t errlen)
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
    int rc = world_add_targets(w, written);
    /* The TLSRPT collectors of every tlsrpt section, the steps' too. */
    for (size_t k = 0; !rc && k <= scn->nsteps; k++) {
        const sts_scn_tlsrpt *t = k ? &scn->steps[k - 1].tlsrpt : &scn->tlsrpt;
        if (!t->present || !t->https_host)
            continue;
        world_host *c = world_find_host(w, t->https_host);
        if (c && c->kind != HOST_COLLECTOR) {
            sts_errf(err, errlen, "%s:%d: tlsrpt https host %s is also %s",
                     scn->file ? scn->file : "scenario", t->line, t->https_host,
                     c->kind == HOST_POLICY ? "the policy host" : "an MX host");
            return STS_EINVAL;
        }
        if (!c)
            rc = world_add_host(w, t->https_host, HOST_COLLECTOR, NULL, &h);
    }
    /* Hosts a later step names get their listeners now: listeners are never added
     * while the world runs. */
    for (size_t k = 0; !rc && k < scn->nsteps; k++) {
        const sts_scn_step *st = &scn->steps[k];
        for (size_t i = 0; !rc && i < st->nmx; i++) {
            const world_host *o = world_find_host(w, st->mx[i].host);
            if (o && o->kind == HOST_COLLECTOR) {
                sts_errf(err, errlen, "%s:%d: %s is a tlsrpt https host, not an MX",
                         scn->file ? scn->file : "scenario", st->mx[i].line, st->mx[i].host);
                return STS_EINVAL;
            }
            if (!o)
                rc = world_add_host(w, st->mx[i].host, HOST_MX, NULL, &h);
        }
        if (rc || !st->dns)
            continue;
        sts_dns_zone *z = NULL;
        rc = world_zone_lines(w, st->dns, st->dns_line, &z, err, errlen);
        if (!rc)
            rc = world_add_targets(w, z);
        sts_dns_zone_free(z);
    }
    return rc;
}

/* Collect the hosts (world_gather, world_gather_survey). A host whose name already
 * has A/AAAA/CNAME records in the zone is served as written: no listener. */
static int world_collect_hosts(sts_world *w, const sts_scenario *scn, const sts_dns_zone *written,
                               char *err, size_t errlen)
{
    world_host *h;
    int rc = w->ndomains ? world_gather_survey(w, scn, written, err, errlen)
                         : world_gather(w, scn, written, err, errlen);
    if (rc)
        return rc;
    size_t n = 0;
    for (size_t i = 0; i < w->nhosts; i++) {
        h = &w->hosts[i];
        if (h->kind == HOST_POLICY && !w->policy)
            w->policy = h;
        h->listen = !sts_dns_zone_has_address(written, h->name);
        if (!h->listen)
            sts_info(w->log, "host %s: the zone gives its address; no listener", h->name);
        else
            n++;
        if (h->listen && w->ndomains && !h->dom)
            w->shared++;
    }
    if (w->ndomains)
        w->stride = (n - w->shared) / w->ndomains;
    if (n > WORLD_LAST_HOST - WORLD_FIRST_HOST + 1) {
        if (w->ndomains)
            sts_errf(err, errlen,
                     "%s: too many hosts (%zu) for one address block: %zu per domain and %zu "
                     "shared allow at most %zu domains",
                     scn->file ? scn->file : "scenario", n, w->stride, w->shared,
                     (WORLD_LAST_HOST - WORLD_FIRST_HOST + 1 - w->shared) /
                         (w->stride ? w->stride : 1));
        else
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

/* What to mint for host at now from the scenario's cert c (names: the host's own
 * name when c gives none). */
static void world_cert_spec(const sts_world *w, time_t now, const sts_scn_cert *c,
                            const char *const *host, sts_cert_spec *spec)
{
    memset(spec, 0, sizeof(*spec));
    spec->names = c->names_set ? (const char *const *)c->names.v : host;
    spec->nnames = c->names_set ? c->names.n : 1;
    spec->cn = c->cn;
    spec->no_san = c->no_san;
    spec->self_signed = c->self_signed;
    spec->key_type = c->rsa ? STS_KEY_RSA_2048 : STS_KEY_EC_P256;
    if (c->expired) {
        spec->not_before = now - 60 * DAY;
        spec->not_after = now - DAY;
    } else if (c->not_yet_valid) {
        spec->not_before = now + DAY;
        spec->not_after = now + 90 * DAY;
    } else {
        /* Valid both at the virtual now (a sender given --now) and at the moment the
         * world started (peers on the wall clock), however far steps moved the clock. */
        spec->not_before = (w->start < now ? w->start : now) - DAY;
        spec->not_after = (w->start > now ? w->start : now) + 90 * DAY;
    }
}

/* The CA that signs c (world_make_cas made every one the scenario asks for). */
static sts_ca *world_cert_ca(const sts_world *w, const sts_scn_cert *c)
{
    if (c->unknown_ca)
        return w->ca_unknown;
    return c->chain != STS_SCN_CHAIN_DIRECT ? w->ca_inter : w->ca;
}

/* spec's names and CN as survey domain K has them (new strings in *names, *cn; the
 * names array freed with survey_names_free). 0 or STS_ENOMEM. */
static int survey_spec(const sts_world *w, unsigned k, sts_cert_spec *spec, char ***names,
                       char **cn)
{
    *names = calloc(spec->nnames + 1, sizeof(**names));
    if (!*names)
        return STS_ENOMEM;
    for (size_t i = 0; i < spec->nnames; i++)
        if (!((*names)[i] = survey_name(w, k, spec->names[i])))
            return STS_ENOMEM;
    if (spec->cn && !(*cn = survey_name(w, k, spec->cn)))
        return STS_ENOMEM;
    spec->names = (const char *const *)*names;
    spec->cn = *cn;
    return 0;
}

static void survey_names_free(char **names)
{
    for (size_t i = 0; names && names[i]; i++)
        free(names[i]);
    free(names);
}

/* A server context for host (of survey domain dom, or 0) with the certificate c asks
 * for, minted at now, and the TLS versions tls allows. */
static int world_mint_ctx(const sts_world *w, time_t now, const sts_scn_cert *c,
                          const sts_scn_tls_versions *tls, const char *host, unsigned dom,
                          SSL_CTX **out, char *err, size_t errlen)
{
    sts_cert_spec spec;
    world_cert_spec(w, now, c, &host, &spec);
    char **names = NULL, *cn = NULL;
    int rc = dom && c->names_set ? survey_spec(w, dom, &spec, &names, &cn) : 0;
    if (!rc && dom && !c->names_set && c->cn && !(cn = survey_name(w, dom, c->cn)))
        rc = STS_ENOMEM;
    if (!rc && cn)
        spec.cn = cn;
    sts_ca *ca = world_cert_ca(w, c);
    X509 *cert = NULL;
    EVP_PKEY *key = NULL;
    if (!rc)
        rc = ca ? sts_ca_mint(ca, &spec, now, &cert, &key) : STS_ESTATE;
    survey_names_free(names);
    free(cn);
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

/* The certificate (server context) of host i as s configures it; *out NULL for an
 * MX without STARTTLS. */
static int world_host_ctx(const sts_world *w, const sts_served *s, size_t i, SSL_CTX **out,
                          char *err, size_t errlen)
{
    static const sts_scn_cert plain; /* defaults: the host's own name, valid */
    static const sts_scn_tls_versions any;
    const world_host *h = &w->hosts[i];
    const sts_scn_mx *mx = s->hosts[i].mx;
    *out = NULL;
    if (h->kind == HOST_POLICY)
        return world_mint_ctx(w, s->now, &s->policy->cert, &s->policy->tls, h->name, h->dom, out,
                              err, errlen);
    if (h->kind == HOST_COLLECTOR) {
        const sts_scn_tlsrpt *t = s->tlsrpt;
        int mine = t && t->present && t->https_host && !strcasecmp(t->https_host, h->name);
        return world_mint_ctx(w, s->now, mine ? &t->https_cert : &plain, &any, h->name, 0, out, err,
                              errlen);
    }
    if (mx && !mx->starttls)
        return 0;
    return world_mint_ctx(w, s->now, mx ? &mx->cert : &plain, mx ? &mx->tls : &any, h->name, h->dom,
                          out, err, errlen);
}

/* Note which CAs besides the root certificate c needs. */
static void world_cert_cas(const sts_scn_cert *c, int *unknown, int *inter)
{
    if (c->unknown_ca)
        *unknown = 1;
    else if (c->chain != STS_SCN_CHAIN_DIRECT)
        *inter = 1;
}

/* The world's CAs, made once at the start: the root, and the unknown CA and the
 * intermediate when a certificate of the scenario or of any of its steps needs
 * them, so that building what a step serves never changes the world itself. */
static int world_make_cas(sts_world *w, const sts_scenario *scn, char *err, size_t errlen)
{
    int unknown = 0, inter = 0;
    world_cert_cas(&scn->policy.cert, &unknown, &inter);
    for (size_t i = 0; i < scn->nmx; i++)
        world_cert_cas(&scn->mx[i].cert, &unknown, &inter);
    world_cert_cas(&scn->tlsrpt.https_cert, &unknown, &inter);
    for (size_t k = 0; k < scn->nsteps; k++) {
        const sts_scn_step *st = &scn->steps[k];
        world_cert_cas(&st->tlsrpt.https_cert, &unknown, &inter);
        if (st->policy_set)
            world_cert_cas(&st->policy.cert, &unknown, &inter);
        for (size_t i = 0; i < st->nmx; i++)
            world_cert_cas(&st->mx[i].cert, &unknown, &inter);
    }
    if (!(w->ca = sts_ca_new("ststest world CA", w->start, err, errlen)) ||
        (unknown && !(w->ca_unknown = sts_ca_new("ststest unknown CA", w->start, err, errlen))) ||
        (inter && !(w->ca_inter = sts_ca_new_intermediate(w->ca, "ststest world intermediate CA",
                                                          w->start, err, errlen))))
        return STS_ETLS;
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
        sts_errf(err, errlen,
                 "%s: policy 'size' %ld is below the policy itself plus one pad line "
                 "(%zu octets)",
                 file, size, b->len + min);
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

/* The body of the policy s serves (new string in *out, its length). */
static int world_policy_body(const sts_world *w, const sts_served *s, unsigned k, char **out,
                             size_t *len, char *err, size_t errlen)
{
    const sts_scn_policy *p = s->policy;
    *out = NULL;
    if (!p->present) {
        *out = strdup("");
        *len = 0;
        return *out ? 0 : STS_ENOMEM;
    }
    if (p->body || (p->redirect && !p->mode)) {
        *out = sts_scenario_subst(p->body ? p->body : "", w->mode);
        if (*out && k) {
            /* survey domain K: its names in the verbatim policy */
            char *t = survey_text(w, k, *out);
            free(*out);
            *out = t;
        }
        *len = *out ? strlen(*out) : 0;
        return *out ? 0 : STS_ENOMEM;
    }
    /* RFC 8461 3.2: the policy as key/value lines, CRLF-terminated. */
    char *mode = sts_scenario_subst(p->mode ? p->mode : "${mode}", w->mode);
    sts_buf b;
    sts_buf_init(&b, 0);
    int rc = mode ? sts_buf_appendf(&b, "version: STSv1\r\nmode: %s\r\n", mode) : STS_ENOMEM;
    for (size_t i = 0; rc == 0 && i < p->mx.n; i++) {
        char *mx = survey_name(w, k, p->mx.v[i]);
        rc = mx ? sts_buf_appendf(&b, "mx: %s\r\n", mx) : STS_ENOMEM;
        free(mx);
    }
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

/* The policy s serves: its content type and body, and those of a survey world's
 * other domains (s->more). */
static int world_make_policy(const sts_world *w, sts_served *s, char *err, size_t errlen)
{
    const sts_scn_policy *p = s->policy;
    s->policy_ctype = strdup(p->content_type ? p->content_type : "text/plain");
    if (!s->policy_ctype)
        return STS_ENOMEM;
    int rc =
        world_policy_body(w, s, w->ndomains ? 1 : 0, &s->policy_body, &s->policy_len, err, errlen);
    if (rc || w->ndomains < 2)
        return rc;
    if (!(s->more = calloc(w->ndomains - 1, sizeof(*s->more))))
        return STS_ENOMEM;
    s->nmore = w->ndomains - 1;
    for (unsigned k = 2; !rc && k <= w->ndomains; k++)
        rc = world_policy_body(w, s, k, &s->more[k - 2].body, &s->more[k - 2].len, err, errlen);
    return rc;
}

/* The policy server's part of s for one scheme (ctx NULL: plain HTTP) at the policy
 * host named name, serving body. */
static sts_httpsrv_conf world_policy_conf(const sts_served *s, const char *scheme, SSL_CTX *ctx,
                                          const char *name, const char *body, size_t len)
{
    const sts_scn_policy *p = s->policy;
    sts_httpsrv_conf c = {
        .scheme = scheme,
        .ctx = ctx,
        .present = p->present,
        .status = p->status ? p->status : 200,
        .content_type = s->policy_ctype,
        .body = body,
        .body_len = len,
        .name = name,
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
        .keep_alive = p->keep_alive,
    };
    return c;
}

/* Both listeners' parts of every policy host of s (one; a survey world's: one per
 * domain, in domain order). */
static void world_policy_confs(const sts_world *w, sts_served *s)
{
    size_t slot = 0;
    for (size_t i = 0; i < w->nhosts; i++) {
        const world_host *h = &w->hosts[i];
        if (h->kind != HOST_POLICY)
            continue;
        SSL_CTX *ctx = s->hosts[i].ctx;
        if (!slot) {
            s->https = world_policy_conf(s, "https", ctx, h->name, s->policy_body, s->policy_len);
            s->http = world_policy_conf(s, "http", NULL, h->name, s->policy_body, s->policy_len);
        } else if (slot <= s->nmore) {
            sts_served_policy *m = &s->more[slot - 1];
            m->https = world_policy_conf(s, "https", ctx, h->name, m->body, m->len);
            m->http = world_policy_conf(s, "http", NULL, h->name, m->body, m->len);
        }
        slot++;
    }
}

/* MX host h's part of a served state from its entry sh (scenario settings: the
 * defaults without). */
static sts_mxsrv_conf world_mx_conf(const world_host *h, const sts_served_host *sh)
{
    const sts_scn_mx *m = sh->mx;
    sts_mxsrv_conf c = {
        .host = h->name,
        .address = h->addr,
        .starttls = m ? m->starttls : 1,
        .require_tls = m ? m->require_tls : 0,
        .ctx = sh->ctx,
    };
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

/* ---- what is served: gather, build, swap ---- */

/* Gather, at the start: the scenario's own choices, at the world's first clock. */
static void world_select_start(const sts_world *w, const sts_scenario *scn, sts_served *s)
{
    s->now = w->start;
    s->dns = scn->dns;
    s->dns_line = scn->dns_line;
    s->faults = scn->dns_faults;
    s->nfaults = scn->ndns_faults;
    s->policy = &scn->policy;
    s->tlsrpt = &scn->tlsrpt;
    for (size_t i = 0; i < w->nhosts; i++)
        s->hosts[i].mx = w->hosts[i].mx;
}

/* Gather, for a step: a new state (*out) with prev's choices at now (0: prev's
 * clock), and what the step names on top of them (it replaces those). */
static int world_select_step(const sts_world *w, const sts_served *prev, const sts_scn_step *st,
                             time_t now, sts_served **out, char *err, size_t errlen)
{
    sts_served *s = *out = sts_served_new(w->nhosts, w->log);
    if (!s)
        return STS_ENOMEM;
    s->gen = prev->gen + 1;
    s->now = now ? now : prev->now;
    s->dns = st->dns ? st->dns : prev->dns;
    s->dns_line = st->dns ? st->dns_line : prev->dns_line;
    s->faults = st->dns_faults_set ? st->dns_faults : prev->faults;
    s->nfaults = st->dns_faults_set ? st->ndns_faults : prev->nfaults;
    s->policy = st->policy_set ? &st->policy : prev->policy;
    s->tlsrpt = st->tlsrpt_set ? &st->tlsrpt : prev->tlsrpt;
    for (size_t i = 0; i < w->nhosts; i++)
        s->hosts[i].mx = prev->hosts[i].mx;
    for (size_t i = 0; i < st->nmx; i++) {
        /* the host of that name (a survey world: of that name in every domain) */
        size_t found = 0;
        for (size_t k = 0; k < w->nhosts; k++) {
            const world_host *h = &w->hosts[k];
            if (strcasecmp(h->base, st->mx[i].host) || h->kind != HOST_MX || !h->listen)
                continue;
            s->hosts[k].mx = &st->mx[i];
            found++;
        }
        if (!found) {
            sts_errf(err, errlen, "%s:%d: step '%s': %s is not an MX host the world serves",
                     w->file, st->mx[i].line, st->name, st->mx[i].host);
            return STS_EINVAL;
        }
    }
    return 0;
}

/* Whether host i needs a certificate minted for s rather than prev's: always at
 * the start and when the clock moved, else when its configuration changed. */
static int world_mints(const sts_world *w, const sts_served *prev, const sts_served *s, size_t i)
{
    if (!prev || prev->now != s->now)
        return 1;
    if (w->hosts[i].kind == HOST_POLICY)
        return prev->policy != s->policy;
    if (w->hosts[i].kind == HOST_COLLECTOR)
        return prev->tlsrpt != s->tlsrpt;
    return prev->hosts[i].mx != s->hosts[i].mx;
}

/* Build every listening host's certificate for s: minted anew or shared with prev. */
static int world_make_ctxs(const sts_world *w, const sts_served *prev, sts_served *s, char *err,
                           size_t errlen)
{
    for (size_t i = 0; i < w->nhosts; i++) {
        sts_served_host *sh = &s->hosts[i];
        if (!w->hosts[i].listen)
            continue;
        if (world_mints(w, prev, s, i)) {
            int rc = world_host_ctx(w, s, i, &sh->ctx, err, errlen);
            if (rc)
                return rc;
        } else if ((sh->ctx = prev->hosts[i].ctx)) {
            SSL_CTX_up_ref(sh->ctx);
        }
    }
    return 0;
}

/* Build everything s serves from its choices (prev: the state it follows, or NULL).
 * On failure s holds what was built so far; freeing it frees that too. */
static int world_build_served(sts_world *w, const sts_served *prev, sts_served *s, char *err,
                              size_t errlen)
{
    int rc = world_make_zone(w, s, err, errlen);
    if (!rc)
        rc = world_make_ctxs(w, prev, s, err, errlen);
    if (!rc)
        rc = world_make_policy(w, s, err, errlen);
    if (rc)
        return rc;
    const sts_scn_tlsrpt *t = s->tlsrpt;
    for (size_t i = 0; i < w->nhosts; i++) {
        if (w->hosts[i].kind == HOST_MX) {
            s->hosts[i].mx_conf = world_mx_conf(&w->hosts[i], &s->hosts[i]);
            s->hosts[i].mx_conf.tlsrpt_rcpt = t && t->present ? t->mailto : NULL;
        } else if (w->hosts[i].kind == HOST_COLLECTOR) {
            sts_collector_conf *c = &s->hosts[i].col_conf;
            c->name = w->hosts[i].name;
            c->ctx = s->hosts[i].ctx;
            c->present =
                t && t->present && t->https_host && !strcasecmp(t->https_host, w->hosts[i].name);
            c->path = c->present ? t->https_path : "/";
            c->fault = c->present ? t->https_fault : 0;
        }
    }
    world_policy_confs(w, s);
    return 0;
}

/* What the world serves first (w->served), once its hosts have addresses. */
static int world_build_start(sts_world *w, const sts_scenario *scn, char *err, size_t errlen)
{
    sts_served *s = sts_served_new(w->nhosts, w->log);
    if (!s)
        return STS_ENOMEM;
    world_select_start(w, scn, s);
    int rc = world_build_served(w, NULL, s, err, errlen);
    if (rc) {
        sts_served_unref(s);
        return rc;
    }
    w->served = s;
    return 0;
}

/* What step st serves at now, built completely on top of what is served now; the
 * world itself is not touched. */
static int world_build_step(sts_world *w, const sts_scn_step *st, time_t now, sts_served **out,
                            char *err, size_t errlen)
{
    sts_served *s = NULL;
    int rc = world_select_step(w, w->served, st, now, &s, err, errlen);
    if (!rc)
        rc = world_build_served(w, w->served, s, err, errlen);
    if (rc) {
        sts_served_unref(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* Serve next from now on: one pointer, read by every server when a connection comes
 * (the world takes over next's reference). The old state lives on in the
 * connections that hold it, and is freed with the last of them. */
static void world_swap(sts_world *w, sts_served *next)
{
    sts_served *old = w->served;
    w->served = next;
    sts_served_unref(old);
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
        int ports[2] = {h->kind == HOST_MX ? w->smtp_port : w->https_port,
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
        if (rc == 0) {
            /* The clashes stepped over are no error: the runner takes any message
             * left in err as the case's error. */
            if (errlen)
                err[0] = '\0';
            return 0;
        }
        world_close_fds(w);
        if (rc != -EADDRINUSE)
            return STS_EIO;
        sts_debug(w->log, "block %s busy (%s), trying the next", w->block, err);
    }
    sts_errf(err, errlen, "no free address block after %d tries (last: %s)", WORLD_BLOCK_TRIES,
             err);
    return STS_EIO;
}

/* ---- start ---- */

static int world_start_servers(sts_world *w)
{
    int rc =
        sts_dnssrv_start(w->loop, &w->served, w->dns_fd[0], w->dns_fd[1], w->obs, w->log, &w->dns);
    w->dns_fd[0] = w->dns_fd[1] = -1;
    if (rc)
        return rc;
    w->pending++;
    for (size_t i = 0; i < w->nhosts; i++) {
        world_host *h = &w->hosts[i];
        if (!h->listen)
            continue;
        if (h->kind == HOST_POLICY) {
            size_t slot = h->dom ? h->dom - 1 : 0;
            rc = sts_httpsrv_start(w->loop, h->fd[0], &w->served, 1, slot, w->obs, w->log,
                                   &h->https);
            h->fd[0] = -1;
            if (rc)
                return rc;
            w->pending++;
            rc =
                sts_httpsrv_start(w->loop, h->fd[1], &w->served, 0, slot, w->obs, w->log, &h->http);
            h->fd[1] = -1;
            if (rc)
                return rc;
            w->pending++;
        } else if (h->kind == HOST_COLLECTOR) {
            rc = sts_collector_start(w->loop, h->fd[0], &w->served, i, w->obs, w->log,
                                     &h->collector);
            h->fd[0] = -1;
            if (rc)
                return rc;
            w->pending++;
        } else {
            rc = sts_mxsrv_start(w->loop, h->fd[0], &w->served, i, w->obs, w->log, &h->mxsrv);
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

/* The submitter's throw-away DKIM key (RFC 6376 3.3.3: RSA, 2048 bits here): the
 * private key written as PEM (PKCS #1, "RSA PRIVATE KEY", which every signer reads)
 * to dkim.pem in the world's directory, the public key as the key record's data
 * "v=DKIM1; k=rsa; p=<base64 SubjectPublicKeyInfo>" (RFC 6376 3.6.1). */
static int world_make_dkim(sts_world *w, const sts_scenario *scn, char *err, size_t errlen)
{
    if (!scn->tlsrpt_any)
        return 0;
    if (w->ndomains) {
        sts_errf(err, errlen, "%s: a survey world (--domains) has no tlsrpt side", w->file);
        return STS_EINVAL;
    }
    w->submitter = scn->tlsrpt_submitter ? scn->tlsrpt_submitter : STS_SCN_TLSRPT_SUBMITTER;
    w->selector = scn->tlsrpt_selector ? scn->tlsrpt_selector : STS_SCN_TLSRPT_SELECTOR;
    EVP_PKEY *key = EVP_RSA_gen(2048);
    unsigned char *der = NULL;
    int dlen = key ? i2d_PUBKEY(key, &der) : -1;
    int rc = dlen > 0 ? 0 : STS_ETLS;
    if (!rc) {
        size_t b64 = 4 * (((size_t)dlen + 2) / 3);
        size_t cap = b64 + 64;
        if (!(w->dkim_txt = malloc(cap)))
            rc = STS_ENOMEM;
        else {
            int off = snprintf(w->dkim_txt, cap, "v=DKIM1; k=rsa; p=");
            EVP_EncodeBlock((unsigned char *)w->dkim_txt + off, der, dlen);
        }
    }
    snprintf(w->dkim_file, sizeof(w->dkim_file), "%s/dkim.pem", w->dir);
    BIO *f = rc ? NULL : BIO_new_file(w->dkim_file, "w");
    if (!rc && (!f || !PEM_write_bio_PrivateKey_traditional(f, key, NULL, NULL, 0, NULL, NULL)))
        rc = STS_EIO;
    if (f && BIO_free(f) != 1)
        rc = STS_EIO;
    OPENSSL_free(der);
    EVP_PKEY_free(key);
    if (rc) {
        sts_errf(err, errlen, "cannot make the DKIM key %s: %s", w->dkim_file, sts_strerror(rc));
        if (rc == STS_EIO)
            unlink(w->dkim_file);
        w->dkim_file[0] = '\0';
    }
    return rc;
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
    /* The zone as written decides which hosts there are; the served zone (with the
     * hosts' addresses) is built once the addresses are known. */
    sts_dns_zone *written = NULL;
    int rc = world_zone_lines(w, scn->dns, scn->dns_line, &written, err, errlen);
    if (!rc)
        rc = world_collect_hosts(w, scn, written, err, errlen);
    sts_dns_zone_free(written);
    if (!rc)
        rc = world_make_cas(w, scn, err, errlen);
    if (!rc)
        rc = world_make_dir(w, opts->dir, err, errlen);
    if (!rc)
        rc = world_make_dkim(w, scn, err, errlen);
    if (!rc)
        rc = world_bind_block(w, opts->block, err, errlen);
    if (!rc)
        rc = world_build_start(w, scn, err, errlen);
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
    w->start = opts->now ? opts->now : time(NULL);
    w->mode = strdup(opts->mode ? opts->mode : sts_mode_name(STS_MODE_ENFORCE));
    w->ndomains = opts->domains;
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
                     w->hosts[i].kind == HOST_POLICY      ? "policy"
                     : w->hosts[i].kind == HOST_COLLECTOR ? "tlsrpt collector"
                                                          : "mx");
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
    sts_served *next = NULL;
    int rc = world_build_step(w, st, now, &next, err, errlen);
    if (rc) {
        /* Nothing was swapped: the world serves what it served before. */
        if (err && errlen && !err[0])
            sts_errf(err, errlen, "cannot apply step '%s': %s", st->name, sts_strerror(rc));
        return rc;
    }
    world_swap(w, next);
    sts_info(w->log, "world %s: step %zu '%s' applied (now %lld)", w->domain, step + 1, st->name,
             (long long)next->now);
    return 0;
}

sts_served *sts_world_served(const sts_world *w)
{
    return w->served;
}

/* ---- JSON ---- */

json_t *sts_world_ready(const sts_world *w)
{
    /* A survey world lists its shared hosts and those of d1 only (see "domains"). */
    json_t *hosts = json_object();
    for (size_t i = 0; hosts && i < w->nhosts; i++)
        if (w->hosts[i].listen && w->hosts[i].dom <= 1 &&
            json_object_set_new(hosts, w->hosts[i].name, json_string(w->hosts[i].addr))) {
            json_decref(hosts);
            hosts = NULL;
        }
    if (!hosts)
        return NULL;
    char dns[64];
    snprintf(dns, sizeof(dns), "%s.%d:%d", w->block, WORLD_DNS_HOST, w->dns_port);
    json_t *ready =
        json_pack("{s:s,s:s,s:s,s:s,s:i,s:i,s:i,s:o,s:s,s:s,s:b}", "event", "ready", "domain",
                  w->domain, "dns", dns, "ca_file", w->ca_file, "smtp_port", w->smtp_port,
                  "https_port", w->https_port, "http_port", w->http_port, "hosts", hosts, "block",
                  w->block, "mode", w->mode, "policy", w->served->https.present);
    if (ready && w->dkim_txt &&
        json_object_set_new(ready, "tlsrpt",
                            json_pack("{s:s,s:s,s:s}", "submitter", w->submitter, "selector",
                                      w->selector, "dkim_key", w->dkim_file))) {
        json_decref(ready);
        return NULL;
    }
    if (ready && w->ndomains) {
        /* d1 .. dN: host X.dK.<domain> listens at X.d1's address + (K - 1) * stride */
        char first[300], last[300];
        snprintf(first, sizeof(first), "d1.%s", w->domain);
        snprintf(last, sizeof(last), "d%u.%s", w->ndomains, w->domain);
        if (json_object_set_new(ready, "domains",
                                json_pack("{s:i,s:s,s:s,s:I}", "count", (int)w->ndomains, "first",
                                          first, "last", last, "stride", (json_int_t)w->stride))) {
            json_decref(ready);
            return NULL;
        }
    }
    return ready;
}

/* "dns_drops": every query the world lost (the kernel's drops on the DNS socket and
 * the server's own), with how it was measured. A lost query makes a sender's run
 * depend on its retries, so the runner takes any drop as an error of the world. */
static int world_observed_drops(const sts_world *w, json_t *o)
{
    sts_dnssrv_drops d = w->dns_drops;
    int rc = w->dns_drops_rc;
    if (w->dns && !w->stopping)
        rc = sts_dnssrv_get_drops(w->dns, &d);
    else if (!w->dns)
        return 0;
    return json_object_set_new(o, "dns_drops", json_integer((json_int_t)(d.kernel + d.server))) |
           json_object_set_new(o, "dns_drops_kernel", json_integer((json_int_t)d.kernel)) |
           json_object_set_new(o, "dns_drops_server", json_integer((json_int_t)d.server)) |
           json_object_set_new(o, "dns_rcvbuf", json_integer(d.rcvbuf)) |
           json_object_set_new(o, "dns_drops_measured",
                               json_string(rc == 0 ? "proc_net_udp" : "server_only"));
}

json_t *sts_world_observed(const sts_world *w)
{
    json_t *o = sts_observer_snapshot(w->obs);
    if (o &&
        (json_object_set_new(o, "event", json_string("observed")) || world_observed_drops(w, o))) {
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
    if (w->dns) {
        w->dns_drops_rc = sts_dnssrv_get_drops(w->dns, &w->dns_drops);
        sts_dnssrv_stop(w->dns, world_server_done, w);
    }
    for (size_t i = 0; i < w->nhosts; i++) {
        if (w->hosts[i].https)
            sts_httpsrv_stop(w->hosts[i].https, world_server_done, w);
        if (w->hosts[i].http)
            sts_httpsrv_stop(w->hosts[i].http, world_server_done, w);
    }
    for (size_t i = 0; i < w->nhosts; i++) {
        if (w->hosts[i].mxsrv)
            sts_mxsrv_stop(w->hosts[i].mxsrv, world_server_done, w);
        if (w->hosts[i].collector)
            sts_collector_stop(w->hosts[i].collector, world_server_done, w);
    }
}

void sts_world_free(sts_world *w)
{
    if (!w)
        return;
    /* Every connection is closed by now: the world's is the last reference. */
    sts_served_unref(w->served);
    for (size_t i = 0; i < w->nhosts; i++) {
        free(w->hosts[i].name);
        free(w->hosts[i].base);
    }
    free(w->hosts);
    sts_ca_free(w->ca);
    sts_ca_free(w->ca_unknown);
    sts_ca_free(w->ca_inter);
    sts_observer_free(w->obs);
    if (w->ca_file[0] && w->own_dir)
        unlink(w->ca_file);
    if (w->dkim_file[0] && w->own_dir)
        unlink(w->dkim_file);
    free(w->dkim_txt);
    if (w->own_dir)
        rmdir(w->dir);
    free(w->domain);
    free(w->mode);
    free(w);
}
