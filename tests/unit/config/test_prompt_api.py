"""A prompt API's definition: checked whole when defined (template, schemas, parameters), with
the problem placed, and usable as it stands once accepted."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tollway.config.prompt_api import PromptApiSpec

SENTIMENT: dict[str, Any] = {
    "messages": [
        {"role": "system", "content": "Answer with the sentiment of the text as JSON."},
        {"role": "user", "content": "{{ text }}"},
    ],
    "input_schema": {
        "type": "object",
        "properties": {"text": {"type": "string", "maxLength": 5000}},
        "required": ["text"],
    },
    "output_schema": {
        "type": "object",
        "properties": {"label": {"enum": ["positive", "negative"]}, "score": {"type": "number"}},
        "required": ["label", "score"],
    },
    "model": "gpt-4o-mini",
    "parameters": {"temperature": 0, "max_tokens": 50},
}


def test_a_definition_is_accepted_and_renders() -> None:
    spec = PromptApiSpec.model_validate(SENTIMENT)
    template = spec.template()
    rendered = template.render(template.check_input({"text": "I love it"}))
    assert rendered[1] == {"role": "user", "content": "I love it"}
    output = spec.output()
    assert output is not None and output.read('{"label": "positive", "score": 0.9}').fits
    # Kept as given, for the OpenAPI document and the MCP tools.
    assert (
        spec.model_dump(mode="json", exclude_none=True)["input_schema"] == SENTIMENT["input_schema"]
    )


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"messages": [{"role": "user", "content": "{{ txt }}"}]}, "not a property"),
        ({"messages": []}, "messages"),
        ({"input_schema": {"type": "array"}}, "the input is an object"),
        ({"output_schema": {"type": "whatever"}}, "output_schema: not a valid JSON Schema"),
        ({"parameters": {"temperature": 5}}, "parameters.temperature"),
        ({"parameters": {"logit_bias": {}}}, "parameters.logit_bias"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_definition_that_cannot_work_is_refused_with_its_place(
    change: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError) as info:
        PromptApiSpec.model_validate({**SENTIMENT, **change})
    assert where in str(info.value)
