// API keys end to end: the real binary, keys made with `portcullis keys`,
// the official SDK clients (v1 legacy, v2 pinned to 2026-07-28) carrying
// the key, and the attacker's view: no key, a wrong one, a revoked,
// rotated-out or expired one, a key in the query string, another
// principal's session id, a flood of bad keys. Refused requests must never
// reach the upstream, and the upstream never sees the client's key.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as HttpV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as ClientV2, StreamableHTTPClientTransport as HttpV2 } from '@modelcontextprotocol/client';
import { keySecret, startGateway, toYaml } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, post, modernRequest, modernMeta, MODERN_VERSION } from '../lib/mcp.mjs';
import { buildRequest, rawRequest } from '../lib/rawhttp.mjs';
import { openStream } from '../lib/stream.mjs';

let dir, gw, auth, cliCfg;

function keys(...args) {
  const r = spawnSync(PORTCULLIS_BIN, ['keys', ...args, '-c', cliCfg], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`keys ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return r;
}
function createKey(principal, extra = []) {
  const r = keys('create', '--principal', principal, '--json', ...extra);
  return JSON.parse(r.stdout);
}
const bearer = (k) => ({ authorization: `Bearer ${k}` });

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-auth-'));
  writeFileSync(join(dir, 'pepper'), randomBytes(32).toString('hex'), { mode: 0o600 });
  auth = {
    api_keys: { store: join(dir, 'keys.db'), pepper: `\${file:${join(dir, 'pepper')}}` },
    failed_auth: { max_failures: 20, window: '60s' },
  };
  cliCfg = join(dir, 'cli.yaml');
  writeFileSync(cliCfg, toYaml({ auth }));
  createKey('bootstrap'); // creates the store before the gateway opens it
  gw = await startGateway({
    auth,
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
});
after(async () => {
  await gw?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function calls(key) {
  const s = await legacyInit(gw.url, { headers: bearer(key) });
  const r = await post(gw.url, { jsonrpc: '2.0', id: 99, method: 'tools/call', params: { name: 'up__calls', arguments: {} } }, { ...s.headers, ...bearer(key) });
  return Number(r.response.result.content[0].text);
}

test('without credentials: 401 with a Bearer challenge, nothing reaches the upstream', async () => {
  const alice = createKey('alice');
  const before = await calls(alice.key);
  const r = await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
  assert.equal(r.status, 401);
  assert.match(r.headers.get('www-authenticate'), /^Bearer /);
  assert.equal(r.response?.error?.code ?? JSON.parse(r.text).error.code, -32006);
  const m = await modernRequest(gw.url, 2, 'tools/call', { name: 'up__echo', arguments: { text: 'x' } });
  assert.equal(m.status, 401);
  assert.equal(await calls(alice.key), before + 1, 'only our own counting call reached the upstream');
});

test('SDK v1 and v2 clients connect with an API key and call a tool', async () => {
  const alice = createKey('alice-sdk', ['--roles', 'reader']);
  const v1 = new ClientV1({ name: 't', version: '1' });
  await v1.connect(new HttpV1(new URL(gw.url), { requestInit: { headers: bearer(alice.key) } }));
  const r1 = await v1.callTool({ name: 'up__echo', arguments: { text: 'v1' } });
  assert.equal(r1.content[0].text, 'v1');
  await v1.close();

  const v2 = new ClientV2({ name: 't', version: '1' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await v2.connect(new HttpV2(new URL(gw.url), { requestInit: { headers: bearer(alice.key) } }));
  const r2 = await v2.callTool({ name: 'up__echo', arguments: { text: 'v2' } });
  assert.equal(r2.content[0].text, 'v2');
  await v2.close();
});

test('wrong, malformed, revoked, rotated-out and expired keys are refused', async () => {
  const k = createKey('carol');
  const ok = (key) => post(gw.url, { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }, bearer(key));
  assert.equal((await ok(k.key)).status, 200);
  // Same id, other secret.
  const forged = k.key.slice(0, -4) + (k.key.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  assert.equal((await ok(forged)).status, 401);
  assert.equal((await ok('pcs_nothex_x')).status, 401);

  // Rotation with a grace window: both secrets work, then only the new one.
  // Whole seconds again: 3 s of grace is at least 2 s of real time.
  const rot = JSON.parse(keys('rotate', k.id, '--grace', '3s', '--json').stdout);
  assert.equal(rot.id, k.id);
  assert.equal((await ok(k.key)).status, 200, 'old secret inside its grace window');
  assert.equal((await ok(rot.key)).status, 200, 'new secret');
  await new Promise((r) => setTimeout(r, 3200));
  assert.equal((await ok(k.key)).status, 401, 'old secret after the grace window');
  assert.equal((await ok(rot.key)).status, 200);

  // Revocation while the gateway runs takes effect on the next request.
  const rv = keys('revoke', k.id);
  assert.equal((await ok(rot.key)).status, 401);
  // Key lifecycle is logged as security events (never the secret).
  const ev = rv.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
  assert.ok(ev.some((e) => e.msg === 'api key revoked' && e.key_id === k.id && e.principal === 'carol'));
  assert.ok(!rv.stderr.includes(keySecret(rot.key)));

  // Expiry is kept in whole seconds and the CLI under ASan is slow on a
  // loaded machine: 3 s leaves room for the first call to land in time.
  const short = createKey('dave', ['--expires', '3s']);
  assert.equal((await ok(short.key)).status, 200);
  await new Promise((r) => setTimeout(r, 3100));
  assert.equal((await ok(short.key)).status, 401, 'expired');
  assert.ok(gw.logs.some((l) => l.msg === 'authentication refused' && l.reason === 'apikey.revoked'));
  assert.ok(gw.logs.some((l) => l.msg === 'authentication refused' && l.reason === 'apikey.expired'));
});

test('a key in the query string is refused even when it is valid, however it is spelt', async () => {
  const k = createKey('erin');
  const e = encodeURIComponent(k.key);
  for (const q of [`access_token=${e}`, `x&api%5Fkey=${e}`, `API_KEY=${e}`, `k=${e}`, `x=%00&access_token=${e}`]) {
    const res = await fetch(`${gw.url}?${q}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...bearer(k.key) },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }),
    });
    assert.equal(res.status, 401, q);
  }
});

