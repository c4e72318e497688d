// Authorization end to end (issue 4): the real binary, keys made with
// `portcullis keys`, the official filesystem server and the mini upstream,
// and what an attacker would try: calling a tool it cannot see, climbing
// out of its root by every traversal trick in tests/data/traversal, naming
// another tenant's files, keeping an elevation after it ended, and calling
// a tool an upstream added after the policy was written.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport as HttpV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { readAuditRecords } from '../lib/audit.mjs';
import { startGateway, toYaml } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, ROOT, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, modernRequest, ACCEPT, modernMeta, MODERN_VERSION } from '../lib/mcp.mjs';
import { openStream } from '../lib/stream.mjs';

const CANARY = `CANARY-${randomBytes(8).toString('hex')}`;
let dir, top, gw, auth, cliCfg, auditDir, auditKeyFile, policy;

function keys(...args) {
  const r = spawnSync(PORTCULLIS_BIN, ['keys', ...args, '-c', cliCfg], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`keys ${args.join(' ')}: exit ${r.status}\n${r.stderr}`);
  return r;
}
const createKey = (principal, extra = []) =>
  JSON.parse(keys('create', '--principal', principal, '--json', ...extra).stdout);
const bearer = (k) => ({ authorization: `Bearer ${k}` });

// The policy under test. `extraRoles` lets a test reload with more grants.
function makePolicy(extraUpRules = []) {
  return {
    roles: {
      reader: { tools: [{ match: 'fs__*', access: ['read'] }] },
      writer: { tools: [{ match: 'fs__write_file', access: ['write', 'destructive'] }] },
      tenant: {
        tools: [
          { match: 'tfs__read_text_file', access: ['read'] },
          { match: 'up__echo', access: 'all' },
        ],
      },
      narrow: {
        tools: [{ match: 'up__echo', access: 'all' }, { match: 'up__list_changed', access: 'all' }, ...extraUpRules],
      },
      admin: { tools: [{ match: '*', access: 'all' }], prompts: ['*'], resources: ['*'] },
    },
    constraints: [
      { tool: 'fs__read_*', argument: 'path', path_under: [join(top, 'data')] },
      { tool: 'tfs__*', argument: 'path', path_under: [join(top, 'tenants', '${tenant}')] },
      { tool: 'up__echo', argument: 'text', set: '${tenant}' },
      // Tightening the upstream's own schema (seed 000: a query of 2 to 500
      // characters; here 2 to 5).
      { tool: 'up__login', argument: 'user', schema: { type: 'string', minLength: 2, maxLength: 5 } },
    ],
  };
}

function gatewayConfig() {
  return {
    auth,
    audit: { dir: auditDir, key: `\${file:${auditKeyFile}}` },
    policy,
    upstreams: [
      { name: 'fs', command: upstreamCommands.filesystem(top), timeout: '20s' },
      { name: 'tfs', command: upstreamCommands.filesystem(top), timeout: '20s' },
      { name: 'up', command: upstreamCommands.mini() },
    ],
  };
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-policy-'));
  // The filesystem server may read all of `top`; the policy narrows that
  // to top/data (and top/tenants/<tenant>): escaping the policy's root
  // would still be inside what the server allows, so only the gateway
  // stands between the agent and the canaries.
  top = realpathSync(mkdtempSync(join(tmpdir(), 'portcullis-policy-fs-')));
  mkdirSync(join(top, 'data', 'sub'), { recursive: true });
  writeFileSync(join(top, 'data', 'a.txt'), 'alpha\n');
  writeFileSync(join(top, 'data', 'sub', 'c.txt'), 'charlie\n');
  mkdirSync(join(top, 'etc'));
  writeFileSync(join(top, 'etc', 'passwd'), `${CANARY}\n`);
  writeFileSync(join(top, 'etc', 'shadow'), `${CANARY}\n`);
  mkdirSync(join(top, 'data2'));
  writeFileSync(join(top, 'data2', 'secret'), `${CANARY}\n`);
  writeFileSync(join(top, 'data2', 'x'), `${CANARY}\n`);
  mkdirSync(join(top, 'data-other'));
  writeFileSync(join(top, 'data-other', 'x'), `${CANARY}\n`);
  mkdirSync(join(top, 'tenants', 'acme'), { recursive: true });
  mkdirSync(join(top, 'tenants', 'globex'), { recursive: true });
  writeFileSync(join(top, 'tenants', 'acme', 'plan.txt'), 'acme plan\n');
  writeFileSync(join(top, 'tenants', 'globex', 'plan.txt'), `${CANARY} globex\n`);

  writeFileSync(join(dir, 'pepper'), randomBytes(32).toString('hex'), { mode: 0o600 });
  auditKeyFile = join(dir, 'audit.key');
  writeFileSync(auditKeyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  auditDir = join(dir, 'audit');
  auth = { api_keys: { store: join(dir, 'keys.db'), pepper: `\${file:${join(dir, 'pepper')}}` } };
  cliCfg = join(dir, 'cli.yaml');
  writeFileSync(cliCfg, toYaml({ auth }));
  createKey('bootstrap');
  policy = makePolicy();
  gw = await startGateway(gatewayConfig());
});
after(async () => {
  await gw?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
  if (top) rmSync(top, { recursive: true, force: true });
});

