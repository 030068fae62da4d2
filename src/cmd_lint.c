/*
 * cmd_lint.c - `ststest lint [--txt|--tlsrpt|--report|--policy] [--json] [--mx-host HOST]
 * FILE|-`: check an MTA-STS policy file (RFC 8461 3.2), a `_mta-sts` TXT record (3.1), a
 * `_smtp._tls` TLSRPT record (RFC 8460 3) or a received TLS report (RFC 8460 4: JSON,
 * gzip or a whole mail message), told apart by their first bytes unless a flag says
 * which; print every problem as FILE:LINE:COL: error|warning: message (a report's
 * findings as FILE: error|warning: $.json.path: message) and what was understood.
 * Returns the exit status: 0 valid, 1 a valid policy whose mx patterns do not allow
 * the --mx-host, 65 invalid or unreadable input, 64 usage, 70
 * internal error (out of memory).
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/rptjson.h"
#include "common/rptmsg.h"
#include "sender/diag.h"
#include "sender/fetch.h"
#include "sender/policy.h"
#include "sender/ststxt.h"
#include "sender/tlsrpt.h"
#include "src/cli.h"
#include "src/cmds.h"

/* Files larger than this are not policies anyone would serve. */
#define LINT_MAX_INPUT (1024 * 1024)

/* What lint checks; the name is the JSON "kind", the label what the report says. */
enum lint_kind { LINT_POLICY, LINT_TXT, LINT_TLSRPT, LINT_REPORT };
static const struct {
    const char *name, *label, *flag;
} kinds[] = {
    [LINT_POLICY] = {"policy", "MTA-STS policy", "--policy"},
    [LINT_TXT] = {"txt", "_mta-sts TXT record", "--txt"},
    [LINT_TLSRPT] = {"tlsrpt", "_smtp._tls TLSRPT record", "--tlsrpt"},
    [LINT_REPORT] = {"report", "TLS report (RFC 8460 4)", "--report"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "usage: ststest lint [--txt|--tlsrpt|--report|--policy] [--json] [--mx-host HOST] FILE|-\n"
                "\n"
                "Check an MTA-STS policy file (RFC 8461 3.2), a _mta-sts TXT record (3.1), a\n"
                "_smtp._tls TLSRPT record (RFC 8460 3) or a received TLS report (RFC 8460 4).\n"
                "Without a flag the input says which: gzip data, JSON (it begins with \"{\")\n"
                "or a mail message (it begins with a header such as From:, Received: or\n"
                "Content-Type:) is a TLS report; one that begins with \"v=TLSRPT\" is a\n"
                "TLSRPT record, one that begins with another \"v=\" (v=STSv1) a _mta-sts TXT\n"
                "record, a quoted string (zone-file style: \"v=STSv1; \" \"id=1;\") a record\n"
                "of either kind by the same rule, and anything else a policy file. The\n"
                "report names the kind it checked. FILE - reads standard input.\n"
                "\n"
                "options:\n"
                "  --txt           the input is a _mta-sts TXT record\n"
                "  --tlsrpt        the input is a _smtp._tls TLSRPT record\n"
                "  --report        the input is a TLS report: JSON, gzip or a whole message\n"
                "  --policy        the input is a policy file\n"
                "  --json          print one JSON document instead of the report\n"
                "  --mx-host HOST  also say whether the policy allows MX host HOST (RFC 8461 4.1)\n"
                "  -h, --help      this help\n"
                "\n"
                "exit status: 0 valid, 1 valid but --mx-host not allowed, 65 invalid or\n"
            "unreadable, 64 usage, 70 internal error.\n");
}

/* Zone-file style input: one or more "quoted" character-strings, concatenated as a
 * resolver would (RFC 8461 3.1). Handles \" \\ and \DDD escapes. Returns 0 and the
 * record in out, or STS_ESYNTAX with a diagnostic. */
