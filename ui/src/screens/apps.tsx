// Apps and their keys: an app is what calls the gateway (one team's), a key is how it proves
// it; a new key's secret is shown once. An app's subscriptions and MCP endpoints are here too.
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { SecretOnce } from "../components/copy";
import { Confirm, Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { Status, ago, when } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { linkTo, navigate } from "../router";
import { hasRole, isAdmin, teamsWith, useSession } from "../session";

export type App = {
  id: number;
  team_id: number;
  name: string;
  description: string;
  created_at: string;
  revision: number;
};
type Team = { id: number; name: string };
type Key = {
  id: number;
  name: string;
  prefix: string;
  models: string[] | null;
  cidrs: string[] | null;
  expires_at: string | null;
  revoked_at: string | null;
  rotated_from: number | null;
  created_at: string;
  revision: number;
};
type NewKey = Key & { key: string };
type Subscription = { id: number; service_id: number; service: string; status: string; requested_at: string; reason: string | null };
type Mcp = { endpoint: string; services: { service_id: number; service: string; kind: string; endpoint: string; subscription: string }[] };

/** The teams the user may make apps in: every team for an admin, else developer or more. */
export function useTeams() {
  const { me } = useSession();
  return useLoad(async () => {
    const teams = await all<Team>("/teams");
    return isAdmin(me) ? teams : teams.filter((t) => teamsWith(me, "developer").some((m) => m.team_id === t.id));
  }, [me]);
}

export function Apps() {
  const { me } = useSession();
  const state = useLoad(() => Promise.all([all<App>("/apps"), all<Team>("/teams")]), []);
  const [creating, setCreating] = useState(false);
  const mayCreate = isAdmin(me) || teamsWith(me, "developer").length > 0;
  return (
    <>
      <Header title="Apps & keys" sub="An app calls the gateway with its keys; subscribe it to services in the catalog.">
        {mayCreate && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New app
          </button>
        )}
      </Header>
      <Loaded state={state}>
        {([apps, teams]) => (
          <Table
            label="Apps"
            rows={apps}
            onRow={(app) => navigate(`/apps/${app.id}`)}
            columns={[
              { title: "App", cell: (a) => <a {...linkTo(`/apps/${a.id}`)}>{a.name}</a> },
              { title: "Team", cell: (a) => teams.find((t) => t.id === a.team_id)?.name ?? a.team_id },
              { title: "Description", cell: (a) => a.description || <span class="muted">–</span> },
              { title: "Created", cell: (a) => ago(a.created_at) },
            ]}
            empty={
              <Empty title="No apps yet.">
                {mayCreate ? "Create an app, then a key for it, and subscribe it to a service in the catalog." : "Ask a team admin to make you a developer in a team to create apps."}
              </Empty>
            }
          />
        )}
      </Loaded>
      {creating && <NewApp onClose={() => setCreating(false)} />}
    </>
  );
}

function NewApp({ onClose }: { onClose: () => void }) {
  const teams = useTeams();
  const [teamId, setTeamId] = useState("");
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  return (
    <Modal title="New app" onClose={onClose}>
      <Loaded state={teams}>
        {(choices) =>
          choices.length === 0 ? (
            <Empty title="No team to create it in." />
          ) : (
            <Form
              submit="Create app"
              onCancel={onClose}
              onSubmit={async () => {
                const made = await api<App>("POST", "/apps", {
                  body: { team_id: Number(teamId || choices[0].id), name, description },
                });
                navigate(`/apps/${made.id}`);
              }}
            >
              <Field label="Team">
                <Select name="team" value={teamId || String(choices[0].id)} onChange={setTeamId} options={choices.map((t) => [String(t.id), t.name])} />
              </Field>
              <Field label="App name" hint="lower-case letters, digits, '.', '_' and '-'">
                <Text name="name" value={name} onInput={setName} required pattern="[a-z0-9][a-z0-9._\-]{0,62}" />
              </Field>
              <Field label="Description">
                <Text name="description" value={description} onInput={setDescription} />
              </Field>
            </Form>
          )
        }
      </Loaded>
    </Modal>
  );
}

