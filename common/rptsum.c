/*
 * rptsum.c - the summary of received TLS reports (rptsum.h). The tallies live in JSON
 * objects keyed by name (domain, MX, result type) and become sorted arrays at the end.
 */
#include "common/rptsum.h"

#include <stdlib.h>
#include <string.h>

#include "common/err.h"
#include "common/rptjson.h"

struct sts_rptsum {
    json_t *domains; /* {domain: tally} */
    long long reports;
};

sts_rptsum *sts_rptsum_new(void)
{
    sts_rptsum *s = calloc(1, sizeof(*s));
    if (s && !(s->domains = json_object())) {
        free(s);
        return NULL;
    }
    return s;
}

void sts_rptsum_free(sts_rptsum *s)
{
    if (!s)
        return;
    json_decref(s->domains);
    free(s);
}

/* The tally named key in obj, created empty when missing; NULL when out of memory. */
static json_t *tally(json_t *obj, const char *key)
{
    json_t *t = json_object_get(obj, key);
    if (t)
        return t;
    t = json_pack("{s:I,s:I,s:I,s:I,s:I}", "reports", (json_int_t)0, "ok", (json_int_t)0, "bad",
                  (json_int_t)0, "first", (json_int_t)-1, "last", (json_int_t)-1);
    if (!t || json_object_set_new(obj, key, t) != 0)
        return NULL;
    return t;
}

static int bump(json_t *t, const char *key, long long by)
{
    return json_object_set_new(t, key,
                               json_integer(json_integer_value(json_object_get(t, key)) + by));
}

/* Widen t's [first, last] to [start, end]. */
static int seen(json_t *t, time_t start, time_t end)
{
    json_int_t f = json_integer_value(json_object_get(t, "first"));
    json_int_t l = json_integer_value(json_object_get(t, "last"));
    if (f < 0 || start < f)
        f = start;
    if (end > l)
        l = end;
    return json_object_set_new(t, "first", json_integer(f)) ||
           json_object_set_new(t, "last", json_integer(l));
}

/* The child object named key of t ({} created when missing). */
static json_t *child(json_t *t, const char *key)
{
    json_t *c = json_object_get(t, key);
    if (c)
        return c;
    c = json_object();
    return c && json_object_set_new(t, key, c) == 0 ? c : NULL;
}

static int add_failure(json_t *dom, const json_t *fd, time_t start, time_t end)
{
    const char *rt = json_string_value(json_object_get(fd, "result-type"));
    const json_t *c = json_object_get(fd, "failed-session-count");
    if (!rt || !json_is_integer(c))
        return STS_EINVAL;
    const char *mx = json_string_value(json_object_get(fd, "receiving-mx-hostname"));
    long long n = (long long)json_integer_value(c);
    json_t *drt = child(dom, "rt"), *mxs = child(dom, "mx");
    json_t *t1 = drt ? tally(drt, rt) : NULL;
    json_t *m = mxs ? tally(mxs, mx ? mx : "") : NULL;
    json_t *mrt = m ? child(m, "rt") : NULL;
    json_t *t2 = mrt ? tally(mrt, rt) : NULL;
    if (!t1 || !t2 || bump(t1, "bad", n) || seen(t1, start, end) || bump(m, "bad", n) ||
        seen(m, start, end) || bump(t2, "bad", n) || seen(t2, start, end))
        return STS_ENOMEM;
    return 0;
}

int sts_rptsum_add(sts_rptsum *s, const json_t *report)
{
    const json_t *range = json_object_get(report, "date-range");
    const json_t *pols = json_object_get(report, "policies");
    time_t start, end;
    if (!json_is_array(pols) ||
        sts_rpt_parse_time(json_string_value(json_object_get(range, "start-datetime")), &start) ||
        sts_rpt_parse_time(json_string_value(json_object_get(range, "end-datetime")), &end))
        return STS_EINVAL;
    json_t *counted = json_object(); /* the domains this report was counted for */
    if (!counted)
        return STS_ENOMEM;
    int rc = 0;
    for (size_t i = 0; !rc && i < json_array_size(pols); i++) {
        const json_t *p = json_array_get(pols, i);
        const char *dom =
            json_string_value(json_object_get(json_object_get(p, "policy"), "policy-domain"));
        const json_t *sum = json_object_get(p, "summary");
        const json_t *ok = json_object_get(sum, "total-successful-session-count");
        const json_t *bad = json_object_get(sum, "total-failure-session-count");
        if (!dom || !json_is_integer(ok) || !json_is_integer(bad)) {
            rc = STS_EINVAL;
            break;
        }
        json_t *t = tally(s->domains, dom);
        if (!t || bump(t, "ok", (long long)json_integer_value(ok)) ||
            bump(t, "bad", (long long)json_integer_value(bad)) || seen(t, start, end)) {
            rc = STS_ENOMEM;
            break;
        }
        if (!json_object_get(counted, dom)) {
            if (bump(t, "reports", 1) || json_object_set_new(counted, dom, json_true())) {
                rc = STS_ENOMEM;
                break;
            }
        }
        const json_t *fds = json_object_get(p, "failure-details");
        for (size_t k = 0; !rc && k < json_array_size(fds); k++)
            rc = add_failure(t, json_array_get(fds, k), start, end);
    }
    json_decref(counted);
    if (!rc)
        s->reports++;
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of obj, sorted (malloc'ed array of borrowed strings); NULL when empty or
 * out of memory (*n 0 then only when empty). */
static const char **sorted_keys(const json_t *obj, size_t *n)
{
    *n = json_object_size(obj);
    if (!*n)
        return NULL;
    const char **keys = malloc(*n * sizeof(*keys));
    if (!keys)
        return NULL;
    size_t i = 0;
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)obj, k, v)
    {
        keys[i++] = k;
    }
    qsort(keys, *n, sizeof(*keys), cmp_str);
    return keys;
}

