"""Running a prompt API's version from the admin API: the playground (sample inputs, shown with
the rendered messages, the answer, its tokens and cost) and its test cases (before it is
published).

The admin API runs in a process of its own, without the gateway's workers: it compiles the
store's providers and models into a snapshot of its own and calls the model the way the data
plane does (proxy/handlers/prompt_api.py: the same rendering, routing, output check and
repair), on connections it opens for the run and closes after it. Nothing is recorded as a
call of an app: these are the team's own trials.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from tollway.config.compile import compile_config
from tollway.config.prompt_api import PromptApiSpec, PromptTestCase
from tollway.config.snapshot import RouteEntry, RuntimeConfig
from tollway.config.tenancy import prompt_version
from tollway.errors import GatewayError
from tollway.llm.client_apis import OPENAI_CHAT
from tollway.llm.prompt_template import InputError
from tollway.policies.context import RequestContext
from tollway.policies.pipeline import EMPTY
from tollway.proxy.balancer import Balancers
from tollway.proxy.deadlines import Deadlines
from tollway.proxy.handlers.prompt_api import PromptApis
from tollway.proxy.http import Request
from tollway.proxy.upstream import Upstreams
from tollway.store import state
from tollway.store.database import Store

# Samples the playground takes at once; they run one after another.
MAX_SAMPLES = 10


@dataclass(slots=True)
class Run:
    """One input's run: what was sent, what came back, and what it cost."""

    input: dict[str, Any]
    messages: list[dict[str, str]] = field(default_factory=list)
    text: str | None = None
    output: Any = None
    repaired: bool = False
    error: str | None = None
    deployment: str | None = None
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal | None = None
    latency_ms: float = 0.0


@dataclass(slots=True)
class TestResult:
    name: str
    run: Run
    failures: list[str]

    @property
    def passed(self) -> bool:
        return not self.failures


def runtime_of(store: Store) -> RuntimeConfig:
    """The store's providers and models, compiled (credentials from the store, or from this
    process's environment for those given as variables)."""
    with store.read(consistent=True) as session:
        current = state.load(session, store)
    return compile_config(current.gateway_config(), os.environ, state=current)


def run_samples(
    store: Store, spec: PromptApiSpec, number: int, inputs: Sequence[dict[str, Any]]
) -> list[Run]:
    """Each input through the version (a draft included), one after another."""
    return asyncio.run(_runs(runtime_of(store), spec, number, inputs))


def run_tests(store: Store, spec: PromptApiSpec, number: int) -> list[TestResult]:
    """The version's test cases, each input run and its checks applied to the answer."""
    cases = spec.tests
    if not cases:
        return []
    runs = asyncio.run(_runs(runtime_of(store), spec, number, [c.input for c in cases]))
    return [
        TestResult(case.name, run, _failures(case, run))
        for case, run in zip(cases, runs, strict=True)
    ]


def _failures(case: PromptTestCase, run: Run) -> list[str]:
    if run.error is not None:
        return [run.error]
    text = run.text or ""
    found = (check.failure(run.output, text) for check in case.checks)
    return [
        f"{check.type}: {failure}"
        for check, failure in zip(case.checks, found, strict=True)
        if failure
    ]


async def _runs(
    runtime: RuntimeConfig, spec: PromptApiSpec, number: int, inputs: Sequence[dict[str, Any]]
) -> list[Run]:
    version = prompt_version(number, spec)
    upstreams = Upstreams(Deadlines())
    apis = PromptApis(upstreams, Balancers())
    out = []
    try:
        for n, given in enumerate(inputs):
            run = Run(given)
            out.append(run)
            try:
                variables = version.template.check_input(given)
            except InputError as exc:
                run.error = f"input: {exc}"
                continue
            run.messages = version.template.render(variables)
            ctx = _trial(runtime, n)
            started = time.monotonic()
            try:
                made = await apis.run(ctx, version, variables)
            except GatewayError as exc:
                run.error = exc.message
            else:
                run.text, run.output, run.repaired = made.text, made.value, made.repaired
            run.latency_ms = round((time.monotonic() - started) * 1000, 1)
            _account(run, ctx)
    finally:
        upstreams.close()
    return out


def _trial(runtime: RuntimeConfig, n: int) -> RequestContext:
    """A call of the admin's own: no key, no chain (no limits, no record)."""
    request = Request(
        "POST",
        "/admin/playground",
        b"",
        [],
        b"",
        "1.1",
        False,
        b"playground-%d-%d" % (os.getpid(), n),
        "127.0.0.1",
    )
    return RequestContext(request, runtime, RouteEntry("prompt_api", EMPTY, OPENAI_CHAT))


def _account(run: Run, ctx: RequestContext) -> None:
    deployment = ctx.deployment
    usage = ctx.usage or {}
    run.deployment = deployment.label if deployment is not None else None
    run.input_tokens = int(usage.get("prompt_tokens") or 0)
    run.output_tokens = int(usage.get("completion_tokens") or 0)
    if deployment is not None and deployment.info is not None and ctx.usage is not None:
        run.cost = deployment.info.cost(ctx.usage)
