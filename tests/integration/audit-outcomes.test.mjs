// Every outcome has its record, not only answered calls: notifications
// (accepted), a client's answers to a server-to-client request (allow, or
// deny when it answers nothing pending), a session's stream opened (GET)
// and its end (DELETE), and
// refusals before a request reaches the router (400, 404, 405, 406, 413,
// 415), each a deny with reason http.<status> (only a body over twice
// max_body_bytes is cut off by the HTTP library before the gateway sees
// the request: 413, no record); answered calls carry the
// exact size of what was sent back (bytes_out).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readAuditRecords } from '../lib/audit.mjs';
import { startGateway } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, upstreamCommands } from '../lib/paths.mjs';
import { ACCEPT, legacyInit, modernMeta, MODERN_VERSION, post } from '../lib/mcp.mjs';
import { buildRequest, rawRequest } from '../lib/rawhttp.mjs';
import { openStream } from '../lib/stream.mjs';

let dir, keyFile, logDir, records, bodies = {};

/** A fresh directory holding an audit key: `audit` is the config section. */
function freshAudit(prefix) {
  const d = mkdtempSync(join(tmpdir(), prefix));
  const kf = join(d, 'audit.key');
  writeFileSync(kf, randomBytes(32).toString('hex'), { mode: 0o600 });
  const ld = join(d, 'audit');
  return { d, kf, ld, audit: { dir: ld, key: `\${file:${kf}}` } };
}

