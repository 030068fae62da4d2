#!/bin/bash
# peer-postfix-mta-sts.sh - a real sending MTA as the sender of `ststest run --sender-cmd`:
# a private Postfix whose TLS policy comes from postfix-mta-sts-resolver (mta-sts-daemon,
# socketmap on 127.0.0.1:8461). See docs/peer-testing.md.
#
#   peer-postfix-mta-sts.sh setup DIR
#       Write a private Postfix configuration (DIR/etc: a sending MTA, no listener,
#       nothing chrooted, smtp_tls_security_level=may, smtp_tls_policy_maps =
#       socketmap:inet:127.0.0.1:8461:postfix, smtp_tls_CAfile = DIR/ca.pem) and
#       nothing else, from the templates beside this tool (postfix-main.cf.in,
#       postfix-master.cf.in: role "send"). Exit 0, or 70 when Postfix or the daemon
#       is not installed or a template is missing.
#
#   peer-postfix-mta-sts.sh send --dir DIR --rcpt RCPT --dns HOST:PORT --ca FILE
#                                [--mode MODE] [--cache FILE] [--record FILE] [--wait SECS]
#                                [--require-tls 0|1] [--sender-mode MODE] [--now UNIXTIME]
#       One delivery, for one scenario step: point the network namespace's resolv.conf
#       at the world's DNS server, copy the world's CA to DIR/ca.pem, start mta-sts-daemon
#       (trusting only that CA; with --cache its policy cache is FILE.mta-sts.db, so the
#       steps of one case share it and cases do not), start Postfix (`start-fg`), inject
#       one message with sendmail(1), wait for Postfix's verdict on it in its log, then
#       stop both and empty the queue, whatever happened.
#       Exit like sendmail: 0 sent, 75 deferred, 69 bounced; 70 when the harness itself
#       failed (no DNS port 53, a process did not start, no verdict within --wait
#       seconds, a TLS policy lookup error): those are not the peer's behaviour.
#       stdout: one line saying what Postfix did (and the daemon's socketmap answer);
#       --record appends the same as one JSON object per line.
#       Exit 76 (the runner's "unsupported"), before anything is started, with the reason
#       as the last line on stderr, for what this peer cannot be asked to do: --require-tls
#       1 (the scenario's sender: {require_tls: true}), --sender-mode other than auto (a
#       policy mode override), and a --now more than 300 s from the wall clock (the peer
#       follows the wall clock, so a step that moved the world's clock by more cannot be
#       followed).
#
# Postfix and the daemon take their DNS server from /etc/resolv.conf, which has no port:
# the world must serve DNS on port 53 (`ststest run --standard-ports`), and `send` must run
# inside a network namespace made with `ip netns add NAME` (it writes the nameserver into
# /etc/netns/NAME/resolv.conf, which `ip netns exec` mounts over /etc/resolv.conf). It
# refuses to touch the host's own /etc/resolv.conf. Root only (Postfix's master).
set -u

POSTFIX=/usr/sbin/postfix
POSTSUPER=/usr/sbin/postsuper
SENDMAIL=/usr/sbin/sendmail
DAEMON=/usr/bin/mta-sts-daemon
SOCKETMAP_PORT=8461
MYHOSTNAME=sender.ststest.invalid
MYDOMAIN=ststest.invalid
FROM=ststest@$MYHOSTNAME
TEMPLATES=$(dirname "$0") # postfix-main.cf.in and postfix-master.cf.in
PYTHON=/usr/bin/python3

die() { # die STATUS MESSAGE: a harness problem, not something the peer did
    echo "peer-postfix-mta-sts: $2" >&2
    exit "$1"
}

usage() {
    sed -n '2,/^set -u/p' "$0" | sed -e '/^set -u/d' -e 's/^# \{0,1\}//' >&2
    exit 64
}

check_installed() {
    [ -x "$POSTFIX" ] || die 70 "$POSTFIX not found: run scripts/install-peers.sh"
    [ -x "$DAEMON" ] || die 70 "$DAEMON not found: run scripts/install-peers.sh (postfix-mta-sts-resolver)"
    [ "$(id -u)" = 0 ] || die 70 "a private Postfix needs root (its master drops privileges itself)"
}

