// keys.js — the Keys page: the tenant's keys joined with their usage (/v1/analytics/keys)
// and rate-limit utilization (/v1/analytics/rate-limits), near-limit warnings, the create
// form, and per-row rotate / deactivate / activate / revoke (see key-actions.js).

import { api, listAll } from './api.js';
import { $, el } from './dom.js';
import { fmtAgo, fmtInt, fmtRatio, fmtTime } from './format.js';
import { utilBars } from './charts.js';
import { initKeyForms, rowActions } from './key-actions.js';
import { rerender, setPageParam, startPage } from './page.js';
import { show, showEmpty } from './widget.js';
import { sortableTable } from './table.js';

const thresholdSelect = document.getElementById('threshold');

function threshold() {
  const v = Number(new URLSearchParams(location.search).get('threshold'));
  return v > 0 && v <= 100 ? v : 80;
}

function statusTag(status) {
  return el('span', { class: `key-status is-${status}` }, status);
}

function columns(ctx, usage, limits, thresholdPercent) {
  const use = (k) => usage.get(k.id) || null;
  return [
    {
      key: 'name', label: 'Name', sort: (k) => k.name.toLowerCase(),
      cell: (k) => el('a', { href: ctx.link(`/dashboard/keys/${k.id}`), class: 'key-name', dataset: { keyId: k.id } }, k.name),
    },
    { key: 'prefix', label: 'Key', cell: (k) => el('code', {}, `${k.prefix}…${k.last4}`) },
    { key: 'status', label: 'Status', sort: (k) => k.status, cell: (k) => statusTag(k.status) },
    { key: 'requests', label: 'Requests', num: true, sort: (k) => use(k)?.requests ?? 0, cell: (k) => fmtInt(use(k)?.requests ?? 0) },
    {
      key: 'success', label: 'Success', num: true, sort: (k) => (use(k)?.requests ? use(k).success_rate : null),
      cell: (k) => (use(k)?.requests ? fmtRatio(use(k).success_rate) : '—'),
    },
    {
      key: 'last_used', label: 'Last used', sort: (k) => k.last_used_at || '',
      cell: (k) => el('time', { datetime: k.last_used_at || null, title: fmtTime(k.last_used_at) }, fmtAgo(k.last_used_at)),
    },
    { key: 'util', label: 'Utilization', cell: (k) => utilBars(limits.get(k.id)?.windows, thresholdPercent) },
    { key: 'actions', label: 'Actions', cell: (k) => rowActions(k) },
  ];
}

async function loadKeys(ctx, limitsPromise) {
  const [keys, usage, limits] = await Promise.all([
    listAll('/v1/keys'),
    api('/v1/analytics/keys', { params: ctx.params }).catch((e) => ({ error: e })),
    limitsPromise.catch((e) => ({ error: e })),
  ]);
  return { keys, usage, limits };
}

function renderKeys(ctx, thresholdPercent) {
  return ({ keys, usage, limits }, section) => {
    const usageMap = new Map((usage.data || []).map((r) => [r.key_id, r]));
    const limitMap = new Map((limits.keys || []).map((r) => [r.key_id, r]));
    sortableTable($('table', section), columns(ctx, usageMap, limitMap, thresholdPercent), keys,
      { key: 'requests', dir: 'desc' });
    const notes = [usage.error && `Usage figures could not be loaded: ${usage.error.message}`,
      limits.error && `Utilization could not be loaded: ${limits.error.message}`].filter(Boolean);
    const note = $('#keys-note');
    note.textContent = notes.join(' ');
    note.hidden = notes.length === 0;
  };
}

function renderWarnings(data, section) {
  const list = $('#limit-warnings', section);
  list.replaceChildren(...data.recommendations.map((text) => el('li', {}, text)));
}

function refresh(ctx) {
  const t = threshold();
  if (thresholdSelect) thresholdSelect.value = String(t);
  const limits = api('/v1/analytics/rate-limits', { params: { ...ctx.params, threshold: t } });
  const warnings = show('limit-warnings', limits, renderWarnings, {
    isEmpty: (d) => !d.recommendations.length,
    emptyText: `No key is at ${t} % of a limit or more.`,
  });
  if (!ctx.sessionTenant) {
    showEmpty('keys', 'Your session acts in no tenant, so there are no keys to list. Switch to a tenant first.');
    return warnings;
  }
  return Promise.all([
    warnings,
    show('keys', loadKeys(ctx, limits), renderKeys(ctx, t), {
      isEmpty: (d) => !d.keys.length,
      emptyText: 'No API keys yet. Create one with the form below.',
    }),
  ]);
}

if (thresholdSelect) {
  thresholdSelect.addEventListener('change', () => {
    setPageParam('threshold', thresholdSelect.value === '80' ? null : thresholdSelect.value);
    rerender();
  });
}

initKeyForms(() => rerender());
startPage(refresh);
