/*
 * scenario.c - load and validate scenario files (YAML, libyaml document API).
 *
 * Validation is strict: every mapping is checked against a table of the keys it may
 * hold, with their types; an unknown key, a wrong type, a bad value or a missing
 * required key is reported as "file:line:column: what is wrong" (1-based, the
 * position of the offending node). sts_scenario_load() and sts_scenario_parse()
 * return the scenario or NULL with that message.
 */
#include "common/scenario.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#define SCN_MAX_FILE (1024 * 1024)

typedef struct scn_ctx {
    yaml_document_t doc;
    const char *name;
    char *err;
    size_t errlen;
    int failed;
} scn_ctx;

static int fail(scn_ctx *c, const yaml_node_t *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(scn_ctx *c, const yaml_node_t *n, const char *fmt, ...)
{
    if (c->failed)
        return -1;
    c->failed = 1;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (n)
        snprintf(c->err, c->errlen, "%s:%zu:%zu: %s", c->name, n->start_mark.line + 1,
                 n->start_mark.column + 1, msg);
    else
        snprintf(c->err, c->errlen, "%s: %s", c->name, msg);
    return -1;
}

static const char *node_kind(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return "a scalar";
    case YAML_SEQUENCE_NODE:
        return "a list";
    case YAML_MAPPING_NODE:
        return "a mapping";
    default:
        return "nothing";
    }
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* A plain (unquoted) scalar that YAML 1.1 would read as null. */
static int is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return 0;
    const char *s = scalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

static int get_string(scn_ctx *c, const yaml_node_t *n, const char *key, char **out)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(c, n, "'%s' must be a string, not %s", key,
                    is_null(n) ? "empty" : node_kind(n));
    free(*out);
    *out = strdup(scalar(n));
    return *out ? 0 : fail(c, n, "out of memory");
}

static int get_bool(scn_ctx *c, const yaml_node_t *n, const char *key, int *out)
{
    if (n->type == YAML_SCALAR_NODE && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE) {
        const char *s = scalar(n);
        if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on")) {
            *out = 1;
            return 0;
        }
        if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off")) {
            *out = 0;
            return 0;
        }
    }
    return fail(c, n, "'%s' must be true or false", key);
}

static int get_long(scn_ctx *c, const yaml_node_t *n, const char *key, long lo, long hi,
                    long *out)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return fail(c, n, "'%s' must be an integer", key);
    const char *s = scalar(n);
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno)
        return fail(c, n, "'%s' must be an integer, not '%s'", key, s);
    if (v < lo || v > hi)
        return fail(c, n, "'%s' must be between %ld and %ld, not %ld", key, lo, hi, v);
    *out = v;
    return 0;
}

static int get_int(scn_ctx *c, const yaml_node_t *n, const char *key, long lo, long hi,
                   int *out)
{
    long v = 0;
    if (get_long(c, n, key, lo, hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}

static int strv_push(sts_strv *v, const char *s)
{
    char **nv = realloc(v->v, (v->n + 1) * sizeof(*nv));
    if (!nv)
        return -1;
    v->v = nv;
    if (!(v->v[v->n] = strdup(s)))
        return -1;
    v->n++;
    return 0;
}

static void strv_free(sts_strv *v)
{
    for (size_t i = 0; i < v->n; i++)
        free(v->v[i]);
    free(v->v);
    v->v = NULL;
    v->n = 0;
}

/* A list of strings; a single string is accepted as a list of one. */
static int get_strv(scn_ctx *c, const yaml_node_t *n, const char *key, sts_strv *out)
{
    strv_free(out);
    if (n->type == YAML_SCALAR_NODE && !is_null(n))
        return strv_push(out, scalar(n)) ? fail(c, n, "out of memory") : 0;
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "'%s' must be a list of strings, not %s", key, node_kind(n));
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *e = yaml_document_get_node(&c->doc, *it);
        if (e->type != YAML_SCALAR_NODE || is_null(e))
            return fail(c, e, "each item of '%s' must be a string, not %s", key,
                        is_null(e) ? "empty" : node_kind(e));
        if (strv_push(out, scalar(e)))
            return fail(c, e, "out of memory");
    }
    return 0;
}

/* Iterate a mapping's pairs: calls fn(key, value) for each; keys must be strings
 * and unique. */
typedef int (*pair_fn)(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg);

