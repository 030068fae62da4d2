#!/bin/sh
# Installs the Debian 12 packages ststest needs to build and test, then the real
# peers of the integration tests (Postfix, postfix-mta-sts-resolver, iproute2)
# through scripts/install-peers.sh. Idempotent: when every package is already
# installed it does nothing (no apt-get update).
set -eu

PKGS="build-essential cmake pkg-config
libuv1-dev libssl-dev libc-ares-dev libldns-dev libcurl4-openssl-dev
libyaml-dev libjansson-dev libsqlite3-dev libcmocka-dev
python3 python3-pytest python3-yaml python3-dnspython
openssl curl dnsutils swaks"

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
HERE=$(dirname "$0")
if [ -z "$missing" ]; then
  # The real peers (Postfix, postfix-mta-sts-resolver) have their own script: they
  # must be installed without a prompt and without starting system services.
  exec "$HERE/install-peers.sh"
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "setup.sh: need root or sudo to install:$missing" >&2; exit 1; }
  SUDO=sudo
fi
echo "setup.sh: installing:$missing" >&2
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
# shellcheck disable=SC2086
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing
exec "$HERE/install-peers.sh"