test("another principal presenting a session id gets 404, and it is logged", async () => {
  const a = createKey('frank');
  const b = createKey('grace');
  const s = await legacyInit(gw.url, { headers: bearer(a.key) });
  const mine = await post(gw.url, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { ...s.headers, ...bearer(a.key) });
  assert.equal(mine.status, 200);
  const theirs = await post(gw.url, { jsonrpc: '2.0', id: 2, method: 'tools/list' }, { ...s.headers, ...bearer(b.key) });
  assert.equal(theirs.status, 404);
  assert.ok(gw.logs.some((l) => /session id presented by principal 'grace'/.test(l.msg)));
  // The owner's session is unharmed.
  assert.equal((await post(gw.url, { jsonrpc: '2.0', id: 3, method: 'tools/list' }, { ...s.headers, ...bearer(a.key) })).status, 200);
});

test('the upstream never sees the client key', async () => {
  const k = createKey('heidi');
  const s = await legacyInit(gw.url, { headers: bearer(k.key) });
  const env = await post(gw.url, { jsonrpc: '2.0', id: 5, method: 'tools/call', params: { name: 'up__env', arguments: {} } }, { ...s.headers, ...bearer(k.key) });
  const meta = await post(gw.url, { jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'up__meta', arguments: {}, _meta: { progressToken: 'p' } } }, { ...s.headers, ...bearer(k.key) });
  const secret = keySecret(k.key);
  for (const r of [env, meta]) {
    const text = JSON.stringify(r.response.result);
    assert.ok(!text.includes(secret), 'no secret in what the upstream saw');
    assert.ok(!/authorization|bearer/i.test(text), 'no Authorization header passed on');
  }
  assert.ok(!gw.stderr.includes(secret), 'and the key is not in the gateway log');
});