static int each_pair(scn_ctx *c, yaml_node_t *map, const char *what, pair_fn fn, void *arg)
{
    if (map->type != YAML_MAPPING_NODE)
        return fail(c, map, "%s must be a mapping, not %s", what, node_kind(map));
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(&c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(&c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE)
            return fail(c, k, "keys of %s must be strings", what);
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = yaml_document_get_node(&c->doc, q->key);
            if (k2->type == YAML_SCALAR_NODE && !strcmp(scalar(k2), scalar(k)))
                return fail(c, k, "duplicate key '%s' in %s", scalar(k), what);
        }
        if (fn(c, scalar(k), k, v, arg))
            return -1;
    }
    return 0;
}

static int unknown_key(scn_ctx *c, yaml_node_t *k, const char *what, const char *allowed)
{
    return fail(c, k, "unknown key '%s' in %s (allowed: %s)", scalar(k), what, allowed);
}

/* Host names in scenarios: letters, digits, '-', '.', and '*' (wildcard patterns
 * in certificates); stored lower-case without a trailing dot. */
static int check_hostname(scn_ctx *c, yaml_node_t *n, char *s, int allow_star)
{
    size_t len = strlen(s);
    if (len && s[len - 1] == '.')
        s[--len] = '\0';
    if (!len || len > 253)
        return fail(c, n, "'%s' is not a host name", s);
    for (char *p = s; *p; p++) {
        *p = (char)tolower((unsigned char)*p);
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' && *p != '_' &&
            !(allow_star && *p == '*'))
            return fail(c, n, "'%s' is not a host name (character '%c')", s, *p);
    }
    return 0;
}

/* ---- cert ---- */

static int cert_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_cert *cert = arg;
    if (!strcmp(key, "names")) {
        cert->names_set = 1;
        if (v->type == YAML_SEQUENCE_NODE && v->data.sequence.items.start ==
                                                 v->data.sequence.items.top) {
            strv_free(&cert->names);
            return 0;
        }
        if (get_strv(c, v, key, &cert->names))
            return -1;
        for (size_t i = 0; i < cert->names.n; i++)
            if (check_hostname(c, v, cert->names.v[i], 1))
                return -1;
        return 0;
    }
    if (!strcmp(key, "cn"))
        return get_string(c, v, key, &cert->cn);
    if (!strcmp(key, "no_san"))
        return get_bool(c, v, key, &cert->no_san);
    if (!strcmp(key, "expired"))
        return get_bool(c, v, key, &cert->expired);
    if (!strcmp(key, "not_yet_valid"))
        return get_bool(c, v, key, &cert->not_yet_valid);
    if (!strcmp(key, "self_signed"))
        return get_bool(c, v, key, &cert->self_signed);
    if (!strcmp(key, "unknown_ca"))
        return get_bool(c, v, key, &cert->unknown_ca);
    if (!strcmp(key, "key")) {
        if (v->type == YAML_SCALAR_NODE && !strcmp(scalar(v), "ec"))
            cert->rsa = 0;
        else if (v->type == YAML_SCALAR_NODE && !strcmp(scalar(v), "rsa"))
            cert->rsa = 1;
        else
            return fail(c, v, "'key' must be ec or rsa");
        return 0;
    }
    return unknown_key(c, k, "cert",
                       "names, cn, no_san, expired, not_yet_valid, self_signed, unknown_ca, key");
}

static int parse_cert(scn_ctx *c, yaml_node_t *n, sts_scn_cert *cert)
{
    if (each_pair(c, n, "cert", cert_pair, cert))
        return -1;
    if (cert->expired && cert->not_yet_valid)
        return fail(c, n, "a cert cannot be both expired and not_yet_valid");
    return 0;
}

static void cert_free(sts_scn_cert *cert)
{
    strv_free(&cert->names);
    free(cert->cn);
}

/* ---- policy ---- */

static int policy_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_policy *p = arg;
    if (!strcmp(key, "mode"))
        return get_string(c, v, key, &p->mode);
    if (!strcmp(key, "mx"))
        return get_strv(c, v, key, &p->mx);
    if (!strcmp(key, "max_age"))
        return get_long(c, v, key, LONG_MIN / 2, LONG_MAX / 2, &p->max_age);
    if (!strcmp(key, "body"))
        return get_string(c, v, key, &p->body);
    if (!strcmp(key, "status"))
        return get_int(c, v, key, 100, 599, &p->status);
    if (!strcmp(key, "content_type"))
        return get_string(c, v, key, &p->content_type);
    if (!strcmp(key, "cert"))
        return parse_cert(c, v, &p->cert);
    return unknown_key(c, k, "policy", "mode, mx, max_age, body, status, content_type, cert");
}

