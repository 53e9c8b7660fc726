// format.js — pure display formatting: counts, percentages, latencies, bytes, money
// (exact decimal strings, never parsed to floats) and times. No DOM access, so node can test it.

const DASH = '—';

/** Whole numbers with the browser's grouping: 12,345. */
export function fmtInt(n) {
  if (n == null || Number.isNaN(Number(n))) return DASH;
  return Math.round(Number(n)).toLocaleString();
}

/** Short counts for axes and cards: 950, 12.3k, 4.5M, 1.2B. */
export function fmtCompact(n) {
  if (n == null || Number.isNaN(Number(n))) return DASH;
  const v = Number(n);
  const a = Math.abs(v);
  const units = [[1e9, 'B'], [1e6, 'M'], [1e3, 'k']];
  for (const [size, suffix] of units) {
    if (a >= size) {
      const x = v / size;
      return `${Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(1).replace(/\.0$/, '')}${suffix}`;
    }
  }
  return Number.isInteger(v) ? String(v) : v.toFixed(1);
}

/** A ratio 0..1 as a percentage: 0.1234 -> "12.3 %". */
export function fmtRatio(ratio, digits = 1) {
  if (ratio == null || Number.isNaN(Number(ratio))) return DASH;
  return fmtPercent(Number(ratio) * 100, digits);
}

/** A value that already is a percentage: 82 -> "82 %", 12.345 -> "12.3 %". */
export function fmtPercent(pct, digits = 1) {
  if (pct == null || Number.isNaN(Number(pct))) return DASH;
  const v = Number(pct);
  const s = Number.isInteger(v) ? String(v) : v.toFixed(digits).replace(/\.0+$/, '');
  return `${s} %`;
}

/** A change in per cent with its sign; null means the previous window had no calls. */
export function fmtTrend(pct) {
  if (pct == null) return 'new';
  const v = Number(pct);
  if (Math.abs(v) < 0.05) return '±0 %';
  const s = Math.abs(v) >= 100 ? Math.abs(v).toFixed(0) : Math.abs(v).toFixed(1);
  return `${v > 0 ? '+' : '−'}${s} %`;
}

/** Milliseconds: 0.42 ms, 123 ms, 1.23 s. */
export function fmtMs(ms) {
  if (ms == null || Number.isNaN(Number(ms))) return DASH;
  const v = Number(ms);
  if (v < 1) return `${v.toFixed(2)} ms`;
  if (v < 10) return `${v.toFixed(1)} ms`;
  if (v < 1000) return `${Math.round(v)} ms`;
  return `${(v / 1000).toFixed(2)} s`;
}

/** Bytes with binary units: 512 B, 1.5 KiB, 3.2 MiB. */
export function fmtBytes(b) {
  if (b == null || Number.isNaN(Number(b))) return DASH;
  let v = Number(b);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i += 1;
  }
  return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

/**
 * An exact decimal string with trailing zeros trimmed down to `minScale` decimals, by
 * string manipulation only: "12.5000" -> "12.50", "0.0000015" stays.
 */
export function trimDecimal(amount, minScale = 2) {
  const s = String(amount);
  const m = /^(-?\d+)(?:\.(\d+))?$/.exec(s);
  if (!m) return s;
  let frac = m[2] || '';
  while (frac.length > minScale && frac.endsWith('0')) frac = frac.slice(0, -1);
  while (frac.length < minScale) frac += '0';
  return frac ? `${m[1]}.${frac}` : m[1];
}

/** A list of Money ({amount, currency}) as "12.50 USD · 3.10 EUR"; empty -> "—". */
export function fmtMoney(list) {
  if (!Array.isArray(list) || list.length === 0) return DASH;
  return list.map((m) => `${trimDecimal(m.amount)} ${m.currency}`).join(' · ');
}

function pad(n) {
  return String(n).padStart(2, '0');
}

/** An RFC 3339 instant in the browser's local time: "2025-03-04 13:05:09". */
export function fmtTime(iso) {
  if (!iso) return DASH;
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** Local clock time only: "13:05:09". */
export function fmtClock(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return DASH;
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

/** "3 min ago", "2 h ago", "5 d ago"; falls back to the date beyond 60 days. */
export function fmtAgo(iso, now = Date.now()) {
  if (!iso) return 'never';
  const t = new Date(iso).getTime();
  if (Number.isNaN(t)) return String(iso);
  const s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 60 * 86400) return `${Math.floor(s / 86400)} d ago`;
  return fmtTime(iso).slice(0, 10);
}

/** A short column label for a heatmap bucket start, by bucket width. */
export function fmtBucket(iso, bucket) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return String(iso);
  const day = `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  if (bucket === 'hour') return d.getHours() === 0 ? day : `${pad(d.getHours())}:00`;
  if (bucket === 'week') return `wk ${day}`;
  return day;
}
