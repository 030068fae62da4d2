/*
 * rptjson.c - the RFC 8460 section 4 report: builder and strict validator (rptjson.h).
 * Builder functions return a new JSON reference or NULL; the validator 0, STS_ESYNTAX
 * or STS_ENOMEM.
 */
#include "common/rptjson.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* ---- times ------------------------------------------------------------------------ */

char *sts_rpt_time(time_t t, char *out, size_t outlen)
{
    struct tm tm;
    if (!gmtime_r(&t, &tm) || !strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, outlen, "%s", "");
    return out;
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int leap(int y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

/* RFC 3339 5.6:
 *   date-time = full-date "T" full-time        ("T" and "Z" may be lower case, 5.6 NOTE)
 *   full-date = date-fullyear "-" date-month "-" date-mday
 *   full-time = partial-time time-offset
 *   partial-time = time-hour ":" time-minute ":" time-second [time-secfrac]
 *   time-offset = "Z" / time-numoffset;  time-numoffset = ("+" / "-") hh ":" mm */
int sts_rpt_parse_time(const char *s, time_t *out)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int y, mo, d, h, mi, sec;
    if (!s || strlen(s) < 20 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't') ||
        digits(s + 11, 2, &h) || s[13] != ':' || digits(s + 14, 2, &mi) || s[16] != ':' ||
        digits(s + 17, 2, &sec))
        return STS_ESYNTAX;
    if (mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] + (mo == 2 && leap(y)) || h > 23 ||
        mi > 59 || sec > 60)
        return STS_ESYNTAX;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return STS_ESYNTAX;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    long off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return STS_ESYNTAX;
        off = (oh * 3600L + om * 60L) * (*p == '-' ? -1 : 1);
        p += 6;
    } else {
        return STS_ESYNTAX;
    }
    if (*p)
        return STS_ESYNTAX;
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec > 59 ? 59 : sec; /* a leap second reads as the second before it */
    *out = timegm(&tm) - off;
    return 0;
}

/* ---- the builder ------------------------------------------------------------------ */

static int set_str(json_t *o, const char *key, const char *v)
{
    return !v || json_object_set_new(o, key, json_string(v)) == 0;
}

static int set_count(json_t *o, const char *key, long long v)
{
    return v >= 0 && json_object_set_new(o, key, json_integer((json_int_t)v)) == 0;
}

