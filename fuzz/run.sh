#!/bin/sh
# run.sh - build the fuzz targets with clang + libFuzzer (+ ASan + UBSan) and run each
# one for SECONDS on a temporary copy of its corpus (with fuzz/dict/NAME.dict when
# there is one), one target after the other.
#
# Usage: fuzz/run.sh SECONDS [NAME...]     (NAME: ststxt, policy, ... default: all)
#        fuzz/run.sh --long [NAME...]      each target until FUZZ_RUNS executions
#                                          (default 2000000, no time limit); then the
#                                          inputs that add coverage are merged into
#                                          fuzz/corpus/NAME/ (libFuzzer -merge=1), to be
#                                          committed, and the line per target is the
#                                          row of the table in fuzz/README.md
# Environment:
#   STSTEST_FUZZ_BUILD  build directory (default: <repo>/build-fuzz), configured with
#                       CC=clang -DSTSTEST_FUZZ=ON when it is not yet
#   FUZZ_KEEP=1         keep the temporary corpora (their paths are printed), e.g. to
#                       merge new inputs into fuzz/corpus/ (see fuzz/README.md)
#   FUZZ_ARGS           extra libFuzzer flags for every target
# Prints one line per target (runs, coverage, corpus growth, verdict) and a final line.
# A crash, leak, timeout or violated property leaves its input in fuzz/crashes/ and the
# log next to it. Exit status: 0 every target ran clean; 1 some target failed; 2 usage
# or build error. The committed corpus is written only by --long.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
build=${STSTEST_FUZZ_BUILD:-$root/build-fuzz}
secs=${1:-}
long=0
if [ "$secs" = --long ]; then
  long=1
  secs=0
  runs_goal=${FUZZ_RUNS:-2000000}
  case "$runs_goal" in
    '' | *[!0-9]*) echo "run.sh: FUZZ_RUNS must be a number of executions" >&2; exit 2 ;;
  esac
fi
case "$secs" in
  '' | *[!0-9]*) echo "usage: fuzz/run.sh SECONDS [NAME...] | fuzz/run.sh --long [NAME...]" >&2
    exit 2 ;;
esac
shift

if ! grep -qs '^STSTEST_FUZZ:BOOL=ON' "$build/CMakeCache.txt"; then
  command -v clang >/dev/null 2>&1 ||
    { echo "run.sh: clang not found (install clang and libclang-rt-14-dev)" >&2; exit 2; }
  CC=clang cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTSTEST_FUZZ=ON \
    >"$build.configure.log" 2>&1 ||
    { cat "$build.configure.log" >&2; echo "run.sh: configure failed" >&2; exit 2; }
  rm -f "$build.configure.log"
fi
make -C "$build" -j2 fuzz_all >"$build/fuzz-build.log" 2>&1 ||
  { tail -40 "$build/fuzz-build.log" >&2; echo "run.sh: build failed" >&2; exit 2; }

if [ $# -eq 0 ]; then
  for f in "$root"/fuzz/fuzz_*.c; do
    n=$(basename "$f" .c)
    set -- "$@" "${n#fuzz_}"
  done
fi

crashes=$root/fuzz/crashes
mkdir -p "$crashes"
export ASAN_OPTIONS="${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

failed=0
total=0
for name; do
  bin=$build/fuzz/fuzz_$name
  seeds=$root/fuzz/corpus/$name
  if [ ! -x "$bin" ] || [ ! -d "$seeds" ]; then
    echo "fuzz_$name: no such target or corpus" >&2
    failed=$((failed + 1))
    continue
  fi
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/ststest-fuzz-$name.XXXXXX")
  cp "$seeds"/* "$tmp"/
  nseeds=$(find "$tmp" -type f | wc -l)
  log=$crashes/fuzz_$name.log
  dict=
  [ -f "$root/fuzz/dict/$name.dict" ] && dict=-dict=$root/fuzz/dict/$name.dict
  rc=0
  t0=$(date +%s)
  if [ "$long" = 1 ]; then
    limit=-runs=$runs_goal
  else
    limit=-max_total_time=$secs
  fi
  # shellcheck disable=SC2086
  "$bin" "$limit" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$crashes/$name-" $dict ${FUZZ_ARGS:-} "$tmp" \
    >"$log" 2>&1 || rc=$?
  took=$(($(date +%s) - t0))
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(echo "$last" | sed -n 's/.*cov: \([0-9]*\).*/\1/p')
  ft=$(echo "$last" | sed -n 's/.*ft: \([0-9]*\).*/\1/p')
  nfinal=$(find "$tmp" -type f | wc -l)
  if [ "$rc" -eq 0 ]; then
    verdict=ok
    rm -f "$log"
  else
    # the newest artifact of this target: the input that failed
    input=$(find "$crashes" -name "$name-*" -printf '%T@ %p\n' 2>/dev/null | sort -rn | sed -n '1s/^[^ ]* //p')
    verdict="FAILED (exit $rc; log $log; input ${input:-none})"
    failed=$((failed + 1))
  fi
  total=$((total + 1))
  merged=
  if [ "$long" = 1 ] && [ "$rc" -eq 0 ]; then
    # Keep only what adds coverage (features) to the committed corpus.
    before=$(find "$seeds" -type f | wc -l)
    if "$bin" -merge=1 -timeout=10 -rss_limit_mb=2048 -max_len=8192 "$seeds" "$tmp" \
      >"$crashes/fuzz_$name.merge.log" 2>&1; then
      rm -f "$crashes/fuzz_$name.merge.log"
      merged=", merged $(($(find "$seeds" -type f | wc -l) - before)) new inputs into fuzz/corpus/$name"
    else
      merged=", merge FAILED (log $crashes/fuzz_$name.merge.log)"
      failed=$((failed + 1))
    fi
  fi
  printf 'fuzz_%s: %ss, %s runs, cov %s, ft %s, corpus %s -> %s, %s%s\n' "$name" "$took" \
    "${runs:-?}" "${cov:-?}" "${ft:-?}" "$nseeds" "$nfinal" "$verdict" "$merged"
  if [ "${FUZZ_KEEP:-0}" = 1 ]; then
    echo "  corpus kept in $tmp"
  else
    rm -rf "$tmp"
  fi
done
rmdir "$crashes" 2>/dev/null || true

if [ "$failed" -eq 0 ]; then
  if [ "$long" = 1 ]; then
    echo "fuzz: all $total targets ran ($runs_goal executions each) without a failure"
  else
    echo "fuzz: all $total targets ran (up to ${secs}s each) without a failure"
  fi
  exit 0
fi
echo "fuzz: $failed of $total targets FAILED (inputs and logs in fuzz/crashes/)"
exit 1
