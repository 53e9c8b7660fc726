// audit.js — the Audit log page: /v1/audit-log for the page's date range (and action filter),
// newest first, paged with the API's cursors (`starting_after` = last id for older entries,
// `ending_before` = first id for newer ones).

import { api } from './api.js';
import { $, el, fillTable } from './dom.js';
import { fmtTime } from './format.js';
import { startPage, track } from './page.js';
import { show } from './widget.js';

const PAGE_SIZE = 25;
const table = $('[data-table="audit"]');
const older = $('#audit-older');
const newer = $('#audit-newer');
const filter = $('#audit-filter');
let lastCtx = null;
/** The cursor of the page shown: {starting_after} or {ending_before} or {} (the newest). */
let cursor = {};
let pageNo = 1;
/** The ids of the entries shown, newest first. */
let shown = [];

function json(value) {
  return value == null ? '' : JSON.stringify(value, null, 2);
}

function changes(entry) {
  if (entry.before == null && entry.after == null) return el('span', { class: 'muted' }, '—');
  return el('details', { class: 'audit-changes' },
    el('summary', {}, 'before / after'),
    el('div', { class: 'audit-diff' },
      el('pre', {}, json(entry.before) || '—'),
      el('pre', {}, json(entry.after) || '—')));
}

function cells(entry) {
  const target = entry.target.id ? `${entry.target.type} ${entry.target.id}` : entry.target.type;
  return [
    el('td', {}, el('time', { datetime: entry.created_at }, fmtTime(entry.created_at))),
    el('td', {}, entry.actor.label, el('span', { class: 'muted' }, ` (${entry.actor.type})`)),
    el('td', {}, el('code', {}, entry.action)),
    el('td', { class: 'wrap' }, target),
    el('td', {}, entry.ip || '—'),
    el('td', {}, changes(entry)),
  ];
}

function render(page) {
  shown = page.data.map((e) => e.id);
  fillTable(table, page.data, cells);
  // `has_more` speaks for the direction just requested; the other way there is a page
  // whenever we moved away from the newest.
  if (cursor.ending_before) {
    newer.disabled = !page.has_more;
    older.disabled = false;
  } else {
    older.disabled = !page.has_more;
    newer.disabled = !cursor.starting_after;
  }
  $('#audit-page').textContent = `Page ${pageNo}`;
}

function load(ctx) {
  shown = [];
  older.disabled = true;
  newer.disabled = true;
  const params = {
    from: ctx.params.from,
    to: ctx.params.to,
    tenant_id: ctx.params.tenant_id,
    action: filter.elements.action.value.trim(),
    limit: PAGE_SIZE,
    ...cursor,
  };
  return show('audit', api('/v1/audit-log', { params }), render, {
    isEmpty: (p) => !p.data.length,
    emptyText: 'No audit entries in this range.',
  });
}

function refresh(ctx) {
  lastCtx = ctx;
  cursor = {};
  pageNo = 1;
  return load(ctx);
}

older.addEventListener('click', () => {
  if (!shown.length || !lastCtx) return;
  cursor = { starting_after: shown[shown.length - 1] };
  pageNo += 1;
  track(load(lastCtx));
});
newer.addEventListener('click', () => {
  if (!shown.length || !lastCtx) return;
  cursor = { ending_before: shown[0] };
  pageNo = Math.max(1, pageNo - 1);
  track(load(lastCtx));
});
filter.addEventListener('submit', (ev) => {
  ev.preventDefault();
  if (lastCtx) track(refresh(lastCtx));
});

startPage(refresh);
