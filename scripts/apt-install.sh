#!/bin/sh
# apt-install.sh - installs the Debian packages named on the command line that are
# not installed yet; the one install procedure behind scripts/setup.sh,
# install-postfix.sh, install-peers.sh and install-bench.sh.
#
# Usage: apt-install.sh WHO PKG...   (WHO names the caller in messages)
# Idempotent: with every package installed it does nothing (no apt-get update).
# Uses sudo when not root. Never lets a package start a system service: while
# installing, a policy-rc.d answering 101 keeps invoke-rc.d from starting one
# (added only when the machine has none, removed afterwards). When the install
# fails it runs apt-get update once (package lists missing or stale on a fresh
# machine) and tries again. Exit status: 0 all installed; 1 otherwise.
set -eu

who=$1
shift
missing=""
for p in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "$who: need root or sudo to install:$missing" >&2; exit 1; }
  SUDO=sudo
fi

POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# added by ststest scripts/apt-install.sh for the install only\nexit 101\n' \
    | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
remove_policy() { if [ -n "$ADDED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi; ADDED_POLICY=""; }
trap remove_policy EXIT

echo "$who: installing:$missing" >&2
# shellcheck disable=SC2086
if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; then
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  # shellcheck disable=SC2086
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
fi
