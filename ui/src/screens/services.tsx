// Services: what teams publish behind the gateway (models, REST APIs, prompt APIs, MCP
// servers), their settings, and (services-versions.tsx) the versions that carry their content.
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Confirm, Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { when } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { type Column, Table } from "../components/table";
import { linkTo, navigate } from "../router";
import { hasRole, isAdmin, type Me, teamsWith, useSession } from "../session";
import { RecordingPanel } from "./services-recording";
import { KINDS, type Kind, kindLabel, type Service, serviceLabel, type Team, TextArea } from "./services-shared";
import { VersionsSection } from "./services-versions";

// Option texts and hints stay clear of the other fields' labels: a label's accessible name
// holds its hint and its select's chosen option, and tests find fields by label.
const VISIBILITIES: [string, string][] = [
  ["private", "Private"],
  ["public", "Public"],
];
const VISIBILITY_HINT = "private: only its owners' apps may subscribe; public: any app may";
const APPROVALS: [string, string][] = [
  ["manual", "Manual"],
  ["auto", "Automatic"],
];
const APPROVAL_HINT = "manual: an admin of its owners approves each subscription; automatic: at once";

/** The published version and the canary beside it, in a few words. */
export function Serving({ service }: { service: Service }) {
  if (service.published_version === null) return <span class="muted">nothing published</span>;
  return (
    <>
      v{service.published_version}
      {service.canary_version != null && (
        <span class="muted">
          {" "}
          + canary v{service.canary_version} ({service.canary_weight ?? 0}%)
        </span>
      )}
    </>
  );
}

function canCreateServices(me: Me): boolean {
  return isAdmin(me) || teamsWith(me, "team_admin").length > 0;
}

export function Services({ query }: { query: URLSearchParams }) {
  const { me } = useSession();
  const team = query.get("team_id") ?? "";
  const kind = query.get("kind") ?? "";
  const [search, setSearch] = useState("");
  const [creating, setCreating] = useState(false);
  const state = useLoad(() => all<Service>("/services"), []);

  // Filters live in the URL, so that a filtered list can be linked to and survives a reload.
  const setFilter = (name: string, value: string) => {
    const next = new URLSearchParams(query);
    if (value) next.set(name, value);
    else next.delete(name);
    const text = next.toString();
    navigate(`/services${text ? `?${text}` : ""}`, true);
  };

  const columns: Column<Service>[] = [
    {
      title: "Service",
      cell: (s) => (
        <>
          <a {...linkTo(`/services/${s.id}`)}>{s.name}</a>
          {s.description && <div class="muted small">{s.description}</div>}
        </>
      ),
    },
    { title: "Team", cell: (s) => s.team },
    { title: "Kind", cell: (s) => kindLabel(s.kind) },
    { title: "Route prefix", cell: (s) => <code>{s.route_prefix}</code> },
    { title: "Visibility", cell: (s) => s.visibility },
    { title: "Approval", cell: (s) => (s.approval === "auto" ? "automatic" : "manual") },
    { title: "Serving", cell: (s) => <Serving service={s} /> },
  ];

  return (
    <>
      <Header title="Services" sub="What your teams publish through the gateway, and every public service.">
        {canCreateServices(me) && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New service
          </button>
        )}
      </Header>
      <Loaded state={state}>
        {(services) => {
          const teams = [...new Map(services.map((s) => [s.team_id, s.team])).entries()].sort((a, b) =>
            a[1].localeCompare(b[1]),
          );
          const needle = search.trim().toLowerCase();
          const shown = services.filter(
            (s) =>
              (!team || String(s.team_id) === team) &&
              (!kind || s.kind === kind) &&
              (!needle || s.name.includes(needle) || s.description.toLowerCase().includes(needle)),
          );
          return (
            <>
              <div class="filters">
                <Field label="Search">
                  <Text value={search} onInput={setSearch} placeholder="name or description" />
                </Field>
                <Field label="Team">
                  <Select
                    value={team}
                    onChange={(value) => setFilter("team_id", value)}
                    options={[["", "All teams"], ...teams.map(([id, name]): [string, string] => [String(id), name])]}
                  />
                </Field>
                <Field label="Kind">
                  <Select value={kind} onChange={(value) => setFilter("kind", value)} options={[["", "All kinds"], ...KINDS]} />
                </Field>
              </div>
              <Table
                label="Services"
                columns={columns}
                rows={shown}
                empty={
                  services.length === 0 ? (
                    <Empty title="No services yet.">
                      {canCreateServices(me)
                        ? "Create one with New service, then give it a version and publish it."
                        : "A team admin creates a team's services. The catalog lists what you can subscribe to."}
                    </Empty>
                  ) : (
                    <Empty title="No service matches these filters.">Clear the search or choose another team or kind.</Empty>
                  )
                }
              />
            </>
          );
        }}
      </Loaded>
      {creating && <NewService onClose={() => setCreating(false)} />}
    </>
  );
}

