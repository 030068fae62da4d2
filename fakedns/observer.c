/*
 * observer.c - the world's observer log (see observer.h): DNS queries as compact
 * records (names interned in an arena) and two JSON arrays, behind one mutex. Functions return 0 or
 * STS_ENOMEM; snapshot returns a new reference or NULL on ENOMEM.
 */
#include "fakedns/observer.h"
#include "common/buf.h"
#include "common/err.h"
#include "common/scenario.h"
#include "fakedns/dnszone.h"

#include <ctype.h>
#include <ldns/ldns.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One DNS query: 12 octets instead of a ~900-octet JSON object. */
typedef struct dns_rec {
    uint32_t name; /* index into names; NO_NAME = the question was not parsed */
    uint16_t type; /* qtype; meaningful when flags & REC_TYPE */
    uint8_t flags; /* REC_TCP, REC_TYPE */
    int8_t rcode;  /* 0..16, -1 = no answer sent */
    int8_t fault;  /* STS_SCN_DNS_* or -1 */
} dns_rec;

#define NO_NAME UINT32_MAX
#define REC_TCP 1
#define REC_TYPE 2

/* An interned lower-case wire name: its octets live in the arena at off. */
typedef struct dns_name {
    uint32_t off;
    uint32_t hash;
    uint8_t len;
} dns_name;

struct sts_observer {
    pthread_mutex_t mu;
    dns_rec *recs;
    size_t nrecs, caprecs, maxrecs;
    uint64_t dropped;
    dns_name *names;
    size_t nnames, capnames;
    uint8_t *arena;
    size_t arena_len, arena_cap;
    uint32_t *slots; /* open addressing: name index + 1, 0 = empty; power of two */
    size_t nslots;
    json_t *fetches;
    json_t *conns; /* policy_connections */
    json_t *sessions;
    json_t *reports; /* tlsrpt_reports, at most STS_OBSERVER_TLSRPT_MAX */
    uint64_t reports_dropped;
};

sts_observer *sts_observer_new(void)
{
    sts_observer *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    pthread_mutex_init(&o->mu, NULL);
    o->maxrecs = STS_OBSERVER_DNS_MAX_DEFAULT;
    o->fetches = json_array();
    o->conns = json_array();
    o->sessions = json_array();
    o->reports = json_array();
    if (!o->fetches || !o->conns || !o->sessions || !o->reports) {
        sts_observer_free(o);
        return NULL;
    }
    return o;
}

void sts_observer_free(sts_observer *o)
{
    if (!o)
        return;
    free(o->recs);
    free(o->names);
    free(o->arena);
    free(o->slots);
    json_decref(o->fetches);
    json_decref(o->conns);
    json_decref(o->sessions);
    json_decref(o->reports);
    pthread_mutex_destroy(&o->mu);
    free(o);
}

size_t sts_observer_dns_max(sts_observer *o)
{
    pthread_mutex_lock(&o->mu);
    size_t max = o->maxrecs;
    pthread_mutex_unlock(&o->mu);
    return max;
}

void sts_observer_set_dns_max(sts_observer *o, size_t max)
{
    pthread_mutex_lock(&o->mu);
    o->maxrecs = max ? max : STS_OBSERVER_DNS_MAX_DEFAULT;
    pthread_mutex_unlock(&o->mu);
}

/* Append obj (reference taken) to arr under the lock. */
static int observer_append(sts_observer *o, json_t *arr, json_t *obj)
{
    if (!obj)
        return STS_ENOMEM;
    pthread_mutex_lock(&o->mu);
    int rc = json_array_append_new(arr, obj);
    pthread_mutex_unlock(&o->mu);
    return rc ? STS_ENOMEM : 0;
}

/* A JSON string, or null for NULL. Text from the network (a Host field, an SNI, an
 * SMTP verb or address) need not be UTF-8, which a JSON string must be: such text is
 * kept with every octet of 0x80 and above written as \xHH (json_string would refuse
 * it, and the record would be lost). */
static json_t *str_or_null(const char *s)
{
    if (!s)
        return json_null();
    json_t *j = json_string(s);
    if (j)
        return j;
    size_t n = strlen(s);
    char *e = malloc(4 * n + 1);
    if (!e)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x80)
            e[o++] = (char)c;
        else
            o += (size_t)snprintf(e + o, 5, "\\x%02X", c);
    }
    e[o] = '\0';
    j = json_string(e);
    free(e);
    return j;
}

