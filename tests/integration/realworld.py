"""A real MTA-STS deployment on loopback, built from the parts a postmaster uses (issue 11;
the tests are tests/integration/test_realworld.py):

- DNS: dnsmasq (Debian's dnsmasq-base, no service) on 127.A.B.53:<free port>, serving
  example.test's MX (mail.example.test), the A records of mail.example.test (127.A.B.25) and
  mta-sts.example.test (127.A.B.80), `_mta-sts` TXT "v=STSv1; id=..." and `_smtp._tls` TXT
  "v=TLSRPTv1; rua=mailto:...", from the `mx-host=`, `host-record=` and `txt-record=` lines of
  its configuration file (the options --mx-host, --host-record, --txt-record).
- The policy host: nginx (Debian's nginx) in the foreground (`-p DIR -c nginx.conf
  -g 'daemon off;'`, its own pid file and logs) on 127.A.B.80:<free port>, serving
  https://mta-sts.example.test/.well-known/mta-sts.txt with `default_type text/plain` and
  `return 200 "version: STSv1\\nmode: enforce\\n...";`, as the usual recipe has it.
- The MX: a private Postfix (postfix_fixture.PostfixInstance, tools/postfix-main.cf.in) on
  127.A.B.25:<free port> with a certificate for mail.example.test and
  `smtpd_tls_security_level = may`, accepting mail for postmaster@example.test into a Maildir.
  The same master runs one more smtpd per break on ports of their own (MX_LISTENERS: a
  certificate with a wrong name, expired, expiring; STARTTLS off; `encrypt`), each with its
  settings given by `-o` in master.cf, so that a break of the MX is a matter of `--smtp-port`,
  not of a reload (`postfix reload` here now and then left postlogd, and so the log the tests
  read, stopped). It needs root (postfix_fixture.require_postfix): it is started on first use,
  and tests that need it skip, saying why, when not root.
- Certificates (`WorldCerts`): a throw-away CA made with the openssl CLI
  (postfix_fixture.OpensslCA) and, from it, mail.example.test valid for 90 days, with a wrong
  name, expired, and expiring in 5 days; mta-sts.example.test valid, and the same name from a
  second CA the sender is not given (untrusted).

127.A.B is picked at random per module (A in 64..254), every port is the kernel's pick of a
free one on its address, and every file is in a private temporary directory: nothing clashes
with another test run or touches a system service. The sender is pointed at the world with
`--dns`, `--ca-file`, `--smtp-port` and `--https-port` (`RealWorld.sender_args()`).

`RealWorld.apply(**state)` sets the whole deployment to the healthy one with the given breaks
(see HEALTHY); a daemon whose part changed is reconfigured (dnsmasq restarted on the same
address and port, nginx reloaded with `nginx -s reload` or stopped; for the MX the sender is
pointed at the listener of that break), and apply() returns only once the change is in
effect. A missing nginx or dnsmasq fails the tests, naming the package; it never makes them
pass or skip.

Methods return values or raise WorldError with the daemon's log and what was being done.
"""
import json
import os
import pathlib
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from datetime import datetime, timedelta, timezone

import dns.exception
import dns.message
import dns.query
import pytest

from postfix_fixture import (OpensslCA, PostfixInstance, _listening, _wait, free_port, live_pids,
                             require_postfix)

DOMAIN = "example.test"
MX_HOST = f"mail.{DOMAIN}"
POLICY_HOST = f"mta-sts.{DOMAIN}"
STS_NAME = f"_mta-sts.{DOMAIN}"
TLSRPT_NAME = f"_smtp._tls.{DOMAIN}"
MAILBOX = f"postmaster@{DOMAIN}"
POLICY_PATH = "/.well-known/mta-sts.txt"

