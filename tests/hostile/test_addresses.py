"""Addresses no sender may use (issue 14): DNS that points an MX host or the policy host
at 0.0.0.0, ::, a broadcast or a multicast address. Linux routes 0.0.0.0 and :: to the
local host, so a sender that connects there talks to whatever listens on this machine.
The sender must skip such an address, name the reason, and contact nothing.

Each case puts a trap on the loopback address the kernel would send the connection to
(127.0.0.1 or ::1) at the port the sender uses, and asserts the trap saw nobody.
"""
import pytest

from hostile_run import (RCPT, TIMEOUT, assert_not_delivered, assert_nothing_in_clear,
                      run_sender, world_args)
from hostile_dns import HostileDns, world

SCENARIO = """\
name: mx-unusable-address
about: The only MX host's address is one no sender may use.
refs: [RFC 6890, RFC 4291 2.5.2, RFC 5771]
domain: example.test
dns: |
  @          MX   10 mail
  mail       {rtype} {address}
  _mta-sts   TXT  "v=STSv1; id=20240101T000000;"
policy:
  mode: ${{mode}}
  mx: [mail.example.test]
  max_age: 86400
modes: [enforce, none]
expect:
  enforce: {{outcome: deferred, received: 0}}
  none: {{outcome: deferred, received: 0}}
"""

# address, record type, the loopback address a connection would reach, the reason.
UNUSABLE = [
    ("0.0.0.0", "A", "127.0.0.1", "0.0.0.0/8: 'this network', RFC 6890"),
    ("::", "AAAA", "::1", "::/128: the unspecified address, RFC 4291 2.5.2"),
    ("::ffff:0.0.0.0", "AAAA", "127.0.0.1",
     "::ffff:0.0.0.0/104: IPv4-mapped 'this network', RFC 6890"),
    ("255.255.255.255", "A", "127.0.0.1", "255.255.255.255/32: limited broadcast, RFC 6890"),
    ("224.0.0.1", "A", "127.0.0.1", "224.0.0.0/4: multicast, RFC 5771"),
    ("ff02::1", "AAAA", "::1", "ff00::/8: multicast, RFC 4291 2.7"),
]


@pytest.mark.parametrize("mode", ["enforce", "none"])
@pytest.mark.parametrize("address,rtype,local,why", UNUSABLE, ids=[u[0] for u in UNUSABLE])
def test_mx_address_unusable(ststest_bin, world_factory, trap_factory, tmp_path, mode,
                             address, rtype, local, why):
    trap = trap_factory(local)
    scen = tmp_path / "mx-unusable.yaml"
    scen.write_text(SCENARIO.format(rtype=rtype, address=address))
    w = world_factory(scen, "--mode", mode, "--smtp-port", str(trap.port))
    run = run_sender(ststest_bin, *world_args(w))
    obs = w.stop()

    assert_not_delivered(run, "deferred")
    assert run.result["policy"]["mode"] == mode
    sentence = f"address {address} is not a usable destination ({why})"
    [mx] = run.mx("mail.example.test")
    assert mx["action"] == "tempfail"
    assert mx["detail"] == sentence
    assert mx["connected"] is False and mx["addresses"] == []
    assert f"MX mail.example.test: {sentence}: not contacted" in run.stderr
    assert "Connecting to" not in run.stderr
    # Nothing connected: not the trap, not the world.
    assert trap.peers == []
    assert obs["smtp_sessions"] == []
    assert_nothing_in_clear(obs)


def test_mx_unusable_address_skipped_for_the_next(ststest_bin, trap_factory):
    """0.0.0.0 first, then a real address: the first is skipped (named), the second is
    tried; the trap behind 0.0.0.0 sees nobody."""
    local = trap_factory("127.0.0.1")
    mx = trap_factory("127.0.0.2", local.port)
    dns = HostileDns(world("mx-mixed", mx_address="127.0.0.2"))
    try:
        run = run_sender(ststest_bin, "--dns", dns.addr, "--no-cache", "--smtp-port",
                         str(local.port), "--require-tls")
    finally:
        dns.close()
    assert_not_delivered(run, "deferred")
    assert local.peers == []
    assert len(mx.peers) == 1
    [entry] = run.mx("mail.example.test")
    assert entry["addresses"] == ["127.0.0.2"]
    assert ("MX mail.example.test: address 0.0.0.0 is not a usable destination "
            "(0.0.0.0/8: 'this network', RFC 6890): not contacted") in run.stderr


def test_policy_host_address_unusable(ststest_bin, trap_factory):
    """mta-sts.example.test A 0.0.0.0: no HTTPS connection at all; the fetch fails
    (sts-policy-fetch-error) with the reason, and the message is not delivered."""
    https = trap_factory("127.0.0.1")
    smtp = trap_factory("127.0.0.1")
    dns = HostileDns(world("policy-zero"))
    try:
        run = run_sender(ststest_bin, "--dns", dns.addr, "--no-cache", "--https-port",
                         str(https.port), "--smtp-port", str(smtp.port), "--mode", "enforce")
    finally:
        dns.close()
    assert_not_delivered(run, "deferred")
    assert https.peers == []
    assert "sts-policy-fetch-error" in run.result["failures"]
    sentence = ("address 0.0.0.0 is not a usable destination "
                "(0.0.0.0/8: 'this network', RFC 6890)")
    assert (f"MTASTS policy host mta-sts.example.test: {sentence}: not contacted"
            in run.stderr)
    assert "MTASTS policy fetch https://" not in run.stderr
    assert ("mta-sts.example.test", "A") in dns.asked
