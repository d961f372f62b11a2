// Providers & models: the upstreams and their credentials (platform admins only), the public
// model names and their deployments, and the catalog of prices and limits.
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Confirm, Modal } from "../components/dialog";
import { Empty, ErrorNote, Loading } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { ago, when } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { navigate } from "../router";
import { isAdmin, useSession } from "../session";
import { PROVIDER_TYPES, type Provider, Problems, RowActions, isObject } from "./providers-common";
import { Models } from "./providers-models";
import { Pricing } from "./providers-pricing";

const DEFAULT_URL = new Map(PROVIDER_TYPES);
const DEFAULT_TIMEOUTS = {
  connect_s: 10,
  first_byte_s: 300,
  idle_s: 120,
  pool_idle_s: 60,
  max_response_bytes: 67108864,
  total_s: null,
};
const SECRETS = ["api_key", "aws_access_key_id", "aws_secret_access_key", "aws_session_token"] as const;
type Secret = (typeof SECRETS)[number];
const SECRET_LABELS: Record<Secret, string> = {
  api_key: "API key",
  aws_access_key_id: "AWS access key id",
  aws_secret_access_key: "AWS secret access key",
  aws_session_token: "AWS session token",
};

const TABS = [
  ["providers", "Providers"],
  ["models", "Models"],
  ["pricing", "Pricing"],
] as const;

export function Providers({ query }: { query: URLSearchParams }) {
  const asked = query.get("tab");
  const tab = TABS.some(([key]) => key === asked) ? asked : "providers";
  return (
    <>
      <Header title="Providers & models" sub="The upstreams the gateway calls, the model names clients ask for, and what they cost." />
      <div class="tabs" role="tablist">
        {TABS.map(([key, label]) => (
          <button
            type="button"
            role="tab"
            aria-selected={tab === key}
            onClick={() => navigate(key === "providers" ? "/providers" : `/providers?tab=${key}`, true)}
          >
            {label}
          </button>
        ))}
      </div>
      <div role="tabpanel">
        {tab === "providers" && <ProviderList />}
        {tab === "models" && <Models />}
        {tab === "pricing" && <Pricing />}
      </div>
    </>
  );
}

function credentialsOf(p: Provider): string {
  const stored = p.credentials_set.map((name) => `${name} (stored)`);
  const s = p.settings;
  const env = [
    s.api_key_env && `api_key from $${s.api_key_env}`,
    s.aws_access_key_id_env && `aws_access_key_id from $${s.aws_access_key_id_env}`,
    s.aws_secret_access_key_env && `aws_secret_access_key from $${s.aws_secret_access_key_env}`,
    s.aws_session_token_env && `aws_session_token from $${s.aws_session_token_env}`,
  ].filter((x): x is string => Boolean(x));
  return [...stored, ...env].join(", ") || "none";
}

function ProviderList() {
  const { me } = useSession();
  const admin = isAdmin(me);
  const state = useLoad(() => all<Provider>("/providers"), []);
  const [editing, setEditing] = useState<Provider | "new" | null>(null);
  const [deleting, setDeleting] = useState<Provider | null>(null);

  if (state.error?.status === 403) {
    return (
      <Empty title="Providers are managed by platform admins.">
        Their addresses and credentials are not shown to other users (the admin API answered:{" "}
        {state.error.message}). The Models and Pricing tabs show the models you can use.
      </Empty>
    );
  }
  if (state.error) return <ErrorNote error={state.error} retry={state.reload} />;
  if (!state.data) return <Loading what="Loading providers" />;
  return (
    <>
      {admin && (
        <div class="page-actions">
          <button type="button" class="primary" onClick={() => setEditing("new")}>
            New provider
          </button>
        </div>
      )}
      <p class="muted small">Credentials are write-only: Tollway keeps them encrypted and never shows them.</p>
      <Table
        label="Providers"
        rows={state.data}
        columns={[
          { title: "Name", cell: (p) => <strong>{p.name}</strong> },
          { title: "Type", cell: (p) => <code>{p.settings.type}</code> },
          {
            title: "Base URL",
            cell: (p) =>
              p.settings.base_url ? (
                <code>{p.settings.base_url}</code>
              ) : (
                <span class="muted">{DEFAULT_URL.get(p.settings.type) ?? "–"} (the type's)</span>
              ),
          },
          { title: "Credentials", cell: credentialsOf },
          { title: "Updated", cell: (p) => <span title={when(p.updated_at)}>{ago(p.updated_at)}</span> },
          ...(admin
            ? [
                {
                  title: "Actions",
                  cell: (p: Provider) => (
                    <RowActions what={`provider ${p.name}`} onEdit={() => setEditing(p)} onDelete={() => setDeleting(p)} />
                  ),
                },
              ]
            : []),
        ]}
        empty={
          <Empty title="No providers yet.">
            {admin
              ? "Add one with “New provider”: its type, address and key. Then add a model that deploys on it."
              : "A platform admin adds them."}
          </Empty>
        }
      />
      {editing && (
        <ProviderForm
          provider={editing === "new" ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            state.reload();
          }}
        />
      )}
      {deleting && (
        <Confirm
          title={`Delete provider ${deleting.name}`}
          message={
            <p>
              Delete the provider {deleting.name} and its stored credentials? The API refuses while a model
              deploys on it: change those models first.
            </p>
          }
          action="Delete"
          onCancel={() => setDeleting(null)}
          onDone={async () => {
            await api("DELETE", `/providers/${deleting.id}`, { ifMatch: deleting.revision });
            setDeleting(null);
            state.reload();
          }}
        />
      )}
    </>
  );
}

