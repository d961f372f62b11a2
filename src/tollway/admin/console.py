"""The admin console: the built web app (ui/, built into ./console/) served at /ui.

The files ship inside the package, so a plain `pip install` serves the console with no Node
and nothing fetched from elsewhere at run time. They are read once, when the admin API
starts. Every path under /ui/ that is not a file answers the app's page, which routes on the
client (a reload or a shared link opens the same screen). The app talks only to the admin API
on the same origin; the Content-Security-Policy holds it to that.
"""

from __future__ import annotations

import gzip
import mimetypes
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response

BUILT = Path(__file__).with_name("console")
# Hashed asset names change with their content: they can be cached for good.
_IMMUTABLE = "public, max-age=31536000, immutable"
_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


@dataclass(frozen=True, slots=True)
class _File:
    body: bytes
    kind: str
    # Compressed once at start for the clients that take it (the script is ~250 kB, ~85 kB
    # compressed), or None when compressing does not pay.
    zipped: bytes | None


def _files(root: Path) -> dict[str, _File]:
    found: dict[str, _File] = {}
    if not root.is_dir():
        return found
    for path in root.rglob("*"):
        if path.is_file():
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            textual = kind.startswith("text/") or kind in (
                "application/javascript",
                "application/json",
                "image/svg+xml",
            )
            if textual:
                kind += "; charset=utf-8"
            body = path.read_bytes()
            zipped = gzip.compress(body, 9, mtime=0) if textual and len(body) > 1024 else None
            found[path.relative_to(root).as_posix()] = _File(body, kind, zipped)
    return found


def _answer(file: _File, request: Request, cache: str) -> Response:
    headers = {**_HEADERS, "Cache-Control": cache, "Vary": "Accept-Encoding"}
    if file.zipped is not None and "gzip" in request.headers.get("accept-encoding", ""):
        headers["Content-Encoding"] = "gzip"
        return Response(file.zipped, media_type=file.kind, headers=headers)
    return Response(file.body, media_type=file.kind, headers=headers)


def install(app: FastAPI, root: Path = BUILT) -> None:
    """Serve the console at /ui on `app` (the admin API's application)."""
    files = _files(root)
    page = files.get("index.html")

    def redirect() -> RedirectResponse:
        return RedirectResponse("/ui/", status_code=308)

    def serve(path: str, request: Request) -> Response:
        found = files.get(path)
        if found is not None and path != "index.html":
            return _answer(found, request, _IMMUTABLE if path.startswith("assets/") else "no-cache")
        if path.startswith("assets/") or page is None:
            # A missing asset is a 404, not the page (a browser would run HTML as a script).
            return Response(
                "not found"
                if page is not None
                else "the console is not built (ui/: npm run build)",
                status_code=404,
                media_type="text/plain",
                headers=_HEADERS,
            )
        return _answer(page, request, "no-cache")

    app.add_api_route("/ui", redirect, methods=["GET", "HEAD"], include_in_schema=False)
    app.add_api_route("/ui/{path:path}", serve, methods=["GET", "HEAD"], include_in_schema=False)
