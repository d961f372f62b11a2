// The catalog: every published service the user may subscribe to (public ones, and their own
// teams' private ones), each with its documentation, and subscribing an app to it.
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { ago, Status } from "../components/format";
import { Header } from "../components/layout";
import { type Loaded as LoadState, useLoad } from "../components/load";
import { type Column, Table } from "../components/table";
import { linkTo } from "../router";
import { hasRole, isAdmin, type Me, teamsWith, useSession } from "../session";
import { ApiDocs, type Json, SchemaView } from "./catalog-docs";

type Entry = {
  service_id: number;
  team_id: number;
  team: string;
  name: string;
  kind: string;
  route_prefix: string;
  visibility: string;
  approval: string;
  description: string;
  version: number;
  models: string[] | null;
  input_schema?: Json | null;
  output_schema?: Json | null;
  openapi?: string | null;
  mcp?: string | null;
};

type App = { id: number; team_id: number; name: string; description: string };
type Team = { id: number; name: string };
type Subscription = {
  id: number;
  app_id: number;
  app: string;
  service_id: number;
  service: string;
  status: string;
  note: string;
  reason: string;
  requested_at: string;
  decided_at: string | null;
};

const KINDS: [string, string][] = [
  ["ai", "AI models"],
  ["rest", "REST API"],
  ["prompt", "Prompt API"],
  ["mcp", "MCP server"],
];

function kindLabel(kind: string): string {
  return KINDS.find(([key]) => key === kind)?.[1] ?? kind;
}

function approvalText(entry: Entry): string {
  return entry.approval === "auto" ? "approved at once" : `approved by ${entry.team}`;
}

export function Catalog({ query }: { query: URLSearchParams }) {
  const [search, setSearch] = useState(query.get("q") ?? "");
  const [kind, setKind] = useState(query.get("kind") ?? "");
  const state = useLoad(() => all<Entry>("/catalog"), []);
  return (
    <>
      <Header title="Catalog" sub="Published services your apps may subscribe to: every public one, and your teams' own." />
      <Loaded state={state}>
        {(entries) => {
          const needle = search.trim().toLowerCase();
          const shown = entries.filter(
            (e) =>
              (!kind || e.kind === kind) &&
              (!needle ||
                e.name.toLowerCase().includes(needle) ||
                e.description.toLowerCase().includes(needle) ||
                e.team.toLowerCase().includes(needle)),
          );
          if (entries.length === 0) {
            return (
              <Empty title="Nothing is published yet.">
                A service appears here once its team publishes a version of it (under{" "}
                <a {...linkTo("/services")}>Services</a>).
              </Empty>
            );
          }
          return (
            <>
              <div class="filters">
                <Field label="Search">
                  <Text value={search} onInput={setSearch} placeholder="name or description" type="search" />
                </Field>
                <Field label="Kind">
                  <Select value={kind} onChange={setKind} options={[["", "All kinds"], ...KINDS]} />
                </Field>
              </div>
              {shown.length === 0 ? (
                <Empty title="No service matches.">Try another search or kind.</Empty>
              ) : (
                <div class="grid">
                  {shown.map((e) => (
                    <article class="card" aria-label={`${e.team}/${e.name}`}>
                      <h3 style={{ margin: "0 0 0.25rem" }}>
                        <a {...linkTo(`/catalog/${e.service_id}`)}>{e.name}</a>
                      </h3>
                      <div class="muted small">
                        {e.team} · {kindLabel(e.kind)} · version {e.version}
                        {e.visibility === "private" && " · private to its team"}
                      </div>
                      <p style={{ margin: "0.5rem 0" }}>{e.description || <span class="muted">No description.</span>}</p>
                      <div class="small">
                        Subscriptions: <span class={`badge badge-${e.approval === "auto" ? "approved" : "pending"}`}>{approvalText(e)}</span>
                      </div>
                    </article>
                  ))}
                </div>
              )}
            </>
          );
        }}
      </Loaded>
    </>
  );
}

function canSubscribeTo(me: Me, entry: Entry): boolean {
  if (isAdmin(me)) return true;
  // A private service takes subscriptions from its own team's apps only.
  if (entry.visibility !== "public") return hasRole(me, entry.team_id, "developer");
  return teamsWith(me, "developer").length > 0;
}

