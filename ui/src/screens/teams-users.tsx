// The users who sign in to the console and the admin API (platform admins only): create them,
// change their details or password, disable or enable them, delete them.
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Confirm, Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { ago } from "../components/format";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { useSession } from "../session";

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

// Anchored by the pattern attribute itself; the v flag it compiles with wants "-" escaped.
const USER_PATTERN = "[a-z0-9][a-z0-9._@+\\-]{0,127}";
const PLATFORM_ROLES: [string, string][] = [
  ["member", "Member: works in the teams they belong to"],
  ["admin", "Platform admin: manages everything"],
];

export function Users() {
  const { me, refresh } = useSession();
  const state = useLoad(() => all<UserOut>("/users"), []);
  const [creating, setCreating] = useState(false);
  const [editing, setEditing] = useState<UserOut | null>(null);
  const [toggling, setToggling] = useState<UserOut | null>(null);
  const [deleting, setDeleting] = useState<UserOut | null>(null);
  const self = (u: UserOut) => u.id === me.user.id;
  return (
    <section>
      <div class="page-header" style={{ marginBottom: "0.6rem", alignItems: "center" }}>
        <p class="muted" style={{ margin: 0 }}>
          Users sign in with a password or an admin token; their teams and roles are set on each team's page.
        </p>
        <button type="button" class="primary" onClick={() => setCreating(true)}>
          New user
        </button>
      </div>
      <Loaded state={state}>
        {(users) => (
          <Table
            label="Users"
            rows={users}
            columns={[
              {
                title: "User",
                cell: (u) => (
                  <>
                    {u.name}
                    {self(u) && <span class="muted small"> (you)</span>}
                  </>
                ),
              },
              { title: "Display name", cell: (u) => u.display_name || <span class="muted">–</span> },
              { title: "Email", cell: (u) => u.email || <span class="muted">–</span> },
              { title: "Platform role", cell: (u) => <span class={u.platform_role === "admin" ? "badge badge-active" : "badge"}>{u.platform_role}</span> },
              { title: "Signs in with", cell: (u) => (u.has_password ? "password or token" : <span class="muted">tokens only</span>) },
              { title: "Status", cell: (u) => (u.disabled ? <span class="badge badge-revoked">disabled</span> : <span class="badge badge-ok">active</span>) },
              { title: "Created", cell: (u) => <span style={{ whiteSpace: "nowrap" }}>{ago(u.created_at)}</span> },
              {
                title: "Actions",
                cell: (u) => (
                  <span style={{ display: "inline-flex", gap: "0.4rem" }}>
                    <button type="button" class="small" onClick={() => setEditing(u)}>
                      Edit
                    </button>
                    {/* Disabling or deleting oneself would lock the console's user out mid-session. */}
                    {!self(u) && (
                      <>
                        <button type="button" class="small" onClick={() => setToggling(u)}>
                          {u.disabled ? "Enable" : "Disable"}
                        </button>
                        <button type="button" class="small" onClick={() => setDeleting(u)}>
                          Delete
                        </button>
                      </>
                    )}
                  </span>
                ),
              },
            ]}
            empty={<Empty title="No users yet.">Create users so that people sign in with their own name and role.</Empty>}
          />
        )}
      </Loaded>
      {creating && (
        <NewUser
          onClose={() => setCreating(false)}
          onCreated={() => {
            setCreating(false);
            state.reload();
          }}
        />
      )}
      {editing && (
        <EditUser
          user={editing}
          onClose={() => setEditing(null)}
          onSaved={async () => {
            const mine = self(editing);
            setEditing(null);
            state.reload();
            if (mine) await refresh();
          }}
        />
      )}
      {toggling && (
        <Confirm
          title={toggling.disabled ? "Enable user" : "Disable user"}
          danger={!toggling.disabled}
          message={
            toggling.disabled ? (
              <p>
                Enable <strong>{toggling.name}</strong>? They can sign in again, and their tokens work again.
              </p>
            ) : (
              <p>
                Disable <strong>{toggling.name}</strong>? They can no longer sign in or use their admin tokens until
                enabled again; their team roles are kept.
              </p>
            )
          }
          action={toggling.disabled ? "Enable" : "Disable"}
          onCancel={() => setToggling(null)}
          onDone={async () => {
            await api("PATCH", `/users/${toggling.id}`, { body: { disabled: !toggling.disabled }, ifMatch: toggling.revision });
            setToggling(null);
            state.reload();
          }}
        />
      )}
      {deleting && (
        <Confirm
          title="Delete user"
          message={
            <p>
              Delete <strong>{deleting.name}</strong>? Their team memberships and admin tokens go with them. The audit log
              keeps what they did.
            </p>
          }
          action="Delete user"
          onCancel={() => setDeleting(null)}
          onDone={async () => {
            await api("DELETE", `/users/${deleting.id}`, { ifMatch: deleting.revision });
            setDeleting(null);
            state.reload();
          }}
        />
      )}
    </section>
  );
}

