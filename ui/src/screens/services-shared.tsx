// What the services screens share: the admin API's shapes for services and versions, and the
// few inputs the console's form kit lacks (multi-line text, a labelled checkbox).
import type { ComponentChildren } from "preact";
import { ApiError } from "../api";

export type Kind = "ai" | "rest" | "prompt" | "mcp";
export const KINDS: [Kind, string][] = [
  ["ai", "AI models"],
  ["rest", "REST API"],
  ["prompt", "Prompt API"],
  ["mcp", "MCP server"],
];

export function kindLabel(kind: string): string {
  return KINDS.find(([key]) => key === kind)?.[1] ?? kind;
}

export type Service = {
  id: number;
  team_id: number;
  team: string;
  name: string;
  kind: Kind;
  route_prefix: string;
  visibility: "public" | "private";
  approval: "auto" | "manual";
  description: string;
  published_version: number | null;
  canary_version?: number | null;
  canary_weight?: number | null;
  created_at: string;
  updated_at: string;
  revision: number;
};

export type Json = Record<string, unknown>;

export type VersionStatus = "draft" | "published" | "canary" | "deprecated" | "retired";

export type Version = {
  service_id: number;
  number: number;
  status: VersionStatus;
  weight?: number | null;
  models: string[] | null;
  upstream: Json | null;
  openapi?: Json | null;
  context?: Json | null;
  prompt?: Json | null;
  mcp?: Json | null;
  notes: string;
  published_at: string | null;
  created_at: string;
  updated_at: string;
  revision: number;
};

export type Team = { id: number; name: string };

export function TextArea({
  value,
  onInput,
  name,
  rows = 6,
  placeholder,
  required,
  id,
  "aria-describedby": describedBy,
}: {
  id?: string;
  "aria-describedby"?: string;
  value: string;
  onInput: (value: string) => void;
  name?: string;
  rows?: number;
  placeholder?: string;
  required?: boolean;
}) {
  return (
    <textarea
      id={id}
      aria-describedby={describedBy}
      name={name}
      rows={rows}
      style={{ minHeight: `${Math.max(2, rows) * 1.4}rem` }}
      placeholder={placeholder}
      required={required}
      value={value}
      spellcheck={false}
      onInput={(e) => onInput((e.target as HTMLTextAreaElement).value)}
    />
  );
}

(TextArea as { forwardsId?: boolean }).forwardsId = true;

/** A checkbox with its label beside it (a Field would put the label above). */
export function Check({
  label,
  checked,
  onChange,
  hint,
}: {
  label: string;
  checked: boolean;
  onChange: (checked: boolean) => void;
  hint?: ComponentChildren;
}) {
  return (
    <div class="field">
      <label style={{ display: "flex", gap: "0.5rem", alignItems: "center", fontWeight: 600, fontSize: "0.9rem" }}>
        <input type="checkbox" checked={checked} onChange={(e) => onChange((e.target as HTMLInputElement).checked)} />
        {label}
      </label>
      {hint && <span class="field-hint">{hint}</span>}
    </div>
  );
}

/** One entry a line (or comma-separated), blanks dropped. */
export function listOf(text: string, commas = true): string[] {
  return text
    .split(commas ? /[\n,]/ : /\n/)
    .map((item) => item.trim())
    .filter((item) => item !== "");
}

/** A JSON object typed into a text box: null when blank; an error naming the box when it is
 * not an object, so that the form shows which box to fix before anything is sent. */
export function jsonObject(text: string, what: string): Json | null {
  if (text.trim() === "") return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (failure) {
    throw new ApiError(0, "client", `${what} is not valid JSON: ${(failure as Error).message}`);
  }
  if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
    throw new ApiError(0, "client", `${what} must be a JSON object ({...}).`);
  }
  return parsed as Json;
}

export function pretty(value: unknown): string {
  return value === null || value === undefined ? "" : JSON.stringify(value, null, 2);
}

/** `value` without the keys a form edits field by field: the rest, kept as JSON. */
export function without(value: Json | null | undefined, keys: string[]): Json {
  const rest: Json = {};
  for (const [key, item] of Object.entries(value ?? {})) if (!keys.includes(key)) rest[key] = item;
  return rest;
}

export function serviceLabel(service: { team: string; name: string }): string {
  return `${service.team}/${service.name}`;
}