function NewService({ onClose }: { onClose: () => void }) {
  const { me } = useSession();
  // A platform admin may create a service in any team, not only in those they belong to.
  const teams = useLoad<Team[]>(
    async () =>
      isAdmin(me)
        ? all<Team>("/teams")
        : teamsWith(me, "team_admin").map((t) => ({ id: t.team_id, name: t.team })),
    [],
  );
  const [teamId, setTeamId] = useState("");
  const [name, setName] = useState("");
  const [kind, setKind] = useState<Kind>("ai");
  const [prefix, setPrefix] = useState("");
  const [prefixTouched, setPrefixTouched] = useState(false);
  const [visibility, setVisibility] = useState("private");
  const [approval, setApproval] = useState("manual");
  const [description, setDescription] = useState("");

  const create = async (chosen: Team[]) => {
    const team = teamId || (chosen[0] ? String(chosen[0].id) : "");
    const created = await api<Service>("POST", "/services", {
      body: {
        team_id: Number(team),
        name: name.trim(),
        kind,
        route_prefix: prefix.trim(),
        visibility,
        approval,
        description,
      },
    });
    onClose();
    navigate(`/services/${created.id}`);
  };

  return (
    <Modal title="New service" onClose={onClose}>
      <Loaded state={teams}>
        {(chosen) =>
          chosen.length === 0 ? (
            <Empty title="There is no team to create a service in.">A platform admin creates teams first.</Empty>
          ) : (
            <Form onSubmit={() => create(chosen)} submit="Create service" onCancel={onClose}>
              <Field label="Team">
                <Select
                  value={teamId || String(chosen[0].id)}
                  onChange={setTeamId}
                  options={chosen.map((t): [string, string] => [String(t.id), t.name])}
                />
              </Field>
              <Field label="Name" hint="lower-case letters, digits, '.', '_' and '-'">
                <Text
                  value={name}
                  required
                  onInput={(value) => {
                    setName(value);
                    if (!prefixTouched) setPrefix(value ? `/${value}` : "");
                  }}
                />
              </Field>
              <Field label="Kind">
                <Select value={kind} onChange={(value) => setKind(value as Kind)} options={KINDS} />
              </Field>
              <Field label="Route prefix" hint="where callers reach it on the gateway, e.g. /billing">
                <Text
                  value={prefix}
                  required
                  placeholder="/billing"
                  onInput={(value) => {
                    setPrefix(value);
                    setPrefixTouched(true);
                  }}
                />
              </Field>
              <Field label="Visibility" hint={VISIBILITY_HINT}>
                <Select value={visibility} onChange={setVisibility} options={VISIBILITIES} />
              </Field>
              <Field label="Approval" hint={APPROVAL_HINT}>
                <Select value={approval} onChange={setApproval} options={APPROVALS} />
              </Field>
              <Field label="Description">
                <TextArea value={description} onInput={setDescription} rows={3} />
              </Field>
            </Form>
          )
        }
      </Loaded>
    </Modal>
  );
}