static int parse_policy(scn_ctx *c, yaml_node_t *n, sts_scn_policy *p)
{
    p->present = 1;
    p->line = (int)n->start_mark.line + 1;
    if (each_pair(c, n, "policy", policy_pair, p))
        return -1;
    /* A policy is either given verbatim or built from its fields; a built one must
     * name a mode, so a typo cannot silently serve an empty policy. */
    if (!p->body && !p->mode)
        return fail(c, n, "policy needs 'mode' (or a verbatim 'body')");
    return 0;
}

/* ---- mx ---- */

static int mx_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_mx *mx = arg;
    if (!strcmp(key, "starttls"))
        return get_bool(c, v, key, &mx->starttls);
    if (!strcmp(key, "cert"))
        return parse_cert(c, v, &mx->cert);
    return unknown_key(c, k, "an mx entry", "starttls, cert");
}

static int mxs_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scenario *s = arg;
    sts_scn_mx *nv = realloc(s->mx, (s->nmx + 1) * sizeof(*nv));
    if (!nv)
        return fail(c, k, "out of memory");
    s->mx = nv;
    sts_scn_mx *mx = &s->mx[s->nmx++];
    memset(mx, 0, sizeof(*mx));
    mx->starttls = 1;
    mx->line = (int)k->start_mark.line + 1;
    if (!(mx->host = strdup(key)))
        return fail(c, k, "out of memory");
    if (check_hostname(c, k, mx->host, 0))
        return -1;
    if (is_null(v))
        return 0;
    return each_pair(c, v, "an mx entry", mx_pair, mx);
}

/* ---- sender ---- */

static int is_mode(const char *m)
{
    return !strcmp(m, "enforce") || !strcmp(m, "testing") || !strcmp(m, "none");
}

static int sender_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_sender *snd = arg;
    if (!strcmp(key, "require_tls"))
        return get_bool(c, v, key, &snd->require_tls);
    if (!strcmp(key, "mode")) {
        if (get_string(c, v, key, &snd->mode))
            return -1;
        if (!is_mode(snd->mode) && strcmp(snd->mode, "auto"))
            return fail(c, v, "sender 'mode' must be auto, enforce, testing or none");
        return 0;
    }
    if (!strcmp(key, "rcpt"))
        return get_string(c, v, key, &snd->rcpt);
    return unknown_key(c, k, "sender", "require_tls, mode, rcpt");
}

/* ---- expect ---- */

static const char *const result_types[] = {
    "starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
    "certificate-not-trusted", "validation-failure", "sts-policy-fetch-error",
    "sts-policy-invalid", "sts-webpki-invalid", "tlsa-invalid", "dnssec-invalid",
    "dane-required", NULL};

static int get_choice(scn_ctx *c, yaml_node_t *v, const char *key, const char *const *choices,
                      char **out)
{
    if (get_string(c, v, key, out))
        return -1;
    for (size_t i = 0; choices[i]; i++)
        if (!strcmp(*out, choices[i]))
            return 0;
    char list[256] = "";
    for (size_t i = 0; choices[i]; i++)
        snprintf(list + strlen(list), sizeof(list) - strlen(list), "%s%s", i ? ", " : "",
                 choices[i]);
    return fail(c, v, "'%s' must be one of %s, not '%s'", key, list, *out);
}

static int expect_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_expect *e = arg;
    static const char *const outcomes[] = {"delivered", "deferred", "failed", NULL};
    static const char *const tls[] = {"verified", "unverified", "none", NULL};
    static const char *const sources[] = {"fetched", "cache", "none", NULL};
    if (!strcmp(key, "outcome"))
        return get_choice(c, v, key, outcomes, &e->outcome);
    if (!strcmp(key, "exit"))
        return get_int(c, v, key, 0, 255, &e->exit_status);
    if (!strcmp(key, "failures")) {
        e->failures_set = 1;
        if (v->type == YAML_SEQUENCE_NODE &&
            v->data.sequence.items.start == v->data.sequence.items.top)
            return 0;
        if (get_strv(c, v, key, &e->failures))
            return -1;
        for (size_t i = 0; i < e->failures.n; i++) {
            size_t j = 0;
            while (result_types[j] && strcmp(result_types[j], e->failures.v[i]))
                j++;
            if (!result_types[j])
                return fail(c, v, "'%s' is not an RFC 8460 result type", e->failures.v[i]);
        }
        return 0;
    }
    if (!strcmp(key, "tls"))
        return get_choice(c, v, key, tls, &e->tls);
    if (!strcmp(key, "received"))
        return get_int(c, v, key, 0, 1000, &e->received);
    if (!strcmp(key, "policy_source"))
        return get_choice(c, v, key, sources, &e->policy_source);
    if (!strcmp(key, "policy_fetched"))
        return get_bool(c, v, key, &e->policy_fetched);
    if (!strcmp(key, "delivered_to")) {
        e->delivered_to_set = 1;
        if (v->type == YAML_SEQUENCE_NODE &&
            v->data.sequence.items.start == v->data.sequence.items.top)
            return 0;
        if (get_strv(c, v, key, &e->delivered_to))
            return -1;
        for (size_t i = 0; i < e->delivered_to.n; i++)
            if (check_hostname(c, v, e->delivered_to.v[i], 0))
                return -1;
        return 0;
    }
    return unknown_key(c, k, "an expectation",
                       "outcome, exit, failures, tls, received, policy_source, policy_fetched, "
                       "delivered_to");
}

