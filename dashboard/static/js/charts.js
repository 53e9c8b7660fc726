// charts.js — drawing: uPlot line and stacked-bar charts (time on x, seconds), plus plain
// HTML charts: horizontal bars, heatmaps with a cool-to-warm scale, and utilization bars.
// Each chart lives in a `.chart[data-chart]` container and is replaced on every render.

import { clear, el } from './dom.js';
import { fmtCompact, fmtPercent } from './format.js';

export const PALETTE = ['#3b6fd8', '#e8590c', '#2f9e44', '#ae3ec9', '#f59f00', '#1098ad', '#e03131', '#5c7cfa'];
const AXIS = { stroke: '#5b6472', grid: { stroke: '#eceef2', width: 1 }, ticks: { stroke: '#d5d9e0', width: 1 } };
const resizers = new WeakMap();

/** A colour per status code: greens 2xx, blue 3xx, ambers 4xx, reds 5xx. */
export function statusColor(code) {
  const shades = {
    2: ['#2f9e44', '#69db7c', '#37b24d'],
    3: ['#1c7ed6', '#74c0fc'],
    4: ['#f59f00', '#f76707', '#fcc419', '#e8590c', '#ffa94d'],
    5: ['#e03131', '#a61e4d', '#ff6b6b', '#c92a2a'],
  };
  const list = shades[Math.floor(code / 100)] || ['#868e96'];
  return list[code % list.length];
}

function requireUplot() {
  if (typeof globalThis.uPlot !== 'function') throw new Error('the chart library did not load');
  return globalThis.uPlot;
}

function mount(container, opts, data) {
  const UPlot = requireUplot();
  if (container.chart) container.chart.destroy();
  clear(container);
  const width = Math.max(240, container.clientWidth || 600);
  const chart = new UPlot({ ...opts, width }, data, container);
  container.chart = chart;
  if (!resizers.has(container) && typeof ResizeObserver === 'function') {
    let frame = 0;
    // Resize in the next frame, never inside the observer callback (no resize loops).
    const ro = new ResizeObserver(() => {
      cancelAnimationFrame(frame);
      frame = requestAnimationFrame(() => {
        const c = container.chart;
        const w = Math.max(240, container.clientWidth);
        if (c && container.clientWidth > 0 && Math.abs(w - c.width) > 4) {
          c.setSize({ width: w, height: c.height });
        }
      });
    });
    ro.observe(container);
    resizers.set(container, ro);
  }
  return chart;
}

function yAxis(fmt) {
  return { ...AXIS, size: 64, values: (u, splits) => splits.map((v) => fmt(v)) };
}

const fromZero = (u, min, max) => [0, max > 0 ? max * 1.08 : 1];

/**
 * Lines over time. `xs`: seconds; `series`: [{label, values, color?, dash?}]; `yFmt`
 * formats axis and legend values.
 */
export function lineChart(container, { xs, series, yFmt = fmtCompact, height = 220, yRange = fromZero }) {
  const opts = {
    height,
    scales: { x: { time: true }, y: { range: yRange } },
    axes: [{ ...AXIS }, yAxis(yFmt)],
    series: [
      {},
      ...series.map((s, i) => ({
        label: s.label,
        stroke: s.color || PALETTE[i % PALETTE.length],
        width: s.width || 2,
        dash: s.dash,
        points: { show: false },
        value: (u, v) => (v == null ? '—' : yFmt(v)),
      })),
    ],
  };
  return mount(container, opts, [xs, ...series.map((s) => s.values)]);
}

/** Bars stacked per x (`series` bottom first); the legend shows each part, not the sum. */
export function stackedBars(container, { xs, series, yFmt = fmtCompact, height = 220 }) {
  const UPlot = requireUplot();
  const cumulative = [];
  let acc = xs.map(() => 0);
  for (const s of series) {
    acc = acc.map((a, i) => a + (s.values[i] || 0));
    cumulative.push(acc);
  }
  const order = series.map((_, i) => i).reverse(); // tallest first, the rest drawn over it
  const bars = UPlot.paths.bars({ size: [0.8, 48] });
  const opts = {
    height,
    scales: { x: { time: true }, y: { range: fromZero } },
    axes: [{ ...AXIS }, yAxis(yFmt)],
    series: [
      {},
      ...order.map((i) => ({
        label: series[i].label,
        stroke: series[i].color,
        fill: series[i].color,
        width: 0,
        paths: bars,
        points: { show: false },
        value: (u, v, si, idx) => (idx == null ? '—' : yFmt(series[i].values[idx] || 0)),
      })),
    ],
  };
  return mount(container, opts, [xs, ...order.map((i) => cumulative[i])]);
}

