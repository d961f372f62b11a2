"""Transport settings as immutable values: what a client may send (`HttpLimits`), where an
upstream is (`Origin`) and how long it may take (`UpstreamTimeouts`).

They are part of the compiled snapshot and read by the data plane; they live here, on the
snapshot's side, so that the configuration never depends on the proxy.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds on what a client may send; documented in docs/configuration.md."""

    max_body_bytes: int = 32 * 1024 * 1024
    # Uploads to the model APIs' forms (image edits, audio), taken as they arrive.
    max_upload_bytes: int = 256 * 1024 * 1024
    # What one owner's files may hold together (the Files API).
    max_files_bytes: int = 10 * 1024 * 1024 * 1024
    max_header_bytes: int = 64 * 1024
    max_headers: int = 100
    header_timeout_s: float = 10.0
    body_timeout_s: float = 60.0
    keepalive_timeout_s: float = 75.0
    send_timeout_s: float = 60.0
    max_pipelined: int = 16


@dataclass(frozen=True, slots=True)
class UpstreamTimeouts:
    """Deadlines for an upstream exchange, and the size a response read whole may reach."""

    connect_s: float = 10.0
    # A non-streamed completion sends nothing until it is done: first byte can take minutes.
    first_byte_s: float = 300.0
    idle_s: float = 120.0
    pool_idle_s: float = 60.0
    # A response read whole (not streamed) larger than this fails: a broken or hostile
    # upstream must not exhaust the gateway's memory.
    max_response_bytes: int = 64 * 1024 * 1024
    # A non-streamed exchange, from the request sent to the last byte (None: no bound but the
    # phases'). Streams have none: they last as long as the answer does.
    total_s: float | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    scheme: str
    host: str
    port: int
    base_path: str

    @classmethod
    def from_url(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        return cls(parts.scheme, parts.hostname, port, parts.path.rstrip("/"))

    @property
    def host_header(self) -> bytes:
        default = 443 if self.scheme == "https" else 80
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (host if self.port == default else f"{host}:{self.port}").encode("idna")


def head_prefix(
    method: bytes, path: bytes, host: bytes, headers: tuple[tuple[bytes, bytes], ...]
) -> bytes:
    """An HTTP/1.1 request head up to its per-request headers: the request line, `host`, and
    `headers`. Built once per deployment for native calls; the caller appends the rest and
    the blank line."""
    parts = [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method, path, host)]
    for name, value in headers:
        parts.append(b"%s: %s\r\n" % (name, value))
    return b"".join(parts)
