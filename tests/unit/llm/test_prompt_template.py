"""Prompt templates: placeholders parsed once, typed input checked with each problem named,
values rendered as data (never as template code), oversized input refused before parsing."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tollway.llm.prompt_template import (
    InputError,
    Placeholder,
    PromptTemplate,
    TemplateError,
    parse_text,
)

SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "text": {"type": "string", "minLength": 1, "maxLength": 2000},
        "language": {"type": "string", "enum": ["en", "fr"]},
        "labels": {"type": "array", "items": {"type": "string"}, "maxItems": 5},
    },
    "required": ["text"],
    "additionalProperties": False,
}
MESSAGES = [
    {"role": "system", "content": "Classify the sentiment. Labels: {{labels}}."},
    {"role": "user", "content": "I love it"},
    {"role": "assistant", "content": '{"label": "positive"}'},
    {"role": "user", "content": "({{ language }}) {{text}}"},
]


def template() -> PromptTemplate:
    return PromptTemplate(MESSAGES, SCHEMA)


def test_a_template_renders_its_variables_in_place() -> None:
    t = template()
    assert t.variables == ("labels", "language", "text")
    rendered = t.render(t.check_input({"text": "Great!", "language": "en", "labels": ["a", "b"]}))
    assert rendered[0] == {
        "role": "system",
        "content": 'Classify the sentiment. Labels: ["a","b"].',
    }
    assert rendered[1:3] == MESSAGES[1:3]  # few-shot examples untouched
    assert rendered[3] == {"role": "user", "content": "(en) Great!"}
    # An optional variable left out renders as nothing.
    assert t.render(t.check_input({"text": "ok"}))[3]["content"] == "() ok"


@pytest.mark.parametrize(
    "value",
    [
        "{{ language }}",
        "{{text}}{{text}}",
        "{% for x in y %}{{ x.__class__ }}{% endfor %}",
        "${text} %(text)s {text} {0}",
        "\\{{ text }}",
    ],
)
def test_a_value_that_looks_like_template_code_is_sent_as_written(value: str) -> None:
    t = template()
    rendered = t.render(t.check_input({"text": value, "language": "fr"}))
    assert rendered[3]["content"] == f"(fr) {value}"


@given(st.text(max_size=200))
def test_any_text_value_comes_out_exactly_once_and_unchanged(value: str) -> None:
    t = PromptTemplate(
        [{"role": "user", "content": "<{{x}}>"}],
        {
            "type": "object",
            "properties": {"x": {"type": "string"}},
        },
    )
    assert t.render({"x": value}) == [{"role": "user", "content": f"<{value}>"}]


def test_the_input_is_checked_and_each_problem_named_by_its_place() -> None:
    t = template()
    with pytest.raises(InputError) as info:
        t.check_input({"language": "de", "labels": ["a", 3], "extra": 1})
    paths = {p.path for p in info.value.problems}
    assert paths == {"$", "$.language", "$.labels[1]"}
    messages = " ".join(p.message for p in info.value.problems)
    assert "'text' is a required property" in messages
    assert "'extra' was unexpected" in messages
    assert "'de' is not one of ['en', 'fr']" in messages
    with pytest.raises(InputError, match=r"^\$: the input is a JSON object"):
        t.check_input(["text"])
    with pytest.raises(InputError, match=r"^\$.text: '' should be non-empty"):
        t.check_input({"text": ""})


def test_raw_input_is_refused_when_too_big_before_it_is_parsed() -> None:
    t = PromptTemplate(MESSAGES, SCHEMA, max_input_bytes=100)
    big = orjson.dumps({"text": "x" * 200})
    with pytest.raises(InputError, match=r"\$: the input is 211 bytes, more than the 100"):
        t.read_input(big)
    with pytest.raises(InputError, match="not valid JSON"):
        t.read_input(b'{"text": ')
    assert t.read_input(b'{"text": "fine"}') == {"text": "fine"}


def test_a_literal_double_brace_is_escaped() -> None:
    assert parse_text("a \\{{ b }} c {{d}}") == ("a {{ b }} c ", Placeholder("d"))


@pytest.mark.parametrize(
    ("messages", "schema", "problem"),
    [
        ([], SCHEMA, "at least one message"),
        ([{"role": "robot", "content": "x"}], SCHEMA, "messages[0].role"),
        ([{"role": "user", "content": 3}], SCHEMA, "messages[0].content: text"),
        ([{"role": "user", "content": "{{ nope }}"}], SCHEMA, "not a property of input_schema"),
        ([{"role": "user", "content": "{{ text.upper }}"}], SCHEMA, "is not a placeholder"),
        ([{"role": "user", "content": "{{ text | e }}"}], SCHEMA, "is not a placeholder"),
        ([{"role": "user", "content": "{{}}"}], SCHEMA, "is not a placeholder"),
        ([{"role": "user", "content": "x"}], {"type": "string"}, "the input is an object"),
        ([{"role": "user", "content": "x"}], {"type": "nonsense"}, "not a valid JSON Schema"),
    ],
)
def test_a_template_that_cannot_work_is_refused_when_defined(
    messages: list[dict[str, Any]], schema: dict[str, Any], problem: str
) -> None:
    with pytest.raises(TemplateError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        PromptTemplate(messages, schema)
