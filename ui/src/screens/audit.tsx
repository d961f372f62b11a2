// The audit log: who changed what, when, and how (each entry's fields before and after; the
// server masks secrets before they are ever logged). Filters live in the URL, like records'.
import { useEffect, useState } from "preact/hooks";
import { all, api } from "../api";
import { Empty, Loaded } from "../components/feedback";
import { Field, Text } from "../components/form";
import { when } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { linkTo, navigate } from "../router";

type Entry = {
  id: number;
  at: string;
  actor: string;
  actor_id: number | null;
  action: string;
  entity_type: string;
  entity_id: number | null;
  entity: string;
  team_id: number | null;
  related_team_id: number | null;
  config_version: number;
  changes: Record<string, unknown>;
};
type AuditPage = { items: Entry[]; next_before: number | null };
type Team = { id: number; name: string };

// What the admin API logs today; the fields stay free text for kinds added later.
const ENTITY_TYPES = ["app", "key", "model", "price", "provider", "service", "service_recording", "subscription", "team", "user", "user_token", "webhook"];
const ACTIONS = ["create", "update", "delete", "revoke", "rotate", "approve", "reject", "cancel", "add_member", "set_role", "remove_member", "override_failed_tests"];

const FILTERS = ["entity_type", "entity_id", "actor", "action"] as const;
type Filters = Record<(typeof FILTERS)[number], string>;

function filtersOf(query: URLSearchParams): Filters {
  return {
    entity_type: query.get("entity_type") ?? "",
    entity_id: query.get("entity_id") ?? "",
    actor: query.get("actor") ?? "",
    action: query.get("action") ?? "",
  };
}

function pathOf(params: URLSearchParams): string {
  const text = params.toString();
  return text ? `/audit?${text}` : "/audit";
}

/** Where an entry's entity lives in the console, when it has a page of its own. */
function entityPath(entry: Entry): string | null {
  const id = entry.entity_id;
  if (entry.action === "delete") return null;
  switch (entry.entity_type) {
    case "team":
      return id ? `/teams/${id}` : null;
    case "app":
      return id ? `/apps/${id}` : null;
    case "service":
    case "service_recording":
      return id ? `/services/${id}` : null;
    case "subscription":
      return "/subscriptions";
    case "provider":
    case "model":
    case "price":
      return "/providers";
    default:
      return null;
  }
}

