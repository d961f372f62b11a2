"""OpenAI's Responses API as a client-facing format, the request half: a Responses request as
a canonical chat request, so that Responses clients (Codex CLI, the `openai` SDK's
`responses` client, agent frameworks) can use every provider, not only those with a
/responses endpoint of their own. The answer half is llm/responses_output.py.

Rules where the canonical form (OpenAI Chat Completions) has no exact counterpart:
- `instructions` is the first system message; `developer` messages are system messages (the
  canonical form's providers do not all know the developer role).
- Tools: llm/responses_tools.py (functions, custom and namespaced tools, tools the input
  adds, a client-run tool search; built-in tools are left out).
- `reasoning.effort` is `reasoning_effort` ("minimal" is "low", "xhigh" and "max" are
  "high", "none" asks for none); `text.format` is `response_format`; `max_output_tokens` is
  `max_tokens`.
- A reasoning item in the input carries its text on to the next assistant turn; its
  `encrypted_content`, when this gateway wrote it, is the signature Anthropic's models need
  to see their own thinking again.
- The state the Responses API keeps upstream (`conversation`, `background`, stored
  `prompt`s) is refused with a 400 that names it: only a provider with its own Responses API
  can honour it. `previous_response_id` is resolved by the
  gateway's own stored responses before this translation (proxy/handlers/responses.py); it
  is refused here only where nothing resolved it.
"""

from __future__ import annotations

from typing import Any

import orjson

from tollway.errors import GatewayError
from tollway.llm.responses_tools import CUSTOM_INPUT, TOOL_SEARCH, canonical_name, convert_tools

_EFFORT = {"minimal": "low", "low": "low", "medium": "medium", "high": "high"}
_EFFORT_HIGHEST = ("xhigh", "max")
# State the Responses API keeps upstream, which a translated call cannot have.
_UPSTREAM_STATE = {
    "previous_response_id": "previous_response_id",
    "conversation": "conversation",
    "prompt": "prompt",
}


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_value")


# -- request ------------------------------------------------------------------------------


def to_chat_request(request: dict[str, Any]) -> dict[str, Any]:
    """A Responses request as a canonical chat request."""
    for key, param in _UPSTREAM_STATE.items():
        if request.get(key):
            raise _bad(
                f"'{param}' needs state that only a provider with its own Responses API keeps; "
                "send the whole conversation in 'input' instead (store: false).",
                param,
            )
    if request.get("background"):
        raise _bad("'background' responses are not supported for this model.", "background")
    messages: list[dict[str, Any]] = []
    instructions = request.get("instructions")
    if isinstance(instructions, str) and instructions:
        messages.append({"role": "system", "content": instructions})
    elif instructions is not None and not isinstance(instructions, str):
        raise _bad("'instructions' must be a string.", "instructions")
    raw = request.get("input")
    if isinstance(raw, str):
        messages.append({"role": "user", "content": raw})
    elif isinstance(raw, list):
        _Conversation(messages).add_all(raw)
    elif raw is not None:
        raise _bad("'input' must be a string or an array of items.", "input")
    if not any(m["role"] != "system" for m in messages):
        raise _bad("'input' must contain at least one message.", "input")
    out: dict[str, Any] = {"model": request.get("model"), "messages": messages}
    limit = request.get("max_output_tokens")
    if limit is not None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise _bad("'max_output_tokens' must be a positive integer.", "max_output_tokens")
        out["max_tokens"] = limit
    for key in ("temperature", "top_p", "parallel_tool_calls"):
        if request.get(key) is not None:
            out[key] = request[key]
    user = request.get("safety_identifier") or request.get("user")
    if isinstance(user, str) and user:
        out["user"] = user
    _reasoning(request, out)
    _text_format(request, out)
    convert_tools(request, out)
    if request.get("stream"):
        out["stream"] = True
        out["stream_options"] = {"include_usage": True}
    return out


def _reasoning(request: dict[str, Any], out: dict[str, Any]) -> None:
    reasoning = request.get("reasoning")
    if reasoning is None:
        return
    if not isinstance(reasoning, dict):
        raise _bad("'reasoning' must be an object.", "reasoning")
    effort = reasoning.get("effort")
    if effort in _EFFORT:
        out["reasoning_effort"] = _EFFORT[effort]
    elif effort in _EFFORT_HIGHEST:
        out["reasoning_effort"] = "high"
    elif effort not in (None, "none"):
        raise _bad(f"reasoning.effort: unknown effort {effort!r}.", "reasoning.effort")


