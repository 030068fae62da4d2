"""One vocabulary (common/vocab.h): no C source outside the table spells a word of it.

Every RFC 8460 result type, policy mode, policy source, recipient outcome, MX action
and delivery-TLS word is one X-macro table in common/vocab.h; every other file uses
the enum with its name and parse functions. This test reads the words out of that
header (so it never holds a copy of them) and scans the C sources of the program for
string literals that spell one:

- an RFC 8460 result type anywhere inside a literal ("... -> sts-policy-invalid" too);
- any other word as a whole literal ("enforce", "cache", ...), since words like "none"
  also occur inside ordinary messages;
- STS_DETAIL_TIME_LIMIT's text as a whole literal.

Scanned: common/ sender/ fakedns/ runner/ src/ (the program). Not scanned: tests/,
whose tables spell the contract words on purpose so that a changed table fails them;
fuzz/, whose targets re-implement rules independently as oracles (fuzz_scenario.c's
mode check compares with its own literals on purpose); bench/ and tools/ (no C).

Allowed, and only these: the table files themselves; a literal used as a JSON object
key (the second argument of json_object_set/_set_new/_get/_del) or as a getopt long
option name; and the few uses below of the same letters in another vocabulary, each
tied to its file and the shape of its line.
"""
import re

import pytest

from conftest import SRC

TABLE_FILES = {"common/vocab.h", "common/vocab.c"}
SCANNED = ("common", "sender", "fakedns", "runner", "src")
TABLES = ("STS_RESULT_TYPES", "STS_POLICY_TYPES", "STS_MODES", "STS_POLICY_SOURCES", "STS_OUTCOMES", "STS_ACTIONS",
          "STS_DELIVERY_TLS", "STS_ASSURE_VERDICTS", "STS_COLLECTOR_FAULTS")

# (file, word, regular expression the line must match, why it is not this vocabulary)
OTHER_VOCABULARIES = [
    ("fakedns/observer.c", "none", r'"none"',
     "the rcode the observer logs for a DNS query that got no answer"),
    ("fakedns/httpsrv.c", "refused", r'^\s*"refused", NULL\);',
     "how a connection to the policy host ended (observer policy_connections outcome)"),
    ("common/scenario.c", "refused", r'"servfail", "refused", "nxdomain"',
     "the dns_faults table: a DNS REFUSED answer"),
    ("sender/cache.c", "tempfail", r'txt_names\[\] = \{"found", "absent", "tempfail"',
     "the TXT lookup status table (sts_cache_txt)"),
    ("runner/runner.c", "cache", r'\{"cache", cache_path\}',
     "the {cache} placeholder of --sender-cmd"),
    ("runner/report.c", "failed", r'"failed", \(json_int_t\)',
     "the run report's count of failed cases (a json_pack key)"),
    ("common/scenario.c", "failed", r'if \(!strcmp\(key, "failed"\)\)',
     "the key of expect.tlsrpt.policies[] for a report's total-failure-session-count"),
    ("runner/verdict.c", "failed", r'^\s*"failed",$|keys\[2\] = \{"successful", "failed"\}',
     "expect.tlsrpt.policies[]'s key (total-failure-session-count): a json_pack key of the "
     "actual facts and the difference line's name"),
]


def table_words():
    """{table: [words]} from the X-macro tables of common/vocab.h, and the time limit."""
    text = (SRC / "common" / "vocab.h").read_text()
    words = {}
    for table in TABLES:
        m = re.search(r"#define %s\(X\)((?:[^\n]*\\\n)*[^\n]*)" % table, text)
        assert m, f"table {table} not found in common/vocab.h"
        words[table] = re.findall(r'X\(\s*\w+\s*,\s*\d+\s*,\s*"([^"]+)"\s*\)', m.group(1))
        assert words[table], f"no words in {table}"
    m = re.search(r'#define STS_DETAIL_TIME_LIMIT "([^"]+)"', text)
    assert m, "STS_DETAIL_TIME_LIMIT not found in common/vocab.h"
    words["STS_DETAIL_TIME_LIMIT"] = [m.group(1)]
    return words


