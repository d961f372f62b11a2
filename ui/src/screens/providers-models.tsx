// The Models tab: each public model name, the deployments that serve it (provider and the
// provider's model), how calls are routed among them, and where they fall back.
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Confirm, Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { ago, when } from "../components/format";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { isAdmin, useSession } from "../session";
import { type Provider, Problems, RowActions, isObject } from "./providers-common";

type Deployment = {
  provider: string;
  model: string | null;
  name: string | null;
  weight: number;
  rpm: number | null;
  tpm: number | null;
};
type Routing = { strategy: string; retries: number; client_choice: boolean } & Record<string, unknown>;
type Model = {
  id: number;
  name: string;
  deployments: Deployment[];
  routing: Routing;
  fallbacks: string[];
  context_window_fallback: string | null;
  content_policy_fallback: string | null;
  context: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  revision: number;
};

const STRATEGIES: [string, string][] = [
  ["round_robin", "round robin"],
  ["weighted", "weighted"],
  ["least_busy", "least busy"],
  ["lowest_latency", "lowest latency"],
  ["cost", "cost"],
  ["usage", "usage (rpm/tpm)"],
];

function label(d: Deployment): string {
  if (d.name) return d.name;
  return d.model ? `${d.provider}/${d.model}` : d.provider;
}

export function Models() {
  const { me } = useSession();
  const admin = isAdmin(me);
  const state = useLoad(() => all<Model>("/models"), []);
  // Only platform admins may read providers: the others need no provider list.
  const providers = useLoad(
    () => (admin ? all<Provider>("/providers").then((l) => l.map((p) => p.name)) : Promise.resolve([] as string[])),
    [admin],
  );
  const [editing, setEditing] = useState<Model | "new" | null>(null);
  const [deleting, setDeleting] = useState<Model | null>(null);
  return (
    <>
      {admin && (
        <div class="page-actions">
          <button type="button" class="primary" onClick={() => setEditing("new")}>
            Add model
          </button>
        </div>
      )}
      <p class="muted small">
        The names clients ask for, each served by one or more deployments; <code>*</code> routes every other name.
        {!admin && " Platform admins change them."}
      </p>
      <Loaded state={state}>
        {(models) => (
          <Table
            label="Models"
            rows={models}
            columns={[
              { title: "Name", cell: (m) => <code>{m.name}</code> },
              {
                title: "Deployments",
                cell: (m) => (
                  <ul>
                    {m.deployments.map((d) => (
                      <li>
                        {label(d)}
                        <span class="muted small">
                          {" "}
                          · {d.provider}
                          {d.model ? ` → ${d.model}` : " (the name asked for)"} · weight {d.weight}
                          {d.rpm ? ` · ${d.rpm} rpm` : ""}
                          {d.tpm ? ` · ${d.tpm} tpm` : ""}
                        </span>
                      </li>
                    ))}
                  </ul>
                ),
              },
              { title: "Routing", cell: (m) => `${m.routing.strategy.replace(/_/g, " ")}, ${m.routing.retries} retries` },
              {
                title: "Fallbacks",
                cell: (m) => {
                  const parts = [
                    m.fallbacks.length > 0 && `then ${m.fallbacks.join(", ")}`,
                    m.context_window_fallback && `too long: ${m.context_window_fallback}`,
                    m.content_policy_fallback && `refused: ${m.content_policy_fallback}`,
                  ].filter(Boolean);
                  return parts.length > 0 ? parts.join("; ") : <span class="muted">none</span>;
                },
              },
              { title: "Updated", cell: (m) => <span title={when(m.updated_at)}>{ago(m.updated_at)}</span> },
              ...(admin
                ? [
                    {
                      title: "Actions",
                      cell: (m: Model) => (
                        <RowActions what={`model ${m.name}`} onEdit={() => setEditing(m)} onDelete={() => setDeleting(m)} />
                      ),
                    },
                  ]
                : []),
            ]}
            empty={
              <Empty title="No models yet.">
                {admin
                  ? "Add one with “Add model”: a public name and the provider deployments that serve it."
                  : "A platform admin adds them."}
              </Empty>
            }
          />
        )}
      </Loaded>
      {editing && (
        <ModelForm
          model={editing === "new" ? null : editing}
          providers={providers.data ?? []}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            state.reload();
          }}
        />
      )}
      {deleting && (
        <Confirm
          title={`Delete model ${deleting.name}`}
          message={
            <p>
              Delete the model <code>{deleting.name}</code>? Clients asking for it get an unknown-model error. The
              API refuses while a service grants it or another model falls back to it.
            </p>
          }
          action="Delete"
          onCancel={() => setDeleting(null)}
          onDone={async () => {
            await api("DELETE", `/models/${deleting.id}`, { ifMatch: deleting.revision });
            setDeleting(null);
            state.reload();
          }}
        />
      )}
    </>
  );
}

