// key-actions.js — changing keys: the create form, per-key rotate / deactivate / activate /
// revoke buttons behind a confirmation dialog (#confirm-dialog), and the one-time secret
// dialog (#secret-dialog) whose secret is wiped from the page when it closes.

import { api, idempotencyKey } from './api.js';
import { el } from './dom.js';

let onChanged = () => {};

const ACTIONS = {
  rotate: {
    label: 'Rotate', ok: 'Rotate key', grace: true,
    message: (k) => `Issue a new secret for “${k.name}”? The new secret is shown once.`,
    run: (k, a) => api(`/v1/keys/${k.id}/rotate`, { method: 'POST', body: { grace_seconds: a.grace } }),
  },
  deactivate: {
    label: 'Deactivate', ok: 'Deactivate',
    message: (k) => `Deactivate “${k.name}”? Calls with it are refused until you activate it again.`,
    run: (k) => api(`/v1/keys/${k.id}`, { method: 'PATCH', body: { is_active: false } }),
  },
  activate: {
    label: 'Activate', ok: 'Activate',
    message: (k) => `Activate “${k.name}” again?`,
    run: (k) => api(`/v1/keys/${k.id}`, { method: 'PATCH', body: { is_active: true } }),
  },
  revoke: {
    label: 'Revoke', ok: 'Revoke for good', danger: true,
    message: (k) => `Revoke “${k.name}”? Its secret stops working now and this cannot be undone.`,
    run: (k) => api(`/v1/keys/${k.id}`, { method: 'DELETE' }),
  },
};

/** Which actions a key in `status` offers. */
export function actionsFor(status) {
  if (status === 'active') return ['rotate', 'deactivate', 'revoke'];
  if (status === 'inactive') return ['activate', 'rotate', 'revoke'];
  if (status === 'expired') return ['revoke'];
  return [];
}

function status(text, isError = false) {
  const node = document.getElementById('key-action-status');
  if (!node) return;
  node.textContent = text;
  node.hidden = !text;
  node.classList.toggle('is-error', isError);
}

/** Asks for confirmation; resolves with `{grace}` or null when cancelled. */
function confirmAction(message, { ok, grace = false, danger = false }) {
  const dialog = document.getElementById('confirm-dialog');
  document.getElementById('confirm-message').textContent = message;
  document.getElementById('rotate-options').hidden = !grace;
  const okButton = document.getElementById('confirm-ok');
  okButton.textContent = ok;
  okButton.classList.toggle('danger', danger);
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const graceValue = Number(document.getElementById('rotate-grace').value) || 0;
      resolve(dialog.returnValue === 'ok' ? { grace: graceValue } : null);
    }, { once: true });
  });
}

async function perform(key, name) {
  const action = ACTIONS[name];
  const answer = await confirmAction(action.message(key), action);
  if (!answer) return;
  status(`${action.label}: “${key.name}”…`);
  try {
    const out = await action.run(key, answer);
    status(`${action.label}: “${key.name}” done.`);
    if (out && out.secret) showSecret(out, 'rotated');
    onChanged();
  } catch (err) {
    if (!err.redirecting) status(err.message, true);
  }
}

/** The action buttons of one key (a dash when none apply). */
export function rowActions(key) {
  const names = actionsFor(key.status);
  if (!names.length) return el('span', { class: 'muted' }, '—');
  return el('div', { class: 'row-actions' }, names.map((n) => el('button', {
    type: 'button',
    class: ACTIONS[n].danger ? 'small danger' : 'small',
    dataset: { action: n, keyId: key.id },
    on: { click: () => perform(key, n) },
  }, ACTIONS[n].label)));
}

/** Shows a secret once. Closing the dialog removes it from the page. */
function showSecret(created, verb) {
  const dialog = document.getElementById('secret-dialog');
  document.getElementById('secret-title').textContent = verb === 'rotated'
    ? `New secret for “${created.name}”` : `Key “${created.name}” created`;
  document.getElementById('secret-value').textContent = created.secret;
  document.getElementById('secret-copy-status').textContent = '';
  dialog.showModal();
}

function initSecretDialog() {
  const dialog = document.getElementById('secret-dialog');
  if (!dialog) return;
  const value = document.getElementById('secret-value');
  const copied = document.getElementById('secret-copy-status');
  dialog.addEventListener('close', () => {
    value.textContent = '';
    copied.textContent = '';
  });
  document.getElementById('secret-copy').addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(value.textContent);
      copied.textContent = 'Copied.';
    } catch {
      getSelection().selectAllChildren(value);
      copied.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
    }
  });
}

function initCreateForm() {
  const form = document.getElementById('create-key-form');
  if (!form) return;
  const formStatus = document.getElementById('create-key-status');
  const say = (text, isError = false) => {
    formStatus.textContent = text;
    formStatus.hidden = !text;
    formStatus.classList.toggle('is-error', isError);
  };
  if (!document.body.dataset.sessionTenant) {
    for (const f of form.elements) f.disabled = true;
    say('Switch to a tenant to create keys.');
    return;
  }
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const body = { name: String(data.get('name') || '').trim() };
    const description = String(data.get('description') || '').trim();
    if (description) body.description = description;
    const limits = {};
    for (const w of ['per_minute', 'per_hour', 'per_day', 'per_month']) {
      const v = String(data.get(w) || '').trim();
      if (v) limits[w] = Number(v);
    }
    if (Object.keys(limits).length) body.limits = limits;
    const button = form.querySelector('button[type="submit"]');
    button.disabled = true;
    say('Creating…');
    try {
      const created = await api('/v1/keys', {
        method: 'POST', body, headers: { 'Idempotency-Key': idempotencyKey() },
      });
      form.reset();
      say('');
      showSecret(created, 'created');
      onChanged();
    } catch (err) {
      if (!err.redirecting) say(err.message, true);
    } finally {
      button.disabled = false;
    }
  });
}

/** Wires the dialogs and the create form; `changed()` runs after every successful change. */
export function initKeyForms(changed) {
  onChanged = changed;
  initSecretDialog();
  initCreateForm();
}