static int put_time(json_t *o, const char *key, json_int_t t)
{
    char buf[32];
    return json_object_set_new(o, key, json_string(sts_rpt_time((time_t)t, buf, sizeof(buf))));
}

/* [{name_key: name, "failed_sessions", "first_seen", "last_seen"}...] of the tallies in obj,
 * with each tally's own "rt" as "result_types" when nested. */
static json_t *tally_array(const json_t *obj, const char *name_key, int nested)
{
    json_t *a = json_array();
    size_t n;
    const char **keys = sorted_keys(obj, &n);
    if (!a || (n && !keys)) {
        json_decref(a);
        free(keys);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_object_get(obj, keys[i]);
        json_t *o = json_pack("{s:s,s:I}", name_key, keys[i], "failed_sessions",
                              json_integer_value(json_object_get(t, "bad")));
        if (!o || put_time(o, "first_seen", json_integer_value(json_object_get(t, "first"))) ||
            put_time(o, "last_seen", json_integer_value(json_object_get(t, "last"))) ||
            (nested &&
             json_object_set_new(o, "result_types",
                                 tally_array(json_object_get(t, "rt"), "result_type", 0))) ||
            json_array_append_new(a, o)) {
            json_decref(a);
            free(keys);
            return NULL;
        }
    }
    free(keys);
    return a;
}

json_t *sts_rptsum_json(const sts_rptsum *s)
{
    json_t *out = json_pack("{s:I,s:[]}", "reports", (json_int_t)s->reports, "domains");
    size_t n;
    const char **keys = sorted_keys(s->domains, &n);
    if (!out || (n && !keys))
        goto fail;
    json_t *doms = json_object_get(out, "domains");
    for (size_t i = 0; i < n; i++) {
        const json_t *t = json_object_get(s->domains, keys[i]);
        json_int_t ok = json_integer_value(json_object_get(t, "ok"));
        json_int_t bad = json_integer_value(json_object_get(t, "bad"));
        json_t *rt = json_object_get(t, "rt"), *mx = json_object_get(t, "mx");
        json_t *empty = json_object();
        json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I}", "policy_domain", keys[i], "reports",
                              json_integer_value(json_object_get(t, "reports")), "sessions",
                              ok + bad, "successful_sessions", ok, "failed_sessions", bad);
        int bad_rc =
            !o || !empty ||
            put_time(o, "first_seen", json_integer_value(json_object_get(t, "first"))) ||
            put_time(o, "last_seen", json_integer_value(json_object_get(t, "last"))) ||
            json_object_set_new(o, "result_types",
                                tally_array(rt ? rt : empty, "result_type", 0)) ||
            json_object_set_new(o, "mx", tally_array(mx ? mx : empty, "receiving_mx_hostname", 1));
        json_decref(empty);
        if (bad_rc || json_array_append_new(doms, o)) {
            if (bad_rc)
                json_decref(o);
            goto fail;
        }
    }
    free(keys);
    return out;
fail:
    free(keys);
    json_decref(out);
    return NULL;
}

/* "<indent><name>: N failed, first T, last T" for the tally o. */
static void print_line(FILE *fp, const char *indent, const char *name, const json_t *o)
{
    fprintf(fp, "%s%s: %lld failed, first %s, last %s\n", indent, name,
            (long long)json_integer_value(json_object_get(o, "failed_sessions")),
            json_string_value(json_object_get(o, "first_seen")),
            json_string_value(json_object_get(o, "last_seen")));
}

/* One print_line() per result type of the array types. */
static void print_failed(FILE *fp, const char *indent, const json_t *types)
{
    size_t k;
    json_t *r;
    json_array_foreach(types, k, r)
        print_line(fp, indent, json_string_value(json_object_get(r, "result_type")), r);
}

void sts_rptsum_print(const json_t *summary, FILE *fp)
{
    size_t i, k;
    json_t *d, *x;
    fprintf(fp, "%lld report%s\n",
            (long long)json_integer_value(json_object_get(summary, "reports")),
            json_integer_value(json_object_get(summary, "reports")) == 1 ? "" : "s");
    json_array_foreach(json_object_get(summary, "domains"), i, d)
    {
        fprintf(fp, "%s: %lld sessions, %lld successful, %lld failed; %lld report%s, %s to %s\n",
                json_string_value(json_object_get(d, "policy_domain")),
                (long long)json_integer_value(json_object_get(d, "sessions")),
                (long long)json_integer_value(json_object_get(d, "successful_sessions")),
                (long long)json_integer_value(json_object_get(d, "failed_sessions")),
                (long long)json_integer_value(json_object_get(d, "reports")),
                json_integer_value(json_object_get(d, "reports")) == 1 ? "" : "s",
                json_string_value(json_object_get(d, "first_seen")),
                json_string_value(json_object_get(d, "last_seen")));
        print_failed(fp, "  ", json_object_get(d, "result_types"));
        json_array_foreach(json_object_get(d, "mx"), k, x)
        {
            const char *h = json_string_value(json_object_get(x, "receiving_mx_hostname"));
            print_line(fp, "  MX ", h && h[0] ? h : "(no MX named)", x);
            print_failed(fp, "    ", json_object_get(x, "result_types"));
        }
    }
}
