// An unauthenticated flood cannot fill the audit disk. Every refusal
// before authentication is worth a record, but a client with no credential
// must not be able to write records as fast as it can send requests: a
// full disk fails the log, and a failed log refuses everyone. So each
// source gets a burst and a steady rate of individual records; the rest
// are counted into summary records (event refusals.suppressed), and the
// individual records plus the summaries account for every refusal.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { readAuditRecords } from '../lib/audit.mjs';
import { startGateway, toYaml } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, post, ACCEPT } from '../lib/mcp.mjs';
import { buildRequest, rawRequest } from '../lib/rawhttp.mjs';

const BAD_KEYS = 150, BAD_HOSTS = 150;
let dir, keyFile, logDir, records, logs, elapsedS, apiKey;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-flood-'));
  writeFileSync(join(dir, 'pepper'), randomBytes(32).toString('hex'), { mode: 0o600 });
  keyFile = join(dir, 'audit.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  logDir = join(dir, 'audit');
  const auth = { api_keys: { store: join(dir, 'keys.db'), pepper: `\${file:${join(dir, 'pepper')}}` } };
  writeFileSync(join(dir, 'cli.yaml'), toYaml({ auth }));
  const k = spawnSync(PORTCULLIS_BIN, ['keys', 'create', '--principal', 'alice', '--json', '-c', join(dir, 'cli.yaml')], { encoding: 'utf8' });
  assert.equal(k.status, 0, k.stderr);
  apiKey = JSON.parse(k.stdout).key;
  const wrong = apiKey.slice(0, -4) + (apiKey.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  const gw = await startGateway({
    // The failed-authentication throttle would answer 429 after a few
    // tries (and lock the valid key out too): raised, so that every wrong
    // key reaches the refusal records this test is about.
    auth: { ...auth, failed_auth: { max_failures: 100000 } },
    audit: { dir: logDir, key: `\${file:${keyFile}}` },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const t0 = Date.now();
    // Wrong credentials, 10 at a time, as fast as the gateway answers.
    for (let i = 0; i < BAD_KEYS; i += 10) {
      const rs = await Promise.all(Array.from({ length: 10 }, (_, j) =>
        post(gw.url, { jsonrpc: '2.0', id: i + j, method: 'ping' }, { authorization: `Bearer ${wrong}` })));
      assert.ok(rs.every((r) => r.status === 401), 'every request is still refused: ' + rs.map((r) => r.status + ' ' + r.text.slice(0, 120)).join(' / '));
    }
    // Foreign Host headers (DNS rebinding), before any authentication.
    const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
    for (let i = 0; i < BAD_HOSTS; i += 10) {
      const rs = await Promise.all(Array.from({ length: 10 }, () => rawRequest(gw.port,
        buildRequest('POST', '/mcp', [['Host', 'evil.example'], ['Content-Type', 'application/json'], ['Accept', ACCEPT]], body))));
      assert.ok(rs.every((r) => r.status === 403));
    }
    elapsedS = (Date.now() - t0) / 1000;
    // The records gate only records: a valid key is served at once.
    const s = await legacyInit(gw.url, { headers: { authorization: `Bearer ${apiKey}` } });
    const ok = await s.request(7, 'tools/call', { name: 'up__echo', arguments: { text: 'still served' } });
    assert.equal(ok.response.result.content[0].text, 'still served');
    await gw.stop(); // shutdown writes the summaries still held
    logs = gw.logs;
  } catch (e) {
    await gw.kill();
    throw e;
  }
  records = readAuditRecords(logDir);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('individual records stay within the burst and the steady rate', () => {
  const single = records.filter((r) => r.type === 'request' && r.decision === 'deny' && r.principal === null);
  // 20 at once, 5 a second after that, for one source (127.0.0.1).
  const most = 20 + Math.ceil(5 * (elapsedS + 1));
  assert.ok(single.length >= 20, `the burst is recorded one by one (${single.length})`);
  assert.ok(single.length <= most, `${single.length} individual records in ${elapsedS}s (at most ${most})`);
  assert.ok(single.every((r) => r.source === '127.0.0.1'));
});

test('summaries account for every refusal, by reason', () => {
  const single = records.filter((r) => r.type === 'request' && r.decision === 'deny' && r.principal === null);
  const sums = records.filter((r) => r.type === 'event' && r.event === 'refusals.suppressed');
  assert.ok(sums.length >= 1, 'at least one summary');
  for (const s of sums) {
    assert.equal(s.source, '127.0.0.1');
    assert.equal(s.decision, 'deny');
    assert.equal(s.reason, 'flood.suppressed');
    assert.equal(Object.values(s.reasons).reduce((a, b) => a + b, 0), s.count);
  }
  const byReason = {};
  for (const r of single) byReason[r.reason] = (byReason[r.reason] ?? 0) + 1;
  for (const s of sums) for (const [k, v] of Object.entries(s.reasons)) byReason[k] = (byReason[k] ?? 0) + v;
  const keyReasons = Object.entries(byReason).filter(([k]) => k.startsWith('apikey.')).reduce((a, [, v]) => a + v, 0);
  assert.equal(keyReasons, BAD_KEYS, JSON.stringify(byReason));
  assert.equal(byReason['http.host'], BAD_HOSTS, JSON.stringify(byReason));
});

test('the log is not flooded either, and says what was summarized', () => {
  const lines = logs.filter((l) => l.msg === 'authentication refused');
  assert.ok(lines.length < BAD_KEYS / 2, `${lines.length} log lines for ${BAD_KEYS} refusals`);
  assert.ok(logs.some((l) => /refusals from 127\.0\.0\.1 were not recorded one by one/.test(l.msg)));
});

test('audit tail shows a summary with its count and reasons', () => {
  const t = spawnSync(PORTCULLIS_BIN, ['audit', 'tail', '-n', '1000', logDir], { encoding: 'utf8' });
  assert.equal(t.status, 0, t.stderr);
  const line = t.stdout.split('\n').find((l) => l.includes('refusals.suppressed'));
  assert.ok(line, t.stdout.slice(-2000));
  assert.match(line, / count=\d+ reasons=[a-z.]+:\d+/);
  assert.match(line, /source=127\.0\.0\.1/);
});

test('the chain with the summaries verifies', () => {
  const v = spawnSync(PORTCULLIS_BIN, ['audit', 'verify', '-k', keyFile, logDir], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

test('audit.flood sets the burst and rate: 3 at once, then 1 a second; the summary has the rest', async () => {
  const d = join(dir, 'tuned');
  const gw = await startGateway({
    auth: 'none',
    audit: { dir: d, key: `\${file:${keyFile}}`, flood: { burst: 3, per_second: 1, global_per_second: 1000 } },
    upstreams: [],
  });
  const N = 40;
  let t;
  try {
    const body = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
    const t0 = Date.now();
    const rs = await Promise.all(Array.from({ length: N }, () => rawRequest(gw.port,
      buildRequest('POST', '/mcp', [['Host', 'evil.example'], ['Content-Type', 'application/json'], ['Accept', ACCEPT]], body))));
    t = (Date.now() - t0) / 1000;
    assert.ok(rs.every((r) => r.status === 403));
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const recs = readAuditRecords(d);
  const single = recs.filter((r) => r.type === 'request' && r.reason === 'http.host');
  const sums = recs.filter((r) => r.type === 'event' && r.event === 'refusals.suppressed');
  assert.ok(single.length >= 3 && single.length <= 3 + Math.ceil(t + 1), `${single.length} individual records in ${t}s`);
  assert.equal(single.length + sums.reduce((a, r) => a + r.count, 0), N, 'every refusal accounted for');
});

test('with auth: none, refusals of the anonymous principal are gated too; its calls are recorded one by one', async () => {
  const d = join(dir, 'anon');
  const gw = await startGateway({
    auth: 'none',
    audit: { dir: d, key: `\${file:${keyFile}}` },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  const N = 200;
  let t;
  try {
    const t0 = Date.now();
    // Accept without JSON or SSE: 406, a refusal before routing.
    for (let i = 0; i < N; i += 10) {
      const rs = await Promise.all(Array.from({ length: 10 }, (_, j) => fetch(gw.url, {
        method: 'POST', headers: { 'content-type': 'application/json', accept: 'text/html' },
        body: JSON.stringify({ jsonrpc: '2.0', id: i + j, method: 'ping' }),
      }).then(async (r) => { await r.text(); return r.status; })));
      assert.ok(rs.every((st) => st === 406), rs.join(' '));
    }
    t = (Date.now() - t0) / 1000;
    const s = await legacyInit(gw.url);
    for (let i = 0; i < 30; i++) {
      const r = await s.request(100 + i, 'tools/call', { name: 'up__echo', arguments: { text: `call ${i}` } });
      assert.equal(r.response.result.content[0].text, `call ${i}`);
    }
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const recs = readAuditRecords(d);
  const single = recs.filter((r) => r.type === 'request' && r.reason === 'http.406');
  assert.ok(single.every((r) => r.principal === 'anonymous'));
  assert.ok(single.length >= 20 && single.length <= 20 + Math.ceil(5 * (t + 1)), `${single.length} individual records in ${t}s`);
  const summed = recs.filter((r) => r.event === 'refusals.suppressed').reduce((a, r) => a + (r.reasons['http.406'] ?? 0), 0);
  assert.equal(single.length + summed, N, 'every refusal is accounted for');
  // Calls are not refusals: each has its record.
  assert.equal(recs.filter((r) => r.method === 'tools/call' && r.status === 'ok').length, 30);
  assert.equal(spawnSync(PORTCULLIS_BIN, ['audit', 'verify', '-k', keyFile, d], { encoding: 'utf8' }).status, 0);
});
