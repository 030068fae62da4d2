/*
 * scenario.h - the scenario model: one YAML file describing a fake world and what a
 * correct sender does in it. Both the world (fakedns/) and the runner (runner/) read
 * it; the sender never does.
 *
 * The loader validates against the schema documented in docs/scenario-format.md: an unknown key, a
 * wrong type or a missing required key is reported as "file:line:column: what is wrong" and nothing
 * is returned.
 *
 * Strings may contain ${mode}; sts_scenario_subst() replaces it per mode.
 */
#ifndef STS_SCENARIO_H
#define STS_SCENARIO_H

#include <stddef.h>

#include "common/vocab.h"

typedef struct sts_strv {
    char **v;
    size_t n;
} sts_strv;

/* A certificate to mint for a policy server or an MX. */
typedef struct sts_scn_cert {
    sts_strv names;    /* DNS SANs; empty with !names_set = the host's own name */
    int names_set;     /* `names` was given (possibly as []) */
    char *cn;          /* subject CN (NULL = first name) */
    int no_san;        /* CN only, no subjectAltName */
    int expired;       /* notAfter in the past */
    int not_yet_valid; /* notBefore in the future */
    int self_signed;   /* signed by its own key */
    int unknown_ca;    /* signed by a CA the sender is not given */
    int rsa;           /* RSA 2048 instead of ECDSA P-256 */
    int chain;         /* STS_SCN_CHAIN_*: how the leaf chains to the world's CA */
} sts_scn_cert;

/* cert.chain: signed by the root directly, or by an intermediate that the server
 * sends along, or by an intermediate that the server leaves out. */
enum { STS_SCN_CHAIN_DIRECT = 0, STS_SCN_CHAIN_INTERMEDIATE = 1, STS_SCN_CHAIN_MISSING = 2 };

/* tls_versions: {min, max}; STS_TLS_VERSION_DEFAULT = the library's default. */
typedef struct sts_scn_tls_versions {
    sts_tls_version min, max;
} sts_scn_tls_versions;

/* The SMTP stages an MX script can act on (replies, delay, disconnect_after). */
typedef enum {
    STS_SCN_STAGE_GREETING = 0,
    STS_SCN_STAGE_EHLO, /* EHLO and HELO */
    STS_SCN_STAGE_STARTTLS,
    STS_SCN_STAGE_MAIL,
    STS_SCN_STAGE_RCPT,
    STS_SCN_STAGE_DATA,
    STS_SCN_STAGE_DOT, /* the end of the message data */
    STS_SCN_STAGE_RSET,
    STS_SCN_STAGE_QUIT,
    STS_SCN_NSTAGES
} sts_scn_stage;

/* "greeting", "ehlo", … ; NULL for an out-of-range stage. */
const char *sts_scn_stage_name(int stage);

typedef struct sts_scn_policy {
    int present; /* a `policy:` section exists: the policy host serves it */
    char *mode;  /* may be "${mode}" */
    sts_strv mx;
    long max_age;       /* -1 = not given */
    char *body;         /* verbatim body (overrides mode/mx/max_age) */
    int status;         /* HTTP status, default 200 */
    char *content_type; /* default "text/plain" */
    sts_scn_cert cert;
    int line;
    /* faults of the policy server */
    char *redirect;   /* Location header value (status defaults to 301 with it) */
    int status_set;   /* `status` was given */
    sts_strv headers; /* extra header fields: v[2i] name, v[2i+1] value */
    long size;        /* pad the body to this many octets; -1 = as it is */
    int chunked;      /* Transfer-Encoding: chunked */
    double delay;     /* seconds before the response head */
    double drip;      /* seconds between octets of the body */
    long cut_after;   /* close after this many body octets; -1 = never */
    sts_scn_tls_versions tls;
    int https_off;       /* `https: false`: only plain HTTP serves the policy; the
                            HTTPS listener closes every connection at once */
    int handshake_abort; /* `handshake: abort`: the HTTPS listener accepts, then
                            closes when the ClientHello arrives (no TLS answer) */
    int absent;          /* `absent: true` (in steps: no policy from then on) */
    int keep_alive;      /* persistent HTTP connections (default 1; `keep_alive: false`:
                            "Connection: close" on every answer) */
} sts_scn_policy;

typedef struct sts_scn_mx {
    char *host;      /* absolute name, no trailing dot */
    int starttls;    /* advertise and accept STARTTLS (default 1) */
    int require_tls; /* `require_tls: true`: 530 to anything but EHLO/HELO/STARTTLS/
                        QUIT/NOOP/RSET before TLS (Postfix's security level encrypt) */
    sts_scn_cert cert;
    int line;
    /* the SMTP script */
    /* Scripted replies per stage (CRLF-terminated lines; NULL = the normal reply);
     * `greeting:` and `starttls_reply:` set replies[GREETING] and [STARTTLS]. */
    char *replies[STS_SCN_NSTAGES];
    double delay[STS_SCN_NSTAGES]; /* seconds before acting on each stage */
    int disconnect_after;          /* stage at which to close without a reply; -1 */
    char *inject_after_starttls;   /* bytes sent in the same write as the 220 */
    int handshake_abort;           /* close when the ClientHello arrives */
    sts_scn_tls_versions tls;
    sts_strv ehlo_keywords; /* EHLO keywords instead of the defaults */
    int ehlo_keywords_set;
} sts_scn_mx;

