"""OpenAI's Files and Batches APIs, as the mock provider serves them (kept in memory).

- `POST /v1/files` (multipart: `file`, `purpose`), `GET /v1/files` (`purpose`, `limit`,
  `order`, `after`), `GET /v1/files/{id}`, `GET /v1/files/{id}/content`,
  `DELETE /v1/files/{id}`.
- `POST /v1/batches` (`input_file_id` of a `batch` file, `endpoint` one of chat completions,
  completions or embeddings, `completion_window: 24h`, `metadata`), `GET /v1/batches/{id}`,
  `GET /v1/batches` (`limit`, `after`; newest first), `POST /v1/batches/{id}/cancel`.

A batch moves validating -> in_progress -> finalizing -> completed on its own, answering each
line with the mock's usual chat, completion or embeddings answer (a line's model may carry the
mock's fault settings after `~`: `status=400` puts it in the error file, `latency_ms=50` is the
time it takes). Its output and error files are files of this API (`batch_output`), in
OpenAI's batch format.

The batch's metadata steers the batch as a whole, for tests: `mock_step_ms` (default 50) is the
time each status lasts; `mock_end: failed` fails it after validation (with `errors`, no files);
`mock_end: expired` answers its first half and expires it, the rest in the error file as
`batch_expired`. A line that is not JSON fails the batch at validation, naming the line.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

import orjson

from tollway.llm import multipart
from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import Request
from tollway.testing import mock_openai as wire
from tollway.testing import mock_openai_chat as chat
from tollway.testing.mock_faults import FaultSpec, FaultSpecError, split_model
from tollway.testing.mock_reply import plan

_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_ENDPOINTS = ("/v1/chat/completions", "/v1/completions", "/v1/embeddings")
_ENDED = ("completed", "failed", "expired", "cancelled")


@dataclass(slots=True)
class MockFile:
    id: str
    filename: str
    purpose: str
    data: bytes
    created_at: int

    def as_openai(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "file",
            "bytes": len(self.data),
            "created_at": self.created_at,
            "expires_at": None,
            "filename": self.filename,
            "purpose": self.purpose,
            "status": "processed",
            "status_details": None,
        }


@dataclass(slots=True)
class MockBatch:
    id: str
    endpoint: str
    input_file_id: str
    metadata: dict[str, str] | None
    created_at: int
    status: str = "validating"
    errors: list[dict[str, Any]] | None = None
    output_file_id: str | None = None
    error_file_id: str | None = None
    times: dict[str, int] = field(default_factory=dict)
    total: int = 0
    completed: int = 0
    failed: int = 0

    def as_openai(self) -> dict[str, Any]:
        stamp = self.times.get
        return {
            "id": self.id,
            "object": "batch",
            "endpoint": self.endpoint,
            "errors": {"object": "list", "data": self.errors} if self.errors else None,
            "input_file_id": self.input_file_id,
            "completion_window": "24h",
            "status": self.status,
            "output_file_id": self.output_file_id,
            "error_file_id": self.error_file_id,
            "created_at": self.created_at,
            "in_progress_at": stamp("in_progress_at"),
            "expires_at": self.created_at + 24 * 3600,
            "finalizing_at": stamp("finalizing_at"),
            "completed_at": stamp("completed_at"),
            "failed_at": stamp("failed_at"),
            "expired_at": stamp("expired_at"),
            "cancelling_at": stamp("cancelling_at"),
            "cancelled_at": stamp("cancelled_at"),
            "request_counts": {
                "total": self.total,
                "completed": self.completed,
                "failed": self.failed,
            },
            "metadata": self.metadata,
        }


class MockBatches:
    """The mock's Files and Batches APIs."""

    def __init__(self, defaults: FaultSpec) -> None:
        self.defaults = defaults
        self.files: dict[str, MockFile] = {}
        self.batches: dict[str, MockBatch] = {}
        # Files deleted by DELETE /v1/files/{id}, kept for `/_mock/deleted_files`.
        self.deleted: dict[str, MockFile] = {}
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()

    @staticmethod
    def serves(path: str) -> bool:
        """`path` without its /v1."""
        return path in ("/files", "/batches") or path.startswith(("/files/", "/batches/"))

    def _id(self, prefix: str) -> str:
        return f"{prefix}mock{next(self._ids):06d}"

    def handle(self, request: Request, conn: HttpConnection, path: str) -> None:
        method = request.method
        query = parse_qs(request.query.decode("latin-1"))
        head, _, rest = path[1:].partition("/")
        item, _, action = rest.partition("/")
        if head == "files":
            if not item:
                if method == "POST":
                    return self._upload(request, conn)
                return _send(conn, 200, self._list_files(query))
            found = self.files.get(item)
            if found is None:
                return _send(conn, 404, _error(f"No such File object: {item}", "id"))
            if action == "content" and method == "GET":
                conn.send(200, [(b"content-type", b"application/octet-stream")], found.data)
                return None
            if not action and method == "DELETE":
                self.deleted[item] = self.files.pop(item)
                return _send(conn, 200, {"id": item, "object": "file", "deleted": True})
            if not action and method == "GET":
                return _send(conn, 200, found.as_openai())
        else:
            if not item:
                if method == "POST":
                    return self._create(request, conn)
                return _send(conn, 200, self._list_batches(query))
            batch = self.batches.get(item)
            if batch is None:
                return _send(conn, 404, _error(f"No batch found with id '{item}'.", "batch_id"))
            if action == "cancel" and method == "POST":
                return self._cancel(conn, batch)
            if not action and method == "GET":
                return _send(conn, 200, batch.as_openai())
        return _send(conn, 404, _error(f"Invalid URL ({method} {request.path})", None))

    def deleted_files(self) -> list[dict[str, Any]]:
        """The files deleted so far: each as the Files API described it, and its content."""
        return [
            {**f.as_openai(), "content": f.data.decode("utf-8", "replace")}
            for f in self.deleted.values()
        ]

    # -- files ---------------------------------------------------------------------------

    def _upload(self, request: Request, conn: HttpConnection) -> None:
        boundary = multipart.boundary_of(request.header(b"content-type"))
        if boundary is None:
            return _send(conn, 400, _error("Expected a multipart/form-data body.", "file"))
        try:
            found = multipart.parts(request.body, boundary)
            purpose = multipart.field(request.body, found, "purpose")
        except multipart.MultipartError as exc:
            return _send(conn, 400, _error(f"Could not parse multipart form: {exc}.", "file"))
        files = [p for p in found if p.name == "file" and p.filename is not None]
        if len(files) != 1:
            return _send(conn, 400, _error("'file' is a required field.", "file"))
        if purpose not in _PURPOSES:
            return _send(conn, 400, _error(f"Invalid value for 'purpose': {purpose}.", "purpose"))
        part = files[0]
        stored = MockFile(
            self._id("file-"),
            part.filename or "file",
            purpose,
            request.body[part.start : part.end],
            int(time.time()),
        )
        self.files[stored.id] = stored
        return _send(conn, 200, stored.as_openai())

    def _list_files(self, query: dict[str, list[str]]) -> dict[str, Any]:
        purpose = query.get("purpose", [None])[0]
        found = [f for f in self.files.values() if purpose is None or f.purpose == purpose]
        if query.get("order", ["desc"])[0] == "desc":
            found.reverse()  # kept in creation order
        return _page([f.as_openai() for f in found], query, 10000)

    # -- batches -------------------------------------------------------------------------

    def _create(self, request: Request, conn: HttpConnection) -> None:
        try:
            asked = orjson.loads(request.body)
        except orjson.JSONDecodeError:
            return _send(conn, 400, _error("We could not parse the JSON body.", None))
        if not isinstance(asked, dict):
            return _send(conn, 400, _error("The body must be a JSON object.", None))
        if asked.get("endpoint") not in _ENDPOINTS:
            return _send(conn, 400, _error("Invalid 'endpoint'.", "endpoint"))
        if asked.get("completion_window") != "24h":
            return _send(conn, 400, _error("Invalid 'completion_window'.", "completion_window"))
        source = self.files.get(str(asked.get("input_file_id")))
        if source is None or source.purpose != "batch":
            return _send(conn, 400, _error("Invalid 'input_file_id'.", "input_file_id"))
        metadata = asked.get("metadata")
        batch = MockBatch(
            self._id("batch_"),
            asked["endpoint"],
            source.id,
            metadata if isinstance(metadata, dict) else None,
            int(time.time()),
        )
        self.batches[batch.id] = batch
        task = asyncio.get_running_loop().create_task(self._run(batch, source.data))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return _send(conn, 200, batch.as_openai())

    def _list_batches(self, query: dict[str, list[str]]) -> dict[str, Any]:
        found = [b.as_openai() for b in reversed(self.batches.values())]
        return _page(found, query, 100)

    def _cancel(self, conn: HttpConnection, batch: MockBatch) -> None:
        if batch.status not in ("validating", "in_progress"):
            message = f"Cannot cancel a batch with status '{batch.status}'."
            return _send(conn, 409, _error(message, None))
        batch.status = "cancelling"
        batch.times["cancelling_at"] = int(time.time())
        return _send(conn, 200, batch.as_openai())

    async def _run(self, batch: MockBatch, data: bytes) -> None:
        meta = batch.metadata or {}
        step_s = float(meta.get("mock_step_ms", "50")) / 1000
        end = meta.get("mock_end")
        await asyncio.sleep(step_s)
        lines: list[dict[str, Any]] = []
        problems = []
        for number, raw in enumerate(data.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                lines.append(orjson.loads(raw))
            except orjson.JSONDecodeError:
                problems.append(_problem("invalid_json_line", "This line is not JSON.", number))
        if end == "failed" and not problems:
            problems.append(_problem("invalid_request", "The batch failed (mock).", None))
        if problems:
            batch.status, batch.errors = "failed", problems
            batch.times["failed_at"] = int(time.time())
            return
        if batch.status == "cancelling":
            return self._end(batch, "cancelled", [], [])
        batch.status, batch.total = "in_progress", len(lines)
        batch.times["in_progress_at"] = int(time.time())
        output: list[bytes] = []
        errors: list[bytes] = []
        stop_at = len(lines) // 2 if end == "expired" else len(lines)
        for done, line in enumerate(lines):
            if batch.status == "cancelling" or done >= stop_at:
                break
            status, body, latency_s = self._answer(batch.endpoint, line.get("body"))
            await asyncio.sleep(latency_s)
            kept = _result(self._id("batch_req_"), line.get("custom_id"), status, body)
            if status == 200:
                output.append(kept)
                batch.completed += 1
            else:
                errors.append(kept)
                batch.failed += 1
        if batch.status == "cancelling":
            return self._end(batch, "cancelled", output, errors)
        if end == "expired":
            message = "This request could not be executed before the completion window expired."
            for line in lines[stop_at:]:
                errors.append(_unanswered(self._id("batch_req_"), line, "batch_expired", message))
            return self._end(batch, "expired", output, errors)
        batch.status = "finalizing"
        batch.times["finalizing_at"] = int(time.time())
        await asyncio.sleep(step_s)
        return self._end(batch, "completed", output, errors)

    def _end(self, batch: MockBatch, status: str, output: list[bytes], errors: list[bytes]) -> None:
        for lines, attribute, name in (
            (output, "output_file_id", "batch_output.jsonl"),
            (errors, "error_file_id", "batch_errors.jsonl"),
        ):
            if lines:
                made = MockFile(
                    self._id("file-"),
                    f"{batch.id}_{name}",
                    "batch_output",
                    b"".join(lines),
                    int(time.time()),
                )
                self.files[made.id] = made
                setattr(batch, attribute, made.id)
        batch.status = status
        batch.times[f"{status}_at"] = int(time.time())

    def _answer(self, endpoint: str, body: Any) -> tuple[int, dict[str, Any], float]:
        """A line's answer as the mock answers the same call: its status, its body, and
        how long it takes."""
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return 400, orjson.loads(wire.error(400, "model: Field required")), 0.0
        model, settings = split_model(body["model"])
        try:
            spec = self.defaults.merged(settings)
        except FaultSpecError as exc:
            return 400, orjson.loads(wire.error(400, str(exc))), 0.0
        latency_s = spec.latency_ms / 1000
        if spec.status is not None:
            return spec.status, orjson.loads(wire.error(spec.status)), latency_s
        created = int(time.time())
        if endpoint == "/v1/embeddings":
            result = wire.embeddings(model, body, spec.dims)
            if isinstance(result, str):
                return 400, orjson.loads(wire.error(400, result)), latency_s
            return 200, result, latency_s
        if endpoint == "/v1/completions":
            reply = plan(chat.completion_ask(body), spec, "")
            cid = self._id("cmpl-")
            return (
                200,
                orjson.loads(chat.completion_body(cid, created, model, reply, body)),
                latency_s,
            )
        problem = chat.chat_problem(body)
        if problem is not None:
            return 400, orjson.loads(wire.error(400, problem)), latency_s
        cid = self._id("chatcmpl-")
        reply = plan(chat.chat_ask(body), spec, "call_" + cid[-8:])
        return 200, orjson.loads(chat.chat_body(cid, created, model, reply, body)), latency_s


def _result(line_id: str, custom_id: Any, status: int, body: dict[str, Any]) -> bytes:
    response = {"status_code": status, "request_id": "req_" + line_id[-12:], "body": body}
    return (
        orjson.dumps({"id": line_id, "custom_id": custom_id, "response": response, "error": None})
        + b"\n"
    )


def _unanswered(line_id: str, line: dict[str, Any], code: str, message: str) -> bytes:
    error = {"code": code, "message": message}
    return (
        orjson.dumps(
            {"id": line_id, "custom_id": line.get("custom_id"), "response": None, "error": error}
        )
        + b"\n"
    )


def _page(items: list[dict[str, Any]], query: dict[str, list[str]], most: int) -> dict[str, Any]:
    after = query.get("after", [None])[0]
    if after is not None:
        ids = [i["id"] for i in items]
        items = items[ids.index(after) + 1 :] if after in ids else []
    try:
        limit = min(most, max(1, int(query.get("limit", ["20"])[0])))
    except ValueError:
        limit = 20
    page = items[:limit]
    return {
        "object": "list",
        "data": page,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
        "has_more": len(items) > limit,
    }


def _problem(code: str, message: str, line: int | None) -> dict[str, Any]:
    return {"code": code, "message": message, "param": None, "line": line}


def _error(message: str, param: str | None) -> dict[str, Any]:
    return {
        "error": {
            "message": message,
            "type": "invalid_request_error",
            "param": param,
            "code": None,
        }
    }


def _send(conn: HttpConnection, status: int, body: dict[str, Any]) -> None:
    conn.send_json(status, orjson.dumps(body))
