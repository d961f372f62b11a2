"""Batches run by the gateway: their state on disk, their input read and checked, their output
and error files written line by line, and what a batch that was interrupted has left to do.

A batch is `<id>.json` in its owner's folder (beside the owner's files, see files.py),
rewritten by rename at each change of state. Its lines' results are appended to its output
and error files as they come; these files are described (exist for the Files API) once the
batch has ended. Progress is the files themselves: a runner that starts again (after a
restart, or in another worker when the first one died) reads which `custom_id`s they already
hold, drops a last line cut short, and runs only the others. So every line is answered once
in the output, whatever stops the gateway meanwhile; a line whose call was under way when
the gateway stopped is called again (its answer had not been written).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import orjson

from tollway.batches.files import FileStore, StoredFile, new_id

ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses")
# OpenAI's own bound on a batch's input file.
MAX_INPUT_BYTES = 200 * 1024 * 1024
# States in which a batch still has work for a runner.
ACTIVE = ("validating", "in_progress", "finalizing", "cancelling")
WINDOW_S = 24 * 3600
MAX_LINES = 50_000


@dataclass(frozen=True, slots=True)
class Batch:
    id: str
    owner: str
    endpoint: str
    input_file_id: str
    output_file_id: str
    error_file_id: str
    created_at: int
    # Who made it: the digest of its key (its lines run as that key), and from where.
    key_digest: str
    client_address: str
    status: str = "validating"
    completion_window: str = "24h"
    metadata: dict[str, str] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    total: int = 0
    completed: int = 0
    failed: int = 0
    in_progress_at: int | None = None
    finalizing_at: int | None = None
    completed_at: int | None = None
    failed_at: int | None = None
    cancelling_at: int | None = None
    cancelled_at: int | None = None
    expires_at: int | None = None
    # Set once the output and error files exist (described), at the end.
    has_output: bool = False
    has_errors: bool = False
    expired_at: int | None = None
    # A batch passed through to a provider's own Batch API (batches/passthrough.py): the
    # provider's name, and what it has done so far, saved after each step so that a restart
    # takes it up where it was (None: the gateway runs the batch itself).
    upstream: Upstream | None = None

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": self.completion_window,
            "status": self.status,
            "output_file_id": self.output_file_id if self.has_output else None,
            "error_file_id": self.error_file_id if self.has_errors else None,
            "created_at": self.created_at,
            "in_progress_at": self.in_progress_at,
            "expires_at": self.expires_at,
            "finalizing_at": self.finalizing_at,
            "completed_at": self.completed_at,
            "failed_at": self.failed_at,
            "expired_at": self.expired_at,
            "cancelling_at": self.cancelling_at,
            "cancelled_at": self.cancelled_at,
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }


@dataclass(frozen=True, slots=True)
class Upstream:
    """A passed-through batch at its provider. `step` is the last step begun: "upload" (the
    input file going up), "create" (the provider's batch being made), "poll" (it runs),
    "download" (its output and error files coming back), "meter" (their lines recorded),
    "done". A step begun and not ended is looked for at the provider before it is done again
    (passthrough.py), so no step happens twice."""

    provider: str
    step: str = "upload"
    file_id: str | None = None
    batch_id: str | None = None
    # The provider's batch as last seen: its status and its files.
    status: str | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    # When the provider's batch ended (its completed_at, failed_at, expired_at or
    # cancelled_at), and the errors of one that failed.
    ended_at: int | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    # Saved at upload, so that metering (up to a day later) needs nothing of the
    # configuration as it is then: per model the client asked for, the deployment that serves
    # it (`label`, upstream `model`, `provider`, provider `kind`, its prices `info`), and who
    # made the batch (`name`, `key_id`, `app`). Batches saved before these existed have none
    # (metering then resolves them from the configuration). The uploaded file's created_at
    # bounds the search for an earlier attempt's provider batch.
    models: dict[str, dict[str, Any]] = field(default_factory=dict)
    key: dict[str, Any] | None = None
    file_created_at: int | None = None
    # Metering's progress: results recorded so far (output file, then error file), and of
    # them, answered 2xx or not (the batch's final counts).
    metered: int = 0
    completed: int = 0
    failed: int = 0


@dataclass(frozen=True, slots=True)
class Line:
    """One request of a batch's input."""

    number: int
    custom_id: str
    body: bytes


class BatchStore:
    """Batches on disk, beside their owners' files."""

    def __init__(self, files: FileStore) -> None:
        self.files = files
        # A running batch's lines are written from several threads: one write at a time, so
        # that no count and no rename is lost (one worker runs a batch: a process lock is
        # enough).
        self._writing = threading.RLock()

    def _path(self, owner: str, batch_id: str) -> Path:
        return self.files.folder(owner) / f"{batch_id}.batch.json"

    def _cancel_marker(self, owner: str, batch_id: str) -> Path:
        return self.files.folder(owner) / f"{batch_id}.cancel"

    def _active_entry(self, batch_id: str) -> Path:
        # An index of the batches with work left, so that runners need not read them all.
        return self.files.root / "_active" / batch_id

    def create(
        self,
        owner: str,
        endpoint: str,
        input_file_id: str,
        key_digest: str,
        client_address: str,
        metadata: dict[str, str] | None,
        provider: str | None = None,
    ) -> Batch:
        now = int(time.time())
        batch = Batch(
            id=new_id("batch_"),
            owner=owner,
            endpoint=endpoint,
            input_file_id=input_file_id,
            output_file_id=new_id("file-"),
            error_file_id=new_id("file-"),
            created_at=now,
            key_digest=key_digest,
            client_address=client_address,
            metadata=metadata,
            expires_at=now + WINDOW_S,
            upstream=Upstream(provider) if provider is not None else None,
        )
        self.save(batch)
        entry = self._active_entry(batch.id)
        entry.parent.mkdir(parents=True, exist_ok=True)
        entry.write_text(owner)
        return batch

    def request_cancel(self, batch: Batch) -> Batch:
        """The API's cancel: a marker beside the batch, which only its runner's writes ever
        follow (so neither a cancel nor a count is lost between two workers)."""
        self._cancel_marker(batch.owner, batch.id).touch()
        return self.get(batch.owner, batch.id) or batch

    def save(self, batch: Batch) -> None:
        path = self._path(batch.owner, batch.id)
        with self._writing:
            path.parent.mkdir(parents=True, exist_ok=True)
            staged = path.with_suffix(f".{os.getpid()}.tmp")
            staged.write_bytes(orjson.dumps(asdict(batch)))
            os.replace(staged, path)

    def get(self, owner: str, batch_id: str) -> Batch | None:
        if not batch_id.startswith("batch_") or "/" in batch_id or len(batch_id) > 64:
            return None
        try:
            saved = orjson.loads(self._path(owner, batch_id).read_bytes())
            upstream = saved.pop("upstream", None)
            batch = Batch(**saved, upstream=Upstream(**upstream) if upstream else None)
        except (FileNotFoundError, orjson.JSONDecodeError, TypeError):
            return None
        if batch.status in ("validating", "in_progress"):
            marker = self._cancel_marker(owner, batch_id)
            try:
                asked = int(marker.stat().st_mtime)
            except FileNotFoundError:
                return batch
            return replace(batch, status="cancelling", cancelling_at=asked)
        return batch

    def of_owner(self, owner: str) -> list[Batch]:
        try:
            paths = list(self.files.folder(owner).glob("batch_*.batch.json"))
        except FileNotFoundError:
            return []
        found = [self.get(owner, p.name.removesuffix(".batch.json")) for p in paths]
        return sorted((b for b in found if b is not None), key=lambda b: b.created_at)

    def active(self) -> list[Batch]:
        """Every owner's batches with work left, oldest first."""
        found = []
        try:
            entries = list((self.files.root / "_active").iterdir())
        except FileNotFoundError:
            return []
        for entry in entries:
            try:
                batch = self.get(entry.read_text(), entry.name)
            except (FileNotFoundError, ValueError):
                continue
            if batch is not None and batch.status in ACTIVE:
                found.append(batch)
            elif batch is None or batch.status not in ACTIVE:
                entry.unlink(missing_ok=True)
        return sorted(found, key=lambda b: b.created_at)

    def update(self, batch: Batch, **changes: Any) -> Batch:
        """The runner's change to its batch (the one writer of a batch once it runs), over
        the batch as it is on disk (a cancel may have come). A batch that ends leaves the
        index of active ones."""
        with self._writing:
            current = self.get(batch.owner, batch.id) or batch
            if current.status == "cancelling" and changes.get("status") == "in_progress":
                changes.pop("status")
            fresh = replace(current, **changes)
            self.save(fresh)
        if fresh.status not in ACTIVE:
            self._active_entry(fresh.id).unlink(missing_ok=True)
            self._cancel_marker(fresh.owner, fresh.id).unlink(missing_ok=True)
        return fresh

    # -- input ----------------------------------------------------------------------------

    def read_input(self, batch: Batch) -> tuple[list[Line], list[dict[str, Any]]]:
        """The batch's lines, or the problems that fail it (OpenAI's batch error objects)."""
        return self.read_lines(batch.owner, batch.input_file_id, batch.endpoint)

    def read_lines(
        self, owner: str, file_id: str, endpoint: str
    ) -> tuple[list[Line], list[dict[str, Any]]]:
        """The lines of an input file for a batch of `endpoint`, or its problems."""
        stored = self.files.get(owner, file_id)
        if stored is None:
            return [], [_problem("missing_file", f"The input file {file_id} is gone.")]
        if stored.bytes > MAX_INPUT_BYTES:
            return [], [_problem("file_too_large", f"At most {MAX_INPUT_BYTES} bytes of input.")]
        lines: list[Line] = []
        problems: list[dict[str, Any]] = []
        seen: set[str] = set()
        # Read a line at a time: the file's bytes are never held beside its lines.
        with self.files.data_path(owner, file_id).open("rb") as handle:
            for number, raw in enumerate(handle, start=1):
                if not raw.strip():
                    continue
                problem = _read_line(raw, number, endpoint, seen, lines)
                if problem is not None:
                    problems.append(problem)
                if len(lines) > MAX_LINES:
                    return [], [_problem("too_many_requests", f"At most {MAX_LINES} requests.")]
        if not lines and not problems:
            problems.append(_problem("empty_file", "The input file has no requests."))
        return lines, problems

    # -- output ---------------------------------------------------------------------------

    def answered(self, batch: Batch) -> tuple[set[str], set[str]]:
        """The custom_ids already in the output file and in the error file (a last line cut
        short by a stop is dropped from its file first)."""
        found: list[set[str]] = []
        for file_id in (batch.output_file_id, batch.error_file_id):
            done: set[str] = set()
            found.append(done)
            path = self.files.data_path(batch.owner, file_id)
            try:
                data = path.read_bytes()
            except FileNotFoundError:
                continue
            end = data.rfind(b"\n") + 1
            if end < len(data):
                with path.open("r+b") as handle:
                    handle.truncate(end)
                data = data[:end]
            for raw in data.splitlines():
                try:
                    done.add(orjson.loads(raw)["custom_id"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue
        return found[0], found[1]

    def record(self, batch: Batch, line: Line, status: int, body: bytes, request_id: str) -> None:
        """A line's answer in its file, and the batch's count of it, as one step."""
        with self._writing:
            ok = self.append(batch, line, status, body, request_id)
            current = self.get(batch.owner, batch.id) or batch
            if ok:
                self.update(current, completed=current.completed + 1)
            else:
                self.update(current, failed=current.failed + 1)

    def append(self, batch: Batch, line: Line, status: int, body: bytes, request_id: str) -> bool:
        """Write a line's answer to the output file (2xx) or the error file; True if it
        succeeded."""
        ok = 200 <= status < 300
        try:
            parsed: Any = orjson.loads(body)
        except orjson.JSONDecodeError:
            parsed = body.decode("utf-8", "replace")
        record = {
            "id": new_id("batch_req_"),
            "custom_id": line.custom_id,
            "response": {"status_code": status, "request_id": request_id, "body": parsed},
            "error": None,
        }
        if not ok and status == 0:
            record["response"] = None
            record["error"] = {"code": "batch_line_failed", "message": str(parsed)}
        file_id = batch.output_file_id if ok else batch.error_file_id
        path = self.files.data_path(batch.owner, file_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # One write of a whole line with O_APPEND: a stop leaves whole lines, or a last one
        # cut short, which `answered` drops.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, orjson.dumps(record) + b"\n")
        finally:
            os.close(fd)
        return ok

    def publish(self, batch: Batch) -> tuple[bool, bool]:
        """Describe the output and error files (they exist from now on); whether each has
        lines."""
        present = []
        for file_id, name in (
            (batch.output_file_id, "batch_output.jsonl"),
            (batch.error_file_id, "batch_errors.jsonl"),
        ):
            path = self.files.data_path(batch.owner, file_id)
            size = path.stat().st_size if path.exists() else 0
            if size:
                self.files.describe(
                    batch.owner,
                    StoredFile(
                        file_id, f"{batch.id}_{name}", "batch_output", size, int(time.time())
                    ),
                )
            present.append(bool(size))
        return present[0], present[1]


def _problem(
    code: str, message: str, line: int | None = None, param: str | None = None
) -> dict[str, Any]:
    return {"code": code, "message": message, "param": param, "line": line}


def _read_line(
    raw: bytes, number: int, endpoint: str, seen: set[str], lines: list[Line]
) -> dict[str, Any] | None:
    """One input line added to `lines`, or its problem."""
    try:
        request = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return _problem("invalid_json_line", "This line is not JSON.", number)
    problem = _line_problem(request, endpoint, seen)
    if problem is not None:
        return _problem(problem[0], problem[1], number, problem[2])
    seen.add(request["custom_id"])
    lines.append(Line(number, request["custom_id"], orjson.dumps(request["body"])))
    return None


def _line_problem(
    request: Any, endpoint: str, seen: set[str]
) -> tuple[str, str, str | None] | None:
    if not isinstance(request, dict):
        return "invalid_request", "Each line must be a JSON object.", None
    custom_id = request.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "missing_required_parameter", "Each line needs a custom_id.", "custom_id"
    if custom_id in seen:
        return "duplicate_custom_id", f"The custom_id {custom_id!r} is used twice.", "custom_id"
    if request.get("method") != "POST":
        return "invalid_method", "The method must be POST.", "method"
    if request.get("url") != endpoint:
        return "invalid_url", f"The url must be the batch's endpoint, {endpoint}.", "url"
    body = request.get("body")
    if not isinstance(body, dict):
        return "invalid_body", "Each line needs a JSON object body.", "body"
    if body.get("stream"):
        return "invalid_body", "A batch's requests cannot stream.", "body.stream"
    return None
