#!/bin/sh
# install-peers.sh - installs the real MTA-STS peer that
# tests/integration/test_peer_postfix_sts.py replays the scenarios against:
# Debian's postfix-mta-sts-resolver (mta-sts-daemon, a socketmap TLS policy source
# for Postfix) and iproute2 (`ip netns`: the fake world serves DNS on port 53, HTTPS
# on 443 and SMTP on 25 inside a private network namespace). Postfix itself comes
# from scripts/install-postfix.sh, which this script runs first.
#
# Idempotent: does nothing when everything is installed (no apt-get update then).
# Installs only (scripts/apt-install.sh): nothing is started, stopped or
# reconfigured. The package ships a systemd unit, postfix-mta-sts-resolver.service,
# which Debian enables; it is not started now. The tests start their own
# mta-sts-daemon, with their own configuration, in a network namespace of their own.
# Exit status: 0 installed (or already there); 1 otherwise.
set -eu

HERE=$(dirname "$0")
"$HERE/install-postfix.sh"
"$HERE/apt-install.sh" install-peers.sh postfix-mta-sts-resolver iproute2

PATH="$PATH:/usr/sbin:/sbin"
for t in mta-sts-daemon mta-sts-query ip; do
  command -v "$t" >/dev/null 2>&1 || { echo "install-peers.sh: installed, but $t not found" >&2; exit 1; }
done
exit 0
