// consumers.js — the Top consumers page: keys ranked by volume, error rate or bandwidth
// (/v1/analytics/top-consumers), each row linking to the key's page. The ranking is kept in
// the URL as `?by=`.

import { api } from './api.js';
import { $, $$, el, fillTable, num } from './dom.js';
import { fmtAgo, fmtBytes, fmtInt, fmtMs, fmtRatio, fmtTime } from './format.js';
import { rerender, setPageParam, startPage } from './page.js';
import { show } from './widget.js';

const RANKINGS = ['volume', 'error_rate', 'bandwidth'];
const LIMIT = 25;

function rankedBy() {
  const by = new URLSearchParams(location.search).get('by');
  return RANKINGS.includes(by) ? by : 'volume';
}

function metric(row, by) {
  if (by === 'error_rate') return row.error_rate;
  if (by === 'bandwidth') return row.bandwidth;
  return row.requests;
}

function metricText(row, by) {
  if (by === 'error_rate') return fmtRatio(row.error_rate);
  if (by === 'bandwidth') return fmtBytes(row.bandwidth);
  return fmtInt(row.requests);
}

function keyCell(ctx, row) {
  const name = row.name || (row.key_id ? row.key_id : '(calls without a key)');
  if (!row.key_id) return el('span', { class: 'muted' }, name);
  return el('a', { href: ctx.link(`/dashboard/keys/${row.key_id}`), dataset: { keyId: row.key_id } }, name);
}

function render(ctx, by) {
  return (data, section) => {
    const max = Math.max(...data.data.map((r) => metric(r, by)), 0) || 1;
    fillTable($('table', section), data.data, (r) => [
      num(String(r.rank)),
      keyCell(ctx, r),
      el('td', { class: 'rank-bar' },
        el('span', { class: 'hbar-track' },
          el('span', { class: 'hbar-fill', style: { width: `${(100 * metric(r, by)) / max}%` } })),
        el('span', { class: 'hbar-value' }, metricText(r, by))),
      num(fmtInt(r.requests)),
      num(fmtRatio(r.error_rate)),
      num(fmtBytes(r.bandwidth)),
      num(fmtMs(r.latency_p95_ms)),
      el('td', { title: fmtTime(r.last_used_at) }, fmtAgo(r.last_used_at)),
    ]);
  };
}

function refresh(ctx) {
  const by = rankedBy();
  for (const b of $$('[data-by]')) b.setAttribute('aria-pressed', String(b.dataset.by === by));
  $('#rank-metric-head').textContent = { volume: 'Volume', error_rate: 'Error rate', bandwidth: 'Bandwidth' }[by];
  const data = api('/v1/analytics/top-consumers', { params: { ...ctx.params, by, limit: LIMIT } });
  return show('consumers', data, render(ctx, by), { isEmpty: (d) => !d.data.length });
}

for (const b of $$('[data-by]')) {
  b.addEventListener('click', () => {
    setPageParam('by', b.dataset.by === 'volume' ? null : b.dataset.by);
    rerender();
  });
}

startPage(refresh);
