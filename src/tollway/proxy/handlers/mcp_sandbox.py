"""Confining a stdio MCP server's files with Landlock (Linux 5.13+): it may read and run what
the system's directories hold and the paths its version names, and change files only in its
working directory (and the paths named writable). Everything else, the gateway's data
directory, its secret key, other processes' /proc, is out of its reach. The rules are set in
the child between fork and exec, and hold for everything it runs after.

Not a container: the network, the user and other processes are not confined (run a server
that needs that in a container, reached over HTTP)."""

from __future__ import annotations

import contextlib
import ctypes
import os
import struct
from collections.abc import Sequence

# Filesystem rights (include/uapi/linux/landlock.h), by the ABI that brought them.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_CHANGE = sum(1 << bit for bit in range(4, 13))  # remove and make files, dirs, links...
REFER, TRUNCATE = 1 << 13, 1 << 14
READ = EXECUTE | READ_FILE | READ_DIR
_SYS_CREATE_RULESET, _SYS_ADD_RULE, _SYS_RESTRICT_SELF = 444, 445, 446
_VERSION = 1  # LANDLOCK_CREATE_RULESET_VERSION
_RULE_PATH_BENEATH = 1
_PR_SET_NO_NEW_PRIVS = 38
# What every program needs to read and run; /dev for /dev/null and the random devices.
SYSTEM_PATHS = ("/usr", "/lib", "/lib32", "/lib64", "/bin", "/sbin", "/etc", "/opt")
DEVICES = ("/dev/null", "/dev/zero", "/dev/urandom", "/dev/random")


class SandboxUnavailable(Exception):
    """The kernel cannot confine a process (no Landlock)."""


def abi() -> int:
    """The kernel's Landlock ABI version (0: none)."""
    libc = ctypes.CDLL(None, use_errno=True)
    version = int(libc.syscall(_SYS_CREATE_RULESET, None, 0, _VERSION))
    return max(version, 0)


def confine(cwd: str, read: Sequence[str], write: Sequence[str]) -> None:
    """Restrict this process (and what it runs) to read `SYSTEM_PATHS` and `read`, and
    read and change `cwd` and `write`. Raises SandboxUnavailable without Landlock."""
    version = abi()
    if version < 1:
        raise SandboxUnavailable("this kernel has no Landlock")
    writes = READ | WRITE_FILE | _CHANGE
    handled = writes
    if version >= 2:
        handled |= REFER
        writes |= REFER
    if version >= 3:
        handled |= TRUNCATE
        writes |= TRUNCATE
    libc = ctypes.CDLL(None, use_errno=True)
    # struct landlock_ruleset_attr, its first field only: ABI 1's size.
    attr = struct.pack("=Q", handled)
    ruleset = int(libc.syscall(_SYS_CREATE_RULESET, attr, len(attr), 0))
    if ruleset < 0:
        raise SandboxUnavailable(
            f"landlock_create_ruleset failed: {os.strerror(ctypes.get_errno())}"
        )
    try:
        for path in (*SYSTEM_PATHS, *read):
            _allow(libc, ruleset, path, READ)
        for path in DEVICES:
            _allow(libc, ruleset, path, READ_FILE | WRITE_FILE)
        for path in (cwd, *write):
            _allow(libc, ruleset, path, writes)
        if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise SandboxUnavailable("no_new_privs could not be set")
        if libc.syscall(_SYS_RESTRICT_SELF, ruleset, 0) != 0:
            raise SandboxUnavailable(
                f"landlock_restrict_self failed: {os.strerror(ctypes.get_errno())}"
            )
    finally:
        os.close(ruleset)


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except OSError:
        return  # a path this machine does not have
    with contextlib.ExitStack() as done:
        done.callback(os.close, fd)
        if not os.path.isdir(path):
            # Directory rights cannot be given on a file.
            access &= EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE
        # struct landlock_path_beneath_attr (packed): allowed_access, parent_fd.
        rule = struct.pack("=Qi", access, fd)
        if libc.syscall(_SYS_ADD_RULE, ruleset, _RULE_PATH_BENEATH, rule, 0) != 0:
            raise SandboxUnavailable(
                f"landlock_add_rule on {path} failed: {os.strerror(ctypes.get_errno())}"
            )
