/*
 * rfcref.h - the sections that exist in the RFCs the scenario library cites, so that a
 * scenario's `refs` entry naming a section that does not exist is a load error
 * (common/scenario.c), not a wrong pointer a reader follows.
 *
 * One table per RFC in rfcref.c, each copied from the RFC's own text (its table of
 * contents, and the numbered headings below the depth the table of contents shows),
 * with where it came from. An RFC that has no table here is not checked: its refs are
 * accepted as written; for the RFCs whose table could not be verified the check says
 * so ("RFC 7672: sections not known") instead of guessing. A table may be complete only
 * to some depth (RFC 6125: two levels, plus the headings under 6.4 that were seen): a
 * deeper section, or an appendix, that it does not list is "not known", not an error.
 */
#ifndef STS_RFCREF_H
#define STS_RFCREF_H

#include <stddef.h>

/* Check one refs entry. Entries that do not start with "RFC <number>" (e.g. "DESIGN.md
 * security invariant"), "RFC <n>" alone (the whole document) and entries citing an RFC
 * that is neither known nor unverified are accepted: 0. For an RFC with a table,
 * "RFC <n> <section>" must name a section of the table (the section is the next word,
 * "4.2" or an appendix "A.1"): 0, or -1 with "RFC <n> has no section <s>" in err. For
 * an unverified RFC (below) the section cannot be judged: 1, with "RFC <n>: sections
 * not known" in err; the entry is accepted, not an error. So is a section deeper than a
 * partial table's depth, or an appendix, that the table does not list: 1, with "RFC <n>
 * <s>: section not known (the table is complete to <d> levels)". */
int sts_rfcref_check(const char *ref, char *err, size_t errlen);

/* Whether RFC n has a table of sections here. */
int sts_rfcref_known(unsigned n);

/* RFC n's table of sections, in document order ("1", "1.1", ..., "A", "A.1"): the number
 * of sections, with *out set; 0 (and *out NULL) for an RFC without a table. */
size_t sts_rfcref_sections(unsigned n, const char *const **out);

/* Whether RFC n is one whose sections should be checked (issue #13 names 8461, 8460,
 * 5321, 7505, 6125 and 7672) but whose table could not be verified from the RFC's own
 * text, and so is not here: today 7672 (rfcref.c says where it was looked for). */
int sts_rfcref_unverified(unsigned n);

#endif
