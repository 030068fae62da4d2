/*
 * rptmsg.c - a received TLS report as JSON text, whatever it came in (rptmsg.h): gzip
 * through zlib, mail messages through a small MIME reader over length-delimited slices
 * (nothing here reads past the end of its input). Functions return 0 or a negative
 * code from common/err.h.
 */
#include "common/rptmsg.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "common/err.h"

#define MIME_DEPTH_MAX 8

const char *sts_rptmsg_form_name(sts_rptmsg_form f)
{
    switch (f) {
    case STS_RPTMSG_JSON:
        return "json";
    case STS_RPTMSG_GZIP:
        return "gzip";
    case STS_RPTMSG_MESSAGE:
        return "message";
    }
    return "unknown";
}

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* ---- gzip ------------------------------------------------------------------------- */

static int is_gzip(const char *p, size_t n)
{
    return n >= 2 && (unsigned char)p[0] == 0x1f && (unsigned char)p[1] == 0x8b;
}

static int gunzip(const char *in, size_t len, sts_buf *out, char *err, size_t errlen)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, 16 + MAX_WBITS) != Z_OK)
        return fail(err, errlen, STS_ENOMEM, "out of memory (zlib)");
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)(len > UINT32_MAX ? UINT32_MAX : len);
    int rc = 0, zrc;
    char chunk[16384];
    do {
        z.next_out = (Bytef *)chunk;
        z.avail_out = sizeof(chunk);
        zrc = inflate(&z, Z_NO_FLUSH);
        if (zrc != Z_OK && zrc != Z_STREAM_END) {
            rc = fail(err, errlen, zrc == Z_MEM_ERROR ? STS_ENOMEM : STS_ESYNTAX,
                      "corrupt gzip stream: %s", z.msg ? z.msg : "truncated");
            break;
        }
        size_t got = sizeof(chunk) - z.avail_out;
        if (out->len + got > STS_RPTMSG_MAX) {
            rc = fail(err, errlen, STS_ETOOBIG,
                      "the report is larger than %d bytes once "
                      "decompressed",
                      STS_RPTMSG_MAX);
            break;
        }
        if ((rc = sts_buf_append(out, chunk, got)) != 0) {
            fail(err, errlen, rc, "out of memory");
            break;
        }
        if (zrc == Z_OK && got == 0 && z.avail_in == 0) {
            rc = fail(err, errlen, STS_ESYNTAX, "corrupt gzip stream: truncated");
            break;
        }
    } while (zrc != Z_STREAM_END);
    inflateEnd(&z);
    return rc;
}

int sts_rptmsg_gzip(const char *in, size_t len, sts_buf *out)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (deflateInit2(&z, Z_BEST_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK)
        return STS_ENOMEM;
    z.next_in = (Bytef *)(uintptr_t)in;
    z.avail_in = (uInt)len;
    int rc = 0, zrc;
    char chunk[16384];
    do {
        z.next_out = (Bytef *)chunk;
        z.avail_out = sizeof(chunk);
        zrc = deflate(&z, Z_FINISH);
        if (zrc == Z_STREAM_ERROR) {
            rc = STS_ENOMEM;
            break;
        }
        if ((rc = sts_buf_append(out, chunk, sizeof(chunk) - z.avail_out)) != 0)
            break;
    } while (zrc != Z_STREAM_END);
    deflateEnd(&z);
    return rc;
}

/* ---- MIME ------------------------------------------------------------------------- */

/* A slice of the input. */
typedef struct slice {
    const char *p;
    size_t n;
} slice;

/* The header fields a part needs, unfolded. */
typedef struct part_head {
    char type[128];     /* "multipart/report", lower case; "" when absent */
    char boundary[128]; /* the multipart boundary */
    char name[256];     /* filename= of Content-Disposition, or name= of Content-Type */
    char encoding[32];  /* Content-Transfer-Encoding, lower case */
    /* the top-level fields RFC 8460 5.3 names (unfolded, leading blanks dropped) */
    char report_type[64]; /* report-type= of Content-Type, lower case */
    char subject[512];
    char report_domain[256];    /* TLS-Report-Domain */
    char report_submitter[256]; /* TLS-Report-Submitter */
    int has_subject, has_report_domain, has_report_submitter;
} part_head;

