/*
 * rptrecv.c - judging a received TLS report (rptrecv.h): decoding through
 * common/rptmsg, the strict RFC 8460 4.4 validation of common/rptjson, the 5.2/5.3
 * transport rules, and DKIM through libopendkim with keys from the world's zone.
 * The functions return new records, NULL only when out of memory.
 */
#include "fakedns/rptrecv.h"

#include <ctype.h>
#include <opendkim/dkim.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/rptjson.h"
#include "common/rptmsg.h"
#include "common/vocab.h"

/* RFC 8460 5.2 and 5.3: the media types of a report. */
#define MT_GZIP "application/tlsrpt+gzip"
#define MT_JSON "application/tlsrpt+json"

typedef struct judge {
    json_t *rec;
    json_t *findings;
    int errors, warnings, oom;
} judge;

static void finding(judge *j, int error, const char *name, const char *where, int line, int column,
                    const char *fmt, ...) __attribute__((format(printf, 7, 8)));

static void finding(judge *j, int error, const char *name, const char *where, int line, int column,
                    const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *f = json_pack("{s:s,s:s,s:s,s:s}", "severity", error ? "error" : "warning", "name",
                          name, "where", where, "message", msg);
    if (f && line > 0)
        json_object_set_new(f, "line", json_integer(line));
    if (f && column > 0)
        json_object_set_new(f, "column", json_integer(column));
    if (!f || json_array_append_new(j->findings, f))
        j->oom = 1;
    if (error)
        j->errors++;
    else
        j->warnings++;
}

static int judge_init(judge *j, const char *via, size_t len)
{
    memset(j, 0, sizeof(*j));
    j->findings = json_array();
    j->rec = json_pack("{s:s,s:I}", "via", via, "bytes", (json_int_t)len);
    if (!j->rec || !j->findings) {
        json_decref(j->rec);
        json_decref(j->findings);
        return -1;
    }
    return 0;
}

static json_t *judge_end(judge *j)
{
    json_object_set_new(j->rec, "valid", json_boolean(j->errors == 0));
    json_object_set_new(j->rec, "errors", json_integer(j->errors));
    json_object_set_new(j->rec, "warnings", json_integer(j->warnings));
    if (json_object_set_new(j->rec, "findings", j->findings) || j->oom) {
        json_decref(j->rec);
        return NULL;
    }
    return j->rec;
}

/* The report text: RFC 8460 4.4, strictly (common/rptjson). Keeps the parsed report,
 * its report-id and policy domains in the record. */
static void judge_report(judge *j, const char *text, size_t len)
{
    sts_rpt_findings f;
    sts_rpt_findings_init(&f);
    json_t *root = NULL;
    if (sts_rpt_validate_text(text, len, &f, &root) == STS_ENOMEM)
        j->oom = 1;
    for (size_t i = 0; i < f.n; i++) {
        const sts_rpt_finding *x = &f.items[i];
        finding(j, x->severity == STS_RPT_ERROR, "report", x->path, x->line, x->column, "%s",
                x->message);
    }
    if (f.ndropped)
        finding(j, 0, "report", "$", 0, 0, "%zu more findings not kept", f.ndropped);
    sts_rpt_findings_free(&f);
    json_t *rid = root ? json_object_get(root, "report-id") : NULL;
    if (json_is_string(rid))
        json_object_set(j->rec, "report_id", rid);
    json_t *domains = json_array();
    json_t *pols = root ? json_object_get(root, "policies") : NULL;
    size_t i;
    json_t *p;
    json_array_foreach(pols, i, p)
    {
        json_t *d = json_object_get(json_object_get(p, "policy"), "policy-domain");
        if (json_is_string(d) && domains)
            json_array_append(domains, d);
    }
    json_object_set_new(j->rec, "policy_domains", domains ? domains : json_array());
    if (root && len <= STS_RPTRECV_KEEP_MAX) {
        json_object_set_new(j->rec, "report", root);
    } else {
        json_object_set_new(j->rec, "report", json_null());
        if (root)
            json_object_set_new(j->rec, "report_dropped", json_integer((json_int_t)len));
        json_decref(root);
    }
}

/* Decode in as sts_rptmsg_decode does and judge the text; form into *form. */
static void judge_body(judge *j, const char *in, size_t len, sts_rptmsg_form *form)
{
    sts_buf text;
    sts_buf_init(&text, STS_RPTMSG_MAX);
    char err[256];
    int rc = sts_rptmsg_decode(in, len, &text, form, err, sizeof(err));
    if (rc) {
        finding(j, 1, "decode", "body", 0, 0, "%s", err);
        json_object_set_new(j->rec, "report", json_null());
        json_object_set_new(j->rec, "policy_domains", json_array());
    } else {
        judge_report(j, text.data ? text.data : "", text.len);
    }
    sts_buf_free(&text);
}

