/*
 * rfcref.h - the sections that exist in the RFCs the scenario library cites, so that a
 * scenario's `refs` entry naming a section that does not exist is a load error
 * (common/scenario.c), not a wrong pointer a reader follows.
 *
 * One table per RFC in rfcref.c, each copied from the RFC's own text (its table of
 * contents, and the numbered headings below the depth the table of contents shows),
 * with where it came from. An RFC that has no table here is not checked: its refs are
 * accepted as written.
 */
#ifndef STS_RFCREF_H
#define STS_RFCREF_H

#include <stddef.h>

/* Check one refs entry. Entries that do not start with "RFC <number>" (e.g. "DESIGN.md
 * security invariant"), and entries citing an RFC without a table, are accepted. For an
 * RFC with a table, "RFC <n>" alone (the whole document) is accepted, and
 * "RFC <n> <section>" must name a section of the table (the section is the next word,
 * "4.2" or an appendix "A.1"). Returns 0, or -1 with the reason in err. */
int sts_rfcref_check(const char *ref, char *err, size_t errlen);

/* Whether RFC n has a table of sections here. */
int sts_rfcref_known(unsigned n);

#endif