/** Horizontal bars: rows [{label, value, href?}] scaled to the largest value. */
export function hbars(container, rows, fmt = fmtCompact) {
  clear(container);
  const max = Math.max(1, ...rows.map((r) => r.value));
  const list = el('ol', { class: 'hbars' });
  for (const r of rows) {
    const label = r.href ? el('a', { href: r.href }, r.label) : r.label;
    list.append(el('li', { class: 'hbar', title: `${r.label}: ${fmt(r.value)}` },
      el('span', { class: 'hbar-label' }, label),
      el('span', { class: 'hbar-track' },
        el('span', { class: 'hbar-fill', style: { width: `${(100 * r.value) / max}%` } })),
      el('span', { class: 'hbar-value' }, fmt(r.value))));
  }
  container.append(list);
}

const STOPS = [[44, 123, 182], [255, 255, 191], [215, 25, 28]]; // blue -> yellow -> red

/** The heat colour of t in [0, 1]: blue (cool, low) through yellow to red (warm, high). */
export function heatColor(t) {
  const x = Math.min(1, Math.max(0, Number(t) || 0)) * (STOPS.length - 1);
  const i = Math.min(STOPS.length - 2, Math.floor(x));
  const f = x - i;
  const c = STOPS[i].map((v, k) => Math.round(v + (STOPS[i + 1][k] - v) * f));
  return `rgb(${c[0]}, ${c[1]}, ${c[2]})`;
}

/**
 * A grid of cells coloured by √(value/max) — a square-root scale, so one very busy row does
 * not flatten the others into one colour. `columns`: labels; `rows`: [{label, cells}];
 * `title(row, colIndex, value)` is each cell's tooltip; every `labelEvery`-th column is labelled.
 */
export function heatmap(container, { columns, rows, max, title, labelEvery = 1, unit = 'calls' }) {
  clear(container);
  const table = el('table', { class: 'heat' });
  const head = el('tr', {}, el('th', { scope: 'col' }, ''));
  columns.forEach((c, i) => {
    const label = i % labelEvery === 0 ? el('span', { class: 'heat-col-label' }, c) : null;
    head.append(el('th', { scope: 'col', class: 'heat-col', title: c }, label));
  });
  table.append(el('thead', {}, head));
  const body = el('tbody');
  for (const row of rows) {
    const tr = el('tr', {}, el('th', { scope: 'row', class: 'heat-row', title: row.full || row.label },
      el('span', { class: 'heat-row-label' }, row.label)));
    row.cells.forEach((v, i) => {
      const td = el('td', { class: v > 0 ? 'heat-cell' : 'heat-cell is-zero', title: title(row, i, v) });
      if (v > 0) td.style.backgroundColor = heatColor(max > 0 ? Math.sqrt(v / max) : 0);
      tr.append(td);
    });
    body.append(tr);
  }
  table.append(body);
  const legend = el('div', { class: 'heat-legend', 'aria-hidden': 'true' },
    el('span', {}, '0'), el('span', { class: 'heat-ramp' }),
    el('span', {}, `${fmtCompact(max)} ${unit} (square-root scale)`));
  container.append(el('div', { class: 'heat-scroll' }, table), legend);
}

/**
 * A utilization bar: `percent` now (fill), `peak` (tick) and the colour by `threshold`
 * (amber at or above it, red at 100 %).
 */
export function utilBar({ window, label, percent, peak, threshold = 80, title }) {
  const p = Number(percent) || 0;
  const level = p >= 100 ? 'is-over' : p >= threshold ? 'is-warn' : 'is-ok';
  const track = el('span', { class: 'util-track' },
    el('span', { class: `util-fill ${level}`, style: { width: `${Math.min(100, p)}%` } }));
  if (peak != null && Number(peak) > 0) {
    track.append(el('span', { class: 'util-peak', style: { left: `${Math.min(100, Number(peak))}%` } }));
  }
  return el('div', {
    class: `util ${level}`, title: title || '', dataset: { util: window, percent: String(p) },
  }, el('span', { class: 'util-label' }, label || window), track,
  el('span', { class: 'util-value' }, fmtPercent(p, 0)));
}

const WINDOW_LABELS = { minute: 'min', hour: 'hour', day: 'day', month: 'month' };

/** One key's utilization bars (rate-limits `windows`), or a dash without data. */
export function utilBars(windows, threshold = 80) {
  if (!windows || !windows.length) return el('span', { class: 'muted' }, '—');
  return el('div', { class: 'utils' }, windows.map((w) => utilBar({
    window: w.window,
    label: WINDOW_LABELS[w.window] || w.window,
    percent: w.percent,
    peak: w.peak_percent,
    threshold,
    title: `${w.used}/${w.limit} req/${WINDOW_LABELS[w.window] || w.window} now · `
      + `peak ${Math.round(w.peak_percent ?? 0)} % in this range`,
  })));
}

/** Seconds since the epoch of an RFC 3339 instant (uPlot's x values). */
export function secs(iso) {
  return Math.floor(new Date(iso).getTime() / 1000);
}
