// One team: its facts, its members and their roles, and the apps and services it owns. Team
// admins manage members; only platform admins rename or delete a team (the API's rules).
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Confirm, Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { ago, when } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { linkTo, navigate } from "../router";
import { hasRole, isAdmin, useSession } from "../session";

export type Team = {
  id: number;
  name: string;
  description: string;
  created_at: string;
  updated_at: string;
  revision: number;
};
type Member = { user_id: number; user: string; role: string; revision: number };
type User = { id: number; name: string; display_name: string };
type App = { id: number; name: string; description: string; created_at: string };
type Service = {
  id: number;
  name: string;
  kind: string;
  visibility: string;
  route_prefix: string;
  published_version: number | null;
};

/** The API's rule for team names (^[a-z0-9][a-z0-9._-]{0,62}$) as a pattern attribute: that
 * is anchored already, and compiled with the v flag, which wants the hyphen escaped. */
export const NAME_PATTERN = "[a-z0-9][a-z0-9._\\-]{0,62}";
export const NAME_HINT = "Lower-case letters, digits, '.', '_' and '-', starting with a letter or digit; at most 63 characters.";

export const ROLES: [string, string][] = [
  ["viewer", "Viewer: reads the team's services, apps and calls"],
  ["developer", "Developer: also manages apps and keys, subscribes them"],
  ["team_admin", "Team admin: also manages members, services and approvals"],
];

export function roleName(role: string): string {
  return role.replace(/_/g, " ");
}

export function TeamDetail({ teamId }: { teamId: string }) {
  const { me, refresh } = useSession();
  const id = Number(teamId);
  const state = useLoad(() => api<Team>("GET", `/teams/${id}`), [id]);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  const manages = hasRole(me, id, "team_admin");
  const myRole = me.teams.find((t) => t.team_id === id)?.role;
  return (
    <Loaded state={state}>
      {(team) => (
        <>
          <Header title={team.name} sub={team.description || undefined}>
            <a {...linkTo("/teams")}>← All teams</a>
            {manages && (
              <button type="button" onClick={() => setEditing(true)}>
                Edit
              </button>
            )}
            {isAdmin(me) && (
              <button type="button" class="danger" onClick={() => setDeleting(true)}>
                Delete team
              </button>
            )}
          </Header>
          <section class="panel">
            <dl class="facts">
              <dt>Name</dt>
              <dd>{team.name}</dd>
              <dt>Description</dt>
              <dd>{team.description || <span class="muted">–</span>}</dd>
              <dt>Your role</dt>
              <dd>{myRole ? roleName(myRole) : isAdmin(me) ? "platform admin (not a member)" : "–"}</dd>
              <dt>Id</dt>
              <dd>{team.id}</dd>
              <dt>Created</dt>
              <dd>{when(team.created_at)}</dd>
              <dt>Changed</dt>
              <dd>{when(team.updated_at)}</dd>
            </dl>
          </section>
          <Members team={team} />
          <div class="grid">
            <TeamApps team={team} />
            <TeamServices team={team} />
          </div>
          {editing && (
            <EditTeam
              team={team}
              onClose={() => setEditing(false)}
              onSaved={async (renamed) => {
                setEditing(false);
                state.reload();
                // The navigation shows team names from /me.
                if (renamed) await refresh();
              }}
            />
          )}
          {deleting && (
            <Confirm
              title="Delete team"
              message={
                <p>
                  Delete the team <strong>{team.name}</strong>? Only an empty team can be deleted: delete its apps and
                  services first. Its members lose their role in it.
                </p>
              }
              action="Delete team"
              onCancel={() => setDeleting(false)}
              onDone={async () => {
                await api("DELETE", `/teams/${team.id}`, { ifMatch: team.revision });
                await refresh();
                navigate("/teams");
              }}
            />
          )}
        </>
      )}
    </Loaded>
  );
}

function EditTeam({ team, onClose, onSaved }: { team: Team; onClose: () => void; onSaved: (renamed: boolean) => Promise<void> }) {
  const { me } = useSession();
  const [name, setName] = useState(team.name);
  const [description, setDescription] = useState(team.description);
  const save = async () => {
    const body: { name?: string; description: string } = { description };
    const renamed = name.trim() !== team.name;
    if (renamed) body.name = name.trim();
    await api<Team>("PATCH", `/teams/${team.id}`, { body, ifMatch: team.revision });
    await onSaved(renamed);
  };
  return (
    <Modal title={`Edit ${team.name}`} onClose={onClose}>
      <Form onSubmit={save} submit="Save" onCancel={onClose}>
        {isAdmin(me) ? (
          <Field label="Name" hint={NAME_HINT}>
            <Text name="name" value={name} onInput={setName} required pattern={NAME_PATTERN} autoComplete="off" />
          </Field>
        ) : (
          <p class="muted small">Only a platform admin can rename a team.</p>
        )}
        <Field label="Description">
          <textarea
            name="description"
            maxLength={2000}
            style={{ minHeight: "4rem", fontFamily: "inherit" }}
            value={description}
            onInput={(e) => setDescription((e.target as HTMLTextAreaElement).value)}
          />
        </Field>
      </Form>
    </Modal>
  );
}

