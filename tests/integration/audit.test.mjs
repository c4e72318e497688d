// The gateway's audit log, end to end: requests through the real binary
// (both eras, with API keys) and a refused credential each leave a record;
// after shutdown `portcullis audit verify` accepts the chain, and the
// records say who called which tool and what was decided. An edited record
// is caught. A log directory that cannot be used stops the gateway from
// starting (an operator who asked for an audit trail gets one or an error).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync, cpSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createServer } from 'node:net';
import { readAuditRecords as readRecords } from '../lib/audit.mjs';
import { startGateway, toYaml } from '../lib/gateway.mjs';
import { PORTCULLIS_BIN, upstreamCommands } from '../lib/paths.mjs';
import { legacyInit, post, modernMeta, MODERN_VERSION } from '../lib/mcp.mjs';

let dir, auth, keyFile, logDir, apiKey, wrongKey, records;

function verify(target) {
  return spawnSync(PORTCULLIS_BIN, ['audit', 'verify', '-k', keyFile, target], { encoding: 'utf8' });
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'portcullis-auditgw-'));
  writeFileSync(join(dir, 'pepper'), randomBytes(32).toString('hex'), { mode: 0o600 });
  keyFile = join(dir, 'audit.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  logDir = join(dir, 'audit'); // does not exist yet: the gateway creates it
  auth = { api_keys: { store: join(dir, 'keys.db'), pepper: `\${file:${join(dir, 'pepper')}}` } };
  const cliCfg = join(dir, 'cli.yaml');
  writeFileSync(cliCfg, toYaml({ auth }));
  const k = spawnSync(PORTCULLIS_BIN, ['keys', 'create', '--principal', 'alice', '--json', '-c', cliCfg], { encoding: 'utf8' });
  assert.equal(k.status, 0, k.stderr);
  apiKey = JSON.parse(k.stdout).key;

  const gw = await startGateway({
    auth,
    audit: { dir: logDir, key: `\${file:${keyFile}}` },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const h = { authorization: `Bearer ${apiKey}` };
    const s = await legacyInit(gw.url, { headers: h });
    const r1 = await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'hi' } } }, { ...s.headers, ...h });
    assert.equal(r1.status, 200);
    const r2 = await post(
      gw.url,
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'hi' }, _meta: modernMeta() } },
      { ...h, 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/call', 'mcp-name': 'up__echo' },
    );
    assert.equal(r2.status, 200, JSON.stringify(r2.response));
    // A key of the right shape whose secret part is wrong.
    wrongKey = apiKey.slice(0, -4) + (apiKey.endsWith('AAAA') ? 'BBBB' : 'AAAA');
    const r3 = await post(gw.url, { jsonrpc: '2.0', id: 3, method: 'ping' }, { authorization: `Bearer ${wrongKey}` });
    assert.equal(r3.status, 401);
    // A reload is a security event too.
    const from = gw.logs.length;
    gw.proc.kill('SIGHUP');
    await gw.waitForLog((l) => /^reload: configuration .* applied$/.test(l.msg), { from });
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  records = readRecords(logDir);
});
after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the chain the gateway wrote verifies', () => {
  const r = verify(logDir);
  assert.equal(r.status, 0, r.stdout + r.stderr);
});

test('each tool call is recorded with principal, era, tool, decision and outcome', () => {
  const calls = records.filter((r) => r.type === 'request' && r.tool === 'up__echo');
  assert.equal(calls.length, 2, JSON.stringify(records, null, 1));
  const eras = calls.map((c) => c.era).sort();
  assert.deepEqual(eras, ['legacy', 'modern']);
  for (const c of calls) {
    assert.equal(c.principal, 'alice');
    assert.equal(c.method, 'tools/call');
    assert.equal(c.decision, 'allow');
    assert.equal(c.status, 'ok');
    assert.equal(c.upstream, 'up', 'the upstream that served it is named');
    assert.ok(c.key_id, 'the key id is recorded');
    assert.ok(Number.isInteger(c.latency_us) && c.latency_us >= 0);
  }
  const legacy = calls.find((c) => c.era === 'legacy');
  assert.ok(legacy.session, 'a legacy call names its session');
  // The session was recorded when it was created, by whom.
  const init = records.find((r) => r.method === 'initialize');
  assert.equal(init.session, legacy.session);
  assert.equal(init.principal, 'alice');
  assert.equal(init.decision, 'allow');
});

