"""Google's Gemini API as the mock provider speaks it.

`POST /v1beta/models/{model}:generateContent` and `:streamGenerateContent?alt=sse` (and the
Vertex AI form, `/v1/projects/P/locations/L/publishers/google/models/{model}:...`), with the
key as `x-goog-api-key`, `?key=`, or a Bearer token (Vertex). Faithful to the documented
format: camelCase fields, `contents` of `parts`, `functionCall` parts carrying a
`thoughtSignature`, `usageMetadata`, finish reasons, errors as
`{"error": {"code", "message", "status"}}`, and a stream whose events are each a partial
response. Like Gemini, it refuses a turn whose role is neither user nor model (a system
message inside `contents`), a replayed function call whose thought signature is missing, and a
`functionResponse` that answers no call of the turn before.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import orjson

from tollway.testing import mock_openai as wire
from tollway.testing.mock_images import PNG_B64
from tollway.testing.mock_reply import Ask, Reply

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
FINISH = {"stop": "STOP", "stop_sequence": "STOP", "length": "MAX_TOKENS", "tool_calls": "STOP"}
THOUGHT = "Considering what the user asked."


def error(status: int, message: str | None = None) -> bytes:
    name = STATUS_NAMES.get(status, "INTERNAL" if status >= 500 else "INVALID_ARGUMENT")
    return orjson.dumps(
        {"error": {"code": status, "message": message or f"Mock {name}.", "status": name}}
    )


def stream_error_event() -> bytes:
    return b"data: " + error(503, "The model is overloaded (mock, mid-stream).") + b"\n\n"


def signature(name: str) -> str:
    """Opaque bytes, base64 encoded, as Gemini's signatures are."""
    return base64.b64encode(b"mock-thought:%08x" % zlib.crc32(name.encode())).decode()


def split_path(path: str) -> tuple[str, str] | None:
    """'/v1beta/models/gemini-x:generateContent' -> ('gemini-x', 'generateContent')."""
    _, found, rest = path.partition("/models/")
    model, colon, action = rest.partition(":")
    if (
        not found
        or not colon
        or action not in ("generateContent", "streamGenerateContent", "countTokens")
    ):
        return None
    return model, action


# Values that belong to the caller, not to the API: their keys are left as they are.
_OPAQUE = {
    "args",
    "response",
    "parameters",
    "parametersJsonSchema",
    "responseSchema",
    "responseJsonSchema",
}


def normalize(value: Any, opaque: bool = False) -> Any:
    """Proto JSON accepts snake_case and camelCase field names alike (the google-genai SDK
    sends some of each): rewrite the API's own keys to camelCase."""
    if isinstance(value, list):
        return [normalize(v, opaque) for v in value]
    if not isinstance(value, dict) or opaque:
        return value
    out = {}
    for key, item in value.items():
        head, *rest = key.split("_")
        camel = head + "".join(word[:1].upper() + word[1:] for word in rest)
        out[camel] = normalize(item, camel in _OPAQUE)
    return out


def validate(body: dict[str, Any]) -> str | None:
    contents = body.get("contents")
    if not isinstance(contents, list) or not contents:
        return "* GenerateContentRequest.contents: contents is not specified"
    called: set[str] = set()
    for i, content in enumerate(contents):
        parts = content.get("parts") or []
        if content.get("role", "user") not in ("user", "model"):
            # Gemini has no system role inside `contents` (systemInstruction is apart).
            return f"Please use a valid role: user, model. (contents[{i}])"
        if content.get("role", "user") == "model":
            called = set()
            for part in parts:
                if "functionCall" in part:
                    name = part["functionCall"].get("name", "")
                    if part.get("thoughtSignature") != signature(name):
                        return (
                            f"Function call is missing a thought_signature in "
                            f"functionCall parts (contents[{i}])."
                        )
                    called.add(name)
        else:
            for part in parts:
                if (
                    "functionResponse" in part
                    and part["functionResponse"].get("name") not in called
                ):
                    return (
                        f"contents[{i}]: functionResponse does not match a functionCall "
                        "of the previous turn."
                    )
            called = set()
    return None


def _text(parts: list[dict[str, Any]]) -> str:
    return " ".join(
        p["text"] for p in parts if isinstance(p.get("text"), str) and not p.get("thought")
    )


