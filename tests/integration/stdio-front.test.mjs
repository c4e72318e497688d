// `portcullis stdio -c FILE`: a desktop client's single stdio server. The
// official SDK clients spawn the real binary and reach the upstreams
// through it, in both eras; production mode refuses the front end.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as StdioV1 } from '@modelcontextprotocol/sdk/client/stdio.js';
import { Client as ClientV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioV2 } from '@modelcontextprotocol/client/stdio';
import { OPEN_POLICY, toYaml } from '../lib/gateway.mjs';
import { readAuditRecords } from '../lib/audit.mjs';
import { randomBytes } from 'node:crypto';
import { startStdio } from '../lib/stdio.mjs';
import { PORTCULLIS_BIN, upstreamCommands } from '../lib/paths.mjs';

let dir, cfg;

before(() => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-stdio-'));
  cfg = join(dir, 'desktop.yaml');
  writeFileSync(
    cfg,
    toYaml({
      log_level: 'warn',
      auth: 'none',
      policy: OPEN_POLICY,
      upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
    }),
  );
});
after(() => rmSync(dir, { recursive: true, force: true }));

const params = () => ({
  command: PORTCULLIS_BIN,
  args: ['stdio', '-c', cfg],
  env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? '' },
  stderr: 'pipe',
});

test('SDK v1 (legacy) over stdio: list and call through the gateway', async () => {
  const t = new StdioV1(params());
  let stderr = '';
  const c = new ClientV1({ name: 'desktop', version: '1' });
  await c.connect(t);
  t.stderr?.on('data', (d) => (stderr += d));
  const tools = await c.listTools();
  assert.ok(tools.tools.some((x) => x.name === 'up__echo'));
  const r = await c.callTool({ name: 'up__echo', arguments: { text: 'over stdio' } });
  assert.equal(r.content[0].text, 'over stdio');
  const p = await c.callTool({ name: 'up__progress', arguments: { steps: 2, ms: 10 } }, undefined, { onprogress: () => {} });
  assert.equal(p.content[0].text, 'progress done');
  await c.close();
  assert.ok(!/AddressSanitizer|runtime error:/.test(stderr), stderr);
});

test('SDK v2 pinned to 2026-07-28 over stdio', async () => {
  const c = new ClientV2({ name: 'desktop', version: '1' }, { versionNegotiation: { mode: { pin: '2026-07-28' } } });
  await c.connect(new StdioV2(params()));
  const r = await c.callTool({ name: 'up__echo', arguments: { text: 'modern stdio' } });
  assert.equal(r.content[0].text, 'modern stdio');
  await c.close();
});

test('mode: production refuses the stdio front end', () => {
  const prod = join(dir, 'prod.yaml');
  // A valid production config: a network-ready transport and a real method.
  writeFileSync(join(dir, 'pepper'), 'x'.repeat(40), { mode: 0o600 });
  writeFileSync(
    prod,
    toYaml({
      mode: 'production',
      trusted_proxies: ['10.0.0.0/8'],
      auth: { api_keys: { store: join(dir, 'k.db'), pepper: `\${file:${join(dir, 'pepper')}}` } },
      upstreams: [],
    }),
  );
  const r = spawnSync(PORTCULLIS_BIN, ['stdio', '-c', prod], { encoding: 'utf8', input: '' });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /mode: production.*stdio front end is disabled/);
});