function NewUser({ onClose, onCreated }: { onClose: () => void; onCreated: () => void }) {
  const [name, setName] = useState("");
  const [displayName, setDisplayName] = useState("");
  const [email, setEmail] = useState("");
  const [role, setRole] = useState("member");
  const [password, setPassword] = useState("");
  const create = async () => {
    await api<UserOut>("POST", "/users", {
      body: {
        name: name.trim(),
        display_name: displayName.trim(),
        email: email.trim() || null,
        platform_role: role,
        password: password || null,
      },
    });
    onCreated();
  };
  return (
    <Modal title="New user" onClose={onClose}>
      <Form onSubmit={create} submit="Create user" onCancel={onClose}>
        <Field label="User name" hint="Signs in with it. Lower-case letters, digits and . _ @ + -, starting with a letter or digit; at most 128 characters.">
          <Text name="name" value={name} onInput={setName} required pattern={USER_PATTERN} placeholder="ada" autoComplete="off" />
        </Field>
        <Field label="Display name">
          <Text name="display_name" value={displayName} onInput={setDisplayName} placeholder="Ada Lovelace" autoComplete="off" />
        </Field>
        <Field label="Email" hint="Optional.">
          <Text name="email" type="email" value={email} onInput={setEmail} autoComplete="off" />
        </Field>
        <Field label="Platform role">
          <Select name="platform_role" value={role} onChange={setRole} options={PLATFORM_ROLES} />
        </Field>
        <Field label="Password" hint="At least 8 characters. Optional: without one, the user signs in only with an admin token made for them.">
          <PasswordInput value={password} onInput={setPassword} />
        </Field>
      </Form>
    </Modal>
  );
}

function EditUser({ user, onClose, onSaved }: { user: UserOut; onClose: () => void; onSaved: () => Promise<void> }) {
  const { me } = useSession();
  const [displayName, setDisplayName] = useState(user.display_name);
  const [email, setEmail] = useState(user.email ?? "");
  const [role, setRole] = useState(user.platform_role);
  const [password, setPassword] = useState("");
  const save = async () => {
    // Only what changed: an unchanged field sent back could undo someone else's edit, which
    // If-Match would refuse anyway, but it would also fill the audit log with no-ops.
    const body: Record<string, string | null> = {};
    if (displayName.trim() !== user.display_name) body.display_name = displayName.trim();
    if ((email.trim() || null) !== user.email) body.email = email.trim() || null;
    if (role !== user.platform_role) body.platform_role = role;
    if (password) body.password = password;
    if (Object.keys(body).length === 0) {
      onClose();
      return;
    }
    await api<UserOut>("PATCH", `/users/${user.id}`, { body, ifMatch: user.revision });
    await onSaved();
  };
  return (
    <Modal title={`Edit ${user.name}`} onClose={onClose}>
      <Form onSubmit={save} submit="Save" onCancel={onClose}>
        <Field label="Display name">
          <Text name="display_name" value={displayName} onInput={setDisplayName} autoComplete="off" />
        </Field>
        <Field label="Email" hint="Leave empty to remove it.">
          <Text name="email" type="email" value={email} onInput={setEmail} autoComplete="off" />
        </Field>
        <Field
          label="Platform role"
          hint={user.id === me.user.id && role !== "admin" ? "You would lose platform admin rights as soon as you save." : undefined}
        >
          <Select name="platform_role" value={role} onChange={setRole} options={PLATFORM_ROLES} />
        </Field>
        <Field label="New password" hint={user.has_password ? "Leave empty to keep the current one. At least 8 characters." : "The user has none yet. At least 8 characters."}>
          <PasswordInput value={password} onInput={setPassword} />
        </Field>
      </Form>
    </Modal>
  );
}

function PasswordInput({ value, onInput }: { value: string; onInput: (value: string) => void }) {
  return (
    <input
      type="password"
      name="password"
      autoComplete="new-password"
      minLength={8}
      maxLength={1024}
      value={value}
      onInput={(e) => onInput((e.target as HTMLInputElement).value)}
    />
  );
}
