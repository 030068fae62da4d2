/*
 * observer.c - the world's observer log (see observer.h): three JSON arrays behind
 * one mutex. Functions return 0 or STS_ENOMEM; snapshot returns a new reference or
 * NULL on ENOMEM.
 */
#include "fakedns/observer.h"
#include "common/err.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sts_observer {
    pthread_mutex_t mu;
    json_t *dns;
    json_t *fetches;
    json_t *sessions;
};

sts_observer *sts_observer_new(void)
{
    sts_observer *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    pthread_mutex_init(&o->mu, NULL);
    o->dns = json_array();
    o->fetches = json_array();
    o->sessions = json_array();
    if (!o->dns || !o->fetches || !o->sessions) {
        sts_observer_free(o);
        return NULL;
    }
    return o;
}

void sts_observer_free(sts_observer *o)
{
    if (!o)
        return;
    json_decref(o->dns);
    json_decref(o->fetches);
    json_decref(o->sessions);
    pthread_mutex_destroy(&o->mu);
    free(o);
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

/* A JSON string, or null for NULL. */
static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

int sts_observer_dns(sts_observer *o, const char *name, const char *type, const char *transport,
                     const char *rcode)
{
    return sts_observer_dns_fault(o, name, type, transport, rcode, NULL);
}

int sts_observer_dns_fault(sts_observer *o, const char *name, const char *type,
                           const char *transport, const char *rcode, const char *fault)
{
    json_t *q = json_pack("{s:o,s:s,s:s,s:s}", "name", str_or_null(name), "type", type,
                          "transport", transport, "rcode", rcode);
    if (q && fault && json_object_set_new(q, "fault", json_string(fault))) {
        json_decref(q);
        q = NULL;
    }
    return observer_append(o, o->dns, q);
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
    json_t *s = json_pack("{s:s,s:s,s:s,s:n,s:n,s:[],s:[]}", "host", host, "address", address,
                          "peer", peer, "sni", "tls", "commands", "messages");
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
    json_t *jsni = sni && *sni ? json_string(sni) : json_null();
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
    json_t *c = json_pack("{s:s,s:b,s:i}", "verb", verb, "tls", tls, "reply", reply);
    if (!c)
        return STS_ENOMEM;
    pthread_mutex_lock(&o->mu);
    int rc = json_array_append_new(json_object_get((json_t *)s, "commands"), c);
    pthread_mutex_unlock(&o->mu);
    return rc ? STS_ENOMEM : 0;
}

int sts_observer_smtp_message(sts_observer *o, sts_obs_smtp *s, int tls, size_t bytes,
                              const char *sha256_hex, const char *from, const char *const *rcpts,
                              size_t n)
{
    json_t *jr = json_array();
    for (size_t i = 0; jr && i < n; i++)
        if (json_array_append_new(jr, json_string(rcpts[i]))) {
            json_decref(jr);
            jr = NULL;
        }
    if (!jr)
        return STS_ENOMEM;
    json_t *m = json_pack("{s:b,s:I,s:s,s:s,s:o}", "tls", tls, "bytes", (json_int_t)bytes, "sha256",
                          sha256_hex, "from", from, "rcpts", jr);
    if (!m)
        return STS_ENOMEM;
    pthread_mutex_lock(&o->mu);
    int rc = json_array_append_new(json_object_get((json_t *)s, "messages"), m);
    pthread_mutex_unlock(&o->mu);
    return rc ? STS_ENOMEM : 0;
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

json_t *sts_observer_snapshot(sts_observer *o)
{
    pthread_mutex_lock(&o->mu);
    json_t *snap = json_pack("{s:O,s:O,s:O}", "dns", o->dns, "policy_fetches", o->fetches,
                             "smtp_sessions", o->sessions);
    json_t *copy = snap ? json_deep_copy(snap) : NULL;
    pthread_mutex_unlock(&o->mu);
    json_decref(snap);
    return copy;
}