test('repeated failures from one source get 429 with Retry-After before any key check', async () => {
  const k = createKey('ivan');
  const bad = (i) => post(gw.url, { jsonrpc: '2.0', id: i, method: 'tools/list' }, bearer(`pcs_0123456789abcdef_${'A'.repeat(43)}`));
  // Earlier tests spent part of this source's budget of 20: count up to the
  // refusal rather than assume where it starts.
  const seen = [];
  let r;
  for (let i = 0; i < 22; i++) {
    r = await bad(i);
    seen.push(r.status);
    if (r.status !== 401) break;
  }
  assert.ok(seen.length >= 2 && seen.slice(0, -1).every((s) => s === 401), `statuses ${seen}`);
  assert.equal(r.status, 429);
  const ra = Number(r.headers.get('retry-after'));
  assert.ok(ra >= 1 && ra <= 60, `Retry-After ${ra}`);
  // Throttled even with a good key: the source is locked out for the window.
  const good = await post(gw.url, { jsonrpc: '2.0', id: 7, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }, bearer(k.key));
  assert.equal(good.status, 429);
});

test('one principal cannot take every session: past max_sessions_per_principal its initialize is 429, others still get theirs', async () => {
  const gw2 = await startGateway({
    auth,
    limits: { max_sessions: 8, max_sessions_per_principal: 3 },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const mallory = createKey('mallory');
    const bob = createKey('bob');
    const held = [];
    for (let i = 0; i < 3; i++) held.push(await legacyInit(gw2.url, { headers: bearer(mallory.key) }));
    const init = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } };
    const fourth = await post(gw2.url, init, bearer(mallory.key));
    assert.equal(fourth.status, 429, fourth.text);
    assert.equal(fourth.headers.get('retry-after'), '5');
    assert.equal(fourth.headers.get('mcp-session-id'), null, 'no session handed out');
    assert.match(fourth.response.error.message, /Too many sessions open for this principal/);
    const b = await legacyInit(gw2.url, { headers: bearer(bob.key) });
    assert.ok(b.sessionId, 'another principal still gets a session');
    // Ending one of its sessions frees its slot.
    assert.equal((await held[0].close()).status, 200);
    assert.ok((await legacyInit(gw2.url, { headers: bearer(mallory.key) })).sessionId);
  } finally {
    await gw2.stop();
  }
});

