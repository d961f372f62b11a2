"""Recorded bodies without their secrets.

A service may record its calls' request and response bodies (off by default). Before a body
leaves the worker it is cut to the service's size limit and redacted: every secret the
gateway knows is in play (the caller's key, the provider's credentials) is replaced wherever
it appears, then the built-in patterns (bearer tokens, provider and Tollway keys, cloud
credentials, private keys, JSON fields named like secrets) and the service's own patterns.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import orjson

from tollway.llm import multipart
from tollway.llm.websocket import KEY_PROTOCOL

if TYPE_CHECKING:
    from tollway.policies.context import RequestContext

MASK = "[REDACTED]"
# Whole matches replaced by the mask.
SECRET_PATTERNS: tuple[str, ...] = (
    r"\bsk-(?:ant-|proj-|live-|test-)?[A-Za-z0-9_\-]{12,}",  # OpenAI, Anthropic, ...
    r"\btwa?-[A-Za-z0-9_\-]{16,}",  # Tollway client keys and admin tokens
    r"\bAKIA[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bAIza[0-9A-Za-z_\-]{30,}",  # Google API keys
    r"\bgh[pousr]_[A-Za-z0-9]{30,}",  # GitHub tokens
    r"\bxox[abposr]-[A-Za-z0-9\-]{10,}",  # Slack tokens
    r"\beyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",  # JWTs
    r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
)
# The value after a name that says "secret": `Authorization: Bearer x`, `"api_key": "x"`.
_NAMED = re.compile(
    r"""(?ix)
    (
      (?:authorization|proxy-authorization|x-api-key|api[-_]?key|x-goog-api-key|
         access[-_]?token|refresh[-_]?token|client[-_]?secret|secret[-_]?key|
         aws[-_]?secret[-_]?access[-_]?key|password|passwd|secret|token)
      ["']?\s*[:=]\s*["']?
      (?:(?:bearer|basic|token)\s+)?
    )
    [^\s"',;}&]{4,}
    """
)
_BUILT_IN = re.compile("|".join(f"(?:{p})" for p in SECRET_PATTERNS))
# Provider headers that carry no secret.
_PLAIN_HEADERS = frozenset(
    {b"user-agent", b"content-type", b"accept", b"anthropic-version", b"anthropic-beta"}
)


@dataclass(frozen=True, slots=True)
class BodyCapture:
    """A service's body recording: how much of each body, and its own patterns to redact."""

    max_bytes: int = 65536
    patterns: tuple[re.Pattern[str], ...] = field(default=(), compare=False)

    @classmethod
    def build(cls, max_bytes: int, patterns: Sequence[str]) -> BodyCapture:
        return cls(max_bytes, tuple(re.compile(p) for p in patterns))


class Redactor:
    """Redacts bodies at flush time (never in the done phase)."""

    def redact(
        self, text: str, known: Sequence[str] = (), patterns: Sequence[re.Pattern[str]] = ()
    ) -> str:
        for secret in known:
            if len(secret) >= 6:
                text = text.replace(secret, MASK)
        text = _BUILT_IN.sub(MASK, text)
        text = _NAMED.sub(lambda m: m.group(1) + MASK, text)
        for pattern in patterns:
            text = pattern.sub(MASK, text)
        return text

    def bodies(self, ctx: RequestContext, capture: BodyCapture) -> tuple[str, str | None]:
        """The call's request and response bodies, cut and redacted."""
        known = _known_secrets(ctx)
        body = ctx.request.body
        route = ctx.route
        if route is not None and route.api is not None and route.api.form:
            body = multipart.summary(body)  # the form's fields; uploads by name and size
        request = self.redact(_text(body, capture.max_bytes), known, capture.patterns)
        answer = ctx.response_body
        response = None
        if answer is not None:
            # A stream is kept as the text it carried: a secret split over two events is
            # whole again, and redacted.
            text = stream_text(bytes(answer)) if ctx.stream else _text(bytes(answer), 1 << 30)
            response = self.redact(text[: capture.max_bytes], known, capture.patterns)
        return request, response


# Keys whose string values carry a stream's text in the client APIs' events.
_TEXT_KEYS = frozenset({"content", "text", "delta", "arguments", "partial_json", "thinking"})


def stream_text(events: bytes) -> str:
    """The text a server-sent-events stream carried: the string values of its events'
    text fields (content, text, delta, arguments, ...), joined in order."""
    parts: list[str] = []
    for line in events.split(b"\n"):
        if not line.startswith(b"data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == b"[DONE]":
            continue
        try:
            _collect(orjson.loads(payload), parts)
        except orjson.JSONDecodeError:
            parts.append(payload.decode("utf-8", "replace"))
    return "".join(parts)


def _collect(value: object, parts: list[str]) -> None:
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _TEXT_KEYS and isinstance(item, str):
                parts.append(item)
            else:
                _collect(item, parts)
    elif isinstance(value, list):
        for item in value:
            _collect(item, parts)


def _text(data: bytes, limit: int) -> str:
    return data[:limit].decode("utf-8", "replace")


def _known_secrets(ctx: RequestContext) -> list[str]:
    """The secrets in play in this call: the caller's credentials, the provider's."""
    found: list[str] = []
    for name, value in ctx.request.headers:
        if name in (b"authorization", b"x-api-key", b"api-key", b"proxy-authorization"):
            found.append(_credential(value))
        elif name == b"sec-websocket-protocol":
            # A browser's key, in its WebSocket's subprotocols.
            found.extend(
                offered.strip()[len(KEY_PROTOCOL) :].decode("latin-1")
                for offered in value.split(b",")
                if offered.strip().startswith(KEY_PROTOCOL)
            )
    deployment = ctx.deployment
    if deployment is not None:
        for name, value in deployment.provider.headers:
            if name not in _PLAIN_HEADERS:
                found.append(_credential(value))
    service = ctx.service
    if service is not None and service.rest is not None:
        # A REST service's static headers: where its upstream's credentials travel.
        for backend in service.rest.backends():
            for name, value in (*backend.headers, *backend.request_rules.add):
                if name not in _PLAIN_HEADERS:
                    found.append(_credential(value))
    return [secret for secret in found if secret]


def _credential(value: bytes) -> str:
    text = value.decode("latin-1").strip()
    scheme, _, rest = text.partition(" ")
    if rest and scheme.lower() in ("bearer", "basic", "token"):
        return rest.strip()
    return text
