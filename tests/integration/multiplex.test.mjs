// Many clients using the same JSON-RPC ids at once: the gateway rewrites ids
// towards the upstream and must route every answer back to the client and
// request it belongs to.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../lib/gateway.mjs';
import { haveGateway, haveMiniUpstream, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, modernRequest } from '../lib/mcp.mjs';

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
