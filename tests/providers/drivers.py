"""One driver per client SDK: the same questions asked through each official SDK, answers
reduced to a common shape so that one conformance suite can judge every pair."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai

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
