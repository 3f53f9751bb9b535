import { afterEach, describe, expect, it, vi } from "vitest";
import { api, ApiError } from "./api";
import { isLoginRequired, logIn, loggedIn, onLoggedIn, subscribeLogin } from "./auth";

const answer = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json" } });

afterEach(() => {
  vi.unstubAllGlobals();
  loggedIn();
});

describe("login state", () => {
  it("a 401 from the API asks for a login, and a login reloads what was loaded", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => answer(401, { error: "this console needs a login", code: 401 })));
    const changes = vi.fn();
    const reloads = vi.fn();
    const unsubscribe = subscribeLogin(changes);
    const off = onLoggedIn(reloads);
    await expect(api.get("/api/namespaces")).rejects.toEqual(new ApiError(401, "this console needs a login"));
    expect(isLoginRequired()).toBe(true);
    await expect(api.get("/api/namespaces")).rejects.toBeInstanceOf(ApiError);
    expect(changes).toHaveBeenCalledTimes(1); // once per ended session, not per failed call
    loggedIn();
    expect(isLoginRequired()).toBe(false);
    expect(reloads).toHaveBeenCalledTimes(1);
    unsubscribe();
    off();
  });

  it("other errors do not", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => answer(403, { error: "cross-origin request refused", code: 403 })));
    await expect(api.get("/api/namespaces")).rejects.toBeInstanceOf(ApiError);
    expect(isLoginRequired()).toBe(false);
  });
});

describe("logIn", () => {
  it("posts the token as JSON and ends the login state when accepted", async () => {
    vi.stubGlobal("fetch", vi.fn(async () => answer(401, { error: "no", code: 401 })));
    await api.get("/api/namespaces").catch(() => undefined);
    const send = vi.fn(async (_url: RequestInfo | URL, _init?: RequestInit) => answer(200, { authenticated: true }));
    expect(await logIn("  abc \n", send)).toBeNull();
    expect(send).toHaveBeenCalledWith("/login", {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ token: "abc" }),
    });
    expect(isLoginRequired()).toBe(false);
  });

  it("gives the server's message for a refused token", async () => {
    const send = vi.fn(async () => answer(401, { error: "that token is not valid", code: 401 }));
    expect(await logIn("wrong", send)).toBe("that token is not valid");
    const down = vi.fn(async () => { throw new TypeError("Failed to fetch"); });
    expect(await logIn("x", down)).toMatch(/cannot reach the Sluice daemon/);
  });
});
