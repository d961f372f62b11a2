"""Prompt APIs in the snapshot: each serving version's template parsed and schemas compiled
once, when the snapshot is built (config/tenancy.py), never per call. (No pydantic here: the
data plane reads these.)"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from tollway.llm.prompt_template import PromptTemplate
from tollway.llm.structured_output import OutputSchema

VERSION_HEADER = b"x-tollway-version"


@dataclass(frozen=True, slots=True)
class PromptVersion:
    """One serving version of a prompt API, ready to render and call."""

    number: int
    template: PromptTemplate
    output: OutputSchema | None
    model: str
    # The call's fixed parameters, as the chat completions API names them.
    parameters: Mapping[str, Any] = field(default_factory=dict)
    # As defined, in JSON (for the OpenAPI document and MCP tools).
    definition: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PromptService:
    """A prompt API's serving versions: the published one and, during an A/B test, a second
    one taking `canary_weight` percent of the calls, chosen at random per call."""

    primary: PromptVersion
    canary: PromptVersion | None = None
    canary_weight: int = 0

    def versions(self) -> tuple[PromptVersion, ...]:
        return (self.primary,) if self.canary is None else (self.primary, self.canary)

    def choose(self, asked: bytes | None, draw: float | None = None) -> PromptVersion:
        """The version a call gets: the one it asks for by number (`x-tollway-version`) if
        that one serves, else the canary with its weight's probability."""
        canary = self.canary
        if canary is None:
            return self.primary
        if asked is not None and asked.isdigit():
            for version in self.versions():
                if version.number == int(asked):
                    return version
        if draw is None:
            draw = random.random()
        return canary if draw * 100 < self.canary_weight else self.primary
