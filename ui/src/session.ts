// Who is signed in: the admin API's /me (the user and the teams they belong to, with roles).
import { createContext } from "preact";
import { useContext } from "preact/hooks";

export type User = {
  id: number;
  name: string;
  display_name: string;
  email: string | null;
  platform_role: string;
  disabled: boolean;
  has_password: boolean;
};
export type Membership = { team_id: number; team: string; role: string };
export type Me = { user: User; teams: Membership[] };

export type Session = { me: Me; signOut: () => void; refresh: () => Promise<void> };

export const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside a signed-in console");
  return session;
}

export function isAdmin(me: Me): boolean {
  return me.user.platform_role === "admin";
}

const RANK: Record<string, number> = { viewer: 1, developer: 2, team_admin: 3 };

/** Whether the user holds at least `role` in the team (a platform admin holds every role):
 * the same rule as the admin API's, so that the console offers only what will be allowed. */
export function hasRole(me: Me, teamId: number, role: "viewer" | "developer" | "team_admin"): boolean {
  if (isAdmin(me)) return true;
  const found = me.teams.find((t) => t.team_id === teamId);
  return found !== undefined && (RANK[found.role] ?? 0) >= RANK[role];
}

/** Teams where the user holds at least `role` (every team's id is needed for admins: pass them). */
export function teamsWith(me: Me, role: "viewer" | "developer" | "team_admin"): Membership[] {
  return me.teams.filter((t) => (RANK[t.role] ?? 0) >= RANK[role]);
}