test('modern clients: the in-flight cap counts per principal, not per address, and an open listen stream takes a place', async () => {
  const gw2 = await startGateway({
    auth,
    limits: { max_pending_per_client: 2 },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  const call = (key, id, name, args) => post(gw2.url,
    { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, _meta: modernMeta() } },
    { ...bearer(key), 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/call', 'mcp-name': name });
  const streams = [];
  try {
    const a = createKey('hog');
    const b = createKey('neighbour');
    // a: one slow call and one listen stream fill its two places.
    const slow = call(a.key, 1, 'up__sleep', { ms: 1500 });
    const ctl = new AbortController();
    streams.push(ctl);
    const listen = await fetch(gw2.url, { method: 'POST', signal: ctl.signal,
      headers: { ...bearer(a.key), 'content-type': 'application/json', accept: 'application/json, text/event-stream',
        'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'subscriptions/listen' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true }, _meta: modernMeta() } }) });
    assert.equal(listen.status, 200);
    await new Promise((r) => setTimeout(r, 200));
    const third = await call(a.key, 3, 'up__echo', { text: 'one too many' });
    assert.equal(third.status, 429, third.text);
    // b, from the same address, is not held back by a's calls.
    const other = await call(b.key, 4, 'up__echo', { text: 'next door' });
    assert.equal(other.status, 200, other.text);
    assert.equal(other.response.result.content[0].text, 'next door');
    assert.ok((await slow).response.result);
    ctl.abort();
  } finally {
    streams.forEach((c) => c.abort());
    await gw2.stop();
  }
});

test('a key store that cannot answer: 503 "unavailable", never "invalid credentials", and it does not throttle the caller', async () => {
  const { DatabaseSync } = await import('node:sqlite');
  const d = mkdtempSync(join(tmpdir(), 'portcullis-auth-broken-'));
  writeFileSync(join(d, 'pepper'), randomBytes(32).toString('hex'), { mode: 0o600 });
  const a2 = { api_keys: { store: join(d, 'keys.db'), pepper: `\${file:${join(d, 'pepper')}}` },
    failed_auth: { max_failures: 3, window: '60s' } };
  const cli = join(d, 'cli.yaml');
  writeFileSync(cli, toYaml({ auth: a2 }));
  const made = spawnSync(PORTCULLIS_BIN, ['keys', 'create', '--principal', 'ok', '--json', '-c', cli], { encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const key = JSON.parse(made.stdout).key;
  const g = await startGateway({ auth: a2, upstreams: [{ name: 'up', command: upstreamCommands.mini() }] });
  try {
    // The store breaks under the running gateway (here: its table goes).
    const db = new DatabaseSync(join(d, 'keys.db'));
    db.exec('DROP TABLE keys');
    db.close();
    for (let i = 0; i < 6; i++) {
      const r = await post(g.url, { jsonrpc: '2.0', id: i, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } }, bearer(key));
      assert.equal(r.status, 503, `attempt ${i}: ${r.text}`);
      assert.equal(r.headers.get('retry-after'), '1');
      assert.equal(JSON.parse(r.text).error.data.reason, 'auth.unavailable');
    }
  } finally {
    await g.stop();
    rmSync(d, { recursive: true, force: true });
  }
});

test('behind a trusted proxy the client is read from every X-Forwarded-For line: a client cannot pose as another and get it locked out', async () => {
  const k = createKey('xff');
  const g = await startGateway({
    auth: { ...auth, failed_auth: { max_failures: 3, window: '60s' } },
    trusted_proxies: ['127.0.0.1/32'],
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const init = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } } });
    const send = (lines, key) => rawRequest(g.port, buildRequest('POST', '/mcp', [
      ['Host', `127.0.0.1:${g.port}`], ['Content-Type', 'application/json'], ['Accept', 'application/json, text/event-stream'],
      ['Authorization', `Bearer ${key}`], ...lines.map((v) => ['X-Forwarded-For', v]),
    ], init));
    // The attacker (203.0.113.5) names a victim in its own line; the
    // proxy adds a line of its own with the address it saw.
    const forged = ['10.9.9.9', '127.0.0.1, 203.0.113.5'];
    const bad = `pcs_0123456789abcdef_${'A'.repeat(43)}`;
    const seen = [];
    for (let i = 0; i < 4; i++) seen.push((await send(forged, bad)).status);
    assert.deepEqual(seen, [401, 401, 401, 429]);
    assert.equal((await send(['10.9.9.9'], k.key)).status, 200, 'the victim is not locked out');
    assert.equal((await send(['203.0.113.5'], k.key)).status, 429, 'the attacker is');
    // 16 lines of its own push the proxy's line past the first 16: the
    // last lines are read, so the source is still the attacker (another
    // one here), never the proxy, which everyone behind it shares.
    const flood = [...Array(16).fill('10.9.9.9'), '198.51.100.77'];
    const seen2 = [];
    for (let i = 0; i < 4; i++) seen2.push((await send(flood, bad)).status);
    assert.deepEqual(seen2, [401, 401, 401, 429]);
    assert.equal((await send(['198.51.100.77'], k.key)).status, 429, 'the failures counted against the attacker');
    assert.equal((await send(['198.51.100.78'], k.key)).status, 200, 'another client behind the proxy is not locked out');
    // A chunked body could carry an X-Forwarded-For as a trailer, which
    // evhttp merges after the proxy's line: refused through a proxy.
    const chunked = Buffer.concat([
      Buffer.from(`POST /mcp HTTP/1.1\r\nHost: 127.0.0.1:${g.port}\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nAuthorization: Bearer ${k.key}\r\nX-Forwarded-For: 198.51.100.79\r\nTransfer-Encoding: chunked\r\n\r\n`),
      Buffer.from(`${init.length.toString(16)}\r\n${init}\r\n0\r\nX-Forwarded-For: 10.9.9.9\r\n\r\n`),
    ]);
    const te = await rawRequest(g.port, chunked);
    assert.equal(te.status, 411, te.body?.toString?.() ?? '');
  } finally {
    await g.stop();
  }
});

test('a held-open stream follows its key: revoked, its GET and listen streams end; a grant undone, its updates stop', async () => {
  const a = createKey('stream-a');
  const b = createKey('stream-b');
  const c = createKey('stream-c', ['--roles', 'toucher']);
  // read_timeout 2s: the keepalive, and with it the check, every second.
  const g = await startGateway({
    auth,
    limits: { read_timeout: '2s' },
    policy: {
      default_roles: ['base'],
      roles: {
        base: { tools: [{ match: 'up__echo', access: 'all' }] },
        toucher: { tools: [{ match: 'up__touch', access: 'all' }] },
        peek: { resources: ['up+mini://hello'] },
      },
    },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    // A: a session's GET stream and a modern listen stream.
    const sa = await legacyInit(g.url, { headers: bearer(a.key) });
    const getA = await openStream(g.url, { method: 'GET', headers: sa.headers });
    assert.equal(getA.status, 200);
    const listenA = await openStream(g.url, {
      body: { jsonrpc: '2.0', id: 'L', method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true }, _meta: modernMeta() } },
      headers: { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'subscriptions/listen', ...bearer(a.key) },
    });
    assert.equal((await listenA.next())?.method, 'notifications/subscriptions/acknowledged');
    keys('revoke', a.id);
    // Both end within a few keepalives.
    assert.ok(await getA.closed(8000), 'the GET stream ended');
    assert.ok(await listenA.closed(8000), 'the listen stream ended');
    await g.waitForLog((l) => /a stream of principal 'stream-a' ended: apikey.revoked/.test(l.msg ?? ''), { timeoutMs: 5000 });

    // B sees up+mini://hello only through a grant.
    keys('grant', b.id, 'peek', '--for', '1h');
    const sb = await legacyInit(g.url, { headers: bearer(b.key) });
    const getB = await openStream(g.url, { method: 'GET', headers: sb.headers });
    const listenB = await openStream(g.url, {
      body: { jsonrpc: '2.0', id: 'LB', method: 'subscriptions/listen', params: { notifications: { resourcesListChanged: true }, _meta: modernMeta() } },
      headers: { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'subscriptions/listen', ...bearer(b.key) },
    });
    assert.equal((await listenB.next())?.method, 'notifications/subscriptions/acknowledged');
    assert.ok((await post(g.url, { jsonrpc: '2.0', id: 1, method: 'resources/subscribe', params: { uri: 'up+mini://hello' } }, sb.headers)).response?.result);
    const sc = await legacyInit(g.url, { headers: bearer(c.key) });
    const touch = async (id) => (await post(g.url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'up__touch', arguments: { uri: 'mini://hello' } } }, sc.headers)).response?.result?.content?.[0]?.text;
    assert.equal(await touch(2), 'updated');
    assert.equal((await getB.next(5000))?.params?.uri, 'up+mini://hello', 'B hears it while granted');
    keys('ungrant', b.id, 'peek');
    await new Promise((r) => setTimeout(r, 2500)); // a keepalive or two: B makes no request
    // Its resource list lost hello: the keepalive's check tells it so.
    assert.equal((await getB.next(3000))?.method, 'notifications/resources/list_changed', 'B is told its list changed');
    assert.equal((await listenB.next(3000))?.method, 'notifications/resources/list_changed', 'so is its listen stream');
    assert.equal(await touch(3), 'updated');
    assert.ok(await getB.none(1500), 'B no longer hears of a resource it cannot see');
    getB.abort();
    listenB.abort();
  } finally {
    await g.stop();
  }
});

test('a held-open stream on a rotated key ends when its secret stops working; one on the new secret goes on', async () => {
  const k = createKey('stream-rot');
  const g = await startGateway({
    auth,
    limits: { read_timeout: '2s' }, // a keepalive, and with it the check, every second
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const sOld = await legacyInit(g.url, { headers: bearer(k.key) });
    const getOld = await openStream(g.url, { method: 'GET', headers: sOld.headers });
    assert.equal(getOld.status, 200);
    const rot = JSON.parse(keys('rotate', k.id, '--grace', '4s', '--json').stdout);
    const sNew = await legacyInit(g.url, { headers: bearer(rot.key) });
    const getNew = await openStream(g.url, { method: 'GET', headers: sNew.headers });
    assert.equal(getNew.status, 200);
    // Inside the grace window the old secret still works, held or not.
    assert.equal(await getOld.closed(1500), false, 'the old stream lives through the grace window');
    assert.ok(await getOld.closed(8000), 'the old stream ended after the grace window');
    await g.waitForLog((l) => /a stream of principal 'stream-rot' ended: apikey.rotated_out/.test(l.msg ?? ''), { timeoutMs: 5000 });
    assert.equal(await getNew.closed(2500), false, 'the stream on the new secret goes on');
    getNew.abort();
  } finally {
    await g.stop();
  }
});

test('two keys of one principal on one session: the roles follow the latest request, and the GET stream is not told of a change at every keepalive', async () => {
  const wide = createKey('flipper', ['--roles', 'toucher']);
  const narrow = createKey('flipper');
  const g = await startGateway({
    auth,
    limits: { read_timeout: '2s' }, // a keepalive, and with it the check, every second
    policy: {
      default_roles: ['base'],
      roles: { base: { tools: [{ match: 'up__echo', access: 'all' }] }, toucher: { tools: [{ match: 'up__touch', access: 'all' }] } },
    },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const s = await legacyInit(g.url, { headers: bearer(wide.key) });
    const get = await openStream(g.url, { method: 'GET', headers: s.headers });
    assert.equal(get.status, 200);
    // A request with the other key (same principal: same session).
    const other = { ...s.headers, ...bearer(narrow.key) };
    const r = await post(g.url, { jsonrpc: '2.0', id: 2, method: 'tools/list', params: {} }, other);
    assert.deepEqual(r.response.result.tools.map((t) => t.name), ['up__echo']);
    assert.equal((await get.next(3000))?.method, 'notifications/tools/list_changed', 'told once: up__touch left its list');
    // The stream's own (wide) key is re-checked at each keepalive; it no
    // longer sets the session's roles, so nothing flips back and forth.
    assert.equal(await get.next(3500), null, 'no list_changed at every keepalive');
    get.abort();
  } finally {
    await g.stop();
  }
});

test('a whole key pasted where an id belongs is not echoed by the keys command', () => {
  const k = createKey('paster');
  // Wherever it lands: the id, a second argument, the command, an option.
  for (const args of [['show', k.key], ['list', k.key], ['revoke', k.id, k.key], ['show', k.id, k.key],
    [k.key, k.id], ['rotate', k.id, `-${k.key}`]]) {
    const r = spawnSync(PORTCULLIS_BIN, ['keys', ...args, '-c', cliCfg], { encoding: 'utf8' });
    assert.notEqual(r.status, 0);
    assert.ok(!(r.stdout + r.stderr).includes(keySecret(k.key)), `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /secret not shown/);
  }
});
