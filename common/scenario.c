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
#include "common/rfcref.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
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
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") || !strcmp(s, "NULL");
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

static int get_long(scn_ctx *c, const yaml_node_t *n, const char *key, long lo, long hi, long *out)
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

static int get_int(scn_ctx *c, const yaml_node_t *n, const char *key, long lo, long hi, int *out)
{
    long v = 0;
    if (get_long(c, n, key, lo, hi, &v))
        return -1;
    *out = (int)v;
    return 0;
}

/* Seconds as a plain number (integer or decimal), lo..hi. */
static int get_seconds(scn_ctx *c, const yaml_node_t *n, const char *key, double hi, double *out)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return fail(c, n, "'%s' must be a number of seconds", key);
    const char *s = scalar(n);
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (!*s || *end || errno || !(v >= 0 && v <= hi) || strchr(s, 'x') || strchr(s, 'X'))
        return fail(c, n, "'%s' must be a number of seconds from 0 to %g, not '%s'", key, hi, s);
    *out = v;
    return 0;
}

/* A duration: an integer number of seconds, or an integer with a unit s, m, h or d
 * ("90s", "10m", "25h", "2d"). At most 100 years. */
static int get_duration(scn_ctx *c, const yaml_node_t *n, const char *key, long *out)
{
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return fail(c, n, "'%s' must be a duration such as 90s, 10m, 25h, 2d or seconds", key);
    const char *s = scalar(n);
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    long unit = 1;
    if (end != s && *end && !end[1]) {
        unit = *end == 's' ? 1 : *end == 'm' ? 60 : *end == 'h' ? 3600 : *end == 'd' ? 86400 : 0;
        if (unit)
            end++;
    }
    if (end == s || *end || errno || !isdigit((unsigned char)s[0]) || !unit || v < 0 ||
        v > 100L * 366 * 86400 / unit)
        return fail(c, n, "'%s' must be a duration such as 90s, 10m, 25h, 2d or seconds, not '%s'",
                    key, s);
    *out = v * unit;
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

/* `refs`: a list of strings (or one), each naming a section that exists when it cites
 * an RFC whose sections common/rfcref.c knows. A section of an RFC whose sections are
 * not known (sts_rfcref_check returns 1) is accepted; `run --list` says so. */
static int get_refs(scn_ctx *c, const yaml_node_t *n, sts_strv *out)
{
    if (get_strv(c, n, "refs", out))
        return -1;
    for (size_t i = 0; i < out->n; i++) {
        char why[256];
        if (sts_rfcref_check(out->v[i], why, sizeof(why)) < 0) {
            const yaml_node_t *at = n;
            if (n->type == YAML_SEQUENCE_NODE)
                at = yaml_document_get_node(&c->doc, n->data.sequence.items.start[i]);
            return fail(c, at, "refs: '%s': %s", out->v[i], why);
        }
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

/* ---- names ---- */

static const char *const stage_names[STS_SCN_NSTAGES] = {
    "greeting", "ehlo", "starttls", "mail", "rcpt", "data", "dot", "rset", "quit"};

const char *sts_scn_stage_name(int stage)
{
    return stage >= 0 && stage < STS_SCN_NSTAGES ? stage_names[stage] : NULL;
}

static int stage_of(const char *name)
{
    for (int i = 0; i < STS_SCN_NSTAGES; i++)
        if (!strcmp(name, stage_names[i]))
            return i;
    return -1;
}

static const char *const dns_fault_names[] = {"servfail", "refused", "nxdomain", "timeout",
                                              "truncate", "delay",   "wrong_id", "wrong_source"};

const char *sts_scn_dns_fault_name(int fault)
{
    return fault >= 0 && fault < (int)(sizeof(dns_fault_names) / sizeof(dns_fault_names[0]))
               ? dns_fault_names[fault]
               : NULL;
}

/* ---- words of a vocabulary (common/vocab.h) ---- */

/* The words of voc as "a, b, c", each between quote marks q, for messages. */
static void vocab_list(const sts_vocab *voc, const char *q, char *out, size_t outlen)
{
    out[0] = '\0';
    for (size_t i = 0; i < voc->n; i++)
        snprintf(out + strlen(out), outlen - strlen(out), "%s%s%s%s", i ? ", " : "", q,
                 voc->words[i].name, q);
}

/* A word of vocabulary voc (common/vocab.h): its value into *out and *set = 1, else
 * "'key' must be one of ..." (*out = 0). */
static int get_word(scn_ctx *c, yaml_node_t *v, const char *key, const sts_vocab *voc, int *out,
                    int *set)
{
    char *s = NULL;
    *out = 0;
    if (get_string(c, v, key, &s))
        return -1;
    if (!sts_vocab_parse(voc, s, out)) {
        free(s);
        *set = 1;
        return 0;
    }
    char list[256];
    vocab_list(voc, "", list, sizeof(list));
    int rc = fail(c, v, "'%s' must be one of %s, not '%s'", key, list, s);
    free(s);
    return rc;
}

/* ---- tls_versions ---- */

static int get_tls_version(scn_ctx *c, yaml_node_t *v, const char *key, sts_tls_version *out)
{
    /* A plain 1.0 is a YAML float; the text is what counts. */
    if (v->type == YAML_SCALAR_NODE && !sts_tls_version_parse(scalar(v), out))
        return 0;
    char list[128];
    vocab_list(&sts_vocab_tls_version, "\"", list, sizeof(list));
    return fail(c, v, "'%s' must be one of %s", key, list);
}

static int tls_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_tls_versions *t = arg;
    if (!strcmp(key, "min"))
        return get_tls_version(c, v, key, &t->min);
    if (!strcmp(key, "max"))
        return get_tls_version(c, v, key, &t->max);
    return fail(c, k, "unknown key '%s' in tls_versions (allowed: min, max)", key);
}

static int parse_tls_versions(scn_ctx *c, yaml_node_t *n, sts_scn_tls_versions *t)
{
    if (each_pair(c, n, "tls_versions", tls_pair, t))
        return -1;
    if (t->min && t->max && t->min > t->max)
        return fail(c, n, "tls_versions: min is above max");
    return 0;
}

/* ---- SMTP replies ---- */

/* A scripted SMTP reply: one or more lines "ddd text", joined by CRLF or LF, with
 * RFC 5321 4.2.1's continuation marks ("ddd-" on every line but the last, which has
 * "ddd " or just "ddd"). Stored with CRLF line ends, CRLF-terminated. */
static int get_reply(scn_ctx *c, yaml_node_t *v, const char *key, char **out)
{
    char *text = NULL;
    if (get_string(c, v, key, &text))
        return -1;
    size_t len = strlen(text);
    char *r = malloc(2 * len + 3);
    if (!r) {
        free(text);
        return fail(c, v, "out of memory");
    }
    size_t o = 0;
    int rc = 0;
    const char *p = text;
    /* Drop one final line end: "550 no\r\n" and "550 no" are the same reply. */
    if (len >= 2 && !strcmp(text + len - 2, "\r\n"))
        text[len - 2] = '\0';
    else if (len >= 1 && text[len - 1] == '\n')
        text[len - 1] = '\0';
    for (int lineno = 1; !rc; lineno++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        if (nl && n && p[n - 1] == '\r')
            n--;
        int last = nl == NULL;
        if (n < 3 || !isdigit((unsigned char)p[0]) || !isdigit((unsigned char)p[1]) ||
            !isdigit((unsigned char)p[2]) || p[0] < '2' || p[0] > '5')
            rc = fail(c, v, "'%s' line %d must start with a reply code 200-599", key, lineno);
        else if (n > 3 && p[3] != (last ? ' ' : '-'))
            rc = fail(c, v, "'%s' line %d: '%c' after the code; RFC 5321 4.2.1 wants '%s'", key,
                      lineno, p[3], last ? "ddd " : "ddd-");
        else if (!last && n == 3)
            rc = fail(c, v, "'%s' line %d: a line before the last needs 'ddd-'", key, lineno);
        else if (lineno > 1 && memcmp(p, text, 3))
            rc = fail(c, v, "'%s' line %d: every line of a reply has the same code", key, lineno);
        else if (memchr(p, '\r', n))
            rc = fail(c, v, "'%s' line %d: a bare CR", key, lineno);
        if (rc)
            break;
        memcpy(r + o, p, n);
        o += n;
        r[o++] = '\r';
        r[o++] = '\n';
        if (last)
            break;
        p = nl + 1;
    }
    r[o] = '\0';
    free(text);
    if (rc) {
        free(r);
        return -1;
    }
    free(*out);
    *out = r;
    return 0;
}

/* ---- cert ---- */

static int cert_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_cert *cert = arg;
    if (!strcmp(key, "names")) {
        cert->names_set = 1;
        if (v->type == YAML_SEQUENCE_NODE &&
            v->data.sequence.items.start == v->data.sequence.items.top) {
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
    if (!strcmp(key, "chain")) {
        static const char *const chains[] = {"direct", "intermediate", "missing_intermediate"};
        for (int i = 0; i < 3; i++)
            if (v->type == YAML_SCALAR_NODE && !strcmp(scalar(v), chains[i])) {
                cert->chain = i;
                return 0;
            }
        return fail(c, v, "'chain' must be direct, intermediate or missing_intermediate");
    }
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
                       "names, cn, no_san, expired, not_yet_valid, self_signed, unknown_ca, key, "
                       "chain");
}

static int parse_cert(scn_ctx *c, yaml_node_t *n, sts_scn_cert *cert)
{
    if (each_pair(c, n, "cert", cert_pair, cert))
        return -1;
    if (cert->expired && cert->not_yet_valid)
        return fail(c, n, "a cert cannot be both expired and not_yet_valid");
    if (cert->chain != STS_SCN_CHAIN_DIRECT && (cert->self_signed || cert->unknown_ca))
        return fail(c, n, "'chain' cannot be combined with self_signed or unknown_ca");
    return 0;
}

static void cert_free(sts_scn_cert *cert)
{
    strv_free(&cert->names);
    free(cert->cn);
}

/* ---- policy ---- */

/* RFC 9110 5.6.2: tchar. */
static int is_tchar(unsigned char ch)
{
    return isalnum(ch) || (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

/* headers: {Name: value}: a field name (token) and a value without CR, LF or NUL
 * (RFC 9110 5.5), so that no header can smuggle another one in. */
static int header_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_policy *p = arg;
    if (!*key)
        return fail(c, k, "a header name cannot be empty");
    for (const char *q = key; *q; q++)
        if (!is_tchar((unsigned char)*q))
            return fail(c, k, "'%s' is not an HTTP field name (character '%c')", key, *q);
    if (v->type != YAML_SCALAR_NODE)
        return fail(c, v, "the value of header '%s' must be a string, not %s", key, node_kind(v));
    for (const char *q = scalar(v); *q; q++)
        if ((unsigned char)*q < ' ' && *q != '\t')
            return fail(c, v, "the value of header '%s' has a control character", key);
    if (strv_push(&p->headers, key) || strv_push(&p->headers, scalar(v)))
        return fail(c, v, "out of memory");
    return 0;
}

/* handshake: normal | abort (policy host and MX). */
static int get_handshake(scn_ctx *c, yaml_node_t *v, int *abort_it)
{
    if (v->type == YAML_SCALAR_NODE && !strcmp(scalar(v), "abort")) {
        *abort_it = 1;
        return 0;
    }
    if (v->type == YAML_SCALAR_NODE && !strcmp(scalar(v), "normal")) {
        *abort_it = 0;
        return 0;
    }
    return fail(c, v, "'handshake' must be normal or abort");
}

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
    if (!strcmp(key, "status")) {
        p->status_set = 1;
        return get_int(c, v, key, 100, 599, &p->status);
    }
    if (!strcmp(key, "content_type"))
        return get_string(c, v, key, &p->content_type);
    if (!strcmp(key, "cert"))
        return parse_cert(c, v, &p->cert);
    if (!strcmp(key, "redirect")) {
        if (get_string(c, v, key, &p->redirect))
            return -1;
        for (const char *q = p->redirect; *q; q++)
            if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
                return fail(c, v, "'redirect' must be a URI without spaces or control characters");
        return 0;
    }
    if (!strcmp(key, "headers"))
        return each_pair(c, v, "headers", header_pair, p);
    if (!strcmp(key, "size"))
        return get_long(c, v, key, 0, 64L * 1024 * 1024, &p->size);
    if (!strcmp(key, "chunked"))
        return get_bool(c, v, key, &p->chunked);
    if (!strcmp(key, "delay"))
        return get_seconds(c, v, key, 600, &p->delay);
    if (!strcmp(key, "drip"))
        return get_seconds(c, v, key, 10, &p->drip);
    if (!strcmp(key, "cut_after"))
        return get_long(c, v, key, 0, 64L * 1024 * 1024, &p->cut_after);
    if (!strcmp(key, "tls_versions"))
        return parse_tls_versions(c, v, &p->tls);
    if (!strcmp(key, "absent"))
        return get_bool(c, v, key, &p->absent);
    if (!strcmp(key, "https")) {
        int on = 1;
        if (get_bool(c, v, key, &on))
            return -1;
        p->https_off = !on;
        return 0;
    }
    if (!strcmp(key, "handshake"))
        return get_handshake(c, v, &p->handshake_abort);
    if (!strcmp(key, "keep_alive"))
        return get_bool(c, v, key, &p->keep_alive);
    return unknown_key(c, k, "policy",
                       "mode, mx, max_age, body, status, content_type, cert, redirect, headers, "
                       "size, chunked, delay, drip, cut_after, tls_versions, https, handshake, "
                       "keep_alive, absent");
}

static void policy_init(sts_scn_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->max_age = -1;
    p->status = 200;
    p->size = -1;
    p->cut_after = -1;
    p->keep_alive = 1;
}

static int parse_policy(scn_ctx *c, yaml_node_t *n, sts_scn_policy *p)
{
    p->present = 1;
    p->line = (int)n->start_mark.line + 1;
    if (each_pair(c, n, "policy", policy_pair, p))
        return -1;
    if (p->absent) {
        if (n->data.mapping.pairs.top - n->data.mapping.pairs.start != 1)
            return fail(c, n, "a policy with 'absent: true' has no other keys");
        p->present = 0;
        return 0;
    }
    /* A policy is either given verbatim or built from its fields; a built one must
     * name a mode, so a typo cannot silently serve an empty policy. A redirect
     * needs neither: its body is not a policy. */
    if (!p->body && !p->mode && !p->redirect)
        return fail(c, n, "policy needs 'mode' (or a verbatim 'body')");
    if (p->redirect && !p->status_set)
        p->status = 301;
    if (p->body && p->size >= 0)
        return fail(c, n, "'size' pads a policy built from mode/mx/max_age, not a verbatim body");
    /* Both act on the HTTPS listener: one closes at accept, the other waits for the
     * ClientHello; together the abort could never happen. */
    if (p->https_off && p->handshake_abort)
        return fail(c, n,
                    "'handshake: abort' needs the HTTPS listener that 'https: false' turns off");
    return 0;
}

/* ---- mx ---- */

static int replies_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_mx *mx = arg;
    int st = stage_of(key);
    if (st < 0)
        return unknown_key(c, k, "replies",
                           "greeting, ehlo, starttls, mail, rcpt, data, dot, rset, quit");
    if (mx->replies[st])
        return fail(c, k, "the %s reply is given twice", key);
    return get_reply(c, v, key, &mx->replies[st]);
}

static int delay_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_mx *mx = arg;
    int st = stage_of(key);
    if (st < 0)
        return unknown_key(c, k, "delay",
                           "greeting, ehlo, starttls, mail, rcpt, data, dot, rset, quit");
    return get_seconds(c, v, key, 600, &mx->delay[st]);
}

