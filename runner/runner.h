/*
 * runner.h - replay scenario files: for each scenario and each of its modes, start
 * the scenario's fake world (on a thread with its own loop), run the sender against
 * it over the network, judge the run (runner/verdict.h) and report.
 *
 * A case is unsupported, neither passed nor failed, when it needs a sender feature
 * that --sender-features leaves out, or when the sender command exits with
 * STS_RUN_EXIT_UNSUPPORTED (its last stderr line says why).
 *
 * sts_runner_run() returns the exit status of `ststest run`: 0 every case passed or
 * was unsupported, 1 some case failed, 65 a scenario file is bad (nothing is run then), 70
 * internal.
 */
#ifndef STS_RUNNER_H
#define STS_RUNNER_H

#include <stddef.h>
#include <stdio.h>

/* The defaults of `ststest run` in seconds (a 0 in sts_run_opts): the sender's
 * per-stage timeout, and how long the sender may run per step. */
#define STS_RUN_STAGE_TIMEOUT 10
#define STS_RUN_TIME_LIMIT 120

/* The exit status by which a sender command declares a case unsupported (sysexits'
 * EX_PROTOCOL: "the remote system returned something that was not possible"). Its
 * last line on stderr is the reason. */
#define STS_RUN_EXIT_UNSUPPORTED 76

typedef struct sts_run_opts {
    int jobs;           /* cases run at once; 0 = number of CPUs */
    const char *filter; /* fnmatch(3) pattern on scenario names; NULL = all */
    /* fnmatch(3) patterns: a scenario whose name matches any of them is left out. */
    const char *const *exclude;
    size_t nexclude;
    int list;               /* print name, about and refs of each scenario; run nothing */
    const char *junit_file; /* write JUnit XML here (NULL = no) */
    const char *json_file;  /* write a JSON report here (NULL = no) */
    double stage_timeout;   /* the sender's per-stage timeout in seconds; 0 = default */
    int verbose;            /* print every case's transcript, not only failures' */
    /* Run this shell command as the sender instead of ours (see README, "Testing
     * another implementation"); placeholders {rcpt} {domain} {dns} {dns_host}
     * {dns_port} {ca} {smtp_port} {https_port} {mode} {require_tls} {sender_mode} {now}
     * {cache} {dns_timeout} {report_store} are replaced, shell-quoted; {ststest_flags} by ststest
     * options. */
    const char *sender_cmd;
    /* Run this shell command in `report: deliver` steps instead of `ststest report
     * --deliver` (README "Testing another implementation"): the placeholders of
     * sender_cmd plus {report_store} {submitter} {dkim_key} {dkim_selector}
     * {report_dir} {day} {timeout}. */
    const char *report_cmd;
    double time_limit; /* seconds the sender may run per step; 0 = default */
    /* Serve each case's world on the standard ports (DNS 53, SMTP 25, HTTPS 443,
     * HTTP 80) of its own 127.x.y.0/24 block, for senders that cannot be told a port
     * (needs root; a network namespace keeps it off the host's services). */
    int standard_ports;
    /* The features the sender has (runner/features.h bits): a case that needs another
     * is reported unsupported without running. Only when features_set; else all. */
    unsigned sender_features;
    int features_set;
    FILE *out; /* progress and summary (stdout) */
} sts_run_opts;

int sts_runner_run(char *const *paths, size_t npaths, const sts_run_opts *opts);

#endif
