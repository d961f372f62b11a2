// A service's versions and their lifecycle (docs/admin.md, "Services"):
//   draft --publish--> published --(next publish, or deprecate)--> deprecated --retire--> retired
// with rollback (a deprecated, once published version serves again) and, for rest and prompt
// services, a canary: a draft or deprecated version taking a share of the calls beside the
// published one, promoted by publishing it or ended by deprecating it.
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Confirm, Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form } from "../components/form";
import { Status, when } from "../components/format";
import { useLoad } from "../components/load";
import { type Column, Table } from "../components/table";
import { linkTo } from "../router";
import { DraftForm } from "./services-draft";
import { Check, type Json, pretty, type Service, type Version } from "./services-shared";

type Action = "publish" | "deprecate" | "retire" | "delete" | "rollback" | "canary" | "edit";

/** What a version holds, in one line. */
function summary(service: Service, version: Version): string {
  if (service.kind === "ai") return (version.models ?? []).join(", ") || "no models";
  if (service.kind === "rest") {
    const targets = ((version.upstream?.targets as { url: string }[] | undefined) ?? []).map((t) => t.url);
    const shown = targets.slice(0, 2).join(", ") + (targets.length > 2 ? ` +${targets.length - 2} more` : "");
    const strategy = version.upstream?.strategy ? ` (${String(version.upstream.strategy).replace(/_/g, " ")})` : "";
    return `${shown || "no targets"}${strategy}${version.openapi ? " · OpenAPI document" : ""}`;
  }
  if (service.kind === "mcp") {
    const mcp = version.mcp ?? {};
    const transport = String(mcp.transport ?? "http");
    const where = transport === "stdio" ? ((mcp.command as string[] | undefined) ?? []).join(" ") : String(mcp.url ?? "");
    return `${transport}: ${where}`;
  }
  const prompt = version.prompt as Json | null | undefined;
  return prompt?.model ? `model ${String(prompt.model)}` : "prompt";
}

