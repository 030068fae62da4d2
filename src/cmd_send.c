/*
 * cmd_send.c - `ststest send [options] RCPT...` and `ststest check [options] DOMAIN...`:
 * option parsing (getopt_long) into sts_sender_opts, then sts_sender_run (sender.h).
 * The transcript goes to stderr; --json prints exactly one JSON document on stdout.
 * send returns a sysexits status: 0 all delivered, 75 some deferred (every MX refused
 * included), 69 some failed permanently; check its verdict: 0 every domain passes, 1 the
 * worst is warn, 2 one fails (check --assure-tls: 0 assured, 1 not); both 64 usage, 65
 * bad input file, 70 internal error.
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <uv.h>

#include "common/err.h"
#include "common/log.h"
#include "sender/assure.h"
#include "sender/rptstore.h"
#include "sender/sender.h"
#include "src/cli.h"
#include "src/cmds.h"

enum {
    OPT_DNS = 256,
    OPT_CA_FILE,
    OPT_SMTP_PORT,
    OPT_HTTPS_PORT,
    OPT_REQUIRE_TLS,
    OPT_MODE,
    OPT_CACHE,
    OPT_NO_CACHE,
    OPT_JSON,
    OPT_FROM,
    OPT_DATA,
    OPT_HELO,
    OPT_TIMEOUT,
    OPT_DNS_TIMEOUT,
    OPT_NOW,
    OPT_CONCURRENCY,
    OPT_TIME_LIMIT,
    OPT_ASSURE_TLS,
    OPT_WARN_DAYS,
    OPT_REPORT_STORE,
    OPT_NO_REPORT_STORE,
    OPT_NO_TLS_RESUME,
};

static const struct option long_opts[] = {
    {"dns", required_argument, NULL, OPT_DNS},
    {"ca-file", required_argument, NULL, OPT_CA_FILE},
    {"smtp-port", required_argument, NULL, OPT_SMTP_PORT},
    {"https-port", required_argument, NULL, OPT_HTTPS_PORT},
    {"require-tls", no_argument, NULL, OPT_REQUIRE_TLS},
    {"mode", required_argument, NULL, OPT_MODE},
    {"cache", required_argument, NULL, OPT_CACHE},
    {"no-cache", no_argument, NULL, OPT_NO_CACHE},
    {"json", no_argument, NULL, OPT_JSON},
    {"from", required_argument, NULL, OPT_FROM},
    {"data", required_argument, NULL, OPT_DATA},
    {"helo", required_argument, NULL, OPT_HELO},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"dns-timeout", required_argument, NULL, OPT_DNS_TIMEOUT},
    {"now", required_argument, NULL, OPT_NOW},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"time-limit", required_argument, NULL, OPT_TIME_LIMIT},
    {"assure-tls", no_argument, NULL, OPT_ASSURE_TLS},
    {"warn-days", required_argument, NULL, OPT_WARN_DAYS},
    {"report-store", required_argument, NULL, OPT_REPORT_STORE},
    {"no-report-store", no_argument, NULL, OPT_NO_REPORT_STORE},
    {"no-tls-resume", no_argument, NULL, OPT_NO_TLS_RESUME},
    STS_CLI_OPTS_VERBOSE_HELP,
};

static void usage(FILE *fp, int check)
{
    if (check)
        fprintf(fp, "usage: ststest check [options] DOMAIN...\n\n"
                    "A postmaster's deployment check. For each domain: MTA-STS discovery\n"
                    "(TXT, HTTPS policy; always fetched afresh, never from a cache), the\n"
                    "_smtp._tls TLSRPT record, MX lookup, and per MX (also one the policy\n"
                    "refuses) a connection, EHLO, STARTTLS, certificate checks and EHLO\n"
                    "again; then QUIT. No mail is sent. Each domain ends with a verdict,\n"
                    "pass, warn or fail, and its findings, each with a one-line fix.\n\n"
                    "With --assure-tls (CheckTLS's TestReceiverAssureTLS) instead: per MX\n"
                    "EHLO, then MAIL FROM and RCPT TO:<postmaster@DOMAIN> in the clear\n"
                    "(the STARTTLS offer ignored; never DATA), then QUIT. An MX passes when\n"
                    "it refuses MAIL or RCPT for want of TLS (530, or 5.7.x / 4.7.x); any\n"
                    "other refusal leaves it not tested. Assuredness 100 when every MX\n"
                    "tested refused.\n\n");
    else
        fprintf(fp, "usage: ststest send [options] RCPT...\n\n"
                    "Deliver a test message to each recipient the way a careful MTA-STS\n"
                    "sender (RFC 8461) does, explaining every step on stderr.\n\n");
    fprintf(fp, "options:\n"
                "  --dns HOST[:PORT][,...]  nameservers to ask instead of /etc/resolv.conf\n"
                "  --ca-file FILE           trust anchors for SMTP and HTTPS (default: system)\n"
                "  --smtp-port N            port of every MX (default 25)\n"
                "  --https-port N           port of the policy host (default 443)\n"
                "  --require-tls            demand STARTTLS and a valid certificate on every MX\n"
                "  --mode MODE              auto (apply the policy; default), or override its\n"
                "                           mode: enforce, testing, none\n"
                "  --json                   print one JSON document on stdout\n");
    if (check)
        fprintf(fp,
                "  --cache FILE             a policy cache (as send keeps it) to compare with:\n"
                "                           only read, to report drift (default: none; check\n"
                "                           never touches the default cache)\n"
                "  --no-cache               compare with no cache (the default)\n"
                "  --warn-days N            warn about a certificate that expires within N\n"
                "                           days (default %d)\n"
                "  --report-store FILE      record every MX session for TLS reports (RFC 8460;\n"
                "                           SQLite; default %s next to the\n"
                "                           policy cache; read by `ststest report`)\n"
                "  --no-report-store        record no sessions for TLS reports\n",
                STS_SENDER_WARN_DAYS, STS_RPTSTORE_DEFAULT_NAME);
    else
        fprintf(fp,
                "  --cache FILE             policy cache file (SQLite; created when missing;\n"
                "                           default $XDG_CACHE_HOME/ststest/policy-cache.sqlite\n"
                "                           or ~/.cache/ststest/policy-cache.sqlite)\n"
                "  --no-cache               use no policy cache: always fetch\n"
                "  --report-store FILE      record every MX session for TLS reports (RFC 8460;\n"
                "                           SQLite; default %s next to the\n"
                "                           policy cache; read by `ststest report`)\n"
                "  --no-report-store        record no sessions for TLS reports\n"
                "  --no-tls-resume          a full TLS handshake with every MX connection\n"
                "                           (default: resume a session verified earlier in\n"
                "                           this run with the same MX host and address)\n",
                STS_RPTSTORE_DEFAULT_NAME);
    if (check)
        fprintf(fp, "  --assure-tls             offer mail in the clear to every MX and expect\n"
                    "                           a refusal (no policy; not with --require-tls)\n");
    if (!check)
        fprintf(fp,
                "  --from ADDRESS           envelope sender (default ststest@<EHLO name>)\n"
                "  --data FILE|-            the message to send (default: a generated test\n"
                "                           message; at most %d bytes)\n",
                STS_SENDER_DATA_MAX);
    fprintf(fp,
            "  --helo NAME              name for EHLO/HELO (default: the host's FQDN when\n"
            "                           it has a dot, else an address literal of the\n"
            "                           connection's local end, e.g. [127.0.0.1])\n"
            "  --timeout SECONDS        every SMTP stage timeout (default: RFC 5321 4.5.3.2),\n"
            "                           and the whole policy fetch's (default 60)\n"
            "  --dns-timeout SECONDS    how long one DNS query may take, retries included\n"
            "                           (default %g, from %g to %g)\n"
            "  --now TIME               judge certificates and the policy cache at TIME\n"
            "                           (2030-01-01T00:00:00Z or a unix time)\n"
            "  --concurrency N          %s at once (default 8)\n"
            "  --time-limit SECONDS     give up after SECONDS for the whole run: pending\n"
            "                           work is aborted, the rest deferred (send: exit 75)\n"
            "  -v, --verbose            more detail (repeat for more)\n"
            "  -h, --help               this help\n\n",
            STS_SENDER_DNS_TIMEOUT, STS_SENDER_DNS_TIMEOUT_MIN, STS_SENDER_DNS_TIMEOUT_MAX,
            check ? "domains" : "recipients");
    if (check)
        fprintf(fp, "exit status: 0 every domain passes, 1 the worst verdict is warn, 2 some\n"
                    "domain fails; 64 usage error, 65 bad input file, 70 internal error.\n"
                    "With --assure-tls: 0 when every MX tested of every domain refused mail\n"
                    "in the clear, 1 when not (an MX accepted, or none could be tested).\n");
    else
        fprintf(fp, "exit status: 0 all delivered, 75 some deferred (also: every MX refused\n"
                    "under the policy or --require-tls), 69 some failed permanently, 64 usage\n"
                    "error, 65 bad input file, 70 internal error.\n");
}

static int usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ststest %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see `ststest %s --help`)\n", cmd);
    return STS_EXIT_USAGE;
}

/* What `send` and `check` were asked to do. */
typedef struct sender_cli {
    const char *cmd; /* "send" or "check" */
    int check, json, verbose;
    int assure_tls; /* check --assure-tls */
    sts_sender_opts o;
} sender_cli;

