// table.js — sortable tables built from column definitions: a header button per sortable
// column (click to sort, click again to reverse; `aria-sort` on the <th>), rows re-rendered
// in place. The sort survives re-renders (kept in the table's data-sort-key/-dir).

import { clear, el, fillTable } from './dom.js';

/**
 * Renders `rows` into `table` with `columns`: [{key, label, cell(row) -> node|string,
 * sort?(row) -> number|string, num?: bool}]. `initial`: {key, dir: 'asc'|'desc'}.
 */
export function sortableTable(table, columns, rows, initial) {
  if (!table.dataset.sortKey && initial) {
    table.dataset.sortKey = initial.key;
    table.dataset.sortDir = initial.dir || 'desc';
  }
  const render = () => {
    const key = table.dataset.sortKey;
    const dir = table.dataset.sortDir === 'asc' ? 1 : -1;
    const col = columns.find((c) => c.key === key && c.sort);
    const sorted = col ? [...rows].sort((a, b) => dir * compare(col.sort(a), col.sort(b))) : rows;
    drawHead(table, columns, render);
    fillTable(table, sorted, (row) => columns.map((c) => {
      const content = c.cell(row);
      return el('td', { class: c.num ? 'num' : null }, content);
    }));
  };
  render();
}

function compare(a, b) {
  const na = a == null;
  const nb = b == null;
  if (na || nb) return na && nb ? 0 : na ? -1 : 1;
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return String(a).localeCompare(String(b));
}

function drawHead(table, columns, render) {
  const head = table.tHead || table.createTHead();
  clear(head);
  const tr = el('tr');
  for (const c of columns) {
    const th = el('th', { scope: 'col', class: c.num ? 'num' : null });
    if (c.sort) {
      const active = table.dataset.sortKey === c.key;
      const dir = table.dataset.sortDir;
      th.setAttribute('aria-sort', active ? (dir === 'asc' ? 'ascending' : 'descending') : 'none');
      th.append(el('button', {
        type: 'button',
        class: 'sort',
        dataset: { sort: c.key },
        on: {
          click: () => {
            if (table.dataset.sortKey === c.key) {
              table.dataset.sortDir = table.dataset.sortDir === 'asc' ? 'desc' : 'asc';
            } else {
              table.dataset.sortKey = c.key;
              table.dataset.sortDir = c.num ? 'desc' : 'asc';
            }
            render();
          },
        },
      }, c.label, el('span', { class: 'sort-mark', 'aria-hidden': 'true' },
        active ? (dir === 'asc' ? '▲' : '▼') : '↕')));
    } else {
      th.textContent = c.label;
    }
    tr.append(th);
  }
  head.append(tr);
}
