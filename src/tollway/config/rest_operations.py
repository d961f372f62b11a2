"""A REST service's operations, from its OpenAPI document, as the data plane offers them to
MCP clients: one tool per operation (docs/mcp.md).

A tool's input is one JSON object: the operation's path, query and header parameters by name,
and its JSON request body as `body`. Its input schema says so, with the document's own
schemas inlined (local `$ref`s resolved), so that clients need nothing but the tool. Its
output schema is the JSON schema of the operation's success answer, where that is an object.

Compiled once per snapshot (no pydantic here: the data plane imports it)."""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import quote, urlencode

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
_READ_ONLY = frozenset(("GET", "HEAD", "OPTIONS"))
_IDEMPOTENT = frozenset(("GET", "HEAD", "OPTIONS", "PUT", "DELETE"))
_TOOL_NAME = re.compile(r"[^A-Za-z0-9_-]")
# How deep `$ref`s are followed; a schema that refers to itself is cut there (any value).
_MAX_REF_DEPTH = 8
_TAKEN_FROM = ("path", "query", "header")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Headers a tool may not set: the gateway's and the hop's own.
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_RESERVED_HEADERS = frozenset(
    ("host", "content-length", "transfer-encoding", "connection", "authorization", "x-api-key")
)


class DocumentError(ValueError):
    """The document cannot be read as OpenAPI 3 (the message says where)."""


@dataclass(frozen=True, slots=True)
class RestOperation:
    """One operation, as an MCP tool."""

    # The tool's own name (the operationId, or method_path), unique in the service.
    name: str
    method: str
    # The path template under the service's prefix, e.g. /pets/{pet_id}.
    path: str
    # (name, where): where is path, query or header.
    parameters: tuple[tuple[str, str], ...]
    # Whether it takes a JSON body (the argument `body`).
    body: bool
    description: str
    input_schema: Mapping[str, Any] = field(hash=False, compare=False)
    output_schema: Mapping[str, Any] | None = field(default=None, hash=False, compare=False)

    @property
    def read_only(self) -> bool:
        return self.method in _READ_ONLY

    @property
    def idempotent(self) -> bool:
        return self.method in _IDEMPOTENT

    def request(self, arguments: Mapping[str, Any]) -> tuple[str, bytes, list[tuple[str, str]]]:
        """The path (under the prefix), query string and headers for `arguments` (checked
        against the input schema already). ValueError: a header value that would break the
        request (a line break or another control character)."""
        path = self.path
        query: list[tuple[str, str]] = []
        headers: list[tuple[str, str]] = []
        for name, where in self.parameters:
            if name not in arguments or arguments[name] is None:
                continue
            value = arguments[name]
            if where == "path":
                path = path.replace("{" + name + "}", quote(_text(value), safe=""))
            elif where == "query":
                items = value if isinstance(value, list) else [value]
                query.extend((name, _text(item)) for item in items)
            else:
                text = _text(value)
                if _CONTROL.search(text):
                    raise ValueError(f"${'.' + name}: a header value without control characters")
                headers.append((name.lower(), text))
        return path, urlencode(query).encode(), headers


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def operations_of(
    document: Mapping[str, Any],
    allow: list[str] | None = None,
    deny: list[str] | None = None,
) -> Mapping[str, RestOperation]:
    """The document's operations by tool name, those `allow` and `deny` leave (operation
    names or fnmatch patterns). DocumentError names what cannot be read."""
    version = document.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise DocumentError("openapi: an OpenAPI 3.0 or 3.1 document (`openapi: 3.x`)")
    paths = document.get("paths")
    if not isinstance(paths, dict):
        raise DocumentError("paths: an object of the API's paths")
    found: dict[str, RestOperation] = {}
    for path, item in paths.items():
        if not isinstance(path, str) or not path.startswith("/") or not isinstance(item, dict):
            raise DocumentError(f"paths.{path}: a path starting with / and an object")
        item = _resolved(document, item, f"paths.{path}")
        shared = item.get("parameters") or []
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            where = f"paths.{path}.{method}"
            if not isinstance(operation, dict):
                raise DocumentError(f"{where}: an object")
            compiled = _operation(document, path, method, operation, shared, where)
            if compiled.name in found:
                raise DocumentError(f"{where}: the operation name {compiled.name} is used twice")
            if _offered(compiled.name, allow, deny or []):
                found[compiled.name] = compiled
    return MappingProxyType(found)


def _offered(name: str, allow: list[str] | None, deny: list[str]) -> bool:
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in deny):
        return False
    return allow is None or any(fnmatch.fnmatchcase(name, pattern) for pattern in allow)