function auditRecords() {
  return readAuditRecords(auditDir);
}

async function sdkClient(key) {
  const c = new ClientV1({ name: 'policy-test', version: '1' });
  await c.connect(new HttpV1(new URL(gw.url), { requestInit: { headers: bearer(key) } }));
  return c;
}

test('a read-only role neither sees nor calls the filesystem server\'s write tools', async () => {
  const k = createKey('reader-1', ['--roles', 'reader']);
  const c = await sdkClient(k.key);
  try {
    const names = (await c.listTools()).tools.map((t) => t.name);
    assert.ok(names.includes('fs__read_text_file'), 'read tools are listed');
    assert.ok(names.includes('fs__list_directory'));
    for (const w of ['fs__write_file', 'fs__edit_file', 'fs__move_file', 'fs__create_directory']) {
      assert.ok(!names.includes(w), `${w} is not listed`);
    }
    assert.ok(!names.some((n) => n.startsWith('tfs__') || n.startsWith('up__')), 'nothing of other roles');

    const ok = await c.callTool({ name: 'fs__read_text_file', arguments: { path: join(top, 'data', 'a.txt') } });
    assert.equal(ok.isError ?? false, false);
    assert.match(ok.content[0].text, /alpha/);

    const attempts = {
      fs__write_file: { path: join(top, 'data', 'w.txt'), content: 'pwned' },
      fs__edit_file: { path: join(top, 'data', 'a.txt'), edits: [{ oldText: 'alpha', newText: 'pwned' }] },
      fs__move_file: { source: join(top, 'data', 'a.txt'), destination: join(top, 'data', 'moved.txt') },
    };
    for (const [name, args] of Object.entries(attempts)) {
      await assert.rejects(c.callTool({ name, arguments: args }), /Unknown tool/, `${name} is refused`);
    }
    assert.equal(readFileSync(join(top, 'data', 'a.txt'), 'utf8'), 'alpha\n', 'nothing was written');
    assert.throws(() => readFileSync(join(top, 'data', 'w.txt')));
  } finally {
    await c.close();
  }
});