static int mx_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_mx *mx = arg;
    if (!strcmp(key, "starttls"))
        return get_bool(c, v, key, &mx->starttls);
    if (!strcmp(key, "require_tls"))
        return get_bool(c, v, key, &mx->require_tls);
    if (!strcmp(key, "cert"))
        return parse_cert(c, v, &mx->cert);
    if (!strcmp(key, "greeting") || !strcmp(key, "starttls_reply")) {
        int st = key[0] == 'g' ? STS_SCN_STAGE_GREETING : STS_SCN_STAGE_STARTTLS;
        if (mx->replies[st])
            return fail(c, k, "the %s reply is given twice", stage_names[st]);
        return get_reply(c, v, key, &mx->replies[st]);
    }
    if (!strcmp(key, "inject_after_starttls"))
        return get_string(c, v, key, &mx->inject_after_starttls);
    if (!strcmp(key, "tls_versions"))
        return parse_tls_versions(c, v, &mx->tls);
    if (!strcmp(key, "handshake"))
        return get_handshake(c, v, &mx->handshake_abort);
    if (!strcmp(key, "replies"))
        return each_pair(c, v, "replies", replies_pair, mx);
    if (!strcmp(key, "delay"))
        return each_pair(c, v, "delay", delay_pair, mx);
    if (!strcmp(key, "disconnect_after")) {
        if (v->type != YAML_SCALAR_NODE || (mx->disconnect_after = stage_of(scalar(v))) < 0)
            return fail(c, v,
                        "'disconnect_after' must be one of greeting, ehlo, starttls, mail, "
                        "rcpt, data, dot, rset, quit");
        return 0;
    }
    if (!strcmp(key, "ehlo_keywords")) {
        mx->ehlo_keywords_set = 1;
        if (v->type == YAML_SEQUENCE_NODE &&
            v->data.sequence.items.start == v->data.sequence.items.top)
            return 0;
        if (get_strv(c, v, key, &mx->ehlo_keywords))
            return -1;
        /* RFC 5321 4.1.1.1: ehlo-line = ehlo-keyword *( SP ehlo-param ). */
        for (size_t i = 0; i < mx->ehlo_keywords.n; i++) {
            const char *kw = mx->ehlo_keywords.v[i];
            if (!isalnum((unsigned char)kw[0]))
                return fail(c, v, "ehlo keyword '%s' must start with a letter or digit", kw);
            for (const char *q = kw; *q; q++)
                if ((unsigned char)*q < ' ' || (unsigned char)*q >= 0x7f)
                    return fail(c, v, "ehlo keyword '%s' has a control character", kw);
            if (!strncasecmp(kw, "STARTTLS", 8) && (!kw[8] || kw[8] == ' '))
                return fail(c, v, "STARTTLS is governed by 'starttls', not ehlo_keywords");
        }
        return 0;
    }
    return unknown_key(c, k, "an mx entry",
                       "starttls, require_tls, cert, greeting, starttls_reply, "
                       "inject_after_starttls, tls_versions, handshake, replies, delay, "
                       "disconnect_after, ehlo_keywords");
}

