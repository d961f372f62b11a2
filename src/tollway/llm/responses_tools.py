"""The Responses API's tools as canonical functions, for a translated call
(llm/responses_request.py), and the canonical calls back as the client's tool items
(llm/responses_output.py).

- A function tool is a function. A custom (freeform) tool, whose input is plain text, is a
  function taking one string, `input`; its grammar, if any, is appended to its description
  (the model cannot be held to it). A namespace's tools are functions named
  `<namespace>__<name>`.
- Tools may come in the input too: an `additional_tools` item adds its tools from there on
  (Codex sends its tools so), and a `tool_search_output` item adds the tools a client-run
  tool search found. A tool with `defer_loading` is not shown until a search loads it.
- A client-run `tool_search` tool is a function `tool_search` with the tool's parameters; the
  model's call of it comes back as a `tool_search_call` item.
- Built-in tools that only a provider's own Responses API runs (web search, file search, code
  interpreter, computer use, image generation, MCP, shell) are left out: the model works
  without them. A `tool_choice` that forces one is refused with a 400.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from tollway.errors import GatewayError

# A custom tool's one parameter, as the canonical function that stands for it.
CUSTOM_INPUT = "input"
_CUSTOM_PARAMETERS = {
    "type": "object",
    "properties": {CUSTOM_INPUT: {"type": "string", "description": "The tool's input."}},
    "required": [CUSTOM_INPUT],
    "additionalProperties": False,
}
_NAMESPACE_SEPARATOR = "__"
TOOL_SEARCH = "tool_search"
_SEARCH_PARAMETERS = {
    "type": "object",
    "properties": {"query": {"type": "string"}},
    "required": ["query"],
}
_SEARCH_DESCRIPTION = "Search for more tools by what they do; the tools found become callable."


def _bad(message: str, param: str | None = None) -> GatewayError:
    return GatewayError(400, message, param=param, code="invalid_value")


@dataclass(frozen=True, slots=True)
class ClientTool:
    """A tool as the client declared it: a function or custom tool, in a namespace or not, or
    the client-run tool search."""

    kind: str  # "function", "custom" or "tool_search"
    name: str
    namespace: str | None = None


def canonical_name(name: str, namespace: str | None) -> str:
    return namespace + _NAMESPACE_SEPARATOR + name if namespace else name


def declared_tools(request: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every tool the model may be shown, with where it was declared (for errors): the
    request's, then those the input adds (additional_tools, tool_search_output)."""
    found: list[tuple[str, dict[str, Any]]] = []
    tools = request.get("tools")
    if isinstance(tools, list):
        found.extend((f"tools[{i}]", t) for i, t in enumerate(tools) if isinstance(t, dict))
    items = request.get("input")
    if isinstance(items, list):
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                continue
            adds = item.get("type") in ("additional_tools", "tool_search_output")
            if adds:
                added = item.get("tools")
                if isinstance(added, list):
                    found.extend(
                        (f"input[{i}].tools[{j}]", t)
                        for j, t in enumerate(added)
                        if isinstance(t, dict)
                    )
    return found


def _loaded(request: dict[str, Any]) -> set[str]:
    """The names of the tools a tool search has loaded (shown even if deferred)."""
    names: set[str] = set()
    for where, tool in declared_tools(request):
        if where.startswith("input[") and isinstance(tool.get("name"), str):
            names.add(tool["name"])
    return names


def _shown(tool: dict[str, Any], loaded: set[str]) -> bool:
    return not tool.get("defer_loading") or tool.get("name") in loaded


def tool_names(request: dict[str, Any]) -> dict[str, ClientTool]:
    """The client's tools by their canonical function names."""
    found: dict[str, ClientTool] = {}
    for _, tool in declared_tools(request):
        kind = tool.get("type")
        name = tool.get("name")
        if kind in ("function", "custom") and isinstance(name, str):
            found[name] = ClientTool(kind, name)
        elif kind == "namespace" and isinstance(name, str):
            for inner in tool.get("tools") or []:
                inner_name = inner.get("name") if isinstance(inner, dict) else None
                if isinstance(inner_name, str) and inner.get("type") in ("function", "custom"):
                    found[canonical_name(inner_name, name)] = ClientTool(
                        inner["type"], inner_name, name
                    )
        elif kind == TOOL_SEARCH and tool.get("execution") == "client":
            found[TOOL_SEARCH] = ClientTool(TOOL_SEARCH, TOOL_SEARCH)
    return found