/* The next line of s from *off: its content (without CRLF/LF) in *line; 0 at the end. */
static int next_line(slice s, size_t *off, slice *line)
{
    if (*off >= s.n)
        return 0;
    const char *start = s.p + *off;
    const char *lf = memchr(start, '\n', s.n - *off);
    size_t len = lf ? (size_t)(lf - start) : s.n - *off;
    *off += len + (lf ? 1 : 0);
    if (len && start[len - 1] == '\r')
        len--;
    *line = (slice){start, len};
    return 1;
}

/* A header field name followed by ":" (RFC 5322 2.2, ftext = %d33-57 / %d59-126). */
static size_t field_name_len(slice l)
{
    size_t i = 0;
    while (i < l.n && l.p[i] >= 33 && l.p[i] <= 126 && l.p[i] != ':')
        i++;
    return i > 0 && i < l.n && l.p[i] == ':' ? i : 0;
}

static void lower_copy(char *dst, size_t dstlen, const char *src, size_t n)
{
    size_t i;
    for (i = 0; i < n && i + 1 < dstlen; i++)
        dst[i] = (char)tolower((unsigned char)src[i]);
    dst[i] = '\0';
}

/* The value of parameter pname in a header value v ("; name=value" or name="value"). */
static void param(const char *v, const char *pname, char *out, size_t outlen)
{
    out[0] = '\0';
    size_t pl = strlen(pname);
    for (const char *p = strchr(v, ';'); p; p = strchr(p + 1, ';')) {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (strncasecmp(q, pname, pl) || q[pl] != '=')
            continue;
        q += pl + 1;
        size_t i = 0;
        if (*q == '"') {
            q++;
            while (*q && *q != '"' && i + 1 < outlen) {
                if (*q == '\\' && q[1])
                    q++;
                out[i++] = *q++;
            }
        } else {
            while (*q && *q != ';' && *q != ' ' && *q != '\t' && i + 1 < outlen)
                out[i++] = *q++;
        }
        out[i] = '\0';
        return;
    }
}

