/*
 * assure.c - `check --assure-tls` (see assure.h): one domain after another, one MX
 * after another, one small clear-text SMTP probe per MX. Functions return 0 or a
 * negative STS_* code unless said otherwise.
 *
 * The probe is a state machine like smtpc's, reduced to what the test needs: what to
 * send on entering a state (probe_enter) apart from what a reply means
 * (probe_on_reply). A probe ends in the stream's close callback, the only place that
 * moves on to the next MX, so nothing is freed inside its own handler.
 */
#include "sender/assure.h"

#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/tls.h"
#include "sender/check.h"
#include "sender/finding.h"
#include "sender/resolver.h"
#include "sender/smtpreply.h"

#define ASSURE_TIMEOUT 30.0 /* seconds per stage unless --timeout says otherwise */
#define ASSURE_MAX_MX 32    /* MX hosts probed per domain */

typedef enum {
    PROBE_CONNECT = 0, /* connecting */
    PROBE_BANNER,      /* waiting for the greeting */
    PROBE_EHLO,        /* EHLO sent */
    PROBE_MAIL,        /* MAIL FROM sent */
    PROBE_RCPT,        /* RCPT TO sent */
    PROBE_QUIT,        /* the verdict is known; QUIT sent */
} probe_state;

/* The stage names of the JSON "stage" and the transcript. */
static const char *probe_state_name(probe_state st)
{
    static const char *const names[] = {"connect", "banner", "ehlo", "mail", "rcpt", "quit"};
    return st <= PROBE_QUIT ? names[st] : "unknown";
}

typedef struct assure_run {
    uv_loop_t *loop;
    const sts_sender_opts *opts;
    sts_log *log;
    sts_resolver *res;
    uv_timer_t timer; /* the stage timeout of the running probe */
    double timeout;
    char helo[256], from[300];
    int helo_literal; /* no --helo and no FQDN: an address literal per connection */
    char *const *domains;
    size_t ndomains, di;
    json_t *results;
    int failed; /* some domain's assuredness is 0 */
    /* the domain being probed */
    char domain[256];
    char *hosts[ASSURE_MAX_MX];
    size_t nhosts, hi;
    json_t *mx; /* its "mx" array */
    /* the probe running (stream != NULL) */
    sts_stream *stream;
    probe_state state;
    sts_buf in;
    int verdict_set;
    sts_assure_verdict verdict;
    probe_state stage;
    char reply[512];
    char address[INET6_ADDRSTRLEN];
    sts_dns_addr addrs[8];
    size_t naddrs, ai;
} assure_run;

static void assure_next_domain(assure_run *r);
static void assure_next_mx(assure_run *r);
static void assure_next_addr(assure_run *r);

/* ---- one MX: the verdict ---- */

/* The current MX's verdict into the domain's "mx" list and the transcript (address
 * NULL: it had none), then on to the next MX. */
static void mx_record(assure_run *r, const char *address, sts_assure_verdict v,
                      const char *stage, const char *reply)
{
    json_t *m = json_object();
    json_object_set_new(m, "host", json_string(r->hosts[r->hi]));
    json_object_set_new(m, "address", address ? json_string(address) : json_null());
    json_object_set_new(m, "verdict", json_string(sts_assure_verdict_name(v)));
    json_object_set_new(m, "stage", json_string(stage));
    json_object_set_new(m, "reply", json_string(reply));
    json_array_append_new(r->mx, m);
    sts_info(r->log, "assure %s: mx %s [%s] %s at %s: %s", r->domain, r->hosts[r->hi],
             address ? address : "no address", sts_assure_verdict_name(v), stage, reply);
    r->hi++;
    assure_next_mx(r);
}

static void probe_verdict(assure_run *r, sts_assure_verdict v, const char *reply)
{
    if (r->verdict_set)
        return;
    r->verdict_set = 1;
    r->verdict = v;
    r->stage = r->state;
    snprintf(r->reply, sizeof(r->reply), "%s", reply);
}

