/*
 * dns_zone_fixture.h - the zone-file lines of example.test that the DNS answer tests
 * (tests/unit/test_dnssrv.c) and the DNS fuzz target (fuzz/fuzz_dns_answer.c) both
 * answer from: MX, multi-string TXT, CNAME chains and a loop, an out-of-zone CNAME,
 * a deep name and an AAAA.
 */
#ifndef STS_DNS_ZONE_FIXTURE_H
#define STS_DNS_ZONE_FIXTURE_H

#define STS_TEST_ZONE_TEXT                                                                         \
    "@          MX   10 mail\n"                                                                    \
    "@          MX   20 mail2\n"                                                                   \
    "; a comment line\n"                                                                           \
    "\n"                                                                                           \
    "_mta-sts   TXT  \"v=STSv1; \" \"id=20240101T000000;\"\n"                                      \
    "multi      TXT  \"a\" \"b\" \"c\"\n"                                                          \
    "multi      TXT  \"second\"\n"                                                                 \
    "www        CNAME alias\n"                                                                     \
    "alias      CNAME mail\n"                                                                      \
    "loop1      CNAME loop2\n"                                                                     \
    "loop2      CNAME loop1\n"                                                                     \
    "ext        CNAME mail.elsewhere.test.\n"                                                      \
    "a.b.c      A    192.0.2.1\n"                                                                  \
    "v6         AAAA 2001:db8::1\n"

#endif