before(async () => {
  const fa = freshAudit('portcullis-outcomes-');
  ({ d: dir, kf: keyFile, ld: logDir } = fa);
  const gw = await startGateway({
    audit: fa.audit,
    limits: { max_body_bytes: 4096 },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const s = await legacyInit(gw.url); // initialize + notifications/initialized
    const call = await s.request(1, 'tools/call', { name: 'up__echo', arguments: { text: 'measure me' } });
    bodies.call = call.text;
    bodies.callId = call.headers.get('x-request-id');
    // A resource URI longer than the record's fixed field, and a
    // completion (its target is in params.ref).
    bodies.longUri = `up+mini://item/${'x'.repeat(600)}`;
    const rd = await s.request(2, 'resources/read', { uri: bodies.longUri });
    assert.ok(rd.response?.result, rd.text);
    bodies.readId = rd.headers.get('x-request-id');
    const cp = await s.request(3, 'completion/complete', { ref: { type: 'ref/prompt', name: 'up__greet' }, argument: { name: 'name', value: 'x' } });
    bodies.completeId = cp.headers.get('x-request-id');
    // A session stream: opened, then the client goes away.
    const ctl = new AbortController();
    const get = await fetch(gw.url, { headers: { accept: 'text/event-stream', ...s.headers }, signal: ctl.signal });
    assert.equal(get.status, 200);
    ctl.abort();
    const raw = (method, headers, body) => fetch(gw.url, { method, headers, body });
    const json = { 'content-type': 'application/json', accept: ACCEPT };
    // Refused before routing.
    assert.equal((await raw('POST', json, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'tools/list' }))).status, 400, 'no session id');
    assert.equal((await raw('POST', { ...json, 'mcp-session-id': 'nope', 'mcp-protocol-version': '2025-11-25' }, JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list' }))).status, 404);
    const put = await raw('PUT', json, '{}');
    assert.equal(put.status, 405);
    bodies.refusalId = put.headers.get('x-request-id');
    assert.equal((await raw('POST', { 'content-type': 'application/json', accept: 'text/html' }, '{}')).status, 406);
    assert.equal((await raw('POST', { ...json, 'content-type': 'text/plain' }, '{}')).status, 415);
    const big = await raw('POST', json, '{"x":"' + 'y'.repeat(5000) + '"}');
    assert.equal(big.status, 413);
    assert.equal((await big.json()).error.message, 'Payload Too Large', 'the gateway\'s own answer');
    bodies.bigId = big.headers.get('x-request-id');
    // Past twice the limit the HTTP library refuses it alone (no record).
    assert.equal((await raw('POST', json, '{"x":"' + 'y'.repeat(9000) + '"}')).status, 413);
    // DNS rebinding: a foreign Host, a foreign Origin (before any
    // authentication: recorded without a principal).
    const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
    const hostR = await rawRequest(gw.port, buildRequest('POST', '/mcp', [['Host', 'evil.example'], ['Content-Type', 'application/json'], ['Accept', ACCEPT]], body));
    assert.equal(hostR.status, 403);
    const originR = await rawRequest(gw.port, buildRequest('POST', '/mcp', [['Host', `127.0.0.1:${gw.port}`], ['Origin', 'http://evil.example'], ['Content-Type', 'application/json'], ['Accept', ACCEPT]], body));
    assert.equal(originR.status, 403);
    // A 2025-03-26 batch: every member has its own record, the
    // notification among them too.
    const s25 = await legacyInit(gw.url, { version: '2025-03-26' });
    const b = await post(gw.url, [
      { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'in a batch' } } },
      { jsonrpc: '2.0', method: 'notifications/roots/list_changed' },
      { jsonrpc: '2.0', id: 12, method: 'tools/call', params: { name: 'up__nope', arguments: {} } },
      { jsonrpc: '2.0', id: 13, method: 'tools/list' },
    ], s25.headers);
    assert.equal(b.status, 200, b.text);
    assert.equal(b.messages.length, 3);
    bodies.batchId = b.headers.get('x-request-id');
    bodies.batchSession = s25.sessionId;
    // An upstream asks the client (elicitation): the client answers it,
    // answers it again (nothing pending any more), and answers a second
    // one with an error.
    const se = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
    bodies.elicitSession = se.sessionId;
    const answer = (id, body) => raw('POST', { ...json, ...se.headers }, JSON.stringify({ jsonrpc: '2.0', id, ...body }));
    const elicit = (id) => openStream(gw.url, { headers: se.headers,
      body: { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'up__elicit', arguments: {} } } });
    let st = await elicit(21);
    let q = await st.next(5000);
    assert.equal(q?.method, 'elicitation/create');
    const ok = await answer(q.id, { result: { action: 'accept', content: { answer: '42' } } });
    assert.equal(ok.status, 202);
    bodies.answerId = ok.headers.get('x-request-id');
    assert.equal((await st.next(5000))?.id, 21);
    assert.equal((await answer(q.id, { result: { action: 'accept', content: {} } })).status, 202);
    st = await elicit(22);
    q = await st.next(5000);
    assert.equal((await answer(q.id, { error: { code: -32001, message: 'user declined' } })).status, 202);
    assert.equal((await st.next(5000))?.id, 22);
    assert.equal((await se.close()).status, 200);
    // A modern notification.
    const n = await raw('POST', { ...json, 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'notifications/cancelled' },
      JSON.stringify({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 9, _meta: modernMeta() } }));
    assert.equal(n.status, 202);
    // The session ends.
    assert.equal((await s.close()).status, 200);
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  records = readAuditRecords(logDir)
    .filter((r) => r.type === 'request');
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('notifications are recorded as accepted, in both eras', () => {
  const n = records.filter((r) => r.status === 'accepted');
  assert.deepEqual(n.map((r) => [r.method, r.era]), [
    ['notifications/initialized', 'legacy'],
    ['notifications/initialized', 'legacy'], // the 2025-03-26 session
    ['notifications/roots/list_changed', 'legacy'], // inside the batch
    ['notifications/initialized', 'legacy'], // the elicitation's session
    ['notifications/cancelled', 'modern'],
  ]);
  assert.ok(n.every((r) => r.decision === 'allow'));
});

test("a client's answers to an upstream's request are recorded, with the method asked and the upstream", () => {
  const mine = records.filter((r) => r.session === bodies.elicitSession && r.method !== 'initialize' &&
    r.method !== 'notifications/initialized' && r.method !== 'DELETE');
  assert.deepEqual(mine.map((r) => [r.method, r.tool, r.upstream, r.decision, r.status, r.reason]), [
    ['elicitation/create', null, 'up', 'allow', 'ok', null], // answered before the call it serves
    ['tools/call', 'up__elicit', 'up', 'allow', 'ok', null],
    [null, null, null, 'deny', 'refused', 'response.unknown_id'], // the same answer again
    ['elicitation/create', null, 'up', 'allow', 'error', 'rpc.-32001'],
    ['tools/call', 'up__elicit', 'up', 'allow', 'ok', null],
  ], JSON.stringify(mine, null, 1));
  assert.equal(mine[0].request_id, bodies.answerId, 'the answer POST\'s own X-Request-Id');
  assert.ok(mine.filter((r) => r.method !== 'tools/call').every((r) => r.args === null),
    'nothing of what the client answered is in the log');
});

test('a session stream opened and a session deleted are recorded', () => {
  const get = records.find((r) => r.method === 'GET');
  const del = records.find((r) => r.method === 'DELETE' && r.session === get?.session);
  assert.ok(get && del, JSON.stringify(records.map((r) => r.method)));
  assert.equal(get.session, del.session);
  assert.equal(get.decision, 'allow');
  assert.equal(del.status, 'ok');
});

test('refusals before routing are recorded as deny with reason http.<status>, DNS-rebinding refusals as http.host / http.origin', () => {
  const denies = records.filter((r) => r.decision === 'deny').map((r) => r.reason).sort();
  assert.deepEqual(denies, ['http.400', 'http.404', 'http.405', 'http.406', 'http.413', 'http.415', 'http.host', 'http.origin',
    'response.unknown_id']);
  assert.equal(records.find((r) => r.reason === 'http.413').request_id, bodies.bigId);
  assert.ok(records.filter((r) => r.decision === 'deny').every((r) => r.status === 'refused' && r.source));
  assert.equal(records.find((r) => r.reason === 'http.origin').principal, null, 'before authentication: no principal');
});

test('each member of a 2025-03-26 batch has its own record', () => {
  const mine = records.filter((r) => r.session === bodies.batchSession && r.method !== 'initialize' &&
    r.method !== 'notifications/initialized');
  // The upstream is named when the call went to one: not for an unknown
  // tool, nor for what the gateway answers itself (lists, notifications).
  assert.deepEqual(mine.map((r) => [r.method, r.tool, r.upstream, r.decision, r.status, r.reason]).sort(), [
    ['notifications/roots/list_changed', null, null, 'allow', 'accepted', null],
    ['tools/call', 'up__echo', 'up', 'allow', 'ok', null],
    ['tools/call', 'up__nope', null, 'allow', 'error', 'rpc.-32602'],
    ['tools/list', null, null, 'allow', 'ok', null],
  ].sort(), JSON.stringify(mine, null, 1));
  const echo = mine.find((r) => r.tool === 'up__echo');
  assert.deepEqual(echo.args, { text: 'in a batch' });
  assert.equal(echo.era, 'legacy');
  assert.ok(echo.latency_us >= 0);
});

test('an answered call records the exact number of bytes sent back', () => {
  const call = records.find((r) => r.method === 'tools/call');
  assert.equal(call.bytes_out, Buffer.byteLength(bodies.call));
  assert.ok(call.bytes_in > 0);
});

test('the chain with all of these verifies', () => {
  const v = spawnSync(PORTCULLIS_BIN, ['audit', 'verify', '-k', keyFile, logDir], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

test('every record names its request: the X-Request-Id the client got, a batch member "<id>.<n>"', () => {
  const hex = /^[0-9a-f]{32}$/;
  assert.match(bodies.callId, hex);
  assert.match(bodies.refusalId, hex);
  // Opaque: ids do not count requests (no shared prefix, not close as numbers).
  assert.notEqual(bodies.callId.slice(0, 16), bodies.refusalId.slice(0, 16));
  const gap = BigInt('0x' + bodies.callId) - BigInt('0x' + bodies.refusalId);
  assert.ok(gap > 1n << 64n || -gap > 1n << 64n, 'ids are not a visible counter');
  const call = records.find((r) => r.method === 'tools/call' && r.tool === 'up__echo' && r.args.text === 'measure me');
  assert.equal(call.request_id, bodies.callId);
  assert.equal(records.find((r) => r.reason === 'http.405').request_id, bodies.refusalId);
  // Batch members, in the order they were sent (the notification is #2).
  const members = records.filter((r) => r.request_id?.startsWith(bodies.batchId + '.'));
  assert.deepEqual(members.map((r) => [r.request_id.slice(33), r.method, r.tool]).sort(), [
    ['1', 'tools/call', 'up__echo'],
    ['2', 'notifications/roots/list_changed', null],
    ['3', 'tools/call', 'up__nope'],
    ['4', 'tools/list', null],
  ]);
  // Every request record has one, and no two HTTP requests share one.
  assert.ok(records.every((r) => typeof r.request_id === 'string' && /^[0-9a-f]{32}(\.\d+)?$/.test(r.request_id)),
    JSON.stringify(records.filter((r) => !r.request_id), null, 1));
  const ids = records.filter((r) => !r.request_id.includes('.')).map((r) => r.request_id);
  assert.equal(new Set(ids).size, ids.length, 'ids are unique');
});

// Refusals that no stage of their own records: too many requests in flight
// for one client (the router does not take the call), a modern request
// for an unsupported protocol version (-32022), an initialize with bad
// params. Each is a deny with a reason, under the request's own id.
test('refusals before the router takes a request have their records too', async () => {
  const { d, kf, ld, audit } = freshAudit('portcullis-outcomes2-');
  const gw = await startGateway({
    audit,
    limits: { max_pending_per_client: 1 },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  const ids = {};
  try {
    const s = await legacyInit(gw.url);
    const slow = s.request(1, 'tools/call', { name: 'up__sleep', arguments: { ms: 1500 } });
    await new Promise((r) => setTimeout(r, 300));
    const busy = await s.request(2, 'tools/call', { name: 'up__echo', arguments: { text: 'one too many' } });
    assert.equal(busy.status, 429, busy.text);
    assert.equal(busy.headers.get('retry-after'), '1');
    ids.busy = busy.headers.get('x-request-id');
    assert.ok((await slow).response.result, 'the first call still completes');
    const json = { 'content-type': 'application/json', accept: ACCEPT };
    const old = await fetch(gw.url, { method: 'POST', headers: { ...json, 'mcp-protocol-version': '2099-01-01', 'mcp-method': 'tools/list' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list', params: { _meta: { ...modernMeta(), 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } } }) });
    assert.equal(old.status, 400);
    assert.equal((await old.json()).error.code, -32022);
    ids.version = old.headers.get('x-request-id');
    const bad = await fetch(gw.url, { method: 'POST', headers: json,
      body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'initialize', params: { protocolVersion: 42 } }) });
    assert.equal(bad.status, 400);
    ids.init = bad.headers.get('x-request-id');
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const recs = readAuditRecords(ld);
  const by = (id) => recs.find((r) => r.request_id === id);
  assert.deepEqual([by(ids.busy)?.method, by(ids.busy)?.tool, by(ids.busy)?.decision, by(ids.busy)?.reason],
    ['tools/call', 'up__echo', 'deny', 'limit.pending'], JSON.stringify(recs.filter((r) => r.type === 'request'), null, 1));
  assert.deepEqual([by(ids.version)?.decision, by(ids.version)?.reason], ['deny', 'http.400']);
  assert.deepEqual([by(ids.init)?.decision, by(ids.init)?.reason], ['deny', 'http.400']);
  const v = spawnSync(PORTCULLIS_BIN, ['audit', 'verify', '-k', kf, ld], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stdout + v.stderr);
  rmSync(d, { recursive: true, force: true });
});

test('a client that leaves mid-call (closing its connection, as a modern client cancels) leaves a record: cancelled', async () => {
  const { d, kf, ld, audit } = freshAudit('portcullis-outcomes3-');
  const gw = await startGateway({
    audit,
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  const gone = [];
  try {
    const s = await legacyInit(gw.url);
    const leave = async (headers, body) => {
      const ctrl = new AbortController();
      const p = fetch(gw.url, { method: 'POST', signal: ctrl.signal,
        headers: { 'content-type': 'application/json', accept: ACCEPT, ...headers }, body: JSON.stringify(body) }).catch(() => null);
      await new Promise((r) => setTimeout(r, 300));
      ctrl.abort();
      await p;
    };
    await leave(s.headers, { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'up__sleep', arguments: { ms: 5000, note: 'legacy-left' } } });
    gone.push('legacy');
    await leave({ 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/call', 'mcp-name': 'up__sleep' },
      { jsonrpc: '2.0', id: 8, method: 'tools/call', params: { name: 'up__sleep', arguments: { ms: 5000, note: 'modern-left' }, _meta: modernMeta() } });
    gone.push('modern');
    const until = Date.now() + 10000;
    let mine = [];
    while (mine.length < 2 && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 100));
      mine = readAuditRecords(ld).filter((r) => r.type === 'request' && r.tool === 'up__sleep');
    }
    assert.deepEqual(mine.map((r) => [r.era, r.status, r.decision, r.reason, r.args?.note]).sort(),
      [['legacy', 'cancelled', 'allow', 'client.closed', 'legacy-left'], ['modern', 'cancelled', 'allow', 'client.closed', 'modern-left']],
      JSON.stringify(mine, null, 1));
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const v = spawnSync(PORTCULLIS_BIN, ['audit', 'verify', '-k', kf, ld], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stdout + v.stdout);
  rmSync(d, { recursive: true, force: true });
});

test('a record names its target whole: a long resource URI uncut, a completion\'s prompt', () => {
  const by = (id) => records.find((r) => r.request_id === id);
  assert.equal(by(bodies.readId)?.tool, bodies.longUri);
  assert.equal(by(bodies.completeId)?.tool, 'up__greet');
  assert.equal(by(bodies.completeId)?.method, 'completion/complete');
});
