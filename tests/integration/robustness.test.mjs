// Failure handling: an upstream killed mid-call, an upstream call that never
// answers, a client that stops sending halfway through its headers, a
// session deleted while an HTTP/1.0 client holds its stream.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { request as httpsRequest } from 'node:https';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { networkInterfaces, tmpdir } from 'node:os';
import { startGateway, toYaml } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, ROOT, haveGateway, haveMiniUpstream, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, modernMeta, MODERN_VERSION } from '../lib/mcp.mjs';
import { timeUntilClosed } from '../lib/rawhttp.mjs';
import { openStream } from '../lib/stream.mjs';

const skip = haveGateway() ? false : 'gateway binary not built';
// mini_upstream and the conformance fixture both offer echo, sleep, hang.
const command = () => (haveMiniUpstream() ? upstreamCommands.mini() : upstreamCommands.conformance());
let gw;

before(async () => {
  if (skip) return;
  gw = await startGateway({
    limits: { read_timeout: '1s' },
    upstreams: [
      {
        name: 'up',
        prefix: '',
        command: command(),
        timeout: '1s',
        restart_backoff: { min: '100ms', max: '1s' },
      },
    ],
  });
});
after(async () => {
  if (gw) await gw.stop();
});

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

test('an upstream killed mid-call: clean JSON-RPC error, restart, later calls work', { skip, timeout: 60000 }, async () => {
  const s = await legacyInit(gw.url);
  const pid = await gw.upstreamPid('up');
  const logMark = gw.logs.length;
  // 900 ms stays under the 1 s call timeout, so the failure is the kill's.
  const pending = s.request(1, 'tools/call', { name: 'sleep', arguments: { ms: 900 } });
  await sleep(200);
  process.kill(pid, 'SIGKILL');
  const r = await pending;
  assert.equal(r.status, 200, `HTTP ${r.status}: ${r.text.slice(0, 300)}`);
  assert.ok(r.response?.error, `expected a JSON-RPC error, got ${r.text.slice(0, 300)}`);
  assert.equal(typeof r.response.error.code, 'number');
  assert.equal(r.response.error.code, -32004, r.text.slice(0, 300));

  const newPid = await gw.upstreamPid('up', { after: logMark, timeoutMs: 15000 });
  assert.notEqual(newPid, pid, 'a new child was spawned');

  // The restarted child needs its handshake; retry briefly until it answers.
  let last;
  for (let i = 0; i < 50; i++) {
    last = await s.request(100 + i, 'tools/call', { name: 'echo', arguments: { text: 'after restart' } });
    if (last.response?.result) break;
    await sleep(200);
  }
  assert.equal(last.response?.result?.content?.[0]?.text, 'after restart', last.text.slice(0, 300));
  await s.close();
});

test('a last answer written without its newline before the upstream exits still reaches its caller', { skip: skip || (!haveMiniUpstream() && 'mini_upstream not built'), timeout: 60000 }, async () => {
  const s = await legacyInit(gw.url);
  const logMark = gw.logs.length;
  const r = await s.request(3, 'tools/call', { name: 'last_words', arguments: {} });
  assert.equal(r.response?.result?.content?.[0]?.text, 'goodbye', r.text.slice(0, 300));
  await gw.waitForLog((l) => /output ended without a newline/.test(l.msg ?? ''), { timeoutMs: 5000, from: logMark });
  // It restarts as after any exit.
  let last;
  for (let i = 0; i < 50; i++) {
    last = await s.request(200 + i, 'tools/call', { name: 'echo', arguments: { text: 'next' } });
    if (last.response?.result) break;
    await sleep(200);
  }
  assert.equal(last.response?.result?.content?.[0]?.text, 'next');
  await s.close();
});

test('a call that never answers times out with -32003', { skip, timeout: 30000 }, async () => {
  const s = await legacyInit(gw.url);
  const t0 = Date.now();
  const r = await s.request(7, 'tools/call', { name: 'hang', arguments: {} });
  const took = Date.now() - t0;
  assert.equal(r.status, 200, `HTTP ${r.status}: ${r.text.slice(0, 300)}`);
  assert.equal(r.response?.error?.code, -32003, r.text.slice(0, 300));
  assert.match(r.response.error.message, /time/i);
  assert.ok(took >= 900 && took < 10000, `answered after ${took} ms with timeout 1s`);
  // The upstream is still usable afterwards.
  const ok = await s.request(8, 'tools/call', { name: 'echo', arguments: { text: 'still here' } });
  assert.equal(ok.response?.result?.content?.[0]?.text, 'still here');
  await s.close();
});

