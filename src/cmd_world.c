/*
 * cmd_world.c - `ststest world [options] SCENARIO`: serve one scenario's fake world
 * until SIGINT/SIGTERM. Prints the "ready" JSON line on stdout once every listener
 * is up, and the "observed" line when it stops (DESIGN.md, "world"); the transcript
 * goes to stderr. Returns a sysexits status: 0 stopped cleanly, 64 usage, 65 bad
 * scenario, 70 internal error, 77 --standard-ports without root.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "common/err.h"
#include "common/log.h"
#include "common/scenario.h"
#include "fakedns/world.h"
#include "src/cli.h"
#include "src/cmds.h"

static void world_usage(FILE *fp)
{
    fprintf(fp,
            "usage: ststest world [options] SCENARIO\n"
            "\n"
            "Serve the fake world of one scenario file (DNS, HTTPS policy server, MX\n"
            "servers, test CA) on loopback until SIGINT or SIGTERM. Prints one JSON line\n"
            "when ready (addresses, ports, CA file; with a tlsrpt: section the reporting\n"
            "domain, DKIM selector and key file) and one when stopped (what was observed,\n"
            "the TLS reports received among it).\n"
            "\n"
            "options:\n"
            "  --mode MODE       value of ${mode} in the scenario (default enforce)\n"
            "  --block 127.X.Y   the /24 to use (default: pick a free one)\n"
            "  --dns-port N      DNS port, UDP and TCP (default %d)\n"
            "  --smtp-port N     port of every MX (default %d)\n"
            "  --https-port N    HTTPS port of the policy server and the TLSRPT collector\n"
            "                    (default %d)\n"
            "  --http-port N     policy server plain-HTTP port (default %d)\n"
            "  --dir DIR         where ca.pem (and dkim.pem) is written (default: a\n"
            "                    temporary directory)\n"
            "  --standard-ports  DNS 53, SMTP 25, HTTPS 443, HTTP 80 on the hosts' loopback\n"
            "                    addresses (needs root)\n"
            "  --observe-max N   DNS queries kept in the observer log (default 100000; the\n"
            "                    rest are counted as \"dns_dropped\")\n"
            "  --domains N       a survey world: serve the scenario for N domains\n"
            "                    d1.DOMAIN ... dN.DOMAIN (1 to 1000; as many as the\n"
            "                    hosts' addresses fit in the block)\n"
            "  -v, --verbose     more transcript on stderr (twice: protocol trace)\n"
            "  -h, --help        this help\n"
            "\n"
            "A multi-step scenario starts at its first step; SIGUSR1 moves the world to the\n"
            "next one (its clock advanced by the step's `advance`) and prints a JSON line\n"
            "{\"event\": \"step\", ...}.\n"
            "\n"
            "exit status: 0 stopped by a signal, 64 usage, 65 bad scenario, 70 internal error,\n"
            "77 --standard-ports without root.\n",
            STS_WORLD_DNS_PORT, STS_WORLD_SMTP_PORT, STS_WORLD_HTTPS_PORT, STS_WORLD_HTTP_PORT);
}

/* "127.X.Y" with X, Y in 0..255. */
static int valid_block(const char *s)
{
    unsigned x, y;
    char tail;
    if (sscanf(s, "127.%u.%u%c", &x, &y, &tail) != 2 || x > 255 || y > 255)
        return 0;
    char canon[16];
    snprintf(canon, sizeof(canon), "127.%u.%u", x, y);
    return !strcmp(canon, s);
}

static int valid_mode(const char *s)
{
    if (!*s || strlen(s) > 64)
        return 0;
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
            return 0;
    return 1;
}

typedef struct world_run {
    uv_signal_t sigint, sigterm, sigusr1;
    sts_world *world;
    const sts_scenario *scn;
    sts_log *log;
    int stopping;
    size_t step;  /* the step being served */
    time_t now;   /* the world's virtual clock */
} world_run;

static void signal_close_cb(uv_handle_t *h)
{
}