static json_t *str_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        if (!v[i] || json_array_append_new(a, json_string(v[i])) != 0) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static int ip_ok(const char *s)
{
    unsigned char a[16];
    return !s || inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static json_t *build_failure(const sts_rpt_failure *f)
{
    const char *type = sts_result_type_name(f->result_type);
    if (!type || !ip_ok(f->sending_mta_ip) || !ip_ok(f->receiving_ip))
        return NULL;
    json_t *o = json_object();
    if (!o || !set_str(o, "result-type", type) ||
        !set_str(o, "sending-mta-ip", f->sending_mta_ip) ||
        !set_str(o, "receiving-mx-hostname", f->receiving_mx_hostname) ||
        !set_str(o, "receiving-mx-helo", f->receiving_mx_helo) ||
        !set_str(o, "receiving-ip", f->receiving_ip) ||
        !set_count(o, "failed-session-count", f->failed_session_count) ||
        !set_str(o, "additional-information", f->additional_information) ||
        !set_str(o, "failure-reason-code", f->failure_reason_code)) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *build_policy(const sts_rpt_policy *p)
{
    const char *type = sts_policy_type_name(p->policy_type);
    long long failed = 0;
    for (size_t i = 0; i < p->nfailures; i++) {
        if (p->failures[i].failed_session_count < 0)
            return NULL;
        failed += p->failures[i].failed_session_count;
    }
    if (failed > p->failed) /* each failed session is counted once */
        return NULL;
    json_t *o = json_object(), *pol = json_object(), *sum = json_object(), *fd = NULL;
    if (!o || !pol || !sum || !type || !p->policy_domain || !p->policy_domain[0])
        goto fail;
    if (json_object_set_new(o, "policy", pol) != 0) {
        pol = NULL;
        goto fail;
    }
    json_t *pol_ref = pol;
    pol = NULL;
    if (!set_str(pol_ref, "policy-type", type))
        goto fail;
    if (p->npolicy_string &&
        json_object_set_new(pol_ref, "policy-string",
                            str_array(p->policy_string, p->npolicy_string)) != 0)
        goto fail;
    if (!set_str(pol_ref, "policy-domain", p->policy_domain))
        goto fail;
    if (p->nmx_host &&
        json_object_set_new(pol_ref, "mx-host", str_array(p->mx_host, p->nmx_host)) != 0)
        goto fail;
    json_t *sum_ref = sum;
    sum = NULL;
    if (json_object_set_new(o, "summary", sum_ref) != 0 ||
        !set_count(sum_ref, "total-successful-session-count", p->successful) ||
        !set_count(sum_ref, "total-failure-session-count", p->failed))
        goto fail;
    if (p->nfailures) {
        if (!(fd = json_array()) || json_object_set_new(o, "failure-details", fd) != 0) {
            fd = NULL;
            goto fail;
        }
        for (size_t i = 0; i < p->nfailures; i++)
            if (json_array_append_new(fd, build_failure(&p->failures[i])) != 0)
                goto fail;
    }
    return o;
fail:
    json_decref(pol);
    json_decref(sum);
    json_decref(o);
    return NULL;
}

json_t *sts_rpt_build(const sts_rpt_report *r)
{
    char start[32], end[32];
    if (!r->organization_name || !r->organization_name[0] || !r->contact_info ||
        !r->contact_info[0] || !r->report_id || !r->report_id[0] || r->end <= r->start ||
        (r->end - r->start != 86399 && r->end - r->start != 86400) || !r->npolicies ||
        !sts_rpt_time(r->start, start, sizeof(start))[0] ||
        !sts_rpt_time(r->end, end, sizeof(end))[0])
        return NULL;
    json_t *o = json_object(), *range = json_object(), *pols = json_array();
    if (!o || !range || !pols)
        goto fail;
    if (!set_str(o, "organization-name", r->organization_name) ||
        json_object_set(o, "date-range", range) != 0 || !set_str(range, "start-datetime", start) ||
        !set_str(range, "end-datetime", end) || !set_str(o, "contact-info", r->contact_info) ||
        !set_str(o, "report-id", r->report_id) || json_object_set(o, "policies", pols) != 0)
        goto fail;
    for (size_t i = 0; i < r->npolicies; i++)
        if (json_array_append_new(pols, build_policy(&r->policies[i])) != 0)
            goto fail;
    json_decref(range);
    json_decref(pols);
    return o;
fail:
    json_decref(range);
    json_decref(pols);
    json_decref(o);
    return NULL;
}

/* ---- findings --------------------------------------------------------------------- */

void sts_rpt_findings_init(sts_rpt_findings *f)
{
    memset(f, 0, sizeof(*f));
}

void sts_rpt_findings_free(sts_rpt_findings *f)
{
    if (!f)
        return;
    free(f->items);
    memset(f, 0, sizeof(*f));
}

const char *sts_rpt_severity_name(sts_rpt_severity s)
{
    return s == STS_RPT_WARNING ? "warning" : "error";
}

/* What one validation run carries: where the findings go and whether memory ran out. */
typedef struct vctx {
    sts_rpt_findings *f;
    size_t nerrors;
    int nomem;
} vctx;

static void add(vctx *v, sts_rpt_severity sev, const char *path, int line, int column,
                const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static void add(vctx *v, sts_rpt_severity sev, const char *path, int line, int column,
                const char *fmt, ...)
{
    if (sev == STS_RPT_ERROR)
        v->nerrors++;
    sts_rpt_findings *f = v->f;
    if (!f)
        return;
    if (sev == STS_RPT_ERROR)
        f->nerrors++;
    else
        f->nwarnings++;
    if (f->n >= STS_RPT_FINDINGS_MAX) {
        f->ndropped++;
        return;
    }
    if (f->n == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        sts_rpt_finding *items = realloc(f->items, cap * sizeof(*items));
        if (!items) {
            v->nomem = 1;
            return;
        }
        f->items = items;
        f->cap = cap;
    }
    sts_rpt_finding *it = &f->items[f->n++];
    it->severity = sev;
    snprintf(it->path, sizeof(it->path), "%s", path);
    it->line = line;
    it->column = column;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it->message, sizeof(it->message), fmt, ap);
    va_end(ap);
}

#define ERR(v, path, ...) add(v, STS_RPT_ERROR, path, 0, 0, __VA_ARGS__)
#define WARN(v, path, ...) add(v, STS_RPT_WARNING, path, 0, 0, __VA_ARGS__)

static void join(char *out, size_t outlen, const char *path, const char *key)
{
    snprintf(out, outlen, "%s.%s", path, key);
}

static void join_index(char *out, size_t outlen, const char *path, size_t i)
{
    snprintf(out, outlen, "%s[%zu]", path, i);
}

/* The fields an object may have, each with what it must be. */
enum kind { K_STRING, K_NAME, K_TIME, K_COUNT, K_IP, K_OBJECT, K_ARRAY, K_STRINGS, K_PATTERNS };
typedef struct field {
    const char *key;
    enum kind kind;
    int required; /* 1 error when missing, 2 warning when missing, 0 optional */
} field;

static const char *kind_what(enum kind k)
{
    switch (k) {
    case K_STRING:
        return "a string";
    case K_NAME:
        return "a non-empty string";
    case K_TIME:
        return "an RFC 3339 date-time string";
    case K_COUNT:
        return "a non-negative integer";
    case K_IP:
        return "an IPv4 or IPv6 address string";
    case K_OBJECT:
        return "an object";
    case K_ARRAY:
        return "an array";
    case K_STRINGS:
    case K_PATTERNS:
        return "an array of strings";
    }
    return "?";
}

static const char *json_kind(const json_t *j)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        return "an object";
    case JSON_ARRAY:
        return "an array";
    case JSON_STRING:
        return "a string";
    case JSON_INTEGER:
        return "an integer";
    case JSON_REAL:
        return "a number with a fraction or exponent";
    case JSON_TRUE:
    case JSON_FALSE:
        return "a boolean";
    case JSON_NULL:
        return "null";
    }
    return "?";
}

