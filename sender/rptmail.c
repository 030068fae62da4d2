/*
 * rptmail.c - the RFC 8460 5.3 report message and its DKIM signature (rptmail.h).
 * Returns 0 or a negative code from common/err.h with a reason, as rptmail.h says.
 */
#include "sender/rptmail.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <dkim.h>

#include "common/err.h"

const char *const sts_rptmail_signed_headers[] = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "content-type",
    "tls-report-domain",
    "tls-report-submitter",
    NULL,
};

#define B64_LINE 76

static int field_ok(const char *what, const char *v, char *err, size_t errlen)
{
    if (!v || !*v) {
        snprintf(err, errlen, "report message: no %s", what);
        return STS_EINVAL;
    }
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        if (*p < 0x20 || *p >= 0x7f) {
            snprintf(err, errlen, "report message: %s '%s' has a control or non-ASCII octet", what,
                     v);
            return STS_EINVAL;
        }
    return 0;
}

static int append_base64(sts_buf *out, const unsigned char *p, size_t n)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    char line[B64_LINE + 2];
    size_t l = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        line[l++] = tab[(v >> 18) & 63];
        line[l++] = tab[(v >> 12) & 63];
        line[l++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        line[l++] = i + 2 < n ? tab[v & 63] : '=';
        if (l == B64_LINE || i + 3 >= n) {
            line[l++] = '\r';
            line[l++] = '\n';
            if (sts_buf_append(out, line, l))
                return STS_ENOMEM;
            l = 0;
        }
    }
    return 0;
}

