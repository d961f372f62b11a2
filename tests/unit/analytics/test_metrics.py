"""The metrics exposition: what the recorder renders parses with Prometheus' own parser,
label values are escaped, and GET /metrics wants the token when one is set."""

from __future__ import annotations

import time

from prometheus_client.parser import text_string_to_metric_families
from test_sink import call

from tollway.analytics import wire
from tollway.analytics.exposition import answer
from tollway.analytics.metrics import Metrics


def batch(*records: wire.WireRecord) -> wire.RecordBatch:
    return wire.RecordBatch("p-", 0.0, list(records), 1)


def test_the_exposition_parses_and_escapes_label_values() -> None:
    metrics = Metrics()
    weird = 'model "quoted" \\ with\nnewline'
    metrics.observe(
        batch(
            wire.from_context(call(model=weird), 1),
            wire.from_context(
                call(status=429, refused_by="rate_limit", error_code="rate_limit_exceeded"), 2
            ),
        )
    )
    metrics.event("budget.alert")
    metrics.report(wire.Report(7, 3, time.time()))
    metrics.count("tollway_records_stored_total", 2)
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    requests = families["tollway_requests"].samples
    assert {s.labels["model"] for s in requests} == {weird, "gpt-4o-mini"}
    assert families["tollway_refusals"].samples[0].labels == {
        "policy": "rate_limit",
        "code": "rate_limit_exceeded",
    }
    assert families["tollway_in_flight_requests"].samples[0].value == 3
    assert families["tollway_events"].samples[0].value == 1
    assert families["tollway_records_stored"].samples[0].value == 2
    cost = families["tollway_cost_usd"].samples
    assert sum(s.value for s in cost) == 0.000246


def test_a_worker_that_left_no_longer_counts_in_flight() -> None:
    metrics = Metrics()
    metrics.report(wire.Report(7, 3, time.time()))
    metrics.report(wire.Report(8, 2, time.time()))
    metrics.report(wire.Report(7, 0, time.time(), last=True))
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    assert families["tollway_in_flight_requests"].samples[0].value == 2
    assert families["tollway_workers_reporting"].samples[0].value == 1


def test_the_token_guards_metrics_and_deployments_only() -> None:
    pages = Metrics()
    token = "secret-token-0123"
    assert answer("/metrics", None, pages, token)[0] == 401
    assert answer("/metrics", "Bearer wrong", pages, token)[0] == 401
    assert answer("/metrics", f"Bearer {token}", pages, token)[0] == 200
    assert answer("/deployments", None, pages, token)[0] == 401
    assert answer("/deployments", f"Bearer {token}", pages, token)[2] == b'{"items":[]}'
    assert answer("/metrics?x=1", None, pages, None)[0] == 200
    assert answer("/healthz", None, pages, token)[0] == 200
    assert answer("/other", None, pages, None)[0] == 404


def test_deployments_are_combined_over_the_workers_that_report() -> None:
    metrics = Metrics()
    now = time.time()
    # The report as it travels from a worker to the recorder.
    sent = wire.decode(
        wire.encode_report(
            wire.Report(
                7,
                1,
                now,
                deployments=(
                    ("chat", "east", "open", 5, 0, 0.0, 8.5),
                    ("chat", "west", "closed", 0, 1, 0.2, 0.0),
                ),
            )
        )
    )
    assert isinstance(sent, wire.Report)
    metrics.report(sent)
    metrics.report(
        wire.Report(
            8,
            2,
            now,
            deployments=(
                ("chat", "east", "half_open", 0, 0, 0.0, 0.0),
                ("chat", "west", "closed", 0, 2, 0.4, 0.0),
            ),
        )
    )
    east, west = (entry.as_json() for entry in metrics.deployments())
    assert east["deployment"] == "east" and east["state"] == "degraded"
    assert east["workers"] == {"closed": 0, "open": 1, "half_open": 1}
    assert east["consecutive_failures"] == 5 and east["open_for_s"] == 8.5
    assert east["latency_s"] is None
    assert west["state"] == "closed" and west["in_flight"] == 3
    assert abs(west["latency_s"] - 0.3) < 1e-9
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    breakers = {
        (s.labels["deployment"], s.labels["state"]): s.value
        for s in families["tollway_deployment_breakers"].samples
    }
    assert breakers[("east", "open")] == 1 and breakers[("east", "closed")] == 0
    assert breakers[("west", "closed")] == 2
    # A worker that leaves takes its view along.
    metrics.report(wire.Report(7, 0, now, last=True))
    assert [e.as_json()["state"] for e in metrics.deployments()] == ["degraded", "closed"]
    metrics.report(wire.Report(8, 0, now, last=True))
    assert metrics.deployments() == []


def test_labels_are_bounded_and_counted_call_by_call_across_batches() -> None:
    metrics = Metrics(max_values=2)
    failed = {"status": 502, "outcome": "upstream_error"}
    metrics.observe(
        batch(
            wire.from_context(call(model="a", finished_at=1.003, started_at=1.0), 1),
            wire.from_context(call(model="b", finished_at=1.2, started_at=1.0), 2),
            # A third model and a third code: past the bound.
            wire.from_context(call(model="c", error_code="bad_gateway", **failed), 3),
            wire.from_context(
                call(
                    model="a", error_code="timeout_x", started_at=1.0, finished_at=1.008, **failed
                ),
                4,
            ),
            wire.from_context(call(model="a", finished_at=101.0, started_at=1.0), 5),
        )
    )
    # A later batch: the values bounded before keep their labels.
    metrics.observe(
        batch(
            wire.from_context(call(model="d", usage={"prompt_tokens": 7}), 6),
            wire.from_context(call(model="b", error_code="bad_gateway", **failed), 7),
        )
    )
    families = {f.name: f for f in text_string_to_metric_families(metrics.render())}
    requests = {
        (s.labels["model"], s.labels["status"]): s.value
        for s in families["tollway_requests"].samples
    }
    assert requests == {
        ("a", "200"): 2,
        ("b", "200"): 1,
        ("_other", "502"): 1,
        ("a", "502"): 1,
        ("_other", "200"): 1,
        ("b", "502"): 1,
    }
    # "200" took the first code label, "bad_gateway" the second: "timeout_x" is past them.
    errors = {
        (s.labels["provider"], s.labels["code"]): s.value
        for s in families["tollway_upstream_errors"].samples
    }
    assert errors == {("", "bad_gateway"): 2, ("", "_other"): 1}
    buckets = {
        s.labels["le"]: s.value
        for s in families["tollway_request_duration_seconds"].samples
        if s.name.endswith("_bucket") and s.labels["model"] == "a" and s.value
    }
    # 3 ms and 100 s (past the last bound: +Inf only), plus the failed call's 8 ms.
    assert buckets["0.005"] == 1 and buckets["0.01"] == 2 and buckets["60.0"] == 2
    assert buckets["+Inf"] == 3
    tokens = {
        (s.labels["model"], s.labels["kind"]): s.value for s in families["tollway_tokens"].samples
    }
    assert tokens[("_other", "input")] == 10 + 7 and tokens[("a", "output")] == 5 * 3
