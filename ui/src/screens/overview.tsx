// The overview dashboard: the traffic of everything the user can see over a chosen range
// (requests, errors, latency, tokens, cost, cache hits) as figures and charts, and the top
// apps, models and services.
import { useMemo } from "preact/hooks";
import { api } from "../api";
import { Bars, type Line, TimeChart } from "../components/chart";
import { Empty, Loaded } from "../components/feedback";
import { count, ms, percent, usd } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { linkTo, navigate } from "../router";

export type Stats = {
  requests: number;
  errors: number;
  error_rate: number;
  cache_hits: number;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  cost: string;
  latency_ms: { mean: number | null; p50: number | null; p90: number | null; p95: number | null; p99: number | null };
  ttft_ms_mean: number | null;
};
type Summary = { start: string; end: string; stats: Stats };
type Point = { at: string; value: string | number | null; name: string | null; stats: Stats };
type Series = { step: string; start: string; end: string; points: Point[] };
type Group = { value: string | number | null; name: string | null; stats: Stats };
type Breakdown = { groups: Group[] };

export const RANGES: [string, string, number][] = [
  ["1h", "Last hour", 3600],
  ["6h", "Last 6 hours", 6 * 3600],
  ["24h", "Last 24 hours", 86400],
  ["7d", "Last 7 days", 7 * 86400],
  ["30d", "Last 30 days", 30 * 86400],
];

function rangeOf(query: URLSearchParams): { key: string; start: string; end: string } {
  const key = RANGES.some(([k]) => k === query.get("range")) ? query.get("range")! : "24h";
  const seconds = RANGES.find(([k]) => k === key)![2];
  const end = new Date();
  const start = new Date(end.getTime() - seconds * 1000);
  return { key, start: start.toISOString(), end: end.toISOString() };
}

export function Overview({ query }: { query: URLSearchParams }) {
  const range = useMemo(() => rangeOf(query), [query.get("range")]);
  const window = { start: range.start, end: range.end };
  const state = useLoad(
    () =>
      Promise.all([
        api<Summary>("GET", "/analytics/summary", { query: window }),
        api<Series>("GET", "/analytics/timeseries", { query: window }),
        api<Breakdown>("GET", "/analytics/breakdown", { query: { ...window, by: "app", limit: 8 } }),
        api<Breakdown>("GET", "/analytics/breakdown", { query: { ...window, by: "model", limit: 8 } }),
        api<Breakdown>("GET", "/analytics/breakdown", { query: { ...window, by: "service", limit: 8 } }),
      ]),
    [range.key],
  );
  return (
    <>
      <Header title="Overview" sub="Traffic through the gateway that your teams can see.">
        <label class="field" style={{ minWidth: "170px" }}>
          <span class="field-label">Range</span>
          <select
            aria-label="Range"
            value={range.key}
            onChange={(e) => navigate(`/?range=${(e.target as HTMLSelectElement).value}`, true)}
          >
            {RANGES.map(([key, label]) => (
              <option value={key}>{label}</option>
            ))}
          </select>
        </label>
        <button type="button" onClick={state.reload}>
          Refresh
        </button>
      </Header>
      <Loaded state={state}>
        {([summary, series, apps, models, services]) => (
          <Dashboard summary={summary} series={series} apps={apps} models={models} services={services} />
        )}
      </Loaded>
    </>
  );
}

