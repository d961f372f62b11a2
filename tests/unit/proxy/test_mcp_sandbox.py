"""Landlock confinement of a stdio MCP server, in a forked child: it reads the system's
directories and the paths given, changes files only in its directory and the paths given
writable, and reaches nothing else (not another process's /proc, not a file beside it)."""

from __future__ import annotations

import os
from pathlib import Path

from tollway.proxy.handlers.mcp_sandbox import abi, confine


def _in_confined_child(cwd: Path, checks: dict[str, object]) -> dict[str, bool]:
    """Each check's outcome (True: allowed) in a child confined to `cwd`."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.close(read)
        try:
            confine(str(cwd), [], [])
            outcomes = []
            for check in checks.values():
                try:
                    check()  # type: ignore[operator]
                    outcomes.append("1")
                except OSError:
                    outcomes.append("0")
            os.write(write, "".join(outcomes).encode())
        finally:
            os._exit(0)
    os.close(write)
    said = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    return {name: said[i] == "1" for i, name in enumerate(checks)}


def test_a_confined_process_changes_only_its_own_directory(tmp_path: Path) -> None:
    assert abi() >= 1, "the kernel has no Landlock: the stdio sandbox cannot run here"
    home = tmp_path / "home"
    home.mkdir()
    beside = tmp_path / "beside.txt"
    beside.write_text("not its")
    outcomes = _in_confined_child(
        home,
        {
            "write home": lambda: (home / "a.txt").write_text("x"),
            "read system": lambda: Path("/etc/hostname").read_bytes(),
            "null device": lambda: Path("/dev/null").write_text("x"),
            "read beside": lambda: beside.read_text(),
            "write beside": lambda: (tmp_path / "b.txt").write_text("x"),
            "another's proc": lambda: Path("/proc/1/environ").read_bytes(),
        },
    )
    assert outcomes == {
        "write home": True,
        "read system": True,
        "null device": True,
        "read beside": False,
        "write beside": False,
        "another's proc": False,
    }