static int add_mx(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, sts_scn_mx **mxv,
                  size_t *nmx)
{
    for (size_t i = 0; i < *nmx; i++)
        if (!strcasecmp((*mxv)[i].host, key))
            return fail(c, k, "mx host '%s' is listed twice", key);
    sts_scn_mx *nv = realloc(*mxv, (*nmx + 1) * sizeof(*nv));
    if (!nv)
        return fail(c, k, "out of memory");
    *mxv = nv;
    sts_scn_mx *mx = &nv[(*nmx)++];
    memset(mx, 0, sizeof(*mx));
    mx->starttls = 1;
    mx->disconnect_after = -1;
    mx->line = (int)k->start_mark.line + 1;
    if (!(mx->host = strdup(key)))
        return fail(c, k, "out of memory");
    if (check_hostname(c, k, mx->host, 0))
        return -1;
    if (is_null(v))
        return 0;
    if (each_pair(c, v, "an mx entry", mx_pair, mx))
        return -1;
    if (mx->inject_after_starttls && mx->replies[STS_SCN_STAGE_STARTTLS])
        return fail(c, v, "inject_after_starttls needs the normal 220 reply to STARTTLS");
    if (mx->require_tls && !mx->starttls)
        return fail(c, v,
                    "require_tls needs starttls: an MX that offers no TLS could take no mail");
    return 0;
}

