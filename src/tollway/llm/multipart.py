"""multipart/form-data, as far as the gateway needs it: find a form's parts without copying
their contents, read a text field (the model), and swap one field's value for another.

Uploads (an image to edit, audio to transcribe) go through as the client sent them; only the
`model` field is read, and rewritten when a deployment renames the model. A part's contents
are located by offsets into the body, never copied, so a large file costs nothing here
beyond one scan for the boundary.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 2046: a boundary is 1 to 70 characters.
_MAX_BOUNDARY = 70
# A part's headers (Content-Disposition, Content-Type) are short; anything longer is not a
# form a client library wrote.
_MAX_PART_HEAD = 8192


class MultipartError(ValueError):
    """The body is not the multipart/form-data its content type says (the message says why)."""


@dataclass(frozen=True, slots=True)
class Part:
    """One part of a form: its field name, file name and type if it is a file, and where its
    contents lie in the body (`body[start:end]`)."""

    name: str
    filename: str | None
    content_type: str | None
    start: int
    end: int


def boundary_of(content_type: bytes | None) -> bytes | None:
    """The boundary of a multipart/form-data content type; None when it is not one."""
    if content_type is None:
        return None
    kind, _, params = content_type.partition(b";")
    if kind.strip().lower() != b"multipart/form-data":
        return None
    for param in params.split(b";"):
        key, _, value = param.strip().partition(b"=")
        if key.strip().lower() == b"boundary":
            value = value.strip()
            if len(value) >= 2 and value[:1] == value[-1:] == b'"':
                value = value[1:-1]
            if 1 <= len(value) <= _MAX_BOUNDARY:
                return value
            return None
    return None


def parts(body: bytes, boundary: bytes) -> list[Part]:
    """Every part of the form, in order. Raises MultipartError for a malformed body."""
    return _scan(body, boundary, whole=True)


def leading_parts(prefix: bytes, boundary: bytes) -> list[Part]:
    """The parts that lie whole in the first bytes of a form still arriving (a part is whole
    once the next boundary is in). Raises MultipartError for a malformed prefix."""
    return _scan(prefix, boundary, whole=False)


def _scan(body: bytes, boundary: bytes, whole: bool) -> list[Part]:
    delimiter = b"--" + boundary
    at = body.find(delimiter)
    if at < 0:
        if not whole and len(body) < _MAX_PART_HEAD:
            return []
        raise MultipartError("the body holds no part (its boundary is not in it)")
    found: list[Part] = []
    while True:
        at += len(delimiter)
        if body[at : at + 2] == b"--":
            return found  # the closing delimiter
        if not whole and len(body) - at < 2:
            return found
        if body[at : at + 2] != b"\r\n":
            raise MultipartError("a boundary line is not followed by CRLF")
        head_end = body.find(b"\r\n\r\n", at + 2, at + 2 + _MAX_PART_HEAD)
        if head_end < 0:
            if not whole and len(body) - at < _MAX_PART_HEAD:
                return found
            raise MultipartError("a part's headers do not end")
        name, filename, content_type = _part_head(body[at + 2 : head_end])
        start = head_end + 4
        next_at = body.find(b"\r\n" + delimiter, start)
        if next_at < 0:
            if not whole:
                return found
            raise MultipartError("the form does not end with its closing boundary")
        found.append(Part(name, filename, content_type, start, next_at))
        at = next_at + 2


def _part_head(head: bytes) -> tuple[str, str | None, str | None]:
    name: str | None = None
    filename: str | None = None
    content_type: str | None = None
    for line in head.split(b"\r\n"):
        key, _, value = line.partition(b":")
        key = key.strip().lower()
        if key == b"content-disposition":
            kind, _, params = value.partition(b";")
            if kind.strip().lower() != b"form-data":
                raise MultipartError("a part is not form-data")
            for key_value in _params(params):
                if key_value[0] == "name":
                    name = key_value[1]
                elif key_value[0] == "filename":
                    filename = key_value[1]
        elif key == b"content-type":
            content_type = value.strip().decode("latin-1")
    if name is None:
        raise MultipartError("a part has no name")
    return name, filename, content_type


def _params(params: bytes) -> list[tuple[str, str]]:
    """`; name="model"; filename="a.png"`: quoted values may hold ';' (a file name)."""
    out: list[tuple[str, str]] = []
    text = params.decode("utf-8", "replace")
    i = 0
    while i < len(text):
        while i < len(text) and text[i] in " ;\t":
            i += 1
        eq = text.find("=", i)
        if eq < 0:
            break
        key = text[i:eq].strip().lower()
        i = eq + 1
        if i < len(text) and text[i] == '"':
            j = i + 1
            value = []
            while j < len(text) and text[j] != '"':
                if text[j] == "\\" and j + 1 < len(text):
                    j += 1
                value.append(text[j])
                j += 1
            out.append((key, "".join(value)))
            i = j + 1
        else:
            end = text.find(";", i)
            end = len(text) if end < 0 else end
            out.append((key, text[i:end].strip()))
            i = end
    return out


def field(body: bytes, found: list[Part], name: str) -> str | None:
    """The text of the first field called `name` that is not a file (None when absent)."""
    for part in found:
        if part.name == name and part.filename is None:
            try:
                return body[part.start : part.end].decode("utf-8")
            except UnicodeDecodeError:
                raise MultipartError(f"the field {name!r} is not UTF-8 text") from None
    return None


def replace_field(body: bytes, found: list[Part], name: str, value: str) -> bytes:
    """`body` with the contents of the field `name` replaced by `value` (the rest as it is)."""
    for part in found:
        if part.name == name and part.filename is None:
            return body[: part.start] + value.encode() + body[part.end :]
    raise MultipartError(f"the form has no field {name!r}")


def set_field(body: bytes, found: list[Part], boundary: bytes, name: str, value: str) -> bytes:
    """`body` with the field `name` set to `value`: replaced where the form has it, else
    added as the form's first part."""
    if any(part.name == name and part.filename is None for part in found):
        return replace_field(body, found, name, value)
    first = body.find(b"--" + boundary)
    if first < 0:
        raise MultipartError("the body holds no part (its boundary is not in it)")
    added = b'--%s\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (
        boundary,
        name.encode(),
        value.encode(),
    )
    return body[:first] + added + body[first:]


def count(found: list[Part], name: str) -> int:
    """How many text fields of the form are called `name`."""
    return sum(1 for part in found if part.name == name and part.filename is None)


def summary(body: bytes) -> bytes:
    """A form as text for a call record: its text fields, and each file's name, type and
    size in place of its contents (an upload is not kept in a record)."""
    line_end = body.find(b"\r\n")
    if not body.startswith(b"--") or line_end < 0:
        return b""
    try:
        found = parts(body, body[2:line_end])
    except MultipartError:
        return b"[a malformed multipart form]"
    lines = []
    for part in found:
        if part.filename is None:
            lines.append(b"%s=%s" % (part.name.encode(), body[part.start : part.end]))
        else:
            lines.append(
                b"%s=[file %s, %s, %d bytes]"
                % (
                    part.name.encode(),
                    part.filename.encode(),
                    (part.content_type or "application/octet-stream").encode(),
                    part.end - part.start,
                )
            )
    return b"\n".join(lines)
