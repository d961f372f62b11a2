// Prompt APIs: a team's prompt and model published as a REST API. The list of them, and one
// API's page: its versions, the draft's editor, the playground, its test cases and its endpoint.
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Confirm } from "../components/dialog";
import { Empty, ErrorNote, Loaded, Loading } from "../components/feedback";
import { Status, ago, when } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { linkTo } from "../router";
import { hasRole, isAdmin, teamsWith, useSession } from "../session";
import { CreateDraft, NewPromptApi, PublishDialog, type Service } from "./promptapis-dialogs";
import { DraftEditor } from "./promptapis-editor";
import { Endpoint, Playground, TestCases } from "./promptapis-run";
import { type Json, PromptView, type Version } from "./promptapis-version";

type Model = { name: string };
type CatalogEntry = { input_schema: Json | null; output_schema: Json | null };

function Serving({ service }: { service: Service }) {
  if (service.published_version === null) return <span class="muted">none yet</span>;
  return (
    <>
      v{service.published_version}
      {service.canary_version !== null && (
        <span class="muted small">
          {" "}
          · A/B v{service.canary_version} at {service.canary_weight ?? 0}%
        </span>
      )}
    </>
  );
}

export function PromptApis() {
  const { me } = useSession();
  const state = useLoad(() => all<Service>("/services", { kind: "prompt" }), []);
  const [creating, setCreating] = useState(false);
  const canCreate = isAdmin(me) || teamsWith(me, "team_admin").length > 0;
  return (
    <>
      <Header title="Prompt APIs" sub="A prompt and a model, published as a typed REST API that apps subscribe to.">
        {canCreate && (
          <button type="button" class="primary" onClick={() => setCreating(true)}>
            New prompt API
          </button>
        )}
      </Header>
      <Loaded state={state}>
        {(services) => (
          <Table
            label="Prompt APIs"
            rows={services}
            columns={[
              { title: "Name", cell: (s) => <a {...linkTo(`/prompt-apis/${s.id}`)}>{s.name}</a> },
              { title: "Team", cell: (s) => s.team },
              { title: "Route", cell: (s) => <code>POST {s.route_prefix}</code> },
              { title: "Visibility", cell: (s) => s.visibility },
              { title: "Approval", cell: (s) => s.approval },
              { title: "Published version", cell: (s) => <Serving service={s} /> },
              { title: "Updated", cell: (s) => <span title={when(s.updated_at)}>{ago(s.updated_at)}</span> },
            ]}
            empty={
              <Empty title="No prompt APIs yet.">
                {canCreate
                  ? "Create one with “New prompt API”: then write its prompt in a draft, try it in the playground, and publish it."
                  : "A team admin creates them; public ones and your teams' ones show here."}
              </Empty>
            }
          />
        )}
      </Loaded>
      {creating && <NewPromptApi onClose={() => setCreating(false)} />}
    </>
  );
}

