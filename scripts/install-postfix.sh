#!/bin/sh
# install-postfix.sh - installs Debian's postfix for the integration tests in
# tests/integration/test_postfix.py, which run their own PRIVATE Postfix instance
# (own config, queue and data directories under a pytest tmp dir, loopback only).
#
# Idempotent: does nothing when postfix is already installed. Preseeds debconf
# with "No configuration" so apt never asks a question and writes no
# /etc/postfix/main.cf, keeps the package's maintainer scripts from starting the
# system instance (a policy-rc.d that forbids it, only while installing, only if
# the machine has none of its own), and stops a system master that is running
# anyway. Exit status: 0 installed (or already there) and nothing left running;
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

# invoke-rc.d asks /usr/sbin/policy-rc.d whether it may start a service; 101 = no.
# Only add one for the install and only when the machine has none (containers
# usually ship one that already says 101).
POLICY=/usr/sbin/policy-rc.d
ADDED_POLICY=""
if [ ! -e "$POLICY" ]; then
  printf '#!/bin/sh\n# added by ststest scripts/install-postfix.sh for the install only\nexit 101\n' \
    | $SUDO tee "$POLICY" >/dev/null
  $SUDO chmod 755 "$POLICY"
  ADDED_POLICY=1
fi
remove_policy() { [ -n "$ADDED_POLICY" ] && $SUDO rm -f "$POLICY"; ADDED_POLICY=""; }
trap remove_policy EXIT

if ! $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix; then
  # The package lists may be missing or stale on a fresh machine.
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postfix
fi
remove_policy

# The tests start their own instance; a system one must not be running (it would
# hold port 25 and a master.lock in /var/spool/postfix). With "No configuration"
# there is no /etc/postfix/main.cf, so it normally never starts.
if pgrep -x master >/dev/null 2>&1 && [ -f /etc/postfix/main.cf ]; then
  $SUDO postfix stop >/dev/null 2>&1 || true
fi
command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || {
  echo "install-postfix.sh: postfix installed but /usr/sbin/postfix not found" >&2; exit 1; }
exit 0
