// The HTTP API, called with the bearer token kept in this tab's
// sessionStorage. Every call the console makes goes through here.

const TOKEN_KEY = 'bitcask.token';

/** A refused or failed call: the status and the server's `detail`. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(detail || `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

let unauthorized = () => {};

/** What to do when the server answers 401 (show the login form). */
export function onUnauthorized(handler) {
  unauthorized = handler;
}

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

/** The headers of a call: the token, if one is kept, and `extra`. */
export function headers(extra = {}) {
  const h = new Headers(extra);
  const t = token();
  if (t) h.set('Authorization', `Bearer ${t}`);
  return h;
}

/**
 * Calls the API. Answers the response when its status is 2xx or in
 * `allow`; otherwise throws an ApiError with the server's detail (and
 * calls the 401 handler first on a 401).
 */
export async function call(method, path, { body, extra = {}, allow = [], signal } = {}) {
  const response = await fetch(path, {
    method,
    headers: headers(extra),
    body,
    signal,
    cache: 'no-store',
  });
  if (response.ok || allow.includes(response.status)) return response;
  let detail = '';
  try {
    detail = (await response.json()).detail;
  } catch {
    detail = response.statusText;
  }
  if (response.status === 401) unauthorized();
  throw new ApiError(response.status, detail);
}

/** GET `path` as JSON. */
export async function getJson(path, options) {
  return (await call('GET', path, options)).json();
}

/** The path of a key: every byte but unreserved ones percent-encoded, `/` too (so `.` and `..` in a key stay a key's). */
export function keyPath(key) {
  return `/kv/${encodeURIComponent(key)}`;
}
