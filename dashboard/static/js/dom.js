// dom.js — tiny DOM helpers: element building (text only, never HTML strings), lookups and
// table bodies. Styles are set through CSSOM (`node.style`), which the CSP allows.

/**
 * Creates an element. `attrs`: `class`, `text`, `dataset` (object), `style` (object, CSSOM),
 * `on` (object of event listeners), booleans (present when true), anything else as an
 * attribute. Children: nodes or strings (added as text), null/false skipped, arrays flattened.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = String(v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k === 'style') Object.assign(node.style, v);
    else if (k === 'on') for (const [ev, fn] of Object.entries(v)) node.addEventListener(ev, fn);
    else if (v === true) node.setAttribute(k, '');
    else node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Removes every child. */
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

/** `querySelector` that throws a clear error when a template hook is missing. */
export function $(selector, root = document) {
  const node = root.querySelector(selector);
  if (!node) throw new Error(`Missing element ${selector}`);
  return node;
}

/** `querySelectorAll` as an array. */
export function $$(selector, root = document) {
  return Array.from(root.querySelectorAll(selector));
}

/** Fills a table's <tbody> with one <tr> per row made by `cells(row)` (nodes or strings). */
export function fillTable(table, rows, cells) {
  const body = table.tBodies[0] || table.appendChild(document.createElement('tbody'));
  clear(body);
  for (const row of rows) {
    const tr = document.createElement('tr');
    for (const cell of cells(row)) {
      if (cell instanceof HTMLTableCellElement) tr.append(cell);
      else tr.append(el('td', {}, cell));
    }
    body.append(tr);
  }
  return body;
}

/** A numeric table cell (right-aligned, tabular figures). */
export function num(text, attrs = {}) {
  return el('td', { class: 'num', ...attrs }, text);
}

/** A status-code badge coloured by class. */
export function statusBadge(code) {
  const cls = code >= 500 ? 's5' : code >= 400 ? 's4' : code >= 300 ? 's3' : 's2';
  return el('span', { class: `badge ${cls}` }, String(code));
}