/* Rebuild the hash slots at size n (a power of two). */
static int names_rehash(sts_observer *o, size_t n)
{
    uint32_t *slots = calloc(n, sizeof(*slots));
    if (!slots)
        return STS_ENOMEM;
    for (size_t i = 0; i < o->nnames; i++) {
        size_t k = o->names[i].hash & (n - 1);
        while (slots[k])
            k = (k + 1) & (n - 1);
        slots[k] = (uint32_t)i + 1;
    }
    free(o->slots);
    o->slots = slots;
    o->nslots = n;
    return 0;
}

/* The index of the lower-case wire name lc (len octets), added if new. Under the lock. */
static int names_intern(sts_observer *o, const uint8_t *lc, size_t len, uint32_t *idx)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ lc[i]) * 16777619u;
    if (o->nslots) {
        for (size_t k = h & (o->nslots - 1); o->slots[k]; k = (k + 1) & (o->nslots - 1)) {
            const dns_name *n = &o->names[o->slots[k] - 1];
            if (n->hash == h && n->len == len && !memcmp(o->arena + n->off, lc, len)) {
                *idx = o->slots[k] - 1;
                return 0;
            }
        }
    }
    if ((o->nnames + 1) * 2 > o->nslots && names_rehash(o, o->nslots ? o->nslots * 2 : 256))
        return STS_ENOMEM;
    if (sts_array_grow((void **)&o->names, &o->capnames, o->nnames + 1, sizeof(*o->names), 64) ||
        sts_array_grow((void **)&o->arena, &o->arena_cap, o->arena_len + len, 1, 64))
        return STS_ENOMEM;
    memcpy(o->arena + o->arena_len, lc, len);
    dns_name *n = &o->names[o->nnames];
    n->off = (uint32_t)o->arena_len;
    n->hash = h;
    n->len = (uint8_t)len;
    o->arena_len += len;
    size_t k = h & (o->nslots - 1);
    while (o->slots[k])
        k = (k + 1) & (o->nslots - 1);
    o->slots[k] = (uint32_t)o->nnames + 1;
    *idx = (uint32_t)o->nnames++;
    return 0;
}

/* Append one record; name is a lower-case wire name or NULL. */
static int observer_dns_add(sts_observer *o, const uint8_t *lc, size_t len, int has_type,
                            uint16_t type, int tcp, int rcode, int fault)
{
    int rc = 0;
    pthread_mutex_lock(&o->mu);
    if (o->nrecs >= o->maxrecs) {
        o->dropped++;
        rc = STS_ETOOBIG;
        goto out;
    }
    uint32_t idx = NO_NAME;
    if ((lc && names_intern(o, lc, len, &idx)) ||
        sts_array_grow((void **)&o->recs, &o->caprecs, o->nrecs + 1, sizeof(*o->recs), 64)) {
        rc = STS_ENOMEM;
        goto out;
    }
    dns_rec *r = &o->recs[o->nrecs++];
    r->name = idx;
    r->type = type;
    r->flags = (uint8_t)((tcp ? REC_TCP : 0) | (has_type ? REC_TYPE : 0));
    r->rcode = (int8_t)rcode;
    r->fault = (int8_t)fault;
out:
    pthread_mutex_unlock(&o->mu);
    return rc;
}

int sts_observer_dns_query(sts_observer *o, const uint8_t *qname, size_t qlen, uint16_t qtype,
                           int tcp, int rcode, int fault)
{
    uint8_t lc[255];
    if (qname) {
        if (qlen > sizeof(lc) || qlen == 0)
            return STS_EINVAL;
        /* RFC 4343: names compare case-insensitively; the log is lower case. */
        for (size_t i = 0; i < qlen; i++)
            lc[i] = (qname[i] >= 'A' && qname[i] <= 'Z') ? (uint8_t)(qname[i] + 32) : qname[i];
    }
    return observer_dns_add(o, qname ? lc : NULL, qlen, qname != NULL, qtype, tcp, rcode,
                            fault < 0 ? -1 : fault);
}

int sts_observer_dns(sts_observer *o, const char *name, const char *type, const char *transport,
                     const char *rcode)
{
    return sts_observer_dns_fault(o, name, type, transport, rcode, NULL);
}