function ProviderForm({
  provider,
  onClose,
  onSaved,
}: {
  provider: Provider | null;
  onClose: () => void;
  onSaved: () => void;
}) {
  const s = provider?.settings;
  const [name, setName] = useState(provider?.name ?? "");
  const [type, setType] = useState(s?.type ?? "openai_compatible");
  const [baseUrl, setBaseUrl] = useState(s?.base_url ?? "");
  const [apiKeyEnv, setApiKeyEnv] = useState(s?.api_key_env ?? "");
  const [apiVersion, setApiVersion] = useState(s?.api_version ?? "");
  const [region, setRegion] = useState(s?.region ?? "");
  const [awsIdEnv, setAwsIdEnv] = useState(s?.aws_access_key_id_env ?? "");
  const [awsSecretEnv, setAwsSecretEnv] = useState(s?.aws_secret_access_key_env ?? "");
  const [awsTokenEnv, setAwsTokenEnv] = useState(s?.aws_session_token_env ?? "");
  const [headers, setHeaders] = useState(
    Object.entries(s?.headers ?? {})
      .map(([k, v]) => `${k}: ${v}`)
      .join("\n"),
  );
  const [caFile, setCaFile] = useState(s?.ca_file ?? "");
  const [idle, setIdle] = useState(String(s?.max_idle_connections ?? 256));
  const [timeouts, setTimeouts] = useState(JSON.stringify(s?.timeouts ?? DEFAULT_TIMEOUTS, null, 2));
  const [secrets, setSecrets] = useState<Record<Secret, string>>({
    api_key: "",
    aws_access_key_id: "",
    aws_secret_access_key: "",
    aws_session_token: "",
  });
  const [removeStored, setRemoveStored] = useState(false);
  const bedrock = type === "bedrock";
  const shownSecrets = SECRETS.filter((name) => bedrock || name === "api_key");
  const stored = provider?.credentials_set ?? [];

  const save = async () => {
    const problems = new Problems();
    const headerMap: Record<string, string> = {};
    headers.split("\n").forEach((line, i) => {
      if (!line.trim()) return;
      const colon = line.indexOf(":");
      if (colon <= 0) problems.add("headers", `line ${i + 1}: write it as header: value`);
      else headerMap[line.slice(0, colon).trim()] = line.slice(colon + 1).trim();
    });
    const parsedTimeouts = problems.json(timeouts, "timeouts");
    if (parsedTimeouts !== undefined && !isObject(parsedTimeouts)) problems.add("timeouts", "must be a JSON object");
    const maxIdle = problems.integer(idle, "max_idle_connections", true);
    problems.raise();
    const body: Record<string, unknown> = { name: name.trim(), type, headers: headerMap, timeouts: parsedTimeouts };
    const optional: [string, string][] = [
      ["base_url", baseUrl],
      ["api_key_env", apiKeyEnv],
      ["api_version", apiVersion],
      ["region", region],
      ["aws_access_key_id_env", awsIdEnv],
      ["aws_secret_access_key_env", awsSecretEnv],
      ["aws_session_token_env", awsTokenEnv],
      ["ca_file", caFile],
    ];
    for (const [field, value] of optional) if (value.trim()) body[field] = value.trim();
    body.max_idle_connections = maxIdle;
    // `credentials` absent keeps the stored ones (PUT); given, it replaces the whole set.
    const given = Object.fromEntries(shownSecrets.filter((k) => secrets[k] !== "").map((k) => [k, secrets[k]]));
    if (Object.keys(given).length > 0) body.credentials = given;
    else if (removeStored) body.credentials = {};
    if (provider) await api("PUT", `/providers/${provider.id}`, { body, ifMatch: provider.revision });
    else await api("POST", "/providers", { body });
    onSaved();
  };

  const defaultUrl = DEFAULT_URL.get(type);
  return (
    <Modal title={provider ? `Edit provider ${provider.name}` : "New provider"} onClose={onClose}>
      <Form submit={provider ? "Save" : "Create provider"} onSubmit={save} onCancel={onClose}>
        <Field label="Name" hint="how models' deployments name it: letters, digits, . _ -">
          <Text name="name" value={name} onInput={setName} required pattern="[A-Za-z0-9][A-Za-z0-9._\-]{0,62}" />
        </Field>
        <Field label="Type" hint="its wire format">
          <Select name="type" value={type} onChange={setType} options={PROVIDER_TYPES.map(([t]) => [t, t])} />
        </Field>
        <Field
          label="Base URL"
          hint={defaultUrl ? `empty: ${defaultUrl}` : "required for this type, e.g. http://127.0.0.1:8000/v1"}
        >
          <Text name="base_url" value={baseUrl} onInput={setBaseUrl} placeholder={defaultUrl ?? ""} />
        </Field>
        {type === "azure" && (
          <Field label="API version" hint="azure: the api-version query parameter (required)">
            <Text name="api_version" value={apiVersion} onInput={setApiVersion} required />
          </Field>
        )}
        {bedrock && (
          <Field label="Region" hint="bedrock: the AWS region (required)">
            <Text name="region" value={region} onInput={setRegion} required />
          </Field>
        )}
        <Field label="API key environment variable" hint="the variable that holds the key on the gateway's host; or give the key itself below">
          <Text name="api_key_env" value={apiKeyEnv} onInput={setApiKeyEnv} />
        </Field>
        {bedrock && (
          <>
            <Field label="AWS access key id environment variable">
              <Text name="aws_access_key_id_env" value={awsIdEnv} onInput={setAwsIdEnv} />
            </Field>
            <Field label="AWS secret access key environment variable">
              <Text name="aws_secret_access_key_env" value={awsSecretEnv} onInput={setAwsSecretEnv} />
            </Field>
            <Field label="AWS session token environment variable">
              <Text name="aws_session_token_env" value={awsTokenEnv} onInput={setAwsTokenEnv} />
            </Field>
          </>
        )}
        <p class="muted small">
          {provider
            ? stored.length > 0
              ? `Stored now: ${stored.join(", ")}. Leave these empty to keep them; entering any replaces the whole stored set, so enter every one the provider needs.`
              : "No credentials are stored for it. Each one given here excludes its environment variable."
            : "Credentials are stored encrypted and never shown again. Each one excludes its environment variable."}
        </p>
        {shownSecrets.map((secret) => (
          <Field label={SECRET_LABELS[secret]} hint={provider && stored.length > 0 ? "empty: keep the stored credentials" : undefined}>
            <Text
              name={secret}
              type="password"
              autoComplete="new-password"
              value={secrets[secret]}
              onInput={(value) => setSecrets((current) => ({ ...current, [secret]: value }))}
            />
          </Field>
        ))}
        {provider && stored.length > 0 && (
          <label>
            <input
              type="checkbox"
              checked={removeStored}
              onChange={(e) => setRemoveStored((e.target as HTMLInputElement).checked)}
            />{" "}
            Remove the stored credentials (when no new ones are entered)
          </label>
        )}
        <details>
          <summary>Headers, TLS, connections and timeouts</summary>
          <div class="form">
            <Field label="Extra headers" hint="one per line, as header: value; sent upstream on every request">
              <textarea name="headers" rows={3} value={headers} onInput={(e) => setHeaders((e.target as HTMLTextAreaElement).value)} />
            </Field>
            <Field label="CA file" hint="PEM file of a private CA, on the gateway's host; empty: the system's trust store">
              <Text name="ca_file" value={caFile} onInput={setCaFile} />
            </Field>
            <Field label="Max idle connections" hint="kept open per worker">
              <Text name="max_idle_connections" value={idle} onInput={setIdle} />
            </Field>
            <Field label="Timeouts (JSON)" hint="connect_s, first_byte_s, idle_s, total_s, pool_idle_s, max_response_bytes">
              <textarea name="timeouts" rows={8} value={timeouts} onInput={(e) => setTimeouts((e.target as HTMLTextAreaElement).value)} />
            </Field>
          </div>
        </details>
      </Form>
    </Modal>
  );
}
