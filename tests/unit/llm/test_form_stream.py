"""The incremental multipart reader: the same parts however the body is cut into pieces."""

from __future__ import annotations

import pytest

from tollway.llm.form_stream import PART_END, FormEvent, FormStream, MultipartError, PartHead

BOUNDARY = b"b0undary-x"


def form(*parts: tuple[bytes, bytes], preamble: bytes = b"", epilogue: bytes = b"") -> bytes:
    """A form of (head, contents) parts."""
    out = preamble
    for head, contents in parts:
        out += b"--" + BOUNDARY + b"\r\n" + head + b"\r\n\r\n" + contents + b"\r\n"
    return out + b"--" + BOUNDARY + b"--\r\n" + epilogue


def text(name: str) -> bytes:
    return b'Content-Disposition: form-data; name="%s"' % name.encode()


def upload(name: str, filename: str) -> bytes:
    return text(name) + b'; filename="%s"\r\nContent-Type: application/jsonl' % filename.encode()


# File contents that look like a boundary but are not one (no CRLF before, or cut short).
TRICKY = b"line 1\r\n--b0undary\r\n--b0undary-\r--b0undary-x-not\r\n" + b"\r\n-"
BODY = form(
    (text("purpose"), b"batch"),
    (upload("file", "in.jsonl"), TRICKY),
    (text("after"), b""),
    preamble=b"ignored preamble\r\n",
    epilogue=b"ignored epilogue",
)
EXPECTED = [
    (PartHead("purpose", None, None), b"batch"),
    (PartHead("file", "in.jsonl", "application/jsonl"), TRICKY),
    (PartHead("after", None, None), b""),
]


def read(pieces: list[bytes]) -> list[tuple[PartHead, bytes]]:
    stream = FormStream(BOUNDARY)
    events: list[FormEvent] = []
    for piece in pieces:
        events.extend(stream.feed(piece))
    stream.close()
    assert stream.done
    found: list[tuple[PartHead, bytes]] = []
    head: PartHead | None = None
    contents = b""
    for event in events:
        if isinstance(event, PartHead):
            assert head is None
            head, contents = event, b""
        elif event is PART_END:
            assert head is not None
            found.append((head, contents))
            head = None
        else:
            assert head is not None and isinstance(event, bytes)
            contents += event
    assert head is None
    return found


def test_the_whole_body_at_once() -> None:
    assert read([BODY]) == EXPECTED


@pytest.mark.parametrize("cut", range(1, len(BODY)))
def test_every_split_in_two(cut: int) -> None:
    assert read([BODY[:cut], BODY[cut:]]) == EXPECTED


def test_every_pair_of_cuts() -> None:
    for first in range(1, len(BODY), 3):
        for second in range(first, len(BODY)):
            assert read([BODY[:first], BODY[first:second], BODY[second:]]) == EXPECTED


def test_byte_by_byte_and_empty_pieces() -> None:
    pieces = [BODY[i : i + 1] for i in range(len(BODY))]
    assert read([b"", *pieces, b""]) == EXPECTED


def test_a_part_without_headers_is_refused_for_its_missing_name() -> None:
    body = b"--" + BOUNDARY + b"\r\n\r\nx\r\n--" + BOUNDARY + b"--"
    with pytest.raises(MultipartError, match="no name"):
        read([body])


def test_the_contents_are_not_held() -> None:
    """A large file comes out as it goes in: only the boundary's length is held back."""
    stream = FormStream(BOUNDARY)
    events = stream.feed(b"--" + BOUNDARY + b"\r\n" + upload("file", "a.bin") + b"\r\n\r\n")
    assert events == [PartHead("file", "a.bin", "application/jsonl")]
    given = 0
    for _ in range(100):
        out = stream.feed(b"x" * 65536)
        given += sum(len(e) for e in out if isinstance(e, bytes))
    assert 100 * 65536 - given < len(BOUNDARY) + 4
    out = stream.feed(b"\r\n--" + BOUNDARY + b"--")
    given += sum(len(e) for e in out if isinstance(e, bytes))
    assert given == 100 * 65536 and out[-1] is PART_END and stream.done


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"no boundary here", "does not end"),
        (b"--" + BOUNDARY + b"\r\n" + text("a") + b"\r\n\r\nunfinished", "does not end"),
        (b"--" + BOUNDARY + b"junk\r\n", "not followed by CRLF"),
        (b"--" + BOUNDARY + b"\r\nContent-Disposition: attachment\r\n\r\n", "not form-data"),
    ],
)
def test_malformed_forms(body: bytes, problem: str) -> None:
    stream = FormStream(BOUNDARY)
    with pytest.raises(MultipartError, match=problem):
        stream.feed(body)
        stream.close()


def test_bounded_preamble_and_headers() -> None:
    with pytest.raises(MultipartError, match="no part"):
        FormStream(BOUNDARY).feed(b"x" * 10000)
    stream = FormStream(BOUNDARY)
    with pytest.raises(MultipartError, match="headers do not end"):
        stream.feed(b"--" + BOUNDARY + b"\r\n" + b"X-Long: " + b"y" * 10000)