test('a client that stops halfway through its headers is disconnected after read_timeout', { skip, timeout: 30000 }, async () => {
  const half = Buffer.from(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${gw.port}\r\nContent-Type: appli`);
  const ms = await timeUntilClosed(gw.port, half, 10000);
  assert.ok(ms !== null, 'connection still open after 10 s');
  assert.ok(ms >= 500, `closed after ${ms} ms, before the 1 s read timeout could have run`);
  // The gateway still serves others.
  const s = await legacyInit(gw.url);
  await s.close();
});

// HTTP/1.0 has no chunked encoding: ending such a stream with nothing left
// to send lets libevent finish the reply, free the request and close the
// connection at once, inside the call that ends it. The gateway must not
// touch (or free) the exchange twice then.
test('a session deleted while an HTTP/1.0 client holds its GET stream: the gateway stays up', { skip, timeout: 30000 }, async () => {
  const s = await legacyInit(gw.url);
  const sock = connect(gw.port, '127.0.0.1');
  let got = '';
  const closed = new Promise((r) => sock.on('close', r));
  sock.on('data', (d) => (got += d));
  sock.on('error', () => {});
  await new Promise((r) => sock.on('connect', r));
  sock.write(`GET /mcp HTTP/1.0\r\nHost: 127.0.0.1:${gw.port}\r\nAccept: text/event-stream\r\n` +
    `Mcp-Session-Id: ${s.sessionId}\r\nMCP-Protocol-Version: ${s.version}\r\n\r\n`);
  for (let i = 0; i < 50 && !got.includes('\r\n\r\n'); i++) await sleep(20);
  assert.match(got, /^HTTP\/1\.[01] 200/, got.slice(0, 200));
  await sleep(100);
  assert.equal((await s.close()).status, 200);
  await closed; // the stream ends with the session
  assert.equal(gw.exited, null, 'the gateway is still running');
  const again = await legacyInit(gw.url);
  assert.ok(again.sessionId, 'and still serves');
  await again.close();
});

// A client that never answers its upstream's requests: the session's table
// of open requests stops at max_pending_per_client; past it the upstream's
// request is refused (the tool sees an error), not queued without end.
test('unanswered elicitations stop at the per-client cap', { skip, timeout: 30000 }, async () => {
  const g = await startGateway({
    limits: { max_pending_per_client: 2 },
    upstreams: [{ name: 'up', prefix: '', command: command(), timeout: '300ms' }],
  });
  try {
    const s = await legacyInit(g.url, { capabilities: { elicitation: {} } });
    const seen = [];
    for (let i = 1; i <= 3; i++) {
      const st = await openStream(g.url, { headers: s.headers,
        body: { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'elicit', arguments: {} } } });
      const first = await st.next(5000);
      seen.push(first?.method ?? first?.result?.content?.[0]?.text ?? first?.error?.code);
      if (first?.method) assert.equal((await st.next(5000))?.error?.code, -32003, 'the unanswered call times out');
    }
    assert.deepEqual(seen, ['elicitation/create', 'elicitation/create', 'error']);
    assert.ok(g.logs.some((l) => /unanswered requests from upstreams/.test(l.msg)));
  } finally {
    await g.stop();
  }
});

// A tools/call of `elicit` on session s, as a stream.
const elicit = (s, id) => openStream(gw.url, { headers: s.headers,
  body: { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'elicit', arguments: {} } } });

// The same once the restarted child answers: { st, q } with q its
// elicitation/create.
async function elicitOnceReady(s) {
  let st, q;
  for (let i = 0; i < 50 && q?.method !== 'elicitation/create'; i++) {
    st = await elicit(s, 100 + i);
    q = await st.next(5000);
    if (q?.method !== 'elicitation/create') await sleep(200);
  }
  return { st, q };
}

// A child restarts while a client still owes it an answer; the new child's
// request ids start over. The late answer must not answer the new child's
// request of the same id (another client's).
test('a late answer to a request of a child that restarted reaches nobody', { skip, timeout: 60000 }, async () => {
  const ans = (s, id, answer) => fetch(gw.url, { method: 'POST',
    headers: { ...s.headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id, result: { action: 'accept', content: { answer } } }) });
  const a = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
  const b = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
  const stA = await elicit(a, 1);
  const qA = await stA.next(5000);
  assert.equal(qA?.method, 'elicitation/create');
  const mark = gw.logs.length;
  const pid = await gw.upstreamPid('up');
  process.kill(pid, 'SIGKILL');
  assert.ok((await stA.next(5000))?.error, 'A\'s call fails with the child');
  await gw.upstreamPid('up', { after: mark, timeoutMs: 15000 });
  const { st: stB, q: qB } = await elicitOnceReady(b);
  assert.equal(qB?.method, 'elicitation/create');
  assert.equal((await ans(a, qA.id, 'from-A')).status, 202);
  assert.ok(await stB.none(700), 'B\'s call did not complete with A\'s answer');
  assert.equal((await ans(b, qB.id, 'from-B')).status, 202);
  const done = await stB.next(5000);
  assert.equal(done?.result?.content?.[0]?.text, '{"answer":"from-B"}');
  await a.close();
  await b.close();
});

// The same after a restart, when the session that still owes the answer
// ends: its "session ended" error must not answer the new child's request
// of the same id (another client's).
test('a session ending after its upstream restarted answers nothing of the new child', { skip, timeout: 60000 }, async () => {
  const a = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
  const b = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
  const stA = await elicit(a, 1);
  assert.equal((await stA.next(5000))?.method, 'elicitation/create');
  const mark = gw.logs.length;
  process.kill(await gw.upstreamPid('up'), 'SIGKILL');
  assert.ok((await stA.next(5000))?.error);
  await gw.upstreamPid('up', { after: mark, timeoutMs: 15000 });
  const { st: stB, q: qB } = await elicitOnceReady(b);
  assert.equal(qB?.method, 'elicitation/create');
  assert.equal((await a.close()).status, 200);
  assert.ok(await stB.none(700), 'B\'s call was not answered by A\'s session ending');
  const r = await fetch(gw.url, { method: 'POST',
    headers: { ...b.headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: qB.id, result: { action: 'accept', content: { answer: 'mine' } } }) });
  assert.equal(r.status, 202);
  assert.equal((await stB.next(5000))?.result?.content?.[0]?.text, '{"answer":"mine"}');
  await b.close();
});

test('a client that stops reading its SSE stream: progress is dropped past the backlog, the answer is not', { skip, timeout: 120000 }, async () => {
  const g = await startGateway({
    log_level: 'info',
    upstreams: [{ name: 'up', prefix: '', command: command(), timeout: '60s' }],
  });
  try {
    const s = await legacyInit(g.url);
    const steps = 90000; // ~12 MB of progress events: past the kernel's buffers and the 4 MiB backlog
    const body = JSON.stringify({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'progress', arguments: { steps, ms: 0 }, _meta: { progressToken: 'p' } } });
    const u = new URL(g.url);
    const sock = connect(Number(u.port), u.hostname);
    await new Promise((r, j) => { sock.once('connect', r); sock.once('error', j); });
    sock.pause(); // read nothing until the upstream is done
    sock.write(`POST ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nContent-Type: application/json\r\n` +
      `Accept: application/json, text/event-stream\r\nMcp-Session-Id: ${s.sessionId}\r\n` +
      `MCP-Protocol-Version: ${s.version}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
    // The first event dropped proves the backlog is full; it stays full
    // while nobody reads, so the answer, which comes after every step,
    // arrives past it.
    await g.waitForLog((r) => /stopped reading its stream/.test(r.msg ?? ''), { timeoutMs: 60000 });
    // The upstream says on stderr when its answer has left (mini_upstream).
    await g.waitForLog((r) => /progress done/.test(r.msg ?? ''), { timeoutMs: 60000 });
    await sleep(500); // the gateway reads the answer and queues it
    let text = '';
    const done = new Promise((resolve) => {
      sock.on('data', (d) => {
        text += d.toString('latin1');
        if (text.includes('"id":5,"result"') || text.includes('"id":5,"error"')) resolve();
      });
      sock.on('close', resolve);
    });
    sock.resume();
    await done;
    sock.destroy();
    const events = text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => { try { return JSON.parse(l.slice(6)); } catch { return null; } });
    const progress = events.filter((m) => m?.method === 'notifications/progress').length;
    const answer = events.find((m) => m?.id === 5);
    assert.ok(progress < steps, `events were dropped (${progress} of ${steps} progress events arrived)`);
    assert.ok(answer?.result, `the answer arrived whole: ${JSON.stringify(answer)?.slice(0, 200)}`);
    assert.equal(answer.result.content[0].text, 'progress done');
    // One warning for the stream, not one per dropped event.
    assert.equal(g.logs.filter((r) => /stopped reading its stream/.test(r.msg ?? '')).length, 1);
    await s.close();
  } finally {
    await g.stop();
  }
});

