/* cmd_run.c - `ststest run [options] [PATH...]`: option parsing for runner/runner.h. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "runner/features.h"
#include "runner/runner.h"
#include "src/cli.h"
#include "src/cmds.h"

/* --exclude patterns one run takes at most. */
#define RUN_MAX_EXCLUDE 64

static void run_usage(FILE *fp)
{
    fprintf(fp,
            "usage: ststest run [options] [PATH...]\n"
            "\n"
            "Replay scenario files (PATH: a file, or a folder searched for *.yaml/*.yml;\n"
            "none: the installed scenario library, PREFIX/share/ststest/scenarios).\n"
            "For each scenario and each mode in its `modes`, start its fake world, run the\n"
            "sender against it and compare the result and the world's observer log with\n"
            "`expect`. Every run is also checked against the security invariant.\n"
            "\n"
            "options:\n"
            "  -j, --jobs N         cases run at once (default: number of CPUs, and\n"
            "                       besides them up to 32 cases whose world keeps the\n"
            "                       sender waiting: delays, timeouts, a dripped body)\n"
            "      --filter GLOB    only scenarios whose name matches GLOB (fnmatch)\n"
            "      --exclude GLOB   leave out scenarios whose name matches GLOB (fnmatch;\n"
            "                       repeatable, up to 64: any match leaves it out)\n"
            "      --list           print name, modes, refs and about of each scenario\n"
            "      --junit FILE     write JUnit XML (GitLab, Jenkins, GitHub reporters)\n"
            "      --json FILE      write a JSON report\n"
            "      --timeout SECS   the sender's per-stage timeout, also of its policy\n"
            "                       fetch (default %d)\n"
            "      --sender-cmd CMD run CMD (via /bin/sh) as the sender instead of ours;\n"
            "                       {rcpt} {domain} {dns} {dns_host} {dns_port} {ca}\n"
            "                       {smtp_port} {https_port} {mode} {now} {cache}\n"
            "                       {report_store} are replaced, quoted;\n"
            "                       the scenario's `sender:` as {require_tls} (1 or 0),\n"
            "                       {sender_mode}, {dns_timeout} (seconds, default 10)\n"
            "                       and {ststest_flags} (ststest options)\n"
            "                       CMD exiting %d declares the case unsupported (its last\n"
            "                       stderr line says why): not a pass, not a failure\n"
            "      --report-cmd CMD run CMD (via /bin/sh) in `report: deliver` steps\n"
            "                       instead of `ststest report --deliver`; the\n"
            "                       placeholders of --sender-cmd and {report_store}\n"
            "                       {submitter} {dkim_key} {dkim_selector} {report_dir}\n"
            "                       {day} {timeout}; its exit status is the step's `exit`\n"
            "      --sender-features LIST  the features the sender has (comma list; default\n"
            "                       all); a case needing another is unsupported, not run:\n",
            STS_RUN_STAGE_TIMEOUT, STS_RUN_EXIT_UNSUPPORTED);
    sts_features_help(fp);
    fprintf(fp,
            "      --time-limit SECS  how long the sender may run per step (default %d;\n"
            "                       ours is then deferred, CMD killed: the case is an ERROR)\n"
            "      --standard-ports serve each world on DNS 53, SMTP 25, HTTPS 443, HTTP 80\n"
            "                       of its own loopback block (root only; for senders that\n"
            "                       cannot be told a port; best inside a network namespace)\n"
            "  -v, --verbose        print every case's transcript, not only failures'\n"
            "  -h, --help           this text\n"
            "\n"
            "exit status: 0 all passed (or unsupported), 1 some failed, 64 usage, 65 bad\n"
            "scenario file, 70 internal error, 77 --standard-ports without root.\n",
            STS_RUN_TIME_LIMIT);
}

/* The installed scenario library: PREFIX/share/ststest/scenarios, where PREFIX is the
 * folder above the one that holds this binary (so that a package installed under
 * /usr, a `cmake --install` under /usr/local and a staged tree all find their own),
 * else the data folder this binary was configured with. 0 and the folder in buf, or
 * -1 and both places tried in buf. */
