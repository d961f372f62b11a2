// Subscriptions from both sides: the approval queue of the services your teams own (approve
// or reject with a reason), and the subscriptions of your teams' apps (withdraw, give up).
import { useState } from "preact/hooks";
import { all, api } from "../api";
import { Confirm, Modal } from "../components/dialog";
import { Empty, Loaded } from "../components/feedback";
import { Field, Form, Text } from "../components/form";
import { Status, ago } from "../components/format";
import { Header } from "../components/layout";
import { useLoad } from "../components/load";
import { Table } from "../components/table";
import { linkTo, navigate } from "../router";

type Subscription = {
  id: number;
  app_id: number;
  app: string;
  service_id: number;
  service: string;
  status: string;
  note: string;
  reason: string | null;
  requested_by: string | null;
  decided_by: string | null;
  requested_at: string;
  decided_at: string | null;
  revision: number;
};

type Tab = "queue" | "owned" | "mine";
const TABS: [Tab, string][] = [
  ["queue", "Waiting for approval"],
  ["owned", "To our services"],
  ["mine", "Of our apps"],
];

export function Subscriptions({ query }: { query: URLSearchParams }) {
  const tab = (TABS.find(([t]) => t === query.get("tab"))?.[0] ?? "queue") as Tab;
  const state = useLoad(() => {
    if (tab === "queue") return all<Subscription>("/subscriptions", { side: "owner", status: "pending" });
    if (tab === "owned") return all<Subscription>("/subscriptions", { side: "owner" });
    return all<Subscription>("/subscriptions", { side: "consumer" });
  }, [tab]);
  const [acting, setActing] = useState<{ sub: Subscription; action: "approve" | "reject" | "revoke" | "cancel" } | null>(null);
  const act = (sub: Subscription, action: "approve" | "reject" | "revoke" | "cancel") => setActing({ sub, action });
  return (
    <>
      <Header title="Subscriptions" sub="Apps subscribe to services; a service that needs approval waits for its team's decision." />
      <div class="tabs" role="tablist">
        {TABS.map(([key, label]) => (
          <button type="button" role="tab" aria-selected={tab === key} onClick={() => navigate(`/subscriptions?tab=${key}`, true)}>
            {label}
          </button>
        ))}
      </div>
      <Loaded state={state}>
        {(subs) => (
          <Table
            label={TABS.find(([t]) => t === tab)![1]}
            rows={subs}
            columns={[
              { title: "App", cell: (s) => <a {...linkTo(`/apps/${s.app_id}`)}>{s.app}</a> },
              { title: "Service", cell: (s) => <a {...linkTo(`/catalog/${s.service_id}`)}>{s.service}</a> },
              { title: "Status", cell: (s) => <Status value={s.status} /> },
              { title: "Note", cell: (s) => s.note || <span class="muted">–</span> },
              { title: "Requested", cell: (s) => <span title={s.requested_at}>{ago(s.requested_at)}{s.requested_by ? ` by ${s.requested_by}` : ""}</span> },
              { title: "Decision", cell: (s) => (s.decided_at ? `${s.decided_by ?? ""} ${ago(s.decided_at)}${s.reason ? `: ${s.reason}` : ""}` : <span class="muted">–</span>) },
              {
                title: "",
                cell: (s) => (
                  <span class="page-actions">
                    {tab !== "mine" && s.status === "pending" && (
                      <>
                        <button type="button" class="small primary" onClick={() => act(s, "approve")}>
                          Approve
                        </button>
                        <button type="button" class="small" onClick={() => act(s, "reject")}>
                          Reject
                        </button>
                      </>
                    )}
                    {tab !== "mine" && s.status === "approved" && (
                      <button type="button" class="small" onClick={() => act(s, "revoke")}>
                        Revoke
                      </button>
                    )}
                    {tab === "mine" && (s.status === "pending" || s.status === "approved") && (
                      <button type="button" class="small" onClick={() => act(s, "cancel")}>
                        {s.status === "pending" ? "Withdraw" : "Unsubscribe"}
                      </button>
                    )}
                  </span>
                ),
              },
            ]}
            empty={
              tab === "queue" ? (
                <Empty title="Nothing waits for approval.">Requests to your teams' services that need approval appear here.</Empty>
              ) : tab === "owned" ? (
                <Empty title="No subscriptions to your teams' services yet." />
              ) : (
                <Empty title="Your apps have no subscriptions yet.">
                  Find a service in the <a {...linkTo("/catalog")}>catalog</a> and subscribe an app to it.
                </Empty>
              )
            }
          />
        )}
      </Loaded>
      {acting?.action === "approve" && (
        <Confirm
          title="Approve subscription"
          danger={false}
          message={<p>Let <strong>{acting.sub.app}</strong> call <strong>{acting.sub.service}</strong> from now on?</p>}
          action="Approve"
          onCancel={() => setActing(null)}
          onDone={async () => {
            await api("POST", `/subscriptions/${acting.sub.id}/approve`, { ifMatch: acting.sub.revision });
            setActing(null);
            state.reload();
          }}
        />
      )}
      {(acting?.action === "reject" || acting?.action === "revoke") && (
        <Decide sub={acting.sub} action={acting.action} onClose={() => setActing(null)} onDone={state.reload} />
      )}
      {acting?.action === "cancel" && (
        <Confirm
          title={acting.sub.status === "pending" ? "Withdraw request" : "Unsubscribe"}
          message={<p>{acting.sub.app} will no longer be able to call {acting.sub.service}.</p>}
          action={acting.sub.status === "pending" ? "Withdraw" : "Unsubscribe"}
          onCancel={() => setActing(null)}
          onDone={async () => {
            await api("POST", `/subscriptions/${acting.sub.id}/cancel`, { ifMatch: acting.sub.revision });
            setActing(null);
            state.reload();
          }}
        />
      )}
    </>
  );
}

/** Reject or revoke, with the reason the app's team will read. */
function Decide({ sub, action, onClose, onDone }: { sub: Subscription; action: "reject" | "revoke"; onClose: () => void; onDone: () => void }) {
  const [reason, setReason] = useState("");
  const verb = action === "reject" ? "Reject" : "Revoke";
  return (
    <Modal title={`${verb} subscription`} onClose={onClose}>
      <p>
        {verb} <strong>{sub.app}</strong>'s subscription to <strong>{sub.service}</strong>
        {action === "revoke" ? ": its calls to the service fail from now on." : "."}
      </p>
      <Form
        submit={verb}
        onCancel={onClose}
        onSubmit={async () => {
          await api("POST", `/subscriptions/${sub.id}/${action}`, { body: { reason }, ifMatch: sub.revision });
          onClose();
          onDone();
        }}
      >
        <Field label="Reason" hint="shown to the app's team">
          <Text name="reason" value={reason} onInput={setReason} />
        </Field>
      </Form>
    </Modal>
  );
}