int sts_rptmail_build(const sts_rptmail *m, sts_buf *out, char *err, size_t errlen)
{
    int rc;
    if ((rc = field_ok("From address", m->from, err, errlen)) ||
        (rc = field_ok("To address", m->to, err, errlen)) ||
        (rc = field_ok("policy domain", m->policy_domain, err, errlen)) ||
        (rc = field_ok("submitter", m->submitter, err, errlen)) ||
        (rc = field_ok("report id", m->report_id, err, errlen)) ||
        (rc = field_ok("file name", m->filename, err, errlen)) ||
        (rc = field_ok("unique part", m->unique, err, errlen)))
        return rc;
    if (strchr(m->filename, '"') || strchr(m->filename, '\\')) {
        snprintf(err, errlen, "report message: file name '%s' has a quote or backslash",
                 m->filename);
        return STS_EINVAL;
    }
    if (!m->gz || !m->gzlen) {
        snprintf(err, errlen, "report message: no report to attach");
        return STS_EINVAL;
    }
    char date[64];
    struct tm tm;
    gmtime_r(&m->date, &tm);
    /* RFC 5322 3.3, in English whatever the locale. */
    static const char *const wd[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const mo[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    snprintf(date, sizeof(date), "%s, %02d %s %04d %02d:%02d:%02d +0000", wd[tm.tm_wday],
             tm.tm_mday, mo[tm.tm_mon], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
    char boundary[200];
    snprintf(boundary, sizeof(boundary), "tlsrpt=_%s", m->unique);
    if (sts_buf_appendf(out,
                        "From: %s\r\n"
                        "To: %s\r\n"
                        "Date: %s\r\n"
                        "Message-ID: <tlsrpt.%s@%s>\r\n"
                        /* folded (RFC 5322 2.2.3: 78 characters a line);
                         * unfolded it is exactly RFC 8460 5.3's subject */
                        "Subject: Report Domain: %s\r\n Submitter: %s\r\n Report-ID: <%s>\r\n"
                        "TLS-Report-Domain: %s\r\n"
                        "TLS-Report-Submitter: %s\r\n"
                        "MIME-Version: 1.0\r\n"
                        "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
                        "\tboundary=\"%s\"\r\n"
                        "\r\n"
                        "This is a TLS report (RFC 8460) in a MIME message.\r\n"
                        "\r\n"
                        "--%s\r\n"
                        "Content-Type: text/plain; charset=us-ascii\r\n"
                        "Content-Transfer-Encoding: 7bit\r\n"
                        "\r\n"
                        "This is an aggregate TLS report (RFC 8460) from %s\r\n"
                        "for the policy domain %s. The report is attached,\r\n"
                        "JSON compressed with gzip, as\r\n"
                        "%s\r\n"
                        "Report-ID: <%s>\r\n"
                        "\r\n"
                        "--%s\r\n"
                        "Content-Type: application/tlsrpt+gzip\r\n"
                        "Content-Transfer-Encoding: base64\r\n"
                        "Content-Disposition: attachment;\r\n"
                        "\tfilename=\"%s\"\r\n"
                        "\r\n",
                        m->from, m->to, date, m->unique, m->submitter, m->policy_domain,
                        m->submitter, m->report_id, m->policy_domain, m->submitter, boundary,
                        boundary, m->submitter, m->policy_domain, m->filename, m->report_id,
                        boundary, m->filename) ||
        append_base64(out, m->gz, m->gzlen) || sts_buf_appendf(out, "\r\n--%s--\r\n", boundary))
        return STS_ENOMEM;
    return 0;
}

/* 0 when pem[0..len) is an unencrypted PEM RSA private key of at least 1024 bits, else
 * STS_EINVAL with err saying what it is ("WHAT: ..."). */
static int key_check(const char *what, const void *pem, size_t len, char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(pem ? pem : "", (int)len);
    EVP_PKEY *k = bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!k) {
        snprintf(err, errlen,
                 "%s: not a PEM private key (unencrypted, BEGIN RSA PRIVATE KEY or BEGIN "
                 "PRIVATE KEY)",
                 what);
        return STS_EINVAL;
    }
    int type = EVP_PKEY_base_id(k), bits = EVP_PKEY_bits(k);
    EVP_PKEY_free(k);
    if (type != EVP_PKEY_RSA) {
        snprintf(err, errlen, "%s: not an RSA key (rsa-sha256 signs with RSA)", what);
        return STS_EINVAL;
    }
    if (bits < 1024) {
        snprintf(err, errlen, "%s: a %d-bit RSA key (RFC 8301: at least 1024)", what, bits);
        return STS_EINVAL;
    }
    return 0;
}

int sts_rptmail_load_key(const char *path, sts_buf *pem, char *err, size_t errlen)
{
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        snprintf(err, errlen, "--dkim-key %s: %s", path, strerror(errno));
        return STS_EIO;
    }
    char chunk[4096];
    size_t n;
    int rc = 0;
    while ((n = fread(chunk, 1, sizeof(chunk), fp)) > 0)
        if (pem->len + n > 65536 || sts_buf_append(pem, chunk, n)) {
            snprintf(err, errlen, "--dkim-key %s: larger than 64 KiB: not a PEM key", path);
            rc = STS_EINVAL;
            break;
        }
    if (!rc && ferror(fp)) {
        snprintf(err, errlen, "--dkim-key %s: %s", path, strerror(errno));
        rc = STS_EIO;
    }
    fclose(fp);
    if (rc)
        return rc;
    char what[PATH_MAX + 16];
    snprintf(what, sizeof(what), "--dkim-key %s", path);
    if ((rc = key_check(what, pem->data, pem->len, err, errlen)))
        return rc;
    /* libopendkim reads a NUL-terminated key. */
    if (sts_buf_append(pem, "", 1))
        return STS_ENOMEM;
    pem->len--;
    return 0;
}

int sts_rptmail_selector_ok(const char *sel)
{
    size_t label = 0, n = sel ? strlen(sel) : 0;
    if (!n || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)sel[i];
        if (c == '.') {
            if (!label || sel[i - 1] == '-')
                return 0;
            label = 0;
        } else if (isalnum(c) || (c == '-' && label)) {
            if (++label > 63)
                return 0;
        } else {
            return 0;
        }
    }
    return label > 0 && sel[n - 1] != '-';
}

/* The end of the header field starting at p (its CRLF not followed by WSP). */
static const char *field_end(const char *p, const char *end)
{
    for (const char *q = p; q + 1 < end; q++)
        if (q[0] == '\r' && q[1] == '\n' && (q + 2 >= end || (q[2] != ' ' && q[2] != '\t')))
            return q;
    return NULL;
}

static int dkim_fail(DKIM *d, DKIM_STAT st, const char *what, char *err, size_t errlen)
{
    const char *why = d ? dkim_geterror(d) : NULL;
    snprintf(err, errlen, "DKIM signing: %s: %s%s%s", what, dkim_getresultstr(st),
             why && *why ? ": " : "", why && *why ? why : "");
    return STS_EINVAL;
}

