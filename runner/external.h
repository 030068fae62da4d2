/*
 * external.h - another implementation as the runner's sender (`ststest run
 * --sender-cmd`, README "Testing another implementation"): its command line made
 * from the user's template, the command run under /bin/sh with a time limit, and
 * what it printed read back into the case's transcript.
 */
#ifndef STS_EXTERNAL_H
#define STS_EXTERNAL_H

#include <jansson.h>

#include "common/log.h"
#include "sender/sender.h"

/* What the placeholders of the template stand for in one step of a case. */
typedef struct sts_external_step {
    const sts_sender_opts *so; /* what the runner would tell its own sender */
    const char *rcpt;          /* {rcpt} */
    const char *domain;        /* {domain} */
    const char *mode;          /* {mode}: the case's mode */
    int mode_set;              /* the scenario's `sender:` sets a mode: --mode in
                                * {ststest_flags} */
} sts_external_step;

/* The command line: tmpl with each placeholder {rcpt} {domain} {dns} {dns_host}
 * {dns_port} {ca} {smtp_port} {https_port} {mode} {require_tls} {sender_mode} {now}
 * {cache} {dns_timeout} replaced by its value quoted as one /bin/sh word, and
 * {ststest_flags} by ststest options inserted as words (a fixed vocabulary: no quoting
 * needed). Any other text, unknown placeholders included, is kept as it is. malloc'd;
 * NULL on ENOMEM. */
char *sts_external_command(const char *tmpl, const sts_external_step *step);

/* Run cmd under /bin/sh in its own process group, stdin from /dev/null, stdout and
 * stderr into out_path and err_path; kill the group after limit seconds (and once it
 * exits: whatever it left behind goes with it). Returns the exit status (128+signal
 * when killed), or -1 when it could not be started; *timed_out says whether the
 * limit struck. */
int sts_external_run(const char *cmd, const char *out_path, const char *err_path, double limit,
                     int *timed_out);

/* What the command printed, into log: its stderr, then its stdout, one transcript
 * line each ("external (stderr): ...", "external: ..."). Returns stdout as a JSON
 * document when it is one in our format ({"results": [...]}, as `ststest send --json`
 * prints), else NULL. */
json_t *sts_external_output(const char *out_path, const char *err_path, sts_log *log);

#endif
