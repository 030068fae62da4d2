/*
 * result.h - one recipient's result as the sender reports it (sender.c): the facts a
 * job gathered (data, no I/O), told two ways: the per-MX summary people read at the
 * end of the transcript, and the JSON object of DESIGN.md's `send --json` contract
 * (one element of {"results": [...]}).
 *
 * The facts are kept compact, so that a job in flight carries only what it uses: an
 * MX entry exists for each MX tried or skipped (in preference order), and its TLS
 * facts keep sts_tls_info's (common/tls.h) strings on the heap instead of its fixed
 * arrays.
 *
 * Functions return values or new JSON references; none reports an error code.
 */
#ifndef STS_RESULT_H
#define STS_RESULT_H

#include <jansson.h>
#include <netinet/in.h>
#include <stddef.h>

#include "common/log.h"
#include "common/tls.h"
#include "common/vocab.h"
#include "sender/discover.h"
#include "sender/smtpc.h"

#define STS_RESULT_MAX_ADDRS 8     /* addresses recorded per MX host */
#define STS_RESULT_MAX_FAILURES 16 /* RFC 8460 result types per recipient */

/* What a TLS handshake with an MX showed (from sts_tls_info, sts_mx_tls_set). */
typedef struct sts_mx_tls {
    char version[16]; /* "TLSv1.3" */
    char cipher[64];
    int verified, chain_ok, time_ok, name_ok;
    int not_yet_valid;           /* time_ok is 0 because the certificate is not valid yet */
    sts_result_type result_type; /* RFC 8460 result type when !verified */
    char not_before[32], not_after[32];
    char *sni;          /* NULL when none */
    char *verify_error; /* OpenSSL's verify error string; NULL when none */
    char *error;        /* why the handshake failed; NULL when it did not */
    char **peer_names;  /* "DNS:x" SANs, then "CN:x" */
    size_t npeer_names;
    sts_tls_cert *chain; /* the chain the MX sent, leaf first (check only; else NULL) */
    size_t nchain;
} sts_mx_tls;

/* One MX host tried or skipped. */
typedef struct sts_mx_result {
    const char *host; /* borrowed from the job's MX list: lives as long as the job */
    unsigned preference;
    int implicit;                   /* RFC 5321 5.1: the domain itself, no MX records */
    int policy_match;               /* 1/0; -1 when there is no policy */
    char address[INET6_ADDRSTRLEN]; /* the last one connected to */
    char local_address[INET6_ADDRSTRLEN]; /* our end of that connection (TLSRPT's
                                           * sending-mta-ip), "" = none */
    char helo[256]; /* the name in the MX's EHLO reply (TLSRPT's receiving-mx-helo) */
    char addresses[STS_RESULT_MAX_ADDRS][INET6_ADDRSTRLEN]; /* every address connected to */
    size_t naddresses;
    sts_action action;
    sts_result_type failure; /* RFC 8460 result type that matters, or none */
    char detail[512];
    const char *stage; /* a static string: a session state name, "DNS" or "POLICY" */
    int connected;
    int starttls_offered;
    int tls_attempted, tls_up;
    sts_mx_tls tls; /* valid when tls_attempted */
    int pipelined;
    int code; /* the last SMTP reply */
    char enhanced[16];
    char text[STS_SMTPC_TEXT_MAX];
    int plain_retry; /* a plaintext retry followed a failed handshake */
    /* check: */
    int probed_refused; /* the policy refuses this MX; it was probed for its facts only */
    int greeted;        /* a session got the 220 greeting and an EHLO/HELO answer */
    int starttls_code;  /* the reply to STARTTLS, 0 = not sent */
    double dns_ms;      /* its address lookup */
    double stage_ms[STS_SMTPC_DONE]; /* of the session whose facts are kept (smtpc.h) */
} sts_mx_result;

/* One recipient (send) or domain (check). */
typedef struct sts_rcpt_result {
    const char *arg; /* the argument as given (borrowed) */
    int check;       /* a `check` result: the outcome is what a sender would do */
    char domain[256];
    sts_outcome outcome;
    char detail[512]; /* why the outcome, for people */
    sts_mode mode;    /* the mode applied */
    int tls_required;
    int recheck_retried; /* RFC 8461 5.1: the MX list was tried again under a new policy */
    int null_mx;
    sts_mx_result *mx; /* the MX hosts tried or skipped, in order */
    size_t nmx;
    sts_result_type failures[STS_RESULT_MAX_FAILURES];
    size_t nfailures;
} sts_rcpt_result;

/* Replace t's facts by those of info (strings copied; the chain too when with_chain).
 * 0 or STS_ENOMEM (t then keeps
 * what could be copied; every pointer stays valid for sts_mx_tls_free). */
int sts_mx_tls_set(sts_mx_tls *t, const sts_tls_info *info, int with_chain);
/* Release t's strings and zero it. */
void sts_mx_tls_free(sts_mx_tls *t);

/* Add an RFC 8460 result type once (none and duplicates are ignored). */
void sts_result_add_failure(sts_rcpt_result *r, sts_result_type type);

/* The RESULT lines and the per-MX matrix at the end of a job (send and check alike).
 * d: what discovery found. */
void sts_result_log(sts_log *log, const sts_rcpt_result *r, const sts_discovery *d);

/* Equal JSON values of many results, stored once: a run to 10,000 recipients at one
 * domain holds one "policy" object, one "tls" object per certificate seen, one string
 * "delivered", ... and each result only what is its own (jansson counts references,
 * and a value may sit in many containers). A value in the pool never changes: treat
 * what sts_result_json returns as read-only. */
typedef struct sts_result_pool sts_result_pool;

/* An empty pool; NULL when out of memory (then nothing is shared). */
sts_result_pool *sts_result_pool_new(void);
/* Drop the pool's references (the results keep theirs). NULL is fine. */
void sts_result_pool_free(sts_result_pool *p);

/* The JSON object of one result (DESIGN.md's `send --json`): check says whether the
 * run was a check (no recipient), cache_on whether a policy cache was in use; its
 * values are shared through p when p is not NULL. A new reference. */
json_t *sts_result_json(const sts_rcpt_result *r, const sts_discovery *d, int check, int cache_on,
                        sts_result_pool *p);

#endif
