#!/bin/sh
# install-postfix.sh - installs Debian's postfix for the integration tests
# (tests/integration/test_postfix.py and the peer test), which run PRIVATE Postfix
# instances of their own (own configuration, queue and data directories under a
# pytest tmp dir, loopback only, in the foreground).
#
# Idempotent: does nothing when postfix is installed. Preseeds debconf with "No
# configuration", so that apt asks nothing and writes no /etc/postfix/main.cf: the
# system instance stays unconfigured and never starts. Installs only
# (scripts/apt-install.sh): when another MTA is installed (exim4, say), installing
# postfix would remove it, and nothing is installed. No service is started, stopped
# or reconfigured. Exit status: 0 installed (or already there); 1 otherwise.
set -eu

if dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-postfix.sh: need root or sudo to install postfix" >&2; exit 1; }
  SUDO=sudo
fi

printf '%s\n' \
  "postfix postfix/main_mailer_type select No configuration" \
  "postfix postfix/mailname string localhost" \
  | $SUDO debconf-set-selections

"$(dirname "$0")/apt-install.sh" install-postfix.sh postfix

[ -x /usr/sbin/postfix ] || {
  echo "install-postfix.sh: postfix installed but /usr/sbin/postfix not found" >&2; exit 1; }
exit 0