// A client that writes without reading: the front stops reading once its
// queued output is large, so memory stays bounded; when the client reads
// again everything arrives, one answer per line, nothing lost or cut.
test('a client that does not read its answers: bounded output, then every answer whole', async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(PORTCULLIS_BIN, ['stdio', '-c', cfg], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? '' },
    stdio: ['pipe', 'pipe', 'ignore'],
  });
  // 'close', not 'exit': the process may be gone while the last answers
  // still wait in the pipe for this reader.
  const closed = new Promise((r) => child.on('close', r));
  child.stdout.pause();
  const N = 150000; // each answer ~100 bytes: 15 MB if nothing held back
  const line = '{"jsonrpc":"2.0","id":1,"method":"ping"}\n'; // before initialize: an error answer
  let written = 0;
  const writeAll = new Promise((resolve) => {
    const more = () => {
      while (written < N) {
        written++;
        if (!child.stdin.write(line)) return child.stdin.once('drain', more);
      }
      child.stdin.end();
      resolve();
    };
    more();
  });
  await new Promise((r) => setTimeout(r, 1500));
  // Not RSS (the sanitizer build keeps freed memory in quarantine): the
  // front holding back is what bounds it.
  assert.ok(written < N, `the front stopped reading (${written} of ${N} lines taken)`);
  let buf = '', answers = 0, bad = 0;
  child.stdout.on('data', (d) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const l = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try { if (JSON.parse(l).error) answers++; else bad++; } catch { bad++; }
    }
  });
  child.stdout.resume();
  await writeAll;
  // Stop reading while the front answers the last requests and shuts
  // down: their answers wait in its buffer (more than the pipe holds),
  // and the final flush must still deliver every one of them.
  child.stdout.pause();
  await new Promise((r) => setTimeout(r, 1000));
  child.stdout.resume();
  const code = await closed;
  assert.equal(code, 0);
  assert.equal(bad, 0);
  assert.equal(answers, N, 'one whole answer per line');
});

test('a shutdown that takes longer than the session sweep does not free the stdio session under the front', { timeout: 60000 }, async () => {
  const { spawn } = await import('node:child_process');
  // An upstream that outlives its stdin and ignores TERM: the shutdown
  // waits two grace periods (6 s), past the 5 s session sweep, with the
  // stdio session idle for longer than its 1 s timeout.
  const mini = upstreamCommands.mini().join(' ');
  const slowCfg = join(dir, 'slow-stop.yaml');
  writeFileSync(slowCfg, toYaml({
    log_level: 'info',
    auth: 'none',
    policy: OPEN_POLICY,
    limits: { session_idle_timeout: '1s' },
    upstreams: [{ name: 'up', command: ['/bin/sh', '-c', `trap '' TERM; ${mini}; sleep 10`], shutdown_grace: '3s' }],
  }));
  const child = spawn(PORTCULLIS_BIN, ['stdio', '-c', slowCfg], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  let out = '';
  child.stdout.on('data', (d) => { out += d; });
  const closed = new Promise((r) => child.on('close', (code, signal) => r({ code, signal })));
  child.stdin.write(JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } }) + '\n');
  const until = Date.now() + 15000;
  while (!out.includes('"id":1') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert.match(out, /"protocolVersion"/);
  await new Promise((r) => setTimeout(r, 1500)); // idle past the timeout
  child.kill('SIGTERM');
  const { code, signal } = await closed;
  assert.doesNotMatch(err, /AddressSanitizer|runtime error/, err.slice(-3000));
  assert.equal(signal, null);
  assert.equal(code, 0, err.slice(-2000));
});