static int mxs_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scenario *s = arg;
    return add_mx(c, key, k, v, &s->mx, &s->nmx);
}

/* ---- dns_faults ---- */

static int dns_fault_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_dns_fault *f = arg;
    if (!strcmp(key, "name")) {
        if (get_string(c, v, key, &f->name))
            return -1;
        for (const char *q = f->name; *q; q++)
            if ((unsigned char)*q <= ' ' || (unsigned char)*q >= 0x7f)
                return fail(c, v, "'name' must be a domain name as in a zone line");
        return 0;
    }
    if (!strcmp(key, "type")) {
        if (get_string(c, v, key, &f->type))
            return -1;
        for (char *q = f->type; *q; q++) {
            if (!isalnum((unsigned char)*q))
                return fail(c, v, "'type' must be a record type such as TXT, MX, A or ANY");
            *q = (char)toupper((unsigned char)*q);
        }
        return 0;
    }
    if (!strcmp(key, "fault")) {
        for (int i = 0; sts_scn_dns_fault_name(i); i++)
            if (v->type == YAML_SCALAR_NODE && !strcmp(scalar(v), sts_scn_dns_fault_name(i))) {
                f->fault = i;
                return 0;
            }
        return fail(c, v,
                    "'fault' must be one of servfail, refused, nxdomain, timeout, truncate, "
                    "delay, wrong_id, wrong_source");
    }
    if (!strcmp(key, "delay"))
        return get_seconds(c, v, key, 600, &f->delay);
    return unknown_key(c, k, "a dns fault", "name, type, fault, delay");
}

static int parse_dns_faults(scn_ctx *c, yaml_node_t *n, sts_scn_dns_fault **out, size_t *nout)
{
    if (n->type != YAML_SEQUENCE_NODE)
        return fail(c, n, "'dns_faults' must be a list, not %s", node_kind(n));
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *e = yaml_document_get_node(&c->doc, *it);
        sts_scn_dns_fault *nv = realloc(*out, (*nout + 1) * sizeof(*nv));
        if (!nv)
            return fail(c, e, "out of memory");
        *out = nv;
        sts_scn_dns_fault *f = &nv[(*nout)++];
        memset(f, 0, sizeof(*f));
        f->fault = -1;
        f->line = (int)e->start_mark.line + 1;
        if (each_pair(c, e, "a dns fault", dns_fault_pair, f))
            return -1;
        if (!f->name)
            return fail(c, e, "a dns fault needs 'name'");
        if (f->fault < 0)
            return fail(c, e, "a dns fault needs 'fault'");
        if (!f->type && !(f->type = strdup("ANY")))
            return fail(c, e, "out of memory");
        if (f->fault == STS_SCN_DNS_DELAY && !(f->delay > 0))
            return fail(c, e, "fault 'delay' needs 'delay' (seconds, above 0)");
        if (f->fault == STS_SCN_DNS_TIMEOUT && f->delay > 0)
            return fail(c, e, "fault 'timeout' never answers: 'delay' makes no sense with it");
    }
    return 0;
}

static void dns_faults_free(sts_scn_dns_fault *f, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(f[i].name);
        free(f[i].type);
    }
    free(f);
}

/* ---- tlsrpt ---- */

/* A string of printable ASCII (a URI path, a TXT record as published): 0, else an
 * error naming the key. */
static int check_printable(scn_ctx *c, const yaml_node_t *n, const char *key, const char *s,
                           int allow_space)
{
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q < ' ' || (unsigned char)*q >= 0x7f || (!allow_space && *q == ' '))
            return fail(c, n, "'%s' must be printable ASCII%s (character 0x%02x)", key,
                        allow_space ? "" : " without spaces", (unsigned char)*q);
    return 0;
}

static int tlsrpt_https_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_tlsrpt *t = arg;
    if (!strcmp(key, "host")) {
        if (get_string(c, v, key, &t->https_host))
            return -1;
        return check_hostname(c, v, t->https_host, 0);
    }
    if (!strcmp(key, "path")) {
        if (get_string(c, v, key, &t->https_path) || check_printable(c, v, key, t->https_path, 0))
            return -1;
        if (t->https_path[0] != '/')
            return fail(c, v, "'path' must start with '/'");
        return 0;
    }
    if (!strcmp(key, "fault")) {
        int set = 0;
        return get_word(c, v, key, &sts_vocab_collector_fault, &t->https_fault, &set);
    }
    if (!strcmp(key, "cert"))
        return parse_cert(c, v, &t->https_cert);
    return unknown_key(c, k, "tlsrpt https", "host, path, fault, cert");
}

static int tlsrpt_mailto_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v,
                              void *arg)
{
    sts_scn_tlsrpt *t = arg;
    if (!strcmp(key, "address")) {
        if (get_string(c, v, key, &t->mailto) || check_printable(c, v, key, t->mailto, 0))
            return -1;
        char *at = strrchr(t->mailto, '@');
        if (!at || at == t->mailto || strchr(t->mailto, '@') != at || strpbrk(t->mailto, "<>,;!"))
            return fail(c, v, "'address' must be one address local@domain, not '%s'", t->mailto);
        return check_hostname(c, v, at + 1, 0);
    }
    return unknown_key(c, k, "tlsrpt mailto", "address");
}