static int unquote_txt(const char *in, size_t len, sts_buf *out, sts_diags *diags)
{
    size_t p = 0;
    int line = 1;
    size_t line_start = 0;
    while (p < len) {
        char c = in[p];
        if (c == '\n') {
            line++;
            line_start = ++p;
            continue;
        }
        if (c == ' ' || c == '\t' || c == '\r') {
            p++;
            continue;
        }
        if (c != '"') {
            sts_diags_add(diags, STS_DIAG_ERROR, line, (int)(p - line_start) + 1,
                          "expected a quoted string");
            return STS_ESYNTAX;
        }
        size_t open = p++;
        for (;;) {
            if (p >= len || in[p] == '\n') {
                sts_diags_add(diags, STS_DIAG_ERROR, line, (int)(open - line_start) + 1,
                              "unterminated quoted string");
                return STS_ESYNTAX;
            }
            if (in[p] == '"') {
                p++;
                break;
            }
            char ch = in[p++];
            if (ch == '\\' && p < len) {
                if (p + 2 < len && in[p] >= '0' && in[p] <= '9' && in[p + 1] >= '0' &&
                    in[p + 1] <= '9' && in[p + 2] >= '0' && in[p + 2] <= '9') {
                    int v = (in[p] - '0') * 100 + (in[p + 1] - '0') * 10 + (in[p + 2] - '0');
                    if (v > 255) {
                        sts_diags_add(diags, STS_DIAG_ERROR, line, (int)(p - line_start),
                                      "escape \\%.3s is over 255", in + p);
                        return STS_ESYNTAX;
                    }
                    ch = (char)v;
                    p += 3;
                } else {
                    ch = in[p++];
                }
            }
            if (sts_buf_append(out, &ch, 1))
                return STS_ENOMEM;
        }
    }
    return 0;
}

/* Does p[0..n) begin with a header field of a mail message (RFC 5322 2.2), one that a
 * message carrying a TLS report starts with? A policy file's "version: STSv1" is a
 * header-shaped line too, so the name must be a message's. */
static int looks_like_message(const char *p, size_t n)
{
    static const char *const names[] = {
        "return-path",    "received",          "from",           "to",
        "subject",        "date",              "message-id",     "mime-version",
        "content-type",   "dkim-signature",    "delivered-to",   "tls-report-domain",
        "tls-report-submitter", "authentication-results", "reply-to", "sender",
    };
    size_t i = 0;
    while (i < n && p[i] != ':' && p[i] > 32 && p[i] < 127)
        i++;
    if (i == 0 || i >= n || p[i] != ':')
        return 0;
    if ((i > 2 && !strncasecmp(p, "x-", 2)) || (i > 4 && !strncasecmp(p, "arc-", 4)))
        return 1;
    for (size_t k = 0; k < sizeof(names) / sizeof(names[0]); k++)
        if (strlen(names[k]) == i && !strncasecmp(p, names[k], i))
            return 1;
    return 0;
}

/* The kind of input p[0..n) (after leading whitespace): quoted strings are records. */
static enum lint_kind detect_kind(const char *p, size_t n)
{
    if ((n >= 2 && (unsigned char)p[0] == 0x1f && (unsigned char)p[1] == 0x8b) ||
        (n && p[0] == '{') || looks_like_message(p, n))
        return LINT_REPORT;
    int quoted = n && p[0] == '"';
    if (quoted) {
        p++;
        n--;
    }
    if (n >= 8 && !memcmp(p, "v=TLSRPT", 8))
        return LINT_TLSRPT;
    if (quoted || (n >= 2 && !memcmp(p, "v=", 2)))
        return LINT_TXT;
    return LINT_POLICY;
}

static json_t *tlsrpt_json(const sts_tlsrpt *r)
{
    json_t *rua = json_array(), *ext = json_object();
    for (size_t i = 0; rua && i < r->nrua; i++)
        json_array_append_new(rua, json_pack("{s:s, s:s}", "scheme",
                                             sts_tlsrpt_scheme_name(r->rua[i].scheme), "uri",
                                             r->rua[i].uri));
    for (size_t i = 0; ext && i < r->next; i++) /* a repeated name: the first value */
        if (!json_object_get(ext, r->ext[i].name))
            json_object_set_new(ext, r->ext[i].name, json_string(r->ext[i].value));
    return json_pack("{s:s, s:o, s:o}", "version", r->version, "rua", rua, "extensions", ext);
}

