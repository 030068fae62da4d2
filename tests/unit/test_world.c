/*
 * test_world.c - the world's life cycle as the runner uses it, in-process: start
 * on a loop, ready/observed JSON, stop, free, uv_loop_close() == 0; worlds on
 * several threads at once get distinct blocks; an explicit block already in use and
 * a bad zone line fail with a message and leave nothing running; the steps of a
 * multi-step scenario change what the running world serves: each builds a whole new
 * served state and swaps to it, a step that fails leaves the old one in place, and
 * an old state lives while a connection that began on it is open.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <unistd.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ldns/ldns.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "common/err.h"
#include "common/log.h"
#include "fakedns/observer.h"
#include "fakedns/served.h"
#include "fakedns/world.h"

static const char *scn_text = "name: t\n"
                              "about: t\n"
                              "refs: [RFC 8461]\n"
                              "domain: Example.TEST\n"
                              "dns: |\n"
                              "  @ MX 10 mail\n"
                              "  @ MX 20 backup\n"
                              "  _mta-sts TXT \"v=STSv1; id=${mode}1;\"\n"
                              "policy:\n"
                              "  mode: ${mode}\n"
                              "  mx: [mail.example.test]\n"
                              "  max_age: 86400\n"
                              "mx:\n"
                              "  mail.example.test: {cert: {expired: true}}\n"
                              "expect:\n"
                              "  enforce: {outcome: deferred}\n";

static sts_scenario *load(const char *text)
{
    char err[512] = "";
    sts_scenario *s = sts_scenario_parse(text, strlen(text), "t.yaml", err, sizeof(err));
    if (!s)
        print_message("scenario: %s\n", err);
    assert_non_null(s);
    return s;
}

static void stopped_cb(void *arg)
{
    (*(int *)arg)++;
}

static void test_life_cycle(void **state)
{
    sts_scenario *scn = load(scn_text);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    sts_world_opts opts = {.mode = "testing",
                           .dns_port = 20053,
                           .smtp_port = 20025,
                           .https_port = 20443,
                           .http_port = 20080};
    sts_world *a = NULL, *b = NULL;
    char err[512] = "";
    assert_int_equal(sts_world_start(&loop, scn, &opts, &a, err, sizeof(err)), 0);
    assert_int_equal(sts_world_start(&loop, scn, &opts, &b, err, sizeof(err)), 0);

    json_t *ra = sts_world_ready(a), *rb = sts_world_ready(b);
    assert_string_equal(json_string_value(json_object_get(ra, "domain")), "example.test");
    assert_string_equal(json_string_value(json_object_get(ra, "mode")), "testing");
    assert_int_equal(json_integer_value(json_object_get(ra, "smtp_port")), 20025);
    assert_string_not_equal(json_string_value(json_object_get(ra, "dns")),
                            json_string_value(json_object_get(rb, "dns")));
    /* mail (scenario MX), then the policy host, then backup (a zone-only MX target). */
    json_t *hosts = json_object_get(ra, "hosts");
    assert_int_equal(json_object_size(hosts), 3);
    const char *block = json_string_value(json_object_get(ra, "block"));
    char want[32];
    snprintf(want, sizeof(want), "%s.10", block);
    assert_string_equal(json_string_value(json_object_get(hosts, "mail.example.test")), want);
    snprintf(want, sizeof(want), "%s.11", block);
    assert_string_equal(json_string_value(json_object_get(hosts, "mta-sts.example.test")), want);
    snprintf(want, sizeof(want), "%s.12", block);
    assert_string_equal(json_string_value(json_object_get(hosts, "backup.example.test")), want);
    char ca_file[4200];
    snprintf(ca_file, sizeof(ca_file), "%s", json_string_value(json_object_get(ra, "ca_file")));
    assert_int_equal(access(ca_file, R_OK), 0);

    /* The same block again, explicitly: every port clashes. */
    sts_world_opts clash = opts;
    clash.block = block;
    sts_world *c = NULL;
    assert_int_not_equal(sts_world_start(&loop, scn, &clash, &c, err, sizeof(err)), 0);
    assert_null(c);
    assert_non_null(strstr(err, "Address already in use"));
    json_decref(ra);
    json_decref(rb);

    int stopped = 0;
    sts_world_stop(a, stopped_cb, &stopped);
    sts_world_stop(b, stopped_cb, &stopped);
    assert_int_equal(stopped, 0); /* never inside the call */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(stopped, 2);
    json_t *obs = sts_world_observed(a);
    assert_string_equal(json_string_value(json_object_get(obs, "event")), "observed");
    assert_int_equal(json_array_size(json_object_get(obs, "dns")), 0);
    assert_int_equal(json_array_size(json_object_get(obs, "smtp_sessions")), 0);
    json_decref(obs);
    sts_world_free(a);
    sts_world_free(b);
    assert_int_not_equal(access(ca_file, F_OK), 0); /* the temporary directory is gone */
    assert_int_equal(uv_loop_close(&loop), 0);
    sts_scenario_free(scn);
}