def _function(tool: dict[str, Any], name: str, where: str) -> dict[str, Any]:
    kind = tool.get("type")
    if kind == "custom":
        function: dict[str, Any] = {"name": name, "parameters": _CUSTOM_PARAMETERS}
        description = tool.get("description") or ""
        grammar = tool.get("format")
        if isinstance(grammar, dict) and grammar.get("type") == "grammar":
            # The model cannot be held to the grammar here: it is told it instead.
            description += (
                f"\n\nThe input must follow this {grammar.get('syntax', '')} grammar:\n"
                f"{grammar.get('definition', '')}"
            )
        if description:
            function["description"] = description.strip()
        return {"type": "function", "function": function}
    if kind != "function":
        raise _bad(f"{where}.type must be 'function' or 'custom'.", f"{where}.type")
    function = {"name": name, "parameters": tool.get("parameters") or {"type": "object"}}
    if tool.get("description"):
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = bool(tool["strict"])
    return {"type": "function", "function": function}


def _converted(request: dict[str, Any]) -> Iterable[dict[str, Any]]:
    loaded = _loaded(request)
    seen: set[str] = set()
    for where, tool in declared_tools(request):
        kind = tool.get("type")
        name = tool.get("name")
        if kind in ("function", "custom", "namespace") and (not isinstance(name, str) or not name):
            raise _bad(f"{where}.name is required.", f"{where}.name")
        if kind in ("function", "custom") and isinstance(name, str):
            if _shown(tool, loaded) and name not in seen:
                seen.add(name)
                yield _function(tool, name, where)
        elif kind == "namespace":
            for j, inner in enumerate(tool.get("tools") or []):
                at = f"{where}.tools[{j}]"
                inner_name = inner.get("name") if isinstance(inner, dict) else None
                if not isinstance(inner_name, str) or not inner_name:
                    raise _bad(f"{at}.name is required.", f"{at}.name")
                flat = canonical_name(inner_name, name)
                if flat not in seen and (_shown(tool, loaded) or inner_name in loaded):
                    seen.add(flat)
                    yield _function(inner, flat, at)
        elif kind == TOOL_SEARCH and tool.get("execution") == "client":
            seen.add(TOOL_SEARCH)
            function = {
                "name": TOOL_SEARCH,
                "description": tool.get("description") or _SEARCH_DESCRIPTION,
                "parameters": tool.get("parameters") or _SEARCH_PARAMETERS,
            }
            yield {"type": "function", "function": function}
        # Any other tool is a built-in one: left out (a tool_choice forcing it is refused).


def convert_tools(request: dict[str, Any], out: dict[str, Any]) -> None:
    """The request's tools and tool_choice in the canonical form."""
    converted = list(_converted(request))
    if converted:
        out["tools"] = converted
    choice = request.get("tool_choice")
    if choice is None:
        return
    if choice in ("auto", "none", "required"):
        if converted:  # with no tools left, there is no choice to make
            out["tool_choice"] = choice
        return
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind in ("function", "custom") and isinstance(choice.get("name"), str):
        name = canonical_name(choice["name"], choice.get("namespace"))
        out["tool_choice"] = {"type": "function", "function": {"name": name}}
    elif kind == "allowed_tools":
        allowed = {
            canonical_name(t.get("name", ""), t.get("namespace"))
            for t in choice.get("tools") or []
            if isinstance(t, dict)
        }
        out["tools"] = [t for t in converted if t["function"]["name"] in allowed]
        out["tool_choice"] = "required" if choice.get("mode") == "required" else "auto"
    elif isinstance(kind, str):
        raise _bad(
            f"tool_choice: {kind!r} is a built-in tool that only a provider with its own "
            "Responses API runs; this model takes function and custom tools.",
            "tool_choice",
        )
    else:
        raise _bad(
            "tool_choice must be 'auto', 'none', 'required', a function or custom tool, or "
            "allowed_tools.",
            "tool_choice",
        )
