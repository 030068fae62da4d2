/*
 * vocab.c - the tables of vocab.h as data, and their name and parse functions. Name
 * functions return the word or NULL; parse functions 0 or STS_EINVAL.
 */
#include "common/vocab.h"

#include <string.h>

#include "common/err.h"

#define VOCAB_WORD(sym, val, name) {sym, name},
#define VOCAB_TABLE(var, what, table)                                                              \
    static const sts_vocab_word var##_words[] = {table(VOCAB_WORD)};                               \
    const sts_vocab var = {what, var##_words, sizeof(var##_words) / sizeof(var##_words[0])};

VOCAB_TABLE(sts_vocab_result_type, "RFC 8460 result type", STS_RESULT_TYPES)
VOCAB_TABLE(sts_vocab_policy_type, "RFC 8460 policy type", STS_POLICY_TYPES)
VOCAB_TABLE(sts_vocab_mode, "policy mode", STS_MODES)
VOCAB_TABLE(sts_vocab_policy_source, "policy source", STS_POLICY_SOURCES)
VOCAB_TABLE(sts_vocab_outcome, "outcome", STS_OUTCOMES)
VOCAB_TABLE(sts_vocab_action, "MX action", STS_ACTIONS)
VOCAB_TABLE(sts_vocab_delivery_tls, "delivery TLS", STS_DELIVERY_TLS)
VOCAB_TABLE(sts_vocab_tls_version, "TLS version", STS_TLS_VERSIONS)
VOCAB_TABLE(sts_vocab_assure_verdict, "assure-tls verdict", STS_ASSURE_VERDICTS)
VOCAB_TABLE(sts_vocab_collector_fault, "collector fault", STS_COLLECTOR_FAULTS)
VOCAB_TABLE(sts_vocab_dkim_result, "DKIM result", STS_DKIM_RESULTS)

const char *sts_vocab_name(const sts_vocab *v, int value)
{
    for (size_t i = 0; i < v->n; i++)
        if (v->words[i].value == value)
            return v->words[i].name;
    return NULL;
}

int sts_vocab_parse(const sts_vocab *v, const char *s, int *value)
{
    for (size_t i = 0; s && i < v->n; i++)
        if (!strcmp(v->words[i].name, s)) {
            *value = v->words[i].value;
            return 0;
        }
    return STS_EINVAL;
}

/* The typed pair of one vocabulary: type_name(value) and parse(text, &value). */
#define VOCAB_FUNCTIONS(type, name_fn, parse_fn, vocab)                                            \
    const char *name_fn(type x)                                                                    \
    {                                                                                              \
        return sts_vocab_name(&vocab, (int)x);                                                     \
    }                                                                                              \
    int parse_fn(const char *s, type *out)                                                         \
    {                                                                                              \
        int v;                                                                                     \
        if (sts_vocab_parse(&vocab, s, &v))                                                        \
            return STS_EINVAL;                                                                     \
        *out = (type)v;                                                                            \
        return 0;                                                                                  \
    }

VOCAB_FUNCTIONS(sts_result_type, sts_result_type_name, sts_result_type_parse, sts_vocab_result_type)
VOCAB_FUNCTIONS(sts_policy_type, sts_policy_type_name, sts_policy_type_parse, sts_vocab_policy_type)
VOCAB_FUNCTIONS(sts_mode, sts_mode_name, sts_mode_parse_option, sts_vocab_mode)
VOCAB_FUNCTIONS(sts_policy_source, sts_policy_source_name, sts_policy_source_parse,
                sts_vocab_policy_source)
VOCAB_FUNCTIONS(sts_outcome, sts_outcome_name, sts_outcome_parse, sts_vocab_outcome)
VOCAB_FUNCTIONS(sts_action, sts_action_name, sts_action_parse, sts_vocab_action)
VOCAB_FUNCTIONS(sts_delivery_tls, sts_delivery_tls_name, sts_delivery_tls_parse,
                sts_vocab_delivery_tls)
VOCAB_FUNCTIONS(sts_tls_version, sts_tls_version_name, sts_tls_version_parse, sts_vocab_tls_version)
VOCAB_FUNCTIONS(sts_assure_verdict, sts_assure_verdict_name, sts_assure_verdict_parse,
                sts_vocab_assure_verdict)
VOCAB_FUNCTIONS(sts_collector_fault, sts_collector_fault_name, sts_collector_fault_parse,
                sts_vocab_collector_fault)
VOCAB_FUNCTIONS(sts_dkim_result, sts_dkim_result_name, sts_dkim_result_parse, sts_vocab_dkim_result)

int sts_mode_parse(const char *s, sts_mode *out)
{
    /* RFC 8461 3.2: sts-policy-mode-value = %s"testing" / %s"enforce" / %s"none";
     * auto is ours (the --mode override), never a policy's. */
    sts_mode m;
    if (sts_mode_parse_option(s, &m) || m == STS_MODE_AUTO)
        return STS_EINVAL;
    *out = m;
    return 0;
}
