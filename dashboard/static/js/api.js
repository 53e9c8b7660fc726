// api.js — every call to the JSON API: same-origin fetch with the session cookie and the
// CSRF header, RFC 9457 problems turned into ApiError (its message is the problem's `detail`),
// 401 sends the browser to the login page, and cursor pagination for lists.

/** A failed API call; `message` is what a widget shows in its error state. */
export class ApiError extends Error {
  constructor(status, message, problem = null) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.problem = problem;
    /** True when the page is already on its way to the login form. */
    this.redirecting = false;
  }
}

let csrfCache = null;

/** The page's CSRF token (from `<meta name="csrf-token">`). */
export function csrfToken() {
  if (csrfCache == null) {
    const meta = document.querySelector('meta[name="csrf-token"]');
    csrfCache = meta ? meta.getAttribute('content') || '' : '';
  }
  return csrfCache;
}

/** `?a=1&b=2` from an object, skipping null, undefined and empty strings. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v == null || v === '') continue;
    q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : '';
}

function loginRedirect() {
  const next = location.pathname + location.search;
  location.assign(`/dashboard/login?next=${encodeURIComponent(next)}`);
}

async function problemOf(res) {
  let problem = null;
  try {
    problem = await res.json();
  } catch {
    problem = null;
  }
  const detail = (problem && (problem.detail || problem.title))
    || `The server answered ${res.status} ${res.statusText || ''}`.trim();
  return new ApiError(res.status, detail, problem);
}

/**
 * Calls the API. `params` become the query string, `body` is sent as JSON.
 * Resolves with the parsed JSON (null for an empty answer); rejects with ApiError.
 */
export async function api(path, { method = 'GET', params, body, headers = {} } = {}) {
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json', 'X-CSRF-Token': csrfToken(), ...headers },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path + query(params), init);
  } catch {
    throw new ApiError(0, 'Could not reach the server. Check your connection and try again.');
  }
  if (res.status === 401) {
    const err = new ApiError(401, 'Your session has ended. Redirecting to the login page…');
    err.redirecting = true;
    loginRedirect();
    throw err;
  }
  if (!res.ok) throw await problemOf(res);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/**
 * Every item of a cursor-paginated list (`{data, has_more}`, newest first), following
 * `starting_after` up to `max` items.
 */
export async function listAll(path, params = {}, max = 1000) {
  const items = [];
  let after = null;
  for (;;) {
    const page = await api(path, { params: { ...params, limit: 100, starting_after: after } });
    items.push(...page.data);
    if (!page.has_more || page.data.length === 0 || items.length >= max) break;
    after = page.data[page.data.length - 1].id;
  }
  return items;
}

/** A random key for `Idempotency-Key` (crypto.randomUUID needs a secure context). */
export function idempotencyKey() {
  if (globalThis.crypto && typeof crypto.randomUUID === 'function' && globalThis.isSecureContext) {
    return crypto.randomUUID();
  }
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