function Dashboard({
  summary,
  series,
  apps,
  models,
  services,
}: {
  summary: Summary;
  series: Series;
  apps: Breakdown;
  models: Breakdown;
  services: Breakdown;
}) {
  const s = summary.stats;
  const charts = useMemo(() => chartsOf(filled(series)), [series]);
  const span: [number, number] = [Date.parse(series.start) / 1000, Date.parse(series.end) / 1000];
  if (s.requests === 0) {
    return (
      <Empty title="No calls in this range.">
        Calls made with an app's key show up here within seconds. <a {...linkTo("/apps")}>Create an app and a key</a>,
        subscribe it to a service in the <a {...linkTo("/catalog")}>catalog</a>, then call the gateway.
      </Empty>
    );
  }
  const cacheRate = s.requests ? s.cache_hits / s.requests : 0;
  // Calls that reached no app or service (refused before, or the gateway's own) group as 0.
  const named = (g: Group) => g.name ?? (g.value === null || g.value === 0 ? "(none)" : String(g.value));
  return (
    <>
      <section class="cards" aria-label="Totals">
        <Card label="Requests" value={count(s.requests)} />
        <Card label="Errors" value={count(s.errors)} note={percent(s.error_rate)} />
        <Card label="Latency p50" value={ms(s.latency_ms.p50)} note={`p99 ${ms(s.latency_ms.p99)}`} />
        <Card label="Tokens" value={count(s.input_tokens + s.output_tokens)} note={`${count(s.input_tokens)} in · ${count(s.output_tokens)} out`} />
        <Card label="Cost" value={usd(s.cost)} />
        <Card label="Cache hit rate" value={percent(cacheRate)} note={`${count(s.cache_hits)} hits`} />
      </section>
      <section class="grid" aria-label="Charts">
        <TimeChart range={span} title="Requests and errors" times={charts.times} lines={charts.traffic} />
        <TimeChart range={span} title="Latency" times={charts.times} lines={charts.latency} unit=" ms" />
        <TimeChart range={span} title="Tokens" times={charts.times} lines={charts.tokens} />
        <TimeChart range={span} title="Cost (USD)" times={charts.times} lines={charts.cost} />
      </section>
      <section class="grid" aria-label="Top lists" style={{ marginTop: "1rem" }}>
        <Bars title="Top apps by requests" rows={apps.groups.map((g) => ({ label: named(g), value: g.stats.requests }))} format={count} />
        <Bars title="Top models by requests" rows={models.groups.map((g) => ({ label: named(g), value: g.stats.requests }))} format={count} />
        <Bars title="Top services by cost" rows={services.groups.map((g) => ({ label: named(g), value: Number(g.stats.cost) || 0 }))} format={usd} />
      </section>
    </>
  );
}

function Card({ label, value, note }: { label: string; value: string; note?: string }) {
  return (
    <div class="card">
      <div class="card-label">{label}</div>
      <div class="card-value">{value}</div>
      {note && <div class="card-note">{note}</div>}
    </div>
  );
}

const STEP_S: Record<string, number> = { minute: 60, hour: 3600, day: 86400 };

/** Every step of the range, a step without calls as zero calls (the API leaves it out). */
function filled(series: Series): Point[] {
  const step = STEP_S[series.step] ?? 60;
  const byTime = new Map(series.points.map((p) => [Math.floor(Date.parse(p.at) / 1000 / step), p]));
  const first = Math.floor(Date.parse(series.start) / 1000 / step);
  const last = Math.floor(Date.parse(series.end) / 1000 / step);
  if (last - first > 5000) return series.points;
  const points: Point[] = [];
  for (let slot = first; slot <= last; slot++) {
    points.push(byTime.get(slot) ?? { at: new Date(slot * step * 1000).toISOString(), value: null, name: null, stats: EMPTY });
  }
  return points;
}

const EMPTY: Stats = {
  requests: 0,
  errors: 0,
  error_rate: 0,
  cache_hits: 0,
  input_tokens: 0,
  output_tokens: 0,
  cached_tokens: 0,
  cost: "0",
  latency_ms: { mean: null, p50: null, p90: null, p95: null, p99: null },
  ttft_ms_mean: null,
};

function chartsOf(points: Point[]): { times: number[]; traffic: Line[]; latency: Line[]; tokens: Line[]; cost: Line[] } {
  const times = points.map((p) => new Date(p.at).getTime() / 1000);
  const pick = (f: (s: Stats) => number | null) => points.map((p) => f(p.stats));
  return {
    times,
    traffic: [
      { label: "requests", values: pick((s) => s.requests) },
      { label: "errors", values: pick((s) => s.errors) },
    ],
    latency: [
      { label: "p50", values: pick((s) => s.latency_ms.p50) },
      { label: "p99", values: pick((s) => s.latency_ms.p99) },
    ],
    tokens: [
      { label: "input", values: pick((s) => s.input_tokens) },
      { label: "output", values: pick((s) => s.output_tokens) },
    ],
    cost: [{ label: "cost", values: pick((s) => Number(s.cost) || 0) }],
  };
}
