// The call-records explorer: every call the user may see, newest first, filtered by time,
// status, model, app, provider or request id. The filters live in the URL, so a filtered view
// can be shared and survives a reload; a row opens the record (records-detail.tsx).
import { useEffect, useState } from "preact/hooks";
import { all, api } from "../api";
import { Empty, ErrorNote, Loaded } from "../components/feedback";
import { Field, Select, Text } from "../components/form";
import { count, ms, usd, when } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { linkTo, navigate } from "../router";
import { type CallRecord, Outcome, StatusCode, rememberList } from "./records-detail";

export { RecordDetail } from "./records-detail";

type RecordPage = { items: CallRecord[]; next_before: string | null };
type App = { id: number; team_id: number; name: string };
type Team = { id: number; name: string };
type Breakdown = { groups: { value: string | number | null }[] };

const RANGES: [string, string, number][] = [
  ["15m", "Last 15 minutes", 15 * 60],
  ["1h", "Last hour", 3600],
  ["24h", "Last 24 hours", 86400],
  ["7d", "Last 7 days", 7 * 86400],
  ["30d", "Last 30 days", 30 * 86400],
];
const DEFAULT_RANGE = "24h";

/** The filters as the form edits them; the URL holds the same, in the API's words. */
type Filters = {
  range: string;
  start: string; // ISO 8601 (custom range only)
  end: string;
  status: "any" | "errors" | "exact";
  code: string;
  model: string;
  app: string;
  provider: string;
  request: string;
};

function filtersOf(query: URLSearchParams): Filters {
  const range = query.get("range") ?? DEFAULT_RANGE;
  const code = query.get("status") ?? "";
  return {
    range: range === "custom" || RANGES.some(([key]) => key === range) ? range : DEFAULT_RANGE,
    start: query.get("start") ?? "",
    end: query.get("end") ?? "",
    status: query.get("errors") === "true" ? "errors" : code ? "exact" : "any",
    code,
    model: query.get("model") ?? "",
    app: query.get("app_id") ?? "",
    provider: query.get("provider") ?? "",
    request: query.get("request_id") ?? "",
  };
}

function searchOf(f: Filters): URLSearchParams {
  const params = new URLSearchParams();
  const put = (name: string, value: string) => value.trim() && params.set(name, value.trim());
  if (f.range !== DEFAULT_RANGE) put("range", f.range);
  if (f.range === "custom") {
    put("start", f.start);
    put("end", f.end);
  }
  if (f.status === "errors") put("errors", "true");
  if (f.status === "exact") put("status", f.code);
  put("model", f.model);
  put("app_id", f.app);
  put("provider", f.provider);
  put("request_id", f.request);
  return params;
}

function pathOf(params: URLSearchParams): string {
  const text = params.toString();
  return text ? `/records?${text}` : "/records";
}

/** [start, end) for the API, computed when asked so that "last hour" means the last hour now. */
function windowOf(f: Filters): { start?: string; end?: string } {
  if (f.range === "custom") return { start: f.start || undefined, end: f.end || undefined };
  const seconds = RANGES.find(([key]) => key === f.range)?.[2] ?? 86400;
  const end = new Date();
  return { start: new Date(end.getTime() - seconds * 1000).toISOString(), end: end.toISOString() };
}

/** An ISO instant as a datetime-local input's value (the browser's local time). */
function localInput(iso: string): string {
  const d = new Date(iso);
  if (!iso || Number.isNaN(d.getTime())) return "";
  const two = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
}

function isoOf(local: string): string {
  const d = new Date(local);
  return local && !Number.isNaN(d.getTime()) ? d.toISOString() : "";
}

