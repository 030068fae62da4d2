#!/bin/bash
# fresh-machine.sh - proves the README's quick start on a Debian 12 that nobody has
# touched, as a new user would meet it, and the Debian package on one that never saw
# a compiler. Run by .ci/run (as root); a developer can run it by hand the same way.
#
#  1. `mmdebstrap --variant=minbase bookworm` makes a minimal Debian 12 root once
#     (a tarball); every root below is a fresh copy of it.
#  2. Root A gets a clean checkout of this repository (`git archive` of HEAD, with
#     the uncommitted changes to tracked files when run by hand) in /root/ststest.
#     The root is bind-mounted onto itself (without that, `ip netns` fails inside
#     it: "mount --make-rslave /" failed), then /proc, /sys, /dev and a /run tmpfs.
#  3. In A, as root: README line (1), verbatim (read from README.md); then, with
#     /run/systemd/system present so that every script and package takes its
#     systemd path, README line (2), verbatim; then the set-up once more, which must
#     install nothing. After each line no process may be left running in the root
#     (the set-up starts no service; the tests stop what they start).
#  4. In A: `cmake --install build` (the from-source install) and
#     `cmake --build build --target package` (the .deb).
#  5. Root B, another fresh copy: `apt-get install ./ststest_*.deb`; there is no
#     compiler in B, `ststest run` with no PATH replays the installed library, and
#     `ststest lint` checks a policy and a TXT record.
#  6. Root C, another fresh copy with sudo and a user allowed to use it: README lines
#     (1) and (2) verbatim as that user (the set-up goes through sudo; the tests that
#     need root skip, saying so).
#
# A failing step is named, with the last lines of its output. Everything mounted or
# created is removed on every exit path (success, failure, Ctrl-C, SIGTERM); the
# folder is removed only when nothing is mounted below it any more.
# Usage: .ci/fresh-machine.sh [WORKDIR-PARENT]   (default /var/tmp)
# Exit status: 0 every step passed; 1 a step failed; 2 cannot run here (not root).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
if [ "$(id -u)" != 0 ]; then
  echo "fresh-machine.sh: must run as root (chroot, mount)" >&2
  exit 2
fi
WORK=$(mktemp -d "${1:-/var/tmp}/ststest-fresh.XXXXXX")
STEP="setting up"
T0=$(date +%s)

# Processes whose root directory is $1: whatever a step left running in that root.
procs_in() {
  local p root
  for p in /proc/[0-9]*; do
    root=$(readlink "$p/root" 2>/dev/null) || continue
    if [ "$root" = "$1" ]; then echo "${p#/proc/}"; fi
  done
}

# Mount points at or below $WORK, deepest first.
mounts_below() {
  awk -v w="$WORK" '$5 == w || index($5, w "/") == 1 { print $5 }' /proc/self/mountinfo |
    sort -r
}

