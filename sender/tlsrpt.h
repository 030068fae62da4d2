/*
 * tlsrpt.h - the SMTP TLS Reporting policy record at `_smtp._tls.<domain>` (RFC 8460
 * section 3):
 *
 *   tlsrpt-record    = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
 *   field-delim      = *WSP ";" *WSP
 *   tlsrpt-field     = tlsrpt-rua / tlsrpt-extension  ; "the tlsrpt-rua field is required"
 *   tlsrpt-version   = %s"v=TLSRPTv1"
 *   tlsrpt-rua       = %s"rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri)
 *   tlsrpt-uri       = URI   ; RFC 3986; commas, exclamation points and semicolons
 *                            ; MUST be encoded
 *   tlsrpt-extension = tlsrpt-ext-name "=" tlsrpt-ext-value
 *   tlsrpt-ext-name  = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / ".")
 *   tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E)
 *
 * What this parser decides where the ABNF leaves room, each with its clause:
 *  - A field named exactly "rua" is the rua field, never an extension, even when its
 *    value would fit tlsrpt-ext-value. "RUA=" is an extension (%s: case-sensitive),
 *    with a warning.
 *  - "Two URI schemes are supported: "mailto" and "https"" (section 3). A URI with
 *    another scheme (http:, ftp:) is an error when the record has no mailto: or https:
 *    URI at all; next to one it is a warning and left out of the list: reporters
 *    "MAY attempt to deliver to each of the supported rua destinations".
 *  - A second rua field is accepted with a warning and its URIs follow the first's:
 *    the ABNF allows any number of tlsrpt-field, "the record supports the ability to
 *    declare more than one rua", and "Parsers MUST accept TXT records that are
 *    syntactically valid". One comma-separated list is the usual form.
 *  - A "!" in a URI is an error: the ABNF comment says exclamation points "MUST be
 *    encoded", so DMARC's size suffix (RFC 7489 6.2, "mailto:a@example.com!10m") does
 *    not exist in TLSRPT. A "%" must start %HH.
 *  - mailto (RFC 6068): one addr-spec (commas are list separators here), a non-empty
 *    local part, one literal "@", a host name or [address literal]; "?" header
 *    fields allowed. https (RFC 7230 2.7.2): "https://", a non-empty host (name or
 *    [IP literal]), an optional numeric port up to 65535, no userinfo (2.7.1: "A sender
 *    MUST NOT generate the userinfo subcomponent"). Schemes are case-insensitive
 *    (RFC 3986 3.1).
 *  - Whitespace after the last field without a ";" is taken with a warning, as
 *    ststxt.h does; a repeated extension name is a warning.
 *
 * Functions return 0 or a negative code from common/err.h, as documented per function.
 */
#ifndef STS_TLSRPT_H
#define STS_TLSRPT_H

#include <stddef.h>

#include "sender/diag.h"

/* The two rua URI schemes RFC 8460 section 3 supports. */
#define STS_TLSRPT_SCHEMES(X)                                                                      \
    X(STS_TLSRPT_MAILTO, "mailto")                                                                 \
    X(STS_TLSRPT_HTTPS, "https")

typedef enum sts_tlsrpt_scheme {
#define STS_TLSRPT_SCHEME_ENUM(sym, name) sym,
    STS_TLSRPT_SCHEMES(STS_TLSRPT_SCHEME_ENUM)
#undef STS_TLSRPT_SCHEME_ENUM
} sts_tlsrpt_scheme;

/* "mailto" / "https"; "unknown" for anything else. */
const char *sts_tlsrpt_scheme_name(sts_tlsrpt_scheme s);
/* The scheme s[0..n) names, in any case (RFC 3986 3.1: "schemes are case-insensitive"):
 * 0 and *out, or STS_EINVAL for any other scheme. */
int sts_tlsrpt_scheme_parse(const char *s, size_t n, sts_tlsrpt_scheme *out);

typedef struct sts_tlsrpt_rua {
    sts_tlsrpt_scheme scheme;
    char *uri; /* the URI as written, scheme included: "mailto:tlsrpt@example.com" */
} sts_tlsrpt_rua;

typedef struct sts_tlsrpt_ext {
    char *name;
    char *value;
} sts_tlsrpt_ext;

typedef struct sts_tlsrpt {
    char version[12]; /* "TLSRPTv1" */
    size_t nrua;      /* >= 1 when parsed: every supported URI of every rua, in order */
    sts_tlsrpt_rua *rua;
    size_t next; /* extension fields, in record order */
    sts_tlsrpt_ext *ext;
} sts_tlsrpt;

/* The owner name of domain's record, "_smtp._tls.<domain>" (one trailing dot of domain
 * dropped), into out[outlen]. 0, STS_EINVAL (empty domain) or STS_ETOOBIG (the name is
 * over 253 characters or does not fit). */
int sts_tlsrpt_record_name(const char *domain, char *out, size_t outlen);

/* 1 when the record begins with "v=TLSRPTv1" followed by ";", whitespace or its end
 * (RFC 8460 3: "records that do not begin with "v=TLSRPTv1;" are discarded"; the ABNF's
 * field-delim lets whitespace stand before the ";"), else 0. */
int sts_tlsrpt_is_tlsrpt(const char *rec, size_t len);

/* Parse one record of len bytes, the concatenation of its character-strings (RFC 8460
 * 3: "treated as if those strings are concatenated without adding spaces"); NUL bytes
 * are an error. Every problem goes to diags (line 1, byte column). Returns 0 and fills
 * *out (release with sts_tlsrpt_free), STS_ESYNTAX when the record is invalid (*out
 * zeroed, nothing to free), or STS_ENOMEM. */
int sts_tlsrpt_parse(const char *rec, size_t len, sts_tlsrpt *out, sts_diags *diags);
void sts_tlsrpt_free(sts_tlsrpt *r);

/* RFC 8460 3 over all TXT records found at _smtp._tls.<domain>: records not beginning
 * with v=TLSRPTv1 are discarded; "If the number of resulting records is not one,
 * senders MUST assume the recipient domain does not implement TLSRPT", and an invalid
 * one names no place to report to. records[i] has lens[i] bytes (lens NULL:
 * NUL-terminated strings). Returns 0 and fills *out (sts_tlsrpt_free it), or, meaning
 * "no reporting":
 *   STS_ENOTFOUND  no record begins with v=TLSRPTv1
 *   STS_EINVAL     more than one record begins with v=TLSRPTv1
 *   STS_ESYNTAX    the one TLSRPT record is invalid (diags has why)
 *   STS_ENOMEM
 * `why` (may be NULL) gets a one-line explanation for the transcript, e.g.
 * "2 TXT records begin with v=TLSRPTv1: no reporting (RFC 8460 3 requires exactly one)". */
int sts_tlsrpt_select(const char *const *records, const size_t *lens, size_t n, sts_tlsrpt *out,
                      sts_diags *diags, char *why, size_t whylen);

#endif
