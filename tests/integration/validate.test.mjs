// Tool arguments are checked against the upstream's own inputSchema before
// the call leaves the gateway: a misfit is a tool execution error naming the
// argument path and the rule (never the value), and the upstream never sees
// the call. A tool whose schema cannot be enforced cannot be called.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startGateway } from '../lib/gateway.mjs';
import { upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, modernRequest } from '../lib/mcp.mjs';

let gw, s;
const CANARY = 'sk-live-CANARY-4f9a2c';

before(async () => {
  gw = await startGateway({ upstreams: [{ name: 'up', command: upstreamCommands.mini() }] });
  s = await legacyInit(gw.url);
});
after(async () => {
  await s?.close();
  await gw?.stop();
});

let nextId = 1;
const call = async (name, args) => (await s.request(nextId++, 'tools/call', { name, arguments: args })).response;
const calls = async () => Number((await call('up__calls', {})).result.content[0].text);

test('arguments that do not fit the schema are refused before the upstream', async () => {
  const before = await calls();
  const r = await call('up__add', { a: CANARY, b: 2 });
  assert.equal(r.result.isError, true);
  const text = r.result.content[0].text;
  assert.match(text, /\/a: type: /, 'names the argument path and the rule');
  assert.ok(!text.includes(CANARY), 'never echoes the value');
  const r2 = await call('up__echo', { text: 42 });
  assert.equal(r2.result.isError, true);
  assert.match(r2.result.content[0].text, /\/text: type/);
  const r3 = await call('up__echo', 'not an object');
  assert.equal(r3.result.isError, true);
  assert.equal(await calls(), before + 1, 'only the counting call reached the upstream');
  assert.ok(!gw.stderr.includes(CANARY), 'and the value is not logged');
});

test('valid arguments pass through unchanged', async () => {
  const r = await call('up__add', { a: 2, b: 3 });
  assert.equal(r.result.content[0].text, '5');
});

test('a modern client gets the same tool error with resultType', async () => {
  const r = await modernRequest(gw.url, 9, 'tools/call', { name: 'up__echo', arguments: { text: [] } });
  assert.equal(r.status, 200);
  assert.equal(r.response.result.isError, true);
  assert.equal(r.response.result.resultType, 'complete');
});

test('a tool whose schema cannot be enforced cannot be called (fail closed)', async () => {
  const before = await calls();
  const r = await call('up__badschema', { x: 'anything' });
  assert.equal(r.result.isError, true);
  assert.match(r.result.content[0].text, /cannot be called/);
  assert.equal(await calls(), before + 1);
  assert.ok(gw.logs.some((l) => /tool 'badschema': input schema refused/.test(l.msg)));
});

test('a tool an upstream lists twice is checked against the definition the catalogue shows (the first)', async () => {
  const g = await startGateway({ upstreams: [{ name: 'up', command: [...upstreamCommands.mini(), '--dup-echo'] }] });
  try {
    const s = await legacyInit(g.url);
    const list = await s.request(1, 'tools/list');
    const echoes = list.response.result.tools.filter((t) => t.name === 'up__echo');
    assert.equal(echoes.length, 1);
    assert.equal(echoes[0].inputSchema.properties.text.type, 'string');
    const ok = await s.request(2, 'tools/call', { name: 'up__echo', arguments: { text: 'hi' } });
    assert.equal(ok.response.result?.isError, undefined, ok.text);
    assert.equal(ok.response.result.content[0].text, 'hi');
    const bad = await s.request(3, 'tools/call', { name: 'up__echo', arguments: { text: 7 } });
    assert.equal(bad.response.result?.isError, true, 'refused by the schema that is shown');
    // The first definition's schema cannot be compiled: the second,
    // which can, must not stand in for it.
    const broken = await s.request(4, 'tools/call', { name: 'up__badschema', arguments: { x: 'y' } });
    assert.equal(broken.response.result?.isError, true, broken.text);
    assert.match(broken.response.result.content[0].text, /cannot be called/);
    await s.close();
  } finally {
    await g.stop();
  }
});
