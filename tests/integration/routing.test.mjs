// What the router must route to exactly one place: list_changed to the
// clients that asked for it, progress to the request that carries the
// token, a server-to-client request to the session that caused it, a
// cancellation to the upstream; and pagination across upstreams.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { startGateway, toYaml } from '../lib/gateway.mjs';
import { waitFor } from '../lib/wait.mjs';
import { upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, modernMeta, modernRequest, MODERN_VERSION, post } from '../lib/mcp.mjs';
import { openStream } from '../lib/stream.mjs';

let gw;

before(async () => {
  gw = await startGateway({
    limits: { page_size: 5 },
    upstreams: [
      { name: 'a', command: upstreamCommands.mini(), timeout: '10s' },
      { name: 'b', command: upstreamCommands.mini(), timeout: '10s' },
    ],
  });
});
after(async () => {
  await gw?.stop();
});

const call = (id, name, args = {}, meta) => ({
  jsonrpc: '2.0',
  id,
  method: 'tools/call',
  params: { name, arguments: args, ...(meta ? { _meta: meta } : {}) },
});

/** Every tool name, following nextCursor. */
async function listAll(s) {
  const names = [];
  let cursor;
  let id = 1000;
  do {
    const r = await s.request(id++, 'tools/list', cursor ? { cursor } : undefined);
    names.push(...r.response.result.tools.map((t) => t.name));
    cursor = r.response.result.nextCursor;
  } while (cursor);
  return names;
}