export function AppDetail({ appId }: { appId: string }) {
  const { me } = useSession();
  const state = useLoad(
    () =>
      Promise.all([
        api<App>("GET", `/apps/${appId}`),
        all<Key>(`/apps/${appId}/keys`),
        all<Subscription>("/subscriptions", { app_id: appId }),
        api<Mcp>("GET", `/apps/${appId}/mcp`),
      ]),
    [appId],
  );
  const [dialog, setDialog] = useState<"edit" | "delete" | "key" | null>(null);
  const [secret, setSecret] = useState<string | null>(null);
  const [acting, setActing] = useState<{ key: Key; action: "revoke" | "rotate" | "delete" } | null>(null);
  return (
    <Loaded state={state}>
      {([app, keys, subscriptions, mcp]) => {
        const mayEdit = hasRole(me, app.team_id, "developer");
        return (
          <>
            <Header title={app.name} sub={<><a {...linkTo("/apps")}>Apps</a> · {app.description || "no description"}</>}>
              {mayEdit && (
                <>
                  <button type="button" onClick={() => setDialog("edit")}>
                    Edit app
                  </button>
                  <button type="button" class="danger" onClick={() => setDialog("delete")}>
                    Delete app
                  </button>
                </>
              )}
            </Header>
            {secret && (
              <div class="panel">
                <SecretOnce secret={secret} what="key" />
                <p class="small muted">
                  Use it as the API key of any OpenAI- or Anthropic-compatible client pointed at the gateway, e.g.{" "}
                  <code>OpenAI(base_url="http://GATEWAY/v1", api_key=…)</code>.
                </p>
                <button type="button" onClick={() => setSecret(null)}>
                  I have copied it
                </button>
              </div>
            )}
            <div class="panel">
              <div class="page-header" style={{ marginBottom: "0.5rem" }}>
                <h2 style={{ margin: 0 }}>Keys</h2>
                {mayEdit && (
                  <button type="button" class="primary" onClick={() => setDialog("key")}>
                    New key
                  </button>
                )}
              </div>
              <Table
                label="Keys"
                rows={keys}
                columns={[
                  { title: "Name", cell: (k) => k.name },
                  { title: "Key", cell: (k) => <code>{k.prefix}…</code> },
                  { title: "Models", cell: (k) => k.models?.join(", ") ?? <span class="muted">any</span> },
                  { title: "Networks", cell: (k) => k.cidrs?.join(", ") ?? <span class="muted">any</span> },
                  { title: "Expires", cell: (k) => (k.expires_at ? when(k.expires_at) : <span class="muted">never</span>) },
                  { title: "Status", cell: (k) => <Status value={k.revoked_at ? "revoked" : "active"} /> },
                  {
                    title: "",
                    cell: (k) =>
                      mayEdit && (
                        <span class="page-actions">
                          {!k.revoked_at && (
                            <>
                              <button type="button" class="small" onClick={() => setActing({ key: k, action: "rotate" })}>
                                Rotate
                              </button>
                              <button type="button" class="small" onClick={() => setActing({ key: k, action: "revoke" })}>
                                Revoke
                              </button>
                            </>
                          )}
                          <button type="button" class="small" onClick={() => setActing({ key: k, action: "delete" })}>
                            Delete
                          </button>
                        </span>
                      ),
                  },
                ]}
                empty={<Empty title="No keys yet.">{mayEdit ? "Create a key to call the gateway as this app." : null}</Empty>}
              />
            </div>
            <div class="panel">
              <div class="page-header" style={{ marginBottom: "0.5rem" }}>
                <h2 style={{ margin: 0 }}>Subscriptions</h2>
                <a {...linkTo("/catalog")}>Find services in the catalog</a>
              </div>
              <Table
                label="Subscriptions"
                rows={subscriptions}
                columns={[
                  { title: "Service", cell: (s) => <a {...linkTo(`/catalog/${s.service_id}`)}>{s.service}</a> },
                  { title: "Status", cell: (s) => <Status value={s.status} /> },
                  { title: "Requested", cell: (s) => ago(s.requested_at) },
                  { title: "Reason", cell: (s) => s.reason ?? "" },
                ]}
                empty={<Empty title="Not subscribed to anything yet.">Subscribe from a service's page in the catalog.</Empty>}
              />
            </div>
            <div class="panel">
              <h2 style={{ marginTop: 0 }}>MCP</h2>
              <p>
                Every tool of its approved subscriptions: <code>{mcp.endpoint}</code> (on the gateway's address, with this app's key as a bearer token).
              </p>
              {mcp.services.length > 0 && (
                <Table
                  label="MCP endpoints"
                  rows={mcp.services}
                  columns={[
                    { title: "Service", cell: (s) => s.service },
                    { title: "Kind", cell: (s) => s.kind },
                    { title: "Endpoint", cell: (s) => <code>{s.endpoint}</code> },
                    { title: "Subscription", cell: (s) => <Status value={s.subscription} /> },
                  ]}
                  empty={null}
                />
              )}
            </div>
            {dialog === "edit" && <EditApp app={app} onClose={() => setDialog(null)} onDone={state.reload} />}
            {dialog === "delete" && (
              <Confirm
                title="Delete app"
                message={<p>Delete <strong>{app.name}</strong> with its {keys.length} key(s) and its subscriptions? Calls with its keys fail from now on.</p>}
                action="Delete app"
                onCancel={() => setDialog(null)}
                onDone={async () => {
                  await api("DELETE", `/apps/${app.id}`, { ifMatch: app.revision });
                  navigate("/apps");
                }}
              />
            )}
            {dialog === "key" && (
              <NewKeyDialog
                appId={app.id}
                onClose={() => setDialog(null)}
                onMade={(made) => {
                  setDialog(null);
                  setSecret(made.key);
                  state.reload();
                }}
              />
            )}
            {acting && (
              <Confirm
                title={`${acting.action[0].toUpperCase()}${acting.action.slice(1)} key`}
                message={
                  acting.action === "rotate" ? (
                    <p>Make a new key with the settings of <strong>{acting.key.name}</strong>? The old one stops working at once.</p>
                  ) : acting.action === "revoke" ? (
                    <p>Revoke <strong>{acting.key.name}</strong>? Calls with it fail from now on; its record is kept.</p>
                  ) : (
                    <p>Delete <strong>{acting.key.name}</strong> for good?</p>
                  )
                }
                action={acting.action === "rotate" ? "Rotate key" : acting.action === "revoke" ? "Revoke key" : "Delete key"}
                onCancel={() => setActing(null)}
                onDone={async () => {
                  const path = `/apps/${app.id}/keys/${acting.key.id}`;
                  if (acting.action === "rotate") {
                    const made = await api<NewKey>("POST", `${path}/rotate`, { body: { overlap_s: 0 }, ifMatch: acting.key.revision });
                    setSecret(made.key);
                  } else if (acting.action === "revoke") {
                    await api("POST", `${path}/revoke`, { ifMatch: acting.key.revision });
                  } else {
                    await api("DELETE", path, { ifMatch: acting.key.revision });
                  }
                  setActing(null);
                  state.reload();
                }}
              />
            )}
          </>
        );
      }}
    </Loaded>
  );
}

function EditApp({ app, onClose, onDone }: { app: App; onClose: () => void; onDone: () => void }) {
  const [name, setName] = useState(app.name);
  const [description, setDescription] = useState(app.description);
  return (
    <Modal title="Edit app" onClose={onClose}>
      <Form
        submit="Save"
        onCancel={onClose}
        onSubmit={async () => {
          await api("PATCH", `/apps/${app.id}`, { body: { name, description }, ifMatch: app.revision });
          onClose();
          onDone();
        }}
      >
        <Field label="App name">
          <Text name="name" value={name} onInput={setName} required />
        </Field>
        <Field label="Description">
          <Text name="description" value={description} onInput={setDescription} />
        </Field>
      </Form>
    </Modal>
  );
}

function NewKeyDialog({ appId, onClose, onMade }: { appId: number; onClose: () => void; onMade: (key: NewKey) => void }) {
  const [name, setName] = useState("");
  const [models, setModels] = useState("");
  const [cidrs, setCidrs] = useState("");
  const [expires, setExpires] = useState("");
  const list = (text: string) => {
    const items = text.split(",").map((s) => s.trim()).filter(Boolean);
    return items.length ? items : null;
  };
  return (
    <Modal title="New key" onClose={onClose}>
      <Form
        submit="Create key"
        onCancel={onClose}
        onSubmit={async () => {
          const made = await api<NewKey>("POST", `/apps/${appId}/keys`, {
            body: {
              name,
              models: list(models),
              cidrs: list(cidrs),
              expires_at: expires ? new Date(expires).toISOString() : null,
            },
          });
          onMade(made);
        }}
      >
        <Field label="Key name">
          <Text name="name" value={name} onInput={setName} required />
        </Field>
        <Field label="Models" hint="comma-separated; empty: any model its subscriptions allow">
          <Text name="models" value={models} onInput={setModels} placeholder="gpt-4o-mini, claude-*" />
        </Field>
        <Field label="Networks" hint="comma-separated CIDRs it may call from; empty: anywhere">
          <Text name="cidrs" value={cidrs} onInput={setCidrs} placeholder="10.0.0.0/8" />
        </Field>
        <Field label="Expires" hint="empty: never">
          <Text name="expires" type="datetime-local" value={expires} onInput={setExpires} />
        </Field>
      </Form>
    </Modal>
  );
}