test('a hidden tool answers exactly like a missing one, in both eras, and the attempt is logged', async () => {
  const k = createKey('reader-2', ['--roles', 'reader']);
  const s = await legacyInit(gw.url, { headers: bearer(k.key) });
  const call = (name) => s.request(7, 'tools/call', { name, arguments: { path: join(top, 'data', 'x.txt'), content: 'x' } });
  const hidden = await call('fs__write_file');
  const missing = await call('fs__no_such_tool');
  assert.equal(hidden.status, missing.status);
  assert.equal(hidden.text, missing.text, 'legacy: byte-identical answers');
  assert.equal(hidden.response.error.code, -32602);
  // A prompt of an upstream is hidden the same way.
  const hp = await s.request(8, 'prompts/get', { name: 'up__greet', arguments: { name: 'x' } });
  const mp = await s.request(8, 'prompts/get', { name: 'up__nope', arguments: { name: 'x' } });
  assert.equal(hp.text, mp.text);

  // Modern (stateless) requests: the key travels on each request.
  const modern = async (name) => {
    const r = await fetch(gw.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: ACCEPT, 'mcp-protocol-version': '2026-07-28', 'mcp-method': 'tools/call', 'mcp-name': name, ...bearer(k.key) },
      body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name, arguments: {}, _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {}, 'io.modelcontextprotocol/clientInfo': { name: 't', version: '1' } } } }),
    });
    return { status: r.status, text: await r.text(), type: r.headers.get('content-type') };
  };
  const mh = await modern('fs__move_file');
  const mm = await modern('fs__nothing_here');
  assert.deepEqual(mh, mm, 'modern: identical status, type and body');

  assert.ok(gw.logs.some((l) => /policy: reader-2 denied: tool 'fs__write_file' \(policy\.denied_tool\)/.test(l.msg)), 'the attempt is logged');
  const recs = auditRecords().filter((r) => r.principal === 'reader-2' && r.method === 'tools/call');
  const denied = recs.filter((r) => r.tool === 'fs__write_file');
  assert.equal(denied.length, 1);
  assert.equal(denied[0].decision, 'deny');
  assert.equal(denied[0].reason, 'policy.denied_tool');
  // The missing tool is an error, not a policy denial.
  const miss = recs.find((r) => r.tool === 'fs__no_such_tool');
  assert.equal(miss.decision, 'allow');
  assert.equal(miss.reason, 'rpc.-32602');
});

test('a policy denial inside a 2025-03-26 batch answers as missing and is audited as a deny', async () => {
  const k = createKey('reader-batch', ['--roles', 'reader']);
  const s = await legacyInit(gw.url, { version: '2025-03-26', headers: bearer(k.key) });
  const r = await fetch(gw.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: ACCEPT, ...s.headers },
    body: JSON.stringify([
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'fs__write_file', arguments: { path: 'x', content: 'y' } } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'fs__list_allowed_directories', arguments: {} } },
    ]),
  });
  const out = await r.json();
  const byId = Object.fromEntries(out.map((m) => [m.id, m]));
  assert.equal(byId[1].error.code, -32602);
  assert.equal(byId[1].error.message, 'Unknown tool');
  assert.ok(byId[2].result);
  const rec = auditRecords().find((x) => x.principal === 'reader-batch' && x.tool === 'fs__write_file');
  assert.ok(rec, 'the denied member is recorded');
  assert.equal(rec.decision, 'deny');
  assert.equal(rec.reason, 'policy.denied_tool');
});

// Raw bytes: some variants are not valid UTF-8 (overlong forms), which
// JSON.stringify would replace; the body carries them as they are.
function jsonStringBytes(buf) {
  const out = [Buffer.from('"')];
  for (const b of buf) {
    if (b === 0x22) out.push(Buffer.from('\\"'));
    else if (b === 0x5c) out.push(Buffer.from('\\\\'));
    else if (b < 0x20) out.push(Buffer.from(`\\u${b.toString(16).padStart(4, '0')}`));
    else out.push(Buffer.from([b]));
  }
  out.push(Buffer.from('"'));
  return Buffer.concat(out);
}