static int tlsrpt_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_tlsrpt *t = arg;
    if (!strcmp(key, "record")) {
        t->record_set = 1;
        if (get_strv(c, v, key, &t->record))
            return -1;
        if (!t->record.n)
            return fail(c, v, "'record' must name at least one record");
        for (size_t i = 0; i < t->record.n; i++) {
            if (check_printable(c, v, key, t->record.v[i], 1))
                return -1;
            /* RFC 2181 5: an RRset holds no two identical records; a resolver that
             * drops the copy would see one record where the scenario means two. */
            for (size_t j = 0; j < i; j++)
                if (!strcmp(t->record.v[j], t->record.v[i]))
                    return fail(c, v,
                                "'record' lists '%s' twice: a DNS server sends a record once "
                                "(RFC 2181 5)",
                                t->record.v[i]);
        }
        return 0;
    }
    if (!strcmp(key, "https")) {
        t->https_set = 1;
        if (each_pair(c, v, "tlsrpt https", tlsrpt_https_pair, t))
            return -1;
        if (!t->https_host)
            return fail(c, v, "tlsrpt https needs 'host'");
        if (!t->https_path && !(t->https_path = strdup("/tlsrpt")))
            return fail(c, v, "out of memory");
        return 0;
    }
    if (!strcmp(key, "mailto")) {
        t->mailto_line = (int)v->start_mark.line + 1;
        if (each_pair(c, v, "tlsrpt mailto", tlsrpt_mailto_pair, t))
            return -1;
        return t->mailto ? 0 : fail(c, v, "tlsrpt mailto needs 'address'");
    }
    if (!strcmp(key, "submitter")) {
        if (get_string(c, v, key, &t->submitter))
            return -1;
        return check_hostname(c, v, t->submitter, 0);
    }
    if (!strcmp(key, "selector")) {
        if (get_string(c, v, key, &t->selector))
            return -1;
        for (const char *q = t->selector; *q; q++)
            if (!isalnum((unsigned char)*q) && *q != '-' && *q != '_' && *q != '.')
                return fail(c, v, "'selector' must be a DNS label (letters, digits, '-', '_')");
        return 0;
    }
    return unknown_key(c, k, "tlsrpt", "record, https, mailto, submitter, selector");
}

static int parse_tlsrpt(scn_ctx *c, yaml_node_t *n, sts_scn_tlsrpt *t)
{
    t->present = 1;
    t->line = (int)n->start_mark.line + 1;
    if (each_pair(c, n, "tlsrpt", tlsrpt_pair, t))
        return -1;
    /* Without a verbatim record the record is built from the endpoints: there must
     * be one, or the section would publish "rua=" with nothing. */
    if (!t->record_set && !t->https_set && !t->mailto)
        return fail(c, n, "tlsrpt needs 'https', 'mailto' or a verbatim 'record'");
    return 0;
}

static void tlsrpt_free(sts_scn_tlsrpt *t)
{
    strv_free(&t->record);
    free(t->https_host);
    free(t->https_path);
    cert_free(&t->https_cert);
    free(t->mailto);
    free(t->submitter);
    free(t->selector);
}

static int expect_policy_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v,
                              void *arg)
{
    sts_scn_expect_policy *p = arg;
    if (!strcmp(key, "policy_type")) {
        if (get_string(c, v, key, &p->policy_type))
            return -1;
        sts_policy_type t;
        if (sts_policy_type_parse(p->policy_type, &t))
            return fail(c, v, "'%s' is not an RFC 8460 policy type", p->policy_type);
        return 0;
    }
    if (!strcmp(key, "policy_domain")) {
        if (get_string(c, v, key, &p->policy_domain))
            return -1;
        return check_hostname(c, v, p->policy_domain, 0);
    }
    if (!strcmp(key, "successful"))
        return get_long(c, v, key, 0, 1000000, &p->successful);
    if (!strcmp(key, "failed"))
        return get_long(c, v, key, 0, 1000000, &p->failed);
    if (!strcmp(key, "result_types")) {
        p->result_types_set = 1;
        if (v->type == YAML_SEQUENCE_NODE &&
            v->data.sequence.items.start == v->data.sequence.items.top)
            return 0;
        if (get_strv(c, v, key, &p->result_types))
            return -1;
        for (size_t i = 0; i < p->result_types.n; i++) {
            sts_result_type t;
            if (sts_result_type_parse(p->result_types.v[i], &t))
                return fail(c, v, "'%s' is not an RFC 8460 result type", p->result_types.v[i]);
        }
        return 0;
    }
    return unknown_key(c, k, "an expected policy",
                       "policy_type, policy_domain, successful, failed, result_types");
}

static int expect_tlsrpt_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v,
                              void *arg)
{
    sts_scn_expect_tlsrpt *t = arg;
    if (!strcmp(key, "reports"))
        return get_int(c, v, key, 0, 1000, &t->reports);
    if (!strcmp(key, "valid"))
        return get_bool(c, v, key, &t->valid);
    if (!strcmp(key, "via")) {
        t->via_set = 1;
        if (v->type == YAML_SEQUENCE_NODE &&
            v->data.sequence.items.start == v->data.sequence.items.top)
            return 0;
        if (get_strv(c, v, key, &t->via))
            return -1;
        for (size_t i = 0; i < t->via.n; i++)
            if (strcmp(t->via.v[i], "https") && strcmp(t->via.v[i], "mailto"))
                return fail(c, v, "'via' lists https and mailto, not '%s'", t->via.v[i]);
        return 0;
    }
    if (!strcmp(key, "dkim")) {
        int set = 0;
        return get_word(c, v, key, &sts_vocab_dkim_result, &t->dkim, &set);
    }
    if (!strcmp(key, "policies")) {
        t->policies_set = 1;
        if (v->type != YAML_SEQUENCE_NODE)
            return fail(c, v, "'policies' must be a list of policies, not %s", node_kind(v));
        for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
             it++) {
            yaml_node_t *e = yaml_document_get_node(&c->doc, *it);
            sts_scn_expect_policy *nv = realloc(t->policies, (t->npolicies + 1) * sizeof(*nv));
            if (!nv)
                return fail(c, e, "out of memory");
            t->policies = nv;
            sts_scn_expect_policy *p = &nv[t->npolicies++];
            memset(p, 0, sizeof(*p));
            p->successful = p->failed = -1;
            if (each_pair(c, e, "an expected policy", expect_policy_pair, p))
                return -1;
        }
        return 0;
    }
    return unknown_key(c, k, "expect tlsrpt", "reports, valid, via, dkim, policies");
}

static void expect_tlsrpt_free(sts_scn_expect_tlsrpt *t)
{
    strv_free(&t->via);
    for (size_t i = 0; i < t->npolicies; i++) {
        free(t->policies[i].policy_type);
        free(t->policies[i].policy_domain);
        strv_free(&t->policies[i].result_types);
    }
    free(t->policies);
}

/* ---- sender ---- */

/* A policy mode: enforce, testing or none (the keys of `expect`, the words of `modes`). */
static int is_mode(const char *m)
{
    sts_mode x;
    return !sts_mode_parse(m, &x);
}