static void world_run_stop(world_run *r, int signum)
{
    if (r->stopping)
        return;
    r->stopping = 1;
    sts_info(r->log, "signal %d: stopping", signum);
    uv_close((uv_handle_t *)&r->sigint, signal_close_cb);
    uv_close((uv_handle_t *)&r->sigterm, signal_close_cb);
    uv_close((uv_handle_t *)&r->sigusr1, signal_close_cb);
    sts_world_stop(r->world, NULL, NULL);
}

/* Print j as one compact JSON line on stdout (and drop the reference). 0, or -1 when
 * there was nothing to print (out of memory). */
static int print_json_line(json_t *j)
{
    char *line = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!line)
        return -1;
    printf("%s\n", line);
    fflush(stdout);
    free(line);
    return 0;
}

/* {"event": "step", ...}: the step being served now (with the error when moving on to
 * the next one failed). */
static void print_step(const world_run *r, const char *error)
{
    const sts_scn_step *st = &r->scn->steps[r->step];
    json_t *j = json_pack("{s:s,s:i,s:s,s:I}", "event", "step", "step", (int)r->step + 1,
                          "name", st->name, "now", (json_int_t)r->now);
    if (j && error)
        json_object_set_new(j, "error", json_string(error));
    print_json_line(j);
}

/* SIGUSR1: on to the next step of a multi-step scenario. */
static void step_cb(uv_signal_t *h, int signum)
{
    world_run *r = h->data;
    if (r->stopping)
        return;
    if (r->step + 1 >= r->scn->nsteps) {
        sts_info(r->log, "signal %d: no step after step %zu", signum, r->step + 1);
        return;
    }
    char err[1024] = "";
    time_t now = r->now + (time_t)r->scn->steps[r->step + 1].advance;
    if (sts_world_apply_step(r->world, r->scn, r->step + 1, now, err, sizeof(err)) != 0) {
        sts_info(r->log, "%s", err);
        print_step(r, err);
        return;
    }
    r->step++;
    r->now = now;
    print_step(r, NULL);
}

static void signal_cb(uv_signal_t *h, int signum)
{
    world_run_stop(h->data, signum);
}

/* The options of `world`: O_* values of its long options. */
enum { O_MODE = 256, O_BLOCK, O_DNS, O_SMTP, O_HTTPS, O_HTTP, O_DIR, O_STD, O_OBSMAX, O_DOMAINS };

/* The --*-port options, each one field of sts_world_opts: one row gives both its
 * getopt_long entry and the field it sets. */
#define WORLD_PORT_OPTIONS(X)                                                                      \
    X(O_DNS, "dns-port", dns_port)                                                                 \
    X(O_SMTP, "smtp-port", smtp_port)                                                              \
    X(O_HTTPS, "https-port", https_port)                                                           \
    X(O_HTTP, "http-port", http_port)

#define WORLD_PORT_LONGOPT(val, name, field) {name, required_argument, NULL, val},
/* One row a line: clang-format would join the rows the macro makes to the next one. */
/* clang-format off */
static const struct option world_longopts[] = {
    {"mode", required_argument, NULL, O_MODE},
    {"block", required_argument, NULL, O_BLOCK},
    WORLD_PORT_OPTIONS(WORLD_PORT_LONGOPT)
    {"dir", required_argument, NULL, O_DIR},
    {"standard-ports", no_argument, NULL, O_STD},
    {"observe-max", required_argument, NULL, O_OBSMAX},
    {"domains", required_argument, NULL, O_DOMAINS},
    STS_CLI_OPTS_VERBOSE_HELP,
};
/* clang-format on */
#undef WORLD_PORT_LONGOPT

/* The command line of `world`, parsed. */
typedef struct world_args {
    sts_world_opts opts;
    const char *path; /* the SCENARIO file */
    int verbosity;
    int standard; /* --standard-ports */
} world_args;

/* sts_cmd_world goes on: world_parse_args() found nothing to stop at. */
#define WORLD_GO_ON (-1)

/* --observe-max N: 0, or -1 after saying what is wrong. */
static int parse_observe_max(const char *arg, size_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long n = strtoull(arg, &end, 10);
    if (!*arg || *end || errno || n < 1 || n > 100000000ULL || arg[0] == '-') {
        fprintf(stderr, "ststest world: --observe-max '%s': a number from 1 to 100000000\n", arg);
        return -1;
    }
    *out = (size_t)n;
    return 0;
}

