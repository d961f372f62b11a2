// Teams and, for platform admins, the users who sign in: the teams the user can see, a new
// team (platform admins only, as the API rules), and the Users tab (teams-users.tsx). One team's
// page is teams-detail.tsx.
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Text } from "../components/form";
import { ago } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { linkTo, navigate } from "../router";
import { isAdmin, useSession } from "../session";
import { NAME_HINT, NAME_PATTERN, type Team, roleName } from "./teams-detail";
import { Users } from "./teams-users";

export { TeamDetail } from "./teams-detail";

export function Teams({ query }: { query: URLSearchParams }) {
  const { me } = useSession();
  const admin = isAdmin(me);
  const tab = admin && query.get("tab") === "users" ? "users" : "teams";
  const [creating, setCreating] = useState(false);
  return (
    <>
      <Header
        title="Teams & members"
        sub={admin ? "Teams own services and apps; users belong to teams with a role." : "The teams you belong to, and your role in each."}
      >
        {tab === "teams" && admin && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New team
          </button>
        )}
      </Header>
      {admin && (
        <div class="tabs" role="tablist" aria-label="Teams or users">
          <button type="button" role="tab" aria-selected={tab === "teams"} onClick={() => navigate("/teams", true)}>
            Teams
          </button>
          <button type="button" role="tab" aria-selected={tab === "users"} onClick={() => navigate("/teams?tab=users", true)}>
            Users
          </button>
        </div>
      )}
      {tab === "users" ? <Users /> : <TeamList onCreate={admin ? () => setCreating(true) : undefined} />}
      {creating && <NewTeam onClose={() => setCreating(false)} />}
    </>
  );
}

function TeamList({ onCreate }: { onCreate?: () => void }) {
  const { me } = useSession();
  const state = useLoad(() => all<Team>("/teams"), []);
  const roleIn = (id: number) => me.teams.find((t) => t.team_id === id)?.role;
  return (
    <Loaded state={state}>
      {(teams) => (
        <Table
          label="Teams"
          rows={teams}
          columns={[
            { title: "Team", cell: (t) => <a {...linkTo(`/teams/${t.id}`)}>{t.name}</a> },
            { title: "Description", cell: (t) => t.description || <span class="muted">–</span> },
            {
              title: "Your role",
              cell: (t) => {
                const role = roleIn(t.id);
                if (role) return <span class="badge">{roleName(role)}</span>;
                return isAdmin(me) ? <span class="muted">platform admin</span> : <span class="muted">–</span>;
              },
            },
            { title: "Created", cell: (t) => ago(t.created_at) },
          ]}
          empty={
            onCreate ? (
              <Empty title="No teams yet.">
                A team owns services and apps, and its members work on them.{" "}
                <button type="button" class="link" onClick={onCreate}>
                  Create the first team
                </button>
                .
              </Empty>
            ) : (
              <Empty title="You are not in any team yet.">Ask a platform admin or a team's admin to add you to a team.</Empty>
            )
          }
        />
      )}
    </Loaded>
  );
}

function NewTeam({ onClose }: { onClose: () => void }) {
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const create = async () => {
    const team = await api<Team>("POST", "/teams", { body: { name: name.trim(), description } });
    onClose();
    navigate(`/teams/${team.id}`);
  };
  return (
    <Modal title="New team" onClose={onClose}>
      <Form onSubmit={create} submit="Create team" onCancel={onClose}>
        <Field label="Name" hint={NAME_HINT}>
          <Text name="name" value={name} onInput={setName} required pattern={NAME_PATTERN} placeholder="payments" autoComplete="off" />
        </Field>
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
