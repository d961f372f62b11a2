"""Files kept by the gateway for the Files and Batches APIs: uploads (a batch's input) and the
files the gateway writes (a batch's output and errors).

Each file is two entries in its owner's folder: `<id>.data`, the bytes, and `<id>.json`, its
description, written after the data (by rename, so never half-written); a file without its
description does not exist. Files belong to their owner (an app, or a key of the file's
configuration without an app): another owner's id is not found. The folder is the node's
(beside its stored responses), shared by its workers; a cluster's nodes do not share files.

Reading and writing files is blocking I/O: the data plane calls the async methods, which do
it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

if TYPE_CHECKING:
    from tollway.config.snapshot import ClientKey

# An owner's folder name is made here; anything else is refused before it becomes a path.
_SAFE = re.compile(r"^[A-Za-z0-9_.:-]{1,128}$")
# A file id is `new_id("file-")`: nothing else names a file (a batch's own entries beside
# the files, or a path, are never reached through the Files API).
_FILE_ID = re.compile(r"^file-[0-9a-f]{24}$")


@dataclass(frozen=True, slots=True)
class StoredFile:
    id: str
    filename: str
    purpose: str
    bytes: int
    created_at: int
    expires_at: int | None = None

    def as_openai(self) -> dict[str, Any]:
        """The file as OpenAI's Files API describes one."""
        return {
            "id": self.id,
            "object": "file",
            "bytes": self.bytes,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


def new_id(prefix: str) -> str:
    return prefix + secrets.token_hex(12)


def owner_of(key: ClientKey | None) -> str:
    """The owner of the files and batches a caller makes (see owner_name)."""
    if key is None:
        return owner_name(None, None)
    return owner_name(key.app.id if key.app is not None else None, key.name)


def owner_name(app_id: int | None, key_name: str | None) -> str:
    """Whose a file (or batch) is: the caller's app, else its key (a configuration file's key
    without an app), else "anonymous" (a gateway that asks for no key)."""
    if app_id is not None:
        return f"app:{app_id}"
    if key_name is not None:
        return "key:" + re.sub(r"[^A-Za-z0-9_.-]", "_", key_name)[:120]
    return "anonymous"


class FileStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def folder(self, owner: str) -> Path:
        if not _SAFE.match(owner):
            raise ValueError(f"not an owner name: {owner!r}")
        return self.root / owner.replace(":", "_")

    def _entry(self, owner: str, file_id: str, suffix: str) -> Path | None:
        if not _FILE_ID.match(file_id):
            return None
        return self.folder(owner) / f"{file_id}{suffix}"

    # -- writing ------------------------------------------------------------------------

    async def open_upload(self, owner: str) -> Upload:
        """A new file to write as it arrives: it exists once `keep` describes it."""
        file_id = new_id("file-")
        data = self.data_path(owner, file_id)
        await asyncio.to_thread(data.parent.mkdir, parents=True, exist_ok=True)
        handle: BinaryIO = await asyncio.to_thread(data.open, "wb")
        return Upload(self, owner, file_id, data, handle)

    def data_path(self, owner: str, file_id: str) -> Path:
        path = self._entry(owner, file_id, ".data")
        if path is None:
            raise ValueError(f"not a file id: {file_id!r}")
        return path

    def describe(self, owner: str, stored: StoredFile) -> None:
        """Write (or rewrite) a file's description: from now on it exists, at this size."""
        path = self._entry(owner, stored.id, ".json")
        assert path is not None
        path.parent.mkdir(parents=True, exist_ok=True)
        staged = path.with_suffix(".json.tmp")
        staged.write_bytes(orjson.dumps(asdict(stored)))
        os.replace(staged, path)

    # -- reading ------------------------------------------------------------------------

    def get(self, owner: str, file_id: str) -> StoredFile | None:
        path = self._entry(owner, file_id, ".json")
        if path is None:
            return None
        try:
            return StoredFile(**orjson.loads(path.read_bytes()))
        except (FileNotFoundError, orjson.JSONDecodeError, TypeError):
            return None

    def list(
        self,
        owner: str,
        purpose: str | None = None,
        after: str | None = None,
        limit: int = 10000,
        newest_first: bool = True,
    ) -> tuple[list[StoredFile], bool]:
        """The owner's files in creation order (newest first by default), from the one after
        `after`; and whether more follow."""
        try:
            names = [
                p
                for p in self.folder(owner).iterdir()
                if p.suffix == ".json" and _FILE_ID.match(p.stem)
            ]
        except FileNotFoundError:
            return [], False
        found = [f for f in (self.get(owner, p.stem) for p in names) if f is not None]
        if purpose is not None:
            found = [f for f in found if f.purpose == purpose]
        found.sort(key=lambda f: (f.created_at, f.id), reverse=newest_first)
        if after is not None:
            ids = [f.id for f in found]
            found = found[ids.index(after) + 1 :] if after in ids else []
        return found[:limit], len(found) > limit

    def used(self, owner: str) -> int:
        """The bytes the owner's files hold (those described: an upload under way is not yet
        a file, nor counted)."""
        return sum(f.bytes for f in self.list(owner)[0])

    def delete(self, owner: str, file_id: str) -> bool:
        described = self._entry(owner, file_id, ".json")
        if described is None or not described.exists():
            return False
        described.unlink(missing_ok=True)  # first: without it the file no longer exists
        self.data_path(owner, file_id).unlink(missing_ok=True)
        return True


class Upload:
    """A file being written: its bytes on disk, not yet described (so not yet a file).
    `keep` makes it one; `discard` leaves nothing behind (also safe while the call is being
    cancelled: it does not wait)."""

    __slots__ = ("_handle", "_path", "_store", "id", "owner", "size")

    def __init__(
        self, store: FileStore, owner: str, file_id: str, path: Path, handle: BinaryIO
    ) -> None:
        self._store = store
        self._path = path
        self._handle: BinaryIO | None = handle
        self.owner = owner
        self.id = file_id
        self.size = 0

    async def write(self, data: bytes) -> None:
        handle = self._handle
        assert handle is not None, "written after keep or discard"
        self.size += len(data)
        await asyncio.to_thread(handle.write, data)

    async def keep(self, filename: str, purpose: str) -> StoredFile:
        handle = self._handle
        assert handle is not None, "kept after keep or discard"
        await asyncio.to_thread(handle.close)
        self._handle = None
        stored = StoredFile(self.id, filename, purpose, self.size, int(time.time()))
        try:
            await asyncio.to_thread(self._store.describe, self.owner, stored)
        except BaseException:
            self._path.unlink(missing_ok=True)
            raise
        return stored

    def discard(self) -> None:
        handle = self._handle
        if handle is None:
            return
        self._handle = None
        handle.close()
        self._path.unlink(missing_ok=True)