/* --domains N: 0, or -1 after saying what is wrong. */
static int parse_domains(const char *arg, unsigned *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long n = strtoul(arg, &end, 10);
    if (!*arg || *end || errno || n < 1 || n > 1000 || arg[0] == '-') {
        fprintf(stderr, "ststest world: --domains '%s': a number from 1 to 1000\n", arg);
        return -1;
    }
    *out = (unsigned)n;
    return 0;
}

/* One option c (of getopt_long) with its optarg into a; *port gets the port field
 * c sets (else NULL). WORLD_GO_ON, or the exit status (after saying why). */
static int world_option(int c, char **argv, world_args *a, int **port)
{
    *port = NULL;
    switch (c) {
    case O_MODE:
        if (!valid_mode(optarg)) {
            fprintf(stderr, "ststest world: --mode '%s': not a mode name\n", optarg);
            return STS_EXIT_USAGE;
        }
        a->opts.mode = optarg;
        return WORLD_GO_ON;
    case O_BLOCK:
        if (!valid_block(optarg)) {
            fprintf(stderr, "ststest world: --block '%s': expected 127.X.Y\n", optarg);
            return STS_EXIT_USAGE;
        }
        a->opts.block = optarg;
        return WORLD_GO_ON;
#define WORLD_PORT_CASE(val, name, field)                                                          \
    case val:                                                                                      \
        *port = &a->opts.field;                                                                    \
        return WORLD_GO_ON;
        WORLD_PORT_OPTIONS(WORLD_PORT_CASE)
#undef WORLD_PORT_CASE
    case O_DIR:
        a->opts.dir = optarg;
        return WORLD_GO_ON;
    case O_STD:
        a->standard = 1;
        return WORLD_GO_ON;
    case O_OBSMAX:
        return parse_observe_max(optarg, &a->opts.observe_max) ? STS_EXIT_USAGE : WORLD_GO_ON;
    case O_DOMAINS:
        return parse_domains(optarg, &a->opts.domains) ? STS_EXIT_USAGE : WORLD_GO_ON;
    case 'v':
        a->verbosity++;
        return WORLD_GO_ON;
    case 'h':
        world_usage(stdout);
        return STS_EXIT_OK;
    default: /* '?', ':' */
        fprintf(stderr, "ststest world: bad option '%s'\n", argv[optind - 1]);
        world_usage(stderr);
        return STS_EXIT_USAGE;
    }
}

/* Options, the SCENARIO argument and --standard-ports. WORLD_GO_ON with a filled in,
 * or the exit status (after saying why). */
static int world_parse_args(int argc, char **argv, world_args *a)
{
    memset(a, 0, sizeof(*a));
    a->verbosity = STS_LOG_INFO;
    int explicit_port = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+vh", world_longopts, NULL)) != -1) {
        int *port, status = world_option(c, argv, a, &port);
        if (status != WORLD_GO_ON)
            return status;
        explicit_port |= port != NULL;
        if (port && sts_cli_port(optarg, port)) {
            fprintf(stderr, "ststest world: %s '%s': expected a port 1-65535\n", argv[optind - 2],
                    optarg);
            return STS_EXIT_USAGE;
        }
    }
    if (argc - optind != 1) {
        fprintf(stderr, "ststest world: expected exactly one SCENARIO file\n");
        world_usage(stderr);
        return STS_EXIT_USAGE;
    }
    a->path = argv[optind];
    if (a->standard) {
        if (explicit_port) {
            fprintf(stderr, "ststest world: --standard-ports cannot be combined with --*-port\n");
            return STS_EXIT_USAGE;
        }
        /* Ports below 1024 need root; say so before anything else happens. */
        if (geteuid() != 0) {
            fprintf(stderr, "ststest world: --standard-ports binds ports 53, 25, 443 and 80 and "
                            "must run as root\n");
            return STS_EXIT_NOPERM;
        }
        sts_world_standard_ports(&a->opts);
    }
    return WORLD_GO_ON;
}

/* Start the world of scn on loop, at its first step when it has steps. WORLD_GO_ON
 * when it serves, else the exit status, after saying why and closing the loop. */
