// A prompt API's version as the admin API gives it, what the screens work out from it (a
// sample input, the template's variables), the check of a form before it is sent, and the
// read-only view of a version's prompt.
import { ApiError } from "../api";

export type Role = "system" | "developer" | "user" | "assistant";
export type Message = { role: Role; content: string };
export type Parameters = {
  temperature?: number | null;
  top_p?: number | null;
  max_tokens?: number | null;
  stop?: string[] | null;
  seed?: number | null;
};
export type Check = { type: string } & Record<string, unknown>;
export type TestCase = { name: string; input: Record<string, unknown>; checks: Check[] };
export type Json = Record<string, unknown>;
export type PromptSpec = {
  messages: Message[];
  input_schema: Json;
  output_schema?: Json | null;
  model: string;
  parameters?: Parameters;
  max_input_bytes?: number;
  tests?: TestCase[];
};
export type Version = {
  service_id: number;
  number: number;
  status: string;
  weight: number | null;
  prompt: PromptSpec | null;
  notes: string;
  published_at: string | null;
  created_at: string;
  updated_at: string;
  revision: number;
};

// The gateway's own placeholder syntax (llm/prompt_template.py): `{{ name }}`; `\{{` is literal.
const PLACEHOLDER = /(?<!\\)\{\{\s*([A-Za-z_][A-Za-z0-9_]{0,63})\s*\}\}/g;

export function isObject(value: unknown): value is Json {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function pretty(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** A plausible input for a schema's properties: a default, an example, the first enum value,
 * or an empty value of the property's type, for the user to fill in. */
export function sampleInput(schema: unknown): Json {
  const input: Json = {};
  const properties = isObject(schema) && isObject(schema.properties) ? schema.properties : {};
  for (const [name, property] of Object.entries(properties)) input[name] = sampleValue(name, property);
  return input;
}

function sampleValue(name: string, property: unknown): unknown {
  if (!isObject(property)) return "";
  if ("default" in property) return property.default;
  if (Array.isArray(property.examples) && property.examples.length > 0) return property.examples[0];
  if ("const" in property) return property.const;
  if (Array.isArray(property.enum) && property.enum.length > 0) return property.enum[0];
  const declared = Array.isArray(property.type)
    ? property.type.find((t) => t !== "null")
    : property.type;
  switch (declared) {
    case "number":
    case "integer":
      return typeof property.minimum === "number" ? property.minimum : 0;
    case "boolean":
      return false;
    case "array":
      return [];
    case "object":
      return sampleInput(property);
    case "null":
      return null;
    case "string": {
      // The property's name stands in for its text: it shows what to write, and fits most
      // length bounds (padded or cut to fit the declared ones).
      const least = typeof property.minLength === "number" ? property.minLength : 0;
      const most = typeof property.maxLength === "number" ? property.maxLength : Infinity;
      return name.padEnd(least, "x").slice(0, most);
    }
    default:
      return "";
  }
}

/** The variables a template names, in order of first use. */
export function variablesOf(messages: Message[]): string[] {
  const found: string[] = [];
  for (const message of messages) {
    for (const hit of message.content.matchAll(PLACEHOLDER)) {
      if (!found.includes(hit[1])) found.push(hit[1]);
    }
  }
  return found;
}

/** Problems found before sending, shown the way the API's own refusals are (by field). */
export class Problems {
  readonly list: { field: string; message: string }[] = [];

  add(field: string, message: string): void {
    this.list.push({ field, message });
  }

  json(text: string, field: string): unknown {
    try {
      return JSON.parse(text);
    } catch (failure) {
      this.add(field, `not valid JSON: ${(failure as Error).message}`);
      return undefined;
    }
  }

  number(text: string, field: string, integer = false): number | null {
    if (text.trim() === "") return null;
    const value = Number(text);
    if (!Number.isFinite(value) || (integer && !Number.isInteger(value))) {
      this.add(field, integer ? "must be a whole number" : "must be a number");
      return null;
    }
    return value;
  }

  raise(): void {
    if (this.list.length > 0) {
      throw new ApiError(0, "client", "Fix these before saving:", this.list);
    }
  }
}

/** A frozen version's prompt (or a draft, for those who may not change it). */
export function PromptView({ prompt }: { prompt: PromptSpec }) {
  const parameters = Object.entries(prompt.parameters ?? {}).filter(([, v]) => v !== null && v !== undefined);
  const tests = prompt.tests ?? [];
  return (
    <>
      <dl class="facts">
        <dt>Model</dt>
        <dd>
          <code>{prompt.model}</code>
        </dd>
        <dt>Parameters</dt>
        <dd>
          {parameters.length === 0
            ? "the model's defaults"
            : parameters.map(([name, value]) => `${name}: ${JSON.stringify(value)}`).join(", ")}
        </dd>
        <dt>Max input bytes</dt>
        <dd>{prompt.max_input_bytes ?? 65536}</dd>
        <dt>Variables</dt>
        <dd>{variablesOf(prompt.messages).map((v) => `{{ ${v} }}`).join(", ") || "none"}</dd>
      </dl>
      <h3>Messages</h3>
      {prompt.messages.map((message) => (
        <div>
          <span class="badge">{message.role}</span>
          <pre>{message.content}</pre>
        </div>
      ))}
      <div class="grid">
        <div>
          <h3>Input schema</h3>
          <pre>{pretty(prompt.input_schema)}</pre>
        </div>
        <div>
          <h3>Output schema</h3>
          {prompt.output_schema ? (
            <pre>{pretty(prompt.output_schema)}</pre>
          ) : (
            <p class="muted">None: the answer is {'{"text": "…"}'}.</p>
          )}
        </div>
      </div>
      <h3>Test cases</h3>
      {tests.length === 0 ? (
        <p class="muted">This version has no test cases.</p>
      ) : (
        <div class="table-wrap">
          <table aria-label="Test cases">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Input</th>
                <th scope="col">Checks</th>
              </tr>
            </thead>
            <tbody>
              {tests.map((t) => (
                <tr>
                  <td>{t.name}</td>
                  <td>
                    <code>{JSON.stringify(t.input)}</code>
                  </td>
                  <td>
                    <code>{JSON.stringify(t.checks)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  );
}
