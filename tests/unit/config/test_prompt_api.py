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


def test_test_cases_check_answers_as_each_check_says() -> None:
    spec = PromptApiSpec.model_validate(
        {
            **SENTIMENT,
            "tests": [
                {
                    "name": "all kinds",
                    "input": {"text": "x"},
                    "checks": [
                        {"type": "exact", "value": {"label": "positive", "score": 0.9}},
                        {"type": "contains", "text": "positive"},
                        {"type": "regex", "pattern": "score.: 0\\.\\d"},
                        {"type": "json_schema", "json_schema": {"required": ["label"]}},
                        {"type": "field_equals", "field": "label", "value": "positive"},
                    ],
                }
            ],
        }
    )
    output = {"label": "positive", "score": 0.9}
    text = '{"label": "positive", "score": 0.9}'
    checks = spec.tests[0].checks
    assert [c.failure(output, text) for c in checks] == [None] * 5
    other = {"label": "negative", "score": 0.2}
    other_text = '{"label": "negative", "score": 0.2}'
    failures = [c.failure(other, other_text) for c in checks]
    assert failures[0] == "expected {'label': 'positive', 'score': 0.9}, got " + repr(other)
    assert failures[1] == "the answer does not contain 'positive'"
    assert failures[2] is None  # the pattern still matches
    assert failures[3] is None
    assert failures[4] == "label is 'negative', expected 'positive'"
    assert checks[4].failure({"score": 1}, "{}") == "the output has no field 'label'"


@pytest.mark.parametrize(
    ("case", "where"),
    [
        (
            {"name": "x", "input": {"text": 3}, "checks": [{"type": "contains", "text": "a"}]},
            "tests[0].input",
        ),
        ({"name": "x", "input": {"text": "a"}, "checks": []}, "checks"),
        (
            {"name": "x", "input": {"text": "a"}, "checks": [{"type": "regex", "pattern": "("}]},
            "not a regular expression",
        ),
        ({"name": "x", "input": {"text": "a"}, "checks": [{"type": "nope"}]}, "type"),
    ],
)
def test_a_test_case_that_cannot_run_is_refused(case: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as info:
        PromptApiSpec.model_validate({**SENTIMENT, "tests": [case]})
    assert where in str(info.value)


def test_test_case_names_are_distinct() -> None:
    case = {"name": "same", "input": {"text": "a"}, "checks": [{"type": "contains", "text": "a"}]}
    with pytest.raises(ValidationError, match="each test case has its own name"):
        PromptApiSpec.model_validate({**SENTIMENT, "tests": [case, case]})
