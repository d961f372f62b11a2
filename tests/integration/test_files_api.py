"""OpenAI's Files API served by the gateway itself, with the openai SDK as client, on a gateway
of two workers whose store declares two teams' apps: uploads kept byte for byte (20 MB,
streamed to disk), listed, read back and deleted; each app's files out of the other's reach;
bad forms refused in OpenAI's shape; a client that breaks off leaves nothing behind; every
call recorded."""

from __future__ import annotations

import io
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from tollway.config.compile import hash_key

from prompt_api_servers import ADMIN_TOKEN, apply, records
from servers import Process, free_port, start_gateway, wait_started

KEY_A = "sk-test-files-app-a"
KEY_B = "sk-test-files-app-b"


def declared(mock: Process) -> dict[str, Any]:
    return {
        "providers": {
            "mock": {
                "type": "openai_compatible",
                "base_url": mock.url + "/v1",
                "api_key_env": "MOCK_KEY",
            }
        },
        "models": {"gpt-4o-mini": {"deployments": [{"provider": "mock"}]}},
        "teams": {"red": {}, "blue": {}},
        "apps": {
            "red": {"uploader": {"keys": [{"name": "a", "key_sha256": hash_key(KEY_A)}]}},
            "blue": {"reader": {"keys": [{"name": "b", "key_sha256": hash_key(KEY_B)}]}},
        },
    }


@pytest.fixture(scope="module")
def served(workdir: Path, mock: Process) -> Iterator[tuple[Process, Path]]:
    data = workdir / f"files-store-{free_port()}"
    done = apply(workdir, data, declared(mock))
    assert done.returncode == 0, done.stderr
    gateway = start_gateway(
        workdir,
        None,
        "--data-dir",
        str(data),
        env={"TOLLWAY_ADMIN_TOKEN": ADMIN_TOKEN, "MOCK_KEY": "unused"},
        workers=2,
    )
    yield gateway, data
    gateway.stop()


def sdk(gateway: Process, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0, timeout=60)


def data_files(data: Path) -> list[Path]:
    return sorted((data / "files").rglob("*.data"))


def test_a_20_mb_upload_comes_back_identical(served: tuple[Process, Path]) -> None:
    gateway, _ = served
    client = sdk(gateway, KEY_A)
    payload = os.urandom(20 * 1024 * 1024)
    created = client.files.create(
        file=("big.bin", io.BytesIO(payload)),
        purpose="user_data",
        extra_headers={"x-request-id": "files-create-big"},
    )
    assert created.id.startswith("file-") and created.object == "file"
    assert (created.bytes, created.filename, created.purpose) == (
        len(payload),
        "big.bin",
        "user_data",
    )
    assert created.status == "processed" and abs(created.created_at - time.time()) < 60
    assert client.files.retrieve(created.id) == created
    raw = client.files.with_raw_response.content(created.id)
    assert raw.headers["content-type"] == "application/octet-stream"
    assert raw.content == payload
    assert client.files.delete(created.id).deleted is True
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


def test_list_retrieve_content_and_delete(served: tuple[Process, Path]) -> None:
    gateway, _ = served
    client = sdk(gateway, KEY_A)
    lines = b'{"custom_id": "1"}\n{"custom_id": "2"}\n'
    ids = []
    for n in range(3):
        ids.append(
            client.files.create(
                file=(f"in-{n}.jsonl", io.BytesIO(lines)), purpose="batch" if n < 2 else "evals"
            ).id
        )
        time.sleep(1.05)  # distinct creation times: the order is by time
    listed = client.files.list()
    assert [f.id for f in listed.data][:3] == ids[::-1]
    batch_only = client.files.list(purpose="batch")
    assert {f.id for f in batch_only.data} == set(ids[:2])
    page = httpx.get(
        gateway.url + "/v1/files",
        params={"order": "asc", "limit": 1, "after": ids[0]},
        headers={"Authorization": f"Bearer {KEY_A}"},
    ).json()
    assert [f["id"] for f in page["data"]] == [ids[1]]
    assert page["first_id"] == page["last_id"] == ids[1]
    assert page["has_more"] is True and page["object"] == "list"
    raw = client.files.with_raw_response.content(ids[0])
    assert raw.headers["content-type"] == "application/jsonl" and raw.content == lines
    deleted = client.files.delete(ids[2])
    assert (deleted.id, deleted.object, deleted.deleted) == (ids[2], "file", True)
    assert ids[2] not in {f.id for f in client.files.list().data}


