// errors.js — the Errors page: failed calls per status code over time (stacked bars from
// /v1/analytics/errors), the totals per code, the most recent failed calls and the slowest
// calls of the range (/v1/analytics/slow-requests).

import { api } from './api.js';
import { $, el, fillTable, num, statusBadge } from './dom.js';
import { fmtBytes, fmtInt, fmtMs, fmtTime } from './format.js';
import { secs, stackedBars, statusColor } from './charts.js';
import { startPage } from './page.js';
import { show } from './widget.js';

const STEP = { minute: 60, hour: 3600, day: 86400 };
const MAX_BUCKETS = 1500;

/** Every bucket start of the window (the API leaves out buckets without failures). */
function bucketStarts(window, granularity) {
  const step = STEP[granularity] || 3600;
  const from = Math.floor(secs(window.from) / step) * step;
  const to = secs(window.to);
  const xs = [];
  for (let t = from; t < to && xs.length < MAX_BUCKETS; t += step) xs.push(t);
  return xs;
}

function renderChart(data, section) {
  const xs = bucketStarts(data.window, data.granularity);
  const index = new Map(xs.map((x, i) => [x, i]));
  const codes = data.by_status_code.map((c) => c.status_code).sort((a, b) => a - b);
  const values = new Map(codes.map((c) => [c, xs.map(() => 0)]));
  for (const point of data.timeseries) {
    const i = index.get(secs(point.t));
    if (i == null) continue;
    for (const [code, n] of Object.entries(point.counts)) {
      const row = values.get(Number(code));
      if (row) row[i] += n;
    }
  }
  stackedBars($('.chart', section), {
    xs,
    series: codes.map((c) => ({ label: String(c), color: statusColor(c), values: values.get(c) })),
  });
  $('#error-codes', section).replaceChildren(...data.by_status_code.map((c) => el('li', {},
    statusBadge(c.status_code), ` ${fmtInt(c.count)}`)));
}

function keyCell(ctx, keyId) {
  if (!keyId) return el('span', { class: 'muted' }, '—');
  return el('a', { href: ctx.link(`/dashboard/keys/${keyId}`) }, el('code', {}, `${keyId.slice(0, 12)}…`));
}

function callCells(ctx) {
  return (c) => [
    el('td', {}, el('time', { datetime: c.occurred_at }, fmtTime(c.occurred_at))),
    el('td', {}, el('span', { class: 'endpoint' }, el('span', { class: 'method' }, c.method), ` ${c.endpoint}`)),
    el('td', {}, statusBadge(c.status_code)),
    num(fmtMs(c.latency_ms)),
    num(fmtBytes(c.bytes_out)),
    el('td', {}, keyCell(ctx, c.key_id)),
    el('td', {}, c.ip || '—'),
  ];
}

function refresh(ctx) {
  const errors = api('/v1/analytics/errors', { params: ctx.params });
  const slow = api('/v1/analytics/slow-requests', { params: { ...ctx.params, limit: 20 } });
  const noFailures = 'No failed calls in this range';
  return Promise.all([
    show('errors-over-time', errors, renderChart, {
      isEmpty: (d) => !d.by_status_code.length, emptyText: noFailures,
    }),
    show('recent-errors', errors, (d, section) => fillTable($('table', section), d.recent, callCells(ctx)), {
      isEmpty: (d) => !d.recent.length, emptyText: noFailures,
    }),
    show('slow-requests', slow, (d, section) => fillTable($('table', section), d.data, callCells(ctx)), {
      isEmpty: (d) => !d.data.length,
    }),
  ]);
}

startPage(refresh);