test('a path-constrained role cannot leave its root by any traversal variant', async () => {
  const k = createKey('reader-3', ['--roles', 'reader']);
  const s = await legacyInit(gw.url, { headers: bearer(k.key) });
  const vdir = join(ROOT, 'tests', 'data', 'traversal');
  const files = readdirSync(vdir).filter((f) => f.endsWith('.txt')).sort();
  assert.ok(files.length >= 20, `at least 20 variants (have ${files.length})`);
  const root = join(top, 'data');
  let byPolicy = 0;
  for (const f of files) {
    // The variants attack /srv/data; aim them at this test's root.
    const raw = Buffer.from(readFileSync(join(vdir, f)).toString('latin1').replaceAll('/srv/data', root), 'latin1');
    const body = Buffer.concat([
      Buffer.from('{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"fs__read_text_file","arguments":{"path":'),
      jsonStringBytes(raw),
      Buffer.from('}}}'),
    ]);
    const r = await fetch(gw.url, { method: 'POST', headers: { 'content-type': 'application/json', accept: ACCEPT, ...s.headers }, body });
    const text = await r.text();
    assert.ok(!text.includes(CANARY), `${f}: the canary leaked`);
    if (r.status === 200) {
      const msg = JSON.parse(text.startsWith('{') ? text : text.split('\n').find((l) => l.startsWith('data: ')).slice(6));
      assert.equal(msg.result?.isError, true, `${f}: refused`);
      assert.match(msg.result.content[0].text, /policy\.denied_argument.*'path'/, `${f}: by the policy`);
      assert.ok(!msg.result.content[0].text.includes(root), `${f}: the answer names no root`);
      byPolicy++;
    } else {
      // Not JSON the gateway accepts (invalid UTF-8): refused at parse.
      assert.equal(r.status, 400, `${f}: HTTP ${r.status} ${text.slice(0, 200)}`);
    }
  }
  assert.ok(byPolicy >= 20, `at least 20 variants refused by the policy itself (${byPolicy})`);
  // Legitimate paths still work, relative ones taken under the root.
  for (const p of ['a.txt', 'sub/c.txt', join(root, 'sub', '..', 'a.txt')]) {
    const r = await s.request(6, 'tools/call', { name: 'fs__read_text_file', arguments: { path: p } });
    assert.equal(r.response.result.isError ?? false, false, `${p}: ${JSON.stringify(r.response)}`);
  }
});

test('a decoy argument cannot carry a constrained call past its constraint', async () => {
  // The constraint checks `path`; read_multiple_files reads `paths`. A
  // decoy `path` that passes used to let `paths` through unchecked, and a
  // second spelling (`PATH`) could reach an upstream that folds case.
  const k = createKey('reader-decoy', ['--roles', 'reader']);
  const s = await legacyInit(gw.url, { headers: bearer(k.key) });
  const cases = [
    ['fs__read_multiple_files', { path: 'a.txt', paths: [join(top, 'etc', 'passwd')] }, 'path'],
    ['fs__read_text_file', { path: 'a.txt', PATH: join(top, 'etc', 'passwd') }, 'PATH'],
  ];
  for (const [name, args, bad] of cases) {
    const r = await s.request(9, 'tools/call', { name, arguments: args });
    assert.ok(!r.text.includes(CANARY), `${name}: the canary leaked`);
    assert.equal(r.response.result?.isError, true, r.text);
    assert.match(r.response.result.content[0].text, new RegExp(`policy\\.undeclared_argument.*'${bad}'`), r.text);
  }
  // Without the decoy, the constraint's own argument is missing: denied.
  const r = await s.request(10, 'tools/call', { name: 'fs__read_multiple_files', arguments: { paths: [join(top, 'etc', 'passwd')] } });
  assert.ok(!r.text.includes(CANARY));
  assert.equal(r.response.result?.isError, true);
  // The declared argument alone still works.
  const ok = await s.request(11, 'tools/call', { name: 'fs__read_text_file', arguments: { path: 'a.txt' } });
  assert.equal(ok.response.result.isError ?? false, false, ok.text);
  // A long undeclared name of multi-byte characters: cut where a whole
  // character ends, still the isError answer (a cut one was an internal
  // error).
  const long = await s.request(13, 'tools/call', { name: 'fs__read_text_file', arguments: { path: 'a.txt', ['x' + 'é'.repeat(100)]: 1 } });
  assert.equal(long.response.result?.isError, true, long.text);
  assert.match(long.response.result.content[0].text, /policy\.undeclared_argument/);
  // A tool the role does not grant still answers as unknown, whatever
  // its arguments: the check must not tell a hidden tool from a missing one.
  const hidden = await s.request(12, 'tools/call', { name: 'tfs__read_text_file', arguments: { path: 'plan.txt', decoy: 1 } });
  assert.equal(hidden.response.error?.code, -32602, hidden.text);
  assert.match(hidden.response.error.message, /Unknown tool/);
  // The refusal is audited with its reason.
  const rec = auditRecords().find((r) => r.principal === 'reader-decoy' && r.reason === 'policy.undeclared_argument');
  assert.ok(rec, 'recorded');
  assert.equal(rec.decision, 'deny');
});