def test_another_app_does_not_see_the_file(served: tuple[Process, Path]) -> None:
    gateway, _ = served
    owner, other = sdk(gateway, KEY_A), sdk(gateway, KEY_B)
    created = owner.files.create(file=("mine.jsonl", io.BytesIO(b"{}\n")), purpose="batch")
    assert created.id not in {f.id for f in other.files.list().data}
    headers = {"Authorization": f"Bearer {KEY_B}"}
    for method, path in (
        ("GET", f"/v1/files/{created.id}"),
        ("GET", f"/v1/files/{created.id}/content"),
        ("DELETE", f"/v1/files/{created.id}"),
    ):
        answer = httpx.request(method, gateway.url + path, headers=headers)
        assert answer.status_code == 404
        assert answer.json() == {
            "error": {
                "message": f"No such File object: {created.id}",
                "type": "invalid_request_error",
                "param": "id",
                "code": None,
            }
        }
    with pytest.raises(openai.NotFoundError):
        other.files.content(created.id)
    assert owner.files.retrieve(created.id).id == created.id
    mine = other.files.create(file=("theirs.txt", io.BytesIO(b"x")), purpose="assistants")
    assert [f.id for f in other.files.list().data] == [mine.id]


def status_and_error(answer: httpx.Response) -> tuple[int, Any]:
    return answer.status_code, answer.json()["error"]["param"]


def test_bad_input_is_refused_naming_the_parameter(served: tuple[Process, Path]) -> None:
    gateway, data = served
    url = gateway.url + "/v1/files"
    auth = {"Authorization": f"Bearer {KEY_A}"}
    before = data_files(data)
    no_file = httpx.post(url, headers=auth, files={"purpose": (None, "batch")})
    assert status_and_error(no_file) == (400, "file")
    bad_purpose = httpx.post(
        url, headers=auth, data={"purpose": "training"}, files={"file": ("a.jsonl", b"{}\n")}
    )
    assert status_and_error(bad_purpose) == (400, "purpose")
    assert "batch" in bad_purpose.json()["error"]["message"]
    no_purpose = httpx.post(url, headers=auth, files={"file": ("a.jsonl", b"{}\n")})
    assert status_and_error(no_purpose) == (400, "purpose")
    not_a_form = httpx.post(url, headers=auth, json={"purpose": "batch"})
    assert status_and_error(not_a_form) == (400, "file")
    two_files = httpx.post(
        url,
        headers=auth,
        data={"purpose": "batch"},
        files=[("file", ("a.jsonl", b"1")), ("file", ("b.jsonl", b"2"))],
    )
    assert status_and_error(two_files) == (400, "file")
    bad_limit = httpx.get(url, headers=auth, params={"limit": 0})
    assert status_and_error(bad_limit) == (400, "limit")
    bad_order = httpx.get(url, headers=auth, params={"order": "sideways"})
    assert status_and_error(bad_order) == (400, "order")
    with pytest.raises(openai.BadRequestError) as refused:
        sdk(gateway, KEY_A).files.create(file=("a.jsonl", io.BytesIO(b"{}")), purpose="nope")  # type: ignore[arg-type]
    assert refused.value.param == "purpose"
    assert data_files(data) == before  # nothing left behind
    no_key = httpx.get(url)
    assert no_key.status_code == 401
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, "sk-not-a-key").files.list()


