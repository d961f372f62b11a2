"""AWS Bedrock's Converse and ConverseStream APIs as the mock provider speaks them.

`POST /model/{modelId}/converse` answers JSON; `.../converse-stream` answers AWS's binary
event stream (application/vnd.amazon.eventstream). Requests must be signed with SigV4, the
mock's key serving as the secret access key (the signature is recomputed over the headers the
request says it signed, as AWS does), or carry the key as a Bearer token (Bedrock API keys).
Errors are `{"message"}` with `x-amzn-ErrorType`; a failure mid-stream is an `exception`
message. Like Bedrock with Claude, a message whose role is neither user nor assistant (a system
message inside the conversation) is refused, a replayed tool call without its signed reasoning
block is refused when thinking is on, and a toolResult must answer a toolUse of the turn
before.
"""

from __future__ import annotations

import re
import zlib
from typing import Any
from urllib.parse import unquote

import orjson

from tollway.providers.aws_eventstream import encode
from tollway.providers.sigv4 import SigV4Signer
from tollway.testing import mock_openai as wire
from tollway.testing.mock_reply import Ask, Reply

ERROR_NAMES = {
    400: "ValidationException",
    401: "UnrecognizedClientException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
STOP = {
    "stop": "end_turn",
    "stop_sequence": "stop_sequence",
    "length": "max_tokens",
    "tool_calls": "tool_use",
}
THINKING = "Working out which tool answers this."
CONTENT_TYPE = b"application/vnd.amazon.eventstream"
_AUTH = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^/]+)/(\d{8})/([^/]+)/([^/]+)/aws4_request, "
    r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})"
)


def error(status: int, message: str | None = None) -> bytes:
    return orjson.dumps({"message": message or f"Mock {ERROR_NAMES.get(status, 'error')}."})


def error_headers(status: int) -> list[tuple[bytes, bytes]]:
    name = ERROR_NAMES.get(status, "InternalServerException")
    return [(b"x-amzn-errortype", f"{name}:http://internal.amazon.com/coral/".encode())]


def split_path(path: str) -> tuple[str, bool] | None:
    """'/model/{id}/converse-stream' -> (id, True)."""
    match = re.fullmatch(r"/model/([^/]+)/(converse|converse-stream|count-tokens)", path)
    if match is None:
        return None
    return unquote(match.group(1)), match.group(2) == "converse-stream"


def count_tokens(body: dict[str, Any]) -> dict[str, Any] | str:
    converse = (body.get("input") or {}).get("converse")
    if not isinstance(converse, dict) or not converse.get("messages"):
        return "input.converse.messages is required"
    return {"inputTokens": usage(converse, 0)["inputTokens"]}


def authorized(
    headers: list[tuple[bytes, bytes]], path: str, query: bytes, body: bytes, secret: bytes
) -> bool:
    values: dict[str, str] = {}
    for name, value in headers:
        values.setdefault(name.decode(), value.decode("latin-1"))
    auth = values.get("authorization", "")
    if auth == "Bearer " + secret.decode():
        return True
    match = _AUTH.fullmatch(auth)
    if match is None:
        return False
    key_id, _, region, service, signed, signature = match.groups()
    signer = SigV4Signer(key_id, secret.decode(), region, service)
    present = {name: values.get(name, "") for name in signed.split(";")}
    expected = signer.authorization("POST", path, query.decode(), present, body)
    return expected.endswith("Signature=" + signature)


def signature(text: str) -> str:
    return f"mock-reasoning-{zlib.crc32(text.encode()):08x}"


def _thinking(body: dict[str, Any]) -> bool:
    return ((body.get("additionalModelRequestFields") or {}).get("thinking") or {}).get(
        "type"
    ) == "enabled"


