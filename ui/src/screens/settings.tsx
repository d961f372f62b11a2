// Settings: the signed-in user's profile, password and admin-API tokens; the webhooks events
// are POSTed to (screens/settings-webhooks.tsx); and the gateway's health and version.
import { useState } from "preact/hooks";
import { ApiError, PREFIX, api, currentToken } from "../api";
import { CopyButton, SecretOnce } from "../components/copy";
import { Confirm, Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Text } from "../components/form";
import { Status, ago, when } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { linkTo, navigate } from "../router";
import { isAdmin, useSession } from "../session";
import { Webhooks } from "./settings-webhooks";

type UserOut = {
  id: number;
  name: string;
  display_name: string;
  email: string | null;
  platform_role: string;
  disabled: boolean;
  has_password: boolean;
  created_at: string;
  updated_at: string;
  revision: number;
};
type MeOut = { user: UserOut; teams: { team_id: number; team: string; role: string }[] };
type Token = {
  id: number;
  name: string;
  prefix: string;
  source: string;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
};
type NewToken = Token & { token: string };
type Health = { status: string; config_version: number };
type OpenApi = { info: { title: string; version: string } };

const TABS: [string, string][] = [
  ["profile", "Profile"],
  ["webhooks", "Webhooks"],
  ["gateway", "Gateway"],
];

export function Settings({ query }: { query: URLSearchParams }) {
  const asked = query.get("tab") ?? "profile";
  const tab = TABS.some(([key]) => key === asked) ? asked : "profile";
  return (
    <>
      <Header title="Settings" sub="Your profile and admin-API tokens, the webhooks events go to, and the gateway itself." />
      <div class="tabs" role="tablist" aria-label="Settings">
        {TABS.map(([key, label]) => (
          <button
            type="button"
            role="tab"
            aria-selected={tab === key}
            onClick={() => navigate(key === "profile" ? "/settings" : `/settings?tab=${key}`, true)}
          >
            {label}
          </button>
        ))}
      </div>
      <div role="tabpanel">
        {tab === "profile" && <Profile />}
        {tab === "webhooks" && <Webhooks />}
        {tab === "gateway" && <Gateway />}
      </div>
    </>
  );
}

function Profile() {
  const session = useSession();
  const state = useLoad(() => api<MeOut>("GET", "/me"), []);
  return (
    <Loaded state={state}>
      {(me) => (
        <>
          <div class="grid">
            <section class="panel" aria-label="Profile">
              <h2 style={{ marginTop: 0 }}>Profile</h2>
              <dl class="facts">
                <dt>User name</dt>
                <dd>
                  <code>{me.user.name}</code>
                </dd>
                <dt>Display name</dt>
                <dd>{me.user.display_name || <span class="muted">–</span>}</dd>
                <dt>Email</dt>
                <dd>{me.user.email ?? <span class="muted">–</span>}</dd>
                <dt>Role</dt>
                <dd>{me.user.platform_role === "admin" ? "platform admin" : "member"}</dd>
                <dt>Teams</dt>
                <dd>
                  {me.teams.length === 0 ? (
                    <span class="muted">
                      {me.user.platform_role === "admin" ? "none (a platform admin reads and manages every team)" : "none yet: a team admin adds you to a team"}
                    </span>
                  ) : (
                    me.teams.map((t, i) => (
                      <>
                        {i > 0 && ", "}
                        <a {...linkTo(`/teams/${t.team_id}`)}>{t.team}</a> <span class="muted">({t.role.replace("_", " ")})</span>
                      </>
                    ))
                  )}
                </dd>
                <dt>Since</dt>
                <dd>{when(me.user.created_at)}</dd>
              </dl>
            </section>
            <EditProfile
              user={me.user}
              onSaved={async () => {
                state.reload();
                await session.refresh();
              }}
            />
          </div>
          <Password user={me.user} admin={isAdmin(session.me)} onChanged={state.reload} />
          <MyTokens userId={me.user.id} />
        </>
      )}
    </Loaded>
  );
}

