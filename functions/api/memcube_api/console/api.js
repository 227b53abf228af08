// The console's one back end: memcube's HTTP API. The key lives in this tab's sessionStorage
// only (gone when the tab closes), goes out in the Authorization header only (never in a URL),
// and is never logged or shown.
const KEY = "memcube.key";
const USER = "memcube.user";

export const session = {
  key: () => sessionStorage.getItem(KEY) || "",
  user: () => sessionStorage.getItem(USER) || "",
  scopes: () => (sessionStorage.getItem("memcube.scopes") || "").split(",").filter(Boolean),
  save(key, user, scopes) {
    if (key) sessionStorage.setItem(KEY, key);
    else sessionStorage.removeItem(KEY);
    sessionStorage.setItem(USER, user);
    sessionStorage.setItem("memcube.scopes", (scopes || []).join(","));
  },
  clear() {
    sessionStorage.clear();
  },
};

export class ApiError extends Error {
  constructor(status, message, data) {
    super(message);
    this.status = status;
    this.data = data;
  }
}

export async function call(method, path, { params, body, key } = {}) {
  const url = new URL(path, window.location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
  }
  const headers = { Accept: "application/json" };
  const secret = key === undefined ? session.key() : key;
  if (secret) headers.Authorization = `Bearer ${secret}`;
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const res = await fetch(url, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "omit",
    cache: "no-store",
    referrerPolicy: "no-referrer",
  });
  let payload;
  try {
    payload = await res.json();
  } catch {
    payload = { code: res.status, message: res.statusText || `HTTP ${res.status}` };
  }
  if (!res.ok || (typeof payload.code === "number" && payload.code >= 400)) {
    throw new ApiError(res.status, payload.message || `HTTP ${res.status}`, payload.data);
  }
  return payload;
}

export const get = (path, params) => call("GET", path, { params });
export const post = (path, body) => call("POST", path, { body });