function modernHeaders(method, name) {
  return { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': method, ...(name ? { 'mcp-name': name } : {}) };
}

test('tools/list pages across upstreams: every tool once, upstreams in config order', async () => {
  const s = await legacyInit(gw.url);
  const names = [];
  let cursor;
  let pages = 0;
  do {
    const r = await s.request(++pages, 'tools/list', cursor ? { cursor } : undefined);
    assert.equal(r.status, 200);
    const res = r.response.result;
    assert.ok(res.tools.length <= 5, 'page_size respected');
    names.push(...res.tools.map((t) => t.name));
    cursor = res.nextCursor;
  } while (cursor && pages < 50);
  assert.ok(pages > 2, 'more than one page was needed');
  assert.equal(new Set(names).size, names.length, 'no tool twice');
  const firstB = names.findIndex((n) => n.startsWith('b__'));
  assert.ok(firstB > 0 && names.slice(0, firstB).every((n) => n.startsWith('a__')), 'a before b');
  assert.ok(names.slice(firstB).every((n) => n.startsWith('b__')));
  assert.equal(names.filter((n) => n.startsWith('a__')).length, names.filter((n) => n.startsWith('b__')).length);
  const bad = await s.request(99, 'tools/list', { cursor: 'not-a-cursor' });
  assert.equal(bad.response.error.code, -32602);
  await s.close();
});

test('progress reaches only the request that carries the token', async () => {
  const s1 = await legacyInit(gw.url);
  const s2 = await legacyInit(gw.url);
  // Same JSON-RPC id and same progress token in both sessions, at once.
  const [r1, r2] = await Promise.all([
    openStream(gw.url, { body: call(7, 'a__progress', { steps: 4, ms: 30 }, { progressToken: 'same' }), headers: s1.headers }),
    openStream(gw.url, { body: call(7, 'a__progress', { steps: 4, ms: 30 }, { progressToken: 'same' }), headers: s2.headers }),
  ]);
  for (const r of [r1, r2]) {
    const got = [];
    for (let m = await r.next(); m; m = await r.next()) got.push(m);
    const progress = got.filter((m) => m.method === 'notifications/progress');
    assert.equal(progress.length, 4, 'exactly its own four progress notifications');
    assert.ok(progress.every((m) => m.params.progressToken === 'same'));
    assert.deepEqual(progress.map((m) => m.params.progress), [1, 2, 3, 4]);
    const resp = got.filter((m) => m.id === 7);
    assert.equal(resp.length, 1);
    assert.ok(resp[0].result);
  }
  await s1.close();
  await s2.close();
});

test('list_changed reaches the GET stream of a session and a modern listen stream', async () => {
  const s = await legacyInit(gw.url);
  const get = await openStream(gw.url, { method: 'GET', headers: s.headers });
  assert.equal(get.status, 200);
  const listen = await openStream(gw.url, {
    body: {
      jsonrpc: '2.0',
      id: 'L1',
      method: 'subscriptions/listen',
      params: { notifications: { toolsListChanged: true, resourceSubscriptions: ['a+mini://hello', 7] }, _meta: modernMeta() },
    },
    headers: modernHeaders('subscriptions/listen'),
  });
  const ack = await listen.next();
  assert.equal(ack.method, 'notifications/subscriptions/acknowledged');
  assert.equal(ack.params._meta['io.modelcontextprotocol/subscriptionId'], 'L1');
  assert.deepEqual(ack.params.notifications, { toolsListChanged: true, resourceSubscriptions: ['a+mini://hello'] });

  const before = await listAll(s);
  assert.ok(!before.includes('b__extra'));
  const r = await s.request(2, 'tools/call', { name: 'b__list_changed', arguments: {} });
  assert.ok(r.response.result);

  const n1 = await get.next();
  assert.equal(n1?.method, 'notifications/tools/list_changed');
  const n2 = await listen.next();
  assert.equal(n2?.method, 'notifications/tools/list_changed');
  assert.equal(n2.params._meta['io.modelcontextprotocol/subscriptionId'], 'L1');

  // The refreshed catalogue lists and routes the new tool.
  const after = await listAll(s);
  assert.ok(after.includes('b__extra'));
  const x = await s.request(4, 'tools/call', { name: 'b__extra', arguments: {} });
  assert.equal(x.response.result.content[0].text, 'extra');
  // The upstream says list_changed again, but its list is the same: the
  // clients are not told (they would re-list for nothing).
  assert.ok((await s.request(5, 'tools/call', { name: 'b__list_changed', arguments: {} })).response.result);
  assert.ok(await get.none(700), 'no list_changed for an unchanged list (GET stream)');
  assert.ok(await listen.none(300), 'nor on the listen stream');
  get.abort();
  listen.abort();
  await s.close();
});

test('an elicitation reaches the session whose call caused it, and its answer goes back', async () => {
  const s1 = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
  const s2 = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
  const s2get = await openStream(gw.url, { method: 'GET', headers: s2.headers });
  const st = await openStream(gw.url, { body: call(5, 'a__elicit'), headers: s1.headers });
  const req = await st.next();
  assert.equal(req.method, 'elicitation/create');
  assert.match(String(req.id), /^pc-\d+$/, 'a gateway id, not the upstream one');
  const ans = await fetch(gw.url, {
    method: 'POST',
    headers: { ...s1.headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: req.id, result: { action: 'accept', content: { answer: '42' } } }),
  });
  assert.equal(ans.status, 202);
  const resp = await st.next();
  assert.equal(resp.id, 5);
  assert.equal(resp.result.content[0].text, '{"answer":"42"}');
  assert.ok(await s2get.none(300), 'the other session saw nothing');
  // The same answer again is no longer pending: ignored, never re-sent upstream.
  const again = await fetch(gw.url, {
    method: 'POST',
    headers: { ...s1.headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: req.id, result: { action: 'accept', content: { answer: 'x' } } }),
  });
  assert.equal(again.status, 202);
  s2get.abort();
  await s1.close();
  await s2.close();
});

