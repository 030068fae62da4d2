/*
 * fuzz_dns_answer.c - fuzz target for the world's DNS query handling
 * (sts_dns_answer, fakedns/dnszone.h via dnssrv.h): the input is the bytes of one
 * DNS message as a client would send it (UDP payload, or a TCP message without its
 * length prefix), answered over UDP and over TCP against one fixed zone.
 *
 * The zone is built once, on the first input, and never changed afterwards (the
 * answer functions take it const): the zone of tests/unit/test_dnssrv.c (MX, a
 * multi-string TXT, CNAME chains and a loop, an empty non-terminal, a TXT set too big
 * for 512 octets, an out-of-domain host apex) plus one scripted fault of every kind
 * on names of their own.
 *
 * Properties: those of fuzz_dns_check (fuzz_dns.h) for both transports: the indexed
 * and the reference path agree on the result and on the reply, and the reply is sound.
 * The function returns 0 (libFuzzer's convention).
 */
#include "common/scenario.h"
#include "fuzz/fuzz_dns.h"
#include "tests/unit/dns_zone_fixture.h"

static const char zone_text[] = STS_TEST_ZONE_TEXT "sf         TXT  \"servfail\"\n"
                                                   "tr         TXT  \"truncated\" \"over UDP\"\n"
                                                   "sl         A    192.0.2.7\n"
                                                   "wi         A    192.0.2.8\n"
                                                   "ws         MX   5 mail\n"
                                                   "to         AAAA 2001:db8::2\n";

static const struct {
    const char *name, *type;
    int fault;
    double delay;
} faults[] = {
    {"sf", "TXT", STS_SCN_DNS_SERVFAIL, 0}, {"rf", "ANY", STS_SCN_DNS_REFUSED, 0},
    {"nx", "A", STS_SCN_DNS_NXDOMAIN, 0},   {"to", "ANY", STS_SCN_DNS_TIMEOUT, 0},
    {"tr", "TXT", STS_SCN_DNS_TRUNCATE, 0}, {"sl", "A", STS_SCN_DNS_DELAY, 1.5},
    {"wi", "ANY", STS_SCN_DNS_WRONG_ID, 0}, {"ws", "MX", STS_SCN_DNS_WRONG_SOURCE, 0},
};

/* The fixed zone; aborts when it cannot be built (the target would test nothing). */
static const sts_dns_zone *zone(void)
{
    static sts_dns_zone *z;
    if (z)
        return z;
    char err[256] = "";
    z = sts_dns_zone_new("example.test", err, sizeof(err));
    FUZZ_CHECK(z != NULL, "zone: %s", err);
    FUZZ_CHECK(sts_dns_zone_add_lines(z, zone_text, "fuzz", 1, err, sizeof(err)) == 0, "zone: %s",
               err);
    char line[200];
    for (int i = 0; i < 20; i++) {
        snprintf(line, sizeof(line), "big TXT \"%02d%0100d\"", i, 0);
        FUZZ_CHECK(sts_dns_zone_add_lines(z, line, "fuzz", 100 + i, err, sizeof(err)) == 0,
                   "zone: %s", err);
    }
    FUZZ_CHECK(sts_dns_zone_add_a(z, "mail.example.test", "127.1.2.10") == 0, "zone: add_a");
    FUZZ_CHECK(sts_dns_zone_add_a(z, "mx.provider.test", "127.1.2.12") == 0, "zone: add_a");
    for (size_t i = 0; i < sizeof(faults) / sizeof(faults[0]); i++)
        FUZZ_CHECK(sts_dns_zone_add_fault(z, faults[i].name, faults[i].type, faults[i].fault,
                                          faults[i].delay, "fuzz", 200 + (int)i, err,
                                          sizeof(err)) == 0,
                   "zone: %s", err);
    FUZZ_CHECK(sts_dns_zone_finish(z) == 0, "zone: finish");
    return z;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const sts_dns_zone *z = zone();
    if (size > 65535)
        return 0; /* no DNS message is longer (RFC 1035 4.2.2) */
    fuzz_dns_check(z, data, size, STS_DNS_UDP);
    fuzz_dns_check(z, data, size, STS_DNS_TCP);
    return 0;
}