def literals(source):
    """(line number, literal text, the whole line) for every string literal of a C
    source outside comments; adjacent literals stay separate."""
    out, i, line, n = [], 0, 1, len(source)
    lines = source.split("\n")
    while i < n:
        c = source[i]
        if c == "\n":
            line += 1
            i += 1
        elif source.startswith("//", i):
            i = source.find("\n", i)
            i = n if i < 0 else i
        elif source.startswith("/*", i):
            end = source.find("*/", i + 2)
            end = n if end < 0 else end + 2
            line += source.count("\n", i, end)
            i = end
        elif c in "\"'":
            j, buf = i + 1, []
            while j < n and source[j] != c:
                if source[j] == "\\" and j + 1 < n:
                    buf.append(source[j:j + 2])
                    j += 2
                else:
                    buf.append(source[j])
                    j += 1
            if c == '"':
                out.append((line, "".join(buf), lines[line - 1]))
            i = j + 1
        else:
            i += 1
    return out


# A JSON object key: the second argument of json_object_set/_set_new/_get/_del (the
# first one may be a call itself). A getopt long option: {"name", x_argument, ...}.
KEY_CONTEXT = (r'json_object_(?:set_new|set|get|del)\s*\([^,()]*(?:\([^()]*\))?[^,()]*,'
               r'\s*"%s"')
OPTION_CONTEXT = r'\{\s*"%s"\s*,\s*(?:no|required|optional)_argument'


def violations(path, source, words):
    """Every stray vocabulary literal of one file: [(line, word, line text)]."""
    if path in TABLE_FILES:
        return []
    result_types = words["STS_RESULT_TYPES"]
    whole = {w for t, ws in words.items() if t != "STS_RESULT_TYPES" for w in ws}
    found = []
    for line, text, whole_line in literals(source):
        hits = [w for w in result_types
                if re.search(r"(?<![A-Za-z0-9-])%s(?![A-Za-z0-9-])" % re.escape(w), text)]
        if text in whole:
            hits.append(text)
        for w in hits:
            lit = re.escape(w)
            if re.search(KEY_CONTEXT % lit, whole_line) or re.search(OPTION_CONTEXT % lit,
                                                                      whole_line):
                continue
            if any(path == f and w == word and re.search(rx, whole_line)
                   for f, word, rx, _ in OTHER_VOCABULARIES):
                continue
            found.append((line, w, whole_line.strip()))
    return found


def c_sources():
    for folder in SCANNED:
        for p in sorted((SRC / folder).glob("*.[ch]")):
            yield p.relative_to(SRC).as_posix(), p.read_text(errors="replace")


def test_no_vocabulary_literal_outside_its_table():
    words = table_words()
    bad = [f"{path}:{line}: \"{w}\" in: {text}"
           for path, source in c_sources()
           for line, w, text in violations(path, source, words)]
    assert not bad, ("vocabulary words spelled outside common/vocab.h (use the enum and "
                     "its name/parse function):\n" + "\n".join(bad))


def test_every_exception_is_still_needed():
    """An exception that matches nothing any more must go: the list stays exact."""
    sources = dict(c_sources())
    for path, word, rx, why in OTHER_VOCABULARIES:
        src = sources.get(path, "")
        assert any(w_line for _, text, w_line in literals(src)
                   if text == word and re.search(rx, w_line)), \
            f"exception for \"{word}\" in {path} ({why}) matches nothing"


