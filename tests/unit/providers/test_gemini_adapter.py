from __future__ import annotations

import orjson
import pytest

from tollway.errors import GatewayError
from tollway.providers.base import ProviderStreamError
from tollway.providers.gemini import (
    GeminiAdapter,
    messages_to_gemini,
    signature_in_id,
    signed_id,
)

ADAPTER = GeminiAdapter()


def event(payload: dict) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\r\n\r\n"


RECORDED = b"".join(
    [
        event(
            {
                "candidates": [
                    {"content": {"role": "model", "parts": [{"text": "It is "}]}, "index": 0}
                ],
                "responseId": "r1",
                "modelVersion": "gemini-2.5-pro",
            }
        ),
        event(
            {
                "candidates": [
                    {
                        "content": {
                            "role": "model",
                            "parts": [
                                {"text": "sunny."},
                                {
                                    "functionCall": {"name": "log", "args": {"x": 1}},
                                    "thoughtSignature": "c2ln+/==",
                                },
                            ],
                        },
                        "index": 0,
                    }
                ],
                "responseId": "r1",
            }
        ),
        event(
            {
                "candidates": [
                    {"content": {"role": "model", "parts": []}, "finishReason": "STOP", "index": 0}
                ],
                "responseId": "r1",
                "usageMetadata": {
                    "promptTokenCount": 9,
                    "candidatesTokenCount": 4,
                    "thoughtsTokenCount": 2,
                    "cachedContentTokenCount": 3,
                },
            }
        ),
    ]
)


def test_recorded_stream() -> None:
    stream = ADAPTER.chat_stream("gemini")
    chunks = []
    for i in range(0, len(RECORDED), 29):
        chunks.extend(stream.feed(RECORDED[i : i + 29]))
    chunks.extend(stream.finish())
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert "".join(d.get("content", "") for d in deltas) == "It is sunny."
    [call] = [t for d in deltas for t in d.get("tool_calls", [])]
    assert call["index"] == 0 and call["function"] == {"name": "log", "arguments": '{"x":1}'}
    assert signature_in_id(call["id"]) == "c2ln+/=="
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    usage = chunks[-1]["usage"]
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (9, 6)
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 2
    assert usage["prompt_tokens_details"]["cached_tokens"] == 3
    assert chunks[-1]["model"] == "gemini-2.5-pro"


def test_stream_without_finish_reason_is_truncated() -> None:
    stream = ADAPTER.chat_stream("gemini")
    stream.feed(RECORDED[: RECORDED.index(b"data: ", 10)])
    with pytest.raises(ProviderStreamError):
        stream.finish()


def test_blocked_prompt_is_a_content_policy_error() -> None:
    with pytest.raises(GatewayError) as info:
        ADAPTER.chat_response(orjson.dumps({"promptFeedback": {"blockReason": "SAFETY"}}), "g")
    assert (info.value.status, info.value.code) == (400, "content_policy_violation")


@pytest.mark.parametrize(
    ("status", "name", "message", "expected"),
    [
        (429, "RESOURCE_EXHAUSTED", "quota", (429, "rate_limit_exceeded")),
        (503, "UNAVAILABLE", "overloaded", (503, "overloaded")),
        (
            400,
            "INVALID_ARGUMENT",
            "The input token count exceeds the maximum number of tokens",
            (400, "context_length_exceeded"),
        ),
    ],
)
def test_errors(status: int, name: str, message: str, expected: tuple[int, str]) -> None:
    error = ADAPTER.error(
        status, orjson.dumps({"error": {"code": status, "message": message, "status": name}})
    )
    assert (error.status, error.code) == expected


def test_tool_results_find_their_function_and_share_a_turn() -> None:
    _, contents = messages_to_gemini(
        [
            {"role": "user", "content": "q"},
            {
                "role": "assistant",
                "tool_calls": [
                    {
                        "id": signed_id("call_a", "c2lnQQ=="),
                        "function": {"name": "f", "arguments": "{}"},
                    },
                    {"id": "call_b", "function": {"name": "g", "arguments": '{"k": 2}'}},
                ],
            },
            {
                "role": "tool",
                "tool_call_id": signed_id("call_a", "c2lnQQ=="),
                "content": '{"ok": 1}',
            },
            {"role": "tool", "tool_call_id": "call_b", "content": "plain"},
        ]
    )
    assert [c["role"] for c in contents] == ["user", "model", "user"]
    assert contents[1]["parts"][0] == {
        "functionCall": {"name": "f", "args": {}},
        "thoughtSignature": "c2lnQQ==",
    }
    assert contents[2]["parts"] == [
        {"functionResponse": {"name": "f", "response": {"ok": 1}}},
        {"functionResponse": {"name": "g", "response": {"result": "plain"}}},
    ]


def test_a_tool_result_without_its_call_is_a_400() -> None:
    with pytest.raises(GatewayError, match="does not answer"):
        messages_to_gemini([{"role": "tool", "tool_call_id": "nope", "content": "x"}])


def test_model_names_are_encoded_in_the_path() -> None:
    call = ADAPTER.chat_call({"messages": [{"role": "user", "content": "x"}]}, "a/b?c", True)
    assert call.path == "/models/a%2Fb%3Fc:streamGenerateContent?alt=sse"
