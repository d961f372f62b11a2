// A draft version's content, by the service's kind (VersionIn / VersionPatch): the models an
// ai service grants, a rest service's upstream (and OpenAPI document), an mcp service's
// server. Prompt APIs are authored on their own screen (promptapis.tsx). The settings a form
// has no field for stay editable, and are kept, as JSON ("More settings").
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Modal } from "../components/dialog";
import { Loaded } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { useLoad } from "../components/load";
import { Check, type Json, jsonObject, listOf, pretty, type Service, TextArea, type Version, without } from "./services-shared";

type Target = { url: string; weight: string };

const UPSTREAM_KEYS = ["targets", "strategy", "hash", "strip_prefix", "replace_prefix"];
const MCP_KEYS = [
  "transport",
  "url",
  "command",
  "cwd",
  "bearer_token_env",
  "bearer_token",
  "sealed_token",
  "allow",
  "deny",
  "timeout_s",
  "on_tool_change",
  // Set by the gateway when a version is published: never part of a draft's input.
  "tools",
];

const STRATEGIES: [string, string][] = [
  ["weighted", "Weighted"],
  ["round_robin", "Round robin"],
  ["least_connections", "Least connections"],
  ["consistent_hash", "Consistent hash"],
];

function moreOf(value: Json | null | undefined, keys: string[]): string {
  const rest = without(value, keys);
  return Object.keys(rest).length > 0 ? pretty(rest) : "";
}

function strings(value: unknown): string[] {
  return Array.isArray(value) ? value.map(String) : [];
}

/**
 * `version`: the draft being edited. `template`: for a new draft, the version whose content it
 * starts from (the newest), since a new version is most often a small change to the last.
 */
