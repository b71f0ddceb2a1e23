// The one way the console talks to the server: the same JSON API that keys use, with the
// session cookie; writes carry the session's CSRF token. Errors come in OpenAI's shape.

let csrfToken = "";

export function setCsrf(token) {
  csrfToken = token || "";
}

export class ApiError extends Error {
  constructor(message, status, code = null, param = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.param = param;
  }
}

// "/admin/usage" + {since: 1, tenant: null} -> "/admin/usage?since=1" (empty values dropped)
export function url(path, query) {
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) {
    if (v === null || v === undefined || v === "") continue;
    params.set(k, String(v));
  }
  const qs = params.toString();
  return qs ? `${path}?${qs}` : path;
}

export async function request(method, path, { query, body } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = csrfToken;
  let res;
  try {
    res = await fetch(url(path, query), {
      method,
      headers,
      credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError("The server cannot be reached: check that TokenMill is running.", 0, "network");
  }
  if (res.status === 204) return null;
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = null;
  }
  if (!res.ok) {
    const e = data && data.error;
    const message = (e && e.message) || `${res.status} ${res.statusText || "error"}`;
    const err = new ApiError(message, res.status, e && e.code, e && e.param);
    if (res.status === 401 && !path.startsWith("/console/api/login")) {
      window.dispatchEvent(new CustomEvent("tm:signed-out", { detail: err }));
    }
    throw err;
  }
  return data;
}

export const get = (path, query) => request("GET", path, { query });
export const post = (path, body, query) => request("POST", path, { body: body ?? {}, query });
export const patch = (path, body) => request("PATCH", path, { body });
export const del = (path) => request("DELETE", path);

// A read that may be refused or absent (a route not on this server yet): null instead of a throw
// for 403/404, so a page can show what it has.
export async function maybe(path, query) {
  try {
    return await get(path, query);
  } catch (e) {
    if (e.status === 403 || e.status === 404) return null;
    throw e;
  }
}
