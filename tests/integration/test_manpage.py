"""docs/ststest.1 is kept true to the binary.

The man page's roff source is parsed here (no man or groff needed): the options of
each sub-command are the tags of the .TP (or .TQ, .IP) entries in that command's
subsection of COMMANDS, and must equal the options `ststest CMD --help` prints, with
the same argument names; the subsections of COMMANDS must be the commands
`ststest --help` lists; every exit status a --help names must be a tag in the
EXIT STATUS subsection of that command. A second test renders the page with groff
(and man, when installed) and wants no warnings.
"""
import os
import re
import subprocess

import pytest

from conftest import need

# --------------------------------------------------------------------------
# --help text

# An option's argument as the help texts write it: N, FILE, FILE|-, SECS,
# HOST[:PORT][,...], 127.X.Y, ...; never a lower-case word of the description.
METAVAR = re.compile(r"^[A-Z0-9][A-Z0-9.:\[\],|_-]*$")
OPTION = re.compile(r"^(?:-[A-Za-z0-9?]|--[A-Za-z0-9][A-Za-z0-9-]*)$")


def run(binary, *args):
    r = subprocess.run([binary, *args], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, f"ststest {' '.join(args)} exited {r.returncode}: {r.stderr}"
    return r.stdout


def parse_spec(spec):
    """'-j, --jobs N' -> ({'-j', '--jobs'}, 'N'); '--list' -> ({'--list'}, None).
    Words after the options that do not look like an argument name are the
    description run into the spec (a help line with one space before it)."""
    words = [w for w in re.split(r",?\s+", spec.strip()) if w]
    opts = []
    while words and OPTION.match(words[0]):
        opts.append(words.pop(0))
    arg = words[0] if words and METAVAR.match(words[0]) else None
    return opts, arg


def block(text, header):
    """The lines after a line that is exactly `header`, up to the next blank line."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == header:
            out = []
            for l in lines[i + 1:]:
                if not l.strip():
                    break
                out.append(l)
            return out
    return []


def help_options(text):
    """{option: argument name or None} from the 'options:' block of a --help. An
    option line starts with '-' and is indented like the others (continuation lines
    are indented to the description column)."""
    lines = block(text, "options:")
    indents = [len(l) - len(l.lstrip()) for l in lines if l.lstrip().startswith("-")]
    assert indents, f"no options found in:\n{text}"
    left = min(indents)
    specs = {re.split(r"\s{2,}", l.strip(), maxsplit=1)[0]: f"option line {l!r}"
             for l in lines
             if l.lstrip().startswith("-") and len(l) - len(l.lstrip()) <= left + 4}
    return options_of(specs)


def options_of(specs):
    """{option: argument name or None} of {spec: where it stands} (see parse_spec)."""
    found = {}
    for spec, where in specs.items():
        opts, arg = parse_spec(spec)
        assert opts, f"cannot read the {where}"
        for o in opts:
            found[o] = arg
    return found


def help_exit_statuses(text):
    """The numbers of the 'exit status:' paragraph of a --help."""
    m = re.search(r"^exit status:(.*?)(?:\n\s*\n|\Z)", text, re.S | re.M)
    assert m, f"no 'exit status:' paragraph in:\n{text}"
    return {int(n) for n in re.findall(r"(?<![\w.-])(\d{1,3})(?![\w.])", m.group(1))}


def help_commands(text):
    """The commands the top-level --help lists under 'commands:'."""
    cmds = []
    for l in block(text, "commands:"):
        m = re.match(r"^\s+([a-z][a-z0-9-]*)\s{2,}\S", l)
        if m:
            cmds.append(m.group(1))
    return cmds


# --------------------------------------------------------------------------
# man(7) source

ESCAPES = [
    (re.compile(r"\\f(?:\[[^\]]*\]|\(..|.)"), ""),  # font changes
    (re.compile(r"\\\*(?:\[[^\]]*\]|\(..|.)"), ""),  # strings
    (re.compile(r"\\\((?:em|en)"), "-"),
    (re.compile(r"\\\((?:aq)"), "'"),
    (re.compile(r"\\\((?:dq)"), '"'),
    (re.compile(r"\\\(bu"), "*"),
    (re.compile(r"\\\(.."), "?"),
    (re.compile(r"\\\[[^\]]*\]"), "?"),
    (re.compile(r"\\[&:%|^c)]"), ""),  # zero-width, break points, no-hyphen marks
    (re.compile(r"\\[ ~0]"), " "),
]


def roff_text(s):
    """Roff escapes to plain text: \\- and \\e are '-' and '\\', fonts vanish."""
    s = s.replace("\\e", "\x00")
    s = s.replace("\\-", "-")
    for pat, rep in ESCAPES:
        s = pat.sub(rep, s)
    s = re.sub(r"\\(.)", r"\1", s)
    return s.replace("\x00", "\\")


def macro_args(rest):
    """The arguments of a macro line: blank-separated, "quoted" ones may hold
    blanks ("" is a quote), an escape is part of its argument."""
    args, cur, i, quoted, started = [], [], 0, False, False
    while i < len(rest):
        c = rest[i]
        if c == "\\" and i + 1 < len(rest):
            cur.append(rest[i:i + 2])
            started = True
            i += 2
            continue
        if quoted:
            if c == '"':
                if rest[i + 1:i + 2] == '"':
                    cur.append('"')
                    i += 2
                    continue
                quoted = False
            else:
                cur.append(c)
        elif c == '"' and not cur:
            quoted = started = True
        elif c in " \t":
            if started:
                args.append("".join(cur))
                cur, started = [], False
        else:
            cur.append(c)
            started = True
        i += 1
    if started:
        args.append("".join(cur))
    return args


FONT_MACROS = {"B", "I", "SM", "SB"}  # arguments joined by blanks
ALT_MACROS = {"BI", "BR", "IB", "IR", "RB", "RI"}  # arguments joined without


def line_text(line):
    """The text a line sets: its own, or a font macro's arguments; None for other
    requests and macros."""
    if line[:1] in (".", "'"):
        parts = line[1:].strip().split(None, 1)
        if not parts:
            return None
        name, rest = parts[0], parts[1] if len(parts) > 1 else ""
        if name in FONT_MACROS:
            return roff_text(" ".join(macro_args(rest)))
        if name in ALT_MACROS:
            return roff_text("".join(macro_args(rest)))
        return None
    return roff_text(line)


def strip_comment(line):
    if line.startswith(('.\\"', "'\\\"", '\\"')):
        return None
    m = re.search(r'(?<!\\)\\"', line)  # a comment after text
    return line[:m.start()].rstrip() if m else line


class ManPage:
    """The sections (.SH) and subsections (.SS) of a man(7) page, and the tags of
    the .TP/.TQ/.IP entries in each."""

    def __init__(self, source):
        self.sections = {}  # name -> {"lines": [...], "sub": {title: [lines]}}
        self.order = []
        sec = sub = None
        for raw in source.splitlines():
            line = strip_comment(raw)
            if line is None:
                continue
            m = re.match(r"^[.']\s*(SH|SS)(?:\s+(.*))?$", line)
            if m:
                title = roff_text(" ".join(macro_args(m.group(2) or ""))).strip()
                if m.group(1) == "SH":
                    sec = self.sections.setdefault(title, {"lines": [], "sub": {}})
                    self.order.append(title)
                    sub = None
                elif sec is not None:
                    sub = sec["sub"].setdefault(title, [])
                continue
            if sec is None:
                continue
            (sub if sub is not None else sec["lines"]).append(line)

    def section(self, name):
        assert name in self.sections, f"the man page has no {name} section ({self.order})"
        return self.sections[name]

    @staticmethod
    def tags(lines):
        """The tag text of every .TP/.TQ entry (the line after it) and .IP entry
        (its first argument)."""
        out, want_tag = [], False
        for line in lines:
            if want_tag:
                t = line_text(line)
                if t is not None:
                    out.append(t.strip())
                    want_tag = False
                    continue
                if re.match(r"^[.']\s*(PD|\\\")", line):
                    continue  # spacing requests may sit between .TP and its tag
                want_tag = False
            m = re.match(r"^[.']\s*(TP|TQ|IP)\b(.*)$", line)
            if m:
                if m.group(1) == "IP":
                    args = macro_args(m.group(2))
                    if args:
                        out.append(roff_text(args[0]).strip())
                else:
                    want_tag = True
        return out

    @staticmethod
    def text(lines):
        return "\n".join(t for t in (line_text(l) for l in lines) if t is not None)


def man_options(lines):
    """{option: argument name or None} from the tags of a command's subsection;
    tags that do not start with '-' (placeholders, ...) are not options."""
    return options_of({tag: f"option tag {tag!r}" for tag in ManPage.tags(lines)
                       if tag.startswith("-")})


def command_of(title):
    """'ststest send' -> 'send': each subsection of COMMANDS is titled by its command."""
    words = title.split()
    if len(words) == 2 and words[0] == "ststest":
        return words[1]
    return title


# --------------------------------------------------------------------------
# fixtures


@pytest.fixture(scope="module")
def manpage_path(src_dir):
    return src_dir / "docs" / "ststest.1"


@pytest.fixture(scope="module")
def page(manpage_path):
    return ManPage(manpage_path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def commands(ststest_bin):
    cmds = help_commands(run(ststest_bin, "--help"))
    assert len(cmds) >= 5, f"ststest --help lists too few commands: {cmds}"
    return cmds


@pytest.fixture(scope="module")
def man_commands(page):
    """{command: lines of its subsection under COMMANDS}"""
    sub = page.section("COMMANDS")["sub"]
    return {command_of(t): lines for t, lines in sub.items()}


# --------------------------------------------------------------------------
# the parsers themselves (so that an empty parse cannot pass as agreement)


def test_parsers_read_what_they_should():
    src = "\n".join([
        '.TH X 1', '.SH COMMANDS', '.SS "ststest demo"', 'Some text with \\-\\-not\\-a\\-tag.',
        '.TP', '.BR \\-j ", " \\-\\-jobs " \\fIN\\fR"', 'Cases.',
        '.TP', '\\fB\\-\\-dns\\fR \\fIHOST\\fR[\\fB:\\fIPORT\\fR][\\fB,\\fR...]', 'Servers.',
        '.TP', '.BI \\-\\-data " FILE" \\fR|\\fB\\-\\fR', 'Data.',
        '.TP', '.B \\-\\-list', '.TP', '.B {rcpt}', 'Not an option.',
        '.\\" .TP', '.\\" .B \\-\\-commented\\-out',
        '.SH "EXIT STATUS"', '.SS "demo and other"', '.TP', '.B 0', 'ok', '.TP', '.B 75', 'x',
    ])
    p = ManPage(src)
    lines = p.section("COMMANDS")["sub"]["ststest demo"]
    assert man_options(lines) == {"-j": "N", "--jobs": "N", "--dns": "HOST[:PORT][,...]",
                                  "--data": "FILE|-", "--list": None}
    assert p.tags(p.section("EXIT STATUS")["sub"]["demo and other"]) == ["0", "75"]
    help_text = ("usage: x\n\noptions:\n  -j, --jobs N         cases\n"
                 "      --sender-cmd CMD run CMD (via /bin/sh)\n"
                 "                       --not-an-option continued\n"
                 "      --standard-ports serve each world\n"
                 "      --std-ports  DNS 53, SMTP 25\n  -h, --help   this\n\n"
                 "exit status: 0 all passed, 1 some failed, 77 --standard-ports without\n"
                 "root.\n")
    assert help_options(help_text) == {"-j": "N", "--jobs": "N", "--sender-cmd": "CMD",
                                       "--standard-ports": None, "--std-ports": None,
                                       "-h": None, "--help": None}
    assert help_exit_statuses(help_text) == {0, 1, 77}


# --------------------------------------------------------------------------
# the man page against the binary


def test_man_page_lists_the_commands_of_help(page, commands, man_commands):
    assert sorted(man_commands) == sorted(commands), (
        "the subsections of COMMANDS in docs/ststest.1 are not the commands of "
        f"`ststest --help`: missing {sorted(set(commands) - set(man_commands))}, "
        f"extra {sorted(set(man_commands) - set(commands))}")
    synopsis = re.sub(r"\s+", " ", page.text(page.section("SYNOPSIS")["lines"]))
    missing = [c for c in commands if f"ststest {c} " not in synopsis + " "]
    assert not missing, f"SYNOPSIS of docs/ststest.1 lacks {missing}: {synopsis}"


def test_man_page_version_is_the_binary_version(page, manpage_path, ststest_bin):
    version = run(ststest_bin, "--version").split()[-1]
    th = next(l for l in manpage_path.read_text(encoding="utf-8").splitlines()
              if l.startswith(".TH "))
    assert f"ststest {version}" in th, f"docs/ststest.1 .TH says {th!r}, the binary {version}"


@pytest.mark.parametrize("command", ["send", "check", "world", "run", "lint", "report"])
def test_options_of_man_page_equal_help(command, ststest_bin, commands, man_commands):
    assert command in commands, f"`ststest --help` no longer lists {command}"
    assert command in man_commands, f"docs/ststest.1 has no subsection for {command}"
    want = help_options(run(ststest_bin, command, "--help"))
    assert "--help" in want, f"the parse of `ststest {command} --help` found {want}"
    got = man_options(man_commands[command])
    missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
    assert not missing and not extra, (
        f"`ststest {command}`: the options of docs/ststest.1 differ from --help: "
        f"missing from the man page {missing}, in the man page only {extra}")
    args = {o: (want[o], got[o]) for o in want if want[o] != got[o]}
    assert not args, (
        f"`ststest {command}`: argument names differ (--help, man page): {args}")


def test_exit_statuses_of_help_are_in_the_man_page(ststest_bin, page, commands):
    sub = page.section("EXIT STATUS")["sub"]
    per_command = {}
    for title, lines in sub.items():
        statuses = {int(t) for t in page.tags(lines) if t.isdigit()}
        for word in re.findall(r"[a-z][a-z0-9-]*", title):
            if word in commands:
                per_command.setdefault(word, set()).update(statuses)
    problems = []
    for c in commands:
        want = help_exit_statuses(run(ststest_bin, c, "--help"))
        if c not in per_command:
            problems.append(f"{c}: no EXIT STATUS subsection names it")
        elif want - per_command[c]:
            problems.append(f"{c}: --help names {sorted(want)}, EXIT STATUS of the man "
                            f"page lacks {sorted(want - per_command[c])}")
    everything = set().union(*per_command.values()) if per_command else set()
    top = help_exit_statuses(run(ststest_bin, "--help"))
    if top - everything:
        problems.append(f"`ststest --help` names {sorted(top - everything)}, "
                        "which no EXIT STATUS subsection has")
    assert not problems, "docs/ststest.1 EXIT STATUS: " + "; ".join(problems)


# --------------------------------------------------------------------------
# rendering


@pytest.mark.parametrize("renderer", ["groff", "man"])
def test_man_page_renders_without_warnings(renderer, manpage_path):
    need(renderer)
    if renderer == "groff":
        cmd = ["groff", "-man", "-Tutf8", "-wall", str(manpage_path)]
        env = None
    else:
        cmd = ["man", "--warnings", "-E", "UTF-8", "-l", str(manpage_path)]
        env = dict(os.environ, MANWIDTH="80", MAN_KEEP_FORMATTING="", MANPAGER="cat",
                   PAGER="cat")
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == 0, f"{' '.join(cmd)} exited {r.returncode}: {r.stderr}"
    assert r.stderr.strip() == "", f"{' '.join(cmd)} warns:\n{r.stderr}"
    shown = re.sub(r".\x08", "", r.stdout)  # no overstrike (bold, underline)
    assert "EXIT STATUS" in shown and "ststest send" in shown, shown[:2000]
