// What the Providers & models tabs share: the provider's shape, the provider types, the
// check of a form before it is sent, and a row's edit and delete buttons.
import { ApiError } from "../api";

export type Timeouts = Record<string, number | null>;
export type Settings = {
  type: string;
  base_url: string | null;
  api_key_env: string | null;
  headers: Record<string, string>;
  api_version: string | null;
  region: string | null;
  aws_access_key_id_env: string | null;
  aws_secret_access_key_env: string | null;
  aws_session_token_env: string | null;
  timeouts: Timeouts;
  max_idle_connections: number;
  ca_file: string | null;
};
export type Provider = {
  id: number;
  name: string;
  settings: Settings;
  credentials_set: string[];
  created_at: string;
  updated_at: string;
  revision: number;
};

// Each type's base URL when none is given (docs/configuration.md, "Base URLs by type"); null:
// it must be given. Bedrock's comes from its region.
export const PROVIDER_TYPES: [string, string | null][] = [
  ["openai", "https://api.openai.com/v1"],
  ["openai_compatible", null],
  ["azure", null],
  ["anthropic", "https://api.anthropic.com/v1"],
  ["gemini", "https://generativelanguage.googleapis.com/v1beta"],
  ["vertex", null],
  ["cohere", "https://api.cohere.com/v2"],
  ["bedrock", "https://bedrock-runtime.REGION.amazonaws.com"],
  ["groq", "https://api.groq.com/openai/v1"],
  ["together", "https://api.together.xyz/v1"],
  ["fireworks", "https://api.fireworks.ai/inference/v1"],
  ["deepseek", "https://api.deepseek.com/v1"],
  ["openrouter", "https://openrouter.ai/api/v1"],
  ["xai", "https://api.x.ai/v1"],
  ["perplexity", "https://api.perplexity.ai"],
  ["mistral", "https://api.mistral.ai/v1"],
  ["vllm", null],
  ["ollama", "http://127.0.0.1:11434/v1"],
  ["lmstudio", "http://127.0.0.1:1234/v1"],
];
/** Problems found before sending, listed by field as the API lists its own. */
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

  integer(text: string, field: string, required = false): number | null {
    if (text.trim() === "") {
      if (required) this.add(field, "required");
      return null;
    }
    const value = Number(text);
    if (!Number.isInteger(value)) {
      this.add(field, "must be a whole number");
      return null;
    }
    return value;
  }

  raise(): void {
    if (this.list.length > 0) throw new ApiError(0, "client", "Fix these before sending:", this.list);
  }
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A row's edit and delete buttons (named for the row, for screen readers). */
export function RowActions({ what, onEdit, onDelete }: { what: string; onEdit: () => void; onDelete: () => void }) {
  return (
    <div class="page-actions">
      <button type="button" class="small" aria-label={`Edit ${what}`} onClick={onEdit}>
        Edit
      </button>
      <button type="button" class="small danger" aria-label={`Delete ${what}`} onClick={onDelete}>
        Delete
      </button>
    </div>
  );
}