test('a modern client without the capability an upstream asks for gets -32021', async () => {
  const r = await modernRequest(gw.url, 1, 'tools/call', { name: 'a__elicit', arguments: {} });
  assert.equal(r.status, 400);
  assert.equal(r.response.error.code, -32021);
  assert.deepEqual(r.response.error.data.requiredCapabilities, { elicitation: {} });
  // The upstream is still usable.
  const ok = await modernRequest(gw.url, 2, 'tools/call', { name: 'a__echo', arguments: { text: 'still here' } });
  assert.equal(ok.response.result.content[0].text, 'still here');
});

const cancelLines = () => gw.logs.filter((r) => r.msg === 'mini_upstream: cancelled a request').length;


test('a legacy notifications/cancelled reaches the upstream and ends the request', async () => {
  const s = await legacyInit(gw.url);
  const before = cancelLines();
  // A JSON reply sends its headers only with the body: do not wait for them.
  const pending = fetch(gw.url, {
    method: 'POST',
    headers: { ...s.headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify(call(77, 'a__sleep', { ms: 10000 })),
  }).then((r) => r.json());
  await new Promise((r) => setTimeout(r, 300));
  const n = await s.request(undefined, 'notifications/cancelled', { requestId: 77, reason: 'test' });
  assert.equal(n.status, 202);
  const resp = await pending;
  assert.equal(resp.id, 77);
  assert.ok(resp.error, 'the cancelled request ends with an error');
  assert.ok(await waitFor(() => cancelLines() > before), 'notifications/cancelled reached the child');
  await s.close();
});

test('a modern client closing its connection cancels the upstream call', async () => {
  const before = cancelLines();
  const ctrl = new AbortController();
  const pending = fetch(gw.url, {
    method: 'POST',
    headers: { ...modernHeaders('tools/call', 'b__sleep'), 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'b__sleep', arguments: { ms: 10000 }, _meta: modernMeta() } }),
    signal: ctrl.signal,
  }).catch((e) => e);
  await new Promise((r) => setTimeout(r, 300));
  ctrl.abort();
  await pending;
  assert.ok(await waitFor(() => cancelLines() > before), 'notifications/cancelled reached the child');
  // And the upstream serves the next call.
  const ok = await modernRequest(gw.url, 10, 'tools/call', { name: 'b__echo', arguments: { text: 'next' } });
  assert.equal(ok.response.result.content[0].text, 'next');
});

