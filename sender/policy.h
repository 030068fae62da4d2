/*
 * policy.h - the MTA-STS policy file (RFC 8461 section 3.2) and mx pattern matching
 * (section 4.1). Pure functions of data: no I/O.
 *
 * A policy is "key: value" lines ending in LF or CRLF:
 *   version: STSv1            required once
 *   mode: enforce|testing|none required once
 *   max_age: 0..31557600      required once, 1-10 digits
 *   mx: [*.]domain            one or more (may be absent only when mode is none)
 * The ABNF (3.2) puts no whitespace before ":" and allows *WSP after it and at the end
 * of a line; fields may come in any order; unknown fields are ignored ("senders MUST
 * ignore" unknown keys, 3.2) but must still be well-formed extension fields.
 * A non-mx field given twice is a warning and the first value wins. Blank lines are
 * not in the ABNF; they are reported as warnings and skipped.
 *
 * Functions return 0 or a negative code from common/err.h, as documented per function.
 */
#ifndef STS_POLICY_H
#define STS_POLICY_H

#include <jansson.h>
#include <stddef.h>

#include "common/vocab.h"
#include "sender/diag.h"

/* RFC 8461 3.2: max_age "Maximum value is 31557600" (about 1 year). */
#define STS_POLICY_MAX_AGE_MAX 31557600L

typedef struct sts_policy {
    char version[8]; /* "STSv1" */
    sts_mode mode;   /* enforce, testing or none (common/vocab.h: sts_mode_parse) */
    long max_age; /* seconds, 0..STS_POLICY_MAX_AGE_MAX */
    size_t nmx;
    char **mx; /* mx patterns as written in the file, in file order */
} sts_policy;

/* Parse len bytes of a policy body (need not be NUL-terminated). Every problem goes to
 * diags with line and column. Returns 0 and fills *out (release with sts_policy_free),
 * STS_ESYNTAX when the policy is invalid (*out is then zeroed, nothing to free), or
 * STS_ENOMEM. */
int sts_policy_parse(const char *text, size_t len, sts_policy *out, sts_diags *diags);
void sts_policy_free(sts_policy *p);
/* Deep copy. 0 or STS_ENOMEM (dst zeroed). */
int sts_policy_copy(sts_policy *dst, const sts_policy *src);
/* 1 when a and b say the same (RFC 8461 3.2 fields: mode, max_age, and the mx patterns in
 * order, compared case-insensitively), else 0. */
int sts_policy_same(const sts_policy *a, const sts_policy *b);

/* Is pattern a valid mx value: ["*."] Domain (RFC 5321 Domain: LDH labels of 1-63
 * characters, letters/digits at both ends, no trailing dot, at most 253 characters)?
 * 1 or 0; why (may be NULL) gets the reason when 0. */
int sts_mx_pattern_valid(const char *pattern, char *why, size_t whylen);

/* RFC 8461 4.1: does host match pattern? Case-insensitive; a trailing dot on host is
 * ignored. "*.example.com" matches "mail.example.com" but neither "example.com" nor
 * "a.b.example.com" (the wildcard stands for exactly one whole leftmost label).
 * 1 or 0; an invalid pattern or host never matches. */
int sts_mx_pattern_match(const char *pattern, const char *host);

/* The first mx pattern of policy that host matches, or NULL. */
const char *sts_policy_mx_match(const sts_policy *policy, const char *host);
/* 1 when host matches some mx pattern of policy, else 0. */
int sts_policy_mx_allowed(const sts_policy *policy, const char *host);

/* {"version", "mode", "max_age", "mx": [...]} (the DESIGN.md policy fields), or NULL
 * on allocation failure. */
json_t *sts_policy_to_json(const sts_policy *policy);

#endif
