"""Stand-ins for a client connection and an upstream socket, for handler tests without I/O."""

from __future__ import annotations

from typing import Any

from tollway.config.compile import compile_config, hash_key
from tollway.config.load import validate_config
from tollway.config.snapshot import RuntimeConfig


class FakeClient:
    """Records what a handler writes to its client."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, list[tuple[bytes, bytes]], bytes]] = []
        self.attached: Any = None
        self.closed = False

    def send(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> None:
        self.sent.append((status, headers, body))

    def send_json(
        self, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.send(status, [(b"content-type", b"application/json"), *(headers or [])], body)

    def attach(self, work: Any) -> None:
        self.attached = work

    def abort(self) -> None:
        self.closed = True


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        self.written.extend(parts)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def abort(self) -> None: ...

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str) -> None:
        return None


def config(policies: Any = None, **extra: Any) -> RuntimeConfig:
    data: dict[str, Any] = {
        "providers": {
            "oa": {"base_url": "http://127.0.0.1:9/v1"},
            "claude": {"type": "anthropic", "base_url": "http://127.0.0.1:9/v1"},
            "gem": {"type": "gemini", "base_url": "http://127.0.0.1:9/v1beta"},
        },
        "models": {
            "gpt": {"deployments": [{"provider": "oa", "model": "gpt-4o"}]},
            "same": {"deployments": [{"provider": "oa"}]},
            "claude": {"deployments": [{"provider": "claude", "model": "claude-sonnet-4-5"}]},
            "gemini": {"deployments": [{"provider": "gem", "model": "gemini-2.5-flash"}]},
        },
        "keys": [
            {"name": "all", "key_sha256": hash_key("sk-all")},
            {"name": "some", "key_sha256": hash_key("sk-some"), "models": ["same"]},
        ],
        **extra,
    }
    if policies is not None:
        data["policies"] = policies
    return compile_config(validate_config(data), {})
