/* features.c - the sender features a scenario needs (features.h). */
#include "runner/features.h"

#include <string.h>

#include "common/err.h"

static const struct {
    unsigned bit;
    const char *name, *meaning;
} features[] = {
#define STS_FEATURE_ROW(sym, bit, name, meaning) {bit, name, meaning},
    STS_FEATURES(STS_FEATURE_ROW)
#undef STS_FEATURE_ROW
};

#define NFEATURES (sizeof(features) / sizeof(features[0]))

unsigned sts_features_all(void)
{
    unsigned all = 0;
    for (size_t i = 0; i < NFEATURES; i++)
        all |= features[i].bit;
    return all;
}

/* Whether any mode's expectation of a step after the first says the policy came from
 * the cache: the step depends on what an earlier run cached. */
static int needs_cache(const sts_scenario *scn)
{
    for (size_t i = 1; i < scn->nsteps; i++)
        for (size_t j = 0; j < scn->steps[i].nexpect; j++) {
            const sts_scn_expect *e = &scn->steps[i].expect[j];
            if (e->policy_source_set && e->policy_source == STS_POLICY_SOURCE_CACHE)
                return 1;
        }
    return 0;
}

unsigned sts_features_needed(const sts_scenario *scn)
{
    unsigned need = 0;
    if (scn->sender.require_tls)
        need |= STS_FEATURE_REQUIRE_TLS;
    if (scn->sender.assure_tls)
        need |= STS_FEATURE_ASSURE_TLS;
    if (scn->sender.mode_set)
        need |= STS_FEATURE_MODE;
    if (scn->nsteps)
        need |= STS_FEATURE_STEPS;
    if (needs_cache(scn))
        need |= STS_FEATURE_CACHE;
    for (size_t i = 0; i < scn->nsteps; i++) {
        if (scn->steps[i].advance > 0)
            need |= STS_FEATURE_NOW;
        if (scn->steps[i].report)
            need |= STS_FEATURE_TLSRPT;
    }
    return need;
}

int sts_features_parse(const char *list, unsigned *out, char *err, size_t errlen)
{
    unsigned set = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        size_t i = 0;
        while (i < NFEATURES && (strlen(features[i].name) != n || strncmp(features[i].name, p, n)))
            i++;
        if (i == NFEATURES) {
            char known[256];
            sts_features_text(sts_features_all(), known, sizeof(known));
            sts_errf(err, errlen, "'%.*s' is not a sender feature (known: %s)", (int)n, p, known);
            return -1;
        }
        set |= features[i].bit;
        p += n + (p[n] == ',');
    }
    *out = set;
    return 0;
}

void sts_features_text(unsigned set, char *buf, size_t len)
{
    size_t used = 0;
    if (len)
        buf[0] = '\0';
    for (size_t i = 0; i < NFEATURES; i++)
        if ((set & features[i].bit) && used < len)
            used +=
                (size_t)snprintf(buf + used, len - used, "%s%s", used ? "," : "", features[i].name);
}

void sts_features_help(FILE *fp)
{
    for (size_t i = 0; i < NFEATURES; i++)
        fprintf(fp, "                    %-13s %s\n", features[i].name, features[i].meaning);
}
