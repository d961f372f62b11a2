"""A REST service's OpenAPI document read as MCP tools: each operation's name, its input
schema (parameters by name, the JSON body as `body`, local $refs inlined), its output schema,
the HTTP request its arguments make; documents that cannot be read are refused saying where."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tollway.config.mcp_server import McpServerSpec
from tollway.config.rest_openapi import OpenApiConfig
from tollway.config.rest_operations import DocumentError, operations_of

ITEM = {
    "type": "object",
    "properties": {
        "id": {"type": "string"},
        "tags": {"type": "array", "items": {"$ref": "#/components/schemas/Tag"}},
    },
    "required": ["id"],
}
DOCUMENT: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "items", "version": "1"},
    "components": {
        "schemas": {"Item": ITEM, "Tag": {"type": "string", "maxLength": 20}},
        "parameters": {
            "Trace": {"name": "X-Trace", "in": "header", "schema": {"type": "string"}},
        },
    },
    "paths": {
        "/items/{item_id}": {
            "parameters": [
                {"name": "item_id", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "get": {
                "operationId": "getItem",
                "summary": "Read an item.",
                "parameters": [
                    {"name": "verbose", "in": "query", "schema": {"type": "boolean"}},
                    {"$ref": "#/components/parameters/Trace"},
                    {"name": "session", "in": "cookie", "schema": {"type": "string"}},
                ],
                "responses": {
                    "200": {
                        "description": "the item",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}
                        },
                    }
                },
            },
            "delete": {"responses": {"204": {"description": "gone"}}},
        },
        "/items": {
            "post": {
                "operationId": "createItem",
                "description": "Create an item.",
                "parameters": [
                    {
                        "name": "tag",
                        "in": "query",
                        "schema": {"type": "array", "items": {"type": "string"}},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Item"}}
                    },
                },
                "responses": {"201": {"description": "made", "content": {"text/plain": {}}}},
            }
        },
    },
}


def test_each_operation_is_a_tool_with_its_inputs_by_name() -> None:
    found = operations_of(DOCUMENT)
    assert set(found) == {"getItem", "delete_items__item_id_", "createItem"}
    get = found["getItem"]
    assert get.method == "GET" and get.read_only and get.idempotent
    assert get.description == "Read an item."
    assert get.input_schema == {
        "type": "object",
        "properties": {
            "item_id": {"type": "string"},
            "verbose": {"type": "boolean"},
            "X-Trace": {"type": "string"},
        },
        "required": ["item_id"],
    }
    # The answer's schema, its $refs inlined (a tool carries whole schemas).
    assert get.output_schema is not None
    assert get.output_schema["properties"]["tags"]["items"] == {"type": "string", "maxLength": 20}
    create = found["createItem"]
    assert create.body and create.method == "POST" and not create.read_only
    assert create.input_schema["required"] == ["body"]
    assert create.input_schema["properties"]["body"]["required"] == ["id"]
    assert create.output_schema is None  # its answer is not JSON
    assert found["delete_items__item_id_"].description == "DELETE /items/{item_id}"


def test_arguments_make_the_request_the_operation_describes() -> None:
    found = operations_of(DOCUMENT)
    path, query, headers = found["getItem"].request(
        {"item_id": "a/b c", "verbose": True, "X-Trace": "t-1"}
    )
    assert path == "/items/a%2Fb%20c"
    assert query == b"verbose=true"
    assert headers == [("x-trace", "t-1")]
    path, query, headers = found["createItem"].request({"tag": ["x", "y&z"], "body": {"id": "1"}})
    assert (path, query, headers) == ("/items", b"tag=x&tag=y%26z", [])
    # A header value that would end the header (and start another) is refused.
    with pytest.raises(ValueError, match="X-Trace"):
        found["getItem"].request({"item_id": "1", "X-Trace": "t\r\nx-admin: yes"})


def test_allow_and_deny_choose_the_operations_offered() -> None:
    assert set(operations_of(DOCUMENT, allow=["get*", "create*"], deny=["create*"])) == {"getItem"}


def test_a_schema_that_refers_to_itself_is_cut_not_followed_forever() -> None:
    document = {
        "openapi": "3.0.3",
        "components": {
            "schemas": {
                "Node": {
                    "type": "object",
                    "properties": {"child": {"$ref": "#/components/schemas/Node"}},
                }
            }
        },
        "paths": {
            "/nodes": {
                "get": {
                    "operationId": "nodes",
                    "responses": {
                        "200": {
                            "description": "a tree",
                            "content": {
                                "application/json": {
                                    "schema": {"$ref": "#/components/schemas/Node"}
                                }
                            },
                        }
                    },
                }
            }
        },
    }
    schema = operations_of(document)["nodes"].output_schema
    depth = 0
    while schema and "properties" in schema:
        schema = schema["properties"]["child"]
        depth += 1
    assert 1 < depth <= 9 and schema == {}


@pytest.mark.parametrize(
    ("document", "said"),
    [
        ({"swagger": "2.0", "paths": {}}, "openapi"),
        ({"openapi": "3.1.0"}, "paths"),
        ({"openapi": "3.1.0", "paths": {"items": {}}}, "paths.items"),
        (
            {"openapi": "3.1.0", "paths": {"/a/{id}": {"get": {"responses": {}}}}},
            "the path parameter id is not described",
        ),
        (
            {
                "openapi": "3.1.0",
                "paths": {
                    "/a": {"get": {"operationId": "same"}},
                    "/b": {"get": {"operationId": "same"}},
                },
            },
            "is used twice",
        ),
        (
            {
                "openapi": "3.1.0",
                "paths": {"/a": {"get": {"parameters": [{"$ref": "other.yaml#/x"}]}}},
            },
            "only references within the document",
        ),
        (
            {"openapi": "3.1.0", "paths": {"/a": {"get": {"parameters": [{"$ref": "#/nothing"}]}}}},
            "#/nothing does not exist",
        ),
        (
            {
                "openapi": "3.1.0",
                "paths": {
                    "/a": {"get": {"parameters": [{"name": "Authorization", "in": "header"}]}}
                },
            },
            "cannot be a header here",
        ),
    ],
)
def test_documents_that_cannot_be_read_are_refused_saying_where(
    document: dict[str, Any], said: str
) -> None:
    with pytest.raises(DocumentError, match=said):
        operations_of(document)
    with pytest.raises(ValidationError, match="document"):
        OpenApiConfig(document=document)


def test_a_document_json_cannot_carry_is_refused() -> None:
    with pytest.raises(ValidationError, match="cannot be written as JSON"):
        OpenApiConfig(document={**DOCUMENT, "x-big": 2**70})


def test_an_mcp_server_is_reached_one_way_only() -> None:
    assert McpServerSpec(url="http://127.0.0.1:1/mcp").transport == "http"
    stdio = McpServerSpec(transport="stdio", command=["python", "-m", "server"], cwd="/srv")
    assert stdio.max_memory_mb == 1024
    with pytest.raises(ValidationError, match="gives `command`"):
        McpServerSpec(transport="stdio", url="http://127.0.0.1:1/mcp", cwd="/srv")
    with pytest.raises(ValidationError, match="absolute path"):
        McpServerSpec(transport="stdio", command=["server"], cwd="relative")
    with pytest.raises(ValidationError, match="gives `url`"):
        McpServerSpec(transport="sse", command=["server"])
    with pytest.raises(ValidationError, match="for stdio servers"):
        McpServerSpec(url="http://127.0.0.1:1/mcp", pass_env=["HOME"])