test('a tenant-bound key reaches only its tenant, whatever the agent sends', async () => {
  const k = createKey('agent-acme', ['--roles', 'tenant', '--tenant', 'acme']);
  const c = await sdkClient(k.key);
  try {
    const own = await c.callTool({ name: 'tfs__read_text_file', arguments: { path: join(top, 'tenants', 'acme', 'plan.txt') } });
    assert.match(own.content[0].text, /acme plan/);
    const rel = await c.callTool({ name: 'tfs__read_text_file', arguments: { path: 'plan.txt' } });
    assert.match(rel.content[0].text, /acme plan/, 'a relative path is taken under the tenant root');
    for (const p of [join(top, 'tenants', 'globex', 'plan.txt'), '../globex/plan.txt', join(top, 'tenants', 'acme', '..', 'globex', 'plan.txt')]) {
      const r = await c.callTool({ name: 'tfs__read_text_file', arguments: { path: p } });
      assert.equal(r.isError, true, p);
      assert.ok(!JSON.stringify(r).includes(CANARY), `${p}: other tenant's data`);
    }
    // Row-level scoping: the gateway sets `text` from the principal.
    const e = await c.callTool({ name: 'up__echo', arguments: { text: 'globex' } });
    assert.equal(e.content[0].text, 'acme');
  } finally {
    await c.close();
  }
  // The audit record keeps what the agent sent, not what the policy
  // rewrote (the log refers to the client's arguments when they need no
  // redaction: the policy must rewrite a copy).
  const mine = auditRecords().filter((r) => r.principal === 'agent-acme' && r.method === 'tools/call');
  const echo = mine.find((r) => r.tool === 'up__echo');
  assert.deepEqual(echo.args, { text: 'globex' });
  assert.ok(mine.some((r) => r.tool === 'tfs__read_text_file' && r.args.path === 'plan.txt'), 'the relative path as sent');
  assert.ok(mine.some((r) => r.tool === 'tfs__read_text_file' && r.args.path === '../globex/plan.txt'), 'the traversal attempt as sent');
  // A key without a tenant matches no ${tenant} root.
  const none = createKey('agent-none', ['--roles', 'tenant']);
  const c2 = await sdkClient(none.key);
  try {
    const r = await c2.callTool({ name: 'tfs__read_text_file', arguments: { path: 'plan.txt' } });
    assert.equal(r.isError, true);
  } finally {
    await c2.close();
  }
});

