#!/bin/sh
# install-bench.sh - installs the Debian 12 packages that bench/dns-qps.sh needs:
# dnsperf (the load generator), dnsmasq and unbound (the two peer DNS servers the
# fake world's DNS server is compared with) and dnsutils (dig, for the answer
# check). Not part of the normal test set-up (scripts/setup.sh): only the bench
# uses them.
#
# Idempotent: does nothing when every package is already installed. The packages'
# maintainer scripts would start system dnsmasq/unbound services (unbound on
# 127.0.0.1:53); a policy-rc.d that forbids that is put in place for the install
# only, and only when the machine has none of its own. The bench starts its own
# private instances on other loopback addresses and ports.
# Exit status: 0 installed (or already there); 1 when the install failed.
set -eu

PKGS="dnsperf dnsmasq-base unbound dnsutils"

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-bench.sh: need root or sudo to install:$missing" >&2; exit 1; }
  SUDO=sudo
fi

# invoke-rc.d asks /usr/sbin/policy-rc.d whether it may start a service; 101 = no.
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# added by ststest scripts/install-bench.sh for the install only\nexit 101\n' \
    | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
remove_policy() { [ -n "$ADDED_POLICY" ] && $SUDO rm -f "$POLICY"; ADDED_POLICY=""; }
trap remove_policy EXIT

echo "install-bench.sh: installing:$missing" >&2
# shellcheck disable=SC2086
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; then
  # The package lists may be missing or stale on a fresh machine.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
remove_policy

for b in dnsperf dnsmasq unbound dig; do
  command -v "$b" >/dev/null 2>&1 || [ -x "/usr/sbin/$b" ] || {
    echo "install-bench.sh: $b not found after the install" >&2; exit 1; }
done
exit 0
