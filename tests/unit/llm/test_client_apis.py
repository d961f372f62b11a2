from __future__ import annotations

import json

import pytest

from tollway.errors import GatewayError
from tollway.llm.client_apis import (
    ANTHROPIC_COUNT_TOKENS,
    ANTHROPIC_MESSAGES,
    OPENAI_CHAT,
    OPENAI_COMPLETIONS,
    OPENAI_EMBEDDINGS,
    OPENAI_RESPONSES,
    Intake,
)

CHAT = b'{"messages":[{"role":"user","content":"hi"}],"model":"m","stream":true}'


def test_intake_reads_model_stream_and_usage_option() -> None:
    assert OPENAI_CHAT.intake(CHAT) == Intake("m", True, False)
    body = b'{"model":"m","messages":[{"role":"user"}],"stream_options":{"include_usage":true}}'
    assert OPENAI_CHAT.intake(body) == Intake("m", False, True)
    # Embeddings never stream, whatever the body says.
    assert OPENAI_EMBEDDINGS.intake(b'{"model":"e","input":"x","stream":true}').stream is False
    assert OPENAI_COMPLETIONS.intake(b'{"model":"c","prompt":["a"]}').model == "c"
    assert OPENAI_RESPONSES.intake(b'{"model":"r"}').model == "r"
    assert ANTHROPIC_MESSAGES.intake(b'{"model":"claude","stream":true}') == Intake(
        "claude", True, True
    )
    assert ANTHROPIC_COUNT_TOKENS.intake(b'{"model":"claude","stream":true}').stream is False


@pytest.mark.parametrize(
    ("api", "body", "param", "code"),
    [
        (OPENAI_CHAT, b"{not json", None, "invalid_json"),
        (OPENAI_CHAT, b"[1, 2]", None, "invalid_json"),
        (OPENAI_CHAT, b'{"messages": [{"role": "user"}]}', "model", "missing_model"),
        (OPENAI_CHAT, b'{"model": "", "messages": [{"role": "user"}]}', "model", "missing_model"),
        (OPENAI_CHAT, b'{"model": "m", "messages": []}', "messages", "invalid_value"),
        (OPENAI_CHAT, b'{"model": "m", "messages": "hi"}', "messages", "invalid_value"),
        (OPENAI_CHAT, b'{"model": "m", "messages": ["hi"]}', "messages[0]", "invalid_value"),
        (
            OPENAI_CHAT,
            b'{"model": "m", "messages": [{"content": "x"}]}',
            "messages[0]",
            "invalid_value",
        ),
        (
            OPENAI_CHAT,
            b'{"model": "m", "messages": [{"role": "user"}, {"role": 7}]}',
            "messages[1]",
            "invalid_value",
        ),
        (
            OPENAI_CHAT,
            b'{"model": "m", "messages": [{"role": "user"}], "stream": "yes"}',
            "stream",
            "invalid_type",
        ),
        (OPENAI_COMPLETIONS, b'{"model": "m", "prompt": 5}', "prompt", "invalid_value"),
        (OPENAI_EMBEDDINGS, b'{"model": "m", "input": []}', "input", "invalid_value"),
        (OPENAI_RESPONSES, b'{"model": "m", "input": 5}', "input", "invalid_value"),
    ],
)
def test_bad_bodies_are_named_errors(
    api: object, body: bytes, param: str | None, code: str
) -> None:
    with pytest.raises(GatewayError) as info:
        api.intake(body)  # type: ignore[attr-defined]
    assert (info.value.status, info.value.param, info.value.code) == (400, param, code)


def test_anthropic_errors_are_in_anthropics_shape() -> None:
    with pytest.raises(GatewayError) as info:
        ANTHROPIC_MESSAGES.intake(b'{"max_tokens": 5}')
    body = json.loads(ANTHROPIC_MESSAGES.error_body(info.value))
    assert body == {
        "type": "error",
        "error": {"type": "invalid_request_error", "message": "model: Field required"},
    }
    missing = ANTHROPIC_MESSAGES.no_such_model("x")
    assert json.loads(ANTHROPIC_MESSAGES.error_body(missing))["error"]["type"] == "not_found_error"