export function PromptApiDetail({ serviceId }: { serviceId: string }) {
  const { me } = useSession();
  const service = useLoad(() => api<Service>("GET", `/services/${serviceId}`), [serviceId]);
  const versions = useLoad(() => all<Version>(`/services/${serviceId}/versions`), [serviceId]);
  const models = useLoad(() => all<Model>("/models").then((list) => list.map((m) => m.name)), []);
  // Those outside the owning team read no versions: the catalog gives them the serving schemas.
  const servingNumber = service.data?.published_version ?? null;
  const catalog = useLoad(
    () =>
      versions.error && servingNumber !== null
        ? api<CatalogEntry>("GET", `/catalog/${serviceId}`)
        : Promise.resolve(null),
    [serviceId, versions.error !== null, servingNumber],
  );
  const [picked, setPicked] = useState<number | null>(null);
  const [dialog, setDialog] = useState<"create" | "publish" | "delete" | null>(null);
  const [dirty, setDirty] = useState(false);
  const [discarding, setDiscarding] = useState<number | null>(null);
  const [saved, setSaved] = useState<string | null>(null);

  const reload = () => {
    service.reload();
    versions.reload();
  };

  if (service.error) {
    return (
      <>
        <Header title="Prompt API" />
        <ErrorNote error={service.error} retry={service.reload} />
        <a {...linkTo("/prompt-apis")}>Back to the prompt APIs</a>
      </>
    );
  }
  if (!service.data) return <Loading what="Loading the prompt API" />;
  const s = service.data;
  if (s.kind !== "prompt") {
    return (
      <>
        <Header title={s.name} />
        <Empty title={`${s.name} is a ${s.kind} service, not a prompt API.`}>
          <a {...linkTo(`/services/${s.id}`)}>Open it on the services page</a>
        </Empty>
      </>
    );
  }
  const admin = hasRole(me, s.team_id, "team_admin");
  const developer = hasRole(me, s.team_id, "developer");
  const list = [...(versions.data ?? [])].sort((a, b) => b.number - a.number);
  const fallback = list.find((v) => v.status === "draft") ?? list.find((v) => v.status === "published") ?? list[0];
  const selected = list.find((v) => v.number === picked) ?? fallback;
  const published = list.find((v) => v.status === "published");
  const modelNames = models.data ?? [];
  const pick = (number: number) => {
    setPicked(number);
    setDirty(false);
    setSaved(null);
  };
  // Another version replaces the editor: unsaved edits are dropped only once the user agrees.
  const choose = (number: number) => {
    if (number === selected?.number) return;
    if (dirty) setDiscarding(number);
    else pick(number);
  };

  return (
    <>
      <Header
        title={s.name}
        sub={
          <>
            <a {...linkTo("/prompt-apis")}>Prompt APIs</a> · team {s.team} · <code>POST {s.route_prefix}</code>
          </>
        }
      >
        {admin && versions.data && (
          <button type="button" class="primary" onClick={() => setDialog("create")}>
            Create draft
          </button>
        )}
      </Header>

      <div class="grid">
        <section class="panel" aria-labelledby="facts-title">
          <h2 id="facts-title">The API</h2>
          <dl class="facts">
            <dt>Team</dt>
            <dd>{s.team}</dd>
            <dt>Route</dt>
            <dd>
              <code>POST {s.route_prefix}</code>
            </dd>
            <dt>Visibility</dt>
            <dd>{s.visibility}</dd>
            <dt>Approval</dt>
            <dd>{s.approval === "auto" ? "automatic" : "manual (a team admin approves)"}</dd>
            <dt>Published version</dt>
            <dd>
              <Serving service={s} />
            </dd>
            <dt>Description</dt>
            <dd>{s.description || <span class="muted">none</span>}</dd>
            <dt>Created</dt>
            <dd>{when(s.created_at)}</dd>
          </dl>
          <p class="small">
            <a {...linkTo(`/services/${s.id}`)}>Service settings, A/B tests, rollback and retirement</a>
          </p>
        </section>
        <Endpoint
          name={s.name}
          team={s.team}
          routePrefix={s.route_prefix}
          serving={s.published_version}
          canary={s.canary_version !== null ? { number: s.canary_version, weight: s.canary_weight ?? 0 } : null}
          inputSchema={published?.prompt ? published.prompt.input_schema : catalog.data?.input_schema}
          outputSchema={published?.prompt ? (published.prompt.output_schema ?? null) : catalog.data?.output_schema}
        />
      </div>

      <section class="panel" aria-labelledby="versions-title">
        <h2 id="versions-title">Versions</h2>
        {versions.error ? (
          <>
            <ErrorNote error={versions.error} retry={versions.error.status === 403 ? undefined : versions.reload} />
            {versions.error.status === 403 && (
              <p class="muted">
                Only members of the team {s.team} see its versions; the catalog shows the one that serves.
              </p>
            )}
          </>
        ) : !versions.data ? (
          <Loading what="Loading versions" />
        ) : (
          <Table
            label="Versions"
            rows={list}
            onRow={(v) => choose(v.number)}
            columns={[
              {
                title: "Version",
                cell: (v) => (
                  <button type="button" class="link" aria-pressed={v === selected} onClick={() => choose(v.number)}>
                    {v === selected ? <strong>v{v.number}</strong> : `v${v.number}`}
                  </button>
                ),
              },
              {
                title: "Status",
                cell: (v) => (
                  <>
                    <Status value={v.status} />
                    {v.status === "canary" && <span class="muted small"> {v.weight ?? 0}%</span>}
                  </>
                ),
              },
              { title: "Model", cell: (v) => <code>{v.prompt?.model ?? "–"}</code> },
              { title: "Tests", cell: (v) => v.prompt?.tests?.length ?? 0, numeric: true },
              { title: "Notes", cell: (v) => v.notes || <span class="muted">–</span> },
              { title: "Updated", cell: (v) => <span title={when(v.updated_at)}>{ago(v.updated_at)}</span> },
            ]}
            empty={
              <Empty title="No versions yet.">
                {admin
                  ? "Create a draft: write its prompt, try it in the playground, then publish it."
                  : "A team admin of this team writes the first draft."}
              </Empty>
            }
          />
        )}
      </section>

      {selected && (
        <section class="panel" aria-labelledby="version-title">
          <div class="page-header">
            <h2 id="version-title">
              Version {selected.number} <Status value={selected.status} />
            </h2>
            {admin && selected.status === "draft" && (
              <div class="page-actions">
                <button
                  type="button"
                  class="primary"
                  disabled={dirty}
                  title={dirty ? "Save the draft first: publishing uses the saved draft" : undefined}
                  onClick={() => setDialog("publish")}
                >
                  Publish
                </button>
                <button type="button" class="danger" onClick={() => setDialog("delete")}>
                  Delete draft
                </button>
              </div>
            )}
          </div>
          {dirty && <p class="muted small">Unsaved changes: save the draft before publishing or running it.</p>}
          {saved && !dirty && (
            <p class="muted small" role="status">
              {saved}
            </p>
          )}
          {selected.prompt === null ? (
            <p class="muted">This version has no prompt.</p>
          ) : admin && selected.status === "draft" ? (
            <DraftEditor
              key={`${selected.number}-${selected.revision}`}
              version={selected}
              models={modelNames}
              onDirty={setDirty}
              onSave={async (body) => {
                const updated = await api<Version>("PATCH", `/services/${serviceId}/versions/${selected.number}`, {
                  body,
                  ifMatch: selected.revision,
                });
                setDirty(false);
                setSaved(`Saved as revision ${updated.revision}.`);
                versions.reload();
              }}
            />
          ) : (
            <>
              {selected.status === "draft" && (
                <p class="muted small">A team admin of {s.team} edits drafts; you see it as it is.</p>
              )}
              {selected.status !== "draft" && admin && (
                <p class="muted small">
                  A {selected.status} version is frozen: “Create draft” copies it into a new draft to change it.
                </p>
              )}
              <PromptView prompt={selected.prompt} />
            </>
          )}
        </section>
      )}

      {selected && selected.prompt !== null && developer && (
        <>
          <Playground key={`p-${selected.number}`} serviceId={serviceId} version={selected} unsaved={dirty} />
          <TestCases key={`t-${selected.number}-${selected.revision}`} serviceId={serviceId} version={selected} unsaved={dirty} />
        </>
      )}

      {discarding !== null && (
        <Confirm
          title="Discard unsaved changes"
          message={<p>The draft has changes that are not saved. Open version {discarding} and drop them?</p>}
          action="Discard changes"
          onCancel={() => setDiscarding(null)}
          onDone={async () => {
            pick(discarding);
            setDiscarding(null);
          }}
        />
      )}
      {dialog === "create" && (
        <CreateDraft
          serviceId={serviceId}
          versions={list}
          models={modelNames}
          onClose={() => setDialog(null)}
          onCreated={(created) => {
            setDialog(null);
            pick(created.number);
            versions.reload();
          }}
        />
      )}
      {dialog === "publish" && selected && (
        <PublishDialog
          serviceId={serviceId}
          service={s}
          version={selected}
          onClose={() => setDialog(null)}
          onDone={() => {
            setDialog(null);
            setSaved(`Version ${selected.number} is published.`);
            reload();
          }}
        />
      )}
      {dialog === "delete" && selected && (
        <Confirm
          title={`Delete draft ${selected.number}`}
          message={<p>Delete the draft version {selected.number} of {s.name}? Its prompt and test cases are lost.</p>}
          action="Delete draft"
          onCancel={() => setDialog(null)}
          onDone={async () => {
            await api("DELETE", `/services/${serviceId}/versions/${selected.number}`, { ifMatch: selected.revision });
            setDialog(null);
            setPicked(null);
            setDirty(false);
            versions.reload();
          }}
        />
      )}
    </>
  );
}
