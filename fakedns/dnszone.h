/*
 * dnszone.h - the world's DNS zone and its answers.
 *
 * A zone is built from the scenario's zone-file lines (names relative to the domain,
 * '@' = the domain, default TTL 300) plus the A records the world assigns to its
 * hosts. sts_dns_answer() is the whole protocol as a pure function of (zone, query
 * bytes, transport): it validates the query in a fixed order (after NSD's
 * query_process), answers authoritatively for the zone and sizes the reply for the
 * transport. fakedns/dnssrv.h serves it over UDP and TCP.
 *
 * Functions return 0 or a negative STS_* code unless said otherwise.
 */
#ifndef STS_DNSZONE_H
#define STS_DNSZONE_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"

typedef struct sts_dns_zone sts_dns_zone;

/* A new empty zone for domain (no trailing dot needed). NULL + message on failure. */
sts_dns_zone *sts_dns_zone_new(const char *domain, char *err, size_t errlen);
void sts_dns_zone_free(sts_dns_zone *z);

/* The name relative names of the lines and faults added from now on end in (as a
 * zone file's $ORIGIN; the domain itself until this is called): the domain or a
 * name under it. 0, or STS_EINVAL for a bad name or one outside the domain. */
int sts_dns_zone_set_origin(sts_dns_zone *z, const char *name);

/* Add zone-file lines. Blank lines and ';' comments are skipped; a line starting with
 * blanks continues the previous owner. Owners must lie in the domain. Errors read
 * "where:line: what is wrong" (line = first_line + index of the line). */
int sts_dns_zone_add_lines(sts_dns_zone *z, const char *text, const char *where, int first_line,
                           char *err, size_t errlen);
/* Add "name A addr" (name absolute, no trailing dot needed). A name outside the
 * domain becomes an apex of its own, so that the server answers for it. */
int sts_dns_zone_add_a(sts_dns_zone *z, const char *name, const char *addr);
/* Add one record in presentation form with an absolute owner ("s1._domainkey.x.test.
 * TXT \"v=DKIM1; ...\""; default TTL) at or under apex, which the zone then answers
 * for like its own domain (a name outside the domain, as for sts_dns_zone_add_a).
 * STS_EINVAL for a record ldns cannot read or an owner outside apex. */
int sts_dns_zone_add_record(sts_dns_zone *z, const char *apex, const char *rr_text);
/* The TXT records of name (absolute, no trailing dot needed): the first one's strings
 * concatenated are appended to out; returns how many TXT records name owns (0: none),
 * or a negative STS_* code. Read without any query: the world's own DNS data, for the
 * world's own checks (the DKIM keys of reports it receives). */
int sts_dns_zone_txt(const sts_dns_zone *z, const char *name, sts_buf *out);
/* 1 when name owns an A, AAAA or CNAME record in the zone, else 0. */
int sts_dns_zone_has_address(const sts_dns_zone *z, const char *name);
/* The MX targets of the zone's MX records that lie in the domain, in zone order,
 * lowercase, without trailing dot, no duplicates: a new NULL-terminated array
 * (free each string and the array), NULL on ENOMEM. */
char **sts_dns_zone_mx_targets(const sts_dns_zone *z);
/* A scripted fault (common/scenario.h STS_SCN_DNS_*) for queries of name (relative
 * to the domain like a zone line's owner: "@", "_mta-sts", or absolute with a
 * trailing dot) and type ("TXT"; "ANY" = every type), delay seconds. The first
 * matching fault wins. Errors read "where:line: what is wrong". */
int sts_dns_zone_add_fault(sts_dns_zone *z, const char *name, const char *type, int fault,
                           double delay, const char *where, int line, char *err, size_t errlen);
/* Synthesize an SOA and an NS record for every apex that has none, then index the
 * zone: a hash of every owner and empty non-terminal, each with its answers for the
 * types that matter precomputed in wire form (by the reference path,
 * sts_dns_answer_ref), so that sts_dns_answer() builds most replies by copying.
 * Call once after the last addition, before answering (a later addition drops the
 * index and answers come from the reference path again). */
