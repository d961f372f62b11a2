// A service's API documentation, drawn from its OpenAPI document (3.0 or 3.1) without a
// third-party viewer: each operation as a collapsible block, its parameters, request body and
// responses, and a small recursive renderer for JSON Schemas (local $refs resolved).
import type { ComponentChildren, JSX } from "preact";
import { api } from "../api";
import { Empty, Loaded } from "../components/feedback";
import { useLoad } from "../components/load";

export type Json = Record<string, unknown>;

const METHODS = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

function isObject(value: unknown): value is Json {
  return value !== null && typeof value === "object" && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === "string" && value !== "" ? value : undefined;
}

/** What a local reference ("#/components/schemas/Pet", "#/$defs/x") points to in `root`. */
function resolve(root: Json, ref: string): Json | undefined {
  if (!ref.startsWith("#")) return undefined;
  let node: unknown = root;
  for (const raw of ref.slice(1).split("/").filter((part) => part !== "")) {
    const part = decodeURIComponent(raw).replace(/~1/g, "/").replace(/~0/g, "~");
    if (!isObject(node) && !Array.isArray(node)) return undefined;
    node = (node as Record<string, unknown>)[part];
  }
  return isObject(node) ? node : undefined;
}

/** A parameter, request body or response given inline or by reference. */
function deref(root: Json, value: unknown): Json | undefined {
  if (!isObject(value)) return undefined;
  const ref = text(value.$ref);
  return ref ? resolve(root, ref) : value;
}

function refName(ref: string): string {
  return ref.split("/").pop() ?? ref;
}

/** The one real type of pydantic's `anyOf: [X, {type: null}]`, so it reads "X | null". */
function nullableOf(schema: Json): Json | undefined {
  const variants = Array.isArray(schema.anyOf) ? schema.anyOf : Array.isArray(schema.oneOf) ? schema.oneOf : null;
  if (!variants || variants.length !== 2) return undefined;
  const real = variants.filter((v) => !(isObject(v) && v.type === "null"));
  return real.length === 1 && isObject(real[0]) ? real[0] : undefined;
}

function typeText(schema: Json): string {
  const ref = text(schema.$ref);
  if (ref) return refName(ref);
  const nullable = nullableOf(schema);
  if (nullable) return `${typeText(nullable)} | null`;
  let type: string;
  if (Array.isArray(schema.type)) type = schema.type.map(String).join(" | ");
  else if (typeof schema.type === "string") type = schema.type;
  else if (schema.properties) type = "object";
  else if (schema.enum) type = "enum";
  else if (schema.anyOf || schema.oneOf) type = "one of";
  else if (schema.allOf) type = "all of";
  else if ("const" in schema) type = "constant";
  else type = "any";
  if (type === "array" || (Array.isArray(schema.type) && schema.type.includes("array"))) {
    type = type.replace("array", `array of ${isObject(schema.items) ? typeText(schema.items) : "any"}`);
  }
  if (text(schema.format)) type += ` (${String(schema.format)})`;
  if (schema.nullable === true) type += " | null";
  return type;
}

