"""The model catalog: each model's limits and prices, shipped as data (data/models.csv).

Token prices are USD per million tokens; media models' unit prices are USD per image, per
second of audio, per character spoken and per search unit. All are held as Decimal: costs are
money and are summed over millions of calls, where float rounding would drift.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from importlib import resources
from typing import Any

MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)
# What a provider's own Batch API charges, as a share of the list price, by provider type:
# OpenAI bills a batch's requests at half price. A rule, not catalog columns: the discount is
# the provider's, the same for every model it serves.
BATCH_PRICE_SHARE: Mapping[str, Decimal] = {"openai": Decimal("0.5")}


@dataclass(frozen=True, slots=True)
class ModelInfo:
    provider: str
    model: str
    mode: str  # chat, completion, embedding, image, speech, transcription, moderation, rerank
    context_window: int
    max_output_tokens: int | None
    input: Decimal
    output: Decimal | None = None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None
    # Audio tokens, where a model prices them apart from text (per million, in and out).
    audio_input: Decimal | None = None
    audio_output: Decimal | None = None
    per_image: Decimal | None = None
    per_second: Decimal | None = None
    per_character: Decimal | None = None
    per_search_unit: Decimal | None = None
    # Whether anything is priced beyond text tokens (audio tokens, units): most models not.
    priced_apart: bool = field(init=False, default=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        extras = (
            self.audio_input,
            self.audio_output,
            self.per_image,
            self.per_second,
            self.per_character,
            self.per_search_unit,
        )
        object.__setattr__(self, "priced_apart", any(p is not None for p in extras))

    def cost(self, usage: Mapping[str, Any]) -> Decimal:
        """USD for one call's canonical usage (OpenAI shape, see tollway.llm; media calls add
        `images`, `seconds`, `characters` and `search_units`)."""
        # Every term is added even when its count is 0: a Decimal sum keeps the finest
        # exponent of its terms, so skipping one could change the cost's written form.
        get = usage.get
        prompt = get("prompt_tokens") or 0
        completion = get("completion_tokens") or 0
        details = get("prompt_tokens_details")
        cached = (details.get("cached_tokens") or 0) if details else 0
        written = get("cache_creation_input_tokens") or 0
        details = get("completion_tokens_details")
        reasoning = (details.get("reasoning_tokens") or 0) if details else 0
        fresh = prompt - cached - written
        if fresh < 0:
            fresh = 0
        price = self.input
        total = fresh * price
        total += cached * (self.cached_input if self.cached_input is not None else price)
        total += written * (self.cache_write if self.cache_write is not None else price)
        output = self.output or _ZERO
        if self.reasoning is not None:
            total += reasoning * self.reasoning + max(0, completion - reasoning) * output
        else:
            total += completion * output
        if not self.priced_apart:
            return total / MILLION
        if self.audio_input is not None:
            # Fresh audio input at its own price instead of the text price.
            audio = (get("prompt_tokens_details") or {}).get("audio_tokens") or 0
            total += min(audio, fresh) * (self.audio_input - self.input)
        if self.audio_output is not None:
            audio = (get("completion_tokens_details") or {}).get("audio_tokens") or 0
            total += min(audio, completion) * (self.audio_output - output)
        total /= MILLION
        for key, unit_price in (
            ("images", self.per_image),
            ("seconds", self.per_second),
            ("characters", self.per_character),
            ("search_units", self.per_search_unit),
        ):
            if unit_price is not None:
                amount = get(key)
                if amount:
                    total += Decimal(str(amount)) * unit_price
        return total


def batch_cost(info: ModelInfo, usage: Mapping[str, Any], provider_type: str) -> Decimal:
    """USD for one request of a batch run by the provider's own Batch API: the list price
    (ModelInfo.cost) at the provider's batch share (the full price for a type without one)."""
    return info.cost(usage) * BATCH_PRICE_SHARE.get(provider_type, Decimal(1))


def _decimal(value: str) -> Decimal | None:
    return Decimal(value) if value.strip() else None


def parse(text: str) -> list[ModelInfo]:
    rows = csv.DictReader(line for line in io.StringIO(text) if not line.startswith("#"))
    out = []
    for row in rows:
        price = _decimal(row["input"])
        if price is None:
            raise ValueError(f"catalog: {row['provider']}/{row['model']} has no input price")
        out.append(
            ModelInfo(
                provider=row["provider"],
                model=row["model"],
                mode=row["mode"],
                context_window=int(row["context_window"]),
                max_output_tokens=int(row["max_output_tokens"])
                if row["max_output_tokens"]
                else None,
                input=price,
                output=_decimal(row["output"]),
                cached_input=_decimal(row["cached_input"]),
                cache_write=_decimal(row["cache_write"]),
                reasoning=_decimal(row["reasoning"]),
                audio_input=_decimal(row.get("audio_input") or ""),
                audio_output=_decimal(row.get("audio_output") or ""),
                per_image=_decimal(row.get("per_image") or ""),
                per_second=_decimal(row.get("per_second") or ""),
                per_character=_decimal(row.get("per_character") or ""),
                per_search_unit=_decimal(row.get("per_search_unit") or ""),
            )
        )
    return out


def shipped() -> list[ModelInfo]:
    return parse(resources.files("tollway.llm").joinpath("data/models.csv").read_text())


class Catalog:
    """Lookup by provider type and model name; entries from config override shipped ones."""

    def __init__(self, entries: Iterable[ModelInfo]) -> None:
        self.by_provider: dict[tuple[str, str], ModelInfo] = {}
        self.by_model: dict[str, ModelInfo] = {}
        for info in entries:
            self.by_provider[(info.provider, info.model)] = info
            self.by_model.setdefault(info.model, info)

    def find(self, provider: str, model: str) -> ModelInfo | None:
        """The provider's own entry, else the same model at any provider (an
        OpenAI-compatible server serving a known model)."""
        return self.by_provider.get((provider, model)) or self.by_model.get(model)

    def __len__(self) -> int:
        return len(self.by_provider)
