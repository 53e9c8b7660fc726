// widgets.js — renderers shared by several pages: the stat cards of a summary and the
// requests / latency / status-code charts of a timeseries (overview and per-key view).

import { $ } from './dom.js';
import { fmtCompact, fmtInt, fmtMoney, fmtMs, fmtRatio } from './format.js';
import { lineChart, secs, stackedBars, statusColor } from './charts.js';

/** Whether a timeseries holds no call at all. */
export function noCalls(ts) {
  return !ts || !ts.series.length || ts.series.every((s) => s.points.every((p) => !p.requests));
}

function setStat(section, name, value, sub = '') {
  const card = $(`[data-stat="${name}"]`, section);
  $('.stat-value', card).textContent = value;
  $('.stat-sub', card).textContent = sub;
}

/** Fills the `[data-stat]` cards from a Summary (zeros in an empty window). */
export function renderStats(summary, section) {
  const s = summary;
  const tokens = (s.tokens_in || 0) + (s.tokens_out || 0);
  setStat(section, 'requests', fmtInt(s.requests),
    s.reads != null ? `${fmtCompact(s.reads)} reads · ${fmtCompact(s.writes)} writes` : '');
  setStat(section, 'success', s.requests ? fmtRatio(s.succeeded / s.requests) : '—',
    `${fmtInt(s.failed)} failed`);
  setStat(section, 'p95', fmtMs(s.latency_p95_ms),
    `P50 ${fmtMs(s.latency_p50_ms)} · P99 ${fmtMs(s.latency_p99_ms)}`);
  setStat(section, 'tokens', fmtInt(tokens),
    `${fmtCompact(s.tokens_in)} in · ${fmtCompact(s.tokens_out)} out`);
  setStat(section, 'cost', fmtMoney(s.cost), s.cost && s.cost.length ? '' : 'no cost recorded');
}

/** Loading placeholders in the cards. */
export function resetStats(section) {
  for (const card of section.querySelectorAll('[data-stat]')) {
    $('.stat-value', card).textContent = '…';
    $('.stat-sub', card).textContent = '';
  }
}

function points(ts) {
  return ts.series.length ? ts.series[0].points : [];
}

/** Requests and failed calls per bucket. */
export function drawRequests(ts, section) {
  const pts = points(ts);
  lineChart($('.chart', section), {
    xs: pts.map((p) => secs(p.t)),
    series: [
      { label: 'Requests', values: pts.map((p) => p.requests), color: '#3b6fd8' },
      { label: 'Failed', values: pts.map((p) => p.failed), color: '#e03131' },
    ],
  });
}

/** P50 / P95 / P99 latency per bucket (gaps where a bucket had no calls). */
export function drawLatency(ts, section) {
  const pts = points(ts);
  lineChart($('.chart', section), {
    xs: pts.map((p) => secs(p.t)),
    yFmt: fmtMs,
    series: [
      { label: 'P50', values: pts.map((p) => p.latency_p50_ms ?? null), color: '#2f9e44' },
      { label: 'P95', values: pts.map((p) => p.latency_p95_ms ?? null), color: '#f59f00' },
      { label: 'P99', values: pts.map((p) => p.latency_p99_ms ?? null), color: '#e03131' },
    ],
  });
}

/** Calls per status code per bucket, stacked (timeseries grouped by status_code). */
export function drawStatusCodes(ts, section) {
  const series = ts.series
    .filter((s) => s.points.some((p) => p.requests))
    .sort((a, b) => (a.group.status_code || 0) - (b.group.status_code || 0));
  const xs = (series[0] || ts.series[0]).points.map((p) => secs(p.t));
  stackedBars($('.chart', section), {
    xs,
    series: series.map((s) => ({
      label: String(s.group.status_code ?? '?'),
      color: statusColor(s.group.status_code || 0),
      values: s.points.map((p) => p.requests),
    })),
  });
}