function Members({ team }: { team: Team }) {
  const { me, refresh } = useSession();
  const state = useLoad(() => api<Member[]>("GET", `/teams/${team.id}/members`), [team.id]);
  const [adding, setAdding] = useState(false);
  const [changing, setChanging] = useState<Member | null>(null);
  const [removing, setRemoving] = useState<Member | null>(null);
  const manages = hasRole(me, team.id, "team_admin");
  const self = (m: Member) => m.user_id === me.user.id;
  return (
    <section>
      <div class="page-header" style={{ marginBottom: "0.6rem", alignItems: "center" }}>
        <h2 style={{ margin: 0 }}>Members</h2>
        {manages && (
          <button type="button" class="primary" onClick={() => setAdding(true)}>
            Add member
          </button>
        )}
      </div>
      <Loaded state={state}>
        {(members) => (
          <Table
            label="Members"
            rows={members}
            columns={[
              {
                title: "User",
                cell: (m) => (
                  <>
                    {m.user}
                    {self(m) && <span class="muted small"> (you)</span>}
                  </>
                ),
              },
              { title: "Role", cell: (m) => <span class="badge">{roleName(m.role)}</span> },
              {
                title: "Actions",
                cell: (m) => (
                  <span style={{ display: "inline-flex", gap: "0.4rem", flexWrap: "wrap" }}>
                    {manages && (
                      <button type="button" class="small" onClick={() => setChanging(m)}>
                        Change role
                      </button>
                    )}
                    {(manages || self(m)) && (
                      <button type="button" class="small" onClick={() => setRemoving(m)}>
                        {manages ? "Remove" : "Leave team"}
                      </button>
                    )}
                  </span>
                ),
              },
            ]}
            empty={
              <Empty title="No members yet.">
                {manages ? "Add users to this team with a role: viewer, developer or team admin." : "A team admin adds members."}
              </Empty>
            }
          />
        )}
      </Loaded>
      {adding && (
        <AddMember
          team={team}
          members={state.data ?? []}
          onClose={() => setAdding(false)}
          onAdded={async (member) => {
            setAdding(false);
            state.reload();
            if (member.user_id === me.user.id) await refresh();
          }}
        />
      )}
      {changing && (
        <ChangeRole
          team={team}
          member={changing}
          onClose={() => setChanging(null)}
          onSaved={async () => {
            const mine = self(changing);
            setChanging(null);
            state.reload();
            if (mine) await refresh();
          }}
        />
      )}
      {removing && (
        <Confirm
          title={self(removing) ? "Leave team" : "Remove member"}
          message={
            self(removing) ? (
              <p>
                Leave <strong>{team.name}</strong>? You lose your role in it{isAdmin(me) ? "" : " and no longer see its services, apps and calls"}.
              </p>
            ) : (
              <p>
                Remove <strong>{removing.user}</strong> from <strong>{team.name}</strong>? They lose their role in it at once.
              </p>
            )
          }
          action={self(removing) && !manages ? "Leave team" : "Remove"}
          onCancel={() => setRemoving(null)}
          onDone={async () => {
            const mine = self(removing);
            await api("DELETE", `/teams/${team.id}/members/${removing.user_id}`);
            setRemoving(null);
            if (mine) {
              await refresh();
              if (!isAdmin(me)) {
                navigate("/teams");
                return;
              }
            }
            state.reload();
          }}
        />
      )}
    </section>
  );
}