/* Read the header of s: its fields into *h, the body into *body. */
static void read_head(slice s, part_head *h, slice *body)
{
    memset(h, 0, sizeof(*h));
    size_t off = 0;
    slice l;
    char value[1024], which[32] = "";
    size_t vlen = 0;
    for (;;) {
        size_t before = off;
        int more = next_line(s, &off, &l);
        int cont = more && l.n && (l.p[0] == ' ' || l.p[0] == '\t');
        if (cont) {
            for (size_t i = 0; i < l.n && vlen + 1 < sizeof(value); i++)
                value[vlen++] = l.p[i];
            continue;
        }
        /* The field collected so far is complete. */
        value[vlen] = '\0';
        if (!strcmp(which, "content-type")) {
            size_t i = 0;
            while (value[i] == ' ' || value[i] == '\t')
                i++;
            size_t j = i;
            while (value[j] && value[j] != ';' && value[j] != ' ' && value[j] != '\t')
                j++;
            lower_copy(h->type, sizeof(h->type), value + i, j - i);
            param(value, "boundary", h->boundary, sizeof(h->boundary));
            char rt[64];
            param(value, "report-type", rt, sizeof(rt));
            lower_copy(h->report_type, sizeof(h->report_type), rt, strlen(rt));
            if (!h->name[0])
                param(value, "name", h->name, sizeof(h->name));
        } else if (!strcmp(which, "content-disposition")) {
            char fn[256];
            param(value, "filename", fn, sizeof(fn));
            if (fn[0])
                snprintf(h->name, sizeof(h->name), "%s", fn);
        } else if (!strcmp(which, "content-transfer-encoding")) {
            size_t i = 0;
            while (value[i] == ' ' || value[i] == '\t')
                i++;
            size_t j = i;
            while (value[j] && value[j] != ' ' && value[j] != '\t' && value[j] != ';')
                j++;
            lower_copy(h->encoding, sizeof(h->encoding), value + i, j - i);
        } else if (!strcmp(which, "subject") || !strcmp(which, "tls-report-domain") ||
                   !strcmp(which, "tls-report-submitter")) {
            const char *v = value;
            while (*v == ' ' || *v == '\t')
                v++;
            size_t n = strlen(v);
            while (n && (v[n - 1] == ' ' || v[n - 1] == '\t'))
                n--;
            char *dst = which[0] == 's'    ? h->subject
                        : which[11] == 'd' ? h->report_domain
                                           : h->report_submitter;
            size_t cap = which[0] == 's' ? sizeof(h->subject) : sizeof(h->report_domain);
            snprintf(dst, cap, "%.*s", (int)n, v);
            *(which[0] == 's'    ? &h->has_subject
              : which[11] == 'd' ? &h->has_report_domain
                                 : &h->has_report_submitter) += 1;
        }
        which[0] = '\0';
        vlen = 0;
        if (!more || l.n == 0) {
            *body = more ? (slice){s.p + off, s.n - off} : (slice){s.p + s.n, 0};
            return;
        }
        size_t nl = field_name_len(l);
        if (!nl) {
            /* Not a header line: the body starts here (a part without a header). */
            *body = (slice){s.p + before, s.n - before};
            return;
        }
        lower_copy(which, sizeof(which), l.p, nl);
        for (size_t i = nl + 1; i < l.n && vlen + 1 < sizeof(value); i++)
            value[vlen++] = l.p[i];
    }
}