static json_t *diags_json(const sts_diags *d, sts_diag_severity sev)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < d->n; i++)
        if (d->items[i].severity == sev)
            json_array_append_new(a,
                                  json_pack("{s:i, s:i, s:s}", "line", d->items[i].line, "column",
                                            d->items[i].column, "message", d->items[i].message));
    return a;
}

static void print_diags(const char *name, const sts_diags *d)
{
    for (size_t i = 0; i < d->n; i++) {
        const sts_diag *g = &d->items[i];
        const char *sev = sts_diag_severity_name(g->severity);
        if (g->line <= 0)
            printf("%s: %s: %s\n", name, sev, g->message);
        else if (g->column <= 0)
            printf("%s:%d: %s: %s\n", name, g->line, sev, g->message);
        else
            printf("%s:%d:%d: %s: %s\n", name, g->line, g->column, sev, g->message);
    }
}

/* One lint: the options, the input, what it was taken for, and what the parser said. */
typedef struct lint_job {
    const char *path, *name, *mx_host;
    int as_json;
    unsigned forced; /* bit k: the flag of kind k was given */
    enum lint_kind seen, kind;
    int quoted;      /* a TXT record written as a zone-file string */
    sts_buf in, rec; /* the input; the record unquoted */
    sts_diags diags;
    sts_policy policy;
    sts_txt txt;
    sts_tlsrpt rpt;
} lint_job;

static void lint_job_free(lint_job *j)
{
    sts_policy_free(&j->policy);
    sts_txt_free(&j->txt);
    sts_tlsrpt_free(&j->rpt);
    sts_diags_free(&j->diags);
    sts_buf_free(&j->in);
    sts_buf_free(&j->rec);
}

/* The command line into j. -1 to go on, else the exit status. */
static int lint_args(int argc, char **argv, lint_job *j)
{
    static const struct option opts[] = {
        {"txt", no_argument, NULL, 't'},
        {"tlsrpt", no_argument, NULL, 'r'},
        {"report", no_argument, NULL, 'R'},
        {"policy", no_argument, NULL, 'p'},
        {"json", no_argument, NULL, 'j'},
        {"mx-host", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
        case 'r':
        case 'R':
        case 'p':
            j->forced |= 1u << (c == 't'   ? LINT_TXT
                                : c == 'r' ? LINT_TLSRPT
                                : c == 'R' ? LINT_REPORT
                                           : LINT_POLICY);
            break;
        case 'j':
            j->as_json = 1;
            break;
        case 'm':
            j->mx_host = optarg;
            break;
        case 'h':
            usage(stdout);
            return STS_EXIT_OK;
        default:
            fprintf(stderr, "ststest lint: unknown or incomplete option '%s'\n", argv[optind - 1]);
            usage(stderr);
            return STS_EXIT_USAGE;
        }
    }
    if (j->forced & (j->forced - 1)) {
        fprintf(stderr, "ststest lint: --txt, --tlsrpt, --report and --policy exclude each other\n");
        usage(stderr);
        return STS_EXIT_USAGE;
    }
    if (argc - optind != 1) {
        fprintf(stderr, "ststest lint: expected exactly one FILE (or - for standard input)\n");
        usage(stderr);
        return STS_EXIT_USAGE;
    }
    j->path = argv[optind];
    j->name = strcmp(j->path, "-") ? j->path : "<stdin>";
    return -1;
}

/* Read the input and decide what it is: its first bytes, unless a flag says. -1 to go
 * on, else the exit status. */
