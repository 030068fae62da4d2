"""A world whose first address block is taken by another process moves to the next block,
and the case runs as if nothing happened: the clash it stepped over is no error.

Worlds of concurrent ststest processes (parallel CI jobs, several users of one machine)
share 127.100.0.0-127.199.255.0; each process starts at a block derived from its pid. Here
the parent takes the DNS address of that first block (fakedns/world.c: 127.(100 + s / 256).
(s % 256).53, s = pid * 257 mod 25600, port 10053) before the child execs `ststest run`.
"""
import os
import socket
import subprocess

from conftest import scenario_path

BLOCK_SPACE = 100 * 256
DNS_PORT = 10053


def first_block(pid):
    s = (pid * 257) % BLOCK_SPACE
    return f"127.{100 + s // 256}.{s % 256}"


def test_run_steps_over_a_taken_block(ststest_bin, tmp_path):
    out = tmp_path / "run.out"
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: wait until the block is taken, then become ststest
        os.close(go_w)
        os.read(go_r, 1)
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.execv(str(ststest_bin), [str(ststest_bin), "run", "-j", "1", "-v",
                                    str(scenario_path("valid-enforce"))])
    os.close(go_r)
    block = first_block(pid)
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        taken.bind((f"{block}.53", DNS_PORT))
        os.write(go_w, b"x")
        os.close(go_w)
        _, status = os.waitpid(pid, 0)
    finally:
        taken.close()
    text = out.read_text()
    assert f"block {block} busy" in text, text[:3000]     # the clash happened
    errors = [ln for ln in text.splitlines() if ln.startswith("ERROR") or "error:" in ln]
    assert not errors, "\n".join(errors)
    assert "3 passed, 0 failed" in text, text[-3000:]
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
