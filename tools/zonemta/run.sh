#!/bin/sh
# run.sh - replays scenarios with ZoneMTA's outbound path as the sender:
# `ststest run --sender-cmd 'node tools/zonemta/send.js ...' [OPTIONS] PATH...`.
#
# Usage: tools/zonemta/run.sh [ststest run options] PATH...
#   e.g. tools/zonemta/run.sh -v scenarios/bad-san.yaml
#        tools/zonemta/run.sh -j 2 --json /tmp/zonemta.json scenarios/
# Environment: STSTEST_BIN (default: build/ststest of this checkout), STSTEST_NODE (the
# node to run send.js with; default: node on PATH). Runs as any user: the adapter is
# given the world's DNS server, ports and CA, so no namespace and no root are needed.
# The modules must be installed first (scripts/install-peers.sh runs `npm ci` here).
# Exit status: that of `ststest run`; 1 when the binary, node or the modules are missing.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
TOP=$(cd "$HERE/../.." && pwd)
BIN=${STSTEST_BIN:-$TOP/build/ststest}
NODE=${STSTEST_NODE:-$(command -v node || true)}

[ -x "$BIN" ] || { echo "run.sh: $BIN not found: build first, or set STSTEST_BIN" >&2; exit 1; }
if [ -z "$NODE" ] || [ ! -x "$NODE" ]; then echo "run.sh: node not found: run scripts/install-peers.sh, or set STSTEST_NODE" >&2; exit 1; fi
[ -d "$HERE/node_modules/zone-mta" ] || { echo "run.sh: $HERE/node_modules missing: run scripts/install-peers.sh (npm ci)" >&2; exit 1; }

# The placeholders are the runner's; they are replaced (and shell-quoted) per step.
exec "$BIN" run --sender-cmd "'$NODE' '$HERE/send.js' --rcpt {rcpt} --dns {dns} --ca {ca} \
--smtp-port {smtp_port} --https-port {https_port} --now {now} --cache {cache} \
--require-tls {require_tls} --sender-mode {sender_mode} --dns-timeout {dns_timeout} --mode {mode}" "$@"
