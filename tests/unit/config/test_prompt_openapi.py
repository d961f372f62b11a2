"""The OpenAPI 3.1 document of prompt APIs: valid (openapi-spec-validator), the schemas as
defined, `$defs` lifted into components with their refs rewritten, one path per API."""

from __future__ import annotations

from typing import Any

from openapi_spec_validator import validate

from tollway.config.prompt_openapi import PromptApiEntry, document

WITH_DEFS: dict[str, Any] = {
    "messages": [{"role": "user", "content": "Tag {{ item }}"}],
    "input_schema": {
        "type": "object",
        "properties": {"item": {"$ref": "#/$defs/Item"}},
        "required": ["item"],
        "$defs": {"Item": {"type": "object", "properties": {"name": {"type": "string"}}}},
    },
    "output_schema": {"type": "array", "items": {"type": "string"}},
    "model": "gpt",
}
TEXT_ONLY: dict[str, Any] = {
    "messages": [{"role": "user", "content": "{{ text }}"}],
    "input_schema": {"type": "object", "properties": {"text": {"type": "string"}}},
    "model": "gpt",
}


def test_one_api_s_document_is_valid_and_keeps_its_schemas() -> None:
    doc = document([PromptApiEntry("ml/tagger", "/apis/tagger", 3, WITH_DEFS)], "Tagger")
    validate(doc)
    operation = doc["paths"]["/apis/tagger"]["post"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/MlTaggerInput"}
    schemas = doc["components"]["schemas"]
    assert schemas["MlTaggerInput"]["properties"]["item"] == {
        "$ref": "#/components/schemas/MlTaggerInput_Item"
    }
    assert "$defs" not in schemas["MlTaggerInput"]
    assert schemas["MlTaggerInput_Item"] == WITH_DEFS["input_schema"]["$defs"]["Item"]
    assert schemas["MlTaggerOutput"] == WITH_DEFS["output_schema"]
    assert set(operation["responses"]) == {"200", "400", "401", "403", "429", "502", "503"}
    assert doc["security"] == [{"bearer": []}]
    assert doc["info"]["version"] == "ml/tagger v3"


def test_a_combined_document_has_each_api_and_a_text_answer_without_schema() -> None:
    doc = document(
        [
            PromptApiEntry("ml/tagger", "/apis/tagger", 1, WITH_DEFS),
            PromptApiEntry("ml/echo", "/apis/echo", 2, TEXT_ONLY),
        ],
        "Everything",
        "http://127.0.0.1:8080",
    )
    validate(doc)
    assert set(doc["paths"]) == {"/apis/tagger", "/apis/echo"}
    assert doc["servers"] == [{"url": "http://127.0.0.1:8080"}]
    text = doc["components"]["schemas"]["MlEchoOutput"]
    assert text["required"] == ["text"]
    ids = {p["post"]["operationId"] for p in doc["paths"].values()}
    assert ids == {"call_ml_tagger", "call_ml_echo"}