/* Check one value against its kind; 1 when it fits. */
static int check_value(vctx *v, const char *path, const json_t *j, enum kind k)
{
    switch (k) {
    case K_STRING:
    case K_NAME:
    case K_TIME:
    case K_IP:
        if (!json_is_string(j))
            break;
        if (k == K_NAME && !json_string_length(j)) {
            ERR(v, path, "must not be empty");
            return 0;
        }
        if (k == K_TIME) {
            time_t t;
            if (sts_rpt_parse_time(json_string_value(j), &t)) {
                ERR(v, path, "'%.60s' is not an RFC 3339 date-time (2016-04-01T00:00:00Z)",
                    json_string_value(j));
                return 0;
            }
        }
        if (k == K_IP) {
            unsigned char a[16];
            const char *s = json_string_value(j);
            if (inet_pton(AF_INET, s, a) != 1 && inet_pton(AF_INET6, s, a) != 1) {
                ERR(v, path, "'%.60s' is not an IPv4 or IPv6 address", s);
                return 0;
            }
        }
        return 1;
    case K_COUNT:
        if (!json_is_integer(j))
            break;
        if (json_integer_value(j) < 0) {
            ERR(v, path, "must be a non-negative integer, not %lld",
                (long long)json_integer_value(j));
            return 0;
        }
        return 1;
    case K_OBJECT:
        if (json_is_object(j))
            return 1;
        break;
    case K_ARRAY:
        if (json_is_array(j))
            return 1;
        break;
    case K_PATTERNS:
        if (json_is_string(j)) {
            WARN(v, path,
                 "a single string: RFC 8460 4.4 gives the mx-host patterns as a list "
                 "(read as a list of one)");
            return 1;
        }
        /* fall through */
    case K_STRINGS:
        if (!json_is_array(j))
            break;
        for (size_t i = 0; i < json_array_size(j); i++)
            if (!json_is_string(json_array_get(j, i))) {
                char p[STS_RPT_PATH_MAX];
                join_index(p, sizeof(p), path, i);
                ERR(v, p, "must be a string, not %s", json_kind(json_array_get(j, i)));
                return 0;
            }
        return 1;
    }
    ERR(v, path, "must be %s, not %s", kind_what(k), json_kind(j));
    return 0;
}

