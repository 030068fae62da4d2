"""A private, real Postfix on loopback for the integration tests (tests/integration/test_postfix.py).

What it provides:
- `OpensslCA`: a throw-away CA and server certificates made with the `openssl` command-line
  tool, so the certificates Postfix presents are independent of ststest's own minting code
  (common/testca.c). `issue()` returns (cert_path, key_path); it also makes certificates valid
  for a number of days, or between two given times (an expired one, say).
- `PostfixInstance`: one Postfix with its own config_directory, queue_directory and
  data_directory under a fresh directory in /tmp (Postfix's unprivileged daemons must be able
  to traverse it, which pytest's 0700 tmp dirs forbid). It listens only on 127.0.0.1:<free high
  port> (or another loopback address; an explicit address in master.cf), offers STARTTLS
  (smtpd_tls_security_level=may) with the given certificate, accepts mail for its domain
  (postfix.test unless told) only and delivers it with virtual(8) into
  a Maildir the test reads; every other destination goes to the error transport, so nothing
  ever leaves the machine. It logs to its own file (maillog_file + postlogd, Postfix 3.4+), with
  smtpd_tls_loglevel=1 and smtpd_tls_received_header=yes so a test can see that a message came
  over TLS. Its main.cf and master.cf are tools/postfix-main.cf.in and postfix-master.cf.in
  for the role "receive" (`postfix_config()`), the templates tools/peer-postfix-mta-sts.sh
  fills for its sending Postfix. More smtpd listeners, each with main.cf settings of its own
  (`-o`: another certificate, another TLS level), can be asked for (`listeners`; their ports are
  `ports[NAME]`): one instance then serves several configurations at once, with no reload. It
  runs as `postfix -c DIR start-fg` in a new session: the master stays our
  descendant (this machine's PID 1 does not reap orphans, so a daemonised master would linger as
  a zombie), and stop() ends exactly that master and its children, by process id.
- Fixtures: `postfix_required` (fails with the reason when Postfix is unusable; skips only when
  STSTEST_NO_POSTFIX=1), `openssl_ca` and `postfix_factory` (starts instances, always stops them
  and checks that no process of theirs is left).

Methods return values or raise `PostfixError` with the log and what was being done; none of them
returns a silent failure.
"""
import datetime
import os
import pathlib
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from conftest import SRC, require_real_peer

POSTFIX = "/usr/sbin/postfix"
DOMAIN = "postfix.test"
MX_HOST = f"mail.{DOMAIN}"
MAILBOX = f"user@{DOMAIN}"
OPT_OUT = "STSTEST_NO_POSTFIX"
# The queue files where a message waits between smtpd and delivery.
QUEUES = ("maildrop", "incoming", "active", "deferred", "hold", "corrupt")


class PostfixError(RuntimeError):
    pass


def _run(argv, what, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=30, **kw)
    if r.returncode != 0:
        raise PostfixError(f"{what}: `{' '.join(map(str, argv))}` exited {r.returncode}:\n"
                           f"{r.stdout}{r.stderr}")
    return r


NEEDS_ROOT = "a private Postfix instance needs root (master drops to the postfix user)"


