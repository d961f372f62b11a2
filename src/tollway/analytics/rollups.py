"""Rollups: call records summed per minute, hour and day, per team, app, key, service,
model, provider and status, kept up to date as records are stored (never recomputed).

Each row holds counts (requests, errors, cache hits, tokens), the cost, latency sums, and a
latency histogram (bucket i: calls of at most 2^(i/2) ms), from which any set of rows gives
percentiles. A query over any range reads the fewest rows: whole days from the day rollups,
whole hours at its ends from the hour rollups, and minutes only at its very ends.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from operator import attrgetter
from typing import NamedTuple

from tollway.analytics.records import Row
from tollway.store.metering_schema import HISTOGRAM, LATENCY_BUCKETS

GRAIN_SPAN = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
# How long each grain is kept (the day rollups: for good).
GRAIN_RETENTION = {"minute": timedelta(days=8), "hour": timedelta(days=400)}
# The bucket bounds of the latency histogram, in ms.
UPPER_MS = tuple(2 ** (i / 2) for i in range(LATENCY_BUCKETS))

# (team_id, app_id, key_id, service_id, model, provider, status)
Dimensions = tuple[int, int, int, int, str, str, int]


def floor(moment: datetime, grain: str) -> datetime:
    moment = moment.astimezone(UTC)
    if grain == "minute":
        return moment.replace(second=0, microsecond=0)
    if grain == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def ceil(moment: datetime, grain: str) -> datetime:
    down = floor(moment, grain)
    return down if down == moment else down + GRAIN_SPAN[grain]


def latency_bucket(ms: float) -> int:
    if ms <= 1.0:
        return 0
    return min(LATENCY_BUCKETS - 1, math.ceil(2 * math.log2(ms) - 1e-9))


@dataclass(slots=True)
class Totals:
    """Sums over a set of records (or of rollup rows)."""

    requests: int = 0
    errors: int = 0
    cache_hits: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    context_saved_tokens: int = 0
    ttft_count: int = 0
    cost: Decimal = Decimal(0)
    latency_ms_sum: float = 0.0
    ttft_ms_sum: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * LATENCY_BUCKETS)

    def add_row(self, row: Row) -> None:
        self.requests += 1
        self.errors += row.is_error
        self.cache_hits += row.cache_hit
        self.input_tokens += row.input_tokens
        self.output_tokens += row.output_tokens
        self.cached_tokens += row.cached_tokens
        self.cache_write_tokens += row.cache_write_tokens
        self.reasoning_tokens += row.reasoning_tokens
        self.context_saved_tokens += row.context_saved_tokens
        if row.cost is not None:
            self.cost += row.cost
        self.latency_ms_sum += row.latency_ms
        if row.ttft_ms is not None:
            self.ttft_count += 1
            self.ttft_ms_sum += row.ttft_ms
        self.histogram[latency_bucket(row.latency_ms)] += 1

    def merge(self, other: Totals) -> None:
        self.requests += other.requests
        self.errors += other.errors
        self.cache_hits += other.cache_hits
        self.input_tokens += other.input_tokens
        self.output_tokens += other.output_tokens
        self.cached_tokens += other.cached_tokens
        self.cache_write_tokens += other.cache_write_tokens
        self.reasoning_tokens += other.reasoning_tokens
        self.context_saved_tokens += other.context_saved_tokens
        self.ttft_count += other.ttft_count
        self.cost += other.cost
        self.latency_ms_sum += other.latency_ms_sum
        self.ttft_ms_sum += other.ttft_ms_sum
        self.histogram = [a + b for a, b in zip(self.histogram, other.histogram, strict=True)]

    def sums(self, cost: object) -> tuple[object, ...]:
        """The rollup columns' values in ROLLUP_COUNTS, cost, latency sums, HISTOGRAM order
        (`cost` as the database takes it)."""
        return (
            self.requests,
            self.errors,
            self.cache_hits,
            self.input_tokens,
            self.output_tokens,
            self.cached_tokens,
            self.cache_write_tokens,
            self.reasoning_tokens,
            self.context_saved_tokens,
            self.ttft_count,
            cost,
            self.latency_ms_sum,
            self.ttft_ms_sum,
            *self.histogram,
        )

    def values(self) -> dict[str, object]:
        """The rollup columns' values."""
        out: dict[str, object] = {
            "requests": self.requests,
            "errors": self.errors,
            "cache_hits": self.cache_hits,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cached_tokens": self.cached_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "reasoning_tokens": self.reasoning_tokens,
            "context_saved_tokens": self.context_saved_tokens,
            "ttft_count": self.ttft_count,
            "cost": self.cost,
            "latency_ms_sum": self.latency_ms_sum,
            "ttft_ms_sum": self.ttft_ms_sum,
        }
        out.update(zip(HISTOGRAM, self.histogram, strict=True))
        return out

    def percentile(self, q: float) -> float | None:
        """The q-quantile (0 < q < 1) of latency in ms, interpolated within its bucket
        (geometrically: the buckets grow by a factor of sqrt 2)."""
        return percentile(self.histogram, q)


