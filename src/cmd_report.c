/*
 * cmd_report.c - `ststest report`: the RFC 8460 aggregate reports of one UTC day, one
 * per policy domain, from the report store (sender/rptstore.h), written as section 5.3
 * `.json.gz` files; and `ststest report --summary FILE...`, what received reports say
 * (common/rptsum.h).
 * Returns the exit status: 0 done (also: no session that day, no report), 64 usage,
 * 65 an unusable store or an invalid report given to --summary, 70 a report could not
 * be written (nothing half-written is left) or an internal error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/rptjson.h"
#include "common/rptmsg.h"
#include "common/rptsum.h"
#include "sender/rptdeliver.h"
#include "sender/rptmail.h"
#include "sender/rptstore.h"
#include "sender/rua.h"
#include "sender/tlsrpt.h"
#include "src/cli.h"
#include "src/cmds.h"

#define DAY_SECONDS 86400

enum {
    OPT_DAY = 256,
    OPT_NOW,
    OPT_STORE,
    OPT_OUT,
    OPT_ORG,
    OPT_CONTACT,
    OPT_SUBMITTER,
    OPT_SUMMARY,
    OPT_JSON,
    OPT_DELIVER,
    OPT_DNS,
    OPT_CA_FILE,
    OPT_SMTP_PORT,
    OPT_DKIM_KEY,
    OPT_DKIM_SELECTOR,
    OPT_RUA_INSECURE,
    OPT_TIMEOUT,
    OPT_KEEP_DAYS,
};

/* Sessions older than this many days are pruned by `report` (--keep-days). */
#define DEFAULT_KEEP_DAYS 31
/* The DKIM selector when --dkim-selector is not given (the world's default too). */
#define DEFAULT_DKIM_SELECTOR "ststest"

static const struct option long_opts[] = {
    {"day", required_argument, NULL, OPT_DAY},
    {"now", required_argument, NULL, OPT_NOW},
    {"report-store", required_argument, NULL, OPT_STORE},
    {"out", required_argument, NULL, OPT_OUT},
    {"org", required_argument, NULL, OPT_ORG},
    {"contact", required_argument, NULL, OPT_CONTACT},
    {"submitter", required_argument, NULL, OPT_SUBMITTER},
    {"summary", no_argument, NULL, OPT_SUMMARY},
    {"json", no_argument, NULL, OPT_JSON},
    {"deliver", no_argument, NULL, OPT_DELIVER},
    {"dns", required_argument, NULL, OPT_DNS},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"smtp-port", required_argument, NULL, OPT_SMTP_PORT},
    {"dkim-key", required_argument, NULL, OPT_DKIM_KEY},
    {"dkim-selector", required_argument, NULL, OPT_DKIM_SELECTOR},
    {"rua-insecure", no_argument, NULL, OPT_RUA_INSECURE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"keep-days", required_argument, NULL, OPT_KEEP_DAYS},
    STS_CLI_OPTS_VERBOSE_HELP,
};

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: ststest report [options]\n"
            "       ststest report --deliver [options]\n"
            "       ststest report --summary [--json] FILE...\n"
            "\n"
            "Build the TLS reports (RFC 8460 section 4) of one UTC day from the sessions\n"
            "that `send` and `check` recorded in the report store: one aggregate report\n"
            "per policy domain, written to DIR as SUBMITTER!DOMAIN!BEGIN!END.json.gz\n"
            "(section 5.3), each file complete or not there at all. Prints the files.\n"
            "Then prunes the store: sessions older than --keep-days days are deleted.\n"
            "\n"
            "With --deliver: also send each report to every rua of the policy domain's\n"
            "_smtp._tls TXT record (RFC 8460 3; none, an invalid one or two: no report\n"
            "is sent for that domain, and that is said, not an error). https: a POST of\n"
            "the gzip file (application/tlsrpt+gzip); the collector's certificate is\n"
            "verified (--ca-file, default: the system store) unless --rua-insecure.\n"
            "mailto: a DKIM-signed multipart/report message (section 5.3) to the\n"
            "address's MX, over STARTTLS when offered, delivered even when TLS fails\n"
            "(an unverified certificate is accepted, a failed handshake is retried in\n"
            "the clear). Without --dkim-key a mailto: report is not sent unsigned: it is\n"
            "deferred (exit 75). Each (report, rua) delivered is remembered in the store:\n"
            "a rerun sends nothing twice and retries only what failed.\n"
            "\n"
            "With --summary: read received reports (JSON, gzip, or a whole mail message\n"
            "carrying one) and print per policy domain, per MX and per result type the\n"
            "sessions, the failures and the first and last day seen.\n"
            "\n"
            "options:\n"
            "  --day YYYY-MM-DD       the UTC day to report (default: yesterday by --now)\n"
            "  --now TIME             the clock (2030-01-01T00:00:00Z or a unix time;\n"
            "                         default: the system's)\n"
            "  --report-store FILE    the store `send`/`check --report-store` wrote\n"
            "                         (default: %s next to the\n"
            "                         default policy cache)\n"
            "  --out DIR              where the reports go (default: .)\n"
            "  --org NAME             organization-name (default: the submitter)\n"
            "  --contact EMAIL        contact-info (default: postmaster@SUBMITTER)\n"
            "  --submitter DOMAIN     the reporting domain in file names and report ids\n"
            "                         (default: the host name)\n"
            "  --summary              summarise the FILEs instead\n"
            "  --json                 print one JSON document instead of lines\n"
            "  --keep-days N          prune sessions older than N days (default: %d;\n"
            "                         0 keeps everything)\n"
            "  --deliver              send the reports to the domains' rua addresses;\n"
            "                         the options below go with --deliver only\n"
            "  --dns HOST[:PORT][,...]\n"
            "                         DNS servers (default: /etc/resolv.conf)\n"
            "  --ca-file FILE         trust anchors for https rua certificates\n"
            "                         (default: the system store)\n"
            "  --rua-insecure         do not verify https rua certificates (RFC 8460 5.2\n"
            "                         allows it; default: verify)\n"
            "  --smtp-port N          the report MX's port (default: 25)\n"
            "  --dkim-key FILE        PEM RSA private key that signs mailto reports,\n"
            "                         d=SUBMITTER (required for mailto: rua)\n"
            "  --dkim-selector SEL    its DKIM selector (default: %s)\n"
            "  --timeout S            per DNS query, POST and SMTP stage (default: 60)\n"
            "  -v, --verbose          more detail\n"
            "  -h, --help             this help\n"
            "\n"
            "exit status: 0 done (no session that day is no report, and not an error;\n"
            "--deliver: every report delivered, or nothing to deliver), 64 usage error,\n"
            "65 unusable store, unusable --dkim-key or (--summary) an invalid report,\n"
            "70 a report could not be written (nothing half-written is left),\n"
            "75 (--deliver) a delivery failed and was deferred, or another --deliver\n"
            "held the store: run again to retry what was not delivered.\n",
            STS_RPTSTORE_DEFAULT_NAME, DEFAULT_KEEP_DAYS, DEFAULT_DKIM_SELECTOR);
}