test('start, reload and shutdown are recorded as events, in order', () => {
  // (Key lifecycle events have their own test: audit-keys.test.mjs.)
  const ev = records.filter((r) => r.type === 'event' && !r.event.startsWith('key.')).map((r) => r.event);
  assert.deepEqual(ev, ['gateway.started', 'upstream.ready', 'config.reloaded', 'gateway.stopping']);
  assert.equal(records.find((r) => r.event === 'upstream.ready').upstream, 'up');
  const seqs = records.map((r) => r.seq);
  assert.deepEqual(seqs, [...seqs].sort((a, b) => a - b), 'sequence numbers increase');
});

test('a refused credential is recorded as a deny, and the key itself is not', () => {
  const denies = records.filter((r) => r.decision === 'deny');
  assert.equal(denies.length, 1, JSON.stringify(records, null, 1));
  assert.match(denies[0].reason, /^apikey\./, 'the reason names what failed');
  assert.equal(denies[0].principal, null);
  const all = records.map((r) => JSON.stringify(r)).join('\n');
  assert.ok(!all.includes(wrongKey.slice(-20)), 'the presented credential never reaches the log');
  assert.ok(!all.includes(apiKey), 'nor does a valid one');
});

test('an edited record in the gateway log is caught', () => {
  const copy = join(dir, 'tampered');
  cpSync(logDir, copy, { recursive: true });
  const f = readdirSync(copy).find((x) => x.endsWith('.jsonl'));
  const text = readFileSync(join(copy, f), 'utf8');
  assert.ok(text.includes('"principal":"alice"'));
  writeFileSync(join(copy, f), text.replace('"principal":"alice"', '"principal":"mallory"'));
  const r = verify(copy);
  assert.notEqual(r.status, 0, 'verification must fail');
  assert.match(r.stdout + r.stderr, /line \d+|:\d+/);
});

test('an unusable log directory: the gateway refuses to start, with a clear error', () => {
  const notDir = join(dir, 'not-a-dir');
  writeFileSync(notDir, 'x');
  const cfg = join(dir, 'bad.yaml');
  writeFileSync(cfg, toYaml({ listen: '127.0.0.1:0', admin_listen: '127.0.0.1:0', auth: 'none', audit: { dir: notDir, key: `\${file:${keyFile}}` }, upstreams: [{ name: 'up', command: upstreamCommands.mini() }] }));
  const s = spawnSync(PORTCULLIS_BIN, ['serve', '-c', cfg], { encoding: 'utf8', timeout: 15000 });
  assert.equal(s.status, 1, s.stderr);
  assert.match(s.stderr, /audit/);
});

test('a literal or short audit key, an unknown fsync mode and a bad syslog sink are refused at load', () => {
  const good = `\${file:${keyFile}}`;
  for (const [key, re, extra] of [
    ['0123456789abcdef0123456789abcdef0123', /literal secret is refused/, {}],
    ['${env:PC_SHORT_AUDIT_KEY}', /at least 32 bytes/, {}],
    [good, /group or strict/, { fsync: 'always' }],
    [good, /names are not resolved/, { syslog: { tcp: 'localhost:514' } }],
    [good, /exactly one of socket/, { syslog: { facility: 'local0' } }],
    [good, /authpriv/, { syslog: { socket: '/dev/log', facility: 'mail' } }],
  ]) {
    const cfg = join(dir, 'k.yaml');
    writeFileSync(cfg, toYaml({ auth: 'none', audit: { dir: logDir, key, ...extra } }));
    const s = spawnSync(PORTCULLIS_BIN, ['check', '-c', cfg], { encoding: 'utf8', env: { ...process.env, PC_SHORT_AUDIT_KEY: 'short' } });
    assert.notEqual(s.status, 0);
    assert.match(s.stderr + s.stdout, re);
  }
});