static int world_start(uv_loop_t *loop, const sts_scenario *scn, world_args *a, world_run *r)
{
    char err[1024] = "";
    r->now = time(NULL);
    a->opts.now = r->now;
    int rc = sts_world_start(loop, scn, &a->opts, &r->world, err, sizeof(err));
    /* A multi-step scenario: the first step's changes apply before anyone looks. */
    if (!rc && scn->nsteps) {
        r->now += (time_t)scn->steps[0].advance;
        rc = sts_world_apply_step(r->world, scn, 0, r->now, err, sizeof(err));
        if (rc) {
            sts_world_stop(r->world, NULL, NULL);
            uv_run(loop, UV_RUN_DEFAULT);
            sts_world_free(r->world);
        }
    }
    if (!rc)
        return WORLD_GO_ON;
    fprintf(stderr, "ststest world: %s%s\n", err,
            a->standard && strstr(err, "in use") ? " (a standard port is taken: is another "
                                                   "server running?)"
                                                 : "");
    uv_run(loop, UV_RUN_DEFAULT); /* let anything half-started close */
    uv_loop_close(loop);
    /* A bad zone line or an impossible host set is a bad input file. */
    return rc == STS_ESYNTAX || rc == STS_EINVAL || rc == STS_ETOOBIG ? STS_EXIT_DATAERR
                                                                      : STS_EXIT_SOFTWARE;
}

/* Serve until a signal stops the world: the "ready" line (and the first step's), then
 * the "observed" line. Frees the world and closes the loop; returns the exit status. */
static int world_serve(uv_loop_t *loop, world_run *r)
{
    uv_signal_init(loop, &r->sigint);
    uv_signal_init(loop, &r->sigterm);
    uv_signal_init(loop, &r->sigusr1);
    r->sigint.data = r->sigterm.data = r->sigusr1.data = r;
    uv_signal_start(&r->sigint, signal_cb, SIGINT);
    uv_signal_start(&r->sigterm, signal_cb, SIGTERM);
    uv_signal_start(&r->sigusr1, step_cb, SIGUSR1);

    int rc = print_json_line(sts_world_ready(r->world));
    if (rc) {
        fprintf(stderr, "ststest world: out of memory\n");
        world_run_stop(r, 0);
    } else if (r->scn->nsteps) {
        print_step(r, NULL);
    }
    uv_run(loop, UV_RUN_DEFAULT);

    int status = rc ? STS_EXIT_SOFTWARE : STS_EXIT_OK;
    json_t *obs = sts_world_observed(r->world);
    if (!rc)
        print_json_line(obs);
    else
        json_decref(obs);
    sts_world_free(r->world);
    if (uv_loop_close(loop) != 0) {
        fprintf(stderr, "ststest world: internal error: handles left open at exit\n");
        status = STS_EXIT_SOFTWARE;
    }
    return status;
}

/* A sender at --concurrency N holds up to N connections to the world at once: the
 * soft limit on open files goes up towards the hard one, to 65536 at most (1024 is
 * a common soft limit). */
static void world_raise_nofile(void)
{
    struct rlimit rl;
    const rlim_t want = 65536;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
}

int sts_cmd_world(int argc, char **argv)
{
    world_args a;
    int status = world_parse_args(argc, argv, &a);
    if (status != WORLD_GO_ON)
        return status;
    char err[1024] = "";
    sts_scenario *scn = sts_scenario_load(a.path, err, sizeof(err));
    if (!scn) {
        fprintf(stderr, "ststest world: %s\n", err);
        return STS_EXIT_DATAERR;
    }
    world_raise_nofile();
    sts_log *log = sts_log_new_file(stderr, a.verbosity, "world: ");
    a.opts.log = log;
    uv_loop_t loop;
    uv_loop_init(&loop);
    world_run r;
    memset(&r, 0, sizeof(r));
    r.log = log;
    r.scn = scn;
    status = world_start(&loop, scn, &a, &r);
    if (status == WORLD_GO_ON)
        status = world_serve(&loop, &r);
    sts_log_free(log);
    sts_scenario_free(scn);
    return status;
}