# The deployment of the recipe: apply() with no arguments.
POLICY = f"version: STSv1\nmode: enforce\nmx: {MX_HOST}\nmax_age: 604800\n"
STS_ID = "20261206T000000"
TLSRPT = f"v=TLSRPTv1; rua=mailto:tlsrpt@{DOMAIN}"
HEALTHY = {
    "sts_txt": [f"v=STSv1; id={STS_ID};"],  # _mta-sts TXT records
    "tlsrpt_txt": [TLSRPT],                 # _smtp._tls TXT records
    "policy": POLICY,                       # what nginx returns
    "content_type": "text/plain",           # nginx's default_type for it
    "policy_cert": "valid",                 # WorldCerts.policy key
    "nginx": True,                          # False: nginx stopped
    "mx_cert": "valid",                     # WorldCerts.mx key
    "tls_level": "may",                     # Postfix smtpd_tls_security_level
}
# The Postfix listeners besides the healthy one: (mx_cert, tls_level) -> listener name.
MX_LISTENERS = {
    ("wrong-name", "may"): "wrong-name",
    ("expired", "may"): "expired",
    ("expiring", "may"): "expiring",
    ("valid", "none"): "starttls-off",
    ("valid", "encrypt"): "encrypt",
}

NGINX = "nginx"
DNSMASQ = "dnsmasq"
TOOLS = {NGINX: "nginx", DNSMASQ: "dnsmasq-base"}


class WorldError(RuntimeError):
    pass


def tool(name):
    """The path of nginx or dnsmasq; the test FAILS, naming the package, when it is missing
    (the real-world tests must not pass or skip on a machine without them)."""
    path = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not path:
        pytest.fail(f"{name} is not installed: the real-world tests need Debian's "
                    f"{TOOLS[name]} (scripts/setup-tests.sh installs it)")
    return path


def _read(path):
    try:
        return pathlib.Path(path).read_text(errors="replace")
    except OSError:
        return ""


def _children(pid):
    """Live processes whose parent is pid."""
    return live_pids(1, pid)


