// The console's login state. The daemon answers 401 to any API call without a valid session (it expired, or
// its key was replaced); the app then shows the login dialog over the page, so nothing on it (an unsaved YAML
// edit) is lost, and every loaded list reloads once the user is logged in again. See docs/console-api.md.

type Listener = () => void;

let required = false;
const changed = new Set<Listener>();
const relogged = new Set<Listener>();

export function isLoginRequired(): boolean {
  return required;
}

/** Called by the API client on a 401. */
export function loginRequired(): void {
  if (required) return;
  required = true;
  changed.forEach((l) => l());
}

/** Called once the daemon has accepted a token: the dialog closes and loaded data reloads. */
export function loggedIn(): void {
  if (!required) return;
  required = false;
  changed.forEach((l) => l());
  relogged.forEach((l) => l());
}

/** Subscribe to `isLoginRequired()` changes (useSyncExternalStore's shape); returns the unsubscribe. */
export function subscribeLogin(l: Listener): () => void {
  changed.add(l);
  return () => changed.delete(l);
}

/** Run `l` after each new login (e.g. to reload what a 401 left empty). */
export function onLoggedIn(l: Listener): () => void {
  relogged.add(l);
  return () => relogged.delete(l);
}

/** Trade a token (the one-time login token, the address `sluice console` printed, or the kubeconfig's token)
 *  for a session cookie. Resolves to null when accepted, else to the server's message. */
export async function logIn(token: string, send: typeof fetch = fetch): Promise<string | null> {
  let resp: Response;
  try {
    resp = await send("/login", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: token.trim() }),
    });
  } catch (e) {
    return `cannot reach the Sluice daemon: ${String(e)}`;
  }
  if (resp.ok) {
    loggedIn();
    return null;
  }
  try {
    const body = (await resp.json()) as { error?: string };
    return body.error ?? `${resp.status} ${resp.statusText}`;
  } catch {
    return `${resp.status} ${resp.statusText}`;
  }
}
