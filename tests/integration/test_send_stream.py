"""`send` prints each result as soon as it and every result before it are done, then
frees it (issue 15: memory by what is in flight). The output is the same document as
before, in argument order, even when a later recipient finishes first: here the first
recipient waits 1 s for its MX answer (a scripted DNS delay) while the second, at a
domain the world refuses, is done at once."""
import json

from conftest import run_sender, scenario_file

SLOW_MX = """\
name: slow-mx
about: the MX answer of example.test comes after a second
refs: [RFC 5321 5.1]
domain: example.test
dns: |
  @ MX 10 mail
policy:
  mode: enforce
  mx: [mail.example.test]
dns_faults:
  - {name: '@', type: MX, fault: delay, delay: 1.0}
expect:
  enforce: {outcome: delivered}
"""

ARGS = ["u1@example.test", "x@refused.invalid", "u2@example.test"]


def test_json_in_argument_order(ststest_bin, world_factory, tmp_path):
    w = world_factory(scenario_file(tmp_path, "slow", SLOW_MX))
    r = run_sender(ststest_bin, "send", w, "--json", "--concurrency", "3", *ARGS)
    assert r.returncode == 75, r.stderr[-2000:]  # one deferred
    doc = json.loads(r.stdout)
    assert list(doc) == ["results"]
    assert [x["argument"] for x in doc["results"]] == ARGS
    assert [x["outcome"] for x in doc["results"]] == ["delivered", "deferred", "delivered"]
    # The same octets as one json_dumpf of the document (indent 2, keys in order).
    assert r.stdout == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    # The refused recipient was done long before the first one: the transcript says so.
    assert r.stderr.index("RESULT x@refused.invalid") < r.stderr.index("RESULT u1@example.test")


def test_text_lines_in_argument_order(ststest_bin, world_factory, tmp_path):
    w = world_factory(scenario_file(tmp_path, "slow", SLOW_MX))
    r = run_sender(ststest_bin, "send", w, "--concurrency", "3", *ARGS)
    lines = r.stdout.splitlines()
    assert [l.split(":")[0] for l in lines] == ARGS, r.stdout
    assert lines[1].startswith("x@refused.invalid: deferred")


def test_one_result_document(ststest_bin, world_factory, tmp_path):
    """A single result: the document's head, the result two levels deep, the end."""
    w = world_factory(scenario_file(tmp_path, "slow", SLOW_MX))
    r = run_sender(ststest_bin, "send", w, "--json", "x@refused.invalid")
    doc = json.loads(r.stdout)
    assert r.stdout == json.dumps(doc, indent=2, ensure_ascii=False) + "\n"
    assert r.stdout.startswith('{\n  "results": [\n    {\n      "recipient": ')
