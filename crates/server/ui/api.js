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

/**
 * The path of a key (its bytes): every byte but unreserved ones
 * percent-encoded, `/` too (so `.` and `..` in a key stay a key's), and
 * bytes that are not UTF-8 as themselves (`%FF`).
 */
export function keyPath(bytes) {
  return `/kv/${percentEncode(bytes)}`;
}

/** Bytes percent-encoded: A-Z a-z 0-9 - . _ ~ as they are, the rest %XX. */
export function percentEncode(bytes) {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += /[A-Za-z0-9\-._~]/.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** The bytes of percent-encoded text (any bytes, not only UTF-8). */
export function percentDecode(text) {
  const out = [];
  const raw = new TextEncoder().encode(text);
  for (let i = 0; i < raw.length; i += 1) {
    const hex = String.fromCharCode(raw[i + 1] ?? 0, raw[i + 2] ?? 0);
    if (raw[i] === 0x25 && /^[0-9A-Fa-f]{2}$/.test(hex)) {
      out.push(parseInt(hex, 16));
      i += 2;
    } else out.push(raw[i]);
  }
  return new Uint8Array(out);
}
