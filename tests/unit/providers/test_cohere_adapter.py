from __future__ import annotations

import orjson
import pytest

from tollway.providers.base import ProviderStreamError
from tollway.providers.cohere import CohereAdapter

ADAPTER = CohereAdapter()


def event(kind: str, payload: dict) -> bytes:
    return (
        b"event: " + kind.encode() + b"\ndata: " + orjson.dumps({"type": kind, **payload}) + b"\n\n"
    )


RECORDED = b"".join(
    [
        event("message-start", {"id": "c1", "delta": {"message": {"role": "assistant"}}}),
        event("tool-plan-delta", {"delta": {"message": {"tool_plan": "Look it up."}}}),
        event(
            "tool-call-start",
            {
                "index": 0,
                "delta": {
                    "message": {
                        "tool_calls": {
                            "id": "w_1",
                            "type": "function",
                            "function": {"name": "w", "arguments": ""},
                        }
                    }
                },
            },
        ),
        event(
            "tool-call-delta",
            {
                "index": 0,
                "delta": {"message": {"tool_calls": {"function": {"arguments": '{"c":'}}}},
            },
        ),
        event(
            "tool-call-delta",
            {"index": 0, "delta": {"message": {"tool_calls": {"function": {"arguments": "1}"}}}}},
        ),
        event("tool-call-end", {"index": 0}),
        event(
            "message-end",
            {
                "delta": {
                    "finish_reason": "TOOL_CALL",
                    "usage": {
                        "billed_units": {"input_tokens": 9, "output_tokens": 5},
                        "tokens": {"input_tokens": 12, "output_tokens": 5},
                    },
                }
            },
        ),
    ]
)


def test_recorded_stream() -> None:
    stream = ADAPTER.chat_stream("command")
    chunks = []
    for i in range(0, len(RECORDED), 23):
        chunks.extend(stream.feed(RECORDED[i : i + 23]))
    chunks.extend(stream.finish())
    deltas = [c["choices"][0]["delta"] for c in chunks if c["choices"]]
    assert deltas[1] == {"reasoning_content": "Look it up."}
    calls = [t for d in deltas for t in d.get("tool_calls", [])]
    assert calls[0]["id"] == "w_1" and calls[0]["function"]["name"] == "w"
    assert "".join(t["function"]["arguments"] for t in calls) == '{"c":1}'
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"
    assert chunks[-1]["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17}


def test_error_finish_in_the_stream() -> None:
    stream = ADAPTER.chat_stream("command")
    with pytest.raises(ProviderStreamError):
        stream.feed(event("message-end", {"delta": {"finish_reason": "ERROR"}}))


def test_errors_and_embeddings_shapes() -> None:
    error = ADAPTER.error(429, b'{"message": "too many requests"}')
    assert (error.status, error.code) == (429, "rate_limit_exceeded")
    assert ADAPTER.error(422, b'{"message": "bad"}').status == 400
    call = ADAPTER.embeddings_call({"input": "hi", "dimensions": 8}, "embed-v4.0")
    assert orjson.loads(call.body) == {
        "model": "embed-v4.0",
        "texts": ["hi"],
        "input_type": "search_document",
        "embedding_types": ["float"],
        "output_dimension": 8,
    }


def test_cache_hits_are_cached_tokens() -> None:
    reply = {
        "id": "r",
        "finish_reason": "COMPLETE",
        "message": {"role": "assistant", "content": [{"type": "text", "text": "hi"}]},
        "usage": {"tokens": {"input_tokens": 40, "output_tokens": 2}, "cached_tokens": 32},
    }
    usage = ADAPTER.chat_response(orjson.dumps(reply), "command-a")["usage"]
    assert usage["prompt_tokens"] == 40
    assert usage["prompt_tokens_details"] == {"cached_tokens": 32}