def _text_format(request: dict[str, Any], out: dict[str, Any]) -> None:
    text = request.get("text")
    fmt = text.get("format") if isinstance(text, dict) else None
    if fmt is None:
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind == "text":
        return
    if kind == "json_object":
        out["response_format"] = {"type": "json_object"}
        return
    if kind != "json_schema":
        raise _bad(
            "text.format.type must be 'text', 'json_object' or 'json_schema'.", "text.format.type"
        )
    schema = fmt.get("schema")
    if not isinstance(schema, dict):
        raise _bad("text.format.schema: a JSON schema object is required.", "text.format.schema")
    spec: dict[str, Any] = {"name": fmt.get("name") or "response", "schema": schema}
    if fmt.get("strict") is not None:
        spec["strict"] = bool(fmt["strict"])
    if fmt.get("description"):
        spec["description"] = fmt["description"]
    out["response_format"] = {"type": "json_schema", "json_schema": spec}


class _Conversation:
    """Input items -> canonical messages: an assistant turn's text, reasoning and tool calls
    (separate items in the Responses API) become one canonical assistant message."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = messages
        self.assistant: dict[str, Any] | None = None
        self.reasoning: list[str] = []
        self.signatures: list[dict[str, Any]] = []

    def add_all(self, items: list[Any]) -> None:
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise _bad(f"input[{i}] must be an object.", f"input[{i}]")
            self.add(item, f"input[{i}]")

    def add(self, item: dict[str, Any], where: str) -> None:
        kind = item.get("type") or "message"
        if kind == "message":
            self._message(item, where)
        elif kind in ("function_call", "custom_tool_call", "tool_search_call"):
            self._tool_call(item, kind, where)
        elif kind == "additional_tools":
            pass  # its tools are declared ones (responses_tools.declared_tools)
        elif kind == "tool_search_output":
            self.assistant = None
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": _found_tools(item.get("tools")),
                }
            )
        elif kind in ("function_call_output", "custom_tool_call_output"):
            self.assistant = None
            self.messages.append(
                {
                    "role": "tool",
                    "tool_call_id": item.get("call_id"),
                    "content": _output_text(item.get("output"), where),
                }
            )
        elif kind == "reasoning":
            self._reasoning(item)
        elif kind == "item_reference":
            raise _bad(
                f"{where}: item references need stored items, which this model's provider "
                "does not keep; send the item itself.",
                where,
            )
        else:
            raise _bad(
                f"{where}: input item type {kind!r} is not supported by this model.",
                f"{where}.type",
            )

    def _assistant_turn(self) -> dict[str, Any]:
        if self.assistant is None:
            self.assistant = {"role": "assistant", "content": None}
            if self.reasoning:
                self.assistant["reasoning_content"] = "".join(self.reasoning)
            if self.signatures:
                self.assistant["thinking_blocks"] = self.signatures
            self.reasoning, self.signatures = [], []
            self.messages.append(self.assistant)
        return self.assistant

    def _message(self, item: dict[str, Any], where: str) -> None:
        role = item.get("role")
        content = item.get("content")
        if role == "assistant":
            turn = self._assistant_turn()
            text = _text_of(content, where)
            turn["content"] = (turn["content"] or "") + text if text else turn["content"]
            return
        self.assistant = None
        if role not in ("user", "system", "developer"):
            raise _bad(
                f"{where}.role must be 'user', 'assistant', 'system' or 'developer'.",
                f"{where}.role",
            )
        if role != "user":
            self.messages.append({"role": "system", "content": _text_of(content, where)})
        elif isinstance(content, str):
            self.messages.append({"role": "user", "content": content})
        else:
            self.messages.append({"role": "user", "content": _user_parts(content, where)})

    def _tool_call(self, item: dict[str, Any], kind: str, where: str) -> None:
        name = TOOL_SEARCH if kind == "tool_search_call" else item.get("name")
        if not isinstance(name, str) or not name:
            raise _bad(f"{where}.name is required.", f"{where}.name")
        if kind == "tool_search_call":
            arguments = orjson.dumps(item.get("arguments") or {}).decode()
        elif kind == "custom_tool_call":
            arguments = orjson.dumps({CUSTOM_INPUT: item.get("input") or ""}).decode()
        else:
            given = item.get("arguments")
            if given is not None and not isinstance(given, str):
                raise _bad(f"{where}.arguments must be a JSON string.", f"{where}.arguments")
            arguments = given or "{}"
        turn = self._assistant_turn()
        turn.setdefault("tool_calls", []).append(
            {
                "id": item.get("call_id"),
                "type": "function",
                "function": {
                    "name": canonical_name(name, item.get("namespace")),
                    "arguments": arguments,
                },
            }
        )

    def _reasoning(self, item: dict[str, Any]) -> None:
        self.assistant = None
        parts = [*(item.get("content") or []), *(item.get("summary") or [])]
        text = "".join(p.get("text", "") for p in parts if isinstance(p, dict))
        if text:
            self.reasoning.append(text)
        signature = item.get("encrypted_content")
        if isinstance(signature, str) and signature.startswith(SIGNATURE_PREFIX):
            self.signatures.append(
                {
                    "type": "thinking",
                    "thinking": text,
                    "signature": signature[len(SIGNATURE_PREFIX) :],
                }
            )


# What this gateway puts before a thinking block's signature in a reasoning item's
# `encrypted_content`, so that it knows its own when the item comes back.
SIGNATURE_PREFIX = "tollway-thinking:"


def _found_tools(tools: Any) -> str:
    """A tool search's result as the model reads it (the tools themselves are declared)."""
    lines = []
    for tool in tools if isinstance(tools, list) else []:
        if not isinstance(tool, dict):
            continue
        namespace = tool.get("name") if tool.get("type") == "namespace" else None
        for each in tool.get("tools") or [] if namespace else [tool]:
            if isinstance(each, dict) and isinstance(each.get("name"), str):
                name = canonical_name(each["name"], namespace)
                about = each.get("description")
                lines.append(f"- {name}: {about}" if about else f"- {name}")
    return "Tools found, now callable:\n" + "\n".join(lines) if lines else "No tools found."


