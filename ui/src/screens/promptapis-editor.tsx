// The editor of a prompt API's draft: model, parameters, messages, input and output schemas,
// test cases and notes, checked here before the PATCH is sent.
import { useState } from "preact/hooks";
import { Field, Form, Select, Text } from "../components/form";
import {
  type Check,
  type Json,
  type Message,
  type Parameters,
  Problems,
  type PromptSpec,
  type Role,
  type TestCase,
  type Version,
  isObject,
  pretty,
  sampleInput,
  variablesOf,
} from "./promptapis-version";

const ROLES: [string, string][] = [
  ["system", "system"],
  ["developer", "developer"],
  ["user", "user"],
  ["assistant", "assistant"],
];
const CHECK_HINT =
  'A JSON array of checks: {"type": "exact", "value": …}, {"type": "contains", "text": "…"}, ' +
  '{"type": "regex", "pattern": "…"}, {"type": "json_schema", "json_schema": {…}}, ' +
  '{"type": "field_equals", "field": "label", "value": …}.';

type CaseForm = { name: string; input: string; checks: string };
type DraftForm = {
  model: string;
  temperature: string;
  top_p: string;
  max_tokens: string;
  seed: string;
  stop: string;
  messages: Message[];
  inputSchema: string;
  outputSchema: string;
  maxInputBytes: string;
  tests: CaseForm[];
  notes: string;
};

function formOf(version: Version): DraftForm {
  const prompt = version.prompt;
  const parameters = prompt?.parameters ?? {};
  const shown = (value: number | null | undefined) => (value === null || value === undefined ? "" : String(value));
  return {
    model: prompt?.model ?? "",
    temperature: shown(parameters.temperature),
    top_p: shown(parameters.top_p),
    max_tokens: shown(parameters.max_tokens),
    seed: shown(parameters.seed),
    stop: (parameters.stop ?? []).join("\n"),
    messages: prompt?.messages.map((m) => ({ ...m })) ?? [{ role: "user", content: "" }],
    inputSchema: pretty(prompt?.input_schema ?? { type: "object", properties: {} }),
    outputSchema: prompt?.output_schema ? pretty(prompt.output_schema) : "",
    maxInputBytes: shown(prompt?.max_input_bytes),
    tests: (prompt?.tests ?? []).map((t) => ({ name: t.name, input: pretty(t.input), checks: pretty(t.checks) })),
    notes: version.notes,
  };
}

/** The PATCH body of a draft, or the problems that keep it from being sent. */
function bodyOf(form: DraftForm, before: PromptSpec | null): { prompt: PromptSpec; notes: string } {
  const problems = new Problems();
  if (!form.model.trim()) problems.add("prompt.model", "name the model that answers");
  if (form.messages.length === 0) problems.add("prompt.messages", "give at least one message");
  const inputSchema = problems.json(form.inputSchema, "prompt.input_schema");
  if (inputSchema !== undefined && !isObject(inputSchema)) {
    problems.add("prompt.input_schema", "must be a JSON object (a JSON Schema)");
  }
  let outputSchema: unknown = null;
  if (form.outputSchema.trim()) {
    outputSchema = problems.json(form.outputSchema, "prompt.output_schema");
    if (outputSchema !== undefined && !isObject(outputSchema)) {
      problems.add("prompt.output_schema", "must be a JSON object (a JSON Schema), or empty");
    }
  }
  const stop = form.stop.split("\n").filter((line) => line !== "");
  if (stop.length > 4) problems.add("prompt.parameters.stop", "at most 4 stop sequences");
  const parameters: Parameters = {
    ...(before?.parameters ?? {}),
    temperature: problems.number(form.temperature, "prompt.parameters.temperature"),
    top_p: problems.number(form.top_p, "prompt.parameters.top_p"),
    max_tokens: problems.number(form.max_tokens, "prompt.parameters.max_tokens", true),
    seed: problems.number(form.seed, "prompt.parameters.seed", true),
    stop: stop.length > 0 ? stop : null,
  };
  const maxInputBytes = problems.number(form.maxInputBytes, "prompt.max_input_bytes", true);
  const tests: TestCase[] = form.tests.map((t, i) => {
    if (!t.name.trim()) problems.add(`prompt.tests.${i}.name`, "give the test case a name");
    const input = problems.json(t.input, `prompt.tests.${i}.input`);
    if (input !== undefined && !isObject(input)) problems.add(`prompt.tests.${i}.input`, "must be a JSON object");
    const checks = problems.json(t.checks, `prompt.tests.${i}.checks`);
    if (checks !== undefined && (!Array.isArray(checks) || !checks.every(isObject))) {
      problems.add(`prompt.tests.${i}.checks`, "must be a JSON array of check objects");
    }
    return { name: t.name.trim(), input: input as Json, checks: checks as Check[] };
  });
  problems.raise();
  const prompt: PromptSpec = {
    ...(before ?? {}),
    model: form.model.trim(),
    messages: form.messages,
    input_schema: inputSchema as Json,
    output_schema: outputSchema as Json | null,
    parameters,
    tests,
  };
  if (maxInputBytes !== null) prompt.max_input_bytes = maxInputBytes;
  else delete prompt.max_input_bytes;
  return { prompt, notes: form.notes };
}

