/* rfcref.c - the sections of the RFCs the scenarios cite (rfcref.h). */
#include "common/rfcref.h"

#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

/* RFC 5321 (Simple Mail Transfer Protocol, October 2008): every numbered section of
 * its table of contents, plus the numbered headings of the text that the table of
 * contents does not list (4.1.1.1 to 4.1.1.11, 4.5.4.1, 4.5.4.2). Copied from the RFC
 * text (rfc5321.txt, pages 2-4 and 32-40, 66-68). */
static const char *const rfc5321[] = {
    "1",         "1.1",       "1.2",       "1.3",       "2",         "2.1",        "2.2",
    "2.2.1",     "2.2.2",     "2.2.3",     "2.3",       "2.3.1",     "2.3.2",      "2.3.3",
    "2.3.4",     "2.3.5",     "2.3.6",     "2.3.7",     "2.3.8",     "2.3.9",      "2.3.10",
    "2.3.11",    "2.4",       "3",         "3.1",       "3.2",       "3.3",        "3.4",
    "3.5",       "3.5.1",     "3.5.2",     "3.5.3",     "3.5.4",     "3.6",        "3.6.1",
    "3.6.2",     "3.6.3",     "3.7",       "3.7.1",     "3.7.2",     "3.7.3",      "3.7.4",
    "3.7.5",     "3.8",       "3.9",       "3.9.1",     "3.9.2",     "4",          "4.1",
    "4.1.1",     "4.1.1.1",   "4.1.1.2",   "4.1.1.3",   "4.1.1.4",   "4.1.1.5",    "4.1.1.6",
    "4.1.1.7",   "4.1.1.8",   "4.1.1.9",   "4.1.1.10",  "4.1.1.11",  "4.1.2",      "4.1.3",
    "4.1.4",     "4.1.5",     "4.2",       "4.2.1",     "4.2.2",     "4.2.3",      "4.2.4",
    "4.2.5",     "4.3",       "4.3.1",     "4.3.2",     "4.4",       "4.5",        "4.5.1",
    "4.5.2",     "4.5.3",     "4.5.3.1",   "4.5.3.1.1", "4.5.3.1.2", "4.5.3.1.3",  "4.5.3.1.4",
    "4.5.3.1.5", "4.5.3.1.6", "4.5.3.1.7", "4.5.3.1.8", "4.5.3.1.9", "4.5.3.1.10", "4.5.3.2",
    "4.5.3.2.1", "4.5.3.2.2", "4.5.3.2.3", "4.5.3.2.4", "4.5.3.2.5", "4.5.3.2.6",  "4.5.3.2.7",
    "4.5.4",     "4.5.4.1",   "4.5.4.2",   "4.5.5",     "5",         "5.1",        "5.2",
    "6",         "6.1",       "6.2",       "6.3",       "6.4",       "7",          "7.1",
    "7.2",       "7.3",       "7.4",       "7.5",       "7.6",       "7.7",        "7.8",
    "7.9",       "8",         "9",         "10",        "10.1",      "10.2",       "A",
    "B",         "C",         "D",         "D.1",       "D.2",       "D.3",        "D.4",
    "E",         "F",         "F.1",       "F.2",       "F.3",       "F.4",        "F.5",
    "F.6",
};

/* RFCs the scenario library cites whose sections should be checked as RFC 5321's are,
 * but whose section lists could not be read from the RFC's own text (issue #13). None
 * is guessed: a refs entry citing a section of one of them is accepted, and the check
 * says "RFC <n>: sections not known" (sts_rfcref_check returns 1). Where the text was
 * looked for, and why it was not enough (session 5):
 *  - RFC 8461 and RFC 8460: the stored copies of the RFC (nic.funet.fi, xmox.nl,
 *    tech-invite.com, datatracker, the MailPolicyExplainer PowerShell package) could be
 *    read only up to the page before the table of contents. The authors' repository
 *    (mrisher/smtp-sts) holds the drafts, not the RFCs: mta-sts.txt is
 *    draft-ietf-uta-mta-sts-19 and reporting.xml draft-ietf-uta-smtp-tlsrpt-21, and the
 *    TLSRPT drafts number section 4 differently from one version to the next, so a
 *    draft's table of contents is not the RFC's.
 *  - RFC 7505, RFC 6125 and RFC 7672: no copy of the text reachable past its first
 *    page. */
static const unsigned unverified[] = {8461, 8460, 7505, 6125, 7672};

#define TABLE(v) v, sizeof(v) / sizeof(v[0])

static const struct {
    unsigned rfc;
    const char *const *sections;
    size_t n;
} rfcs[] = {
    {5321, TABLE(rfc5321)},
};

#define NRFCS (sizeof(rfcs) / sizeof(rfcs[0]))

int sts_rfcref_known(unsigned n)
{
    for (size_t i = 0; i < NRFCS; i++)
        if (rfcs[i].rfc == n)
            return 1;
    return 0;
}

int sts_rfcref_unverified(unsigned n)
{
    for (size_t i = 0; i < sizeof(unverified) / sizeof(unverified[0]); i++)
        if (unverified[i] == n)
            return 1;
    return 0;
}

int sts_rfcref_check(const char *ref, char *err, size_t errlen)
{
    if (strncmp(ref, "RFC ", 4) || !isdigit((unsigned char)ref[4]))
        return 0;
    char *end = NULL;
    unsigned long n = strtoul(ref + 4, &end, 10);
    while (*end == ' ')
        end++;
    if (!*end)
        return 0; /* the whole document */
    size_t t = 0;
    while (t < NRFCS && rfcs[t].rfc != n)
        t++;
    if (t == NRFCS) {
        if (n > UINT_MAX || !sts_rfcref_unverified((unsigned)n))
            return 0;
        sts_errf(err, errlen, "RFC %lu: sections not known", n);
        return 1;
    }
    size_t len = strcspn(end, " ,;:");
    for (size_t i = 0; i < rfcs[t].n; i++)
        if (strlen(rfcs[t].sections[i]) == len && !strncmp(rfcs[t].sections[i], end, len))
            return 0;
    sts_errf(err, errlen, "RFC %lu has no section %.*s", n, (int)len, end);
    return -1;
}
