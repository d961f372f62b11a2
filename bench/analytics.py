"""Analytics over many call records: how long the admin API takes to answer.

Fills a store with N call records spread over the last D days (through the recorder's own
writer, so the rollups are what the gateway keeps), applies retention (minute rollups are
kept 8 days), then times each analytics question through the admin API over HTTP, as a
team member and as a platform admin: totals, breakdowns, series, record search and detail,
and the budget seed (spend_since). Prints the median and the slowest of a few runs each.

    .venv/bin/python bench/analytics.py --records 10000000            # SQLite, ~30 min to fill
    .venv/bin/python bench/analytics.py --data-dir /tmp/tw-10m --reuse    # time again
    .venv/bin/python bench/analytics.py --store postgresql://... --records 10000000

Not a test: a measurement (docs/metering.md quotes it).
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx

from tollway.admin.app import create_admin_app
from tollway.admin.server import AdminServer, bind
from tollway.analytics import retention
from tollway.analytics.records import Row
from tollway.analytics.spend import spend_since
from tollway.analytics.storage import RecordWriter
from tollway.store import SYSTEM, Store, apps, open_store, teams, users
from tollway.store.schema import ApiKey

TEAMS = 20
APPS_PER_TEAM = 5
KEYS_PER_APP = 2
MODELS = [
    ("gpt-4o-mini", "openai", Decimal("0.15"), Decimal("0.6")),
    ("gpt-4o", "openai", Decimal("2.5"), Decimal("10")),
    ("claude-sonnet-4", "anthropic", Decimal("3"), Decimal("15")),
    ("claude-haiku-4", "anthropic", Decimal("0.8"), Decimal("4")),
    ("gemini-2.5-flash", "gemini", Decimal("0.3"), Decimal("2.5")),
    ("gemini-2.5-pro", "gemini", Decimal("1.25"), Decimal("10")),
    ("command-r", "cohere", Decimal("0.15"), Decimal("0.6")),
    ("llama-3-70b", "bedrock", Decimal("0.72"), Decimal("0.72")),
]
MILLION = Decimal(1_000_000)


def build_tenants(store: Store) -> tuple[str, list[tuple[int, int, int]], int]:
    """Teams, apps and keys; returns an admin token, (team, app, key) triples, a member's
    team id... and the member's token in the triple list's place of honour."""
    triples: list[tuple[int, int, int]] = []
    with store.write(SYSTEM) as tx:
        admin = users.create(tx, "bench-admin", platform_role="admin")
        _, token = users.create_token(tx, admin, "bench")
        for t in range(TEAMS):
            team = teams.create(tx, f"team-{t}")
            for a in range(APPS_PER_TEAM):
                app = apps.create(tx, team, f"app-{a}")
                for k in range(KEYS_PER_APP):
                    key = ApiKey(
                        app_id=app.id,
                        name=f"key-{k}",
                        prefix="tw-bench",
                        digest=f"{app.id:032x}{k:032x}",
                        allowed_models=None,
                        allowed_cidrs=None,
                    )
                    tx.session.add(key)
                    tx.session.flush()
                    triples.append((team.id, app.id, key.id))
    return token, triples, triples[0][0]


def member_token(store: Store, team_id: int) -> str:
    with store.write(SYSTEM) as tx:
        member = users.create(tx, "bench-member", platform_role="member")
        team = teams.get(tx.session, team_id)
        teams.add_member(tx, team, member, "viewer")
        _, token = users.create_token(tx, member, "bench")
    return token


def rows(n: int, days: int, triples: list[tuple[int, int, int]], seed: int) -> list[Row]:
    rng = random.Random(seed)
    now = datetime.now(UTC)
    span = days * 86400
    out = []
    for i in range(n):
        team, app, key = triples[int(rng.paretovariate(1.2)) % len(triples)]
        model, provider, price_in, price_out = MODELS[rng.randrange(len(MODELS))]
        ts = now - timedelta(seconds=rng.random() * span)
        roll = rng.random()
        status, outcome = (200, "completed")
        if roll < 0.03:
            status, outcome = 429, "refused"
        elif roll < 0.05:
            status, outcome = 502, "upstream_error"
        tokens_in = rng.randrange(20, 4000) if status == 200 else 0
        tokens_out = rng.randrange(5, 800) if status == 200 else 0
        cached = tokens_in // 4 if rng.random() < 0.2 else 0
        cost = (tokens_in * price_in + tokens_out * price_out) / MILLION if status == 200 else None
        latency = rng.lognormvariate(6.0, 0.8)
        stream = rng.random() < 0.5
        out.append(
            Row(
                day=ts.date(),
                record_id=f"bench{seed:04x}-{i:x}",
                ts=ts,
                request_id=f"req-{seed}-{i}",
                trace_id="",
                team_id=team,
                app_id=app,
                key_id=key,
                key_name=f"key-{key}",
                service_id=0,
                service_team_id=0,
                service_version=0,
                api="openai.chat_completions",
                model=model,
                model_served=model,
                provider=provider,
                deployment=f"{provider}/{model}",
                stream=stream,
                status=status,
                error_code="rate_limit_exceeded" if status == 429 else "",
                outcome=outcome,
                refused_by="rate_limit" if status == 429 else "",
                latency_ms=latency,
                upstream_ms=latency * 0.95 if status != 429 else None,
                ttft_ms=latency * 0.2 if stream and status == 200 else None,
                input_tokens=tokens_in,
                output_tokens=tokens_out,
                cached_tokens=cached,
                cache_write_tokens=0,
                reasoning_tokens=0,
                cost=cost,
                retries=0,
                cache_hit=rng.random() < 0.02,
                client_address="10.0.0.1",
                user_agent="OpenAI/Python 1.99.0",
                request_body=None,
                response_body=None,
            )
        )
    return out


def fill(store: Store, n: int, days: int, triples: list[tuple[int, int, int]]) -> None:
    writer = RecordWriter(store)
    batch = 10000
    started = time.monotonic()
    for at in range(0, n, batch):
        writer.write(rows(min(batch, n - at), days, triples, at // batch))
        done = at + batch
        if done % 500000 == 0 or done >= n:
            rate = done / (time.monotonic() - started)
            print(f"  {min(done, n):>10,} records ({rate:,.0f}/s)", flush=True)
    retention.apply(store, writer, days + 1, datetime.now(UTC))


def timed(call: Callable[[], Any], runs: int) -> tuple[float, float, Any]:
    seconds = []
    result = None
    for _ in range(runs):
        started = time.perf_counter()
        result = call()
        seconds.append(time.perf_counter() - started)
    return statistics.median(seconds), max(seconds), result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--data-dir", help="a SQLite store here (default: a temporary one)")
    parser.add_argument("--store", help="a database URL (PostgreSQL) instead")
    parser.add_argument("--reuse", action="store_true", help="time a store filled before")
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if args.store:
        store = open_store(store=args.store)
    else:
        directory = args.data_dir or tempfile.mkdtemp(prefix="tollway-bench-")
        store = open_store(data_dir=directory)
        print(f"store: {Path(directory) / 'tollway.db'}")
    if args.reuse:
        with store.read() as session:
            admin = users.find(session, "bench-admin")
            assert admin is not None, "nothing to reuse: run without --reuse first"
        with store.write(SYSTEM) as tx:
            admin = users.find(tx.session, "bench-admin")
            member = users.find(tx.session, "bench-member")
            assert admin is not None and member is not None
            _, token = users.create_token(tx, admin, "bench")
            _, member_tok = users.create_token(tx, member, "bench")
            team_id = next(iter(teams.roles_of(tx.session, member.id)))
    else:
        token, triples, team_id = build_tenants(store)
        member_tok = member_token(store, team_id)
        print(f"filling {args.records:,} records over {args.days} days ...", flush=True)
        fill(store, args.records, args.days, triples)
    sock = bind("127.0.0.1", 0)
    server = AdminServer(create_admin_app(store), sock=sock)
    server.start_thread()
    base = f"http://127.0.0.1:{sock.getsockname()[1]}/admin/v1"
    now = datetime.now(UTC)
    month = {"start": (now - timedelta(days=args.days)).isoformat(), "end": now.isoformat()}
    week = {"start": (now - timedelta(days=7)).isoformat(), "end": now.isoformat()}
    recent = {"start": (now - timedelta(hours=6)).isoformat(), "end": now.isoformat()}
    with (
        httpx.Client(
            base_url=base, headers={"authorization": f"Bearer {token}"}, timeout=60
        ) as root,
        httpx.Client(
            base_url=base, headers={"authorization": f"Bearer {member_tok}"}, timeout=60
        ) as member,
    ):

        def get(client: httpx.Client, path: str, **params: Any) -> Any:
            response = client.get(path, params=params)
            response.raise_for_status()
            return response.json()

        one = get(root, "/analytics/records", limit=1, **month)["items"][0]
        questions: list[tuple[str, Callable[[], Any]]] = [
            (
                f"summary, {args.days} days (admin)",
                lambda: get(root, "/analytics/summary", **month),
            ),
            (
                f"summary, {args.days} days (team member)",
                lambda: get(member, "/analytics/summary", **month),
            ),
            (
                f"breakdown by model, {args.days} days",
                lambda: get(root, "/analytics/breakdown", by="model", **month),
            ),
            (
                f"breakdown by app, {args.days} days",
                lambda: get(root, "/analytics/breakdown", by="app", **month),
            ),
            (
                "series per hour by model, 7 days",
                lambda: get(root, "/analytics/timeseries", step="hour", by="model", **week),
            ),
            (
                "series per minute, 6 hours",
                lambda: get(root, "/analytics/timeseries", step="minute", **recent),
            ),
            (
                f"series per day by status, {args.days} days (member)",
                lambda: get(member, "/analytics/timeseries", step="day", by="status", **month),
            ),
            ("records: newest 50, 24 h", lambda: get(root, "/analytics/records", limit=50)),
            (
                f"records: status 502, {args.days} days",
                lambda: get(root, "/analytics/records", status=502, limit=50, **month),
            ),
            (
                "records: by request id",
                lambda: get(root, "/analytics/records", request_id=one["request_id"], **month),
            ),
            ("record detail", lambda: get(root, f"/analytics/records/{one['record_id']}")),
            (
                "spend_since(team, 30 days) (budget seed)",
                lambda: spend_since(store, "team", now - timedelta(days=args.days)),
            ),
        ]
        with store.read() as session:
            from sqlalchemy import func, select

            from tollway.store.metering_schema import call_records, rollups

            count = session.execute(select(func.count()).select_from(call_records)).scalar_one()
            sizes = {
                g: session.execute(select(func.count()).select_from(t)).scalar_one()
                for g, t in rollups.items()
            }
        print(
            f"\n{count:,} call records; rollup rows: "
            + ", ".join(f"{g} {n:,}" for g, n in sizes.items())
        )
        print(f"{'question':<48} {'median':>9} {'slowest':>9}")
        worst = 0.0
        for label, ask in questions:
            median, slowest, _ = timed(ask, args.runs)
            worst = max(worst, slowest)
            print(f"{label:<48} {median * 1000:>7.0f}ms {slowest * 1000:>7.0f}ms", flush=True)
        print(f"\nslowest answer: {worst * 1000:.0f} ms")
    server.stop()
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
