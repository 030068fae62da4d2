#!/bin/sh
# install-bench.sh - installs the Debian 12 packages that the benches in bench/ need:
# dnsperf (the load generator), dnsmasq and unbound (the two peer DNS servers the
# fake world's DNS server is compared with) and dnsutils (dig, for the answer
# check) for bench/dns-qps.py; wrk (HTTP load generator) and nginx (the peer HTTPS
# server, run privately on loopback) for bench/policy-rps.py and bench/send-rate.py;
# swaks, openssl, postfix (a private instance) and time (GNU time, peak RSS) for
# bench/send-rate.py and bench/sender-rss.py. Not part of the normal test set-up
# (scripts/setup.sh): only the benches use them.
#
# Idempotent: does nothing when every package is already installed. The packages'
# maintainer scripts would start system dnsmasq/unbound services (unbound on
# 127.0.0.1:53, nginx on :80, postfix on :25); scripts/apt-install.sh keeps them from
# doing so. The benches start their own private instances on other loopback addresses
# and ports.
# Exit status: 0 installed (or already there); 1 when the install failed.
set -eu

"$(dirname "$0")/apt-install.sh" install-bench.sh dnsperf dnsmasq-base unbound dnsutils \
  wrk nginx swaks openssl postfix time

for b in dnsperf dnsmasq unbound dig wrk nginx swaks openssl postfix; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || {
    echo "install-bench.sh: $b not found after the install" >&2; exit 1; }
done
exit 0