test('a client that keeps stdout open but stops reading does not hold the shutdown for ever', { timeout: 90000 }, async () => {
  const { spawn } = await import('node:child_process');
  const child = spawn(PORTCULLIS_BIN, ['stdio', '-c', cfg], {
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', ASAN_OPTIONS: process.env.ASAN_OPTIONS ?? '' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => { err += d; });
  const closed = new Promise((r) => child.on('close', (code, signal) => r({ code, signal })));
  child.stdout.pause(); // never read: the answers pile up in the pipe and the front
  child.stdin.on('error', () => {}); // what is still queued meets a closed pipe
  const line = '{"jsonrpc":"2.0","id":1,"method":"ping"}\n';
  for (let i = 0; i < 60000; i++) child.stdin.write(line); // ~6 MB of answers
  await new Promise((r) => setTimeout(r, 2000));
  const t0 = Date.now();
  child.kill('SIGTERM');
  const { code } = await closed;
  const took = Date.now() - t0;
  assert.equal(code, 0, err.slice(-2000));
  assert.ok(took < 60000, `exited ${took} ms after TERM`);
  assert.match(err, /answers not delivered: the client stopped reading/);
});

// MCP (every revision): a cancelled request is not answered. Over HTTP the
// POST still waits for its response; over stdio nothing does, so the
// legacy era must not be answered either.
for (const era of ['legacy', 'modern']) {
  test(`a ${era} client on stdio cancels with notifications/cancelled: the upstream is told, the call ends unanswered and is recorded`, async () => {
    const auditDir = join(dir, `audit-cancel-${era}`);
    const infoCfg = join(dir, `info-${era}.yaml`);
    const keyFile = join(dir, `audit-${era}.key`);
    writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
    writeFileSync(infoCfg, toYaml({ log_level: 'info', auth: 'none', policy: OPEN_POLICY,
      audit: { dir: auditDir, key: `\${file:${keyFile}}` },
      upstreams: [{ name: 'up', command: upstreamCommands.mini() }] }));
    const io = startStdio(infoCfg); // info: the upstream's stderr reaches the log
    try {
      const meta = era === 'modern' ? { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} } : undefined;
      const withMeta = (p) => (meta ? { ...p, _meta: meta } : p);
      if (!meta) await io.initialize(1, {});
      const t0 = Date.now();
      io.send({ jsonrpc: '2.0', id: 5, method: 'tools/call', params: withMeta({ name: 'up__sleep', arguments: { ms: 20000 } }) });
      await new Promise((r) => setTimeout(r, 500));
      io.send({ jsonrpc: '2.0', method: 'notifications/cancelled', params: withMeta({ requestId: 5, reason: 'no longer needed' }) });
      const until = Date.now() + 5000;
      while (!io.stderr.includes('mini_upstream: cancelled a request') && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
      assert.match(io.stderr, /mini_upstream: cancelled a request/, 'the upstream was told');
      assert.ok(Date.now() - t0 < 10000, 'long before the 20 s sleep');
      // The next request is answered; the cancelled one never is.
      io.send({ jsonrpc: '2.0', id: 6, method: 'ping', params: withMeta({}) });
      await io.answer(6);
      assert.equal(io.answers.has(5), false, JSON.stringify(io.answers.get(5)));
      assert.equal(await io.close(), 0);
      const recs = readAuditRecords(auditDir).filter((r) => r.method === 'tools/call');
      assert.deepEqual(recs.map((r) => [r.status, r.reason]), [['cancelled', 'client.cancelled']], JSON.stringify(recs));
    } finally {
      io.child.kill('SIGKILL');
    }
  });
}

test('the rest of a line refused as too long is skipped, not parsed as a message of its own', async () => {
  const small = join(dir, 'small.yaml');
  writeFileSync(small, toYaml({ log_level: 'warn', auth: 'none', policy: OPEN_POLICY, limits: { max_body_bytes: 1024 }, upstreams: [] }));
  const io = startStdio(small);
  try {
    io.child.stdin.write('{"jsonrpc":"2.0","id":5,"method":"ping","params":{"pad":"' + 'x'.repeat(5000));
    await new Promise((r) => setTimeout(r, 500)); // read, found too long, dropped
    io.child.stdin.write('y'.repeat(3000) + '"}}\n');
    io.send({ jsonrpc: '2.0', id: 7, method: 'ping' });
    await io.answer(7);
    const errors = io.all.filter((m) => m.error).map((m) => m.error.code);
    assert.deepEqual(errors, [-32600, ...(io.answers.get(7).error ? [io.answers.get(7).error.code] : [])], JSON.stringify(io.all));
    assert.equal(await io.close(), 0);
  } finally {
    io.child.kill('SIGKILL');
  }
});

test('a last line without its newline is answered, and the process ends', async () => {
  // libevent reads nothing more after EOF: the buffered tail used to wait
  // for bytes that never came, and the process (and its upstreams) stayed.
  const io = startStdio(cfg);
  try {
    await io.initialize(1);
    io.child.stdin.end('{"jsonrpc":"2.0","id":3,"method":"ping"}');
    const exit = await Promise.race([io.close(), new Promise((r) => setTimeout(() => r('hung'), 15000))]);
    assert.equal(exit, 0, io.stderr);
    assert.ok(io.answers.get(3)?.result, JSON.stringify(io.all));
  } finally {
    io.child.kill('SIGKILL');
  }
});

test('a whole line past max_body_bytes in one read is refused, not parsed', async () => {
  const small = join(dir, 'small2.yaml');
  writeFileSync(small, toYaml({ log_level: 'warn', auth: 'none', policy: OPEN_POLICY, limits: { max_body_bytes: 1024 }, upstreams: [] }));
  const io = startStdio(small);
  try {
    io.send({ jsonrpc: '2.0', id: 4, method: 'ping', params: { pad: 'x'.repeat(1500) } });
    io.send({ jsonrpc: '2.0', id: 5, method: 'ping' });
    await io.answer(5);
    const refused = io.all.find((m) => m.error?.code === -32600);
    assert.ok(refused, JSON.stringify(io.all));
    assert.match(refused.error.message, /max_body_bytes/);
    assert.equal(io.answers.get(4), undefined, 'the long one was not answered as a ping');
    assert.equal(await io.close(), 0);
  } finally {
    io.child.kill('SIGKILL');
  }
});

test('the eras switches hold on stdio as on HTTP', async () => {
  const meta = { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} };
  const legacyOnly = join(dir, 'legacy-only.yaml');
  writeFileSync(legacyOnly, toYaml({ log_level: 'warn', auth: 'none', policy: OPEN_POLICY, eras: { modern: false }, upstreams: [] }));
  let io = startStdio(legacyOnly);
  try {
    io.send({ jsonrpc: '2.0', id: 2, method: 'ping', params: { _meta: meta } });
    assert.equal((await io.answer(2)).error?.code, -32022, JSON.stringify(io.all));
    assert.deepEqual(io.answers.get(2).error.data?.supported, ['2025-11-25', '2025-06-18', '2025-03-26']);
    await io.initialize(3);
    assert.equal(await io.close(), 0);
  } finally {
    io.child.kill('SIGKILL');
  }
  const modernOnly = join(dir, 'modern-only.yaml');
  writeFileSync(modernOnly, toYaml({ log_level: 'warn', auth: 'none', policy: OPEN_POLICY, eras: { legacy: false }, upstreams: [] }));
  io = startStdio(modernOnly);
  try {
    io.send({ jsonrpc: '2.0', id: 4, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 't', version: '1' } } });
    const refused = (await io.answer(4)).error;
    assert.equal(refused?.code, -32022, JSON.stringify(io.all));
    assert.deepEqual(refused.data?.supported, ['2026-07-28']);
    io.send({ jsonrpc: '2.0', id: 5, method: 'server/discover', params: { _meta: meta } });
    assert.ok((await io.answer(5)).result, JSON.stringify(io.all));
    assert.equal(await io.close(), 0);
  } finally {
    io.child.kill('SIGKILL');
  }
});