/* The probe is over: close its stream; assure_on_close records it and moves on. */
static void probe_finish(assure_run *r)
{
    uv_timer_stop(&r->timer);
    sts_buf_reset(&r->in); /* whatever else arrived is not read any more */
    if (r->stream)
        sts_stream_close(r->stream);
}

static void probe_send(assure_run *r, const char *verb, const char *arg)
{
    char line[600];
    int n = snprintf(line, sizeof(line), "%s%s", verb, arg);
    if (n < 0 || (size_t)n >= sizeof(line) - 2) {
        probe_verdict(r, STS_ASSURE_NOT_TESTED, "internal error: command too long");
        probe_finish(r);
        return;
    }
    sts_info(r->log, "assure %s: mx %s --> %s", r->domain, r->hosts[r->hi], line);
    memcpy(line + n, "\r\n", 3);
    if (sts_stream_write(r->stream, line, (size_t)n + 2) != 0) {
        probe_verdict(r, STS_ASSURE_NOT_TESTED, "write failed");
        probe_finish(r);
    }
}

static void timer_cb(uv_timer_t *t)
{
    assure_run *r = t->data;
    char why[64];
    snprintf(why, sizeof(why), "timed out after %gs", r->timeout);
    probe_verdict(r, STS_ASSURE_NOT_TESTED, why);
    probe_finish(r);
}

/* What to send on entering a state. */
static void probe_enter(assure_run *r, probe_state st)
{
    sts_debug(r->log, "assure %s: mx %s %s -> %s", r->domain, r->hosts[r->hi],
              probe_state_name(r->state), probe_state_name(st));
    r->state = st;
    uv_timer_start(&r->timer, timer_cb, (uint64_t)(r->timeout * 1000), 0);
    char path[300];
    switch (st) {
    case PROBE_EHLO:
        if (r->helo_literal) { /* RFC 5321 4.1.3 address literal of our end */
            const char *a = sts_stream_local_addr(r->stream);
            snprintf(r->helo, sizeof(r->helo), "[%s%s]", strchr(a, ':') ? "IPv6:" : "",
                     a[0] ? a : "127.0.0.1");
            snprintf(r->from, sizeof(r->from), "ststest@%s", r->helo);
        }
        probe_send(r, "EHLO ", r->helo);
        break;
    case PROBE_MAIL:
        snprintf(path, sizeof(path), "<%s>", r->from);
        probe_send(r, "MAIL FROM:", path);
        break;
    case PROBE_RCPT:
        snprintf(path, sizeof(path), "<postmaster@%s>", r->domain);
        probe_send(r, "RCPT TO:", path);
        break;
    case PROBE_QUIT:
        probe_send(r, "QUIT", "");
        break;
    default:
        break;
    }
}

int sts_assure_tls_refusal(int code, const char *enhanced)
{
    /* RFC 3207 4: "530 Must issue a STARTTLS command first"; RFC 3463 3.8: X.7.Y is
     * "security or policy status" (5.7.0, 4.7.0 "TLS required" and the like). */
    if (code == 530)
        return 1;
    return enhanced && (enhanced[0] == '4' || enhanced[0] == '5') && enhanced[1] == '.' &&
           enhanced[2] == '7' && enhanced[3] == '.' && code / 100 == enhanced[0] - '0';
}