/** The editor of a draft. Mount it with a key of the version's number and revision, so that a
 * saved or reloaded draft starts it afresh. */
export function DraftEditor({
  version,
  models,
  onSave,
  onDirty,
}: {
  version: Version;
  models: string[];
  onSave: (body: { prompt: PromptSpec; notes: string }) => Promise<void>;
  onDirty: (dirty: boolean) => void;
}) {
  const [form, setForm] = useState<DraftForm>(() => formOf(version));
  const change = (patch: Partial<DraftForm>) => {
    setForm((current) => ({ ...current, ...patch }));
    onDirty(true);
  };
  const setMessage = (index: number, patch: Partial<Message>) =>
    change({ messages: form.messages.map((m, i) => (i === index ? { ...m, ...patch } : m)) });
  const moveMessage = (index: number, by: number) => {
    const messages = [...form.messages];
    const [moved] = messages.splice(index, 1);
    messages.splice(index + by, 0, moved);
    change({ messages });
  };
  const setCase = (index: number, patch: Partial<CaseForm>) =>
    change({ tests: form.tests.map((t, i) => (i === index ? { ...t, ...patch } : t)) });

  let schema: unknown;
  try {
    schema = JSON.parse(form.inputSchema);
  } catch {
    schema = undefined;
  }
  const properties = isObject(schema) && isObject(schema.properties) ? Object.keys(schema.properties) : null;
  const variables = variablesOf(form.messages);
  const strangers = properties ? variables.filter((v) => !properties.includes(v)) : [];

  const addCase = () => {
    let output: unknown;
    try {
      output = form.outputSchema.trim() ? JSON.parse(form.outputSchema) : undefined;
    } catch {
      output = undefined;
    }
    const checks = isObject(output) ? [{ type: "json_schema", json_schema: output }] : [{ type: "regex", pattern: "\\S" }];
    change({
      tests: [...form.tests, { name: `case-${form.tests.length + 1}`, input: pretty(sampleInput(schema)), checks: pretty(checks) }],
    });
  };

  return (
    <Form submit="Save draft" onSubmit={() => onSave(bodyOf(form, version.prompt))}>
      <datalist id="prompt-api-models">
        {models.map((name) => (
          <option value={name} />
        ))}
      </datalist>
      <div class="filters">
        <Field label="Model">
          <input
            name="model"
            list="prompt-api-models"
            value={form.model}
            required
            onInput={(e) => change({ model: (e.target as HTMLInputElement).value })}
          />
        </Field>
        <Field label="Temperature">
          <Text value={form.temperature} onInput={(v) => change({ temperature: v })} name="temperature" />
        </Field>
        <Field label="Top p">
          <Text value={form.top_p} onInput={(v) => change({ top_p: v })} name="top_p" />
        </Field>
        <Field label="Max tokens">
          <Text value={form.max_tokens} onInput={(v) => change({ max_tokens: v })} name="max_tokens" />
        </Field>
        <Field label="Seed">
          <Text value={form.seed} onInput={(v) => change({ seed: v })} name="seed" />
        </Field>
        <Field label="Max input bytes">
          <Text value={form.maxInputBytes} onInput={(v) => change({ maxInputBytes: v })} name="max_input_bytes" />
        </Field>
      </div>
      <p class="muted small">
        The model (or model group) that answers, and the call's parameters: temperature 0 to 2, top p above 0
        and at most 1; empty means the model's default. Larger inputs than max input bytes (default 65536) are
        refused unread.
      </p>
      <Field label="Stop sequences" hint="one per line, at most 4; empty: none">
        <textarea
          name="stop"
          rows={2}
          value={form.stop}
          onInput={(e) => change({ stop: (e.target as HTMLTextAreaElement).value })}
        />
      </Field>

      <h3>Messages</h3>
      <p class="muted small">
        System, developer, user and assistant messages, in order (few-shot examples are user and
        assistant pairs). Write <code>{"{{ name }}"}</code> where an input property goes; <code>{"\\{{"}</code> writes
        a literal <code>{"{{"}</code>.
      </p>
      {form.messages.map((message, i) => (
        <div class="card form">
          <div class="filters">
            <Field label={`Message ${i + 1} role`}>
              <Select value={message.role} options={ROLES} onChange={(role) => setMessage(i, { role: role as Role })} />
            </Field>
            <div class="page-actions">
              <button type="button" class="small" aria-label={`Move message ${i + 1} up`} disabled={i === 0} onClick={() => moveMessage(i, -1)}>
                Move up
              </button>
              <button
                type="button"
                class="small"
                aria-label={`Move message ${i + 1} down`}
                disabled={i === form.messages.length - 1}
                onClick={() => moveMessage(i, 1)}
              >
                Move down
              </button>
              <button
                type="button"
                class="small"
                aria-label={`Remove message ${i + 1}`}
                disabled={form.messages.length === 1}
                onClick={() => change({ messages: form.messages.filter((_, j) => j !== i) })}
              >
                Remove
              </button>
            </div>
          </div>
          <Field label={`Message ${i + 1} content`}>
            <textarea value={message.content} onInput={(e) => setMessage(i, { content: (e.target as HTMLTextAreaElement).value })} />
          </Field>
        </div>
      ))}
      <div>
        <button type="button" onClick={() => change({ messages: [...form.messages, { role: "user", content: "" }] })}>
          Add message
        </button>
      </div>
      <p class="small">
        <span class="muted">Variables in the template: </span>
        {variables.length === 0 ? <span class="muted">none</span> : variables.map((v) => <code>{`{{ ${v} }}`} </code>)}
        {strangers.length > 0 && (
          <span class="badge badge-error">not input properties: {strangers.join(", ")}</span>
        )}
      </p>

      <div class="grid">
        <Field label="Input schema (JSON)" hint="a JSON Schema (2020-12) of an object; its properties are the template's variables">
          <textarea
            name="input_schema"
            rows={12}
            value={form.inputSchema}
            onInput={(e) => change({ inputSchema: (e.target as HTMLTextAreaElement).value })}
          />
        </Field>
        <Field label="Output schema (JSON)" hint='empty: the answer is {"text": "…"}; otherwise checked, repaired once, or refused'>
          <textarea
            name="output_schema"
            rows={12}
            value={form.outputSchema}
            onInput={(e) => change({ outputSchema: (e.target as HTMLTextAreaElement).value })}
          />
        </Field>
      </div>

      <h3>Test cases</h3>
      <p class="muted small">
        Saved inputs with checks on their answers. They run before the version is published or
        starts an A/B test; a failing one blocks it unless a team admin overrides it. {CHECK_HINT}
      </p>
      {form.tests.length === 0 && <p class="muted">No test cases yet: add one to guard this version's answers.</p>}
      {form.tests.map((test, i) => (
        <div class="card form">
          <div class="filters">
            <Field label={`Test case ${i + 1} name`}>
              <Text value={test.name} onInput={(name) => setCase(i, { name })} />
            </Field>
            <button
              type="button"
              class="small"
              aria-label={`Remove test case ${i + 1}`}
              onClick={() => change({ tests: form.tests.filter((_, j) => j !== i) })}
            >
              Remove
            </button>
          </div>
          <div class="grid">
            <Field label={`Test case ${i + 1} input (JSON)`}>
              <textarea value={test.input} onInput={(e) => setCase(i, { input: (e.target as HTMLTextAreaElement).value })} />
            </Field>
            <Field label={`Test case ${i + 1} checks (JSON)`}>
              <textarea value={test.checks} onInput={(e) => setCase(i, { checks: (e.target as HTMLTextAreaElement).value })} />
            </Field>
          </div>
        </div>
      ))}
      <div>
        <button type="button" onClick={addCase}>
          Add test case
        </button>
      </div>

      <Field label="Notes" hint="what changed in this version (at most 2000 characters)">
        <Text value={form.notes} onInput={(notes) => change({ notes })} name="notes" />
      </Field>
    </Form>
  );
}

