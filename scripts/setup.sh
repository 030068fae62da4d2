#!/bin/sh
# Installs the Debian 12 packages ststest needs to build and test, then the real
# peers of the integration tests (Postfix, postfix-mta-sts-resolver, iproute2)
# through scripts/install-peers.sh. Idempotent: when every package is already
# installed it does nothing (no apt-get update).
set -eu

HERE=$(dirname "$0")
"$HERE/apt-install.sh" setup.sh \
  build-essential cmake pkg-config \
  libuv1-dev libssl-dev libc-ares-dev libldns-dev libcurl4-openssl-dev \
  libyaml-dev libjansson-dev libsqlite3-dev libcmocka-dev \
  python3 python3-pytest python3-yaml python3-dnspython \
  openssl curl dnsutils swaks
# The real peers must be installed without a prompt and without starting system
# services: they have a script of their own.
exec "$HERE/install-peers.sh"