export function CatalogEntryScreen({ serviceId }: { serviceId: string }) {
  const { me } = useSession();
  const state = useLoad(() => api<Entry>("GET", `/catalog/${serviceId}`), [serviceId]);
  const subscriptions = useLoad(
    () => all<Subscription>("/subscriptions", { service_id: serviceId, side: "consumer" }),
    [serviceId],
  );
  const [subscribing, setSubscribing] = useState(false);
  if (state.error?.status === 404) {
    return (
      <>
        <Header title="Not in the catalog" />
        <Empty title="This service is not in the catalog.">
          It has no published version yet, or it is not visible to you. <a {...linkTo("/catalog")}>Browse the catalog</a>
        </Empty>
      </>
    );
  }
  return (
    <Loaded state={state}>
      {(entry) => (
        <>
          <Header title={`${entry.team}/${entry.name}`} sub={entry.description || undefined}>
            {hasRole(me, entry.team_id, "viewer") && <a {...linkTo(`/services/${entry.service_id}`)}>Manage the service</a>}
            {canSubscribeTo(me, entry) && (
              <button type="button" class="primary" onClick={() => setSubscribing(true)}>
                Subscribe
              </button>
            )}
          </Header>
          <section class="panel" aria-label="Service">
            <dl class="facts">
              <dt>Team</dt>
              <dd>{entry.team}</dd>
              <dt>Kind</dt>
              <dd>{kindLabel(entry.kind)}</dd>
              <dt>Version</dt>
              <dd>{entry.version}</dd>
              <dt>Route prefix</dt>
              <dd>
                <code>{entry.route_prefix}</code> <span class="muted small">on the gateway</span>
              </dd>
              <dt>Visibility</dt>
              <dd>{entry.visibility === "public" ? "public" : "private: only its team's apps may subscribe"}</dd>
              <dt>Subscriptions</dt>
              <dd>{entry.approval === "auto" ? "approved at once" : `approved by a team admin of ${entry.team}`}</dd>
              {entry.models && entry.models.length > 0 && (
                <>
                  <dt>Models</dt>
                  <dd>
                    {entry.models.map((model, i) => (
                      <>
                        {i > 0 && ", "}
                        <code>{model}</code>
                      </>
                    ))}
                  </dd>
                </>
              )}
              {entry.mcp && (
                <>
                  <dt>MCP endpoint</dt>
                  <dd>
                    <code>{entry.mcp}</code>{" "}
                    <span class="muted small">its tools only; an app's approved subscriptions' tools are all at /mcp</span>
                  </dd>
                </>
              )}
            </dl>
          </section>

          <section class="panel" aria-labelledby="subscriptions-title">
            <div class="page-header" style={{ marginBottom: "0.5rem" }}>
              <h2 id="subscriptions-title" style={{ margin: 0 }}>
                Your subscriptions
              </h2>
              <a {...linkTo("/subscriptions")}>All subscriptions</a>
            </div>
            <YourSubscriptions state={subscriptions} entry={entry} canSubscribe={canSubscribeTo(me, entry)} />
          </section>

          {entry.input_schema && (
            <section class="panel" aria-labelledby="io-title">
              <h2 id="io-title" style={{ marginTop: 0 }}>
                Input and output
              </h2>
              <h3>Input</h3>
              <SchemaView root={entry.input_schema} schema={entry.input_schema} />
              <h3>Output</h3>
              {entry.output_schema ? (
                <SchemaView root={entry.output_schema} schema={entry.output_schema} />
              ) : (
                <p class="muted">Text: the model's answer as it gave it.</p>
              )}
            </section>
          )}

          {entry.openapi && (
            <section class="panel" aria-labelledby="docs-title">
              <h2 id="docs-title" style={{ marginTop: 0 }}>
                API documentation
              </h2>
              <ApiDocs serviceId={entry.service_id} />
            </section>
          )}

          {subscribing && (
            <Subscribe
              entry={entry}
              existing={subscriptions.data ?? []}
              onClose={() => setSubscribing(false)}
              onSubscribed={subscriptions.reload}
            />
          )}
        </>
      )}
    </Loaded>
  );
}

