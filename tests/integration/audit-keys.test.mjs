// Key lifecycle events reach the gateway's audit log although the `keys`
// CLI runs as another process: created, rotated, granted, ungranted and
// revoked keys show up as chained events, including those made while the
// gateway was down, each once, and never with the secret.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { keySecret, startGateway, toYaml } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, upstreamCommands } from '../lib/paths.mjs';
import { readAuditRecords } from '../lib/audit.mjs';

let dir, auth, cliCfg, keyFile, logDir;

function keys(...args) {
  const r = spawnSync(PORTCULLIS_BIN, ['keys', ...args, '-c', cliCfg], { encoding: 'utf8' });
  assert.equal(r.status, 0, `keys ${args.join(' ')}: ${r.stderr}`);
  return r;
}
const create = (p) => JSON.parse(keys('create', '--principal', p, '--json').stdout);

function events() {
  return readAuditRecords(logDir)
    .filter((r) => typeof r.event === 'string' && r.event.startsWith('key.'));
}

async function until(pred, ms = 8000) {
  const end = Date.now() + ms;
  for (;;) {
    const ev = events();
    if (pred(ev) || Date.now() > end) return ev;
    await new Promise((r) => setTimeout(r, 100));
  }
}

const gatewayConfig = () => ({
  auth,
  audit: { dir: logDir, key: `\${file:${keyFile}}` },
  upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
});

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-auditkeys-'));
  writeFileSync(join(dir, 'pepper'), randomBytes(32).toString('hex'), { mode: 0o600 });
  keyFile = join(dir, 'audit.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  logDir = join(dir, 'audit');
  auth = { api_keys: { store: join(dir, 'keys.db'), pepper: `\${file:${join(dir, 'pepper')}}` } };
  cliCfg = join(dir, 'cli.yaml');
  writeFileSync(cliCfg, toYaml({ auth }));
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('key lifecycle events are recorded in the audit log, also those made while the gateway was down', async () => {
  const early = create('early'); // before the gateway ever ran
  let gw = await startGateway(gatewayConfig());
  let late, rotated;
  try {
    late = create('late');
    keys('grant', late.id, 'writer', '--for', '1h');
    keys('ungrant', late.id, 'writer');
    rotated = JSON.parse(keys('rotate', late.id, '--grace', '1h', '--json').stdout);
    keys('revoke', late.id);
    const ev = await until((e) => e.some((r) => r.event === 'key.revoked'));
    const of = (id) => ev.filter((r) => r.key_id === id).map((r) => r.event);
    assert.deepEqual(of(early.id), ['key.created']);
    assert.deepEqual(of(late.id), ['key.created', 'key.granted', 'key.ungranted', 'key.rotated', 'key.revoked']);
    const granted = ev.find((r) => r.event === 'key.granted');
    assert.equal(granted.principal, 'late');
    assert.match(granted.detail, /^role=writer$/);
    assert.equal(typeof granted.at, 'number');
  } finally {
    await gw.stop();
  }
  // While the gateway is down.
  const down = create('while-down');
  gw = await startGateway(gatewayConfig());
  try {
    const ev = await until((e) => e.some((r) => r.key_id === down.id));
    assert.deepEqual(ev.filter((r) => r.key_id === down.id).map((r) => r.event), ['key.created']);
    // Nothing was recorded twice across the restart.
    assert.equal(ev.filter((r) => r.key_id === early.id).length, 1);
    assert.equal(ev.filter((r) => r.key_id === late.id).length, 5);
  } finally {
    await gw.stop();
  }
  const text = readdirSync(logDir).map((f) => readFileSync(join(logDir, f), 'utf8')).join('');
  for (const k of [early.key, late.key, rotated.key, down.key]) {
    assert.ok(!text.includes(keySecret(k)), 'no secret in the audit log');
  }
  const v = spawnSync(PORTCULLIS_BIN, ['audit', 'verify', '-k', keyFile, logDir], { encoding: 'utf8' });
  assert.equal(v.status, 0, v.stdout + v.stderr);
});