function EditProfile({ user, onSaved }: { user: UserOut; onSaved: () => Promise<void> }) {
  const [displayName, setDisplayName] = useState(user.display_name);
  const [email, setEmail] = useState(user.email ?? "");
  const [saved, setSaved] = useState(false);
  return (
    <section class="panel" aria-label="Edit profile">
      <h2 style={{ marginTop: 0 }}>Edit profile</h2>
      <Form
        submit="Save"
        onSubmit={async () => {
          setSaved(false);
          await api<UserOut>("PATCH", `/users/${user.id}`, {
            body: { display_name: displayName.trim(), email: email.trim() || null },
            ifMatch: user.revision,
          });
          setSaved(true);
          await onSaved();
        }}
      >
        <Field label="Display name" hint="shown instead of your user name">
          <Text name="display_name" value={displayName} onInput={setDisplayName} autoComplete="name" />
        </Field>
        <Field label="Email" hint="leave empty to remove it">
          <Text name="email" type="email" value={email} onInput={setEmail} autoComplete="email" />
        </Field>
        {saved && (
          <p class="small" role="status">
            Saved.
          </p>
        )}
      </Form>
    </section>
  );
}

function Password({ user, admin, onChanged }: { user: UserOut; admin: boolean; onChanged: () => void }) {
  const [current, setCurrent] = useState("");
  const [next, setNext] = useState("");
  const [again, setAgain] = useState("");
  const [done, setDone] = useState(false);
  // The API asks members for their current password; a platform admin may set any password.
  const needsCurrent = user.has_password && !admin;
  return (
    <section class="panel" aria-label="Password">
      <h2 style={{ marginTop: 0 }}>{user.has_password ? "Change password" : "Set a password"}</h2>
      <p class="muted small">
        {user.has_password
          ? "Sign in to the console with your user name and password; sessions last 12 hours."
          : "You have no password yet: you sign in with a token. Set one to sign in with your user name."}
      </p>
      <Form
        submit={user.has_password ? "Change password" : "Set password"}
        onSubmit={async () => {
          setDone(false);
          if (next !== again) throw new ApiError(0, "mismatch", "The new password and its repetition differ.");
          await api<UserOut>("PATCH", `/users/${user.id}`, {
            body: needsCurrent ? { password: next, current_password: current } : { password: next },
            ifMatch: user.revision,
          });
          setCurrent("");
          setNext("");
          setAgain("");
          setDone(true);
          onChanged();
        }}
      >
        {needsCurrent && (
          <Field label="Current password">
            <Text name="current_password" type="password" value={current} onInput={setCurrent} required autoComplete="current-password" />
          </Field>
        )}
        <Field label="New password" hint="at least 8 characters">
          <Text name="new_password" type="password" value={next} onInput={setNext} required autoComplete="new-password" />
        </Field>
        <Field label="Repeat new password">
          <Text name="repeat_password" type="password" value={again} onInput={setAgain} required autoComplete="new-password" />
        </Field>
        {done && (
          <p class="small" role="status">
            Password changed.
          </p>
        )}
      </Form>
    </section>
  );
}

function tokenStatus(token: Token): string {
  if (token.revoked_at) return "revoked";
  if (token.expires_at && new Date(token.expires_at).getTime() <= Date.now()) return "expired";
  return "active";
}

function MyTokens({ userId }: { userId: number }) {
  const state = useLoad(() => api<Token[]>("GET", `/users/${userId}/tokens`), [userId]);
  const [creating, setCreating] = useState(false);
  const [revoking, setRevoking] = useState<Token | null>(null);
  const held = currentToken();
  const isThisSession = (t: Token) => held !== null && held.startsWith(t.prefix) && tokenStatus(t) === "active";
  return (
    <section class="panel" aria-label="My tokens">
      <div class="page-header" style={{ marginBottom: "0.5rem" }}>
        <div>
          <h2 style={{ margin: 0 }}>My tokens</h2>
          <p class="muted small">Tokens for the admin API (scripts, CI, the tollway CLI): they act as you, with your roles.</p>
        </div>
        <button type="button" class="primary" onClick={() => setCreating(true)}>
          New token
        </button>
      </div>
      <Loaded state={state}>
        {(tokens) => (
          <Table
            label="My tokens"
            rows={tokens}
            columns={[
              {
                title: "Name",
                cell: (t) => (
                  <>
                    {t.name} {isThisSession(t) && <span class="badge">this session</span>}
                  </>
                ),
              },
              { title: "Token", cell: (t) => <code>{t.prefix}…</code> },
              { title: "Made by", cell: (t) => t.source },
              { title: "Created", cell: (t) => ago(t.created_at) },
              { title: "Expires", cell: (t) => (t.expires_at ? when(t.expires_at) : <span class="muted">never</span>) },
              { title: "Status", cell: (t) => <Status value={tokenStatus(t)} /> },
              {
                title: "",
                cell: (t) =>
                  tokenStatus(t) === "active" && (
                    <button type="button" class="small" onClick={() => setRevoking(t)}>
                      Revoke
                    </button>
                  ),
              },
            ]}
            empty={<Empty title="No tokens yet.">Create one for a script or the CLI with “New token”.</Empty>}
          />
        )}
      </Loaded>
      {creating && (
        <NewTokenDialog
          userId={userId}
          onClose={() => {
            setCreating(false);
            state.reload();
          }}
        />
      )}
      {revoking && (
        <Confirm
          title="Revoke token"
          action="Revoke"
          message={
            <>
              <p>
                Revoke the token <strong>{revoking.name}</strong> (<code>{revoking.prefix}…</code>)? Whatever uses it is refused from now on.
              </p>
              {isThisSession(revoking) && <p>This is the token of this session: you will be signed out.</p>}
            </>
          }
          onCancel={() => setRevoking(null)}
          onDone={async () => {
            await api("DELETE", `/users/${userId}/tokens/${revoking.id}`);
            setRevoking(null);
            state.reload();
          }}
        />
      )}
    </section>
  );
}

