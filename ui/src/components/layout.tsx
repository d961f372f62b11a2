// The frame around every screen: the navigation (grouped as operators think of the product),
// who is signed in, and the screen's title and actions.
import type { ComponentChildren } from "preact";
import { linkTo, useRoute } from "../router";
import { isAdmin, useSession } from "../session";

type NavItem = { path: string; label: string; admin?: boolean };

export const NAV: { group: string; items: NavItem[] }[] = [
  { group: "Observe", items: [
    { path: "/", label: "Overview" },
    { path: "/records", label: "Call records" },
    { path: "/audit", label: "Audit log" },
  ] },
  { group: "Publish", items: [
    { path: "/catalog", label: "Catalog" },
    { path: "/services", label: "Services" },
    { path: "/prompt-apis", label: "Prompt APIs" },
  ] },
  { group: "Consume", items: [
    { path: "/apps", label: "Apps & keys" },
    { path: "/subscriptions", label: "Subscriptions" },
  ] },
  { group: "Govern", items: [
    { path: "/teams", label: "Teams & members" },
    { path: "/providers", label: "Providers & models" },
    { path: "/limits", label: "Limits & budgets" },
    { path: "/settings", label: "Settings" },
  ] },
];

export function Shell({ children }: { children: ComponentChildren }) {
  const { me, signOut } = useSession();
  const { path } = useRoute();
  const active = (item: string) => (item === "/" ? path === "/" : path === item || path.startsWith(item + "/"));
  return (
    <div class="shell">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <nav class="sidebar" aria-label="Console">
        <a class="brand" {...linkTo("/")}>
          <span class="brand-mark" aria-hidden="true">⟠</span> Tollway
        </a>
        {NAV.map((group) => (
          <div class="nav-group">
            <div class="nav-group-title">{group.group}</div>
            {group.items
              .filter((item) => !item.admin || isAdmin(me))
              .map((item) => (
                <a class={active(item.path) ? "nav-item active" : "nav-item"} aria-current={active(item.path) ? "page" : undefined} {...linkTo(item.path)}>
                  {item.label}
                </a>
              ))}
          </div>
        ))}
        <div class="whoami">
          <div>
            <strong>{me.user.display_name || me.user.name}</strong>
            <div class="muted small">{isAdmin(me) ? "platform admin" : me.teams.map((t) => `${t.team} (${t.role.replace("_", " ")})`).join(", ") || "no team yet"}</div>
          </div>
          <button type="button" class="link" onClick={signOut}>
            Sign out
          </button>
        </div>
      </nav>
      <main id="main" tabIndex={-1}>
        {children}
      </main>
    </div>
  );
}

export function Header({ title, children, sub }: { title: string; children?: ComponentChildren; sub?: ComponentChildren }) {
  return (
    <header class="page-header">
      <div>
        <h1>{title}</h1>
        {sub && <p class="muted">{sub}</p>}
      </div>
      {children && <div class="page-actions">{children}</div>}
    </header>
  );
}
