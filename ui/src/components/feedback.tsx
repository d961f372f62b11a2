// Loading, empty and error states: every screen says what is happening, and what to do.
import type { ComponentChildren } from "preact";
import { ApiError } from "../api";

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <div class="loading" role="status" aria-live="polite">
      <span class="spinner" aria-hidden="true" /> {what}…
    </div>
  );
}

export function ErrorNote({ error, retry }: { error: ApiError | Error | null; retry?: () => void }) {
  if (!error) return null;
  const fields = error instanceof ApiError ? error.fields : [];
  return (
    <div class="error-note" role="alert">
      <strong>{error instanceof ApiError && error.status ? `${error.status} · ` : ""}</strong>
      {error.message}
      {fields.length > 0 && (
        <ul>
          {fields.map((f) => (
            <li>
              {f.field ? <code>{f.field}</code> : null} {f.message}
            </li>
          ))}
        </ul>
      )}
      {retry && (
        <button type="button" class="link" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <p class="empty-title">{title}</p>
      {children && <div class="empty-body">{children}</div>}
    </div>
  );
}

/** The usual frame of loaded content: spinner, error with retry, or the content. */
export function Loaded<T>({
  state,
  children,
}: {
  state: { data: T | undefined; error: ApiError | null; loading: boolean; reload: () => void };
  children: (data: T) => ComponentChildren;
}) {
  if (state.error) return <ErrorNote error={state.error} retry={state.reload} />;
  if (state.data === undefined) return <Loading />;
  return <>{children(state.data)}</>;
}
