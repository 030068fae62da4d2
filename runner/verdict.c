/* verdict.c - compare a sender run with a scenario expectation; check the invariant. */
#include "runner/verdict.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/vocab.h"

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A sorted, de-duplicated JSON array of strings. */
static json_t *sorted_set(const char *const *v, size_t n)
{
    const char **tmp = calloc(n ? n : 1, sizeof(*tmp));
    json_t *a = json_array();
    if (!tmp || !a) {
        free(tmp);
        json_decref(a);
        return NULL;
    }
    if (n)
        memcpy(tmp, v, n * sizeof(*tmp));
    qsort(tmp, n, sizeof(*tmp), cmp_str);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(tmp[i], tmp[i - 1]))
            json_array_append_new(a, json_string(tmp[i]));
    free(tmp);
    return a;
}

static json_t *json_set(json_t *arr)
{
    size_t n = json_is_array(arr) ? json_array_size(arr) : 0;
    const char **v = calloc(n ? n : 1, sizeof(*v));
    if (!v)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = json_string_value(json_array_get(arr, i));
        if (s)
            v[k++] = s;
    }
    json_t *out = sorted_set(v, k);
    free(v);
    return out;
}

static char *set_text(json_t *set)
{
    char *s = json_dumps(set, JSON_COMPACT);
    return s ? s : strdup("?");
}

static const char *str_or(json_t *v, const char *dflt)
{
    const char *s = json_string_value(v);
    return s ? s : dflt;
}

static int is_envelope_verb(const char *verb)
{
    return verb && (!strcasecmp(verb, "MAIL") || !strcasecmp(verb, "RCPT") ||
                    !strcasecmp(verb, "DATA") || !strcasecmp(verb, "BDAT"));
}

static void differ(sts_verdict *v, const char *key, const char *want, const char *got)
{
    sts_buf_appendf(&v->diff, "%s: expected %s, got %s\n", key, want, got);
}

static int host_listed(const char *const *hosts, const char *host)
{
    for (size_t i = 0; hosts && host && hosts[i]; i++)
        if (!strcasecmp(hosts[i], host))
            return 1;
    return 0;
}

/* The delivered MX entry of the sender's result, or NULL. */
static json_t *delivered_mx(json_t *r0)
{
    json_t *mxs = json_object_get(r0, "mx");
    for (size_t i = 0; i < json_array_size(mxs); i++) {
        json_t *m = json_array_get(mxs, i);
        sts_action a;
        if (!sts_action_parse(json_string_value(json_object_get(m, "action")), &a) &&
            a == STS_ACTION_DELIVERED)
            return m;
    }
    return NULL;
}

