/*
 * features.h - what a scenario asks of the sender beyond a plain delivery, as words a
 * sender command can declare (`ststest run --sender-features LIST`). A case that
 * needs a feature the sender lacks is reported `unsupported` without running, not as
 * a failure: a peer that cannot be told --require-tls is not a security hole.
 *
 * The vocabulary is one X-macro table X(symbol, bit, name, meaning); the features a
 * scenario needs are derived from its content in one place (sts_features_needed).
 */
#ifndef STS_FEATURES_H
#define STS_FEATURES_H

#include <stddef.h>
#include <stdio.h>

#include "common/scenario.h"

#define STS_FEATURES(X)                                                                            \
    X(STS_FEATURE_REQUIRE_TLS, 1u << 0, "require-tls",                                             \
      "sender {require_tls: true} (--require-tls)")                                                \
    X(STS_FEATURE_ASSURE_TLS, 1u << 1, "assure-tls",                                               \
      "sender {assure_tls: true} (check --assure-tls)")                                            \
    X(STS_FEATURE_MODE, 1u << 2, "mode", "sender {mode: ...} (--mode, {sender_mode})")             \
    X(STS_FEATURE_STEPS, 1u << 3, "steps", "multi-step: run again after the world changed")        \
    X(STS_FEATURE_CACHE, 1u << 4, "policy-cache", "a step expects a policy an earlier one cached") \
    X(STS_FEATURE_NOW, 1u << 5, "now", "a step moves the clock ({now} follows it)")                \
    X(STS_FEATURE_TLSRPT, 1u << 6, "tlsrpt",                                                       \
      "a report: deliver step (TLS reports of the sender's sessions, --report-cmd)")

#define STS_FEATURE_ENUM(sym, bit, name, meaning) sym = bit,
enum sts_feature { STS_FEATURES(STS_FEATURE_ENUM) };
#undef STS_FEATURE_ENUM

/* Every feature: the default when --sender-features is not given. */
unsigned sts_features_all(void);

/* The features the scenario needs (a bit set of enum sts_feature). */
unsigned sts_features_needed(const sts_scenario *scn);

/* Parse a comma-separated list of feature names ("" is no feature). 0 with *out set,
 * or -1 with the bad word named in err. */
int sts_features_parse(const char *list, unsigned *out, char *err, size_t errlen);

/* The names of the bits of set, comma-separated, into buf ("" for none). */
void sts_features_text(unsigned set, char *buf, size_t len);

/* One line per feature, "  name  meaning\n", for --help. */
void sts_features_help(FILE *fp);

#endif