/* The media type of a Content-Type value, lower case, without parameters. */
static void media_type(const char *v, char *out, size_t outlen)
{
    while (*v == ' ' || *v == '\t')
        v++;
    size_t i = 0;
    for (; v[i] && v[i] != ';' && v[i] != ' ' && v[i] != '\t' && i + 1 < outlen; i++)
        out[i] = (char)tolower((unsigned char)v[i]);
    out[i] = '\0';
}

static int is_gzip(const char *p, size_t n)
{
    return n >= 2 && (unsigned char)p[0] == 0x1f && (unsigned char)p[1] == 0x8b;
}

json_t *sts_rptrecv_https(const char *content_type, const char *content_encoding, const char *body,
                          size_t len)
{
    judge j;
    if (judge_init(&j, "https", len))
        return NULL;
    char mt[128] = "";
    if (content_type)
        media_type(content_type, mt, sizeof(mt));
    int gz = is_gzip(body, len);
    json_object_set_new(j.rec, "content_type",
                        content_type ? json_string(content_type) : json_null());
    if (content_encoding)
        json_object_set_new(j.rec, "content_encoding", json_string(content_encoding));
    json_object_set_new(j.rec, "gzip", json_boolean(gz));
    /* RFC 8460 5.2: "application/tlsrpt+gzip" for the gzip-compressed report
     * (section 5.3's registration), "application/tlsrpt+json" for plain JSON. */
    if (!content_type)
        finding(&j, 1, "content-type", "Content-Type", 0, 0,
                "no Content-Type (RFC 8460 5.2: " MT_GZIP " or " MT_JSON ")");
    else if (strcmp(mt, MT_GZIP) && strcmp(mt, MT_JSON))
        finding(&j, 1, "content-type", "Content-Type", 0, 0,
                "Content-Type %s is not " MT_GZIP " or " MT_JSON " (RFC 8460 5.2)", mt);
    else if (!strcmp(mt, MT_GZIP) && !gz)
        finding(&j, 1, "not-gzip", "body", 0, 0,
                "Content-Type says " MT_GZIP " but the body is not gzip data");
    else if (!strcmp(mt, MT_JSON) && gz)
        finding(&j, 1, "not-gzip", "body", 0, 0,
                "Content-Type says " MT_JSON " but the body is gzip data");
    sts_rptmsg_form form;
    judge_body(&j, body, len, &form);
    if (form == STS_RPTMSG_MESSAGE)
        finding(&j, 1, "decode", "body", 0, 0, "a mail message was POSTed, not a report");
    return judge_end(&j);
}

/* ---- mail ---- */

/* RFC 8460 5.3: "Subject: Report Domain: D Submitter: S Report-ID: <ID>". */
static void judge_subject(judge *j, const sts_rptmsg_head *h)
{
    static const char a[] = "Report Domain: ", b[] = " Submitter: ", c[] = " Report-ID: ";
    const char *s = h->subject;
    const char *pb = strstr(s, b), *pc = pb ? strstr(pb + strlen(b), c) : NULL;
    if (strncmp(s, a, strlen(a)) || !pb || !pc) {
        finding(j, 1, "subject", "Subject", 0, 0,
                "subject '%.200s' is not 'Report Domain: D Submitter: S Report-ID: <ID>' "
                "(RFC 8460 5.3)",
                s);
        return;
    }
    char dom[256], sub[256], id[256];
    snprintf(dom, sizeof(dom), "%.*s", (int)(pb - s - strlen(a)), s + strlen(a));
    snprintf(sub, sizeof(sub), "%.*s", (int)(pc - pb - strlen(b)), pb + strlen(b));
    const char *ip = pc + strlen(c);
    size_t il = strlen(ip);
    if (il >= 2 && ip[0] == '<' && ip[il - 1] == '>') {
        ip++;
        il -= 2;
    }
    snprintf(id, sizeof(id), "%.*s", (int)il, ip);
    if (h->has_report_domain && strcasecmp(dom, h->report_domain))
        finding(j, 1, "subject", "Subject", 0, 0,
                "the subject's Report Domain %s is not the TLS-Report-Domain %s", dom,
                h->report_domain);
    if (h->has_report_submitter && strcasecmp(sub, h->report_submitter))
        finding(j, 1, "subject", "Subject", 0, 0,
                "the subject's Submitter %s is not the TLS-Report-Submitter %s", sub,
                h->report_submitter);
    const char *rid = json_string_value(json_object_get(j->rec, "report_id"));
    if (rid && strcmp(rid, id))
        finding(j, 1, "subject", "Subject", 0, 0,
                "the subject's Report-ID %s is not the report's report-id %s", id, rid);
}

