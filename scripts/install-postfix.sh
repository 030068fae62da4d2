#!/bin/sh
# install-postfix.sh - installs Debian's postfix for the integration tests in
# tests/integration/test_postfix.py, which run their own PRIVATE Postfix instance
# (own config, queue and data directories under a pytest tmp dir, loopback only).
#
# Idempotent: does nothing when postfix is already installed. Preseeds debconf
# with "No configuration" so apt never asks a question and writes no
# /etc/postfix/main.cf, keeps the package's maintainer scripts from starting the
# system instance (through scripts/apt-install.sh), and stops a system master that
# is running anyway. Exit status: 0 installed (or already there) and nothing left running;
# 1 when the install failed or a system postfix could not be stopped.
set -eu

if dpkg-query -W -f='${Status}' postfix 2>/dev/null | grep -q "install ok installed"; then
  exit 0
fi

SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 || { echo "install-postfix.sh: need root or sudo to install postfix" >&2; exit 1; }
  SUDO=sudo
fi

echo "install-postfix.sh: installing postfix (No configuration)" >&2
printf '%s\n' \
  "postfix postfix/main_mailer_type select No configuration" \
  "postfix postfix/mailname string localhost" \
  | $SUDO debconf-set-selections

"$(dirname "$0")/apt-install.sh" install-postfix.sh postfix

# The tests start their own instance; a system one must not be running (it would
# hold port 25 and a master.lock in /var/spool/postfix). With "No configuration"
# there is no /etc/postfix/main.cf, so it normally never starts.
if pgrep -x master >/dev/null 2>&1 && [ -f /etc/postfix/main.cf ]; then
  $SUDO postfix stop >/dev/null 2>&1 || true
fi
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || {
  echo "install-postfix.sh: postfix installed but /usr/sbin/postfix not found" >&2; exit 1; }
exit 0
