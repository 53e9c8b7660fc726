// exports.js — the Exports page: a form (format, level, granularity, key / endpoint /
// method / status-class filters) that builds a plain download link to /v1/exports/usage for
// the page's date range; the cookie authenticates the GET. Key suggestions from /v1/keys.

import { api, listAll, query } from './api.js';
import { $, el } from './dom.js';
import { currentContext, startPage } from './page.js';
import { describe } from './range.js';
import { show, showEmpty } from './widget.js';

const form = $('#export-form');
const link = $('#export-link');
const KEY_ID = /^key_[0-9a-f]{32}$/;

/** The export URL for the form's choices and the page's current window. */
function exportUrl() {
  const ctx = currentContext();
  const f = form.elements;
  const level = f.level.value;
  const keyId = f.key_id.value.trim();
  const params = {
    ...ctx.params,
    format: f.format.value,
    level,
    granularity: level === 'bucket' ? f.granularity.value : '',
    key_id: KEY_ID.test(keyId) ? keyId : '',
    endpoint: f.endpoint.value.trim(),
    method: f.method.value,
    status_class: f.status_class.value,
  };
  return `/v1/exports/usage${query(params)}`;
}

function update() {
  const f = form.elements;
  f.granularity.disabled = f.level.value !== 'bucket';
  const keyId = f.key_id.value.trim();
  const badKey = keyId !== '' && !KEY_ID.test(keyId);
  f.key_id.setCustomValidity(badKey ? 'A key id looks like key_ followed by 32 hex digits.' : '');
  $('#export-key-hint').hidden = !badKey;
  const url = exportUrl();
  link.setAttribute('href', url);
  $('#export-url').textContent = url;
  $('#export-range').textContent = describe(currentContext().scope);
  const ext = f.format.value === 'json' ? 'json' : 'csv';
  link.textContent = `Download ${ext.toUpperCase()}`;
}

form.addEventListener('input', update);
form.addEventListener('change', update);
form.addEventListener('submit', (ev) => {
  ev.preventDefault();
  update();
  link.click();
});
// A preset range ends "now": refresh the window at the moment of the click.
link.addEventListener('click', update);

function renderKeys(keys) {
  const list = $('#export-key-list');
  list.replaceChildren(...keys.map((k) => el('option', { value: k.id }, `${k.name} (${k.prefix}…${k.last4})`)));
}

function refresh(ctx) {
  update();
  if (!ctx.sessionTenant) {
    showEmpty('export-keys', '');
    return Promise.resolve();
  }
  return show('export-keys', listAll('/v1/keys').catch(() => []), renderKeys);
}

startPage(refresh);
