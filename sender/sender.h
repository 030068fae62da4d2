/*
 * sender.h - the mandatory-TLS sender: for each recipient, discover the domain's
 * MTA-STS policy (RFC 8461), choose MX hosts, insist on STARTTLS and a valid
 * certificate where the policy or --require-tls demands it, then deliver, defer or
 * refuse, explaining each step in the transcript.
 *
 * The result of a run is data: a JSON document {"results": [...]} whose shape is
 * DESIGN.md's contract, and a sysexits status.
 */
#ifndef STS_SENDER_H
#define STS_SENDER_H

#include <jansson.h>
#include <time.h>
#include <uv.h>

#include "common/log.h"
#include "common/vocab.h"

typedef struct sts_sender_opts {
    const char *dns;        /* "HOST[:PORT][,...]"; NULL = /etc/resolv.conf */
    const char *ca_file;    /* trust anchors for SMTP and HTTPS; NULL = system store */
    int smtp_port;          /* 0 = 25 */
    int https_port;         /* 0 = 443 */
    int require_tls;        /* ASSURETLS: STARTTLS + valid certificate on every MX */
    sts_mode mode;          /* --mode: STS_MODE_AUTO (0, the policy's) | ENFORCE | TESTING |
                             * NONE (common/vocab.h) */
    const char *cache_file; /* NULL = default (sts_cache_default_path: $XDG_CACHE_HOME or
                             * ~/.cache; unusable -> a warning, no cache); an unusable
                             * explicit file -> exit 65 */
    int no_cache;           /* no policy cache at all */
    const char *report_store_file; /* TLS report store (rptstore.h); NULL = default, next
                                    * to the default policy cache (unusable -> a warning,
                                    * no store); an unusable explicit file -> exit 65 */
    int no_report_store;           /* record no sessions for TLS reports */
    int no_tls_resume;             /* send: a full TLS handshake every time (check never
                                    * resumes: it reports each MX's certificate afresh) */
    const char *from;       /* envelope sender; NULL = "ststest@<the EHLO name>" */
    const char *data_file;  /* message file, "-" = stdin, NULL = a generated test message */
    const char *helo;       /* NULL = sts_sender_default_helo() */
    double timeout;         /* seconds per SMTP stage and for a whole policy fetch;
                             * 0 = RFC 5321 4.5.3.2 defaults and 60 s for a fetch */
    double dns_timeout;     /* seconds per DNS query, retries included (resolver.h);
                             * 0 = STS_SENDER_DNS_TIMEOUT */
    int check_only;         /* `check`: stop after TLS + second EHLO, then QUIT; always
                             * discover afresh (cache_file is only read, for drift; no
                             * default cache), probe every MX (also those the policy
                             * refuses), look _smtp._tls up, and judge (check.h) */
    int warn_days;          /* check: a certificate expiring within this many days is a
                             * warning; 0 = STS_SENDER_WARN_DAYS, -1 = 0 days */
    time_t now;             /* judge certificates and the cache at this time; 0 = now */
    int concurrency;        /* recipients handled at once, up to STS_SENDER_CONCURRENCY_MAX;
                             * 0 = 8 */
    double deadline;        /* seconds for the whole run, 0 = none: when it passes every
                             * pending lookup, fetch and session is aborted and the
                             * recipients not done are deferred (detail "time limit") */
    sts_log *log;           /* the transcript (may be NULL) */
    /* Results streamed (NULL: none): each result goes to on_result in the order of
     * rcpts as soon as it and every one before it are done (result: borrowed, valid
     * during the call; its values may be shared, see result.h), and is freed after
     * it; *out then gets {"results": []}. A finished recipient then costs nothing
     * unless one before it is still running. */
    void (*on_result)(void *arg, json_t *result);
    void *on_result_arg;
} sts_sender_opts;

