/* verdict.c - compare a sender run with a scenario expectation; check the invariant. */
#include "runner/verdict.h"

#include <stdarg.h>
#include <stdio.h>
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

const char *sts_diff_class_name(sts_diff_class c)
{
    switch (c) {
#define STS_DIFF_NAME(sym, val, name)                                                              \
    case sym:                                                                                      \
        return name;
        STS_DIFF_CLASSES(STS_DIFF_NAME)
#undef STS_DIFF_NAME
    }
    return NULL;
}

/* One difference line of class cls (printf-style), into both v->diff and v->diffs. */
static void note(sts_verdict *v, sts_diff_class cls, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void note(sts_verdict *v, sts_diff_class cls, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    sts_buf_appendf(&v->diff, "%s\n", line);
    json_t *d = json_pack("{s:s, s:s}", "text", line, "class", sts_diff_class_name(cls));
    if (d && v->why)
        json_object_set_new(d, "why", json_string(v->why));
    json_array_append_new(v->diffs, d);
}

static void differ(sts_verdict *v, sts_diff_class cls, const char *key, const char *want,
                   const char *got)
{
    note(v, cls, "%s: expected %s, got %s", key, want, got);
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

/* What happened in one run, in the expectation's terms: gathered from the world's
 * observer log and the sender's result before anything is compared. */
typedef struct run_facts {
    json_t *r0;                 /* the sender's result for the recipient; NULL: none */
    size_t received;            /* messages the world's MXs received */
    size_t plain_msgs;          /* of those, received outside TLS */
    json_t *delivered_to;       /* sorted set of the hosts that received one (owned) */
    const char *delivered_host; /* the last host that received one, or NULL */
    int fetched;                /* the policy was asked for over HTTPS */
    int plain_fetches;          /* requests to the plain-HTTP policy listener */
    int abandoned;              /* an HTTPS policy connection left without a request */
    sts_delivery_tls tls;       /* how the message travelled (when received) */
    const char *outcome;        /* the recipient's outcome; NULL: unknown */
    const char *source;         /* the policy source the sender names; NULL: unknown */
    json_t *failures;           /* sorted set of the sender's result types (owned) */
} run_facts;

/* The world's MX sessions: how many messages arrived, how many in the clear, and at
 * which hosts. Returns 0 or STS_ENOMEM. */
static int observe_messages(json_t *sessions, run_facts *f)
{
    const char **hosts = calloc(json_array_size(sessions) + 1, sizeof(*hosts));
    size_t nhosts = 0;
    if (!hosts)
        return STS_ENOMEM;
    for (size_t i = 0; i < json_array_size(sessions); i++) {
        json_t *s = json_array_get(sessions, i);
        json_t *msgs = json_object_get(s, "messages");
        f->received += json_array_size(msgs);
        for (size_t j = 0; j < json_array_size(msgs); j++)
            if (!json_is_true(json_object_get(json_array_get(msgs, j), "tls")))
                f->plain_msgs++;
        if (json_array_size(msgs)) {
            hosts[nhosts++] = str_or(json_object_get(s, "host"), "?");
            f->delivered_host = hosts[nhosts - 1];
        }
    }
    f->delivered_to = sorted_set(hosts, nhosts);
    free(hosts);
    return 0;
}

/* The world's policy host: asked over HTTPS, asked over plain HTTP, or abandoned. */
static void observe_policy(json_t *observed, run_facts *f)
{
    json_t *fetches = json_object_get(observed, "policy_fetches");
    for (size_t i = 0; i < json_array_size(fetches); i++) {
        const char *scheme = str_or(json_object_get(json_array_get(fetches, i), "scheme"), "");
        if (!strcmp(scheme, "https"))
            f->fetched = 1;
        else if (!strcmp(scheme, "http"))
            f->plain_fetches++;
    }
    /* The sender opened HTTPS to the policy host and left without a request (the
     * handshake failed, or it closed after it): how a sender that rejects the
     * policy host's certificate looks from the world. OpenSSL aborts the handshake
     * for an untrusted or expired certificate; libcurl checks the name after it. */
    json_t *conns = json_object_get(observed, "policy_connections");
    for (size_t i = 0; i < json_array_size(conns); i++) {
        json_t *c = json_array_get(conns, i);
        const char *how = str_or(json_object_get(c, "outcome"), "");
        if (!strcmp(str_or(json_object_get(c, "scheme"), ""), "https") &&
            (!strcmp(how, "tls_failed") || !strcmp(how, "no_request")))
            f->abandoned = 1;
    }
}

/* How a received message travelled: over TLS (verified or not, as the sender judged
 * it, or for an external sender as a correct one would), or in the clear. */
static sts_delivery_tls delivery_tls(const sts_verdict_input *in, const run_facts *f)
{
    json_t *dm = delivered_mx(f->r0);
    if (f->plain_msgs)
        return STS_DELIVERY_TLS_NONE;
    if (in->external)
        return host_listed(in->cert_bad_hosts, f->delivered_host) ? STS_DELIVERY_TLS_UNVERIFIED
                                                                  : STS_DELIVERY_TLS_VERIFIED;
    if (dm && json_is_true(json_object_get(json_object_get(dm, "tls"), "verified")))
        return STS_DELIVERY_TLS_VERIFIED;
    return STS_DELIVERY_TLS_UNVERIFIED;
}

/* The recipient's outcome: the sender's own word, or for an external sender what the
 * world received and the exit status say (verdict.h). */
static const char *run_outcome(const sts_verdict_input *in, const run_facts *f)
{
    if (!in->external)
        return str_or(json_object_get(f->r0, "outcome"), NULL);
    if (f->received)
        return sts_outcome_name(STS_OUTCOME_DELIVERED);
    return sts_outcome_name(in->exit_status == STS_EXIT_OK || in->exit_status == STS_EXIT_TEMPFAIL
                                ? STS_OUTCOME_DEFERRED
                                : STS_OUTCOME_FAILED);
}

/* Fill f from the input (f owns its sets: facts_free). Returns 0 or STS_ENOMEM. */
static int gather_facts(const sts_verdict_input *in, run_facts *f)
{
    memset(f, 0, sizeof(*f));
    f->r0 = json_array_get(json_object_get(in->result, "results"), 0);
    if (observe_messages(json_object_get(in->observed, "smtp_sessions"), f))
        return STS_ENOMEM;
    observe_policy(in->observed, f);
    f->tls = f->received ? delivery_tls(in, f) : STS_DELIVERY_TLS_NONE;
    f->outcome = run_outcome(in, f);
    f->source = str_or(json_object_get(json_object_get(f->r0, "policy"), "source"), NULL);
    f->failures = json_set(json_object_get(f->r0, "failures"));
    if (!f->failures)
        f->failures = json_array();
    if (!f->delivered_to)
        f->delivered_to = json_array();
    return 0;
}

static void facts_free(run_facts *f)
{
    json_decref(f->failures);
    json_decref(f->delivered_to);
}

/* The facts as the verdict's "actual" object, in the expectation's keys. */
static void build_actual(const sts_verdict_input *in, const run_facts *f, json_t *actual)
{
    json_object_set_new(actual, "outcome", f->outcome ? json_string(f->outcome) : json_null());
    json_object_set_new(actual, "exit", json_integer(in->exit_status));
    json_object_set(actual, "failures", f->failures);
    json_object_set_new(actual, "tls",
                        f->received ? json_string(sts_delivery_tls_name(f->tls)) : json_null());
    json_object_set_new(actual, "received", json_integer((json_int_t)f->received));
    json_object_set_new(actual, "policy_source", f->source ? json_string(f->source) : json_null());
    json_object_set_new(actual, "policy_fetched", json_boolean(f->fetched));
    json_object_set_new(actual, "policy_abandoned", json_boolean(f->abandoned));
    json_object_set(actual, "delivered_to", f->delivered_to);
    if (in->assure_tls)
        json_object_set(actual, "assuredness",
                        json_object_get(json_object_get(f->r0, "assure_tls"), "assuredness"));
}

static void differ_num(sts_verdict *v, sts_diff_class cls, const char *key, long long want,
                       long long got)
{
    char w[24], g[24];
    snprintf(w, sizeof(w), "%lld", want);
    snprintf(g, sizeof(g), "%lld", got);
    differ(v, cls, key, w, g);
}

static void differ_bool(sts_verdict *v, const char *key, int want, int got)
{
    if (want >= 0 && want != got)
        differ(v, STS_DIFF_OTHER, key, want ? "true" : "false", got ? "true" : "false");
}

/* A set of words the expectation lists against the set the run produced. With
 * unsafe_extra, a word in the run's set that the expectation lacks (a host that got
 * a message it must not) makes the difference a security one. */
static void differ_set(sts_verdict *v, const char *key, const sts_strv *want_v, json_t *got,
                       int unsafe_extra)
{
    json_t *want = sorted_set((const char *const *)want_v->v, want_v->n);
    if (!json_equal(want, got)) {
        sts_diff_class cls = STS_DIFF_OTHER;
        for (size_t i = 0; unsafe_extra && i < json_array_size(got); i++) {
            int listed = 0;
            for (size_t j = 0; j < json_array_size(want) && !listed; j++)
                listed = json_equal(json_array_get(got, i), json_array_get(want, j));
            if (!listed)
                cls = STS_DIFF_SECURITY;
        }
        char *w = set_text(want), *g = set_text(got);
        differ(v, cls, key, w, g);
        free(w);
        free(g);
    }
    json_decref(want);
}

/* An outcome difference: a delivery the expectation refuses is a security one;
 * deferred against failed is outcome-only; a missing delivery is other. */
static sts_diff_class outcome_class(sts_outcome want, const char *got)
{
    sts_outcome g;
    if (sts_outcome_parse(got, &g))
        return STS_DIFF_OTHER;
    if (g == STS_OUTCOME_DELIVERED)
        return STS_DIFF_SECURITY;
    return want == STS_OUTCOME_DELIVERED ? STS_DIFF_OTHER : STS_DIFF_OUTCOME_ONLY;
}

/* An exit status difference: between two non-zero statuses (75 tempfail, 69 permfail,
 * ...) it is how a non-delivery was reported. */
static sts_diff_class exit_class(int want, int got)
{
    return want != STS_EXIT_OK && got != STS_EXIT_OK ? STS_DIFF_OUTCOME_ONLY : STS_DIFF_OTHER;
}

/* TLS: verified expected but not had is a security difference (the message went
 * over a session a correct sender would not use, or in the clear). */
static sts_diff_class tls_class(sts_delivery_tls want, const run_facts *f)
{
    return want == STS_DELIVERY_TLS_VERIFIED && f->received ? STS_DIFF_SECURITY : STS_DIFF_OTHER;
}

/* Every fact the expectation names against the run's; one line per difference. An
 * external sender's failures and policy source are unknown and not compared. */
static void compare(const sts_scn_expect *e, const sts_verdict_input *in, const run_facts *f,
                    sts_verdict *v)
{
    sts_outcome got_outcome;
    sts_policy_source got_source;
    if (!f->r0 && !in->external)
        note(v, STS_DIFF_OTHER, "result: the sender printed no result");
    if (e->outcome_set &&
        (sts_outcome_parse(f->outcome, &got_outcome) || got_outcome != e->outcome))
        differ(v, outcome_class(e->outcome, f->outcome), "outcome", sts_outcome_name(e->outcome),
               f->outcome ? f->outcome : "(none)");
    if (e->exit_status >= 0 && e->exit_status != in->exit_status)
        differ_num(v, exit_class(e->exit_status, in->exit_status), "exit", e->exit_status,
                   in->exit_status);
    if (e->failures_set && !in->external)
        differ_set(v, "failures", &e->failures, f->failures, 0);
    if (e->tls_set && (!f->received || f->tls != e->tls))
        differ(v, tls_class(e->tls, f), "tls", sts_delivery_tls_name(e->tls),
               f->received ? sts_delivery_tls_name(f->tls) : "(nothing delivered)");
    /* More messages than expected reached the MXs: delivered where it must not be. */
    if (e->received >= 0 && (size_t)e->received != f->received)
        differ_num(v, (size_t)e->received < f->received ? STS_DIFF_SECURITY : STS_DIFF_OTHER,
                   "received", e->received, (long long)f->received);
    if (e->policy_source_set && !in->external &&
        (sts_policy_source_parse(f->source, &got_source) || got_source != e->policy_source))
        differ(v, STS_DIFF_OTHER, "policy_source", sts_policy_source_name(e->policy_source),
               f->source ? f->source : "(none)");
    differ_bool(v, "policy_fetched", e->policy_fetched, f->fetched);
    differ_bool(v, "policy_abandoned", e->policy_abandoned, f->abandoned);
    if (e->delivered_to_set)
        differ_set(v, "delivered_to", &e->delivered_to, f->delivered_to, 1);
    json_t *got = json_object_get(json_object_get(f->r0, "assure_tls"), "assuredness");
    if (e->assuredness_set && (!json_is_integer(got) || json_integer_value(got) != e->assuredness))
        differ_num(v, STS_DIFF_OTHER, "assuredness", e->assuredness,
                   got ? json_integer_value(got) : -1);
}

/* check --assure-tls offers MAIL and RCPT in the clear on purpose; what it must never
 * do is go further: no DATA and no message, in the clear or not. */
static void check_assure_invariant(const sts_verdict_input *in, const run_facts *f, sts_verdict *v)
{
    json_t *sessions = json_object_get(in->observed, "smtp_sessions");
    for (size_t i = 0; i < json_array_size(sessions); i++) {
        json_t *s = json_array_get(sessions, i);
        json_t *cmds = json_object_get(s, "commands");
        for (size_t j = 0; j < json_array_size(cmds); j++) {
            const char *verb = json_string_value(json_object_get(json_array_get(cmds, j), "verb"));
            if (verb && !strcmp(verb, "DATA")) {
                v->invariant_violated = 1;
                note(v, STS_DIFF_SECURITY, "SECURITY INVARIANT: DATA reached %s under assure_tls",
                     str_or(json_object_get(s, "host"), "?"));
            }
        }
    }
    if (f->received) {
        v->invariant_violated = 1;
        note(v, STS_DIFF_SECURITY, "SECURITY INVARIANT: %zu message(s) received under assure_tls",
             f->received);
    }
}

/* The policy mode in force: the sender's --mode override, else the mode of the policy
 * it applied. An external sender says nothing of the policy it applied: a correct one
 * enforces what the world served, unless the expectation says that policy was
 * unusable (fetch error, bad certificate, invalid). */
static sts_mode mode_in_force(const sts_verdict_input *in, const run_facts *f)
{
    sts_mode mode = in->mode_override;
    if (mode != STS_MODE_AUTO)
        return mode;
    if (!in->external) {
        (void)sts_mode_parse(
            json_string_value(json_object_get(json_object_get(f->r0, "policy"), "mode")), &mode);
        return mode;
    }
    const sts_scn_expect *e = in->expect;
    return in->served_enforce &&
                   !(e->policy_source_set && e->policy_source == STS_POLICY_SOURCE_NONE)
               ? STS_MODE_ENFORCE
               : STS_MODE_AUTO;
}

/* The security invariant (DESIGN.md): under enforce or --require-tls not one byte of
 * the envelope or the message may leave the sender before TLS is up. */
static void check_invariant(const sts_verdict_input *in, const run_facts *f, sts_verdict *v)
{
    if (!in->require_tls && mode_in_force(in, f) != STS_MODE_ENFORCE)
        return;
    json_t *sessions = json_object_get(in->observed, "smtp_sessions");
    for (size_t i = 0; i < json_array_size(sessions); i++) {
        json_t *s = json_array_get(sessions, i);
        json_t *cmds = json_object_get(s, "commands");
        for (size_t j = 0; j < json_array_size(cmds); j++) {
            json_t *c = json_array_get(cmds, j);
            const char *verb = json_string_value(json_object_get(c, "verb"));
            if (is_envelope_verb(verb) && !json_is_true(json_object_get(c, "tls"))) {
                v->invariant_violated = 1;
                note(v, STS_DIFF_SECURITY, "SECURITY INVARIANT: %s reached %s without TLS under %s",
                     verb, str_or(json_object_get(s, "host"), "?"),
                     in->require_tls ? "--require-tls" : sts_mode_name(STS_MODE_ENFORCE));
            }
        }
    }
    if (f->plain_msgs) {
        v->invariant_violated = 1;
        note(v, STS_DIFF_SECURITY, "SECURITY INVARIANT: %zu message(s) received without TLS",
             f->plain_msgs);
    }
}

/* RFC 8461 3.3: the policy is fetched over HTTPS only; asking the plain-HTTP listener
 * is wrong whatever the scenario expects. */
static void check_https_only(const run_facts *f, sts_verdict *v)
{
    if (f->plain_fetches)
        note(v, STS_DIFF_SECURITY,
             "policy fetched over plain HTTP %zu time(s) (RFC 8461 3.3: HTTPS only)",
             (size_t)f->plain_fetches);
}

/* ---- report steps: the TLS reports the world accepted ---- */

/* The facts of one report's policies, as expect.tlsrpt.policies names them. */
static json_t *report_policies(json_t *report)
{
    json_t *out = json_array();
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(report, "policies"), i, p)
    {
        json_t *pol = json_object_get(p, "policy"), *sum = json_object_get(p, "summary");
        json_t *rt = json_array();
        size_t k;
        json_t *d;
        json_array_foreach(json_object_get(p, "failure-details"), k, d)
        {
            json_t *t = json_object_get(d, "result-type");
            if (json_is_string(t))
                json_array_append(rt, t);
        }
        json_t *set = json_set(rt);
        json_decref(rt);
        json_array_append_new(out, json_pack("{s:O?,s:O?,s:O?,s:O?,s:o?}", "policy_type",
                                             json_object_get(pol, "policy-type"), "policy_domain",
                                             json_object_get(pol, "policy-domain"), "successful",
                                             json_object_get(sum, "total-successful-session-count"),
                                             "failed",
                                             json_object_get(sum, "total-failure-session-count"),
                                             "result_types", set));
    }
    return out;
}

/* One report's policies (facts of report_policies) against the expected ones. */
static void compare_policies(const sts_scn_expect_tlsrpt *e, json_t *got, const char *which,
                             sts_verdict *v)
{
    if (json_array_size(got) != e->npolicies) {
        note(v, STS_DIFF_OTHER, "tlsrpt.policies (%s): expected %zu policies, got %zu", which,
             e->npolicies, json_array_size(got));
        return;
    }
    for (size_t i = 0; i < e->npolicies; i++) {
        const sts_scn_expect_policy *ep = &e->policies[i];
        json_t *g = json_array_get(got, i);
        const char *type = json_string_value(json_object_get(g, "policy_type"));
        const char *dom = json_string_value(json_object_get(g, "policy_domain"));
        if (ep->policy_type && (!type || strcmp(type, ep->policy_type)))
            note(v, STS_DIFF_OTHER, "tlsrpt.policies[%zu].policy_type (%s): expected %s, got %s", i,
                 which, ep->policy_type, type ? type : "(none)");
        if (ep->policy_domain && (!dom || strcasecmp(dom, ep->policy_domain)))
            note(v, STS_DIFF_OTHER, "tlsrpt.policies[%zu].policy_domain (%s): expected %s, got %s",
                 i, which, ep->policy_domain, dom ? dom : "(none)");
        static const char *const keys[2] = {"successful", "failed"};
        const long want[2] = {ep->successful, ep->failed};
        for (int k = 0; k < 2; k++) {
            json_t *n = json_object_get(g, keys[k]);
            if (want[k] < 0)
                continue;
            if (!json_is_integer(n))
                note(v, STS_DIFF_OTHER, "tlsrpt.policies[%zu].%s (%s): expected %ld, got %s", i,
                     keys[k], which, want[k], "(not an integer)");
            else if (json_integer_value(n) != want[k])
                note(v, STS_DIFF_OTHER, "tlsrpt.policies[%zu].%s (%s): expected %ld, got %lld", i,
                     keys[k], which, want[k], (long long)json_integer_value(n));
        }
        if (ep->result_types_set) {
            char key[96];
            snprintf(key, sizeof(key), "tlsrpt.policies[%zu].result_types (%s)", i, which);
            differ_set(v, key, &ep->result_types, json_object_get(g, "result_types"), 0);
        }
    }
}

/* The reports the world accepted in the step against expect.tlsrpt; the facts into
 * actual.tlsrpt. */
static void compare_tlsrpt(const sts_scn_expect_tlsrpt *e, json_t *observed, json_t *actual,
                           sts_verdict *v)
{
    json_t *recs = json_object_get(observed, "tlsrpt_reports");
    json_t *via = json_array(), *dkim = json_array(), *pols = json_array();
    size_t n = 0, nmail = 0;
    int valid = 1, dkim_ok = 1;
    size_t i;
    json_t *r;
    json_array_foreach(recs, i, r)
    {
        if (!json_is_true(json_object_get(r, "accepted")))
            continue;
        n++;
        const char *how = str_or(json_object_get(r, "via"), "?");
        json_array_append_new(via, json_string(how));
        valid &= json_is_true(json_object_get(r, "valid"));
        json_t *got = report_policies(json_object_get(r, "report"));
        if (!strcmp(how, "mailto")) {
            nmail++;
            const char *res = str_or(json_object_get(json_object_get(r, "dkim"), "result"), "?");
            json_array_append_new(dkim, json_string(res));
            if (e->dkim >= 0 && strcmp(res, sts_dkim_result_name(e->dkim)))
                dkim_ok = 0;
        }
        char which[64];
        snprintf(which, sizeof(which), "%s report %zu", how, n);
        if (e->policies_set)
            compare_policies(e, got, which, v);
        json_array_append_new(pols, got);
    }
    json_t *via_set = json_set(via), *dkim_set = json_set(dkim);
    json_decref(via);
    json_decref(dkim);
    json_object_set_new(actual, "tlsrpt",
                        json_pack("{s:I,s:o,s:o,s:o,s:o}", "reports", (json_int_t)n, "valid",
                                  n ? json_boolean(valid) : json_null(), "via",
                                  json_incref(via_set), "dkim", json_incref(dkim_set), "policies",
                                  pols));
    if (e->reports >= 0 && (size_t)e->reports != n)
        differ_num(v, STS_DIFF_OTHER, "tlsrpt.reports", e->reports, (long long)n);
    if (e->valid >= 0 && (!n || valid != e->valid)) {
        char got[64];
        snprintf(got, sizeof(got), "%s", !n ? "(no report)" : valid ? "true" : "false");
        differ(v, STS_DIFF_OTHER, "tlsrpt.valid", e->valid ? "true" : "false", got);
    }
    if (e->via_set)
        differ_set(v, "tlsrpt.via", &e->via, via_set, 0);
    if (e->dkim >= 0 && (!nmail || !dkim_ok)) {
        char *g = set_text(dkim_set);
        differ(v, STS_DIFF_OTHER, "tlsrpt.dkim", sts_dkim_result_name(e->dkim),
               nmail ? g : "(no mailto report)");
        free(g);
    }
    json_decref(via_set);
    json_decref(dkim_set);
}

/* A report step: the report command's exit status and the reports received. */
static int check_report_step(const sts_verdict_input *in, sts_verdict *v)
{
    const sts_scn_expect *e = in->expect;
    json_object_set_new(v->actual, "exit", json_integer(in->exit_status));
    if (e->exit_status >= 0 && e->exit_status != in->exit_status)
        differ_num(v, exit_class(e->exit_status, in->exit_status), "exit", e->exit_status,
                   in->exit_status);
    compare_tlsrpt(&e->tlsrpt, in->observed, v->actual, v);
    json_t *fetches = json_object_get(in->observed, "policy_fetches");
    size_t plain = 0, i;
    json_t *f;
    json_array_foreach(fetches, i, f)
    {
        plain += !strcmp(str_or(json_object_get(f, "scheme"), ""), "http");
    }
    if (plain)
        note(v, STS_DIFF_SECURITY,
             "policy fetched over plain HTTP %zu time(s) (RFC 8461 3.3: HTTPS only)", plain);
    v->passed = v->diff.len == 0;
    return 0;
}

int sts_verdict_check(const sts_verdict_input *in, sts_verdict *v)
{
    memset(v, 0, sizeof(*v));
    sts_buf_init(&v->diff, 0);
    v->actual = json_object();
    v->diffs = json_array();
    v->why = in->expect->why;
    if (!v->actual || !v->diffs)
        return STS_ENOMEM;
    if (in->report)
        return check_report_step(in, v);
    run_facts f;
    if (!v->actual || !v->diffs || gather_facts(in, &f))
        return STS_ENOMEM;
    build_actual(in, &f, v->actual);
    compare(in->expect, in, &f, v);
    if (in->assure_tls)
        check_assure_invariant(in, &f, v);
    else
        check_invariant(in, &f, v);
    check_https_only(&f, v);
    facts_free(&f);
    v->passed = v->diff.len == 0;
    return 0;
}

void sts_verdict_free(sts_verdict *v)
{
    sts_buf_free(&v->diff);
    json_decref(v->actual);
    v->actual = NULL;
    json_decref(v->diffs);
    v->diffs = NULL;
}

long long sts_verdict_world_drops(const json_t *observed, char *msg, size_t msglen)
{
    json_t *n = json_object_get(observed, "dns_drops");
    long long drops = json_is_integer(n) ? (long long)json_integer_value(n) : 0;
    if (drops > 0 && msg && msglen)
        snprintf(msg, msglen,
                 "the world's DNS server lost %lld %s (kernel %lld, server %lld): the run "
                 "is not exact, so it is not judged; run fewer cases or queries at once",
                 drops, drops == 1 ? "query" : "queries",
                 (long long)json_integer_value(json_object_get(observed, "dns_drops_kernel")),
                 (long long)json_integer_value(json_object_get(observed, "dns_drops_server")));
    return drops;
}