test('a reload reaches the stdio front: a new max_body_bytes holds for the next line', async () => {
  const file = join(dir, 'reloadable.yaml');
  const conf = (extra) => toYaml({ log_level: 'info', auth: 'none', policy: OPEN_POLICY, upstreams: [], ...extra });
  writeFileSync(file, conf({}));
  const io = startStdio(file);
  try {
    await io.initialize(1);
    const big = { jsonrpc: '2.0', method: 'ping', params: { pad: 'x'.repeat(2000) } };
    io.send({ ...big, id: 2 });
    assert.ok((await io.answer(2)).result, JSON.stringify(io.all));
    writeFileSync(file, conf({ limits: { max_body_bytes: 1024 } }));
    io.child.kill('SIGHUP');
    const until = Date.now() + 15000;
    while (!/reload: configuration .* applied/.test(io.stderr) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    assert.match(io.stderr, /reload: configuration .* applied/);
    io.send({ ...big, id: 3 });
    io.send({ jsonrpc: '2.0', id: 4, method: 'ping' });
    await io.answer(4);
    assert.equal(io.answers.get(3), undefined, JSON.stringify(io.all));
    assert.ok(io.all.some((m) => m.error?.code === -32600 && /max_body_bytes/.test(m.error.message)), JSON.stringify(io.all));
    assert.equal(await io.close(), 0);
  } finally {
    io.child.kill('SIGKILL');
  }
});

test('message shapes the HTTP front refuses are refused on stdio too', async () => {
  const io = startStdio(cfg);
  try {
    await io.initialize(1);
    io.send('{"jsonrpc":"2.0"}');
    io.send('{"jsonrpc":"2.0","id":7,"method":5}');
    io.send('{"jsonrpc":"2.0","id":8,"method":""}');
    // A bad response: its id is the gateway's numbering, never echoed.
    io.send('{"jsonrpc":"2.0","id":10,"result":{},"error":{"code":1,"message":"x"}}');
    io.send({ jsonrpc: '2.0', id: 9, method: 'ping' });
    await io.answer(9);
    assert.equal(io.answers.get(10), undefined, JSON.stringify(io.all));
    assert.equal(io.all.filter((m) => m.id === null && m.error?.code === -32600).length, 2, JSON.stringify(io.all));
    assert.equal(io.answers.get(7)?.error?.code, -32600, JSON.stringify(io.all));
    assert.equal(io.answers.get(8)?.error?.code, -32600, JSON.stringify(io.all));
    assert.ok(io.all.some((m) => m.id === null && m.error?.code === -32600), JSON.stringify(io.all));
    assert.equal(await io.close(), 0);
  } finally {
    io.child.kill('SIGKILL');
  }
});

test('a host that stops reading stdout: progress past the backlog is dropped, the answer is not', { timeout: 120000 }, async () => {
  const io = startStdio(cfg);
  try {
    await io.initialize(1);
    io.child.stdout.pause();
    const steps = 90000; // ~12 MB of progress if nothing were dropped
    io.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'up__progress', arguments: { steps, ms: 0 }, _meta: { progressToken: 'p' } } });
    const until = Date.now() + 60000;
    while (!/the host stopped reading/.test(io.stderr) && Date.now() < until) await new Promise((r) => setTimeout(r, 200));
    assert.match(io.stderr, /the host stopped reading/);
    await new Promise((r) => setTimeout(r, 3000)); // the upstream finishes meanwhile
    io.child.stdout.resume();
    const answer = await io.answer(2, 60000);
    assert.equal(answer.result?.content?.[0]?.text, 'progress done');
    const progress = io.all.filter((m) => m.method === 'notifications/progress').length;
    assert.ok(progress < steps, `progress was dropped (${progress} of ${steps} arrived)`);
    assert.equal(io.stderr.match(/the host stopped reading/g).length, 1, 'one warning, not one per message');
    assert.equal(await io.close(), 0);
  } finally {
    io.child.kill('SIGKILL');
  }
});

