import { ApiClient, type ApiMe, type ApiRole } from "../utils/ui";

// One client for the whole app: it holds the CSRF token of the session.
const client = new ApiClient();

const RANK: Record<ApiRole, number> = { viewer: 0, operator: 1, admin: 2 };

/** The API client (CSRF header included on mutating requests). */
export function useApi(): ApiClient {
  return client;
}

/** The signed-in user, role checks, login and logout. */
export function useSession() {
  const me = useState<ApiMe | null>("me", () => null);
  const checked = useState<boolean>("me-checked", () => false);

  /** Asks the Brain who we are (the cookie is httpOnly); null when signed out. */
  async function refresh(): Promise<ApiMe | null> {
    try {
      me.value = await client.get<ApiMe>("/auth/me");
      client.csrfToken = me.value.csrfToken ?? null;
    } catch {
      me.value = null;
      client.csrfToken = null;
    }
    checked.value = true;
    return me.value;
  }

  async function login(username: string, password: string): Promise<void> {
    const result = await client.post<{ csrfToken: string }>("/auth/login", {
      username,
      password,
    });
    client.csrfToken = result.csrfToken;
    await refresh();
  }

  async function logout(): Promise<void> {
    try {
      await client.post("/auth/logout");
    } finally {
      me.value = null;
      client.csrfToken = null;
      useLiveEvents().close();
      await navigateTo("/login");
    }
  }

  /** May the user do what needs `role`? (The API decides; this only hides buttons.) */
  function can(role: ApiRole): boolean {
    const user = me.value?.user;
    return user ? RANK[user.role] >= RANK[role] : false;
  }

  return { me, checked, refresh, login, logout, can };
}