static int b64_val(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decode body by its transfer encoding into out. */
static int decode_body(const part_head *h, slice body, sts_buf *out, char *err, size_t errlen)
{
    int rc = 0;
    if (!strcmp(h->encoding, "base64")) {
        unsigned acc = 0;
        int bits = 0, pad = 0;
        for (size_t i = 0; i < body.n && !rc; i++) {
            unsigned char c = (unsigned char)body.p[i];
            if (c == '\r' || c == '\n' || c == ' ' || c == '\t')
                continue;
            if (c == '=') {
                pad = 1;
                continue;
            }
            int v = b64_val(c);
            if (v < 0 || pad)
                return fail(err, errlen, STS_ESYNTAX,
                            "the report part's base64 has a stray character (0x%02x)", c);
            acc = (acc << 6) | (unsigned)v;
            bits += 6;
            if (bits >= 8) {
                bits -= 8;
                char byte = (char)((acc >> bits) & 0xff);
                rc = sts_buf_append(out, &byte, 1);
            }
        }
    } else if (!strcmp(h->encoding, "quoted-printable")) {
        for (size_t i = 0; i < body.n && !rc; i++) {
            char c = body.p[i];
            if (c == '=') {
                if (i + 1 < body.n && body.p[i + 1] == '\n') {
                    i++;
                    continue;
                }
                if (i + 2 < body.n && body.p[i + 1] == '\r' && body.p[i + 2] == '\n') {
                    i += 2;
                    continue;
                }
                int hi = i + 2 < body.n ? hexval((unsigned char)body.p[i + 1]) : -1;
                int lo = i + 2 < body.n ? hexval((unsigned char)body.p[i + 2]) : -1;
                if (hi < 0 || lo < 0)
                    return fail(err, errlen, STS_ESYNTAX,
                                "the report part's quoted-printable has a bad =XX escape");
                c = (char)(hi * 16 + lo);
                i += 2;
            }
            rc = sts_buf_append(out, &c, 1);
        }
    } else if (!h->encoding[0] || !strcmp(h->encoding, "7bit") || !strcmp(h->encoding, "8bit") ||
               !strcmp(h->encoding, "binary")) {
        rc = sts_buf_append(out, body.p, body.n);
    } else {
        return fail(err, errlen, STS_ESYNTAX,
                    "the report part has an unknown "
                    "Content-Transfer-Encoding '%s'",
                    h->encoding);
    }
    if (rc == STS_ETOOBIG)
        return fail(err, errlen, rc, "the report part is larger than %d bytes", STS_RPTMSG_MAX);
    return rc ? fail(err, errlen, rc, "out of memory") : 0;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcasecmp(s + a - b, suffix);
}

/* Is the part with head h the report (RFC 8460 5.3 media types, or its file name)? */
static int is_report_part(const part_head *h)
{
    return !strcmp(h->type, "application/tlsrpt+gzip") || !strcmp(h->type, "application/gzip") ||
           !strcmp(h->type, "application/tlsrpt+json") || !strcmp(h->type, "application/json") ||
           ends_with(h->name, ".json.gz") || ends_with(h->name, ".json");
}

static int find_report(slice s, int depth, sts_buf *out, part_head *found, char *err,
                       size_t errlen);

/* The parts of a multipart body (RFC 2046 5.1.1): delimiter lines "--boundary", the
 * last one "--boundary--"; the preamble and epilogue are ignored. */
static int find_in_multipart(const part_head *h, slice body, int depth, sts_buf *out,
                             part_head *found, char *err, size_t errlen)
{
    if (!h->boundary[0])
        return fail(err, errlen, STS_ESYNTAX, "a %s part without a boundary parameter", h->type);
    size_t bl = strlen(h->boundary), off = 0;
    const char *part_start = NULL;
    slice l;
    int closed = 0;
    for (;;) {
        size_t line_at = off;
        if (!next_line(body, &off, &l))
            break;
        if (l.n < bl + 2 || l.p[0] != '-' || l.p[1] != '-' || memcmp(l.p + 2, h->boundary, bl))
            continue;
        /* RFC 2046 5.1.1: "--" boundary ["--"] and then only white space. */
        int last = l.n >= bl + 4 && l.p[bl + 2] == '-' && l.p[bl + 3] == '-';
        size_t rest = bl + 2 + (last ? 2 : 0);
        while (rest < l.n && (l.p[rest] == ' ' || l.p[rest] == '\t'))
            rest++;
        if (rest != l.n)
            continue; /* "--b1x" is not a delimiter of boundary "b1" */
        if (part_start) {
            /* The CRLF before a delimiter belongs to the delimiter. */
            const char *end = body.p + line_at;
            if (end > part_start && end[-1] == '\n')
                end--;
            if (end > part_start && end[-1] == '\r')
                end--;
            int rc = find_report((slice){part_start, (size_t)(end - part_start)}, depth + 1, out,
                                 found, err, errlen);
            if (rc != STS_ENOTFOUND)
                return rc;
        }
        if (last) {
            closed = 1;
            break;
        }
        part_start = body.p + off;
    }
    if (!closed && !part_start)
        return fail(err, errlen, STS_ESYNTAX, "a %s part whose boundary '%.60s' never appears",
                    h->type, h->boundary);
    if (!closed) /* no closing delimiter: the last part runs to the end */
        return find_report((slice){part_start, (size_t)(body.p + body.n - part_start)}, depth + 1,
                           out, found, err, errlen);
    return STS_ENOTFOUND;
}

/* Search the entity s (header and body) for the report: 0 (out filled), STS_ENOTFOUND
 * (not in this entity), or an error. */
static int find_report(slice s, int depth, sts_buf *out, part_head *found, char *err, size_t errlen)
{
    if (depth > MIME_DEPTH_MAX)
        return fail(err, errlen, STS_ESYNTAX, "multipart nested deeper than %d levels",
                    MIME_DEPTH_MAX);
    part_head h;
    slice body;
    read_head(s, &h, &body);
    if (!strncmp(h.type, "multipart/", 10))
        return find_in_multipart(&h, body, depth, out, found, err, errlen);
    if (!is_report_part(&h))
        return STS_ENOTFOUND;
    if (found)
        *found = h;
    sts_buf raw;
    sts_buf_init(&raw, STS_RPTMSG_MAX);
    int rc = decode_body(&h, body, &raw, err, errlen);
    if (!rc) {
        if (is_gzip(raw.data, raw.len))
            rc = gunzip(raw.data, raw.len, out, err, errlen);
        else if (strstr(h.type, "gzip") || ends_with(h.name, ".gz"))
            rc = fail(err, errlen, STS_ESYNTAX, "the report part (%s%s%s) is not gzip data",
                      h.type[0] ? h.type : "no type", h.name[0] ? ", " : "", h.name);
        else
            rc = sts_buf_append(out, raw.data ? raw.data : "", raw.len);
    }
    sts_buf_free(&raw);
    return rc;
}

int sts_rptmsg_decode(const char *in, size_t len, sts_buf *out, sts_rptmsg_form *form, char *err,
                      size_t errlen)
{
    sts_buf_reset(out);
    out->max = STS_RPTMSG_MAX;
    if (err && errlen)
        err[0] = '\0';
    if (is_gzip(in, len)) {
        *form = STS_RPTMSG_GZIP;
        return gunzip(in, len, out, err, errlen);
    }
    size_t i = 0;
    while (i < len && (in[i] == ' ' || in[i] == '\t' || in[i] == '\r' || in[i] == '\n'))
        i++;
    if (i < len && in[i] == '{') {
        *form = STS_RPTMSG_JSON;
        if (len > STS_RPTMSG_MAX)
            return fail(err, errlen, STS_ETOOBIG, "the report is larger than %d bytes",
                        STS_RPTMSG_MAX);
        int rc = sts_buf_append(out, in, len);
        return rc ? fail(err, errlen, rc, "out of memory") : 0;
    }
    slice s = {in, len}, first;
    size_t off = 0;
    if (next_line(s, &off, &first) && field_name_len(first)) {
        *form = STS_RPTMSG_MESSAGE;
        int rc = find_report(s, 0, out, NULL, err, errlen);
        if (rc == STS_ENOTFOUND)
            return fail(err, errlen, STS_ESYNTAX,
                        "a mail message without a report part (RFC 8460 5.3: "
                        "application/tlsrpt+gzip or application/tlsrpt+json)");
        return rc;
    }
    *form = STS_RPTMSG_JSON;
    return fail(err, errlen, STS_ESYNTAX,
                "neither JSON (it would begin with '{'), gzip (1f 8b) nor a mail message "
                "(header fields)");
}

int sts_rptmsg_read_head(const char *in, size_t len, sts_rptmsg_head *out)
{
    memset(out, 0, sizeof(*out));
    slice s = {in, len}, body;
    part_head top, found;
    read_head(s, &top, &body);
    snprintf(out->content_type, sizeof(out->content_type), "%s", top.type);
    snprintf(out->report_type, sizeof(out->report_type), "%s", top.report_type);
    snprintf(out->subject, sizeof(out->subject), "%s", top.subject);
    snprintf(out->report_domain, sizeof(out->report_domain), "%s", top.report_domain);
    snprintf(out->report_submitter, sizeof(out->report_submitter), "%s", top.report_submitter);
    out->has_subject = top.has_subject;
    out->has_report_domain = top.has_report_domain;
    out->has_report_submitter = top.has_report_submitter;
    sts_buf report;
    sts_buf_init(&report, STS_RPTMSG_MAX);
    memset(&found, 0, sizeof(found));
    char err[256];
    int rc = find_report(s, 0, &report, &found, err, sizeof(err));
    sts_buf_free(&report);
    if (rc == 0 || found.type[0] || found.name[0]) {
        snprintf(out->part_type, sizeof(out->part_type), "%s", found.type);
        snprintf(out->part_encoding, sizeof(out->part_encoding), "%s", found.encoding);
        snprintf(out->part_name, sizeof(out->part_name), "%s", found.name);
        out->has_part = 1;
    }
    return rc == STS_ENOTFOUND ? 0 : rc;
}