int sts_verdict_check(const sts_verdict_input *in, sts_verdict *v)
{
    memset(v, 0, sizeof(*v));
    sts_buf_init(&v->diff, 0);
    v->actual = json_object();
    if (!v->actual)
        return STS_ENOMEM;
    const sts_scn_expect *e = in->expect;
    json_t *r0 = json_array_get(json_object_get(in->result, "results"), 0);
    json_t *sessions = json_object_get(in->observed, "smtp_sessions");

    /* Facts from the world's observer: what actually arrived, and how. */
    size_t received = 0, plain_msgs = 0;
    const char **hosts = calloc(json_array_size(sessions) + 1, sizeof(*hosts));
    size_t nhosts = 0;
    const char *delivered_host = NULL;
    if (!hosts)
        return STS_ENOMEM;
    for (size_t i = 0; i < json_array_size(sessions); i++) {
        json_t *s = json_array_get(sessions, i);
        json_t *msgs = json_object_get(s, "messages");
        received += json_array_size(msgs);
        for (size_t j = 0; j < json_array_size(msgs); j++)
            if (!json_is_true(json_object_get(json_array_get(msgs, j), "tls")))
                plain_msgs++;
        if (json_array_size(msgs)) {
            hosts[nhosts++] = str_or(json_object_get(s, "host"), "?");
            delivered_host = hosts[nhosts - 1];
        }
    }
    json_t *delivered_to = sorted_set(hosts, nhosts);
    free(hosts);
    int fetched = 0, plain_fetches = 0;
    json_t *fetches = json_object_get(in->observed, "policy_fetches");
    for (size_t i = 0; i < json_array_size(fetches); i++) {
        const char *scheme = str_or(json_object_get(json_array_get(fetches, i), "scheme"), "");
        if (!strcmp(scheme, "https"))
            fetched = 1;
        else if (!strcmp(scheme, "http"))
            plain_fetches++;
    }
    /* The sender opened HTTPS to the policy host and left without a request (the
     * handshake failed, or it closed after it): how a sender that rejects the
     * policy host's certificate looks from the world. OpenSSL aborts the handshake
     * for an untrusted or expired certificate; libcurl checks the name after it. */
    int abandoned = 0;
    json_t *conns = json_object_get(in->observed, "policy_connections");
    for (size_t i = 0; i < json_array_size(conns); i++) {
        json_t *c = json_array_get(conns, i);
        const char *how = str_or(json_object_get(c, "outcome"), "");
        if (!strcmp(str_or(json_object_get(c, "scheme"), ""), "https") &&
            (!strcmp(how, "tls_failed") || !strcmp(how, "no_request")))
            abandoned = 1;
    }

    /* How the message travelled: over TLS (verified or not, as the sender judged
     * it), or in the clear; null when nothing was delivered. */
    sts_delivery_tls tls = STS_DELIVERY_TLS_NONE; /* when received */
    if (received) {
        json_t *dm = delivered_mx(r0);
        if (plain_msgs)
            tls = STS_DELIVERY_TLS_NONE;
        else if (in->external)
            tls = host_listed(in->cert_bad_hosts, delivered_host) ? STS_DELIVERY_TLS_UNVERIFIED
                                                                  : STS_DELIVERY_TLS_VERIFIED;
        else if (dm && json_is_true(json_object_get(json_object_get(dm, "tls"), "verified")))
            tls = STS_DELIVERY_TLS_VERIFIED;
        else
            tls = STS_DELIVERY_TLS_UNVERIFIED;
    }
    const char *outcome = str_or(json_object_get(r0, "outcome"), NULL);
    if (in->external)
        outcome = sts_outcome_name(received ? STS_OUTCOME_DELIVERED
                                   : in->exit_status == STS_EXIT_OK ||
                                           in->exit_status == STS_EXIT_TEMPFAIL
                                       ? STS_OUTCOME_DEFERRED
                                       : STS_OUTCOME_FAILED);
    const char *source =
        str_or(json_object_get(json_object_get(r0, "policy"), "source"), NULL);
    json_t *failures = json_set(json_object_get(r0, "failures"));

    json_object_set_new(v->actual, "outcome", outcome ? json_string(outcome) : json_null());
    json_object_set_new(v->actual, "exit", json_integer(in->exit_status));
    json_object_set_new(v->actual, "failures", failures ? failures : json_array());
    json_object_set_new(v->actual, "tls",
                        received ? json_string(sts_delivery_tls_name(tls)) : json_null());
    json_object_set_new(v->actual, "received", json_integer((json_int_t)received));
    json_object_set_new(v->actual, "policy_source", source ? json_string(source) : json_null());
    json_object_set_new(v->actual, "policy_fetched", json_boolean(fetched));
    json_object_set_new(v->actual, "policy_abandoned", json_boolean(abandoned));
    json_object_set_new(v->actual, "delivered_to", delivered_to ? delivered_to : json_array());
    failures = json_object_get(v->actual, "failures");
    delivered_to = json_object_get(v->actual, "delivered_to");

    if (!r0 && !in->external)
        sts_buf_appendf(&v->diff, "result: the sender printed no result\n");
    sts_outcome got_outcome;
    if (e->outcome_set && (sts_outcome_parse(outcome, &got_outcome) || got_outcome != e->outcome))
        differ(v, "outcome", sts_outcome_name(e->outcome), outcome ? outcome : "(none)");
    if (e->exit_status >= 0 && e->exit_status != in->exit_status) {
        char want[16], got[16];
        snprintf(want, sizeof(want), "%d", e->exit_status);
        snprintf(got, sizeof(got), "%d", in->exit_status);
        differ(v, "exit", want, got);
    }
    if (e->failures_set && !in->external) {
        json_t *want = sorted_set((const char *const *)e->failures.v, e->failures.n);
        if (!json_equal(want, failures)) {
            char *w = set_text(want), *g = set_text(failures);
            differ(v, "failures", w, g);
            free(w);
            free(g);
        }
        json_decref(want);
    }
    if (e->tls_set && (!received || tls != e->tls))
        differ(v, "tls", sts_delivery_tls_name(e->tls),
               received ? sts_delivery_tls_name(tls) : "(nothing delivered)");
    if (e->received >= 0 && (size_t)e->received != received) {
        char want[16], got[16];
        snprintf(want, sizeof(want), "%d", e->received);
        snprintf(got, sizeof(got), "%zu", received);
        differ(v, "received", want, got);
    }
    sts_policy_source got_source;
    if (e->policy_source_set && !in->external &&
        (sts_policy_source_parse(source, &got_source) || got_source != e->policy_source))
        differ(v, "policy_source", sts_policy_source_name(e->policy_source),
               source ? source : "(none)");
    if (e->policy_fetched >= 0 && e->policy_fetched != fetched)
        differ(v, "policy_fetched", e->policy_fetched ? "true" : "false",
               fetched ? "true" : "false");
    if (e->policy_abandoned >= 0 && e->policy_abandoned != abandoned)
        differ(v, "policy_abandoned", e->policy_abandoned ? "true" : "false",
               abandoned ? "true" : "false");
    if (e->delivered_to_set) {
        json_t *want = sorted_set((const char *const *)e->delivered_to.v, e->delivered_to.n);
        if (!json_equal(want, delivered_to)) {
            char *w = set_text(want), *g = set_text(delivered_to);
            differ(v, "delivered_to", w, g);
            free(w);
            free(g);
        }
        json_decref(want);
    }

    /* The security invariant (DESIGN.md): under enforce or --require-tls not one
     * byte of the envelope or the message may leave the sender before TLS is up.
     * The policy mode in force is the sender's --mode override, else the mode of
     * the policy it applied. */
    sts_mode mode = in->mode_override;
    if (mode == STS_MODE_AUTO && !in->external) /* the mode the result says it applied */
        (void)sts_mode_parse(
            json_string_value(json_object_get(json_object_get(r0, "policy"), "mode")), &mode);
    /* An external sender says nothing of the policy it applied: a correct one
     * enforces what the world served, unless the expectation says that policy was
     * unusable (fetch error, bad certificate, invalid). */
    if (mode == STS_MODE_AUTO && in->external)
        mode = in->served_enforce &&
                       !(e->policy_source_set && e->policy_source == STS_POLICY_SOURCE_NONE)
                   ? STS_MODE_ENFORCE
                   : STS_MODE_AUTO;
    if (in->require_tls || mode == STS_MODE_ENFORCE) {
        for (size_t i = 0; i < json_array_size(sessions); i++) {
            json_t *s = json_array_get(sessions, i);
            json_t *cmds = json_object_get(s, "commands");
            for (size_t j = 0; j < json_array_size(cmds); j++) {
                json_t *c = json_array_get(cmds, j);
                const char *verb = json_string_value(json_object_get(c, "verb"));
                if (is_envelope_verb(verb) && !json_is_true(json_object_get(c, "tls"))) {
                    v->invariant_violated = 1;
                    sts_buf_appendf(
                        &v->diff, "SECURITY INVARIANT: %s reached %s without TLS under %s\n", verb,
                        str_or(json_object_get(s, "host"), "?"),
                        in->require_tls ? "--require-tls" : sts_mode_name(STS_MODE_ENFORCE));
                }
            }
        }
        if (plain_msgs) {
            v->invariant_violated = 1;
            sts_buf_appendf(&v->diff, "SECURITY INVARIANT: %zu message(s) received without TLS\n",
                            plain_msgs);
        }
    }
    /* RFC 8461 3.3: the policy is fetched over HTTPS only; asking the plain-HTTP
     * listener is wrong whatever the scenario expects. */
    if (plain_fetches)
        sts_buf_appendf(&v->diff,
                        "policy fetched over plain HTTP %zu time(s) (RFC 8461 3.3: HTTPS only)\n",
                        (size_t)plain_fetches);
    v->passed = v->diff.len == 0;
    return 0;
}

void sts_verdict_free(sts_verdict *v)
{
    sts_buf_free(&v->diff);
    json_decref(v->actual);
    v->actual = NULL;
}
