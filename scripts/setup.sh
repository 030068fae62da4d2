#!/bin/sh
# setup.sh - README quick-start line (1): installs what building and running
# ststest needs, and nothing else: the compiler and build tools, the libraries
# ststest links with (development packages; libopendkim-dev signs mailed TLS
# reports and verifies those the world receives), and the system trust store that
# `send` and `check` use by default (ca-certificates), and `file`, which CPack needs
# to work out the .deb's library dependencies (`cmake --build build --target package`).
#
# The test tools and the real peers of the tests (Postfix, postfix-mta-sts-resolver,
# swaks, ...) are not installed here: scripts/setup-tests.sh (README line (2))
# installs them on top.
#
# Idempotent: when every package is installed it does nothing (no apt-get update).
# Installs only (scripts/apt-install.sh): never removes a package, never starts,
# stops or reconfigures a system service. Uses sudo when not root.
# Exit status: 0 everything installed; 1 otherwise.
set -eu

exec "$(dirname "$0")/apt-install.sh" setup.sh \
  build-essential cmake pkg-config \
  libuv1-dev libssl-dev libc-ares-dev libldns-dev libcurl4-openssl-dev \
  libyaml-dev libjansson-dev libsqlite3-dev zlib1g-dev libopendkim-dev \
  ca-certificates file
