// One call record, every field of it, and its request and response bodies when the service
// records them (redacted by the gateway before they were ever written).
import type { ComponentChildren } from "preact";
import { api } from "../api";
import { CopyButton } from "../components/copy";
import { Loaded } from "../components/feedback";
import { count, ms, usd, when } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { linkTo } from "../router";

/** A call record as GET /analytics/records lists it (no bodies). */
export type CallRecord = {
  record_id: string;
  ts: string;
  request_id: string;
  trace_id: string;
  team_id: number;
  app_id: number;
  key_id: number;
  key_name: string;
  service_id: number;
  service_version: number;
  api: string;
  model: string;
  model_served: string;
  provider: string;
  deployment: string;
  stream: boolean;
  status: number;
  error_code: string;
  outcome: string;
  refused_by: string;
  latency_ms: number;
  upstream_ms: number | null;
  ttft_ms: number | null;
  input_tokens: number;
  output_tokens: number;
  cached_tokens: number;
  cache_write_tokens: number;
  reasoning_tokens: number;
  context_saved_tokens: number;
  request_bytes: number;
  cost: string | null;
  retries: number;
  cache_hit: boolean;
  client_address: string;
  user_agent: string;
};
type FullRecord = CallRecord & { request_body: string | null; response_body: string | null };

// The list's path with its filters, so that the way back from a record lands on the same view
// (a module variable: it only has to outlive the list screen's unmounting).
let listPath = "/records";
export function rememberList(path: string): void {
  listPath = path;
}

/** A badge for the HTTP status answered (0: the client left before any answer). */
export function StatusCode({ status }: { status: number }) {
  const tone = status === 0 || status >= 500 ? "badge-error" : status >= 400 ? "badge-pending" : "badge-ok";
  return (
    <span class={`badge ${tone}`} title={status === 0 ? "no answer: the client left first" : undefined}>
      {status === 0 ? "none" : status}
    </span>
  );
}

export function Outcome({ outcome, refusedBy }: { outcome: string; refusedBy?: string }) {
  const tone = outcome === "completed" ? "badge-ok" : outcome === "refused" ? "badge-pending" : "badge-error";
  const text = outcome.replace(/_/g, " ") + (outcome === "refused" && refusedBy ? ` by ${refusedBy.replace(/_/g, " ")}` : "");
  return <span class={`badge ${tone}`}>{text}</span>;
}

type Names = { team: string | null; app: string | null; service: string | null };

// Names are a courtesy: a team member sees the calls to its services from other teams' apps,
// whose app and team it may not read, so a refused look-up leaves the id alone.
async function namesOf(record: CallRecord): Promise<Names> {
  const name = async (path: string, id: number): Promise<string | null> => {
    if (!id) return null;
    try {
      return (await api<{ name: string }>("GET", `${path}/${id}`)).name;
    } catch {
      return null;
    }
  };
  const [team, app, service] = await Promise.all([
    name("/teams", record.team_id),
    name("/apps", record.app_id),
    name("/services", record.service_id),
  ]);
  return { team, app, service };
}

export function RecordDetail({ recordId }: { recordId: string }) {
  const state = useLoad(async () => {
    const record = await api<FullRecord>("GET", `/analytics/records/${encodeURIComponent(recordId)}`);
    return { record, names: await namesOf(record) };
  }, [recordId]);
  return (
    <>
      <Header title="Call record" sub={<span class="mono">{recordId}</span>}>
        <a {...linkTo(listPath)}>← Back to call records</a>
        <button type="button" onClick={state.reload}>
          Refresh
        </button>
      </Header>
      <Loaded state={state}>{({ record, names }) => <RecordView record={record} names={names} />}</Loaded>
    </>
  );
}

function Facts({ title, rows }: { title: string; rows: [string, ComponentChildren][] }) {
  return (
    <section class="panel">
      <h2 style={{ marginTop: 0 }}>{title}</h2>
      <dl class="facts">
        {rows.map(([label, value]) => (
          <>
            <dt>{label}</dt>
            <dd>{value}</dd>
          </>
        ))}
      </dl>
    </section>
  );
}

const none = <span class="muted">–</span>;

function text(value: string): ComponentChildren {
  return value ? value : none;
}