// Fail closed, the attacker's way: fill the disk under the gateway (a
// file-size limit binds root too, where a read-only directory does not).
// From the first record that cannot be written, requests get 503; and every
// result a client did receive has its record in the log.
test('when the log cannot be written, results are withheld (503) and nothing answered is unrecorded', async () => {
  const d = join(dir, 'full');
  const env = { ...process.env };
  const cfg = {
    auth: 'none',
    audit: { dir: d, key: `\${file:${keyFile}}` },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  };
  // ulimit -f counts 1024-byte blocks in bash: room for the file's opening
  // record and a handful of request records.
  const gw = await startGateway(cfg, { env, wrapper: ['bash', '-c', 'ulimit -f 3; exec "$@"', 'bash'] });
  const answered = [];
  let refused = 0;
  try {
    const s = await legacyInit(gw.url);
    for (let i = 1; i <= 40; i++) {
      const r = await post(gw.url, { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'up__echo', arguments: { text: `call-${i}` } } }, s.headers);
      if (r.status === 200 && r.response?.result) answered.push(i);
      else {
        // The request whose record failed is answered with its id; later
        // ones are refused before their body is read (id null).
        const m = r.messages[0];
        assert.equal(r.status, 503, r.text);
        assert.equal(m.error.code, -32004);
        assert.match(m.error.message, /audit log/);
        assert.ok(m.id === i || m.id === null);
        assert.ok(!r.text.includes(d), 'no internal path in the answer');
        refused++;
      }
    }
    assert.ok(answered.length > 0, 'some calls fit in the log');
    assert.ok(refused > 0, 'the log filled up');
    // Once failed, the gateway stays closed.
    const after = await post(gw.url, { jsonrpc: '2.0', id: 99, method: 'ping' }, s.headers);
    assert.equal(after.status, 503);
    assert.ok(gw.logs.some((l) => /audit/.test(l.msg) && l.level === 'error'), 'the operator is told why');
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const recorded = readRecords(d).filter((r) => r.type === 'request' && r.tool === 'up__echo').length;
  assert.ok(recorded >= answered.length, `${answered.length} results answered, ${recorded} recorded`);
  // The part that was written still verifies; the missing closing
  // checkpoint is reported as a warning (exit 3), not hidden.
  const r = verify(d);
  assert.equal(r.status, 3, r.stdout + r.stderr);
  assert.match(r.stdout + r.stderr, /no closing checkpoint/);
});