static int sender_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_sender *snd = arg;
    if (!strcmp(key, "require_tls"))
        return get_bool(c, v, key, &snd->require_tls);
    if (!strcmp(key, "mode")) {
        char *m = NULL;
        if (get_string(c, v, key, &m))
            return -1;
        int bad = sts_mode_parse_option(m, &snd->mode);
        free(m);
        if (bad)
            return fail(c, v, "sender 'mode' must be auto, enforce, testing or none");
        snd->mode_set = 1;
        return 0;
    }
    if (!strcmp(key, "rcpt"))
        return get_string(c, v, key, &snd->rcpt);
    if (!strcmp(key, "dns_timeout")) {
        /* The range of `send --dns-timeout` (STS_SENDER_DNS_TIMEOUT_MIN/MAX). */
        if (get_seconds(c, v, key, 3600, &snd->dns_timeout))
            return -1;
        if (snd->dns_timeout < 0.1)
            return fail(c, v, "sender 'dns_timeout' must be at least 0.1 seconds");
        return 0;
    }
    if (!strcmp(key, "assure_tls"))
        return get_bool(c, v, key, &snd->assure_tls);
    return unknown_key(c, k, "sender", "require_tls, mode, rcpt, dns_timeout, assure_tls");
}

/* ---- expect ---- */

static int expect_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_expect *e = arg;
    int w, rc;
    if (!strcmp(key, "outcome")) {
        rc = get_word(c, v, key, &sts_vocab_outcome, &w, &e->outcome_set);
        e->outcome = (sts_outcome)w;
        return rc;
    }
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
            sts_result_type t;
            if (sts_result_type_parse(e->failures.v[i], &t))
                return fail(c, v, "'%s' is not an RFC 8460 result type", e->failures.v[i]);
        }
        return 0;
    }
    if (!strcmp(key, "tls")) {
        rc = get_word(c, v, key, &sts_vocab_delivery_tls, &w, &e->tls_set);
        e->tls = (sts_delivery_tls)w;
        return rc;
    }
    if (!strcmp(key, "received"))
        return get_int(c, v, key, 0, 1000, &e->received);
    if (!strcmp(key, "policy_source")) {
        rc = get_word(c, v, key, &sts_vocab_policy_source, &w, &e->policy_source_set);
        e->policy_source = (sts_policy_source)w;
        return rc;
    }
    if (!strcmp(key, "policy_fetched"))
        return get_bool(c, v, key, &e->policy_fetched);
    if (!strcmp(key, "policy_abandoned"))
        return get_bool(c, v, key, &e->policy_abandoned);
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
    if (!strcmp(key, "assuredness")) {
        if (get_int(c, v, key, 0, 100, &e->assuredness))
            return -1;
        e->assuredness_set = 1;
        if (e->assuredness != 0 && e->assuredness != 100)
            return fail(c, v, "'assuredness' must be 0 or 100");
        return 0;
    }
    if (!strcmp(key, "why"))
        return get_string(c, v, key, &e->why);
    if (!strcmp(key, "tlsrpt")) {
        e->tlsrpt.set = 1;
        e->tlsrpt_line = (int)k->start_mark.line + 1;
        return each_pair(c, v, "expect tlsrpt", expect_tlsrpt_pair, &e->tlsrpt);
    }
    return unknown_key(c, k, "an expectation",
                       "outcome, exit, failures, tls, received, policy_source, policy_fetched, "
                       "policy_abandoned, delivered_to, assuredness, why, tlsrpt");
}

typedef struct expect_list {
    sts_scn_expect **v;
    size_t *n;
} expect_list;

static int expects_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    expect_list *l = arg;
    if (!is_mode(key))
        return fail(c, k, "expect keys are modes (enforce, testing, none), not '%s'", key);
    sts_scn_expect *nv = realloc(*l->v, (*l->n + 1) * sizeof(*nv));
    if (!nv)
        return fail(c, k, "out of memory");
    *l->v = nv;
    sts_scn_expect *e = &nv[(*l->n)++];
    memset(e, 0, sizeof(*e));
    e->exit_status = -1;
    e->received = -1;
    e->policy_fetched = -1;
    e->policy_abandoned = -1;
    e->tlsrpt.reports = -1;
    e->tlsrpt.valid = -1;
    e->tlsrpt.dkim = -1;
    e->line = (int)k->start_mark.line + 1;
    if (!(e->mode = strdup(key)))
        return fail(c, k, "out of memory");
    return each_pair(c, v, "an expectation", expect_pair, e);
}

static void expects_free(sts_scn_expect *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        sts_scn_expect *e = &v[i];
        free(e->mode);
        free(e->why);
        strv_free(&e->failures);
        strv_free(&e->delivered_to);
        expect_tlsrpt_free(&e->tlsrpt);
    }
    free(v);
}

/* ---- steps ---- */

static int step_mx_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_step *st = arg;
    return add_mx(c, key, k, v, &st->mx, &st->nmx);
}

static int step_pair(scn_ctx *c, const char *key, yaml_node_t *k, yaml_node_t *v, void *arg)
{
    sts_scn_step *st = arg;
    if (!strcmp(key, "name"))
        return get_string(c, v, key, &st->name);
    if (!strcmp(key, "advance"))
        return get_duration(c, v, key, &st->advance);
    if (!strcmp(key, "dns")) {
        st->dns_line = (int)v->start_mark.line + 1;
        if (v->type == YAML_SCALAR_NODE && (v->data.scalar.style == YAML_LITERAL_SCALAR_STYLE ||
                                            v->data.scalar.style == YAML_FOLDED_SCALAR_STYLE))
            st->dns_line++;
        /* An empty zone is a change too ("dns: ''"): every name is NXDOMAIN. */
        if (v->type == YAML_SCALAR_NODE && !is_null(v)) {
            free(st->dns);
            return (st->dns = strdup(scalar(v))) ? 0 : fail(c, v, "out of memory");
        }
        return get_string(c, v, key, &st->dns);
    }
    if (!strcmp(key, "policy")) {
        st->policy_set = 1;
        return parse_policy(c, v, &st->policy);
    }
    if (!strcmp(key, "mx"))
        return each_pair(c, v, "mx", step_mx_pair, st);
    if (!strcmp(key, "dns_faults")) {
        st->dns_faults_set = 1;
        if (v->type == YAML_SEQUENCE_NODE &&
            v->data.sequence.items.start == v->data.sequence.items.top)
            return 0;
        return parse_dns_faults(c, v, &st->dns_faults, &st->ndns_faults);
    }
    if (!strcmp(key, "expect")) {
        expect_list l = {&st->expect, &st->nexpect};
        return each_pair(c, v, "expect", expects_pair, &l);
    }
    if (!strcmp(key, "tlsrpt")) {
        st->tlsrpt_set = 1;
        return parse_tlsrpt(c, v, &st->tlsrpt);
    }
    if (!strcmp(key, "report")) {
        if (v->type == YAML_SCALAR_NODE && !strcmp(scalar(v), "deliver")) {
            st->report = 1;
            return 0;
        }
        return fail(c, v, "'report' must be deliver");
    }
    return unknown_key(c, k, "a step",
                       "name, advance, dns, policy, mx, dns_faults, tlsrpt, report, expect");
}