function named(name: string | null, id: number, path: string): ComponentChildren {
  return (
    <a {...linkTo(`${path}/${id}`)}>
      {name ?? `#${id}`}
      {name && <span class="muted small"> #{id}</span>}
    </a>
  );
}

function RecordView({ record: r, names }: { record: FullRecord; names: Names }) {
  const fileKey = r.app_id === 0;
  return (
    <>
      <div class="grid">
        <Facts
          title="Who"
          rows={[
            ["Team", r.team_id ? named(names.team, r.team_id, "/teams") : <span class="muted">none (a key declared in the configuration file)</span>],
            ["App", fileKey ? <span class="muted">none (a key declared in the configuration file)</span> : named(names.app, r.app_id, "/apps")],
            ["Key", r.key_name || r.key_id ? <>{r.key_name || none}{r.key_id ? <span class="muted small"> #{r.key_id}</span> : null}</> : none],
            ["Service", r.service_id ? <>{named(names.service, r.service_id, "/services")}{r.service_version ? <span class="muted small"> · version {r.service_version}</span> : null}</> : none],
            ["Client address", r.client_address ? <span class="mono">{r.client_address}</span> : none],
            ["User agent", text(r.user_agent)],
          ]}
        />
        <Facts
          title="What"
          rows={[
            ["API", text(r.api)],
            ["Model", r.model ? <span class="mono">{r.model}</span> : none],
            ["Model served", r.model_served ? <span class="mono">{r.model_served}</span> : none],
            ["Provider", text(r.provider)],
            ["Deployment", text(r.deployment)],
            ["Stream", r.stream ? "yes" : "no"],
            ["Request bytes", count(r.request_bytes)],
          ]}
        />
        <Facts
          title="How it went"
          rows={[
            ["Status", <StatusCode status={r.status} />],
            ["Outcome", <Outcome outcome={r.outcome} />],
            ["Error code", r.error_code ? <code>{r.error_code}</code> : none],
            ["Refused by", text(r.refused_by)],
            ["Retries", count(r.retries)],
            ["Cache hit", r.cache_hit ? "yes, answered from the gateway's cache" : "no"],
          ]}
        />
        <Facts
          title="Timing"
          rows={[
            ["Latency", ms(r.latency_ms)],
            ["Upstream", ms(r.upstream_ms)],
            ["Time to first token", ms(r.ttft_ms)],
            ["At", when(r.ts)],
          ]}
        />
        <Facts
          title="Tokens and cost"
          rows={[
            ["Input", count(r.input_tokens)],
            ["Output", count(r.output_tokens)],
            ["Cached input", count(r.cached_tokens)],
            ["Cache write", count(r.cache_write_tokens)],
            ["Reasoning", count(r.reasoning_tokens)],
            ["Context saved", count(r.context_saved_tokens)],
            ["Cost", r.cost === null ? <span class="muted">unknown (the model has no price, or no usage was reported)</span> : usd(r.cost)],
          ]}
        />
        <Facts
          title="Identifiers"
          rows={[
            ["Record id", <Ident value={r.record_id} what="record id" />],
            [
              "Request id",
              r.request_id ? (
                <>
                  <Ident value={r.request_id} what="request id" />
                  <div>
                    <a {...linkTo(`/records?request_id=${encodeURIComponent(r.request_id)}`)}>Every call with this request id</a>
                  </div>
                </>
              ) : (
                none
              ),
            ],
            ["Trace id", r.trace_id ? <Ident value={r.trace_id} what="trace id" /> : <span class="muted">none (no traceparent sent)</span>],
          ]}
        />
      </div>
      <Body title="Request body" body={r.request_body} />
      <Body title="Response body" body={r.response_body} />
    </>
  );
}

function Ident({ value, what }: { value: string; what: string }) {
  return (
    <span style={{ display: "inline-flex", gap: "0.5rem", alignItems: "center", flexWrap: "wrap" }}>
      <code style={{ wordBreak: "break-all" }}>{value}</code>
      <CopyButton text={value} label={`Copy ${what}`} />
    </span>
  );
}

/** JSON pretty-printed when it parses (a streamed answer is kept as its joined text). */
function pretty(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

function Body({ title, body }: { title: string; body: string | null }) {
  const shown = body === null ? null : pretty(body);
  return (
    <section class="panel">
      <div style={{ display: "flex", justifyContent: "space-between", alignItems: "center", gap: "1rem" }}>
        <h2 style={{ margin: 0 }}>{title}</h2>
        {shown !== null && shown !== "" && <CopyButton text={shown} label={`Copy ${title.toLowerCase()}`} />}
      </div>
      {shown === null ? (
        <p class="muted">
          Not recorded. Bodies are kept only for services whose team admin turned recording on (the
          service's recording settings), cut to its size limit, with secrets redacted.
        </p>
      ) : shown === "" ? (
        <p class="muted">Empty.</p>
      ) : (
        <pre aria-label={title}>{shown}</pre>
      )}
    </section>
  );
}