/* What a reply means. */
static void probe_on_reply(assure_run *r, const sts_smtp_reply *rep)
{
    char line[400], text[480];
    sts_smtp_reply_line(rep, 0, line, sizeof(line));
    snprintf(text, sizeof(text), "%d%s%s %s", rep->code, rep->enhanced[0] ? " " : "",
             rep->enhanced, line);
    sts_info(r->log, "assure %s: mx %s <-- %s", r->domain, r->hosts[r->hi], text);
    int cls = sts_smtp_reply_class(rep);
    if (r->state == PROBE_QUIT) {
        probe_finish(r);
        return;
    }
    if (cls == 4 || cls == 5) {
        /* Refused before any recipient was accepted: the MX passes when it refused
         * MAIL or RCPT because TLS is required; any other refusal (a 554 greeting,
         * "550 5.1.1 User unknown") says nothing about TLS: not tested, and why. */
        int tls = (r->state == PROBE_MAIL || r->state == PROBE_RCPT) &&
                  sts_assure_tls_refusal(rep->code, rep->enhanced);
        char why[sizeof(text) + 64];
        snprintf(why, sizeof(why), "refused, but not for want of TLS: %s", text);
        probe_verdict(r, tls ? STS_ASSURE_REFUSED : STS_ASSURE_NOT_TESTED, tls ? text : why);
        probe_enter(r, PROBE_QUIT);
        return;
    }
    switch (r->state) {
    case PROBE_BANNER:
        probe_enter(r, PROBE_EHLO);
        break;
    case PROBE_EHLO:
        /* The STARTTLS offer, if any, is ignored: that is the test. */
        probe_enter(r, PROBE_MAIL);
        break;
    case PROBE_MAIL:
        probe_enter(r, PROBE_RCPT);
        break;
    case PROBE_RCPT:
        /* 250/251 (RFC 5321 4.1.1.3): a recipient accepted in the clear. No DATA. */
        probe_verdict(r, STS_ASSURE_ACCEPTED, text);
        probe_enter(r, PROBE_QUIT);
        break;
    default:
        break;
    }
}

static void on_connect(sts_stream *s, int status)
{
    assure_run *r = sts_stream_data(s);
    if (status != 0) {
        char why[128];
        snprintf(why, sizeof(why), "connection to %s failed: %s", r->address,
                 sts_strerror(status));
        probe_verdict(r, STS_ASSURE_NOT_TESTED, why);
        probe_finish(r);
        return;
    }
    probe_enter(r, PROBE_BANNER);
}

static void on_read(sts_stream *s, const char *data, size_t len)
{
    assure_run *r = sts_stream_data(s);
    if (sts_buf_append(&r->in, data, len) != 0) {
        probe_verdict(r, STS_ASSURE_NOT_TESTED, "reply too long");
        probe_finish(r);
        return;
    }
    while (r->stream && r->in.len) {
        sts_smtp_reply rep;
        sts_smtp_reply_init(&rep);
        size_t used = 0;
        char why[128] = "";
        int rc = sts_smtp_reply_parse(r->in.data, r->in.len, &rep, &used, why, sizeof(why));
        if (rc != 0 || used == 0) {
            sts_smtp_reply_free(&rep);
            if (rc != 0) {
                probe_verdict(r, STS_ASSURE_NOT_TESTED, why[0] ? why : "malformed reply");
                probe_finish(r);
            }
            return;
        }
        sts_buf_consume(&r->in, used);
        probe_on_reply(r, &rep);
        sts_smtp_reply_free(&rep);
    }
}

static void on_eof(sts_stream *s, int status)
{
    assure_run *r = sts_stream_data(s);
    if (r->state != PROBE_QUIT) {
        /* Closed before a recipient was accepted: no refusal for want of TLS. */
        char why[96];
        snprintf(why, sizeof(why), "connection closed by the MX at %s",
                 probe_state_name(r->state));
        probe_verdict(r, STS_ASSURE_NOT_TESTED, why);
    }
    probe_finish(r);
}

/* The probe of one address is over: record it, then the next address or MX. */
static void on_close(sts_stream *s)
{
    assure_run *r = sts_stream_data(s);
    r->stream = NULL;
    uv_timer_stop(&r->timer);
    sts_buf_reset(&r->in);
    /* A failed connection tries the MX's next address before giving up on it. */
    if (r->verdict == STS_ASSURE_NOT_TESTED && r->state == PROBE_CONNECT &&
        r->ai + 1 < r->naddrs) {
        r->ai++;
        r->verdict_set = 0;
        assure_next_addr(r);
        return;
    }
    mx_record(r, r->address, r->verdict, probe_state_name(r->stage), r->reply);
}

