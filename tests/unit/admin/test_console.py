"""The console's files as the admin API serves them at /ui, and a build that matches its
sources (ui/): a change to the console's sources without `npm run build` fails here."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tollway.admin import console

UI = Path(__file__).parents[3] / "ui"
# As ui/vite.config.ts lists them (its sourcesDigest).
SOURCES = ["index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts"]


def _digest(root: Path) -> str:
    paths = sorted(
        [name for name in SOURCES]
        + [p.relative_to(root).as_posix() for p in (root / "src").rglob("*") if p.is_file()]
    )
    sha = hashlib.sha256()
    for path in paths:
        sha.update(path.encode() + b"\0")
        sha.update((root / path).read_bytes())
        sha.update(b"\0")
    return sha.hexdigest()


def test_the_shipped_build_is_made_from_the_sources_as_they_are() -> None:
    built = json.loads((console.BUILT / "sources.json").read_text())
    assert built["sha256"] == _digest(UI), (
        "src/tollway/admin/console/ is stale: run `npm ci && npm run build` in ui/"
    )


@pytest.fixture
def client() -> TestClient:
    app = FastAPI()
    console.install(app)
    return TestClient(app)


def test_every_console_path_answers_the_page(client: TestClient) -> None:
    page = (console.BUILT / "index.html").read_bytes()
    for path in ("/ui/", "/ui/apps/3", "/ui/records?status=500", "/ui/no/such/screen"):
        answer = client.get(path)
        assert answer.status_code == 200, path
        assert answer.content == page
        assert answer.headers["content-type"] == "text/html; charset=utf-8"
        assert answer.headers["cache-control"] == "no-cache"
        assert "default-src 'self'" in answer.headers["content-security-policy"]
        assert answer.headers["x-frame-options"] == "DENY"
    moved = client.get("/ui", follow_redirects=False)
    assert (moved.status_code, moved.headers["location"]) == (308, "/ui/")


def test_assets_are_served_for_good_and_a_missing_one_is_not_the_page(client: TestClient) -> None:
    assets = sorted((console.BUILT / "assets").iterdir())
    scripts = [a for a in assets if a.suffix == ".js"]
    styles = [a for a in assets if a.suffix == ".css"]
    assert scripts and styles
    page = (console.BUILT / "index.html").read_text()
    for asset in scripts + styles:
        assert f"/ui/assets/{asset.name}" in page
        answer = client.get(f"/ui/assets/{asset.name}", headers={"Accept-Encoding": "identity"})
        assert answer.status_code == 200
        assert answer.content == asset.read_bytes()
        assert answer.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (
        client.get(f"/ui/assets/{scripts[0].name}")
        .headers["content-type"]
        .startswith(("text/javascript", "application/javascript"))
    )
    # Compressed for a client that takes it (TestClient asks for gzip and undoes it).
    zipped = client.get(f"/ui/assets/{scripts[0].name}")
    assert zipped.headers["content-encoding"] == "gzip"
    assert zipped.content == scripts[0].read_bytes()
    assert int(zipped.headers["content-length"]) < scripts[0].stat().st_size / 2
    plain = client.get(f"/ui/assets/{scripts[0].name}", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    assert plain.content == scripts[0].read_bytes()
    missing = client.get("/ui/assets/nothing-0000.js")
    assert missing.status_code == 404
    assert missing.headers["content-type"].startswith("text/plain")


def test_nothing_outside_the_build_is_reachable(client: TestClient, tmp_path: Path) -> None:
    for path in ("/ui/../pyproject.toml", "/ui/%2e%2e/console.py", "/ui/..%2fconsole.py"):
        answer = client.get(path)
        assert b"import" not in answer.content and b"[project]" not in answer.content


def test_without_a_build_the_console_says_so(tmp_path: Path) -> None:
    app = FastAPI()
    console.install(app, root=tmp_path)
    answer = TestClient(app).get("/ui/")
    assert answer.status_code == 404
    assert "not built" in answer.text
