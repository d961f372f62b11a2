"""OpenAI's Files API, served by the gateway itself for every provider: uploads kept in the
node's state folder (batches/files.py), listed, read back and deleted by their owner.

- `POST /v1/files`: a multipart form (`file`, `purpose`; `expires_after[...]` is read and
  ignored). The upload is parsed as it arrives (llm/form_stream.py) and its file written to
  disk piece by piece, never held whole; the route streams forms up to `max_upload_bytes`. A
  form refused part-way (a bad purpose before the file, a second file, a malformed form), or a
  client that breaks off, leaves nothing behind: a file exists once its description is
  written, after all of its bytes.
- `GET /v1/files` (`purpose`, `limit`, `after`, `order`), `GET /v1/files/{id}`,
  `GET /v1/files/{id}/content` (read from disk in pieces, with backpressure),
  `DELETE /v1/files/{id}`.

A file is its owner's: the caller's app, else its key (batches/files.py `owner_of`); another
owner's id is not found (404, as OpenAI words it). The calls pass key auth and the request
phase; there is no model, so no body phase; each is recorded (api "openai.files") once
answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import IO, Any
from urllib.parse import parse_qs

import orjson

from tollway.batches.files import FileStore, StoredFile, Upload, owner_of
from tollway.errors import GatewayError
from tollway.llm.files_api import OPENAI_FILES, PURPOSES
from tollway.llm.form_stream import FormStream, MultipartError, PartHead
from tollway.llm.multipart import boundary_of
from tollway.policies.context import RequestContext
from tollway.proxy.connection import HttpConnection
from tollway.proxy.http import ClientGone
from tollway.proxy.replies import finish, refuse
from tollway.proxy.request_body import BodyError, StreamedRequest, body_of

_PREFIX = "/v1/files"
# A file's contents go to the client this much at a time.
READ_SIZE = 256 * 1024
# The form's text fields together (purpose, expires_after): short.
_MAX_FIELDS = 64 * 1024
_MAX_LIMIT = 10000


def _invalid(message: str, param: str | None, code: str = "invalid_value") -> GatewayError:
    return GatewayError(400, message, param=param, code=code)


class FilesApi:
    """The Files API's handler; `store` None when the gateway keeps no state (a router built
    without a node, in tests and benchmarks): every call is then a 501."""

    __slots__ = ("store",)

    def __init__(self, store: FileStore | None) -> None:
        self.store = store

    def handle(self, ctx: RequestContext, conn: HttpConnection) -> Awaitable[None] | None:
        request = ctx.request
        store = self.store
        if store is None:
            _drop_upload(ctx)
            refuse(
                ctx,
                conn,
                GatewayError(
                    501,
                    "The Files API needs the gateway's state folder, which this gateway "
                    "does not have.",
                    code="files_unavailable",
                    type="server_error",
                ),
            )
            return None
        owner = owner_of(ctx.key)
        method = request.method
        rest = request.path[len(_PREFIX) :]
        if not rest:
            if method == "POST":
                return self._create(ctx, conn, store, owner)
            return self._list(ctx, conn, store, owner)
        file_id, _, tail = rest[1:].partition("/")
        if tail == "content" and method in ("GET", "HEAD"):
            return self._content(ctx, conn, store, owner, file_id)
        if tail or not file_id:
            refuse(
                ctx,
                conn,
                GatewayError(404, f"Invalid URL ({method} {request.path})", code="unknown_url"),
            )
            return None
        if method == "DELETE":
            return self._delete(ctx, conn, store, owner, file_id)
        return self._retrieve(ctx, conn, store, owner, file_id)

    # -- POST /v1/files ---------------------------------------------------------------------

    async def _create(
        self, ctx: RequestContext, conn: HttpConnection, store: FileStore, owner: str
    ) -> None:
        boundary = boundary_of(ctx.request.header(b"content-type"))
        if boundary is None:
            _drop_upload(ctx)
            refuse(
                ctx,
                conn,
                _invalid(
                    "POST /v1/files takes a multipart/form-data body (Content-Type with a "
                    "boundary) with the fields 'file' and 'purpose'.",
                    "file",
                    "invalid_content_type",
                ),
            )
            return
        room = ctx.config.limits.max_files_bytes - await asyncio.to_thread(store.used, owner)
        form = _Form(store, owner, boundary, room)
        try:
            stored = await form.read(ctx)
        except BodyError as exc:
            form.discard()
            refuse(ctx, conn, GatewayError(exc.status, exc.message, code="invalid_body"))
            return
        except ClientGone:
            form.discard()
            finish(ctx, "client_disconnect")
            return
        except GatewayError as error:
            form.discard()
            _drop_upload(ctx)
            refuse(ctx, conn, error)
            return
        except BaseException:
            form.discard()
            finish(ctx, "client_disconnect")
            raise
        _answer(ctx, conn, stored.as_openai())

    # -- GET /v1/files ----------------------------------------------------------------------

    async def _list(
        self, ctx: RequestContext, conn: HttpConnection, store: FileStore, owner: str
    ) -> None:
        try:
            purpose, after, limit, newest_first = _list_query(ctx.request.query)
        except GatewayError as error:
            refuse(ctx, conn, error)
            return
        found, more = await asyncio.to_thread(
            store.list, owner, purpose, after, limit, newest_first
        )
        data = [f.as_openai() for f in found]
        _answer(
            ctx,
            conn,
            {
                "object": "list",
                "data": data,
                "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None,
                "has_more": more,
            },
        )

    # -- GET and DELETE /v1/files/{id} ------------------------------------------------------

    async def _retrieve(
        self, ctx: RequestContext, conn: HttpConnection, store: FileStore, owner: str, file_id: str
    ) -> None:
        stored = await asyncio.to_thread(store.get, owner, file_id)
        if stored is None:
            refuse(ctx, conn, OPENAI_FILES.no_such_file(file_id))
            return
        _answer(ctx, conn, stored.as_openai())

    async def _delete(
        self, ctx: RequestContext, conn: HttpConnection, store: FileStore, owner: str, file_id: str
    ) -> None:
        if not await asyncio.to_thread(store.delete, owner, file_id):
            refuse(ctx, conn, OPENAI_FILES.no_such_file(file_id))
            return
        _answer(ctx, conn, {"id": file_id, "object": "file", "deleted": True})

    # -- GET /v1/files/{id}/content ---------------------------------------------------------

    async def _content(
        self, ctx: RequestContext, conn: HttpConnection, store: FileStore, owner: str, file_id: str
    ) -> None:
        opened = await asyncio.to_thread(_open_data, store, owner, file_id)
        if opened is None:
            refuse(ctx, conn, OPENAI_FILES.no_such_file(file_id))
            return
        stored, handle = opened
        headers = [
            (b"content-type", _content_type(stored)),
            (b"content-disposition", _disposition(stored.filename)),
        ]
        ctx.status = 200
        try:
            if ctx.request.method == "HEAD":
                conn.send(200, headers)
            else:
                conn.start_stream(200, headers)
                while True:
                    data = await asyncio.to_thread(handle.read, READ_SIZE)
                    if not data:
                        break
                    conn.write_chunk(data)
                    await conn.drain()
                conn.end_stream()
            ctx.outcome = "completed"
        except ClientGone:
            ctx.outcome = "client_disconnect"
        finally:
            handle.close()
            finish(ctx)


_STORAGE_FULL = GatewayError(
    400,
    "This upload would take your files past their storage limit: delete files you no longer "
    "need, or ask the gateway's operator to raise server.limits.max_files_bytes.",
    param="file",
    code="storage_limit_exceeded",
)


class _Form:
    """The upload's form read as it arrives: text fields kept, the file written to disk."""

    __slots__ = (
        "_fields",
        "_owner",
        "_parser",
        "_room",
        "_store",
        "_text_size",
        "filename",
        "upload",
    )

    def __init__(self, store: FileStore, owner: str, boundary: bytes, room: int) -> None:
        self._store = store
        self._owner = owner
        # What the owner's files may still take (server.limits.max_files_bytes).
        self._room = room
        self._parser = FormStream(boundary)
        self._fields: dict[str, str] = {}
        self._text_size = 0
        self.upload: Upload | None = None
        self.filename = "file"

    async def read(self, ctx: RequestContext) -> StoredFile:
        source = body_of(ctx.request)
        current: PartHead | None = None
        text: list[bytes] = []
        is_file = False
        while True:
            data = await source.next()
            if data is None:
                break
            try:
                events = self._parser.feed(data)
            except MultipartError as exc:
                raise _unreadable(exc) from None
            for event in events:
                if isinstance(event, PartHead):
                    current, text = event, []
                    is_file = event.name == "file"
                    if is_file:
                        await self._begin_file(event)
                elif event is None:
                    assert current is not None
                    if not is_file:
                        self._field(current.name, b"".join(text))
                    current = None
                elif is_file:
                    assert self.upload is not None
                    if self.upload.size + len(event) > self._room:
                        raise _STORAGE_FULL
                    await self.upload.write(event)
                else:
                    self._text_size += len(event)
                    if self._text_size > _MAX_FIELDS:
                        raise _invalid("The form's text fields are too long.", None)
                    text.append(event)
        try:
            self._parser.close()
        except MultipartError as exc:
            raise _unreadable(exc) from None
        upload = self.upload
        if upload is None:
            raise _invalid("'file' is a required field (the file to upload).", "file", "missing")
        purpose = self._fields.get("purpose")
        if purpose is None:
            raise _invalid(
                f"'purpose' is a required field: one of {', '.join(PURPOSES)}.",
                "purpose",
                "missing",
            )
        return await upload.keep(self.filename, purpose)

    async def _begin_file(self, head: PartHead) -> None:
        if self.upload is not None:
            raise _invalid("Only one file may be uploaded at a time.", "file")
        self.filename = head.filename or "file"
        self.upload = await self._store.open_upload(self._owner)

    def _field(self, name: str, value: bytes) -> None:
        try:
            text = value.decode("utf-8")
        except UnicodeDecodeError:
            raise _invalid(f"The field '{name}' is not UTF-8 text.", name) from None
        if name == "purpose" and text not in PURPOSES:
            # Refused as soon as it is read: a file after it is not written.
            raise _invalid(
                f"Invalid value for 'purpose': '{text}'. It must be one of {', '.join(PURPOSES)}.",
                "purpose",
            )
        # expires_after[anchor] and expires_after[seconds] are accepted and not applied.
        self._fields.setdefault(name, text)

    def discard(self) -> None:
        if self.upload is not None:
            self.upload.discard()


