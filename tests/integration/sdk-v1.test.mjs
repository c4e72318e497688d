// The official TypeScript SDK v1 client through the gateway, compared call
// by call with the same client talking to the upstream directly over stdio.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { startGateway } from '../lib/gateway.mjs';
import { haveGateway } from '../lib/paths.mjs';
import { makeFsRoot, standardUpstreams, directParams } from '../lib/upstreams.mjs';

const skip = haveGateway() ? false : 'gateway binary not built';
let fsRoot;
let gw;
let viaGw;
const direct = {};

async function connectDirect(name) {
  if (!direct[name]) {
    const c = new Client({ name: 'portcullis-direct', version: '1.0.0' });
    await c.connect(new StdioClientTransport(directParams(fsRoot.dir)[name]));
    direct[name] = c;
  }
  return direct[name];
}

before(async () => {
  if (skip) return;
  fsRoot = makeFsRoot();
  gw = await startGateway({ upstreams: standardUpstreams(fsRoot.dir) });
  viaGw = new Client({ name: 'portcullis-sdk-v1', version: '1.0.0' });
  await viaGw.connect(new StreamableHTTPClientTransport(new URL(gw.url)));
});

after(async () => {
  for (const c of Object.values(direct)) await c.close().catch(() => {});
  if (viaGw) await viaGw.close().catch(() => {});
  try {
    if (gw) await gw.stop();
  } finally {
    fsRoot?.remove();
  }
});

const names = (list) => list.map((t) => t.name).sort();

test('tools of every upstream are listed with their prefixes', { skip }, async () => {
  const listed = [];
  let cursor;
  do {
    const r = await viaGw.listTools(cursor ? { cursor } : undefined);
    listed.push(...r.tools);
    cursor = r.nextCursor;
  } while (cursor);
  for (const [up, prefix] of [['everything', 'everything__'], ['fs', 'fs__'], ['conf', '']]) {
    const d = await connectDirect(up);
    const want = names((await d.listTools()).tools).map((n) => prefix + n);
    const got = names(listed).filter((n) => want.includes(n));
    assert.deepEqual(got, want, `tools of ${up}`);
    // Schemas pass through unchanged.
    for (const t of (await d.listTools()).tools) {
      const g = listed.find((x) => x.name === prefix + t.name);
      assert.deepEqual(g.inputSchema, t.inputSchema, `inputSchema of ${prefix + t.name}`);
    }
  }
});

const calls = [
  ['everything', 'echo', { message: 'hello through portcullis' }],
  ['everything', 'get-sum', { a: 19, b: 23 }],
  ['fs', 'read_text_file', (dir) => ({ path: `${dir}/a.txt` })],
  ['fs', 'list_directory', (dir) => ({ path: dir })],
  ['conf', 'test_simple_text', {}],
  ['conf', 'test_multiple_content_types', {}],
];

for (const [up, tool, args] of calls) {
  test(`${up} ${tool}: same result through the gateway as direct`, { skip }, async () => {
    const a = typeof args === 'function' ? args(fsRoot.dir) : args;
    const d = await connectDirect(up);
    const want = await d.callTool({ name: tool, arguments: a });
    const prefixed = up === 'conf' ? tool : `${up}__${tool}`;
    const got = await viaGw.callTool({ name: prefixed, arguments: a });
    assert.deepEqual(got.content, want.content);
    assert.equal(!!got.isError, !!want.isError);
  });
}

test('resources and prompts are reachable with prefixed names', { skip }, async () => {
  const r = await viaGw.readResource({ uri: 'test://static-text' });
  assert.equal(r.contents[0].text, 'This is the content of the static text resource.');
  const p = await viaGw.getPrompt({ name: 'test_prompt_with_arguments', arguments: { arg1: 'a', arg2: 'b' } });
  assert.equal(p.messages[0].content.text, "Prompt with arguments: arg1='a', arg2='b'");
  const prompts = (await viaGw.listPrompts()).prompts.map((x) => x.name);
  assert.ok(prompts.some((n) => n.startsWith('everything__')), `prompts: ${prompts}`);
});

test('an unknown tool is a JSON-RPC error -32602', { skip }, async () => {
  await assert.rejects(viaGw.callTool({ name: 'everything__no_such_tool', arguments: {} }), (e) => {
    assert.equal(e.code, -32602);
    return true;
  });
});
