"""Answers that must be JSON of a schema: read through a model's usual slips (a fence, prose
around the value), checked with each problem named, and the one repair turn asked for."""

from __future__ import annotations

import json

import pytest

from tollway.llm.prompt_template import TemplateError
from tollway.llm.structured_output import OutputSchema

SENTIMENT = OutputSchema(
    {
        "type": "object",
        "properties": {
            "label": {"enum": ["positive", "negative", "neutral"]},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["label", "score"],
        "additionalProperties": False,
    }
)


@pytest.mark.parametrize(
    "text",
    [
        '{"label": "positive", "score": 0.93}',
        '  {"label":"positive","score":0.93}\n',
        '```json\n{"label": "positive", "score": 0.93}\n```',
        'Sure! Here it is:\n```\n{"label": "positive", "score": 0.93}\n```\nAnything else?',
        'The answer is {"label": "positive", "score": 0.93} as requested.',
    ],
)
def test_a_fitting_value_is_read_through_the_usual_slips(text: str) -> None:
    checked = SENTIMENT.read(text)
    assert checked.fits and checked.value == {"label": "positive", "score": 0.93}


def test_an_almost_fitting_answer_is_named_and_a_repair_asked_once() -> None:
    answer = '{"label": "great", "score": 1.5, "why": "x"}'
    checked = SENTIMENT.read(answer)
    assert not checked.fits
    assert any(p.startswith("$.label:") for p in checked.problems)
    assert any(p.startswith("$.score: 1.5 is greater than the maximum") for p in checked.problems)
    assert any("'why' was unexpected" in p for p in checked.problems)
    follow = SENTIMENT.repair_messages(answer, checked)
    assert follow[0] == {"role": "assistant", "content": answer}
    assert follow[1]["role"] == "user"
    assert json.dumps(SENTIMENT.schema, separators=(",", ":")) in follow[1]["content"]
    assert "$.label" in follow[1]["content"]


@pytest.mark.parametrize("text", ["", "positive", '{"label": "positive", "score": 0.9', "```"])
def test_an_answer_with_no_json_is_said_to_be_so(text: str) -> None:
    checked = SENTIMENT.read(text)
    assert checked.problems == ("the answer is not JSON",)


def test_an_output_schema_must_be_a_schema() -> None:
    with pytest.raises(TemplateError, match="output_schema: not a valid JSON Schema"):
        OutputSchema({"type": 7})