def _unreadable(exc: MultipartError) -> GatewayError:
    return _invalid(f"The multipart body could not be read: {exc}.", "file", "invalid_multipart")


def _drop_upload(ctx: RequestContext) -> None:
    """An answer before the upload is read: the rest of it is read and dropped."""
    request = ctx.request
    if isinstance(request, StreamedRequest):
        request.upload.abandon()


def _answer(ctx: RequestContext, conn: HttpConnection, body: dict[str, Any]) -> None:
    ctx.status = 200
    ctx.outcome = "completed"
    conn.send_json(200, orjson.dumps(body))
    finish(ctx)


def _list_query(query: bytes) -> tuple[str | None, str | None, int, bool]:
    """(purpose, after, limit, newest first) from the list's query string."""
    params = parse_qs(query.decode("latin-1"), keep_blank_values=True)

    def one(name: str) -> str | None:
        values = params.get(name)
        return values[-1] if values else None

    limit_text = one("limit")
    limit = _MAX_LIMIT
    if limit_text is not None:
        try:
            limit = int(limit_text)
        except ValueError:
            limit = 0
        if not 1 <= limit <= _MAX_LIMIT:
            raise _invalid(f"'limit' must be an integer from 1 to {_MAX_LIMIT}.", "limit")
    order = one("order") or "desc"
    if order not in ("asc", "desc"):
        raise _invalid("'order' must be 'asc' or 'desc'.", "order")
    return one("purpose") or None, one("after") or None, limit, order == "desc"


def _open_data(store: FileStore, owner: str, file_id: str) -> tuple[StoredFile, IO[bytes]] | None:
    """The file and its data opened for reading (in a worker thread); None when not found."""
    stored = store.get(owner, file_id)
    if stored is None:
        return None
    try:
        return stored, store.data_path(owner, file_id).open("rb")
    except (FileNotFoundError, ValueError):
        return None


def _content_type(stored: StoredFile) -> bytes:
    if stored.filename.lower().endswith(".jsonl"):
        return b"application/jsonl"
    return b"application/octet-stream"


def _disposition(filename: str) -> bytes:
    safe = "".join(
        c if c.isascii() and c.isprintable() and c not in '"\\' else "_" for c in filename
    )
    return b'attachment; filename="%s"' % safe.encode("ascii")
