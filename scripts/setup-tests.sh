#!/bin/sh
# setup-tests.sh - README quick-start line (2): what scripts/setup.sh installs, plus
# everything the tests use:
# - cmocka (unit tests), Debian's python3 with pytest, PyYAML and dnspython
#   (integration tests), shellcheck (the scripts' lint) and groff-base (the man
#   page's rendering check);
# - the independent peers the integration tests talk to: openssl (s_client,
#   s_server), curl, dig (dnsutils), swaks with TLS (libnet-ssleay-perl: without it
#   swaks prints "TLS not available" and its tests fail);
# - the real MTAs: Postfix (scripts/install-postfix.sh) and postfix-mta-sts-resolver
#   with iproute2 (scripts/install-peers.sh).
#
# STSTEST_NO_POSTFIX=1 leaves Postfix and the peers out (as the tests then skip
# them); STSTEST_NO_PEERS=1 leaves out postfix-mta-sts-resolver and iproute2.
#
# Idempotent (nothing happens when everything is installed). Installs only: never
# removes a package (a machine whose MTA is not Postfix is told so, and nothing is
# installed), never starts, stops or reconfigures a system service.
# Exit status: 0 everything installed; 1 otherwise.
set -eu

HERE=$(dirname "$0")
"$HERE/setup.sh"
"$HERE/apt-install.sh" setup-tests.sh \
  libcmocka-dev python3 python3-pytest python3-yaml python3-dnspython python3-cryptography \
  shellcheck groff-base \
  openssl curl dnsutils swaks libnet-ssleay-perl
if [ "${STSTEST_NO_POSTFIX:-0}" = 1 ]; then
  echo "setup-tests.sh: STSTEST_NO_POSTFIX=1: Postfix and the MTA-STS peer not installed" >&2
  exit 0
fi
"$HERE/install-postfix.sh"
if [ "${STSTEST_NO_PEERS:-0}" = 1 ]; then
  echo "setup-tests.sh: STSTEST_NO_PEERS=1: the MTA-STS peer not installed" >&2
  exit 0
fi
exec "$HERE/install-peers.sh"
