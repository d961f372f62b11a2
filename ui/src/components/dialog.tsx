// Dialogs: a modal frame (focus kept inside, Escape closes), and the confirmation every
// destructive action asks for.
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError } from "../api";
import { ErrorNote } from "./feedback";

export function Modal({
  title,
  onClose,
  children,
}: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const first = box.current?.querySelector<HTMLElement>(
      "input, select, textarea, button:not(.dialog-close)",
    );
    (first ?? box.current)?.focus();
    const onKey = (event: KeyboardEvent) => {
      if (event.key === "Escape") onClose();
      if (event.key === "Tab" && box.current) {
        const focusable = box.current.querySelectorAll<HTMLElement>(
          "a[href], button:not([disabled]), input, select, textarea",
        );
        if (focusable.length === 0) return;
        const firstOne = focusable[0];
        const last = focusable[focusable.length - 1];
        if (event.shiftKey && document.activeElement === firstOne) {
          event.preventDefault();
          last.focus();
        } else if (!event.shiftKey && document.activeElement === last) {
          event.preventDefault();
          firstOne.focus();
        }
      }
    };
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("keydown", onKey);
      before?.focus();
    };
  }, []);
  return (
    <div class="backdrop" onClick={(e) => e.target === e.currentTarget && onClose()}>
      <div class="dialog" role="dialog" aria-modal="true" aria-label={title} ref={box} tabIndex={-1}>
        <header>
          <h2>{title}</h2>
          <button type="button" class="dialog-close" aria-label="Close" onClick={onClose}>
            ×
          </button>
        </header>
        {children}
      </div>
    </div>
  );
}

/** Asks before a destructive action; runs it, shows its error if it fails, closes if not. */
export function Confirm({
  title,
  message,
  action,
  danger = true,
  onDone,
  onCancel,
}: {
  title: string;
  message: ComponentChildren;
  action: string;
  danger?: boolean;
  onDone: () => Promise<void>;
  onCancel: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      await onDone();
    } catch (failure) {
      setError(failure instanceof ApiError ? failure : new ApiError(0, "client", String(failure)));
      setBusy(false);
    }
  };
  return (
    <Modal title={title} onClose={onCancel}>
      <div class="dialog-body">{message}</div>
      <ErrorNote error={error} />
      <footer>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <button type="button" class={danger ? "danger" : "primary"} disabled={busy} onClick={run}>
          {busy ? "Working…" : action}
        </button>
      </footer>
    </Modal>
  );
}