export function VersionsSection({
  service,
  manages,
  onChanged,
}: {
  service: Service;
  manages: boolean;
  onChanged: () => void;
}) {
  const state = useLoad(() => all<Version>(`/services/${service.id}/versions`), [service.id]);
  const [drafting, setDrafting] = useState(false);
  const [acting, setActing] = useState<{ action: Action; version: Version } | null>(null);
  const [override, setOverride] = useState(false);

  const changed = () => {
    setActing(null);
    state.reload();
    onChanged();
  };
  const open = (action: Action, version: Version) => {
    setOverride(false);
    setActing({ action, version });
  };
  const canary = service.kind === "rest" || service.kind === "prompt";
  const canaryRunning = (versions: Version[]) => versions.some((v) => v.status === "canary");

  const actions = (v: Version, versions: Version[]): ComponentChildren => {
    if (!manages) return null;
    const startsCanary =
      canary && service.published_version !== null && !canaryRunning(versions) && (v.status === "draft" || v.status === "deprecated");
    const button = (action: Action, label: string, danger = false) => (
      <button type="button" class={danger ? "small danger" : "small"} onClick={() => open(action, v)}>
        {label}
      </button>
    );
    return (
      <div class="page-actions">
        {v.status === "draft" &&
          (service.kind === "prompt" ? (
            <a {...linkTo(`/prompt-apis/${service.id}`)}>Edit in Prompt APIs</a>
          ) : (
            button("edit", "Edit draft")
          ))}
        {(v.status === "draft" || v.status === "canary") && button("publish", "Publish")}
        {(startsCanary || v.status === "canary") && button("canary", "Canary")}
        {(v.status === "published" || v.status === "canary") && button("deprecate", "Deprecate")}
        {v.status === "deprecated" && v.published_at !== null && button("rollback", "Rollback")}
        {(v.status === "published" || v.status === "canary" || v.status === "deprecated") && button("retire", "Retire", true)}
        {v.status === "draft" && button("delete", "Delete draft", true)}
      </div>
    );
  };

  return (
    <section class="panel" aria-labelledby="versions-title">
      <div class="page-header" style={{ marginBottom: "0.25rem" }}>
        <h2 id="versions-title" style={{ margin: 0 }}>
          Versions
        </h2>
        {manages &&
          (service.kind === "prompt" ? (
            <a {...linkTo(`/prompt-apis/${service.id}`)}>New draft version</a>
          ) : (
            <button type="button" class="primary" onClick={() => setDrafting(true)}>
              New draft version
            </button>
          ))}
      </div>
      <p class="muted small">
        A draft can be changed; publishing freezes it and makes it serve (the version serving before becomes
        deprecated). A deprecated version can serve again (Rollback) or be retired for good.
        {canary && " A draft or deprecated version can also run as a canary beside the published one."}
      </p>
      <Loaded state={state}>
        {(versions) => {
          const columns: Column<Version>[] = [
            { title: "Version", cell: (v) => <strong>v{v.number}</strong> },
            { title: "Status", cell: (v) => <Status value={v.status} /> },
            { title: "Weight", cell: (v) => (v.status === "canary" ? `${v.weight ?? 0}%` : "–"), numeric: true },
            {
              title: "Content",
              cell: (v) => (
                <details>
                  <summary>{summary(service, v)}</summary>
                  <pre>{pretty(specOf(v))}</pre>
                </details>
              ),
            },
            { title: "Notes", cell: (v) => v.notes || <span class="muted">–</span> },
            { title: "Published", cell: (v) => when(v.published_at) },
            ...(manages ? [{ title: "Actions", cell: (v: Version) => actions(v, versions) }] : []),
          ];
          return (
            <Table
              label="Versions"
              columns={columns}
              rows={[...versions].sort((a, b) => b.number - a.number)}
              empty={
                <Empty title="No versions yet.">
                  {manages
                    ? "Create a draft with New draft version, then publish it: the service serves nothing until then."
                    : `A team admin of ${service.team} creates and publishes them.`}
                </Empty>
              }
            />
          );
        }}
      </Loaded>
      {drafting && (
        <DraftForm
          service={service}
          template={newest(state.data ?? [])}
          onClose={() => setDrafting(false)}
          onSaved={() => {
            setDrafting(false);
            changed();
          }}
        />
      )}
      {acting?.action === "edit" && (
        <DraftForm service={service} version={acting.version} onClose={() => setActing(null)} onSaved={changed} />
      )}
      {acting && acting.action !== "edit" && acting.action !== "canary" && (
        <LifecycleConfirm
          service={service}
          action={acting.action}
          version={acting.version}
          override={override}
          setOverride={setOverride}
          onCancel={() => setActing(null)}
          onDone={changed}
        />
      )}
      {acting?.action === "canary" && (
        <CanaryDialog service={service} version={acting.version} onClose={() => setActing(null)} onDone={changed} />
      )}
    </section>
  );
}

function newest(versions: Version[]): Version | undefined {
  return versions.reduce<Version | undefined>((found, v) => (!found || v.number > found.number ? v : found), undefined);
}

/** The version's content as the API keeps it, without the lifecycle's bookkeeping. */
function specOf(v: Version): Json {
  const spec: Json = {};
  for (const key of ["models", "context", "upstream", "openapi", "prompt", "mcp"] as const) {
    if (v[key] !== null && v[key] !== undefined) spec[key] = v[key];
  }
  return spec;
}