def test_stream_errors_in_each_apis_stream_format() -> None:
    openai = OPENAI_CHAT.stream_error("broke", "upstream_timeout")
    assert openai.startswith(b"data: ") and openai.endswith(b"\n\n")
    assert json.loads(openai[6:])["error"]["code"] == "upstream_timeout"
    responses = OPENAI_RESPONSES.stream_error("broke", "gateway_shutdown")
    assert responses.startswith(b"event: error\ndata: ")
    assert json.loads(responses.split(b"data: ")[1])["code"] == "gateway_shutdown"
    anthropic = ANTHROPIC_MESSAGES.stream_error("broke", "x")
    assert anthropic.startswith(b"event: error\ndata: ")
    assert json.loads(anthropic.split(b"data: ")[1])["error"]["message"] == "broke"


def test_native_errors_pass_through_when_already_in_the_apis_shape() -> None:
    own = b'{"error": {"message": "slow down", "type": "rate_limit_error"}}'
    status, body, passed = OPENAI_CHAT.upstream_error(
        "p", 429, [(b"retry-after", b"3"), (b"x-other", b"1")], own
    )
    assert (status, body, passed) == (429, own, [(b"retry-after", b"3")])
    status, body, _ = OPENAI_CHAT.upstream_error("p", 500, [], b"<html>oops</html>")
    assert (
        status == 500 and b"oops" in body and json.loads(body)["error"]["code"] == "upstream_error"
    )
    # 401/403 concern the gateway's credentials: a 502, in each API's shape.
    status, body, _ = ANTHROPIC_MESSAGES.upstream_error("p", 401, [], b"{}")
    assert status == 502 and json.loads(body)["type"] == "error"


def test_usage_of_native_answers_in_the_canonical_shape() -> None:
    chat = b'{"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":2,"total_tokens":7}}'
    assert OPENAI_CHAT.usage_of(chat)["total_tokens"] == 7  # type: ignore[index]
    anthropic = b'{"usage":{"input_tokens":3,"output_tokens":4,"cache_read_input_tokens":2}}'
    usage = ANTHROPIC_MESSAGES.usage_of(anthropic)
    assert usage is not None
    assert (usage["prompt_tokens"], usage["completion_tokens"]) == (5, 4)
    assert usage["prompt_tokens_details"]["cached_tokens"] == 2
    responses = (
        b'{"usage":{"input_tokens":10,"output_tokens":3,"total_tokens":13,'
        b'"output_tokens_details":{"reasoning_tokens":1}}}'
    )
    usage = OPENAI_RESPONSES.usage_of(responses)
    assert usage is not None and usage["completion_tokens_details"]["reasoning_tokens"] == 1
    assert OPENAI_CHAT.usage_of(b"not json") is None


def test_usage_watchers_read_streams_event_by_event() -> None:
    watcher = OPENAI_CHAT.usage_watcher()
    watcher.feed(b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n')
    assert watcher.usage is None
    watcher.feed(
        b'data: {"choices":[],"usage":{"prompt_tokens":1,"total_tokens":3}}\n\ndata: [DONE]\n\n'
    )
    assert watcher.usage == {"prompt_tokens": 1, "total_tokens": 3}
    anthropic = ANTHROPIC_MESSAGES.usage_watcher()
    anthropic.feed(
        b'event: message_start\ndata: {"type":"message_start","message":{"usage":'
        b'{"input_tokens":9,"output_tokens":1}}}\n\n'
    )
    anthropic.feed(
        b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":6}}\n\n'
    )
    assert anthropic.usage is not None
    assert (anthropic.usage["prompt_tokens"], anthropic.usage["completion_tokens"]) == (9, 6)
    responses = OPENAI_RESPONSES.usage_watcher()
    responses.feed(
        b'event: response.completed\ndata: {"type":"response.completed","response":'
        b'{"usage":{"input_tokens":2,"output_tokens":2,"total_tokens":4}}}\n\n'
    )
    assert responses.usage is not None and responses.usage["total_tokens"] == 4


def test_a_usage_chunk_asked_for_the_client_is_read_and_kept_from_it() -> None:
    watcher = OPENAI_CHAT.usage_watcher()
    content = b'data: {"choices":[{"delta":{"content":"x"}}]}\n\n'
    usage = b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":2,"total_tokens":5}}\n\n'
    assert watcher.take(content) == content
    assert watcher.take(usage + b"data: [DONE]\n\n") == b"data: [DONE]\n\n"
    assert watcher.usage == {"prompt_tokens": 2, "total_tokens": 5}
    assert watcher.take(usage) == b""
