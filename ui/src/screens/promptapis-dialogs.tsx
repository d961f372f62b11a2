// The dialogs of the prompt API screens: a new prompt API, a new draft (a copy of a version,
// or from scratch), and publishing a draft (its test cases run first).
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { useLoad } from "../components/load";
import { navigate } from "../router";
import { isAdmin, teamsWith, useSession } from "../session";
import type { PromptSpec, Version } from "./promptapis-version";

export type Service = {
  id: number;
  team_id: number;
  team: string;
  name: string;
  kind: string;
  route_prefix: string;
  visibility: string;
  approval: string;
  description: string;
  published_version: number | null;
  canary_version: number | null;
  canary_weight: number | null;
  created_at: string;
  updated_at: string;
  revision: number;
};
type Team = { id: number; name: string };

export function NewPromptApi({ onClose }: { onClose: () => void }) {
  const { me } = useSession();
  // A platform admin may create in any team, so needs every team's id; others, their own.
  const teams = useLoad<Team[]>(
    async () =>
      isAdmin(me)
        ? all<Team>("/teams")
        : teamsWith(me, "team_admin").map((t) => ({ id: t.team_id, name: t.team })),
    [],
  );
  const [team, setTeam] = useState("");
  const [name, setName] = useState("");
  const [prefix, setPrefix] = useState("");
  const [prefixTouched, setPrefixTouched] = useState(false);
  const [visibility, setVisibility] = useState("private");
  const [approval, setApproval] = useState("manual");
  const [description, setDescription] = useState("");

  const create = async () => {
    const chosen = team || String(teams.data?.[0]?.id ?? "");
    const created = await api<Service>("POST", "/services", {
      body: {
        team_id: Number(chosen),
        name,
        kind: "prompt",
        route_prefix: prefix,
        visibility,
        approval,
        description,
      },
    });
    onClose();
    navigate(`/prompt-apis/${created.id}`);
  };

  return (
    <Modal title="New prompt API" onClose={onClose}>
      <Loaded state={teams}>
        {(list) =>
          list.length === 0 ? (
            <Empty title="There is no team to own it.">Create a team first (Teams & members).</Empty>
          ) : (
            <Form submit="Create prompt API" onSubmit={create} onCancel={onClose}>
              <Field label="Team" hint="the team that owns and publishes it">
                <Select
                  name="team"
                  value={team || String(list[0].id)}
                  onChange={setTeam}
                  options={list.map((t) => [String(t.id), t.name])}
                />
              </Field>
              <Field label="Name" hint="lower-case letters, digits, '.', '_' and '-'">
                <Text
                  name="name"
                  value={name}
                  required
                  pattern="[a-z0-9][a-z0-9._\-]{0,62}"
                  onInput={(value) => {
                    setName(value);
                    if (!prefixTouched) setPrefix(value ? `/apis/${value}` : "");
                  }}
                />
              </Field>
              <Field label="Route prefix" hint="apps call POST <route prefix> on the gateway, e.g. /apis/sentiment">
                <Text
                  name="route_prefix"
                  value={prefix}
                  required
                  onInput={(value) => {
                    setPrefix(value);
                    setPrefixTouched(true);
                  }}
                />
              </Field>
              <Field label="Visibility" hint="public: every team finds it in the catalog">
                <Select
                  name="visibility"
                  value={visibility}
                  onChange={setVisibility}
                  options={[
                    ["private", "private (its team only)"],
                    ["public", "public"],
                  ]}
                />
              </Field>
              <Field label="Approval" hint="whether a team admin approves each subscription">
                <Select
                  name="approval"
                  value={approval}
                  onChange={setApproval}
                  options={[
                    ["manual", "manual (a team admin approves)"],
                    ["auto", "automatic"],
                  ]}
                />
              </Field>
              <Field label="Description">
                <textarea
                  name="description"
                  rows={3}
                  maxLength={2000}
                  value={description}
                  onInput={(e) => setDescription((e.target as HTMLTextAreaElement).value)}
                />
              </Field>
            </Form>
          )
        }
      </Loaded>
    </Modal>
  );
}

