// page.js — what every dashboard page shares: the date-range picker, the platform admin's
// tenant scope <select>, the tenant switcher, nav links that carry the scope, and the
// render loop with the ready signal (`body[data-ready]`) the browser tests wait for.

import { listAll } from './api.js';
import { $$, el } from './dom.js';
import {
  PRESETS, readScope, resolve, scopedHref, toLocalInput, fromLocalInput, withScope, describe,
} from './range.js';

let scope = readScope(location.search);
let pending = 0;
let refreshFn = null;
const adminSelect = document.getElementById('tenant-scope');
if (!adminSelect) scope.tenantId = null; // merchants never send tenant_id

/** The context handed to a page's refresh: the scope, its window and helpers. */
function context() {
  const win = resolve(scope);
  return {
    scope,
    window: win,
    isAdmin: Boolean(adminSelect),
    /** Base query for analytics and export calls. */
    params: { from: win.from, to: win.to, tenant_id: scope.tenantId },
    /** A dashboard path carrying the scope. */
    link: (path) => scopedHref(path, scope),
    sessionTenant: document.body.dataset.sessionTenant || null,
  };
}

function markReady(ready) {
  document.body.dataset.ready = ready ? 'true' : 'false';
  if (ready) document.body.dataset.chartsReady = '1';
  else delete document.body.dataset.chartsReady;
  // The first time the page is whole, for `benches/dashboard.rs` (time since navigation).
  if (ready && performance.getEntriesByName('dashboard-ready').length === 0) {
    performance.mark('dashboard-ready');
  }
}

/**
 * Holds the ready flag at "false" until `promise` settles (and every other tracked one):
 * use it for partial re-renders such as a heatmap's granularity buttons.
 */
export async function track(promise) {
  pending += 1;
  markReady(false);
  try {
    await promise;
  } finally {
    pending -= 1;
    if (pending === 0) markReady(true);
  }
}

/** Re-renders every widget of the page; the ready flag is set once every run settles. */
export function rerender(extra = []) {
  syncChrome();
  return track(Promise.all([refreshFn(context()), ...extra]));
}

/** Moves to a new scope: URL (pushState), picker, nav links, widgets. */
export function navigate(next) {
  scope = next;
  history.pushState(null, '', location.pathname + withScope(location.search, scope) + location.hash);
  rerender();
}

/** Replaces a page-owned URL parameter (e.g. `by`) without a new history entry. */
export function setPageParam(name, value) {
  const q = new URLSearchParams(location.search);
  if (value == null || value === '') q.delete(name);
  else q.set(name, value);
  const s = q.toString();
  history.replaceState(null, '', location.pathname + (s ? `?${s}` : '') + location.hash);
}

function syncChrome() {
  for (const a of $$('a[data-nav]')) {
    if (!a.dataset.path) a.dataset.path = a.getAttribute('href');
    a.setAttribute('href', scopedHref(a.dataset.path, scope));
  }
  const form = document.getElementById('range-picker');
  if (form) {
    const { from, to } = resolve(scope);
    form.elements.from.value = toLocalInput(from);
    form.elements.to.value = toLocalInput(to);
    for (const b of $$('[data-range]', form)) {
      b.setAttribute('aria-pressed', String(b.dataset.range === scope.range));
    }
    const label = document.getElementById('range-label');
    if (label) label.textContent = describe(scope);
  }
  if (adminSelect) adminSelect.value = scope.tenantId || '';
}

function rangeError(text) {
  const p = document.getElementById('range-error');
  if (!p) return;
  p.textContent = text;
  p.hidden = !text;
}

function initPicker() {
  const form = document.getElementById('range-picker');
  if (!form) return;
  for (const b of $$('[data-range]', form)) {
    b.addEventListener('click', () => {
      if (!PRESETS[b.dataset.range]) return;
      rangeError('');
      navigate({ ...scope, range: b.dataset.range, from: null, to: null });
    });
  }
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const from = fromLocalInput(form.elements.from.value);
    const to = fromLocalInput(form.elements.to.value);
    if (!from || !to) return rangeError('Enter both a start and an end.');
    if (from >= to) return rangeError('The start must be before the end.');
    rangeError('');
    navigate({ ...scope, range: null, from, to });
  });
}

async function initTenantScope() {
  if (!adminSelect) return;
  adminSelect.addEventListener('change', () => {
    navigate({ ...scope, tenantId: adminSelect.value || null });
  });
  try {
    const tenants = await listAll('/v1/admin/tenants', {}, 500);
    tenants.sort((a, b) => a.name.localeCompare(b.name));
    for (const t of tenants) adminSelect.append(el('option', { value: t.id }, t.name));
  } catch {
    adminSelect.append(el('option', { value: '', disabled: true }, '(tenants could not be loaded)'));
  }
  if (scope.tenantId && !$$('option', adminSelect).some((o) => o.value === scope.tenantId)) {
    adminSelect.append(el('option', { value: scope.tenantId }, scope.tenantId));
  }
  adminSelect.value = scope.tenantId || '';
}

function initSwitcher() {
  const form = document.getElementById('tenant-switch');
  if (!form) return;
  const select = form.querySelector('select');
  const button = form.querySelector('button');
  if (button) button.classList.add('js-hidden');
  select.addEventListener('change', () => form.requestSubmit());
}

/**
 * Starts a page: `refresh(ctx)` must return a promise that settles when every widget has
 * (use widget.show). It runs now and again after every scope change.
 */
export function startPage(refresh) {
  refreshFn = refresh;
  initPicker();
  initSwitcher();
  window.addEventListener('popstate', () => {
    scope = readScope(location.search);
    if (!adminSelect) scope.tenantId = null;
    rerender();
  });
  rerender([initTenantScope()]);
}

/** A fresh context outside the render loop (e.g. for a form submit). */
export function currentContext() {
  return context();
}