/* The states of one recipient's job (sender.c), in the order a delivery goes through
 * them; each transition is a transcript line at trace level (-vv):
 *     job u1@example.test: MX -> MX_ADDR
 * A job exists only while it runs: it is created when the concurrency window opens
 * (NEW -> DISCOVER) and freed, outside its own callbacks, soon after DONE. */
typedef enum {
    STS_JOB_NEW = 0,  /* created, not started */
    STS_JOB_DISCOVER, /* MTA-STS policy discovery (discover.h, RFC 8461 3) */
    STS_JOB_TLSRPT,   /* check: the _smtp._tls TXT record (RFC 8460 3) */
    STS_JOB_MX,       /* the MX lookup (RFC 5321 5.1, RFC 7505) */
    STS_JOB_MX_ADDR,  /* the address lookup of the MX being tried */
    STS_JOB_SMTP,     /* an SMTP session to one of its addresses (smtpc.h) */
    STS_JOB_RECHECK,  /* RFC 8461 5.1: the TXT record again after every MX was refused */
    STS_JOB_DONE,     /* the outcome is known, summarised and in the JSON result */
} sts_job_state;

/* "NEW", "DISCOVER", "TLSRPT", "MX", "MX_ADDR", "SMTP", "RECHECK", "DONE"; "UNKNOWN" otherwise. */
const char *sts_job_state_name(sts_job_state st);

/* Seconds a DNS query may take, retries included, unless dns_timeout says otherwise. */
#define STS_SENDER_DNS_TIMEOUT 10.0
/* The range `--dns-timeout` and a scenario's `sender: {dns_timeout}` accept. */
#define STS_SENDER_DNS_TIMEOUT_MIN 0.1
#define STS_SENDER_DNS_TIMEOUT_MAX 3600.0

/* The most recipients (or domains) `--concurrency` lets run at once. */
#define STS_SENDER_CONCURRENCY_MAX 10000

/* The EHLO name when --helo is not given, into out[len]: the host's FQDN when it has a
 * dot (gethostname(), else getaddrinfo()'s AI_CANONNAME), else "" meaning an address
 * literal of each connection's local end ("[127.0.0.1]", RFC 5321 4.1.3). The envelope
 * sender's domain is the same name. */
void sts_sender_default_helo(char *out, size_t len);

/* check --warn-days default. */
#define STS_SENDER_WARN_DAYS 14

/* Largest --data message accepted (bytes). */
#define STS_SENDER_DATA_MAX (10 * 1024 * 1024)

/* Deliver to (or check) each of rcpts (for check: domains), running loop until all
 * are done, at most opts->concurrency at once: a recipient costs no more than its
 * argument until its job starts, and its JSON result once the job is done.
 * *out gets {"results": [...]} in the order of rcpts; values equal across results may
 * be one shared JSON value (result.h): read *out, do not change it. Every handle the
 * run opened on loop is closed when it returns. Returns the exit status: 0 all
 * delivered, 75 some deferred, 69 some failed, 70 internal error; before anything runs
 * (and *out stays NULL): 64 for a bad --dns server list, 65 for an unreadable or
 * oversized --data file, an unusable --ca-file or an unusable --cache file.
 *
 * Policy cache (cache.h), per domain: TXT lookup -> sts_cache_get -> sts_cache_decide
 * -> fetch when it says so -> sts_cache_put / sts_cache_note_failure (an invalid policy
 * is a failed fetch of that id) -> sts_cache_resolve: JSON policy.source "fetched",
 * "cache" or "none", and "cache": {"enabled", "decision", "fetched_at", "expires_at"}.
 * RFC 8461 5.1: when every MX was refused under a cached enforce policy, the TXT record
 * is looked up once more; a new id is fetched and, when the policy differs, the MX list
 * is tried again under it (JSON "recheck"). */
int sts_sender_run(uv_loop_t *loop, const sts_sender_opts *opts, char *const *rcpts, size_t nrcpts,
                   json_t **out);

#endif