static void test_bad_zone(void **state)
{
    const char *text = "name: t\nabout: t\nrefs: [x]\ndomain: example.test\ndns: |\n"
                       "  @ MX 10 mail\n  mail CNAME x\n  mail A 192.0.2.1\n"
                       "expect:\n  enforce: {outcome: deferred}\n";
    sts_scenario *scn = load(text);
    uv_loop_t loop;
    uv_loop_init(&loop);
    sts_world *w = NULL;
    char err[512] = "";
    sts_world_opts opts = {.dns_port = 20153};
    assert_int_equal(sts_world_start(&loop, scn, &opts, &w, err, sizeof(err)), STS_ESYNTAX);
    print_message("error: %s\n", err);
    assert_non_null(strstr(err, "t.yaml:8: mail.example.test has a CNAME and other data"));
    assert_null(w);
    assert_int_equal(uv_loop_close(&loop), 0);
    sts_scenario_free(scn);
}

struct thread_arg {
    const sts_scenario *scn;
    char dns[64];
    int rc;
};

/* One world on its own loop and thread, as the runner runs it. */
static void *world_thread(void *p)
{
    struct thread_arg *t = p;
    uv_loop_t loop;
    uv_loop_init(&loop);
    sts_world *w = NULL;
    char err[512];
    sts_world_opts opts = {
        .dns_port = 20253, .smtp_port = 20225, .https_port = 20243, .http_port = 20280};
    t->rc = sts_world_start(&loop, t->scn, &opts, &w, err, sizeof(err));
    if (t->rc == 0) {
        json_t *r = sts_world_ready(w);
        snprintf(t->dns, sizeof(t->dns), "%s", json_string_value(json_object_get(r, "dns")));
        json_decref(r);
        sts_world_stop(w, NULL, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        sts_world_free(w);
    }
    if (uv_loop_close(&loop) != 0)
        t->rc = -100;
    return NULL;
}

static void test_threads(void **state)
{
    sts_scenario *scn = load(scn_text);
    enum { N = 4 };
    pthread_t th[N];
    struct thread_arg args[N];
    for (int i = 0; i < N; i++) {
        memset(&args[i], 0, sizeof(args[i]));
        args[i].scn = scn;
        assert_int_equal(pthread_create(&th[i], NULL, world_thread, &args[i]), 0);
    }
    for (int i = 0; i < N; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        assert_int_equal(args[i].rc, 0);
        for (int j = 0; j < i; j++)
            assert_string_not_equal(args[i].dns, args[j].dns);
    }
    sts_scenario_free(scn);
}

/* A TXT query to the world's DNS server at dns ("a.b.c.d:port"), answered while
 * the loop runs: the first string of the first answer, or "" (rcode in *rcode). */
static void txt_query(uv_loop_t *loop, const char *dns, const char *name, char *out, size_t outlen,
                      int *rcode)
{
    char host[64];
    snprintf(host, sizeof(host), "%s", dns);
    char *colon = strrchr(host, ':');
    *colon = '\0';
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    ldns_pkt *q = NULL;
    assert_int_equal(ldns_pkt_query_new_frm_str(&q, name, LDNS_RR_TYPE_TXT, LDNS_RR_CLASS_IN, 0),
                     LDNS_STATUS_OK);
    uint8_t *wire = NULL;
    size_t len = 0;
    assert_int_equal(ldns_pkt2wire(&wire, q, &len), LDNS_STATUS_OK);
    ldns_pkt_free(q);
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(fd >= 0);
    assert_int_equal(sendto(fd, wire, len, 0, (struct sockaddr *)&sa, sizeof(sa)), (ssize_t)len);
    free(wire);
    uint8_t buf[4096];
    ssize_t n = -1;
    for (int i = 0; i < 2000 && n < 0; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        n = recv(fd, buf, sizeof(buf), 0);
        if (n < 0)
            usleep(1000);
    }
    close(fd);
    assert_true(n > 0);
    ldns_pkt *r = NULL;
    assert_int_equal(ldns_wire2pkt(&r, buf, (size_t)n), LDNS_STATUS_OK);
    *rcode = ldns_pkt_get_rcode(r);
    out[0] = '\0';
    if (ldns_pkt_ancount(r)) {
        char *t = ldns_rdf2str(ldns_rr_rdf(ldns_rr_list_rr(ldns_pkt_answer(r), 0), 0));
        snprintf(out, outlen, "%s", t);
        free(t);
    }
    ldns_pkt_free(r);
}

static void test_steps(void **state)
{
    const char *text = "name: t\nabout: t\nrefs: [x]\ndomain: example.test\n"
                       "dns: |\n  @ MX 10 mail\n  _mta-sts TXT \"one\"\n"
                       "policy: {mode: enforce, mx: [mail.example.test]}\n"
                       "steps:\n"
                       "  - {name: a, expect: {enforce: {}}}\n"
                       "  - name: b\n"
                       "    advance: 2d\n"
                       "    dns: |\n      @ MX 10 mail\n      _mta-sts TXT \"two\"\n"
                       "    expect: {enforce: {}}\n"
                       "  - name: c\n"
                       "    dns_faults: [{name: _mta-sts, fault: servfail}]\n"
                       "    expect: {enforce: {}}\n"
                       "  - name: bad\n"
                       "    policy: {mode: enforce, size: 10}\n"
                       "    dns_faults: []\n"
                       "    expect: {enforce: {}}\n";
    sts_scenario *scn = load(text);
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    /* The observer keeps 3 DNS queries: the 4th is only counted, and said once. */
    sts_log *log = sts_log_new_mem(STS_LOG_INFO, "world: ");
    assert_non_null(log);
    sts_world_opts opts = {.dns_port = 20353,
                           .smtp_port = 20325,
                           .https_port = 20343,
                           .http_port = 20380,
                           .now = 1700000000,
                           .log = log,
                           .observe_max = 3};
    sts_world *w = NULL;
    char err[512] = "", txt[256];
    int rcode = -1;
    assert_int_equal(sts_world_start(&loop, scn, &opts, &w, err, sizeof(err)), 0);
    json_t *ready = sts_world_ready(w);
    char dns[64];
    snprintf(dns, sizeof(dns), "%s", json_string_value(json_object_get(ready, "dns")));
    json_decref(ready);
    assert_int_equal(sts_world_apply_step(w, scn, 0, 1700000000, err, sizeof(err)), 0);
    txt_query(&loop, dns, "_mta-sts.example.test", txt, sizeof(txt), &rcode);
    assert_string_equal(txt, "\"one\"");
    assert_int_equal(sts_world_apply_step(w, scn, 1, 1700000000 + 2 * 86400, err, sizeof(err)), 0);
    txt_query(&loop, dns, "_mta-sts.example.test", txt, sizeof(txt), &rcode);
    assert_string_equal(txt, "\"two\"");
    assert_int_equal(sts_world_apply_step(w, scn, 2, 1700000000 + 2 * 86400, err, sizeof(err)), 0);
    txt_query(&loop, dns, "_mta-sts.example.test", txt, sizeof(txt), &rcode);
    assert_int_equal(rcode, 2); /* SERVFAIL; the zone of step b is still the zone */
    /* A step that cannot apply leaves the world as it was, faults included. */
    assert_int_not_equal(sts_world_apply_step(w, scn, 3, 1700000000 + 2 * 86400, err, sizeof(err)),
                         0);
    print_message("error: %s\n", err);
    assert_non_null(strstr(err, "policy 'size' 10 is below the policy itself"));
    txt_query(&loop, dns, "_mta-sts.example.test", txt, sizeof(txt), &rcode);
    assert_int_equal(rcode, 2);
    assert_int_equal(sts_world_apply_step(w, scn, 4, 0, err, sizeof(err)), STS_EINVAL);
    txt_query(&loop, dns, "_MTA-STS.example.test", txt, sizeof(txt), &rcode);
    json_t *obs = sts_world_observed(w);
    json_t *dq = json_object_get(obs, "dns");
    assert_int_equal(json_array_size(dq), 3);
    assert_int_equal(json_integer_value(json_object_get(obs, "dns_dropped")), 2);
    char *first = json_dumps(json_array_get(dq, 0), JSON_SORT_KEYS);
    assert_string_equal(first, "{\"name\": \"_mta-sts.example.test\", \"rcode\": \"NOERROR\", "
                               "\"transport\": \"udp\", \"type\": \"TXT\"}");
    free(first);
    json_t *third = json_array_get(dq, 2);
    assert_string_equal(json_string_value(json_object_get(third, "rcode")), "SERVFAIL");
    assert_string_equal(json_string_value(json_object_get(third, "fault")), "servfail");
    json_decref(obs);
    const char *tr = sts_log_text(log);
    const char *note = strstr(tr, "the observer keeps at most 3 DNS queries");
    assert_non_null(note);
    assert_null(strstr(note + 1, "the observer keeps at most"));
    sts_world_stop(w, NULL, NULL);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_int_not_equal(sts_world_apply_step(w, scn, 1, 0, err, sizeof(err)), 0);
    sts_world_free(w);
    assert_int_equal(uv_loop_close(&loop), 0);
    sts_scenario_free(scn);
    sts_log_free(log);
}

/* ---- steps: build, then swap ---- */

/* mail (index 0), mta-sts (1), backup (2, a zone-only MX target). */
#define SWAP_HEAD                                                                                  \
    "name: t\nabout: t\nrefs: [x]\ndomain: example.test\n"                                         \
    "dns: |\n  @ MX 10 mail\n  @ MX 20 backup\n  _mta-sts TXT \"one\"\n"                           \
    "policy: {mode: enforce, mx: [mail.example.test]}\n"                                           \
    "mx: {mail.example.test: {}}\n"                                                                \
    "steps:\n"                                                                                     \
    "  - {name: a, expect: {enforce: {}}}\n"                                                       \
    "  - name: b\n"                                                                                \
    "    dns: |\n      @ MX 10 mail\n      @ MX 20 backup\n      _mta-sts TXT \"two\"\n"           \
    "    policy: {mode: testing, mx: [mail.example.test]}\n"                                       \
    "    mx: {mail.example.test: {starttls_reply: \"454 4.7.0 TLS not available\"}}\n"             \
    "    expect: {enforce: {}}\n"

enum { HOST_MAIL = 0, HOST_POLICY = 1, HOST_BACKUP = 2 };

typedef struct swap_world {
    sts_scenario *scn;
    uv_loop_t loop;
    sts_log *log;
    sts_world *w;
    json_t *ready;
    char dns[64];
} swap_world;

static void swap_start(swap_world *t, const char *text, int port_base)
{
    t->scn = load(text);
    assert_int_equal(uv_loop_init(&t->loop), 0);
    assert_non_null(t->log = sts_log_new_mem(STS_LOG_DEBUG, "world: "));
    sts_world_opts opts = {.dns_port = port_base + 53,
                           .smtp_port = port_base + 25,
                           .https_port = port_base + 43,
                           .http_port = port_base + 80,
                           .now = 1700000000,
                           .log = t->log};
    char err[512] = "";
    if (sts_world_start(&t->loop, t->scn, &opts, &t->w, err, sizeof(err)))
        fail_msg("%s", err);
    t->ready = sts_world_ready(t->w);
    snprintf(t->dns, sizeof(t->dns), "%s", json_string_value(json_object_get(t->ready, "dns")));
}

static void swap_end(swap_world *t)
{
    sts_world_stop(t->w, NULL, NULL);
    assert_int_equal(uv_run(&t->loop, UV_RUN_DEFAULT), 0);
    sts_world_free(t->w);
    assert_int_equal(uv_loop_close(&t->loop), 0);
    json_decref(t->ready);
    sts_scenario_free(t->scn);
    sts_log_free(t->log);
}

static const char *swap_txt(swap_world *t)
{
    static char txt[256];
    int rcode = -1;
    txt_query(&t->loop, t->dns, "_mta-sts.example.test", txt, sizeof(txt), &rcode);
    return txt;
}

/* A step's state is a new one, built whole from the step on top of the last: its
 * zone, policy and MX script are the step's; hosts the step left alone share the
 * certificate of the state before, unless the clock moved. */
static void test_step_builds_new_state(void **state)
{
    (void)state;
    swap_world t;
    swap_start(&t, SWAP_HEAD "  - {name: c, advance: 1d, expect: {enforce: {}}}\n", 20400);
    sts_served *s0 = sts_world_served(t.w);
    assert_int_equal(s0->gen, 0);
    assert_int_equal(s0->refs, 1);
    assert_int_equal(s0->nhosts, 3);
    assert_string_equal(s0->hosts[HOST_MAIL].mx_conf.host, "mail.example.test");
    assert_string_equal(s0->hosts[HOST_BACKUP].mx_conf.host, "backup.example.test");
    assert_non_null(strstr(s0->policy_body, "mode: enforce\r\n"));
    assert_true(s0->https.present && s0->https.ctx == s0->hosts[HOST_POLICY].ctx);
    assert_null(s0->http.ctx);
    char err[512] = "";

    /* Step a names nothing: a new state all the same, sharing every certificate
     * (s0 is held here to compare; else it would go with the swap). */
    sts_served_ref(s0);
    assert_int_equal(sts_world_apply_step(t.w, t.scn, 0, 1700000000, err, sizeof(err)), 0);
    sts_served *s1 = sts_world_served(t.w);
    assert_ptr_not_equal(s1, s0);
    assert_int_equal(s1->gen, 1);
    assert_int_equal(s0->refs, 1);
    assert_ptr_not_equal(s1->zone, s0->zone);
    assert_ptr_not_equal(s1->policy_body, s0->policy_body);
    for (size_t i = 0; i < s1->nhosts; i++) {
        assert_non_null(s1->hosts[i].ctx);
        assert_ptr_equal(s1->hosts[i].ctx, s0->hosts[i].ctx);
    }
    sts_served_unref(s0);
    assert_string_equal(swap_txt(&t), "\"one\"");

    /* Step b: its zone, policy and MX script; mail and the policy host get new
     * certificates, backup keeps its own. */
    SSL_CTX *backup = s1->hosts[HOST_BACKUP].ctx, *mail = s1->hosts[HOST_MAIL].ctx;
    SSL_CTX *policy = s1->hosts[HOST_POLICY].ctx;
    assert_int_equal(sts_world_apply_step(t.w, t.scn, 1, 1700000000, err, sizeof(err)), 0);
    sts_served *s2 = sts_world_served(t.w);
    const sts_scn_step *b = &t.scn->steps[1];
    assert_int_equal(s2->gen, 2);
    assert_int_equal(s2->now, 1700000000);
    assert_ptr_equal(s2->dns, b->dns);
    assert_ptr_equal(s2->policy, &b->policy);
    assert_ptr_equal(s2->hosts[HOST_MAIL].mx, &b->mx[0]);
    assert_string_equal(s2->hosts[HOST_MAIL].mx_conf.replies[STS_SCN_STAGE_STARTTLS],
                        "454 4.7.0 TLS not available\r\n");
    assert_ptr_equal(s2->hosts[HOST_MAIL].mx_conf.ctx, s2->hosts[HOST_MAIL].ctx);
    assert_non_null(strstr(s2->policy_body, "mode: testing\r\n"));
    assert_ptr_equal(s2->https.body, s2->policy_body);
    assert_ptr_equal(s2->hosts[HOST_BACKUP].ctx, backup);
    assert_ptr_not_equal(s2->hosts[HOST_MAIL].ctx, mail);
    assert_ptr_not_equal(s2->hosts[HOST_POLICY].ctx, policy);
    assert_ptr_equal(s2->https.ctx, s2->hosts[HOST_POLICY].ctx);
    assert_string_equal(swap_txt(&t), "\"two\"");

    /* Step c moves the clock: every certificate is minted again, the rest carries on. */
    backup = s2->hosts[HOST_BACKUP].ctx;
    assert_int_equal(sts_world_apply_step(t.w, t.scn, 2, 1700000000 + 86400, err, sizeof(err)), 0);
    sts_served *s3 = sts_world_served(t.w);
    assert_int_equal(s3->now, 1700000000 + 86400);
    assert_ptr_not_equal(s3->hosts[HOST_BACKUP].ctx, backup);
    assert_ptr_equal(s3->hosts[HOST_MAIL].mx, &b->mx[0]);
    assert_non_null(strstr(s3->policy_body, "mode: testing\r\n"));
    assert_string_equal(swap_txt(&t), "\"two\"");
    /* Each state went with the swap that replaced it (no connection held one). */
    const char *tr = sts_log_text(t.log);
    for (int g = 0; g < 3; g++) {
        char line[64];
        snprintf(line, sizeof(line), "served state %d released", g);
        assert_non_null(strstr(tr, line));
    }
    swap_end(&t);
    /* (The last one went with the world: ASan would say if it had not.) */
}

/* A step that cannot be built leaves the world on the state it had: the same
 * pointer, its one reference, the same answers, and the error says what was wrong. */
static void test_step_failure_keeps_state(void **state)
{
    (void)state;
    static const struct {
        const char *step, *error;
    } bad[] = {
        {"  - name: zone\n    dns: |\n      @ MX 10 mail\n      mail CNAME elsewhere\n"
         "    expect: {enforce: {}}\n",
         "t.yaml: the zone gives mail.example.test other data than the world's address"},
        {"  - name: cert\n    mx: {backup.example.test: {cert: {cn: "
         "a123456789b123456789c123456789d123456789e123456789f123456789g1234567}}}\n"
         "    expect: {enforce: {}}\n",
         "cannot mint a certificate for backup.example.test"},
        {"  - name: host\n    mx: {mta-sts.example.test: {}}\n    expect: {enforce: {}}\n",
         "step 'host': mta-sts.example.test is not an MX host the world serves"},
        {"  - name: size\n    policy: {mode: enforce, size: 10}\n    expect: {enforce: {}}\n",
         "policy 'size' 10 is below the policy itself"},
    };
    for (size_t k = 0; k < sizeof(bad) / sizeof(bad[0]); k++) {
        char text[2048];
        snprintf(text, sizeof(text), "%s%s", SWAP_HEAD, bad[k].step);
        swap_world t;
        swap_start(&t, text, 20500);
        char err[512] = "";
        assert_int_equal(sts_world_apply_step(t.w, t.scn, 1, 1700000000, err, sizeof(err)), 0);
        sts_served *before = sts_world_served(t.w);
        assert_int_not_equal(
            sts_world_apply_step(t.w, t.scn, 2, 1700000000 + 86400, err, sizeof(err)), 0);
        print_message("%s: %s\n", bad[k].error, err);
        assert_non_null(strstr(err, bad[k].error));
        assert_ptr_equal(sts_world_served(t.w), before);
        assert_int_equal(before->refs, 1);
        assert_int_equal(before->gen, 1);
        assert_int_equal(before->now, 1700000000);
        assert_non_null(strstr(before->policy_body, "mode: testing\r\n"));
        assert_string_equal(swap_txt(&t), "\"two\"");
        /* What the failed step built is gone (its number is the next one's). */
        assert_non_null(strstr(sts_log_text(t.log), "served state 2 released"));
        assert_null(strstr(sts_log_text(t.log), "served state 1 released"));
        swap_end(&t);
    }
}

/* A TCP connection to host's port, from the ready event. */
static int swap_connect(const swap_world *t, const char *host, const char *port_key)
{
    json_t *hosts = json_object_get(t->ready, "hosts");
    struct sockaddr_in sa = {
        .sin_family = AF_INET,
        .sin_port = htons((uint16_t)json_integer_value(json_object_get(t->ready, port_key)))};
    assert_int_equal(
        inet_pton(AF_INET, json_string_value(json_object_get(hosts, host)), &sa.sin_addr), 1);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

/* Run the world's loop until s has refs references (2 s at most). */
static void swap_wait_refs(swap_world *t, const sts_served *s, unsigned refs)
{
    for (int i = 0; i < 2000 && s->refs != refs; i++) {
        uv_run(&t->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_int_equal(s->refs, refs);
}

/* Run the world's loop until its transcript says what (2 s at most). */
static void swap_wait_log(swap_world *t, const char *what)
{
    for (int i = 0; i < 2000 && !strstr(sts_log_text(t->log), what); i++) {
        uv_run(&t->loop, UV_RUN_NOWAIT);
        usleep(1000);
    }
    assert_non_null(strstr(sts_log_text(t->log), what));
}

/* Every SMTP session and policy connection holds the state it was accepted on; the
 * old state outlives the step that replaced it until the last of them closes. */
static void test_connections_hold_state(void **state)
{
    (void)state;
    swap_world t;
    swap_start(&t, SWAP_HEAD, 20600);
    sts_served *s0 = sts_world_served(t.w);
    int smtp = swap_connect(&t, "mail.example.test", "smtp_port");
    int http = swap_connect(&t, "mta-sts.example.test", "http_port");
    swap_wait_refs(&t, s0, 3); /* the world's, the session's, the connection's */

    char err[512] = "";
    assert_int_equal(sts_world_apply_step(t.w, t.scn, 1, 1700000000, err, sizeof(err)), 0);
    sts_served *s1 = sts_world_served(t.w);
    assert_ptr_not_equal(s1, s0);
    assert_int_equal(s0->refs, 2); /* the world let go; both connections hold on */
    assert_int_equal(s1->refs, 1);
    /* The old state is whole: what the connections still get. */
    assert_non_null(strstr(s0->policy_body, "mode: enforce\r\n"));
    assert_null(s0->hosts[HOST_MAIL].mx_conf.replies[STS_SCN_STAGE_STARTTLS]);

    /* A new session gets the new state and lets it go when it closes. */
    int fresh = swap_connect(&t, "mail.example.test", "smtp_port");
    swap_wait_refs(&t, s1, 2);
    close(fresh);
    swap_wait_refs(&t, s1, 1);

    close(smtp);
    swap_wait_refs(&t, s0, 1);
    assert_null(strstr(sts_log_text(t.log), "served state 0 released"));
    close(http);
    swap_wait_log(&t, "served state 0 released"); /* with its last holder */
    assert_null(strstr(sts_log_text(t.log), "served state 1 released"));
    swap_end(&t);
}

/* The observer's compact DNS records come back as the JSON records they replace. */
static void test_observer_dns(void **state)
{
    sts_observer *o = sts_observer_new();
    assert_non_null(o);
    sts_observer_set_dns_max(o, 4);
    assert_int_equal(sts_observer_dns_max(o), 4);
    const uint8_t name[] = {4, 'M', 'a', 'I', 'l', 1, ';', 4, 't', 'e', 's', 't', 0};
    assert_int_equal(sts_observer_dns_query(o, name, sizeof(name), 1, 0, 0, -1), 0);
    assert_int_equal(sts_observer_dns_query(o, NULL, 0, 0, 1, 1, -1), 0);
    assert_int_equal(
        sts_observer_dns_fault(o, "mail.;.test", "TYPE65280", "tcp", "none", "timeout"), 0);
    assert_int_equal(sts_observer_dns(o, "x.test", "BOGUS", "udp", "NOERROR"), STS_EINVAL);
    assert_int_equal(sts_observer_dns(o, "x.test", "MX", "udp", "NOPE"), STS_EINVAL);
    assert_int_equal(sts_observer_dns(o, ".", "NS", "udp", "BADVERS"), 0);
    assert_int_equal(sts_observer_dns_query(o, name, sizeof(name), 16, 0, 3, -1), STS_ETOOBIG);
    assert_int_equal(sts_observer_dns_query(o, name, sizeof(name), 16, 0, 3, -1), STS_ETOOBIG);
    json_t *snap = sts_observer_snapshot(o);
    assert_non_null(snap);
    char *text = json_dumps(snap, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(
        text,
        "{\"dns\":["
        "{\"name\":\"mail.\\\\;.test\",\"rcode\":\"NOERROR\",\"transport\":\"udp\",\"type\":\"A\"},"
        "{\"name\":null,\"rcode\":\"FORMERR\",\"transport\":\"tcp\",\"type\":\"-\"},"
        "{\"fault\":\"timeout\",\"name\":\"mail.\\\\;.test\",\"rcode\":\"none\",\"transport\":"
        "\"tcp\",\"type\":\"TYPE65280\"},"
        "{\"name\":\".\",\"rcode\":\"BADVERS\",\"transport\":\"udp\",\"type\":\"NS\"}],"
        "\"dns_dropped\":2,\"policy_connections\":[],\"policy_fetches\":[],\"smtp_sessions\":[],"
        "\"tlsrpt_reports\":[]}");
    free(text);
    json_decref(snap);
    sts_observer_free(o);
}

/* TLS reports received are kept up to STS_OBSERVER_TLSRPT_MAX; the rest are counted. */
static void test_observer_tlsrpt_cap(void **state)
{
    (void)state;
    sts_observer *o = sts_observer_new();
    assert_non_null(o);
    for (int i = 0; i < STS_OBSERVER_TLSRPT_MAX; i++)
        assert_int_equal(sts_observer_tlsrpt(o, json_pack("{s:i}", "n", i)), 0);
    assert_int_equal(sts_observer_tlsrpt(o, json_pack("{s:i}", "n", -1)), STS_ETOOBIG);
    assert_int_equal(sts_observer_tlsrpt(o, NULL), STS_ENOMEM);
    json_t *snap = sts_observer_snapshot(o);
    assert_non_null(snap);
    json_t *recs = json_object_get(snap, "tlsrpt_reports");
    assert_int_equal(json_array_size(recs), STS_OBSERVER_TLSRPT_MAX);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(recs, 0), "n")), 0);
    assert_int_equal(json_integer_value(json_object_get(snap, "tlsrpt_dropped")), 2);
    json_decref(snap);
    sts_observer_free(o);
}

/* Text from the network that is not UTF-8 is kept, escaped, instead of losing the
 * record (a JSON string must be UTF-8). */
static void test_observer_non_utf8(void **state)
{
    (void)state;
    sts_observer *o = sts_observer_new();
    assert_non_null(o);
    assert_int_equal(
        sts_observer_fetch(o, "mta-sts.\xff.test", "https", "mta-sts.\xe9", "GET", "/x\x80", 200),
        0);
    sts_obs_smtp *ss = sts_observer_smtp_begin(o, "mail.example.test", "127.0.0.1", "127.0.0.2");
    assert_non_null(ss);
    assert_int_equal(sts_observer_smtp_tls(o, ss, "caf\xe9", "TLSv1.3", "X"), 0);
    assert_int_equal(sts_observer_smtp_command(o, ss, "EH\xccLO", 0, 500), 0);
    const char *rcpts[] = {"r\xfc@example.test", "ok@example.test"};
    assert_int_equal(sts_observer_smtp_message(o, ss, 1, 10, "00", "f\xf6@x.test", rcpts, 2), 0);
    /* Valid UTF-8 stays as it is. */
    assert_int_equal(sts_observer_smtp_command(o, ss, "\xc3\xa9", 0, 500), 0);
    json_t *snap = sts_observer_snapshot(o);
    char *text = json_dumps(snap, JSON_SORT_KEYS | JSON_COMPACT);
    assert_non_null(strstr(text, "\"host\":\"mta-sts.\\\\xFF.test\""));
    assert_non_null(strstr(text, "\"sni\":\"mta-sts.\\\\xE9\""));
    assert_non_null(strstr(text, "\"path\":\"/x\\\\x80\""));
    assert_non_null(strstr(text, "\"sni\":\"caf\\\\xE9\""));
    assert_non_null(strstr(text, "\"verb\":\"EH\\\\xCCLO\""));
    assert_non_null(strstr(text, "\"from\":\"f\\\\xF6@x.test\""));
    assert_non_null(strstr(text, "[\"r\\\\xFC@example.test\",\"ok@example.test\"]"));
    assert_non_null(strstr(text, "\"verb\":\"\xc3\xa9\""));
    free(text);
    json_decref(snap);
    sts_observer_free(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_life_cycle),
        cmocka_unit_test(test_bad_zone),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_steps),
        cmocka_unit_test(test_observer_dns),
        cmocka_unit_test(test_observer_tlsrpt_cap),
        cmocka_unit_test(test_observer_non_utf8),
        cmocka_unit_test(test_step_builds_new_state),
        cmocka_unit_test(test_step_failure_keeps_state),
        cmocka_unit_test(test_connections_hold_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
