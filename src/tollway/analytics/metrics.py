"""Prometheus metrics, derived from the call records (no per-request work in a worker beyond
the record itself): the recorder observes every batch it receives and renders the text
exposition format (0.0.4) for GET /metrics on the admin port.

Labels are bounded: service, model, provider, status, policy and error code, never a key,
an app or a client. Values that would make more than `max_values` distinct labels (model
names are the client's choice under a '*' route) are counted as "_other".
"""

from __future__ import annotations

import contextlib
import threading
import time
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal

from tollway.analytics import wire
from tollway.analytics.deployments import DeploymentHealth, combine
from tollway.analytics.deployments import render as render_deployments
from tollway.analytics.records import Row, tokens_of
from tollway.analytics.wire import FIELD

DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
TOKEN_KINDS = ("input", "output", "cached_input", "cache_write", "reasoning")
OTHER = "_other"
# A worker that has not reported for this long no longer counts toward the in-flight gauge.
REPORT_STALE_S = 5.0
_ERROR_OUTCOMES = frozenset({"upstream_error", "timeout"})

_F = FIELD
_STARTED, _FIRST, _FINISHED = _F["started"], _F["first_byte"], _F["finished"]
_SERVICE, _MODEL, _PROVIDER = _F["service_id"], _F["model"], _F["provider"]
_STATUS, _ERROR, _OUTCOME, _REFUSED = (
    _F["status"],
    _F["error_code"],
    _F["outcome"],
    _F["refused_by"],
)
_USAGE, _COST, _CACHE = _F["usage"], _F["cost"], _F["cache_hit"]

Labels = tuple[str, ...]
# A call's keys in the counters: its labels, with its status, with each token kind, for a
# cache hit; and its error code's label.
_Keys = tuple[Labels, Labels, tuple[Labels, ...], Labels, str]