int sts_dns_zone_finish(sts_dns_zone *z);

typedef enum { STS_DNS_UDP = 0, STS_DNS_TCP = 1 } sts_dns_transport;

/* Forged answers sent ahead of the real one (sts_dns_result.spoof). */
enum {
    STS_DNS_SPOOF_NONE = 0,
    STS_DNS_SPOOF_ID,     /* wrong_id: another message ID, from the server's address */
    STS_DNS_SPOOF_SOURCE, /* wrong_source: the right ID, from another address and from
                             another port (UDP only: a TCP stream has one source) */
};

/* Extended RCODE values used in results (RFC 1035 4.1.1, RFC 6891 9). */
enum { STS_DNS_BADVERS = 16 };

typedef struct sts_dns_result {
    int answered; /* 0: the query was dropped (too short, or a response) */
    int rcode;    /* 0..15, or STS_DNS_BADVERS */
    int aa, tc;   /* flags of the reply */
    int ancount, nscount;
    int authority_soa; /* the authority section holds the apex SOA */
    /* The question, kept as it came (no text on the hot path; sts_dns_name_text and
     * sts_dns_type_text turn it to text when a log line or a test needs it): */
    const uint8_t *qname; /* wire form, any case, inside the query bytes (valid while
                             they are); NULL if the question was not parsed */
    size_t qname_len;
    uint16_t qtype; /* meaningful when qname != NULL */
    /* A scripted fault matched (fault >= 0): */
    int fault;    /* STS_SCN_DNS_* or -1 */
    int drop;     /* send nothing at all (timeout); out is empty */
    int spoof;    /* STS_DNS_SPOOF_*: forged answers to send before this one */
    double delay; /* seconds to wait before sending */
} sts_dns_result;

/* Answer one query (q, len) received over transport. On success out holds the wire
 * reply (without the TCP length prefix), sized to fit the transport: at most 512
 * octets over UDP, or the EDNS0 payload size the query advertised (RFC 6891 6.2.5);
 * a reply that does not fit is sent with TC set and empty sections (RFC 1035
 * 4.2.1, RFC 2181 9). res describes the reply. Returns 0 or STS_ENOMEM. */
int sts_dns_answer(const sts_dns_zone *z, const uint8_t *q, size_t len, sts_dns_transport transport,
                   sts_buf *out, sts_dns_result *res);

/* The same answer computed entirely with ldns from the zone's records (no index):
 * the reference the precomputed answers are built from and tested against. */
int sts_dns_answer_ref(const sts_dns_zone *z, const uint8_t *q, size_t len,
                       sts_dns_transport transport, sts_buf *out, sts_dns_result *res);

/* Lower-case presentation form of the wire name (wire, len) without the trailing
 * dot ("." for the root), escaped as RFC 1035 5.1 (\. \; \( \) \\ \DDD). */
void sts_dns_name_text(const uint8_t *wire, size_t len, char *out, size_t outlen);
/* Mnemonic of a type ("TXT", "TYPE65280"). */
void sts_dns_type_text(uint16_t type, char *out, size_t outlen);

/* A spoofed copy of the wire reply (reply, len) into out: other data in the answer
 * section (TXT "v=STSv1; id=spoofed;", A 192.0.2.66, AAAA 2001:db8::66, MX 10
 * spoofed.invalid.), as an off-path attacker's forgery would look, and another
 * message ID unless keep_id (an attacker who guessed the ID: only the source
 * address and port then tell the forgery apart, RFC 5452 4.1 and 9.1).
 * Returns 0, STS_EINVAL (not a reply) or STS_ENOMEM. */
int sts_dns_spoof(const uint8_t *reply, size_t len, int keep_id, sts_buf *out);

/* Name of an rcode ("NXDOMAIN"). */
const char *sts_dns_rcode_name(int rcode);

#endif