def ask(body: dict[str, Any]) -> Ask:
    contents = body["contents"]
    last_parts = contents[-1].get("parts") or []
    responses = [
        p["functionResponse"].get("response") for p in last_parts if "functionResponse" in p
    ]
    results = [
        r["result"] if isinstance(r, dict) and set(r) == {"result"} else orjson.dumps(r).decode()
        for r in responses
    ]
    last_user = next(
        (
            _text(c.get("parts") or [])
            for c in reversed(contents)
            if c.get("role", "user") == "user" and _text(c.get("parts") or [])
        ),
        "",
    )
    tools = [
        (d["name"], d.get("parametersJsonSchema") or d.get("parameters") or {})
        for group in body.get("tools") or []
        for d in group.get("functionDeclarations") or []
    ]
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    allowed = calling.get("allowedFunctionNames") or []
    config = body.get("generationConfig") or {}
    schema = None
    if config.get("responseMimeType") == "application/json":
        schema = (
            config.get("responseJsonSchema")
            or config.get("responseSchema")
            or {"type": "object", "properties": {"answer": {"type": "string"}}}
        )
    return Ask(
        last_user,
        results or None,
        tools,
        allowed[0] if calling.get("mode") == "ANY" and len(allowed) == 1 else None,
        calling.get("mode") == "NONE",
        schema,
        config.get("maxOutputTokens"),
        list(config.get("stopSequences") or []),
    )


def _thinking(body: dict[str, Any]) -> bool:
    return bool(
        ((body.get("generationConfig") or {}).get("thinkingConfig") or {}).get("includeThoughts")
    )


def usage(body: dict[str, Any], reply: Reply) -> dict[str, Any]:
    prompt = (
        sum(
            wire.count_tokens(p.get("text") or orjson.dumps(p).decode())
            for c in body["contents"]
            for p in c.get("parts") or []
        )
        + 2
    )
    system = body.get("systemInstruction") or {}
    prompt += sum(wire.count_tokens(p.get("text", "")) for p in system.get("parts") or [])
    out: dict[str, Any] = {
        "promptTokenCount": prompt,
        "candidatesTokenCount": reply.completion_tokens,
    }
    thoughts = wire.count_tokens(THOUGHT) if _thinking(body) else 0
    if thoughts:
        out["thoughtsTokenCount"] = thoughts
    out["totalTokenCount"] = prompt + reply.completion_tokens + thoughts
    return out


# What Gemini's image models count for each image they make.
IMAGE_TOKENS = 1290


def images_response(rid: str, model: str, body: dict[str, Any]) -> dict[str, Any]:
    """An image model's answer (`responseModalities: ["IMAGE"]`): one candidate an image."""
    config = body.get("generationConfig") or {}
    count = int(config.get("candidateCount") or 1)
    prompt = wire.count_tokens(_text([p for c in body["contents"] for p in c.get("parts", [])]))
    return {
        "candidates": [
            {
                "content": {
                    "role": "model",
                    "parts": [{"inlineData": {"mimeType": "image/png", "data": PNG_B64}}],
                },
                "finishReason": "STOP",
                "index": i,
            }
            for i in range(count)
        ],
        "usageMetadata": {
            "promptTokenCount": prompt,
            "candidatesTokenCount": IMAGE_TOKENS * count,
            "totalTokenCount": prompt + IMAGE_TOKENS * count,
        },
        "modelVersion": model,
        "responseId": rid,
    }


def response(rid: str, model: str, reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    if "IMAGE" in ((body.get("generationConfig") or {}).get("responseModalities") or ()):
        return images_response(rid, model, body)
    parts: list[dict[str, Any]] = []
    if _thinking(body):
        parts.append({"text": THOUGHT, "thought": True})
    if reply.text:
        parts.append({"text": reply.text})
    for call in reply.tool_calls:
        parts.append(
            {
                "functionCall": {"name": call.name, "args": call.arguments},
                "thoughtSignature": signature(call.name),
            }
        )
    return {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts},
                "finishReason": FINISH[reply.finish],
                "index": 0,
            }
        ],
        "usageMetadata": usage(body, reply),
        "modelVersion": model,
        "responseId": rid,
    }


def stream_events(full: dict[str, Any], chunks: int) -> list[bytes]:
    """The response in pieces, as Gemini streams it: text split up, function calls whole,
    finish reason and usage on the last event."""
    candidate = full["candidates"][0]
    pieces: list[list[dict[str, Any]]] = []
    for part in candidate["content"]["parts"]:
        if "text" in part and not part.get("thought"):
            pieces.extend([{"text": t}] for t in wire.split_evenly(part["text"].split(" "), chunks))
        else:
            pieces.append([part])
    events = []
    for i, parts in enumerate(pieces or [[]]):
        event: dict[str, Any] = {
            "candidates": [{"content": {"role": "model", "parts": parts}, "index": 0}],
            "modelVersion": full["modelVersion"],
            "responseId": full["responseId"],
        }
        if i == len(pieces or [[]]) - 1:
            event["candidates"][0]["finishReason"] = candidate["finishReason"]
            event["usageMetadata"] = full["usageMetadata"]
        events.append(b"data: " + orjson.dumps(event) + b"\r\n\r\n")
    return events


def count_tokens(body: dict[str, Any]) -> dict[str, Any] | str:
    inner = body.get("generateContentRequest") or body
    if not inner.get("contents"):
        return "* CountTokensRequest: contents or generateContentRequest is required"
    reply = Reply("", "stop", 0)
    return {"totalTokens": usage(inner, reply)["promptTokenCount"]}