def postfix_problem():
    """Why a private Postfix cannot run here, or None when it can."""
    if not os.path.exists(POSTFIX):
        return f"{POSTFIX} not found: run scripts/install-postfix.sh (apt-get install postfix)"
    if os.geteuid() != 0:
        return NEEDS_ROOT
    for user in ("postfix", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            return f"user '{user}' missing: the postfix package did not install cleanly"
    if not shutil.which("openssl"):
        return "the openssl command-line tool is missing (apt-get install openssl)"
    return None


def require_postfix():
    """Skip when the user opted out with STSTEST_NO_POSTFIX=1 or is not root; otherwise fail
    loudly when Postfix is unusable (conftest.require_real_peer)."""
    require_real_peer(OPT_OUT, "real-Postfix tests", NEEDS_ROOT, postfix_problem,
                      "a real Postfix")


class OpensslCA:
    """A throw-away CA made with the openssl CLI (ECDSA P-256, valid `days` days: two unless
    told)."""

    def __init__(self, directory, days=2, name="ststest Postfix test CA"):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.key = self.dir / "ca.key"
        self.cert = self.dir / "ca.pem"
        _run(["openssl", "req", "-x509", "-new", "-newkey", "ec",
              "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-days", str(days),
              "-keyout", self.key, "-out", self.cert, "-subj", f"/CN={name}",
              "-addext", "basicConstraints=critical,CA:TRUE",
              "-addext", "keyUsage=critical,keyCertSign,cRLSign"], "making the test CA")

    def issue(self, label, dns_names, days=2, valid=None):
        """A server certificate with subject CN = first name and these DNS SANs, valid from now
        for `days` days, or, with `valid` = (not_before, not_after) (aware datetimes), for
        exactly that span (`openssl ca`: `openssl x509` cannot set a start time)."""
        key = self.dir / f"{label}.key"
        csr = self.dir / f"{label}.csr"
        cert = self.dir / f"{label}.pem"
        ext = self.dir / f"{label}.ext"
        ext.write_text("subjectAltName=" + ",".join(f"DNS:{n}" for n in dns_names) + "\n"
                       "basicConstraints=critical,CA:FALSE\n"
                       "keyUsage=critical,digitalSignature\n"
                       "extendedKeyUsage=serverAuth\n")
        _run(["openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
              "-nodes", "-keyout", key, "-out", csr, "-subj", f"/CN={dns_names[0]}"],
             f"making the key and request for {label}")
        if valid is None:
            _run(["openssl", "x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key,
                  "-CAcreateserial", "-days", str(days), "-extfile", ext, "-out", cert],
                 f"signing the certificate {label}")
        else:
            self._sign_span(label, csr, ext, cert, *valid)
        return cert, key

    def _sign_span(self, label, csr, ext, cert, not_before, not_after):
        """`openssl ca` with a minimal database of its own: signs `csr` for exactly
        [not_before, not_after]."""
        db = self.dir / "ca-db"
        db.mkdir(exist_ok=True)
        (db / "index.txt").touch()
        serial = db / "serial"
        if not serial.exists():
            serial.write_text("1000\n")
        conf = db / "ca.cnf"
        conf.write_text("[ca]\ndefault_ca = test\n[test]\n"
                        f"database = {db}/index.txt\nnew_certs_dir = {db}\n"
                        f"serial = {serial}\ndefault_md = sha256\npolicy = any\n"
                        "unique_subject = no\n[any]\ncommonName = supplied\n")
        stamp = "%Y%m%d%H%M%SZ"
        _run(["openssl", "ca", "-batch", "-notext", "-config", conf, "-cert", self.cert,
              "-keyfile", self.key, "-in", csr, "-out", cert, "-extfile", ext,
              "-startdate", not_before.astimezone(datetime.timezone.utc).strftime(stamp),
              "-enddate", not_after.astimezone(datetime.timezone.utc).strftime(stamp)],
             f"signing the certificate {label} for {not_before} to {not_after}")


def free_port(address="127.0.0.1"):
    """A currently unused TCP port on `address` (the kernel's pick from the ephemeral range)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _listening(port, address="127.0.0.1"):
    """True when something LISTENs on address:port. Read from /proc/net/tcp rather than by
    connecting, so readiness checks leave no 'connect from' lines in Postfix's log."""
    want = f"{socket.inet_aton(address)[::-1].hex().upper()}:{port:04X}"
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[1] == want and fields[3] == "0A":
                return True
    return False


def _wait(look, done, failure, timeout):
    """look() every 50 ms until done(what it returned): that; after `timeout` seconds,
    PostfixError(failure(what it returned last))."""
    deadline = time.monotonic() + timeout
    while True:
        got = look()
        if done(got):
            return got
        if time.monotonic() >= deadline:
            raise PostfixError(failure(got))
        time.sleep(0.05)


def live_pids(field, value):
    """Live (non-zombie) processes whose /proc/PID/stat field after the parenthesised
    command (0 state, 1 ppid, 2 pgrp, 3 session, ...) equals value."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            stat = pathlib.Path(f"/proc/{d}/stat").read_text()
        except OSError:
            continue
        rest = stat[stat.rindex(")") + 2:].split()
        if rest[0] != "Z" and int(rest[field]) == value:
            pids.append(int(d))
    return pids


def _session_pids(sid):
    """Live processes whose session id is sid."""
    return live_pids(3, sid)


def postfix_config(name, **values):
    """tools/NAME.in (postfix-main.cf or postfix-master.cf), the template this fixture
    shares with tools/peer-postfix-mta-sts.sh, filled for the role "receive" (the template's
    head says how) with each @KEY@ replaced by values[KEY]."""
    template = SRC / "tools" / f"{name}.in"
    lines = []
    for line in template.read_text().splitlines(keepends=True):
        if line.startswith(("##", "send: ")):
            continue
        lines.append(line.removeprefix("receive: "))
    text = "".join(lines)
    for key, value in values.items():
        text = text.replace(f"@{key}@", str(value))
    left = re.findall(r"@[A-Z_]*@", text)
    if left:
        raise PostfixError(f"{template}: placeholders left unfilled: {left}")
    return text


class PostfixInstance:
    """One private Postfix; see the module comment."""

    def __init__(self, cert, key, label="postfix", main_extra="", domain=DOMAIN,
                 address="127.0.0.1", mailbox=None, listeners=None):
        self.domain = domain  # myhostname mail.DOMAIN; the only mailbox (user@DOMAIN unless told)
        self.mx_host = f"mail.{domain}"
        self.mailbox = mailbox or f"user@{domain}"
        self.address = address  # a loopback address of 127.0.0.0/8
        # {name: {main.cf parameter: value}}: one more smtpd on address:ports[name] each.
        self.listeners = listeners or {}
        self.ports = {}
        self.base = pathlib.Path(tempfile.mkdtemp(prefix=f"ststest-{label}-", dir="/tmp"))
        self.base.chmod(0o755)
        self.etc = self.base / "etc"
        self.queue = self.base / "queue"
        self.data = self.base / "data"
        self.mail = self.base / "mail"
        self.maillog = self.base / "maillog"
        self.cert, self.key = cert, key
        self.main_extra = main_extra  # main.cf lines after the template's (last one wins)
        self.port = None
        self.proc = None
        self.master_pid = None
        self.output = self.base / "start-fg.out"

    # -- life cycle -------------------------------------------------------------------------

    def _configure(self):
        nobody = pwd.getpwnam("nobody")
        for d in (self.etc, self.queue):
            d.mkdir(mode=0o755, exist_ok=True)
        self.mail.mkdir(mode=0o755, exist_ok=True)
        os.chown(self.mail, nobody.pw_uid, nobody.pw_gid)
        # queue, data, maillog and mail are the template's @DIR@/queue, ... (see __init__).
        (self.etc / "main.cf").write_text(postfix_config(
            "postfix-main.cf", DIR=self.base, MYHOSTNAME=self.mx_host, MYDOMAIN=self.domain,
            MAILBOX=self.mailbox, UID=nobody.pw_uid, GID=nobody.pw_gid, CERT=self.cert,
            KEY=self.key) + self.main_extra)
        extra = "".join(
            f"{self.address}:{self.ports[name]} inet n - n - - smtpd"
            + "".join(f" -o {k}={v}" for k, v in settings.items()) + "\n"
            for name, settings in self.listeners.items())
        (self.etc / "master.cf").write_text(postfix_config(
            "postfix-master.cf", LISTEN=f"{self.address}:{self.port}") + extra)

    def start(self, timeout=15):
        """Start the instance; returns self once master listens. Raises PostfixError."""
        for attempt in range(3):
            self.port = free_port(self.address)
            self.ports = {}
            for name in self.listeners:
                while (port := free_port(self.address)) in {self.port, *self.ports.values()}:
                    pass
                self.ports[name] = port
            self._configure()
            with open(self.output, "ab") as out:
                # A new session so that master's process-group signals reach only its own
                # children, never pytest.
                self.proc = subprocess.Popen([POSTFIX, "-c", str(self.etc), "start-fg"],
                                             stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                             start_new_session=True)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                pidfile = self.queue / "pid" / "master.pid"
                if pidfile.exists() and all(_listening(port, self.address) for port
                                            in (self.port, *self.ports.values())):
                    try:
                        self.master_pid = int(pidfile.read_text().split()[0])
                    except (ValueError, IndexError):
                        pass  # being written; look again
                    else:
                        return self
                time.sleep(0.05)
            rc = self.proc.poll()
            why = (f"`postfix start-fg` exited {rc}" if rc is not None
                   else f"Postfix did not listen within {timeout}s")
            log = self.log()
            self.stop()
            if "Address already in use" in log and attempt < 2:
                continue  # lost the race for the free port: pick another
            raise PostfixError(f"{why} on {self.address}:{self.port} (config {self.etc}):\n"
                               f"{self._output()}\n{log}")
        raise AssertionError("unreachable")

    def stop(self, timeout=10):
        """Stop master and its children; returns the pids still alive afterwards (normally
        none). Safe to call more than once."""
        if self.proc is None:
            return []
        sid = self.proc.pid  # start_new_session: the shell's pid is the session id
        master = self.master_pid
        if self.proc.poll() is None:
            if master is None:
                pidfile = self.queue / "pid" / "master.pid"
                try:
                    master = int(pidfile.read_text().split()[0])
                except (OSError, ValueError, IndexError):
                    master = None
            try:
                # SIGTERM to master: it stops its children and exits; postfix-script, which
                # waits for it in the foreground, then exits too.
                os.kill(master if master else self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                for pid in _session_pids(sid) + ([master] if master else []):
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.wait(timeout=timeout)
        # Children of master are in master's own session (master calls setsid).
        left = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            left = _session_pids(sid) + (_session_pids(master) if master else [])
            if not left:
                break
            time.sleep(0.05)
        self.proc = None
        return left

    def cleanup(self):
        shutil.rmtree(self.base, ignore_errors=True)

    # -- what happened ----------------------------------------------------------------------

    def _output(self):
        try:
            return self.output.read_text(errors="replace")
        except OSError:
            return ""

    def log(self):
        """Postfix's whole log so far ('' before postlogd has written anything)."""
        try:
            return self.maillog.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_mark(self):
        """An offset into the log: pass to wait_log()/log_since() to see only later lines."""
        return len(self.log())

    def log_since(self, mark):
        return self.log()[mark:]

    def wait_log(self, pattern, mark=0, timeout=5):
        """The first match of regex `pattern` in the log after `mark`; raises PostfixError with
        the log when it does not appear in time (postlogd writes asynchronously)."""
        rx = re.compile(pattern)
        return _wait(lambda: rx.search(self.log_since(mark)), bool,
                     lambda _: f"no log line matching {pattern!r} within {timeout}s:\n"
                               f"{self.log_since(mark)}", timeout)

    def messages(self):
        """Texts of the messages delivered to the mailbox, oldest first."""
        box = self.mail / self.domain / "user"
        files = [p for sub in ("new", "cur") if (box / sub).is_dir() for p in (box / sub).iterdir()]
        files.sort(key=lambda p: p.stat().st_mtime)
        return [p.read_text(errors="replace") for p in files]

    def wait_messages(self, n, timeout=5):
        """At least n delivered messages, waiting for qmgr and virtual(8); raises PostfixError
        with the log when they do not arrive."""
        return _wait(self.messages, lambda got: len(got) >= n,
                     lambda got: f"{len(got)} message(s) in the mailbox after {timeout}s, "
                                 f"expected {n}:\n{self.log()}", timeout)

    def queued(self):
        """Queue files anywhere between smtpd and delivery (should be none when idle)."""
        out = []
        for q in QUEUES:
            d = self.queue / q
            if d.is_dir():
                out += [str(p) for p in d.rglob("*") if p.is_file()]
        return out


def received_header(message):
    """The topmost Received: header of a message, unfolded."""
    head = message.split("\n\n", 1)[0]
    m = re.search(r"^Received:(.*(?:\n[ \t].*)*)", head, re.M)
    return " ".join(m.group(1).split()) if m else None


@pytest.fixture
def postfix_required():
    require_postfix()


@pytest.fixture(scope="module")
def openssl_ca(tmp_path_factory):
    """A CA and two server certificates: `valid` names mail.postfix.test, `wrong-name` names
    only other.example.net (chains to the same CA, so only the name is wrong)."""
    require_postfix()
    ca = OpensslCA(tmp_path_factory.mktemp("openssl-ca"))
    ca.certs = {"valid": ca.issue("valid", [MX_HOST]),
                "wrong-name": ca.issue("wrong-name", ["other.example.net"])}
    return ca


@pytest.fixture
def postfix_factory(openssl_ca):
    """make(cert="valid"|"wrong-name", main_extra="") -> a started PostfixInstance (with
    main_extra's main.cf lines after the template's). Every instance is stopped
    at teardown, and the test errors if any of its processes survived."""
    instances = []

    def make(cert="valid", main_extra=""):
        cert_path, key_path = openssl_ca.certs[cert]
        inst = PostfixInstance(cert_path, key_path, label=f"postfix-{cert}",
                               main_extra=main_extra)
        instances.append(inst)
        return inst.start()

    yield make
    leftovers = []
    for inst in instances:
        try:
            left = inst.stop()
        except Exception as e:  # keep stopping the others; report this one
            leftovers.append((str(inst.etc), f"stop failed: {e}"))
            continue
        if left:
            leftovers.append((str(inst.etc), left))
        else:
            inst.cleanup()
    assert not leftovers, f"Postfix processes left running (config, pids): {leftovers}"