function LifecycleConfirm({
  service,
  action,
  version,
  override,
  setOverride,
  onCancel,
  onDone,
}: {
  service: Service;
  action: Exclude<Action, "edit" | "canary">;
  version: Version;
  override: boolean;
  setOverride: (value: boolean) => void;
  onCancel: () => void;
  onDone: () => void;
}) {
  const base = `/services/${service.id}/versions/${version.number}`;
  const serving = service.published_version;
  const v = `version ${version.number}`;
  const overrideBox =
    service.kind === "prompt" ? (
      <Check
        label="Publish even if its test cases fail"
        checked={override}
        onChange={setOverride}
        hint="a team admin's decision, recorded in the audit log with the failures"
      />
    ) : null;
  const steps: Record<typeof action, { title: string; label: string; danger: boolean; message: ComponentChildren; run: () => Promise<unknown> }> = {
    publish: {
      title: version.status === "canary" ? `Promote the canary, ${v}` : `Publish ${v}`,
      label: "Publish",
      danger: false,
      message: (
        <>
          <p>
            {version.status === "canary" ? "The canary" : `Version ${version.number}`} serves every call from now on
            {serving !== null && serving !== version.number ? `; version ${serving} becomes deprecated` : ""}.{" "}
            {version.status === "draft" && "Its content is frozen: later changes take a new version."}
          </p>
          {service.kind === "mcp" && (
            <p class="muted small">
              The gateway asks the MCP server for its tools now and records them as approved: the server must be
              reachable.
            </p>
          )}
          {overrideBox}
        </>
      ),
      run: () => api("POST", `${base}/publish`, { body: { override_failed_tests: override }, ifMatch: version.revision }),
    },
    deprecate: {
      title: version.status === "canary" ? `End the canary, ${v}` : `Deprecate ${v}`,
      label: "Deprecate",
      danger: true,
      message:
        version.status === "canary" ? (
          <p>
            Version {version.number} stops taking calls; version {serving} serves them all again. It stays deprecated
            (it can run again as a canary, or be retired).
          </p>
        ) : (
          <p>
            Version {version.number} stops serving, and the service serves <strong>nothing</strong> until a version is
            published or rolled back to.
          </p>
        ),
      run: () => api("POST", `${base}/deprecate`, { ifMatch: version.revision }),
    },
    retire: {
      title: `Retire ${v}`,
      label: "Retire",
      danger: true,
      message: (
        <p>
          Retire version {version.number} for good? A retired version never serves again; it is kept for the record.
          {version.status === "published" && " The service then serves nothing until another version is published."}
        </p>
      ),
      run: () => api("POST", `${base}/retire`, { ifMatch: version.revision }),
    },
    delete: {
      title: `Delete draft ${v}`,
      label: "Delete draft",
      danger: true,
      message: <p>Delete the draft version {version.number}? Its content is lost.</p>,
      run: () => api("DELETE", base, { ifMatch: version.revision }),
    },
    rollback: {
      title: `Roll back to ${v}`,
      label: "Rollback",
      danger: false,
      message: (
        <p>
          Version {version.number} serves every call again
          {serving !== null ? `; version ${serving}, serving now, becomes deprecated` : ""}.
        </p>
      ),
      run: () => api("POST", `/services/${service.id}/rollback`, { body: { version: version.number } }),
    },
  };
  const step = steps[action];
  return (
    <Confirm
      title={step.title}
      action={step.label}
      danger={step.danger}
      message={step.message}
      onCancel={onCancel}
      onDone={async () => {
        await step.run();
        onDone();
      }}
    />
  );
}

function CanaryDialog({
  service,
  version,
  onClose,
  onDone,
}: {
  service: Service;
  version: Version;
  onClose: () => void;
  onDone: () => void;
}) {
  const running = version.status === "canary";
  const [weight, setWeight] = useState(String(running ? (version.weight ?? 0) : 10));
  const [override, setOverride] = useState(false);
  const submit = async () => {
    await api("POST", `/services/${service.id}/versions/${version.number}/canary`, {
      body: { weight: Math.round(Number(weight)), override_failed_tests: override },
      ifMatch: version.revision,
    });
    onDone();
  };
  return (
    <Modal title={running ? `Canary weight of version ${version.number}` : `Run version ${version.number} as a canary`} onClose={onClose}>
      <p class="muted">
        {running
          ? "Change the share of the calls the canary takes. Publish it to promote it, deprecate it to end it."
          : `Version ${version.number} takes a share of the calls beside the published version ${service.published_version}.`}
        {version.status === "draft" && " A draft is frozen by this."}
      </p>
      <Form onSubmit={submit} submit={running ? "Set weight" : "Start canary"} onCancel={onClose}>
        <Field
          label="Weight (%)"
          hint="0: only calls asking for it (x-tollway-version header), as a blue-green release; 100: every call"
        >
          <input
            type="number"
            min={0}
            max={100}
            step={1}
            required
            value={weight}
            onInput={(e) => setWeight((e.target as HTMLInputElement).value)}
          />
        </Field>
        {service.kind === "prompt" && !running && (
          <Check
            label="Start it even if its test cases fail"
            checked={override}
            onChange={setOverride}
            hint="recorded in the audit log with the failures"
          />
        )}
      </Form>
    </Modal>
  );
}