static int lint_read(lint_job *j)
{
    char err[512];
    if (sts_cli_read_file(j->path, &j->in, "larger than 16 MiB", err, sizeof(err))) {
        fprintf(stderr, "ststest lint: %s\n", err);
        return STS_EXIT_DATAERR;
    }
    const char *text = j->in.data ? j->in.data : "";
    size_t len = j->in.len, lead = 0;
    while (lead < len &&
           (text[lead] == ' ' || text[lead] == '\t' || text[lead] == '\n' || text[lead] == '\r'))
        lead++;
    /* gzip's magic is the input's first bytes, not after white space. */
    j->seen = j->kind = len >= 2 && (unsigned char)text[0] == 0x1f && (unsigned char)text[1] == 0x8b
                            ? LINT_REPORT
                            : detect_kind(text + lead, len - lead);
    for (enum lint_kind k = LINT_POLICY; k <= LINT_REPORT; k++)
        if (j->forced & (1u << k))
            j->kind = k;
    if (j->kind != LINT_REPORT && len > LINT_MAX_INPUT) {
        fprintf(stderr, "ststest lint: %s: larger than 1 MiB\n", j->path);
        return STS_EXIT_DATAERR;
    }
    j->quoted = j->kind != LINT_POLICY && lead < len && text[lead] == '"';
    if (j->kind != LINT_POLICY && j->mx_host) {
        fprintf(stderr, "ststest lint: --mx-host needs a policy file, not a %s\n",
                kinds[j->kind].label);
        return STS_EXIT_USAGE;
    }
    return -1;
}

/* A TXT record (_mta-sts or _smtp._tls): 0, STS_ESYNTAX or STS_ENOMEM. */
static int lint_parse_record(lint_job *j)
{
    const char *text = j->in.data ? j->in.data : "";
    size_t len = j->in.len;
    /* A TLSRPT record given as an _mta-sts one, or the other way round. */
    if (j->kind != j->seen && j->seen != LINT_POLICY)
        sts_diags_add(&j->diags, STS_DIAG_WARNING, 0, 0,
                      "the input looks like a %s; checked as a %s as %s asks",
                      kinds[j->seen].label, kinds[j->kind].label, kinds[j->kind].flag);
    if (j->quoted) {
        int rc = unquote_txt(text, len, &j->rec, &j->diags);
        if (rc)
            return rc;
        text = j->rec.data ? j->rec.data : "";
        len = j->rec.len;
    } else {
        /* A record in a file: one line; its final line break is not part of it. */
        if (len && text[len - 1] == '\n')
            len--;
        if (len && text[len - 1] == '\r')
            len--;
    }
    return j->kind == LINT_TXT ? sts_txt_parse(text, len, &j->txt, &j->diags)
                               : sts_tlsrpt_parse(text, len, &j->rpt, &j->diags);
}

/* The input as its kind: 0, STS_ESYNTAX or STS_ENOMEM. */
static int lint_parse(lint_job *j)
{
    if (j->kind != LINT_POLICY)
        return lint_parse_record(j);
    if (j->in.len > STS_FETCH_MAX_BODY)
        sts_diags_add(&j->diags, STS_DIAG_WARNING, 0, 0,
                      "policy is %zu bytes: senders stop reading at %d (RFC 8461 3.3)", j->in.len,
                      STS_FETCH_MAX_BODY);
    return sts_policy_parse(j->in.data ? j->in.data : "", j->in.len, &j->policy, &j->diags);
}

static void lint_print_json(const lint_job *j, int valid, const char *match)
{
    json_t *doc = json_pack("{s:s, s:s, s:b, s:o, s:o}", "kind", kinds[j->kind].name, "file",
                            j->name, "valid", valid, "errors",
                            diags_json(&j->diags, STS_DIAG_ERROR), "warnings",
                            diags_json(&j->diags, STS_DIAG_WARNING));
    if (j->kind == LINT_TLSRPT) {
        json_object_set_new(doc, "tlsrpt", valid ? tlsrpt_json(&j->rpt) : json_null());
    } else if (j->kind == LINT_TXT) {
        json_t *t = json_null();
        if (valid) {
            json_t *ext = json_array();
            for (size_t i = 0; i < j->txt.next; i++)
                json_array_append_new(ext, json_pack("{s:s, s:s}", "name", j->txt.ext[i].name,
                                                     "value", j->txt.ext[i].value));
            t = json_pack("{s:s, s:s, s:o}", "v", j->txt.version, "id", j->txt.id, "extensions",
                          ext);
        }
        json_object_set_new(doc, "txt", t);
    } else {
        json_object_set_new(doc, "policy", valid ? sts_policy_to_json(&j->policy) : json_null());
    }
    if (j->mx_host)
        json_object_set_new(doc, "mx_host",
                            json_pack("{s:s, s:b, s:s?}", "name", j->mx_host, "allowed",
                                      match != NULL, "pattern", match));
    char *s = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(doc);
}