test('resource subscriptions are shared: one session unsubscribing does not end another\'s updates', async () => {
  const s1 = await legacyInit(gw.url);
  const s2 = await legacyInit(gw.url);
  const g1 = await openStream(gw.url, { method: 'GET', headers: s1.headers });
  const g2 = await openStream(gw.url, { method: 'GET', headers: s2.headers });
  const uri = 'a+mini://hello';
  assert.ok((await s1.request(1, 'resources/subscribe', { uri })).response.result);
  assert.ok((await s2.request(1, 'resources/subscribe', { uri })).response.result);
  assert.ok((await s1.request(2, 'resources/unsubscribe', { uri })).response.result);

  const touch = async (s, id) =>
    (await s.request(id, 'tools/call', { name: 'a__touch', arguments: { uri: 'mini://hello' } })).response.result.content[0].text;
  assert.equal(await touch(s1, 3), 'updated', 'the upstream still holds the subscription for s2');
  const u = await g2.next();
  assert.equal(u?.method, 'notifications/resources/updated');
  assert.equal(u.params.uri, uri, 'the URI is exposed in the gateway namespace');
  assert.ok(await g1.none(300), 's1 unsubscribed and hears nothing');

  // The last subscriber leaving (session ended) unsubscribes upstream.
  g2.abort();
  await s2.close();
  let last;
  for (let i = 0; i < 20 && last !== 'not subscribed'; i++) {
    last = await touch(s1, 10 + i);
    if (last !== 'not subscribed') await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(last, 'not subscribed');
  g1.abort();
  await s1.close();
});

test('one session holds at most 1024 subscriptions; unsubscribing makes room', async () => {
  const s = await legacyInit(gw.url);
  for (let i = 0; i < 1024; i++) {
    const r = await s.request(i + 1, 'resources/subscribe', { uri: `a+mini://item/${i}` });
    assert.ok(r.response?.result, `subscription ${i}: ${r.text}`);
  }
  const over = await s.request(2000, 'resources/subscribe', { uri: 'a+mini://item/extra' });
  assert.equal(over.response?.error?.code, -32000, over.text);
  assert.match(over.response.error.message, /Too many subscriptions/);
  // Another session is not affected, and an unsubscribe makes room.
  const t = await legacyInit(gw.url);
  assert.ok((await t.request(1, 'resources/subscribe', { uri: 'a+mini://item/extra' })).response?.result);
  assert.ok((await s.request(2001, 'resources/unsubscribe', { uri: 'a+mini://item/0' })).response?.result);
  assert.ok((await s.request(2002, 'resources/subscribe', { uri: 'a+mini://item/extra' })).response?.result);
  await t.close();
  await s.close();
});

test('subscriptions are bounded in bytes too: a URI past 64 KiB, a session past 256 KiB; a restart renews at most 8 MiB at once', { timeout: 120000 }, async () => {
  // URIs up to max_string_bytes used to be kept whole per session and
  // all re-sent in one pass at a restart: past 64 MiB queued the fresh
  // child was killed as one that stopped reading, at every restart.
  const g = await startGateway({ upstreams: [{ name: 'a', command: upstreamCommands.mini(), timeout: '10s' }] });
  try {
    const s = await legacyInit(g.url);
    const long = await s.request(1, 'resources/subscribe', { uri: `a+mini://item/${'x'.repeat(64 * 1024)}` });
    assert.equal(long.response?.error?.code, -32002, long.text);
    const big = (n, i) => `a+mini://item/${n}-${i}-${'y'.repeat(60 * 1024)}`;
    for (let i = 0; i < 4; i++) assert.ok((await s.request(10 + i, 'resources/subscribe', { uri: big(0, i) })).response?.result);
    const over = await s.request(20, 'resources/subscribe', { uri: big(0, 4) });
    assert.match(over.response?.error?.message ?? '', /Too many subscriptions/, over.text);
    // Unsubscribing gives the bytes back.
    assert.ok((await s.request(21, 'resources/unsubscribe', { uri: big(0, 0) })).response?.result);
    assert.ok((await s.request(22, 'resources/subscribe', { uri: big(0, 4) })).response?.result);
    // 40 sessions x 240 KiB: over the 8 MiB a restart sends at once.
    const sessions = [s];
    for (let n = 1; n < 40; n++) {
      const t = await legacyInit(g.url);
      sessions.push(t);
      for (let i = 0; i < 4; i++) assert.ok((await t.request(i + 1, 'resources/subscribe', { uri: big(n, i) })).response?.result);
    }
    const from = g.logs.length;
    await s.request(30, 'tools/call', { name: 'a__crash', arguments: {} });
    await g.waitForLog((l) => /subscription\(s\) not renewed/.test(l.msg ?? ''), { from, timeoutMs: 30000 });
    // The restarted child stays up and answers.
    let r;
    for (let i = 0; i < 50 && !r?.response?.result; i++) {
      r = await s.request(100 + i, 'tools/call', { name: 'a__echo', arguments: { text: 'after' } });
      if (!r.response?.result) await new Promise((res) => setTimeout(res, 200));
    }
    assert.equal(r.response?.result?.content?.[0]?.text, 'after', r.text);
    assert.ok(!g.logs.slice(from).some((l) => /stopped reading/.test(l.msg ?? '')), 'the child was not killed');
    for (const t of sessions) await t.close();
  } finally {
    await g.stop();
  }
});

test('a resource an upstream calls publicly cacheable reaches modern clients as private (the policy may hide it from others)', async () => {
  const r = await modernRequest(gw.url, 1, 'resources/read', { uri: 'a+mini://item/public' });
  assert.equal(r.status, 200, r.text);
  assert.equal(r.response?.result?.cacheScope, 'private', r.text);
  assert.equal(r.response.result.ttlMs, 3600000);
  const plain = await modernRequest(gw.url, 2, 'resources/read', { uri: 'a+mini://hello' });
  assert.equal(plain.response?.result?.cacheScope, 'private', plain.text);
  assert.equal(plain.response.result.ttlMs, 0);
});

test('upstream requests a client never answers expire after max_timeout: they do not fill the session for good', { timeout: 60000 }, async () => {
  const g = await startGateway({
    limits: { max_pending_per_client: 2 },
    upstreams: [{ name: 'a', command: upstreamCommands.mini(), timeout: '1s', max_timeout: '2s' }],
  });
  try {
    const s = await legacyInit(g.url, { capabilities: { elicitation: {} } });
    const ask = async (id) => {
      const st = await openStream(g.url, { body: { jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'a__elicit', arguments: {} } }, headers: s.headers });
      const first = await st.next(5000);
      st.abort();
      return first;
    };
    // Two questions left unanswered fill the session's table...
    assert.equal((await ask(1))?.method, 'elicitation/create');
    assert.equal((await ask(2))?.method, 'elicitation/create');
    // ...so a third is refused upstream (the call answers "error").
    const refused = await ask(3);
    assert.equal(refused?.result?.content?.[0]?.text, 'error', JSON.stringify(refused));
    // Past max_timeout (and a sweep) they are gone, and questions reach
    // the client again.
    let next;
    for (let i = 0; i < 40 && next?.method !== 'elicitation/create'; i++) {
      await new Promise((r) => setTimeout(r, 500));
      next = await ask(10 + i);
    }
    assert.equal(next?.method, 'elicitation/create', JSON.stringify(next));
    await s.close();
  } finally {
    await g.stop();
  }
});