def _end(proc, sig=signal.SIGTERM, timeout=10):
    """Signal a daemon we started, by its process id, and reap it (SIGKILL after timeout)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


# ---- certificates -----------------------------------------------------------------------

class WorldCerts:
    """The CA the sender trusts (`ca.cert`) and the certificates of the MX and the policy
    host: `mx[kind]` and `policy[kind]` are (cert_path, key_path)."""

    def __init__(self, directory):
        directory = pathlib.Path(directory)
        now = datetime.now(timezone.utc)
        # The CA outlives every certificate, so only a leaf's own dates are ever in question.
        self.ca = OpensslCA(directory / "ca", days=3650, name="ststest real-world CA")
        self.untrusted_ca = OpensslCA(directory / "untrusted-ca", days=3650,
                                      name="ststest real-world untrusted CA")
        self.mx = {
            "valid": self.ca.issue("mx-valid", [MX_HOST], days=90),
            "wrong-name": self.ca.issue("mx-wrong-name", ["mx.example.net"], days=90),
            "expired": self.ca.issue("mx-expired", [MX_HOST],
                                     valid=(now - timedelta(days=90), now - timedelta(days=1))),
            "expiring": self.ca.issue("mx-expiring", [MX_HOST],
                                      valid=(now - timedelta(days=85), now + timedelta(days=5))),
        }
        self.policy = {
            "valid": self.ca.issue("policy-valid", [POLICY_HOST], days=90),
            "untrusted": self.untrusted_ca.issue("policy-untrusted", [POLICY_HOST], days=90),
        }


# ---- addresses --------------------------------------------------------------------------

def pick_net():
    """A random 127.A.B prefix (A in 64..254: away from 127.0.0.x, which other tests use)."""
    return f"127.{random.randint(64, 254)}.{random.randint(0, 255)}"


def free_udp_tcp_port(address):
    """A port free on `address` for TCP and UDP both (a DNS server listens on both)."""
    for _ in range(50):
        port = free_port(address)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
            try:
                u.bind((address, port))
            except OSError:
                continue
        return port
    raise WorldError(f"no port free for both TCP and UDP on {address}")


# ---- DNS: dnsmasq -----------------------------------------------------------------------

class Dnsmasq:
    """dnsmasq on address:port in the foreground, authoritative for example.test (`local=`:
    unknown names there are NXDOMAIN, nothing is forwarded anywhere)."""

    def __init__(self, directory, address, hosts):
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.address = address
        self.hosts = hosts  # {name: IPv4 address}
        self.port = free_udp_tcp_port(address)
        self.conf = self.dir / "dnsmasq.conf"
        self.logfile = self.dir / "dnsmasq.log"
        self.proc = None
        self.state = None  # (sts_txt, tlsrpt_txt) it serves

    @property
    def server(self):
        return f"{self.address}:{self.port}"

    def _conf_text(self, sts_txt, tlsrpt_txt):
        lines = [f"local=/{DOMAIN}/", f"mx-host={DOMAIN},{MX_HOST},10"]
        lines += [f"host-record={name},{addr}" for name, addr in self.hosts.items()]
        for name, records in ((STS_NAME, sts_txt), (TLSRPT_NAME, tlsrpt_txt)):
            for rec in records:
                if '"' in rec or "\\" in rec:
                    raise WorldError(f"TXT record {rec!r}: no quotes or backslashes here")
                lines.append(f'txt-record={name},"{rec}"')
        return "\n".join(lines) + "\n"

    def apply(self, sts_txt, tlsrpt_txt):
        state = (tuple(sts_txt), tuple(tlsrpt_txt))
        if state == self.state and self.proc and self.proc.poll() is None:
            return
        self.stop()
        self.conf.write_text(self._conf_text(sts_txt, tlsrpt_txt))
        self._start(sts_txt)
        self.state = state

    def _start(self, sts_txt, timeout=10):
        argv = [tool(DNSMASQ), "--keep-in-foreground", f"--conf-file={self.conf}",
                "--no-resolv", "--no-hosts",
                f"--port={self.port}", f"--listen-address={self.address}",
                "--bind-interfaces", "--pid-file=", "--log-facility=-", "--log-queries"]
        with open(self.logfile, "ab") as log:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        want = sorted(sts_txt)
        deadline = time.monotonic() + timeout
        got = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise WorldError(f"dnsmasq exited {self.proc.returncode} on {self.server}:\n"
                                 f"{_read(self.logfile)}")
            got = self.txt(STS_NAME)
            if got == want:
                return
            time.sleep(0.05)
        raise WorldError(f"dnsmasq on {self.server}: {STS_NAME} TXT is {got}, expected {want} "
                         f"after {timeout}s:\n{_read(self.logfile)}")

    def txt(self, name):
        """The TXT strings dnsmasq answers for `name` (sorted; [] for no data or NXDOMAIN), or
        None when it does not answer within 0.2 s."""
        try:
            msg = dns.query.udp(dns.message.make_query(name, "TXT"), self.address,
                                port=self.port, timeout=0.2)
        except (dns.exception.Timeout, OSError):
            return None
        return sorted(b"".join(rd.strings).decode() for rr in msg.answer for rd in rr)

    def log(self):
        return _read(self.logfile)

    def stop(self):
        _end(self.proc)
        self.proc = None
        self.state = None


# ---- the policy host: nginx -------------------------------------------------------------

def nginx_string(text):
    """`text` as an nginx quoted string, newlines written \\n as in the recipe."""
    if any(c in text for c in '"\\$'):
        raise WorldError(f"policy text {text!r}: no quotes, backslashes or $ here")
    return '"' + text.replace("\n", "\\n") + '"'


class Nginx:
    """nginx as a foreground process with prefix DIR: its nginx.conf, pid file, logs and
    temporary directories are all in DIR. As root its workers run as www-data (the user of
    Debian's own nginx.conf); as another user, as that user."""

    def __init__(self, directory, address):
        self.dir = pathlib.Path(directory)
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.address = address
        self.port = free_port(address)
        self.conf = self.dir / "nginx.conf"
        self.error_log = self.dir / "error.log"
        self.access_log = self.dir / "access.log"
        self.proc = None
        self.state = None  # (policy, content_type, cert, key) it serves

    def _conf_text(self, policy, content_type, cert, key):
        user = "user www-data;\n" if os.geteuid() == 0 else ""
        return f"""\
# ststest real-world policy host (tests/integration/realworld.py)
{user}worker_processes 1;
pid nginx.pid;
error_log error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log access.log;
    client_body_temp_path tmp/body;
    proxy_temp_path tmp/proxy;
    fastcgi_temp_path tmp/fastcgi;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    server {{
        listen {self.address}:{self.port} ssl;
        server_name {POLICY_HOST};
        ssl_certificate {cert};
        ssl_certificate_key {key};
        location = {POLICY_PATH} {{
            default_type {content_type};
            return 200 {nginx_string(policy)};
        }}
    }}
}}
"""

    def _nginx(self, *args):
        return [tool(NGINX), "-p", f"{self.dir}/", "-c", str(self.conf), "-e", "error.log",
                *args]

    def apply(self, running, policy, content_type, cert, key):
        if not running:
            self.stop()
            return
        state = (policy, content_type, str(cert), str(key))
        running_now = self.proc is not None and self.proc.poll() is None
        if running_now and state == self.state:
            return
        self.conf.write_text(self._conf_text(policy, content_type, cert, key))
        if running_now:
            self._reload()
        else:
            self._start()
        self.state = state

    def _start(self, timeout=10):
        self.stop()
        out = open(self.dir / "nginx.out", "ab")
        with out:
            self.proc = subprocess.Popen(self._nginx("-g", "daemon off;"),
                                         stdin=subprocess.DEVNULL, stdout=out, stderr=out)
        _wait(lambda: (self.proc.poll(), _listening(self.port, self.address)),
              lambda got: got[0] is not None or got[1],
              lambda got: f"nginx did not listen on {self.address}:{self.port} within "
                          f"{timeout}s:\n{self.log()}", timeout)
        if self.proc.poll() is not None:
            raise WorldError(f"nginx exited {self.proc.returncode}:\n{self.log()}")

    def _reload(self, timeout=10):
        """`nginx -s reload`, then wait until every worker of the old configuration is gone and
        a new one runs: the next connection meets the new configuration."""
        old = set(_children(self.proc.pid))
        mark = len(self.log())
        r = subprocess.run(self._nginx("-s", "reload"), capture_output=True, text=True,
                           timeout=30)
        if r.returncode != 0:
            raise WorldError(f"nginx -s reload exited {r.returncode}: {r.stdout}{r.stderr}")

        def look():
            if "[emerg]" in self.log()[mark:]:
                raise WorldError(f"nginx refused the new configuration:\n{self.log()[mark:]}")
            now = set(_children(self.proc.pid))
            return now, now & old
        _wait(look, lambda got: got[0] and not got[1],
              lambda got: f"nginx reload: old workers {sorted(got[1])} left after {timeout}s:\n"
                          f"{self.log()[mark:]}", timeout)

    def log(self):
        return _read(self.error_log) + _read(self.dir / "nginx.out")

    def requests(self):
        """The access log's lines."""
        return _read(self.access_log).splitlines()

    def stop(self):
        # SIGQUIT: nginx's graceful shutdown.
        _end(self.proc, signal.SIGQUIT)
        self.proc = None
        self.state = None


# ---- the whole deployment ---------------------------------------------------------------

class RealWorld:
    """dnsmasq, nginx and (on first use) Postfix, with the certificates; see the module
    comment."""

    def __init__(self, binary, directory):
        self.binary = binary
        self.dir = pathlib.Path(directory)
        net = pick_net()
        self.addr = {"dns": f"{net}.53", "mx": f"{net}.25", "policy": f"{net}.80"}
        self.certs = WorldCerts(self.dir / "certs")
        self.dns = Dnsmasq(self.dir / "dnsmasq", self.addr["dns"],
                           {MX_HOST: self.addr["mx"], POLICY_HOST: self.addr["policy"]})
        self.nginx = Nginx(self.dir / "nginx", self.addr["policy"])
        self._postfix = None
        self.state = None

    @property
    def ca_file(self):
        return self.certs.ca.cert

    @property
    def postfix(self):
        """The Postfix MX, started on first use; the test skips when not root (or fails when
        Postfix is unusable: postfix_fixture.require_postfix)."""
        require_postfix()
        if self._postfix is None:
            cert, key = self.certs.mx["valid"]
            listeners = {}
            for (kind, level), name in MX_LISTENERS.items():
                c, k = self.certs.mx[kind]
                listeners[name] = {"smtpd_tls_cert_file": c, "smtpd_tls_key_file": k,
                                   "smtpd_tls_security_level": level}
            pf = PostfixInstance(cert, key, label="realworld", domain=DOMAIN,
                                 address=self.addr["mx"], mailbox=MAILBOX, listeners=listeners)
            self._postfix = pf.start()
        return self._postfix

    @property
    def mx_port(self):
        """The port of the Postfix listener of the current state (apply())."""
        key = (self.state["mx_cert"], self.state["tls_level"])
        if key == (HEALTHY["mx_cert"], HEALTHY["tls_level"]):
            return self.postfix.port
        return self.postfix.ports[MX_LISTENERS[key]]

    def apply(self, mx=True, **breaks):
        """Make the deployment HEALTHY but for `breaks` (keys of HEALTHY). With `mx` (the
        default) the Postfix MX is started too, on first use (see `postfix`); mx=False does not
        start it, for tests of DNS and the policy host only. Returns self."""
        unknown = set(breaks) - set(HEALTHY)
        if unknown:
            raise WorldError(f"unknown parts of the world: {sorted(unknown)}")
        s = {**HEALTHY, **breaks}
        self.dns.apply(s["sts_txt"], s["tlsrpt_txt"])
        cert, key = self.certs.policy[s["policy_cert"]]
        self.nginx.apply(s["nginx"], s["policy"], s["content_type"], cert, key)
        mx_key = (s["mx_cert"], s["tls_level"])
        if mx_key != (HEALTHY["mx_cert"], HEALTHY["tls_level"]) and mx_key not in MX_LISTENERS:
            raise WorldError(f"no Postfix listener for certificate {mx_key[0]!r} with "
                             f"smtpd_tls_security_level {mx_key[1]!r} (MX_LISTENERS)")
        if mx:
            self.postfix  # started (or the test skipped) before anything is asked of it
        self.state = s
        return self

    # -- the sender pointed at it -----------------------------------------------------------

    def sender_args(self, cache=None):
        """--dns, --ca-file, --smtp-port (when Postfix runs), --https-port; no policy cache
        unless `cache` (a FILE) is given."""
        args = ["--dns", self.dns.server, "--ca-file", str(self.ca_file),
                "--https-port", str(self.nginx.port), "--timeout", "10"]
        if self._postfix is not None:
            args += ["--smtp-port", str(self.mx_port)]
        args += ["--cache", str(cache)] if cache else ["--no-cache"]
        return args

    def run(self, command, *args, cache=None, target=DOMAIN):
        """`ststest COMMAND --json <sender_args> ARGS TARGET`: (CompletedProcess, the one
        result object). Fails the test when stdout is not one JSON document of one result."""
        argv = [self.binary, command, "--json", *self.sender_args(cache), *args, target]
        r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
        try:
            doc = json.loads(r.stdout)
        except json.JSONDecodeError as e:
            pytest.fail(f"`{' '.join(argv)}` exited {r.returncode}; stdout is not one JSON "
                        f"document ({e}): {r.stdout!r}\nstderr:\n{r.stderr}")
        if set(doc) != {"results"} or len(doc["results"]) != 1:
            pytest.fail(f"expected {{\"results\": [one]}}: {doc}")
        return r, doc["results"][0]

    def stop(self):
        """Stop every daemon; returns the Postfix pids left (normally none)."""
        left = []
        self.nginx.stop()
        self.dns.stop()
        if self._postfix is not None:
            left = self._postfix.stop()
            if not left:
                self._postfix.cleanup()
        return left


@pytest.fixture(scope="module")
def realworld(ststest_bin):
    """The module's RealWorld, in a private directory under /tmp (Postfix's and nginx's
    unprivileged processes must be able to traverse it), stopped after the module; the last
    test errors if a Postfix process survived."""
    tool(NGINX)
    tool(DNSMASQ)
    directory = pathlib.Path(tempfile.mkdtemp(prefix="ststest-realworld-", dir="/tmp"))
    directory.chmod(0o755)
    world = RealWorld(ststest_bin, directory)
    try:
        yield world
    finally:
        left = world.stop()
        if not left:
            shutil.rmtree(directory, ignore_errors=True)
    assert not left, f"Postfix processes left running: {left}"


@pytest.fixture
def world(realworld):
    """The module's world made healthy (DNS and policy host; the MX when the test uses
    `world.postfix` or apply())."""
    return realworld.apply(mx=False)
