// Limits & budgets: the rate limits and budgets the gateway enforces. They are set in its
// configuration file, not through the API, so this screen reads them (GET /limits) and shows
// each budget's spend in its current period; it explains how to change them.
import { useState } from "preact/hooks";
import { api } from "../api";
import { Empty, Loaded } from "../components/feedback";
import { count, percent, usd, when } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { isAdmin, useSession } from "../session";

type RateLimit = {
  index: number;
  scope: "key" | "app" | "team" | "service" | "model";
  match: string[] | null;
  requests_per_minute: number | null;
  burst: number | null;
  tokens_per_minute: number | null;
  token_burst: number | null;
  concurrent: number | null;
};
type BudgetUse = { id: number; name: string; team_id: number; spent_usd: string; left_usd: string; used: number };
type Budget = {
  index: number;
  scope: "key" | "app" | "team";
  match: string[] | null;
  amount_usd: string;
  period: "day" | "week" | "month";
  alerts: number[];
  period_start: string;
  period_end: string;
  subjects: BudgetUse[];
  subjects_total: number;
};
type LimitsOut = {
  rate_limits: RateLimit[];
  output_tokens_estimate: number | null;
  budgets: Budget[];
  timezone: string | null;
  when_counters_unavailable: "refuse" | "allow" | null;
  alert_webhook: string | null;
  as_of: string;
};

// One row per limit of a rule: a rule may limit requests, tokens and concurrency at once.
type LimitRow = { rule: RateLimit; limit: string; window: string; first: boolean };

const NAMES: Record<string, string> = {
  key: "team/app/key",
  app: "team/app",
  team: "team",
  service: "team/service",
  model: "model",
};

const RATE_EXAMPLE = `rate_limits:
  rules:                # per scope, the first rule that matches applies
    - {scope: key, match: ["alpha/batch/*"], requests_per_minute: 60, burst: 10}
    - {scope: key, requests_per_minute: 600, tokens_per_minute: 200000, concurrent: 20}
    - {scope: model, match: ["gpt-4o"], tokens_per_minute: 2000000}`;

const BUDGET_EXAMPLE = `budgets:
  timezone: UTC         # periods are calendar days, weeks (from Monday), months
  rules:
    - {scope: team, amount_usd: 500, period: month, alerts: [0.5, 0.8, 1.0]}
    - {scope: key, match: ["alpha/*/intern-*"], amount_usd: 5, period: day}`;

function rows(rules: RateLimit[]): LimitRow[] {
  const found: LimitRow[] = [];
  for (const rule of rules) {
    const limits: [string, string][] = [];
    if (rule.requests_per_minute !== null) {
      limits.push([`${count(rule.requests_per_minute)} requests (burst ${count(rule.burst)})`, "per minute"]);
    }
    if (rule.tokens_per_minute !== null) {
      limits.push([`${count(rule.tokens_per_minute)} tokens (burst ${count(rule.token_burst)})`, "per minute"]);
    }
    if (rule.concurrent !== null) limits.push([`${count(rule.concurrent)} requests in progress`, "at a time"]);
    limits.forEach(([limit, window], i) => found.push({ rule, limit, window, first: i === 0 }));
  }
  return found;
}

function Subject({ scope, match }: { scope: string; match: string[] | null }) {
  if (match === null) return <span>every {scope}, each its own</span>;
  return (
    <span>
      {match.map((glob, i) => (
        <>
          {i > 0 && ", "}
          <code>{glob}</code>
        </>
      ))}
    </span>
  );
}

/** A moment as the budget's zone reads it (periods are calendar days, weeks, months there). */
function inZone(iso: string, zone: string | null): string {
  return new Date(iso).toLocaleString(undefined, {
    timeZone: zone ?? undefined,
    year: "numeric",
    month: "short",
    day: "numeric",
    hour: "2-digit",
    minute: "2-digit",
  });
}

const share = (fraction: number) => `${Math.round(fraction * 1000) / 10}%`;

