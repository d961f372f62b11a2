"""The compact counter (llm/bpe.py) against tiktoken's own encoder, built from the same
published table: the counts must be the same, token for token, whatever the text."""

from __future__ import annotations

import binascii
import functools
import random
from pathlib import Path

import pytest
import tiktoken

from tollway.llm import tokens
from tollway.llm.bpe import BpeTable

ENCODINGS = ["cl100k_base", "o200k_base"]
ROOT = Path(__file__).resolve().parents[3]

# Characters from every class the encodings' patterns tell apart: letters of each case,
# marks, numbers of several scripts, punctuation, whitespace of every kind, symbols, emoji
# with modifiers and joiners, and the apostrophe of contractions.
ALPHABET = (
    "abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 "
    "\n\t\r\x0b\x0c\u00a0\u2003\u3000 .,;:!?'\"()[]{}<>/\\-_=+*&^%$#@~`| "
    "éüßñÆøÅĳǅ ΩπΣ ЖжЯ 日本語中文 한국어 ٱلعربية हिन्दी ١٢٣ ⅣⅫ \U0001d7d9\U0001d7da "
    "🎉👍🏽👨\u200d👩\u200d👧 e\u0301 \u0301\u0308 's 't 're 've 'm 'll 'd 'S 'LL"
)


@functools.cache
def reference(name: str) -> tiktoken.Encoding:
    """tiktoken's compiled encoder over the bundled table: the judge."""
    ranks = {
        binascii.a2b_base64(line.split()[0]): int(line.split()[1])
        for line in tokens._published(name).splitlines()
    }
    return tiktoken.Encoding(
        name=f"{name}-reference",
        pat_str=tokens.pattern(name),
        mergeable_ranks=ranks,
        special_tokens={},
    )


def expected(name: str, text: str) -> int:
    return len(reference(name).encode(text, disallowed_special=()))


def random_texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choices(ALPHABET, k=rng.randint(0, 120))) for _ in range(count)]


EDGES = [
    "",
    " ",
    "hello world",
    "<|endoftext|> looks special but is text <|endofprompt|>",
    "   \n\n  \t  x   \n",
    "trailing spaces   ",
    "12345678901234567890 1,234.56 0x1F",
    "Supercalifragilisticexpialidocious antidisestablishmentarianism",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    # Runs of one byte: their pairs tie, and the leftmost merges first.
    "=" * 41 + " " + "-" * 33 + " " + "_" * 17 + " " + "*" * 13 + "~" * 7,
    "Ünïcödé, 日本語のテキスト, emoji 🎉🎉 and numbers 1234567890",
    "A lone surrogate \ud800 and another \udfff, and a pair \ud83c\udf89 as two",
    "I'M SHOUTING, YOU'RE NOT, WE'LL SEE, THEY'D KNOW",
    "def f(x):\n    return {'a': [1, 2, 3]}  # code\r\n\r\n\tindented\u00a0nbsp",
]


@pytest.mark.parametrize("name", ENCODINGS)
def test_edge_cases_count_as_tiktoken_counts_them(name: str) -> None:
    table = tokens.table(name)
    for text in EDGES:
        assert table.count(text) == expected(name, text), repr(text)


@pytest.mark.parametrize("name", ENCODINGS)
def test_random_text_of_every_character_class_counts_as_tiktoken_counts_it(name: str) -> None:
    table = tokens.table(name)
    wrong = [
        text
        for text in random_texts(seed=14, count=1500)
        if table.count(text) != expected(name, text)
    ]
    assert wrong == []


@pytest.mark.parametrize("name", ENCODINGS)
def test_this_projects_own_code_and_docs_count_as_tiktoken_counts_them(name: str) -> None:
    table = tokens.table(name)
    files = sorted((ROOT / "src" / "tollway" / "llm").glob("*.py")) + sorted(
        (ROOT / "docs").glob("*.md")
    )
    assert len(files) > 10
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert table.count(text) == expected(name, text), path.name


@pytest.mark.parametrize("name", ENCODINGS)
def test_long_pieces_count_as_tiktoken_counts_them(name: str) -> None:
    """Pieces of thousands of bytes (a run of one letter, spaces, a word with no break, a
    model repeating itself): merged through a heap, in n log n steps."""
    rng = random.Random(16)
    table = tokens.table(name)
    texts = [
        "a" * 6000,
        " " * 4000 + "x",
        "ha" * 2500,
        "".join(rng.choices("bcdfghjklmnpqrstvwxz", k=5000)),
        "".join(rng.choices("0123456789abcdef", k=3000)),
        "=" * 3001 + "!" * 999,
        bytes(range(256)).decode("latin-1") * 8,
    ]
    for text in texts:
        assert table.count(text) == expected(name, text), text[:20]


def test_all_the_docs_in_one_text_are_counted_exactly() -> None:
    """~260 KB of prose and tables in one count: well within what one count merges exactly."""
    text = "".join(
        path.read_text(encoding="utf-8") for path in sorted((ROOT / "docs").glob("*.md"))
    )
    assert len(text) > 200_000
    assert tokens.table("o200k_base").count(text) == expected("o200k_base", text)


def test_text_past_the_merge_limits_is_estimated_close_to_its_count() -> None:
    """A piece too long to merge whole, and many long pieces past one count's budget, are
    estimated (the worker's loop is not held for minutes); the estimate stays close."""
    table = tokens.table("o200k_base")
    rng = random.Random(17)
    run = "a" * 100_000
    consonants = "".join(rng.choices("bcdfghjklmnpqrstvwxz", k=40_000))
    many = " ".join("".join(rng.choices("bcdfghjklmnpqrstvwxz", k=3000)) for _ in range(80))
    for text in (run, consonants, many):
        exact = expected("o200k_base", text)
        assert abs(table.count(text) - exact) <= exact * 0.05, (text[:10], exact)


def test_every_token_of_the_table_is_found_at_its_rank() -> None:
    table = tokens.table("cl100k_base")
    for line in tokens._published("cl100k_base").splitlines():
        token, rank = line.split()
        assert table.rank(binascii.a2b_base64(token)) == int(rank)
    assert table.rank(b"no such token, surely") == -1
    assert len(table) == 100256


def test_counts_of_known_pieces_stay_right_when_their_memory_fills() -> None:
    table = tokens.table("o200k_base")
    texts = random_texts(seed=15, count=400)
    first = [table.count(text) for text in texts]
    # Fill the memory of known pieces past its size, so that it is cleared midway.
    for i in range(10_000):
        table.count(f" w{i}x")
    assert [table.count(text) for text in texts] == first
    assert first == [expected("o200k_base", text) for text in texts]


def test_a_table_whose_ranks_are_out_of_order_is_refused() -> None:
    with pytest.raises(ValueError, match="out of order"):
        BpeTable.from_published(b"YQ== 0\nYg== 2\n", tokens.pattern("cl100k_base"))


def test_a_small_table_merges_lowest_rank_first() -> None:
    # a, b, c, then "ab" (rank 3) before "bc" (rank 4): "abc" is "ab" + "c", two tokens;
    # "bcb" has no "cb": "bc" + "b".
    published = b"".join(
        b"%s %d\n" % (binascii.b2a_base64(token, newline=False), rank)
        for rank, token in enumerate([b"a", b"b", b"c", b"ab", b"bc"])
    )
    table = BpeTable.from_published(published, r"\S+|\s+")
    assert table.count("abc") == 2
    assert table.count("bcb") == 2
    assert table.count("ab") == 1
    assert table.count("abab") == 2
