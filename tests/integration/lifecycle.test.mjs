// Operating the gateway: graceful shutdown drains calls, SIGHUP reloads (and
// keeps the running config when the new one is invalid), an upstream that
// cannot start does not block readiness, and the command line.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startGateway } from '../lib/gateway.mjs';
import { waitFor } from '../lib/wait.mjs';
import { PORTCULLIS_BIN, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, post } from '../lib/mcp.mjs';
import { buildRequest, rawRequest } from '../lib/rawhttp.mjs';


test('SIGTERM lets an in-flight call finish, then stops the upstream and exits 0', async () => {
  const gw = await startGateway({
    upstreams: [{ name: 'up', command: upstreamCommands.mini(), timeout: '10s', shutdown_grace: '5s' }],
  });
  try {
    const s = await legacyInit(gw.url);
    const pending = s.request(1, 'tools/call', { name: 'up__sleep', arguments: { ms: 1500 } });
    await new Promise((r) => setTimeout(r, 300));
    gw.proc.kill('SIGTERM');
    const r = await pending;
    assert.equal(r.status, 200);
    assert.equal(r.response.result.content[0].text, 'slept 1500 ms');
    // It exits by itself once the upstream is stopped (no second signal).
    assert.ok(await waitFor(() => gw.exited !== null, 15000), 'exited after draining');
    const exited = await gw.stop({ timeoutMs: 15000 });
    assert.equal(exited.code, 0);
    assert.ok(gw.logs.some((l) => l.msg === 'all upstreams stopped; exiting'));
  } catch (e) {
    await gw.kill();
    throw e;
  }
});

test('SIGHUP: an invalid file keeps the running config; a valid one applies', async () => {
  const gw = await startGateway({
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const good = readFileSync(gw.configPath, 'utf8');
    writeFileSync(gw.configPath, `${good}\nbogus_key: 1\n`);
    gw.proc.kill('SIGHUP');
    assert.ok(
      await waitFor(() => gw.logs.some((l) => /reload: the new configuration is invalid/.test(l.msg))),
      'the failed reload is reported',
    );
    assert.ok(gw.logs.some((l) => /unknown key 'bogus_key'/.test(l.msg)), 'and says why, with the position');
    // Still serving with the old limits: a 3000-byte body is fine.
    const big = { jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x'.repeat(3000), version: '1' } } };
    assert.equal((await post(gw.url, big)).status, 200);

    writeFileSync(gw.configPath, `${good}\nlimits:\n  max_body_bytes: 2000\n`);
    gw.proc.kill('SIGHUP');
    assert.ok(await waitFor(() => gw.logs.some((l) => /reload: configuration .* applied/.test(l.msg))));
    assert.equal((await post(gw.url, big)).status, 413, 'the new limit is in force');
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
});

test('an upstream that cannot start does not block readiness; the others serve', async () => {
  const gw = await startGateway({
    upstreams: [
      { name: 'broken', command: ['/nonexistent/portcullis-test-binary'], restart_backoff: { min: '1s', max: '5s' } },
      { name: 'up', command: upstreamCommands.mini() },
    ],
  });
  try {
    const ready = await fetch(`${gw.adminUrl}/readyz`);
    const body = await ready.json();
    assert.equal(ready.status, 200);
    assert.notEqual(body.upstreams.broken, 'ready');
    assert.equal(body.upstreams.up, 'ready');
    // DNS rebinding: a page on another name that resolves to 127.0.0.1
    // must not read the upstreams' names and states.
    const evil = await rawRequest(gw.adminPort, buildRequest('GET', '/readyz', [['Host', 'evil.example']]));
    assert.equal(evil.status, 403);
    assert.ok(!evil.body.includes('broken'), evil.body);
    const own = await rawRequest(gw.adminPort, buildRequest('GET', '/healthz', [['Host', `127.0.0.1:${gw.adminPort}`]]));
    assert.equal(own.status, 200);
    // An IP literal is no rebinding (that needs a name): a probe may use
    // the address it was given.
    const literal = await rawRequest(gw.adminPort, buildRequest('GET', '/healthz', [['Host', '127.0.0.2:9']]));
    assert.equal(literal.status, 200);
    assert.ok(gw.logs.some((l) => /broken/.test(l.msg) && /cannot execute|No such file/.test(l.msg)));
    const s = await legacyInit(gw.url);
    const r = await s.request(1, 'tools/call', { name: 'up__echo', arguments: { text: 'ok' } });
    assert.equal(r.response.result.content[0].text, 'ok');
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
});

test('portcullis version, --help and check', () => {
  const v = spawnSync(PORTCULLIS_BIN, ['version'], { encoding: 'utf8' });
  assert.equal(v.status, 0);
  assert.match(v.stdout, /^portcullis \d+\.\d+\.\d+/);

  const h = spawnSync(PORTCULLIS_BIN, ['--help'], { encoding: 'utf8' });
  assert.equal(h.status, 0);
  for (const word of ['serve', 'check', 'version', '--config', '--log-level', 'SIGHUP', '/healthz', '/readyz'])
    assert.ok(h.stdout.includes(word), `--help mentions ${word}`);

  const u = spawnSync(PORTCULLIS_BIN, ['frobnicate'], { encoding: 'utf8' });
  assert.equal(u.status, 2);

  const dir = mkdtempSync(join(tmpdir(), 'portcullis-cli-'));
  try {
    const ok = join(dir, 'ok.yaml');
    writeFileSync(ok, `auth: none\nupstreams:\n  - name: up\n    command: [${JSON.stringify(upstreamCommands.mini()[0])}]\n`);
    const c1 = spawnSync(PORTCULLIS_BIN, ['check', '-c', ok], { encoding: 'utf8' });
    assert.equal(c1.status, 0, c1.stderr);

    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'listen: 127.0.0.1:8080\nupstream:\n  - name: x\nlimits:\n  idle_timeout: 30\n');
    const c2 = spawnSync(PORTCULLIS_BIN, ['check', '-c', bad], { encoding: 'utf8' });
    assert.equal(c2.status, 1);
    // Every error at once, each with file:line:col.
    assert.match(c2.stderr, /bad\.yaml:2:1: unknown key 'upstream'; did you mean 'upstreams'\?/);
    assert.match(c2.stderr, /bad\.yaml:5:17: .*unit/);

    const sec = join(dir, 'secret.yaml');
    writeFileSync(sec, 'upstreams:\n  - name: up\n    command: [x]\n    env:\n      API_TOKEN: hunter2-literal\n');
    const c3 = spawnSync(PORTCULLIS_BIN, ['check', '-c', sec], { encoding: 'utf8' });
    assert.equal(c3.status, 1);
    assert.match(c3.stderr, /literal secret/);
    assert.ok(!c3.stderr.includes('hunter2'), 'the secret is not echoed');

    const s = spawnSync(PORTCULLIS_BIN, ['serve', '-c', bad], { encoding: 'utf8', timeout: 10000 });
    assert.equal(s.status, 1, 'serve refuses to start on an invalid config');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