export function Audit({ query }: { query: URLSearchParams }) {
  const search = query.toString();
  const before = query.get("before");
  const [draft, setDraft] = useState<Filters>(filtersOf(query));
  const [open, setOpen] = useState<Set<number>>(new Set());
  useEffect(() => {
    setDraft(filtersOf(query));
    setOpen(new Set());
  }, [search]);

  const page = useLoad(() => {
    const f = filtersOf(query);
    return api<AuditPage>("GET", "/audit", { query: { ...f, before, limit: 50 } });
  }, [search]);
  // Team names only label the rows: without them the ids still say which team.
  const teams = useLoad(() => all<Team>("/teams").catch(() => [] as Team[]), []);
  const teamName = (id: number) => teams.data?.find((t) => t.id === id)?.name ?? `team #${id}`;

  const apply = (event: Event) => {
    event.preventDefault();
    const params = new URLSearchParams();
    for (const name of FILTERS) if (draft[name].trim()) params.set(name, draft[name].trim());
    navigate(pathOf(params), true);
  };
  const pageTo = (cursor: number | null) => {
    const params = new URLSearchParams(search);
    if (cursor) params.set("before", String(cursor));
    else params.delete("before");
    navigate(pathOf(params), true);
  };
  const toggle = (id: number) =>
    setOpen((was) => {
      const now = new Set(was);
      if (now.has(id)) now.delete(id);
      else now.add(id);
      return now;
    });
  const filtered = FILTERS.some((name) => query.get(name));

  return (
    <>
      <Header title="Audit log" sub="Every change to teams, services, apps, keys, providers and users, newest first.">
        {page.loading && page.data && (
          <span class="muted small" role="status">
            Updating…
          </span>
        )}
        <button type="button" onClick={page.reload}>
          Refresh
        </button>
      </Header>
      <form class="filters" onSubmit={apply} aria-label="Filter the audit log">
        <Field label="Entity type">
          <input
            name="entity_type"
            list="audit-entity-types"
            value={draft.entity_type}
            placeholder="any"
            onInput={(e) => setDraft({ ...draft, entity_type: (e.target as HTMLInputElement).value })}
          />
          <datalist id="audit-entity-types">
            {ENTITY_TYPES.map((t) => (
              <option value={t} />
            ))}
          </datalist>
        </Field>
        <Field label="Entity id">
          <Text name="entity_id" type="number" value={draft.entity_id} placeholder="any" onInput={(v) => setDraft({ ...draft, entity_id: v })} />
        </Field>
        <Field label="Actor">
          <Text name="actor" value={draft.actor} placeholder="user name" onInput={(v) => setDraft({ ...draft, actor: v })} />
        </Field>
        <Field label="Action">
          <input
            name="action"
            list="audit-actions"
            value={draft.action}
            placeholder="any"
            onInput={(e) => setDraft({ ...draft, action: (e.target as HTMLInputElement).value })}
          />
          <datalist id="audit-actions">
            {ACTIONS.map((a) => (
              <option value={a} />
            ))}
          </datalist>
        </Field>
        <button type="submit" class="primary">
          Apply
        </button>
        {filtered && (
          <button type="button" onClick={() => navigate("/audit", true)}>
            Clear filters
          </button>
        )}
      </form>
      <Loaded state={page}>
        {(found) =>
          found.items.length === 0 ? (
            before ? (
              <Empty title="No older entries.">
                <button type="button" onClick={() => pageTo(null)}>
                  Newest
                </button>
              </Empty>
            ) : filtered ? (
              <Empty title="No entries match these filters.">
                Names are matched exactly (an actor's user name, an action such as <code>update</code>).{" "}
                <button type="button" class="link" onClick={() => navigate("/audit", true)}>
                  Clear the filters
                </button>
              </Empty>
            ) : (
              <Empty title="Nothing has been changed yet.">
                Every change made through the console or the admin API is logged here: create a team, a service or an
                app to see it.
              </Empty>
            )
          ) : (
            <>
              <div class="table-wrap">
                <table aria-label="Audit log">
                  <thead>
                    <tr>
                      <th scope="col">Time</th>
                      <th scope="col">Actor</th>
                      <th scope="col">Action</th>
                      <th scope="col">Entity</th>
                      <th scope="col">Team</th>
                      <th scope="col" class="num">
                        Config version
                      </th>
                      <th scope="col">Changes</th>
                    </tr>
                  </thead>
                  <tbody>
                    {found.items.map((entry) => (
                      <Row entry={entry} open={open.has(entry.id)} onToggle={() => toggle(entry.id)} teamName={teamName} />
                    ))}
                  </tbody>
                </table>
              </div>
              <div class="form-actions" style={{ marginTop: "0.75rem", justifyContent: "space-between" }}>
                <span class="muted small">
                  {found.items.length} entr{found.items.length === 1 ? "y" : "ies"}
                  {before ? " (older page)" : ""}
                </span>
                <span style={{ display: "flex", gap: "0.5rem" }}>
                  {before && (
                    <button type="button" onClick={() => pageTo(null)}>
                      Newest
                    </button>
                  )}
                  <button type="button" disabled={found.next_before === null} onClick={() => pageTo(found.next_before)}>
                    Older
                  </button>
                </span>
              </div>
            </>
          )
        }
      </Loaded>
    </>
  );
}

function Row({
  entry,
  open,
  onToggle,
  teamName,
}: {
  entry: Entry;
  open: boolean;
  onToggle: () => void;
  teamName: (id: number) => string;
}) {
  const fields = Object.keys(entry.changes);
  const path = entityPath(entry);
  const label = entry.entity || (entry.entity_id !== null ? `#${entry.entity_id}` : "–");
  return (
    <>
      <tr>
        <td style={{ whiteSpace: "nowrap" }}>{when(entry.at)}</td>
        <td>{entry.actor}</td>
        <td>
          <span class="badge">{entry.action.replace(/_/g, " ")}</span>
        </td>
        <td>
          <span class="muted">{entry.entity_type.replace(/_/g, " ")}</span> {path ? <a {...linkTo(path)}>{label}</a> : <strong>{label}</strong>}
          {entry.entity_id !== null && <span class="muted small"> #{entry.entity_id}</span>}
        </td>
        <td>
          {entry.team_id !== null ? <a {...linkTo(`/teams/${entry.team_id}`)}>{teamName(entry.team_id)}</a> : <span class="muted">platform</span>}
          {entry.related_team_id !== null && entry.related_team_id !== entry.team_id && (
            <div class="small">
              <span class="muted">and </span>
              <a {...linkTo(`/teams/${entry.related_team_id}`)}>{teamName(entry.related_team_id)}</a>
            </div>
          )}
        </td>
        <td class="num">{entry.config_version}</td>
        <td>
          {fields.length === 0 ? (
            <span class="muted">–</span>
          ) : (
            <button type="button" class="small" style={{ whiteSpace: "nowrap" }} aria-expanded={open} aria-controls={`audit-changes-${entry.id}`} onClick={onToggle}>
              {open ? "Hide changes" : `Show changes (${fields.length})`}
            </button>
          )}
        </td>
      </tr>
      {open && (
        <tr id={`audit-changes-${entry.id}`}>
          <td colSpan={7} style={{ background: "var(--bg)" }}>
            <Changes entry={entry} />
          </td>
        </tr>
      )}
    </>
  );
}

type Delta = { from: unknown; to: unknown };

function isDelta(value: unknown): value is Delta {
  if (value === null || typeof value !== "object" || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 2 && keys.includes("from") && keys.includes("to");
}

function Changes({ entry }: { entry: Entry }) {
  const names = Object.keys(entry.changes);
  // A create logs what was set, a delete what was there: plain values; an update logs each
  // changed field as {from, to}.
  const heading =
    entry.action === "create" ? "Set when created" : entry.action === "delete" ? "As it was when deleted" : "What changed";
  return (
    <div>
      <div class="small muted" style={{ marginBottom: "0.4rem" }}>
        {heading}
      </div>
      <dl class="facts">
        {names.map((name) => {
          const value = entry.changes[name];
          return (
            <>
              <dt>
                <code>{name}</code>
              </dt>
              <dd>
                {isDelta(value) ? (
                  <span style={{ display: "inline-flex", gap: "0.5rem", alignItems: "baseline", flexWrap: "wrap" }}>
                    <Value value={value.from} />
                    <span aria-label="changed to">→</span>
                    <Value value={value.to} />
                  </span>
                ) : (
                  <Value value={value} />
                )}
              </dd>
            </>
          );
        })}
      </dl>
    </div>
  );
}

function Value({ value }: { value: unknown }) {
  if (value === null || value === undefined) return <span class="muted">none</span>;
  if (value === "***") return <span class="muted" title="a secret: never logged">(secret, hidden)</span>;
  if (typeof value === "string") return <code>{value === "" ? '""' : value}</code>;
  if (typeof value === "number" || typeof value === "boolean") return <code>{String(value)}</code>;
  const json = JSON.stringify(value, null, 2);
  if (json.length <= 80) return <code>{JSON.stringify(value)}</code>;
  return <pre style={{ margin: 0 }}>{json}</pre>;
}
