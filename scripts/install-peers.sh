#!/bin/sh
# install-peers.sh - installs the real MTA-STS peers that tests/integration/
# test_peer_postfix_sts.py replays the scenarios against: Debian's
# postfix-mta-sts-resolver (the mta-sts-daemon, a socketmap TLS policy source for
# Postfix) and iproute2 (`ip netns`, so the fake world can serve DNS on port 53,
# HTTPS on 443 and SMTP on 25 inside a private network namespace). Postfix itself
# comes from scripts/install-postfix.sh, which this script runs first.
#
# Idempotent: does nothing when everything is installed (no apt-get update then).
# Never starts a system service: the package ships a systemd unit for
# mta-sts-daemon; scripts/apt-install.sh keeps invoke-rc.d from starting it while
# installing, and a daemon running anyway is stopped. The tests start their own daemon with their own config.
# Exit status: 0 installed (or already there) and nothing left running; 1 when
# the install failed.
set -eu

HERE=$(dirname "$0")
"$HERE/install-postfix.sh"

"$HERE/apt-install.sh" install-peers.sh postfix-mta-sts-resolver iproute2

# A system mta-sts-daemon would hold 127.0.0.1:8461 in the root namespace; the tests
# run theirs in a namespace of their own, but nothing of ours is meant to be running.
if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
  $SUDO systemctl stop postfix-mta-sts-resolver >/dev/null 2>&1 || true
fi
for t in mta-sts-daemon mta-sts-query ip; do
  command -v "$t" >/dev/null 2>&1 || [ -x "/usr/bin/$t" ] || [ -x "/usr/sbin/$t" ] || [ -x "/sbin/$t" ] || {
    echo "install-peers.sh: installed, but $t not found" >&2; exit 1; }
done
exit 0