test('a huge catalogue is bounded in bytes: an item over 1 MiB is left out, a list over 32 MiB is truncated', { timeout: 120000 }, async () => {
  const names = async (g) => {
    const r = await modernRequest(g.url, 1, 'tools/list', { cursor: undefined });
    const all = [];
    let page = r.response?.result;
    let id = 2;
    while (page) {
      all.push(...page.tools.map((t) => t.name));
      if (!page.nextCursor) break;
      page = (await modernRequest(g.url, id++, 'tools/list', { cursor: page.nextCursor })).response?.result;
    }
    return all;
  };
  const g = await startGateway({ upstreams: [{ name: 'a', command: [...upstreamCommands.mini(), '--big-tools', '2', '2000000'] }] });
  try {
    await g.waitForLog((l) => /over 1048576 bytes each left out/.test(l.msg ?? ''));
    const got = await names(g);
    assert.ok(got.includes('a__echo'), got.join(','));
    assert.ok(!got.some((n) => n.startsWith('a__big')), got.join(','));
  } finally {
    await g.stop();
  }
  const h = await startGateway({
    upstreams: [{ name: 'a', max_line_bytes: '64MiB', command: [...upstreamCommands.mini(), '--big-tools', '40', '1000000'] }],
  });
  try {
    await h.waitForLog((l) => /tools over 33554432 bytes; list truncated/.test(l.msg ?? ''), { timeoutMs: 60000 });
    const got = await names(h);
    const big = got.filter((n) => n.startsWith('a__big'));
    assert.ok(got.includes('a__echo'), 'the items before the budget stay');
    assert.ok(big.length > 0 && big.length < 40, `${big.length} big tools`);
  } finally {
    await h.stop();
  }
});

