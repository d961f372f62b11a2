"""Spool files: messages that could not go where they were going (the channel to the
recorder was full, or the store was down), kept on disk until the recorder replays them.

A file is written by one process under a `.part` name and renamed to `.spool` when it is
complete (it reached its size, it has been open for a while, or its writer exits): the
recorder only reads `.spool` files, and `.part` files whose writer has died. Each frame is
its length, its CRC-32 and the message, so a frame torn by a crash is recognised and the
file's earlier frames still count. Replaying a file twice is harmless: records and events are
stored once by their ids.

Names: `w<pid>-<n>` for a worker's (their records are new to the recorder), `r<pid>-<n>` for
the recorder's own (records it has already counted in its metrics).
"""

from __future__ import annotations

import contextlib
import os
import struct
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

_HEADER = struct.Struct("<II")
READY = ".spool"
PART = ".part"
# A file is closed at this size, or this long after it was opened.
MAX_FILE_BYTES = 8 << 20
MAX_FILE_AGE_S = 1.0


def prepare(directory: Path) -> Path:
    """The spool directory, created private to its owner."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(directory, 0o700)
    return directory


class SpoolWriter:
    """Appends messages to the current file of one process; not thread-safe."""

    __slots__ = ("_file", "_n", "_opened_at", "_path", "_size", "directory", "prefix")

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix
        self._file: int | None = None
        self._path: Path | None = None
        self._size = 0
        self._opened_at = 0.0
        self._n = 0

    @property
    def open(self) -> bool:
        return self._file is not None

    def append(self, message: bytes) -> None:
        """Writes one frame (raises OSError when the disk refuses it)."""
        if self._file is None:
            self._n += 1
            self._path = self.directory / f"{self.prefix}{os.getpid()}-{self._n}{PART}"
            self._file = os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            self._opened_at = time.monotonic()
            self._size = 0
        frame = _HEADER.pack(len(message), zlib.crc32(message)) + message
        os.write(self._file, frame)
        self._size += len(frame)
        if self._size >= MAX_FILE_BYTES:
            self.seal()

    def seal(self) -> None:
        """Closes the current file and hands it to the recorder."""
        if self._file is None or self._path is None:
            return
        os.close(self._file)
        self._file = None
        os.replace(self._path, self._path.with_suffix(READY))
        self._path = None

    def seal_if_old(self, now: float | None = None) -> None:
        if self._file is not None and (now or time.monotonic()) - self._opened_at >= (
            MAX_FILE_AGE_S
        ):
            self.seal()


def frames(path: Path) -> Iterator[bytes]:
    """The file's whole frames, in order; a torn or corrupt frame ends the file."""
    data = path.read_bytes()
    at = 0
    while at + _HEADER.size <= len(data):
        length, crc = _HEADER.unpack_from(data, at)
        start = at + _HEADER.size
        message = data[start : start + length]
        if len(message) < length or zlib.crc32(message) != crc:
            return
        yield message
        at = start + length


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def ready_files(directory: Path, *, orphans: bool = True) -> list[Path]:
    """Files to replay, oldest first: complete ones, and (with `orphans`) the unfinished
    files of processes that no longer run."""
    found: list[tuple[float, Path]] = []
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    for entry in entries:
        path = Path(entry.path)
        if path.suffix == READY:
            pass
        elif path.suffix == PART and orphans:
            pid = owner(path)
            if pid is None or pid == os.getpid() or _alive(pid):
                continue
        else:
            continue
        try:
            found.append((entry.stat().st_mtime, path))
        except FileNotFoundError:
            continue
    return [path for _, path in sorted(found)]


def owner(path: Path) -> int | None:
    """The pid in a spool file's name (`w123-4.spool` -> 123)."""
    stem = path.name.split(".", 1)[0]
    pid, _, _ = stem[1:].partition("-")
    return int(pid) if pid.isdigit() else None


def from_worker(path: Path) -> bool:
    return path.name.startswith("w")