def percentile(histogram: Sequence[int], q: float) -> float | None:
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for i, count in enumerate(histogram):
        if count and seen + count >= rank:
            upper = UPPER_MS[i]
            lower = UPPER_MS[i - 1] if i > 0 else 0.0
            share = (rank - seen) / count
            if lower <= 0:
                return upper * share
            return float(lower * (upper / lower) ** share)
        seen += count
    return UPPER_MS[-1]


class RollupKey(NamedTuple):
    grain: str
    bucket: datetime
    dimensions: Dimensions
    service_team_id: int


_DIMENSIONS = attrgetter("team_id", "app_id", "key_id", "service_id", "model", "provider", "status")


def aggregate(rows: Iterable[Row]) -> dict[RollupKey, Totals]:
    """The increments that `rows` (newly stored records) add to each grain's rollups."""
    # Each row is summed into its minute only; hours and days are then summed from the
    # minutes (a batch spans a few): a third of the per-row work.
    minutes: dict[tuple[datetime, Dimensions, int], Totals] = {}
    get = minutes.get
    for row in rows:
        key = (row.ts.replace(second=0, microsecond=0), _DIMENSIONS(row), row.service_team_id)
        totals = get(key)
        if totals is None:
            totals = minutes[key] = Totals()
        totals.add_row(row)
    out: dict[RollupKey, Totals] = {}
    for (minute, dims, team), totals in minutes.items():
        out[RollupKey("minute", minute, dims, team)] = totals
        for wide in (
            RollupKey("hour", minute.replace(minute=0), dims, team),
            RollupKey("day", minute.replace(hour=0, minute=0), dims, team),
        ):
            wider = out.get(wide)
            if wider is None:
                wider = out[wide] = Totals()
            wider.merge(totals)
    return out


def pieces(start: datetime, end: datetime, now: datetime) -> list[tuple[str, datetime, datetime]]:
    """[start, end), at minute resolution, as the fewest rollup ranges: (grain, from, to).

    Minute rollups older than their retention are gone: an end piece that old is widened to
    its whole hour."""
    start = floor(start, "minute")
    end = ceil(end, "minute")
    out: list[tuple[str, datetime, datetime]] = []
    if start >= end:
        return out
    at = start
    hour = ceil(at, "hour")
    if hour >= end:
        out.append(("minute", at, end))
    else:
        if at < hour:
            out.append(("minute", at, hour))
            at = hour
        day = ceil(at, "day")
        last_day = floor(end, "day")
        if day < last_day or (day == last_day and day > at):
            if at < day:
                out.append(("hour", at, day))
                at = day
            if at < last_day:
                out.append(("day", at, last_day))
                at = last_day
        last_hour = floor(end, "hour")
        if at < last_hour:
            out.append(("hour", at, last_hour))
            at = last_hour
        if at < end:
            out.append(("minute", at, end))
    oldest_minute = now - GRAIN_RETENTION["minute"]
    widened = []
    for grain, lo, hi in out:
        if grain == "minute" and lo < oldest_minute:
            grain, lo, hi = "hour", floor(lo, "hour"), ceil(hi, "hour")
        widened.append((grain, lo, hi))
    return widened