typedef struct report_cli {
    const char *day, *store, *out, *org, *contact, *submitter;
    const char *dns, *ca_file, *dkim_key, *dkim_selector;
    time_t now;
    int summary, json, verbose, deliver, rua_insecure, smtp_port, keep_days;
    double timeout;
    int delivery_opts; /* a delivery option was given */
    char submitter_buf[256], contact_buf[320];
} report_cli;

/* One report written, kept for --deliver. */
typedef struct built_report {
    char domain[256], id[600], name[700];
    sts_buf gz;
} built_report;

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ststest report: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see `ststest report --help`)\n");
    return STS_EXIT_USAGE;
}

/* YYYY-MM-DD to the UTC midnight it starts with. */
static int parse_day(const char *s, time_t *out)
{
    char buf[32];
    if (strlen(s) != 10)
        return -1;
    snprintf(buf, sizeof(buf), "%sT00:00:00Z", s);
    return sts_rpt_parse_time(buf, out);
}

/* A domain name as RFC 8460 5.3's sender: LDH labels, dots between. */
static int domain_ok(const char *s)
{
    size_t label = 0, n = strlen(s);
    if (!n || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '.') {
            if (!label || s[i - 1] == '-')
                return 0;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   (c == '-' && label)) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && s[n - 1] != '-';
}