test('quiet streams stay open past read_timeout: a session\'s GET, a listen stream and a POST turned SSE each get their late message', { skip, timeout: 60000 }, async () => {
  // read_timeout 1s: once a reply has started, evhttp reads the socket and
  // its timeout used to cut any stream quiet for that long.
  const g = await startGateway({
    limits: { read_timeout: '1s' },
    upstreams: [{ name: 'up', command: command(), timeout: '30s' }],
  });
  try {
    const s = await legacyInit(g.url);
    const get = await openStream(g.url, { method: 'GET', headers: s.headers });
    assert.ok((await s.request(1, 'resources/subscribe', { uri: 'up+mini://hello' })).response?.result);
    const listen = await openStream(g.url, {
      body: { jsonrpc: '2.0', id: 'L', method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true }, _meta: modernMeta() } },
      headers: { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'subscriptions/listen' },
    });
    assert.equal((await listen.next())?.method, 'notifications/subscriptions/acknowledged');
    // A call that reports progress at once, then nothing for 3 s.
    const slow = await openStream(g.url, {
      body: { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'up__progress', arguments: { steps: 1, ms: 3000 }, _meta: { progressToken: 't' } } },
      headers: s.headers,
    });
    assert.equal((await slow.next())?.method, 'notifications/progress');
    await sleep(3500);
    const answer = await slow.next(5000);
    assert.equal(answer?.result?.content?.[0]?.text, 'progress done', 'the answer after a quiet spell');
    assert.equal((await s.request(3, 'tools/call', { name: 'up__touch', arguments: { uri: 'mini://hello' } })).response.result.content[0].text, 'updated');
    assert.equal((await get.next(5000))?.method, 'notifications/resources/updated', 'the GET stream is still open');
    assert.ok((await s.request(4, 'tools/call', { name: 'up__list_changed', arguments: {} })).response.result);
    assert.equal((await listen.next(5000))?.method, 'notifications/tools/list_changed', 'the listen stream is still open');
    get.abort();
    listen.abort();
    await s.close();
  } finally {
    await g.stop();
  }
});