test('an unprefixed upstream cannot announce a change to another upstream\'s resource', async () => {
  const g = await startGateway({
    upstreams: [
      { name: 'fs', prefix: 'fs', command: upstreamCommands.mini() },
      { name: 'u', prefix: '', command: upstreamCommands.mini() },
    ],
  });
  try {
    const s = await legacyInit(g.url);
    const get = await openStream(g.url, { method: 'GET', headers: s.headers });
    assert.ok((await s.request(1, 'resources/subscribe', { uri: 'fs+mini://hello' })).response?.result);
    // The unprefixed one claims fs+mini://hello changed: not passed on.
    const lie = await s.request(2, 'tools/call', { name: 'touch', arguments: { uri: 'fs+mini://hello', always: true } });
    assert.ok(lie.response?.result, lie.text);
    await g.waitForLog((l) => /another upstream owns: dropped/.test(l.msg ?? ''));
    assert.ok(await get.none(300), 'the subscriber heard nothing');
    // The owner's own announcement still arrives.
    assert.equal((await s.request(3, 'tools/call', { name: 'fs__touch', arguments: { uri: 'mini://hello' } })).response?.result?.content?.[0]?.text, 'updated');
    const u = await get.next();
    assert.equal(u?.params?.uri, 'fs+mini://hello');
    get.abort();
    await s.close();
  } finally {
    await g.stop();
  }
});

test('an elicitation caused by a 2025-03-26 batch member is refused at once (a batch has no stream to carry it)', async () => {
  const s = await legacyInit(gw.url, { version: '2025-03-26', capabilities: { elicitation: {} } });
  const r = await post(gw.url, [
    { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'a__elicit', arguments: {} } },
  ], s.headers);
  assert.equal(r.status, 200, r.text);
  // The upstream got -32601 for its request and answered the call with
  // "error" (not a timeout after waiting for an answer that cannot come).
  assert.equal(r.messages[0].result?.content?.[0]?.text, 'error', r.text);
  await s.close();
});

