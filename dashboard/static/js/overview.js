// overview.js — the Overview page: stat cards (summary), requests over time, latency
// percentiles, status codes (stacked bars) and the live panel fed by the WebSocket.

import { api } from './api.js';
import { $, clear, el, statusBadge } from './dom.js';
import { fmtClock, fmtInt, fmtMs } from './format.js';
import { connectLive } from './live.js';
import { startPage } from './page.js';
import { setState, show, widget } from './widget.js';
import {
  drawLatency, drawRequests, drawStatusCodes, noCalls, renderStats, resetStats,
} from './widgets.js';

const FEED_MAX = 30;
const FIRST_FRAME_WAIT_MS = 3000;
let live = null;
let liveTenant;
let firstFrame = null;

function renderFrame(frame) {
  const rps = Number(frame.requests_per_s) || 0;
  const eps = Number(frame.errors_per_s) || 0;
  $('#live-rps').textContent = rps.toFixed(rps >= 100 ? 0 : 1);
  $('#live-eps').textContent = eps.toFixed(eps >= 100 ? 0 : 1);
  $('#live-p95').textContent = fmtMs(frame.last_minute_p95_ms);
  $('#live-minute').textContent = `${fmtInt(frame.last_minute_requests)} calls, `
    + `${fmtInt(frame.last_minute_errors)} failed in the last minute`;
  const feed = $('#live-feed');
  const items = (frame.feed || []).slice(0, FEED_MAX).reverse();
  for (const call of items) {
    feed.prepend(el('li', { class: 'feed-item' },
      el('time', { datetime: call.occurred_at }, fmtClock(call.occurred_at)),
      el('span', { class: 'feed-call' }, `${call.method} ${call.endpoint}`),
      statusBadge(call.status_code),
      el('span', { class: 'feed-latency' }, fmtMs(call.latency_ms))));
  }
  while (feed.children.length > FEED_MAX) feed.lastElementChild.remove();
  const empty = $('#live-feed-empty');
  empty.hidden = feed.children.length > 0;
}

function setIndicator(status) {
  const ind = $('#live-indicator');
  ind.dataset.live = status;
  ind.textContent = { live: 'live', connecting: 'connecting…', offline: 'offline' }[status] || status;
}

/** Starts (or keeps) the socket for the scope; resolves at the first frame or a timeout. */
function startLive(ctx) {
  const section = widget('live');
  const tenant = ctx.scope.tenantId;
  if (ctx.isAdmin && !tenant) {
    if (live) live.close();
    live = null;
    liveTenant = undefined;
    setIndicator('offline');
    setState(section, 'empty', 'Pick a tenant above to watch its live traffic.');
    return Promise.resolve();
  }
  if (live && liveTenant === tenant) return firstFrame || Promise.resolve();
  if (live) live.close();
  liveTenant = tenant;
  clear($('#live-feed'));
  $('#live-feed-empty').hidden = false;
  setState(section, 'loading', 'Connecting to live updates…');
  let settle;
  firstFrame = new Promise((resolve) => {
    settle = resolve;
    setTimeout(resolve, FIRST_FRAME_WAIT_MS);
  });
  live = connectLive({
    tenantId: tenant,
    onStatus(status) {
      setIndicator(status);
      if (status === 'offline') {
        setState(section, 'error', 'Live updates are disconnected; reconnecting…');
        settle();
      }
    },
    onFrame(frame) {
      if (section.dataset.state !== 'ready') setState(section, 'ready');
      renderFrame(frame);
      settle();
    },
  });
  return firstFrame;
}

function refresh(ctx) {
  const stats = widget('summary');
  resetStats(stats);
  const summary = api('/v1/analytics/summary', { params: ctx.params });
  const ts = api('/v1/analytics/timeseries', { params: ctx.params });
  const codes = api('/v1/analytics/timeseries', { params: { ...ctx.params, group_by: 'status_code' } });
  return Promise.all([
    show(stats, summary, renderStats, { isEmpty: (s) => !s.requests, renderEmpty: true }),
    show('requests', ts, drawRequests, { isEmpty: noCalls }),
    show('latency', ts, drawLatency, { isEmpty: noCalls }),
    show('status-codes', codes, drawStatusCodes, { isEmpty: noCalls }),
    startLive(ctx),
  ]);
}

startPage(refresh);
