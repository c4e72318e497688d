// Minimal MCP-over-HTTP helpers (fetch based) for tests that need exact
// control of ids, headers and eras, below what an SDK client allows.
export const LEGACY_VERSION = '2025-11-25';
export const MODERN_VERSION = '2026-07-28';
export const ACCEPT = 'application/json, text/event-stream';

/** Parses an SSE body into its events' data (JSON-decoded where possible). */
export function parseSse(text) {
  const out = [];
  for (const block of text.split(/\r?\n\r?\n/)) {
    const data = block
      .split(/\r?\n/)
      .filter((l) => l.startsWith('data:'))
      .map((l) => l.slice(5).replace(/^ /, ''))
      .join('\n');
    if (!data) continue;
    try {
      out.push(JSON.parse(data));
    } catch {
      out.push(data);
    }
  }
  return out;
}

/** JSON-RPC messages in a response body: a JSON body or an SSE stream. */
export function messagesOf(contentType, text) {
  if (!text) return [];
  if ((contentType ?? '').includes('text/event-stream')) return parseSse(text);
  const v = JSON.parse(text);
  return Array.isArray(v) ? v : [v];
}

/**
 * POSTs a JSON-RPC message; resolves { status, headers, messages, response }
 * where response is the message whose id equals body.id (if any).
 */
export async function post(url, body, headers = {}) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await res.text();
  let messages = [];
  try {
    messages = messagesOf(res.headers.get('content-type'), text);
  } catch {
    /* non-JSON body: leave messages empty, text tells */
  }
  const id = typeof body === 'object' && body !== null ? body.id : undefined;
  const response = messages.find((m) => m && typeof m === 'object' && 'id' in m && m.id === id && ('result' in m || 'error' in m));
  return { status: res.status, headers: res.headers, messages, response, text };
}

/** Legacy handshake: initialize + notifications/initialized. Returns the session. */
export async function legacyInit(url, { version = LEGACY_VERSION, capabilities = {}, headers: extra = {} } = {}) {
  const r = await post(url, {
    jsonrpc: '2.0',
    id: 0,
    method: 'initialize',
    params: { protocolVersion: version, capabilities, clientInfo: { name: 'portcullis-tests', version: '1.0.0' } },
  }, extra);
  if (r.status !== 200 || !r.response?.result) {
    throw new Error(`initialize failed: HTTP ${r.status} ${r.text.slice(0, 300)}`);
  }
  const sessionId = r.headers.get('mcp-session-id');
  const negotiated = r.response.result.protocolVersion;
  const headers = { ...extra, 'mcp-protocol-version': negotiated };
  if (sessionId) headers['mcp-session-id'] = sessionId;
  const n = await post(url, { jsonrpc: '2.0', method: 'notifications/initialized' }, headers);
  if (n.status !== 202) throw new Error(`notifications/initialized: HTTP ${n.status}`);
  return {
    sessionId,
    version: negotiated,
    headers,
    /** One request on this session. */
    request: (id, method, params) => post(url, { jsonrpc: '2.0', id, method, ...(params ? { params } : {}) }, headers),
    close: () => fetch(url, { method: 'DELETE', headers }),
  };
}

/** `_meta` every modern request carries. */
export function modernMeta(extra = {}) {
  return {
    'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
    'io.modelcontextprotocol/clientCapabilities': {},
    'io.modelcontextprotocol/clientInfo': { name: 'portcullis-tests', version: '1.0.0' },
    ...extra,
  };
}

/** A modern (stateless) request with matching Mcp-Method / Mcp-Name headers. */
export function modernRequest(url, id, method, params = {}) {
  const headers = { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': method };
  const name = method === 'resources/read' ? params.uri : params.name;
  if (name !== undefined) headers['mcp-name'] = name;
  return post(url, { jsonrpc: '2.0', id, method, params: { ...params, _meta: modernMeta(params._meta) } }, headers);
}