# ---- setup ---------------------------------------------------------------------------

# sed_value VALUE: VALUE written for the right-hand side of sed's s|...|...|
sed_value() {
    printf '%s' "$1" | sed -e 's/[\\|&]/\\&/g'
}

# fill_template NAME DEST KEY=VALUE...: the template TEMPLATES/NAME.in written to DEST
# for the role "send" (the template's head says how), each @KEY@ replaced by VALUE.
fill_template() {
    local template=$TEMPLATES/$1.in dest=$2 kv
    shift 2
    [ -r "$template" ] || die 70 "$template missing: it belongs beside $0"
    local -a script=(-e '/^##/d' -e '/^receive: /d' -e 's/^send: //')
    for kv in "$@"; do
        script+=(-e "s|@${kv%%=*}@|$(sed_value "${kv#*=}")|g")
    done
    sed "${script[@]}" "$template" >"$dest" || die 70 "cannot write $dest"
    if grep -n '@[A-Z_]*@' "$dest" >&2; then
        die 70 "$dest: placeholders of $template left unfilled (above)"
    fi
}

cmd_setup() {
    [ $# = 1 ] || usage
    check_installed
    local dir=$1
    case $dir in /*) ;; *) dir=$PWD/$dir ;; esac
    # Postfix's unprivileged daemons must be able to traverse every directory above.
    # data_directory is left to Postfix: it must be owned by the postfix user.
    mkdir -p "$dir/etc" "$dir/queue" || die 70 "cannot create $dir"
    chmod 0755 "$dir" "$dir/etc" "$dir/queue" || die 70 "cannot chmod $dir"
    fill_template postfix-main.cf "$dir/etc/main.cf" DIR="$dir" MYHOSTNAME="$MYHOSTNAME" \
        MYDOMAIN="$MYDOMAIN" SOCKETMAP_PORT="$SOCKETMAP_PORT" WRITER="$0 setup"
    fill_template postfix-master.cf "$dir/etc/master.cf"
    : >"$dir/maillog.all"
    echo "peer-postfix-mta-sts: private Postfix configured in $dir/etc"
}

# ---- send ----------------------------------------------------------------------------

DIR="" RCPT="" DNS="" CA="" MODE="" CACHE="" RECORD="" WAIT=45
REQUIRE_TLS=0 SENDER_MODE=auto NOW=""
UNSUPPORTED=76 # `ststest run --sender-cmd`: the case is unsupported (last stderr line: why)
CLOCK_SLACK=300
DAEMON_PID="" PF_PID="" MASTER_PID=""

# Stop Postfix and the daemon and empty the queue; safe to call twice.
cleanup() {
    if [ -n "$PF_PID" ]; then
        [ -z "$MASTER_PID" ] && MASTER_PID=$(awk '{ print $1; exit }' "$DIR/queue/pid/master.pid" 2>/dev/null)
        # SIGTERM to master stops its children and then it exits; postfix-script, which
        # waits for it in the foreground, exits too. Before master wrote its pid file,
        # it is start-fg's child.
        if [ -n "$MASTER_PID" ]; then
            kill -TERM "$MASTER_PID" 2>/dev/null
        else
            pkill -TERM -P "$PF_PID" 2>/dev/null
        fi
        for _ in $(seq 100); do
            kill -0 "$PF_PID" 2>/dev/null || break
            sleep 0.1
        done
        if kill -0 "$PF_PID" 2>/dev/null; then
            # master and its children share master's session (it calls setsid).
            [ -n "$MASTER_PID" ] && pkill -KILL -s "$MASTER_PID" 2>/dev/null
            kill -KILL "$PF_PID" 2>/dev/null
        fi
        wait "$PF_PID" 2>/dev/null
        PF_PID=""
    fi
    if [ -n "$DAEMON_PID" ]; then
        # The daemon's graceful stop waits a second or more for idle clients; its cache
        # (sqlite) is committed per entry, so a kill loses nothing.
        kill -KILL "$DAEMON_PID" 2>/dev/null
        wait "$DAEMON_PID" 2>/dev/null
        DAEMON_PID=""
    fi
    if [ -n "$DIR" ] && [ -f "$DIR/etc/main.cf" ]; then
        "$POSTSUPER" -c "$DIR/etc" -d ALL >/dev/null 2>&1
        [ -f "$DIR/maillog" ] && cat "$DIR/maillog" >>"$DIR/maillog.all" 2>/dev/null
        [ -f "$DIR/daemon.log" ] && cat "$DIR/daemon.log" >>"$DIR/daemon.log.all" 2>/dev/null
    fi
}

listening() { # listening PORT: something LISTENs on 127.0.0.1:PORT in this namespace
    ss -Hltn "sport = :$1" 2>/dev/null | grep -q .
}

# Point this network namespace's resolver at the world's DNS server.
set_resolver() {
    local host=$1 ns
    ns=$(ip netns identify $$ 2>/dev/null)
    if [ -n "$ns" ]; then
        [ -f "/etc/netns/$ns/resolv.conf" ] ||
            die 70 "namespace $ns has no /etc/netns/$ns/resolv.conf: create it before 'ip netns exec' (that is when it is mounted)"
        # Rewrite in place: the file is bind-mounted over /etc/resolv.conf, a new inode
        # would not be seen.
        printf 'nameserver %s\noptions timeout:2 attempts:2\n' "$host" >"/etc/netns/$ns/resolv.conf" ||
            die 70 "cannot write /etc/netns/$ns/resolv.conf"
    fi
    local first
    first=$(awk '$1 == "nameserver" { print $2; exit }' /etc/resolv.conf 2>/dev/null)
    if [ "$first" != "$host" ]; then
        [ -z "$ns" ] && die 70 "not inside a network namespace (ip netns exec), and /etc/resolv.conf names $first, not the world's DNS server $host; this tool never edits the host's resolv.conf"
        die 70 "/etc/resolv.conf names $first after writing /etc/netns/$ns/resolv.conf: was this process started with 'ip netns exec $ns'?"
    fi
}

start_daemon() {
    local cache_cfg
    if [ -n "$CACHE" ]; then
        cache_cfg="  type: sqlite
  options:
    filename: \"$CACHE.mta-sts.db\""
    else
        cache_cfg="  type: internal"
    fi
    cat >"$DIR/mta-sts.yml" <<EOF
host: 127.0.0.1
port: $SOCKETMAP_PORT
# (reuse_port: false crashes 1.1.2 in responder.start(); a daemon left over on the
# port is caught before the start instead.)
reuse_port: true
shutdown_timeout: 1
cache:
$cache_cfg
default_zone:
  strict_testing: false
  timeout: 4
EOF
    : >"$DIR/daemon.log"
    listening "$SOCKETMAP_PORT" && die 70 "127.0.0.1:$SOCKETMAP_PORT is already taken in this namespace (a daemon left over?)"
    # Python's ssl default context (aiohttp) trusts SSL_CERT_FILE: the world's CA only.
    SSL_CERT_FILE="$DIR/ca.pem" SSL_CERT_DIR=/nonexistent \
        "$DAEMON" -c "$DIR/mta-sts.yml" -v debug -l "$DIR/daemon.log" </dev/null >>"$DIR/daemon.out" 2>&1 &
    DAEMON_PID=$!
    for _ in $(seq 150); do
        listening "$SOCKETMAP_PORT" && return 0
        kill -0 "$DAEMON_PID" 2>/dev/null || break
        sleep 0.05
    done
    die 70 "mta-sts-daemon did not listen on 127.0.0.1:$SOCKETMAP_PORT within 7.5 s:
$(tail -n 5 "$DIR/daemon.out"; tail -n 5 "$DIR/daemon.log")"
}

start_postfix() {
    "$POSTSUPER" -c "$DIR/etc" -d ALL >/dev/null 2>&1
    # Ready means: master alive and its public sockets made anew (stale ones removed).
    rm -f "$DIR/queue/pid/master.pid" "$DIR/queue/public/pickup" "$DIR/queue/public/qmgr"
    : >"$DIR/maillog"
    "$POSTFIX" -c "$DIR/etc" start-fg </dev/null >"$DIR/start-fg.out" 2>&1 &
    PF_PID=$!
    for _ in $(seq 300); do
        kill -0 "$PF_PID" 2>/dev/null || break
        if [ -s "$DIR/queue/pid/master.pid" ] && [ -S "$DIR/queue/public/pickup" ] &&
            [ -S "$DIR/queue/public/qmgr" ]; then
            MASTER_PID=$(awk '{ print $1; exit }' "$DIR/queue/pid/master.pid")
            [ -n "$MASTER_PID" ] && kill -0 "$MASTER_PID" 2>/dev/null && return 0
        fi
        sleep 0.05
    done
    die 70 "Postfix did not start within 15 s:
$(cat "$DIR/start-fg.out" 2>/dev/null)
$(tail -n 5 "$DIR/maillog" 2>/dev/null)"
}

# The JSON record of this delivery (one line), built by Python for correct quoting.
record() {
    [ -n "$RECORD" ] || return 0
    "$PYTHON" - "$RECORD" "$@" <<'EOF'
import json, sys
path, keys = sys.argv[1], sys.argv[2:]
rec = dict(zip(keys[0::2], keys[1::2]))
with open(path, "a") as f:
    f.write(json.dumps(rec, sort_keys=True) + "\n")
EOF
}

# What this peer cannot be asked to do: exit 76 with the reason (README, "Testing another
# implementation"). Nothing has been started yet.
check_supported() {
    if [ "$REQUIRE_TLS" = 1 ]; then
        die $UNSUPPORTED "unsupported: --require-tls: this adapter has no per-domain static TLS policy (Postfix's smtp_tls_policy_maps 'secure' entry would be one); adapter limit"
    fi
    if [ "$SENDER_MODE" != auto ]; then
        die $UNSUPPORTED "unsupported: a policy mode override (--mode $SENDER_MODE): postfix-mta-sts-resolver applies the policy's own mode"
    fi
    if [ -n "$NOW" ]; then
        local skew=$((NOW - $(date +%s)))
        if [ "${skew#-}" -gt "$CLOCK_SLACK" ]; then
            die $UNSUPPORTED "unsupported: the scenario moved the world's clock by ${skew} s; Postfix and the daemon follow the wall clock"
        fi
    fi
}

cmd_send() {
    while [ $# -gt 0 ]; do
        case $1 in
        --dir) DIR=$2 ;;
        --rcpt) RCPT=$2 ;;
        --dns) DNS=$2 ;;
        --ca) CA=$2 ;;
        --mode) MODE=$2 ;;
        --cache) CACHE=$2 ;;
        --record) RECORD=$2 ;;
        --wait) WAIT=$2 ;;
        --require-tls) REQUIRE_TLS=$2 ;;
        --sender-mode) SENDER_MODE=$2 ;;
        --now) NOW=$2 ;;
        *) usage ;;
        esac
        [ $# -ge 2 ] || usage
        shift 2
    done
    if [ -z "$DIR" ] || [ -z "$RCPT" ] || [ -z "$DNS" ] || [ -z "$CA" ]; then usage; fi
    check_supported
    check_installed
    [ -f "$DIR/etc/main.cf" ] || die 70 "$DIR/etc/main.cf missing: run '$0 setup $DIR' first"
    local dns_host=${DNS%:*} dns_port=${DNS##*:}
    [ "$dns_port" = 53 ] || die 70 "the world's DNS server is on port $dns_port; Postfix and the daemon can only use port 53: run ststest with --standard-ports"
    cp "$CA" "$DIR/ca.pem" || die 70 "cannot copy the world's CA $CA"
    chmod 0644 "$DIR/ca.pem"

    trap cleanup EXIT
    trap 'exit 70' INT TERM HUP
    set_resolver "$dns_host"
    start_daemon
    start_postfix

    # One message, recognisable in the log by its Message-ID.
    local msgid
    msgid="$(date +%s%N).$$@sender.ststest.invalid"
    printf 'From: <%s>\nTo: <%s>\nSubject: ststest peer test (mode %s)\nMessage-ID: <%s>\nDate: %s\n\nA test message from ststest through Postfix and postfix-mta-sts-resolver.\n' \
        "$FROM" "$RCPT" "${MODE:-?}" "$msgid" "$(date -R)" |
        MAIL_CONFIG="$DIR/etc" "$SENDMAIL" -f "$FROM" -- "$RCPT" ||
        die 70 "sendmail refused the message: $(tail -5 "$DIR/maillog")"

    # Postfix's verdict: the queue id from cleanup's message-id line, then the first
    # status= line for the recipient (sent, deferred or bounced).
    local deadline=$((SECONDS + WAIT)) qid="" line=""
    while [ $SECONDS -lt $deadline ]; do
        kill -0 "$MASTER_PID" 2>/dev/null || die 70 "Postfix stopped while delivering:
$(tail -n 20 "$DIR/maillog")"
        [ -z "$qid" ] && qid=$(grep -F "message-id=<$msgid>" "$DIR/maillog" | sed -n 's/.*: \([0-9A-F][0-9A-Za-z]*\): message-id=.*/\1/p' | head -1)
        if [ -n "$qid" ]; then
            line=$(grep -F "$qid: to=<" "$DIR/maillog" | grep -E 'status=(sent|deferred|bounced|expired)' | head -1)
            [ -n "$line" ] && break
        fi
        sleep 0.1
    done
    # What the policy daemon told Postfix, and why a fetch failed, if one did.
    # (The daemon logs from a thread of its own: give a late line a moment.)
    local answer fetch_error tls
    answer=$(sed -n "s/.*STS: Wrote: b'[0-9]*:\(.*\),'\$/\1/p" "$DIR/daemon.log" | tail -1)
    if [ -z "$answer" ]; then
        sleep 0.3
        answer=$(sed -n "s/.*STS: Wrote: b'[0-9]*:\(.*\),'\$/\1/p" "$DIR/daemon.log" | tail -1)
    fi
    fetch_error=$(sed -n 's/.*RES: \(STS policy fetch .*\)/\1/p' "$DIR/daemon.log" | tail -1)
    tls=$(grep -E "postfix/smtp\[[0-9]+\]: (Verified|Trusted|Untrusted|Anonymous) TLS connection established" "$DIR/maillog" |
        sed 's/.*\]: \([A-Za-z]*\) TLS connection established to \([^:]*\).*/\1 TLS to \2/' | paste -sd ';' -)
    if [ -z "$line" ]; then
        record mode "$MODE" status none reason "no verdict from Postfix within $WAIT s" \
            policy "$answer" fetch_error "$fetch_error" tls "$tls" harness_error 1
        die 70 "no verdict from Postfix within $WAIT s (queue id ${qid:-unknown}); its log:
$(tail -20 "$DIR/maillog")"
    fi
    local status dsn relay reason
    status=$(sed -n 's/.* status=\([a-z]*\).*/\1/p' <<<"$line")
    dsn=$(sed -n 's/.* dsn=\([0-9.]*\),.*/\1/p' <<<"$line")
    relay=$(sed -n 's/.* relay=\([^,]*\),.*/\1/p' <<<"$line")
    reason=$(sed -n 's/.* status=[a-z]* (\(.*\))$/\1/p' <<<"$line")
    local harness=0
    # A lookup error of the policy map is the harness failing, not the peer's choice.
    case $reason in *"TLS policy lookup"* | *"table lookup problem"* | *"address resolver failure"*) harness=1 ;; esac
    echo "postfix: status=$status dsn=$dsn relay=$relay ($reason)"
    echo "postfix: tls: ${tls:-none}"
    echo "mta-sts-daemon: socketmap answer: ${answer:-none}${fetch_error:+; $fetch_error}"
    record mode "$MODE" status "$status" dsn "$dsn" relay "$relay" reason "$reason" \
        policy "$answer" fetch_error "$fetch_error" tls "$tls" harness_error "$harness"
    [ $harness = 1 ] && die 70 "Postfix could not ask the policy daemon: $reason"
    case $status in
    sent) exit 0 ;;
    deferred) exit 75 ;;
    *) exit 69 ;;
    esac
}

case ${1:-} in
setup) shift; cmd_setup "$@" ;;
send) shift; cmd_send "$@" ;;
*) usage ;;
esac