/* The header fields of RFC 8460 5.3. */
static void judge_headers(judge *j, const sts_rptmsg_head *h)
{
    json_t *hd = json_object();
    if (hd) {
        json_object_set_new(hd, "content_type", json_string(h->content_type));
        json_object_set_new(hd, "report_type", json_string(h->report_type));
        json_object_set_new(hd, "tls_report_domain",
                            h->has_report_domain ? json_string(h->report_domain) : json_null());
        json_object_set_new(hd, "tls_report_submitter",
                            h->has_report_submitter ? json_string(h->report_submitter)
                                                    : json_null());
        json_object_set_new(hd, "subject", h->has_subject ? json_string(h->subject) : json_null());
        json_object_set_new(hd, "report_part_type", json_string(h->part_type));
        json_object_set_new(j->rec, "headers", hd);
    }
    json_object_set_new(j->rec, "content_type", json_string(h->content_type));
    if (strcmp(h->content_type, "multipart/report"))
        finding(j, 1, "message-type", "Content-Type", 0, 0,
                "the message is %s, not multipart/report (RFC 8460 5.3)",
                h->content_type[0] ? h->content_type : "without a Content-Type");
    else if (strcmp(h->report_type, "tlsrpt"))
        finding(j, 1, "report-type", "Content-Type", 0, 0,
                "report-type is '%s', not tlsrpt (RFC 8460 5.3)", h->report_type);
    if (h->has_report_domain != 1)
        finding(j, 1, "tls-report-domain", "TLS-Report-Domain", 0, 0,
                "TLS-Report-Domain appears %d times, not once (RFC 8460 5.3)",
                h->has_report_domain);
    if (h->has_report_submitter != 1)
        finding(j, 1, "tls-report-submitter", "TLS-Report-Submitter", 0, 0,
                "TLS-Report-Submitter appears %d times, not once (RFC 8460 5.3)",
                h->has_report_submitter);
    if (h->has_subject != 1)
        finding(j, 1, "subject", "Subject", 0, 0, "Subject appears %d times, not once",
                h->has_subject);
    else
        judge_subject(j, h);
    json_t *domains = json_object_get(j->rec, "policy_domains");
    size_t i;
    json_t *d;
    json_array_foreach(domains, i, d)
    {
        if (h->has_report_domain && strcasecmp(json_string_value(d), h->report_domain))
            finding(j, 1, "tls-report-domain", "TLS-Report-Domain", 0, 0,
                    "TLS-Report-Domain %s is not the report's policy-domain %s", h->report_domain,
                    json_string_value(d));
    }
    if (!h->has_part)
        return; /* judge_body named it */
    if (strcmp(h->part_type, MT_GZIP) && strcmp(h->part_type, MT_JSON))
        finding(j, 1, "report-part", "report part", 0, 0,
                "the report part is %s, not " MT_GZIP " (RFC 8460 5.3)",
                h->part_type[0] ? h->part_type : "without a Content-Type");
}

/* libopendkim's key lookup: the TXT record SELECTOR._domainkey.DOMAIN of the world's
 * own zone (RFC 6376 3.6.2.1), never the real DNS. */
static DKIM_CBSTAT dkim_key_cb(DKIM *dkim, DKIM_SIGINFO *sig, u_char *buf, size_t buflen)
{
    const sts_dns_zone *zone = dkim_get_user_context(dkim);
    const char *sel = (const char *)dkim_sig_getselector(sig);
    const char *dom = (const char *)dkim_sig_getdomain(sig);
    if (!zone || !sel || !dom || !buflen)
        return DKIM_CBSTAT_ERROR;
    char name[600];
    snprintf(name, sizeof(name), "%s._domainkey.%s", sel, dom);
    sts_buf txt;
    sts_buf_init(&txt, buflen);
    int n = sts_dns_zone_txt(zone, name, &txt);
    DKIM_CBSTAT rc = DKIM_CBSTAT_NOTFOUND;
    if (n < 0) {
        rc = DKIM_CBSTAT_ERROR;
    } else if (n > 0 && txt.len < buflen) {
        memcpy(buf, txt.data ? txt.data : "", txt.len);
        buf[txt.len] = '\0';
        rc = DKIM_CBSTAT_CONTINUE;
    }
    sts_buf_free(&txt);
    return rc;
}

/* Whether the header of msg (up to its first empty line) has a DKIM-Signature field:
 * a message libopendkim cannot even read has none to fail. */