int sts_observer_dns_fault(sts_observer *o, const char *name, const char *type,
                           const char *transport, const char *rcode, const char *fault)
{
    uint8_t wire[255];
    size_t n = 0;
    if (name) {
        /* Text to wire form: plain labels only (no escapes), as the server logs them. */
        const char *p = name;
        if (!strcmp(name, "."))
            p = "";
        while (*p) {
            size_t l = strcspn(p, ".");
            if (l == 0 || l > 63 || n + 1 + l + 1 > sizeof(wire) || memchr(p, '\\', l))
                return STS_EINVAL;
            wire[n++] = (uint8_t)l;
            for (size_t i = 0; i < l; i++)
                wire[n++] = (uint8_t)tolower((unsigned char)p[i]);
            p += l;
            if (*p == '.')
                p++;
        }
        wire[n++] = 0;
    }
    int has_type = strcmp(type, "-") != 0;
    uint16_t t = has_type ? (uint16_t)ldns_get_rr_type_by_name(type) : 0;
    if (has_type && t == 0)
        return STS_EINVAL;
    int rc = -1;
    if (strcmp(rcode, "none")) {
        for (rc = 0; rc <= STS_DNS_BADVERS && strcmp(sts_dns_rcode_name(rc), rcode); rc++)
            ;
        if (rc > STS_DNS_BADVERS)
            return STS_EINVAL;
    }
    int f = -1;
    if (fault) {
        for (f = 0; sts_scn_dns_fault_name(f) && strcmp(sts_scn_dns_fault_name(f), fault); f++)
            ;
        if (!sts_scn_dns_fault_name(f))
            return STS_EINVAL;
    }
    return observer_dns_add(o, name ? wire : NULL, n, has_type, t, !strcmp(transport, "tcp"), rc,
                            f);
}

/* The "dns" array from the records; names and types are shared JSON strings. Under
 * the lock. NULL on ENOMEM. */
static json_t *observer_dns_json(sts_observer *o)
{
    json_t *arr = json_array();
    json_t **jn = calloc(o->nnames + 1, sizeof(*jn));
    struct {
        uint16_t type;
        json_t *s;
    } types[32];
    size_t ntypes = 0;
    json_t *tr[2] = {json_string("udp"), json_string("tcp")};
    json_t *none = json_null(), *dash = json_string("-");
    int ok = arr && jn && tr[0] && tr[1] && dash;
    for (size_t i = 0; ok && i < o->nrecs; i++) {
        const dns_rec *r = &o->recs[i];
        json_t *name = none, *type = dash;
        if (r->name != NO_NAME) {
            if (!jn[r->name]) {
                char text[1024];
                const dns_name *n = &o->names[r->name];
                sts_dns_name_text(o->arena + n->off, n->len, text, sizeof(text));
                jn[r->name] = json_string(text);
            }
            name = jn[r->name];
        }
        json_t *own = NULL; /* a type string past the cache, released below */
        if (r->flags & REC_TYPE) {
            type = NULL;
            for (size_t k = 0; k < ntypes && !type; k++)
                if (types[k].type == r->type)
                    type = types[k].s;
            if (!type) {
                char t[24];
                sts_dns_type_text(r->type, t, sizeof(t));
                type = json_string(t);
                if (type && ntypes < sizeof(types) / sizeof(types[0])) {
                    types[ntypes].type = r->type;
                    types[ntypes++].s = type;
                } else {
                    own = type;
                }
            }
        }
        const char *fault = r->fault >= 0 ? sts_scn_dns_fault_name(r->fault) : NULL;
        json_t *q = name && type ? json_object() : NULL;
        ok = q && !json_object_set(q, "name", name) && !json_object_set(q, "type", type) &&
             !json_object_set(q, "transport", tr[r->flags & REC_TCP ? 1 : 0]) &&
             !json_object_set_new(
                 q, "rcode", json_string(r->rcode < 0 ? "none" : sts_dns_rcode_name(r->rcode))) &&
             (!fault || !json_object_set_new(q, "fault", json_string(fault)));
        json_decref(own);
        if (!ok || json_array_append_new(arr, q)) {
            if (!ok)
                json_decref(q);
            ok = 0;
        }
    }
    for (size_t i = 0; jn && i < o->nnames; i++)
        json_decref(jn[i]);
    for (size_t k = 0; k < ntypes; k++)
        json_decref(types[k].s);
    free(jn);
    json_decref(tr[0]);
    json_decref(tr[1]);
    json_decref(dash);
    if (!ok) {
        json_decref(arr);
        return NULL;
    }
    return arr;
}