class _Histogram:
    __slots__ = ("bounds", "count", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.count = 0
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.count += 1
        self.total += value
        # The first bound the value is within (none: only +Inf counts it).
        i = bisect_left(self.bounds, value)
        if i < len(self.counts):
            self.counts[i] += 1


class Metrics:
    """Counters kept by the recorder (thread-safe: observed by its intake, rendered by its
    HTTP thread)."""

    def __init__(self, max_values: int = 500) -> None:
        self.max_values = max_values
        self._lock = threading.Lock()
        self._seen: dict[str, set[str]] = {}
        self.requests: dict[Labels, int] = {}
        self.duration: dict[Labels, _Histogram] = {}
        self.ttft: dict[Labels, _Histogram] = {}
        self.tokens: dict[Labels, int] = {}
        self.cost: dict[Labels, Decimal] = {}
        self.cache_hits: dict[Labels, int] = {}
        self.refusals: dict[Labels, int] = {}
        self.upstream_errors: dict[Labels, int] = {}
        self.events: dict[Labels, int] = {}
        # pid -> (calls in flight, when reported)
        self.reports: dict[int, tuple[int, float]] = {}
        # pid -> its model deployments' breakers and load, as last reported
        self.deployment_rows: dict[int, tuple[wire.DeploymentRow, ...]] = {}
        # The recorder's own counters and gauges, by metric name.
        self.recorder: dict[str, float] = {}
        # Service id -> name, for the service label (ids when unknown).
        self.service_names: Callable[[], Mapping[int, str]] = dict

    # -- observing -------------------------------------------------------------------------

    def observe(self, batch: wire.RecordBatch) -> None:
        """A batch of calls, as a worker shipped it."""
        names = self.service_names()
        keys: dict[object, _Keys] = {}
        with self._lock:
            for record in batch.records:
                try:
                    self._call(record, names, keys)
                except (TypeError, ValueError, IndexError):
                    continue

    def _bounded(self, kind: str, value: str) -> str:
        seen = self._seen.setdefault(kind, set())
        if value in seen:
            return value
        if len(seen) >= self.max_values:
            return OTHER
        seen.add(value)
        return value

    def observe_rows(self, rows: Iterable[Row]) -> None:
        """Calls stored from a worker's spool file (never received over the channel)."""
        names = self.service_names()
        keys: dict[object, _Keys] = {}
        with self._lock:
            for row in rows:
                self._count(
                    names,
                    keys,
                    row.service_id,
                    row.model,
                    row.provider,
                    row.status,
                    row.latency_ms / 1000,
                    row.ttft_ms / 1000 if row.ttft_ms is not None else None,
                    (
                        row.input_tokens,
                        row.output_tokens,
                        row.cached_tokens,
                        row.cache_write_tokens,
                        row.reasoning_tokens,
                    ),
                    row.cost,
                    row.cache_hit,
                    row.refused_by,
                    row.error_code,
                    row.outcome,
                )

    def _call(
        self, record: wire.WireRecord, names: Mapping[int, str], keys: dict[object, _Keys]
    ) -> None:
        started = record[_STARTED]
        finished = record[_FINISHED] or started
        first = record[_FIRST]
        usage = record[_USAGE]
        cost = record[_COST]
        self._count(
            names,
            keys,
            record[_SERVICE],
            record[_MODEL],
            record[_PROVIDER],
            record[_STATUS],
            finished - started,
            first - started if first else None,
            tokens_of(usage) if isinstance(usage, dict) else (0, 0, 0, 0, 0),
            Decimal(cost) if cost is not None else None,
            record[_CACHE],
            record[_REFUSED],
            record[_ERROR],
            record[_OUTCOME],
        )

    def _count(
        self,
        names: Mapping[int, str],
        keys: dict[object, _Keys],
        service_id: int,
        model: str | None,
        provider: str | None,
        status: int,
        seconds: float,
        ttft: float | None,
        tokens: tuple[int, ...],
        cost: Decimal | None,
        cache_hit: bool,
        refused_by: str | None,
        error_code: str | None,
        outcome: str,
    ) -> None:
        # A batch's calls share a few labels: bounded once for each (`keys` lives as long as
        # the batch, as `names` does). Bounding a value again changes nothing.
        raw = (service_id, model, provider, status, error_code)
        try:
            found = keys.get(raw)
        except TypeError:  # a value that cannot be a key: bounded for this call only
            found = None
        if found is None:
            found = self._keys(names, service_id, model, provider, status, error_code)
            with contextlib.suppress(TypeError):
                keys[raw] = found
        labels, requests_key, token_keys, hit_key, code = found
        self.requests[requests_key] = self.requests.get(requests_key, 0) + 1
        histogram = self.duration.get(labels)
        if histogram is None:
            histogram = self.duration[labels] = _Histogram(DURATION_BUCKETS)
        histogram.observe(max(0.0, seconds))
        if ttft is not None:
            first = self.ttft.get(labels)
            if first is None:
                first = self.ttft[labels] = _Histogram(TTFT_BUCKETS)
            first.observe(max(0.0, ttft))
        counts = self.tokens
        for token_key, count in zip(token_keys, tokens, strict=True):
            if count:
                counts[token_key] = counts.get(token_key, 0) + count
        if cost is not None:
            self.cost[labels] = self.cost.get(labels, Decimal(0)) + cost
        if cache_hit:
            self.cache_hits[hit_key] = self.cache_hits.get(hit_key, 0) + 1
        if refused_by:
            refusal = (self._bounded("policy", str(refused_by)), code)
            self.refusals[refusal] = self.refusals.get(refusal, 0) + 1
        elif outcome in _ERROR_OUTCOMES:
            failure = (labels[2], code)
            self.upstream_errors[failure] = self.upstream_errors.get(failure, 0) + 1

    def _keys(
        self,
        names: Mapping[int, str],
        service_id: int,
        model: str | None,
        provider: str | None,
        status: int,
        error_code: str | None,
    ) -> _Keys:
        service = self._bounded(
            "service", names.get(service_id, str(service_id)) if service_id else ""
        )
        labels = (
            service,
            self._bounded("model", str(model or "")),
            self._bounded("provider", str(provider or "")),
        )
        return (
            labels,
            (*labels, str(status)),
            tuple((*labels, kind) for kind in TOKEN_KINDS),
            (service, labels[1]),
            self._bounded("code", str(error_code or status)),
        )

    def event(self, kind: str) -> None:
        with self._lock:
            key = (self._bounded("event", kind),)
            self.events[key] = self.events.get(key, 0) + 1

    def report(self, report: wire.Report) -> None:
        with self._lock:
            if report.last:
                self.reports.pop(report.pid, None)
                self.deployment_rows.pop(report.pid, None)
            else:
                self.reports[report.pid] = (report.in_flight, time.monotonic())
                self.deployment_rows[report.pid] = report.deployments

    def count(self, name: str, value: float = 1) -> None:
        """The recorder's own counters (records stored, spooled, ...)."""
        with self._lock:
            self.recorder[name] = self.recorder.get(name, 0) + value

    def gauge(self, name: str, value: float) -> None:
        with self._lock:
            self.recorder[name] = value

    def deployments(self) -> list[DeploymentHealth]:
        """Model deployments' breakers and load over the workers that reported lately."""
        with self._lock:
            return self._deployments(time.monotonic())

    def _deployments(self, now: float) -> list[DeploymentHealth]:
        live = [
            self.deployment_rows.get(pid, ())
            for pid, (_n, at) in self.reports.items()
            if now - at <= REPORT_STALE_S
        ]
        return combine(live)

    # -- rendering -------------------------------------------------------------------------

    def render(self) -> str:
        """The text exposition format."""
        out: list[str] = []
        with self._lock:
            _family(
                out,
                "tollway_requests_total",
                "counter",
                "Calls answered, by service, model, provider and HTTP status.",
                ("service", "model", "provider", "status"),
                self.requests,
            )
            _histograms(
                out,
                "tollway_request_duration_seconds",
                "Time from a call's request to its end.",
                self.duration,
            )
            _histograms(
                out,
                "tollway_time_to_first_token_seconds",
                "Time from a streamed call's request to its first byte.",
                self.ttft,
            )
            _family(
                out,
                "tollway_tokens_total",
                "counter",
                "Tokens, by kind: input (all prompt tokens), output, cached_input (input read "
                "from the provider's cache), cache_write, reasoning (part of output).",
                ("service", "model", "provider", "kind"),
                self.tokens,
            )
            _family(
                out,
                "tollway_cost_usd_total",
                "counter",
                "Cost in USD from the model catalog's prices.",
                ("service", "model", "provider"),
                self.cost,
            )
            _family(
                out,
                "tollway_cache_hits_total",
                "counter",
                "Calls answered from the gateway's cache.",
                ("service", "model"),
                self.cache_hits,
            )
            _family(
                out,
                "tollway_refusals_total",
                "counter",
                "Calls refused by a policy (rate limits, budgets, authentication, ...), by "
                "policy and error code.",
                ("policy", "code"),
                self.refusals,
            )
            _family(
                out,
                "tollway_upstream_errors_total",
                "counter",
                "Calls that failed at their upstream (errors and timeouts), by provider and code.",
                ("provider", "code"),
                self.upstream_errors,
            )
            now = time.monotonic()
            live = [n for n, at in self.reports.values() if now - at <= REPORT_STALE_S]
            _family(
                out,
                "tollway_in_flight_requests",
                "gauge",
                "Calls in progress, over the workers that reported in the last 5 s.",
                (),
                {(): sum(live)},
            )
            _family(
                out,
                "tollway_workers_reporting",
                "gauge",
                "Workers that reported in the last 5 s.",
                (),
                {(): len(live)},
            )
            render_deployments(out, self._deployments(now), _family)
            _family(
                out,
                "tollway_events_total",
                "counter",
                "Events recorded by policies (budget alerts, ...), by kind.",
                ("kind",),
                self.events,
            )
            for name, value in sorted(self.recorder.items()):
                kind = "counter" if name.endswith("_total") else "gauge"
                _family(out, name, kind, _RECORDER_HELP.get(name, name), (), {(): value})
        return "\n".join(out) + "\n"


_RECORDER_HELP = {
    "tollway_records_received_total": "Call records the recorder received from the workers.",
    "tollway_records_stored_total": "Call records written to the store.",
    "tollway_records_duplicate_total": "Call records replayed that the store already had.",
    "tollway_records_spooled_total": "Call records the recorder spilled to its spool.",
    "tollway_records_rejected_total": "Call records the store refused (logged and dropped).",
    "tollway_records_dropped_total": "Call records lost (a spool write failed).",
    "tollway_record_store_up": "Whether the recorder can write to the store (1) or not (0).",
    "tollway_record_queue": "Call records waiting to be written.",
    "tollway_spool_files": "Spool files waiting to be replayed.",
    "tollway_webhook_deliveries_total": "Webhook deliveries that succeeded.",
    "tollway_webhook_failures_total": "Webhook delivery attempts that failed.",
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _labels(names: Iterable[str], values: Iterable[str], extra: str = "") -> str:
    parts = [f'{n}="{_escape(v)}"' for n, v in zip(names, values, strict=True)]
    if extra:
        parts.append(extra)
    return "{" + ",".join(parts) + "}" if parts else ""


def _number(value: float | int | Decimal) -> str:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value else "0"
    if isinstance(value, float):
        return repr(value) if value != int(value) or abs(value) >= 1e15 else str(int(value))
    return str(value)


def _family(
    out: list[str],
    name: str,
    kind: str,
    help_text: str,
    label_names: tuple[str, ...],
    samples: Mapping[Labels, float | int | Decimal],
) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")
    for labels, value in sorted(samples.items()):
        out.append(f"{name}{_labels(label_names, labels)} {_number(value)}")


def _histograms(
    out: list[str], name: str, help_text: str, samples: Mapping[Labels, _Histogram]
) -> None:
    names = ("service", "model", "provider")
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} histogram")
    for labels, histogram in sorted(samples.items()):
        running = 0
        for bound, count in zip(histogram.bounds, histogram.counts, strict=True):
            running += count
            le = f'le="{bound}"'
            out.append(f"{name}_bucket{_labels(names, labels, le)} {running}")
        inf = 'le="+Inf"'
        out.append(f"{name}_bucket{_labels(names, labels, inf)} {histogram.count}")
        out.append(f"{name}_sum{_labels(names, labels)} {_number(histogram.total)}")
        out.append(f"{name}_count{_labels(names, labels)} {histogram.count}")
