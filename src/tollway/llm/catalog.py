"""The model catalog: each model's limits and prices, shipped as data (data/models.csv).

Prices are USD per million tokens, held as Decimal: costs are money and are summed over
millions of calls, where float rounding would drift.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from importlib import resources
from typing import Any

MILLION = Decimal(1_000_000)
_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class ModelInfo:
    provider: str
    model: str
    mode: str  # chat, completion or embedding
    context_window: int
    max_output_tokens: int | None
    input: Decimal
    output: Decimal | None = None
    cached_input: Decimal | None = None
    cache_write: Decimal | None = None
    reasoning: Decimal | None = None

    def cost(self, usage: Mapping[str, Any]) -> Decimal:
        """USD for one call's canonical usage (OpenAI shape, see tollway.llm)."""
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
        price = self.input
        total = (fresh if fresh > 0 else 0) * price
        total += cached * (self.cached_input if self.cached_input is not None else price)
        total += written * (self.cache_write if self.cache_write is not None else price)
        output = self.output or _ZERO
        if self.reasoning is not None:
            total += reasoning * self.reasoning + max(0, completion - reasoning) * output
        else:
            total += completion * output
        return total / MILLION


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
