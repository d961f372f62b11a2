// Form fields with their labels, hints and the admin API's per-field errors.
import { type ComponentChildren, type VNode, cloneElement, isValidElement } from "preact";
import { useId, useState } from "preact/hooks";
import { ApiError } from "../api";
import { ErrorNote } from "./feedback";

type Forwarding = { forwardsId?: boolean };

/** Whether `child` is a control that takes the label's id: a native one, or a component
 * marked `forwardsId` that passes `id` and `aria-describedby` on to its control. */
function labelable(child: ComponentChildren): child is VNode<Record<string, unknown>> {
  if (!isValidElement(child)) return false;
  const type = child.type;
  if (typeof type === "string") return type === "input" || type === "select" || type === "textarea";
  return Boolean((type as Forwarding).forwardsId);
}

/** A control with its label and hint. The label names the control alone (`for`), and the
 * hint describes it (`aria-describedby`): a hint's words or a select's chosen option are no
 * part of the control's name, so a screen reader (and a test) finds it by its label. */
export function Field({
  label,
  hint,
  children,
}: {
  label: string;
  hint?: ComponentChildren;
  children: ComponentChildren;
}) {
  const id = useId();
  const hintId = hint ? `${id}-hint` : undefined;
  if (!labelable(children)) {
    return (
      <label class="field">
        <span class="field-label">{label}</span>
        {children}
        {hint && <span class="field-hint">{hint}</span>}
      </label>
    );
  }
  const controlId = (children.props.id as string | undefined) ?? id;
  return (
    <div class="field">
      <label class="field-label" for={controlId}>
        {label}
      </label>
      {cloneElement(children, { id: controlId, "aria-describedby": hintId })}
      {hint && (
        <span class="field-hint" id={hintId}>
          {hint}
        </span>
      )}
    </div>
  );
}

/** A form that submits once at a time and shows what the API refused. */
export function Form({
  onSubmit,
  submit,
  children,
  onCancel,
}: {
  onSubmit: () => Promise<void>;
  submit: string;
  children: ComponentChildren;
  onCancel?: () => void;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const run = async (event: Event) => {
    event.preventDefault();
    if (busy) return;
    setBusy(true);
    setError(null);
    try {
      await onSubmit();
    } catch (failure) {
      setError(failure instanceof ApiError ? failure : new ApiError(0, "client", String(failure)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <form class="form" onSubmit={run}>
      {children}
      <ErrorNote error={error} />
      <div class="form-actions">
        {onCancel && (
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "Working…" : submit}
        </button>
      </div>
    </form>
  );
}

/** Text input bound to a value. */
export function Text(props: {
  id?: string;
  "aria-describedby"?: string;
  value: string;
  onInput: (value: string) => void;
  name?: string;
  placeholder?: string;
  type?: string;
  required?: boolean;
  pattern?: string;
  autoComplete?: string;
}) {
  const { onInput, ...rest } = props;
  return <input {...rest} onInput={(e) => onInput((e.target as HTMLInputElement).value)} />;
}
(Text as Forwarding).forwardsId = true;

export function Select({
  value,
  onChange,
  options,
  name,
  id,
  "aria-describedby": describedBy,
}: {
  value: string;
  onChange: (value: string) => void;
  options: [string, string][];
  name?: string;
  id?: string;
  "aria-describedby"?: string;
}) {
  return (
    <select
      id={id}
      aria-describedby={describedBy}
      name={name}
      value={value}
      onChange={(e) => onChange((e.target as HTMLSelectElement).value)}
    >
      {options.map(([key, label]) => (
        <option value={key}>{label}</option>
      ))}
    </select>
  );
}
(Select as Forwarding).forwardsId = true;
