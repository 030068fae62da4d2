/*
 * vocab.h - the words ststest and its users share, one table each: RFC 8460 result
 * types and policy types, policy modes, policy sources, recipient outcomes, MX actions,
 * how a message travelled (a scenario's `tls`), TLS protocol versions.
 *
 * Like common/err.h, each vocabulary is one X-macro table X(symbol, value, name); its
 * enum, its name function and its parse function all come from that table, and every
 * other file uses them: text that comes in (a scenario file, a policy file, an option,
 * another sender's JSON) goes through sts_<word>_parse(), text that goes out through
 * sts_<word>_name(). No other C file spells a word of these tables as a string literal
 * or compares text with one (tests/integration/test_vocabulary.py checks that).
 *
 * The names are contracts (DESIGN.md: JSON results, scenario expectations, TLS
 * reports): a name changes only with the contract. Every value is explicit so that the
 * zero value of each enum is chosen, not an accident of order; a table lists its words
 * in the order people read them ("must be one of ..." messages follow it).
 *
 * Name functions return the word, or NULL for a value that is not in the table (and for
 * STS_RESULT_NONE, which means "no failure"). Parse functions take the exact word, case
 * included (RFC 8461 and RFC 8460 spell them so), and return 0 with *out set, or
 * STS_EINVAL (*out untouched) for NULL and any other text.
 */
#ifndef STS_VOCAB_H
#define STS_VOCAB_H

#include <stddef.h>

#define STS_VOCAB_ENUM(sym, val, name) sym = val,

/* ---- RFC 8460 4.3 result types ---------------------------------------------------
 * Every reason the sender gives is one of these (DESIGN.md, "Failure vocabulary"):
 * 4.3.1 negotiation failures, 4.3.2.1 DANE policy failures (a scenario may already
 * expect them), 4.3.2.2 MTA-STS policy failures. Finer detail goes in a separate field,
 * never a new word here. STS_RESULT_NONE (0) is "no failure" and has no name. */
#define STS_RESULT_TYPES(X)                                                                        \
    X(STS_RESULT_STARTTLS_NOT_SUPPORTED, 1, "starttls-not-supported")                              \
    X(STS_RESULT_CERTIFICATE_HOST_MISMATCH, 2, "certificate-host-mismatch")                        \
    X(STS_RESULT_CERTIFICATE_EXPIRED, 3, "certificate-expired")                                    \
    X(STS_RESULT_CERTIFICATE_NOT_TRUSTED, 4, "certificate-not-trusted")                            \
    X(STS_RESULT_VALIDATION_FAILURE, 5, "validation-failure")                                      \
    X(STS_RESULT_TLSA_INVALID, 6, "tlsa-invalid")                                                  \
    X(STS_RESULT_DNSSEC_INVALID, 7, "dnssec-invalid")                                              \
    X(STS_RESULT_DANE_REQUIRED, 8, "dane-required")                                                \
    X(STS_RESULT_STS_POLICY_FETCH_ERROR, 9, "sts-policy-fetch-error")                              \
    X(STS_RESULT_STS_POLICY_INVALID, 10, "sts-policy-invalid")                                     \
    X(STS_RESULT_STS_WEBPKI_INVALID, 11, "sts-webpki-invalid")

typedef enum { STS_RESULT_NONE = 0, STS_RESULT_TYPES(STS_VOCAB_ENUM) } sts_result_type;

/* ---- RFC 8460 4.4 policy types ----------------------------------------------------
 * A TLS report's policy.policy-type: "tlsa" (DANE, RFC 6698), "sts" (MTA-STS, RFC 8461)
 * or "no-policy-found" (neither was found for the policy domain). The report store and
 * report builder use them; "sts" is the zero value, the kind ststest applies today. */
#define STS_POLICY_TYPES(X)                                                                        \
    X(STS_POLICY_TYPE_TLSA, 1, "tlsa")                                                             \
    X(STS_POLICY_TYPE_STS, 0, "sts")                                                               \
    X(STS_POLICY_TYPE_NO_POLICY_FOUND, 2, "no-policy-found")

typedef enum { STS_POLICY_TYPES(STS_VOCAB_ENUM) } sts_policy_type;

/* ---- policy modes (RFC 8461 5) and the sender's --mode -----------------------------
 * One enum serves three uses:
 *   - a policy's mode (sts_policy.mode): enforce, testing or none once parsed;
 *   - the mode the sender applies to a recipient (decide.h): the same three;
 *   - the override of `send/check --mode` and a scenario's `sender: mode`: the three,
 *     or auto, "apply the policy's own mode".
 * The one value beyond RFC 8461, STS_MODE_AUTO ("auto"), means "no mode of its own".
 * It is the zero value on purpose: a zeroed sts_sender_opts overrides nothing (a zero
 * that meant none would switch enforce off by omission), and a policy that failed to
 * parse has no mode. It is never the mode applied: without a policy the sender applies
 * none (sts_decide_mode). sts_mode_parse() takes the three policy words only (the
 * policy ABNF, RFC 8461 3.2); sts_mode_parse_option() takes auto too. */
