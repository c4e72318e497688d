// Incremental reading of a response that may stay open (SSE), for tests that
// must act while a stream is still running: answer an elicitation, cancel,
// watch a GET stream or a subscriptions/listen stream.
import { ACCEPT } from './mcp.mjs';

/**
 * Opens a request and returns { status, contentType, next(ms), none(ms), abort() }.
 * next() resolves to the next JSON-RPC message (SSE event data, or the JSON
 * body), or null when the stream ended or `ms` passed.
 */
export async function openStream(url, { method = 'POST', body, headers = {} } = {}) {
  const ctrl = new AbortController();
  const res = await fetch(url, {
    method,
    headers: { accept: ACCEPT, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: ctrl.signal,
  });
  const contentType = res.headers.get('content-type') ?? '';
  const queue = [];
  let wake = null;
  let ended = false;
  (async () => {
    const dec = new TextDecoder();
    let buf = '';
    try {
      const reader = res.body.getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        if (!contentType.includes('text/event-stream')) continue;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block
            .split('\n')
            .filter((l) => l.startsWith('data:'))
            .map((l) => l.slice(5).trim())
            .join('\n');
          if (data) queue.push(JSON.parse(data));
          wake?.();
        }
      }
      if (!contentType.includes('text/event-stream') && buf.trim()) queue.push(JSON.parse(buf));
    } catch {
      /* aborted or reset: the stream is over */
    }
    ended = true;
    wake?.();
  })();
  const next = async (ms = 10000) => {
    const deadline = Date.now() + ms;
    while (queue.length === 0 && !ended) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise((r) => {
        const t = setTimeout(r, left);
        wake = () => {
          clearTimeout(t);
          r();
        };
      });
      wake = null;
    }
    return queue.length ? queue.shift() : null;
  };
  return {
    status: res.status,
    contentType,
    next,
    /** Resolves true if nothing arrives within ms. */
    none: async (ms = 500) => (await next(ms)) === null,
    /** Resolves true once the server ended the stream (within ms), false
     * if it is still open then; messages still queued do not matter. */
    closed: async (ms = 10000) => {
      const deadline = Date.now() + ms;
      while (!ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      return ended;
    },
    abort: () => ctrl.abort(),
  };
}