/* Check obj's fields against fields[n]: required ones present, every known one of its
 * kind, unknown ones warned about. 0 when obj is not an object (already reported). */
static int check_fields(vctx *v, const char *path, const json_t *obj, const field *fields, size_t n)
{
    if (!check_value(v, path, obj, K_OBJECT))
        return 0;
    char p[STS_RPT_PATH_MAX];
    for (size_t i = 0; i < n; i++) {
        const json_t *j = json_object_get(obj, fields[i].key);
        join(p, sizeof(p), path, fields[i].key);
        if (!j) {
            if (fields[i].required == 1)
                ERR(v, p, "required field missing (RFC 8460 4.4)");
            else if (fields[i].required == 2)
                WARN(v, p, "field missing: RFC 8460 4.4 reports give it");
            continue;
        }
        check_value(v, p, j, fields[i].kind);
    }
    const char *key;
    json_t *val;
    json_object_foreach((json_t *)obj, key, val)
    {
        size_t i;
        for (i = 0; i < n && strcmp(fields[i].key, key); i++)
            ;
        if (i == n) {
            join(p, sizeof(p), path, key);
            WARN(v, p, "unknown field (not in RFC 8460 4.4)");
        }
    }
    return 1;
}

#define N(a) (sizeof(a) / sizeof((a)[0]))

static void check_range(vctx *v, const json_t *range)
{
    static const field fields[] = {{"start-datetime", K_TIME, 1}, {"end-datetime", K_TIME, 1}};
    if (!check_fields(v, "$.date-range", range, fields, N(fields)))
        return;
    time_t start, end;
    if (sts_rpt_parse_time(json_string_value(json_object_get(range, "start-datetime")), &start) ||
        sts_rpt_parse_time(json_string_value(json_object_get(range, "end-datetime")), &end))
        return; /* reported above */
    if (end <= start)
        ERR(v, "$.date-range.end-datetime", "must be after start-datetime");
    else if (end - start != 86399 && end - start != 86400)
        ERR(v, "$.date-range",
            "spans %lld seconds: a report covers one UTC day (RFC 8460 4.1), e.g. "
            "00:00:00Z to 23:59:59Z",
            (long long)(end - start));
    if (start % 86400 != 0)
        WARN(v, "$.date-range.start-datetime",
             "does not start at 00:00:00 UTC: RFC 8460 4.1 reports cover a full UTC day");
}

static long long check_failure(vctx *v, const char *path, const json_t *fd)
{
    static const field fields[] = {
        {"result-type", K_NAME, 1},
        {"sending-mta-ip", K_IP, 2},
        {"receiving-mx-hostname", K_STRING, 2},
        {"receiving-mx-helo", K_STRING, 0},
        {"receiving-ip", K_IP, 0},
        {"failed-session-count", K_COUNT, 1},
        {"additional-information", K_STRING, 0},
        {"failure-reason-code", K_STRING, 0},
    };
    if (!check_fields(v, path, fd, fields, N(fields)))
        return 0;
    const json_t *rt = json_object_get(fd, "result-type");
    sts_result_type t;
    if (json_is_string(rt) && json_string_length(rt) &&
        sts_result_type_parse(json_string_value(rt), &t)) {
        char p[STS_RPT_PATH_MAX];
        join(p, sizeof(p), path, "result-type");
        ERR(v, p, "'%.60s' is not an RFC 8460 4.3 result type", json_string_value(rt));
    }
    const json_t *c = json_object_get(fd, "failed-session-count");
    return json_is_integer(c) && json_integer_value(c) > 0 ? (long long)json_integer_value(c) : 0;
}

