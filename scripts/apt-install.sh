#!/bin/sh
# apt-install.sh - installs the Debian packages named on the command line that are
# not installed yet; the one install procedure behind every scripts/setup*.sh and
# scripts/install-*.sh.
#
# Usage: apt-install.sh WHO PKG...   (WHO names the caller in messages)
#
# What it does to a machine, and nothing more:
# - With every package installed it does nothing at all (no apt-get update).
# - It never removes a package. It asks apt first (apt-get -s); when installing the
#   missing packages would remove any (postfix replaces an installed exim4, say),
#   it installs nothing, names them, and exits 1.
# - It never lets a package start a system service: while installing, a
#   policy-rc.d answering 101 keeps invoke-rc.d and deb-systemd-invoke (with or
#   without systemd) from starting one. It is added only when the machine has none,
#   and removed afterwards on every exit path.
# - When apt cannot find a package (package lists missing, as on a fresh machine) or
#   the install fails (lists stale), it runs apt-get update and tries again.
# Uses sudo when not root. Exit status: 0 all installed; 1 otherwise.
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
APT="$SUDO env DEBIAN_FRONTEND=noninteractive apt-get"

# The plan: apt-get -s prints one "Inst"/"Remv" line per package it would touch.
plan=$(mktemp)
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
cleanup() {
  rm -f "$plan"
  if [ -n "$ADDED_POLICY" ]; then $SUDO rm -f "$POLICY"; fi
  ADDED_POLICY=""
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

simulate() {
  # shellcheck disable=SC2086
  $APT -s install -y --no-install-recommends $missing >"$plan" 2>&1
}
# Exits 1, installing nothing, when the plan in $plan removes a package.
refuse_removals() {
  removals=$(sed -n 's/^Remv \([^ ]*\).*/\1/p' "$plan" | tr '\n' ' ')
  if [ -n "$removals" ]; then
    echo "$who: installing$missing would remove: $removals" >&2
    echo "$who: nothing installed; ststest never removes packages (see README, Set-up footprint)" >&2
    exit 1
  fi
}
# The install itself, for a plan that removes nothing (-o APT::Get::Remove=false
# makes apt refuse rather than remove, should the plan change under us).
install() {
  # shellcheck disable=SC2086
  $APT install -y -qq --no-install-recommends -o APT::Get::Remove=false $missing
}
if ! simulate; then
  echo "$who: updating the package lists" >&2
  $APT update -qq
  simulate || { cat "$plan" >&2; echo "$who: apt cannot install:$missing" >&2; exit 1; }
fi
refuse_removals

if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# added by ststest scripts/apt-install.sh for the install only\nexit 101\n' \
    | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi

echo "$who: installing:$missing" >&2
# Lists that are there but stale name files the mirror no longer has: update, retry.
if ! install; then
  echo "$who: the install failed; updating the package lists and trying again" >&2
  $APT update -qq
  simulate || { cat "$plan" >&2; echo "$who: apt cannot install:$missing" >&2; exit 1; }
  refuse_removals
  install
fi
