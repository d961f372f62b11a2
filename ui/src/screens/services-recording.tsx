// How a service's calls are recorded (docs/metering.md, "Bodies and redaction" and
// "Retention"): every call leaves a record; bodies only when the team turns them on.
import { useState } from "preact/hooks";
import { api } from "../api";
import { Modal } from "../components/dialog";
import { Loaded } from "../components/feedback";
import { Field, Form } from "../components/form";
import { count } from "../components/format";
import { useLoad } from "../components/load";
import { linkTo } from "../router";
import { Check, listOf, type Service, TextArea } from "./services-shared";

type Recording = {
  service_id: number;
  bodies: boolean;
  max_body_bytes: number;
  retention_days: number | null;
  redact: string[];
  revision: number;
};

export function RecordingPanel({ service, manages }: { service: Service; manages: boolean }) {
  const state = useLoad(() => api<Recording>("GET", `/services/${service.id}/recording`), [service.id]);
  const [editing, setEditing] = useState(false);
  return (
    <section class="panel" aria-labelledby="recording-title">
      <div class="page-header" style={{ marginBottom: "0.5rem" }}>
        <h2 id="recording-title" style={{ margin: 0 }}>
          Recording
        </h2>
        {manages && state.data && (
          <button type="button" onClick={() => setEditing(true)}>
            Edit recording
          </button>
        )}
      </div>
      <Loaded state={state}>
        {(recording) => (
          <>
            <dl class="facts">
              <dt>Bodies</dt>
              <dd>
                {recording.bodies
                  ? `recorded (redacted), up to ${count(recording.max_body_bytes)} bytes each`
                  : "not recorded: records hold the call's facts only"}
              </dd>
              <dt>Kept for</dt>
              <dd>{recording.retention_days === null ? "the gateway's default (TOLLWAY_RECORD_RETENTION_DAYS)" : `${recording.retention_days} days`}</dd>
              <dt>Also redacted</dt>
              <dd>
                {recording.redact.length === 0 ? (
                  <span class="muted">built-in secret patterns only</span>
                ) : (
                  recording.redact.map((pattern) => (
                    <>
                      <code>{pattern}</code>{" "}
                    </>
                  ))
                )}
              </dd>
            </dl>
            <p class="muted small">
              The records themselves are under <a {...linkTo(`/records?service_id=${service.id}`)}>Call records</a>.
            </p>
            {editing && (
              <EditRecording
                service={service}
                recording={recording}
                onClose={() => setEditing(false)}
                onSaved={() => {
                  setEditing(false);
                  state.reload();
                }}
              />
            )}
          </>
        )}
      </Loaded>
    </section>
  );
}

function EditRecording({
  service,
  recording,
  onClose,
  onSaved,
}: {
  service: Service;
  recording: Recording;
  onClose: () => void;
  onSaved: () => void;
}) {
  const [bodies, setBodies] = useState(recording.bodies);
  const [maxBytes, setMaxBytes] = useState(String(recording.max_body_bytes));
  const [retention, setRetention] = useState(recording.retention_days === null ? "" : String(recording.retention_days));
  const [redact, setRedact] = useState(recording.redact.join("\n"));
  const save = async () => {
    await api("PUT", `/services/${service.id}/recording`, {
      body: {
        bodies,
        max_body_bytes: Math.round(Number(maxBytes)),
        retention_days: retention.trim() === "" ? null : Math.round(Number(retention)),
        redact: listOf(redact, false),
      },
      // Revision 0: never set, nothing to be stale against.
      ifMatch: recording.revision > 0 ? recording.revision : undefined,
    });
    onSaved();
  };
  return (
    <Modal title="Edit recording" onClose={onClose}>
      <Form onSubmit={save} submit="Save recording" onCancel={onClose}>
        <Check
          label="Record request and response bodies"
          checked={bodies}
          onChange={setBodies}
          hint="redacted before they leave the worker: credentials, built-in secret patterns and the patterns below"
        />
        <Field label="Max body bytes" hint="kept per body: 256 to 1048576">
          <input
            type="number"
            min={256}
            max={1048576}
            required
            value={maxBytes}
            onInput={(e) => setMaxBytes((e.target as HTMLInputElement).value)}
          />
        </Field>
        <Field label="Retention (days)" hint="1 to 3650; blank: the gateway's default">
          <input
            type="number"
            min={1}
            max={3650}
            value={retention}
            onInput={(e) => setRetention((e.target as HTMLInputElement).value)}
          />
        </Field>
        <Field label="Redact patterns" hint="regular expressions, one a line, e.g. INV-\d{6}">
          <TextArea value={redact} onInput={setRedact} rows={3} />
        </Field>
      </Form>
    </Modal>
  );
}