@pytest.mark.parametrize("snippet, caught", [
    ('int f(void) { return strcmp(m, "enforce"); }', ["enforce"]),
    ('x = "sts-policy-invalid";', ["sts-policy-invalid"]),
    ('log("policy INVALID -> sts-policy-invalid");', ["sts-policy-invalid"]),
    ('x = "policy-invalid-ish";', []),
    ('/* "enforce" in a comment */ int x;', []),
    ('// "cache" in a comment\nint x;', []),
    ('json_object_set_new(o, "cache", c);', []),
    ('json_object_set_new(o, "mode", json_string("enforce"));', ["enforce"]),
    ('{"cache", required_argument, NULL, 1},', []),
    ('snprintf(d, n, "time limit");', ["time limit"]),
    ('x = "the time limit of %d s";', []),
    ("c = '\"'; y = \"none\";", ["none"]),
    ('x = "mode none";', []),
])
def test_the_scanner_itself(snippet, caught):
    """The check can fail: a stray literal in a made-up source is caught, with its line."""
    words = table_words()
    found = violations("sender/made-up.c", snippet, words)
    assert [w for _, w, _ in found] == caught


# ---- check's finding vocabulary (sender/finding.h) -----------------------------------------

FINDING_TABLE_FILES = {"sender/finding.h", "sender/finding.c"}

# The same letters in another vocabulary: (file, word, regular expression the line must
# match, why it is not check's finding vocabulary).
FINDING_OTHER_VOCABULARIES = [
    ("common/vocab.h", "pass", r'X\(STS_DKIM_PASS, 0, "pass"\)',
     "the DKIM result table (RFC 8601 2.7.1) of the world's TLSRPT mailbox"),
    ("common/vocab.h", "fail", r'X\(STS_DKIM_FAIL, 1, "fail"\)',
     "the DKIM result table (RFC 8601 2.7.1) of the world's TLSRPT mailbox"),
    ("common/scenario.c", "deliver", r'!strcmp\(scalar\(v\), "deliver"\)',
     "a scenario step's `report: deliver` (the report command's --deliver)"),
]


def finding_words():
    """The words of sender/finding.h's tables: finding ids (STS_FINDINGS), verdicts, drift
    kinds and what a sender would do."""
    text = (SRC / "sender" / "finding.h").read_text()
    m = re.search(r"#define STS_FINDINGS\(X\)((?:[^\n]*\\\n)*[^\n]*)", text)
    assert m, "STS_FINDINGS not found in sender/finding.h"
    ids = re.findall(r'X\(\s*\w+\s*,\s*"([^"]+)"', m.group(1))
    assert len(ids) >= 24, ids
    others = []
    for table in ("STS_VERDICT_WORDS", "STS_DRIFTS", "STS_WOULDS"):
        m = re.search(r"#define %s\(X\)((?:[^\n]*\\\n)*[^\n]*)" % table, text)
        assert m, f"{table} not found in sender/finding.h"
        others += re.findall(r'X\(\s*\w+\s*,\s*\d+\s*,\s*"([^"]+)"\s*\)', m.group(1))
    # Words that are also ordinary English or another table's ("fail", "pass", "warn"
    # as whole literals would be caught, and are: none is spelled outside the table).
    return ids, others


def test_no_finding_literal_outside_its_table():
    ids, others = finding_words()
    bad = []
    for path, source in c_sources():
        if path in FINDING_TABLE_FILES:
            continue
        for line, text, whole_line in literals(source):
            hits = [w for w in ids
                    if re.search(r"(?<![A-Za-z0-9-])%s(?![A-Za-z0-9-])" % re.escape(w), text)]
            hits += [w for w in others if text == w]
            for w in hits:
                # a JSON key, or a getopt long option name (`report --deliver`)
                if re.search(KEY_CONTEXT % re.escape(w), whole_line) or \
                        re.search(OPTION_CONTEXT % re.escape(w), whole_line):
                    continue
                if any(path == f and w == word and re.search(rx, whole_line)
                       for f, word, rx, _ in FINDING_OTHER_VOCABULARIES):
                    continue
                bad.append(f"{path}:{line}: \"{w}\" in: {whole_line.strip()}")
    assert not bad, ("finding words spelled outside sender/finding.h (use the enum and its "
                     "name function):\n" + "\n".join(bad))
