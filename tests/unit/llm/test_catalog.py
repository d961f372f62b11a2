from __future__ import annotations

from decimal import Decimal

import pytest

from tollway.config.compile import compile_config
from tollway.config.load import validate_config
from tollway.llm.catalog import Catalog, ModelInfo, parse, shipped
from tollway.providers.registry import TYPES

CATALOG = shipped()


def test_shipped_catalog_covers_the_providers() -> None:
    assert len(CATALOG) >= 150
    providers = {info.provider for info in CATALOG}
    assert {
        "openai",
        "azure",
        "anthropic",
        "gemini",
        "bedrock",
        "mistral",
        "cohere",
        "groq",
        "together",
        "fireworks",
        "deepseek",
        "xai",
        "perplexity",
    } <= providers
    assert providers - {"gemini", "bedrock", "cohere"} <= set(TYPES)
    for info in CATALOG:
        assert info.context_window > 0, info
        assert info.input >= 0, info
        if info.mode in ("chat", "completion"):
            assert info.output is not None and info.max_output_tokens, info
        elif info.mode not in ("embedding", "moderation"):
            # A media model is priced by its unit, or by the tokens its answers report.
            units = (info.per_image, info.per_second, info.per_character, info.per_search_unit)
            assert any(p is not None for p in units) or info.output is not None, info
    assert len({(i.provider, i.model) for i in CATALOG}) == len(CATALOG)


def test_prices_carry_their_date() -> None:
    from importlib import resources

    text = resources.files("tollway.llm").joinpath("data/models.csv").read_text()
    assert "prices_taken: 2025-08-15" in text


def usage(
    prompt: int, completion: int, cached: int = 0, written: int = 0, reasoning: int = 0
) -> dict[str, object]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "prompt_tokens_details": {"cached_tokens": cached},
        "cache_creation_input_tokens": written,
        "completion_tokens_details": {"reasoning_tokens": reasoning},
    }


def test_cost_counts_cache_reads_and_writes_at_their_prices() -> None:
    info = Catalog(CATALOG).find("anthropic", "claude-sonnet-4-5")
    assert info is not None
    # 400k fresh at 3.00, 500k read at 0.30, 100k written at 3.75, 2k out at 15.00
    cost = info.cost(usage(1_000_000, 2_000, cached=500_000, written=100_000))
    assert cost == Decimal("1.2") + Decimal("0.15") + Decimal("0.375") + Decimal("0.03")


def test_reasoning_billed_apart_when_priced_apart() -> None:
    info = ModelInfo(
        "x", "m", "chat", 1000, 100, Decimal("1"), Decimal("2"), reasoning=Decimal("5")
    )
    assert info.cost(usage(0, 1_000_000, reasoning=400_000)) == Decimal("2") + Decimal("1.2")


def test_embedding_cost_and_exactness() -> None:
    info = Catalog(CATALOG).find("openai", "text-embedding-3-small")
    assert info is not None
    assert info.cost(usage(3, 0)) == Decimal("0.00000006")


def test_find_falls_back_to_the_model_at_any_provider() -> None:
    catalog = Catalog(CATALOG)
    assert catalog.find("vllm", "gpt-4o-mini") is catalog.find("openai", "gpt-4o-mini")
    assert catalog.find("vllm", "my-own-model") is None


def test_config_entries_add_and_override() -> None:
    runtime = compile_config(
        validate_config(
            {
                "providers": {"local": {"type": "vllm", "base_url": "http://127.0.0.1:8000/v1"}},
                "models": {
                    "mine": {"deployments": [{"provider": "local", "model": "llama-local"}]},
                    "gpt": {"deployments": [{"provider": "local", "model": "gpt-4o"}]},
                },
                "catalog": {
                    "llama-local": {
                        "provider": "vllm",
                        "context_window": 8192,
                        "max_output_tokens": 2048,
                        "input": "0",
                        "output": "0",
                    },
                    "gpt-4o": {
                        "provider": "vllm",
                        "context_window": 64000,
                        "max_output_tokens": 4096,
                        "input": "0.5",
                        "output": "1",
                    },
                },
            }
        ),
        {},
    )
    mine = runtime.models["mine"].deployments[0].info
    assert mine is not None and mine.context_window == 8192
    gpt = runtime.models["gpt"].deployments[0].info
    assert gpt is not None and gpt.input == Decimal("0.5")


def test_rows_without_an_input_price_are_refused() -> None:
    with pytest.raises(ValueError, match="no input price"):
        parse(
            "provider,model,mode,context_window,max_output_tokens,input,output,cached_input,"
            "cache_write,reasoning\nx,m,chat,1,1,,,,,\n"
        )


def test_media_calls_cost_their_units() -> None:
    catalog = Catalog(shipped())
    dalle = catalog.find("openai", "dall-e-3")
    whisper = catalog.find("openai", "whisper-1")
    tts = catalog.find("openai", "tts-1")
    rerank = catalog.find("cohere", "rerank-v3.5")
    image_tokens = catalog.find("openai", "gpt-image-1")
    assert dalle and whisper and tts and rerank and image_tokens
    assert dalle.cost({"images": 3}) == Decimal("0.12")
    assert whisper.cost({"seconds": 90.5}) == Decimal("0.00905")
    assert tts.cost({"characters": 1000}) == Decimal("0.015")
    assert rerank.cost({"search_units": 2}) == Decimal("0.004")
    # gpt-image-1 is priced by the tokens its answer reports: 100 in at $5/M, 4,160 out at $40/M.
    assert image_tokens.cost(
        {"images": 1, "prompt_tokens": 100, "completion_tokens": 4160}
    ) == Decimal("0.1669")


def test_audio_tokens_cost_their_own_price() -> None:
    realtime = Catalog(shipped()).find("openai", "gpt-realtime")
    assert realtime is not None
    usage = {
        "prompt_tokens": 1000,
        "completion_tokens": 500,
        "prompt_tokens_details": {"cached_tokens": 100, "audio_tokens": 600},
        "completion_tokens_details": {"audio_tokens": 400},
    }
    # Input: 300 text at $4/M, 600 audio at $32/M, 100 cached at $0.40/M; output: 100 text at
    # $16/M and 400 audio at $64/M.
    expected = (
        300 * Decimal(4)
        + 600 * Decimal(32)
        + 100 * Decimal("0.40")
        + 100 * Decimal(16)
        + 400 * Decimal(64)
    ) / Decimal(1_000_000)
    assert realtime.cost(usage) == expected
