#!/bin/sh
# lint-shell.sh - runs shellcheck over every shell script of the project: each file
# below DIR (default: the checkout this script is in) whose first line is a #! for
# sh, dash or bash, build folders, .git and node_modules left out. Registered as the
# ctest test "shellcheck" (label lint).
# Exit status: 0 every script clean; 1 a finding (printed) or no script found.
set -eu

root=${1:-$(dirname "$0")/..}
list=$(mktemp)
trap 'rm -f "$list"' EXIT
find "$root" \( -name .git -o -name 'build*' -o -name node_modules \) -prune -o -type f -print |
  while IFS= read -r f; do
    if head -n 1 "$f" 2>/dev/null | grep -Eq '^#! *(/usr)?/bin/(env +)?(sh|dash|bash)( |$)'; then
      printf '%s\n' "$f"
    fi
  done | sort >"$list"
n=$(wc -l <"$list")
if [ "$n" -eq 0 ]; then
  echo "lint-shell.sh: no shell script found below $root" >&2
  exit 1
fi
if tr '\n' '\0' <"$list" | xargs -0 shellcheck -x; then
  echo "shellcheck: $n scripts clean"
else
  echo "shellcheck: findings above (in $n scripts checked)" >&2
  exit 1
fi