/* One fault of the DNS server (dns_faults:). */
typedef enum {
    STS_SCN_DNS_SERVFAIL = 0,
    STS_SCN_DNS_REFUSED,
    STS_SCN_DNS_NXDOMAIN,
    STS_SCN_DNS_TIMEOUT,      /* no answer at all, UDP and TCP */
    STS_SCN_DNS_TRUNCATE,     /* TC over UDP, the full answer over TCP */
    STS_SCN_DNS_DELAY,        /* the normal answer, `delay` seconds late */
    STS_SCN_DNS_WRONG_ID,     /* a spoofed answer with another ID first, then the right one */
    STS_SCN_DNS_WRONG_SOURCE, /* spoofed answers with the right ID from another address and
                                 from another port first, then the right one (UDP) */
} sts_scn_dns_fault_kind;

typedef struct sts_scn_dns_fault {
    char *name;   /* relative to the domain like zone lines ("@", "_mta-sts", "x.") */
    char *type;   /* "TXT", "ANY" (every type), … (upper case) */
    int fault;    /* sts_scn_dns_fault_kind */
    double delay; /* seconds (delay; also before any other fault's answer) */
    int line;
} sts_scn_dns_fault;

/* "servfail", …; NULL when out of range. */
const char *sts_scn_dns_fault_name(int fault);

/* The world's TLSRPT side (RFC 8460): the `_smtp._tls` record it publishes and the
 * endpoints it runs for its rua URIs (docs/scenario-format.md, "tlsrpt"). */
/* How long a `slow` collector waits before answering: longer than the runner's
 * stage timeout of the report command (STS_RUN_STAGE_TIMEOUT, 10 s by default). */
#define STS_SCN_COLLECTOR_SLOW_SECONDS 30.0

/* The default reporting domain and DKIM selector of the report command's messages. */
#define STS_SCN_TLSRPT_SUBMITTER "ststest.test"
#define STS_SCN_TLSRPT_SELECTOR "ststest"

typedef struct sts_scn_tlsrpt {
    int present;     /* a `tlsrpt:` section exists */
    sts_strv record; /* `record`: TXT records published verbatim (one RR each);
                        empty = built from the endpoints */
    int record_set;
    int https_set;           /* an HTTPS collector runs */
    char *https_host;        /* its host name (absolute, lower case, no trailing dot) */
    char *https_path;        /* the path it takes POSTs on (default "/tlsrpt") */
    int https_fault;         /* sts_scn_collector_fault */
    sts_scn_cert https_cert; /* its certificate (default: valid for https_host) */
    int mailto_line;
    char *mailto;    /* the mailbox address (NULL = none); its domain is the
                        scenario's or under it */
    char *submitter; /* the reporting domain the world mints a DKIM key for (NULL =
                        not given: STS_SCN_TLSRPT_SUBMITTER) */
    char *selector;  /* its DKIM selector (NULL = STS_SCN_TLSRPT_SELECTOR) */
    int line;
} sts_scn_tlsrpt;

/* One policy of the reports received (expect.tlsrpt.policies[]). */
typedef struct sts_scn_expect_policy {
    char *policy_type;     /* sts, no-policy-found, tlsa (NULL = not checked) */
    char *policy_domain;   /* NULL = not checked */
    long successful;       /* total-successful-session-count; -1 = not checked */
    long failed;           /* total-failure-session-count; -1 = not checked */
    sts_strv result_types; /* the failure-details' result types, as a set */
    int result_types_set;
} sts_scn_expect_policy;

/* What the reports the world received in a `report: deliver` step look like. */
typedef struct sts_scn_expect_tlsrpt {
    int set;
    int reports;  /* reports received; -1 = not checked */
    int valid;    /* every report valid (0/1); -1 = not checked */
    sts_strv via; /* how they came, as a set (https, mailto) */
    int via_set;
    int dkim; /* every mailto report's DKIM verdict (sts_dkim_result); -1 = not checked */
    sts_scn_expect_policy *policies; /* every report's policies, in order */
    size_t npolicies;
    int policies_set;
} sts_scn_expect_tlsrpt;