static int report_args(report_cli *c, int argc, char **argv)
{
    optind = 1;
    opterr = 0;
    int o;
    while ((o = getopt_long(argc, argv, ":vh", long_opts, NULL)) != -1) {
        switch (o) {
        case OPT_DAY:
            c->day = optarg;
            break;
        case OPT_NOW:
            if (sts_cli_time(optarg, &c->now))
                return usage_error("--now '%s': use 2030-01-01T00:00:00Z or a unix time", optarg);
            break;
        case OPT_STORE:
            if (!*optarg)
                return usage_error("--report-store needs a FILE");
            c->store = optarg;
            break;
        case OPT_OUT:
            c->out = optarg;
            break;
        case OPT_ORG:
            if (!*optarg)
                return usage_error("--org needs a NAME");
            c->org = optarg;
            break;
        case OPT_CONTACT:
            if (!*optarg)
                return usage_error("--contact needs an EMAIL");
            c->contact = optarg;
            break;
        case OPT_SUBMITTER:
            if (!domain_ok(optarg))
                return usage_error("--submitter '%s' is not a domain name", optarg);
            c->submitter = optarg;
            break;
        case OPT_SUMMARY:
            c->summary = 1;
            break;
        case OPT_JSON:
            c->json = 1;
            break;
        case OPT_DELIVER:
            c->deliver = 1;
            break;
        case OPT_DNS:
            if (!*optarg)
                return usage_error("--dns needs HOST[:PORT][,...]");
            c->dns = optarg;
            c->delivery_opts = 1;
            break;
        case OPT_CA_FILE:
            if (!*optarg)
                return usage_error("--ca-file needs a FILE");
            c->ca_file = optarg;
            c->delivery_opts = 1;
            break;
        case OPT_SMTP_PORT: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 1 || v > 65535)
                return usage_error("--smtp-port '%s': a port number 1-65535", optarg);
            c->smtp_port = (int)v;
            c->delivery_opts = 1;
            break;
        }
        case OPT_DKIM_KEY:
            if (!*optarg)
                return usage_error("--dkim-key needs a FILE");
            c->dkim_key = optarg;
            c->delivery_opts = 1;
            break;
        case OPT_DKIM_SELECTOR:
            if (!sts_rptmail_selector_ok(optarg))
                return usage_error("--dkim-selector '%s' is not a DKIM selector (dot-separated "
                                   "DNS labels: letters, digits, '-'; RFC 6376 3.1)",
                                   optarg);
            c->dkim_selector = optarg;
            c->delivery_opts = 1;
            break;
        case OPT_RUA_INSECURE:
            c->rua_insecure = 1;
            c->delivery_opts = 1;
            break;
        case OPT_TIMEOUT: {
            char *end;
            double v = strtod(optarg, &end);
            if (!*optarg || *end || !(v > 0) || v > 3600)
                return usage_error("--timeout '%s': seconds, more than 0 and at most 3600", optarg);
            c->timeout = v;
            c->delivery_opts = 1;
            break;
        }
        case OPT_KEEP_DAYS: {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < 0 || v > 36500)
                return usage_error("--keep-days '%s': a number of days 0-36500 (0: keep "
                                   "everything)",
                                   optarg);
            c->keep_days = (int)v;
            break;
        }
        case 'v':
            c->verbose++;
            break;
        case 'h':
            usage(stdout);
            return STS_EXIT_OK;
        case ':':
            return usage_error("option %s needs a value", argv[optind - 1]);
        default:
            return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (c->summary) {
        if (c->day || c->store || c->out || c->org || c->contact || c->submitter || c->now ||
            c->deliver || c->delivery_opts || c->keep_days >= 0)
            return usage_error("--summary reads FILEs: it takes only --json");
        if (optind >= argc)
            return usage_error("--summary needs at least one FILE");
        return -1;
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s' (FILEs go with --summary)", argv[optind]);
    if (c->delivery_opts && !c->deliver)
        return usage_error("--dns, --ca-file, --smtp-port, --dkim-key, --dkim-selector, "
                           "--rua-insecure and --timeout go with --deliver");
    return -1;
}

/* ---- building the day's reports --------------------------------------------------- */

/* Write data to dir/name atomically: a temporary file in dir, fsync, rename. 0, or -1
 * with err set (the temporary file is gone). */