static int parse_steps(scn_ctx *c, yaml_node_t *n, sts_scenario *s)
{
    if (n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.start == n->data.sequence.items.top)
        return fail(c, n, "'steps' must be a non-empty list of steps");
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *e = yaml_document_get_node(&c->doc, *it);
        sts_scn_step *nv = realloc(s->steps, (s->nsteps + 1) * sizeof(*nv));
        if (!nv)
            return fail(c, e, "out of memory");
        s->steps = nv;
        sts_scn_step *st = &nv[s->nsteps++];
        memset(st, 0, sizeof(*st));
        policy_init(&st->policy);
        st->line = (int)e->start_mark.line + 1;
        if (each_pair(c, e, "a step", step_pair, st))
            return -1;
        if (!st->name)
            return fail(c, e, "a step needs 'name'");
        if (!st->expect)
            return fail(c, e, "step '%s' needs 'expect'", st->name);
        for (size_t i = 0; i + 1 < s->nsteps; i++)
            if (!strcmp(s->steps[i].name, st->name))
                return fail(c, e, "two steps are named '%s'", st->name);
    }
    return 0;
}

/* Every mode run must have an expectation, and every expectation a mode run: an
 * expectation that is never checked is a test that cannot fail. at: the expect
 * node (or its parent) for positions. */
static int check_expect_modes(scn_ctx *c, const sts_scenario *s, const sts_scn_expect *ev, size_t n,
                              yaml_node_t *at, const char *what)
{
    for (size_t i = 0; i < s->modes.n; i++) {
        size_t j = 0;
        while (j < n && strcmp(ev[j].mode, s->modes.v[i]))
            j++;
        if (j == n)
            return fail(c, at, "%sno expectation for mode '%s' listed in modes", what,
                        s->modes.v[i]);
    }
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < s->modes.n && strcmp(s->modes.v[j], ev[i].mode))
            j++;
        if (j == s->modes.n) {
            yaml_node_t pos = *at;
            pos.start_mark.line = (size_t)ev[i].line - 1;
            pos.start_mark.column = 2;
            return fail(c, &pos, "%sexpectation for mode '%s' which is not in modes", what,
                        ev[i].mode);
        }
    }
    return 0;
}

/* ---- top level ---- */

typedef struct top_seen {
    yaml_node_t *expect, *modes, *steps;
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
        return get_refs(c, v, &s->refs);
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
    if (!strcmp(key, "sender")) {
        if (each_pair(c, v, "sender", sender_pair, &s->sender))
            return -1;
        if (s->sender.assure_tls && (s->sender.require_tls || s->sender.mode_set))
            return fail(c, v,
                        "sender 'assure_tls' sends in the clear and applies no policy: "
                        "not with require_tls or mode");
        return 0;
    }
    if (!strcmp(key, "expect")) {
        seen->expect = v;
        expect_list l = {&s->expect, &s->nexpect};
        return each_pair(c, v, "expect", expects_pair, &l);
    }
    if (!strcmp(key, "dns_faults"))
        return parse_dns_faults(c, v, &s->dns_faults, &s->ndns_faults);
    if (!strcmp(key, "steps")) {
        seen->steps = v;
        return parse_steps(c, v, s);
    }
    if (!strcmp(key, "tlsrpt"))
        return parse_tlsrpt(c, v, &s->tlsrpt);
    return unknown_key(c, k, "the scenario",
                       "name, about, refs, domain, dns, policy, mx, modes, sender, expect, "
                       "dns_faults, steps, tlsrpt");
}

/* A tlsrpt section against the rest of the scenario: the mailbox lies in the world's
 * domain (the world serves no other zone), the collector is a host of its own, and
 * the submitter and selector agree with any other section's (the world mints one
 * DKIM key). at: a node to copy positions into. */
static int validate_tlsrpt(scn_ctx *c, yaml_node_t *at, sts_scenario *s, const sts_scn_tlsrpt *t)
{
    yaml_node_t pos = *at;
    pos.start_mark.column = 0;
    if (!t->present)
        return 0;
    s->tlsrpt_any = 1;
    size_t dl = strlen(s->domain);
    if (t->mailto) {
        const char *d = strrchr(t->mailto, '@') + 1;
        size_t l = strlen(d);
        pos.start_mark.line = (size_t)t->mailto_line - 1;
        if (!(l == dl && !strcasecmp(d, s->domain)) &&
            !(l > dl && !strcasecmp(d + l - dl, s->domain) && d[l - dl - 1] == '.'))
            return fail(c, &pos,
                        "tlsrpt mailto '%s': the mailbox must lie in the world's domain %s "
                        "(the world serves no other zone)",
                        t->mailto, s->domain);
    }
    if (t->https_host) {
        pos.start_mark.line = (size_t)t->line - 1;
        char policy_host[300];
        snprintf(policy_host, sizeof(policy_host), "mta-sts.%s", s->domain);
        if (!strcasecmp(t->https_host, policy_host))
            return fail(c, &pos, "tlsrpt https host %s is the policy host", t->https_host);
        for (size_t i = 0; i < s->nmx; i++)
            if (!strcasecmp(t->https_host, s->mx[i].host))
                return fail(c, &pos, "tlsrpt https host %s is an MX host", t->https_host);
    }
    pos.start_mark.line = (size_t)t->line - 1;
    if (t->submitter) {
        if (s->tlsrpt_submitter && strcmp(s->tlsrpt_submitter, t->submitter))
            return fail(c, &pos,
                        "tlsrpt submitter %s differs from %s given before (the world mints "
                        "one DKIM key)",
                        t->submitter, s->tlsrpt_submitter);
        s->tlsrpt_submitter = t->submitter;
    }
    if (t->selector) {
        if (s->tlsrpt_selector && strcmp(s->tlsrpt_selector, t->selector))
            return fail(c, &pos, "tlsrpt selector %s differs from %s given before", t->selector,
                        s->tlsrpt_selector);
        s->tlsrpt_selector = t->selector;
    }
    return 0;
}

/* A report step's expectations speak of the report command and the reports received
 * (exit, tlsrpt, why); a sender step's of the sender's run (no tlsrpt). */
