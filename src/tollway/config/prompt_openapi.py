"""The OpenAPI 3.1 document of prompt APIs: one per API (its serving version's input and
output schemas, its errors, its auth), and one for everything an app is subscribed to.

JSON Schema 2020-12 is OpenAPI 3.1's schema language, so the schemas go in as they were
defined; definitions a schema keeps under `$defs` move to `components.schemas` (a `$ref`
resolves against the document's root), renamed per API so that two APIs' never meet.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterable, Mapping
from typing import Any

from tollway.config.prompt_service import VERSION_HEADER

_ERROR = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
            "required": ["message", "type"],
        }
    },
    "required": ["error"],
}
_TEXT = {
    "type": "object",
    "properties": {"text": {"type": "string", "description": "the model's answer"}},
    "required": ["text"],
    "additionalProperties": False,
}
_ERRORS = {
    "400": "the input does not fit the input schema (`param` names the place), or is not JSON",
    "401": "no key, or a key that is unknown, revoked or expired",
    "403": "the key's app is not subscribed to this API (or the subscription is not approved)",
    "429": "a rate limit or concurrency limit was reached (see Retry-After)",
    "502": "the model failed, or its answer did not fit the output schema after a repair",
    "503": "the model is not available",
}


class PromptApiEntry:
    """What the document says of one prompt API."""

    __slots__ = ("definition", "description", "name", "prefix", "version")

    def __init__(
        self,
        name: str,
        prefix: str,
        version: int,
        definition: Mapping[str, Any],
        description: str = "",
    ) -> None:
        self.name = name
        self.prefix = prefix
        self.version = version
        self.definition = definition
        self.description = description


def document(
    entries: Iterable[PromptApiEntry], title: str, server: str | None = None
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the prompt APIs `entries` (at `server`, when given)."""
    schemas: dict[str, Any] = {"Error": _ERROR}
    paths: dict[str, Any] = {}
    versions = []
    for entry in entries:
        tag = _component_name(entry.name)
        input_schema = _lifted(entry.definition["input_schema"], f"{tag}Input", schemas)
        output = entry.definition.get("output_schema")
        output_schema = (
            _lifted(output, f"{tag}Output", schemas) if output is not None else dict(_TEXT)
        )
        schemas[f"{tag}Input"] = input_schema
        schemas[f"{tag}Output"] = output_schema
        versions.append(f"{entry.name} v{entry.version}")
        paths[entry.prefix] = {"post": _operation(entry, tag, output is not None)}
    out: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": ", ".join(versions) or "none",
            "description": "Prompt APIs served by Tollway: each takes its typed input as JSON "
            "and answers with its output.",
        },
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
    if server is not None:
        out["servers"] = [{"url": server}]
    return out


def _operation(entry: PromptApiEntry, tag: str, structured: bool) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
    responses: dict[str, Any] = {
        "200": {
            "description": "the answer, which fits the output schema"
            if structured
            else "the model's answer, as text",
            "headers": {
                "x-tollway-prompt-version": {
                    "description": "the version of the API that answered",
                    "schema": {"type": "string"},
                }
            },
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{tag}Output"}}
            },
        }
    }
    for status, meaning in _ERRORS.items():
        responses[status] = {"description": meaning, "content": error}
    return {
        "operationId": f"call_{re.sub(r'[^A-Za-z0-9_]', '_', entry.name)}",
        "summary": entry.description or f"Call the prompt API {entry.name}",
        "parameters": [
            {
                "name": VERSION_HEADER.decode(),
                "in": "header",
                "required": False,
                "description": "ask for a serving version by number (an A/B test's other)",
                "schema": {"type": "string", "pattern": "^[0-9]{1,9}$"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": f"#/components/schemas/{tag}Input"}}
            },
        },
        "responses": responses,
    }


def _component_name(name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", name)
    return "".join(w[:1].upper() + w[1:] for w in words if w) or "Api"


def _lifted(schema: Mapping[str, Any], prefix: str, schemas: dict[str, Any]) -> dict[str, Any]:
    """`schema` with its `$defs` moved to `schemas` (as `{prefix}_{name}`) and its refs to
    them rewritten."""
    out = copy.deepcopy(dict(schema))
    defs = out.pop("$defs", None) or {}
    renamed = {f"#/$defs/{name}": f"#/components/schemas/{prefix}_{name}" for name in defs}

    def rewrite(node: Any) -> Any:
        if isinstance(node, dict):
            return {
                k: (renamed.get(v, v) if k == "$ref" and isinstance(v, str) else rewrite(v))
                for k, v in node.items()
            }
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    for name, definition in defs.items():
        schemas[f"{prefix}_{name}"] = rewrite(definition)
    rewritten: dict[str, Any] = rewrite(out)
    return rewritten