// Crash under load: kill -9 while clients are mid-flight. Every response a
// client received must have its record in the log (the record is written
// before the reply; kill -9 does not lose what write(2) handed the kernel).
test('kill -9 under load: every response received has its audit record', async () => {
  const d = join(dir, 'crash');
  const gw = await startGateway({
    auth: 'none',
    audit: { dir: d, key: `\${file:${keyFile}}`, group_delay: '50ms' },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  const received = new Set();
  let stop = false;
  try {
    const s = await legacyInit(gw.url);
    const worker = async (w) => {
      for (let i = 0; !stop; i++) {
        const text = `w${w}-${i}`;
        try {
          const r = await post(gw.url, { jsonrpc: '2.0', id: i + 1, method: 'tools/call', params: { name: 'up__echo', arguments: { text } } }, s.headers);
          if (r.status === 200 && r.response?.result) received.add(text);
        } catch {
          return; // the gateway is gone
        }
      }
    };
    const workers = Array.from({ length: 8 }, (_, w) => worker(w));
    await new Promise((r) => setTimeout(r, 1500));
    await gw.kill(); // SIGKILL while requests are in flight
    stop = true;
    await Promise.all(workers);
  } catch (e) {
    stop = true;
    await gw.kill();
    throw e;
  }
  assert.ok(received.size > 50, `load ran (${received.size} responses)`);
  const recorded = readRecords(d).filter((r) => r.type === 'request' && r.tool === 'up__echo' && r.status === 'ok').length;
  assert.ok(recorded >= received.size, `${received.size} responses received, ${recorded} recorded`);
  // What was written verifies; the crash shows as a missing closing checkpoint.
  const v = verify(d);
  assert.equal(v.status, 3, v.stdout + v.stderr);
});

// Canaries: a secret under a sensitive key name, in a writeOnly field of
// the tool's schema, and the value of an ${env:} reference the gateway
// resolved. The call's arguments are recorded, the canaries are not, and
// none appears in the gateway's log either.
test('arguments are recorded with secrets redacted (key name, writeOnly, known value)', async () => {
  const d = join(dir, 'canary');
  const C1 = 'canary-keyname-Vb7xQ2mP9s';
  const C2 = 'canary-writeonly-Lq3zR8nK4t';
  const C3 = 'canary-envref-Hw5yT1cJ6u';
  const gw = await startGateway(
    {
      auth: 'none',
      audit: { dir: d, key: `\${file:${keyFile}}` },
      upstreams: [{ name: 'up', command: upstreamCommands.mini(), env: { UPSTREAM_TOKEN: '${env:PC_AUDIT_CANARY}' } }],
    },
    { env: { PC_AUDIT_CANARY: C3 } },
  );
  let out = '';
  try {
    const s = await legacyInit(gw.url);
    const call = (id, name, args) => post(gw.url, { jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }, s.headers);
    const r1 = await call(1, 'up__echo', { text: `pasted ${C3} here`, api_key: C1 });
    const r2 = await call(2, 'up__login', { user: 'bob', pin: C2 });
    assert.equal(r2.response.result.content[0].text, 'welcome bob');
    out = r1.text + r2.text;
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const recs = readRecords(d).filter((r) => r.type === 'request');
  const echo = recs.find((r) => r.tool === 'up__echo');
  const login = recs.find((r) => r.tool === 'up__login');
  assert.equal(echo.args.api_key, '<redacted>');
  assert.equal(echo.args.text, 'pasted <redacted> here');
  assert.equal(login.args.user, 'bob', 'what is not secret is kept');
  assert.equal(login.args.pin, '<redacted>');
  const file = readdirSync(d).map((f) => readFileSync(join(d, f), 'utf8')).join('');
  for (const c of [C1, C2, C3]) {
    assert.ok(!file.includes(c), `${c} is not in the audit file`);
    assert.ok(!gw.stderr.includes(c), `${c} is not in the gateway log`);
  }
  // The echo tool returns its text: the client sees its own input; the
  // known ${env:} value is not something the gateway puts in answers.
  assert.ok(!out.includes(C2) && !out.includes(C1));
  const v = verify(d);
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

test('an upstream that dies and comes back is recorded: exited, then ready again', async () => {
  const d = join(dir, 'upstream');
  const gw = await startGateway({
    auth: 'none',
    audit: { dir: d, key: `\${file:${keyFile}}` },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const from = gw.logs.length;
    // The gateway's only child is the upstream: kill it as a crash would.
    const k = spawnSync('pkill', ['-KILL', '-P', String(gw.pid)]);
    assert.equal(k.status, 0, 'the upstream process was found');
    await gw.waitForLog((l) => /^upstream 'up' ready/.test(l.msg), { from, timeoutMs: 20000 });
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const ev = readRecords(d).filter((r) => r.type === 'event');
  assert.deepEqual(ev.map((r) => r.event), ['gateway.started', 'upstream.ready', 'upstream.exited', 'upstream.ready', 'gateway.stopping']);
  assert.ok(ev.filter((r) => r.event.startsWith('upstream.')).every((r) => r.upstream === 'up'));
  const v = verify(d);
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

test('a reload that changes the audit section says it takes effect at the next start, and the log goes on as it was', async () => {
  const d = join(dir, 'reload');
  const cfg = {
    auth: 'none',
    audit: { dir: d, key: `\${file:${keyFile}}` },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  };
  const gw = await startGateway(cfg);
  try {
    // Unchanged: a plain reload, no warning.
    let from = gw.logs.length;
    gw.proc.kill('SIGHUP');
    await gw.waitForLog((l) => /^reload: configuration .* applied$/.test(l.msg), { from });
    assert.ok(!gw.logs.slice(from).some((l) => /audit section changed/.test(l.msg)));
    // Another directory and a group delay: not applied, and said so.
    writeFileSync(gw.configPath, toYaml({ ...gw.config, audit: { ...cfg.audit, dir: join(dir, 'elsewhere'), group_delay: '50ms' } }));
    from = gw.logs.length;
    gw.proc.kill('SIGHUP');
    await gw.waitForLog((l) => /^reload: configuration .* applied$/.test(l.msg), { from });
    const w = gw.logs.slice(from).find((l) => /audit section changed/.test(l.msg));
    assert.ok(w, 'the operator is told');
    assert.equal(w.level, 'warn');
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const ev = readRecords(d).filter((r) => r.type === 'event' && r.event === 'config.reloaded');
  assert.deepEqual(ev.map((r) => r.reason), [null, 'audit.restart_needed']);
  assert.equal(verify(d).status, 0, 'the running log went on in its own directory');
});

// Octet-counted frames (RFC 6587) from a TCP stream: [frames, rest].
function splitFrames(buf) {
  const frames = [];
  let pos = 0;
  for (;;) {
    const sp = buf.indexOf(0x20, pos);
    if (sp < 0) break;
    const len = Number(buf.subarray(pos, sp).toString('latin1'));
    assert.ok(Number.isInteger(len) && len > 0, `a frame length at byte ${pos}`);
    if (sp + 1 + len > buf.length) break;
    frames.push(buf.subarray(sp + 1, sp + 1 + len).toString('utf8'));
    pos = sp + 1 + len;
  }
  return [frames, buf.subarray(pos)];
}

// The syslog sink, with the test as the receiver: every record of the file
// arrives as an RFC 5424 message (<PRI>1 TIMESTAMP HOST portcullis PROCID
// MSGID - BOM MSG) whose MSG is the file's line, secrets redacted as in
// the file; and a receiver that is away never costs a request.
test('syslog over TCP: RFC 5424 messages carrying the same redacted records', async () => {
  const d = join(dir, 'syslog');
  const CANARY = 'canary-syslog-Zx4vB8nQ2w';
  let received = Buffer.alloc(0);
  const server = createServer((sock) => sock.on('data', (b) => { received = Buffer.concat([received, b]); }));
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  const gw = await startGateway({
    auth: 'none',
    audit: { dir: d, key: `\${file:${keyFile}}`, syslog: { tcp: `127.0.0.1:${port}`, facility: 'local3' } },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  let pid;
  try {
    pid = gw.pid;
    const s = await legacyInit(gw.url);
    const r = await post(gw.url, { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'hi', password: CANARY } } }, s.headers);
    assert.equal(r.status, 200);
    await gw.stop();
  } catch (e) {
    await gw.kill();
    server.close();
    throw e;
  }
  await new Promise((r) => setTimeout(r, 200));
  server.close();
  const [frames, rest] = splitFrames(received);
  assert.equal(rest.length, 0, 'no partial frame');
  const lines = readdirSync(d).filter((f) => f.endsWith('.jsonl')).sort()
    .flatMap((f) => readFileSync(join(d, f), 'utf8').split('\n').filter(Boolean));
  assert.equal(frames.length, lines.length, 'one message per record of the file');
  const re = /^<(\d{1,3})>1 (\S+) (\S+) portcullis (\d+) (\S+) - \uFEFF(.*)$/s;
  frames.forEach((m, i) => {
    const g = re.exec(m);
    assert.ok(g, `RFC 5424 framing: ${m.slice(0, 120)}`);
    const rec = JSON.parse(g[6]);
    assert.equal(g[6], lines[i], 'MSG is the line of the file, byte for byte');
    assert.equal(Number(g[1]) >> 3, 19, 'facility local3');
    const sev = Number(g[1]) & 7;
    assert.equal(sev, rec.type === 'event' || rec.decision === 'deny' ? 5 : 6);
    assert.equal(g[2], rec.ts);
    assert.equal(Number(g[4]), pid);
    assert.equal(g[5], rec.type);
  });
  const call = frames.find((m) => m.includes('"tool":"up__echo"'));
  assert.ok(call, 'the tool call went to syslog');
  assert.ok(call.includes('"password":"<redacted>"'));
  assert.ok(!received.toString('utf8').includes(CANARY), 'the canary never reaches syslog');
  const v = verify(d);
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

test('syslog receiver away: requests are served and recorded in the file, one warning', async () => {
  const d = join(dir, 'syslog-down');
  // A port nobody listens on: take one, then free it.
  const probe = createServer();
  await new Promise((r) => probe.listen(0, '127.0.0.1', r));
  const port = probe.address().port;
  await new Promise((r) => probe.close(r));
  const gw = await startGateway({
    auth: 'none',
    audit: { dir: d, key: `\${file:${keyFile}}`, syslog: { tcp: `127.0.0.1:${port}` } },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const s = await legacyInit(gw.url);
    for (let i = 1; i <= 5; i++) {
      const r = await post(gw.url, { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'up__echo', arguments: { text: `t${i}` } } }, s.headers);
      assert.equal(r.status, 200);
    }
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const recs = readRecords(d).filter((r) => r.tool === 'up__echo');
  assert.equal(recs.length, 5, 'the file has every record');
  const warns = gw.logs.filter((l) => /audit syslog .* records are dropped/.test(l.msg));
  assert.ok(warns.length >= 1, 'the outage is reported');
  assert.ok(warns.length <= 2, `once per outage, not per record (${warns.length})`);
});

// Send a call and leave 100 ms later, while strict mode holds its reply
// (group delay 400 ms); return once the gateway noticed and the group's
// fsync has reported.
async function leaveWhileHeld(gw, body, headers) {
  const from = gw.logs.length;
  const ac = new AbortController();
  const gone = fetch(gw.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify(body),
    signal: ac.signal,
  }).catch((e) => e);
  await new Promise((res) => setTimeout(res, 100));
  ac.abort();
  await gone;
  await gw.waitForLog((l) => /client closed the connection/.test(l.msg), { from });
  await new Promise((res) => setTimeout(res, 600)); // past the group's fsync
}

// fsync: strict: a reply leaves only after the fsync that covers its
// record. With a group delay of 400 ms, no call can be answered sooner than
// that after its record was written (a lower bound, not a speed); every
// answer has its record, and the chain verifies.
test('fsync: strict holds each reply until its record is synced', async () => {
  const d = join(dir, 'strict');
  const gw = await startGateway({
    auth: 'none',
    audit: { dir: d, key: `\${file:${keyFile}}`, fsync: 'strict', group_delay: '400ms' },
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  const waited = [];
  try {
    assert.ok(gw.logs.some((l) => /audit log open \(strict/.test(l.msg)), 'strict mode is announced');
    const s = await legacyInit(gw.url);
    assert.ok(s.headers['mcp-session-id'], 'the session id is sent (after its record is synced)');
    for (let i = 1; i <= 3; i++) {
      const t0 = Date.now();
      const r = await post(gw.url, { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'up__echo', arguments: { text: `s${i}` } } }, s.headers);
      waited.push(Date.now() - t0);
      assert.equal(r.status, 200);
      assert.equal(r.response.result.content[0].text, `s${i}`);
    }
    const r = await post(
      gw.url,
      { jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'm' }, _meta: modernMeta() } },
      { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/call', 'mcp-name': 'up__echo' },
    );
    assert.equal(r.status, 200, JSON.stringify(r.response));
    // A 2025-03-26 batch: its members' results wait for their fsync too.
    const s25 = await legacyInit(gw.url, { version: '2025-03-26' });
    const tb = Date.now();
    const b = await post(gw.url, [{ jsonrpc: '2.0', id: 21, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'b1' } } }], s25.headers);
    waited.push(Date.now() - tb);
    assert.equal(b.status, 200, b.text);
    assert.equal(b.messages[0].result.content[0].text, 'b1');
    // A client that leaves while its reply is held: the held reply is
    // dropped when its fsync reports (stop() checks for sanitizer reports).
    await leaveWhileHeld(gw, { jsonrpc: '2.0', id: 10, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'gone' } } }, s.headers);
    const after = await post(gw.url, { jsonrpc: '2.0', id: 11, method: 'tools/call', params: { name: 'up__echo', arguments: { text: 'after' } } }, s.headers);
    assert.equal(after.status, 200);
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  for (const ms of waited) assert.ok(ms >= 350, `a strict reply waited for the group's fsync (${ms} ms)`);
  const recs = readRecords(d).filter((x) => x.tool === 'up__echo');
  assert.equal(recs.length, 7, 'every call is recorded, the abandoned one too');
  assert.ok(readRecords(d).some((x) => x.method === 'initialize' && x.session), 'the session was recorded');
  const v = verify(d);
  assert.equal(v.status, 0, v.stdout + v.stderr);
});

test('fsync: strict with a full disk: results are withheld (503), nothing answered is unrecorded', async () => {
  const d = join(dir, 'strict-full');
  const gw = await startGateway(
    { auth: 'none', audit: { dir: d, key: `\${file:${keyFile}}`, fsync: 'strict', group_delay: '0ms' }, upstreams: [{ name: 'up', command: upstreamCommands.mini() }] },
    { wrapper: ['bash', '-c', 'ulimit -f 3; exec "$@"', 'bash'] },
  );
  const answered = [];
  let refused = 0;
  try {
    const s = await legacyInit(gw.url);
    for (let i = 1; i <= 40; i++) {
      const r = await post(gw.url, { jsonrpc: '2.0', id: i, method: 'tools/call', params: { name: 'up__echo', arguments: { text: `f${i}` } } }, s.headers);
      if (r.status === 200 && r.response?.result) answered.push(i);
      else {
        assert.equal(r.status, 503, r.text);
        refused++;
      }
    }
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  assert.ok(answered.length > 0 && refused > 0, `${answered.length} answered, ${refused} refused`);
  const recorded = readRecords(d).filter((r) => r.tool === 'up__echo').length;
  assert.ok(recorded >= answered.length, `${answered.length} answered, ${recorded} recorded`);
});

// A limit's refusal is answered through the same path as a result, so in
// strict mode it is held too, from a point where the exchange was not yet
// watched: a client that leaves while it is held must cost nothing (stop()
// fails on any sanitizer report).
test('fsync: strict holds a limit refusal too; a client that leaves meanwhile costs nothing', async () => {
  const d = join(dir, 'strict-limit');
  const gw = await startGateway({
    auth: 'none',
    audit: { dir: d, key: `\${file:${keyFile}}`, fsync: 'strict', group_delay: '400ms' },
    rate_limits: [{ id: 'one', scope: 'global', rate: '1/minute' }],
    upstreams: [{ name: 'up', command: upstreamCommands.mini() }],
  });
  try {
    const s = await legacyInit(gw.url);
    const call = (id) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'up__echo', arguments: { text: `l${id}` } } });
    const r1 = await post(gw.url, call(1), s.headers);
    assert.equal(r1.status, 200);
    await leaveWhileHeld(gw, call(2), s.headers);
    const t0 = Date.now();
    const r3 = await post(gw.url, call(3), s.headers);
    assert.equal(r3.status, 429, r3.text);
    assert.ok(Date.now() - t0 >= 350, 'the refusal waited for its record\'s fsync');
    await gw.stop();
  } catch (e) {
    await gw.kill();
    throw e;
  }
  const denies = readRecords(d).filter((r) => r.decision === 'deny' && r.reason === 'limit.rate');
  assert.equal(denies.length, 2, 'both refusals are recorded');
});
