/*
 * rptmsg.h - a received TLS report in the forms it travels in (RFC 8460 5): the JSON
 * text itself, gzip-compressed JSON (application/tlsrpt+gzip, the ".json.gz" file of
 * 5.3, an HTTPS POST body), or a whole mail message (5.3: multipart/report with the
 * report as an application/tlsrpt+gzip or application/tlsrpt+json part). Also gzip
 * writing for the reports ststest builds.
 *
 * What is recognised, in this order:
 *  - gzip: the magic bytes 1f 8b (RFC 1952 2.3.1);
 *  - JSON: the first byte that is not white space is "{";
 *  - a message: the input begins with a header field (RFC 5322 2.2: a name of printable
 *    characters other than ":" and space, then ":"). Its body, or the parts of a
 *    multipart body (RFC 2046 5.1, nested up to 8 levels), are searched for the first
 *    part whose Content-Type is application/tlsrpt+gzip, application/gzip,
 *    application/tlsrpt+json or application/json, or whose filename/name parameter ends
 *    in ".json.gz" or ".json"; its body is decoded by its Content-Transfer-Encoding
 *    (base64, quoted-printable, 7bit, 8bit, binary) and, when it is gzip, inflated.
 * Decompressed reports are capped at STS_RPTMSG_MAX bytes (a gzip bomb stops there).
 *
 * Functions return 0 or a negative code from common/err.h, as documented per function.
 */
#ifndef STS_RPTMSG_H
#define STS_RPTMSG_H

#include <stddef.h>

#include "common/buf.h"

/* The largest report text accepted after decompression. */
#define STS_RPTMSG_MAX (16 * 1024 * 1024)

typedef enum {
    STS_RPTMSG_JSON = 0,    /* the input was the JSON text */
    STS_RPTMSG_GZIP = 1,    /* gzip of the JSON text */
    STS_RPTMSG_MESSAGE = 2, /* a mail message carrying the report */
} sts_rptmsg_form;

/* "json", "gzip", "message". */
const char *sts_rptmsg_form_name(sts_rptmsg_form f);

/* The JSON text of the report in in[0..len) into *out (cleared first; NUL-terminated,
 * sts_buf_free it), its form into *form. Returns 0, or with err[errlen] saying why:
 *   STS_ESYNTAX  not one of the forms above, a message without a report part, a broken
 *                multipart structure or transfer encoding, a corrupt gzip stream
 *   STS_ETOOBIG  the report is larger than STS_RPTMSG_MAX once decompressed
 *   STS_ENOMEM */
int sts_rptmsg_decode(const char *in, size_t len, sts_buf *out, sts_rptmsg_form *form, char *err,
                      size_t errlen);

/* The header fields of a mail message that RFC 8460 5.3 names, and the head of its
 * report part (as sts_rptmsg_decode finds it). Fields absent are "" (lower-cased
 * where said). */
typedef struct sts_rptmsg_head {
    char content_type[128]; /* the message's media type, lower case ("multipart/report") */
    char report_type[64];   /* its report-type parameter, lower case ("tlsrpt") */
    char subject[512];
    char report_domain[256];                                  /* TLS-Report-Domain */
    char report_submitter[256];                               /* TLS-Report-Submitter */
    int has_subject, has_report_domain, has_report_submitter; /* times each field was given */
    int has_part;                                             /* a report part was found */
    char part_type[128];    /* its media type, lower case ("application/tlsrpt+gzip") */
    char part_encoding[32]; /* its Content-Transfer-Encoding, lower case */
    char part_name[256];    /* its file name (Content-Disposition filename=, or name=) */
} sts_rptmsg_head;

/* The head of the message in[0..len) into *out. Returns 0 (also when there is no
 * report part: has_part 0), or as sts_rptmsg_decode for a broken structure (out
 * keeps the top-level fields). */
int sts_rptmsg_read_head(const char *in, size_t len, sts_rptmsg_head *out);

/* gzip (RFC 1952) of in[0..len) appended to *out. 0, STS_ENOMEM or STS_ETOOBIG. */
int sts_rptmsg_gzip(const char *in, size_t len, sts_buf *out);

#endif