#define STS_MODES(X)                                                                               \
    X(STS_MODE_ENFORCE, 1, "enforce")                                                              \
    X(STS_MODE_TESTING, 2, "testing")                                                              \
    X(STS_MODE_NONE, 3, "none")                                                                    \
    X(STS_MODE_AUTO, 0, "auto")

typedef enum { STS_MODES(STS_VOCAB_ENUM) } sts_mode;

/* ---- policy sources ---------------------------------------------------------------
 * Where the policy applied to a recipient came from (JSON policy.source, a scenario's
 * policy_source; cache.h's sts_cache_resolve decides it): fetched just now, the policy
 * cache, or none: no policy, as if the domain had not implemented MTA-STS (RFC 8461 5).
 * None is the zero value. */
#define STS_POLICY_SOURCES(X)                                                                      \
    X(STS_POLICY_SOURCE_FETCHED, 1, "fetched")                                                     \
    X(STS_POLICY_SOURCE_CACHE, 2, "cache")                                                         \
    X(STS_POLICY_SOURCE_NONE, 0, "none")

typedef enum { STS_POLICY_SOURCES(STS_VOCAB_ENUM) } sts_policy_source;

/* ---- recipient outcomes -----------------------------------------------------------
 * The verdict on one recipient (JSON outcome, a scenario's outcome; decide.h). */
#define STS_OUTCOMES(X)                                                                            \
    X(STS_OUTCOME_DELIVERED, 0, "delivered")                                                       \
    X(STS_OUTCOME_DEFERRED, 1, "deferred")                                                         \
    X(STS_OUTCOME_FAILED, 2, "failed")

typedef enum { STS_OUTCOMES(STS_VOCAB_ENUM) } sts_outcome;

/* ---- MX actions -------------------------------------------------------------------
 * What the sender did with one MX (JSON mx[].action; decide.h). None: not decided yet. */
#define STS_ACTIONS(X)                                                                             \
    X(STS_ACTION_NONE, 0, "none")                                                                  \
    X(STS_ACTION_DELIVERED, 1, "delivered") /* accepted (check: would be delivered) */             \
    X(STS_ACTION_REFUSED, 2, "refused")     /* the sender declined the MX under policy */          \
    X(STS_ACTION_TEMPFAIL, 3, "tempfail")   /* 4xx, connection or protocol trouble */              \
    X(STS_ACTION_PERMFAIL, 4, "permfail")   /* 5xx */

typedef enum { STS_ACTIONS(STS_VOCAB_ENUM) } sts_action;

/* ---- how a message travelled -----------------------------------------------------
 * A scenario's `tls` expectation and the runner's verdict: over TLS with a certificate
 * a correct sender verifies, over TLS without, or none: in the clear. */
#define STS_DELIVERY_TLS(X)                                                                        \
    X(STS_DELIVERY_TLS_VERIFIED, 0, "verified")                                                    \
    X(STS_DELIVERY_TLS_UNVERIFIED, 1, "unverified")                                                \
    X(STS_DELIVERY_TLS_NONE, 2, "none")

typedef enum { STS_DELIVERY_TLS(STS_VOCAB_ENUM) } sts_delivery_tls;

/* ---- TLS protocol versions --------------------------------------------------------
 * The versions a scenario's tls_versions {min, max} names, oldest first so that values
 * compare like versions. STS_TLS_VERSION_DEFAULT (0, no name): not given, the library's
 * default. common/tls.h maps them to OpenSSL's (sts_tls_version_proto). */
#define STS_TLS_VERSIONS(X)                                                                        \
    X(STS_TLS_VERSION_1_0, 1, "1.0")                                                               \
    X(STS_TLS_VERSION_1_1, 2, "1.1")                                                               \
    X(STS_TLS_VERSION_1_2, 3, "1.2")                                                               \
    X(STS_TLS_VERSION_1_3, 4, "1.3")

typedef enum { STS_TLS_VERSION_DEFAULT = 0, STS_TLS_VERSIONS(STS_VOCAB_ENUM) } sts_tls_version;

/* ---- check --assure-tls: what one MX did with mail offered in the clear -----------
 * CheckTLS's TestReceiverAssureTLS (sender/assure.h): refused before any recipient was
 * accepted (the MX passes), accepted a recipient in the clear (it fails), or could not
 * be tested (unreachable; the JSON "reply" says why). */
#define STS_ASSURE_VERDICTS(X)                                                                     \
    X(STS_ASSURE_REFUSED, 0, "refused")                                                            \
    X(STS_ASSURE_ACCEPTED, 1, "accepted")                                                          \
    X(STS_ASSURE_NOT_TESTED, 2, "not-tested")

