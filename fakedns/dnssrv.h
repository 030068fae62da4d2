/*
 * dnssrv.h - the world's authoritative DNS server: sts_dns_answer() (dnszone.h) over
 * UDP and TCP on one address and port, with the scripted faults' delays and forged
 * answers, every query recorded in the observer.
 *
 * Functions return 0 or a negative STS_* code unless said otherwise.
 */
#ifndef STS_DNSSRV_H
#define STS_DNSSRV_H

#include <stdint.h>
#include <uv.h>

#include "common/log.h"
#include "fakedns/dnszone.h"
#include "fakedns/observer.h"

typedef struct sts_dnssrv sts_dnssrv;

struct sts_served;

/* Serve the zone of the world's served state on the bound UDP socket udp_fd and the
 * bound, listening TCP socket tcp_fd (both owned by the server from now on, also on
 * failure). Every query, over UDP or TCP, is answered from the zone of *served as
 * it is when the query is answered (no reference is kept: a DNS TCP connection
 * holds no state between queries); answers already made (delayed ones) go out as
 * they were. Every query is recorded in obs. */
int sts_dnssrv_start(uv_loop_t *loop, struct sts_served *const *served, int udp_fd, int tcp_fd,
                     sts_observer *obs, sts_log *log, sts_dnssrv **out);
/* What the server lost: datagrams the kernel dropped on its UDP socket (the "drops"
 * column of /proc/net/udp{,6} for the socket's inode: libuv passes no SO_RXQ_OVFL
 * control messages up) plus messages the server itself dropped (malformed, not
 * answerable, over a cap). *rcvbuf is the receive buffer the kernel granted. Returns
 * 0, or STS_EIO when the kernel's counter could not be read (*kernel stays 0). */
typedef struct sts_dnssrv_drops {
    uint64_t kernel, server;
    int rcvbuf;
} sts_dnssrv_drops;
int sts_dnssrv_get_drops(sts_dnssrv *s, sts_dnssrv_drops *out);

/* Close both sockets and every TCP session; done(arg) runs when all are closed, and
 * the server is freed. */
void sts_dnssrv_stop(sts_dnssrv *s, void (*done)(void *arg), void *arg);

#endif
