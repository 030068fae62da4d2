/*
 * ststxt.h - the `_mta-sts.<domain>` TXT record (RFC 8461 section 3.1).
 *
 *   sts-text-record = sts-version 1*(sts-field-delim sts-field) [sts-field-delim]
 *   sts-version     = %s"v=STSv1"
 *   sts-field-delim = *WSP ";" *WSP
 *   sts-field       = sts-id / sts-extension
 *   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
 *   sts-extension   = sts-ext-name "=" sts-ext-value
 *   sts-ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   sts-ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)   ; VCHAR except "=" and ";"
 *
 * `id` is required. A record is given as the concatenation of its character-strings
 * (RFC 8461 3.1: "If a TXT record contains multiple strings, ... concatenated
 * together without adding spaces"); the resolver does that (resolver.h).
 *
 * Functions return 0 or a negative code from common/err.h, as documented per function.
 */
#ifndef STS_STSTXT_H
#define STS_STSTXT_H

#include <stddef.h>

#include "sender/diag.h"

#define STS_TXT_ID_MAX 32

typedef struct sts_txt_ext {
    char *name;
    char *value;
} sts_txt_ext;

typedef struct sts_txt {
    char version[8];             /* "STSv1" */
    char id[STS_TXT_ID_MAX + 1]; /* the policy id, 1-32 alphanumerics */
    size_t next;                 /* extension fields, in record order */
    sts_txt_ext *ext;
} sts_txt;

/* 1 when the record begins with "v=STSv1" followed by ";", whitespace or its end (the
 * RFC 8461 3.1 filter: "records that do not begin with "v=STSv1;" are discarded";
 * the ABNF allows whitespace before the ";"), else 0. */
int sts_txt_is_sts(const char *rec, size_t len);

/* Parse one record of len bytes (NUL bytes inside are an error). Every problem goes to
 * diags (line 1, byte column). On success fills *out (release with sts_txt_free) and
 * returns 0; returns STS_ESYNTAX when the record is invalid (*out is then zeroed, nothing
 * to free) or STS_ENOMEM. A repeated `id` is a warning; the first one is used. */
int sts_txt_parse(const char *rec, size_t len, sts_txt *out, sts_diags *diags);
void sts_txt_free(sts_txt *t);

/* RFC 8461 3.1 policy discovery over all TXT records found at _mta-sts.<domain>:
 * records not beginning with v=STSv1 are discarded; exactly one must remain and be
 * valid. records[i] has lens[i] bytes (lens NULL: NUL-terminated strings).
 * Returns 0 and fills *out (sts_txt_free it), or, meaning "no policy available":
 *   STS_ENOTFOUND  no record begins with v=STSv1
 *   STS_EINVAL     more than one record begins with v=STSv1
 *   STS_ESYNTAX    the one STS record is invalid (diags has why)
 * In every case `why` (may be NULL) gets a one-line explanation for the transcript,
 * e.g. "2 TXT records begin with v=STSv1: no policy (RFC 8461 3.1)". */
int sts_txt_select(const char *const *records, const size_t *lens, size_t n, sts_txt *out,
                   sts_diags *diags, char *why, size_t whylen);

#endif