static const sts_stream_cbs probe_cbs = {
    .on_connect = on_connect,
    .on_read = on_read,
    .on_eof = on_eof,
    .on_close = on_close,
};

/* ---- one MX: finding it ---- */

/* An MX without a probe (no address): recorded as not tested. */
static void mx_not_tested(assure_run *r, const char *why)
{
    mx_record(r, NULL, STS_ASSURE_NOT_TESTED, "dns", why);
}

static void assure_next_addr(assure_run *r)
{
    const sts_dns_addr *a = &r->addrs[r->ai];
    struct sockaddr_storage sa;
    memcpy(&sa, &a->sa, sizeof(sa));
    int port = r->opts->smtp_port ? r->opts->smtp_port : 25;
    if (a->family == AF_INET6)
        ((struct sockaddr_in6 *)&sa)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)&sa)->sin_port = htons((uint16_t)port);
    snprintf(r->address, sizeof(r->address), "%s", a->text);
    r->state = PROBE_CONNECT;
    r->verdict_set = 0;
    r->verdict = STS_ASSURE_NOT_TESTED;
    r->stage = PROBE_CONNECT;
    r->reply[0] = '\0';
    sts_info(r->log, "assure %s: mx %s connecting to %s port %d", r->domain, r->hosts[r->hi],
             a->text, port);
    r->stream = sts_stream_new(r->loop, &probe_cbs, r);
    int rc = r->stream ? sts_stream_connect(r->stream, (struct sockaddr *)&sa, NULL) : STS_ENOMEM;
    if (rc != 0) {
        probe_verdict(r, STS_ASSURE_NOT_TESTED, sts_strerror(rc));
        if (r->stream)
            sts_stream_close(r->stream); /* on_close moves on */
        else
            mx_not_tested(r, sts_strerror(rc));
        return;
    }
    uv_timer_start(&r->timer, timer_cb, (uint64_t)(r->timeout * 1000), 0);
}

static void on_addr(const sts_dns_addr_result *res, void *arg)
{
    assure_run *r = arg;
    if (res->status == STS_DNS_CANCELLED)
        return;
    r->naddrs = 0;
    r->ai = 0;
    for (size_t i = 0; i < res->n && r->naddrs < sizeof(r->addrs) / sizeof(r->addrs[0]); i++)
        if (!sts_dns_addr_unusable((const struct sockaddr *)&res->addrs[i].sa))
            r->addrs[r->naddrs++] = res->addrs[i];
    if (r->naddrs == 0) {
        char why[300];
        sts_dns_failure_text(r->hosts[r->hi], "A/AAAA",
                             res->status == STS_DNS_OK ? STS_DNS_NODATA : res->status,
                             res->detail, why, sizeof(why));
        mx_not_tested(r, why);
        return;
    }
    assure_next_addr(r);
}

/* ---- one domain ---- */

static void domain_free_hosts(assure_run *r)
{
    for (size_t i = 0; i < r->nhosts; i++)
        free(r->hosts[i]);
    r->nhosts = r->hi = 0;
}

/* The findings of the domain (finding.h), into its result and the transcript's verdict
 * block: assure-tls-accepted for each MX that accepted a recipient in the clear,
 * mx-unreachable for each that could not be tested (or for the domain, detail, when it
 * has no MX to test). */
