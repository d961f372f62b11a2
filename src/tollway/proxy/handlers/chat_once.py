"""One chat completion the gateway makes for a call of its own (a kept conversation's summary,
a prompt API's answer): the canonical request sent to one deployment, translated as its
provider needs, and the answer read back into the canonical form."""

from __future__ import annotations

from typing import Any

from tollway.config.snapshot import Deployment
from tollway.proxy.exchange import open_stream
from tollway.proxy.handlers.translated import TRANSLATIONS
from tollway.proxy.upstream import Upstreams


class ChatCallFailed(Exception):
    """The deployment could not answer: unreachable (status 0), an error status, or an answer
    that could not be read."""

    def __init__(self, message: str, status: int = 0, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body


async def chat_once(
    upstreams: Upstreams,
    deployment: Deployment,
    request: dict[str, Any],
    request_id: bytes,
) -> dict[str, Any]:
    """The canonical chat completion of `request` (OpenAI's chat shape) by `deployment`."""
    provider = deployment.provider
    upstream_model = deployment.model or str(request["model"])
    translation = TRANSLATIONS["chat"]
    call = provider.kind.adapter.chat_call(request, upstream_model, False)
    head = translation.head(provider, call, upstream_model, request_id, False)
    try:
        upstream = await open_stream(upstreams.pool(provider), head, call.body)
        body = await upstream.read_all()
    except Exception as exc:
        raise ChatCallFailed(f"{provider.name}: {exc}") from exc
    if upstream.status >= 400:
        raise ChatCallFailed(
            f"{provider.name} answered {upstream.status}", upstream.status, bytes(body)
        )
    try:
        return translation.result(provider, body, upstream_model, request)
    except Exception as exc:
        raise ChatCallFailed(f"{provider.name}: unreadable answer ({exc})") from exc