static int write_atomic(const char *dir, const char *name, const sts_buf *data, char *err,
                        size_t errlen)
{
    char tmp[PATH_MAX], final[PATH_MAX];
    snprintf(final, sizeof(final), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, name);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "cannot create a file in %s: %s", dir, strerror(errno));
        return -1;
    }
    size_t off = 0;
    while (off < data->len) {
        ssize_t n = write(fd, data->data + off, data->len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            goto fail;
        off += (size_t)n;
    }
    if (fchmod(fd, 0644) != 0 || fsync(fd) != 0)
        goto fail;
    if (close(fd) != 0) {
        fd = -1;
        goto fail;
    }
    fd = -1;
    if (rename(tmp, final) != 0)
        goto fail;
    return 0;
fail:
    snprintf(err, errlen, "cannot write %s: %s", final, strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    return -1;
}

/* One domain's report: policies v[0..n) (all of that domain) into its file, which is
 * printed (or, with --json, appended to written). 0 or an exit status. */
static int write_report(const report_cli *c, time_t start, const sts_rptstore_policy *v, size_t n,
                        json_t *written, built_report *b)
{
    const char *dom = v[0].policy_domain;
    sts_rpt_policy *pols = calloc(n, sizeof(*pols));
    if (!pols)
        return STS_EXIT_SOFTWARE;
    long long ok = 0, failed = 0;
    for (size_t i = 0; i < n; i++) {
        pols[i] = (sts_rpt_policy){
            .policy_type = v[i].policy_type,
            .policy_string = (const char *const *)v[i].policy_string,
            .npolicy_string = v[i].npolicy_string,
            .policy_domain = v[i].policy_domain,
            .mx_host = (const char *const *)v[i].mx_host,
            .nmx_host = v[i].nmx_host,
            .successful = v[i].successful,
            .failed = v[i].failed,
            .failures = v[i].failures,
            .nfailures = v[i].nfailures,
        };
        ok += v[i].successful;
        failed += v[i].failed;
    }
    struct tm tm;
    gmtime_r(&start, &tm);
    char day[16], id[600], name[700], err[PATH_MAX + 256];
    strftime(day, sizeof(day), "%Y%m%d", &tm);
    /* Unique per day, domain and submitter, and the same when the day is built again:
     * a msg-id (RFC 5322 3.6.4) for the 5.3 Subject's Report-ID. */
    snprintf(id, sizeof(id), "%s.%s@%s", day, dom, c->submitter);
    sts_rpt_report r = {c->org, c->contact, id, start, start + DAY_SECONDS - 1, pols, n};
    json_t *j = sts_rpt_build(&r);
    free(pols);
    if (!j) {
        fprintf(stderr,
                "ststest report: %s: cannot build the report (out of memory or a "
                "store row the report format cannot carry)\n",
                dom);
        return STS_EXIT_SOFTWARE;
    }
    /* What we send must pass our own validator. */
    sts_rpt_findings f;
    sts_rpt_findings_init(&f);
    int vrc = sts_rpt_validate(j, &f);
    if (vrc) {
        fprintf(stderr, "ststest report: BUG: the report for %s fails validation: %s: %s\n", dom,
                f.n ? f.items[0].path : "$", f.n ? f.items[0].message : "?");
        sts_rpt_findings_free(&f);
        json_decref(j);
        return STS_EXIT_SOFTWARE;
    }
    sts_rpt_findings_free(&f);
    char *text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(j);
    sts_buf gz;
    sts_buf_init(&gz, 0);
    int rc = text ? sts_rptmsg_gzip(text, strlen(text), &gz) : STS_ENOMEM;
    free(text);
    /* RFC 8460 5.3: sender "!" policy-domain "!" begin-timestamp "!" end-timestamp
     * "." extension, extension "json.gz" for gzip. */
    snprintf(name, sizeof(name), "%s!%s!%lld!%lld.json.gz", c->submitter, dom, (long long)start,
             (long long)(start + DAY_SECONDS - 1));
    if (rc || write_atomic(c->out, name, &gz, err, sizeof(err))) {
        fprintf(stderr, "ststest report: %s: %s\n", dom, rc ? "out of memory" : err);
        sts_buf_free(&gz);
        return STS_EXIT_SOFTWARE;
    }
    snprintf(b->domain, sizeof(b->domain), "%s", dom);
    snprintf(b->id, sizeof(b->id), "%s", id);
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->gz = gz; /* the caller frees it */
    char path[PATH_MAX + 800];
    snprintf(path, sizeof(path), "%s/%s", c->out, name);
    if (c->json)
        json_array_append_new(
            written, json_pack("{s:s,s:s,s:s,s:I,s:I,s:I}", "policy_domain", dom, "file", path,
                               "report_id", id, "policies", (json_int_t)n, "successful_sessions",
                               (json_int_t)ok, "failed_sessions", (json_int_t)failed));
    else
        printf("%s\n", path);
    return 0;
}

/* ---- --deliver ------------------------------------------------------------------------ */

typedef struct deliver_ctx {
    const report_cli *c;
    sts_rptstore *s;
    sts_rptdeliver *d;
    const sts_buf *key; /* PEM, when --dkim-key; NULL: none */
    time_t day, now;
    json_t *log; /* deliveries[] */
    unsigned long serial;
} deliver_ctx;

static void note(deliver_ctx *x, const built_report *b, const char *rua, const char *what,
                 const char *detail)
{
    if (x->log)
        json_array_append_new(x->log, json_pack("{s:s,s:s,s:s?,s:s,s:s}", "policy_domain",
                                                b->domain, "report_id", b->id, "rua", rua, "status",
                                                what, "detail", detail));
}

/* The message for one mailto rua, signed. 0, or an exit status with the reason
 * in why. */
static int make_message(deliver_ctx *x, const built_report *b, const sts_rua *r, sts_buf *out,
                        char *why, size_t whylen)
{
    char unique[128];
    /* Unique per message: day, time, process and a counter. */
    snprintf(unique, sizeof(unique), "%lld.%ld.%d.%lu", (long long)x->day, (long)time(NULL),
             (int)getpid(), ++x->serial);
    sts_rptmail m = {
        .from = x->c->contact,
        .to = r->address,
        .policy_domain = b->domain,
        .submitter = x->c->submitter,
        .report_id = b->id,
        .filename = b->name,
        .gz = b->gz.data,
        .gzlen = b->gz.len,
        .date = x->now,
        .unique = unique,
    };
    sts_buf msg, sig;
    sts_buf_init(&msg, 0);
    sts_buf_init(&sig, 0);
    int rc = sts_rptmail_build(&m, &msg, why, whylen);
    if (!rc)
        rc = sts_rptmail_sign(msg.data, msg.len, x->key->data, x->key->len, x->c->dkim_selector,
                              x->c->submitter, &sig, why, whylen);
    if (!rc && (sts_buf_append(out, sig.data, sig.len) || sts_buf_append(out, msg.data, msg.len)))
        rc = STS_ENOMEM;
    sts_buf_free(&msg);
    sts_buf_free(&sig);
    if (rc == STS_ENOMEM)
        snprintf(why, whylen, "out of memory");
    return rc;
}

/* Every rua of one report. Returns 0, STS_EXIT_TEMPFAIL (something deferred) or
 * another exit status. */
static int deliver_report(deliver_ctx *x, const built_report *b)
{
    char why[2048] = "", how[1024] = "";
    sts_tlsrpt rec;
    int rc = sts_rptdeliver_record(x->d, b->domain, &rec, why, sizeof(why));
    if (rc == STS_EDNS) {
        fprintf(stderr,
                "ststest report: %s: report %s deferred: the TLSRPT record lookup "
                "failed: %s\n",
                b->domain, b->id, why);
        note(x, b, NULL, sts_outcome_name(STS_OUTCOME_DEFERRED), why);
        return STS_EXIT_TEMPFAIL;
    }
    if (rc == STS_ENOMEM)
        return STS_EXIT_SOFTWARE;
    if (rc) {
        fprintf(stderr, "ststest report: %s: no report sent: %s\n", b->domain, why);
        note(x, b, NULL, "no-record", why);
        return 0;
    }
    int status = 0;
    for (size_t i = 0; i < rec.nrua; i++) {
        const char *uri = rec.rua[i].uri;
        int done = sts_rptstore_delivered(x->s, b->id, uri);
        if (done < 0) {
            fprintf(stderr, "ststest report: %s\n", sts_rptstore_last_error(x->s));
            status = STS_EXIT_DATAERR;
            break;
        }
        if (done) {
            if (x->c->verbose)
                fprintf(stderr, "ststest report: %s: %s: already delivered, not sent again\n",
                        b->domain, uri);
            note(x, b, uri, "already-delivered", "");
            continue;
        }
        sts_rua r;
        if (sts_rua_parse(uri, &r, why, sizeof(why))) {
            fprintf(stderr, "ststest report: %s: rua %s: not sent: %s\n", b->domain, uri, why);
            note(x, b, uri, "bad-rua", why);
            continue;
        }
        if (r.scheme == STS_TLSRPT_HTTPS) {
            rc = sts_rptdeliver_https(x->d, &r, b->gz.data, b->gz.len, why, sizeof(why));
            snprintf(how, sizeof(how), "POST %s:%d%s", r.host, r.port, r.path);
        } else if (!x->key) {
            snprintf(why, sizeof(why),
                     "a mailto: report is sent DKIM-signed only (RFC 8460 5.3: unsigned "
                     "reports may be ignored): give --dkim-key FILE (and --dkim-selector)");
            rc = STS_EINVAL;
        } else {
            sts_buf msg;
            sts_buf_init(&msg, 0);
            rc = make_message(x, b, &r, &msg, why, sizeof(why));
            if (rc == STS_ENOMEM) {
                sts_buf_free(&msg);
                status = STS_EXIT_SOFTWARE;
                break;
            }
            if (!rc)
                rc = sts_rptdeliver_mail(x->d, &r, msg.data, msg.len, how, sizeof(how), why,
                                         sizeof(why));
            sts_buf_free(&msg);
        }
        if (rc == STS_ENOMEM) {
            status = STS_EXIT_SOFTWARE;
            break;
        }
        if (rc) {
            fprintf(stderr, "ststest report: %s: report %s to %s deferred: %s\n", b->domain, b->id,
                    uri, why);
            note(x, b, uri, sts_outcome_name(STS_OUTCOME_DEFERRED), why);
            status = STS_EXIT_TEMPFAIL;
            continue;
        }
        if (sts_rptstore_mark_delivered(x->s, b->id, uri, x->day, x->now)) {
            /* Delivered but not remembered: a rerun would send it again. */
            fprintf(stderr, "ststest report: %s: delivered to %s, but %s\n", b->domain, uri,
                    sts_rptstore_last_error(x->s));
            status = STS_EXIT_DATAERR;
            break;
        }
        fprintf(stderr, "ststest report: %s: report %s delivered to %s (%s)\n", b->domain, b->id,
                uri, how);
        note(x, b, uri, sts_outcome_name(STS_OUTCOME_DELIVERED), how);
    }
    sts_tlsrpt_free(&rec);
    return status;
}

/* The worst of two exit statuses: anything but 0 and 75 wins over 75. */
static int worse(int a, int b)
{
    if (!a || (a == STS_EXIT_TEMPFAIL && b))
        return b ? b : a;
    return a;
}

static int deliver_run(const report_cli *c, sts_rptstore *s, time_t day, built_report *v, size_t n,
                       const sts_buf *key, json_t *log)
{
    deliver_ctx x = {.c = c, .s = s, .day = day, .log = log};
    x.now = c->now ? c->now : time(NULL);
    x.key = key;
    char err[1024] = "";
    char from[320];
    snprintf(from, sizeof(from), "postmaster@%s", c->submitter);
    sts_log *lg = sts_log_new_file(
        stderr, c->verbose ? STS_LOG_INFO + c->verbose - 1 : STS_LOG_ERROR, "rua: ");
    sts_rptdeliver_opts o = {
        .dns = c->dns,
        .ca_file = c->ca_file,
        .smtp_port = c->smtp_port,
        .insecure = c->rua_insecure,
        .timeout_s = c->timeout,
        .helo = c->submitter,
        .from = from,
        .now = c->now,
        .log = lg,
    };
    int rc = sts_rptdeliver_new(&o, &x.d, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "ststest report: %s\n", err);
        sts_log_free(lg);
        return rc == STS_EINVAL ? STS_EXIT_USAGE : STS_EXIT_SOFTWARE;
    }
    int status = 0;
    for (size_t i = 0; i < n; i++) {
        status = worse(status, deliver_report(&x, &v[i]));
        if (status && status != STS_EXIT_TEMPFAIL)
            break;
    }
    sts_rptdeliver_free(x.d);
    sts_log_free(lg);
    return status;
}

