// endpoints.js — the Endpoints page: sortable per-endpoint table (volume, error rate,
// P50/P95/P99, trend), volume bars, endpoint × time heatmap with hour/day/week buttons,
// and the weekday × hour-of-day heatmap.

import { api } from './api.js';
import { $, $$, el } from './dom.js';
import {
  fmtBucket, fmtCompact, fmtInt, fmtMs, fmtRatio, fmtTime, fmtTrend,
} from './format.js';
import { hbars, heatmap } from './charts.js';
import { startPage, track } from './page.js';
import { spanMs } from './range.js';
import { show, widget } from './widget.js';
import { sortableTable } from './table.js';

const HEATMAP_COLUMNS = 400;
const WIDTH = { hour: 3600e3, day: 86400e3, week: 7 * 86400e3 };
/** Columns between labels, so a label never runs into the next one. */
const MIN_LABEL_EVERY = { hour: 4, day: 3, week: 4 };
let chosenBucket = null;
let lastCtx = null;

const COLUMNS = [
  {
    key: 'endpoint', label: 'Endpoint', sort: (r) => `${r.endpoint} ${r.method}`,
    cell: (r) => el('span', { class: 'endpoint' }, el('span', { class: 'method' }, r.method), ` ${r.endpoint}`),
  },
  { key: 'requests', label: 'Requests', num: true, sort: (r) => r.requests, cell: (r) => fmtInt(r.requests) },
  { key: 'error_rate', label: 'Error rate', num: true, sort: (r) => r.error_rate, cell: (r) => fmtRatio(r.error_rate) },
  { key: 'p50', label: 'P50', num: true, sort: (r) => r.latency_p50_ms, cell: (r) => fmtMs(r.latency_p50_ms) },
  { key: 'p95', label: 'P95', num: true, sort: (r) => r.latency_p95_ms, cell: (r) => fmtMs(r.latency_p95_ms) },
  { key: 'p99', label: 'P99', num: true, sort: (r) => r.latency_p99_ms, cell: (r) => fmtMs(r.latency_p99_ms) },
  {
    key: 'trend', label: 'Trend', num: true, sort: (r) => r.trend_percent,
    cell: (r) => el('span', {
      class: r.trend_percent == null ? 'trend' : r.trend_percent > 0 ? 'trend up' : 'trend down',
      title: `${fmtInt(r.previous_requests)} calls in the previous window`,
    }, fmtTrend(r.trend_percent)),
  },
];

function renderTable(data, section) {
  sortableTable($('table', section), COLUMNS, data.data, { key: 'requests', dir: 'desc' });
}

function renderVolume(data, section) {
  const rows = data.data.slice(0, 15).map((r) => ({ label: `${r.method} ${r.endpoint}`, value: r.requests }));
  hbars($('.chart', section), rows, fmtCompact);
}

/** Buckets whose column count the API accepts for this window. */
function allowedBuckets(scope) {
  const span = spanMs(scope);
  return Object.keys(WIDTH).filter((b) => Math.ceil(span / WIDTH[b]) + 1 <= HEATMAP_COLUMNS);
}

function currentBucket(scope) {
  const allowed = allowedBuckets(scope);
  if (chosenBucket && allowed.includes(chosenBucket)) return chosenBucket;
  const span = spanMs(scope);
  const auto = span <= 2 * 86400e3 ? 'hour' : span <= 90 * 86400e3 ? 'day' : 'week';
  return allowed.includes(auto) ? auto : allowed[allowed.length - 1];
}

const emptyGrid = (h) => !h.rows.length || !h.max;

function loadTimeHeatmap(ctx) {
  const section = widget('endpoint-heatmap');
  const bucket = currentBucket(ctx.scope);
  const allowed = allowedBuckets(ctx.scope);
  for (const b of $$('[data-bucket]', section)) {
    b.disabled = !allowed.includes(b.dataset.bucket);
    b.setAttribute('aria-pressed', String(b.dataset.bucket === bucket));
  }
  const data = api('/v1/analytics/heatmap', { params: { ...ctx.params, kind: 'endpoint_time', bucket } });
  return show(section, data, (h) => {
    heatmap($('.chart', section), {
      columns: h.columns.map((c) => fmtBucket(c, bucket)),
      rows: h.rows,
      max: h.max,
      labelEvery: Math.max(MIN_LABEL_EVERY[bucket], Math.ceil(h.columns.length / 12)),
      title: (row, i, v) => `${row.label} · ${bucket} from ${fmtTime(h.columns[i]).slice(0, 16)} · ${fmtInt(v)} calls`,
    });
  }, { isEmpty: emptyGrid });
}

function loadWeekHeatmap(ctx) {
  const data = api('/v1/analytics/heatmap', { params: { ...ctx.params, kind: 'weekday_hour' } });
  return show('weekday-heatmap', data, (h, section) => {
    heatmap($('.chart', section), {
      columns: h.columns,
      rows: h.rows.map((r) => ({ ...r, label: r.label.slice(0, 3), full: r.label })),
      max: h.max,
      labelEvery: 3,
      title: (row, i, v) => `${row.full} ${h.columns[i]}:00–${h.columns[i]}:59 UTC · ${fmtInt(v)} calls`,
    });
  }, { isEmpty: emptyGrid });
}

function refresh(ctx) {
  lastCtx = ctx;
  const endpoints = api('/v1/analytics/endpoints', { params: ctx.params });
  const isEmpty = (d) => !d.data.length;
  return Promise.all([
    show('endpoints', endpoints, renderTable, { isEmpty }),
    show('endpoint-volume', endpoints, renderVolume, { isEmpty }),
    loadTimeHeatmap(ctx),
    loadWeekHeatmap(ctx),
  ]);
}

for (const b of $$('[data-widget="endpoint-heatmap"] [data-bucket]')) {
  b.addEventListener('click', () => {
    chosenBucket = b.dataset.bucket;
    if (lastCtx) track(loadTimeHeatmap(lastCtx));
  });
}

startPage(refresh);
