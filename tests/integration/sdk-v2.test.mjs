// The official TypeScript SDK v2 client (@modelcontextprotocol/client),
// pinned to the modern era (2026-07-28) and in 'auto' negotiation, through
// the gateway; every result is compared with the v1 client talking to the
// upstream directly over stdio.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client as ClientV2, StreamableHTTPClientTransport as HttpV2 } from '@modelcontextprotocol/client';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startGateway } from '../lib/gateway.mjs';
import { haveGateway } from '../lib/paths.mjs';
import { makeFsRoot, standardUpstreams, directParams } from '../lib/upstreams.mjs';

const skip = haveGateway() ? false : 'gateway binary not built';
let fsRoot;
let gw;
const direct = {};
const clients = {};

async function connectDirect(name) {
  if (!direct[name]) {
    const c = new ClientV1({ name: 'portcullis-direct', version: '1.0.0' });
    await c.connect(new StdioClientTransport(directParams(fsRoot.dir)[name]));
    direct[name] = c;
  }
  return direct[name];
}

async function connectV2(mode) {
  const c = new ClientV2(
    { name: `portcullis-sdk-v2-${typeof mode === 'string' ? mode : 'pinned'}`, version: '1.0.0' },
    { versionNegotiation: { mode } },
  );
  await c.connect(new HttpV2(new URL(gw.url)));
  return c;
}

before(async () => {
  if (skip) return;
  fsRoot = makeFsRoot();
  gw = await startGateway({ upstreams: standardUpstreams(fsRoot.dir) });
  clients.pinned = await connectV2({ pin: '2026-07-28' });
  clients.auto = await connectV2('auto');
});

after(async () => {
  for (const c of [...Object.values(direct), ...Object.values(clients)]) await c.close().catch(() => {});
  try {
    if (gw) await gw.stop();
  } finally {
    fsRoot?.remove();
  }
});

test('pinned client negotiates 2026-07-28 with the gateway', { skip }, async () => {
  assert.equal(clients.pinned.getNegotiatedProtocolVersion(), '2026-07-28');
});

test('auto client picks the modern era the gateway offers', { skip }, async () => {
  assert.equal(clients.auto.getNegotiatedProtocolVersion(), '2026-07-28');
});

const calls = [
  ['everything', 'echo', { message: 'hello v2' }],
  ['everything', 'get-sum', { a: 2, b: 40 }],
  ['fs', 'read_text_file', (dir) => ({ path: `${dir}/sub/c.txt` })],
  ['fs', 'list_directory', (dir) => ({ path: dir })],
  ['conf', 'test_image_content', {}],
  ['conf', 'test_embedded_resource', {}],
];

for (const mode of ['pinned', 'auto']) {
  test(`${mode}: tools of every upstream are listed`, { skip }, async () => {
    const listed = [];
    let cursor;
    do {
      const r = await clients[mode].listTools(cursor ? { cursor } : undefined);
      listed.push(...r.tools);
      cursor = r.nextCursor;
    } while (cursor);
    const names = listed.map((t) => t.name);
    for (const [up, prefix] of [['everything', 'everything__'], ['fs', 'fs__'], ['conf', '']]) {
      const want = (await (await connectDirect(up)).listTools()).tools.map((t) => prefix + t.name);
      for (const n of want) assert.ok(names.includes(n), `${mode}: ${n} missing from the listing`);
    }
  });

  for (const [up, tool, args] of calls) {
    test(`${mode}: ${up} ${tool} matches the direct call`, { skip }, async () => {
      const a = typeof args === 'function' ? args(fsRoot.dir) : args;
      const want = await (await connectDirect(up)).callTool({ name: tool, arguments: a });
      const got = await clients[mode].callTool({ name: up === 'conf' ? tool : `${up}__${tool}`, arguments: a });
      assert.deepEqual(got.content, want.content);
      assert.equal(!!got.isError, !!want.isError);
    });
  }
}

test('legacy-mode v2 client works too', { skip }, async () => {
  const c = await connectV2('legacy');
  try {
    assert.notEqual(c.getNegotiatedProtocolVersion(), '2026-07-28');
    const r = await c.callTool({ name: 'everything__echo', arguments: { message: 'legacy v2' } });
    const want = await (await connectDirect('everything')).callTool({ name: 'echo', arguments: { message: 'legacy v2' } });
    assert.deepEqual(r.content, want.content);
  } finally {
    await c.close();
  }
});