function NewTokenDialog({ userId, onClose }: { userId: number; onClose: () => void }) {
  const [name, setName] = useState("");
  const [expires, setExpires] = useState("");
  const [made, setMade] = useState<NewToken | null>(null);
  return (
    <Modal title="New token" onClose={onClose}>
      {made ? (
        <>
          <SecretOnce secret={made.token} what="token" />
          <p class="small muted">
            Send it as <code>Authorization: Bearer …</code> to <code>{window.location.origin + PREFIX}</code>, or give it to the CLI with{" "}
            <code>TOLLWAY_ADMIN_TOKEN</code>.
          </p>
          <footer>
            <button type="button" class="primary" onClick={onClose}>
              Done
            </button>
          </footer>
        </>
      ) : (
        <Form
          submit="Create token"
          onCancel={onClose}
          onSubmit={async () => {
            const body: { name: string; expires_at?: string } = { name: name.trim() };
            if (expires) {
              const at = new Date(expires);
              if (Number.isNaN(at.getTime())) throw new ApiError(0, "invalid", "The expiry is not a valid date and time.");
              body.expires_at = at.toISOString();
            }
            setMade(await api<NewToken>("POST", `/users/${userId}/tokens`, { body }));
          }}
        >
          <Field label="Token name" hint="what uses it, e.g. ci or laptop">
            <Text name="name" value={name} onInput={setName} required />
          </Field>
          <Field label="Expires" hint="in your local time; leave empty for a token that does not expire">
            <Text name="expires_at" type="datetime-local" value={expires} onInput={setExpires} />
          </Field>
        </Form>
      )}
    </Modal>
  );
}

function Gateway() {
  const state = useLoad(
    () => Promise.all([api<Health>("GET", "/health"), api<OpenApi>("GET", "/openapi.json")]),
    [],
  );
  const base = window.location.origin + PREFIX;
  return (
    <Loaded state={state}>
      {([health, document]) => (
        <div class="grid">
          <section class="panel" aria-label="Gateway">
            <h2 style={{ marginTop: 0 }}>Gateway</h2>
            <dl class="facts">
              <dt>Status</dt>
              <dd>
                <Status value={health.status} />
              </dd>
              <dt>Configuration version</dt>
              <dd>
                {health.config_version} <span class="muted small">(goes up with every change made through the admin API)</span>
              </dd>
              <dt>Version</dt>
              <dd>
                Tollway {document.info.version} <span class="muted small">({document.info.title})</span>
              </dd>
            </dl>
            <p>
              <button type="button" onClick={state.reload}>
                Refresh
              </button>
            </p>
          </section>
          <section class="panel" aria-label="Admin API">
            <h2 style={{ marginTop: 0 }}>Admin API</h2>
            <p>Everything this console does goes through the admin API, which scripts can call with a token from your profile.</p>
            <div class="secret-row">
              <code class="secret">{base}</code>
              <CopyButton text={base} label="Copy URL" />
            </div>
            <p>
              <a href={`${PREFIX}/docs`} target="_blank" rel="noreferrer">
                Interactive API documentation
              </a>{" "}
              ·{" "}
              <a href={`${PREFIX}/openapi.json`} target="_blank" rel="noreferrer">
                OpenAPI document
              </a>
            </p>
            <p class="muted small">
              Rate limits and budgets are set in the gateway's configuration file: see <a {...linkTo("/limits")}>Limits &amp; budgets</a>.
            </p>
          </section>
        </div>
      )}
    </Loaded>
  );
}
