// widget.js — the loading / empty / error / ready states every widget goes through.
// A widget is a `[data-widget]` element with a `.widget-status` line; its `.widget-body`
// parts are hidden in the empty and error states (see app.css). `data-state` tells tests
// (and CSS) where it is.

export const NO_CALLS = 'No calls in this range';

function statusLine(section) {
  let status = section.querySelector(':scope > .widget-status');
  if (!status) {
    status = document.createElement('p');
    status.className = 'widget-status';
    status.setAttribute('role', 'status');
    section.prepend(status);
  }
  return status;
}

/** Puts a widget in `state` (loading|empty|error|ready) with an optional message. */
export function setState(section, state, message = '') {
  section.dataset.state = state;
  section.setAttribute('aria-busy', state === 'loading' ? 'true' : 'false');
  const status = statusLine(section);
  const text = message || (state === 'loading' ? 'Loading…' : '');
  status.textContent = text;
  status.hidden = state === 'ready' || !text;
  status.classList.toggle('is-error', state === 'error');
}

/** The widget element for a name: `[data-widget="name"]`. */
export function widget(name) {
  const node = document.querySelector(`[data-widget="${name}"]`);
  if (!node) throw new Error(`Missing widget ${name}`);
  return node;
}

/** The text an error shows: an API problem's detail, else a generic line. */
export function errorText(err) {
  if (err && err.name === 'ApiError') return err.message;
  return `Something went wrong while drawing this: ${err && err.message ? err.message : err}`;
}

/**
 * Shows `promise`'s data in a widget: loading now, then `render(data, section)` (ready), the
 * empty state when `isEmpty(data)` (still rendered with `renderEmpty`, e.g. zeroed cards), or
 * the error state with the problem's detail. Resolves
 * when the widget has settled; never rejects. A newer call on the same widget wins.
 */
export async function show(section, promise, render, opts = {}) {
  const { isEmpty = () => false, emptyText = NO_CALLS, renderEmpty = false } = opts;
  const node = typeof section === 'string' ? widget(section) : section;
  const gen = (Number(node.dataset.gen) || 0) + 1;
  node.dataset.gen = String(gen);
  setState(node, 'loading');
  let data;
  try {
    data = await promise;
  } catch (err) {
    if (Number(node.dataset.gen) !== gen) return;
    if (err && err.redirecting) return;
    setState(node, 'error', errorText(err));
    return;
  }
  if (Number(node.dataset.gen) !== gen) return;
  try {
    if (isEmpty(data)) {
      setState(node, 'empty', typeof emptyText === 'function' ? emptyText(data) : emptyText);
      if (renderEmpty) render(data, node, true);
    } else {
      setState(node, 'ready');
      render(data, node, false);
    }
  } catch (err) {
    setState(node, 'error', errorText(err));
  }
}

/** Puts a widget straight into the empty state (e.g. nothing to ask the server). */
export function showEmpty(section, message) {
  const node = typeof section === 'string' ? widget(section) : section;
  node.dataset.gen = String((Number(node.dataset.gen) || 0) + 1);
  setState(node, 'empty', message);
}
