// live.js — the `/v1/live` WebSocket: one JSON frame a second (`type: "counters"`), sent to
// `onFrame`; reconnects with backoff when the socket drops; reports its status
// (connecting | live | offline) to `onStatus`. The session cookie authenticates it.

/** The socket URL for this page's origin; admins name the tenant to watch. */
export function liveUrl(tenantId, loc = location) {
  const scheme = loc.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = tenantId ? `?tenant_id=${encodeURIComponent(tenantId)}` : '';
  return `${scheme}//${loc.host}/v1/live${q}`;
}

/** Opens the live feed; returns `{close()}`. */
export function connectLive({ tenantId = null, onFrame, onStatus = () => {} }) {
  let socket = null;
  let closed = false;
  let retry = 0;
  let timer = null;

  function open() {
    if (closed) return;
    onStatus('connecting');
    socket = new WebSocket(liveUrl(tenantId));
    socket.addEventListener('open', () => {
      retry = 0;
    });
    socket.addEventListener('message', (ev) => {
      let frame;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (frame && frame.type === 'counters') {
        onStatus('live');
        onFrame(frame);
      }
    });
    socket.addEventListener('close', (ev) => {
      socket = null;
      if (closed) return;
      onStatus('offline', ev.reason || '');
      const delay = Math.min(30000, 1000 * 2 ** retry);
      retry += 1;
      timer = setTimeout(open, delay);
    });
  }

  function onVisibility() {
    // Reconnect promptly when the tab comes back after a long sleep.
    if (document.visibilityState === 'visible' && !socket && !closed) {
      clearTimeout(timer);
      open();
    }
  }
  document.addEventListener('visibilitychange', onVisibility);
  open();

  return {
    close() {
      closed = true;
      clearTimeout(timer);
      document.removeEventListener('visibilitychange', onVisibility);
      if (socket) socket.close(1000, 'done');
      socket = null;
    },
  };
}
