// Settings › Webhooks: where events (budget alerts, ...) are POSTed. A team's webhook takes
// that team's events and is its team admins' to manage; a platform webhook (platform admins
// only) takes every event. The signing secret is chosen here and never shown again.
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { CopyButton } from "../components/copy";
import { Confirm, Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { Status, ago } from "../components/format";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { isAdmin, teamsWith, useSession } from "../session";

type Webhook = {
  id: number;
  team_id: number | null;
  name: string;
  url: string;
  kinds: string[];
  enabled: boolean;
  signed: boolean;
  created_at: string;
  updated_at: string;
  revision: number;
};
type Team = { id: number; name: string };

const PLATFORM = "platform";

/** Event kinds as typed: separated by commas or spaces. */
function kindsOf(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((k) => k.trim())
    .filter((k) => k !== "");
}

/** A random signing secret (32 bytes, hex) made in the browser. */
function randomSecret(): string {
  const bytes = new Uint8Array(32);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function Webhooks() {
  const { me } = useSession();
  const admin = isAdmin(me);
  const state = useLoad(
    () =>
      Promise.all([
        all<Webhook>("/webhooks"),
        admin ? all<Team>("/teams") : Promise.resolve(me.teams.map((t) => ({ id: t.team_id, name: t.team }))),
      ]),
    [admin],
  );
  const [dialog, setDialog] = useState<{ mode: "new" } | { mode: "edit" | "delete"; hook: Webhook } | null>(null);
  const [secret, setSecret] = useState<{ hook: string; value: string } | null>(null);
  const manages = admin || teamsWith(me, "team_admin").length > 0;
  const closeAndReload = () => {
    setDialog(null);
    state.reload();
  };
  const saved = (hook: Webhook, newSecret: string | null) => {
    if (newSecret) setSecret({ hook: hook.name, value: newSecret });
    closeAndReload();
  };
  return (
    <>
      <div class="page-header" style={{ marginBottom: "0.75rem" }}>
        <p class="muted" style={{ margin: 0 }}>
          Events (budget alerts, …) are POSTed as JSON to each enabled webhook that takes their kind, with an{" "}
          <code>x-tollway-signature</code> HMAC when it has a signing secret. A team's webhook takes the team's events.
        </p>
        {manages && (
          <button type="button" class="primary" onClick={() => setDialog({ mode: "new" })}>
            New webhook
          </button>
        )}
      </div>
      {secret && (
        <div class="panel">
          <div class="secret-once">
            <p>
              The signing secret of <strong>{secret.hook}</strong> is shown <strong>once</strong>: copy it now into the receiver that checks
              the signatures. Tollway keeps it encrypted and never shows it again.
            </p>
            <div class="secret-row">
              <code data-secret={secret.value} class="secret">
                {secret.value}
              </code>
              <CopyButton text={secret.value} />
            </div>
          </div>
          <p>
            <button type="button" onClick={() => setSecret(null)}>
              I have copied it
            </button>
          </p>
        </div>
      )}
      <Loaded state={state}>
        {([hooks, teams]) => {
          const teamName = (id: number | null) => (id === null ? "Platform (every event)" : teams.find((t) => t.id === id)?.name ?? `team ${id}`);
          return (
            <>
              <Table
                label="Webhooks"
                rows={hooks}
                columns={[
                  { title: "Name", cell: (h) => h.name },
                  { title: "Team", cell: (h) => teamName(h.team_id) },
                  { title: "URL", cell: (h) => <code style={{ wordBreak: "break-all" }}>{h.url}</code> },
                  { title: "Events", cell: (h) => h.kinds.map((k) => <code style={{ marginRight: "0.4rem" }}>{k}</code>) },
                  { title: "Signed", cell: (h) => (h.signed ? "yes" : <span class="muted">no</span>) },
                  { title: "Status", cell: (h) => <Status value={h.enabled ? "active" : "disabled"} /> },
                  { title: "Changed", cell: (h) => ago(h.updated_at) },
                  {
                    title: "",
                    cell: (h) => (
                      <span class="page-actions">
                        <button type="button" class="small" onClick={() => setDialog({ mode: "edit", hook: h })}>
                          Edit
                        </button>
                        <button type="button" class="small" onClick={() => setDialog({ mode: "delete", hook: h })}>
                          Delete
                        </button>
                      </span>
                    ),
                  },
                ]}
                empty={
                  <Empty title="No webhooks yet.">
                    {manages
                      ? "Add one with “New webhook” to receive budget alerts and other events at a URL of yours."
                      : "Webhooks are managed by team admins: ask one of your team's to add one."}
                  </Empty>
                }
              />
              {dialog?.mode === "new" && (
                <WebhookDialog
                  teams={admin ? teams : teams.filter((t) => teamsWith(me, "team_admin").some((m) => m.team_id === t.id))}
                  platform={admin}
                  onClose={() => setDialog(null)}
                  onSaved={saved}
                />
              )}
              {dialog?.mode === "edit" && (
                <WebhookDialog hook={dialog.hook} teams={teams} platform={admin} onClose={() => setDialog(null)} onSaved={saved} />
              )}
              {dialog?.mode === "delete" && (
                <Confirm
                  title="Delete webhook"
                  action="Delete"
                  message={
                    <p>
                      Delete the webhook <strong>{dialog.hook.name}</strong> ({teamName(dialog.hook.team_id)})? Events are no longer sent to{" "}
                      <code>{dialog.hook.url}</code>.
                    </p>
                  }
                  onCancel={() => setDialog(null)}
                  onDone={async () => {
                    await api("DELETE", `/webhooks/${dialog.hook.id}`, { ifMatch: dialog.hook.revision });
                    closeAndReload();
                  }}
                />
              )}
            </>
          );
        }}
      </Loaded>
    </>
  );
}

function WebhookDialog({
  hook,
  teams,
  platform,
  onClose,
  onSaved,
}: {
  hook?: Webhook;
  teams: Team[];
  platform: boolean;
  onClose: () => void;
  onSaved: (hook: Webhook, secret: string | null) => void;
}) {
  const choices: [string, string][] = [
    ...(platform ? ([[PLATFORM, "Platform (every team's events)"]] as [string, string][]) : []),
    ...teams.map((t): [string, string] => [String(t.id), t.name]),
  ];
  const [team, setTeam] = useState(choices.length > 0 ? choices[0][0] : "");
  const [name, setName] = useState(hook?.name ?? "");
  const [url, setUrl] = useState(hook?.url ?? "");
  const [kinds, setKinds] = useState(hook ? hook.kinds.join(", ") : "budget*");
  const [secret, setSecret] = useState("");
  const [clearSecret, setClearSecret] = useState(false);
  const [enabled, setEnabled] = useState(hook?.enabled ?? true);
  if (!hook && choices.length === 0) {
    return (
      <Modal title="New webhook" onClose={onClose}>
        <Empty title="No team to add it to.">Only a team's team admins (and platform admins) manage its webhooks.</Empty>
      </Modal>
    );
  }
  const save = async () => {
    const given = secret.trim() || null;
    if (hook) {
      const changed = await api<Webhook>("PATCH", `/webhooks/${hook.id}`, {
        body: {
          name: name.trim(),
          url: url.trim(),
          kinds: kindsOf(kinds),
          enabled,
          ...(given ? { secret: given } : {}),
          ...(clearSecret && !given ? { clear_secret: true } : {}),
        },
        ifMatch: hook.revision,
      });
      onSaved(changed, given);
      return;
    }
    const made = await api<Webhook>("POST", "/webhooks", {
      body: {
        team_id: team === PLATFORM ? null : Number(team),
        name: name.trim(),
        url: url.trim(),
        kinds: kindsOf(kinds),
        enabled,
        ...(given ? { secret: given } : {}),
      },
    });
    onSaved(made, given);
  };
  return (
    <Modal title={hook ? `Edit webhook ${hook.name}` : "New webhook"} onClose={onClose}>
      <Form submit={hook ? "Save" : "Create webhook"} onCancel={onClose} onSubmit={save}>
        {!hook && (
          <Field label="Team" hint="whose events it takes">
            <Select name="team" value={team} onChange={setTeam} options={choices} />
          </Field>
        )}
        <Field label="Webhook name">
          <Text name="name" value={name} onInput={setName} required />
        </Field>
        <Field label="URL" hint="http:// or https://; the gateway's recorder POSTs to it from inside your network">
          <Text name="url" type="url" value={url} onInput={setUrl} required placeholder="https://hooks.example.com/tollway" />
        </Field>
        <Field label="Event kinds" hint="separated by commas; globs allowed, e.g. budget* (budget alerts)">
          <Text name="kinds" value={kinds} onInput={setKinds} required />
        </Field>
        <Field
          label={hook?.signed ? "New signing secret" : "Signing secret"}
          hint={
            hook?.signed
              ? "leave empty to keep the current one; at least 16 characters"
              : "optional, at least 16 characters: each delivery is signed with it (HMAC-SHA256)"
          }
        >
          <Text name="secret" type="password" value={secret} onInput={setSecret} autoComplete="new-password" />
        </Field>
        <div class="page-actions">
          <button type="button" class="small" onClick={() => setSecret(randomSecret())}>
            Generate a secret
          </button>
          {secret && <span class="muted small">it is shown once more after saving</span>}
        </div>
        {hook?.signed && (
          <Field label="Remove the signing secret" hint="deliveries go unsigned from now on">
            <input
              type="checkbox"
              name="clear_secret"
              checked={clearSecret}
              disabled={secret.trim() !== ""}
              onChange={(e) => setClearSecret((e.target as HTMLInputElement).checked)}
            />
          </Field>
        )}
        <Field label="Enabled" hint="events are sent only while it is enabled">
          <input type="checkbox" name="enabled" checked={enabled} onChange={(e) => setEnabled((e.target as HTMLInputElement).checked)} />
        </Field>
      </Form>
    </Modal>
  );
}