int sts_rptmail_sign(const char *msg, size_t len, const char *key, size_t keylen,
                     const char *selector, const char *domain, sts_buf *sig, char *err,
                     size_t errlen)
{
    /* Checked here, not by libopendkim, whose failed key load leaks. */
    int krc = key_check("DKIM signing: the key", key, keylen, err, errlen);
    if (krc)
        return krc;
    if (!sts_rptmail_selector_ok(selector)) {
        snprintf(err, errlen,
                 "DKIM selector '%s' is not dot-separated DNS labels "
                 "(RFC 6376 3.1)",
                 selector ? selector : "");
        return STS_EINVAL;
    }
    const char *end = msg + len;
    const char *sep = NULL;
    for (const char *q = msg; q + 3 < end; q++)
        if (!memcmp(q, "\r\n\r\n", 4)) {
            sep = q;
            break;
        }
    if (!sep) {
        snprintf(err, errlen, "DKIM signing: the message has no empty line after its headers");
        return STS_EINVAL;
    }
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    if (!lib) {
        snprintf(err, errlen, "DKIM signing: dkim_init failed");
        return STS_EIO;
    }
    int rc = 0;
    DKIM *d = NULL;
    DKIM_STAT st;
    /* The option takes the NULL-terminated array itself, its size that of a char **. */
    st = dkim_options(lib, DKIM_OP_SETOPT, DKIM_OPTS_SIGNHDRS, (void *)sts_rptmail_signed_headers,
                      sizeof(char **));
    if (st != DKIM_STAT_OK) {
        rc = dkim_fail(NULL, st, "setting the headers to sign", err, errlen);
        goto out;
    }
    d = dkim_sign(lib, (const unsigned char *)"tlsrpt", NULL, (dkim_sigkey_t)key,
                  (const unsigned char *)selector, (const unsigned char *)domain,
                  DKIM_CANON_RELAXED, DKIM_CANON_RELAXED, DKIM_SIGN_RSASHA256, -1, &st);
    if (!d) {
        rc = dkim_fail(NULL, st, "the key, selector or domain", err, errlen);
        goto out;
    }
    /* Header fields one by one, without their final CRLF (folds kept). */
    for (const char *p = msg; p < sep + 2;) {
        const char *fe = field_end(p, sep + 2);
        if (!fe)
            break;
        if ((st = dkim_header(d, (unsigned char *)p, (size_t)(fe - p))) != DKIM_STAT_OK) {
            rc = dkim_fail(d, st, "a header field", err, errlen);
            goto out;
        }
        p = fe + 2;
    }
    if ((st = dkim_eoh(d)) != DKIM_STAT_OK) {
        rc = dkim_fail(d, st, "the end of the headers", err, errlen);
        goto out;
    }
    if ((st = dkim_body(d, (unsigned char *)sep + 4, (size_t)(end - (sep + 4)))) != DKIM_STAT_OK) {
        rc = dkim_fail(d, st, "the body", err, errlen);
        goto out;
    }
    if ((st = dkim_eom(d, NULL)) != DKIM_STAT_OK) {
        rc = dkim_fail(d, st, "signing (the key?)", err, errlen);
        goto out;
    }
    unsigned char *hdr = NULL;
    size_t hlen = 0;
    if ((st = dkim_getsighdr_d(d, strlen(DKIM_SIGNHEADER ": "), &hdr, &hlen)) != DKIM_STAT_OK) {
        rc = dkim_fail(d, st, "the signature header", err, errlen);
        goto out;
    }
    /* Folded with bare LF by the library: make every line end CRLF. */
    if (sts_buf_appendf(sig, "%s: ", DKIM_SIGNHEADER)) {
        rc = STS_ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < hlen && !rc; i++) {
        if (hdr[i] == '\r')
            continue;
        if (hdr[i] == '\n')
            rc = sts_buf_append(sig, "\r\n", 2) ? STS_ENOMEM : 0;
        else
            rc = sts_buf_append(sig, &hdr[i], 1) ? STS_ENOMEM : 0;
    }
    if (!rc && sts_buf_append(sig, "\r\n", 2))
        rc = STS_ENOMEM;
out:
    if (d)
        dkim_free(d);
    dkim_close(lib);
    return rc;
}