type Row = { provider: string; model: string; name: string; weight: string; rpm: string; tpm: string };

const blankRow = (provider = ""): Row => ({ provider, model: "", name: "", weight: "1", rpm: "", tpm: "" });

function ModelForm({
  model,
  providers,
  onClose,
  onSaved,
}: {
  model: Model | null;
  providers: string[];
  onClose: () => void;
  onSaved: () => void;
}) {
  const [name, setName] = useState(model?.name ?? "");
  const [rows, setRows] = useState<Row[]>(
    model?.deployments.map((d) => ({
      provider: d.provider,
      model: d.model ?? "",
      name: d.name ?? "",
      weight: String(d.weight),
      rpm: d.rpm === null ? "" : String(d.rpm),
      tpm: d.tpm === null ? "" : String(d.tpm),
    })) ?? [blankRow(providers[0])],
  );
  const [strategy, setStrategy] = useState(model?.routing.strategy ?? "round_robin");
  const [retries, setRetries] = useState(String(model?.routing.retries ?? 2));
  const [clientChoice, setClientChoice] = useState(model?.routing.client_choice ?? false);
  const [fallbacks, setFallbacks] = useState((model?.fallbacks ?? []).join(", "));
  const [windowFallback, setWindowFallback] = useState(model?.context_window_fallback ?? "");
  const [policyFallback, setPolicyFallback] = useState(model?.content_policy_fallback ?? "");
  // The rest of routing (retry budget, backoff, breaker) and the context settings, as JSON.
  const [rest, setRest] = useState(() => {
    if (!model) return "{}";
    const { strategy: _s, retries: _r, client_choice: _c, ...routing } = model.routing;
    return JSON.stringify({ routing, context: model.context }, null, 2);
  });
  const setRow = (index: number, patch: Partial<Row>) =>
    setRows((current) => current.map((r, i) => (i === index ? { ...r, ...patch } : r)));

  const save = async () => {
    const problems = new Problems();
    if (rows.length === 0) problems.add("deployments", "give at least one deployment");
    const deployments = rows.map((r, i) => {
      if (!r.provider.trim()) problems.add(`deployments.${i}.provider`, "name the provider");
      return {
        provider: r.provider.trim(),
        model: r.model.trim() || null,
        name: r.name.trim() || null,
        weight: problems.integer(r.weight, `deployments.${i}.weight`, true) ?? 1,
        rpm: problems.integer(r.rpm, `deployments.${i}.rpm`),
        tpm: problems.integer(r.tpm, `deployments.${i}.tpm`),
      };
    });
    const retryCount = problems.integer(retries, "routing.retries", true);
    const other = problems.json(rest.trim() || "{}", "other settings");
    let routing: Record<string, unknown> = {};
    let context: Record<string, unknown> | undefined;
    if (other !== undefined) {
      if (!isObject(other)) problems.add("other settings", 'must be a JSON object: {"routing": {…}, "context": {…}}');
      else {
        const unknown = Object.keys(other).filter((k) => k !== "routing" && k !== "context");
        if (unknown.length > 0) problems.add("other settings", `only routing and context go here, not ${unknown.join(", ")}`);
        if (other.routing !== undefined && !isObject(other.routing)) problems.add("other settings", "routing must be an object");
        if (other.context !== undefined && !isObject(other.context)) problems.add("other settings", "context must be an object");
        if (isObject(other.routing)) routing = other.routing;
        if (isObject(other.context)) context = other.context;
      }
    }
    problems.raise();
    const body: Record<string, unknown> = {
      name: name.trim(),
      deployments,
      routing: { ...routing, strategy, retries: retryCount, client_choice: clientChoice },
      fallbacks: fallbacks
        .split(",")
        .map((f) => f.trim())
        .filter(Boolean),
      context_window_fallback: windowFallback.trim() || null,
      content_policy_fallback: policyFallback.trim() || null,
    };
    if (context) body.context = context;
    if (model) await api("PUT", `/models/${model.id}`, { body, ifMatch: model.revision });
    else await api("POST", "/models", { body });
    onSaved();
  };

  return (
    <Modal title={model ? `Edit model ${model.name}` : "Add model"} onClose={onClose}>
      <Form submit={model ? "Save" : "Add model"} onSubmit={save} onCancel={onClose}>
        <Field label="Name" hint="the public name clients ask for; * routes every other name">
          <Text name="name" value={name} onInput={setName} required />
        </Field>
        <datalist id="model-form-providers">
          {providers.map((p) => (
            <option value={p} />
          ))}
        </datalist>
        <h3>Deployments</h3>
        {rows.map((row, i) => (
          <div class="card">
            <div class="filters">
              <Field label={`Deployment ${i + 1} provider`}>
                <input
                  list="model-form-providers"
                  required
                  value={row.provider}
                  onInput={(e) => setRow(i, { provider: (e.target as HTMLInputElement).value })}
                />
              </Field>
              <Field label={`Deployment ${i + 1} model`} hint="the provider's name; empty: the name asked for">
                <Text value={row.model} onInput={(v) => setRow(i, { model: v })} />
              </Field>
              <Field label={`Deployment ${i + 1} label`} hint="empty: provider/model">
                <Text value={row.name} onInput={(v) => setRow(i, { name: v })} />
              </Field>
              <Field label={`Deployment ${i + 1} weight`} hint="0: standby">
                <Text value={row.weight} onInput={(v) => setRow(i, { weight: v })} />
              </Field>
              <Field label={`Deployment ${i + 1} rpm`} hint="usage strategy">
                <Text value={row.rpm} onInput={(v) => setRow(i, { rpm: v })} />
              </Field>
              <Field label={`Deployment ${i + 1} tpm`} hint="usage strategy">
                <Text value={row.tpm} onInput={(v) => setRow(i, { tpm: v })} />
              </Field>
            </div>
            <button
              type="button"
              class="small"
              aria-label={`Remove deployment ${i + 1}`}
              disabled={rows.length === 1}
              onClick={() => setRows((current) => current.filter((_, j) => j !== i))}
            >
              Remove
            </button>
          </div>
        ))}
        <div>
          <button type="button" onClick={() => setRows((current) => [...current, blankRow(providers[0])])}>
            Add deployment
          </button>
        </div>
        <h3>Routing</h3>
        <Field label="Strategy">
          <Select name="strategy" value={strategy} onChange={setStrategy} options={STRATEGIES} />
        </Field>
        <Field label="Retries" hint="further attempts after the first (0 to 10)">
          <Text name="retries" value={retries} onInput={setRetries} />
        </Field>
        <label>
          <input type="checkbox" checked={clientChoice} onChange={(e) => setClientChoice((e.target as HTMLInputElement).checked)} />{" "}
          Let a request pin a deployment or pick the strategy
        </label>
        <Field label="Fallbacks" hint="model names tried in order when every deployment failed, separated by commas">
          <Text name="fallbacks" value={fallbacks} onInput={setFallbacks} />
        </Field>
        <Field label="Context window fallback" hint="the model a request too long for this one goes to">
          <Text name="context_window_fallback" value={windowFallback} onInput={setWindowFallback} />
        </Field>
        <Field label="Content policy fallback" hint="the model a request refused on content policy goes to">
          <Text name="content_policy_fallback" value={policyFallback} onInput={setPolicyFallback} />
        </Field>
        <Field
          label="Other settings (JSON)"
          hint='{"routing": {retry_budget, backoff_s, max_backoff_s, retry_after_cap_s, breaker}, "context": {…}}; the fields above win'
        >
          <textarea name="other" rows={8} value={rest} onInput={(e) => setRest((e.target as HTMLTextAreaElement).value)} />
        </Field>
      </Form>
    </Modal>
  );
}
