"""The multipart reader: forms as client libraries write them, read without copying their
uploads; the model field read and renamed; malformed forms refused with a reason."""

from __future__ import annotations

import httpx
import pytest

from tollway.llm import multipart


def form(data: dict[str, str], files: dict[str, tuple[str, bytes, str]]) -> tuple[bytes, bytes]:
    request = httpx.Request("POST", "http://127.0.0.1/", data=data, files=files)
    return request.read(), request.headers["content-type"].encode()


def test_a_form_is_read_and_its_model_renamed_leaving_the_upload_as_it_was() -> None:
    upload = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40 + b"\r\n--not-the-boundary"
    body, content_type = form(
        {"model": "dall-e-2", "prompt": 'a "quoted"; prompt'},
        {"image": ("kite; 1.png", upload, "image/png")},
    )
    boundary = multipart.boundary_of(content_type)
    assert boundary is not None
    parts = multipart.parts(body, boundary)
    assert [(p.name, p.filename, p.content_type) for p in parts] == [
        ("model", None, None),
        ("prompt", None, None),
        ("image", "kite; 1.png", "image/png"),
    ]
    assert body[parts[2].start : parts[2].end] == upload
    assert multipart.field(body, parts, "model") == "dall-e-2"
    assert multipart.field(body, parts, "prompt") == 'a "quoted"; prompt'
    assert multipart.field(body, parts, "image") is None  # a file is not a text field
    renamed = multipart.replace_field(body, parts, "model", "gpt-image-1")
    again = multipart.parts(renamed, boundary)
    assert multipart.field(renamed, again, "model") == "gpt-image-1"
    assert renamed[again[2].start : again[2].end] == upload
    summary = multipart.summary(body)
    assert b"model=dall-e-2" in summary
    assert b"image=[file kite; 1.png, image/png, %d bytes]" % len(upload) in summary
    assert upload not in summary


@pytest.mark.parametrize(
    ("content_type", "boundary"),
    [
        (b"multipart/form-data; boundary=abc", b"abc"),
        (b'Multipart/Form-Data; charset=utf-8; boundary="a b"', b"a b"),
        (b"application/json", None),
        (b"multipart/form-data", None),
        (b"multipart/form-data; boundary=" + b"x" * 71, None),
        (None, None),
    ],
)
def test_the_boundary_comes_from_the_content_type(
    content_type: bytes | None, boundary: bytes | None
) -> None:
    assert multipart.boundary_of(content_type) == boundary


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"no boundary here", "no part"),
        (b"--b\r\nContent-Disposition: form-data; name=model\r\n\r\nx", "closing boundary"),
        (b"--b\r\nContent-Disposition: form-data; name=model\r\nx", "headers do not end"),
        (b"--bX\r\n", "not followed by CRLF"),
        (b"--b\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--b--", "not form-data"),
        (b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n--b--", "no name"),
    ],
)
def test_malformed_forms_are_refused_with_a_reason(body: bytes, problem: str) -> None:
    with pytest.raises(multipart.MultipartError, match=problem):
        multipart.parts(body, b"b")


def test_the_leading_parts_of_a_form_still_arriving() -> None:
    body, content_type = form(
        {"model": "dall-e-2"}, {"image": ("a.png", b"\x89PNG" * 5000, "image/png")}
    )
    boundary = multipart.boundary_of(content_type)
    assert boundary is not None
    whole = multipart.parts(body, boundary)
    for cut in (0, 10, 60, whole[0].end, whole[0].end + 5, whole[1].start + 100):
        found = multipart.leading_parts(body[:cut], boundary)
        complete = [p for p in whole if p.end + 2 + len(boundary) + 2 <= cut]
        assert [p.name for p in found] == [p.name for p in complete], cut
    found = multipart.leading_parts(body[: whole[1].start + 100], boundary)
    assert multipart.field(body, found, "model") == "dall-e-2"
    with pytest.raises(multipart.MultipartError):
        multipart.leading_parts(b"x" * 10_000, boundary)


def test_a_field_is_set_where_the_form_has_it_or_added_first() -> None:
    body, content_type = form({"prompt": "p"}, {"image": ("a.png", b"\x89PNG", "image/png")})
    boundary = multipart.boundary_of(content_type)
    assert boundary is not None
    added = multipart.set_field(body, multipart.parts(body, boundary), boundary, "model", "m1")
    found = multipart.parts(added, boundary)
    assert [p.name for p in found] == ["model", "prompt", "image"]
    assert multipart.field(added, found, "model") == "m1"
    again = multipart.set_field(added, found, boundary, "model", "m2")
    assert multipart.count(multipart.parts(again, boundary), "model") == 1
    assert multipart.field(again, multipart.parts(again, boundary), "model") == "m2"