cleanup() {
  local rc=$? r pids m
  trap - EXIT INT TERM HUP
  set +e
  for r in "$WORK"/root-*; do
    [ -d "$r" ] || continue
    pids=$(procs_in "$r")
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill -KILL $pids 2>/dev/null
      sleep 0.5
    fi
  done
  for _ in 1 2 3; do
    for m in $(mounts_below); do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null; done
    [ -z "$(mounts_below)" ] && break
    sleep 1
  done
  if [ -n "$(mounts_below)" ]; then
    echo "fresh-machine.sh: still mounted, $WORK left in place:" >&2
    mounts_below >&2
    rc=1
  else
    rm -rf --one-file-system "$WORK"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "fresh-machine.sh: interrupted during: $STEP" >&2; exit 130' INT
trap 'echo "fresh-machine.sh: terminated during: $STEP" >&2; exit 143' TERM HUP

# run STEP-NAME CMD...: runs CMD with its output in a log; on failure names the step
# and shows the end of the output.
run() {
  STEP=$1
  shift
  local log t rc=0
  log="$WORK/step.log"
  t=$(date +%s)
  echo "== fresh machine: $STEP"
  "$@" >"$log" 2>&1 </dev/null || rc=$?
  if [ "$rc" != 0 ]; then
    echo "fresh-machine.sh: FAILED: $STEP (exit $rc); its last 150 lines of output:" >&2
    tail -n 150 "$log" >&2
    echo "fresh-machine.sh: FAILED: $STEP (exit $rc)" >&2
    exit 1
  fi
  echo "   ok ($(($(date +%s) - t)) s)"
}

fail() {
  echo "fresh-machine.sh: FAILED: $STEP: $*" >&2
  exit 1
}

# A README quick-start line, verbatim: the line after "# (N)" in the README.
readme_line() {
  local line
  line=$(sed -n "/^# ($1) /{n;p;q}" "$SRC/README.md")
  case $line in
    scripts/*) printf '%s\n' "$line" ;;
    *) echo "fresh-machine.sh: README.md has no quick-start line ($1)" >&2; exit 1 ;;
  esac
}

new_root() {
  local r="$WORK/root-$1"
  mkdir "$r"
  tar -xpf "$WORK/base.tar" -C "$r"
  mount --bind "$r" "$r"
  mount --make-rprivate "$r"
  mount -t proc proc "$r/proc"
  mount -t sysfs sysfs "$r/sys"
  mount --rbind /dev "$r/dev"
  mount --make-rslave "$r/dev"
  mount -t tmpfs -o mode=0755 tmpfs "$r/run"
  mkdir -p "$r/run/lock"
  cp /etc/resolv.conf "$r/etc/resolv.conf"
  # The network this machine reaches the package registries through, not a package:
  # an egress proxy whose CA the host trusts from /usr/local/share/ca-certificates
  # (ca-certificates' postinst adds it to the bundle when line (1) installs that
  # package), and the host's npm setting that points npm at that bundle. A user's
  # machine has neither and needs neither.
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    mkdir -p "$r/usr/local/share/ca-certificates"
    cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/"
  fi
  local f
  for f in /etc/npmrc /usr/etc/npmrc; do
    if [ -f "$f" ]; then mkdir -p "$r${f%/*}" && cp "$f" "$r$f"; fi
  done
}

# in ROOT CMD: runs CMD with bash in ROOT as a fresh root login would, in the
# checkout; a clean environment (only HOME, PATH, LANG, TERM).
in_root() {
  local r="$WORK/root-$1"
  shift
  chroot "$r" /usr/bin/env -i HOME=/root TERM=dumb LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    /bin/bash -c "cd /root/ststest 2>/dev/null || cd /root; $*"
}

# copy_checkout DIR: the checkout as committed (with the uncommitted changes to tracked
# files when run by hand), unpacked into DIR.
copy_checkout() {
  mkdir "$1"
  git -C "$SRC" archive --format=tar "${stash:-HEAD}" | tar -x -C "$1"
}

nothing_running() {
  local pids
  pids=$(procs_in "$WORK/root-$1")
  if [ -n "$pids" ]; then
    # shellcheck disable=SC2086
    ps -o pid=,args= -p $pids >&2 || true
    fail "processes left running in the root after it"
  fi
}

LINE1=$(readme_line 1)
LINE2=$(readme_line 2)
sh "$SRC/scripts/apt-install.sh" fresh-machine.sh mmdebstrap >/dev/null

run "build a fresh Debian 12 root (mmdebstrap --variant=minbase bookworm)" \
  mmdebstrap --variant=minbase bookworm "$WORK/base.tar"

STEP="root A: copy a clean checkout"
new_root A
stash=$(git -C "$SRC" stash create 2>/dev/null || true)
copy_checkout "$WORK/root-A/root/ststest"

run "root A: README line (1): $LINE1" in_root A "$LINE1"
grep -Eq '^[0-9]+ passed, 0 failed' "$WORK/step.log" || fail "no 'N passed, 0 failed' line"
nothing_running A

mkdir -p "$WORK/root-A/run/systemd/system"
run "root A, systemd present: README line (2): $LINE2" in_root A "$LINE2"
nothing_running A
run "root A, systemd present: the set-up once more (must install nothing)" \
  in_root A "scripts/setup.sh && scripts/setup-tests.sh"
if grep -q 'installing:' "$WORK/step.log"; then fail "the second set-up installed packages"; fi
nothing_running A

run "root A: install from source (cmake --install build)" \
  in_root A "cmake --install build && /usr/local/bin/ststest run --list >/dev/null"
run "root A: build the package (cmake --build build --target package)" \
  in_root A "cmake --build build --target package"
deb=$(cd "$WORK/root-A/root/ststest/build" && ls ststest_*.deb)

STEP="root B: a fresh root for the package"
new_root B
cp "$WORK/root-A/root/ststest/build/$deb" "$WORK/root-B/root/"
run "root B: apt-get install ./$deb" \
  in_root B "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ./$deb"
run "root B: no build tools came with it" \
  in_root B "! command -v cc && ! command -v cmake && ! dpkg -s libssl-dev >/dev/null 2>&1"
run "root B: ststest run (the installed library)" in_root B "ststest run"
grep -Eq '^[0-9]+ passed, 0 failed' "$WORK/step.log" || fail "no 'N passed, 0 failed' line"
run "root B: ststest lint, the manual and the docs" in_root B "
  printf 'version: STSv1\nmode: enforce\nmx: mail.example.test\nmax_age: 604800\n' > /tmp/p.txt &&
  ststest lint --mx-host mail.example.test /tmp/p.txt &&
  echo 'v=STSv1; id=20240101T000000;' | ststest lint --txt - &&
  ! echo 'v=STSv2; id=1;' | ststest lint --txt - &&
  test -s /usr/share/man/man1/ststest.1.gz && test -s /usr/share/doc/ststest/README.md"
nothing_running B

# README lines (1) and (2) by a user with sudo, as the README promises: the set-up goes
# through sudo, everything else runs as the user.
STEP="root C: a fresh root with a user who has sudo"
new_root C
in_root C "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sudo &&
  useradd -m -s /bin/bash pm && echo 'pm ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/pm" \
  >"$WORK/step.log" 2>&1 || { tail -n 50 "$WORK/step.log" >&2; fail "cannot make the user"; }
copy_checkout "$WORK/root-C/home/pm/ststest"
chroot "$WORK/root-C" chown -R pm:pm /home/pm/ststest
as_user() {
  chroot --userspec=pm:pm "$WORK/root-C" /usr/bin/env -i HOME=/home/pm TERM=dumb \
    LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin /bin/bash -c "cd /home/pm/ststest && $*"
}
run "root C, as a user with sudo: README line (1): $LINE1" as_user "$LINE1"
grep -Eq '^[0-9]+ passed, 0 failed' "$WORK/step.log" || fail "no 'N passed, 0 failed' line"
nothing_running C
# Line (2) as the user: the tests that need root (a private Postfix, network
# namespaces, a tmpfs) skip and say so; everything else runs and must pass.
run "root C, as a user with sudo: README line (2): $LINE2" as_user "$LINE2"
nothing_running C

STEP="done"
echo "== fresh machine: every step passed ($(($(date +%s) - T0)) s)"
