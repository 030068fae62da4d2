/*
 * scenario.h - the scenario model: one YAML file describing a fake world and what a
 * correct sender does in it. Both the world (fakedns/) and the runner (runner/) read
 * it; the sender never does.
 *
 * The loader validates against the schema documented in README.md ("Scenario
 * format"): an unknown key, a wrong type or a missing required key is reported as
 * "file:line:column: what is wrong" and nothing is returned.
 *
 * Strings may contain ${mode}; sts_scenario_subst() replaces it per mode.
 */
#ifndef STS_SCENARIO_H
#define STS_SCENARIO_H

#include <stddef.h>

typedef struct sts_strv {
    char **v;
    size_t n;
} sts_strv;

/* A certificate to mint for a policy server or an MX. */
typedef struct sts_scn_cert {
    sts_strv names;      /* DNS SANs; empty with !names_set = the host's own name */
    int names_set;       /* `names` was given (possibly as []) */
    char *cn;            /* subject CN (NULL = first name) */
    int no_san;          /* CN only, no subjectAltName */
    int expired;         /* notAfter in the past */
    int not_yet_valid;   /* notBefore in the future */
    int self_signed;     /* signed by its own key */
    int unknown_ca;      /* signed by a CA the sender is not given */
    int rsa;             /* RSA 2048 instead of ECDSA P-256 */
} sts_scn_cert;

typedef struct sts_scn_policy {
    int present;         /* a `policy:` section exists: the policy host serves it */
    char *mode;          /* may be "${mode}" */
    sts_strv mx;
    long max_age;        /* -1 = not given */
    char *body;          /* verbatim body (overrides mode/mx/max_age) */
    int status;          /* HTTP status, default 200 */
    char *content_type;  /* default "text/plain" */
    sts_scn_cert cert;
    int line;
} sts_scn_policy;

typedef struct sts_scn_mx {
    char *host;          /* absolute name, no trailing dot */
    int starttls;        /* advertise and accept STARTTLS (default 1) */
    sts_scn_cert cert;
    int line;
} sts_scn_mx;

/* What the sender run should look like. Fields not given are not checked. */
typedef struct sts_scn_expect {
    char *mode;          /* the mode key it applies to ("enforce", …) */
    char *outcome;       /* delivered | deferred | failed */
    int exit_status;     /* -1 = not checked */
    sts_strv failures;   /* RFC 8460 result types, as a set */
    int failures_set;
    char *tls;           /* verified | unverified | none: how the message travelled */
    int received;        /* messages the world received; -1 = not checked */
    char *policy_source; /* fetched | cache | none */
    int policy_fetched;  /* -1 = not checked, else 0/1 (the world saw an HTTPS fetch) */
    sts_strv delivered_to; /* MX hosts that received the message */
    int delivered_to_set;
    int line;
} sts_scn_expect;

typedef struct sts_scn_sender {
    int require_tls;
    char *mode;          /* --mode override, NULL = auto */
    char *rcpt;          /* default postmaster@<domain> */
} sts_scn_sender;

typedef struct sts_scenario {
    char *file;
    char *name;
    char *about;
    sts_strv refs;
    char *domain;        /* no trailing dot */
    char *dns;           /* zone-file lines, names relative to domain */
    int dns_line;        /* line of the first zone line in the file */
    sts_scn_policy policy;
    sts_scn_mx *mx;
    size_t nmx;
    sts_strv modes;      /* default [enforce] */
    sts_scn_sender sender;
    sts_scn_expect *expect;
    size_t nexpect;
} sts_scenario;

/* Load and validate path. Returns NULL with "path:line:col: message" in err. */
sts_scenario *sts_scenario_load(const char *path, char *err, size_t errlen);
/* Same, from memory; name is used in messages. */
sts_scenario *sts_scenario_parse(const char *text, size_t len, const char *name, char *err,
                                 size_t errlen);
void sts_scenario_free(sts_scenario *s);

/* The expectation for mode, or NULL. */
const sts_scn_expect *sts_scenario_expect(const sts_scenario *s, const char *mode);
/* A new string: s with every ${mode} replaced by mode (NULL s -> NULL). */
char *sts_scenario_subst(const char *s, const char *mode);

#endif
