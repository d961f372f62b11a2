"""A model's context fitting, compiled from its settings (the model's own, or a service's for
that model) and its deployments' context windows."""

from __future__ import annotations

from tollway.config.entities import ContextConfig
from tollway.config.snapshot import Deployment
from tollway.llm.context_fit import ContextFit


def context_fit(setting: ContextConfig, deployments: tuple[Deployment, ...]) -> ContextFit:
    """How kept conversations are fitted to a model with these deployments."""
    budget = setting.max_input_tokens
    windows = [d.info.context_window for d in deployments if d.info is not None]
    if budget is None and windows and len(windows) == len(deployments):
        budget = max(1, min(windows) - setting.reserve_output_tokens)
    return ContextFit(
        budget,
        setting.keep_first_turns,
        setting.summary_model,
        setting.summary_tokens,
        setting.select,
    )