test('a subscribe the upstream never took is undone: the next one reaches the upstream', async () => {
  const s = await legacyInit(gw.url);
  const uri = 'b+mini://hello';
  const touch = async (id) =>
    (await s.request(id, 'tools/call', { name: 'b__touch', arguments: { uri: 'mini://hello' } })).response?.result?.content?.[0]?.text;
  // The upstream goes away; a subscribe meanwhile fails.
  await s.request(1, 'tools/call', { name: 'b__crash', arguments: {} });
  const failed = await s.request(2, 'resources/subscribe', { uri });
  assert.ok(failed.response.error, `refused while the upstream restarts: ${failed.text}`);
  let t;
  for (let i = 0; i < 50 && t === undefined; i++) {
    t = await touch(10 + i);
    if (t === undefined) await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(t, 'not subscribed');
  const ok = await s.request(3, 'resources/subscribe', { uri });
  assert.ok(ok.response.result, ok.text);
  assert.equal(await touch(100), 'updated', 'this time the upstream was told');
  await s.close();
});

test('a subscription outlives a crash of its upstream: the restarted child is subscribed again and updates keep coming', async () => {
  const s = await legacyInit(gw.url);
  const get = await openStream(gw.url, { method: 'GET', headers: s.headers });
  const uri = 'b+mini://hello';
  const touch = async (id) =>
    (await s.request(id, 'tools/call', { name: 'b__touch', arguments: { uri: 'mini://hello' } })).response?.result?.content?.[0]?.text;
  assert.ok((await s.request(1, 'resources/subscribe', { uri })).response?.result);
  assert.equal(await touch(2), 'updated');
  assert.equal((await get.next())?.params?.uri, uri);
  await s.request(3, 'tools/call', { name: 'b__crash', arguments: {} });
  let t;
  for (let i = 0; i < 50 && t === undefined; i++) {
    t = await touch(10 + i);
    if (t === undefined) await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(t, 'updated', 'the new child holds the subscription');
  assert.equal((await get.next())?.params?.uri, uri, 'and the session hears of it');
  get.abort();
  await s.close();
});

test('a reload that hides a resource ends the updates of existing subscriptions, and they can still be undone', async () => {
  const g = await startGateway({ upstreams: [{ name: 'a', command: upstreamCommands.mini(), timeout: '10s' }] });
  try {
    const uri = 'a+mini://hello';
    const s = await legacyInit(g.url);
    const get = await openStream(g.url, { method: 'GET', headers: s.headers });
    assert.ok((await s.request(1, 'resources/subscribe', { uri })).response?.result);
    const listen = await openStream(g.url, {
      body: { jsonrpc: '2.0', id: 'L', method: 'subscriptions/listen', params: { notifications: { resourceSubscriptions: [uri] }, _meta: modernMeta() } },
      headers: modernHeaders('subscriptions/listen'),
    });
    assert.deepEqual((await listen.next()).params.notifications, { resourceSubscriptions: [uri] });
    const touch = async (id) =>
      (await s.request(id, 'tools/call', { name: 'a__touch', arguments: { uri: 'mini://hello' } })).response.result.content[0].text;
    assert.equal(await touch(2), 'updated');
    assert.equal((await get.next())?.params?.uri, uri);
    assert.equal((await listen.next())?.params?.uri, uri);
    // The same role now sees only items: hello is hidden.
    writeFileSync(g.configPath, toYaml({ ...g.config, policy: { default_roles: ['test-all'],
      roles: { 'test-all': { tools: [{ match: '*', access: 'all' }], prompts: ['*'], resources: ['a+mini://item/*'] } } } }));
    const from = g.logs.length;
    g.proc.kill('SIGHUP');
    await g.waitForLog((l) => /^reload: configuration .* applied$/.test(l.msg), { from });
    // What its resource list shows changed, and the session is told so
    // (the listen stream did not ask for list changes).
    assert.equal((await get.next())?.method, 'notifications/resources/list_changed');
    assert.equal(await touch(3), 'updated', 'the upstream still has the gateway subscribed');
    assert.ok(await get.none(500), 'no update about a resource the policy now hides');
    assert.ok(await listen.none(500), 'nor on the listen stream');
    // Undoing it is allowed, although the URI is now "not found" to it.
    assert.ok((await s.request(4, 'resources/unsubscribe', { uri })).response?.result);
    assert.equal(await touch(5), 'not subscribed', 'the upstream was told');
    get.abort();
    listen.abort();
    await s.close();
  } finally {
    await g.stop();
  }
});

// The upstream refuses the first subscribe, and the gateway's own retry for
// the session that subscribed meanwhile: the URI is held here but not
// upstream. The next subscribe, a new session's or the holder's again,
// asks the upstream once more instead of answering "already held".
// The holder's case: the upstream refuses a third time, and the holder is
// told so (its own call, not a promise); it still holds the URI, and asks
// again with success.
for (const who of ['a new session', 'the holder again']) {
  test(`a subscription the upstream refused twice is asked for again by ${who}`, async () => {
    const fails = who === 'a new session' ? '2' : '3';
    const g = await startGateway({ upstreams: [{ name: 'c', command: [...upstreamCommands.mini(), '--subscribe-fail-first', '400', '--subscribe-fail-times', fails] }] });
    try {
      const uri = 'c+mini://hello';
      const sa = await legacyInit(g.url);
      const sb = await legacyInit(g.url);
      const getB = await openStream(g.url, { method: 'GET', headers: sb.headers });
      const touch = async (id) => (await sb.request(id, 'tools/call', { name: 'c__touch', arguments: { uri: 'mini://hello' } })).response?.result?.content?.[0]?.text;
      const from = g.logs.length;
      const first = sa.request(1, 'resources/subscribe', { uri });
      await new Promise((r) => setTimeout(r, 100));
      const rb = await sb.request(1, 'resources/subscribe', { uri });
      assert.ok(rb.response?.result, 'B is told it is subscribed (A is on its way): ' + JSON.stringify(rb.response));
      assert.ok((await first).response?.error, 'A is refused');
      await g.waitForLog((l) => /did not take the subscription to c\+mini:\/\/hello/.test(l.msg ?? ''), { from, timeoutMs: 5000 });
      assert.equal(await touch(2), 'not subscribed', 'the retry was refused too');
      const again = who === 'a new session' ? await legacyInit(g.url) : sb;
      if (again === sb) {
        const refused = await sb.request(3, 'resources/subscribe', { uri });
        assert.ok(refused.response?.error, 'the holder hears the upstream refused: ' + JSON.stringify(refused.response));
      }
      assert.ok((await again.request(4, 'resources/subscribe', { uri })).response?.result);
      let t;
      for (let i = 0; i < 20 && t !== 'updated'; i++) {
        t = await touch(10 + i);
        if (t !== 'updated') await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(t, 'updated', 'the upstream holds it again');
      assert.equal((await getB.next(5000))?.params?.uri, uri, 'B hears of it');
      getB.abort();
    } finally {
      await g.stop();
    }
  });
}

test('a client answer whose result is not an object reaches the upstream as an error, not as an acceptance', async () => {
  const s = await legacyInit(gw.url, { capabilities: { elicitation: {} } });
  const st = await openStream(gw.url, { headers: s.headers,
    // b: a's child may still hold a call an earlier test gave up, and
    // for a while attributes its requests to nobody.
    body: { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'b__elicit', arguments: {} } } });
  const q = await st.next(5000);
  assert.equal(q?.method, 'elicitation/create', JSON.stringify(q));
  const r = await post(gw.url, { jsonrpc: '2.0', id: q.id, result: null }, s.headers);
  assert.equal(r.status, 202);
  const done = await st.next(5000);
  assert.equal(done?.result?.content?.[0]?.text, 'error', JSON.stringify(done));
  await s.close();
});

test('a 2025-03-26 client that leaves mid-batch: its members still running are cancelled upstream', async () => {
  const s = await legacyInit(gw.url, { version: '2025-03-26' });
  const before = cancelLines();
  const ctrl = new AbortController();
  const pending = fetch(gw.url, {
    method: 'POST',
    headers: { ...s.headers, 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
    body: JSON.stringify([call(1, 'b__sleep', { ms: 10000 }), call(2, 'b__echo', { text: 'quick' })]),
    signal: ctrl.signal,
  }).catch((e) => e);
  await new Promise((r) => setTimeout(r, 500));
  ctrl.abort();
  await pending;
  assert.ok(await waitFor(() => cancelLines() > before, 5000), 'the sleeping member was cancelled upstream');
  await s.close();
});

test('a subscribe that fails upstream while a second session subscribed meanwhile: the second is subscribed for real', async () => {
  const g = await startGateway({ upstreams: [{ name: 'c', command: [...upstreamCommands.mini(), '--subscribe-fail-first', '600'] }] });
  try {
    const uri = 'c+mini://hello';
    const sa = await legacyInit(g.url);
    const sb = await legacyInit(g.url);
    const getB = await openStream(g.url, { method: 'GET', headers: sb.headers });
    const first = sa.request(1, 'resources/subscribe', { uri }); // refused 600 ms later
    await new Promise((r) => setTimeout(r, 150));
    const second = await sb.request(1, 'resources/subscribe', { uri });
    assert.ok(second.response?.result, 'B is told it is subscribed (A is on its way)');
    assert.ok((await first).response?.error, 'A is refused');
    let t;
    for (let i = 0; i < 20 && t !== 'updated'; i++) {
      t = (await sb.request(10 + i, 'tools/call', { name: 'c__touch', arguments: { uri: 'mini://hello' } })).response?.result?.content?.[0]?.text;
      if (t !== 'updated') await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(t, 'updated', 'the upstream holds the subscription B was promised');
    assert.equal((await getB.next(5000))?.params?.uri, uri);
    getB.abort();
  } finally {
    await g.stop();
  }
});