static void domain_findings(assure_run *r, json_t *res, const char *detail)
{
    sts_finding fs[ASSURE_MAX_MX + 1];
    size_t n = 0, i;
    json_t *m;
    json_array_foreach(r->mx, i, m)
    {
        int v;
        const char *host = json_string_value(json_object_get(m, "host"));
        const char *reply = json_string_value(json_object_get(m, "reply"));
        if (n >= ASSURE_MAX_MX ||
            sts_vocab_parse(&sts_vocab_assure_verdict,
                            json_string_value(json_object_get(m, "verdict")), &v) != 0 ||
            v == STS_ASSURE_REFUSED)
            continue;
        sts_finding *f = &fs[n++];
        f->id =
            v == STS_ASSURE_ACCEPTED ? STS_FINDING_ASSURE_TLS_ACCEPTED : STS_FINDING_MX_UNREACHABLE;
        snprintf(f->subject, sizeof(f->subject), "%s", host ? host : "");
        if (v == STS_ASSURE_ACCEPTED)
            snprintf(f->detail, sizeof(f->detail), "%s accepted a recipient in the clear: %s",
                     host ? host : "", reply ? reply : "");
        else
            snprintf(f->detail, sizeof(f->detail), "%s could not be tested: %s", host ? host : "",
                     reply ? reply : "");
    }
    if (detail) {
        sts_finding *f = &fs[n++];
        f->id = STS_FINDING_MX_UNREACHABLE;
        snprintf(f->subject, sizeof(f->subject), "%s", r->domain);
        snprintf(f->detail, sizeof(f->detail), "%s", detail);
    }
    sts_verdict v = sts_finding_verdict(fs, n);
    json_object_set_new(res, "verdict", json_string(sts_verdict_name(v)));
    json_object_set_new(res, "findings", sts_check_findings_json(fs, n));
    sts_check_log_verdict(r->log, r->domain, fs, n, v);
}

/* Every MX probed: the domain's verdict. detail (or NULL) says why none was. */
static void domain_done(assure_run *r, const char *detail)
{
    size_t refused = 0, tested = 0;
    size_t i;
    json_t *m;
    json_array_foreach(r->mx, i, m)
    {
        int v;
        if (sts_vocab_parse(&sts_vocab_assure_verdict,
                            json_string_value(json_object_get(m, "verdict")), &v) != 0)
            continue;
        if (v != STS_ASSURE_NOT_TESTED)
            tested++;
        if (v == STS_ASSURE_REFUSED)
            refused++;
    }
    int assuredness = tested > 0 && refused == tested ? 100 : 0;
    if (!assuredness)
        r->failed = 1;
    json_t *a = json_object();
    json_object_set_new(a, "assuredness", json_integer(assuredness));
    if (detail)
        json_object_set_new(a, "detail", json_string(detail));
    json_object_set(a, "mx", r->mx);
    json_t *res = json_object();
    json_object_set_new(res, "argument", json_string(r->domains[r->di]));
    json_object_set_new(res, "domain", json_string(r->domain));
    json_object_set_new(res, "assure_tls", a);
    domain_findings(r, res, detail);
    json_array_append_new(r->results, res);
    sts_info(r->log, "assure %s: assuredness %d (%zu of %zu MX tested refused mail in the "
             "clear%s%s)", r->domain, assuredness, refused, tested, detail ? "; " : "",
             detail ? detail : "");
    json_decref(r->mx);
    r->mx = NULL;
    domain_free_hosts(r);
    r->di++;
    assure_next_domain(r);
}

static void assure_next_mx(assure_run *r)
{
    if (r->hi >= r->nhosts) {
        domain_done(r, NULL);
        return;
    }
    if (sts_resolver_query_addr(r->res, r->hosts[r->hi], on_addr, r) != 0)
        mx_not_tested(r, "the address lookup could not start");
}