test('a time-boxed grant works, then ends by itself without a restart', async () => {
  const k = createKey('reader-4', ['--roles', 'reader']);
  const s = await legacyInit(gw.url, { headers: bearer(k.key) });
  // The session's GET stream hears that its tool list changed, when the
  // grant begins and when it ends.
  const get = await openStream(gw.url, { method: 'GET', headers: s.headers });
  assert.equal(get.status, 200);
  const write = (id, name) => s.request(id, 'tools/call', { name: 'fs__write_file', arguments: { path: join(top, 'data', name), content: 'granted' } });
  assert.equal((await write(1, 'g0.txt')).response.error?.code, -32602, 'not granted yet');
  assert.equal(await get.next(300), null, 'nothing changed yet');
  // Whole seconds: 4 s of grant is at least 3 s of real time.
  const g = keys('grant', k.id, 'writer', '--for', '4s');
  assert.match(g.stdout, /Granted role writer/);
  const t0 = Date.now();
  const w1 = await write(2, 'g1.txt');
  assert.ok(Date.now() - t0 < 3000, 'the granted call ran inside the grant');
  assert.equal(w1.response.result?.isError ?? false, false, JSON.stringify(w1.response));
  assert.equal(readFileSync(join(top, 'data', 'g1.txt'), 'utf8'), 'granted');
  assert.equal((await get.next())?.method, 'notifications/tools/list_changed', 'told when the grant began');
  const listed = await s.request(3, 'tools/list', {});
  assert.ok(listed.response.result.tools.some((t) => t.name === 'fs__write_file'), 'listed while granted');
  await new Promise((r) => setTimeout(r, 4200));
  const w2 = await write(4, 'g2.txt');
  assert.equal(w2.response.error?.code, -32602, 'the grant ended');
  assert.throws(() => readFileSync(join(top, 'data', 'g2.txt')));
  const after = await s.request(5, 'tools/list', {});
  assert.ok(!after.response.result.tools.some((t) => t.name === 'fs__write_file'));
  assert.equal((await get.next())?.method, 'notifications/tools/list_changed', 'told when the grant ended');
  assert.equal(await get.next(300), null, 'once each');
  get.abort();
});

test('a tool an upstream adds later is not callable until the policy grants it', async () => {
  const narrow = createKey('narrow', ['--roles', 'narrow']);
  const admin = createKey('admin', ['--roles', 'admin']);
  const s = await legacyInit(gw.url, { headers: bearer(narrow.key) });
  const a = await legacyInit(gw.url, { headers: bearer(admin.key) });
  // Who hears of the change: only a caller that may see the new tool. A
  // list_changed for a tool hidden from the narrow role would tell it
  // that something it cannot see appeared.
  const sGet = await openStream(gw.url, { method: 'GET', headers: s.headers });
  const aGet = await openStream(gw.url, { method: 'GET', headers: a.headers });
  const listen = (k, id) => openStream(gw.url, {
    body: { jsonrpc: '2.0', id, method: 'subscriptions/listen', params: { notifications: { toolsListChanged: true }, _meta: modernMeta() } },
    headers: { ...bearer(k), 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'subscriptions/listen' },
  });
  const sListen = await listen(narrow.key, 'LN');
  const aListen = await listen(admin.key, 'LA');
  for (const st of [sGet, aGet, sListen, aListen]) assert.equal(st.status, 200);
  assert.equal((await sListen.next()).method, 'notifications/subscriptions/acknowledged');
  assert.equal((await aListen.next()).method, 'notifications/subscriptions/acknowledged');
  const r = await s.request(1, 'tools/call', { name: 'up__list_changed', arguments: {} });
  assert.equal(r.response.result.content[0].text, 'added');
  assert.equal((await aGet.next())?.method, 'notifications/tools/list_changed', 'the admin session is told');
  assert.equal((await aListen.next())?.method, 'notifications/tools/list_changed', 'the admin listen stream is told');
  // The gateway refreshes the upstream's list; the admin sees the new tool.
  let seen = false;
  for (let i = 0; i < 100 && !seen; i++) {
    seen = (await a.request(2, 'tools/list', {})).response.result.tools.some((t) => t.name === 'up__extra');
    if (!seen) await new Promise((res) => setTimeout(res, 50));
  }
  assert.ok(seen, 'the admin role sees the added tool');
  assert.equal(await sGet.next(1000), null, 'the narrow session is not told of a tool it cannot see');
  assert.equal(await sListen.next(200), null, 'nor is the narrow listen stream');
  const names = (await s.request(3, 'tools/list', {})).response.result.tools.map((t) => t.name);
  assert.deepEqual(names.sort(), ['up__echo', 'up__list_changed']);
  const hidden = await s.request(4, 'tools/call', { name: 'up__extra', arguments: {} });
  const missing = await s.request(4, 'tools/call', { name: 'up__never', arguments: {} });
  assert.equal(hidden.text, missing.text);

  // Granting it (a reloaded policy) makes it callable.
  policy = makePolicy([{ match: 'up__extra', access: 'all' }]);
  writeFileSync(gw.configPath, toYaml({ ...gw.config, ...gatewayConfig() }));
  const from = gw.logs.length;
  gw.proc.kill('SIGHUP');
  await gw.waitForLog((l) => /reload: configuration .* applied/.test(l.msg), { from });
  const ok = await s.request(5, 'tools/call', { name: 'up__extra', arguments: {} });
  assert.ok(ok.response.result, JSON.stringify(ok.response));
  // The reload changed what the narrow role sees: its streams are told;
  // the admin's, whose view did not change, are not.
  assert.equal((await sGet.next())?.method, 'notifications/tools/list_changed', 'the narrow session is told of the grant');
  assert.equal((await sListen.next())?.method, 'notifications/tools/list_changed', 'so is its listen stream');
  assert.equal(await aGet.next(300), null, 'the admin saw it all along');
  assert.equal(await aListen.next(200), null);
  for (const st of [sGet, aGet, sListen, aListen]) st.abort();
});