export function Records({ query }: { query: URLSearchParams }) {
  const search = query.toString();
  const applied = filtersOf(query);
  const before = query.get("before");
  const [draft, setDraft] = useState<Filters>(applied);
  const [problem, setProblem] = useState<Error | null>(null);
  // The URL is the truth: a link, Back or a reload replaces what the form holds.
  useEffect(() => {
    setDraft(filtersOf(query));
    setProblem(null);
    rememberList(search ? `/records?${search}` : "/records");
  }, [search]);

  const page = useLoad(() => {
    const f = filtersOf(query);
    return api<RecordPage>("GET", "/analytics/records", {
      query: {
        ...windowOf(f),
        errors: f.status === "errors" ? true : undefined,
        status: f.status === "exact" ? f.code : undefined,
        model: f.model,
        app_id: f.app,
        provider: f.provider,
        request_id: f.request,
        before,
        limit: 50,
      },
    });
  }, [search]);
  const lookups = useLoad(() => Promise.all([all<App>("/apps"), all<Team>("/teams")]), []);
  // Suggestions for the free-text filters: the models and providers seen in the range. They
  // only help typing, so a failure leaves the fields plain rather than showing an error.
  const seen = useLoad(async () => {
    const window = windowOf(filtersOf(query));
    const of = async (by: string) => {
      try {
        const found = await api<Breakdown>("GET", "/analytics/breakdown", { query: { ...window, by, limit: 100 } });
        return found.groups.map((g) => String(g.value ?? "")).filter(Boolean);
      } catch {
        return [];
      }
    };
    const [models, providers] = await Promise.all([of("model"), of("provider")]);
    return { models, providers };
  }, [applied.range, applied.start, applied.end]);

  const apps = lookups.data?.[0] ?? [];
  const teams = lookups.data?.[1] ?? [];
  const teamName = (id: number) => teams.find((t) => t.id === id)?.name;
  const appLabel = (id: number) => {
    if (id === 0) return "(file key)";
    const app = apps.find((a) => a.id === id);
    if (!app) return `app #${id}`;
    const team = teamName(app.team_id);
    return team ? `${team}/${app.name}` : app.name;
  };

  const set = <K extends keyof Filters>(name: K, value: Filters[K]) => setDraft((d) => ({ ...d, [name]: value }));
  const apply = (event: Event) => {
    event.preventDefault();
    if (draft.range === "custom") {
      if (draft.start && draft.end && draft.start >= draft.end) {
        setProblem(new Error("The range's start must be before its end."));
        return;
      }
    }
    if (draft.status === "exact" && !/^\d{1,3}$/.test(draft.code.trim())) {
      setProblem(new Error("Give the HTTP code as a number, such as 429."));
      return;
    }
    setProblem(null);
    navigate(pathOf(searchOf(draft)), true);
  };
  const pageTo = (cursor: string | null) => {
    const params = new URLSearchParams(search);
    if (cursor) params.set("before", cursor);
    else params.delete("before");
    navigate(pathOf(params), true);
  };
  const filtered = searchOf(applied).toString() !== "";

  return (
    <>
      <Header title="Call records" sub="Every call through the gateway that your teams can see, newest first.">
        {page.loading && page.data && (
          <span class="muted small" role="status">
            Updating…
          </span>
        )}
        <button type="button" onClick={page.reload}>
          Refresh
        </button>
      </Header>
      <form class="filters" onSubmit={apply} aria-label="Filter call records">
        <Field label="Time range">
          <Select
            name="range"
            value={draft.range}
            onChange={(value) => {
              // Starting a custom range from the preset shown keeps the user's context.
              if (value === "custom" && draft.range !== "custom") {
                const w = windowOf(draft);
                setDraft((d) => ({ ...d, range: value, start: w.start ?? "", end: w.end ?? "" }));
              } else set("range", value);
            }}
            options={[...RANGES.map(([key, label]): [string, string] => [key, label]), ["custom", "Custom range…"]]}
          />
        </Field>
        {draft.range === "custom" && (
          <>
            <Field label="From (local time)">
              <Text type="datetime-local" name="start" value={localInput(draft.start)} onInput={(v) => set("start", isoOf(v))} />
            </Field>
            <Field label="To (local time)">
              <Text type="datetime-local" name="end" value={localInput(draft.end)} onInput={(v) => set("end", isoOf(v))} />
            </Field>
          </>
        )}
        <Field label="Status">
          <Select
            name="status"
            value={draft.status}
            onChange={(value) => set("status", value as Filters["status"])}
            options={[
              ["any", "Any status"],
              ["errors", "Errors only"],
              ["exact", "Exactly…"],
            ]}
          />
        </Field>
        {draft.status === "exact" && (
          <Field label="HTTP code">
            <Text name="code" type="number" value={draft.code} onInput={(v) => set("code", v)} placeholder="429" />
          </Field>
        )}
        <Field label="Model">
          <input name="model" list="records-models" value={draft.model} placeholder="any" onInput={(e) => set("model", (e.target as HTMLInputElement).value)} />
          <datalist id="records-models">
            {(seen.data?.models ?? []).map((m) => (
              <option value={m} />
            ))}
          </datalist>
        </Field>
        <Field label="App">
          <Select
            name="app"
            value={draft.app}
            onChange={(value) => set("app", value)}
            options={[
              ["", lookups.loading && !lookups.data ? "Loading apps…" : "Any app"],
              ...apps
                .map((a): [string, string] => [String(a.id), appLabel(a.id)])
                .sort((x, y) => x[1].localeCompare(y[1])),
              // An app from a shared link the user cannot list still shows as what it is.
              ...(draft.app && !apps.some((a) => String(a.id) === draft.app) ? [[draft.app, `app #${draft.app}`] as [string, string]] : []),
            ]}
          />
        </Field>
        <Field label="Provider">
          <input name="provider" list="records-providers" value={draft.provider} placeholder="any" onInput={(e) => set("provider", (e.target as HTMLInputElement).value)} />
          <datalist id="records-providers">
            {(seen.data?.providers ?? []).map((p) => (
              <option value={p} />
            ))}
          </datalist>
        </Field>
        <Field label="Request id">
          <Text name="request_id" value={draft.request} onInput={(v) => set("request", v)} placeholder="x-request-id" />
        </Field>
        <button type="submit" class="primary">
          Apply
        </button>
        {filtered && (
          <button type="button" onClick={() => navigate("/records", true)}>
            Clear filters
          </button>
        )}
      </form>
      <ErrorNote error={problem} />
      {lookups.error && <ErrorNote error={lookups.error} retry={lookups.reload} />}
      <Loaded state={page}>
        {(found) => (
          <>
            <Table
              label="Call records"
              rows={found.items}
              onRow={(r) => navigate(`/records/${encodeURIComponent(r.record_id)}`)}
              columns={[
                { title: "Time", cell: (r) => <RecordLink record={r} /> },
                { title: "App", cell: (r) => <span style={{ whiteSpace: "nowrap" }}>{r.app_id ? appLabel(r.app_id) : <span class="muted">(file key)</span>}</span> },
                { title: "Key", cell: (r) => r.key_name || (r.key_id ? `#${r.key_id}` : <span class="muted">–</span>) },
                {
                  title: "Model",
                  cell: (r) => (
                    <>
                      <span class="mono" style={{ whiteSpace: "nowrap" }}>{r.model || "–"}</span>
                      {r.model_served && r.model_served !== r.model && (
                        <div class="muted small" title="the model served">
                          → <span class="mono">{r.model_served}</span>
                        </div>
                      )}
                    </>
                  ),
                },
                { title: "Status", cell: (r) => <StatusCode status={r.status} /> },
                { title: "Outcome", cell: (r) => <Outcome outcome={r.outcome} refusedBy={r.refused_by} /> },
                { title: "Latency", numeric: true, cell: (r) => ms(r.latency_ms) },
                { title: "Input", numeric: true, cell: (r) => count(r.input_tokens) },
                { title: "Output", numeric: true, cell: (r) => count(r.output_tokens) },
                { title: "Cost", numeric: true, cell: (r) => usd(r.cost) },
                { title: "Cache", cell: (r) => (r.cache_hit ? <span class="badge badge-ok">hit</span> : <span class="muted">–</span>) },
              ]}
              empty={
                before ? (
                  <Empty title="No older calls.">
                    <button type="button" onClick={() => pageTo(null)}>
                      Newest
                    </button>
                  </Empty>
                ) : filtered ? (
                  <Empty title="No calls match these filters.">
                    Widen the time range or{" "}
                    <button type="button" class="link" onClick={() => navigate("/records", true)}>
                      clear the filters
                    </button>
                    .
                  </Empty>
                ) : (
                  <Empty title="No calls in the last 24 hours.">
                    Calls made with an app's key are recorded here within a second or so (a gateway serving
                    with a data directory or a database keeps records). <a {...linkTo("/apps")}>Create an app and a key</a>,
                    subscribe it in the <a {...linkTo("/catalog")}>catalog</a>, then call the gateway, or pick a longer range.
                  </Empty>
                )
              }
            />
            {(found.items.length > 0 || before) && (
              <div class="form-actions" style={{ marginTop: "0.75rem", justifyContent: "space-between" }}>
                <span class="muted small">
                  {found.items.length} call{found.items.length === 1 ? "" : "s"}
                  {before ? " (older page)" : ""}
                </span>
                <span style={{ display: "flex", gap: "0.5rem" }}>
                  {before && (
                    <button type="button" onClick={() => pageTo(null)}>
                      Newest
                    </button>
                  )}
                  <button type="button" disabled={!found.next_before} onClick={() => pageTo(found.next_before)}>
                    Older
                  </button>
                </span>
              </div>
            )}
          </>
        )}
      </Loaded>
    </>
  );
}

/** The time, as a real link (middle-click, copy address) that does not also fire the row. */
function RecordLink({ record }: { record: CallRecord }) {
  const link = linkTo(`/records/${encodeURIComponent(record.record_id)}`);
  // The row answers clicks and Enter too: the link's own navigation is enough.
  return (
    <a
      href={link.href}
      style={{ whiteSpace: "nowrap" }}
      onClick={(event: MouseEvent) => {
        event.stopPropagation();
        link.onClick(event);
      }}
      onKeyDown={(event: KeyboardEvent) => event.stopPropagation()}
    >
      {when(record.ts)}
    </a>
  );
}
