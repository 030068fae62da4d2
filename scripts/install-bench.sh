#!/bin/sh
# install-bench.sh - installs the Debian 12 packages that bench/dns-qps.py needs:
# dnsperf (the load generator), dnsmasq and unbound (the two peer DNS servers the
# fake world's DNS server is compared with) and dnsutils (dig, for the answer
# check). Not part of the normal test set-up (scripts/setup.sh): only the bench
# uses them.
#
# Idempotent: does nothing when every package is already installed. The packages'
# maintainer scripts would start system dnsmasq/unbound services (unbound on
# 127.0.0.1:53); scripts/apt-install.sh keeps them from doing so. The bench starts its own
# private instances on other loopback addresses and ports.
# Exit status: 0 installed (or already there); 1 when the install failed.
set -eu

"$(dirname "$0")/apt-install.sh" install-bench.sh dnsperf dnsmasq-base unbound dnsutils

for b in dnsperf dnsmasq unbound dig; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || {
    echo "install-bench.sh: $b not found after the install" >&2; exit 1; }
done
exit 0