test('an upstream error quoting its own credential reaches the stdio client redacted', async () => {
  // The HTTP front redacted such failures; the stdio front sent them as
  // the upstream wrote them.
  const CANARY = `canary-${randomBytes(8).toString('hex')}`;
  const secret = join(dir, 'token');
  writeFileSync(secret, CANARY, { mode: 0o600 });
  const withSecret = join(dir, 'secret.yaml');
  writeFileSync(withSecret, toYaml({
    log_level: 'warn', auth: 'none', policy: OPEN_POLICY,
    upstreams: [{ name: 'up', command: upstreamCommands.mini(), env: { UPSTREAM_TOKEN: `\${file:${secret}}` } }],
  }));
  const io = startStdio(withSecret);
  try {
    await io.initialize(1);
    io.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'up__fail', arguments: { env: 'UPSTREAM_TOKEN' } } });
    io.send({ jsonrpc: '2.0', id: 3, method: 'tools/call', params: { name: 'up__fail', arguments: { env: 'UPSTREAM_TOKEN', tool: true } } });
    const rpc = await io.answer(2);
    const tool = await io.answer(3);
    assert.ok(rpc.error, JSON.stringify(rpc));
    assert.equal(tool.result?.isError, true, JSON.stringify(tool));
    for (const m of [rpc, tool]) {
      assert.ok(!JSON.stringify(m).includes(CANARY), JSON.stringify(m));
      assert.match(JSON.stringify(m), /<redacted>/);
    }
    assert.equal(await io.close(), 0);
  } finally {
    io.child.kill('SIGKILL');
  }
});
