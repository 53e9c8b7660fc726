// range.js — the page's scope: the time range (a preset `?range=24h` or `?from=…&to=…` in
// RFC 3339) and, for platform admins, `?tenant_id=`. Parsing, resolving to absolute UTC
// instants, URL building and `datetime-local` conversion. Pure: no DOM, so node can test it.

export const PRESETS = {
  '1h': 3600e3,
  '24h': 86400e3,
  '7d': 7 * 86400e3,
  '30d': 30 * 86400e3,
};
export const DEFAULT_RANGE = '24h';
/** URL parameters owned by the scope (everything else in the URL is left alone). */
const SCOPE_KEYS = ['range', 'from', 'to', 'tenant_id'];

function validDate(s) {
  if (!s) return null;
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? null : d;
}

/**
 * The scope a query string describes: `{range, from, to, tenantId}` where either `range` is
 * a preset name or `from`/`to` are Dates. Anything unreadable falls back to the default.
 */
export function readScope(search) {
  const q = new URLSearchParams(search);
  const tenantId = q.get('tenant_id') || null;
  const from = validDate(q.get('from'));
  const to = validDate(q.get('to'));
  if (from && to && from < to) return { range: null, from, to, tenantId };
  const range = q.get('range');
  return { range: PRESETS[range] ? range : DEFAULT_RANGE, from: null, to: null, tenantId };
}

/** An instant as RFC 3339 UTC without fractional seconds: 2025-03-04T12:00:00Z. */
export function toRfc3339(date) {
  return new Date(date).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The absolute window of a scope, as RFC 3339 strings; presets end now. */
export function resolve(scope, now = Date.now()) {
  if (scope.range) {
    return { from: toRfc3339(now - PRESETS[scope.range]), to: toRfc3339(now) };
  }
  return { from: toRfc3339(scope.from), to: toRfc3339(scope.to) };
}

/** The window's length in milliseconds. */
export function spanMs(scope) {
  if (scope.range) return PRESETS[scope.range];
  return scope.to.getTime() - scope.from.getTime();
}

/** The scope's own query parameters (the default range is left implicit). */
export function scopeParams(scope) {
  const p = {};
  if (scope.range) {
    if (scope.range !== DEFAULT_RANGE) p.range = scope.range;
  } else {
    p.from = toRfc3339(scope.from);
    p.to = toRfc3339(scope.to);
  }
  if (scope.tenantId) p.tenant_id = scope.tenantId;
  return p;
}

/** `search` with the scope parameters replaced by those of `scope` (others kept). */
export function withScope(search, scope) {
  const q = new URLSearchParams(search);
  for (const k of SCOPE_KEYS) q.delete(k);
  for (const [k, v] of Object.entries(scopeParams(scope))) q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : '';
}

/** A dashboard path carrying the scope, for nav links and drill-downs. */
export function scopedHref(path, scope) {
  return path + withScope('', scope);
}

function pad(n) {
  return String(n).padStart(2, '0');
}

/** A Date as a `datetime-local` value in the browser's time zone: 2025-03-04T13:05. */
export function toLocalInput(date) {
  const d = new Date(date);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

/** A `datetime-local` value (local time) as a Date, or null when empty or invalid. */
export function fromLocalInput(value) {
  const m = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?/.exec(value || '');
  if (!m) return null;
  const d = new Date(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +(m[6] || 0));
  return Number.isNaN(d.getTime()) ? null : d;
}

/** Human text for the window: "Last 24 h" or "2025-03-01 10:00 – 2025-03-02 10:00". */
export function describe(scope) {
  if (scope.range) return `Last ${scope.range.replace(/(\d+)([a-z])/, '$1 $2')}`;
  const f = (d) => toLocalInput(d).replace('T', ' ');
  return `${f(scope.from)} – ${f(scope.to)}`;
}

/** The bucket the API picks for a window: minute up to 6 h, hour up to 14 d, else day. */
export function autoGranularity(scope) {
  const span = spanMs(scope);
  if (span <= 6 * 3600e3) return 'minute';
  if (span <= 14 * 86400e3) return 'hour';
  return 'day';
}
