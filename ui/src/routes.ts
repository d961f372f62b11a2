// Which screen answers which console path. Each screen takes the path's named parts as
// props (strings) and `query`, the URL's query parameters.
import type { FunctionComponent } from "preact";
import { match } from "./router";
import { AppDetail, Apps } from "./screens/apps";
import { Audit } from "./screens/audit";
import { Catalog, CatalogEntryScreen } from "./screens/catalog";
import { Limits } from "./screens/limits";
import { NotFound } from "./screens/notfound";
import { Overview } from "./screens/overview";
import { PromptApiDetail, PromptApis } from "./screens/promptapis";
import { Providers } from "./screens/providers";
import { RecordDetail, Records } from "./screens/records";
import { ServiceDetail, Services } from "./screens/services";
import { Settings } from "./screens/settings";
import { Subscriptions } from "./screens/subscriptions";
import { TeamDetail, Teams } from "./screens/teams";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Screen = FunctionComponent<any>;

const ROUTES: [string, Screen][] = [
  ["/", Overview],
  ["/records", Records],
  ["/records/:recordId", RecordDetail],
  ["/audit", Audit],
  ["/catalog", Catalog],
  ["/catalog/:serviceId", CatalogEntryScreen],
  ["/services", Services],
  ["/services/:serviceId", ServiceDetail],
  ["/prompt-apis", PromptApis],
  ["/prompt-apis/:serviceId", PromptApiDetail],
  ["/apps", Apps],
  ["/apps/:appId", AppDetail],
  ["/subscriptions", Subscriptions],
  ["/teams", Teams],
  ["/teams/:teamId", TeamDetail],
  ["/providers", Providers],
  ["/limits", Limits],
  ["/settings", Settings],
];

export function screenFor(path: string): { component: Screen; params: Record<string, string> } {
  for (const [pattern, component] of ROUTES) {
    const params = match(pattern, path);
    if (params) return { component, params };
  }
  return { component: NotFound, params: {} };
}