/* One option c (getopt_long's optarg) into cli: -1 to go on, else the exit status. */
static int sender_option(sender_cli *cli, int c, char **argv)
{
    const char *cmd = cli->cmd;
    const int check = cli->check;
    sts_sender_opts *op = &cli->o;
    switch (c) {
    case OPT_DNS:
        if (!*optarg)
            return usage_error(cmd, "--dns needs HOST[:PORT][,...]");
        op->dns = optarg;
        break;
    case OPT_CA_FILE:
        op->ca_file = optarg;
        break;
    case OPT_SMTP_PORT:
        if (sts_cli_port(optarg, &op->smtp_port))
            return usage_error(cmd, "--smtp-port '%s' is not a port number (1-65535)", optarg);
        break;
    case OPT_HTTPS_PORT:
        if (sts_cli_port(optarg, &op->https_port))
            return usage_error(cmd, "--https-port '%s' is not a port number (1-65535)", optarg);
        break;
    case OPT_REQUIRE_TLS:
        op->require_tls = 1;
        break;
    case OPT_MODE:
        if (sts_mode_parse_option(optarg, &op->mode))
            return usage_error(cmd, "--mode '%s': use auto, enforce, testing or none", optarg);
        break;
    case OPT_CACHE:
        if (!*optarg)
            return usage_error(cmd, "--cache needs a FILE");
        op->cache_file = optarg;
        break;
    case OPT_NO_CACHE:
        op->no_cache = 1;
        break;
    case OPT_REPORT_STORE:
        if (!*optarg)
            return usage_error(cmd, "--report-store needs a FILE");
        op->report_store_file = optarg;
        break;
    case OPT_NO_REPORT_STORE:
        op->no_report_store = 1;
        break;
    case OPT_CONCURRENCY: {
        char *end;
        errno = 0;
        long v = strtol(optarg, &end, 10);
        if (errno || end == optarg || *end || v < 1 || v > STS_SENDER_CONCURRENCY_MAX)
            return usage_error(cmd, "--concurrency '%s' is not a number from 1 to %d", optarg,
                               STS_SENDER_CONCURRENCY_MAX);
        op->concurrency = (int)v;
        break;
    }
    case OPT_TIME_LIMIT: {
        char *end;
        errno = 0;
        double t = strtod(optarg, &end);
        if (errno || end == optarg || *end || !(t > 0) || t > 604800)
            return usage_error(cmd, "--time-limit '%s' is not a number of seconds (0-604800]",
                               optarg);
        op->deadline = t;
        break;
    }
    case OPT_JSON:
        cli->json = 1;
        break;
    case OPT_ASSURE_TLS:
        if (!check)
            return usage_error(cmd, "--assure-tls belongs to check (it sends no mail)");
        cli->assure_tls = 1;
        break;
    case OPT_WARN_DAYS: {
        double days;
        if (!check)
            return usage_error(cmd, "--warn-days belongs to check");
        if (sts_cli_number(optarg, 0, 3650, &days) || days != (int)days)
            return usage_error(cmd, "--warn-days '%s' is not a whole number of days (0-3650)",
                               optarg);
        op->warn_days = days > 0 ? (int)days : -1; /* sender.h: -1 is 0 days */
        break;
    }
    case OPT_NO_TLS_RESUME:
        if (check)
            return usage_error(cmd, "--no-tls-resume belongs to send (check never resumes)");
        op->no_tls_resume = 1;
        break;
    case OPT_FROM:
        if (check)
            return usage_error(cmd, "--from is not used by check (no mail is sent)");
        if (strpbrk(optarg, "<> \r\n\t"))
            return usage_error(cmd, "--from '%s' is not a valid address", optarg);
        op->from = optarg;
        break;
    case OPT_DATA:
        if (check)
            return usage_error(cmd, "--data is not used by check (no mail is sent)");
        op->data_file = optarg;
        break;
    case OPT_HELO:
        if (!*optarg || strpbrk(optarg, " \r\n\t"))
            return usage_error(cmd, "--helo '%s' is not a host name", optarg);
        op->helo = optarg;
        break;
    case OPT_TIMEOUT: {
        char *end;
        errno = 0;
        double t = strtod(optarg, &end);
        if (errno || end == optarg || *end || !(t > 0) || t > 86400)
            return usage_error(cmd, "--timeout '%s' is not a number of seconds (0-86400]", optarg);
        op->timeout = t;
        break;
    }
    case OPT_DNS_TIMEOUT:
        if (sts_cli_number(optarg, STS_SENDER_DNS_TIMEOUT_MIN, STS_SENDER_DNS_TIMEOUT_MAX,
                           &op->dns_timeout))
            return usage_error(cmd,
                               "--dns-timeout '%s' is not a number of seconds from %g "
                               "to %g",
                               optarg, STS_SENDER_DNS_TIMEOUT_MIN, STS_SENDER_DNS_TIMEOUT_MAX);
        break;
    case OPT_NOW:
        if (sts_cli_time(optarg, &op->now))
            return usage_error(cmd, "--now '%s': use 2030-01-01T00:00:00Z or a unix time", optarg);
        break;
    case 'v':
        cli->verbose++;
        break;
    case 'h':
        usage(stdout, check);
        return STS_EXIT_OK;
    case ':':
        return usage_error(cmd, "option %s needs a value", argv[optind - 1]);
    default:
        return usage_error(cmd, "unknown option '%s'", argv[optind - 1]);
    }
    return -1;
}