static void on_mx(const sts_dns_mx_result *res, void *arg)
{
    assure_run *r = arg;
    if (res->status == STS_DNS_CANCELLED)
        return;
    if (res->status == STS_DNS_OK && res->null_mx) {
        domain_done(r, "null MX (RFC 7505): the domain accepts no mail");
        return;
    }
    if (res->status == STS_DNS_NODATA) {
        /* RFC 5321 5.1: no MX records, the domain itself is the MX. */
        r->hosts[r->nhosts] = strdup(r->domain);
        r->nhosts += r->hosts[r->nhosts] != NULL;
    } else if (res->status == STS_DNS_OK) {
        for (size_t i = 0; i < res->n && r->nhosts < ASSURE_MAX_MX; i++) {
            r->hosts[r->nhosts] = strdup(res->mx[i].host);
            r->nhosts += r->hosts[r->nhosts] != NULL;
        }
    }
    if (r->nhosts == 0) {
        char why[300];
        sts_dns_failure_text(r->domain, "MX", res->status, res->detail, why, sizeof(why));
        domain_done(r, why);
        return;
    }
    assure_next_mx(r);
}

/* Outside every resolver and stream callback: free the resolver, close the timer. */
static void reap_cb(uv_timer_t *t)
{
    assure_run *r = t->data;
    sts_resolver_free(r->res);
    r->res = NULL;
    uv_close((uv_handle_t *)&r->timer, NULL);
}

static void assure_next_domain(assure_run *r)
{
    if (r->di >= r->ndomains) {
        uv_timer_start(&r->timer, reap_cb, 0, 0);
        return;
    }
    const char *d = r->domains[r->di];
    size_t n = strlen(d);
    while (n && d[n - 1] == '.')
        n--;
    if (n >= sizeof(r->domain))
        n = sizeof(r->domain) - 1;
    for (size_t i = 0; i < n; i++)
        r->domain[i] = (char)tolower((unsigned char)d[i]);
    r->domain[n] = '\0';
    r->mx = json_array();
    sts_info(r->log, "assure %s: offering mail in the clear to every MX (TestReceiverAssureTLS)",
             r->domain);
    if (sts_resolver_query_mx(r->res, r->domain, on_mx, r) != 0)
        domain_done(r, "the MX lookup could not start");
}

/* ---- the run ---- */

int sts_assure_run(uv_loop_t *loop, const sts_sender_opts *opts, char *const *domains,
                   size_t ndomains, json_t **out)
{
    *out = NULL;
    assure_run *r = calloc(1, sizeof(*r));
    if (!r)
        return STS_EXIT_SOFTWARE;
    r->loop = loop;
    r->opts = opts;
    r->log = opts->log;
    r->domains = domains;
    r->ndomains = ndomains;
    r->timeout = opts->timeout > 0 ? opts->timeout : ASSURE_TIMEOUT;
    if (opts->helo)
        snprintf(r->helo, sizeof(r->helo), "%s", opts->helo);
    else
        sts_sender_default_helo(r->helo, sizeof(r->helo));
    r->helo_literal = !r->helo[0];
    snprintf(r->from, sizeof(r->from), "ststest@%s", r->helo);
    /* A whole reply, a line and one read more: a reply too long is told by the parser
     * ("reply longer than 65536 bytes"), in the words of send and check. */
    sts_buf_init(&r->in, STS_SMTP_REPLY_MAX + STS_SMTP_LINE_MAX + STS_STREAM_READ_MAX);
    char err[256];
    double dns_timeout = opts->dns_timeout > 0 ? opts->dns_timeout : STS_SENDER_DNS_TIMEOUT;
    if (sts_resolver_new(loop, opts->dns, dns_timeout, r->log, &r->res, err, sizeof(err)) != 0) {
        fprintf(stderr, "ststest check: %s\n", err);
        sts_buf_free(&r->in);
        free(r);
        return STS_EXIT_USAGE;
    }
    uv_timer_init(loop, &r->timer);
    r->timer.data = r;
    r->results = json_array();
    assure_next_domain(r);
    uv_run(loop, UV_RUN_DEFAULT);
    int status = r->failed ? STS_EXIT_FAILED_CHECK : STS_EXIT_OK;
    if (r->di < r->ndomains)
        status = STS_EXIT_SOFTWARE;
    *out = json_pack("{s:o}", "results", r->results);
    domain_free_hosts(r);
    json_decref(r->mx);
    sts_buf_free(&r->in);
    free(r);
    return status;
}
