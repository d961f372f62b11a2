// The admin API, and nothing else: every screen reads and writes through `api`, with the
// signed-in user's token, so the console can do exactly what that user's roles allow.

export const PREFIX = "/admin/v1";
const TOKEN_KEY = "tollway.token";

export type Page<T> = { items: T[]; next_after: number | null };

/** An error answered by the admin API (its `{"error": {...}}` shape), or a network failure. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly fields: { field?: string; message?: string }[] = [],
  ) {
    super(message);
  }
}

let token: string | null = sessionStorage.getItem(TOKEN_KEY);
const signedOut = new Set<() => void>();

export function currentToken(): string | null {
  return token;
}

export function setToken(value: string | null): void {
  token = value;
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Called when the API says the token is no longer good (expired, revoked). */
export function onSignedOut(listener: () => void): () => void {
  signedOut.add(listener);
  return () => signedOut.delete(listener);
}

export type Query = Record<string, string | number | boolean | null | undefined>;

export function withQuery(path: string, query?: Query): string {
  if (!query) return path;
  const params = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== null && value !== undefined && value !== "") params.set(name, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

export async function api<T>(
  method: string,
  path: string,
  options: { body?: unknown; query?: Query; ifMatch?: number } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  if (options.ifMatch !== undefined) headers["If-Match"] = `"${options.ifMatch}"`;
  let response: Response;
  try {
    response = await fetch(withQuery(PREFIX + path, options.query), {
      method,
      headers,
      body: options.body === undefined ? undefined : JSON.stringify(options.body),
    });
  } catch {
    throw new ApiError(0, "network", "The gateway's admin API cannot be reached.");
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!response.ok) {
    const error = (data as { error?: { code?: string; message?: string; fields?: [] } } | null)
      ?.error;
    if (response.status === 401 && token) {
      setToken(null);
      signedOut.forEach((listener) => listener());
    }
    throw new ApiError(
      response.status,
      error?.code ?? "http_" + response.status,
      error?.message ?? `The admin API answered ${response.status}.`,
      error?.fields ?? [],
    );
  }
  return data as T;
}

/** Every item of a paged list (the admin API pages by `after`). */
export async function all<T>(path: string, query: Query = {}): Promise<T[]> {
  const items: T[] = [];
  let after: number | null = null;
  for (let pages = 0; pages < 50; pages++) {
    const page: Page<T> = await api<Page<T>>("GET", path, {
      query: { ...query, limit: 200, after },
    });
    items.push(...page.items);
    if (page.next_after === null) break;
    after = page.next_after;
  }
  return items;
}