def _operation(
    document: Mapping[str, Any],
    path: str,
    method: str,
    operation: dict[str, Any],
    shared: list[Any],
    where: str,
) -> RestOperation:
    given = operation.get("operationId")
    if given is not None and not isinstance(given, str):
        raise DocumentError(f"{where}.operationId: a string")
    name = _TOOL_NAME.sub("_", given or f"{method}_{path.strip('/')}")[:64] or method
    properties: dict[str, Any] = {}
    required: list[str] = []
    parameters: dict[tuple[str, str], tuple[str, str]] = {}
    for index, raw in enumerate([*shared, *(operation.get("parameters") or [])]):
        parameter = _resolved(document, raw, f"{where}.parameters.{index}")
        place, pname = parameter.get("in"), parameter.get("name")
        if not isinstance(pname, str) or place not in (*_TAKEN_FROM, "cookie"):
            raise DocumentError(f"{where}.parameters.{index}: a name and where it goes (in)")
        if place == "cookie":
            continue  # cookies are the gateway's and the client's business, not a tool's
        if place == "header" and (
            not _HEADER_NAME.fullmatch(pname) or pname.lower() in _RESERVED_HEADERS
        ):
            raise DocumentError(f"{where}.parameters.{index}: {pname!r} cannot be a header here")
        # An operation's own parameter replaces the path item's of that name and place.
        parameters[(pname, place)] = (pname, place)
        described = _inlined(document, parameter.get("schema") or {}, 0)
        if parameter.get("description") and isinstance(described, dict):
            described = {**described, "description": str(parameter["description"])}
        properties[pname] = described
        if parameter.get("required") or place == "path":
            required.append(pname)
    for pname in re.findall(r"{([^}/]+)}", path):
        if (pname, "path") not in parameters:
            raise DocumentError(f"{where}: the path parameter {pname} is not described")
    body = False
    request_body = operation.get("requestBody")
    if request_body is not None:
        request_body = _resolved(document, request_body, f"{where}.requestBody")
        content = request_body.get("content") or {}
        json_body = _json_content(content)
        if json_body is not None:
            body = True
            properties["body"] = _inlined(document, json_body.get("schema") or {}, 0)
            if request_body.get("required"):
                required.append("body")
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = sorted(set(required))
    text = " ".join(
        str(part)
        for part in (operation.get("summary"), operation.get("description"))
        if isinstance(part, str) and part
    )
    return RestOperation(
        name=name,
        method=method.upper(),
        path=path,
        parameters=tuple(parameters.values()),
        body=body,
        description=(text or f"{method.upper()} {path}")[:2000],
        input_schema=schema,
        output_schema=_output(document, operation, where),
    )


def _output(
    document: Mapping[str, Any], operation: dict[str, Any], where: str
) -> Mapping[str, Any] | None:
    responses = operation.get("responses") or {}
    for status in ("200", "201", "2XX", "default"):
        answer = responses.get(status) if isinstance(responses, dict) else None
        if answer is None:
            continue
        answer = _resolved(document, answer, f"{where}.responses.{status}")
        content = _json_content(answer.get("content") or {})
        if content is None:
            return None
        schema = _inlined(document, content.get("schema") or {}, 0)
        return schema if isinstance(schema, dict) and schema.get("type") == "object" else None
    return None


def _json_content(content: Any) -> dict[str, Any] | None:
    if not isinstance(content, dict):
        return None
    for kind, media in content.items():
        if isinstance(kind, str) and kind.split(";")[0].strip().endswith("json"):
            return media if isinstance(media, dict) else {}
    return None


def _resolved(document: Mapping[str, Any], value: Any, where: str) -> dict[str, Any]:
    """`value`, or what its `$ref` points to in the document (local references only)."""
    for _ in range(_MAX_REF_DEPTH):
        if not isinstance(value, dict):
            raise DocumentError(f"{where}: an object")
        ref = value.get("$ref")
        if ref is None:
            return value
        value = _pointed(document, ref, where)
    raise DocumentError(f"{where}: $ref chains too deep")


def _pointed(document: Mapping[str, Any], ref: Any, where: str) -> Any:
    if not isinstance(ref, str) or not ref.startswith("#/"):
        raise DocumentError(f"{where}: only references within the document (#/...) are read")
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise DocumentError(f"{where}: {ref} does not exist")
        node = node[part]
    return node


def _inlined(document: Mapping[str, Any], schema: Any, depth: int) -> Any:
    """`schema` with its local `$ref`s replaced by what they point to (a self-referring
    schema is cut to `{}` past a depth): tools carry whole schemas."""
    if isinstance(schema, list):
        return [_inlined(document, item, depth) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str):
        if depth >= _MAX_REF_DEPTH or not ref.startswith("#/"):
            return {}
        try:
            target = _pointed(document, ref, "$ref")
        except DocumentError:
            return {}
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        inlined = _inlined(document, target, depth + 1)
        return {**inlined, **rest} if isinstance(inlined, dict) else inlined
    return {key: _inlined(document, value, depth) for key, value in schema.items()}
