// The Pricing tab: a model's limits (context window, longest answer) and prices in USD per
// million tokens, added to or overriding the catalog Tollway ships. Costs in the call records
// and budgets come from these.
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Confirm, Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Select, Text } from "../components/form";
import { count } from "../components/format";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { isAdmin, useSession } from "../session";
import { PROVIDER_TYPES, Problems, RowActions } from "./providers-common";

type Entry = {
  provider: string;
  mode: string;
  context_window: number;
  max_output_tokens: number | null;
  input: string;
  output: string | null;
  cached_input: string | null;
  cache_write: string | null;
  reasoning: string | null;
};
type Price = { id: number; model: string; entry: Entry; created_at: string; updated_at: string; revision: number };

const PRICES = [
  ["input", "Input"],
  ["output", "Output"],
  ["cached_input", "Cached input"],
  ["cache_write", "Cache write"],
  ["reasoning", "Reasoning"],
] as const;
type PriceField = (typeof PRICES)[number][0];
const DECIMAL = /^\d+(\.\d+)?$/;

// Prices are decimals the API gives as strings: shown exactly, not rounded to cents.
function perMillion(value: string | null): string {
  return value === null ? "–" : `$${value}`;
}

export function Pricing() {
  const { me } = useSession();
  const admin = isAdmin(me);
  const state = useLoad(() => all<Price>("/pricing"), []);
  const [editing, setEditing] = useState<Price | "new" | null>(null);
  const [deleting, setDeleting] = useState<Price | null>(null);
  return (
    <>
      {admin && (
        <div class="page-actions">
          <button type="button" class="primary" onClick={() => setEditing("new")}>
            Add price
          </button>
        </div>
      )}
      <p class="muted small">
        Prices in USD per million tokens. These entries add to, or override, the catalog Tollway ships; the call
        records' costs and the budgets are counted with them.{!admin && " Platform admins change them."}
      </p>
      <Loaded state={state}>
        {(prices) => (
          <Table
            label="Prices and limits"
            rows={prices}
            columns={[
              { title: "Model", cell: (p) => <code>{p.model}</code> },
              { title: "Provider type", cell: (p) => p.entry.provider },
              { title: "Mode", cell: (p) => p.entry.mode },
              { title: "Context window", cell: (p) => count(p.entry.context_window), numeric: true },
              { title: "Max output", cell: (p) => count(p.entry.max_output_tokens), numeric: true },
              ...PRICES.map(([field, title]) => ({
                title: `${title} /M`,
                cell: (p: Price) => perMillion(p.entry[field]),
                numeric: true,
              })),
              ...(admin
                ? [
                    {
                      title: "Actions",
                      cell: (p: Price) => (
                        <RowActions what={`price of ${p.model}`} onEdit={() => setEditing(p)} onDelete={() => setDeleting(p)} />
                      ),
                    },
                  ]
                : []),
            ]}
            empty={
              <Empty title="No price entries yet: the shipped catalog's prices apply.">
                {admin
                  ? "Add one with “Add price” for a model the catalog does not know (a local one, say), or to change its price."
                  : "A platform admin adds them."}
              </Empty>
            }
          />
        )}
      </Loaded>
      {editing && (
        <PriceForm
          price={editing === "new" ? null : editing}
          onClose={() => setEditing(null)}
          onSaved={() => {
            setEditing(null);
            state.reload();
          }}
        />
      )}
      {deleting && (
        <Confirm
          title={`Delete the price of ${deleting.model}`}
          message={
            <p>
              Delete the entry of <code>{deleting.model}</code>? The shipped catalog's price applies again, if it
              has one; otherwise its calls' cost is unknown.
            </p>
          }
          action="Delete"
          onCancel={() => setDeleting(null)}
          onDone={async () => {
            await api("DELETE", `/pricing/${deleting.id}`, { ifMatch: deleting.revision });
            setDeleting(null);
            state.reload();
          }}
        />
      )}
    </>
  );
}

function PriceForm({ price, onClose, onSaved }: { price: Price | null; onClose: () => void; onSaved: () => void }) {
  const e = price?.entry;
  const [model, setModel] = useState(price?.model ?? "");
  const [provider, setProvider] = useState(e?.provider ?? "");
  const [mode, setMode] = useState(e?.mode ?? "chat");
  const [windowSize, setWindowSize] = useState(e ? String(e.context_window) : "");
  const [maxOutput, setMaxOutput] = useState(e?.max_output_tokens ? String(e.max_output_tokens) : "");
  const [prices, setPrices] = useState<Record<PriceField, string>>({
    input: e?.input ?? "",
    output: e?.output ?? "",
    cached_input: e?.cached_input ?? "",
    cache_write: e?.cache_write ?? "",
    reasoning: e?.reasoning ?? "",
  });

  const save = async () => {
    const problems = new Problems();
    const contextWindow = problems.integer(windowSize, "context_window", true);
    const maxOutputTokens = problems.integer(maxOutput, "max_output_tokens");
    const body: Record<string, unknown> = {
      model: model.trim(),
      provider: provider.trim(),
      mode,
      context_window: contextWindow,
      max_output_tokens: maxOutputTokens,
    };
    for (const [field] of PRICES) {
      const value = prices[field].trim();
      if (value === "") {
        if (field === "input") problems.add(field, "required");
        else body[field] = null;
      } else if (!DECIMAL.test(value)) {
        problems.add(field, "a price in USD per million tokens, such as 0.15");
      } else {
        // Sent as text, so that the price is kept exactly as written.
        body[field] = value;
      }
    }
    problems.raise();
    if (price) await api("PUT", `/pricing/${price.id}`, { body, ifMatch: price.revision });
    else await api("POST", "/pricing", { body });
    onSaved();
  };

  return (
    <Modal title={price ? `Edit the price of ${price.model}` : "Add price"} onClose={onClose}>
      <Form submit={price ? "Save" : "Add price"} onSubmit={save} onCancel={onClose}>
        {price ? (
          <p>
            Model: <code>{price.model}</code> <span class="muted small">(to price another model, add an entry)</span>
          </p>
        ) : (
          <Field label="Model" hint="the model name as the calls name it (the provider's model, or a public name)">
            <Text name="model" value={model} onInput={setModel} required />
          </Field>
        )}
        <Field label="Provider type" hint="the type serving it, e.g. openai or vllm">
          <input
            name="provider"
            list="price-form-types"
            required
            value={provider}
            onInput={(event) => setProvider((event.target as HTMLInputElement).value)}
          />
          <datalist id="price-form-types">
            {PROVIDER_TYPES.map(([type]) => (
              <option value={type} />
            ))}
          </datalist>
        </Field>
        <Field label="Mode">
          <Select
            name="mode"
            value={mode}
            onChange={setMode}
            options={[
              ["chat", "chat"],
              ["completion", "completion"],
              ["embedding", "embedding"],
            ]}
          />
        </Field>
        <div class="filters">
          <Field label="Context window" hint="tokens">
            <Text name="context_window" value={windowSize} onInput={setWindowSize} required />
          </Field>
          <Field label="Max output tokens" hint="empty: unknown">
            <Text name="max_output_tokens" value={maxOutput} onInput={setMaxOutput} />
          </Field>
        </div>
        <div class="filters">
          {PRICES.map(([field, title]) => (
            <Field label={`${title} price`} hint={field === "input" ? "USD per million tokens" : "empty: none"}>
              <Text
                name={field}
                value={prices[field]}
                required={field === "input"}
                onInput={(value) => setPrices((current) => ({ ...current, [field]: value }))}
              />
            </Field>
          ))}
        </div>
      </Form>
    </Modal>
  );
}
