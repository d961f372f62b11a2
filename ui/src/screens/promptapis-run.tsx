// Trying a prompt API's version: the playground (sample inputs through the model), its test
// cases, and how apps call the published version on the gateway.
import { useEffect, useState } from "preact/hooks";
import { ApiError, api } from "../api";
import { CopyButton } from "../components/copy";
import { ErrorNote, Empty } from "../components/feedback";
import { Field } from "../components/form";
import { ms, usd } from "../components/format";
import { type Version, isObject, pretty, sampleInput } from "./promptapis-version";

type Run = {
  input: Record<string, unknown>;
  messages: { role: string; content: string }[];
  text: string | null;
  output: unknown;
  repaired: boolean;
  error: string | null;
  deployment: string | null;
  input_tokens: number;
  output_tokens: number;
  cost: string | null;
  latency_ms: number;
};
type PlaygroundOut = { version: number; runs: Run[] };
type TestsOut = {
  version: number;
  passed: boolean;
  results: { name: string; passed: boolean; failures: string[]; run: Run }[];
};

// The admin API runs at most this many inputs in one playground call (prompt_runs.MAX_SAMPLES).
const MAX_SAMPLES = 10;

function asFailure(failure: unknown): ApiError {
  return failure instanceof ApiError ? failure : new ApiError(0, "client", String(failure));
}

function Outcome({ ok, yes, no }: { ok: boolean; yes: string; no: string }) {
  return <span class={ok ? "badge badge-ok" : "badge badge-error"}>{ok ? yes : no}</span>;
}

function RunFacts({ run }: { run: Run }) {
  return (
    <dl class="facts">
      <dt>Deployment</dt>
      <dd>{run.deployment ?? "–"}</dd>
      <dt>Tokens</dt>
      <dd>
        {run.input_tokens} in · {run.output_tokens} out
      </dd>
      <dt>Cost</dt>
      <dd>{run.cost === null ? "price unknown" : usd(run.cost)}</dd>
      <dt>Latency</dt>
      <dd>{ms(run.latency_ms)}</dd>
      {run.repaired && (
        <>
          <dt>Repaired</dt>
          <dd>yes: the first answer did not fit the output schema</dd>
        </>
      )}
    </dl>
  );
}

function RunDetails({ run }: { run: Run }) {
  return (
    <>
      <details>
        <summary>Rendered messages</summary>
        {run.messages.map((m) => (
          <div>
            <span class="badge">{m.role}</span>
            <pre>{m.content}</pre>
          </div>
        ))}
      </details>
      {run.text !== null && (
        <details>
          <summary>The model's text</summary>
          <pre>{run.text}</pre>
        </details>
      )}
    </>
  );
}

/** Runs the version as saved (a draft included) on sample inputs. Mount it with a key of the
 * version's number, so that another version starts from its own input schema. */