static int installed_library(char *buf, size_t len)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    struct stat st;
    char *slash;

    if (n > 0) {
        exe[n] = '\0';
        for (int up = 0; up < 2 && (slash = strrchr(exe, '/')) != NULL; up++)
            *slash = '\0';
        snprintf(buf, len, "%s/share/ststest/scenarios", exe);
        if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
            return 0;
    }
    snprintf(buf, len, "%s/scenarios", STSTEST_DATADIR);
    if (stat(buf, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    snprintf(buf, len, "%s/share/ststest/scenarios nor %s/scenarios", n > 0 ? exe : "?",
             STSTEST_DATADIR);
    return -1;
}

static int parse_num(const char *opt, const char *s, double lo, double hi, double *out)
{
    if (sts_cli_number(s, lo, hi, out)) {
        fprintf(stderr, "ststest run: %s: '%s' is not a number from %g to %g\n", opt, s, lo, hi);
        return -1;
    }
    return 0;
}

int sts_cmd_run(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"jobs", required_argument, NULL, 'j'},
        {"filter", required_argument, NULL, 'f'},
        {"list", no_argument, NULL, 'l'},
        {"junit", required_argument, NULL, 'J'},
        {"json", required_argument, NULL, 'o'},
        {"timeout", required_argument, NULL, 't'},
        {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {"sender-cmd", required_argument, NULL, 'S'},
        {"report-cmd", required_argument, NULL, 'R'},
        {"time-limit", required_argument, NULL, 'T'},
        {"standard-ports", no_argument, NULL, 'P'},
        {"exclude", required_argument, NULL, 'x'},
        {"sender-features", required_argument, NULL, 'F'},
        {NULL, 0, NULL, 0},
    };
    const char *exclude[RUN_MAX_EXCLUDE];
    sts_run_opts o = {.out = stdout, .exclude = exclude};
    double d;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "j:vh", longopts, NULL)) != -1) {
        switch (c) {
        case 'j':
            if (parse_num("--jobs", optarg, 1, 256, &d))
                return STS_EXIT_USAGE;
            o.jobs = (int)d;
            break;
        case 'f':
            o.filter = optarg;
            break;
        case 'x':
            if (o.nexclude == RUN_MAX_EXCLUDE) {
                fprintf(stderr, "ststest run: --exclude: at most %d patterns\n", RUN_MAX_EXCLUDE);
                return STS_EXIT_USAGE;
            }
            exclude[o.nexclude++] = optarg;
            break;
        case 'l':
            o.list = 1;
            break;
        case 'J':
            o.junit_file = optarg;
            break;
        case 'o':
            o.json_file = optarg;
            break;
        case 't':
            if (parse_num("--timeout", optarg, 0.1, 3600, &o.stage_timeout))
                return STS_EXIT_USAGE;
            break;
        case 'v':
            o.verbose = 1;
            break;
        case 'S':
            if (!*optarg) {
                fprintf(stderr, "ststest run: --sender-cmd: empty command\n");
                return STS_EXIT_USAGE;
            }
            o.sender_cmd = optarg;
            break;
        case 'R':
            if (!*optarg) {
                fprintf(stderr, "ststest run: --report-cmd: empty command\n");
                return STS_EXIT_USAGE;
            }
            o.report_cmd = optarg;
            break;
        case 'T':
            if (parse_num("--time-limit", optarg, 1, 86400, &o.time_limit))
                return STS_EXIT_USAGE;
            break;
        case 'P':
            o.standard_ports = 1;
            break;
        case 'F': {
            char err[512];
            if (sts_features_parse(optarg, &o.sender_features, err, sizeof(err))) {
                fprintf(stderr, "ststest run: --sender-features: %s\n", err);
                return STS_EXIT_USAGE;
            }
            o.features_set = 1;
            break;
        }
        case 'h':
            run_usage(stdout);
            return STS_EXIT_OK;
        default:
            run_usage(stderr);
            return STS_EXIT_USAGE;
        }
    }
    char library[PATH_MAX + 64];
    char *deflt[] = {library};
    if (optind >= argc) {
        if (installed_library(library, sizeof(library))) {
            fprintf(stderr,
                    "ststest run: no PATH given, and no installed scenario library (neither "
                    "%s): name a scenario file or folder\n",
                    library);
            return STS_EXIT_USAGE;
        }
        argv = deflt;
        argc = 1;
        optind = 0;
    }
    /* Ports below 1024 need root; say so before any world starts. */
    if (o.standard_ports && geteuid() != 0) {
        fprintf(stderr, "ststest run: --standard-ports binds ports 53, 25, 443 and 80 and must "
                        "run as root\n");
        return STS_EXIT_NOPERM;
    }
    return sts_runner_run(argv + optind, (size_t)(argc - optind), &o);
}
