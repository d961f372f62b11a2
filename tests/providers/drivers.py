"""One driver per client SDK: the same questions asked through each official SDK, answers
reduced to a common shape so that one conformance suite can judge every pair."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import httpx
import openai
from openai.types.responses import Response, ResponseStreamEvent
from pydantic import TypeAdapter

WEATHER_TOOL = {
    "name": "get_weather",
    "description": "Current weather for a city.",
    "schema": {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
        "required": ["city", "days"],
    },
}
TIME_TOOL = {
    "name": "get_time",
    "description": "Local time in a city.",
    "schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


# Every event of a Responses stream, checked against the SDK's own types.
STREAM_EVENT: TypeAdapter[ResponseStreamEvent] = TypeAdapter(ResponseStreamEvent)


@dataclass
class Answer:
    text: str
    finish: str  # "stop", "length" or "tool"
    prompt_tokens: int
    completion_tokens: int
    tool_calls: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    raw: Any = None


class OpenAIDriver:
    name = "openai-sdk"
    errors = openai

    def __init__(self, base_url: str, key: str) -> None:
        self.client = openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)

    @staticmethod
    def _tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [
            {
                "type": "function",
                "function": {
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["schema"],
                },
            }
            for t in tools
        ]

    def ask(
        self,
        model: str,
        text: str,
        *,
        stream: bool = False,
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        system: str | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> Answer:
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system else []
        messages += history or [{"role": "user", "content": text}]
        kwargs: dict[str, Any] = {"model": model, "messages": messages}
        if tools:
            kwargs["tools"] = self._tools(tools)
        if max_tokens:
            kwargs["max_tokens"] = max_tokens
        if stop:
            kwargs["stop"] = stop
        if not stream:
            reply = self.client.chat.completions.create(**kwargs)
            message = reply.choices[0].message
            calls = [
                (c.id, c.function.name, json.loads(c.function.arguments))
                for c in message.tool_calls or []
            ]
            return Answer(
                message.content or "",
                _finish(reply.choices[0].finish_reason),
                reply.usage.prompt_tokens,
                reply.usage.completion_tokens,
                calls,
                reply,
            )
        chunks = list(
            self.client.chat.completions.create(
                **kwargs, stream=True, stream_options={"include_usage": True}
            )
        )
        text_out, finish, calls = "", "", {}
        for chunk in chunks:
            for choice in chunk.choices:
                text_out += choice.delta.content or ""
                for call in choice.delta.tool_calls or []:
                    entry = calls.setdefault(call.index, ["", "", ""])
                    entry[0] = call.id or entry[0]
                    entry[1] = (call.function.name if call.function else None) or entry[1]
                    entry[2] += (call.function.arguments if call.function else None) or ""
                finish = choice.finish_reason or finish
        usage = chunks[-1].usage
        assert chunks[-1].choices == [] and usage is not None, "no usage chunk at the end"
        return Answer(
            text_out,
            _finish(finish),
            usage.prompt_tokens,
            usage.completion_tokens,
            [(c[0], c[1], json.loads(c[2])) for _, c in sorted(calls.items())],
            chunks,
        )

    def tool_round_trip(self, model: str, answer: Answer, result: str) -> Answer:
        first = answer.raw.choices[0].message
        history = [
            {"role": "user", "content": "weather?"},
            first.model_dump(exclude_none=True),
            *(
                {"role": "tool", "tool_call_id": call_id, "content": result}
                for call_id, _, _ in answer.tool_calls
            ),
        ]
        return self.ask(model, "", tools=[WEATHER_TOOL], history=history)


class AnthropicDriver:
    name = "anthropic-sdk"
    errors = anthropic

    def __init__(self, base_url: str, key: str) -> None:
        self.client = anthropic.Anthropic(base_url=base_url, api_key=key, max_retries=0)

    def ask(
        self,
        model: str,
        text: str,
        *,
        stream: bool = False,
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        system: str | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> Answer:
        kwargs: dict[str, Any] = {
            "model": model,
            "max_tokens": max_tokens or 1024,
            "messages": history or [{"role": "user", "content": text}],
        }
        if system:
            kwargs["system"] = system
        if tools:
            kwargs["tools"] = [
                {"name": t["name"], "description": t["description"], "input_schema": t["schema"]}
                for t in tools
            ]
        if stop:
            kwargs["stop_sequences"] = stop
        if stream:
            with self.client.messages.stream(**kwargs) as events:
                message = events.get_final_message()
        else:
            message = self.client.messages.create(**kwargs)
        text_out = "".join(b.text for b in message.content if b.type == "text")
        calls = [(b.id, b.name, b.input) for b in message.content if b.type == "tool_use"]
        usage = message.usage
        prompt = (
            usage.input_tokens
            + (usage.cache_read_input_tokens or 0)
            + (usage.cache_creation_input_tokens or 0)
        )
        return Answer(
            text_out, _stop(message.stop_reason), prompt, usage.output_tokens, calls, message
        )

    def tool_round_trip(self, model: str, answer: Answer, result: str) -> Answer:
        history = [
            {"role": "user", "content": "weather?"},
            {
                "role": "assistant",
                "content": [b.model_dump(exclude_none=True) for b in answer.raw.content],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": call_id, "content": result}
                    for call_id, _, _ in answer.tool_calls
                ],
            },
        ]
        return self.ask(model, "", tools=[WEATHER_TOOL], history=history)


def _finish(reason: str | None) -> str:
    return {"tool_calls": "tool", "length": "length"}.get(reason or "", "stop")


def _stop(reason: str | None) -> str:
    return {"tool_use": "tool", "max_tokens": "length"}.get(reason or "", "stop")


class ResponsesDriver:
    """The `openai` SDK's Responses client: on providers with a Responses API of their own it
    is passed through, on every other translated through the canonical form."""

    name = "responses-sdk"
    errors = openai

    def __init__(self, base_url: str, key: str) -> None:
        self.client = openai.OpenAI(base_url=base_url + "/v1", api_key=key, max_retries=0)

    def ask(
        self,
        model: str,
        text: str,
        *,
        stream: bool = False,
        tools: list[dict[str, Any]] | None = None,
        max_tokens: int | None = None,
        stop: list[str] | None = None,
        system: str | None = None,
        history: list[dict[str, Any]] | None = None,
    ) -> Answer:
        assert stop is None, "the Responses API has no stop sequences"
        kwargs: dict[str, Any] = {"model": model, "input": history or text, "store": False}
        if system:
            kwargs["instructions"] = system
        if tools:
            kwargs["tools"] = [
                {
                    "type": "function",
                    "name": t["name"],
                    "description": t["description"],
                    "parameters": t["schema"],
                }
                for t in tools
            ]
        if max_tokens:
            kwargs["max_output_tokens"] = max_tokens
        response = self._streamed(kwargs) if stream else self.client.responses.create(**kwargs)
        # The SDK builds its objects without validating them: validate them here.
        Response.model_validate(response.to_dict())
        calls = [
            (item.call_id, item.name, json.loads(item.arguments))
            for item in response.output
            if item.type == "function_call"
        ]
        if calls:
            finish = "tool"
        elif response.status == "incomplete":
            assert response.incomplete_details is not None
            finish = {"max_output_tokens": "length"}.get(
                response.incomplete_details.reason or "", "stop"
            )
        else:
            assert response.status == "completed", response.status
            finish = "stop"
        assert response.usage is not None
        return Answer(
            response.output_text,
            finish,
            response.usage.input_tokens,
            response.usage.output_tokens,
            calls,
            response,
        )

    def _streamed(self, kwargs: dict[str, Any]) -> Any:
        """The stream's events, checked as a client relies on them: numbered in order, the
        deltas adding up to the final response's text and arguments."""
        events = list(self.client.responses.create(**kwargs, stream=True))
        for event in events:
            STREAM_EVENT.validate_python(event.to_dict())
        final = events[-1]
        if final.type in ("error", "response.failed"):
            # OpenAI's own failure events (passed through from a provider with a Responses
            # API) are yielded by the SDK, not raised: a client stops on them. The gateway's
            # own add an `error` object that makes the SDK raise (tests/providers/
            # test_responses.py checks that).
            # Newer SDKs read the request's headers when an error is made, so it names the
            # request the stream answered.
            request = httpx.Request("POST", f"{self.client.base_url}responses")
            raise openai.APIError(final.type, request=request, body=None)
        assert [e.sequence_number for e in events] == list(range(len(events)))
        kinds = [e.type for e in events]
        assert kinds[:2] == ["response.created", "response.in_progress"], kinds
        assert final.type in ("response.completed", "response.incomplete"), kinds
        response = final.response
        text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
        assert text == response.output_text
        arguments: dict[str, str] = {}
        for event in events:
            if event.type == "response.function_call_arguments.delta":
                arguments[event.item_id] = arguments.get(event.item_id, "") + event.delta
        for item in response.output:
            if item.type == "function_call":
                assert arguments.get(item.id, item.arguments) == item.arguments
        added = [e.item.id for e in events if e.type == "response.output_item.added"]
        done = [e.item.id for e in events if e.type == "response.output_item.done"]
        assert added == done == [item.id for item in response.output]
        return response

    def tool_round_trip(self, model: str, answer: Answer, result: str) -> Answer:
        history = [
            {"role": "user", "content": "weather?"},
            *(item.model_dump(exclude_none=True) for item in answer.raw.output),
            *(
                {"type": "function_call_output", "call_id": call_id, "output": result}
                for call_id, _, _ in answer.tool_calls
            ),
        ]
        return self.ask(model, "", tools=[WEATHER_TOOL], history=history)