typedef enum { STS_ASSURE_VERDICTS(STS_VOCAB_ENUM) } sts_assure_verdict;

/* ---- the world's TLSRPT endpoints ------------------------------------------------
 * The faults of the world's HTTPS report collector (scenario tlsrpt.https.fault):
 * 200, 500, 503, every connection closed at once, 200 after a long wait. */
#define STS_COLLECTOR_FAULTS(X)                                                                    \
    X(STS_COLLECTOR_NONE, 0, "none")                                                               \
    X(STS_COLLECTOR_500, 1, "status-500")                                                          \
    X(STS_COLLECTOR_503, 2, "status-503")                                                          \
    X(STS_COLLECTOR_REFUSED, 3, "refused")                                                         \
    X(STS_COLLECTOR_SLOW, 4, "slow")

typedef enum { STS_COLLECTOR_FAULTS(STS_VOCAB_ENUM) } sts_collector_fault;

/* The DKIM verdict of a mailed report as the world's mailbox judges it (RFC 8601
 * 2.7.1's words): a valid signature, one that does not verify, none at all. */
#define STS_DKIM_RESULTS(X)                                                                        \
    X(STS_DKIM_PASS, 0, "pass")                                                                    \
    X(STS_DKIM_FAIL, 1, "fail")                                                                    \
    X(STS_DKIM_NONE, 2, "none")

typedef enum { STS_DKIM_RESULTS(STS_VOCAB_ENUM) } sts_dkim_result;

#undef STS_VOCAB_ENUM

/* ---- the run's time limit ---------------------------------------------------------
 * The JSON "detail" of a recipient (and of the MX in progress) that the sender deferred
 * because its time limit passed (`send --time-limit`, sts_sender_opts.deadline). The
 * runner tells a run cut short from a real deferral by this detail. */
#define STS_DETAIL_TIME_LIMIT "time limit"

/* ---- the functions ----------------------------------------------------------------
 * One pair per table, all defined in vocab.c by one macro over the sts_vocab data. */

const char *sts_result_type_name(sts_result_type t); /* NULL for STS_RESULT_NONE */
int sts_result_type_parse(const char *s, sts_result_type *out);

const char *sts_policy_type_name(sts_policy_type t);
int sts_policy_type_parse(const char *s, sts_policy_type *out);

const char *sts_mode_name(sts_mode m);
int sts_mode_parse(const char *s, sts_mode *out);        /* enforce, testing, none */
int sts_mode_parse_option(const char *s, sts_mode *out); /* and auto */

const char *sts_policy_source_name(sts_policy_source s);
int sts_policy_source_parse(const char *s, sts_policy_source *out);

const char *sts_outcome_name(sts_outcome o);
int sts_outcome_parse(const char *s, sts_outcome *out);

const char *sts_action_name(sts_action a);
int sts_action_parse(const char *s, sts_action *out);

const char *sts_delivery_tls_name(sts_delivery_tls t);
int sts_delivery_tls_parse(const char *s, sts_delivery_tls *out);

const char *sts_tls_version_name(sts_tls_version v); /* NULL for STS_TLS_VERSION_DEFAULT */
int sts_tls_version_parse(const char *s, sts_tls_version *out);

const char *sts_assure_verdict_name(sts_assure_verdict v);
int sts_assure_verdict_parse(const char *s, sts_assure_verdict *out);

const char *sts_collector_fault_name(sts_collector_fault f);
int sts_collector_fault_parse(const char *s, sts_collector_fault *out);

const char *sts_dkim_result_name(sts_dkim_result r);
int sts_dkim_result_parse(const char *s, sts_dkim_result *out);

/* ---- every vocabulary as data -----------------------------------------------------
 * For code that handles any of them alike: the scenario loader's "must be one of"
 * messages, the table tests. words[] is in the table's order. */
typedef struct sts_vocab_word {
    int value;
    const char *name;
} sts_vocab_word;

typedef struct sts_vocab {
    const char *what; /* "RFC 8460 result type", for messages */
    const sts_vocab_word *words;
    size_t n;
} sts_vocab;

extern const sts_vocab sts_vocab_result_type, sts_vocab_policy_type, sts_vocab_mode,
    sts_vocab_policy_source, sts_vocab_outcome, sts_vocab_action, sts_vocab_delivery_tls,
    sts_vocab_tls_version, sts_vocab_assure_verdict, sts_vocab_collector_fault,
    sts_vocab_dkim_result;

/* The name of value in v, or NULL. */
const char *sts_vocab_name(const sts_vocab *v, int value);
/* The value of the word s in v: 0 and *value, or STS_EINVAL. */
int sts_vocab_parse(const sts_vocab *v, const char *s, int *value);

#endif