static int has_signature_field(const char *msg, size_t len)
{
    static const char name[] = "dkim-signature:";
    const size_t nl = sizeof(name) - 1;
    for (size_t i = 0; i < len;) {
        const char *lf = memchr(msg + i, '\n', len - i);
        size_t end = lf ? (size_t)(lf - msg) : len;
        size_t n = end - i - (end > i && msg[end - 1] == '\r');
        if (n == 0)
            return 0; /* the end of the header */
        if (n >= nl && !strncasecmp(msg + i, name, nl))
            return 1;
        i = end + 1;
    }
    return 0;
}

/* RFC 6376 verification of the message; the verdict into the record. */
static void judge_dkim(judge *j, const char *msg, size_t len, const sts_dns_zone *zone)
{
    sts_dkim_result result = STS_DKIM_FAIL;
    const char *reason = NULL;
    char why[256] = "", domain[256] = "", selector[128] = "";
    DKIM_LIB *lib = dkim_init(NULL, NULL);
    DKIM_STAT st = DKIM_STAT_INTERNAL;
    DKIM *d = lib ? dkim_verify(lib, (const u_char *)"ststest-world", NULL, &st) : NULL;
    if (!d) {
        snprintf(why, sizeof(why), "libopendkim: %s", lib ? dkim_getresultstr(st) : "no library");
    } else {
        dkim_set_key_lookup(lib, dkim_key_cb);
        dkim_set_user_context(d, (void *)zone);
        st = dkim_chunk(d, (u_char *)msg, len);
        if (st == DKIM_STAT_OK)
            st = dkim_chunk(d, NULL, 0);
        if (st == DKIM_STAT_OK)
            st = dkim_eom(d, NULL);
        DKIM_SIGINFO *sig = dkim_getsignature(d);
        if (sig) {
            const char *sd = (const char *)dkim_sig_getdomain(sig);
            const char *ss = (const char *)dkim_sig_getselector(sig);
            snprintf(domain, sizeof(domain), "%s", sd ? sd : "");
            snprintf(selector, sizeof(selector), "%s", ss ? ss : "");
        }
        if (st == DKIM_STAT_NOSIG || (!sig && !has_signature_field(msg, len))) {
            result = STS_DKIM_NONE;
            reason = "no DKIM-Signature";
        } else if (st == DKIM_STAT_OK && sig && DKIM_SIG_CHECK(sig)) {
            result = STS_DKIM_PASS;
        } else if (sig && dkim_sig_getbh(sig) != DKIM_SIGBH_MATCH &&
                   dkim_sig_getbh(sig) != DKIM_SIGBH_UNTESTED) {
            reason = "the body hash does not match (the body was changed)";
        } else if (sig && dkim_sig_geterror(sig) != DKIM_SIGERROR_OK) {
            reason = dkim_sig_geterrorstr(dkim_sig_geterror(sig));
        } else {
            reason = dkim_getresultstr(st);
        }
        if (reason)
            snprintf(why, sizeof(why), "%s", reason);
        dkim_free(d);
    }
    if (lib)
        dkim_close(lib);
    json_t *o = json_pack("{s:s}", "result", sts_dkim_result_name(result));
    if (o) {
        json_object_set_new(o, "domain", domain[0] ? json_string(domain) : json_null());
        json_object_set_new(o, "selector", selector[0] ? json_string(selector) : json_null());
        json_object_set_new(o, "reason", why[0] ? json_string(why) : json_null());
    }
    if (!o || json_object_set_new(j->rec, "dkim", o))
        j->oom = 1;
    if (result != STS_DKIM_PASS)
        finding(j, 1, "dkim", "DKIM-Signature", 0, 0,
                "no valid DKIM signature (%s%s%s): RFC 8460 5.3 lets a recipient ignore the "
                "report",
                sts_dkim_result_name(result), why[0] ? ": " : "", why);
}

json_t *sts_rptrecv_mail(const char *msg, size_t len, const sts_dns_zone *zone)
{
    judge j;
    if (judge_init(&j, "mailto", len))
        return NULL;
    sts_rptmsg_head h;
    sts_rptmsg_read_head(msg, len, &h);
    sts_rptmsg_form form;
    judge_body(&j, msg, len, &form);
    json_object_set_new(j.rec, "gzip", json_boolean(h.has_part && strstr(h.part_type, "gzip")));
    if (form != STS_RPTMSG_MESSAGE)
        finding(&j, 1, "message-type", "message", 0, 0,
                "the mail is not a message with header fields (RFC 8460 5.3)");
    judge_headers(&j, &h);
    judge_dkim(&j, msg, len, zone);
    return judge_end(&j);
}
