// A read-only audit directory, for real. The tests run as root, whom file
// modes do not stop, so the directory and its files are made immutable
// (chattr +i: even root's writes fail, with EPERM) — while the gateway
// runs, and before it starts. Either way the gateway must refuse requests
// with a clear error and answer nothing it has not recorded.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { OPEN_POLICY, startGateway, toYaml } from '../lib/gateway.mjs';
import { startStdio } from '../lib/stdio.mjs';
import { ROOT, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, post } from '../lib/mcp.mjs';

let dir, keyFile;
const immutable = (on, ...paths) => spawnSync('chattr', [on ? '+i' : '-i', ...paths], { encoding: 'utf8' });

before(() => {
  // Under build/: on the repository's file system (ext4 here), where
  // chattr works; a tmpfs /tmp would not take the attribute.
  mkdirSync(join(ROOT, 'build'), { recursive: true });
  dir = mkdtempSync(join(ROOT, 'build', 'audit-ro-'));
  keyFile = join(dir, 'audit.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const probe = join(dir, 'probe');
  mkdirSync(probe);
  const r = immutable(true, probe);
  assert.equal(r.status, 0, `this test needs chattr +i on ${dir} (root, ext4): ${r.stderr}`);
  immutable(false, probe);
});
after(() => {
  if (!dir) return;
  const all = (d) => [d, ...readdirSync(d, { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? all(join(d, e.name)) : [join(d, e.name)]))];
  immutable(false, ...all(dir));
  rmSync(dir, { recursive: true, force: true });
});

const config = (logDir) => ({
  audit: { dir: logDir, key: `\${file:${keyFile}}` },
  upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
});

test('the audit directory turns read-only under a running gateway: requests are refused (503) with a clear error', async () => {
  const logDir = join(dir, 'live');
  const gw = await startGateway(config(logDir));
  try {
    const s = await legacyInit(gw.url);
    const ok = await s.request(1, 'tools/call', { name: 'up__echo', arguments: { text: 'before' } });
    assert.equal(ok.response.result.content[0].text, 'before');
    const files = readdirSync(logDir).map((f) => join(logDir, f));
    assert.equal(immutable(true, logDir, ...files).status, 0);
    const r = await s.request(2, 'tools/call', { name: 'up__echo', arguments: { text: 'after' } });
    assert.equal(r.status, 503);
    assert.equal(r.response.error.code, -32004);
    assert.equal(r.response.error.message, 'Service Unavailable: the audit log cannot be written');
    assert.ok(!r.text.includes('after'), 'the unrecorded result is withheld');
    const again = await s.request(3, 'ping');
    assert.equal(again.status, 503, 'and every later request is refused');
    assert.ok(gw.logs.some((l) => l.level === 'error' && /audit log .*(Operation not permitted|write failed)/.test(l.msg)), 'the log says why');
    immutable(false, logDir, ...files);
  } finally {
    await gw.kill();
  }
});

test('a 2025-03-26 batch whose records cannot be written: every member is an error, no result leaves', async () => {
  const logDir = join(dir, 'batch');
  const gw = await startGateway(config(logDir));
  try {
    const s = await legacyInit(gw.url, { version: '2025-03-26' });
    const files = readdirSync(logDir).map((f) => join(logDir, f));
    assert.equal(immutable(true, logDir, ...files).status, 0);
    const r = await post(gw.url, [
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'secret-one' } } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'secret-two' } } },
    ], s.headers);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.messages.map((m) => [m.id, m.error?.code, m.error?.message]).sort(), [
      [1, -32004, 'Service Unavailable: the audit log cannot be written'],
      [2, -32004, 'Service Unavailable: the audit log cannot be written'],
    ]);
    assert.ok(!r.text.includes('secret-'), 'no unrecorded result leaves');
    immutable(false, logDir, ...files);
  } finally {
    await gw.kill();
  }
});

test('the stdio front end fails closed the same way', async () => {
  const logDir = join(dir, 'stdio');
  const cfg = join(dir, 'stdio.yaml');
  writeFileSync(cfg, toYaml({ log_level: 'warn', auth: 'none', policy: OPEN_POLICY, ...config(logDir) }));
  const io = startStdio(cfg);
  try {
    await io.initialize(1);
    const ok = (io.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'before' } } }), await io.answer(2));
    assert.equal(ok.result.content[0].text, 'before');
    const files = readdirSync(logDir).map((f) => join(logDir, f));
    assert.equal(immutable(true, logDir, ...files).status, 0);
    io.send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'secret-after' } } });
    const r = await io.answer(3);
    assert.equal(r.error?.code, -32004, JSON.stringify(r));
    assert.equal(r.error.message, 'Service Unavailable: the audit log cannot be written');
    io.send({ jsonrpc: '2.0', id: 4, method: 'ping' });
    assert.equal((await io.answer(4)).error?.code, -32004, 'and every later request is refused');
    assert.ok(!JSON.stringify([...io.answers.values()]).includes('secret-after'), 'the unrecorded result is withheld');
    immutable(false, logDir, ...files);
  } finally {
    immutable(false, logDir, ...readdirSync(logDir).map((f) => join(logDir, f)));
    await io.close();
  }
});

test('a read-only audit directory at start: the gateway does not start, and says why', async () => {
  const logDir = join(dir, 'frozen');
  mkdirSync(logDir);
  assert.equal(immutable(true, logDir).status, 0);
  await assert.rejects(startGateway(config(logDir)), (e) => {
    assert.match(e.message, /audit/i);
    assert.match(e.message, /Operation not permitted|cannot/);
    return true;
  });
  immutable(false, logDir);
});