test('the config tightens a tool\'s input schema; a misfit never reaches the upstream', async () => {
  const admin = createKey('admin-t', ['--roles', 'admin']);
  const s = await legacyInit(gw.url, { headers: bearer(admin.key) });
  const calls = async () => Number((await s.request(90, 'tools/call', { name: 'up__calls', arguments: {} })).response.result.content[0].text);
  const before = await calls();
  for (const [user, ok] of [['q', false], ['bob', true], ['toolongzz', false], [7, false]]) {
    const r = await s.request(1, 'tools/call', { name: 'up__login', arguments: { user, pin: '1234' } });
    if (ok) {
      assert.equal(r.response.result.isError ?? false, false, JSON.stringify(r.response));
    } else {
      assert.equal(r.response.result.isError, true, `${user} refused`);
      assert.match(r.response.result.content[0].text, /Invalid arguments: \/user: (minLength|maxLength|type)/);
      assert.ok(!r.response.result.content[0].text.includes('toolongzz'), 'the value is not echoed');
    }
  }
  const missing = await s.request(2, 'tools/call', { name: 'up__login', arguments: { pin: '1' } });
  assert.match(missing.response.result.content[0].text, /required/);
  // Only the valid call and the counting calls reached the upstream.
  assert.equal(await calls(), before + 2);
});

test('without a policy section nothing is listed or callable', async () => {
  const g = await startGateway({ policy: undefined, upstreams: [{ name: 'up', command: upstreamCommands.mini() }] });
  try {
    assert.ok(g.logs.some((l) => /no policy: section: nothing is granted/.test(l.msg)));
    const s = await legacyInit(g.url);
    assert.deepEqual((await s.request(1, 'tools/list', {})).response.result.tools, []);
    assert.deepEqual((await s.request(2, 'prompts/list', {})).response.result.prompts, []);
    assert.deepEqual((await s.request(3, 'resources/list', {})).response.result.resources, []);
    const r = await s.request(4, 'tools/call', { name: 'up__echo', arguments: { text: 'x' } });
    assert.equal(r.response.error.code, -32602);
    const rr = await s.request(5, 'resources/read', { uri: 'up+mini://hello' });
    assert.equal(rr.response.error.code, -32002);
    const m = await modernRequest(g.url, 6, 'tools/list', {});
    assert.deepEqual(m.response.result.tools, []);
    // A listen stream does not take a subscription to a resource the
    // principal may not see (an update would tell it the resource exists).
    const ls = await openStream(g.url, {
      body: { jsonrpc: '2.0', id: 'L', method: 'subscriptions/listen',
        params: { notifications: { toolsListChanged: true, resourceSubscriptions: ['up+mini://hello'] }, _meta: modernMeta() } },
      headers: { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'subscriptions/listen' },
    });
    const ack = await ls.next(5000);
    assert.equal(ack?.method, 'notifications/subscriptions/acknowledged');
    assert.deepEqual(ack.params.notifications, { toolsListChanged: true });
    ls.abort();
  } finally {
    await g.stop();
  }
});