export function DraftForm({
  service,
  version,
  template,
  onClose,
  onSaved,
}: {
  service: Service;
  version?: Version;
  template?: Version;
  onClose: () => void;
  onSaved: () => void;
}) {
  const from = version ?? template;
  const upstream = from?.upstream ?? null;
  const openapi = from?.openapi ?? null;
  const mcp = from?.mcp ?? null;
  const hash = (upstream?.hash ?? null) as Json | null;

  const [targets, setTargets] = useState<Target[]>(() => {
    const given = (upstream?.targets as { url: string; weight?: number }[] | undefined) ?? [];
    return given.length > 0 ? given.map((t) => ({ url: t.url, weight: String(t.weight ?? 1) })) : [{ url: "", weight: "1" }];
  });
  const [strategy, setStrategy] = useState(String(upstream?.strategy ?? "weighted"));
  const [hashOn, setHashOn] = useState(String(hash?.on ?? "client_address"));
  const [hashHeader, setHashHeader] = useState(String(hash?.header ?? ""));
  const [strip, setStrip] = useState(upstream?.strip_prefix !== false);
  const [replace, setReplace] = useState(String(upstream?.replace_prefix ?? ""));
  const [upstreamMore, setUpstreamMore] = useState(moreOf(upstream, UPSTREAM_KEYS));
  const [document, setDocument] = useState(openapi?.document ? pretty(openapi.document) : "");
  const [documentTools, setDocumentTools] = useState(openapi?.mcp !== false);
  const [documentAllow, setDocumentAllow] = useState(strings(openapi?.allow).join(", "));
  const [documentDeny, setDocumentDeny] = useState(strings(openapi?.deny).join(", "));

  const [models, setModels] = useState<string[]>(from?.models ?? []);
  const [context, setContext] = useState(from?.context ? pretty(from.context) : "");

  const [transport, setTransport] = useState(String(mcp?.transport ?? "http"));
  const [url, setUrl] = useState(String(mcp?.url ?? ""));
  const [command, setCommand] = useState(strings(mcp?.command).join("\n"));
  const [cwd, setCwd] = useState(String(mcp?.cwd ?? ""));
  const [tokenEnv, setTokenEnv] = useState(String(mcp?.bearer_token_env ?? ""));
  const [token, setToken] = useState("");
  const [tools, setTools] = useState(strings(mcp?.allow).join(", "));
  const [deniedTools, setDeniedTools] = useState(strings(mcp?.deny).join(", "));
  const [timeout, setTimeoutS] = useState(String(mcp?.timeout_s ?? 30));
  const [onToolChange, setOnToolChange] = useState(String(mcp?.on_tool_change ?? "record"));
  const [mcpMore, setMcpMore] = useState(moreOf(mcp, MCP_KEYS));

  const [notes, setNotes] = useState(version?.notes ?? "");

  const known = useLoad(
    async () => (service.kind === "ai" ? (await all<{ name: string }>("/models")).map((m) => m.name).sort() : []),
    [service.kind],
  );

  // The sealed token can be kept only by the draft that holds it (the API refuses a sealed
  // token it did not seal for that draft): a new draft needs the token again.
  const sealed = version?.mcp?.sealed_token as string | undefined;
  const sealedElsewhere = !version && Boolean(template?.mcp?.sealed_token);

  const content = (): Json => {
    if (service.kind === "ai") {
      return { models, context: jsonObject(context, "Context fitting") };
    }
    if (service.kind === "rest") {
      const rest = jsonObject(upstreamMore, "More upstream settings") ?? {};
      const body: Json = {
        ...rest,
        targets: targets
          .filter((t) => t.url.trim() !== "")
          .map((t) => ({ url: t.url.trim(), weight: Math.round(Number(t.weight || "1")) })),
        strategy,
        strip_prefix: strip,
        replace_prefix: replace.trim() || null,
      };
      if (strategy === "consistent_hash") {
        body.hash = hashOn === "header" ? { on: "header", header: hashHeader.trim() } : { on: hashOn };
      }
      const doc = jsonObject(document, "The OpenAPI document");
      return {
        upstream: body,
        openapi: doc
          ? {
              document: doc,
              mcp: documentTools,
              allow: listOf(documentAllow).length > 0 ? listOf(documentAllow) : null,
              deny: listOf(documentDeny),
            }
          : null,
      };
    }
    const rest = jsonObject(mcpMore, "More MCP settings") ?? {};
    const server: Json = {
      ...rest,
      transport,
      timeout_s: Number(timeout),
      on_tool_change: onToolChange,
      allow: listOf(tools).length > 0 ? listOf(tools) : null,
      deny: listOf(deniedTools),
      bearer_token_env: tokenEnv.trim() || null,
    };
    if (transport === "stdio") {
      server.command = listOf(command, false);
      if (cwd.trim()) server.cwd = cwd.trim();
    } else {
      server.url = url.trim();
    }
    if (token) server.bearer_token = token;
    else if (sealed) server.sealed_token = sealed;
    return { mcp: server };
  };

  const save = async () => {
    const body = { ...content(), notes };
    if (version) {
      await api("PATCH", `/services/${service.id}/versions/${version.number}`, { body, ifMatch: version.revision });
    } else {
      await api("POST", `/services/${service.id}/versions`, { body });
    }
    onSaved();
  };

  const setTarget = (index: number, change: Partial<Target>) =>
    setTargets(targets.map((t, i) => (i === index ? { ...t, ...change } : t)));

  return (
    <Modal title={version ? `Edit draft version ${version.number}` : "New draft version"} onClose={onClose}>
      {!version && template && (
        <p class="muted small">It starts from the content of version {template.number}: change what differs.</p>
      )}
      <Form onSubmit={save} submit={version ? "Save draft" : "Create draft"} onCancel={onClose}>
        {service.kind === "ai" && (
          <>
            <fieldset class="field" style={{ border: 0, padding: 0, margin: 0 }}>
              <legend class="field-label">Models</legend>
              <Loaded state={known}>
                {(names) => {
                  const choices = [...new Set([...names, ...models])];
                  return choices.length === 0 ? (
                    <p class="muted">No models yet: a platform admin adds them under Providers &amp; models.</p>
                  ) : (
                    <div style={{ display: "flex", flexWrap: "wrap", gap: "0.4rem 1rem" }}>
                      {choices.map((name) => (
                        <label style={{ display: "inline-flex", gap: "0.35rem", alignItems: "center" }}>
                          <input
                            type="checkbox"
                            checked={models.includes(name)}
                            onChange={(e) =>
                              setModels(
                                (e.target as HTMLInputElement).checked
                                  ? [...models, name]
                                  : models.filter((m) => m !== name),
                              )
                            }
                          />
                          {name}
                        </label>
                      ))}
                    </div>
                  );
                }}
              </Loaded>
              <span class="field-hint">the public model names this service grants its subscribers</span>
            </fieldset>
            <Field
              label="Context fitting (JSON, optional)"
              hint={'by model, e.g. {"gpt-4o": {"max_input_tokens": 32000, "select": "recent"}} (docs/context.md)'}
            >
              <TextArea value={context} onInput={setContext} rows={3} />
            </Field>
          </>
        )}
        {service.kind === "rest" && (
          <>
            <fieldset class="field" style={{ border: 0, padding: 0, margin: 0 }}>
              <legend class="field-label">Upstream targets</legend>
              {targets.map((target, i) => (
                <div style={{ display: "flex", gap: "0.5rem", alignItems: "flex-end" }}>
                  <div style={{ flex: 1 }}>
                    <Field label={`Target ${i + 1} URL`}>
                      <Text
                        value={target.url}
                        onInput={(value) => setTarget(i, { url: value })}
                        placeholder="http://10.0.0.11:8080"
                        required={i === 0}
                      />
                    </Field>
                  </div>
                  <div style={{ width: "7rem" }}>
                    <Field label={`Target ${i + 1} weight`}>
                      <input
                        type="number"
                        min={1}
                        max={1000}
                        value={target.weight}
                        onInput={(e) => setTarget(i, { weight: (e.target as HTMLInputElement).value })}
                      />
                    </Field>
                  </div>
                  {targets.length > 1 && (
                    <button type="button" onClick={() => setTargets(targets.filter((_, j) => j !== i))}>
                      Remove target {i + 1}
                    </button>
                  )}
                </div>
              ))}
              <div>
                <button type="button" class="small" onClick={() => setTargets([...targets, { url: "", weight: "1" }])}>
                  Add target
                </button>
              </div>
            </fieldset>
            <Field label="Strategy">
              <Select value={strategy} onChange={setStrategy} options={STRATEGIES} />
            </Field>
            {strategy === "consistent_hash" && (
              <>
                <Field label="Hash on">
                  <Select
                    value={hashOn}
                    onChange={setHashOn}
                    options={[
                      ["client_address", "The client's address"],
                      ["header", "A header"],
                      ["path", "The path"],
                    ]}
                  />
                </Field>
                {hashOn === "header" && (
                  <Field label="Hash header">
                    <Text value={hashHeader} onInput={setHashHeader} required />
                  </Field>
                )}
              </>
            )}
            <Check
              label="Strip the route prefix"
              checked={strip}
              onChange={setStrip}
              hint={`${service.route_prefix}/x reaches the target as /x`}
            />
            <Field label="Replace prefix (optional)" hint="send this path prefix upstream instead, e.g. /api/v2">
              <Text value={replace} onInput={setReplace} />
            </Field>
            <Field
              label="More upstream settings (JSON, optional)"
              hint="headers, request_headers, response_headers, timeouts, tls, health_checks, retries, max_request_bytes, websockets (docs/routing.md)"
            >
              <TextArea value={upstreamMore} onInput={setUpstreamMore} rows={4} />
            </Field>
            <Field
              label="OpenAPI document (JSON, optional)"
              hint="OpenAPI 3.0 or 3.1, paths under the route prefix, local $refs only: the catalog shows it and its operations can be MCP tools"
            >
              <TextArea value={document} onInput={setDocument} rows={8} />
            </Field>
            {document.trim() !== "" && (
              <>
                <Check label="Offer its operations as MCP tools" checked={documentTools} onChange={setDocumentTools} />
                <Field label="Operations offered as tools (optional)" hint="operationIds or patterns, comma-separated; blank: all">
                  <Text value={documentAllow} onInput={setDocumentAllow} />
                </Field>
                <Field label="Operations never offered" hint="comma-separated">
                  <Text value={documentDeny} onInput={setDocumentDeny} />
                </Field>
              </>
            )}
          </>
        )}
        {service.kind === "mcp" && (
          <>
            <Field label="Transport">
              <Select
                value={transport}
                onChange={setTransport}
                options={[
                  ["http", "Streamable HTTP"],
                  ["sse", "HTTP + SSE (older)"],
                  ["stdio", "stdio: a program the gateway runs"],
                ]}
              />
            </Field>
            {transport === "stdio" ? (
              <>
                <Field label="Command" hint="the program, then each argument, one a line">
                  <TextArea value={command} onInput={setCommand} rows={3} required />
                </Field>
                <Field label="Working directory" hint="an absolute path that exists">
                  <Text value={cwd} onInput={setCwd} />
                </Field>
              </>
            ) : (
              <Field label="Server URL" hint={transport === "sse" ? "its event stream, e.g. http://host/sse" : "its MCP endpoint, e.g. http://host/mcp"}>
                <Text value={url} onInput={setUrl} required placeholder="http://docs-mcp.internal:8000/mcp" />
              </Field>
            )}
            <Field
              label="Bearer token"
              hint={
                sealed
                  ? "a token is kept sealed for this draft: leave blank to keep it"
                  : sealedElsewhere
                    ? `version ${template?.number}'s token is sealed to it: give the token again for this draft`
                    : "optional; kept sealed with the store's key and never shown again"
              }
            >
              <Text type="password" value={token} onInput={setToken} autoComplete="off" />
            </Field>
            <Field label="Token environment variable (optional)" hint="or: the gateway's own variable holding it">
              <Text value={tokenEnv} onInput={setTokenEnv} />
            </Field>
            <Field label="Tools offered (optional)" hint="names or patterns, comma-separated; blank: every tool">
              <Text value={tools} onInput={setTools} />
            </Field>
            <Field label="Tools never offered" hint="comma-separated">
              <Text value={deniedTools} onInput={setDeniedTools} />
            </Field>
            <Field label="Timeout (seconds)">
              <input
                type="number"
                min={0.1}
                max={600}
                step="any"
                value={timeout}
                onInput={(e) => setTimeoutS((e.target as HTMLInputElement).value)}
              />
            </Field>
            <Field label="When a tool changes after approval">
              <Select
                value={onToolChange}
                onChange={setOnToolChange}
                options={[
                  ["record", "Record it in the audit log"],
                  ["hide", "Record it and hide the tool until re-published"],
                ]}
              />
            </Field>
            <Field
              label="More MCP settings (JSON, optional)"
              hint="headers; for stdio: env, pass_env, max_memory_mb, sandbox, read_paths, write_paths (docs/mcp.md)"
            >
              <TextArea value={mcpMore} onInput={setMcpMore} rows={4} />
            </Field>
          </>
        )}
        <Field label="Notes" hint="what changes in this version">
          <TextArea value={notes} onInput={setNotes} rows={2} />
        </Field>
      </Form>
    </Modal>
  );
}
