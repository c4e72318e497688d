// The stdio front end (`portcullis stdio`) applies the limits stage as the
// HTTP front does: the local user (principal stdio:<login>) is the key; a
// refusal is the JSON-RPC error -32009 with data {reason, limit,
// retryAfter}, stops before the upstream, and is recorded as a deny with
// the limit's reason; counters are saved to the limits store and survive a
// restart.
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

let dir, cfgFile, keyFile, logDir;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-stdio-limits-'));
  keyFile = join(dir, 'audit.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  logDir = join(dir, 'audit');
  cfgFile = join(dir, 'desktop.yaml');
  writeFileSync(cfgFile, toYaml({
    log_level: 'warn',
    auth: 'none',
    audit: { dir: logDir, key: `\${file:${keyFile}}` },
    policy: { default_roles: ['user'], roles: { user: { tools: [{ match: '*', access: 'all' }] } } },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
    // Per minute: a slow machine cannot let the window pass between calls.
    rate_limits: [{ id: 'echo-per-min', scope: 'tool', match: 'up__echo', rate: '2/minute' }],
    budgets: [{ id: 'daily', scope: 'key', period: 'day', amount: 5 }],
    tool_costs: { up__add: 3, 'up__ca*': 0 },
    limits_store: join(dir, 'limits.db'),
  }));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const call = (io, id, name, args, modern = false) =>
  io.send({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args, ...(modern ? { _meta: modernMeta() } : {}) } });

function assertRefused(m, { reason, limit, retryAfter }) {
  assert.ok(m.error, JSON.stringify(m));
  assert.equal(m.error.code, -32009);
  assert.equal(m.error.data.reason, reason);
  assert.equal(m.error.data.limit, limit);
  if (retryAfter) {
    const [lo, hi] = retryAfter;
    assert.ok(m.error.data.retryAfter >= lo && m.error.data.retryAfter <= hi, `retryAfter ${m.error.data.retryAfter} not in [${lo}, ${hi}]`);
  }
}

function records() {
  return readAuditRecords(logDir)
    .filter((r) => r.type === 'request' && r.method === 'tools/call');
}

test('rate limit and budget on stdio: exact refusals, before the upstream, recorded; counters survive a restart', async () => {
  let io = startStdio(cfgFile);
  try {
    await io.initialize(1);
    call(io, 2, 'up__echo', { text: 'one' });
    assert.equal((await io.answer(2)).result.content[0].text, 'one');
    call(io, 3, 'up__echo', { text: 'two' }, true); // modern: the same counter
    assert.equal((await io.answer(3)).result.content[0].text, 'two');
    call(io, 4, 'up__echo', { text: 'three' });
    // 2 a minute: the next one in 30 s (29 when a second went by).
    assertRefused(await io.answer(4), { reason: 'limit.rate', limit: 'echo-per-min', retryAfter: [28, 30] });
    // The budget: add costs 3 of 5; a second add would make 6.
    call(io, 5, 'up__add', { a: 1, b: 2 });
    assert.ok((await io.answer(5)).result, 'the first add fits');
    call(io, 6, 'up__add', { a: 2, b: 2 });
    assertRefused(await io.answer(6), { reason: 'limit.budget', limit: 'daily' });
    // calls (cost 0) counts what reached the upstream: echo twice, add
    // once, and this call — neither refusal did.
    call(io, 7, 'up__calls', {});
    assert.equal((await io.answer(7)).result.content[0].text, '4');
    assert.equal(await io.close(), 0, io.stderr);
  } finally {
    io.child.kill('SIGKILL');
  }
  const denies = records().filter((r) => r.decision === 'deny');
  assert.deepEqual(denies.map((r) => [r.tool, r.reason, r.status, r.upstream]), [
    ['up__echo', 'limit.rate', 'refused', null], // before routing
    ['up__add', 'limit.budget', 'refused', 'up'], // where it would leave
  ], JSON.stringify(denies, null, 1));
  assert.ok(denies.every((r) => /^stdio:/.test(r.principal) && r.source === 'stdio'));

  // A new process: the minute and the day are not over.
  io = startStdio(cfgFile);
  try {
    await io.initialize(1);
    call(io, 2, 'up__echo', { text: 'again' });
    assertRefused(await io.answer(2), { reason: 'limit.rate', limit: 'echo-per-min', retryAfter: [1, 30] });
    call(io, 3, 'up__add', { a: 1, b: 1 });
    assertRefused(await io.answer(3), { reason: 'limit.budget', limit: 'daily' });
    assert.equal(await io.close(), 0, io.stderr);
  } finally {
    io.child.kill('SIGKILL');
  }
  const v = spawnSync(PORTCULLIS_BIN, ['audit', 'verify', '-k', keyFile, logDir], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stdout + v.stderr);
});