function literal(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

function constraints(schema: Json): string[] {
  const found: string[] = [];
  const say = (key: string, label: string) => {
    if (schema[key] !== undefined && typeof schema[key] !== "object") found.push(`${label} ${literal(schema[key])}`);
  };
  say("minimum", "≥");
  say("exclusiveMinimum", ">");
  say("maximum", "≤");
  say("exclusiveMaximum", "<");
  say("minLength", "min length");
  say("maxLength", "max length");
  say("minItems", "min items");
  say("maxItems", "max items");
  say("pattern", "pattern");
  if (schema.default !== undefined) found.push(`default ${literal(schema.default)}`);
  if (schema.example !== undefined) found.push(`e.g. ${literal(schema.example)}`);
  if (schema.readOnly === true) found.push("read-only");
  if (schema.writeOnly === true) found.push("write-only");
  if (schema.deprecated === true) found.push("deprecated");
  return found;
}

/** Whether a schema has structure worth drawing below its type (not a bare "string"). */
function nested(schema: Json): boolean {
  return Boolean(
    schema.$ref || schema.properties || schema.anyOf || schema.oneOf || schema.allOf || schema.items || isObject(schema.additionalProperties),
  );
}

/**
 * A JSON Schema, readably: its type, description, enum and constraints, then its properties
 * (required ones marked), items, variants and map values, each drawn the same way. `root` is
 * what local $refs point into (the OpenAPI document, or a bare schema for its $defs); `seen`
 * stops a recursive schema from being drawn forever.
 */
export function SchemaView({
  root,
  schema,
  seen = [],
  depth = 0,
}: {
  root: Json;
  schema: unknown;
  seen?: string[];
  depth?: number;
}): JSX.Element {
  if (!isObject(schema)) {
    return <span class="muted small">{schema === true ? "any value" : schema === false ? "nothing" : "any"}</span>;
  }
  const ref = text(schema.$ref);
  if (ref) {
    const name = refName(ref);
    if (seen.includes(ref)) return <span class="muted small">{name} (as above)</span>;
    const target = resolve(root, ref);
    if (!target) return <code>{ref}</code>;
    const { $ref: _drop, ...siblings } = schema;
    return <SchemaView root={root} schema={{ title: name, ...target, ...siblings }} seen={[...seen, ref]} depth={depth} />;
  }
  if (depth > 12) return <span class="muted small">…</span>;
  const nullable = nullableOf(schema);
  if (nullable && !text(nullable.$ref) && !nested(nullable)) {
    return <SchemaView root={root} schema={{ ...nullable, ...without(schema, ["anyOf", "oneOf"]), nullable: true }} seen={seen} depth={depth} />;
  }
  const required = new Set(Array.isArray(schema.required) ? schema.required.map(String) : []);
  const properties = isObject(schema.properties) ? Object.entries(schema.properties) : [];
  const variants = (Array.isArray(schema.oneOf) ? schema.oneOf : Array.isArray(schema.anyOf) ? schema.anyOf : []) as unknown[];
  const parts = Array.isArray(schema.allOf) ? (schema.allOf as unknown[]) : [];
  const notes = constraints(schema);
  const deeper = (value: unknown) => <SchemaView root={root} schema={value} seen={seen} depth={depth + 1} />;
  return (
    <span class="schema">
      <span class="mono small muted">{typeText(schema)}</span>
      {text(schema.title) && depth === 0 && <strong> {String(schema.title)}</strong>}
      {text(schema.description) && <span> — {String(schema.description)}</span>}
      {Array.isArray(schema.enum) && (
        <span class="small">
          {" "}
          one of{" "}
          {schema.enum.map((value, i) => (
            <>
              {i > 0 && ", "}
              <code>{literal(value)}</code>
            </>
          ))}
        </span>
      )}
      {"const" in schema && (
        <span class="small">
          {" "}
          always <code>{literal(schema.const)}</code>
        </span>
      )}
      {notes.length > 0 && <span class="muted small"> ({notes.join(" · ")})</span>}
      {properties.length > 0 && (
        <ul>
          {properties.map(([name, property]) => (
            <li>
              <code>{name}</code>
              {required.has(name) && (
                <>
                  {" "}
                  <span class="badge">required</span>
                </>
              )}{" "}
              {deeper(property)}
            </li>
          ))}
        </ul>
      )}
      {isObject(schema.additionalProperties) && (
        <ul>
          <li>
            <span class="muted">any other key:</span> {deeper(schema.additionalProperties)}
          </li>
        </ul>
      )}
      {isObject(schema.items) && nested(schema.items) && (
        <ul>
          <li>
            <span class="muted">each item:</span> {deeper(schema.items)}
          </li>
        </ul>
      )}
      {variants.length > 0 && !nullable && (
        <ol>
          {variants.map((variant) => (
            <li>{deeper(variant)}</li>
          ))}
        </ol>
      )}
      {nullable && nested(nullable) && (
        <ul>
          <li>
            <span class="muted">or null; otherwise:</span> {deeper(nullable)}
          </li>
        </ul>
      )}
      {parts.length > 0 && (
        <ul>
          {parts.map((part) => (
            <li>{deeper(part)}</li>
          ))}
        </ul>
      )}
    </span>
  );
}

function without(value: Json, keys: string[]): Json {
  return Object.fromEntries(Object.entries(value).filter(([key]) => !keys.includes(key)));
}

function Content({ root, content }: { root: Json; content: unknown }) {
  if (!isObject(content)) return null;
  return (
    <>
      {Object.entries(content).map(([media, body]) => (
        <div>
          <div class="muted small">{media}</div>
          {isObject(body) && body.schema !== undefined ? (
            <SchemaView root={root} schema={body.schema} />
          ) : (
            <span class="muted small">no schema given</span>
          )}
        </div>
      ))}
    </>
  );
}

function Parameters({ root, parameters }: { root: Json; parameters: Json[] }) {
  return (
    <div class="table-wrap">
      <table>
        <thead>
          <tr>
            <th scope="col">Name</th>
            <th scope="col">In</th>
            <th scope="col">Type</th>
            <th scope="col">Description</th>
          </tr>
        </thead>
        <tbody>
          {parameters.map((p) => (
            <tr>
              <td>
                <code>{String(p.name ?? "")}</code> {p.required === true && <span class="badge">required</span>}
              </td>
              <td>{String(p.in ?? "")}</td>
              <td>{isObject(p.schema) ? <SchemaView root={root} schema={p.schema} /> : <span class="muted">–</span>}</td>
              <td>{text(p.description) ?? <span class="muted">–</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Operation({
  root,
  path,
  method,
  operation,
  shared,
}: {
  root: Json;
  path: string;
  method: string;
  operation: Json;
  shared: unknown[];
}) {
  // Path-level parameters apply to each operation, which may override one (same name and in).
  const byKey = new Map<string, Json>();
  for (const raw of [...shared, ...(Array.isArray(operation.parameters) ? operation.parameters : [])]) {
    const parameter = deref(root, raw);
    if (parameter) byKey.set(`${String(parameter.in)}:${String(parameter.name)}`, parameter);
  }
  const parameters = [...byKey.values()];
  const body = deref(root, operation.requestBody);
  const responses = isObject(operation.responses) ? Object.entries(operation.responses).sort(([a], [b]) => a.localeCompare(b)) : [];
  const section = (title: string, children: ComponentChildren) => (
    <>
      <h4 style={{ margin: "0.8rem 0 0.4rem" }}>{title}</h4>
      {children}
    </>
  );
  return (
    <details class="docs-op">
      <summary>
        <span class="method">{method}</span>
        <code>{path}</code>
        {text(operation.summary) && <span class="muted">{String(operation.summary)}</span>}
        {operation.deprecated === true && <span class="badge badge-deprecated">deprecated</span>}
      </summary>
      <div>
        {text(operation.operationId) && (
          <p class="muted small">
            operation <code>{String(operation.operationId)}</code>
          </p>
        )}
        {text(operation.description) && <p style={{ whiteSpace: "pre-line" }}>{String(operation.description)}</p>}
        {parameters.length > 0 && section("Parameters", <Parameters root={root} parameters={parameters} />)}
        {body &&
          section(
            body.required === true ? "Request body (required)" : "Request body",
            <>
              {text(body.description) && <p>{String(body.description)}</p>}
              <Content root={root} content={body.content} />
            </>,
          )}
        {responses.length > 0 &&
          section(
            "Responses",
            responses.map(([status, raw]) => {
              const response = deref(root, raw) ?? {};
              return (
                <div style={{ marginBottom: "0.6rem" }}>
                  <strong>{status}</strong> {text(response.description) ?? ""}
                  <Content root={root} content={response.content} />
                </div>
              );
            }),
          )}
      </div>
    </details>
  );
}

/** The document itself, drawn. */
export function OpenApiView({ doc }: { doc: Json }) {
  const info = isObject(doc.info) ? doc.info : {};
  const paths = isObject(doc.paths) ? Object.entries(doc.paths) : [];
  const operations = paths.flatMap(([path, item]) =>
    isObject(item)
      ? METHODS.filter((m) => isObject(item[m])).map((method) => ({
          path,
          method,
          operation: item[method] as Json,
          shared: Array.isArray(item.parameters) ? item.parameters : [],
        }))
      : [],
  );
  const servers = Array.isArray(doc.servers) ? doc.servers.filter(isObject) : [];
  return (
    <>
      <p>
        <strong>{text(info.title) ?? "API"}</strong>
        {text(info.version) && <span class="muted"> · version {String(info.version)}</span>}
        {text(doc.openapi) && <span class="muted small"> · OpenAPI {String(doc.openapi)}</span>}
      </p>
      {text(info.description) && <p style={{ whiteSpace: "pre-line" }}>{String(info.description)}</p>}
      {servers.length > 0 && (
        <p class="small">
          Servers:{" "}
          {servers.map((s, i) => (
            <>
              {i > 0 && ", "}
              <code>{String(s.url ?? "")}</code>
            </>
          ))}
        </p>
      )}
      {operations.length === 0 ? (
        <Empty title="The document describes no operations." />
      ) : (
        operations.map((o) => <Operation root={doc} path={o.path} method={o.method} operation={o.operation} shared={o.shared} />)
      )}
    </>
  );
}

/** GET /catalog/{id}/openapi.json, drawn. */
export function ApiDocs({ serviceId }: { serviceId: number }) {
  const state = useLoad(() => api<Json>("GET", `/catalog/${serviceId}/openapi.json`), [serviceId]);
  return <Loaded state={state}>{(doc) => <OpenApiView doc={doc} />}</Loaded>;
}