def test_a_client_that_breaks_off_leaves_no_file(served: tuple[Process, Path]) -> None:
    gateway, data = served
    before = data_files(data)
    boundary = b"cut-here"
    head = (
        b"--cut-here\r\n"
        b'Content-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b"--cut-here\r\n"
        b'Content-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n'
    )
    with socket.create_connection(("127.0.0.1", int(gateway.url.rsplit(":", 1)[1]))) as sock:
        sock.sendall(
            b"POST /v1/files HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
            + KEY_A.encode()
            + b"\r\nContent-Type: multipart/form-data; boundary="
            + boundary
            + b"\r\nContent-Length: %d\r\n\r\n" % (10 * 1024 * 1024)
            + head
        )
        for _ in range(16):
            sock.sendall(b"x" * 65536)
        # The upload is under way: its data on disk, not yet a file.
        deadline = time.monotonic() + 10
        while len(data_files(data)) == len(before) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(data_files(data)) == len(before) + 1
    deadline = time.monotonic() + 10
    while data_files(data) != before and time.monotonic() < deadline:
        time.sleep(0.02)
    assert data_files(data) == before
    assert not list((data / "files").rglob("*.tmp"))


def test_the_calls_are_recorded(served: tuple[Process, Path]) -> None:
    gateway, _ = served
    client = sdk(gateway, KEY_A)
    created = client.files.create(
        file=("r.jsonl", io.BytesIO(b"{}\n")),
        purpose="batch",
        extra_headers={"x-request-id": "files-recorded-create"},
    )
    client.files.list(extra_headers={"x-request-id": "files-recorded-list"})
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-nope", extra_headers={"x-request-id": "files-recorded-404"})
    client.files.delete(created.id)
    found = {
        name: records(gateway, request_id=name)[0]
        for name in (
            "files-create-big",
            "files-recorded-create",
            "files-recorded-list",
            "files-recorded-404",
        )
    }
    assert {r["api"] for r in found.values()} == {"openai.files"}
    assert {r["model"] for r in found.values()} <= {None, ""}
    assert found["files-recorded-create"]["status"] == 200
    assert found["files-recorded-create"]["outcome"] == "completed"
    assert found["files-recorded-404"]["status"] == 404
    assert all(r["app_id"] for r in found.values())


def test_an_owners_files_are_held_to_the_storage_limit(workdir: Path, mock: Process) -> None:
    limited = {
        "server": {"limits": {"max_files_bytes": 1_000_000}},
        "providers": declared(mock)["providers"],
        "models": declared(mock)["models"],
        "keys": [
            {"name": "a", "key_sha256": hash_key(KEY_A)},
            {"name": "b", "key_sha256": hash_key(KEY_B)},
        ],
    }
    data = workdir / f"files-limited-{free_port()}"
    env = {"MOCK_KEY": "unused"}
    gateway = wait_started(start_gateway(workdir, limited, "--data-dir", str(data), env=env))
    try:
        owner, other = sdk(gateway, KEY_A), sdk(gateway, KEY_B)
        first = owner.files.create(file=("a.jsonl", io.BytesIO(b"a" * 600_000)), purpose="batch")
        with pytest.raises(openai.BadRequestError) as full:
            owner.files.create(file=("b.jsonl", io.BytesIO(b"b" * 600_000)), purpose="batch")
        error = full.value.body
        assert isinstance(error, dict)
        assert (error["code"], error["param"]) == ("storage_limit_exceeded", "file")
        assert [f.id for f in owner.files.list().data] == [first.id]  # nothing left behind
        assert len(data_files(data)) == 1
        # The limit is each owner's own.
        assert other.files.create(file=("c.jsonl", io.BytesIO(b"c" * 600_000)), purpose="batch")
        # Room made, the upload fits.
        owner.files.delete(first.id)
        again = owner.files.create(file=("b.jsonl", io.BytesIO(b"b" * 600_000)), purpose="batch")
        assert again.bytes == 600_000
    finally:
        gateway.stop()
