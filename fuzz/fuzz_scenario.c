/*
 * fuzz_scenario.c - fuzz target for the scenario loader (common/scenario.h:
 * sts_scenario_parse, the in-memory form of sts_scenario_load). The input is the text
 * of a scenario file.
 *
 * Properties checked (abort on violation):
 *  - A rejected file gives a message that starts with the file's name ("fuzz.yaml:"),
 *    and the same message when parsed again (no hidden state between parses).
 *  - An accepted file has name, about and domain; the domain and every MX host are
 *    lower case without a trailing dot; at least one mode, each of enforce, testing,
 *    none; every mode has its expectation (in every step, for a multi-step scenario,
 *    which then has no top-level expect); expectations are found by mode.
 *  - sts_scenario_subst replaces every ${mode} in the policy's mode.
 *  - Parsing it again gives a scenario with the same shape.
 * Every scenario is freed before the next input. The function returns 0.
 */
#include <ctype.h>
#include <string.h>

#include "common/scenario.h"
#include "fuzz/fuzz.h"

#define NAME "fuzz.yaml"

static void check_host(const char *h, const char *what)
{
    FUZZ_CHECK(h && h[0], "%s: no host name", what);
    size_t n = strlen(h);
    FUZZ_CHECK(h[n - 1] != '.', "%s '%s' ends in a dot", what, h);
    for (size_t i = 0; i < n; i++)
        FUZZ_CHECK(!isupper((unsigned char)h[i]), "%s '%s' not in lower case", what, h);
}

static int is_mode(const char *m)
{
    return !strcmp(m, "enforce") || !strcmp(m, "testing") || !strcmp(m, "none");
}

static void check_scenario(const sts_scenario *s)
{
    FUZZ_CHECK(s->name && s->about && s->domain, "a required key is missing");
    FUZZ_CHECK(s->file && !strcmp(s->file, NAME), "file '%s'", s->file ? s->file : "(null)");
    check_host(s->domain, "domain");
    for (size_t i = 0; i < s->nmx; i++)
        check_host(s->mx[i].host, "mx");
    FUZZ_CHECK(s->modes.n >= 1, "no mode");
    for (size_t i = 0; i < s->modes.n; i++) {
        const char *m = s->modes.v[i];
        FUZZ_CHECK(is_mode(m), "mode '%s'", m);
        if (s->nsteps == 0) {
            const sts_scn_expect *e = sts_scenario_expect(s, m);
            FUZZ_CHECK(e && !strcmp(e->mode, m), "no expectation for mode '%s'", m);
        }
        for (size_t k = 0; k < s->nsteps; k++) {
            const sts_scn_expect *e = sts_scenario_step_expect(s, k, m);
            FUZZ_CHECK(e && !strcmp(e->mode, m), "step %zu: no expectation for mode '%s'", k, m);
        }
        if (s->policy.mode) {
            char *x = sts_scenario_subst(s->policy.mode, m);
            if (x) {
                FUZZ_CHECK(!strstr(x, "${mode}"), "'%s' still has ${mode}", x);
                free(x);
            }
        }
    }
    if (s->nsteps)
        FUZZ_CHECK(s->nexpect == 0, "a multi-step scenario with a top-level expect");
    FUZZ_CHECK(sts_scenario_expect(s, "no-such-mode") == NULL, "expectation for an unknown mode");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 64 * 1024)
        return 0;
    const char *text = (const char *)data;
    char err[1024] = "", err2[1024] = "";
    sts_scenario *s = sts_scenario_parse(text, size, NAME, err, sizeof(err));
    sts_scenario *t = sts_scenario_parse(text, size, NAME, err2, sizeof(err2));
    FUZZ_CHECK(!s == !t, "parsed once, rejected once: '%s' / '%s'", err, err2);
    if (!s) {
        FUZZ_CHECK(!strncmp(err, NAME ":", strlen(NAME) + 1), "message '%s'", err);
        FUZZ_CHECK(!strcmp(err, err2), "two messages: '%s' / '%s'", err, err2);
    } else {
        check_scenario(s);
        FUZZ_CHECK(s->nmx == t->nmx && s->nsteps == t->nsteps && s->nexpect == t->nexpect &&
                       s->modes.n == t->modes.n && s->ndns_faults == t->ndns_faults &&
                       !strcmp(s->domain, t->domain),
                   "the second parse differs");
    }
    sts_scenario_free(s);
    sts_scenario_free(t);
    return 0;
}