/** Time until a moment, roughly ("in 3 d", "in 5 h"). */
function until(iso: string): string {
  const seconds = (new Date(iso).getTime() - Date.now()) / 1000;
  if (seconds <= 0) return "now";
  if (seconds < 3600) return `in ${Math.max(1, Math.round(seconds / 60))} min`;
  if (seconds < 172800) return `in ${Math.round(seconds / 3600)} h`;
  return `in ${Math.round(seconds / 86400)} d`;
}

function Meter({ use, budget }: { use: BudgetUse; budget: Budget }) {
  // Colour by the alerts the budget raises: past its first alert amber, spent red.
  const warnAt = budget.alerts.length > 0 ? budget.alerts[0] : 0.8;
  const colour = use.used >= 1 ? "var(--danger)" : use.used >= warnAt ? "var(--warn)" : undefined;
  return (
    <div
      class="bar-track"
      role="progressbar"
      aria-label={`${use.name}: ${usd(use.spent_usd)} of ${usd(budget.amount_usd)} spent`}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={Math.round(Math.min(use.used, 1) * 100)}
      style={{ minWidth: "160px" }}
    >
      <span class="bar-fill" style={{ width: `${Math.min(use.used, 1) * 100}%`, background: colour }} />
    </div>
  );
}

function BudgetPanel({ budget, timezone, onMore }: { budget: Budget; timezone: string | null; onMore?: () => void }) {
  const who = budget.match === null ? `Every ${budget.scope}` : `${budget.scope[0].toUpperCase()}${budget.scope.slice(1)}s`;
  return (
    <section class="panel" aria-label={`Budget ${budget.index + 1}`}>
      <h3 style={{ marginTop: 0 }}>
        {usd(budget.amount_usd)} per {budget.period} · {who}
        {budget.match !== null && (
          <>
            {" "}
            matching <Subject scope={budget.scope} match={budget.match} />
          </>
        )}
      </h3>
      <dl class="facts" style={{ marginBottom: "0.75rem" }}>
        <dt>Applies to</dt>
        <dd>
          {budget.match === null ? `every ${budget.scope}, each with a budget of its own` : `the ${budget.scope}s whose name (${NAMES[budget.scope]}) matches`}{" "}
          <span class="muted small">(rule {budget.index + 1} of the file's budgets)</span>
        </dd>
        <dt>This period</dt>
        <dd>
          {inZone(budget.period_start, timezone)} to {inZone(budget.period_end, timezone)}
          {timezone && <span class="muted"> ({timezone})</span>}
        </dd>
        <dt>Resets</dt>
        <dd>
          {until(budget.period_end)} <span class="muted small">({when(budget.period_end)} your time)</span>
        </dd>
        <dt>Alerts at</dt>
        <dd>{budget.alerts.length > 0 ? budget.alerts.map(share).join(", ") : "none"}</dd>
      </dl>
      <Table
        label={`Spend against budget ${budget.index + 1}`}
        rows={budget.subjects}
        columns={[
          { title: budget.scope[0].toUpperCase() + budget.scope.slice(1), cell: (u) => <code>{u.name}</code> },
          {
            title: "Spent",
            cell: (u) => (
              <>
                <Meter use={u} budget={budget} />
                <span class="small">
                  {usd(u.spent_usd)} of {usd(budget.amount_usd)}
                </span>
              </>
            ),
          },
          { title: "Used", numeric: true, cell: (u) => percent(u.used) },
          { title: "Left", numeric: true, cell: (u) => (Number(u.left_usd) === 0 ? <strong style={{ color: "var(--danger)" }}>{usd(0)}</strong> : usd(u.left_usd)) },
        ]}
        empty={
          <Empty title={`No ${budget.scope} of yours is under this budget yet.`}>
            Each {budget.scope} it applies to appears here with its spend once it exists.
          </Empty>
        }
      />
      {budget.subjects_total > budget.subjects.length && (
        <p class="small muted">
          The {count(budget.subjects.length)} biggest spenders of {count(budget.subjects_total)}.{" "}
          {onMore && (
            <button type="button" class="link" onClick={onMore}>
              Show all
            </button>
          )}
        </p>
      )}
    </section>
  );
}

export function Limits() {
  const { me } = useSession();
  const [top, setTop] = useState(100);
  const state = useLoad(() => api<LimitsOut>("GET", "/limits", { query: { top } }), [top]);
  return (
    <>
      <Header
        title="Limits & budgets"
        sub={
          <>
            Set in the gateway's configuration file, in its <code>rate_limits</code> and <code>budgets</code> sections (see docs/configuration.md).
            This page shows what the gateway loaded when it started{isAdmin(me) ? "" : ", and only the rules that concern your teams"}.
          </>
        }
      >
        <button type="button" onClick={state.reload} disabled={state.loading}>
          Refresh
        </button>
      </Header>
      <Loaded state={state}>
        {(limits) =>
          limits.rate_limits.length === 0 && limits.budgets.length === 0 ? (
            <Empty title={isAdmin(me) ? "No rate limits or budgets are configured." : "No rate limits or budgets apply to your teams."}>
              <p>
                {isAdmin(me) ? "Add" : "The gateway's operator adds"} a <code>rate_limits</code> or <code>budgets</code> section to the gateway's
                configuration file and {isAdmin(me) ? "restart" : "restarts"} the gateway (a SIGHUP reload applies the rules to calls at once;
                this page shows them after the next start). For example:
              </p>
              <pre style={{ textAlign: "left" }}>{`${RATE_EXAMPLE}\n${BUDGET_EXAMPLE}`}</pre>
              <p class="small">
                Rules match names: a team's (<code>alpha</code>), an app's (<code>alpha/bot</code>), a key's (<code>alpha/bot/prod</code>), a
                service's (<code>alpha/chat</code>) or a model's.
              </p>
            </Empty>
          ) : (
            <>
              <h2>Rate limits</h2>
              <RateLimits limits={limits} />
              <h2>Budgets</h2>
              {limits.budgets.length === 0 ? (
                <Empty title="No budgets apply.">
                  <p>Add a budgets section to the gateway's configuration file, e.g.:</p>
                  <pre style={{ textAlign: "left" }}>{BUDGET_EXAMPLE}</pre>
                </Empty>
              ) : (
                <>
                  <p class="muted small">
                    Spend as of {when(limits.as_of)}, from the call records: calls still running are not in it yet. A call starts only
                    while its estimated cost fits in what is left; a spent budget refuses calls (429 budget_exceeded) until its period
                    resets.
                    {limits.when_counters_unavailable === "allow" && " While Redis is unreachable, calls are let through and counted later."}
                    {limits.alert_webhook && (
                      <>
                        {" "}
                        Alerts are also POSTed to <code>{limits.alert_webhook}</code>.
                      </>
                    )}
                  </p>
                  {limits.budgets.map((budget) => (
                    <BudgetPanel budget={budget} timezone={limits.timezone} onMore={top < 1000 ? () => setTop(1000) : undefined} />
                  ))}
                </>
              )}
            </>
          )
        }
      </Loaded>
    </>
  );
}

function RateLimits({ limits }: { limits: LimitsOut }) {
  if (limits.rate_limits.length === 0) {
    return (
      <Empty title="No rate limits apply.">
        <p>Add a rate_limits section to the gateway's configuration file, e.g.:</p>
        <pre style={{ textAlign: "left" }}>{RATE_EXAMPLE}</pre>
      </Empty>
    );
  }
  return (
    <>
      <Table
        label="Rate limits"
        rows={rows(limits.rate_limits)}
        columns={[
          { title: "Rule", numeric: true, cell: (r) => (r.first ? r.rule.index + 1 : "") },
          { title: "Scope", cell: (r) => (r.first ? r.rule.scope : "") },
          { title: "Subject", cell: (r) => (r.first ? <Subject scope={r.rule.scope} match={r.rule.match} /> : "") },
          { title: "Limit", cell: (r) => r.limit },
          { title: "Window", cell: (r) => r.window },
        ]}
        empty={null}
      />
      <p class="muted small">
        Counted per <em>scope</em>: a rule without a subject gives every key, app, team, service or model counters of its own. Per scope, the first
        rule whose subject matches a call applies. A refused call gets 429 with Retry-After.
        {limits.output_tokens_estimate !== null &&
          ` Token limits reserve an estimate before a call (${count(limits.output_tokens_estimate)} tokens for the answer when it sets no max_tokens) and settle it with the usage.`}
      </p>
    </>
  );
}
