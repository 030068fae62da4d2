#!/bin/sh
# install-peers.sh - installs the real MTA-STS peers the integration tests replay the
# scenarios against:
# - tests/integration/test_peer_postfix_sts.py: Debian's postfix-mta-sts-resolver
#   (mta-sts-daemon, a socketmap TLS policy source for Postfix) and iproute2 (`ip netns`:
#   the fake world serves DNS on port 53, HTTPS on 443 and SMTP on 25 inside a private
#   network namespace). Postfix itself comes from scripts/install-postfix.sh, run first.
# - tests/integration/test_peer_zonemta.py: ZoneMTA's outbound path (tools/zonemta):
#   Debian's nodejs and npm, then `npm ci` in tools/zonemta, which installs the modules
#   its package-lock.json pins (from the npm registry; nothing is fetched at test time).
#   A Node.js that is already installed with its npm (NodeSource's nodejs package bundles
#   npm and conflicts with Debian's) is used as it is, if it is 18.19 or newer.
#
# Idempotent: does nothing when everything is installed (no apt-get update then; `npm ci`
# only when tools/zonemta/node_modules does not match the lock file).
# Installs only (scripts/apt-install.sh): nothing is started, stopped or reconfigured.
# The resolver package ships a systemd unit, postfix-mta-sts-resolver.service, which
# Debian enables; it is not started now. The tests start their own mta-sts-daemon, with
# their own configuration, in a network namespace of their own.
# Exit status: 0 installed (or already there); 1 otherwise.
set -eu

HERE=$(dirname "$0")
"$HERE/install-postfix.sh"
"$HERE/apt-install.sh" install-peers.sh postfix-mta-sts-resolver iproute2

PATH="$PATH:/usr/sbin:/sbin"
for t in mta-sts-daemon mta-sts-query ip; do
  command -v "$t" >/dev/null 2>&1 || { echo "install-peers.sh: installed, but $t not found" >&2; exit 1; }
done

# ZoneMTA's outbound path.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  "$HERE/apt-install.sh" install-peers.sh nodejs npm
fi
for t in node npm; do
  command -v "$t" >/dev/null 2>&1 || { echo "install-peers.sh: installed, but $t not found" >&2; exit 1; }
done
ver=$(node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.stdout.write(a > 18 || (a === 18 && b >= 19) ? "ok" : process.versions.node)')
if [ "$ver" != ok ]; then
  echo "install-peers.sh: node $ver is too old for tools/zonemta (Node.js 18.19 or newer)" >&2
  exit 1
fi
ZM="$HERE/../tools/zonemta"
STAMP="$ZM/node_modules/.ststest-lock"
if [ -f "$STAMP" ] && cmp -s "$STAMP" "$ZM/package-lock.json"; then
  exit 0
fi
# --ignore-scripts: the one install script in the tree (dtrace-provider's native build,
# for zone-mta's API server) is not needed; --omit=optional leaves it out altogether.
if ! (cd "$ZM" && npm ci --ignore-scripts --omit=optional --no-audit --no-fund --loglevel=error); then
  echo "install-peers.sh: npm ci in tools/zonemta failed" >&2
  exit 1
fi
cp "$ZM/package-lock.json" "$STAMP"
exit 0