/* One `report --deliver` per store at a time: the ledger is read before a send and
 * written after it, so two at once could both send a report. An exclusive flock on
 * STORE.deliver-lock (created 0600, never a symbolic link), held until the end.
 * Returns the descriptor, or -1 with why (*busy: another run holds it). */
static int deliver_lock(const sts_rptstore *s, int *busy, char *why, size_t whylen)
{
    char path[PATH_MAX];
    *busy = 0;
    if ((size_t)snprintf(path, sizeof(path), "%s.deliver-lock", sts_rptstore_path(s)) >=
        sizeof(path)) {
        snprintf(why, whylen, "the store's path is too long for its lock file");
        return -1;
    }
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        snprintf(why, whylen, "lock file %s: %s", path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        *busy = errno == EWOULDBLOCK;
        snprintf(why, whylen, "%s",
                 *busy ? "another `ststest report --deliver` is delivering from this store "
                         "(it holds the lock): nothing sent, run again later"
                       : strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int deliver_all(const report_cli *c, sts_rptstore *s, time_t day, built_report *v, size_t n,
                       const sts_buf *key, json_t *log)
{
    char why[PATH_MAX + 256];
    int busy, lock = deliver_lock(s, &busy, why, sizeof(why));
    if (lock < 0) {
        fprintf(stderr, "ststest report: %s: %s\n", sts_rptstore_path(s), why);
        return busy ? STS_EXIT_TEMPFAIL : STS_EXIT_DATAERR;
    }
    int status = deliver_run(c, s, day, v, n, key, log);
    close(lock); /* releases the flock */
    return status;
}

static int open_store(const report_cli *c, sts_rptstore **s)
{
    char path[PATH_MAX], err[1024] = "";
    const char *p = c->store;
    int rc = 0;
    if (!p) {
        rc = sts_rptstore_default_path(path, sizeof(path), err, sizeof(err));
        p = path;
    }
    struct stat st;
    if (!rc && lstat(p, &st) != 0) {
        /* Reading must not create: a mistyped name would read as a quiet day. */
        fprintf(stderr, "ststest report: report store %s: %s (send and check create it)\n", p,
                strerror(errno));
        return STS_EXIT_DATAERR;
    }
    if (!rc)
        rc = sts_rptstore_open(p, s, err, sizeof(err));
    if (rc) {
        fprintf(stderr, "ststest report: %s\n", err);
        return STS_EXIT_DATAERR;
    }
    return 0;
}

static int report_build(report_cli *c)
{
    time_t now = c->now ? c->now : time(NULL), start;
    if (c->day) {
        if (parse_day(c->day, &start))
            return usage_error("--day '%s' is not a date YYYY-MM-DD", c->day);
    } else {
        start = now - now % DAY_SECONDS - DAY_SECONDS; /* yesterday, UTC */
    }
    if (!c->submitter) {
        if (gethostname(c->submitter_buf, sizeof(c->submitter_buf) - 1) != 0 ||
            !domain_ok(c->submitter_buf))
            return usage_error("the host name is not a domain name: give --submitter DOMAIN");
        c->submitter = c->submitter_buf;
    }
    if (!c->org)
        c->org = c->submitter;
    if (!c->contact) {
        snprintf(c->contact_buf, sizeof(c->contact_buf), "postmaster@%s", c->submitter);
        c->contact = c->contact_buf;
    }
    if (!c->out)
        c->out = ".";
    if (c->deliver && !c->dkim_selector)
        c->dkim_selector = DEFAULT_DKIM_SELECTOR;
    /* The key is read before anything else happens: a bad one is exit 65 even on a
     * day with nothing to send. */
    sts_buf key;
    sts_buf_init(&key, 0);
    if (c->deliver && c->dkim_key) {
        char err[PATH_MAX + 256];
        int rc = sts_rptmail_load_key(c->dkim_key, &key, err, sizeof(err));
        if (rc) {
            fprintf(stderr, "ststest report: %s\n", rc == STS_ENOMEM ? "out of memory" : err);
            sts_buf_free(&key);
            return rc == STS_ENOMEM ? STS_EXIT_SOFTWARE : STS_EXIT_DATAERR;
        }
    }
    struct stat st;
    if (stat(c->out, &st) != 0 || !S_ISDIR(st.st_mode) || access(c->out, W_OK | X_OK) != 0)
        return usage_error("--out '%s' is not a directory this user may write", c->out);
    sts_rptstore *s;
    int status = open_store(c, &s);
    if (status) {
        sts_buf_free(&key);
        return status;
    }
    sts_rptstore_policy *v;
    size_t n;
    if (sts_rptstore_read(s, start, start + DAY_SECONDS, &v, &n)) {
        fprintf(stderr, "ststest report: %s\n", sts_rptstore_last_error(s));
        sts_rptstore_close(s);
        sts_buf_free(&key);
        return STS_EXIT_DATAERR;
    }
    char day[32];
    struct tm tm;
    gmtime_r(&start, &tm);
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    if (!n)
        fprintf(stderr, "ststest report: no session on %s in %s: no report\n", day,
                sts_rptstore_path(s));
    else if (c->verbose)
        fprintf(stderr, "ststest report: %s: %zu policies in %s\n", day, n, sts_rptstore_path(s));
    json_t *written = json_array(), *deliveries = c->deliver ? json_array() : NULL;
    built_report *built = calloc(n ? n : 1, sizeof(*built));
    size_t nbuilt = 0;
    status = written && built && (!c->deliver || deliveries) ? 0 : STS_EXIT_SOFTWARE;
    /* v is ordered by domain: one report per run of equal domains. */
    for (size_t i = 0; !status && i < n;) {
        size_t k = i + 1;
        while (k < n && !strcmp(v[k].policy_domain, v[i].policy_domain))
            k++;
        sts_buf_init(&built[nbuilt].gz, 0);
        status = write_report(c, start, v + i, k - i, written, &built[nbuilt]);
        if (!status)
            nbuilt++;
        i = k;
    }
    if (!status && c->deliver && nbuilt)
        status = deliver_all(c, s, start, built, nbuilt, c->dkim_key ? &key : NULL, deliveries);
    for (size_t i = 0; built && i < nbuilt; i++)
        sts_buf_free(&built[i].gz);
    free(built);
    /* Pruning: the sessions (and ledger rows) of days before now - keep_days. */
    if (!status || status == STS_EXIT_TEMPFAIL) {
        int keep = c->keep_days < 0 ? DEFAULT_KEEP_DAYS : c->keep_days;
        long long gone = 0, gone_ledger = 0;
        time_t before = now - now % DAY_SECONDS - (time_t)keep * DAY_SECONDS;
        if (keep && sts_rptstore_prune(s, before, &gone, &gone_ledger)) {
            fprintf(stderr, "ststest report: pruning: %s\n", sts_rptstore_last_error(s));
            status = status ? status : STS_EXIT_DATAERR;
        } else if (keep && c->verbose && (gone || gone_ledger)) {
            fprintf(stderr,
                    "ststest report: pruned %lld session(s) and %lld delivery record(s) "
                    "older than %d days\n",
                    gone, gone_ledger, keep);
        }
    }
    if (c->json && written) {
        json_t *doc = json_pack("{s:s,s:O}", "day", day, "reports", written);
        if (doc && deliveries)
            json_object_set(doc, "deliveries", deliveries);
        if (!doc || json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) ||
            putchar('\n') == EOF)
            status = status ? status : STS_EXIT_SOFTWARE;
        json_decref(doc);
    }
    json_decref(written);
    json_decref(deliveries);
    sts_rptstore_policies_free(v, n);
    sts_rptstore_close(s);
    sts_buf_free(&key);
    return status;
}

static int report_summary(const report_cli *c, char **files, size_t nfiles)
{
    sts_rptsum *sum = sts_rptsum_new();
    if (!sum)
        return STS_EXIT_SOFTWARE;
    int status = 0;
    for (size_t i = 0; i < nfiles; i++) {
        sts_buf in, text;
        sts_buf_init(&in, STS_RPTMSG_MAX);
        sts_buf_init(&text, 0);
        char err[PATH_MAX + 256];
        sts_rptmsg_form form;
        int rc =
            sts_cli_read_file(files[i], &in, "larger than the report size limit", err, sizeof(err));
        if (!rc)
            rc = sts_rptmsg_decode(in.data ? in.data : "", in.len, &text, &form, err, sizeof(err));
        json_t *root = NULL;
        sts_rpt_findings f;
        sts_rpt_findings_init(&f);
        if (!rc && (rc = sts_rpt_validate_text(text.data ? text.data : "", text.len, &f, &root)))
            snprintf(err, sizeof(err),
                     "not a valid RFC 8460 report (%s%s%s; `ststest lint "
                     "--report` says more)",
                     f.n ? f.items[0].path : "", f.n ? ": " : "", f.n ? f.items[0].message : "");
        if (!rc && (rc = sts_rptsum_add(sum, root)))
            snprintf(err, sizeof(err), "cannot be summarised");
        if (rc) {
            fprintf(stderr, "ststest report: %s: %s\n", files[i], err);
            status = rc == STS_ENOMEM ? STS_EXIT_SOFTWARE : STS_EXIT_DATAERR;
        }
        json_decref(root);
        sts_rpt_findings_free(&f);
        sts_buf_free(&in);
        sts_buf_free(&text);
    }
    json_t *doc = sts_rptsum_json(sum);
    sts_rptsum_free(sum);
    if (!doc)
        return STS_EXIT_SOFTWARE;
    if (c->json) {
        if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) || putchar('\n') == EOF)
            status = STS_EXIT_SOFTWARE;
    } else {
        sts_rptsum_print(doc, stdout);
    }
    json_decref(doc);
    return status;
}

int sts_cmd_report(int argc, char **argv)
{
    report_cli c;
    memset(&c, 0, sizeof(c));
    c.keep_days = -1;
    int status = report_args(&c, argc, argv);
    if (status >= 0)
        return status;
    status =
        c.summary ? report_summary(&c, argv + optind, (size_t)(argc - optind)) : report_build(&c);
    fflush(stdout);
    return status;
}
