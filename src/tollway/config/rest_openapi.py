"""A REST service version's OpenAPI document: shown in the catalog, and its operations offered
as MCP tools to the apps subscribed to the service (config/rest_operations.py)."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import Field, field_validator, model_validator

from tollway.config.fields import Strict
from tollway.config.rest_operations import DocumentError, operations_of

# A document larger than this (as JSON) is refused: it is held by every worker.
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024


class OpenApiConfig(Strict):
    document: dict[str, Any] = Field(
        description="the service's OpenAPI 3.0 or 3.1 document (JSON or YAML as an object); "
        "paths are under the service's route prefix, local $refs only"
    )
    mcp: bool = Field(True, description="offer its operations as MCP tools")
    allow: list[str] | None = Field(
        None, description="the operations offered as tools (operationIds or patterns)"
    )
    deny: list[str] = Field(default_factory=list, description="operations never offered")

    @field_validator("document")
    @classmethod
    def _size(cls, value: dict[str, Any]) -> dict[str, Any]:
        try:
            size = len(orjson.dumps(value))
        except orjson.JSONEncodeError as exc:  # a number JSON cannot carry (past 64 bits)
            raise ValueError(f"the document cannot be written as JSON: {exc}") from None
        if size > MAX_DOCUMENT_BYTES:
            raise ValueError(f"the document is larger than {MAX_DOCUMENT_BYTES} bytes")
        return value

    @model_validator(mode="after")
    def _readable(self) -> OpenApiConfig:
        try:
            operations_of(self.document)
        except DocumentError as exc:
            raise ValueError(f"document.{exc}") from None
        return self