def _text_of(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or an array of parts.", f"{where}.content")
    texts = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind in ("input_text", "output_text", "text"):
            texts.append(part.get("text") or "")
        elif kind == "refusal":
            texts.append(part.get("refusal") or "")
        else:
            raise _bad(
                f"{where}.content[{j}]: part type {kind!r} is not supported here.",
                f"{where}.content[{j}]",
            )
    return "".join(texts)


def _user_parts(content: Any, where: str) -> list[dict[str, Any]]:
    if not isinstance(content, list):
        raise _bad(f"{where}.content must be a string or an array of parts.", f"{where}.content")
    parts: list[dict[str, Any]] = []
    for j, part in enumerate(content):
        kind = part.get("type") if isinstance(part, dict) else None
        at = f"{where}.content[{j}]"
        if kind in ("input_text", "text"):
            text_part: dict[str, Any] = {"type": "text", "text": part.get("text") or ""}
            if isinstance(part.get("cache_control"), dict):  # a prompt cache breakpoint
                text_part["cache_control"] = part["cache_control"]
            parts.append(text_part)
        elif kind == "input_image":
            url = part.get("image_url")
            if not isinstance(url, str) or not url:
                raise _bad(
                    f"{at}: an image by file_id needs the provider's file store; send "
                    "image_url (a URL or a data URL).",
                    at,
                )
            image: dict[str, Any] = {"url": url}
            if part.get("detail") in ("low", "high", "auto"):
                image["detail"] = part["detail"]
            parts.append({"type": "image_url", "image_url": image})
        elif kind == "input_file" and isinstance(part.get("file_data"), str):
            file: dict[str, Any] = {"file_data": part["file_data"]}
            if part.get("filename"):
                file["filename"] = part["filename"]
            parts.append({"type": "file", "file": file})
        else:
            raise _bad(f"{at}: part type {kind!r} is not supported by this model.", at)
    return parts


def _output_text(output: Any, where: str) -> str:
    if isinstance(output, str):
        return output
    if isinstance(output, list):
        return "".join(p.get("text", "") for p in output if isinstance(p, dict) and "text" in p)
    raise _bad(f"{where}.output must be a string or an array of parts.", f"{where}.output")


# -- input items as a stored response keeps them ---------------------------------------------


def input_items(raw: Any, new_id: Any) -> list[dict[str, Any]]:
    """A request's `input` as the items a stored response keeps and lists back: a string is a
    user message; every item is an object with a type and an id (`new_id(prefix)` makes one
    where the client gave none); message text is in content parts, as the API lists it."""
    if isinstance(raw, str):
        raw = [{"role": "user", "content": raw}]
    elif not isinstance(raw, list):
        raise _bad("'input' must be a string or an array of items.", "input")
    items = []
    for i, given in enumerate(raw):
        if not isinstance(given, dict):
            raise _bad(f"input[{i}] must be an object.", f"input[{i}]")
        item = {"type": "message", **given}
        if item["type"] == "message":
            content = item.get("content")
            if isinstance(content, str):
                part = "output_text" if item.get("role") == "assistant" else "input_text"
                item["content"] = [{"type": part, "text": content}]
            item.setdefault("status", "completed")
        if not isinstance(item.get("id"), str):
            item["id"] = new_id("msg_" if item["type"] == "message" else "item_")
        items.append(item)
    return items
