// Many clients using the same JSON-RPC ids at once: the gateway rewrites ids
// towards the upstream and must route every answer back to the client and
// request it belongs to.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../lib/gateway.mjs';
import { haveGateway, haveMiniUpstream, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, modernRequest, post } from '../lib/mcp.mjs';
import { openStream } from '../lib/stream.mjs';

const skip = haveGateway() ? false : 'gateway binary not built';
const N = 200;
let gw;

before(async () => {
  if (skip) return;
  const command = haveMiniUpstream() ? upstreamCommands.mini() : upstreamCommands.conformance();
  // Every test client is 127.0.0.1, one "client" to the per-client cap:
  // lift it above the 2 x N requests a test keeps in flight.
  gw = await startGateway({
    limits: { max_pending_per_client: 1024 },
    upstreams: [{ name: 'up', prefix: '', command, timeout: '20s' }],
  });
});
after(async () => {
  if (gw) await gw.stop();
});

/** Sends N echo calls with ids 1..N concurrently via send(id, text). */
async function burst(tag, send) {
  const results = await Promise.all(
    Array.from({ length: N }, (_, i) => {
      const id = i + 1;
      return send(id, `${tag}-${id}`).then((r) => ({ id, r }));
    }),
  );
  for (const { id, r } of results) {
    assert.equal(r.status, 200, `${tag} id ${id}: HTTP ${r.status} ${r.text.slice(0, 200)}`);
    assert.ok(r.response, `${tag} id ${id}: no response with that id in ${r.text.slice(0, 200)}`);
    assert.equal(r.response.result?.content?.[0]?.text, `${tag}-${id}`, `${tag} id ${id} got another's answer`);
    // Nothing else (another client's response) rides on this reply.
    const foreign = r.messages.filter((m) => m && 'id' in m && m.id !== id && ('result' in m || 'error' in m));
    assert.deepEqual(foreign, [], `${tag} id ${id}: foreign responses`);
  }
}

test('two legacy sessions with the same ids each get only their own answers', { skip, timeout: 120000 }, async () => {
  const [a, b] = await Promise.all([legacyInit(gw.url), legacyInit(gw.url)]);
  assert.notEqual(a.sessionId, b.sessionId);
  const call = (s) => (id, text) => s.request(id, 'tools/call', { name: 'echo', arguments: { text } });
  await Promise.all([burst('alpha', call(a)), burst('bravo', call(b))]);
  await Promise.all([a.close(), b.close()]);
});

test('two modern (stateless) clients with the same ids each get only their own answers', { skip, timeout: 120000 }, async () => {
  const call = (id, text) => modernRequest(gw.url, id, 'tools/call', { name: 'echo', arguments: { text } });
  await Promise.all([burst('charlie', call), burst('delta', call)]);
});

test('legacy and modern clients mixed, same ids', { skip, timeout: 120000 }, async () => {
  const s = await legacyInit(gw.url);
  await Promise.all([
    burst('echo', (id, text) => s.request(id, 'tools/call', { name: 'echo', arguments: { text } })),
    burst('foxtrot', (id, text) => modernRequest(gw.url, id, 'tools/call', { name: 'echo', arguments: { text } })),
  ]);
  await s.close();
});

test('a cancelled call\'s late question to the client does not reach the other client whose call is then the only one in flight', { skip, timeout: 30000 }, async () => {
  const a = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
  const b = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
  // A's call asks its client a question in 1.5 s, and the server asks it
  // even though A cancels the call at once (as some servers do).
  // (Its headers come with the first message: not awaited here.)
  const pa = openStream(gw.url, { headers: a.headers,
    body: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'elicit', arguments: { delay_ms: 1500, ignore_cancel: true } } } });
  await new Promise((r) => setTimeout(r, 300));
  const c = await post(gw.url, { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 1, reason: 'changed my mind' } }, a.headers);
  assert.equal(c.status, 202);
  const sa = await pa;
  const ans = await sa.next(5000);
  assert.equal(ans?.error?.message, 'Request cancelled', JSON.stringify(ans));
  sa.abort();
  // B's call is the only client call in flight when the child asks.
  const sb = await openStream(gw.url, { headers: b.headers,
    body: { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'sleep', arguments: { ms: 3000 } } } });
  const got = [];
  for (let m = await sb.next(10000); m; m = await sb.next(10000)) got.push(m);
  assert.equal(got.filter((m) => m.method === 'elicitation/create').length, 0,
    `B was asked A's question: ${JSON.stringify(got).slice(0, 300)}`);
  const res = got.find((m) => m.id === 1);
  assert.ok(res?.result, JSON.stringify(got).slice(0, 300));
  assert.equal(res.result.content[0].text, 'slept 3000 ms');
  await a.close();
  await b.close();
});

test('an id still in use by a request of the same session is refused (its answer could not be told apart)', { skip }, async () => {
  const s = await legacyInit(gw.url);
  const slow = s.request(7, 'tools/call', { name: 'sleep', arguments: { ms: 1500 } });
  await new Promise((r) => setTimeout(r, 300));
  const dup = await s.request(7, 'ping');
  assert.equal(dup.status, 400, dup.text);
  // With a null id: the answer must not pass for the other request's.
  assert.equal(dup.messages[0]?.error?.code, -32600, dup.text);
  assert.equal(dup.messages[0].id, null, dup.text);
  // Another session may use the same id meanwhile; the first call still
  // gets its own answer; then the id is free again.
  const t = await legacyInit(gw.url);
  assert.ok((await t.request(7, 'ping')).response?.result);
  const first = await slow;
  assert.ok(first.response?.result, first.text);
  assert.ok((await s.request(7, 'ping')).response?.result);
  // In a 2025-03-26 batch, the second of two members with one id.
  const b = await legacyInit(gw.url, { version: '2025-03-26' });
  const r = await post(gw.url, [
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'sleep', arguments: { ms: 300 } } },
    { jsonrpc: '2.0', id: 1, method: 'ping' },
  ], b.headers);
  assert.equal(r.status, 200, r.text);
  const errs = r.messages.filter((m) => m.error?.code === -32600);
  assert.equal(errs.length, 1, r.text);
  assert.equal(errs[0].id, null, r.text);
  assert.equal(r.messages.filter((m) => m.result).length, 1, r.text);
  for (const x of [s, t, b]) await x.close();
});