int sts_observer_fetch(sts_observer *o, const char *host, const char *scheme, const char *sni,
                       const char *method, const char *path, int status)
{
    return sts_observer_fetch_begin(o, host, scheme, sni, method, path, status) ? 0 : STS_ENOMEM;
}

sts_obs_fetch *sts_observer_fetch_begin(sts_observer *o, const char *host, const char *scheme,
                                        const char *sni, const char *method, const char *path,
                                        int status)
{
    /* Host = uri-host [ ":" port ] (RFC 9110 7.2); an IPv6 literal keeps its brackets. */
    char name[256] = "";
    if (host) {
        snprintf(name, sizeof(name), "%s", host);
        char *colon = strrchr(name, ':');
        if (colon && !strchr(colon, ']'))
            *colon = '\0';
    }
    json_t *f =
        json_pack("{s:o,s:o,s:s,s:o,s:o,s:o,s:i}", "host", str_or_null(host ? name : NULL),
                  "host_header", str_or_null(host), "scheme", scheme, "sni", str_or_null(sni),
                  "method", str_or_null(method), "path", str_or_null(path), "status", status);
    /* As for SMTP sessions: the array keeps the reference, the handle is borrowed. */
    if (observer_append(o, o->fetches, f))
        return NULL;
    return (sts_obs_fetch *)f;
}

int sts_observer_fetch_set(sts_observer *o, sts_obs_fetch *f, const char *key, json_t *value)
{
    if (!value)
        return STS_ENOMEM;
    if (!f) {
        json_decref(value);
        return 0;
    }
    pthread_mutex_lock(&o->mu);
    int rc = json_object_set_new((json_t *)f, key, value);
    pthread_mutex_unlock(&o->mu);
    return rc ? STS_ENOMEM : 0;
}

sts_obs_smtp *sts_observer_smtp_begin(sts_observer *o, const char *host, const char *address,
                                      const char *peer)
{
    json_t *s = json_pack("{s:o,s:o,s:o,s:n,s:n,s:[],s:[]}", "host", str_or_null(host), "address",
                          str_or_null(address), "peer", str_or_null(peer), "sni", "tls", "commands",
                          "messages");
    if (!s)
        return NULL;
    /* The array holds the only reference; the handle is a borrowed pointer that stays
     * valid because sessions are never removed from the array. */
    if (observer_append(o, o->sessions, s))
        return NULL;
    return (sts_obs_smtp *)s;
}

int sts_observer_smtp_tls(sts_observer *o, sts_obs_smtp *s, const char *sni, const char *version,
                          const char *cipher)
{
    json_t *tls = json_pack("{s:s,s:s}", "version", version, "cipher", cipher);
    json_t *jsni = str_or_null(sni && *sni ? sni : NULL);
    if (!tls || !jsni) {
        json_decref(tls);
        json_decref(jsni);
        return STS_ENOMEM;
    }
    pthread_mutex_lock(&o->mu);
    int rc = json_object_set_new((json_t *)s, "tls", tls);
    rc |= json_object_set_new((json_t *)s, "sni", jsni);
    pthread_mutex_unlock(&o->mu);
    return rc ? STS_ENOMEM : 0;
}

int sts_observer_smtp_command(sts_observer *o, sts_obs_smtp *s, const char *verb, int tls,
                              int reply)
{
    pthread_mutex_lock(&o->mu);
    json_t *cmds = json_object_get((json_t *)s, "commands");
    int keep = json_array_size(cmds) < STS_OBSERVER_SMTP_COMMANDS_MAX;
    if (!keep && verb &&
        (!strcmp(verb, "MAIL") || !strcmp(verb, "RCPT") || !strcmp(verb, "DATA"))) {
        keep = 1; /* unless one of this verb and TLS state is kept already */
        for (size_t i = 0; keep && i < json_array_size(cmds); i++) {
            json_t *k = json_array_get(cmds, i);
            const char *kv = json_string_value(json_object_get(k, "verb"));
            if (kv && !strcmp(kv, verb) && json_is_true(json_object_get(k, "tls")) == !!tls)
                keep = 0;
        }
    }
    int rc = 0;
    if (keep) {
        json_t *c =
            json_pack("{s:o,s:b,s:i}", "verb", str_or_null(verb), "tls", tls, "reply", reply);
        rc = !c || json_array_append_new(cmds, c);
    } else {
        json_t *d = json_object_get((json_t *)s, "commands_dropped");
        rc = json_object_set_new((json_t *)s, "commands_dropped",
                                 json_integer(d ? json_integer_value(d) + 1 : 1));
    }
    pthread_mutex_unlock(&o->mu);
    return rc ? STS_ENOMEM : 0;
}