test('an answer with \\u0000 or a lone surrogate (legal JSON) does not kill the child every client shares', { skip, timeout: 30000 }, async () => {
  const s = await legacyInit(gw.url);
  const calls = async (id) => Number((await s.request(id, 'tools/call', { name: 'calls', arguments: {} })).response.result.content[0].text);
  const before = await calls(1);
  const r = await s.request(2, 'tools/call', { name: 'binary', arguments: {} });
  assert.equal(r.response?.result?.content?.[0]?.text, 'a\ufffdb\ufffdc', r.text);
  // The same child answers next: its count went on (a restart starts at 1).
  assert.equal(await calls(3), before + 2);
  assert.ok(gw.logs.some((l) => /escape\(s\) the gateway does not pass on/.test(l.msg ?? '')));
  await s.close();
});

test('out of descriptors, the gateway pauses accepting instead of spinning, and serves again once they are free', { skip, timeout: 60000 }, async () => {
  // accept() failing with EMFILE leaves the connection in the backlog:
  // the listener was readable again at once, the loop spun at full CPU and
  // libevent logged a line per turn, as long as a flood held descriptors.
  const g = await startGateway({ upstreams: [] }, { wrapper: ['sh', '-c', 'ulimit -n 48 && exec "$@"', 'sh'] });
  const socks = [];
  try {
    for (let i = 0; i < 80; i++) {
      const s = connect({ port: g.port, host: '127.0.0.1' });
      s.on('error', () => {});
      socks.push(s);
    }
    await g.waitForLog((l) => /accept failed/.test(l.msg ?? ''), { timeoutMs: 10000 });
    const ticks = () => Number(readFileSync(`/proc/${g.pid}/stat`, 'utf8').split(') ')[1].split(' ').slice(11, 13).reduce((a, b) => a + Number(b), 0));
    const t0 = ticks();
    await new Promise((r) => setTimeout(r, 2000));
    const used = ticks() - t0; // clock ticks (100/s) over 2 s: 200 is a whole core
    assert.ok(used < 100, `the gateway used ${used} ticks of CPU in 2 s while out of descriptors`);
    assert.ok(!g.stderr.includes('Error from accept() call'), 'no line per failed accept');
    assert.ok(g.logs.filter((l) => /accept failed/.test(l.msg ?? '')).length <= 1, 'said once');
    for (const s of socks) s.destroy();
    socks.length = 0;
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await fetch(`http://127.0.0.1:${g.adminPort}/healthz`).catch(() => ({ status: 0 }))).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 200, 'serves again');
  } finally {
    for (const s of socks) s.destroy();
    await g.stop();
  }
});