export function Playground({ serviceId, version, unsaved }: { serviceId: string; version: Version; unsaved: boolean }) {
  const schema = JSON.stringify(version.prompt?.input_schema ?? {});
  const [inputs, setInputs] = useState(() => pretty(sampleInput(version.prompt?.input_schema)));
  const [touched, setTouched] = useState(false);
  // A saved schema change refreshes the sample, unless the user has written inputs of their own.
  useEffect(() => {
    if (!touched) setInputs(pretty(sampleInput(JSON.parse(schema))));
  }, [schema]);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [result, setResult] = useState<PlaygroundOut | null>(null);

  const run = async (event: Event) => {
    event.preventDefault();
    setError(null);
    let parsed: unknown;
    try {
      parsed = JSON.parse(inputs);
    } catch (failure) {
      setError(new ApiError(0, "client", `The inputs are not valid JSON: ${(failure as Error).message}`));
      return;
    }
    const list = Array.isArray(parsed) ? parsed : [parsed];
    if (list.length === 0 || list.length > MAX_SAMPLES || !list.every(isObject)) {
      setError(new ApiError(0, "client", `Give one input object, or an array of 1 to ${MAX_SAMPLES} input objects.`));
      return;
    }
    setBusy(true);
    try {
      setResult(
        await api<PlaygroundOut>("POST", `/services/${serviceId}/versions/${version.number}/playground`, {
          body: { inputs: list },
        }),
      );
    } catch (failure) {
      setError(asFailure(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="playground-title">
      <h2 id="playground-title">Playground: version {version.number}</h2>
      <p class="muted small">
        Runs the version as saved through its model, the way a call would (rendering, routing,
        output check and repair), without recording it as any app's call.
        {unsaved && <strong> Your unsaved edits are not included: save the draft first.</strong>}
      </p>
      <form class="form" onSubmit={run}>
        <Field label="Inputs (JSON)" hint={`one input object, or an array of up to ${MAX_SAMPLES}`}>
          <textarea name="inputs" rows={8} value={inputs} onInput={(e) => {
              setInputs((e.target as HTMLTextAreaElement).value);
              setTouched(true);
            }}
          />
        </Field>
        <ErrorNote error={error} />
        <div class="form-actions">
          <button type="submit" class="primary" disabled={busy}>
            {busy ? "Running…" : "Run"}
          </button>
        </div>
      </form>
      {result && (
        <div class="form">
          {result.runs.map((r, i) => (
          <div class="card" aria-label={`Run ${i + 1}`}>
            <h3>
              Input {i + 1} <Outcome ok={r.error === null} yes="answered" no="error" />
            </h3>
            <pre>{JSON.stringify(r.input)}</pre>
            {r.error !== null ? (
              <div class="error-note" role="alert">
                {r.error}
              </div>
            ) : (
              <>
                <div class="field-label">Output</div>
                <pre>{typeof r.output === "string" ? r.output : pretty(r.output)}</pre>
              </>
            )}
            <RunFacts run={r} />
            <RunDetails run={r} />
          </div>
          ))}
        </div>
      )}
    </section>
  );
}

// A long answer in a table cell: its start, and the whole of it on demand.
function Shortened({ text }: { text: string }) {
  if (text.length <= 160) return <code>{text}</code>;
  return (
    <details>
      <summary>
        <code>{text.slice(0, 160)}…</code>
      </summary>
      <pre>{text}</pre>
    </details>
  );
}

/** Runs the version's saved test cases and shows each one's result and why it failed. */
export function TestCases({ serviceId, version, unsaved }: { serviceId: string; version: Version; unsaved: boolean }) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<ApiError | null>(null);
  const [result, setResult] = useState<TestsOut | null>(null);
  const count = version.prompt?.tests?.length ?? 0;

  const run = async () => {
    setBusy(true);
    setError(null);
    try {
      setResult(await api<TestsOut>("POST", `/services/${serviceId}/versions/${version.number}/test`));
    } catch (failure) {
      setError(asFailure(failure));
    } finally {
      setBusy(false);
    }
  };

  return (
    <section class="panel" aria-labelledby="tests-title">
      <h2 id="tests-title">Test cases: version {version.number}</h2>
      {count === 0 ? (
        <Empty title="This version has no test cases.">
          {version.status === "draft"
            ? "Add them in the draft's editor (a name, an input and checks), save, then run them here."
            : "Create a draft from this version to add some."}
        </Empty>
      ) : (
        <>
          <p class="muted small">
            {count} saved case{count === 1 ? "" : "s"}, run through the model as saved.
            {unsaved && <strong> Your unsaved edits are not included: save the draft first.</strong>}
          </p>
          <div class="page-actions">
            <button type="button" class="primary" disabled={busy} onClick={run}>
              {busy ? "Running…" : "Run tests"}
            </button>
            {result && (
              <span>
                <Outcome
                  ok={result.passed}
                  yes="all passed"
                  no={`${result.results.filter((r) => !r.passed).length} of ${result.results.length} failed`}
                />
              </span>
            )}
          </div>
        </>
      )}
      <ErrorNote error={error} retry={count > 0 ? run : undefined} />
      {result && result.results.length > 0 && (
        <div class="table-wrap">
          <table aria-label="Test results">
            <thead>
              <tr>
                <th scope="col">Case</th>
                <th scope="col">Result</th>
                <th scope="col">Why</th>
                <th scope="col">Output</th>
                <th scope="col" class="num">
                  Tokens in / out
                </th>
                <th scope="col" class="num">
                  Cost
                </th>
                <th scope="col" class="num">
                  Latency
                </th>
              </tr>
            </thead>
            <tbody>
              {result.results.map((r) => (
                <tr>
                  <td>{r.name}</td>
                  <td>
                    <Outcome ok={r.passed} yes="passed" no="failed" />
                  </td>
                  <td>
                    {r.failures.length === 0 && !r.run.error ? (
                      <span class="muted">every check holds</span>
                    ) : (
                      <>
                        {r.run.error && <div>{r.run.error}</div>}
                        {r.failures.map((f) => (
                          <div>{f}</div>
                        ))}
                      </>
                    )}
                  </td>
                  <td>{r.run.error ? "–" : <Shortened text={typeof r.run.output === "string" ? r.run.output : JSON.stringify(r.run.output)} />}</td>
                  <td class="num">
                    {r.run.input_tokens} / {r.run.output_tokens}
                  </td>
                  <td class="num">{r.run.cost === null ? "–" : usd(r.run.cost)}</td>
                  <td class="num">{ms(r.run.latency_ms)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  );
}

function shellQuoted(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/** Where apps call the API, and a curl example made from the serving version's input schema
 * (`inputSchema` undefined: not known to this user, so the example's body is left empty). */
export function Endpoint({
  name,
  team,
  routePrefix,
  serving,
  canary,
  inputSchema,
  outputSchema,
}: {
  name: string;
  team: string;
  routePrefix: string;
  serving: number | null;
  canary: { number: number; weight: number } | null;
  inputSchema: unknown;
  outputSchema: unknown;
}) {
  if (serving === null) {
    return (
      <section class="panel" aria-labelledby="endpoint-title">
        <h2 id="endpoint-title">Endpoint</h2>
        <p class="muted">
          Nothing serves yet: publish a version, and apps subscribed to this API call{" "}
          <code>POST {routePrefix}</code> on the gateway's address.
        </p>
      </section>
    );
  }
  const example = JSON.stringify(sampleInput(inputSchema));
  const curl = [
    `curl -s "$GATEWAY${routePrefix}" \\`,
    `  -H "Authorization: Bearer $APP_KEY" \\`,
    `  -H "Content-Type: application/json" \\`,
    `  -d ${shellQuoted(example)}`,
  ].join("\n");
  return (
    <section class="panel" aria-labelledby="endpoint-title">
      <h2 id="endpoint-title">Endpoint</h2>
      <p>
        <span class="method">POST</span> <code>{routePrefix}</code> on the gateway's address (not this
        admin port), serving version {serving}
        {canary ? ` (version ${canary.number} takes ${canary.weight}% in an A/B test)` : ""}.
      </p>
      <pre>{curl}</pre>
      <div class="page-actions">
        <CopyButton text={curl} label="Copy curl" />
      </div>
      <p class="muted small">
        Set <code>GATEWAY</code> to the gateway's address and <code>APP_KEY</code> to a key of an app
        whose subscription to this API is approved
        {inputSchema === undefined ? "; the body is the input, a JSON object of the API's input schema" : ""}. The
        answer is{" "}
        {outputSchema === undefined
          ? "the output schema's JSON value, or {\"text\": …} without one"
          : outputSchema
            ? "a JSON value of the output schema"
            : <code>{'{"text": "…"}'}</code>}
        ; a header <code>x-tollway-version: N</code> asks for a serving version. Chat completions clients call
        it as the model <code>prompt:{name}</code> (<code>prompt:{team}/{name}</code> when another team has a prompt API of
        that name), and the gateway serves its OpenAPI document at{" "}
        <code>{routePrefix}/openapi.json</code>.
      </p>
    </section>
  );
}