int sts_observer_smtp_message(sts_observer *o, sts_obs_smtp *s, int tls, size_t bytes,
                              const char *sha256_hex, const char *from, const char *const *rcpts,
                              size_t n)
{
    json_t *jr = json_array();
    for (size_t i = 0; jr && i < n; i++)
        if (json_array_append_new(jr, str_or_null(rcpts[i]))) {
            json_decref(jr);
            jr = NULL;
        }
    if (!jr)
        return STS_ENOMEM;
    json_t *m = json_pack("{s:b,s:I,s:s,s:o,s:o}", "tls", tls, "bytes", (json_int_t)bytes, "sha256",
                          sha256_hex, "from", str_or_null(from), "rcpts", jr);
    if (!m)
        return STS_ENOMEM;
    pthread_mutex_lock(&o->mu);
    int rc = json_array_append_new(json_object_get((json_t *)s, "messages"), m);
    pthread_mutex_unlock(&o->mu);
    return rc ? STS_ENOMEM : 0;
}

int sts_observer_policy_conn(sts_observer *o, const char *scheme, const char *peer, const char *sni,
                             const char *tls_version, const char *outcome, const char *error)
{
    json_t *c = json_pack("{s:s,s:o,s:o,s:o,s:s}", "scheme", scheme, "peer", str_or_null(peer),
                          "sni", str_or_null(sni && *sni ? sni : NULL), "tls_version",
                          str_or_null(tls_version), "outcome", outcome);
    if (c && error && json_object_set_new(c, "error", json_string(error))) {
        json_decref(c);
        c = NULL;
    }
    return observer_append(o, o->conns, c) ? STS_ENOMEM : 0;
}

int sts_observer_smtp_set(sts_observer *o, sts_obs_smtp *s, const char *key, json_t *value)
{
    if (!value)
        return STS_ENOMEM;
    pthread_mutex_lock(&o->mu);
    int rc = json_object_set_new((json_t *)s, key, value);
    pthread_mutex_unlock(&o->mu);
    return rc ? STS_ENOMEM : 0;
}

int sts_observer_tlsrpt(sts_observer *o, json_t *rec)
{
    pthread_mutex_lock(&o->mu);
    int rc = 0;
    if (!rec || json_array_size(o->reports) >= STS_OBSERVER_TLSRPT_MAX) {
        o->reports_dropped++;
        rc = rec ? STS_ETOOBIG : STS_ENOMEM;
        json_decref(rec);
    } else if (json_array_append_new(o->reports, rec)) {
        o->reports_dropped++;
        rc = STS_ENOMEM;
    }
    pthread_mutex_unlock(&o->mu);
    return rc;
}

json_t *sts_observer_snapshot(sts_observer *o)
{
    pthread_mutex_lock(&o->mu);
    json_t *dns = observer_dns_json(o);
    /* The dns array is new; the JSON records are copied so the caller owns them. */
    json_t *snap =
        dns ? json_pack("{s:o,s:o,s:o,s:o,s:o}", "dns", dns, "policy_fetches",
                        json_deep_copy(o->fetches), "policy_connections", json_deep_copy(o->conns),
                        "smtp_sessions", json_deep_copy(o->sessions), "tlsrpt_reports",
                        json_deep_copy(o->reports))
            : NULL;
    if (snap && o->reports_dropped &&
        json_object_set_new(snap, "tlsrpt_dropped", json_integer((json_int_t)o->reports_dropped))) {
        json_decref(snap);
        snap = NULL;
    }
    /* Only once something was dropped: the shape stays as before otherwise. */
    if (snap && o->dropped &&
        json_object_set_new(snap, "dns_dropped", json_integer((json_int_t)o->dropped))) {
        json_decref(snap);
        snap = NULL;
    }
    pthread_mutex_unlock(&o->mu);
    return snap;
}