function AddMember({
  team,
  members,
  onClose,
  onAdded,
}: {
  team: Team;
  members: Member[];
  onClose: () => void;
  onAdded: (member: Member) => Promise<void>;
}) {
  const { me } = useSession();
  const admin = isAdmin(me);
  const [userId, setUserId] = useState("");
  const [userName, setUserName] = useState("");
  const [role, setRole] = useState("developer");
  // A platform admin lists every user to pick from. A team admin sees only the members of
  // their own teams, so they type the name (those users are offered as suggestions).
  const users = useLoad(() => all<User>("/users").catch(() => [] as User[]), []);
  const candidates = (users.data ?? []).filter((u) => !members.some((m) => m.user_id === u.id));
  const add = async () => {
    const who = admin ? { user_id: Number(userId) } : { user: userName.trim() };
    const member = await api<Member>("POST", `/teams/${team.id}/members`, { body: { ...who, role } });
    await onAdded(member);
  };
  const label = (u: User) => (u.display_name && u.display_name !== u.name ? `${u.name} (${u.display_name})` : u.name);
  return (
    <Modal title={`Add a member to ${team.name}`} onClose={onClose}>
      <Form onSubmit={add} submit="Add member" onCancel={onClose}>
        {admin ? (
          <Field label="User" hint={users.loading && !users.data ? "Loading users…" : candidates.length === 0 ? "Every user is already a member: create users in the Users tab of Teams & members." : undefined}>
            <select name="user" required value={userId} onChange={(e) => setUserId((e.target as HTMLSelectElement).value)}>
              <option value="">Choose a user…</option>
              {candidates.map((u) => (
                <option value={String(u.id)}>{label(u)}</option>
              ))}
            </select>
          </Field>
        ) : (
          <Field label="User name" hint="The user's sign-in name, exactly as a platform admin created it.">
            <input
              name="user"
              required
              list="team-member-names"
              autoComplete="off"
              value={userName}
              onInput={(e) => setUserName((e.target as HTMLInputElement).value)}
            />
            <datalist id="team-member-names">
              {candidates.map((u) => (
                <option value={u.name}>{u.display_name}</option>
              ))}
            </datalist>
          </Field>
        )}
        <Field label="Role">
          <Select name="role" value={role} onChange={setRole} options={ROLES} />
        </Field>
      </Form>
    </Modal>
  );
}

function ChangeRole({ team, member, onClose, onSaved }: { team: Team; member: Member; onClose: () => void; onSaved: () => Promise<void> }) {
  const [role, setRole] = useState(member.role);
  const save = async () => {
    await api<Member>("PATCH", `/teams/${team.id}/members/${member.user_id}`, { body: { role }, ifMatch: member.revision });
    await onSaved();
  };
  return (
    <Modal title={`Role of ${member.user} in ${team.name}`} onClose={onClose}>
      <Form onSubmit={save} submit="Save" onCancel={onClose}>
        <Field label="Role">
          <Select name="role" value={role} onChange={setRole} options={ROLES} />
        </Field>
      </Form>
    </Modal>
  );
}

function TeamApps({ team }: { team: Team }) {
  const { me } = useSession();
  const state = useLoad(() => all<App>("/apps", { team_id: team.id }), [team.id]);
  return (
    <section>
      <h2>Apps</h2>
      <Loaded state={state}>
        {(apps) => (
          <Table
            label="Apps of the team"
            rows={apps}
            columns={[
              { title: "App", cell: (a) => <a {...linkTo(`/apps/${a.id}`)}>{a.name}</a> },
              { title: "Description", cell: (a) => a.description || <span class="muted">–</span> },
              { title: "Created", cell: (a) => ago(a.created_at) },
            ]}
            empty={
              <Empty title="No apps in this team.">
                {hasRole(me, team.id, "developer") ? (
                  <>
                    Apps call the gateway with their keys: <a {...linkTo("/apps")}>create one in Apps &amp; keys</a>.
                  </>
                ) : (
                  "A developer of the team creates apps."
                )}
              </Empty>
            }
          />
        )}
      </Loaded>
    </section>
  );
}

function TeamServices({ team }: { team: Team }) {
  const { me } = useSession();
  const state = useLoad(() => all<Service>("/services", { team_id: team.id }), [team.id]);
  return (
    <section>
      <h2>Services</h2>
      <Loaded state={state}>
        {(services) => (
          <Table
            label="Services of the team"
            rows={services}
            columns={[
              { title: "Service", cell: (s) => <a {...linkTo(`/services/${s.id}`)}>{s.name}</a> },
              { title: "Kind", cell: (s) => s.kind },
              { title: "Visibility", cell: (s) => s.visibility },
              { title: "Published", cell: (s) => (s.published_version !== null ? `version ${s.published_version}` : <span class="muted">not yet</span>) },
            ]}
            empty={
              <Empty title="No services in this team.">
                {hasRole(me, team.id, "team_admin") ? (
                  <>
                    A service puts models or an API behind the gateway: <a {...linkTo("/services")}>create one in Services</a>.
                  </>
                ) : (
                  "A team admin creates the team's services."
                )}
              </Empty>
            }
          />
        )}
      </Loaded>
    </section>
  );
}
