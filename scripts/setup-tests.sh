#!/bin/sh
# setup-tests.sh - README quick-start line (2): what scripts/setup.sh installs, plus
# everything the tests use:
# - cmocka (unit tests), Debian's python3 with pytest, PyYAML and dnspython
#   (integration tests), python3-dkim (dkimpy: verifies mailed TLS reports),
#   the scripts' lint (shellcheck) and groff-base (the man page's rendering check);
# - the independent peers the integration tests talk to: openssl (s_client,
#   s_server), curl, dig (dnsutils), swaks with TLS (libnet-ssleay-perl: without it
#   swaks prints "TLS not available" and its tests fail);
# - the parts of the real-world deployment (tests/integration/test_realworld.py):
#   nginx (the policy host) and dnsmasq-base (DNS; the dnsmasq binary without the
#   dnsmasq service), run by the tests in the foreground. Debian's nginx enables
#   nginx.service for the next boot; it is not started here (see below);
# - the real MTAs: Postfix (scripts/install-postfix.sh) and, by scripts/install-peers.sh,
#   postfix-mta-sts-resolver with iproute2, and ZoneMTA's outbound path (Debian's nodejs
#   and npm, then `npm ci` in tools/zonemta).
#
# STSTEST_NO_POSTFIX=1 leaves Postfix and the peers out (as the tests then skip
# them); STSTEST_NO_PEERS=1 leaves out postfix-mta-sts-resolver, iproute2 and ZoneMTA's
# modules (nodejs, npm, tools/zonemta/node_modules).
#
# Idempotent (nothing happens when everything is installed). Installs only: never
# removes a package (a machine whose MTA is not Postfix is told so, and nothing is
# installed), never starts, stops or reconfigures a system service.
# Exit status: 0 everything installed; 1 otherwise.
set -eu

HERE=$(dirname "$0")
"$HERE/setup.sh"
"$HERE/apt-install.sh" setup-tests.sh \
  libcmocka-dev python3 python3-pytest python3-yaml python3-dnspython python3-jsonschema \
  python3-cryptography python3-dkim \
  shellcheck groff-base \
  openssl curl dnsutils swaks libnet-ssleay-perl \
  nginx dnsmasq-base
if [ "${STSTEST_NO_POSTFIX:-0}" = 1 ]; then
  echo "setup-tests.sh: STSTEST_NO_POSTFIX=1: Postfix and the MTA-STS peer not installed" >&2
  exit 0
fi
"$HERE/install-postfix.sh"
if [ "${STSTEST_NO_PEERS:-0}" = 1 ]; then
  echo "setup-tests.sh: STSTEST_NO_PEERS=1: the MTA-STS peers not installed" >&2
  exit 0
fi
exec "$HERE/install-peers.sh"