/* check: 1 when arg names a domain (the part after a last "@" when there is one): one
 * or more characters, letters, digits, "-", "_" and ".", at most one trailing dot. */
static int is_domain_arg(const char *arg)
{
    const char *d = strrchr(arg, '@');
    d = d ? d + 1 : arg;
    size_t n = strlen(d);
    if (n && d[n - 1] == '.')
        n--;
    if (!n || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)d[i]) || d[i] == '-' || d[i] == '_' || d[i] == '.'))
            return 0;
    return 1;
}

/* The command line into cli: -1 to go on (the targets from argv[optind]), else the
 * exit status. */
static int sender_args(sender_cli *cli, int argc, char **argv)
{
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":vh", long_opts, NULL)) != -1) {
        int status = sender_option(cli, c, argv);
        if (status >= 0)
            return status;
    }
    if (optind >= argc)
        return usage_error(cli->cmd, "no %s given", cli->check ? "DOMAIN" : "RCPT");
    for (int i = optind; cli->check && i < argc; i++)
        if (!is_domain_arg(argv[i]))
            return usage_error(cli->cmd, "'%s' is not a domain name", argv[i]);
    if (cli->o.no_cache && cli->o.cache_file)
        return usage_error(cli->cmd, "--cache and --no-cache exclude each other");
    if (cli->o.no_report_store && cli->o.report_store_file)
        return usage_error(cli->cmd, "--report-store and --no-report-store exclude each other");
    if (cli->assure_tls && cli->o.require_tls)
        return usage_error(cli->cmd, "--assure-tls sends in the clear on purpose: not with "
                                     "--require-tls");
    if (cli->assure_tls && cli->o.mode != STS_MODE_AUTO)
        return usage_error(cli->cmd, "--assure-tls applies no policy: not with --mode");
    return -1;
}

