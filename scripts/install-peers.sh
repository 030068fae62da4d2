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
# mta-sts-daemon; a policy-rc.d that says 101 keeps invoke-rc.d from starting it
# while installing (added only when the machine has none), and a daemon running
# anyway is stopped. The tests start their own daemon with their own config.
# Exit status: 0 installed (or already there) and nothing left running; 1 when
# the install failed.
set -eu

HERE=$(dirname "$0")
"$HERE/install-postfix.sh"

PKGS="postfix-mta-sts-resolver iproute2"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-peers.sh: need root or sudo to install:$missing" >&2; exit 1; }
  SUDO=sudo
fi

POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# added by ststest scripts/install-peers.sh for the install only\nexit 101\n' \
    | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
remove_policy() { [ -n "$ADDED_POLICY" ] && $SUDO rm -f "$POLICY"; ADDED_POLICY=""; }
trap remove_policy EXIT

echo "install-peers.sh: installing:$missing" >&2
# shellcheck disable=SC2086
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; then
  # The package lists may be missing or stale on a fresh machine.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
remove_policy

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