function YourSubscriptions({
  state,
  entry,
  canSubscribe,
}: {
  state: LoadState<Subscription[]>;
  entry: Entry;
  canSubscribe: boolean;
}) {
  const columns: Column<Subscription>[] = [
    { title: "App", cell: (s) => <a {...linkTo(`/apps/${s.app_id}`)}>{s.app}</a> },
    { title: "Status", cell: (s) => <Status value={s.status} /> },
    { title: "Requested", cell: (s) => ago(s.requested_at) },
    { title: "Decided", cell: (s) => ago(s.decided_at) },
    { title: "Note", cell: (s) => s.reason || s.note || <span class="muted">–</span> },
  ];
  return (
    <Loaded state={state}>
      {(rows) => (
        <Table
          label="Your subscriptions"
          columns={columns}
          rows={rows}
          empty={
            <Empty title="None of your apps is subscribed to this service.">
              {canSubscribe
                ? `Subscribe one to call ${entry.team}/${entry.name} with its keys.`
                : entry.visibility === "public"
                  ? "A developer of your team subscribes its apps."
                  : `Only ${entry.team}'s own apps may subscribe to it.`}
            </Empty>
          }
        />
      )}
    </Loaded>
  );
}

function Subscribe({
  entry,
  existing,
  onClose,
  onSubscribed,
}: {
  entry: Entry;
  existing: Subscription[];
  onClose: () => void;
  onSubscribed: () => void;
}) {
  const { me } = useSession();
  const choices = useLoad(async () => {
    const [apps, teams] = await Promise.all([
      all<App>("/apps"),
      isAdmin(me) ? all<Team>("/teams") : Promise.resolve(me.teams.map((t) => ({ id: t.team_id, name: t.team }))),
    ]);
    const names = new Map(teams.map((t) => [t.id, t.name]));
    return apps
      .filter((a) => hasRole(me, a.team_id, "developer"))
      .filter((a) => entry.visibility === "public" || a.team_id === entry.team_id)
      .map((a) => ({ app: a, label: `${names.get(a.team_id) ?? `team ${a.team_id}`}/${a.name}` }))
      .sort((a, b) => a.label.localeCompare(b.label));
  }, [entry.service_id]);
  const [appId, setAppId] = useState("");
  const [note, setNote] = useState("");
  const [result, setResult] = useState<Subscription | null>(null);
  const held = new Map(existing.map((s) => [s.app_id, s.status]));

  const subscribe = async (first: string) => {
    const created = await api<Subscription>("POST", "/subscriptions", {
      body: { app_id: Number(appId || first), service_id: entry.service_id, note },
    });
    setResult(created);
    onSubscribed();
  };

  return (
    <Modal title={`Subscribe to ${entry.team}/${entry.name}`} onClose={onClose}>
      {result ? (
        <div aria-live="polite">
          <p>
            <strong>{result.app}</strong>'s subscription is <Status value={result.status} />
          </p>
          <p>
            {result.status === "approved"
              ? `${result.app} can call ${entry.team}/${entry.name} with its keys now.`
              : result.status === "pending"
                ? `It waits for a team admin of ${entry.team} to approve it.`
                : result.reason || "See your subscriptions for what happened."}
          </p>
          <p>
            <a {...linkTo("/subscriptions")}>See your subscriptions</a>
          </p>
          <footer>
            <button type="button" class="primary" onClick={onClose}>
              Done
            </button>
          </footer>
        </div>
      ) : (
        <Loaded state={choices}>
          {(apps) =>
            apps.length === 0 ? (
              <Empty title="You have no app that may subscribe.">
                {entry.visibility === "public"
                  ? "Create an app in a team where you are a developer, "
                  : `Only ${entry.team}'s apps may subscribe to this private service: create one there, `}
                under <a {...linkTo("/apps")}>Apps &amp; keys</a>.
              </Empty>
            ) : (
              <Form onSubmit={() => subscribe(String(apps[0].app.id))} submit="Request subscription" onCancel={onClose}>
                <p class="muted small">
                  {entry.approval === "auto"
                    ? "This service approves subscriptions at once."
                    : `A team admin of ${entry.team} approves each subscription.`}
                </p>
                <Field label="App">
                  <Select
                    value={appId || String(apps[0].app.id)}
                    onChange={setAppId}
                    options={apps.map(({ app, label }): [string, string] => [
                      String(app.id),
                      held.has(app.id) ? `${label} (${held.get(app.id)})` : label,
                    ])}
                  />
                </Field>
                <Field label="Note (optional)" hint="why it is needed, shown to whoever decides">
                  <textarea
                    rows={3}
                    style={{ minHeight: "4.2rem", fontFamily: "inherit" }}
                    value={note}
                    onInput={(e) => setNote((e.target as HTMLTextAreaElement).value)}
                  />
                </Field>
              </Form>
            )
          }
        </Loaded>
      )}
    </Modal>
  );
}
