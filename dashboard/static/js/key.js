// key.js — the per-key page (/dashboard/keys/{key_id}): the key's details and actions, its
// stat cards, requests and latency over time, its windows' utilization now and the
// utilization history from /v1/analytics/rate-limits.

import { api } from './api.js';
import { $, el } from './dom.js';
import { fmtInt, fmtPercent, fmtTime } from './format.js';
import { lineChart, secs, utilBars } from './charts.js';
import { initKeyForms, rowActions } from './key-actions.js';
import { rerender, startPage } from './page.js';
import { show } from './widget.js';
import { drawLatency, drawRequests, noCalls, renderStats, resetStats } from './widgets.js';

const keyId = $('#key-page').dataset.keyId;
const THRESHOLD = 80;

function limitText(v) {
  return v == null ? 'unlimited' : fmtInt(v);
}

function renderDetails(key, section) {
  $('#key-name').textContent = key.name;
  document.title = `${key.name} · Tollgate`;
  const rows = [
    ['Status', el('span', { class: `key-status is-${key.status}` }, key.status)],
    ['Key', el('code', {}, `${key.prefix}…${key.last4}`)],
    ['Id', el('code', {}, key.id)],
    ['Description', key.description || '—'],
    ['Created', fmtTime(key.created_at)],
    ['Last used', key.last_used_at ? fmtTime(key.last_used_at) : 'never'],
    ['Calls served', fmtInt(key.usage_count)],
    ['Expires', key.expires_at ? fmtTime(key.expires_at) : 'never'],
    ['Rotated', key.rotated_at ? fmtTime(key.rotated_at) : 'never'],
    ['Limits', ['minute', 'hour', 'day', 'month']
      .map((w) => `${limitText(key.limits[`per_${w}`])}/${w}`).join(' · ')],
    ['Source', key.source],
  ];
  if (key.previous_secret_expires_at) {
    rows.push(['Old secret works until', fmtTime(key.previous_secret_expires_at)]);
  }
  $('dl', section).replaceChildren(...rows.flatMap(([k, v]) => [el('dt', {}, k), el('dd', {}, v)]));
  $('#key-actions').replaceChildren(rowActions(key));
}

function renderNow(data, section) {
  const row = data.keys.find((k) => k.key_id === keyId);
  const list = $('.util-now', section);
  list.replaceChildren(utilBars(row.windows, data.threshold_percent));
  const recs = $('#key-recommendations', section);
  recs.replaceChildren(...data.recommendations.map((t) => el('li', {}, t)));
}

function renderHistory(data, section) {
  const rows = data.history.filter((h) => h.key_id === keyId)
    .sort((a, b) => secs(a.bucket_start) - secs(b.bucket_start));
  const windows = [['minute', '#3b6fd8'], ['hour', '#2f9e44'], ['day', '#f59f00'], ['month', '#ae3ec9']]
    .filter(([w]) => rows.some((r) => r[`${w}_percent`] != null));
  const series = windows.map(([w, color]) => ({
    label: `per ${w}`, color, values: rows.map((r) => r[`${w}_percent`] ?? null),
  }));
  series.push({
    label: 'threshold', color: '#e03131', dash: [6, 4], width: 1,
    values: rows.map(() => data.threshold_percent),
  });
  lineChart($('.chart', section), {
    xs: rows.map((r) => secs(r.bucket_start)),
    series,
    yFmt: (v) => fmtPercent(v, 0),
    yRange: (u, min, max) => [0, Math.max(100, max * 1.08)],
  });
}

function refresh(ctx) {
  const params = { ...ctx.params, key_id: keyId };
  const stats = $('[data-widget="summary"]');
  resetStats(stats);
  const ts = api('/v1/analytics/timeseries', { params });
  const limits = api('/v1/analytics/rate-limits', { params: { ...params, threshold: THRESHOLD } });
  return Promise.all([
    show('key-details', api(`/v1/keys/${encodeURIComponent(keyId)}`), renderDetails),
    show(stats, api('/v1/analytics/summary', { params }), renderStats,
      { isEmpty: (s) => !s.requests, renderEmpty: true }),
    show('requests', ts, drawRequests, { isEmpty: noCalls }),
    show('latency', ts, drawLatency, { isEmpty: noCalls }),
    show('utilization', limits, renderNow, {
      isEmpty: (d) => !d.keys.some((k) => k.key_id === keyId && k.windows.length),
      emptyText: 'This key has no limits to measure.',
    }),
    show('utilization-history', limits, renderHistory, {
      isEmpty: (d) => !d.history.some((h) => h.key_id === keyId),
      emptyText: 'No utilization recorded in this range.',
    }),
  ]);
}

initKeyForms(() => rerender());
startPage(refresh);