static void check_policy(vctx *v, const char *path, const json_t *item)
{
    static const field item_fields[] = {
        {"policy", K_OBJECT, 1}, {"summary", K_OBJECT, 1}, {"failure-details", K_ARRAY, 0}};
    static const field policy_fields[] = {
        {"policy-type", K_NAME, 1},
        {"policy-string", K_STRINGS, 0},
        {"policy-domain", K_NAME, 1},
        {"mx-host", K_PATTERNS, 0},
    };
    static const field summary_fields[] = {
        {"total-successful-session-count", K_COUNT, 1},
        {"total-failure-session-count", K_COUNT, 1},
    };
    if (!check_fields(v, path, item, item_fields, N(item_fields)))
        return;
    char p[STS_RPT_PATH_MAX], q[STS_RPT_PATH_MAX];
    const json_t *pol = json_object_get(item, "policy");
    join(p, sizeof(p), path, "policy");
    if (pol && json_is_object(pol) && check_fields(v, p, pol, policy_fields, N(policy_fields))) {
        const json_t *pt = json_object_get(pol, "policy-type");
        sts_policy_type t;
        join(q, sizeof(q), p, "policy-type");
        if (json_is_string(pt) && json_string_length(pt)) {
            if (sts_policy_type_parse(json_string_value(pt), &t))
                ERR(v, q,
                    "'%.60s' is not an RFC 8460 4.4 policy type (tlsa, sts, "
                    "no-policy-found)",
                    json_string_value(pt));
            else if (t == STS_POLICY_TYPE_STS) {
                if (!json_object_get(pol, "policy-string")) {
                    join(q, sizeof(q), p, "policy-string");
                    WARN(v, q, "an sts policy without the policy it applied");
                }
                if (!json_object_get(pol, "mx-host")) {
                    join(q, sizeof(q), p, "mx-host");
                    WARN(v, q, "an sts policy without its mx patterns");
                }
            }
        }
    }
    const json_t *sum = json_object_get(item, "summary");
    join(p, sizeof(p), path, "summary");
    int sum_ok =
        sum && json_is_object(sum) && check_fields(v, p, sum, summary_fields, N(summary_fields));
    const json_t *fds = json_object_get(item, "failure-details");
    if (!json_is_array(fds))
        return;
    long long failed = 0;
    join(p, sizeof(p), path, "failure-details");
    for (size_t i = 0; i < json_array_size(fds); i++) {
        join_index(q, sizeof(q), p, i);
        long long c = check_failure(v, q, json_array_get(fds, i));
        failed = failed > (1LL << 62) - c ? (1LL << 62) : failed + c;
    }
    const json_t *total = json_object_get(sum, "total-failure-session-count");
    if (sum_ok && json_is_integer(total) && json_integer_value(total) >= 0 &&
        failed > (long long)json_integer_value(total)) {
        join(q, sizeof(q), path, "summary.total-failure-session-count");
        ERR(v, q,
            "is %lld, but the failure-details count %lld failed sessions (each failed "
            "session is counted once)",
            (long long)json_integer_value(total), failed);
    }
}

int sts_rpt_validate(const json_t *root, sts_rpt_findings *f)
{
    static const field fields[] = {
        {"organization-name", K_NAME, 1}, {"date-range", K_OBJECT, 1}, {"contact-info", K_NAME, 1},
        {"report-id", K_NAME, 1},         {"policies", K_ARRAY, 1},
    };
    vctx v = {f, 0, 0};
    if (check_fields(&v, "$", root, fields, N(fields))) {
        const json_t *range = json_object_get(root, "date-range");
        if (json_is_object(range))
            check_range(&v, range);
        const json_t *pols = json_object_get(root, "policies");
        if (json_is_array(pols)) {
            if (!json_array_size(pols))
                ERR(&v, "$.policies", "names no policy: a report has at least one");
            for (size_t i = 0; i < json_array_size(pols); i++) {
                char p[STS_RPT_PATH_MAX];
                join_index(p, sizeof(p), "$.policies", i);
                check_policy(&v, p, json_array_get(pols, i));
            }
        }
    }
    if (v.nomem)
        return STS_ENOMEM;
    return v.nerrors ? STS_ESYNTAX : 0;
}

int sts_rpt_validate_text(const char *text, size_t len, sts_rpt_findings *f, json_t **root)
{
    if (root)
        *root = NULL;
    json_error_t e;
    json_t *j = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
    if (!j) {
        vctx v = {f, 0, 0};
        add(&v, STS_RPT_ERROR, "$", e.line > 0 ? e.line : 0, e.column > 0 ? e.column : 0,
            "not valid JSON: %s", e.text);
        return v.nomem ? STS_ENOMEM : STS_ESYNTAX;
    }
    int rc = sts_rpt_validate(j, f);
    if (root)
        *root = j;
    else
        json_decref(j);
    return rc;
}
