// Byte-exact HTTP/1.1 over a plain TCP socket, for requests no HTTP library
// would send (invalid UTF-8, NUL bytes, missing or duplicate headers, odd
// methods, half-sent headers).
import net from 'node:net';

/**
 * Sends `bytes` (Buffer) to 127.0.0.1:port and reads one response.
 * Resolves { status, reason, headers (lower-case names; repeated headers
 * joined with ", "), rawHeaders [[name, value]...], body (Buffer), closed }.
 * Rejects on connect errors or when no full response arrives in timeoutMs.
 */
export function rawRequest(port, bytes, { timeoutMs = 10000, host = '127.0.0.1' } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect({ port, host });
    let buf = Buffer.alloc(0);
    let done = false;
    const finish = (err, res) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (err) reject(err);
      else resolve(res);
    };
    const timer = setTimeout(() => {
      const partial = parseResponse(buf, true);
      if (partial) finish(null, partial);
      else finish(new Error(`no complete HTTP response within ${timeoutMs} ms (got ${buf.length} bytes)`));
    }, timeoutMs);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const res = parseResponse(buf, false);
      if (res) finish(null, res);
    });
    sock.on('end', () => {
      const res = parseResponse(buf, true);
      if (res) finish(null, { ...res, closed: true });
      else finish(new Error(`connection closed before a complete response (${buf.length} bytes)`));
    });
    // A reset after the server answered still counts as an answer.
    sock.on('error', (e) => {
      const res = parseResponse(buf, true);
      if (res) finish(null, { ...res, closed: true });
      else finish(e);
    });
  });
}

/**
 * Parses one HTTP response from buf. Returns null while incomplete; when
 * `eof` is true a body without length ends at the end of the data.
 */
export function parseResponse(buf, eof) {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return null;
  const head = buf.subarray(0, headEnd).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(head[0]);
  if (!m) throw new Error(`bad status line: ${JSON.stringify(head[0])}`);
  const status = Number(m[1]);
  const headers = {};
  const rawHeaders = [];
  for (const line of head.slice(1)) {
    const i = line.indexOf(':');
    if (i <= 0) continue;
    const name = line.slice(0, i).trim().toLowerCase();
    const value = line.slice(i + 1).trim();
    rawHeaders.push([name, value]);
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  let rest = buf.subarray(headEnd + 4);
  const out = { status, reason: m[2] ?? '', headers, rawHeaders, body: Buffer.alloc(0), closed: false };
  if (status === 204 || status === 304 || (status >= 100 && status < 200)) return out;
  if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
    const chunks = [];
    let off = 0;
    for (;;) {
      const lineEnd = rest.indexOf('\r\n', off);
      if (lineEnd < 0) return eof ? { ...out, body: Buffer.concat(chunks) } : null;
      const size = parseInt(rest.subarray(off, lineEnd).toString('latin1'), 16);
      if (Number.isNaN(size)) throw new Error('bad chunk size');
      if (size === 0) return { ...out, body: Buffer.concat(chunks) };
      if (rest.length < lineEnd + 2 + size + 2) return eof ? { ...out, body: Buffer.concat([...chunks, rest.subarray(lineEnd + 2)]) } : null;
      chunks.push(rest.subarray(lineEnd + 2, lineEnd + 2 + size));
      off = lineEnd + 2 + size + 2;
    }
  }
  if (headers['content-length'] !== undefined) {
    const len = Number(headers['content-length']);
    if (rest.length < len) return eof ? { ...out, body: rest } : null;
    return { ...out, body: rest.subarray(0, len) };
  }
  return eof ? { ...out, body: rest } : null;
}

/**
 * Builds request bytes from a method, path, header list and body.
 * headers: [[name, value]...] sent in order, exactly. Content-Length is
 * added when absent and a body is given (or the method is POST).
 */
export function buildRequest(method, path, headers, body = Buffer.alloc(0)) {
  const b = Buffer.isBuffer(body) ? body : Buffer.from(body);
  const hs = [...headers];
  const hasLen = hs.some(([n]) => n.toLowerCase() === 'content-length');
  const hasTE = hs.some(([n]) => n.toLowerCase() === 'transfer-encoding');
  if (!hasLen && !hasTE && (b.length > 0 || method === 'POST')) hs.push(['Content-Length', String(b.length)]);
  const head = `${method} ${path} HTTP/1.1\r\n${hs.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`;
  return Buffer.concat([Buffer.from(head, 'latin1'), b]);
}

/**
 * Opens a connection, writes `bytes`, and reports how long until the server
 * closes it (ms), or null if still open after maxMs.
 */
export function timeUntilClosed(port, bytes, maxMs) {
  return new Promise((resolve, reject) => {
    const start = Date.now();
    const sock = net.connect({ port, host: '127.0.0.1' });
    const timer = setTimeout(() => {
      sock.destroy();
      resolve(null);
    }, maxMs);
    sock.on('connect', () => sock.write(bytes));
    sock.on('data', () => {});
    const closed = () => {
      clearTimeout(timer);
      resolve(Date.now() - start);
    };
    sock.on('close', closed);
    sock.on('error', (e) => {
      if (e.code === 'ECONNREFUSED') {
        clearTimeout(timer);
        reject(e);
      }
    });
  });
}