/* One target's line of the text output. */
static void sender_print_line(json_t *r)
{
    json_t *assure = json_object_get(r, "assure_tls");
    if (assure) {
        printf("%s: assuredness %d\n", json_string_value(json_object_get(r, "argument")),
               (int)json_integer_value(json_object_get(assure, "assuredness")));
        return;
    }
    json_t *verdict = json_object_get(r, "verdict");
    if (verdict) {
        json_t *fs = json_object_get(r, "findings");
        printf("%s: %s (%zu finding%s)\n", json_string_value(json_object_get(r, "argument")),
               json_string_value(verdict), json_array_size(fs),
               json_array_size(fs) == 1 ? "" : "s");
        return;
    }
    const char *detail = json_string_value(json_object_get(r, "detail"));
    printf("%s: %s%s%s\n", json_string_value(json_object_get(r, "argument")),
           json_string_value(json_object_get(r, "outcome")), detail ? " - " : "",
           detail ? detail : "");
}

/* The results on stdout: the JSON document, or one line per target. 0, or -1 when
 * stdout could not take it. */
static int sender_print(json_t *out, int json)
{
    if (json) {
        /* Streamed, not built as one string first: 10,000 results are tens of
         * megabytes of text. */
        if (json_dumpf(out, stdout,
                       JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)) != 0 ||
            fputc('\n', stdout) == EOF || fflush(stdout) != 0)
            return -1;
        return 0;
    }
    json_t *results = json_object_get(out, "results");
    for (size_t i = 0; i < json_array_size(results); i++)
        sender_print_line(json_array_get(results, i));
    return 0;
}