/* The one-line summary of a valid input. */
static void lint_print_valid(const lint_job *j, const char *match)
{
    const char *name = j->name;
    if (j->kind == LINT_TLSRPT) {
        printf("%s: valid %s: v=%s rua=", name, kinds[j->kind].label, j->rpt.version);
        for (size_t i = 0; i < j->rpt.nrua; i++)
            printf("%s%s", i ? "," : "", j->rpt.rua[i].uri);
        for (size_t i = 0; i < j->rpt.next; i++)
            printf(" %s=%s", j->rpt.ext[i].name, j->rpt.ext[i].value);
        printf("\n");
        return;
    }
    if (j->kind == LINT_TXT) {
        printf("%s: valid _mta-sts TXT record: v=%s id=%s", name, j->txt.version, j->txt.id);
        for (size_t i = 0; i < j->txt.next; i++)
            printf(" %s=%s", j->txt.ext[i].name, j->txt.ext[i].value);
        printf("\n");
        return;
    }
    const sts_policy *p = &j->policy;
    printf("%s: valid MTA-STS policy: version %s, mode %s, max_age %ld, mx", name, p->version,
           sts_mode_name(p->mode), p->max_age);
    if (!p->nmx)
        printf(" (none)");
    for (size_t i = 0; i < p->nmx; i++)
        printf("%s %s", i ? "," : "", p->mx[i]);
    printf("\n");
    if (j->mx_host) {
        if (match)
            printf("mx host %s: allowed (matches %s)\n", j->mx_host, match);
        else
            printf("mx host %s: not allowed (matches no mx pattern)\n", j->mx_host);
    }
}

static void lint_print_text(const lint_job *j, int valid, const char *match)
{
    print_diags(j->name, &j->diags);
    if (valid)
        lint_print_valid(j, match);
    else
        printf("%s: invalid %s (%zu error%s, %zu warning%s)\n", j->name, kinds[j->kind].label,
               j->diags.nerrors, j->diags.nerrors == 1 ? "" : "s", j->diags.nwarnings,
               j->diags.nwarnings == 1 ? "" : "s");
}

/* ---- a received TLS report ------------------------------------------------------- */

static json_t *findings_json(const sts_rpt_findings *f, sts_rpt_severity sev)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < f->n; i++)
        if (f->items[i].severity == sev)
            json_array_append_new(a, json_pack("{s:s, s:i, s:i, s:s}", "path", f->items[i].path,
                                               "line", f->items[i].line, "column",
                                               f->items[i].column, "message",
                                               f->items[i].message));
    return a;
}

static void print_findings(const char *name, const sts_rpt_findings *f)
{
    for (size_t i = 0; i < f->n; i++) {
        const sts_rpt_finding *g = &f->items[i];
        const char *sev = sts_rpt_severity_name(g->severity);
        if (g->line > 0)
            printf("%s:%d:%d: %s: %s\n", name, g->line, g->column, sev, g->message);
        else
            printf("%s: %s: %s: %s\n", name, sev, g->path, g->message);
    }
    if (f->ndropped)
        printf("%s: ... and %zu more findings\n", name, f->ndropped);
}

/* What a valid report says, in one line. */
static void print_report_line(const char *name, sts_rptmsg_form form, const json_t *r)
{
    const json_t *range = json_object_get(r, "date-range");
    printf("%s: valid %s (%s): organization-name '%s', report-id '%s', %s to %s", name,
           kinds[LINT_REPORT].label, sts_rptmsg_form_name(form),
           json_string_value(json_object_get(r, "organization-name")),
           json_string_value(json_object_get(r, "report-id")),
           json_string_value(json_object_get(range, "start-datetime")),
           json_string_value(json_object_get(range, "end-datetime")));
    size_t i;
    json_t *p;
    json_array_foreach(json_object_get(r, "policies"), i, p)
    {
        const json_t *pol = json_object_get(p, "policy"), *sum = json_object_get(p, "summary");
        printf("%s %s (%s, %lld successful, %lld failed)", i ? "," : ";",
               json_string_value(json_object_get(pol, "policy-domain")),
               json_string_value(json_object_get(pol, "policy-type")),
               (long long)json_integer_value(json_object_get(sum, "total-successful-session-count")),
               (long long)json_integer_value(json_object_get(sum, "total-failure-session-count")));
    }
    printf("\n");
}

