// The console's only way to the server: the public API, with the bearer token from session storage.

const TOKEN_KEY = "everloop.token";

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

let onUnauthorized = () => {};

// Called with the API's error when a request is refused for its token (401).
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

// A 401 met outside `api` (the event stream): sign out with the API's reason.
export function refused(error) {
  onUnauthorized(error);
}

export function apiUrl(path, query = {}) {
  const url = new URL(`/api/v1/${path}`, window.location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((item) => url.searchParams.append(name, item));
    else url.searchParams.set(name, String(value));
  }
  return url;
}

export function authHeaders(extra = {}) {
  return { Authorization: `Bearer ${token.get() ?? ""}`, ...extra };
}

export async function errorOf(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const error = body?.error ?? {};
  return new ApiError(response.status, error.code ?? `http_${response.status}`,
    error.message ?? (response.statusText || `HTTP ${response.status}`), error.field);
}

export async function api(path, { method = "GET", body, query } = {}) {
  const headers = authHeaders(body === undefined ? {} : { "Content-Type": "application/json" });
  let response;
  try {
    response = await fetch(apiUrl(path, query), {
      method, headers, body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new ApiError(0, "unreachable", "the server cannot be reached");
  }
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401) onUnauthorized(error);
    throw error;
  }
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// Every item of a list endpoint that pages with offset/limit (bounded: at most `max`).
export async function all(path, query = {}, max = 1000) {
  const found = [];
  for (let offset = 0; offset < max;) {
    const page = await api(path, { query: { ...query, offset, limit: 100 } });
    found.push(...page.data);
    offset += page.data.length;
    if (page.data.length < 100 || (page.total !== undefined && offset >= page.total)) break;
  }
  return found;
}
