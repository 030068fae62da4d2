#!/bin/sh
# install-fuzz.sh - installs the Debian 12 packages that fuzz/run.sh needs: clang and
# its libFuzzer/sanitizer runtimes. Idempotent (scripts/apt-install.sh); not part of
# scripts/setup.sh, since the normal builds replay the fuzz corpora without them.
set -eu
exec sh "$(dirname "$0")/apt-install.sh" install-fuzz.sh clang libclang-rt-14-dev