/* Decode (JSON, gzip, message) and validate; print; the exit status. */
static int lint_report(lint_job *j)
{
    sts_buf text;
    sts_buf_init(&text, 0);
    sts_rptmsg_form form = STS_RPTMSG_JSON;
    sts_rpt_findings f;
    sts_rpt_findings_init(&f);
    json_t *root = NULL;
    char err[512] = "";
    int rc = sts_rptmsg_decode(j->in.data ? j->in.data : "", j->in.len, &text, &form, err,
                               sizeof(err));
    int undecodable = rc != 0;
    if (!rc)
        rc = sts_rpt_validate_text(text.data ? text.data : "", text.len, &f, &root);
    if (rc == STS_ENOMEM) {
        fprintf(stderr, "ststest lint: out of memory\n");
        json_decref(root);
        sts_rpt_findings_free(&f);
        sts_buf_free(&text);
        return STS_EXIT_SOFTWARE;
    }
    int valid = rc == 0;
    if (j->as_json) {
        json_t *errors = findings_json(&f, STS_RPT_ERROR);
        if (undecodable)
            json_array_append_new(errors, json_pack("{s:s, s:i, s:i, s:s}", "path", "$", "line",
                                                    0, "column", 0, "message", err));
        json_t *doc = json_pack("{s:s, s:s, s:s, s:b, s:o, s:o, s:O?}", "kind",
                                kinds[LINT_REPORT].name, "file", j->name, "form",
                                sts_rptmsg_form_name(form), "valid", valid, "errors", errors,
                                "warnings", findings_json(&f, STS_RPT_WARNING), "report",
                                valid ? root : NULL);
        char *s = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(doc);
    } else {
        if (undecodable)
            printf("%s: error: %s\n", j->name, err);
        print_findings(j->name, &f);
        if (valid)
            print_report_line(j->name, form, root);
        else
            printf("%s: invalid %s (%zu error%s, %zu warning%s)\n", j->name,
                   kinds[LINT_REPORT].label, f.nerrors + (size_t)undecodable,
                   f.nerrors + (size_t)undecodable == 1 ? "" : "s", f.nwarnings,
                   f.nwarnings == 1 ? "" : "s");
    }
    json_decref(root);
    sts_rpt_findings_free(&f);
    sts_buf_free(&text);
    return valid ? STS_EXIT_OK : STS_EXIT_DATAERR;
}

int sts_cmd_lint(int argc, char **argv)
{
    lint_job j;
    memset(&j, 0, sizeof(j));
    sts_buf_init(&j.in, STS_RPTMSG_MAX); /* a policy or record: LINT_MAX_INPUT (lint_read) */
    sts_buf_init(&j.rec, 0);
    sts_diags_init(&j.diags);
    int status = lint_args(argc, argv, &j);
    if (status < 0)
        status = lint_read(&j);
    if (status >= 0) {
        lint_job_free(&j);
        return status;
    }
    if (j.kind == LINT_REPORT) {
        status = lint_report(&j);
        lint_job_free(&j);
        return status;
    }
    int rc = lint_parse(&j);
    if (rc == STS_ENOMEM) {
        fprintf(stderr, "ststest lint: out of memory\n");
        lint_job_free(&j);
        return STS_EXIT_SOFTWARE;
    }
    int valid = rc == 0;
    const char *match = valid && j.mx_host ? sts_policy_mx_match(&j.policy, j.mx_host) : NULL;
    if (j.as_json)
        lint_print_json(&j, valid, match);
    else
        lint_print_text(&j, valid, match);
    lint_job_free(&j);
    if (!valid)
        return STS_EXIT_DATAERR;
    /* A policy that would make senders refuse the MX being deployed is what the user
     * asked about: say it in the status too, as grep does for "no match". */
    return j.mx_host && !match ? 1 : STS_EXIT_OK;
}