// A raw connection: resolves 'closed' with the ms it lived, or keeps
// trickling bytes (one every `every` ms) until `maxMs`, then null.
function trickle(port, bytes, { every = 400, maxMs = 8000 } = {}) {
  return new Promise((resolve) => {
    const start = Date.now();
    const sock = connect({ port, host: '127.0.0.1' });
    let i = 0;
    let tick;
    const done = (v) => {
      clearInterval(tick);
      clearTimeout(stop);
      sock.destroy();
      resolve(v);
    };
    const stop = setTimeout(() => done(null), maxMs);
    sock.on('connect', () => {
      tick = setInterval(() => {
        if (i < bytes.length) sock.write(bytes.subarray(i, i + 1));
        i++;
      }, every);
    });
    sock.on('data', () => {});
    sock.on('error', () => {});
    sock.on('close', () => done(Date.now() - start));
  });
}

const idleConn = (port) => new Promise((resolve) => {
  const s = connect({ port, host: '127.0.0.1' });
  s.on('error', () => {});
  s.closedAt = null;
  s.on('close', () => (s.closedAt = Date.now()));
  s.on('connect', () => resolve(s));
});

test('slowloris: a request trickled a byte at a time is cut at request_timeout, however often the bytes come', { skip, timeout: 60000 }, async () => {
  // read_timeout (inactivity) never fires: a byte comes every 400 ms.
  const g = await startGateway({ limits: { read_timeout: '10s', request_timeout: '2s' }, upstreams: [] });
  try {
    const head = Buffer.from(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${g.port}\r\nContent-Type: application/json\r\n${'X-Pad: y\r\n'.repeat(50)}`);
    const lived = await trickle(g.port, head, { every: 400, maxMs: 8000 });
    assert.ok(lived !== null && lived < 6000, `the connection lived ${lived} ms`);
    // An answer that takes longer than request_timeout is not cut: only
    // the time to send the request counts.
    const g2 = await startGateway({ limits: { request_timeout: '1s' }, upstreams: [{ name: 'up', command: command(), timeout: '10s' }] });
    try {
      const s = await legacyInit(g2.url);
      const r = await s.request(2, 'tools/call', { name: 'up__sleep', arguments: { ms: 2500 } });
      assert.ok(r.response?.result, r.text);
      await s.close();
    } finally {
      await g2.stop();
    }
  } finally {
    await g.stop();
  }
});

// A non-loopback address of this machine (loopback shares nothing: the
// per-address share does not apply to it).
const hostAddr = Object.values(networkInterfaces()).flat().find((a) => !a.internal && a.family === 'IPv4')?.address;

test('connections are capped per address: the newest idle ones go; loopback is exempt', { skip: skip || (!hostAddr && 'this machine has no non-loopback IPv4 address'), timeout: 60000 }, async () => {
  // A network listener must have TLS or trusted proxies; a proxy list
  // that does not match us leaves our address an ordinary client.
  // A network listener also needs authentication: API keys, with a store
  // made by the CLI.
  const d = mkdtempSync(join(tmpdir(), 'portcullis-conns-'));
  writeFileSync(join(d, 'pepper'), randomBytes(32).toString('hex'), { mode: 0o600 });
  const auth = { api_keys: { store: join(d, 'keys.db'), pepper: `\${file:${join(d, 'pepper')}}` } };
  writeFileSync(join(d, 'cli.yaml'), toYaml({ auth }));
  const mk = spawnSync(PORTCULLIS_BIN, ['keys', 'create', '--principal', 'x', '-c', join(d, 'cli.yaml')], { encoding: 'utf8' });
  assert.equal(mk.status, 0, mk.stderr);
  const mk2 = spawnSync('bash', [join(ROOT, 'tests/tls/make-certs.sh'), join(d, 'pki')], { encoding: 'utf8', env: { ...process.env, CERT_DAYS: '365' } });
  assert.equal(mk2.status, 0, mk2.stderr);
  const key = JSON.parse(spawnSync(PORTCULLIS_BIN, ['keys', 'create', '--principal', 'y', '--json', '-c', join(d, 'cli.yaml')], { encoding: 'utf8' }).stdout).key;
  const g = await startGateway({
    auth,
    listen: `${hostAddr}:0`,
    tls: { cert: join(d, 'pki', 'server.crt'), key: join(d, 'pki', 'server.key') },
    limits: { max_connections_per_source: 4 },
    upstreams: [{ name: 'up', command: command(), timeout: '10s' }],
  });
  const socks = [];
  const idleAt = (host, port) => new Promise((resolve) => {
    const s = connect({ port, host });
    s.on('error', () => {});
    s.closedAt = null;
    s.on('close', () => (s.closedAt = Date.now()));
    s.on('connect', () => resolve(s));
  });
  try {
    for (let i = 0; i < 6; i++) socks.push(await idleAt(hostAddr, g.port));
    for (let i = 0; i < 40 && socks.filter((s) => s.closedAt).length < 2; i++) await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(socks.map((s) => s.closedAt !== null), [false, false, false, false, true, true]);
    assert.ok(g.logs.some((l) => /max_connections_per_source/.test(l.msg ?? '')));
    for (const s of socks) s.destroy();
    socks.length = 0;
    await new Promise((r) => setTimeout(r, 600));
    // Calls being answered are never cut for the share: six at once, each
    // on its own connection, all answered.
    const call = (id) => new Promise((resolve, reject) => {
      const body = JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'up__sleep', arguments: { ms: 1500 }, _meta: modernMeta() } });
      const req = httpsRequest({
        host: hostAddr, port: g.port, path: '/mcp', method: 'POST', rejectUnauthorized: false, agent: false,
        headers: { host: 'localhost', authorization: `Bearer ${key}`, 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'content-length': Buffer.byteLength(body), 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/call', 'mcp-name': 'up__sleep' },
      }, (res) => {
        let t = '';
        res.on('data', (c) => (t += c));
        res.on('end', () => resolve({ status: res.statusCode, text: t }));
      });
      req.on('error', reject);
      req.end(body);
    });
    const all = await Promise.all([1, 2, 3, 4, 5, 6].map(call));
    for (const r of all) assert.equal(r.status, 200, r.text);
  } finally {
    for (const s of socks) s.destroy();
    await g.stop();
    rmSync(d, { recursive: true, force: true });
  }
});

test('connections are capped in all: new ones wait until some close', { skip, timeout: 60000 }, async () => {
  // Loopback has no per-address share: 6 connections from it stay.
  const h = await startGateway({ limits: { max_connections: 6, max_connections_per_source: 2 }, upstreams: [] });
  const socks = [];
  try {
    // All at once: the listener pauses as the sixth is counted, not at
    // the next sweep (a burst would overshoot by what arrived meanwhile).
    socks.push(...(await Promise.all([1, 2, 3, 4, 5, 6].map(() => idleConn(h.port)))));
    const ping = () => fetch(`http://127.0.0.1:${h.port}/mcp`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }),
    });
    let answered = false;
    const waiting = ping().then((r) => { answered = true; return r; });
    await new Promise((r) => setTimeout(r, 1000));
    assert.equal(answered, false, 'a seventh connection waits');
    assert.ok(h.logs.some((l) => /limits.max_connections/.test(l.msg ?? '')));
    assert.equal(socks.filter((s) => s.closedAt).length, 0, 'loopback is not held to the per-address share');
    socks.shift().destroy();
    const r = await waiting;
    assert.equal(r.status, 200);
  } finally {
    for (const s of socks) s.destroy();
    await h.stop();
  }
});