def validate(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "1 validation error detected: Value at 'messages' failed to satisfy constraint"
    uses: set[str] = set()
    for i, message in enumerate(messages):
        blocks = message.get("content") or []
        if message.get("role") not in ("user", "assistant"):
            # Claude on Bedrock takes no system message inside the conversation.
            return (
                f"messages.{i}.role: this model supports only the user and assistant roles "
                "in messages; put instructions in system"
            )
        if message.get("role") == "assistant":
            uses = {b["toolUse"].get("toolUseId") for b in blocks if "toolUse" in b}
            if _thinking(body) and uses:
                first = (blocks[0].get("reasoningContent") or {}).get("reasoningText") or {}
                if first.get("signature") != signature(first.get("text", "")):
                    return (
                        f"messages.{i}: when thinking is enabled, an assistant message "
                        "with toolUse must start with its reasoningContent block"
                    )
        else:
            for block in blocks:
                if "toolResult" in block and block["toolResult"].get("toolUseId") not in uses:
                    return (
                        f"messages.{i}: toolResult {block['toolResult'].get('toolUseId')} "
                        "does not match a toolUse of the previous turn"
                    )
            uses = set()
    return None


def _text(blocks: list[dict[str, Any]]) -> str:
    return " ".join(b["text"] for b in blocks if isinstance(b.get("text"), str))


def ask(body: dict[str, Any]) -> Ask:
    messages = body["messages"]
    last = messages[-1].get("content") or []
    results = []
    for block in last:
        if "toolResult" in block:
            for part in block["toolResult"].get("content") or []:
                results.append(
                    part["text"] if "text" in part else orjson.dumps(part.get("json")).decode()
                )
    last_user = next(
        (
            _text(m.get("content") or [])
            for m in reversed(messages)
            if m.get("role") == "user" and _text(m.get("content") or [])
        ),
        "",
    )
    tool_config = body.get("toolConfig") or {}
    tools = [
        (t["toolSpec"]["name"], (t["toolSpec"].get("inputSchema") or {}).get("json") or {})
        for t in tool_config.get("tools") or []
        if "toolSpec" in t
    ]
    forced = ((tool_config.get("toolChoice") or {}).get("tool") or {}).get("name")
    inference = body.get("inferenceConfig") or {}
    return Ask(
        last_user,
        results or None,
        tools,
        forced,
        False,
        None,
        inference.get("maxTokens"),
        list(inference.get("stopSequences") or []),
    )


def usage(body: dict[str, Any], output: int) -> dict[str, Any]:
    sizes: list[tuple[int, bool]] = []  # (tokens, followed by a cache point)
    for block in list(body.get("system") or []) + [
        b for m in body["messages"] for b in m.get("content") or []
    ]:
        if "cachePoint" in block and sizes:
            sizes[-1] = (sizes[-1][0], True)
        elif "cachePoint" not in block:
            sizes.append(
                (wire.count_tokens(block.get("text") or orjson.dumps(block).decode()), False)
            )
    marked = [i for i, (_, cached) in enumerate(sizes) if cached]
    read = sum(size for size, _ in sizes[: marked[-1] + 1]) if marked else 0
    total = sum(size for size, _ in sizes) + 3 * len(body["messages"])
    return {
        "inputTokens": total - read,
        "outputTokens": output,
        "totalTokens": total + output,
        "cacheReadInputTokens": read,
        "cacheWriteInputTokens": 0,
    }


def response(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    output = reply.completion_tokens
    if _thinking(body):
        content.append(
            {
                "reasoningContent": {
                    "reasoningText": {"text": THINKING, "signature": signature(THINKING)}
                }
            }
        )
        output += wire.count_tokens(THINKING)
    if reply.text:
        content.append({"text": reply.text})
    for call in reply.tool_calls:
        content.append(
            {
                "toolUse": {
                    "toolUseId": "tooluse_" + call.id,
                    "name": call.name,
                    "input": call.arguments,
                }
            }
        )
    return {
        "output": {"message": {"role": "assistant", "content": content}},
        "stopReason": STOP[reply.finish],
        "usage": usage(body, output),
        "metrics": {"latencyMs": 12},
    }


def _event(kind: str, payload: dict[str, Any]) -> bytes:
    return encode(
        {":event-type": kind, ":content-type": "application/json", ":message-type": "event"},
        orjson.dumps(payload),
    )


def stream_events(full: dict[str, Any], chunks: int) -> list[bytes]:
    out = [_event("messageStart", {"role": "assistant"})]
    for index, block in enumerate(full["output"]["message"]["content"]):
        deltas: list[dict[str, Any]]
        if "toolUse" in block:
            use = block["toolUse"]
            out.append(
                _event(
                    "contentBlockStart",
                    {
                        "contentBlockIndex": index,
                        "start": {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}},
                    },
                )
            )
            arguments = orjson.dumps(use["input"]).decode()
            half = max(1, len(arguments) // 2)
            deltas = [
                {"toolUse": {"input": arguments[i : i + half]}}
                for i in range(0, len(arguments), half)
            ]
        elif "reasoningContent" in block:
            text = block["reasoningContent"]["reasoningText"]
            deltas = [
                {"reasoningContent": {"text": text["text"]}},
                {"reasoningContent": {"signature": text["signature"]}},
            ]
        else:
            deltas = [
                {"text": piece} for piece in wire.split_evenly(block["text"].split(" "), chunks)
            ]
        out.extend(
            _event("contentBlockDelta", {"contentBlockIndex": index, "delta": d}) for d in deltas
        )
        out.append(_event("contentBlockStop", {"contentBlockIndex": index}))
    out.append(_event("messageStop", {"stopReason": full["stopReason"]}))
    out.append(_event("metadata", {"usage": full["usage"], "metrics": full["metrics"]}))
    return out


def stream_error_event() -> bytes:
    return encode(
        {
            ":exception-type": "modelStreamErrorException",
            ":content-type": "application/json",
            ":message-type": "exception",
        },
        orjson.dumps({"message": "The model stream failed (mock, mid-stream)."}),
    )