static int expects_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scenario *s = arg;
    if (!is_mode(key))
        return fail(c, k, "expect keys are modes (enforce, testing, none), not '%s'", key);
    sts_scn_expect *nv = realloc(s->expect, (s->nexpect + 1) * sizeof(*nv));
    if (!nv)
        return fail(c, k, "out of memory");
    s->expect = nv;
    sts_scn_expect *e = &s->expect[s->nexpect++];
    memset(e, 0, sizeof(*e));
    e->exit_status = -1;
    e->received = -1;
    e->policy_fetched = -1;
    e->line = (int)k->start_mark.line + 1;
    if (!(e->mode = strdup(key)))
        return fail(c, k, "out of memory");
    return each_pair(c, v, "an expectation", expect_pair, e);
}

/* ---- top level ---- */

typedef struct top_seen {
    yaml_node_t *expect, *modes;
} top_seen;

static int top_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scenario *s = ((void **)arg)[0];
    top_seen *seen = ((void **)arg)[1];
    if (!strcmp(key, "name"))
        return get_string(c, v, key, &s->name);
    if (!strcmp(key, "about"))
        return get_string(c, v, key, &s->about);
    if (!strcmp(key, "refs"))
        return get_strv(c, v, key, &s->refs);
    if (!strcmp(key, "domain")) {
        if (get_string(c, v, key, &s->domain))
            return -1;
        return check_hostname(c, v, s->domain, 0);
    }
    if (!strcmp(key, "dns")) {
        s->dns_line = (int)v->start_mark.line + 1;
        /* A literal block scalar ("dns: |") starts on the next line. */
        if (v->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
            v->data.scalar.style == YAML_FOLDED_SCALAR_STYLE)
            s->dns_line++;
        return get_string(c, v, key, &s->dns);
    }
    if (!strcmp(key, "policy"))
        return parse_policy(c, v, &s->policy);
    if (!strcmp(key, "mx"))
        return each_pair(c, v, "mx", mxs_pair, s);
    if (!strcmp(key, "modes")) {
        seen->modes = v;
        if (get_strv(c, v, key, &s->modes))
            return -1;
        for (size_t i = 0; i < s->modes.n; i++)
            if (!is_mode(s->modes.v[i]))
                return fail(c, v, "modes must be enforce, testing or none, not '%s'",
                            s->modes.v[i]);
        return 0;
    }
    if (!strcmp(key, "sender"))
        return each_pair(c, v, "sender", sender_pair, &s->sender);
    if (!strcmp(key, "expect")) {
        seen->expect = v;
        return each_pair(c, v, "expect", expects_pair, s);
    }
    return unknown_key(c, k, "the scenario",
                       "name, about, refs, domain, dns, policy, mx, modes, sender, expect");
}

static int validate(scn_ctx *c, yaml_node_t *root, sts_scenario *s, top_seen *seen)
{
    static const char *const required[] = {"name", "about", "refs", "domain", "expect"};
    const void *have[] = {s->name, s->about, s->refs.v, s->domain, seen->expect};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!have[i])
            return fail(c, root, "missing required key '%s'", required[i]);
    if (!s->modes.n && strv_push(&s->modes, "enforce"))
        return fail(c, root, "out of memory");
    /* Every mode run must have an expectation, and every expectation a mode run:
     * an expectation that is never checked is a test that cannot fail. */
    for (size_t i = 0; i < s->modes.n; i++)
        if (!sts_scenario_expect(s, s->modes.v[i]))
            return fail(c, seen->expect, "no expectation for mode '%s' listed in modes",
                        s->modes.v[i]);
    for (size_t i = 0; i < s->nexpect; i++) {
        size_t j = 0;
        while (j < s->modes.n && strcmp(s->modes.v[j], s->expect[i].mode))
            j++;
        if (j == s->modes.n) {
            yaml_node_t at = *seen->expect;
            at.start_mark.line = (size_t)s->expect[i].line - 1;
            at.start_mark.column = 2;
            return fail(c, &at, "expectation for mode '%s' which is not in modes",
                        s->expect[i].mode);
        }
    }
    return 0;
}