/* What the sender run should look like. Fields not given are not checked. */
typedef struct sts_scn_expect {
    char *mode; /* the mode key it applies to ("enforce", …) */
    int outcome_set;
    sts_outcome outcome; /* delivered | deferred | failed */
    int exit_status;     /* -1 = not checked */
    sts_strv failures;   /* RFC 8460 result types (each one sts_result_type_parse()
                          * accepts), compared as a set with the result's JSON */
    int failures_set;
    int tls_set;
    sts_delivery_tls tls; /* verified | unverified | none: how the message travelled */
    int received;         /* messages the world received; -1 = not checked */
    int policy_source_set;
    sts_policy_source policy_source; /* fetched | cache | none */
    int policy_fetched;              /* -1 = not checked, else 0/1 (the world saw an HTTPS fetch) */
    int policy_abandoned;            /* -1 = not checked, else 0/1 (the sender opened HTTPS to the
                                        policy host and left without a request: tried, gave up) */
    sts_strv delivered_to;           /* MX hosts that received the message */
    int delivered_to_set;
    int assuredness_set;
    int assuredness;              /* sender assure_tls: 0 or 100 */
    char *why;                    /* the rule it enforces ("RFC 8461 5.1: ..."), printed with a
                                     difference; NULL when not given */
    sts_scn_expect_tlsrpt tlsrpt; /* report steps only: the reports received */
    int tlsrpt_line;
    int line;
} sts_scn_expect;

typedef struct sts_scn_sender {
    int require_tls;
    sts_mode mode;      /* --mode override; STS_MODE_AUTO when not given */
    int mode_set;       /* given in the file (auto too): passed on as --mode */
    char *rcpt;         /* default postmaster@<domain> */
    double dns_timeout; /* seconds per DNS query (--dns-timeout); 0 = the sender's default */
    int assure_tls;     /* run `check --assure-tls` at the domain instead of a delivery */
} sts_scn_sender;

/* One step of a multi-step scenario: changes to the world (each replaces what it
 * names; absent = unchanged), then one sender run per mode, checked by expect. */
typedef struct sts_scn_step {
    char *name;
    long advance; /* seconds the virtual clock moves forward before the step */
    char *dns;    /* NULL = unchanged; else replaces the whole zone */
    int dns_line;
    sts_scn_policy policy; /* when policy_set; policy.absent = no policy any more */
    int policy_set;
    sts_scn_mx *mx; /* replaces the entries of these hosts */
    size_t nmx;
    sts_scn_dns_fault *dns_faults; /* replaces the list when dns_faults_set */
    size_t ndns_faults;
    int dns_faults_set;
    sts_scn_tlsrpt tlsrpt; /* when tlsrpt_set: replaces the whole tlsrpt section */
    int tlsrpt_set;
    int report; /* `report: deliver`: run the report delivery instead of a sender */
    sts_scn_expect *expect;
    size_t nexpect;
    int line;
} sts_scn_step;

typedef struct sts_scenario {
    char *file;
    char *name;
    char *about;
    sts_strv refs;
    char *domain; /* no trailing dot */
    char *dns;    /* zone-file lines, names relative to domain */
    int dns_line; /* line of the first zone line in the file */
    sts_scn_policy policy;
    sts_scn_mx *mx;
    size_t nmx;
    sts_strv modes; /* default [enforce] */
    sts_scn_sender sender;
    sts_scn_expect *expect;
    size_t nexpect;
    sts_scn_dns_fault *dns_faults;
    size_t ndns_faults;
    sts_scn_step *steps; /* nsteps > 0: a multi-step scenario; expect is then empty */
    size_t nsteps;
    sts_scn_tlsrpt tlsrpt; /* the world's TLSRPT side before the first step */
    /* The reporting domain and DKIM selector of the whole scenario (the world mints
     * one key): what any tlsrpt section gives (they must agree), else the defaults. */
    const char *tlsrpt_submitter;
    const char *tlsrpt_selector;
    int tlsrpt_any; /* some tlsrpt section (top level or a step) exists */
} sts_scenario;

/* Load and validate path. Returns NULL with "path:line:col: message" in err. */
sts_scenario *sts_scenario_load(const char *path, char *err, size_t errlen);
/* Same, from memory; name is used in messages. */
sts_scenario *sts_scenario_parse(const char *text, size_t len, const char *name, char *err,
                                 size_t errlen);
void sts_scenario_free(sts_scenario *s);

/* The expectation for mode, or NULL. */
const sts_scn_expect *sts_scenario_expect(const sts_scenario *s, const char *mode);
/* The expectation of step i for mode, or NULL. */
const sts_scn_expect *sts_scenario_step_expect(const sts_scenario *s, size_t i, const char *mode);
/* 1 when the world is scripted to keep a sender waiting (an MX stage delay, a policy
 * delay or drip, a DNS answer delayed or never given), in the scenario or any step:
 * such a case takes its time in timers, not on a CPU (the runner schedules it so). */
int sts_scenario_waits(const sts_scenario *s);
/* A new string: s with every ${mode} replaced by mode (NULL s -> NULL). */
char *sts_scenario_subst(const char *s, const char *mode);

#endif