/* The results printed as the sender hands them over (sts_sender_opts.on_result), in
 * the same octets as sender_print of the whole document: {"results": [...]} with
 * each element dumped alone and indented two levels deeper. */
typedef struct result_stream {
    int json;
    size_t n;   /* results printed */
    int failed; /* stdout refused something */
} result_stream;

/* json_dump_callback: one result's text, every line after the first indented 4 more
 * spaces. */
static int stream_indented(const char *buf, size_t size, void *data)
{
    (void)data;
    for (const char *p = buf, *e = buf + size; p < e;) {
        const char *nl = memchr(p, '\n', (size_t)(e - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(e - p);
        if (fwrite(p, 1, n, stdout) != n || (nl && fputs("    ", stdout) == EOF))
            return -1;
        p += n;
    }
    return 0;
}

static void stream_result(void *arg, json_t *r)
{
    result_stream *s = arg;
    if (!s->json) {
        sender_print_line(r);
        s->n++;
        return;
    }
    if (fputs(s->n ? ",\n    " : "{\n  \"results\": [\n    ", stdout) == EOF ||
        json_dump_callback(r, stream_indented, NULL,
                           JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12)) != 0)
        s->failed = 1;
    s->n++;
}

/* The end of the streamed document. 0, or -1 when stdout did not take it all. */
static int stream_end(result_stream *s)
{
    if (s->json && fputs(s->n ? "\n  ]\n}\n" : "{\n  \"results\": []\n}\n", stdout) == EOF)
        s->failed = 1;
    return s->failed || fflush(stdout) != 0 ? -1 : 0;
}

/* Room for a socket per delivery in flight, a policy fetch beside each and the DNS
 * questions: the soft limit on open files is raised towards the hard one (1024 is
 * a common soft limit, too few for --concurrency 1000 or more). */
static void sender_raise_nofile(int concurrency)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)(concurrency > 0 ? concurrency : 8) * 2 + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

static int cmd_sender(int argc, char **argv, int check)
{
    sender_cli cli;
    memset(&cli, 0, sizeof(cli));
    cli.cmd = check ? "check" : "send";
    cli.check = check;
    int status = sender_args(&cli, argc, argv);
    if (status >= 0)
        return status;

    sender_raise_nofile(cli.o.concurrency);
    sts_log *log = sts_log_new_file(stderr, STS_LOG_INFO + cli.verbose, NULL);
    cli.o.log = log;
    cli.o.check_only = check;
    uv_loop_t loop;
    if (uv_loop_init(&loop) != 0) {
        fprintf(stderr, "ststest %s: cannot create the event loop\n", cli.cmd);
        sts_log_free(log);
        return STS_EXIT_SOFTWARE;
    }
    json_t *out = NULL;
    result_stream stream = {.json = cli.json};
    if (cli.assure_tls) {
        status = sts_assure_run(&loop, &cli.o, argv + optind, (size_t)(argc - optind), &out);
    } else {
        /* Each result is printed once it and the ones before it are done, then freed. */
        cli.o.on_result = stream_result;
        cli.o.on_result_arg = &stream;
        status = sts_sender_run(&loop, &cli.o, argv + optind, (size_t)(argc - optind), &out);
        if (out && stream_end(&stream) != 0)
            status = STS_EXIT_SOFTWARE;
        json_decref(out);
        out = NULL;
    }
    uv_run(&loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&loop) != 0) {
        fprintf(stderr, "ststest %s: BUG: handles left open on the loop\n", cli.cmd);
        if (status == STS_EXIT_OK)
            status = STS_EXIT_SOFTWARE;
    }
    if (out && sender_print(out, cli.json) != 0)
        status = STS_EXIT_SOFTWARE;
    json_decref(out);
    fflush(stdout);
    sts_log_free(log);
    return status;
}

int sts_cmd_send(int argc, char **argv)
{
    return cmd_sender(argc, argv, 0);
}

int sts_cmd_check(int argc, char **argv)
{
    return cmd_sender(argc, argv, 1);
}
