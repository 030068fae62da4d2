"""The ststest command line: sub-commands, --help, usage errors."""
import subprocess

import pytest

COMMANDS = ["send", "check", "world", "run", "lint"]


def run(binary, *args):
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=30)


def test_no_arguments_is_usage_error(ststest_bin):
    r = run(ststest_bin)
    assert r.returncode == 64
    assert "usage: ststest COMMAND" in r.stderr


def test_unknown_command(ststest_bin):
    r = run(ststest_bin, "frobnicate")
    assert r.returncode == 64
    assert "unknown command 'frobnicate'" in r.stderr


def test_top_level_help_lists_every_command(ststest_bin):
    r = run(ststest_bin, "--help")
    assert r.returncode == 0
    for c in COMMANDS:
        assert f"  {c} " in r.stdout


@pytest.mark.parametrize("command", COMMANDS)
def test_each_command_has_help(ststest_bin, command):
    r = run(ststest_bin, command, "--help")
    assert r.returncode == 0, r.stderr
    assert f"usage: ststest {command}" in r.stdout
