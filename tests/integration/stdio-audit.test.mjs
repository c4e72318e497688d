// The stdio front end (`portcullis stdio`) records every outcome the way
// the HTTP front does: the local user's calls (with redacted arguments),
// initialize, notifications (accepted), the client's answers to an
// upstream's requests, policy denials and refusals of bad lines — each
// answer held until its record is written. A canary in a
// sensitive argument never reaches the log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { toYaml } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, upstreamCommands } from '../lib/paths.mjs';
import { modernMeta } from '../lib/mcp.mjs';
import { startStdio } from '../lib/stdio.mjs';
import { readAuditRecords } from '../lib/audit.mjs';

const CANARY = `CANARY-${randomBytes(8).toString('hex')}`;
let dir, keyFile, logDir, records, stderr;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-stdio-audit-'));
  keyFile = join(dir, 'audit.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  logDir = join(dir, 'audit');
  const cfg = join(dir, 'desktop.yaml');
  writeFileSync(cfg, toYaml({
    log_level: 'warn',
    auth: 'none',
    audit: { dir: logDir, key: `\${file:${keyFile}}` },
    policy: {
      default_roles: ['user'],
      roles: { user: { tools: [{ match: 'up__echo', access: 'all' }, { match: 'up__login', access: 'all' },
        { match: 'up__elicit', access: 'all' }] } },
    },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  }));
  const io = startStdio(cfg);
  const { send, answer } = io;
  await io.initialize(1, { elicitation: {} });
  send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'hello stdio' } } });
  send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'up__login', arguments: { user: 'al', password: CANARY } } });
  send({ jsonrpc: '2.0', id: 4, method: 'tools/call', params: { name: 'up__fail', arguments: {} } }); // not granted
  send('{"jsonrpc":"2.0","id":5,'); // not JSON
  send({ jsonrpc: '2.0', id: 6, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'modern stdio' }, _meta: modernMeta() } });
  assert.equal((await answer(2)).result.content[0].text, 'hello stdio');
  await answer(3);
  assert.equal((await answer(4)).error.code, -32602, 'a hidden tool is a missing one');
  assert.equal((await answer(6)).result.content[0].text, 'modern stdio');
  // The upstream asks the client; the client answers, then answers the
  // same request again (nothing pending any more).
  send({ jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'up__elicit', arguments: {} } });
  const q = await io.asked('elicitation/create');
  send({ jsonrpc: '2.0', id: q.id, result: { action: 'accept', content: { answer: CANARY } } });
  assert.equal((await answer(7)).result.content[0].text, `{"answer":"${CANARY}"}`);
  send({ jsonrpc: '2.0', id: q.id, result: { action: 'accept', content: {} } });
  send({ jsonrpc: '2.0', id: 8, method: 'ping' }); // after the late answer: its record is written
  await answer(8);
  // A second initialize is refused, and recorded like any refusal.
  send({ jsonrpc: '2.0', id: 9, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
  assert.equal((await answer(9)).error?.code, -32600);
  assert.equal(await io.close(), 0, io.stderr);
  stderr = io.stderr;
  records = readAuditRecords(logDir);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('every outcome on stdio has its record', () => {
  const req = records.filter((r) => r.type === 'request');
  const rows = req.map((r) => [r.method, r.tool, r.era, r.decision, r.status, r.reason]);
  // Only a call that went to the upstream names it (not the policy's
  // denial, nor what the gateway answers itself).
  assert.deepEqual(req.filter((r) => r.upstream).map((r) => [r.tool, r.upstream]).sort(),
    [[null, 'up'], ['up__echo', 'up'], ['up__echo', 'up'], ['up__elicit', 'up'], ['up__login', 'up']],
    JSON.stringify(req, null, 1));
  const has = (row) => assert.ok(rows.some((x) => JSON.stringify(x) === JSON.stringify(row)), `${JSON.stringify(row)} in ${JSON.stringify(rows)}`);
  has(['initialize', null, 'legacy', 'allow', 'ok', null]);
  has(['notifications/initialized', null, 'legacy', 'allow', 'accepted', null]);
  has(['tools/call', 'up__echo', 'legacy', 'allow', 'ok', null]);
  has(['tools/call', 'up__fail', 'legacy', 'deny', 'refused', 'policy.denied_tool']);
  has([null, null, 'legacy', 'allow', 'error', 'rpc.-32700']);
  has(['tools/call', 'up__echo', 'modern', 'allow', 'ok', null]);
  has(['elicitation/create', null, 'legacy', 'allow', 'ok', null]);
  has([null, null, 'legacy', 'deny', 'refused', 'response.unknown_id']);
  has(['initialize', null, 'legacy', 'allow', 'error', 'rpc.-32600']);
  assert.equal(req.find((r) => r.method === 'elicitation/create').upstream, 'up', 'the upstream that asked');
  assert.ok(req.every((r) => r.source === 'stdio' && /^stdio:/.test(r.principal)), 'the local user, from stdio');
  assert.ok(req.every((r) => /^[0-9a-f]{32}$/.test(r.request_id)), 'every record names its request');
  assert.equal(new Set(req.map((r) => r.request_id)).size, req.length, 'one id per request');
  const echo = req.find((r) => r.tool === 'up__echo' && r.era === 'legacy');
  assert.deepEqual(echo.args, { text: 'hello stdio' });
  assert.ok(echo.session, 'the legacy session is named');
});

test('the start and stop of the stdio gateway are events, and the chain verifies', () => {
  const ev = records.filter((r) => r.type === 'event').map((r) => r.event);
  assert.ok(ev.includes('gateway.started') && ev.includes('gateway.stopping'), JSON.stringify(ev));
  const v = spawnSync(PORTCULLIS_BIN, ['audit', 'verify', '-k', keyFile, logDir], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

test('a secret argument is redacted in the record and absent from every output', () => {
  const login = records.find((r) => r.tool === 'up__login');
  assert.equal(login.args.password, '<redacted>');
  const all = readdirSync(logDir).map((f) => readFileSync(join(logDir, f), 'utf8')).join('\n') + stderr;
  assert.ok(!all.includes(CANARY));
});