static int validate_report_expects(scn_ctx *c, yaml_node_t *at, const sts_scn_step *st)
{
    yaml_node_t pos = *at;
    pos.start_mark.column = 0;
    for (size_t i = 0; i < st->nexpect; i++) {
        const sts_scn_expect *e = &st->expect[i];
        pos.start_mark.line = (size_t)e->line - 1;
        if (!st->report && e->tlsrpt.set) {
            pos.start_mark.line = (size_t)e->tlsrpt_line - 1;
            return fail(c, &pos, "step '%s': 'tlsrpt' is expected of a step with 'report: deliver'",
                        st->name);
        }
        if (st->report && (e->outcome_set || e->failures_set || e->tls_set || e->received >= 0 ||
                           e->policy_source_set || e->policy_fetched >= 0 ||
                           e->policy_abandoned >= 0 || e->delivered_to_set || e->assuredness_set))
            return fail(c, &pos,
                        "step '%s' runs the report delivery, no sender: expect only exit, "
                        "tlsrpt and why",
                        st->name);
    }
    return 0;
}

static int validate(scn_ctx *c, yaml_node_t *root, sts_scenario *s, top_seen *seen)
{
    static const char *const required[] = {"name", "about", "refs", "domain"};
    const void *have[] = {s->name, s->about, s->refs.v, s->domain};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        if (!have[i])
            return fail(c, root, "missing required key '%s'", required[i]);
    /* A multi-step scenario keeps its expectations in its steps. */
    if (seen->steps && seen->expect)
        return fail(c, seen->expect, "a scenario with 'steps' has its 'expect' in each step");
    if (!seen->steps && !seen->expect)
        return fail(c, root, "missing required key 'expect'");
    if (!s->modes.n && strv_push(&s->modes, sts_mode_name(STS_MODE_ENFORCE)))
        return fail(c, root, "out of memory");
    if (validate_tlsrpt(c, root, s, &s->tlsrpt))
        return -1;
    for (size_t i = 0; i < s->nsteps; i++)
        if (validate_tlsrpt(c, root, s, &s->steps[i].tlsrpt))
            return -1;
    if (!s->tlsrpt_submitter)
        s->tlsrpt_submitter = STS_SCN_TLSRPT_SUBMITTER;
    if (!s->tlsrpt_selector)
        s->tlsrpt_selector = STS_SCN_TLSRPT_SELECTOR;
    for (size_t i = 0; i < s->nexpect; i++)
        if (s->expect[i].tlsrpt.set) {
            yaml_node_t pos = *root;
            pos.start_mark.line = (size_t)s->expect[i].tlsrpt_line - 1;
            pos.start_mark.column = 0;
            return fail(c, &pos, "'tlsrpt' is expected of a step with 'report: deliver'");
        }
    for (size_t i = 0; i < s->nsteps; i++)
        if (validate_report_expects(c, root, &s->steps[i]))
            return -1;
    if (!seen->steps)
        return check_expect_modes(c, s, s->expect, s->nexpect, seen->expect, "");
    for (size_t i = 0; i < s->nsteps; i++) {
        char what[300];
        snprintf(what, sizeof(what), "step '%s': ", s->steps[i].name);
        yaml_node_t at = *seen->steps;
        at.start_mark.line = (size_t)s->steps[i].line - 1;
        if (check_expect_modes(c, s, s->steps[i].expect, s->steps[i].nexpect, &at, what))
            return -1;
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
        snprintf(err, errlen, "%s:%zu:%zu: YAML error: %s%s%s", name, parser.problem_mark.line + 1,
                 parser.problem_mark.column + 1, parser.problem ? parser.problem : "malformed",
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
        policy_init(&s->policy);
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

static void policy_free(sts_scn_policy *p)
{
    free(p->mode);
    strv_free(&p->mx);
    free(p->body);
    free(p->content_type);
    cert_free(&p->cert);
    free(p->redirect);
    strv_free(&p->headers);
}

static void mxs_free(sts_scn_mx *mx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(mx[i].host);
        cert_free(&mx[i].cert);
        for (int k = 0; k < STS_SCN_NSTAGES; k++)
            free(mx[i].replies[k]);
        free(mx[i].inject_after_starttls);
        strv_free(&mx[i].ehlo_keywords);
    }
    free(mx);
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
    policy_free(&s->policy);
    mxs_free(s->mx, s->nmx);
    strv_free(&s->modes);
    free(s->sender.rcpt);
    expects_free(s->expect, s->nexpect);
    dns_faults_free(s->dns_faults, s->ndns_faults);
    tlsrpt_free(&s->tlsrpt);
    for (size_t i = 0; i < s->nsteps; i++) {
        sts_scn_step *st = &s->steps[i];
        tlsrpt_free(&st->tlsrpt);
        free(st->name);
        free(st->dns);
        policy_free(&st->policy);
        mxs_free(st->mx, st->nmx);
        dns_faults_free(st->dns_faults, st->ndns_faults);
        expects_free(st->expect, st->nexpect);
    }
    free(s->steps);
    free(s);
}

const sts_scn_expect *sts_scenario_step_expect(const sts_scenario *s, size_t i, const char *mode)
{
    if (i >= s->nsteps)
        return NULL;
    for (size_t j = 0; j < s->steps[i].nexpect; j++)
        if (!strcmp(s->steps[i].expect[j].mode, mode))
            return &s->steps[i].expect[j];
    return NULL;
}

static int policy_waits(const sts_scn_policy *p)
{
    return p->delay > 0 || p->drip > 0;
}

static int mx_waits(const sts_scn_mx *mx, size_t n)
{
    for (size_t i = 0; i < n; i++)
        for (int st = 0; st < STS_SCN_NSTAGES; st++)
            if (mx[i].delay[st] > 0)
                return 1;
    return 0;
}

static int dns_faults_wait(const sts_scn_dns_fault *f, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (f[i].fault == STS_SCN_DNS_TIMEOUT || f[i].delay > 0)
            return 1;
    return 0;
}

int sts_scenario_waits(const sts_scenario *s)
{
    if (policy_waits(&s->policy) || mx_waits(s->mx, s->nmx) ||
        dns_faults_wait(s->dns_faults, s->ndns_faults))
        return 1;
    for (size_t i = 0; i < s->nsteps; i++) {
        const sts_scn_step *st = &s->steps[i];
        if ((st->policy_set && policy_waits(&st->policy)) || mx_waits(st->mx, st->nmx) ||
            (st->dns_faults_set && dns_faults_wait(st->dns_faults, st->ndns_faults)))
            return 1;
    }
    return 0;
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