export function ServiceDetail({ serviceId }: { serviceId: string }) {
  const { me } = useSession();
  const state = useLoad(() => api<Service>("GET", `/services/${serviceId}`), [serviceId]);
  const [editing, setEditing] = useState(false);
  const [deleting, setDeleting] = useState(false);
  if (state.error?.status === 404) {
    return (
      <>
        <Header title="No such service" />
        <Empty title="There is no such service, or it is another team's private one.">
          <a {...linkTo("/services")}>Back to the services</a>
        </Empty>
      </>
    );
  }
  return (
    <Loaded state={state}>
      {(service) => {
        const manages = hasRole(me, service.team_id, "team_admin");
        const member = hasRole(me, service.team_id, "viewer");
        return (
          <>
            <Header
              title={serviceLabel(service)}
              sub={
                <>
                  {kindLabel(service.kind)} at <code>{service.route_prefix}</code>
                </>
              }
            >
              {service.published_version !== null && <a {...linkTo(`/catalog/${service.id}`)}>Open in the catalog</a>}
              {manages && (
                <>
                  <button type="button" onClick={() => setEditing(true)}>
                    Edit settings
                  </button>
                  <button type="button" class="danger" onClick={() => setDeleting(true)}>
                    Delete service
                  </button>
                </>
              )}
            </Header>
            <section class="panel" aria-label="Service">
              <dl class="facts">
                <dt>Team</dt>
                <dd>{member ? <a {...linkTo(`/teams/${service.team_id}`)}>{service.team}</a> : service.team}</dd>
                <dt>Kind</dt>
                <dd>{kindLabel(service.kind)}</dd>
                <dt>Route prefix</dt>
                <dd>
                  <code>{service.route_prefix}</code>
                </dd>
                <dt>Visibility</dt>
                <dd>{service.visibility === "public" ? "public: any team's apps may subscribe" : "private: only the team's own apps"}</dd>
                <dt>Approval</dt>
                <dd>{service.approval === "auto" ? "automatic" : "manual: a team admin approves each subscription"}</dd>
                <dt>Serving</dt>
                <dd>
                  <Serving service={service} />
                </dd>
                <dt>Description</dt>
                <dd>{service.description || <span class="muted">none</span>}</dd>
                <dt>Created</dt>
                <dd>{when(service.created_at)}</dd>
                <dt>Changed</dt>
                <dd>{when(service.updated_at)}</dd>
              </dl>
              {service.kind === "prompt" && (
                <p>
                  Its prompt, tests and playground are in{" "}
                  <a {...linkTo(`/prompt-apis/${service.id}`)}>Prompt APIs</a>.
                </p>
              )}
            </section>
            {member ? (
              <>
                <VersionsSection service={service} manages={manages} onChanged={state.reload} />
                <RecordingPanel service={service} manages={manages} />
              </>
            ) : (
              <section class="panel">
                <h2 style={{ marginTop: 0 }}>Versions</h2>
                <p class="muted">
                  A service's versions are its team's ({service.team}). The catalog shows the version that serves:{" "}
                  {service.published_version !== null ? (
                    <a {...linkTo(`/catalog/${service.id}`)}>version {service.published_version}</a>
                  ) : (
                    "none is published yet."
                  )}
                </p>
              </section>
            )}
            {editing && (
              <EditSettings
                service={service}
                onClose={() => setEditing(false)}
                onSaved={() => {
                  setEditing(false);
                  state.reload();
                }}
              />
            )}
            {deleting && (
              <Confirm
                title="Delete service"
                action="Delete service"
                message={
                  <p>
                    Delete <strong>{serviceLabel(service)}</strong> with all its versions? Calls to{" "}
                    <code>{service.route_prefix}</code> stop at once. A service with pending or approved
                    subscriptions cannot be deleted: reject or revoke them first.
                  </p>
                }
                onCancel={() => setDeleting(false)}
                onDone={async () => {
                  await api("DELETE", `/services/${service.id}`, { ifMatch: service.revision });
                  navigate("/services", true);
                }}
              />
            )}
          </>
        );
      }}
    </Loaded>
  );
}

function EditSettings({ service, onClose, onSaved }: { service: Service; onClose: () => void; onSaved: () => void }) {
  const [name, setName] = useState(service.name);
  const [prefix, setPrefix] = useState(service.route_prefix);
  const [visibility, setVisibility] = useState<string>(service.visibility);
  const [approval, setApproval] = useState<string>(service.approval);
  const [description, setDescription] = useState(service.description);
  const save = async () => {
    // Only what changed is sent: the audit log then records just that.
    const body: Record<string, string> = {};
    if (name.trim() !== service.name) body.name = name.trim();
    if (prefix.trim() !== service.route_prefix) body.route_prefix = prefix.trim();
    if (visibility !== service.visibility) body.visibility = visibility;
    if (approval !== service.approval) body.approval = approval;
    if (description !== service.description) body.description = description;
    if (Object.keys(body).length > 0) {
      await api<Service>("PATCH", `/services/${service.id}`, { body, ifMatch: service.revision });
    }
    onSaved();
  };
  return (
    <Modal title="Edit settings" onClose={onClose}>
      <Form onSubmit={save} submit="Save" onCancel={onClose}>
        <Field label="Name" hint="lower-case letters, digits, '.', '_' and '-'">
          <Text value={name} onInput={setName} required />
        </Field>
        <Field label="Route prefix" hint="changing it moves where callers reach the service">
          <Text value={prefix} onInput={setPrefix} required />
        </Field>
        <Field label="Visibility" hint={VISIBILITY_HINT}>
          <Select value={visibility} onChange={setVisibility} options={VISIBILITIES} />
        </Field>
        <Field label="Approval" hint={APPROVAL_HINT}>
          <Select value={approval} onChange={setApproval} options={APPROVALS} />
        </Field>
        <Field label="Description">
          <TextArea value={description} onInput={setDescription} rows={3} />
        </Field>
      </Form>
    </Modal>
  );
}