// A blank draft that the API accepts as it is: one variable, used by the user message.
function scratch(model: string): PromptSpec {
  return {
    model,
    messages: [
      { role: "system", content: "Answer the user's request briefly." },
      { role: "user", content: "{{ text }}" },
    ],
    input_schema: {
      type: "object",
      properties: { text: { type: "string", minLength: 1 } },
      required: ["text"],
      additionalProperties: false,
    },
  };
}

export function CreateDraft({
  serviceId,
  versions,
  models,
  onClose,
  onCreated,
}: {
  serviceId: string;
  versions: Version[];
  models: string[];
  onClose: () => void;
  onCreated: (version: Version) => void;
}) {
  const sources = versions.filter((v) => v.prompt !== null);
  const [from, setFrom] = useState(sources.length > 0 ? String(sources[0].number) : "scratch");
  const [model, setModel] = useState(models[0] ?? "");
  const [notes, setNotes] = useState("");
  const create = async () => {
    const source = sources.find((v) => String(v.number) === from);
    const prompt = source?.prompt ?? scratch(model.trim());
    const created = await api<Version>("POST", `/services/${serviceId}/versions`, {
      body: { prompt, notes: notes || (source ? `copied from version ${source.number}` : "") },
    });
    onCreated(created);
  };
  return (
    <Modal title="Create draft" onClose={onClose}>
      <Form submit="Create draft" onSubmit={create} onCancel={onClose}>
        <Field label="Start from">
          <Select
            name="from"
            value={from}
            onChange={setFrom}
            options={[
              ...sources.map((v): [string, string] => [
                String(v.number),
                `a copy of version ${v.number} (${v.status})${v === sources[0] ? ", the latest" : ""}`,
              ]),
              ["scratch", "scratch (a one-variable template)"],
            ]}
          />
        </Field>
        {from === "scratch" && (
          <Field label="Model" hint="the model (or model group) that answers">
            <input
              name="model"
              list="prompt-api-new-models"
              required
              value={model}
              onInput={(e) => setModel((e.target as HTMLInputElement).value)}
            />
            <datalist id="prompt-api-new-models">
              {models.map((m) => (
                <option value={m} />
              ))}
            </datalist>
          </Field>
        )}
        <Field label="Notes" hint="what this version is for">
          <Text name="notes" value={notes} onInput={setNotes} />
        </Field>
      </Form>
    </Modal>
  );
}

export function PublishDialog({
  serviceId,
  service,
  version,
  onClose,
  onDone,
}: {
  serviceId: string;
  service: Service;
  version: Version;
  onClose: () => void;
  onDone: () => void;
}) {
  const [override, setOverride] = useState(false);
  const tests = version.prompt?.tests?.length ?? 0;
  const publish = async () => {
    await api<Version>("POST", `/services/${serviceId}/versions/${version.number}/publish`, {
      body: override ? { override_failed_tests: true } : undefined,
      ifMatch: version.revision,
    });
    onDone();
  };
  return (
    <Modal title={`Publish version ${version.number}`} onClose={onClose}>
      <Form submit="Publish" onSubmit={publish} onCancel={onClose}>
        <p>
          Version {version.number} is frozen and serves every call of <code>POST {service.route_prefix}</code> from
          now on
          {service.published_version !== null
            ? `; version ${service.published_version}, which serves now, becomes deprecated (a rollback can serve it again).`
            : "."}
        </p>
        {tests > 0 ? (
          <>
            <p class="muted">
              Its {tests} test case{tests === 1 ? "" : "s"} run first: a failing one blocks the publication.
            </p>
            <label>
              <input type="checkbox" checked={override} onChange={(e) => setOverride((e.target as HTMLInputElement).checked)} />{" "}
              Publish even if test cases fail (recorded in the audit log with the failures)
            </label>
          </>
        ) : (
          <p class="muted">It has no test cases to run first.</p>
        )}
      </Form>
    </Modal>
  );
}
