from __future__ import annotations

from typing import Any

from tollway.errors import GatewayError
from tollway.policies.base import Answer, Policy, Verdict
from tollway.policies.context import RequestContext
from tollway.policies.pipeline import Pipeline

CTX: Any = RequestContext.__new__(RequestContext)


class Recorder(Policy):
    def __init__(self, name: str, log: list[str], verdict: Verdict = None) -> None:
        self.label = name
        self.log = log
        self.verdict = verdict

    def on_request(self, ctx: RequestContext) -> Verdict:
        self.log.append(f"{self.label}.request")
        return self.verdict


class Counter(Policy):
    name = "counter"

    def __init__(self, log: list[str]) -> None:
        self.log = log

    def on_body(self, ctx: RequestContext) -> Verdict:
        self.log.append("counter.body")
        return None

    def on_chunk(self, ctx: RequestContext, data: bytes) -> bytes:
        return data + b"!"

    def on_done(self, ctx: RequestContext) -> None:
        self.log.append("counter.done")


class Broken(Policy):
    name = "broken"

    def on_done(self, ctx: RequestContext) -> None:
        raise RuntimeError("a bug in a policy")


def test_each_phase_holds_only_the_policies_that_take_part() -> None:
    log: list[str] = []
    first, counter = Recorder("first", log), Counter(log)
    pipeline = Pipeline((first, counter))
    assert pipeline.request_phase == (first,)
    assert pipeline.body_phase == (counter,)
    assert pipeline.response_phase == ()
    assert pipeline.chunk_phase == (counter,)
    assert pipeline.done_phase == (counter,)


def test_the_first_verdict_stops_a_phase() -> None:
    log: list[str] = []
    refusal = GatewayError(429, "slow down")
    pipeline = Pipeline((Recorder("a", log), Recorder("b", log, refusal), Recorder("c", log)))
    assert pipeline.request(CTX) is refusal
    assert log == ["a.request", "b.request"]
    answer = Answer(200, b"cached")
    assert Pipeline((Recorder("d", log, answer),)).request(CTX) is answer


def test_chunks_pass_through_every_policy_in_order() -> None:
    log: list[str] = []
    pipeline = Pipeline((Counter(log), Counter(log)))
    assert pipeline.chunk(CTX, b"data") == b"data!!"


def test_a_failing_done_phase_does_not_cost_the_others_their_turn() -> None:
    log: list[str] = []
    pipeline = Pipeline((Broken(), Counter(log)))
    pipeline.done(CTX)
    assert log == ["counter.done"]
    assert pipeline.names == ("broken", "counter")