sts_scenario *sts_scenario_parse(const char *text, size_t len, const char *name, char *err,
                                 size_t errlen)
{
    scn_ctx c = {.name = name, .err = err, .errlen = errlen};
    yaml_parser_t parser;
    if (errlen)
        err[0] = '\0';
    if (!yaml_parser_initialize(&parser)) {
        snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, &c.doc)) {
        snprintf(err, errlen, "%s:%zu:%zu: YAML error: %s%s%s", name,
                 parser.problem_mark.line + 1, parser.problem_mark.column + 1,
                 parser.problem ? parser.problem : "malformed",
                 parser.context ? " " : "", parser.context ? parser.context : "");
        yaml_parser_delete(&parser);
        return NULL;
    }
    yaml_parser_delete(&parser);

    sts_scenario *s = calloc(1, sizeof(*s));
    yaml_node_t *root = yaml_document_get_root_node(&c.doc);
    if (!s) {
        fail(&c, NULL, "out of memory");
    } else if (!root) {
        fail(&c, NULL, "empty file: a scenario is a YAML mapping");
    } else {
        s->policy.max_age = -1;
        s->policy.status = 200;
        s->file = strdup(name);
        top_seen seen = {0};
        void *args[2] = {s, &seen};
        if (!each_pair(&c, root, "a scenario file", top_pair, args))
            validate(&c, root, s, &seen);
    }
    yaml_document_delete(&c.doc);
    if (c.failed) {
        sts_scenario_free(s);
        return NULL;
    }
    return s;
}

sts_scenario *sts_scenario_load(const char *path, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *text = malloc(SCN_MAX_FILE + 1);
    size_t len = text ? fread(text, 1, SCN_MAX_FILE + 1, fp) : 0;
    int rerr = ferror(fp);
    fclose(fp);
    if (!text || rerr) {
        snprintf(err, errlen, "%s: cannot read: %s", path, text ? strerror(errno) : "no memory");
        free(text);
        return NULL;
    }
    if (len > SCN_MAX_FILE) {
        snprintf(err, errlen, "%s: larger than %d bytes", path, SCN_MAX_FILE);
        free(text);
        return NULL;
    }
    sts_scenario *s = sts_scenario_parse(text, len, path, err, errlen);
    free(text);
    return s;
}

void sts_scenario_free(sts_scenario *s)
{
    if (!s)
        return;
    free(s->file);
    free(s->name);
    free(s->about);
    strv_free(&s->refs);
    free(s->domain);
    free(s->dns);
    free(s->policy.mode);
    strv_free(&s->policy.mx);
    free(s->policy.body);
    free(s->policy.content_type);
    cert_free(&s->policy.cert);
    for (size_t i = 0; i < s->nmx; i++) {
        free(s->mx[i].host);
        cert_free(&s->mx[i].cert);
    }
    free(s->mx);
    strv_free(&s->modes);
    free(s->sender.mode);
    free(s->sender.rcpt);
    for (size_t i = 0; i < s->nexpect; i++) {
        sts_scn_expect *e = &s->expect[i];
        free(e->mode);
        free(e->outcome);
        strv_free(&e->failures);
        free(e->tls);
        free(e->policy_source);
        strv_free(&e->delivered_to);
    }
    free(s->expect);
    free(s);
}

const sts_scn_expect *sts_scenario_expect(const sts_scenario *s, const char *mode)
{
    for (size_t i = 0; i < s->nexpect; i++)
        if (!strcmp(s->expect[i].mode, mode))
            return &s->expect[i];
    return NULL;
}

char *sts_scenario_subst(const char *s, const char *mode)
{
    if (!s)
        return NULL;
    static const char var[] = "${mode}";
    size_t vl = sizeof(var) - 1, ml = strlen(mode), n = 0;
    for (const char *p = strstr(s, var); p; p = strstr(p + vl, var))
        n++;
    char *out = malloc(strlen(s) + n * ml + 1);
    if (!out)
        return NULL;
    char *o = out;
    for (const char *p = s;;) {
        const char *q = strstr(p, var);
        if (!q) {
            strcpy(o, p);
            break;
        }
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, mode, ml);
        o += ml;
        p = q + vl;
    }
    return out;
}
