"""OpenAI Chat Completions, and every server that speaks it: the canonical form itself.

Requests to these providers on `/v1/chat/completions` are forwarded byte for byte and never
come through here. This adapter serves the requests that do need a mapping (an Anthropic client
on `/v1/messages` calling an OpenAI-format model). Rules:
- the canonical extensions OpenAI does not accept are dropped: `thinking_blocks` and
  `reasoning_content` on assistant messages, `cache_control` on content parts;
- system and developer messages stay where they are: OpenAI's API takes them anywhere in the
  conversation (a mid-conversation system message from an Anthropic client included);
- streams always ask for usage (`stream_options.include_usage`); whether the client gets the
  usage chunk is the gateway's decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from tollway.errors import GatewayError
from tollway.llm.sse import SseParser
from tollway.providers.base import ProviderStreamError, UpstreamCall, reads_upstream

_EXTENSIONS = ("thinking_blocks", "reasoning_content")


class OpenAIAdapter:
    def chat_call(self, request: dict[str, Any], model: str, stream: bool) -> UpstreamCall:
        body = {**request, "model": model, "messages": [_plain(m) for m in request["messages"]]}
        if stream:
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        else:
            body.pop("stream", None)
            body.pop("stream_options", None)
        return UpstreamCall("/chat/completions", orjson.dumps(body))

    @reads_upstream
    def chat_response(self, body: bytes, model: str) -> dict[str, Any]:
        completion = orjson.loads(body)
        if not isinstance(completion, dict) or not completion.get("choices"):
            raise GatewayError(
                502,
                "The upstream returned a completion without choices.",
                code="upstream_protocol",
                type="upstream_error",
            )
        return completion

    def chat_stream(self, model: str, request: Mapping[str, Any] | None = None) -> OpenAIStream:
        return OpenAIStream()

    def error(self, status: int, body: bytes) -> GatewayError:
        return error_from_openai(status, body)


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    if not any(key in message for key in _EXTENSIONS) and not isinstance(
        message.get("content"), list
    ):
        return message
    out = {k: v for k, v in message.items() if k not in _EXTENSIONS}
    if isinstance(out.get("content"), list):
        out["content"] = [
            {k: v for k, v in part.items() if k != "cache_control"} for part in out["content"]
        ]
    return out


def error_from_openai(status: int, body: bytes) -> GatewayError:
    try:
        error = orjson.loads(body).get("error")
    except (orjson.JSONDecodeError, AttributeError):
        error = None
    if not isinstance(error, dict):
        text = body[:300].decode("utf-8", "replace").strip()
        return GatewayError(
            status, text or f"Upstream returned HTTP {status}.", code="upstream_error"
        )
    code = error.get("code")
    if status == 429 and not code:
        code = "rate_limit_exceeded"
    return GatewayError(
        status,
        str(error.get("message") or f"HTTP {status}"),
        type=error.get("type"),
        code=code,
        param=error.get("param"),
    )


class OpenAIStream:
    """OpenAI's `data:` chunks, parsed; `[DONE]` or a final finish_reason ends the stream."""

    def __init__(self) -> None:
        self.parser = SseParser()
        self.done = False
        self.finished = False
        self._usage: dict[str, Any] | None = None

    @property
    def usage(self) -> dict[str, Any] | None:
        return self._usage

    @reads_upstream
    def feed(self, data: bytes) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for event in self.parser.feed(data):
            if event.data == "[DONE]":
                self.done = True
                continue
            chunk = orjson.loads(event.data)
            if isinstance(chunk.get("error"), dict):
                raise ProviderStreamError(error_from_openai(502, event.data.encode()), out)
            if chunk.get("usage"):
                self._usage = chunk["usage"]
            if any(c.get("finish_reason") for c in chunk.get("choices") or []):
                self.finished = True
            out.append(chunk)
        return out

    @reads_upstream
    def finish(self) -> list[dict[str, Any]]:
        # Some OpenAI-compatible servers end without [DONE]; a complete HTTP body after a
        # finish_reason is an end all the same.
        if not (self.done or self.finished):
            raise ProviderStreamError(
                GatewayError(
                    502,
                    "The upstream ended the stream before it finished.",
                    code="upstream_stream_truncated",
                    type="upstream_error",
                )
            )
        return []
