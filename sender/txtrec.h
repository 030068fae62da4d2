/*
 * txtrec.h - what the two "v=...; name=value" DNS TXT records share: the `_mta-sts`
 * record (RFC 8461 3.1, sender/ststxt.h) and the `_smtp._tls` TLSRPT record (RFC 8460
 * 3, sender/tlsrpt.h). Both grammars are
 *
 *   record      = version 1*(field-delim field) [field-delim]
 *   field-delim = *WSP ";" *WSP
 *   extension   = ext-name "=" ext-value
 *   ext-name    = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   ext-value   = 1*(%x21-3A / %x3C / %x3E-7E)   ; VCHAR except "=" and ";"
 *
 * with version %s"v=STSv1" or %s"v=TLSRPTv1", and both select the one record among
 * the TXT records of a name the same way: records that do not begin with the version
 * are discarded, and exactly one must remain. Only the two parsers use this header.
 *
 * Diagnostics go to line 1 with the byte column (sender/diag.h). Functions return 0
 * or a negative code from common/err.h, as documented per function.
 */
#ifndef STS_TXTREC_H
#define STS_TXTREC_H

#include <stddef.h>

#include "sender/diag.h"

#define STS_TXTREC_EXT_NAME_MAX 32

/* 1 when rec begins with "v=" tag (tag "STSv1", "TLSRPTv1") followed by ";", whitespace
 * or the record's end, else 0. Both RFCs discard records that do not "begin with
 * "v=...;"", and their ABNF lets whitespace stand before the ";"; a bare version is
 * such a record (an invalid one: it has no fields). */
int sts_txtrec_begins(const char *rec, size_t len, const char *tag);

/* Length of the token at rec[p..len): up to ";", whitespace or the end. */
size_t sts_txtrec_token_len(const char *rec, size_t p, size_t len);

/* Check the start of a record: no NUL byte anywhere, "v=" tag first, then ";",
 * whitespace or the end. Returns 0 when the fields may be read from offset 2 +
 * strlen(tag); STS_ESYNTAX after reporting the one error that stops the parse (a NUL
 * byte, leading whitespace, "unsupported version 'X' (expected tag)", a record that does
 * not begin with the version, no ";" after it); STS_ENOMEM. */
int sts_txtrec_check_start(const char *rec, size_t len, const char *tag, sts_diags *diags);

/* Check the extension field rec[s..e) (no ";" or whitespace inside) as ext-name "="
 * ext-value, reporting every problem with its column and adding the number of errors to
 * *nerr. `defined` is the field the record defines besides v ("id", "rua"): a name that
 * equals it but for case is a warning (field names are case-sensitive), as is a second
 * "v=". *eq gets the offset of the field's "=", or (size_t)-1 when there is none or the
 * name is empty (nothing to keep). Returns 0 or STS_ENOMEM. */
int sts_txtrec_check_ext(const char *rec, size_t s, size_t e, const char *defined, sts_diags *diags,
                         int *nerr, size_t *eq);

/* How one kind of record is selected and parsed (see sts_txtrec_select). */
typedef struct sts_txtrec_kind {
    const char *tag;    /* the version: "STSv1" */
    const char *label;  /* in explanations: "STS TXT record" */
    const char *absent; /* what a failed selection means: "no policy" */
    const char *rfc;    /* the clause that asks for exactly one: "RFC 8461 3.1" */
    size_t size;        /* sizeof the parsed record, zeroed on failure */
    /* Parse one record into out: 0, STS_ESYNTAX (out zeroed) or STS_ENOMEM. */
    int (*parse)(const char *rec, size_t len, void *out, sts_diags *diags);
    void (*release)(void *out);
} sts_txtrec_kind;

/* The selection both RFCs prescribe, over the n TXT records found at one name
 * (records[i] has lens[i] bytes; lens NULL: NUL-terminated strings): records not
 * beginning with "v=" tag are discarded, exactly one must remain, and it is parsed
 * into out. Returns 0, or (out then zeroed):
 *   STS_ENOTFOUND  no record begins with the version
 *   STS_EINVAL     more than one does
 *   STS_ESYNTAX    the one record is invalid (its diagnostics are appended to diags)
 *   STS_ENOMEM
 * `why` (may be NULL) gets a one-line explanation for the transcript, e.g. "2 TXT
 * records begin with v=STSv1: no policy (RFC 8461 3.1 requires exactly one)"; on
 * success it is left for the caller to fill. */
int sts_txtrec_select(const sts_txtrec_kind *kind, const char *const *records, const size_t *lens,
                      size_t n, void *out, sts_diags *diags, char *why, size_t whylen);

#endif
