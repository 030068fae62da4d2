/*
 * test_served.c - the life of a served state (fakedns/served.h): made with one
 * reference and empty host entries; every holder keeps it, and what it owns (zone,
 * policy strings, TLS contexts), alive; the last release frees it all, and says so
 * in the world's transcript. Run under ASan, a use after free or a leak fails it.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "fakedns/served.h"

static void test_new_is_empty(void **state)
{
    (void)state;
    sts_served *s = sts_served_new(3, NULL);
    assert_non_null(s);
    assert_int_equal(s->refs, 1);
    assert_int_equal(s->nhosts, 3);
    for (size_t i = 0; i < s->nhosts; i++) {
        assert_null(s->hosts[i].mx);
        assert_null(s->hosts[i].ctx);
    }
    assert_null(s->zone);
    sts_served_unref(s);
    sts_served *none = sts_served_new(0, NULL);
    assert_non_null(none);
    assert_null(none->hosts);
    sts_served_unref(none);
    sts_served_unref(NULL); /* a no-op */
}

/* The world's reference and two connections' ones, released in an order other than
 * the one they were taken in: the state and what it owns live until the last. */
static void test_last_holder_frees(void **state)
{
    (void)state;
    sts_log *log = sts_log_new_mem(STS_LOG_DEBUG, NULL);
    assert_non_null(log);
    char err[256] = "";
    sts_served *world = sts_served_new(2, log);
    assert_non_null(world);
    world->gen = 7;
    assert_non_null(world->zone = sts_dns_zone_new("example.test", err, sizeof(err)));
    assert_non_null(world->hosts[1].ctx = SSL_CTX_new(TLS_server_method()));
    assert_non_null(world->policy_body = strdup("version: STSv1\r\n"));
    assert_non_null(world->policy_ctype = strdup("text/plain"));

    sts_served *smtp = sts_served_ref(world);
    sts_served *https = sts_served_ref(world);
    assert_ptr_equal(smtp, world);
    assert_ptr_equal(https, world);
    assert_int_equal(world->refs, 3);

    sts_served_unref(world); /* a step swapped the world to another state */
    sts_served_unref(smtp);  /* the SMTP session closed */
    assert_int_equal(https->refs, 1);
    assert_null(strstr(sts_log_text(log), "released"));
    /* Still whole for the connection that holds it. */
    assert_string_equal(https->policy_body, "version: STSv1\r\n");
    assert_int_equal(SSL_CTX_up_ref(https->hosts[1].ctx), 1);
    SSL_CTX_free(https->hosts[1].ctx);
    assert_int_equal(sts_dns_zone_has_address(https->zone, "mail.example.test"), 0);

    sts_served_unref(https); /* the last holder */
    assert_non_null(strstr(sts_log_text(log), "served state 7 released"));
    sts_log_free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_is_empty),
        cmocka_unit_test(test_last_holder_frees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
